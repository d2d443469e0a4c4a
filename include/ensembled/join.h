/* join.h - joining predictions with late-arriving labels, per task.
 *
 * A query is pending until its label and at least one prediction are in, in
 * either order; then it joins: the join calls emit() once with the row and
 * keeps a tombstone of the query for `ttl`, so that a prediction or label
 * arriving after the join is recognised (and counted) instead of opening a
 * new pending query. Pending queries older than `ttl` expire; when
 * `max_pending` queries are pending, the oldest is evicted to make room.
 * Both are counted. Queries are byte keys (the caller encodes string and
 * integer queries apart).
 *
 * Accounting invariant: every accepted query is, at any time, exactly one of
 * pending, joined, expired or evicted.
 */
#ifndef ENSEMBLED_JOIN_H
#define ENSEMBLED_JOIN_H

#include <stddef.h>
#include <stdint.h>

typedef struct ens_join_s ens_join_t;

typedef struct {
    uint64_t queries;          /* distinct queries accepted */
    uint64_t joined;           /* queries joined (rows emitted) */
    uint64_t expired;          /* pending queries that reached ttl */
    uint64_t evicted;          /* pending queries evicted by max_pending */
    uint64_t late_predictions; /* predictions after the join: ignored */
    uint64_t late_labels;      /* labels after the join: ignored */
    uint64_t dup_predictions;  /* a model answering a pending query twice: first kept */
    uint64_t dup_labels;       /* a second label for a pending query: first kept */
} ens_join_stats_t;

/* One answer of a joined row. */
typedef struct {
    uint16_t model; /* model id */
    uint8_t sym;    /* label id or ENS_SYM_ABSTAIN */
    double cost;    /* its cost; negative when the event gave none. The join
                     * carries it to the row untouched. */
    uint64_t key;   /* open answers (ens_join_set_open): the answer's key */
} ens_join_pred_t;

/* Called once per joined query, on the caller's thread, with the true label
 * and the answers (borrowed for the call). ts: the label's time. */
typedef void (*ens_join_emit_fn)(void *ud, uint8_t y, const ens_join_pred_t *preds, size_t n,
                                 double ts);

/* Returns NULL if max_pending is 0 or ttl is not positive. */
ens_join_t *ens_join_new(size_t max_pending, double ttl, ens_join_emit_fn emit, void *ud);
void ens_join_destroy(ens_join_t **jp);

/* Adds the answers of one prediction event to query key[0..len) at time now
 * (seconds). The answers of one event join together: a query whose label is
 * already in joins with all of them. */
void ens_join_predictions(ens_join_t *j, const void *key, size_t len, const ens_join_pred_t *preds,
                          size_t n, double now);
/* One answer without a cost: ens_join_predictions with n = 1. */
void ens_join_prediction(ens_join_t *j, const void *key, size_t len, uint16_t model, uint8_t sym,
                         double now);
/* Adds the true label of query key at time now; ts is the row's time. */
void ens_join_label(ens_join_t *j, const void *key, size_t len, uint8_t y, double now, double ts);

/* Open answers (open.h): the join compares answers by their keys. A query
 * then holds, until it joins, one 64-bit key per answer and one for the
 * truth (given by ens_join_label_key), never the answers' text; it emits the
 * row's agreement pattern: y the truth's class or ENS_OPEN_NONE, each
 * answer's sym its class or ENS_SYM_ABSTAIN (ens_open_pattern, models in id
 * order). Set it before the first event. */
void ens_join_set_open(ens_join_t *j, int open);
/* The truth of an open-answer query: the key of the true answer. */
void ens_join_label_key(ens_join_t *j, const void *key, size_t len, uint64_t answer, double now,
                        double ts);

/* Expires pending queries and tombstones first seen before now - ttl. */
void ens_join_expire(ens_join_t *j, double now);
/* The same, at most `max` entries (pending queries first, oldest first):
 * what is due and left over expires at a later call. Returns 1 when due
 * entries are left, else 0. */
int ens_join_expire_some(ens_join_t *j, double now, size_t max);

/* Changes the limits (a config reload); a smaller max_pending evicts. */
void ens_join_set_limits(ens_join_t *j, size_t max_pending, double ttl, double now);

/* Saved state: query key[0..len) joined before a restart. It gets a
 * tombstone from now (unless the key is known), so that its predictions
 * and label delivered again are late, not a new query. Counts nothing. */
void ens_join_restore_joined(ens_join_t *j, const void *key, size_t len, double now);

/* Calls fn with the key of every tombstone, oldest first (what a saved
 * state must hold for ens_join_restore_joined). */
typedef void (*ens_join_key_fn)(void *ud, const void *key, size_t len);
void ens_join_each_joined(const ens_join_t *j, ens_join_key_fn fn, void *ud);

size_t ens_join_pending(const ens_join_t *j);
/* 1 if query key[0..len) is pending (seen, neither joined nor gone). */
int ens_join_is_pending(const ens_join_t *j, const void *key, size_t len);
const ens_join_stats_t *ens_join_stats(const ens_join_t *j);

#endif
