/* test_ingest_slices.c - a message applied over several loop turns
 * (ens_ingest_message_until, ens_ingest_resume) must change exactly what
 * the same message applied in one go changes.
 *
 * The reference is a second registry fed the same messages whole with
 * ens_ingest_message. Each side records what its tasks tell the state
 * module (names added, queries joined, rows with their answers and times:
 * what the journal would hold), in order; the records, the counters, the
 * joins' figures and every window cell must be equal. The sliced side
 * applies one event per call (a deadline long past), so every event
 * boundary is a turn boundary; a message held when another arrives, or
 * finished by ens_ingest_finish (a stop, a reload), loses nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rig.h"

#define TASKS 3
#define MODELS 12
#define EVENTS 100 /* per message */
#define MESSAGES 6
#define PAST 1e-9 /* a deadline every clock read is past: one event per call */

typedef struct {
    ens_config_t conf;
    ens_tasks_t *tasks;
    ens_ingest_t *in;
    uint8_t *log; /* the hooks' records, in order */
    size_t len, cap;
} side_t;

static void put(side_t *s, const void *p, size_t n)
{
    if (s->len + n > s->cap) {
        s->cap = 2 * (s->len + n);
        s->log = realloc(s->log, s->cap);
        assert_non_null(s->log);
    }
    memcpy(s->log + s->len, p, n);
    s->len += n;
}

static void on_added(void *ud, const ens_task_t *t, ens_name_kind_t kind, uint32_t id,
                     ens_str_t name)
{
    side_t *s = ud;
    uint32_t rec[3] = {'a', (uint32_t)kind, id};
    put(s, rec, sizeof(rec));
    put(s, &t->id, sizeof(t->id));
    put(s, name.ptr, name.len);
}

static void on_joined(void *ud, ens_task_t *t, uint8_t y, const uint8_t *x, size_t nx, double ts)
{
    side_t *s = ud;
    uint32_t rec[3] = {'j', t->id, (uint32_t)nx};
    put(s, rec, sizeof(rec));
    put(s, &y, 1);
    put(s, x, nx);
    put(s, &ts, sizeof(ts));
}

static void on_query(void *ud, const ens_task_t *t, const void *key, size_t len)
{
    side_t *s = ud;
    uint32_t rec[3] = {'q', t->id, (uint32_t)len};
    put(s, rec, sizeof(rec));
    put(s, key, len);
}

static void side_init(side_t *s)
{
    memset(s, 0, sizeof(*s));
    ens_config_defaults(&s->conf);
    s->conf.task.window_rows = 150; /* rows leave the window too */
    s->conf.task.join_ttl = 1.5;    /* and queries expire, 1 s between messages */
    s->tasks = ens_tasks_new(&s->conf);
    s->in = ens_ingest_new(s->tasks, &s->conf);
    ens_task_hooks_t h = {on_added, on_joined, s, on_query};
    ens_tasks_set_hooks(s->tasks, &h);
}

static void side_free(side_t *s)
{
    ens_ingest_destroy(&s->in);
    ens_tasks_destroy(&s->tasks);
    free(s->log);
}

static uint64_t rng(uint64_t *x)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return *x >> 33;
}

/* Message k: EVENTS events over TASKS tasks (the last task first named in
 * message 1, half-way through it), predictions of 1 to 4 models with
 * answers of labels A to D (and abstentions), labels for queries of this
 * message and of the one before, some twice. */
static void pack_message(msgpack_sbuffer *sb, int k, uint64_t *seed)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, EVENTS);
    static const char *const labels[5] = {"A", "B", "C", "D", "?"};
    for (int e = 0; e < EVENTS; e++) {
        int tasks = k == 0 || (k == 1 && e < EVENTS / 2) ? TASKS - 1 : TASKS;
        char task[8], model[4][8];
        snprintf(task, sizeof(task), "t%d", (int)(rng(seed) % (uint64_t)tasks));
        uint64_t q = (uint64_t)(k * EVENTS + e) - (rng(seed) % 3 == 0 ? EVENTS / 2 : 0);
        ens_str_t t = {task, strlen(task)};
        if (rng(seed) % 3 == 0) {
            const char *y = labels[rng(seed) % 4];
            rig_pack_label(&pk, t, q, (ens_str_t){y, 1}, 1.7e9 + (double)e);
            continue;
        }
        size_t n = 1 + rng(seed) % 4;
        ens_str_t m[4], a[4];
        uint64_t first = rng(seed) % MODELS;
        for (size_t i = 0; i < n; i++) {
            snprintf(model[i], sizeof(model[i]), "m%02d", (int)((first + 5 * i) % MODELS));
            m[i] = (ens_str_t){model[i], strlen(model[i])};
            a[i] = (ens_str_t){labels[rng(seed) % 5], 1};
        }
        rig_pack_prediction(&pk, t, q, m, a, n);
    }
}

/* Applies message k's bytes on the sliced side one event per call, and
 * checks events_in at each step. */
static void sliced(side_t *s, const msgpack_sbuffer *sb, double now, double mono, int finish_at)
{
    uint64_t before = ens_ingest_stats(s->in)->events;
    assert_int_equal(ens_ingest_message_until(s->in, sb->data, sb->size, now, mono, PAST), 1);
    assert_true(ens_ingest_holding(s->in));
    assert_int_equal(ens_ingest_stats(s->in)->events, before + 1);
    for (size_t step = 2; step <= EVENTS; step++) {
        if ((int)step == finish_at) {
            ens_ingest_finish(s->in);
            break;
        }
        assert_int_equal(ens_ingest_resume(s->in, PAST), step < EVENTS);
        assert_int_equal(ens_ingest_stats(s->in)->events, before + step);
    }
    assert_false(ens_ingest_holding(s->in));
    assert_int_equal(ens_ingest_resume(s->in, PAST), 0);
    assert_int_equal(ens_ingest_stats(s->in)->events, before + EVENTS);
}

static void assert_same(const side_t *a, const side_t *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->log, b->log, a->len);
    const ens_ingest_stats_t *sa = ens_ingest_stats(a->in), *sb = ens_ingest_stats(b->in);
    assert_memory_equal(sa, sb, sizeof(*sa));
    assert_int_equal(ens_tasks_count(a->tasks), TASKS);
    assert_int_equal(ens_tasks_count(b->tasks), TASKS);
    for (uint32_t i = 0; i < TASKS; i++) {
        const ens_task_t *ta = ens_tasks_get(a->tasks, i), *tb = ens_tasks_get(b->tasks, i);
        assert_string_equal(ta->name, tb->name);
        assert_int_equal(ens_join_pending(ta->join), ens_join_pending(tb->join));
        size_t rows = ens_window_rows(ta->window), nm = ens_window_models(ta->window);
        assert_int_equal(rows, ens_window_rows(tb->window));
        assert_int_equal(nm, ens_window_models(tb->window));
        assert_int_equal(ens_window_labels(ta->window), ens_window_labels(tb->window));
        for (size_t r = 0; r < rows; r++) {
            assert_int_equal(ens_window_y(ta->window, r), ens_window_y(tb->window, r));
            for (size_t m = 0; m < nm; m++)
                assert_int_equal(ens_window_x(ta->window, r, m), ens_window_x(tb->window, r, m));
        }
    }
}

static void test_ingest_slices_equal_one_go(void **state)
{
    (void)state;
    ens_log_set_level(ENS_LOG_ERR);
    side_t whole, parts;
    side_init(&whole);
    side_init(&parts);
    uint64_t seed = 42;
    msgpack_sbuffer sb[MESSAGES];
    for (int k = 0; k < MESSAGES; k++) {
        msgpack_sbuffer_init(&sb[k]);
        pack_message(&sb[k], k, &seed);
    }
    for (int k = 0; k < MESSAGES; k++) {
        double now = 1.7e9 + k, mono = 100.0 + k;
        assert_int_equal(ens_ingest_message(whole.in, sb[k].data, sb[k].size, now, mono), 0);
        if (k == 3) {
            /* Held when the next message arrives whole: finished first. */
            assert_int_equal(
                ens_ingest_message_until(parts.in, sb[k].data, sb[k].size, now, mono, PAST), 1);
            for (int i = 0; i < 10; i++)
                assert_int_equal(ens_ingest_resume(parts.in, PAST), 1);
            continue;
        }
        if (k == 4) {
            assert_int_equal(ens_ingest_message(parts.in, sb[k].data, sb[k].size, now, mono), 0);
            assert_false(ens_ingest_holding(parts.in));
            continue;
        }
        /* Message 2 is finished at once after 30 events (a stop, a reload). */
        sliced(&parts, &sb[k], now, mono, k == 2 ? 31 : 0);
    }
    assert_true(ens_ingest_stats(whole.in)->events == (uint64_t)MESSAGES * EVENTS);
    assert_true(whole.len > 0);
    assert_same(&whole, &parts);
    for (int k = 0; k < MESSAGES; k++)
        msgpack_sbuffer_destroy(&sb[k]);
    side_free(&whole);
    side_free(&parts);
}

/* A refused message holds nothing and counts as before. */
static void test_ingest_slices_refused_holds_nothing(void **state)
{
    (void)state;
    side_t s;
    side_init(&s);
    assert_int_equal(ens_ingest_message_until(s.in, "\xc1", 1, 1.7e9, 100.0, PAST), -1);
    assert_false(ens_ingest_holding(s.in));
    assert_int_equal(ens_ingest_resume(s.in, PAST), 0);
    assert_int_equal(ens_ingest_stats(s.in)->messages, 1);
    assert_int_equal(ens_ingest_stats(s.in)->events, 0);
    side_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest_slices_equal_one_go),
        cmocka_unit_test(test_ingest_slices_refused_holds_nothing),
    };
    return cmocka_run_group_tests_name("ingest_slices", tests, NULL, NULL);
}
