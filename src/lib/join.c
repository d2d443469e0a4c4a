/* join.c - the join of predictions and labels (see join.h).
 *
 * Entries are found by the query bytes through an open-addressing index
 * (linear probing over slots of hash and entry, at most half full, deletion
 * by backward shift), and live on one of two doubly linked lists in arrival
 * order: pending queries (oldest first, for ttl expiry and eviction) and
 * tombstones of joined queries (oldest first, for ttl expiry). Both lists
 * are ordered by their time stamps because entries are appended with a
 * non-decreasing `now`.
 *
 * The index holds every pending query and tombstone, hundreds of thousands
 * under load, and every event looks its query up (a new query misses): the
 * probe reads contiguous slots and compares full 64-bit hashes, so a lookup
 * costs about one cache miss for the slots and one for the entry, where a
 * chained table walks a chain of entries, a miss each.
 *
 * Nothing is allocated per event once a stream runs: entries whose key fits
 * KEY_POOLED bytes (integer queries and short strings) and answer arrays of
 * up to POOL_ANSWERS answers come from free lists that dropped entries and
 * joined queries give back to; longer keys and answer arrays are allocated
 * as they come. A free list holds at most POOL_MAX items, so a burst of
 * expiry hands its memory back.
 */
#include "ensembled/join.h"

#include <stdlib.h>
#include <string.h>
#include <utlist.h>
#include <xxhash.h>

#include "ensembled/data.h"
#include "ensembled/open.h"
#include "ensembled/xalloc.h"

#define NO_LABEL 0xFFFF
#define KEY_POOLED 16
#define POOL_ANSWERS 8
#define POOL_MAX 4096

/* A free list of same-sized blocks, linked through their first bytes. */
typedef struct {
    void *head;
    size_t n;
} pool_t;

static void *pool_take(pool_t *p, size_t size)
{
    void *b = p->head;
    if (!b)
        return ens_xmalloc(size);
    memcpy(&p->head, b, sizeof(void *));
    p->n--;
    return b;
}

static void pool_give(pool_t *p, void *b)
{
    if (p->n >= POOL_MAX) {
        free(b);
        return;
    }
    memcpy(b, &p->head, sizeof(void *));
    p->head = b;
    p->n++;
}

static void pool_clear(pool_t *p)
{
    while (p->head) {
        void *b = p->head;
        memcpy(&p->head, b, sizeof(void *));
        free(b);
    }
    p->n = 0;
}

typedef struct entry_s {
    uint64_t hash;               /* of key: its index slot's */
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

typedef struct {
    uint64_t hash;
    entry_t *e; /* NULL: empty */
} slot_t;

struct ens_join_s {
    slot_t *slots;    /* the index of every entry: cap slots, a power of 2 */
    size_t cap, used; /* slots, and slots holding an entry (<= cap / 2) */
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
    pool_t entries; /* free entries of KEY_POOLED key bytes */
    pool_t answers; /* free arrays of POOL_ANSWERS answers */
};

ens_join_t *ens_join_new(size_t max_pending, double ttl, ens_join_emit_fn emit, void *ud)
{
    if (max_pending == 0 || !(ttl > 0))
        return NULL;
    ens_join_t *j = ens_xcalloc(1, sizeof(*j));
    j->cap = 64;
    j->slots = ens_xcalloc(j->cap, sizeof(slot_t));
    j->max_pending = max_pending;
    j->ttl = ttl;
    j->emit = emit;
    j->ud = ud;
    return j;
}

static uint64_t key_hash(const void *key, size_t len)
{
    return XXH3_64bits(key, len);
}

/* The entry of key (its hash h), or NULL. */
static entry_t *find(const ens_join_t *j, const void *key, size_t len, uint64_t h)
{
    size_t mask = j->cap - 1;
    for (size_t i = h & mask; j->slots[i].e; i = (i + 1) & mask) {
        const entry_t *e = j->slots[i].e;
        if (j->slots[i].hash == h && e->keylen == len && memcmp(e->key, key, len) == 0)
            return j->slots[i].e;
    }
    return NULL;
}

static void place(slot_t *slots, size_t cap, entry_t *e)
{
    size_t i = e->hash & (cap - 1);
    while (slots[i].e)
        i = (i + 1) & (cap - 1);
    slots[i].hash = e->hash;
    slots[i].e = e;
}

/* Adds e (its hash set) to the index, doubling it past half full. */
static void index_add(ens_join_t *j, entry_t *e)
{
    if (2 * (j->used + 1) > j->cap) {
        size_t cap = 2 * j->cap;
        slot_t *slots = ens_xcalloc(cap, sizeof(slot_t));
        for (size_t i = 0; i < j->cap; i++)
            if (j->slots[i].e)
                place(slots, cap, j->slots[i].e);
        free(j->slots);
        j->slots = slots;
        j->cap = cap;
    }
    place(j->slots, j->cap, e);
    j->used++;
}

/* Removes e from the index: the slots after it that probed past its slot
 * move back, so that every probe still finds its entry without gaps. */
static void index_del(ens_join_t *j, const entry_t *e)
{
    size_t mask = j->cap - 1, i = e->hash & mask;
    while (j->slots[i].e != e)
        i = (i + 1) & mask;
    for (size_t k = (i + 1) & mask; j->slots[k].e; k = (k + 1) & mask) {
        size_t home = j->slots[k].hash & mask;
        /* Slot k may fill the hole at i unless its home lies in (i, k]. */
        if (((k - home) & mask) >= ((k - i) & mask)) {
            j->slots[i] = j->slots[k];
            i = k;
        }
    }
    j->slots[i].e = NULL;
    j->used--;
}

/* A new entry for key (hash h), not yet indexed nor listed. */
static entry_t *new_entry(ens_join_t *j, const void *key, size_t len, uint64_t h, double now)
{
    entry_t *e = len <= KEY_POOLED ? pool_take(&j->entries, sizeof(*e) + KEY_POOLED)
                                   : ens_xmalloc(sizeof(*e) + len);
    memset(e, 0, sizeof(*e));
    memcpy(e->key, key, len);
    e->keylen = len;
    e->hash = h;
    e->t = now;
    e->label = NO_LABEL;
    return e;
}

/* Gives back e's answers. */
static void free_answers(ens_join_t *j, entry_t *e)
{
    if (e->cap == POOL_ANSWERS)
        pool_give(&j->answers, e->preds);
    else
        free(e->preds);
    e->preds = NULL;
    e->npreds = e->cap = 0;
}

static void drop(ens_join_t *j, entry_t *e)
{
    index_del(j, e);
    if (e->joined) {
        DL_DELETE(j->tombs, e);
        j->ntombs--;
    } else {
        DL_DELETE(j->pending, e);
        j->npending--;
    }
    free_answers(j, e);
    if (e->keylen <= KEY_POOLED)
        pool_give(&j->entries, e);
    else
        free(e);
}

void ens_join_destroy(ens_join_t **jp)
{
    if (!jp || !*jp)
        return;
    ens_join_t *j = *jp;
    while (j->pending)
        drop(j, j->pending);
    while (j->tombs)
        drop(j, j->tombs);
    pool_clear(&j->entries);
    pool_clear(&j->answers);
    free(j->slots);
    free(j);
    *jp = NULL;
}

/* Finds the entry of key, creating a pending one (evicting the oldest
 * pending query when full) if absent. */
static entry_t *get(ens_join_t *j, const void *key, size_t len, double now)
{
    uint64_t h = key_hash(key, len);
    entry_t *e = find(j, key, len, h);
    if (e)
        return e;
    if (j->npending >= j->max_pending) {
        drop(j, j->pending);
        j->st.evicted++;
    }
    e = new_entry(j, key, len, h, now);
    index_add(j, e);
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
    free_answers(j, e);
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
    if (e->cap == 0) {
        e->preds = pool_take(&j->answers, POOL_ANSWERS * sizeof(*e->preds));
        e->cap = POOL_ANSWERS;
    } else if (e->npreds == e->cap) {
        /* Past the pooled size: a heap array, the pooled one given back. */
        ens_join_pred_t *more = ens_xreallocarray(NULL, 2 * e->cap, sizeof(*more));
        memcpy(more, e->preds, e->npreds * sizeof(*more));
        if (e->cap == POOL_ANSWERS)
            pool_give(&j->answers, e->preds);
        else
            free(e->preds);
        e->preds = more;
        e->cap *= 2;
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

int ens_join_expire_some(ens_join_t *j, double now, size_t max)
{
    size_t n = 0;
    for (; n < max && j->pending && j->pending->t + j->ttl < now; n++) {
        drop(j, j->pending);
        j->st.expired++;
    }
    for (; n < max && j->tombs && j->tombs->t + j->ttl < now; n++)
        drop(j, j->tombs);
    return (j->pending && j->pending->t + j->ttl < now) || (j->tombs && j->tombs->t + j->ttl < now);
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
    uint64_t h = key_hash(key, len);
    if (find(j, key, len, h))
        return;
    if (j->ntombs >= j->max_pending)
        drop(j, j->tombs);
    entry_t *e = new_entry(j, key, len, h, now);
    e->joined = 1;
    index_add(j, e);
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
    const entry_t *e = find(j, key, len, key_hash(key, len));
    return e && !e->joined;
}

const ens_join_stats_t *ens_join_stats(const ens_join_t *j)
{
    return &j->st;
}
