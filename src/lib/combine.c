/* combine.c - vote, weighted vote and decision-table combiners (combine.h).
 *
 * The tables are uthash maps keyed by k bytes: the raw answer tuple for
 * `table`, the agreement pattern for `pattern`. Each entry counts, per
 * outcome, the training rows that reached it: labels for `table`; for
 * `pattern`, the answer class holding the truth (0..k-1) or none (k).
 */
#include "ensembled/combine.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "ensembled/err.h"
#include "ensembled/xalloc.h"

#define NO_LABEL 0xFFFF

typedef struct entry_s {
    uint8_t key[ENS_COMB_MAX_MODELS]; /* tuple or pattern, k bytes used */
    uint32_t total;                   /* rows with this key */
    uint32_t *counts;                 /* per outcome */
    UT_hash_handle hh;
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
    entry_t *table;                     /* uthash head (table, pattern) */
};

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

static entry_t *lookup(const ens_combiner_t *c, const uint8_t *x, uint8_t *key, uint8_t *reps,
                       size_t *ncls)
{
    memset(key, 0, ENS_COMB_MAX_MODELS);
    if (c->kind == ENS_COMB_TABLE) {
        memcpy(key, x, c->k);
        *ncls = 0;
    } else {
        *ncls = pattern_of(x, c->k, key, reps);
    }
    entry_t *e = NULL;
    HASH_FIND(hh, c->table, key, c->k, e);
    return e;
}

/* Decision of a table entry, leaving out one training row of outcome `skip`
 * (or none with skip == SIZE_MAX): the outcome with the most rows, ties to the
 * fallback's outcome, then the smallest. For patterns only answer classes
 * are candidates. Returns SIZE_MAX when no candidate has a row. */
static size_t decide(const ens_combiner_t *c, const entry_t *e, size_t ncls, size_t skip,
                     size_t fallback)
{
    size_t n = c->kind == ENS_COMB_TABLE ? c->L : ncls;
    size_t best = SIZE_MAX;
    uint32_t bestn = 0;
    for (size_t o = 0; o < n; o++) {
        uint32_t cnt = e->counts[o] - (o == skip);
        if (cnt > bestn || (cnt == bestn && cnt > 0 && o == fallback)) {
            best = o;
            bestn = cnt;
        }
    }
    return best;
}

/* Predicts with the table; `skip` leaves out one row of that outcome. */
static uint8_t table_predict(const ens_combiner_t *c, const uint8_t *x, size_t skip)
{
    uint8_t key[ENS_COMB_MAX_MODELS], reps[ENS_COMB_MAX_MODELS];
    size_t ncls;
    uint8_t fb = weighted_or_prior(c, x);
    const entry_t *e = lookup(c, x, key, reps, &ncls);
    if (!e || e->total - (skip != SIZE_MAX) == 0)
        return fb;
    size_t fallback = fb;
    if (c->kind == ENS_COMB_PATTERN) {
        fallback = SIZE_MAX;
        for (size_t z = 0; z < ncls; z++)
            if (reps[z] == fb)
                fallback = z;
    }
    size_t o = decide(c, e, ncls, skip, fallback);
    if (o == SIZE_MAX)
        return fb;
    return c->kind == ENS_COMB_TABLE ? (uint8_t)o : reps[o];
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

static void fit_table(ens_combiner_t *c, const ens_data_t *train, const size_t *models)
{
    uint8_t x[ENS_COMB_MAX_MODELS], key[ENS_COMB_MAX_MODELS], reps[ENS_COMB_MAX_MODELS];
    c->noutcomes = c->kind == ENS_COMB_TABLE ? c->L : c->k + 1;
    for (size_t r = 0; r < train->nrows; r++) {
        row_answers(train, models, c->k, r, x);
        size_t ncls;
        entry_t *e = lookup(c, x, key, reps, &ncls);
        if (!e) {
            e = ens_xcalloc(1, sizeof(*e));
            memcpy(e->key, key, sizeof(key));
            e->counts = ens_xcalloc(c->noutcomes, sizeof(uint32_t));
            HASH_ADD(hh, c->table, key, c->k, e);
        }
        e->total++;
        e->counts[outcome_of(c, reps, ncls, train->y[r])]++;
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
    lookup(c, x, key, reps, &ncls);
    return table_predict(c, x, outcome_of(c, reps, ncls, y));
}

void ens_combiner_loo_predict(const ens_combiner_t *c, const ens_data_t *train, uint8_t *pred)
{
    uint8_t x[ENS_COMB_MAX_MODELS];
    for (size_t r = 0; r < train->nrows; r++) {
        row_answers(train, c->models, c->k, r, x);
        pred[r] = loo_predict(c, x, train->y[r]);
    }
}

static double train_accuracy(const ens_combiner_t *c, const ens_data_t *train)
{
    uint8_t x[ENS_COMB_MAX_MODELS];
    size_t right = 0;
    for (size_t r = 0; r < train->nrows; r++) {
        row_answers(train, c->models, c->k, r, x);
        right += loo_predict(c, x, train->y[r]) == train->y[r];
    }
    return train->nrows ? (double)right / (double)train->nrows : 0.0;
}

ens_combiner_t *ens_combiner_fit(const ens_data_t *train, const size_t *models, size_t k,
                                 ens_comb_kind_t kind)
{
    if (k == 0 || k > ENS_COMB_MAX_MODELS || (size_t)kind >= ENS_COMB_COUNT)
        return NULL;
    ens_combiner_t *c = ens_xcalloc(1, sizeof(*c));
    c->kind = kind;
    c->k = k;
    c->L = train->nlabels;
    memcpy(c->models, models, k * sizeof(size_t));
    fit_weights(c, train, models);
    if (kind == ENS_COMB_TABLE || kind == ENS_COMB_PATTERN)
        fit_table(c, train, models);
    c->train_acc = train_accuracy(c, train);
    return c;
}

ens_combiner_t *ens_combiner_fit_best(const ens_data_t *train, const size_t *models, size_t k)
{
    static const ens_comb_kind_t preference[] = {ENS_COMB_WEIGHTED, ENS_COMB_VOTE, ENS_COMB_PATTERN,
                                                 ENS_COMB_TABLE};
    ens_combiner_t *best = NULL;
    for (size_t i = 0; i < sizeof(preference) / sizeof(preference[0]); i++) {
        /* Open answers: a table keyed by class ids means nothing to a
         * router, which sees the answers of the ensemble alone. */
        if (train->open && preference[i] == ENS_COMB_TABLE)
            continue;
        ens_combiner_t *c = ens_combiner_fit(train, models, k, preference[i]);
        if (!c)
            return NULL;
        if (!best || c->train_acc > best->train_acc) {
            ens_combiner_destroy(&best);
            best = c;
        } else {
            ens_combiner_destroy(&c);
        }
    }
    return best;
}

void ens_combiner_destroy(ens_combiner_t **cp)
{
    if (!cp || !*cp)
        return;
    ens_combiner_t *c = *cp;
    entry_t *e, *tmp;
    HASH_ITER(hh, c->table, e, tmp)
    {
        HASH_DEL(c->table, e);
        free(e->counts);
        free(e);
    }
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
    const entry_t *e, *tmp;
    HASH_ITER(hh, c->table, e, tmp)
    {
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
        size_t o = decide(c, e, ncls, SIZE_MAX, fallback);
        if (o != SIZE_MAX)
            fn(ud, e->key, c->k, (unsigned)o);
    }
}
