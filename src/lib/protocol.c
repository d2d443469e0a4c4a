/* protocol.c - decoding and encoding of wire protocol v2 events (see
 * protocol.h).
 *
 * Three stages, each rejecting the whole message at the first problem:
 * the pre-walk over raw bytes (container lengths against bytes present,
 * depth), msgpack-c unpacking into a zone, then field-by-field validation
 * into ens_event_t records. Nothing is applied to any state here. The
 * encoder at the end writes what the decoder reads.
 */
#include "ensembled/protocol.h"

#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/err.h"
#include "ensembled/xalloc.h"

static const char *const reject_names[] = {
#define ENS__REJECT_NAME(id, name, text) name,
    ENS_REJECT_MAP(ENS__REJECT_NAME)
#undef ENS__REJECT_NAME
};

static const char *const reject_texts[] = {
#define ENS__REJECT_TEXT(id, name, text) text,
    ENS_REJECT_MAP(ENS__REJECT_TEXT)
#undef ENS__REJECT_TEXT
};

const char *ens_reject_name(ens_reject_t r)
{
    return (size_t)r < ENS_REJECT_COUNT ? reject_names[r] : "?";
}

const char *ens_reject_text(ens_reject_t r)
{
    return (size_t)r < ENS_REJECT_COUNT ? reject_texts[r] : "?";
}

void ens_proto_limits_default(ens_proto_limits_t *lim)
{
    lim->max_message_bytes = 1 << 20;
    lim->max_batch = 10000;
    lim->max_name = 256;
    lim->max_predictions = 1024;
    lim->max_cost = 1e6;
    lim->max_depth = 4;
}

/* ---- pre-walk --------------------------------------------------------- */

#define PREWALK_STACK 64

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Decodes one header at p (avail bytes). Sets *skip to the bytes the header
 * and its payload take (payload of strings, bins, exts, scalars) and
 * *children to the objects a container holds. Returns 0 or -1 (malformed). */
static int header(const unsigned char *p, size_t avail, uint64_t *skip, uint64_t *children)
{
    unsigned b = p[0];
    size_t n = 0;     /* length bytes after the type byte */
    uint64_t len = 0; /* payload bytes */
    *children = 0;
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3 && b != 0xc1)) {
        *skip = 1;
        return 0;
    }
    if (b >= 0x80 && b <= 0x8f) {
        *skip = 1;
        *children = 2 * (uint64_t)(b & 0x0f);
        return 0;
    }
    if (b >= 0x90 && b <= 0x9f) {
        *skip = 1;
        *children = b & 0x0f;
        return 0;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        *skip = 1 + (uint64_t)(b & 0x1f);
        return 0;
    }
    static const unsigned char fixed[] = {[0xca - 0xc0] = 4, [0xcb - 0xc0] = 8, [0xcc - 0xc0] = 1,
                                          [0xcd - 0xc0] = 2, [0xce - 0xc0] = 4, [0xcf - 0xc0] = 8,
                                          [0xd0 - 0xc0] = 1, [0xd1 - 0xc0] = 2, [0xd2 - 0xc0] = 4,
                                          [0xd3 - 0xc0] = 8, [0xd4 - 0xc0] = 2, [0xd5 - 0xc0] = 3,
                                          [0xd6 - 0xc0] = 5, [0xd7 - 0xc0] = 9, [0xd8 - 0xc0] = 17};
    if (b >= 0xca && b <= 0xd8) {
        *skip = 1 + (uint64_t)fixed[b - 0xc0];
        return 0;
    }
    switch (b) {
    case 0xc4:
    case 0xd9:
        n = 1;
        break; /* bin8, str8 */
    case 0xc5:
    case 0xda:
        n = 2;
        break; /* bin16, str16 */
    case 0xc6:
    case 0xdb:
        n = 4;
        break; /* bin32, str32 */
    case 0xc7:
        n = 1;
        break; /* ext8 (+1 type byte) */
    case 0xc8:
        n = 2;
        break; /* ext16 */
    case 0xc9:
        n = 4;
        break; /* ext32 */
    case 0xdc:
    case 0xde:
        n = 2;
        break; /* array16, map16 */
    case 0xdd:
    case 0xdf:
        n = 4;
        break; /* array32, map32 */
    default:
        return -1; /* 0xc1: never used */
    }
    if (avail < 1 + n)
        return -1;
    len = be(p + 1, n);
    if (b == 0xdc || b == 0xdd) {
        *skip = 1 + n;
        *children = len;
    } else if (b == 0xde || b == 0xdf) {
        *skip = 1 + n;
        *children = 2 * len;
    } else {
        *skip = 1 + n + (b >= 0xc7 && b <= 0xc9) + len;
    }
    return 0;
}

static int prewalk(const char *buf, size_t len, size_t max_depth)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t off = 0, depth = 0;
    uint64_t left[PREWALK_STACK]; /* objects still due at each open level */
    uint64_t due = 1;             /* objects due at the top level */
    if (max_depth >= PREWALK_STACK)
        max_depth = PREWALK_STACK - 1;
    while (due > 0 || depth > 0) {
        if (due == 0) {
            due = left[--depth];
            continue;
        }
        if (off >= len)
            return -(ENS_REJECT_MALFORMED + 1);
        uint64_t skip, children;
        if (header(p + off, len - off, &skip, &children) < 0 || skip > len - off)
            return -(ENS_REJECT_MALFORMED + 1);
        off += skip;
        due--;
        if (children == 0)
            continue;
        /* Every object takes at least one byte: a container declaring more
         * children than bytes remain is a lie, refused before anything is
         * allocated for it. */
        if (children > len - off)
            return -(ENS_REJECT_MALFORMED + 1);
        if (depth + 1 > max_depth)
            return -(ENS_REJECT_TOO_DEEP + 1);
        left[depth++] = due;
        due = children;
    }
    return off == len ? 0 : -(ENS_REJECT_TRAILING + 1);
}

/* ---- decoding --------------------------------------------------------- */

/* A decoded message. Its zone and arrays are kept from one decode to the
 * next (ens_proto_decode_into), so that a stream of messages allocates
 * nothing once they have grown to the usual size. */
struct ens_decoded_s {
    msgpack_zone *zone;  /* owns the unpacked objects */
    ens_event_t *events; /* count events */
    size_t count, events_cap;
    ens_pred_t *preds; /* storage of every event's answers */
    size_t npreds;     /* used */
    char (*nums)[24];  /* decimal text of integer labels */
    size_t nnums;      /* used */
    size_t slots_cap;  /* preds and nums allocated */
};

/* Arrays grown past this many elements are given back when a message needs
 * far fewer: one huge batch does not pin its memory for good. */
#define KEEP_ELEMS 4096

/* Storage needed for one event map: answers and integer labels. */
static size_t event_slots(const msgpack_object *o)
{
    size_t n = 1;
    if (o->type != MSGPACK_OBJECT_MAP)
        return n;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->val.type == MSGPACK_OBJECT_MAP)
            n += kv->val.via.map.size;
    }
    return n;
}

static int key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

/* The length of the UTF-8 sequence starting at p[0..n), or 0 when it is
 * not one in shortest form (RFC 3629: no surrogates, nothing past
 * U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* overlong */
        hi = c == 0xED ? 0x9F : 0xBF; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : 0x80; /* overlong */
        hi = c == 0xF4 ? 0x8F : 0xBF; /* past U+10FFFF */
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

int ens_name_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (p[i] - 1u < 0x7fu) { /* ASCII but NUL: the usual name */
            i++;
            continue;
        }
        if (p[i] == 0)
            return 0;
        size_t k = utf8_seq(p + i, len - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

size_t ens_topic(const char *task, size_t len, char *buf, size_t cap)
{
    const size_t head = sizeof(ENS_TOPIC_PREFIX) - 1;
    size_t total = head + len + 1;
    for (size_t i = 0; i < total && i < cap; i++)
        buf[i] = i < head ? ENS_TOPIC_PREFIX[i] : i < head + len ? task[i - head] : '\0';
    return total;
}

/* A query string: a non-empty string within limits (any bytes: query ids
 * are hashed, never published). */
static int take_bytes(const msgpack_object *v, const ens_proto_limits_t *lim, ens_str_t *out,
                      ens_reject_t *why)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return *why = ENS_REJECT_BAD_TYPE, -1;
    if (v->via.str.size == 0)
        return *why = ENS_REJECT_EMPTY_NAME, -1;
    if (v->via.str.size > lim->max_name)
        return *why = ENS_REJECT_NAME_TOO_LONG, -1;
    out->ptr = v->via.str.ptr;
    out->len = v->via.str.size;
    return 0;
}

/* A name (task, model, label): the same, and valid UTF-8 without NUL. */
static int take_name(const msgpack_object *v, const ens_proto_limits_t *lim, ens_str_t *out,
                     ens_reject_t *why)
{
    if (take_bytes(v, lim, out, why) < 0)
        return -1;
    if (!ens_name_valid(out->ptr, out->len))
        return *why = ENS_REJECT_BAD_NAME, -1;
    return 0;
}

/* A label: a string, an integer (kept as its decimal text) or nil (an
 * abstention, predictions only). */
static int take_label(ens_decoded_t *m, const msgpack_object *v, const ens_proto_limits_t *lim,
                      ens_str_t *out, ens_reject_t *why)
{
    switch (v->type) {
    case MSGPACK_OBJECT_STR:
        return take_name(v, lim, out, why);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: {
        char *s = m->nums[m->nnums++];
        int n = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                    ? snprintf(s, 24, "%llu", (unsigned long long)v->via.u64)
                    : snprintf(s, 24, "%lld", (long long)v->via.i64);
        out->ptr = s;
        out->len = (size_t)n;
        return 0;
    }
    case MSGPACK_OBJECT_NIL:
        out->ptr = "?";
        out->len = 1;
        return 0;
    default:
        return *why = ENS_REJECT_BAD_TYPE, -1;
    }
}

/* A finite non-negative number (float or integer). */
static int take_number(const msgpack_object *v, double *out)
{
    if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
        *out = v->via.f64;
    else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *out = (double)v->via.u64;
    else
        return -1;
    return isfinite(*out) && *out >= 0 ? 0 : -1;
}

static int take_query(const msgpack_object *v, const ens_proto_limits_t *lim, ens_event_t *e,
                      ens_reject_t *why)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        e->query_is_uint = 1;
        e->query_uint = v->via.u64;
        return 0;
    }
    if (v->type == MSGPACK_OBJECT_STR && v->via.str.size == 0)
        return *why = ENS_REJECT_NO_QUERY, -1;
    return take_bytes(v, lim, &e->query_str, why);
}

static int take_predictions(ens_decoded_t *m, const msgpack_object *v,
                            const ens_proto_limits_t *lim, ens_event_t *e, ens_reject_t *why)
{
    if (v->type != MSGPACK_OBJECT_MAP)
        return *why = ENS_REJECT_BAD_TYPE, -1;
    if (v->via.map.size + e->npreds > lim->max_predictions)
        return *why = ENS_REJECT_TOO_MANY_PREDICTIONS, -1;
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        ens_pred_t *p = &e->preds[e->npreds++];
        if (take_name(&v->via.map.ptr[i].key, lim, &p->model, why) < 0 ||
            take_label(m, &v->via.map.ptr[i].val, lim, &p->label, why) < 0)
            return -1;
    }
    return 0;
}

/* Bits of the fields seen, to refuse a key given twice. */
enum {
    F_KIND = 1,
    F_TASK = 2,
    F_QUERY = 4,
    F_MODEL = 8,
    F_LABEL = 16,
    F_PREDS = 32,
    F_COST = 64,
    F_TS = 128,
    F_PROTOCOL = 256
};

/* The bit of a known key, by its length first: every event has several. */
static int field_bit(const msgpack_object *k)
{
    if (k->type != MSGPACK_OBJECT_STR)
        return 0;
    const char *p = k->via.str.ptr;
#define IS(name) (memcmp(p, name, sizeof(name) - 1) == 0)
    switch (k->via.str.size) {
    case 2:
        return IS("ts") ? F_TS : 0;
    case 4:
        return IS("kind") ? F_KIND : IS("task") ? F_TASK : IS("cost") ? F_COST : 0;
    case 5:
        return IS("query") ? F_QUERY : IS("model") ? F_MODEL : IS("label") ? F_LABEL : 0;
    case 8:
        return IS("protocol") ? F_PROTOCOL : 0;
    case 11:
        return IS("predictions") ? F_PREDS : 0;
    default:
        return 0; /* unknown keys are ignored: newer producers may add fields */
    }
#undef IS
}

static int decode_field(ens_decoded_t *m, int bit, const msgpack_object *v,
                        const ens_proto_limits_t *lim, ens_event_t *e, ens_str_t *model,
                        ens_str_t *label, ens_reject_t *why)
{
    switch (bit) {
    case F_KIND:
        if (key_is(v, "prediction"))
            e->kind = ENS_EVENT_PREDICTION;
        else if (key_is(v, "label"))
            e->kind = ENS_EVENT_LABEL;
        else
            return *why = v->type == MSGPACK_OBJECT_STR ? ENS_REJECT_BAD_KIND : ENS_REJECT_BAD_TYPE,
                   -1;
        return 0;
    case F_TASK:
        return take_name(v, lim, &e->task, why);
    case F_QUERY:
        return take_query(v, lim, e, why);
    case F_MODEL:
        return take_name(v, lim, model, why);
    case F_LABEL:
        return take_label(m, v, lim, label, why);
    case F_PREDS:
        return take_predictions(m, v, lim, e, why);
    case F_COST:
        /* One absurd cost would make its model's mean cost absurd for as
         * long as the answer stays in the window: refused, not averaged. */
        return take_number(v, &e->cost) < 0 || e->cost > lim->max_cost
                   ? (*why = ENS_REJECT_BAD_COST, -1)
                   : 0;
    case F_TS:
        return take_number(v, &e->ts) < 0 ? (*why = ENS_REJECT_BAD_TS, -1) : 0;
    case F_PROTOCOL:
        return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 >= 1 &&
                       v->via.u64 <= ENS_PROTOCOL_VERSION
                   ? 0
                   : (*why = ENS_REJECT_BAD_PROTOCOL, -1);
    default:
        return 0;
    }
}

static int decode_event(ens_decoded_t *m, const msgpack_object *o, const ens_proto_limits_t *lim,
                        ens_event_t *e, ens_reject_t *why)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return *why = ENS_REJECT_NOT_EVENT, -1;
    memset(e, 0, sizeof(*e));
    e->task.ptr = "default";
    e->task.len = 7;
    e->cost = -1;
    e->ts = -1;
    e->preds = m->preds + m->npreds;
    ens_str_t model = {0}, label = {0};
    int seen = 0;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        int bit = field_bit(&kv->key);
        if (bit & seen)
            return *why = ENS_REJECT_DUP_KEY, -1;
        seen |= bit;
        if (decode_field(m, bit, &kv->val, lim, e, &model, &label, why) < 0)
            return -1;
    }
    if (!(seen & F_KIND))
        return *why = ENS_REJECT_BAD_KIND, -1;
    if (!(seen & F_QUERY))
        return *why = ENS_REJECT_NO_QUERY, -1;
    if (e->kind == ENS_EVENT_LABEL) {
        if (!(seen & F_LABEL) || (label.len == 1 && label.ptr[0] == '?'))
            return *why = ENS_REJECT_NO_LABEL, -1;
        e->label = label;
        e->npreds = 0;
    } else {
        if ((seen & F_MODEL) != 0 && (seen & F_LABEL) != 0) {
            if (e->npreds + 1 > lim->max_predictions)
                return *why = ENS_REJECT_TOO_MANY_PREDICTIONS, -1;
            e->preds[e->npreds].model = model;
            e->preds[e->npreds++].label = label;
        } else if ((seen & (F_MODEL | F_LABEL)) != 0 || e->npreds == 0) {
            return *why = ENS_REJECT_NO_MODEL, -1;
        }
    }
    m->npreds += e->npreds;
    return 0;
}

void ens_decoded_destroy(ens_decoded_t **mp)
{
    if (!mp || !*mp)
        return;
    ens_decoded_t *m = *mp;
    if (m->zone)
        msgpack_zone_free(m->zone);
    free(m->events);
    free(m->preds);
    free(m->nums);
    free(m);
    *mp = NULL;
}

/* Room for n events and slots answers or integer labels. */
static void reserve(ens_decoded_t *m, size_t n, size_t slots)
{
    if (n > m->events_cap || (m->events_cap > KEEP_ELEMS && n <= KEEP_ELEMS / 4)) {
        free(m->events);
        m->events = ens_xreallocarray(NULL, n, sizeof(ens_event_t));
        m->events_cap = n;
    }
    if (slots > m->slots_cap || (m->slots_cap > KEEP_ELEMS && slots <= KEEP_ELEMS / 4)) {
        free(m->preds);
        free(m->nums);
        m->preds = ens_xreallocarray(NULL, slots, sizeof(ens_pred_t));
        m->nums = ens_xreallocarray(NULL, slots, sizeof(*m->nums));
        m->slots_cap = slots;
    }
}

/* Validates the unpacked root and fills m's events. */
static int decode_root(ens_decoded_t *m, const msgpack_object *root, const ens_proto_limits_t *lim,
                       ens_reject_t *why)
{
    const msgpack_object *items = root;
    size_t n = 1;
    if (root->type == MSGPACK_OBJECT_ARRAY) {
        items = root->via.array.ptr;
        n = root->via.array.size;
        if (n == 0)
            return *why = ENS_REJECT_EMPTY_BATCH, -1;
        if (n > lim->max_batch)
            return *why = ENS_REJECT_BATCH_TOO_LONG, -1;
    } else if (root->type != MSGPACK_OBJECT_MAP) {
        return *why = ENS_REJECT_NOT_EVENT, -1;
    }
    size_t slots = 0;
    for (size_t i = 0; i < n; i++)
        slots += event_slots(&items[i]);
    reserve(m, n, slots);
    for (size_t i = 0; i < n; i++)
        if (decode_event(m, &items[i], lim, &m->events[i], why) < 0)
            return -1;
    m->count = n;
    return 0;
}

int ens_proto_prewalk(const char *buf, size_t len, size_t max_depth, ens_reject_t *why)
{
    int pw = prewalk(buf, len, max_depth);
    if (pw == 0)
        return 0;
    if (why)
        *why = (ens_reject_t)(-pw - 1);
    return ENS_EPARSE;
}

ens_decoded_t *ens_decoded_new(void)
{
    ens_decoded_t *m = ens_xcalloc(1, sizeof(*m));
    m->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (!m->zone) {
        fputs("ensembled: out of memory (msgpack zone)\n", stderr);
        abort();
    }
    return m;
}

int ens_proto_decode_into(ens_decoded_t *m, const char *buf, size_t len,
                          const ens_proto_limits_t *lim, ens_reject_t *why)
{
    m->count = m->npreds = m->nnums = 0;
    if (len > lim->max_message_bytes)
        return *why = ENS_REJECT_TOO_BIG, ENS_EPARSE;
    if (ens_proto_prewalk(buf, len, lim->max_depth, why) < 0)
        return ENS_EPARSE;
    /* The objects of the last message go; the zone's first chunk stays. */
    msgpack_zone_clear(m->zone);
    msgpack_object root;
    size_t off = 0;
    int rc = msgpack_unpack(buf, len, &off, m->zone, &root);
    if (rc != MSGPACK_UNPACK_SUCCESS || off != len) {
        *why = rc == MSGPACK_UNPACK_EXTRA_BYTES || (rc == MSGPACK_UNPACK_SUCCESS && off != len)
                   ? ENS_REJECT_TRAILING
                   : ENS_REJECT_MALFORMED;
        return ENS_EPARSE;
    }
    if (decode_root(m, &root, lim, why) < 0) {
        m->count = 0;
        return ENS_EPARSE;
    }
    return 0;
}

int ens_proto_decode(const char *buf, size_t len, const ens_proto_limits_t *lim,
                     ens_decoded_t **out, ens_reject_t *why)
{
    ens_decoded_t *m = ens_decoded_new();
    *out = NULL;
    if (ens_proto_decode_into(m, buf, len, lim, why) < 0) {
        ens_decoded_destroy(&m);
        return ENS_EPARSE;
    }
    *out = m;
    return 0;
}

size_t ens_decoded_count(const ens_decoded_t *m)
{
    return m->count;
}

const ens_event_t *ens_decoded_event(const ens_decoded_t *m, size_t i)
{
    return i < m->count ? &m->events[i] : NULL;
}

/* ---- encoding --------------------------------------------------------- */

void ens_event_encode(ens_mpw_t *w, const ens_event_t *e)
{
    int pred = e->kind == ENS_EVENT_PREDICTION;
    ens_mpw_map_begin(w);
    ens_mpw_cstr(w, "kind");
    ens_mpw_cstr(w, pred ? "prediction" : "label");
    ens_mpw_cstr(w, "task");
    ens_mpw_str(w, e->task.ptr, e->task.len);
    ens_mpw_cstr(w, "query");
    if (e->query_is_uint)
        ens_mpw_uint(w, e->query_uint);
    else
        ens_mpw_str(w, e->query_str.ptr, e->query_str.len);
    if (!pred) {
        ens_mpw_cstr(w, "label");
        ens_mpw_str(w, e->label.ptr, e->label.len);
    } else if (e->npreds == 1) {
        /* One answer: the shorter form `ensemblectl send` has always used. */
        ens_mpw_cstr(w, "model");
        ens_mpw_str(w, e->preds[0].model.ptr, e->preds[0].model.len);
        ens_mpw_cstr(w, "label");
        ens_mpw_str(w, e->preds[0].label.ptr, e->preds[0].label.len);
    } else {
        ens_mpw_cstr(w, "predictions");
        ens_mpw_map_begin(w);
        for (size_t i = 0; i < e->npreds; i++) {
            ens_mpw_str(w, e->preds[i].model.ptr, e->preds[i].model.len);
            ens_mpw_str(w, e->preds[i].label.ptr, e->preds[i].label.len);
        }
        ens_mpw_map_end(w);
    }
    if (e->ts >= 0) {
        ens_mpw_cstr(w, "ts");
        ens_mpw_double(w, e->ts);
    }
    if (e->cost >= 0) {
        ens_mpw_cstr(w, "cost");
        ens_mpw_double(w, e->cost);
    }
    ens_mpw_map_end(w);
}
