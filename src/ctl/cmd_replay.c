/* cmd_replay.c - ensemblectl replay: stream a wide CSV into ensembled as
 * prediction and label events, labels delayed behind their predictions. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "ctl.h"
#include "ensembled/protocol.h"
#include "ensembled/xalloc.h"

static const char usage[] =
    "usage: ensemblectl replay --csv FILE [--ingest ENDPOINT] [--task T]\n"
    "                          [--rate EVENTS_PER_S] [--label-lag ROWS] [--batch N]\n"
    "                          [--timeout MS] [--server-key FILE --client-key FILE]\n"
    "                          [--answers choice|open] [--normalize exact|fold|numeric]\n"
    "                          [--nats URL[,URL...] [--subject S]\n"
    "                           [--nats-tls-ca FILE] [--nats-creds FILE]]\n"
    "Sends, for each row, one prediction event holding every model's answer\n"
    "(a 'predictions' map, or model and label when one model answered; empty\n"
    "cells are left out, '?' is sent as '?'), and the row's label event after\n"
    "the predictions of ROWS more rows (default 100; 0 sends it right after).\n"
    "--rate paces events (default: as fast as the daemon takes them); --batch N\n"
    "packs N events per message. Queries are row-<n>, n the row's number in the\n"
    "file. Default endpoint tcp://127.0.0.1:5557, task default. Exits 1 when no\n"
    "daemon takes a message within --timeout MS (default 5000). With --answers\n"
    "open, each answer is sent as its row's agreement class (c0, c1, ..., the truth\n"
    "none when no model gave it): what an open-answer task keeps of the answers,\n"
    "whatever their number.\n"
    "--nats publishes the messages to a NATS JetStream stream instead, on\n"
    "subject S (default events.<task>), each one stored by the stream before\n"
    "the next is sent (a retried publish is stored once); exits 1 when the\n"
    "stream stores none for 30 s. --nats-tls-ca checks the servers' TLS\n"
    "certificates against FILE; --nats-creds logs in with a NATS credentials\n"
    "file; a user and password may also be given in the URL\n"
    "(tls://user:password@host:4222).\n" CTL_ANSWER_USAGE;

typedef struct {
    void *sock;
    ctl_nats_t *nats; /* --nats: publish here instead of sock */
    ens_mpw_t w;      /* the message being built */
    ens_pred_t *pred; /* one per model of the file */
    size_t batch;     /* events per message */
    size_t pending;   /* events written, not sent */
    size_t sent;      /* events sent */
    double rate;      /* events per second, 0: unpaced */
    struct timespec t0;
    const char *task;
} out_t;

/* Sleeps until sent / rate seconds have passed since the start. */
static void pace(const out_t *o)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double due = (double)o->sent / o->rate,
           el = (double)(now.tv_sec - o->t0.tv_sec) + 1e-9 * (double)(now.tv_nsec - o->t0.tv_nsec);
    if (due > el) {
        struct timespec ts = {(time_t)(due - el),
                              (long)((due - el - (double)(time_t)(due - el)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* Sends the events written as one message (an array when batching). */
static int flush(out_t *o)
{
    if (o->pending == 0)
        return 0;
    if (o->batch > 1)
        ens_mpw_array_end(&o->w);
    int rc = o->nats ? (ctl_nats_send(o->nats, o->w.data, o->w.size) < 0 ? -2 : 0)
                     : (zmq_send(o->sock, o->w.data, o->w.size, 0) < 0 ? -1 : 0);
    ens_mpw_reset(&o->w);
    o->sent += o->pending;
    o->pending = 0;
    if (o->rate > 0)
        pace(o);
    return rc;
}

/* Writes one event into the message, and sends the message when it holds
 * batch events. */
static int put_event(out_t *o, const ens_event_t *e)
{
    if (o->pending == 0 && o->batch > 1)
        ens_mpw_array_begin(&o->w);
    ens_event_encode(&o->w, e);
    return ++o->pending >= o->batch ? flush(o) : 0;
}

static ens_str_t str_of(const char *s)
{
    ens_str_t r = {s, strlen(s)};
    return r;
}

static int send_prediction(out_t *o, const ens_data_t *d, size_t r, const char *query)
{
    ens_event_t e = {.kind = ENS_EVENT_PREDICTION,
                     .task = str_of(o->task),
                     .query_str = str_of(query),
                     .preds = o->pred,
                     .ts = -1,
                     .cost = -1};
    for (size_t j = 0; j < d->nmodels; j++) {
        uint8_t x = ens_data_col(d, j)[r];
        if (x == ENS_SYM_MISSING)
            continue;
        o->pred[e.npreds].model = str_of(d->model_names[j]);
        o->pred[e.npreds++].label = str_of(x == ENS_SYM_ABSTAIN ? "?" : d->label_names[x]);
    }
    return e.npreds ? put_event(o, &e) : 0;
}

static int send_label(out_t *o, const ens_data_t *d, size_t r, const char *query)
{
    ens_event_t e = {.kind = ENS_EVENT_LABEL,
                     .task = str_of(o->task),
                     .query_str = str_of(query),
                     .label = str_of(d->label_names[d->y[r]]),
                     .ts = -1,
                     .cost = -1};
    return put_event(o, &e);
}

/* The item column is not kept by the CSV loader: queries are row numbers
 * prefixed by the file's row index, unique per replay. */
static void query_of(size_t r, char *buf, size_t len)
{
    snprintf(buf, len, "row-%zu", r + 1);
}

typedef struct {
    const char *csv, *endpoint;
    const char *nats, *subject; /* --nats, --subject */
    const char *tls_ca, *creds; /* --nats-tls-ca, --nats-creds */
    ctl_curve_keys_t keys;
    size_t lag, timeout;
} args_t;

/* Parses argv into a and o: 0, 1 when --help was printed, or 2 (usage or
 * an error printed). */
static int parse_args(int argc, char **argv, args_t *a, out_t *o)
{
    static const struct option opts[] = {{"csv", required_argument, NULL, 'c'},
                                         {"ingest", required_argument, NULL, 'i'},
                                         {"task", required_argument, NULL, 't'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"label-lag", required_argument, NULL, 'l'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"nats", required_argument, NULL, 'n'},
                                         {"subject", required_argument, NULL, 's'},
                                         {"nats-tls-ca", required_argument, NULL, 'A'},
                                         {"nats-creds", required_argument, NULL, 'C'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         CTL_CURVE_OPTIONS,
                                         CTL_ANSWER_OPTIONS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c, rc = 0, k;
    while (rc == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            a->csv = optarg;
        else if (c == 'i')
            a->endpoint = optarg;
        else if (c == 't')
            o->task = optarg;
        else if (c == 'r')
            rc = ctl_parse_double("--rate", optarg, 0, 1e9, &o->rate) < 0 ? 2 : 0;
        else if (c == 'l')
            rc = ctl_parse_size("--label-lag", optarg, 0, 100000000, &a->lag) < 0 ? 2 : 0;
        else if (c == 'b')
            rc = ctl_parse_size("--batch", optarg, 1, 10000, &o->batch) < 0 ? 2 : 0;
        else if (c == 'n')
            a->nats = optarg;
        else if (c == 's')
            a->subject = optarg;
        else if (c == 'A')
            a->tls_ca = optarg;
        else if (c == 'C')
            a->creds = optarg;
        else if (c == 'T')
            rc = ctl_parse_size("--timeout", optarg, 1, 3600000, &a->timeout) < 0 ? 2 : 0;
        else if (c == 'h')
            rc = 1;
        else if ((k = ctl_answer_option(c)) != 0)
            rc = k < 0 ? 2 : 0;
        else if (!ctl_curve_option(c, &a->keys))
            rc = 3;
    }
    if (rc == 0 &&
        (!a->csv || optind != argc || ((a->subject || a->tls_ca || a->creds) && !a->nats)))
        rc = 3;
    /* 3: the usage on stderr. */
    if (rc == 1 || rc == 3)
        fputs(usage, rc == 1 ? stdout : stderr);
    return rc == 3 ? 2 : rc;
}

/* Every row's prediction, and its label lag rows later: 0, -1 on a
 * socket error, -2 when the stream refused a message (printed). */
static int replay_rows(out_t *o, const ens_data_t *d, size_t lag)
{
    char q[64];
    int rc = 0;
    for (size_t r = 0; rc == 0 && r < d->nrows + lag; r++) {
        if (r < d->nrows) {
            query_of(r, q, sizeof(q));
            rc = send_prediction(o, d, r, q);
        }
        if (rc == 0 && r >= lag && r - lag < d->nrows) {
            query_of(r - lag, q, sizeof(q));
            rc = send_label(o, d, r - lag, q);
        }
    }
    return rc == 0 ? flush(o) : rc;
}

static int replay_zmq(const args_t *a, out_t *o, const ens_data_t *d)
{
    void *ctx = zmq_ctx_new();
    o->sock = zmq_socket(ctx, ZMQ_PUSH);
    ctl_push_fail_fast(o->sock, (int)a->timeout);
    int rc = ctl_curve_client(o->sock, &a->keys) < 0 ? -2 : 0;
    if (rc == 0)
        rc = zmq_connect(o->sock, a->endpoint);
    if (rc == 0)
        rc = replay_rows(o, d, a->lag);
    if (rc == -1)
        ctl_send_error(a->endpoint, (int)a->timeout);
    else if (rc == 0)
        fprintf(stderr, "ensemblectl: replayed %zu rows (%zu events) to %s\n", d->nrows, o->sent,
                a->endpoint);
    /* Closing waits (at most --timeout) until every queued message is out. */
    zmq_close(o->sock);
    zmq_ctx_term(ctx);
    return rc;
}

static int replay_nats(const args_t *a, out_t *o, const ens_data_t *d)
{
    char subject[512];
    if (a->subject)
        snprintf(subject, sizeof(subject), "%s", a->subject);
    else
        snprintf(subject, sizeof(subject), "events.%s", o->task);
    o->nats = ctl_nats_open(a->nats, subject, a->tls_ca, a->creds);
    if (!o->nats)
        return -2;
    int rc = replay_rows(o, d, a->lag);
    if (rc == 0)
        fprintf(stderr, "ensemblectl: replayed %zu rows (%zu events) to %s on %s\n", d->nrows,
                o->sent, subject, a->nats);
    ctl_nats_close(&o->nats);
    return rc;
}

int ctl_replay(int argc, char **argv)
{
    args_t a = {.endpoint = "tcp://127.0.0.1:5557", .lag = 100, .timeout = 5000};
    out_t o = {.batch = 1, .task = "default"};
    int rc = parse_args(argc, argv, &a, &o);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    ens_data_t *d = ctl_load_csv(a.csv);
    if (!d)
        return 1;
    ens_mpw_init(&o.w);
    o.pred = ens_xcalloc(d->nmodels + 1, sizeof(ens_pred_t));
    clock_gettime(CLOCK_MONOTONIC, &o.t0);
    rc = a.nats ? replay_nats(&a, &o, d) : replay_zmq(&a, &o, d);
    ens_mpw_free(&o.w);
    free(o.pred);
    ens_data_destroy(&d);
    return rc < 0 ? 1 : 0;
}
