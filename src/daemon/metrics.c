/* metrics.c - see metrics.h; the names are listed in docs/metrics.md. */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds (seconds) of the selection duration histogram's buckets. */
static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                 0.25,  0.5,    1,     2.5,  5,     10,   30};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

typedef struct {
    char *name;
    size_t len;
    uint64_t counts[NBUCKETS]; /* per bucket, not cumulative */
    uint64_t count;
    double sum;
} hist_t;

typedef struct {
    char *p;
    size_t size, cap;
    int failed; /* out of memory: the text is not used */
} buf_t;

/* What the loop handed over last, not rendered yet: copies, so that the
 * HTTP thread renders them while the loop goes on. */
typedef struct {
    char *status;
    size_t len;
    ens_metrics_body_t *bodies; /* pointing into blob */
    char *blob;
    size_t n;
    hist_t *hists; /* the histograms then (names borrowed: freed only at destroy) */
    size_t nhists;
} inputs_t;

struct ens_metrics_s {
    struct MHD_Daemon *http;
    pthread_mutex_t lock; /* guards text and next, which the HTTP thread reads */
    char *text;
    size_t text_len;
    inputs_t *next; /* rendered into text at the next read (NULL: text is current) */
    hist_t *hists;  /* selection durations per task (loop thread) */
    size_t nhists;
    char start_err[256]; /* libmicrohttpd's first message while starting */
};

/* ---- text ------------------------------------------------------------- */

static void put(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(buf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->size;
        int n = b->failed ? 0 : vsnprintf(b->p + b->size, room, fmt, ap);
        va_end(ap);
        if (b->failed || n < 0)
            return;
        if ((size_t)n < room) {
            b->size += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 16384;
        while (cap - b->size <= (size_t)n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A label value, escaped as the exposition format asks (\\, \", \n); other
 * control bytes, which it does not allow, become '?'. */
static void put_label(buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\' || c == '"')
            put(b, "\\%c", c);
        else if (c == '\n')
            put(b, "\\n");
        else
            put(b, "%c", c < 0x20 || c == 0x7f ? '?' : c);
    }
}

static void put_value(buf_t *b, const msgpack_object *v, double scale)
{
    switch (v->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (scale == 1)
            put(b, " %llu\n", (unsigned long long)v->via.u64);
        else
            put(b, " %.17g\n", (double)v->via.u64 * scale);
        return;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        put(b, " %.17g\n", (double)v->via.i64 * scale);
        return;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        put(b, " %.17g\n", v->via.f64 * scale);
        return;
    case MSGPACK_OBJECT_ARRAY:
        put(b, " %u\n", v->via.array.size);
        return;
    default:
        put(b, " NaN\n");
    }
}

static int is_number(const msgpack_object *v)
{
    return v && (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                 v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER || v->type == MSGPACK_OBJECT_FLOAT32 ||
                 v->type == MSGPACK_OBJECT_FLOAT64 || v->type == MSGPACK_OBJECT_ARRAY);
}

static const msgpack_object *find(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

/* ---- the table of status figures -------------------------------------- */

typedef struct {
    const char *where; /* NULL: the top map; "tasks": per task; else a sub-map */
    const char *key;   /* the status key */
    const char *name;  /* the metric; rows of one metric are consecutive */
    const char *type;  /* counter or gauge */
    const char *label; /* with no value: key is a map of counts by this
                          label; else label=value is added */
    const char *value;
    double scale;
    const char *help;
} row_t;

static const row_t rows[] = {
    {NULL, "uptime_s", "ensembled_uptime_seconds", "gauge", NULL, NULL, 1,
     "Seconds since the daemon started."},
    {"loop", "turns", "ensembled_loop_turns_total", "counter", NULL, NULL, 1, "Event-loop turns."},
    {"loop", "longest_turn_ms", "ensembled_loop_longest_turn_seconds", "gauge", "since", "start",
     0.001,
     "Longest event-loop turn (work, not waiting), since the start or over the last 10 to "
     "20 s."},
    {"loop", "longest_turn_recent_ms", "ensembled_loop_longest_turn_seconds", "gauge", "since",
     "recent", 0.001, NULL},
    {"loop", "longest_turn_cpu_ms", "ensembled_loop_longest_turn_cpu_seconds", "gauge", NULL, NULL,
     0.001, "CPU time of the event loop's most CPU-hungry turn since the start."},
    {"loop", "turns_over_5ms", "ensembled_loop_slow_turns_total", "counter", "measure", "work", 1,
     "Event-loop turns over 5 ms, by work time or by CPU time."},
    {"loop", "turns_over_5ms_cpu", "ensembled_loop_slow_turns_total", "counter", "measure", "cpu",
     1, NULL},
    {"loop", "turns_over_5ms_cpu_by", "ensembled_loop_slow_cpu_turns_by_section_total", "counter",
     "section", NULL, 1,
     "Event-loop turns over 5 ms of CPU time, by the section that took most of each."},
    {NULL, "messages_in", "ensembled_messages_received_total", "counter", NULL, NULL, 1,
     "Ingest messages taken in, accepted or not."},
    {NULL, "events_in", "ensembled_events_received_total", "counter", NULL, NULL, 1,
     "Ingest events taken in."},
    {NULL, "rejected", "ensembled_events_rejected_total", "counter", "reason", NULL, 1,
     "Ingest input refused while decoding, by reason."},
    {NULL, "dropped", "ensembled_events_dropped_total", "counter", "reason", NULL, 1,
     "Ingest messages dropped by a limit, by reason."},
    {NULL, "published", "ensembled_publications_total", "counter", NULL, NULL, 1,
     "Ensembles published, all tasks."},
    {NULL, "future_ts_clamped", "ensembled_future_ts_clamped_total", "counter", NULL, NULL, 1,
     "Label times more than ingest.max_future ahead, taken as arrival times."},
    {NULL, "cache_resends", "ensembled_cache_resends_total", "counter", NULL, NULL, 1,
     "Latest bodies sent again to a new subscription (last-value cache)."},
    {NULL, "subscriber_drops", "ensembled_subscriber_drops_total", "counter", NULL, NULL, 1,
     "Publications a subscriber missed: its queue (publish.max_queued) was full."},
    {NULL, "control_replies_dropped", "ensembled_control_replies_dropped_total", "counter", NULL,
     NULL, 1, "Control replies dropped: the client's queue (control.max_queued) was full."},
    {"security", "curve_accepted", "ensembled_curve_handshakes_total", "counter", "result",
     "accepted", 1, "CURVE handshakes by result."},
    {"security", "curve_refused", "ensembled_curve_handshakes_total", "counter", "result",
     "refused", 1, NULL},
    {"security", "authorized_keys", "ensembled_curve_authorized_keys", "gauge", NULL, NULL, 1,
     "Client keys authorised."},
    {"security", "key_files_skipped", "ensembled_curve_key_files_skipped", "gauge", NULL, NULL, 1,
     "Files of security.authorized_keys_dir not read as keys at the last load."},
    {"state", "rows_restored_snapshot", "ensembled_state_rows_restored", "gauge", "source",
     "snapshot", 1, "Rows restored at start, by source."},
    {"state", "rows_restored_journal", "ensembled_state_rows_restored", "gauge", "source",
     "journal", 1, NULL},
    {"state", "torn_records", "ensembled_state_bad_records_total", "counter", "kind", "torn", 1,
     "Journal records refused while restoring, by kind."},
    {"state", "corrupt_records", "ensembled_state_bad_records_total", "counter", "kind", "corrupt",
     1, NULL},
    {"state", "snapshots", "ensembled_state_snapshots_total", "counter", NULL, NULL, 1,
     "Snapshots written."},
    {"state", "fsyncs", "ensembled_state_fsyncs_total", "counter", NULL, NULL, 1,
     "Journal fdatasyncs completed."},
    {"state", "synced_seq", "ensembled_state_synced_row_seq", "gauge", NULL, NULL, 1,
     "Sequence number of the last row a completed fdatasync made durable."},
    {"state", "write_errors", "ensembled_state_write_errors_total", "counter", NULL, NULL, 1,
     "Failed state writes."},
    {"state", "records_dropped", "ensembled_state_records_dropped_total", "counter", NULL, NULL, 1,
     "Journal records not written."},
    {"nats", "fetched", "ensembled_nats_messages_total", "counter", "stage", "fetched", 1,
     "JetStream intake messages, by stage: fetched from the stream, acknowledged."},
    {"nats", "acked", "ensembled_nats_messages_total", "counter", "stage", "acked", 1, NULL},
    {"nats", "held", "ensembled_nats_held_messages", "gauge", NULL, NULL, 1,
     "JetStream messages applied and not yet acknowledged (docs/scale.md)."},
    {"nats", "in_progress", "ensembled_nats_in_progress_marks_total", "counter", NULL, NULL, 1,
     "In-progress marks sent for held JetStream messages."},
    {"nats", "position", "ensembled_nats_stream_position", "gauge", NULL, NULL, 1,
     "Highest stream sequence applied."},
    {"nats", "fetch_errors", "ensembled_nats_errors_total", "counter", "op", "fetch", 1,
     "JetStream intake errors, by operation."},
    {"nats", "ack_errors", "ensembled_nats_errors_total", "counter", "op", "ack", 1, NULL},
    {"nats_kv", "puts", "ensembled_nats_kv_puts_total", "counter", "result", "stored", 1,
     "Bodies offered to the key-value bucket, by result."},
    {"nats_kv", "skipped_older", "ensembled_nats_kv_puts_total", "counter", "result",
     "skipped_older", 1, NULL},
    {"nats_kv", "bad_keys", "ensembled_nats_kv_puts_total", "counter", "result", "bad_key", 1,
     NULL},
    {"nats_kv", "errors", "ensembled_nats_kv_puts_total", "counter", "result", "error", 1, NULL},
    {"tasks", "rows", "ensembled_window_rows", "gauge", NULL, NULL, 1, "Rows in the window."},
    {"tasks", "capacity", "ensembled_window_capacity_rows", "gauge", NULL, NULL, 1,
     "Rows the window holds at most."},
    {"tasks", "models", "ensembled_window_models", "gauge", NULL, NULL, 1,
     "Models the task holds a slot for."},
    {"tasks", "models_freed", "ensembled_model_slots_freed_total", "counter", NULL, NULL, 1,
     "Model slots freed: the model retired and no row of the window held it."},
    {"tasks", "labels", "ensembled_window_labels", "gauge", NULL, NULL, 1,
     "Labels the task holds a slot for."},
    {"tasks", "labels_freed", "ensembled_label_slots_freed_total", "counter", NULL, NULL, 1,
     "Label slots freed: unused as long as a retired model and held by no row."},
    {"tasks", "pending", "ensembled_join_pending", "gauge", NULL, NULL, 1,
     "Queries waiting for their label."},
    {"tasks", "queries", "ensembled_queries_total", "counter", NULL, NULL, 1, "Queries seen."},
    {"tasks", "joined", "ensembled_rows_joined_total", "counter", NULL, NULL, 1,
     "Queries joined with their label into a row."},
    {"tasks", "expired", "ensembled_queries_expired_total", "counter", NULL, NULL, 1,
     "Queries that waited longer than join.ttl."},
    {"tasks", "evicted", "ensembled_queries_evicted_total", "counter", NULL, NULL, 1,
     "Queries pushed out by join.max_pending."},
    {"tasks", "late_predictions", "ensembled_late_events_total", "counter", "kind", "prediction", 1,
     "Events for a query already joined or expired, by kind."},
    {"tasks", "late_labels", "ensembled_late_events_total", "counter", "kind", "label", 1, NULL},
    {"tasks", "duplicate_predictions", "ensembled_duplicate_events_total", "counter", "kind",
     "prediction", 1, "Events repeating one already held, by kind."},
    {"tasks", "duplicate_labels", "ensembled_duplicate_events_total", "counter", "kind", "label", 1,
     NULL},
    {"tasks", "sampled_out", "ensembled_queries_sampled_out_total", "counter", NULL, NULL, 1,
     "Queries left out by ingest.sample_rate."},
    {"tasks", "version", "ensembled_publication_version", "gauge", NULL, NULL, 1,
     "Version of the task's latest publication."},
    {"tasks", "ensemble", "ensembled_ensemble_models", "gauge", NULL, NULL, 1,
     "Models in the published ensemble."},
    {"tasks", "explore_extra_queries_per_query", "ensembled_explore_extra_queries_per_query",
     "gauge", NULL, NULL, 1, "Model queries exploration costs per query."},
    {"tasks", "last_selection_ms", "ensembled_last_selection_duration_seconds", "gauge", NULL, NULL,
     0.001, "Duration of the task's last selection."},
    {"tasks", "last_selection_age_s", "ensembled_last_selection_age_seconds", "gauge", NULL, NULL,
     1, "Seconds since the task's last selection finished."},
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

static void put_header(buf_t *b, const row_t *r)
{
    if (r > rows && strcmp(r[-1].name, r->name) == 0)
        return;
    put(b, "# HELP %s %s\n# TYPE %s %s\n", r->name, r->help, r->name, r->type);
}

/* The samples of row r from the map it reads (task: its name, or NULL). */
static void put_row(buf_t *b, const row_t *r, const msgpack_object *map, const msgpack_object *task)
{
    const msgpack_object *v = find(map, r->key);
    const char *by = r->label && !r->value ? r->label : NULL;
    if (by && v && v->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < v->via.map.size; i++) {
            const msgpack_object *k = &v->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR || !is_number(&v->via.map.ptr[i].val))
                continue;
            put(b, "%s{%s=\"", r->name, by);
            put_label(b, k->via.str.ptr, k->via.str.size);
            put(b, "\"}");
            put_value(b, &v->via.map.ptr[i].val, r->scale);
        }
        return;
    }
    if (by || !is_number(v))
        return;
    put(b, "%s", r->name);
    if (task || r->label) {
        put(b, "{");
        if (task) {
            put(b, "task=\"");
            put_label(b, task->via.str.ptr, task->via.str.size);
            put(b, "\"%s", r->label ? "," : "");
        }
        if (r->label)
            put(b, "%s=\"%s\"", r->label, r->value);
        put(b, "}");
    }
    put_value(b, v, r->scale);
}

static void put_status(buf_t *b, const msgpack_object *st)
{
    const msgpack_object *version = find(st, "version");
    put(b, "# HELP ensembled_build_info The daemon's version.\n"
           "# TYPE ensembled_build_info gauge\nensembled_build_info{version=\"");
    if (version && version->type == MSGPACK_OBJECT_STR)
        put_label(b, version->via.str.ptr, version->via.str.size);
    put(b, "\"} 1\n");
    const msgpack_object *tasks = find(st, "tasks");
    for (size_t i = 0; i < NROWS; i++) {
        const row_t *r = &rows[i];
        put_header(b, r);
        if (!r->where) {
            put_row(b, r, st, NULL);
        } else if (strcmp(r->where, "tasks") != 0) {
            put_row(b, r, find(st, r->where), NULL);
        } else if (tasks && tasks->type == MSGPACK_OBJECT_MAP) {
            for (uint32_t t = 0; t < tasks->via.map.size; t++) {
                const msgpack_object *name = &tasks->via.map.ptr[t].key;
                if (name->type == MSGPACK_OBJECT_STR)
                    put_row(b, r, &tasks->via.map.ptr[t].val, name);
            }
        }
    }
}

/* ---- published bodies ------------------------------------------------- */

typedef struct {
    const char *map; /* the body's map */
    const char *name;
    const char *label;
    const char *help;
} body_metric_t;

static const body_metric_t body_metrics[] = {
    {"accuracy", "ensembled_published_accuracy", "method",
     "Held-out accuracy figures of the latest publication (docs/protocol.md)."},
    {"bounds", "ensembled_published_bound", "bound",
     "Error bounds and correlation of the latest publication (docs/protocol.md)."},
};

static void put_task_label(buf_t *b, const ens_metrics_body_t *body)
{
    put(b, "task=\"");
    put_label(b, body->task, body->len);
    put(b, "\"");
}

/* The bodies, decoded once: out[i] the root of bodies[i] (nil if bad). */
static void put_bodies(buf_t *b, const msgpack_object *roots, const ens_metrics_body_t *bodies,
                       size_t n)
{
    for (size_t m = 0; m < sizeof(body_metrics) / sizeof(body_metrics[0]); m++) {
        const body_metric_t *bm = &body_metrics[m];
        put(b, "# HELP %s %s\n# TYPE %s gauge\n", bm->name, bm->help, bm->name);
        for (size_t i = 0; i < n; i++) {
            const msgpack_object *v = find(&roots[i], bm->map);
            for (uint32_t j = 0; v && v->type == MSGPACK_OBJECT_MAP && j < v->via.map.size; j++) {
                const msgpack_object *k = &v->via.map.ptr[j].key, *x = &v->via.map.ptr[j].val;
                if (k->type != MSGPACK_OBJECT_STR || !is_number(x) ||
                    x->type == MSGPACK_OBJECT_ARRAY)
                    continue;
                put(b, "%s{", bm->name);
                put_task_label(b, &bodies[i]);
                put(b, ",%s=\"", bm->label);
                put_label(b, k->via.str.ptr, k->via.str.size);
                put(b, "\"}");
                put_value(b, x, 1);
            }
        }
    }
    put(b, "# HELP ensembled_last_publication_timestamp_seconds When the task last "
           "published (seconds since the epoch).\n"
           "# TYPE ensembled_last_publication_timestamp_seconds gauge\n");
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *ts = find(&roots[i], "ts");
        if (!is_number(ts))
            continue;
        put(b, "ensembled_last_publication_timestamp_seconds{");
        put_task_label(b, &bodies[i]);
        put(b, "}");
        put_value(b, ts, 1);
    }
}

static void put_histograms(buf_t *b, const hist_t *hists, size_t nhists)
{
    const char *name = "ensembled_selection_duration_seconds";
    put(b, "# HELP %s Duration of selections, from snapshot to result.\n# TYPE %s histogram\n",
        name, name);
    for (size_t i = 0; i < nhists; i++) {
        const hist_t *h = &hists[i];
        uint64_t cum = 0;
        for (size_t k = 0; k <= NBUCKETS; k++) {
            cum += k < NBUCKETS ? h->counts[k] : 0;
            put(b, "%s_bucket{task=\"", name);
            put_label(b, h->name, h->len);
            if (k < NBUCKETS)
                put(b, "\",le=\"%g\"} %llu\n", buckets[k], (unsigned long long)cum);
            else
                put(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)h->count);
        }
        put(b, "%s_sum{task=\"", name);
        put_label(b, h->name, h->len);
        put(b, "\"} %.17g\n%s_count{task=\"", h->sum, name);
        put_label(b, h->name, h->len);
        put(b, "\"} %llu\n", (unsigned long long)h->count);
    }
}

void ens_metrics_observe_selection(ens_metrics_t *m, const char *task, size_t len, double seconds)
{
    hist_t *h = NULL;
    for (size_t i = 0; i < m->nhists && !h; i++)
        if (m->hists[i].len == len && memcmp(m->hists[i].name, task, len) == 0)
            h = &m->hists[i];
    if (!h) {
        hist_t *more = realloc(m->hists, (m->nhists + 1) * sizeof(*more));
        char *name = malloc(len + 1);
        if (more)
            m->hists = more;
        if (!more || !name) {
            free(name);
            return;
        }
        memcpy(name, task, len);
        name[len] = '\0';
        h = &m->hists[m->nhists++];
        memset(h, 0, sizeof(*h));
        h->name = name;
        h->len = len;
    }
    size_t k = 0;
    while (k < NBUCKETS && seconds > buckets[k])
        k++;
    if (k < NBUCKETS)
        h->counts[k]++;
    h->count++;
    h->sum += seconds;
}

static void inputs_free(inputs_t *in)
{
    if (!in)
        return;
    free(in->status);
    free(in->bodies);
    free(in->blob);
    free(in->hists);
    free(in);
}

/* The inputs, copied; NULL when memory is short. */
static inputs_t *inputs_copy(const ens_metrics_t *m, const char *status, size_t len,
                             const ens_metrics_body_t *bodies, size_t n)
{
    inputs_t *in = calloc(1, sizeof(*in));
    size_t bytes = 0, off = 0;
    for (size_t i = 0; i < n; i++)
        bytes += bodies[i].len + bodies[i].size;
    if (in) {
        in->status = malloc(len ? len : 1);
        in->bodies = calloc(n ? n : 1, sizeof(*in->bodies));
        in->blob = malloc(bytes ? bytes : 1);
        in->hists = calloc(m->nhists ? m->nhists : 1, sizeof(*in->hists));
    }
    if (!in || !in->status || !in->bodies || !in->blob || !in->hists) {
        inputs_free(in);
        return NULL;
    }
    memcpy(in->status, status, len);
    in->len = len;
    for (size_t i = 0; i < n; i++) {
        memcpy(in->blob + off, bodies[i].task, bodies[i].len);
        memcpy(in->blob + off + bodies[i].len, bodies[i].body, bodies[i].size);
        in->bodies[i] = (ens_metrics_body_t){in->blob + off, bodies[i].len,
                                             in->blob + off + bodies[i].len, bodies[i].size};
        off += bodies[i].len + bodies[i].size;
    }
    in->n = n;
    if (m->nhists)
        memcpy(in->hists, m->hists, m->nhists * sizeof(*in->hists));
    in->nhists = m->nhists;
    return in;
}

/* The exposition of in into a new text; NULL when it cannot be made. */
static char *render(const inputs_t *in, size_t *size)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 8192);
    msgpack_object st;
    size_t off = 0;
    msgpack_object *roots = calloc(in->n ? in->n : 1, sizeof(*roots));
    buf_t b = {0};
    if (!roots || msgpack_unpack(in->status, in->len, &off, &zone, &st) != MSGPACK_UNPACK_SUCCESS ||
        st.type != MSGPACK_OBJECT_MAP)
        b.failed = 1;
    for (size_t i = 0; i < in->n && !b.failed; i++) {
        size_t o = 0;
        if (msgpack_unpack(in->bodies[i].body, in->bodies[i].size, &o, &zone, &roots[i]) !=
            MSGPACK_UNPACK_SUCCESS)
            roots[i].type = MSGPACK_OBJECT_NIL;
    }
    if (!b.failed) {
        put_status(&b, &st);
        put_bodies(&b, roots, in->bodies, in->n);
        put_histograms(&b, in->hists, in->nhists);
    }
    free(roots);
    msgpack_zone_destroy(&zone);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    *size = b.size;
    return b.p;
}

/* The inputs are copied here and rendered by the next reader of the text
 * (a scrape, on the HTTP thread): rendering 64 tasks' figures takes
 * milliseconds, which the loop does not spend. */
int ens_metrics_update(ens_metrics_t *m, const char *status, size_t len,
                       const ens_metrics_body_t *bodies, size_t n)
{
    /* Only a map is a status: fixmap, map 16 or map 32. */
    uint8_t first = len ? (uint8_t)status[0] : 0;
    if (!((first & 0xf0) == 0x80 || first == 0xde || first == 0xdf))
        return -1;
    inputs_t *in = inputs_copy(m, status, len, bodies, n);
    if (!in)
        return -1;
    pthread_mutex_lock(&m->lock);
    inputs_t *old = m->next;
    m->next = in;
    pthread_mutex_unlock(&m->lock);
    inputs_free(old);
    return 0;
}

char *ens_metrics_text(ens_metrics_t *m, size_t *len)
{
    pthread_mutex_lock(&m->lock);
    if (m->next) {
        size_t size = 0;
        char *text = render(m->next, &size);
        if (text) {
            free(m->text);
            m->text = text;
            m->text_len = size;
        }
        inputs_free(m->next);
        m->next = NULL;
    }
    char *copy = malloc(m->text_len + 1);
    if (copy) {
        if (m->text_len)
            memcpy(copy, m->text, m->text_len);
        copy[m->text_len] = '\0';
        *len = m->text_len;
    }
    pthread_mutex_unlock(&m->lock);
    return copy;
}

/* ---- HTTP ------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, char *body, size_t len,
                             const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result rc = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    ens_metrics_t *m = cls;
    const char *plain = "text/plain; charset=utf-8";
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("GET only\n"), 9, plain);
    if (strcmp(url, "/metrics") != 0)
        return reply(conn, MHD_HTTP_NOT_FOUND, strdup("see /metrics\n"), 13, plain);
    size_t len = 0;
    char *text = ens_metrics_text(m, &len);
    if (!text)
        return MHD_NO;
    return reply(conn, MHD_HTTP_OK, text, len, "text/plain; version=0.0.4; charset=utf-8");
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    ens_metrics_t *m = cls;
    if (m->start_err[0] == '\0') {
        vsnprintf(m->start_err, sizeof(m->start_err), fmt, ap);
        m->start_err[strcspn(m->start_err, "\r\n")] = '\0';
    }
}

int ens_metrics_parse_bind(const char *bind, void *addr, char *err, size_t errlen)
{
    char host[64];
    const char *colon = strrchr(bind, ':');
    const char *h = bind, *he = colon;
    if (bind[0] == '[') {
        h = bind + 1;
        he = strchr(bind, ']');
        if (!he || he[1] != ':')
            he = NULL;
        colon = he ? he + 1 : NULL;
    }
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || !he || he == h || (size_t)(he - h) >= sizeof(host) || end == colon + 1 || *end ||
        port < 1 || port > 65535) {
        snprintf(err, errlen, "metrics.bind %s: not host:port (e.g. 127.0.0.1:9559, [::1]:9559)",
                 bind);
        return -1;
    }
    memcpy(host, h, (size_t)(he - h));
    host[he - h] = '\0';
    struct sockaddr_in6 *in6 = addr;
    struct sockaddr_in *in4 = addr;
    memset(addr, 0, sizeof(*in6));
    if (bind[0] == '[' && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
    } else if (bind[0] != '[' && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
    } else {
        snprintf(err, errlen, "metrics.bind %s: %s is not a numeric IP address", bind, host);
        return -1;
    }
    return 0;
}

ens_metrics_t *ens_metrics_new(const char *bind, char *err, size_t errlen)
{
    struct sockaddr_in6 addr;
    if (bind[0] && ens_metrics_parse_bind(bind, &addr, err, errlen) < 0)
        return NULL;
    ens_metrics_t *m = calloc(1, sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "metrics: out of memory");
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    if (!bind[0])
        return m;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (addr.sin6_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* A scrape is one small GET: few connections, a short timeout, so that
     * a slow or hostile client cannot hold the thread. */
    /* The logger first: MHD logs how it parses the options that follow. */
    m->http = MHD_start_daemon(flags, ntohs(addr.sin6_port), NULL, NULL, on_request, m,
                               MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, m, MHD_OPTION_SOCK_ADDR,
                               &addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
                               MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!m->http) {
        snprintf(err, errlen, "metrics.bind %s: cannot listen%s%s", bind,
                 m->start_err[0] ? ": " : "", m->start_err);
        ens_metrics_destroy(&m);
        return NULL;
    }
    return m;
}

void ens_metrics_destroy(ens_metrics_t **mp)
{
    ens_metrics_t *m = *mp;
    if (!m)
        return;
    if (m->http)
        MHD_stop_daemon(m->http);
    for (size_t i = 0; i < m->nhists; i++)
        free(m->hists[i].name);
    free(m->hists);
    free(m->text);
    inputs_free(m->next);
    pthread_mutex_destroy(&m->lock);
    free(m);
    *mp = NULL;
}
