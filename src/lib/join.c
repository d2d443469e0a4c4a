/* join.c - the join of predictions and labels (see join.h).
 *
 * Entries live in a uthash table keyed by the query bytes and on one of two
 * doubly linked lists in arrival order: pending queries (oldest first, for
 * ttl expiry and eviction) and tombstones of joined queries (oldest first,
 * for ttl expiry). Both lists are ordered by their time stamps because
 * entries are appended with a non-decreasing `now`.
 */
#include "ensembled/join.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "ensembled/data.h"
#include "ensembled/xalloc.h"

#define NO_LABEL 0xFFFF

typedef struct entry_s {
    UT_hash_handle hh;
    struct entry_s *prev, *next; /* on pending or tombs */
    double t;                    /* first seen (pending) or joined (tomb) */
    int joined;                  /* 1: a tombstone */
    unsigned label;              /* true label or NO_LABEL */
    double label_ts;             /* the label's row time */
    ens_join_pred_t *preds;      /* answers so far */
    uint32_t npreds, cap;        /* answers held, allocated */
    size_t keylen;
    unsigned char key[]; /* query bytes */
} entry_t;

struct ens_join_s {
    entry_t *table;   /* every entry, by key */
    entry_t *pending; /* pending entries, oldest first */
    entry_t *tombs;   /* joined entries, oldest first */
    size_t npending;
    size_t ntombs;
    size_t max_pending;
    double ttl;
    ens_join_emit_fn emit;
    void *ud;
    ens_join_stats_t st;
};

ens_join_t *ens_join_new(size_t max_pending, double ttl, ens_join_emit_fn emit, void *ud)
{
    if (max_pending == 0 || !(ttl > 0))
        return NULL;
    ens_join_t *j = ens_xcalloc(1, sizeof(*j));
    j->max_pending = max_pending;
    j->ttl = ttl;
    j->emit = emit;
    j->ud = ud;
    return j;
}

static void drop(ens_join_t *j, entry_t *e)
{
    HASH_DEL(j->table, e);
    if (e->joined) {
        DL_DELETE(j->tombs, e);
        j->ntombs--;
    } else {
        DL_DELETE(j->pending, e);
        j->npending--;
    }
    free(e->preds);
    free(e);
}

void ens_join_destroy(ens_join_t **jp)
{
    if (!jp || !*jp)
        return;
    ens_join_t *j = *jp;
    entry_t *e, *tmp;
    HASH_ITER(hh, j->table, e, tmp)
    {
        drop(j, e);
    }
    free(j);
    *jp = NULL;
}

/* Finds the entry of key, creating a pending one (evicting the oldest
 * pending query when full) if absent. */
static entry_t *get(ens_join_t *j, const void *key, size_t len, double now)
{
    entry_t *e = NULL;
    HASH_FIND(hh, j->table, key, len, e);
    if (e)
        return e;
    if (j->npending >= j->max_pending) {
        drop(j, j->pending);
        j->st.evicted++;
    }
    e = ens_xcalloc(1, sizeof(*e) + len);
    memcpy(e->key, key, len);
    e->keylen = len;
    e->t = now;
    e->label = NO_LABEL;
    HASH_ADD(hh, j->table, key, len, e);
    DL_APPEND(j->pending, e);
    j->npending++;
    j->st.queries++;
    return e;
}

/* Emits a complete entry and turns it into a tombstone. Tombstones are
 * capped like pending queries: the oldest is forgotten first. */
static void complete(ens_join_t *j, entry_t *e, double now)
{
    j->emit(j->ud, (uint8_t)e->label, e->preds, e->npreds, e->label_ts);
    j->st.joined++;
    DL_DELETE(j->pending, e);
    j->npending--;
    free(e->preds);
    e->preds = NULL;
    e->npreds = e->cap = 0;
    e->joined = 1;
    e->t = now;
    if (j->ntombs >= j->max_pending)
        drop(j, j->tombs);
    DL_APPEND(j->tombs, e);
    j->ntombs++;
}

/* Adds one answer to a pending entry; a model's second answer is counted
 * and ignored. */
static void add_answer(ens_join_t *j, entry_t *e, ens_join_pred_t p)
{
    for (size_t i = 0; i < e->npreds; i++) {
        if (e->preds[i].model == p.model) {
            j->st.dup_predictions++;
            return;
        }
    }
    if (e->npreds == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 4;
        e->preds = ens_xreallocarray(e->preds, e->cap, sizeof(*e->preds));
    }
    e->preds[e->npreds++] = p;
}

void ens_join_predictions(ens_join_t *j, const void *key, size_t len, const ens_join_pred_t *preds,
                          size_t n, double now)
{
    entry_t *e = get(j, key, len, now);
    if (e->joined) {
        j->st.late_predictions += n;
        return;
    }
    for (size_t i = 0; i < n; i++)
        add_answer(j, e, preds[i]);
    if (e->label != NO_LABEL && e->npreds > 0)
        complete(j, e, now);
}

void ens_join_prediction(ens_join_t *j, const void *key, size_t len, uint16_t model, uint8_t sym,
                         double now)
{
    ens_join_pred_t p = {model, sym};
    ens_join_predictions(j, key, len, &p, 1, now);
}

void ens_join_label(ens_join_t *j, const void *key, size_t len, uint8_t y, double now, double ts)
{
    entry_t *e = get(j, key, len, now);
    if (e->joined) {
        j->st.late_labels++;
        return;
    }
    if (e->label != NO_LABEL) {
        j->st.dup_labels++;
        return;
    }
    e->label = y;
    e->label_ts = ts;
    if (e->npreds > 0)
        complete(j, e, now);
}

void ens_join_expire(ens_join_t *j, double now)
{
    while (j->pending && j->pending->t + j->ttl < now) {
        drop(j, j->pending);
        j->st.expired++;
    }
    while (j->tombs && j->tombs->t + j->ttl < now)
        drop(j, j->tombs);
}

void ens_join_set_limits(ens_join_t *j, size_t max_pending, double ttl, double now)
{
    if (max_pending > 0)
        j->max_pending = max_pending;
    if (ttl > 0)
        j->ttl = ttl;
    while (j->npending > j->max_pending) {
        drop(j, j->pending);
        j->st.evicted++;
    }
    ens_join_expire(j, now);
}

size_t ens_join_pending(const ens_join_t *j)
{
    return j->npending;
}

void ens_join_restore_joined(ens_join_t *j, const void *key, size_t len, double now)
{
    entry_t *e = NULL;
    HASH_FIND(hh, j->table, key, len, e);
    if (e)
        return;
    if (j->ntombs >= j->max_pending)
        drop(j, j->tombs);
    e = ens_xcalloc(1, sizeof(*e) + len);
    memcpy(e->key, key, len);
    e->keylen = len;
    e->t = now;
    e->joined = 1;
    e->label = NO_LABEL;
    HASH_ADD(hh, j->table, key, len, e);
    DL_APPEND(j->tombs, e);
    j->ntombs++;
}

void ens_join_each_joined(const ens_join_t *j, ens_join_key_fn fn, void *ud)
{
    for (const entry_t *e = j->tombs; e; e = e->next)
        fn(ud, e->key, e->keylen);
}

int ens_join_is_pending(const ens_join_t *j, const void *key, size_t len)
{
    entry_t *e = NULL;
    HASH_FIND(hh, j->table, key, len, e);
    return e && !e->joined;
}

const ens_join_stats_t *ens_join_stats(const ens_join_t *j)
{
    return &j->st;
}
