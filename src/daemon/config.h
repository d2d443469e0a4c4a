/* config.h - ensembled's configuration (INI, parsed with libinih).
 *
 * Every key is one row of the table in config.c: section, name, type,
 * bounds, default, whether a SIGHUP reload may change it, and whether a
 * [task.NAME] section may override it. A file is parsed into a fresh
 * ens_config_t and validated whole; the caller swaps it in only on success,
 * so a bad reload changes nothing. conf/ensembled.conf documents every key.
 */
#ifndef ENSEMBLED_CONFIG_H
#define ENSEMBLED_CONFIG_H

#include <stddef.h>

#include "ensembled/mi.h"
#include "ensembled/open.h"
#include "ensembled/select.h"
#include "log.h"

#define ENS_CONF_STR 256
#define ENS_CONF_MAX_TASKS 64
#define ENS_CONF_MAX_CONNECT 8
#define ENS_CONF_MAX_KEYS 48   /* rows of the key table, at most */
#define ENS_CONF_MAX_ERRORS 32 /* errors reported of one file */

/* The keys a task may override: [join], [window] and [select]. */
typedef struct {
    double join_ttl;           /* seconds an unjoined query waits */
    size_t join_max_pending;   /* pending queries kept per task */
    size_t window_rows;        /* rows in the sliding window */
    double window_max_age;     /* seconds a row stays (0: no limit) */
    ens_strategy_t strategy;   /* select.strategy */
    size_t budget;             /* select.budget */
    double cost_budget;        /* select.cost_budget (greedy-cost) */
    ens_estimator_t estimator; /* select.estimator */
    double min_gain_bits;      /* select.min_gain_bits */
    double explore_rate;       /* select.explore_rate: share of queries asking every model */
    size_t min_rows;           /* select.min_rows: coverage a model needs to be selected */
    double retire_after;       /* select.retire_after: silence that retires a model (0: never) */
    ens_answers_t answers;     /* window.answers: labels, or open answers by agreement */
    ens_norm_t normalize;      /* window.normalize: when open answers agree */
} ens_task_conf_t;

typedef struct {
    char name[ENS_CONF_STR];
    ens_task_conf_t conf;
} ens_task_section_t;

typedef struct {
    char ingest_bind[ENS_CONF_STR];
    char ingest_connect[ENS_CONF_MAX_CONNECT][ENS_CONF_STR];
    size_t ingest_nconnect;
    double sample_rate;
    size_t max_message_bytes;
    size_t max_tasks;
    size_t max_models;
    double max_future; /* a label ts further ahead of the clock is taken as now */
    double max_cost;   /* an event's cost above it is refused (bad_cost) */
    /* NATS JetStream intake (natsin.h): server URLs ("": off), stream,
     * subject filter, durable consumer, credentials and CA files, how long
     * the server waits for an acknowledgement before it redelivers. */
    char nats_url[ENS_CONF_STR];
    char nats_stream[ENS_CONF_STR];
    char nats_subject[ENS_CONF_STR];
    char nats_durable[ENS_CONF_STR];
    char nats_creds[ENS_CONF_STR];
    char nats_tls_ca[ENS_CONF_STR];
    double nats_ack_wait;
    ens_task_conf_t task; /* the defaults every task starts from */
    ens_task_section_t sections[ENS_CONF_MAX_TASKS];
    size_t nsections;
    char publish_bind[ENS_CONF_STR];
    double publish_interval;
    size_t publish_every_labels;
    double min_improvement_bits;
    size_t publish_max_queued;  /* publications queued per subscriber (ZMQ_SNDHWM) */
    char nats_kv[ENS_CONF_STR]; /* JetStream key-value bucket bodies go to ("": none) */
    char control_bind[ENS_CONF_STR];
    char metrics_bind[ENS_CONF_STR]; /* host:port of /metrics ("": none) */
    size_t control_max_queued;       /* requests and replies queued per client (HWMs) */
    char state_dir[ENS_CONF_STR];
    double snapshot_interval;
    double fsync_interval;
    char curve_secret_key_file[ENS_CONF_STR];
    char curve_public_key_file[ENS_CONF_STR];
    char authorized_keys_dir[ENS_CONF_STR];
    int allow_plaintext; /* security.allow_plaintext: bind beyond loopback without CURVE */
    ens_log_level_t log_level;
    ens_log_format_t log_format;  /* log.format: auto, text, logfmt or journal */
    int lines[ENS_CONF_MAX_KEYS]; /* per key of the table: the line that set it (0: default) */
} ens_config_t;

/* The errors found in one file, each with its line (0: none), reported
 * together in line order. */
typedef struct {
    int line;
    char text[256];
} ens_config_error_t;

typedef struct {
    ens_config_error_t e[ENS_CONF_MAX_ERRORS];
    size_t n;
    size_t lost; /* errors beyond ENS_CONF_MAX_ERRORS */
} ens_config_errors_t;

void ens_config_error(ens_config_errors_t *e, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets every key to its default. */
void ens_config_defaults(ens_config_t *c);

/* Parses path into *c (defaults first) and checks the values together:
 * ZeroMQ endpoints, metrics.bind, no bind beyond loopback without CURVE
 * unless security.allow_plaintext, no key set twice. Returns 0, or -1
 * with every error found, one "file:line: key: reason" per line, in err. */
int ens_config_load(const char *path, ens_config_t *c, char *err, size_t errlen);

/* ens_config_load, then what the start would find on this machine: the key
 * files readable, the authorized keys directory open, the state directory
 * writable (or creatable), each with the OS error; all reported at once
 * (--check-config). */
int ens_config_check(const char *path, ens_config_t *c, char *err, size_t errlen);

/* The line of path that set section.name (0: the default, or no such key). */
int ens_config_line(const ens_config_t *c, const char *section, const char *name);

/* A file name as configured: "credential:NAME" is NAME in the directory
 * of systemd credentials ($CREDENTIALS_DIRECTORY, LoadCredential=), any
 * other value the path itself. Returns 0, or -1 with the reason in why. */
int ens_config_path(const char *value, char *out, size_t outlen, const char **why);

/* config_check.c: the value checks ens_config_load runs, and the machine
 * checks ens_config_check adds. */
void ens_config_check_values(const ens_config_t *c, ens_config_errors_t *e);
void ens_config_check_files(const ens_config_t *c, ens_config_errors_t *e);

/* The effective settings of a task: its section's, or the defaults. */
const ens_task_conf_t *ens_config_task(const ens_config_t *c, const char *task);

/* Describes, one line per key, what differs between old and new and cannot
 * change without a restart, into buf. Returns the number of such keys. */
size_t ens_config_restart_needed(const ens_config_t *old, const ens_config_t *new_conf, char *buf,
                                 size_t buflen);

/* Copies into next every key of cur that a reload cannot change, so that
 * next holds what the running daemon will actually use. */
void ens_config_keep_fixed(ens_config_t *next, const ens_config_t *cur);

/* Parses a duration: "250ms", "10s", "5m", "1h", "2d" or plain seconds. */
int ens_config_parse_duration(const char *s, double *out);

#endif
