/* test_state.c - persistence across restarts (state.h): clean stops,
 * crashes, snapshots, caps lowered across a restart, the directory lock.
 *
 * Each test runs in a fresh temporary directory and lives through several
 * "lives" of a miniature daemon (rig.h): rows go in as events through
 * ingest, exactly as the daemon receives them, and after each restart every
 * window is compared with the rows the test fed (kept here, names as
 * bytes), never with what the state wrote. Damage to the files themselves
 * is in test_state_damage.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <signal.h>
#include <sys/wait.h>

#include "ensembled/err.h"
#include "rig.h"

/* ---- clean stop ------------------------------------------------------- */

/* Labels of task in rows[0..n) that are real labels (not "?"), counted
 * once each. */
static size_t distinct_labels(const rig_row_t *rows, size_t n, ens_str_t task)
{
    ens_str_t seen[64];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rig_same(rows[i].task, task))
            continue;
        for (size_t j = 0; j <= rows[i].n; j++) {
            ens_str_t s = j == rows[i].n ? rows[i].label : rows[i].answer[j];
            int dup = rig_same(s, S("?"));
            for (size_t q = 0; q < k && !dup; q++)
                dup = rig_same(seen[q], s);
            if (!dup)
                seen[k++] = s;
        }
    }
    return k;
}

/* Names that share their first bytes and differ after a multi-byte UTF-8
 * character ("t" and "t\u00e9x", "m\u00e9a" and "m\u00e9b", label "?\u00e9"
 * beside the abstention "?"). */
static const rig_row_t multibyte_rows[] = {
    {SI("téx"), SI("?é"), {SI("méa"), SI("méb")}, {SI("?é"), SI("A")}, 2, 1.5e9},
    {SI("t"), SI("A"), {SI("méa"), SI("m")}, {SI("?"), SI("A")}, 2, 1.5e9 + 1},
    {SI("téx"), SI("A"), {SI("méb")}, {SI("?")}, 1, 1.5e9 + 0.125},
    {SI("t"), SI("?é"), {SI("m")}, {SI("?é")}, 1, 1.5e9 + 2},
    {SI("t"), SI("B"), {SI("méb"), SI("méa"), SI("m")}, {SI("B"), SI("?é"), SI("?")}, 3, 7.25},
    {SI("téx"), SI("A"), {SI("méa"), SI("méb")}, {SI("A"), SI("A")}, 2, 0},
    {SI("téx"), SI("?é"), {SI("méa")}, {SI("?é")}, 1, 1e-300},
    {SI("t"), SI("A"), {SI("méa")}, {SI("?")}, 1, 4.5e15},
    /* the second life's rows */
    {SI("t"), SI("C"), {SI("méb")}, {SI("C")}, 1, 9.0},
    {SI("téx"), SI("C"), {SI("méa"), SI("méc")}, {SI("?"), SI("C")}, 2, 10.0},
    {SI("t"), SI("?é"), {SI("m")}, {SI("?")}, 1, 11.0},
};

static void check_multibyte_labels(const rig_life_t *l, size_t n)
{
    static const ens_str_t tasks[] = {SI("t"), SI("téx")};
    for (int k = 0; k < 2; k++) {
        const ens_window_t *w = rig_task(l, tasks[k])->window;
        assert_int_equal(ens_window_labels(w), distinct_labels(multibyte_rows, n, tasks[k]));
        assert_int_equal(ens_window_find_label(w, "?", 1), ENS_SYM_ABSTAIN);
        assert_true(ens_window_find_label(w, "?é", 3) >= 0);
    }
}

static void test_state_clean_restart_multibyte_names(void **state)
{
    rig_fx_t *fx = *state;
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, multibyte_rows, 8);
    rig_publish(l, rig_task(l, S("téx")), 3);
    rig_publish(l, rig_task(l, S("t")), 7);
    rig_publish(l, rig_task(l, S("t")), 9);
    rig_turn(l);
    rig_close(&l);
    char p[512];
    rig_path(fx, "snapshot", p, sizeof(p));
    assert_true(rig_file_size(p) > 0);
    /* A clean stop leaves the snapshot alone: every journal is removed. */
    assert_int_equal(rig_count_files(fx->dir, "journal.", ""), 0);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, multibyte_rows, 8, 2);
    check_multibyte_labels(l, 8);
    assert_int_equal(l->version[rig_task(l, S("t"))->id], 9);
    assert_int_equal(l->version[rig_task(l, S("téx"))->id], 3);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.rows_snapshot, 8);
    assert_int_equal(st.rows_journal, 0);
    assert_int_equal(st.corrupt + st.torn, 0);

    /* A second life adds rows (and a model) and a version, then crashes:
     * the third sees the snapshot and that journal together. */
    rig_feed_all(l, multibyte_rows + 8, 3);
    rig_publish(l, rig_task(l, S("t")), 10);
    rig_turn(l);
    rig_crash(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, multibyte_rows, 11, 2);
    check_multibyte_labels(l, 11);
    assert_int_equal(l->version[rig_task(l, S("t"))->id], 10);
    assert_int_equal(l->version[rig_task(l, S("téx"))->id], 3);
    st = rig_stats(l->state);
    assert_int_equal(st.rows_snapshot, 8);
    assert_int_equal(st.rows_journal, 3);
    rig_close(&l);
}

/* ---- crashes ---------------------------------------------------------- */

static const ens_str_t two_tasks[] = {SI("alpha"), SI("téx")};

static void test_state_crash_journal_only(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(two_tasks, 2, 0, 60);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    for (size_t i = 0; i < 40; i += 10) {
        rig_feed_all(l, rows + i, 10);
        rig_turn(l);
    }
    rig_publish(l, rig_task(l, two_tasks[1]), 5);
    rig_turn(l);
    rig_crash(&l);
    assert_int_equal(rig_count_files(fx->dir, "snapshot", ""), 0);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 40, 2);
    assert_int_equal(l->version[rig_task(l, two_tasks[1])->id], 5);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.rows_journal, 40);
    assert_int_equal(st.rows_snapshot, 0);
    rig_feed_all(l, rows + 40, 20);
    rig_turn(l);
    rig_crash(&l);

    /* Two journals now, each opening with every name it uses. */
    assert_int_equal(rig_count_files(fx->dir, "journal.", ""), 2);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 60, 2);
    assert_int_equal(rig_stats(l->state).rows_journal, 60);
    assert_int_equal(l->version[rig_task(l, two_tasks[1])->id], 5);
    rig_close(&l);
    free(rows);
}

static void test_state_crash_after_snapshots(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(two_tasks, 2, 0, 85);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows, 20);
    assert_int_equal(rig_snapshot(l), 0);
    rig_publish(l, rig_task(l, two_tasks[0]), 1);
    rig_feed_all(l, rows + 20, 20);
    assert_int_equal(rig_snapshot(l), 0);
    rig_feed_all(l, rows + 40, 20);
    rig_publish(l, rig_task(l, two_tasks[0]), 2);
    rig_turn(l);
    rig_crash(&l);
    /* The two snapshots deleted the journals they covered. */
    assert_int_equal(rig_count_files(fx->dir, "journal.", ""), 1);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 60, 2);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.rows_snapshot, 40);
    assert_int_equal(st.rows_journal, 20);
    assert_int_equal(l->version[rig_task(l, two_tasks[0])->id], 2);

    /* A snapshot that fails (its temporary file cannot be created) keeps
     * the journal it would have covered: journals with different ranges
     * sit side by side after the crash. */
    char tmp[512];
    rig_path(fx, "snapshot.tmp", tmp, sizeof(tmp));
    assert_int_equal(mkdir(tmp, 0700), 0);
    rig_feed_all(l, rows + 60, 10);
    assert_int_equal(rig_snapshot(l), -1);
    rig_feed_all(l, rows + 70, 10);
    rig_turn(l);
    rig_crash(&l);
    assert_int_equal(rig_count_files(fx->dir, "journal.", ""), 3);
    assert_int_equal(rmdir(tmp), 0);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 80, 2);
    st = rig_stats(l->state);
    assert_int_equal(st.rows_snapshot, 40);
    assert_int_equal(st.rows_journal, 40);
    assert_int_equal(rig_snapshot(l), 0);
    assert_int_equal(rig_count_files(fx->dir, "journal.", ""), 1);
    rig_feed_all(l, rows + 80, 5);
    rig_close(&l);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 85, 2);
    assert_int_equal(l->version[rig_task(l, two_tasks[0])->id], 2);
    rig_close(&l);
    free(rows);
}

/* A crash after a snapshot was renamed but before the journals it covers
 * were deleted: those journals are not replayed again. */
static void test_state_covered_journal_not_replayed(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(two_tasks, 2, 0, 30);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows, 20);
    rig_turn(l);
    char p[512];
    rig_path(fx, "journal.1", p, sizeof(p));
    size_t len;
    uint8_t *j1 = rig_read(p, &len);
    assert_int_equal(rig_snapshot(l), 0);
    assert_int_equal(rig_file_size(p), -1);
    rig_write(p, j1, len);
    rig_feed_all(l, rows + 20, 10);
    rig_turn(l);
    rig_crash(&l);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 30, 2);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.rows_snapshot, 20);
    assert_int_equal(st.rows_journal, 10);
    rig_close(&l);
    free(j1);
    free(rows);
}

/* The timers: an fdatasync in flight defers a due snapshot; a stop while a
 * snapshot is in flight waits for it, then writes the final one. */
static void test_state_fsync_snapshot_and_stop_in_flight(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(two_tasks, 2, 0, 40);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    for (int round = 0; round < 3; round++) {
        rig_feed_all(l, rows + 10 * round, 10);
        rig_turn(l);
        /* Past fsync_interval, well before snapshot_interval. */
        rig_tick(l, 2 * fx->conf.fsync_interval);
        assert_int_equal(rig_snapshot(l), 0);
    }
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.snapshots, 3);
    /* Each round's rows were synced, then snapshotted: all 30 durable. */
    assert_int_equal(st.synced_seq, 30);
    rig_feed_all(l, rows + 30, 10);
    rig_turn(l); /* written, not yet synced */
    assert_int_equal(rig_stats(l->state).synced_seq, 30);
    rig_tick(l, 1e6); /* a snapshot in flight */
    rig_close(&l);
    assert_int_equal(rig_count_files(fx->dir, "journal.", ""), 0);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 40, 2);
    assert_int_equal(rig_stats(l->state).rows_snapshot, 40);
    rig_close(&l);
    free(rows);
}

/* A real kill -9 in a child process: rows written by a loop turn survive,
 * rows still buffered (no turn since) are lost, and nothing comes twice. */
static void test_state_kill9_loses_only_the_unflushed(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(two_tasks, 2, 0, 50);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rig_life_t *l;
        if (rig_open(&l, &fx->conf, 0) != 0)
            _exit(3);
        rig_feed_all(l, rows, 30);
        rig_turn(l);
        rig_feed_all(l, rows + 30, 20);
        raise(SIGKILL);
        _exit(4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 30, 2);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.rows_journal, 30);
    assert_int_equal(st.torn + st.corrupt, 0);
    rig_close(&l);
    free(rows);
}

/* ---- caps lowered across a restart ------------------------------------ */

static void lowered_caps(rig_fx_t *fx, int clean)
{
    static const ens_str_t tasks[] = {SI("a"), SI("b"), SI("c")};
    rig_row_t *rows = rig_gen_rows(tasks, 3, 0, 31);
    fx->conf.max_tasks = 8;
    fx->conf.max_models = 8;
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows, 30);
    rig_turn(l);
    if (clean)
        rig_close(&l);
    else
        rig_crash(&l);

    fx->conf.max_tasks = 1;
    fx->conf.max_models = 1;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 30, 3);
    assert_int_equal(ens_window_models(rig_task(l, S("a"))->window), 3);

    /* New names beyond the caps are refused by ingest, whole and counted. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ens_str_t m9 = S("m9"), yes = S("A");
    rig_pack_prediction(&pk, S("d"), 1, &m9, &yes, 1);
    assert_int_equal(rig_ingest(l, &sb), -1);
    rig_pack_prediction(&pk, S("a"), 1, &m9, &yes, 1);
    assert_int_equal(rig_ingest(l, &sb), -1);
    msgpack_sbuffer_destroy(&sb);
    const ens_ingest_stats_t *is = ens_ingest_stats(l->ingest);
    assert_int_equal(is->dropped[ENS_DROP_TOO_MANY_TASKS], 1);
    assert_int_equal(is->dropped[ENS_DROP_TOO_MANY_MODELS], 1);
    assert_int_equal(ens_tasks_count(l->tasks), 3);
    assert_int_equal(ens_window_models(rig_task(l, S("a"))->window), 3);
    assert_int_equal(ens_window_find_model(rig_task(l, S("a"))->window, "m9", 2), ENS_ENOTFOUND);

    /* Names already known still go through: the row fits. */
    rig_feed(l, &rows[30]);
    rig_turn(l);
    rig_crash(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 31, 3);
    rig_close(&l);
    free(rows);
}

static void test_state_lowered_caps_clean(void **state)
{
    lowered_caps(*state, 1);
}

static void test_state_lowered_caps_crash(void **state)
{
    lowered_caps(*state, 0);
}

/* ---- the lock --------------------------------------------------------- */

static void test_state_second_open_refused(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(two_tasks, 2, 0, 20);
    rig_life_t *a, *b;
    assert_int_equal(rig_open(&a, &fx->conf, 0), 0);
    rig_feed_all(a, rows, 10);
    rig_turn(a);
    assert_int_equal(rig_open(&b, &fx->conf, 0), -1);
    assert_null(b->state);
    assert_non_null(strstr(b->err, fx->dir));
    assert_non_null(strstr(b->err, "in use by another ensembled"));
    assert_int_equal(ens_tasks_count(b->tasks), 0);
    rig_free(&b);
    /* Even with discard, a held directory is not touched. */
    assert_int_equal(rig_open(&b, &fx->conf, 1), -1);
    rig_free(&b);
    assert_int_equal(rig_count_files(fx->dir, "", "refused"), 0);

    /* The first keeps working, through a snapshot and a clean stop. */
    rig_feed_all(a, rows + 10, 5);
    assert_int_equal(rig_snapshot(a), 0);
    rig_feed_all(a, rows + 15, 5);
    rig_close(&a);
    assert_int_equal(rig_open(&a, &fx->conf, 0), 0);
    rig_check(a, rows, 20, 2);
    rig_close(&a);
    free(rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_clean_restart_multibyte_names, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_crash_journal_only, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_crash_after_snapshots, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_covered_journal_not_replayed, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_fsync_snapshot_and_stop_in_flight, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_kill9_loses_only_the_unflushed, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_lowered_caps_clean, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_lowered_caps_crash, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_second_open_refused, rig_setup, rig_teardown),
    };
    return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
