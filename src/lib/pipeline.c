/* pipeline.c - the selection the daemon publishes, stage by stage (see
 * pipeline.h); pipeline_body.c turns the result into a publication body. */
#include "ensembled/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/choice.h"
#include "ensembled/combine.h"
#include "ensembled/copula.h"
#include "ensembled/err.h"
#include "ensembled/xalloc.h"
#include "pipeline_int.h"

void ens_pipeline_opts_default(ens_pipeline_opts_t *o)
{
    ens_select_opts_default(&o->select);
    o->min_rows = 100;
    o->retire_after = 3600;
    o->explore_rate = 0.05;
    o->min_improvement_bits = 0.01;
}

/* Stage 1. The pool: models with min_rows rows that answered within
 * retire_after. Without exploration traffic the models outside the ensemble
 * stop being asked; their coverage then tells how stale they are, and a
 * model that went silent leaves the pool instead of lingering. */
static void make_pool(ens_pipeline_t *p)
{
    const ens_data_t *d = p->in.snap;
    size_t *keep = ens_xcalloc(d->nmodels + 1, sizeof(size_t)), n = 0;
    p->coverage = ens_xcalloc(d->nmodels + 1, sizeof(size_t));
    p->excluded = ens_xcalloc(d->nmodels + 1, sizeof(ens_excl_t));
    for (size_t m = 0; m < d->nmodels; m++) {
        /* A local count: stores through size_t * may alias the column
         * bytes, which kept the loop from being vectorized. */
        const uint8_t *col = ens_data_col(d, m);
        size_t asked = 0;
        for (size_t r = 0; r < d->nrows; r++)
            asked += col[r] != ENS_SYM_MISSING;
        p->coverage[m] = asked;
        double seen = p->in.seen_age ? p->in.seen_age[m] : 0;
        if (p->o.retire_after > 0 && seen > p->o.retire_after)
            p->excluded[m] = ENS_EXCL_RETIRED;
        else if (p->coverage[m] < p->o.min_rows)
            p->excluded[m] = ENS_EXCL_COVERAGE;
        else
            keep[n++] = m;
    }
    /* With every model in the pool (keep is then 0..n-1) the pool is the
     * snap itself: the copy was 3 to 4 % of the pipeline on 100 models and
     * 100,000 rows, page faults included, and nothing writes to the pool. */
    if (n < d->nmodels)
        p->pool = p->pool_copy = ens_data_columns(d, keep, n);
    else
        p->pool = d;
    p->from_snap = keep;
}

/* How many more bits the fresh set carries than the published one, both
 * estimated on the same rows: those where every model of either set was
 * asked. Estimating each on its own rows would pit a set seen only on
 * exploration rows against one seen everywhere, and the best of many small
 * samples beats any threshold by chance. -INFINITY when fewer than min_rows
 * rows (at least 1) hold both sets: no evidence to switch. */
static double compare_sets(const ens_pipeline_t *p, const ens_selection_t *old,
                           const ens_selection_t *fresh)
{
    size_t both[2 * ENS_SELECT_MAX], n = 0;
    for (size_t i = 0; i < old->n; i++)
        both[n++] = old->models[i];
    for (size_t i = 0; i < fresh->n; i++) {
        size_t h = 0;
        while (h < old->n && old->models[h] != fresh->models[i])
            h++;
        if (h == old->n)
            both[n++] = fresh->models[i];
    }
    ens_data_t *rows = ens_data_rows_asked(p->pool, both, n);
    ens_estimator_t est = p->o.select.estimator;
    double gain = -INFINITY, a = 0, b = 0;
    if (rows->nrows >= (p->o.min_rows ? p->o.min_rows : 1) &&
        ens_mi(rows, old->models, old->n, est, &a, NULL) == 0 &&
        ens_mi(rows, fresh->models, fresh->n, est, &b, NULL) == 0)
        gain = b - a;
    ens_data_destroy(&rows);
    return gain;
}

/* The pool index of a model named s, or -1. */
static int pool_index(const ens_data_t *pool, ens_str_t s)
{
    for (size_t m = 0; m < pool->nmodels; m++)
        if (strlen(pool->model_names[m]) == s.len &&
            memcmp(pool->model_names[m], s.ptr, s.len) == 0)
            return (int)m;
    return -1;
}

/* Stage 3. The published set, as pool indices in *old; 0 when one of its
 * models is not in the pool. */
static int published_in_pool(const ens_pipeline_t *p, ens_selection_t *old)
{
    memset(old, 0, sizeof(*old));
    for (size_t i = 0; i < p->in.nprev; i++) {
        int m = pool_index(p->pool, p->in.prev[i]);
        if (m < 0 || i >= ENS_SELECT_MAX)
            return 0;
        old->models[old->n++] = (size_t)m;
    }
    return 1;
}

/* Whether greedy-cost's published set s (pool indices) costs more than the
 * cost budget: costs are the window's means, and they move. */
static int over_cost_budget(const ens_pipeline_t *p, const ens_selection_t *s)
{
    if (p->o.select.strategy != ENS_STRAT_GREEDY_COST)
        return 0;
    double c = 0;
    for (size_t i = 0; i < s->n; i++)
        c += p->pool->cost[s->models[i]];
    return c > p->o.select.cost_budget + 1e-12;
}

/* Stage 3. The hysteresis rule: the fresh selection replaces the published
 * set only if it carries min_improvement_bits more, or a published model
 * left, or the budget shrank below the published set, or that set now costs
 * more than the cost budget. */
static void hysteresis(ens_pipeline_t *p, const ens_selection_t *fresh)
{
    ens_selection_t old;
    int present = published_in_pool(p, &old);
    p->sel = *fresh;
    p->replaced = 1;
    if (p->in.nprev == 0) {
        p->reason = ENS_REASON_FIRST;
    } else if (!present) {
        p->reason = ENS_REASON_LEFT;
    } else if (old.n > p->o.select.budget) {
        p->reason = ENS_REASON_BUDGET;
    } else if (over_cost_budget(p, &old)) {
        p->reason = ENS_REASON_COST;
    } else if (old.n == fresh->n &&
               memcmp(old.models, fresh->models, old.n * sizeof(size_t)) == 0) {
        p->replaced = 0;
        p->reason = ENS_REASON_SAME;
    } else if (compare_sets(p, &old, fresh) >= p->o.min_improvement_bits) {
        p->reason = ENS_REASON_MORE_INFO;
    } else {
        ens_selection_steps(p->pool, p->o.select.estimator, &old);
        p->sel = old;
        p->replaced = 0;
        p->reason = ENS_REASON_KEPT;
    }
}

/* Whether the set to publish is, by name and in order, the published one. */
static int same_as_prev(const ens_pipeline_t *p)
{
    if (p->in.nprev != p->sel.n)
        return 0;
    for (size_t i = 0; i < p->sel.n; i++)
        if (pool_index(p->pool, p->in.prev[i]) != (int)p->sel.models[i])
            return 0;
    return 1;
}

/* Stage 4. The final choice (choice.h) between the set hysteresis kept and
 * the top-K votes, and the published combiner of the winner. The reason
 * still speaks of the information-selected set; when another candidate won,
 * replaced says whether that one differs from the published set. */
static void final_choice(ens_pipeline_t *p)
{
    ens_selection_t info = p->sel;
    p->comb = ens_choice_published(p->pool, &p->o.select, &info, &p->sel, &p->choice);
    if (p->choice.n > 0 && p->choice.winner != 0)
        p->replaced = !same_as_prev(p);
}

/* Accuracy of c on the rows rows[0..n) of d where every model of the set
 * (models[0..k), those c was fitted on) was asked: on the others a router
 * would not be using this set (exploration rows aside, routers ask the
 * ensemble), and the combiner would fall back to a guess. NaN when there is
 * no such row. The rows are read in place: copying the test half for each
 * set copied every model's column. */
static double accuracy_where_asked(const ens_combiner_t *c, const ens_data_t *d, const size_t *rows,
                                   size_t n, const size_t *models, size_t k)
{
    uint8_t x[ENS_COMB_MAX_MODELS];
    size_t asked = 0, right = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = rows[i], m = 0;
        while (m < k && (x[m] = ens_data_col(d, models[m])[r]) != ENS_SYM_MISSING)
            m++;
        if (m < k)
            continue;
        asked++;
        right += ens_combiner_predict(c, x) == d->y[r];
    }
    return asked ? (double)right / (double)asked : NAN;
}

/* Selects and fits on train, scores on the pool's rows test[0..ntest):
 * acc[0] what the pipeline publishes where no final choice was made (the
 * selection with ens_combiner_fit_best), acc[1] majority vote over the
 * selection, acc[2] the best single model. */
static int score_half(const ens_pipeline_t *p, const ens_data_t *train, const size_t *test,
                      size_t ntest, double acc[3])
{
    ens_select_opts_t o = p->o.select;
    o.budget = o.budget > train->nmodels ? train->nmodels : o.budget;
    ens_selection_t s, top;
    if (ens_choice_select(train, &o, &s, NULL, 0) < 0)
        return -1;
    ens_combiner_t *c = ens_combiner_fit_best(train, s.models, s.n);
    o.strategy = ENS_STRAT_TOPK;
    o.budget = 1;
    if (ens_select(train, &o, &top, NULL, 0) < 0) {
        ens_combiner_destroy(&c);
        return -1;
    }
    ens_combiner_t *v = ens_combiner_fit(train, s.models, s.n, ENS_COMB_VOTE);
    ens_combiner_t *one = ens_combiner_fit(train, top.models, 1, ENS_COMB_WEIGHTED);
    acc[0] = accuracy_where_asked(c, p->pool, test, ntest, s.models, s.n);
    acc[1] = accuracy_where_asked(v, p->pool, test, ntest, s.models, s.n);
    acc[2] = accuracy_where_asked(one, p->pool, test, ntest, top.models, 1);
    ens_combiner_destroy(&c);
    ens_combiner_destroy(&v);
    ens_combiner_destroy(&one);
    return 0;
}

/* Stage 5 where no final choice was made: select and fit on the even rows,
 * score on the odd ones, and the other way round; the mean of the two
 * halves. */
static void honest_halves(ens_pipeline_t *p)
{
    const ens_data_t *d = p->pool;
    size_t n = d->nrows, half[2] = {(n + 1) / 2, n / 2};
    size_t *rows = ens_xcalloc(n + 1, sizeof(size_t));
    double sum[3] = {0}, acc[3];
    int halves = 0;
    for (int h = 0; h < 2 && half[0] > 0 && half[1] > 0; h++) {
        size_t a = 0, b = 0;
        for (size_t r = 0; r < n; r++) {
            if ((r & 1) == (size_t)h)
                rows[a++] = r;
            else
                rows[half[h] + b++] = r;
        }
        ens_data_t *train = ens_data_rows(d, rows, a);
        if (score_half(p, train, rows + half[h], b, acc) == 0) {
            for (int i = 0; i < 3; i++)
                sum[i] += acc[i];
            halves++;
        }
        ens_data_destroy(&train);
    }
    free(rows);
    p->acc_combiner = halves ? sum[0] / halves : NAN;
    p->acc_vote = halves ? sum[1] / halves : NAN;
    p->acc_single = halves ? sum[2] / halves : NAN;
}

/* Stage 5. Accuracy on rows the selection did not see. Where the final
 * choice ran, its folds already selected and fitted on each training part
 * and scored the held-out part: the published candidate's cross-validated
 * accuracy, the fold selections' majority vote and top-1 (the best single
 * model of each training part) are the figures, on 4/5 of the rows to train
 * instead of 1/2 and at no cost of their own. Elsewhere (pruning off,
 * another strategy, under 10 rows) the two halves. */
static void honest_accuracy(ens_pipeline_t *p)
{
    const ens_choice_t *c = &p->choice;
    if (c->n < 2) {
        honest_halves(p);
        return;
    }
    p->acc_combiner = c->cand[c->winner].acc;
    p->acc_vote = c->vote_acc;
    p->acc_single = c->cand[1].acc;
}

/* Stage 6. Fano's lower bound on the error of any combiner of the set, and
 * the Gaussian-copula floor of the pool and of the set (docs/theory.md). */
void ens_pipeline_bounds(const ens_data_t *pool, const size_t *set, size_t k, double fano_z,
                         ens_bounds_t *out)
{
    out->fano = out->floor_pool = out->floor_set = out->rho_pool = NAN;
    if (k > 0 && ens_fano_bound(pool, set, k, fano_z, &out->fano) < 0)
        out->fano = NAN;
    ens_copula_t *c = ens_copula_fit(pool, NULL, pool->nmodels);
    if (!c)
        return;
    double L = (double)(pool->nlabels > 2 ? pool->nlabels : 2);
    ens_copula_summary_t sum;
    ens_copula_summary(c, NULL, c->n, &sum);
    out->rho_pool = sum.mean;
    out->floor_pool = ens_copula_floor_fit(c, NULL, c->n, L);
    /* Fit positions equal pool columns: the fit covers every model in order. */
    out->floor_set = k > 1 ? ens_copula_floor_fit(c, set, k, L) : NAN;
    ens_copula_destroy(&c);
}

int ens_pipeline_run(const ens_pipeline_in_t *in, const ens_pipeline_opts_t *o,
                     ens_pipeline_t **out, char *err, size_t errlen)
{
    *out = NULL;
    ens_pipeline_t *p = ens_xcalloc(1, sizeof(*p));
    p->in = *in;
    p->o = *o;
    p->budget = o->select.budget;
    make_pool(p);
    if (p->pool->nmodels == 0) {
        snprintf(err, errlen,
                 "no model in the pool (%zu models, none with %zu rows that answered within "
                 "select.retire_after)",
                 in->snap->nmodels, o->min_rows);
        ens_pipeline_destroy(&p);
        return ENS_EEMPTY;
    }
    if (p->o.select.budget > p->pool->nmodels)
        p->o.select.budget = p->pool->nmodels;
    ens_selection_t fresh;
    int rc = ens_choice_select(p->pool, &p->o.select, &fresh, err, errlen);
    if (rc < 0) {
        ens_pipeline_destroy(&p);
        return rc;
    }
    hysteresis(p, &fresh);
    final_choice(p);
    p->acc_in_sample = ens_combiner_train_accuracy(p->comb);
    honest_accuracy(p);
    ens_pipeline_bounds(p->pool, p->sel.models, p->sel.n, 2.0, &p->bounds);
    ens__pipeline_fill_body(p);
    *out = p;
    return 0;
}

const ens_body_t *ens_pipeline_body(const ens_pipeline_t *p)
{
    return &p->body;
}

void ens_pipeline_destroy(ens_pipeline_t **pp)
{
    ens_pipeline_t *p = *pp;
    if (!p)
        return;
    ens__pipeline_free_body(p);
    ens_combiner_destroy(&p->comb);
    ens_data_destroy(&p->pool_copy);
    free(p->coverage);
    free(p->excluded);
    free(p->from_snap);
    free(p);
    *pp = NULL;
}
