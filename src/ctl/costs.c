/* costs.c - select --costs FILE: per-model costs for an offline selection.
 *
 * The file is a CSV of `model,cost` lines (a first line `model,cost` is a
 * header; blank lines are skipped). A model of the data left out of the
 * file keeps the cost 1.0, as a model none of whose answers carried a cost
 * does in the daemon. Names are matched exactly, as in the data CSV's
 * header; a name the data does not hold, a model given twice, or a cost that
 * is not a finite number >= 0 is an error naming the file and line: a typo
 * would otherwise change the selection silently.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* Strips the line end and surrounding blanks of s in place; returns s. */
static char *trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && strchr(" \t\r\n", s[n - 1]))
        s[--n] = '\0';
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* One line "model,cost" of the file: 0, or -1 with the error printed. */
static int take_line(const char *path, size_t lineno, char *line, ens_data_t *d, double *given)
{
    char *comma = strchr(line, ',');
    if (!comma) {
        ctl_error("%s:%zu: not \"model,cost\"", path, lineno);
        return -1;
    }
    *comma = '\0';
    char *name = trim(line), *num = trim(comma + 1), *end = NULL;
    if (lineno == 1 && strcmp(name, "model") == 0 && strcmp(num, "cost") == 0)
        return 0;
    int m = ens_data_find_model(d, name);
    if (m < 0) {
        ctl_error("%s:%zu: model '%s' is not a column of the data", path, lineno, name);
        return -1;
    }
    if (!isnan(given[m])) {
        ctl_error("%s:%zu: model '%s' given twice", path, lineno, name);
        return -1;
    }
    errno = 0;
    double c = strtod(num, &end);
    if (*num == '\0' || *end != '\0' || errno != 0 || !isfinite(c) || c < 0) {
        ctl_error("%s:%zu: cost '%s' is not a finite number >= 0", path, lineno, num);
        return -1;
    }
    given[m] = c;
    return 0;
}

int ctl_load_costs(const char *path, ens_data_t *d, double *given)
{
    for (size_t j = 0; j < d->nmodels; j++)
        given[j] = NAN;
    FILE *f = fopen(path, "r");
    if (!f) {
        ctl_error("%s: %s", path, strerror(errno));
        return -1;
    }
    char buf[2 * ENS_MAX_NAME + 64];
    size_t lineno = 0;
    int rc = 0;
    while (rc == 0 && fgets(buf, sizeof(buf), f)) {
        lineno++;
        if (!strchr(buf, '\n') && !feof(f)) {
            ctl_error("%s:%zu: line too long", path, lineno);
            rc = -1;
        } else if (*trim(buf) != '\0') {
            rc = take_line(path, lineno, buf, d, given);
        }
    }
    if (rc == 0 && ferror(f)) {
        ctl_error("%s: read error", path);
        rc = -1;
    }
    fclose(f);
    for (size_t j = 0; rc == 0 && j < d->nmodels; j++)
        if (!isnan(given[j]))
            d->cost[j] = given[j];
    return rc;
}
