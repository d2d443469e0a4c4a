/* client.c - ensemblectl's control commands (status, ensemble, recompute)
 * and the MessagePack unpacking that they and watch share. */
#include <getopt.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "ensembled/ctlmsg.h"
#include "ensembled/protocol.h"

int ctl_unpack(const void *buf, size_t len, msgpack_zone *zone, msgpack_object *out)
{
    size_t off = 0;
    if (ens_proto_prewalk(buf, len, 16, NULL) < 0)
        return -1;
    return msgpack_unpack(buf, len, &off, zone, out) == MSGPACK_UNPACK_SUCCESS ? 0 : -1;
}

typedef struct {
    const char *endpoint, *task;
    ctl_curve_keys_t keys;
    size_t timeout;
    int json;
    ens_ctl_cmd_t cmd;
} control_args_t;

/* Prints the reply: status as a table (or, with --json, as JSON), the other
 * commands as JSON. Returns the exit code, 0 when it says ok. */
static int print_reply(const control_args_t *a, zmq_msg_t *reply)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object o;
    char err[512];
    int rc =
        ens_ctl_reply_check(zmq_msg_data(reply), zmq_msg_size(reply), &zone, &o, err, sizeof(err));
    if (rc < 0) {
        ctl_error("%s: %s", a->endpoint, err);
    } else if (a->cmd != ENS_CTL_STATUS) {
        ctl_json_print_msgpack(&o);
    } else {
        json_t *st = ctl_json_from_msgpack(&o);
        if (a->task && ctl_status_only_task(st, a->task) < 0) {
            ctl_error("task %s: unknown to the daemon", a->task);
            rc = 1;
        } else if (a->json) {
            ctl_json_print(json_incref(st));
        } else {
            ctl_status_print_human(st);
        }
        json_decref(st);
    }
    msgpack_zone_destroy(&zone);
    return rc == 0 ? 0 : 1;
}

/* Sends one request to the control socket and prints the reply. Returns the
 * exit code: 0 when the reply says ok. */
static int request(const control_args_t *a)
{
    int timeout_ms = (int)a->timeout;
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    ens_mpw_t w;
    ens_mpw_init(&w);
    /* status filters its tasks here: the daemon's reply holds them all. */
    ens_ctl_request_encode(&w, a->cmd, a->cmd == ENS_CTL_STATUS ? NULL : a->task);
    int rc = 1;
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    if (ctl_curve_client(s, &a->keys) < 0)
        rc = 2;
    else if (zmq_connect(s, a->endpoint) < 0 || zmq_send(s, w.data, w.size, 0) < 0)
        ctl_error("%s: %s", a->endpoint, zmq_strerror(zmq_errno()));
    else if (zmq_msg_recv(&reply, s, 0) < 0)
        ctl_error("%s: no reply within %d ms (is ensembled running?)", a->endpoint, timeout_ms);
    else
        rc = print_reply(a, &reply);
    zmq_msg_close(&reply);
    ens_mpw_free(&w);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}

static const char control_usage[] =
    "usage: ensemblectl status|ensemble|recompute [--control ENDPOINT] [--task T]\n"
    "                   [--timeout MS] [--json] [--server-key FILE --client-key FILE]\n"
    "Sends the command to ensembled's control socket (default\n"
    "ipc:///run/ensembled/control) and prints the reply. status: a summary line\n"
    "and a table of the tasks (rows in the window and its capacity, predictions\n"
    "waiting for their label, models seen, published version, age of the last\n"
    "selection, published ensemble); --task T shows only T; --json prints the\n"
    "whole reply as JSON. ensemble (the latest body of task T, default\n"
    "\"default\") and recompute (task T, or every task) print the reply as JSON.\n"
    "Exits 1 when no reply comes within --timeout MS (default 2000) or the\n"
    "daemon refuses the command.\n";

int ctl_control(int argc, char **argv)
{
    static const struct option opts[] = {{"control", required_argument, NULL, 'c'},
                                         {"task", required_argument, NULL, 't'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"json", no_argument, NULL, 'j'},
                                         CTL_CURVE_OPTIONS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    control_args_t a = {.endpoint = "ipc:///run/ensembled/control", .timeout = 2000};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a.endpoint = optarg;
            break;
        case 't':
            a.task = optarg;
            break;
        case 'T':
            if (ctl_parse_size("--timeout", optarg, 1, 3600000, &a.timeout) < 0)
                return 2;
            break;
        case 'j':
            a.json = 1;
            break;
        case 'h':
            fputs(control_usage, stdout);
            return 0;
        default:
            if (ctl_curve_option(c, &a.keys))
                break;
            fputs(control_usage, stderr);
            return 2;
        }
    }
    if (optind != argc || ens_ctl_cmd_parse(argv[0], strlen(argv[0]), &a.cmd) < 0) {
        fputs(control_usage, stderr);
        return 2;
    }
    return request(&a);
}
