/* sample.c - synthetic fleets from a Gaussian copula (see sample.h). */
#include "ensembled/sample.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/err.h"
#include "ensembled/rng.h"
#include "ensembled/xalloc.h"

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

double ens_norm_cdf(double x)
{
    return 0.5 * erfc(-x / M_SQRT2);
}

/* Acklam's rational approximation (relative error 1.15e-9), refined by one
 * Halley step on erfc, which brings it to machine precision. */
double ens_norm_quantile(double p)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    if (p <= 0)
        return -INFINITY;
    if (p >= 1)
        return INFINITY;
    double q, x;
    if (p < 0.02425) {
        q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p <= 1 - 0.02425) {
        q = p - 0.5;
        double r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    } else {
        q = sqrt(-2 * log(1 - p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    double e = ens_norm_cdf(x) - p;
    double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

static int check_opts(const ens_sample_opts_t *o, size_t *nmodels, char *err, size_t errlen)
{
    if (o->rows == 0 || o->nfamilies == 0) {
        say(err, errlen, "need at least one row and one family");
        return ENS_EINVAL;
    }
    if (o->classes < 2 || o->classes > ENS_MAX_LABELS) {
        say(err, errlen, "classes must be in 2..%d", ENS_MAX_LABELS);
        return ENS_EINVAL;
    }
    if (!(o->global_rho >= 0 && o->global_rho < 1)) {
        say(err, errlen, "global correlation must be in [0, 1)");
        return ENS_EINVAL;
    }
    *nmodels = 0;
    for (size_t f = 0; f < o->nfamilies; f++) {
        const ens_family_t *fa = &o->families[f];
        if (fa->count == 0 || !(fa->accuracy > 0 && fa->accuracy < 1) ||
            !(fa->rho >= o->global_rho && fa->rho < 1)) {
            say(err, errlen,
                "family '%s': need count >= 1, accuracy in (0, 1) and rho in [global, 1)",
                fa->name);
            return ENS_EINVAL;
        }
        *nmodels += fa->count;
    }
    if (*nmodels > ENS_MAX_MODELS) {
        say(err, errlen, "more than %d models", ENS_MAX_MODELS);
        return ENS_EINVAL;
    }
    return 0;
}

ens_data_t *ens_sample(const ens_sample_opts_t *o, char *err, size_t errlen)
{
    size_t m;
    if (check_opts(o, &m, err, errlen) < 0)
        return NULL;
    ens_data_t *d = ens_data_new(o->rows, m, o->classes);
    double *tau = ens_xcalloc(m, sizeof(double));
    double *load_f = ens_xcalloc(m, sizeof(double));
    double *load_e = ens_xcalloc(m, sizeof(double));
    size_t *fam = ens_xcalloc(m, sizeof(size_t));
    double *factor = ens_xcalloc(o->nfamilies, sizeof(double));
    char name[128];

    for (size_t f = 0, j = 0; f < o->nfamilies; f++) {
        const ens_family_t *fa = &o->families[f];
        for (size_t i = 0; i < fa->count; i++, j++) {
            tau[j] = ens_norm_quantile(1 - fa->accuracy);
            load_f[j] = sqrt(fa->rho - o->global_rho);
            load_e[j] = sqrt(1 - fa->rho);
            fam[j] = f;
            snprintf(name, sizeof(name), "%s-%zu", fa->name, i + 1);
            ens_data_set_model_name(d, j, name);
        }
    }
    for (size_t l = 0; l < o->classes; l++) {
        if (l < 26)
            snprintf(name, sizeof(name), "%c", (char)('A' + l));
        else
            snprintf(name, sizeof(name), "L%zu", l);
        ens_data_set_label_name(d, l, name);
    }

    ens_rng_t rng;
    ens_rng_seed(&rng, o->seed);
    double g_load = sqrt(o->global_rho);
    for (size_t r = 0; r < o->rows; r++) {
        uint8_t y = (uint8_t)ens_rng_below(&rng, o->classes);
        d->y[r] = y;
        double g = ens_rng_normal(&rng);
        for (size_t f = 0; f < o->nfamilies; f++)
            factor[f] = ens_rng_normal(&rng);
        for (size_t j = 0; j < m; j++) {
            double z = g_load * g + load_f[j] * factor[fam[j]] + load_e[j] * ens_rng_normal(&rng);
            uint8_t x = y;
            if (z <= tau[j]) {
                /* Uniform over the other classes: draw among classes - 1 and
                 * skip the truth. */
                x = (uint8_t)ens_rng_below(&rng, o->classes - 1);
                if (x >= y)
                    x++;
            }
            d->x[j * o->rows + r] = x;
        }
    }
    free(tau);
    free(load_f);
    free(load_e);
    free(fam);
    free(factor);
    return d;
}

int ens_families_parse(const char *spec, ens_family_t *out, size_t max, char *err, size_t errlen)
{
    size_t n = 0;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[256];
        if (len == 0 || len >= sizeof(item)) {
            say(err, errlen, "family %zu: empty or too long", n + 1);
            return ENS_EPARSE;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (n >= max) {
            say(err, errlen, "more than %zu families", max);
            return ENS_EPARSE;
        }
        ens_family_t *f = &out[n];
        char *colon = strchr(item, ':');
        char *rest = NULL;
        if (!colon || colon == item || (size_t)(colon - item) >= sizeof(f->name)) {
            say(err, errlen, "family '%s': expected name:count:accuracy:rho", item);
            return ENS_EPARSE;
        }
        memcpy(f->name, item, (size_t)(colon - item));
        f->name[colon - item] = '\0';
        unsigned long count = strtoul(colon + 1, &rest, 10);
        if (*rest != ':' || count == 0 || count > ENS_MAX_MODELS) {
            say(err, errlen, "family '%s': bad count", f->name);
            return ENS_EPARSE;
        }
        f->count = count;
        f->accuracy = strtod(rest + 1, &rest);
        if (*rest != ':' || !(f->accuracy > 0 && f->accuracy < 1)) {
            say(err, errlen, "family '%s': accuracy must be in (0, 1)", f->name);
            return ENS_EPARSE;
        }
        f->rho = strtod(rest + 1, &rest);
        if (*rest != '\0' || !(f->rho >= 0 && f->rho < 1)) {
            say(err, errlen, "family '%s': rho must be in [0, 1)", f->name);
            return ENS_EPARSE;
        }
        n++;
        p += len;
        if (*p == ',' && *++p == '\0') {
            say(err, errlen, "trailing comma after family %zu", n);
            return ENS_EPARSE;
        }
    }
    if (n == 0) {
        say(err, errlen, "no family given");
        return ENS_EPARSE;
    }
    return (int)n;
}
