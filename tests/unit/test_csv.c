/* test_csv.c - the wide prediction CSV parser: symbols, line endings,
 * quoting, every error class with its line number, and the two real files. */
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
#include "testutil.h"

static int parse_str(const char *s, ens_data_t **out, char *err, size_t errlen)
{
    return ens_csv_parse(s, strlen(s), out, err, errlen);
}

static uint8_t X(const ens_data_t *d, size_t r, size_t j)
{
    return ens_data_col(d, j)[r];
}

static void test_csv_basic_symbols(void **state)
{
    (void)state;
    const char *s = "item,label,m1,m2,m3\n"
                    "q1,C,C,A,?\n"
                    "q2,B,,B,C\n"
                    "q3,A,?,,\n";
    ens_data_t *d = NULL;
    char err[256] = "";
    assert_int_equal(parse_str(s, &d, err, sizeof(err)), 0);
    assert_non_null(d);
    assert_int_equal(d->nrows, 3);
    assert_int_equal(d->nmodels, 3);
    assert_int_equal(d->nlabels, 3);
    /* Labels in order of first appearance, y and answers sharing one
     * alphabet: C (y of q1), A (m2 in q1), B (y of q2). */
    assert_string_equal(d->label_names[0], "C");
    assert_string_equal(d->label_names[1], "A");
    assert_string_equal(d->label_names[2], "B");
    assert_string_equal(d->model_names[0], "m1");
    assert_string_equal(d->model_names[1], "m2");
    assert_string_equal(d->model_names[2], "m3");
    assert_int_equal(d->y[0], 0);
    assert_int_equal(d->y[1], 2);
    assert_int_equal(d->y[2], 1);
    assert_int_equal(X(d, 0, 0), 0);
    assert_int_equal(X(d, 0, 1), 1);
    assert_int_equal(X(d, 0, 2), ENS_SYM_ABSTAIN);
    assert_int_equal(X(d, 1, 0), ENS_SYM_MISSING);
    assert_int_equal(X(d, 1, 1), 2);
    assert_int_equal(X(d, 1, 2), 0);
    assert_int_equal(X(d, 2, 0), ENS_SYM_ABSTAIN);
    assert_int_equal(X(d, 2, 1), ENS_SYM_MISSING);
    assert_int_equal(X(d, 2, 2), ENS_SYM_MISSING);
    for (size_t j = 0; j < 3; j++)
        assert_true(d->cost[j] == 1.0);
    ens_data_destroy(&d);
}

static void test_csv_crlf_matches_lf(void **state)
{
    (void)state;
    const char *lf = "item,label,a,b\n1,X,X,Y\n2,Y,,?\n";
    const char *crlf = "item,label,a,b\r\n1,X,X,Y\r\n2,Y,,?\r\n";
    ens_data_t *d1 = NULL, *d2 = NULL;
    char err[256];
    assert_int_equal(parse_str(lf, &d1, err, sizeof(err)), 0);
    assert_int_equal(parse_str(crlf, &d2, err, sizeof(err)), 0);
    assert_int_equal(d2->nrows, 2);
    assert_int_equal(d2->nmodels, 2);
    assert_int_equal(d2->nlabels, 2);
    /* No stray '\r' in the last model's name or in labels. */
    assert_string_equal(d2->model_names[1], "b");
    assert_string_equal(d2->label_names[1], "Y");
    assert_memory_equal(d1->y, d2->y, 2);
    assert_memory_equal(d1->x, d2->x, 4);
    assert_int_equal(X(d2, 1, 1), ENS_SYM_ABSTAIN);
    assert_int_equal(X(d2, 1, 0), ENS_SYM_MISSING);
    ens_data_destroy(&d1);
    ens_data_destroy(&d2);

    /* No trailing newline at all. */
    assert_int_equal(parse_str("item,label,a\n1,X,X\n2,Y,X", &d1, err, sizeof(err)), 0);
    assert_int_equal(d1->nrows, 2);
    assert_int_equal(X(d1, 1, 0), 0);
    ens_data_destroy(&d1);
}

static void test_csv_quoted_fields(void **state)
{
    (void)state;
    const char *s = "item,label,\"model, the first\",\"say \"\"hi\"\"\"\n"
                    "\"q,1\",\"A,B\",\"A,B\",\"\"\n"
                    "q2,C,\"?\",C\n";
    ens_data_t *d = NULL;
    char err[256] = "";
    int rc = parse_str(s, &d, err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_int_equal(d->nmodels, 2);
    assert_int_equal(d->nrows, 2);
    assert_string_equal(d->model_names[0], "model, the first");
    assert_string_equal(d->model_names[1], "say \"hi\"");
    assert_int_equal(d->nlabels, 2);
    assert_string_equal(d->label_names[0], "A,B");
    assert_string_equal(d->label_names[1], "C");
    assert_int_equal(X(d, 0, 0), 0);
    /* A quoted empty cell is an empty cell: not asked. */
    assert_int_equal(X(d, 0, 1), ENS_SYM_MISSING);
    assert_int_equal(X(d, 1, 0), ENS_SYM_ABSTAIN);
    assert_int_equal(X(d, 1, 1), 1);
    ens_data_destroy(&d);
}

/* Whether err holds the number n as a whole token (not inside 12 or 31). */
static int has_number(const char *err, int n)
{
    char want[32];
    snprintf(want, sizeof(want), "%d", n);
    size_t wl = strlen(want);
    for (const char *p = strstr(err, want); p; p = strstr(p + 1, want)) {
        int before = p > err && p[-1] >= '0' && p[-1] <= '9';
        int after = p[wl] >= '0' && p[wl] <= '9';
        if (!before && !after)
            return 1;
    }
    return 0;
}

/* Parses s expecting failure `code`; checks *out stays NULL and that the
 * message names `line` (0: no line check). */
static void expect_fail(const char *s, size_t len, int code, int line)
{
    ens_data_t *d = (ens_data_t *)0x1;
    char err[256] = "";
    int rc = ens_csv_parse(s, len, &d, err, sizeof(err));
    if (rc != code)
        print_message("expected %d (%s), got %d: err='%s'\n", code, ens_strerror(code), rc, err);
    assert_int_equal(rc, code);
    assert_null(d);
    assert_true(strlen(err) > 0);
    if (line > 0) {
        if (!has_number(err, line))
            print_message("message '%s' lacks line %d\n", err, line);
        assert_true(has_number(err, line));
    }
}

static void test_csv_errors(void **state)
{
    (void)state;
    /* Ragged rows: too few, then too many fields, on line 3. */
    const char *few = "item,label,a,b\n1,A,A,B\n2,A,A\n3,A,A,A\n";
    expect_fail(few, strlen(few), ENS_EPARSE, 3);
    const char *many = "item,label,a,b\n1,A,A,B\n2,A,A,B,B\n";
    expect_fail(many, strlen(many), ENS_EPARSE, 3);
    /* Empty buffer and header-only files have no usable rows. */
    expect_fail("", 0, ENS_EEMPTY, 0);
    expect_fail("item,label,a,b\n", strlen("item,label,a,b\n"), ENS_EEMPTY, 0);
    expect_fail("item,label,a,b", strlen("item,label,a,b"), ENS_EEMPTY, 0);
    /* Duplicate model, in the middle of the header and as its last column
     * (the header is line 1 either way). */
    const char *dup_mid = "item,label,a,a,b\n1,A,A,A,A\n";
    expect_fail(dup_mid, strlen(dup_mid), ENS_EDUP, 1);
    /* Empty true label on line 4. */
    const char *nolabel = "item,label,a\n1,A,A\n2,B,B\n3,,A\n";
    expect_fail(nolabel, strlen(nolabel), ENS_EPARSE, 4);
    /* Unterminated quote. */
    const char *quote = "item,label,a\n1,A,\"A\n";
    expect_fail(quote, strlen(quote), ENS_EPARSE, 2);
}

/* A duplicate in the header's last column: the message must still say line
 * 1 (the header), not the line after it. */
static void test_csv_dup_last_column_line(void **state)
{
    (void)state;
    const char *dup = "item,label,a,b,a\n1,A,A,A,A\n";
    expect_fail(dup, strlen(dup), ENS_EDUP, 1);
}

static void test_csv_too_many_labels(void **state)
{
    (void)state;
    /* 255 distinct labels on rows 2..256: the 255th (line 256) overflows. */
    size_t cap = 64 + 255 * 32;
    char *s = malloc(cap);
    size_t n = (size_t)snprintf(s, cap, "item,label,m\n");
    for (int i = 0; i < 255; i++)
        n += (size_t)snprintf(s + n, cap - n, "%d,L%d,L%d\n", i, i, i);
    expect_fail(s, n, ENS_EFULL, 256);

    /* Exactly ENS_MAX_LABELS (254) labels are fine. */
    n = (size_t)snprintf(s, cap, "item,label,m\n");
    for (int i = 0; i < ENS_MAX_LABELS; i++)
        n += (size_t)snprintf(s + n, cap - n, "%d,L%d,L%d\n", i, i, i);
    ens_data_t *d = NULL;
    char err[256];
    assert_int_equal(ens_csv_parse(s, n, &d, err, sizeof(err)), 0);
    assert_int_equal(d->nlabels, ENS_MAX_LABELS);
    assert_int_equal(d->nrows, ENS_MAX_LABELS);
    assert_int_equal(d->y[253], 253);
    ens_data_destroy(&d);
    free(s);
}

/* Independent scan of a CSV without quotes: counts rows, cells equal to "?"
 * and empty cells among the model columns, and checks each row's label. */
typedef struct {
    size_t rows, fields, abstain, empty;
} scan_t;

static scan_t naive_scan(const char *buf, size_t len)
{
    scan_t s = {0, 0, 0, 0};
    size_t line = 0, col = 0, cell_len = 0, fields0 = 0;
    const char *cell = buf;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? buf[i] : '\n';
        if (c == ',' || c == '\n') {
            cell_len = (size_t)(buf + i - cell);
            if (line > 0 && col >= 2) {
                if (cell_len == 0)
                    s.empty++;
                else if (cell_len == 1 && cell[0] == '?')
                    s.abstain++;
            }
            col++;
            cell = buf + i + 1;
            if (c == '\n') {
                if (line == 0)
                    fields0 = col;
                else if (col > 1 || cell_len > 0)
                    s.rows++;
                if (i == len && col == 1 && cell_len == 0)
                    break;
                line++;
                col = 0;
            }
        }
    }
    s.fields = fields0;
    return s;
}

static void check_real(const char *name, size_t rows, size_t models, size_t labels)
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
    if (rc)
        print_message("%s: %s\n", name, err);
    assert_int_equal(rc, 0);
    assert_int_equal(d->nrows, rows);
    assert_int_equal(d->nmodels, models);
    assert_int_equal(d->nlabels, labels);

    scan_t s = naive_scan(buf, len);
    assert_int_equal(s.rows, rows);
    assert_int_equal(s.fields, models + 2);
    size_t ab = 0, miss = 0;
    for (size_t j = 0; j < d->nmodels; j++)
        for (size_t r = 0; r < d->nrows; r++) {
            uint8_t v = ens_data_col(d, j)[r];
            ab += v == ENS_SYM_ABSTAIN;
            miss += v == ENS_SYM_MISSING;
            if (v != ENS_SYM_ABSTAIN && v != ENS_SYM_MISSING)
                assert_true(v < d->nlabels);
        }
    print_message("%s: %zu rows, %zu models, %zu labels, %zu '?' (scan %zu), %zu empty\n", name,
                  d->nrows, d->nmodels, d->nlabels, ab, s.abstain, miss);
    assert_int_equal(ab, s.abstain);
    assert_int_equal(miss, s.empty);

    /* Row by row, the true label's name equals the file's second field, and
     * the first model's cell equals the third field. */
    const char *p = strchr(buf, '\n') + 1;
    for (size_t r = 0; r < d->nrows; r++) {
        const char *c1 = strchr(p, ',') + 1;
        const char *c2 = strchr(c1, ',') + 1;
        const char *c3 = c2 + strcspn(c2, ",\n");
        assert_true(d->y[r] < d->nlabels);
        const char *yn = d->label_names[d->y[r]];
        assert_int_equal(strlen(yn), (size_t)(c2 - 1 - c1));
        assert_memory_equal(yn, c1, strlen(yn));
        uint8_t v = ens_data_col(d, 0)[r];
        size_t l3 = (size_t)(c3 - c2);
        if (l3 == 0)
            assert_int_equal(v, ENS_SYM_MISSING);
        else if (l3 == 1 && c2[0] == '?')
            assert_int_equal(v, ENS_SYM_ABSTAIN);
        else
            assert_memory_equal(d->label_names[v], c2, l3);
        p = strchr(p, '\n') + 1;
    }
    ens_data_destroy(&d);
    free(buf);
}

static void test_csv_real_mmlupro(void **state)
{
    (void)state;
    check_real("mmlupro_28llm.csv", 11960, 28, 10);
}

static void test_csv_real_winogrande(void **state)
{
    (void)state;
    check_real("winogrande_routerbench_11llm.csv", 1267, 11, 2);
}

/* Random files mixing every cell form the parser reads: one-byte labels
 * (its fast path), longer and multi-byte ones, quoted ones (with commas
 * and doubled quotes), "?" and a quoted "?" (both abstain), empty cells,
 * LF and CRLF lines, a last line with or without its newline. The
 * reference is what the generator wrote: ids in order of first appearance,
 * row by row, the truth before the answers. */
#define RMODELS 7
#define RROWS 60
static void test_csv_random_files_match_the_generator(void **state)
{
    (void)state;
    static const char *const forms[] = {
        "A", "B", "7", "\xc3\xa9", "AB", "long label", "\"a,b\"", "\"q\"\"\"", "?", "", "\"?\""};
    /* What each form reads as: its label name, or NULL (abstention) or ""
     * (not asked). */
    static const char *const names[] = {"A",   "B",   "7",  "\xc3\xa9", "AB", "long label",
                                        "a,b", "q\"", NULL, "",         NULL};
    tu_rng_t r;
    tu_seed(&r, 31);
    for (int t = 0; t < 200; t++) {
        char buf[RROWS * RMODELS * 16 + 256];
        size_t n = (size_t)sprintf(buf, "item,label");
        for (int j = 0; j < RMODELS; j++)
            n += (size_t)sprintf(buf + n, ",m%d", j);
        n += (size_t)sprintf(buf + n, "\n");
        const char *seen[16];
        size_t nseen = 0;
        uint8_t y[RROWS], x[RROWS][RMODELS];
        for (int i = 0; i < RROWS; i++) {
            for (int col = 1; col < 2 + RMODELS; col++) {
                size_t f = tu_below(&r, col == 1 ? 8 : 11); /* truths: labels only */
                if (col == 1)
                    n += (size_t)sprintf(buf + n, "q%d", i);
                n += (size_t)sprintf(buf + n, ",%s", forms[f]);
                uint8_t sym = ENS_SYM_MISSING;
                if (!names[f])
                    sym = ENS_SYM_ABSTAIN;
                else if (*names[f]) {
                    size_t id = 0;
                    while (id < nseen && strcmp(seen[id], names[f]) != 0)
                        id++;
                    if (id == nseen)
                        seen[nseen++] = names[f];
                    sym = (uint8_t)id;
                }
                if (col == 1)
                    y[i] = sym;
                else
                    x[i][col - 2] = sym;
            }
            int last = i == RROWS - 1;
            if (!last || tu_below(&r, 2))
                n += (size_t)sprintf(buf + n, "%s", tu_below(&r, 4) ? "\n" : "\r\n");
        }
        ens_data_t *d = NULL;
        char err[256] = "";
        if (ens_csv_parse(buf, n, &d, err, sizeof(err)) != 0)
            fail_msg("file %d: %s", t, err);
        assert_int_equal(d->nrows, RROWS);
        assert_int_equal(d->nlabels, nseen);
        for (size_t l = 0; l < nseen; l++)
            assert_string_equal(d->label_names[l], seen[l]);
        for (int i = 0; i < RROWS; i++) {
            assert_int_equal(d->y[i], y[i]);
            for (int j = 0; j < RMODELS; j++)
                if (X(d, (size_t)i, (size_t)j) != x[i][j])
                    fail_msg("file %d row %d model %d: %d, want %d", t, i, j,
                             X(d, (size_t)i, (size_t)j), x[i][j]);
        }
        ens_data_destroy(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_random_files_match_the_generator),
        cmocka_unit_test(test_csv_basic_symbols),
        cmocka_unit_test(test_csv_crlf_matches_lf),
        cmocka_unit_test(test_csv_quoted_fields),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_csv_dup_last_column_line),
        cmocka_unit_test(test_csv_too_many_labels),
        cmocka_unit_test(test_csv_real_mmlupro),
        cmocka_unit_test(test_csv_real_winogrande),
    };
    return cmocka_run_group_tests_name("csv", tests, NULL, NULL);
}
