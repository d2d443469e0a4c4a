/* copula.c - fitting the Gaussian copula of correctness (see copula.h).
 *
 * Per model: the accuracy p_i and threshold tau_i = Phi^-1(1 - p_i). Per
 * pair: the tetrachoric correlation, the rho for which the copula's joint
 * accuracy P(Z_i > tau_i, Z_j > tau_j) equals the observed one
 * (docs/theory.md §2). Counts come from two bit-packed columns per model
 * (correct, asked) and popcount, so a pair costs three popcounts per 64
 * rows, or one when both models were asked on every row.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/copula.h"
#include "ensembled/sample.h"
#include "ensembled/xalloc.h"

#define TWO_PI 6.283185307179586476925286766559

/* Bits set in v. Written out: without -mpopcnt (the portable build)
 * __builtin_popcountll is a call into libgcc, once per 64 rows and pair. */
static inline size_t popcount64(uint64_t v)
{
    v -= (v >> 1) & UINT64_C(0x5555555555555555);
    v = (v & UINT64_C(0x3333333333333333)) + ((v >> 2) & UINT64_C(0x3333333333333333));
    v = (v + (v >> 4)) & UINT64_C(0x0F0F0F0F0F0F0F0F);
    return (size_t)((v * UINT64_C(0x0101010101010101)) >> 56);
}

static size_t and_count(const uint64_t *a, const uint64_t *b, size_t words)
{
    size_t s = 0;
    for (size_t w = 0; w < words; w++)
        s += popcount64(a[w] & b[w]);
    return s;
}

/* The bivariate normal density phi2(h, k; rho): the derivative of
 * ens_bvn_upper in rho (Plackett's identity), used by the Newton steps. */
static double bvn_density(double h, double k, double rho)
{
    double s = (1 - rho) * (1 + rho);
    return exp(-(h * h - 2 * rho * h * k + k * k) / (2 * s)) / (TWO_PI * sqrt(s));
}

double ens_copula_tetrachoric(double pa, double pb, double p11)
{
    if (!(pa > 0 && pa < 1 && pb > 0 && pb < 1) || isnan(p11))
        return NAN;
    double ta = ens_norm_quantile(1 - pa), tb = ens_norm_quantile(1 - pb);
    /* The joint accuracy is increasing in rho, from max(0, pa + pb - 1) at
     * rho = -1 (Frechet's lower bound) to min(pa, pb) at rho = 1. */
    double lo = -1, hi = 1;
    if (p11 <= ens_bvn_upper(ta, tb, lo))
        return -1;
    if (p11 >= ens_bvn_upper(ta, tb, hi))
        return 1;
    /* Newton from rho = 0, safeguarded by bisection on the bracket. */
    double r = 0;
    for (int it = 0; it < 200; it++) {
        double f = ens_bvn_upper(ta, tb, r) - p11;
        if (f > 0)
            hi = r;
        else
            lo = r;
        if (f == 0 || hi - lo < 1e-13)
            break;
        double step = f / bvn_density(ta, tb, r);
        double next = r - step;
        if (!(next > lo && next < hi))
            next = (lo + hi) / 2;
        if (fabs(next - r) < 1e-13) {
            r = next;
            break;
        }
        r = next;
    }
    return r;
}

/* Packs column j: bit r of correct is set iff the model answered the truth on
 * row r, bit r of asked iff it was asked. Returns the number asked. */
/* 0x80 in each byte of v that is not zero, 0 in the others. */
static inline uint64_t nonzero_bytes(uint64_t v)
{
    const uint64_t lo7 = UINT64_C(0x7F7F7F7F7F7F7F7F);
    return (((v & lo7) + lo7) | v) & ~lo7;
}

/* The top bits of the 8 bytes of m (0x80 or 0 each), as bits 0..7. */
static inline uint64_t top_bits(uint64_t m)
{
    return (m * UINT64_C(0x0002040810204081)) >> 56;
}

/* Rows r0..r0+end of column col as (asked, correct) bits 0..end. */
static void pack_word(const uint8_t *col, const uint8_t *y, size_t end, uint64_t *asked,
                      uint64_t *correct)
{
    uint64_t a = 0, c = 0;
    size_t b = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* Eight rows per step: bytes compared in a word, their top bits gathered. */
    for (; b + 8 <= end; b += 8) {
        uint64_t x, t;
        memcpy(&x, col + b, 8);
        memcpy(&t, y + b, 8);
        a |= top_bits(nonzero_bytes(~x)) << b;
        c |= top_bits(~nonzero_bytes(x ^ t) & UINT64_C(0x8080808080808080)) << b;
    }
#endif
    for (; b < end; b++) {
        a |= (uint64_t)(col[b] != ENS_SYM_MISSING) << b;
        c |= (uint64_t)(col[b] == y[b]) << b;
    }
    *asked = a;
    *correct = c & a;
}

static size_t pack(const ens_data_t *d, size_t j, uint64_t *correct, uint64_t *asked)
{
    const uint8_t *col = ens_data_col(d, j);
    size_t words = (d->nrows + 63) / 64, n = 0;
    for (size_t w = 0; w < words; w++) {
        size_t r0 = w * 64, end = d->nrows - r0 < 64 ? d->nrows - r0 : 64;
        pack_word(col + r0, d->y + r0, end, &asked[w], &correct[w]);
        n += popcount64(asked[w]);
    }
    return n;
}

ens_copula_t *ens_copula_fit(const ens_data_t *d, const size_t *models, size_t n)
{
    if (models == NULL)
        n = d->nmodels;
    if (n == 0)
        return NULL;
    for (size_t i = 0; models && i < n; i++) {
        if (models[i] >= d->nmodels)
            return NULL;
        for (size_t j = 0; j < i; j++)
            if (models[j] == models[i])
                return NULL;
    }
    ens_copula_t *c = ens_xcalloc(1, sizeof(*c));
    c->n = n;
    c->nlabels = d->nlabels;
    c->model = ens_xcalloc(n, sizeof(size_t));
    c->asked = ens_xcalloc(n, sizeof(size_t));
    c->accuracy = ens_xcalloc(n, sizeof(double));
    c->tau = ens_xcalloc(n, sizeof(double));
    c->rho = ens_xcalloc(n * n, sizeof(double));

    size_t words = (d->nrows + 63) / 64;
    uint64_t *cbits = ens_xcalloc(n * (words ? words : 1), sizeof(uint64_t));
    uint64_t *abits = ens_xcalloc(n * (words ? words : 1), sizeof(uint64_t));
    size_t *ncorrect = ens_xcalloc(n, sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        c->model[i] = models ? models[i] : i;
        c->asked[i] = pack(d, c->model[i], cbits + i * words, abits + i * words);
        ncorrect[i] = and_count(cbits + i * words, cbits + i * words, words);
        double p = c->asked[i] ? (double)ncorrect[i] / (double)c->asked[i] : 0;
        c->accuracy[i] = p;
        /* Keep tau finite for a model right or wrong on every row: half a
         * row's worth of doubt (the continuity correction). */
        double lo = c->asked[i] ? 0.5 / (double)c->asked[i] : 0.5;
        c->tau[i] = ens_norm_quantile(1 - fmin(fmax(p, lo), 1 - lo));
    }
    for (size_t i = 0; i < n; i++) {
        c->rho[i * n + i] = 1;
        const uint64_t *ci = cbits + i * words, *ai = abits + i * words;
        for (size_t j = i + 1; j < n; j++) {
            const uint64_t *cj = cbits + j * words, *aj = abits + j * words;
            size_t both, ri, rj;
            if (c->asked[i] == d->nrows && c->asked[j] == d->nrows) {
                both = d->nrows, ri = ncorrect[i], rj = ncorrect[j];
            } else {
                both = and_count(ai, aj, words);
                ri = and_count(ci, aj, words);
                rj = and_count(cj, ai, words);
            }
            size_t r11 = and_count(ci, cj, words);
            double r = NAN;
            if (both >= 2) {
                double nb = (double)both;
                r = ens_copula_tetrachoric((double)ri / nb, (double)rj / nb, (double)r11 / nb);
            }
            c->rho[i * n + j] = c->rho[j * n + i] = r;
        }
    }
    free(cbits);
    free(abits);
    free(ncorrect);
    return c;
}

void ens_copula_destroy(ens_copula_t **cp)
{
    if (!cp || !*cp)
        return;
    ens_copula_t *c = *cp;
    free(c->model);
    free(c->asked);
    free(c->accuracy);
    free(c->tau);
    free(c->rho);
    free(c);
    *cp = NULL;
}

void ens_copula_summary(const ens_copula_t *c, const size_t *set, size_t k,
                        ens_copula_summary_t *out)
{
    if (!set)
        k = c->n;
    double s = 0, mn = INFINITY, mx = -INFINITY;
    size_t pairs = 0;
    for (size_t a = 0; a < k; a++) {
        for (size_t b = a + 1; b < k; b++) {
            size_t i = set ? set[a] : a, j = set ? set[b] : b;
            double r = c->rho[i * c->n + j];
            if (isnan(r))
                continue;
            s += r;
            mn = fmin(mn, r);
            mx = fmax(mx, r);
            pairs++;
        }
    }
    out->pairs = pairs;
    out->mean = pairs ? s / (double)pairs : NAN;
    out->min = pairs ? mn : NAN;
    out->max = pairs ? mx : NAN;
}

static size_t find_root(size_t *parent, size_t i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

size_t ens_copula_clusters(const ens_copula_t *c, double threshold, size_t *cluster)
{
    size_t n = c->n;
    size_t *parent = ens_xcalloc(n, sizeof(size_t));
    for (size_t i = 0; i < n; i++)
        parent[i] = i;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (c->rho[i * n + j] >= threshold) {
                size_t a = find_root(parent, i), b = find_root(parent, j);
                /* The smaller index becomes the root, so ids follow first
                 * appearance below. */
                if (a < b)
                    parent[b] = a;
                else if (b < a)
                    parent[a] = b;
            }
    size_t next = 0;
    for (size_t i = 0; i < n; i++) {
        size_t r = find_root(parent, i);
        cluster[i] = r == i ? next++ : cluster[r];
    }
    free(parent);
    return next;
}
