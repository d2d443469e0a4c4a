/* bench/snapshot.c - how long a snapshot holds the event loop.
 *
 * Two tasks of 256 models and 50,000 rows each (25.6 million window
 * cells), answers drawn at random. The snapshot is serialized twice: in one
 * go (what a clean stop does, and what every snapshot did before it was cut
 * into pieces) and a piece per loop turn as the daemon does it, the
 * longest turn timed (the beginning, which records names and versions, is
 * a turn of its own). The last line is `snapshot_longest_turn_over_whole:
 * R`: the loop's longest stall over the one-go serialization. Timings are
 * the median of 3 runs (CLOCK_MONOTONIC); a busy machine decides them, so
 * they are printed, never checked.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state_int.h"

#define TASKS 2
#define MODELS 256
#define ROWS 50000
#define RUNS 3

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void fill(ens_tasks_t *tasks)
{
    uint64_t r = 0x9e3779b97f4a7c15u;
    uint8_t x[MODELS];
    for (int k = 0; k < TASKS; k++) {
        char name[32];
        snprintf(name, sizeof(name), "task-%d", k);
        ens_task_t *t = ens_tasks_intern(tasks, name, strlen(name));
        for (int m = 0; m < MODELS; m++) {
            snprintf(name, sizeof(name), "model-%d", m);
            ens_task_model(t, name, strlen(name));
        }
        ens_task_label(t, "yes", 3);
        ens_task_label(t, "no", 2);
        for (int i = 0; i < ROWS; i++) {
            for (int m = 0; m < MODELS; m++) {
                r = r * 6364136223846793005u + 1442695040888963407u;
                x[m] = (uint8_t)(r >> 62) % 3 == 2 ? ENS_SYM_MISSING : (uint8_t)(r >> 63);
            }
            ens_task_restore_row(t, (uint8_t)(i & 1), x, MODELS, 1.7e9 + i, i % 20 == 0);
        }
    }
}

int main(void)
{
    ens_config_t conf;
    ens_config_defaults(&conf);
    conf.task.window_rows = ROWS;
    conf.max_models = MODELS;
    ens_tasks_t *tasks = ens_tasks_new(&conf);
    fill(tasks);
    ens_state_t s;
    memset(&s, 0, sizeof(s));
    s.tasks = tasks;
    s.conf = &conf;
    double whole[RUNS], longest[RUNS];
    size_t turns = 0, bytes = 0;
    for (int run = 0; run < RUNS; run++) {
        ens__snap_t snap;
        size_t cells = 0;
        double t0 = now_s();
        ens__snapshot_begin(&s, 1, &snap);
        ens__snapshot_step(&s, &snap, SIZE_MAX, SIZE_MAX, 0, &cells);
        whole[run] = now_s() - t0;
        bytes = snap.size;
        ens__snapshot_free(&snap);

        t0 = now_s();
        ens__snapshot_begin(&s, 1, &snap);
        longest[run] = now_s() - t0;
        turns = 1;
        for (int done = 0; !done; turns++) {
            t0 = now_s();
            done = ens__snapshot_step(&s, &snap, ENS_STATE_SNAP_CELLS, ENS_STATE_SNAP_SLICE,
                                      t0 + ENS_STATE_SNAP_TURN_S, &cells);
            double dt = now_s() - t0;
            if (dt > longest[run])
                longest[run] = dt;
        }
        ens__snapshot_free(&snap);
    }
    qsort(whole, RUNS, sizeof(double), cmp_double);
    qsort(longest, RUNS, sizeof(double), cmp_double);
    printf("%d tasks x %d models x %d rows: %.1f MB of snapshot\n", TASKS, MODELS, ROWS,
           (double)bytes / 1e6);
    printf("one go: %.1f ms on the loop\n", whole[RUNS / 2] * 1e3);
    printf("in pieces of %u cells or %.1f ms (clock read every %u cells): %zu turns, longest "
           "%.2f ms\n",
           ENS_STATE_SNAP_CELLS, ENS_STATE_SNAP_TURN_S * 1e3, ENS_STATE_SNAP_SLICE, turns,
           longest[RUNS / 2] * 1e3);
    printf("snapshot_longest_turn_over_whole: %.4f\n", longest[RUNS / 2] / whole[RUNS / 2]);
    ens_tasks_destroy(&tasks);
    return 0;
}
