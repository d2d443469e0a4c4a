/* copula.h - the Gaussian copula of correctness: fit, error floor, Fano bound.
 *
 * The model (arXiv 2602.08003; sample.h draws from it): model i is correct on
 * a row iff a standard normal latent Z_i exceeds tau_i = Phi^-1(1 - p_i), the
 * latents being jointly normal with correlation matrix R. A wrong answer is
 * uniform over the other labels. Every formula here is derived, step by step,
 * in docs/theory.md; the section numbers below refer to it.
 *
 * Correctness on real data: an abstention counts as a wrong answer; a row on
 * which a model was not asked (ENS_SYM_MISSING) is left out of that model's
 * accuracy and of every pair that holds it (pairwise-complete rows).
 *
 * Everything is pure computation: no I/O, no globals, thread-safe.
 */
#ifndef ENSEMBLED_COPULA_H
#define ENSEMBLED_COPULA_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/data.h"

/* ---- Bivariate normal (theory.md §1) ---------------------------------- */

/* P(X > h, Y > k) for standard normals with correlation rho in [-1, 1]
 * (Drezner-Wesolowsky / Genz 2004; absolute error below 1e-14, tested
 * against an independent adaptive integration). h and k may be infinite. */
double ens_bvn_upper(double h, double k, double rho);

/* The bivariate normal CDF P(X <= h, Y <= k) = ens_bvn_upper(-h, -k, rho). */
double ens_bvn_cdf(double h, double k, double rho);

/* ---- Fit (theory.md §2) ------------------------------------------------ */

/* Solves ens_bvn_upper(Phi^-1(1 - pa), Phi^-1(1 - pb), rho) = p11 for rho:
 * the tetrachoric correlation of two correctness indicators with accuracies
 * pa, pb and joint accuracy p11. Returns the root in [-1, 1] (clamped to
 * -1 or 1 when p11 lies beyond what any correlation can produce), or NaN
 * when pa or pb is not strictly inside (0, 1). */
double ens_copula_tetrachoric(double pa, double pb, double p11);

typedef struct ens_copula_s {
    size_t n;         /* models fitted */
    size_t *model;    /* their column indices in the data, in the order given */
    size_t *asked;    /* rows each model was asked on */
    double *accuracy; /* p_i: correct / asked (abstentions are wrong) */
    double *tau;      /* Phi^-1(1 - p_i), p_i clamped to [1/(2 asked), 1 - 1/(2 asked)] */
    double *rho;      /* n * n latent correlations, row-major; 1 on the diagonal, NaN
                         where undefined (fewer than 2 common rows, or a model always
                         right or always wrong on the common rows) */
    size_t nlabels;   /* label alphabet of the data */
} ens_copula_t;

/* Fits the copula to models[0..n) of d (all models in column order when
 * models is NULL). Pairwise counts come from bit-packed correctness and
 * presence columns and popcount: O(n M + n^2 N / 64) word operations.
 * Returns a new fit (the caller's, ens_copula_destroy), or NULL for n == 0,
 * an index out of range or a repeated model. Aborts on exhaustion. */
ens_copula_t *ens_copula_fit(const ens_data_t *d, const size_t *models, size_t n);
void ens_copula_destroy(ens_copula_t **cp);

typedef struct {
    double mean, min, max; /* over the defined off-diagonal pairs */
    size_t pairs;          /* defined pairs; 0 when none (then all three are NaN) */
} ens_copula_summary_t;

/* Summary of the latent correlations among the fitted models set[0..k)
 * (positions in the fit, not data columns); set NULL means all of them. */
void ens_copula_summary(const ens_copula_t *c, const size_t *set, size_t k,
                        ens_copula_summary_t *out);

/* Groups the fitted models into clusters: the connected components of the
 * graph whose edges are the pairs with rho >= threshold (single linkage).
 * Writes into cluster[0..c->n) a cluster id per model, ids 0.. in order of
 * first appearance, and returns the number of clusters. */
size_t ens_copula_clusters(const ens_copula_t *c, double threshold, size_t *cluster);

/* ---- One-factor model: floor and finite-set errors (theory.md §3-§5) ---- */

/* The one-factor copula Z_i = sqrt(rho) G + sqrt(1 - rho) E_i with the given
 * thresholds tau[0..n). A rho outside [0, 1) is clamped into it (a negative
 * mean correlation cannot be carried by one common factor). */

/* The error that no combiner voting on infinitely many such models gets
 * under: the models cycle over tau[0..n), and given G = g the share of them
 * answering right is pbar(g) = mean_i Phi((sqrt(rho) g - tau_i)/sqrt(1-rho)).
 * The truth wins the plurality iff pbar(g) > (1 - pbar(g))/(nlabels - 1),
 * i.e. pbar(g) > 1/nlabels, when wrong answers are uniform over the other
 * labels; nlabels = 2 is the case where every wrong answer is the same one.
 * Returns P(pbar(G) <= 1/nlabels) = Phi(g*) (theory.md §3). nlabels >= 2
 * may be fractional (an effective number of options); n >= 1. */
double ens_copula_floor(double rho, const double *tau, size_t n, double nlabels);

/* The plurality-vote error of m models (model i has threshold tau[i mod n])
 * under the same model with nlabels labels and uniform wrong answers; a tie
 * is broken uniformly at random (the truth wins a tie of t labels w.p. 1/t).
 * Exact up to quadrature and pmf trimming (< 1e-9): given G = g the truth's
 * count is a sum of n binomials and, given that count k, the wrong answers
 * are a uniform multinomial, whose chance of staying below k (ties split)
 * comes from Poisson convolutions (theory.md §3.1). Time O(L^2 m^2 / 4) for
 * the multinomial table plus O(m^2 / n) per quadrature node (about 10^3
 * nodes); m = 1,000: milliseconds. Tends to ens_copula_floor as m grows.
 * Returns NaN for n == 0, m == 0 or nlabels < 2. */
double ens_copula_vote_error_m(double rho, const double *tau, size_t n, size_t nlabels, size_t m);

#define ENS_COPULA_FINITE_MAX 10

/* The exact error, under the one-factor model with nlabels labels and
 * uniform wrong answers, of the plurality vote (a tie goes to the label of
 * the most accurate tied model, as combine.h's vote) and of the Bayes combiner (which knows the
 * model) of the k models with thresholds tau[0..k). Sums over the set partitions of the models and
 * integrates over G (theory.md §4). Returns 0, or ENS_EINVAL for k == 0,
 * k > ENS_COPULA_FINITE_MAX or nlabels < 2. Either output may be NULL. */
int ens_copula_finite_errors(double rho, const double *tau, size_t k, size_t nlabels,
                             double *vote_error, double *bayes_error);

/* Convenience over a fit: the mean latent correlation among set[0..k)
 * (positions in the fit; NULL and k == c->n for all) and their thresholds
 * give ens_copula_floor with nlabels. Returns the floor, or NaN when fewer
 * than two models have a defined correlation (the floor of one model is
 * simply its error, 1 - p). */
double ens_copula_floor_fit(const ens_copula_t *c, const size_t *set, size_t k, double nlabels);

/* ---- Fano (theory.md §6) ----------------------------------------------- */

/* The smallest Pe in [0, 1 - 1/nlabels] with
 *   H2(Pe) + Pe log2(nlabels - 1) >= h_cond_bits,
 * H2 the binary entropy: Fano's lower bound on the error of any guess of Y
 * from X when H(Y | X) = h_cond_bits. 0 when h_cond_bits <= 0; 1 - 1/nlabels
 * when h_cond_bits >= log2(nlabels). nlabels >= 2. */
double ens_fano_error_lower(double h_cond_bits, size_t nlabels);

/* Fano's bound for the data columns set[0..k) of d (k may be 0), over the
 * rows where every model of S was asked. H(Y | X_S) is the plug-in
 * conditional entropy (= H(Y) - I_plugin(Y; X_S), the mean over rows of
 * -log2 n(x, y)/n(x) for raw answer tuples x), lowered by z standard errors
 * of that mean. The plug-in is used because it overestimates I, so the bound
 * errs low; a held-out estimate underestimates I and would make the bound
 * too high (theory.md §6). z = 0 gives the bound for the empirical law
 * itself, never above the in-sample error of its Bayes table; z = 2 (what
 * ensemblectl reports) also covers the sampling noise of the estimate.
 * Returns 0 with the bound in *pe; ENS_EINVAL (bad index, fewer than two
 * labels, z < 0), ENS_EEMPTY (no row has every model of S) or ENS_ETOOBIG
 * (more than 2^24 rows). */
int ens_fano_bound(const ens_data_t *d, const size_t *set, size_t k, double z, double *pe);

#endif
