/* test_router.c - the router API (router.h) on a body that went through
 * ens_body_encode and ens_body_decode, against an independent XXH3 call for
 * exploration, against hand-worked answers, and against the daemon's own
 * combiner (combine.h): a body built from a fitted combiner's weights and
 * decision table must decide every answer tuple as the combiner does. The
 * language-neutral cases are in test_vectors.c. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "ensembled/body.h"
#include "ensembled/combine.h"
#include "ensembled/data.h"
#include "ensembled/err.h"
#include "ensembled/mpw.h"
#include "ensembled/router.h"
#include "testutil.h"

static ens_str_t S(const char *s)
{
    ens_str_t r = {s, strlen(s)};
    return r;
}

static const ens_str_t NONE = {NULL, 0};

/* The rule of docs/protocol.md, written out with the library's XXH3. */
static uint64_t ref_hash(const char *task, int is_uint, uint64_t u, const char *s)
{
    unsigned char buf[512];
    size_t n = strlen(task);
    memcpy(buf, task, n);
    buf[n++] = 0;
    if (is_uint) {
        buf[n++] = 'u';
        for (int i = 7; i >= 0; i--)
            buf[n++] = (unsigned char)(u >> (8 * i));
    } else {
        buf[n++] = 's';
        memcpy(buf + n, s, strlen(s));
        n += strlen(s);
    }
    return XXH3_64bits_withSeed(buf, n, 1);
}

static void test_router_hash_matches_reference(void **state)
{
    (void)state;
    for (uint64_t q = 0; q < 200; q++) {
        ens_router_query_t uq = {1, q * 0x9E3779B97F4A7C15ull, NULL, 0};
        assert_true(ens_router_explore_hash("med", 3, &uq) == ref_hash("med", 1, uq.u, NULL));
        char s[32];
        snprintf(s, sizeof(s), "query-%u", (unsigned)q);
        ens_router_query_t sq = {0, 0, s, strlen(s)};
        assert_true(ens_router_explore_hash("medmcqa", 7, &sq) == ref_hash("medmcqa", 0, 0, s));
    }
    /* A long string id goes through the heap and hashes all the same. */
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    ens_router_query_t bq = {0, 0, big, strlen(big)};
    unsigned char *buf = malloc(4 + 1 + strlen(big));
    memcpy(buf, "t\0s", 3);
    memcpy(buf + 3, big, strlen(big));
    assert_true(ens_router_explore_hash("t", 1, &bq) ==
                XXH3_64bits_withSeed(buf, 3 + strlen(big), 1));
    free(buf);
}

static void test_router_explore_threshold_is_exact(void **state)
{
    (void)state;
    assert_false(ens_router_explore_below(0, 0.0));
    assert_false(ens_router_explore_below(0, NAN));
    assert_false(ens_router_explore_below(0, -1.0));
    assert_true(ens_router_explore_below(UINT64_MAX, 1.0));
    assert_true(ens_router_explore_below(0, 1e-300));
    /* rate = 2^-11: the threshold is 2^53 exactly. */
    assert_true(ens_router_explore_below((1ull << 53) - 1, ldexp(1, -11)));
    assert_false(ens_router_explore_below(1ull << 53, ldexp(1, -11)));
    /* Above 2^53 a double cannot hold every integer: (double)(2^60 + 255)
     * rounds to 2^60 + 256, the threshold itself, so comparing the hash as a
     * double would say "not below"; the exact rule compares the integers. */
    double r = ldexp(1.0 + ldexp(1, -52), -4); /* threshold 2^60 + 2^8 */
    assert_true(ens_router_explore_below((1ull << 60) + 255, r));
    assert_false(ens_router_explore_below((1ull << 60) + 256, r));
    assert_false(ens_router_explore_below(UINT64_MAX, nextafter(1.0, 0.0)));
    assert_true(ens_router_explore_below(UINT64_MAX - 4096, nextafter(1.0, 0.0)));
}

/* A body encoded and decoded: the task "med", three models, three labels,
 * four models to explore, a table of the given kind. */
static ens_body_t *decoded_body(ens_comb_kind_t kind, double rate)
{
    ens_str_t models[3] = {S("alpha"), S("beta"), S("gamma")};
    ens_str_t labels[3] = {S("A"), S("B"), S("C")};
    ens_str_t explore[4] = {S("alpha"), S("beta"), S("gamma"), S("delta")};
    ens_body_step_t steps[3];
    double weights[3] = {0.9, 0.7, 0.7};
    ens_body_model_t window[4];
    for (size_t i = 0; i < 3; i++)
        steps[i] = (ens_body_step_t){models[i], 0.4 * (double)(i + 1), 0.4, 100};
    for (size_t i = 0; i < 4; i++)
        window[i] = (ens_body_model_t){explore[i], 100, 1.0, ENS_EXCL_NONE, NAN};
    /* table: (A, B, B) -> C, ("?", nil, A) -> B; pattern: (0, 1, 1) -> 0. */
    int16_t tkeys[2][3] = {{0, 1, 1}, {ENS_BODY_ABSTAIN, ENS_BODY_MISSING, 0}};
    int16_t pkeys[1][3] = {{0, 1, 1}};
    ens_body_entry_t table[2] = {{tkeys[0], 2}, {tkeys[1], 1}};
    ens_body_entry_t ptable[1] = {{pkeys[0], 0}};
    ens_body_t b = {.protocol = ENS_PROTOCOL_VERSION,
                    .task = S("med"),
                    .version = 3,
                    .ts = 1700000000.0,
                    .strategy = S("greedy-mi"),
                    .estimator = S("heldout"),
                    .budget = 3,
                    .nmodels = 3,
                    .models = models,
                    .steps = steps,
                    .window_rows = 100,
                    .nlabels = 3,
                    .labels = labels,
                    .comb = kind,
                    .weights = weights,
                    .ntable = kind == ENS_COMB_TABLE     ? 2
                              : kind == ENS_COMB_PATTERN ? 1
                                                         : 0,
                    .table = kind == ENS_COMB_PATTERN ? ptable : table,
                    .acc_combiner = 0.8,
                    .acc_vote = 0.75,
                    .acc_single = 0.7,
                    .acc_in_sample = 0.8,
                    .fano_error_lower = 0.05,
                    .copula_error_floor = NAN,
                    .copula_error_floor_ensemble = NAN,
                    .latent_correlation_mean = NAN,
                    .explore_rate = rate,
                    .explore_rule = S("xxh3"),
                    .nexplore = 4,
                    .explore_models = explore,
                    .explore_extra = rate,
                    .nwindow = 4,
                    .window = window,
                    .replaced = 1,
                    .reason = ENS_REASON_FIRST,
                    .choice_winner = S("selection")};
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_body_encode(&b, &w);
    ens_body_t *out = NULL;
    char err[256] = "";
    int rc = ens_body_decode(w.data, w.size, &out, err, sizeof(err));
    ens_mpw_free(&w);
    if (rc != 0)
        fail_msg("decode: %s", err);
    return out;
}

static void test_router_models_follow_the_rule(void **state)
{
    (void)state;
    ens_body_t *b = decoded_body(ENS_COMB_VOTE, 0.25);
    size_t explored = 0;
    for (uint64_t q = 0; q < 4000; q++) {
        ens_router_query_t rq = {1, q, NULL, 0};
        int want = (double)ref_hash("med", 1, q, NULL) < 0.25 * 18446744073709551616.0;
        const ens_str_t *m = NULL;
        size_t n = ens_router_models(b, &rq, &m);
        assert_int_equal(ens_router_explores(b, &rq), want);
        assert_int_equal(n, want ? 4 : 3);
        assert_ptr_equal(m, want ? b->explore_models : b->models);
        explored += (size_t)want;
    }
    /* A quarter, give or take five standard deviations (sd 27). */
    assert_true(explored > 1000 - 140 && explored < 1000 + 140);
    ens_body_destroy(&b);
}

static void expect(const ens_body_t *b, ens_str_t a0, ens_str_t a1, ens_str_t a2, const char *want)
{
    ens_str_t answers[3] = {a0, a1, a2}, out = NONE;
    int rc = ens_router_combine(b, answers, &out);
    if (!want) {
        assert_int_equal(rc, ENS_ENOTFOUND);
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.ptr, want, out.len);
}

static void test_router_combine_by_hand(void **state)
{
    (void)state;
    ens_body_t *vote = decoded_body(ENS_COMB_VOTE, 0.0);
    ens_body_t *wtd = decoded_body(ENS_COMB_WEIGHTED, 0.0);
    ens_body_t *tab = decoded_body(ENS_COMB_TABLE, 0.0);
    ens_body_t *pat = decoded_body(ENS_COMB_PATTERN, 0.0);
    /* weights 0.9, 0.7, 0.7 */
    expect(vote, S("A"), S("B"), S("B"), "B"); /* two votes against one */
    expect(wtd, S("A"), S("B"), S("B"), "B");  /* 1.4 against 0.9 */
    expect(wtd, S("A"), S("B"), S("?"), "A");  /* 0.9 against 0.7 */
    expect(vote, S("C"), S("B"), NONE, "C");   /* tie: the heaviest voter */
    expect(vote, S("?"), S("C"), S("B"), "C"); /* tie on 0.7: the earlier */
    expect(vote, S("?"), NONE, S("?"), NULL);  /* nobody voted */
    expect(tab, S("A"), S("B"), S("B"), "C");  /* entry (A, B, B) */
    expect(tab, S("?"), NONE, S("A"), "B");    /* entry ("?", nil, A) */
    expect(tab, S("?"), S("A"), S("A"), "A");  /* no entry: weighted vote */
    expect(tab, S("Z"), S("B"), S("B"), "B");  /* not a label: no entry */
    expect(pat, S("C"), S("A"), S("A"), "C");  /* pattern (0, 1, 1) -> class 0 */
    expect(pat, S("B"), S("A"), S("B"), "B");  /* (0, 1, 0): weighted vote */
    expect(pat, S("C"), S("?"), S("A"), "C");  /* (0, -1, 1): weighted vote */
    ens_body_destroy(&vote);
    ens_body_destroy(&wtd);
    ens_body_destroy(&tab);
    ens_body_destroy(&pat);
}

/* More models than the functions keep on the stack: the heap path. */
static void test_router_many_models(void **state)
{
    (void)state;
    enum { N = 70 };
    ens_str_t answers[N];
    double w[N];
    int16_t pat[N];
    size_t first[N];
    for (size_t i = 0; i < N; i++) {
        /* 35 "B", 34 "A", one abstention; "A" weighs more in total. */
        answers[i] = i == 0 ? S("?") : i % 2 ? S("B") : S("A");
        w[i] = i % 2 ? 0.5 : 0.9;
    }
    assert_int_equal(ens_router_pattern(answers, N, pat, first), 2);
    assert_int_equal(pat[0], ENS_ROUTER_ABSTAIN);
    assert_int_equal(pat[1], 0);
    assert_int_equal(pat[2], 1);
    int v = ens_router_vote(answers, w, N, 0);
    assert_true(v >= 0 && answers[v].ptr[0] == 'B');
    v = ens_router_vote(answers, w, N, 1);
    assert_true(v >= 0 && answers[v].ptr[0] == 'A');
}

/* ---- against the daemon's combiner -------------------------------------- */

typedef struct {
    ens_body_entry_t *e;
    int16_t *keys;
    size_t n;
} collect_t;

static void take_entry(void *ud, const uint8_t *key, size_t k, unsigned decision)
{
    collect_t *c = ud;
    int16_t *dst = c->keys + c->n * k;
    for (size_t i = 0; i < k; i++)
        dst[i] = key[i] == ENS_SYM_ABSTAIN   ? ENS_BODY_ABSTAIN
                 : key[i] == ENS_SYM_MISSING ? ENS_BODY_MISSING
                                             : (int16_t)key[i];
    c->e[c->n].key = dst;
    c->e[c->n].decision = (int32_t)decision;
    c->n++;
}

#define NR 300
#define K 3
#define L 3

static const char *const label_names[L] = {"A", "B", "C"};

static ens_str_t answer_str(uint8_t x)
{
    if (x == ENS_SYM_MISSING)
        return NONE;
    if (x == ENS_SYM_ABSTAIN)
        return S("?");
    return S(label_names[x]);
}

/* Every answer tuple over K models (three labels, "?", missing) decided by
 * the router from the published figures and by the fitted combiner. */
static void compare_all_tuples(const ens_combiner_t *c, const ens_body_t *b)
{
    static const uint8_t cells[5] = {0, 1, 2, ENS_SYM_ABSTAIN, ENS_SYM_MISSING};
    for (int t = 0; t < 125; t++) {
        uint8_t x[K] = {cells[t % 5], cells[t / 5 % 5], cells[t / 25]};
        ens_str_t answers[K] = {answer_str(x[0]), answer_str(x[1]), answer_str(x[2])};
        ens_str_t out = NONE;
        int rc = ens_router_combine(b, answers, &out);
        uint8_t want = ens_combiner_predict(c, x);
        if (rc == ENS_ENOTFOUND) {
            /* The daemon falls back to its most frequent label; the router
             * may do as it likes, but only when nobody voted. */
            for (size_t i = 0; i < K; i++)
                assert_true(x[i] == ENS_SYM_ABSTAIN || x[i] == ENS_SYM_MISSING);
            continue;
        }
        assert_int_equal(rc, 0);
        if (out.len != 1 || out.ptr[0] != label_names[want][0])
            fail_msg("%s, answers %u %u %u: router %.*s, daemon %s",
                     ens_comb_name(ens_combiner_kind(c)), x[0], x[1], x[2], (int)out.len, out.ptr,
                     label_names[want]);
    }
}

static void test_router_agrees_with_daemon_combiner(void **state)
{
    (void)state;
    tu_rng_t rng;
    tu_seed(&rng, 14);
    for (int round = 0; round < 40; round++) {
        ens_data_t *d = ens_data_new(NR, K, L);
        for (size_t r = 0; r < NR; r++) {
            d->y[r] = (uint8_t)(tu_next(&rng) % L);
            for (size_t j = 0; j < K; j++) {
                uint64_t u = tu_next(&rng) % 10;
                /* Right 60 % of the time (more for model 0 in odd rounds),
                 * else a wrong label, an abstention or not asked. */
                uint64_t right = 6 + (uint64_t)((round & 1) && j == 0) * 2;
                uint8_t v = u < right ? d->y[r]
                            : u < 8   ? (uint8_t)((d->y[r] + 1 + u % 2) % L)
                            : u < 9   ? ENS_SYM_ABSTAIN
                                      : ENS_SYM_MISSING;
                d->x[j * NR + r] = v;
            }
        }
        size_t models[K] = {0, 1, 2};
        for (int kind = 0; kind < ENS_COMB_COUNT; kind++) {
            ens_combiner_t *c = ens_combiner_fit(d, models, K, (ens_comb_kind_t)kind);
            assert_non_null(c);
            static ens_body_entry_t entries[NR];
            static int16_t keys[NR * K];
            collect_t col = {entries, keys, 0};
            ens_combiner_foreach(c, take_entry, &col);
            ens_str_t labels[L] = {S("A"), S("B"), S("C")};
            double w[K];
            for (size_t i = 0; i < K; i++)
                w[i] = ens_combiner_weight(c, i);
            ens_body_t b = {.nmodels = K,
                            .nlabels = L,
                            .labels = labels,
                            .comb = (ens_comb_kind_t)kind,
                            .weights = w,
                            .ntable = col.n,
                            .table = entries};
            compare_all_tuples(c, &b);
            ens_combiner_destroy(&c);
        }
        ens_data_destroy(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_router_hash_matches_reference),
        cmocka_unit_test(test_router_explore_threshold_is_exact),
        cmocka_unit_test(test_router_models_follow_the_rule),
        cmocka_unit_test(test_router_combine_by_hand),
        cmocka_unit_test(test_router_many_models),
        cmocka_unit_test(test_router_agrees_with_daemon_combiner),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
