/* memory.c - what a window cell and a pending query cost in memory
 * (bench/memory), the figures of docs/overload.md.
 *
 * The heap in use (glibc's mallinfo2: bytes in use in the arenas plus
 * mmapped blocks) is read before and after building, with the library's
 * own code:
 *  - a window of R = 100,000 rows filled with M = 8, 64 and 256 models
 *    answering every row, with and without a cost per answer;
 *  - a join holding P = 100,000 pending queries (predictions without their
 *    label) of K = 1, 5 and 20 answers each, under 12-byte query keys.
 * Printed: bytes per window cell (row x model), per row, and per pending
 * query and per answer. The last lines are `window_bytes_per_cell: B`
 * (M = 64, no cost) and `join_bytes_per_pending_query_k5: B`.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ensembled/data.h"
#include "ensembled/join.h"
#include "ensembled/window.h"

enum { R = 100000, P = 100000 };

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Bytes per cell of a full window of M models. */
static double window_cell(size_t m, int costs)
{
    size_t before = heap_in_use();
    ens_window_t *w = ens_window_new(R, ENS_MAX_MODELS);
    char name[32];
    for (size_t j = 0; j < m; j++) {
        snprintf(name, sizeof(name), "model-%03zu", j);
        ens_window_model(w, name, strlen(name));
    }
    ens_window_label(w, "A", 1);
    ens_window_label(w, "B", 1);
    uint8_t x[ENS_MAX_MODELS];
    double c[ENS_MAX_MODELS];
    for (size_t j = 0; j < m; j++)
        x[j] = (uint8_t)(j & 1), c[j] = 0.01 * (double)(j + 1);
    for (size_t i = 0; i < R; i++)
        ens_window_push_costs(w, (uint8_t)(i & 1), x, costs ? c : NULL, m, (double)i);
    size_t used = heap_in_use() - before;
    ens_window_destroy(&w);
    printf("window  M=%3zu %-10s %10.1f MiB  %6.2f bytes/cell  %7.1f bytes/row\n", m,
           costs ? "with cost" : "no cost", (double)used / 1048576.0,
           (double)used / ((double)R * (double)m), (double)used / R);
    return (double)used / ((double)R * (double)m);
}

static void no_emit(void *ud, uint8_t y, const ens_join_pred_t *p, size_t n, double ts)
{
    (void)ud, (void)y, (void)p, (void)n, (void)ts;
}

/* Bytes per pending query of K answers. */
static double join_query(size_t k)
{
    size_t before = heap_in_use();
    ens_join_t *j = ens_join_new(P, 3600, no_emit, NULL);
    ens_join_pred_t preds[32];
    for (size_t a = 0; a < k; a++)
        preds[a] = (ens_join_pred_t){.model = (uint16_t)a, .sym = 1, .cost = -1, .key = 0};
    char key[16];
    for (size_t q = 0; q < P; q++) {
        int len = snprintf(key, sizeof(key), "squery-%05zu", q);
        ens_join_predictions(j, key, (size_t)len, preds, k, 1.0);
    }
    size_t used = heap_in_use() - before;
    if (ens_join_pending(j) != P)
        fprintf(stderr, "bench/memory: %zu pending, want %d\n", ens_join_pending(j), P);
    ens_join_destroy(&j);
    printf("join    K=%2zu %22.1f MiB  %6.1f bytes/query  (%zu-byte answers)\n", k,
           (double)used / 1048576.0, (double)used / P, sizeof(ens_join_pred_t));
    return (double)used / P;
}

int main(void)
{
    double cell = 0, q5 = 0;
    size_t ms[] = {8, 64, 256};
    for (size_t i = 0; i < 3; i++) {
        double b = window_cell(ms[i], 0);
        window_cell(ms[i], 1);
        if (ms[i] == 64)
            cell = b;
    }
    size_t ks[] = {1, 5, 20};
    for (size_t i = 0; i < 3; i++) {
        double b = join_query(ks[i]);
        if (ks[i] == 5)
            q5 = b;
    }
    printf("window_bytes_per_cell: %.2f\n", cell);
    printf("join_bytes_per_pending_query_k5: %.1f\n", q5);
    return 0;
}
