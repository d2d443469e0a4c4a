/* cmd_send.c - ensemblectl send: one event, from the command line. */
#include <getopt.h>
#include <msgpack.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"

static const char usage[] =
    "usage: ensemblectl send --kind prediction|label --query Q [--task T]\n"
    "                        [--model M --label L | --label L] [--uint-query]\n"
    "                        [--ts SECONDS] [--cost C] [--ingest ENDPOINT]\n"
    "                        [--server-key FILE --client-key FILE]\n"
    "Sends one event to ensembled's ingest socket (default tcp://127.0.0.1:5557):\n"
    "a prediction (model M answered L; '?' for an abstention) or a label (the\n"
    "truth of query Q is L). --uint-query sends Q as an unsigned integer.\n";

typedef struct {
    const char *kind, *query, *task, *model, *label;
    int uint_query;
    double ts, cost;
} event_t;

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static int pack_event(const event_t *e, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int pred = strcmp(e->kind, "prediction") == 0;
    size_t n = 4 + (pred ? 1 : 0) + (e->ts >= 0) + (e->cost >= 0);
    msgpack_pack_map(&pk, n);
    pack_str(&pk, "kind");
    pack_str(&pk, e->kind);
    pack_str(&pk, "task");
    pack_str(&pk, e->task);
    pack_str(&pk, "query");
    if (e->uint_query) {
        size_t q;
        if (ctl_parse_size("--query", e->query, 0, SIZE_MAX, &q) < 0)
            return -1;
        msgpack_pack_uint64(&pk, q);
    } else {
        pack_str(&pk, e->query);
    }
    if (pred) {
        pack_str(&pk, "model");
        pack_str(&pk, e->model);
    }
    pack_str(&pk, "label");
    pack_str(&pk, e->label);
    if (e->ts >= 0) {
        pack_str(&pk, "ts");
        msgpack_pack_double(&pk, e->ts);
    }
    if (e->cost >= 0) {
        pack_str(&pk, "cost");
        msgpack_pack_double(&pk, e->cost);
    }
    return 0;
}

int ctl_send(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kind", required_argument, NULL, 'k'},   {"query", required_argument, NULL, 'q'},
        {"task", required_argument, NULL, 't'},   {"model", required_argument, NULL, 'm'},
        {"label", required_argument, NULL, 'l'},  {"uint-query", no_argument, NULL, 'u'},
        {"ts", required_argument, NULL, 's'},     {"cost", required_argument, NULL, 'c'},
        {"ingest", required_argument, NULL, 'i'}, CTL_CURVE_OPTIONS,
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    event_t e = {.task = "default", .ts = -1, .cost = -1};
    const char *endpoint = "tcp://127.0.0.1:5557";
    ctl_curve_keys_t keys = {NULL, NULL};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            e.kind = optarg;
            break;
        case 'q':
            e.query = optarg;
            break;
        case 't':
            e.task = optarg;
            break;
        case 'm':
            e.model = optarg;
            break;
        case 'l':
            e.label = optarg;
            break;
        case 'u':
            e.uint_query = 1;
            break;
        case 's':
            if (ctl_parse_double("--ts", optarg, 0, 1e12, &e.ts) < 0)
                return 2;
            break;
        case 'c':
            if (ctl_parse_double("--cost", optarg, 0, 1e12, &e.cost) < 0)
                return 2;
            break;
        case 'i':
            endpoint = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            if (ctl_curve_option(c, &keys))
                break;
            fputs(usage, stderr);
            return 2;
        }
    }
    int pred = e.kind && strcmp(e.kind, "prediction") == 0;
    if (!e.kind || (!pred && strcmp(e.kind, "label") != 0) || !e.query || !e.label ||
        (pred && !e.model) || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = pack_event(&e, &sb) < 0 ? 2 : 0;
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_PUSH);
    int linger = 5000, timeout = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof(timeout));
    if (rc == 0 && ctl_curve_client(s, &keys) < 0)
        rc = 2;
    if (rc == 0 && (zmq_connect(s, endpoint) < 0 || zmq_send(s, sb.data, sb.size, 0) < 0)) {
        ctl_error("%s: %s", endpoint, zmq_strerror(zmq_errno()));
        rc = 1;
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}
