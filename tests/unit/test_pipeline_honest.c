/* test_pipeline_honest.c - the pipeline's honest accuracy (the body's
 * `accuracy`: combiner, majority_vote, best_single) against a brute-force
 * reference built here from the library's public calls: where the final
 * choice runs, explicit 5-fold cross-validation (select and fit on each
 * training part, score every held-out row); where it does not (the paper's
 * settings), the two halves (select and fit on the even rows, score the
 * odd ones, and the other way round). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ensembled/choice.h"
#include "ensembled/combine.h"
#include "ensembled/pipeline.h"
#include "ensembled/rng.h"
#include "ensembled/select.h"
#include "testutil.h"

/* n rows, nl labels, m models in families of fam (models j and j + fam
 * share one: on a row where the family's mood is bad each loses 0.2 of its
 * accuracy, else gains it). Model j answers right with probability acc[j]
 * and is not asked with probability miss[j]. */
static ens_data_t *fleet(size_t n, size_t nl, size_t m, size_t fam, const double *acc,
                         const double *miss, uint64_t seed)
{
    ens_data_t *d = ens_data_new(n, m, nl);
    tu_rng_t rng;
    tu_seed(&rng, seed);
    int bad[16];
    for (size_t r = 0; r < n; r++) {
        d->y[r] = (uint8_t)tu_below(&rng, nl);
        for (size_t f = 0; f < fam; f++)
            bad[f] = tu_uniform(&rng) < 0.5;
        for (size_t j = 0; j < m; j++) {
            double p = acc[j] + (bad[j % fam] ? -0.2 : 0.2);
            int right = tu_uniform(&rng) < p;
            uint8_t wrong = (uint8_t)((d->y[r] + 1 + tu_below(&rng, nl - 1)) % nl);
            if (tu_uniform(&rng) >= miss[j])
                d->x[j * n + r] = right ? d->y[r] : wrong;
        }
    }
    for (size_t j = 0; j < m; j++) {
        char name[32];
        snprintf(name, sizeof(name), "model-%zu", j);
        ens_data_set_model_name(d, j, name);
    }
    return d;
}

static ens_pipeline_t *run(const ens_data_t *d, const ens_pipeline_opts_t *o)
{
    ens_pipeline_in_t in = {d, NULL, NULL, NULL, 0, NULL};
    ens_pipeline_t *p = NULL;
    char err[256];
    if (ens_pipeline_run(&in, o, &p, err, sizeof(err)) != 0)
        fail_msg("pipeline: %s", err);
    return p;
}

/* Whether c, over models[0..k) of d, predicts row r right. */
static int right_at(const ens_combiner_t *c, const ens_data_t *d, const size_t *models, size_t k,
                    size_t r)
{
    uint8_t x[ENS_COMB_MAX_MODELS];
    for (size_t i = 0; i < k; i++)
        x[i] = ens_data_col(d, models[i])[r];
    return ens_combiner_predict(c, x) == d->y[r];
}

/* Per row of d (n rows) the hits of each procedure when the row is held
 * out: [0] the selection with ens_combiner_fit_best, [1] majority vote over
 * the selection, [1 + k] the k most accurate models with the weighted vote
 * (k = 1..kmax). Every row is judged once: no row of these fleets carries an
 * exploration flag, so every row counts as explored and is scored with the
 * combiner's fallback over the models not asked. */
static void brute_folds(const ens_data_t *d, const ens_select_opts_t *o, size_t kmax, uint8_t *hits)
{
    size_t n = d->nrows, *perm = malloc(n * sizeof(size_t)), *tr = malloc(n * sizeof(size_t));
    assert_non_null(perm);
    assert_non_null(tr);
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    ens_rng_t rng;
    ens_rng_seed(&rng, ENS_CHOICE_SEED);
    ens_rng_shuffle(&rng, perm, n);
    for (size_t f = 0; f < ENS_CHOICE_FOLDS; f++) {
        size_t lo = f * n / ENS_CHOICE_FOLDS, hi = (f + 1) * n / ENS_CHOICE_FOLDS, nt = 0;
        for (size_t i = 0; i < n; i++)
            if (i < lo || i >= hi)
                tr[nt++] = perm[i];
        ens_data_t *train = ens_data_rows(d, tr, nt);
        ens_selection_t s, top;
        assert_int_equal(ens_select(train, o, &s, NULL, 0), 0);
        ens_select_opts_t t = *o;
        t.strategy = ENS_STRAT_TOPK;
        t.budget = kmax;
        assert_int_equal(ens_select(train, &t, &top, NULL, 0), 0);
        ens_combiner_t *c[2 + ENS_SELECT_MAX];
        c[0] = ens_combiner_fit_best(train, s.models, s.n);
        c[1] = ens_combiner_fit(train, s.models, s.n, ENS_COMB_VOTE);
        for (size_t k = 1; k <= kmax; k++)
            c[1 + k] = ens_combiner_fit(train, top.models, k, ENS_COMB_WEIGHTED);
        for (size_t i = lo; i < hi; i++) {
            size_t r = perm[i];
            hits[0 * n + r] = (uint8_t)right_at(c[0], d, s.models, s.n, r);
            hits[1 * n + r] = (uint8_t)right_at(c[1], d, s.models, s.n, r);
            for (size_t k = 1; k <= kmax; k++)
                hits[(1 + k) * n + r] = (uint8_t)right_at(c[1 + k], d, top.models, k, r);
        }
        for (size_t k = 0; k < 2 + kmax; k++)
            ens_combiner_destroy(&c[k]);
        ens_data_destroy(&train);
    }
    free(perm);
    free(tr);
}

static double mean_of(const uint8_t *h, size_t n)
{
    double s = 0;
    for (size_t r = 0; r < n; r++)
        s += h[r];
    return s / (double)n;
}

/* The choice's rule (choice.h) on the brute-force hits: the index of the
 * winner among selection (0) and top-k (k); only top-1 and top-kmax can be
 * the alternative, ties to top-kmax. */
static size_t brute_winner(const uint8_t *hits, size_t n, size_t kmax)
{
    size_t best = kmax;
    if (mean_of(hits + 2 * n, n) > mean_of(hits + (1 + kmax) * n, n))
        best = 1;
    double s = 0, ss = 0;
    for (size_t r = 0; r < n; r++) {
        double v = (double)hits[r] - (double)hits[(1 + best) * n + r];
        s += v;
        ss += v * v;
    }
    double mean = s / (double)n, var = (ss - s * s / (double)n) / (double)(n - 1);
    double se = sqrt(var > 0 ? var : 0) / sqrt((double)n);
    return mean - ENS_CHOICE_Z * se < -ENS_CHOICE_MARGIN ? best : 0;
}

/* The body's honest figures and the choice's candidates against the
 * brute-force folds, on fleet d with the pipeline's defaults and budget;
 * topk_wins: whether a top-K candidate is expected to win (so that both
 * branches are covered). */
static void check_folds(const ens_data_t *d, size_t budget, int topk_wins)
{
    ens_pipeline_opts_t o;
    ens_pipeline_opts_default(&o);
    o.select.budget = budget;
    ens_pipeline_t *p = run(d, &o);
    const ens_body_t *b = ens_pipeline_body(p);
    size_t n = d->nrows;
    uint8_t *hits = calloc((2 + budget) * n, 1);
    assert_non_null(hits);
    brute_folds(d, &o.select, budget, hits);
    size_t w = brute_winner(hits, n, budget);
    double sel = mean_of(hits, n), vote = mean_of(hits + n, n), one = mean_of(hits + 2 * n, n);
    double won = w == 0 ? sel : mean_of(hits + (1 + w) * n, n);
    print_message("winner %.*s (reference %zu): combiner %.4f vote %.4f single %.4f\n",
                  (int)b->choice_winner.len, b->choice_winner.ptr, w, won, vote, one);
    assert_int_equal(b->ncandidates, budget + 1);
    assert_int_equal(w != 0, topk_wins);
    for (size_t k = 1; k <= budget; k++)
        assert_near(b->candidates[k].accuracy, mean_of(hits + (1 + k) * n, n), 1e-12);
    assert_near(b->candidates[0].accuracy, sel, 1e-12);
    assert_true(b->choice_winner.len == strlen(b->candidates[w].name.ptr) &&
                memcmp(b->choice_winner.ptr, b->candidates[w].name.ptr, b->choice_winner.len) == 0);
    assert_near(b->acc_combiner, won, 1e-12);
    assert_near(b->acc_vote, vote, 1e-12);
    assert_near(b->acc_single, one, 1e-12);
    free(hits);
    ens_pipeline_destroy(&p);
}

/* Complementary families and one model asked on about 70 % of the rows:
 * the information-selected set is expected to win. */
static void test_pipeline_honest_folds_match_bruteforce(void **state)
{
    (void)state;
    const double acc[8] = {0.55, 0.6, 0.5, 0.62, 0.58, 0.52, 0.6, 0.48};
    const double miss[8] = {0, 0, 0, 0.3, 0, 0, 0, 0};
    ens_data_t *d = fleet(2000, 3, 8, 4, acc, miss, 11);
    check_folds(d, 4, 0);
    ens_data_destroy(&d);
}

/* Six independent models near 0.5 on 300 rows of five labels (errors
 * spread over four wrong labels): a top-K vote is expected to win. */
static void test_pipeline_honest_folds_vote_wins(void **state)
{
    (void)state;
    const double acc[6] = {0.55, 0.52, 0.51, 0.49, 0.5, 0.5};
    const double miss[6] = {0, 0, 0.1, 0, 0, 0};
    ens_data_t *d = fleet(300, 5, 6, 6, acc, miss, 12);
    check_folds(d, 3, 1);
    ens_data_destroy(&d);
}

/* Three fair models and three weak ones, independent, on 400 rows of five
 * labels: the top-4 vote scores best on the folds, above top-5 and top-1,
 * but only the best single model and the vote at the budget may be the
 * alternative, so top-5 is published. */
static void test_pipeline_honest_votes_between_not_picked(void **state)
{
    (void)state;
    const double acc[6] = {0.62, 0.58, 0.56, 0.40, 0.38, 0.36};
    const double miss[6] = {0};
    ens_data_t *d = fleet(400, 5, 6, 6, acc, miss, 6);
    check_folds(d, 5, 1);
    ens_pipeline_opts_t o;
    ens_pipeline_opts_default(&o);
    o.select.budget = 5;
    ens_pipeline_t *p = run(d, &o);
    const ens_body_t *b = ens_pipeline_body(p);
    for (size_t k = 1; k <= 5; k++)
        if (k != 4)
            assert_true(b->candidates[4].accuracy > b->candidates[k].accuracy);
    assert_true(b->candidates[4].accuracy > b->candidates[0].accuracy);
    assert_int_equal(b->choice_winner.len, 5);
    assert_memory_equal(b->choice_winner.ptr, "top-5", 5);
    ens_pipeline_destroy(&p);
    ens_data_destroy(&d);
}

/* acc[0..3) on the rows of d of parity 1 - h, where every model of each
 * set was asked, of what is selected and fitted on the rows of parity h. */
static void brute_half(const ens_data_t *d, const ens_select_opts_t *o, size_t h, double acc[3])
{
    size_t n = d->nrows, *tr = malloc(n * sizeof(size_t)), nt = 0;
    assert_non_null(tr);
    for (size_t r = h; r < n; r += 2)
        tr[nt++] = r;
    ens_data_t *train = ens_data_rows(d, tr, nt);
    ens_selection_t s, top;
    assert_int_equal(ens_select(train, o, &s, NULL, 0), 0);
    ens_select_opts_t t = *o;
    t.strategy = ENS_STRAT_TOPK;
    t.budget = 1;
    assert_int_equal(ens_select(train, &t, &top, NULL, 0), 0);
    ens_combiner_t *c[3] = {ens_combiner_fit_best(train, s.models, s.n),
                            ens_combiner_fit(train, s.models, s.n, ENS_COMB_VOTE),
                            ens_combiner_fit(train, top.models, 1, ENS_COMB_WEIGHTED)};
    const size_t *sets[3] = {s.models, s.models, top.models};
    size_t ks[3] = {s.n, s.n, 1};
    for (int i = 0; i < 3; i++) {
        size_t right = 0, asked = 0;
        for (size_t r = 1 - h; r < n; r += 2) {
            size_t a = 0;
            while (a < ks[i] && ens_data_col(d, sets[i][a])[r] != ENS_SYM_MISSING)
                a++;
            if (a < ks[i])
                continue;
            asked++;
            right += (size_t)right_at(c[i], d, sets[i], ks[i], r);
        }
        acc[i] = (double)right / (double)asked;
        ens_combiner_destroy(&c[i]);
    }
    ens_data_destroy(&train);
    free(tr);
}

/* The paper's settings (plug-in, every greedy step, no pruning): no final
 * choice, and the honest figures are the two halves'. */
static void test_pipeline_honest_halves_without_choice(void **state)
{
    (void)state;
    const double acc[8] = {0.55, 0.6, 0.5, 0.62, 0.58, 0.52, 0.6, 0.48};
    const double miss[8] = {0, 0.2, 0, 0, 0, 0, 0.1, 0};
    ens_data_t *d = fleet(1501, 3, 8, 4, acc, miss, 13);
    ens_pipeline_opts_t o;
    ens_pipeline_opts_default(&o);
    o.select.estimator = ENS_EST_PLUGIN;
    o.select.min_gain_bits = -1;
    o.select.prune = 0;
    o.select.budget = 4;
    ens_pipeline_t *p = run(d, &o);
    const ens_body_t *b = ens_pipeline_body(p);
    assert_int_equal(b->ncandidates, 0);
    double a[3], e[3] = {0, 0, 0};
    for (size_t h = 0; h < 2; h++) {
        brute_half(d, &o.select, h, a);
        for (int i = 0; i < 3; i++)
            e[i] += a[i] / 2;
    }
    assert_near(b->acc_combiner, e[0], 1e-12);
    assert_near(b->acc_vote, e[1], 1e-12);
    assert_near(b->acc_single, e[2], 1e-12);
    ens_pipeline_destroy(&p);
    ens_data_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline_honest_folds_match_bruteforce),
        cmocka_unit_test(test_pipeline_honest_folds_vote_wins),
        cmocka_unit_test(test_pipeline_honest_votes_between_not_picked),
        cmocka_unit_test(test_pipeline_honest_halves_without_choice),
    };
    return cmocka_run_group_tests_name("pipeline_honest", tests, NULL, NULL);
}
