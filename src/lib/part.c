/* part.c - partition refinement (see part.h): the ens__part_* API, the life
 * cycle of a part, the dispatch of scoring between the two ways of counting,
 * and the refinement that adds a model to S.
 *
 * Per row the part keeps cell[r], the id of the row's cell under X_S, or
 * PART_DEAD. Scoring candidate j gathers the joint counts of (child cell of
 * S + j, target) and turns them into an estimate (part_est.c). The key of that
 * joint is the same in both ways of counting:
 *
 *  - The fast way, when the rows fall in few states (part_states.c). A state
 *    is what a row's key depends on besides x_j: (cell, y) for raw tuples,
 *    (cell, y, answer of each class) for agreement patterns. A pass over the
 *    rows only counts (state, x_j) in a small dense histogram, several
 *    candidates at a time (part_kernel.c).
 *  - The generic way otherwise (cells of the order of the rows): per row, the
 *    key is computed and counted in a counter (part_ctr.c) that is dense when
 *    the key space is small and an open-addressing table otherwise. Only the
 *    slots touched in the pass are read back and cleared, so a pass costs
 *    O(rows) whatever the key space.
 *
 * Both feed the keys to the estimator in an order fixed by the part's state,
 * so a candidate gets the same bits however it is counted (alone or in a
 * group), and ens__part_add reuses the score of the last scoring pass.
 *
 * Held-out mode also keeps, per row, the answer of each agreement class
 * (rep[c][r], c < ncls[r], in order of first appearance among S) and the class
 * holding the true label (zc[r], or PART_NONE). A cell of the pattern
 * partition fixes ncls, so cell_ncls[cell] is kept per cell.
 *
 * Everything is per part: parts in different threads share nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "ensembled/xalloc.h"
#include "part_int.h"

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
        memset(p->zc, PART_NONE, p->n);
    }
    p->keys = ens_xmalloc(2 * (p->n + 1) * sizeof(uint64_t));
    p->cnts = ens_xmalloc(2 * (p->n + 1) * sizeof(uint32_t));
    p->st = ens_xmalloc((p->n ? p->n : 1) * sizeof(uint16_t));
    p->st_row = ens_xmalloc(PART_JOINT_MAX * sizeof(uint32_t));
    p->tmap = ens_xmalloc(PART_JOINT_MAX * sizeof(uint16_t));
    size_t m = d->nmodels ? d->nmodels : 1;
    p->sc_bits = ens_xmalloc(m * sizeof(double));
    p->sc_rows = ens_xmalloc(m * sizeof(size_t));
    p->sc_stamp = ens_xcalloc(m, sizeof(size_t));
    p->colsym = ens_xcalloc(m, 1);
    ens__ctr_setup(&p->ctr, ens__part_keyspace(p), p->n + 1);
    ens__part_states_build(p);
    return p;
}

void ens__part_destroy(ens_part_t **pp)
{
    if (!pp || !*pp)
        return;
    ens_part_t *p = *pp;
    ens__ctr_free(&p->ctr);
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
        if (p->nst)
            nc = ens__part_score_fast(p, js + i, nj - i, bits + i, rows + i);
        else
            bits[i] = ens__part_score_generic(p, js[i], &rows[i]);
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

/* The key of row r's child cell under S + j (see ens__part_keyspace). */
static inline uint64_t child_key(const ens_part_t *p, size_t r, uint8_t x)
{
    if (p->est == ENS_EST_HELDOUT)
        return (uint64_t)p->cell[r] * ens__part_classes_b(p) + ens__part_class_of(p, r, x);
    return (uint64_t)p->cell[r] * (p->L + 1) + ens__part_sym_index(x, p->L);
}

/* Moves the live rows of S to their child cells under S + j (numbered in
 * order of first appearance) and updates the held-out row state. */
static void refine(ens_part_t *p, size_t j)
{
    const uint8_t *col = ens_data_col(p->d, j);
    const uint8_t *y = p->d->y;
    ens__ctr_t *c = &p->ctr;
    int heldout = p->est == ENS_EST_HELDOUT;

    /* Count the child cells, then overwrite each touched slot's count with
     * its id + 1. */
    for (size_t r = 0; r < p->n; r++)
        if (p->cell[r] != PART_DEAD && col[r] != ENS_SYM_MISSING)
            ens__ctr_add(c, child_key(p, r, col[r]));
    size_t ncells = c->nt;
    uint8_t *cell_ncls = heldout ? ens_xcalloc(ncells ? ncells : 1, 1) : NULL;
    for (size_t i = 0; i < ncells; i++)
        c->cnt[c->touched[i]] = (uint32_t)i + 1;
    if (heldout)
        p->rep[p->nsel] = ens_xmalloc(p->n ? p->n : 1);

    for (size_t r = 0; r < p->n; r++) {
        uint32_t cl = p->cell[r];
        uint8_t x = col[r];
        if (cl == PART_DEAD)
            continue;
        if (x == ENS_SYM_MISSING) {
            p->ylive[y[r]]--;
            p->cell[r] = PART_DEAD;
            continue;
        }
        uint32_t id = c->cnt[ens__ctr_slot(c, child_key(p, r, x))] - 1;
        if (heldout) {
            size_t b = ens__part_class_of(p, r, x);
            size_t z = ens__part_target_of(p, r, b, x);
            if (b == p->nsel) {
                p->rep[p->ncls[r]][r] = x;
                p->ncls[r]++;
            }
            p->zc[r] = z == ens__part_targets_z(p) - 1 ? PART_NONE : (uint8_t)z;
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
        next = ens__part_states_next(p, j);
    refine(p, j);
    p->sel[p->nsel++] = j;
    ens__ctr_setup(&p->ctr, ens__part_keyspace(p), p->n + 1);
    if (chain)
        ens__part_states_take(p, next);
    else
        ens__part_states_build(p);
}
