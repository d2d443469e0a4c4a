/* cmd_send.c - ensemblectl send: one event, from the command line. */
#include <getopt.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "ensembled/protocol.h"

static const char usage[] =
    "usage: ensemblectl send --kind prediction|label --query Q [--task T]\n"
    "                        [--model M --label L | --label L] [--uint-query]\n"
    "                        [--ts SECONDS] [--cost C] [--ingest ENDPOINT]\n"
    "                        [--timeout MS] [--server-key FILE --client-key FILE]\n"
    "Sends one event to ensembled's ingest socket (default tcp://127.0.0.1:5557):\n"
    "a prediction (model M answered L; '?' for an abstention) or a label (the\n"
    "truth of query Q is L). --uint-query sends Q as an unsigned integer.\n"
    "Exits 1 when no daemon takes the event within --timeout MS (default 5000).\n";

typedef struct {
    const char *kind, *query, *task, *model, *label;
    int uint_query;
    double ts, cost;
} event_t;

static ens_str_t str_of(const char *s)
{
    ens_str_t r = {s, s ? strlen(s) : 0};
    return r;
}

/* The event of the options, written to w: 0, or -1 (a bad --query, printed). */
static int pack_event(const event_t *o, ens_mpw_t *w)
{
    ens_pred_t pred = {str_of(o->model), str_of(o->label)};
    ens_event_t e = {.task = str_of(o->task), .ts = o->ts, .cost = o->cost};
    if (strcmp(o->kind, "prediction") == 0) {
        e.kind = ENS_EVENT_PREDICTION;
        e.preds = &pred;
        e.npreds = 1;
    } else {
        e.kind = ENS_EVENT_LABEL;
        e.label = pred.label;
    }
    if (o->uint_query) {
        size_t q;
        if (ctl_parse_size("--query", o->query, 0, SIZE_MAX, &q) < 0)
            return -1;
        e.query_is_uint = 1;
        e.query_uint = q;
    } else {
        e.query_str = str_of(o->query);
    }
    ens_event_encode(w, &e);
    return 0;
}

typedef struct {
    event_t e;
    const char *endpoint;
    ctl_curve_keys_t keys;
    size_t timeout;
} args_t;

/* One option of the command into a: 0, 1 when --help was printed, or 2
 * (usage or an error printed). */
static int take_option(int c, args_t *a)
{
    switch (c) {
    case 'k':
        a->e.kind = optarg;
        return 0;
    case 'q':
        a->e.query = optarg;
        return 0;
    case 't':
        a->e.task = optarg;
        return 0;
    case 'm':
        a->e.model = optarg;
        return 0;
    case 'l':
        a->e.label = optarg;
        return 0;
    case 'u':
        a->e.uint_query = 1;
        return 0;
    case 's':
        return ctl_parse_double("--ts", optarg, 0, 1e12, &a->e.ts) < 0 ? 2 : 0;
    case 'c':
        return ctl_parse_double("--cost", optarg, 0, 1e12, &a->e.cost) < 0 ? 2 : 0;
    case 'i':
        a->endpoint = optarg;
        return 0;
    case 'T':
        return ctl_parse_size("--timeout", optarg, 1, 3600000, &a->timeout) < 0 ? 2 : 0;
    case 'h':
        fputs(usage, stdout);
        return 1;
    default:
        if (ctl_curve_option(c, &a->keys))
            return 0;
        fputs(usage, stderr);
        return 2;
    }
}

/* Parses argv into a: 0, 1 when --help was printed, or 2. */
static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {{"kind", required_argument, NULL, 'k'},
                                         {"query", required_argument, NULL, 'q'},
                                         {"task", required_argument, NULL, 't'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"label", required_argument, NULL, 'l'},
                                         {"uint-query", no_argument, NULL, 'u'},
                                         {"ts", required_argument, NULL, 's'},
                                         {"cost", required_argument, NULL, 'c'},
                                         {"ingest", required_argument, NULL, 'i'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         CTL_CURVE_OPTIONS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c, rc;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if ((rc = take_option(c, a)) != 0)
            return rc;
    const event_t *e = &a->e;
    int pred = e->kind && strcmp(e->kind, "prediction") == 0;
    if (!e->kind || (!pred && strcmp(e->kind, "label") != 0) || !e->query || !e->label ||
        (pred && !e->model) || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    return 0;
}

int ctl_send(int argc, char **argv)
{
    args_t a = {.e = {.task = "default", .ts = -1, .cost = -1},
                .endpoint = "tcp://127.0.0.1:5557",
                .timeout = 5000};
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    ens_mpw_t w;
    ens_mpw_init(&w);
    rc = pack_event(&a.e, &w) < 0 ? 2 : 0;
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_PUSH);
    ctl_push_fail_fast(s, (int)a.timeout);
    if (rc == 0 && ctl_curve_client(s, &a.keys) < 0)
        rc = 2;
    if (rc == 0 && (zmq_connect(s, a.endpoint) < 0 || zmq_send(s, w.data, w.size, 0) < 0)) {
        ctl_send_error(a.endpoint, (int)a.timeout);
        rc = 1;
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    ens_mpw_free(&w);
    return rc;
}
