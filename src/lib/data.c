/* data.c - the immutable column-major matrix every computation reads. */
#include "ensembled/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/err.h"
#include "ensembled/xalloc.h"

ens_data_t *ens_data_new(size_t nrows, size_t nmodels, size_t nlabels)
{
    ens_data_t *d = ens_xcalloc(1, sizeof(*d));
    d->nrows = nrows;
    d->nmodels = nmodels;
    d->nlabels = nlabels;
    d->y = ens_xcalloc(nrows, 1);
    d->x = ens_xcalloc(nrows * nmodels + 1, 1);
    memset(d->x, ENS_SYM_MISSING, nrows * nmodels);
    d->model_names = ens_xcalloc(nmodels, sizeof(char *));
    d->label_names = ens_xcalloc(nlabels, sizeof(char *));
    d->cost = ens_xcalloc(nmodels, sizeof(double));
    char buf[32];
    for (size_t j = 0; j < nmodels; j++) {
        snprintf(buf, sizeof(buf), "m%zu", j);
        d->model_names[j] = ens_xstrndup(buf, strlen(buf));
        d->cost[j] = 1.0;
    }
    for (size_t l = 0; l < nlabels; l++) {
        snprintf(buf, sizeof(buf), "%zu", l);
        d->label_names[l] = ens_xstrndup(buf, strlen(buf));
    }
    return d;
}

void ens_data_destroy(ens_data_t **dp)
{
    if (!dp || !*dp)
        return;
    ens_data_t *d = *dp;
    for (size_t j = 0; j < d->nmodels; j++)
        free(d->model_names[j]);
    for (size_t l = 0; l < d->nlabels; l++)
        free(d->label_names[l]);
    free(d->model_names);
    free(d->label_names);
    free(d->cost);
    free(d->explored);
    free(d->x);
    free(d->y);
    free(d);
    *dp = NULL;
}

void ens_data_set_model_name(ens_data_t *d, size_t j, const char *name)
{
    free(d->model_names[j]);
    d->model_names[j] = ens_xstrndup(name, strlen(name));
}

void ens_data_set_label_name(ens_data_t *d, size_t l, const char *name)
{
    free(d->label_names[l]);
    d->label_names[l] = ens_xstrndup(name, strlen(name));
}

ens_data_t *ens_data_rows(const ens_data_t *d, const size_t *rows, size_t n)
{
    ens_data_t *s = ens_data_new(n, d->nmodels, d->nlabels);
    s->open = d->open;
    for (size_t i = 0; i < n; i++)
        s->y[i] = d->y[rows[i]];
    if (d->explored) {
        s->explored = ens_xcalloc(n + 1, 1);
        for (size_t i = 0; i < n; i++)
            s->explored[i] = d->explored[rows[i]];
    }
    for (size_t j = 0; j < d->nmodels; j++) {
        const uint8_t *src = ens_data_col(d, j);
        uint8_t *dst = s->x + j * n;
        for (size_t i = 0; i < n; i++)
            dst[i] = src[rows[i]];
        ens_data_set_model_name(s, j, d->model_names[j]);
        s->cost[j] = d->cost[j];
    }
    for (size_t l = 0; l < d->nlabels; l++)
        ens_data_set_label_name(s, l, d->label_names[l]);
    return s;
}

ens_data_t *ens_data_columns(const ens_data_t *d, const size_t *cols, size_t n)
{
    ens_data_t *s = ens_data_new(d->nrows, n, d->nlabels);
    s->open = d->open;
    memcpy(s->y, d->y, d->nrows);
    if (d->explored) {
        s->explored = ens_xcalloc(d->nrows + 1, 1);
        memcpy(s->explored, d->explored, d->nrows);
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(s->x + i * d->nrows, ens_data_col(d, cols[i]), d->nrows);
        ens_data_set_model_name(s, i, d->model_names[cols[i]]);
        s->cost[i] = d->cost[cols[i]];
    }
    for (size_t l = 0; l < d->nlabels; l++)
        ens_data_set_label_name(s, l, d->label_names[l]);
    return s;
}

ens_data_t *ens_data_rows_asked(const ens_data_t *d, const size_t *models, size_t k)
{
    size_t *rows = ens_xcalloc(d->nrows + 1, sizeof(size_t)), n = 0;
    for (size_t r = 0; r < d->nrows; r++) {
        size_t i = 0;
        while (i < k && ens_data_col(d, models[i])[r] != ENS_SYM_MISSING)
            i++;
        if (i == k)
            rows[n++] = r;
    }
    ens_data_t *s = ens_data_rows(d, rows, n);
    free(rows);
    return s;
}

void ens_data_set_explored(ens_data_t *d, size_t r, int explored)
{
    if (!d->explored) {
        if (explored)
            return;
        d->explored = ens_xcalloc(d->nrows + 1, 1);
        memset(d->explored, 1, d->nrows);
    }
    d->explored[r] = explored != 0;
}

ens_data_t *ens_data_rows_explored(const ens_data_t *d)
{
    if (!d->explored)
        return NULL;
    size_t *rows = ens_xcalloc(d->nrows + 1, sizeof(size_t)), n = 0;
    for (size_t r = 0; r < d->nrows; r++) {
        size_t j = 0;
        if (!d->explored[r])
            while (j < d->nmodels && ens_data_col(d, j)[r] != ENS_SYM_MISSING)
                j++;
        if (d->explored[r] || j == d->nmodels)
            rows[n++] = r;
    }
    ens_data_t *s = ens_data_rows(d, rows, n);
    free(rows);
    return s;
}

int ens_data_find_model(const ens_data_t *d, const char *name)
{
    for (size_t j = 0; j < d->nmodels; j++)
        if (strcmp(d->model_names[j], name) == 0)
            return (int)j;
    return ENS_ENOTFOUND;
}

double ens_data_accuracy(const ens_data_t *d, size_t j)
{
    const uint8_t *col = ens_data_col(d, j);
    size_t asked = 0, correct = 0;
    for (size_t r = 0; r < d->nrows; r++) {
        if (col[r] == ENS_SYM_MISSING)
            continue;
        asked++;
        correct += col[r] == d->y[r];
    }
    return asked ? (double)correct / (double)asked : 0.0;
}
