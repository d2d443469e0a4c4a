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
    "                         [--timeout MS] [--json] [--server-key F --client-key F]\n"
    "Subscribes to ensembled's publications (default tcp://127.0.0.1:5558) and\n"
    "prints each one: a line per ensemble, or the whole body as JSON. A new\n"
    "subscriber gets the latest ensemble of every task at once. --count stops\n"
    "after N publications, --timeout after MS milliseconds without one.\n";

/* A figure as the line shows it: -1 when unknown (nil). */
static double fig(double v)
{
    return v == v ? v : -1;
}

static void print_str(ens_str_t s)
{
    printf("%.*s", (int)s.len, s.ptr);
}

/* One line: time, task, version, models, accuracies, reason. */
static void print_line(const ens_body_t *b)
{
    time_t now = time(NULL);
    char when[16];
    strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
    printf("%s  ", when);
    print_str(b->task);
    printf(" v%.0f  ", (double)b->version);
    for (size_t i = 0; i < b->nmodels; i++) {
        printf("%s", i ? ", " : "");
        print_str(b->models[i]);
    }
    printf("  [%s] accuracy %.4f (vote %.4f, best single %.4f)  rows %.0f", ens_comb_name(b->comb),
           fig(b->acc_combiner), fig(b->acc_vote), fig(b->acc_single), (double)b->window_rows);
    printf("  floor %.4f  fano %.4f", fig(b->copula_error_floor), fig(b->fano_error_lower));
    printf("  (%s)\n", ens_reason_name(b->reason));
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
            ctl_json_object(stdout, &o);
            fputc('\n', stdout);
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
    size_t count, timeout;
    int json;
} args_t;

/* Parses argv into a: 0, 1 when --help was printed, or 2 (usage or an
 * error printed). */
static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {
        {"publish", required_argument, NULL, 'p'}, {"task", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},   {"timeout", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},          CTL_CURVE_OPTIONS,
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
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
            if (ctl_parse_size("--timeout", optarg, 1, 86400000, &a->timeout) < 0)
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
    return 0;
}

/* Receives and prints publications until count are seen (0: forever) or
 * one does not come within the timeout: the exit code. */
static int watch(void *s, const args_t *a)
{
    int rc = 0;
    for (size_t seen = 0; rc == 0 && (a->count == 0 || seen < a->count); seen++) {
        zmq_msg_t t, body;
        zmq_msg_init(&t);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&t, s, 0) < 0 || !zmq_msg_more(&t) || zmq_msg_recv(&body, s, 0) < 0) {
            if (zmq_errno() == EAGAIN)
                ctl_error("no publication within %zu ms", a->timeout);
            rc = 1;
        } else {
            print_body(zmq_msg_data(&body), zmq_msg_size(&body), a->json);
        }
        zmq_msg_close(&t);
        zmq_msg_close(&body);
    }
    return rc;
}

int ctl_watch(int argc, char **argv)
{
    args_t a = {.endpoint = "tcp://127.0.0.1:5558"};
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
    int linger = 0, to = a.timeout ? (int)a.timeout : -1;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &to, sizeof(to));
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, topic, tlen);
    if (ctl_curve_client(s, &a.keys) < 0) {
        rc = 2;
    } else if (zmq_connect(s, a.endpoint) < 0) {
        ctl_error("%s: %s", a.endpoint, zmq_strerror(zmq_errno()));
        rc = 1;
    } else {
        rc = watch(s, &a);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}
