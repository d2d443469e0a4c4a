/* test_journal.c - the persistence record codec (journal.h).
 *
 * The encoder is checked byte for byte against frames built here by hand
 * from the layout journal.h documents (the payload bytes spelled out, the
 * checksum computed with libxxhash directly); the reader is checked on
 * round trips of every kind and on damaged images: a flipped byte, a half
 * record, a torn tail, garbage, an oversized length and verified frames
 * whose payload breaks a rule. In every damaged image the records expected
 * back are known independently (the frames left intact), and the reader's
 * accounting must cover every byte exactly once.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "ensembled/err.h"
#include "ensembled/journal.h"
#include "testutil.h"

/* ---- building bytes by hand ------------------------------------------ */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes_t;

static void b_raw(bytes_t *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n)
        memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void b_le(bytes_t *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) {
        uint8_t c = i < 8 ? (uint8_t)(v >> (8 * i)) : 0;
        b_raw(b, &c, 1);
    }
}

/* The frame journal.h documents around payload[0..n): magic, XXH3-64 of
 * (u32 length, payload), u32 length, payload. */
static void b_frame(bytes_t *b, const uint8_t *payload, size_t n)
{
    bytes_t covered = {0};
    b_le(&covered, n, 4);
    b_raw(&covered, payload, n);
    b_raw(b, "\xE5\x4A\x52\x43", 4);
    b_le(b, XXH3_64bits(covered.p, covered.n), 8);
    b_raw(b, covered.p, covered.n);
    free(covered.p);
}

/* Encodes r into a fresh buffer through the size-then-write protocol. */
static uint8_t *encode(const ens_jrec_t *r, size_t *size)
{
    size_t n = ens_jrec_size(r);
    assert_true(n >= ENS_JREC_HEAD);
    uint8_t *out = malloc(n);
    assert_non_null(out);
    assert_int_equal(ens_jrec_encode(r, out, n - 1), n); /* too small: nothing written */
    assert_int_equal(ens_jrec_encode(r, out, n), n);
    *size = n;
    return out;
}

static void assert_encodes_to(const ens_jrec_t *r, const uint8_t *payload, size_t n)
{
    bytes_t want = {0};
    b_frame(&want, payload, n);
    size_t size;
    uint8_t *got = encode(r, &size);
    assert_int_equal(size, want.n);
    assert_memory_equal(got, want.p, want.n);
    free(got);
    free(want.p);
}

/* Reads a whole image; returns the records' count and leaves the reader's
 * counts in *rd. Checks that every byte is accounted for exactly once. */
static size_t read_all(ens_jreader_t *rd, const uint8_t *img, size_t len, size_t max_record,
                       ens_jrec_t *recs, size_t max_recs)
{
    ens_jreader_init(rd, img, len, max_record);
    size_t n = 0, framed = 0;
    ens_jrec_t r;
    while (ens_jreader_next(rd, &r) == 1) {
        assert_true(rd->st.good_end <= len && rd->st.last_off < rd->st.good_end);
        framed += rd->st.good_end - rd->st.last_off;
        if (n < max_recs)
            recs[n] = r;
        n++;
    }
    assert_int_equal(rd->st.records, n);
    assert_int_equal(framed + rd->st.skipped + (len - rd->st.good_end), len);
    assert_int_equal(ens_jreader_next(rd, &r), 0); /* stays at the end */
    return n;
}

/* A copy of p in a heap block of exactly n bytes, so that ASan sees a read
 * one byte past it. */
static uint8_t *exact(const void *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);
    assert_non_null(q);
    if (n)
        memcpy(q, p, n);
    return q;
}

/* ---- the layout, byte for byte --------------------------------------- */

static void test_journal_header_version_bytes(void **state)
{
    (void)state;
    ens_jrec_t r = {.kind = ENS_JREC_HEADER};
    r.header.format = 1;
    r.header.seq = UINT64_C(0x0102030405060708);
    r.header.journal = 42;
    const uint8_t hp[] = {0x01, 1,    0,  0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03,
                          0x02, 0x01, 42, 0, 0, 0,    0,    0,    0,    0};
    assert_encodes_to(&r, hp, sizeof(hp));

    ens_jrec_t v = {.kind = ENS_JREC_VERSION};
    v.version.task = 0xA1B2C3D4;
    v.version.version = UINT64_C(0xFFFFFFFFFFFFFFFF);
    const uint8_t vp[] = {0x06, 0xD4, 0xC3, 0xB2, 0xA1, 0xFF, 0xFF,
                          0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    assert_encodes_to(&v, vp, sizeof(vp));
}

static void test_journal_dict_bytes(void **state)
{
    (void)state;
    ens_jrec_t t = {.kind = ENS_JREC_TASK};
    t.dict.task = 7;
    t.dict.name = "q\0a";
    t.dict.len = 3;
    const uint8_t tp[] = {0x02, 7, 0, 0, 0, 3, 0, 'q', 0, 'a'};
    assert_encodes_to(&t, tp, sizeof(tp));

    ens_jrec_t m = {.kind = ENS_JREC_MODEL};
    m.dict.task = 7;
    m.dict.id = 1023;
    m.dict.name = "gpt";
    m.dict.len = 3;
    const uint8_t mp[] = {0x03, 7, 0, 0, 0, 0xFF, 0x03, 0, 0, 3, 0, 'g', 'p', 't'};
    assert_encodes_to(&m, mp, sizeof(mp));

    ens_jrec_t l = {.kind = ENS_JREC_LABEL};
    l.dict.task = 0x01000000;
    l.dict.id = 253;
    l.dict.name = "\0";
    l.dict.len = 1;
    const uint8_t lp[] = {0x04, 0, 0, 0, 1, 253, 0, 0, 0, 1, 0, 0};
    assert_encodes_to(&l, lp, sizeof(lp));

    ens_jrec_t q = {.kind = ENS_JREC_QUERY};
    q.dict.task = 2;
    q.dict.name = "sq7";
    q.dict.len = 3;
    const uint8_t qp[] = {0x09, 2, 0, 0, 0, 3, 0, 's', 'q', '7'};
    assert_encodes_to(&q, qp, sizeof(qp));
}

static void test_journal_row_bytes(void **state)
{
    (void)state;
    /* 1.5 is 0x3FF8000000000000. Dense: 4 answers, 3 asked; the trailing
     * miss is not written. */
    const uint8_t x[] = {2, ENS_SYM_MISSING, ENS_SYM_ABSTAIN, 0, ENS_SYM_MISSING};
    ens_jrec_t r = {.kind = ENS_JREC_ROW};
    r.row.seq = 300;
    r.row.task = 2;
    r.row.ts = 1.5;
    r.row.y = 1;
    r.row.x = x;
    r.row.nx = sizeof(x);
    const uint8_t dp[] = {0x05, 0x2C, 0x01, 0, 0,    0,    0, 0, 0, 2, 0, 0,    0,    0, 0,
                          0,    0,    0,    0, 0xF8, 0x3F, 1, 0, 4, 0, 2, 0xFF, 0xFE, 0};
    assert_encodes_to(&r, dp, sizeof(dp));

    /* Sparse: models 3 and 600 asked among 601 (6 bytes < 601). */
    uint8_t sx[601];
    memset(sx, ENS_SYM_MISSING, sizeof(sx));
    sx[3] = 9;
    sx[600] = ENS_SYM_ABSTAIN;
    r.row.x = sx;
    r.row.nx = sizeof(sx);
    r.row.ts = 0;
    const uint8_t sp[] = {0x05, 0x2C, 0x01, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,    0,    0,   0,
                          0,    0,    0,    0, 0, 1, 1, 2, 0, 3, 0, 9, 0x58, 0x02, 0xFE};
    assert_encodes_to(&r, sp, sizeof(sp));

    /* Nothing asked: an empty dense row. */
    r.row.x = NULL;
    r.row.nx = 0;
    const uint8_t ep[] = {0x05, 0x2C, 0x01, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
                          0,    0,    0,    0, 0, 0, 0, 0, 1, 0, 0, 0};
    assert_encodes_to(&r, ep, sizeof(ep));
}

static void test_journal_block_bytes(void **state)
{
    (void)state;
    /* Two rows of three answers; ts 1.5 and -2.0 (0xC000000000000000). */
    const uint8_t y[] = {0, 3};
    const uint8_t ts[] = {0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0, 0, 0, 0, 0, 0, 0, 0xC0};
    const uint8_t x[] = {0, 1, 2, ENS_SYM_MISSING, ENS_SYM_ABSTAIN, 3};
    ens_jrec_t r = {.kind = ENS_JREC_BLOCK};
    r.block.task = 5;
    r.block.nrows = 2;
    r.block.nmodels = 3;
    r.block.y = y;
    r.block.ts = ts;
    r.block.x = x;
    bytes_t p = {0};
    const uint8_t head[] = {0x07, 5, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0};
    b_raw(&p, head, sizeof(head));
    b_raw(&p, y, sizeof(y));
    b_raw(&p, ts, sizeof(ts));
    b_raw(&p, x, sizeof(x));
    assert_encodes_to(&r, p.p, p.n);
    free(p.p);
    assert_true(ens_jrec_block_ts(&r, 0) == 1.5);
    assert_true(ens_jrec_block_ts(&r, 1) == -2.0);
}

/* ---- round trips ------------------------------------------------------ */

/* Encodes r, reads it back alone, and returns the decoded record. */
static ens_jrec_t round_trip(const ens_jrec_t *r, ens_jreader_t *rd, uint8_t **img)
{
    size_t n;
    *img = encode(r, &n);
    ens_jrec_t out;
    assert_int_equal(read_all(rd, *img, n, ENS_JREC_MAX_PAYLOAD, &out, 1), 1);
    assert_int_equal(rd->st.good_end, n);
    assert_int_equal(rd->st.corrupt, 0);
    assert_int_equal(out.kind, r->kind);
    return out;
}

static void check_dict_round_trip(ens_jrec_kind_t kind, const char *name, size_t len)
{
    ens_jrec_t r = {.kind = kind}, out;
    r.dict.task = 0xFFFFFFFF;
    int no_id = kind == ENS_JREC_TASK || kind == ENS_JREC_QUERY;
    r.dict.id = no_id ? 0 : kind == ENS_JREC_MODEL ? 1023 : 253;
    r.dict.name = name;
    r.dict.len = len;
    ens_jreader_t rd;
    uint8_t *img;
    out = round_trip(&r, &rd, &img);
    assert_int_equal(out.dict.task, r.dict.task);
    assert_int_equal(out.dict.id, r.dict.id);
    assert_int_equal(out.dict.len, len);
    assert_memory_equal(out.dict.name, name, len);
    /* Borrowed from the image, right after the u16 length. */
    size_t at = ENS_JREC_HEAD + (no_id ? 7 : 11);
    assert_ptr_equal(out.dict.name, (const char *)img + at);
    free(img);
}

static void test_journal_round_trip_names(void **state)
{
    (void)state;
    char *big = malloc(ENS_JREC_MAX_NAME);
    for (size_t i = 0; i < ENS_JREC_MAX_NAME; i++)
        big[i] = (char)(i * 7); /* NUL every 256 bytes */
    const ens_jrec_kind_t kinds[] = {ENS_JREC_TASK, ENS_JREC_MODEL, ENS_JREC_LABEL, ENS_JREC_QUERY};
    for (size_t k = 0; k < 4; k++) {
        check_dict_round_trip(kinds[k], "x", 1);
        check_dict_round_trip(kinds[k], "\0", 1);
        check_dict_round_trip(kinds[k], "a\0b\0", 4);
        check_dict_round_trip(kinds[k], big, ENS_JREC_MAX_NAME);
    }
    free(big);
}

static void test_journal_round_trip_header_version(void **state)
{
    (void)state;
    ens_jreader_t rd;
    uint8_t *img;
    ens_jrec_t h = {.kind = ENS_JREC_HEADER};
    h.header.format = ENS_JREC_FORMAT;
    h.header.seq = UINT64_MAX;
    h.header.journal = 12345;
    ens_jrec_t out = round_trip(&h, &rd, &img);
    assert_int_equal(out.header.format, ENS_JREC_FORMAT);
    assert_true(out.header.seq == UINT64_MAX);
    assert_int_equal(out.header.journal, 12345);
    free(img);

    ens_jrec_t v = {.kind = ENS_JREC_VERSION};
    v.version.task = 3;
    v.version.version = UINT64_C(1) << 40;
    out = round_trip(&v, &rd, &img);
    assert_int_equal(out.version.task, 3);
    assert_true(out.version.version == UINT64_C(1) << 40);
    free(img);
}

/* ANSWERS (open answers, open.h): its bytes, and back. */
static void test_journal_answers(void **state)
{
    (void)state;
    ens_jrec_t a = {.kind = ENS_JREC_ANSWERS};
    a.answers.task = 0xA1B2C3D4;
    a.answers.answers = 1;   /* open */
    a.answers.normalize = 2; /* numeric */
    const uint8_t ap[] = {0x08, 0xD4, 0xC3, 0xB2, 0xA1, 1, 2};
    assert_encodes_to(&a, ap, sizeof(ap));
    ens_jreader_t rd;
    uint8_t *img;
    ens_jrec_t out = round_trip(&a, &rd, &img);
    assert_int_equal(out.kind, ENS_JREC_ANSWERS);
    assert_true(out.answers.task == 0xA1B2C3D4);
    assert_int_equal(out.answers.answers, 1);
    assert_int_equal(out.answers.normalize, 2);
    free(img);
    assert_string_equal(ens_jrec_kind_name(8), "answers");
    a.answers.answers = 2;
    assert_int_equal(ens_jrec_check(&a), ENS_EINVAL);
    assert_int_equal(ens_jrec_size(&a), 0);
}

/* Round trip of one row: the decoded x must be the input up to its last
 * asked model, the form the smaller one. */
static void check_row(const uint8_t *x, size_t nx, double ts)
{
    size_t last = 0, asked = 0;
    for (size_t j = 0; j < nx; j++)
        if (x[j] != ENS_SYM_MISSING) {
            last = j + 1;
            asked++;
        }
    ens_jrec_t r = {.kind = ENS_JREC_ROW};
    r.row.seq = 99;
    r.row.task = 4;
    r.row.ts = ts;
    r.row.y = 253;
    r.row.x = x;
    r.row.nx = nx;
    ens_jreader_t rd;
    uint8_t *img;
    ens_jrec_t out = round_trip(&r, &rd, &img);
    int sparse = 3 * asked < last;
    assert_int_equal(rd.st.good_end, ENS_JREC_HEAD + 25 + (sparse ? 3 * asked : last));
    assert_int_equal(img[ENS_JREC_HEAD + 22], sparse);
    assert_true(out.row.seq == 99 && out.row.task == 4 && out.row.y == 253);
    assert_memory_equal(&out.row.ts, &ts, sizeof(ts));
    assert_int_equal(out.row.nx, last);
    if (last)
        assert_memory_equal(out.row.x, x, last);
    free(img);
}

static void test_journal_round_trip_rows(void **state)
{
    (void)state;
    static uint8_t x[ENS_MAX_MODELS];
    check_row(NULL, 0, 0.0);
    memset(x, ENS_SYM_MISSING, sizeof(x));
    check_row(x, sizeof(x), -1.0); /* nothing asked: nx 0 */
    for (size_t j = 0; j < sizeof(x); j++)
        x[j] = (uint8_t)(j % 256);
    x[sizeof(x) - 1] = 0;
    check_row(x, sizeof(x), 1700000000.25); /* the largest row, dense */
    tu_rng_t g;
    tu_seed(&g, 7);
    for (int it = 0; it < 2000; it++) {
        size_t nx = tu_below(&g, 60);
        size_t keep = tu_below(&g, 101); /* percent asked */
        for (size_t j = 0; j < nx; j++)
            x[j] = tu_below(&g, 100) < keep ? (uint8_t)tu_below(&g, 255) : ENS_SYM_MISSING;
        uint64_t bits = tu_next(&g);
        double ts;
        memcpy(&ts, &bits, sizeof(ts)); /* any bit pattern, NaNs included */
        check_row(x, nx, ts);
    }
    /* The sparse row's x is the reader's: the next sparse row overwrites it. */
    memset(x, ENS_SYM_MISSING, sizeof(x));
    x[1000] = 5;
    check_row(x, sizeof(x), 3.0);
}

static void test_journal_round_trip_block(void **state)
{
    (void)state;
    const size_t n = 1000, m = 7;
    uint8_t *y = malloc(n), *ts = malloc(8 * n), *x = malloc(n * m);
    tu_rng_t g;
    tu_seed(&g, 11);
    for (size_t i = 0; i < n; i++) {
        y[i] = (uint8_t)tu_below(&g, ENS_MAX_LABELS);
        double v = (double)i * 0.5 - 3;
        uint64_t bits;
        memcpy(&bits, &v, 8);
        for (int b = 0; b < 8; b++)
            ts[8 * i + (size_t)b] = (uint8_t)(bits >> (8 * b));
    }
    for (size_t i = 0; i < n * m; i++)
        x[i] = (uint8_t)tu_next(&g);
    ens_jrec_t r = {.kind = ENS_JREC_BLOCK};
    r.block.task = 9;
    r.block.nrows = n;
    r.block.nmodels = (uint32_t)m;
    r.block.y = y;
    r.block.ts = ts;
    r.block.x = x;
    ens_jreader_t rd;
    uint8_t *img;
    ens_jrec_t out = round_trip(&r, &rd, &img);
    assert_int_equal(out.block.task, 9);
    assert_int_equal(out.block.nrows, n);
    assert_int_equal(out.block.nmodels, m);
    assert_memory_equal(out.block.y, y, n);
    assert_memory_equal(out.block.ts, ts, 8 * n);
    assert_memory_equal(out.block.x, x, n * m);
    for (size_t i = 0; i < n; i++)
        assert_true(ens_jrec_block_ts(&out, i) == (double)i * 0.5 - 3);
    free(img);
    /* Empty blocks: no rows, or rows without models. */
    r.block.nrows = 0;
    out = round_trip(&r, &rd, &img);
    assert_int_equal(out.block.nrows, 0);
    assert_int_equal(rd.st.good_end, ENS_JREC_HEAD + 17);
    free(img);
    r.block.nrows = 3;
    r.block.nmodels = 0;
    out = round_trip(&r, &rd, &img);
    assert_int_equal(out.block.nrows, 3);
    assert_memory_equal(out.block.y, y, 3);
    free(img);
    free(y);
    free(ts);
    free(x);
}

/* ---- what the encoder refuses ----------------------------------------- */

static void assert_refused(const ens_jrec_t *r, int err)
{
    uint8_t buf[64];
    memset(buf, 0xAA, sizeof(buf));
    assert_int_equal(ens_jrec_check(r), err);
    assert_int_equal(ens_jrec_encode(r, buf, sizeof(buf)), 0);
    assert_int_equal(ens_jrec_size(r), 0);
    for (size_t i = 0; i < sizeof(buf); i++)
        assert_int_equal(buf[i], 0xAA);
}

static void test_journal_encoder_refuses(void **state)
{
    (void)state;
    char *big = calloc(ENS_JREC_MAX_NAME + 1, 1);
    ens_jrec_t r = {.kind = ENS_JREC_TASK};
    r.dict.name = "a";
    assert_refused(&r, ENS_EINVAL); /* empty name */
    r.dict.name = NULL;
    r.dict.len = 1;
    assert_refused(&r, ENS_EINVAL);
    r.dict.name = big;
    r.dict.len = ENS_JREC_MAX_NAME + 1;
    assert_refused(&r, ENS_ETOOLONG);
    r.kind = ENS_JREC_MODEL;
    r.dict.len = 1;
    r.dict.id = ENS_MAX_MODELS;
    assert_refused(&r, ENS_EINVAL);
    r.kind = ENS_JREC_LABEL;
    r.dict.id = ENS_MAX_LABELS;
    assert_refused(&r, ENS_EINVAL);
    free(big);

    uint8_t x[ENS_MAX_MODELS + 1] = {0};
    ens_jrec_t row = {.kind = ENS_JREC_ROW};
    row.row.x = x;
    row.row.y = ENS_SYM_ABSTAIN;
    assert_refused(&row, ENS_EINVAL);
    row.row.y = ENS_SYM_MISSING;
    assert_refused(&row, ENS_EINVAL);
    row.row.y = 0;
    row.row.nx = ENS_MAX_MODELS + 1;
    assert_refused(&row, ENS_ETOOBIG);
    row.row.x = NULL;
    row.row.nx = 3;
    assert_refused(&row, ENS_EINVAL);

    const uint8_t y[] = {0, ENS_SYM_ABSTAIN}, ts[16] = {0};
    ens_jrec_t b = {.kind = ENS_JREC_BLOCK};
    b.block.nmodels = ENS_MAX_MODELS + 1;
    assert_refused(&b, ENS_ETOOBIG);
    /* One row more than a u32 payload holds (17 + n * (9 + m) bytes);
     * refused before any array is looked at. */
    b.block.nmodels = 3;
    b.block.nrows = (UINT64_C(0xFFFFFFFF) - 17) / 12 + 1;
    assert_refused(&b, ENS_ETOOBIG);
    b.block.nrows = UINT64_MAX;
    assert_refused(&b, ENS_ETOOBIG);
    b.block.nrows = 2;
    b.block.nmodels = 0;
    b.block.y = y;
    b.block.ts = ts;
    assert_refused(&b, ENS_EINVAL); /* y[1] is not a label */
    b.block.y = NULL;
    assert_refused(&b, ENS_EINVAL);

    ens_jrec_t k = {.kind = 0};
    assert_refused(&k, ENS_EINVAL);
    k.kind = (ens_jrec_kind_t)10;
    assert_refused(&k, ENS_EINVAL);
    assert_string_equal(ens_jrec_kind_name(ENS_JREC_BLOCK), "block");
    assert_string_equal(ens_jrec_kind_name(ENS_JREC_ANSWERS), "answers");
    assert_string_equal(ens_jrec_kind_name(ENS_JREC_QUERY), "query");
    assert_string_equal(ens_jrec_kind_name(10), "unknown");
}

/* A row's query flag: ROW's form bit 2, BLOCK's trailing bytes; a record
 * without them reads as explored (ordinary 0, no flags). */
static void test_journal_ordinary_bytes(void **state)
{
    (void)state;
    const uint8_t x[] = {2, ENS_SYM_MISSING, ENS_SYM_ABSTAIN, 0};
    ens_jrec_t r = {.kind = ENS_JREC_ROW};
    r.row.seq = 300;
    r.row.task = 2;
    r.row.ts = 1.5;
    r.row.y = 1;
    r.row.x = x;
    r.row.nx = sizeof(x);
    r.row.ordinary = 1;
    const uint8_t dp[] = {0x05, 0x2C, 0x01, 0, 0,    0,    0, 0, 0, 2, 0, 0,    0,    0, 0,
                          0,    0,    0,    0, 0xF8, 0x3F, 1, 2, 4, 0, 2, 0xFF, 0xFE, 0};
    assert_encodes_to(&r, dp, sizeof(dp));
    ens_jreader_t rd;
    ens_jrec_t out;
    bytes_t img = {0};
    b_frame(&img, dp, sizeof(dp));
    uint8_t *e = exact(img.p, img.n);
    assert_int_equal(read_all(&rd, e, img.n, 1 << 20, &out, 1), 1);
    assert_int_equal(out.row.ordinary, 1);
    assert_int_equal(out.row.nx, 4);
    free(e);
    free(img.p);
    r.row.ordinary = 2;
    assert_refused(&r, ENS_EINVAL);

    const uint8_t y[] = {0, 3}, ord[] = {1, 0};
    const uint8_t ts[16] = {0};
    const uint8_t bx[] = {0, 1};
    ens_jrec_t b = {.kind = ENS_JREC_BLOCK};
    b.block.task = 5;
    b.block.nrows = 2;
    b.block.nmodels = 1;
    b.block.y = y;
    b.block.ts = ts;
    b.block.x = bx;
    b.block.ordinary = ord;
    bytes_t p = {0};
    const uint8_t head[] = {0x07, 5, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0};
    b_raw(&p, head, sizeof(head));
    b_raw(&p, y, sizeof(y));
    b_raw(&p, ts, sizeof(ts));
    b_raw(&p, bx, sizeof(bx));
    b_raw(&p, ord, sizeof(ord));
    assert_encodes_to(&b, p.p, p.n);
    img = (bytes_t){0};
    b_frame(&img, p.p, p.n);
    e = exact(img.p, img.n);
    assert_int_equal(read_all(&rd, e, img.n, 1 << 20, &out, 1), 1);
    assert_non_null(out.block.ordinary);
    assert_int_equal(out.block.ordinary[0], 1);
    assert_int_equal(out.block.ordinary[1], 0);
    free(e);
    free(img.p);
    /* Without the bytes (a file written before them): no flags. */
    img = (bytes_t){0};
    b_frame(&img, p.p, p.n - sizeof(ord));
    e = exact(img.p, img.n);
    assert_int_equal(read_all(&rd, e, img.n, 1 << 20, &out, 1), 1);
    assert_null(out.block.ordinary);
    free(e);
    free(img.p);
    free(p.p);
    uint8_t two[] = {2, 0};
    b.block.ordinary = two;
    assert_refused(&b, ENS_EINVAL);
}

/* ---- what the reader refuses ------------------------------------------ */

/* A verified frame around a payload that breaks a rule: alone it yields
 * nothing; before a good record it is one skipped region of its size. */
static void assert_payload_refused(const uint8_t *payload, size_t n)
{
    bytes_t img = {0};
    b_frame(&img, payload, n);
    size_t bad = img.n;
    const uint8_t good[] = {0x06, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0};
    ens_jreader_t rd;
    ens_jrec_t out;
    uint8_t *e = exact(img.p, img.n);
    assert_int_equal(read_all(&rd, e, img.n, 1 << 20, &out, 1), 0);
    assert_int_equal(rd.st.good_end, 0);
    free(e);
    b_frame(&img, good, sizeof(good));
    e = exact(img.p, img.n);
    assert_int_equal(read_all(&rd, e, img.n, 1 << 20, &out, 1), 1);
    assert_int_equal(out.kind, ENS_JREC_VERSION);
    assert_int_equal(rd.st.corrupt, 1);
    assert_int_equal(rd.st.skipped, bad);
    assert_int_equal(rd.st.good_end, img.n);
    free(e);
    free(img.p);
}

#define REFUSED(...)                                                                               \
    do {                                                                                           \
        const uint8_t p_[] = {__VA_ARGS__};                                                        \
        assert_payload_refused(p_, sizeof(p_));                                                    \
    } while (0)

/* The ROW prefix up to y: kind, seq 1, task 1, ts 0. */
#define ROWHEAD 5, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

static void test_journal_reader_refuses_payloads(void **state)
{
    (void)state;
    assert_payload_refused(NULL, 0);
    REFUSED(0);
    REFUSED(9, 0, 0, 0, 0);
    REFUSED(8, 1, 0, 0, 0, 1);       /* ANSWERS short */
    REFUSED(8, 1, 0, 0, 0, 1, 0, 0); /* ANSWERS long */
    REFUSED(8, 1, 0, 0, 0, 2, 0);    /* ANSWERS: no answers 2 */
    REFUSED(8, 1, 0, 0, 0, 1, 3);    /* ANSWERS: no normalize 3 */
    REFUSED(1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);       /* HEADER short */
    REFUSED(1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0); /* HEADER long */
    REFUSED(2, 1, 0, 0, 0, 0, 0);                    /* TASK, empty name */
    REFUSED(2, 1, 0, 0, 0, 3, 0, 'a', 'b');          /* name shorter than declared */
    REFUSED(2, 1, 0, 0, 0, 1, 0, 'a', 'b');          /* a byte after the name */
    REFUSED(3, 1, 0, 0, 0, 0, 4, 0, 0, 1, 0, 'm');   /* model id 1024 */
    REFUSED(4, 1, 0, 0, 0, 254, 0, 0, 0, 1, 0, 'l'); /* label id 254 */
    REFUSED(ROWHEAD, 0xFE, 0, 0, 0);                 /* y abstained */
    REFUSED(ROWHEAD, 0xFF, 0, 0, 0);                 /* y missing */
    REFUSED(ROWHEAD, 0, 4, 0, 0);                    /* unknown form */
    REFUSED(ROWHEAD, 0, 6, 0, 0);                    /* unknown form, ordinary */
    REFUSED(ROWHEAD, 0, 0, 2, 0, 1, 0xFF);           /* dense, trailing miss */
    REFUSED(ROWHEAD, 0, 0, 3, 0, 1, 2);              /* dense, short */
    REFUSED(ROWHEAD, 0, 0, 1, 0, 1, 2);              /* dense, long */
    REFUSED(ROWHEAD, 0, 1, 2, 0, 5, 0, 1, 3, 0, 1);  /* sparse, decreasing */
    REFUSED(ROWHEAD, 0, 1, 2, 0, 3, 0, 1, 3, 0, 1);  /* sparse, repeated */
    REFUSED(ROWHEAD, 0, 1, 1, 0, 3, 0, 0xFF);        /* sparse, a miss */
    REFUSED(ROWHEAD, 0, 1, 1, 0, 0, 4, 1);           /* sparse, model 1024 */
    REFUSED(ROWHEAD, 0, 1, 2, 0, 3, 0, 1);           /* sparse, short */
    REFUSED(6, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0);     /* VERSION short */
    /* BLOCK: nrows 2^62 of 3 models would wrap a 64-bit product. */
    REFUSED(7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 3, 0, 0, 0, 0, 0, 0, 0);
    REFUSED(7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0); /* nmodels 1025 */
    REFUSED(7, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFE, 0, 0, 0, 0, 0, 0, 0, 0);
    REFUSED(7, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0); /* short */
    REFUSED(7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9);                      /* long */
    /* One row, no model: flags of 2 bytes, or a flag that is not 0 or 1. */
    REFUSED(7, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1);
    REFUSED(7, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2);
}

/* ---- the answers' costs ------------------------------------------------ */

/* A double's bits as journal.h stores them, little endian. */
static void b_f64(bytes_t *b, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    b_le(b, bits, 8);
}

/* Reads the one frame around payload[0..n) and returns its record; the
 * image stays alive in *img (freed by the caller). */
static ens_jrec_t read_one(const uint8_t *payload, size_t n, ens_jreader_t *rd, uint8_t **img)
{
    bytes_t f = {0};
    b_frame(&f, payload, n);
    *img = exact(f.p, f.n);
    ens_jrec_t out;
    assert_int_equal(read_all(rd, *img, f.n, 1 << 20, &out, 1), 1);
    assert_int_equal(rd->st.good_end, f.n);
    free(f.p);
    return out;
}

static void test_journal_row_costs(void **state)
{
    (void)state;
    /* Dense, 3 of 4 models asked: the costs of the three follow the
     * answers (0.5, none, 2.0); model 1's 7.0 goes with no answer. */
    const uint8_t x[] = {2, ENS_SYM_MISSING, ENS_SYM_ABSTAIN, 0};
    const double cost[] = {0.5, 7.0, NAN, 2.0};
    ens_jrec_t r = {.kind = ENS_JREC_ROW};
    r.row.seq = 300;
    r.row.task = 2;
    r.row.ts = 1.5;
    r.row.y = 1;
    r.row.x = x;
    r.row.nx = sizeof(x);
    r.row.cost = cost;
    bytes_t p = {0};
    const uint8_t head[] = {0x05, 0x2C, 0x01, 0, 0,    0,    0, 0, 0, 2, 0, 0,    0,    0, 0,
                            0,    0,    0,    0, 0xF8, 0x3F, 1, 4, 4, 0, 2, 0xFF, 0xFE, 0};
    b_raw(&p, head, sizeof(head));
    b_f64(&p, 0.5);
    b_le(&p, 0x7FF8000000000000ull, 8);
    b_f64(&p, 2.0);
    assert_encodes_to(&r, p.p, p.n);
    ens_jreader_t rd;
    uint8_t *img;
    ens_jrec_t out = read_one(p.p, p.n, &rd, &img);
    assert_int_equal(out.row.nx, 4);
    assert_non_null(out.row.cost);
    assert_true(out.row.cost[0] == 0.5 && out.row.cost[3] == 2.0);
    assert_true(isnan(out.row.cost[1]) && isnan(out.row.cost[2]));
    free(img);
    free(p.p);

    /* No answer with a cost: the bytes of a row without costs, which a
     * file written before costs holds, and which reads without them. */
    const double none[] = {NAN, 3.0, NAN, NAN}; /* 3.0: model 1 was not asked */
    r.row.cost = none;
    const uint8_t old[] = {0x05, 0x2C, 0x01, 0, 0,    0,    0, 0, 0, 2, 0, 0,    0,    0, 0,
                           0,    0,    0,    0, 0xF8, 0x3F, 1, 0, 4, 0, 2, 0xFF, 0xFE, 0};
    assert_encodes_to(&r, old, sizeof(old));
    out = read_one(old, sizeof(old), &rd, &img);
    assert_null(out.row.cost);
    free(img);

    /* Sparse: models 3 and 600 of 601, 0.01 and none, ordinary. */
    uint8_t sx[601];
    double sc[601];
    memset(sx, ENS_SYM_MISSING, sizeof(sx));
    for (size_t j = 0; j < 601; j++)
        sc[j] = NAN;
    sx[3] = 9;
    sx[600] = ENS_SYM_ABSTAIN;
    sc[3] = 0.01;
    r.row.x = sx;
    r.row.nx = sizeof(sx);
    r.row.cost = sc;
    r.row.ordinary = 1;
    p = (bytes_t){0};
    const uint8_t sp[] = {0x05, 0x2C, 0x01, 0,    0,    0, 0, 0, 0, 2, 0, 0, 0,    0,    0,   0,
                          0,    0,    0,    0xF8, 0x3F, 1, 7, 2, 0, 3, 0, 9, 0x58, 0x02, 0xFE};
    b_raw(&p, sp, sizeof(sp));
    b_f64(&p, 0.01);
    b_le(&p, 0x7FF8000000000000ull, 8);
    assert_encodes_to(&r, p.p, p.n);
    out = read_one(p.p, p.n, &rd, &img);
    assert_int_equal(out.row.nx, 601);
    assert_int_equal(out.row.ordinary, 1);
    assert_true(out.row.cost[3] == 0.01);
    for (size_t j = 0; j < 601; j++)
        if (j != 3)
            assert_true(isnan(out.row.cost[j]));
    free(img);
    free(p.p);

    /* The encoder refuses a cost that is negative or not finite. */
    double bad[] = {-0.5, NAN, NAN, NAN};
    r.row.x = x;
    r.row.nx = sizeof(x);
    r.row.cost = bad;
    r.row.ordinary = 0;
    assert_refused(&r, ENS_EINVAL);
    bad[0] = INFINITY;
    assert_refused(&r, ENS_EINVAL);
}

/* The BLOCK of test_journal_block_bytes with costs: model 0 costs 0.25 in
 * row 0, model 1 none in row 0 and 1.0 in row 1 (an abstention), model 2
 * none at all, so its costs are not stored. */
static void test_journal_block_costs(void **state)
{
    (void)state;
    const uint8_t y[] = {0, 3};
    const uint8_t ts[] = {0, 0, 0, 0, 0, 0, 0xF8, 0x3F, 0, 0, 0, 0, 0, 0, 0, 0xC0};
    const uint8_t x[] = {0, 1, 2, ENS_SYM_MISSING, ENS_SYM_ABSTAIN, 3};
    const double cost[] = {0.25, NAN, NAN, 9.0, 1.0, NAN};
    ens_jrec_t r = {.kind = ENS_JREC_BLOCK};
    r.block.task = 5;
    r.block.nrows = 2;
    r.block.nmodels = 3;
    r.block.y = y;
    r.block.ts = ts;
    r.block.x = x;
    r.block.cost = cost;
    bytes_t p = {0};
    const uint8_t head[] = {0x07, 5, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0};
    b_raw(&p, head, sizeof(head));
    b_raw(&p, y, sizeof(y));
    b_raw(&p, ts, sizeof(ts));
    b_raw(&p, x, sizeof(x));
    const uint8_t ord[] = {0, 0}, mask[] = {1, 1, 0};
    b_raw(&p, ord, sizeof(ord));
    b_raw(&p, mask, sizeof(mask));
    b_f64(&p, 0.25);
    b_le(&p, 0x7FF8000000000000ull, 8);
    b_f64(&p, 1.0);
    assert_encodes_to(&r, p.p, p.n);

    ens_jreader_t rd;
    uint8_t *img;
    ens_jrec_t out = read_one(p.p, p.n, &rd, &img);
    assert_null(out.block.cost);
    assert_non_null(out.block.cost_models);
    double got[3];
    size_t k = 0;
    ens_jrec_block_costs(&out, 0, &k, got);
    assert_true(got[0] == 0.25 && isnan(got[1]) && isnan(got[2]));
    ens_jrec_block_costs(&out, 1, &k, got);
    assert_true(isnan(got[0]) && got[1] == 1.0 && isnan(got[2]));
    assert_int_equal(k, 3);
    /* Re-encoding the decoded record gives the same bytes. */
    assert_encodes_to(&out, p.p, p.n);
    free(img);
    free(p.p);

    /* Without a cost the block is what it was before costs. */
    const double none[] = {NAN, NAN, NAN, 4.0, NAN, NAN};
    r.block.cost = none;
    p = (bytes_t){0};
    b_raw(&p, head, sizeof(head));
    b_raw(&p, y, sizeof(y));
    b_raw(&p, ts, sizeof(ts));
    b_raw(&p, x, sizeof(x));
    assert_encodes_to(&r, p.p, p.n);
    out = read_one(p.p, p.n, &rd, &img);
    assert_null(out.block.cost_models);
    assert_null(out.block.ordinary);
    free(img);
    free(p.p);

    double bad[] = {0.25, NAN, NAN, NAN, -1.0, NAN};
    r.block.cost = bad;
    assert_refused(&r, ENS_EINVAL);
}

/* The one-row, one-model BLOCK prefix up to its answer (x = 0). */
#define BLOCK1 7, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
#define F64_1 0, 0, 0, 0, 0, 0, 0xF0, 0x3F /* 1.0 */
#define F64_NAN 0, 0, 0, 0, 0, 0, 0xF8, 0x7F

static void test_journal_reader_refuses_costs(void **state)
{
    (void)state;
    /* A good row and block first, so that each refusal below is one. */
    const uint8_t row[] = {ROWHEAD, 0, 4, 1, 0, 0, F64_1};
    ens_jreader_t rd;
    uint8_t *img;
    ens_jrec_t out = read_one(row, sizeof(row), &rd, &img);
    assert_true(out.row.cost[0] == 1.0);
    free(img);
    const uint8_t block[] = {BLOCK1, 0, 1, F64_1};
    out = read_one(block, sizeof(block), &rd, &img);
    assert_non_null(out.block.cost_models);
    free(img);

    REFUSED(ROWHEAD, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xF0);       /* cost short */
    REFUSED(ROWHEAD, 0, 4, 1, 0, 0, F64_1, 0);                     /* a byte after */
    REFUSED(ROWHEAD, 0, 4, 1, 0, 0, F64_NAN);                      /* all none */
    REFUSED(ROWHEAD, 0, 4, 0, 0);                                  /* nothing asked */
    REFUSED(ROWHEAD, 0, 4, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0xF8, 0x7F); /* another NaN */
    REFUSED(ROWHEAD, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xF0, 0xBF); /* -1.0 */
    REFUSED(ROWHEAD, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xF0, 0x7F); /* +inf */
    REFUSED(ROWHEAD, 0, 8, 1, 0, 0);                               /* unknown form */
    REFUSED(ROWHEAD, 0, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xF0); /* sparse, cost short */
    REFUSED(BLOCK1, 0, 1, 0, 0, 0, 0, 0, 0, 0xF0);                 /* cost short */
    REFUSED(BLOCK1, 0, 1, F64_1, 0);                               /* a byte after */
    REFUSED(BLOCK1, 0, 2, F64_1);                                  /* flag 2 */
    REFUSED(BLOCK1, 0, 1, F64_NAN);                                /* flagged, no cost */
    REFUSED(BLOCK1, 0, 0);                                         /* nothing flagged */
    REFUSED(BLOCK1, 2, 1, F64_1);                                  /* ordinary 2 */
    REFUSED(BLOCK1, 0, 1, 0, 0, 0, 0, 0, 0, 0xF0, 0xBF);           /* -1.0 */
}

/* ---- damaged images --------------------------------------------------- */

#define NREC 200

typedef struct {
    bytes_t img;
    size_t off[NREC + 1]; /* frame i is img.p[off[i] .. off[i+1]) */
    uint8_t x[NREC][40];
} file_t;

/* NREC records of the kinds a journal holds (names with NUL and newline
 * bytes, rows dense and sparse). */
static void make_file(file_t *f, uint64_t seed)
{
    static const char names[] = "abcdefghijklmnopqrstuvwxyz0123456789\0\n";
    memset(f, 0, sizeof(*f));
    tu_rng_t g;
    tu_seed(&g, seed);
    char name[32];
    for (size_t i = 0; i < NREC; i++) {
        ens_jrec_t r = {.kind = (ens_jrec_kind_t)(2 + i % 5)};
        r.dict.task = (uint32_t)(i % 3);
        r.dict.id = (uint32_t)(i % ENS_MAX_LABELS);
        r.dict.len = 1 + tu_below(&g, sizeof(name));
        for (size_t k = 0; k < r.dict.len; k++)
            name[k] = names[tu_below(&g, sizeof(names) - 1)];
        r.dict.name = name;
        if (r.kind == ENS_JREC_ROW) {
            r.row.seq = i;
            r.row.y = (uint8_t)(i % 10);
            r.row.nx = tu_below(&g, 41);
            for (size_t j = 0; j < r.row.nx; j++)
                f->x[i][j] = tu_below(&g, 3) ? ENS_SYM_MISSING : (uint8_t)tu_below(&g, 10);
            r.row.x = f->x[i];
        } else if (r.kind == ENS_JREC_VERSION) {
            r.version.version = i;
        }
        size_t n;
        uint8_t *fr = encode(&r, &n);
        f->off[i] = f->img.n;
        b_raw(&f->img, fr, n);
        free(fr);
    }
    f->off[NREC] = f->img.n;
}

/* Reads img and checks that the records returned are exactly the frames
 * of f listed in want[0..nwant), in order, byte for byte. */
static ens_jreader_stats_t expect_frames(const file_t *f, const uint8_t *img, size_t len,
                                         const size_t *want, size_t nwant)
{
    uint8_t *e = exact(img, len);
    ens_jreader_t rd;
    ens_jreader_init(&rd, e, len, 1 << 20);
    ens_jrec_t r;
    size_t n = 0, framed = 0;
    while (ens_jreader_next(&rd, &r) == 1) {
        assert_true(n < nwant);
        size_t i = want[n++], flen = f->off[i + 1] - f->off[i];
        assert_int_equal(rd.st.good_end - rd.st.last_off, flen);
        assert_memory_equal(e + rd.st.last_off, f->img.p + f->off[i], flen);
        framed += flen;
    }
    assert_int_equal(n, nwant);
    assert_int_equal(framed + rd.st.skipped + (len - rd.st.good_end), len);
    free(e);
    return rd.st;
}

static void test_journal_resync_flipped_byte(void **state)
{
    (void)state;
    file_t *f = malloc(sizeof(*f));
    make_file(f, 1);
    size_t want[NREC - 1], n = 0;
    for (size_t i = 0; i < NREC; i++)
        if (i != 100)
            want[n++] = i;
    /* Every byte of record 100, magic, checksum, length and payload, each
     * flipped three ways: only record 100 is lost. */
    const uint8_t masks[] = {0x01, 0x80, 0xFF};
    for (size_t at = f->off[100]; at < f->off[101]; at++)
        for (size_t m = 0; m < sizeof(masks); m++) {
            f->img.p[at] ^= masks[m];
            ens_jreader_stats_t st = expect_frames(f, f->img.p, f->img.n, want, n);
            assert_int_equal(st.corrupt, 1);
            assert_int_equal(st.skipped, f->off[101] - f->off[100]);
            assert_int_equal(st.good_end, f->img.n);
            f->img.p[at] ^= masks[m];
        }
    free(f->img.p);
    free(f);
}

static void test_journal_resync_half_record(void **state)
{
    (void)state;
    file_t *f = malloc(sizeof(*f));
    make_file(f, 2);
    size_t want[NREC - 1], n = 0;
    for (size_t i = 0; i < NREC; i++)
        if (i != 100)
            want[n++] = i;
    /* Record 100 cut after k bytes (a write that hit a full disk), then
     * the records written after space came back. */
    size_t flen = f->off[101] - f->off[100];
    for (size_t k = 1; k < flen; k++) {
        bytes_t img = {0};
        b_raw(&img, f->img.p, f->off[100] + k);
        b_raw(&img, f->img.p + f->off[101], f->img.n - f->off[101]);
        ens_jreader_stats_t st = expect_frames(f, img.p, img.n, want, n);
        assert_int_equal(st.corrupt, 1);
        assert_int_equal(st.skipped, k);
        assert_int_equal(st.good_end, img.n);
        free(img.p);
    }
    free(f->img.p);
    free(f);
}

static void test_journal_torn_tail(void **state)
{
    (void)state;
    file_t *f = malloc(sizeof(*f));
    make_file(f, 3);
    size_t want[NREC];
    for (size_t i = 0; i < NREC; i++)
        want[i] = i;
    /* The image cut anywhere inside the last record. */
    for (size_t len = f->off[NREC - 1]; len < f->img.n; len++) {
        ens_jreader_stats_t st = expect_frames(f, f->img.p, len, want, NREC - 1);
        assert_int_equal(st.good_end, f->off[NREC - 1]);
        assert_int_equal(st.corrupt, 0);
        assert_int_equal(st.skipped, 0);
    }
    ens_jreader_stats_t st = expect_frames(f, f->img.p, f->img.n, want, NREC);
    assert_int_equal(st.good_end, f->img.n);
    free(f->img.p);
    free(f);
}

static void test_journal_garbage(void **state)
{
    (void)state;
    tu_rng_t g;
    tu_seed(&g, 4);
    ens_jreader_t rd;
    ens_jrec_t out;
    /* Random bytes of every length up to 600, then images made of magics:
     * back to back, followed by random headers, by lengths reaching just
     * past the end, and a magic in each of the last 16 positions. Each
     * image sits in a heap block of its exact size. */
    for (size_t len = 0; len <= 600; len++) {
        bytes_t b = {0};
        for (size_t i = 0; i < len; i++)
            b_le(&b, tu_next(&g), 1);
        uint8_t *e = exact(b.p, b.n);
        assert_int_equal(read_all(&rd, e, b.n, SIZE_MAX, &out, 1), 0);
        assert_int_equal(rd.st.good_end, 0);
        free(e);
        free(b.p);
    }
    for (int shape = 0; shape < 4; shape++)
        for (size_t len = 4; len <= 400; len++) {
            bytes_t b = {0};
            while (b.n + 4 <= len) {
                size_t at = b.n;
                b_raw(&b, ENS_JREC_MAGIC, 4);
                if (shape == 1)
                    b_le(&b, tu_next(&g), (int)tu_below(&g, 9));
                else if (shape == 2) {
                    b_le(&b, tu_next(&g), 8);
                    b_le(&b, len - at - ENS_JREC_HEAD + tu_below(&g, 3), 4);
                } else if (shape == 3)
                    b_le(&b, 0, 12); /* zero length, wrong checksum */
            }
            while (b.n < len)
                b_le(&b, 0x43, 1);
            uint8_t *e = exact(b.p, len);
            assert_int_equal(read_all(&rd, e, len, SIZE_MAX, &out, 1), 0);
            free(e);
            free(b.p);
        }
    for (size_t pos = 0; pos < 20; pos++) {
        uint8_t img[20] = {0};
        memcpy(img + (pos < 16 ? pos : 16), ENS_JREC_MAGIC, 4);
        uint8_t *e = exact(img, sizeof(img));
        assert_int_equal(read_all(&rd, e, sizeof(img), SIZE_MAX, &out, 1), 0);
        free(e);
    }
}

static void test_journal_max_record(void **state)
{
    (void)state;
    char name[100];
    memset(name, 'n', sizeof(name));
    ens_jrec_t v = {.kind = ENS_JREC_VERSION}, t = {.kind = ENS_JREC_TASK};
    v.version.version = 1;
    t.dict.name = name;
    t.dict.len = sizeof(name); /* payload 107 bytes */
    bytes_t b = {0};
    size_t n;
    uint8_t *fv = encode(&v, &n), *ft;
    b_raw(&b, fv, n);
    ft = encode(&t, &n);
    b_raw(&b, ft, n);
    b_raw(&b, fv, ENS_JREC_HEAD + 13);
    ens_jreader_t rd;
    ens_jrec_t out[3];
    assert_int_equal(read_all(&rd, b.p, b.n, 107, out, 3), 3);
    assert_int_equal(out[1].kind, ENS_JREC_TASK);
    /* One byte over the limit: the verified TASK frame is not believed. */
    assert_int_equal(read_all(&rd, b.p, b.n, 106, out, 3), 2);
    assert_int_equal(out[1].kind, ENS_JREC_VERSION);
    assert_int_equal(rd.st.corrupt, 1);
    assert_int_equal(rd.st.skipped, ENS_JREC_HEAD + 107);

    /* A damaged length is never trusted: the TASK's length set to 4 GiB - 1
     * (and the image in an exact block), with no limit at all. */
    b.p[ENS_JREC_HEAD + 13 + 12] = 0xFF;
    b.p[ENS_JREC_HEAD + 13 + 13] = 0xFF;
    b.p[ENS_JREC_HEAD + 13 + 14] = 0xFF;
    b.p[ENS_JREC_HEAD + 13 + 15] = 0xFF;
    uint8_t *e = exact(b.p, b.n);
    assert_int_equal(read_all(&rd, e, b.n, SIZE_MAX, out, 3), 2);
    assert_int_equal(rd.st.skipped, ENS_JREC_HEAD + 107);
    free(e);
    free(fv);
    free(ft);
    free(b.p);
}

static void test_journal_frames_inside_payloads(void **state)
{
    (void)state;
    /* A TASK whose name is itself a whole VERSION frame: the reader returns
     * the TASK and never looks inside it. */
    const uint8_t vp[] = {0x06, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    bytes_t inner = {0};
    b_frame(&inner, vp, sizeof(vp));
    ens_jrec_t t = {.kind = ENS_JREC_TASK};
    t.dict.name = (const char *)inner.p;
    t.dict.len = inner.n;
    size_t n;
    uint8_t *ft = encode(&t, &n);
    ens_jreader_t rd;
    ens_jrec_t out[2];
    assert_int_equal(read_all(&rd, ft, n, 1 << 20, out, 2), 1);
    assert_int_equal(out[0].kind, ENS_JREC_TASK);
    assert_memory_equal(out[0].dict.name, inner.p, inner.n);

    /* A verified frame that does not parse (kind 0x7F) is skipped whole, so
     * the frame inside it is not returned either. */
    bytes_t p = {0}, img = {0};
    b_le(&p, 0x7F, 1);
    b_raw(&p, inner.p, inner.n);
    b_frame(&img, p.p, p.n);
    size_t skipped = img.n;
    b_raw(&img, ft, n);
    assert_int_equal(read_all(&rd, img.p, img.n, 1 << 20, out, 2), 1);
    assert_int_equal(out[0].kind, ENS_JREC_TASK);
    assert_int_equal(rd.st.skipped, skipped);

    /* The limit of resynchronisation: once the TASK's own frame is damaged,
     * its payload is just bytes, and the whole frame in its name verifies.
     * This is why names from peers are short and a frame is 16 bytes of
     * header: the daemon's names (<= 256 bytes) can hold such a frame only
     * if a peer built one on purpose and the disk then damaged that record. */
    ft[4] ^= 1;
    assert_int_equal(read_all(&rd, ft, n, 1 << 20, out, 2), 1);
    assert_int_equal(out[0].kind, ENS_JREC_VERSION);
    assert_int_equal(out[0].version.task, 9);
    free(ft);
    free(inner.p);
    free(p.p);
    free(img.p);
}

/* Random damage to random records of a file: exactly the untouched records
 * come back, in order, and each damaged run between two good records is
 * one skipped region. */
static void test_journal_random_damage(void **state)
{
    (void)state;
    file_t *f = malloc(sizeof(*f));
    make_file(f, 5);
    tu_rng_t g;
    tu_seed(&g, 6);
    for (int it = 0; it < 300; it++) {
        int damaged[NREC] = {0};
        size_t want[NREC], nwant = 0, runs = 0;
        bytes_t img = {0};
        for (size_t i = 0; i < NREC; i++) {
            const uint8_t *fr = f->img.p + f->off[i];
            size_t flen = f->off[i + 1] - f->off[i];
            damaged[i] = tu_below(&g, 20) == 0;
            if (!damaged[i]) {
                b_raw(&img, fr, flen);
                want[nwant++] = i;
                continue;
            }
            size_t at = img.n, k = 1 + tu_below(&g, flen - 1);
            switch (tu_below(&g, 3)) {
            case 0: /* a flipped byte */
                b_raw(&img, fr, flen);
                img.p[at + tu_below(&g, flen)] ^= (uint8_t)(1 + tu_below(&g, 255));
                break;
            case 1: /* cut short */
                b_raw(&img, fr, k);
                break;
            default: /* its first k bytes overwritten by zeros */
                b_raw(&img, fr, flen);
                memset(img.p + at, 0, k);
            }
            if (i > 0 && !damaged[i - 1])
                runs++;
        }
        if (damaged[NREC - 1])
            runs--; /* the last run is the tail, not a skipped region */
        if (damaged[0])
            runs++;
        ens_jreader_stats_t st = expect_frames(f, img.p, img.n, want, nwant);
        assert_int_equal(st.corrupt, runs);
        free(img.p);
    }
    free(f->img.p);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_header_version_bytes),
        cmocka_unit_test(test_journal_dict_bytes),
        cmocka_unit_test(test_journal_row_bytes),
        cmocka_unit_test(test_journal_block_bytes),
        cmocka_unit_test(test_journal_ordinary_bytes),
        cmocka_unit_test(test_journal_round_trip_names),
        cmocka_unit_test(test_journal_round_trip_header_version),
        cmocka_unit_test(test_journal_round_trip_rows),
        cmocka_unit_test(test_journal_round_trip_block),
        cmocka_unit_test(test_journal_answers),
        cmocka_unit_test(test_journal_encoder_refuses),
        cmocka_unit_test(test_journal_reader_refuses_payloads),
        cmocka_unit_test(test_journal_row_costs),
        cmocka_unit_test(test_journal_block_costs),
        cmocka_unit_test(test_journal_reader_refuses_costs),
        cmocka_unit_test(test_journal_resync_flipped_byte),
        cmocka_unit_test(test_journal_resync_half_record),
        cmocka_unit_test(test_journal_torn_tail),
        cmocka_unit_test(test_journal_garbage),
        cmocka_unit_test(test_journal_max_record),
        cmocka_unit_test(test_journal_frames_inside_payloads),
        cmocka_unit_test(test_journal_random_damage),
    };
    return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
