/* select_body.c - ensemblectl select --body: the body the daemon would
 * publish for the rows of a CSV under a configuration.
 *
 * The rows go through the daemon's own modules, without sockets: each row
 * is encoded as `replay --label-lag 0` sends it (one prediction event with
 * every answer, then its label event), handed to ingest, joined by the
 * task's join into its window; then the task's selection runs with the
 * inputs a recompute job gets and is published with version 1. So offline
 * and online agree by construction; only `ts`, `version` and the ages in
 * `freshness` (seconds since each model's newest row) depend on when.
 */
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "ctl.h"
#include "ensembled/mpw.h"
#include "ensembled/protocol.h"
#include "ingest.h"
#include "log.h"
#include "publish.h"
#include "recompute.h"
#include "task.h"

typedef struct {
    ens_tasks_t *tasks;
    ens_ingest_t *ingest;
    ens_publish_t *publish;
    ens_recompute_t *recompute;
} offline_t;

static void published_set(void *ud, const ens_task_t *t, const ens_str_t **names, size_t *n)
{
    offline_t *o = ud;
    ens_publish_models(o->publish, t, names, n);
}

static void on_selected(void *ud, ens_task_t *t, const ens_pipeline_t *p)
{
    offline_t *o = ud;
    ens_publish_result(o->publish, t, p, ens_now());
}

/* Feeds one event to ingest as the bytes a producer sends. */
static int feed(offline_t *o, const ens_event_t *e)
{
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_event_encode(&w, e);
    int rc = ens_ingest_message(o->ingest, w.data, w.size, ens_now(), ens_mono());
    ens_mpw_free(&w);
    return rc;
}

static ens_str_t str(const char *s)
{
    ens_str_t r = {s, strlen(s)};
    return r;
}

/* Row r with costs: one prediction event per answer, each with its model's
 * cost of the --costs file (none for a model the file leaves out), then the
 * label. */
static int feed_row_costs(offline_t *o, const ens_data_t *d, const double *cost, size_t r,
                          const char *task)
{
    char query[32];
    snprintf(query, sizeof(query), "row-%zu", r + 1);
    int rc = 0;
    for (size_t j = 0; j < d->nmodels && rc == 0; j++) {
        uint8_t x = ens_data_col(d, j)[r];
        if (x == ENS_SYM_MISSING)
            continue;
        ens_pred_t p = {str(d->model_names[j]),
                        str(x == ENS_SYM_ABSTAIN ? "?" : d->label_names[x])};
        ens_event_t e = {.kind = ENS_EVENT_PREDICTION,
                         .task = str(task),
                         .query_str = str(query),
                         .preds = &p,
                         .npreds = 1,
                         .cost = isnan(cost[j]) ? -1 : cost[j],
                         .ts = -1};
        rc = feed(o, &e);
    }
    ens_event_t l = {.kind = ENS_EVENT_LABEL,
                     .task = str(task),
                     .query_str = str(query),
                     .label = str(d->label_names[d->y[r]]),
                     .cost = -1,
                     .ts = -1};
    return rc < 0 ? rc : feed(o, &l);
}

/* Row r as replay sends it: its answers (empty cells left out), then its
 * label. Queries are row-<n>, n the row's number in the file. */
static int feed_row(offline_t *o, const ens_data_t *d, size_t r, const char *task)
{
    char query[32];
    snprintf(query, sizeof(query), "row-%zu", r + 1);
    ens_pred_t *preds = calloc(d->nmodels + 1, sizeof(ens_pred_t));
    ens_event_t e = {.kind = ENS_EVENT_PREDICTION,
                     .task = str(task),
                     .query_str = str(query),
                     .preds = preds,
                     .cost = -1,
                     .ts = -1};
    for (size_t j = 0; j < d->nmodels; j++) {
        uint8_t x = ens_data_col(d, j)[r];
        if (x == ENS_SYM_MISSING)
            continue;
        preds[e.npreds].model = str(d->model_names[j]);
        preds[e.npreds++].label = str(x == ENS_SYM_ABSTAIN ? "?" : d->label_names[x]);
    }
    int rc = e.npreds ? feed(o, &e) : 0;
    free(preds);
    ens_event_t l = {.kind = ENS_EVENT_LABEL,
                     .task = str(task),
                     .query_str = str(query),
                     .label = str(d->label_names[d->y[r]]),
                     .cost = -1,
                     .ts = -1};
    return rc < 0 ? rc : feed(o, &l);
}

/* Prints the body of task as JSON; 0 or -1. */
static int print_body(offline_t *o, const char *task)
{
    char err[512];
    ens_task_t *t = ens_tasks_find(o->tasks, task, strlen(task));
    if (!t) {
        ctl_error("no row of the CSV reached task %s", task);
        return -1;
    }
    if (ens_recompute_run_sync(o->recompute, t, err, sizeof(err)) < 0) {
        ctl_error("selection failed: %s", err);
        return -1;
    }
    size_t size = 0;
    const char *body = ens_publish_body(o->publish, t, &size);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1 << 16);
    msgpack_object obj;
    int rc = ctl_unpack(body, size, &zone, &obj);
    if (rc == 0)
        ctl_json_print_msgpack(&obj);
    msgpack_zone_destroy(&zone);
    return rc;
}

int ctl_select_body(const char *csv, const char *config, const char *task, const char *costs)
{
    ens_config_t *conf = calloc(1, sizeof(*conf));
    char err[1024];
    if (config && ens_config_load(config, conf, err, sizeof(err)) < 0) {
        ctl_error("%s", err);
        free(conf);
        return 2;
    }
    if (!config)
        ens_config_defaults(conf);
    ens_log_init(ENS_LOG_WARNING, 1);
    /* An open-answer task reads the file as it will read the answers: its
     * agreement classes, under its normalization, are what replay sends. */
    const ens_task_conf_t *tc = ens_config_task(conf, task);
    ctl_answers_default(tc->answers, tc->normalize);
    ens_data_t *d = ctl_load_csv(csv);
    if (!d) {
        free(conf);
        return 1;
    }
    double *cost = calloc(d->nmodels + 1, sizeof(double));
    if (costs && ctl_load_costs(costs, d, cost) < 0) {
        free(cost);
        ens_data_destroy(&d);
        free(conf);
        return 2;
    }
    offline_t o = {0};
    o.tasks = ens_tasks_new(conf);
    o.ingest = ens_ingest_new(o.tasks, conf);
    ens_publish_hooks_t ph = {NULL, NULL};
    o.publish = ens_publish_new(o.tasks, &ph);
    ens_recompute_hooks_t rh = {published_set, on_selected, &o};
    o.recompute = ens_recompute_new(NULL, o.tasks, conf, &rh);
    int rc = 0;
    for (size_t r = 0; r < d->nrows && rc == 0; r++)
        rc = costs ? feed_row_costs(&o, d, cost, r, task) : feed_row(&o, d, r, task);
    if (rc < 0)
        ctl_error("%s: a row was refused by ingest (see the message above)", csv);
    else
        rc = print_body(&o, task);
    ens_recompute_destroy(&o.recompute);
    ens_publish_destroy(&o.publish);
    ens_ingest_destroy(&o.ingest);
    ens_tasks_destroy(&o.tasks);
    ens_data_destroy(&d);
    free(cost);
    free(conf);
    return rc < 0 ? 1 : 0;
}
