/* mi.c - information estimates over a set of models (see mi.h). */
#include "ensembled/mi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/err.h"
#include "ensembled/xalloc.h"
#include "part.h"

static const char *const est_names[] = {
    [ENS_EST_HELDOUT] = "heldout",
    [ENS_EST_PLUGIN] = "plugin",
    [ENS_EST_MILLER_MADOW] = "miller-madow",
};

int ens_estimator_parse(const char *name, ens_estimator_t *out)
{
    for (size_t i = 0; i < sizeof(est_names) / sizeof(est_names[0]); i++) {
        if (strcmp(name, est_names[i]) == 0) {
            *out = (ens_estimator_t)i;
            return 0;
        }
    }
    return ENS_EINVAL;
}

const char *ens_estimator_name(ens_estimator_t est)
{
    return (size_t)est < sizeof(est_names) / sizeof(est_names[0]) ? est_names[est] : "?";
}

double ens_entropy_counts(const uint32_t *counts, size_t n)
{
    double total = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        total += counts[i];
        if (counts[i])
            s += counts[i] * log2((double)counts[i]);
    }
    return total > 0 ? log2(total) - s / total : 0.0;
}

static int check_set(const ens_data_t *d, const size_t *t, size_t k)
{
    if (k > ENS_PART_MAX)
        return ENS_EINVAL;
    for (size_t i = 0; i < k; i++) {
        if (t[i] >= d->nmodels)
            return ENS_EINVAL;
        for (size_t h = 0; h < i; h++)
            if (t[h] == t[i])
                return ENS_EINVAL;
    }
    return 0;
}

int ens_mi(const ens_data_t *d, const size_t *t, size_t k, ens_estimator_t est, double *bits,
           size_t *rows)
{
    int rc = check_set(d, t, k);
    if (rc < 0)
        return rc;
    if (k == 0) {
        *bits = 0;
        if (rows)
            *rows = d->nrows;
        return 0;
    }
    ens_part_t *p = ens__part_new(d, est);
    for (size_t i = 0; i + 1 < k; i++)
        ens__part_add(p, t[i]);
    size_t used = 0;
    *bits = ens__part_score(p, t[k - 1], &used);
    ens__part_destroy(&p);
    if (rows)
        *rows = used;
    return used ? 0 : ENS_EEMPTY;
}

int ens_entropy_y(const ens_data_t *d, const size_t *t, size_t k, double *bits)
{
    int rc = check_set(d, t, k);
    if (rc < 0)
        return rc;
    uint32_t counts[256] = {0};
    for (size_t r = 0; r < d->nrows; r++) {
        size_t i = 0;
        while (i < k && ens_data_col(d, t[i])[r] != ENS_SYM_MISSING)
            i++;
        if (i == k)
            counts[d->y[r]]++;
    }
    *bits = ens_entropy_counts(counts, 256);
    return 0;
}

int ens_cmi(const ens_data_t *d, size_t j, const size_t *t, size_t k, ens_estimator_t est,
            double *bits)
{
    size_t set[ENS_PART_MAX + 1];
    int rc = check_set(d, t, k);
    if (rc < 0 || k + 1 > ENS_PART_MAX || j >= d->nmodels)
        return rc < 0 ? rc : ENS_EINVAL;
    memcpy(set, t, k * sizeof(size_t));
    set[k] = j;
    rc = check_set(d, set, k + 1);
    if (rc < 0)
        return rc;

    /* Both estimates must use the same rows: those where T and j were asked.
     * Restrict the data to them first. */
    size_t n = 0;
    size_t *keep = ens_xcalloc(d->nrows, sizeof(size_t));
    for (size_t r = 0; r < d->nrows; r++) {
        size_t i = 0;
        while (i <= k && ens_data_col(d, set[i])[r] != ENS_SYM_MISSING)
            i++;
        if (i == k + 1)
            keep[n++] = r;
    }
    if (n == 0) {
        free(keep);
        return ENS_EEMPTY;
    }
    ens_data_t *sub = ens_data_rows(d, keep, n);
    free(keep);
    double with = 0, without = 0;
    rc = ens_mi(sub, set, k + 1, est, &with, NULL);
    if (rc == 0)
        rc = ens_mi(sub, t, k, est, &without, NULL);
    ens_data_destroy(&sub);
    *bits = with - without;
    return rc;
}
