/* test_state_costs.c - answers' costs through the state: journaled with
 * their rows, snapshotted with the windows, and back after a crash, a real
 * kill -9 and a clean stop, so that every model's cost sum and count (its
 * mean, what greedy-cost spends) are what they were.
 *
 * Reference: the costs fed, kept here; per model the mean of the costs of
 * its answers among the rows the window holds (the last WINDOW fed),
 * computed by brute force. Costs are multiples of 1/1024, so sums are exact
 * and means compare with ==. A model that never reports a cost stays at
 * none; another reports on some answers only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>

#include "rig.h"

#define NM 4
#define WINDOW 50
#define NROWS 80

static const ens_str_t task = SI("priced");
static const ens_str_t models[NM] = {SI("m0"), SI("m1"), SI("m2"), SI("m3")};

/* Query q: model j answers unless (q + j) % 5 == 4; its cost is none for
 * m3 always and for m2 on odd queries, else (q % 9 + 16 * j) / 1024. */
static int asked(size_t q, size_t j)
{
    return (q + j) % 5 != 4;
}

static double cost_of(size_t q, size_t j)
{
    if (j == 3 || (j == 2 && q % 2))
        return NAN;
    return (double)(q % 9 + 16 * j) / 1024;
}

/* {"kind": "prediction", "task": T, "query": q, "model": m, "label": a
 * [, "cost": c]} */
static void pack_answer(msgpack_packer *pk, size_t q, size_t j)
{
    double c = cost_of(q, j);
    msgpack_pack_map(pk, isnan(c) ? 5 : 6);
    rig_pack_key(pk, "kind");
    rig_pack_key(pk, "prediction");
    rig_pack_key(pk, "task");
    rig_pack_str(pk, task);
    rig_pack_key(pk, "query");
    msgpack_pack_uint64(pk, q);
    rig_pack_key(pk, "model");
    rig_pack_str(pk, models[j]);
    rig_pack_key(pk, "label");
    rig_pack_str(pk, (q + j) % 3 ? S("A") : S("B"));
    if (!isnan(c)) {
        rig_pack_key(pk, "cost");
        msgpack_pack_double(pk, c);
    }
}

/* Feeds queries [from, to): each model's answer as its own event, then the
 * label. */
static void feed(rig_life_t *l, size_t from, size_t to)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (size_t q = from; q < to; q++) {
        for (size_t j = 0; j < NM; j++) {
            if (!asked(q, j))
                continue;
            pack_answer(&pk, q, j);
            assert_int_equal(rig_ingest(l, &sb), 0);
        }
        rig_pack_label(&pk, task, q, q % 2 ? S("A") : S("B"), 1.7e9 + (double)q);
        assert_int_equal(rig_ingest(l, &sb), 0);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* The window of `task` holds queries [fed - WINDOW, fed) with their costs. */
static void check_costs(const rig_life_t *l, size_t fed)
{
    const ens_window_t *w = rig_task(l, task)->window;
    size_t first = fed > WINDOW ? fed - WINDOW : 0;
    assert_int_equal(ens_window_rows(w), fed - first);
    for (size_t j = 0; j < NM; j++) {
        int id = ens_window_find_model(w, models[j].ptr, models[j].len);
        assert_true(id >= 0);
        double sum = 0;
        uint32_t n = 0, got_n = 0;
        for (size_t q = first; q < fed; q++) {
            double c = cost_of(q, j), at = ens_window_cost_at(w, q - first, (size_t)id);
            if (!asked(q, j) || isnan(c)) {
                assert_true(isnan(at));
                continue;
            }
            assert_true(at == c);
            sum += c;
            n++;
        }
        double got = ens_window_cost(w, (size_t)id, &got_n);
        assert_int_equal(got_n, n);
        if (n == 0)
            assert_true(isnan(got));
        else
            assert_true(got == sum / n);
    }
}

static void configure(rig_fx_t *fx)
{
    fx->conf.task.window_rows = WINDOW;
}

/* Rows from the journal (a crash after a loop turn), then from a
 * snapshot, then after a clean stop; the window has dropped its oldest
 * rows, with their costs, before each. */
static void test_state_costs_journal_snapshot_stop(void **state)
{
    rig_fx_t *fx = *state;
    configure(fx);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    feed(l, 0, NROWS / 2 + 20);
    rig_turn(l);
    check_costs(l, NROWS / 2 + 20);
    rig_crash(&l);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    assert_int_equal(rig_stats(l->state).rows_journal, NROWS / 2 + 20); /* replayed, 10 expired */
    check_costs(l, NROWS / 2 + 20);
    feed(l, NROWS / 2 + 20, NROWS);
    assert_int_equal(rig_snapshot(l), 0);
    rig_crash(&l);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    assert_int_equal(rig_stats(l->state).rows_snapshot, WINDOW);
    check_costs(l, NROWS);
    rig_close(&l);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    check_costs(l, NROWS);
    rig_close(&l);
}

/* A real kill -9 in a child process: rows from the snapshot and from the
 * journal written after it. */
static void test_state_costs_kill9(void **state)
{
    rig_fx_t *fx = *state;
    configure(fx);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rig_life_t *l;
        if (rig_open(&l, &fx->conf, 0) != 0)
            _exit(3);
        feed(l, 0, NROWS / 2);
        if (rig_snapshot(l) != 0)
            _exit(5);
        feed(l, NROWS / 2, NROWS);
        rig_turn(l);
        raise(SIGKILL);
        _exit(4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.rows_snapshot, NROWS / 2);
    assert_int_equal(st.rows_journal, NROWS / 2);
    check_costs(l, NROWS);
    rig_close(&l);
}

int main(void)
{
    const struct CMUnitTest tests_[] = {
        cmocka_unit_test_setup_teardown(test_state_costs_journal_snapshot_stop, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_costs_kill9, rig_setup, rig_teardown),
    };
    return cmocka_run_group_tests_name("state_costs", tests_, NULL, NULL);
}
