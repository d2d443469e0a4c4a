/* part.c - partition refinement (see part.h).
 *
 * Per row the part keeps cell[r], the id of the row's cell under X_S, or DEAD.
 * Scoring candidate j counts keys built from (cell[r], x_j[r], target) in one
 * pass over the rows, in a counter that is dense (an array indexed by the key)
 * when the key space is small and an open-addressing table otherwise. Only the
 * slots touched in the pass are read back and cleared, so a pass costs O(rows)
 * whatever the key space.
 *
 * Held-out mode also keeps, per row, the answer of each agreement class
 * (rep[c][r], c < ncls[r], in order of first appearance among S) and the class
 * holding the true label (zc[r], or NONE). A cell of the pattern partition
 * fixes ncls, so cell_ncls[cell] is kept per cell.
 */
#include "part.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/xalloc.h"

#define DEAD UINT32_MAX
#define NONE 0xFF
/* Largest key space a dense counter may use (entries). */
#define DENSE_MAX ((uint64_t)1 << 22)
/* Smoothing mass of the held-out estimator (docs/estimators.md). */
#define ALPHA 1.0

typedef struct {
    int dense;       /* 1: slot == key; 0: open addressing */
    size_t slots;    /* slots allocated */
    size_t mask;     /* slots - 1 (hash mode, slots a power of two) */
    uint32_t *cnt;   /* count per slot, 0 = empty */
    uint64_t *keys;  /* key per slot (hash mode) */
    size_t *touched; /* slots that became non-zero in this pass */
    size_t nt;       /* entries in touched */
    size_t touched_cap;
} counter_t;

struct ens_part_s {
    const ens_data_t *d;
    ens_estimator_t est;
    size_t n;                   /* rows */
    size_t L;                   /* labels */
    size_t nsel;                /* |S| */
    size_t sel[ENS_PART_MAX];   /* S in order of addition */
    uint32_t *cell;             /* n cell ids or DEAD */
    size_t ncells;              /* cells in the partition */
    uint8_t *cell_ncls;         /* held-out: answer classes of each cell */
    uint8_t *ncls;              /* held-out: answer classes per row */
    uint8_t *zc;                /* held-out: class holding y per row, or NONE */
    uint8_t *rep[ENS_PART_MAX]; /* held-out: answer of class c per row */
    counter_t ctr;              /* the joint counts of one pass */
    uint64_t *keys;             /* 2n scratch keys drained from ctr */
    uint32_t *cnts;             /* 2n scratch counts drained from ctr */
    uint32_t ylive[256];        /* y counts over live rows */
    double bits;                /* estimate for S */
    size_t rows;                /* live rows for S */
};

/* ---- counter ---------------------------------------------------------- */

static void ctr_setup(counter_t *c, uint64_t keyspace, size_t maxkeys)
{
    size_t want;
    if (keyspace <= DENSE_MAX) {
        c->dense = 1;
        want = (size_t)keyspace;
    } else {
        c->dense = 0;
        want = 16;
        while (want < 2 * maxkeys)
            want *= 2;
        c->mask = want - 1;
    }
    if (want > c->slots) {
        free(c->cnt);
        free(c->keys);
        c->cnt = ens_xcalloc(want, sizeof(uint32_t));
        c->keys = NULL;
        c->slots = want;
    }
    /* Keys are only stored in hash mode. */
    if (!c->dense && !c->keys)
        c->keys = ens_xcalloc(c->slots, sizeof(uint64_t));
    if (maxkeys > c->touched_cap) {
        c->touched = ens_xreallocarray(c->touched, maxkeys, sizeof(size_t));
        c->touched_cap = maxkeys;
    }
    if (!c->dense)
        c->mask = want - 1;
    c->nt = 0;
}

static void ctr_free(counter_t *c)
{
    free(c->cnt);
    free(c->keys);
    free(c->touched);
}

/* The slot of key, claimed for it if the key is new. */
static inline size_t ctr_slot(counter_t *c, uint64_t key)
{
    if (c->dense)
        return (size_t)key;
    size_t s = (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & c->mask;
    while (c->cnt[s] && c->keys[s] != key)
        s = (s + 1) & c->mask;
    c->keys[s] = key;
    return s;
}

static inline void ctr_addn(counter_t *c, uint64_t key, uint32_t n)
{
    size_t s = ctr_slot(c, key);
    if (c->cnt[s] == 0)
        c->touched[c->nt++] = s;
    c->cnt[s] += n;
}

static inline void ctr_add(counter_t *c, uint64_t key)
{
    ctr_addn(c, key, 1);
}

/* Moves the touched bins of c out into keys/cnts (nt entries) and clears c. */
static size_t ctr_drain(counter_t *c, uint64_t *keys, uint32_t *cnts)
{
    size_t nt = c->nt;
    for (size_t i = 0; i < nt; i++) {
        size_t s = c->touched[i];
        keys[i] = c->dense ? (uint64_t)s : c->keys[s];
        cnts[i] = c->cnt[s];
        c->cnt[s] = 0;
    }
    c->nt = 0;
    return nt;
}

/* ---- helpers ---------------------------------------------------------- */

static double xlog2x(double k)
{
    return k > 0 ? k * log2(k) : 0.0;
}

/* Index of a prediction symbol among nsym = L + 1 (abstention last). */
static inline size_t sym_index(uint8_t x, size_t L)
{
    return x == ENS_SYM_ABSTAIN ? L : x;
}

/* Base of the held-out key space: classes 0..nsel-1, NEW, ABSTAIN. */
static size_t classes_b(const ens_part_t *p)
{
    return p->nsel + 2;
}

/* Targets: classes 0..nsel (the new class may be nsel), NONE last. */
static size_t targets_z(const ens_part_t *p)
{
    return p->nsel + 2;
}

static uint64_t keyspace(const ens_part_t *p)
{
    uint64_t cells = p->ncells ? p->ncells : 1;
    if (p->est == ENS_EST_HELDOUT)
        return cells * classes_b(p) * targets_z(p);
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

ens_part_t *ens__part_new(const ens_data_t *d, ens_estimator_t est)
{
    ens_part_t *p = ens_xcalloc(1, sizeof(*p));
    p->d = d;
    p->est = est;
    p->n = d->nrows;
    p->L = d->nlabels;
    p->cell = ens_xcalloc(p->n, sizeof(uint32_t));
    p->ncells = 1;
    p->rows = p->n;
    for (size_t r = 0; r < p->n; r++)
        p->ylive[d->y[r]]++;
    if (est == ENS_EST_HELDOUT) {
        p->cell_ncls = ens_xcalloc(1, 1);
        p->ncls = ens_xcalloc(p->n, 1);
        p->zc = ens_xmalloc(p->n ? p->n : 1);
        memset(p->zc, NONE, p->n);
    }
    p->keys = ens_xmalloc(2 * (p->n + 1) * sizeof(uint64_t));
    p->cnts = ens_xmalloc(2 * (p->n + 1) * sizeof(uint32_t));
    ctr_setup(&p->ctr, keyspace(p), p->n + 1);
    return p;
}

void ens__part_destroy(ens_part_t **pp)
{
    if (!pp || !*pp)
        return;
    ens_part_t *p = *pp;
    ctr_free(&p->ctr);
    free(p->keys);
    free(p->cnts);
    for (size_t c = 0; c < p->nsel; c++)
        free(p->rep[c]);
    free(p->cell);
    free(p->cell_ncls);
    free(p->ncls);
    free(p->zc);
    free(p);
    *pp = NULL;
}

size_t ens__part_size(const ens_part_t *p)
{
    return p->nsel;
}

double ens__part_bits(const ens_part_t *p, size_t *rows)
{
    if (rows)
        *rows = p->rows;
    return p->bits;
}

/* ---- plug-in and Miller-Madow over raw tuples ------------------------- */

static double score_raw(ens_part_t *p, size_t j, size_t *rows)
{
    const uint8_t *col = ens_data_col(p->d, j);
    const uint8_t *y = p->d->y;
    const size_t L = p->L, nsym = L + 1;
    counter_t *c = &p->ctr;

    for (size_t r = 0; r < p->n; r++) {
        uint32_t cl = p->cell[r];
        uint8_t x = col[r];
        if (cl == DEAD || x == ENS_SYM_MISSING)
            continue;
        ctr_add(c, ((uint64_t)cl * nsym + sym_index(x, L)) * L + y[r]);
    }

    /* The marginals of (cell, x) and of y follow from the joint bins,
     * which are far fewer than the rows. */
    size_t m_xy = ctr_drain(c, p->keys, p->cnts);
    size_t N = 0, m_y = 0;
    double s_xy = 0, s_x = 0, s_y = 0;
    uint32_t ycnt[256] = {0};
    for (size_t i = 0; i < m_xy; i++) {
        N += p->cnts[i];
        s_xy += xlog2x(p->cnts[i]);
        ycnt[p->keys[i] % L] += p->cnts[i];
        ctr_addn(c, p->keys[i] / L, p->cnts[i]);
    }
    size_t m_x = c->nt;
    for (size_t i = 0; i < c->nt; i++)
        s_x += xlog2x(c->cnt[c->touched[i]]);
    ctr_drain(c, p->keys + m_xy, p->cnts + m_xy);
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

/* ---- held-out estimate over agreement patterns ------------------------ */

/* The agreement class of answer x in row r: an existing class, the next new
 * one (nsel), or abstention (nsel + 1). */
static inline size_t class_of(const ens_part_t *p, size_t r, uint8_t x)
{
    if (x == ENS_SYM_ABSTAIN)
        return p->nsel + 1;
    for (size_t c = 0; c < p->ncls[r]; c++)
        if (p->rep[c][r] == x)
            return c;
    return p->nsel;
}

/* The target after adding an answer of class b: the class holding y. */
static inline size_t target_of(const ens_part_t *p, size_t r, size_t b, uint8_t x)
{
    if (p->zc[r] != NONE)
        return p->zc[r];
    if (b == p->nsel && x == p->d->y[r])
        return p->ncls[r];
    return targets_z(p) - 1;
}

static double score_heldout(ens_part_t *p, size_t j, size_t *rows)
{
    const uint8_t *col = ens_data_col(p->d, j);
    const uint8_t *y = p->d->y;
    const size_t B = classes_b(p), Z = targets_z(p), L = p->L;
    counter_t *c = &p->ctr;
    uint32_t ycnt[256];
    memcpy(ycnt, p->ylive, sizeof(ycnt));

    for (size_t r = 0; r < p->n; r++) {
        uint32_t cl = p->cell[r];
        uint8_t x = col[r];
        if (cl == DEAD)
            continue;
        if (x == ENS_SYM_MISSING) {
            ycnt[y[r]]--;
            continue;
        }
        size_t b = class_of(p, r, x);
        ctr_add(c, ((uint64_t)cl * B + b) * Z + target_of(p, r, b, x));
    }

    /* Leave-one-out log-loss of p(z | cell) = (n(cell, z) - 1 + ALPHA q(z)) /
     * (n(cell) - 1 + ALPHA), q spreading the prior evenly over labels: 1/L
     * for each answer class, (L - ncls)/L for "none of them", whose mass is
     * then split evenly over the L - ncls unanswered labels. */
    size_t nb = ctr_drain(c, p->keys, p->cnts);
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
        ctr_addn(c, child, p->cnts[i]);
    }
    for (size_t i = 0; i < c->nt; i++) {
        double n = c->cnt[c->touched[i]];
        loss += n * log2(n - 1 + ALPHA);
    }
    ctr_drain(c, p->keys + nb, p->cnts + nb);

    *rows = N;
    if (N == 0)
        return 0.0;
    return (loo_marginal(ycnt, L, N) - loss) / (double)N;
}

double ens__part_score(ens_part_t *p, size_t j, size_t *rows)
{
    if (p->est == ENS_EST_HELDOUT)
        return score_heldout(p, j, rows);
    return score_raw(p, j, rows);
}

/* ---- refinement ------------------------------------------------------- */

/* The key of row r's child cell under S + j (see keyspace()). */
static inline uint64_t child_key(const ens_part_t *p, size_t r, uint8_t x)
{
    if (p->est == ENS_EST_HELDOUT)
        return (uint64_t)p->cell[r] * classes_b(p) + class_of(p, r, x);
    return (uint64_t)p->cell[r] * (p->L + 1) + sym_index(x, p->L);
}

void ens__part_add(ens_part_t *p, size_t j)
{
    const uint8_t *col = ens_data_col(p->d, j);
    const uint8_t *y = p->d->y;
    counter_t *c = &p->ctr;
    int heldout = p->est == ENS_EST_HELDOUT;

    p->bits = ens__part_score(p, j, &p->rows);

    /* Number the child cells in order of first appearance: count them, then
     * overwrite each touched slot's count with its id + 1. */
    for (size_t r = 0; r < p->n; r++)
        if (p->cell[r] != DEAD && col[r] != ENS_SYM_MISSING)
            ctr_add(c, child_key(p, r, col[r]));
    size_t ncells = c->nt;
    uint8_t *cell_ncls = heldout ? ens_xcalloc(ncells ? ncells : 1, 1) : NULL;
    for (size_t i = 0; i < ncells; i++)
        c->cnt[c->touched[i]] = (uint32_t)i + 1;
    if (heldout)
        p->rep[p->nsel] = ens_xmalloc(p->n ? p->n : 1);

    for (size_t r = 0; r < p->n; r++) {
        uint32_t cl = p->cell[r];
        uint8_t x = col[r];
        if (cl == DEAD)
            continue;
        if (x == ENS_SYM_MISSING) {
            p->ylive[y[r]]--;
            p->cell[r] = DEAD;
            continue;
        }
        uint32_t id = c->cnt[ctr_slot(c, child_key(p, r, x))] - 1;
        if (heldout) {
            size_t b = class_of(p, r, x);
            size_t z = target_of(p, r, b, x);
            if (b == p->nsel) {
                p->rep[p->ncls[r]][r] = x;
                p->ncls[r]++;
            }
            p->zc[r] = z == targets_z(p) - 1 ? NONE : (uint8_t)z;
            cell_ncls[id] = p->ncls[r];
        }
        p->cell[r] = id;
    }
    for (size_t i = 0; i < ncells; i++)
        c->cnt[c->touched[i]] = 0;
    c->nt = 0;

    if (heldout) {
        free(p->cell_ncls);
        p->cell_ncls = cell_ncls;
    }
    p->sel[p->nsel++] = j;
    p->ncells = ncells;
    ctr_setup(c, keyspace(p), p->n + 1);
}
