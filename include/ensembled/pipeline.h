/* pipeline.h - from a window to everything a publication holds.
 *
 * This is the selection the daemon publishes, as one pure call, so that
 * `ensemblectl select --body` and the daemon run the same code. In order:
 *
 *  1. the pool: models of the window with select.min_rows rows that answered
 *     within select.retire_after (others are excluded, with a reason);
 *  2. selection over the pool (select.h), the budget capped at the pool;
 *  3. hysteresis: the fresh set replaces the published one only if it
 *     carries min_improvement_bits more, estimated on the rows where every
 *     model of both sets was asked, or if a published model left the pool,
 *     or if the budget shrank below it, or (greedy-cost) if it now costs
 *     more than the cost budget;
 *  4. the final choice (choice.h): the set of stage 3 with the published
 *     combiner (ens_combiner_fit_best), unless a top-K weighted vote or the
 *     best single model predicts better by cross-validation on the pool's
 *     rows; the winner is fitted on every row (greedy-mi and exhaustive
 *     with pruning on; otherwise the set of stage 3 as is);
 *  5. honest accuracy, from the final choice's folds where it ran: the
 *     winning candidate's cross-validated accuracy, majority vote over each
 *     fold's selection, top-1 (the best single model of each training
 *     part), each fitted without the rows it is scored on; where no choice
 *     was made, select and fit on even rows, score on odd rows, and the
 *     other way round (the selection with the published combiner, majority
 *     vote over it, the best single);
 *  6. bounds: Fano's lower bound for the set, the Gaussian-copula floor of
 *     the pool and of the set (docs/theory.md);
 *  7. exploration figures, and the costs: per model its mean cost, and the
 *     published set's cost per query.
 *
 * Any thread; the input is borrowed and only read.
 */
#ifndef ENSEMBLED_PIPELINE_H
#define ENSEMBLED_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/body.h"
#include "ensembled/data.h"
#include "ensembled/select.h"

typedef struct {
    ens_select_opts_t select;    /* strategy, estimator, budget, ... */
    size_t min_rows;             /* select.min_rows */
    double retire_after;         /* select.retire_after, seconds (0: never) */
    double explore_rate;         /* select.explore_rate */
    double min_improvement_bits; /* publish.min_improvement_bits */
} ens_pipeline_opts_t;

/* The daemon's defaults (conf/ensembled.conf). */
void ens_pipeline_opts_default(ens_pipeline_opts_t *o);

typedef struct {
    const ens_data_t *snap; /* the window, every model, oldest row first */
    const double *seen_age; /* per snap model: seconds since its latest
                             * prediction (NULL: every model just heard) */
    const double *row_age;  /* per snap model: age of its newest joined row,
                             * negative when none (NULL: unknown, nil) */
    const ens_str_t *prev;  /* the published set by name, in order */
    size_t nprev;           /* 0: nothing published yet */
    const uint32_t *cost_n; /* per snap model: answers whose mean cost is
                             * snap->cost, 0 when none reported one (snap->cost
                             * is then the default 1.0 and published as nil);
                             * NULL: none reported */
} ens_pipeline_in_t;

typedef struct ens_pipeline_s ens_pipeline_t;

/* Runs the pipeline. Returns 0 and a new result in *out, or ENS_EEMPTY (no
 * model in the pool) or an error of ens_select, with one line in err. */
int ens_pipeline_run(const ens_pipeline_in_t *in, const ens_pipeline_opts_t *o,
                     ens_pipeline_t **out, char *err, size_t errlen);

void ens_pipeline_destroy(ens_pipeline_t **pp);

/* The publication body, every field but task, version and ts (left empty
 * and 0). Borrowed: valid while the result and in->snap live. */
const ens_body_t *ens_pipeline_body(const ens_pipeline_t *p);

/* Stage 6 on its own, for `ensemblectl floor`: over the models of pool
 * (their copula fitted on every row), Fano's lower bound on the error of any
 * combiner of set[0..k) (plug-in information less fano_z standard errors;
 * the pipeline uses 2), the copula error floor of the pool and of the set
 * (NaN for one model), and the pool's mean latent correlation. NaN where a
 * figure cannot be computed. */
typedef struct {
    double fano;       /* bounds.fano_error_lower */
    double floor_pool; /* bounds.copula_error_floor */
    double floor_set;  /* bounds.copula_error_floor_ensemble */
    double rho_pool;   /* bounds.latent_correlation_mean */
} ens_bounds_t;
void ens_pipeline_bounds(const ens_data_t *pool, const size_t *set, size_t k, double fano_z,
                         ens_bounds_t *out);

/* The exploration rule routers apply (docs/protocol.md). */
#define ENS_EXPLORE_RULE                                                                           \
    "xxh3_64(task + 0x00 + key, seed 1) < rate * 2^64; key: 's' + query bytes, or 'u' + the "      \
    "query as 8 big-endian bytes"

#endif
