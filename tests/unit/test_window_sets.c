/* test_window_sets.c - the window's per-row answer sets, against a recount.
 *
 * A push or an expiry visits only the columns of the models that answered
 * the row (window.c keeps a bit per model and row). Windows of up to 200
 * models (four 64-model groups, the last one partial) with random missing
 * patterns, from rows nobody answered to rows everyone did, wrap their
 * ring many times over while rows expire by count and by time (out of time
 * order, so rows move inside the ring) and models are released and
 * interned again. After every step each cell, each count, each model's
 * presence and each cost sum is compared with a brute-force recount of a
 * plain array of the rows that should be there, and rows copied out
 * (ens_window_copy_rows, in blocks of 8 x 8) with the same rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ensembled/data.h"
#include "ensembled/err.h"
#include "ensembled/window.h"
#include "testutil.h"

#define MAXM 200
#define MAXL 8
#define CAP 61

typedef struct {
    uint8_t y;
    uint8_t x[MAXM];
    double cost[MAXM]; /* -1: none */
    double ts;
} srow_t;

typedef struct {
    srow_t rows[CAP]; /* oldest first */
    size_t n;
    size_t nm, nl;
    int released[MAXM];
} shadow_t;

static size_t slot(uint8_t x)
{
    return x == ENS_SYM_ABSTAIN ? MAXL : x;
}

/* Every cell, count, presence and cost of w against a recount of s. */
static void check(const ens_window_t *w, const shadow_t *s)
{
    static uint32_t counts[MAXM][MAXL + 1][MAXL];
    uint32_t present[MAXM] = {0}, cost_n[MAXM] = {0};
    double cost_sum[MAXM] = {0};
    memset(counts, 0, sizeof(counts));
    assert_int_equal(ens_window_rows(w), s->n);
    assert_int_equal(ens_window_models(w), s->nm);
    for (size_t i = 0; i < s->n; i++) {
        const srow_t *r = &s->rows[i];
        assert_int_equal(ens_window_y(w, i), r->y);
        assert_true(ens_window_ts(w, i) == r->ts);
        for (size_t j = 0; j < s->nm; j++) {
            assert_int_equal(ens_window_x(w, i, j), r->x[j]);
            if (r->x[j] == ENS_SYM_MISSING)
                continue;
            counts[j][slot(r->x[j])][r->y]++;
            present[j]++;
            if (r->cost[j] >= 0) {
                cost_sum[j] += r->cost[j];
                cost_n[j]++;
            }
        }
    }
    for (size_t j = 0; j < s->nm; j++) {
        assert_int_equal(ens_window_present(w, j), present[j]);
        for (size_t y = 0; y < s->nl; y++) {
            assert_int_equal(ens_window_count(w, j, ENS_SYM_ABSTAIN, y), counts[j][MAXL][y]);
            for (size_t x = 0; x < s->nl; x++)
                assert_int_equal(ens_window_count(w, j, (uint8_t)x, y), counts[j][x][y]);
        }
        uint32_t n = 0;
        double mean = ens_window_cost(w, j, &n);
        assert_int_equal(n, cost_n[j]);
        if (n > 0)
            assert_near(mean, cost_sum[j] / n, 1e-9);
    }
}

/* The id a new name gets: the lowest released one, else the next. */
static size_t next_id(const shadow_t *s)
{
    for (size_t j = 0; j < s->nm; j++)
        if (s->released[j])
            return j;
    return s->nm;
}

/* ens_window_copy_rows against the cells, row by row, for random spans
 * (wrapping the ring or not) and widths past the models (read missing). */
static void check_copy_rows(tu_rng_t *r, const ens_window_t *w, const shadow_t *s)
{
    static uint8_t x[CAP * (MAXM + 13)];
    uint8_t y[CAP];
    double ts[CAP];
    for (int k = 0; k < 3 && s->n > 0; k++) {
        size_t from = tu_below(r, s->n), n = 1 + tu_below(r, s->n - from);
        size_t nm = s->nm + tu_below(r, 13);
        ens_window_copy_rows(w, from, n, nm, y, ts, x);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(y[i], s->rows[from + i].y);
            for (size_t j = 0; j < nm; j++)
                assert_int_equal(x[i * nm + j],
                                 j < s->nm ? s->rows[from + i].x[j] : ENS_SYM_MISSING);
        }
    }
}

static void add_model(ens_window_t *w, shadow_t *s, size_t k)
{
    char name[16];
    snprintf(name, sizeof(name), "m%zu", k);
    size_t want = next_id(s);
    assert_true(want < MAXM);
    assert_int_equal(ens_window_model(w, name, strlen(name)), (int)want);
    if (want == s->nm) {
        s->nm++;
        for (size_t i = 0; i < s->n; i++)
            s->rows[i].x[want] = ENS_SYM_MISSING;
    }
    s->released[want] = 0;
}

/* A row whose models answer with probability p (ids < nx only). */
static void push_row(tu_rng_t *r, ens_window_t *w, shadow_t *s, double p, double ts)
{
    srow_t row;
    row.y = (uint8_t)tu_below(r, s->nl);
    row.ts = ts;
    size_t nx = tu_below(r, 4) == 0 ? tu_below(r, s->nm + 1) : s->nm;
    for (size_t j = 0; j < MAXM; j++) {
        row.x[j] = ENS_SYM_MISSING;
        row.cost[j] = -1;
        if (j >= nx || s->released[j] || tu_uniform(r) >= p)
            continue;
        row.x[j] = tu_below(r, 10) == 0 ? ENS_SYM_ABSTAIN : (uint8_t)tu_below(r, s->nl);
        if (tu_below(r, 2) == 0)
            row.cost[j] = (double)tu_below(r, 1000) / 100.0;
    }
    assert_int_equal(ens_window_push_costs(w, row.y, row.x, row.cost, nx, ts), 0);
    if (s->n == CAP) {
        memmove(s->rows, s->rows + 1, (CAP - 1) * sizeof(srow_t));
        s->n--;
    }
    s->rows[s->n++] = row;
}

static void expire_before(ens_window_t *w, shadow_t *s, double ts_min)
{
    size_t k = 0, gone = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->rows[i].ts < ts_min)
            gone++;
        else
            s->rows[k++] = s->rows[i];
    }
    s->n = k;
    assert_int_equal(ens_window_expire_before(w, ts_min), gone);
}

static void release_one(tu_rng_t *r, ens_window_t *w, shadow_t *s)
{
    size_t j = tu_below(r, s->nm);
    if (s->released[j])
        return;
    int in_rows = 0;
    for (size_t i = 0; i < s->n; i++)
        in_rows |= s->rows[i].x[j] != ENS_SYM_MISSING;
    int rc = ens_window_release_model(w, (int)j);
    assert_int_equal(rc, in_rows ? ENS_EINVAL : 0);
    s->released[j] = !in_rows;
}

static void run(uint64_t seed, size_t steps)
{
    static const double density[] = {0, 1.0 / 64, 0.04, 0.3, 1.0};
    static shadow_t s;
    memset(&s, 0, sizeof(s));
    tu_rng_t r;
    tu_seed(&r, seed);
    ens_window_t *w = ens_window_new(CAP, ENS_MAX_MODELS);
    s.nl = 3;
    for (size_t l = 0; l < s.nl; l++) {
        char name[4] = {(char)('A' + l), 0};
        assert_int_equal(ens_window_label(w, name, 1), (int)l);
    }
    size_t names = 0;
    while (names < 130)
        add_model(w, &s, names++);
    double t = 0;
    for (size_t step = 0; step < steps; step++) {
        size_t op = tu_below(&r, 100);
        t += 1;
        if (op < 75) {
            double p = density[tu_below(&r, sizeof(density) / sizeof(density[0]))];
            /* Times out of order now and then: expiry by time then moves rows. */
            push_row(&r, w, &s, p, tu_below(&r, 8) == 0 ? t - (double)tu_below(&r, 40) : t);
        } else if (op < 83) {
            size_t k = tu_below(&r, 6);
            ens_window_expire(w, k);
            k = k < s.n ? k : s.n;
            memmove(s.rows, s.rows + k, (s.n - k) * sizeof(srow_t));
            s.n -= k;
        } else if (op < 91) {
            expire_before(w, &s, t - 20 - (double)tu_below(&r, 60));
        } else if (op < 95) {
            if (next_id(&s) < MAXM)
                add_model(w, &s, names++);
        } else if (op < 99) {
            release_one(&r, w, &s);
        } else if (s.nl < MAXL) {
            char name[4] = {(char)('A' + s.nl), 0};
            assert_int_equal(ens_window_label(w, name, 1), (int)s.nl);
            s.nl++;
        }
        check(w, &s);
        check_copy_rows(&r, w, &s);
    }
    ens_window_destroy(&w);
}

static void test_window_sets_match_recount_sparse_and_dense(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++)
        run(seed, 2500);
}

/* A full ring at 200 models of which 8 answer each row, as a flooded
 * daemon's windows are: every push expires a row answered by other models. */
static void test_window_sets_full_ring_few_answers(void **state)
{
    (void)state;
    static shadow_t s;
    memset(&s, 0, sizeof(s));
    tu_rng_t r;
    tu_seed(&r, 99);
    ens_window_t *w = ens_window_new(CAP, ENS_MAX_MODELS);
    s.nl = 2;
    assert_int_equal(ens_window_label(w, "A", 1), 0);
    assert_int_equal(ens_window_label(w, "B", 1), 1);
    for (size_t k = 0; k < MAXM; k++)
        add_model(w, &s, k);
    for (size_t i = 0; i < 20 * CAP; i++) {
        push_row(&r, w, &s, 8.0 / MAXM, (double)i);
        if (i % 7 == 0 || i >= 19 * CAP)
            check(w, &s);
    }
    assert_int_equal(ens_window_rows(w), CAP);
    ens_window_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_sets_match_recount_sparse_and_dense),
        cmocka_unit_test(test_window_sets_full_ring_few_answers),
    };
    return cmocka_run_group_tests_name("window_sets", tests, NULL, NULL);
}
