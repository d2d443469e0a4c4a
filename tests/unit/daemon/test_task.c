/* test_task.c - model slots are freed once a model has retired and no row
 * of the window holds it, live and across restarts, so that
 * ingest.max_models caps the models held, not every model ever seen; label
 * slots likewise.
 *
 * Events go in through ingest (rig.h); windows are compared with the rows
 * the test fed, and the models a selection would see with the names the
 * test expects, never with what the task module reports of itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ensembled/err.h"
#include "rig.h"

static const char letters[] = "abcdefgh";

/* Row i of task "t": label A or B, answered by each model named in `who`
 * (one letter a model). */
static rig_row_t row_of(const char *who, size_t i)
{
    static const ens_str_t labels[] = {SI("A"), SI("B")};
    rig_row_t r = {.task = S("t"), .label = labels[i % 2], .ts = 1.7e9 + (double)i};
    for (const char *c = who; *c; c++) {
        r.model[r.n] = (ens_str_t){&letters[*c - 'a'], 1};
        r.answer[r.n++] = labels[(i + (size_t)(*c - 'a')) % 2];
    }
    return r;
}

/* Appends n rows answered by `who` to rows[*k..). */
static void add_rows(rig_row_t *rows, size_t *k, const char *who, size_t n)
{
    for (size_t i = 0; i < n; i++, (*k)++)
        rows[*k] = row_of(who, *k);
}

/* A prediction of a new query by model `name`: ingest's verdict. */
static int predict(rig_life_t *l, const char *name)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ens_str_t m = {name, strlen(name)}, a = S("A");
    rig_pack_prediction(&pk, S("t"), l->query++, &m, &a, 1);
    int rc = rig_ingest(l, &sb);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static const ens_task_t *task_t(const rig_life_t *l)
{
    return rig_task(l, S("t"));
}

/* The models a selection sees (the window's snapshot) are exactly `want`,
 * in id order, each with as many answered rows as the rows fed say. */
static void check_models(const rig_life_t *l, const char *want, const rig_row_t *rows, size_t n)
{
    const ens_window_t *w = task_t(l)->window;
    ens_data_t *d = ens_window_snapshot(w);
    assert_int_equal(d->nmodels, strlen(want));
    assert_int_equal(ens_window_models_held(w), strlen(want));
    for (size_t j = 0; j < d->nmodels; j++) {
        char name[2] = {want[j], 0};
        assert_string_equal(d->model_names[j], name);
        size_t answered = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < rows[i].n; k++)
                answered += rows[i].model[k].ptr[0] == want[j];
        size_t have = 0;
        for (size_t i = 0; i < d->nrows; i++)
            have += ens_data_col(d, j)[i] != ENS_SYM_MISSING;
        assert_int_equal(have, answered);
    }
    ens_data_destroy(&d);
}

static int setup(void **state)
{
    rig_setup(state);
    rig_fx_t *fx = *state;
    fx->conf.max_models = 3;
    fx->conf.task.window_rows = 10;
    fx->conf.task.retire_after = 60;
    fx->conf.task.join_ttl = 10;
    return 0;
}

/* The scenario: three models, two of them leave the window; a
 * fourth is dropped until they have retired, then takes a freed slot, and
 * so does a fifth. A crash and a restart keep exactly that. */
static void test_task_retired_models_free_their_slots(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t rows[64];
    size_t k = 0;
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    add_rows(rows, &k, "abc", 10);
    add_rows(rows, &k, "a", 10);
    rig_feed_all(l, rows, k);
    rig_turn(l);
    /* b and c are out of the window but have not retired: no room. */
    assert_int_equal(predict(l, "d"), -1);
    ens_tasks_tick(l->tasks, 1.7e9, l->mono + 30);
    assert_int_equal(task_t(l)->models_freed, 0);
    assert_int_equal(predict(l, "d"), -1);
    check_models(l, "abc", rows + k - 10, 10);

    /* Silent past select.retire_after: b and c go, a (in every row) stays. */
    l->mono += 61;
    ens_tasks_tick(l->tasks, 1.7e9, l->mono);
    assert_int_equal(task_t(l)->models_freed, 2);
    check_models(l, "a", rows + k - 10, 10);
    assert_int_equal(ens_window_find_model(task_t(l)->window, "b", 1), ENS_ENOTFOUND);
    add_rows(rows, &k, "ad", 4);
    add_rows(rows, &k, "ae", 4);
    rig_feed_all(l, rows + 20, 8);
    rig_turn(l);
    assert_int_equal(predict(l, "f"), -1); /* a, d, e: full again */
    /* d and e reuse the freed ids: nothing indexed by id grew. */
    assert_int_equal(ens_window_find_model(task_t(l)->window, "d", 1), 1);
    assert_int_equal(ens_window_find_model(task_t(l)->window, "e", 1), 2);
    assert_int_equal(ens_window_models(task_t(l)->window), 3);
    assert_true(task_t(l)->last_row[1] == rows[23].ts);
    assert_true(task_t(l)->last_row[2] == rows[27].ts);
    rig_check(l, rows + k - 10, 10, 1);
    check_models(l, "ade", rows + k - 10, 10);

    /* A crash: the journal names id 1 as b, then as d; replayed in order,
     * every row keeps its model, and b and c hold no slot afterwards. */
    rig_crash(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows + k - 10, 10, 1);
    check_models(l, "ade", rows + k - 10, 10);
    assert_int_equal(predict(l, "f"), -1);
    /* A clean stop: the snapshot holds the same. */
    rig_close(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows + k - 10, 10, 1);
    check_models(l, "ade", rows + k - 10, 10);
    rig_close(&l);
}

/* Across a restart: models no restored row holds take no slot (no query is
 * pending after a restart), so a new model fits at once. */
static void test_task_restart_frees_models_without_rows(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t rows[64];
    size_t k = 0;
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    add_rows(rows, &k, "abc", 10);
    add_rows(rows, &k, "a", 10);
    rig_feed_all(l, rows, k);
    rig_turn(l);
    assert_int_equal(predict(l, "d"), -1);
    rig_crash(&l);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    check_models(l, "a", rows + k - 10, 10);
    assert_int_equal(task_t(l)->models_freed, 2);
    add_rows(rows, &k, "ad", 3);
    rig_feed_all(l, rows + 20, 3);
    rig_turn(l);
    rig_check(l, rows + k - 10, 10, 1);
    check_models(l, "ad", rows + k - 10, 10);
    rig_close(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows + k - 10, 10, 1);
    check_models(l, "ad", rows + k - 10, 10);
    rig_close(&l);
}

/* select.retire_after = 0 (never retire): a model out of the window keeps
 * its slot while the daemon runs. */
static void test_task_never_retire_keeps_slots(void **state)
{
    rig_fx_t *fx = *state;
    fx->conf.task.retire_after = 0;
    rig_row_t rows[32];
    size_t k = 0;
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    add_rows(rows, &k, "abc", 10);
    add_rows(rows, &k, "a", 10);
    rig_feed_all(l, rows, k);
    l->mono += 1e6;
    ens_tasks_tick(l->tasks, 1.7e9, l->mono);
    assert_int_equal(task_t(l)->models_freed, 0);
    assert_int_equal(predict(l, "d"), -1);
    rig_close(&l);
}

/* Rows of task "t" whose truth and answers are label `lab`, models a, b. */
static rig_row_t label_row(ens_str_t lab, size_t i)
{
    rig_row_t r = {.task = S("t"), .label = lab, .ts = 1.7e9 + (double)i, .n = 2};
    r.model[0] = S("a");
    r.model[1] = S("b");
    r.answer[0] = r.answer[1] = lab;
    return r;
}

/* Labels likewise: one that left the window and has been unused as long as
 * a retired model frees its slot; a restart frees labels no restored row
 * holds; the labels a selection sees are the ones held. */
static void test_task_labels_free_their_slots(void **state)
{
    rig_fx_t *fx = *state;
    static const ens_str_t labs[] = {SI("L1"), SI("L2"), SI("L3")};
    rig_row_t rows[64];
    size_t k = 0;
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < 10; i++, k++)
            rows[k] = label_row(labs[g], k);
    rig_feed_all(l, rows, k); /* L1 and L2 left the window */
    rig_turn(l);
    const ens_window_t *w = task_t(l)->window;
    assert_int_equal(ens_window_labels_held(w), 3);
    ens_tasks_tick(l->tasks, 1.7e9, l->mono + 30);
    assert_int_equal(task_t(l)->labels_freed, 0);
    l->mono += 61;
    /* L3 is still named by the rows; a and b still answer. */
    for (int i = 0; i < 3; i++, k++)
        rows[k] = label_row(labs[2], k);
    rig_feed_all(l, rows + k - 3, 3);
    ens_tasks_tick(l->tasks, 1.7e9, l->mono);
    assert_int_equal(task_t(l)->labels_freed, 2);
    assert_int_equal(task_t(l)->models_freed, 0);
    assert_int_equal(ens_window_labels_held(w), 1);
    assert_int_equal(ens_window_find_label(w, "L1", 2), ENS_ENOTFOUND);
    ens_data_t *d = ens_window_snapshot(w);
    assert_int_equal(d->nlabels, 1);
    assert_string_equal(d->label_names[0], "L3");
    for (size_t i = 0; i < d->nrows; i++)
        assert_int_equal(d->y[i], 0);
    ens_data_destroy(&d);
    /* A new label takes a freed id. */
    static const ens_str_t l4 = SI("L4");
    for (int i = 0; i < 4; i++, k++)
        rows[k] = label_row(l4, k);
    rig_feed_all(l, rows + k - 4, 4);
    rig_turn(l);
    assert_int_equal(ens_window_find_label(w, "L4", 2), 0);
    assert_int_equal(ens_window_labels(w), 3);
    rig_check(l, rows + k - 10, 10, 1);
    rig_crash(&l);

    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows + k - 10, 10, 1);
    w = task_t(l)->window;
    assert_int_equal(ens_window_labels_held(w), 2);
    assert_int_equal(ens_window_find_label(w, "L2", 2), ENS_ENOTFOUND);
    rig_close(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_check(l, rows + k - 10, 10, 1);
    assert_int_equal(ens_window_labels_held(task_t(l)->window), 2);
    rig_close(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_task_retired_models_free_their_slots, setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_task_restart_frees_models_without_rows, setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_task_never_retire_keeps_slots, setup, rig_teardown),
        cmocka_unit_test_setup_teardown(test_task_labels_free_their_slots, setup, rig_teardown),
    };
    return cmocka_run_group_tests_name("task", tests, NULL, NULL);
}
