/* recompute.c - selection jobs on the libuv thread pool (see recompute.h). */
#include "recompute.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ensembled/err.h"
#include "ensembled/xalloc.h"
#include "log.h"

typedef struct {
    int busy;              /* a job runs */
    int again;             /* another was asked for meanwhile */
    size_t rows_since;     /* rows joined since the last job started */
    double last_select_at; /* monotonic time the last job finished (0: never) */
    double last_select_ms; /* how long it took */
    /* The failure the task's selection is in, logged once on entering it and
     * once on leaving it rather than every round. */
    int fail_code;        /* its ENS_E* or libuv code (0: selection works) */
    uint64_t fail_rounds; /* rounds failed since */
    double fail_since;    /* monotonic time it began */
    char fail_reason[32]; /* its reason field */
} slot_t;

struct ens_recompute_s {
    uv_loop_t *loop;
    const ens_tasks_t *tasks;
    const ens_config_t *conf;
    ens_recompute_hooks_t hooks;
    slot_t *slots; /* by task id */
    size_t nslots;
    int inflight;
    int stopping;
};

typedef struct {
    uv_work_t req;
    ens_recompute_t *owner;
    uint32_t task;    /* its id */
    ens_data_t *snap; /* the window, owned, immutable while the job runs */
    double *seen_age; /* per snap model */
    double *row_age;  /* per snap model, -1: no row */
    uint32_t *cost_n; /* per snap model: answers with a cost in the window */
    ens_str_t *prev;  /* the published set, copied */
    char *prev_bytes; /* the copies' bytes */
    size_t nprev;
    ens_pipeline_opts_t opts;
    double started; /* monotonic */
    /* results */
    int rc;
    char err[256];
    ens_pipeline_t *result;
} job_t;

static slot_t *slot(ens_recompute_t *rc, uint32_t id)
{
    rc->slots = ens_xgrow_zeroed(rc->slots, &rc->nslots, (size_t)id + 1, sizeof(slot_t));
    return &rc->slots[id];
}

ens_recompute_t *ens_recompute_new(uv_loop_t *loop, const ens_tasks_t *tasks,
                                   const ens_config_t *conf, const ens_recompute_hooks_t *hooks)
{
    ens_recompute_t *rc = ens_xcalloc(1, sizeof(*rc));
    rc->loop = loop;
    rc->tasks = tasks;
    rc->conf = conf;
    rc->hooks = *hooks;
    return rc;
}

void ens_recompute_destroy(ens_recompute_t **rp)
{
    ens_recompute_t *rc = *rp;
    if (!rc)
        return;
    free(rc->slots);
    free(rc);
    *rp = NULL;
}

void ens_recompute_set_config(ens_recompute_t *rc, const ens_config_t *conf)
{
    rc->conf = conf;
}

static void work(uv_work_t *req)
{
    job_t *j = req->data;
    ens_pipeline_in_t in = {j->snap, j->seen_age, j->row_age, j->prev, j->nprev, j->cost_n};
    j->rc = ens_pipeline_run(&in, &j->opts, &j->result, j->err, sizeof(j->err));
}

static void job_free(job_t *j)
{
    ens_pipeline_destroy(&j->result);
    ens_data_destroy(&j->snap);
    free(j->seen_age);
    free(j->row_age);
    free(j->cost_n);
    free(j->prev);
    free(j->prev_bytes);
    free(j);
}

/* The reason field of a failure: a word a query can match. */
static void fail_reason(int code, char *out, size_t len)
{
    if (code == ENS_EEMPTY) {
        /* The usual one: a task whose models all went quiet. */
        snprintf(out, len, "no_model_in_pool");
        return;
    }
    switch (code) {
#define ENS__ERR_REASON(n, value, text)                                                            \
    case ENS_##n:                                                                                  \
        snprintf(out, len, "%s", &#n[1]);                                                          \
        break;
        ENS_ERR_MAP(ENS__ERR_REASON)
#undef ENS__ERR_REASON
    default:
        uv_err_name_r(code, out, len);
    }
    for (char *c = out; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
}

/* A round failed: logged when the task enters this failure (a quiet task
 * fails every round, and says so once), at debug level after that. */
static void selection_failed(slot_t *sl, const ens_task_t *t, int code, const char *why)
{
    if (code == sl->fail_code) {
        sl->fail_rounds++;
        ENS_LOG(DEBUG, "task %s: selection still fails (%llu rounds): %s", t->name,
                (unsigned long long)sl->fail_rounds, why);
        return;
    }
    sl->fail_code = code;
    sl->fail_rounds = 1;
    sl->fail_since = ens_mono();
    fail_reason(code, sl->fail_reason, sizeof(sl->fail_reason));
    ens_logf(code == ENS_EEMPTY ? ENS_LOG_NOTICE : ENS_LOG_WARNING,
             ENS_LOG_FIELDS({"task", t->name}, {"reason", sl->fail_reason}, {"state", "failing"}),
             "task %s: selection failed: %s (logged again when this changes)", t->name, why);
}

/* A round succeeded: the end of a failure, if the task was in one. */
static void selection_works(slot_t *sl, const ens_task_t *t)
{
    if (sl->fail_code == 0)
        return;
    char rounds[32];
    snprintf(rounds, sizeof(rounds), "%llu", (unsigned long long)sl->fail_rounds);
    ens_logf(ENS_LOG_NOTICE,
             ENS_LOG_FIELDS({"task", t->name}, {"reason", sl->fail_reason}, {"state", "ok"},
                            {"failed_rounds", rounds}),
             "task %s: selection works again, after %llu failed round%s over %.0f s (%s)", t->name,
             (unsigned long long)sl->fail_rounds, sl->fail_rounds == 1 ? "" : "s",
             ens_mono() - sl->fail_since, sl->fail_reason);
    sl->fail_code = 0;
}

static void after_work(uv_work_t *req, int status)
{
    job_t *j = req->data;
    ens_recompute_t *rc = j->owner;
    ens_task_t *t = ens_tasks_get(rc->tasks, j->task);
    slot_t *sl = slot(rc, j->task);
    rc->inflight--;
    sl->busy = 0;
    sl->last_select_at = ens_mono();
    sl->last_select_ms = (sl->last_select_at - j->started) * 1000;
    if (status < 0 || j->rc < 0) {
        selection_failed(sl, t, status < 0 ? status : j->rc,
                         status < 0 ? uv_strerror(status) : j->err);
    } else {
        selection_works(sl, t);
        if (!rc->stopping)
            rc->hooks.done(rc->hooks.ud, t, j->result);
    }
    job_free(j);
    if (sl->again && !rc->stopping) {
        sl->again = 0;
        ens_recompute_start(rc, t);
    }
}

/* The job's own copies: the settings, the published set, the ages. */
static void job_inputs(ens_recompute_t *rc, job_t *j, const ens_task_t *t)
{
    const ens_task_conf_t *c = &t->conf;
    ens_pipeline_opts_default(&j->opts);
    j->opts.select.strategy = c->strategy;
    j->opts.select.estimator = c->estimator;
    j->opts.select.budget = c->budget;
    j->opts.select.cost_budget = c->cost_budget;
    j->opts.select.min_gain_bits = c->min_gain_bits;
    j->opts.min_rows = c->min_rows;
    j->opts.retire_after = c->retire_after;
    j->opts.explore_rate = c->explore_rate;
    j->opts.min_improvement_bits = rc->conf->min_improvement_bits;
    size_t nm = j->snap->nmodels, ids[ENS_MAX_MODELS];
    double now = ens_now(), mono = ens_mono();
    /* The snapshot's columns are the models holding a slot, in id order. */
    ens_window_model_ids(t->window, ids);
    j->seen_age = ens_xcalloc(nm + 1, sizeof(double));
    j->row_age = ens_xcalloc(nm + 1, sizeof(double));
    j->cost_n = ens_xcalloc(nm + 1, sizeof(uint32_t));
    for (size_t m = 0; m < nm; m++) {
        ens_window_cost(t->window, ids[m], &j->cost_n[m]);
        j->seen_age[m] = mono - t->last_seen[ids[m]];
        j->row_age[m] = t->last_row[ids[m]] > 0 ? now - t->last_row[ids[m]] : -1;
    }
    const ens_str_t *prev = NULL;
    size_t n = 0, bytes = 0, off = 0;
    rc->hooks.published(rc->hooks.ud, t, &prev, &n);
    for (size_t i = 0; i < n; i++)
        bytes += prev[i].len;
    j->prev = ens_xcalloc(n + 1, sizeof(ens_str_t));
    j->prev_bytes = ens_xmalloc(bytes + 1);
    for (size_t i = 0; i < n; i++) {
        memcpy(j->prev_bytes + off, prev[i].ptr, prev[i].len);
        j->prev[i].ptr = j->prev_bytes + off;
        j->prev[i].len = prev[i].len;
        off += prev[i].len;
    }
    j->nprev = n;
}

static job_t *job_new(ens_recompute_t *rc, const ens_task_t *t)
{
    job_t *j = ens_xcalloc(1, sizeof(*j));
    j->owner = rc;
    j->task = t->id;
    j->snap = ens_window_snapshot(t->window);
    j->snap->open = t->conf.answers == ENS_ANSWERS_OPEN;
    job_inputs(rc, j, t);
    j->started = ens_mono();
    j->req.data = j;
    return j;
}

int ens_recompute_run_sync(ens_recompute_t *rc, ens_task_t *t, char *err, size_t errlen)
{
    if (ens_window_rows(t->window) == 0 || ens_window_models_held(t->window) == 0) {
        snprintf(err, errlen, "task %s has no joined row", t->name);
        return ENS_EEMPTY;
    }
    job_t *j = job_new(rc, t);
    work(&j->req);
    int result = j->rc;
    if (result == 0)
        rc->hooks.done(rc->hooks.ud, t, j->result);
    else
        snprintf(err, errlen, "%s", j->err);
    job_free(j);
    return result;
}

void ens_recompute_start(ens_recompute_t *rc, ens_task_t *t)
{
    if (rc->stopping)
        return;
    slot_t *sl = slot(rc, t->id);
    if (sl->busy) {
        sl->again = 1;
        return;
    }
    sl->rows_since = 0;
    if (ens_window_rows(t->window) == 0 || ens_window_models_held(t->window) == 0)
        return;
    job_t *j = job_new(rc, t);
    int err = uv_queue_work(rc->loop, &j->req, work, after_work);
    if (err < 0) {
        ENS_LOG(ERR, "task %s: cannot queue a selection: %s", t->name, uv_strerror(err));
        job_free(j);
        return;
    }
    sl->busy = 1;
    rc->inflight++;
}

void ens_recompute_start_all(ens_recompute_t *rc)
{
    for (uint32_t i = 0; i < ens_tasks_count(rc->tasks); i++)
        ens_recompute_start(rc, ens_tasks_get(rc->tasks, i));
}

void ens_recompute_joined(ens_recompute_t *rc, ens_task_t *t)
{
    slot_t *sl = slot(rc, t->id);
    size_t every = rc->conf->publish_every_labels;
    if (++sl->rows_since >= every && every > 0)
        ens_recompute_start(rc, t);
}

void ens_recompute_stop(ens_recompute_t *rc)
{
    rc->stopping = 1;
}

int ens_recompute_inflight(const ens_recompute_t *rc)
{
    return rc->inflight;
}

void ens_recompute_task_status(const ens_recompute_t *rc, const ens_task_t *t, ens_mpw_t *w)
{
    const slot_t *sl = t->id < rc->nslots ? &rc->slots[t->id] : NULL;
    ens_mpw_cstr(w, "last_selection_ms");
    ens_mpw_double(w, sl ? sl->last_select_ms : 0);
    ens_mpw_cstr(w, "last_selection_age_s");
    if (sl && sl->last_select_at > 0)
        ens_mpw_double(w, ens_mono() - sl->last_select_at);
    else
        ens_mpw_nil(w);
}

double ens_recompute_last_seconds(const ens_recompute_t *rc, const ens_task_t *t)
{
    const slot_t *sl = t->id < rc->nslots ? &rc->slots[t->id] : NULL;
    return sl ? sl->last_select_ms / 1000 : 0;
}
