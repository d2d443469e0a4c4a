/* cmd_health.c - ensemblectl health: a check in the monitoring-plugin
 * convention (Nagios, Icinga, Sensu): one line of text with performance
 * data, and the exit code 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. */
#include <getopt.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "ctl.h"
#include "ensembled/ctlmsg.h"

enum { H_OK, H_WARNING, H_CRITICAL, H_UNKNOWN };
static const char *const state_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

typedef struct {
    const char *endpoint, *task;
    ctl_curve_keys_t keys;
    size_t timeout_ms;
    double warn_age, crit_age; /* seconds since a task's last publication */
    double warn_rej, crit_rej; /* refused share of the messages taken in */
    double window;             /* seconds between two status reads (0: since start) */
} health_opts_t;

typedef struct {
    int state;
    char problems[2048]; /* "; "-separated, worst first is not kept: in order */
    size_t used;
    char perf[4096];
    size_t perf_used;
} verdict_t;

static void raise_state(verdict_t *v, int state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void raise_state(verdict_t *v, int state, const char *fmt, ...)
{
    if (state > v->state)
        v->state = state;
    if (v->used >= sizeof(v->problems))
        return;
    if (v->used)
        v->used += (size_t)snprintf(v->problems + v->used, sizeof(v->problems) - v->used, "; ");
    if (v->used >= sizeof(v->problems))
        return;
    va_list ap;
    va_start(ap, fmt);
    v->used += (size_t)vsnprintf(v->problems + v->used, sizeof(v->problems) - v->used, fmt, ap);
    va_end(ap);
}

/* One performance datum label=value[unit];warn;crit (label quoted). */
static void perf(verdict_t *v, const char *label, size_t len, double value, const char *unit,
                 double warn, double crit)
{
    char *p = v->perf + v->perf_used;
    size_t room = sizeof(v->perf) - v->perf_used;
    if (room < len * 2 + 64)
        return;
    size_t n = 0;
    p[n++] = ' ';
    p[n++] = '\'';
    for (size_t i = 0; i < len; i++) {
        if (label[i] == '\'')
            p[n++] = '\'';
        p[n++] = label[i] == '=' || label[i] == '\n' ? '_' : label[i];
    }
    n += (size_t)snprintf(p + n, room - n, "'=%.6g%s;%g;%g", value, unit, warn, crit);
    v->perf_used += n < room ? n : room - 1;
}

/* Reads the reply into zone: its strings point into the bytes unpacked, so
 * these are copied there first, to outlive the message. */
static int check_reply(zmq_msg_t *reply, msgpack_zone *zone, msgpack_object *out, char *err,
                       size_t errlen)
{
    size_t size = zmq_msg_size(reply);
    char *copy = msgpack_zone_malloc(zone, size ? size : 1);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(copy, zmq_msg_data(reply), size);
    return ens_ctl_reply_check(copy, size, zone, out, err, errlen);
}

/* One request; 0 ok (reply in *out, valid while zone lives), 1 the daemon
 * said no (its error in err), -1 unreachable or not a reply (err). */
static int ask(const health_opts_t *o, ens_ctl_cmd_t cmd, const char *task, msgpack_zone *zone,
               msgpack_object *out, char *err, size_t errlen)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_REQ);
    int linger = 0, timeout = (int)o->timeout_ms;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_ctl_request_encode(&w, cmd, task);
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    int rc = -1;
    if (ctl_curve_client(s, &o->keys) < 0)
        snprintf(err, errlen, "bad CURVE key options");
    else if (zmq_connect(s, o->endpoint) < 0 || zmq_send(s, w.data, w.size, 0) < 0)
        snprintf(err, errlen, "%s: %s", o->endpoint, zmq_strerror(zmq_errno()));
    else if (zmq_msg_recv(&reply, s, 0) < 0)
        snprintf(err, errlen, "%s: no reply within %zu ms", o->endpoint, o->timeout_ms);
    else
        rc = check_reply(&reply, zone, out, err, errlen);
    if (rc < -1)
        rc = -1;
    zmq_msg_close(&reply);
    ens_mpw_free(&w);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}

static const msgpack_object *find(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static double number(const msgpack_object *o)
{
    if (!o)
        return 0;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (double)o->via.u64;
    if (o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
        return o->via.f64;
    return 0;
}

/* Messages taken in, and those refused (rejected and dropped, every reason). */
static void counts(const msgpack_object *st, double *messages, double *refused)
{
    *messages = number(find(st, "messages_in"));
    *refused = 0;
    const char *maps[] = {"rejected", "dropped"};
    for (int m = 0; m < 2; m++) {
        const msgpack_object *r = find(st, maps[m]);
        for (uint32_t i = 0; r && r->type == MSGPACK_OBJECT_MAP && i < r->via.map.size; i++)
            *refused += number(&r->via.map.ptr[i].val);
    }
}

static void check_rejections(const health_opts_t *o, const msgpack_object *st,
                             const msgpack_object *before, verdict_t *v)
{
    double m1, r1, m0 = 0, r0 = 0;
    counts(st, &m1, &r1);
    if (before)
        counts(before, &m0, &r0);
    double messages = m1 - m0, refused = r1 - r0;
    double share = messages > 0 ? refused / messages : 0;
    int state = share > o->crit_rej ? H_CRITICAL : share > o->warn_rej ? H_WARNING : H_OK;
    if (state != H_OK)
        raise_state(v, state, "%.0f of %.0f messages refused (%.2f %%)", refused, messages,
                    share * 100);
    perf(v, "refused_share", 13, share, "", o->warn_rej, o->crit_rej);
}

/* The age of task[0..len)'s last publication. */
static void check_task(const health_opts_t *o, const char *task, size_t len, verdict_t *v)
{
    char name[512], err[512];
    snprintf(name, sizeof(name), "%.*s", (int)len, task);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    msgpack_object reply;
    int rc = ask(o, ENS_CTL_ENSEMBLE, name, &zone, &reply, err, sizeof(err));
    const msgpack_object *ts = rc == 0 ? find(find(&reply, "ensemble"), "ts") : NULL;
    if (rc < 0) {
        raise_state(v, H_CRITICAL, "task %s: %s", name, err);
    } else if (rc == 1 || !ts) {
        raise_state(v, H_WARNING, "task %s: nothing published yet", name);
    } else {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        double age = (double)now.tv_sec + (double)now.tv_nsec * 1e-9 - number(ts);
        int state = age > o->crit_age ? H_CRITICAL : age > o->warn_age ? H_WARNING : H_OK;
        if (state != H_OK)
            raise_state(v, state, "task %s: last publication %.0f s ago", name, age);
        char label[520];
        snprintf(label, sizeof(label), "age_%s", name);
        perf(v, label, strlen(label), age, "s", o->warn_age, o->crit_age);
    }
    msgpack_zone_destroy(&zone);
}

static void check_tasks(const health_opts_t *o, const msgpack_object *st, verdict_t *v,
                        size_t *ntasks)
{
    const msgpack_object *tasks = find(st, "tasks");
    *ntasks = 0;
    if (o->task) {
        if (!find(tasks, o->task))
            raise_state(v, H_CRITICAL, "task %s: unknown to the daemon", o->task);
        else
            check_task(o, o->task, strlen(o->task), v);
        *ntasks = 1;
        return;
    }
    for (uint32_t i = 0; tasks && tasks->type == MSGPACK_OBJECT_MAP && i < tasks->via.map.size;
         i++) {
        const msgpack_object *k = &tasks->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR) {
            check_task(o, k->via.str.ptr, k->via.str.size, v);
            (*ntasks)++;
        }
    }
}

static int run_checks(const health_opts_t *o)
{
    verdict_t *v = calloc(1, sizeof(*v));
    msgpack_zone z0, z1;
    msgpack_zone_init(&z0, 8192);
    msgpack_zone_init(&z1, 8192);
    msgpack_object st0, st1;
    char err[512];
    const msgpack_object *before = NULL;
    int rc = v ? ask(o, ENS_CTL_STATUS, NULL, &z0, &st0, err, sizeof(err)) : -1;
    if (rc == 0 && o->window > 0) {
        struct timespec d = {(time_t)o->window,
                             (long)((o->window - (double)(time_t)o->window) * 1e9)};
        nanosleep(&d, NULL);
        before = &st0;
        rc = ask(o, ENS_CTL_STATUS, NULL, &z1, &st1, err, sizeof(err));
    }
    int state = H_CRITICAL;
    if (!v) {
        printf("ENSEMBLED UNKNOWN - out of memory\n");
        state = H_UNKNOWN;
    } else if (rc != 0) {
        printf("ENSEMBLED CRITICAL - status: %s\n", err);
    } else {
        const msgpack_object *st = before ? &st1 : &st0;
        size_t ntasks;
        check_rejections(o, st, before, v);
        check_tasks(o, st, v, &ntasks);
        state = v->state;
        if (state == H_OK)
            printf("ENSEMBLED OK - %zu task%s published within %g s, refused share at most %g",
                   ntasks, ntasks == 1 ? "" : "s", o->warn_age, o->warn_rej);
        else
            printf("ENSEMBLED %s - %s", state_names[state], v->problems);
        printf(" |%s\n", v->perf);
    }
    msgpack_zone_destroy(&z0);
    msgpack_zone_destroy(&z1);
    free(v);
    return state;
}

static const char health_usage[] =
    "usage: ensemblectl health [--control ENDPOINT] [--task T] [--timeout MS]\n"
    "                          [--warn-age S] [--crit-age S] [--warn-refused F]\n"
    "                          [--crit-refused F] [--window S]\n"
    "                          [--server-key FILE --client-key FILE]\n"
    "A monitoring-plugin check of ensembled: prints one line with performance\n"
    "data and exits 0 OK, 1 WARNING, 2 CRITICAL (daemon unreachable, or a\n"
    "threshold crossed), 3 UNKNOWN (bad options).\n"
    "  --warn-age, --crit-age   seconds since a task's last publication\n"
    "                           (default 60, 300); a task never published: WARNING\n"
    "  --warn-refused, --crit-refused  share of the messages taken in that were\n"
    "                           refused, rejected or dropped (default 0.01, 0.1)\n"
    "  --window S               measure that share over S seconds between two\n"
    "                           status reads (default 0: since the daemon started)\n"
    "  --task T                 check only task T (CRITICAL if the daemon has none)\n"
    "Default endpoint: ipc:///run/ensembled/control; timeout 2000 ms per request.\n";

int ctl_health(int argc, char **argv)
{
    static const struct option opts[] = {{"control", required_argument, NULL, 'c'},
                                         {"task", required_argument, NULL, 't'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"warn-age", required_argument, NULL, 'a'},
                                         {"crit-age", required_argument, NULL, 'A'},
                                         {"warn-refused", required_argument, NULL, 'r'},
                                         {"crit-refused", required_argument, NULL, 'R'},
                                         {"window", required_argument, NULL, 'w'},
                                         CTL_CURVE_OPTIONS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    health_opts_t o = {
        "ipc:///run/ensembled/control", NULL, {NULL, NULL}, 2000, 60, 300, 0.01, 0.1, 0};
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1 && !bad) {
        switch (c) {
        case 'c':
            o.endpoint = optarg;
            break;
        case 't':
            o.task = optarg;
            break;
        case 'T':
            bad = ctl_parse_size("--timeout", optarg, 1, 3600000, &o.timeout_ms) < 0;
            break;
        case 'a':
            bad = ctl_parse_double("--warn-age", optarg, 0, 1e9, &o.warn_age) < 0;
            break;
        case 'A':
            bad = ctl_parse_double("--crit-age", optarg, 0, 1e9, &o.crit_age) < 0;
            break;
        case 'r':
            bad = ctl_parse_double("--warn-refused", optarg, 0, 1, &o.warn_rej) < 0;
            break;
        case 'R':
            bad = ctl_parse_double("--crit-refused", optarg, 0, 1, &o.crit_rej) < 0;
            break;
        case 'w':
            bad = ctl_parse_double("--window", optarg, 0, 3600, &o.window) < 0;
            break;
        case 'h':
            fputs(health_usage, stdout);
            return 0;
        default:
            if (!ctl_curve_option(c, &o.keys))
                bad = 1;
        }
    }
    if (bad || optind != argc) {
        fputs(health_usage, stderr);
        return H_UNKNOWN;
    }
    return run_checks(&o);
}
