/* daemon.c - start, run, reload and stop; the wiring between modules (see
 * daemon.h). */
#include "daemon.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <zmq.h>

#include "clock.h"
#include "config.h"
#include "control.h"
#include "ensembled/version.h"
#include "ingest.h"
#include "log.h"
#include "looptime.h"
#include "metrics.h"
#include "natsin.h"
#include "natspub.h"
#include "publish.h"
#include "recompute.h"
#include "security.h"
#include "state.h"
#include "task.h"
#include "zsock.h"

typedef struct {
    uv_loop_t loop;
    char conf_path[4096];
    ens_config_t conf;
    void *zctx;
    ens_tasks_t *tasks;
    ens_ingest_t *ingest;
    ens_recompute_t *recompute;
    ens_publish_t *publish;
    ens_control_t *control;
    ens_metrics_t *metrics;   /* NULL: metrics.bind empty */
    ens_looptime_t *looptime; /* the loop's turns, timed (NULL: not yet) */
    ens_natsin_t *natsin;     /* NULL: ingest.nats empty */
    ens_natspub_t *natspub;   /* NULL: publish.nats_kv empty */
    ens_state_t *state;
    ens_security_t *security;
    ens_zsock_t *pull;
    ens_zsock_t *subs[ENS_CONF_MAX_CONNECT];
    uv_timer_t tick;     /* 100 ms: expiry, state timers, publish.interval */
    uv_timer_t watchdog; /* sd_notify WATCHDOG=1 */
    uv_signal_t sighup, sigterm, sigint;
    uv_work_t pool_start;      /* a no-op that starts libuv's pool (see run) */
    double started;            /* monotonic time at start */
    double last_publish_round; /* monotonic */
    double last_metrics;       /* monotonic time of the last metrics update */
    int stopping;
    int handles_ready; /* timers and signals initialised */
    int exit_code;
} daemon_t;

/* ---- hooks: what crosses between modules ------------------------------ */

static void on_added(void *ud, const ens_task_t *t, ens_name_kind_t kind, uint32_t id,
                     ens_str_t name)
{
    daemon_t *d = ud;
    ens_state_added(d->state, t, kind, id, name);
}

static void on_joined(void *ud, ens_task_t *t, uint8_t y, const uint8_t *x, size_t nx, double ts)
{
    daemon_t *d = ud;
    ens_state_row(d->state, t, y, x, nx, ts);
    ens_recompute_joined(d->recompute, t);
}

static void on_query(void *ud, const ens_task_t *t, const void *key, size_t len)
{
    daemon_t *d = ud;
    ens_state_query(d->state, t, key, len);
}

static void on_selected(void *ud, ens_task_t *t, const ens_pipeline_t *p)
{
    daemon_t *d = ud;
    if (d->metrics)
        ens_metrics_observe_selection(d->metrics, t->name, t->len,
                                      ens_recompute_last_seconds(d->recompute, t));
    ens_publish_result(d->publish, t, p, ens_now());
    if (d->natspub) {
        size_t size = 0;
        const char *body = ens_publish_body(d->publish, t, &size);
        ens_natspub_put(d->natspub, t->name, t->len, body, size, ens_natsin_position(d->natsin));
    }
}

static void published_set(void *ud, const ens_task_t *t, const ens_str_t **names, size_t *n)
{
    daemon_t *d = ud;
    ens_publish_models(d->publish, t, names, n);
}

static void on_published(void *ud, const ens_task_t *t, uint64_t version)
{
    daemon_t *d = ud;
    ens_state_version(d->state, t, version);
}

static void on_restored_version(void *ud, const ens_task_t *t, uint64_t version)
{
    daemon_t *d = ud;
    ens_publish_restore_version(d->publish, t, version);
}

static uint64_t version_of(void *ud, const ens_task_t *t)
{
    daemon_t *d = ud;
    return ens_publish_version(d->publish, t);
}

/* The NATS intake's messages take the ZeroMQ intake's path. */
static void nats_deliver(void *ud, const char *buf, size_t len)
{
    daemon_t *d = ud;
    ens_ingest_message(d->ingest, buf, len, ens_now(), ens_mono());
}

static int nats_pending(void *ud, const char *buf, size_t len)
{
    daemon_t *d = ud;
    return ens_ingest_pending(d->ingest, buf, len);
}

static uint64_t nats_last_seq(void *ud)
{
    daemon_t *d = ud;
    return ens_state_last_seq(d->state);
}

static uint64_t nats_durable_seq(void *ud)
{
    daemon_t *d = ud;
    return ens_state_durable_seq(d->state);
}

/* ---- control commands ------------------------------------------------- */

static void write_task_status(daemon_t *d, const ens_task_t *t, ens_mpw_t *w)
{
    const ens_join_stats_t *js = ens_join_stats(t->join);
    const struct {
        const char *key;
        uint64_t v;
    } counts[] = {{"rows", ens_window_rows(t->window)},
                  {"capacity", ens_window_capacity(t->window)},
                  {"pending", ens_join_pending(t->join)},
                  {"models", ens_window_models_held(t->window)},
                  {"models_freed", t->models_freed},
                  {"labels", ens_window_labels_held(t->window)},
                  {"labels_freed", t->labels_freed},
                  {"queries", js->queries},
                  {"joined", js->joined},
                  {"expired", js->expired},
                  {"evicted", js->evicted},
                  {"late_predictions", js->late_predictions},
                  {"late_labels", js->late_labels},
                  {"duplicate_predictions", js->dup_predictions},
                  {"duplicate_labels", js->dup_labels},
                  {"sampled_out", t->sampled_out}};
    ens_mpw_map_begin(w);
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        ens_mpw_cstr(w, counts[i].key);
        ens_mpw_uint(w, counts[i].v);
    }
    ens_publish_task_status(d->publish, t, w);
    ens_recompute_task_status(d->recompute, t, w);
    ens_mpw_map_end(w);
}

static void write_status(void *ud, ens_mpw_t *w)
{
    daemon_t *d = ud;
    ens_mpw_cstr(w, "version");
    ens_mpw_cstr(w, ENS_VERSION);
    ens_mpw_cstr(w, "uptime_s");
    ens_mpw_double(w, ens_mono() - d->started);
    ens_looptime_status(d->looptime, w);
    ens_security_status(d->security, w);
    ens_state_status(d->state, w);
    ens_ingest_status(d->ingest, w);
    ens_natsin_status(d->natsin, w);
    ens_natspub_status(d->natspub, w);
    ens_publish_status(d->publish, w);
    ens_control_status(d->control, w);
    ens_mpw_cstr(w, "tasks");
    ens_mpw_map_begin(w);
    for (uint32_t i = 0; i < ens_tasks_count(d->tasks); i++) {
        const ens_task_t *t = ens_tasks_get(d->tasks, i);
        ens_mpw_str(w, t->name, t->len);
        write_task_status(d, t, w);
    }
    ens_mpw_map_end(w);
}

/* Hands the metrics module the status and the published bodies. */
static void update_metrics(daemon_t *d)
{
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_mpw_map_begin(&w);
    write_status(d, &w);
    ens_mpw_map_end(&w);
    uint32_t n = ens_tasks_count(d->tasks);
    ens_metrics_body_t *bodies = calloc(n ? n : 1, sizeof(*bodies));
    size_t nb = 0;
    for (uint32_t i = 0; bodies && i < n; i++) {
        const ens_task_t *t = ens_tasks_get(d->tasks, i);
        size_t size = 0;
        const char *body = ens_publish_body(d->publish, t, &size);
        if (size)
            bodies[nb++] = (ens_metrics_body_t){t->name, t->len, body, size};
    }
    if (bodies)
        ens_metrics_update(d->metrics, w.data, w.size, bodies, nb);
    free(bodies);
    ens_mpw_free(&w);
}

static int get_ensemble(void *ud, const char *task, size_t len, const char **body, size_t *size)
{
    daemon_t *d = ud;
    const ens_task_t *t = ens_tasks_find(d->tasks, task, len);
    if (!t)
        return -1;
    *body = ens_publish_body(d->publish, t, size);
    return *size ? 0 : -2;
}

static int start_recompute(void *ud, const char *task, size_t len)
{
    daemon_t *d = ud;
    if (!task) {
        ens_recompute_start_all(d->recompute);
        return (int)ens_tasks_count(d->tasks);
    }
    ens_task_t *t = ens_tasks_find(d->tasks, task, len);
    if (!t)
        return -1;
    ens_recompute_start(d->recompute, t);
    return 1;
}

/* ---- sockets ---------------------------------------------------------- */

static void on_ingest(void *ud, ens_zsock_t *z, zmq_msg_t *frames, size_t n)
{
    daemon_t *d = ud;
    double now, mono;
    ens_zsock_time(z, &now, &mono);
    /* SUB publishers may send a topic frame first: the body is the last. */
    ens_ingest_message(d->ingest, zmq_msg_data(&frames[n - 1]), zmq_msg_size(&frames[n - 1]), now,
                       mono);
}

/* A socket of type, CURVE applied (but for SUB, a client), bound to
 * endpoint (or connected, for SUB); NULL with err. */
static void *open_socket(daemon_t *d, int type, const char *key, const char *endpoint, char *err,
                         size_t errlen)
{
    void *s = zmq_socket(d->zctx, type);
    if (type != ZMQ_SUB)
        ens_security_apply(d->security, s);
    int64_t max = (int64_t)d->conf.max_message_bytes;
    int one = 1;
    if (type == ZMQ_PULL || type == ZMQ_SUB)
        /* libzmq drops oversized messages before they are read (and counts
         * them nowhere); the decoder's own cap counts what gets through. */
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max));
    if (type == ZMQ_SUB)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    if (type == ZMQ_XPUB) {
        /* Every (re)subscription reaches the daemon, which resends the
         * cached body; a subscriber that never reads holds at most
         * publish.max_queued messages (publish.c counts what it misses). */
        int hwm = (int)d->conf.publish_max_queued;
        zmq_setsockopt(s, ZMQ_XPUB_VERBOSE, &one, sizeof(one));
        zmq_setsockopt(s, ZMQ_XPUB_NODROP, &one, sizeof(one));
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    }
    if (type == ZMQ_ROUTER) {
        /* The control socket: a client that pipelines requests without
         * reading holds at most control.max_queued requests and replies;
         * mandatory routing makes a full reply queue an error control.c
         * counts instead of a silent drop. Requests are small maps. */
        int hwm = (int)d->conf.control_max_queued;
        int64_t ctl_max = ENS_CONTROL_MAX_REQUEST;
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
        zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &ctl_max, sizeof(ctl_max));
    }
    int rc = type == ZMQ_SUB ? zmq_connect(s, endpoint) : zmq_bind(s, endpoint);
    if (rc < 0) {
        snprintf(err, errlen, "%s %s: %s", key, endpoint, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* An ingest socket driven by the loop, its drains charged to ingest. */
static ens_zsock_t *ingest_zsock(daemon_t *d, void *sock)
{
    ens_zsock_t *z = ens_zsock_new(&d->loop, sock, on_ingest, d, 1024);
    if (z)
        ens_zsock_set_section(z, ENS_LOOP_INGEST);
    return z;
}

static int open_sockets(daemon_t *d, char *err, size_t errlen)
{
    const ens_config_t *c = &d->conf;
    void *pull = open_socket(d, ZMQ_PULL, "ingest.bind", c->ingest_bind, err, errlen);
    if (!pull)
        return -1;
    /* Fairness: at most 1024 messages per wake-up, then the loop serves the
     * control and publish sockets and timers before coming back. */
    d->pull = ingest_zsock(d, pull);
    for (size_t i = 0; i < c->ingest_nconnect; i++) {
        void *sub = open_socket(d, ZMQ_SUB, "ingest.connect", c->ingest_connect[i], err, errlen);
        if (!sub)
            return -1;
        d->subs[i] = ingest_zsock(d, sub);
    }
    void *pub = open_socket(d, ZMQ_XPUB, "publish.bind", c->publish_bind, err, errlen);
    if (!pub)
        return -1;
    ens_publish_attach(d->publish, &d->loop, pub);
    void *ctl = open_socket(d, ZMQ_ROUTER, "control.bind", c->control_bind, err, errlen);
    if (!ctl)
        return -1;
    ens_control_hooks_t ch = {write_status, get_ensemble, start_recompute, d};
    d->control = ens_control_new(&d->loop, ctl, &ch);
    if (c->nats_url[0]) {
        ens_natsin_hooks_t nh = {nats_deliver, nats_pending, nats_last_seq, nats_durable_seq, d};
        if (ens_natsin_open(&d->loop, c, &nh, &d->natsin, err, errlen) < 0)
            return -1;
    }
    if (c->nats_kv[0] && ens_natspub_open(c, &d->natspub, err, errlen) < 0)
        return -1;
    if (c->metrics_bind[0]) {
        d->metrics = ens_metrics_new(c->metrics_bind, err, errlen);
        if (!d->metrics)
            return -1;
        update_metrics(d);
    }
    return 0;
}

/* ---- timers and signals ----------------------------------------------- */

static void on_tick(uv_timer_t *h)
{
    daemon_t *d = h->data;
    double mono = ens_mono();
    ens_loop_section_t was = ens_looptime_enter(ENS_LOOP_TASKS);
    ens_tasks_tick(d->tasks, ens_now(), mono);
    ens_looptime_enter(ENS_LOOP_JOURNAL);
    ens_state_tick(d->state, mono);
    /* Scrapes get figures at most a second old, rendered here. */
    if (d->metrics && mono - d->last_metrics >= 1.0) {
        d->last_metrics = mono;
        ens_looptime_enter(ENS_LOOP_METRICS);
        update_metrics(d);
    }
    double every = d->conf.publish_interval;
    if (every > 0 && mono - d->last_publish_round >= every) {
        d->last_publish_round = mono;
        ens_looptime_enter(ENS_LOOP_SELECT);
        ens_recompute_start_all(d->recompute);
    }
    ens_looptime_enter(was);
}

static void on_watchdog(uv_timer_t *h)
{
    (void)h;
    sd_notify(0, "WATCHDOG=1");
}

static void stop(daemon_t *d);

/* Binds a socket of type again on a bound endpoint. The old socket was
 * closed just before, and libzmq closes its listener on its own thread, so
 * a bind that finds the address still in use is retried a few times. */
static void *bind_again(daemon_t *d, int type, const char *key, const char *endpoint)
{
    char err[512];
    for (int attempt = 0; attempt < 50; attempt++) {
        void *s = open_socket(d, type, key, endpoint, err, sizeof(err));
        if (s)
            return s;
        uv_sleep(10);
    }
    ENS_LOG(ERR, "security: cannot bind again: %s", err);
    return NULL;
}

/* A revoked key must not keep the connections it opened, and ZeroMQ checks
 * keys at the handshake only, with no way to close one peer's connection:
 * so every bound socket is closed and bound again. Clients reconnect by
 * themselves and present their key to the ZAP handler again, which refuses
 * revoked ones. What the ingest socket already holds is taken in first (it
 * was sent while its sender was authorized); control requests in flight
 * are lost (their clients time out and retry). A socket that cannot be
 * bound again stops the daemon, which would otherwise serve without it. */
static void reopen_bound(daemon_t *d)
{
    const ens_config_t *c = &d->conf;
    ens_zsock_flush(d->pull, 100000);
    ens_zsock_close(d->pull);
    ens_publish_close(d->publish);
    ens_control_close(d->control);
    void *pull = bind_again(d, ZMQ_PULL, "ingest.bind", c->ingest_bind);
    void *pub = pull ? bind_again(d, ZMQ_XPUB, "publish.bind", c->publish_bind) : NULL;
    void *ctl = pub ? bind_again(d, ZMQ_ROUTER, "control.bind", c->control_bind) : NULL;
    d->pull = pull ? ingest_zsock(d, pull) : NULL;
    if (pub)
        ens_publish_attach(d->publish, &d->loop, pub);
    if (ctl)
        ens_control_attach(d->control, &d->loop, ctl);
    if (!ctl) {
        stop(d);
        d->exit_code = 1;
        return;
    }
    ENS_LOG(NOTICE, "security: a key was revoked; every connection was closed, clients "
                    "reconnect and present their keys again");
}

static void reload(daemon_t *d)
{
    ens_config_t *next = malloc(sizeof(*next));
    char err[4096], fixed[1024];
    size_t revoked = 0;
    if (!next)
        return;
    sd_notify(0, "RELOADING=1");
    if (ens_config_load(d->conf_path, next, err, sizeof(err)) < 0) {
        for (char *nl = strchr(err, '\n'); nl; nl = strchr(nl, '\n'))
            *nl = ';';
        ENS_LOG(ERR, "reload: %s; keeping the running configuration", err);
    } else {
        if (ens_config_restart_needed(&d->conf, next, fixed, sizeof(fixed)) > 0)
            ENS_LOG(WARNING, "reload: %s changed; these take effect only after a restart", fixed);
        ens_config_keep_fixed(next, &d->conf);
        d->conf = *next;
        ens_log_set_level(d->conf.log_level);
        ens_log_set_format(d->conf.log_format);
        revoked = ens_security_reload(d->security, &d->conf);
        ens_tasks_set_config(d->tasks, &d->conf, ens_mono());
        ens_recompute_start_all(d->recompute);
        ENS_LOG(NOTICE, "reload: configuration from %s applied", d->conf_path);
    }
    free(next);
    if (revoked > 0)
        reopen_bound(d);
    sd_notify(0, "READY=1");
}

static void stop(daemon_t *d)
{
    if (d->stopping)
        return;
    d->stopping = 1;
    sd_notify(0, "STOPPING=1");
    ens_state_stop(d->state);
    ens_recompute_stop(d->recompute);
    ENS_LOG(NOTICE, "stopping (%d selections in flight)",
            d->recompute ? ens_recompute_inflight(d->recompute) : 0);
    ens_control_close(d->control);
    ens_metrics_destroy(&d->metrics);
    ens_publish_close(d->publish);
    for (size_t i = 0; i < ENS_CONF_MAX_CONNECT; i++)
        ens_zsock_close(d->subs[i]);
    ens_zsock_close(d->pull);
    ens_natsin_stop(d->natsin);
    ens_security_close(d->security);
    d->pull = NULL;
    memset(d->subs, 0, sizeof(d->subs));
    /* A start that failed half-way never initialised these. */
    if (!d->handles_ready)
        return;
    ens_looptime_close(d->looptime);
    d->looptime = NULL;
    uv_close((uv_handle_t *)&d->tick, NULL);
    uv_close((uv_handle_t *)&d->watchdog, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon_t *d = h->data;
    if (signum == SIGHUP)
        reload(d);
    else
        stop(d);
}

static void start_handles(daemon_t *d)
{
    uv_timer_init(&d->loop, &d->tick);
    uv_timer_init(&d->loop, &d->watchdog);
    d->tick.data = d->watchdog.data = d;
    uv_timer_start(&d->tick, on_tick, 100, 100);
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
        uv_timer_start(&d->watchdog, on_watchdog, 0, usec / 2000);
    uv_signal_t *sig[] = {&d->sighup, &d->sigterm, &d->sigint};
    int num[] = {SIGHUP, SIGTERM, SIGINT};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&d->loop, sig[i]);
        sig[i]->data = d;
        uv_signal_start(sig[i], on_signal, num[i]);
    }
    d->looptime = ens_looptime_new(&d->loop);
    d->handles_ready = 1;
}

/* ---- life ------------------------------------------------------------- */

/* The modules, wired; saved state restored. Returns 0 or -1 with err. */
static int make_modules(daemon_t *d, int discard, char *err, size_t errlen)
{
    d->tasks = ens_tasks_new(&d->conf);
    d->ingest = ens_ingest_new(d->tasks, &d->conf);
    ens_publish_hooks_t ph = {on_published, d};
    d->publish = ens_publish_new(d->tasks, &ph);
    ens_recompute_hooks_t rh = {published_set, on_selected, d};
    d->recompute = ens_recompute_new(&d->loop, d->tasks, &d->conf, &rh);
    ens_state_hooks_t sh = {on_restored_version, version_of, d};
    if (ens_state_open(&d->loop, &d->conf, d->tasks, &sh, discard, &d->state, err, errlen) < 0) {
        fprintf(stderr,
                "ensembled: %s\nensembled: refusing to start; --discard-state starts empty (the "
                "refused state is kept aside)\n",
                err);
        return -1;
    }
    /* Restored: from now on every new name and row is journaled. */
    ens_task_hooks_t th = {on_added, on_joined, d, d->conf.nats_url[0] ? on_query : NULL};
    ens_tasks_set_hooks(d->tasks, &th);
    return 0;
}

static void free_modules(daemon_t *d)
{
    if (d->exit_code == 0)
        ens_state_close(&d->state);
    else
        ens_state_abandon(&d->state);
    /* After the state is saved: what it holds can be acknowledged. */
    ens_natsin_destroy(&d->natsin, d->exit_code == 0);
    ens_natspub_destroy(&d->natspub);
    ens_control_destroy(&d->control);
    ens_publish_destroy(&d->publish);
    ens_recompute_destroy(&d->recompute);
    ens_ingest_destroy(&d->ingest);
    ens_tasks_destroy(&d->tasks);
    ens_security_free(&d->security);
}

static void pool_nothing(uv_work_t *w)
{
    (void)w;
}

static void pool_started(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
}

/* Called with SIGHUP, SIGTERM and SIGINT blocked: the threads started here
 * (libuv's pool, the HTTP server's, NATS's) inherit the mask and never take
 * these signals; only the event loop's thread, which unblocks them before
 * it runs, does. A signal parked on a thread that then blocks for good is
 * lost under some runtimes (ThreadSanitizer lost a SIGTERM that way). */
static void run(daemon_t *d, int discard)
{
    char err[1024];
    uv_queue_work(&d->loop, &d->pool_start, pool_nothing, pool_started);
    if (make_modules(d, discard, err, sizeof(err)) < 0 ||
        ens_security_open(&d->loop, d->zctx, &d->conf, &d->security, err, sizeof(err)) < 0 ||
        open_sockets(d, err, sizeof(err)) < 0) {
        ENS_LOG(ERR, "%s", err);
        d->exit_code = 1;
        stop(d);
        return;
    }
    start_handles(d);
    ENS_LOG(NOTICE, "ensembled %s ready: ingest %s, publish %s, control %s, metrics %s",
            ENS_VERSION, d->conf.ingest_bind, d->conf.publish_bind, d->conf.control_bind,
            d->conf.metrics_bind[0] ? d->conf.metrics_bind : "off");
    sd_notify(0, "READY=1\nSTATUS=ready");
    /* Restored tasks publish at once: routers need not wait a period. */
    ens_recompute_start_all(d->recompute);
}

int ens_daemon_run(const char *conf_path, int foreground, int discard_state)
{
    daemon_t *d = calloc(1, sizeof(*d));
    char err[ENS_CONF_MAX_ERRORS * 512];
    if (!d)
        return 1;
    snprintf(d->conf_path, sizeof(d->conf_path), "%s", conf_path);
    if (ens_config_load(conf_path, &d->conf, err, sizeof(err)) < 0) {
        fprintf(stderr, "ensembled: %s\n", err);
        free(d);
        return 1;
    }
    ens_log_init(d->conf.log_level, foreground);
    ens_log_set_format(d->conf.log_format);
    uv_loop_init(&d->loop);
    ens_looptime_configure(&d->loop);
    d->zctx = zmq_ctx_new();
    d->started = d->last_publish_round = ens_mono();
    signal(SIGPIPE, SIG_IGN);
    /* A stop or reload that arrives before the handlers exist (a long
     * restore) waits, pending, until the loop runs. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    run(d, discard_state);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    /* Every queued selection and write has returned: persist and free.
     * Each stage says when it is done, so that a stop that hangs says
     * where. */
    ENS_LOG(NOTICE, "stopping: the event loop has ended; saving the state");
    free_modules(d);
    ENS_LOG(NOTICE, "stopping: state saved; closing the ZeroMQ context");
    zmq_ctx_term(d->zctx);
    uv_loop_close(&d->loop);
    ENS_LOG(NOTICE, "stopped");
    int code = d->exit_code;
    free(d);
    return code;
}
