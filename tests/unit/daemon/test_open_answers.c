/* test_open_answers.c - open-answer tasks in the daemon (window.answers =
 * open): events with free answers go through ingest, the join and the task
 * into the window as agreement classes, checked row by row against
 * patterns computed here from the answers' identities; a fleet with 10,000
 * distinct answers keeps exactly the window (and allocates as much) as the
 * same rows spelled with 100; and open-answer rows survive a restart
 * through the journal and through a snapshot, keeping their mode when the
 * configuration changes.
 */
#include <malloc.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ensembled/data.h"
#include "ensembled/open.h"
#include "ensembled/select.h"
#include "rig.h"

#define NMODELS 6
#define LOCAL 4 /* answers per row: 0 is the truth, 1..3 wrong */

/* Row r's answers as local ids, in model order; -1 abstained, -2 not
 * asked. Model j is right with probability 0.35 + 0.1 j. */
static void gen_local(uint64_t r, int *local)
{
    uint64_t h = r * 0x9E3779B97F4A7C15ull + 12345;
    for (int j = 0; j < NMODELS; j++) {
        h ^= h >> 29, h *= 0xBF58476D1CE4E5B9ull, h ^= h >> 32;
        double u = (double)(h >> 11) / 9007199254740992.0;
        int v = u < 0.35 + 0.1 * j ? 0 : 1 + (int)((h >> 7) % (LOCAL - 1));
        if ((h >> 20) % 23 == 0)
            v = -1;
        if (j >= 4 && (h >> 40) % 3 == 0)
            v = -2;
        local[j] = v;
    }
}

/* The text of local answer l of row r from a pool of `pool` answers;
 * spelled differently (case, spaces) by odd models, which fold undoes. */
static void answer_text(uint64_t r, int l, size_t pool, int model, char *buf, size_t len)
{
    unsigned id = (unsigned)((r * LOCAL + (uint64_t)l) % pool);
    snprintf(buf, len, model % 2 ? "  ANSWER-%05u " : "answer-%05u", id);
}

typedef struct {
    ens_config_t conf;
    ens_tasks_t *tasks;
    ens_ingest_t *in;
    double mono;
} fleet_t;

static void fleet_open(fleet_t *f, size_t rows)
{
    ens_config_defaults(&f->conf);
    f->conf.task.answers = ENS_ANSWERS_OPEN;
    f->conf.task.normalize = ENS_NORM_FOLD;
    f->conf.task.window_rows = rows;
    f->conf.max_future = 1e300;
    f->tasks = ens_tasks_new(&f->conf);
    f->in = ens_ingest_new(f->tasks, &f->conf);
    f->mono = 100;
}

static void fleet_close(fleet_t *f)
{
    ens_ingest_destroy(&f->in);
    ens_tasks_destroy(&f->tasks);
}

static void fleet_send(fleet_t *f, msgpack_sbuffer *sb)
{
    f->mono += 0.001;
    assert_int_equal(ens_ingest_message(f->in, sb->data, sb->size, 1.7e9, f->mono), 0);
    msgpack_sbuffer_clear(sb);
}

/* Feeds rows [from, from + n) of the fleet, answers from a pool. */
static void fleet_feed(fleet_t *f, uint64_t from, size_t n, size_t pool)
{
    static const char *const names[NMODELS] = {"m0", "m1", "m2", "m3", "m4", "m5"};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char text[NMODELS][32], truth[32];
    for (uint64_t r = from; r < from + n; r++) {
        int local[NMODELS];
        gen_local(r, local);
        ens_str_t m[NMODELS], a[NMODELS];
        size_t k = 0;
        for (int j = 0; j < NMODELS; j++) {
            if (local[j] == -2)
                continue;
            if (local[j] == -1)
                snprintf(text[j], sizeof(text[j]), "?");
            else
                answer_text(r, local[j], pool, j, text[j], sizeof(text[j]));
            m[k] = (ens_str_t){names[j], 2};
            a[k++] = (ens_str_t){text[j], strlen(text[j])};
        }
        /* Half the rows have their label first. */
        answer_text(r, 0, pool, (int)r, truth, sizeof(truth));
        ens_str_t y = {truth, strlen(truth)};
        if (r % 2) {
            rig_pack_label(&pk, S("fleet"), r, y, 1.7e9);
            fleet_send(f, &sb);
        }
        rig_pack_prediction(&pk, S("fleet"), r, m, a, k);
        fleet_send(f, &sb);
        if (!(r % 2)) {
            rig_pack_label(&pk, S("fleet"), r, y, 1.7e9);
            fleet_send(f, &sb);
        }
    }
    msgpack_sbuffer_destroy(&sb);
}

/* The class a window symbol stands for: k for "c<k>", LOCAL + 1 for
 * "none", -1 abstained, -2 missing. */
static int class_of(const ens_window_t *w, uint8_t sym)
{
    if (sym == ENS_SYM_MISSING)
        return -2;
    if (sym == ENS_SYM_ABSTAIN)
        return -1;
    const char *name = ens_window_label_name(w, sym);
    if (strcmp(name, "none") == 0)
        return LOCAL + 1;
    assert_true(name[0] == 'c');
    return atoi(name + 1);
}

/* Checks window row i against row r computed here: classes in model order
 * of first appearance of each local answer. */
static void check_row(const ens_window_t *w, size_t i, uint64_t r)
{
    int local[NMODELS], cls_of_local[LOCAL], next = 0;
    gen_local(r, local);
    for (int l = 0; l < LOCAL; l++)
        cls_of_local[l] = -1;
    for (int j = 0; j < NMODELS; j++) {
        int want = local[j];
        if (local[j] >= 0) {
            if (cls_of_local[local[j]] < 0)
                cls_of_local[local[j]] = next++;
            want = cls_of_local[local[j]];
        }
        assert_int_equal(class_of(w, ens_window_x(w, i, (size_t)j)), want);
    }
    int truth = cls_of_local[0] >= 0 ? cls_of_local[0] : LOCAL + 1;
    assert_int_equal(class_of(w, ens_window_y(w, i)), truth);
}

static size_t allocated(void)
{
    return mallinfo2().uordblks;
}

/* 3000 rows spelled with 100 or with 10,000 distinct answers (texts of one
 * length): the same window, byte for byte, and the same allocation. */
static void test_open_fleet_10000_answers(void **state)
{
    (void)state;
    enum { ROWS = 3000 };
    size_t pools[2] = {100, 10000}, grown[2];
    ens_data_t *snap[2];
    /* A first run warms what is allocated once per process (stdio, the
     * log), so that both measured runs start alike. */
    fleet_t warm;
    fleet_open(&warm, ROWS);
    fleet_feed(&warm, 0, ROWS, pools[1]);
    fleet_close(&warm);
    for (int p = 0; p < 2; p++) {
        fleet_t f;
        size_t before = allocated();
        fleet_open(&f, ROWS);
        fleet_feed(&f, 0, ROWS, pools[p]);
        grown[p] = allocated() - before;
        ens_task_t *t = ens_tasks_find(f.tasks, "fleet", 5);
        assert_non_null(t);
        assert_int_equal(ens_window_rows(t->window), ROWS);
        assert_int_equal(ens_join_pending(t->join), 0);
        /* At most LOCAL classes and none: no label per distinct answer. */
        assert_true(ens_window_labels(t->window) <= LOCAL + 1);
        for (size_t i = 0; i < ROWS; i++)
            check_row(t->window, i, i);
        snap[p] = ens_window_snapshot(t->window);
        snap[p]->open = 1;
        /* A model's accuracy on classes is its accuracy on answers. */
        for (size_t j = 0; j < NMODELS; j++) {
            size_t asked = 0, right = 0;
            for (uint64_t r = 0; r < ROWS; r++) {
                int local[NMODELS];
                gen_local(r, local);
                asked += local[j] != -2;
                right += local[j] == 0;
            }
            assert_true(fabs(ens_data_accuracy(snap[p], j) - (double)right / (double)asked) <
                        1e-12);
        }
        fleet_close(&f);
    }
    assert_int_equal(snap[0]->nlabels, snap[1]->nlabels);
    assert_memory_equal(snap[0]->y, snap[1]->y, ROWS);
    assert_memory_equal(snap[0]->x, snap[1]->x, (size_t)ROWS * NMODELS);
    /* Selection runs on the classes and picks the most accurate model
     * (m5: right on 85% of the rows it is asked) first. */
    ens_select_opts_t o;
    ens_select_opts_default(&o);
    ens_selection_t sel;
    char err[256];
    assert_int_equal(ens_select(snap[1], &o, &sel, err, sizeof(err)), 0);
    assert_true(sel.n >= 1);
    assert_int_equal(sel.models[0], 5);
    print_message("allocated by the fleet: %zu bytes with 100 answers, %zu with 10,000\n", grown[0],
                  grown[1]);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* The sanitizers' allocators do not report through mallinfo2. */
    size_t lo = grown[0] < grown[1] ? grown[0] : grown[1];
    size_t hi = grown[0] < grown[1] ? grown[1] : grown[0];
    assert_true(hi - lo <= lo / 100 + 4096);
#endif
    ens_data_destroy(&snap[0]);
    ens_data_destroy(&snap[1]);
}

/* Open-answer rows restart from the journal and from a snapshot: the
 * window comes back with the same classes. */
static void test_open_rows_survive_restart(void **state)
{
    rig_fx_t *fx = *state;
    fx->conf.task.answers = ENS_ANSWERS_OPEN;
    fx->conf.task.normalize = ENS_NORM_FOLD;
    for (int snapshot = 0; snapshot < 2; snapshot++) {
        snprintf(fx->conf.state_dir, sizeof(fx->conf.state_dir), "%s/%s", fx->root,
                 snapshot ? "snap" : "journal");
        rig_life_t *l;
        assert_int_equal(rig_open(&l, &fx->conf, 1), 0);
        fleet_t f = {.tasks = l->tasks, .in = l->ingest, .mono = 100};
        fleet_feed(&f, 0, 500, 10000);
        rig_turn(l);
        if (snapshot)
            assert_int_equal(rig_snapshot(l), 0);
        rig_crash(&l);
        assert_int_equal(rig_open(&l, &fx->conf, 0), 0);
        const ens_task_t *t = rig_task(l, S("fleet"));
        assert_int_equal(ens_window_rows(t->window), 500);
        for (size_t i = 0; i < 500; i++)
            check_row(t->window, i, i);
        /* New rows after the restart join the restored classes. */
        f = (fleet_t){.tasks = l->tasks, .in = l->ingest, .mono = 200};
        fleet_feed(&f, 500, 100, 10000);
        assert_int_equal(ens_window_rows(t->window), 600);
        for (size_t i = 500; i < 600; i++)
            check_row(t->window, i, i);
        assert_true(ens_window_labels(t->window) <= LOCAL + 1);
        rig_close(&l);
        /* Configured back to choice: the saved task keeps its open rows
         * (its ANSWERS record), and new rows still join as classes. */
        ens_config_t choice = fx->conf;
        choice.task.answers = ENS_ANSWERS_CHOICE;
        choice.task.normalize = ENS_NORM_EXACT;
        assert_int_equal(rig_open(&l, &choice, 0), 0);
        t = rig_task(l, S("fleet"));
        assert_int_equal(t->conf.answers, ENS_ANSWERS_OPEN);
        assert_int_equal(t->conf.normalize, ENS_NORM_FOLD);
        f = (fleet_t){.tasks = l->tasks, .in = l->ingest, .mono = 300};
        fleet_feed(&f, 600, 50, 10000);
        assert_int_equal(ens_window_rows(t->window), 650);
        for (size_t i = 0; i < 650; i++)
            check_row(t->window, i, i);
        rig_close(&l);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_fleet_10000_answers),
        cmocka_unit_test_setup_teardown(test_open_rows_survive_restart, rig_setup, rig_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
