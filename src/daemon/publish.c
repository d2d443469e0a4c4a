/* publish.c - the XPUB socket, ensemble bodies and the last-value cache.
 *
 * Each publication is two frames: the topic "ensemble.<task>" and a
 * MessagePack map (docs/protocol.md). The socket runs with ZMQ_XPUB_VERBOSE
 * so every subscription reaches us, even a repeated one; on each we resend
 * the latest body of every task whose topic the subscription prefix
 * matches, so a router that starts late never waits a whole period.
 */
#include <math.h>
#include <string.h>

#include "daemon.h"
#include "ensembled/combine.h"
#include "ensembled/xalloc.h"
#include "security.h"
#include "state.h"

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_label(msgpack_packer *pk, const ens_data_t *d, uint8_t x)
{
    if (x == ENS_SYM_MISSING)
        msgpack_pack_nil(pk);
    else if (x == ENS_SYM_ABSTAIN)
        pack_str(pk, "?");
    else
        pack_str(pk, d->label_names[x]);
}

typedef struct {
    msgpack_packer *pk;
    const ens_data_t *d;
    ens_comb_kind_t kind;
    size_t count; /* entries packed (first pass: counted only) */
    int counting;
} table_ctx_t;

/* One decision-table entry: [key..., decision]. Pattern keys hold class
 * indices (-1 abstained, -2 not asked); table keys hold labels ("?", nil). */
static void pack_entry(void *ud, const uint8_t *key, size_t k, unsigned decision)
{
    table_ctx_t *c = ud;
    c->count++;
    if (c->counting)
        return;
    msgpack_pack_array(c->pk, k + 1);
    for (size_t i = 0; i < k; i++) {
        if (c->kind == ENS_COMB_PATTERN)
            msgpack_pack_int(c->pk, key[i] == ENS_SYM_ABSTAIN   ? -1
                                    : key[i] == ENS_SYM_MISSING ? -2
                                                                : (int)key[i]);
        else
            pack_label(c->pk, c->d, key[i]);
    }
    if (c->kind == ENS_COMB_PATTERN)
        msgpack_pack_unsigned_int(c->pk, decision);
    else
        pack_label(c->pk, c->d, (uint8_t)decision);
}

static void pack_combiner(msgpack_packer *pk, const ens_data_t *d, const ens_selection_t *sel,
                          const ens_combiner_t *comb)
{
    ens_comb_kind_t kind = ens_combiner_kind(comb);
    msgpack_pack_map(pk, 3);
    pack_str(pk, "kind");
    pack_str(pk, ens_comb_name(kind));
    pack_str(pk, "weights");
    msgpack_pack_array(pk, sel->n);
    for (size_t i = 0; i < sel->n; i++)
        msgpack_pack_double(pk, ens_combiner_weight(comb, i));
    pack_str(pk, "table");
    table_ctx_t c = {pk, d, kind, 0, 1};
    ens_combiner_foreach(comb, pack_entry, &c);
    msgpack_pack_array(pk, c.count);
    c.counting = 0;
    ens_combiner_foreach(comb, pack_entry, &c);
}

static void pack_steps(msgpack_packer *pk, const ens_data_t *d, const ens_selection_t *sel)
{
    msgpack_pack_array(pk, sel->n);
    for (size_t i = 0; i < sel->n; i++) {
        msgpack_pack_map(pk, 4);
        pack_str(pk, "model");
        pack_str(pk, d->model_names[sel->models[i]]);
        pack_str(pk, "mi_bits");
        msgpack_pack_double(pk, sel->mi_bits[i]);
        pack_str(pk, "gain_bits");
        msgpack_pack_double(pk, sel->gain_bits[i]);
        pack_str(pk, "rows");
        msgpack_pack_uint64(pk, sel->rows[i]);
    }
}

static void pack_double_or_nil(msgpack_packer *pk, double v)
{
    if (v == v)
        msgpack_pack_double(pk, v);
    else
        msgpack_pack_nil(pk);
}

/* Models routers ask on exploration queries: every model of the window
 * but the retired ones. Models short of select.min_rows are included: they
 * can only gain rows through exploration. */
static int explored(const ens_pub_t *p, size_t m)
{
    return !p->excluded[m] || strncmp(p->excluded[m], "retired", 7) != 0;
}

/* Exploration's cost: extra model queries per query over asking the
 * ensemble alone. */
static double explore_cost(const ens_pub_t *p)
{
    size_t n = 0;
    for (size_t m = 0; m < p->snap->nmodels; m++)
        n += explored(p, m);
    return p->explore_rate * (double)(n > p->sel->n ? n - p->sel->n : 0);
}

/* The exploration policy routers apply (docs/protocol.md): on a query whose
 * hash falls below the rate, ask every model of `models` (and any model the
 * router serves that the daemon has not seen yet). */
static void pack_explore(msgpack_packer *pk, const ens_pub_t *p)
{
    size_t n = 0;
    for (size_t m = 0; m < p->snap->nmodels; m++)
        n += explored(p, m);
    msgpack_pack_map(pk, 4);
    pack_str(pk, "rate");
    msgpack_pack_double(pk, p->explore_rate);
    pack_str(pk, "rule");
    pack_str(pk, "xxh3_64(task + 0x00 + key, seed 1) < rate * 2^64; key: 's' + query "
                 "bytes, or 'u' + the query as 8 big-endian bytes");
    pack_str(pk, "models");
    msgpack_pack_array(pk, n);
    for (size_t m = 0; m < p->snap->nmodels; m++)
        if (explored(p, m))
            pack_str(pk, p->snap->model_names[m]);
    pack_str(pk, "extra_queries_per_query");
    msgpack_pack_double(pk, explore_cost(p));
}

/* Per model of the window: rows, age of its newest row, and why it is out
 * of the pool if it is. */
static void pack_coverage(msgpack_packer *pk, const ens_pub_t *p)
{
    const ens_data_t *d = p->snap;
    size_t nexcl = 0;
    msgpack_pack_map(pk, d->nmodels);
    for (size_t m = 0; m < d->nmodels; m++) {
        pack_str(pk, d->model_names[m]);
        msgpack_pack_uint64(pk, p->coverage[m]);
        nexcl += p->excluded[m] != NULL;
    }
    pack_str(pk, "freshness");
    msgpack_pack_map(pk, d->nmodels);
    for (size_t m = 0; m < d->nmodels; m++) {
        pack_str(pk, d->model_names[m]);
        pack_double_or_nil(pk, p->row_age[m] >= 0 ? p->row_age[m] : NAN);
    }
    pack_str(pk, "excluded");
    msgpack_pack_map(pk, nexcl);
    for (size_t m = 0; m < d->nmodels; m++) {
        if (!p->excluded[m])
            continue;
        pack_str(pk, d->model_names[m]);
        pack_str(pk, p->excluded[m]);
    }
}

static void pack_header(msgpack_packer *pk, const ens_task_t *t, const ens_pub_t *p)
{
    pack_str(pk, "task");
    pack_str(pk, t->name);
    pack_str(pk, "version");
    msgpack_pack_uint64(pk, t->version);
    pack_str(pk, "ts");
    msgpack_pack_double(pk, ens_now());
    pack_str(pk, "strategy");
    pack_str(pk, ens_strategy_name(t->conf.strategy));
    pack_str(pk, "estimator");
    pack_str(pk, ens_estimator_name(t->conf.estimator));
    pack_str(pk, "budget");
    msgpack_pack_uint64(pk, t->conf.budget);
    pack_str(pk, "models");
    msgpack_pack_array(pk, p->sel->n);
    for (size_t i = 0; i < p->sel->n; i++)
        pack_str(pk, p->pool->model_names[p->sel->models[i]]);
    pack_str(pk, "steps");
    pack_steps(pk, p->pool, p->sel);
    pack_str(pk, "window_rows");
    msgpack_pack_uint64(pk, p->snap->nrows);
    pack_str(pk, "labels");
    msgpack_pack_array(pk, p->pool->nlabels);
    for (size_t l = 0; l < p->pool->nlabels; l++)
        pack_str(pk, p->pool->label_names[l]);
}

static void pack_figures(msgpack_packer *pk, const ens_pub_t *p)
{
    static const char *const acc_names[4] = {"combiner", "majority_vote", "best_single",
                                             "in_sample"};
    pack_str(pk, "accuracy");
    msgpack_pack_map(pk, 4);
    for (int i = 0; i < 4; i++) {
        pack_str(pk, acc_names[i]);
        pack_double_or_nil(pk, p->acc[i]);
    }
    pack_str(pk, "bounds");
    msgpack_pack_map(pk, 4);
    pack_str(pk, "fano_error_lower");
    pack_double_or_nil(pk, p->bounds->fano);
    pack_str(pk, "copula_error_floor");
    pack_double_or_nil(pk, p->bounds->floor_pool);
    pack_str(pk, "copula_error_floor_ensemble");
    pack_double_or_nil(pk, p->bounds->floor_set);
    pack_str(pk, "latent_correlation_mean");
    pack_double_or_nil(pk, p->bounds->rho_pool);
}

void ens__publish_body(ens_task_t *t, const ens_pub_t *p)
{
    msgpack_sbuffer_clear(&t->body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &t->body, msgpack_sbuffer_write);
    t->version++;
    ens_state_version(t->d, t);
    msgpack_pack_map(&pk, 19);
    pack_header(&pk, t, p); /* 10 entries */
    pack_str(&pk, "combiner");
    pack_combiner(&pk, p->pool, p->sel, p->comb);
    pack_figures(&pk, p); /* 2 entries */
    pack_str(&pk, "explore");
    pack_explore(&pk, p);
    pack_str(&pk, "coverage");
    pack_coverage(&pk, p); /* 3 entries: coverage, freshness, excluded */
    pack_str(&pk, "replaced");
    if (p->replaced)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    pack_str(&pk, "reason");
    pack_str(&pk, p->reason);

    for (size_t i = 0; i < t->pub_n; i++)
        free(t->pub_models[i]);
    free(t->pub_models);
    t->pub_models = ens_xcalloc(p->sel->n + 1, sizeof(char *));
    for (size_t i = 0; i < p->sel->n; i++) {
        const char *name = p->pool->model_names[p->sel->models[i]];
        t->pub_models[i] = ens_xstrndup(name, strlen(name));
    }
    t->pub_n = p->sel->n;
    t->explore_extra = explore_cost(p);
    ens_publish_task(t);
}

/* Sends topic + body without blocking: a slow subscriber loses messages at
 * its high-water mark instead of stalling the loop. */
static void send_task(ens_daemon_t *d, const ens_task_t *t)
{
    if (t->body.size == 0)
        return;
    void *s = ens_zsock_socket(d->pub);
    char topic[ENS_MAX_NAME + 16];
    int n = snprintf(topic, sizeof(topic), "ensemble.%s", t->name);
    if (zmq_send(s, topic, (size_t)n, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(s, t->body.data, t->body.size, ZMQ_DONTWAIT) < 0)
        ENS_LOG(DEBUG, "publish: %s not sent: %s", topic, zmq_strerror(zmq_errno()));
    else
        d->published++;
}

void ens_publish_task(ens_task_t *t)
{
    ens_daemon_t *d = t->d;
    send_task(d, t);
    /* A send outside the XPUB's own callback may swallow its edge. */
    ens_zsock_kick(d->pub);
}

/* A (un)subscription: 1 or 0, then the topic prefix. */
static void on_subscription(void *ud, ens_zsock_t *z, zmq_msg_t *frames, size_t n)
{
    (void)z;
    ens_daemon_t *d = ud;
    const char *p = zmq_msg_data(&frames[0]);
    size_t len = zmq_msg_size(&frames[0]);
    if (n != 1 || len < 1 || p[0] != 1)
        return;
    const char *prefix = p + 1;
    size_t plen = len - 1;
    ens_task_t *t, *tmp;
    HASH_ITER(hh, d->tasks, t, tmp)
    {
        char topic[ENS_MAX_NAME + 16];
        int tl = snprintf(topic, sizeof(topic), "ensemble.%s", t->name);
        if (plen <= (size_t)tl && memcmp(topic, prefix, plen) == 0)
            send_task(d, t);
    }
}

int ens_publish_open(ens_daemon_t *d, char *err, size_t errlen)
{
    void *s = zmq_socket(d->zctx, ZMQ_XPUB);
    ens_security_apply(d, s);
    int one = 1;
    zmq_setsockopt(s, ZMQ_XPUB_VERBOSE, &one, sizeof(one));
    if (zmq_bind(s, d->conf.publish_bind) < 0) {
        snprintf(err, errlen, "publish.bind %s: %s", d->conf.publish_bind,
                 zmq_strerror(zmq_errno()));
        zmq_close(s);
        return -1;
    }
    d->pub = ens_zsock_new(d->loop, s, on_subscription, d, 256);
    return d->pub ? 0 : -1;
}
