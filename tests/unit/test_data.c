/* test_data.c - row and column subsets of the data matrix, checked against
 * a direct reading of the source matrix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ensembled/data.h"
#include "ensembled/rng.h"

/* A random matrix with missing and abstained answers. */
static ens_data_t *random_data(ens_rng_t *r, size_t n, size_t m)
{
    ens_data_t *d = ens_data_new(n, m, 3);
    for (size_t i = 0; i < n; i++)
        d->y[i] = (uint8_t)ens_rng_below(r, 3);
    for (size_t j = 0; j < m; j++) {
        d->cost[j] = 1.0 + (double)j;
        for (size_t i = 0; i < n; i++) {
            size_t v = ens_rng_below(r, 6);
            d->x[j * n + i] = v < 3 ? (uint8_t)v : v == 3 ? ENS_SYM_ABSTAIN : ENS_SYM_MISSING;
        }
    }
    return d;
}

static void test_data_columns_copies_the_named_columns(void **state)
{
    (void)state;
    ens_rng_t r;
    ens_rng_seed(&r, 3);
    ens_data_t *d = random_data(&r, 200, 6);
    size_t cols[] = {4, 1, 5};
    ens_data_t *s = ens_data_columns(d, cols, 3);
    assert_int_equal(s->nrows, 200);
    assert_int_equal(s->nmodels, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(s->model_names[i], d->model_names[cols[i]]);
        assert_true(s->cost[i] == d->cost[cols[i]]);
        for (size_t row = 0; row < 200; row++)
            assert_int_equal(s->x[i * 200 + row], d->x[cols[i] * 200 + row]);
    }
    assert_memory_equal(s->y, d->y, 200);
    ens_data_destroy(&s);
    ens_data_destroy(&d);
}

static void test_data_rows_asked_keeps_exactly_the_rows_of_the_set(void **state)
{
    (void)state;
    ens_rng_t r;
    ens_rng_seed(&r, 5);
    ens_data_t *d = random_data(&r, 500, 5);
    size_t set[] = {0, 3};
    ens_data_t *s = ens_data_rows_asked(d, set, 2);
    size_t k = 0;
    for (size_t row = 0; row < 500; row++) {
        if (d->x[0 * 500 + row] == ENS_SYM_MISSING || d->x[3 * 500 + row] == ENS_SYM_MISSING)
            continue;
        assert_true(k < s->nrows);
        assert_int_equal(s->y[k], d->y[row]);
        for (size_t j = 0; j < 5; j++)
            assert_int_equal(s->x[j * s->nrows + k], d->x[j * 500 + row]);
        k++;
    }
    assert_int_equal(k, s->nrows);
    assert_true(k > 0 && k < 500);
    ens_data_destroy(&s);
    s = ens_data_rows_asked(d, NULL, 0);
    assert_int_equal(s->nrows, 500);
    ens_data_destroy(&s);
    ens_data_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_columns_copies_the_named_columns),
        cmocka_unit_test(test_data_rows_asked_keeps_exactly_the_rows_of_the_set),
    };
    return cmocka_run_group_tests_name("data", tests, NULL, NULL);
}
