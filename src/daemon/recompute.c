/* recompute.c - selection off the loop thread.
 *
 * The loop thread copies the task's window into an immutable snapshot and
 * queues a job on the libuv thread pool; the worker selects, applies the
 * hysteresis rule, fits the combiner and estimates its accuracy on rows the
 * selection did not see; back on the loop thread the body is encoded and
 * published with the next version. Ingest keeps running meanwhile: the job
 * reads only its snapshot and its own copies of the settings.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "ensembled/combine.h"
#include "ensembled/copula.h"
#include "ensembled/mi.h"
#include "ensembled/select.h"
#include "ensembled/xalloc.h"

typedef struct {
    uv_work_t req;
    ens_task_t *t;         /* loop thread only */
    ens_data_t *snap;      /* the window, every model; owned, immutable while the job runs */
    ens_data_t *pool;      /* its eligible models: the selection's data (made by the worker) */
    double *seen_age;      /* per snap model: seconds since its latest prediction */
    double *row_age;       /* per snap model: age of its newest joined row (-1: none) */
    size_t min_rows;       /* select.min_rows */
    double retire_after;   /* select.retire_after (0: never) */
    double explore_rate;   /* select.explore_rate */
    size_t *coverage;      /* per snap model: rows in which it was asked */
    const char **excluded; /* per snap model: why it is not in the pool, or NULL */
    ens_select_opts_t opts;
    char **prev; /* the published set, copied */
    size_t nprev;
    double min_improvement;
    double started; /* monotonic-ish wall time at queueing */
    /* results */
    int rc;
    char err[256];
    ens_selection_t sel; /* the set to publish, indices into pool */
    const char *reason;  /* why this set */
    int replaced;        /* the set differs from the published one */
    ens_combiner_t *comb;
    double acc_heldout, acc_vote, acc_single, acc_insample;
    ens_bounds_t bounds;
} job_t;

/* How many more bits the fresh set carries than the published one, both
 * estimated on the same rows: those where every model of either set was
 * asked. Estimating each on its own rows would pit a set seen only on
 * exploration rows against one seen everywhere, and the best of many small
 * samples beats any threshold by chance. -INFINITY when fewer than
 * select.min_rows rows (at least 1) hold both sets: no evidence to switch. */
static double compare_sets(const job_t *j, const ens_selection_t *old, const ens_selection_t *fresh)
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
    ens_data_t *rows = ens_data_rows_asked(j->pool, both, n);
    double gain = -INFINITY, a = 0, b = 0;
    if (rows->nrows >= (j->min_rows ? j->min_rows : 1) &&
        ens_mi(rows, old->models, old->n, j->opts.estimator, &a, NULL) == 0 &&
        ens_mi(rows, fresh->models, fresh->n, j->opts.estimator, &b, NULL) == 0)
        gain = b - a;
    ens_data_destroy(&rows);
    return gain;
}

/* The hysteresis rule: the fresh selection replaces the published set only
 * if it carries min_improvement more bits, or a published model left. */
static void hysteresis(job_t *j, const ens_selection_t *fresh)
{
    ens_selection_t old = {0};
    int present = j->nprev > 0;
    for (size_t i = 0; i < j->nprev && present; i++) {
        int m = ens_data_find_model(j->pool, j->prev[i]);
        present = m >= 0 && i < ENS_SELECT_MAX;
        if (present)
            old.models[old.n++] = (size_t)m;
    }
    j->sel = *fresh;
    j->replaced = 1;
    if (j->nprev == 0) {
        j->reason = "first selection";
        return;
    }
    if (!present) {
        j->reason = "a published model left the pool";
        return;
    }
    if (old.n > j->opts.budget) {
        j->reason = "the budget is now smaller than the published set";
        return;
    }
    int same = old.n == fresh->n && memcmp(old.models, fresh->models, old.n * sizeof(size_t)) == 0;
    if (same) {
        j->replaced = 0;
        j->reason = "same set";
        return;
    }
    if (compare_sets(j, &old, fresh) >= j->min_improvement) {
        j->reason = "more information";
        return;
    }
    ens_selection_steps(j->pool, j->opts.estimator, &old);
    j->sel = old;
    j->replaced = 0;
    j->reason = "kept: the new set is not better by publish.min_improvement_bits";
}

/* Accuracy of c on the rows of test where every model of the set was asked:
 * on the others a router would not be using this set (exploration rows aside,
 * routers ask the ensemble), and the combiner would fall back to a guess. */
static double accuracy_where_asked(const ens_combiner_t *c, const ens_data_t *test,
                                   const size_t *models, size_t k)
{
    ens_data_t *rows = ens_data_rows_asked(test, models, k);
    double acc = rows->nrows ? ens_combiner_accuracy(c, rows) : NAN;
    ens_data_destroy(&rows);
    return acc;
}

/* Accuracy on rows the selection did not see: select and fit on the even
 * rows, score on the odd ones, and the other way round. */
static void honest_accuracy(job_t *j)
{
    const ens_data_t *d = j->pool;
    size_t n = d->nrows, half[2] = {(n + 1) / 2, n / 2};
    size_t *rows = ens_xcalloc(n, sizeof(size_t));
    double acc[3] = {0};
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
        ens_data_t *test = ens_data_rows(d, rows + half[h], b);
        ens_selection_t s;
        ens_select_opts_t o = j->opts;
        o.budget = o.budget > d->nmodels ? d->nmodels : o.budget;
        if (ens_select(train, &o, &s, NULL, 0) == 0) {
            ens_combiner_t *c = ens_combiner_fit_best(train, s.models, s.n);
            ens_combiner_t *v = ens_combiner_fit(train, s.models, s.n, ENS_COMB_VOTE);
            o.strategy = ENS_STRAT_TOPK;
            o.budget = 1;
            ens_selection_t top;
            ens_select(train, &o, &top, NULL, 0);
            ens_combiner_t *one = ens_combiner_fit(train, top.models, 1, ENS_COMB_WEIGHTED);
            acc[0] += accuracy_where_asked(c, test, s.models, s.n);
            acc[1] += accuracy_where_asked(v, test, s.models, s.n);
            acc[2] += accuracy_where_asked(one, test, top.models, 1);
            halves++;
            ens_combiner_destroy(&c);
            ens_combiner_destroy(&v);
            ens_combiner_destroy(&one);
        }
        ens_data_destroy(&train);
        ens_data_destroy(&test);
    }
    free(rows);
    j->acc_heldout = halves ? acc[0] / halves : NAN;
    j->acc_vote = halves ? acc[1] / halves : NAN;
    j->acc_single = halves ? acc[2] / halves : NAN;
}

/* The bounds of docs/theory.md: Fano's lower bound on the error of any
 * combiner of the set (plug-in information less two standard errors), and
 * the Gaussian-copula floor of the pool and of the set. */
static void bounds(job_t *j)
{
    ens_bounds_t *b = &j->bounds;
    b->fano = b->floor_pool = b->floor_set = b->rho_pool = NAN;
    if (j->sel.n > 0 && ens_fano_bound(j->pool, j->sel.models, j->sel.n, 2.0, &b->fano) < 0)
        b->fano = NAN;
    ens_copula_t *c = ens_copula_fit(j->pool, NULL, j->pool->nmodels);
    if (!c)
        return;
    double L = (double)(j->pool->nlabels > 2 ? j->pool->nlabels : 2);
    ens_copula_summary_t sum;
    ens_copula_summary(c, NULL, c->n, &sum);
    b->rho_pool = sum.mean;
    b->floor_pool = ens_copula_floor_fit(c, NULL, c->n, L);
    /* Fit positions equal data columns: the fit covers every model in order. */
    b->floor_set = j->sel.n > 1 ? ens_copula_floor_fit(c, j->sel.models, j->sel.n, L) : NAN;
    ens_copula_destroy(&c);
}

/* The pool: models with select.min_rows rows that answered within
 * select.retire_after. Without exploration traffic the models outside the
 * ensemble stop being asked; their coverage then tells how stale they are,
 * and a model that went silent leaves the pool instead of lingering. */
static void make_pool(job_t *j)
{
    const ens_data_t *d = j->snap;
    size_t *keep = ens_xcalloc(d->nmodels + 1, sizeof(size_t)), n = 0;
    j->coverage = ens_xcalloc(d->nmodels + 1, sizeof(size_t));
    j->excluded = ens_xcalloc(d->nmodels + 1, sizeof(char *));
    for (size_t m = 0; m < d->nmodels; m++) {
        const uint8_t *col = ens_data_col(d, m);
        for (size_t r = 0; r < d->nrows; r++)
            j->coverage[m] += col[r] != ENS_SYM_MISSING;
        if (j->retire_after > 0 && j->seen_age[m] > j->retire_after)
            j->excluded[m] = "retired: silent for longer than select.retire_after";
        else if (j->coverage[m] < j->min_rows)
            j->excluded[m] = "coverage below select.min_rows";
        else
            keep[n++] = m;
    }
    j->pool = ens_data_columns(d, keep, n);
    free(keep);
}

static void work(uv_work_t *req)
{
    job_t *j = req->data;
    ens_selection_t fresh;
    make_pool(j);
    if (j->pool->nmodels == 0) {
        j->rc = -1;
        snprintf(j->err, sizeof(j->err),
                 "no model in the pool (%zu models, none with %zu rows "
                 "that answered within select.retire_after)",
                 j->snap->nmodels, j->min_rows);
        return;
    }
    if (j->opts.budget > j->pool->nmodels)
        j->opts.budget = j->pool->nmodels;
    j->rc = ens_select(j->pool, &j->opts, &fresh, j->err, sizeof(j->err));
    if (j->rc < 0)
        return;
    hysteresis(j, &fresh);
    j->comb = ens_combiner_fit_best(j->pool, j->sel.models, j->sel.n);
    j->acc_insample = ens_combiner_train_accuracy(j->comb);
    honest_accuracy(j);
    bounds(j);
}

static void job_free(job_t *j)
{
    for (size_t i = 0; i < j->nprev; i++)
        free(j->prev[i]);
    free(j->prev);
    ens_combiner_destroy(&j->comb);
    ens_data_destroy(&j->pool);
    ens_data_destroy(&j->snap);
    free(j->coverage);
    free(j->seen_age);
    free(j->row_age);
    free(j->excluded);
    free(j);
}

static void after_work(uv_work_t *req, int status)
{
    job_t *j = req->data;
    ens_task_t *t = j->t;
    ens_daemon_t *d = t->d;
    d->inflight--;
    t->busy = 0;
    t->last_select_at = ens_now();
    t->last_select_ms = (t->last_select_at - j->started) * 1000;
    if (status < 0 || j->rc < 0) {
        ENS_LOG(WARNING, "task %s: selection failed: %s", t->name,
                status < 0 ? uv_strerror(status) : j->err);
    } else if (!d->stopping) {
        double acc[4] = {j->acc_heldout, j->acc_vote, j->acc_single, j->acc_insample};
        if (j->replaced)
            ENS_LOG(INFO, "task %s: new ensemble of %zu models (%s)", t->name, j->sel.n, j->reason);
        ens_pub_t pub = {j->pool,     j->snap,    &j->sel,     j->comb,
                         acc,         &j->bounds, j->reason,   j->replaced,
                         j->coverage, j->row_age, j->excluded, j->explore_rate};
        ens__publish_body(t, &pub);
    }
    job_free(j);
    if (t->again && !d->stopping) {
        t->again = 0;
        ens_recompute_start(t);
    }
}

void ens_recompute_start(ens_task_t *t)
{
    ens_daemon_t *d = t->d;
    if (d->stopping)
        return;
    if (t->busy) {
        t->again = 1;
        return;
    }
    t->rows_since_publish = 0;
    if (ens_window_rows(t->window) == 0 || ens_window_models(t->window) == 0)
        return;
    job_t *j = ens_xcalloc(1, sizeof(*j));
    j->t = t;
    j->snap = ens_window_snapshot(t->window);
    size_t nm = j->snap->nmodels;
    double now = ens_now();
    j->seen_age = ens_xcalloc(nm + 1, sizeof(double));
    j->row_age = ens_xcalloc(nm + 1, sizeof(double));
    for (size_t m = 0; m < nm; m++) {
        j->seen_age[m] = now - t->last_seen[m];
        j->row_age[m] = t->last_row[m] > 0 ? now - t->last_row[m] : -1;
    }
    j->min_rows = t->conf.min_rows;
    j->retire_after = t->conf.retire_after;
    j->explore_rate = t->conf.explore_rate;
    ens_select_opts_default(&j->opts);
    j->opts.strategy = t->conf.strategy;
    j->opts.estimator = t->conf.estimator;
    j->opts.budget = t->conf.budget;
    j->opts.cost_budget = t->conf.cost_budget;
    j->opts.min_gain_bits = t->conf.min_gain_bits;
    j->min_improvement = d->conf.min_improvement_bits;
    j->prev = ens_xcalloc(t->pub_n + 1, sizeof(char *));
    for (size_t i = 0; i < t->pub_n; i++)
        j->prev[i] = ens_xstrndup(t->pub_models[i], strlen(t->pub_models[i]));
    j->nprev = t->pub_n;
    j->started = ens_now();
    j->req.data = j;
    int rc = uv_queue_work(d->loop, &j->req, work, after_work);
    if (rc < 0) {
        ENS_LOG(ERR, "task %s: cannot queue a selection: %s", t->name, uv_strerror(rc));
        job_free(j);
        return;
    }
    t->busy = 1;
    d->inflight++;
}
