/* natsin.h - intake from a NATS JetStream stream (ingest.nats).
 *
 * A durable pull consumer (ingest.nats_durable) on ingest.nats_stream,
 * filtered by ingest.nats_subject. A fetch thread pulls batches and hands
 * them to the loop through a bounded queue and a uv_async_t; it also sends
 * the acknowledgements the loop decides on, so no NATS call ever runs on
 * the loop. The loop hands each message's payload to the same decoder as
 * the ZeroMQ intake (the deliver hook) and keeps the message until:
 *
 *   1. no query it names is pending in a join any more (joined, expired or
 *      evicted), asked through the pending hook after half a second, then
 *      at doubling intervals up to 8 s; and
 *   2. the journal is durable up to the last row sequence number the daemon
 *      had given when condition 1 was found to hold.
 *
 * Then it is acknowledged. A crash before that makes the server deliver it
 * again; docs/scale.md says what the join does with it. A message held
 * longer than half of ingest.nats_ack_wait is marked in progress, so the
 * server does not redeliver it while the daemon runs. When the queue is
 * full the fetch thread waits: the stream holds what the daemon cannot
 * take yet.
 *
 * Loop thread, but for the fetch thread it owns. Built only with libnats
 * (ENS_HAVE_NATS); without it ens_natsin_open fails, and the configuration
 * check refuses ingest.nats before that.
 */
#ifndef ENSEMBLED_NATSIN_H
#define ENSEMBLED_NATSIN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "ensembled/mpw.h"

typedef struct {
    /* Decodes and applies one message's payload (borrowed for the call). */
    void (*deliver)(void *ud, const char *buf, size_t len);
    /* 1 while a query the payload names is pending in a join. */
    int (*pending)(void *ud, const char *buf, size_t len);
    /* The last row sequence number given, and the last one durable. */
    uint64_t (*last_seq)(void *ud);
    uint64_t (*durable_seq)(void *ud);
    void *ud;
} ens_natsin_hooks_t;

typedef struct ens_natsin_s ens_natsin_t;

/* Connects, binds the durable consumer (created when absent) and starts
 * the fetch thread. conf is borrowed for the intake's life. Returns 0, or
 * -1 with a reason in err (no server answers, no such stream, a bad
 * credentials file, a build without NATS). */
int ens_natsin_open(uv_loop_t *loop, const ens_config_t *conf, const ens_natsin_hooks_t *hooks,
                    ens_natsin_t **out, char *err, size_t errlen);

/* When the daemon begins to stop (loop still running): the fetch thread
 * stops, messages already fetched are applied, the loop's handles close.
 * Messages still held stay unacknowledged (NULL-safe). */
void ens_natsin_stop(ens_natsin_t *n);

/* After the loop has run dry. durable: the state was saved in full (a
 * clean stop's snapshot), so every held message whose queries are no longer
 * pending is acknowledged now, synchronously. Then the connection closes
 * and everything is freed (NULL-safe). */
void ens_natsin_destroy(ens_natsin_t **np, int durable);

/* The highest stream sequence applied so far (0: none): the position the
 * daemon's bodies reflect (NULL-safe). */
uint64_t ens_natsin_position(const ens_natsin_t *n);

#ifdef ENS_HAVE_NATS
#include <nats/nats.h>
/* A connection to the servers of [ingest] nats with its credentials and
 * TLS, reconnecting without end (natspub shares it). Returns 0, or -1 with
 * a reason in err. */
int ens_natsin_connect(const ens_config_t *c, natsConnection **nc, char *err, size_t errlen);
#endif

/* The `nats` map of the status reply: fetched, acked, held, in_progress,
 * position, fetch_errors, ack_errors (key and value; NULL-safe: nothing). */
void ens_natsin_status(const ens_natsin_t *n, ens_mpw_t *w);

#endif
