/* cmd_watch.c - ensemblectl watch: a live view of published ensembles. */
#include <getopt.h>
#include <msgpack.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "ctl.h"

static const char usage[] =
    "usage: ensemblectl watch [--publish ENDPOINT] [--task T] [--count N]\n"
    "                         [--timeout MS] [--json] [--server-key F --client-key F]\n"
    "Subscribes to ensembled's publications (default tcp://127.0.0.1:5558) and\n"
    "prints each one: a line per ensemble, or the whole body as JSON. A new\n"
    "subscriber gets the latest ensemble of every task at once. --count stops\n"
    "after N publications, --timeout after MS milliseconds without one.\n";

static double num(const msgpack_object *o)
{
    if (!o)
        return -1;
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
        return o->via.f64;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (double)o->via.u64;
    return -1;
}

static void print_str(const msgpack_object *o)
{
    if (o && o->type == MSGPACK_OBJECT_STR)
        printf("%.*s", (int)o->via.str.size, o->via.str.ptr);
    else
        printf("?");
}

/* One line: time, task, version, models, accuracies, reason. */
static void print_line(const msgpack_object *b)
{
    time_t now = time(NULL);
    char when[16];
    strftime(when, sizeof(when), "%H:%M:%S", localtime(&now));
    printf("%s  ", when);
    print_str(ctl_map_get(b, "task"));
    printf(" v%.0f  ", num(ctl_map_get(b, "version")));
    const msgpack_object *models = ctl_map_get(b, "models");
    for (uint32_t i = 0;
         models && models->type == MSGPACK_OBJECT_ARRAY && i < models->via.array.size; i++) {
        printf("%s", i ? ", " : "");
        print_str(&models->via.array.ptr[i]);
    }
    const msgpack_object *acc = ctl_map_get(b, "accuracy");
    const msgpack_object *comb = ctl_map_get(b, "combiner");
    printf("  [");
    print_str(comb ? ctl_map_get(comb, "kind") : NULL);
    printf("] accuracy %.4f (vote %.4f, best single %.4f)  rows %.0f",
           num(acc ? ctl_map_get(acc, "combiner") : NULL),
           num(acc ? ctl_map_get(acc, "majority_vote") : NULL),
           num(acc ? ctl_map_get(acc, "best_single") : NULL), num(ctl_map_get(b, "window_rows")));
    const msgpack_object *bounds = ctl_map_get(b, "bounds");
    if (bounds)
        printf("  floor %.4f  fano %.4f", num(ctl_map_get(bounds, "copula_error_floor")),
               num(ctl_map_get(bounds, "fano_error_lower")));
    printf("  (");
    print_str(ctl_map_get(b, "reason"));
    printf(")\n");
}

int ctl_watch(int argc, char **argv)
{
    static const struct option opts[] = {
        {"publish", required_argument, NULL, 'p'}, {"task", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},   {"timeout", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},          CTL_CURVE_OPTIONS,
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *endpoint = "tcp://127.0.0.1:5558", *task = NULL;
    ctl_curve_keys_t keys = {NULL, NULL};
    size_t count = 0, timeout = 0;
    int json = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            endpoint = optarg;
            break;
        case 't':
            task = optarg;
            break;
        case 'n':
            if (ctl_parse_size("--count", optarg, 1, SIZE_MAX, &count) < 0)
                return 2;
            break;
        case 'T':
            if (ctl_parse_size("--timeout", optarg, 1, 86400000, &timeout) < 0)
                return 2;
            break;
        case 'j':
            json = 1;
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
    char topic[512];
    snprintf(topic, sizeof(topic), "ensemble.%s", task ? task : "");
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0, to = timeout ? (int)timeout : -1;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &to, sizeof(to));
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, topic, strlen(topic));
    int rc = 0;
    if (ctl_curve_client(s, &keys) < 0) {
        rc = 2;
    } else if (zmq_connect(s, endpoint) < 0) {
        ctl_error("%s: %s", endpoint, zmq_strerror(zmq_errno()));
        rc = 1;
    }
    for (size_t seen = 0; rc == 0 && (count == 0 || seen < count); seen++) {
        zmq_msg_t t, body;
        zmq_msg_init(&t);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&t, s, 0) < 0 || !zmq_msg_more(&t) || zmq_msg_recv(&body, s, 0) < 0) {
            if (zmq_errno() == EAGAIN)
                ctl_error("no publication within %zu ms", timeout);
            rc = 1;
        } else {
            msgpack_zone zone;
            msgpack_zone_init(&zone, 8192);
            msgpack_object o;
            if (ctl_unpack(zmq_msg_data(&body), zmq_msg_size(&body), &zone, &o) < 0) {
                ctl_error("malformed publication");
            } else if (json) {
                ctl_json_object(stdout, &o);
                fputc('\n', stdout);
            } else {
                print_line(&o);
            }
            fflush(stdout);
            msgpack_zone_destroy(&zone);
        }
        zmq_msg_close(&t);
        zmq_msg_close(&body);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}
