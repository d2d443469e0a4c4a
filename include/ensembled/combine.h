/* combine.h - combiners: how a router turns the ensemble's answers into one.
 *
 *  - vote: majority vote; ties go to the label of the most accurate model
 *    among those voting for a tied label.
 *  - weighted: each model votes with its training accuracy; same tie rule.
 *  - table: the Bayes decision table argmax_y n(y, x_S) over raw answer
 *    tuples seen in training, backing off to the weighted vote for tuples it
 *    has not seen.
 *  - pattern: the decision table over agreement patterns (which models agree
 *    with which, who abstained): it predicts the answer class that most often
 *    held the truth for that pattern, backing off to the weighted vote.
 *
 * Abstentions and missing answers never vote. When nobody votes, every
 * combiner predicts the most frequent training label.
 */
#ifndef ENSEMBLED_COMBINE_H
#define ENSEMBLED_COMBINE_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/data.h"

typedef enum {
    ENS_COMB_VOTE = 0,
    ENS_COMB_WEIGHTED,
    ENS_COMB_TABLE,
    ENS_COMB_PATTERN,
    ENS_COMB_COUNT
} ens_comb_kind_t;

typedef struct ens_combiner_s ens_combiner_t;

const char *ens_comb_name(ens_comb_kind_t kind);
/* 0 or ENS_EINVAL. */
int ens_comb_parse(const char *name, ens_comb_kind_t *out);

/* Fits `kind` on every row of train over models[0..k) (k >= 1; borrowed).
 * Returns NULL if k is 0 or above ENS_COMB_MAX_MODELS. */
#define ENS_COMB_MAX_MODELS 64
ens_combiner_t *ens_combiner_fit(const ens_data_t *train, const size_t *models, size_t k,
                                 ens_comb_kind_t kind);

/* Fits every kind and keeps the one with the best leave-one-out accuracy on
 * train (ties prefer weighted, vote, pattern, table: the simpler). This is
 * the combiner an ensemble is published with. On open-answer data
 * (train->open) `table` is left out: the others depend only on which
 * answers agree, which a router sees. */
ens_combiner_t *ens_combiner_fit_best(const ens_data_t *train, const size_t *models, size_t k);

void ens_combiner_destroy(ens_combiner_t **cp);

ens_comb_kind_t ens_combiner_kind(const ens_combiner_t *c);

/* Leave-one-out accuracy on the training rows (in-sample for the votes, whose
 * only fitted figures are k accuracies). */
double ens_combiner_train_accuracy(const ens_combiner_t *c);

/* The leave-one-out prediction of every row of train (the data the combiner
 * was fitted on) into pred[0..train->nrows). */
void ens_combiner_loo_predict(const ens_combiner_t *c, const ens_data_t *train, uint8_t *pred);

/* Calls fn once per entry of a decision table (kinds table and pattern; the
 * votes have none) with its key and the decided outcome: a label id for
 * `table` (key: the answer tuple), an answer class index for `pattern` (key:
 * class index per model, or ENS_SYM_ABSTAIN / ENS_SYM_MISSING). Ties go to
 * the weighted vote's outcome, as in ens_combiner_predict. Entries whose
 * rows never held the truth in an answer class are left out: the router
 * falls back to the weighted vote for them, as for unseen keys. */
typedef void (*ens_combiner_entry_fn)(void *ud, const uint8_t *key, size_t k, unsigned decision);
void ens_combiner_foreach(const ens_combiner_t *c, ens_combiner_entry_fn fn, void *ud);

/* The vote weight (training accuracy) of the i-th model of the ensemble. */
double ens_combiner_weight(const ens_combiner_t *c, size_t i);

/* Predicts a label id from answers x[0..k), in the order of the models the
 * combiner was fitted on. */
uint8_t ens_combiner_predict(const ens_combiner_t *c, const uint8_t *x);

/* Fraction of rows of test predicted right (test has the same models). */
double ens_combiner_accuracy(const ens_combiner_t *c, const ens_data_t *test);

#endif
