/* natsin.c - intake from a NATS JetStream stream (see natsin.h). */
#include "natsin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ensembled/xalloc.h"
#include "log.h"
#include "looptime.h"

#ifdef ENS_HAVE_NATS

#include <nats/nats.h>
#include <stdatomic.h>

/* Messages fetched and not yet taken by the loop, at most; then the fetch
 * thread waits. */
#define MAX_QUEUED 4096
/* Messages asked for in one pull request. */
#define BATCH 512
/* How long one pull request waits for messages (ms): also how long the
 * acknowledgements the loop queued may wait while the stream is idle. */
#define FETCH_WAIT_MS 50
/* Messages the server lets the consumer hold unacknowledged. A message
 * whose prediction waits for its label stays unacknowledged, and the label
 * comes later in the same stream: the server must keep delivering while
 * every pending query of every task holds one (join.max_pending per task
 * bounds them), or the labels would never arrive. The server's default
 * (1,000) is far too low; libnats sends no value below 1. */
#define MAX_ACK_PENDING (1 << 23)
/* Messages applied per loop turn, at most (as the ZeroMQ intake). */
#define PER_TURN 1024
/* A held message's queries are looked up again after RECHECK seconds, then
 * at doubling intervals up to RECHECK_MAX: a long label lag costs a few
 * decodes per message, not one every half second. */
#define RECHECK 0.5
#define RECHECK_MAX 8.0

typedef struct {
    natsMsg **v;
    size_t n, cap;
} msgs_t;

/* A message applied and not yet acknowledged. */
typedef struct {
    natsMsg *m;
    uint64_t seq;      /* released: the last row seq when it was */
    double checked;    /* monotonic time its queries were last looked up */
    double every;      /* seconds until they are looked up again */
    double progressed; /* monotonic time it was last marked in progress */
    int released;      /* no query of it is pending any more */
} held_t;

struct ens_natsin_s {
    uv_loop_t *loop;
    const ens_config_t *conf; /* borrowed */
    ens_natsin_hooks_t hooks;
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    uv_thread_t thread;
    int thread_started;
    uv_mutex_t mu;  /* guards quit, in, ack, progress */
    uv_cond_t wake; /* the fetch thread waits on it for room or work */
    int quit;
    msgs_t in;       /* fetched, for the loop */
    msgs_t ack;      /* to acknowledge (then destroy) */
    msgs_t progress; /* to mark in progress */
    uv_async_t async;
    uv_timer_t timer;
    int handles_open;
    held_t *held;
    size_t nheld, capheld;
    uint64_t fetched, acked, in_progress; /* loop thread */
    uint64_t position;                    /* highest stream sequence applied */
    atomic_uint_fast64_t fetch_errors, ack_errors;
    ens_ratelimit_t rl_fetch; /* fetch thread */
};

static void push(msgs_t *l, natsMsg *m)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = ens_xreallocarray(l->v, l->cap, sizeof(*l->v));
    }
    l->v[l->n++] = m;
}

static void swap(msgs_t *a, msgs_t *b)
{
    msgs_t t = *a;
    *a = *b;
    *b = t;
}

/* ---- the fetch thread ------------------------------------------------- */

/* Marks in progress first: a message is never acknowledged (and
 * destroyed) before a mark queued with it. */
static void send_acks(ens_natsin_t *n, msgs_t *ack, msgs_t *prog)
{
    for (size_t i = 0; i < prog->n; i++)
        natsMsg_InProgress(prog->v[i], NULL);
    prog->n = 0;
    for (size_t i = 0; i < ack->n; i++) {
        if (natsMsg_Ack(ack->v[i], NULL) != NATS_OK)
            atomic_fetch_add(&n->ack_errors, 1);
        natsMsg_Destroy(ack->v[i]);
    }
    ack->n = 0;
}

static void fetch(ens_natsin_t *n, size_t room)
{
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    int batch = room < BATCH ? (int)room : BATCH;
    natsStatus s = natsSubscription_Fetch(&list, n->sub, batch, FETCH_WAIT_MS, &jerr);
    if (s == NATS_OK && list.Count > 0) {
        uv_mutex_lock(&n->mu);
        for (int i = 0; i < list.Count; i++)
            push(&n->in, list.Msgs[i]);
        uv_mutex_unlock(&n->mu);
        list.Count = 0; /* the loop owns the messages now */
        uv_async_send(&n->async);
    } else if (s != NATS_OK && s != NATS_TIMEOUT) {
        atomic_fetch_add(&n->fetch_errors, 1);
        ens_log_limited(&n->rl_fetch, ENS_LOG_WARNING, "nats: fetch from %s failed: %s",
                        n->conf->nats_stream, natsStatus_GetText(s));
        uv_sleep(100);
    }
    natsMsgList_Destroy(&list);
}

static void worker(void *arg)
{
    ens_natsin_t *n = arg;
    msgs_t ack = {0}, prog = {0};
    for (;;) {
        uv_mutex_lock(&n->mu);
        while (!n->quit && n->in.n >= MAX_QUEUED && n->ack.n == 0 && n->progress.n == 0)
            uv_cond_wait(&n->wake, &n->mu);
        swap(&ack, &n->ack);
        swap(&prog, &n->progress);
        int quit = n->quit;
        size_t room = n->in.n < MAX_QUEUED ? MAX_QUEUED - n->in.n : 0;
        uv_mutex_unlock(&n->mu);
        send_acks(n, &ack, &prog);
        if (quit)
            break;
        if (room > 0)
            fetch(n, room);
    }
    free(ack.v);
    free(prog.v);
}

/* ---- the loop --------------------------------------------------------- */

static const char *payload(natsMsg *m, size_t *len)
{
    *len = (size_t)natsMsg_GetDataLength(m);
    const char *p = natsMsg_GetData(m);
    return p ? p : "";
}

static int pending(ens_natsin_t *n, natsMsg *m)
{
    size_t len;
    const char *p = payload(m, &len);
    return n->hooks.pending(n->hooks.ud, p, len);
}

/* Acknowledges what is released and durable; marks in progress what was
 * held half of ack_wait; looks up again the queries of what is held. */
static void settle(ens_natsin_t *n)
{
    uint64_t durable = n->hooks.durable_seq(n->hooks.ud);
    double now = ens_mono();
    msgs_t ack = {0}, prog = {0};
    size_t keep = 0;
    for (size_t i = 0; i < n->nheld; i++) {
        held_t h = n->held[i];
        if (!h.released && now - h.checked >= h.every) {
            h.checked = now;
            h.every = h.every * 2 < RECHECK_MAX ? h.every * 2 : RECHECK_MAX;
            if (!pending(n, h.m)) {
                h.released = 1;
                h.seq = n->hooks.last_seq(n->hooks.ud);
            }
        }
        if (h.released && h.seq <= durable) {
            push(&ack, h.m);
            continue;
        }
        if (now - h.progressed >= n->conf->nats_ack_wait / 2) {
            h.progressed = now;
            push(&prog, h.m);
        }
        n->held[keep++] = h;
    }
    n->nheld = keep;
    n->acked += ack.n;
    n->in_progress += prog.n;
    if (ack.n || prog.n) {
        uv_mutex_lock(&n->mu);
        for (size_t i = 0; i < prog.n; i++)
            push(&n->progress, prog.v[i]);
        for (size_t i = 0; i < ack.n; i++)
            push(&n->ack, ack.v[i]);
        uv_cond_signal(&n->wake);
        uv_mutex_unlock(&n->mu);
    }
    free(ack.v);
    free(prog.v);
}

/* Applies what the fetch thread queued (PER_TURN at most); each message
 * is then held. */
static void take(ens_natsin_t *n)
{
    msgs_t got = {0};
    uv_mutex_lock(&n->mu);
    size_t k = n->in.n < PER_TURN ? n->in.n : PER_TURN;
    if (k > 0) {
        got.v = ens_xreallocarray(NULL, k, sizeof(*got.v));
        memcpy(got.v, n->in.v, k * sizeof(*got.v));
        memmove(n->in.v, n->in.v + k, (n->in.n - k) * sizeof(*n->in.v));
        got.n = got.cap = k;
        n->in.n -= k;
    }
    int more = n->in.n > 0;
    uv_cond_signal(&n->wake);
    uv_mutex_unlock(&n->mu);
    /* Fairness: the rest on a later turn, after sockets and timers. */
    if (more && n->handles_open)
        uv_async_send(&n->async);
    double now = ens_mono();
    for (size_t i = 0; i < got.n; i++) {
        size_t len;
        const char *p = payload(got.v[i], &len);
        n->hooks.deliver(n->hooks.ud, p, len);
        jsMsgMetaData *meta = NULL;
        if (natsMsg_GetMetaData(&meta, got.v[i]) == NATS_OK) {
            if (meta->Sequence.Stream > n->position)
                n->position = meta->Sequence.Stream;
            jsMsgMetaData_Destroy(meta);
        }
        if (n->nheld == n->capheld) {
            n->capheld = n->capheld ? 2 * n->capheld : 1024;
            n->held = ens_xreallocarray(n->held, n->capheld, sizeof(*n->held));
        }
        held_t *h = &n->held[n->nheld++];
        *h = (held_t){got.v[i], 0, now, RECHECK, now, 0};
        if (!n->hooks.pending(n->hooks.ud, p, len)) {
            h->released = 1;
            h->seq = n->hooks.last_seq(n->hooks.ud);
        }
    }
    n->fetched += got.n;
    free(got.v);
}

static void on_async(uv_async_t *a)
{
    ens_natsin_t *n = a->data;
    ens_loop_section_t was = ens_looptime_enter(ENS_LOOP_INGEST);
    take(n);
    settle(n);
    ens_looptime_enter(was);
}

static void on_timer(uv_timer_t *t)
{
    settle(t->data);
}

/* ---- life ------------------------------------------------------------- */

/* urls as logs may show them: the password of "scheme://user:password@host"
 * (in each comma-separated server) becomes "***". */
static void redact_urls(const char *urls, char *out, size_t n)
{
    size_t o = 0;
    const char *p = urls;
    while (*p && o + 1 < n) {
        size_t len = strcspn(p, ",");
        const char *more = p[len] ? "," : "";
        const char *at = memchr(p, '@', len);
        const char *sep = strstr(p, "://");
        const char *user = sep && sep < p + len ? sep + 3 : p;
        const char *colon = at ? memchr(user, ':', (size_t)(at - user)) : NULL;
        int w = colon ? snprintf(out + o, n - o, "%.*s***%.*s%s", (int)(colon + 1 - p), p,
                                 (int)(p + len - at), at, more)
                      : snprintf(out + o, n - o, "%.*s%s", (int)len, p, more);
        o += w >= 0 && (size_t)w < n - o ? (size_t)w : n - o - 1;
        p += len + (p[len] != '\0');
    }
    out[o] = '\0';
}

/* The connection options: servers (comma-separated), reconnection without
 * end, credentials and TLS. Returns NATS_OK or the failing call's status
 * with what it concerned in *what. */
static natsStatus make_options(const ens_config_t *c, natsOptions **o, const char **what)
{
    char urls[ENS_CONF_STR];
    const char *servers[ENS_CONF_MAX_CONNECT];
    int ns = 0;
    snprintf(urls, sizeof(urls), "%s", c->nats_url);
    for (char *save = NULL, *t = strtok_r(urls, ", ", &save); t && ns < ENS_CONF_MAX_CONNECT;
         t = strtok_r(NULL, ", ", &save))
        servers[ns++] = t;
    *what = NULL; /* the servers */
    natsStatus s = natsOptions_Create(o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(*o, servers, ns);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(*o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(*o, 250);
    if (s == NATS_OK && c->nats_creds[0]) {
        *what = c->nats_creds;
        s = natsOptions_SetUserCredentialsFromFiles(*o, c->nats_creds, NULL);
    }
    if (s == NATS_OK && c->nats_tls_ca[0]) {
        *what = c->nats_tls_ca;
        s = natsOptions_SetSecure(*o, true);
        if (s == NATS_OK)
            s = natsOptions_LoadCATrustedCertificates(*o, c->nats_tls_ca);
    }
    return s;
}

int ens_natsin_connect(const ens_config_t *c, natsConnection **nc, char *err, size_t errlen)
{
    natsOptions *o = NULL;
    const char *what = NULL;
    natsStatus s = make_options(c, &o, &what);
    if (s == NATS_OK) {
        what = NULL;
        s = natsConnection_Connect(nc, o);
    }
    natsOptions_Destroy(o);
    if (s != NATS_OK) {
        char urls[ENS_CONF_STR];
        redact_urls(c->nats_url, urls, sizeof(urls));
        snprintf(err, errlen, "ingest.nats %s: %s", what ? what : urls, nats_GetLastError(&s));
        return -1;
    }
    return 0;
}

/* Connects and binds the durable pull consumer. */
static int connect_consumer(ens_natsin_t *n, char *err, size_t errlen)
{
    const ens_config_t *c = n->conf;
    if (ens_natsin_connect(c, &n->nc, err, errlen) < 0)
        return -1;
    natsStatus s = natsConnection_JetStream(&n->js, n->nc, NULL);
    if (s != NATS_OK) {
        snprintf(err, errlen, "ingest.nats: JetStream: %s", nats_GetLastError(&s));
        return -1;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = c->nats_stream;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.AckWait = (int64_t)(c->nats_ack_wait * 1e9);
    so.Config.MaxAckPending = MAX_ACK_PENDING;
    jsErrCode jerr = 0;
    s = js_PullSubscribe(&n->sub, n->js, c->nats_subject, c->nats_durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
        snprintf(err, errlen, "ingest.nats: consumer %s on stream %s (%s): %s", c->nats_durable,
                 c->nats_stream, c->nats_subject, nats_GetLastError(&s));
        return -1;
    }
    return 0;
}

int ens_natsin_open(uv_loop_t *loop, const ens_config_t *conf, const ens_natsin_hooks_t *hooks,
                    ens_natsin_t **out, char *err, size_t errlen)
{
    ens_natsin_t *n = ens_xcalloc(1, sizeof(*n));
    n->loop = loop;
    n->conf = conf;
    n->hooks = *hooks;
    uv_mutex_init(&n->mu);
    uv_cond_init(&n->wake);
    *out = n;
    if (connect_consumer(n, err, errlen) < 0)
        return -1;
    uv_async_init(loop, &n->async, on_async);
    uv_timer_init(loop, &n->timer);
    n->async.data = n->timer.data = n;
    n->handles_open = 1;
    uv_timer_start(&n->timer, on_timer, 50, 50);
    if (uv_thread_create(&n->thread, worker, n) != 0) {
        snprintf(err, errlen, "ingest.nats: cannot start the fetch thread");
        return -1;
    }
    n->thread_started = 1;
    char urls[ENS_CONF_STR];
    redact_urls(conf->nats_url, urls, sizeof(urls));
    ENS_LOG(NOTICE, "nats: consuming %s of stream %s as %s from %s", conf->nats_subject,
            conf->nats_stream, conf->nats_durable, urls);
    return 0;
}

void ens_natsin_stop(ens_natsin_t *n)
{
    if (!n)
        return;
    if (n->thread_started) {
        uv_mutex_lock(&n->mu);
        n->quit = 1;
        uv_cond_signal(&n->wake);
        uv_mutex_unlock(&n->mu);
        /* At most one pull request's wait (FETCH_WAIT_MS). */
        uv_thread_join(&n->thread);
        n->thread_started = 0;
        while (n->in.n > 0) /* the thread is gone: no lock needed to read */
            take(n);
        settle(n);
    }
    if (n->handles_open) {
        uv_close((uv_handle_t *)&n->async, NULL);
        uv_close((uv_handle_t *)&n->timer, NULL);
        n->handles_open = 0;
    }
}

/* A clean stop saved every row: what no pending query needs goes. */
static void ack_saved(ens_natsin_t *n, msgs_t *ack)
{
    size_t keep = 0;
    for (size_t i = 0; i < n->nheld; i++) {
        if (n->held[i].released || !pending(n, n->held[i].m))
            push(ack, n->held[i].m);
        else
            n->held[keep++] = n->held[i];
    }
    n->nheld = keep;
    n->acked += ack->n;
}

void ens_natsin_destroy(ens_natsin_t **np, int durable)
{
    ens_natsin_t *n = *np;
    if (!n)
        return;
    ens_natsin_stop(n);
    msgs_t ack = {0}, prog = {0};
    if (durable && n->nc)
        ack_saved(n, &ack);
    swap(&prog, &n->progress);
    for (size_t i = 0; i < n->ack.n; i++)
        push(&ack, n->ack.v[i]);
    send_acks(n, &ack, &prog);
    if (n->nc)
        natsConnection_FlushTimeout(n->nc, 2000);
    for (size_t i = 0; i < n->nheld; i++)
        natsMsg_Destroy(n->held[i].m);
    for (size_t i = 0; i < n->in.n; i++)
        natsMsg_Destroy(n->in.v[i]);
    natsSubscription_Destroy(n->sub);
    jsCtx_Destroy(n->js);
    natsConnection_Destroy(n->nc);
    uv_mutex_destroy(&n->mu);
    uv_cond_destroy(&n->wake);
    free(ack.v);
    free(prog.v);
    free(n->in.v);
    free(n->ack.v);
    free(n->progress.v);
    free(n->held);
    free(n);
    *np = NULL;
}

uint64_t ens_natsin_position(const ens_natsin_t *n)
{
    return n ? n->position : 0;
}

void ens_natsin_status(const ens_natsin_t *n, ens_mpw_t *w)
{
    if (!n)
        return;
    ens_natsin_t *m = (ens_natsin_t *)(uintptr_t)n; /* atomics load through a non-const */
    const struct {
        const char *key;
        uint64_t v;
    } counts[] = {{"fetched", n->fetched},
                  {"acked", n->acked},
                  {"held", n->nheld},
                  {"in_progress", n->in_progress},
                  {"position", n->position},
                  {"fetch_errors", atomic_load(&m->fetch_errors)},
                  {"ack_errors", atomic_load(&m->ack_errors)}};
    ens_mpw_cstr(w, "nats");
    ens_mpw_map_begin(w);
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        ens_mpw_cstr(w, counts[i].key);
        ens_mpw_uint(w, counts[i].v);
    }
    ens_mpw_map_end(w);
}

#else /* !ENS_HAVE_NATS */

int ens_natsin_open(uv_loop_t *loop, const ens_config_t *conf, const ens_natsin_hooks_t *hooks,
                    ens_natsin_t **out, char *err, size_t errlen)
{
    (void)loop, (void)conf, (void)hooks;
    *out = NULL;
    snprintf(err, errlen, "ingest.nats: this build of ensembled lacks NATS (libnats)");
    return -1;
}

void ens_natsin_stop(ens_natsin_t *n)
{
    (void)n;
}

void ens_natsin_destroy(ens_natsin_t **np, int durable)
{
    (void)durable;
    *np = NULL;
}

uint64_t ens_natsin_position(const ens_natsin_t *n)
{
    (void)n;
    return 0;
}

void ens_natsin_status(const ens_natsin_t *n, ens_mpw_t *w)
{
    (void)n, (void)w;
}

#endif
