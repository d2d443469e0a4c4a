/* router.h - what a router does with a publication body: decide whether a
 * query explores, pick the models to ask, and combine their answers, exactly
 * as docs/protocol.md ("How a router explores", "How a router combines")
 * says, so that C, C++ and cgo routers need not re-derive the rules.
 *
 * Parse a body with ens_body_decode (body.h); every function here borrows
 * it and is pure: no I/O, no allocation that outlives the call, safe from any
 * thread on a body nobody modifies. docs/router.md shows a whole router;
 * tests/vectors/ holds the test vectors every implementation must pass.
 *
 * Answers are given per model of the ensemble, in the body's `models`
 * order, as byte strings: ptr NULL means the model was not asked or did not
 * answer (nil in table keys, -2 in patterns); the one-byte string "?" means
 * it abstained (-1 in patterns). An integer answer is given as its decimal
 * text, as the daemon interns it.
 */
#ifndef ENSEMBLED_ROUTER_H
#define ENSEMBLED_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/body.h"
#include "ensembled/protocol.h"

/* A query id: an unsigned integer, or a byte string (any bytes). */
typedef struct {
    int is_uint; /* 1: u holds it; 0: s[0..len) */
    uint64_t u;
    const char *s;
    size_t len;
} ens_router_query_t;

/* Agreement-pattern cells besides class indices. */
#define ENS_ROUTER_ABSTAIN (-1)
#define ENS_ROUTER_MISSING (-2)

/* XXH3-64 with seed 1 of task || 0x00 || key, key being 'u' and the query as
 * 8 big-endian bytes, or 's' and its bytes. */
uint64_t ens_router_explore_hash(const char *task, size_t task_len, const ens_router_query_t *q);

/* Whether hash < rate * 2^64, compared exactly (as Python compares an int
 * with a float): rate <= 0 (or NaN) never explores, rate >= 1 always does. */
int ens_router_explore_below(uint64_t hash, double rate);

/* Whether query q of the body's task is an exploration query. 1 or 0. */
int ens_router_explores(const ens_body_t *b, const ens_router_query_t *q);

/* The models to ask for q: on exploration queries `explore.models`, else the
 * ensemble. Stores a borrowed array (valid as long as b) in *models and
 * returns its length. On exploration queries the router also asks every
 * model it serves that the body does not list in `coverage` (a model the
 * daemon has not seen yet is measured only through exploration). */
size_t ens_router_models(const ens_body_t *b, const ens_router_query_t *q,
                         const ens_str_t **models);

/* The agreement pattern of answers[0..k): walking them in order, each
 * distinct answer gets the next class index 0, 1, ...; "?" is
 * ENS_ROUTER_ABSTAIN and a missing answer ENS_ROUTER_MISSING. pattern gets k
 * cells; first[c] (k cells at most) the position of the first answer of
 * class c. Returns the number of classes. */
size_t ens_router_pattern(const ens_str_t *answers, size_t k, int16_t *pattern, size_t *first);

/* The vote over answers[0..k): each answer other than "?" and missing counts
 * weights[i] (weighted) or 1; the largest total wins; ties go to the answer
 * of the model with the largest weight among those voting for a tied answer
 * (equal weights: the earlier model). Returns the position of a model whose
 * answer won, or -1 when nobody voted. */
int ens_router_vote(const ens_str_t *answers, const double *weights, size_t k, int weighted);

/* Combines answers[0..b->nmodels) with the body's combiner (`vote`,
 * `weighted`, `table`, `pattern`; docs/protocol.md). Stores the decision,
 * borrowed from answers or from b->labels, in *out and returns 0; returns
 * ENS_ENOTFOUND when no model voted and no table entry decides (the caller
 * falls back to a policy of its own). In a body with `answers: open`,
 * answers that agree under its `normalize` (open.h) count as one, and the
 * decision is the text of the first model (in `models` order) whose answer
 * won; ENS_EPARSE for a `normalize` this library does not know. */
int ens_router_combine(const ens_body_t *b, const ens_str_t *answers, ens_str_t *out);

#endif
