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

#endif
