/* eval.c - held-out evaluation over random splits (see eval.h). */
#include "ensembled/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/choice.h"
#include "ensembled/err.h"
#include "ensembled/rng.h"
#include "ensembled/xalloc.h"

void ens_eval_split(size_t n, double test_frac, uint64_t seed, size_t split, size_t *perm,
                    size_t *n_train)
{
    ens_rng_t rng;
    /* One stream per split, independent of how many splits are asked for. */
    ens_rng_seed(&rng, seed * UINT64_C(0x9E3779B97F4A7C15) + split + 1);
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    ens_rng_shuffle(&rng, perm, n);
    size_t n_test = (size_t)llround(test_frac * (double)n);
    if (n_test < 1)
        n_test = 1;
    if (n_test >= n)
        n_test = n - 1;
    *n_train = n - n_test;
}

/* Accumulates mean and variance online (Welford). */
typedef struct {
    double mean, m2;
    size_t n;
} acc_t;

static void acc_add(acc_t *a, double v)
{
    a->n++;
    double delta = v - a->mean;
    a->mean += delta / (double)a->n;
    a->m2 += delta * (v - a->mean);
}

static ens_stat_t acc_stat(const acc_t *a)
{
    ens_stat_t s = {a->mean, a->n > 1 ? sqrt(a->m2 / (double)(a->n - 1)) : 0.0};
    return s;
}

int ens_evaluate(const ens_data_t *d, const ens_select_opts_t *o, size_t splits, double test_frac,
                 uint64_t seed, ens_eval_t *out)
{
    memset(out, 0, sizeof(*out));
    if (splits == 0 || d->nrows < 2 || !(test_frac > 0 && test_frac < 1))
        return ENS_EINVAL;
    size_t *perm = ens_xcalloc(d->nrows, sizeof(size_t));
    acc_t acc[ENS_COMB_COUNT + 1] = {{0}}, size = {0};
    int rc = 0;

    for (size_t s = 0; s < splits && rc == 0; s++) {
        size_t n_train;
        ens_eval_split(d->nrows, test_frac, seed, s, perm, &n_train);
        ens_data_t *train = ens_data_rows(d, perm, n_train);
        ens_data_t *test = ens_data_rows(d, perm + n_train, d->nrows - n_train);
        ens_selection_t sel;
        ens_select_opts_t so = *o;
        so.seed = o->seed + s;
        rc = ens_select(train, &so, &sel, NULL, 0);
        if (rc == 0) {
            for (size_t k = 0; k < ENS_COMB_COUNT; k++) {
                ens_combiner_t *c = ens_combiner_fit(train, sel.models, sel.n, k);
                acc_add(&acc[k], ens_combiner_accuracy(c, test));
                ens_combiner_destroy(&c);
            }
            ens_selection_t pub;
            ens_combiner_t *c = ens_choice_published(train, &so, &sel, &pub, NULL);
            acc_add(&acc[ENS_EVAL_PUBLISHED], ens_combiner_accuracy(c, test));
            ens_combiner_destroy(&c);
            acc_add(&size, (double)pub.n);
        }
        ens_data_destroy(&train);
        ens_data_destroy(&test);
    }
    free(perm);
    out->splits = splits;
    for (size_t k = 0; k <= ENS_COMB_COUNT; k++)
        out->acc[k] = acc_stat(&acc[k]);
    out->size = acc_stat(&size);
    return rc;
}
