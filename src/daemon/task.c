/* task.c - the task registry, windows and joins (see task.h). */
#include "task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

#include "clock.h"
#include "ensembled/err.h"
#include "ensembled/router.h"
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

/* Open answers: the window's label id of class c (ENS_OPEN_NONE: "none"),
 * interned on first use; ENS_SYM_ABSTAIN stays. Negative when the window's
 * labels are full (they held choice labels before a change of mode). */
static int open_label(ens_task_t *t, uint8_t c)
{
    if (c == ENS_SYM_ABSTAIN)
        return c;
    if (t->open_label[c] < 0) {
        char name[16];
        if (c == ENS_OPEN_NONE)
            snprintf(name, sizeof(name), "none");
        else
            snprintf(name, sizeof(name), "c%u", (unsigned)c);
        int id = ens_task_label(t, name, strlen(name));
        if (id < 0)
            return id;
        t->open_label[c] = (int16_t)id;
    }
    return t->open_label[c];
}

/* Open answers: classes to label ids in place. */
static int open_row(ens_task_t *t, uint8_t *y, uint8_t *x, size_t nm)
{
    int id = open_label(t, *y);
    if (id < 0)
        return id;
    *y = (uint8_t)id;
    for (size_t m = 0; m < nm; m++) {
        if (x[m] == ENS_SYM_MISSING)
            continue;
        if ((id = open_label(t, x[m])) < 0)
            return id;
        x[m] = (uint8_t)id;
    }
    return 0;
}

/* Whether the query joining now is an exploration query of t: the
 * routers' rule (docs/protocol.md) on its join key, which ingest builds as
 * the rule's key ('u' + 8 big-endian bytes, or 's' + the id's bytes), at
 * the task's select.explore_rate, the rate its publications carry. 1 when
 * not known. */
static int joining_explored(const ens_task_t *t)
{
    const unsigned char *k = t->joining;
    size_t n = t->joining_len;
    ens_router_query_t q = {0};
    if (!k || n == 0)
        return 1;
    if (k[0] == 'u' && n == 9) {
        q.is_uint = 1;
        for (size_t i = 1; i < 9; i++)
            q.u = q.u << 8 | k[i];
    } else if (k[0] == 's') {
        q.s = (const char *)k + 1;
        q.len = n - 1;
    } else {
        return 1;
    }
    return ens_router_explore_below(ens_router_explore_hash(t->name, t->len, &q),
                                    t->conf.explore_rate);
}

/* A joined query becomes a window row, flagged explored or not. */
static void on_joined(void *ud, uint8_t y, const ens_join_pred_t *preds, size_t n, double ts)
{
    ens_task_t *t = ud;
    uint8_t x[ENS_MAX_MODELS];
    double cost[ENS_MAX_MODELS];
    size_t nm = ens_window_models(t->window);
    memset(x, ENS_SYM_MISSING, nm);
    for (size_t i = 0; i < n; i++) {
        x[preds[i].model] = preds[i].sym;
        cost[preds[i].model] = preds[i].cost;
        if (ts > t->last_row[preds[i].model])
            t->last_row[preds[i].model] = ts;
    }
    if (t->conf.answers == ENS_ANSWERS_OPEN && open_row(t, &y, x, nm) < 0) {
        if (t->open_lost++ == 0)
            ENS_LOG(ERR, "task %s: the window's labels are full; open-answer rows are lost",
                    t->name);
        return;
    }
    if (ens_window_push_costs(t->window, y, x, cost, nm, ts) < 0) {
        /* Symbols come from this window's own dictionaries: cannot fail. */
        ENS_LOG(ERR, "task %s: window refused a joined row", t->name);
        return;
    }
    ens_window_set_explored(t->window, ens_window_rows(t->window) - 1, joining_explored(t));
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
    free(t->label_seen);
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
    ens_join_set_open(t->join, t->conf.answers == ENS_ANSWERS_OPEN);
    for (size_t c = 0; c < ENS_MAX_LABELS; c++)
        t->open_label[c] = -1;
    t->last_seen = ens_xcalloc(ENS_MAX_MODELS, sizeof(double));
    t->last_row = ens_xcalloc(ENS_MAX_MODELS, sizeof(double));
    t->label_seen = ens_xcalloc(ENS_MAX_LABELS, sizeof(double));
    if (ts->count == ts->cap) {
        ts->cap = ts->cap ? 2 * ts->cap : 8;
        ts->by_id = ens_xreallocarray(ts->by_id, ts->cap, sizeof(entry_t *));
    }
    ts->by_id[ts->count++] = e;
    HASH_ADD_KEYPTR(hh, ts->by_name, t->name, t->len, e);
    ENS_LOG(INFO, "task %s: created (window %zu rows, budget %zu, %s, %s, answers %s)", t->name,
            t->conf.window_rows, t->conf.budget, ens_strategy_name(t->conf.strategy),
            ens_estimator_name(t->conf.estimator), ens_answers_name(t->conf.answers));
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
        next.answers = t->conf.answers; /* the window's rows are one kind */
        next.normalize = t->conf.normalize;
        t->conf = next;
        ens_join_set_limits(t->join, next.join_max_pending, next.join_ttl, mono);
    }
}

/* Silent since `seen` for longer than select.retire_after and than
 * join.ttl: retired, and no pending query holds it (a query expires join.ttl
 * after its first event). Never with select.retire_after = 0. */
static int retired(const ens_task_t *t, double seen, double mono)
{
    double quiet =
        t->conf.retire_after > t->conf.join_ttl ? t->conf.retire_after : t->conf.join_ttl;
    return t->conf.retire_after > 0 && mono - seen > quiet;
}

/* Frees the slot of model m if no row of the window holds it (so nothing
 * indexed by its id refers to it any more) and, unless `now_free`, it has
 * retired. */
static void free_model(ens_task_t *t, size_t m, double mono, int now_free)
{
    if (!now_free && !retired(t, t->last_seen[m], mono))
        return;
    ens_str_t name = ens_window_model_str(t->window, (int)m);
    if (!name.ptr || ens_window_present(t->window, m) > 0)
        return;
    ENS_LOG(INFO, "task %s: model %.*s retired and out of the window: its slot is free", t->name,
            (int)name.len, name.ptr);
    ens_window_release_model(t->window, (int)m);
    t->last_seen[m] = 0;
    t->last_row[m] = 0;
    t->models_freed++;
}

/* The same for label l: unused for as long (no event named it), and no
 * row holds it as its true label or as an answer. */
static void free_label(ens_task_t *t, size_t l, double mono, int now_free)
{
    if (!now_free && !retired(t, t->label_seen[l], mono))
        return;
    ens_str_t name = ens_window_label_str(t->window, (int)l);
    if (!name.ptr || ens_window_release_label(t->window, (int)l) < 0)
        return;
    t->label_seen[l] = 0;
    t->labels_freed++;
    /* An open task's class names its label: the next class interns it
     * again under whatever id it gets. */
    for (size_t c = 0; c < ENS_MAX_LABELS; c++)
        if (t->open_label[c] == (int16_t)l)
            t->open_label[c] = -1;
}

/* Join entries expired: EVENT_EXPIRE after each event, and on the tick
 * steps of EXPIRE_STEP for each task, as many as fit in TICK_EXPIRE_TIME
 * of the loop's time over all tasks (one at least each, so that no task
 * waits for another). Restored tombstones all fall due join.ttl after the
 * restore, and a flood's pending queries ttl after it: dropping hundreds
 * of thousands at once (64 tasks of join.max_pending) would stall the
 * loop, while a bound by count alone would let them outlive the ttl by
 * seconds (about 8 s for 20,000 entries at 256 per tick). An event adds
 * at most one entry, so the events keep ahead of any flood. */
#define EXPIRE_STEP 256
#define EVENT_EXPIRE 16
#define TICK_EXPIRE_TIME 0.001

void ens_tasks_tick(ens_tasks_t *ts, double now, double mono)
{
    double until = ens_mono() + TICK_EXPIRE_TIME;
    for (size_t i = 0; i < ts->count; i++) {
        ens_task_t *t = &ts->by_id[i]->t;
        int behind = ens_join_expire_some(t->join, mono, EXPIRE_STEP);
        while (behind && ens_mono() < until)
            behind = ens_join_expire_some(t->join, mono, EXPIRE_STEP);
        if (t->conf.window_max_age > 0)
            ens_window_expire_before(t->window, now - t->conf.window_max_age);
        /* A query that is due but not yet expired may still hold a model
         * or a label that retired() takes as free: none is freed before
         * the join has caught up. */
        if (behind)
            continue;
        for (size_t m = 0; m < ens_window_models(t->window); m++)
            free_model(t, m, mono, 0);
        for (size_t l = 0; l < ens_window_labels(t->window); l++)
            free_label(t, l, mono, 0);
    }
}

int ens_task_model(ens_task_t *t, const char *name, size_t len)
{
    size_t before = ens_window_models_held(t->window);
    int id = ens_window_model(t->window, name, len);
    if (id >= 0 && ens_window_models_held(t->window) > before)
        notify_added(t, ENS_NAME_MODEL, (uint32_t)id, ens_window_model_str(t->window, id));
    return id;
}

int ens_task_label(ens_task_t *t, const char *name, size_t len)
{
    size_t before = ens_window_labels_held(t->window);
    int id = ens_window_label(t->window, name, len);
    if (id >= 0 && id != ENS_SYM_ABSTAIN && ens_window_labels_held(t->window) > before)
        notify_added(t, ENS_NAME_LABEL, (uint32_t)id, ens_window_label_str(t->window, id));
    return id;
}

/* Expires the queries and tombstones of t that are due, after each of its
 * events: a few at a time, where the tick (every 100 ms) would drop all of
 * a flood's 100 ms of them at once, 1.5 to 35 ms of one loop turn at 64
 * tasks. The tick still expires tasks that get no events. After the event,
 * so the event joins as it would have before the tick. */
static void expire_due(ens_task_t *t, double mono)
{
    ens_join_expire_some(t->join, mono, EVENT_EXPIRE);
}

void ens_task_predictions(ens_task_t *t, const void *key, size_t klen, const ens_join_pred_t *preds,
                          size_t n, double mono)
{
    for (size_t i = 0; i < n; i++) {
        t->last_seen[preds[i].model] = mono;
        if (preds[i].sym < ENS_MAX_LABELS)
            t->label_seen[preds[i].sym] = mono;
    }
    t->joining = key;
    t->joining_len = klen;
    ens_join_predictions(t->join, key, klen, preds, n, mono);
    t->joining = NULL;
    expire_due(t, mono);
}

void ens_task_truth(ens_task_t *t, const void *key, size_t klen, uint8_t y, double mono, double ts)
{
    t->label_seen[y] = mono;
    t->joining = key;
    t->joining_len = klen;
    ens_join_label(t->join, key, klen, y, mono, ts);
    t->joining = NULL;
    expire_due(t, mono);
}

void ens_task_truth_key(ens_task_t *t, const void *key, size_t klen, uint64_t answer, double mono,
                        double ts)
{
    t->joining = key;
    t->joining_len = klen;
    ens_join_label_key(t->join, key, klen, answer, mono, ts);
    t->joining = NULL;
    expire_due(t, mono);
}

void ens_task_sampled_out(ens_task_t *t)
{
    t->sampled_out++;
}

int ens_task_restore_row(ens_task_t *t, uint8_t y, const uint8_t *x, size_t nx, double ts,
                         int explored)
{
    int rc = ens_window_push(t->window, y, x, nx, ts);
    if (rc == 0)
        ens_window_set_explored(t->window, ens_window_rows(t->window) - 1, explored);
    return rc;
}

void ens_task_restore_answers(ens_task_t *t, ens_answers_t answers, ens_norm_t norm)
{
    t->conf.answers = answers;
    t->conf.normalize = norm;
    ens_join_set_open(t->join, answers == ENS_ANSWERS_OPEN);
}

void ens_task_restore_query(ens_task_t *t, const void *key, size_t len, double mono)
{
    ens_join_restore_joined(t->join, key, len, mono);
}

void ens_task_restored(ens_task_t *t, double mono)
{
    const ens_task_conf_t *c = ens_config_task(t->owner->conf, t->name);
    if (c->answers != t->conf.answers || c->normalize != t->conf.normalize)
        ENS_LOG(NOTICE,
                "task %s: keeps answers %s, normalize %s of its saved rows (window.answers and "
                "window.normalize apply to new tasks; remove the task's state to change them)",
                t->name, ens_answers_name(t->conf.answers), ens_norm_name(t->conf.normalize));
    /* No query is pending after a restart: a model no restored row holds
     * holds nothing, and its slot is free at once. */
    for (size_t m = 0; m < ens_window_models(t->window); m++)
        free_model(t, m, mono, 1);
    for (size_t l = 0; l < ens_window_labels(t->window); l++)
        free_label(t, l, mono, 1);
    size_t nm = ens_window_models(t->window), n = ens_window_rows(t->window);
    for (size_t m = 0; m < nm; m++)
        t->last_seen[m] = mono;
    for (size_t i = 0; i < n; i++)
        for (size_t m = 0; m < nm; m++)
            if (ens_window_x(t->window, i, m) != ENS_SYM_MISSING &&
                ens_window_ts(t->window, i) > t->last_row[m])
                t->last_row[m] = ens_window_ts(t->window, i);
}
