/* recompute.h - selection off the loop thread.
 *
 * A started selection waits its turn (first asked, first served); the loop
 * thread then copies the task's window into an immutable snapshot, at most
 * a million window cells a loop turn (rows that leave the window before
 * their piece is copied are left out, rows joined since the start are not
 * taken), and queues a job on the libuv thread pool, at most 3 at a time
 * (each holds its snapshot; the pool's fourth thread stays free for the
 * state's writes). The worker runs the selection pipeline
 * (ensembled/pipeline.h) over the snapshot and its own copies of the
 * settings and of the published set, at a lower priority than the loop
 * (niceness +10); back on the loop thread the result goes to the `done`
 * hook (the daemon publishes it), and the job is freed on the pool. Ingest
 * keeps running meanwhile. At most one job per task waits or runs; a start
 * asked for meanwhile is remembered and run after it.
 */
#ifndef ENSEMBLED_RECOMPUTE_H
#define ENSEMBLED_RECOMPUTE_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "ensembled/mpw.h"
#include "ensembled/pipeline.h"
#include "task.h"

typedef struct {
    /* The published set of t by name (borrowed for the call; n 0: none). */
    void (*published)(void *ud, const ens_task_t *t, const ens_str_t **names, size_t *n);
    /* A finished selection of t (borrowed for the call). */
    void (*done)(void *ud, ens_task_t *t, const ens_pipeline_t *p);
    void *ud;
} ens_recompute_hooks_t;

typedef struct ens_recompute_s ens_recompute_t;

/* tasks and conf are borrowed (conf until the next set_config). */
ens_recompute_t *ens_recompute_new(uv_loop_t *loop, const ens_tasks_t *tasks,
                                   const ens_config_t *conf, const ens_recompute_hooks_t *hooks);
/* Only once no job is in flight (after the loop has run dry). */
void ens_recompute_destroy(ens_recompute_t **rp);
void ens_recompute_set_config(ens_recompute_t *rc, const ens_config_t *conf);

/* Runs a selection of t on the calling thread, with exactly the inputs a
 * job gets, and hands the result to `done` (ensemblectl select --body).
 * Returns 0, or a negative ENS_E* with one line in err. */
int ens_recompute_run_sync(ens_recompute_t *rc, ens_task_t *t, char *err, size_t errlen);

/* Starts a selection of t unless one runs (then it runs after). */
void ens_recompute_start(ens_recompute_t *rc, ens_task_t *t);
void ens_recompute_start_all(ens_recompute_t *rc);
/* A row joined in t: publish.every_labels of them start a selection. */
void ens_recompute_joined(ens_recompute_t *rc, ens_task_t *t);
/* No new job starts after this, those waiting or being copied are given
 * up, and those on the pool finish without `done`. */
void ens_recompute_stop(ens_recompute_t *rc);
/* Jobs on the thread pool. */
int ens_recompute_inflight(const ens_recompute_t *rc);

/* t's last_selection_ms and last_selection_age_s (into an open map). */
/* How long t's last selection took (0: none yet); in `done`, that one's. */
double ens_recompute_last_seconds(const ens_recompute_t *rc, const ens_task_t *t);

void ens_recompute_task_status(const ens_recompute_t *rc, const ens_task_t *t, ens_mpw_t *w);

#endif
