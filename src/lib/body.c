/* body.c - the publication body (body.h): the names of its enums, its field
 * tables (body_int.h) and its encoder. The decoder is body_decode.c.
 *
 * The encoding is the one the daemon has always published (docs/protocol.md,
 * "Publish"): 22 keys in table order; decision-table keys as labels ("?"
 * abstained, nil not asked) for the kinds vote, weighted and table, and as
 * integers (-1 abstained, -2 not asked) for pattern; NaN figures as nil.
 */
#include <stdio.h>
#include <stdlib.h>

#include "body_int.h"

static const char *const excl_names[] = {
#define ENS__EXCL_NAME(id, text) text,
    ENS_EXCL_MAP(ENS__EXCL_NAME)
#undef ENS__EXCL_NAME
};

static const char *const reason_names[] = {
#define ENS__REASON_NAME(id, text) text,
    ENS_REASON_MAP(ENS__REASON_NAME)
#undef ENS__REASON_NAME
};

const char *ens_excl_name(ens_excl_t e)
{
    return (size_t)e < ENS_EXCL_COUNT ? excl_names[e] : "?";
}

const char *ens_reason_name(ens_reason_t r)
{
    return (size_t)r < ENS_REASON_COUNT ? reason_names[r] : "?";
}

/* ---- the field tables -------------------------------------------------- */

#define ROW(key, type, st, field)                                                                  \
    {                                                                                              \
        key, ENS__F_##type, offsetof(st, field), ENS__C_NONE                                       \
    }
#define CUSTOM(key, id)                                                                            \
    {                                                                                              \
        key, ENS__F_CUSTOM, 0, ENS__C_##id                                                         \
    }
#define TABLE(name, rows) const ens__table_t name = {rows, sizeof(rows) / sizeof(rows[0])}

static const ens__field_t top_rows[] = {
    ROW("task", STR, ens_body_t, task),
    ROW("version", U64, ens_body_t, version),
    ROW("ts", F64, ens_body_t, ts),
    ROW("strategy", STR, ens_body_t, strategy),
    ROW("estimator", STR, ens_body_t, estimator),
    ROW("budget", U64, ens_body_t, budget),
    CUSTOM("models", MODELS),
    CUSTOM("steps", STEPS),
    ROW("window_rows", U64, ens_body_t, window_rows),
    CUSTOM("labels", LABELS),
    CUSTOM("combiner", COMBINER),
    CUSTOM("accuracy", ACCURACY),
    CUSTOM("bounds", BOUNDS),
    CUSTOM("explore", EXPLORE),
    CUSTOM("coverage", COVERAGE),
    CUSTOM("freshness", FRESHNESS),
    CUSTOM("excluded", EXCLUDED),
    ROW("replaced", BOOL, ens_body_t, replaced),
    CUSTOM("reason", REASON),
    CUSTOM("choice", CHOICE),
    CUSTOM("costs", COSTS),
    ROW("expected_cost", F64_NIL, ens_body_t, expected_cost),
    ROW("answers", STR, ens_body_t, answers),
    ROW("normalize", STR, ens_body_t, normalize),
};
TABLE(ens__body_top, top_rows);
_Static_assert(sizeof(top_rows) / sizeof(top_rows[0]) <= ENS__BODY_MAX_ROWS,
               "body_decode.c sizes its key array by ENS__BODY_MAX_ROWS");

static const ens__field_t step_rows[] = {
    ROW("model", STR, ens_body_step_t, model),
    ROW("mi_bits", F64, ens_body_step_t, mi_bits),
    ROW("gain_bits", F64, ens_body_step_t, gain_bits),
    ROW("rows", U64, ens_body_step_t, rows),
};
TABLE(ens__body_step, step_rows);

static const ens__field_t candidate_rows[] = {
    ROW("name", STR, ens_body_candidate_t, name),
    ROW("models", U64, ens_body_candidate_t, models),
    ROW("accuracy", F64_NIL, ens_body_candidate_t, accuracy),
    ROW("se", F64_NIL, ens_body_candidate_t, se),
};
TABLE(ens__body_candidate, candidate_rows);

/* Candidates first: the winner is checked against their names. */
static const ens__field_t choice_rows[] = {
    CUSTOM("candidates", CANDIDATES),
    ROW("winner", STR, ens_body_t, choice_winner),
};
TABLE(ens__body_choice, choice_rows);

/* The kind comes first: the table's key cells are read by kind. */
static const ens__field_t combiner_rows[] = {
    CUSTOM("kind", KIND),
    CUSTOM("weights", WEIGHTS),
    CUSTOM("table", TABLE),
};
TABLE(ens__body_combiner, combiner_rows);

static const ens__field_t accuracy_rows[] = {
    ROW("combiner", F64_NIL, ens_body_t, acc_combiner),
    ROW("majority_vote", F64_NIL, ens_body_t, acc_vote),
    ROW("best_single", F64_NIL, ens_body_t, acc_single),
    ROW("in_sample", F64_NIL, ens_body_t, acc_in_sample),
};
TABLE(ens__body_accuracy, accuracy_rows);

static const ens__field_t bounds_rows[] = {
    ROW("fano_error_lower", F64_NIL, ens_body_t, fano_error_lower),
    ROW("copula_error_floor", F64_NIL, ens_body_t, copula_error_floor),
    ROW("copula_error_floor_ensemble", F64_NIL, ens_body_t, copula_error_floor_ensemble),
    ROW("latent_correlation_mean", F64_NIL, ens_body_t, latent_correlation_mean),
};
TABLE(ens__body_bounds, bounds_rows);

static const ens__field_t explore_rows[] = {
    ROW("rate", F64, ens_body_t, explore_rate),
    ROW("rule", STR, ens_body_t, explore_rule),
    CUSTOM("models", EXPLORE_MODELS),
    ROW("extra_queries_per_query", F64, ens_body_t, explore_extra),
};
TABLE(ens__body_explore, explore_rows);

/* ---- encoding ---------------------------------------------------------- */

/* A body that breaks its own invariants (an index past its arrays) is a
 * programmer error: abort rather than publish a body routers misread. */
static void bad_body(const char *what)
{
    fprintf(stderr, "ens_body_encode: %s\n", what);
    abort();
}

static void put_str(ens_mpw_t *w, ens_str_t s)
{
    ens_mpw_str(w, s.ptr, s.len);
}

static void put_strs(ens_mpw_t *w, const ens_str_t *v, size_t n)
{
    ens_mpw_array_begin(w);
    for (size_t i = 0; i < n; i++)
        put_str(w, v[i]);
    ens_mpw_array_end(w);
}

static void put_map(ens_mpw_t *w, const ens_body_t *b, const void *base, const ens__table_t *t);

/* A label cell of a table entry: the label, "?" abstained, nil not asked. */
static void put_label_cell(ens_mpw_t *w, const ens_body_t *b, int32_t x)
{
    if (x == ENS_BODY_ABSTAIN)
        ens_mpw_cstr(w, "?");
    else if (x == ENS_BODY_MISSING)
        ens_mpw_nil(w);
    else if (x >= 0 && (size_t)x < b->nlabels)
        put_str(w, b->labels[x]);
    else
        bad_body("a table cell names no label");
}

/* [key_1, ..., key_k, decision] per entry. */
static void put_table(ens_mpw_t *w, const ens_body_t *b)
{
    int pattern = b->comb == ENS_COMB_PATTERN;
    ens_mpw_array_begin(w);
    for (size_t e = 0; e < b->ntable; e++) {
        const ens_body_entry_t *en = &b->table[e];
        ens_mpw_array_begin(w);
        for (size_t i = 0; i < b->nmodels; i++) {
            if (pattern)
                ens_mpw_int(w, en->key[i]);
            else
                put_label_cell(w, b, en->key[i]);
        }
        if (pattern && en->decision >= 0)
            ens_mpw_uint(w, (uint64_t)en->decision);
        else if (pattern || en->decision < 0)
            bad_body("a negative decision");
        else
            put_label_cell(w, b, en->decision);
        ens_mpw_array_end(w);
    }
    ens_mpw_array_end(w);
}

static void put_steps(ens_mpw_t *w, const ens_body_t *b)
{
    ens_mpw_array_begin(w);
    for (size_t i = 0; i < b->nmodels; i++)
        put_map(w, b, &b->steps[i], &ens__body_step);
    ens_mpw_array_end(w);
}

/* coverage, freshness, excluded or costs: maps keyed by the window's models. */
static void put_window(ens_mpw_t *w, const ens_body_t *b, ens__custom_t id)
{
    ens_mpw_map_begin(w);
    for (size_t m = 0; m < b->nwindow; m++) {
        const ens_body_model_t *mo = &b->window[m];
        if (id == ENS__C_EXCLUDED && mo->excluded == ENS_EXCL_NONE)
            continue;
        put_str(w, mo->model);
        if (id == ENS__C_COVERAGE)
            ens_mpw_uint(w, mo->rows);
        else if (id == ENS__C_FRESHNESS)
            ens_mpw_double_or_nil(w, mo->age);
        else if (id == ENS__C_COSTS)
            ens_mpw_double_or_nil(w, mo->cost);
        else if ((size_t)mo->excluded < ENS_EXCL_COUNT)
            ens_mpw_cstr(w, ens_excl_name(mo->excluded));
        else
            bad_body("an unknown exclusion");
    }
    ens_mpw_map_end(w);
}

static void put_custom(ens_mpw_t *w, const ens_body_t *b, ens__custom_t id)
{
    switch (id) {
    case ENS__C_MODELS:
        put_strs(w, b->models, b->nmodels);
        break;
    case ENS__C_STEPS:
        put_steps(w, b);
        break;
    case ENS__C_LABELS:
        put_strs(w, b->labels, b->nlabels);
        break;
    case ENS__C_COMBINER:
        put_map(w, b, b, &ens__body_combiner);
        break;
    case ENS__C_ACCURACY:
        put_map(w, b, b, &ens__body_accuracy);
        break;
    case ENS__C_BOUNDS:
        put_map(w, b, b, &ens__body_bounds);
        break;
    case ENS__C_EXPLORE:
        put_map(w, b, b, &ens__body_explore);
        break;
    case ENS__C_REASON:
        if ((size_t)b->reason >= ENS_REASON_COUNT)
            bad_body("an unknown reason");
        ens_mpw_cstr(w, ens_reason_name(b->reason));
        break;
    case ENS__C_KIND:
        if ((size_t)b->comb >= ENS_COMB_COUNT)
            bad_body("an unknown combiner kind");
        ens_mpw_cstr(w, ens_comb_name(b->comb));
        break;
    case ENS__C_WEIGHTS:
        ens_mpw_array_begin(w);
        for (size_t i = 0; i < b->nmodels; i++)
            ens_mpw_double(w, b->weights[i]);
        ens_mpw_array_end(w);
        break;
    case ENS__C_TABLE:
        put_table(w, b);
        break;
    case ENS__C_EXPLORE_MODELS:
        put_strs(w, b->explore_models, b->nexplore);
        break;
    case ENS__C_CHOICE:
        put_map(w, b, b, &ens__body_choice);
        break;
    case ENS__C_CANDIDATES:
        ens_mpw_array_begin(w);
        for (size_t i = 0; i < b->ncandidates; i++)
            put_map(w, b, &b->candidates[i], &ens__body_candidate);
        ens_mpw_array_end(w);
        break;
    default: /* coverage, freshness, excluded, costs */
        put_window(w, b, id);
    }
}

/* The entries of table t over the struct at base, inside an open map. */
static void put_rows(ens_mpw_t *w, const ens_body_t *b, const void *base, const ens__table_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        const ens__field_t *f = &t->rows[i];
        const char *p = (const char *)base + f->off;
        ens_mpw_cstr(w, f->key);
        switch (f->type) {
        case ENS__F_STR:
            put_str(w, *(const ens_str_t *)p);
            break;
        case ENS__F_U64:
            ens_mpw_uint(w, *(const uint64_t *)p);
            break;
        case ENS__F_F64:
            ens_mpw_double(w, *(const double *)p);
            break;
        case ENS__F_F64_NIL:
            ens_mpw_double_or_nil(w, *(const double *)p);
            break;
        case ENS__F_BOOL:
            ens_mpw_bool(w, *(const int *)p);
            break;
        case ENS__F_CUSTOM:
            put_custom(w, b, f->id);
            break;
        }
    }
}

/* The map of table t over the struct at base. */
static void put_map(ens_mpw_t *w, const ens_body_t *b, const void *base, const ens__table_t *t)
{
    ens_mpw_map_begin(w);
    put_rows(w, b, base, t);
    ens_mpw_map_end(w);
}

/* The protocol version first, outside the table: bodies of version 1 had
 * none, and the decoder reads its absence as 1. */
void ens_body_encode(const ens_body_t *b, ens_mpw_t *w)
{
    ens_mpw_map_begin(w);
    ens_mpw_cstr(w, "protocol");
    ens_mpw_uint(w, ENS_PROTOCOL_VERSION);
    put_rows(w, b, b, &ens__body_top);
    ens_mpw_map_end(w);
}
