/* test_state_nats.c - with ingest.nats, messages delivered again after a
 * restart add no row (state.h: QUERY records, docs/scale.md).
 *
 * A rig life (rig.h) numbers its queries from 1, so feeding the same rows
 * in the next life sends byte for byte the messages of the last one: what
 * a stream delivers again when its acknowledgements were lost. After a
 * crash, after a snapshot and a crash, and after a clean stop, the windows
 * must hold each row once (compared with the rows fed); without
 * ingest.nats the same replay doubles them, which shows the journal's
 * query keys are what prevents it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ensembled/err.h"
#include "rig.h"

static const ens_str_t tasks[] = {SI("alpha"), SI("t\u00e9x")};

static size_t total_rows(const rig_life_t *l)
{
    size_t n = 0;
    for (uint32_t i = 0; i < ens_tasks_count(l->tasks); i++)
        n += ens_window_rows(ens_tasks_get(l->tasks, i)->window);
    return n;
}

static void test_state_nats_redelivery_counts_once(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(tasks, 2, 0, 60);
    ens_config_t conf = fx->conf;
    snprintf(conf.nats_url, sizeof(conf.nats_url), "nats://127.0.0.1:4222");
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &conf, 0), 0);
    rig_feed_all(l, rows, 30);
    rig_turn(l);
    rig_crash(&l);

    /* Crash: the 30 again, and 10 new. */
    assert_int_equal(rig_open(&l, &conf, 0), 0);
    rig_check(l, rows, 30, 2);
    rig_feed_all(l, rows, 40);
    rig_turn(l);
    rig_check(l, rows, 40, 2);
    /* A snapshot drops the journals that named the first 30: the new
     * journal names them again. */
    assert_int_equal(rig_snapshot(l), 0);
    rig_crash(&l);

    assert_int_equal(rig_open(&l, &conf, 0), 0);
    rig_check(l, rows, 40, 2);
    rig_feed_all(l, rows, 50);
    rig_turn(l);
    rig_check(l, rows, 50, 2);
    rig_close(&l);

    /* Clean stop: its snapshot holds no keys, the journal it keeps does. */
    assert_int_equal(rig_open(&l, &conf, 0), 0);
    rig_check(l, rows, 50, 2);
    rig_feed_all(l, rows, 60);
    rig_turn(l);
    rig_check(l, rows, 60, 2);
    for (uint32_t i = 0; i < 2; i++) {
        const ens_join_stats_t *js = ens_join_stats(ens_tasks_get(l->tasks, i)->join);
        assert_true(js->late_labels > 0 && js->late_predictions > 0);
        assert_int_equal(ens_join_pending(ens_tasks_get(l->tasks, i)->join), 0);
    }
    rig_close(&l);
    free(rows);
}

/* The control: without ingest.nats, no key is journaled, and the same
 * replay after a crash counts every row twice. */
static void test_state_nats_without_keys_doubles(void **state)
{
    rig_fx_t *fx = *state;
    rig_row_t *rows = rig_gen_rows(tasks, 2, 0, 20);
    rig_life_t *l;
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows, 20);
    rig_turn(l);
    rig_crash(&l);
    assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
    rig_feed_all(l, rows, 20);
    rig_turn(l);
    assert_int_equal(total_rows(l), 40);
    rig_close(&l);
    free(rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_nats_redelivery_counts_once, rig_setup,
                                        rig_teardown),
        cmocka_unit_test_setup_teardown(test_state_nats_without_keys_doubles, rig_setup,
                                        rig_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
