/* test_real.c - the product's promise on real fleets: on MMLU-Pro (28 LLMs)
 * and Winogrande (11 LLMs), the ensemble greedy MI selects with default
 * options is, held out, at least as accurate as the best single model and as
 * the top-K ensemble (up to 0.002). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ensembled/combine.h"
#include "ensembled/csv.h"
#include "ensembled/data.h"
#include "ensembled/err.h"
#include "ensembled/eval.h"
#include "ensembled/select.h"
#include "testutil.h"

#define SPLITS 20
#define TEST_FRAC 0.5
#define SEED 7
#define SLACK 0.002

static ens_eval_t eval(const ens_data_t *d, ens_strategy_t s, size_t budget)
{
    ens_select_opts_t o;
    ens_select_opts_default(&o);
    o.strategy = s;
    o.budget = budget;
    ens_eval_t e;
    memset(&e, 0, sizeof(e));
    int rc = ens_evaluate(d, &o, SPLITS, TEST_FRAC, SEED, &e);
    if (rc)
        print_message("ens_evaluate(%s, %zu): %d %s\n", ens_strategy_name(s), budget, rc,
                      ens_strerror(rc));
    assert_int_equal(rc, 0);
    assert_int_equal(e.splits, SPLITS);
    return e;
}

static void promise(const char *name)
{
    ens_data_t *d = tu_load_real(name);
    /* Sanity of the evaluation itself: the best single model's held-out
     * accuracy is close to the best in-sample accuracy computed here. */
    double best_acc = 0;
    for (size_t j = 0; j < d->nmodels; j++) {
        size_t right = 0, asked = 0;
        for (size_t i = 0; i < d->nrows; i++) {
            uint8_t v = ens_data_col(d, j)[i];
            asked += v != ENS_SYM_MISSING;
            right += v == d->y[i];
        }
        double a = asked ? (double)right / (double)asked : 0;
        best_acc = a > best_acc ? a : best_acc;
    }
    ens_eval_t single = eval(d, ENS_STRAT_TOPK, 1);
    double single_acc = single.acc[ENS_COMB_WEIGHTED].mean;
    print_message("%s: best single model %.4f in sample, %.4f held out\n", name, best_acc,
                  single_acc);
    assert_true(fabs(single_acc - best_acc) < 0.02);

    int failures = 0;
    for (size_t K = 2; K <= 5; K++) {
        ens_eval_t g = eval(d, ENS_STRAT_GREEDY_MI, K);
        ens_eval_t t = eval(d, ENS_STRAT_TOPK, K);
        double gp = g.acc[ENS_EVAL_PUBLISHED].mean;
        double tw = t.acc[ENS_COMB_WEIGHTED].mean;
        double bar = (single_acc > tw ? single_acc : tw) - SLACK;
        print_message("%s K=%zu: greedy-mi published %.4f (sd %.4f, size %.2f) | top-%zu "
                      "weighted %.4f published %.4f | single %.4f | %s\n",
                      name, K, gp, g.acc[ENS_EVAL_PUBLISHED].sd, g.size.mean, K, tw,
                      t.acc[ENS_EVAL_PUBLISHED].mean, single_acc, gp >= bar ? "ok" : "BELOW");
        failures += gp < bar;
    }
    ens_data_destroy(&d);
    assert_int_equal(failures, 0);
}

static void test_real_mmlupro_greedy_beats_topk(void **state)
{
    (void)state;
    promise("mmlupro_28llm.csv");
}

static void test_real_winogrande_greedy_beats_topk(void **state)
{
    (void)state;
    promise("winogrande_routerbench_11llm.csv");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_mmlupro_greedy_beats_topk),
        cmocka_unit_test(test_real_winogrande_greedy_beats_topk),
    };
    return cmocka_run_group_tests_name("real", tests, NULL, NULL);
}
