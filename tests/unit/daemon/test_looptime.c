/* test_looptime.c - the loop's turns timed, and a slow turn put down to the
 * section that took most of its CPU time (looptime.h).
 *
 * Each turn here is one timer callback that burns a known amount of the
 * thread's CPU time in known sections, so the figures are decided by CPU
 * time, not by a wall clock a busy machine stretches. The status map is
 * read back with msgpack-c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <msgpack.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "looptime.h"

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Spends ms of this thread's CPU time. */
static void burn(double ms)
{
    volatile uint64_t x = 0;
    for (double end = cpu_ms() + ms; cpu_ms() < end;)
        for (int i = 0; i < 1000; i++)
            x += (uint64_t)i;
}

/* One turn's plan: CPU time in each of up to three sections, in order;
 * elsewhere: first, another thread enters ENS_LOOP_INGEST. */
typedef struct {
    ens_loop_section_t section[3];
    double ms[3];
    int elsewhere;
} turn_t;

typedef struct {
    const turn_t *turns;
    size_t n, at;
    int warmed; /* the first firing, which may come before any turn is timed */
} plan_t;

static void enter_elsewhere(void *arg)
{
    (void)arg;
    ens_looptime_enter(ENS_LOOP_INGEST);
}

static void on_timer(uv_timer_t *h)
{
    plan_t *p = h->data;
    /* A timer due when the loop starts fires before the first prepare,
     * and that turn is not timed: the plan begins on the next firing. */
    if (!p->warmed) {
        p->warmed = 1;
        return;
    }
    const turn_t *t = &p->turns[p->at++];
    if (t->elsewhere) {
        uv_thread_t th;
        assert_int_equal(uv_thread_create(&th, enter_elsewhere, NULL), 0);
        uv_thread_join(&th);
    }
    ens_loop_section_t was = ENS_LOOP_OTHER;
    for (int i = 0; i < 3 && t->ms[i] > 0; i++) {
        ens_loop_section_t prev = ens_looptime_enter(t->section[i]);
        if (i == 0)
            was = prev;
        burn(t->ms[i]);
    }
    ens_looptime_enter(was);
    if (p->at == p->n)
        uv_timer_stop(h);
}

/* The `loop` map of lt's status, unpacked into *out (freed by the caller). */
static const msgpack_object *loop_map(const ens_looptime_t *lt, msgpack_unpacked *out)
{
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_mpw_map_begin(&w);
    ens_looptime_status(lt, &w);
    ens_mpw_map_end(&w);
    size_t size = 0;
    char *bytes = ens_mpw_take(&w, &size);
    msgpack_unpacked_init(out);
    assert_int_equal(msgpack_unpack_next(out, bytes, size, NULL), MSGPACK_UNPACK_SUCCESS);
    free(bytes);
    ens_mpw_free(&w);
    assert_int_equal(out->data.type, MSGPACK_OBJECT_MAP);
    return &out->data.via.map.ptr[0].val;
}

static const msgpack_object *field(const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &map->via.map.ptr[i].val;
    }
    fail_msg("no %s in the loop's status", key);
    return NULL;
}

static void run(const turn_t *turns, size_t n, msgpack_unpacked *out, const msgpack_object **lp)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(ens_looptime_configure(&loop), 0);
    ens_looptime_t *lt = ens_looptime_new(&loop);
    assert_non_null(lt);
    plan_t plan = {turns, n, 0, 0};
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    timer.data = &plan;
    uv_timer_start(&timer, on_timer, 1, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(plan.at, n);
    *lp = loop_map(lt, out);
    ens_looptime_close(lt);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static uint64_t by(const msgpack_object *lp, const char *section)
{
    const msgpack_object *m = field(field(lp, "turns_over_5ms_cpu_by"), section);
    assert_int_equal(m->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    return m->via.u64;
}

static int is(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* Three slow turns, each put down to the section with most of its CPU time
 * (not the first or the last entered), one fast turn counted nowhere. The
 * longest turn is the one of 14 ms, mostly the snapshot's. */
static void test_slow_turns_by_section(void **state)
{
    (void)state;
    const turn_t turns[] = {
        {{ENS_LOOP_INGEST}, {7}, 0},
        {{ENS_LOOP_TASKS, ENS_LOOP_SNAPSHOT, ENS_LOOP_INGEST}, {2, 9, 3}, 0},
        {{ENS_LOOP_SELECT, ENS_LOOP_INGEST}, {1.5, 6}, 0},
        {{ENS_LOOP_METRICS}, {1}, 0},
    };
    msgpack_unpacked out;
    const msgpack_object *lp;
    run(turns, sizeof(turns) / sizeof(turns[0]), &out, &lp);
    assert_int_equal(field(lp, "turns_over_5ms_cpu")->via.u64, 3);
    assert_int_equal(by(lp, "ingest"), 2);
    assert_int_equal(by(lp, "snapshot"), 1);
    assert_int_equal(by(lp, "tasks") + by(lp, "select") + by(lp, "metrics") + by(lp, "other") +
                         by(lp, "requests") + by(lp, "journal"),
                     0);
    assert_true(is(field(lp, "longest_turn_cpu_in"), "snapshot"));
    double longest = field(lp, "longest_turn_cpu_ms")->via.f64;
    assert_true(longest >= 14 && longest < 14 + 10); /* 10 ms for the loop's own work */
    msgpack_unpacked_destroy(&out);
}

/* Time outside any section is the loop's own ("other"), and a section
 * entered from another thread changes nothing. */
static void test_other_and_other_threads(void **state)
{
    (void)state;
    const turn_t turns[] = {{{ENS_LOOP_OTHER}, {6}, 1}};
    msgpack_unpacked out;
    const msgpack_object *lp;
    run(turns, 1, &out, &lp);
    assert_int_equal(by(lp, "other"), 1);
    assert_int_equal(by(lp, "ingest"), 0);
    assert_true(is(field(lp, "longest_turn_cpu_in"), "other"));
    msgpack_unpacked_destroy(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_turns_by_section),
        cmocka_unit_test(test_other_and_other_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
