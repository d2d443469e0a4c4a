/* daemon.h - ensembled's state: the loop, its sockets and the tasks.
 *
 * Everything here lives on the loop thread. The only work done elsewhere is
 * selection (recompute.c), which runs on the libuv thread pool over an
 * immutable snapshot and hands its result back to the loop thread.
 *
 * Module map: daemon.c (start, stop, reload, timers, signals), ingest.c
 * (decode, sample, apply to tasks), task.c (per-task window and join),
 * recompute.c (selection off the loop), publish.c (XPUB and last-value
 * cache), control.c (REP commands).
 */
#ifndef ENSEMBLED_DAEMON_H
#define ENSEMBLED_DAEMON_H

#include <msgpack.h>
#include <stdint.h>
#include <uthash.h>
#include <uv.h>

#include "config.h"
#include "ensembled/join.h"
#include "ensembled/protocol.h"
#include "ensembled/window.h"
#include "log.h"
#include "zsock.h"

#define ENS_VERSION "0.1.0"

/* Drops that happen after decoding, when events are applied. */
#define ENS_DROP_MAP(XX)                                                                           \
    XX(TOO_MANY_TASKS, "too_many_tasks")                                                           \
    XX(TOO_MANY_MODELS, "too_many_models")                                                         \
    XX(TOO_MANY_LABELS, "too_many_labels")

typedef enum {
#define ENS__DROP_ENUM(id, name) ENS_DROP_##id,
    ENS_DROP_MAP(ENS__DROP_ENUM)
#undef ENS__DROP_ENUM
        ENS_DROP_COUNT
} ens_drop_t;

typedef struct ens_daemon_s ens_daemon_t;

typedef struct ens_task_s {
    char *name;                  /* owned */
    ens_daemon_t *d;             /* the owner */
    ens_task_conf_t conf;        /* effective settings */
    ens_window_t *window;        /* joined rows */
    ens_join_t *join;            /* pending queries */
    uint64_t version;            /* of the last publication */
    uint64_t rows_since_publish; /* joined since the last recompute started */
    uint64_t sampled_out;        /* events left out by ingest.sample_rate */
    int busy;                    /* a recompute is running */
    int again;                   /* another was asked for meanwhile */
    char **pub_models;           /* published set, by name (owned) */
    size_t pub_n;
    msgpack_sbuffer body;  /* last published body (empty: none yet) */
    double last_select_at; /* wall time the last selection finished */
    double last_select_ms; /* how long it took */
    double explore_extra;  /* exploration's extra model queries per query */
    double *last_seen;     /* per model: arrival of its latest prediction */
    double *last_row;      /* per model: time of its newest joined row */
    UT_hash_handle hh;
} ens_task_t;

struct ens_daemon_s {
    uv_loop_t *loop;
    char conf_path[4096];
    ens_config_t conf;
    ens_proto_limits_t limits;
    void *zctx;
    ens_zsock_t *ingest;
    ens_zsock_t *subs[ENS_CONF_MAX_CONNECT];
    ens_zsock_t *pub;
    ens_zsock_t *ctl;
    struct ens_state_s *state;       /* persistence (state.c), NULL without state.dir */
    struct ens_security_s *security; /* CURVE (security.c), NULL when off */
    ens_task_t *tasks;               /* uthash by name */
    size_t ntasks;
    uv_timer_t tick;     /* 1 s: expiry and publish.interval */
    uv_timer_t watchdog; /* sd_notify WATCHDOG=1 */
    uv_signal_t sighup, sigterm, sigint;
    double started; /* wall time at start */
    double last_publish_round;
    int stopping;
    int handles_ready; /* timers and signals initialised */
    int inflight;      /* recomputes on the thread pool */
    int exit_code;
    /* counters */
    uint64_t messages_in;
    uint64_t events_in;
    uint64_t rejected[ENS_REJECT_COUNT];
    uint64_t dropped[ENS_DROP_COUNT];
    uint64_t published;
    ens_ratelimit_t rl_reject[ENS_REJECT_COUNT];
    ens_ratelimit_t rl_drop[ENS_DROP_COUNT];
};

/* Runs the daemon until SIGTERM/SIGINT; returns the exit code. */
int ens_daemon_run(const char *conf_path, int foreground, int discard_state);

/* Wall-clock seconds since the epoch. */
double ens_now(void);

const char *ens_drop_name(ens_drop_t r);

/* task.c */
ens_task_t *ens_task_find(ens_daemon_t *d, const char *name, size_t len);
/* Creates the task; NULL when ingest.max_tasks tasks exist. */
ens_task_t *ens_task_create(ens_daemon_t *d, const char *name, size_t len);
void ens_task_destroy_all(ens_daemon_t *d);
/* Re-reads the task's settings after a reload. */
void ens_task_apply_conf(ens_task_t *t);
/* Expires old pending queries and window rows. */
void ens_task_tick(ens_task_t *t, double now);

/* ingest.c: decodes and applies one message. */
void ens_ingest_message(ens_daemon_t *d, const char *buf, size_t len);

/* recompute.c: starts a selection unless one runs (then it runs after). */
void ens_recompute_start(ens_task_t *t);

/* publish.c */
typedef struct {
    double fano;       /* Fano's lower bound on the error of any combiner of the set */
    double floor_pool; /* copula error floor of the whole pool */
    double floor_set;  /* copula error floor of the ensemble's models */
    double rho_pool;   /* mean latent correlation of correctness in the pool */
} ens_bounds_t;
struct ens_data_s;
struct ens_combiner_s;
/* Everything a publication carries (publish.c encodes it). */
typedef struct {
    const struct ens_data_s *pool;     /* the eligible models the selection saw */
    const struct ens_data_s *snap;     /* the whole window */
    const ens_selection_t *sel;        /* indices into pool */
    const struct ens_combiner_s *comb; /* fitted on pool */
    const double *acc;                 /* combiner, majority vote, best single, in sample */
    const ens_bounds_t *bounds;
    const char *reason;          /* why this set */
    int replaced;                /* it replaced the previous set */
    const size_t *coverage;      /* per snap model */
    const double *row_age;       /* per snap model, -1: no row */
    const char *const *excluded; /* per snap model: reason, or NULL */
    double explore_rate;
} ens_pub_t;
/* Encodes a publication into the task's body, bumps its version and
 * publishes it. */
void ens__publish_body(ens_task_t *t, const ens_pub_t *p);
int ens_publish_open(ens_daemon_t *d, char *err, size_t errlen);
/* Publishes the task's current body. */
void ens_publish_task(ens_task_t *t);

/* control.c */
int ens_control_open(ens_daemon_t *d, char *err, size_t errlen);

#endif
