/* recompute.c - selection jobs on the libuv thread pool (see recompute.h). */
#include "recompute.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "ensembled/err.h"
#include "ensembled/xalloc.h"
#include "log.h"
#include "looptime.h"

/* Window cells (rows times models) copied into starting selections'
 * snapshots per loop turn at most, ... */
#define COPY_CELLS (1u << 20)
/* ... at most COPY_SLICE between two reads of the clock, and no more once a
 * turn has copied for COPY_TURN_S seconds: a cell's cost differs by window
 * and by what the caches hold, and the first touch of a new buffer's pages
 * faults (a million cells took up to 14.6 ms in one turn). The ingest
 * drain's 2 ms and the snapshot's 0.5 ms may share the same turn. */
#define COPY_SLICE (1u << 14)
#define COPY_TURN_S 0.0005
/* A page of a new job's buffers, touched on the pool before the copy. */
#define PAGE_BYTES 4096
/* Selections handed to the thread pool and not yet returned, at most: each
 * holds its snapshot, so the rest wait as task ids, not as copies. One of
 * libuv's 4 threads stays free for the state's writes and fdatasyncs,
 * which would otherwise wait behind selections of seconds. */
#define MAX_QUEUED 3
/* The niceness of the pool's threads (see work()). */
#define WORKER_NICE 10

typedef struct job_s job_t;

typedef struct {
    int busy;              /* a job waits, is copied or runs */
    int again;             /* another was asked for meanwhile */
    size_t rows_since;     /* rows joined since the last job started */
    double last_select_at; /* monotonic time the last job finished (0: never) */
    double last_select_ms; /* how long it took */
    /* The failure the task's selection is in, logged once on entering it and
     * once on leaving it rather than every round. */
    int fail_code;        /* its ENS_E* or libuv code (0: selection works) */
    uint64_t fail_rounds; /* rounds failed since */
    double fail_since;    /* monotonic time it began */
    char fail_reason[32]; /* its reason field */
} slot_t;

struct ens_recompute_s {
    uv_loop_t *loop;
    const ens_tasks_t *tasks;
    const ens_config_t *conf;
    ens_recompute_hooks_t hooks;
    slot_t *slots; /* by task id */
    size_t nslots;
    int inflight;
    int stopping;
    uint32_t *waiting; /* task ids whose selection waits to be copied, FIFO */
    size_t wait_head, wait_len, wait_cap;
    job_t *copying;   /* the job whose snapshot is being copied (NULL: none) */
    uv_idle_t copier; /* copies a piece each turn while there is work */
    int copier_open;  /* copier initialised and not closed */
};

struct job_s {
    uv_work_t req;
    ens_recompute_t *owner;
    uint32_t task;    /* its id */
    ens_data_t *snap; /* the window, owned, immutable while the job runs */
    double *seen_age; /* per snap model */
    double *row_age;  /* per snap model, -1: no row */
    uint32_t *cost_n; /* per snap model: answers with a cost in the window */
    ens_str_t *prev;  /* the published set, copied */
    char *prev_bytes; /* the copies' bytes */
    size_t nprev;
    ens_pipeline_opts_t opts;
    double started; /* monotonic */
    /* The copy, a piece a loop turn: rows with serials next .. end that are
     * still in the window when their piece comes, oldest first. */
    uint8_t *cols; /* model k's rows at cols + k * planned */
    uint8_t *ys;
    uint8_t *flags;         /* the rows' exploration flags (ens_window_explored) */
    size_t planned, copied; /* rows at the start; rows copied */
    int faulting;           /* its buffers' pages are being touched on the pool */
    uv_work_t fault_req;
    uint64_t next, end;
    size_t ids[ENS_MAX_MODELS]; /* the snapshot's models, by window id */
    uint8_t relabel[256];       /* window label id -> snapshot label id */
    int renumber;               /* relabel is not the identity */
    /* results */
    int rc;
    char err[256];
    ens_pipeline_t *result;
    uv_work_t free_req; /* frees the job on the pool */
};

static slot_t *slot(ens_recompute_t *rc, uint32_t id)
{
    rc->slots = ens_xgrow_zeroed(rc->slots, &rc->nslots, (size_t)id + 1, sizeof(slot_t));
    return &rc->slots[id];
}

static void on_copier(uv_idle_t *h);

ens_recompute_t *ens_recompute_new(uv_loop_t *loop, const ens_tasks_t *tasks,
                                   const ens_config_t *conf, const ens_recompute_hooks_t *hooks)
{
    ens_recompute_t *rc = ens_xcalloc(1, sizeof(*rc));
    rc->loop = loop;
    rc->tasks = tasks;
    rc->conf = conf;
    rc->hooks = *hooks;
    if (loop) {
        uv_idle_init(loop, &rc->copier);
        rc->copier.data = rc;
        rc->copier_open = 1;
    }
    return rc;
}

void ens_recompute_destroy(ens_recompute_t **rp)
{
    ens_recompute_t *rc = *rp;
    if (!rc)
        return;
    free(rc->slots);
    free(rc->waiting);
    free(rc);
    *rp = NULL;
}

void ens_recompute_set_config(ens_recompute_t *rc, const ens_config_t *conf)
{
    rc->conf = conf;
}

/* The window copied a piece at a time becomes the snapshot's matrix: the
 * columns closed up when rows left the window during the copy, the labels
 * renumbered densely when a released id lies among them. */
static void finish_snapshot(job_t *j)
{
    ens_data_t *d = j->snap;
    size_t n = j->copied, nm = d->nmodels;
    if (!j->cols)
        return; /* copied in one go */
    for (size_t k = 1; k < nm && n < j->planned; k++)
        memmove(j->cols + k * n, j->cols + k * j->planned, n);
    if (j->renumber) {
        for (size_t i = 0; i < n; i++)
            j->ys[i] = j->relabel[j->ys[i]];
        for (size_t c = 0; c < n * nm; c++)
            j->cols[c] = j->relabel[j->cols[c]];
    }
    free(d->x);
    free(d->y);
    d->x = j->cols;
    d->y = j->ys;
    d->nrows = n;
    j->cols = j->ys = NULL;
    if (memchr(j->flags, 0, n)) {
        free(d->explored);
        d->explored = j->flags; /* some rows ordinary: the choice judges by them */
        j->flags = NULL;
    }
}

static void work(uv_work_t *req)
{
    job_t *j = req->data;
    finish_snapshot(j);
    ens_pipeline_in_t in = {j->snap, j->seen_age, j->row_age, j->prev, j->nprev, j->cost_n};
    j->rc = ens_pipeline_run(&in, &j->opts, &j->result, j->err, sizeof(j->err));
}

/* A selection on a pool thread. The pool's threads run at a lower
 * priority than the event loop (WORKER_NICE more), so that on a machine
 * with fewer cores than busy threads the scheduler runs the loop first:
 * selections take the time the loop leaves, instead of stretching its
 * turns. Linux sets a thread's niceness by its thread id. */
static void nice_worker(void)
{
    static _Thread_local int niced;
    if (!niced) {
        niced = 1;
        id_t tid = (id_t)syscall(SYS_gettid);
        errno = 0;
        int base = getpriority(PRIO_PROCESS, tid);
        if (errno == 0)
            setpriority(PRIO_PROCESS, tid, base + WORKER_NICE);
    }
}

static void pool_work(uv_work_t *req)
{
    nice_worker();
    work(req);
}

static void touch_pages(uint8_t *p, size_t size)
{
    for (size_t off = 0; off < size; off += PAGE_BYTES)
        p[off] = 0;
    if (size > 0)
        p[size - 1] = 0;
}

/* A new job's buffers are fresh pages, and the copy's first piece writes
 * a row into every model's column, one page each: 256 page faults, 3 to 4
 * ms of the loop's CPU time in one turn at 256 models on a virtual machine
 * (13 to 16 us a fault), and as many again every 4096 rows. The pool
 * touches every page first, so the loop's pieces find them mapped. What
 * the pages held is overwritten by the copy. */
static void fault_work(uv_work_t *req)
{
    job_t *j = req->data;
    nice_worker();
    touch_pages(j->cols, j->planned * j->snap->nmodels + 1);
    touch_pages(j->ys, j->planned + 1);
    touch_pages(j->flags, j->planned + 1);
}

/* What j holds; not j itself. */
static void job_free_parts(job_t *j)
{
    ens_pipeline_destroy(&j->result);
    ens_data_destroy(&j->snap);
    free(j->seen_age);
    free(j->row_age);
    free(j->cost_n);
    free(j->prev);
    free(j->prev_bytes);
    free(j->cols);
    free(j->ys);
    free(j->flags);
}

static void job_free(job_t *j)
{
    job_free_parts(j);
    free(j);
}

/* Freeing a window's copy unmaps megabytes: done on the pool; the job
 * itself, which holds the request, once libuv is done with it. */
static void free_work(uv_work_t *req)
{
    job_free_parts(req->data);
}

static void free_done(uv_work_t *req, int status)
{
    (void)status;
    free(req->data);
}

static void job_release(ens_recompute_t *rc, job_t *j)
{
    j->free_req.data = j;
    if (!rc->loop || uv_queue_work(rc->loop, &j->free_req, free_work, free_done) < 0)
        job_free(j);
}

/* The copy of a job whose pages are mapped can begin; a job given up by
 * ens_recompute_stop meanwhile is freed. */
static void fault_done(uv_work_t *req, int status)
{
    (void)status;
    job_t *j = req->data;
    ens_recompute_t *rc = j->owner;
    j->faulting = 0;
    if (rc->stopping) {
        job_release(rc, j);
        return;
    }
    if (rc->copier_open)
        uv_idle_start(&rc->copier, on_copier);
}

/* The reason field of a failure: a word a query can match. */
static void fail_reason(int code, char *out, size_t len)
{
    if (code == ENS_EEMPTY) {
        /* The usual one: a task whose models all went quiet. */
        snprintf(out, len, "no_model_in_pool");
        return;
    }
    switch (code) {
#define ENS__ERR_REASON(n, value, text)                                                            \
    case ENS_##n:                                                                                  \
        snprintf(out, len, "%s", &#n[1]);                                                          \
        break;
        ENS_ERR_MAP(ENS__ERR_REASON)
#undef ENS__ERR_REASON
    default:
        uv_err_name_r(code, out, len);
    }
    for (char *c = out; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
}

/* A round failed: logged when the task enters this failure (a quiet task
 * fails every round, and says so once), at debug level after that. */
static void selection_failed(slot_t *sl, const ens_task_t *t, int code, const char *why)
{
    if (code == sl->fail_code) {
        sl->fail_rounds++;
        ENS_LOG(DEBUG, "task %s: selection still fails (%llu rounds): %s", t->name,
                (unsigned long long)sl->fail_rounds, why);
        return;
    }
    sl->fail_code = code;
    sl->fail_rounds = 1;
    sl->fail_since = ens_mono();
    fail_reason(code, sl->fail_reason, sizeof(sl->fail_reason));
    ens_logf(code == ENS_EEMPTY ? ENS_LOG_NOTICE : ENS_LOG_WARNING,
             ENS_LOG_FIELDS({"task", t->name}, {"reason", sl->fail_reason}, {"state", "failing"}),
             "task %s: selection failed: %s (logged again when this changes)", t->name, why);
}

/* A round succeeded: the end of a failure, if the task was in one. */
static void selection_works(slot_t *sl, const ens_task_t *t)
{
    if (sl->fail_code == 0)
        return;
    char rounds[32];
    snprintf(rounds, sizeof(rounds), "%llu", (unsigned long long)sl->fail_rounds);
    ens_logf(ENS_LOG_NOTICE,
             ENS_LOG_FIELDS({"task", t->name}, {"reason", sl->fail_reason}, {"state", "ok"},
                            {"failed_rounds", rounds}),
             "task %s: selection works again, after %llu failed round%s over %.0f s (%s)", t->name,
             (unsigned long long)sl->fail_rounds, sl->fail_rounds == 1 ? "" : "s",
             ens_mono() - sl->fail_since, sl->fail_reason);
    sl->fail_code = 0;
}

static void job_done(uv_work_t *req, int status)
{
    job_t *j = req->data;
    ens_recompute_t *rc = j->owner;
    ens_task_t *t = ens_tasks_get(rc->tasks, j->task);
    slot_t *sl = slot(rc, j->task);
    rc->inflight--;
    sl->busy = 0;
    sl->last_select_at = ens_mono();
    sl->last_select_ms = (sl->last_select_at - j->started) * 1000;
    if (status < 0 || j->rc < 0) {
        selection_failed(sl, t, status < 0 ? status : j->rc,
                         status < 0 ? uv_strerror(status) : j->err);
    } else {
        selection_works(sl, t);
        if (!rc->stopping)
            rc->hooks.done(rc->hooks.ud, t, j->result);
    }
    job_release(rc, j);
    if (sl->again && !rc->stopping) {
        sl->again = 0;
        ens_recompute_start(rc, t);
    }
    if (rc->wait_len > 0 && rc->copier_open)
        uv_idle_start(&rc->copier, on_copier);
}

static void after_work(uv_work_t *req, int status)
{
    ens_loop_section_t was = ens_looptime_enter(ENS_LOOP_SELECT);
    job_done(req, status);
    ens_looptime_enter(was);
}

/* The job's own copies: the settings, the published set, the ages. */
static void job_inputs(ens_recompute_t *rc, job_t *j, const ens_task_t *t)
{
    const ens_task_conf_t *c = &t->conf;
    ens_pipeline_opts_default(&j->opts);
    j->opts.select.strategy = c->strategy;
    j->opts.select.estimator = c->estimator;
    j->opts.select.budget = c->budget;
    j->opts.select.cost_budget = c->cost_budget;
    j->opts.select.min_gain_bits = c->min_gain_bits;
    j->opts.min_rows = c->min_rows;
    j->opts.retire_after = c->retire_after;
    j->opts.explore_rate = c->explore_rate;
    j->opts.min_improvement_bits = rc->conf->min_improvement_bits;
    size_t nm = j->snap->nmodels, ids[ENS_MAX_MODELS];
    double now = ens_now(), mono = ens_mono();
    /* The snapshot's columns are the models holding a slot, in id order. */
    ens_window_model_ids(t->window, ids);
    j->seen_age = ens_xcalloc(nm + 1, sizeof(double));
    j->row_age = ens_xcalloc(nm + 1, sizeof(double));
    j->cost_n = ens_xcalloc(nm + 1, sizeof(uint32_t));
    for (size_t m = 0; m < nm; m++) {
        ens_window_cost(t->window, ids[m], &j->cost_n[m]);
        j->seen_age[m] = mono - t->last_seen[ids[m]];
        j->row_age[m] = t->last_row[ids[m]] > 0 ? now - t->last_row[ids[m]] : -1;
    }
    const ens_str_t *prev = NULL;
    size_t n = 0, bytes = 0, off = 0;
    rc->hooks.published(rc->hooks.ud, t, &prev, &n);
    for (size_t i = 0; i < n; i++)
        bytes += prev[i].len;
    j->prev = ens_xcalloc(n + 1, sizeof(ens_str_t));
    j->prev_bytes = ens_xmalloc(bytes + 1);
    for (size_t i = 0; i < n; i++) {
        memcpy(j->prev_bytes + off, prev[i].ptr, prev[i].len);
        j->prev[i].ptr = j->prev_bytes + off;
        j->prev[i].len = prev[i].len;
        off += prev[i].len;
    }
    j->nprev = n;
}

static job_t *job_new(ens_recompute_t *rc, const ens_task_t *t)
{
    job_t *j = ens_xcalloc(1, sizeof(*j));
    j->owner = rc;
    j->task = t->id;
    j->snap = ens_window_snapshot(t->window);
    j->snap->open = t->conf.answers == ENS_ANSWERS_OPEN;
    job_inputs(rc, j, t);
    j->started = ens_mono();
    j->req.data = j;
    return j;
}

int ens_recompute_run_sync(ens_recompute_t *rc, ens_task_t *t, char *err, size_t errlen)
{
    if (ens_window_rows(t->window) == 0 || ens_window_models_held(t->window) == 0) {
        snprintf(err, errlen, "task %s has no joined row", t->name);
        return ENS_EEMPTY;
    }
    job_t *j = job_new(rc, t);
    work(&j->req);
    int result = j->rc;
    if (result == 0)
        rc->hooks.done(rc->hooks.ud, t, j->result);
    else
        snprintf(err, errlen, "%s", j->err);
    job_free(j);
    return result;
}

/* A job whose snapshot is copied a piece per turn (job_step): the names,
 * costs and label numbering now, the rows later. */
static job_t *job_begin(ens_recompute_t *rc, const ens_task_t *t)
{
    const ens_window_t *w = t->window;
    job_t *j = ens_xcalloc(1, sizeof(*j));
    j->owner = rc;
    j->task = t->id;
    size_t nm = ens_window_model_ids(w, j->ids), nl = 0, rows = ens_window_rows(w);
    for (size_t v = 0; v < 256; v++)
        j->relabel[v] = (uint8_t)v;
    for (size_t l = 0; l < ens_window_labels(w); l++) {
        if (!ens_window_label_name(w, (int)l))
            continue;
        j->renumber |= l != nl;
        j->relabel[l] = (uint8_t)nl++;
    }
    j->snap = ens_data_new(1, nm, nl);
    j->snap->open = t->conf.answers == ENS_ANSWERS_OPEN;
    for (size_t l = 0; l < ens_window_labels(w); l++)
        if (ens_window_label_name(w, (int)l))
            ens_data_set_label_name(j->snap, j->relabel[l], ens_window_label_name(w, (int)l));
    for (size_t k = 0; k < nm; k++) {
        uint32_t n = 0;
        double cost = ens_window_cost(w, j->ids[k], &n);
        ens_data_set_model_name(j->snap, k, ens_window_model_name(w, (int)j->ids[k]));
        if (n > 0)
            j->snap->cost[k] = cost;
    }
    j->planned = rows;
    j->cols = ens_xmalloc(rows * nm + 1);
    j->ys = ens_xmalloc(rows + 1);
    j->flags = ens_xmalloc(rows + 1);
    j->next = rows ? ens_window_serial(w, 0) : 1;
    j->end = rows ? ens_window_serial(w, rows - 1) : 0;
    job_inputs(rc, j, t);
    j->started = ens_mono();
    j->req.data = j;
    return j;
}

/* Copies at most `cells` window cells of j's rows, adding them to *done.
 * Rows that left the window before their piece came are skipped; rows
 * joined since the start are not taken. Returns 1 once every row is. */
static int job_step(job_t *j, const ens_window_t *w, size_t cells, size_t *done)
{
    size_t nm = j->snap->nmodels, per_row = nm ? nm : 1;
    size_t from = ens_window_find_serial(w, j->next);
    size_t to = j->next <= j->end ? ens_window_find_serial(w, j->end + 1) : from;
    if (from >= to || j->copied == j->planned)
        return 1;
    size_t n = cells / per_row ? cells / per_row : 1;
    if (n > to - from)
        n = to - from;
    if (n > j->planned - j->copied)
        n = j->planned - j->copied;
    ens_window_copy_columns(w, from, n, j->ids, nm, j->planned, j->ys + j->copied,
                            j->cols + j->copied);
    ens_window_copy_explored(w, from, n, j->flags + j->copied);
    j->copied += n;
    j->next = ens_window_serial(w, from + n - 1) + 1;
    *done += n * per_row;
    return j->next > j->end || j->copied == j->planned;
}

static void job_queue(ens_recompute_t *rc, job_t *j)
{
    ens_task_t *t = ens_tasks_get(rc->tasks, j->task);
    int err = uv_queue_work(rc->loop, &j->req, pool_work, after_work);
    if (err < 0) {
        ENS_LOG(ERR, "task %s: cannot queue a selection: %s", t->name, uv_strerror(err));
        slot(rc, j->task)->busy = 0;
        job_free(j);
        return;
    }
    rc->inflight++;
}

/* The next waiting task whose window has rows, its job begun; NULL when
 * none waits. A task whose window emptied meanwhile is not busy any more. */
static job_t *next_job(ens_recompute_t *rc)
{
    while (rc->wait_len > 0) {
        uint32_t id = rc->waiting[rc->wait_head];
        rc->wait_head = (rc->wait_head + 1) % rc->wait_cap;
        rc->wait_len--;
        ens_task_t *t = ens_tasks_get(rc->tasks, id);
        if (ens_window_rows(t->window) > 0 && ens_window_models_held(t->window) > 0)
            return job_begin(rc, t);
        slot(rc, id)->busy = 0;
        slot(rc, id)->again = 0;
    }
    return NULL;
}

/* One loop turn's copying: at most COPY_CELLS cells, and about COPY_TURN_S
 * seconds, into the snapshots of waiting selections, each handed to the
 * pool once complete, while fewer than MAX_QUEUED are there. So a round
 * over many large windows is spread over many short turns instead of one
 * long one. */
static void copy_some(ens_recompute_t *rc)
{
    size_t done = 0;
    double deadline = ens_mono() + COPY_TURN_S;
    while (done < COPY_CELLS) {
        if (!rc->copying && rc->inflight < MAX_QUEUED) {
            rc->copying = next_job(rc);
            /* Its pages mapped on the pool first (fault_work); copied here
             * without faults when that is done. If it cannot be queued,
             * the pieces fault them in as before. */
            job_t *j = rc->copying;
            if (j) {
                j->fault_req.data = j;
                j->faulting = uv_queue_work(rc->loop, &j->fault_req, fault_work, fault_done) == 0;
            }
        }
        if (!rc->copying || rc->copying->faulting)
            break;
        const ens_task_t *t = ens_tasks_get(rc->tasks, rc->copying->task);
        size_t left = COPY_CELLS - done;
        if (!job_step(rc->copying, t->window, left < COPY_SLICE ? left : COPY_SLICE, &done)) {
            if (ens_mono() >= deadline)
                return;
            continue;
        }
        job_queue(rc, rc->copying);
        rc->copying = NULL;
        if (ens_mono() >= deadline)
            return; /* the idle handle is still on: the next turn goes on */
    }
    if (!rc->copying || rc->copying->faulting)
        uv_idle_stop(&rc->copier); /* fault_done or after_work starts it again */
}

static void on_copier(uv_idle_t *h)
{
    ens_loop_section_t was = ens_looptime_enter(ENS_LOOP_SELECT);
    copy_some(h->data);
    ens_looptime_enter(was);
}

void ens_recompute_start(ens_recompute_t *rc, ens_task_t *t)
{
    if (rc->stopping || !rc->copier_open)
        return;
    slot_t *sl = slot(rc, t->id);
    if (sl->busy) {
        sl->again = 1;
        return;
    }
    sl->rows_since = 0;
    if (ens_window_rows(t->window) == 0 || ens_window_models_held(t->window) == 0)
        return;
    if (rc->wait_len == rc->wait_cap) {
        size_t cap = rc->wait_cap ? 2 * rc->wait_cap : 16;
        uint32_t *q = ens_xcalloc(cap, sizeof(*q));
        for (size_t i = 0; i < rc->wait_len; i++)
            q[i] = rc->waiting[(rc->wait_head + i) % rc->wait_cap];
        free(rc->waiting);
        rc->waiting = q;
        rc->wait_cap = cap;
        rc->wait_head = 0;
    }
    rc->waiting[(rc->wait_head + rc->wait_len++) % rc->wait_cap] = t->id;
    sl->busy = 1;
    uv_idle_start(&rc->copier, on_copier);
}

void ens_recompute_start_all(ens_recompute_t *rc)
{
    for (uint32_t i = 0; i < ens_tasks_count(rc->tasks); i++)
        ens_recompute_start(rc, ens_tasks_get(rc->tasks, i));
}

void ens_recompute_joined(ens_recompute_t *rc, ens_task_t *t)
{
    slot_t *sl = slot(rc, t->id);
    size_t every = rc->conf->publish_every_labels;
    if (++sl->rows_since >= every && every > 0)
        ens_recompute_start(rc, t);
}

void ens_recompute_stop(ens_recompute_t *rc)
{
    if (!rc)
        return;
    rc->stopping = 1;
    /* Selections not yet on the pool are given up; one whose pages are
     * being touched there is freed when that is done (fault_done). */
    if (rc->copying && !rc->copying->faulting)
        job_free(rc->copying);
    rc->copying = NULL;
    rc->wait_len = 0;
    if (rc->copier_open) {
        rc->copier_open = 0;
        uv_idle_stop(&rc->copier);
        uv_close((uv_handle_t *)&rc->copier, NULL);
    }
}

int ens_recompute_inflight(const ens_recompute_t *rc)
{
    return rc->inflight;
}

void ens_recompute_task_status(const ens_recompute_t *rc, const ens_task_t *t, ens_mpw_t *w)
{
    const slot_t *sl = t->id < rc->nslots ? &rc->slots[t->id] : NULL;
    ens_mpw_cstr(w, "last_selection_ms");
    ens_mpw_double(w, sl ? sl->last_select_ms : 0);
    ens_mpw_cstr(w, "last_selection_age_s");
    if (sl && sl->last_select_at > 0)
        ens_mpw_double(w, ens_mono() - sl->last_select_at);
    else
        ens_mpw_nil(w);
}

double ens_recompute_last_seconds(const ens_recompute_t *rc, const ens_task_t *t)
{
    const slot_t *sl = t->id < rc->nslots ? &rc->slots[t->id] : NULL;
    return sl ? sl->last_select_ms / 1000 : 0;
}
