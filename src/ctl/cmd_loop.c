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
 *
 * This file owns the options, the routers and the run loop; the fleet model
 * is loop_fleet.c's, the reading of the publications loop_pub.c's, the
 * progress and summary lines loop_report.c's (state shared through loop.h).
 */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#include <zmq.h>

#include "ctl.h"
#include "ensembled/protocol.h"
#include "ensembled/rng.h"
#include "ensembled/router.h"
#include "ensembled/xalloc.h"
#include "loop.h"

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
    return ens_router_explore_below(XXH3_64bits_withSeed(buf, n, 1), rate);
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

/* Draws query s->q's answers (loop_fleet.c) and picks the models to ask:
 * ans[m] is the answer of model m, or UINT8_MAX when it was not asked or
 * did not answer. Returns the number of answers. */
static size_t draw_query(ctl_loop_sim_t *s, const router_t *r, ens_rng_t *rng, uint64_t qid,
                         uint8_t *y, double *factor, uint8_t *ans)
{
    size_t q = s->q;
    ctl_loop_draw_answers(s, rng, y, factor, ans);
    double rate = r->explore_override >= 0 ? r->explore_override : s->pub_rate;
    int explore = s->have_ens && explores(r->task, qid, rate);
    size_t nask = 0, nans = 0;
    for (size_t m = 0; m < s->nmodels; m++) {
        const ctl_loop_model_t *mo = &s->models[m];
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
    return nans;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* --- options ------------------------------------------------------------ */

typedef struct {
    router_t r;
    const char *spec, *ingest, *publish;
    ctl_curve_keys_t keys;
    const char *drifts[CTL_LOOP_MAX_CHANGES], *adds[CTL_LOOP_MAX_CHANGES];
    size_t ndrift, nadd, queries, seed, report, tail;
    double rate;
} opts_t;

/* A numeric option: 1 taken, 0 not one of them, -1 bad value (printed). */
static int parse_number(int c, const char *arg, opts_t *o, ctl_loop_sim_t *s)
{
    int rc;
    switch (c) {
    case 'k':
        rc = ctl_parse_size("--classes", arg, 2, ENS_MAX_LABELS, &s->classes);
        break;
    case 'g':
        rc = ctl_parse_double("--global-rho", arg, 0, 0.999, &s->global_rho);
        break;
    case 'n':
        rc = ctl_parse_size("--queries", arg, 1, (size_t)1 << 40, &o->queries);
        break;
    case 'r':
        rc = ctl_parse_double("--rate", arg, 0, 1e7, &o->rate);
        break;
    case 'd':
        rc = ctl_parse_size("--label-delay", arg, 0, 10000000, &o->r.label_delay);
        break;
    case 's':
        rc = ctl_parse_size("--seed", arg, 0, SIZE_MAX, &o->seed);
        break;
    case 'e':
        rc = ctl_parse_double("--explore-rate", arg, 0, 1, &o->r.explore_override);
        break;
    case 'R':
        rc = ctl_parse_size("--report", arg, 0, SIZE_MAX, &o->report);
        break;
    case 'T':
        rc = ctl_parse_size("--tail", arg, 0, 3600000, &o->tail);
        break;
    default:
        return 0;
    }
    return rc < 0 ? -1 : 1;
}

/* Any other option of the command: 1 taken, 0 not one, -1 bad (printed).
 * --drift and --add are kept as given and parsed once --families is in. */
static int parse_other(int c, const char *arg, opts_t *o, ctl_loop_sim_t *s)
{
    switch (c) {
    case 'L':
        return 1;
    case 'f':
        o->spec = arg;
        return 1;
    case 'i':
        o->ingest = arg;
        return 1;
    case 'p':
        o->publish = arg;
        return 1;
    case 't':
        if (strlen(arg) == 0 || strlen(arg) > ENS_MAX_NAME) {
            ctl_error("--task: 1 to %d bytes", ENS_MAX_NAME);
            return -1;
        }
        o->r.task = arg;
        return 1;
    case 'D':
    case 'A':
        if ((c == 'D' ? o->ndrift : o->nadd) >= CTL_LOOP_MAX_CHANGES) {
            ctl_error("too many --drift/--add options");
            return -1;
        }
        if (c == 'D')
            o->drifts[o->ndrift++] = arg;
        else
            o->adds[o->nadd++] = arg;
        return 1;
    case 'Q':
        return ctl_loop_add_silence(s, arg) < 0 ? -1 : 1;
    case 'E':
        if (strcmp(arg, "fleet") != 0 && strcmp(arg, "published") != 0) {
            ctl_error("--explore-models: 'fleet' or 'published'");
            return -1;
        }
        o->r.explore_fleet = strcmp(arg, "fleet") == 0;
        return 1;
    }
    return ctl_curve_option(c, &o->keys);
}

/* Parses argv into o and s (options in argv order, so the first bad one is
 * the one reported). Returns 0, 1 when --help was printed, or -1 (the usage
 * or an error printed). */
static int parse_options(int argc, char **argv, opts_t *o, ctl_loop_sim_t *s)
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
                                         CTL_CURVE_OPTIONS,
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage, stdout);
            return 1;
        }
        int rc = parse_number(c, optarg, o, s);
        if (rc == 0)
            rc = parse_other(c, optarg, o, s);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            fputs(usage, stderr);
            return -1;
        }
    }
    if (!o->spec || optind != argc) {
        fputs(usage, stderr);
        return -1;
    }
    return 0;
}

/* The fleet of --families and --add, then the drifts (which may name an
 * added family): 0 or -1 (error printed). */
static int build_fleet(const opts_t *o, ctl_loop_sim_t *s)
{
    if (ctl_loop_add_families(s, o->spec, 0, "--families") < 0)
        return -1;
    for (size_t i = 0; i < o->nadd; i++)
        if (ctl_loop_add_add(s, o->adds[i]) < 0)
            return -1;
    for (size_t i = 0; i < o->ndrift; i++)
        if (ctl_loop_add_drift(s, o->drifts[i]) < 0)
            return -1;
    s->label_delay = o->r.label_delay;
    return ctl_loop_make_models(s);
}

/* --- the run ------------------------------------------------------------ */

typedef struct {
    void *ctx, *push, *sub;
    ens_rng_t rng;
    pending_t *ring; /* the last label_delay + 1 queries, by query */
    double *factor;
    uint8_t *ans;
    ens_pred_t *preds;               /* one per model */
    char labels[ENS_MAX_LABELS][24]; /* the name of each class */
    ens_mpw_t w;                     /* the events of one message */
} run_t;

static ens_str_t str_of(const char *s)
{
    ens_str_t r = {s, strlen(s)};
    return r;
}

/* The prediction event of query qid: the answers in u->ans. */
static void pack_prediction(run_t *u, const ctl_loop_sim_t *s, const char *task, uint64_t qid)
{
    ens_event_t e = {.kind = ENS_EVENT_PREDICTION,
                     .task = str_of(task),
                     .query_is_uint = 1,
                     .query_uint = qid,
                     .preds = u->preds,
                     .ts = -1,
                     .cost = -1};
    for (size_t m = 0; m < s->nmodels; m++) {
        if (u->ans[m] == UINT8_MAX)
            continue;
        u->preds[e.npreds].model = str_of(s->models[m].name);
        u->preds[e.npreds++].label = str_of(u->labels[u->ans[m]]);
    }
    ens_event_encode(&u->w, &e);
}

static void pack_label(run_t *u, const char *task, const pending_t *p)
{
    ens_event_t e = {.kind = ENS_EVENT_LABEL,
                     .task = str_of(task),
                     .query_is_uint = 1,
                     .query_uint = p->query,
                     .label = str_of(u->labels[p->y]),
                     .ts = -1,
                     .cost = -1};
    ens_event_encode(&u->w, &e);
}

/* Sends the n events of the open batch as one message (none: nothing is
 * sent) and starts the next. */
static int send_events(run_t *u, size_t n)
{
    ens_mpw_array_end(&u->w);
    int rc = n > 0 && zmq_send(u->push, u->w.data, u->w.size, 0) < 0 ? -1 : 0;
    ens_mpw_reset(&u->w);
    ens_mpw_array_begin(&u->w);
    return rc;
}

/* Creates and connects the sockets: the exit code (0, 1, or 2 for bad keys). */
static int open_sockets(const opts_t *o, run_t *u)
{
    char topic[512];
    u->ctx = zmq_ctx_new();
    u->push = zmq_socket(u->ctx, ZMQ_PUSH);
    u->sub = zmq_socket(u->ctx, ZMQ_SUB);
    int linger = 0, hwm = 100000;
    zmq_setsockopt(u->sub, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(u->sub, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    size_t tlen = ens_topic(o->r.task, strlen(o->r.task), topic, sizeof(topic));
    zmq_setsockopt(u->sub, ZMQ_SUBSCRIBE, topic, tlen < sizeof(topic) ? tlen : sizeof(topic));
    if (ctl_curve_client(u->push, &o->keys) < 0 || ctl_curve_client(u->sub, &o->keys) < 0)
        return 2;
    if (zmq_connect(u->push, o->ingest) < 0) {
        ctl_error("%s: %s", o->ingest, zmq_strerror(zmq_errno()));
        return 1;
    }
    if (zmq_connect(u->sub, o->publish) < 0) {
        ctl_error("%s: %s", o->publish, zmq_strerror(zmq_errno()));
        return 1;
    }
    return 0;
}

/* Sleeps until query q is due at rate queries per second after t0. */
static void pace(double t0, size_t q, double rate)
{
    double due = (double)q / rate, el = now_s() - t0;
    if (due - el > 0.001) {
        struct timespec ts = {(time_t)(due - el),
                              (long)((due - el - (double)(time_t)(due - el)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

/* The queries: each one's prediction, the label of the query label_delay
 * before, and the publications that came in meanwhile. Returns the exit
 * code (0 or 1). */
static int run_queries(ctl_loop_sim_t *s, const opts_t *o, run_t *u)
{
    size_t delay = o->r.label_delay;
    double t0 = now_s();
    /* A short wait for the subscription, so that the latest ensemble (the
     * last value cache) is in before the first query. */
    if (ctl_loop_drain(s, u->sub, 200) < 0)
        return 1;
    for (; s->q < o->queries; s->q++) {
        ctl_loop_apply_changes(s);
        uint64_t qid = (uint64_t)s->q + 1;
        pending_t *slot = &u->ring[s->q % (delay + 1)];
        size_t n = draw_query(s, &o->r, &u->rng, qid, &slot->y, u->factor, u->ans) > 0;
        if (n)
            pack_prediction(u, s, o->r.task, qid);
        slot->query = qid;
        slot->sent = n > 0;
        if (s->q >= delay) {
            /* The label of the query label_delay before this one. */
            pending_t *old = &u->ring[(s->q - delay) % (delay + 1)];
            if (old->sent) {
                pack_label(u, o->r.task, old);
                n++;
                s->labels++;
            }
        }
        if (send_events(u, n) < 0) {
            ctl_error("%s: %s", o->ingest, zmq_strerror(zmq_errno()));
            return 1;
        }
        s->sent = s->q + 1;
        if (ctl_loop_drain(s, u->sub, 0) < 0)
            return 1;
        if (o->report && s->sent % o->report == 0)
            ctl_loop_print_progress(s);
        if (o->rate > 0)
            pace(t0, s->q + 1, o->rate);
    }
    return 0;
}

/* The labels still owed, then o->tail ms of listening, the last progress
 * line and the summary. Returns the exit code (0 or 1). */
static int finish(ctl_loop_sim_t *s, const opts_t *o, run_t *u)
{
    size_t delay = o->r.label_delay;
    int rc = 0;
    for (size_t i = s->q > delay ? s->q - delay : 0; rc == 0 && delay > 0 && i < s->q; i++) {
        pending_t *p = &u->ring[i % (delay + 1)];
        if (!p->sent)
            continue;
        pack_label(u, o->r.task, p);
        s->labels++;
        if (send_events(u, 1) < 0)
            rc = 1;
    }
    if (rc != 0)
        return rc;
    double end = now_s() + (double)o->tail / 1000;
    while (rc == 0 && now_s() < end)
        rc = ctl_loop_drain(s, u->sub, (long)((end - now_s()) * 1000) + 1) < 0 ? 1 : 0;
    /* The summary even when the tail ends on a socket error: the run itself
     * went through. */
    if (o->report)
        ctl_loop_print_progress(s);
    ctl_loop_print_summary(s);
    return rc;
}

int ctl_simulate_loop(int argc, char **argv)
{
    static ctl_loop_sim_t s;
    memset(&s, 0, sizeof(s));
    s.classes = 2;
    opts_t o = {
        .r = {.task = "default", .explore_override = -1, .explore_fleet = 1, .label_delay = 100},
        .ingest = "tcp://127.0.0.1:5557",
        .publish = "tcp://127.0.0.1:5558",
        .queries = 20000,
        .seed = 1,
        .report = 1000,
        .tail = 1000,
        .rate = 1000};
    int rc = parse_options(argc, argv, &o, &s);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (build_fleet(&o, &s) < 0) {
        free(s.models);
        return 2;
    }
    run_t u;
    memset(&u, 0, sizeof(u));
    rc = open_sockets(&o, &u);
    ens_rng_seed(&u.rng, o.seed);
    u.ring = ens_xcalloc(o.r.label_delay + 1, sizeof(pending_t));
    u.factor = ens_xcalloc(s.nfam + 1, sizeof(double));
    u.ans = ens_xcalloc(s.nmodels + 1, 1);
    u.preds = ens_xcalloc(s.nmodels + 1, sizeof(ens_pred_t));
    for (size_t l = 0; l < ENS_MAX_LABELS; l++)
        label_name(l, u.labels[l], sizeof(u.labels[l]));
    ens_mpw_init(&u.w);
    ens_mpw_array_begin(&u.w);
    if (rc == 0)
        rc = run_queries(&s, &o, &u);
    if (rc == 0)
        rc = finish(&s, &o, &u);
    ens_mpw_free(&u.w);
    free(u.preds);
    ctl_loop_free_ensemble(&s);
    free(u.ring);
    free(u.factor);
    free(u.ans);
    free(s.models);
    zmq_close(u.sub);
    /* Default linger on the PUSH socket: closing waits until every queued
     * event is out. */
    zmq_close(u.push);
    zmq_ctx_term(u.ctx);
    return rc;
}
