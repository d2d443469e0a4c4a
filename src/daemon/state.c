/* state.c - the journal, its timers, and the state's life (see state.h). */
#define _GNU_SOURCE /* mremap */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "ensembled/xalloc.h"
#include "log.h"
#include "looptime.h"
#include "state_int.h"

/* ---- bytes ------------------------------------------------------------ */

/* Grows a mapped buffer to at least cap bytes, by whole pages. If the
 * system refuses a mapping (vm.max_map_count reached: a snapshot of many
 * pieces), the buffer moves to the heap and stays there. */
static void grow_mapped(ens__bytes_t *b, size_t cap)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (cap < 16 * page)
        cap = 16 * page;
    cap = (cap + page - 1) / page * page;
    void *p = b->data ? mremap(b->data, b->cap, cap, MREMAP_MAYMOVE)
                      : mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        p = ens_xmalloc(cap);
        if (b->data) {
            memcpy(p, b->data, b->size);
            munmap(b->data, b->cap);
        }
        b->mapped = 0;
    }
    b->data = p;
    b->cap = cap;
}

void ens__bytes_record(ens__bytes_t *b, const ens_jrec_t *r)
{
    size_t n = ens_jrec_size(r);
    if (n == 0)
        return; /* the caller's bug: a record breaking the codec's rules */
    if (b->size + n > b->cap) {
        size_t cap = b->size + n > 2 * b->cap ? b->size + n : 2 * b->cap;
        if (b->mapped) {
            grow_mapped(b, cap);
        } else {
            b->data = ens_xreallocarray(b->data, cap, 1);
            b->cap = cap;
        }
    }
    b->size += ens_jrec_encode(r, b->data + b->size, b->cap - b->size);
}

void ens__bytes_free(ens__bytes_t *b)
{
    if (b->mapped && b->data)
        munmap(b->data, b->cap);
    else if (!b->mapped)
        free(b->data);
    memset(b, 0, sizeof(*b));
}

int ens__write_all(int fd, const void *buf, size_t len, size_t *done)
{
    const char *p = buf;
    *done = 0;
    while (*done < len) {
        ssize_t n = write(fd, p + *done, len - *done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = ENOSPC;
            return -1;
        }
        *done += (size_t)n;
    }
    return 0;
}

void ens__state_path(const ens_state_t *s, char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", s->conf->state_dir, name);
}

/* ---- journal ---------------------------------------------------------- */

/* Writes what is buffered. On a failure (a full disk) the bytes not written
 * stay buffered and are retried on the next turn: a short write leaves
 * exactly the bytes it reports in the file, so the retry completes the
 * frame it cut and the journal stays a clean sequence of records. */
static void flush(ens_state_t *s)
{
    if (s->out.size == 0 || s->fd < 0)
        return;
    size_t done = 0;
    if (ens__write_all(s->fd, s->out.data, s->out.size, &done) < 0) {
        if (s->st.write_errors++ == 0 || errno != ENOSPC)
            ENS_LOG(ERR, "state: journal write failed: %s; %zu bytes kept to retry",
                    strerror(errno), s->out.size - done);
        s->write_failing = 1;
    } else if (s->write_failing) {
        /* The disk takes writes again. A snapshot that failed meanwhile
         * holds the only copy of the rows its rotation could not write:
         * retry it now, not after the delay the failures grew. */
        s->write_failing = 0;
        s->retry_delay = 0;
    }
    memmove(s->out.data, s->out.data + done, s->out.size - done);
    s->out.size -= done;
    s->dirty |= done > 0;
    /* Every row record so far is in the kernel, unless some were dropped:
     * those wait for the next snapshot. */
    if (s->out.size == 0 && !s->dropped)
        s->seq_written = s->seq;
}

static void on_flush(uv_check_t *h)
{
    ens_state_t *s = h->data;
    if (s->out.size == 0 || s->fd < 0)
        return; /* most turns: no clock read for nothing */
    ens_loop_section_t was = ens_looptime_enter(ENS_LOOP_JOURNAL);
    flush(s);
    ens_looptime_enter(was);
}

/* Buffers one record for the journal. The buffer is written once per loop
 * turn (after the turn's events, before the loop waits again), so a flood
 * costs one write per turn instead of one per row, and a record is in the
 * kernel before the daemon next waits. */
static void append(ens_state_t *s, const ens_jrec_t *r)
{
    if (s->fd < 0)
        return;
    if (s->out.size >= ENS_STATE_MAX_BUFFER) {
        /* The disk has refused writes for a long while. The rows stay in
         * the windows; the next snapshot that succeeds saves them. */
        if (s->st.records_dropped++ == 0)
            ENS_LOG(ERR, "state: journal buffer full; records dropped until a snapshot succeeds");
        s->force_snapshot = 1;
        s->dropped = 1;
        return;
    }
    ens__bytes_record(&s->out, r);
    if (s->out.size >= (1u << 20))
        flush(s);
}

void ens_state_added(ens_state_t *s, const ens_task_t *t, ens_name_kind_t kind, uint32_t id,
                     ens_str_t name)
{
    if (!s)
        return;
    static const ens_jrec_kind_t kinds[] = {ENS_JREC_TASK, ENS_JREC_MODEL, ENS_JREC_LABEL};
    ens_jrec_t r = {.kind = kinds[kind]};
    r.dict.task = t->id;
    r.dict.id = id;
    r.dict.name = name.ptr;
    r.dict.len = name.len;
    append(s, &r);
    if (kind == ENS_NAME_TASK && ens__state_answers(t, &r))
        append(s, &r);
}

int ens__state_answers(const ens_task_t *t, ens_jrec_t *r)
{
    if (t->conf.answers == ENS_ANSWERS_CHOICE)
        return 0; /* no record: choice */
    memset(r, 0, sizeof(*r));
    r->kind = ENS_JREC_ANSWERS;
    r->answers.task = t->id;
    r->answers.answers = (uint8_t)t->conf.answers;
    r->answers.normalize = (uint8_t)t->conf.normalize;
    return 1;
}

void ens_state_row(ens_state_t *s, const ens_task_t *t, uint8_t y, const uint8_t *x, size_t nx,
                   double ts)
{
    if (!s)
        return;
    ens_jrec_t r = {.kind = ENS_JREC_ROW};
    r.row.seq = ++s->seq;
    r.row.task = t->id;
    r.row.ts = ts;
    r.row.y = y;
    r.row.x = x;
    r.row.nx = nx;
    /* The row is the window's newest: its flag and its answers' costs are
     * there (task.c). */
    size_t rows = ens_window_rows(t->window);
    r.row.ordinary = rows > 0 && !ens_window_explored(t->window, rows - 1);
    double cost[ENS_MAX_MODELS];
    int costs = 0;
    for (size_t j = 0; rows > 0 && j < nx && j < ENS_MAX_MODELS; j++) {
        cost[j] = ens_window_cost_at(t->window, rows - 1, j);
        costs |= !isnan(cost[j]);
    }
    r.row.cost = costs ? cost : NULL;
    append(s, &r);
}

void ens_state_query(ens_state_t *s, const ens_task_t *t, const void *key, size_t len)
{
    if (!s || s->fd < 0 || len == 0 || len > ENS_JREC_MAX_NAME)
        return;
    ens_jrec_t r = {.kind = ENS_JREC_QUERY};
    r.dict.task = t->id;
    r.dict.name = key;
    r.dict.len = len;
    /* Buffered without the flush check of append(): the ROW record that
     * follows goes out in the same write, so no crash keeps one without
     * the other (a full buffer drops the ROW, and a snapshot saves it). */
    if (s->out.size < ENS_STATE_MAX_BUFFER)
        ens__bytes_record(&s->out, &r);
}

typedef struct {
    ens__bytes_t *b;
    uint32_t task;
} query_dump_t;

static void dump_query(void *ud, const void *key, size_t len)
{
    query_dump_t *q = ud;
    ens_jrec_t r = {.kind = ENS_JREC_QUERY};
    r.dict.task = q->task;
    r.dict.name = key;
    r.dict.len = len;
    if (len > 0 && len <= ENS_JREC_MAX_NAME)
        ens__bytes_record(q->b, &r);
}

uint64_t ens_state_last_seq(const ens_state_t *s)
{
    return s ? s->seq : 0;
}

uint64_t ens_state_durable_seq(const ens_state_t *s)
{
    return s ? s->seq_synced : UINT64_MAX;
}

void ens_state_version(ens_state_t *s, const ens_task_t *t, uint64_t version)
{
    if (!s)
        return;
    ens_jrec_t r = {.kind = ENS_JREC_VERSION};
    r.version.task = t->id;
    r.version.version = version;
    append(s, &r);
    /* In the kernel before the body leaves: a kill -9 right after the send
     * must not bring the daemon back below a version routers saw. One write
     * per publication. */
    flush(s);
}

void ens__state_names(const ens_state_t *s, ens__bytes_t *b)
{
    for (uint32_t i = 0; i < ens_tasks_count(s->tasks); i++) {
        const ens_task_t *t = ens_tasks_get(s->tasks, i);
        ens_jrec_t r = {.kind = ENS_JREC_TASK};
        r.dict.task = t->id;
        r.dict.name = t->name;
        r.dict.len = t->len;
        ens__bytes_record(b, &r);
        ens_jrec_t a;
        if (ens__state_answers(t, &a))
            ens__bytes_record(b, &a);
        size_t n[2] = {ens_window_models(t->window), ens_window_labels(t->window)};
        for (int k = 0; k < 2; k++) {
            for (size_t id = 0; id < n[k]; id++) {
                ens_str_t name = k == 0 ? ens_window_model_str(t->window, (int)id)
                                        : ens_window_label_str(t->window, (int)id);
                if (name.len == 0)
                    continue; /* a freed slot */
                r.kind = k == 0 ? ENS_JREC_MODEL : ENS_JREC_LABEL;
                r.dict.id = (uint32_t)id;
                r.dict.name = name.ptr;
                r.dict.len = name.len;
                ens__bytes_record(b, &r);
            }
        }
    }
}

/* Opens journal n and starts it with every name known, so that its ids can
 * be read without any other file: names[0..len) when the caller has them
 * encoded already (a snapshot beginning: 64 tasks of 256 models are 16,000
 * records, milliseconds to encode), else encoded here. */
static int open_journal(ens_state_t *s, uint64_t n, const uint8_t *names, size_t len)
{
    char path[ENS_CONF_STR + 64], name[64];
    snprintf(name, sizeof(name), "journal.%llu", (unsigned long long)n);
    ens__state_path(s, path, sizeof(path), name);
    s->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    s->journal = n;
    if (s->fd < 0) {
        ENS_LOG(ERR, "state: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (names && len) {
        if (s->out.size + len > s->out.cap) {
            s->out.cap = s->out.size + len;
            s->out.data = ens_xreallocarray(s->out.data, s->out.cap, 1);
        }
        memcpy(s->out.data + s->out.size, names, len);
        s->out.size += len;
    } else if (!names) {
        ens__state_names(s, &s->out);
    }
    /* With an intake that delivers again (ingest.nats), the queries still
     * remembered as joined: the journals that named them go once the
     * snapshot is durable, and the snapshot does not hold them. */
    for (uint32_t i = 0; s->conf->nats_url[0] && i < ens_tasks_count(s->tasks); i++) {
        const ens_task_t *t = ens_tasks_get(s->tasks, i);
        query_dump_t q = {&s->out, t->id};
        ens_join_each_joined(t->join, dump_query, &q);
    }
    return 0;
}

static void close_journal(ens_state_t *s)
{
    flush(s);
    if (s->fd >= 0) {
        fdatasync(s->fd);
        close(s->fd);
    }
    s->fd = -1;
}

/* ---- snapshots -------------------------------------------------------- */

struct snap_job_s {
    uv_work_t req;
    ens_state_t *s;
    ens__snap_t snap;
    uint64_t covers; /* journals <= covers are in the snapshot */
    uint64_t seq;    /* the last row it holds */
    char dir[ENS_CONF_STR];
    int err; /* errno of the write, 0: done */
};

static void job_free(snap_job_t *j)
{
    ens__snapshot_free(&j->snap);
    free(j);
}

static void snapshot_work(uv_work_t *req)
{
    snap_job_t *j = req->data;
    j->err = ens__snapshot_write(j->dir, &j->snap, j->covers);
    /* The image is freed here, not on the loop: tens of thousands of
     * pieces of a 0.9 GB snapshot took 13 ms of the loop's CPU to free. */
    size_t size = j->snap.size;
    ens__snapshot_free(&j->snap);
    j->snap.size = size;
}

static void snapshot_end(uv_work_t *req, int status)
{
    snap_job_t *j = req->data;
    ens_state_t *s = j->s;
    s->snapshotting = 0;
    if (status < 0 || j->err) {
        s->st.write_errors++;
        s->force_snapshot = 1;
        /* Each attempt rotates the journal: retried every second, a lasting
         * failure would leave a journal file a second. The delay doubles
         * up to the snapshot interval (or 5 minutes). */
        double cap = s->conf->snapshot_interval > 0 ? s->conf->snapshot_interval : 300;
        s->retry_delay = s->retry_delay > 0 ? 2 * s->retry_delay : 1;
        if (s->retry_delay > cap)
            s->retry_delay = cap;
        ENS_LOG(ERR, "state: snapshot failed: %s; journals kept, will retry",
                strerror(j->err ? j->err : EIO));
    } else {
        s->st.snapshots++;
        if (j->seq > s->seq_synced)
            s->seq_synced = j->seq;
        s->force_snapshot = 0;
        s->retry_delay = 0;
        ENS_LOG(DEBUG, "state: snapshot written (%zu bytes)", j->snap.size);
    }
    job_free(j);
}

static void snapshot_done(uv_work_t *req, int status)
{
    ens_loop_section_t was = ens_looptime_enter(ENS_LOOP_SNAPSHOT);
    snapshot_end(req, status);
    ens_looptime_enter(was);
}

static void on_synced(uv_fs_t *req);

/* Rotates the journal and begins a snapshot covering the old ones; its rows
 * are serialized afterwards (ens__snapshot_step). Bytes the old journal
 * could not take (a full disk) are dropped: their rows are in the snapshot,
 * and the old journal, perhaps ending in a torn record, is deleted with the
 * others once the snapshot is durable. Until a snapshot succeeds they are
 * only in memory: a crash before loses them. With the loop running (async),
 * the old journal's fdatasync goes to the thread pool, where it may take
 * milliseconds without holding the loop; the new journal is not synced
 * before it returns (ens_state_tick waits while one is in flight), and the
 * old file is closed then. */
static snap_job_t *snapshot_begin(ens_state_t *s, double mono, int async)
{
    int old = async ? s->fd : -1;
    if (old >= 0) {
        flush(s);
        s->fd = -1;
    } else {
        close_journal(s);
    }
    s->out.size = 0;
    snap_job_t *j = ens_xcalloc(1, sizeof(*j));
    j->s = s;
    j->covers = s->journal;
    j->seq = s->seq;
    s->dropped = 0; /* the snapshot holds every row, dropped records' too */
    snprintf(j->dir, sizeof(j->dir), "%s", s->conf->state_dir);
    ens__snapshot_begin(s, j->covers, &j->snap);
    open_journal(s, s->journal + 1, j->snap.file[0].data + j->snap.names_off, j->snap.names_len);
    s->dirty = 0;
    s->last_snapshot = mono;
    j->req.data = j;
    if (old >= 0) {
        s->syncing = 1;
        s->seq_syncing = s->seq_written;
        s->sync_close_fd = old;
        s->sync_req.data = s;
        if (uv_fs_fdatasync(s->loop, &s->sync_req, old, on_synced) < 0) {
            s->syncing = 0;
            s->sync_close_fd = -1;
            fdatasync(old);
            close(old);
        }
    }
    return j;
}

/* One loop turn's piece of the snapshot being serialized; the last one
 * hands the file to the thread pool. A piece is at most s->snap_cells
 * window cells and about s->snap_turn_s seconds (the clock is read every
 * s->snap_slice cells), so the loop never stalls on a snapshot for much
 * longer than that, whatever the windows hold. */
static void on_serial(uv_idle_t *h)
{
    ens_state_t *s = h->data;
    snap_job_t *j = s->job;
    size_t cells = 0;
    double deadline = s->snap_turn_s > 0 ? ens_mono() + s->snap_turn_s : 0;
    ens_loop_section_t was = ens_looptime_enter(ENS_LOOP_SNAPSHOT);
    int done = ens__snapshot_step(s, &j->snap, s->snap_cells, s->snap_slice, deadline, &cells);
    ens_looptime_enter(was);
    s->snap_turns++;
    if (cells > s->snap_turn_max)
        s->snap_turn_max = cells;
    if (!done)
        return;
    uv_idle_stop(&s->serial);
    s->job = NULL;
    if (uv_queue_work(s->loop, &j->req, snapshot_work, snapshot_done) < 0) {
        s->snapshotting = 0;
        job_free(j);
    }
}

/* ---- life ------------------------------------------------------------- */

static int lock_dir(ens_state_t *s, char *err, size_t errlen)
{
    char path[ENS_CONF_STR + 16];
    ens__state_path(s, path, sizeof(path), "lock");
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "state.dir %s: %s", s->conf->state_dir,
                 errno == EWOULDBLOCK ? "in use by another ensembled (its lock is held)"
                                      : strerror(errno));
        return -1;
    }
    return 0;
}

static void state_free(ens_state_t *s)
{
    if (s->job)
        job_free(s->job);
    if (s->fd >= 0)
        close(s->fd);
    if (s->sync_close_fd >= 0)
        close(s->sync_close_fd);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock */
    ens__bytes_free(&s->out);
    free(s);
}

int ens_state_open(uv_loop_t *loop, const ens_config_t *conf, ens_tasks_t *tasks,
                   const ens_state_hooks_t *hooks, int discard, ens_state_t **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    if (conf->state_dir[0] == '\0')
        return 0;
    if (mkdir(conf->state_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "state.dir %s: %s", conf->state_dir, strerror(errno));
        return -1;
    }
    ens_state_t *s = ens_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->conf = conf;
    s->tasks = tasks;
    s->hooks = *hooks;
    s->fd = -1;
    s->sync_close_fd = -1;
    uint64_t last = 0;
    if (lock_dir(s, err, errlen) < 0) {
        state_free(s);
        return -1;
    }
    if (ens__state_restore(s, &last, err, errlen) < 0) {
        if (!discard) {
            state_free(s);
            return -1;
        }
        /* Told to start empty: the journals after a refused snapshot go
         * aside with it, since the rows before them are gone, and they
         * must not come back at the next ordinary start either. */
        ens__state_set_aside(s);
        s->seq = 0;
        s->st.rows_snapshot = s->st.rows_replayed = 0;
        last = 0;
    }
    if (open_journal(s, last + 1, NULL, 0) < 0) {
        snprintf(err, errlen, "state.dir %s: cannot open a journal", conf->state_dir);
        state_free(s);
        return -1;
    }
    uv_check_init(loop, &s->flush);
    s->flush.data = s;
    uv_check_start(&s->flush, on_flush);
    uv_idle_init(loop, &s->serial);
    s->serial.data = s;
    s->flush_open = 1;
    s->snap_cells = ENS_STATE_SNAP_CELLS;
    s->snap_slice = ENS_STATE_SNAP_SLICE;
    s->snap_turn_s = ENS_STATE_SNAP_TURN_S;
    s->last_snapshot = s->last_sync = ens_mono();
    s->seq_written = s->seq_synced = s->seq; /* what was restored is on disk */
    ENS_LOG(NOTICE, "state: restored %llu rows from the snapshot and %llu from journals",
            (unsigned long long)s->st.rows_snapshot, (unsigned long long)s->st.rows_replayed);
    *out = s;
    return 0;
}

static void on_synced(uv_fs_t *req)
{
    ens_state_t *s = req->data;
    if (req->result < 0) {
        s->st.write_errors++;
        ENS_LOG(ERR, "state: fdatasync failed: %s", uv_strerror((int)req->result));
    } else {
        s->st.fsyncs++;
        if (s->seq_syncing > s->seq_synced)
            s->seq_synced = s->seq_syncing;
    }
    s->syncing = 0;
    if (s->sync_close_fd >= 0)
        close(s->sync_close_fd); /* the journal a snapshot rotated out */
    s->sync_close_fd = -1;
    uv_fs_req_cleanup(req);
}

void ens_state_tick(ens_state_t *s, double mono)
{
    if (!s || !s->flush_open)
        return;
    /* A due snapshot goes first: it syncs and rotates the journal itself.
     * It waits only for an fdatasync in flight on the journal it closes,
     * which the fsync below never starts while a snapshot is due. */
    double every = s->conf->snapshot_interval;
    double retry = s->retry_delay > 1.0 ? s->retry_delay : 1.0;
    int due = (every > 0 && mono - s->last_snapshot >= every) ||
              (s->force_snapshot && mono - s->last_snapshot >= retry);
    /* Rotating the journal abandons the records the disk has refused so
     * far: rows older than those the new journal takes, so a crash before
     * the snapshot lands would leave a gap. Wait until the journal has them,
     * unless records were dropped already (then only a snapshot saves them). */
    if (due && !s->snapshotting && !s->syncing)
        flush(s);
    if (due && !s->snapshotting && !s->syncing && (s->out.size == 0 || s->dropped > 0)) {
        ens_loop_section_t was = ens_looptime_enter(ENS_LOOP_SNAPSHOT);
        s->job = snapshot_begin(s, mono, 1);
        ens_looptime_enter(was);
        s->snapshotting = 1;
        s->last_sync = mono;
        uv_idle_start(&s->serial, on_serial);
        return;
    }
    flush(s);
    if (!due && s->dirty && !s->syncing && s->fd >= 0 &&
        mono - s->last_sync >= s->conf->fsync_interval) {
        s->dirty = 0;
        s->syncing = 1;
        s->seq_syncing = s->seq_written;
        s->last_sync = mono;
        s->sync_req.data = s;
        uv_fs_fdatasync(s->loop, &s->sync_req, s->fd, on_synced);
    }
}

void ens_state_stop(ens_state_t *s)
{
    if (!s || !s->flush_open)
        return;
    flush(s);
    s->flush_open = 0;
    uv_check_stop(&s->flush);
    uv_close((uv_handle_t *)&s->flush, NULL);
    if (s->job) {
        /* A snapshot still being serialized is given up: the final one
         * (ens_state_close) covers its journals too. */
        job_free(s->job);
        s->job = NULL;
        s->snapshotting = 0;
    }
    uv_idle_stop(&s->serial);
    uv_close((uv_handle_t *)&s->serial, NULL);
}

void ens_state_close(ens_state_t **sp)
{
    ens_state_t *s = *sp;
    if (!s)
        return;
    snap_job_t *j = snapshot_begin(s, ens_mono(), 0);
    size_t cells = 0;
    ens__snapshot_step(s, &j->snap, SIZE_MAX, SIZE_MAX, 0, &cells); /* the loop has stopped */
    j->err = ens__snapshot_write(j->dir, &j->snap, j->covers);
    if (j->err) {
        ENS_LOG(ERR, "state: final snapshot failed: %s; journals kept", strerror(j->err));
        close_journal(s);
    } else if (s->fd >= 0 && s->conf->nats_url[0]) {
        /* The next journal holds the joined queries' keys, which the
         * snapshot does not: kept, so that what the stream delivers again
         * after this stop (an acknowledgement that never reached it) finds
         * its query joined. */
        close_journal(s);
    } else if (s->fd >= 0) {
        /* snapshot_begin opened the next journal for the names alone, all
         * of them in the snapshot now durable: remove it unwritten, or every
         * clean stop would leave one behind. */
        char path[ENS_CONF_STR + 64], name[64];
        snprintf(name, sizeof(name), "journal.%llu", (unsigned long long)s->journal);
        ens__state_path(s, path, sizeof(path), name);
        s->out.size = 0;
        close(s->fd);
        s->fd = -1;
        unlink(path);
    }
    job_free(j);
    state_free(s);
    *sp = NULL;
}

void ens_state_abandon(ens_state_t **sp)
{
    if (*sp)
        state_free(*sp);
    *sp = NULL;
}

void ens_state_status(const ens_state_t *s, ens_mpw_t *w)
{
    static const ens_state_stats_t none;
    const ens_state_stats_t *st = s ? &s->st : &none;
    ens_mpw_cstr(w, "state");
    ens_mpw_map_begin(w);
    ens_mpw_cstr(w, "rows_restored_snapshot");
    ens_mpw_uint(w, st->rows_snapshot);
    ens_mpw_cstr(w, "rows_restored_journal");
    ens_mpw_uint(w, st->rows_replayed);
    ens_mpw_cstr(w, "torn_records");
    ens_mpw_uint(w, st->torn_records);
    ens_mpw_cstr(w, "corrupt_records");
    ens_mpw_uint(w, st->corrupt_records);
    ens_mpw_cstr(w, "snapshots");
    ens_mpw_uint(w, st->snapshots);
    ens_mpw_cstr(w, "fsyncs");
    ens_mpw_uint(w, st->fsyncs);
    ens_mpw_cstr(w, "synced_seq");
    ens_mpw_uint(w, s ? s->seq_synced : 0);
    ens_mpw_cstr(w, "write_errors");
    ens_mpw_uint(w, st->write_errors);
    ens_mpw_cstr(w, "records_dropped");
    ens_mpw_uint(w, st->records_dropped);
    ens_mpw_map_end(w);
}
