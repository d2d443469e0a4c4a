/* test_ingest.c - from a message to joins (ingest.h).
 *
 * Messages are packed here with msgpack-c. Capacity refusals must leave
 * every task, model, label, pending query and row exactly as before, and
 * be counted under their reason (in the stats and in the status map, read
 * back with msgpack-c); sampling is checked query by query against XXH3-64
 * computed here from the rule docs/protocol.md states; each model's mean
 * cost in the window against the costs sent.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <xxhash.h>

#include "ensembled/err.h"
#include "rig.h"

typedef struct {
    ens_config_t conf;
    ens_tasks_t *tasks;
    ens_ingest_t *in;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t joined; /* rows seen by the joined hook */
    char names[600][8];
} fx_t;

static void on_joined(void *ud, ens_task_t *t, uint8_t y, const uint8_t *x, size_t nx, double ts)
{
    (void)t, (void)y, (void)x, (void)nx, (void)ts;
    ((fx_t *)ud)->joined++;
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    ens_log_set_level(ENS_LOG_ERR);
    ens_config_defaults(&fx->conf);
    fx->tasks = ens_tasks_new(&fx->conf);
    fx->in = ens_ingest_new(fx->tasks, &fx->conf);
    ens_task_hooks_t h = {NULL, on_joined, fx, NULL};
    ens_tasks_set_hooks(fx->tasks, &h);
    msgpack_sbuffer_init(&fx->sb);
    msgpack_packer_init(&fx->pk, &fx->sb, msgpack_sbuffer_write);
    for (int i = 0; i < 300; i++) {
        snprintf(fx->names[i], sizeof(fx->names[i]), "m%03d", i);
        snprintf(fx->names[300 + i], sizeof(fx->names[i]), "L%03d", i);
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    msgpack_sbuffer_destroy(&fx->sb);
    ens_ingest_destroy(&fx->in);
    ens_tasks_destroy(&fx->tasks);
    free(fx);
    return 0;
}

static ens_str_t model_name(const fx_t *fx, size_t i)
{
    return (ens_str_t){fx->names[i], 4};
}

static ens_str_t label_name(const fx_t *fx, size_t i)
{
    return (ens_str_t){fx->names[300 + i], 4};
}

/* Sends what is packed; returns ingest's result. */
static int send_msg(fx_t *fx)
{
    int rc = ens_ingest_message(fx->in, fx->sb.data, fx->sb.size, 1.7e9, 100.0);
    msgpack_sbuffer_clear(&fx->sb);
    return rc;
}

static void pred(fx_t *fx, const char *task, uint64_t q, const char *model, const char *label)
{
    ens_str_t m = {model, strlen(model)}, a = {label, strlen(label)};
    rig_pack_prediction(&fx->pk, (ens_str_t){task, strlen(task)}, q, &m, &a, 1);
}

static void label(fx_t *fx, const char *task, uint64_t q, const char *y)
{
    rig_pack_label(&fx->pk, (ens_str_t){task, strlen(task)}, q, (ens_str_t){y, strlen(y)}, 5.0);
}

/* What a refused message must not change. */
typedef struct {
    size_t tasks, models, labels, rows, pending, joined;
    uint64_t events, messages, dropped[ENS_DROP_COUNT];
} snap_t;

static snap_t snap(const fx_t *fx, const char *task)
{
    snap_t s = {.tasks = ens_tasks_count(fx->tasks), .joined = fx->joined};
    const ens_task_t *t = ens_tasks_find(fx->tasks, task, strlen(task));
    assert_non_null(t);
    s.models = ens_window_models(t->window);
    s.labels = ens_window_labels(t->window);
    s.rows = ens_window_rows(t->window);
    s.pending = ens_join_pending(t->join);
    const ens_ingest_stats_t *st = ens_ingest_stats(fx->in);
    s.events = st->events;
    s.messages = st->messages;
    memcpy(s.dropped, st->dropped, sizeof(s.dropped));
    return s;
}

/* Sends the packed message, which must be refused for why and change
 * nothing in task but the counters. */
static void assert_dropped(fx_t *fx, const char *task, ens_drop_t why)
{
    snap_t before = snap(fx, task);
    assert_int_equal(send_msg(fx), -1);
    snap_t after = snap(fx, task);
    before.messages++;
    before.dropped[why]++;
    assert_memory_equal(&before, &after, sizeof(before));
}

/* ---- capacity: all or nothing ------------------------------------------ */

/* Task "a" with model m1, label A and query 1 pending (its prediction in,
 * its label not). */
static void seed(fx_t *fx)
{
    pred(fx, "a", 1, "m1", "A");
    assert_int_equal(send_msg(fx), 0);
}

static void test_ingest_batch_over_max_tasks_dropped_whole(void **state)
{
    fx_t *fx = *state;
    fx->conf.max_tasks = 1;
    seed(fx);
    /* The first event would join query 1, the second add a model and a
     * label, the third a second task: none of it may happen. */
    msgpack_pack_array(&fx->pk, 3);
    label(fx, "a", 1, "A");
    pred(fx, "a", 2, "m2", "B");
    pred(fx, "b", 3, "m1", "A");
    assert_dropped(fx, "a", ENS_DROP_TOO_MANY_TASKS);
    assert_null(ens_tasks_find(fx->tasks, "b", 1));
    assert_int_equal(fx->joined, 0);
    /* Without its third event, the batch fits and is applied. */
    msgpack_pack_array(&fx->pk, 2);
    label(fx, "a", 1, "A");
    pred(fx, "a", 2, "m2", "B");
    assert_int_equal(send_msg(fx), 0);
    snap_t s = snap(fx, "a");
    assert_int_equal(s.rows, 1);
    assert_int_equal(s.models, 2);
    assert_int_equal(s.labels, 2);
    assert_int_equal(s.pending, 1);
    assert_int_equal(s.events, 3);
    assert_int_equal(fx->joined, 1);
}

static void test_ingest_batch_over_max_models_dropped_whole(void **state)
{
    fx_t *fx = *state;
    fx->conf.max_models = 2;
    seed(fx);
    msgpack_pack_array(&fx->pk, 3);
    label(fx, "a", 1, "A");
    pred(fx, "a", 2, "m2", "B"); /* the second model: fits */
    pred(fx, "a", 3, "m3", "A"); /* the third: over */
    assert_dropped(fx, "a", ENS_DROP_TOO_MANY_MODELS);
    const ens_window_t *w = ens_tasks_find(fx->tasks, "a", 1)->window;
    assert_int_equal(ens_window_find_model(w, "m2", 2), ENS_ENOTFOUND);
    assert_int_equal(ens_window_find_label(w, "B", 1), ENS_ENOTFOUND);
    /* One prediction event naming both new models at once: the same. */
    ens_str_t m[2] = {S("m2"), S("m3")}, a[2] = {S("A"), S("A")};
    rig_pack_prediction(&fx->pk, S("a"), 4, m, a, 2);
    assert_dropped(fx, "a", ENS_DROP_TOO_MANY_MODELS);
    /* The same model twice in one batch is one addition. */
    msgpack_pack_array(&fx->pk, 2);
    pred(fx, "a", 5, "m2", "A");
    pred(fx, "a", 6, "m2", "A");
    assert_int_equal(send_msg(fx), 0);
    assert_int_equal(ens_window_models(w), 2);
}

/* Task "a" with n labels L000.. (as answers of models m000..). */
static void labels_upto(fx_t *fx, size_t n)
{
    ens_str_t m[ENS_MAX_LABELS], a[ENS_MAX_LABELS];
    for (size_t i = 0; i < n; i++) {
        m[i] = model_name(fx, i);
        a[i] = label_name(fx, i);
    }
    rig_pack_prediction(&fx->pk, S("a"), 1, m, a, n);
    assert_int_equal(send_msg(fx), 0);
    assert_int_equal(ens_window_labels(ens_tasks_find(fx->tasks, "a", 1)->window), n);
}

static void test_ingest_255th_label_dropped_whole(void **state)
{
    fx_t *fx = *state;
    labels_upto(fx, ENS_MAX_LABELS - 1);
    /* The 254th label fits (with an abstention beside it, not a label). */
    msgpack_pack_array(&fx->pk, 2);
    pred(fx, "a", 2, "m000", "?");
    pred(fx, "a", 2, "m001", "L253");
    assert_int_equal(send_msg(fx), 0);
    assert_int_equal(ens_window_labels(ens_tasks_find(fx->tasks, "a", 1)->window), 254);
    /* The 255th does not, even as the truth: the batch's first event (a
     * label that would join query 1) is refused with it. */
    msgpack_pack_array(&fx->pk, 2);
    label(fx, "a", 1, "L000");
    label(fx, "a", 3, "L254");
    assert_dropped(fx, "a", ENS_DROP_TOO_MANY_LABELS);
    pred(fx, "a", 4, "m000", "L254");
    assert_dropped(fx, "a", ENS_DROP_TOO_MANY_LABELS);
    assert_int_equal(fx->joined, 0);
}

/* A new task's first message may bring all 254 labels, and abstentions:
 * "?" is not a label, for a new task as for a known one. */
static void test_ingest_new_task_254_labels_and_abstention(void **state)
{
    fx_t *fx = *state;
    ens_str_t m[ENS_MAX_LABELS + 1], a[ENS_MAX_LABELS + 1];
    for (size_t i = 0; i < ENS_MAX_LABELS; i++) {
        m[i] = model_name(fx, i);
        a[i] = label_name(fx, i);
    }
    m[ENS_MAX_LABELS] = model_name(fx, ENS_MAX_LABELS);
    a[ENS_MAX_LABELS] = S("?");
    rig_pack_prediction(&fx->pk, S("a"), 1, m, a, ENS_MAX_LABELS + 1);
    int rc = send_msg(fx);
    assert_int_equal(ens_ingest_stats(fx->in)->dropped[ENS_DROP_TOO_MANY_LABELS], 0);
    assert_int_equal(rc, 0);
    const ens_window_t *w = ens_tasks_find(fx->tasks, "a", 1)->window;
    assert_int_equal(ens_window_labels(w), ENS_MAX_LABELS);
    assert_int_equal(ens_window_models(w), ENS_MAX_LABELS + 1);
    /* One more label in a new task is one too many. */
    a[ENS_MAX_LABELS] = label_name(fx, ENS_MAX_LABELS);
    rig_pack_prediction(&fx->pk, S("b"), 1, m, a, ENS_MAX_LABELS + 1);
    assert_dropped(fx, "a", ENS_DROP_TOO_MANY_LABELS);
    assert_null(ens_tasks_find(fx->tasks, "b", 1));
}

/* ---- sampling ---------------------------------------------------------- */

/* docs/protocol.md: a query is kept iff XXH3-64 (seed 0) of
 * task || 0x00 || key is below rate * 2^64, key being 'u' and the query as
 * 8 big-endian bytes, or 's' and the query's bytes. */
static int kept_by_doc(ens_str_t task, int is_uint, uint64_t q, const char *qs, double rate)
{
    uint8_t buf[600];
    size_t n = task.len;
    memcpy(buf, task.ptr, n);
    buf[n++] = 0;
    if (is_uint) {
        buf[n++] = 'u';
        for (int i = 0; i < 8; i++)
            buf[n++] = (uint8_t)(q >> (56 - 8 * i));
    } else {
        buf[n++] = 's';
        memcpy(buf + n, qs, strlen(qs));
        n += strlen(qs);
    }
    return XXH3_64bits(buf, n) < (uint64_t)(rate * 18446744073709551616.0);
}

/* One query: its prediction and its label (in either order), as two
 * messages, integer or string id. */
static void send_query(fx_t *fx, ens_str_t task, int is_uint, uint64_t q, const char *qs,
                       int label_first, double ts)
{
    ens_str_t m = S("m"), a = S("A");
    for (int k = 0; k < 2; k++) {
        int is_label = (k == 0) == label_first;
        msgpack_pack_map(&fx->pk, 5);
        rig_pack_key(&fx->pk, "kind");
        rig_pack_key(&fx->pk, is_label ? "label" : "prediction");
        rig_pack_key(&fx->pk, "task");
        rig_pack_str(&fx->pk, task);
        rig_pack_key(&fx->pk, "query");
        if (is_uint)
            msgpack_pack_uint64(&fx->pk, q);
        else
            msgpack_pack_str_with_body(&fx->pk, qs, strlen(qs));
        rig_pack_key(&fx->pk, is_label ? "label" : "model");
        rig_pack_str(&fx->pk, is_label ? a : m);
        if (is_label) {
            rig_pack_key(&fx->pk, "ts");
            msgpack_pack_double(&fx->pk, ts);
        } else {
            rig_pack_key(&fx->pk, "label");
            rig_pack_str(&fx->pk, a);
        }
        assert_int_equal(send_msg(fx), 0);
    }
}

static void test_ingest_sampling_keeps_queries_whole(void **state)
{
    fx_t *fx = *state;
    static const ens_str_t tasks[] = {SI("alpha"), SI("téx")};
    fx->conf.sample_rate = 0.3;
    size_t kept[2] = {0}, out[2] = {0};
    double want_ts[2][400];
    for (size_t i = 0; i < 400; i++) {
        char qs[32];
        snprintf(qs, sizeof(qs), "query-%zu", i);
        uint64_t q = (uint64_t)i * 0x9E3779B97F4A7C15u;
        int is_uint = i % 3 != 0, t = (int)(i % 2);
        send_query(fx, tasks[t], is_uint, q, qs, i % 5 == 0, (double)i);
        if (kept_by_doc(tasks[t], is_uint, q, qs, 0.3))
            want_ts[t][kept[t]++] = (double)i;
        else
            out[t]++;
    }
    for (int t = 0; t < 2; t++) {
        const ens_task_t *task = ens_tasks_find(fx->tasks, tasks[t].ptr, tasks[t].len);
        assert_non_null(task);
        /* Not one query kept by half: none is left pending. */
        assert_int_equal(ens_join_pending(task->join), 0);
        assert_int_equal(task->sampled_out, 2 * out[t]);
        assert_int_equal(ens_window_rows(task->window), kept[t]);
        for (size_t r = 0; r < kept[t]; r++)
            assert_true(ens_window_ts(task->window, r) == want_ts[t][r]);
        assert_in_range(kept[t], 30, 90); /* ~0.3 of 200 */
    }
    assert_int_equal(ens_ingest_stats(fx->in)->events, 800);
}

/* ---- counters ---------------------------------------------------------- */

/* Reads the status entries back with msgpack-c and checks each counter
 * against the stats and the names spelled here. */
static void check_status(const fx_t *fx)
{
    static const char *const drops[] = {"too_many_tasks", "too_many_models", "too_many_labels"};
    const ens_ingest_stats_t *st = ens_ingest_stats(fx->in);
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_mpw_map_begin(&w);
    ens_ingest_status(fx->in, &w);
    ens_mpw_map_end(&w);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, w.data, w.size, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, w.size);
    msgpack_object o = u.data;
    assert_true(o.type == MSGPACK_OBJECT_MAP && o.via.map.size == 5);
    msgpack_object_kv *kv = o.via.map.ptr;
    assert_int_equal(kv[0].val.via.u64, st->messages);
    assert_int_equal(kv[1].val.via.u64, st->events);
    assert_int_equal(kv[2].val.via.map.size, ENS_REJECT_COUNT);
    for (int r = 0; r < ENS_REJECT_COUNT; r++) {
        msgpack_object_kv *e = &kv[2].val.via.map.ptr[r];
        const char *name = ens_reject_name((ens_reject_t)r);
        assert_int_equal(e->key.via.str.size, strlen(name));
        assert_memory_equal(e->key.via.str.ptr, name, strlen(name));
        assert_int_equal(e->val.via.u64, st->rejected[r]);
    }
    assert_int_equal(kv[3].val.via.map.size, 3);
    for (int r = 0; r < 3; r++) {
        msgpack_object_kv *e = &kv[3].val.via.map.ptr[r];
        assert_int_equal(e->key.via.str.size, strlen(drops[r]));
        assert_memory_equal(e->key.via.str.ptr, drops[r], strlen(drops[r]));
        assert_int_equal(e->val.via.u64, st->dropped[r]);
    }
    assert_int_equal(kv[4].key.via.str.size, strlen("future_ts_clamped"));
    assert_memory_equal(kv[4].key.via.str.ptr, "future_ts_clamped", strlen("future_ts_clamped"));
    assert_int_equal(kv[4].val.via.u64, st->future_ts);
    const char *keys[] = {"messages_in", "events_in", "rejected", "dropped"};
    for (int k = 0; k < 4; k++)
        assert_memory_equal(kv[k].key.via.str.ptr, keys[k], strlen(keys[k]));
    msgpack_unpacked_destroy(&u);
    ens_mpw_free(&w);
}

/* A label's ts up to ingest.max_future ahead of the clock (1.7e9 here) is
 * kept as sent; one further ahead becomes the arrival time, counted. */
static void test_ingest_future_label_ts_clamped(void **state)
{
    fx_t *fx = *state;
    const double now = 1.7e9, tol = fx->conf.max_future;
    const double sent[] = {now - 10, now + tol, now + tol + 1, now + 86400};
    const double want[] = {now - 10, now + tol, now, now};
    ens_str_t m = {"m", 1}, a = {"A", 1}, task = {"t", 1};
    assert_true(tol > 0);
    for (int i = 0; i < 4; i++) {
        msgpack_pack_array(&fx->pk, 2);
        rig_pack_prediction(&fx->pk, task, (uint64_t)i, &m, &a, 1);
        rig_pack_label(&fx->pk, task, (uint64_t)i, a, sent[i]);
        assert_int_equal(send_msg(fx), 0);
    }
    const ens_task_t *t = ens_tasks_find(fx->tasks, "t", 1);
    assert_non_null(t);
    assert_int_equal(ens_window_rows(t->window), 4);
    for (int i = 0; i < 4; i++)
        assert_true(ens_window_ts(t->window, i) == want[i]);
    assert_int_equal(ens_ingest_stats(fx->in)->future_ts, 2);
}

/* One prediction event of task "c" for query q: the answers of models[0..n)
 * (all "A"), with a cost when cost >= 0. */
static void pred_cost(fx_t *fx, uint64_t q, const char *const *models, size_t n, double cost)
{
    msgpack_pack_map(&fx->pk, cost >= 0 ? 5 : 4);
    msgpack_pack_str_with_body(&fx->pk, "kind", 4);
    msgpack_pack_str_with_body(&fx->pk, "prediction", 10);
    msgpack_pack_str_with_body(&fx->pk, "task", 4);
    msgpack_pack_str_with_body(&fx->pk, "c", 1);
    msgpack_pack_str_with_body(&fx->pk, "query", 5);
    msgpack_pack_uint64(&fx->pk, q);
    msgpack_pack_str_with_body(&fx->pk, "predictions", 11);
    msgpack_pack_map(&fx->pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_str_with_body(&fx->pk, models[i], strlen(models[i]));
        msgpack_pack_str_with_body(&fx->pk, "A", 1);
    }
    if (cost >= 0) {
        msgpack_pack_str_with_body(&fx->pk, "cost", 4);
        msgpack_pack_double(&fx->pk, cost);
    }
    assert_int_equal(send_msg(fx), 0);
}

/* A label event of task "c" carrying a cost, which means nothing there. */
static void label_cost(fx_t *fx, uint64_t q)
{
    msgpack_pack_map(&fx->pk, 5);
    msgpack_pack_str_with_body(&fx->pk, "kind", 4);
    msgpack_pack_str_with_body(&fx->pk, "label", 5);
    msgpack_pack_str_with_body(&fx->pk, "task", 4);
    msgpack_pack_str_with_body(&fx->pk, "c", 1);
    msgpack_pack_str_with_body(&fx->pk, "query", 5);
    msgpack_pack_uint64(&fx->pk, q);
    msgpack_pack_str_with_body(&fx->pk, "label", 5);
    msgpack_pack_str_with_body(&fx->pk, "A", 1);
    msgpack_pack_str_with_body(&fx->pk, "cost", 4);
    msgpack_pack_double(&fx->pk, 99);
    assert_int_equal(send_msg(fx), 0);
}

static double model_cost(const fx_t *fx, const char *m, uint32_t *n)
{
    const ens_task_t *t = ens_tasks_find(fx->tasks, "c", 1);
    assert_non_null(t);
    int id = ens_window_find_model(t->window, m, strlen(m));
    assert_true(id >= 0);
    return ens_window_cost(t->window, (size_t)id, n);
}

/* Costs ride the join into the window (docs/protocol.md, "Costs"): an
 * event's cost is each of its answers'; an answer without one, a second
 * answer of a model (dropped by the join), a late answer and a label's cost
 * count for nothing. The means are computed here from what was sent. */
static void test_ingest_costs_reach_the_window(void **state)
{
    fx_t *fx = *state;
    static const char *const both[] = {"m1", "m2"}, *const m1[] = {"m1"}, *const m2[] = {"m2"},
                             *const m3[] = {"m3"};
    pred_cost(fx, 1, both, 2, 0.5); /* m1 0.5, m2 0.5 */
    pred_cost(fx, 1, m3, 1, -1);    /* m3: no cost */
    pred_cost(fx, 1, m1, 1, 7);     /* m1 again: the first answer is kept */
    label_cost(fx, 1);
    pred_cost(fx, 1, m2, 1, 9); /* late: the query joined */
    pred_cost(fx, 2, m1, 1, 0.25);
    pred_cost(fx, 2, m2, 1, -1);
    label_cost(fx, 2);
    pred_cost(fx, 3, m3, 1, 2); /* pending: not in the window */
    uint32_t n = 0;
    assert_true(model_cost(fx, "m1", &n) == (0.5 + 0.25) / 2);
    assert_int_equal(n, 2);
    assert_true(model_cost(fx, "m2", &n) == 0.5);
    assert_int_equal(n, 1);
    assert_true(isnan(model_cost(fx, "m3", &n)));
    assert_int_equal(n, 0);
    label_cost(fx, 3);
    assert_true(model_cost(fx, "m3", &n) == 2);
    assert_int_equal(n, 1);
}

static void test_ingest_counters_by_reason(void **state)
{
    fx_t *fx = *state;
    fx->conf.max_tasks = 1;
    fx->conf.max_models = 1;
    seed(fx);
    pred(fx, "b", 1, "m1", "A");
    assert_dropped(fx, "a", ENS_DROP_TOO_MANY_TASKS);
    pred(fx, "a", 2, "m2", "A");
    assert_dropped(fx, "a", ENS_DROP_TOO_MANY_MODELS);
    pred(fx, "a", 3, "m2", "A");
    assert_dropped(fx, "a", ENS_DROP_TOO_MANY_MODELS);
    /* Decoder refusals: counted apart, nothing changed either. */
    snap_t before = snap(fx, "a");
    assert_int_equal(ens_ingest_message(fx->in, "\xc1", 1, 1.7e9, 100), -1);
    assert_int_equal(ens_ingest_message(fx->in, "\x05", 1, 1.7e9, 100), -1);
    snap_t after = snap(fx, "a");
    before.messages += 2;
    assert_memory_equal(&before, &after, sizeof(before));
    const ens_ingest_stats_t *st = ens_ingest_stats(fx->in);
    assert_int_equal(st->rejected[ENS_REJECT_MALFORMED], 1);
    assert_int_equal(st->rejected[ENS_REJECT_NOT_EVENT], 1);
    assert_int_equal(st->dropped[ENS_DROP_TOO_MANY_TASKS], 1);
    assert_int_equal(st->dropped[ENS_DROP_TOO_MANY_MODELS], 2);
    assert_int_equal(st->dropped[ENS_DROP_TOO_MANY_LABELS], 0);
    assert_int_equal(st->messages, 6);
    assert_int_equal(st->events, 1);
    check_status(fx);
}

/* In one batch, answers at the same position under other names, a new
 * label, another task between two events of the first: each answer lands
 * under its own model and label (the ids noted for a name are never another
 * name's). */
static void test_ingest_batch_names_by_position(void **state)
{
    fx_t *fx = *state;
    static const char *const rows[3][3] = {{"a", "X", "Y"}, {"b", "X", "Y"}, {"a", "Y", "Z"}};
    /* q: models (first, second) with answers; the truth. */
    static const char *const truth[3] = {"X", "Y", "Z"};
    msgpack_pack_array(&fx->pk, 8);
    for (uint64_t q = 0; q < 3; q++) {
        const char *first = rows[q][0], *second = first[0] == 'a' ? "b" : "a";
        ens_str_t m[2] = {{first, 1}, {second, 1}}, a[2] = {{rows[q][1], 1}, {rows[q][2], 1}};
        rig_pack_prediction(&fx->pk, (ens_str_t){"t", 1}, q, m, a, 2);
    }
    pred(fx, "u", 0, "a", "Q");
    for (uint64_t q = 0; q < 3; q++)
        label(fx, "t", q, truth[q]);
    label(fx, "u", 0, "Q");
    assert_int_equal(send_msg(fx), 0);
    const ens_task_t *t = ens_tasks_find(fx->tasks, "t", 1);
    assert_non_null(t);
    assert_int_equal(ens_window_rows(t->window), 3);
    for (size_t q = 0; q < 3; q++) {
        const char *first = rows[q][0], *second = first[0] == 'a' ? "b" : "a";
        int m1 = ens_window_find_model(t->window, first, 1);
        int m2 = ens_window_find_model(t->window, second, 1);
        assert_true(m1 >= 0 && m2 >= 0 && m1 != m2);
        assert_int_equal(ens_window_x(t->window, q, (size_t)m1),
                         ens_window_find_label(t->window, rows[q][1], 1));
        assert_int_equal(ens_window_x(t->window, q, (size_t)m2),
                         ens_window_find_label(t->window, rows[q][2], 1));
        assert_int_equal(ens_window_y(t->window, q), ens_window_find_label(t->window, truth[q], 1));
    }
    assert_int_equal(ens_window_labels(t->window), 3);
    const ens_task_t *u = ens_tasks_find(fx->tasks, "u", 1);
    assert_non_null(u);
    assert_int_equal(ens_window_rows(u->window), 1);
}

/* One event per message, tasks alternating, each task's models and labels
 * interned in the other's order (so that the same name has another id in
 * each): ids found for one message or task are never taken for another's
 * names. Checked row by row against what was sent. */
static void test_ingest_names_across_messages_and_tasks(void **state)
{
    fx_t *fx = *state;
    static const char *const tasks[2] = {"t", "u"};
    static const char *const models[2][3] = {{"a", "b", "c"}, {"c", "b", "a"}};
    static const char *const answers[3] = {"X", "Y", "Z"};
    for (uint64_t q = 0; q < 6; q++)
        for (int k = 0; k < 2; k++) {
            /* Answer of model i to query q: answers[(i + q + k) % 3]. */
            ens_str_t m[3], a[3];
            for (int i = 0; i < 3; i++) {
                m[i] = (ens_str_t){models[k][i], 1};
                int named = models[k][i][0] - 'a';
                a[i] = (ens_str_t){answers[(named + q + (uint64_t)k) % 3], 1};
            }
            rig_pack_prediction(&fx->pk, (ens_str_t){tasks[k], 1}, q, m, a, 3);
            assert_int_equal(send_msg(fx), 0);
            label(fx, tasks[k], q, answers[(q + (uint64_t)k) % 3]);
            assert_int_equal(send_msg(fx), 0);
        }
    for (int k = 0; k < 2; k++) {
        const ens_task_t *t = ens_tasks_find(fx->tasks, tasks[k], 1);
        assert_non_null(t);
        assert_int_equal(ens_window_rows(t->window), 6);
        assert_int_equal(ens_window_find_model(t->window, models[k][0], 1), 0);
        for (size_t q = 0; q < 6; q++) {
            for (int named = 0; named < 3; named++) {
                char m = (char)('a' + named);
                int j = ens_window_find_model(t->window, &m, 1);
                assert_true(j >= 0);
                const char *want = answers[(named + q + (size_t)k) % 3];
                assert_int_equal(ens_window_x(t->window, q, (size_t)j),
                                 ens_window_find_label(t->window, want, 1));
            }
            assert_int_equal(ens_window_y(t->window, q),
                             ens_window_find_label(t->window, answers[(q + (size_t)k) % 3], 1));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingest_batch_names_by_position, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_names_across_messages_and_tasks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ingest_batch_over_max_tasks_dropped_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ingest_batch_over_max_models_dropped_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ingest_255th_label_dropped_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_new_task_254_labels_and_abstention, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ingest_sampling_keeps_queries_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_future_label_ts_clamped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_counters_by_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_costs_reach_the_window, setup, teardown),
    };
    return cmocka_run_group_tests_name("ingest", tests, NULL, NULL);
}
