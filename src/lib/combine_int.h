/* combine_int.h - what select.c takes from combine.c beyond combine.h. */
#ifndef ENSEMBLED_COMBINE_INT_H
#define ENSEMBLED_COMBINE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/combine.h"

/* ens_combiner_fit_best, and the leave-one-out prediction of every row of
 * train by the combiner it returns into pred[0..train->nrows) (when pred is
 * not NULL): what ens_combiner_loo_predict would give, without fitting
 * again. */
ens_combiner_t *ens__combiner_fit_best_loo(const ens_data_t *train, const size_t *models, size_t k,
                                           uint8_t *pred);

/* Decision of a table entry with counts[0..n) per candidate outcome (inline:
 * it runs once per row and fitted table),
 * leaving out one row of outcome `skip` (SIZE_MAX: none): the outcome with
 * the most rows, ties to `fallback`, then the smallest; SIZE_MAX when no
 * candidate has a row. */
static inline size_t ens__comb_decide(const uint32_t *counts, size_t n, size_t skip,
                                      size_t fallback)
{
    size_t best = SIZE_MAX;
    uint32_t bestn = 0;
    for (size_t o = 0; o < n; o++) {
        uint32_t cnt = counts[o] - (o == skip);
        if (cnt > bestn || (cnt == bestn && cnt > 0 && o == fallback)) {
            best = o;
            bestn = cnt;
        }
    }
    return best;
}

/* ---- prefixes (combine_prefix.c) -------------------------------------- */

/* Labels up to which the prefix engine applies (its per-row state is L
 * vote totals and classes). */
#define ENS__PREFIX_MAX_LABELS 8

typedef struct ens__prefix_s ens__prefix_t;

/* Whether the prefix engine handles d (else fit each prefix). */
int ens__prefix_applies(const ens_data_t *d);

/* An empty prefix over the rows of d (borrowed; ens__prefix_applies(d)). */
ens__prefix_t *ens__prefix_new(const ens_data_t *d);

/* Adds model j (not in the prefix; at most ENS_COMB_MAX_MODELS in all) and
 * writes into pred[0..d->nrows) the leave-one-out predictions of the
 * combiner ens__combiner_fit_best_loo would fit over the prefix: the same
 * predictions, without fitting it. */
void ens__prefix_add(ens__prefix_t *p, size_t j, uint8_t *pred);

void ens__prefix_destroy(ens__prefix_t **pp);

#endif
