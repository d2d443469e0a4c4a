/* test_pipeline.c - the selection pipeline the daemon publishes: the pool,
 * hysteresis, honest accuracy and exploration figures, each checked against
 * a computation done here by hand. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ensembled/err.h"
#include "ensembled/pipeline.h"
#include "testutil.h"

/* n rows, binary labels; model j answers right with probability acc[j] and
 * is asked on the first asked[j] rows (all when asked[j] >= n). */
static ens_data_t *fleet(size_t n, const double *acc, const size_t *asked, size_t m, uint64_t seed)
{
    ens_data_t *d = ens_data_new(n, m, 2);
    tu_rng_t rng;
    tu_seed(&rng, seed);
    for (size_t r = 0; r < n; r++) {
        d->y[r] = (uint8_t)tu_below(&rng, 2);
        for (size_t j = 0; j < m; j++) {
            int right = tu_uniform(&rng) < acc[j];
            if (r < asked[j])
                d->x[j * n + r] = right ? d->y[r] : (uint8_t)(1 - d->y[r]);
        }
    }
    for (size_t j = 0; j < m; j++) {
        char name[32];
        snprintf(name, sizeof(name), "model-%zu", j);
        ens_data_set_model_name(d, j, name);
    }
    return d;
}

static ens_pipeline_t *run(const ens_pipeline_in_t *in, const ens_pipeline_opts_t *o)
{
    ens_pipeline_t *p = NULL;
    char err[256];
    int rc = ens_pipeline_run(in, o, &p, err, sizeof(err));
    if (rc != 0)
        fail_msg("pipeline: %s", err);
    return p;
}

static int str_is(ens_str_t s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static void test_pipeline_pool_excludes_by_reason(void **state)
{
    (void)state;
    const double acc[5] = {0.8, 0.7, 0.65, 0.9, 0.85};
    const size_t asked[5] = {1000, 1000, 1000, 10, 1000};
    ens_data_t *d = fleet(1000, acc, asked, 5, 1);
    double seen[5] = {1, 1, 1, 1, 7200};
    ens_pipeline_opts_t o;
    ens_pipeline_opts_default(&o);
    o.min_rows = 50;
    o.retire_after = 3600;
    o.explore_rate = 0.1;
    ens_pipeline_in_t in = {d, seen, NULL, NULL, 0, NULL};
    ens_pipeline_t *p = run(&in, &o);
    const ens_body_t *b = ens_pipeline_body(p);

    assert_int_equal(b->nwindow, 5);
    for (size_t m = 0; m < 5; m++) {
        size_t rows = 0;
        for (size_t r = 0; r < d->nrows; r++)
            rows += ens_data_col(d, m)[r] != ENS_SYM_MISSING;
        assert_int_equal(b->window[m].rows, rows);
        assert_true(isnan(b->window[m].age));
    }
    assert_int_equal(b->window[3].excluded, ENS_EXCL_COVERAGE);
    assert_int_equal(b->window[4].excluded, ENS_EXCL_RETIRED);
    for (size_t m = 0; m < 3; m++)
        assert_int_equal(b->window[m].excluded, ENS_EXCL_NONE);
    /* The ensemble comes from the pool only. */
    for (size_t i = 0; i < b->nmodels; i++)
        assert_false(str_is(b->models[i], "model-3") || str_is(b->models[i], "model-4"));
    /* Exploration asks every model but the retired one. */
    assert_int_equal(b->nexplore, 4);
    for (size_t i = 0; i < b->nexplore; i++)
        assert_false(str_is(b->explore_models[i], "model-4"));
    assert_near(b->explore_extra, 0.1 * (double)(4 - b->nmodels), 1e-12);
    assert_int_equal(b->window_rows, 1000);
    assert_int_equal(b->budget, o.select.budget);
    ens_pipeline_destroy(&p);
    assert_null(p);
    ens_data_destroy(&d);
}

static void test_pipeline_empty_pool_fails(void **state)
{
    (void)state;
    const double acc[2] = {0.8, 0.7};
    const size_t asked[2] = {10, 20};
    ens_data_t *d = fleet(100, acc, asked, 2, 2);
    ens_pipeline_opts_t o;
    ens_pipeline_opts_default(&o);
    o.min_rows = 50;
    ens_pipeline_in_t in = {d, NULL, NULL, NULL, 0, NULL};
    ens_pipeline_t *p = (ens_pipeline_t *)&in; /* must be reset to NULL */
    char err[256] = "";
    assert_int_equal(ens_pipeline_run(&in, &o, &p, err, sizeof(err)), ENS_EEMPTY);
    assert_null(p);
    assert_non_null(strstr(err, "no model in the pool"));
    ens_data_destroy(&d);
}

/* Runs with the published set prev (names) and returns the result. */
static ens_pipeline_t *run_prev(const ens_data_t *d, ens_pipeline_opts_t *o,
                                const char *const *prev, size_t n)
{
    ens_str_t names[8];
    for (size_t i = 0; i < n; i++) {
        names[i].ptr = prev[i];
        names[i].len = strlen(prev[i]);
    }
    ens_pipeline_in_t in = {d, NULL, NULL, names, n, NULL};
    return run(&in, o);
}

static int same_models(const ens_body_t *b, const char *const *names, size_t n)
{
    if (b->nmodels != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!str_is(b->models[i], names[i]))
            return 0;
    return 1;
}

static void test_pipeline_hysteresis_reasons(void **state)
{
    (void)state;
    const double acc[5] = {0.85, 0.8, 0.75, 0.6, 0.55};
    const size_t asked[5] = {3000, 3000, 3000, 3000, 3000};
    ens_data_t *d = fleet(3000, acc, asked, 5, 3);
    ens_pipeline_opts_t o;
    ens_pipeline_opts_default(&o);
    o.min_rows = 1;
    o.select.strategy = ENS_STRAT_TOPK;
    o.select.budget = 2;

    ens_pipeline_t *p = run_prev(d, &o, NULL, 0);
    const ens_body_t *b = ens_pipeline_body(p);
    assert_int_equal(b->reason, ENS_REASON_FIRST);
    assert_true(b->replaced);
    static const char *const top2[] = {"model-0", "model-1"};
    assert_true(same_models(b, top2, 2));
    ens_pipeline_destroy(&p);

    p = run_prev(d, &o, top2, 2);
    assert_int_equal(ens_pipeline_body(p)->reason, ENS_REASON_SAME);
    assert_false(ens_pipeline_body(p)->replaced);
    ens_pipeline_destroy(&p);

    static const char *const gone[] = {"model-0", "model-9"};
    p = run_prev(d, &o, gone, 2);
    assert_int_equal(ens_pipeline_body(p)->reason, ENS_REASON_LEFT);
    assert_true(ens_pipeline_body(p)->replaced);
    assert_true(same_models(ens_pipeline_body(p), top2, 2));
    ens_pipeline_destroy(&p);

    static const char *const three[] = {"model-0", "model-1", "model-2"};
    p = run_prev(d, &o, three, 3);
    assert_int_equal(ens_pipeline_body(p)->reason, ENS_REASON_BUDGET);
    ens_pipeline_destroy(&p);

    /* A worse published set is kept while the fresh one is not better by
     * min_improvement_bits, in its own order, with its own steps. */
    static const char *const worse[] = {"model-4", "model-3"};
    o.min_improvement_bits = 100;
    p = run_prev(d, &o, worse, 2);
    b = ens_pipeline_body(p);
    assert_int_equal(b->reason, ENS_REASON_KEPT);
    assert_false(b->replaced);
    assert_true(same_models(b, worse, 2));
    size_t m4 = 4;
    double bits4 = 0;
    assert_int_equal(ens_mi(d, &m4, 1, o.select.estimator, &bits4, NULL), 0);
    assert_near(b->steps[0].mi_bits, bits4, 1e-12);
    ens_pipeline_destroy(&p);

    o.min_improvement_bits = -1e9;
    p = run_prev(d, &o, worse, 2);
    assert_int_equal(ens_pipeline_body(p)->reason, ENS_REASON_MORE_INFO);
    assert_true(same_models(ens_pipeline_body(p), top2, 2));
    ens_pipeline_destroy(&p);
    ens_data_destroy(&d);
}

/* The best single model and majority vote, held out as the pipeline
 * defines it (train on rows of one parity, test on the other, both ways),
 * computed here by hand for a fleet where every model answers every row. */
static void hand_accuracy(const ens_data_t *d, double *single, double *vote)
{
    size_t n = d->nrows, m = d->nmodels;
    *single = *vote = 0;
    for (size_t h = 0; h < 2; h++) {
        size_t best = 0, best_right = 0;
        for (size_t j = 0; j < m; j++) {
            size_t right = 0;
            for (size_t r = h; r < n; r += 2)
                right += ens_data_col(d, j)[r] == d->y[r];
            if (right > best_right)
                best = j, best_right = right;
        }
        size_t s = 0, v = 0, tested = 0;
        for (size_t r = 1 - h; r < n; r += 2, tested++) {
            s += ens_data_col(d, best)[r] == d->y[r];
            size_t ones = 0;
            for (size_t j = 0; j < m; j++)
                ones += ens_data_col(d, j)[r] == 1;
            v += (uint8_t)(2 * ones > m) == d->y[r];
        }
        *single += (double)s / (double)tested / 2;
        *vote += (double)v / (double)tested / 2;
    }
}

static void test_pipeline_honest_accuracy_matches_hand(void **state)
{
    (void)state;
    const double acc[3] = {0.9, 0.75, 0.6};
    const size_t asked[3] = {4001, 4001, 4001};
    ens_data_t *d = fleet(4001, acc, asked, 3, 4);
    ens_pipeline_opts_t o;
    ens_pipeline_opts_default(&o);
    o.select.strategy = ENS_STRAT_TOPK;
    o.select.budget = 3;
    ens_pipeline_in_t in = {d, NULL, NULL, NULL, 0, NULL};
    ens_pipeline_t *p = run(&in, &o);
    const ens_body_t *b = ens_pipeline_body(p);
    double single, vote;
    hand_accuracy(d, &single, &vote);
    assert_near(b->acc_single, single, 1e-12);
    assert_near(b->acc_vote, vote, 1e-12);
    assert_true(b->acc_combiner >= 0 && b->acc_combiner <= 1);
    assert_true(b->acc_in_sample >= 0 && b->acc_in_sample <= 1);
    /* Three models: Fano's bound and both floors are figures, not nil. */
    assert_true(b->fano_error_lower >= 0 && b->fano_error_lower <= 1);
    assert_true(isfinite(b->copula_error_floor) && isfinite(b->copula_error_floor_ensemble));
    ens_pipeline_destroy(&p);
    ens_data_destroy(&d);
}

/* The decision table in the body: one key cell per model, each a label or
 * class index or -1/-2, decisions in range. */
static void test_pipeline_table_cells(void **state)
{
    (void)state;
    ens_data_t *d = tu_load_real("winogrande_routerbench_11llm.csv");
    ens_pipeline_opts_t o;
    ens_pipeline_opts_default(&o);
    o.select.strategy = ENS_STRAT_TOPK;
    o.select.budget = 4;
    ens_pipeline_in_t in = {d, NULL, NULL, NULL, 0, NULL};
    ens_pipeline_t *p = run(&in, &o);
    const ens_body_t *b = ens_pipeline_body(p);
    assert_int_equal(b->nlabels, d->nlabels);
    for (size_t l = 0; l < b->nlabels; l++)
        assert_true(str_is(b->labels[l], d->label_names[l]));
    for (size_t e = 0; e < b->ntable; e++) {
        for (size_t i = 0; i < b->nmodels; i++)
            assert_true(b->table[e].key[i] >= ENS_BODY_MISSING &&
                        b->table[e].key[i] <
                            (int)(b->nlabels > b->nmodels ? b->nlabels : b->nmodels));
        assert_true(b->table[e].decision >= 0);
    }
    for (size_t i = 0; i < b->nmodels; i++)
        assert_true(b->weights[i] > 0.5 && b->weights[i] <= 1);
    ens_pipeline_destroy(&p);
    ens_data_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_pool_excludes_by_reason),
        cmocka_unit_test(test_pipeline_empty_pool_fails),
        cmocka_unit_test(test_pipeline_hysteresis_reasons),
        cmocka_unit_test(test_pipeline_honest_accuracy_matches_hand),
        cmocka_unit_test(test_pipeline_table_cells),
    };
    return cmocka_run_group_tests_name("pipeline", tests, NULL, NULL);
}
