/* daemon.c - start, run, reload and stop (see daemon.h).
 *
 * Start order: config, loop, ZeroMQ context, ingest, publish, control,
 * timers, signals, then READY=1 once every socket is bound. Stop runs in
 * reverse: STOPPING=1, sockets closed (their poll handles first), timers and
 * signals closed, the loop run until queued selections return, tasks freed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "daemon.h"
#include "security.h"
#include "state.h"

static const char *const drop_names[] = {
#define ENS__DROP_NAME(id, name) name,
    ENS_DROP_MAP(ENS__DROP_NAME)
#undef ENS__DROP_NAME
};

const char *ens_drop_name(ens_drop_t r)
{
    return (size_t)r < ENS_DROP_COUNT ? drop_names[r] : "?";
}

double ens_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void on_ingest(void *ud, ens_zsock_t *z, zmq_msg_t *frames, size_t n)
{
    (void)z;
    /* SUB publishers may send a topic frame first: the body is the last. */
    ens_ingest_message(ud, zmq_msg_data(&frames[n - 1]), zmq_msg_size(&frames[n - 1]));
}

static void *ingest_socket(ens_daemon_t *d, int type)
{
    void *s = zmq_socket(d->zctx, type);
    if (type != ZMQ_SUB)
        ens_security_apply(d, s);
    int64_t max = (int64_t)d->conf.max_message_bytes;
    /* libzmq drops oversized messages before they are read (and counts them
     * nowhere); the decoder's own cap below counts what gets through. */
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max));
    if (type == ZMQ_SUB)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    return s;
}

static int open_ingest(ens_daemon_t *d, char *err, size_t errlen)
{
    void *s = ingest_socket(d, ZMQ_PULL);
    if (zmq_bind(s, d->conf.ingest_bind) < 0) {
        snprintf(err, errlen, "ingest.bind %s: %s", d->conf.ingest_bind, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return -1;
    }
    /* Fairness: at most 1024 messages per wake-up, then the loop serves the
     * control and publish sockets and timers before coming back. */
    d->ingest = ens_zsock_new(d->loop, s, on_ingest, d, 1024);
    for (size_t i = 0; i < d->conf.ingest_nconnect; i++) {
        void *sub = ingest_socket(d, ZMQ_SUB);
        if (zmq_connect(sub, d->conf.ingest_connect[i]) < 0) {
            snprintf(err, errlen, "ingest.connect %s: %s", d->conf.ingest_connect[i],
                     zmq_strerror(zmq_errno()));
            zmq_close(sub);
            return -1;
        }
        d->subs[i] = ens_zsock_new(d->loop, sub, on_ingest, d, 1024);
    }
    return 0;
}

static void on_tick(uv_timer_t *h)
{
    ens_daemon_t *d = h->data;
    double now = ens_now();
    for (ens_task_t *t = d->tasks; t; t = t->hh.next)
        ens_task_tick(t, now);
    ens_state_tick(d, now);
    double every = d->conf.publish_interval;
    if (every > 0 && now - d->last_publish_round >= every) {
        d->last_publish_round = now;
        for (ens_task_t *t = d->tasks; t; t = t->hh.next)
            ens_recompute_start(t);
    }
}

static void on_watchdog(uv_timer_t *h)
{
    (void)h;
    sd_notify(0, "WATCHDOG=1");
}

static void reload(ens_daemon_t *d)
{
    ens_config_t *next = malloc(sizeof(*next));
    char err[1024], fixed[1024];
    if (!next)
        return;
    sd_notify(0, "RELOADING=1");
    if (ens_config_load(d->conf_path, next, err, sizeof(err)) < 0) {
        ENS_LOG(ERR, "reload: %s; keeping the running configuration", err);
    } else {
        if (ens_config_restart_needed(&d->conf, next, fixed, sizeof(fixed)) > 0)
            ENS_LOG(WARNING, "reload: %s changed; these take effect only after a restart", fixed);
        ens_config_keep_fixed(next, &d->conf);
        d->conf = *next;
        ens_log_set_level(d->conf.log_level);
        ens_security_reload(d);
        for (ens_task_t *t = d->tasks; t; t = t->hh.next) {
            ens_task_apply_conf(t);
            ens_recompute_start(t);
        }
        ENS_LOG(NOTICE, "reload: configuration from %s applied", d->conf_path);
    }
    free(next);
    sd_notify(0, "READY=1");
}

static void on_close_handle(uv_handle_t *h)
{
    (void)h;
}

static void stop(ens_daemon_t *d)
{
    if (d->stopping)
        return;
    d->stopping = 1;
    sd_notify(0, "STOPPING=1");
    ens_state_stop(d);
    ENS_LOG(NOTICE, "stopping");
    ens_zsock_close(d->ctl);
    ens_zsock_close(d->pub);
    for (size_t i = 0; i < ENS_CONF_MAX_CONNECT; i++)
        ens_zsock_close(d->subs[i]);
    ens_zsock_close(d->ingest);
    ens_security_close(d);
    d->ctl = d->pub = d->ingest = NULL;
    memset(d->subs, 0, sizeof(d->subs));
    /* A start that failed half-way never initialised these. */
    if (!d->handles_ready)
        return;
    uv_close((uv_handle_t *)&d->tick, on_close_handle);
    uv_close((uv_handle_t *)&d->watchdog, on_close_handle);
    uv_close((uv_handle_t *)&d->sighup, on_close_handle);
    uv_close((uv_handle_t *)&d->sigterm, on_close_handle);
    uv_close((uv_handle_t *)&d->sigint, on_close_handle);
}

static void on_signal(uv_signal_t *h, int signum)
{
    ens_daemon_t *d = h->data;
    if (signum == SIGHUP)
        reload(d);
    else
        stop(d);
}

static int start(ens_daemon_t *d, char *err, size_t errlen)
{
    if (ens_security_open(d, err, errlen) < 0 || open_ingest(d, err, errlen) < 0 ||
        ens_publish_open(d, err, errlen) < 0 || ens_control_open(d, err, errlen) < 0)
        return -1;
    uv_timer_init(d->loop, &d->tick);
    uv_timer_init(d->loop, &d->watchdog);
    d->tick.data = d->watchdog.data = d;
    uv_timer_start(&d->tick, on_tick, 100, 100);
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
        uv_timer_start(&d->watchdog, on_watchdog, 0, usec / 2000);
    uv_signal_t *sig[] = {&d->sighup, &d->sigterm, &d->sigint};
    int num[] = {SIGHUP, SIGTERM, SIGINT};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(d->loop, sig[i]);
        sig[i]->data = d;
        uv_signal_start(sig[i], on_signal, num[i]);
    }
    d->handles_ready = 1;
    return 0;
}

int ens_daemon_run(const char *conf_path, int foreground, int discard_state)
{
    static ens_daemon_t daemon_state; /* too big for the stack; one per process */
    ens_daemon_t *d = &daemon_state;
    char err[1024];
    memset(d, 0, sizeof(*d));
    snprintf(d->conf_path, sizeof(d->conf_path), "%s", conf_path);
    if (ens_config_load(conf_path, &d->conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "ensembled: %s\n", err);
        return 1;
    }
    ens_log_init(d->conf.log_level, foreground);
    ens_proto_limits_default(&d->limits);
    d->limits.max_message_bytes = d->conf.max_message_bytes;
    d->loop = malloc(sizeof(uv_loop_t));
    uv_loop_init(d->loop);
    d->zctx = zmq_ctx_new();
    d->started = d->last_publish_round = ens_now();
    signal(SIGPIPE, SIG_IGN);

    int rc = ens_state_open(d, discard_state, err, sizeof(err));
    if (rc < 0)
        d->exit_code = 1,
        fprintf(stderr,
                "ensembled: %s\nensembled: refusing to start; --discard-state starts "
                "empty (the refused snapshot is kept aside)\n",
                err);
    else
        rc = start(d, err, sizeof(err));
    if (rc < 0) {
        ENS_LOG(ERR, "%s", err);
        d->exit_code = 1;
        stop(d);
    } else {
        ENS_LOG(NOTICE, "ensembled %s ready: ingest %s, publish %s, control %s", ENS_VERSION,
                d->conf.ingest_bind, d->conf.publish_bind, d->conf.control_bind);
        sd_notify(0, "READY=1\nSTATUS=ready");
        /* Restored tasks publish at once: routers need not wait a period. */
        for (ens_task_t *t = d->tasks; t; t = t->hh.next)
            ens_recompute_start(t);
    }
    uv_run(d->loop, UV_RUN_DEFAULT);
    /* Every queued selection and write has returned: persist and free. */
    if (d->exit_code == 0)
        ens_state_close(d);
    else
        ens_state_abandon(d);
    ens_task_destroy_all(d);
    ens_security_free(d);
    zmq_ctx_term(d->zctx);
    uv_loop_close(d->loop);
    free(d->loop);
    return d->exit_code;
}
