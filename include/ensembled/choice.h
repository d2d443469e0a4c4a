/* choice.h - the final choice: publish the information-selected ensemble
 * only where it predicts at least as well as the simple alternatives.
 *
 * Candidates are procedures, each run on training rows: "selection" (the
 * strategy in force with the published combiner, ens_combiner_fit_best; its
 * pruning already picks among the greedy prefixes), and "top-K" for K = 1
 * (the best single model) up to the budget: the K most accurate models with
 * the weighted vote. Each is scored by repeated K-fold cross-validation on
 * the rows given (ENS_CHOICE_FOLDS folds, repeated with fresh partitions
 * until about ENS_CHOICE_SCORED_ROWS rows are scored, at most
 * ENS_CHOICE_MAX_REPEATS times; that is 1 today: more repeats steady the
 * choice on small windows but slow every re-selection, and the daemon's
 * closed-loop tests under sanitizers showed it), every candidate on the same
 * folds, so that per-row differences are paired. Windows of more than
 * ENS_CHOICE_MAX_ROWS rows are scored on that many evenly spaced rows: the
 * standard error there is already about 0.004, and the daemon re-selects
 * every few seconds on windows of up to 100k rows (bench/pipeline); with
 * exploration flags, every row on which no model is missing by design is
 * kept and the others fill the room left.
 *
 * Live windows (data.h's `explored`): on an ordinary query the routers
 * asked only the ensemble published then, so a candidate holding another
 * model is judged on an ordinary row only when all its models were asked
 * there; on explored rows (every row of CSV input) as a router would use
 * it, its combiner falling back over the models not asked, so that a
 * rate-limited model's gaps count against it. Paired differences are taken
 * over the rows where both candidates were judged. Without this, any
 * candidate outside the published ensemble looks bad and the daemon keeps
 * what it published (docs/estimators.md, "The final choice").
 *
 * The rule (docs/estimators.md, "The final choice"): B is the better by
 * cross-validated accuracy of the two alternatives the promise names, the
 * top-K vote at the budget and the best single model (ties to top-K); the
 * votes in between are scored, for the body, but never B. The
 * selection is published when it is not worse than B by a one-sided test:
 * mean paired difference d = acc(selection) - acc(B), its standard error s
 * over rows, and selection wins iff d - ENS_CHOICE_Z * s >= -ENS_CHOICE_MARGIN.
 * Otherwise B is published.
 *
 * The step applies to greedy-mi and exhaustive with pruning on (the
 * defaults); with pruning off (the paper's algorithm) or another strategy,
 * the selection is published as is (ens_choice_applies).
 */
#ifndef ENSEMBLED_CHOICE_H
#define ENSEMBLED_CHOICE_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/combine.h"
#include "ensembled/data.h"
#include "ensembled/select.h"

#define ENS_CHOICE_FOLDS 5
#define ENS_CHOICE_SCORED_ROWS 10000
#define ENS_CHOICE_MAX_REPEATS 1
#define ENS_CHOICE_MAX_ROWS 10000
#define ENS_CHOICE_Z 1.645
#define ENS_CHOICE_MARGIN 0.005
#define ENS_CHOICE_MAX (ENS_SELECT_MAX + 1)
#define ENS_CHOICE_MIN_EXPLORED 100
/* The folds' shuffles depend only on the row count and the repeat: repeat r
 * shuffles 0..n-1 with ens_rng_shuffle seeded ENS_CHOICE_SEED + r, and fold
 * f holds the shuffled positions [f n / FOLDS, (f + 1) n / FOLDS). So the
 * daemon and `ensemblectl select --body` choose alike on the same window. */
#define ENS_CHOICE_SEED UINT64_C(0x63686f696365)

typedef struct {
    char name[32]; /* "selection", "top-1" (the best single model), "top-2", ... */
    size_t k;      /* models in it, as fitted on every row */
    double acc;    /* cross-validated accuracy */
    double se;     /* standard error of acc (selection) or of the paired
                    * difference from selection (the others) */
} ens_candidate_t;

typedef struct {
    size_t n;                             /* candidates; [0] is the selection */
    ens_candidate_t cand[ENS_CHOICE_MAX]; /* in order: selection, top-1, top-2, ... */
    size_t winner;                        /* index into cand */
    double vote_acc;                      /* cross-validated accuracy of plain majority
                                           * vote over each fold's selection (not a
                                           * candidate: the pipeline's honest figure) */
} ens_choice_t;

/* ens_select on the rows of d on which no model is missing by design
 * (ens_data_rows_explored) when d has exploration flags and at least
 * ENS_CHOICE_MIN_EXPLORED such rows, else on every row. In a live window
 * the models outside the published ensemble are asked on exploration
 * queries only: estimated on every row, a set of published models would be
 * measured on many more rows than any other, and an estimator that
 * discounts small samples would keep choosing it (docs/estimators.md).
 * The selection's indices are d's columns either way. */
int ens_choice_select(const ens_data_t *d, const ens_select_opts_t *o, ens_selection_t *out,
                      char *err, size_t errlen);

/* Whether the final choice runs for these options. */
int ens_choice_applies(const ens_select_opts_t *o);

/* Scores the candidates on the rows of d and picks the winner. Returns 0,
 * ENS_EEMPTY (fewer than 2 * ENS_CHOICE_FOLDS rows: then the selection wins,
 * with NaN figures) or an error of ens_select. */
int ens_choose(const ens_data_t *d, const ens_select_opts_t *o, ens_choice_t *out);

/* The winner fitted on every row of d: its models in *set (with the steps
 * of ens_selection_steps) and a new combiner. `sel` is the selection to
 * publish when the selection won (the pipeline's, after hysteresis). */
ens_combiner_t *ens_choice_fit(const ens_data_t *d, const ens_select_opts_t *o,
                               const ens_choice_t *c, const ens_selection_t *sel,
                               ens_selection_t *set);

/* What the pipeline publishes from d given the selection sel made on it:
 * the winner of ens_choose where the choice applies (and d has the rows for
 * it), else sel with ens_combiner_fit_best. Its models in *pub; the choice
 * in *c when c is not NULL (c->n is 0 when no choice was made). */
ens_combiner_t *ens_choice_published(const ens_data_t *d, const ens_select_opts_t *o,
                                     const ens_selection_t *sel, ens_selection_t *pub,
                                     ens_choice_t *c);

#endif
