/* body_int.h - the field tables of the publication body, shared by its
 * encoder (body.c) and decoder (body_decode.c); not public.
 *
 * Each map of the body is one table of rows {key, type, where}: the encoder
 * writes the rows in table order, the decoder looks keys up in the same
 * table, so names, order and types cannot drift apart. Rows of type
 * ENS__F_CUSTOM are the fields with a shape of their own (arrays, maps keyed
 * by model, enums); both sides dispatch them on the row's id.
 */
#ifndef ENSEMBLED_BODY_INT_H
#define ENSEMBLED_BODY_INT_H

#include <stddef.h>

#include "ensembled/body.h"

typedef enum {
    ENS__F_STR,     /* ens_str_t */
    ENS__F_U64,     /* uint64_t */
    ENS__F_F64,     /* double, always a number */
    ENS__F_F64_NIL, /* double; NaN is nil */
    ENS__F_BOOL,    /* int */
    ENS__F_CUSTOM   /* by id */
} ens__ftype_t;

/* The custom fields. */
typedef enum {
    ENS__C_NONE,
    ENS__C_MODELS,
    ENS__C_STEPS,
    ENS__C_LABELS,
    ENS__C_COMBINER,
    ENS__C_ACCURACY,
    ENS__C_BOUNDS,
    ENS__C_EXPLORE,
    ENS__C_COVERAGE,
    ENS__C_FRESHNESS,
    ENS__C_EXCLUDED,
    ENS__C_REASON,
    ENS__C_KIND,
    ENS__C_WEIGHTS,
    ENS__C_TABLE,
    ENS__C_EXPLORE_MODELS,
    ENS__C_CHOICE,
    ENS__C_CANDIDATES,
    ENS__C_COSTS
} ens__custom_t;

typedef struct {
    const char *key;
    ens__ftype_t type;
    size_t off;       /* of the field in the struct the table describes */
    ens__custom_t id; /* ENS__F_CUSTOM rows */
} ens__field_t;

typedef struct {
    const ens__field_t *rows;
    size_t n;
} ens__table_t;

/* The top-level map (22 rows, the wire order) and the nested ones: a step
 * (ens_body_step_t), a candidate (ens_body_candidate_t), combiner, accuracy,
 * bounds, explore and choice (the last five describe ens_body_t). */
extern const ens__table_t ens__body_top, ens__body_step, ens__body_candidate, ens__body_combiner,
    ens__body_accuracy, ens__body_bounds, ens__body_explore, ens__body_choice;

/* The most rows of any table (the top level's); body.c asserts it. */
#define ENS__BODY_MAX_ROWS 24

#endif
