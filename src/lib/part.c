/* part.c - partition refinement (see part.h).
 *
 * Per row the part keeps cell[r], the id of the row's cell under X_S, or DEAD.
 * Scoring candidate j gathers the joint counts of (child cell of S + j,
 * target) and turns them into an estimate (raw_bits, heldout_bits). The key
 * of that joint is the same in both ways of counting:
 *
 *  - The fast way, when the rows fall in few states. A state is what a row's
 *    key depends on besides x_j: (cell, y) for raw tuples, (cell, y, answer of
 *    each class) for agreement patterns. st_out[state][symbol] holds the key,
 *    so a pass over the rows only counts (state, x_j) in a small dense
 *    histogram: no per-row class search, no hashing, and the histogram stays
 *    in L1. Candidates are counted up to GROUP_MAX at a time, as the joint of
 *    (state, x_j1, x_j2, ...), while it stays small: the row states are read
 *    once per group and one increment serves the whole group; each
 *    candidate's counts are then summed out of the joint. Abstention and
 *    missing take room in a joint only when a column of the group has them.
 *  - The generic way otherwise (cells of the order of the rows): per row, the
 *    key is computed and counted in a counter that is dense when the key
 *    space is small and an open-addressing table otherwise. Only the slots
 *    touched in the pass are read back and cleared, so a pass costs O(rows)
 *    whatever the key space.
 *
 * Both feed the keys to the estimator in an order fixed by the part's state,
 * so a candidate gets the same bits however it is counted (alone or in a
 * group), and ens__part_add reuses the score of the last scoring pass.
 *
 * Held-out mode also keeps, per row, the answer of each agreement class
 * (rep[c][r], c < ncls[r], in order of first appearance among S) and the class
 * holding the true label (zc[r], or NONE). A cell of the pattern partition
 * fixes ncls, so cell_ncls[cell] is kept per cell.
 *
 * Everything is per part: parts in different threads share nothing.
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

/* Fast way: most candidates counted in one pass. */
#define GROUP_MAX 8
/* Largest joint histogram of a group (entries): 4 copies of it fit in a
 * 64 KiB L1/L2 budget, and its scan is small next to 10^4..10^6 rows. */
#define JOINT_SMALL 4096
/* Copies of a small histogram: rows r, r+1, r+2, r+3 increment different
 * copies, so that runs of one hot bin (binary labels, correlated models) do
 * not serialize on store-to-load forwarding. */
#define NCOPY 4
/* Keys of the joints are 16 bits, built BLOCK rows at a time by loops that
 * compilers vectorize (at -O2 on SSE2, 8 keys per instruction), then counted:
 * a row's key costs a fraction of an instruction per candidate instead of two
 * dependent loads. So a joint has at most JOINT_MAX bins. */
#define JOINT_MAX 0x7FFF
/* State of a row outside the states (DEAD cell): above every joint bin, with
 * room to add symbol offsets without wrapping. */
#define ST_DEAD 0x8000
#define BLOCK 256

/* Candidates counted in one pass and the symbols of their joint: labels,
 * then abstention and missing when a column of the group holds them. */
typedef struct {
    size_t nc;   /* candidates */
    size_t R;    /* symbols: L + abstain + missing */
    int abstain; /* a column holds abstentions (symbol L) */
    int missing; /* a column holds missing answers (symbol R - 1) */
} group_t;

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
    size_t nsym;                /* prediction symbols: L labels, abstention */
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

    /* The fast way (nst > 0): see the file comment. */
    size_t nst;       /* row states, 0 when the fast way is off */
    uint16_t *st;     /* n: state of each row, or ST_DEAD */
    uint64_t *st_out; /* nst * nsym: joint key of (state, symbol) */
    uint8_t *st_y;    /* nst: y of each state */
    uint32_t *hist;   /* NCOPY * (joint + 1) bins, kept zeroed */
    size_t hist_cap;  /* bins allocated in hist */
    uint32_t *marg;   /* GROUP_MAX * nst * (nsym + 1): counts per candidate */
    size_t marg_cap;  /* entries allocated in marg */
    size_t st_cap;    /* states allocated in st_out / st_y */
    uint32_t *st_row; /* JOINT_MAX: a row of each state (while numbering them) */
    uint16_t *tmap;   /* JOINT_MAX: next state of (state, symbol), see states_next */
    double *sc_bits;  /* nmodels: last score of each model ... */
    size_t *sc_rows;  /* ... its rows ... */
    size_t *sc_stamp; /* ... valid when equal to nsel + 1 */
    uint8_t *colsym;  /* nmodels: col_syms() of each model, 0 until known */
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

/* ---- estimates from the joint counts ----------------------------------- */

/* Plug-in (or Miller-Madow) I(Y; X_{S+j}) from the m_xy joint bins in
 * p->keys / p->cnts, keys ((cell * nsym + x) * L + y). */
static double raw_bits(ens_part_t *p, size_t m_xy, size_t *rows)
{
    const size_t L = p->L;
    counter_t *c = &p->ctr;
    /* The marginals of (cell, x) and of y follow from the joint bins,
     * which are far fewer than the rows. */
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

/* Held-out I(Y; X_{S+j}) from the nb joint bins in p->keys / p->cnts, keys
 * ((cell * B + b) * Z + z), ycnt holding y over the rows where S and j were
 * asked. */
static double heldout_bits(ens_part_t *p, size_t nb, const uint32_t *ycnt, size_t *rows)
{
    const size_t B = classes_b(p), Z = targets_z(p), L = p->L;
    counter_t *c = &p->ctr;
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

/* ---- the generic way: one candidate, key per row ----------------------- */

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

/* The joint key of row r (live) with answer x (not missing). */
static inline uint64_t row_key(const ens_part_t *p, size_t r, uint8_t x)
{
    if (p->est == ENS_EST_HELDOUT) {
        size_t b = class_of(p, r, x);
        return ((uint64_t)p->cell[r] * classes_b(p) + b) * targets_z(p) + target_of(p, r, b, x);
    }
    return ((uint64_t)p->cell[r] * p->nsym + sym_index(x, p->L)) * p->L + p->d->y[r];
}

static double score_generic(ens_part_t *p, size_t j, size_t *rows)
{
    const uint8_t *col = ens_data_col(p->d, j);
    const uint8_t *y = p->d->y;
    counter_t *c = &p->ctr;
    uint32_t ycnt[256];
    memcpy(ycnt, p->ylive, sizeof(ycnt));

    for (size_t r = 0; r < p->n; r++) {
        if (p->cell[r] == DEAD)
            continue;
        if (col[r] == ENS_SYM_MISSING)
            ycnt[y[r]]--;
        else
            ctr_add(c, row_key(p, r, col[r]));
    }
    size_t m = ctr_drain(c, p->keys, p->cnts);
    if (p->est == ENS_EST_HELDOUT)
        return heldout_bits(p, m, ycnt, rows);
    return raw_bits(p, m, rows);
}

/* ---- the fast way: row states, candidates in groups -------------------- */

/* key[i] = st[i] + stride * symbol(col[i]) over one block; shift takes the
 * abstention and missing bytes (0xFE, 0xFF) to symbols L and L + 1. */
static void keys16_first(uint16_t *restrict key, const uint16_t *restrict st,
                         const uint8_t *restrict col, uint16_t stride, uint8_t shift)
{
    for (size_t i = 0; i < BLOCK; i++) {
        uint8_t x = col[i];
        uint8_t s = (uint8_t)(x - (x >= ENS_SYM_ABSTAIN ? shift : 0));
        key[i] = (uint16_t)(st[i] + s * stride);
    }
}

/* key[i] += stride * symbol(col[i]) over one block (see keys16_first). */
static void keys16_more(uint16_t *restrict key, const uint8_t *restrict col, uint16_t stride,
                        uint8_t shift)
{
    for (size_t i = 0; i < BLOCK; i++) {
        uint8_t x = col[i];
        uint8_t s = (uint8_t)(x - (x >= ENS_SYM_ABSTAIN ? shift : 0));
        key[i] = (uint16_t)(key[i] + s * stride);
    }
}

/* Counts one block of keys in the copies of h (stride bins apart), keys
 * above jn (dead rows) in bin jn. */
static void count16(uint32_t *restrict h, size_t stride, uint16_t *restrict key, uint16_t jn)
{
    /* Clamped apart, the keys are clamped 8 at a time. */
    for (size_t i = 0; i < BLOCK; i++)
        key[i] = key[i] < jn ? key[i] : jn;
    uint32_t *h0 = h, *h1 = h + stride, *h2 = h + 2 * stride, *h3 = h + 3 * stride;
    for (size_t i = 0; i < BLOCK; i += 4) {
        h0[key[i]]++;
        h1[key[i + 1]]++;
        h2[key[i + 2]]++;
        h3[key[i + 3]]++;
    }
}

/* Counts the joint of (state, x_{j_0}, ..., x_{j_{nc-1}}) into the copies of
 * h (stride bins apart, 0 for one copy), bin jn taking the dead rows;
 * strides[i] is candidate i's symbol stride in the joint. */
static void count_joint(const ens_part_t *p, const uint8_t *const *cols, const uint16_t *strides,
                        const group_t *g, uint16_t jn, uint32_t *h, size_t stride)
{
    /* Abstention to L, missing to L + abstain (see score_group). */
    const uint8_t shift = (uint8_t)((g->abstain ? ENS_SYM_ABSTAIN : ENS_SYM_MISSING) - p->L);
    const size_t nc = g->nc;
    uint16_t key[BLOCK];
    size_t r = 0;
    for (; r + BLOCK <= p->n; r += BLOCK) {
        keys16_first(key, p->st + r, cols[0] + r, strides[0], shift);
        for (size_t i = 1; i < nc; i++)
            keys16_more(key, cols[i] + r, strides[i], shift);
        count16(h, stride, key, jn);
    }
    if (r == p->n)
        return;
    /* The last rows, padded to a block with dead rows. */
    size_t left = p->n - r;
    uint16_t st[BLOCK];
    uint8_t col[BLOCK] = {0};
    for (size_t k = 0; k < BLOCK; k++)
        st[k] = k < left ? p->st[r + k] : ST_DEAD;
    memcpy(col, cols[0] + r, left);
    keys16_first(key, st, col, strides[0], shift);
    for (size_t i = 1; i < nc; i++) {
        memcpy(col, cols[i] + r, left);
        keys16_more(key, col, strides[i], shift);
    }
    count16(h, stride, key, jn);
}

/* Sums the joint of a group (jn bins in ncopy copies, stride apart) out into
 * each candidate's counts of (symbol, state), marg + i * nst * R, and clears
 * the joint. */
static void joint_to_marg(ens_part_t *p, size_t nc, size_t R, size_t jn, size_t ncopy,
                          size_t stride)
{
    const size_t nst = p->nst, per = nst * R;
    uint32_t *h = p->hist, *marg = p->marg;
    size_t digit[GROUP_MAX] = {0};
    memset(marg, 0, nc * per * sizeof(uint32_t));
    for (size_t base = 0; base < jn; base += nst) {
        for (size_t s = 0; s < nst; s++) {
            uint32_t v = 0;
            for (size_t c = 0; c < ncopy; c++)
                v += h[c * stride + base + s];
            if (!v)
                continue;
            for (size_t i = 0; i < nc; i++)
                marg[i * per + digit[i] * nst + s] += v;
        }
        /* The symbols of the next block of states, little-endian in R. */
        for (size_t i = 0; i < nc && ++digit[i] == R; i++)
            digit[i] = 0;
    }
    for (size_t c = 0; c < ncopy; c++)
        memset(h + c * stride, 0, (jn + 1) * sizeof(uint32_t));
}

/* The estimate of one candidate from its counts of (symbol, state). */
static double marg_bits(ens_part_t *p, const uint32_t *marg, const group_t *g, size_t *rows)
{
    const size_t nst = p->nst, nsym = p->nsym, nx = g->R - g->missing;
    counter_t *c = &p->ctr;
    uint32_t ycnt[256];
    memcpy(ycnt, p->ylive, sizeof(ycnt));
    /* Held-out states of one cell may share a key: the counter merges them. */
    for (size_t s = 0; s < nst; s++) {
        for (size_t x = 0; x < nx; x++)
            if (marg[x * nst + s])
                ctr_addn(c, p->st_out[s * nsym + x], marg[x * nst + s]);
        if (g->missing)
            ycnt[p->st_y[s]] -= marg[nx * nst + s];
    }
    size_t m = ctr_drain(c, p->keys, p->cnts);
    if (p->est == ENS_EST_HELDOUT)
        return heldout_bits(p, m, ycnt, rows);
    return raw_bits(p, m, rows);
}

/* Which of abstention and missing column j holds (bits 2 and 4), found once
 * per part: a symbol no column of a group holds takes no room in its joint. */
static unsigned col_syms(ens_part_t *p, size_t j)
{
    if (!p->colsym[j]) {
        const uint8_t *col = ens_data_col(p->d, j);
        p->colsym[j] = (uint8_t)(1 | (memchr(col, ENS_SYM_ABSTAIN, p->n) ? 2 : 0) |
                                 (memchr(col, ENS_SYM_MISSING, p->n) ? 4 : 0));
    }
    return p->colsym[j];
}

/* The group of the first candidates of js[0..left): the most whose joint
 * stays small, at least one. */
static void group_make(ens_part_t *p, const size_t *js, size_t left, group_t *g)
{
    unsigned syms = col_syms(p, js[0]);
    g->nc = 1;
    for (;;) {
        g->abstain = (syms & 2) != 0;
        g->missing = (syms & 4) != 0;
        g->R = p->L + g->abstain + g->missing;
        if (g->nc == GROUP_MAX || g->nc == left)
            break;
        unsigned more = syms | col_syms(p, js[g->nc]);
        size_t R = p->L + ((more & 2) != 0) + ((more & 4) != 0), jn = p->nst;
        for (size_t i = 0; i <= g->nc; i++)
            jn *= R;
        if (jn > JOINT_SMALL)
            break;
        syms = more;
        g->nc++;
    }
}

/* Scores js[0..nc) in one pass over the rows. */
static void score_group(ens_part_t *p, const size_t *js, const group_t *g, double *bits,
                        size_t *rows)
{
    const size_t R = g->R, nc = g->nc;
    const uint8_t *cols[GROUP_MAX];
    uint16_t strides[GROUP_MAX];
    size_t jn = p->nst;
    for (size_t i = 0; i < nc; i++) {
        cols[i] = ens_data_col(p->d, js[i]);
        strides[i] = (uint16_t)jn;
        jn *= R;
    }
    size_t ncopy = jn <= JOINT_SMALL ? NCOPY : 1, stride = ncopy > 1 ? jn + 1 : 0;
    uint32_t *h = p->hist;
    count_joint(p, cols, strides, g, (uint16_t)jn, h, stride);
    joint_to_marg(p, nc, R, jn, stride ? ncopy : 1, stride);
    for (size_t i = 0; i < nc; i++)
        bits[i] = marg_bits(p, p->marg + i * p->nst * R, g, &rows[i]);
}

/* ---- row states ------------------------------------------------------- */

/* Most states the fast way takes: one candidate's joint must fit 16-bit
 * keys and be small next to the rows (or else small in absolute terms), as
 * its bins are scanned after each pass. */
static size_t states_max(const ens_part_t *p)
{
    size_t lim = p->n / 4 > JOINT_SMALL ? p->n / 4 : JOINT_SMALL;
    return (lim < JOINT_MAX ? lim : JOINT_MAX) / (p->nsym + 1);
}

/* Sizes the state tables and the histograms for nst states. */
static void states_alloc(ens_part_t *p, size_t nst)
{
    const size_t R = p->nsym + 1;
    if (nst > p->st_cap) {
        free(p->st_out);
        free(p->st_y);
        p->st_out = ens_xmalloc(nst * p->nsym * sizeof(uint64_t));
        p->st_y = ens_xmalloc(nst);
        p->st_cap = nst;
    }
    if (GROUP_MAX * nst * R > p->marg_cap) {
        free(p->marg);
        p->marg_cap = GROUP_MAX * nst * R;
        p->marg = ens_xmalloc(p->marg_cap * sizeof(uint32_t));
    }
    /* One group of up to JOINT_SMALL bins in NCOPY copies, or one candidate
     * over every state in a single copy. */
    size_t want = NCOPY * (JOINT_SMALL + 1);
    if (nst * R + 1 > want)
        want = nst * R + 1;
    if (want > p->hist_cap) {
        free(p->hist);
        p->hist = ens_xcalloc(want, sizeof(uint32_t));
        p->hist_cap = want;
    }
    p->nst = nst;
}

/* Raw tuples: the state of a live row is cell * L + y. */
static void states_raw(ens_part_t *p)
{
    const size_t L = p->L, nsym = p->nsym;
    if (L == 0 || p->ncells == 0 || p->ncells > states_max(p) / L) {
        p->nst = 0;
        return;
    }
    states_alloc(p, p->ncells * L);
    for (size_t r = 0; r < p->n; r++)
        p->st[r] = p->cell[r] == DEAD ? ST_DEAD : (uint16_t)(p->cell[r] * L + p->d->y[r]);
    for (size_t s = 0; s < p->nst; s++) {
        p->st_y[s] = (uint8_t)(s % L);
        for (size_t x = 0; x < nsym; x++)
            p->st_out[s * nsym + x] = ((uint64_t)(s / L) * nsym + x) * L + s % L;
    }
}

/* Most answer classes a row can have: distinct labels among S. */
static size_t classes_max(const ens_part_t *p)
{
    return p->nsel < p->L ? p->nsel : p->L;
}

/* The held-out signature of live row r: its cell, y and class answers, which
 * fix the key of every answer x (class_of, target_of). Every row spends
 * classes_max() digits on its answers (0 for no class), so that rows of
 * cells with fewer classes cannot collide with others. */
static uint64_t signature(const ens_part_t *p, size_t r)
{
    uint64_t sig = (uint64_t)p->cell[r] * p->L + p->d->y[r];
    for (size_t c = 0; c < classes_max(p); c++)
        sig = sig * (p->L + 1) + (c < p->ncls[r] ? p->rep[c][r] + 1u : 0u);
    return sig;
}

/* Fills st_y and st_out of the held-out states from a row of each (st_row). */
static void states_keys(ens_part_t *p)
{
    const size_t L = p->L, nsym = p->nsym;
    for (size_t s = 0; s < p->nst; s++) {
        size_t r = p->st_row[s];
        p->st_y[s] = p->d->y[r];
        for (size_t x = 0; x < nsym; x++)
            p->st_out[s * nsym + x] = row_key(p, r, x < L ? (uint8_t)x : ENS_SYM_ABSTAIN);
    }
}

/* Held-out states of S + j from those of S (called before the refinement;
 * returns their number, 0 when none, and leaves a row of each in st_row).
 * A row's state under S + j is fixed by its state under S and x_j, and one
 * to one (the child cell fixes the cell and class of x_j, a new class its
 * answer), so numbering the pairs (state, x_j) in order of first appearance
 * numbers the new states as states_heldout would, without signatures. */
static size_t states_next(ens_part_t *p, size_t j)
{
    const uint8_t *col = ens_data_col(p->d, j);
    const size_t L = p->L, nsym = p->nsym;
    size_t next = 0;
    memset(p->tmap, 0xFF, p->nst * nsym * sizeof(uint16_t));
    for (size_t r = 0; r < p->n; r++) {
        uint8_t x = col[r];
        if (p->st[r] == ST_DEAD || x == ENS_SYM_MISSING) {
            p->st[r] = ST_DEAD;
            continue;
        }
        size_t t = p->st[r] * nsym + (x < L ? x : L);
        if (p->tmap[t] == UINT16_MAX) {
            /* Past JOINT_MAX states the fast way is off: stop numbering. */
            if (next == JOINT_MAX)
                return SIZE_MAX;
            p->st_row[next] = (uint32_t)r;
            p->tmap[t] = (uint16_t)next++;
        }
        p->st[r] = p->tmap[t];
    }
    return next;
}

/* Agreement patterns: states numbered by signature in order of first
 * appearance (the counter numbers them as ens__part_add numbers cells). */
static void states_heldout(ens_part_t *p)
{
    const size_t L = p->L;
    counter_t *c = &p->ctr;
    /* The signatures must fit in 64 bits: cells * L * (L + 1)^classes. */
    long double space = (long double)(p->ncells ? p->ncells : 1) * (long double)L;
    for (size_t k = 0; k < classes_max(p); k++)
        space *= (long double)(L + 1);
    p->nst = 0;
    if (L == 0 || space > 1e18L)
        return;
    ctr_setup(c, (uint64_t)space, p->n + 1);
    for (size_t r = 0; r < p->n && c->nt <= states_max(p); r++)
        if (p->cell[r] != DEAD)
            ctr_add(c, signature(p, r));
    size_t nst = c->nt;
    /* With no live row the generic way has nothing to count either. */
    if (nst > 0 && nst <= states_max(p)) {
        states_alloc(p, nst);
        for (size_t i = 0; i < nst; i++)
            c->cnt[c->touched[i]] = (uint32_t)i + 1;
        for (size_t r = 0; r < p->n; r++) {
            uint16_t s = ST_DEAD;
            if (p->cell[r] != DEAD) {
                s = (uint16_t)(c->cnt[ctr_slot(c, signature(p, r))] - 1);
                p->st_row[s] = (uint32_t)r;
            }
            p->st[r] = s;
        }
        states_keys(p);
    }
    for (size_t i = 0; i < c->nt; i++)
        c->cnt[c->touched[i]] = 0;
    c->nt = 0;
    ctr_setup(c, keyspace(p), p->n + 1);
}

static void states_build(ens_part_t *p)
{
    if (p->est == ENS_EST_HELDOUT)
        states_heldout(p);
    else
        states_raw(p);
}

/* ---- life cycle ------------------------------------------------------- */

ens_part_t *ens__part_new(const ens_data_t *d, ens_estimator_t est)
{
    ens_part_t *p = ens_xcalloc(1, sizeof(*p));
    p->d = d;
    p->est = est;
    p->n = d->nrows;
    p->L = d->nlabels;
    p->nsym = p->L + 1;
    p->cell = ens_xcalloc(p->n ? p->n : 1, sizeof(uint32_t));
    p->ncells = 1;
    p->rows = p->n;
    for (size_t r = 0; r < p->n; r++)
        p->ylive[d->y[r]]++;
    if (est == ENS_EST_HELDOUT) {
        p->cell_ncls = ens_xcalloc(1, 1);
        p->ncls = ens_xcalloc(p->n ? p->n : 1, 1);
        p->zc = ens_xmalloc(p->n ? p->n : 1);
        memset(p->zc, NONE, p->n);
    }
    p->keys = ens_xmalloc(2 * (p->n + 1) * sizeof(uint64_t));
    p->cnts = ens_xmalloc(2 * (p->n + 1) * sizeof(uint32_t));
    p->st = ens_xmalloc((p->n ? p->n : 1) * sizeof(uint16_t));
    p->st_row = ens_xmalloc(JOINT_MAX * sizeof(uint32_t));
    p->tmap = ens_xmalloc(JOINT_MAX * sizeof(uint16_t));
    size_t m = d->nmodels ? d->nmodels : 1;
    p->sc_bits = ens_xmalloc(m * sizeof(double));
    p->sc_rows = ens_xmalloc(m * sizeof(size_t));
    p->sc_stamp = ens_xcalloc(m, sizeof(size_t));
    p->colsym = ens_xcalloc(m, 1);
    ctr_setup(&p->ctr, keyspace(p), p->n + 1);
    states_build(p);
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
    free(p->st);
    free(p->st_out);
    free(p->st_y);
    free(p->st_row);
    free(p->tmap);
    free(p->hist);
    free(p->marg);
    free(p->sc_bits);
    free(p->sc_rows);
    free(p->sc_stamp);
    free(p->colsym);
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

/* ---- scoring ---------------------------------------------------------- */

void ens__part_score_many(ens_part_t *p, const size_t *js, size_t nj, double *bits, size_t *rows)
{
    for (size_t i = 0; i < nj;) {
        size_t nc = 1;
        if (p->nst) {
            group_t g;
            group_make(p, js + i, nj - i, &g);
            score_group(p, js + i, &g, bits + i, rows + i);
            nc = g.nc;
        } else {
            bits[i] = score_generic(p, js[i], &rows[i]);
        }
        /* ens__part_add takes the score of the model it adds from here. */
        for (size_t k = i; k < i + nc; k++) {
            p->sc_bits[js[k]] = bits[k];
            p->sc_rows[js[k]] = rows[k];
            p->sc_stamp[js[k]] = p->nsel + 1;
        }
        i += nc;
    }
}

double ens__part_score(ens_part_t *p, size_t j, size_t *rows)
{
    double bits;
    ens__part_score_many(p, &j, 1, &bits, rows);
    return bits;
}

/* ---- refinement ------------------------------------------------------- */

/* The key of row r's child cell under S + j (see keyspace()). */
static inline uint64_t child_key(const ens_part_t *p, size_t r, uint8_t x)
{
    if (p->est == ENS_EST_HELDOUT)
        return (uint64_t)p->cell[r] * classes_b(p) + class_of(p, r, x);
    return (uint64_t)p->cell[r] * (p->L + 1) + sym_index(x, p->L);
}

/* Moves the live rows of S to their child cells under S + j (numbered in
 * order of first appearance) and updates the held-out row state. */
static void refine(ens_part_t *p, size_t j)
{
    const uint8_t *col = ens_data_col(p->d, j);
    const uint8_t *y = p->d->y;
    counter_t *c = &p->ctr;
    int heldout = p->est == ENS_EST_HELDOUT;

    /* Count the child cells, then overwrite each touched slot's count with
     * its id + 1. */
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
    p->ncells = ncells;
}

void ens__part_add(ens_part_t *p, size_t j)
{
    /* The estimate for S + j is the score of j against S: reuse it when the
     * last pass over S scored j. */
    if (p->sc_stamp[j] == p->nsel + 1) {
        p->bits = p->sc_bits[j];
        p->rows = p->sc_rows[j];
    } else {
        p->bits = ens__part_score(p, j, &p->rows);
    }
    size_t next = 0;
    int chain = p->est == ENS_EST_HELDOUT && p->nst > 0;
    if (chain)
        next = states_next(p, j);
    refine(p, j);
    p->sel[p->nsel++] = j;
    ctr_setup(&p->ctr, keyspace(p), p->n + 1);
    if (!chain) {
        states_build(p);
    } else if (next > 0 && next <= states_max(p)) {
        states_alloc(p, next);
        states_keys(p);
    } else {
        p->nst = 0;
    }
}
