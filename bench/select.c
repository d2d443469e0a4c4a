/* select.c - benchmark of greedy-mi selection (bench/select).
 *
 * Workload: M = 100 models, W = 100,000 rows, binary labels, budget K = 10,
 * min_gain_bits very negative so that the greedy always runs its K steps.
 * The data come from ens_sample: ten families of correlated models, the
 * columns interleaved across families so that any prefix of M models mixes
 * every family.
 *
 * It times, each as the median of RUNS runs (CLOCK_MONOTONIC):
 *  - ens_select, greedy-mi, with the plug-in estimator (the paper's) and
 *    with the held-out one (the default), pruning off; and, for reference,
 *    ens_select with its defaults (held-out, pruning on);
 *  - the floor: a plain pass that reads the same K * M * W prediction bytes
 *    the greedy reads (every column, K times) and sums them, eight bytes at
 *    a time (its checksum is printed, so it cannot be optimized away), as
 *    the median of FLOOR_RUNS runs since it takes milliseconds;
 *  - a naive greedy that, for every candidate j, hashes each row's whole
 *    tuple (x_S, x_j) in a uthash table to count joint frequencies and takes
 *    the plug-in MI from them. It must pick the same models as the library
 *    with the plug-in estimator: the bench exits 1 if not.
 * Then it times the library for W in 25k..200k and M in 25..200, printing
 * the time per K * M * W so that linearity shows.
 *
 * It also times the whole pipeline the daemon runs on a window
 * (ens_pipeline_run: pool, selection with pruning, hysteresis, final choice,
 * honest accuracy, bounds) with the daemon's defaults but budget K, on the
 * same data, and within it the final choice (ens_choose) and the bounds
 * (ens_pipeline_bounds) called alone; `pipeline_ratio_to_kernel` is its time
 * over the held-out kernel's (the estimator the pipeline selects with).
 *
 * The last lines are `pipeline_ratio_to_kernel: R`, `ratio_to_floor: R`
 * (plug-in selection over the floor) and `speedup_vs_naive: S` (naive over
 * plug-in selection). bench/select-release runs it built both ways.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uthash.h>

#include "ensembled/choice.h"
#include "ensembled/data.h"
#include "ensembled/err.h"
#include "ensembled/mi.h"
#include "ensembled/pipeline.h"
#include "ensembled/sample.h"
#include "ensembled/select.h"
#include "ensembled/xalloc.h"

#define K 10          /* greedy budget */
#define BASE_M 100    /* models in the headline workload */
#define BASE_W 100000 /* rows in the headline workload */
#define MAX_M 200     /* largest M of the series: the master matrix's width */
#define MAX_W 200000  /* largest W of the series: the master matrix's height */
#define NFAM 10       /* families in the master matrix */
#define RUNS 3        /* each timing is the median of this many runs */
#define FLOOR_RUNS 15 /* the floor takes milliseconds: more runs for a stable median */
#define TIE_EPS 1e-12 /* scores closer than this are a tie for the naive greedy */

/* ---- timing ----------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Median of t[0..n), sorting t in place (n is small). */
static double median(double *t, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t k = i; k > 0 && t[k - 1] > t[k]; k--) {
            double s = t[k];
            t[k] = t[k - 1];
            t[k - 1] = s;
        }
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* ---- data ------------------------------------------------------------- */

/* The master matrix: MAX_W rows, MAX_M models in NFAM families of MAX_M /
 * NFAM, accuracies 0.60 .. 0.87 and within-family correlations 0.2 .. 0.74. */
static ens_data_t *make_master(void)
{
    ens_family_t fam[NFAM];
    for (size_t f = 0; f < NFAM; f++) {
        snprintf(fam[f].name, sizeof(fam[f].name), "fam%zu", f);
        fam[f].count = MAX_M / NFAM;
        fam[f].accuracy = 0.60 + 0.03 * (double)f;
        fam[f].rho = 0.20 + 0.06 * (double)((f * 7) % NFAM);
    }
    ens_sample_opts_t o = {
        .families = fam,
        .nfamilies = NFAM,
        .rows = MAX_W,
        .classes = 2,
        .global_rho = 0.1,
        .seed = 20240601,
    };
    char err[256];
    ens_data_t *d = ens_sample(&o, err, sizeof(err));
    if (!d) {
        fprintf(stderr, "bench/select: ens_sample: %s\n", err);
        exit(1);
    }
    return d;
}

/* The first w rows of the first m models in interleaved order: model i of
 * the result is model i / NFAM of family i % NFAM in the master. */
static ens_data_t *make_subset(const ens_data_t *master, size_t w, size_t m)
{
    const size_t per = MAX_M / NFAM;
    ens_data_t *d = ens_data_new(w, m, master->nlabels);
    memcpy(d->y, master->y, w);
    for (size_t i = 0; i < m; i++) {
        size_t src = (i % NFAM) * per + i / NFAM;
        memcpy(d->x + i * w, ens_data_col(master, src), w);
        ens_data_set_model_name(d, i, master->model_names[src]);
    }
    for (size_t l = 0; l < master->nlabels; l++)
        ens_data_set_label_name(d, l, master->label_names[l]);
    return d;
}

/* ---- the library ------------------------------------------------------ */

/* Median time of ens_select (greedy-mi, budget K, every step taken) with
 * estimator est; the selection of the last run goes to *out. Pruning is off:
 * it fits combiners (combine.c), not information, and would cut the K picks
 * the naive greedy is checked against; time_prune() times it apart. */
static double time_library(const ens_data_t *d, ens_estimator_t est, ens_selection_t *out)
{
    ens_select_opts_t o;
    ens_select_opts_default(&o);
    o.strategy = ENS_STRAT_GREEDY_MI;
    o.estimator = est;
    o.budget = K;
    o.min_gain_bits = -1e300;
    o.prune = 0;
    double t[RUNS];
    for (size_t i = 0; i < RUNS; i++) {
        char err[256];
        double t0 = now_s();
        int rc = ens_select(d, &o, out, err, sizeof(err));
        t[i] = now_s() - t0;
        if (rc < 0) {
            fprintf(stderr, "bench/select: ens_select: %s (%s)\n", err, ens_strerror(rc));
            exit(1);
        }
        if (out->n != K) {
            fprintf(stderr, "bench/select: ens_select took %zu models, not %d\n", out->n, K);
            exit(1);
        }
    }
    return median(t, RUNS);
}

/* Median time of the default ens_select (held-out, pruning on) with budget K
 * and every greedy step taken: the information greedy plus the prune. */
static double time_prune(const ens_data_t *d)
{
    ens_select_opts_t o;
    ens_select_opts_default(&o);
    o.budget = K;
    o.min_gain_bits = -1e300;
    double t[RUNS];
    for (size_t i = 0; i < RUNS; i++) {
        char err[256];
        ens_selection_t out;
        double t0 = now_s();
        int rc = ens_select(d, &o, &out, err, sizeof(err));
        t[i] = now_s() - t0;
        if (rc < 0) {
            fprintf(stderr, "bench/select: ens_select: %s (%s)\n", err, ens_strerror(rc));
            exit(1);
        }
    }
    return median(t, RUNS);
}

/* ---- the pipeline ----------------------------------------------------- */

/* What the pipeline's stages cost, medians of RUNS runs: the whole of
 * ens_pipeline_run, and the final choice and the bounds called alone on the
 * same window (the pool is the whole window here), the bounds of set[0..K). */
typedef struct {
    double whole, choice, bounds;
} pipe_times_t;

static void time_pipeline(const ens_data_t *d, const size_t *set, pipe_times_t *out)
{
    ens_pipeline_opts_t o;
    ens_pipeline_opts_default(&o);
    o.select.budget = K;
    ens_pipeline_in_t in = {.snap = d};
    double tw[RUNS], tc[RUNS], tb[RUNS];
    for (size_t i = 0; i < RUNS; i++) {
        char err[256];
        ens_pipeline_t *p = NULL;
        double t0 = now_s();
        int rc = ens_pipeline_run(&in, &o, &p, err, sizeof(err));
        tw[i] = now_s() - t0;
        if (rc < 0) {
            fprintf(stderr, "bench/select: ens_pipeline_run: %s (%s)\n", err, ens_strerror(rc));
            exit(1);
        }
        ens_pipeline_destroy(&p);
        ens_choice_t ch;
        t0 = now_s();
        ens_choose(d, &o.select, &ch);
        tc[i] = now_s() - t0;
        ens_bounds_t bo;
        t0 = now_s();
        ens_pipeline_bounds(d, set, K, 2.0, &bo);
        tb[i] = now_s() - t0;
    }
    out->whole = median(tw, RUNS);
    out->choice = median(tc, RUNS);
    out->bounds = median(tb, RUNS);
}

/* ---- the floor -------------------------------------------------------- */

/* Adds the four 16-bit lanes of v. */
static uint64_t lanes16_sum(uint64_t v)
{
    const uint64_t m32 = UINT64_C(0x0000FFFF0000FFFF);
    v = (v & m32) + ((v >> 16) & m32);
    return (v & 0xFFFFFFFFu) + (v >> 32);
}

/* Sum of p[0..n), eight bytes per word in 16-bit lanes (SWAR). A plain
 * byte-at-a-time loop is not vectorized by GCC at -O2 and runs about six
 * times slower, which would flatter the library; this is roughly what a
 * vectorizing compiler makes of that loop. A lane gains at most 2 * 255 per
 * word, so two accumulators over 128 pairs of words (2 KiB) cannot overflow. */
static uint64_t sum_bytes(const uint8_t *p, size_t n)
{
    const uint64_t m = UINT64_C(0x00FF00FF00FF00FF);
    uint64_t total = 0;
    size_t i = 0;
    while (n - i >= 16) {
        size_t end = n - i > 2048 ? i + 2048 : n;
        uint64_t a = 0, b = 0;
        for (; end - i >= 16; i += 16) {
            uint64_t w, v;
            memcpy(&w, p + i, 8);
            memcpy(&v, p + i + 8, 8);
            a += (w & m) + ((w >> 8) & m);
            b += (v & m) + ((v >> 8) & m);
        }
        total += lanes16_sum(a) + lanes16_sum(b);
    }
    for (; i < n; i++)
        total += p[i];
    return total;
}

/* The plain pass: sums every byte of the m columns, k times over. It is the
 * least any greedy must do (read each candidate column once per step). */
static uint64_t floor_pass(const ens_data_t *d, size_t k)
{
    uint64_t sum = 0;
    for (size_t step = 0; step < k; step++)
        for (size_t j = 0; j < d->nmodels; j++)
            sum += sum_bytes(ens_data_col(d, j), d->nrows);
    return sum;
}

/* Median time of the floor; exits if its sum disagrees with a byte loop. */
static double time_floor(const ens_data_t *d, uint64_t *checksum)
{
    uint64_t plain = 0;
    for (size_t i = 0; i < d->nmodels * d->nrows; i++)
        plain += d->x[i];
    double t[FLOOR_RUNS];
    for (size_t i = 0; i < FLOOR_RUNS; i++) {
        double t0 = now_s();
        *checksum = floor_pass(d, K);
        t[i] = now_s() - t0;
    }
    if (*checksum != K * plain) {
        fprintf(stderr, "bench/select: floor sum %llu, expected %llu\n",
                (unsigned long long)*checksum, (unsigned long long)(K * plain));
        exit(1);
    }
    return median(t, FLOOR_RUNS);
}

/* ---- the naive greedy ------------------------------------------------- */

/* One joint cell: the tuple (x_S, x_j) and its count per true label. */
typedef struct {
    uint8_t key[K + 1];
    uint32_t total;
    UT_hash_handle hh;
    uint32_t cnt[]; /* nlabels counts */
} naive_cell_t;

static double xlog2x(double v)
{
    return v > 0 ? v * log2(v) : 0.0;
}

/* Plug-in I(Y; X_S, X_j) over the rows alive under S (dead[r] == 0) where j
 * was asked. tup holds each row's x_S in its first k bytes (K + 1 per row);
 * byte k is overwritten with x_j. */
static double naive_score(const ens_data_t *d, uint8_t *tup, const uint8_t *dead, size_t k,
                          size_t j)
{
    const uint8_t *col = ens_data_col(d, j);
    const size_t L = d->nlabels;
    naive_cell_t *tab = NULL, *e, *tmp;
    uint32_t ycnt[256] = {0};
    size_t n = 0;
    for (size_t r = 0; r < d->nrows; r++) {
        if (dead[r] || col[r] == ENS_SYM_MISSING)
            continue;
        uint8_t *t = tup + r * (K + 1);
        t[k] = col[r];
        HASH_FIND(hh, tab, t, k + 1, e);
        if (!e) {
            e = ens_xcalloc(1, sizeof(*e) + L * sizeof(uint32_t));
            memcpy(e->key, t, k + 1);
            HASH_ADD(hh, tab, key, k + 1, e);
        }
        e->total++;
        e->cnt[d->y[r]]++;
        ycnt[d->y[r]]++;
        n++;
    }
    double s_xy = 0, s_x = 0, s_y = 0;
    HASH_ITER(hh, tab, e, tmp)
    {
        s_x += xlog2x(e->total);
        for (size_t l = 0; l < L; l++)
            s_xy += xlog2x(e->cnt[l]);
        HASH_DEL(tab, e);
        free(e);
    }
    for (size_t l = 0; l < L; l++)
        s_y += xlog2x(ycnt[l]);
    return n ? log2((double)n) + (s_xy - s_x - s_y) / (double)n : 0.0;
}

/* The library's order: higher score, then higher single-model score, then
 * the smaller name. Scores within TIE_EPS tie, since the naive sums the same
 * terms in another order. */
static int naive_better(const ens_data_t *d, const double *single, double s, size_t j, double bs,
                        size_t b)
{
    if (b == SIZE_MAX)
        return 1;
    if (fabs(s - bs) > TIE_EPS)
        return s > bs;
    if (fabs(single[j] - single[b]) > TIE_EPS)
        return single[j] > single[b];
    return strcmp(d->model_names[j], d->model_names[b]) < 0;
}

/* Greedy plug-in MI over full tuples: K steps, stores the picks in models. */
static void naive_select(const ens_data_t *d, size_t *models)
{
    const size_t n = d->nrows, m = d->nmodels;
    uint8_t *tup = ens_xcalloc(n ? n : 1, K + 1);
    uint8_t *dead = ens_xcalloc(n ? n : 1, 1);
    uint8_t *used = ens_xcalloc(m, 1);
    double *single = ens_xcalloc(m, sizeof(double));
    for (size_t k = 0; k < K; k++) {
        size_t best = SIZE_MAX;
        double best_s = 0;
        for (size_t j = 0; j < m; j++) {
            if (used[j])
                continue;
            double s = naive_score(d, tup, dead, k, j);
            if (k == 0)
                single[j] = s;
            if (naive_better(d, single, s, j, best_s, best)) {
                best = j;
                best_s = s;
            }
        }
        models[k] = best;
        used[best] = 1;
        const uint8_t *col = ens_data_col(d, best);
        for (size_t r = 0; r < n; r++) {
            if (col[r] == ENS_SYM_MISSING)
                dead[r] = 1;
            tup[r * (K + 1) + k] = col[r];
        }
    }
    free(single);
    free(used);
    free(dead);
    free(tup);
}

static double time_naive(const ens_data_t *d, size_t *models)
{
    double t[RUNS];
    for (size_t i = 0; i < RUNS; i++) {
        double t0 = now_s();
        naive_select(d, models);
        t[i] = now_s() - t0;
    }
    return median(t, RUNS);
}

/* ---- report ----------------------------------------------------------- */

static void print_models(const ens_data_t *d, const char *what, const size_t *models, size_t n)
{
    printf("  %-8s", what);
    for (size_t i = 0; i < n; i++)
        printf(" %s", d->model_names[models[i]]);
    printf("\n");
}

/* Times both estimators on the first w rows of the first m models and prints
 * one line of the linearity table. */
static void series_line(const ens_data_t *master, size_t w, size_t m)
{
    ens_data_t *d = make_subset(master, w, m);
    ens_selection_t sel;
    double tp = time_library(d, ENS_EST_PLUGIN, &sel);
    double th = time_library(d, ENS_EST_HELDOUT, &sel);
    double units = (double)K * (double)m * (double)w;
    printf("  W=%6zu M=%3zu  plugin %7.3f s %5.2f ns   heldout %7.3f s %5.2f ns\n", w, m, tp,
           tp / units * 1e9, th, th / units * 1e9);
    ens_data_destroy(&d);
}

static int same_models(const size_t *a, const size_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

int main(void)
{
    static const size_t ws[] = {25000, 50000, 100000, 200000};
    static const size_t ms[] = {25, 50, 100, 200};

    ens_data_t *master = make_master();
    ens_data_t *d = make_subset(master, BASE_W, BASE_M);
    printf("bench/select: greedy-mi, K=%d, M=%d models, W=%d rows, %zu labels, "
           "median of %d runs\n",
           K, BASE_M, BASE_W, d->nlabels, RUNS);

    ens_selection_t plug, held;
    size_t naive[K];
    uint64_t checksum = 0;
    double t_plug = time_library(d, ENS_EST_PLUGIN, &plug);
    double t_held = time_library(d, ENS_EST_HELDOUT, &held);
    double t_prune = time_prune(d);
    double t_floor = time_floor(d, &checksum);
    double t_naive = time_naive(d, naive);
    pipe_times_t tp;
    time_pipeline(d, held.models, &tp);

    printf("library plugin:  %8.4f s   I(Y; X_S) = %.4f bits\n", t_plug, plug.mi_bits[K - 1]);
    printf("library heldout: %8.4f s   I(Y; X_S) = %.4f bits\n", t_held, held.mi_bits[K - 1]);
    printf("default (heldout + prune, not the kernel): %8.4f s\n", t_prune);
    printf("pipeline (ens_pipeline_run, defaults, budget %d): %8.4f s   of which final choice "
           "%.4f s, bounds %.4f s\n",
           K, tp.whole, tp.choice, tp.bounds);
    printf("floor (sum of K*M*W = %.0f bytes): %8.4f s   checksum %llu\n",
           (double)K * BASE_M * BASE_W, t_floor, (unsigned long long)checksum);
    printf("naive (uthash over (x_S, x_j) tuples, plug-in): %8.4f s\n", t_naive);
    printf("picks:\n");
    print_models(d, "plugin", plug.models, K);
    print_models(d, "naive", naive, K);
    print_models(d, "heldout", held.models, K);
    if (!same_models(plug.models, naive, K)) {
        printf("cross-check FAILED: the naive greedy and the library (plugin) disagree\n");
        return 1;
    }
    printf("cross-check: naive and library (plugin) pick the same %d models\n", K);

    printf("linearity (time per K*M*W in ns; M=%d for the W series, W=%d for the M series):\n",
           BASE_M, BASE_W);
    for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++)
        series_line(master, ws[i], BASE_M);
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
        series_line(master, BASE_W, ms[i]);

    printf("heldout_ratio_to_floor: %.2f\n", t_held / t_floor);
    printf("pipeline_ratio_to_kernel: %.2f\n", tp.whole / t_held);
    printf("ratio_to_floor: %.2f\n", t_plug / t_floor);
    printf("speedup_vs_naive: %.2f\n", t_naive / t_plug);
    ens_data_destroy(&d);
    ens_data_destroy(&master);
    return 0;
}
