/* test_copula.c - the bivariate normal CDF, the tetrachoric fit, the
 * one-factor floor and finite-set errors, and Fano's bound, each against an
 * independent reference: adaptive integration with libm's erfc, Sheppard's
 * formula, brute-force counts, Monte Carlo with this file's own generator
 * (splitmix64 + Box-Muller), and held-out errors of the library's combiners. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ensembled/combine.h"
#include "ensembled/copula.h"
#include "ensembled/csv.h"
#include "ensembled/data.h"
#include "ensembled/err.h"
#include "ensembled/eval.h"
#include "ensembled/mi.h"
#include "ensembled/sample.h"
#include "ensembled/select.h"
#include "testutil.h"

/* ---- independent references ------------------------------------------ */

static double ref_phi_cdf(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

typedef struct {
    double k, rho, srho;
} bvn_arg_t;

/* phi(x) P(Y <= k | X = x) for the CDF integral over x. */
static double bvn_integrand(const bvn_arg_t *a, double x)
{
    return exp(-x * x / 2) / sqrt(2 * M_PI) * ref_phi_cdf((a->k - a->rho * x) / a->srho);
}

static double simpson(const bvn_arg_t *a, double lo, double hi, double flo, double fmid, double fhi,
                      double whole, double tol, int depth)
{
    double mid = (lo + hi) / 2, lm = (lo + mid) / 2, rm = (mid + hi) / 2;
    double flm = bvn_integrand(a, lm), frm = bvn_integrand(a, rm);
    double left = (mid - lo) / 6 * (flo + 4 * flm + fmid);
    double right = (hi - mid) / 6 * (fmid + 4 * frm + fhi);
    if (depth <= 0 || fabs(left + right - whole) <= 15 * tol)
        return left + right + (left + right - whole) / 15;
    return simpson(a, lo, mid, flo, flm, fmid, left, tol / 2, depth - 1) +
           simpson(a, mid, hi, fmid, frm, fhi, right, tol / 2, depth - 1);
}

static double adapt(const bvn_arg_t *a, double lo, double hi, double tol)
{
    if (hi <= lo)
        return 0;
    /* Fixed panels first, so that no feature falls between the first
     * Simpson points. */
    double s = 0;
    int panels = 64;
    for (int p = 0; p < panels; p++) {
        double l = lo + (hi - lo) * p / panels, h = lo + (hi - lo) * (p + 1) / panels;
        double fl = bvn_integrand(a, l), fm = bvn_integrand(a, (l + h) / 2),
               fh = bvn_integrand(a, h);
        s += simpson(a, l, h, fl, fm, fh, (h - l) / 6 * (fl + 4 * fm + fh), tol / panels, 40);
    }
    return s;
}

/* P(X <= h, Y <= k) = int_-inf^h phi(x) Phi((k - rho x)/sqrt(1 - rho^2)) dx,
 * split at x = k/rho where the inner Phi steps when |rho| is near 1. */
static double ref_bvn_cdf(double h, double k, double rho)
{
    bvn_arg_t a = {k, rho, sqrt((1 - rho) * (1 + rho))};
    double lo = -12, cut = rho != 0 ? k / rho : h;
    if (cut > lo && cut < h)
        return adapt(&a, lo, cut, 1e-15) + adapt(&a, cut, h, 1e-15);
    return adapt(&a, lo, h, 1e-15);
}

typedef struct {
    uint64_t s;
    int have;
    double spare;
} mc_rng_t;

static double mc_uniform(mc_rng_t *r)
{
    tu_rng_t t = {r->s};
    double u = tu_uniform(&t);
    r->s = t.s;
    return u;
}

static double mc_normal(mc_rng_t *r)
{
    if (r->have) {
        r->have = 0;
        return r->spare;
    }
    double u1 = mc_uniform(r), u2 = mc_uniform(r);
    double rad = sqrt(-2 * log(1 - u1)), th = 2 * M_PI * u2;
    r->spare = rad * sin(th);
    r->have = 1;
    return rad * cos(th);
}

/* The threshold t with P(Z > t) = p, by bisection on erfc. */
static double ref_threshold(double p)
{
    double lo = -12, hi = 12;
    for (int it = 0; it < 200; it++) {
        double mid = (lo + hi) / 2;
        if (1 - ref_phi_cdf(mid) > p)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- bivariate normal -------------------------------------------------- */

static void test_copula_bvn_against_integration(void **state)
{
    (void)state;
    const double hs[] = {-3.2, -1.5, -0.4, 0.0, 0.7, 1.9, 3.1};
    const double rhos[] = {-0.99999, -0.999, -0.95, -0.926, -0.924, -0.8,  -0.5,
                           -0.1,     0.05,   0.29,  0.31,   0.6,    0.74,  0.76,
                           0.9,      0.924,  0.926, 0.95,   0.99,   0.999, 0.99999};
    double worst = 0;
    size_t n = 0;
    for (size_t a = 0; a < sizeof(hs) / sizeof(hs[0]); a++)
        for (size_t b = 0; b < sizeof(hs) / sizeof(hs[0]); b++)
            for (size_t r = 0; r < sizeof(rhos) / sizeof(rhos[0]); r++) {
                double want = ref_bvn_cdf(hs[a], hs[b], rhos[r]);
                double got = ens_bvn_cdf(hs[a], hs[b], rhos[r]);
                double e = fabs(got - want);
                if (e > 1e-13)
                    print_message("h=%g k=%g rho=%g got %.17g want %.17g\n", hs[a], hs[b], rhos[r],
                                  got, want);
                worst = fmax(worst, e);
                n++;
            }
    print_message("bvn: %zu points, max |error| vs adaptive integration %.2e\n", n, worst);
    assert_true(worst <= 1e-13);
}

static void test_copula_bvn_closed_forms(void **state)
{
    (void)state;
    /* Sheppard: P(X > 0, Y > 0) = 1/4 + asin(rho) / (2 pi). */
    for (double r = -1; r <= 1.0000001; r += 0.001) {
        double rho = fmin(r, 1);
        assert_near(ens_bvn_upper(0, 0, rho), 0.25 + asin(rho) / (2 * M_PI), 2e-15);
    }
    for (double h = -4; h <= 4; h += 0.25)
        for (double k = -4; k <= 4; k += 0.25) {
            /* Independence, comonotone and antimonotone limits. */
            assert_near(ens_bvn_cdf(h, k, 0), ref_phi_cdf(h) * ref_phi_cdf(k), 1e-15);
            assert_near(ens_bvn_cdf(h, k, 1), ref_phi_cdf(fmin(h, k)), 1e-15);
            assert_near(ens_bvn_cdf(h, k, -1), fmax(0, ref_phi_cdf(h) + ref_phi_cdf(k) - 1), 1e-15);
            /* Symmetry, and the upper orthant by inclusion-exclusion. */
            for (double rho = -0.97; rho < 1; rho += 0.097) {
                double c = ens_bvn_cdf(h, k, rho);
                assert_near(c, ens_bvn_cdf(k, h, rho), 1e-15);
                assert_near(ens_bvn_upper(h, k, rho), 1 - ref_phi_cdf(h) - ref_phi_cdf(k) + c,
                            2e-15);
            }
            /* No jump where the method changes branch. */
            /* (The true change over 1e-12 in rho is below 1e-12.) */
            assert_near(ens_bvn_cdf(h, k, 0.925 - 1e-12), ens_bvn_cdf(h, k, 0.925), 2e-12);
            assert_near(ens_bvn_cdf(h, k, -0.925 + 1e-12), ens_bvn_cdf(h, k, -0.925), 2e-12);
        }
    assert_near(ens_bvn_cdf(INFINITY, 0.3, 0.5), ref_phi_cdf(0.3), 1e-15);
    assert_near(ens_bvn_cdf(-INFINITY, 0.3, 0.5), 0, 0);
    assert_near(ens_bvn_upper(-INFINITY, -INFINITY, 0.5), 1, 0);
    assert_true(isnan(ens_bvn_cdf(NAN, 0, 0)));
    /* Far tails stay in [0, 1] and tiny. */
    assert_true(ens_bvn_cdf(-30, -30, 0.999) >= 0 && ens_bvn_cdf(-30, -30, 0.999) < 1e-190);
    assert_true(ens_bvn_cdf(-30, 30, -0.9999) >= 0);
}

/* ---- fit --------------------------------------------------------------- */

static void test_copula_tetrachoric_round_trip(void **state)
{
    (void)state;
    const double ps[] = {0.03, 0.2, 0.5, 0.73, 0.97};
    double worst = 0;
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 5; b++)
            for (double rho = -0.98; rho < 0.99; rho += 0.07) {
                double ta = ref_threshold(ps[a]), tb = ref_threshold(ps[b]);
                double p11 = ens_bvn_upper(ta, tb, rho);
                double got = ens_copula_tetrachoric(ps[a], ps[b], p11);
                /* The joint accuracy always matches; rho itself only where
                 * it moves p11 (near the Frechet bounds p11 is flat in rho
                 * to double precision, and any rho there is a root). */
                assert_near(ens_bvn_upper(ta, tb, got), p11, 1e-13);
                double slope =
                    exp(-(ta * ta - 2 * rho * ta * tb + tb * tb) / (2 * (1 - rho * rho))) /
                    (2 * M_PI * sqrt(1 - rho * rho));
                if (slope > 1e-4)
                    worst = fmax(worst, fabs(got - rho));
            }
    print_message("tetrachoric round trip: max |error| %.2e\n", worst);
    assert_true(worst < 1e-8);
    /* Beyond the Frechet bounds: clamped. */
    assert_near(ens_copula_tetrachoric(0.6, 0.7, 0.6), 1, 0);
    assert_near(ens_copula_tetrachoric(0.6, 0.7, 0.29), -1, 0);
    assert_near(ens_copula_tetrachoric(0.5, 0.5, 0.25), 0, 1e-10);
    assert_true(isnan(ens_copula_tetrachoric(0, 0.5, 0)));
    assert_true(isnan(ens_copula_tetrachoric(0.5, 1, 0.5)));
}

static ens_data_t *sample_families(const ens_family_t *f, size_t nf, size_t rows, size_t classes,
                                   double g, uint64_t seed)
{
    ens_sample_opts_t o = {f, nf, rows, classes, g, seed};
    char err[256] = "";
    ens_data_t *d = ens_sample(&o, err, sizeof(err));
    if (!d)
        print_message("ens_sample: %s\n", err);
    assert_non_null(d);
    return d;
}

static ens_family_t fam(const char *name, size_t count, double acc, double rho)
{
    ens_family_t f;
    memset(&f, 0, sizeof(f));
    snprintf(f.name, sizeof(f.name), "%s", name);
    f.count = count;
    f.accuracy = acc;
    f.rho = rho;
    return f;
}

static void test_copula_fit_recovers_sampler(void **state)
{
    (void)state;
    ens_family_t f[3] = {fam("a", 3, 0.8, 0.7), fam("b", 2, 0.65, 0.4), fam("c", 2, 0.55, 0.2)};
    const double g = 0.1;
    ens_data_t *d = sample_families(f, 3, 60000, 4, g, 11);
    ens_copula_t *c = ens_copula_fit(d, NULL, 0);
    assert_non_null(c);
    assert_int_equal(c->n, 7);
    size_t famof[7] = {0, 0, 0, 1, 1, 2, 2};
    double worst_p = 0, worst_r = 0;
    for (size_t i = 0; i < 7; i++) {
        worst_p = fmax(worst_p, fabs(c->accuracy[i] - f[famof[i]].accuracy));
        assert_near(c->tau[i], ens_norm_quantile(1 - c->accuracy[i]), 1e-12);
        for (size_t j = 0; j < 7; j++) {
            double want = i == j ? 1 : famof[i] == famof[j] ? f[famof[i]].rho : g;
            worst_r = fmax(worst_r, fabs(c->rho[i * 7 + j] - want));
        }
    }
    print_message("fit on 60000 sampled rows: max |p - p*| %.4f, max |rho - rho*| %.4f\n", worst_p,
                  worst_r);
    assert_true(worst_p <= 0.01);
    assert_true(worst_r <= 0.03);

    ens_copula_summary_t s;
    ens_copula_summary(c, NULL, 0, &s);
    assert_int_equal(s.pairs, 21);
    double want_mean = (3 * 0.7 + 1 * 0.4 + 1 * 0.2 + 16 * g) / 21;
    assert_near(s.mean, want_mean, 0.015);
    size_t cl[7];
    size_t ncl = ens_copula_clusters(c, 0.6, cl);
    assert_int_equal(ncl, 5); /* {a-1, a-2, a-3}, then four singletons */
    assert_int_equal(cl[0], 0);
    assert_int_equal(cl[1], 0);
    assert_int_equal(cl[2], 0);
    assert_int_equal(cl[3], 1);
    assert_int_equal(cl[6], 4);
    ens_copula_destroy(&c);
    assert_null(c);
    ens_copula_destroy(&c);

    /* A subset fit is the same numbers; bad subsets are refused. */
    size_t sub[2] = {5, 0};
    ens_copula_t *cs = ens_copula_fit(d, sub, 2);
    ens_copula_t *call = ens_copula_fit(d, NULL, 0);
    assert_near(cs->rho[1], call->rho[5 * 7 + 0], 0);
    assert_near(cs->accuracy[0], call->accuracy[5], 0);
    ens_copula_destroy(&cs);
    ens_copula_destroy(&call);
    size_t dup[2] = {1, 1}, oob[1] = {7};
    assert_null(ens_copula_fit(d, dup, 2));
    assert_null(ens_copula_fit(d, oob, 1));
    assert_null(ens_copula_fit(d, sub, 0));
    ens_data_destroy(&d);
}

/* With missing and abstained cells, every figure equals the one computed
 * here with plain loops over the pairwise-complete rows. */
static void test_copula_fit_missing_and_abstain(void **state)
{
    (void)state;
    ens_family_t f[2] = {fam("a", 2, 0.7, 0.5), fam("b", 2, 0.6, 0.3)};
    ens_data_t *d = sample_families(f, 2, 3001, 3, 0.1, 5);
    tu_rng_t r;
    tu_seed(&r, 99);
    for (size_t j = 0; j < d->nmodels; j++)
        for (size_t i = 0; i < d->nrows; i++) {
            size_t u = tu_below(&r, 100);
            if (u < 10 + 5 * j)
                d->x[j * d->nrows + i] = ENS_SYM_MISSING;
            else if (u < 15 + 5 * j)
                d->x[j * d->nrows + i] = ENS_SYM_ABSTAIN;
        }
    ens_copula_t *c = ens_copula_fit(d, NULL, 0);
    for (size_t a = 0; a < d->nmodels; a++) {
        assert_near(c->accuracy[a], ens_data_accuracy(d, a), 1e-15);
        for (size_t b = 0; b < d->nmodels; b++) {
            if (a == b)
                continue;
            double n = 0, ra = 0, rb = 0, r11 = 0;
            for (size_t i = 0; i < d->nrows; i++) {
                uint8_t xa = ens_data_col(d, a)[i], xb = ens_data_col(d, b)[i];
                if (xa == ENS_SYM_MISSING || xb == ENS_SYM_MISSING)
                    continue;
                n++;
                ra += xa == d->y[i];
                rb += xb == d->y[i];
                r11 += xa == d->y[i] && xb == d->y[i];
            }
            double want = ens_copula_tetrachoric(ra / n, rb / n, r11 / n);
            assert_near(c->rho[a * d->nmodels + b], want, 1e-15);
        }
    }
    ens_copula_destroy(&c);
    /* A model never right has no defined correlation. */
    for (size_t i = 0; i < d->nrows; i++)
        d->x[i] = ENS_SYM_ABSTAIN;
    c = ens_copula_fit(d, NULL, 0);
    assert_true(isnan(c->rho[1]));
    assert_true(isfinite(c->tau[0]));
    ens_copula_summary_t s;
    ens_copula_summary(c, NULL, 0, &s);
    assert_int_equal(s.pairs, 3);
    ens_copula_destroy(&c);
    ens_data_destroy(&d);
}

/* 100 models over 100,000 rows: the time is printed, never asserted; the
 * figures are checked against plain counts on a few pairs. */
static void test_copula_fit_100_models_100k_rows(void **state)
{
    (void)state;
    ens_family_t f[4] = {fam("p", 25, 0.7, 0.6), fam("q", 25, 0.6, 0.4), fam("r", 25, 0.5, 0.3),
                         fam("s", 25, 0.8, 0.5)};
    ens_data_t *d = sample_families(f, 4, 100000, 4, 0.2, 3);
    double t0 = now_sec();
    ens_copula_t *c = ens_copula_fit(d, NULL, 0);
    double t1 = now_sec();
    print_message("fit of 100 models x 100000 rows (4950 pairs): %.3f s\n", t1 - t0);
    const size_t pairs[][2] = {{0, 1}, {0, 99}, {30, 60}, {98, 99}};
    for (size_t p = 0; p < 4; p++) {
        size_t a = pairs[p][0], b = pairs[p][1];
        double ra = 0, rb = 0, r11 = 0, n = (double)d->nrows;
        for (size_t i = 0; i < d->nrows; i++) {
            int ca = ens_data_col(d, a)[i] == d->y[i], cb = ens_data_col(d, b)[i] == d->y[i];
            ra += ca, rb += cb, r11 += ca && cb;
        }
        assert_near(c->rho[a * 100 + b], ens_copula_tetrachoric(ra / n, rb / n, r11 / n), 1e-15);
    }
    ens_copula_summary_t s;
    ens_copula_summary(c, NULL, 0, &s);
    assert_int_equal(s.pairs, 4950);
    ens_copula_destroy(&c);
    ens_data_destroy(&d);
}

/* ---- floor ------------------------------------------------------------- */

/* Error of the plurality vote (ties at random: the floor's limit does not
 * depend on them) of m models of the one-factor
 * copula, thresholds cycling over tau[0..n), nlabels labels, wrong answers
 * uniform over the others: drawn latents, rows rows. */
static double mc_vote_error(double rho, const double *tau, size_t n, size_t m, size_t nlabels,
                            size_t rows, uint64_t seed)
{
    mc_rng_t r = {seed, 0, 0};
    size_t votes[16];
    size_t wrong = 0;
    double sr = sqrt(rho), se = sqrt(1 - rho);
    for (size_t row = 0; row < rows; row++) {
        memset(votes, 0, sizeof(votes));
        double g = mc_normal(&r);
        /* The truth is label 0 (labels are exchangeable). */
        for (size_t i = 0; i < m; i++) {
            double z = sr * g + se * mc_normal(&r);
            if (z > tau[i % n])
                votes[0]++;
            else
                votes[1 + (size_t)(mc_uniform(&r) * (double)(nlabels - 1))]++;
        }
        size_t best = 0, ties = 0;
        for (size_t l = 0; l < nlabels; l++) {
            if (votes[l] > best)
                best = votes[l], ties = 1;
            else if (votes[l] == best)
                ties++;
        }
        /* A tie holding the truth is won with probability 1/ties. */
        if (votes[0] != best || mc_uniform(&r) * (double)ties >= 1)
            wrong++;
    }
    return (double)wrong / (double)rows;
}

static void test_copula_floor_matches_monte_carlo(void **state)
{
    (void)state;
    /* Two labels: every wrong answer is the same one, and 1,000 models are
     * as good as infinitely many to well under 0.5 points. */
    const struct {
        double rho;
        double acc[4];
        size_t n;
    } cases[] = {
        {0.4, {0.7, 0.6, 0.65, 0.55}, 4},
        {0.6, {0.45, 0.35, 0.5, 0.3}, 4},
        {0.25, {0.62, 0.62, 0.62, 0.62}, 1},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        double tau[4];
        for (size_t i = 0; i < cases[c].n; i++)
            tau[i] = ref_threshold(cases[c].acc[i]);
        double floor = ens_copula_floor(cases[c].rho, tau, cases[c].n, 2);
        /* 100,000 rows: a standard error below 0.0016. */
        double mc = mc_vote_error(cases[c].rho, tau, cases[c].n, 1000, 2, 100000, 1234 + c);
        print_message("floor rho %.2f L 2: computed %.4f, Monte Carlo (1000 models) %.4f\n",
                      cases[c].rho, floor, mc);
        assert_near(floor, mc, 0.005);
    }
    /* Four labels: the truth must beat the largest of three noisy wrong
     * counts, which sits about 0.85 sd above their mean, so m models fall
     * short of the limit by O(1/sqrt(m)) (theory.md §3): the Monte Carlo error
     * is above the floor and closes in on it as m grows. */
    {
        double tau[4];
        const double acc[4] = {0.45, 0.35, 0.5, 0.3};
        for (size_t i = 0; i < 4; i++)
            tau[i] = ref_threshold(acc[i]);
        double floor = ens_copula_floor(0.6, tau, 4, 4);
        double mc1 = mc_vote_error(0.6, tau, 4, 1000, 4, 60000, 99);
        double mc4 = mc_vote_error(0.6, tau, 4, 4000, 4, 15000, 98);
        print_message("floor rho 0.60 L 4: computed %.4f, Monte Carlo 1000 models %.4f, "
                      "4000 models %.4f\n",
                      floor, mc1, mc4);
        assert_true(mc1 > floor && mc1 - floor < 0.02);
        assert_true(fabs(mc4 - floor) < mc1 - floor);
    }
    /* No correlation: infinitely many models are right (or wrong) always. */
    double t = ref_threshold(0.6);
    assert_near(ens_copula_floor(0, &t, 1, 2), 0, 0);
    t = ref_threshold(0.4);
    assert_near(ens_copula_floor(-0.2, &t, 1, 2), 1, 0);
    /* One model, binary: the floor is P(Phi((sqrt(r) G - t)/sqrt(1-r)) <= 1/2)
     * = P(G <= t / sqrt(r)). */
    t = ref_threshold(0.7);
    assert_near(ens_copula_floor(0.36, &t, 1, 2), ref_phi_cdf(t / 0.6), 1e-12);
    assert_true(isnan(ens_copula_floor(0.3, &t, 1, 1.5)));
}

/* ---- m models: the finite-m vote error --------------------------------- */

/* Binomial(n, p) by inversion from 0, in chunks of at most 256 trials
 * counting the rarer outcome, so that the first term never underflows. */
static size_t mc_binomial(mc_rng_t *r, size_t n, double p)
{
    int flip = p > 0.5;
    double pp = flip ? 1 - p : p, odds = pp / (1 - pp);
    size_t total = 0;
    while (n > 0) {
        size_t c = n < 256 ? n : 256, x = 0;
        n -= c;
        double u = mc_uniform(r), f = pow(1 - pp, (double)c), cum = f;
        while (u > cum && x < c) {
            f *= (double)(c - x) / (double)(x + 1) * odds;
            cum += f;
            x++;
        }
        total += flip ? c - x : x;
    }
    return total;
}

/* Monte Carlo of the vote of m models (thresholds cycling over tau[0..n))
 * drawing only the counts: given g the truth's count is a sum of n
 * binomials, and the wrong answers split over the L - 1 wrong labels one
 * binomial at a time (a uniform multinomial). Ties are broken at random. */
static double mc_vote_error_counts(double rho, const double *tau, size_t n, size_t m, size_t L,
                                   size_t rows, uint64_t seed)
{
    mc_rng_t r = {seed, 0, 0};
    double sr = sqrt(rho), se = sqrt(1 - rho);
    size_t wrong = 0;
    for (size_t row = 0; row < rows; row++) {
        double g = mc_normal(&r);
        size_t k = 0;
        for (size_t j = 0; j < n; j++)
            k += mc_binomial(&r, m / n + (j < m % n), ref_phi_cdf((sr * g - tau[j]) / se));
        size_t left = m - k, best = k, ties = 1;
        for (size_t l = L - 1; l >= 1; l--) {
            size_t w = l == 1 ? left : mc_binomial(&r, left, 1.0 / (double)l);
            left -= w;
            if (w > best)
                best = w, ties = 0;
            else if (w == best)
                ties++;
        }
        if (best != k || mc_uniform(&r) * (double)ties >= 1)
            wrong++;
    }
    return (double)wrong / (double)rows;
}

/* Brute force for a few models: every answer tuple in L^m with the truth at
 * label 0, ties split evenly, the trapezoid rule over g. */
static double ref_vote_m(double rho, const double *tau, size_t n, size_t m, size_t L)
{
    size_t tuples = 1;
    for (size_t i = 0; i < m; i++)
        tuples *= L;
    double sr = sqrt(rho), se = sqrt(1 - rho), h = 0.004, right = 0;
    for (double g = -9; g <= 9; g += h) {
        double w = h * exp(-g * g / 2) / sqrt(2 * M_PI), q[8];
        for (size_t i = 0; i < m; i++)
            q[i] = ref_phi_cdf((sr * g - tau[i % n]) / se);
        for (size_t t = 0; t < tuples; t++) {
            size_t cnt[8] = {0}, best = 0, ties = 0;
            double p = w;
            for (size_t i = 0, tt = t; i < m; i++, tt /= L) {
                cnt[tt % L]++;
                p *= tt % L == 0 ? q[i] : (1 - q[i]) / (double)(L - 1);
            }
            for (size_t l = 0; l < L; l++) {
                if (cnt[l] > best)
                    best = cnt[l], ties = 1;
                else if (cnt[l] == best)
                    ties++;
            }
            if (cnt[0] == best)
                right += p / (double)ties;
        }
    }
    return 1 - right;
}

static void test_copula_vote_m_brute_force(void **state)
{
    (void)state;
    const double acc[3] = {0.6, 0.45, 0.5};
    double tau[3];
    for (size_t i = 0; i < 3; i++)
        tau[i] = ref_threshold(acc[i]);
    const struct {
        double rho;
        size_t n, m, L;
    } cases[] = {
        {0.5, 3, 1, 4}, {0.5, 3, 2, 4}, {0.3, 3, 4, 4}, {0.7, 2, 5, 4}, {0.4, 3, 6, 3},
        {0.6, 3, 7, 2}, {0.2, 1, 8, 2}, {0.9, 3, 5, 5}, {0.0, 3, 5, 3},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        double got = ens_copula_vote_error_m(cases[c].rho, tau, cases[c].n, cases[c].L, cases[c].m);
        double want = ref_vote_m(cases[c].rho, tau, cases[c].n, cases[c].m, cases[c].L);
        print_message("vote of %zu models, L %zu, rho %.1f: %.8f (brute force %.8f)\n", cases[c].m,
                      cases[c].L, cases[c].rho, got, want);
        assert_near(got, want, 1e-7);
    }
    /* One model: its error. */
    assert_near(ens_copula_vote_error_m(0.4, tau, 1, 3, 1), 0.4, 1e-9);
    assert_true(isnan(ens_copula_vote_error_m(0.4, tau, 0, 3, 5)));
    assert_true(isnan(ens_copula_vote_error_m(0.4, tau, 1, 1, 5)));
    assert_true(isnan(ens_copula_vote_error_m(0.4, tau, 1, 3, 0)));
}

/* The requirement: the computed error within 0.5 points of a Monte
 * Carlo of the same model with 1,000 models, for 2 and 4 labels. */
static void test_copula_vote_m_matches_monte_carlo(void **state)
{
    (void)state;
    const struct {
        double rho;
        double acc[4];
        size_t L;
    } cases[] = {
        {0.4, {0.7, 0.6, 0.65, 0.55}, 2}, {0.6, {0.45, 0.35, 0.5, 0.3}, 2},
        {0.6, {0.45, 0.35, 0.5, 0.3}, 4}, {0.3, {0.4, 0.5, 0.35, 0.45}, 4},
        {0.8, {0.3, 0.25, 0.4, 0.35}, 4},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        double tau[4];
        for (size_t i = 0; i < 4; i++)
            tau[i] = ref_threshold(cases[c].acc[i]);
        double e = ens_copula_vote_error_m(cases[c].rho, tau, 4, cases[c].L, 1000);
        double fl = ens_copula_floor(cases[c].rho, tau, 4, (double)cases[c].L);
        /* 200,000 rows: a standard error below 0.0012. */
        double mc = mc_vote_error_counts(cases[c].rho, tau, 4, 1000, cases[c].L, 200000, 500 + c);
        print_message("rho %.2f L %zu, 1000 models: computed %.4f, Monte Carlo %.4f "
                      "(m -> inf floor %.4f)\n",
                      cases[c].rho, cases[c].L, e, mc, fl);
        assert_near(e, mc, 0.005);
    }
    /* The counts-only Monte Carlo agrees with drawing every model. */
    double tau[4];
    const double acc[4] = {0.45, 0.35, 0.5, 0.3};
    for (size_t i = 0; i < 4; i++)
        tau[i] = ref_threshold(acc[i]);
    double a = mc_vote_error_counts(0.6, tau, 4, 200, 4, 40000, 3);
    double b = mc_vote_error(0.6, tau, 4, 200, 4, 40000, 4);
    print_message("200 models, L 4: Monte Carlo of counts %.4f, of models %.4f\n", a, b);
    assert_near(a, b, 0.01);
}

/* As m grows the vote error tends to the m -> infinity floor: for L = 2 the
 * gap is O(1/m), for L = 4 it is O(1/sqrt(m)) (theory.md §3.1). */
static void test_copula_vote_m_tends_to_floor(void **state)
{
    (void)state;
    double t = ref_threshold(0.4);
    const size_t ms[] = {250, 1000, 4000, 16000};
    for (size_t L = 2; L <= 4; L += 2) {
        double fl = ens_copula_floor(0.6, &t, 1, (double)L), last = 1;
        for (size_t i = 0; i < 4; i++) {
            double gap = fabs(ens_copula_vote_error_m(0.6, &t, 1, L, ms[i]) - fl);
            print_message("L %zu m %5zu: |vote error - floor| %.6f, times sqrt(m) %.4f\n", L, ms[i],
                          gap, gap * sqrt((double)ms[i]));
            /* Quadrupling m halves the gap (L = 4) or quarters it (L = 2). */
            assert_true(gap < last * (L == 4 ? 0.52 : 0.27));
            last = gap;
        }
        assert_true(last < (L == 4 ? 0.003 : 1e-5));
    }
    /* With several thresholds as well. */
    double tau[4] = {ref_threshold(0.45), ref_threshold(0.35), ref_threshold(0.5),
                     ref_threshold(0.3)};
    double fl = ens_copula_floor(0.6, tau, 4, 4);
    double g1 = ens_copula_vote_error_m(0.6, tau, 4, 4, 1000) - fl;
    double g4 = ens_copula_vote_error_m(0.6, tau, 4, 4, 4000) - fl;
    print_message("rho 0.6 L 4, four thresholds: gap %.4f at 1000 models, %.4f at 4000\n", g1, g4);
    assert_true(g1 > 0 && g4 > 0 && g4 < 0.55 * g1);
}

/* The floor of a fit to sampled data against Monte Carlo of the fitted
 * model, and near the floor of the true model. */
static void test_copula_floor_of_fit(void **state)
{
    (void)state;
    ens_family_t f[3] = {fam("a", 2, 0.7, 0.35), fam("b", 2, 0.6, 0.35), fam("c", 2, 0.65, 0.35)};
    ens_data_t *d = sample_families(f, 3, 50000, 2, 0.35, 21);
    ens_copula_t *c = ens_copula_fit(d, NULL, 0);
    ens_copula_summary_t s;
    ens_copula_summary(c, NULL, 0, &s);
    double floor = ens_copula_floor_fit(c, NULL, 0, 2);
    double mc = mc_vote_error(s.mean, c->tau, c->n, 1000, 2, 100000, 77);
    double tau_true[3] = {ref_threshold(0.7), ref_threshold(0.6), ref_threshold(0.65)};
    double floor_true = ens_copula_floor(0.35, tau_true, 3, 2);
    print_message("fitted floor %.4f (mean rho %.3f), Monte Carlo of the fit %.4f, true %.4f\n",
                  floor, s.mean, mc, floor_true);
    assert_near(floor, mc, 0.005);
    assert_near(floor, floor_true, 0.02);
    size_t one = 0;
    assert_true(isnan(ens_copula_floor_fit(c, &one, 1, 2)));
    ens_copula_destroy(&c);
    ens_data_destroy(&d);
}

/* ---- finite sets ------------------------------------------------------- */

/* Brute force over every answer tuple in L^k with the truth fixed at label
 * 0, integrating over g by the trapezoid rule on a fine grid. */
static void ref_finite(double rho, const double *tau, size_t k, size_t L, double *vote,
                       double *bayes)
{
    size_t tuples = 1;
    for (size_t i = 0; i < k; i++)
        tuples *= L;
    double *lik = calloc(tuples * L, sizeof(double)); /* P(x | y) */
    double sr = sqrt(rho), se = sqrt(1 - rho), h = 0.002;
    for (double g = -9; g <= 9; g += h) {
        double w = h * exp(-g * g / 2) / sqrt(2 * M_PI), q[8];
        for (size_t i = 0; i < k; i++)
            q[i] = ref_phi_cdf((sr * g - tau[i]) / se);
        for (size_t t = 0; t < tuples; t++)
            for (size_t y = 0; y < L; y++) {
                double p = w;
                for (size_t i = 0, tt = t; i < k; i++, tt /= L)
                    p *= tt % L == y ? q[i] : (1 - q[i]) / (double)(L - 1);
                lik[t * L + y] += p;
            }
    }
    double v = 0, b = 0;
    for (size_t t = 0; t < tuples; t++) {
        size_t cnt[8] = {0}, ans[8];
        for (size_t i = 0, tt = t; i < k; i++, tt /= L)
            cnt[ans[i] = tt % L]++;
        size_t best = 0;
        for (size_t l = 0; l < L; l++)
            best = cnt[l] > best ? cnt[l] : best;
        /* Ties: the answer of the most accurate model among the tied. */
        size_t pick = 0;
        double pt = INFINITY;
        for (size_t i = 0; i < k; i++)
            if (cnt[ans[i]] == best && tau[i] < pt)
                pt = tau[i], pick = ans[i];
        double mx = 0;
        for (size_t y = 0; y < L; y++)
            mx = fmax(mx, lik[t * L + y]);
        v += lik[t * L + pick];
        b += mx;
    }
    free(lik);
    *vote = 1 - v / (double)L;
    *bayes = 1 - b / (double)L;
}

static void test_copula_finite_errors_brute_force(void **state)
{
    (void)state;
    const struct {
        double rho;
        double acc[5];
        size_t k, L;
    } cases[] = {
        {0.5, {0.7, 0.6, 0.55}, 3, 3},
        {0.3, {0.8, 0.6, 0.6, 0.5}, 4, 2},
        {0.8, {0.4, 0.5, 0.35, 0.45, 0.3}, 5, 4},
        {0.05, {0.9}, 1, 5},
        {0.97, {0.7, 0.65, 0.6}, 3, 2},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        double tau[5];
        for (size_t i = 0; i < cases[c].k; i++)
            tau[i] = ref_threshold(cases[c].acc[i]);
        double v, b, rv, rb;
        assert_int_equal(
            ens_copula_finite_errors(cases[c].rho, tau, cases[c].k, cases[c].L, &v, &b), 0);
        ref_finite(cases[c].rho, tau, cases[c].k, cases[c].L, &rv, &rb);
        print_message("k %zu L %zu rho %.2f: vote %.6f (ref %.6f), bayes %.6f (ref %.6f)\n",
                      cases[c].k, cases[c].L, cases[c].rho, v, rv, b, rb);
        assert_near(v, rv, 2e-5);
        assert_near(b, rb, 2e-5);
        assert_true(b <= v + 1e-12);
    }
    /* One model: both are its error. */
    double t = ref_threshold(0.72), v, b;
    assert_int_equal(ens_copula_finite_errors(0.4, &t, 1, 3, &v, &b), 0);
    assert_near(v, 0.28, 1e-9);
    assert_near(b, 0.28, 1e-9);
    assert_int_equal(ens_copula_finite_errors(0.4, &t, 0, 3, &v, &b), ENS_EINVAL);
    assert_int_equal(ens_copula_finite_errors(0.4, &t, 1, 1, &v, &b), ENS_EINVAL);
    double many[ENS_COPULA_FINITE_MAX + 1] = {0};
    assert_int_equal(ens_copula_finite_errors(0.4, many, ENS_COPULA_FINITE_MAX + 1, 2, &v, &b),
                     ENS_EINVAL);
    /* Ten models (the enumeration's limit) run and approach the floor. */
    for (size_t i = 0; i < ENS_COPULA_FINITE_MAX; i++)
        many[i] = ref_threshold(0.65);
    assert_int_equal(ens_copula_finite_errors(0.4, many, ENS_COPULA_FINITE_MAX, 2, &v, &b), 0);
    double fl = ens_copula_floor(0.4, many, 1, 2);
    print_message("10 models at 0.65, rho 0.4: vote %.4f, bayes %.4f, floor %.4f\n", v, b, fl);
    assert_true(v > fl && v < 0.35);
}

/* The majority vote of sampled data (the library's sampler, one factor)
 * agrees with the formula within Monte Carlo error. */
static void test_copula_finite_vote_matches_sampler(void **state)
{
    (void)state;
    ens_family_t f[3] = {fam("a", 1, 0.7, 0.5), fam("b", 1, 0.62, 0.5), fam("c", 1, 0.58, 0.5)};
    ens_data_t *d = sample_families(f, 3, 80000, 3, 0.5, 8);
    double wrong = 0;
    for (size_t i = 0; i < d->nrows; i++) {
        size_t cnt[3] = {0};
        for (size_t j = 0; j < 3; j++)
            cnt[ens_data_col(d, j)[i]]++;
        /* Ties go to the most accurate model's answer: model 0, then 1. */
        size_t best = 0, pick = 0;
        for (size_t l = 0; l < 3; l++)
            best = cnt[l] > best ? cnt[l] : best;
        for (size_t j = 3; j-- > 0;)
            if (cnt[ens_data_col(d, j)[i]] == best)
                pick = ens_data_col(d, j)[i];
        wrong += pick != d->y[i];
    }
    wrong /= (double)d->nrows;
    double tau[3] = {ref_threshold(0.7), ref_threshold(0.62), ref_threshold(0.58)}, v, b;
    assert_int_equal(ens_copula_finite_errors(0.5, tau, 3, 3, &v, &b), 0);
    print_message("sampled vote error %.4f, formula %.4f (bayes %.4f)\n", wrong, v, b);
    assert_near(wrong, v, 4 * sqrt(v * (1 - v) / (double)d->nrows) + 0.002);
    ens_data_destroy(&d);
}

/* ---- Fano -------------------------------------------------------------- */

static double h2(double p)
{
    return p <= 0 || p >= 1 ? 0 : -p * log2(p) - (1 - p) * log2(1 - p);
}

static void test_copula_fano_closed_forms(void **state)
{
    (void)state;
    assert_near(ens_fano_error_lower(0, 2), 0, 0);
    assert_near(ens_fano_error_lower(-0.1, 4), 0, 0);
    assert_near(ens_fano_error_lower(1, 2), 0.5, 0);
    assert_near(ens_fano_error_lower(5, 4), 0.75, 0);
    for (double p = 0.01; p < 0.74; p += 0.01) {
        assert_near(ens_fano_error_lower(h2(p) + p * log2(3), 4), p, 1e-12);
        if (p < 0.5)
            assert_near(ens_fano_error_lower(h2(p), 2), p, 1e-12);
    }
    assert_true(isnan(ens_fano_error_lower(0.5, 1)));
}

/* Fano's bound never exceeds the held-out error of a combiner of the set:
 * greedy-mi selects on the training half, the bound comes from the training
 * half's plug-in, every combiner is scored on the test half. In sample, the
 * bound is also below the error of the Bayes table of the empirical law. */
static void fano_below_errors(const ens_data_t *d, size_t kmax, const char *what)
{
    size_t n = d->nrows, ntrain = 0, *perm = malloc(n * sizeof(size_t));
    ens_eval_split(n, 0.5, 7, 0, perm, &ntrain);
    ens_data_t *train = ens_data_rows(d, perm, ntrain);
    ens_data_t *test = ens_data_rows(d, perm + ntrain, n - ntrain);
    for (size_t k = 1; k <= kmax && k <= d->nmodels; k++) {
        ens_select_opts_t o;
        ens_select_opts_default(&o);
        o.budget = k;
        o.prune = 0;
        o.min_gain_bits = -1e9;
        ens_selection_t sel;
        char err[256];
        assert_int_equal(ens_select(train, &o, &sel, err, sizeof(err)), 0);
        double pe = 0, pe_all = 0;
        assert_int_equal(ens_fano_bound(train, sel.models, sel.n, 2, &pe), 0);
        assert_int_equal(ens_fano_bound(d, sel.models, sel.n, 0, &pe_all), 0);
        /* z = 0 is Fano at H(Y) - I_plugin, as mi.h computes them. */
        double hy = 0, bits = 0;
        size_t rows = 0;
        assert_int_equal(ens_entropy_y(d, sel.models, sel.n, &hy), 0);
        assert_int_equal(ens_mi(d, sel.models, sel.n, ENS_EST_PLUGIN, &bits, &rows), 0);
        assert_near(pe_all, ens_fano_error_lower(hy - bits, d->nlabels), 1e-9);
        double lowest = 1;
        for (int kind = 0; kind < ENS_COMB_COUNT; kind++) {
            ens_combiner_t *c = ens_combiner_fit(train, sel.models, sel.n, kind);
            lowest = fmin(lowest, 1 - ens_combiner_accuracy(c, test));
            ens_combiner_destroy(&c);
        }
        ens_combiner_t *tab = ens_combiner_fit(d, sel.models, sel.n, ENS_COMB_TABLE);
        double in_sample = 1 - ens_combiner_accuracy(tab, d);
        ens_combiner_destroy(&tab);
        print_message("%s K=%zu: Fano (train, z=2) %.4f, lowest held-out error %.4f; "
                      "Fano (all rows, z=0) %.4f, in-sample table %.4f\n",
                      what, k, pe, lowest, pe_all, in_sample);
        assert_true(pe <= lowest);
        assert_true(pe_all <= in_sample + 1e-9);
    }
    ens_data_destroy(&train);
    ens_data_destroy(&test);
    free(perm);
}

static void test_copula_fano_below_heldout_sampled(void **state)
{
    (void)state;
    ens_family_t f[3] = {fam("a", 3, 0.75, 0.8), fam("b", 2, 0.65, 0.4), fam("c", 3, 0.6, 0.2)};
    ens_data_t *d = sample_families(f, 3, 20000, 4, 0.1, 31);
    fano_below_errors(d, 6, "sampled");
    ens_data_destroy(&d);
}

static void test_copula_fano_below_heldout_real(void **state)
{
    (void)state;
    const char *names[] = {"winogrande_routerbench_11llm.csv", "mmlupro_28llm.csv"};
    for (size_t i = 0; i < 2; i++) {
        ens_data_t *d = tu_load_real(names[i]);
        fano_below_errors(d, 7, names[i]);
        ens_data_destroy(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copula_bvn_against_integration),
        cmocka_unit_test(test_copula_bvn_closed_forms),
        cmocka_unit_test(test_copula_tetrachoric_round_trip),
        cmocka_unit_test(test_copula_fit_recovers_sampler),
        cmocka_unit_test(test_copula_fit_missing_and_abstain),
        cmocka_unit_test(test_copula_fit_100_models_100k_rows),
        cmocka_unit_test(test_copula_floor_matches_monte_carlo),
        cmocka_unit_test(test_copula_floor_of_fit),
        cmocka_unit_test(test_copula_vote_m_brute_force),
        cmocka_unit_test(test_copula_vote_m_matches_monte_carlo),
        cmocka_unit_test(test_copula_vote_m_tends_to_floor),
        cmocka_unit_test(test_copula_finite_errors_brute_force),
        cmocka_unit_test(test_copula_finite_vote_matches_sampler),
        cmocka_unit_test(test_copula_fano_closed_forms),
        cmocka_unit_test(test_copula_fano_below_heldout_sampled),
        cmocka_unit_test(test_copula_fano_below_heldout_real),
    };
    return cmocka_run_group_tests_name("copula", tests, NULL, NULL);
}
