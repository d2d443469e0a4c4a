/* cmd_watch.c - ensemblectl watch: a live view of published ensembles. */
#include <errno.h>
#include <getopt.h>
#include <msgpack.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "ctl.h"
#include "ensembled/body.h"

static const char usage[] =
    "usage: ensemblectl watch [--publish ENDPOINT] [--task T] [--count N]\n"
    "                         [--timeout MS] [--idle MS] [--json]\n"
    "                         [--server-key F --client-key F]\n"
    "Subscribes to ensembled's publications (default tcp://127.0.0.1:5558) and\n"
    "prints each one: a line per ensemble (the time the daemon published it,\n"
    "task, version, models, combiner, held-out accuracy, window rows, two error\n"
    "rates: the copula floor of the pool and Fano's lower bound for these models,\n"
    "why this set, and the final choice's candidate when not the selection), or\n"
    "with --json the whole body as JSON. A new subscriber gets the latest\n"
    "ensemble of every task at once.\n"
    "Exits 1 when no daemon answers on the endpoint within --timeout MS (default\n"
    "3000: the ZeroMQ handshake must complete); when it answers but has published\n"
    "nothing within that time, says so on stderr and keeps waiting. --count\n"
    "stops after N publications, --idle after MS milliseconds without one.\n";

/* A figure as the line shows it: "-" when unknown (nil). */
static const char *fig(double v, char *buf, size_t len)
{
    if (v == v)
        snprintf(buf, len, "%.3f", v);
    else
        snprintf(buf, len, "-");
    return buf;
}

static void print_str(ens_str_t s)
{
    printf("%.*s", (int)s.len, s.ptr);
}

/* One line: the body's own time, task, version, models, accuracies,
 * bounds, reason. */
static void print_line(const ens_body_t *b)
{
    char when[16] = "--:--:--", f[4][32];
    time_t ts = (time_t)b->ts;
    struct tm tm;
    if (b->ts > 0 && localtime_r(&ts, &tm))
        strftime(when, sizeof(when), "%H:%M:%S", &tm);
    printf("%s  ", when);
    print_str(b->task);
    printf(" v%.0f  ", (double)b->version);
    for (size_t i = 0; i < b->nmodels; i++) {
        printf("%s", i ? ", " : "");
        print_str(b->models[i]);
    }
    printf("  [%s] accuracy %s (vote %s, best single %s)  rows %.0f", ens_comb_name(b->comb),
           fig(b->acc_combiner, f[0], sizeof(f[0])), fig(b->acc_vote, f[1], sizeof(f[1])),
           fig(b->acc_single, f[2], sizeof(f[2])), (double)b->window_rows);
    printf("  error rate: floor %s, Fano >= %s", fig(b->copula_error_floor, f[0], sizeof(f[0])),
           fig(b->fano_error_lower, f[1], sizeof(f[1])));
    printf("  (%s", ens_reason_name(b->reason));
    /* The reason speaks of the information-selected set; when the final
     * choice published another candidate, say which. */
    if (b->choice_winner.len &&
        !(b->choice_winner.len == 9 && memcmp(b->choice_winner.ptr, "selection", 9) == 0)) {
        printf("; published: ");
        print_str(b->choice_winner);
    }
    printf(")\n");
}

/* Prints one publication body: the line, or (json) the whole body. */
static void print_body(const char *buf, size_t len, int json)
{
    char err[256];
    if (json) {
        msgpack_zone zone;
        msgpack_zone_init(&zone, 8192);
        msgpack_object o;
        if (ctl_unpack(buf, len, &zone, &o) < 0) {
            ctl_error("malformed publication");
        } else {
            ctl_json_print_msgpack(&o);
        }
        msgpack_zone_destroy(&zone);
    } else {
        ens_body_t *b = NULL;
        if (ens_body_decode(buf, len, &b, err, sizeof(err)) < 0)
            ctl_error("malformed publication: %s", err);
        else
            print_line(b);
        ens_body_destroy(&b);
    }
    fflush(stdout);
}

typedef struct {
    const char *endpoint, *task;
    ctl_curve_keys_t keys;
    size_t count, timeout, idle;
    int json;
} args_t;

/* Parses argv into a: 0, 1 when --help was printed, or 2 (usage or an
 * error printed). */
static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {{"publish", required_argument, NULL, 'p'},
                                         {"task", required_argument, NULL, 't'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"idle", required_argument, NULL, 'i'},
                                         {"json", no_argument, NULL, 'j'},
                                         CTL_CURVE_OPTIONS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'p') {
            a->endpoint = optarg;
        } else if (c == 't') {
            a->task = optarg;
        } else if (c == 'n') {
            if (ctl_parse_size("--count", optarg, 1, SIZE_MAX, &a->count) < 0)
                return 2;
        } else if (c == 'T') {
            if (ctl_parse_size("--timeout", optarg, 1, 3600000, &a->timeout) < 0)
                return 2;
        } else if (c == 'i') {
            if (ctl_parse_size("--idle", optarg, 1, 86400000, &a->idle) < 0)
                return 2;
        } else if (c == 'j') {
            a->json = 1;
        } else if (c == 'h') {
            fputs(usage, stdout);
            return 1;
        } else if (!ctl_curve_option(c, &a->keys)) {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    return 0;
}

/* Waits on the monitor of the SUB socket until its handshake with a
 * publisher completes: 0, or -1 with the error printed. The handshake, not
 * the TCP connection, is what tells a live daemon: a connect to a dead port
 * just retries quietly, and a CURVE server that refuses the key completes
 * the connection but fails the handshake. */
static int await_handshake(void *mon, const args_t *a)
{
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        zmq_msg_init(&addr);
        int got = zmq_msg_recv(&ev, mon, 0) >= 0 && zmq_msg_more(&ev) &&
                  zmq_msg_recv(&addr, mon, 0) >= 0 && zmq_msg_size(&ev) >= 2;
        uint16_t event = 0;
        if (got)
            memcpy(&event, zmq_msg_data(&ev), sizeof(event));
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        if (!got) {
            ctl_error("%s: no daemon answered within %zu ms (is ensembled running?)", a->endpoint,
                      a->timeout);
            return -1;
        }
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            return 0;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            ctl_error("%s: the daemon refused this client's CURVE key", a->endpoint);
            return -1;
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
            event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            ctl_error("%s: the ZeroMQ handshake failed (a CURVE mismatch, or not ensembled)",
                      a->endpoint);
            return -1;
        }
    }
}

/* Receives and prints publications until count are seen (0: forever) or
 * none comes within --idle: the exit code. The first wait is cut at
 * --timeout (when --idle is not shorter) to say that nothing is published
 * yet: a daemon that has published sends its latest bodies at once. */
static int watch(void *s, const args_t *a)
{
    int rc = 0, first = 1, idle = a->idle ? (int)a->idle : -1;
    for (size_t seen = 0; rc == 0 && (a->count == 0 || seen < a->count);) {
        int early = first && (idle < 0 || (int)a->timeout < idle);
        int to = early ? (int)a->timeout : idle;
        zmq_setsockopt(s, ZMQ_RCVTIMEO, &to, sizeof(to));
        zmq_msg_t t, body;
        zmq_msg_init(&t);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&t, s, 0) >= 0 && zmq_msg_more(&t) && zmq_msg_recv(&body, s, 0) >= 0) {
            print_body(zmq_msg_data(&body), zmq_msg_size(&body), a->json);
            seen++;
        } else if (zmq_errno() != EAGAIN) {
            ctl_error("%s: %s", a->endpoint, zmq_strerror(zmq_errno()));
            rc = 1;
        } else if (early) {
            fprintf(stderr, "ensemblectl: %s answers, but nothing is published yet%s%s; waiting\n",
                    a->endpoint, a->task ? " for task " : "", a->task ? a->task : "");
        } else {
            ctl_error("no publication within %zu ms", a->idle);
            rc = 1;
        }
        first = 0;
        zmq_msg_close(&t);
        zmq_msg_close(&body);
    }
    return rc;
}

/* Connects s to the endpoint, watched by a monitor until the handshake:
 * 0, or the exit code with the error printed. */
static int connect_sub(void *ctx, void *s, const args_t *a)
{
    char name[64];
    snprintf(name, sizeof(name), "inproc://ensemblectl-watch-%p", s);
    if (zmq_socket_monitor(s, name,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) < 0) {
        ctl_error("socket monitor: %s", zmq_strerror(zmq_errno()));
        return 1;
    }
    void *mon = zmq_socket(ctx, ZMQ_PAIR);
    int linger = 0, to = (int)a->timeout, rc = 0;
    zmq_setsockopt(mon, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(mon, ZMQ_RCVTIMEO, &to, sizeof(to));
    if (zmq_connect(mon, name) < 0) {
        ctl_error("socket monitor: %s", zmq_strerror(zmq_errno()));
        rc = 1;
    } else if (zmq_connect(s, a->endpoint) < 0) {
        ctl_error("%s: %s", a->endpoint, zmq_strerror(zmq_errno()));
        rc = 1;
    } else if (await_handshake(mon, a) < 0) {
        rc = 1;
    }
    zmq_socket_monitor(s, NULL, 0);
    zmq_close(mon);
    return rc;
}

int ctl_watch(int argc, char **argv)
{
    args_t a = {.endpoint = "tcp://127.0.0.1:5558", .timeout = 3000};
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    /* One task: its whole topic, so "med" does not match "medmcqa". */
    char topic[512];
    size_t tlen = a.task ? ens_topic(a.task, strlen(a.task), topic, sizeof(topic))
                         : ens_topic("", 0, topic, sizeof(topic)) - 1;
    if (tlen > sizeof(topic)) {
        ctl_error("--task: name too long");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, topic, tlen);
    if (ctl_curve_client(s, &a.keys) < 0)
        rc = 2;
    else if ((rc = connect_sub(ctx, s, &a)) == 0)
        rc = watch(s, &a);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}
