/* rig.h - a daemon in miniature for the tests of the daemon's modules.
 *
 * A "life" is one run of the daemon: a loop, the task registry, ingest and
 * the state, wired the way daemon.c wires them (the tasks' `added` and
 * `joined` hooks reach ens_state_added / ens_state_row; versions go through
 * the state hooks), and ended either cleanly (ens_state_close, a final
 * snapshot) or by a crash right after a loop turn (ens_state_stop, which
 * writes no more than a turn would, then ens_state_abandon: no snapshot, the
 * journals as they are). A kill -9 with rows still buffered is
 * test_state.c's, in a child process.
 *
 * Events are packed here with msgpack-c, not with the project's writer, and
 * what a test fed is kept here as plain rows (names as bytes) to compare the
 * windows with after a restart. Statistics are read back by unpacking the
 * status map with msgpack-c. On-disk frames are walked with the layout
 * journal.h documents, not with its reader.
 *
 * Needs <cmocka.h> included before. Functions are static inline so each test
 * takes only what it uses.
 */
#ifndef ENS_TEST_RIG_H
#define ENS_TEST_RIG_H

#include <dirent.h>
#include <errno.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "clock.h"
#include "config.h"
#include "ingest.h"
#include "state.h"
#include "task.h"

/* A name as bytes: S("m\0a") is the 3 bytes m, NUL, a; SI() is the same
 * as an initializer. */
#define S(lit) ((ens_str_t){(lit), sizeof(lit) - 1})
#define SI(lit)                                                                                    \
    {                                                                                              \
        (lit), sizeof(lit) - 1                                                                     \
    }

#define RIG_MAX_PREDS 8
#define RIG_MAX_TASKS 64

static inline int rig_same(ens_str_t a, ens_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* ---- a temporary state directory ------------------------------------- */

/* A fresh directory under $TMPDIR (or /tmp) into buf; its state.dir is
 * <buf>/state, not yet created (the state creates it). */
static inline void rig_tmpdir(char *buf, size_t len)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, len, "%s/ens-dtest-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(buf));
}

/* Removes dir and everything under it. */
static inline void rig_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[1024];
        int k = snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (k < 0 || (size_t)k >= sizeof(p))
            continue;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rig_rmtree(p);
        else
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* Entries of dir whose name starts with prefix and contains infix (either
 * may be ""). */
static inline size_t rig_count_files(const char *dir, const char *prefix, const char *infix)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strstr(e->d_name, infix) != NULL;
    if (d)
        closedir(d);
    return n;
}

static inline long long rig_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static inline uint8_t *rig_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static inline void rig_write(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* ---- frames, walked by the documented layout -------------------------- */

typedef struct {
    size_t off; /* where the frame starts */
    size_t end; /* just after it */
    uint8_t kind;
    uint64_t seq; /* ROW: its sequence number */
} rig_frame_t;

static inline uint64_t rig_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Splits an undamaged image into frames (magic, 8-byte check, u32 length,
 * payload); returns how many, at most max. */
static inline size_t rig_frames(const uint8_t *buf, size_t len, rig_frame_t *out, size_t max)
{
    size_t n = 0, off = 0;
    while (off + 16 <= len && n < max) {
        assert_memory_equal(buf + off, "\xE5\x4A\x52\x43", 4);
        size_t plen = (size_t)rig_le(buf + off + 12, 4);
        assert_true(off + 16 + plen <= len);
        out[n].off = off;
        out[n].end = off + 16 + plen;
        out[n].kind = buf[off + 16];
        out[n].seq = out[n].kind == 5 ? rig_le(buf + off + 17, 8) : 0;
        off = out[n++].end;
    }
    assert_int_equal(off, len);
    return n;
}

/* ---- rows fed, kept as the reference ---------------------------------- */

typedef struct {
    ens_str_t task, label; /* the truth */
    ens_str_t model[RIG_MAX_PREDS], answer[RIG_MAX_PREDS];
    size_t n;
    double ts;
} rig_row_t;

/* ---- one life of the daemon ------------------------------------------- */

typedef struct {
    uv_loop_t loop;
    ens_config_t conf; /* what every module borrows for the life */
    ens_tasks_t *tasks;
    ens_ingest_t *ingest;
    ens_state_t *state;
    uint64_t version[RIG_MAX_TASKS]; /* by task id: the publish module's part */
    uint64_t query;                  /* next query id */
    double mono;                     /* ingest's monotonic clock */
    double clock;                    /* the state timers' monotonic clock */
    char err[512];
} rig_life_t;

static inline void rig_on_added(void *ud, const ens_task_t *t, ens_name_kind_t kind, uint32_t id,
                                ens_str_t name)
{
    rig_life_t *l = ud;
    ens_state_added(l->state, t, kind, id, name);
}

static inline void rig_on_joined(void *ud, ens_task_t *t, uint8_t y, const uint8_t *x, size_t nx,
                                 double ts)
{
    rig_life_t *l = ud;
    ens_state_row(l->state, t, y, x, nx, ts);
}

static inline void rig_on_query(void *ud, const ens_task_t *t, const void *key, size_t len)
{
    rig_life_t *l = ud;
    ens_state_query(l->state, t, key, len);
}

static inline void rig_on_version(void *ud, const ens_task_t *t, uint64_t version)
{
    rig_life_t *l = ud;
    assert_true(t->id < RIG_MAX_TASKS);
    l->version[t->id] = version;
}

static inline uint64_t rig_version_of(void *ud, const ens_task_t *t)
{
    rig_life_t *l = ud;
    return t->id < RIG_MAX_TASKS ? l->version[t->id] : 0;
}

/* Starts a life over conf (copied): restores the state, then sets the
 * hooks. Returns ens_state_open's result; *lp is set either way and is
 * ended with rig_close, rig_crash or (after a failed open) rig_free. */
static inline int rig_open(rig_life_t **lp, const ens_config_t *conf, int discard)
{
    rig_life_t *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    l->conf = *conf;
    l->query = 1;
    l->mono = 1000;
    l->clock = ens_mono(); /* what ens_state_open starts its timers from */
    assert_int_equal(uv_loop_init(&l->loop), 0);
    l->tasks = ens_tasks_new(&l->conf);
    l->ingest = ens_ingest_new(l->tasks, &l->conf);
    ens_state_hooks_t sh = {rig_on_version, rig_version_of, l};
    int rc = ens_state_open(&l->loop, &l->conf, l->tasks, &sh, discard, &l->state, l->err,
                            sizeof(l->err));
    if (rc == 0) {
        /* As the daemon: joined queries are journaled with ingest.nats. */
        ens_task_hooks_t th = {rig_on_added, rig_on_joined, l,
                               l->conf.nats_url[0] ? rig_on_query : NULL};
        ens_tasks_set_hooks(l->tasks, &th);
    }
    *lp = l;
    return rc;
}

/* One loop turn without waiting: the per-turn journal flush runs. */
static inline void rig_turn(rig_life_t *l)
{
    uv_run(&l->loop, UV_RUN_NOWAIT);
}

/* Frees the modules; every handle must be closed by then. */
static inline void rig_free(rig_life_t **lp)
{
    rig_life_t *l = *lp;
    assert_null(l->state);
    ens_ingest_destroy(&l->ingest);
    ens_tasks_destroy(&l->tasks);
    assert_int_equal(uv_loop_close(&l->loop), 0);
    free(l);
    *lp = NULL;
}

/* A clean stop, as the daemon does it: stop, run the loop dry, close. */
static inline void rig_close(rig_life_t **lp)
{
    rig_life_t *l = *lp;
    ens_state_stop(l->state);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    ens_state_close(&l->state);
    rig_free(lp);
}

/* A crash after the last loop turn: what the turns wrote stays, no
 * snapshot is written and the journals are left as they are. */
static inline void rig_crash(rig_life_t **lp)
{
    rig_life_t *l = *lp;
    ens_state_stop(l->state);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    ens_state_abandon(&l->state);
    rig_free(lp);
}

/* A publication of t with version v: the journal keeps it. */
static inline void rig_publish(rig_life_t *l, const ens_task_t *t, uint64_t v)
{
    assert_true(t->id < RIG_MAX_TASKS);
    l->version[t->id] = v;
    ens_state_version(l->state, t, v);
}

/* ---- packing events with msgpack-c ------------------------------------ */

static inline void rig_pack_str(msgpack_packer *pk, ens_str_t s)
{
    msgpack_pack_str_with_body(pk, s.ptr, s.len);
}

static inline void rig_pack_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

/* {"kind": "prediction", "task": T, "query": q, "predictions": {m: a}} */
static inline void rig_pack_prediction(msgpack_packer *pk, ens_str_t task, uint64_t q,
                                       const ens_str_t *model, const ens_str_t *answer, size_t n)
{
    msgpack_pack_map(pk, 4);
    rig_pack_key(pk, "kind");
    rig_pack_key(pk, "prediction");
    rig_pack_key(pk, "task");
    rig_pack_str(pk, task);
    rig_pack_key(pk, "query");
    msgpack_pack_uint64(pk, q);
    rig_pack_key(pk, "predictions");
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < n; i++) {
        rig_pack_str(pk, model[i]);
        rig_pack_str(pk, answer[i]);
    }
}

/* {"kind": "label", "task": T, "query": q, "label": L, "ts": ts} */
static inline void rig_pack_label(msgpack_packer *pk, ens_str_t task, uint64_t q, ens_str_t label,
                                  double ts)
{
    msgpack_pack_map(pk, 5);
    rig_pack_key(pk, "kind");
    rig_pack_key(pk, "label");
    rig_pack_key(pk, "task");
    rig_pack_str(pk, task);
    rig_pack_key(pk, "query");
    msgpack_pack_uint64(pk, q);
    rig_pack_key(pk, "label");
    rig_pack_str(pk, label);
    rig_pack_key(pk, "ts");
    msgpack_pack_double(pk, ts);
}

/* Hands one packed message to ingest; returns its result. */
static inline int rig_ingest(rig_life_t *l, msgpack_sbuffer *sb)
{
    l->mono += 0.001;
    int rc = ens_ingest_message(l->ingest, sb->data, sb->size, 1.7e9, l->mono);
    msgpack_sbuffer_clear(sb);
    return rc;
}

/* Feeds one row: its predictions, then its label, as two messages. */
static inline void rig_feed(rig_life_t *l, const rig_row_t *r)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    uint64_t q = l->query++;
    rig_pack_prediction(&pk, r->task, q, r->model, r->answer, r->n);
    assert_int_equal(rig_ingest(l, &sb), 0);
    rig_pack_label(&pk, r->task, q, r->label, r->ts);
    assert_int_equal(rig_ingest(l, &sb), 0);
    msgpack_sbuffer_destroy(&sb);
}

static inline void rig_feed_all(rig_life_t *l, const rig_row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rig_feed(l, &rows[i]);
}

/* ---- checking windows against the rows fed ---------------------------- */

static inline void rig_check_row(const ens_window_t *w, size_t i, const rig_row_t *r)
{
    assert_true(rig_same(ens_window_label_str(w, ens_window_y(w, i)), r->label));
    double ts = ens_window_ts(w, i);
    assert_memory_equal(&ts, &r->ts, sizeof(ts));
    for (size_t j = 0; j < ens_window_models(w); j++) {
        ens_str_t m = ens_window_model_str(w, (int)j);
        uint8_t x = ens_window_x(w, i, j);
        size_t k = 0;
        while (k < r->n && !rig_same(r->model[k], m))
            k++;
        if (k == r->n)
            assert_int_equal(x, ENS_SYM_MISSING);
        else if (rig_same(r->answer[k], S("?")))
            assert_int_equal(x, ENS_SYM_ABSTAIN);
        else
            assert_true(x < ens_window_labels(w) &&
                        rig_same(ens_window_label_str(w, x), r->answer[k]));
    }
    for (size_t k = 0; k < r->n; k++)
        assert_true(ens_window_find_model(w, r->model[k].ptr, r->model[k].len) >= 0);
}

/* Every row of rows[0..n) is in its task's window, in order, and nothing
 * else is: exactly ntasks tasks, each holding exactly its rows. */
static inline void rig_check(const rig_life_t *l, const rig_row_t *rows, size_t n, size_t ntasks)
{
    assert_int_equal(ens_tasks_count(l->tasks), ntasks);
    size_t total = 0;
    for (uint32_t id = 0; id < ntasks; id++) {
        const ens_task_t *t = ens_tasks_get(l->tasks, id);
        ens_str_t name = {t->name, t->len};
        const ens_window_t *w = t->window;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (!rig_same(rows[i].task, name))
                continue;
            assert_true(k < ens_window_rows(w));
            rig_check_row(w, k++, &rows[i]);
        }
        assert_int_equal(k, ens_window_rows(w));
        total += k;
    }
    assert_int_equal(total, n);
}

/* ---- the state's counters, from its status map ------------------------- */

typedef struct {
    uint64_t rows_snapshot, rows_journal, torn, corrupt, snapshots, write_errors, dropped;
    uint64_t fsyncs, synced_seq;
} rig_stats_t;

static inline rig_stats_t rig_stats(const ens_state_t *s)
{
    static const char *const keys[] = {"rows_restored_snapshot",
                                       "rows_restored_journal",
                                       "torn_records",
                                       "corrupt_records",
                                       "snapshots",
                                       "write_errors",
                                       "records_dropped",
                                       "fsyncs",
                                       "synced_seq"};
    uint64_t v[9] = {0};
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_mpw_map_begin(&w);
    ens_state_status(s, &w);
    ens_mpw_map_end(&w);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, w.data, w.size, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, w.size);
    msgpack_object o = u.data;
    assert_true(o.type == MSGPACK_OBJECT_MAP && o.via.map.size == 1);
    msgpack_object_kv *kv = o.via.map.ptr;
    assert_true(kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 5 &&
                memcmp(kv->key.via.str.ptr, "state", 5) == 0);
    assert_true(kv->val.type == MSGPACK_OBJECT_MAP && kv->val.via.map.size == 9);
    unsigned found = 0;
    for (uint32_t i = 0; i < 9; i++) {
        msgpack_object_kv *e = &kv->val.via.map.ptr[i];
        assert_int_equal(e->key.type, MSGPACK_OBJECT_STR);
        assert_int_equal(e->val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        for (int k = 0; k < 9; k++)
            if (e->key.via.str.size == strlen(keys[k]) &&
                memcmp(e->key.via.str.ptr, keys[k], e->key.via.str.size) == 0) {
                v[k] = e->val.via.u64;
                found |= 1u << k;
            }
    }
    assert_int_equal(found, 0x1ff);
    msgpack_unpacked_destroy(&u);
    ens_mpw_free(&w);
    rig_stats_t st = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]};
    return st;
}

/* The state's timer, dt seconds after the last one (a fake clock). */
static inline void rig_tick(rig_life_t *l, double dt)
{
    l->clock += dt;
    ens_state_tick(l->state, l->clock);
}

/* Forces a snapshot (the clock moved far past snapshot_interval) and
 * waits until it is written or has failed. Returns 0 or -1 (failed). The
 * tick is repeated: a snapshot waits for an fdatasync in flight. */
static inline int rig_snapshot(rig_life_t *l)
{
    rig_stats_t before = rig_stats(l->state);
    l->clock += 1e6;
    for (int i = 0; i < 20000; i++) {
        rig_tick(l, 0);
        rig_turn(l);
        rig_stats_t now = rig_stats(l->state);
        if (now.snapshots > before.snapshots)
            return 0;
        if (now.write_errors > before.write_errors)
            return -1;
        usleep(500);
    }
    fail_msg("the snapshot neither finished nor failed within 10 s");
    return -1;
}

/* ---- a test's directory and configuration ------------------------------ */

typedef struct {
    char root[128]; /* the temporary directory, removed at teardown */
    char dir[192];  /* its state.dir */
    ens_config_t conf;
} rig_fx_t;

/* cmocka setup: a fresh directory and the default configuration over it. */
static inline int rig_setup(void **state)
{
    rig_fx_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    rig_tmpdir(fx->root, sizeof(fx->root));
    snprintf(fx->dir, sizeof(fx->dir), "%s/state", fx->root);
    ens_config_defaults(&fx->conf);
    /* Rows keep every ts as sent, far-future ones too (the codec's range
     * is under test here, not ingest.max_future). */
    fx->conf.max_future = 1e300;
    snprintf(fx->conf.state_dir, sizeof(fx->conf.state_dir), "%s", fx->dir);
    fx->conf.snapshot_interval = 300;
    ens_log_set_level(ENS_LOG_ERR);
    *state = fx;
    return 0;
}

static inline int rig_teardown(void **state)
{
    rig_fx_t *fx = *state;
    rig_rmtree(fx->root);
    free(fx);
    return 0;
}

static inline void rig_path(const rig_fx_t *fx, const char *name, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s", fx->dir, name);
    assert_true(n > 0 && (size_t)n < len);
}

/* Row i of a generated stream in task: three models (two of them names
 * with a multi-byte UTF-8 character) asked in a pattern that varies with i,
 * abstentions included, labels with and without one. */
static inline rig_row_t rig_gen_row(ens_str_t task, size_t i)
{
    static const ens_str_t models[] = {SI("méa"), SI("méb"), SI("m")};
    static const ens_str_t labels[] = {SI("A"), SI("B"), SI("?é"), SI("C")};
    static const ens_str_t answers[] = {SI("A"), SI("?"), SI("B"), SI("?é"), SI("D")};
    rig_row_t r = {.task = task, .label = labels[i % 4], .ts = 1.7e9 + (double)i * 0.37};
    unsigned mask = (unsigned)(i % 7) + 1;
    for (size_t j = 0; j < 3; j++) {
        if (!(mask >> j & 1))
            continue;
        r.model[r.n] = models[j];
        r.answer[r.n++] = answers[(i * 3 + j) % 5];
    }
    return r;
}

/* n generated rows (from `from` on), task by task in turn over
 * tasks[0..ntasks); the caller frees them. */
static inline rig_row_t *rig_gen_rows(const ens_str_t *tasks, size_t ntasks, size_t from, size_t n)
{
    rig_row_t *rows = calloc(n, sizeof(*rows));
    assert_non_null(rows);
    for (size_t i = 0; i < n; i++)
        rows[i] = rig_gen_row(tasks[(from + i) % ntasks], from + i);
    return rows;
}

static inline const ens_task_t *rig_task(const rig_life_t *l, ens_str_t name)
{
    const ens_task_t *t = ens_tasks_find(l->tasks, name.ptr, name.len);
    assert_non_null(t);
    return t;
}

#endif
