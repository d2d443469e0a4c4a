/* test_combine.c - combiners on hand-built datasets whose predictions are
 * worked out by hand in the comments, and the votes against an independent
 * reference implementation on random data. */
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
#include "ensembled/data.h"
#include "ensembled/err.h"
#include "testutil.h"

#define A ENS_SYM_ABSTAIN
#define MS ENS_SYM_MISSING

typedef struct {
    uint8_t y;
    uint8_t x[3];
    int times;
} spec_t;

static ens_data_t *build(const spec_t *s, size_t ns, size_t m, size_t L)
{
    size_t n = 0;
    for (size_t i = 0; i < ns; i++)
        n += (size_t)s[i].times;
    ens_data_t *d = ens_data_new(n, m, L);
    size_t r = 0;
    for (size_t i = 0; i < ns; i++)
        for (int t = 0; t < s[i].times; t++, r++) {
            d->y[r] = s[i].y;
            for (size_t j = 0; j < m; j++)
                d->x[j * n + r] = s[i].x[j];
        }
    return d;
}

static double my_accuracy(const ens_data_t *d, size_t j)
{
    size_t asked = 0, right = 0;
    for (size_t i = 0; i < d->nrows; i++) {
        uint8_t v = ens_data_col(d, j)[i];
        if (v == MS)
            continue;
        asked++;
        right += v == d->y[i];
    }
    return asked ? (double)right / (double)asked : 0.0;
}

static uint8_t pred3(const ens_combiner_t *c, uint8_t a, uint8_t b, uint8_t e)
{
    uint8_t x[3] = {a, b, e};
    return ens_combiner_predict(c, x);
}

/* D1 (labels 0,1,2; models m0 m1 m2), 14 rows:
 *   y=0: (0 0 0) x4      y=1: (1 2 2) x5     y=2: (2 0 1) x2
 *   y=0: (0 1 ?) x1      y=1: (1 2 1) x1     y=2: (0 2 2) x1
 * Accuracies: m0 13/14, m1 5/14, m2 6/14 (the abstention counts as wrong).
 * Label counts 0:5, 1:6, 2:3, so the most frequent label is 1. */
static const spec_t D1[] = {
    {0, {0, 0, 0}, 4}, {1, {1, 2, 2}, 5}, {2, {2, 0, 1}, 2},
    {0, {0, 1, A}, 1}, {1, {1, 2, 1}, 1}, {2, {0, 2, 2}, 1},
};

static void test_combine_votes_by_hand(void **state)
{
    (void)state;
    ens_data_t *d = build(D1, 6, 3, 3);
    assert_near(my_accuracy(d, 0), 13.0 / 14, 1e-12);
    assert_near(my_accuracy(d, 1), 5.0 / 14, 1e-12);
    assert_near(my_accuracy(d, 2), 6.0 / 14, 1e-12);
    size_t models[3] = {0, 1, 2};
    ens_combiner_t *v = ens_combiner_fit(d, models, 3, ENS_COMB_VOTE);
    ens_combiner_t *w = ens_combiner_fit(d, models, 3, ENS_COMB_WEIGHTED);
    assert_non_null(v);
    assert_non_null(w);
    assert_int_equal(ens_combiner_kind(v), ENS_COMB_VOTE);
    assert_int_equal(ens_combiner_kind(w), ENS_COMB_WEIGHTED);
    for (size_t i = 0; i < 3; i++)
        assert_near(ens_combiner_weight(w, i), my_accuracy(d, i), 1e-12);

    /* 1-1 tie between m0 and m1: m0 (13/14) is the more accurate. */
    assert_int_equal(pred3(v, 0, 1, A), 0);
    assert_int_equal(pred3(v, 1, 0, A), 1);
    /* 1-1 tie between m1 (5/14) and m2 (6/14): m2 wins. */
    assert_int_equal(pred3(v, A, 2, 1), 1);
    assert_int_equal(pred3(v, MS, 0, 2), 2);
    /* A majority beats the best model in a plain vote... */
    assert_int_equal(pred3(v, 2, 1, 1), 1);
    /* ...but not in the weighted vote: 13/14 > 5/14 + 6/14. */
    assert_int_equal(pred3(w, 2, 1, 1), 2);
    assert_int_equal(pred3(w, A, 2, 1), 1);
    /* Abstentions and missing answers never vote. */
    assert_int_equal(pred3(v, A, A, 2), 2);
    assert_int_equal(pred3(w, MS, A, 0), 0);
    /* Nobody votes: the most frequent training label. */
    assert_int_equal(pred3(v, A, A, A), 1);
    assert_int_equal(pred3(w, A, MS, A), 1);

    /* In-sample accuracy of the votes, by hand. Vote: (0 0 0) right x4,
     * (1 2 2) -> 2 wrong x5, (2 0 1) three-way tie -> m0's 2 right x2,
     * (0 1 ?) tie -> m0's 0 right, (1 2 1) -> 1 right, (0 2 2) -> 2 right:
     * 9/14. Weighted: (1 2 2) -> 1 (13 vs 11) right x5, (0 2 2) -> 0 (13 vs
     * 11) wrong, every other row right: 13/14. */
    assert_near(ens_combiner_train_accuracy(v), 9.0 / 14, 1e-12);
    assert_near(ens_combiner_train_accuracy(w), 13.0 / 14, 1e-12);
    assert_near(ens_combiner_accuracy(v, d), 9.0 / 14, 1e-12);
    assert_near(ens_combiner_accuracy(w, d), 13.0 / 14, 1e-12);
    ens_combiner_destroy(&v);
    ens_combiner_destroy(&w);
    assert_null(v);
    ens_combiner_destroy(&v);
    ens_data_destroy(&d);
}

static void test_combine_table_by_hand(void **state)
{
    (void)state;
    ens_data_t *d = build(D1, 6, 3, 3);
    size_t models[3] = {0, 1, 2};
    ens_combiner_t *t = ens_combiner_fit(d, models, 3, ENS_COMB_TABLE);
    assert_non_null(t);
    assert_int_equal(ens_combiner_kind(t), ENS_COMB_TABLE);
    /* Seen tuples: the label seen with them. (0 2 2) was seen with y=2 even
     * though the weighted vote says 0. */
    assert_int_equal(pred3(t, 0, 2, 2), 2);
    assert_int_equal(pred3(t, 1, 2, 2), 1);
    assert_int_equal(pred3(t, 0, 0, 0), 0);
    assert_int_equal(pred3(t, 2, 0, 1), 2);
    /* Unseen tuple: the weighted vote (13/14 for 2 vs 11/14 for 1). */
    assert_int_equal(pred3(t, 2, 1, 1), 2);
    /* Unseen, nobody votes: the most frequent label. */
    assert_int_equal(pred3(t, A, A, A), 1);
    ens_combiner_destroy(&t);
    ens_data_destroy(&d);
}

/* D2 (labels 0,1,2; models m0 m1), 16 rows:
 *   y=0: (0 0) x6   y=1: (1 2) x2   y=2: (1 2) x3   y=1: (1 ?) x5
 * Accuracies: m0 13/16, m1 9/16. When they disagree (pattern "01"), the
 * truth was m1's answer 3 times and m0's twice: the pattern table follows m1
 * even for tuples never seen, where the raw table backs off to the weighted
 * vote (m0). Label counts 0:6, 1:7, 2:3. */
static const spec_t D2[] = {
    {0, {0, 0, 0}, 6},
    {1, {1, 2, 0}, 2},
    {2, {1, 2, 0}, 3},
    {1, {1, A, 0}, 5},
};

static void test_combine_pattern_by_hand(void **state)
{
    (void)state;
    ens_data_t *d = build(D2, 4, 2, 3);
    assert_near(my_accuracy(d, 0), 13.0 / 16, 1e-12);
    assert_near(my_accuracy(d, 1), 9.0 / 16, 1e-12);
    size_t models[2] = {0, 1};
    ens_combiner_t *p = ens_combiner_fit(d, models, 2, ENS_COMB_PATTERN);
    ens_combiner_t *t = ens_combiner_fit(d, models, 2, ENS_COMB_TABLE);
    ens_combiner_t *v = ens_combiner_fit(d, models, 2, ENS_COMB_VOTE);
    assert_non_null(p);
    assert_int_equal(ens_combiner_kind(p), ENS_COMB_PATTERN);
    uint8_t x[2];
    /* Unseen tuple (0 1), pattern "01": pattern follows m1 -> 1; the raw
     * table backs off to the weighted vote -> m0's 0; vote: tie -> m0. */
    x[0] = 0, x[1] = 1;
    assert_int_equal(ens_combiner_predict(p, x), 1);
    assert_int_equal(ens_combiner_predict(t, x), 0);
    assert_int_equal(ens_combiner_predict(v, x), 0);
    /* Seen tuple (1 2): both tables say 2 (3 against 2). */
    x[0] = 1, x[1] = 2;
    assert_int_equal(ens_combiner_predict(p, x), 2);
    assert_int_equal(ens_combiner_predict(t, x), 2);
    /* Agreement pattern "00": the shared answer. */
    x[0] = 2, x[1] = 2;
    assert_int_equal(ens_combiner_predict(p, x), 2);
    /* Pattern "0?" seen with the truth in class 0: m0's answer. */
    x[0] = 2, x[1] = A;
    assert_int_equal(ens_combiner_predict(p, x), 2);
    /* Pattern "?0" never seen: back off to the weighted vote -> m1's 0. */
    x[0] = A, x[1] = 0;
    assert_int_equal(ens_combiner_predict(p, x), 0);
    /* Nobody votes: the most frequent label, 1. */
    x[0] = A, x[1] = A;
    assert_int_equal(ens_combiner_predict(p, x), 1);
    assert_int_equal(ens_combiner_predict(t, x), 1);
    assert_int_equal(ens_combiner_predict(v, x), 1);
    ens_combiner_destroy(&p);
    ens_combiner_destroy(&t);
    ens_combiner_destroy(&v);
    ens_data_destroy(&d);
}

/* Fitting on a subset in a given order: answers are passed in that order. */
static void test_combine_model_order(void **state)
{
    (void)state;
    ens_data_t *d = build(D1, 6, 3, 3);
    size_t models[2] = {2, 0}; /* m2 first, m0 second */
    ens_combiner_t *w = ens_combiner_fit(d, models, 2, ENS_COMB_WEIGHTED);
    assert_near(ens_combiner_weight(w, 0), 6.0 / 14, 1e-12);
    assert_near(ens_combiner_weight(w, 1), 13.0 / 14, 1e-12);
    uint8_t x[2] = {1, 2}; /* m2 says 1, m0 says 2 */
    assert_int_equal(ens_combiner_predict(w, x), 2);
    ens_combiner_destroy(&w);
    assert_null(ens_combiner_fit(d, models, 0, ENS_COMB_VOTE));
    size_t many[ENS_COMB_MAX_MODELS + 1] = {0};
    assert_null(ens_combiner_fit(d, many, ENS_COMB_MAX_MODELS + 1, ENS_COMB_VOTE));
    ens_comb_kind_t k;
    assert_int_equal(ens_comb_parse("pattern", &k), 0);
    assert_int_equal(k, ENS_COMB_PATTERN);
    assert_int_equal(ens_comb_parse("weighted", &k), 0);
    assert_int_equal(k, ENS_COMB_WEIGHTED);
    assert_int_equal(ens_comb_parse("nope", &k), ENS_EINVAL);
    assert_string_equal(ens_comb_name(ENS_COMB_TABLE), "table");
    ens_data_destroy(&d);
}

/* ---- random data against an independent vote ------------------------- */

static ens_data_t *random_data(tu_rng_t *r, size_t n, size_t m, size_t L, const double *acc)
{
    ens_data_t *d = ens_data_new(n, m, L);
    for (size_t i = 0; i < n; i++) {
        d->y[i] = (uint8_t)(tu_below(r, 4) == 0 ? 1 : tu_below(r, L));
        for (size_t j = 0; j < m; j++) {
            size_t z = tu_below(r, 20);
            uint8_t v = tu_uniform(r) < acc[j] ? d->y[i] : (uint8_t)tu_below(r, L);
            d->x[j * n + i] = z == 0 ? A : z == 1 ? MS : v;
        }
    }
    return d;
}

/* Reference vote: weights w (1 for a plain vote), ties to the label of the
 * most accurate model voting for a tied label, nobody -> prior. */
static uint8_t ref_vote(const uint8_t *x, size_t k, const double *w, const double *acc, size_t L,
                        uint8_t prior)
{
    double score[256] = {0};
    int any = 0;
    for (size_t i = 0; i < k; i++)
        if (x[i] < L) {
            score[x[i]] += w[i];
            any = 1;
        }
    if (!any)
        return prior;
    double best = 0;
    for (size_t l = 0; l < L; l++)
        best = score[l] > best ? score[l] : best;
    int who = -1;
    for (size_t i = 0; i < k; i++)
        if (x[i] < L && score[x[i]] == best && (who < 0 || acc[i] > acc[who]))
            who = (int)i;
    return x[who];
}

static void test_combine_votes_vs_reference(void **state)
{
    (void)state;
    tu_rng_t r;
    tu_seed(&r, 8080);
    size_t compared = 0;
    for (int trial = 0; trial < 30; trial++) {
        size_t m = 2 + tu_below(&r, 5), L = 2 + tu_below(&r, 4), n = 300;
        double acc[8];
        for (size_t j = 0; j < m; j++)
            acc[j] = 0.3 + 0.6 * tu_uniform(&r);
        ens_data_t *tr = random_data(&r, n, m, L, acc);
        ens_data_t *te = random_data(&r, n, m, L, acc);
        size_t models[8], k = m;
        double tacc[8], ones[8];
        for (size_t j = 0; j < m; j++) {
            models[j] = j;
            tacc[j] = my_accuracy(tr, j);
            ones[j] = 1;
        }
        /* Skip draws where the tie rule itself would be ambiguous. */
        int ambiguous = 0;
        for (size_t a = 0; a < m; a++)
            for (size_t b = 0; b < a; b++)
                ambiguous |= tacc[a] == tacc[b];
        size_t yc[256] = {0};
        for (size_t i = 0; i < n; i++)
            yc[tr->y[i]]++;
        uint8_t prior = 0;
        for (size_t l = 1; l < L; l++)
            if (yc[l] > yc[prior])
                prior = (uint8_t)l;
        for (size_t l = 0; l < L; l++)
            ambiguous |= l != prior && yc[l] == yc[prior];
        if (ambiguous) {
            ens_data_destroy(&tr);
            ens_data_destroy(&te);
            continue;
        }
        for (int kind = ENS_COMB_VOTE; kind <= ENS_COMB_WEIGHTED; kind++) {
            ens_combiner_t *c = ens_combiner_fit(tr, models, k, (ens_comb_kind_t)kind);
            const double *w = kind == ENS_COMB_VOTE ? ones : tacc;
            for (int set = 0; set < 2; set++) {
                const ens_data_t *d = set ? te : tr;
                size_t right = 0;
                for (size_t i = 0; i < n; i++) {
                    uint8_t x[8];
                    for (size_t j = 0; j < m; j++)
                        x[j] = ens_data_col(d, j)[i];
                    uint8_t want = ref_vote(x, k, w, tacc, L, prior);
                    uint8_t got = ens_combiner_predict(c, x);
                    assert_int_equal(got, want);
                    right += want == d->y[i];
                    compared++;
                }
                double a = (double)right / (double)n;
                assert_near(ens_combiner_accuracy(c, d), a, 1e-12);
                if (!set)
                    assert_near(ens_combiner_train_accuracy(c), a, 1e-12);
            }
            ens_combiner_destroy(&c);
        }
        /* Every kind: ens_combiner_accuracy is the fraction predicted right;
         * fit_best keeps a kind with the best training accuracy. */
        double best_train = -1;
        for (int kind = 0; kind < ENS_COMB_COUNT; kind++) {
            ens_combiner_t *c = ens_combiner_fit(tr, models, k, (ens_comb_kind_t)kind);
            size_t right = 0;
            for (size_t i = 0; i < n; i++) {
                uint8_t x[8];
                for (size_t j = 0; j < m; j++)
                    x[j] = ens_data_col(te, j)[i];
                right += ens_combiner_predict(c, x) == te->y[i];
            }
            assert_near(ens_combiner_accuracy(c, te), (double)right / (double)n, 1e-12);
            double ta = ens_combiner_train_accuracy(c);
            assert_true(ta >= 0 && ta <= 1);
            best_train = ta > best_train ? ta : best_train;
            ens_combiner_destroy(&c);
        }
        ens_combiner_t *b = ens_combiner_fit_best(tr, models, k);
        assert_non_null(b);
        assert_near(ens_combiner_train_accuracy(b), best_train, 1e-12);
        ens_combiner_destroy(&b);
        ens_data_destroy(&tr);
        ens_data_destroy(&te);
    }
    assert_true(compared > 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_combine_votes_by_hand),
        cmocka_unit_test(test_combine_table_by_hand),
        cmocka_unit_test(test_combine_pattern_by_hand),
        cmocka_unit_test(test_combine_model_order),
        cmocka_unit_test(test_combine_votes_vs_reference),
    };
    return cmocka_run_group_tests_name("combine", tests, NULL, NULL);
}
