/* test_open.c - open-answer tasks: normalizations, agreement patterns, the
 * open CSV reading, the join's open mode, and MMLU-Pro fed as open answers
 * (every label replaced by a random string per item) against choice mode. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ensembled/csv.h"
#include "ensembled/data.h"
#include "ensembled/err.h"
#include "ensembled/eval.h"
#include "ensembled/join.h"
#include "ensembled/open.h"
#include "ensembled/select.h"
#include "testutil.h"

static uint64_t K(const char *s, ens_norm_t n)
{
    return ens_open_key(s, strlen(s), n);
}

static void test_open_normalize_fold(void **state)
{
    (void)state;
    assert_true(K(" Paris", ENS_NORM_FOLD) == K("paris", ENS_NORM_FOLD));
    assert_true(K("PARIS\t\n", ENS_NORM_FOLD) == K("paris", ENS_NORM_FOLD));
    assert_true(K("Paris", ENS_NORM_FOLD) != K("Pari s", ENS_NORM_FOLD));
    assert_true(K("Paris", ENS_NORM_FOLD) != K("Lyon", ENS_NORM_FOLD));
    /* Inner whitespace and non-ASCII bytes are kept as they are. */
    assert_true(K("new york", ENS_NORM_FOLD) != K("newyork", ENS_NORM_FOLD));
    assert_true(K("\xc3\x89t\xc3\xa9", ENS_NORM_FOLD) != K("\xc3\xa9t\xc3\xa9", ENS_NORM_FOLD));
    /* A long answer folds in chunks: case differences past the first chunk. */
    char a[1000], b[1000];
    memset(a, 'x', sizeof(a) - 1), a[sizeof(a) - 1] = '\0';
    memset(b, 'X', sizeof(b) - 1), b[sizeof(b) - 1] = '\0';
    assert_true(K(a, ENS_NORM_FOLD) == K(b, ENS_NORM_FOLD));
    b[700] = 'y';
    assert_true(K(a, ENS_NORM_FOLD) != K(b, ENS_NORM_FOLD));
    /* exact keeps everything apart. */
    assert_true(K(" Paris", ENS_NORM_EXACT) != K("paris", ENS_NORM_EXACT));
    assert_true(K("Paris", ENS_NORM_EXACT) != K("paris", ENS_NORM_EXACT));
    assert_true(K("paris", ENS_NORM_EXACT) == K("paris", ENS_NORM_EXACT));
}

static void test_open_normalize_numeric(void **state)
{
    (void)state;
    const ens_norm_t n = ENS_NORM_NUMERIC;
    assert_true(K("3.0", n) == K("3", n));
    assert_true(K(" 3 ", n) == K("3", n));
    assert_true(K("3e0", n) == K("3", n));
    assert_true(K("0.30e1", n) == K("3", n));
    assert_true(K("-0", n) == K("0", n));
    assert_true(K("+7", n) == K("7", n));
    assert_true(K("3", n) != K("3.01", n));
    assert_true(K("3", n) != K("-3", n));
    /* Not a number: its own class by exact text. */
    assert_true(K("three", n) != K("3", n));
    assert_true(K("three", n) == K("three", n));
    assert_true(K("Three", n) != K("three", n));
    assert_true(K("3 apples", n) != K("3", n));
    assert_true(K("nan", n) != K("NaN", n)); /* never a number: text */
    assert_true(K("inf", n) != K("Inf", n));
    assert_true(K("0x10", n) != K("16", n)); /* decimal only */
    assert_true(K("", n) == K("", ENS_NORM_EXACT));
    /* A text and a number never share a key by construction. */
    assert_true(K("3", ENS_NORM_EXACT) != K("3", n));
}

static void test_open_names(void **state)
{
    (void)state;
    ens_answers_t a;
    ens_norm_t n;
    assert_int_equal(ens_answers_parse("open", &a), 0);
    assert_int_equal(a, ENS_ANSWERS_OPEN);
    assert_int_equal(ens_answers_parse("Open", &a), ENS_ENOTFOUND);
    assert_int_equal(ens_norm_parse("numeric", &n), 0);
    assert_int_equal(n, ENS_NORM_NUMERIC);
    assert_int_equal(ens_norm_parse("lower", &n), ENS_ENOTFOUND);
    assert_string_equal(ens_norm_name(ENS_NORM_FOLD), "fold");
    assert_string_equal(ens_answers_name(ENS_ANSWERS_CHOICE), "choice");
}

static void test_open_pattern(void **state)
{
    (void)state;
    /* Answers: 42, ?, 17, (missing), 42, 9 -> classes 0, ?, 1, -, 0, 2. */
    uint64_t key[6] = {42, 0, 17, 0, 42, 9};
    uint8_t x[6] = {1, ENS_SYM_ABSTAIN, 1, ENS_SYM_MISSING, 1, 1};
    assert_int_equal(ens_open_pattern(key, x, 6, 17), 1);
    const uint8_t want[6] = {0, ENS_SYM_ABSTAIN, 1, ENS_SYM_MISSING, 0, 2};
    assert_memory_equal(x, want, 6);
    /* Truth nobody gave. */
    uint8_t x2[3] = {0, 0, 0};
    uint64_t key2[3] = {5, 5, 5};
    assert_int_equal(ens_open_pattern(key2, x2, 3, 6), ENS_OPEN_NONE);
    assert_int_equal(x2[0] | x2[1] | x2[2], 0);
    /* More distinct answers than classes: the rest abstain. */
    enum { N = ENS_OPEN_MAX_CLASSES + 5 };
    uint64_t key3[N];
    uint8_t x3[N];
    for (size_t i = 0; i < N; i++)
        key3[i] = 1000 + i, x3[i] = 0;
    assert_int_equal(ens_open_pattern(key3, x3, N, 1000 + N - 1), ENS_OPEN_NONE);
    assert_int_equal(x3[ENS_OPEN_MAX_CLASSES - 1], ENS_OPEN_MAX_CLASSES - 1);
    assert_int_equal(x3[ENS_OPEN_MAX_CLASSES], ENS_SYM_ABSTAIN);
    assert_int_equal(x3[N - 1], ENS_SYM_ABSTAIN);
}

/* The pattern as the definition says it: each answer's class is the
 * number of distinct answers before its first appearance, in model order;
 * past ENS_OPEN_MAX_CLASSES an answer abstains. A scan of every earlier
 * model, nothing shared with the library's table. */
static uint8_t pattern_by_definition(const uint64_t *key, uint8_t *x, size_t n, uint64_t truth)
{
    uint8_t out[ENS_MAX_MODELS];
    uint8_t y = ENS_OPEN_NONE;
    size_t ncls = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = x[i];
        if (x[i] == ENS_SYM_ABSTAIN || x[i] == ENS_SYM_MISSING)
            continue;
        size_t first = i;
        for (size_t j = 0; j < i; j++)
            if (x[j] != ENS_SYM_ABSTAIN && x[j] != ENS_SYM_MISSING && key[j] == key[i] &&
                out[j] != ENS_SYM_ABSTAIN) {
                first = j;
                break;
            }
        if (first < i) {
            out[i] = out[first];
        } else if (ncls == ENS_OPEN_MAX_CLASSES) {
            out[i] = ENS_SYM_ABSTAIN;
        } else {
            out[i] = (uint8_t)ncls++;
            if (key[i] == truth)
                y = out[i];
        }
    }
    memcpy(x, out, n);
    return y;
}

/* Random rows against the definition: 1 to 1024 models, 1 to 400 distinct
 * answers (past the classes' limit), abstentions and missing answers, the
 * truth given or not, and keys alike in their low or their high bits. */
static void test_open_pattern_against_definition(void **state)
{
    (void)state;
    tu_rng_t rng;
    tu_seed(&rng, 77);
    static uint64_t key[ENS_MAX_MODELS];
    static uint8_t x[ENS_MAX_MODELS], want[ENS_MAX_MODELS];
    for (int trial = 0; trial < 3000; trial++) {
        size_t n = 1 + tu_below(&rng, trial % 10 == 0 ? ENS_MAX_MODELS : 64);
        size_t distinct = 1 + tu_below(&rng, trial % 7 == 0 ? 400 : 12);
        int shape = trial % 3; /* keys: hashed, small, alike but in their high bits */
        for (size_t i = 0; i < n; i++) {
            uint64_t a = tu_below(&rng, distinct);
            key[i] = shape == 0 ? (a + 1) * 0xD6E8FEB86659FD93ull : shape == 1 ? a : a << 48;
            size_t r = tu_below(&rng, 10);
            x[i] = r == 0 ? ENS_SYM_ABSTAIN : r == 1 ? ENS_SYM_MISSING : 0;
        }
        uint64_t truth = tu_below(&rng, 2) ? key[tu_below(&rng, n)] : 0xdeadbeefull;
        memcpy(want, x, n);
        uint8_t wy = pattern_by_definition(key, want, n, truth);
        assert_int_equal(ens_open_pattern(key, x, n, truth), wy);
        assert_memory_equal(x, want, n);
    }
}

static void test_open_csv(void **state)
{
    (void)state;
    const char *s = "item,label,m1,m2,m3\n"
                    "q1,Paris,paris,Paris,Lyon\n"
                    "q2,7,7.0,?,x\n"
                    "q3,Rome,,Lyon,Lyon\n";
    ens_data_t *d = NULL;
    char err[256] = "";
    assert_int_equal(ens_csv_parse_open(s, strlen(s), ENS_NORM_EXACT, &d, err, sizeof(err)), 0);
    assert_true(d->open);
    assert_string_equal(d->label_names[d->nlabels - 1], "none");
    /* exact: paris | Paris | Lyon are three classes; truth Paris is c1. */
    assert_int_equal(d->y[0], 1);
    assert_int_equal(ens_data_col(d, 0)[0], 0);
    assert_int_equal(ens_data_col(d, 1)[0], 1);
    assert_int_equal(d->nlabels, 4); /* c0, c1, c2, none */
    ens_data_destroy(&d);

    assert_int_equal(ens_csv_parse_open(s, strlen(s), ENS_NORM_FOLD, &d, err, sizeof(err)), 0);
    assert_int_equal(d->nlabels, 3);
    const uint8_t none = (uint8_t)(d->nlabels - 1);
    /* fold: paris == Paris (c0), Lyon c1; truth c0. */
    assert_int_equal(d->y[0], 0);
    assert_int_equal(ens_data_col(d, 1)[0], 0);
    assert_int_equal(ens_data_col(d, 2)[0], 1);
    /* Row 2: "7" is not "7.0" as text, the truth is nobody's answer. */
    assert_int_equal(d->y[1], none);
    assert_int_equal(ens_data_col(d, 1)[1], ENS_SYM_ABSTAIN);
    /* Row 3: m1 not asked, m2 and m3 agree (c0), truth none. */
    assert_int_equal(ens_data_col(d, 0)[2], ENS_SYM_MISSING);
    assert_int_equal(ens_data_col(d, 1)[2], 0);
    assert_int_equal(ens_data_col(d, 2)[2], 0);
    assert_int_equal(d->y[2], none);
    ens_data_destroy(&d);

    assert_int_equal(ens_csv_parse_open(s, strlen(s), ENS_NORM_NUMERIC, &d, err, sizeof(err)), 0);
    assert_int_equal(d->y[1], 0); /* 7 == 7.0 */
    ens_data_destroy(&d);

    const char *bad = "item,label,m1\nq1,?,a\n";
    assert_int_equal(ens_csv_parse_open(bad, strlen(bad), ENS_NORM_EXACT, &d, err, sizeof(err)),
                     ENS_EPARSE);
    assert_null(d);
    assert_non_null(strstr(err, "line 2"));
}

/* More distinct answers than ENS_MAX_LABELS over the file: no limit. */
static void test_open_csv_many_answers(void **state)
{
    (void)state;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    n += (size_t)snprintf(buf + n, cap - n, "item,label,a,b,c\n");
    for (int i = 0; i < 5000; i++)
        n += (size_t)snprintf(buf + n, cap - n, "q%d,%d,%d,%d,%d\n", i, i, i, i + 1,
                              i % 3 ? i : i + 2);
    ens_data_t *d = NULL;
    char err[256] = "";
    assert_int_equal(ens_csv_parse(buf, n, &d, err, sizeof(err)), ENS_EFULL);
    assert_int_equal(ens_csv_parse_open(buf, n, ENS_NORM_EXACT, &d, err, sizeof(err)), 0);
    assert_int_equal(d->nrows, 5000);
    assert_true(d->nlabels <= 4);
    for (size_t r = 0; r < d->nrows; r++)
        assert_int_equal(d->y[r], 0); /* a is always right, and first */
    assert_true(ens_data_accuracy(d, 0) == 1.0);
    ens_data_destroy(&d);
    free(buf);
}

/* The join in open mode: answers arrive in any order, the row's classes
 * follow model ids. */
typedef struct {
    uint8_t y;
    uint8_t x[8];
    size_t rows;
} sink_t;

static void sink(void *ud, uint8_t y, const ens_join_pred_t *p, size_t n, double ts)
{
    (void)ts;
    sink_t *s = ud;
    s->y = y;
    memset(s->x, ENS_SYM_MISSING, sizeof(s->x));
    for (size_t i = 0; i < n; i++)
        s->x[p[i].model] = p[i].sym;
    s->rows++;
}

static void test_open_join(void **state)
{
    (void)state;
    sink_t s = {0};
    ens_join_t *j = ens_join_new(10, 60, sink, &s);
    ens_join_set_open(j, 1);
    ens_join_pred_t a[2] = {{3, 0, -1, K("x", ENS_NORM_EXACT)}, {1, 0, -1, K("y", ENS_NORM_EXACT)}};
    ens_join_predictions(j, "q", 1, a, 2, 1.0);
    ens_join_pred_t b[2] = {{0, 0, -1, K("x", ENS_NORM_EXACT)}, {2, ENS_SYM_ABSTAIN, -1, 0}};
    ens_join_predictions(j, "q", 1, b, 2, 2.0);
    assert_int_equal(s.rows, 0);
    ens_join_label_key(j, "q", 1, K("y", ENS_NORM_EXACT), 3.0, 3.0);
    assert_int_equal(s.rows, 1);
    /* Models 0..3 answered x, y, ?, x: classes 0, 1, ?, 0; truth y = 1. */
    const uint8_t want[4] = {0, 1, ENS_SYM_ABSTAIN, 0};
    assert_memory_equal(s.x, want, 4);
    assert_int_equal(s.y, 1);
    /* A label first, then an answer nobody matches. */
    ens_join_label_key(j, "r", 1, K("z", ENS_NORM_EXACT), 4.0, 4.0);
    ens_join_prediction(j, "r", 1, 2, 0, 4.0);
    assert_int_equal(s.rows, 2);
    assert_int_equal(s.y, ENS_OPEN_NONE);
    assert_int_equal(s.x[2], 0);
    ens_join_destroy(&j);
}

/* MMLU-Pro as text, every label of an item replaced by its own random
 * string (the same for every model of the item). */
static char *relabelled_csv(const ens_data_t *d, size_t *len)
{
    size_t cap = 64 * 1024 * 1024, n = 0;
    char *buf = malloc(cap);
    n += (size_t)snprintf(buf + n, cap - n, "item,label");
    for (size_t j = 0; j < d->nmodels; j++)
        n += (size_t)snprintf(buf + n, cap - n, ",%s", d->model_names[j]);
    n += (size_t)snprintf(buf + n, cap - n, "\n");
    tu_rng_t rng;
    tu_seed(&rng, 2026);
    char word[ENS_MAX_LABELS][13];
    for (size_t r = 0; r < d->nrows; r++) {
        for (size_t l = 0; l < d->nlabels; l++) {
            for (int c = 0; c < 12; c++)
                word[l][c] = (char)('a' + tu_next(&rng) % 26);
            word[l][12] = '\0';
        }
        n += (size_t)snprintf(buf + n, cap - n, "%zu,%s", r, word[d->y[r]]);
        for (size_t j = 0; j < d->nmodels; j++) {
            uint8_t x = ens_data_col(d, j)[r];
            const char *cell = x == ENS_SYM_MISSING ? "" : x == ENS_SYM_ABSTAIN ? "?" : word[x];
            n += (size_t)snprintf(buf + n, cap - n, ",%s", cell);
        }
        n += (size_t)snprintf(buf + n, cap - n, "\n");
        assert_true(n + 4096 < cap);
    }
    *len = n;
    return buf;
}

static void test_open_mmlupro_relabelled(void **state)
{
    (void)state;
    ens_data_t *choice = tu_load_real("mmlupro_28llm.csv");
    size_t len = 0;
    char *text = relabelled_csv(choice, &len);
    ens_data_t *open = NULL, *open_orig = NULL;
    char err[256] = "";
    assert_int_equal(ens_csv_parse_open(text, len, ENS_NORM_EXACT, &open, err, sizeof(err)), 0);
    free(text);
    char path[512];
    snprintf(path, sizeof(path), "%s/mmlupro_28llm.csv", ENS_DATA_DIR);
    char *orig = tu_read_file(path, &len);
    assert_int_equal(ens_csv_parse_open(orig, len, ENS_NORM_EXACT, &open_orig, err, sizeof(err)),
                     0);
    free(orig);
    /* The random strings change nothing: the patterns are those of the
     * original labels, byte for byte. */
    assert_int_equal(open->nrows, choice->nrows);
    assert_int_equal(open->nlabels, open_orig->nlabels);
    assert_memory_equal(open->y, open_orig->y, open->nrows);
    assert_memory_equal(open->x, open_orig->x, open->nrows * open->nmodels);
    /* Per-model accuracy is the same in both modes (a model is right iff
     * its class is the truth's). */
    for (size_t j = 0; j < choice->nmodels; j++)
        assert_true(ens_data_accuracy(open, j) == ens_data_accuracy(choice, j));

    for (size_t k = 2; k <= 4; k++) {
        ens_select_opts_t o;
        ens_select_opts_default(&o);
        o.budget = k;
        ens_selection_t sc, so;
        assert_int_equal(ens_select(choice, &o, &sc, err, sizeof(err)), 0);
        assert_int_equal(ens_select(open, &o, &so, err, sizeof(err)), 0);
        assert_int_equal(sc.n, so.n);
        assert_memory_equal(sc.models, so.models, sc.n * sizeof(size_t));
        ens_eval_t ec, eo;
        assert_int_equal(ens_evaluate(choice, &o, 4, 0.5, 11, &ec), 0);
        assert_int_equal(ens_evaluate(open, &o, 4, 0.5, 11, &eo), 0);
        double pc = ec.acc[ENS_EVAL_PUBLISHED].mean, po = eo.acc[ENS_EVAL_PUBLISHED].mean;
        print_message("K=%zu: %zu models, published held out: choice %.5f, open %.5f\n", k, sc.n,
                      pc, po);
        /* Equal but where choice mode's `table` combiner (label identity,
         * which open answers do not have) wins a split, or moves the final
         * choice's test between the selection and a vote: within a point. */
        assert_true(fabs(po - pc) < 0.01);
    }
    ens_data_destroy(&open);
    ens_data_destroy(&open_orig);
    ens_data_destroy(&choice);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_normalize_fold),
        cmocka_unit_test(test_open_normalize_numeric),
        cmocka_unit_test(test_open_names),
        cmocka_unit_test(test_open_pattern),
        cmocka_unit_test(test_open_pattern_against_definition),
        cmocka_unit_test(test_open_csv),
        cmocka_unit_test(test_open_csv_many_answers),
        cmocka_unit_test(test_open_join),
        cmocka_unit_test(test_open_mmlupro_relabelled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
