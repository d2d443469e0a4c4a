/* test_body.c - the publication body (body.h).
 *
 * References independent of the code under test:
 *  - ref_pack() packs a body with msgpack-c the way the daemon's publish.c
 *    has always packed it (hand-counted maps, its own key and reason
 *    strings); ens_body_encode must write the same bytes.
 *  - msgpack-c's unpacker reads the encoded body back for a key-by-key check
 *    of the 22 keys, their order and their types.
 *  - Rejections are made by unpacking a valid body with msgpack-c, breaking
 *    one thing in the object tree (a key dropped, a type changed, a cell
 *    added), and packing it again with msgpack_pack_object.
 * Round trips (encode, decode, compare every field) cover every combiner
 * kind, NaN figures, names with NUL bytes and random bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "ensembled/body.h"
#include "ensembled/err.h"
#include "testutil.h"

/* The wire strings, written out here rather than taken from the library. */
static const char *const top_keys[24] = {
    "task",   "version", "ts",          "strategy",      "estimator", "budget",
    "models", "steps",   "window_rows", "labels",        "combiner",  "accuracy",
    "bounds", "explore", "coverage",    "freshness",     "excluded",  "replaced",
    "reason", "choice",  "costs",       "expected_cost", "answers",   "normalize"};
static const char *const excl_text[] = {"", "retired: silent for longer than select.retire_after",
                                        "coverage below select.min_rows"};
static const char *const reason_text[] = {
    "first selection",
    "a published model left the pool",
    "the budget is now smaller than the published set",
    "same set",
    "more information",
    "kept: the new set is not better by publish.min_improvement_bits",
    "the published set now costs more than select.cost_budget"};
static const char *const kind_text[] = {"vote", "weighted", "table", "pattern"};

/* ---- a body to encode --------------------------------------------------- */

#define MAXM 48  /* models of the ensemble */
#define MAXW 64  /* models of the window */
#define MAXL 254 /* labels */
#define MAXT 400 /* table entries */

typedef struct {
    ens_body_t b;
    ens_str_t models[MAXM], labels[MAXL], explore[MAXW];
    ens_body_step_t steps[MAXM];
    double weights[MAXM];
    ens_body_entry_t table[MAXT];
    int16_t keys[MAXT][MAXM];
    ens_body_model_t window[MAXW];
    ens_body_candidate_t cand[MAXM + 1];
    char names[MAXW + MAXL][32];
    char cnames[MAXM + 1][32];
} fixture_t;

static ens_str_t S(const char *s)
{
    ens_str_t r = {s, strlen(s)};
    return r;
}

/* A hand-made body: three models (one name with a NUL byte), three labels,
 * five models in the window (one retired, one short of rows, one never
 * seen: age NaN), a table of the given kind. */
static void fixture(fixture_t *f, ens_comb_kind_t kind)
{
    memset(f, 0, sizeof(*f));
    ens_body_t *b = &f->b;
    static const char m0[] = "m\0a";
    f->models[0] = (ens_str_t){m0, 3};
    f->models[1] = S("beta");
    f->models[2] = S("gamma");
    f->labels[0] = S("A");
    f->labels[1] = S("B");
    f->labels[2] = S("C");
    *b = (ens_body_t){.task = {"t\0x", 3},
                      .version = 7,
                      .ts = 1700000000.25,
                      .strategy = S("greedy-mi"),
                      .estimator = S("heldout"),
                      .answers = S("open"),
                      .normalize = S("fold"),
                      .budget = 3,
                      .nmodels = 3,
                      .models = f->models,
                      .steps = f->steps,
                      .window_rows = 70000,
                      .nlabels = 3,
                      .labels = f->labels,
                      .comb = kind,
                      .weights = f->weights,
                      .table = f->table,
                      .acc_combiner = 0.8125,
                      .acc_vote = 0.75,
                      .acc_single = NAN,
                      .acc_in_sample = 0.9,
                      .fano_error_lower = 0.05,
                      .copula_error_floor = NAN,
                      .copula_error_floor_ensemble = 0.1,
                      .latent_correlation_mean = 0.3,
                      .explore_rate = 0.02,
                      .explore_rule = S("xxh3_64 rule"),
                      .nexplore = 4,
                      .explore_models = f->explore,
                      .explore_extra = 0.02,
                      .nwindow = 5,
                      .window = f->window,
                      .replaced = 1,
                      .reason = ENS_REASON_MORE_INFO};
    for (size_t i = 0; i < 3; i++) {
        f->steps[i] = (ens_body_step_t){f->models[i], 0.5 * (double)(i + 1), 0.5, 1000 - i};
        f->weights[i] = 0.7 + 0.05 * (double)i;
    }
    static const ens_body_model_t win[5] = {{{"beta", 4}, 900, 0.5, ENS_EXCL_NONE, 0.25},
                                            {{"m\0a", 3}, 1000, 0, ENS_EXCL_NONE, 2.5},
                                            {{"old", 3}, 10, 3600, ENS_EXCL_RETIRED, NAN},
                                            {{"gamma", 5}, 998, 1.5, ENS_EXCL_NONE, 0},
                                            {{"new", 3}, 2, NAN, ENS_EXCL_COVERAGE, 7}};
    memcpy(f->window, win, sizeof(win));
    b->expected_cost = 2.75;
    f->cand[0] = (ens_body_candidate_t){S("selection"), 3, 0.8125, 0.01};
    f->cand[1] = (ens_body_candidate_t){S("top-1"), 1, 0.78, 0.02};
    f->cand[2] = (ens_body_candidate_t){S("top-2"), 2, NAN, NAN};
    b->ncandidates = 3;
    b->candidates = f->cand;
    b->choice_winner = S("top-1");
    f->explore[0] = win[0].model;
    f->explore[1] = win[1].model;
    f->explore[2] = win[3].model;
    f->explore[3] = win[4].model;
    int pattern = kind == ENS_COMB_PATTERN;
    static const int16_t lk[4][3] = {{0, 0, 1}, {-1, 2, 2}, {-2, 1, -1}, {1, -2, -2}};
    static const int16_t pk[4][3] = {{0, 0, 1}, {-1, 0, 1}, {-2, 0, -1}, {0, 1, 2}};
    static const int32_t ld[4] = {0, 2, 1, 1}, pd[4] = {0, 1, 0, 2};
    b->ntable = 4;
    for (size_t e = 0; e < 4; e++) {
        memcpy(f->keys[e], pattern ? pk[e] : lk[e], sizeof(lk[e]));
        f->table[e] = (ens_body_entry_t){f->keys[e], pattern ? pd[e] : ld[e]};
    }
}

/* ---- the reference packer: publish.c's way ------------------------------- */

static void rp_str(msgpack_packer *pk, ens_str_t s)
{
    msgpack_pack_str(pk, s.len);
    msgpack_pack_str_body(pk, s.ptr, s.len);
}

static void rp_cstr(msgpack_packer *pk, const char *s)
{
    rp_str(pk, S(s));
}

static void rp_dnil(msgpack_packer *pk, double v)
{
    if (v == v)
        msgpack_pack_double(pk, v);
    else
        msgpack_pack_nil(pk);
}

static void rp_label(msgpack_packer *pk, const ens_body_t *b, int x)
{
    if (x == -1)
        rp_cstr(pk, "?");
    else if (x == -2)
        msgpack_pack_nil(pk);
    else
        rp_str(pk, b->labels[x]);
}

static void rp_combiner(msgpack_packer *pk, const ens_body_t *b)
{
    msgpack_pack_map(pk, 3);
    rp_cstr(pk, "kind");
    rp_cstr(pk, kind_text[b->comb]);
    rp_cstr(pk, "weights");
    msgpack_pack_array(pk, b->nmodels);
    for (size_t i = 0; i < b->nmodels; i++)
        msgpack_pack_double(pk, b->weights[i]);
    rp_cstr(pk, "table");
    msgpack_pack_array(pk, b->ntable);
    for (size_t e = 0; e < b->ntable; e++) {
        msgpack_pack_array(pk, b->nmodels + 1);
        for (size_t i = 0; i < b->nmodels; i++) {
            if (b->comb == ENS_COMB_PATTERN)
                msgpack_pack_int(pk, b->table[e].key[i]);
            else
                rp_label(pk, b, b->table[e].key[i]);
        }
        if (b->comb == ENS_COMB_PATTERN)
            msgpack_pack_unsigned_int(pk, (unsigned)b->table[e].decision);
        else
            rp_label(pk, b, b->table[e].decision);
    }
}

static void rp_head(msgpack_packer *pk, const ens_body_t *b)
{
    rp_cstr(pk, "task");
    rp_str(pk, b->task);
    rp_cstr(pk, "version");
    msgpack_pack_uint64(pk, b->version);
    rp_cstr(pk, "ts");
    msgpack_pack_double(pk, b->ts);
    rp_cstr(pk, "strategy");
    rp_str(pk, b->strategy);
    rp_cstr(pk, "estimator");
    rp_str(pk, b->estimator);
    rp_cstr(pk, "budget");
    msgpack_pack_uint64(pk, b->budget);
    rp_cstr(pk, "models");
    msgpack_pack_array(pk, b->nmodels);
    for (size_t i = 0; i < b->nmodels; i++)
        rp_str(pk, b->models[i]);
    rp_cstr(pk, "steps");
    msgpack_pack_array(pk, b->nmodels);
    for (size_t i = 0; i < b->nmodels; i++) {
        msgpack_pack_map(pk, 4);
        rp_cstr(pk, "model");
        rp_str(pk, b->steps[i].model);
        rp_cstr(pk, "mi_bits");
        msgpack_pack_double(pk, b->steps[i].mi_bits);
        rp_cstr(pk, "gain_bits");
        msgpack_pack_double(pk, b->steps[i].gain_bits);
        rp_cstr(pk, "rows");
        msgpack_pack_uint64(pk, b->steps[i].rows);
    }
    rp_cstr(pk, "window_rows");
    msgpack_pack_uint64(pk, b->window_rows);
    rp_cstr(pk, "labels");
    msgpack_pack_array(pk, b->nlabels);
    for (size_t l = 0; l < b->nlabels; l++)
        rp_str(pk, b->labels[l]);
}

static void rp_figures(msgpack_packer *pk, const ens_body_t *b)
{
    const double acc[4] = {b->acc_combiner, b->acc_vote, b->acc_single, b->acc_in_sample};
    const double bnd[4] = {b->fano_error_lower, b->copula_error_floor,
                           b->copula_error_floor_ensemble, b->latent_correlation_mean};
    static const char *const an[4] = {"combiner", "majority_vote", "best_single", "in_sample"};
    static const char *const bn[4] = {"fano_error_lower", "copula_error_floor",
                                      "copula_error_floor_ensemble", "latent_correlation_mean"};
    rp_cstr(pk, "accuracy");
    msgpack_pack_map(pk, 4);
    for (int i = 0; i < 4; i++) {
        rp_cstr(pk, an[i]);
        rp_dnil(pk, acc[i]);
    }
    rp_cstr(pk, "bounds");
    msgpack_pack_map(pk, 4);
    for (int i = 0; i < 4; i++) {
        rp_cstr(pk, bn[i]);
        rp_dnil(pk, bnd[i]);
    }
    rp_cstr(pk, "explore");
    msgpack_pack_map(pk, 4);
    rp_cstr(pk, "rate");
    msgpack_pack_double(pk, b->explore_rate);
    rp_cstr(pk, "rule");
    rp_str(pk, b->explore_rule);
    rp_cstr(pk, "models");
    msgpack_pack_array(pk, b->nexplore);
    for (size_t i = 0; i < b->nexplore; i++)
        rp_str(pk, b->explore_models[i]);
    rp_cstr(pk, "extra_queries_per_query");
    msgpack_pack_double(pk, b->explore_extra);
}

static void rp_window(msgpack_packer *pk, const ens_body_t *b)
{
    size_t nexcl = 0;
    rp_cstr(pk, "coverage");
    msgpack_pack_map(pk, b->nwindow);
    for (size_t m = 0; m < b->nwindow; m++) {
        rp_str(pk, b->window[m].model);
        msgpack_pack_uint64(pk, b->window[m].rows);
        nexcl += b->window[m].excluded != ENS_EXCL_NONE;
    }
    rp_cstr(pk, "freshness");
    msgpack_pack_map(pk, b->nwindow);
    for (size_t m = 0; m < b->nwindow; m++) {
        rp_str(pk, b->window[m].model);
        rp_dnil(pk, b->window[m].age);
    }
    rp_cstr(pk, "excluded");
    msgpack_pack_map(pk, nexcl);
    for (size_t m = 0; m < b->nwindow; m++) {
        if (b->window[m].excluded == ENS_EXCL_NONE)
            continue;
        rp_str(pk, b->window[m].model);
        rp_cstr(pk, excl_text[b->window[m].excluded]);
    }
}

static void rp_choice(msgpack_packer *pk, const ens_body_t *b)
{
    rp_cstr(pk, "choice");
    msgpack_pack_map(pk, 2);
    rp_cstr(pk, "candidates");
    msgpack_pack_array(pk, b->ncandidates);
    for (size_t i = 0; i < b->ncandidates; i++) {
        msgpack_pack_map(pk, 4);
        rp_cstr(pk, "name");
        rp_str(pk, b->candidates[i].name);
        rp_cstr(pk, "models");
        msgpack_pack_uint64(pk, b->candidates[i].models);
        rp_cstr(pk, "accuracy");
        rp_dnil(pk, b->candidates[i].accuracy);
        rp_cstr(pk, "se");
        rp_dnil(pk, b->candidates[i].se);
    }
    rp_cstr(pk, "winner");
    rp_str(pk, b->choice_winner);
}

static void rp_costs(msgpack_packer *pk, const ens_body_t *b)
{
    rp_cstr(pk, "costs");
    msgpack_pack_map(pk, b->nwindow);
    for (size_t m = 0; m < b->nwindow; m++) {
        rp_str(pk, b->window[m].model);
        rp_dnil(pk, b->window[m].cost);
    }
    rp_cstr(pk, "expected_cost");
    rp_dnil(pk, b->expected_cost);
}

static void ref_pack(const ens_body_t *b, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 25);
    rp_cstr(&pk, "protocol");
    msgpack_pack_uint64(&pk, 2);
    rp_head(&pk, b); /* 10 entries */
    rp_cstr(&pk, "combiner");
    rp_combiner(&pk, b);
    rp_figures(&pk, b); /* 3 entries */
    rp_window(&pk, b);  /* 3 entries */
    rp_cstr(&pk, "replaced");
    if (b->replaced)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    rp_cstr(&pk, "reason");
    rp_cstr(&pk, reason_text[b->reason]);
    rp_choice(&pk, b);
    rp_costs(&pk, b); /* 2 entries */
    rp_cstr(&pk, "answers");
    rp_str(&pk, b->answers);
    rp_cstr(&pk, "normalize");
    rp_str(&pk, b->normalize);
}

/* ---- helpers ------------------------------------------------------------ */

static void encode(const ens_body_t *b, ens_mpw_t *w)
{
    ens_mpw_init(w);
    ens_body_encode(b, w);
}

static void assert_same_as_reference(const ens_body_t *b)
{
    ens_mpw_t w;
    encode(b, &w);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    ref_pack(b, &sb);
    assert_int_equal(w.size, sb.size);
    assert_memory_equal(w.data, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    ens_mpw_free(&w);
}

static int str_eq(ens_str_t a, ens_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Decoded strings are NUL-terminated copies. */
static void assert_str_eq(ens_str_t got, ens_str_t want)
{
    if (!str_eq(got, want))
        fail_msg("got '%.*s' (%zu bytes), want '%.*s'", (int)got.len, got.ptr, got.len,
                 (int)want.len, want.ptr);
    assert_int_equal(got.ptr[got.len], '\0');
}

static void assert_num_eq(double got, double want)
{
    if (!(got == want || (got != got && want != want)))
        fail_msg("got %.17g, want %.17g", got, want);
}

static void assert_window_equal(const ens_body_t *g, const ens_body_t *b)
{
    assert_int_equal(g->nexplore, b->nexplore);
    for (size_t i = 0; i < b->nexplore; i++)
        assert_str_eq(g->explore_models[i], b->explore_models[i]);
    assert_int_equal(g->nwindow, b->nwindow);
    for (size_t m = 0; m < b->nwindow; m++) {
        assert_str_eq(g->window[m].model, b->window[m].model);
        assert_true(g->window[m].rows == b->window[m].rows);
        assert_num_eq(g->window[m].age, b->window[m].age);
        assert_num_eq(g->window[m].cost, b->window[m].cost);
        assert_int_equal(g->window[m].excluded, b->window[m].excluded);
    }
}

static void assert_body_equal(const ens_body_t *g, const ens_body_t *b)
{
    assert_str_eq(g->task, b->task);
    assert_true(g->version == b->version && g->budget == b->budget);
    assert_true(g->window_rows == b->window_rows);
    assert_num_eq(g->ts, b->ts);
    assert_str_eq(g->strategy, b->strategy);
    assert_str_eq(g->estimator, b->estimator);
    assert_int_equal(g->nmodels, b->nmodels);
    for (size_t i = 0; i < b->nmodels; i++) {
        assert_str_eq(g->models[i], b->models[i]);
        assert_str_eq(g->steps[i].model, b->steps[i].model);
        assert_num_eq(g->steps[i].mi_bits, b->steps[i].mi_bits);
        assert_num_eq(g->steps[i].gain_bits, b->steps[i].gain_bits);
        assert_true(g->steps[i].rows == b->steps[i].rows);
        assert_num_eq(g->weights[i], b->weights[i]);
    }
    assert_int_equal(g->nlabels, b->nlabels);
    for (size_t l = 0; l < b->nlabels; l++)
        assert_str_eq(g->labels[l], b->labels[l]);
    assert_int_equal(g->comb, b->comb);
    assert_int_equal(g->ntable, b->ntable);
    for (size_t e = 0; e < b->ntable; e++) {
        assert_int_equal(g->table[e].decision, b->table[e].decision);
        for (size_t i = 0; i < b->nmodels; i++)
            assert_int_equal(g->table[e].key[i], b->table[e].key[i]);
    }
    const double *ga = &g->acc_combiner, *ba = &b->acc_combiner;
    for (int i = 0; i < 4; i++)
        assert_num_eq(ga[i], ba[i]);
    assert_num_eq(g->fano_error_lower, b->fano_error_lower);
    assert_num_eq(g->copula_error_floor, b->copula_error_floor);
    assert_num_eq(g->copula_error_floor_ensemble, b->copula_error_floor_ensemble);
    assert_num_eq(g->latent_correlation_mean, b->latent_correlation_mean);
    assert_num_eq(g->explore_rate, b->explore_rate);
    assert_str_eq(g->explore_rule, b->explore_rule);
    assert_num_eq(g->explore_extra, b->explore_extra);
    assert_window_equal(g, b);
    assert_int_equal(g->replaced, b->replaced);
    assert_int_equal(g->reason, b->reason);
    assert_int_equal(g->ncandidates, b->ncandidates);
    for (size_t i = 0; i < b->ncandidates; i++) {
        assert_str_eq(g->candidates[i].name, b->candidates[i].name);
        assert_true(g->candidates[i].models == b->candidates[i].models);
        assert_num_eq(g->candidates[i].accuracy, b->candidates[i].accuracy);
        assert_num_eq(g->candidates[i].se, b->candidates[i].se);
    }
    assert_str_eq(g->choice_winner, b->choice_winner);
    assert_num_eq(g->expected_cost, b->expected_cost);
}

static void assert_roundtrip(const ens_body_t *b)
{
    ens_mpw_t w;
    encode(b, &w);
    ens_body_t *g = NULL;
    char err[256] = "";
    int rc = ens_body_decode(w.data, w.size, &g, err, sizeof(err));
    if (rc != 0)
        fail_msg("decode failed: %s", err);
    assert_body_equal(g, b);
    ens_body_destroy(&g);
    assert_null(g);
    ens_mpw_free(&w);
}

/* ---- encoding ----------------------------------------------------------- */

static void test_body_names(void **state)
{
    (void)state;
    for (int e = 0; e < ENS_EXCL_COUNT; e++)
        assert_string_equal(ens_excl_name((ens_excl_t)e), excl_text[e]);
    for (int r = 0; r < ENS_REASON_COUNT; r++)
        assert_string_equal(ens_reason_name((ens_reason_t)r), reason_text[r]);
    assert_int_equal(ENS_EXCL_COUNT, 3);
    assert_int_equal(ENS_REASON_COUNT, 7);
    assert_string_equal(ens_excl_name(ENS_EXCL_COUNT), "?");
    assert_string_equal(ens_reason_name((ens_reason_t)-1), "?");
}

static void test_body_matches_daemon_packing(void **state)
{
    (void)state;
    fixture_t f;
    for (int k = 0; k < ENS_COMB_COUNT; k++) {
        fixture(&f, (ens_comb_kind_t)k);
        assert_same_as_reference(&f.b);
        f.b.ntable = 0; /* the votes publish no entries */
        f.b.replaced = 0;
        f.b.reason = ENS_REASON_KEPT;
        assert_same_as_reference(&f.b);
    }
}

static const msgpack_object *val_of(const msgpack_object *m, size_t i, const char *key)
{
    assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
    assert_true(i < m->via.map.size);
    const msgpack_object *k = &m->via.map.ptr[i].key;
    assert_int_equal(k->type, MSGPACK_OBJECT_STR);
    if (k->via.str.size != strlen(key) || memcmp(k->via.str.ptr, key, k->via.str.size) != 0)
        fail_msg("key %zu is '%.*s', want '%s'", i, (int)k->via.str.size, k->via.str.ptr, key);
    return &m->via.map.ptr[i].val;
}

static void assert_ostr(const msgpack_object *o, const char *s, size_t n)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, n);
    assert_memory_equal(o->via.str.ptr, s, n);
}

/* The nested maps of the fixture, key by key. */
static void check_nested(const msgpack_object *root)
{
    const msgpack_object *st = val_of(root, 8, "steps");
    assert_int_equal(st->via.array.size, 3);
    const msgpack_object *s1 = &st->via.array.ptr[1];
    assert_ostr(val_of(s1, 0, "model"), "beta", 4);
    assert_int_equal(val_of(s1, 1, "mi_bits")->type, MSGPACK_OBJECT_FLOAT64);
    assert_true(val_of(s1, 2, "gain_bits")->via.f64 == 0.5);
    assert_int_equal(val_of(s1, 3, "rows")->via.u64, 999);
    const msgpack_object *c = val_of(root, 11, "combiner");
    assert_ostr(val_of(c, 0, "kind"), "table", 5);
    assert_true(val_of(c, 1, "weights")->via.array.ptr[2].via.f64 == 0.7 + 0.05 * 2.0);
    const msgpack_object *t = val_of(c, 2, "table");
    assert_int_equal(t->via.array.size, 4);
    const msgpack_object *e1 = t->via.array.ptr[1].via.array.ptr; /* {-1, 2, 2} -> C */
    assert_ostr(&e1[0], "?", 1);
    assert_ostr(&e1[1], "C", 1);
    assert_ostr(&e1[3], "C", 1);
    assert_int_equal(t->via.array.ptr[2].via.array.ptr[0].type, MSGPACK_OBJECT_NIL);
    const msgpack_object *a = val_of(root, 12, "accuracy");
    assert_true(val_of(a, 0, "combiner")->via.f64 == 0.8125);
    assert_true(val_of(a, 1, "majority_vote")->via.f64 == 0.75);
    assert_int_equal(val_of(a, 2, "best_single")->type, MSGPACK_OBJECT_NIL);
    assert_true(val_of(a, 3, "in_sample")->via.f64 == 0.9);
    const msgpack_object *bo = val_of(root, 13, "bounds");
    assert_true(val_of(bo, 0, "fano_error_lower")->via.f64 == 0.05);
    assert_int_equal(val_of(bo, 1, "copula_error_floor")->type, MSGPACK_OBJECT_NIL);
    assert_true(val_of(bo, 2, "copula_error_floor_ensemble")->via.f64 == 0.1);
    assert_true(val_of(bo, 3, "latent_correlation_mean")->via.f64 == 0.3);
    const msgpack_object *x = val_of(root, 14, "explore");
    assert_true(val_of(x, 0, "rate")->via.f64 == 0.02);
    assert_ostr(val_of(x, 1, "rule"), "xxh3_64 rule", 12);
    assert_int_equal(val_of(x, 2, "models")->via.array.size, 4);
    assert_true(val_of(x, 3, "extra_queries_per_query")->via.f64 == 0.02);
}

static void test_body_keys_in_order(void **state)
{
    (void)state;
    fixture_t f;
    fixture(&f, ENS_COMB_TABLE);
    ens_mpw_t w;
    encode(&f.b, &w);
    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    msgpack_object root;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(w.data, w.size, &off, &z, &root), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, w.size);
    assert_int_equal(root.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(root.via.map.size, 25);
    assert_int_equal(val_of(&root, 0, "protocol")->via.u64, ENS_PROTOCOL_VERSION);
    for (size_t i = 0; i < 24; i++)
        val_of(&root, i + 1, top_keys[i]);
    assert_ostr(val_of(&root, 1, "task"), "t\0x", 3);
    assert_int_equal(val_of(&root, 2, "version")->via.u64, 7);
    assert_true(val_of(&root, 3, "ts")->via.f64 == 1700000000.25);
    assert_ostr(val_of(&root, 4, "strategy"), "greedy-mi", 9);
    assert_ostr(val_of(&root, 5, "estimator"), "heldout", 7);
    assert_int_equal(val_of(&root, 6, "budget")->via.u64, 3);
    assert_ostr(&val_of(&root, 7, "models")->via.array.ptr[0], "m\0a", 3);
    assert_int_equal(val_of(&root, 9, "window_rows")->via.u64, 70000);
    assert_ostr(&val_of(&root, 10, "labels")->via.array.ptr[2], "C", 1);
    check_nested(&root);
    const msgpack_object *cov = val_of(&root, 15, "coverage");
    assert_int_equal(cov->via.map.size, 5);
    assert_ostr(&cov->via.map.ptr[2].key, "old", 3);
    assert_int_equal(cov->via.map.ptr[2].val.via.u64, 10);
    const msgpack_object *fr = val_of(&root, 16, "freshness");
    assert_int_equal(fr->via.map.ptr[4].val.type, MSGPACK_OBJECT_NIL);
    assert_true(fr->via.map.ptr[1].val.via.f64 == 0);
    const msgpack_object *ex = val_of(&root, 17, "excluded");
    assert_int_equal(ex->via.map.size, 2);
    assert_ostr(&ex->via.map.ptr[0].key, "old", 3);
    assert_ostr(&ex->via.map.ptr[0].val, excl_text[1], strlen(excl_text[1]));
    assert_ostr(&ex->via.map.ptr[1].val, excl_text[2], strlen(excl_text[2]));
    assert_true(val_of(&root, 18, "replaced")->via.boolean);
    assert_ostr(val_of(&root, 19, "reason"), "more information", 16);
    const msgpack_object *ch = val_of(&root, 20, "choice");
    assert_ostr(val_of(&root, 23, "answers"), "open", 4);
    assert_ostr(val_of(&root, 24, "normalize"), "fold", 4);
    const msgpack_object *cands = val_of(ch, 0, "candidates");
    assert_int_equal(cands->via.array.size, 3);
    assert_ostr(val_of(&cands->via.array.ptr[1], 0, "name"), "top-1", 5);
    assert_int_equal(val_of(&cands->via.array.ptr[0], 1, "models")->via.u64, 3);
    assert_true(val_of(&cands->via.array.ptr[1], 2, "accuracy")->via.f64 == 0.78);
    assert_int_equal(val_of(&cands->via.array.ptr[2], 3, "se")->type, MSGPACK_OBJECT_NIL);
    assert_ostr(val_of(ch, 1, "winner"), "top-1", 5);
    const msgpack_object *co = val_of(&root, 21, "costs");
    assert_int_equal(co->via.map.size, 5);
    assert_ostr(&co->via.map.ptr[1].key, "m\0a", 3);
    assert_true(co->via.map.ptr[1].val.via.f64 == 2.5);
    assert_int_equal(co->via.map.ptr[2].val.type, MSGPACK_OBJECT_NIL);
    assert_true(val_of(&root, 22, "expected_cost")->via.f64 == 2.75);
    msgpack_zone_destroy(&z);
    ens_mpw_free(&w);
}

static void test_body_pattern_cells_are_integers(void **state)
{
    (void)state;
    fixture_t f;
    fixture(&f, ENS_COMB_PATTERN);
    ens_mpw_t w;
    encode(&f.b, &w);
    msgpack_zone z;
    msgpack_zone_init(&z, 4096);
    msgpack_object root;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(w.data, w.size, &off, &z, &root), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *t = val_of(val_of(&root, 11, "combiner"), 2, "table");
    const msgpack_object *e2 = t->via.array.ptr[2].via.array.ptr; /* {-2, 0, -1} -> 0 */
    assert_int_equal(e2[0].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(e2[0].via.i64, -2);
    assert_int_equal(e2[1].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(e2[2].via.i64, -1);
    assert_int_equal(e2[3].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(e2[3].via.u64, 0);
    msgpack_zone_destroy(&z);
    ens_mpw_free(&w);
}

/* ---- round trips -------------------------------------------------------- */

static void test_body_roundtrip_every_kind(void **state)
{
    (void)state;
    fixture_t f;
    for (int k = 0; k < ENS_COMB_COUNT; k++) {
        fixture(&f, (ens_comb_kind_t)k);
        assert_roundtrip(&f.b);
        /* Every figure NaN, weights too (float64 NaN, not nil). */
        double *figs[] = {&f.b.acc_combiner,
                          &f.b.acc_vote,
                          &f.b.acc_single,
                          &f.b.acc_in_sample,
                          &f.b.fano_error_lower,
                          &f.b.copula_error_floor,
                          &f.b.copula_error_floor_ensemble,
                          &f.b.latent_correlation_mean,
                          &f.b.weights[1],
                          &f.b.window[0].age};
        for (size_t i = 0; i < sizeof(figs) / sizeof(figs[0]); i++)
            *figs[i] = NAN;
        f.b.ntable = 0;
        assert_roundtrip(&f.b);
    }
}

/* A random body: up to MAXM models, MAXL labels, MAXT entries. */
static void random_body(fixture_t *f, tu_rng_t *r)
{
    fixture(f, (ens_comb_kind_t)tu_below(r, ENS_COMB_COUNT));
    ens_body_t *b = &f->b;
    b->nwindow = 1 + tu_below(r, MAXW);
    b->nmodels = 1 + tu_below(r, b->nwindow < MAXM ? b->nwindow : MAXM);
    b->nlabels = 1 + tu_below(r, tu_below(r, 2) ? MAXL : 5);
    b->nexplore = tu_below(r, b->nwindow + 1);
    for (size_t m = 0; m < b->nwindow; m++) {
        snprintf(f->names[m], 32, "model-%zu", m);
        f->window[m] = (ens_body_model_t){S(f->names[m]), tu_next(r) >> tu_below(r, 64),
                                          tu_below(r, 4) ? tu_uniform(r) * 100 : NAN,
                                          (ens_excl_t)tu_below(r, ENS_EXCL_COUNT),
                                          tu_below(r, 3) ? tu_uniform(r) * 10 : NAN};
        if (m < b->nexplore)
            f->explore[m] = f->window[m].model;
    }
    for (size_t i = 0; i < b->nmodels; i++) {
        f->models[i] = f->window[i].model;
        f->steps[i] = (ens_body_step_t){f->models[i], tu_uniform(r), tu_uniform(r) - 0.5,
                                        tu_next(r) >> tu_below(r, 64)};
        f->weights[i] = tu_uniform(r);
    }
    for (size_t l = 0; l < b->nlabels; l++) {
        snprintf(f->names[MAXW + l], 32, "L%zu", l);
        f->labels[l] = S(f->names[MAXW + l]);
    }
    int pattern = b->comb == ENS_COMB_PATTERN;
    size_t nval = pattern ? b->nmodels : b->nlabels;
    b->ntable = tu_below(r, MAXT + 1);
    for (size_t e = 0; e < b->ntable; e++) {
        for (size_t i = 0; i < b->nmodels; i++)
            f->keys[e][i] = (int16_t)((int)tu_below(r, nval + 2) - 2);
        f->table[e] = (ens_body_entry_t){f->keys[e], (int32_t)tu_below(r, nval)};
    }
    b->reason = (ens_reason_t)tu_below(r, ENS_REASON_COUNT);
    b->replaced = (int)tu_below(r, 2);
    b->ncandidates = tu_below(r, b->nmodels + 2);
    b->candidates = f->cand;
    for (size_t i = 0; i < b->ncandidates; i++) {
        if (i)
            snprintf(f->cnames[i], 32, "top-%zu", i);
        else
            snprintf(f->cnames[i], 32, "selection");
        f->cand[i] = (ens_body_candidate_t){S(f->cnames[i]), tu_below(r, 65),
                                            tu_below(r, 4) ? tu_uniform(r) : NAN, tu_uniform(r)};
    }
    b->choice_winner = b->ncandidates ? f->cand[tu_below(r, b->ncandidates)].name : S("selection");
    b->version = tu_next(r);
    b->expected_cost = tu_below(r, 3) ? tu_uniform(r) * 30 : NAN;
}

static void test_body_roundtrip_random(void **state)
{
    (void)state;
    static fixture_t f;
    tu_rng_t r;
    tu_seed(&r, 11);
    for (int t = 0; t < 200; t++) {
        random_body(&f, &r);
        assert_same_as_reference(&f.b);
        assert_roundtrip(&f.b);
    }
}

/* ---- decoding: unknown keys, rejections ---------------------------------- */

/* A valid body unpacked by msgpack-c, to be broken and packed again. */
typedef struct {
    fixture_t f;
    ens_mpw_t w; /* the encoded body; the tree's strings point into it */
    msgpack_zone zone;
    msgpack_object root;
} tree_t;

static void tree_load(tree_t *t, ens_comb_kind_t kind)
{
    fixture(&t->f, kind);
    encode(&t->f.b, &t->w);
    msgpack_zone_init(&t->zone, 4096);
    size_t off = 0;
    assert_int_equal(msgpack_unpack(t->w.data, t->w.size, &off, &t->zone, &t->root),
                     MSGPACK_UNPACK_SUCCESS);
}

static void tree_free(tree_t *t)
{
    msgpack_zone_destroy(&t->zone);
    ens_mpw_free(&t->w);
}

/* The object at a dotted path of map keys and array indices; *parent and
 * *idx locate it in its container. */
static msgpack_object *resolve(msgpack_object *o, const char *path, msgpack_object **parent,
                               size_t *idx)
{
    char seg[64];
    while (*path) {
        size_t n = strcspn(path, ".");
        assert_true(n < sizeof(seg));
        memcpy(seg, path, n);
        seg[n] = '\0';
        path += n + (path[n] == '.');
        *parent = o;
        if (o->type == MSGPACK_OBJECT_ARRAY) {
            *idx = strtoul(seg, NULL, 10);
            assert_true(*idx < o->via.array.size);
            o = &o->via.array.ptr[*idx];
            continue;
        }
        assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
        size_t i = 0;
        while (i < o->via.map.size && !(o->via.map.ptr[i].key.via.str.size == n &&
                                        memcmp(o->via.map.ptr[i].key.via.str.ptr, seg, n) == 0))
            i++;
        if (i == o->via.map.size)
            fail_msg("no key '%s'", seg);
        *idx = i;
        o = &o->via.map.ptr[i].val;
    }
    return o;
}

typedef enum { DROP, RENAME, STR, UINT, INT, NIL, BOOL, SHRINK, ADD_KEY } op_t;

typedef struct {
    ens_comb_kind_t kind;
    const char *path;
    op_t op;
    const char *s;
    int64_t n;
    const char *want; /* in the error message */
} mcase_t;

static void mutate(tree_t *t, const mcase_t *c)
{
    msgpack_object *parent = NULL;
    size_t idx = 0;
    msgpack_object *o = resolve(&t->root, c->path, &parent, &idx);
    switch (c->op) {
    case DROP:
        memmove(&parent->via.map.ptr[idx], &parent->via.map.ptr[idx + 1],
                (parent->via.map.size - idx - 1) * sizeof(msgpack_object_kv));
        parent->via.map.size--;
        break;
    case RENAME:
        parent->via.map.ptr[idx].key.via.str.ptr = c->s;
        parent->via.map.ptr[idx].key.via.str.size = (uint32_t)strlen(c->s);
        break;
    case STR:
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.ptr = c->s;
        o->via.str.size = (uint32_t)strlen(c->s);
        break;
    case UINT:
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = (uint64_t)c->n;
        break;
    case INT:
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = c->n;
        break;
    case NIL:
        o->type = MSGPACK_OBJECT_NIL;
        break;
    case BOOL:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = true;
        break;
    case SHRINK:
        o->via.array.size--; /* an array's or a map's count */
        break;
    case ADD_KEY: {
        /* A new key c->s with value nil at the front of the map o. */
        uint32_t n = o->via.map.size;
        msgpack_object_kv *kv = msgpack_zone_malloc(&t->zone, (n + 1) * sizeof(*kv));
        memcpy(kv + 1, o->via.map.ptr, n * sizeof(*kv));
        kv[0].key.type = MSGPACK_OBJECT_STR;
        kv[0].key.via.str.ptr = c->s;
        kv[0].key.via.str.size = (uint32_t)strlen(c->s);
        kv[0].val.type = MSGPACK_OBJECT_NIL;
        o->via.map.ptr = kv;
        o->via.map.size = n + 1;
        break;
    }
    }
}

/* Decodes the packed tree: 0 and the body, or the error in err. */
static int decode_tree(tree_t *t, ens_body_t **out, char *err, size_t errlen)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, t->root);
    int rc = ens_body_decode(sb.data, sb.size, out, err, errlen);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void expect_rejected(const mcase_t *c)
{
    tree_t t;
    tree_load(&t, c->kind);
    mutate(&t, c);
    ens_body_t *b = (ens_body_t *)&t; /* must be overwritten */
    char err[256] = "";
    int rc = decode_tree(&t, &b, err, sizeof(err));
    if (rc != ENS_EPARSE)
        fail_msg("%s (op %d): accepted", c->path, (int)c->op);
    assert_null(b);
    if (!strstr(err, c->want))
        fail_msg("%s (op %d): error '%s' does not mention '%s'", c->path, (int)c->op, err, c->want);
    tree_free(&t);
}

#define T ENS_COMB_TABLE
#define P ENS_COMB_PATTERN
static const mcase_t reject_cases[] = {
    {T, "steps.1.model", DROP, NULL, 0, "steps[1].model: missing"},
    {T, "steps.0.rows", DROP, NULL, 0, "steps[0].rows: missing"},
    {T, "combiner.kind", DROP, NULL, 0, "combiner.kind: missing"},
    {T, "combiner.table", DROP, NULL, 0, "combiner.table: missing"},
    {T, "accuracy.in_sample", DROP, NULL, 0, "accuracy.in_sample: missing"},
    {T, "bounds.copula_error_floor", DROP, NULL, 0, "bounds.copula_error_floor: missing"},
    {T, "explore.rule", DROP, NULL, 0, "explore.rule: missing"},
    {T, "version", INT, NULL, -1, "version: not an unsigned integer"},
    {T, "ts", STR, "now", 0, "ts: not a number"},
    {T, "ts", NIL, NULL, 0, "ts: not a number"},
    {T, "steps.2.rows", INT, NULL, -5, "steps[2].rows"},
    {T, "steps.0", STR, "x", 0, "steps[0]: not a map"},
    {T, "accuracy.combiner", STR, "x", 0, "accuracy.combiner: not a number"},
    {T, "explore.models.1", UINT, NULL, 1, "explore.models: not a string"},
    {T, "labels.0", NIL, NULL, 0, "labels: not a string"},
    {T, "coverage.old", NIL, NULL, 0, "coverage: rows"},
    {T, "freshness.old", STR, "1", 0, "freshness: not a number"},
    {T, "budget", RENAME, "version", 0, "version: given twice"},
    {T, "combiner.kind", STR, "majority", 0, "combiner.kind"},
    {T, "reason", STR, "because", 0, "reason: not a known reason"},
    {T, "reason", STR, "more information ", 0, "reason"},
    {T, "excluded.old", STR, "retired", 0, "unknown exclusion"},
    {T, "excluded.old", STR, "", 0, "unknown exclusion"},
    {T, "excluded.old", RENAME, "nobody", 0, "excluded: a model not in coverage"},
    {T, "freshness.new", RENAME, "nobody", 0, "freshness: a model not in coverage"},
    {T, "freshness.new", RENAME, "old", 0, "freshness: \"old\" given twice"},
    {T, "freshness.new", DROP, NULL, 0, "freshness: 4 models, coverage has 5"},
    {T, "coverage.old", RENAME, "new", 0, "coverage: \"new\" given twice"},
    {T, "costs.old", STR, "1", 0, "costs: not a number"},
    {T, "costs.new", RENAME, "nobody", 0, "costs: a model not in coverage"},
    {T, "costs.new", RENAME, "old", 0, "costs: \"old\" given twice"},
    {T, "costs.new", DROP, NULL, 0, "costs: 4 models, coverage has 5"},
    {T, "expected_cost", STR, "x", 0, "expected_cost: not a number"},
    {T, "labels.1", STR, "A", 0, "labels: \"A\" given twice"},
    {T, "models", SHRINK, NULL, 0, "steps: not an array of 2"},
    {T, "steps", SHRINK, NULL, 0, "steps: not an array of 3"},
    {T, "combiner.weights", SHRINK, NULL, 0, "combiner.weights"},
    {T, "combiner.weights.0", STR, "x", 0, "combiner.weights: not a number"},
    {T, "combiner.table.1", SHRINK, NULL, 0, "combiner.table[1]: not an array of 4 cells"},
    {T, "combiner.table.0.1", STR, "Z", 0, "combiner.table[0]: not one of the labels"},
    {T, "combiner.table.2.1", UINT, NULL, 1, "combiner.table[2]: not one of the labels"},
    {T, "combiner.table.3.3", STR, "?", 0, "combiner.table[3]: not one of the labels"},
    {T, "combiner.table.3.3", NIL, NULL, 0, "combiner.table[3]: not one of the labels"},
    {P, "combiner.table.0.0", UINT, NULL, 3, "combiner.table[0]: a class index out of range"},
    {P, "combiner.table.1.3", UINT, NULL, 3, "combiner.table[1]: a class index out of range"},
    {P, "combiner.table.1.0", INT, NULL, -3, "combiner.table[1]: a class index out of range"},
    {P, "combiner.table.1.3", INT, NULL, -1, "combiner.table[1]: a class index out of range"},
    {P, "combiner.table.1.1", STR, "A", 0, "combiner.table[1]: a class index out of range"},
    {P, "combiner.table.2.0", NIL, NULL, 0, "combiner.table[2]"},
    {P, "combiner.table.2", SHRINK, NULL, 0, "combiner.table[2]: not an array of 4 cells"},
    {T, "choice.winner", STR, "top-9", 0, "choice.winner: names no candidate"},
    {T, "choice.winner", DROP, NULL, 0, "choice.winner: missing"},
    {T, "choice.candidates", STR, "x", 0, "choice.candidates: not an array"},
    {T, "choice.candidates.1.name", DROP, NULL, 0, "choice.candidates[1].name: missing"},
    {T, "choice.candidates.0.accuracy", STR, "x", 0, "choice.candidates[0].accuracy: not a number"},
    {T, "choice.candidates.2.models", INT, NULL, -1, "choice.candidates[2].models"},
};
#undef T
#undef P

static void test_body_rejects(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++)
        expect_rejected(&reject_cases[i]);
}

/* Every top-level key missing, and every one of the wrong type. */
static void test_body_rejects_each_key(void **state)
{
    (void)state;
    for (size_t k = 0; k < 24; k++) {
        char want[64];
        snprintf(want, sizeof(want), "%s: missing", top_keys[k]);
        mcase_t drop = {ENS_COMB_TABLE, top_keys[k], DROP, NULL, 0, want};
        expect_rejected(&drop);
        /* A boolean is right for no field but replaced; a string is wrong
         * there. */
        int is_bool = strcmp(top_keys[k], "replaced") == 0;
        mcase_t type = {ENS_COMB_PATTERN, top_keys[k], is_bool ? STR : BOOL, "x", 0, top_keys[k]};
        expect_rejected(&type);
    }
}

/* `protocol`: 1 when absent (bodies of protocol 1), a positive integer
 * otherwise, once. */
static void test_body_protocol_field(void **state)
{
    (void)state;
    tree_t t;
    tree_load(&t, ENS_COMB_TABLE);
    ens_body_t *b = NULL;
    char err[256] = "";
    if (decode_tree(&t, &b, err, sizeof(err)) != 0)
        fail_msg("rejected: %s", err);
    assert_int_equal(b->protocol, 2);
    ens_body_destroy(&b);
    mcase_t drop = {ENS_COMB_TABLE, "protocol", DROP, NULL, 0, NULL};
    mutate(&t, &drop);
    if (decode_tree(&t, &b, err, sizeof(err)) != 0)
        fail_msg("rejected without protocol: %s", err);
    assert_int_equal(b->protocol, 1);
    ens_body_destroy(&b);
    tree_free(&t);
    static const mcase_t bad[] = {
        {ENS_COMB_TABLE, "protocol", STR, "2", 0, "protocol: not a positive integer"},
        {ENS_COMB_TABLE, "protocol", BOOL, NULL, 0, "protocol: not a positive integer"},
        {ENS_COMB_TABLE, "", ADD_KEY, "protocol", 0, "protocol: given twice"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_rejected(&bad[i]);
}

static void test_body_ignores_unknown_keys(void **state)
{
    (void)state;
    static const mcase_t adds[] = {{ENS_COMB_TABLE, "", ADD_KEY, "future", 0, NULL},
                                   {ENS_COMB_TABLE, "combiner", ADD_KEY, "bias", 0, NULL},
                                   {ENS_COMB_TABLE, "steps.1", ADD_KEY, "cost", 0, NULL},
                                   {ENS_COMB_TABLE, "explore", ADD_KEY, "seed", 0, NULL},
                                   {ENS_COMB_TABLE, "bounds", ADD_KEY, "new_bound", 0, NULL},
                                   {ENS_COMB_TABLE, "choice", ADD_KEY, "margin", 0, NULL}};
    tree_t t;
    tree_load(&t, ENS_COMB_TABLE);
    for (size_t i = 0; i < sizeof(adds) / sizeof(adds[0]); i++)
        mutate(&t, &adds[i]);
    assert_int_equal(t.root.via.map.size, 26);
    ens_body_t *b = NULL;
    char err[256] = "";
    if (decode_tree(&t, &b, err, sizeof(err)) != 0)
        fail_msg("rejected: %s", err);
    assert_body_equal(b, &t.f.b);
    ens_body_destroy(&b);
    tree_free(&t);
}

static void expect_bytes_rejected(const void *buf, size_t len, const char *want)
{
    ens_body_t *b = (ens_body_t *)&len;
    char err[256] = "";
    assert_int_equal(ens_body_decode(buf, len, &b, err, sizeof(err)), ENS_EPARSE);
    assert_null(b);
    if (want && !strstr(err, want))
        fail_msg("error '%s' does not mention '%s'", err, want);
}

static void test_body_rejects_bad_bytes(void **state)
{
    (void)state;
    fixture_t f;
    fixture(&f, ENS_COMB_PATTERN);
    ens_mpw_t w;
    encode(&f.b, &w);
    /* Every strict prefix is truncated. */
    for (size_t n = 0; n < w.size; n++)
        expect_bytes_rejected(w.data, n, "truncated");
    /* One byte too many. */
    char *more = malloc(w.size + 1);
    memcpy(more, w.data, w.size);
    more[w.size] = (char)0xc0;
    expect_bytes_rejected(more, w.size + 1, "after the MessagePack object");
    free(more);
    ens_mpw_free(&w);
    /* msgpack-c issue #1013: an array32 of 4 billion items in five bytes. */
    static const unsigned char trap[] = {0xdd, 0xff, 0x00, 0x00, 0x00};
    expect_bytes_rejected(trap, sizeof(trap), "truncated");
    static const unsigned char trap_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0};
    expect_bytes_rejected(trap_map, sizeof(trap_map), "truncated");
    /* Not a map; a map without any known key; nesting too deep. */
    static const unsigned char arr[] = {0x90}, empty[] = {0x80};
    expect_bytes_rejected(arr, sizeof(arr), "body: not a map");
    expect_bytes_rejected(empty, sizeof(empty), "task: missing");
    unsigned char deep[12];
    memset(deep, 0x91, sizeof(deep));
    deep[0] = 0x81;
    deep[1] = 0xa1; /* {"x": [[[...]]]} */
    deep[2] = 'x';
    deep[11] = 0xc0;
    expect_bytes_rejected(deep, sizeof(deep), "nested too deep");
}

static void test_body_destroy_null_safe(void **state)
{
    (void)state;
    ens_body_destroy(NULL);
    ens_body_t *b = NULL;
    ens_body_destroy(&b);
    assert_null(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_names),
        cmocka_unit_test(test_body_matches_daemon_packing),
        cmocka_unit_test(test_body_keys_in_order),
        cmocka_unit_test(test_body_pattern_cells_are_integers),
        cmocka_unit_test(test_body_roundtrip_every_kind),
        cmocka_unit_test(test_body_roundtrip_random),
        cmocka_unit_test(test_body_rejects),
        cmocka_unit_test(test_body_rejects_each_key),
        cmocka_unit_test(test_body_ignores_unknown_keys),
        cmocka_unit_test(test_body_protocol_field),
        cmocka_unit_test(test_body_rejects_bad_bytes),
        cmocka_unit_test(test_body_destroy_null_safe),
    };
    return cmocka_run_group_tests_name("body", tests, NULL, NULL);
}
