/* test_partial.c - a model asked on a subset of the rows (new, rate-limited
 * or explored) must not make the published ensemble worse than leaving it
 * out.
 *
 * Reference: the same evaluation (ens_evaluate, greedy-mi with default
 * options, 20 splits of 50 %, published figure) on the fleet without the
 * model. The partial column is a real model's answers with all but a random
 * share of its rows marked not asked; test rows where it is missing are
 * scored like the others (the combiner falls back to the models asked), as
 * a router would. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ensembled/data.h"
#include "ensembled/eval.h"
#include "ensembled/rng.h"
#include "ensembled/select.h"
#include "testutil.h"

#define SPLITS 20
#define SLACK 0.005

static double published(const ens_data_t *d, size_t budget)
{
    ens_select_opts_t o;
    ens_select_opts_default(&o);
    o.budget = budget;
    ens_eval_t e;
    assert_int_equal(ens_evaluate(d, &o, SPLITS, 0.5, 7, &e), 0);
    return e.acc[ENS_EVAL_PUBLISHED].mean;
}

/* d's columns but `model`, and (with) that model again, last, asked on a
 * share of the rows only. */
static ens_data_t *fleet(const ens_data_t *d, size_t model, int with, double share, uint64_t seed)
{
    size_t cols[ENS_SELECT_MAX], n = 0;
    for (size_t j = 0; j < d->nmodels; j++)
        if (j != model)
            cols[n++] = j;
    if (with)
        cols[n++] = model;
    ens_data_t *f = ens_data_columns(d, cols, n);
    if (with) {
        ens_rng_t r;
        ens_rng_seed(&r, seed);
        uint8_t *col = f->x + (n - 1) * f->nrows;
        for (size_t i = 0; i < f->nrows; i++)
            if (ens_rng_uniform(&r) >= share)
                col[i] = ENS_SYM_MISSING;
    }
    return f;
}

/* The most (best) or least accurate model of d. */
static size_t extreme(const ens_data_t *d, int best)
{
    size_t m = 0;
    for (size_t j = 1; j < d->nmodels; j++) {
        double a = ens_data_accuracy(d, j), b = ens_data_accuracy(d, m);
        if (best ? a > b : a < b)
            m = j;
    }
    return m;
}

static int compare(const char *name, const ens_data_t *d, size_t model, double share)
{
    ens_data_t *without = fleet(d, model, 0, share, 1);
    ens_data_t *with = fleet(d, model, 1, share, 1);
    int failures = 0;
    for (size_t K = 2; K <= 4; K++) {
        double a = published(without, K), b = published(with, K);
        print_message("%-34s K=%zu: without %.4f, with %s on %.0f%% of rows %.4f | %s\n", name, K,
                      a, d->model_names[model], 100 * share, b, b >= a - SLACK ? "ok" : "WORSE");
        failures += b < a - SLACK;
    }
    ens_data_destroy(&without);
    ens_data_destroy(&with);
    return failures;
}

static void test_partial_best_model(void **state)
{
    (void)state;
    ens_data_t *d = tu_load_real("winogrande_routerbench_11llm.csv");
    int failures = compare("winogrande, best model partial", d, extreme(d, 1), 0.2);
    ens_data_destroy(&d);
    assert_int_equal(failures, 0);
}

static void test_partial_worst_model(void **state)
{
    (void)state;
    ens_data_t *d = tu_load_real("winogrande_routerbench_11llm.csv");
    int failures = compare("winogrande, worst model partial", d, extreme(d, 0), 0.3);
    ens_data_destroy(&d);
    assert_int_equal(failures, 0);
}

/* A weak fleet: MMLU-Pro's 15 least accurate models on 500 random items,
 * the most accurate of them asked on a quarter of the rows. */
static void test_partial_weak_fleet(void **state)
{
    (void)state;
    ens_data_t *d = tu_load_real("mmlupro_28llm.csv");
    size_t idx[64], perm_n = d->nrows;
    for (size_t j = 0; j < d->nmodels; j++)
        idx[j] = j;
    for (size_t i = 1; i < d->nmodels; i++)
        for (size_t j = i; j > 0 && ens_data_accuracy(d, idx[j]) < ens_data_accuracy(d, idx[j - 1]);
             j--) {
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    size_t *perm = malloc(perm_n * sizeof(size_t));
    assert_non_null(perm);
    for (size_t i = 0; i < perm_n; i++)
        perm[i] = i;
    ens_rng_t r;
    ens_rng_seed(&r, 1);
    ens_rng_shuffle(&r, perm, perm_n);
    ens_data_t *rows = ens_data_rows(d, perm, 500);
    ens_data_t *weak = ens_data_columns(rows, idx, 15);
    int failures = compare("mmlupro weakest 15, best partial", weak, extreme(weak, 1), 0.25);
    free(perm);
    ens_data_destroy(&weak);
    ens_data_destroy(&rows);
    ens_data_destroy(&d);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partial_best_model),
        cmocka_unit_test(test_partial_worst_model),
        cmocka_unit_test(test_partial_weak_fleet),
    };
    return cmocka_run_group_tests_name("partial", tests, NULL, NULL);
}
