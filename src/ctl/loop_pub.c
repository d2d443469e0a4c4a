/* loop_pub.c - simulate --closed-loop: the publications ensembled sends.
 * Reads each body from the SUB socket into the simulator: the ensemble the
 * routers follow, the published exploration rate and pool, and what each
 * scheduled change has come to (picked, left, retired) as of that body.
 *
 * Bodies are decoded (and validated) by ens_body_decode; one that does not
 * decode is reported and ignored, as is one whose version is not newer than
 * the last one taken (the last value cache resending it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "ensembled/body.h"
#include "ensembled/xalloc.h"
#include "loop.h"

static int str_is(ens_str_t a, const char *s)
{
    return a.len == strlen(s) && memcmp(a.ptr, s, a.len) == 0;
}

static int model_of(const ctl_loop_sim_t *s, ens_str_t name)
{
    for (size_t m = 0; m < s->nmodels; m++)
        if (str_is(name, s->models[m].name))
            return (int)m;
    return -1;
}

/* Whether the body says the model of a --silence is retired. */
static int retired(const ens_body_t *b, const char *model)
{
    for (size_t m = 0; m < b->nwindow; m++)
        if (str_is(b->window[m].model, model))
            return b->window[m].excluded == ENS_EXCL_RETIRED;
    return 0;
}

/* What the outcome of each change is, seen at this publication. */
static void track_changes(ctl_loop_sim_t *s, const ens_body_t *b)
{
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
        if (retired(b, ch->model) && ch->retired_q == SIZE_MAX) {
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

/* Whether the set of names in b's models differs from the current
 * ensemble's (a replacement), counted from the second publication on. */
static int replaces(const ctl_loop_sim_t *s, const ens_body_t *b)
{
    int same = s->publications > 1 && s->ens_n == b->nmodels;
    for (size_t i = 0; same && i < b->nmodels; i++) {
        int found = 0;
        for (size_t k = 0; k < s->ens_n && !found; k++)
            found = str_is(b->models[i], s->ens_names[k]);
        same = found;
    }
    return s->publications > 1 && !same;
}

/* Takes the published ensemble as the current one. */
static void take_ensemble(ctl_loop_sim_t *s, const ens_body_t *b)
{
    ctl_loop_free_ensemble(s);
    s->ens_n = b->nmodels;
    s->ens_names = ens_xcalloc(s->ens_n + 1, sizeof(char *));
    for (size_t m = 0; m < s->nmodels; m++)
        s->models[m].in_ens = s->models[m].in_explore = 0;
    for (size_t f = 0; f < s->nfam; f++)
        s->fam[f].in_ensemble = 0;
    s->ens_size = 0;
    for (size_t i = 0; i < b->nmodels; i++) {
        s->ens_names[i] = ens_xstrndup(b->models[i].ptr, b->models[i].len);
        int m = model_of(s, b->models[i]);
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
static void take_body(ctl_loop_sim_t *s, const ens_body_t *b)
{
    if (s->have_ens && b->version <= s->version)
        return; /* the last value cache's resend of a body already seen */
    s->have_ens = 1;
    s->version = b->version;
    s->publications++;
    if (s->publications == 1)
        s->first_pub_q = s->sent;
    double rate = b->explore_rate;
    s->pub_rate = rate >= 0 && rate <= 1 ? rate : 0;
    s->extra_published = b->explore_extra;
    s->replacements += (size_t)replaces(s, b);
    take_ensemble(s, b);
    s->pool_size = b->nexplore;
    for (size_t i = 0; i < b->nexplore; i++) {
        int m = model_of(s, b->explore_models[i]);
        if (m >= 0)
            s->models[m].in_explore = 1;
    }
    track_changes(s, b);
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
            ens_body_t *b = NULL;
            char err[256];
            if (ens_body_decode(zmq_msg_data(&body), zmq_msg_size(&body), &b, err, sizeof(err)) ==
                0)
                take_body(s, b);
            else
                ctl_error("malformed publication ignored: %s", err);
            ens_body_destroy(&b);
        }
        zmq_msg_close(&t);
        zmq_msg_close(&body);
    }
}
