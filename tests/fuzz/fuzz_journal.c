/* fuzz_journal.c - libFuzzer target for the persistence record codec.
 *
 * An input is a file image (journal or snapshot) given to the reader as is,
 * unless its first byte is 'S': then the rest is a list of chunks that the
 * target assembles into the image, framing payloads with a correct
 * checksum. Without that mode the fuzzer would almost never get past the
 * checksum and would test the framing alone; with it, it mutates payloads
 * and the parser behind the checksum sees them. A chunk is an op byte, a
 * u16 LE length n and n bytes (fewer at the end of the input):
 *   op % 4 == 0  the bytes framed as a payload (a verified frame)
 *   op % 4 == 1  the bytes copied as they are (garbage, pieces of frames)
 *   op % 4 == 2  framed, then cut to (op / 4) / 64 of the frame (a torn write)
 *   op % 4 == 3  framed with a wrong checksum
 *
 * On the image the target checks what journal.h promises, trapping on any
 * breach: every record returned is valid (ens_jrec_check) and lies inside
 * the image, with every name and array read byte by byte so that ASan sees
 * a stray pointer, and every cost decoded and valid; its re-encoding is
 * no larger than the frame it came from (the encoder picks the smaller row
 * form and the reader refuses padding);
 * read back alone, the re-encoding is one clean record equal to the first,
 * and encoding that again gives the same bytes. At the end every byte of
 * the image is in exactly one of: a record's frame, a skipped region, the
 * tail.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ensembled/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

/* Small enough that a 4 KiB input can hold a frame over the limit. */
#define MAX_RECORD 2048

static volatile unsigned sink;

static void touch(const void *p, uint64_t n)
{
    const uint8_t *q = p;
    unsigned h = 0;
    for (uint64_t i = 0; i < n; i++)
        h = h * 31 + q[i];
    sink = h;
}

/* A decoded cost: none (NaN) or a finite number >= 0. */
static int cost_valid(double c)
{
    return c != c || (c >= 0 && c <= 1.7976931348623157e308);
}

static void touch_record(const ens_jrec_t *r)
{
    switch (r->kind) {
    case ENS_JREC_TASK:
    case ENS_JREC_MODEL:
    case ENS_JREC_LABEL:
        CHECK(r->dict.len >= 1 && r->dict.len <= ENS_JREC_MAX_NAME);
        touch(r->dict.name, r->dict.len);
        break;
    case ENS_JREC_ROW:
        CHECK(r->row.nx <= ENS_MAX_MODELS);
        CHECK(r->row.nx == 0 || r->row.x[r->row.nx - 1] != ENS_SYM_MISSING);
        touch(r->row.x, r->row.nx);
        for (size_t j = 0; r->row.cost && j < r->row.nx; j++)
            CHECK(cost_valid(r->row.cost[j]));
        break;
    case ENS_JREC_BLOCK:
        touch(r->block.y, r->block.nrows);
        touch(r->block.ts, 8 * r->block.nrows);
        touch(r->block.x, r->block.nrows * r->block.nmodels);
        if (r->block.ordinary)
            touch(r->block.ordinary, r->block.nrows);
        if (r->block.cost_models) {
            /* Costs come after the flags, which are then always there. */
            CHECK(r->block.ordinary != NULL);
            touch(r->block.cost_models, r->block.nmodels);
            double c[ENS_MAX_MODELS];
            size_t k = 0;
            for (uint64_t i = 0; i < r->block.nrows; i++) {
                ens_jrec_block_costs(r, i, &k, c);
                for (uint32_t j = 0; j < r->block.nmodels; j++)
                    CHECK(cost_valid(c[j]));
            }
        }
        break;
    default:
        break;
    }
}

static int same_bytes(const void *a, const void *b, uint64_t n)
{
    return n == 0 || memcmp(a, b, (size_t)n) == 0;
}

/* A row's costs: both none, or the same bits for each of its nx models. */
static int same_row_costs(const ens_jrec_t *a, const ens_jrec_t *b)
{
    if (!a->row.cost || !b->row.cost)
        return !a->row.cost == !b->row.cost;
    return same_bytes(a->row.cost, b->row.cost, sizeof(double) * a->row.nx);
}

/* A block's costs: both none, or the same flags and, row by row, the same
 * costs as bits. */
static int same_block_costs(const ens_jrec_t *a, const ens_jrec_t *b)
{
    if (!a->block.cost_models || !b->block.cost_models)
        return !a->block.cost_models == !b->block.cost_models;
    if (!same_bytes(a->block.cost_models, b->block.cost_models, a->block.nmodels))
        return 0;
    double ca[ENS_MAX_MODELS], cb[ENS_MAX_MODELS];
    size_t ka = 0, kb = 0;
    for (uint64_t i = 0; i < a->block.nrows; i++) {
        ens_jrec_block_costs(a, i, &ka, ca);
        ens_jrec_block_costs(b, i, &kb, cb);
        if (!same_bytes(ca, cb, sizeof(double) * a->block.nmodels))
            return 0;
    }
    return 1;
}

/* Field by field, per kind; ts compared as bits (NaN is a valid pattern). */
static int equal(const ens_jrec_t *a, const ens_jrec_t *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case ENS_JREC_HEADER:
        return a->header.format == b->header.format && a->header.seq == b->header.seq &&
               a->header.journal == b->header.journal;
    case ENS_JREC_TASK:
    case ENS_JREC_MODEL:
    case ENS_JREC_LABEL:
        return a->dict.task == b->dict.task && a->dict.id == b->dict.id &&
               a->dict.len == b->dict.len && same_bytes(a->dict.name, b->dict.name, a->dict.len);
    case ENS_JREC_QUERY:
        return a->dict.task == b->dict.task && a->dict.len == b->dict.len &&
               same_bytes(a->dict.name, b->dict.name, a->dict.len);
    case ENS_JREC_ANSWERS:
        return a->answers.task == b->answers.task && a->answers.answers == b->answers.answers &&
               a->answers.normalize == b->answers.normalize;
    case ENS_JREC_ROW:
        return a->row.seq == b->row.seq && a->row.task == b->row.task &&
               same_bytes(&a->row.ts, &b->row.ts, sizeof(double)) && a->row.y == b->row.y &&
               a->row.nx == b->row.nx && same_bytes(a->row.x, b->row.x, a->row.nx) &&
               a->row.ordinary == b->row.ordinary && same_row_costs(a, b);
    case ENS_JREC_VERSION:
        return a->version.task == b->version.task && a->version.version == b->version.version;
    case ENS_JREC_BLOCK:
        return a->block.task == b->block.task && a->block.nrows == b->block.nrows &&
               a->block.nmodels == b->block.nmodels &&
               same_bytes(a->block.y, b->block.y, a->block.nrows) &&
               same_bytes(a->block.ts, b->block.ts, 8 * a->block.nrows) &&
               same_bytes(a->block.x, b->block.x, a->block.nrows * a->block.nmodels) &&
               !a->block.ordinary == !b->block.ordinary &&
               (!a->block.ordinary ||
                same_bytes(a->block.ordinary, b->block.ordinary, a->block.nrows)) &&
               same_block_costs(a, b);
    }
    return 0;
}

/* Re-encodes r (read from a frame of flen bytes) and reads it back. */
static void check_round_trip(const ens_jrec_t *r, size_t flen)
{
    size_t n = ens_jrec_size(r);
    CHECK(n >= ENS_JREC_HEAD && n <= flen);
    uint8_t *buf = malloc(n), *again = malloc(n);
    CHECK(buf && again);
    CHECK(ens_jrec_encode(r, buf, n) == n);

    ens_jreader_t *rd = malloc(sizeof(*rd));
    CHECK(rd != NULL);
    ens_jreader_init(rd, buf, n, n - ENS_JREC_HEAD);
    ens_jrec_t back;
    CHECK(ens_jreader_next(rd, &back) == 1);
    CHECK(equal(r, &back));
    CHECK(rd->st.last_off == 0 && rd->st.good_end == n && rd->st.corrupt == 0);
    CHECK(ens_jrec_encode(&back, again, n) == n && memcmp(buf, again, n) == 0);
    CHECK(ens_jreader_next(rd, &back) == 0 && rd->st.records == 1);
    free(rd);
    free(buf);
    free(again);
}

/* Appends the frame of payload[0..n) to img (room for it is the caller's):
 * magic, XXH3-64 of (u32 length, payload), u32 length, payload. */
static size_t put_frame(uint8_t *img, const uint8_t *payload, size_t n, int bad_check)
{
    memcpy(img, ENS_JREC_MAGIC, 4);
    for (int i = 0; i < 4; i++)
        img[12 + i] = (uint8_t)(n >> (8 * i));
    memcpy(img + ENS_JREC_HEAD, payload, n);
    uint64_t h = XXH3_64bits(img + 12, 4 + n) ^ (uint64_t)(bad_check != 0);
    for (int i = 0; i < 8; i++)
        img[4 + i] = (uint8_t)(h >> (8 * i));
    return ENS_JREC_HEAD + n;
}

/* Builds the image of a chunk list (see the top of the file). */
static uint8_t *assemble(const uint8_t *data, size_t size, size_t *len)
{
    /* Each chunk costs at least its 3-byte head and adds at most a 16-byte
     * frame head to its bytes. */
    uint8_t *img = malloc(size + ENS_JREC_HEAD * (size / 3 + 1));
    CHECK(img != NULL);
    size_t n = 0, at = 0;
    while (at + 3 <= size) {
        unsigned op = data[at];
        size_t k = (size_t)data[at + 1] | (size_t)data[at + 2] << 8;
        at += 3;
        if (k > size - at)
            k = size - at;
        if (op % 4 == 1) {
            memcpy(img + n, data + at, k);
            n += k;
        } else {
            size_t f = put_frame(img + n, data + at, k, op % 4 == 3);
            n += op % 4 == 2 ? f * (op / 4) / 64 : f;
        }
        at += k;
    }
    *len = n;
    return img;
}

static void check_image(const uint8_t *data, size_t size)
{
    ens_jreader_t *rd = malloc(sizeof(*rd));
    CHECK(rd != NULL);
    ens_jreader_init(rd, data, size, MAX_RECORD);
    ens_jrec_t r;
    size_t framed = 0;
    uint64_t n = 0;
    while (ens_jreader_next(rd, &r) == 1) {
        const ens_jreader_stats_t *st = &rd->st;
        CHECK(st->last_off < st->good_end && st->good_end <= size);
        size_t flen = st->good_end - st->last_off;
        CHECK(flen >= ENS_JREC_HEAD && flen - ENS_JREC_HEAD <= MAX_RECORD);
        CHECK(ens_jrec_check(&r) == 0);
        touch_record(&r);
        check_round_trip(&r, flen);
        framed += flen;
        n++;
    }
    CHECK(rd->st.records == n);
    CHECK(framed + rd->st.skipped + (size - rd->st.good_end) == size);
    CHECK(rd->st.corrupt <= rd->st.records && (rd->st.corrupt == 0) == (rd->st.skipped == 0));
    free(rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || data[0] != 'S') {
        check_image(data, size);
        return 0;
    }
    size_t len;
    uint8_t *img = assemble(data + 1, size - 1, &len);
    /* An exact copy, so that ASan sees a read one byte past the image. */
    uint8_t *exact = malloc(len ? len : 1);
    CHECK(exact != NULL);
    memcpy(exact, img, len);
    free(img);
    check_image(exact, len);
    free(exact);
    return 0;
}
