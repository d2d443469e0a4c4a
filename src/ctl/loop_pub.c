/* loop_pub.c - simulate --closed-loop: the publications ensembled sends.
 * Reads each body from the SUB socket into the simulator: the ensemble the
 * routers follow, the published exploration rate and pool, and what each
 * scheduled change has come to (picked, left, retired) as of that body.
 *
 * A body whose version is not newer than the last one taken (the last value
 * cache resending it) is ignored.
 */
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "ensembled/xalloc.h"
#include "loop.h"

static int str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

static int model_of(const ctl_loop_sim_t *s, const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return -1;
    for (size_t m = 0; m < s->nmodels; m++)
        if (str_eq(o, s->models[m].name))
            return (int)m;
    return -1;
}

static double num(const msgpack_object *o)
{
    if (!o)
        return NAN;
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
        return o->via.f64;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (double)o->via.u64;
    return NAN;
}

/* What the outcome of each change is, seen at this publication. */
static void track_changes(ctl_loop_sim_t *s, const msgpack_object *body)
{
    const msgpack_object *excl = ctl_map_get(body, "excluded");
    for (size_t c = 0; c < s->nch; c++) {
        ctl_loop_change_t *ch = &s->ch[c];
        if (s->sent <= ch->query)
            continue;
        if (ch->kind != CTL_CH_SILENCE) {
            if (ch->picked_q == SIZE_MAX && s->fam[ch->family].in_ensemble) {
                ch->picked_q = s->sent;
                ch->picked_version = (size_t)s->version;
            }
            continue;
        }
        int in = 0;
        for (size_t m = 0; m < s->nmodels; m++)
            in |= s->models[m].in_ens && strcmp(s->models[m].name, ch->model) == 0;
        if (!in && ch->left_q == SIZE_MAX) {
            ch->left_q = s->sent;
            ch->left_version = (size_t)s->version;
        }
        const msgpack_object *why = excl ? ctl_map_get(excl, ch->model) : NULL;
        if (why && why->type == MSGPACK_OBJECT_STR && why->via.str.size >= 7 &&
            memcmp(why->via.str.ptr, "retired", 7) == 0 && ch->retired_q == SIZE_MAX) {
            ch->retired_q = s->sent;
            ch->retired_version = (size_t)s->version;
        }
    }
}

void ctl_loop_free_ensemble(ctl_loop_sim_t *s)
{
    for (size_t i = 0; i < s->ens_n; i++)
        free(s->ens_names[i]);
    free(s->ens_names);
    s->ens_names = NULL;
    s->ens_n = 0;
}

/* Whether the set of names in models differs from the current ensemble's
 * (a replacement), counted from the second publication on. */
static int replaces(const ctl_loop_sim_t *s, const msgpack_object *models)
{
    int same = s->publications > 1 && s->ens_n == models->via.array.size;
    for (uint32_t i = 0; same && i < models->via.array.size; i++) {
        int found = 0;
        for (size_t k = 0; k < s->ens_n && !found; k++)
            found = str_eq(&models->via.array.ptr[i], s->ens_names[k]);
        same = found;
    }
    return s->publications > 1 && !same;
}

/* Takes the published ensemble (an array) as the current one. */
static void take_ensemble(ctl_loop_sim_t *s, const msgpack_object *models)
{
    ctl_loop_free_ensemble(s);
    s->ens_n = models->via.array.size;
    s->ens_names = ens_xcalloc(s->ens_n + 1, sizeof(char *));
    for (size_t m = 0; m < s->nmodels; m++)
        s->models[m].in_ens = s->models[m].in_explore = 0;
    for (size_t f = 0; f < s->nfam; f++)
        s->fam[f].in_ensemble = 0;
    s->ens_size = 0;
    for (uint32_t i = 0; i < models->via.array.size; i++) {
        const msgpack_object *o = &models->via.array.ptr[i];
        s->ens_names[i] = o->type == MSGPACK_OBJECT_STR
                              ? ens_xstrndup(o->via.str.ptr, o->via.str.size)
                              : ens_xstrndup("?", 1);
        int m = model_of(s, o);
        if (m >= 0 && !s->models[m].in_ens) {
            s->models[m].in_ens = 1;
            s->ens_size++;
            ctl_loop_family_t *f = &s->fam[s->models[m].family];
            f->in_ensemble = 1;
            if (f->first_in_q == SIZE_MAX)
                f->first_in_q = s->sent;
        }
    }
}

/* Takes a publication body: the ensemble, the exploration rate and pool. */
static void take_body(ctl_loop_sim_t *s, const msgpack_object *body)
{
    const msgpack_object *models = ctl_map_get(body, "models");
    const msgpack_object *explore = ctl_map_get(body, "explore");
    const msgpack_object *pool = explore ? ctl_map_get(explore, "models") : NULL;
    double version = num(ctl_map_get(body, "version"));
    if (!models || models->type != MSGPACK_OBJECT_ARRAY || !(version >= 0))
        return;
    if (s->have_ens && (uint64_t)version <= s->version)
        return; /* the last value cache's resend of a body already seen */
    s->have_ens = 1;
    s->version = (uint64_t)version;
    s->publications++;
    if (s->publications == 1)
        s->first_pub_q = s->sent;
    double rate = explore ? num(ctl_map_get(explore, "rate")) : 0;
    s->pub_rate = rate >= 0 && rate <= 1 ? rate : 0;
    s->extra_published = explore ? num(ctl_map_get(explore, "extra_queries_per_query")) : NAN;
    s->replacements += (size_t)replaces(s, models);
    take_ensemble(s, models);
    s->pool_size = 0;
    for (uint32_t i = 0; pool && pool->type == MSGPACK_OBJECT_ARRAY && i < pool->via.array.size;
         i++) {
        int m = model_of(s, &pool->via.array.ptr[i]);
        if (m >= 0)
            s->models[m].in_explore = 1;
        s->pool_size++;
    }
    track_changes(s, body);
}

int ctl_loop_drain(ctl_loop_sim_t *s, void *sub, long timeout_ms)
{
    for (;;) {
        zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, timeout_ms);
        if (n < 0)
            return zmq_errno() == EINTR ? 0 : -1;
        if (n == 0)
            return 0;
        timeout_ms = 0;
        zmq_msg_t t, body;
        zmq_msg_init(&t);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&t, sub, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&t) &&
            zmq_msg_recv(&body, sub, ZMQ_DONTWAIT) >= 0) {
            msgpack_zone zone;
            msgpack_zone_init(&zone, 8192);
            msgpack_object o;
            if (ctl_unpack(zmq_msg_data(&body), zmq_msg_size(&body), &zone, &o) == 0)
                take_body(s, &o);
            else
                ctl_error("malformed publication ignored");
            msgpack_zone_destroy(&zone);
        }
        zmq_msg_close(&t);
        zmq_msg_close(&body);
    }
}
