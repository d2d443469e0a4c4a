/* part_int.h - what the files of the partition-refinement engine share (not
 * public; see part.h for the contract and part.c for the design).
 *
 *   part.c         life cycle, scoring dispatch, refinement (the ens__part_* API)
 *   part_ctr.c     the counter: dense or open-addressing counts of 64-bit keys
 *   part_est.c     the estimates from joint counts, and the generic way of counting
 *   part_kernel.c  the fast way: row states x candidate symbols in 16-bit joints
 *   part_states.c  the row states the fast way counts, built or chained per step
 *
 * The helpers below run once per row in the hottest loops of several of those
 * files, so they are static inline here rather than calls across files.
 */
#ifndef ENSEMBLED_PART_INT_H
#define ENSEMBLED_PART_INT_H

#include <stddef.h>
#include <stdint.h>

#include "part.h"

/* Cell of a row where a model of S was not asked. */
#define PART_DEAD UINT32_MAX
/* No agreement class holds the true label (zc). */
#define PART_NONE 0xFF

/* The fast way: most candidates counted in one pass. */
#define PART_GROUP_MAX 8
/* Largest joint histogram of a group (entries): 4 copies of it fit in a
 * 64 KiB L1/L2 budget, and its scan is small next to 10^4..10^6 rows. */
#define PART_JOINT_SMALL 4096
/* Copies of a small histogram: rows r, r+1, r+2, r+3 increment different
 * copies, so that runs of one hot bin (binary labels, correlated models) do
 * not serialize on store-to-load forwarding. */
#define PART_NCOPY 4
/* Keys of the joints are 16 bits (see part_kernel.c), so a joint has at most
 * PART_JOINT_MAX bins. */
#define PART_JOINT_MAX 0x7FFF
/* State of a row outside the states (dead cell): above every joint bin, with
 * room to add symbol offsets without wrapping. */
#define PART_ST_DEAD 0x8000

/* Counts of 64-bit keys: dense (slot == key) when the key space is small, open
 * addressing otherwise. Only the slots touched since the last drain are read
 * back and cleared, so a pass costs O(keys counted) whatever the key space. */
typedef struct {
    int dense;       /* 1: slot == key; 0: open addressing */
    size_t slots;    /* slots allocated */
    size_t mask;     /* slots - 1 (hash mode, slots a power of two) */
    uint32_t *cnt;   /* count per slot, 0 = empty */
    uint64_t *keys;  /* key per slot (hash mode) */
    size_t *touched; /* slots that became non-zero in this pass */
    size_t nt;       /* entries in touched */
    size_t touched_cap;
} ens__ctr_t;

struct ens_part_s {
    const ens_data_t *d;
    ens_estimator_t est;
    size_t n;                   /* rows */
    size_t L;                   /* labels */
    size_t nsym;                /* prediction symbols: L labels, abstention */
    size_t nsel;                /* |S| */
    size_t sel[ENS_PART_MAX];   /* S in order of addition */
    uint32_t *cell;             /* n cell ids or PART_DEAD */
    size_t ncells;              /* cells in the partition */
    uint8_t *cell_ncls;         /* held-out: answer classes of each cell */
    uint8_t *ncls;              /* held-out: answer classes per row */
    uint8_t *zc;                /* held-out: class holding y per row, or PART_NONE */
    uint8_t *rep[ENS_PART_MAX]; /* held-out: answer of class c per row */
    ens__ctr_t ctr;             /* the joint counts of one pass */
    uint64_t *keys;             /* 2n scratch keys drained from ctr */
    uint32_t *cnts;             /* 2n scratch counts drained from ctr */
    uint32_t ylive[256];        /* y counts over live rows */
    double bits;                /* estimate for S */
    size_t rows;                /* live rows for S */

    /* The fast way (nst > 0): see part.c and part_kernel.c. */
    size_t nst;       /* row states, 0 when the fast way is off */
    uint16_t *st;     /* n: state of each row, or PART_ST_DEAD */
    uint64_t *st_out; /* nst * nsym: joint key of (state, symbol) */
    uint8_t *st_y;    /* nst: y of each state */
    uint32_t *hist;   /* PART_NCOPY * (joint + 1) bins, kept zeroed */
    size_t hist_cap;  /* bins allocated in hist */
    uint32_t *marg;   /* PART_GROUP_MAX * nst * (nsym + 1): counts per candidate */
    size_t marg_cap;  /* entries allocated in marg */
    size_t st_cap;    /* states allocated in st_out / st_y */
    uint32_t *st_row; /* PART_JOINT_MAX: a row of each state (while numbering them) */
    uint16_t *tmap;   /* PART_JOINT_MAX: next state of (state, symbol), see states_next */
    double *sc_bits;  /* nmodels: last score of each model ... */
    size_t *sc_rows;  /* ... its rows ... */
    size_t *sc_stamp; /* ... valid when equal to nsel + 1 */
    uint8_t *colsym;  /* nmodels: col_syms() of each model, 0 until known */
};

/* ---- counter (part_ctr.c) --------------------------------------------- */

/* Readies c for at most maxkeys distinct keys below keyspace, empty. c must be
 * empty (drained) or zeroed; its memory is kept and grown across calls. */
void ens__ctr_setup(ens__ctr_t *c, uint64_t keyspace, size_t maxkeys);

/* Frees what c holds (c itself is the caller's). */
void ens__ctr_free(ens__ctr_t *c);

/* Moves the touched bins of c out into keys/cnts and clears c; returns how
 * many (in order of first touch). */
size_t ens__ctr_drain(ens__ctr_t *c, uint64_t *keys, uint32_t *cnts);

/* The slot of key, claimed for it if the key is new. */
static inline size_t ens__ctr_slot(ens__ctr_t *c, uint64_t key)
{
    if (c->dense)
        return (size_t)key;
    size_t s = (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & c->mask;
    while (c->cnt[s] && c->keys[s] != key)
        s = (s + 1) & c->mask;
    c->keys[s] = key;
    return s;
}

static inline void ens__ctr_addn(ens__ctr_t *c, uint64_t key, uint32_t n)
{
    size_t s = ens__ctr_slot(c, key);
    if (c->cnt[s] == 0)
        c->touched[c->nt++] = s;
    c->cnt[s] += n;
}

static inline void ens__ctr_add(ens__ctr_t *c, uint64_t key)
{
    ens__ctr_addn(c, key, 1);
}

/* ---- keys of the joint counts ----------------------------------------- */

/* Index of a prediction symbol among nsym = L + 1 (abstention last). */
static inline size_t ens__part_sym_index(uint8_t x, size_t L)
{
    return x == ENS_SYM_ABSTAIN ? L : x;
}

/* Base of the held-out key space: classes 0..nsel-1, NEW, ABSTAIN. */
static inline size_t ens__part_classes_b(const ens_part_t *p)
{
    return p->nsel + 2;
}

/* Targets: classes 0..nsel (the new class may be nsel), NONE last. */
static inline size_t ens__part_targets_z(const ens_part_t *p)
{
    return p->nsel + 2;
}

/* The agreement class of answer x in row r: an existing class, the next new
 * one (nsel), or abstention (nsel + 1). */
static inline size_t ens__part_class_of(const ens_part_t *p, size_t r, uint8_t x)
{
    if (x == ENS_SYM_ABSTAIN)
        return p->nsel + 1;
    for (size_t c = 0; c < p->ncls[r]; c++)
        if (p->rep[c][r] == x)
            return c;
    return p->nsel;
}

/* The target after adding an answer of class b: the class holding y. */
static inline size_t ens__part_target_of(const ens_part_t *p, size_t r, size_t b, uint8_t x)
{
    if (p->zc[r] != PART_NONE)
        return p->zc[r];
    if (b == p->nsel && x == p->d->y[r])
        return p->ncls[r];
    return ens__part_targets_z(p) - 1;
}

/* The joint key of row r (live) with answer x (not missing): ((cell * B + b)
 * * Z + z) held out, ((cell * nsym + x) * L + y) for raw tuples. */
static inline uint64_t ens__part_row_key(const ens_part_t *p, size_t r, uint8_t x)
{
    if (p->est == ENS_EST_HELDOUT) {
        size_t b = ens__part_class_of(p, r, x);
        return ((uint64_t)p->cell[r] * ens__part_classes_b(p) + b) * ens__part_targets_z(p) +
               ens__part_target_of(p, r, b, x);
    }
    return ((uint64_t)p->cell[r] * p->nsym + ens__part_sym_index(x, p->L)) * p->L + p->d->y[r];
}

/* ---- estimates (part_est.c) ------------------------------------------- */

/* Keys of the joint of (child cell of S + j, target): the counter's key space. */
uint64_t ens__part_keyspace(const ens_part_t *p);

/* The estimate of I(Y; X_{S+j}) from the m joint bins in p->keys / p->cnts
 * (keys as ens__part_row_key), ycnt holding y over the rows where S and j
 * were asked (held-out only); *rows gets the rows counted. Uses p->ctr (left
 * empty) and p->keys / p->cnts past the m bins as scratch. */
double ens__part_bits_of(ens_part_t *p, size_t m, const uint32_t *ycnt, size_t *rows);

/* The generic way: the estimate for S + j, one row key counted at a time. */
double ens__part_score_generic(ens_part_t *p, size_t j, size_t *rows);

/* ---- the fast way (part_kernel.c) ------------------------------------- */

/* Scores the first candidates of js[0..left) (left >= 1, none in S) in one
 * pass over the row states, as many as keep their joint small; returns how
 * many (at least one), their estimates in bits[] and rows[]. p->nst > 0. */
size_t ens__part_score_fast(ens_part_t *p, const size_t *js, size_t left, double *bits,
                            size_t *rows);

/* ---- row states (part_states.c) --------------------------------------- */

/* The row states of the current S (p->nst = 0 when the fast way is off). */
void ens__part_states_build(ens_part_t *p);

/* Held-out only, before refining by j with states on: numbers the states of
 * S + j from those of S into p->st; returns their number (0 for none,
 * SIZE_MAX past PART_JOINT_MAX), to be passed to ens__part_states_take. */
size_t ens__part_states_next(ens_part_t *p, size_t j);

/* After the refinement: adopts the next states numbered by
 * ens__part_states_next, or turns the fast way off if there are too many. */
void ens__part_states_take(ens_part_t *p, size_t next);

#endif
