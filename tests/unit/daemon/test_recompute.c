/* test_recompute.c - a selection's window copied a piece at a time while
 * rows keep joining (recompute.c's job_begin, job_step, finish_snapshot,
 * reached by including the file, as its statics are the subject).
 *
 * Each row's true label and answers are a function of its serial number, so
 * the rows a snapshot holds can be told apart. The reference is plain
 * serial arithmetic: a full window of R rows after P pushes holds serials
 * P - R + 1 .. P; the copy takes, from the serials present at its start,
 * those still present when their piece comes, oldest first, a piece of
 * cells / models rows at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "recompute.c"

#define ROWS 100
#define LABELS 100
#define MODELS 3

static void published_none(void *ud, const ens_task_t *t, const ens_str_t **names, size_t *n)
{
    (void)ud;
    (void)t;
    *names = NULL;
    *n = 0;
}

static void done_unused(void *ud, ens_task_t *t, const ens_pipeline_t *p)
{
    (void)ud;
    (void)t;
    (void)p;
}

/* Row s: label s % LABELS; model a answers (7 s) % LABELS, b abstains on
 * multiples of 3 and answers (s + 1) % LABELS otherwise, c is not asked on
 * multiples of 4 and answers (3 s) % LABELS otherwise. */
static void row_of(uint64_t s, uint8_t *y, uint8_t *x)
{
    *y = (uint8_t)(s % LABELS);
    x[0] = (uint8_t)((7 * s) % LABELS);
    x[1] = s % 3 == 0 ? ENS_SYM_ABSTAIN : (uint8_t)((s + 1) % LABELS);
    x[2] = s % 4 == 0 ? ENS_SYM_MISSING : (uint8_t)((3 * s) % LABELS);
}

static void push(ens_task_t *t, uint64_t s)
{
    uint8_t y, x[MODELS];
    row_of(s, &y, x);
    assert_int_equal(ens_window_push(t->window, y, x, MODELS, (double)s), 0);
}

/* Copies the window of a full task while `joins` rows join between pieces
 * of `per_piece` rows; checks the snapshot against the reference. */
static void copy_while_joining(size_t per_piece, size_t joins)
{
    ens_config_t conf;
    ens_config_defaults(&conf);
    conf.task.window_rows = ROWS;
    ens_tasks_t *tasks = ens_tasks_new(&conf);
    ens_task_t *t = ens_tasks_intern(tasks, "t", 1);
    const char *models[MODELS] = {"a", "b", "c"};
    for (int m = 0; m < MODELS; m++)
        assert_int_equal(ens_task_model(t, models[m], 1), m);
    for (int l = 0; l < LABELS; l++) {
        char name[8];
        snprintf(name, sizeof(name), "L%d", l);
        assert_int_equal(ens_task_label(t, name, strlen(name)), l);
    }
    uint64_t pushed = 0;
    while (pushed < ROWS + 17)
        push(t, ++pushed);
    ens_recompute_hooks_t hooks = {published_none, done_unused, NULL};
    ens_recompute_t *rc = ens_recompute_new(NULL, tasks, &conf, &hooks);
    job_t *j = job_begin(rc, t);
    uint64_t first = pushed - ROWS + 1, end = pushed, cursor = first;
    uint64_t expect[ROWS];
    size_t nexpect = 0;
    for (int done = 0; !done;) {
        /* The reference: what this piece takes. */
        uint64_t oldest = pushed - ROWS + 1;
        if (cursor < oldest)
            cursor = oldest;
        for (size_t k = 0; k < per_piece && cursor <= end; k++)
            expect[nexpect++] = cursor++;
        size_t cells = 0;
        done = job_step(j, t->window, per_piece * MODELS, &cells);
        for (size_t k = 0; k < joins; k++)
            push(t, ++pushed);
    }
    finish_snapshot(j);
    const ens_data_t *d = j->snap;
    assert_int_equal(d->nrows, nexpect);
    if (joins > per_piece)
        assert_true(nexpect < ROWS); /* rows did leave during the copy */
    assert_int_equal(d->nmodels, MODELS);
    assert_int_equal(d->nlabels, LABELS);
    for (size_t i = 0; i < nexpect; i++) {
        uint8_t y, x[MODELS];
        row_of(expect[i], &y, x);
        assert_int_equal(d->y[i], y);
        for (size_t m = 0; m < MODELS; m++)
            assert_int_equal(ens_data_col(d, m)[i], x[m]);
    }
    for (size_t m = 0; m < MODELS; m++)
        assert_string_equal(d->model_names[m], models[m]);
    assert_string_equal(d->label_names[42], "L42");
    job_free(j);
    ens_recompute_destroy(&rc);
    ens_tasks_destroy(&tasks);
}

/* No row joins: the snapshot is the window. */
static void test_copy_still(void **state)
{
    (void)state;
    copy_while_joining(7, 0);
}

/* Rows join a little faster than the copy goes: a row leaves before its
 * piece now and then, the rest are all there, columns closed up. */
static void test_copy_while_joining(void **state)
{
    (void)state;
    copy_while_joining(5, 6);
}

/* Rows join faster than the copy goes: most rows leave before their piece. */
static void test_copy_overtaken(void **state)
{
    (void)state;
    copy_while_joining(3, 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_still),
        cmocka_unit_test(test_copy_while_joining),
        cmocka_unit_test(test_copy_overtaken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
