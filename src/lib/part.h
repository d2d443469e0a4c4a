/* part.h - partition refinement: the engine behind every estimate over a set.
 *
 * A part holds a selected set S of models and, for each row, the id of its
 * cell in the partition the rows induce on X_S (DEAD when a model of S was not
 * asked in that row). Scoring a candidate j is then one pass over j's column:
 * the joint counts of (cell, x_j, target) are gathered in that pass and turned
 * into an estimate of I(Y; X_{S+j}) over the rows where S and j were asked.
 * Adding j refines every cell by x_j.
 *
 * For the plug-in and Miller-Madow estimators the cells are raw answer
 * tuples. For the held-out estimator they are agreement patterns (which
 * models of S gave the same answer, and which abstained), the target being
 * which of the pattern's answer classes holds the truth, if any; see
 * docs/estimators.md.
 *
 * Internal to the library. A part is used by one thread at a time; parts share
 * no state, so several may run at once in different threads.
 */
#ifndef ENSEMBLED_PART_H
#define ENSEMBLED_PART_H

#include <stddef.h>

#include "ensembled/data.h"
#include "ensembled/mi.h"

/* The largest set a part can hold. */
#define ENS_PART_MAX 64

typedef struct ens_part_s ens_part_t;

/* Starts with S empty over all rows of d (borrowed: it must outlive the part). */
ens_part_t *ens__part_new(const ens_data_t *d, ens_estimator_t est);
void ens__part_destroy(ens_part_t **pp);

/* Estimate of I(Y; X_{S+j}) in bits; *rows gets the rows used (0 when no row
 * has every model of S and j, the estimate being 0 then). j must not be in S. */
double ens__part_score(ens_part_t *p, size_t j, size_t *rows);

/* ens__part_score for each of js[0..nj) (none in S), into bits[i] and
 * rows[i]; one pass over the rows can serve several candidates, so this is
 * faster than nj calls. Every score is the one ens__part_score gives. */
void ens__part_score_many(ens_part_t *p, const size_t *js, size_t nj, double *bits, size_t *rows);

/* Adds j to S (|S| < ENS_PART_MAX, j not in S). Its estimate (ens__part_bits)
 * is the score of j against the old S, taken from the last scoring of j when
 * S has not changed since. */
void ens__part_add(ens_part_t *p, size_t j);

/* |S| and the estimate for S itself (0 bits over all rows when S is empty). */
size_t ens__part_size(const ens_part_t *p);
double ens__part_bits(const ens_part_t *p, size_t *rows);

#endif
