/* eval.h - held-out evaluation of a strategy and its combiners.
 *
 * Each split shuffles the rows with its own seed, selects and fits on the
 * training part and scores on the test part. Splits depend only on (seed,
 * split index, row count), so two strategies evaluated with one seed see the
 * same splits: their difference is paired.
 */
#ifndef ENSEMBLED_EVAL_H
#define ENSEMBLED_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/combine.h"
#include "ensembled/data.h"
#include "ensembled/select.h"

/* Index in ens_eval_t.acc of what the pipeline publishes: the final
 * choice's winner with its combiner (choice.h), or the selection with the
 * published combiner where the choice does not apply. The per-kind figures
 * are those of the selection. */
#define ENS_EVAL_PUBLISHED ENS_COMB_COUNT

typedef struct {
    double mean;
    double sd;
} ens_stat_t;

typedef struct {
    size_t splits;
    ens_stat_t acc[ENS_COMB_COUNT + 1]; /* per combiner kind, then published */
    ens_stat_t size;                    /* models published (after the final choice) */
} ens_eval_t;

/* Evaluates o over `splits` random splits holding out test_frac of the rows
 * (0 < test_frac < 1). Returns 0 or the first error of ens_select. */
int ens_evaluate(const ens_data_t *d, const ens_select_opts_t *o, size_t splits, double test_frac,
                 uint64_t seed, ens_eval_t *out);

/* The training/test rows of one split: a permutation of 0..n-1 whose first
 * n_train entries are the training rows. Stores n_train. */
void ens_eval_split(size_t n, double test_frac, uint64_t seed, size_t split, size_t *perm,
                    size_t *n_train);

#endif
