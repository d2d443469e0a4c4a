/* test_explored.c - the rows' exploration flags in a daemon: set as queries
 * join by the routers' rule, journaled, snapshotted, and back after a crash
 * and after a real kill -9.
 *
 * Reference: the rule of docs/protocol.md ("How a router explores")
 * computed here with xxhash directly, from the query ids the test fed, not
 * with the router library the daemon uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <xxhash.h>

#include "rig.h"

#define RATE 0.3
#define NROWS 80

/* Whether query q of task explores at RATE: xxh3_64(task, 0x00, 'u', q as 8
 * big-endian bytes; seed 1) < RATE * 2^64. */
static int explores(ens_str_t task, uint64_t q)
{
    unsigned char buf[64];
    memcpy(buf, task.ptr, task.len);
    buf[task.len] = 0;
    buf[task.len + 1] = 'u';
    for (int i = 0; i < 8; i++)
        buf[task.len + 2 + (size_t)i] = (unsigned char)(q >> (56 - 8 * i));
    uint64_t h = XXH3_64bits_withSeed(buf, task.len + 10, 1);
    return (long double)h < (long double)RATE * 18446744073709551616.0L;
}

static const ens_str_t tasks[] = {SI("alpha")};

/* Row i of the window is query i + 1 (rig.h numbers queries from 1). */
static void check_flags(const rig_life_t *l, size_t n)
{
    const ens_window_t *w = rig_task(l, tasks[0])->window;
    assert_int_equal(ens_window_rows(w), n);
    size_t ordinary = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ens_window_explored(w, i), explores(tasks[0], i + 1));
        ordinary += !ens_window_explored(w, i);
    }
    /* Both kinds are there, so that the check means something. */
    assert_true(ordinary > 0 && ordinary < n);
}

static void test_explored_flags_journal_and_snapshot(void **state)
{
    rig_fx_t *fx = *state;
    fx->conf.task.explore_rate = RATE;
    rig_row_t *rows = rig_gen_rows(tasks, 1, 0, NROWS);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows, NROWS / 2);
    rig_turn(l);
    check_flags(l, NROWS / 2);
    rig_crash(&l);

    /* From the journal's ROW records. */
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    check_flags(l, NROWS / 2);
    assert_int_equal(rig_stats(l->state).rows_journal, NROWS / 2);
    assert_int_equal(rig_snapshot(l), 0);
    rig_crash(&l);

    /* From the snapshot's BLOCKs. */
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    check_flags(l, NROWS / 2);
    assert_int_equal(rig_stats(l->state).rows_snapshot, NROWS / 2);
    rig_close(&l);

    /* A snapshot's window feeds the pipeline: the flags are in it. */
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    ens_data_t *d = ens_window_snapshot(rig_task(l, tasks[0])->window);
    assert_non_null(d->explored);
    for (size_t i = 0; i < d->nrows; i++)
        assert_int_equal(d->explored[i], explores(tasks[0], i + 1));
    ens_data_destroy(&d);
    rig_close(&l);
    free(rows);
}

/* A real kill -9 in a child process after a loop turn wrote the rows. */
static void test_explored_flags_kill9(void **state)
{
    rig_fx_t *fx = *state;
    fx->conf.task.explore_rate = RATE;
    rig_row_t *rows = rig_gen_rows(tasks, 1, 0, NROWS);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rig_life_t *l;
        if (rig_open(&l, &fx->conf, 0) != 0)
            _exit(3);
        rig_feed_all(l, rows, NROWS / 2);
        if (rig_snapshot(l) != 0)
            _exit(5);
        rig_feed_all(l, rows + NROWS / 2, NROWS / 2);
        rig_turn(l);
        raise(SIGKILL);
        _exit(4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, NROWS, 1);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.rows_snapshot, NROWS / 2);
    assert_int_equal(st.rows_journal, NROWS / 2);
    check_flags(l, NROWS);
    rig_close(&l);
    free(rows);
}

/* select.explore_rate 0: no query explores, every row is ordinary; 1:
 * every row explored. */
static void test_explored_rate_bounds(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(tasks, 1, 0, 10);
    for (int rate = 0; rate <= 1; rate++) {
        fx->conf.task.explore_rate = rate;
        rig_life_t *l;
        assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
        rig_feed_all(l, rows, 10);
        /* The second life holds the first's rows too: its own are last. */
        const ens_window_t *w = rig_task(l, tasks[0])->window;
        size_t n = ens_window_rows(w);
        assert_int_equal(n, 10 * (size_t)(rate + 1));
        for (size_t i = 0; i < n; i++)
            assert_int_equal(ens_window_explored(w, i), i >= 10);
        rig_close(&l);
    }
    free(rows);
}

int main(void)
{
    const struct CMUnitTest tests_[] = {
        cmocka_unit_test_setup_teardown(test_explored_flags_journal_and_snapshot, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_explored_flags_kill9, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_explored_rate_bounds, rig_setup, rig_teardown),
    };
    return cmocka_run_group_tests_name("explored", tests_, NULL, NULL);
}
