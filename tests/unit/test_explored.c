/* test_explored.c - the pipeline in a closed loop with routers, with and
 * without the rows' exploration flags (data.h's `explored`).
 *
 * A sampled fleet (ens_sample): three strong models that fail together, two
 * mid-size ones and three weak independent ones, two labels; the strong
 * trio's vote is worse than what greedy-mi finds offline. Routers follow
 * the publications: on an ordinary query they ask only the published
 * ensemble, on an exploration query (EXPLORE of them, at random) every
 * model. The loop starts with the strong trio published (what a first
 * publication on few rows may pick) and runs ROUNDS rounds: STEP new rows
 * enter a window of WINDOW rows, the pipeline runs on the window, and what
 * it publishes is what the routers ask next.
 *
 * Reference, independent of the pipeline: the full sampled answers of
 * REF_ROWS other rows. The published ensemble's true accuracy is its body
 * combined by the router library (ens_router_combine) on them; the
 * alternatives are the best single model and the weighted vote of the top
 * K models, K up to the budget, ranked and weighted by accuracy on the full
 * answers of the stream (what a user with every answer would build).
 *
 * With the flags, the published ensemble's true accuracy, averaged over the
 * last TAIL rounds, is at least max(alternatives) - 0.005. Without them
 * (every row counted as explored: the behaviour before the flag) the final
 * choice scores every candidate holding a model outside the published set
 * on rows where that model was not asked, and the loop stays on the trio:
 * the test asserts that it ends lower, by at least 0.01, and publishes the
 * trio in more rounds.
 *
 * The window is the daemon's default (50,000 rows), so that 5 %
 * exploration gives about 2,500 rows on which every model was asked. On a
 * window of 10,000 rows (make demo) the 500 explored rows cannot tell the
 * two sets apart under the final choice's one-sided rule, with or without
 * flags (docs/exploration.md). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ensembled/body.h"
#include "ensembled/data.h"
#include "ensembled/pipeline.h"
#include "ensembled/router.h"
#include "ensembled/sample.h"
#include "testutil.h"

#define WINDOW 50000
#define STEP 5000
#define ROUNDS 16
#define TAIL 8
#define REF_ROWS 20000
#define EXPLORE 0.05
#define BUDGET 3
#define MAXM 16

static const ens_family_t families[] = {
    {"strong", 3, 0.80, 0.95},
    {"mid", 2, 0.72, 0.50},
    {"small", 3, 0.68, 0.05},
};

static ens_data_t *fleet(size_t rows, uint64_t seed)
{
    ens_sample_opts_t o = {families, 3, rows, 2, 0.0, seed};
    char err[200];
    ens_data_t *d = ens_sample(&o, err, sizeof(err));
    assert_non_null(d);
    return d;
}

/* The published body combined on every row of ref, by the router library:
 * the share of rows whose decision is the true label. */
static double true_accuracy(const ens_body_t *b, const ens_data_t *ref)
{
    size_t cols[MAXM], right = 0;
    for (size_t i = 0; i < b->nmodels; i++) {
        char name[ENS_MAX_NAME];
        snprintf(name, sizeof(name), "%.*s", (int)b->models[i].len, b->models[i].ptr);
        int j = ens_data_find_model(ref, name);
        assert_true(j >= 0);
        cols[i] = (size_t)j;
    }
    for (size_t r = 0; r < ref->nrows; r++) {
        ens_str_t ans[MAXM], out;
        for (size_t i = 0; i < b->nmodels; i++) {
            const char *l = ref->label_names[ens_data_col(ref, cols[i])[r]];
            ans[i] = (ens_str_t){l, strlen(l)};
        }
        if (ens_router_combine(b, ans, &out) != 0)
            continue;
        const char *truth = ref->label_names[ref->y[r]];
        right += out.len == strlen(truth) && memcmp(out.ptr, truth, out.len) == 0;
    }
    return (double)right / (double)ref->nrows;
}

/* Weighted vote of models[0..k) with log-odds weights from train, scored
 * on test: an implementation of its own, not the library's combiner. */
static double vote_accuracy(const ens_data_t *train, const ens_data_t *test, const size_t *models,
                            size_t k)
{
    double w[MAXM];
    for (size_t i = 0; i < k; i++) {
        double p = ens_data_accuracy(train, models[i]);
        w[i] = log(p / (1 - p));
    }
    size_t right = 0;
    for (size_t r = 0; r < test->nrows; r++) {
        double score[2] = {0, 0};
        for (size_t i = 0; i < k; i++)
            score[ens_data_col(test, models[i])[r]] += w[i];
        uint8_t pick = score[1] > score[0] ? 1 : 0;
        right += pick == test->y[r];
    }
    return (double)right / (double)test->nrows;
}

/* max(best single, top-K weighted vote for K <= BUDGET) on ref. */
static double alternatives(const ens_data_t *train, const ens_data_t *ref)
{
    size_t order[MAXM], m = train->nmodels;
    for (size_t j = 0; j < m; j++)
        order[j] = j;
    for (size_t a = 0; a < m; a++)
        for (size_t b = a + 1; b < m; b++)
            if (ens_data_accuracy(train, order[b]) > ens_data_accuracy(train, order[a])) {
                size_t t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
    double best = 0;
    for (size_t k = 1; k <= BUDGET; k++) {
        double acc = vote_accuracy(train, ref, order, k);
        best = acc > best ? acc : best;
    }
    return best;
}

/* A splitmix64 draw in [0, 1): which rows are exploration queries. */
static double draw(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

typedef struct {
    double tail_acc;    /* mean true accuracy over the last TAIL rounds */
    char last[256];     /* the last published set */
    size_t trio_rounds; /* rounds whose publication is the strong trio */
} loop_t;

/* Whether model name n is one of the published set's. */
static int published(const ens_str_t *pub, size_t npub, const char *n)
{
    for (size_t i = 0; i < npub; i++)
        if (pub[i].len == strlen(n) && memcmp(pub[i].ptr, n, pub[i].len) == 0)
            return 1;
    return 0;
}

static void run_loop(const ens_data_t *stream, const ens_data_t *ref, int flags, loop_t *out)
{
    size_t n = stream->nrows, m = stream->nmodels;
    uint16_t *asked = calloc(n, sizeof(uint16_t)); /* per row: bitmask of models asked */
    uint8_t *explored = calloc(n, 1);
    uint64_t s = 12345;
    /* Published at the start: the strong trio. */
    static char names[MAXM][ENS_MAX_NAME];
    ens_str_t pub[MAXM];
    size_t npub = 3;
    for (size_t i = 0; i < npub; i++) {
        snprintf(names[i], sizeof(names[i]), "strong-%zu", i + 1);
        pub[i] = (ens_str_t){names[i], strlen(names[i])};
    }
    ens_pipeline_opts_t o;
    ens_pipeline_opts_default(&o);
    o.select.budget = BUDGET;
    o.explore_rate = EXPLORE;
    memset(out, 0, sizeof(*out));
    size_t upto = 0; /* rows generated */
    for (size_t round = 0; round < ROUNDS; round++) {
        size_t end = round == 0 ? WINDOW : upto + STEP;
        for (; upto < end; upto++) {
            explored[upto] = draw(&s) < EXPLORE;
            for (size_t j = 0; j < m; j++)
                if (explored[upto] || published(pub, npub, stream->model_names[j]))
                    asked[upto] |= (uint16_t)(1u << j);
        }
        size_t *rows = calloc(WINDOW, sizeof(size_t));
        for (size_t i = 0; i < WINDOW; i++)
            rows[i] = upto - WINDOW + i;
        ens_data_t *win = ens_data_rows(stream, rows, WINDOW);
        for (size_t i = 0; i < WINDOW; i++) {
            for (size_t j = 0; j < m; j++)
                if (!(asked[rows[i]] >> j & 1))
                    win->x[j * WINDOW + i] = ENS_SYM_MISSING;
            if (flags)
                ens_data_set_explored(win, i, explored[rows[i]]);
        }
        free(rows);
        ens_pipeline_in_t in = {.snap = win, .prev = pub, .nprev = npub};
        ens_pipeline_t *p = NULL;
        char err[256];
        assert_int_equal(ens_pipeline_run(&in, &o, &p, err, sizeof(err)), 0);
        const ens_body_t *b = ens_pipeline_body(p);
        double acc = true_accuracy(b, ref);
        npub = b->nmodels;
        out->last[0] = '\0';
        int trio = npub == 3;
        for (size_t i = 0; i < npub; i++) {
            snprintf(names[i], sizeof(names[i]), "%.*s", (int)b->models[i].len, b->models[i].ptr);
            pub[i] = (ens_str_t){names[i], strlen(names[i])};
            trio &= strncmp(names[i], "strong-", 7) == 0;
            strncat(out->last, names[i], sizeof(out->last) - strlen(out->last) - 2);
            strncat(out->last, " ", sizeof(out->last) - strlen(out->last) - 1);
        }
        out->trio_rounds += (size_t)trio;
        if (round >= ROUNDS - TAIL)
            out->tail_acc += acc / TAIL;
        printf("# %s round %2zu: true accuracy %.4f, published %s(%s, %.*s:",
               flags ? "flags   " : "no flags", round, acc, out->last, ens_reason_name(b->reason),
               (int)b->choice_winner.len, b->choice_winner.ptr);
        for (size_t c = 0; c < b->ncandidates; c++)
            printf(" %.*s %.3f", (int)b->candidates[c].name.len, b->candidates[c].name.ptr,
                   b->candidates[c].accuracy);
        printf(")\n");
        ens_pipeline_destroy(&p);
        ens_data_destroy(&win);
    }
    free(asked);
    free(explored);
}

static void test_closed_loop(void **state)
{
    (void)state;
    ens_data_t *stream = fleet(WINDOW + (ROUNDS - 1) * STEP, 101);
    ens_data_t *ref = fleet(REF_ROWS, 202);
    double alt = alternatives(stream, ref);
    loop_t with, without;
    run_loop(stream, ref, 1, &with);
    run_loop(stream, ref, 0, &without);
    printf("# alternatives %.4f; with flags %.4f (trio in %zu rounds), without %.4f (trio in %zu "
           "rounds)\n",
           alt, with.tail_acc, with.trio_rounds, without.tail_acc, without.trio_rounds);
    assert_true(with.tail_acc >= alt - 0.005);
    assert_true(with.tail_acc - without.tail_acc >= 0.01);
    assert_true(with.trio_rounds < without.trio_rounds);
    ens_data_destroy(&stream);
    ens_data_destroy(&ref);
}

/* The flag follows rows through ens_data_rows and ens_data_columns, and a
 * matrix without ordinary rows has none. */
static void test_flag_copies(void **state)
{
    (void)state;
    ens_data_t *d = ens_data_new(4, 2, 2);
    assert_null(d->explored);
    ens_data_set_explored(d, 2, 1);
    assert_null(d->explored);
    ens_data_set_explored(d, 1, 0);
    assert_non_null(d->explored);
    size_t rows[] = {3, 1, 1}, cols[] = {1};
    ens_data_t *r = ens_data_rows(d, rows, 3);
    assert_true(ens_data_explored(r, 0));
    assert_false(ens_data_explored(r, 1));
    assert_false(ens_data_explored(r, 2));
    ens_data_t *c = ens_data_columns(d, cols, 1);
    assert_false(ens_data_explored(c, 1));
    assert_true(ens_data_explored(c, 0) && ens_data_explored(c, 2) && ens_data_explored(c, 3));
    ens_data_destroy(&d);
    ens_data_destroy(&r);
    ens_data_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flag_copies),
        cmocka_unit_test(test_closed_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
