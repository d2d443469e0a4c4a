/* test_join.c - the join of predictions and labels (join.h) against a
 * reference model.
 *
 * The model is a plain array of entries, each pending or a tombstone with
 * an arrival number; "oldest" is the smallest number, found by a scan. It
 * follows join.h and docs/protocol.md "Joins": a query is pending until its
 * label and one prediction are in; then it emits once and leaves a
 * tombstone for ttl, against which later events count as late; duplicates
 * keep the first; ens_join_expire drops what is older than ttl; a full
 * pending set evicts its oldest. Tombstones are also capped at max_pending,
 * oldest forgotten first (join.c, complete()). Random operation sequences
 * over a small key space compare every emitted row and every counter after
 * each step, with the accounting invariant
 * queries == joined + pending + expired + evicted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ensembled/data.h"
#include "ensembled/join.h"
#include "testutil.h"

#define NKEYS 24   /* key space: collisions, late and duplicate events happen */
#define NMODELS 12 /* model ids 0..11: rows past the join's pooled 8 answers */
#define MAXROW 64

/* ---- what the join emitted --------------------------------------------- */

typedef struct {
    uint8_t y;
    double ts;
    ens_join_pred_t preds[MAXROW];
    size_t n;
} row_t;

typedef struct {
    row_t rows[4];
    size_t nrows; /* since the last reset */
} sink_t;

static void on_emit(void *ud, uint8_t y, const ens_join_pred_t *preds, size_t n, double ts)
{
    sink_t *s = ud;
    assert_true(s->nrows < 4);
    assert_true(n <= MAXROW);
    row_t *r = &s->rows[s->nrows++];
    r->y = y;
    r->ts = ts;
    r->n = n;
    memcpy(r->preds, preds, n * sizeof(*preds));
}

/* ---- the reference model ----------------------------------------------- */

enum { FREE, PENDING, TOMB };

typedef struct {
    int state;
    uint64_t order; /* arrival on its list: smaller is older */
    double t;       /* first seen (pending) or joined (tomb) */
    int label;      /* -1: none yet */
    double label_ts;
    ens_join_pred_t preds[NMODELS];
    size_t npreds;
} ref_entry_t;

typedef struct {
    ref_entry_t e[NKEYS]; /* by key index */
    size_t max_pending;
    double ttl;
    uint64_t seq;
    ens_join_stats_t st;
    row_t row; /* the row emitted by the last operation */
    int emitted;
} ref_t;

static size_t ref_count(const ref_t *r, int state)
{
    size_t n = 0;
    for (size_t k = 0; k < NKEYS; k++)
        n += r->e[k].state == state;
    return n;
}

/* The oldest entry in state, or NULL. */
static ref_entry_t *ref_oldest(ref_t *r, int state)
{
    ref_entry_t *best = NULL;
    for (size_t k = 0; k < NKEYS; k++)
        if (r->e[k].state == state && (!best || r->e[k].order < best->order))
            best = &r->e[k];
    return best;
}

/* The entry of key k, opened as a new pending query if the key is free. */
static ref_entry_t *ref_get(ref_t *r, size_t k, double now)
{
    ref_entry_t *e = &r->e[k];
    if (e->state != FREE)
        return e;
    if (ref_count(r, PENDING) >= r->max_pending) {
        ref_oldest(r, PENDING)->state = FREE;
        r->st.evicted++;
    }
    memset(e, 0, sizeof(*e));
    e->state = PENDING;
    e->order = ++r->seq;
    e->t = now;
    e->label = -1;
    r->st.queries++;
    return e;
}

static void ref_complete(ref_t *r, ref_entry_t *e, double now)
{
    r->emitted = 1;
    r->row.y = (uint8_t)e->label;
    r->row.ts = e->label_ts;
    r->row.n = e->npreds;
    memcpy(r->row.preds, e->preds, e->npreds * sizeof(e->preds[0]));
    r->st.joined++;
    if (ref_count(r, TOMB) >= r->max_pending)
        ref_oldest(r, TOMB)->state = FREE;
    e->state = TOMB;
    e->order = ++r->seq;
    e->t = now;
}

static void ref_prediction(ref_t *r, size_t k, uint16_t model, uint8_t sym, double now)
{
    ref_entry_t *e = ref_get(r, k, now);
    if (e->state == TOMB) {
        r->st.late_predictions++;
        return;
    }
    for (size_t i = 0; i < e->npreds; i++) {
        if (e->preds[i].model == model) {
            r->st.dup_predictions++;
            return;
        }
    }
    e->preds[e->npreds].model = model;
    e->preds[e->npreds++].sym = sym;
    if (e->label >= 0)
        ref_complete(r, e, now);
}

static void ref_label(ref_t *r, size_t k, uint8_t y, double now, double ts)
{
    ref_entry_t *e = ref_get(r, k, now);
    if (e->state == TOMB) {
        r->st.late_labels++;
    } else if (e->label >= 0) {
        r->st.dup_labels++;
    } else {
        e->label = y;
        e->label_ts = ts;
        if (e->npreds > 0)
            ref_complete(r, e, now);
    }
}

/* Drops what is older than ttl: "first seen before now - ttl". */
static void ref_expire(ref_t *r, double now)
{
    for (size_t k = 0; k < NKEYS; k++) {
        ref_entry_t *e = &r->e[k];
        if (e->state != FREE && e->t + r->ttl < now) {
            r->st.expired += e->state == PENDING;
            e->state = FREE;
        }
    }
}

static void ref_set_limits(ref_t *r, size_t max_pending, double ttl, double now)
{
    if (max_pending > 0)
        r->max_pending = max_pending;
    if (ttl > 0)
        r->ttl = ttl;
    while (ref_count(r, PENDING) > r->max_pending) {
        ref_oldest(r, PENDING)->state = FREE;
        r->st.evicted++;
    }
    ref_expire(r, now);
}

/* ---- comparing --------------------------------------------------------- */

#define LONG_KEY 20 /* past the join's pooled key size */

/* Key index k as bytes: 1 byte below NKEYS/2, else LONG_KEY bytes whose
 * first is a 1-byte key's, so that keys differing only in length must stay
 * apart, and both the join's pooled and its allocated entries are used. */
static size_t key_bytes(size_t k, unsigned char out[LONG_KEY])
{
    if (k < NKEYS / 2) {
        out[0] = (unsigned char)k;
        return 1;
    }
    memset(out, 0, LONG_KEY);
    out[0] = (unsigned char)(k - NKEYS / 2);
    return LONG_KEY;
}

static int pred_cmp(const void *a, const void *b)
{
    const ens_join_pred_t *x = a, *y = b;
    return x->model != y->model ? (int)x->model - (int)y->model : (int)x->sym - (int)y->sym;
}

/* The same label, time and set of (model, sym). */
static void assert_same_row(row_t *got, row_t *want)
{
    assert_int_equal(got->y, want->y);
    assert_true(got->ts == want->ts);
    assert_int_equal(got->n, want->n);
    qsort(got->preds, got->n, sizeof(got->preds[0]), pred_cmp);
    qsort(want->preds, want->n, sizeof(want->preds[0]), pred_cmp);
    for (size_t i = 0; i < got->n; i++) {
        assert_int_equal(got->preds[i].model, want->preds[i].model);
        assert_int_equal(got->preds[i].sym, want->preds[i].sym);
    }
}

static void assert_same_stats(const ens_join_t *j, const ref_t *r)
{
    const ens_join_stats_t *s = ens_join_stats(j);
    assert_int_equal(s->queries, r->st.queries);
    assert_int_equal(s->joined, r->st.joined);
    assert_int_equal(s->expired, r->st.expired);
    assert_int_equal(s->evicted, r->st.evicted);
    assert_int_equal(s->late_predictions, r->st.late_predictions);
    assert_int_equal(s->late_labels, r->st.late_labels);
    assert_int_equal(s->dup_predictions, r->st.dup_predictions);
    assert_int_equal(s->dup_labels, r->st.dup_labels);
    assert_int_equal(ens_join_pending(j), ref_count(r, PENDING));
    assert_int_equal(s->queries, s->joined + ens_join_pending(j) + s->expired + s->evicted);
}

/* ---- random sequences --------------------------------------------------- */

/* One random operation on both; returns nothing, checks everything. */
static void random_step(tu_rng_t *g, ens_join_t *j, sink_t *sink, ref_t *r, double *now)
{
    unsigned char key[LONG_KEY];
    size_t k = tu_below(g, NKEYS), len = key_bytes(k, key), op = tu_below(g, 100);
    sink->nrows = 0;
    r->emitted = 0;
    if (op < 45) {
        uint16_t model = (uint16_t)tu_below(g, NMODELS);
        uint8_t sym = tu_below(g, 5) == 0 ? ENS_SYM_ABSTAIN : (uint8_t)tu_below(g, 4);
        ens_join_prediction(j, key, len, model, sym, *now);
        ref_prediction(r, k, model, sym, *now);
    } else if (op < 75) {
        uint8_t y = (uint8_t)tu_below(g, 4);
        double ts = (double)tu_below(g, 1000);
        ens_join_label(j, key, len, y, *now, ts);
        ref_label(r, k, y, *now, ts);
    } else if (op < 85) {
        ens_join_expire(j, *now);
        ref_expire(r, *now);
    } else if (op < 99) {
        *now += (double)tu_below(g, 4);
    } else {
        size_t mp = tu_below(g, 12); /* 0: unchanged */
        double ttl = (double)tu_below(g, 30) - 2;
        ens_join_set_limits(j, mp, ttl, *now);
        ref_set_limits(r, mp, ttl, *now);
    }
    assert_int_equal(sink->nrows, (size_t)r->emitted);
    if (r->emitted)
        assert_same_row(&sink->rows[0], &r->row);
    assert_same_stats(j, r);
}

static void test_join_random_vs_reference(void **state)
{
    (void)state;
    uint64_t totals[8] = {0};
    for (uint64_t seed = 1; seed <= 12; seed++) {
        tu_rng_t g;
        tu_seed(&g, seed * 7919);
        sink_t sink = {0};
        static ref_t r;
        memset(&r, 0, sizeof(r));
        r.max_pending = 2 + tu_below(&g, 10);
        r.ttl = (double)(3 + tu_below(&g, 25));
        ens_join_t *j = ens_join_new(r.max_pending, r.ttl, on_emit, &sink);
        assert_non_null(j);
        double now = 1000;
        for (int step = 0; step < 5000; step++)
            random_step(&g, j, &sink, &r, &now);
        const ens_join_stats_t *s = ens_join_stats(j);
        uint64_t v[8] = {s->joined,      s->expired,         s->evicted,    s->late_predictions,
                         s->late_labels, s->dup_predictions, s->dup_labels, s->queries};
        for (int i = 0; i < 8; i++)
            totals[i] += v[i];
        ens_join_destroy(&j);
        assert_null(j);
    }
    /* The sequences exercised every path, so agreement means something. */
    for (int i = 0; i < 8; i++)
        if (totals[i] < 50)
            fail_msg("counter %d reached only %llu", i, (unsigned long long)totals[i]);
}

/* ---- many keys: the index grows, shrinks by deletion, still finds ----- */

#define MANY 40000

/* Key i: "k" and the decimal digits of i mod MANY / 2, then "x" for the
 * second half: keys that are prefixes of others ("k1", "k12", "k12x")
 * must stay apart. */
static size_t many_key(size_t i, unsigned char *out)
{
    int n = snprintf((char *)out, 16, "k%zu%s", i % (MANY / 2), i >= MANY / 2 ? "x" : "");
    return (size_t)n;
}

static void count_emit(void *ud, uint8_t y, const ens_join_pred_t *p, size_t n, double ts)
{
    (void)y, (void)p, (void)n, (void)ts;
    (*(size_t *)ud)++;
}

/* 40,000 queries held at once (the index doubles from 64 slots to 131,072),
 * a third joined (tombstones), then most pending ones evicted (deletions
 * moving slots back): every later event finds exactly the entry the test
 * knows it has, counted as a late, duplicate or new query accordingly. */
static void test_join_index_many_keys(void **state)
{
    (void)state;
    size_t emitted = 0;
    ens_join_t *j = ens_join_new(MANY, 1e9, count_emit, &emitted);
    unsigned char key[16];
    /* Distinct keys: the generator must not repeat one. */
    for (size_t i = 0; i < MANY; i++) {
        size_t len = many_key(i, key);
        ens_join_prediction(j, key, len, 0, 1, 1.0);
    }
    const ens_join_stats_t *s = ens_join_stats(j);
    assert_int_equal(s->queries, MANY);
    assert_int_equal(ens_join_pending(j), MANY);
    size_t joined = 0;
    for (size_t i = 0; i < MANY; i += 3, joined++)
        ens_join_label(j, key, many_key(i, key), 1, 2.0, 2.0);
    assert_int_equal(emitted, joined);
    assert_int_equal(ens_join_pending(j), MANY - joined);
    /* Again every prediction: late for the joined, duplicate for the rest,
     * no new query. */
    for (size_t i = 0; i < MANY; i++)
        ens_join_prediction(j, key, many_key(i, key), 0, 1, 3.0);
    assert_int_equal(s->queries, MANY);
    assert_int_equal(s->late_predictions, joined);
    assert_int_equal(s->dup_predictions, MANY - joined);
    /* Keep 1,000 pending: the oldest others are evicted. */
    ens_join_set_limits(j, 1000, 0, 4.0);
    size_t evicted = MANY - joined - 1000;
    assert_int_equal(s->evicted, evicted);
    /* A label for every key, youngest first: a join for each of the 1,000
     * still pending (the youngest not joined), whose tombstones push out
     * the 1,000 oldest (at most 1,000 are kept now: keys 0, 3, ...,
     * 2,997); late for the other tombstones; a new pending query for each
     * evicted key and each forgotten tombstone, evicting each other (only
     * 1,000 may wait). */
    size_t before = emitted;
    for (size_t i = MANY; i-- > 0;)
        ens_join_label(j, key, many_key(i, key), 1, 5.0, 5.0);
    assert_int_equal(emitted - before, 1000);
    assert_int_equal(s->late_labels, joined - 1000);
    assert_int_equal(s->queries, MANY + evicted + 1000);
    assert_int_equal(s->evicted, 2 * evicted);
    assert_int_equal(ens_join_pending(j), 1000);
    assert_int_equal(s->queries, s->joined + ens_join_pending(j) + s->expired + s->evicted);
    ens_join_destroy(&j);
}

/* ---- fixed scenarios ---------------------------------------------------- */

static void test_join_new_rejects_bad_limits(void **state)
{
    (void)state;
    sink_t sink = {0};
    assert_null(ens_join_new(0, 10, on_emit, &sink));
    assert_null(ens_join_new(10, 0, on_emit, &sink));
    assert_null(ens_join_new(10, -1, on_emit, &sink));
    assert_null(ens_join_new(10, NAN, on_emit, &sink));
    ens_join_t *j = NULL;
    ens_join_destroy(&j);
    ens_join_destroy(NULL);
    j = ens_join_new(1, 1e-3, on_emit, &sink);
    assert_non_null(j);
    ens_join_destroy(&j);
}

/* Label first or prediction first: one row, with the label's ts, once. */
static void test_join_either_order_emits_once(void **state)
{
    (void)state;
    sink_t sink = {0};
    ens_join_t *j = ens_join_new(10, 60, on_emit, &sink);
    ens_join_label(j, "a", 1, 2, 1.0, 123.5);
    assert_int_equal(sink.nrows, 0);
    ens_join_prediction(j, "a", 1, 7, ENS_SYM_ABSTAIN, 2.0);
    assert_int_equal(sink.nrows, 1);
    assert_int_equal(sink.rows[0].y, 2);
    assert_true(sink.rows[0].ts == 123.5);
    assert_int_equal(sink.rows[0].n, 1);
    assert_int_equal(sink.rows[0].preds[0].model, 7);
    assert_int_equal(sink.rows[0].preds[0].sym, ENS_SYM_ABSTAIN);
    ens_join_prediction(j, "b", 1, 1, 0, 3.0);
    ens_join_prediction(j, "b", 1, 1, 3, 3.0); /* duplicate: first kept */
    ens_join_prediction(j, "b", 1, 2, 1, 3.0);
    ens_join_label(j, "b", 1, 0, 4.0, 9.0);
    assert_int_equal(sink.nrows, 2);
    assert_int_equal(sink.rows[1].n, 2);
    assert_int_equal(sink.rows[1].preds[0].sym, 0);
    ens_join_prediction(j, "b", 1, 3, 1, 5.0);
    ens_join_label(j, "a", 1, 1, 5.0, 9.0);
    assert_int_equal(sink.nrows, 2);
    const ens_join_stats_t *s = ens_join_stats(j);
    assert_int_equal(s->queries, 2);
    assert_int_equal(s->joined, 2);
    assert_int_equal(s->dup_predictions, 1);
    assert_int_equal(s->late_predictions, 1);
    assert_int_equal(s->late_labels, 1);
    assert_int_equal(ens_join_pending(j), 0);
    ens_join_destroy(&j);
}

/* A source that delivers again (NATS after a crash): the same prediction
 * and label messages, replayed while the query's tombstone lives, add no
 * row; is_pending tells a pending query from a joined or unknown one. */
static void test_join_redelivery_counts_once(void **state)
{
    (void)state;
    sink_t sink = {0};
    ens_join_t *j = ens_join_new(10, 60, on_emit, &sink);
    assert_false(ens_join_is_pending(j, "q", 1));
    ens_join_prediction(j, "q", 1, 1, 0, 1.0);
    assert_true(ens_join_is_pending(j, "q", 1));
    assert_false(ens_join_is_pending(j, "r", 1));
    ens_join_label(j, "q", 1, 0, 2.0, 7.0);
    assert_false(ens_join_is_pending(j, "q", 1));
    for (int again = 0; again < 3; again++) {
        ens_join_prediction(j, "q", 1, 1, 0, 3.0 + again);
        ens_join_label(j, "q", 1, 0, 3.0 + again, 7.0);
    }
    assert_int_equal(sink.nrows, 1);
    assert_false(ens_join_is_pending(j, "q", 1));
    /* Redelivered while still pending: the first answer is kept. */
    ens_join_prediction(j, "p", 1, 2, 1, 10.0);
    ens_join_prediction(j, "p", 1, 2, 1, 11.0);
    ens_join_label(j, "p", 1, 1, 12.0, 8.0);
    ens_join_label(j, "p", 1, 1, 13.0, 8.0);
    assert_int_equal(sink.nrows, 2);
    assert_int_equal(sink.rows[1].n, 1);
    const ens_join_stats_t *s = ens_join_stats(j);
    assert_int_equal(s->queries, 2);
    assert_int_equal(s->joined, 2);
    assert_int_equal(s->late_predictions, 3);
    assert_int_equal(s->late_labels, 4);
    assert_int_equal(s->dup_predictions, 1);
    ens_join_destroy(&j);
}

/* A query expires strictly after ttl; its tombstone too, after which the
 * same key is a new query. */
static void test_join_ttl_boundaries(void **state)
{
    (void)state;
    sink_t sink = {0};
    ens_join_t *j = ens_join_new(10, 10, on_emit, &sink);
    ens_join_prediction(j, "p", 1, 0, 0, 100);
    ens_join_expire(j, 110); /* exactly ttl: kept */
    assert_int_equal(ens_join_pending(j), 1);
    ens_join_expire(j, 110.5);
    assert_int_equal(ens_join_pending(j), 0);
    assert_int_equal(ens_join_stats(j)->expired, 1);
    ens_join_label(j, "q", 1, 1, 200, 0);
    ens_join_prediction(j, "q", 1, 0, 1, 205); /* joins at 205 */
    ens_join_expire(j, 215);
    ens_join_label(j, "q", 1, 1, 215, 0);
    assert_int_equal(ens_join_stats(j)->late_labels, 1);
    ens_join_expire(j, 216);
    ens_join_label(j, "q", 1, 1, 216, 0); /* tombstone gone: a new query */
    assert_int_equal(ens_join_stats(j)->late_labels, 1);
    assert_int_equal(ens_join_stats(j)->queries, 3);
    assert_int_equal(ens_join_pending(j), 1);
    ens_join_destroy(&j);
}

static void count_key(void *ud, const void *key, size_t len)
{
    (void)key;
    (void)len;
    ++*(size_t *)ud;
}

static size_t tombs_of(const ens_join_t *j)
{
    size_t n = 0;
    ens_join_each_joined(j, count_key, &n);
    return n;
}

/* Bounded expiry drops at most `max` entries a call, the oldest pending
 * queries first, then tombstones, and once it reports nothing left due it
 * has dropped exactly what one unbounded ens_join_expire drops. */
static void test_join_expire_some_matches_expire(void **state)
{
    (void)state;
    enum { NQ = 1000, NT = 500, MAX = 7 };
    sink_t sink = {0};
    ens_join_t *a = ens_join_new(2 * NQ, 10, on_emit, &sink);
    ens_join_t *b = ens_join_new(2 * NQ, 10, on_emit, &sink);
    char key[32];
    for (int i = 0; i < NQ; i++) {
        int n = snprintf(key, sizeof(key), "p%d", i);
        ens_join_prediction(a, key, (size_t)n, 0, 0, 100 + 0.01 * i);
        ens_join_prediction(b, key, (size_t)n, 0, 0, 100 + 0.01 * i);
    }
    for (int i = 0; i < NT; i++) {
        int n = snprintf(key, sizeof(key), "t%d", i);
        ens_join_restore_joined(a, key, (size_t)n, 105 + 0.01 * i);
        ens_join_restore_joined(b, key, (size_t)n, 105 + 0.01 * i);
    }
    double now = 117.5; /* due: queries first seen before 107.5, tombstones before 107.5 */
    ens_join_expire(a, now);
    size_t due_q = NQ - ens_join_pending(a), due_t = NT - tombs_of(a);
    assert_int_equal(due_q, 750);
    assert_int_equal(due_t, 250);
    size_t calls = 0;
    while (ens_join_expire_some(b, now, MAX)) {
        calls++;
        size_t dropped = (NQ - ens_join_pending(b)) + (NT - tombs_of(b));
        assert_int_equal(dropped, calls * MAX);
        /* Oldest first: the pending queries left are the newest. */
        size_t gone = NQ - ens_join_pending(b);
        snprintf(key, sizeof(key), "p%zu", gone);
        assert_true(ens_join_is_pending(b, key, strlen(key)));
        if (gone > 0) {
            snprintf(key, sizeof(key), "p%zu", gone - 1);
            assert_false(ens_join_is_pending(b, key, strlen(key)));
        }
    }
    assert_int_equal(calls, (due_q + due_t) / MAX);
    assert_int_equal(ens_join_pending(b), ens_join_pending(a));
    assert_int_equal(tombs_of(b), tombs_of(a));
    assert_int_equal(ens_join_stats(b)->expired, ens_join_stats(a)->expired);
    for (int i = 0; i < NQ; i++) {
        int n = snprintf(key, sizeof(key), "p%d", i);
        assert_int_equal(ens_join_is_pending(b, key, (size_t)n),
                         ens_join_is_pending(a, key, (size_t)n));
    }
    assert_int_equal(ens_join_expire_some(b, now, MAX), 0);
    ens_join_destroy(&a);
    ens_join_destroy(&b);
}

/* A full pending set evicts its oldest; shrinking max_pending evicts the
 * oldest down to the new limit, and the survivors still join. */
static void test_join_max_pending_and_shrink(void **state)
{
    (void)state;
    sink_t sink = {0};
    ens_join_t *j = ens_join_new(10, 1000, on_emit, &sink);
    unsigned char k;
    for (k = 0; k < 12; k++)
        ens_join_prediction(j, &k, 1, 0, 1, k);
    const ens_join_stats_t *s = ens_join_stats(j);
    assert_int_equal(s->evicted, 2);
    assert_int_equal(ens_join_pending(j), 10);
    ens_join_set_limits(j, 3, 0, 20); /* ttl 0: unchanged */
    assert_int_equal(s->evicted, 9);
    assert_int_equal(ens_join_pending(j), 3);
    assert_int_equal(s->expired, 0);
    for (k = 9; k < 12; k++)
        ens_join_label(j, &k, 1, 1, 21, 0);
    assert_int_equal(sink.nrows, 3);
    assert_int_equal(ens_join_pending(j), 0);
    k = 8; /* evicted: a label opens a new query, emits nothing */
    ens_join_label(j, &k, 1, 1, 22, 0);
    assert_int_equal(sink.nrows, 3);
    assert_int_equal(s->queries, 13);
    assert_int_equal(s->queries, s->joined + ens_join_pending(j) + s->expired + s->evicted);
    /* A smaller ttl applies at once. */
    ens_join_set_limits(j, 0, 0.5, 30);
    assert_int_equal(ens_join_pending(j), 0);
    assert_int_equal(s->expired, 1);
    ens_join_destroy(&j);
}

/* Checks a row of models 0..n-1, model m answering m % 3, each once;
 * stores n, or SIZE_MAX if the row is wrong. */
static void on_emit_many(void *ud, uint8_t y, const ens_join_pred_t *preds, size_t n, double ts)
{
    (void)y;
    (void)ts;
    size_t *out = ud;
    unsigned char *seen = calloc(65536, 1);
    *out = n;
    for (size_t i = 0; i < n; i++) {
        if (seen[preds[i].model]++ || preds[i].sym != preds[i].model % 3)
            *out = SIZE_MAX;
    }
    free(seen);
}

/* One pending query answered by 40,000 models (model ids are uint16_t, so
 * up to 65,536 are legal): every answer must be in the row. join.c keeps the
 * answer capacity in a uint16_t that doubles 4, 8, ..., 32768 and then
 * wraps to (uint16_t)65536 = 0, so the 32,769th answer is written past a
 * 1-byte reallocation. */
static void test_join_many_models_one_query(void **state)
{
    (void)state;
    size_t got = 0;
    ens_join_t *j = ens_join_new(4, 1000, on_emit_many, &got);
    const size_t n = 40000;
    for (size_t m = 0; m < n; m++)
        ens_join_prediction(j, "q", 1, (uint16_t)m, (uint8_t)(m % 3), 1);
    assert_int_equal(ens_join_stats(j)->dup_predictions, 0);
    ens_join_label(j, "q", 1, 0, 2, 0);
    assert_int_equal(ens_join_stats(j)->joined, 1);
    assert_int_equal(got, n);
    ens_join_destroy(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_new_rejects_bad_limits),
        cmocka_unit_test(test_join_either_order_emits_once),
        cmocka_unit_test(test_join_redelivery_counts_once),
        cmocka_unit_test(test_join_ttl_boundaries),
        cmocka_unit_test(test_join_expire_some_matches_expire),
        cmocka_unit_test(test_join_max_pending_and_shrink),
        cmocka_unit_test(test_join_random_vs_reference),
        cmocka_unit_test(test_join_index_many_keys),
        cmocka_unit_test(test_join_many_models_one_query),
    };
    return cmocka_run_group_tests_name("join", tests, NULL, NULL);
}
