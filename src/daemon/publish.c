/* publish.c - see publish.h. */
#include "publish.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ensembled/body.h"
#include "ensembled/xalloc.h"
#include "log.h"
#include "zsock.h"

/* "ensemble." + a task name of at most ENS_MAX_NAME bytes + NUL. */
#define TOPIC_MAX (sizeof(ENS_TOPIC_PREFIX) + ENS_MAX_NAME)

typedef struct {
    uint64_t version;
    char *body; /* last body (owned) */
    size_t size;
    ens_str_t *models; /* the published set, pointing into names */
    char *names;
    size_t nmodels;
    double explore_extra; /* exploration's extra model queries per query */
} slot_t;

struct ens_publish_s {
    ens_zsock_t *z; /* NULL: offline */
    const ens_tasks_t *tasks;
    ens_publish_hooks_t hooks;
    slot_t *slots; /* by task id */
    size_t nslots;
    uint64_t sent;   /* new publications sent */
    uint64_t resent; /* last-value-cache bodies sent again to a new subscription */
    uint64_t missed; /* sends some subscriber's full queue did not take */
    ens_ratelimit_t rl_missed;
};

static slot_t *slot(ens_publish_t *pub, uint32_t id)
{
    pub->slots = ens_xgrow_zeroed(pub->slots, &pub->nslots, (size_t)id + 1, sizeof(slot_t));
    return &pub->slots[id];
}

static const slot_t *cslot(const ens_publish_t *pub, const ens_task_t *t)
{
    static const slot_t none;
    return t->id < pub->nslots ? &pub->slots[t->id] : &none;
}

static int send_frames(void *sock, const char *topic, size_t n, const slot_t *s)
{
    if (zmq_send(sock, topic, n, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    return zmq_send(sock, s->body, s->size, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

/* Sends topic + body without blocking: a subscriber whose queue is full
 * (publish.max_queued: it does not read) misses the message instead of
 * stalling the loop or growing its queue. The socket refuses a message
 * some matching subscriber cannot take (ZMQ_XPUB_NODROP), which is how a
 * miss is counted; then the message goes out again, dropped for those
 * subscribers only. Counts a send in *count. */
static void send_task(ens_publish_t *pub, const ens_task_t *t, uint64_t *count)
{
    const slot_t *s = cslot(pub, t);
    if (!pub->z || s->size == 0)
        return;
    void *sock = ens_zsock_socket(pub->z);
    char topic[TOPIC_MAX];
    size_t n = ens_topic(t->name, t->len, topic, sizeof(topic));
    if (n > sizeof(topic))
        return; /* task names are at most ENS_MAX_NAME bytes */
    int rc = send_frames(sock, topic, n, s);
    if (rc < 0 && zmq_errno() == EAGAIN) {
        int lossy = 0, nodrop = 1;
        pub->missed++;
        char version[32];
        snprintf(version, sizeof(version), "%llu", (unsigned long long)s->version);
        ens_logf_limited(
            &pub->rl_missed, ENS_LOG_WARNING,
            ENS_LOG_FIELDS({"task", t->name}, {"reason", "subscriber_full"}, {"version", version}),
            "publish: a subscriber's queue is full (publish.max_queued): it misses "
            "ensemble.%s version %llu",
            t->name, (unsigned long long)s->version);
        zmq_setsockopt(sock, ZMQ_XPUB_NODROP, &lossy, sizeof(lossy));
        rc = send_frames(sock, topic, n, s);
        zmq_setsockopt(sock, ZMQ_XPUB_NODROP, &nodrop, sizeof(nodrop));
    }
    if (rc < 0)
        ENS_LOG(DEBUG, "publish: ensemble.%s not sent: %s", t->name, zmq_strerror(zmq_errno()));
    else
        (*count)++;
}

/* A (un)subscription: 1 or 0, then the topic prefix. */
static void on_subscription(void *ud, ens_zsock_t *z, zmq_msg_t *frames, size_t n)
{
    (void)z;
    ens_publish_t *pub = ud;
    const char *p = zmq_msg_data(&frames[0]);
    size_t len = zmq_msg_size(&frames[0]);
    if (n != 1 || len < 1 || p[0] != 1)
        return;
    const char *prefix = p + 1;
    size_t plen = len - 1;
    for (uint32_t i = 0; i < ens_tasks_count(pub->tasks); i++) {
        const ens_task_t *t = ens_tasks_get(pub->tasks, i);
        char topic[TOPIC_MAX];
        size_t tlen = ens_topic(t->name, t->len, topic, sizeof(topic));
        if (tlen <= sizeof(topic) && plen <= tlen && memcmp(prefix, topic, plen) == 0)
            send_task(pub, t, &pub->resent);
    }
}

ens_publish_t *ens_publish_new(const ens_tasks_t *tasks, const ens_publish_hooks_t *hooks)
{
    ens_publish_t *pub = ens_xcalloc(1, sizeof(*pub));
    pub->tasks = tasks;
    pub->hooks = *hooks;
    return pub;
}

void ens_publish_attach(ens_publish_t *pub, uv_loop_t *loop, void *sock)
{
    pub->z = ens_zsock_new(loop, sock, on_subscription, pub, 256);
}

void ens_publish_close(ens_publish_t *pub)
{
    if (!pub)
        return;
    ens_zsock_close(pub->z);
    pub->z = NULL;
}

void ens_publish_destroy(ens_publish_t **pp)
{
    ens_publish_t *pub = *pp;
    if (!pub)
        return;
    ens_publish_close(pub);
    for (size_t i = 0; i < pub->nslots; i++) {
        free(pub->slots[i].body);
        free(pub->slots[i].models);
        free(pub->slots[i].names);
    }
    free(pub->slots);
    free(pub);
    *pp = NULL;
}

/* Keeps the published set by name: the next selection's hysteresis
 * compares against it. */
static void keep_models(slot_t *s, const ens_body_t *b)
{
    size_t bytes = 0, off = 0;
    for (size_t i = 0; i < b->nmodels; i++)
        bytes += b->models[i].len;
    free(s->models);
    free(s->names);
    s->models = ens_xcalloc(b->nmodels + 1, sizeof(ens_str_t));
    s->names = ens_xmalloc(bytes + 1);
    for (size_t i = 0; i < b->nmodels; i++) {
        memcpy(s->names + off, b->models[i].ptr, b->models[i].len);
        s->models[i].ptr = s->names + off;
        s->models[i].len = b->models[i].len;
        off += b->models[i].len;
    }
    s->nmodels = b->nmodels;
    s->explore_extra = b->explore_extra;
}

void ens_publish_result(ens_publish_t *pub, const ens_task_t *t, const ens_pipeline_t *p, double ts)
{
    slot_t *s = slot(pub, t->id);
    ens_body_t b = *ens_pipeline_body(p);
    b.task.ptr = t->name;
    b.task.len = t->len;
    b.version = ++s->version;
    b.ts = ts;
    b.normalize.ptr = ens_norm_name(t->conf.normalize);
    b.normalize.len = strlen(b.normalize.ptr);
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_body_encode(&b, &w);
    free(s->body);
    s->body = ens_mpw_take(&w, &s->size);
    keep_models(s, &b);
    if (b.replaced)
        ENS_LOG(INFO, "task %s: new ensemble of %zu models (%s)", t->name, b.nmodels,
                ens_reason_name(b.reason));
    if (pub->hooks.published)
        pub->hooks.published(pub->hooks.ud, t, s->version);
    send_task(pub, t, &pub->sent);
    /* A send outside the XPUB's own callback may swallow its edge. */
    if (pub->z)
        ens_zsock_kick(pub->z);
}

void ens_publish_restore_version(ens_publish_t *pub, const ens_task_t *t, uint64_t version)
{
    slot_t *s = slot(pub, t->id);
    if (version > s->version)
        s->version = version;
}

uint64_t ens_publish_version(const ens_publish_t *pub, const ens_task_t *t)
{
    return cslot(pub, t)->version;
}

const char *ens_publish_body(const ens_publish_t *pub, const ens_task_t *t, size_t *size)
{
    const slot_t *s = cslot(pub, t);
    *size = s->size;
    return s->body;
}

void ens_publish_models(const ens_publish_t *pub, const ens_task_t *t, const ens_str_t **names,
                        size_t *n)
{
    const slot_t *s = cslot(pub, t);
    *names = s->models;
    *n = s->nmodels;
}

void ens_publish_status(const ens_publish_t *pub, ens_mpw_t *w)
{
    ens_mpw_cstr(w, "published");
    ens_mpw_uint(w, pub->sent);
    ens_mpw_cstr(w, "cache_resends");
    ens_mpw_uint(w, pub->resent);
    ens_mpw_cstr(w, "subscriber_drops");
    ens_mpw_uint(w, pub->missed);
}

void ens_publish_task_status(const ens_publish_t *pub, const ens_task_t *t, ens_mpw_t *w)
{
    const slot_t *s = cslot(pub, t);
    ens_mpw_cstr(w, "version");
    ens_mpw_uint(w, s->version);
    ens_mpw_cstr(w, "explore_extra_queries_per_query");
    ens_mpw_double(w, s->explore_extra);
    ens_mpw_cstr(w, "ensemble");
    ens_mpw_array_begin(w);
    for (size_t i = 0; i < s->nmodels; i++)
        ens_mpw_str(w, s->models[i].ptr, s->models[i].len);
    ens_mpw_array_end(w);
}
