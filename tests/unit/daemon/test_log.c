/* test_log.c - level and format names, what a rate-limited message says
 * about those it held back, the logfmt lines (parsed back here by a parser
 * of the format's own, not by the code that wrote them) and when the
 * journal is chosen on its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    ens_log_set_format(ENS_LOG_FORMAT_TEXT);
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

static void test_log_format_names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        ens_log_format_t format;
    } ok[] = {{"auto", ENS_LOG_FORMAT_AUTO},
              {"text", ENS_LOG_FORMAT_TEXT},
              {"logfmt", ENS_LOG_FORMAT_LOGFMT},
              {"journal", ENS_LOG_FORMAT_JOURNAL}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ens_log_format_t f = ENS_LOG_FORMAT_TEXT;
        assert_int_equal(ens_log_parse_format(ok[i].name, &f), 0);
        assert_int_equal(f, ok[i].format);
    }
    ens_log_format_t f;
    assert_int_equal(ens_log_parse_format("json", &f), -1);
    assert_int_equal(ens_log_parse_format("Journal", &f), -1);
    assert_int_equal(ens_log_parse_format("", &f), -1);
}

/* One logfmt line parsed into at most 16 pairs: key=value, key="quoted
 * value" with \" \\ \n and \uXXXX escapes. Returns the count, -1 if the
 * line is not logfmt. */
typedef struct {
    char key[32];
    char value[512];
} kv_t;

static int parse_value(const char **pp, char *out, size_t len)
{
    const char *p = *pp;
    size_t n = 0;
    if (*p != '"') {
        while (*p && *p != ' ' && *p != '\n' && n + 1 < len)
            out[n++] = *p++;
    } else {
        for (p++; *p != '"'; p++) {
            if (!*p || n + 1 >= len)
                return -1;
            if (*p == '\\') {
                p++;
                if (*p == 'n') {
                    out[n++] = '\n';
                } else if (*p == 'u') {
                    unsigned c;
                    if (sscanf(p + 1, "%4x", &c) != 1)
                        return -1;
                    out[n++] = (char)c;
                    p += 4;
                } else if (*p == '"' || *p == '\\') {
                    out[n++] = *p;
                } else {
                    return -1;
                }
            } else {
                out[n++] = *p;
            }
        }
        p++;
    }
    out[n] = '\0';
    *pp = p;
    return 0;
}

static int parse_logfmt(const char *line, kv_t *kv, int max)
{
    int n = 0;
    const char *p = line;
    while (*p && *p != '\n') {
        size_t k = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
        if (k == 0 || k >= sizeof(kv[0].key) || p[k] != '=' || n == max)
            return -1;
        memcpy(kv[n].key, p, k);
        kv[n].key[k] = '\0';
        p += k + 1;
        if (parse_value(&p, kv[n].value, sizeof(kv[n].value)) < 0)
            return -1;
        n++;
        if (*p == ' ')
            p++;
        else if (*p && *p != '\n')
            return -1;
    }
    return n;
}

static const char *get(const kv_t *kv, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return kv[i].value;
    return NULL;
}

static void logfmt_lines(void)
{
    ens_log_init(ENS_LOG_INFO, 1);
    ens_log_set_format(ENS_LOG_FORMAT_LOGFMT);
    ens_logf(ENS_LOG_WARNING, ENS_LOG_FIELDS({"task", "two words"}, {"reason", "bad_kind"}),
             "ingest: a \"quoted\" back\\slash=%d\nsecond line\x01", 7);
    ens_log(ENS_LOG_DEBUG, "not printed at info");
    ens_log(ENS_LOG_NOTICE, "no module here");
    ens_ratelimit_t rl = {0};
    for (int i = 1; i <= 3; i++)
        ens_logf_limited(&rl, ENS_LOG_WARNING, ENS_LOG_FIELDS({"reason", "junk"}), "peer %d", i);
    struct timespec d = {1, 100000000};
    nanosleep(&d, NULL);
    ens_logf_limited(&rl, ENS_LOG_WARNING, ENS_LOG_FIELDS({"reason", "junk"}), "peer %d", 4);
    ens_log_set_format(ENS_LOG_FORMAT_TEXT);
}

static void test_log_logfmt_parses_back(void **state)
{
    (void)state;
    char *out = capture(logfmt_lines);
    kv_t kv[6][16];
    int n[6], lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        assert_true(lines < 6);
        n[lines] = parse_logfmt(line, kv[lines], 16);
        assert_true(n[lines] >= 3);
        /* Every line starts with its time and level. */
        assert_string_equal(kv[lines][0].key, "time");
        assert_int_equal(strlen(kv[lines][0].value), strlen("2026-01-02T03:04:05.678Z"));
        assert_string_equal(kv[lines][1].key, "level");
        lines++;
    }
    /* The warning, the notice, peer 1, the note on peers 2-3, peer 4. */
    assert_int_equal(lines, 5);
    assert_string_equal(get(kv[0], n[0], "level"), "warning");
    assert_string_equal(get(kv[0], n[0], "module"), "ingest");
    assert_string_equal(get(kv[0], n[0], "msg"),
                        "ingest: a \"quoted\" back\\slash=7\nsecond line\x01");
    assert_string_equal(get(kv[0], n[0], "task"), "two words");
    assert_string_equal(get(kv[0], n[0], "reason"), "bad_kind");
    assert_string_equal(get(kv[1], n[1], "level"), "notice");
    assert_null(get(kv[1], n[1], "module"));
    assert_string_equal(get(kv[1], n[1], "msg"), "no module here");
    assert_string_equal(get(kv[2], n[2], "msg"), "peer 1");
    assert_string_equal(get(kv[3], n[3], "reason"), "junk");
    assert_string_equal(get(kv[3], n[3], "suppressed"), "2");
    assert_string_equal(get(kv[3], n[3], "suppressed_first"), "peer 2");
    assert_non_null(strstr(get(kv[3], n[3], "msg"), "2 similar messages suppressed in "));
    assert_string_equal(get(kv[4], n[4], "msg"), "peer 4");
    assert_null(get(kv[4], n[4], "suppressed"));
}

/* auto is the journal only when JOURNAL_STREAM names stderr itself, and not
 * in the foreground. */
static ens_log_format_t auto_format;
static int stream_matches;

static void resolve_auto(void)
{
    struct stat st;
    char js[64];
    fstat(2, &st);
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (stream_matches ? 0 : 1));
    setenv("JOURNAL_STREAM", js, 1);
    ens_log_set_format(ENS_LOG_FORMAT_AUTO);
    auto_format = ens_log_format();
    unsetenv("JOURNAL_STREAM");
    ens_log_set_format(ENS_LOG_FORMAT_TEXT);
}

static void test_log_auto_is_journal_on_the_journal_stream(void **state)
{
    (void)state;
    ens_log_init(ENS_LOG_INFO, 0);
    unsetenv("JOURNAL_STREAM");
    ens_log_set_format(ENS_LOG_FORMAT_AUTO);
    assert_int_equal(ens_log_format(), ENS_LOG_FORMAT_LOGFMT);
    stream_matches = 1;
    capture(resolve_auto);
    assert_int_equal(auto_format, ENS_LOG_FORMAT_JOURNAL);
    /* Inherited by a process whose stderr went elsewhere: not the journal. */
    stream_matches = 0;
    capture(resolve_auto);
    assert_int_equal(auto_format, ENS_LOG_FORMAT_LOGFMT);
    /* --foreground: never the journal on its own. */
    ens_log_init(ENS_LOG_INFO, 1);
    stream_matches = 1;
    capture(resolve_auto);
    assert_int_equal(auto_format, ENS_LOG_FORMAT_LOGFMT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_level_names),
        cmocka_unit_test(test_log_rate_limit_says_what_it_suppressed),
        cmocka_unit_test(test_log_format_names),
        cmocka_unit_test(test_log_logfmt_parses_back),
        cmocka_unit_test(test_log_auto_is_journal_on_the_journal_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
