/* security.h - optional CURVE encryption and authentication.
 *
 * With security.curve_secret_key_file set, every socket the daemon binds
 * (ingest, publish, control) is a CURVE server with that key, and a ZAP
 * handler (RFC 27) on inproc://zeromq.zap.01 admits a client only if its
 * public key is one of the files in security.authorized_keys_dir. Refused
 * and admitted handshakes are counted. Without the key, nothing changes:
 * the sockets are plain (and the defaults bind to loopback only).
 */
#ifndef ENSEMBLED_SECURITY_H
#define ENSEMBLED_SECURITY_H

#include <stddef.h>
#include <stdint.h>

struct ens_daemon_s;

typedef struct {
    uint64_t accepted; /* CURVE handshakes admitted */
    uint64_t refused;  /* CURVE handshakes refused: unknown client key */
    size_t keys;       /* authorized keys loaded */
} ens_security_stats_t;

/* Loads the keys and starts the ZAP handler. Returns 0 (also when security
 * is off) or -1 with a reason in err. */
int ens_security_open(struct ens_daemon_s *d, char *err, size_t errlen);

/* Makes sock a CURVE server when security is on. Call before bind. */
void ens_security_apply(struct ens_daemon_s *d, void *sock);

/* Re-reads the authorized keys (SIGHUP). */
void ens_security_reload(struct ens_daemon_s *d);

void ens_security_close(struct ens_daemon_s *d);

/* Frees the keys once the loop has ended (after ens_security_close). */
void ens_security_free(struct ens_daemon_s *d);

const ens_security_stats_t *ens_security_stats(const struct ens_daemon_s *d);

/* Reads a Z85 key (40 characters, surrounding whitespace ignored) from a
 * file into z85[41]. Returns 0 or -1. */
int ens_read_z85(const char *path, char *z85);

#endif
