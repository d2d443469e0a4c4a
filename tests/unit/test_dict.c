/* test_dict.c - name interning: dense ids in order, find, capacity and
 * length limits, released ids reused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ensembled/dict.h"
#include "ensembled/err.h"

static void test_dict_ids_dense_in_order(void **state)
{
    (void)state;
    ens_dict_t *d = ens_dict_new(100, 16);
    assert_non_null(d);
    char buf[32];
    for (int i = 0; i < 50; i++) {
        snprintf(buf, sizeof(buf), "name%d", i);
        assert_int_equal(ens_dict_intern(d, buf, strlen(buf)), i);
        assert_int_equal(ens_dict_count(d), (size_t)i + 1);
    }
    /* Re-interning returns the same id and adds nothing. */
    for (int i = 49; i >= 0; i--) {
        snprintf(buf, sizeof(buf), "name%d", i);
        assert_int_equal(ens_dict_intern(d, buf, strlen(buf)), i);
    }
    assert_int_equal(ens_dict_count(d), 50);
    for (int i = 0; i < 50; i++) {
        snprintf(buf, sizeof(buf), "name%d", i);
        assert_string_equal(ens_dict_name(d, i), buf);
    }
    ens_dict_destroy(&d);
    assert_null(d);
    ens_dict_destroy(&d); /* NULL-safe */
    ens_dict_destroy(NULL);
}

static void test_dict_find(void **state)
{
    (void)state;
    ens_dict_t *d = ens_dict_new(8, 16);
    assert_int_equal(ens_dict_find(d, "a", 1), ENS_ENOTFOUND);
    assert_int_equal(ens_dict_intern(d, "alpha", 5), 0);
    assert_int_equal(ens_dict_intern(d, "beta", 4), 1);
    assert_int_equal(ens_dict_find(d, "alpha", 5), 0);
    assert_int_equal(ens_dict_find(d, "beta", 4), 1);
    /* Length matters: "alp" is a prefix, not a match; names need no NUL. */
    assert_int_equal(ens_dict_find(d, "alpha", 3), ENS_ENOTFOUND);
    assert_int_equal(ens_dict_find(d, "betamax", 4), 1);
    assert_int_equal(ens_dict_intern(d, "alphabet", 3), 2);
    assert_string_equal(ens_dict_name(d, 2), "alp");
    /* find never adds. */
    assert_int_equal(ens_dict_find(d, "gamma", 5), ENS_ENOTFOUND);
    assert_int_equal(ens_dict_count(d), 3);
    /* Names are copied: mutating the caller's buffer changes nothing. */
    char buf[8] = "zeta";
    assert_int_equal(ens_dict_intern(d, buf, 4), 3);
    buf[0] = 'Z';
    assert_int_equal(ens_dict_find(d, "zeta", 4), 3);
    assert_int_equal(ens_dict_find(d, buf, 4), ENS_ENOTFOUND);
    /* Bytes, including embedded NULs, are the key. */
    assert_int_equal(ens_dict_intern(d, "a\0b", 3), 4);
    assert_int_equal(ens_dict_intern(d, "a\0c", 3), 5);
    assert_int_equal(ens_dict_find(d, "a\0b", 3), 4);
    ens_dict_destroy(&d);
}

static void test_dict_full(void **state)
{
    (void)state;
    ens_dict_t *d = ens_dict_new(3, 8);
    assert_int_equal(ens_dict_intern(d, "a", 1), 0);
    assert_int_equal(ens_dict_intern(d, "b", 1), 1);
    assert_int_equal(ens_dict_intern(d, "c", 1), 2);
    assert_int_equal(ens_dict_intern(d, "d", 1), ENS_EFULL);
    assert_int_equal(ens_dict_count(d), 3);
    assert_int_equal(ens_dict_find(d, "d", 1), ENS_ENOTFOUND);
    /* Existing names still resolve when full. */
    assert_int_equal(ens_dict_intern(d, "b", 1), 1);
    ens_dict_destroy(&d);
}

static void test_dict_too_long_and_empty(void **state)
{
    (void)state;
    ens_dict_t *d = ens_dict_new(4, 4);
    assert_int_equal(ens_dict_intern(d, "abcd", 4), 0);
    assert_int_equal(ens_dict_intern(d, "abcde", 5), ENS_ETOOLONG);
    assert_int_equal(ens_dict_intern(d, "", 0), ENS_EINVAL);
    assert_int_equal(ens_dict_count(d), 1);
    assert_int_equal(ens_dict_intern(d, "x", 1), 1);
    ens_dict_destroy(&d);
}

/* A released id loses its name and goes to the next new name, the lowest
 * first; a full dictionary takes a new name again once an id is released,
 * without handing out an id past max_entries. */
static void test_dict_release_and_reuse(void **state)
{
    (void)state;
    ens_dict_t *d = ens_dict_new(3, 8);
    assert_int_equal(ens_dict_intern(d, "a", 1), 0);
    assert_int_equal(ens_dict_intern(d, "b", 1), 1);
    assert_int_equal(ens_dict_intern(d, "c", 1), 2);
    assert_int_equal(ens_dict_intern(d, "d", 1), ENS_EFULL);
    assert_int_equal(ens_dict_release(d, 2), 0);
    assert_int_equal(ens_dict_release(d, 1), 0);
    assert_int_equal(ens_dict_release(d, 1), ENS_EINVAL);
    assert_int_equal(ens_dict_release(d, 3), ENS_EINVAL);
    assert_int_equal(ens_dict_release(d, -1), ENS_EINVAL);
    assert_int_equal(ens_dict_count(d), 3);
    assert_int_equal(ens_dict_live(d), 1);
    assert_null(ens_dict_name(d, 1));
    assert_int_equal(ens_dict_name_len(d, 1), 0);
    assert_int_equal(ens_dict_find(d, "b", 1), ENS_ENOTFOUND);
    assert_int_equal(ens_dict_intern(d, "d", 1), 1);
    assert_int_equal(ens_dict_intern(d, "b", 1), 2); /* a new name now */
    assert_int_equal(ens_dict_intern(d, "e", 1), ENS_EFULL);
    assert_string_equal(ens_dict_name(d, 1), "d");
    assert_int_equal(ens_dict_find(d, "d", 1), 1);
    assert_int_equal(ens_dict_live(d), 3);
    ens_dict_destroy(&d);
}

static void test_dict_new_rejects_zero(void **state)
{
    (void)state;
    assert_null(ens_dict_new(0, 8));
    assert_null(ens_dict_new(8, 0));
}

static void test_dict_strerror(void **state)
{
    (void)state;
    assert_string_equal(ens_strerror(ENS_EFULL), "capacity exceeded");
    assert_string_equal(ens_strerror(ENS_ETOOLONG), "name too long");
    assert_non_null(ens_strerror(-2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dict_ids_dense_in_order),
        cmocka_unit_test(test_dict_find),
        cmocka_unit_test(test_dict_release_and_reuse),
        cmocka_unit_test(test_dict_full),
        cmocka_unit_test(test_dict_too_long_and_empty),
        cmocka_unit_test(test_dict_new_rejects_zero),
        cmocka_unit_test(test_dict_strerror),
    };
    return cmocka_run_group_tests_name("dict", tests, NULL, NULL);
}
