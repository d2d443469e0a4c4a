/* test_config.c - the configuration (config.h).
 *
 * The defaults are compared with what conf/ensembled.conf documents, read
 * here line by line with a converter of the test's own; error messages are
 * compared whole with the "file:line: key: reason" they must be; durations
 * with values worked out by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define CONF_FILE ENS_DATA_DIR "/../../conf/ensembled.conf"

typedef struct {
    char dir[128];
    char path[192];
    char err[1024];
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    const char *base = getenv("TMPDIR");
    snprintf(fx->dir, sizeof(fx->dir), "%s/ens-conf-XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof(fx->path), "%s/test.conf", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    unlink(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void write_conf(const fx_t *fx, const char *text)
{
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* ens_config_load of text must fail with exactly "<path>:<rest>". */
static void assert_error(fx_t *fx, const char *text, const char *rest)
{
    write_conf(fx, text);
    ens_config_t *c = malloc(sizeof(*c));
    assert_non_null(c);
    fx->err[0] = '\0';
    assert_int_equal(ens_config_load(fx->path, c, fx->err, sizeof(fx->err)), -1);
    char want[1024];
    snprintf(want, sizeof(want), "%s:%s", fx->path, rest);
    assert_string_equal(fx->err, want);
    free(c);
}

/* ---- defaults: what the shipped file documents -------------------------- */

/* The value documented for [section] key in the shipped file (the text
 * after "key = "), into buf. */
static void documented(const char *section, const char *key, char *buf, size_t len)
{
    FILE *f = fopen(CONF_FILE, "r");
    assert_non_null(f);
    char line[512], cur[64] = "";
    int found = 0;
    while (!found && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '[') {
            snprintf(cur, sizeof(cur), "%.*s", (int)strcspn(line + 1, "]"), line + 1);
            continue;
        }
        size_t k = strlen(key);
        if (strcmp(cur, section) == 0 && strncmp(line, key, k) == 0 &&
            strncmp(line + k, " = ", 3) == 0) {
            snprintf(buf, len, "%s", line + k + 3);
            found = 1;
        }
    }
    fclose(f);
    if (!found)
        fail_msg("%s.%s is not documented in %s", section, key, CONF_FILE);
}

/* A documented number with an optional unit (ms, s, m, h), in seconds. */
static double documented_number(const char *section, const char *key)
{
    char v[256];
    documented(section, key, v, sizeof(v));
    static const struct {
        const char *unit;
        double scale;
    } units[] = {{"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600}, {"", 1}};
    char *end;
    double x = strtod(v, &end);
    assert_true(end != v);
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(end, units[i].unit) == 0)
            return x * units[i].scale;
    fail_msg("%s.%s = %s: not a number", section, key, v);
    return 0;
}

static void test_config_defaults_are_the_documented_ones(void **state)
{
    (void)state;
    ens_config_t d;
    ens_config_defaults(&d);
    assert_true(d.sample_rate == documented_number("ingest", "sample_rate"));
    assert_true((double)d.max_message_bytes == documented_number("ingest", "max_message_bytes"));
    assert_true((double)d.max_tasks == documented_number("ingest", "max_tasks"));
    assert_true((double)d.max_models == documented_number("ingest", "max_models"));
    assert_true(d.task.join_ttl == documented_number("join", "ttl"));
    assert_true((double)d.task.window_rows == documented_number("window", "rows"));
    assert_true((double)d.task.budget == documented_number("select", "budget"));
    assert_true(d.task.explore_rate == documented_number("select", "explore_rate"));
    assert_true(d.task.retire_after == documented_number("select", "retire_after"));
    assert_true(d.publish_interval == documented_number("publish", "interval"));
    assert_true(d.snapshot_interval == documented_number("state", "snapshot_interval"));
    assert_true(d.fsync_interval == documented_number("state", "fsync_interval"));
    char v[256];
    documented("state", "dir", v, sizeof(v));
    assert_string_equal(d.state_dir, v);
    documented("ingest", "bind", v, sizeof(v));
    assert_string_equal(d.ingest_bind, v);
    documented("control", "bind", v, sizeof(v));
    assert_string_equal(d.control_bind, v);
    /* Spot checks by hand, in case the file and the table moved together. */
    assert_int_equal(d.max_tasks, 64);
    assert_true(d.task.join_ttl == 600.0);
    assert_true(d.snapshot_interval == 300.0);
    assert_int_equal(d.ingest_nconnect, 0);
    assert_int_equal(d.nsections, 0);
}

/* Loading the shipped file, every key of which is set to its default,
 * gives the defaults, byte for byte. */
static void test_config_shipped_file_loads_to_the_defaults(void **state)
{
    fx_t *fx = *state;
    ens_config_t *d = malloc(sizeof(*d)), *c = malloc(sizeof(*c));
    assert_non_null(d);
    assert_non_null(c);
    ens_config_defaults(d);
    if (ens_config_load(CONF_FILE, c, fx->err, sizeof(fx->err)) != 0)
        fail_msg("%s", fx->err);
    /* Every key is set in the file: each has the line that set it. */
    for (size_t i = 0; i < ENS_CONF_MAX_KEYS; i++)
        if (d->lines[i] == 0 && c->lines[i] != 0)
            d->lines[i] = c->lines[i];
    assert_memory_equal(c, d, sizeof(*d));
    free(c);
    free(d);
}

/* ---- errors: file:line: key: reason ------------------------------------- */

static void test_config_errors_name_file_line_key_reason(void **state)
{
    fx_t *fx = *state;
    assert_error(fx, "[ingest]\nmax_tasks = 64\nmax_models = lots\n",
                 "3: ingest.max_models: not a number");
    assert_error(fx, "# a comment\n[ingest]\nmax_tasks = 0\n",
                 "3: ingest.max_tasks: 0 is out of range [1, 4096]");
    assert_error(fx, "[window]\nrows = 10.5\n", "2: window.rows: not an integer");
    assert_error(fx, "[join]\nttl = 5 minutes\n",
                 "2: join.ttl: not a duration (e.g. 500ms, 10s, 5m, 1h)");
    assert_error(fx, "[select]\nstrategy = best\n",
                 "2: select.strategy: unknown strategy (greedy-mi, greedy-cost, top-k, random, "
                 "caruana, exhaustive)");
    assert_error(fx, "[log]\nlevel = loud\n",
                 "2: log.level: unknown level (err, warning, notice, info, debug; error, warn)");
    assert_error(fx, "[ingest]\nttl = 5s\n", "2: [ingest] ttl: unknown key");
    assert_error(fx, "[ingest\nmax_tasks = 3\n",
                 "1: unclosed section header (no ']'); its keys are skipped");
    assert_error(fx, "[ingest]\nmax_tasks = 2\n[select\nbudget = 3\n",
                 "3: unclosed section header (no ']'); its keys are skipped");
    assert_error(fx, "this is not ini\n", "1: syntax error (expected [section] or key = value)");
    /* A task's override is checked where it is written, like any key. */
    assert_error(fx, "[select]\nbudget = 4\n\n[task.x]\nbudget = 0\n",
                 "5: [task.x] budget: 0 is out of range [1, 64]");
    assert_error(fx, "[task.x]\nttl = forever\n[join]\nttl = 1m\n",
                 "2: [task.x] ttl: not a duration (e.g. 500ms, 10s, 5m, 1h)");
}

/* inih parses lines of at most 199 bytes (its fixed buffer): a longer
 * line is refused whole, never cut into lines of its own, and a comment,
 * however long, is only a comment. */
static void test_config_long_lines(void **state)
{
    fx_t *fx = *state;
    char text[1024], tail[400];
    memset(tail, 'x', 250);
    tail[250] = '\0';
    snprintf(text, sizeof(text), "[state]\ndir = /%s\n[ingest]\nmax_tasks = 0\n", tail);
    char want[1024];
    snprintf(want, sizeof(want),
             "2: line longer than 199 bytes\n%s:4: ingest.max_tasks: 0 is out of range [1, 4096]",
             fx->path);
    assert_error(fx, text, want);
    snprintf(text, sizeof(text), "[select]\n# %s budget = 5\n  ; %s budget = 6\nbudget = 0\n", tail,
             tail);
    assert_error(fx, text, "4: select.budget: 0 is out of range [1, 64]");

    ens_config_t *c = malloc(sizeof(*c));
    assert_non_null(c);
    snprintf(text, sizeof(text), "[select]\n# %s budget = 5\n", tail);
    write_conf(fx, text);
    if (ens_config_load(fx->path, c, fx->err, sizeof(fx->err)) != 0)
        fail_msg("%s", fx->err);
    assert_int_equal(c->task.budget, 3);
    /* 199 bytes exactly: "dir = " and a 193-byte path. */
    snprintf(text, sizeof(text), "[state]\ndir = /%.192s\n", tail);
    write_conf(fx, text);
    if (ens_config_load(fx->path, c, fx->err, sizeof(fx->err)) != 0)
        fail_msg("%s", fx->err);
    assert_int_equal(strlen(c->state_dir), 193);
    free(c);
}

static void test_config_missing_file(void **state)
{
    fx_t *fx = *state;
    ens_config_t *c = malloc(sizeof(*c));
    assert_non_null(c);
    assert_int_equal(ens_config_load("/nonexistent/ensembled.conf", c, fx->err, sizeof(fx->err)),
                     -1);
    assert_string_equal(fx->err, "/nonexistent/ensembled.conf: No such file or directory");
    free(c);
}

/* A reload parses into a fresh struct: a bad file leaves the running
 * configuration as it was, and a struct that held a failed load holds no
 * trace of it once a good file is loaded into it. */
static void test_config_bad_value_changes_nothing(void **state)
{
    fx_t *fx = *state;
    const char *good = "[ingest]\nmax_tasks = 7\n[select]\nbudget = 5\n[task.x]\nbudget = 2\n";
    ens_config_t *run = malloc(sizeof(*run)), *copy = malloc(sizeof(*copy)),
                 *next = malloc(sizeof(*next));
    assert_true(run && copy && next);
    write_conf(fx, good);
    assert_int_equal(ens_config_load(fx->path, run, fx->err, sizeof(fx->err)), 0);
    memcpy(copy, run, sizeof(*run));
    assert_int_equal(run->max_tasks, 7);
    assert_int_equal(run->task.budget, 5);
    assert_int_equal(ens_config_task(run, "x")->budget, 2);

    write_conf(fx, "[ingest]\nmax_tasks = 9\nsample_rate = 2\n[task.y]\nbudget = 1\n"
                   "[select]\nbudget = 6\n");
    assert_int_equal(ens_config_load(fx->path, next, fx->err, sizeof(fx->err)), -1);
    assert_non_null(strstr(fx->err, ":3: ingest.sample_rate: 2 is out of range"));
    assert_memory_equal(run, copy, sizeof(*run));

    write_conf(fx, good);
    assert_int_equal(ens_config_load(fx->path, next, fx->err, sizeof(fx->err)), 0);
    assert_memory_equal(next, run, sizeof(*run));
    free(run);
    free(copy);
    free(next);
}

/* A [task.NAME] section takes the global keys, wherever they are written,
 * and its own overrides on top. */
static void test_config_task_sections_inherit(void **state)
{
    fx_t *fx = *state;
    ens_config_t *c = malloc(sizeof(*c));
    assert_non_null(c);
    write_conf(fx, "[task.x]\nbudget = 5\n[select]\nestimator = plugin\nbudget = 4\n"
                   "[join]\nttl = 90s\n");
    if (ens_config_load(fx->path, c, fx->err, sizeof(fx->err)) != 0)
        fail_msg("%s", fx->err);
    const ens_task_conf_t *x = ens_config_task(c, "x"), *other = ens_config_task(c, "y");
    assert_int_equal(x->budget, 5);
    assert_int_equal(x->estimator, ENS_EST_PLUGIN);
    assert_true(x->join_ttl == 90.0);
    assert_int_equal(other->budget, 4);
    assert_true(other == &c->task);
    free(c);
}

/* ---- durations ---------------------------------------------------------- */

static void test_config_durations(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        double v;
    } good[] = {{"500ms", 0.5}, {"10s", 10},    {"5m", 300}, {"1h", 3600},    {"2d", 172800},
                {"7", 7},       {"1.5h", 5400}, {"0", 0},    {"250ms", 0.25}, {"0.5s", 0.5}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        double v = -1;
        if (ens_config_parse_duration(good[i].s, &v) != 0)
            fail_msg("\"%s\" refused", good[i].s);
        if (fabs(v - good[i].v) > 1e-12 * good[i].v)
            fail_msg("\"%s\" = %.17g, not %.17g", good[i].s, v, good[i].v);
    }
    static const char *const bad[] = {"",    "5x",    "-1s",   "5 m", "ms",  "h",  "nan",
                                      "inf", "1e400", "10sec", "5mm", "1hh", "s5", "5S"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        double v = 42;
        if (ens_config_parse_duration(bad[i], &v) == 0)
            fail_msg("\"%s\" accepted as %g", bad[i], v);
        assert_true(v == 42);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_are_the_documented_ones),
        cmocka_unit_test_setup_teardown(test_config_shipped_file_loads_to_the_defaults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_errors_name_file_line_key_reason, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_config_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_bad_value_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_task_sections_inherit, setup, teardown),
        cmocka_unit_test(test_config_durations),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
