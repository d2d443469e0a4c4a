/* task.c - per-task state: the sliding window and the join feeding it. */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "ensembled/xalloc.h"
#include "state.h"

/* A joined query becomes a window row; enough new rows start a recompute. */
static void on_joined(void *ud, uint8_t y, const ens_join_pred_t *preds, size_t n, double ts)
{
    ens_task_t *t = ud;
    uint8_t x[ENS_MAX_MODELS];
    size_t nm = ens_window_models(t->window);
    memset(x, ENS_SYM_MISSING, nm);
    for (size_t i = 0; i < n; i++) {
        x[preds[i].model] = preds[i].sym;
        if (ts > t->last_row[preds[i].model])
            t->last_row[preds[i].model] = ts;
    }
    if (ens_window_push(t->window, y, x, nm, ts) < 0) {
        /* Symbols come from this window's own dictionaries: cannot fail. */
        ENS_LOG(ERR, "task %s: window refused a joined row", t->name);
        return;
    }
    ens_state_row(t->d, t, y, x, nm, ts);
    t->rows_since_publish++;
    size_t every = t->d->conf.publish_every_labels;
    if (every > 0 && t->rows_since_publish >= every)
        ens_recompute_start(t);
}

ens_task_t *ens_task_find(ens_daemon_t *d, const char *name, size_t len)
{
    ens_task_t *t = NULL;
    HASH_FIND(hh, d->tasks, name, len, t);
    return t;
}

ens_task_t *ens_task_create(ens_daemon_t *d, const char *name, size_t len)
{
    if (d->ntasks >= d->conf.max_tasks)
        return NULL;
    ens_task_t *t = ens_xcalloc(1, sizeof(*t));
    t->name = ens_xstrndup(name, len);
    t->d = d;
    t->conf = *ens_config_task(&d->conf, t->name);
    t->window = ens_window_new(t->conf.window_rows, d->conf.max_models);
    t->join = ens_join_new(t->conf.join_max_pending, t->conf.join_ttl, on_joined, t);
    msgpack_sbuffer_init(&t->body);
    t->last_seen = ens_xcalloc(d->conf.max_models, sizeof(double));
    t->last_row = ens_xcalloc(d->conf.max_models, sizeof(double));
    HASH_ADD_KEYPTR(hh, d->tasks, t->name, len, t);
    d->ntasks++;
    ENS_LOG(INFO, "task %s: created (window %zu rows, budget %zu, %s, %s)", t->name,
            t->conf.window_rows, t->conf.budget, ens_strategy_name(t->conf.strategy),
            ens_estimator_name(t->conf.estimator));
    return t;
}

static void task_free(ens_task_t *t)
{
    ens_window_destroy(&t->window);
    ens_join_destroy(&t->join);
    for (size_t i = 0; i < t->pub_n; i++)
        free(t->pub_models[i]);
    free(t->pub_models);
    msgpack_sbuffer_destroy(&t->body);
    free(t->last_seen);
    free(t->last_row);
    free(t->name);
    free(t);
}

void ens_task_destroy_all(ens_daemon_t *d)
{
    ens_task_t *t, *tmp;
    HASH_ITER(hh, d->tasks, t, tmp)
    {
        HASH_DEL(d->tasks, t);
        task_free(t);
    }
    d->ntasks = 0;
}

void ens_task_apply_conf(ens_task_t *t)
{
    ens_task_conf_t next = *ens_config_task(&t->d->conf, t->name);
    if (next.window_rows != t->conf.window_rows)
        ENS_LOG(NOTICE, "task %s: window.rows stays %zu until restart", t->name,
                t->conf.window_rows);
    next.window_rows = t->conf.window_rows;
    t->conf = next;
    ens_join_set_limits(t->join, next.join_max_pending, next.join_ttl, ens_now());
}

void ens_task_tick(ens_task_t *t, double now)
{
    ens_join_expire(t->join, now);
    if (t->conf.window_max_age > 0)
        ens_window_expire_before(t->window, now - t->conf.window_max_age);
}
