/* bench/pipeline.c - what the final choice (choice.h) costs the pipeline.
 *
 * The daemon runs ens_pipeline_run on every task's window every
 * recompute.interval (10 s by default). The final choice adds one
 * ens_choose on the pool, whose folds also give the honest accuracy (which
 * then no longer selects on two halves of its own). This bench times, on
 * ens_sample fleets of M models
 * and W rows with the default options, the whole pipeline and that
 * ens_choose call (median of 3 runs each), and prints the pipeline's time
 * without it ("before") and the ratio.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensembled/choice.h"
#include "ensembled/pipeline.h"
#include "ensembled/sample.h"

#define RUNS 3

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v)
{
    qsort(v, RUNS, sizeof(double), cmp_double);
    return v[RUNS / 2];
}

static int bench(size_t models, size_t rows, size_t classes)
{
    ens_family_t fam[4];
    for (size_t f = 0; f < 4; f++) {
        snprintf(fam[f].name, sizeof(fam[f].name), "f%zu", f);
        fam[f].count = models / 4;
        fam[f].accuracy = 0.55 + 0.05 * (double)f;
        fam[f].rho = 0.5;
    }
    ens_sample_opts_t so = {fam, 4, rows, classes, 0.2, 1};
    char err[256];
    ens_data_t *d = ens_sample(&so, err, sizeof(err));
    if (!d) {
        fprintf(stderr, "bench/pipeline: ens_sample: %s\n", err);
        return 1;
    }
    ens_pipeline_opts_t o;
    ens_pipeline_opts_default(&o);
    ens_pipeline_in_t in = {.snap = d};
    double tp[RUNS], tc[RUNS];
    for (int i = 0; i < RUNS; i++) {
        ens_pipeline_t *p = NULL;
        double t0 = now();
        if (ens_pipeline_run(&in, &o, &p, err, sizeof(err)) < 0) {
            fprintf(stderr, "bench/pipeline: %s\n", err);
            ens_data_destroy(&d);
            return 1;
        }
        tp[i] = now() - t0;
        ens_pipeline_destroy(&p);
        t0 = now();
        ens_choice_t ch;
        ens_choose(d, &o.select, &ch);
        tc[i] = now() - t0;
    }
    double p = median(tp), c = median(tc);
    printf("M=%3zu W=%7zu L=%zu  pipeline %8.3f s  choice %8.3f s  before %8.3f s  ratio %.2f\n",
           models, rows, classes, p, c, p - c, p / (p - c));
    ens_data_destroy(&d);
    return 0;
}

int main(void)
{
    static const size_t sizes[][3] = {
        {20, 1000, 4}, {20, 10000, 4}, {20, 100000, 4}, {64, 100000, 2}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        if (bench(sizes[i][0], sizes[i][1], sizes[i][2]))
            return 1;
    return 0;
}
