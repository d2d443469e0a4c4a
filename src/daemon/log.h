/* log.h - the daemon's logging: stderr, with sd-daemon priority prefixes
 * ("<3>") when running under systemd so the journal keeps the severity, and
 * a per-reason rate limit for messages a peer can trigger. */
#ifndef ENSEMBLED_LOG_H
#define ENSEMBLED_LOG_H

#include <stdint.h>

typedef enum {
    ENS_LOG_ERR = 3,
    ENS_LOG_WARNING = 4,
    ENS_LOG_NOTICE = 5,
    ENS_LOG_INFO = 6,
    ENS_LOG_DEBUG = 7,
} ens_log_level_t;

/* Sets the most verbose level printed and whether to prefix priorities
 * (auto: when JOURNAL_STREAM is set). */
void ens_log_init(ens_log_level_t max_level, int foreground);
void ens_log_set_level(ens_log_level_t max_level);
/* Parses err|warning|notice|info|debug (and error, warn): 0 or -1. */
int ens_log_parse_level(const char *s, ens_log_level_t *out);

void ens_log(ens_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ENS_LOG(level, ...) ens_log(ENS_LOG_##level, __VA_ARGS__)

/* A rate limit: at most one message per second; the next one printed is
 * preceded by how many were suppressed, over how long, and the text of the
 * first of them. Zero-initialised. */
typedef struct {
    double last;         /* time of the last message printed */
    uint64_t suppressed; /* messages dropped since */
    char first[192];     /* the first of them (truncated) */
} ens_ratelimit_t;

void ens_log_limited(ens_ratelimit_t *rl, ens_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
