/* test_vectors.c - the router test vectors (the JSON files of tests/vectors, written
 * by tests/vectors/generate.py from the rules of docs/protocol.md, sharing
 * no code with the library) checked against the library: exploration
 * (router.h), agreement patterns and every combiner, topic matching
 * (ens_topic) and name validity (ens_name_valid). The Python package is
 * checked against the same files (tests/python/test_vectors.py). */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ensembled/body.h"
#include "ensembled/err.h"
#include "ensembled/protocol.h"
#include "ensembled/router.h"

#ifndef ENS_VECTORS_DIR
#error "ENS_VECTORS_DIR must point at tests/vectors"
#endif

#define MAXK 16

static json_t *load_cases(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", ENS_VECTORS_DIR, name);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        fail_msg("%s:%d: %s", path, err.line, err.text);
    json_t *cases = json_object_get(root, "cases");
    assert_true(json_is_array(cases));
    assert_true(json_array_size(cases) > 0);
    json_incref(cases);
    json_decref(root);
    return cases;
}

/* Decodes a hex string into buf (cap bytes); returns its length. */
static size_t unhex(const char *hex, unsigned char *buf, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        buf[i] = (unsigned char)v;
    }
    return n;
}

static void test_vectors_explore(void **state)
{
    (void)state;
    json_t *cases = load_cases("explore.json");
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        unsigned char task[256], q[1024];
        size_t tlen = unhex(json_string_value(json_object_get(c, "task_hex")), task, sizeof(task));
        ens_router_query_t query = {0};
        json_t *qu = json_object_get(c, "query_uint");
        if (qu) {
            query.is_uint = 1;
            query.u = strtoull(json_string_value(qu), NULL, 10);
        } else {
            query.len = unhex(json_string_value(json_object_get(c, "query_hex")), q, sizeof(q));
            query.s = (const char *)q;
        }
        uint64_t want = strtoull(json_string_value(json_object_get(c, "hash")), NULL, 16);
        uint64_t h = ens_router_explore_hash((const char *)task, tlen, &query);
        if (h != want)
            fail_msg("case %zu: hash %016" PRIx64 ", want %016" PRIx64, i, h, want);
        double rate = json_real_value(json_object_get(c, "rate"));
        int explores = json_is_true(json_object_get(c, "explores"));
        if (ens_router_explore_below(h, rate) != explores)
            fail_msg("case %zu: rate %.17g: explores %d, want %d", i, rate, !explores, explores);
    }
    json_decref(cases);
}

/* An answer cell of the vectors: null (missing) or a string. */
static ens_str_t answer_of(const json_t *a)
{
    ens_str_t s = {NULL, 0};
    if (json_is_string(a)) {
        s.ptr = json_string_value(a);
        s.len = json_string_length(a);
    }
    return s;
}

static void test_vectors_pattern(void **state)
{
    (void)state;
    json_t *cases = load_cases("pattern.json");
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        json_t *answers = json_object_get(c, "answers"), *want = json_object_get(c, "pattern");
        size_t k = json_array_size(answers);
        assert_true(k <= MAXK);
        ens_str_t a[MAXK];
        int16_t pat[MAXK];
        size_t first[MAXK];
        for (size_t j = 0; j < k; j++)
            a[j] = answer_of(json_array_get(answers, j));
        ens_router_pattern(a, k, pat, first);
        for (size_t j = 0; j < k; j++)
            if (pat[j] != json_integer_value(json_array_get(want, j)))
                fail_msg("case %zu, answer %zu: class %d, want %d", i, j, pat[j],
                         (int)json_integer_value(json_array_get(want, j)));
    }
    json_decref(cases);
}

/* The index of label s among labels, or -1. */
static int label_index(const json_t *labels, const char *s)
{
    for (size_t l = 0; l < json_array_size(labels); l++)
        if (strcmp(json_string_value(json_array_get(labels, l)), s) == 0)
            return (int)l;
    return -1;
}

/* One table cell as the body decoder stores it. */
static int16_t cell_of(const json_t *labels, const json_t *v, int pattern)
{
    if (pattern)
        return (int16_t)json_integer_value(v);
    if (json_is_null(v))
        return ENS_BODY_MISSING;
    if (strcmp(json_string_value(v), "?") == 0)
        return ENS_BODY_ABSTAIN;
    int l = label_index(labels, json_string_value(v));
    assert_true(l >= 0);
    return (int16_t)l;
}

/* Fills b (borrowing from the case) as ens_body_decode would for the
 * fields a router reads. */
static void body_of(const json_t *c, ens_body_t *b, ens_str_t *labels, double *weights,
                    ens_body_entry_t *entries, int16_t *keys)
{
    memset(b, 0, sizeof(*b));
    const char *kind = json_string_value(json_object_get(c, "kind"));
    assert_int_equal(ens_comb_parse(kind, &b->comb), 0);
    json_t *jl = json_object_get(c, "labels"), *jw = json_object_get(c, "weights");
    json_t *jt = json_object_get(c, "table");
    b->nmodels = json_array_size(jw);
    b->nlabels = json_array_size(jl);
    for (size_t l = 0; l < b->nlabels; l++)
        labels[l] = answer_of(json_array_get(jl, l));
    for (size_t m = 0; m < b->nmodels; m++)
        weights[m] = json_real_value(json_array_get(jw, m));
    b->labels = labels;
    b->weights = weights;
    b->ntable = json_array_size(jt);
    int pattern = b->comb == ENS_COMB_PATTERN;
    for (size_t e = 0; e < b->ntable; e++) {
        json_t *je = json_array_get(jt, e);
        entries[e].key = keys + e * b->nmodels;
        for (size_t m = 0; m < b->nmodels; m++)
            entries[e].key[m] = cell_of(jl, json_array_get(je, m), pattern);
        json_t *d = json_array_get(je, b->nmodels);
        entries[e].decision = pattern ? (int32_t)json_integer_value(d)
                                      : (int32_t)label_index(jl, json_string_value(d));
    }
    b->table = entries;
    /* Open-answer cases: the body's answers and normalize. */
    json_t *mode = json_object_get(c, "mode"), *norm = json_object_get(c, "normalize");
    if (mode) {
        b->answers = (ens_str_t){json_string_value(mode), json_string_length(mode)};
        b->normalize = (ens_str_t){json_string_value(norm), json_string_length(norm)};
    }
}

static void test_vectors_combine(void **state)
{
    (void)state;
    json_t *cases = load_cases("combine.json");
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        ens_body_t b;
        ens_str_t labels[MAXK], answers[MAXK];
        double weights[MAXK];
        ens_body_entry_t entries[MAXK];
        int16_t keys[MAXK * MAXK];
        assert_true(json_array_size(json_object_get(c, "table")) <= MAXK);
        body_of(c, &b, labels, weights, entries, keys);
        json_t *ja = json_object_get(c, "answers");
        assert_int_equal(json_array_size(ja), b.nmodels);
        for (size_t m = 0; m < b.nmodels; m++)
            answers[m] = answer_of(json_array_get(ja, m));
        ens_str_t out = {NULL, 0};
        int rc = ens_router_combine(&b, answers, &out);
        json_t *want = json_object_get(c, "expect");
        const char *note = json_string_value(json_object_get(c, "note"));
        if (json_is_null(want)) {
            if (rc != ENS_ENOTFOUND)
                fail_msg("%s: decided %.*s, want no decision", note, (int)out.len, out.ptr);
            continue;
        }
        if (rc != 0)
            fail_msg("%s: no decision, want %s", note, json_string_value(want));
        if (out.len != json_string_length(want) ||
            memcmp(out.ptr, json_string_value(want), out.len) != 0)
            fail_msg("%s: decided %.*s, want %s", note, (int)out.len, out.ptr,
                     json_string_value(want));
    }
    json_decref(cases);
}

static void test_vectors_topics(void **state)
{
    (void)state;
    json_t *cases = load_cases("topics.json");
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        unsigned char task[256], want[300], sub[300];
        char topic[300], subtopic[300];
        size_t tlen = unhex(json_string_value(json_object_get(c, "task_hex")), task, 256);
        size_t wlen = unhex(json_string_value(json_object_get(c, "topic_hex")), want, 300);
        size_t n = ens_topic((const char *)task, tlen, topic, sizeof(topic));
        assert_int_equal(n, wlen);
        assert_memory_equal(topic, want, n);
        /* The subscription a router makes: its task's whole topic, or the
         * common prefix for every task. */
        json_t *st = json_object_get(c, "subscribe_task_hex");
        size_t slen;
        if (json_is_null(st)) {
            slen = strlen(ENS_TOPIC_PREFIX);
            memcpy(subtopic, ENS_TOPIC_PREFIX, slen);
        } else {
            size_t stl = unhex(json_string_value(st), sub, 256);
            slen = ens_topic((const char *)sub, stl, subtopic, sizeof(subtopic));
        }
        int match = slen <= n && memcmp(subtopic, topic, slen) == 0;
        if (match != json_is_true(json_object_get(c, "match")))
            fail_msg("case %zu: subscription matches %d", i, match);
    }
    json_decref(cases);
}

static void test_vectors_names(void **state)
{
    (void)state;
    json_t *cases = load_cases("names.json");
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c)
    {
        unsigned char name[64];
        const char *hex = json_string_value(json_object_get(c, "hex"));
        size_t n = unhex(hex, name, sizeof(name));
        int want = json_is_true(json_object_get(c, "valid"));
        if (ens_name_valid((const char *)name, n) != want)
            fail_msg("name %s: valid %d, want %d", hex, !want, want);
    }
    json_decref(cases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_explore), cmocka_unit_test(test_vectors_pattern),
        cmocka_unit_test(test_vectors_combine), cmocka_unit_test(test_vectors_topics),
        cmocka_unit_test(test_vectors_names),
    };
    return cmocka_run_group_tests_name("vectors", tests, NULL, NULL);
}
