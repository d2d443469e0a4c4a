/* ingest.h - from a message to joins: decode, check capacity, sample, apply.
 *
 * A message is applied all or nothing. Decoding (protocol.h) rejects
 * malformed or ill-typed input; then capacity is checked for the whole
 * message (tasks, models and labels it would add) before any state changes,
 * so a message that would overflow a dictionary changes nothing either.
 * Every refusal is counted by reason and logged at most once a second per
 * reason. No sockets here: the daemon hands each message over. Loop thread
 * only.
 */
#ifndef ENSEMBLED_INGEST_H
#define ENSEMBLED_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ensembled/mpw.h"
#include "ensembled/protocol.h"
#include "task.h"

/* Drops that happen after decoding, when events are applied. */
#define ENS_DROP_MAP(XX)                                                                           \
    XX(TOO_MANY_TASKS, "too_many_tasks")                                                           \
    XX(TOO_MANY_MODELS, "too_many_models")                                                         \
    XX(TOO_MANY_LABELS, "too_many_labels")

typedef enum {
#define ENS__DROP_ENUM(id, name) ENS_DROP_##id,
    ENS_DROP_MAP(ENS__DROP_ENUM)
#undef ENS__DROP_ENUM
        ENS_DROP_COUNT
} ens_drop_t;

const char *ens_drop_name(ens_drop_t r);

typedef struct {
    uint64_t messages;                   /* messages handed in */
    uint64_t events;                     /* events applied */
    uint64_t rejected[ENS_REJECT_COUNT]; /* messages refused by the decoder */
    uint64_t dropped[ENS_DROP_COUNT];    /* messages refused for capacity */
    uint64_t future_ts;                  /* label times beyond ingest.max_future, taken as now */
} ens_ingest_stats_t;

typedef struct ens_ingest_s ens_ingest_t;

/* Feeds tasks (borrowed); conf is borrowed until the next set_config. */
ens_ingest_t *ens_ingest_new(ens_tasks_t *tasks, const ens_config_t *conf);
void ens_ingest_destroy(ens_ingest_t **ip);
void ens_ingest_set_config(ens_ingest_t *in, const ens_config_t *conf);

/* Decodes and applies one message (buf is borrowed for the call). Returns
 * 0, or -1 when the message was refused (counted). now: wall time of
 * arrival; mono: the monotonic clock. */
int ens_ingest_message(ens_ingest_t *in, const char *buf, size_t len, double now, double mono);

/* 1 if a query that message buf[0..len) names is still pending in its
 * task's join (waiting for its label or its predictions), 0 if none is (a
 * message that does not decode names none). Changes nothing, counts
 * nothing: an intake that acknowledges messages asks it (natsin.h). */
int ens_ingest_pending(const ens_ingest_t *in, const char *buf, size_t len);

const ens_ingest_stats_t *ens_ingest_stats(const ens_ingest_t *in);

/* The counters as status entries: messages_in, events_in, rejected{},
 * dropped{}, future_ts_clamped (into an open map). */
void ens_ingest_status(const ens_ingest_t *in, ens_mpw_t *w);

#endif
