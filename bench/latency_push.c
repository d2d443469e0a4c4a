/* bench/latency_push.c - what a joined row costs the event loop in the
 * windows of bench/latency.py: TASKS windows of MODELS models and ROWS rows,
 * full, each row answered by ASKED models drawn at random, and rows pushed
 * into tasks drawn at random, as a flood of queries asking a few models
 * each joins them. Every push into a full window expires its oldest row.
 *
 * The windows together are far larger than the caches (64 x 256 x 20,000
 * cells: 328 MB), so the cost per row is memory traffic: the columns (and
 * count tables) of the models in the row pushed and in the row expired.
 * Timed by the thread's CPU time, as the daemon times its loop turns.
 *
 * Usage: latency_push [TASKS MODELS ROWS ASKED PUSHES]  (64 256 20000 8 1000000)
 * Last lines: `push_ns_per_row: N` (the mean) and `message_us_p99: U` (the
 * 99th percentile of the CPU time a block of 50 consecutive rows took: one
 * ingest message of 100 events, predictions and labels, joins about 50
 * rows). The line above them gives the median, p99.9 and maximum.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensembled/window.h"

#define LABELS 3
#define MESSAGE_ROWS 50

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A row of `models` answers of which `asked` are not missing. */
static uint8_t row(uint8_t *x, uint32_t models, uint32_t asked)
{
    uint8_t y = (uint8_t)(rnd() % LABELS);
    memset(x, ENS_SYM_MISSING, models);
    for (uint32_t k = 0; k < asked;) {
        uint32_t m = rnd() % models;
        if (x[m] != ENS_SYM_MISSING)
            continue;
        x[m] = rnd() % 4 == 0 ? (uint8_t)(rnd() % LABELS) : y;
        k++;
    }
    return y;
}

int main(int argc, char **argv)
{
    uint32_t tasks = argc > 1 ? (uint32_t)atoi(argv[1]) : 64;
    uint32_t models = argc > 2 ? (uint32_t)atoi(argv[2]) : 256;
    size_t rows = argc > 3 ? (size_t)atol(argv[3]) : 20000;
    uint32_t asked = argc > 4 ? (uint32_t)atoi(argv[4]) : 8;
    size_t pushes = argc > 5 ? (size_t)atol(argv[5]) : 1000000;
    if (tasks == 0 || models == 0 || models > ENS_MAX_MODELS || rows == 0 || asked == 0 ||
        asked > models || pushes < MESSAGE_ROWS) {
        fprintf(stderr, "usage: latency_push [TASKS MODELS ROWS ASKED PUSHES]\n");
        return 2;
    }
    ens_window_t **w = calloc(tasks, sizeof(*w));
    uint8_t x[ENS_MAX_MODELS];
    if (!w)
        return 1;
    for (uint32_t t = 0; t < tasks; t++) {
        w[t] = ens_window_new(rows, ENS_MAX_MODELS);
        for (uint32_t l = 0; l < LABELS; l++) {
            char name[2] = {(char)('A' + l), 0};
            ens_window_label(w[t], name, 1);
        }
        for (uint32_t m = 0; m < models; m++) {
            char name[16];
            snprintf(name, sizeof(name), "model%03u", m);
            ens_window_model(w[t], name, strlen(name));
        }
        for (size_t i = 0; i < rows; i++) {
            uint8_t y = row(x, models, asked);
            ens_window_push(w[t], y, x, models, (double)i);
        }
    }
    size_t blocks = pushes / MESSAGE_ROWS, b = 0;
    double total = 0, *block = calloc(blocks, sizeof(double));
    if (!block)
        return 1;
    for (size_t done = 0; done + MESSAGE_ROWS <= pushes; done += MESSAGE_ROWS) {
        /* The rows are drawn before the clock starts: only pushes are timed. */
        static uint8_t xs[MESSAGE_ROWS][ENS_MAX_MODELS];
        uint8_t ys[MESSAGE_ROWS];
        uint32_t ts[MESSAGE_ROWS];
        for (size_t k = 0; k < MESSAGE_ROWS; k++) {
            ys[k] = row(xs[k], models, asked);
            ts[k] = rnd() % tasks;
        }
        double t0 = cpu_s();
        for (size_t k = 0; k < MESSAGE_ROWS; k++)
            if (ens_window_push(w[ts[k]], ys[k], xs[k], models, (double)(rows + done + k)) != 0)
                return 1;
        block[b] = cpu_s() - t0;
        total += block[b++];
    }
    size_t timed = blocks * MESSAGE_ROWS;
    qsort(block, blocks, sizeof(double), cmp_double);
    printf("%u windows x %u models x %zu rows, %u answers a row: %zu rows pushed in %.3f s "
           "of CPU time\n",
           tasks, models, rows, asked, timed, total);
    printf("CPU time per block of %d rows: p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.0f us\n",
           MESSAGE_ROWS, block[blocks / 2] * 1e6, block[blocks * 99 / 100] * 1e6,
           block[blocks * 999 / 1000] * 1e6, block[blocks - 1] * 1e6);
    printf("push_ns_per_row: %.0f\n", total / (double)timed * 1e9);
    printf("message_us_p99: %.0f\n", block[blocks * 99 / 100] * 1e6);
    for (uint32_t t = 0; t < tasks; t++)
        ens_window_destroy(&w[t]);
    free(w);
    free(block);
    return 0;
}
