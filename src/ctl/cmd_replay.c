/* cmd_replay.c - ensemblectl replay: stream a wide CSV into ensembled as
 * prediction and label events, labels delayed behind their predictions. */
#include <getopt.h>
#include <msgpack.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "ctl.h"

static const char usage[] =
    "usage: ensemblectl replay --csv FILE [--ingest ENDPOINT] [--task T]\n"
    "                          [--rate EVENTS_PER_S] [--label-lag ROWS] [--batch N]\n"
    "                          [--server-key FILE --client-key FILE]\n"
    "Sends, for each row, one prediction event holding every model's answer\n"
    "(a 'predictions' map; empty cells are left out, '?' is sent as '?'), and\n"
    "the row's label event after the predictions of ROWS more rows (default\n"
    "100; 0 sends it right after). --rate paces events (default: as fast as\n"
    "the daemon takes them); --batch N packs N events per message. Queries are\n"
    "row-<n>, n the row's number in the file. Default endpoint\n"
    "tcp://127.0.0.1:5557, task default.\n";

typedef struct {
    void *sock;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t batch;   /* events per message */
    size_t pending; /* events packed, not sent */
    size_t sent;    /* events sent */
    double rate;    /* events per second, 0: unpaced */
    struct timespec t0;
    const char *task;
} out_t;

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Sends the packed events as one message (an array when batching). */
static int flush(out_t *o)
{
    if (o->pending == 0)
        return 0;
    msgpack_sbuffer msg;
    msgpack_sbuffer_init(&msg);
    if (o->batch > 1) {
        msgpack_packer hp;
        msgpack_packer_init(&hp, &msg, msgpack_sbuffer_write);
        msgpack_pack_array(&hp, o->pending);
    }
    msgpack_sbuffer_write(&msg, o->sb.data, o->sb.size);
    int rc = zmq_send(o->sock, msg.data, msg.size, 0) < 0 ? -1 : 0;
    msgpack_sbuffer_destroy(&msg);
    msgpack_sbuffer_clear(&o->sb);
    o->sent += o->pending;
    o->pending = 0;
    if (o->rate > 0) {
        /* Sleep until sent / rate seconds have passed since the start. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double due = (double)o->sent / o->rate, el = (double)(now.tv_sec - o->t0.tv_sec) +
                                                     1e-9 * (double)(now.tv_nsec - o->t0.tv_nsec);
        if (due > el) {
            struct timespec ts = {(time_t)(due - el),
                                  (long)((due - el - (double)(time_t)(due - el)) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    return rc;
}

static int event_done(out_t *o)
{
    return ++o->pending >= o->batch ? flush(o) : 0;
}

static void pack_head(out_t *o, const char *kind, const char *query, size_t nfields)
{
    msgpack_pack_map(&o->pk, nfields);
    pack_str(&o->pk, "kind");
    pack_str(&o->pk, kind);
    pack_str(&o->pk, "task");
    pack_str(&o->pk, o->task);
    pack_str(&o->pk, "query");
    pack_str(&o->pk, query);
}

static int send_prediction(out_t *o, const ens_data_t *d, size_t r, const char *query)
{
    size_t n = 0;
    for (size_t j = 0; j < d->nmodels; j++)
        n += ens_data_col(d, j)[r] != ENS_SYM_MISSING;
    if (n == 0)
        return 0;
    pack_head(o, "prediction", query, 4);
    pack_str(&o->pk, "predictions");
    msgpack_pack_map(&o->pk, n);
    for (size_t j = 0; j < d->nmodels; j++) {
        uint8_t x = ens_data_col(d, j)[r];
        if (x == ENS_SYM_MISSING)
            continue;
        pack_str(&o->pk, d->model_names[j]);
        pack_str(&o->pk, x == ENS_SYM_ABSTAIN ? "?" : d->label_names[x]);
    }
    return event_done(o);
}

static int send_label(out_t *o, const ens_data_t *d, size_t r, const char *query)
{
    pack_head(o, "label", query, 4);
    pack_str(&o->pk, "label");
    pack_str(&o->pk, d->label_names[d->y[r]]);
    return event_done(o);
}

/* The item column is not kept by the CSV loader: queries are row numbers
 * prefixed by the file's row index, unique per replay. */
static void query_of(size_t r, char *buf, size_t len)
{
    snprintf(buf, len, "row-%zu", r + 1);
}

int ctl_replay(int argc, char **argv)
{
    static const struct option opts[] = {{"csv", required_argument, NULL, 'c'},
                                         {"ingest", required_argument, NULL, 'i'},
                                         {"task", required_argument, NULL, 't'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"label-lag", required_argument, NULL, 'l'},
                                         {"batch", required_argument, NULL, 'b'},
                                         CTL_CURVE_OPTIONS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *csv = NULL, *endpoint = "tcp://127.0.0.1:5557";
    ctl_curve_keys_t keys = {NULL, NULL};
    out_t o = {.batch = 1, .task = "default"};
    size_t lag = 100;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            csv = optarg;
            break;
        case 'i':
            endpoint = optarg;
            break;
        case 't':
            o.task = optarg;
            break;
        case 'r':
            if (ctl_parse_double("--rate", optarg, 0, 1e9, &o.rate) < 0)
                return 2;
            break;
        case 'l':
            if (ctl_parse_size("--label-lag", optarg, 0, 100000000, &lag) < 0)
                return 2;
            break;
        case 'b':
            if (ctl_parse_size("--batch", optarg, 1, 10000, &o.batch) < 0)
                return 2;
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
    if (!csv || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    ens_data_t *d = ctl_load_csv(csv);
    if (!d)
        return 1;
    void *ctx = zmq_ctx_new();
    o.sock = zmq_socket(ctx, ZMQ_PUSH);
    msgpack_sbuffer_init(&o.sb);
    msgpack_packer_init(&o.pk, &o.sb, msgpack_sbuffer_write);
    clock_gettime(CLOCK_MONOTONIC, &o.t0);
    int rc = ctl_curve_client(o.sock, &keys) < 0 ? -2 : 0;
    if (rc == 0)
        rc = zmq_connect(o.sock, endpoint);
    char q[64];
    for (size_t r = 0; rc == 0 && r < d->nrows + lag; r++) {
        if (r < d->nrows) {
            query_of(r, q, sizeof(q));
            rc = send_prediction(&o, d, r, q);
        }
        if (rc == 0 && r >= lag && r - lag < d->nrows) {
            query_of(r - lag, q, sizeof(q));
            rc = send_label(&o, d, r - lag, q);
        }
    }
    if (rc == 0)
        rc = flush(&o);
    if (rc == -1)
        ctl_error("%s: %s", endpoint, zmq_strerror(zmq_errno()));
    else
        fprintf(stderr, "ensemblectl: replayed %zu rows (%zu events) to %s\n", d->nrows, o.sent,
                endpoint);
    msgpack_sbuffer_destroy(&o.sb);
    /* Default linger: closing waits until every queued message is out. */
    zmq_close(o.sock);
    zmq_ctx_term(ctx);
    ens_data_destroy(&d);
    return rc < 0 ? 1 : 0;
}
