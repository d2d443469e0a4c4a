/* body_decode.c - ens_body_decode and ens_body_destroy (body.h).
 *
 * Untrusted bytes (a router decodes what arrives on a socket): the container
 * pre-walk of protocol.h runs before msgpack-c sees them, then every field
 * is checked against the tables of body_int.h: its type, the cell count of
 * every per-model array (= the number of models), label and class indices,
 * exclusion and reason strings, and that every model named by freshness,
 * excluded or costs is one of coverage. Unknown keys are skipped: a newer daemon may
 * add fields. A key given twice is refused (which one would count?).
 *
 * Everything a decoded body points to lives in its arena, one free per
 * chunk; strings are NUL-terminated copies (their length kept: a name may
 * hold NUL bytes).
 */
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body_int.h"
#include "ensembled/err.h"
#include "ensembled/xalloc.h"

/* Deep enough for today's body (4) and fields a newer daemon may nest. */
#define BODY_MAX_DEPTH 8
/* Key cells are int16_t. */
#define BODY_MAX_INDEX 32767

typedef struct chunk_s {
    struct chunk_s *next;
    size_t cap, used;
    max_align_t mem[];
} chunk_t;

/* A name and its position, for lookups by binary search. */
typedef struct {
    const char *ptr;
    size_t len;
    size_t idx;
} name_ref_t;

typedef struct {
    ens_body_t *b;
    char *err;
    size_t errlen;
    name_ref_t *labels, *window; /* sorted; nlabels, nwindow of b */
} dec_t;

/* ---- the arena --------------------------------------------------------- */

/* n zeroed bytes that live as long as the body. */
static void *arena_alloc(dec_t *c, size_t n)
{
    const size_t align = _Alignof(max_align_t);
    n = (n + align - 1) / align * align;
    chunk_t *ch = c->b->arena_;
    if (!ch || ch->cap - ch->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        ch = ens_xcalloc(1, sizeof(chunk_t) + cap);
        ch->cap = cap;
        ch->next = c->b->arena_;
        c->b->arena_ = ch;
    }
    void *p = (char *)ch->mem + ch->used;
    ch->used += n;
    return p;
}

static void *arena_array(dec_t *c, size_t count, size_t size)
{
    if (count > SIZE_MAX / size) {
        fputs("ens_body_decode: array size overflow\n", stderr);
        abort();
    }
    return arena_alloc(c, count * size);
}

__attribute__((format(printf, 2, 3))) static int fail(dec_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    return ENS_EPARSE;
}

/* ---- scalars ----------------------------------------------------------- */

static int get_str(dec_t *c, const msgpack_object *o, const char *what, ens_str_t *out)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return fail(c, "%s: not a string", what);
    char *s = arena_alloc(c, (size_t)o->via.str.size + 1);
    if (o->via.str.size)
        memcpy(s, o->via.str.ptr, o->via.str.size);
    out->ptr = s;
    out->len = o->via.str.size;
    return 0;
}

/* A number of any MessagePack kind, or (nil_ok) nil as NaN. */
static int get_num(dec_t *c, const msgpack_object *o, int nil_ok, const char *what, double *out)
{
    switch (o->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = o->via.f64;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)o->via.i64;
        return 0;
    case MSGPACK_OBJECT_NIL:
        if (!nil_ok)
            break;
        *out = NAN;
        return 0;
    default:
        break;
    }
    return fail(c, "%s: not a number", what);
}

static int get_u64(dec_t *c, const msgpack_object *o, const char *what, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return fail(c, "%s: not an unsigned integer", what);
    *out = o->via.u64;
    return 0;
}

static int str_is(const msgpack_object *o, const char *s, size_t n)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           (n == 0 || memcmp(o->via.str.ptr, s, n) == 0);
}

/* ---- names ------------------------------------------------------------- */

static int cmp_ref(const void *a, const void *b)
{
    const name_ref_t *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->len ? memcmp(x->ptr, y->ptr, x->len) : 0;
}

/* A sorted index of n names (the ens_str_t at the start of each stride-byte
 * element of base); a name given twice is an error. */
static int index_names(dec_t *c, const void *base, size_t stride, size_t n, const char *what,
                       name_ref_t **out)
{
    name_ref_t *ix = arena_array(c, n + 1, sizeof(*ix));
    for (size_t i = 0; i < n; i++) {
        const ens_str_t *s = (const ens_str_t *)((const char *)base + i * stride);
        ix[i] = (name_ref_t){s->ptr, s->len, i};
    }
    qsort(ix, n, sizeof(*ix), cmp_ref);
    for (size_t i = 1; i < n; i++)
        if (cmp_ref(&ix[i - 1], &ix[i]) == 0)
            return fail(c, "%s: \"%s\" given twice", what, ix[i].ptr);
    *out = ix;
    return 0;
}

/* Position of the name o (a string) in ix, or -1. */
static long find_name(const name_ref_t *ix, size_t n, const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return -1;
    name_ref_t key = {o->via.str.ptr, o->via.str.size, 0};
    const name_ref_t *hit = bsearch(&key, ix, n, sizeof(*ix), cmp_ref);
    return hit ? (long)hit->idx : -1;
}

static int get_strs(dec_t *c, const msgpack_object *o, const char *what, ens_str_t **out, size_t *n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return fail(c, "%s: not an array", what);
    *n = o->via.array.size;
    *out = arena_array(c, *n + 1, sizeof(ens_str_t));
    for (size_t i = 0; i < *n; i++)
        if (get_str(c, &o->via.array.ptr[i], what, &(*out)[i]) < 0)
            return ENS_EPARSE;
    return 0;
}

/* The exclusion (other than NONE) or reason named by o, or -1. */
static int find_excl(const msgpack_object *o)
{
    for (int e = ENS_EXCL_NONE + 1; e < ENS_EXCL_COUNT; e++) {
        const char *s = ens_excl_name((ens_excl_t)e);
        if (str_is(o, s, strlen(s)))
            return e;
    }
    return -1;
}

static int find_reason(const msgpack_object *o)
{
    for (int r = 0; r < ENS_REASON_COUNT; r++) {
        const char *s = ens_reason_name((ens_reason_t)r);
        if (str_is(o, s, strlen(s)))
            return r;
    }
    return -1;
}

/* ---- per-model arrays and maps ------------------------------------------ */

static int dec_map(dec_t *c, const msgpack_object *o, void *base, const ens__table_t *t,
                   const char *path);

static int dec_steps(dec_t *c, const msgpack_object *o)
{
    ens_body_t *b = c->b;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != b->nmodels)
        return fail(c, "steps: not an array of %zu steps (one per model)", b->nmodels);
    b->steps = arena_array(c, b->nmodels + 1, sizeof(ens_body_step_t));
    for (size_t i = 0; i < b->nmodels; i++) {
        char path[32];
        snprintf(path, sizeof(path), "steps[%zu]", i);
        if (dec_map(c, &o->via.array.ptr[i], &b->steps[i], &ens__body_step, path) < 0)
            return ENS_EPARSE;
    }
    return 0;
}

/* choice.candidates: an array of candidate maps, names unique. */
static int dec_candidates(dec_t *c, const msgpack_object *o)
{
    ens_body_t *b = c->b;
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return fail(c, "choice.candidates: not an array");
    b->ncandidates = o->via.array.size;
    b->candidates = arena_array(c, b->ncandidates + 1, sizeof(ens_body_candidate_t));
    for (size_t i = 0; i < b->ncandidates; i++) {
        char path[40];
        snprintf(path, sizeof(path), "choice.candidates[%zu]", i);
        if (dec_map(c, &o->via.array.ptr[i], &b->candidates[i], &ens__body_candidate, path) < 0)
            return ENS_EPARSE;
    }
    return 0;
}

/* choice: the winner names a candidate, or is "selection" when there is
 * none (the final choice did not apply). */
static int dec_choice(dec_t *c, const msgpack_object *o)
{
    ens_body_t *b = c->b;
    if (dec_map(c, o, b, &ens__body_choice, "choice") < 0)
        return ENS_EPARSE;
    ens_str_t w = b->choice_winner;
    if (b->ncandidates == 0)
        return w.len == 9 && memcmp(w.ptr, "selection", 9) == 0
                   ? 0
                   : fail(c, "choice.winner: not \"selection\" without candidates");
    for (size_t i = 0; i < b->ncandidates; i++)
        if (b->candidates[i].name.len == w.len &&
            memcmp(b->candidates[i].name.ptr, w.ptr, w.len) == 0)
            return 0;
    return fail(c, "choice.winner: names no candidate");
}

static int dec_weights(dec_t *c, const msgpack_object *o)
{
    ens_body_t *b = c->b;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != b->nmodels)
        return fail(c, "combiner.weights: not an array of %zu numbers", b->nmodels);
    b->weights = arena_array(c, b->nmodels + 1, sizeof(double));
    for (size_t i = 0; i < b->nmodels; i++)
        if (get_num(c, &o->via.array.ptr[i], 0, "combiner.weights", &b->weights[i]) < 0)
            return ENS_EPARSE;
    return 0;
}

/* One cell of a table entry: a label index, or for keys of label kinds "?"
 * (abstained) and nil (not asked); for pattern, a class index or -1, -2. */
static int dec_cell(dec_t *c, const msgpack_object *o, int is_key, size_t e, int32_t *out)
{
    const ens_body_t *b = c->b;
    if (b->comb == ENS_COMB_PATTERN) {
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 < b->nmodels)
            *out = (int32_t)o->via.u64;
        else if (is_key && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
                 (o->via.i64 == ENS_BODY_ABSTAIN || o->via.i64 == ENS_BODY_MISSING))
            *out = (int32_t)o->via.i64;
        else
            return fail(c, "combiner.table[%zu]: a class index out of range", e);
        return 0;
    }
    long l = find_name(c->labels, b->nlabels, o);
    if (l >= 0 && !str_is(o, "?", 1))
        *out = (int32_t)l;
    else if (is_key && str_is(o, "?", 1))
        *out = ENS_BODY_ABSTAIN;
    else if (is_key && o->type == MSGPACK_OBJECT_NIL)
        *out = ENS_BODY_MISSING;
    else
        return fail(c, "combiner.table[%zu]: not one of the labels", e);
    return 0;
}

static int dec_table(dec_t *c, const msgpack_object *o)
{
    ens_body_t *b = c->b;
    if (o->type != MSGPACK_OBJECT_ARRAY)
        return fail(c, "combiner.table: not an array");
    b->ntable = o->via.array.size;
    /* Every entry's shape first: the keys take ntable * nmodels cells, and
     * only entries that really hold nmodels + 1 objects (a byte each at
     * least) bound that by the message size. A table of one-byte entries
     * under many models would otherwise ask for gigabytes. */
    for (size_t e = 0; e < b->ntable; e++) {
        const msgpack_object *en = &o->via.array.ptr[e];
        if (en->type != MSGPACK_OBJECT_ARRAY || en->via.array.size != b->nmodels + 1)
            return fail(c, "combiner.table[%zu]: not an array of %zu cells (models + decision)", e,
                        b->nmodels + 1);
    }
    b->table = arena_array(c, b->ntable + 1, sizeof(ens_body_entry_t));
    int16_t *keys = arena_array(c, b->ntable * b->nmodels + 1, sizeof(int16_t));
    for (size_t e = 0; e < b->ntable; e++) {
        const msgpack_object *en = &o->via.array.ptr[e];
        b->table[e].key = keys + e * b->nmodels;
        for (size_t i = 0; i < b->nmodels; i++) {
            int32_t x;
            if (dec_cell(c, &en->via.array.ptr[i], 1, e, &x) < 0)
                return ENS_EPARSE;
            b->table[e].key[i] = (int16_t)x;
        }
        if (dec_cell(c, &en->via.array.ptr[b->nmodels], 0, e, &b->table[e].decision) < 0)
            return ENS_EPARSE;
    }
    return 0;
}

static int dec_coverage(dec_t *c, const msgpack_object *o)
{
    ens_body_t *b = c->b;
    if (o->type != MSGPACK_OBJECT_MAP)
        return fail(c, "coverage: not a map");
    b->nwindow = o->via.map.size;
    b->window = arena_array(c, b->nwindow + 1, sizeof(ens_body_model_t));
    for (size_t m = 0; m < b->nwindow; m++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[m];
        if (get_str(c, &kv->key, "coverage: a model", &b->window[m].model) < 0 ||
            get_u64(c, &kv->val, "coverage: rows", &b->window[m].rows) < 0)
            return ENS_EPARSE;
        b->window[m].age = NAN;
        b->window[m].excluded = ENS_EXCL_NONE;
        b->window[m].cost = NAN;
    }
    return index_names(c, b->window, sizeof(ens_body_model_t), b->nwindow, "coverage", &c->window);
}

/* freshness or costs (every model of coverage once) or excluded (some of
 * them). */
static int dec_per_model(dec_t *c, const msgpack_object *o, ens__custom_t id)
{
    ens_body_t *b = c->b;
    const char *what = id == ENS__C_FRESHNESS ? "freshness"
                       : id == ENS__C_COSTS   ? "costs"
                                              : "excluded";
    if (o->type != MSGPACK_OBJECT_MAP)
        return fail(c, "%s: not a map", what);
    if (id != ENS__C_EXCLUDED && o->via.map.size != b->nwindow)
        return fail(c, "%s: %u models, coverage has %zu", what, o->via.map.size, b->nwindow);
    unsigned char *seen = arena_alloc(c, b->nwindow + 1);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        long m = find_name(c->window, b->nwindow, &kv->key);
        if (m < 0)
            return fail(c, "%s: a model not in coverage", what);
        if (seen[m]++)
            return fail(c, "%s: \"%s\" given twice", what, b->window[m].model.ptr);
        if (id != ENS__C_EXCLUDED) {
            double *v = id == ENS__C_FRESHNESS ? &b->window[m].age : &b->window[m].cost;
            if (get_num(c, &kv->val, 1, what, v) < 0)
                return ENS_EPARSE;
            continue;
        }
        int e = find_excl(&kv->val);
        if (e < 0)
            return fail(c, "excluded: \"%s\": an unknown exclusion", b->window[m].model.ptr);
        b->window[m].excluded = (ens_excl_t)e;
    }
    return 0;
}

/* ---- the maps ---------------------------------------------------------- */

static int dec_kind(dec_t *c, const msgpack_object *o)
{
    for (int k = 0; k < ENS_COMB_COUNT; k++) {
        const char *s = ens_comb_name((ens_comb_kind_t)k);
        if (str_is(o, s, strlen(s))) {
            c->b->comb = (ens_comb_kind_t)k;
            return 0;
        }
    }
    return fail(c, "combiner.kind: not vote, weighted, table or pattern");
}

static int dec_custom(dec_t *c, const msgpack_object *o, ens__custom_t id)
{
    ens_body_t *b = c->b;
    int r;
    switch (id) {
    case ENS__C_MODELS:
        if (get_strs(c, o, "models", &b->models, &b->nmodels) < 0)
            return ENS_EPARSE;
        return b->nmodels > BODY_MAX_INDEX ? fail(c, "models: more than %d", BODY_MAX_INDEX) : 0;
    case ENS__C_LABELS:
        if (get_strs(c, o, "labels", &b->labels, &b->nlabels) < 0)
            return ENS_EPARSE;
        if (b->nlabels > BODY_MAX_INDEX)
            return fail(c, "labels: more than %d", BODY_MAX_INDEX);
        return index_names(c, b->labels, sizeof(ens_str_t), b->nlabels, "labels", &c->labels);
    case ENS__C_STEPS:
        return dec_steps(c, o);
    case ENS__C_COMBINER:
        return dec_map(c, o, b, &ens__body_combiner, "combiner");
    case ENS__C_ACCURACY:
        return dec_map(c, o, b, &ens__body_accuracy, "accuracy");
    case ENS__C_BOUNDS:
        return dec_map(c, o, b, &ens__body_bounds, "bounds");
    case ENS__C_EXPLORE:
        return dec_map(c, o, b, &ens__body_explore, "explore");
    case ENS__C_EXPLORE_MODELS:
        return get_strs(c, o, "explore.models", &b->explore_models, &b->nexplore);
    case ENS__C_COVERAGE:
        return dec_coverage(c, o);
    case ENS__C_FRESHNESS:
    case ENS__C_EXCLUDED:
    case ENS__C_COSTS:
        return dec_per_model(c, o, id);
    case ENS__C_REASON:
        if ((r = find_reason(o)) < 0)
            return fail(c, "reason: not a known reason");
        b->reason = (ens_reason_t)r;
        return 0;
    case ENS__C_KIND:
        return dec_kind(c, o);
    case ENS__C_WEIGHTS:
        return dec_weights(c, o);
    case ENS__C_TABLE:
        return dec_table(c, o);
    case ENS__C_CHOICE:
        return dec_choice(c, o);
    case ENS__C_CANDIDATES:
        return dec_candidates(c, o);
    default:
        return fail(c, "internal: no decoder for field %d", (int)id);
    }
}

static int dec_field(dec_t *c, const msgpack_object *o, void *base, const ens__field_t *f,
                     const char *what)
{
    char *p = (char *)base + f->off;
    switch (f->type) {
    case ENS__F_STR:
        return get_str(c, o, what, (ens_str_t *)p);
    case ENS__F_U64:
        return get_u64(c, o, what, (uint64_t *)p);
    case ENS__F_F64:
    case ENS__F_F64_NIL:
        return get_num(c, o, f->type == ENS__F_F64_NIL, what, (double *)p);
    case ENS__F_BOOL:
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
            return fail(c, "%s: not a boolean", what);
        *(int *)p = o->via.boolean;
        return 0;
    case ENS__F_CUSTOM:
        return dec_custom(c, o, f->id);
    }
    return fail(c, "internal: field type %d", (int)f->type);
}

/* The map o as table t over the struct at base: first every known key's
 * value (a key twice is an error, unknown keys are skipped), then each field
 * in table order, which is the order their checks depend on (labels before
 * the combiner's table, coverage before freshness, excluded and costs). */
static int dec_map(dec_t *c, const msgpack_object *o, void *base, const ens__table_t *t,
                   const char *path)
{
    const msgpack_object *val[ENS__BODY_MAX_ROWS] = {0};
    if (o->type != MSGPACK_OBJECT_MAP)
        return fail(c, "%s: not a map", *path ? path : "body");
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        for (size_t k = 0; k < t->n; k++) {
            if (!str_is(&kv->key, t->rows[k].key, strlen(t->rows[k].key)))
                continue;
            if (val[k])
                return fail(c, "%s%s%s: given twice", path, *path ? "." : "", t->rows[k].key);
            val[k] = &kv->val;
        }
    }
    for (size_t k = 0; k < t->n; k++) {
        char what[64];
        snprintf(what, sizeof(what), "%s%s%s", path, *path ? "." : "", t->rows[k].key);
        if (!val[k])
            return fail(c, "%s: missing", what);
        if (dec_field(c, val[k], base, &t->rows[k], what) < 0)
            return ENS_EPARSE;
    }
    return 0;
}

/* `protocol`: a positive integer, 1 when absent (bodies before version 2
 * had none). A newer version decodes too: its new fields are skipped. */
static int dec_protocol(dec_t *c, const msgpack_object *root)
{
    const msgpack_object *v = NULL;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        if (!str_is(&root->via.map.ptr[i].key, "protocol", 8))
            continue;
        if (v)
            return fail(c, "protocol: given twice");
        v = &root->via.map.ptr[i].val;
    }
    if (v && (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 == 0))
        return fail(c, "protocol: not a positive integer");
    c->b->protocol = v ? v->via.u64 : 1;
    return 0;
}

int ens_body_decode(const char *buf, size_t len, ens_body_t **out, char *err, size_t errlen)
{
    *out = NULL;
    dec_t c = {.b = ens_xcalloc(1, sizeof(ens_body_t)), .err = err, .errlen = errlen};
    ens_reject_t why;
    int rc = ens_proto_prewalk(buf, len, BODY_MAX_DEPTH, &why);
    if (rc < 0) {
        rc = fail(&c, "%s", ens_reject_text(why));
        ens_body_destroy(&c.b);
        return rc;
    }
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 8192)) {
        fputs("ens_body_decode: out of memory (msgpack zone)\n", stderr);
        abort();
    }
    msgpack_object root;
    size_t off = 0;
    if (msgpack_unpack(buf, len, &off, &zone, &root) != MSGPACK_UNPACK_SUCCESS)
        rc = fail(&c, "not valid MessagePack");
    else if ((rc = dec_map(&c, &root, c.b, &ens__body_top, "")) == 0)
        rc = dec_protocol(&c, &root);
    msgpack_zone_destroy(&zone);
    if (rc < 0)
        ens_body_destroy(&c.b);
    *out = c.b;
    return rc < 0 ? ENS_EPARSE : 0;
}

void ens_body_destroy(ens_body_t **bp)
{
    if (!bp || !*bp)
        return;
    for (chunk_t *ch = (*bp)->arena_, *next; ch; ch = next) {
        next = ch->next;
        free(ch);
    }
    free(*bp);
    *bp = NULL;
}
