/* log.c - see log.h. The log state is process-wide by nature (one stderr). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

/* Fields per message, at most (the caller's and the rate limit's). */
#define MAX_FIELDS 16

static ens_log_level_t max_level = ENS_LOG_INFO;
static ens_log_format_t format = ENS_LOG_FORMAT_TEXT;
static int prefix_priority; /* text on the journal's stream: "<4>" prefixes */
static int foreground;      /* --foreground: never the journal on its own */

static const char *const level_names[] = {[ENS_LOG_ERR] = "err",
                                          [ENS_LOG_WARNING] = "warning",
                                          [ENS_LOG_NOTICE] = "notice",
                                          [ENS_LOG_INFO] = "info",
                                          [ENS_LOG_DEBUG] = "debug"};

static const char *const format_names[] = {[ENS_LOG_FORMAT_AUTO] = "auto",
                                           [ENS_LOG_FORMAT_TEXT] = "text",
                                           [ENS_LOG_FORMAT_LOGFMT] = "logfmt",
                                           [ENS_LOG_FORMAT_JOURNAL] = "journal"};

/* Whether stderr is the stream systemd connected to the journal: the
 * JOURNAL_STREAM variable alone is inherited by children whose stderr was
 * redirected, so its device:inode must be stderr's. */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void ens_log_init(ens_log_level_t level, int fg)
{
    foreground = fg;
    max_level = level;
    ens_log_set_format(ENS_LOG_FORMAT_AUTO);
}

void ens_log_set_level(ens_log_level_t level)
{
    max_level = level;
}

void ens_log_set_format(ens_log_format_t f)
{
    int journal = !foreground && stderr_is_journal();
    if (f == ENS_LOG_FORMAT_AUTO)
        f = journal ? ENS_LOG_FORMAT_JOURNAL : ENS_LOG_FORMAT_LOGFMT;
    format = f;
    prefix_priority = journal;
}

ens_log_format_t ens_log_format(void)
{
    return format;
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

int ens_log_parse_format(const char *s, ens_log_format_t *out)
{
    for (int f = ENS_LOG_FORMAT_AUTO; f <= ENS_LOG_FORMAT_JOURNAL; f++) {
        if (strcmp(s, format_names[f]) == 0) {
            *out = (ens_log_format_t)f;
            return 0;
        }
    }
    return -1;
}

/* The length of the message's leading "module: " name, or 0. */
static size_t module_len(const char *msg)
{
    size_t n = strspn(msg, "abcdefghijklmnopqrstuvwxyz_");
    return n > 0 && msg[n] == ':' && msg[n + 1] == ' ' ? n : 0;
}

static void now_text(char *out, size_t len)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, len, "%s.%03ldZ", when, ts.tv_nsec / 1000000);
}

static void emit_text(ens_log_level_t level, const char *msg)
{
    if (prefix_priority) {
        fprintf(stderr, "<%d>%s\n", (int)level, msg);
        return;
    }
    char when[48];
    now_text(when, sizeof(when));
    fprintf(stderr, "%s %s: %s\n", when, level_names[level], msg);
}

/* Appends " name=value" to out (at *pos, never past len), the value quoted
 * when it is empty or holds a space, '=', '"', '\\' or a control byte. */
static void logfmt_pair(char *out, size_t len, size_t *pos, const char *name, const char *value,
                        size_t vlen)
{
    int quote = vlen == 0;
    for (size_t i = 0; i < vlen && !quote; i++)
        quote = (unsigned char)value[i] <= ' ' || value[i] == '=' || value[i] == '"' ||
                value[i] == '\\' || value[i] == 0x7f;
    size_t p = *pos;
    p += (size_t)snprintf(out + p, p < len ? len - p : 0, " %s=%s", name, quote ? "\"" : "");
    for (size_t i = 0; i < vlen && p + 8 < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c == '"' || c == '\\')
            p += (size_t)snprintf(out + p, len - p, "\\%c", c);
        else if (c == '\n')
            p += (size_t)snprintf(out + p, len - p, "\\n");
        else if (c < ' ' || c == 0x7f)
            p += (size_t)snprintf(out + p, len - p, "\\u%04x", c);
        else
            out[p++] = (char)c;
    }
    if (quote && p + 1 < len)
        out[p++] = '"';
    out[p < len ? p : len - 1] = '\0';
    *pos = p < len ? p : len - 1;
}

static void emit_logfmt(ens_log_level_t level, const ens_log_field_t *fields, const char *msg)
{
    char line[4096], when[48];
    now_text(when, sizeof(when));
    size_t pos = (size_t)snprintf(line, sizeof(line), "time=%s level=%s", when, level_names[level]);
    size_t m = module_len(msg);
    if (m > 0)
        logfmt_pair(line, sizeof(line), &pos, "module", msg, m);
    logfmt_pair(line, sizeof(line), &pos, "msg", msg, strlen(msg));
    for (size_t i = 0; fields && fields[i].name; i++)
        logfmt_pair(line, sizeof(line), &pos, fields[i].name, fields[i].value,
                    strlen(fields[i].value));
    fprintf(stderr, "%s\n", line);
}

/* "ENSEMBLED_" and the name in upper case, "=", the value, into buf at *pos;
 * the iovec points at it. */
static void journal_field(struct iovec *iov, char *buf, size_t len, size_t *pos, const char *prefix,
                          const char *name, const char *value, size_t vlen)
{
    size_t p = *pos, start = p;
    for (const char *s = prefix; *s && p < len; s++)
        buf[p++] = *s;
    for (const char *s = name; *s && p < len; s++)
        buf[p++] = (*s >= 'a' && *s <= 'z') ? (char)(*s - 'a' + 'A') : *s;
    if (p < len)
        buf[p++] = '=';
    for (size_t i = 0; i < vlen && p < len; i++)
        buf[p++] = value[i];
    iov->iov_base = buf + start;
    iov->iov_len = p - start;
    *pos = p;
}

/* Returns sd_journal_sendv's result: negative when the journal is away. */
static int emit_journal(ens_log_level_t level, const ens_log_field_t *fields, const char *msg)
{
    char buf[8192];
    size_t pos = 0, n = 0;
    struct iovec iov[MAX_FIELDS + 4];
    char prio[16];
    snprintf(prio, sizeof(prio), "%d", (int)level);
    journal_field(&iov[n++], buf, sizeof(buf), &pos, "", "PRIORITY", prio, strlen(prio));
    journal_field(&iov[n++], buf, sizeof(buf), &pos, "", "SYSLOG_IDENTIFIER", "ensembled", 9);
    journal_field(&iov[n++], buf, sizeof(buf), &pos, "", "MESSAGE", msg, strlen(msg));
    size_t m = module_len(msg);
    if (m > 0)
        journal_field(&iov[n++], buf, sizeof(buf), &pos, "ENSEMBLED_", "module", msg, m);
    for (size_t i = 0; fields && fields[i].name && n < MAX_FIELDS + 4; i++)
        journal_field(&iov[n++], buf, sizeof(buf), &pos, "ENSEMBLED_", fields[i].name,
                      fields[i].value, strlen(fields[i].value));
    return sd_journal_sendv(iov, (int)n);
}

static void emit(ens_log_level_t level, const ens_log_field_t *fields, const char *msg)
{
    switch (format) {
    case ENS_LOG_FORMAT_LOGFMT:
        emit_logfmt(level, fields, msg);
        return;
    case ENS_LOG_FORMAT_JOURNAL:
        if (emit_journal(level, fields, msg) >= 0)
            return;
        /* The journal is away: the message is not lost. */
        emit_text(level, msg);
        return;
    case ENS_LOG_FORMAT_AUTO:
    case ENS_LOG_FORMAT_TEXT:
        emit_text(level, msg);
        return;
    }
}

static void vlogf(ens_log_level_t level, const ens_log_field_t *fields, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void vlogf(ens_log_level_t level, const ens_log_field_t *fields, const char *fmt, va_list ap)
{
    if (level > max_level)
        return;
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    emit(level, fields, line);
}

void ens_log(ens_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlogf(level, NULL, fmt, ap);
    va_end(ap);
}

void ens_logf(ens_log_level_t level, const ens_log_field_t *fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlogf(level, fields, fmt, ap);
    va_end(ap);
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The note on what a rate limit held back, with the fields of the message
 * that ends the silence (same limiter, same reason) and its own. */
static void log_suppressed(ens_ratelimit_t *rl, ens_log_level_t level,
                           const ens_log_field_t *fields, double now)
{
    ens_log_field_t all[MAX_FIELDS + 3];
    size_t n = 0;
    for (size_t i = 0; fields && fields[i].name && n < MAX_FIELDS; i++)
        all[n++] = fields[i];
    char count[32];
    snprintf(count, sizeof(count), "%llu", (unsigned long long)rl->suppressed);
    all[n++] = (ens_log_field_t){"suppressed", count};
    all[n++] = (ens_log_field_t){"suppressed_first", rl->first};
    all[n] = (ens_log_field_t){NULL, NULL};
    /* Said by the module that held them back, like the messages themselves. */
    size_t m = module_len(rl->first);
    ens_logf(level, all, "%.*s%s%llu similar message%s suppressed in %.1f s, the first: %s", (int)m,
             rl->first, m ? ": " : "", (unsigned long long)rl->suppressed,
             rl->suppressed == 1 ? "" : "s", now - rl->last, rl->first + (m ? m + 2 : 0));
}

static void vlogf_limited(ens_ratelimit_t *rl, ens_log_level_t level, const ens_log_field_t *fields,
                          const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void vlogf_limited(ens_ratelimit_t *rl, ens_log_level_t level, const ens_log_field_t *fields,
                          const char *fmt, va_list ap)
{
    double now = now_mono();
    if (rl->last > 0 && now - rl->last < 1.0) {
        /* The first one held back is kept, to say what was suppressed. */
        if (rl->suppressed++ == 0)
            vsnprintf(rl->first, sizeof(rl->first), fmt, ap);
        return;
    }
    if (rl->suppressed > 0)
        log_suppressed(rl, level, fields, now);
    rl->suppressed = 0;
    rl->last = now;
    vlogf(level, fields, fmt, ap);
}

void ens_log_limited(ens_ratelimit_t *rl, ens_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlogf_limited(rl, level, NULL, fmt, ap);
    va_end(ap);
}

void ens_logf_limited(ens_ratelimit_t *rl, ens_log_level_t level, const ens_log_field_t *fields,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlogf_limited(rl, level, fields, fmt, ap);
    va_end(ap);
}
