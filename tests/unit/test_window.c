/* test_window.c - the sliding window against a shadow model: a plain array
 * of the rows pushed, expired oldest-first. Every count, presence figure,
 * row and snapshot is compared with recounts from that shadow. */
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

#define MAXM 8
#define MAXL 6

typedef struct {
    uint8_t y;
    uint8_t x[MAXM]; /* MISSING beyond the models pushed */
    double ts;
} srow_t;

typedef struct {
    srow_t *rows; /* oldest first */
    size_t n;
    size_t cap; /* window capacity */
} shadow_t;

static void shadow_push(shadow_t *s, const srow_t *r)
{
    if (s->n == s->cap) {
        memmove(s->rows, s->rows + 1, (s->n - 1) * sizeof(srow_t));
        s->n--;
    }
    s->rows[s->n++] = *r;
}

static void shadow_expire(shadow_t *s, size_t k)
{
    if (k > s->n)
        k = s->n;
    memmove(s->rows, s->rows + k, (s->n - k) * sizeof(srow_t));
    s->n -= k;
}

static size_t sym_slot(uint8_t x)
{
    return x == ENS_SYM_ABSTAIN ? MAXL : x;
}

/* Compares every observable of w with the shadow. */
static void check_window(const ens_window_t *w, const shadow_t *s, size_t nm, size_t nl)
{
    assert_int_equal(ens_window_rows(w), s->n);
    assert_int_equal(ens_window_models(w), nm);
    assert_int_equal(ens_window_labels(w), nl);
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(ens_window_y(w, i), s->rows[i].y);
        for (size_t j = 0; j < nm; j++)
            assert_int_equal(ens_window_x(w, i, j), s->rows[i].x[j]);
    }
    for (size_t j = 0; j < nm; j++) {
        uint32_t from_w[MAXL + 1][MAXL] = {{0}}, from_s[MAXL + 1][MAXL] = {{0}};
        uint32_t pres_w = 0, pres_s = 0;
        for (size_t i = 0; i < s->n; i++) {
            uint8_t xw = ens_window_x(w, i, j), yw = ens_window_y(w, i);
            if (xw != ENS_SYM_MISSING) {
                from_w[sym_slot(xw)][yw]++;
                pres_w++;
            }
            uint8_t xs = s->rows[i].x[j];
            if (xs != ENS_SYM_MISSING) {
                from_s[sym_slot(xs)][s->rows[i].y]++;
                pres_s++;
            }
        }
        assert_int_equal(ens_window_present(w, j), pres_w);
        assert_int_equal(ens_window_present(w, j), pres_s);
        for (size_t y = 0; y < nl; y++) {
            for (size_t x = 0; x < nl; x++) {
                assert_int_equal(ens_window_count(w, j, (uint8_t)x, (uint8_t)y), from_w[x][y]);
                assert_int_equal(ens_window_count(w, j, (uint8_t)x, (uint8_t)y), from_s[x][y]);
            }
            assert_int_equal(ens_window_count(w, j, ENS_SYM_ABSTAIN, (uint8_t)y), from_s[MAXL][y]);
        }
    }
}

static void check_snapshot(const ens_window_t *w, const shadow_t *s, size_t nm, size_t nl)
{
    ens_data_t *d = ens_window_snapshot(w);
    assert_non_null(d);
    assert_int_equal(d->nrows, s->n);
    assert_int_equal(d->nmodels, nm);
    assert_int_equal(d->nlabels, nl);
    for (size_t i = 0; i < s->n; i++) {
        assert_int_equal(d->y[i], s->rows[i].y);
        for (size_t j = 0; j < nm; j++)
            assert_int_equal(ens_data_col(d, j)[i], s->rows[i].x[j]);
    }
    char buf[32];
    for (size_t j = 0; j < nm; j++) {
        snprintf(buf, sizeof(buf), "model-%zu", j);
        assert_string_equal(d->model_names[j], buf);
    }
    for (size_t l = 0; l < nl; l++) {
        snprintf(buf, sizeof(buf), "label-%zu", l);
        assert_string_equal(d->label_names[l], buf);
    }
    ens_data_destroy(&d);
}

static int add_model(ens_window_t *w, size_t j)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "model-%zu", j);
    return ens_window_model(w, buf, strlen(buf));
}

static int add_label(ens_window_t *w, size_t l)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "label-%zu", l);
    return ens_window_label(w, buf, strlen(buf));
}

static void run_random(uint64_t seed, size_t capacity, size_t ops)
{
    tu_rng_t r;
    tu_seed(&r, seed);
    ens_window_t *w = ens_window_new(capacity, MAXM);
    assert_non_null(w);
    assert_int_equal(ens_window_capacity(w), capacity);
    shadow_t s = {calloc(capacity, sizeof(srow_t)), 0, capacity};
    size_t nm = 0, nl = 0;
    assert_int_equal(add_model(w, nm), 0), nm++;
    assert_int_equal(add_model(w, nm), 1), nm++;
    assert_int_equal(add_label(w, nl), 0), nl++;
    assert_int_equal(add_label(w, nl), 1), nl++;
    double ts = 0;
    size_t pushes = 0, bad = 0, expired = 0;

    for (size_t op = 1; op <= ops; op++) {
        size_t u = tu_below(&r, 1000);
        if (u < 8 && nm < MAXM) {
            /* A new model: its column reads missing for the rows present. */
            assert_int_equal(add_model(w, nm), (int)nm);
            for (size_t i = 0; i < s.n; i++)
                s.rows[i].x[nm] = ENS_SYM_MISSING;
            nm++;
        } else if (u < 14 && nl < MAXL) {
            assert_int_equal(add_label(w, nl), (int)nl);
            nl++;
        } else if (u < 900) {
            srow_t row;
            memset(row.x, ENS_SYM_MISSING, sizeof(row.x));
            row.y = (uint8_t)tu_below(&r, nl);
            size_t nx = tu_below(&r, nm + 1);
            for (size_t j = 0; j < nx; j++) {
                size_t v = tu_below(&r, 10);
                row.x[j] = v == 0   ? ENS_SYM_ABSTAIN
                           : v == 1 ? ENS_SYM_MISSING
                           : v < 5  ? row.y
                                    : (uint8_t)tu_below(&r, nl);
            }
            ts += 1.0;
            row.ts = ts;
            assert_int_equal(ens_window_push(w, row.y, row.x, nx, ts), 0);
            shadow_push(&s, &row);
            pushes++;
        } else if (u < 940) {
            /* A push with an unknown label (as y or as an answer) is refused
             * and leaves the rows unchanged. */
            uint8_t x[MAXM];
            memset(x, 0, sizeof(x));
            int rc;
            if (tu_below(&r, 2) == 0) {
                rc = ens_window_push(w, (uint8_t)nl, x, nm, ts + 1);
            } else {
                x[tu_below(&r, nm)] = (uint8_t)(nl + tu_below(&r, 3));
                rc = ens_window_push(w, 0, x, nm, ts + 1);
            }
            assert_int_equal(rc, ENS_EINVAL);
            bad++;
            check_window(w, &s, nm, nl);
        } else if (u < 970) {
            size_t k = tu_below(&r, capacity / 4 + 2);
            ens_window_expire(w, k);
            shadow_expire(&s, k);
            expired += k;
        } else {
            /* Expire everything older than a time inside the window. */
            double cut = s.n ? s.rows[0].ts + (double)tu_below(&r, s.n + 2) : ts;
            size_t want = 0;
            while (want < s.n && s.rows[want].ts < cut)
                want++;
            assert_int_equal(ens_window_expire_before(w, cut), want);
            shadow_expire(&s, want);
        }
        if (op % 53 == 0)
            check_window(w, &s, nm, nl);
        if (op % 401 == 0)
            check_snapshot(w, &s, nm, nl);
    }
    check_window(w, &s, nm, nl);
    check_snapshot(w, &s, nm, nl);
    /* The run must really have wrapped the ring and grown the alphabets. */
    assert_true(pushes > 3 * capacity);
    assert_true(bad > 0);
    if (ops >= 4000) {
        assert_int_equal(nm, MAXM);
        assert_int_equal(nl, MAXL);
    }
    (void)expired;
    ens_window_expire(w, SIZE_MAX);
    assert_int_equal(ens_window_rows(w), 0);
    for (size_t j = 0; j < nm; j++)
        assert_int_equal(ens_window_present(w, j), 0);
    free(s.rows);
    ens_window_destroy(&w);
    assert_null(w);
}

static void test_window_random_vs_shadow(void **state)
{
    (void)state;
    run_random(1, 97, 6000);
    run_random(2, 16, 4000);
    run_random(3, 1, 800);
    run_random(4, 1000, 8000);
}

/* Removes from the shadow every row older than cut, wherever it sits (the
 * reference for expiry by age): returns how many. */
static size_t shadow_expire_age(shadow_t *s, double cut)
{
    size_t k = 0, n0 = s->n;
    for (size_t i = 0; i < s->n; i++)
        if (s->rows[i].ts >= cut)
            s->rows[k++] = s->rows[i];
    s->n = k;
    return n0 - k;
}

/* Rows out of time order (a label dated ahead, then rows dated normally;
 * labels dated in the past): expiry by age removes exactly the rows older
 * than the cut, counted by brute force over the shadow, however they sit
 * in the ring. */
static void run_by_age(uint64_t seed, size_t capacity, size_t ops)
{
    tu_rng_t r;
    tu_seed(&r, seed);
    ens_window_t *w = ens_window_new(capacity, 3);
    shadow_t s = {calloc(capacity, sizeof(srow_t)), 0, capacity};
    for (size_t j = 0; j < 3; j++)
        assert_int_equal(add_model(w, j), (int)j);
    for (size_t l = 0; l < 3; l++)
        assert_int_equal(add_label(w, l), (int)l);
    double now = 1000;
    size_t out_of_order = 0, middle = 0;
    for (size_t op = 1; op <= ops; op++) {
        now += 1.0;
        srow_t row;
        memset(row.x, ENS_SYM_MISSING, sizeof(row.x));
        row.y = (uint8_t)tu_below(&r, 3);
        for (size_t j = 0; j < 3; j++)
            row.x[j] = (uint8_t)tu_below(&r, 3);
        size_t u = tu_below(&r, 100);
        /* Mostly in order; some ahead (up to 300 s), some behind. */
        row.ts = u < 5 ? now + 300 : u < 15 ? now - (double)tu_below(&r, 200) : now;
        out_of_order += u < 15;
        assert_int_equal(ens_window_push(w, row.y, row.x, 3, row.ts), 0);
        shadow_push(&s, &row);
        if (tu_below(&r, 4) == 0) {
            double cut = now - 60 - (double)tu_below(&r, 40);
            size_t head_only = 0;
            while (head_only < s.n && s.rows[head_only].ts < cut)
                head_only++;
            size_t want = shadow_expire_age(&s, cut);
            middle += want > head_only;
            assert_int_equal(ens_window_expire_before(w, cut), want);
            for (size_t i = 0; i < ens_window_rows(w); i++) {
                assert_true(ens_window_ts(w, i) >= cut);
                assert_true(ens_window_ts(w, i) == s.rows[i].ts);
                if (i > 0)
                    assert_true(ens_window_serial(w, i) > ens_window_serial(w, i - 1));
            }
        }
        if (op % 97 == 0)
            check_window(w, &s, 3, 3);
    }
    check_window(w, &s, 3, 3);
    /* copy_rows, over tiles of rows and the ring's wrap, agrees row by row
     * (a fourth model, never interned, reads missing). */
    size_t n = ens_window_rows(w), from = n / 3;
    uint8_t *y = malloc(n + 1), *x = malloc(4 * n + 1);
    double *ts = malloc(sizeof(double) * (n + 1));
    ens_window_copy_rows(w, from, n - from, 4, y, ts, x);
    for (size_t i = from; i < n; i++) {
        assert_int_equal(y[i - from], s.rows[i].y);
        assert_true(ts[i - from] == s.rows[i].ts);
        for (size_t j = 0; j < 3; j++)
            assert_int_equal(x[(i - from) * 4 + j], s.rows[i].x[j]);
        assert_int_equal(x[(i - from) * 4 + 3], ENS_SYM_MISSING);
    }
    free(y);
    free(x);
    free(ts);
    /* The run must have exercised rows expired behind a newer one. */
    assert_true(out_of_order > 0);
    assert_true(middle > 0);
    free(s.rows);
    ens_window_destroy(&w);
}

static void test_window_expire_by_age_out_of_order(void **state)
{
    (void)state;
    run_by_age(11, 500, 5000);
    run_by_age(12, 37, 3000);
    run_by_age(13, 4000, 6000);
}

/* The exploration flag moves with its row: through the ring's wrap, an
 * out-of-order expiry that compacts the rows, and into a snapshot (NULL
 * there when every row is explored). Reference: a row's flag is a function
 * of its time, set as it was pushed. */
static int flag_of(double ts)
{
    return ((int)ts % 3) != 0;
}

static void test_window_explored_flags(void **state)
{
    (void)state;
    ens_window_t *w = ens_window_new(16, 1);
    assert_int_equal(ens_window_model(w, "a", 1), 0);
    assert_int_equal(ens_window_label(w, "Y", 1), 0);
    uint8_t x = 0;
    for (int i = 0; i < 40; i++) {
        /* Times out of order: every fifth row is dated late. */
        double ts = i % 5 == 0 ? 1000 + i : 100 + i;
        assert_int_equal(ens_window_push(w, 0, &x, 1, ts), 0);
        assert_int_equal(ens_window_explored(w, ens_window_rows(w) - 1), 1);
        ens_window_set_explored(w, ens_window_rows(w) - 1, flag_of(ts));
    }
    ens_window_set_explored(w, 99, 0); /* past the rows: nothing */
    assert_int_equal(ens_window_expire_before(w, 130), 5);
    assert_int_equal(ens_window_rows(w), 11);
    for (size_t i = 0; i < ens_window_rows(w); i++)
        assert_int_equal(ens_window_explored(w, i), flag_of(ens_window_ts(w, i)));
    ens_data_t *d = ens_window_snapshot(w);
    assert_non_null(d->explored);
    for (size_t i = 0; i < d->nrows; i++)
        assert_int_equal(d->explored[i], flag_of(ens_window_ts(w, i)));
    ens_data_destroy(&d);
    for (size_t i = 0; i < ens_window_rows(w); i++)
        ens_window_set_explored(w, i, 1);
    d = ens_window_snapshot(w);
    assert_null(d->explored);
    ens_data_destroy(&d);
    ens_window_destroy(&w);
}

/* A row dated 5 minutes ahead at the oldest end does not keep the rows
 * behind it alive past the cut. */
static void test_window_future_row_at_head(void **state)
{
    (void)state;
    ens_window_t *w = ens_window_new(100, 1);
    assert_int_equal(ens_window_model(w, "a", 1), 0);
    assert_int_equal(ens_window_label(w, "Y", 1), 0);
    uint8_t x = 0;
    assert_int_equal(ens_window_push(w, 0, &x, 1, 400), 0);
    for (int i = 1; i <= 50; i++)
        assert_int_equal(ens_window_push(w, 0, &x, 1, 100 + i), 0);
    assert_int_equal(ens_window_expire_before(w, 141), 40);
    assert_int_equal(ens_window_rows(w), 11);
    assert_true(ens_window_ts(w, 0) == 400);
    assert_true(ens_window_ts(w, 1) == 141);
    assert_int_equal(ens_window_serial(w, 1), 42);
    assert_int_equal(ens_window_count(w, 0, 0, 0), 11);
    assert_int_equal(ens_window_present(w, 0), 11);
    assert_int_equal(ens_window_find_serial(w, 2), 1);
    assert_int_equal(ens_window_find_serial(w, 42), 1);
    assert_int_equal(ens_window_find_serial(w, 52), 11);
    ens_window_destroy(&w);
}

/* copy_rows gives the rows oldest first, answers row major, across the
 * ring's wrap. */
static void test_window_copy_rows(void **state)
{
    (void)state;
    ens_window_t *w = ens_window_new(4, 3);
    assert_int_equal(ens_window_model(w, "a", 1), 0);
    assert_int_equal(ens_window_model(w, "b", 1), 1);
    assert_int_equal(ens_window_label(w, "Y", 1), 0);
    assert_int_equal(ens_window_label(w, "N", 1), 1);
    for (int i = 0; i < 6; i++) {
        uint8_t x[2] = {(uint8_t)(i % 2), i == 4 ? ENS_SYM_MISSING : ENS_SYM_ABSTAIN};
        assert_int_equal(ens_window_push(w, (uint8_t)(i % 2), x, 2, i), 0);
    }
    uint8_t y[3], x[9];
    double ts[3];
    ens_window_copy_rows(w, 1, 3, 3, y, ts, x);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(y[i], ens_window_y(w, i + 1));
        assert_true(ts[i] == ens_window_ts(w, i + 1));
        for (size_t j = 0; j < 2; j++)
            assert_int_equal(x[i * 3 + j], ens_window_x(w, i + 1, j));
        assert_int_equal(x[i * 3 + 2], ENS_SYM_MISSING);
    }
    assert_int_equal(x[1 * 3 + 1], ENS_SYM_MISSING); /* row 4 */
    ens_window_destroy(&w);
}

/* Column by column, over the ring's wrap, into a stride wider than the
 * rows copied: every cell is the one ens_window_x reads, models in the
 * order asked, and nothing past each column's rows is written. */
static void test_window_copy_columns(void **state)
{
    (void)state;
    ens_window_t *w = ens_window_new(5, 4);
    const char *names[] = {"a", "b", "c"};
    for (int m = 0; m < 3; m++)
        assert_int_equal(ens_window_model(w, names[m], 1), m);
    assert_int_equal(ens_window_label(w, "Y", 1), 0);
    assert_int_equal(ens_window_label(w, "N", 1), 1);
    for (int i = 0; i < 8; i++) {
        uint8_t x[3] = {(uint8_t)(i % 2), (uint8_t)((i / 2) % 2),
                        i % 3 ? ENS_SYM_ABSTAIN : ENS_SYM_MISSING};
        assert_int_equal(ens_window_push(w, (uint8_t)((i / 3) % 2), x, 3, i), 0);
    }
    size_t ids[2] = {2, 0};
    uint8_t y[4], x[2 * 6];
    memset(y, 0xEE, sizeof(y));
    memset(x, 0xEE, sizeof(x));
    ens_window_copy_columns(w, 1, 4, ids, 2, 6, y, x);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(y[i], ens_window_y(w, i + 1));
        for (size_t k = 0; k < 2; k++)
            assert_int_equal(x[k * 6 + i], ens_window_x(w, i + 1, ids[k]));
    }
    for (size_t k = 0; k < 2; k++) {
        assert_int_equal(x[k * 6 + 4], 0xEE);
        assert_int_equal(x[k * 6 + 5], 0xEE);
    }
    ens_window_destroy(&w);
}

/* A model and a label are released only once no row holds them; their ids
 * go to the next new names, and the snapshot (what a selection sees) lists
 * only the names held, labels renumbered densely. */
static void test_window_release_slots(void **state)
{
    (void)state;
    ens_window_t *w = ens_window_new(2, 3);
    assert_int_equal(ens_window_model(w, "a", 1), 0);
    assert_int_equal(ens_window_model(w, "b", 1), 1);
    assert_int_equal(ens_window_label(w, "Y", 1), 0);
    assert_int_equal(ens_window_label(w, "N", 1), 1);
    assert_int_equal(ens_window_label(w, "M", 1), 2);
    uint8_t x[2] = {1, 0};
    assert_int_equal(ens_window_push(w, 0, x, 2, 1), 0); /* b says Y, truth Y; a says N */
    x[0] = 2;
    assert_int_equal(ens_window_push(w, 2, x, 1, 2), 0); /* a says M, truth M */
    /* b answers in row 0, N too, as an answer only: both held. */
    assert_int_equal(ens_window_release_model(w, 1), ENS_EINVAL);
    assert_int_equal(ens_window_release_label(w, 1), ENS_EINVAL);
    assert_int_equal(ens_window_release_model(w, 7), ENS_EINVAL);
    uint8_t y2 = 0;
    x[0] = 0;
    assert_int_equal(ens_window_push(w, y2, x, 1, 3), 0); /* row 0 leaves */
    assert_int_equal(ens_window_release_model(w, 1), 0);
    assert_int_equal(ens_window_release_label(w, 1), 0);
    assert_int_equal(ens_window_release_model(w, 1), ENS_EINVAL); /* twice */
    assert_int_equal(ens_window_release_label(w, 0), ENS_EINVAL); /* Y is held */
    assert_int_equal(ens_window_models(w), 2);
    assert_int_equal(ens_window_models_held(w), 1);
    assert_int_equal(ens_window_labels_held(w), 2);
    assert_int_equal(ens_window_find_model(w, "b", 1), ENS_ENOTFOUND);
    assert_int_equal(ens_window_find_label(w, "N", 1), ENS_ENOTFOUND);
    assert_null(ens_window_model_str(w, 1).ptr);

    ens_data_t *d = ens_window_snapshot(w);
    assert_int_equal(d->nmodels, 1);
    assert_int_equal(d->nlabels, 2);
    assert_string_equal(d->model_names[0], "a");
    assert_string_equal(d->label_names[0], "Y");
    assert_string_equal(d->label_names[1], "M");
    /* Rows: (M, a says M), (Y, a says Y): M is 1 once renumbered. */
    assert_int_equal(d->y[0], 1);
    assert_int_equal(d->y[1], 0);
    assert_int_equal(ens_data_col(d, 0)[0], 1);
    assert_int_equal(ens_data_col(d, 0)[1], 0);
    ens_data_destroy(&d);

    /* The freed ids go to the next new names; the column starts empty. */
    assert_int_equal(ens_window_model(w, "c", 1), 1);
    assert_int_equal(ens_window_label(w, "Q", 1), 1);
    assert_int_equal(ens_window_present(w, 1), 0);
    for (size_t i = 0; i < ens_window_rows(w); i++)
        assert_int_equal(ens_window_x(w, i, 1), ENS_SYM_MISSING);
    for (uint8_t yy = 0; yy < 3; yy++)
        for (uint8_t xx = 0; xx < 3; xx++)
            assert_int_equal(ens_window_count(w, 1, xx, yy), 0);
    uint8_t x3[2] = {ENS_SYM_MISSING, 1};
    assert_int_equal(ens_window_push(w, 1, x3, 2, 4), 0);
    assert_int_equal(ens_window_count(w, 1, 1, 1), 1);
    assert_int_equal(ens_window_present(w, 1), 1);
    assert_int_equal(ens_window_count(w, 0, 0, 0), 1);
    ens_window_destroy(&w);
}

static void test_window_ring_wrap_exact(void **state)
{
    (void)state;
    ens_window_t *w = ens_window_new(3, 2);
    assert_int_equal(ens_window_model(w, "a", 1), 0);
    assert_int_equal(ens_window_label(w, "Y", 1), 0);
    assert_int_equal(ens_window_label(w, "N", 1), 1);
    for (int i = 0; i < 5; i++) {
        uint8_t x = (uint8_t)(i % 2);
        assert_int_equal(ens_window_push(w, 0, &x, 1, i), 0);
    }
    /* Rows 2, 3, 4 remain: answers 0, 1, 0. */
    assert_int_equal(ens_window_rows(w), 3);
    assert_int_equal(ens_window_x(w, 0, 0), 0);
    assert_int_equal(ens_window_x(w, 1, 0), 1);
    assert_int_equal(ens_window_x(w, 2, 0), 0);
    assert_int_equal(ens_window_count(w, 0, 0, 0), 2);
    assert_int_equal(ens_window_count(w, 0, 1, 0), 1);
    assert_int_equal(ens_window_present(w, 0), 3);
    assert_int_equal(ens_window_expire_before(w, 3.5), 2);
    assert_int_equal(ens_window_rows(w), 1);
    assert_int_equal(ens_window_count(w, 0, 0, 0), 1);
    assert_int_equal(ens_window_count(w, 0, 1, 0), 0);
    assert_int_equal(ens_window_expire_before(w, 3.5), 0);
    ens_window_destroy(&w);
}

static void test_window_interning(void **state)
{
    (void)state;
    assert_null(ens_window_new(0, 4));
    assert_null(ens_window_new(4, 0));
    assert_null(ens_window_new(4, ENS_MAX_MODELS + 1));
    ens_window_t *w = ens_window_new(4, 2);
    assert_int_equal(ens_window_model(w, "a", 1), 0);
    assert_int_equal(ens_window_model(w, "b", 1), 1);
    assert_int_equal(ens_window_model(w, "a", 1), 0);
    assert_int_equal(ens_window_model(w, "c", 1), ENS_EFULL);
    assert_int_equal(ens_window_model(w, "", 0), ENS_EINVAL);
    char longname[ENS_MAX_NAME + 2];
    memset(longname, 'x', sizeof(longname));
    assert_int_equal(ens_window_model(w, longname, ENS_MAX_NAME + 1), ENS_ETOOLONG);
    assert_int_equal(ens_window_label(w, "?", 1), ENS_SYM_ABSTAIN);
    assert_int_equal(ens_window_labels(w), 0);
    assert_string_equal(ens_window_model_name(w, 1), "b");
    char buf[16];
    for (int l = 0; l < ENS_MAX_LABELS; l++) {
        snprintf(buf, sizeof(buf), "%d", l);
        assert_int_equal(ens_window_label(w, buf, strlen(buf)), l);
    }
    assert_int_equal(ens_window_label(w, "one-more", 8), ENS_EFULL);
    assert_string_equal(ens_window_label_name(w, 253), "253");
    /* The largest label id and abstention count correctly. */
    uint8_t x[2] = {253, ENS_SYM_ABSTAIN};
    assert_int_equal(ens_window_push(w, 253, x, 2, 0), 0);
    assert_int_equal(ens_window_count(w, 0, 253, 253), 1);
    assert_int_equal(ens_window_count(w, 1, ENS_SYM_ABSTAIN, 253), 1);
    assert_int_equal(ens_window_present(w, 1), 1);
    ens_window_destroy(&w);
}

/* Costs against a shadow of the rows in the window: after every operation,
 * each model's ens_window_cost is the mean of the costs its answers in the
 * shadow carry (costs are multiples of 1/8, exact in a float), and the
 * snapshot holds that mean, or 1.0 for a model with no costed answer. */
#define CAP 37
static void test_window_costs_vs_shadow(void **state)
{
    (void)state;
    enum { NM = 3 };
    ens_window_t *w = ens_window_new(CAP, NM);
    assert_int_equal(ens_window_label(w, "a", 1), 0);
    for (int j = 0; j < NM; j++)
        assert_int_equal(ens_window_model(w, &"xyz"[j], 1), j);
    /* The shadow: per row pushed, each model's answer and cost (-1: none). */
    uint8_t sx[4 * CAP * 20][NM];
    double sc[4 * CAP * 20][NM];
    size_t head = 0, tail = 0;
    tu_rng_t r;
    tu_seed(&r, 7);
    for (int op = 0; op < 4 * CAP * 20 - 1; op++) {
        if (tu_below(&r, 10) == 0) {
            size_t k = tu_below(&r, 6);
            ens_window_expire(w, k);
            head = head + k < tail ? head + k : tail;
        } else {
            uint8_t x[NM];
            double c[NM];
            for (int j = 0; j < NM; j++) {
                x[j] = tu_below(&r, 4) == 0 ? ENS_SYM_MISSING : 0;
                /* Model 2 never reports a cost; model 1 only sometimes. */
                c[j] = j == 2 || (j == 1 && tu_below(&r, 2)) ? -1 : (double)tu_below(&r, 800) / 8;
            }
            assert_int_equal(ens_window_push_costs(w, 0, x, c, NM, op), 0);
            memcpy(sx[tail], x, sizeof(x));
            memcpy(sc[tail], c, sizeof(c));
            tail++;
            if (tail - head > CAP)
                head++;
        }
        ens_data_t *d = op % 17 == 0 ? ens_window_snapshot(w) : NULL;
        for (int j = 0; j < NM; j++) {
            double sum = 0;
            uint32_t n = 0, got_n = 99;
            for (size_t i = head; i < tail; i++)
                if (sx[i][j] != ENS_SYM_MISSING && sc[i][j] >= 0) {
                    sum += sc[i][j];
                    n++;
                }
            double got = ens_window_cost(w, j, &got_n), want = n ? sum / n : 1.0;
            assert_int_equal(got_n, n);
            if (n == 0)
                assert_true(isnan(got));
            else
                assert_near(got, want, 1e-9 * (1 + want));
            if (d)
                assert_near(d->cost[j], want, 1e-9 * (1 + want));
        }
        ens_data_destroy(&d);
    }
    assert_true(isnan(ens_window_cost(w, 5, NULL))); /* not a model */
    ens_window_destroy(&w);
}
#undef CAP

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_random_vs_shadow),
        cmocka_unit_test(test_window_ring_wrap_exact),
        cmocka_unit_test(test_window_expire_by_age_out_of_order),
        cmocka_unit_test(test_window_future_row_at_head),
        cmocka_unit_test(test_window_copy_rows),
        cmocka_unit_test(test_window_copy_columns),
        cmocka_unit_test(test_window_release_slots),
        cmocka_unit_test(test_window_interning),
        cmocka_unit_test(test_window_costs_vs_shadow),
        cmocka_unit_test(test_window_explored_flags),
    };
    return cmocka_run_group_tests_name("window", tests, NULL, NULL);
}
