/* data.h - an immutable, contiguous, column-major matrix of labeled rows.
 *
 * This is what every estimate, selection and evaluation reads: the CSV loader
 * and the sampler produce one, and a live window is copied into one (a
 * snapshot) before a selection runs, so that computations never see a
 * half-updated window.
 *
 * Symbols: label ids 0 .. nlabels-1 (nlabels <= ENS_MAX_LABELS), plus two
 * reserved bytes in prediction columns: ENS_SYM_ABSTAIN (the model answered
 * with nothing usable: a symbol of its own for information and tables, never a
 * vote) and ENS_SYM_MISSING (the model was not asked: the row is left out of
 * every estimate over a set that holds the model). The true label y is never
 * missing or abstained.
 */
#ifndef ENSEMBLED_DATA_H
#define ENSEMBLED_DATA_H

#include <stddef.h>
#include <stdint.h>

#define ENS_MAX_LABELS 254
#define ENS_SYM_ABSTAIN 0xFE
#define ENS_SYM_MISSING 0xFF
#define ENS_MAX_MODELS 1024
#define ENS_MAX_NAME 256

typedef struct ens_data_s {
    size_t nrows;       /* rows (queries with a known label) */
    size_t nmodels;     /* prediction columns */
    size_t nlabels;     /* label alphabet size */
    uint8_t *y;         /* nrows true labels */
    uint8_t *x;         /* nmodels * nrows predictions, column j at x + j * nrows */
    char **model_names; /* nmodels owned strings */
    char **label_names; /* nlabels owned strings */
    double *cost;       /* nmodels costs per query, default 1.0 */
    int open;           /* 1: labels are agreement classes (open.h), so that a
                         * combiner must not tie a decision to a class id */
    uint8_t *explored;  /* nrows flags, or NULL: every row explored. 1: an
                         * exploration query (routers asked every model) or
                         * not known; 0: an ordinary query, on which routers
                         * asked only the ensemble published then, so that a
                         * model missing there was left out by design, not
                         * by its own failing (docs/exploration.md) */
} ens_data_t;

/* Allocates a matrix with every prediction ENS_SYM_MISSING, every y 0, every
 * cost 1.0 and names "m<j>" / "<l>". Aborts on exhaustion. */
ens_data_t *ens_data_new(size_t nrows, size_t nmodels, size_t nlabels);
void ens_data_destroy(ens_data_t **dp);

/* Column j (borrowed). */
static inline const uint8_t *ens_data_col(const ens_data_t *d, size_t j)
{
    return d->x + j * d->nrows;
}

/* Sets a model or label name (copied). */
void ens_data_set_model_name(ens_data_t *d, size_t j, const char *name);
void ens_data_set_label_name(ens_data_t *d, size_t l, const char *name);

/* Returns a new matrix holding rows[0..n) of d in that order (names copied). */
ens_data_t *ens_data_rows(const ens_data_t *d, const size_t *rows, size_t n);

/* Returns a new matrix holding columns cols[0..n) of d in that order, every
 * row (names and costs copied). */
ens_data_t *ens_data_columns(const ens_data_t *d, const size_t *cols, size_t n);

/* Returns a new matrix holding the rows of d where every model of
 * models[0..k) was asked (all rows when k is 0), in order. */
ens_data_t *ens_data_rows_asked(const ens_data_t *d, const size_t *models, size_t k);

/* Whether row r counts as explored (always, when d->explored is NULL). */
static inline int ens_data_explored(const ens_data_t *d, size_t r)
{
    return !d->explored || d->explored[r];
}

/* Sets row r's flag, allocating d->explored (every row explored) on the
 * first ordinary row. */
void ens_data_set_explored(ens_data_t *d, size_t r, int explored);

/* Returns a new matrix holding the rows of d that are explored or on which
 * every model was asked, in order: the rows on which no model is missing
 * by design. NULL when d->explored is NULL (every row is such a row). */
ens_data_t *ens_data_rows_explored(const ens_data_t *d);

/* Looks a model up by name: its index, or ENS_ENOTFOUND. */
int ens_data_find_model(const ens_data_t *d, const char *name);

/* Per-model accuracy: correct answers over rows where the model was asked
 * (abstentions count as wrong). 0 when the model was never asked. */
double ens_data_accuracy(const ens_data_t *d, size_t j);

#endif
