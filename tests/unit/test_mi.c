/* test_mi.c - information estimates against brute force.
 *
 * The references here enumerate joint tuples with string keys and count them
 * in O(N^2) by direct comparison: slow, obvious, and sharing nothing with the
 * library's partition refinement. Entropies use the identity
 *   H = -(1/N) sum_rows log2(n(key(row)) / N).
 */
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
#include "ensembled/mi.h"
#include "testutil.h"

#define KEYLEN 16 /* up to 12 models + y + NUL */
#define ALPHA 1.0

/* Rows where every model of t is present (and mask[r], if mask given). */
static size_t live_rows(const ens_data_t *d, const size_t *t, size_t k, const int *mask,
                        size_t *out)
{
    size_t n = 0;
    for (size_t r = 0; r < d->nrows; r++) {
        if (mask && !mask[r])
            continue;
        int ok = 1;
        for (size_t i = 0; i < k; i++)
            ok &= ens_data_col(d, t[i])[r] != ENS_SYM_MISSING;
        if (ok)
            out[n++] = r;
    }
    return n;
}

/* keys[i] = raw tuple of t in row rows[i] (one char per symbol), plus y when
 * with_y. Symbols are offset so that no char is NUL. */
static void raw_keys(const ens_data_t *d, const size_t *t, size_t k, const size_t *rows, size_t n,
                     int with_x, int with_y, char (*keys)[KEYLEN])
{
    for (size_t i = 0; i < n; i++) {
        size_t p = 0;
        if (with_x)
            for (size_t h = 0; h < k; h++) {
                uint8_t v = ens_data_col(d, t[h])[rows[i]];
                keys[i][p++] = v == ENS_SYM_ABSTAIN ? 'a' : (char)('A' + v);
            }
        if (with_y)
            keys[i][p++] = (char)('0' + d->y[rows[i]]);
        keys[i][p] = '\0';
    }
}

/* n(key of row i) for every i, and the number of distinct keys. */
static size_t key_counts(char (*keys)[KEYLEN], size_t n, double *cnt)
{
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        size_t c = 0, first = 1;
        for (size_t h = 0; h < n; h++) {
            if (strcmp(keys[i], keys[h]) == 0) {
                c++;
                if (h < i)
                    first = 0;
            }
        }
        cnt[i] = (double)c;
        distinct += first;
    }
    return distinct;
}

static double entropy_of(char (*keys)[KEYLEN], size_t n, size_t *distinct)
{
    double *cnt = calloc(n ? n : 1, sizeof(double));
    size_t m = key_counts(keys, n, cnt);
    double h = 0;
    for (size_t i = 0; i < n; i++)
        h -= log2(cnt[i] / (double)n);
    free(cnt);
    if (distinct)
        *distinct = m;
    return n ? h / (double)n : 0.0;
}

/* Plug-in (mm = 0) or Miller-Madow (mm = 1) I(Y; X_t) over rows[0..n). */
static double brute_raw(const ens_data_t *d, const size_t *t, size_t k, const size_t *rows,
                        size_t n, int mm)
{
    char(*keys)[KEYLEN] = calloc(n ? n : 1, KEYLEN);
    size_t my, mx, mxy;
    raw_keys(d, t, k, rows, n, 0, 1, keys);
    double hy = entropy_of(keys, n, &my);
    raw_keys(d, t, k, rows, n, 1, 0, keys);
    double hx = entropy_of(keys, n, &mx);
    raw_keys(d, t, k, rows, n, 1, 1, keys);
    double hxy = entropy_of(keys, n, &mxy);
    free(keys);
    double mi = hy + hx - hxy;
    if (mm)
        mi += ((double)my - 1 + (double)mx - 1 - ((double)mxy - 1)) / (2.0 * (double)n * log(2.0));
    return mi;
}

/* The held-out estimate over rows[0..n), written from its definition:
 * agreement pattern per row, target class, LOO smoothed log-loss. */
static double brute_heldout(const ens_data_t *d, const size_t *t, size_t k, const size_t *rows,
                            size_t n)
{
    const double L = (double)d->nlabels;
    char(*pat)[KEYLEN] = calloc(n ? n : 1, KEYLEN);
    char(*patz)[KEYLEN] = calloc(n ? n : 1, KEYLEN);
    int *ncls = calloc(n ? n : 1, sizeof(int));
    int *none = calloc(n ? n : 1, sizeof(int));
    for (size_t i = 0; i < n; i++) {
        uint8_t cls[KEYLEN];
        int nc = 0, z = -1;
        size_t r = rows[i];
        for (size_t h = 0; h < k; h++) {
            uint8_t v = ens_data_col(d, t[h])[r];
            if (v == ENS_SYM_ABSTAIN) {
                pat[i][h] = 'a';
                continue;
            }
            int c = 0;
            while (c < nc && cls[c] != v)
                c++;
            if (c == nc)
                cls[nc++] = v;
            pat[i][h] = (char)('0' + c);
        }
        pat[i][k] = '\0';
        for (int c = 0; c < nc; c++)
            if (cls[c] == d->y[r])
                z = c;
        snprintf(patz[i], KEYLEN, "%s|%c", pat[i], z < 0 ? 'N' : (char)('0' + z));
        ncls[i] = nc;
        none[i] = z < 0;
    }
    double *nc_ = calloc(n ? n : 1, sizeof(double));
    double *ncz = calloc(n ? n : 1, sizeof(double));
    key_counts(pat, n, nc_);
    key_counts(patz, n, ncz);
    double loss = 0;
    for (size_t i = 0; i < n; i++) {
        double q = none[i] ? (L - ncls[i]) / L : 1.0 / L;
        double p = (ncz[i] - 1 + ALPHA * q) / (nc_[i] - 1 + ALPHA);
        if (none[i])
            p /= (L - ncls[i]);
        loss -= log2(p);
    }
    double ny[256] = {0};
    for (size_t i = 0; i < n; i++)
        ny[d->y[rows[i]]]++;
    double marg = 0;
    for (size_t y = 0; y < 256; y++)
        if (ny[y] > 0)
            marg -= ny[y] * log2((ny[y] - 1 + ALPHA / L) / ((double)n - 1 + ALPHA));
    free(pat);
    free(patz);
    free(ncls);
    free(none);
    free(nc_);
    free(ncz);
    return n ? (marg - loss) / (double)n : 0.0;
}

static double brute(const ens_data_t *d, const size_t *t, size_t k, const size_t *rows, size_t n,
                    ens_estimator_t est)
{
    if (est == ENS_EST_HELDOUT)
        return brute_heldout(d, t, k, rows, n);
    return brute_raw(d, t, k, rows, n, est == ENS_EST_MILLER_MADOW);
}

/* A random table: answers right with probability acc_j, else a random label
 * (possibly right), abstaining or missing now and then. Some columns are
 * copies or relabelings of others so that patterns repeat. */
static ens_data_t *random_table(tu_rng_t *r, size_t n, size_t m, size_t L)
{
    ens_data_t *d = ens_data_new(n, m, L);
    for (size_t i = 0; i < n; i++)
        d->y[i] = (uint8_t)(tu_below(r, 3) == 0 ? 0 : tu_below(r, L));
    for (size_t j = 0; j < m; j++) {
        uint8_t *col = d->x + j * n;
        double acc = 0.2 + 0.7 * tu_uniform(r);
        double pmiss = tu_below(r, 3) == 0 ? 0.0 : 0.15 * tu_uniform(r);
        double pabst = tu_below(r, 3) == 0 ? 0.0 : 0.15 * tu_uniform(r);
        int copy = j > 0 && tu_below(r, 4) == 0;
        size_t src = copy ? tu_below(r, j) : 0;
        for (size_t i = 0; i < n; i++) {
            if (copy) {
                uint8_t v = ens_data_col(d, src)[i];
                col[i] = v < L ? (uint8_t)((v + 1) % L) : v;
                continue;
            }
            double u = tu_uniform(r);
            if (u < pmiss)
                col[i] = ENS_SYM_MISSING;
            else if (u < pmiss + pabst)
                col[i] = ENS_SYM_ABSTAIN;
            else if (tu_uniform(r) < acc)
                col[i] = d->y[i];
            else
                col[i] = (uint8_t)tu_below(r, L);
        }
    }
    return d;
}

/* Draws k distinct models of m in random order. */
static void random_set(tu_rng_t *r, size_t m, size_t k, size_t *t)
{
    for (size_t i = 0; i < k; i++) {
        int dup;
        do {
            t[i] = tu_below(r, m);
            dup = 0;
            for (size_t h = 0; h < i; h++)
                dup |= t[h] == t[i];
        } while (dup);
    }
}

static void test_mi_estimators_match_bruteforce(void **state)
{
    (void)state;
    tu_rng_t r;
    tu_seed(&r, 20240601);
    const ens_estimator_t ests[] = {ENS_EST_PLUGIN, ENS_EST_MILLER_MADOW, ENS_EST_HELDOUT};
    size_t checked = 0, with_missing = 0;
    for (int trial = 0; trial < 150; trial++) {
        size_t n = 20 + tu_below(&r, 260), m = 2 + tu_below(&r, 5), L = 2 + tu_below(&r, 4);
        ens_data_t *d = random_table(&r, n, m, L);
        size_t *rows = calloc(n, sizeof(size_t));
        for (int s = 0; s < 6; s++) {
            size_t k = 1 + tu_below(&r, m < 4 ? m : 4), t[4];
            random_set(&r, m, k, t);
            size_t nl = live_rows(d, t, k, NULL, rows);
            with_missing += nl < n;
            for (size_t e = 0; e < 3; e++) {
                double bits = NAN;
                size_t used = 12345;
                int rc = ens_mi(d, t, k, ests[e], &bits, &used);
                if (nl == 0) {
                    assert_int_equal(rc, ENS_EEMPTY);
                    continue;
                }
                assert_int_equal(rc, 0);
                assert_int_equal(used, nl);
                double want = brute(d, t, k, rows, nl, ests[e]);
                if (fabs(bits - want) > 1e-9)
                    print_message("trial %d est %s n=%zu L=%zu k=%zu: got %.12f want %.12f\n",
                                  trial, ens_estimator_name(ests[e]), nl, L, k, bits, want);
                assert_near(bits, want, 1e-9);
                checked++;
            }
            /* H(Y) over the same rows. */
            double hy = NAN;
            assert_int_equal(ens_entropy_y(d, t, k, &hy), 0);
            char(*keys)[KEYLEN] = calloc(nl ? nl : 1, KEYLEN);
            raw_keys(d, t, k, rows, nl, 0, 1, keys);
            assert_near(hy, entropy_of(keys, nl, NULL), 1e-9);
            free(keys);
        }
        free(rows);
        ens_data_destroy(&d);
    }
    assert_true(checked > 1500);
    assert_true(with_missing > 100);
}

/* Miller-Madow in closed form from the brute-force plug-in and cell counts. */
static void test_mi_miller_madow_closed_form(void **state)
{
    (void)state;
    tu_rng_t r;
    tu_seed(&r, 77);
    for (int trial = 0; trial < 60; trial++) {
        size_t n = 30 + tu_below(&r, 100), m = 3, L = 2 + tu_below(&r, 4);
        ens_data_t *d = random_table(&r, n, m, L);
        size_t t[2] = {0, 2}, *rows = calloc(n, sizeof(size_t));
        size_t nl = live_rows(d, t, 2, NULL, rows);
        double pi = NAN, mm = NAN;
        if (nl == 0) {
            free(rows);
            ens_data_destroy(&d);
            continue;
        }
        assert_int_equal(ens_mi(d, t, 2, ENS_EST_PLUGIN, &pi, NULL), 0);
        assert_int_equal(ens_mi(d, t, 2, ENS_EST_MILLER_MADOW, &mm, NULL), 0);
        char(*keys)[KEYLEN] = calloc(nl, KEYLEN);
        size_t my, mx, mxy;
        raw_keys(d, t, 2, rows, nl, 0, 1, keys);
        entropy_of(keys, nl, &my);
        raw_keys(d, t, 2, rows, nl, 1, 0, keys);
        entropy_of(keys, nl, &mx);
        raw_keys(d, t, 2, rows, nl, 1, 1, keys);
        entropy_of(keys, nl, &mxy);
        double corr =
            ((double)my - 1 + (double)mx - 1 - ((double)mxy - 1)) / (2.0 * (double)nl * log(2.0));
        assert_near(mm, pi + corr, 1e-9);
        free(keys);
        free(rows);
        ens_data_destroy(&d);
    }
}

static void test_mi_cmi_is_difference_on_common_rows(void **state)
{
    (void)state;
    tu_rng_t r;
    tu_seed(&r, 4242);
    const ens_estimator_t ests[] = {ENS_EST_PLUGIN, ENS_EST_MILLER_MADOW, ENS_EST_HELDOUT};
    size_t checked = 0;
    for (int trial = 0; trial < 80; trial++) {
        size_t n = 30 + tu_below(&r, 200), m = 3 + tu_below(&r, 3), L = 2 + tu_below(&r, 4);
        ens_data_t *d = random_table(&r, n, m, L);
        size_t *rows = calloc(n, sizeof(size_t));
        size_t k = tu_below(&r, 3), set[4];
        random_set(&r, m, k + 1, set);
        size_t j = set[k];
        size_t nl = live_rows(d, set, k + 1, NULL, rows);
        for (size_t e = 0; e < 3; e++) {
            double bits = NAN;
            int rc = ens_cmi(d, j, set, k, ests[e], &bits);
            if (nl == 0) {
                assert_int_equal(rc, ENS_EEMPTY);
                continue;
            }
            assert_int_equal(rc, 0);
            double want = brute(d, set, k + 1, rows, nl, ests[e]) -
                          (k ? brute(d, set, k, rows, nl, ests[e]) : 0.0);
            assert_near(bits, want, 1e-9);
            checked++;
        }
        free(rows);
        ens_data_destroy(&d);
    }
    assert_true(checked > 150);
}

static void test_mi_missing_rows_excluded(void **state)
{
    (void)state;
    /* Model 0 is right everywhere but missing in rows 0..3; model 1 is
     * always present and always wrong-by-one. */
    ens_data_t *d = ens_data_new(12, 2, 3);
    for (size_t i = 0; i < 12; i++) {
        d->y[i] = (uint8_t)(i % 3);
        d->x[i] = i < 4 ? ENS_SYM_MISSING : d->y[i];
        d->x[12 + i] = (uint8_t)((i + 1) % 3);
    }
    size_t t0[1] = {0}, t01[2] = {0, 1}, t1[1] = {1};
    double bits;
    size_t used;
    assert_int_equal(ens_mi(d, t0, 1, ENS_EST_PLUGIN, &bits, &used), 0);
    assert_int_equal(used, 8);
    /* Rows 4..11: y = 1,2,0,1,2,0,1,2: H = entropy of (3,3,2)/8. */
    double h = -(2 * (3.0 / 8) * log2(3.0 / 8) + (2.0 / 8) * log2(2.0 / 8));
    assert_near(bits, h, 1e-12);
    assert_int_equal(ens_mi(d, t01, 2, ENS_EST_PLUGIN, &bits, &used), 0);
    assert_int_equal(used, 8);
    assert_int_equal(ens_mi(d, t1, 1, ENS_EST_PLUGIN, &bits, &used), 0);
    assert_int_equal(used, 12);
    assert_near(bits, log2(3.0), 1e-12);
    /* k == 0: zero over all rows. */
    assert_int_equal(ens_mi(d, t1, 0, ENS_EST_HELDOUT, &bits, &used), 0);
    assert_int_equal(used, 12);
    assert_true(bits == 0.0);
    /* Bad indices and a set with no common row. */
    size_t bad[1] = {2};
    assert_int_equal(ens_mi(d, bad, 1, ENS_EST_PLUGIN, &bits, &used), ENS_EINVAL);
    assert_int_equal(ens_cmi(d, 5, t1, 1, ENS_EST_PLUGIN, &bits), ENS_EINVAL);
    for (size_t i = 0; i < 12; i++)
        d->x[12 + i] = i < 4 ? d->y[i] : ENS_SYM_MISSING;
    assert_int_equal(ens_mi(d, t01, 2, ENS_EST_PLUGIN, &bits, &used), ENS_EEMPTY);
    ens_data_destroy(&d);
}

static void test_mi_entropy_counts_closed_form(void **state)
{
    (void)state;
    uint32_t a[2] = {1, 1};
    assert_near(ens_entropy_counts(a, 2), 1.0, 1e-15);
    uint32_t b[5] = {7, 0, 7, 7, 7};
    assert_near(ens_entropy_counts(b, 5), 2.0, 1e-15);
    uint32_t c[2] = {3, 1};
    assert_near(ens_entropy_counts(c, 2), -(0.75 * log2(0.75) + 0.25 * log2(0.25)), 1e-15);
    uint32_t z[3] = {0, 0, 0};
    assert_true(ens_entropy_counts(z, 3) == 0.0);
    uint32_t one[1] = {1000000};
    assert_near(ens_entropy_counts(one, 1), 0.0, 1e-12);
    uint32_t big[3] = {4000000000u, 100000000u, 1};
    double n = 4100000001.0, want = 0;
    for (int i = 0; i < 3; i++)
        want -= big[i] / n * log2(big[i] / n);
    assert_near(ens_entropy_counts(big, 3), want, 1e-9);
}

static void test_mi_estimator_names(void **state)
{
    (void)state;
    ens_estimator_t e;
    assert_int_equal(ens_estimator_parse("plugin", &e), 0);
    assert_int_equal(e, ENS_EST_PLUGIN);
    assert_int_equal(ens_estimator_parse("miller-madow", &e), 0);
    assert_int_equal(e, ENS_EST_MILLER_MADOW);
    assert_int_equal(ens_estimator_parse("heldout", &e), 0);
    assert_int_equal(e, ENS_EST_HELDOUT);
    assert_int_equal(ens_estimator_parse("bogus", &e), ENS_EINVAL);
    assert_string_equal(ens_estimator_name(ENS_EST_MILLER_MADOW), "miller-madow");
}

/* A column equal to Y: held-out close to H(Y); a column independent of a
 * skewed Y: held-out clearly negative (while plug-in is >= 0). */
static void test_mi_heldout_limits(void **state)
{
    (void)state;
    tu_rng_t r;
    tu_seed(&r, 9);
    size_t n = 20000, L = 4;
    ens_data_t *d = ens_data_new(n, 3, L);
    const double py[4] = {0.7, 0.1, 0.1, 0.1};
    for (size_t i = 0; i < n; i++) {
        double u = tu_uniform(&r);
        size_t y = 0;
        while (y < 3 && u >= py[y]) {
            u -= py[y];
            y++;
        }
        d->y[i] = (uint8_t)y;
        d->x[i] = (uint8_t)y;                   /* oracle */
        d->x[n + i] = (uint8_t)tu_below(&r, L); /* independent */
        /* 90% right, else another label */
        d->x[2 * n + i] = (uint8_t)(tu_below(&r, 10) ? y : (y + 1 + tu_below(&r, L - 1)) % L);
    }
    size_t t0[1] = {0}, t1[1] = {1};
    double hy, ho, pl;
    assert_int_equal(ens_entropy_y(d, t0, 1, &hy), 0);
    assert_int_equal(ens_mi(d, t0, 1, ENS_EST_HELDOUT, &ho, NULL), 0);
    print_message("H(Y)=%.5f heldout(oracle)=%.5f\n", hy, ho);
    /* Not bounded by the plug-in H(Y): the LOO marginal pays a little more
     * than H(Y) too, so the two sides of the difference nearly cancel. */
    assert_near(ho, hy, 0.002);
    assert_int_equal(ens_mi(d, t1, 1, ENS_EST_HELDOUT, &ho, NULL), 0);
    assert_int_equal(ens_mi(d, t1, 1, ENS_EST_PLUGIN, &pl, NULL), 0);
    print_message("independent: heldout=%.5f plugin=%.6f\n", ho, pl);
    assert_true(ho < -0.3);
    assert_true(pl >= 0 && pl < 0.01);
    /* A 90%-right model: about H(Y) - H_b(0.9) - 0.1 log2(3) = 0.73 bits. */
    size_t t2[1] = {2};
    assert_int_equal(ens_mi(d, t2, 1, ENS_EST_HELDOUT, &ho, NULL), 0);
    print_message("90%% right: heldout=%.5f\n", ho);
    assert_near(ho, hy - (-(0.9 * log2(0.9) + 0.1 * log2(0.1))) - 0.1 * log2(3.0), 0.02);
    ens_data_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mi_estimators_match_bruteforce),
        cmocka_unit_test(test_mi_miller_madow_closed_form),
        cmocka_unit_test(test_mi_cmi_is_difference_on_common_rows),
        cmocka_unit_test(test_mi_missing_rows_excluded),
        cmocka_unit_test(test_mi_entropy_counts_closed_form),
        cmocka_unit_test(test_mi_estimator_names),
        cmocka_unit_test(test_mi_heldout_limits),
    };
    return cmocka_run_group_tests_name("mi", tests, NULL, NULL);
}
