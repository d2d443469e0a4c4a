/* test_window_costs.c - a row's answers' costs read and set one at a time
 * (ens_window_cost_at, ens_window_set_cost), what a restore does with the
 * costs it read back. Reference: a shadow of the costs pushed, from which
 * each model's mean and count over the rows still in the window is
 * recomputed here by brute force. Costs are multiples of 1/1024, so every
 * sum is exact and means compare with ==. */
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
#include "ensembled/err.h"
#include "ensembled/window.h"
#include "testutil.h"

#define NM 3
#define CAP 16
#define NROWS 40

/* Row r: model j answers unless (r + j) % 4 == 3; its cost is none when
 * (r * 3 + j) % 5 == 0, else (r % 7 + 8 * j) / 1024. */
static uint8_t answer_of(size_t r, size_t j)
{
    return (r + j) % 4 == 3 ? ENS_SYM_MISSING : (uint8_t)((r + j) % 2);
}

static double cost_of(size_t r, size_t j)
{
    return (r * 3 + j) % 5 == 0 ? NAN : (double)(r % 7 + 8 * j) / 1024;
}

static ens_window_t *new_window(void)
{
    ens_window_t *w = ens_window_new(CAP, NM);
    assert_non_null(w);
    assert_int_equal(ens_window_label(w, "A", 1), 0);
    assert_int_equal(ens_window_label(w, "B", 1), 1);
    for (size_t j = 0; j < NM; j++) {
        char name[8];
        snprintf(name, sizeof(name), "m%zu", j);
        assert_int_equal(ens_window_model(w, name, strlen(name)), (int)j);
    }
    return w;
}

static void push_row(ens_window_t *w, size_t r, int with_costs)
{
    uint8_t x[NM];
    double c[NM];
    for (size_t j = 0; j < NM; j++) {
        x[j] = answer_of(r, j);
        c[j] = cost_of(r, j);
    }
    assert_int_equal(
        ens_window_push_costs(w, (uint8_t)(r % 2), x, with_costs ? c : NULL, NM, (double)r), 0);
}

/* Every model's mean and count against the rows [first, last) pushed. */
static void check_means(const ens_window_t *w, size_t first, size_t last)
{
    assert_int_equal(ens_window_rows(w), last - first);
    for (size_t j = 0; j < NM; j++) {
        double sum = 0;
        uint32_t n = 0, got_n = 99;
        for (size_t r = first; r < last; r++) {
            double c = cost_of(r, j);
            assert_true(isnan(ens_window_cost_at(w, r - first, j)) ==
                        (answer_of(r, j) == ENS_SYM_MISSING || isnan(c)));
            if (answer_of(r, j) == ENS_SYM_MISSING || isnan(c))
                continue;
            assert_true(ens_window_cost_at(w, r - first, j) == c);
            sum += c;
            n++;
        }
        double got = ens_window_cost(w, j, &got_n);
        assert_int_equal(got_n, n);
        if (n == 0)
            assert_true(isnan(got));
        else
            assert_true(got == sum / n);
    }
}

/* Rows pushed without costs and then given them one by one end with the
 * sums of rows pushed with them, also as later pushes expire them. */
static void test_window_costs_set_equals_push(void **state)
{
    (void)state;
    ens_window_t *w = new_window();
    for (size_t r = 0; r < NROWS; r++) {
        push_row(w, r, 0);
        size_t last = ens_window_rows(w) - 1;
        for (size_t j = 0; j < NM; j++) {
            int rc = ens_window_set_cost(w, last, j, cost_of(r, j));
            assert_int_equal(rc, answer_of(r, j) == ENS_SYM_MISSING ? ENS_EINVAL : 0);
        }
        check_means(w, r + 1 > CAP ? r + 1 - CAP : 0, r + 1);
    }
    ens_window_t *p = new_window();
    for (size_t r = 0; r < NROWS; r++)
        push_row(p, r, 1);
    check_means(p, NROWS - CAP, NROWS);
    for (size_t j = 0; j < NM; j++) {
        uint32_t a, b;
        assert_true(ens_window_cost(w, j, &a) == ens_window_cost(p, j, &b) && a == b);
    }
    ens_window_destroy(&w);
    ens_window_destroy(&p);
}

/* Setting a cost replaces the one there (or removes it, with NaN); a
 * refused call changes nothing. */
static void test_window_costs_set_replaces_and_refuses(void **state)
{
    (void)state;
    ens_window_t *w = new_window();
    for (size_t r = 0; r < 4; r++)
        push_row(w, r, 1);
    /* Row 1, model 0: answered, cost 1/1024. */
    assert_true(ens_window_cost_at(w, 1, 0) == 1.0 / 1024);
    uint32_t n0, n;
    double m0 = ens_window_cost(w, 0, &n0);
    assert_int_equal(ens_window_set_cost(w, 1, 0, 0.5), 0);
    assert_true(ens_window_cost_at(w, 1, 0) == 0.5);
    double m = ens_window_cost(w, 0, &n);
    assert_int_equal(n, n0);
    assert_true(m == (m0 * n0 - 1.0 / 1024 + 0.5) / n0);
    assert_int_equal(ens_window_set_cost(w, 1, 0, NAN), 0);
    assert_true(isnan(ens_window_cost_at(w, 1, 0)));
    ens_window_cost(w, 0, &n);
    assert_int_equal(n, n0 - 1);

    /* Refused: no answer (row 3, model 0), a negative cost, no such row
     * or model. */
    assert_int_equal(answer_of(3, 0), ENS_SYM_MISSING);
    double before[NM];
    uint32_t cnt[NM];
    for (size_t j = 0; j < NM; j++)
        before[j] = ens_window_cost(w, j, &cnt[j]);
    assert_int_equal(ens_window_set_cost(w, 3, 0, 0.25), ENS_EINVAL);
    assert_int_equal(ens_window_set_cost(w, 0, 1, -0.25), ENS_EINVAL);
    assert_int_equal(ens_window_set_cost(w, 4, 1, 0.25), ENS_EINVAL);
    assert_int_equal(ens_window_set_cost(w, 0, NM, 0.25), ENS_EINVAL);
    for (size_t j = 0; j < NM; j++) {
        uint32_t k;
        double c = ens_window_cost(w, j, &k);
        assert_int_equal(k, cnt[j]);
        assert_true((isnan(c) && isnan(before[j])) || c == before[j]);
    }
    assert_true(isnan(ens_window_cost_at(w, 4, 0)) && isnan(ens_window_cost_at(w, 0, NM)));
    ens_window_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_costs_set_equals_push),
        cmocka_unit_test(test_window_costs_set_replaces_and_refuses),
    };
    return cmocka_run_group_tests_name("window_costs", tests, NULL, NULL);
}
