/* log.h - the daemon's logging, in one of three formats ([log] format):
 *
 *   text     "2026-01-02T03:04:05.678Z warning: ingest: ..." on stderr (with
 *            sd-daemon priority prefixes such as "<4>" when stderr is the
 *            journal's stream);
 *   logfmt   one line of key=value pairs on stderr: time, level, module (the
 *            message's leading "name: "), msg, then the message's fields;
 *   journal  sd_journal_send: PRIORITY, MESSAGE, SYSLOG_IDENTIFIER, and each
 *            field as ENSEMBLED_<NAME> (ENSEMBLED_MODULE, ENSEMBLED_TASK,
 *            ENSEMBLED_REASON, ...), so `journalctl ENSEMBLED_TASK=x` works;
 *            text on stderr if the journal cannot be reached.
 *
 * auto (the default) is journal when stderr is the journal's stream (systemd
 * sets JOURNAL_STREAM to its device:inode) and --foreground is not given,
 * logfmt otherwise. Fields are
 * lower-case names with printable values, given per message; a per-reason
 * rate limit serves messages a peer can trigger. */
#ifndef ENSEMBLED_LOG_H
#define ENSEMBLED_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    ENS_LOG_ERR = 3,
    ENS_LOG_WARNING = 4,
    ENS_LOG_NOTICE = 5,
    ENS_LOG_INFO = 6,
    ENS_LOG_DEBUG = 7,
} ens_log_level_t;

typedef enum {
    ENS_LOG_FORMAT_AUTO,
    ENS_LOG_FORMAT_TEXT,
    ENS_LOG_FORMAT_LOGFMT,
    ENS_LOG_FORMAT_JOURNAL,
} ens_log_format_t;

/* Sets the most verbose level printed and whether the daemon runs in the
 * foreground (then auto is never the journal, nor text prefixed); the
 * format is auto until ens_log_set_format. */
void ens_log_init(ens_log_level_t max_level, int foreground);
void ens_log_set_level(ens_log_level_t max_level);
/* Sets the format; auto is resolved here, from JOURNAL_STREAM and stderr. */
void ens_log_set_format(ens_log_format_t format);
/* The format in use (never auto). */
ens_log_format_t ens_log_format(void);
/* Parses err|warning|notice|info|debug (and error, warn): 0 or -1. */
int ens_log_parse_level(const char *s, ens_log_level_t *out);
/* Parses auto|text|logfmt|journal: 0 or -1. */
int ens_log_parse_format(const char *s, ens_log_format_t *out);

/* One field of a message: name is [a-z0-9_]+, value any text (logfmt quotes
 * it when needed). Arrays of fields end with {NULL, NULL}. */
typedef struct {
    const char *name;
    const char *value;
} ens_log_field_t;

#define ENS_LOG_FIELDS(...)                                                                        \
    (const ens_log_field_t[])                                                                      \
    {                                                                                              \
        __VA_ARGS__,                                                                               \
        {                                                                                          \
            NULL, NULL                                                                             \
        }                                                                                          \
    }

void ens_log(ens_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* ens_log with fields (NULL: none). */
void ens_logf(ens_log_level_t level, const ens_log_field_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ENS_LOG(level, ...) ens_log(ENS_LOG_##level, __VA_ARGS__)

/* A rate limit: at most one message per second; the next one printed is
 * preceded by how many were suppressed, over how long, and the text of the
 * first of them (fields suppressed=N and suppressed_first=TEXT beside the fields of
 * the message that ends the silence). Zero-initialised. */
typedef struct {
    double last;         /* time of the last message printed */
    uint64_t suppressed; /* messages dropped since */
    char first[192];     /* the first of them (truncated) */
} ens_ratelimit_t;

void ens_log_limited(ens_ratelimit_t *rl, ens_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* ens_log_limited with fields (NULL: none). */
void ens_logf_limited(ens_ratelimit_t *rl, ens_log_level_t level, const ens_log_field_t *fields,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
