/* sample.h - synthetic fleets from a Gaussian copula of correctness.
 *
 * Model i is correct on a row iff its latent Z_i > tau_i = Phi^-1(1 - p_i),
 * so that P(correct) = p_i. The latents are standard normal with
 *   Z_i = sqrt(g) G + sqrt(rho_f - g) F_f + sqrt(1 - rho_f) E_i
 * for model i of family f: correlation rho_f within a family and g (the
 * global factor, g <= every rho_f) across families. The true label is
 * uniform over `classes`; a wrong answer is uniform over the other labels.
 */
#ifndef ENSEMBLED_SAMPLE_H
#define ENSEMBLED_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/data.h"

typedef struct {
    char name[64];   /* models are named <name>-<i>, i from 1 */
    size_t count;    /* models in the family */
    double accuracy; /* p of each model, in (0, 1) */
    double rho;      /* within-family latent correlation, in [0, 1) */
} ens_family_t;

typedef struct {
    const ens_family_t *families;
    size_t nfamilies;
    size_t rows;
    size_t classes; /* 2..ENS_MAX_LABELS */
    double global_rho;
    uint64_t seed;
} ens_sample_opts_t;

/* Returns a new matrix, or NULL with a reason in err for invalid options. */
ens_data_t *ens_sample(const ens_sample_opts_t *o, char *err, size_t errlen);

/* Parses "name:count:acc:rho,..." into at most max families. Returns the
 * number parsed or ENS_EPARSE with a reason in err. */
int ens_families_parse(const char *spec, ens_family_t *out, size_t max, char *err, size_t errlen);

/* Standard normal CDF and its inverse (|error| < 1e-14 after refinement). */
double ens_norm_cdf(double x);
double ens_norm_quantile(double p);

#endif
