/* bench/ingest.c - prediction and label events through the daemon's ingest
 * path (decode, capacity check, join, window), beside a bare libzmq PULL
 * receiver of the same messages in the same run.
 *
 * A producer thread PUSHes pre-encoded messages over TCP loopback; the
 * receiving thread either only receives them (the baseline: what libzmq
 * allows) or, as the daemon does, drives the socket from a libuv loop
 * (zsock.c) and hands each message to ens_ingest_message.
 * Each query is one prediction event with 5 answers and one label event.
 * Runs: unbatched (one event per message), in batches of 100, and batched
 * with a selection every second: the receiving thread copies the window
 * (as the daemon's loop does) and a worker thread runs the selection
 * pipeline on the copy, as the libuv pool does. No journal (state.dir
 * empty). Times are the best of 3 runs (CLOCK_MONOTONIC).
 *
 * Ceilings, without sockets: the same messages from memory through
 * ens_ingest_message, and through the decoder alone.
 *
 * Unbatched, the receiving thread's CPU time per message is printed too:
 * on a loaded machine the wall clock also counts other processes' turns.
 *
 * Last lines: ratio_to_libzmq_unbatched (daemon events/s over bare messages/s,
 * unbatched), events_per_s_batched, ratio_with_selection (batched events/s
 * with selections over without). `ingest N unbatched|bare|memory` runs one
 * phase alone.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"
#include "config.h"
#include "ensembled/mpw.h"
#include "ensembled/pipeline.h"
#include "ensembled/protocol.h"
#include "ingest.h"
#include "log.h"
#include "task.h"
#include "zsock.h"

#define MODELS 5
#define ENDPOINT "tcp://127.0.0.1:%d"

typedef struct {
    char **msg; /* pre-encoded messages */
    size_t *len;
    size_t n;
    size_t events; /* events in all of them */
} stream_t;

static void pred_event(ens_mpw_t *w, uint64_t q, uint64_t seed)
{
    static const char *const models[MODELS] = {"alpha", "beta", "gamma", "delta", "epsilon"};
    static const char *const labels[4] = {"A", "B", "C", "D"};
    ens_pred_t preds[MODELS];
    for (int m = 0; m < MODELS; m++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        preds[m].model = (ens_str_t){models[m], strlen(models[m])};
        preds[m].label = (ens_str_t){labels[(seed >> 33) & 3], 1};
    }
    ens_event_t e = {.kind = ENS_EVENT_PREDICTION,
                     .task = {"bench", 5},
                     .query_is_uint = 1,
                     .query_uint = q,
                     .preds = preds,
                     .npreds = MODELS,
                     .cost = -1,
                     .ts = -1};
    ens_event_encode(w, &e);
}

static void label_event(ens_mpw_t *w, uint64_t q)
{
    static const char *const labels[4] = {"A", "B", "C", "D"};
    ens_event_t e = {.kind = ENS_EVENT_LABEL,
                     .task = {"bench", 5},
                     .query_is_uint = 1,
                     .query_uint = q,
                     .label = {labels[(q * 2654435761u >> 7) & 3], 1},
                     .cost = -1,
                     .ts = -1};
    ens_event_encode(w, &e);
}

/* queries queries as messages of `batch` events (1: plain event maps). */
static stream_t make_stream(size_t queries, size_t batch)
{
    stream_t s = {0};
    size_t events = 2 * queries;
    s.n = (events + batch - 1) / batch;
    s.msg = calloc(s.n, sizeof(char *));
    s.len = calloc(s.n, sizeof(size_t));
    size_t e = 0;
    for (size_t i = 0; i < s.n; i++) {
        ens_mpw_t w;
        ens_mpw_init(&w);
        if (batch > 1)
            ens_mpw_array_begin(&w);
        for (size_t k = 0; k < batch && e < events; k++, e++) {
            uint64_t q = e / 2;
            if (e % 2 == 0)
                pred_event(&w, q, q + 1);
            else
                label_event(&w, q);
        }
        if (batch > 1)
            ens_mpw_array_end(&w);
        s.msg[i] = ens_mpw_take(&w, &s.len[i]);
    }
    s.events = events;
    return s;
}

static void stream_free(stream_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->msg[i]);
    free(s->msg);
    free(s->len);
}

typedef struct {
    void *ctx;
    int port;
    const stream_t *s;
} producer_t;

static void *produce(void *arg)
{
    producer_t *p = arg;
    void *push = zmq_socket(p->ctx, ZMQ_PUSH);
    int hwm = 100000;
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    char ep[64];
    snprintf(ep, sizeof(ep), ENDPOINT, p->port);
    zmq_connect(push, ep);
    for (size_t i = 0; i < p->s->n; i++)
        if (zmq_send(push, p->s->msg[i], p->s->len[i], 0) < 0) {
            fprintf(stderr, "bench: send: %s\n", zmq_strerror(zmq_errno()));
            exit(1);
        }
    int linger = -1;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(push);
    return NULL;
}

/* The selection worker: runs the pipeline on each snapshot it is handed. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ens_data_t *snap; /* handed over, NULL: none */
    int done;
    size_t runs;
} worker_t;

static void *select_worker(void *arg)
{
    worker_t *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->done || w->snap) {
        if (!w->snap) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        ens_data_t *snap = w->snap;
        w->snap = NULL;
        pthread_mutex_unlock(&w->mu);
        ens_pipeline_opts_t o;
        ens_pipeline_opts_default(&o);
        ens_pipeline_in_t in = {snap, NULL, NULL, NULL, 0, NULL};
        ens_pipeline_t *p = NULL;
        char err[256];
        ens_pipeline_run(&in, &o, &p, err, sizeof(err));
        ens_pipeline_destroy(&p);
        ens_data_destroy(&snap);
        pthread_mutex_lock(&w->mu);
        w->runs++;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The receiving side of one run. */
typedef struct {
    const stream_t *s;
    ens_tasks_t *tasks;
    ens_ingest_t *in;
    worker_t *sel; /* NULL: no selections */
    size_t got;    /* messages received */
    double t0, t1, last_select;
    double cpu0, cpu1; /* the receiving thread's CPU time then */
} receiver_t;

/* The calling thread's CPU time, seconds: on a loaded machine the wall
 * clock also counts the time other processes held the core. */
static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One message received at wall time wall and monotonic time now (z: from
 * the drain, as the daemon's on_ingest takes them; NULL: bare, read here):
 * what on_ingest does, and every second (sel) a copy of the window for the
 * selection worker. */
static void take(receiver_t *r, const void *buf, size_t len, const ens_zsock_t *z)
{
    double wall = 0, now;
    if (z)
        ens_zsock_time(z, &wall, &now);
    else
        now = ens_mono();
    if (r->got++ == 0) {
        r->t0 = r->last_select = now;
        r->cpu0 = thread_cpu();
    }
    if (z)
        ens_ingest_message(r->in, buf, len, wall, now);
    if (r->sel && now - r->last_select >= 1.0) {
        r->last_select = now;
        ens_data_t *snap = ens_window_snapshot(ens_tasks_get(r->tasks, 0)->window);
        pthread_mutex_lock(&r->sel->mu);
        ens_data_destroy(&r->sel->snap); /* the worker is still busy: skip it */
        r->sel->snap = snap;
        pthread_cond_signal(&r->sel->cv);
        pthread_mutex_unlock(&r->sel->mu);
    }
    if (r->got == r->s->n) {
        r->t1 = ens_mono();
        r->cpu1 = thread_cpu();
    }
}

static void on_message(void *ud, ens_zsock_t *z, zmq_msg_t *frames, size_t n)
{
    receiver_t *r = ud;
    take(r, zmq_msg_data(&frames[n - 1]), zmq_msg_size(&frames[n - 1]), z);
    if (r->got == r->s->n)
        ens_zsock_close(z); /* the loop ends once its handles have closed */
}

/* Receives s from a producer thread. Bare: a blocking zmq_msg_recv loop
 * and nothing else. Else the daemon's path: the socket driven by a libuv
 * loop (zsock.c, with the daemon's fair cap), each message through
 * ens_ingest_message. Returns the seconds from the first message to the
 * last, and in *cpu the receiving thread's CPU seconds meanwhile. Binds
 * the first free port from *port on. */
static double receive(void *ctx, int *port, const stream_t *s, int bare, worker_t *sel, double *cpu)
{
    static ens_config_t c;
    ens_config_defaults(&c);
    c.max_message_bytes = 1 << 24;
    receiver_t r = {.s = s, .sel = sel};
    r.tasks = ens_tasks_new(&c);
    r.in = ens_ingest_new(r.tasks, &c);
    void *pull = zmq_socket(ctx, ZMQ_PULL);
    int hwm = 100000;
    zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    char ep[64];
    for (int tries = 0;; tries++) {
        snprintf(ep, sizeof(ep), ENDPOINT, *port);
        if (zmq_bind(pull, ep) == 0)
            break;
        if (zmq_errno() != EADDRINUSE || tries == 100) {
            fprintf(stderr, "bench: bind %s: %s\n", ep, zmq_strerror(zmq_errno()));
            exit(1);
        }
        ++*port; /* another process's: try the next */
    }
    producer_t p = {ctx, (*port)++, s};
    pthread_t th;
    pthread_create(&th, NULL, produce, &p);
    if (bare) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        while (r.got < s->n) {
            zmq_msg_recv(&m, pull, 0);
            take(&r, zmq_msg_data(&m), zmq_msg_size(&m), NULL);
        }
        zmq_msg_close(&m);
        zmq_close(pull);
    } else {
        /* As the daemon's loop: its turns timed, the drains charged to
         * ingest (looptime.h), which costs two clock reads a drain. */
        uv_loop_t loop;
        uv_loop_init(&loop);
        ens_looptime_configure(&loop);
        ens_looptime_t *lt = ens_looptime_new(&loop);
        ens_zsock_t *z = ens_zsock_new(&loop, pull, on_message, &r, 1024);
        if (!z || !lt) {
            fprintf(stderr, "bench: cannot poll the socket\n");
            exit(1);
        }
        ens_zsock_set_section(z, ENS_LOOP_INGEST);
        uv_run(&loop, UV_RUN_DEFAULT);
        ens_looptime_close(lt);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    pthread_join(th, NULL);
    ens_task_t *t = ens_tasks_get(r.tasks, 0);
    if (!bare && (!t || ens_join_stats(t->join)->joined != s->events / 2)) {
        fprintf(stderr, "bench: %llu of %zu queries joined\n",
                t ? (unsigned long long)ens_join_stats(t->join)->joined : 0ULL, s->events / 2);
        exit(1);
    }
    ens_ingest_destroy(&r.in);
    ens_tasks_destroy(&r.tasks);
    *cpu = r.cpu1 - r.cpu0;
    return r.t1 - r.t0;
}

/* The best of 3 runs, seconds; in *cpu (if not NULL) the least CPU time of
 * the receiving thread. */
static double best_of(void *ctx, int *port, const stream_t *s, int bare, int with_selection,
                      double *cpu)
{
    double best = 1e300, least = 1e300;
    for (int r = 0; r < 3; r++) {
        worker_t w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
        pthread_t th;
        if (with_selection)
            pthread_create(&th, NULL, select_worker, &w);
        double used;
        double t = receive(ctx, port, s, bare, with_selection ? &w : NULL, &used);
        if (with_selection) {
            pthread_mutex_lock(&w.mu);
            w.done = 1;
            pthread_cond_signal(&w.cv);
            pthread_mutex_unlock(&w.mu);
            pthread_join(th, NULL);
        }
        best = t < best ? t : best;
        least = used < least ? used : least;
    }
    if (cpu)
        *cpu = least;
    return best;
}

/* The ceilings without sockets: the messages of s from memory through
 * ens_ingest_message, or (decode_only) through the decoder alone. Best of
 * 3, seconds. */
static double in_memory(const stream_t *s, int decode_only)
{
    static ens_config_t c;
    ens_config_defaults(&c);
    c.max_message_bytes = 1 << 24;
    ens_proto_limits_t lim;
    ens_proto_limits_default(&lim);
    lim.max_message_bytes = c.max_message_bytes;
    double best = 1e300;
    for (int r = 0; r < 3; r++) {
        ens_tasks_t *tasks = ens_tasks_new(&c);
        ens_ingest_t *in = ens_ingest_new(tasks, &c);
        ens_decoded_t *d = ens_decoded_new();
        size_t events = 0;
        double t0 = ens_mono();
        for (size_t i = 0; i < s->n; i++) {
            ens_reject_t why;
            if (decode_only && ens_proto_decode_into(d, s->msg[i], s->len[i], &lim, &why) == 0)
                events += ens_decoded_count(d);
            else if (!decode_only)
                ens_ingest_message(in, s->msg[i], s->len[i], ens_now(), ens_mono());
        }
        double t = ens_mono() - t0;
        if (decode_only && events != s->events) {
            fprintf(stderr, "bench: %zu of %zu events decoded\n", events, s->events);
            exit(1);
        }
        ens_decoded_destroy(&d);
        ens_ingest_destroy(&in);
        ens_tasks_destroy(&tasks);
        best = t < best ? t : best;
    }
    return best;
}

/* `ingest N PHASE`: one phase alone, with N queries (best of 3), for a
 * profiler to see nothing else: unbatched (through ingest), bare (libzmq
 * only) or memory (ingest, no socket), all unbatched. */
static int one_phase(void *ctx, int port, size_t queries, const char *phase)
{
    int bare = strcmp(phase, "bare") == 0, memory = strcmp(phase, "memory") == 0;
    if (!bare && !memory && strcmp(phase, "unbatched") != 0) {
        fprintf(stderr, "usage: ingest [QUERIES [unbatched|bare|memory]]\n");
        return 2;
    }
    stream_t one = make_stream(queries, 1);
    double cpu = 0;
    double t = memory ? in_memory(&one, 0) : best_of(ctx, &port, &one, bare, 0, &cpu);
    printf("%s: %.0f messages/s", phase, (double)one.n / t);
    if (!memory)
        printf(", receiving thread %.0f ns CPU per message", 1e9 * cpu / (double)one.n);
    printf("\n");
    stream_free(&one);
    zmq_ctx_term(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    size_t queries = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    ens_log_init(ENS_LOG_WARNING, 1);
    void *ctx = zmq_ctx_new();
    /* Apart for runs started together or one after the other. */
    int port = 23000 + (int)(((long long)getpid() * 97 + (long long)(ens_mono() * 1000)) % 20000);
    if (argc > 2)
        return one_phase(ctx, port, queries, argv[2]);
    stream_t one = make_stream(queries, 1), hundred = make_stream(queries, 100);
    printf("%zu queries: 5 answers and a label each (%zu events), TCP loopback\n", queries,
           one.events);

    double bare_cpu, daemon1_cpu;
    double bare = best_of(ctx, &port, &one, 1, 0, &bare_cpu);
    double daemon1 = best_of(ctx, &port, &one, 0, 0, &daemon1_cpu);
    double bare100 = best_of(ctx, &port, &hundred, 1, 0, NULL);
    double daemon100 = best_of(ctx, &port, &hundred, 0, 0, NULL);
    double selecting = best_of(ctx, &port, &hundred, 0, 1, NULL);
    double mem1 = in_memory(&one, 0), mem100 = in_memory(&hundred, 0);
    double dec1 = in_memory(&one, 1), dec100 = in_memory(&hundred, 1);
    double ev = (double)one.events;
    printf("%-34s %12.0f messages/s\n", "bare libzmq PULL, unbatched", (double)one.n / bare);
    printf("%-34s %12.0f events/s\n", "ensembled ingest, unbatched", ev / daemon1);
    printf("%-34s %12.0f ns\n", "  receiving thread CPU per message",
           1e9 * bare_cpu / (double)one.n);
    printf("%-34s %12.0f ns\n", "  the same through ingest", 1e9 * daemon1_cpu / (double)one.n);
    printf("%-34s %12.0f events/s\n", "bare libzmq PULL, batches of 100", ev / bare100);
    printf("%-34s %12.0f events/s\n", "ensembled ingest, batches of 100", ev / daemon100);
    printf("%-34s %12.0f events/s\n", "  with a selection every second", ev / selecting);
    printf("%-34s %12.0f events/s\n", "no socket: ingest, unbatched", ev / mem1);
    printf("%-34s %12.0f events/s\n", "no socket: ingest, batches of 100", ev / mem100);
    printf("%-34s %12.0f events/s\n", "no socket: decode only, unbatched", ev / dec1);
    printf("%-34s %12.0f events/s\n", "no socket: decode only, batches", ev / dec100);
    printf("ratio_to_libzmq_unbatched: %.2f\n", (ev / daemon1) / ((double)one.n / bare));
    printf("events_per_s_batched: %.0f\n", ev / daemon100);
    printf("ratio_with_selection: %.2f\n", daemon100 / selecting);
    stream_free(&one);
    stream_free(&hundred);
    zmq_ctx_term(ctx);
    return 0;
}
