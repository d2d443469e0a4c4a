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

/* Parses buf[0..len). On success stores a new matrix in *out and returns 0.
 * On failure returns ENS_EPARSE, ENS_EFULL (more than ENS_MAX_LABELS labels or
 * ENS_MAX_MODELS models), ENS_ETOOLONG, ENS_EDUP or ENS_EEMPTY and writes one
 * line (with the 1-based line number) to err. */
int ens_csv_parse(const char *buf, size_t len, ens_data_t **out, char *err, size_t errlen);

#endif
