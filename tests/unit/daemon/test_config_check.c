/* test_config_check.c - what --check-config refuses beyond single values:
 * keys set twice, every error at once, ZeroMQ endpoints, binds beyond
 * loopback without CURVE, metrics.bind, a directory as the file, key files
 * (with the OS error, and through systemd credentials) and the state
 * directory. Each expected message is written out in full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

/* A valid Z85 secret key (40 characters). */
#define KEY "fw*f3n-(S#H5rh:bifceilrtKXCW}b*w3vp2p0RB"

typedef struct {
    char dir[128];
    char path[192];
    char err[8192];
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/ens-check-XXXXXX");
    if (!fx || !mkdtemp(fx->dir))
        return -1;
    snprintf(fx->path, sizeof(fx->path), "%s/test.conf", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0)
        return -1;
    free(fx);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The text, with safe sockets and a state directory of the fixture around
 * the sections given (they come first, so their lines are theirs). */
static void write_conf(fx_t *fx, const char *text)
{
    char full[4096];
    snprintf(full, sizeof(full), "%s\n[state]\ndir = %s/state\n", text, fx->dir);
    write_file(fx->path, full);
}

/* Loads (check: with the machine checks) and expects exactly want, where
 * each "@" stands for the path of the file. */
static void expect(fx_t *fx, int check, const char *want_fmt)
{
    ens_config_t *c = malloc(sizeof(*c));
    char want[8192];
    size_t w = 0;
    assert_non_null(c);
    for (const char *p = want_fmt; *p && w + sizeof(fx->path) < sizeof(want); p++) {
        if (*p == '@')
            w += (size_t)snprintf(want + w, sizeof(want) - w, "%s", fx->path);
        else
            want[w++] = *p;
    }
    want[w] = '\0';
    fx->err[0] = '\0';
    int rc = check ? ens_config_check(fx->path, c, fx->err, sizeof(fx->err))
                   : ens_config_load(fx->path, c, fx->err, sizeof(fx->err));
    if (want[0]) {
        assert_int_equal(rc, -1);
        assert_string_equal(fx->err, want);
    } else if (rc != 0) {
        fail_msg("unexpected: %s", fx->err);
    }
    free(c);
}

static void test_check_duplicate_keys(void **state)
{
    fx_t *fx = *state;
    write_conf(fx, "[select]\nbudget = 3\nstrategy = top-k\nbudget = 4\n");
    expect(fx, 0, "@:4: [select] budget: set again (first at line 2)");
    /* The same name in two sections, or in a task's, is not a repetition. */
    write_conf(fx, "[publish]\nbind = tcp://127.0.0.1:5558\n[task.a]\nbudget = 2\n"
                   "[select]\nbudget = 3\n[task.b]\nbudget = 1\n");
    expect(fx, 0, "");
    write_conf(fx, "[task.a]\nbudget = 2\nbudget = 2\n");
    expect(fx, 0, "@:3: [task.a] budget: set again (first at line 2)");
}

/* The NATS keys: a bucket needs the intake's servers, a durable name is
 * one NATS token, and a build without libnats refuses ingest.nats. */
static void test_check_nats(void **state)
{
    fx_t *fx = *state;
    write_conf(fx, "[publish]\nnats_kv = ENSEMBLES\n");
    expect(fx, 0, "@:2: publish.nats_kv: needs ingest.nats (the servers it publishes to)");
    write_conf(fx, "[ingest]\nnats = nats://127.0.0.1:4222\nnats_durable = a.b\n");
#ifdef ENS_HAVE_NATS
    expect(fx, 0, "@:3: ingest.nats_durable 'a.b': a name without '.', '*', '>' or blanks");
    write_conf(fx, "[ingest]\nnats = nats://127.0.0.1:4222\nnats_durable = d1\n"
                   "[publish]\nnats_kv = ENSEMBLES\n");
    expect(fx, 0, "");
    /* --check-config opens the credentials and CA files. */
    write_conf(fx, "[ingest]\nnats = nats://127.0.0.1:4222\nnats_tls_ca = /nonexistent/ca.pem\n");
    expect(fx, 0, "");
    expect(fx, 1, "@:3: ingest.nats_tls_ca /nonexistent/ca.pem: No such file or directory");
#else
    expect(fx, 0,
           "@:2: ingest.nats: this build of ensembled lacks NATS (libnats)\n"
           "@:3: ingest.nats_durable 'a.b': a name without '.', '*', '>' or blanks");
#endif
}

static void test_check_every_error_at_once_in_line_order(void **state)
{
    fx_t *fx = *state;
    write_conf(fx, "[ingest]\nbind = foo\nmax_tasks = 0\n[select]\nbudget = x\n"
                   "[nosuch]\nkey = 1\n[control]\nbind = tcp://127.0.0.1:99999\n");
    expect(fx, 0,
           "@:2: ingest.bind: foo: not a ZeroMQ endpoint the daemon uses (tcp://HOST:PORT or "
           "ipc://PATH)\n"
           "@:3: ingest.max_tasks: 0 is out of range [1, 4096]\n"
           "@:5: select.budget: not a number\n"
           "@:7: [nosuch] key: unknown key\n"
           "@:9: control.bind: tcp://127.0.0.1:99999: the port is not a number in [1, 65535]");
}

static void test_check_endpoints(void **state)
{
    fx_t *fx = *state;
    static const struct {
        const char *conf, *want;
    } cases[] = {
        {"[ingest]\nbind = tcp://127.0.0.1\n",
         "@:2: ingest.bind: tcp://127.0.0.1: tcp:// needs HOST:PORT (e.g. tcp://127.0.0.1:5557)"},
        {"[publish]\nbind = tcp://127.0.0.1:port\n",
         "@:2: publish.bind: tcp://127.0.0.1:port: the port is not a number in [1, 65535]"},
        {"[publish]\nbind = inproc://x\n",
         "@:2: publish.bind: inproc://x: inproc:// reaches nothing outside the daemon (use "
         "tcp:// or ipc://)"},
        {"[control]\nbind = ipc://\n", "@:2: control.bind: ipc://: ipc:// needs a path"},
        {"[control]\nbind = tcp://::1:5559\n",
         "@:2: control.bind: tcp://::1:5559: an IPv6 address goes in brackets: tcp://[::1]:5557"},
        {"[ingest]\nconnect = tcp://10.0.0.1:6000, pgm://eth0;239.1.1.1:5555\n",
         "@:2: ingest.connect: pgm://eth0;239.1.1.1:5555: not a ZeroMQ endpoint the daemon uses "
         "(tcp://HOST:PORT or ipc://PATH)"},
        {"[ingest]\nconnect = tcp://10.0.0.1:*\n",
         "@:2: ingest.connect: tcp://10.0.0.1:*: the port is not a number in [1, 65535]"},
        /* Valid: loopback by address, name and interface; any port to bind;
         * a connect to another machine. */
        {"[ingest]\nbind = tcp://localhost:*\nconnect = tcp://10.0.0.1:6000\n[publish]\n"
         "bind = tcp://[::1]:5558\n[control]\nbind = tcp://lo:5559\n",
         ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_conf(fx, cases[i].conf);
        expect(fx, 0, cases[i].want);
    }
}

static void test_check_plaintext_beyond_loopback(void **state)
{
    fx_t *fx = *state;
    write_conf(fx, "[ingest]\nbind = tcp://0.0.0.0:5557\n[publish]\nbind = tcp://*:5558\n"
                   "[control]\nbind = tcp://eth0:5559\n[metrics]\nbind = 0.0.0.0:9559\n");
    expect(fx, 0,
           "@:2: ingest.bind: tcp://0.0.0.0:5557 binds beyond loopback without CURVE: set "
           "security.curve_secret_key_file, or security.allow_plaintext = yes\n"
           "@:4: publish.bind: tcp://*:5558 binds beyond loopback without CURVE: set "
           "security.curve_secret_key_file, or security.allow_plaintext = yes\n"
           "@:6: control.bind: tcp://eth0:5559 binds beyond loopback without CURVE: set "
           "security.curve_secret_key_file, or security.allow_plaintext = yes\n"
           "@:8: metrics.bind: 0.0.0.0:9559 serves /metrics beyond loopback, to anyone, "
           "unencrypted: set security.allow_plaintext = yes");
    /* Said on purpose: accepted. */
    write_conf(fx, "[ingest]\nbind = tcp://0.0.0.0:5557\n[metrics]\nbind = [::]:9559\n"
                   "[security]\nallow_plaintext = yes\n");
    expect(fx, 0, "");
    /* With CURVE, the sockets may bind anywhere (the key is checked at start). */
    write_conf(fx, "[ingest]\nbind = tcp://0.0.0.0:5557\n[security]\n"
                   "curve_secret_key_file = /etc/ensembled/server.key\n");
    expect(fx, 0, "");
    write_conf(fx, "[security]\nallow_plaintext = maybe\n");
    expect(fx, 0, "@:2: security.allow_plaintext: not a boolean (yes or no)");
    write_conf(fx, "[metrics]\nbind = localhost:9559\n");
    expect(fx, 0, "@:2: metrics.bind localhost:9559: localhost is not a numeric IP address");
    write_conf(fx, "[metrics]\nbind =\n");
    expect(fx, 0, "");
}

static void test_check_directory_as_the_file(void **state)
{
    fx_t *fx = *state;
    snprintf(fx->path, sizeof(fx->path), "%s", fx->dir);
    expect(fx, 0, "@: not a regular file");
}

static void test_check_key_files_and_state_dir(void **state)
{
    fx_t *fx = *state;
    char conf[2048], key[256], text[64];
    snprintf(key, sizeof(key), "%s/server.key", fx->dir);
    snprintf(text, sizeof(text), "%s\n", KEY);
    write_file(key, text);
    snprintf(conf, sizeof(conf),
             "[security]\ncurve_secret_key_file = %s\nauthorized_keys_dir = %s\n", key, fx->dir);
    write_conf(fx, conf);
    expect(fx, 1, ""); /* the state directory does not exist yet: it can be made */

    snprintf(conf, sizeof(conf),
             "[security]\ncurve_secret_key_file = %s/missing.key\ncurve_public_key_file = %s\n"
             "authorized_keys_dir = %s/nokeys\n",
             fx->dir, fx->path, fx->dir);
    write_conf(fx, conf);
    char want[2048];
    snprintf(want, sizeof(want),
             "@:2: security.curve_secret_key_file %s/missing.key: No such file or directory\n"
             "@:3: security.curve_public_key_file @: not a Z85 key (40 characters)\n"
             "@:4: security.authorized_keys_dir %s/nokeys: No such file or directory",
             fx->dir, fx->dir);
    expect(fx, 1, want);
    /* ens_config_load leaves the machine alone: a reload does not re-check it. */
    expect(fx, 0, "");

    char full[1024];
    snprintf(full, sizeof(full), "[state]\ndir = %s/no/such/parent\n", fx->dir);
    write_file(fx->path, full);
    snprintf(want, sizeof(want),
             "@:2: state.dir %s/no/such/parent: does not exist and cannot be created: "
             "%s/no/such: No such file or directory",
             fx->dir, fx->dir);
    expect(fx, 1, want);
    snprintf(full, sizeof(full), "[state]\ndir = %s\n", key);
    write_file(fx->path, full);
    snprintf(want, sizeof(want), "@:2: state.dir %s: not a directory", key);
    expect(fx, 1, want);
}

/* LoadCredential=server.key:/etc/ensembled/server.key puts a copy the
 * service user can read in $CREDENTIALS_DIRECTORY. */
static void test_check_credentials(void **state)
{
    fx_t *fx = *state;
    char key[256], text[64];
    snprintf(key, sizeof(key), "%s/server.key", fx->dir);
    snprintf(text, sizeof(text), "%s\n", KEY);
    write_file(key, text);
    write_conf(fx, "[security]\ncurve_secret_key_file = credential:server.key\n");
    unsetenv("CREDENTIALS_DIRECTORY");
    expect(fx, 1,
           "@:2: security.curve_secret_key_file credential:server.key: no "
           "$CREDENTIALS_DIRECTORY (set by systemd for LoadCredential=)");
    setenv("CREDENTIALS_DIRECTORY", fx->dir, 1);
    expect(fx, 1, "");
    write_conf(fx, "[security]\ncurve_secret_key_file = credential:../server.key\n");
    expect(fx, 1,
           "@:2: security.curve_secret_key_file credential:../server.key: credential:NAME "
           "needs a plain name");
    unsetenv("CREDENTIALS_DIRECTORY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_check_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_nats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_every_error_at_once_in_line_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_check_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_plaintext_beyond_loopback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_directory_as_the_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_key_files_and_state_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_credentials, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
