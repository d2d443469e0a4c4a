/* select.c - selection strategies (see select.h).
 *
 * Every strategy produces an ordered list of models; the cumulative
 * estimates reported with it are computed by one partition refinement along
 * that order, so all strategies are reported on the same scale.
 */
#include "ensembled/select.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "combine_int.h"
#include "ensembled/combine.h"
#include "ensembled/err.h"
#include "ensembled/rng.h"
#include "ensembled/xalloc.h"
#include "part.h"

/* Two estimates closer than this are a tie. */
#define TIE_EPS 1e-12

static const char *const strat_names[] = {
    [ENS_STRAT_GREEDY_MI] = "greedy-mi", [ENS_STRAT_GREEDY_COST] = "greedy-cost",
    [ENS_STRAT_TOPK] = "top-k",          [ENS_STRAT_RANDOM] = "random",
    [ENS_STRAT_CARUANA] = "caruana",     [ENS_STRAT_EXHAUSTIVE] = "exhaustive",
};

const char *ens_strategy_name(ens_strategy_t s)
{
    return (size_t)s < ENS_STRAT_COUNT ? strat_names[s] : "?";
}

int ens_strategy_parse(const char *name, ens_strategy_t *out)
{
    for (size_t i = 0; i < ENS_STRAT_COUNT; i++) {
        if (strcmp(name, strat_names[i]) == 0) {
            *out = (ens_strategy_t)i;
            return 0;
        }
    }
    return ENS_EINVAL;
}

void ens_select_opts_default(ens_select_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->strategy = ENS_STRAT_GREEDY_MI;
    o->estimator = ENS_EST_HELDOUT;
    o->budget = 3;
    o->min_gain_bits = 0.0;
    o->seed = 1;
    o->exhaustive_limit = 100000;
    o->prune = 1;
}

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Fills the cumulative estimates of out->models[0..n) in order. */
static void fill_steps(const ens_data_t *d, ens_estimator_t est, ens_selection_t *out)
{
    ens_part_t *p = ens__part_new(d, est);
    double prev = 0;
    for (size_t i = 0; i < out->n; i++) {
        ens__part_add(p, out->models[i]);
        out->mi_bits[i] = ens__part_bits(p, &out->rows[i]);
        out->gain_bits[i] = out->mi_bits[i] - prev;
        prev = out->mi_bits[i];
    }
    ens__part_destroy(&p);
}

static void fill_cost(const ens_data_t *d, ens_selection_t *out)
{
    out->cost = 0;
    for (size_t i = 0; i < out->n; i++)
        out->cost += d->cost[out->models[i]];
}

/* Is candidate a better than b at equal-or-near score? Higher single-model
 * estimate first, then the smaller name. */
static int tie_better(const ens_data_t *d, const double *single, size_t a, size_t b)
{
    if (fabs(single[a] - single[b]) > TIE_EPS)
        return single[a] > single[b];
    return strcmp(d->model_names[a], d->model_names[b]) < 0;
}

/* Scores the candidates of a greedy step against the part's set: the models
 * not in used, and, when room is given (>= 0), only those whose cost fits
 * (spent + cost <= room). cand gets them in index order, scores[i] and
 * rows[i] their estimates. Returns their number. One call scores them all,
 * so that the part can share its passes over the rows. */
static size_t score_step(ens_part_t *p, const ens_data_t *d, const char *used, double spent,
                         double room, size_t *cand, double *scores, size_t *rows)
{
    size_t nc = 0;
    for (size_t j = 0; j < d->nmodels; j++)
        if (!used[j] && (room < 0 || spent + d->cost[j] <= room))
            cand[nc++] = j;
    ens__part_score_many(p, cand, nc, scores, rows);
    return nc;
}

/* Best-single-element fallback of the cost-benefit greedy: it keeps the
 * (1 - 1/e)/2 guarantee that gain per cost alone lacks. Replaces out with the
 * best affordable model when that has more information than the greedy's set
 * (cur bits); returns 1 then, 0 otherwise. */
static int best_single(const ens_data_t *d, const ens_select_opts_t *o, const double *single,
                       double cur, ens_selection_t *out)
{
    size_t bs = SIZE_MAX;
    for (size_t j = 0; j < d->nmodels; j++)
        if (d->cost[j] <= o->cost_budget + 1e-12 &&
            (bs == SIZE_MAX || single[j] > single[bs] + TIE_EPS))
            bs = j;
    if (bs == SIZE_MAX || !(single[bs] > cur + TIE_EPS))
        return 0;
    out->n = 1;
    out->models[0] = bs;
    return 1;
}

/* The greedy of the paper, optionally by gain per unit cost under a cost
 * budget (cost_budget > 0). Fills out->mi_bits / gain_bits / rows as it goes
 * (the part's estimate after each addition). Returns 1 when those are the
 * steps of out->models, 0 when the best-single fallback replaced them. */
static int greedy(const ens_data_t *d, const ens_select_opts_t *o, int by_cost,
                  ens_selection_t *out)
{
    const size_t m = d->nmodels;
    double *single = ens_xcalloc(m, sizeof(double));
    double *score = ens_xcalloc(m, sizeof(double));
    size_t *rows = ens_xcalloc(m, sizeof(size_t));
    size_t *cand = ens_xcalloc(m, sizeof(size_t));
    char *used = ens_xcalloc(m, 1);
    ens_part_t *p = ens__part_new(d, o->estimator);
    double cur = 0, spent = 0;

    while (out->n < o->budget) {
        /* With S empty the scores are the single-model estimates that break
         * ties: every model is scored then, affordable or not. */
        double room = by_cost && out->n > 0 ? o->cost_budget + 1e-12 : -1;
        size_t nc = score_step(p, d, used, spent, room, cand, score, rows);
        for (size_t i = 0; i < nc && out->n == 0; i++)
            single[cand[i]] = score[i];
        size_t best = SIZE_MAX;
        double best_val = -INFINITY, best_gain = 0;
        for (size_t i = 0; i < nc; i++) {
            size_t j = cand[i];
            double c = d->cost[j] > 0 ? d->cost[j] : 1e-12;
            if (by_cost && spent + d->cost[j] > o->cost_budget + 1e-12)
                continue;
            double gain = score[i] - cur;
            double val = by_cost ? gain / c : gain;
            if (best == SIZE_MAX || val > best_val + TIE_EPS ||
                (val > best_val - TIE_EPS && tie_better(d, single, j, best))) {
                best = j;
                best_val = val;
                best_gain = gain;
            }
        }
        if (best == SIZE_MAX)
            break;
        /* The first model is always taken: an empty ensemble answers nothing. */
        if (out->n > 0 && !(best_gain > o->min_gain_bits))
            break;
        /* The part reuses the score of best: no pass for its estimate. */
        ens__part_add(p, best);
        cur = ens__part_bits(p, &out->rows[out->n]);
        out->mi_bits[out->n] = cur;
        out->gain_bits[out->n] = cur - (out->n ? out->mi_bits[out->n - 1] : 0);
        used[best] = 1;
        spent += d->cost[best];
        out->models[out->n++] = best;
    }
    ens__part_destroy(&p);

    int steps = by_cost ? !best_single(d, o, single, cur, out) : 1;
    free(single);
    free(score);
    free(rows);
    free(cand);
    free(used);
    return steps;
}

static void top_k(const ens_data_t *d, const ens_select_opts_t *o, ens_selection_t *out)
{
    double *acc = ens_xcalloc(d->nmodels, sizeof(double));
    char *used = ens_xcalloc(d->nmodels, 1);
    for (size_t j = 0; j < d->nmodels; j++)
        acc[j] = ens_data_accuracy(d, j);
    while (out->n < o->budget) {
        size_t best = SIZE_MAX;
        for (size_t j = 0; j < d->nmodels; j++)
            if (!used[j] && (best == SIZE_MAX || acc[j] > acc[best] + TIE_EPS ||
                             (acc[j] > acc[best] - TIE_EPS &&
                              strcmp(d->model_names[j], d->model_names[best]) < 0)))
                best = j;
        used[best] = 1;
        out->models[out->n++] = best;
    }
    free(acc);
    free(used);
}

static void random_pick(const ens_data_t *d, const ens_select_opts_t *o, ens_selection_t *out)
{
    size_t *idx = ens_xcalloc(d->nmodels, sizeof(size_t));
    for (size_t j = 0; j < d->nmodels; j++)
        idx[j] = j;
    ens_rng_t rng;
    ens_rng_seed(&rng, o->seed);
    ens_rng_shuffle(&rng, idx, d->nmodels);
    for (size_t i = 0; i < o->budget; i++)
        out->models[out->n++] = idx[i];
    free(idx);
}

static void caruana(const ens_data_t *d, const ens_select_opts_t *o, ens_selection_t *out)
{
    double *acc = ens_xcalloc(d->nmodels, sizeof(double));
    char *used = ens_xcalloc(d->nmodels, 1);
    for (size_t j = 0; j < d->nmodels; j++)
        acc[j] = ens_data_accuracy(d, j);
    while (out->n < o->budget) {
        size_t best = SIZE_MAX;
        double best_val = -1;
        for (size_t j = 0; j < d->nmodels; j++) {
            if (used[j])
                continue;
            out->models[out->n] = j;
            ens_combiner_t *c = ens_combiner_fit(d, out->models, out->n + 1, ENS_COMB_VOTE);
            double val = ens_combiner_train_accuracy(c);
            ens_combiner_destroy(&c);
            if (best == SIZE_MAX || val > best_val + TIE_EPS ||
                (val > best_val - TIE_EPS && acc[j] > acc[best] + TIE_EPS))
                best = j, best_val = val;
        }
        used[best] = 1;
        out->models[out->n++] = best;
    }
    free(acc);
    free(used);
}

/* Cuts the selection to the prefix whose published combiner predicts best
 * (leave-one-out) on d. A longer prefix replaces the best shorter one only if
 * it wins clearly: on the rows where exactly one of the two is right, the
 * longer must be right PRUNE_Z standard deviations more often than a coin
 * flip would make it (a one-sided sign test, as in McNemar's test). Without
 * that guard, noise in a few hundred rows buys extra models that then answer
 * worse on new rows. */
#define PRUNE_Z 1.645
static void prune_prefix(const ens_data_t *d, ens_selection_t *out)
{
    uint8_t *best_pred = ens_xmalloc(d->nrows + 1);
    uint8_t *pred = ens_xmalloc(d->nrows + 1);
    ens__prefix_t *pre = ens__prefix_applies(d) ? ens__prefix_new(d) : NULL;
    size_t best_n = 0;
    for (size_t n = 1; n <= out->n; n++) {
        if (pre) {
            ens__prefix_add(pre, out->models[n - 1], pred);
        } else {
            ens_combiner_t *c = ens__combiner_fit_best_loo(d, out->models, n, pred);
            ens_combiner_destroy(&c);
        }
        double wins = 0, losses = 0;
        for (size_t r = 0; r < d->nrows && best_n > 0; r++) {
            int now = pred[r] == d->y[r], before = best_pred[r] == d->y[r];
            wins += now && !before;
            losses += before && !now;
        }
        if (best_n == 0 || wins - losses > PRUNE_Z * sqrt(wins + losses)) {
            best_n = n;
            memcpy(best_pred, pred, d->nrows);
        }
    }
    ens__prefix_destroy(&pre);
    out->n = best_n;
    free(best_pred);
    free(pred);
}

/* C(n, k) saturating at UINT64_MAX. */
static uint64_t choose(size_t n, size_t k)
{
    long double v = 1;
    for (size_t i = 1; i <= k; i++)
        v = v * (long double)(n - k + i) / (long double)i;
    return v >= 1.8e19L ? UINT64_MAX : (uint64_t)(v + 0.5L);
}

static double subset_estimate(const ens_data_t *d, ens_estimator_t est, const size_t *s, size_t k)
{
    double bits = 0;
    size_t rows;
    if (ens_mi(d, s, k, est, &bits, &rows) < 0)
        return -INFINITY;
    return bits;
}

/* Orders the subset greedily so that the reported steps make sense. */
static void order_greedily(const ens_data_t *d, ens_estimator_t est, ens_selection_t *out)
{
    ens_part_t *p = ens__part_new(d, est);
    for (size_t i = 0; i < out->n; i++) {
        size_t bi = i;
        double bv = -INFINITY;
        for (size_t h = i; h < out->n; h++) {
            size_t rows;
            double v = ens__part_score(p, out->models[h], &rows);
            if (v > bv + TIE_EPS)
                bi = h, bv = v;
        }
        size_t t = out->models[i];
        out->models[i] = out->models[bi];
        out->models[bi] = t;
        ens__part_add(p, out->models[i]);
    }
    ens__part_destroy(&p);
}

static int exhaustive(const ens_data_t *d, const ens_select_opts_t *o, ens_selection_t *out,
                      char *err, size_t errlen)
{
    uint64_t total = 0;
    for (size_t k = 1; k <= o->budget; k++) {
        uint64_t c = choose(d->nmodels, k);
        total = c > UINT64_MAX - total ? UINT64_MAX : total + c;
    }
    if (total > o->exhaustive_limit)
        return fail(err, errlen, ENS_ETOOBIG,
                    "exhaustive: %zu models with budget %zu make %llu subsets, above the limit "
                    "of %llu; use greedy-mi or a smaller pool",
                    d->nmodels, o->budget, (unsigned long long)total,
                    (unsigned long long)o->exhaustive_limit);
    size_t s[ENS_SELECT_MAX];
    double best = -INFINITY;
    for (size_t k = 1; k <= o->budget; k++) {
        for (size_t i = 0; i < k; i++)
            s[i] = i;
        for (;;) {
            double v = subset_estimate(d, o->estimator, s, k);
            if (v > best + TIE_EPS) {
                best = v;
                out->n = k;
                memcpy(out->models, s, k * sizeof(size_t));
            }
            /* Next k-combination in lexicographic order. */
            size_t i = k;
            while (i > 0 && s[i - 1] == d->nmodels - k + i - 1)
                i--;
            if (i == 0)
                break;
            s[i - 1]++;
            for (size_t h = i; h < k; h++)
                s[h] = s[h - 1] + 1;
        }
    }
    order_greedily(d, o->estimator, out);
    return 0;
}

int ens_select(const ens_data_t *d, const ens_select_opts_t *o, ens_selection_t *out, char *err,
               size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if ((size_t)o->strategy >= ENS_STRAT_COUNT)
        return fail(err, errlen, ENS_EINVAL, "unknown strategy");
    if (o->budget == 0 || o->budget > ENS_SELECT_MAX)
        return fail(err, errlen, ENS_EINVAL, "budget must be in 1..%d", ENS_SELECT_MAX);
    if (o->budget > d->nmodels)
        return fail(err, errlen, ENS_EINVAL, "budget %zu is larger than the %zu models", o->budget,
                    d->nmodels);
    if (d->nrows == 0)
        return fail(err, errlen, ENS_EEMPTY, "no rows to select on");
    if (o->strategy == ENS_STRAT_GREEDY_COST && !(o->cost_budget > 0))
        return fail(err, errlen, ENS_EINVAL, "greedy-cost needs a positive cost budget");

    /* The greedy records its steps as it goes; pruning keeps a prefix of them. */
    int steps = 0;
    switch (o->strategy) {
    case ENS_STRAT_GREEDY_MI:
        steps = greedy(d, o, 0, out);
        if (o->prune)
            prune_prefix(d, out);
        break;
    case ENS_STRAT_GREEDY_COST:
        steps = greedy(d, o, 1, out);
        if (out->n == 0)
            return fail(err, errlen, ENS_EINVAL, "no model fits in the cost budget %g",
                        o->cost_budget);
        if (o->prune)
            prune_prefix(d, out);
        break;
    case ENS_STRAT_TOPK:
        top_k(d, o, out);
        break;
    case ENS_STRAT_RANDOM:
        random_pick(d, o, out);
        break;
    case ENS_STRAT_CARUANA:
        caruana(d, o, out);
        break;
    case ENS_STRAT_EXHAUSTIVE: {
        int rc = exhaustive(d, o, out, err, errlen);
        if (rc < 0)
            return rc;
        break;
    }
    default:
        break;
    }
    if (!steps)
        fill_steps(d, o->estimator, out);
    fill_cost(d, out);
    return 0;
}

void ens_selection_steps(const ens_data_t *d, ens_estimator_t est, ens_selection_t *sel)
{
    fill_steps(d, est, sel);
    fill_cost(d, sel);
}
