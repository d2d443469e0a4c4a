/* testutil.h - helpers shared by the unit tests.
 *
 * Everything here is independent of the library under test: the generator is
 * a plain splitmix64 (not the library's xoshiro), and the file reader is
 * stdio. Functions are static inline so each test file takes only what it
 * uses without -Wunused-function.
 */
#ifndef ENSEMBLED_TESTUTIL_H
#define ENSEMBLED_TESTUTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ensembled/csv.h"
#include "ensembled/data.h"

#ifndef ENS_DATA_DIR
#error "ENS_DATA_DIR must point at the real data directory (tests/data)"
#endif

/* |a - b| <= tol for doubles (cmocka 1.1.5 has no assert_double_equal).
 * Needs <cmocka.h> included before use; NaN fails. */
#define assert_near(a, b, tol)                                                                     \
    do {                                                                                           \
        double tu_a_ = (a), tu_b_ = (b);                                                           \
        if (!(fabs(tu_a_ - tu_b_) <= (tol)))                                                       \
            fail_msg("%s = %.15g, %s = %.15g, |diff| %.3g > %g", #a, tu_a_, #b, tu_b_,             \
                     fabs(tu_a_ - tu_b_), (double)(tol));                                          \
    } while (0)

typedef struct {
    uint64_t s;
} tu_rng_t;

static inline void tu_seed(tu_rng_t *r, uint64_t seed)
{
    r->s = seed;
}

static inline uint64_t tu_next(tu_rng_t *r)
{
    uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in 0..n-1 (n > 0); the tiny modulo bias is irrelevant here. */
static inline size_t tu_below(tu_rng_t *r, size_t n)
{
    return (size_t)(tu_next(r) % n);
}

/* Uniform in [0, 1). */
static inline double tu_uniform(tu_rng_t *r)
{
    return (double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Reads a whole file; returns a malloc'd buffer (NUL-terminated) or NULL. */
static inline char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Plug-in I(Y; X_t) in bits, by brute force over the rows where every model
 * of t is present: I = (1/N) sum_rows log2(N n(x,y) / (n(x) n(y))), each
 * count found by comparing the row with every other row. O(N^2 k).
 * Stores the rows used in *rows if not NULL. */
static inline double tu_brute_plugin(const ens_data_t *d, const size_t *t, size_t k, size_t *rows)
{
    size_t n = d->nrows, nl = 0;
    size_t *live = malloc((n ? n : 1) * sizeof(size_t));
    for (size_t r = 0; r < n; r++) {
        int ok = 1;
        for (size_t i = 0; i < k; i++)
            ok &= ens_data_col(d, t[i])[r] != ENS_SYM_MISSING;
        if (ok)
            live[nl++] = r;
    }
    double s = 0;
    for (size_t a = 0; a < nl; a++) {
        double nxy = 0, nx = 0, ny = 0;
        for (size_t b = 0; b < nl; b++) {
            int same_x = 1;
            for (size_t i = 0; i < k && same_x; i++) {
                const uint8_t *col = ens_data_col(d, t[i]);
                same_x = col[live[a]] == col[live[b]];
            }
            int same_y = d->y[live[a]] == d->y[live[b]];
            nx += same_x;
            ny += same_y;
            nxy += same_x && same_y;
        }
        s += log2((double)nl * nxy / (nx * ny));
    }
    free(live);
    if (rows)
        *rows = nl;
    return nl ? s / (double)nl : 0.0;
}

#ifdef ENS_DATA_DIR
/* Loads ENS_DATA_DIR/name, a real data set of tests/data; fails the
 * test with the parser's message if it cannot. Needs <cmocka.h> included
 * before. */
static inline ens_data_t *tu_load_real(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", ENS_DATA_DIR, name);
    size_t len = 0;
    char *buf = tu_read_file(path, &len);
    if (!buf)
        print_message("cannot read %s\n", path);
    assert_non_null(buf);
    ens_data_t *d = NULL;
    char err[256] = "";
    int rc = ens_csv_parse(buf, len, &d, err, sizeof(err));
    free(buf);
    if (rc)
        print_message("%s: %s\n", name, err);
    assert_int_equal(rc, 0);
    return d;
}
#endif

#endif
