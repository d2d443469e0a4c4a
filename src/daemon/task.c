/* task.c - the task registry, windows and joins (see task.h). */
#include "task.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "ensembled/err.h"
#include "ensembled/xalloc.h"
#include "log.h"

typedef struct {
    ens_task_t t;
    UT_hash_handle hh; /* keyed by t.name[0..t.len) */
} entry_t;

struct ens_tasks_s {
    const ens_config_t *conf;
    ens_task_hooks_t hooks; /* all NULL until set */
    entry_t *by_name;       /* uthash */
    entry_t **by_id;        /* count entries */
    size_t count, cap;
};

static void notify_added(const ens_task_t *t, ens_name_kind_t kind, uint32_t id, ens_str_t name)
{
    const ens_task_hooks_t *h = &t->owner->hooks;
    if (h->added)
        h->added(h->ud, t, kind, id, name);
}

/* A joined query becomes a window row. */
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
    const ens_task_hooks_t *h = &t->owner->hooks;
    if (h->query && t->joining)
        h->query(h->ud, t, t->joining, t->joining_len);
    if (h->joined)
        h->joined(h->ud, t, y, x, nm, ts);
}

ens_tasks_t *ens_tasks_new(const ens_config_t *conf)
{
    ens_tasks_t *ts = ens_xcalloc(1, sizeof(*ts));
    ts->conf = conf;
    return ts;
}

void ens_tasks_set_hooks(ens_tasks_t *ts, const ens_task_hooks_t *hooks)
{
    ts->hooks = *hooks;
}

static void task_free(ens_task_t *t)
{
    ens_window_destroy(&t->window);
    ens_join_destroy(&t->join);
    free(t->last_seen);
    free(t->last_row);
    free(t->name);
}

void ens_tasks_destroy(ens_tasks_t **tp)
{
    ens_tasks_t *ts = *tp;
    if (!ts)
        return;
    HASH_CLEAR(hh, ts->by_name);
    for (size_t i = 0; i < ts->count; i++) {
        task_free(&ts->by_id[i]->t);
        free(ts->by_id[i]);
    }
    free(ts->by_id);
    free(ts);
    *tp = NULL;
}

size_t ens_tasks_count(const ens_tasks_t *ts)
{
    return ts->count;
}

ens_task_t *ens_tasks_get(const ens_tasks_t *ts, uint32_t id)
{
    return id < ts->count ? &ts->by_id[id]->t : NULL;
}

ens_task_t *ens_tasks_find(const ens_tasks_t *ts, const char *name, size_t len)
{
    entry_t *e = NULL;
    HASH_FIND(hh, ts->by_name, name, len, e);
    return e ? &e->t : NULL;
}

ens_task_t *ens_tasks_intern(ens_tasks_t *ts, const char *name, size_t len)
{
    ens_task_t *found = ens_tasks_find(ts, name, len);
    if (found)
        return found;
    entry_t *e = ens_xcalloc(1, sizeof(*e));
    ens_task_t *t = &e->t;
    t->id = (uint32_t)ts->count;
    t->owner = ts;
    t->name = ens_xstrndup(name, len);
    t->len = len;
    t->conf = *ens_config_task(ts->conf, t->name);
    /* Every model slot: ingest.max_models caps what ingest adds, not what a
     * restore brings back. Columns are allocated as models appear. */
    t->window = ens_window_new(t->conf.window_rows, ENS_MAX_MODELS);
    t->join = ens_join_new(t->conf.join_max_pending, t->conf.join_ttl, on_joined, t);
    t->last_seen = ens_xcalloc(ENS_MAX_MODELS, sizeof(double));
    t->last_row = ens_xcalloc(ENS_MAX_MODELS, sizeof(double));
    if (ts->count == ts->cap) {
        ts->cap = ts->cap ? 2 * ts->cap : 8;
        ts->by_id = ens_xreallocarray(ts->by_id, ts->cap, sizeof(entry_t *));
    }
    ts->by_id[ts->count++] = e;
    HASH_ADD_KEYPTR(hh, ts->by_name, t->name, t->len, e);
    ENS_LOG(INFO, "task %s: created (window %zu rows, budget %zu, %s, %s)", t->name,
            t->conf.window_rows, t->conf.budget, ens_strategy_name(t->conf.strategy),
            ens_estimator_name(t->conf.estimator));
    ens_str_t s = {t->name, t->len};
    notify_added(t, ENS_NAME_TASK, t->id, s);
    return t;
}

void ens_tasks_set_config(ens_tasks_t *ts, const ens_config_t *conf, double mono)
{
    ts->conf = conf;
    for (size_t i = 0; i < ts->count; i++) {
        ens_task_t *t = &ts->by_id[i]->t;
        ens_task_conf_t next = *ens_config_task(conf, t->name);
        if (next.window_rows != t->conf.window_rows)
            ENS_LOG(NOTICE, "task %s: window.rows stays %zu until restart", t->name,
                    t->conf.window_rows);
        next.window_rows = t->conf.window_rows;
        t->conf = next;
        ens_join_set_limits(t->join, next.join_max_pending, next.join_ttl, mono);
    }
}

void ens_tasks_tick(ens_tasks_t *ts, double now, double mono)
{
    for (size_t i = 0; i < ts->count; i++) {
        ens_task_t *t = &ts->by_id[i]->t;
        ens_join_expire(t->join, mono);
        if (t->conf.window_max_age > 0)
            ens_window_expire_before(t->window, now - t->conf.window_max_age);
    }
}

int ens_task_model(ens_task_t *t, const char *name, size_t len)
{
    size_t before = ens_window_models(t->window);
    int id = ens_window_model(t->window, name, len);
    if (id >= 0 && (size_t)id == before)
        notify_added(t, ENS_NAME_MODEL, (uint32_t)id, ens_window_model_str(t->window, id));
    return id;
}

int ens_task_label(ens_task_t *t, const char *name, size_t len)
{
    size_t before = ens_window_labels(t->window);
    int id = ens_window_label(t->window, name, len);
    if (id >= 0 && id != ENS_SYM_ABSTAIN && (size_t)id == before)
        notify_added(t, ENS_NAME_LABEL, (uint32_t)id, ens_window_label_str(t->window, id));
    return id;
}

void ens_task_predictions(ens_task_t *t, const void *key, size_t klen, const ens_join_pred_t *preds,
                          size_t n, double mono)
{
    for (size_t i = 0; i < n; i++)
        t->last_seen[preds[i].model] = mono;
    t->joining = key;
    t->joining_len = klen;
    ens_join_predictions(t->join, key, klen, preds, n, mono);
    t->joining = NULL;
}

void ens_task_truth(ens_task_t *t, const void *key, size_t klen, uint8_t y, double mono, double ts)
{
    t->joining = key;
    t->joining_len = klen;
    ens_join_label(t->join, key, klen, y, mono, ts);
    t->joining = NULL;
}

void ens_task_sampled_out(ens_task_t *t)
{
    t->sampled_out++;
}

int ens_task_restore_row(ens_task_t *t, uint8_t y, const uint8_t *x, size_t nx, double ts)
{
    return ens_window_push(t->window, y, x, nx, ts);
}

void ens_task_restore_query(ens_task_t *t, const void *key, size_t len, double mono)
{
    ens_join_restore_joined(t->join, key, len, mono);
}

void ens_task_restored(ens_task_t *t, double mono)
{
    size_t nm = ens_window_models(t->window), n = ens_window_rows(t->window);
    for (size_t m = 0; m < nm; m++)
        t->last_seen[m] = mono;
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < nm; m++)
            if (ens_window_x(t->window, i, m) != ENS_SYM_MISSING &&
                ens_window_ts(t->window, i) > t->last_row[m])
                t->last_row[m] = ens_window_ts(t->window, i);
}
