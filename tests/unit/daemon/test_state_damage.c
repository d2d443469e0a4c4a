/* test_state_damage.c - attacks on the persisted state (state.h): a flipped
 * byte inside a journal, a torn tail, a disk that refuses writes for a
 * while, a corrupt or foreign snapshot with and without --discard-state.
 *
 * Files are damaged at places found by walking the frames with the layout
 * journal.h documents (rig_frames), and what must come back is the list of
 * rows the test fed, less exactly the rows the damage destroyed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <signal.h>
#include <sys/resource.h>
#include <xxhash.h>

#include "ensembled/err.h"
#include "rig.h"
#include "state_int.h" /* snapshotting: whether a snapshot is in flight */

static const ens_str_t one_task[] = {SI("t")};

/* A journal.1 of n rows of task "t", left by a crash; rows in *rows. */
static void journal_of(rig_fx_t *fx, size_t n, rig_row_t **rows)
{
    *rows = rig_gen_rows(one_task, 1, 0, n);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, *rows, n);
    rig_turn(l);
    rig_crash(&l);
}

/* The frames of the file at path (at most max) and its image. */
static size_t frames_of(const char *path, rig_frame_t *f, size_t max, uint8_t **img, size_t *len)
{
    *img = rig_read(path, len);
    return rig_frames(*img, *len, f, max);
}

/* The frame of the k-th ROW (from 0) among f[0..n). */
static const rig_frame_t *row_frame(const rig_frame_t *f, size_t n, size_t k)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].kind == 5 && k-- == 0)
            return &f[i];
    fail_msg("no ROW %zu", k);
    return NULL;
}

static void test_state_flipped_byte_skips_one_row(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows;
    journal_of(fx, 200, &rows);
    char p[512];
    rig_path(fx, "journal.1", p, sizeof(p));
    rig_frame_t f[512];
    uint8_t *img;
    size_t len, n = frames_of(p, f, 512, &img, &len);
    const rig_frame_t *victim = row_frame(f, n, 99);
    assert_int_equal(victim->seq, 100);
    img[victim->off + 16 + 14] ^= 0x20; /* inside its timestamp */
    rig_write(p, img, len);

    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    memmove(rows + 99, rows + 100, 100 * sizeof(*rows));
    rig_check(l, rows, 199, 1);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.rows_journal, 199);
    assert_int_equal(st.corrupt, 1);
    assert_int_equal(st.torn, 0);
    /* Damage in the middle is not a tail: the file is left whole. */
    assert_int_equal(rig_file_size(p), (long long)len);
    rig_close(&l);
    free(img);
    free(rows);
}

/* A journal cut inside its last record (inside the header, then inside the
 * payload): the record is dropped and counted, the file is cut back to the
 * end of the record before it, and new records never follow garbage. */
static void torn_tail(rig_fx_t *fx, size_t cut_into)
{
    rig_row_t *rows;
    journal_of(fx, 200, &rows);
    char p[512];
    rig_path(fx, "journal.1", p, sizeof(p));
    rig_frame_t f[512];
    uint8_t *img;
    size_t len, n = frames_of(p, f, 512, &img, &len);
    const rig_frame_t *last = &f[n - 1];
    assert_int_equal(last->kind, 5);
    assert_true(last->off + cut_into < last->end);
    assert_int_equal(truncate(p, (off_t)(last->off + cut_into)), 0);

    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 199, 1);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.torn, 1);
    assert_int_equal(st.corrupt, 0);
    assert_int_equal(rig_file_size(p), (long long)last->off);
    free(img);

    /* The next life finds nothing torn, and the rows of the one between. */
    rig_row_t *more = rig_gen_rows(one_task, 1, 200, 5);
    rig_feed_all(l, more, 5);
    rig_turn(l);
    rig_crash(&l);
    rows = realloc(rows, 204 * sizeof(*rows));
    assert_non_null(rows);
    memcpy(rows + 199, more, 5 * sizeof(*rows));
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    st = rig_stats(l->state);
    assert_int_equal(st.torn + st.corrupt, 0);
    assert_int_equal(st.rows_journal, 204);
    rig_check(l, rows, 204, 1);
    rig_close(&l);
    free(more);
    free(rows);
}

static void test_state_torn_tail_in_header(void **state)
{
    torn_tail(*state, 7);
}

static void test_state_torn_tail_in_payload(void **state)
{
    torn_tail(*state, 20);
}

/* A damaged MODEL record costs the rows that need that model in that file,
 * and nothing else: other models, the other task and the rest of the rows
 * are kept. */
static void test_state_lost_name_costs_only_its_rows(void **state)
{
    rig_fx_t *fx = *state;
    static const ens_str_t tasks[] = {SI("alpha"), SI("téx")};
    rig_row_t *rows = rig_gen_rows(tasks, 2, 0, 100);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows, 100);
    rig_turn(l);
    rig_crash(&l);

    char p[512];
    rig_path(fx, "journal.1", p, sizeof(p));
    rig_frame_t f[512];
    uint8_t *img;
    size_t len, n = frames_of(p, f, 512, &img, &len), victim = n;
    uint32_t tid = UINT32_MAX;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *pl = img + f[i].off + 16;
        if (f[i].kind == 2 && rig_le(pl + 5, 2) == 4 && memcmp(pl + 7, "téx", 4) == 0)
            tid = (uint32_t)rig_le(pl + 1, 4);
        if (f[i].kind == 3 && rig_le(pl + 1, 4) == tid && rig_le(pl + 9, 2) == 1 && pl[11] == 'm')
            victim = i;
    }
    assert_true(victim < n);
    img[f[victim].off + 16 + 11] ^= 1;
    rig_write(p, img, len);

    /* The reference: rows of task "t\u00e9x" that asked model "m" are gone. */
    size_t kept = 0, lost = 0;
    for (size_t i = 0; i < 100; i++) {
        int gone = 0;
        for (size_t j = 0; j < rows[i].n; j++)
            gone |= rig_same(rows[i].task, S("téx")) && rig_same(rows[i].model[j], S("m"));
        if (gone)
            lost++;
        else
            rows[kept++] = rows[i];
    }
    assert_true(lost > 10);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, kept, 2);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.corrupt, 1 + lost);
    assert_int_equal(st.rows_journal, kept);
    assert_int_equal(ens_window_find_model(rig_task(l, S("téx"))->window, "m", 1), ENS_ENOTFOUND);
    assert_true(ens_window_find_model(rig_task(l, S("alpha"))->window, "m", 1) >= 0);
    rig_close(&l);
    free(img);
    free(rows);
}

/* ---- a disk that refuses writes --------------------------------------- */

static struct rlimit saved_fsize;
static int fsize_limited;

static void limit_file_size(rlim_t bytes)
{
    if (!fsize_limited) {
        assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved_fsize), 0);
        signal(SIGXFSZ, SIG_IGN);
    }
    struct rlimit lim = saved_fsize;
    lim.rlim_cur = bytes;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    fsize_limited = 1;
}

static void unlimit_file_size(void)
{
    if (!fsize_limited)
        return;
    setrlimit(RLIMIT_FSIZE, &saved_fsize);
    signal(SIGXFSZ, SIG_DFL);
    fsize_limited = 0;
}

/* A failed assertion must not leave the limit on for the next tests. */
static int teardown_unlimit(void **state)
{
    unlimit_file_size();
    return rig_teardown(state);
}

/* The disk fills in the middle of a record (RLIMIT_FSIZE, with SIGXFSZ
 * ignored, makes write() stop short and then fail with EFBIG, as a full
 * disk does with ENOSPC): the bytes not written are kept and retried, from
 * where the write stopped, once the disk takes them again. */
static void test_state_write_failure_retried(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(one_task, 1, 0, 40);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows, 10);
    rig_turn(l);
    char p[512];
    rig_path(fx, "journal.1", p, sizeof(p));
    long long size = rig_file_size(p);
    assert_true(size > 0);

    limit_file_size((rlim_t)size + 30);
    rig_feed_all(l, rows + 10, 10);
    rig_turn(l);
    assert_int_equal(rig_file_size(p), size + 30); /* stopped inside a record */
    uint64_t errors = rig_stats(l->state).write_errors;
    assert_true(errors >= 1);
    rig_feed_all(l, rows + 20, 10);
    rig_turn(l);
    assert_true(rig_stats(l->state).write_errors > errors);
    assert_int_equal(rig_file_size(p), size + 30);

    unlimit_file_size();
    errors = rig_stats(l->state).write_errors;
    rig_feed_all(l, rows + 30, 10);
    rig_turn(l);
    assert_int_equal(rig_stats(l->state).write_errors, errors);
    rig_crash(&l);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 40, 1);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.rows_journal, 40);
    assert_int_equal(st.corrupt + st.torn, 0);
    rig_close(&l);
    free(rows);
}

/* A snapshot that keeps failing (here its temporary file cannot be
 * created) is retried with a growing delay: each attempt rotates the
 * journal, so retrying every second would leave a journal file per second
 * for as long as the failure lasts. The daemon's 100 ms tick is simulated
 * for a minute on a fake monotonic clock; once the snapshot can be written
 * it covers every journal, and a crash then loses nothing. */
static void test_state_failing_snapshot_backs_off(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(one_task, 1, 0, 70);
    fx->conf.snapshot_interval = 3600;
    fx->conf.fsync_interval = 1e9; /* no fdatasync in flight to wait for */
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_tick(l, 3599.95); /* the first snapshot is due at the first tick */
    char tmp[512];
    rig_path(fx, "snapshot.tmp", tmp, sizeof(tmp));
    assert_int_equal(mkdir(tmp, 0700), 0);
    size_t attempts = 0;
    for (int tick = 0; tick <= 700; tick++) {
        if (tick % 10 == 0 && tick < 700)
            rig_feed(l, &rows[tick / 10]);
        size_t journals = rig_count_files(fx->dir, "journal.", "");
        rig_tick(l, 0.1);
        rig_turn(l);
        if (rig_count_files(fx->dir, "journal.", "") == journals)
            continue;
        attempts++;
        /* The attempt fails on the pool and the journal it rotated out is
         * synced there too: a retry waits for both, so the fake clock must
         * not run on meanwhile. */
        for (int i = 0;
             i < 10000 && (rig_stats(l->state).write_errors < attempts || l->state->syncing); i++) {
            rig_turn(l);
            usleep(200);
        }
        assert_int_equal(rig_stats(l->state).write_errors, attempts);
    }
    /* At 0, then 1, 3, 7, 15, 31 and 63 s: delays of 1, 2, 4 ... s. */
    assert_int_equal(attempts, 7);
    assert_int_equal(rig_count_files(fx->dir, "journal.", ""), 8);
    assert_int_equal(rmdir(tmp), 0);
    assert_int_equal(rig_snapshot(l), 0);
    assert_int_equal(rig_count_files(fx->dir, "journal.", ""), 1);
    rig_turn(l);
    rig_crash(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 70, 1);
    rig_close(&l);
    free(rows);
}

/* Ticks the state's timer every 0.1 s of the fake clock for n ticks, one
 * loop turn each, feeding rows[*next] every 10th tick; a snapshot started
 * is waited for. Returns how many snapshots started. */
static size_t run_ticks(rig_life_t *l, const char *dir, int n, const rig_row_t *rows, size_t *next,
                        size_t last)
{
    size_t attempts = 0;
    for (int tick = 0; tick < n; tick++) {
        if (tick % 10 == 0 && *next < last)
            rig_feed(l, &rows[(*next)++]);
        size_t journals = rig_count_files(dir, "journal.", "");
        rig_tick(l, 0.1);
        rig_turn(l);
        attempts += rig_count_files(dir, "journal.", "") != journals;
        for (int i = 0; i < 10000 && (l->state->snapshotting || l->state->syncing); i++) {
            usleep(200);
            rig_turn(l);
        }
        assert_false(l->state->snapshotting);
        assert_false(l->state->syncing);
    }
    return attempts;
}

/* A full disk (RLIMIT_FSIZE at 100 bytes: every journal and snapshot write
 * fails) for 40 s while a snapshot is due. No snapshot starts while the
 * journal holds records the disk refused: rotating would abandon them, and
 * rows written to the next journal after them would leave a gap if the
 * daemon died before a snapshot landed. Once the disk takes writes again,
 * the journal catches up and the due snapshot follows at once; a crash a
 * little later loses nothing. */
static void test_state_disk_full_across_snapshots(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(one_task, 1, 0, 50);
    fx->conf.snapshot_interval = 3600;
    fx->conf.fsync_interval = 1e9;
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows, 10);
    rig_turn(l);
    rig_tick(l, 3599.95); /* the first snapshot is due at the first tick */
    limit_file_size(100);
    size_t next = 10;
    size_t attempts = run_ticks(l, fx->dir, 400, rows, &next, 40);
    assert_int_equal(attempts, 0);
    assert_int_equal(rig_count_files(fx->dir, "journal.", ""), 1);
    assert_int_equal(rig_stats(l->state).snapshots, 0);
    unlimit_file_size();
    rig_feed_all(l, rows + 40, 10);
    next = 50;
    rig_turn(l);
    attempts = run_ticks(l, fx->dir, 15, rows, &next, 50);
    assert_int_equal(attempts, 1);
    assert_int_equal(rig_stats(l->state).snapshots, 1);
    rig_crash(&l);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 50, 1);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.torn + st.corrupt, 0);
    rig_close(&l);
    free(rows);
}

/* ---- refused snapshots ------------------------------------------------ */

/* Opening must fail without discard, naming the file and the reason, and
 * leave every file exactly as it was. */
static void assert_refused(rig_fx_t *fx, const char *why)
{
    char p[512];
    rig_path(fx, "snapshot", p, sizeof(p));
    size_t before_len, after_len;
    uint8_t *before = rig_read(p, &before_len);
    size_t journals = rig_count_files(fx->dir, "journal.", "");
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), -1);
    assert_null(l->state);
    assert_non_null(strstr(l->err, p));
    if (!strstr(l->err, why))
        fail_msg("\"%s\" does not say \"%s\"", l->err, why);
    assert_int_equal(ens_tasks_count(l->tasks), 0);
    rig_free(&l);
    uint8_t *after = rig_read(p, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    assert_int_equal(rig_count_files(fx->dir, "journal.", ""), journals);
    assert_int_equal(rig_count_files(fx->dir, "", "refused"), 0);
    free(before);
    free(after);
}

/* With discard: starts empty, the snapshot and every journal moved aside;
 * then rows of this life, and an ordinary start brings back only those. */
static void assert_discarded(rig_fx_t *fx)
{
    static const ens_str_t tasks[] = {SI("after")};
    size_t journals = rig_count_files(fx->dir, "journal.", "");
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 1), 0);
    assert_int_equal(ens_tasks_count(l->tasks), 0);
    rig_stats_t st = rig_stats(l->state);
    assert_int_equal(st.rows_snapshot + st.rows_journal, 0);
    char p[512];
    rig_path(fx, "snapshot", p, sizeof(p));
    assert_int_equal(rig_file_size(p), -1);
    assert_int_equal(rig_count_files(fx->dir, "snapshot.refused-", ""), 1);
    assert_int_equal(rig_count_files(fx->dir, "journal.", ".refused-"), journals);

    rig_row_t *rows = rig_gen_rows(tasks, 1, 0, 5);
    rig_feed_all(l, rows, 5);
    rig_close(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows, 5, 1);
    rig_close(&l);
    free(rows);
}

static void test_state_discard_corrupt_snapshot(void **state)
{
    rig_fx_t *fx = *state;
    static const ens_str_t tasks[] = {SI("alpha"), SI("téx")};
    rig_row_t *rows = rig_gen_rows(tasks, 2, 0, 40);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows, 30);
    rig_close(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows + 30, 10);
    rig_turn(l);
    rig_crash(&l);
    assert_true(rig_count_files(fx->dir, "journal.", "") >= 1);

    /* A flipped bit in the snapshot's HEADER record. */
    char p[512];
    rig_path(fx, "snapshot", p, sizeof(p));
    size_t len;
    uint8_t *img = rig_read(p, &len);
    img[16 + 6] ^= 0x01;
    rig_write(p, img, len);
    free(img);
    assert_refused(fx, "not an ensembled snapshot");
    assert_discarded(fx);
    free(rows);
}

static void test_state_old_snapshot_format_refused(void **state)
{
    rig_fx_t *fx = *state;
    char p[512];
    uint8_t old[200];
    memcpy(old, "ENSSNAP1", 8);
    for (size_t i = 8; i < sizeof(old); i++)
        old[i] = (uint8_t)(i * 37);
    assert_int_equal(mkdir(fx->dir, 0700), 0);
    rig_path(fx, "snapshot", p, sizeof(p));
    rig_write(p, old, sizeof(old));
    assert_refused(fx, "ensembled 0.1.0's format");
    assert_discarded(fx);
}

/* A HEADER of a newer format, built by hand: refused as such, not as
 * corrupt. */
static void test_state_newer_snapshot_format_refused(void **state)
{
    rig_fx_t *fx = *state;
    uint8_t f[16 + 21] = {0xE5, 0x4A, 0x52, 0x43};
    f[12] = 21;
    f[16] = 1; /* HEADER */
    f[17] = 2; /* format 2 */
    uint64_t h = XXH3_64bits(f + 12, 4 + 21);
    for (int i = 0; i < 8; i++)
        f[4 + i] = (uint8_t)(h >> (8 * i));
    assert_int_equal(mkdir(fx->dir, 0700), 0);
    char p[512];
    rig_path(fx, "snapshot", p, sizeof(p));
    rig_write(p, f, sizeof(f));
    assert_refused(fx, "snapshot format 2, this ensembled reads 1");
    assert_discarded(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_flipped_byte_skips_one_row, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_torn_tail_in_header, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_torn_tail_in_payload, rig_setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_lost_name_costs_only_its_rows, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_write_failure_retried, rig_setup,
                                        teardown_unlimit),
        cmocka_unit_test_setup_teardown(test_state_failing_snapshot_backs_off, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_disk_full_across_snapshots, rig_setup,
                                        teardown_unlimit),
        cmocka_unit_test_setup_teardown(test_state_discard_corrupt_snapshot, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_old_snapshot_format_refused, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_newer_snapshot_format_refused, rig_setup,
                                        rig_teardown),
    };
    return cmocka_run_group_tests_name("state_damage", tests, NULL, NULL);
}
