/* client.c - ensemblectl's control commands (status, ensemble, recompute)
 * and the MessagePack-to-JSON printer that they and watch share. */
#include <getopt.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "ensembled/ctlmsg.h"
#include "ensembled/protocol.h"

void ctl_json_object(FILE *f, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        fputs("null", f);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(o->via.boolean ? "true" : "false", f);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(f, "%llu", (unsigned long long)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        fprintf(f, "%lld", (long long)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (isfinite(o->via.f64))
            fprintf(f, "%.17g", o->via.f64);
        else
            fputs("null", f);
        break;
    case MSGPACK_OBJECT_STR: {
        char *s = strndup(o->via.str.ptr, o->via.str.size);
        ctl_json_string(f, s ? s : "");
        free(s);
        break;
    }
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                fputc(',', f);
            ctl_json_object(f, &o->via.array.ptr[i]);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', f);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                fputc(',', f);
            if (o->via.map.ptr[i].key.type == MSGPACK_OBJECT_STR)
                ctl_json_object(f, &o->via.map.ptr[i].key);
            else
                fputs("\"?\"", f);
            fputc(':', f);
            ctl_json_object(f, &o->via.map.ptr[i].val);
        }
        fputc('}', f);
        break;
    default:
        fputs("null", f);
    }
}

int ctl_unpack(const void *buf, size_t len, msgpack_zone *zone, msgpack_object *out)
{
    size_t off = 0;
    if (ens_proto_prewalk(buf, len, 16, NULL) < 0)
        return -1;
    return msgpack_unpack(buf, len, &off, zone, out) == MSGPACK_UNPACK_SUCCESS ? 0 : -1;
}

/* Prints the reply as JSON: the exit code, 0 when it says ok. */
static int print_reply(const char *endpoint, zmq_msg_t *reply)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object o;
    char err[512];
    int rc =
        ens_ctl_reply_check(zmq_msg_data(reply), zmq_msg_size(reply), &zone, &o, err, sizeof(err));
    if (rc < 0) {
        ctl_error("%s: %s", endpoint, err);
    } else {
        ctl_json_object(stdout, &o);
        fputc('\n', stdout);
    }
    msgpack_zone_destroy(&zone);
    return rc == 0 ? 0 : 1;
}

/* Sends one request to the control socket and prints the reply as JSON.
 * Returns the exit code: 0 when the reply says ok. */
static int request(const char *endpoint, ens_ctl_cmd_t cmd, const char *task, int timeout_ms,
                   const ctl_curve_keys_t *keys)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_ctl_request_encode(&w, cmd, task);
    int rc = 1;
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    if (ctl_curve_client(s, keys) < 0)
        rc = 2;
    else if (zmq_connect(s, endpoint) < 0 || zmq_send(s, w.data, w.size, 0) < 0)
        ctl_error("%s: %s", endpoint, zmq_strerror(zmq_errno()));
    else if (zmq_msg_recv(&reply, s, 0) < 0)
        ctl_error("%s: no reply within %d ms (is ensembled running?)", endpoint, timeout_ms);
    else
        rc = print_reply(endpoint, &reply);
    zmq_msg_close(&reply);
    ens_mpw_free(&w);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}

static const char control_usage[] =
    "usage: ensemblectl status|ensemble|recompute [--control ENDPOINT] [--task T]\n"
    "                   [--timeout MS] [--server-key FILE --client-key FILE]\n"
    "Sends the command to ensembled's control socket and prints the reply as JSON.\n"
    "Default endpoint: ipc:///run/ensembled/control.\n";

int ctl_control(int argc, char **argv)
{
    static const struct option opts[] = {
        {"control", required_argument, NULL, 'c'}, {"task", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 'T'}, CTL_CURVE_OPTIONS,
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *endpoint = "ipc:///run/ensembled/control", *task = NULL;
    ctl_curve_keys_t keys = {NULL, NULL};
    size_t timeout = 2000;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            endpoint = optarg;
            break;
        case 't':
            task = optarg;
            break;
        case 'T':
            if (ctl_parse_size("--timeout", optarg, 1, 3600000, &timeout) < 0)
                return 2;
            break;
        case 'h':
            fputs(control_usage, stdout);
            return 0;
        default:
            if (ctl_curve_option(c, &keys))
                break;
            fputs(control_usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fputs(control_usage, stderr);
        return 2;
    }
    ens_ctl_cmd_t cmd;
    if (ens_ctl_cmd_parse(argv[0], strlen(argv[0]), &cmd) < 0) {
        fputs(control_usage, stderr);
        return 2;
    }
    return request(endpoint, cmd, task, (int)timeout, &keys);
}
