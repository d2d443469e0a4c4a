/* part_est.c - the estimates of the partition-refinement engine, and the
 * generic way of counting (see part_int.h).
 *
 * Both ways of counting a candidate j (here, and the fast way of
 * part_kernel.c) end with the joint counts of (child cell of S + j, target)
 * in p->keys / p->cnts, in an order fixed by the part's state; this file turns
 * them into bits: the plug-in or Miller-Madow I(Y; X_{S+j}) over raw answer
 * tuples, or the held-out estimate over agreement patterns
 * (docs/estimators.md). The marginals follow from the joint bins, which are
 * far fewer than the rows, so no pass here is per row except the generic way.
 *
 * The generic way counts per row, one candidate at a time: it is what scores
 * when the rows fall in too many states for the fast way (cells of the order
 * of the rows).
 */
#include <math.h>
#include <string.h>

#include "part_int.h"

/* Smoothing mass of the held-out estimator (docs/estimators.md). */
#define ALPHA 1.0

static double xlog2x(double k)
{
    return k > 0 ? k * log2(k) : 0.0;
}

uint64_t ens__part_keyspace(const ens_part_t *p)
{
    uint64_t cells = p->ncells ? p->ncells : 1;
    if (p->est == ENS_EST_HELDOUT)
        return cells * ens__part_classes_b(p) * ens__part_targets_z(p);
    return cells * (p->L + 1) * (p->L ? p->L : 1);
}

/* Leave-one-out log-loss (bits, summed) of the smoothed marginal of y. */
static double loo_marginal(const uint32_t *ycnt, size_t L, size_t N)
{
    double loss = 0;
    for (size_t y = 0; y < L; y++) {
        if (!ycnt[y])
            continue;
        double p = (ycnt[y] - 1 + ALPHA / (double)L) / ((double)N - 1 + ALPHA);
        loss -= ycnt[y] * log2(p);
    }
    return loss;
}

/* Plug-in (or Miller-Madow) I(Y; X_{S+j}) from the m_xy joint bins in
 * p->keys / p->cnts, keys ((cell * nsym + x) * L + y). */
static double raw_bits(ens_part_t *p, size_t m_xy, size_t *rows)
{
    const size_t L = p->L;
    ens__ctr_t *c = &p->ctr;
    /* The marginals of (cell, x) and of y follow from the joint bins,
     * which are far fewer than the rows. */
    size_t N = 0, m_y = 0;
    double s_xy = 0, s_x = 0, s_y = 0;
    uint32_t ycnt[256] = {0};
    for (size_t i = 0; i < m_xy; i++) {
        N += p->cnts[i];
        s_xy += xlog2x(p->cnts[i]);
        ycnt[p->keys[i] % L] += p->cnts[i];
        ens__ctr_addn(c, p->keys[i] / L, p->cnts[i]);
    }
    size_t m_x = c->nt;
    for (size_t i = 0; i < c->nt; i++)
        s_x += xlog2x(c->cnt[c->touched[i]]);
    ens__ctr_drain(c, p->keys + m_xy, p->cnts + m_xy);
    for (size_t l = 0; l < L; l++) {
        s_y += xlog2x(ycnt[l]);
        m_y += ycnt[l] > 0;
    }

    *rows = N;
    if (N == 0)
        return 0.0;
    double dn = (double)N;
    double bits = log2(dn) + (s_xy - s_x - s_y) / dn;
    if (p->est == ENS_EST_MILLER_MADOW)
        bits += ((double)m_y - 1 + (double)m_x - 1 - ((double)m_xy - 1)) / (2 * dn * M_LN2);
    return bits;
}

/* Held-out I(Y; X_{S+j}) from the nb joint bins in p->keys / p->cnts, keys
 * ((cell * B + b) * Z + z), ycnt holding y over the rows where S and j were
 * asked. */
static double heldout_bits(ens_part_t *p, size_t nb, const uint32_t *ycnt, size_t *rows)
{
    const size_t B = ens__part_classes_b(p), Z = ens__part_targets_z(p), L = p->L;
    ens__ctr_t *c = &p->ctr;
    /* Leave-one-out log-loss of p(z | cell) = (n(cell, z) - 1 + ALPHA q(z)) /
     * (n(cell) - 1 + ALPHA), q spreading the prior evenly over labels: 1/L
     * for each answer class, (L - ncls)/L for "none of them", whose mass is
     * then split evenly over the L - ncls unanswered labels. */
    size_t N = 0;
    double loss = 0;
    for (size_t i = 0; i < nb; i++) {
        uint64_t child = p->keys[i] / Z;
        size_t z = (size_t)(p->keys[i] % Z);
        double n = p->cnts[i];
        size_t ncls = p->cell_ncls[child / B] + (child % B == p->nsel);
        double q = z == Z - 1 ? (double)(L - ncls) / (double)L : 1.0 / (double)L;
        loss -= n * log2(n - 1 + ALPHA * q);
        if (z == Z - 1)
            loss += n * log2((double)(L - ncls));
        N += p->cnts[i];
        ens__ctr_addn(c, child, p->cnts[i]);
    }
    for (size_t i = 0; i < c->nt; i++) {
        double n = c->cnt[c->touched[i]];
        loss += n * log2(n - 1 + ALPHA);
    }
    ens__ctr_drain(c, p->keys + nb, p->cnts + nb);

    *rows = N;
    if (N == 0)
        return 0.0;
    return (loo_marginal(ycnt, L, N) - loss) / (double)N;
}

double ens__part_bits_of(ens_part_t *p, size_t m, const uint32_t *ycnt, size_t *rows)
{
    if (p->est == ENS_EST_HELDOUT)
        return heldout_bits(p, m, ycnt, rows);
    return raw_bits(p, m, rows);
}

double ens__part_score_generic(ens_part_t *p, size_t j, size_t *rows)
{
    const uint8_t *col = ens_data_col(p->d, j);
    const uint8_t *y = p->d->y;
    ens__ctr_t *c = &p->ctr;
    uint32_t ycnt[256];
    memcpy(ycnt, p->ylive, sizeof(ycnt));

    for (size_t r = 0; r < p->n; r++) {
        if (p->cell[r] == PART_DEAD)
            continue;
        if (col[r] == ENS_SYM_MISSING)
            ycnt[y[r]]--;
        else
            ens__ctr_add(c, ens__part_row_key(p, r, col[r]));
    }
    size_t m = ens__ctr_drain(c, p->keys, p->cnts);
    return ens__part_bits_of(p, m, ycnt, rows);
}
