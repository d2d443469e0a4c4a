/* part_kernel.c - the fast way of counting candidates (see part.c, part_int.h).
 *
 * Each live row has a state (part_states.c): what its joint key depends on
 * besides the candidate's answer, st_out[state][symbol] holding the key. A
 * pass over the rows then only counts (state, x_j) in a small dense histogram:
 * no per-row class search, no hashing, and the histogram stays in L1.
 *
 * Candidates are counted up to PART_GROUP_MAX at a time, as the joint of (state,
 * x_j1, x_j2, ...), while it stays small: the row states are read once per
 * group and one increment serves the whole group; each candidate's counts are
 * then summed out of the joint. Abstention and missing take room in a joint
 * only when a column of the group has them.
 *
 * Keys of the joints are 16 bits, built BLOCK rows at a time by loops that
 * compilers vectorize (at -O2 on SSE2, 8 keys per instruction), then counted:
 * a row's key costs a fraction of an instruction per candidate instead of two
 * dependent loads. These loops are the hot path of every selection; keep them
 * in this file, free of calls, and check bench/select after changing them.
 */
#include <string.h>

#include "part_int.h"

#define BLOCK 256

/* Candidates counted in one pass and the symbols of their joint: labels,
 * then abstention and missing when a column of the group holds them. */
typedef struct {
    size_t nc;   /* candidates */
    size_t R;    /* symbols: L + abstain + missing */
    int abstain; /* a column holds abstentions (symbol L) */
    int missing; /* a column holds missing answers (symbol R - 1) */
} group_t;

/* key[i] = st[i] + stride * symbol(col[i]) over one block; shift takes the
 * abstention and missing bytes (0xFE, 0xFF) to symbols L and L + 1. */
__attribute__((noinline)) static void keys16_first(uint16_t *restrict key,
                                                   const uint16_t *restrict st,
                                                   const uint8_t *restrict col, uint16_t stride,
                                                   uint8_t shift)
{
    for (size_t i = 0; i < BLOCK; i++) {
        uint8_t x = col[i];
        uint8_t s = (uint8_t)(x - (x >= ENS_SYM_ABSTAIN ? shift : 0));
        key[i] = (uint16_t)(st[i] + s * stride);
    }
}

/* key[i] += stride * symbol(col[i]) over one block (see keys16_first). */
__attribute__((noinline)) static void
keys16_more(uint16_t *restrict key, const uint8_t *restrict col, uint16_t stride, uint8_t shift)
{
    for (size_t i = 0; i < BLOCK; i++) {
        uint8_t x = col[i];
        uint8_t s = (uint8_t)(x - (x >= ENS_SYM_ABSTAIN ? shift : 0));
        key[i] = (uint16_t)(key[i] + s * stride);
    }
}

/* Counts one block of keys in the copies of h (stride bins apart), keys
 * above jn (dead rows) in bin jn. Four copies, or one (stride 0). */
_Static_assert(PART_NCOPY == 4, "count16 counts into four copies of the joint");
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
        st[k] = k < left ? p->st[r + k] : PART_ST_DEAD;
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
    size_t digit[PART_GROUP_MAX] = {0};
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
    ens__ctr_t *c = &p->ctr;
    uint32_t ycnt[256];
    memcpy(ycnt, p->ylive, sizeof(ycnt));
    /* Held-out states of one cell may share a key: the counter merges them. */
    for (size_t s = 0; s < nst; s++) {
        for (size_t x = 0; x < nx; x++)
            if (marg[x * nst + s])
                ens__ctr_addn(c, p->st_out[s * nsym + x], marg[x * nst + s]);
        if (g->missing)
            ycnt[p->st_y[s]] -= marg[nx * nst + s];
    }
    size_t m = ens__ctr_drain(c, p->keys, p->cnts);
    return ens__part_bits_of(p, m, ycnt, rows);
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

/* The largest joint of a group: PART_JOINT_SMALL, and at most an eighth of
 * the rows (64 bins at least). Each pass scans and clears its joint after
 * counting the rows; on the few thousand rows of a cross-validation fold a
 * joint of 4096 bins cost more to scan than the rows did to count. */
static size_t joint_cap(const ens_part_t *p)
{
    size_t cap = p->n / 8 > 64 ? p->n / 8 : 64;
    return cap < PART_JOINT_SMALL ? cap : PART_JOINT_SMALL;
}

/* The group of the first candidates of js[0..left): the most whose joint
 * stays small, at least one. */
static void group_make(ens_part_t *p, const size_t *js, size_t left, group_t *g)
{
    unsigned syms = col_syms(p, js[0]);
    const size_t cap = joint_cap(p);
    g->nc = 1;
    for (;;) {
        g->abstain = (syms & 2) != 0;
        g->missing = (syms & 4) != 0;
        g->R = p->L + g->abstain + g->missing;
        if (g->nc == PART_GROUP_MAX || g->nc == left)
            break;
        unsigned more = syms | col_syms(p, js[g->nc]);
        size_t R = p->L + ((more & 2) != 0) + ((more & 4) != 0), jn = p->nst;
        for (size_t i = 0; i <= g->nc; i++)
            jn *= R;
        if (jn > cap)
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
    const uint8_t *cols[PART_GROUP_MAX];
    uint16_t strides[PART_GROUP_MAX];
    size_t jn = p->nst;
    for (size_t i = 0; i < nc; i++) {
        cols[i] = ens_data_col(p->d, js[i]);
        strides[i] = (uint16_t)jn;
        jn *= R;
    }
    /* Copies pay off where runs of one bin are long: rows many next to bins. */
    size_t ncopy = jn <= PART_JOINT_SMALL && p->n >= 8 * jn ? PART_NCOPY : 1;
    size_t stride = ncopy > 1 ? jn + 1 : 0;
    uint32_t *h = p->hist;
    count_joint(p, cols, strides, g, (uint16_t)jn, h, stride);
    joint_to_marg(p, nc, R, jn, stride ? ncopy : 1, stride);
    for (size_t i = 0; i < nc; i++)
        bits[i] = marg_bits(p, p->marg + i * p->nst * R, g, &rows[i]);
}

size_t ens__part_score_fast(ens_part_t *p, const size_t *js, size_t left, double *bits,
                            size_t *rows)
{
    group_t g;
    group_make(p, js, left, &g);
    score_group(p, js, &g, bits, rows);
    return g.nc;
}
