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
#include "ensembled/open.h"
#include "ensembled/xalloc.h"

#define NO_LABEL 0xFFFF

typedef struct entry_s {
    UT_hash_handle hh;
    struct entry_s *prev, *next; /* on pending or tombs */
    double t;                    /* first seen (pending) or joined (tomb) */
    int joined;                  /* 1: a tombstone */
    unsigned label;              /* true label or NO_LABEL */
    double label_ts;             /* the label's row time */
    uint64_t label_key;          /* open answers: the truth's key */
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
    int open; /* answers compared by key (ens_join_set_open) */
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

static int by_model(const void *a, const void *b)
{
    const ens_join_pred_t *p = a, *q = b;
    return (p->model > q->model) - (p->model < q->model);
}

/* Open answers: the entry's answers become their classes (in model order)
 * and the truth its class. The answers are about to be freed, so they are
 * rewritten in place. */
static uint8_t open_pattern(entry_t *e)
{
    size_t n = e->npreds;
    qsort(e->preds, n, sizeof(*e->preds), by_model);
    uint64_t *keys = ens_xmalloc((n ? n : 1) * sizeof(uint64_t));
    uint8_t *x = ens_xmalloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        keys[i] = e->preds[i].key;
        x[i] = e->preds[i].sym == ENS_SYM_ABSTAIN ? ENS_SYM_ABSTAIN : 0;
    }
    uint8_t y = ens_open_pattern(keys, x, n, e->label_key);
    for (size_t i = 0; i < n; i++)
        e->preds[i].sym = x[i];
    free(keys);
    free(x);
    return y;
}

/* Emits a complete entry and turns it into a tombstone. Tombstones are
 * capped like pending queries: the oldest is forgotten first. */
static void complete(ens_join_t *j, entry_t *e, double now)
{
    uint8_t y = j->open ? open_pattern(e) : (uint8_t)e->label;
    j->emit(j->ud, y, e->preds, e->npreds, e->label_ts);
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
    ens_join_pred_t p = {model, sym, -1, 0};
    ens_join_predictions(j, key, len, &p, 1, now);
}

void ens_join_set_open(ens_join_t *j, int open)
{
    j->open = open;
}

void ens_join_label_key(ens_join_t *j, const void *key, size_t len, uint64_t answer, double now,
                        double ts)
{
    entry_t *e = get(j, key, len, now);
    if (!e->joined && e->label == NO_LABEL)
        e->label_key = answer;
    ens_join_label(j, key, len, 0, now, ts);
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
