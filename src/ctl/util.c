/* util.c - helpers shared by the ensemblectl subcommands. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "ensembled/csv.h"
#include "ensembled/xalloc.h"

void ctl_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("ensemblectl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Reads a whole file; NULL with errno set on failure. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = ens_xmalloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = ens_xreallocarray(buf, cap, 1);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    *len = n;
    return buf;
}

static ens_answers_t answers_mode = ENS_ANSWERS_CHOICE;
static ens_norm_t answers_norm = ENS_NORM_EXACT;
static int answers_given; /* --answers or --normalize was on the command line */

int ctl_answer_option(int c)
{
    if (c == CTL_OPT_ANSWERS && ens_answers_parse(optarg, &answers_mode) < 0) {
        ctl_error("--answers: '%s' is not choice or open", optarg);
        return -1;
    }
    if (c == CTL_OPT_NORMALIZE && ens_norm_parse(optarg, &answers_norm) < 0) {
        ctl_error("--normalize: '%s' is not exact, fold or numeric", optarg);
        return -1;
    }
    answers_given |= c == CTL_OPT_ANSWERS || c == CTL_OPT_NORMALIZE;
    return c == CTL_OPT_ANSWERS || c == CTL_OPT_NORMALIZE;
}

void ctl_answers_default(ens_answers_t answers, ens_norm_t norm)
{
    if (answers_given)
        return;
    answers_mode = answers;
    answers_norm = norm;
}

int ctl_answers_open(void)
{
    return answers_mode == ENS_ANSWERS_OPEN;
}

ens_data_t *ctl_load_csv(const char *path)
{
    size_t len = 0;
    char *buf = read_file(path, &len);
    if (!buf) {
        ctl_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    char err[512];
    ens_data_t *d = NULL;
    int rc = answers_mode == ENS_ANSWERS_OPEN
                 ? ens_csv_parse_open(buf, len, answers_norm, &d, err, sizeof(err))
                 : ens_csv_parse(buf, len, &d, err, sizeof(err));
    if (rc < 0)
        ctl_error("%s: %s", path, err);
    free(buf);
    return d;
}

int ctl_parse_size(const char *opt, const char *s, size_t lo, size_t hi, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
        ctl_error("%s: '%s' is not an integer in %zu..%zu", opt, s, lo, hi);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

int ctl_parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        ctl_error("%s: '%s' is not a number in [%g, %g]", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int ctl_parse_models(const ens_data_t *d, const char *list, size_t *out, size_t max)
{
    size_t n = 0;
    char *copy = ens_xstrndup(list, strlen(list));
    int rc = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int j = ens_data_find_model(d, tok);
        if (j < 0) {
            ctl_error("--models: unknown model '%s'", tok);
            rc = -1;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            if (out[i] == (size_t)j) {
                ctl_error("--models: '%s' listed twice", tok);
                rc = -1;
            }
        }
        if (rc < 0)
            break;
        if (n == max) {
            ctl_error("--models: more than %zu models", max);
            rc = -1;
            break;
        }
        out[n++] = (size_t)j;
    }
    free(copy);
    if (rc == 0 && n == 0) {
        ctl_error("--models: no model given");
        rc = -1;
    }
    return rc < 0 ? -1 : (int)n;
}

void ctl_push_fail_fast(void *sock, int timeout_ms)
{
    int one = 1;
    zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof(one));
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &timeout_ms, sizeof(timeout_ms));
    zmq_setsockopt(sock, ZMQ_LINGER, &timeout_ms, sizeof(timeout_ms));
}

void ctl_send_error(const char *endpoint, int timeout_ms)
{
    if (zmq_errno() == EAGAIN)
        ctl_error("%s: nothing took the message within %d ms (is ensembled running?)", endpoint,
                  timeout_ms);
    else
        ctl_error("%s: %s", endpoint, zmq_strerror(zmq_errno()));
}
