/* journal.c - the persistence record codec (see journal.h for the layout).
 *
 * One set of rules, ens_jrec_check, serves both directions: the encoder
 * refuses what it says is invalid, and the reader runs it on every record it
 * parsed, so nothing the encoder can write is refused by the reader and
 * nothing the reader returns could not have been written.
 */
#include "ensembled/journal.h"

#include <assert.h>
#include <math.h>
#include <string.h>
#include <xxhash.h>

#include "ensembled/err.h"

/* Fixed payload sizes: the kind byte plus the fixed fields. A dictionary
 * record adds its name, a ROW its answers, a BLOCK its arrays. */
#define SZ_HEADER 21u
#define SZ_TASK 7u
#define SZ_DICT 11u
#define SZ_ROW 25u
#define SZ_VERSION 13u
#define SZ_BLOCK 17u
#define SZ_ANSWERS 7u

#define FORM_DENSE 0
#define FORM_SPARSE 1
#define FORM_ORDINARY 2 /* or'ed in: the row's query was an ordinary one */
#define FORM_COSTS 4    /* or'ed in: the answers' costs follow them */

/* The one NaN written for "no cost": a reader refuses any other, so that a
 * cost field has one encoding per value. */
#define COST_NONE_BITS 0x7FF8000000000000ull

/* A cost as the codec accepts it: none (NaN), or a finite number >= 0. */
static int cost_ok(double c)
{
    return isnan(c) || (c >= 0 && isfinite(c));
}

/* Whether cell k of a BLOCK (row-major) holds an answer. */
static int block_present(const ens_jrec_t *r, uint64_t k)
{
    return r->block.x[k] != ENS_SYM_MISSING;
}

/* The models whose costs a BLOCK stores, into mask[nmodels]: for a block
 * to encode (cost set), the models one of whose answers in it has a cost;
 * for a decoded one, its cost_models. Returns how many are flagged. */
static size_t block_mask(const ens_jrec_t *r, uint8_t *mask)
{
    uint64_t n = r->block.nrows, m = r->block.nmodels;
    size_t flagged = 0;
    for (uint64_t j = 0; j < m; j++) {
        if (r->block.cost) {
            mask[j] = 0;
            for (uint64_t i = 0; i < n && !mask[j]; i++)
                mask[j] = block_present(r, i * m + j) && !isnan(r->block.cost[i * m + j]);
        } else {
            mask[j] = r->block.cost_models ? r->block.cost_models[j] : 0;
        }
        flagged += mask[j] != 0;
    }
    return flagged;
}

/* The number of costs a BLOCK stores: its answers of the flagged models. */
static uint64_t block_stored(const ens_jrec_t *r, const uint8_t *mask)
{
    uint64_t n = r->block.nrows, m = r->block.nmodels, k = 0;
    for (uint64_t i = 0; i < n; i++)
        for (uint64_t j = 0; j < m; j++)
            k += mask[j] && block_present(r, i * m + j);
    return k;
}

static double f64_at(const uint8_t *q)
{
    uint64_t bits = 0;
    for (int b = 7; b >= 0; b--)
        bits = bits << 8 | q[b];
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

void ens_jrec_block_costs(const ens_jrec_t *r, uint64_t i, size_t *k, double *cost)
{
    uint64_t m = r->block.nmodels;
    for (uint64_t j = 0; j < m; j++) {
        cost[j] = NAN;
        if (!block_present(r, i * m + j))
            continue;
        if (r->block.cost)
            cost[j] = r->block.cost[i * m + j];
        else if (r->block.cost_models && r->block.cost_models[j])
            cost[j] = f64_at(r->block.costs + 8 * (*k)++);
    }
}

const char *ens_jrec_kind_name(int kind)
{
    switch (kind) {
#define ENS__JREC_NAME(id, byte, name)                                                             \
    case byte:                                                                                     \
        return name;
        ENS_JREC_KIND_MAP(ENS__JREC_NAME)
#undef ENS__JREC_NAME
    default:
        return "unknown";
    }
}

/* ---- validation ------------------------------------------------------- */

static int check_name(const char *name, size_t len)
{
    if (len == 0 || !name)
        return ENS_EINVAL;
    return len > ENS_JREC_MAX_NAME ? ENS_ETOOLONG : 0;
}

/* A BLOCK's costs: each one valid; a decoded block's as the encoder would
 * write them (flags 0 or 1, at least one, each flagged model with a number
 * among its costs, NaN in one bit pattern only). */
static int check_block_costs(const ens_jrec_t *r)
{
    uint64_t n = r->block.nrows, m = r->block.nmodels;
    if (r->block.cost) {
        for (uint64_t k = 0; k < n * m; k++)
            if (block_present(r, k) && !cost_ok(r->block.cost[k]))
                return ENS_EINVAL;
        return 0;
    }
    uint8_t seen[ENS_MAX_MODELS] = {0};
    size_t flagged = 0, at = 0;
    for (uint64_t j = 0; j < m; j++) {
        if (r->block.cost_models[j] > 1 || (n * m > 0 && !r->block.costs))
            return ENS_EINVAL;
        flagged += r->block.cost_models[j];
    }
    for (uint64_t i = 0; i < n; i++)
        for (uint64_t j = 0; j < m; j++) {
            if (!r->block.cost_models[j] || !block_present(r, i * m + j))
                continue;
            const uint8_t *q = r->block.costs + 8 * at++;
            double c = f64_at(q);
            uint64_t bits;
            memcpy(&bits, &c, sizeof(bits));
            if (!cost_ok(c) || (isnan(c) && bits != COST_NONE_BITS))
                return ENS_EINVAL;
            seen[j] |= !isnan(c);
        }
    for (uint64_t j = 0; j < m; j++)
        if (r->block.cost_models[j] && !seen[j])
            return ENS_EINVAL;
    return flagged > 0 ? 0 : ENS_EINVAL;
}

static int check_block(const ens_jrec_t *r)
{
    uint64_t n = r->block.nrows, m = r->block.nmodels;
    if (m > ENS_MAX_MODELS)
        return ENS_ETOOBIG;
    /* Each row costs its y, its ts, its m answers and its flag when there
     * are flags; the division keeps n * (9 + m) from overflowing before it
     * is compared. */
    int costs = r->block.cost || r->block.cost_models;
    /* With costs, a row may add its flag and 8 bytes per answer, and the
     * block a flag per model: bounded above, never overflowing. */
    uint64_t per_row = 9 + m + (r->block.ordinary || costs ? 1 : 0) + (costs ? 8 * m : 0);
    if (n > (ENS_JREC_MAX_PAYLOAD - SZ_BLOCK - (costs ? m : 0)) / per_row)
        return ENS_ETOOBIG;
    if (n > 0 && (!r->block.y || !r->block.ts || (m > 0 && !r->block.x)))
        return ENS_EINVAL;
    for (uint64_t i = 0; i < n; i++)
        if (r->block.y[i] >= ENS_MAX_LABELS || (r->block.ordinary && r->block.ordinary[i] > 1))
            return ENS_EINVAL;
    return costs ? check_block_costs(r) : 0;
}

int ens_jrec_check(const ens_jrec_t *r)
{
    switch (r->kind) {
    case ENS_JREC_HEADER:
    case ENS_JREC_VERSION:
        return 0;
    case ENS_JREC_TASK:
    case ENS_JREC_QUERY:
        return check_name(r->dict.name, r->dict.len);
    case ENS_JREC_MODEL:
        if (r->dict.id >= ENS_MAX_MODELS)
            return ENS_EINVAL;
        return check_name(r->dict.name, r->dict.len);
    case ENS_JREC_LABEL:
        if (r->dict.id >= ENS_MAX_LABELS)
            return ENS_EINVAL;
        return check_name(r->dict.name, r->dict.len);
    case ENS_JREC_ROW:
        if (r->row.y >= ENS_MAX_LABELS || (r->row.nx > 0 && !r->row.x) || r->row.ordinary > 1)
            return ENS_EINVAL;
        for (size_t j = 0; r->row.cost && j < r->row.nx && j < ENS_MAX_MODELS; j++)
            if (r->row.x[j] != ENS_SYM_MISSING && !cost_ok(r->row.cost[j]))
                return ENS_EINVAL;
        return r->row.nx > ENS_MAX_MODELS ? ENS_ETOOBIG : 0;
    case ENS_JREC_BLOCK:
        return check_block(r);
    case ENS_JREC_ANSWERS:
        return r->answers.answers > 1 || r->answers.normalize > 2 ? ENS_EINVAL : 0;
    default:
        return ENS_EINVAL;
    }
}

/* ---- encoding --------------------------------------------------------- */

static uint8_t *put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    return p + n;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    if (n > 0)
        memcpy(p, src, n);
    return p + n;
}

static uint64_t f64_bits(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    return bits;
}

/* A cost's bits: a NaN (none) always as COST_NONE_BITS. */
static uint64_t cost_bits(double c)
{
    return isnan(c) ? COST_NONE_BITS : f64_bits(c);
}

/* A row's stored shape: nx without trailing misses, the asked count, and
 * whether the sparse form is strictly smaller. */
typedef struct {
    size_t nx, asked;
    int sparse;
    int costs; /* one of the answers has a cost: they are written */
} row_shape_t;

static row_shape_t row_shape(const ens_jrec_t *r)
{
    row_shape_t s = {r->row.nx, 0, 0, 0};
    while (s.nx > 0 && r->row.x[s.nx - 1] == ENS_SYM_MISSING)
        s.nx--;
    for (size_t j = 0; j < s.nx; j++) {
        if (r->row.x[j] == ENS_SYM_MISSING)
            continue;
        s.asked++;
        s.costs |= r->row.cost && !isnan(r->row.cost[j]);
    }
    s.sparse = 3 * s.asked < s.nx;
    return s;
}

static uint64_t payload_size(const ens_jrec_t *r)
{
    switch (r->kind) {
    case ENS_JREC_HEADER:
        return SZ_HEADER;
    case ENS_JREC_TASK:
    case ENS_JREC_QUERY:
        return SZ_TASK + r->dict.len;
    case ENS_JREC_MODEL:
    case ENS_JREC_LABEL:
        return SZ_DICT + r->dict.len;
    case ENS_JREC_ROW: {
        row_shape_t s = row_shape(r);
        return SZ_ROW + (s.sparse ? 3 * s.asked : s.nx) + (s.costs ? 8 * s.asked : 0);
    }
    case ENS_JREC_VERSION:
        return SZ_VERSION;
    case ENS_JREC_ANSWERS:
        return SZ_ANSWERS;
    default: {
        uint64_t size = SZ_BLOCK + r->block.nrows * (9 + (uint64_t)r->block.nmodels);
        uint8_t mask[ENS_MAX_MODELS];
        if (block_mask(r, mask) > 0)
            return size + r->block.nrows + r->block.nmodels + 8 * block_stored(r, mask);
        return size + (r->block.ordinary ? r->block.nrows : 0);
    }
    }
}

static uint8_t *put_row(uint8_t *p, const ens_jrec_t *r)
{
    row_shape_t s = row_shape(r);
    p = put(p, r->row.seq, 8);
    p = put(p, r->row.task, 4);
    p = put(p, f64_bits(r->row.ts), 8);
    p = put(p, r->row.y, 1);
    p = put(p,
            (s.sparse ? FORM_SPARSE : FORM_DENSE) | (r->row.ordinary ? FORM_ORDINARY : 0) |
                (s.costs ? FORM_COSTS : 0),
            1);
    p = put(p, s.sparse ? s.asked : s.nx, 2);
    if (!s.sparse)
        p = put_bytes(p, r->row.x, s.nx);
    for (size_t j = 0; s.sparse && j < s.nx; j++) {
        if (r->row.x[j] == ENS_SYM_MISSING)
            continue;
        p = put(p, j, 2);
        p = put(p, r->row.x[j], 1);
    }
    for (size_t j = 0; s.costs && j < s.nx; j++)
        if (r->row.x[j] != ENS_SYM_MISSING)
            p = put(p, cost_bits(r->row.cost[j]), 8);
    return p;
}

/* A BLOCK's arrays after its fixed fields. */
static uint8_t *put_block(uint8_t *p, const ens_jrec_t *r)
{
    size_t n = (size_t)r->block.nrows, m = r->block.nmodels;
    p = put(p, r->block.task, 4);
    p = put(p, r->block.nrows, 8);
    p = put(p, r->block.nmodels, 4);
    p = put_bytes(p, r->block.y, n);
    p = put_bytes(p, r->block.ts, 8 * n);
    p = put_bytes(p, r->block.x, n * m);
    uint8_t mask[ENS_MAX_MODELS];
    if (block_mask(r, mask) == 0)
        return r->block.ordinary ? put_bytes(p, r->block.ordinary, n) : p;
    /* Costs follow the ordinary bytes, so those are always written. */
    if (r->block.ordinary)
        p = put_bytes(p, r->block.ordinary, n);
    else
        p = (uint8_t *)memset(p, 0, n) + n;
    p = put_bytes(p, mask, m);
    double cost[ENS_MAX_MODELS];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        ens_jrec_block_costs(r, i, &k, cost);
        for (size_t j = 0; j < m; j++)
            if (mask[j] && block_present(r, i * m + j))
                p = put(p, cost_bits(cost[j]), 8);
    }
    return p;
}

static uint8_t *put_payload(uint8_t *p, const ens_jrec_t *r)
{
    p = put(p, (uint64_t)r->kind, 1);
    switch (r->kind) {
    case ENS_JREC_HEADER:
        p = put(p, r->header.format, 4);
        p = put(p, r->header.seq, 8);
        return put(p, r->header.journal, 8);
    case ENS_JREC_TASK:
    case ENS_JREC_QUERY:
    case ENS_JREC_MODEL:
    case ENS_JREC_LABEL:
        p = put(p, r->dict.task, 4);
        if (r->kind == ENS_JREC_MODEL || r->kind == ENS_JREC_LABEL)
            p = put(p, r->dict.id, 4);
        p = put(p, r->dict.len, 2);
        return put_bytes(p, r->dict.name, r->dict.len);
    case ENS_JREC_ROW:
        return put_row(p, r);
    case ENS_JREC_VERSION:
        p = put(p, r->version.task, 4);
        return put(p, r->version.version, 8);
    case ENS_JREC_ANSWERS:
        p = put(p, r->answers.task, 4);
        p = put(p, r->answers.answers, 1);
        return put(p, r->answers.normalize, 1);
    default:
        return put_block(p, r);
    }
}

size_t ens_jrec_encode(const ens_jrec_t *r, void *out, size_t cap)
{
    if (ens_jrec_check(r) != 0)
        return 0;
    uint64_t plen = payload_size(r);
    /* A BLOCK near the u32 limit is larger than size_t on a 32-bit host. */
    if (plen > SIZE_MAX - ENS_JREC_HEAD)
        return 0;
    size_t size = ENS_JREC_HEAD + (size_t)plen;
    if (size > cap)
        return size;
    uint8_t *f = out;
    memcpy(f, ENS_JREC_MAGIC, 4);
    put(f + 12, plen, 4);
    uint8_t *end = put_payload(f + ENS_JREC_HEAD, r);
    assert(end == f + size);
    (void)end;
    put(f + 4, XXH3_64bits(f + 12, 4 + (size_t)plen), 8);
    return size;
}

size_t ens_jrec_size(const ens_jrec_t *r)
{
    return ens_jrec_encode(r, NULL, 0);
}

/* ---- decoding --------------------------------------------------------- */

/* A bounds-checked cursor over one payload: a read past the end sets bad
 * and yields zeros, so a parser checks once, at the end. */
typedef struct {
    const uint8_t *p, *end;
    int bad;
} cur_t;

static const uint8_t *take(cur_t *c, uint64_t n)
{
    if (c->bad || n > (uint64_t)(c->end - c->p)) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *q = c->p;
    c->p += n;
    return q;
}

static uint64_t le(const uint8_t *q, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | q[i];
    return v;
}

static uint64_t get(cur_t *c, int n)
{
    const uint8_t *q = take(c, (uint64_t)n);
    return q ? le(q, n) : 0;
}

static void get_name(cur_t *c, ens_jrec_t *r)
{
    r->dict.len = (size_t)get(c, 2);
    r->dict.name = (const char *)take(c, r->dict.len);
}

/* Expands a sparse row into x (ENS_MAX_MODELS bytes); 0, or -1 when the
 * pairs are not strictly increasing models with non-missing symbols. */
static int get_sparse(cur_t *c, size_t count, uint8_t *x, size_t *nx)
{
    const uint8_t *q = take(c, 3 * (uint64_t)count);
    if (!q)
        return -1;
    size_t next = 0; /* the smallest model the next pair may name */
    for (size_t i = 0; i < count; i++, q += 3) {
        size_t m = (size_t)q[0] | (size_t)q[1] << 8;
        if (m < next || m >= ENS_MAX_MODELS || q[2] == ENS_SYM_MISSING)
            return -1;
        memset(x + next, ENS_SYM_MISSING, m - next);
        x[m] = q[2];
        next = m + 1;
    }
    *nx = next;
    return 0;
}

/* A row's costs (form bit FORM_COSTS): one f64 per answer of x[0..nx),
 * into cost[0..nx). 0, or -1 when they are short, not one of the
 * encoder's NaN, or all NaN (the encoder would not have written them). */
static int get_costs(cur_t *c, const uint8_t *x, size_t nx, double *cost)
{
    int any = 0;
    for (size_t j = 0; j < nx; j++) {
        cost[j] = NAN;
        if (x[j] == ENS_SYM_MISSING)
            continue;
        uint64_t bits = get(c, 8);
        memcpy(&cost[j], &bits, sizeof(bits));
        if (isnan(cost[j]) && bits != COST_NONE_BITS)
            return -1;
        any |= !isnan(cost[j]);
    }
    return c->bad || !any ? -1 : 0;
}

static int get_row(cur_t *c, ens_jrec_t *r, uint8_t *scratch, double *cost)
{
    r->row.seq = get(c, 8);
    r->row.task = (uint32_t)get(c, 4);
    uint64_t bits = get(c, 8);
    memcpy(&r->row.ts, &bits, sizeof(bits));
    r->row.y = (uint8_t)get(c, 1);
    int form = (int)get(c, 1);
    size_t count = (size_t)get(c, 2);
    if (c->bad)
        return -1;
    r->row.ordinary = (form & FORM_ORDINARY) != 0;
    int costs = (form & FORM_COSTS) != 0;
    form &= ~(FORM_ORDINARY | FORM_COSTS);
    if (form == FORM_SPARSE) {
        r->row.x = scratch;
        if (get_sparse(c, count, scratch, &r->row.nx) < 0)
            return -1;
    } else {
        r->row.x = take(c, count);
        r->row.nx = count;
        /* A dense row stops at its last asked model: otherwise two
         * encodings would mean one row, and a re-encoding would not give
         * the same nx. */
        if (form != FORM_DENSE || c->bad || (count > 0 && r->row.x[count - 1] == ENS_SYM_MISSING))
            return -1;
    }
    if (!costs)
        return 0;
    r->row.cost = cost;
    return get_costs(c, r->row.x, r->row.nx, cost);
}

static void get_block(cur_t *c, ens_jrec_t *r)
{
    r->block.task = (uint32_t)get(c, 4);
    r->block.nrows = get(c, 8);
    r->block.nmodels = (uint32_t)get(c, 4);
    uint64_t n = r->block.nrows, m = r->block.nmodels;
    /* The declared shape must fit the bytes present before any product of
     * it is formed: n * (9 + m) could wrap otherwise. */
    if (c->bad || m > ENS_MAX_MODELS || n > (uint64_t)(c->end - c->p) / (9 + m)) {
        c->bad = 1;
        return;
    }
    r->block.y = take(c, n);
    r->block.ts = take(c, 8 * n);
    r->block.x = take(c, n * m);
    /* The rows' flags, when the writer had them: exactly n more bytes;
     * more than that: the flags, then the costs, whose size the flags per
     * model and the answers present fix (parse_payload checks it is all). */
    uint64_t rest = (uint64_t)(c->end - c->p);
    if (n == 0 || c->bad || rest < n)
        return;
    r->block.ordinary = take(c, n);
    if (rest == n)
        return;
    r->block.cost_models = take(c, m);
    if (c->bad)
        return;
    r->block.costs = take(c, 8 * block_stored(r, r->block.cost_models));
}

/* Parses payload[0..len) into *r (a sparse row and a row's costs into
 * rd's scratch): 0, or -1 when it breaks a rule. */
static int parse_payload(const uint8_t *payload, size_t len, ens_jrec_t *r, ens_jreader_t *rd)
{
    cur_t c = {payload, payload + len, 0};
    memset(r, 0, sizeof(*r));
    r->kind = (ens_jrec_kind_t)get(&c, 1);
    switch (r->kind) {
    case ENS_JREC_HEADER:
        r->header.format = (uint32_t)get(&c, 4);
        r->header.seq = get(&c, 8);
        r->header.journal = get(&c, 8);
        break;
    case ENS_JREC_TASK:
    case ENS_JREC_QUERY:
        r->dict.task = (uint32_t)get(&c, 4);
        get_name(&c, r);
        break;
    case ENS_JREC_MODEL:
    case ENS_JREC_LABEL:
        r->dict.task = (uint32_t)get(&c, 4);
        r->dict.id = (uint32_t)get(&c, 4);
        get_name(&c, r);
        break;
    case ENS_JREC_ROW:
        if (get_row(&c, r, rd->x, rd->cost) < 0)
            return -1;
        break;
    case ENS_JREC_VERSION:
        r->version.task = (uint32_t)get(&c, 4);
        r->version.version = get(&c, 8);
        break;
    case ENS_JREC_BLOCK:
        get_block(&c, r);
        break;
    case ENS_JREC_ANSWERS:
        r->answers.task = (uint32_t)get(&c, 4);
        r->answers.answers = (uint8_t)get(&c, 1);
        r->answers.normalize = (uint8_t)get(&c, 1);
        break;
    default:
        return -1;
    }
    if (c.bad || c.p != c.end)
        return -1;
    return ens_jrec_check(r) == 0 ? 0 : -1;
}

/* ---- reading a file image --------------------------------------------- */

void ens_jreader_init(ens_jreader_t *rd, const void *buf, size_t len, size_t max_record)
{
    memset(rd, 0, sizeof(*rd));
    rd->buf = buf;
    rd->len = len;
    rd->max_record = max_record;
}

enum { FRAME_OK, FRAME_DAMAGED, FRAME_UNPARSABLE };

/* Looks at the frame at off. FRAME_OK: *out holds its record; damaged: no
 * frame verifies here; unparsable: a verified frame of *flen bytes whose
 * payload breaks the rules (a later format, or a bug, not damage). */
static int try_frame(ens_jreader_t *rd, size_t off, ens_jrec_t *out, size_t *flen)
{
    const uint8_t *f = rd->buf + off;
    size_t room = rd->len - off;
    if (room < ENS_JREC_HEAD || memcmp(f, ENS_JREC_MAGIC, 4) != 0)
        return FRAME_DAMAGED;
    uint64_t plen = le(f + 12, 4);
    /* The length is checked before it is used: against the caller's limit,
     * so that a damaged length cannot make us hash gigabytes, and against
     * the bytes present. */
    if (plen > rd->max_record || plen > room - ENS_JREC_HEAD)
        return FRAME_DAMAGED;
    if (le(f + 4, 8) != XXH3_64bits(f + 12, 4 + (size_t)plen))
        return FRAME_DAMAGED;
    *flen = ENS_JREC_HEAD + (size_t)plen;
    if (parse_payload(f + ENS_JREC_HEAD, (size_t)plen, out, rd) < 0)
        return FRAME_UNPARSABLE;
    return FRAME_OK;
}

/* The offset of the next magic at or after from, or len when none starts
 * a whole frame header. */
static size_t next_magic(const ens_jreader_t *rd, size_t from)
{
    const uint8_t m0 = (uint8_t)ENS_JREC_MAGIC[0];
    while (from < rd->len && rd->len - from >= ENS_JREC_HEAD) {
        const uint8_t *q = memchr(rd->buf + from, m0, rd->len - from - ENS_JREC_HEAD + 1);
        if (!q)
            break;
        size_t at = (size_t)(q - rd->buf);
        if (memcmp(q, ENS_JREC_MAGIC, 4) == 0)
            return at;
        from = at + 1;
    }
    return rd->len;
}

int ens_jreader_next(ens_jreader_t *rd, ens_jrec_t *out)
{
    while (rd->off < rd->len) {
        size_t flen = 0;
        int rc = try_frame(rd, rd->off, out, &flen);
        if (rc == FRAME_OK) {
            /* Whatever lies between the previous good record and this one
             * was one damaged region, however many frames it held. */
            if (rd->off > rd->st.good_end) {
                rd->st.corrupt++;
                rd->st.skipped += rd->off - rd->st.good_end;
            }
            rd->st.records++;
            rd->st.last_off = rd->off;
            rd->off += flen;
            rd->st.good_end = rd->off;
            return 1;
        }
        /* A verified frame is skipped whole: its payload is intact, so a
         * magic inside it is data, not a frame. Anything else may have a
         * good frame starting at any later byte. */
        rd->off = rc == FRAME_UNPARSABLE ? rd->off + flen : next_magic(rd, rd->off + 1);
    }
    memset(out, 0, sizeof(*out));
    return 0;
}
