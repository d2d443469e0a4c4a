/* csv.c - benchmark of the wide-CSV parser (bench/csv).
 *
 * Workload: a CSV of M = 100 models and N = 100,000 rows built in memory
 * (item,label,<models>), labels A..J, one cell in 50 empty (not asked) and
 * one in 100 "?" (an abstention): 10 million cells, what `ensemblectl
 * select --csv` reads for a fleet of that size.
 *
 * It times, each as the median of RUNS runs (CLOCK_MONOTONIC):
 *  - ens_csv_parse (choice answers) and ens_csv_parse_open (open answers,
 *    normalize exact);
 *  - the floor: one pass over the same bytes that counts commas and
 *    newlines (what any parser must at least read), its count printed so
 *    that it cannot be optimized away.
 * The parse must give N rows and M models with the labels of the file: the
 * bench exits 1 if not.
 *
 * The last lines are `csv_ns_per_cell: T` and `ratio_to_byte_scan: R`
 * (choice parse over the floor).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensembled/csv.h"
#include "ensembled/data.h"
#include "ensembled/open.h"

enum { M = 100, N = 100000, RUNS = 5 };

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

/* The CSV text; *len gets its size. */
static char *make_csv(size_t *len)
{
    size_t cap = (size_t)(N + 1) * (M * 2 + 32), n = 0;
    char *b = malloc(cap);
    if (!b)
        abort();
    n += (size_t)sprintf(b + n, "item,label");
    for (int j = 0; j < M; j++)
        n += (size_t)sprintf(b + n, ",model-%03d", j);
    b[n++] = '\n';
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < N; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        char truth = (char)('A' + s % 10);
        n += (size_t)sprintf(b + n, "q%d,%c", i, truth);
        for (int j = 0; j < M; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            unsigned r = (unsigned)(s % 100);
            b[n++] = ',';
            if (r < 2)
                continue; /* not asked */
            b[n++] = r < 3 ? '?' : r < 60 ? truth : (char)('A' + s / 100 % 10);
        }
        b[n++] = '\n';
    }
    *len = n;
    return b;
}

/* Commas and newlines. */
static size_t byte_scan(const char *b, size_t len)
{
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        count += b[i] == ',' || b[i] == '\n';
    return count;
}

int main(void)
{
    size_t len;
    char *csv = make_csv(&len);
    printf("csv: %d models x %d rows, %.1f MB, %d cells\n", M, N, (double)len / 1e6, M * N);
    double t_parse[RUNS], t_open[RUNS], t_scan[RUNS];
    size_t scanned = 0;
    for (int r = 0; r < RUNS; r++) {
        char err[256];
        ens_data_t *d = NULL;
        double t0 = now_s();
        int rc = ens_csv_parse(csv, len, &d, err, sizeof(err));
        t_parse[r] = now_s() - t0;
        if (rc != 0 || !d || d->nrows != N || d->nmodels != M || d->nlabels != 10) {
            fprintf(stderr, "bench/csv: parse failed: %s\n", rc ? err : "wrong shape");
            return 1;
        }
        ens_data_destroy(&d);
        t0 = now_s();
        rc = ens_csv_parse_open(csv, len, ENS_NORM_EXACT, &d, err, sizeof(err));
        t_open[r] = now_s() - t0;
        if (rc != 0 || !d || d->nrows != N || d->nmodels != M) {
            fprintf(stderr, "bench/csv: open parse failed: %s\n", rc ? err : "wrong shape");
            return 1;
        }
        ens_data_destroy(&d);
        t0 = now_s();
        scanned += byte_scan(csv, len);
        t_scan[r] = now_s() - t0;
    }
    double p = median(t_parse, RUNS), o = median(t_open, RUNS), s = median(t_scan, RUNS);
    printf("parse (choice):       %8.1f ms\n", p * 1e3);
    printf("parse (open, exact):  %8.1f ms\n", o * 1e3);
    printf("byte scan (floor):    %8.1f ms  (%zu separators)\n", s * 1e3, scanned / RUNS);
    printf("csv_ns_per_cell: %.2f\n", p * 1e9 / ((double)M * N));
    printf("ratio_to_byte_scan: %.2f\n", p / s);
    free(csv);
    return 0;
}
