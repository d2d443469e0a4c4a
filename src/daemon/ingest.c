/* ingest.c - from a message to joins (see ingest.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ensembled/err.h"
#include "ensembled/router.h"
#include "ensembled/xalloc.h"
#include "ingest.h"
#include "log.h"

static const char *const drop_names[] = {
#define ENS__DROP_NAME(id, name) name,
    ENS_DROP_MAP(ENS__DROP_NAME)
#undef ENS__DROP_NAME
};

const char *ens_drop_name(ens_drop_t r)
{
    return (size_t)r < ENS_DROP_COUNT ? drop_names[r] : "?";
}

/* A name the message would add (kind 't', 'm' or 'l'), to count distinct
 * additions. Its strings point into the message. */
typedef struct {
    uint64_t hash;
    uint32_t gen; /* the check that added it; older ones are empty */
    char kind;
    ens_str_t task, name;
} name_t;

/* The ids a message's names had when its capacity was checked, so that
 * applying it looks each name up once: nothing releases an id in between. */
typedef struct {
    int16_t model, label; /* -1: not held then (new, or not looked up) */
} ids_t;

/* Ids found before, tried ahead of a dictionary lookup: a producer repeats
 * its task and names from one event to the next and from one message to
 * the next, and comparing a few bytes with the name an id holds now costs
 * less than a hash lookup (unbatched, the lookups were most of what a
 * message cost beyond its decoding). A guess is taken only when the task's
 * own dictionary still gives that id that name, so one made stale by a
 * freed or reused id just misses: nothing has to invalidate it. */
#define GUESSES 16 /* per kind, by a hash of the name */
typedef struct {
    const ens_task_t *task;                 /* the task the ids are of (NULL: none yet) */
    int16_t model[GUESSES], label[GUESSES]; /* -1: none */
} guesses_t;

static size_t guess_slot(ens_str_t name)
{
    return XXH3_64bits(name.ptr, name.len) & (GUESSES - 1);
}

/* The names one check has seen: an open-addressing set, emptied in O(1) by
 * a new generation, grown (never shrunk) past half full. */
typedef struct {
    name_t *slots;
    size_t cap, used;
    uint32_t gen;
} names_t;

static void names_reset(names_t *s)
{
    s->used = 0;
    if (++s->gen == 0) { /* wrapped: stale stamps could read as current */
        if (s->slots)
            memset(s->slots, 0, s->cap * sizeof(*s->slots));
        s->gen = 1; /* 0 marks an empty slot */
    }
}

static void names_place(names_t *s, const name_t *n)
{
    size_t i = n->hash & (s->cap - 1);
    while (s->slots[i].gen == s->gen)
        i = (i + 1) & (s->cap - 1);
    s->slots[i] = *n;
}

static void names_grow(names_t *s)
{
    names_t old = *s;
    s->cap = old.cap ? 2 * old.cap : 64;
    s->slots = ens_xcalloc(s->cap, sizeof(*s->slots));
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].gen == old.gen)
            names_place(s, &old.slots[i]);
    free(old.slots);
}

static int str_eq(ens_str_t a, ens_str_t b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* The guesses of task t, emptied when they were another task's. */
static guesses_t *guesses_of(guesses_t *g, const ens_task_t *t)
{
    if (g->task != t) {
        memset(g->model, 0xff, sizeof(g->model));
        memset(g->label, 0xff, sizeof(g->label));
        g->task = t;
    }
    return g;
}

/* The id of name in t's models (model) or labels, or -1: a guess checked
 * against the dictionary first, else a lookup, which becomes the guess. */
static int find_id(guesses_t *g, const ens_task_t *t, ens_str_t name, int model)
{
    int16_t *slot = &(model ? guesses_of(g, t)->model : guesses_of(g, t)->label)[guess_slot(name)];
    if (*slot >= 0) {
        ens_str_t held =
            model ? ens_window_model_str(t->window, *slot) : ens_window_label_str(t->window, *slot);
        if (held.ptr && str_eq(held, name))
            return *slot;
    }
    int id = model ? ens_window_find_model(t->window, name.ptr, name.len)
                   : ens_window_find_label(t->window, name.ptr, name.len);
    if (id >= 0 && id <= INT16_MAX)
        *slot = (int16_t)id;
    return id;
}

/* Returns 1 if (kind, task, name) was not seen in this check before. */
static int first_time(names_t *s, char kind, ens_str_t task, ens_str_t name)
{
    uint64_t h =
        XXH3_64bits_withSeed(name.ptr, name.len, XXH3_64bits(task.ptr, task.len) ^ (uint64_t)kind);
    if (2 * (s->used + 1) > s->cap)
        names_grow(s);
    size_t i = h & (s->cap - 1);
    for (; s->slots[i].gen == s->gen; i = (i + 1) & (s->cap - 1)) {
        const name_t *n = &s->slots[i];
        if (n->hash == h && n->kind == kind && str_eq(n->task, task) && str_eq(n->name, name))
            return 0;
    }
    s->slots[i] = (name_t){h, s->gen, kind, task, name};
    s->used++;
    return 1;
}

typedef struct {
    size_t tasks;          /* new tasks */
    size_t models, labels; /* new names in the task being checked */
} additions_t;

struct ens_ingest_s {
    ens_tasks_t *tasks;       /* borrowed */
    const ens_config_t *conf; /* borrowed */
    ens_proto_limits_t limits;
    ens_ingest_stats_t st;
    ens_ratelimit_t rl_reject[ENS_REJECT_COUNT];
    ens_ratelimit_t rl_drop[ENS_DROP_COUNT];
    ens_ratelimit_t rl_future;
    ens_decoded_t *msg;    /* the message being applied, its storage reused */
    ens_task_t *last_task; /* the task of the last event checked (NULL: none) */
    guesses_t guesses;     /* ids of names found before, to try first */
    names_t names;         /* the names the capacity check has seen */
    ens_task_t **task_of;  /* per event of msg: its task when checked, or NULL */
    ids_t *ids;            /* per answer (a label event: its label) of msg */
    size_t events_cap, ids_cap;
};

/* Whether task t (NULL: the task `name` ingest would create) takes open
 * answers. */
static int task_open(const ens_ingest_t *in, const ens_task_t *t, ens_str_t name)
{
    if (t)
        return t->conf.answers == ENS_ANSWERS_OPEN;
    char buf[ENS_CONF_STR];
    size_t n = name.len < sizeof(buf) ? name.len : sizeof(buf) - 1;
    memcpy(buf, name.ptr, n);
    buf[n] = '\0';
    return ens_config_task(in->conf, buf)->answers == ENS_ANSWERS_OPEN;
}

/* Room for the per-event and per-answer records of m. */
static void reserve(ens_ingest_t *in, const ens_decoded_t *m)
{
    size_t n = ens_decoded_count(m), k = 0;
    for (size_t i = 0; i < n; i++)
        k += ens_decoded_event(m, i)->kind == ENS_EVENT_LABEL ? 1 : ens_decoded_event(m, i)->npreds;
    if (n > in->events_cap) {
        free(in->task_of);
        in->task_of = ens_xreallocarray(NULL, n, sizeof(*in->task_of));
        in->events_cap = n;
    }
    if (k > in->ids_cap) {
        free(in->ids);
        in->ids = ens_xreallocarray(NULL, k, sizeof(*in->ids));
        in->ids_cap = k;
    }
}

/* Checks the answers (a label event: its label) of event e of known task t
 * (NULL: new), noting their ids in ids. Returns -1 and the drop reason if
 * an addition would not fit. */
static int check_names(ens_ingest_t *in, const ens_event_t *e, const ens_task_t *t, additions_t *a,
                       ids_t *ids, ens_drop_t *why)
{
    size_t have_models = t ? ens_window_models_held(t->window) : 0;
    size_t have_labels = t ? ens_window_labels_held(t->window) : 0;
    /* Open answers add no label: classes are interned as rows join. */
    int open = task_open(in, t, e->task);
    size_t n = e->kind == ENS_EVENT_LABEL ? 1 : e->npreds;
    for (size_t p = 0; p < n; p++) {
        ens_str_t label = e->kind == ENS_EVENT_LABEL ? e->label : e->preds[p].label;
        /* "?" is an abstention, never a label: a known task finds it,
         * and a new task must not count it either. */
        int abstain = label.len == 1 && label.ptr[0] == '?';
        int id = -1;
        ids[p].model = ids[p].label = -1;
        if (!abstain && !open) {
            if (t)
                id = find_id(&in->guesses, t, label, 0);
            ids[p].label = (int16_t)(id >= 0 ? id : -1);
            if (id < 0 && first_time(&in->names, 'l', e->task, label) &&
                have_labels + ++a->labels > ENS_MAX_LABELS)
                return *why = ENS_DROP_TOO_MANY_LABELS, -1;
        }
        if (e->kind == ENS_EVENT_LABEL)
            continue;
        ens_str_t model = e->preds[p].model;
        id = t ? find_id(&in->guesses, t, model, 1) : -1;
        ids[p].model = (int16_t)(id >= 0 ? id : -1);
        if (id < 0 && first_time(&in->names, 'm', e->task, model) &&
            have_models + ++a->models > in->conf->max_models)
            return *why = ENS_DROP_TOO_MANY_MODELS, -1;
    }
    return 0;
}

/* Would the message fit? New models and labels are counted over the whole
 * message against each task's room, which is exact for the usual
 * single-task message and errs on the side of refusing otherwise. Notes
 * each event's task and names for apply_event. Returns -1 and the drop
 * reason if not. */
static int check_capacity(ens_ingest_t *in, const ens_decoded_t *m, ens_drop_t *why)
{
    additions_t a = {0};
    static const ens_str_t none = {"", 0};
    reserve(in, m);
    names_reset(&in->names);
    ids_t *ids = in->ids;
    for (size_t i = 0; i < ens_decoded_count(m); i++) {
        const ens_event_t *e = ens_decoded_event(m, i);
        /* Tasks live as long as the registry: the last one is still valid,
         * and still has the name it had. */
        ens_task_t *t = in->last_task;
        if (!t || !str_eq((ens_str_t){t->name, t->len}, e->task))
            t = ens_tasks_find(in->tasks, e->task.ptr, e->task.len);
        if (t)
            in->last_task = t;
        in->task_of[i] = t;
        if (!t && first_time(&in->names, 't', e->task, none) &&
            ens_tasks_count(in->tasks) + ++a.tasks > in->conf->max_tasks)
            return *why = ENS_DROP_TOO_MANY_TASKS, -1;
        if (check_names(in, e, t, &a, ids, why) < 0)
            return -1;
        ids += e->kind == ENS_EVENT_LABEL ? 1 : e->npreds;
    }
    return 0;
}

/* The join key of a query: integer and string queries never collide. */
static size_t query_key(const ens_event_t *e, unsigned char *key)
{
    if (e->query_is_uint) {
        key[0] = 'u';
        for (int i = 0; i < 8; i++)
            key[1 + i] = (unsigned char)(e->query_uint >> (56 - 8 * i));
        return 9;
    }
    key[0] = 's';
    memcpy(key + 1, e->query_str.ptr, e->query_str.len);
    return 1 + e->query_str.len;
}

/* ingest.sample_rate keeps a query iff XXH3-64 of its task and key is below
 * rate * 2^64: the same decision for its predictions and its label, on every
 * daemon, without coordination. */
static int sampled_in(const ens_ingest_t *in, const ens_event_t *e, const unsigned char *key,
                      size_t len)
{
    if (in->conf->sample_rate >= 1.0)
        return 1;
    unsigned char buf[2 * 1024 + 2];
    memcpy(buf, e->task.ptr, e->task.len);
    buf[e->task.len] = '\0';
    memcpy(buf + e->task.len + 1, key, len);
    uint64_t h = XXH3_64bits(buf, e->task.len + 1 + len);
    return ens_router_explore_below(h, in->conf->sample_rate); /* exact, as routers compare */
}

/* The time of a label: its ts, or the arrival time when it has none or when
 * its ts lies more than ingest.max_future ahead of the clock. A time in the
 * future would keep its row in the window past window.max_age and make every
 * age negative; the label itself is still true, so it is kept. Clamping
 * rather than refusing also keeps labels flowing if the daemon's own clock
 * is stepped back. */
static double label_time(ens_ingest_t *in, const ens_event_t *e, double now)
{
    if (e->ts < 0)
        return now;
    if (e->ts > now + in->conf->max_future) {
        in->st.future_ts++;
        char task[300];
        snprintf(task, sizeof(task), "%.*s", (int)e->task.len, e->task.ptr);
        ens_logf_limited(&in->rl_future, ENS_LOG_WARNING,
                         ENS_LOG_FIELDS({"task", task}, {"reason", "future_ts"}),
                         "ingest: a label's ts is %.0f s ahead of the clock (ingest.max_future "
                         "%.0f s); taken as its arrival time",
                         e->ts - now, in->conf->max_future);
        return now;
    }
    return e->ts;
}

/* Applies one event of a message whose capacity was checked: the task,
 * models and labels it adds all fit. t: its task then (NULL: new); ids:
 * its names' ids then (-1: look up, or add). */
static void apply_event(ens_ingest_t *in, const ens_event_t *e, ens_task_t *t, const ids_t *ids,
                        double now, double mono)
{
    if (!t)
        t = ens_tasks_intern(in->tasks, e->task.ptr, e->task.len);
    unsigned char key[1 + 1024];
    size_t len = query_key(e, key);
    if (!sampled_in(in, e, key, len)) {
        ens_task_sampled_out(t);
        return;
    }
    int open = t->conf.answers == ENS_ANSWERS_OPEN;
    if (e->kind == ENS_EVENT_LABEL && open) {
        uint64_t answer = ens_open_key(e->label.ptr, e->label.len, t->conf.normalize);
        ens_task_truth_key(t, key, len, answer, mono, label_time(in, e, now));
        return;
    }
    if (e->kind == ENS_EVENT_LABEL) {
        int y = ids[0].label >= 0 ? ids[0].label : ens_task_label(t, e->label.ptr, e->label.len);
        ens_task_truth(t, key, len, (uint8_t)y, mono, label_time(in, e, now));
        return;
    }
    ens_join_pred_t preds[ENS_MAX_MODELS];
    size_t n = 0;
    for (size_t i = 0; i < e->npreds && n < ENS_MAX_MODELS; i++) {
        int j = ids[i].model >= 0 ? ids[i].model
                                  : ens_task_model(t, e->preds[i].model.ptr, e->preds[i].model.len);
        ens_str_t a = e->preds[i].label;
        preds[n].model = (uint16_t)j;
        preds[n].key = 0;
        /* An event's cost is each of its answers' (docs/protocol.md). */
        preds[n].cost = e->cost;
        if (open && !(a.len == 1 && a.ptr[0] == '?')) {
            preds[n].key = ens_open_key(a.ptr, a.len, t->conf.normalize);
            preds[n++].sym = 0;
            continue;
        }
        preds[n++].sym =
            (uint8_t)(ids[i].label >= 0 ? ids[i].label : ens_task_label(t, a.ptr, a.len));
    }
    ens_task_predictions(t, key, len, preds, n, mono);
}

int ens_ingest_message(ens_ingest_t *in, const char *buf, size_t len, double now, double mono)
{
    ens_decoded_t *m = in->msg;
    ens_reject_t why;
    in->st.messages++;
    if (ens_proto_decode_into(m, buf, len, &in->limits, &why) < 0) {
        in->st.rejected[why]++;
        ens_logf_limited(&in->rl_reject[why], ENS_LOG_WARNING,
                         ENS_LOG_FIELDS({"reason", ens_reject_name(why)}),
                         "ingest: rejected a %zu-byte message: %s (%s)", len, ens_reject_name(why),
                         ens_reject_text(why));
        return -1;
    }
    ens_drop_t drop = ENS_DROP_TOO_MANY_TASKS;
    if (check_capacity(in, m, &drop) < 0) {
        in->st.dropped[drop]++;
        ens_logf_limited(&in->rl_drop[drop], ENS_LOG_WARNING,
                         ENS_LOG_FIELDS({"reason", ens_drop_name(drop)}),
                         "ingest: dropped a message of %zu events: %s", ens_decoded_count(m),
                         ens_drop_name(drop));
        return -1;
    }
    const ids_t *ids = in->ids;
    for (size_t i = 0; i < ens_decoded_count(m); i++) {
        const ens_event_t *e = ens_decoded_event(m, i);
        apply_event(in, e, in->task_of[i], ids, now, mono);
        ids += e->kind == ENS_EVENT_LABEL ? 1 : e->npreds;
    }
    in->st.events += ens_decoded_count(m);
    return 0;
}

int ens_ingest_pending(const ens_ingest_t *in, const char *buf, size_t len)
{
    ens_decoded_t *m = NULL;
    ens_reject_t why;
    if (ens_proto_decode(buf, len, &in->limits, &m, &why) < 0)
        return 0;
    int pending = 0;
    for (size_t i = 0; i < ens_decoded_count(m) && !pending; i++) {
        const ens_event_t *e = ens_decoded_event(m, i);
        const ens_task_t *t = ens_tasks_find(in->tasks, e->task.ptr, e->task.len);
        unsigned char key[1 + 1024];
        size_t klen = query_key(e, key);
        pending = t && ens_join_is_pending(t->join, key, klen);
    }
    ens_decoded_destroy(&m);
    return pending;
}

ens_ingest_t *ens_ingest_new(ens_tasks_t *tasks, const ens_config_t *conf)
{
    ens_ingest_t *in = ens_xcalloc(1, sizeof(*in));
    in->tasks = tasks;
    in->msg = ens_decoded_new();
    ens_ingest_set_config(in, conf);
    return in;
}

void ens_ingest_set_config(ens_ingest_t *in, const ens_config_t *conf)
{
    in->conf = conf;
    ens_proto_limits_default(&in->limits);
    in->limits.max_message_bytes = conf->max_message_bytes;
    in->limits.max_cost = conf->max_cost;
}

void ens_ingest_destroy(ens_ingest_t **ip)
{
    if (!*ip)
        return;
    ens_decoded_destroy(&(*ip)->msg);
    free((*ip)->names.slots);
    free((*ip)->task_of);
    free((*ip)->ids);
    free(*ip);
    *ip = NULL;
}

const ens_ingest_stats_t *ens_ingest_stats(const ens_ingest_t *in)
{
    return &in->st;
}

void ens_ingest_status(const ens_ingest_t *in, ens_mpw_t *w)
{
    ens_mpw_cstr(w, "messages_in");
    ens_mpw_uint(w, in->st.messages);
    ens_mpw_cstr(w, "events_in");
    ens_mpw_uint(w, in->st.events);
    ens_mpw_cstr(w, "rejected");
    ens_mpw_map_begin(w);
    for (int r = 0; r < ENS_REJECT_COUNT; r++) {
        ens_mpw_cstr(w, ens_reject_name((ens_reject_t)r));
        ens_mpw_uint(w, in->st.rejected[r]);
    }
    ens_mpw_map_end(w);
    ens_mpw_cstr(w, "dropped");
    ens_mpw_map_begin(w);
    for (int r = 0; r < ENS_DROP_COUNT; r++) {
        ens_mpw_cstr(w, ens_drop_name((ens_drop_t)r));
        ens_mpw_uint(w, in->st.dropped[r]);
    }
    ens_mpw_map_end(w);
    ens_mpw_cstr(w, "future_ts_clamped");
    ens_mpw_uint(w, in->st.future_ts);
}
