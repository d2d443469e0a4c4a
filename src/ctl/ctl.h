/* ctl.h - ensemblectl: subcommands and the helpers they share. */
#ifndef ENSEMBLECTL_CTL_H
#define ENSEMBLECTL_CTL_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "ensembled/data.h"
#include "ensembled/open.h"

/* Each subcommand takes argv after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit code. */
int ctl_mi(int argc, char **argv);
int ctl_select(int argc, char **argv);
int ctl_simulate(int argc, char **argv);
/* simulate --closed-loop (cmd_loop.c): argv as ctl_simulate's. */
int ctl_simulate_loop(int argc, char **argv);
int ctl_floor(int argc, char **argv);
/* status, ensemble, recompute: argv[0] is the command. */
int ctl_control(int argc, char **argv);
/* health (cmd_health.c): exit code 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
int ctl_health(int argc, char **argv);
int ctl_watch(int argc, char **argv);
int ctl_replay(int argc, char **argv);
int ctl_keygen(int argc, char **argv);
int ctl_send(int argc, char **argv);

/* The CURVE client options every daemon command takes, --server-key FILE
 * and --client-key FILE: CTL_CURVE_OPTIONS goes in the command's getopt_long
 * table, and ctl_curve_option() in its switch before the default error. The
 * option values lie above any character, so they never clash with a
 * command's own short values. */
enum { CTL_OPT_SERVER_KEY = 0x100, CTL_OPT_CLIENT_KEY };
/* Unformatted: clang-format would spread the second entry over four lines. */
/* clang-format off */
#define CTL_CURVE_OPTIONS                                                                          \
    {"server-key", required_argument, NULL, CTL_OPT_SERVER_KEY},                                   \
    {"client-key", required_argument, NULL, CTL_OPT_CLIENT_KEY}
/* clang-format on */

/* The key files given (NULL: not given); borrowed from argv. */
typedef struct {
    const char *server, *client;
} ctl_curve_keys_t;

/* Takes getopt_long's value c (and optarg) into k: 1 when c is one of the
 * CURVE options, 0 otherwise. */
int ctl_curve_option(int c, ctl_curve_keys_t *k);

/* Makes sock a CURVE client when either key file of k is given (both are
 * then required): 0, or -1 with the error printed. */
int ctl_curve_client(void *sock, const ctl_curve_keys_t *k);

/* select --body (select_body.c): the body the daemon would publish for the
 * rows of csv under the configuration file config (NULL: defaults), task
 * `task`, printed as JSON; with costs (a --costs file, NULL: none) each
 * answer of a model the file names carries its cost. Returns the exit
 * code. */
int ctl_select_body(const char *csv, const char *config, const char *task, const char *costs);

/* select --costs (costs.c): reads the CSV of `model,cost` lines at path
 * into d->cost, and given[j] (d->nmodels of them) the cost of each model
 * the file names, NaN for the others (whose cost stays). 0, or -1 with the
 * error printed (file:line: unknown or repeated model, bad cost). */
int ctl_load_costs(const char *path, ens_data_t *d, double *given);

/* Makes a PUSH socket fail fast: messages go only to peers whose
 * connection is complete (ZMQ_IMMEDIATE), a send waits at most timeout_ms
 * for one (then fails with EAGAIN), and closing waits at most as long for
 * queued messages. Without it, a send to a dead endpoint is queued and
 * "succeeds". */
void ctl_push_fail_fast(void *sock, int timeout_ms);

/* The error line for a failed send on such a socket. */
void ctl_send_error(const char *endpoint, int timeout_ms);

/* Publishing to a NATS JetStream stream (nats_pub.c): urls is a
 * comma-separated server list; tls_ca and creds (NULL: none) as the
 * daemon's ingest.nats_tls_ca and nats_creds. open: NULL with the error
 * printed (a build without NATS too). send: 0 once the stream has stored
 * the message, -1 (error printed) after retrying for 30 s. */
typedef struct ctl_nats_s ctl_nats_t;
ctl_nats_t *ctl_nats_open(const char *urls, const char *subject, const char *tls_ca,
                          const char *creds);
int ctl_nats_send(ctl_nats_t *p, const void *data, size_t len);
void ctl_nats_close(ctl_nats_t **pp);

/* Prints "ensemblectl: <message>" on stderr. */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The options of the CSV tools that say how to read answers, --answers
 * choice|open and --normalize exact|fold|numeric (open.h):
 * CTL_ANSWER_OPTIONS goes in the command's getopt_long table, and
 * ctl_answer_option() in its switch before the default error; it returns 1
 * when c was one of them, -1 on a bad value (error printed), 0 otherwise.
 * ctl_load_csv reads the file as they say (default: choice). */
enum { CTL_OPT_ANSWERS = 0x110, CTL_OPT_NORMALIZE };
/* clang-format off */
#define CTL_ANSWER_OPTIONS                                                                         \
    {"answers", required_argument, NULL, CTL_OPT_ANSWERS},                                         \
    {"normalize", required_argument, NULL, CTL_OPT_NORMALIZE}
/* clang-format on */
#define CTL_ANSWER_USAGE                                                                           \
    "--answers open reads every cell as a free answer (any number of distinct\n"                   \
    "answers; models compared by agreement), equal after --normalize exact (default),\n"           \
    "fold (trimmed, case-folded) or numeric (parsed as a number).\n"
int ctl_answer_option(int c);
/* Whether --answers open was given. */
int ctl_answers_open(void);
/* How ctl_load_csv reads answers when neither option was given (select
 * --body: as the configured task does). */
void ctl_answers_default(ens_answers_t answers, ens_norm_t norm);

/* Loads a wide CSV; prints one error line and returns NULL on failure. */
ens_data_t *ctl_load_csv(const char *path);

/* Resolves a comma-separated list of model names of d into out[0..max):
 * returns the count (>= 1), or -1 with the error printed (unknown or
 * repeated name, too many, none). */
int ctl_parse_models(const ens_data_t *d, const char *list, size_t *out, size_t max);

/* Parses a non-negative integer / a double in [lo, hi]; 0 or -1 (error
 * printed, naming the option). */
int ctl_parse_size(const char *opt, const char *s, size_t lo, size_t hi, size_t *out);
int ctl_parse_double(const char *opt, const char *s, double lo, double hi, double *out);

/* JSON output (json.c): every document ensemblectl prints is a jansson
 * tree built with these and written by ctl_json_print(). Strings become
 * valid UTF-8 (U+FFFD for a bad byte), NaN and infinities null, reals in
 * the fewest digits that read back as the same double (0.857, never
 * 0.85699999999999998). Constructors return a new reference; _set and _push
 * take val's (NULL: null). */
json_t *ctl_json_real(double v);
json_t *ctl_json_str(const char *s, size_t len);
json_t *ctl_json_cstr(const char *s);
void ctl_json_set(json_t *obj, const char *key, json_t *val);
void ctl_json_push(json_t *arr, json_t *val);

/* Writes j as one line of compact JSON on stdout and releases it: 0, or -1
 * when the output failed. */
int ctl_json_print(json_t *j);

/* status (status_view.c): prints the reply st as a summary line and a
 * table of the tasks; keeps only task in st's "tasks" (-1: it has none). */
void ctl_status_print_human(const json_t *st);
int ctl_status_only_task(json_t *st, const char *task);

/* MessagePack helpers: convert to JSON (nil null, maps with non-string keys
 * keyed by their text); print as JSON; unpack after the header pre-walk. */
struct msgpack_object;
struct msgpack_zone;
json_t *ctl_json_from_msgpack(const struct msgpack_object *o);
int ctl_json_print_msgpack(const struct msgpack_object *o);
int ctl_unpack(const void *buf, size_t len, struct msgpack_zone *zone, struct msgpack_object *out);

#endif
