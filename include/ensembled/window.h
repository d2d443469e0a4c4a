/* window.h - the sliding window of labeled rows a daemon keeps live.
 *
 * A ring of at most `capacity` rows over at most `max_models` models, stored
 * column-major with one byte per prediction (see data.h for the symbols).
 * Model names and labels are interned to small ids as they appear; a model
 * or a label no row holds may be released, its id going to the next new
 * one. Pushing
 * into a full window expires the oldest row first.
 *
 * Each row also keeps the set of models that answered it (a bit per model,
 * 8 bytes per row for each 64 model ids in use), so a push or an expiry
 * costs in proportion to the row's answers, not to the window's models.
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

/* Expires every row older than ts_min, wherever it sits: rows are kept in
 * push order, which is not time order when a row's time is earlier than
 * that of a row pushed before it (a row dated ahead, for example, must not
 * keep older rows behind it alive). The rows that stay keep their order.
 * Costs one pass over the rows only when they are out of time order and
 * the oldest time present is older than ts_min. Returns the number
 * expired. */
size_t ens_window_expire_before(ens_window_t *w, double ts_min);

/* The serial number of the i-th oldest row (i < rows): rows are numbered
 * 1, 2, ... as they are pushed, so serials increase from the oldest row to
 * the newest and survive any expiry. */
uint64_t ens_window_serial(const ens_window_t *w, size_t i);
/* The index of the oldest row whose serial is >= serial (rows if none). */
size_t ens_window_find_serial(const ens_window_t *w, uint64_t serial);

/* Copies rows [from, from + n) (oldest first, from + n <= rows): true
 * labels into y[n], times into ts[n] and the answers of models [0, nm) row
 * major into x[n * nm] (row i at x + i * nm; a model never interned reads
 * ENS_SYM_MISSING). */
void ens_window_copy_rows(const ens_window_t *w, size_t from, size_t n, size_t nm, uint8_t *y,
                          double *ts, uint8_t *x);

/* Copies rows [from, from + n) (oldest first, from + n <= rows) column by
 * column: true labels into y[0..n), and the answers of models ids[0..nm)
 * (ids in use) into x, model k's at x + k * stride. What a snapshot taken
 * a piece at a time copies (the daemon's recompute). */
void ens_window_copy_columns(const ens_window_t *w, size_t from, size_t n, const size_t *ids,
                             size_t nm, size_t stride, uint8_t *y, uint8_t *x);
/* The exploration flags of rows [from, from + n) into explored[n]
 * (ens_window_explored). */
void ens_window_copy_explored(const ens_window_t *w, size_t from, size_t n, uint8_t *explored);

/* Looks a model or label up without adding it: its id or ENS_ENOTFOUND
 * ("?" finds ENS_SYM_ABSTAIN). */
int ens_window_find_model(const ens_window_t *w, const char *name, size_t len);
int ens_window_find_label(const ens_window_t *w, const char *name, size_t len);

size_t ens_window_rows(const ens_window_t *w);
size_t ens_window_capacity(const ens_window_t *w);
/* Model ids in use are below ens_window_models (released ids included);
 * ens_window_models_held counts the models named now. */
size_t ens_window_models(const ens_window_t *w);
size_t ens_window_models_held(const ens_window_t *w);
/* The ids of the models named now, increasing, into ids (room for
 * ENS_MAX_MODELS); returns how many. */
size_t ens_window_model_ids(const ens_window_t *w, size_t *ids);
/* Frees model id's slot when no row holds an answer of it: its name is
 * forgotten and its id goes to the next new model, whose column reads
 * ENS_SYM_MISSING in every row. Returns 0, or ENS_EINVAL (a row holds it,
 * or no model has that id). A released id's name is NULL (length 0). */
int ens_window_release_model(ens_window_t *w, int id);
/* Label ids in use are below ens_window_labels (released ids included);
 * ens_window_labels_held counts the labels named now. */
size_t ens_window_labels(const ens_window_t *w);
size_t ens_window_labels_held(const ens_window_t *w);
/* Frees label id's slot when no row holds it, as its true label or as an
 * answer: its name is forgotten and its id goes to the next new label.
 * Returns 0 or ENS_EINVAL (a row holds it, or no label has that id). */
int ens_window_release_label(ens_window_t *w, int id);
const char *ens_window_model_name(const ens_window_t *w, int id);
const char *ens_window_label_name(const ens_window_t *w, int id);

/* The same names with their lengths (they may hold NUL bytes); borrowed. */
ens_str_t ens_window_model_str(const ens_window_t *w, int id);
ens_str_t ens_window_label_str(const ens_window_t *w, int id);

/* Prediction of model j in the i-th oldest row (i < rows). */
uint8_t ens_window_x(const ens_window_t *w, size_t i, size_t j);
uint8_t ens_window_y(const ens_window_t *w, size_t i);
double ens_window_ts(const ens_window_t *w, size_t i);
/* Whether the i-th oldest row is an exploration query (1, as every row is
 * when pushed: explored or not known) or an ordinary one (0: the routers
 * asked only the ensemble published then; data.h's `explored`). The flag
 * moves and expires with its row. */
int ens_window_explored(const ens_window_t *w, size_t i);
/* Sets that flag of the i-th oldest row (nothing when i >= rows). */
void ens_window_set_explored(ens_window_t *w, size_t i, int explored);

/* The incremental count n_j(x, y); x may be ENS_SYM_ABSTAIN. */
uint32_t ens_window_count(const ens_window_t *w, size_t j, uint8_t x, uint8_t y);
/* Rows in which model j was asked (its column is not missing). */
uint32_t ens_window_present(const ens_window_t *w, size_t j);

/* Model j's mean cost per answer over the answers in the window that
 * carried a cost, NaN when none did; *n (when n is not NULL) gets their
 * number. Kept as rows enter and leave: O(1). */
double ens_window_cost(const ens_window_t *w, size_t j, uint32_t *n);

/* Model j's cost in the i-th oldest row: NaN when its answer there carried
 * none, when it has no answer there, or when i or j is out of range. */
double ens_window_cost_at(const ens_window_t *w, size_t i, size_t j);
/* Sets the cost of model j's answer in the i-th oldest row to c (NaN: none)
 * and moves the model's sum and count with it, as if the row had been
 * pushed with it (what a restore does for a row read back with its
 * costs). Returns 0, or ENS_EINVAL (no such row or model, no answer of j
 * in that row, or c negative). */
int ens_window_set_cost(ens_window_t *w, size_t i, size_t j, double c);

/* Copies the window, oldest row first, into a new immutable matrix: the
 * named models' columns in the order of ens_window_model_ids, the named
 * labels numbered densely in id order; each model's cost is its
 * ens_window_cost, or 1.0 (data.h's default) when no answer of it in the
 * window carried one; the rows' exploration flags in `explored` (NULL when
 * every row is explored). */
ens_data_t *ens_window_snapshot(const ens_window_t *w);

#endif
