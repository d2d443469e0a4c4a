/* window.h - the sliding window of labeled rows a daemon keeps live.
 *
 * A ring of at most `capacity` rows over at most `max_models` models, stored
 * column-major with one byte per prediction (see data.h for the symbols).
 * Model names and labels are interned to small ids as they appear. Pushing
 * into a full window expires the oldest row first.
 *
 * Invariant: for every model j, count(j, x, y) equals the number of rows in
 * the window whose prediction of j is x (a label or ENS_SYM_ABSTAIN) and whose
 * true label is y. The counts are updated on every push and expiry, so
 * per-model accuracy and single-model tables cost nothing to read. Likewise
 * each model's costs: their sum and number over the rows in the window.
 *
 * Not thread-safe: one owner mutates it; computations run on a snapshot.
 */
#ifndef ENSEMBLED_WINDOW_H
#define ENSEMBLED_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/data.h"
#include "ensembled/protocol.h"

typedef struct ens_window_s ens_window_t;

/* Returns NULL if capacity or max_models is zero or max_models > ENS_MAX_MODELS. */
ens_window_t *ens_window_new(size_t capacity, size_t max_models);
void ens_window_destroy(ens_window_t **wp);

/* Interns a model name: its id, or ENS_EFULL / ENS_ETOOLONG / ENS_EINVAL. A
 * new model's column reads ENS_SYM_MISSING for the rows already present. */
int ens_window_model(ens_window_t *w, const char *name, size_t len);

/* Interns a label: its id, or ENS_EFULL past ENS_MAX_LABELS labels. The
 * string "?" is not a label: it returns ENS_SYM_ABSTAIN. */
int ens_window_label(ens_window_t *w, const char *name, size_t len);

/* Appends one row: true label y (an id from ens_window_label) and x[0..nx)
 * predictions indexed by model id (models >= nx read ENS_SYM_MISSING).
 * Expires the oldest row first when full. Returns 0, or ENS_EINVAL if y or a
 * prediction is not a known symbol (the window is then unchanged). */
int ens_window_push(ens_window_t *w, uint8_t y, const uint8_t *x, size_t nx, double ts);

/* ens_window_push with the cost of each answer: cost[j] for model j (< nx),
 * negative or NaN when the answer carried none. A model's cost is the mean
 * of the costs of its answers in the window (ens_window_cost). NULL: no
 * answer has a cost. A model's first costed answer allocates 8 bytes per
 * row of capacity for its costs. */
int ens_window_push_costs(ens_window_t *w, uint8_t y, const uint8_t *x, const double *cost,
                          size_t nx, double ts);

/* Expires the n oldest rows (all of them if n exceeds the row count). */
void ens_window_expire(ens_window_t *w, size_t n);

/* Expires rows older than ts_min (rows are expected in time order; expiry
 * stops at the first row not older). Returns the number expired. */
size_t ens_window_expire_before(ens_window_t *w, double ts_min);

/* Looks a model or label up without adding it: its id or ENS_ENOTFOUND
 * ("?" finds ENS_SYM_ABSTAIN). */
int ens_window_find_model(const ens_window_t *w, const char *name, size_t len);
int ens_window_find_label(const ens_window_t *w, const char *name, size_t len);

size_t ens_window_rows(const ens_window_t *w);
size_t ens_window_capacity(const ens_window_t *w);
size_t ens_window_models(const ens_window_t *w);
size_t ens_window_labels(const ens_window_t *w);
const char *ens_window_model_name(const ens_window_t *w, int id);
const char *ens_window_label_name(const ens_window_t *w, int id);

/* The same names with their lengths (they may hold NUL bytes); borrowed. */
ens_str_t ens_window_model_str(const ens_window_t *w, int id);
ens_str_t ens_window_label_str(const ens_window_t *w, int id);

/* Prediction of model j in the i-th oldest row (i < rows). */
uint8_t ens_window_x(const ens_window_t *w, size_t i, size_t j);
uint8_t ens_window_y(const ens_window_t *w, size_t i);
double ens_window_ts(const ens_window_t *w, size_t i);

/* The incremental count n_j(x, y); x may be ENS_SYM_ABSTAIN. */
uint32_t ens_window_count(const ens_window_t *w, size_t j, uint8_t x, uint8_t y);
/* Rows in which model j was asked (its column is not missing). */
uint32_t ens_window_present(const ens_window_t *w, size_t j);

/* Model j's mean cost per answer over the answers in the window that
 * carried a cost, NaN when none did; *n (when n is not NULL) gets their
 * number. Kept as rows enter and leave: O(1). */
double ens_window_cost(const ens_window_t *w, size_t j, uint32_t *n);

/* Copies the window, oldest row first, into a new immutable matrix; each
 * model's cost is its ens_window_cost, or 1.0 (data.h's default) when no
 * answer of it in the window carried one. */
ens_data_t *ens_window_snapshot(const ens_window_t *w);

#endif
