/* natspub.h - publication to a NATS JetStream key-value bucket
 * (publish.nats_kv).
 *
 * Each body the daemon publishes also goes into the bucket under key =
 * task, a replicated last-value cache routers anywhere can read or watch.
 * The value is the body with one more top-level key, stream_seq: the
 * highest stream sequence the NATS intake had applied when the body was
 * made (docs/protocol.md). A value replaces the stored one only if its
 * stream_seq is higher, by compare-and-set on the entry's revision
 * (kvStore_Update), so that replicas consuming the same shard never move
 * the bucket back to an older position.
 *
 * The loop only copies the body into a queue (one per task: a newer body
 * replaces one not yet sent); a thread of its own talks to NATS. Keys are
 * NATS subject tokens: a task whose name holds other bytes than
 * [-_=/.a-zA-Z0-9] is not put (counted, logged rate-limited).
 */
#ifndef ENSEMBLED_NATSPUB_H
#define ENSEMBLED_NATSPUB_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ensembled/mpw.h"

typedef struct ens_natspub_s ens_natspub_t;

/* Connects (the servers, credentials and TLS of [ingest] nats), binds the
 * bucket (which must exist) and starts the thread. Returns 0, or -1 with a
 * reason in err. conf is borrowed for the publisher's life. */
int ens_natspub_open(const ens_config_t *conf, ens_natspub_t **out, char *err, size_t errlen);

/* Queues body (copied) for task at stream position seq. Loop thread. */
void ens_natspub_put(ens_natspub_t *p, const char *task, size_t len, const char *body, size_t size,
                     uint64_t seq);

/* Sends what is queued (for at most 2 s), stops the thread, closes the
 * connection, frees (NULL-safe). */
void ens_natspub_destroy(ens_natspub_t **pp);

/* The value put for body at position seq (the caller frees *out): body
 * with stream_seq added to its top-level map. Returns 0, or -1 when body
 * is not a map. */
int ens_natspub_value(const char *body, size_t size, uint64_t seq, char **out, size_t *outlen);

/* The stream_seq of a value ens_natspub_value made; 0 for any other. */
uint64_t ens_natspub_value_seq(const void *value, size_t len);

/* The `nats_kv` map of the status reply: puts, skipped_older,
 * bad_keys, errors (NULL-safe: nothing). */
void ens_natspub_status(const ens_natspub_t *p, ens_mpw_t *w);

#endif
