/* copula_floor.c - what the one-factor copula says about combiners, and
 * Fano's bound (see copula.h; derivations in docs/theory.md §3-§6).
 *
 * Given the common factor G = g, the models are independent and model i is
 * right with probability q_i(g) = Phi((sqrt(rho) g - tau_i) / sqrt(1 - rho)).
 * The floor solves one monotone equation in g; the finite-set errors sum
 * over the set partitions of the models (who agrees with whom) and integrate
 * over g by composite Gauss-Legendre.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/copula.h"
#include "ensembled/err.h"
#include "ensembled/sample.h"
#include "ensembled/xalloc.h"

#include "copula_int.h"

/* pbar(g): the mean conditional accuracy of the models given G = g. */
static double pbar(double rho, const double *tau, size_t n, double g)
{
    double sr = sqrt(rho), se = sqrt(1 - rho), s = 0;
    for (size_t i = 0; i < n; i++)
        s += ens_norm_cdf((sr * g - tau[i]) / se);
    return s / (double)n;
}

double ens_copula_floor(double rho, const double *tau, size_t n, double nlabels)
{
    if (n == 0 || !(nlabels >= 2))
        return NAN;
    rho = ens__clamp_rho(rho);
    double t = 1 / nlabels;
    /* pbar is increasing in g when rho > 0 (and constant when rho = 0), so
     * {g : pbar(g) <= t} is a half line (-inf, g*] and the floor is
     * Phi(g*) (theory.md §3). */
    double lo = -40, hi = 40;
    if (pbar(rho, tau, n, lo) > t)
        return 0;
    if (pbar(rho, tau, n, hi) <= t)
        return 1;
    for (int it = 0; it < 200 && hi - lo > 1e-13; it++) {
        double mid = (lo + hi) / 2;
        if (pbar(rho, tau, n, mid) <= t)
            lo = mid;
        else
            hi = mid;
    }
    return ens_norm_cdf((lo + hi) / 2);
}

double ens_copula_floor_fit(const ens_copula_t *c, const size_t *set, size_t k, double nlabels)
{
    if (!set)
        k = c->n;
    ens_copula_summary_t s;
    ens_copula_summary(c, set, k, &s);
    if (s.pairs == 0)
        return NAN;
    double *tau = ens_xcalloc(k, sizeof(double));
    for (size_t i = 0; i < k; i++)
        tau[i] = c->tau[set ? set[i] : i];
    double f = ens_copula_floor(s.mean, tau, k, nlabels);
    free(tau);
    return f;
}

/* Accumulates F[B] = int phi(g) prod_{i in B} q_i(g) prod_{i not in B}
 * (1 - q_i(g)) / (L - 1) dg for every subset B of the k models (bit i of
 * the mask = model i): the probability that exactly the models of B answer
 * the truth and each other model gives one named wrong label (theory.md §4). */
static void subset_integrals(double rho, const double *tau, size_t k, size_t nlabels, double *F)
{
    size_t nsub = (size_t)1 << k;
    double sr = sqrt(rho), se = sqrt(1 - rho), wrong = 1.0 / (double)(nlabels - 1);
    /* The q_i change over a width of about se / sr in g: panels a quarter of
     * that (at most 0.5), over [-10, 10], where phi leaves < 1e-22 out. */
    double width = 0.5;
    if (sr > 0 && se / sr / 4 < width)
        width = se / sr / 4;
    size_t panels = (size_t)ceil(20 / width);
    if (panels > 8000)
        panels = 8000;
    width = 20.0 / (double)panels;
    double *arr = ens_xcalloc(nsub, sizeof(double));
    double q[ENS_COPULA_FINITE_MAX];
    for (size_t m = 0; m < nsub; m++)
        F[m] = 0;
    for (size_t p = 0; p < panels; p++) {
        double mid = -10 + ((double)p + 0.5) * width;
        for (int node = 0; node < 20; node++) {
            double x = node < 10 ? ens__gl20_x[node] : -ens__gl20_x[node - 10];
            double w = ens__gl20_w[node < 10 ? node : node - 10];
            double g = mid + x * width / 2;
            double dens = w * width / 2 * exp(-g * g / 2) / sqrt(2 * M_PI);
            for (size_t i = 0; i < k; i++)
                q[i] = ens_norm_cdf((sr * g - tau[i]) / se);
            /* Products over all subsets, one model at a time. */
            arr[0] = dens;
            for (size_t i = 0; i < k; i++) {
                size_t half = (size_t)1 << i;
                double wi = (1 - q[i]) * wrong;
                for (size_t m = 0; m < half; m++) {
                    arr[m | half] = arr[m] * q[i];
                    arr[m] *= wi;
                }
            }
            for (size_t m = 0; m < nsub; m++)
                F[m] += arr[m];
        }
    }
    free(arr);
}

typedef struct {
    size_t k, nlabels;
    const double *F;
    size_t first; /* the most accurate model (lowest tau) */
    const double *tau;
    size_t block[ENS_COPULA_FINITE_MAX]; /* block masks of the current partition */
    double vote, bayes, total;           /* sums of L^(b) times the right-answer mass */
} parts_t;

/* The lowest threshold (most accurate model) in a block. */
static double block_best_tau(const parts_t *s, size_t m)
{
    double t = INFINITY;
    for (size_t i = 0; i < s->k; i++)
        if (m & ((size_t)1 << i))
            t = fmin(t, s->tau[i]);
    return t;
}

/* Scores one set partition of the models into b blocks (who agrees with
 * whom). Each of the L (L-1) ... (L-b+1) labellings of the blocks is an
 * answer tuple; the truth is one block's label or, when b < L, one of the
 * L - b labels nobody gave. The vote answers the largest block, a tie going
 * to the block of the most accurate model among the tied (combine.h). */
static void score_partition(parts_t *s, size_t b)
{
    if (b > s->nlabels)
        return;
    double ff = 1;
    for (size_t i = 0; i < b; i++)
        ff *= (double)(s->nlabels - i);
    size_t big = 0, pick = 0;
    double best = b < s->nlabels ? s->F[0] : 0, all = 0;
    for (size_t i = 0; i < b; i++) {
        size_t m = s->block[i];
        size_t sz = (size_t)__builtin_popcountll(m);
        double f = s->F[m];
        all += f;
        best = fmax(best, f);
        if (sz > big || (sz == big && block_best_tau(s, m) < block_best_tau(s, s->block[pick])))
            big = sz, pick = i;
    }
    s->vote += ff * s->F[s->block[pick]];
    s->bayes += ff * best;
    s->total += ff * (all + (double)(s->nlabels - b) * s->F[0]);
}

/* Enumerates set partitions by restricted growth: model i joins one of the
 * b blocks so far or opens block b. */
static void enum_partitions(parts_t *s, size_t i, size_t b)
{
    if (i == s->k) {
        score_partition(s, b);
        return;
    }
    size_t bit = (size_t)1 << i;
    for (size_t j = 0; j <= b && j < ENS_COPULA_FINITE_MAX; j++) {
        if (j == b)
            s->block[j] = 0;
        s->block[j] |= bit;
        enum_partitions(s, i + 1, j == b ? b + 1 : b);
        s->block[j] &= ~bit;
    }
}

int ens_copula_finite_errors(double rho, const double *tau, size_t k, size_t nlabels,
                             double *vote_error, double *bayes_error)
{
    if (k == 0 || k > ENS_COPULA_FINITE_MAX || nlabels < 2)
        return ENS_EINVAL;
    rho = ens__clamp_rho(rho);
    double *F = ens_xcalloc((size_t)1 << k, sizeof(double));
    subset_integrals(rho, tau, k, nlabels, F);
    parts_t s = {.k = k, .nlabels = nlabels, .F = F, .tau = tau};
    enum_partitions(&s, 0, 0);
    free(F);
    /* P(correct) = (1/L) sum over answer tuples and truths; s.total / L is
     * the probability of everything, 1 up to the quadrature error, and
     * normalizes it away. */
    if (vote_error)
        *vote_error = fmax(0, 1 - s.vote / s.total);
    if (bayes_error)
        *bayes_error = fmax(0, 1 - s.bayes / s.total);
    return 0;
}

static double binary_entropy(double p)
{
    if (p <= 0 || p >= 1)
        return 0;
    return -p * log2(p) - (1 - p) * log2(1 - p);
}

double ens_fano_error_lower(double h_cond_bits, size_t nlabels)
{
    if (nlabels < 2 || isnan(h_cond_bits))
        return NAN;
    double L = (double)nlabels, top = 1 - 1 / L, c = log2(L - 1);
    if (h_cond_bits <= 0)
        return 0;
    if (h_cond_bits >= log2(L))
        return top;
    /* H2(p) + p log2(L - 1) increases from 0 to log2 L on [0, 1 - 1/L]. */
    double lo = 0, hi = top;
    for (int it = 0; it < 200 && hi - lo > 1e-15; it++) {
        double mid = (lo + hi) / 2;
        if (binary_entropy(mid) + mid * c >= h_cond_bits)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

/* Numbers the distinct keys[0..n) densely in order of first appearance:
 * ids[r] gets the id of keys[r]; returns the number of distinct keys. Open
 * addressing over 2n..4n slots: one probe per row, where sorting the keys
 * made the Fano bound cost more than a selection. */
static size_t dense_ids(const uint64_t *keys, size_t n, uint32_t *ids)
{
    size_t slots = 64;
    while (slots < 2 * n)
        slots *= 2;
    uint64_t *key = ens_xmalloc(slots * sizeof(uint64_t));
    uint32_t *id = ens_xmalloc(slots * sizeof(uint32_t));
    memset(key, 0xff, slots * sizeof(uint64_t));
    size_t next = 0, mask = slots - 1;
    for (size_t r = 0; r < n; r++) {
        size_t s = (size_t)((keys[r] * UINT64_C(0x9E3779B97F4A7C15)) >> 17) & mask;
        while (key[s] != UINT64_MAX && key[s] != keys[r])
            s = (s + 1) & mask;
        if (key[s] == UINT64_MAX) {
            key[s] = keys[r];
            id[s] = (uint32_t)next++;
        }
        ids[r] = id[s];
    }
    free(key);
    free(id);
    return next;
}

int ens_fano_bound(const ens_data_t *d, const size_t *set, size_t k, double z, double *pe)
{
    for (size_t i = 0; i < k; i++)
        if (set[i] >= d->nmodels)
            return ENS_EINVAL;
    if (d->nlabels < 2 || !(z >= 0))
        return ENS_EINVAL;
    /* The documented limit (copula.h): cell ids are 32-bit. */
    if (d->nrows > ((size_t)1 << 24))
        return ENS_ETOOBIG;
    /* The rows where every model of S was asked. */
    size_t n = 0;
    uint32_t *live = ens_xcalloc(d->nrows ? d->nrows : 1, sizeof(uint32_t));
    for (size_t r = 0; r < d->nrows; r++) {
        int ok = 1;
        for (size_t i = 0; i < k && ok; i++)
            ok = ens_data_col(d, set[i])[r] != ENS_SYM_MISSING;
        if (ok)
            live[n++] = (uint32_t)r;
    }
    if (n == 0) {
        free(live);
        return ENS_EEMPTY;
    }
    /* Cells of the raw answer tuple, refined one model at a time, then the
     * cells of (tuple, y): the plug-in p(y | x) = n(x, y) / n(x). */
    uint64_t *keys = ens_xcalloc(n, sizeof(uint64_t));
    uint32_t *cell = ens_xcalloc(n, sizeof(uint32_t)), *joint = ens_xcalloc(n, sizeof(uint32_t));
    for (size_t i = 0; i < k; i++) {
        const uint8_t *col = ens_data_col(d, set[i]);
        for (size_t r = 0; r < n; r++)
            keys[r] = (uint64_t)cell[r] * 256 + col[live[r]];
        dense_ids(keys, n, cell);
    }
    for (size_t r = 0; r < n; r++)
        keys[r] = (uint64_t)cell[r] * 256 + d->y[live[r]];
    size_t ncell = 0, njoint = dense_ids(keys, n, joint);
    for (size_t r = 0; r < n; r++)
        ncell = cell[r] + 1 > ncell ? cell[r] + 1 : ncell;
    uint32_t *nc = ens_xcalloc(ncell, sizeof(uint32_t)),
             *nj = ens_xcalloc(njoint, sizeof(uint32_t));
    for (size_t r = 0; r < n; r++) {
        nc[cell[r]]++;
        nj[joint[r]]++;
    }
    /* H(Y | X) as the mean of the per-row losses -log2 p(y | x), and its
     * standard error from their spread (theory.md §6). */
    double s = 0, s2 = 0;
    for (size_t r = 0; r < n; r++) {
        double loss = -log2((double)nj[joint[r]] / (double)nc[cell[r]]);
        s += loss;
        s2 += loss * loss;
    }
    double mean = s / (double)n, var = s2 / (double)n - mean * mean;
    double se = sqrt(fmax(var, 0) / (double)n);
    *pe = ens_fano_error_lower(mean - z * se, d->nlabels);
    free(live);
    free(keys);
    free(cell);
    free(joint);
    free(nc);
    free(nj);
    return 0;
}
