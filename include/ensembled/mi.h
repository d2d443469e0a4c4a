/* mi.h - information estimates in bits.
 *
 * Every estimate over a set T of models uses exactly the rows where every
 * model of T was asked (no ENS_SYM_MISSING in any of its columns).
 *
 * Estimators:
 *  - plugin: the paper's, I = H(Y) + H(X_T) - H(Y, X_T) from empirical
 *    frequencies over the raw answer tuples.
 *  - miller-madow: each plug-in entropy corrected by (m - 1) / (2 N ln 2), m
 *    being the number of non-empty cells of that table.
 *  - heldout (default): H(Y) minus the leave-one-out log-loss of a smoothed
 *    p(y | agreement pattern of X_T); see docs/estimators.md. It is negative
 *    when the models predict the truth worse than its marginal does.
 */
#ifndef ENSEMBLED_MI_H
#define ENSEMBLED_MI_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/data.h"

typedef enum {
    ENS_EST_HELDOUT = 0,
    ENS_EST_PLUGIN,
    ENS_EST_MILLER_MADOW,
} ens_estimator_t;

/* Parses "heldout", "plugin" or "miller-madow": 0 or ENS_EINVAL. */
int ens_estimator_parse(const char *name, ens_estimator_t *out);
const char *ens_estimator_name(ens_estimator_t est);

/* Plug-in entropy in bits of a histogram of n cells. */
double ens_entropy_counts(const uint32_t *counts, size_t n);

/* I(Y; X_T) for the k models in T. Stores the estimate in *bits and the
 * number of rows used in *rows. Returns 0, ENS_EINVAL for a bad model index,
 * or ENS_EEMPTY when no row has every model of T. With k == 0 the estimate is
 * 0 over all rows. */
int ens_mi(const ens_data_t *d, const size_t *t, size_t k, ens_estimator_t est, double *bits,
           size_t *rows);

/* H(Y) over the rows where every model of T was asked (plug-in). */
int ens_entropy_y(const ens_data_t *d, const size_t *t, size_t k, double *bits);

/* I(Y; X_j | X_T) = I(Y; X_{T+j}) - I(Y; X_T), both over the rows where every
 * model of T and j was asked. */
int ens_cmi(const ens_data_t *d, size_t j, const size_t *t, size_t k, ens_estimator_t est,
            double *bits);

#endif
