/* body.h - the publication body: what the daemon publishes on the topic
 * ensemble.<task>, what `ensemblectl select --body` prints, and what a C
 * router decodes (docs/protocol.md, "Publish").
 *
 * One struct for both directions. A body filled in by hand (the pipeline,
 * tests) borrows every pointer it holds and is encoded with
 * ens_body_encode; a body returned by ens_body_decode owns its memory and is
 * freed with ens_body_destroy. Names are byte strings (ens_str_t: pointer
 * and length, NUL bytes allowed); decoded ones are also NUL-terminated.
 */
#ifndef ENSEMBLED_BODY_H
#define ENSEMBLED_BODY_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/combine.h"
#include "ensembled/mpw.h"
#include "ensembled/protocol.h"

/* Why a model of the window is not in the pool; the names are on the wire
 * (`excluded`). Retired models are left out of exploration too. */
#define ENS_EXCL_MAP(XX)                                                                           \
    XX(NONE, "")                                                                                   \
    XX(RETIRED, "retired: silent for longer than select.retire_after")                             \
    XX(COVERAGE, "coverage below select.min_rows")

typedef enum {
#define ENS__EXCL_ENUM(id, text) ENS_EXCL_##id,
    ENS_EXCL_MAP(ENS__EXCL_ENUM)
#undef ENS__EXCL_ENUM
        ENS_EXCL_COUNT
} ens_excl_t;

/* Why this set was published (`reason`). */
#define ENS_REASON_MAP(XX)                                                                         \
    XX(FIRST, "first selection")                                                                   \
    XX(LEFT, "a published model left the pool")                                                    \
    XX(BUDGET, "the budget is now smaller than the published set")                                 \
    XX(SAME, "same set")                                                                           \
    XX(MORE_INFO, "more information")                                                              \
    XX(KEPT, "kept: the new set is not better by publish.min_improvement_bits")                    \
    XX(COST, "the published set now costs more than select.cost_budget")

typedef enum {
#define ENS__REASON_ENUM(id, text) ENS_REASON_##id,
    ENS_REASON_MAP(ENS__REASON_ENUM)
#undef ENS__REASON_ENUM
        ENS_REASON_COUNT
} ens_reason_t;

const char *ens_excl_name(ens_excl_t e);
const char *ens_reason_name(ens_reason_t r);

/* Key cells of decision-table entries besides label or class indices. */
#define ENS_BODY_ABSTAIN (-1) /* "?" in table keys, -1 in pattern keys */
#define ENS_BODY_MISSING (-2) /* nil in table keys, -2 in pattern keys */

typedef struct {
    ens_str_t model;
    double mi_bits;   /* cumulative */
    double gain_bits; /* over the previous step */
    uint64_t rows;    /* rows behind mi_bits */
} ens_body_step_t;

typedef struct {
    int16_t *key;     /* nmodels cells: label index (table) or class index
                       * (pattern), or ENS_BODY_ABSTAIN / ENS_BODY_MISSING */
    int32_t decision; /* label index (table) or class index (pattern) */
} ens_body_entry_t;

/* One model of the window: `coverage`, `freshness`, `excluded`, `costs`. */
typedef struct {
    ens_str_t model;
    uint64_t rows;       /* rows in which it was asked */
    double age;          /* seconds since its newest joined row; NaN: none (nil) */
    ens_excl_t excluded; /* ENS_EXCL_NONE: in the pool */
    double cost;         /* mean cost of its answers in the window; NaN: none
                          * reported one (nil) */
} ens_body_model_t;

/* One candidate of the final choice (`choice.candidates`, choice.h). */
typedef struct {
    ens_str_t name;  /* "selection", "top-1", "top-2", ... */
    uint64_t models; /* its size, fitted on every row of the pool */
    double accuracy; /* cross-validated; NaN: nil */
    double se;       /* standard error: of accuracy for the selection, of
                      * the paired difference from it for the others */
} ens_body_candidate_t;

typedef struct ens_body_s {
    uint64_t protocol; /* ENS_PROTOCOL_VERSION when encoded; 1 when absent */
    ens_str_t task;
    uint64_t version;
    double ts;
    ens_str_t strategy, estimator; /* the names in force */
    ens_str_t answers, normalize;  /* window.answers, window.normalize (open.h) */
    uint64_t budget;
    size_t nmodels;         /* the ensemble */
    ens_str_t *models;      /* in selection order */
    ens_body_step_t *steps; /* nmodels */
    uint64_t window_rows;
    size_t nlabels;
    ens_str_t *labels; /* the label alphabet, in id order */
    /* combiner */
    ens_comb_kind_t comb;
    double *weights; /* nmodels */
    size_t ntable;
    ens_body_entry_t *table;
    /* accuracy; NaN: nil */
    double acc_combiner, acc_vote, acc_single, acc_in_sample;
    /* bounds; NaN: nil */
    double fano_error_lower, copula_error_floor, copula_error_floor_ensemble,
        latent_correlation_mean;
    /* explore */
    double explore_rate;
    ens_str_t explore_rule;
    size_t nexplore;
    ens_str_t *explore_models;
    double explore_extra; /* extra_queries_per_query */
    /* coverage, freshness and excluded, per model of the window in window order */
    size_t nwindow;
    ens_body_model_t *window;
    int replaced;
    ens_reason_t reason;
    /* choice: the candidate published and every one scored (none when the
     * final choice does not apply; the winner is then "selection") */
    ens_str_t choice_winner;
    size_t ncandidates;
    ens_body_candidate_t *candidates;
    /* costs: per model in window[].cost; the ensemble's cost per query, the
     * sum of its models' costs (NaN: nil, one of them has none) */
    double expected_cost;
    void *arena_; /* decoded bodies: what ens_body_destroy frees */
} ens_body_t;

/* Appends the body as one MessagePack map to w. */
void ens_body_encode(const ens_body_t *b, ens_mpw_t *w);

/* Decodes a body (after the container pre-walk of protocol.h). Returns 0
 * and a new body in *out, or ENS_EPARSE with one line in err (a missing or
 * ill-typed field, an entry whose key length is not nmodels, an excluded
 * model not in coverage, an unknown reason or exclusion, a choice winner
 * that names no candidate). */
int ens_body_decode(const char *buf, size_t len, ens_body_t **out, char *err, size_t errlen);

/* NULL-safe; sets *bp to NULL. Only for bodies from ens_body_decode. */
void ens_body_destroy(ens_body_t **bp);

#endif
