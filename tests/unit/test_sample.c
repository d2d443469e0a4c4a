/* test_sample.c - the normal CDF and quantile against closed forms, and the
 * Gaussian-copula sampler's marginals, correlations and wrong-answer law. */
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
#include "ensembled/sample.h"
#include "testutil.h"

static void test_sample_norm_cdf(void **state)
{
    (void)state;
    /* Reference values (to 16 digits) of Phi. */
    assert_near(ens_norm_cdf(0.0), 0.5, 1e-15);
    assert_near(ens_norm_cdf(1.0), 0.8413447460685429, 1e-14);
    assert_near(ens_norm_cdf(-1.0), 0.15865525393145707, 1e-14);
    assert_near(ens_norm_cdf(1.959963984540054), 0.975, 1e-14);
    assert_near(ens_norm_cdf(3.0), 0.9986501019683699, 1e-14);
    assert_near(ens_norm_cdf(-5.0), 2.866515718791939e-07, 1e-19);
    assert_near(ens_norm_cdf(-10.0), 7.619853024160527e-24, 1e-35);
    /* Closed form Phi(x) = erfc(-x / sqrt 2) / 2, relative in the tails. */
    for (double x = -12; x <= 8; x += 0.01) {
        double want = 0.5 * erfc(-x / sqrt(2.0));
        double got = ens_norm_cdf(x);
        if (fabs(got - want) > 1e-13 * want + 1e-300)
            print_message("x=%g got %.17g want %.17g\n", x, got, want);
        assert_true(fabs(got - want) <= 1e-13 * want + 1e-300);
    }
    assert_true(ens_norm_cdf(-40) >= 0 && ens_norm_cdf(-40) < 1e-300);
    assert_near(ens_norm_cdf(40), 1.0, 0);
}

static void test_sample_norm_quantile(void **state)
{
    (void)state;
    assert_near(ens_norm_quantile(0.5), 0.0, 1e-15);
    assert_near(ens_norm_quantile(0.975), 1.959963984540054, 1e-13);
    assert_near(ens_norm_quantile(0.025), -1.959963984540054, 1e-13);
    assert_near(ens_norm_quantile(0.8413447460685429), 1.0, 1e-12);
    size_t n = 0;
    /* Round trip on a log grid towards both ends and a linear grid. */
    for (double e = -10; e <= -0.30103; e += 0.01) {
        double p = pow(10, e);
        double lo = ens_norm_cdf(ens_norm_quantile(p));
        double hi = ens_norm_cdf(ens_norm_quantile(1 - p));
        assert_near(lo, p, 1e-12);
        /* Relative on the small side, where 1e-12 absolute is loose. */
        assert_true(fabs(lo - p) <= 1e-10 * p);
        assert_near(hi, 1 - p, 1e-12);
        n++;
    }
    for (double p = 0.001; p < 1; p += 0.001) {
        assert_near(ens_norm_cdf(ens_norm_quantile(p)), p, 1e-12);
        /* And against the closed form CDF, so both cannot be wrong alike. */
        assert_near(0.5 * erfc(-ens_norm_quantile(p) / sqrt(2.0)), p, 1e-12);
        n++;
    }
    assert_true(n > 1500);
    /* Monotone. */
    double prev = -INFINITY;
    for (double p = 1e-9; p < 1; p *= 1.3) {
        double q = ens_norm_quantile(p);
        assert_true(q > prev);
        prev = q;
    }
}

static double phi_corr(const ens_data_t *d, size_t a, size_t b)
{
    double n = (double)d->nrows, sa = 0, sb = 0, sab = 0;
    for (size_t i = 0; i < d->nrows; i++) {
        double ca = ens_data_col(d, a)[i] == d->y[i];
        double cb = ens_data_col(d, b)[i] == d->y[i];
        sa += ca;
        sb += cb;
        sab += ca * cb;
    }
    double pa = sa / n, pb = sb / n;
    return (sab / n - pa * pb) / sqrt(pa * (1 - pa) * pb * (1 - pb));
}

/* The threshold t with P(Z > t) = p, by bisection on the closed-form CDF
 * (independent of ens_norm_quantile). */
static double upper_threshold(double p)
{
    double lo = -12, hi = 12;
    for (int it = 0; it < 200; it++) {
        double mid = (lo + hi) / 2;
        if (0.5 * erfc(mid / sqrt(2.0)) > p)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* P(both correct) under the copula for accuracies pa, pb and latent
 * correlation r: with Z_b = r Z_a + sqrt(1 - r^2) E, integrate
 * phi(z) P(Z_b > t_b | z) over z > t_a (midpoint rule). */
static double both_correct(double pa, double pb, double r)
{
    double ta = upper_threshold(pa), tb = upper_threshold(pb), s = 0, h = 1e-3;
    for (double z = ta; z < 12; z += h) {
        double zz = z + h / 2;
        double dens = exp(-zz * zz / 2) / sqrt(2 * M_PI);
        s += dens * 0.5 * erfc((tb - r * zz) / sqrt(1 - r * r) / sqrt(2.0)) * h;
    }
    return s;
}

static void test_sample_marginals_and_correlation(void **state)
{
    (void)state;
    ens_family_t fam[3];
    memset(fam, 0, sizeof(fam));
    snprintf(fam[0].name, sizeof(fam[0].name), "alpha");
    fam[0].count = 2;
    fam[0].accuracy = 0.7;
    fam[0].rho = 0.8;
    snprintf(fam[1].name, sizeof(fam[1].name), "beta");
    fam[1].count = 2;
    fam[1].accuracy = 0.55;
    fam[1].rho = 0.5;
    snprintf(fam[2].name, sizeof(fam[2].name), "gamma");
    fam[2].count = 1;
    fam[2].accuracy = 0.9;
    fam[2].rho = 0.3;
    ens_sample_opts_t o = {fam, 3, 50000, 5, 0.2, 777};
    char err[256] = "";
    ens_data_t *d = ens_sample(&o, err, sizeof(err));
    if (!d)
        print_message("ens_sample: %s\n", err);
    assert_non_null(d);
    assert_int_equal(d->nrows, 50000);
    assert_int_equal(d->nmodels, 5);
    assert_int_equal(d->nlabels, 5);
    const char *names[5] = {"alpha-1", "alpha-2", "beta-1", "beta-2", "gamma-1"};
    const double acc[5] = {0.7, 0.7, 0.55, 0.55, 0.9};
    for (size_t j = 0; j < 5; j++) {
        assert_string_equal(d->model_names[j], names[j]);
        size_t right = 0;
        for (size_t i = 0; i < d->nrows; i++) {
            uint8_t v = ens_data_col(d, j)[i];
            assert_true(v < 5);
            right += v == d->y[i];
        }
        double a = (double)right / (double)d->nrows;
        print_message("%s accuracy %.4f (target %.2f)\n", names[j], a, acc[j]);
        assert_near(a, acc[j], 0.01);
    }
    /* Correctness correlation: within a family above across families, and
     * each near the copula's value (computed here by integration). */
    double in_a = phi_corr(d, 0, 1), in_b = phi_corr(d, 2, 3);
    double cross_ab = phi_corr(d, 0, 2), cross_ag = phi_corr(d, 1, 4);
    print_message("phi: alpha %.3f beta %.3f alpha-beta %.3f alpha-gamma %.3f\n", in_a, in_b,
                  cross_ab, cross_ag);
    assert_true(in_a > in_b);
    assert_true(in_b > cross_ab);
    assert_true(cross_ab > 0.03);
    const struct {
        size_t a, b;
        double pa, pb, r;
    } pairs[] = {{0, 1, 0.7, 0.7, 0.8},
                 {2, 3, 0.55, 0.55, 0.5},
                 {0, 2, 0.7, 0.55, 0.2},
                 {1, 4, 0.7, 0.9, 0.2}};
    for (size_t k = 0; k < 4; k++) {
        double p11 = both_correct(pairs[k].pa, pairs[k].pb, pairs[k].r), got = 0;
        for (size_t i = 0; i < d->nrows; i++)
            got += ens_data_col(d, pairs[k].a)[i] == d->y[i] &&
                   ens_data_col(d, pairs[k].b)[i] == d->y[i];
        got /= (double)d->nrows;
        print_message("P(both right) %zu,%zu: %.4f (copula %.4f)\n", pairs[k].a, pairs[k].b, got,
                      p11);
        assert_near(got, p11, 0.01);
    }

    /* The truth is uniform and wrong answers are uniform over the other
     * labels: chi-square over 5 classes (4 dof) and over the 5 x 4 cells of
     * (truth, wrong answer) per model (15 dof; the row sums are not fixed,
     * so a loose bound of mean + 8 sd is used). */
    double yc[5] = {0}, chi = 0;
    for (size_t i = 0; i < d->nrows; i++)
        yc[d->y[i]]++;
    for (int l = 0; l < 5; l++)
        chi += (yc[l] - 10000) * (yc[l] - 10000) / 10000;
    assert_true(chi < 4 + 8 * sqrt(8.0));
    for (size_t j = 0; j < 5; j++) {
        double cnt[5][5] = {{0}}, row[5] = {0};
        for (size_t i = 0; i < d->nrows; i++) {
            uint8_t v = ens_data_col(d, j)[i], y = d->y[i];
            if (v != y) {
                cnt[y][v]++;
                row[y]++;
            }
        }
        chi = 0;
        for (int y = 0; y < 5; y++)
            for (int v = 0; v < 5; v++) {
                if (v == y)
                    continue;
                double e = row[y] / 4;
                chi += (cnt[y][v] - e) * (cnt[y][v] - e) / e;
            }
        assert_true(chi < 15 + 8 * sqrt(30.0));
    }
    ens_data_destroy(&d);

    /* Same seed, same matrix; another seed, another one. */
    ens_data_t *d1 = ens_sample(&o, err, sizeof(err));
    ens_data_t *d2 = ens_sample(&o, err, sizeof(err));
    o.seed = 778;
    ens_data_t *d3 = ens_sample(&o, err, sizeof(err));
    assert_memory_equal(d1->x, d2->x, 5 * 50000);
    assert_memory_equal(d1->y, d2->y, 50000);
    assert_true(memcmp(d1->y, d3->y, 50000) != 0);
    ens_data_destroy(&d1);
    ens_data_destroy(&d2);
    ens_data_destroy(&d3);
}

static void test_sample_independent_families(void **state)
{
    (void)state;
    ens_family_t fam[2];
    memset(fam, 0, sizeof(fam));
    snprintf(fam[0].name, sizeof(fam[0].name), "a");
    fam[0].count = 1;
    fam[0].accuracy = 0.6;
    snprintf(fam[1].name, sizeof(fam[1].name), "b");
    fam[1].count = 1;
    fam[1].accuracy = 0.6;
    ens_sample_opts_t o = {fam, 2, 50000, 3, 0.0, 1};
    char err[256];
    ens_data_t *d = ens_sample(&o, err, sizeof(err));
    assert_non_null(d);
    assert_true(fabs(phi_corr(d, 0, 1)) < 0.02);
    ens_data_destroy(&d);
}

static void test_sample_bad_options(void **state)
{
    (void)state;
    ens_family_t fam[1];
    memset(fam, 0, sizeof(fam));
    snprintf(fam[0].name, sizeof(fam[0].name), "a");
    fam[0].count = 2;
    fam[0].accuracy = 0.6;
    fam[0].rho = 0.3;
    char err[256];
    ens_sample_opts_t o = {fam, 1, 100, 1, 0.0, 1};
    err[0] = '\0';
    assert_null(ens_sample(&o, err, sizeof(err))); /* one class */
    assert_true(strlen(err) > 0);
    o.classes = 3;
    o.global_rho = 0.5; /* above the family's rho */
    assert_null(ens_sample(&o, err, sizeof(err)));
    o.global_rho = 0.0;
    fam[0].rho = 1.0;
    assert_null(ens_sample(&o, err, sizeof(err)));
    fam[0].rho = 0.3;
    fam[0].accuracy = 1.0;
    assert_null(ens_sample(&o, err, sizeof(err)));
    fam[0].accuracy = 0.6;
    ens_data_t *d = ens_sample(&o, err, sizeof(err));
    assert_non_null(d);
    ens_data_destroy(&d);
}

static void test_sample_families_parse(void **state)
{
    (void)state;
    ens_family_t f[4];
    char err[256] = "";
    int n = ens_families_parse("strong:3:0.8:0.95,weak:1:0.65:0", f, 4, err, sizeof(err));
    assert_int_equal(n, 2);
    assert_string_equal(f[0].name, "strong");
    assert_int_equal(f[0].count, 3);
    assert_near(f[0].accuracy, 0.8, 1e-15);
    assert_near(f[0].rho, 0.95, 1e-15);
    assert_string_equal(f[1].name, "weak");
    assert_int_equal(f[1].count, 1);
    assert_near(f[1].accuracy, 0.65, 1e-15);
    assert_near(f[1].rho, 0.0, 0);
    assert_int_equal(ens_families_parse("x:2:0.5:0.1", f, 4, err, sizeof(err)), 1);

    const char *bad[] = {
        "",                                                            /* nothing */
        "a:1:0.5",                                                     /* three fields */
        "a:1:0.5:0.1:9",                                               /* five fields */
        "a:x:0.5:0.1",                                                 /* count not a number */
        "a:1:0.5x:0.1",                                                /* trailing junk */
        "a:1:1.5:0.1",                                                 /* accuracy out of (0, 1) */
        "a:1:0:0.1",                                                   /* accuracy 0 */
        "a:1:0.5:1",                                                   /* rho 1 */
        "a:1:0.5:-0.1",                                                /* rho negative */
        "a:-1:0.5:0.1",                                                /* negative count */
        "a:1:0.5:0.1,b:1:0.5:0.1,c:1:0.5:0.1,d:1:0.5:0.1,e:1:0.5:0.1", /* > max */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = ens_families_parse(bad[i], f, 4, err, sizeof(err));
        if (rc != ENS_EPARSE)
            print_message("spec '%s' gave %d\n", bad[i], rc);
        assert_int_equal(rc, ENS_EPARSE);
        assert_true(strlen(err) > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_norm_cdf),
        cmocka_unit_test(test_sample_norm_quantile),
        cmocka_unit_test(test_sample_marginals_and_correlation),
        cmocka_unit_test(test_sample_independent_families),
        cmocka_unit_test(test_sample_bad_options),
        cmocka_unit_test(test_sample_families_parse),
    };
    return cmocka_run_group_tests_name("sample", tests, NULL, NULL);
}
