/* combine.c - vote, weighted vote and decision-table combiners (combine.h).
 *
 * A table is an array of entries in order of first appearance, keyed by k
 * bytes (the raw answer tuple for `table`, the agreement pattern for
 * `pattern`) through an open-addressing index. Each entry counts, per
 * outcome, the training rows that reached it: labels for `table`; for
 * `pattern`, the answer class holding the truth (0..k-1) or none (k).
 *
 * Fitting records each training row's entry and outcome, so that the
 * leave-one-out accuracy that follows looks nothing up again; and
 * ens_combiner_fit_best computes the weights and each row's weighted vote
 * once for the four kinds, since the tables fall back to that vote. Those
 * fits run for every prefix of every selection the daemon makes (pruning,
 * the final choice, the honest accuracy), so they are its hot path after
 * the information kernel (bench/select).
 */
#include "ensembled/combine.h"

#include <stdlib.h>
#include <string.h>

#include "combine_int.h"
#include "ensembled/err.h"
#include "ensembled/xalloc.h"

#define NO_LABEL 0xFFFF

typedef struct {
    uint8_t key[ENS_COMB_MAX_MODELS]; /* tuple or pattern, k bytes used, the rest 0 */
    uint32_t total;                   /* rows with this key */
} entry_t;

struct ens_combiner_s {
    ens_comb_kind_t kind;
    size_t k;                           /* models */
    size_t models[ENS_COMB_MAX_MODELS]; /* their column indices in the data */
    size_t L;                           /* labels */
    size_t noutcomes;                   /* counts per entry */
    double w[ENS_COMB_MAX_MODELS];      /* training accuracy per model */
    size_t order[ENS_COMB_MAX_MODELS];  /* model positions by decreasing accuracy */
    uint8_t prior;                      /* most frequent training label */
    double train_acc;                   /* leave-one-out accuracy on train */
    entry_t *ents;                      /* table entries in order of first appearance */
    uint32_t *cnt;                      /* noutcomes counts per entry */
    size_t nent, ent_cap;               /* entries used / allocated */
    uint32_t *slot;                     /* index: entry + 1, or 0 for empty */
    size_t mask;                        /* slots - 1 (a power of two), 0 before the first */
};

/* What the fits of one ens_combiner_fit_best share, per training row. */
typedef struct {
    uint8_t *fb;   /* the weighted vote (or prior) of each row */
    int have_fb;   /* fb is filled */
    uint32_t *eid; /* entry of each row in the table being fitted */
    uint8_t *outc; /* outcome of each row in that table */
    uint8_t *pred; /* leave-one-out prediction of each row (NULL: not kept) */
    uint8_t *reps; /* pattern: the answer classes of each row, rcap apart */
    uint8_t *ncls; /* pattern: how many classes each row has */
    size_t rcap;   /* classes a row can have: min(k, L) */
} fit_ctx_t;

static const char *const comb_names[] = {
    [ENS_COMB_VOTE] = "vote",
    [ENS_COMB_WEIGHTED] = "weighted",
    [ENS_COMB_TABLE] = "table",
    [ENS_COMB_PATTERN] = "pattern",
};

const char *ens_comb_name(ens_comb_kind_t kind)
{
    return (size_t)kind < ENS_COMB_COUNT ? comb_names[kind] : "?";
}

int ens_comb_parse(const char *name, ens_comb_kind_t *out)
{
    for (size_t i = 0; i < ENS_COMB_COUNT; i++) {
        if (strcmp(name, comb_names[i]) == 0) {
            *out = (ens_comb_kind_t)i;
            return 0;
        }
    }
    return ENS_EINVAL;
}

static int is_vote(uint8_t x)
{
    return x != ENS_SYM_ABSTAIN && x != ENS_SYM_MISSING;
}

/* The (weighted) vote over x[0..k): the label with the largest total, ties
 * to the label of the most accurate voter among the tied labels. Returns
 * NO_LABEL when nobody voted. */
static unsigned vote(const ens_combiner_t *c, const uint8_t *x, int weighted)
{
    double score[256];
    double best = 0;
    for (size_t i = 0; i < c->k; i++)
        if (is_vote(x[i]))
            score[x[i]] = 0;
    for (size_t i = 0; i < c->k; i++) {
        if (!is_vote(x[i]))
            continue;
        score[x[i]] += weighted ? c->w[i] : 1.0;
        if (score[x[i]] > best)
            best = score[x[i]];
    }
    for (size_t o = 0; o < c->k; o++) {
        uint8_t v = x[c->order[o]];
        if (is_vote(v) && score[v] >= best - 1e-12)
            return v;
    }
    return NO_LABEL;
}

static uint8_t weighted_or_prior(const ens_combiner_t *c, const uint8_t *x)
{
    unsigned v = vote(c, x, 1);
    return v == NO_LABEL ? c->prior : (uint8_t)v;
}

/* The agreement pattern of x: class index of each answer in order of first
 * appearance, abstentions and missing answers kept as themselves. reps gets
 * the answer of each class; returns the number of classes. */
static size_t pattern_of(const uint8_t *x, size_t k, uint8_t *key, uint8_t *reps)
{
    size_t ncls = 0;
    for (size_t i = 0; i < k; i++) {
        if (!is_vote(x[i])) {
            key[i] = x[i];
            continue;
        }
        size_t c = 0;
        while (c < ncls && reps[c] != x[i])
            c++;
        if (c == ncls)
            reps[ncls++] = x[i];
        key[i] = (uint8_t)c;
    }
    return ncls;
}

/* The outcome a training row adds to its entry. */
static size_t outcome_of(const ens_combiner_t *c, const uint8_t *reps, size_t ncls, uint8_t y)
{
    if (c->kind == ENS_COMB_TABLE)
        return y;
    for (size_t z = 0; z < ncls; z++)
        if (reps[z] == y)
            return z;
    return c->k;
}

/* The key of answers x in *key (zero past k): the tuple for `table`, else
 * the pattern, whose classes go to reps and *ncls. */
static void key_of(const ens_combiner_t *c, const uint8_t *x, uint8_t *key, uint8_t *reps,
                   size_t *ncls)
{
    memset(key, 0, ENS_COMB_MAX_MODELS);
    if (c->kind == ENS_COMB_TABLE) {
        memcpy(key, x, c->k);
        *ncls = 0;
    } else {
        *ncls = pattern_of(x, c->k, key, reps);
    }
}

/* A hash of the first k bytes of key (zero-padded to whole words). */
static uint64_t key_hash(const uint8_t *key, size_t k)
{
    uint64_t h = k;
    for (size_t i = 0; i < k; i += 8) {
        uint64_t w;
        memcpy(&w, key + i, 8);
        h = (h ^ w) * UINT64_C(0x9E3779B97F4A7C15);
        h ^= h >> 29;
    }
    return h;
}

/* Whether the first k bytes of two zero-padded keys are equal, a word at a
 * time (a memcmp call per probe showed in profiles). */
static int key_equal(const uint8_t *a, const uint8_t *b, size_t k)
{
    for (size_t i = 0; i < k; i += 8) {
        uint64_t u, v;
        memcpy(&u, a + i, 8);
        memcpy(&v, b + i, 8);
        if (u != v)
            return 0;
    }
    return 1;
}

/* The index slot of key: its entry's, or the empty one where it would go. */
static size_t find_slot(const ens_combiner_t *c, const uint8_t *key)
{
    size_t s = (size_t)key_hash(key, c->k) & c->mask;
    while (c->slot[s] && !key_equal(c->ents[c->slot[s] - 1].key, key, c->k))
        s = (s + 1) & c->mask;
    return s;
}

/* The entry of key, or SIZE_MAX. */
static size_t find(const ens_combiner_t *c, const uint8_t *key)
{
    if (!c->mask)
        return SIZE_MAX;
    size_t s = find_slot(c, key);
    return c->slot[s] ? c->slot[s] - 1 : SIZE_MAX;
}

/* Doubles the index (at least 64 slots) and places every entry again. */
static void grow_index(ens_combiner_t *c)
{
    size_t slots = c->mask ? 2 * (c->mask + 1) : 64;
    free(c->slot);
    c->slot = ens_xcalloc(slots, sizeof(uint32_t));
    c->mask = slots - 1;
    for (size_t i = 0; i < c->nent; i++)
        c->slot[find_slot(c, c->ents[i].key)] = (uint32_t)(i + 1);
}

/* The entry of key, added with zero counts if it is new. */
static size_t find_or_add(ens_combiner_t *c, const uint8_t *key)
{
    if (2 * (c->nent + 1) > c->mask + 1)
        grow_index(c);
    size_t s = find_slot(c, key);
    if (c->slot[s])
        return c->slot[s] - 1;
    if (c->nent == c->ent_cap) {
        c->ent_cap = c->ent_cap ? 2 * c->ent_cap : 64;
        c->ents = ens_xreallocarray(c->ents, c->ent_cap, sizeof(entry_t));
        c->cnt = ens_xreallocarray(c->cnt, c->ent_cap * c->noutcomes, sizeof(uint32_t));
    }
    size_t i = c->nent++;
    memcpy(c->ents[i].key, key, ENS_COMB_MAX_MODELS);
    c->ents[i].total = 0;
    memset(c->cnt + i * c->noutcomes, 0, c->noutcomes * sizeof(uint32_t));
    c->slot[s] = (uint32_t)(i + 1);
    return i;
}

/* Decision of a table entry (ens__comb_decide): for patterns only answer
 * classes are candidates. */
static size_t decide(const ens_combiner_t *c, const uint32_t *counts, size_t ncls, size_t skip,
                     size_t fallback)
{
    return ens__comb_decide(counts, c->kind == ENS_COMB_TABLE ? c->L : ncls, skip, fallback);
}

/* Predicts with entry ei of the table (SIZE_MAX: the key was not seen) for
 * a row whose pattern classes are reps[0..ncls) and whose weighted vote is
 * fb; `skip` leaves out one row of that outcome. */
static uint8_t entry_predict(const ens_combiner_t *c, size_t ei, const uint8_t *reps, size_t ncls,
                             size_t skip, uint8_t fb)
{
    if (ei == SIZE_MAX || c->ents[ei].total - (skip != SIZE_MAX) == 0)
        return fb;
    size_t fallback = fb;
    if (c->kind == ENS_COMB_PATTERN) {
        fallback = SIZE_MAX;
        for (size_t z = 0; z < ncls; z++)
            if (reps[z] == fb)
                fallback = z;
    }
    size_t o = decide(c, c->cnt + ei * c->noutcomes, ncls, skip, fallback);
    if (o == SIZE_MAX)
        return fb;
    return c->kind == ENS_COMB_TABLE ? (uint8_t)o : reps[o];
}

/* Predicts with the table; `skip` leaves out one row of that outcome. */
static uint8_t table_predict(const ens_combiner_t *c, const uint8_t *x, size_t skip)
{
    uint8_t key[ENS_COMB_MAX_MODELS], reps[ENS_COMB_MAX_MODELS];
    size_t ncls;
    uint8_t fb = weighted_or_prior(c, x);
    key_of(c, x, key, reps, &ncls);
    return entry_predict(c, find(c, key), reps, ncls, skip, fb);
}

uint8_t ens_combiner_predict(const ens_combiner_t *c, const uint8_t *x)
{
    switch (c->kind) {
    case ENS_COMB_VOTE: {
        unsigned v = vote(c, x, 0);
        return v == NO_LABEL ? c->prior : (uint8_t)v;
    }
    case ENS_COMB_WEIGHTED:
        return weighted_or_prior(c, x);
    default:
        return table_predict(c, x, SIZE_MAX);
    }
}

/* Gathers the answers of row r of d into x. */
static void row_answers(const ens_data_t *d, const size_t *models, size_t k, size_t r, uint8_t *x)
{
    for (size_t i = 0; i < k; i++)
        x[i] = ens_data_col(d, models[i])[r];
}

static void fit_weights(ens_combiner_t *c, const ens_data_t *train, const size_t *models)
{
    uint32_t ycnt[256] = {0};
    for (size_t r = 0; r < train->nrows; r++)
        ycnt[train->y[r]]++;
    c->prior = 0;
    for (size_t l = 1; l < train->nlabels; l++)
        if (ycnt[l] > ycnt[c->prior])
            c->prior = (uint8_t)l;
    for (size_t i = 0; i < c->k; i++) {
        /* A model never asked in training still gets a tiny weight, so its
         * answer counts when it is the only one. */
        double a = ens_data_accuracy(train, models[i]);
        c->w[i] = a > 1e-6 ? a : 1e-6;
        c->order[i] = i;
    }
    /* Insertion sort by decreasing accuracy; stable, so equal accuracies keep
     * the selection order. */
    for (size_t i = 1; i < c->k; i++) {
        size_t v = c->order[i], h = i;
        while (h > 0 && c->w[c->order[h - 1]] < c->w[v]) {
            c->order[h] = c->order[h - 1];
            h--;
        }
        c->order[h] = v;
    }
}

/* Counts every training row in its entry; records each row's entry and
 * outcome in ctx. */
static void fit_table(ens_combiner_t *c, const ens_data_t *train, fit_ctx_t *ctx)
{
    uint8_t x[ENS_COMB_MAX_MODELS], key[ENS_COMB_MAX_MODELS], reps[ENS_COMB_MAX_MODELS];
    c->noutcomes = c->kind == ENS_COMB_TABLE ? c->L : c->k + 1;
    int keep = c->kind == ENS_COMB_PATTERN;
    if (keep && !ctx->reps) {
        ctx->rcap = c->k < c->L ? c->k : c->L;
        ctx->reps = ens_xmalloc((train->nrows + 1) * (ctx->rcap ? ctx->rcap : 1));
        ctx->ncls = ens_xmalloc(train->nrows + 1);
    }
    for (size_t r = 0; r < train->nrows; r++) {
        row_answers(train, c->models, c->k, r, x);
        size_t ncls;
        key_of(c, x, key, reps, &ncls);
        size_t e = find_or_add(c, key), o = outcome_of(c, reps, ncls, train->y[r]);
        c->ents[e].total++;
        c->cnt[e * c->noutcomes + o]++;
        ctx->eid[r] = (uint32_t)e;
        ctx->outc[r] = (uint8_t)o;
        if (keep) {
            /* For the leave-one-out pass: no second pattern_of per row. */
            memcpy(ctx->reps + r * ctx->rcap, reps, ncls);
            ctx->ncls[r] = (uint8_t)ncls;
        }
    }
}

/* The leave-one-out prediction for a training row with answers x and truth
 * y: the tables forget that row first; the votes predict as fitted. */
static uint8_t loo_predict(const ens_combiner_t *c, const uint8_t *x, uint8_t y)
{
    if (c->kind != ENS_COMB_TABLE && c->kind != ENS_COMB_PATTERN)
        return ens_combiner_predict(c, x);
    uint8_t key[ENS_COMB_MAX_MODELS], reps[ENS_COMB_MAX_MODELS];
    size_t ncls;
    uint8_t fb = weighted_or_prior(c, x);
    key_of(c, x, key, reps, &ncls);
    return entry_predict(c, find(c, key), reps, ncls, outcome_of(c, reps, ncls, y), fb);
}

void ens_combiner_loo_predict(const ens_combiner_t *c, const ens_data_t *train, uint8_t *pred)
{
    uint8_t x[ENS_COMB_MAX_MODELS];
    for (size_t r = 0; r < train->nrows; r++) {
        row_answers(train, c->models, c->k, r, x);
        pred[r] = loo_predict(c, x, train->y[r]);
    }
}

/* The leave-one-out prediction of training row r with answers x, from what
 * the fit recorded in ctx: no table lookup, and the weighted vote of the
 * row computed once per ens_combiner_fit_best. Fills ctx->fb on the way
 * when the weighted vote is computed here. */
static uint8_t fitted_predict(const ens_combiner_t *c, const uint8_t *x, size_t r, fit_ctx_t *ctx)
{
    if (c->kind == ENS_COMB_VOTE)
        return ens_combiner_predict(c, x);
    uint8_t fb;
    if (ctx->have_fb) {
        fb = ctx->fb[r];
    } else {
        fb = weighted_or_prior(c, x);
        if (ctx->fb)
            ctx->fb[r] = fb;
    }
    if (c->kind == ENS_COMB_WEIGHTED)
        return fb;
    if (c->kind == ENS_COMB_PATTERN)
        return entry_predict(c, ctx->eid[r], ctx->reps + r * ctx->rcap, ctx->ncls[r], ctx->outc[r],
                             fb);
    return entry_predict(c, ctx->eid[r], NULL, 0, ctx->outc[r], fb);
}

static double train_accuracy(const ens_combiner_t *c, const ens_data_t *train, fit_ctx_t *ctx)
{
    uint8_t x[ENS_COMB_MAX_MODELS];
    size_t right = 0;
    /* The tables read only what the fit recorded once the weighted votes
     * are known: no answers to gather then. */
    int gather = c->kind == ENS_COMB_VOTE || !ctx->have_fb;
    for (size_t r = 0; r < train->nrows; r++) {
        if (gather)
            row_answers(train, c->models, c->k, r, x);
        uint8_t p = fitted_predict(c, x, r, ctx);
        if (ctx->pred)
            ctx->pred[r] = p;
        right += p == train->y[r];
    }
    if (c->kind == ENS_COMB_WEIGHTED && ctx->fb)
        ctx->have_fb = 1;
    return train->nrows ? (double)right / (double)train->nrows : 0.0;
}

/* Fits `kind`; w, when not NULL, is a combiner fitted on the same rows and
 * models whose weights, order and prior are taken instead of computed. */
static ens_combiner_t *fit_kind(const ens_data_t *train, const size_t *models, size_t k,
                                ens_comb_kind_t kind, const ens_combiner_t *w, fit_ctx_t *ctx)
{
    ens_combiner_t *c = ens_xcalloc(1, sizeof(*c));
    c->kind = kind;
    c->k = k;
    c->L = train->nlabels;
    memcpy(c->models, models, k * sizeof(size_t));
    if (w) {
        memcpy(c->w, w->w, sizeof(c->w));
        memcpy(c->order, w->order, sizeof(c->order));
        c->prior = w->prior;
    } else {
        fit_weights(c, train, models);
    }
    if (kind == ENS_COMB_TABLE || kind == ENS_COMB_PATTERN)
        fit_table(c, train, ctx);
    c->train_acc = train_accuracy(c, train, ctx);
    return c;
}

/* The per-row arrays of ctx for train (fb only when share is set). */
static void ctx_init(fit_ctx_t *ctx, const ens_data_t *train, int share, uint8_t *pred)
{
    size_t n = train->nrows + 1;
    ctx->fb = share ? ens_xmalloc(n) : NULL;
    ctx->have_fb = 0;
    ctx->eid = ens_xmalloc(n * sizeof(uint32_t));
    ctx->outc = ens_xmalloc(n);
    ctx->pred = pred;
    ctx->reps = ctx->ncls = NULL;
    ctx->rcap = 0;
}

static void ctx_free(fit_ctx_t *ctx)
{
    free(ctx->fb);
    free(ctx->eid);
    free(ctx->outc);
    free(ctx->reps);
    free(ctx->ncls);
}

ens_combiner_t *ens_combiner_fit(const ens_data_t *train, const size_t *models, size_t k,
                                 ens_comb_kind_t kind)
{
    if (k == 0 || k > ENS_COMB_MAX_MODELS || (size_t)kind >= ENS_COMB_COUNT)
        return NULL;
    fit_ctx_t ctx;
    ctx_init(&ctx, train, 0, NULL);
    ens_combiner_t *c = fit_kind(train, models, k, kind, NULL, &ctx);
    ctx_free(&ctx);
    return c;
}

ens_combiner_t *ens__combiner_fit_best_loo(const ens_data_t *train, const size_t *models, size_t k,
                                           uint8_t *pred)
{
    static const ens_comb_kind_t preference[] = {ENS_COMB_WEIGHTED, ENS_COMB_VOTE, ENS_COMB_PATTERN,
                                                 ENS_COMB_TABLE};
    if (k == 0 || k > ENS_COMB_MAX_MODELS)
        return NULL;
    uint8_t *cur = pred ? ens_xmalloc(train->nrows + 1) : NULL;
    fit_ctx_t ctx;
    ctx_init(&ctx, train, 1, cur);
    ens_combiner_t *best = NULL;
    for (size_t i = 0; i < sizeof(preference) / sizeof(preference[0]); i++) {
        /* Open answers: a table keyed by class ids means nothing to a
         * router, which sees the answers of the ensemble alone. */
        if (train->open && preference[i] == ENS_COMB_TABLE)
            continue;
        ens_combiner_t *c = fit_kind(train, models, k, preference[i], best, &ctx);
        if (!best || c->train_acc > best->train_acc) {
            ens_combiner_destroy(&best);
            best = c;
            if (pred)
                memcpy(pred, cur, train->nrows);
        } else {
            ens_combiner_destroy(&c);
        }
    }
    ctx_free(&ctx);
    free(cur);
    return best;
}

ens_combiner_t *ens_combiner_fit_best(const ens_data_t *train, const size_t *models, size_t k)
{
    return ens__combiner_fit_best_loo(train, models, k, NULL);
}

void ens_combiner_destroy(ens_combiner_t **cp)
{
    if (!cp || !*cp)
        return;
    ens_combiner_t *c = *cp;
    free(c->ents);
    free(c->cnt);
    free(c->slot);
    free(c);
    *cp = NULL;
}

ens_comb_kind_t ens_combiner_kind(const ens_combiner_t *c)
{
    return c->kind;
}

double ens_combiner_train_accuracy(const ens_combiner_t *c)
{
    return c->train_acc;
}

double ens_combiner_weight(const ens_combiner_t *c, size_t i)
{
    return i < c->k ? c->w[i] : 0.0;
}

double ens_combiner_accuracy(const ens_combiner_t *c, const ens_data_t *test)
{
    uint8_t x[ENS_COMB_MAX_MODELS];
    size_t right = 0;
    for (size_t r = 0; r < test->nrows; r++) {
        row_answers(test, c->models, c->k, r, x);
        right += ens_combiner_predict(c, x) == test->y[r];
    }
    return test->nrows ? (double)right / (double)test->nrows : 0.0;
}

/* The weighted vote's class for a pattern: the class whose models weigh
 * most, ties to the class of the most accurate model among the tied. */
static size_t pattern_vote(const ens_combiner_t *c, const uint8_t *key, size_t ncls)
{
    double score[ENS_COMB_MAX_MODELS] = {0}, best = 0;
    for (size_t i = 0; i < c->k; i++)
        if (key[i] < ncls && (score[key[i]] += c->w[i]) > best)
            best = score[key[i]];
    for (size_t o = 0; o < c->k; o++) {
        uint8_t v = key[c->order[o]];
        if (v < ncls && score[v] >= best - 1e-12)
            return v;
    }
    return SIZE_MAX;
}

void ens_combiner_foreach(const ens_combiner_t *c, ens_combiner_entry_fn fn, void *ud)
{
    for (size_t ei = 0; ei < c->nent; ei++) {
        const entry_t *e = &c->ents[ei];
        size_t ncls = 0, fallback;
        if (c->kind == ENS_COMB_PATTERN) {
            for (size_t i = 0; i < c->k; i++)
                if (e->key[i] < ENS_COMB_MAX_MODELS && (size_t)e->key[i] + 1 > ncls)
                    ncls = (size_t)e->key[i] + 1;
            fallback = pattern_vote(c, e->key, ncls);
        } else {
            unsigned v = vote(c, e->key, 1);
            fallback = v == NO_LABEL ? c->prior : v;
        }
        size_t o = decide(c, c->cnt + ei * c->noutcomes, ncls, SIZE_MAX, fallback);
        if (o != SIZE_MAX)
            fn(ud, e->key, c->k, (unsigned)o);
    }
}
