/* mpw.c - the MessagePack writer of mpw.h.
 *
 * Every encoding is the one msgpack-c's packer chooses for the same value
 * (the smallest integer, str and container forms; doubles always float64),
 * so bytes written here and bytes written by msgpack_pack_* are identical
 * and either side's tests can use the other as a reference.
 *
 * Containers: a begin reserves one byte for the header, which is all a
 * fixmap or fixarray (fewer than 16 items) needs, and records where the
 * items start; the end writes the header for the count and, only when it is
 * longer (3 or 5 bytes), moves the items up to make room. Small containers,
 * by far the most common (an event, a step of a body), are never moved; a
 * larger one is moved once when it closes, so each byte moves at most once
 * per enclosing container of 16 items or more: O(size * depth), never
 * O(size^2).
 */
#include "ensembled/mpw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/xalloc.h"

/* The header a begin reserves: the fix forms' single byte. */
#define HDR_RESERVED 1

/* Misuse is a programmer error and aborts, in release builds too: the
 * checks are a compare each, and the alternative to aborting is a write
 * past open[] or a map whose last key has no value on the wire. */
#define MPW_REQUIRE(cond, what)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            misuse(what);                                                                          \
    } while (0)

static void misuse(const char *what)
{
    fprintf(stderr, "ens_mpw: %s\n", what);
    abort();
}

void ens_mpw_init(ens_mpw_t *w)
{
    memset(w, 0, sizeof(*w));
}

void ens_mpw_free(ens_mpw_t *w)
{
    free(w->data);
    ens_mpw_init(w);
}

void ens_mpw_reset(ens_mpw_t *w)
{
    w->size = 0;
    w->depth = 0;
}

char *ens_mpw_take(ens_mpw_t *w, size_t *size)
{
    MPW_REQUIRE(w->depth == 0, "ens_mpw_take with a container still open");
    /* A writer that never wrote still hands out a buffer, so that the
     * caller can free() what it got without a special case. */
    char *p = w->data ? w->data : ens_xmalloc(1);
    *size = w->size;
    ens_mpw_init(w);
    return p;
}

/* Room for n more bytes; returns where they go. The buffer at least doubles
 * when it grows, so appends are amortised O(1). */
static unsigned char *room(ens_mpw_t *w, size_t n)
{
    if (n > w->cap - w->size) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->size < n) {
            MPW_REQUIRE(cap <= SIZE_MAX / 2, "buffer size overflow");
            cap *= 2;
        }
        w->data = ens_xreallocarray(w->data, cap, 1);
        w->cap = cap;
    }
    unsigned char *p = (unsigned char *)w->data + w->size;
    w->size += n;
    return p;
}

/* One more item at the current level (the top level counts nothing). */
static void item(ens_mpw_t *w)
{
    if (w->depth > 0)
        w->open[w->depth - 1].items++;
}

static void put_be(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

/* A type byte followed by v as an n-byte big-endian number. */
static void typed(ens_mpw_t *w, unsigned char type, uint64_t v, size_t n)
{
    unsigned char *p = room(w, 1 + n);
    p[0] = type;
    put_be(p + 1, v, n);
}

static void begin(ens_mpw_t *w, int is_map)
{
    MPW_REQUIRE(w->depth < ENS_MPW_DEPTH, "containers nested deeper than ENS_MPW_DEPTH");
    item(w);
    room(w, HDR_RESERVED);
    w->open[w->depth].start = w->size;
    w->open[w->depth].items = 0;
    w->open[w->depth].is_map = is_map;
    w->depth++;
}

/* Writes the final header of the innermost container (fix: the fixmap or
 * fixarray type byte; b16, b32: the 16- and 32-bit forms) before its items,
 * moving them up when the header outgrows the byte reserved for it. */
static void end(ens_mpw_t *w, int is_map, unsigned char fix, unsigned char b16, unsigned char b32)
{
    MPW_REQUIRE(w->depth > 0, "container end without a begin");
    w->depth--;
    size_t start = w->open[w->depth].start, n = w->open[w->depth].items;
    MPW_REQUIRE(w->open[w->depth].is_map == is_map, "container closed by the other kind's end");
    if (is_map) {
        MPW_REQUIRE(n % 2 == 0, "a map closed after a key without its value");
        n /= 2;
    }
    MPW_REQUIRE(n <= UINT32_MAX, "more than 2^32 - 1 items or bytes");
    unsigned char hdr[5];
    size_t h;
    if (n < 16) {
        hdr[0] = (unsigned char)(fix | n);
        h = 1;
    } else if (n < 65536) {
        hdr[0] = b16;
        put_be(hdr + 1, n, 2);
        h = 3;
    } else {
        hdr[0] = b32;
        put_be(hdr + 1, n, 4);
        h = 5;
    }
    size_t len = w->size - start;
    if (h > HDR_RESERVED) {
        room(w, h - HDR_RESERVED); /* may move the buffer: take data after */
        memmove(w->data + start + h - HDR_RESERVED, w->data + start, len);
    }
    memcpy(w->data + start - HDR_RESERVED, hdr, h);
}

void ens_mpw_map_begin(ens_mpw_t *w)
{
    begin(w, 1);
}

void ens_mpw_map_end(ens_mpw_t *w)
{
    end(w, 1, 0x80, 0xde, 0xdf);
}

void ens_mpw_array_begin(ens_mpw_t *w)
{
    begin(w, 0);
}

void ens_mpw_array_end(ens_mpw_t *w)
{
    end(w, 0, 0x90, 0xdc, 0xdd);
}

void ens_mpw_nil(ens_mpw_t *w)
{
    item(w);
    *room(w, 1) = 0xc0;
}

void ens_mpw_bool(ens_mpw_t *w, int v)
{
    item(w);
    *room(w, 1) = v ? 0xc3 : 0xc2;
}

void ens_mpw_uint(ens_mpw_t *w, uint64_t v)
{
    item(w);
    if (v < 128)
        *room(w, 1) = (unsigned char)v;
    else if (v < 256)
        typed(w, 0xcc, v, 1);
    else if (v < 65536)
        typed(w, 0xcd, v, 2);
    else if (v <= UINT32_MAX)
        typed(w, 0xce, v, 4);
    else
        typed(w, 0xcf, v, 8);
}

void ens_mpw_int(ens_mpw_t *w, int64_t v)
{
    /* Non-negative values take the unsigned forms, as msgpack_pack_int64
     * does: 200 is uint8, not int16. */
    if (v >= 0) {
        ens_mpw_uint(w, (uint64_t)v);
        return;
    }
    item(w);
    if (v >= -32)
        *room(w, 1) = (unsigned char)(uint8_t)(int8_t)v;
    else if (v >= INT8_MIN)
        typed(w, 0xd0, (uint8_t)(int8_t)v, 1);
    else if (v >= INT16_MIN)
        typed(w, 0xd1, (uint16_t)(int16_t)v, 2);
    else if (v >= INT32_MIN)
        typed(w, 0xd2, (uint32_t)(int32_t)v, 4);
    else
        typed(w, 0xd3, (uint64_t)v, 8);
}

void ens_mpw_double(ens_mpw_t *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    item(w);
    typed(w, 0xcb, bits, 8);
}

void ens_mpw_double_or_nil(ens_mpw_t *w, double v)
{
    if (v != v)
        ens_mpw_nil(w);
    else
        ens_mpw_double(w, v);
}

/* A str or bin header for n bytes and the bytes. fix: the fixstr type byte
 * (0: the kind has no fix form, as bin); b8, b16, b32: the longer forms. */
static void blob(ens_mpw_t *w, const void *p, size_t n, unsigned char fix, unsigned char b8,
                 unsigned char b16, unsigned char b32)
{
    MPW_REQUIRE(n <= UINT32_MAX, "more than 2^32 - 1 items or bytes");
    item(w);
    if (fix && n < 32)
        *room(w, 1) = (unsigned char)(fix | n);
    else if (n < 256)
        typed(w, b8, n, 1);
    else if (n < 65536)
        typed(w, b16, n, 2);
    else
        typed(w, b32, n, 4);
    if (n > 0)
        memcpy(room(w, n), p, n);
}

void ens_mpw_str(ens_mpw_t *w, const char *s, size_t n)
{
    blob(w, s, n, 0xa0, 0xd9, 0xda, 0xdb);
}

void ens_mpw_cstr(ens_mpw_t *w, const char *s)
{
    ens_mpw_str(w, s, strlen(s));
}

void ens_mpw_bin(ens_mpw_t *w, const void *p, size_t n)
{
    blob(w, p, n, 0, 0xc4, 0xc5, 0xc6);
}

void ens_mpw_raw(ens_mpw_t *w, const void *p, size_t n)
{
    item(w);
    if (n > 0)
        memcpy(room(w, n), p, n);
}
