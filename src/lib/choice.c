/* choice.c - the final choice among the selection and the top-K votes
 * (choice.h). */
#include "ensembled/choice.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/err.h"
#include "ensembled/rng.h"
#include "ensembled/xalloc.h"

/* The folds' shuffles depend only on the row count and the repeat, so the
 * daemon and `ensemblectl select --body` choose alike on the same window. */
#define CHOICE_SEED UINT64_C(0x63686f696365)

int ens_choice_applies(const ens_select_opts_t *o)
{
    return o->prune && (o->strategy == ENS_STRAT_GREEDY_MI || o->strategy == ENS_STRAT_EXHAUSTIVE);
}

/* Adds 1 to hits[rows[r]] for every row r of test that c, fitted over
 * models[0..k), predicts right. */
static void score_fold(const ens_combiner_t *c, const size_t *models, size_t k,
                       const ens_data_t *test, const size_t *rows, uint8_t *hits)
{
    uint8_t x[ENS_COMB_MAX_MODELS];
    for (size_t r = 0; r < test->nrows; r++) {
        for (size_t i = 0; i < k; i++)
            x[i] = ens_data_col(test, models[i])[r];
        hits[rows[r]] += ens_combiner_predict(c, x) == test->y[r];
    }
}

/* One fold: every candidate fitted on train, scored on test. hits holds
 * one row of d->nrows counts per candidate. */
static int run_fold(const ens_data_t *train, const ens_data_t *test, const size_t *rows,
                    const ens_select_opts_t *o, size_t kmax, size_t nrows, uint8_t *hits)
{
    ens_select_opts_t so = *o;
    so.budget = o->budget < train->nmodels ? o->budget : train->nmodels;
    ens_selection_t s, top;
    int rc = ens_select(train, &so, &s, NULL, 0);
    if (rc < 0)
        return rc;
    ens_combiner_t *c = ens_combiner_fit_best(train, s.models, s.n);
    score_fold(c, s.models, s.n, test, rows, hits);
    ens_combiner_destroy(&c);
    so.strategy = ENS_STRAT_TOPK;
    so.budget = kmax;
    if ((rc = ens_select(train, &so, &top, NULL, 0)) < 0)
        return rc;
    for (size_t k = 1; k <= kmax; k++) {
        c = ens_combiner_fit(train, top.models, k, ENS_COMB_WEIGHTED);
        score_fold(c, top.models, k, test, rows, hits + k * nrows);
        ens_combiner_destroy(&c);
    }
    return 0;
}

/* Mean and standard error over n rows of (a[r] - b[r]) / R, or of a[r] / R
 * when b is NULL. */
static void paired(const uint8_t *a, const uint8_t *b, size_t n, double R, double *mean, double *se)
{
    double s = 0, ss = 0;
    for (size_t r = 0; r < n; r++) {
        double v = ((double)a[r] - (b ? (double)b[r] : 0)) / R;
        s += v;
        ss += v * v;
    }
    *mean = s / (double)n;
    double var = n > 1 ? (ss - s * s / (double)n) / (double)(n - 1) : 0;
    *se = sqrt(var > 0 ? var : 0) / sqrt((double)n);
}

/* The rule of choice.h on the scored candidates. */
static void decide(ens_choice_t *out, const uint8_t *hits, size_t n, double R)
{
    double m, se;
    paired(hits, NULL, n, R, &out->cand[0].acc, &out->cand[0].se);
    for (size_t c = 1; c < out->n; c++) {
        paired(hits + c * n, NULL, n, R, &out->cand[c].acc, &se);
        paired(hits + c * n, hits, n, R, &m, &out->cand[c].se);
    }
    /* The alternative with the best accuracy, ties to the larger vote. */
    size_t best = out->n - 1;
    for (size_t c = out->n - 1; c-- > 1;)
        if (out->cand[c].acc > out->cand[best].acc)
            best = c;
    paired(hits, hits + best * n, n, R, &m, &se);
    out->winner = m - ENS_CHOICE_Z * se >= -ENS_CHOICE_MARGIN ? 0 : best;
}

/* Names the candidates and sets their sizes as fitted on every row. */
static void name_candidates(ens_choice_t *out, size_t kmax)
{
    out->n = kmax + 1;
    snprintf(out->cand[0].name, sizeof(out->cand[0].name), "selection");
    for (size_t k = 1; k <= kmax; k++) {
        snprintf(out->cand[k].name, sizeof(out->cand[k].name), "top-%zu", k);
        out->cand[k].k = k;
    }
    for (size_t c = 0; c < out->n; c++)
        out->cand[c].acc = out->cand[c].se = NAN;
}

/* Scores on at most ENS_CHOICE_MAX_ROWS rows of d, evenly spaced. */
static int choose_rows(const ens_data_t *d, const ens_select_opts_t *o, ens_choice_t *out);

int ens_choose(const ens_data_t *d, const ens_select_opts_t *o, ens_choice_t *out)
{
    if (d->nrows <= ENS_CHOICE_MAX_ROWS)
        return choose_rows(d, o, out);
    size_t *rows = ens_xcalloc(ENS_CHOICE_MAX_ROWS, sizeof(size_t));
    for (size_t i = 0; i < ENS_CHOICE_MAX_ROWS; i++)
        rows[i] = i * d->nrows / ENS_CHOICE_MAX_ROWS;
    ens_data_t *sub = ens_data_rows(d, rows, ENS_CHOICE_MAX_ROWS);
    free(rows);
    int rc = choose_rows(sub, o, out);
    ens_data_destroy(&sub);
    return rc;
}

static int choose_rows(const ens_data_t *d, const ens_select_opts_t *o, ens_choice_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = d->nrows, kmax = o->budget < d->nmodels ? o->budget : d->nmodels;
    name_candidates(out, kmax);
    if (n < 2 * ENS_CHOICE_FOLDS || kmax == 0)
        return ENS_EEMPTY;
    /* About ENS_CHOICE_SCORED_ROWS scored rows per candidate. */
    size_t repeats = (ENS_CHOICE_SCORED_ROWS + n - 1) / n;
    repeats = repeats > ENS_CHOICE_MAX_REPEATS ? ENS_CHOICE_MAX_REPEATS : repeats;
    uint8_t *hits = ens_xcalloc(out->n * n, 1);
    size_t *perm = ens_xcalloc(n, sizeof(size_t)), *train_rows = ens_xcalloc(n, sizeof(size_t));
    int rc = 0;
    for (size_t rep = 0; rep < repeats && rc == 0; rep++) {
        ens_rng_t rng;
        ens_rng_seed(&rng, CHOICE_SEED + rep);
        for (size_t i = 0; i < n; i++)
            perm[i] = i;
        ens_rng_shuffle(&rng, perm, n);
        for (size_t f = 0; f < ENS_CHOICE_FOLDS && rc == 0; f++) {
            size_t lo = f * n / ENS_CHOICE_FOLDS, hi = (f + 1) * n / ENS_CHOICE_FOLDS, nt = 0;
            for (size_t i = 0; i < n; i++)
                if (i < lo || i >= hi)
                    train_rows[nt++] = perm[i];
            ens_data_t *train = ens_data_rows(d, train_rows, nt);
            ens_data_t *test = ens_data_rows(d, perm + lo, hi - lo);
            rc = run_fold(train, test, perm + lo, o, kmax, n, hits);
            ens_data_destroy(&train);
            ens_data_destroy(&test);
        }
    }
    if (rc == 0)
        decide(out, hits, n, (double)repeats);
    free(hits);
    free(perm);
    free(train_rows);
    return rc;
}

ens_combiner_t *ens_choice_fit(const ens_data_t *d, const ens_select_opts_t *o,
                               const ens_choice_t *c, const ens_selection_t *sel,
                               ens_selection_t *set)
{
    if (c->winner == 0) {
        *set = *sel;
        return ens_combiner_fit_best(d, set->models, set->n);
    }
    ens_select_opts_t so = *o;
    so.strategy = ENS_STRAT_TOPK;
    so.budget = c->cand[c->winner].k;
    if (ens_select(d, &so, set, NULL, 0) < 0) {
        *set = *sel;
        return ens_combiner_fit_best(d, set->models, set->n);
    }
    return ens_combiner_fit(d, set->models, set->n, ENS_COMB_WEIGHTED);
}

ens_combiner_t *ens_choice_published(const ens_data_t *d, const ens_select_opts_t *o,
                                     const ens_selection_t *sel, ens_selection_t *pub,
                                     ens_choice_t *c)
{
    ens_choice_t local;
    c = c ? c : &local;
    memset(c, 0, sizeof(*c));
    if (ens_choice_applies(o) && ens_choose(d, o, c) == 0) {
        c->cand[0].k = sel->n;
        return ens_choice_fit(d, o, c, sel, pub);
    }
    c->n = 0;
    *pub = *sel;
    return ens_combiner_fit_best(d, pub->models, pub->n);
}
