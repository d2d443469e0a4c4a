/* bvn.c - the bivariate normal orthant probability (see copula.h).
 *
 * The method is Drezner and Wesolowsky (1990) as refined by Genz (2004,
 * "Numerical computation of rectangular bivariate and trivariate normal and
 * t probabilities", Statistics and Computing 14): Plackett's identity
 * dL/drho = phi2(h, k; rho) integrated by Gauss-Legendre quadrature, from
 * rho = 0 when |rho| < 0.925 and from rho = 1 (after subtracting the
 * singular part in closed form) above. docs/theory.md §1 derives each
 * branch; the code follows the derivation rather than any one published
 * listing.
 */
#include <math.h>

#include "ensembled/copula.h"
#include "ensembled/sample.h"

#include "copula_int.h"

#define TWO_PI 6.283185307179586476925286766559

/* Gauss-Legendre nodes (positive half) and weights on [-1, 1] for 6, 12 and
 * 20 points. */
static const double gl6_x[3] = {0.9324695142031521, 0.6612093864662645, 0.2386191860831969};
static const double gl6_w[3] = {0.1713244923791704, 0.3607615730481386, 0.4679139345726910};
static const double gl12_x[6] = {0.9815606342467192, 0.9041172563704749, 0.7699026741943047,
                                 0.5873179542866175, 0.3678314989981802, 0.1252334085114689};
static const double gl12_w[6] = {0.0471753363865118, 0.1069393259953184, 0.1600783285433462,
                                 0.2031674267230659, 0.2334925365383548, 0.2491470458134028};
const double ens__gl20_x[10] = {0.9931285991850949, 0.9639719272779138, 0.9122344282513259,
                                0.8391169718222188, 0.7463319064601508, 0.6360536807265150,
                                0.5108670019508271, 0.3737060887154195, 0.2277858511416451,
                                0.0765265211334973};
const double ens__gl20_w[10] = {0.0176140071391521, 0.0406014298003869, 0.0626720483341091,
                                0.0832767415767048, 0.1019301198172404, 0.1181945319615184,
                                0.1316886384491766, 0.1420961093183820, 0.1491729864726037,
                                0.1527533871307258};

/* |rho| < 0.925 (theory.md §1.1): with r = sin(t),
 *   L(h, k; rho) = Phi(-h) Phi(-k)
 *                + 1/(2 pi) int_0^asin(rho) exp((h k sin t - (h^2 + k^2)/2) / cos^2 t) dt. */
static double upper_moderate(double h, double k, double rho)
{
    const double *x, *w;
    int n;
    double ar = fabs(rho);
    if (ar < 0.3) {
        x = gl6_x, w = gl6_w, n = 3;
    } else if (ar < 0.75) {
        x = gl12_x, w = gl12_w, n = 6;
    } else {
        x = ens__gl20_x, w = ens__gl20_w, n = 10;
    }
    double hk = h * k, hs = (h * h + k * k) / 2, half = asin(rho) / 2, s = 0;
    for (int i = 0; i < n; i++) {
        /* Nodes half * (1 -+ x_i) map [-1, 1] onto [0, asin rho]. */
        for (int sgn = -1; sgn <= 1; sgn += 2) {
            double sn = sin(half * (1 + sgn * x[i]));
            s += w[i] * exp((sn * hk - hs) / (1 - sn * sn));
        }
    }
    return s * half / TWO_PI + ens_norm_cdf(-h) * ens_norm_cdf(-k);
}

/* rho >= 0.925 (theory.md §1.2): integrating Plackett's identity down from
 * rho = 1 and substituting x = sqrt(1 - r^2),
 *   L = Phi(-max(h, k)) - 1/(2 pi) int_0^a exp(-b2/(2x^2) - hk/(1 + sqrt(1-x^2))) / sqrt(1-x^2) dx
 * with a = sqrt(1 - rho^2), b2 = (h - k)^2. The integrand is
 * exp(-b2/(2x^2) - hk/2) (1 + c x^2 + c d x^4 + O(x^6)); the polynomial part
 * integrates in closed form (K_0, K_1, K_2 below) and the O(x^6) remainder,
 * smooth, by 20-point Gauss-Legendre. */
static double upper_high(double h, double k, double rho)
{
    double hk = h * k, b2 = (h - k) * (h - k), b = fabs(h - k);
    double as = (1 - rho) * (1 + rho), a = sqrt(as);
    double c = (4 - hk) / 8, d = (12 - hk) / 16;
    double sum = 0;
    if (a > 0) {
        /* K_n = exp(-hk/2) int_0^a x^(2n) exp(-b2/(2x^2)) dx, by
         * (2n+1) K_n + b2 K_(n-1) = a^(2n+1) exp(-(b2/a^2 + hk)/2). The
         * Phi term is negligible (below e^-80) when hk < -160, where
         * exp(-hk/2) alone could overflow. */
        double e = exp(-(b2 / as + hk) / 2);
        double k0 = a * e;
        if (hk > -160)
            k0 -= b * sqrt(TWO_PI) * exp(-hk / 2) * ens_norm_cdf(-b / a);
        double k1 = (a * as * e - b2 * k0) / 3;
        double k2 = (a * as * as * e - b2 * k1) / 5;
        sum = k0 + c * k1 + c * d * k2;
        double half = a / 2;
        for (int i = 0; i < 10; i++) {
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                double xv = half * (1 + sgn * ens__gl20_x[i]), xs = xv * xv;
                double rs = sqrt(1 - xs);
                double base = -b2 / (2 * xs);
                double full = exp(base - hk / (1 + rs)) / rs;
                double poly = exp(base - hk / 2) * (1 + c * xs * (1 + d * xs));
                sum += half * ens__gl20_w[i] * (full - poly);
            }
        }
    }
    double v = ens_norm_cdf(-fmax(h, k)) - sum / TWO_PI;
    return v;
}

double ens_bvn_upper(double h, double k, double rho)
{
    if (isnan(h) || isnan(k) || isnan(rho))
        return NAN;
    if (rho > 1)
        rho = 1;
    if (rho < -1)
        rho = -1;
    if (h == INFINITY || k == INFINITY)
        return 0;
    if (h == -INFINITY)
        return ens_norm_cdf(-k);
    if (k == -INFINITY)
        return ens_norm_cdf(-h);
    double v;
    if (rho == 0) {
        v = ens_norm_cdf(-h) * ens_norm_cdf(-k);
    } else if (fabs(rho) < 0.925) {
        v = upper_moderate(h, k, rho);
    } else if (rho > 0) {
        v = upper_high(h, k, rho);
    } else {
        /* P(X > h, Y > k) = P(X > h) - P(X > h, -Y > -k), and -Y has
         * correlation -rho > 0 with X. */
        v = ens_norm_cdf(-h) - upper_high(h, -k, -rho);
    }
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

double ens_bvn_cdf(double h, double k, double rho)
{
    return ens_bvn_upper(-h, -k, rho);
}
