/* part_states.c - the row states of the fast way (see part.c, part_kernel.c).
 *
 * A state is what a row's joint key depends on besides the candidate's answer
 * x_j: (cell, y) for raw tuples, (cell, y, answer of each class) for agreement
 * patterns. This file numbers the states of the live rows into p->st (dead
 * rows get PART_ST_DEAD), and fills st_out[state][symbol] (the joint key) and
 * st_y[state] (the label). The fast way is on (p->nst > 0) only while the
 * states are few enough for a candidate's joint to fit 16-bit keys and to be
 * small next to the rows; otherwise p->nst is 0 and part.c counts the generic
 * way.
 *
 * Raw-tuple states follow from the cells. Held-out states are numbered by
 * signature the first time (ens__part_states_build), then chained from step
 * to step (ens__part_states_next before the refinement, ens__part_states_take
 * after it), which numbers them the same way without a signature per row.
 */
#include <stdlib.h>
#include <string.h>

#include "ensembled/xalloc.h"
#include "part_int.h"

/* Most states the fast way takes: one candidate's joint must fit 16-bit
 * keys and be small next to the rows (or else small in absolute terms), as
 * its bins are scanned after each pass. */
static size_t states_max(const ens_part_t *p)
{
    size_t lim = p->n / 4 > PART_JOINT_SMALL ? p->n / 4 : PART_JOINT_SMALL;
    return (lim < PART_JOINT_MAX ? lim : PART_JOINT_MAX) / (p->nsym + 1);
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
    if (PART_GROUP_MAX * nst * R > p->marg_cap) {
        free(p->marg);
        p->marg_cap = PART_GROUP_MAX * nst * R;
        p->marg = ens_xmalloc(p->marg_cap * sizeof(uint32_t));
    }
    /* One group of up to PART_JOINT_SMALL bins in PART_NCOPY copies, or one
     * candidate over every state in a single copy. */
    size_t want = PART_NCOPY * (PART_JOINT_SMALL + 1);
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
        p->st[r] = p->cell[r] == PART_DEAD ? PART_ST_DEAD : (uint16_t)(p->cell[r] * L + p->d->y[r]);
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
            p->st_out[s * nsym + x] = ens__part_row_key(p, r, x < L ? (uint8_t)x : ENS_SYM_ABSTAIN);
    }
}

/* A row's state under S + j is fixed by its state under S and x_j, and one to
 * one (the child cell fixes the cell and class of x_j, a new class its
 * answer), so numbering the pairs (state, x_j) in order of first appearance
 * numbers the new states as states_heldout would, without signatures. */
size_t ens__part_states_next(ens_part_t *p, size_t j)
{
    const uint8_t *col = ens_data_col(p->d, j);
    const size_t L = p->L, nsym = p->nsym;
    size_t next = 0;
    memset(p->tmap, 0xFF, p->nst * nsym * sizeof(uint16_t));
    for (size_t r = 0; r < p->n; r++) {
        uint8_t x = col[r];
        if (p->st[r] == PART_ST_DEAD || x == ENS_SYM_MISSING) {
            p->st[r] = PART_ST_DEAD;
            continue;
        }
        size_t t = p->st[r] * nsym + (x < L ? x : L);
        if (p->tmap[t] == UINT16_MAX) {
            /* Past PART_JOINT_MAX states the fast way is off: stop numbering. */
            if (next == PART_JOINT_MAX)
                return SIZE_MAX;
            p->st_row[next] = (uint32_t)r;
            p->tmap[t] = (uint16_t)next++;
        }
        p->st[r] = p->tmap[t];
    }
    return next;
}

void ens__part_states_take(ens_part_t *p, size_t next)
{
    if (next > 0 && next <= states_max(p)) {
        states_alloc(p, next);
        states_keys(p);
    } else {
        p->nst = 0;
    }
}

/* Agreement patterns: states numbered by signature in order of first
 * appearance (the counter numbers them as ens__part_add numbers cells). */
static void states_heldout(ens_part_t *p)
{
    const size_t L = p->L;
    ens__ctr_t *c = &p->ctr;
    /* The signatures must fit in 64 bits: cells * L * (L + 1)^classes. */
    long double space = (long double)(p->ncells ? p->ncells : 1) * (long double)L;
    for (size_t k = 0; k < classes_max(p); k++)
        space *= (long double)(L + 1);
    p->nst = 0;
    if (L == 0 || space > 1e18L)
        return;
    ens__ctr_setup(c, (uint64_t)space, p->n + 1);
    for (size_t r = 0; r < p->n && c->nt <= states_max(p); r++)
        if (p->cell[r] != PART_DEAD)
            ens__ctr_add(c, signature(p, r));
    size_t nst = c->nt;
    /* With no live row the generic way has nothing to count either. */
    if (nst > 0 && nst <= states_max(p)) {
        states_alloc(p, nst);
        for (size_t i = 0; i < nst; i++)
            c->cnt[c->touched[i]] = (uint32_t)i + 1;
        for (size_t r = 0; r < p->n; r++) {
            uint16_t s = PART_ST_DEAD;
            if (p->cell[r] != PART_DEAD) {
                s = (uint16_t)(c->cnt[ens__ctr_slot(c, signature(p, r))] - 1);
                p->st_row[s] = (uint32_t)r;
            }
            p->st[r] = s;
        }
        states_keys(p);
    }
    for (size_t i = 0; i < c->nt; i++)
        c->cnt[c->touched[i]] = 0;
    c->nt = 0;
    ens__ctr_setup(c, ens__part_keyspace(p), p->n + 1);
}

void ens__part_states_build(ens_part_t *p)
{
    if (p->est == ENS_EST_HELDOUT)
        states_heldout(p);
    else
        states_raw(p);
}
