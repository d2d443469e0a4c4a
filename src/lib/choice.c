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

int ens_choice_select(const ens_data_t *d, const ens_select_opts_t *o, ens_selection_t *out,
                      char *err, size_t errlen)
{
    ens_data_t *e = ens_data_rows_explored(d);
    if (e && e->nrows < ENS_CHOICE_MIN_EXPLORED)
        ens_data_destroy(&e);
    int rc = ens_select(e ? e : d, o, out, err, errlen);
    ens_data_destroy(&e);
    return rc;
}

int ens_choice_applies(const ens_select_opts_t *o)
{
    return o->prune && (o->strategy == ENS_STRAT_GREEDY_MI || o->strategy == ENS_STRAT_EXHAUSTIVE);
}

/* Scores c, fitted over models[0..k), on the rows of test it is judged on:
 * adds 1 to judged[rows[r]] for each, and 1 to hits[rows[r]] where c
 * predicts right. A candidate is judged on every explored row, its combiner
 * falling back over the models not asked there, as a router's would; on an
 * ordinary row only when every model of it was asked: there the routers
 * asked the published ensemble only, and a candidate that was not published
 * then would have been asked in full (docs/estimators.md). */
static void score_fold(const ens_combiner_t *c, const size_t *models, size_t k,
                       const ens_data_t *test, const size_t *rows, uint8_t *hits, uint8_t *judged)
{
    uint8_t x[ENS_COMB_MAX_MODELS];
    for (size_t r = 0; r < test->nrows; r++) {
        size_t asked = 0;
        for (size_t i = 0; i < k; i++) {
            x[i] = ens_data_col(test, models[i])[r];
            asked += x[i] != ENS_SYM_MISSING;
        }
        if (asked < k && !ens_data_explored(test, r))
            continue;
        judged[rows[r]]++;
        hits[rows[r]] += ens_combiner_predict(c, x) == test->y[r];
    }
}

/* One fold: every candidate fitted on train, scored on test. hits and
 * judged hold one row of d->nrows counts per candidate, then one for plain
 * majority vote over the fold's selection (the pipeline's honest
 * `majority_vote`, scored here so that it needs no selection of its own). */
static int run_fold(const ens_data_t *train, const ens_data_t *test, const size_t *rows,
                    const ens_select_opts_t *o, size_t kmax, size_t nrows, uint8_t *hits,
                    uint8_t *judged)
{
    ens_select_opts_t so = *o;
    so.budget = o->budget < train->nmodels ? o->budget : train->nmodels;
    ens_selection_t s, top;
    int rc = ens_choice_select(train, &so, &s, NULL, 0);
    if (rc < 0)
        return rc;
    ens_combiner_t *c = ens_combiner_fit_best(train, s.models, s.n);
    score_fold(c, s.models, s.n, test, rows, hits, judged);
    ens_combiner_destroy(&c);
    c = ens_combiner_fit(train, s.models, s.n, ENS_COMB_VOTE);
    size_t vote = (kmax + 1) * nrows;
    score_fold(c, s.models, s.n, test, rows, hits + vote, judged + vote);
    ens_combiner_destroy(&c);
    so.strategy = ENS_STRAT_TOPK;
    so.budget = kmax;
    if ((rc = ens_select(train, &so, &top, NULL, 0)) < 0)
        return rc;
    for (size_t k = 1; k <= kmax; k++) {
        c = ens_combiner_fit(train, top.models, k, ENS_COMB_WEIGHTED);
        score_fold(c, top.models, k, test, rows, hits + k * nrows, judged + k * nrows);
        ens_combiner_destroy(&c);
    }
    return 0;
}

/* A candidate's scores: hits and times judged per row. */
typedef struct {
    const uint8_t *hits, *judged;
} scores_t;

/* Mean and standard error of a's accuracy (b.hits NULL) or of the paired
 * difference a - b, over the rows where both were judged: each row's
 * accuracy is its hits over its times judged. NaN (both) over no row. */
static void paired(scores_t a, scores_t b, size_t n, double *mean, double *se)
{
    double s = 0, ss = 0;
    size_t m = 0;
    for (size_t r = 0; r < n; r++) {
        if (!a.judged[r] || (b.hits && !b.judged[r]))
            continue;
        double v = (double)a.hits[r] / (double)a.judged[r];
        if (b.hits)
            v -= (double)b.hits[r] / (double)b.judged[r];
        s += v;
        ss += v * v;
        m++;
    }
    *mean = m ? s / (double)m : NAN;
    double var = m > 1 ? (ss - s * s / (double)m) / (double)(m - 1) : 0;
    *se = m ? sqrt(var > 0 ? var : 0) / sqrt((double)m) : NAN;
}

/* The rule of choice.h on the scored candidates. With no row on which the
 * selection and the best alternative were both judged, the selection
 * stays: there is no evidence against it. */
static void decide(ens_choice_t *out, const uint8_t *hits, const uint8_t *judged, size_t n)
{
    double m, se;
    scores_t none = {NULL, NULL}, sel = {hits, judged};
    scores_t vote = {hits + out->n * n, judged + out->n * n};
    paired(sel, none, n, &out->cand[0].acc, &out->cand[0].se);
    paired(vote, none, n, &out->vote_acc, &se);
    for (size_t c = 1; c < out->n; c++) {
        scores_t alt = {hits + c * n, judged + c * n};
        paired(alt, none, n, &out->cand[c].acc, &se);
        paired(alt, sel, n, &m, &out->cand[c].se);
    }
    /* B: the better of the two alternatives the promise names, the top-K
     * vote at the budget and the best single model (ties to the vote). The
     * votes in between are scored and published in the body, but not
     * picked: the more candidates compete on the same folds, the more the
     * winner's score owes to noise (docs/estimators.md). */
    size_t best = 0, last = out->n - 1;
    if (last >= 1 && !isnan(out->cand[last].acc))
        best = last;
    if (last > 1 && !isnan(out->cand[1].acc) &&
        (best == 0 || out->cand[1].acc > out->cand[best].acc))
        best = 1;
    out->winner = 0;
    if (best == 0)
        return;
    scores_t alt = {hits + best * n, judged + best * n};
    paired(sel, alt, n, &m, &se);
    if (!isnan(m) && m - ENS_CHOICE_Z * se < -ENS_CHOICE_MARGIN)
        out->winner = best;
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
    out->vote_acc = NAN;
}

/* Scores on at most ENS_CHOICE_MAX_ROWS rows of d, evenly spaced. */
static int choose_rows(const ens_data_t *d, const ens_select_opts_t *o, ens_choice_t *out);

/* Whether row r of d is explored or holds every model's answer. */
static int row_complete(const ens_data_t *d, size_t r)
{
    if (ens_data_explored(d, r))
        return 1;
    for (size_t j = 0; j < d->nmodels; j++)
        if (ens_data_col(d, j)[r] == ENS_SYM_MISSING)
            return 0;
    return 1;
}

int ens_choose(const ens_data_t *d, const ens_select_opts_t *o, ens_choice_t *out)
{
    if (d->nrows <= ENS_CHOICE_MAX_ROWS)
        return choose_rows(d, o, out);
    /* Every row on which no model is missing by design is kept (all rows
     * are such rows without flags): they are the only ones on which the
     * candidates outside the published ensemble are judged. The others
     * are evenly spaced in what room is left. */
    size_t *rows = ens_xcalloc(d->nrows, sizeof(size_t)), n = 0, keep = 0;
    uint8_t *full = ens_xcalloc(d->nrows, 1);
    for (size_t r = 0; r < d->nrows && d->explored; r++)
        keep += full[r] = (uint8_t)row_complete(d, r);
    size_t room = keep < ENS_CHOICE_MAX_ROWS ? ENS_CHOICE_MAX_ROWS - keep : 0;
    size_t others = d->nrows - keep, next = 0;
    for (size_t r = 0, seen = 0; r < d->nrows; r++) {
        if (full[r] && keep <= ENS_CHOICE_MAX_ROWS) {
            rows[n++] = r;
            continue;
        }
        /* The i-th kept among the others is the one at i * others / room;
         * with more full rows than room, the full rows are spaced alike. */
        if (!full[r] || keep > ENS_CHOICE_MAX_ROWS) {
            size_t pool = keep > ENS_CHOICE_MAX_ROWS ? d->nrows : others;
            size_t want = keep > ENS_CHOICE_MAX_ROWS ? ENS_CHOICE_MAX_ROWS : room;
            if (next < want && seen == next * pool / want) {
                rows[n++] = r;
                next++;
            }
            seen++;
        }
    }
    free(full);
    ens_data_t *sub = ens_data_rows(d, rows, n);
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
    /* One row of counts per candidate, and one for the vote (run_fold). */
    uint8_t *hits = ens_xcalloc((out->n + 1) * n, 1), *judged = ens_xcalloc((out->n + 1) * n, 1);
    size_t *perm = ens_xcalloc(n, sizeof(size_t)), *train_rows = ens_xcalloc(n, sizeof(size_t));
    int rc = 0;
    for (size_t rep = 0; rep < repeats && rc == 0; rep++) {
        ens_rng_t rng;
        ens_rng_seed(&rng, ENS_CHOICE_SEED + rep);
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
            rc = run_fold(train, test, perm + lo, o, kmax, n, hits, judged);
            ens_data_destroy(&train);
            ens_data_destroy(&test);
        }
    }
    if (rc == 0)
        decide(out, hits, judged, n);
    free(hits);
    free(judged);
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
