/* csv.h - the wide prediction CSV: item,label,<model_1>,...,<model_M>.
 *
 * Cells hold label strings. An empty cell means the model was not asked
 * (ENS_SYM_MISSING); "?" means it answered with nothing usable
 * (ENS_SYM_ABSTAIN). Labels are interned in order of first appearance, true
 * labels and answers sharing one alphabet. Parsing is pure: the caller reads
 * the file.
 */
#ifndef ENSEMBLED_CSV_H
#define ENSEMBLED_CSV_H

#include <stddef.h>

#include "ensembled/data.h"
#include "ensembled/open.h"

/* Parses buf[0..len). On success stores a new matrix in *out and returns 0.
 * On failure returns ENS_EPARSE, ENS_EFULL (more than ENS_MAX_LABELS labels or
 * ENS_MAX_MODELS models), ENS_ETOOLONG, ENS_EDUP or ENS_EEMPTY and writes one
 * line (with the 1-based line number) to err. */
int ens_csv_parse(const char *buf, size_t len, ens_data_t **out, char *err, size_t errlen);

/* The same file as an open-answer task (open.h): cells are answers compared
 * under norm, any number of distinct ones. The matrix holds each row's
 * agreement classes, labels "c0", "c1", ... and "none" last (the truth no
 * model gave), with d->open set. Errors as above, but no label limit. */
int ens_csv_parse_open(const char *buf, size_t len, ens_norm_t norm, ens_data_t **out, char *err,
                       size_t errlen);

#endif
