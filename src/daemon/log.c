/* log.c - see log.h. The log state is process-wide by nature (one stderr). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static ens_log_level_t max_level = ENS_LOG_INFO;
static int prefix_priority;

static const char *const level_names[] = {[ENS_LOG_ERR] = "err",
                                          [ENS_LOG_WARNING] = "warning",
                                          [ENS_LOG_NOTICE] = "notice",
                                          [ENS_LOG_INFO] = "info",
                                          [ENS_LOG_DEBUG] = "debug"};

void ens_log_init(ens_log_level_t level, int foreground)
{
    max_level = level;
    prefix_priority = !foreground && getenv("JOURNAL_STREAM") != NULL;
}

void ens_log_set_level(ens_log_level_t level)
{
    max_level = level;
}

int ens_log_parse_level(const char *s, ens_log_level_t *out)
{
    /* The spellings other tools use (syslog's "error", "warn"). */
    if (strcmp(s, "warn") == 0 || strcmp(s, "error") == 0) {
        *out = s[0] == 'w' ? ENS_LOG_WARNING : ENS_LOG_ERR;
        return 0;
    }
    for (int l = ENS_LOG_ERR; l <= ENS_LOG_DEBUG; l++) {
        if (strcmp(s, level_names[l]) == 0) {
            *out = (ens_log_level_t)l;
            return 0;
        }
    }
    return -1;
}

static void vlog(ens_log_level_t level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void vlog(ens_log_level_t level, const char *fmt, va_list ap)
{
    if (level > max_level)
        return;
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    if (prefix_priority) {
        fprintf(stderr, "<%d>%s\n", (int)level, line);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char when[32];
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        fprintf(stderr, "%s.%03ldZ %s: %s\n", when, ts.tv_nsec / 1000000, level_names[level], line);
    }
}

void ens_log(ens_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void ens_log_limited(ens_ratelimit_t *rl, ens_log_level_t level, const char *fmt, ...)
{
    double now = now_mono();
    va_list ap;
    if (rl->last > 0 && now - rl->last < 1.0) {
        /* The first one held back is kept, to say what was suppressed. */
        if (rl->suppressed++ == 0) {
            va_start(ap, fmt);
            vsnprintf(rl->first, sizeof(rl->first), fmt, ap);
            va_end(ap);
        }
        return;
    }
    if (rl->suppressed > 0)
        ens_log(level, "%llu similar message%s suppressed in %.1f s, the first: %s",
                (unsigned long long)rl->suppressed, rl->suppressed == 1 ? "" : "s", now - rl->last,
                rl->first);
    rl->suppressed = 0;
    rl->last = now;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}
