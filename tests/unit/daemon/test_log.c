/* test_log.c - level names (warn and error accepted) and what a rate-limited
 * message says about those it held back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

static void test_log_level_names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        ens_log_level_t level;
    } ok[] = {{"err", ENS_LOG_ERR},      {"error", ENS_LOG_ERR},     {"warning", ENS_LOG_WARNING},
              {"warn", ENS_LOG_WARNING}, {"notice", ENS_LOG_NOTICE}, {"info", ENS_LOG_INFO},
              {"debug", ENS_LOG_DEBUG}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ens_log_level_t l = ENS_LOG_DEBUG;
        assert_int_equal(ens_log_parse_level(ok[i].name, &l), 0);
        assert_int_equal(l, ok[i].level);
    }
    ens_log_level_t l;
    assert_int_equal(ens_log_parse_level("WARN", &l), -1);
    assert_int_equal(ens_log_parse_level("warnings", &l), -1);
    assert_int_equal(ens_log_parse_level("", &l), -1);
}

/* What the calls of fn wrote on stderr. */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/ens-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char out[8192];
    ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
    close(fd);
    unlink(path);
    out[n > 0 ? n : 0] = '\0';
    return out;
}

static void burst(void)
{
    ens_ratelimit_t rl = {0};
    ens_log_init(ENS_LOG_INFO, 1);
    for (int i = 1; i <= 4; i++)
        ens_log_limited(&rl, ENS_LOG_WARNING, "peer %d sent junk", i);
    /* After the second is over, the next message says what was held back. */
    struct timespec d = {1, 100000000};
    nanosleep(&d, NULL);
    ens_log_limited(&rl, ENS_LOG_WARNING, "peer %d sent junk", 5);
}

static void test_log_rate_limit_says_what_it_suppressed(void **state)
{
    (void)state;
    const char *out = capture(burst);
    const char *first = strstr(out, "warning: peer 1 sent junk\n");
    const char *note = strstr(out, "warning: 3 similar messages suppressed in ");
    const char *fifth = strstr(out, "warning: peer 5 sent junk\n");
    assert_non_null(first);
    assert_non_null(note);
    assert_non_null(fifth);
    assert_true(first < note && note < fifth);
    assert_non_null(strstr(note, " s, the first: peer 2 sent junk\n"));
    assert_null(strstr(out, "peer 3"));
    assert_null(strstr(out, "peer 4"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_level_names),
        cmocka_unit_test(test_log_rate_limit_says_what_it_suppressed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
