/* cmd_loop.c - ensemblectl simulate --closed-loop: a simulated fleet and the
 * routers in front of it, obeying the ensembles ensembled publishes.
 *
 * For each query the simulator draws the correctness of every model from the
 * Gaussian copula of sample.h (drawn per query, so that a family's accuracy
 * can change mid-run), decides with the published exploration rule whether
 * the query explores (docs/protocol.md, "How a router explores"), sends a
 * prediction event with the answers of the models it asked, and the query's
 * label `--label-delay` queries later. Between two queries it polls the
 * publish socket without blocking, so the next queries follow the newest
 * ensemble: the whole loop of docs/exploration.md on one machine.
 */
#include <getopt.h>
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#include <zmq.h>

#include "ctl.h"
#include "ensembled/rng.h"
#include "ensembled/sample.h"
#include "ensembled/xalloc.h"

static const char usage[] =
    "usage: ensemblectl simulate --closed-loop --families name:count:acc:rho,...\n"
    "         [--classes C] [--global-rho G] [--queries N] [--rate QPS]\n"
    "         [--label-delay QUERIES] [--ingest EP] [--publish EP] [--task T]\n"
    "         [--seed S] [--drift FAMILY:ACC@QUERY] [--add FAMILY:COUNT:ACC:RHO@QUERY]\n"
    "         [--silence MODEL@QUERY] [--explore-rate R] [--explore-models fleet|published]\n"
    "         [--report N] [--tail MS] [--server-key FILE --client-key FILE]\n"
    "A simulated fleet (Gaussian copula of correctness, as 'simulate') and routers\n"
    "that follow ensembled's published ensembles: each query asks the ensemble's\n"
    "models, or, on exploration queries (the published rule and rate), every model;\n"
    "before the first publication every model is asked. Predictions go to the\n"
    "ingest socket at once, labels QUERIES queries later (default 100).\n"
    "  --drift FAMILY:ACC@Q        the family's accuracy becomes ACC at query Q\n"
    "  --add FAMILY:COUNT:ACC:RHO@Q  a new family appears at query Q\n"
    "  --silence MODEL@Q           the model stops answering at query Q\n"
    "  --explore-rate R            override the published rate (default: obey it)\n"
    "  --explore-models fleet      exploration asks every model of the fleet (default;\n"
    "                              new models get measured); 'published': only the\n"
    "                              body's explore.models\n"
    "  --report N                  a progress line every N queries (default 1000, 0: none)\n"
    "  --tail MS                   keep listening MS ms after the last label (default 1000)\n"
    "The drift, add and silence options repeat. Prints progress lines, then one JSON\n"
    "summary line (first publication after each change that takes it into account).\n"
    "Defaults: --classes 2, --queries 20000, --rate 1000 (0: unpaced), --task default,\n"
    "--ingest tcp://127.0.0.1:5557, --publish tcp://127.0.0.1:5558, --seed 1.\n";

#define MAX_FAMILIES 64
#define MAX_CHANGES 32

typedef struct {
    char name[64];
    size_t count;
    double accuracy, rho;
    size_t born;       /* the query its models appear at */
    double tau;        /* Phi^-1(1 - accuracy) */
    int in_ensemble;   /* a model of it is in the current ensemble */
    size_t first_in_q; /* first query at which a model of it was in an ensemble (SIZE_MAX) */
} family_t;

typedef struct {
    char name[ENS_MAX_NAME + 1];
    size_t family;
    size_t silent_from; /* SIZE_MAX: answers throughout */
    int in_ens, in_explore;
} model_t;

enum { CH_DRIFT, CH_ADD, CH_SILENCE };

typedef struct {
    int kind;
    size_t query;
    size_t family; /* drift, add */
    double accuracy;
    char model[ENS_MAX_NAME + 1]; /* silence */
    /* outcome */
    size_t picked_q, picked_version;   /* drift, add: first ensemble holding it */
    size_t left_q, left_version;       /* silence: first ensemble without it */
    size_t retired_q, retired_version; /* silence: first body calling it retired */
} change_t;

typedef struct {
    family_t fam[MAX_FAMILIES];
    size_t nfam;
    model_t *models;
    size_t nmodels;
    change_t ch[MAX_CHANGES];
    size_t nch;
    size_t classes;
    double global_rho;
    /* the latest publication */
    int have_ens;
    uint64_t version;
    double pub_rate;
    size_t ens_size, pool_size;
    char **ens_names;
    size_t ens_n;
    double extra_published;
    size_t publications, first_pub_q;
    size_t replacements; /* publications whose set differs from the previous one */
    /* counters */
    size_t q;    /* the query being drawn (0-based) */
    size_t sent; /* queries sent: the clock of every figure */
    size_t label_delay;
    size_t labels;             /* label events sent */
    size_t explore_q, ens_q;   /* exploration queries, queries with an ensemble */
    size_t asked_with_ens;     /* model queries made on queries with an ensemble */
    size_t ens_size_sum;       /* sum of the ensemble size on those queries */
    size_t rep_explore, rep_q; /* since the last progress line */
} sim_t;

/* --- options ------------------------------------------------------------ */

static int find_family(const sim_t *s, const char *name)
{
    for (size_t f = 0; f < s->nfam; f++)
        if (strcmp(s->fam[f].name, name) == 0)
            return (int)f;
    return -1;
}

/* Splits "SPEC@Q": writes SPEC into buf, Q into *q. */
static int split_at(const char *opt, const char *arg, char *buf, size_t len, size_t *q)
{
    const char *at = strrchr(arg, '@');
    if (!at || at == arg || (size_t)(at - arg) >= len) {
        ctl_error("%s: '%s': expected SPEC@QUERY", opt, arg);
        return -1;
    }
    memcpy(buf, arg, (size_t)(at - arg));
    buf[at - arg] = '\0';
    return ctl_parse_size(opt, at + 1, 0, SIZE_MAX - 1, q);
}

static int add_change(sim_t *s, const change_t *c)
{
    if (s->nch >= MAX_CHANGES) {
        ctl_error("more than %d --drift/--add/--silence options", MAX_CHANGES);
        return -1;
    }
    s->ch[s->nch] = *c;
    s->ch[s->nch].picked_q = s->ch[s->nch].left_q = s->ch[s->nch].retired_q = SIZE_MAX;
    s->nch++;
    return 0;
}

static int add_families(sim_t *s, const char *spec, size_t born, const char *opt)
{
    ens_family_t fam[MAX_FAMILIES];
    char err[256];
    int n = ens_families_parse(spec, fam, MAX_FAMILIES, err, sizeof(err));
    if (n < 0) {
        ctl_error("%s: %s", opt, err);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (s->nfam >= MAX_FAMILIES || find_family(s, fam[i].name) >= 0) {
            ctl_error("%s: family '%s' is given twice (or more than %d families)", opt, fam[i].name,
                      MAX_FAMILIES);
            return -1;
        }
        family_t *f = &s->fam[s->nfam++];
        memset(f, 0, sizeof(*f));
        memcpy(f->name, fam[i].name, sizeof(f->name));
        f->name[sizeof(f->name) - 1] = '\0';
        f->count = fam[i].count;
        f->accuracy = fam[i].accuracy;
        f->rho = fam[i].rho;
        f->born = born;
        f->first_in_q = SIZE_MAX;
    }
    return n;
}

/* The models of every family, named <family>-<i> as 'simulate' names them. */
static int make_models(sim_t *s)
{
    size_t n = 0;
    for (size_t f = 0; f < s->nfam; f++) {
        if (!(s->fam[f].rho >= s->global_rho)) {
            ctl_error("family '%s': rho must be >= --global-rho", s->fam[f].name);
            return -1;
        }
        n += s->fam[f].count;
    }
    if (n > ENS_MAX_MODELS) {
        ctl_error("more than %d models", ENS_MAX_MODELS);
        return -1;
    }
    s->models = ens_xcalloc(n + 1, sizeof(model_t));
    for (size_t f = 0; f < s->nfam; f++) {
        s->fam[f].tau = ens_norm_quantile(1 - s->fam[f].accuracy);
        for (size_t i = 0; i < s->fam[f].count; i++) {
            model_t *m = &s->models[s->nmodels++];
            snprintf(m->name, sizeof(m->name), "%s-%zu", s->fam[f].name, i + 1);
            m->family = f;
            m->silent_from = SIZE_MAX;
        }
    }
    for (size_t c = 0; c < s->nch; c++) {
        if (s->ch[c].kind != CH_SILENCE)
            continue;
        size_t m = 0;
        while (m < s->nmodels && strcmp(s->models[m].name, s->ch[c].model) != 0)
            m++;
        if (m == s->nmodels) {
            ctl_error("--silence: no model '%s' in the fleet", s->ch[c].model);
            return -1;
        }
        s->models[m].silent_from = s->ch[c].query;
    }
    return 0;
}

/* --- the publication ------------------------------------------------------ */

static int str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

static int model_of(const sim_t *s, const msgpack_object *o)
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
static void track_changes(sim_t *s, const msgpack_object *body)
{
    const msgpack_object *excl = ctl_map_get(body, "excluded");
    for (size_t c = 0; c < s->nch; c++) {
        change_t *ch = &s->ch[c];
        if (s->sent <= ch->query)
            continue;
        if (ch->kind != CH_SILENCE) {
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

/* Takes a publication body: the ensemble, the exploration rate and pool. */
static void take_body(sim_t *s, const msgpack_object *body)
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
    int same = s->publications > 1 && s->ens_n == models->via.array.size;
    for (uint32_t i = 0; same && i < models->via.array.size; i++) {
        int found = 0;
        for (size_t k = 0; k < s->ens_n && !found; k++)
            found = str_eq(&models->via.array.ptr[i], s->ens_names[k]);
        same = found;
    }
    s->replacements += s->publications > 1 && !same;
    for (size_t i = 0; i < s->ens_n; i++)
        free(s->ens_names[i]);
    free(s->ens_names);
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
            family_t *f = &s->fam[s->models[m].family];
            f->in_ensemble = 1;
            if (f->first_in_q == SIZE_MAX)
                f->first_in_q = s->sent;
        }
    }
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

/* Reads every publication waiting on the SUB socket, waiting at most
 * timeout_ms for the first. Returns -1 on a socket error. */
static int drain(sim_t *s, void *sub, long timeout_ms)
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

/* --- the routers -------------------------------------------------------- */

/* docs/protocol.md: XXH3-64 with seed 1 of task || 0x00 || 'u' || the query
 * as 8 big-endian bytes, below rate * 2^64. */
static int explores(const char *task, uint64_t query, double rate)
{
    unsigned char buf[ENS_MAX_NAME + 16];
    size_t n = strlen(task);
    memcpy(buf, task, n);
    buf[n++] = 0;
    buf[n++] = 'u';
    for (int i = 7; i >= 0; i--)
        buf[n++] = (unsigned char)(query >> (8 * i));
    return (double)XXH3_64bits_withSeed(buf, n, 1) < rate * 18446744073709551616.0;
}

static void pack_str(msgpack_packer *pk, const char *str)
{
    msgpack_pack_str_with_body(pk, str, strlen(str));
}

static const char *label_name(size_t l, char *buf, size_t len)
{
    if (l < 26)
        snprintf(buf, len, "%c", (char)('A' + l));
    else
        snprintf(buf, len, "L%zu", l);
    return buf;
}

typedef struct {
    uint64_t query;
    uint8_t y;
    uint8_t sent; /* its prediction went out: the label follows */
} pending_t;

typedef struct {
    const char *task;
    double explore_override; /* < 0: obey the published rate */
    int explore_fleet;       /* exploration asks the whole fleet */
    size_t label_delay;
} router_t;

/* Draws query q's answers (every model's, whoever is asked, so that the
 * fleet's answers do not depend on the routing), picks the models to ask,
 * and packs the prediction event (if an asked model answered) into pk.
 * Returns the events packed (0 or 1). */
static int draw_query(sim_t *s, const router_t *r, ens_rng_t *rng, uint64_t qid, uint8_t *y,
                      double *factor, msgpack_packer *pk, uint8_t *ans)
{
    size_t q = s->q;
    *y = (uint8_t)ens_rng_below(rng, s->classes);
    double g = ens_rng_normal(rng), gl = sqrt(s->global_rho);
    for (size_t f = 0; f < s->nfam; f++)
        factor[f] = ens_rng_normal(rng);
    for (size_t m = 0; m < s->nmodels; m++) {
        const family_t *f = &s->fam[s->models[m].family];
        double z = gl * g + sqrt(f->rho - s->global_rho) * factor[s->models[m].family] +
                   sqrt(1 - f->rho) * ens_rng_normal(rng);
        size_t x = *y;
        if (z <= f->tau) {
            /* Uniform over the other classes, as ens_sample draws it. */
            x = ens_rng_below(rng, s->classes - 1);
            if (x >= *y)
                x++;
        }
        ans[m] = (uint8_t)x;
    }
    double rate = r->explore_override >= 0 ? r->explore_override : s->pub_rate;
    int explore = s->have_ens && explores(r->task, qid, rate);
    size_t nask = 0, nans = 0;
    for (size_t m = 0; m < s->nmodels; m++) {
        const model_t *mo = &s->models[m];
        int ask = q >= s->fam[mo->family].born &&
                  (!s->have_ens || mo->in_ens || (explore && (r->explore_fleet || mo->in_explore)));
        nask += (size_t)ask;
        if (!ask || q >= mo->silent_from)
            ans[m] = UINT8_MAX; /* not asked, or asked and silent */
        else
            nans++;
    }
    if (s->have_ens) {
        s->ens_q++;
        s->asked_with_ens += nask;
        s->ens_size_sum += s->ens_size;
        s->explore_q += (size_t)explore;
        s->rep_explore += (size_t)explore;
    }
    s->rep_q++;
    if (nans == 0)
        return 0;
    msgpack_pack_map(pk, 4);
    pack_str(pk, "kind");
    pack_str(pk, "prediction");
    pack_str(pk, "task");
    pack_str(pk, r->task);
    pack_str(pk, "query");
    msgpack_pack_uint64(pk, qid);
    pack_str(pk, "predictions");
    msgpack_pack_map(pk, (uint32_t)nans);
    char lb[16];
    for (size_t m = 0; m < s->nmodels; m++) {
        if (ans[m] == UINT8_MAX)
            continue;
        pack_str(pk, s->models[m].name);
        pack_str(pk, label_name(ans[m], lb, sizeof(lb)));
    }
    return 1;
}

static void pack_label(msgpack_packer *pk, const char *task, const pending_t *p)
{
    char lb[16];
    msgpack_pack_map(pk, 4);
    pack_str(pk, "kind");
    pack_str(pk, "label");
    pack_str(pk, "task");
    pack_str(pk, task);
    pack_str(pk, "query");
    msgpack_pack_uint64(pk, p->query);
    pack_str(pk, "label");
    pack_str(pk, label_name(p->y, lb, sizeof(lb)));
}

/* Sends the events packed in body (n of them) as one message. */
static int send_events(void *push, msgpack_sbuffer *body, size_t n)
{
    if (n == 0)
        return 0;
    msgpack_sbuffer msg;
    msgpack_sbuffer_init(&msg);
    msgpack_packer hp;
    msgpack_packer_init(&hp, &msg, msgpack_sbuffer_write);
    msgpack_pack_array(&hp, n);
    msgpack_sbuffer_write(&msg, body->data, body->size);
    int rc = zmq_send(push, msg.data, msg.size, 0) < 0 ? -1 : 0;
    msgpack_sbuffer_destroy(&msg);
    msgpack_sbuffer_clear(body);
    return rc;
}

/* Applies the changes due at this query. */
static void apply_changes(sim_t *s)
{
    for (size_t c = 0; c < s->nch; c++) {
        change_t *ch = &s->ch[c];
        if (ch->query != s->q || ch->kind != CH_DRIFT)
            continue;
        family_t *f = &s->fam[ch->family];
        f->accuracy = ch->accuracy;
        f->tau = ens_norm_quantile(1 - f->accuracy);
    }
    /* A change that is true of the current ensemble already counts now. */
    for (size_t c = 0; c < s->nch; c++) {
        change_t *ch = &s->ch[c];
        if (ch->query == s->q && ch->kind != CH_SILENCE && s->fam[ch->family].in_ensemble &&
            ch->picked_q == SIZE_MAX) {
            ch->picked_q = s->sent;
            ch->picked_version = (size_t)s->version;
        }
    }
}

static void print_progress(sim_t *s)
{
    printf("q=%zu labels=%zu v%llu ensemble=[", s->sent, s->labels, (unsigned long long)s->version);
    for (size_t i = 0; i < s->ens_n; i++)
        printf("%s%s", i ? "," : "", s->ens_names[i]);
    printf("] explore_rate=%.3f explored=%.3f pool=%zu", s->pub_rate,
           s->rep_q ? (double)s->rep_explore / (double)s->rep_q : 0.0, s->pool_size);
    for (size_t c = 0; c < s->nch; c++) {
        const change_t *ch = &s->ch[c];
        if (ch->kind == CH_SILENCE)
            continue;
        printf(" %s%s=%s", ch->kind == CH_DRIFT ? "drifted:" : "added:", s->fam[ch->family].name,
               s->sent <= ch->query             ? "pending"
               : s->fam[ch->family].in_ensemble ? "in"
                                                : "out");
    }
    putchar('\n');
    fflush(stdout);
    s->rep_q = s->rep_explore = 0;
}

static void json_q(const char *key, size_t v)
{
    printf(",\"%s\":", key);
    if (v == SIZE_MAX)
        fputs("null", stdout);
    else
        printf("%zu", v);
}

static void print_summary(const sim_t *s)
{
    printf("{\"queries\":%zu,\"labels\":%zu,\"publications\":%zu,\"replacements\":%zu", s->sent,
           s->labels, s->publications, s->replacements);
    json_q("first_publication_query", s->publications ? s->first_pub_q : SIZE_MAX);
    printf(",\"exploration_queries\":%zu,\"exploration_share\":%.6f", s->explore_q,
           s->ens_q ? (double)s->explore_q / (double)s->ens_q : 0.0);
    /* Measured cost: model queries beyond the ensemble's, per query. */
    printf(",\"extra_queries_per_query\":%.6f",
           s->ens_q ? (double)(s->asked_with_ens - s->ens_size_sum) / (double)s->ens_q : 0.0);
    printf(",\"final\":{\"version\":%llu,\"models\":[", (unsigned long long)s->version);
    for (size_t i = 0; i < s->ens_n; i++) {
        if (i)
            putchar(',');
        ctl_json_string(stdout, s->ens_names[i]);
    }
    printf("],\"explore_rate\":%.6f,\"pool\":%zu,\"extra_queries_per_query\":", s->pub_rate,
           s->pool_size);
    if (isfinite(s->extra_published))
        printf("%.6f}", s->extra_published);
    else
        fputs("null}", stdout);
    fputs(",\"families\":{", stdout);
    for (size_t f = 0; f < s->nfam; f++) {
        printf("%s", f ? "," : "");
        ctl_json_string(stdout, s->fam[f].name);
        printf(":{\"accuracy\":%.4f,\"born\":%zu,\"in_ensemble\":%s", s->fam[f].accuracy,
               s->fam[f].born, s->fam[f].in_ensemble ? "true" : "false");
        json_q("first_in_ensemble_query", s->fam[f].first_in_q);
        putchar('}');
    }
    fputs("},\"changes\":[", stdout);
    for (size_t c = 0; c < s->nch; c++) {
        const change_t *ch = &s->ch[c];
        static const char *const kinds[] = {"drift", "add", "silence"};
        printf("%s{\"kind\":\"%s\",\"query\":%zu,", c ? "," : "", kinds[ch->kind], ch->query);
        if (ch->kind == CH_SILENCE) {
            fputs("\"model\":", stdout);
            ctl_json_string(stdout, ch->model);
            json_q("left_query", ch->left_q);
            json_q("left_version", ch->left_q == SIZE_MAX ? SIZE_MAX : ch->left_version);
            json_q("retired_query", ch->retired_q);
            json_q("retired_version", ch->retired_q == SIZE_MAX ? SIZE_MAX : ch->retired_version);
        } else {
            fputs("\"family\":", stdout);
            ctl_json_string(stdout, s->fam[ch->family].name);
            printf(",\"accuracy\":%.4f", ch->accuracy);
            json_q("picked_query", ch->picked_q);
            json_q("picked_version", ch->picked_q == SIZE_MAX ? SIZE_MAX : ch->picked_version);
            json_q("picked_after_queries",
                   ch->picked_q == SIZE_MAX ? SIZE_MAX : ch->picked_q - ch->query);
            /* Labeled queries of the new regime: labels sent by then for
             * queries at or after the change (label_delay queries late). */
            size_t lab = SIZE_MAX;
            if (ch->picked_q != SIZE_MAX)
                lab = ch->picked_q > ch->query + s->label_delay
                          ? ch->picked_q - ch->query - s->label_delay
                          : 0;
            json_q("picked_after_labels", lab);
        }
        putchar('}');
    }
    puts("]}");
    fflush(stdout);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int ctl_simulate_loop(int argc, char **argv)
{
    static const struct option opts[] = {{"closed-loop", no_argument, NULL, 'L'},
                                         {"families", required_argument, NULL, 'f'},
                                         {"classes", required_argument, NULL, 'k'},
                                         {"global-rho", required_argument, NULL, 'g'},
                                         {"queries", required_argument, NULL, 'n'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"label-delay", required_argument, NULL, 'd'},
                                         {"ingest", required_argument, NULL, 'i'},
                                         {"publish", required_argument, NULL, 'p'},
                                         {"task", required_argument, NULL, 't'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"drift", required_argument, NULL, 'D'},
                                         {"add", required_argument, NULL, 'A'},
                                         {"silence", required_argument, NULL, 'Q'},
                                         {"explore-rate", required_argument, NULL, 'e'},
                                         {"explore-models", required_argument, NULL, 'E'},
                                         {"report", required_argument, NULL, 'R'},
                                         {"tail", required_argument, NULL, 'T'},
                                         {"server-key", required_argument, NULL, 'S'},
                                         {"client-key", required_argument, NULL, 'K'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    static sim_t s;
    memset(&s, 0, sizeof(s));
    s.classes = 2;
    router_t r = {
        .task = "default", .explore_override = -1, .explore_fleet = 1, .label_delay = 100};
    const char *spec = NULL, *ingest = "tcp://127.0.0.1:5557", *publish = "tcp://127.0.0.1:5558";
    const char *server_key = NULL, *client_key = NULL;
    const char *drifts[MAX_CHANGES], *adds[MAX_CHANGES];
    size_t ndrift = 0, nadd = 0, queries = 20000, seed = 1, report = 1000, tail = 1000;
    double rate = 1000;
    char buf[512];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'L':
            break;
        case 'f':
            spec = optarg;
            break;
        case 'k':
            if (ctl_parse_size("--classes", optarg, 2, ENS_MAX_LABELS, &s.classes) < 0)
                return 2;
            break;
        case 'g':
            if (ctl_parse_double("--global-rho", optarg, 0, 0.999, &s.global_rho) < 0)
                return 2;
            break;
        case 'n':
            if (ctl_parse_size("--queries", optarg, 1, (size_t)1 << 40, &queries) < 0)
                return 2;
            break;
        case 'r':
            if (ctl_parse_double("--rate", optarg, 0, 1e7, &rate) < 0)
                return 2;
            break;
        case 'd':
            if (ctl_parse_size("--label-delay", optarg, 0, 10000000, &r.label_delay) < 0)
                return 2;
            break;
        case 'i':
            ingest = optarg;
            break;
        case 'p':
            publish = optarg;
            break;
        case 't':
            if (strlen(optarg) == 0 || strlen(optarg) > ENS_MAX_NAME) {
                ctl_error("--task: 1 to %d bytes", ENS_MAX_NAME);
                return 2;
            }
            r.task = optarg;
            break;
        case 's':
            if (ctl_parse_size("--seed", optarg, 0, SIZE_MAX, &seed) < 0)
                return 2;
            break;
        case 'D':
        case 'A':
            if ((c == 'D' ? ndrift : nadd) >= MAX_CHANGES) {
                ctl_error("too many --drift/--add options");
                return 2;
            }
            if (c == 'D')
                drifts[ndrift++] = optarg;
            else
                adds[nadd++] = optarg;
            break;
        case 'Q': {
            change_t ch = {.kind = CH_SILENCE};
            if (split_at("--silence", optarg, ch.model, sizeof(ch.model), &ch.query) < 0 ||
                add_change(&s, &ch) < 0)
                return 2;
            break;
        }
        case 'e':
            if (ctl_parse_double("--explore-rate", optarg, 0, 1, &r.explore_override) < 0)
                return 2;
            break;
        case 'E':
            if (strcmp(optarg, "fleet") != 0 && strcmp(optarg, "published") != 0) {
                ctl_error("--explore-models: 'fleet' or 'published'");
                return 2;
            }
            r.explore_fleet = strcmp(optarg, "fleet") == 0;
            break;
        case 'R':
            if (ctl_parse_size("--report", optarg, 0, SIZE_MAX, &report) < 0)
                return 2;
            break;
        case 'T':
            if (ctl_parse_size("--tail", optarg, 0, 3600000, &tail) < 0)
                return 2;
            break;
        case 'S':
            server_key = optarg;
            break;
        case 'K':
            client_key = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!spec || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    if (add_families(&s, spec, 0, "--families") < 0)
        return 2;
    for (size_t i = 0; i < nadd; i++) {
        size_t q;
        if (split_at("--add", adds[i], buf, sizeof(buf), &q) < 0)
            return 2;
        size_t before = s.nfam;
        if (add_families(&s, buf, q, "--add") < 0)
            return 2;
        for (size_t f = before; f < s.nfam; f++) {
            change_t ch = {.kind = CH_ADD, .query = q, .family = f, .accuracy = s.fam[f].accuracy};
            if (add_change(&s, &ch) < 0)
                return 2;
        }
    }
    for (size_t i = 0; i < ndrift; i++) {
        change_t ch = {.kind = CH_DRIFT};
        char *colon;
        if (split_at("--drift", drifts[i], buf, sizeof(buf), &ch.query) < 0)
            return 2;
        if (!(colon = strrchr(buf, ':'))) {
            ctl_error("--drift: '%s': expected FAMILY:ACC@QUERY", drifts[i]);
            return 2;
        }
        *colon = '\0';
        int f = find_family(&s, buf);
        if (f < 0) {
            ctl_error("--drift: no family '%s'", buf);
            return 2;
        }
        ch.family = (size_t)f;
        if (ctl_parse_double("--drift", colon + 1, 1e-6, 1 - 1e-6, &ch.accuracy) < 0 ||
            add_change(&s, &ch) < 0)
            return 2;
    }
    s.label_delay = r.label_delay;
    if (make_models(&s) < 0) {
        free(s.models);
        return 2;
    }

    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH), *sub = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0, hwm = 100000;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    snprintf(buf, sizeof(buf), "ensemble.%s", r.task);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, buf, strlen(buf));
    int rc = 0;
    if (ctl_curve_client(push, server_key, client_key) < 0 ||
        ctl_curve_client(sub, server_key, client_key) < 0) {
        rc = 2;
    } else if (zmq_connect(push, ingest) < 0) {
        ctl_error("%s: %s", ingest, zmq_strerror(zmq_errno()));
        rc = 1;
    } else if (zmq_connect(sub, publish) < 0) {
        ctl_error("%s: %s", publish, zmq_strerror(zmq_errno()));
        rc = 1;
    }

    ens_rng_t rng;
    ens_rng_seed(&rng, seed);
    pending_t *ring = ens_xcalloc(r.label_delay + 1, sizeof(pending_t));
    double *factor = ens_xcalloc(s.nfam + 1, sizeof(double));
    uint8_t *ans = ens_xcalloc(s.nmodels + 1, 1);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    double t0 = now_s();
    /* A short wait for the subscription, so that the latest ensemble (the
     * last value cache) is in before the first query. */
    if (rc == 0 && drain(&s, sub, 200) < 0)
        rc = 1;
    for (; rc == 0 && s.q < queries; s.q++) {
        apply_changes(&s);
        uint64_t qid = (uint64_t)s.q + 1;
        pending_t *slot = &ring[s.q % (r.label_delay + 1)];
        size_t n = (size_t)draw_query(&s, &r, &rng, qid, &slot->y, factor, &pk, ans);
        slot->query = qid;
        slot->sent = n > 0;
        if (s.q >= r.label_delay) {
            /* The label of the query label_delay before this one. */
            pending_t *old = &ring[(s.q - r.label_delay) % (r.label_delay + 1)];
            if (old->sent) {
                pack_label(&pk, r.task, old);
                n++;
                s.labels++;
            }
        }
        if (send_events(push, &sb, n) < 0) {
            ctl_error("%s: %s", ingest, zmq_strerror(zmq_errno()));
            rc = 1;
            break;
        }
        s.sent = s.q + 1;
        if (drain(&s, sub, 0) < 0) {
            rc = 1;
            break;
        }
        if (report && s.sent % report == 0)
            print_progress(&s);
        if (rate > 0) {
            double due = (double)(s.q + 1) / rate, el = now_s() - t0;
            if (due - el > 0.001) {
                struct timespec ts = {(time_t)(due - el),
                                      (long)((due - el - (double)(time_t)(due - el)) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
    }
    /* The labels still owed. */
    for (size_t i = s.q > r.label_delay ? s.q - r.label_delay : 0;
         rc == 0 && r.label_delay > 0 && i < s.q; i++) {
        pending_t *p = &ring[i % (r.label_delay + 1)];
        if (!p->sent)
            continue;
        pack_label(&pk, r.task, p);
        s.labels++;
        if (send_events(push, &sb, 1) < 0)
            rc = 1;
    }
    if (rc == 0) {
        double end = now_s() + (double)tail / 1000;
        while (rc == 0 && now_s() < end)
            rc = drain(&s, sub, (long)((end - now_s()) * 1000) + 1) < 0 ? 1 : 0;
        if (report)
            print_progress(&s);
        print_summary(&s);
    }
    msgpack_sbuffer_destroy(&sb);
    for (size_t i = 0; i < s.ens_n; i++)
        free(s.ens_names[i]);
    free(s.ens_names);
    free(ring);
    free(factor);
    free(ans);
    free(s.models);
    zmq_close(sub);
    /* Default linger on the PUSH socket: closing waits until every queued
     * event is out. */
    zmq_close(push);
    zmq_ctx_term(ctx);
    return rc;
}
