/* select.h - budgeted ensemble selection strategies, one interface.
 *
 *  - greedy-mi: the paper's algorithm (arXiv 2602.08003, Alg. 1). S = {};
 *    repeatedly add the j maximizing I(Y; X_{S+j}); ties go to the higher
 *    single-model estimate, then the smaller model name. The first model is
 *    always taken; afterwards the greedy stops when the best gain is not
 *    above min_gain_bits (the budget is a ceiling, not a quota). With
 *    `prune` (the default), the greedy order is then cut to the prefix whose
 *    published combiner (ens_combiner_fit_best) has the best leave-one-out
 *    accuracy on the rows given, ties to the shorter: an ensemble that would
 *    answer worse than fewer of its models is not worth their queries.
 *  - greedy-cost: the cost-benefit greedy for budgeted submodular
 *    maximization: add the affordable j maximizing gain / cost until the cost
 *    budget is spent; return that set or the best affordable single model,
 *    whichever has more information.
 *  - top-k: the budget most accurate models.
 *  - random: budget models drawn with the seed.
 *  - caruana: forward selection by the majority-vote accuracy of S + j on
 *    the rows given (Caruana et al., 2004, without replacement).
 *  - exhaustive: the subset of at most budget models with the largest
 *    estimate; refused when the number of subsets exceeds exhaustive_limit.
 *
 * Every strategy reports the cumulative estimate after each of its models.
 */
#ifndef ENSEMBLED_SELECT_H
#define ENSEMBLED_SELECT_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/data.h"
#include "ensembled/mi.h"

#define ENS_SELECT_MAX 64

typedef enum {
    ENS_STRAT_GREEDY_MI = 0,
    ENS_STRAT_GREEDY_COST,
    ENS_STRAT_TOPK,
    ENS_STRAT_RANDOM,
    ENS_STRAT_CARUANA,
    ENS_STRAT_EXHAUSTIVE,
    ENS_STRAT_COUNT
} ens_strategy_t;

typedef struct {
    ens_strategy_t strategy;
    ens_estimator_t estimator;
    size_t budget;             /* at most this many models (1..ENS_SELECT_MAX) */
    double cost_budget;        /* greedy-cost: total cost per query allowed */
    double min_gain_bits;      /* greedy: stop when the best gain is not above */
    uint64_t seed;             /* random */
    uint64_t exhaustive_limit; /* exhaustive: most subsets it will evaluate */
    int prune;                 /* greedy: keep the prefix whose combiner is best held out */
} ens_select_opts_t;

typedef struct {
    size_t n;                         /* models selected */
    size_t models[ENS_SELECT_MAX];    /* model indices, in selection order */
    double mi_bits[ENS_SELECT_MAX];   /* I(Y; first i+1 models) */
    double gain_bits[ENS_SELECT_MAX]; /* mi_bits[i] - mi_bits[i-1] */
    size_t rows[ENS_SELECT_MAX];      /* rows behind mi_bits[i] */
    double cost;                      /* total cost of the models */
} ens_selection_t;

/* Defaults: greedy-mi, heldout, budget 3, min_gain_bits 0, seed 1, exhaustive
 * limit 10^5 subsets, prune on. */
void ens_select_opts_default(ens_select_opts_t *o);

const char *ens_strategy_name(ens_strategy_t s);
/* 0 or ENS_EINVAL. */
int ens_strategy_parse(const char *name, ens_strategy_t *out);

/* Fills mi_bits, gain_bits, rows and cost of sel for its models in their
 * order (sel->n and sel->models set by the caller), with one partition
 * refinement along that order: what every strategy reports. */
void ens_selection_steps(const ens_data_t *d, ens_estimator_t est, ens_selection_t *sel);

/* Runs o->strategy on every row of d. Returns 0, or ENS_EINVAL (bad budget,
 * budget above the number of models), ENS_ETOOBIG (exhaustive over the
 * limit) or ENS_EEMPTY (no rows), with one line in err. */
int ens_select(const ens_data_t *d, const ens_select_opts_t *o, ens_selection_t *out, char *err,
               size_t errlen);

#endif
