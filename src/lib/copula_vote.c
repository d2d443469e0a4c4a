/* copula_vote.c - the plurality-vote error of m models under the one-factor
 * copula (see copula.h; derivation in docs/theory.md §3.1).
 *
 * Given G = g the m models are independent, model i right with probability
 * q_{i mod n}(g), so the truth's count N is a sum of n binomials. Given
 * N = k, the other m - k answers are a uniform multinomial over the L - 1
 * wrong labels whatever g is, so P(the truth wins | N = k) is one table
 * win[k] for all g. The error is int phi(g) sum_k P(N = k | g) (1 - win[k]).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/copula.h"
#include "ensembled/sample.h"
#include "ensembled/xalloc.h"

#include "copula_int.h"

/* Pmf entries below TRIM times the largest are dropped (mass < 1e-18). */
#define TRIM 1e-20

/* lf[i] = log i! for i = 0..m, summed in long double. */
static double *log_factorials(size_t m)
{
    double *lf = ens_xcalloc(m + 1, sizeof(double));
    long double acc = 0;
    for (size_t i = 1; i <= m; i++) {
        acc += logl((long double)i);
        lf[i] = (double)acc;
    }
    return lf;
}

/* Adds the point x with Poisson weight c to the truncated pmf A, updating
 * its powers pw[j] = A^{*j} (j = 1..M-1, row j of length m + 1) up to
 * degree smax: (A + c d_x)^j = sum_t C(j,t) c^t d_{t x} * A^{j-t}. The
 * rows are updated from j = M - 1 down so that the lower powers are still
 * the old ones. */
static void add_point(double *pw, size_t M, size_t m, size_t smax, size_t x, double c)
{
    for (size_t j = M; j-- > 1;) {
        double *to = pw + j * (m + 1), coef = 1;
        for (size_t t = 1; t <= j; t++) {
            coef *= c * (double)(j - t + 1) / (double)t; /* C(j,t) c^t */
            const double *from = pw + (j - t) * (m + 1);
            size_t shift = t * x, top = shift + (j - t) * (x ? x - 1 : 0);
            if (x == 0 && j - t > 0)
                continue; /* the old A is empty: its powers >= 1 are 0 */
            if (top > smax)
                top = smax;
            for (size_t s = shift; s <= top; s++)
                to[s] += coef * from[s - shift];
        }
    }
}

/* P(the truth wins | it has k votes), r = m - k >= k, from the powers of
 * the Poisson(lam) pmf P truncated to [0, k) (theory.md §3.1). */
static double win_at(const double *pw, const double *P, const double *lf, size_t M, size_t m,
                     size_t k, double lam)
{
    size_t r = m - k;
    double Mlam = (double)M * lam;
    double den = exp((double)r * log(Mlam) - Mlam - lf[r]);
    if (den < 1e-200)
        return k * (M + 1) > m ? 1 : 0;
    const double *top = pw + (M - 1) * (m + 1);
    double num = 0;
    for (size_t i = 0; i < k && i <= r; i++)
        num += P[i] * top[r - i];
    /* t wrong labels tie with the truth at k, the others below: won w.p.
     * 1/(t+1). */
    double coef = 1;
    for (size_t t = 1; t <= M && t * k <= r; t++) {
        coef *= P[k] * (double)(M - t + 1) / (double)t;
        num += coef / (double)(t + 1) * pw[(M - t) * (m + 1) + r - t * k];
    }
    return fmin(1, fmax(0, num / den));
}

/* win[k], k = 0..m, for M = L - 1 wrong labels. */
static void win_table(size_t m, size_t M, const double *lf, double *win)
{
    double lam = (double)m / (double)(M + 1), llam = log(lam);
    double *P = ens_xcalloc(m + 1, sizeof(double));
    for (size_t i = 0; i <= m; i++)
        P[i] = exp((double)i * llam - lam - lf[i]);
    double *pw = ens_xcalloc(M * (m + 1), sizeof(double));
    pw[0] = 1; /* A^0 = d_0 */
    for (size_t k = 0; k <= m; k++)
        win[k] = 2 * k > m ? 1 : 0;
    for (size_t k = 1; 2 * k <= m; k++) {
        add_point(pw, M, m, m - k, k - 1, P[k - 1]);
        win[k] = win_at(pw, P, lf, M, m, k, lam);
    }
    free(pw);
    free(P);
}

typedef struct {
    double sr, se;
    const double *tau;
    size_t n, m;
    const double *lf, *win;
    double *a, *b, *bin; /* scratch of m + 1 */
} vote_ctx_t;

/* The Binomial(mj, q) pmf into bin[*lo..*hi], trimmed. */
static void binom_pmf(const vote_ctx_t *c, size_t mj, double q, size_t *lo, size_t *hi)
{
    if (!(q > 0) || !(q < 1)) {
        *lo = *hi = q > 0 ? mj : 0;
        c->bin[*lo] = 1;
        return;
    }
    size_t mode = (size_t)floor((double)(mj + 1) * q);
    mode = mode > mj ? mj : mode;
    double v = exp(c->lf[mj] - c->lf[mode] - c->lf[mj - mode] + (double)mode * log(q) +
                   (double)(mj - mode) * log1p(-q));
    double odds = q / (1 - q), floor_v = v * TRIM;
    c->bin[mode] = v;
    size_t x = mode;
    for (double u = v; x < mj && (u = u * (double)(mj - x) / (double)(x + 1) * odds) > floor_v;)
        c->bin[++x] = u;
    *hi = x;
    x = mode;
    for (double u = v; x > 0 && (u = u * (double)x / (double)(mj - x + 1) / odds) > floor_v;)
        c->bin[--x] = u;
    *lo = x;
}

/* P(the vote of the m models is wrong | G = g). */
static double cond_error(vote_ctx_t *c, double g)
{
    size_t lo = 0, hi = 0;
    c->a[0] = 1;
    for (size_t j = 0; j < c->n && j < c->m; j++) {
        size_t mj = c->m / c->n + (j < c->m % c->n), blo, bhi;
        binom_pmf(c, mj, ens_norm_cdf((c->sr * g - c->tau[j]) / c->se), &blo, &bhi);
        memset(c->b + lo + blo, 0, (hi + bhi - lo - blo + 1) * sizeof(double));
        double big = 0;
        for (size_t x = lo; x <= hi; x++)
            for (size_t y = blo; y <= bhi; y++)
                c->b[x + y] += c->a[x] * c->bin[y];
        for (size_t x = lo + blo; x <= hi + bhi; x++)
            big = fmax(big, c->b[x]);
        lo += blo, hi += bhi;
        while (c->b[lo] < big * TRIM)
            lo++;
        while (c->b[hi] < big * TRIM)
            hi--;
        double *t = c->a;
        c->a = c->b, c->b = t;
    }
    double e = 0;
    for (size_t k = lo; k <= hi; k++)
        e += c->a[k] * (1 - c->win[k]);
    return e;
}

static double gl20(vote_ctx_t *c, double lo, double hi)
{
    double mid = (lo + hi) / 2, half = (hi - lo) / 2, s = 0;
    for (int i = 0; i < 10; i++) {
        double g1 = mid - half * ens__gl20_x[i], g2 = mid + half * ens__gl20_x[i];
        s += ens__gl20_w[i] *
             (exp(-g1 * g1 / 2) * cond_error(c, g1) + exp(-g2 * g2 / 2) * cond_error(c, g2));
    }
    return s * half / sqrt(2 * M_PI);
}

/* Adaptive bisection of a panel until two halves agree with the whole. */
static double adapt(vote_ctx_t *c, double lo, double hi, double whole, double tol, int depth)
{
    double mid = (lo + hi) / 2, l = gl20(c, lo, mid), r = gl20(c, mid, hi);
    if (depth <= 0 || fabs(l + r - whole) <= tol)
        return l + r;
    return adapt(c, lo, mid, l, tol / 2, depth - 1) + adapt(c, mid, hi, r, tol / 2, depth - 1);
}

double ens_copula_vote_error_m(double rho, const double *tau, size_t n, size_t nlabels, size_t m)
{
    if (n == 0 || m == 0 || nlabels < 2)
        return NAN;
    rho = ens__clamp_rho(rho);
    vote_ctx_t c = {.sr = sqrt(rho), .se = sqrt(1 - rho), .tau = tau, .n = n, .m = m};
    double *lf = log_factorials(m), *win = ens_xcalloc(m + 1, sizeof(double));
    win_table(m, nlabels - 1, lf, win);
    c.lf = lf, c.win = win;
    c.a = ens_xcalloc(m + 1, sizeof(double));
    c.b = ens_xcalloc(m + 1, sizeof(double));
    c.bin = ens_xcalloc(m + 1, sizeof(double));
    /* phi leaves < 1e-22 outside [-10, 10]; ten panels refined to 1e-10. */
    double e = 0;
    for (int p = 0; p < 10; p++) {
        double lo = -10 + 2 * p, hi = lo + 2;
        e += adapt(&c, lo, hi, gl20(&c, lo, hi), 1e-11, 40);
    }
    free(c.a);
    free(c.b);
    free(c.bin);
    free(win);
    free(lf);
    return fmin(1, fmax(0, e));
}
