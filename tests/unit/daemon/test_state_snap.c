/* test_state_snap.c - a snapshot is serialized a bounded piece per loop
 * turn, while rows keep joining and leaving the windows, and what it holds
 * together with the journal still restores every window exactly.
 *
 * The bound is checked by counting: the state counts the window cells each
 * turn serialized (state_int.h), never by timing. Windows after a restart
 * are compared with the rows the test fed (rig.h), never with what the
 * state wrote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rig.h"
#include "state_int.h"

static const ens_str_t two_tasks[] = {SI("alpha"), SI("t\u00e9x")};

#define CAP 400    /* window rows per task */
#define BUDGET 150 /* cells per turn: 50 rows of the 3 models */

/* Counts the BLOCK frames of a file. */
static size_t blocks_in(const char *path)
{
    size_t len = 0;
    uint8_t *buf = rig_read(path, &len);
    rig_frame_t fr[4096];
    size_t n = rig_frames(buf, len, fr, 4096), k = 0;
    for (size_t i = 0; i < n; i++)
        k += fr[i].kind == 7;
    free(buf);
    return k;
}

/* Starts a snapshot and turns the loop until it is written, joining `per`
 * rows of rows[*fed..) before each turn (so windows gain rows and, full,
 * lose their oldest while the snapshot reads them). Returns the turns. */
static size_t snapshot_while_feeding(rig_life_t *l, const rig_row_t *rows, size_t *fed, size_t per)
{
    rig_stats_t before = rig_stats(l->state);
    rig_tick(l, 1e6);
    assert_non_null(l->state->job);
    size_t turns = 0;
    while (rig_stats(l->state).snapshots == before.snapshots) {
        assert_int_equal(rig_stats(l->state).write_errors, before.write_errors);
        if (l->state->job) {
            rig_feed_all(l, rows + *fed, per);
            *fed += per;
        }
        rig_turn(l);
        if (++turns > 20000)
            fail_msg("the snapshot was not written");
        usleep(l->state->job ? 0 : 200);
    }
    return turns;
}

static void test_state_snapshot_in_pieces(void **state)
{
    rig_fx_t *fx = *state;
    fx->conf.task.window_rows = CAP;
    rig_row_t *rows = rig_gen_rows(two_tasks, 2, 0, 4000);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    size_t fed = 2 * CAP;
    rig_feed_all(l, rows, fed);
    rig_turn(l);
    l->state->snap_cells = BUDGET;
    size_t turns = snapshot_while_feeding(l, rows, &fed, 6);
    /* 2 windows of CAP rows x 3 models at the start: more cells than one
     * turn may take, so the work was spread, and no turn took more. */
    assert_true(l->state->snap_turn_max <= BUDGET);
    assert_true(l->state->snap_turns >= 2 * CAP * 3 / BUDGET / 2);
    assert_true(turns >= l->state->snap_turns);
    char p[512];
    rig_path(fx, "snapshot", p, sizeof(p));
    assert_true(blocks_in(p) >= l->state->snap_turns - 1);
    /* Rows joined meanwhile pushed the oldest out of the full windows. */
    assert_true(fed > 2 * CAP + 30);

    /* A crash now: the snapshot and the journal after it restore exactly
     * the last CAP rows of each task (the rows alternate between tasks). */
    rig_feed_all(l, rows + fed, 10);
    fed += 10;
    rig_turn(l);
    rig_crash(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows + fed - 2 * CAP, 2 * CAP, 2);
    rig_stats_t st = rig_stats(l->state);
    assert_true(st.rows_snapshot > 0);
    assert_true(st.rows_journal > 0);
    assert_int_equal(st.corrupt, 0);

    /* A second round from the restored state, then a clean stop. */
    l->state->snap_cells = BUDGET;
    snapshot_while_feeding(l, rows, &fed, 4);
    assert_true(l->state->snap_turn_max <= BUDGET);
    rig_close(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows + fed - 2 * CAP, 2 * CAP, 2);
    rig_close(&l);
    free(rows);
}

/* A stop while a snapshot is still being serialized: the final snapshot
 * holds everything; a crash at that point keeps the journals it needs. */
static void test_state_stop_while_serializing(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(two_tasks, 2, 0, 300);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows, 200);
    rig_turn(l);
    l->state->snap_cells = BUDGET;
    rig_tick(l, 1e6);
    rig_turn(l);
    assert_non_null(l->state->job); /* 100 rows x 3 models per task */
    rig_feed_all(l, rows + 200, 50);
    rig_crash(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 250, 2);
    assert_int_equal(rig_stats(l->state).rows_snapshot, 0);

    rig_feed_all(l, rows + 250, 50);
    rig_turn(l);
    l->state->snap_cells = BUDGET;
    rig_tick(l, 1e6);
    rig_turn(l);
    assert_non_null(l->state->job);
    rig_close(&l);
    assert_int_equal(rig_count_files(fx->dir, "journal.", ""), 0);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 300, 2);
    assert_int_equal(rig_stats(l->state).rows_snapshot, 300);
    rig_close(&l);
    free(rows);
}

/* Pieces bounded by time: the clock is read after every block of at most
 * a slice, and a turn stops once its time is spent. With a slice of one
 * row and a turn's time that is over after the first block, every turn
 * serializes one row, whatever the cell budget allows; the snapshot cut
 * so finely still restores every window as fed. */
static void test_state_snapshot_time_bounded(void **state)
{
    rig_fx_t *fx = *state;
    fx->conf.task.window_rows = CAP;
    rig_row_t *rows = rig_gen_rows(two_tasks, 2, 0, 4000);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    size_t fed = 2 * CAP;
    rig_feed_all(l, rows, fed);
    rig_turn(l);
    l->state->snap_cells = (size_t)1 << 30;
    l->state->snap_slice = 1;     /* one row (3 cells) a block */
    l->state->snap_turn_s = 1e-9; /* over once a block is done */
    size_t turns = snapshot_while_feeding(l, rows, &fed, 1);
    assert_int_equal(l->state->snap_turn_max, 3);
    /* The windows' 2 x CAP rows at the start, less those pushed out while
     * the snapshot read them (one row joined per turn), one a turn. */
    assert_true(l->state->snap_turns >= CAP);
    assert_true(turns >= l->state->snap_turns);
    char p[512];
    rig_path(fx, "snapshot", p, sizeof(p));
    assert_true(blocks_in(p) >= l->state->snap_turns - 2);

    rig_feed_all(l, rows + fed, 10);
    fed += 10;
    rig_turn(l);
    rig_crash(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows + fed - 2 * CAP, 2 * CAP, 2);
    rig_stats_t st = rig_stats(l->state);
    assert_true(st.rows_snapshot > 0);
    assert_int_equal(st.corrupt, 0);
    /* The final snapshot of a clean stop is written in one go: the same
     * rows again. */
    rig_close(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows + fed - 2 * CAP, 2 * CAP, 2);
    rig_close(&l);
    free(rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_snapshot_in_pieces, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_stop_while_serializing, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_snapshot_time_bounded, rig_setup, rig_teardown),
    };
    return cmocka_run_group_tests_name("state_snap", tests, NULL, NULL);
}
