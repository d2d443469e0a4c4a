/* security.h - optional CURVE encryption and authentication.
 *
 * With security.curve_secret_key_file set, every socket the daemon binds
 * (ingest, publish, control) is a CURVE server with that key, and a ZAP
 * handler (RFC 27) on inproc://zeromq.zap.01 admits a client only if its
 * public key is one of the files in security.authorized_keys_dir (regular
 * files only; others are skipped and counted). Refused and admitted
 * handshakes are counted. Without the key, nothing changes:
 * the sockets are plain (and the defaults bind to loopback only).
 */
#ifndef ENSEMBLED_SECURITY_H
#define ENSEMBLED_SECURITY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "ensembled/mpw.h"

typedef struct {
    uint64_t accepted; /* CURVE handshakes admitted */
    uint64_t refused;  /* CURVE handshakes refused: unknown client key */
    size_t keys;       /* authorized keys loaded */
    size_t skipped;    /* files of authorized_keys_dir skipped at the last load */
} ens_security_stats_t;

typedef struct ens_security_s ens_security_t;

/* Loads the keys and starts the ZAP handler on zctx. Returns 0 and the
 * handle in *out (NULL when security is off), or -1 with a reason in err. */
int ens_security_open(uv_loop_t *loop, void *zctx, const ens_config_t *c, ens_security_t **out,
                      char *err, size_t errlen);

/* Makes sock a CURVE server when security is on (s not NULL). Call before
 * bind. */
void ens_security_apply(const ens_security_t *s, void *sock);

/* Re-reads the authorized keys (SIGHUP). Returns how many keys authorized
 * before are not any more: ZeroMQ checks a key only at the handshake, so
 * the caller must then cut the connections already open. NULL-safe. */
size_t ens_security_reload(ens_security_t *s, const ens_config_t *c);

/* Closes the ZAP socket (loop still running). NULL-safe. */
void ens_security_close(ens_security_t *s);

/* Frees the keys once the loop has ended (after ens_security_close). */
void ens_security_free(ens_security_t **sp);

/* The `security` map of the status reply (key and value; NULL-safe). */
void ens_security_status(const ens_security_t *s, ens_mpw_t *w);

/* Reads a Z85 key (40 characters, surrounding whitespace ignored) from a
 * regular file into z85[41], never blocking (a FIFO is refused unread).
 * Returns 0, or -1 with the reason in why: the OS error, "not a regular
 * file" or "not a Z85 key". */
int ens_read_z85(const char *path, char *z85, char *why, size_t whylen);

#endif
