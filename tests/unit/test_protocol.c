/* test_protocol.c - the wire protocol v1 decoder (protocol.h, docs/protocol.md).
 *
 * Messages are built with msgpack-c's packer through a small token language
 * (mp_spec), or by hand where the bytes matter (msgpack-c issue #1013).
 * Every reject reason is triggered and asserted exactly; valid events are
 * checked field by field; random mutations of valid messages must decode or
 * reject with a valid reason, never crash (run under ASan in CI); and the
 * pre-walk is checked against msgpack-c's packer: random valid objects pass,
 * every strict prefix is malformed, one level less depth is too deep.
 * The event encoder must write the bytes the producers packed by hand with
 * msgpack-c, and every encoded event must decode to itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "ensembled/err.h"
#include "ensembled/protocol.h"
#include "testutil.h"

/* ---- building messages ----------------------------------------------- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mp_t;

/* The pre-walk's verdict as one number: 0, or -(reason + 1). */
static int prewalk(const char *buf, size_t len, size_t depth)
{
    ens_reject_t why = ENS_REJECT_COUNT;
    int rc = ens_proto_prewalk(buf, len, depth, &why);
    if (rc == 0)
        return 0;
    assert_int_equal(rc, ENS_EPARSE);
    assert_true(why < ENS_REJECT_COUNT);
    return -(int)why - 1;
}
static void mp_init(mp_t *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_free(mp_t *m)
{
    msgpack_sbuffer_destroy(&m->sb);
}

static void mp_bytes(mp_t *m, const void *p, size_t n)
{
    msgpack_sbuffer_write(&m->sb, p, n);
}

/* n copies of byte c as a str, bin or ext 1 body. */
static void mp_filled(mp_t *m, char kind, size_t n, char c)
{
    char *body = malloc(n ? n : 1);
    memset(body, c, n);
    if (kind == 'S') {
        msgpack_pack_str(&m->pk, n);
        msgpack_pack_str_body(&m->pk, body, n);
    } else if (kind == 'b') {
        msgpack_pack_bin(&m->pk, n);
        msgpack_pack_bin_body(&m->pk, body, n);
    } else {
        msgpack_pack_ext(&m->pk, n, 1);
        msgpack_pack_ext_body(&m->pk, body, n);
    }
    free(body);
}

/* One token: {N map of N pairs, [N array, s:text str, S:N str of N 'x',
 * b:N bin, e:N ext, u:N uint, i:N int, f:X double, F:X float, nil, true,
 * x:HEX raw bytes. */
static void mp_token(mp_t *m, const char *t)
{
    const char *a = t + 2;
    if (t[0] == '{' || t[0] == '[') {
        unsigned long n = strtoul(t + 1, NULL, 10);
        if (t[0] == '{')
            msgpack_pack_map(&m->pk, n);
        else
            msgpack_pack_array(&m->pk, n);
    } else if (strcmp(t, "nil") == 0) {
        msgpack_pack_nil(&m->pk);
    } else if (strcmp(t, "true") == 0) {
        msgpack_pack_true(&m->pk);
    } else if (t[0] == 's' && t[1] == ':') {
        msgpack_pack_str_with_body(&m->pk, a, strlen(a));
    } else if ((t[0] == 'S' || t[0] == 'b' || t[0] == 'e') && t[1] == ':') {
        mp_filled(m, t[0], strtoul(a, NULL, 10), 'x');
    } else if (t[0] == 'u' && t[1] == ':') {
        msgpack_pack_uint64(&m->pk, strtoull(a, NULL, 10));
    } else if (t[0] == 'i' && t[1] == ':') {
        msgpack_pack_int64(&m->pk, strtoll(a, NULL, 10));
    } else if (t[0] == 'f' && t[1] == ':') {
        msgpack_pack_double(&m->pk, strtod(a, NULL));
    } else if (t[0] == 'F' && t[1] == ':') {
        msgpack_pack_float(&m->pk, strtof(a, NULL));
    } else if (t[0] == 'x' && t[1] == ':') {
        for (; a[0] && a[1]; a += 2) {
            char hex[3] = {a[0], a[1], 0};
            unsigned char byte = (unsigned char)strtoul(hex, NULL, 16);
            mp_bytes(m, &byte, 1);
        }
    } else {
        fail_msg("bad token '%s'", t);
    }
}

/* Appends the space-separated tokens of spec. */
static void mp_spec(mp_t *m, const char *spec)
{
    char tok[128];
    while (*spec) {
        size_t n = strcspn(spec, " ");
        assert_true(n < sizeof(tok));
        memcpy(tok, spec, n);
        tok[n] = '\0';
        if (n > 0)
            mp_token(m, tok);
        spec += n + (spec[n] == ' ');
    }
}

/* ---- decoding --------------------------------------------------------- */

/* Decodes with lim (default limits if NULL); returns the rc and stores the
 * reason (ENS_REJECT_COUNT on success). The message is destroyed unless out
 * is given. */
static int decode(const void *buf, size_t len, const ens_proto_limits_t *lim, ens_decoded_t **out,
                  ens_reject_t *why)
{
    ens_proto_limits_t def;
    ens_proto_limits_default(&def);
    ens_decoded_t *m = (ens_decoded_t *)&def; /* must be overwritten */
    *why = ENS_REJECT_COUNT;
    int rc = ens_proto_decode(buf, len, lim ? lim : &def, &m, why);
    if (rc != 0) {
        assert_int_equal(rc, ENS_EPARSE);
        assert_null(m);
        assert_true((size_t)*why < ENS_REJECT_COUNT);
    } else {
        assert_non_null(m);
        assert_int_equal(*why, ENS_REJECT_COUNT);
    }
    if (out)
        *out = m;
    else
        ens_decoded_destroy(&m);
    return rc;
}

static void expect_reject(const void *buf, size_t len, const ens_proto_limits_t *lim,
                          ens_reject_t want, const char *what)
{
    ens_reject_t why;
    if (decode(buf, len, lim, NULL, &why) == 0)
        fail_msg("%s: decoded, expected %s", what, ens_reject_name(want));
    if (why != want)
        fail_msg("%s: rejected as %s, expected %s", what, ens_reject_name(why),
                 ens_reject_name(want));
}

/* The message buffer of the last decode_ok: events point into it, so it
 * lives until release(). */
static mp_t held;

/* Decodes spec with default limits; the message must be accepted. */
static ens_decoded_t *decode_ok(const char *spec)
{
    mp_init(&held);
    mp_spec(&held, spec);
    ens_decoded_t *d = NULL;
    ens_reject_t why;
    if (decode(held.sb.data, held.sb.size, NULL, &d, &why) != 0)
        fail_msg("%s: rejected as %s", spec, ens_reject_name(why));
    return d;
}

static void release(ens_decoded_t **d)
{
    ens_decoded_destroy(d);
    assert_null(*d);
    mp_free(&held);
}

static void assert_str(ens_str_t s, const char *want)
{
    if (s.len != strlen(want) || memcmp(s.ptr, want, s.len) != 0)
        fail_msg("got '%.*s', expected '%s'", (int)s.len, s.ptr, want);
}

/* The label model answered in e, or NULL. */
static const ens_str_t *pred_of(const ens_event_t *e, const char *model)
{
    for (size_t i = 0; i < e->npreds; i++)
        if (e->preds[i].model.len == strlen(model) &&
            memcmp(e->preds[i].model.ptr, model, e->preds[i].model.len) == 0)
            return &e->preds[i].label;
    return NULL;
}

/* ---- every reject reason ---------------------------------------------- */

#define KP "s:kind s:prediction "
#define KL "s:kind s:label "

typedef struct {
    ens_reject_t why;
    const char *spec;
    size_t max_bytes, max_batch, max_preds; /* 0: default */
} rcase_t;

static const rcase_t reject_cases[] = {
    {ENS_REJECT_TOO_BIG, "{3 " KL "s:query s:q s:label s:A", 20, 0, 0},
    {ENS_REJECT_MALFORMED, "x:c1", 0, 0, 0},
    {ENS_REJECT_MALFORMED, "x:", 0, 0, 0},
    {ENS_REJECT_MALFORMED, "{3 " KL "s:query s:q s:label", 0, 0, 0},
    {ENS_REJECT_TRAILING, "{3 " KL "s:query s:q s:label s:A x:00", 0, 0, 0},
    {ENS_REJECT_TRAILING, "{3 " KL "s:query s:q s:label s:A {0", 0, 0, 0},
    {ENS_REJECT_TOO_DEEP, "{4 " KL "s:query s:q s:label s:A s:x [1 [1 [1 [1 nil", 0, 0, 0},
    {ENS_REJECT_TOO_DEEP, "[1 {1 s:predictions {1 s:m [1 [1 nil", 0, 0, 0},
    {ENS_REJECT_NOT_EVENT, "s:hello", 0, 0, 0},
    {ENS_REJECT_NOT_EVENT, "u:5", 0, 0, 0},
    {ENS_REJECT_NOT_EVENT, "[2 {3 " KL "s:query s:q s:label s:A u:1", 0, 0, 0},
    {ENS_REJECT_NOT_EVENT, "[1 [1 {0", 0, 0, 0},
    {ENS_REJECT_BATCH_TOO_LONG, "[3 {0 {0 {0", 0, 2, 0},
    {ENS_REJECT_EMPTY_BATCH, "[0", 0, 0, 0},
    {ENS_REJECT_BAD_KIND, "{3 s:kind s:guess s:query s:q s:label s:A", 0, 0, 0},
    {ENS_REJECT_BAD_KIND, "{2 s:query s:q s:label s:A", 0, 0, 0},
    {ENS_REJECT_BAD_KIND, "{0", 0, 0, 0},
    {ENS_REJECT_BAD_TYPE, "{3 s:kind u:1 s:query s:q s:label s:A", 0, 0, 0},
    {ENS_REJECT_BAD_TYPE, "{4 " KL "s:task u:1 s:query s:q s:label s:A", 0, 0, 0},
    {ENS_REJECT_BAD_TYPE, "{3 " KL "s:query i:-1 s:label s:A", 0, 0, 0},
    {ENS_REJECT_BAD_TYPE, "{3 " KL "s:query f:1.5 s:label s:A", 0, 0, 0},
    {ENS_REJECT_BAD_TYPE, "{3 " KL "s:query b:3 s:label s:A", 0, 0, 0},
    {ENS_REJECT_BAD_TYPE, "{3 " KL "s:query s:q s:label f:2.0", 0, 0, 0},
    {ENS_REJECT_BAD_TYPE, "{3 " KL "s:query s:q s:label true", 0, 0, 0},
    {ENS_REJECT_BAD_TYPE, "{4 " KP "s:query s:q s:model u:3 s:label s:A", 0, 0, 0},
    {ENS_REJECT_BAD_TYPE, "{3 " KP "s:query s:q s:predictions [1 s:A", 0, 0, 0},
    {ENS_REJECT_BAD_TYPE, "{3 " KP "s:query s:q s:predictions {1 u:1 s:A", 0, 0, 0},
    {ENS_REJECT_BAD_TYPE, "{3 " KP "s:query s:q s:predictions {1 s:m [0", 0, 0, 0},
    {ENS_REJECT_DUP_KEY, "{4 " KL "s:query s:q s:label s:A s:query s:r", 0, 0, 0},
    {ENS_REJECT_DUP_KEY, "{4 " KL "s:query s:q s:label s:A s:kind s:label", 0, 0, 0},
    {ENS_REJECT_DUP_KEY, "{5 " KL "s:query s:q s:label s:A s:ts u:1 s:ts u:1", 0, 0, 0},
    {ENS_REJECT_DUP_KEY, "{5 " KL "s:query s:q s:label s:A s:cost u:1 s:cost u:1", 0, 0, 0},
    {ENS_REJECT_DUP_KEY, "{5 " KL "s:query s:q s:label s:A s:task s:t s:task s:t", 0, 0, 0},
    {ENS_REJECT_DUP_KEY, "{5 " KP "s:query s:q s:model s:m s:label s:A s:model s:n", 0, 0, 0},
    {ENS_REJECT_DUP_KEY, "{4 " KP "s:query s:q s:predictions {0 s:predictions {1 s:m s:A", 0, 0, 0},
    {ENS_REJECT_NO_QUERY, "{2 " KL "s:label s:A", 0, 0, 0},
    {ENS_REJECT_NO_QUERY, "{3 " KL "s:query s: s:label s:A", 0, 0, 0},
    {ENS_REJECT_NO_MODEL, "{3 " KP "s:query s:q s:model s:m", 0, 0, 0},
    {ENS_REJECT_NO_MODEL, "{3 " KP "s:query s:q s:label s:A", 0, 0, 0},
    {ENS_REJECT_NO_MODEL, "{2 " KP "s:query s:q", 0, 0, 0},
    {ENS_REJECT_NO_MODEL, "{3 " KP "s:query s:q s:predictions {0", 0, 0, 0},
    {ENS_REJECT_NO_MODEL, "{4 " KP "s:query s:q s:predictions {1 s:m s:A s:model s:n", 0, 0, 0},
    {ENS_REJECT_NO_LABEL, "{2 " KL "s:query s:q", 0, 0, 0},
    {ENS_REJECT_NO_LABEL, "{3 " KL "s:query s:q s:label s:?", 0, 0, 0},
    {ENS_REJECT_NO_LABEL, "{3 " KL "s:query s:q s:label nil", 0, 0, 0},
    {ENS_REJECT_NAME_TOO_LONG, "{4 " KL "s:task S:257 s:query s:q s:label s:A", 0, 0, 0},
    {ENS_REJECT_NAME_TOO_LONG, "{3 " KL "s:query S:257 s:label s:A", 0, 0, 0},
    {ENS_REJECT_NAME_TOO_LONG, "{3 " KL "s:query s:q s:label S:257", 0, 0, 0},
    {ENS_REJECT_NAME_TOO_LONG, "{4 " KP "s:query s:q s:model S:257 s:label s:A", 0, 0, 0},
    {ENS_REJECT_NAME_TOO_LONG, "{3 " KP "s:query s:q s:predictions {1 s:m S:257", 0, 0, 0},
    {ENS_REJECT_NAME_TOO_LONG, "{3 " KP "s:query s:q s:predictions {1 S:257 s:A", 0, 0, 0},
    {ENS_REJECT_EMPTY_NAME, "{4 " KL "s:task s: s:query s:q s:label s:A", 0, 0, 0},
    {ENS_REJECT_EMPTY_NAME, "{3 " KL "s:query s:q s:label s:", 0, 0, 0},
    {ENS_REJECT_EMPTY_NAME, "{4 " KP "s:query s:q s:model s: s:label s:A", 0, 0, 0},
    {ENS_REJECT_EMPTY_NAME, "{4 " KP "s:query s:q s:model s:m s:label s:", 0, 0, 0},
    {ENS_REJECT_EMPTY_NAME, "{3 " KP "s:query s:q s:predictions {1 s: s:A", 0, 0, 0},
    {ENS_REJECT_BAD_NAME, "{4 " KL "s:task x:a4636166e9 s:query s:q s:label s:A", 0, 0, 0},
    {ENS_REJECT_BAD_NAME, "{4 " KL "s:task x:a3740078 s:query s:q s:label s:A", 0, 0, 0},
    {ENS_REJECT_BAD_NAME, "{4 " KP "s:query s:q s:model x:a36d0061 s:label s:A", 0, 0, 0},
    {ENS_REJECT_BAD_NAME, "{3 " KL "s:query s:q s:label x:a2c0af", 0, 0, 0},
    {ENS_REJECT_BAD_NAME, "{3 " KP "s:query s:q s:predictions {1 x:a3eda080 s:A", 0, 0, 0},
    {ENS_REJECT_BAD_NAME, "{3 " KP "s:query s:q s:predictions {1 s:m x:a4f4908080", 0, 0, 0},
    {ENS_REJECT_BAD_NAME, "{4 " KP "s:query s:q s:model s:m s:label x:a2e282", 0, 0, 0},
    {ENS_REJECT_BAD_PROTOCOL, "{4 " KL "s:query s:q s:label s:A s:protocol u:3", 0, 0, 0},
    {ENS_REJECT_BAD_PROTOCOL, "{4 " KL "s:query s:q s:label s:A s:protocol u:0", 0, 0, 0},
    {ENS_REJECT_BAD_PROTOCOL, "{4 " KL "s:query s:q s:label s:A s:protocol s:2", 0, 0, 0},
    {ENS_REJECT_DUP_KEY, "{5 " KL "s:query s:q s:label s:A s:protocol u:2 s:protocol u:2", 0, 0, 0},
    {ENS_REJECT_BAD_TS, "{4 " KL "s:query s:q s:label s:A s:ts f:-1", 0, 0, 0},
    {ENS_REJECT_BAD_TS, "{4 " KL "s:query s:q s:label s:A s:ts i:-1", 0, 0, 0},
    {ENS_REJECT_BAD_TS, "{4 " KL "s:query s:q s:label s:A s:ts f:nan", 0, 0, 0},
    {ENS_REJECT_BAD_TS, "{4 " KL "s:query s:q s:label s:A s:ts f:inf", 0, 0, 0},
    {ENS_REJECT_BAD_TS, "{4 " KL "s:query s:q s:label s:A s:ts F:-0.5", 0, 0, 0},
    {ENS_REJECT_BAD_TS, "{4 " KL "s:query s:q s:label s:A s:ts s:1", 0, 0, 0},
    {ENS_REJECT_BAD_TS, "{4 " KL "s:query s:q s:label s:A s:ts nil", 0, 0, 0},
    {ENS_REJECT_BAD_COST, "{4 " KL "s:query s:q s:label s:A s:cost f:-0.1", 0, 0, 0},
    {ENS_REJECT_BAD_COST, "{4 " KL "s:query s:q s:label s:A s:cost i:-3", 0, 0, 0},
    {ENS_REJECT_BAD_COST, "{4 " KL "s:query s:q s:label s:A s:cost f:-inf", 0, 0, 0},
    {ENS_REJECT_BAD_COST, "{4 " KL "s:query s:q s:label s:A s:cost F:nan", 0, 0, 0},
    {ENS_REJECT_BAD_COST, "{4 " KL "s:query s:q s:label s:A s:cost true", 0, 0, 0},
    {ENS_REJECT_BAD_COST, "{4 " KL "s:query s:q s:label s:A s:cost f:1e308", 0, 0, 0},
    {ENS_REJECT_BAD_COST, "{4 " KL "s:query s:q s:label s:A s:cost u:1000001", 0, 0, 0},
    {ENS_REJECT_TOO_MANY_PREDICTIONS,
     "{3 " KP "s:query s:q s:predictions {3 s:a u:1 s:b u:1 s:c u:1", 0, 0, 2},
    {ENS_REJECT_TOO_MANY_PREDICTIONS,
     "{5 " KP "s:query s:q s:predictions {2 s:a u:1 s:b u:1 s:model s:c s:label u:1", 0, 0, 2},
    {ENS_REJECT_TOO_MANY_PREDICTIONS, "{4 " KP "s:query s:q s:model s:c s:label u:1", 0, 0, 0},
};

static void test_protocol_every_reject_reason(void **state)
{
    (void)state;
    int seen[ENS_REJECT_COUNT] = {0};
    for (size_t i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++) {
        const rcase_t *c = &reject_cases[i];
        ens_proto_limits_t lim;
        ens_proto_limits_default(&lim);
        if (c->max_bytes)
            lim.max_message_bytes = c->max_bytes;
        if (c->max_batch)
            lim.max_batch = c->max_batch;
        if (c->max_preds)
            lim.max_predictions = c->max_preds;
        /* The last case: max_predictions 0 means one answer is too many. */
        if (i + 1 == sizeof(reject_cases) / sizeof(reject_cases[0]))
            lim.max_predictions = 0;
        mp_t m;
        mp_init(&m);
        mp_spec(&m, c->spec);
        expect_reject(m.sb.data, m.sb.size, &lim, c->why, c->spec);
        mp_free(&m);
        seen[c->why] = 1;
    }
    for (int r = 0; r < ENS_REJECT_COUNT; r++)
        if (!seen[r])
            fail_msg("reason %s has no test case", ens_reject_name((ens_reject_t)r));
}

/* Names in UTF-8 of every length pass, in every field; a query id may be
 * any bytes (it is hashed, never published); protocol 1 and 2 decode. */
static void test_protocol_utf8_names_and_version(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "{5 " KL "s:task x:a2c3a9 s:query x:a2c0af s:label x:a4f09f9880 s:protocol u:2",
        "{4 " KP "s:query s:q s:model x:a3e282ac s:label x:a4f48fbfbf",
        "{4 " KL "s:query s:q s:label s:A s:protocol u:1",
        "{4 " KL "s:query s:q s:label s:A s:cost u:1000000", /* ingest.max_cost itself */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ens_decoded_t *d = decode_ok(ok[i]);
        assert_int_equal(ens_decoded_count(d), 1);
        release(&d);
    }
}

/* The reference: decode one code point the long way (bit arithmetic and
 * ranges, not the validator's byte tables) and re-encode it; a sequence is
 * valid iff it re-encodes to itself and names a scalar value. */
static int ref_utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i], len = c < 0x80         ? 1
                                 : (c >> 5) == 6  ? 2
                                 : (c >> 4) == 14 ? 3
                                 : (c >> 3) == 30 ? 4
                                                  : 0;
        if (len == 0 || i + len > n || c == 0)
            return 0;
        uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
        for (unsigned k = 1; k < len; k++) {
            if ((p[i + k] >> 6) != 2)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        unsigned need = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (need != len || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Every string of one and two bytes, every three-byte string with a lead
 * byte past ASCII (one that starts with ASCII is an ASCII byte then a
 * two-byte string), and four-byte strings over the lead bytes around the
 * four-byte range agree with the reference. */
static void check_against_ref(const unsigned char *b, size_t n)
{
    if (ens_name_valid((const char *)b, n) != ref_utf8_valid(b, n))
        fail_msg("%zu bytes %02x %02x %02x %02x: validator and reference differ", n, b[0],
                 n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0);
}

static void test_protocol_name_valid_exhaustive(void **state)
{
    (void)state;
    unsigned char b[4];
    for (uint32_t v = 0; v < (1u << 16); v++) {
        b[0] = (unsigned char)(v >> 8), b[1] = (unsigned char)v;
        check_against_ref(b, 2);
        if (v < 256)
            check_against_ref(b + 1, 1);
    }
    for (uint32_t v = 0; v < (1u << 22); v++) {
        b[0] = (unsigned char)(0xC0 | v >> 16), b[1] = (unsigned char)(v >> 8),
        b[2] = (unsigned char)v;
        check_against_ref(b, 3);
    }
    for (uint32_t v = 0; v < (1u << 24); v += 61) {
        b[0] = (unsigned char)(0xEF + (v >> 21)); /* 0xEF..0xF6 */
        b[1] = (unsigned char)(v >> 13), b[2] = (unsigned char)(v >> 5), b[3] = (unsigned char)v;
        check_against_ref(b, 4);
    }
    assert_int_equal(ens_name_valid("", 0), 1);
}

/* The topic: prefix, name, NUL; truncated but sized when the buffer is
 * short. */
static void test_protocol_topic(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(ens_topic("med", 3, buf, sizeof(buf)), 13);
    assert_memory_equal(buf, "ensemble.med\0", 13);
    char small[5] = {'x', 'x', 'x', 'x', 'x'};
    assert_int_equal(ens_topic("med", 3, small, 4), 13);
    assert_memory_equal(small, "ensex", 5);
    /* "med"'s whole topic is not a prefix of "medmcqa"'s. */
    char other[32];
    size_t n = ens_topic("medmcqa", 7, other, sizeof(other));
    assert_true(n > 13 && memcmp(buf, other, 13) != 0);
}

/* The documented counter names, in ENS_REJECT_MAP order. */
static void test_protocol_reject_names(void **state)
{
    (void)state;
    static const char *const names[] = {
        "too_big",      "malformed",      "trailing_bytes", "too_deep",
        "not_event",    "batch_too_long", "empty_batch",    "bad_kind",
        "bad_type",     "duplicate_key",  "no_query",       "no_model",
        "no_label",     "name_too_long",  "empty_name",     "bad_name",
        "bad_protocol", "bad_ts",         "bad_cost",       "too_many_predictions"};
    assert_int_equal(sizeof(names) / sizeof(names[0]), ENS_REJECT_COUNT);
    for (int r = 0; r < ENS_REJECT_COUNT; r++) {
        assert_string_equal(ens_reject_name((ens_reject_t)r), names[r]);
        assert_true(strlen(ens_reject_text((ens_reject_t)r)) > 0);
    }
    assert_string_equal(ens_reject_name(ENS_REJECT_COUNT), "?");
    assert_string_equal(ens_reject_text((ens_reject_t)-1), "?");
}

/* The default limits at their edges: 10,000 events and 1024 answers pass,
 * one more is refused; a 1 MiB message passes, one byte more is too big. */
static void test_protocol_default_limit_edges(void **state)
{
    (void)state;
    ens_proto_limits_t lim;
    ens_proto_limits_default(&lim);
    assert_int_equal(lim.max_message_bytes, 1 << 20);
    assert_int_equal(lim.max_depth, 4);
    for (size_t n = 10000; n <= 10001; n++) {
        mp_t m;
        mp_init(&m);
        msgpack_pack_array(&m.pk, n);
        for (size_t i = 0; i < n; i++)
            mp_spec(&m, "{3 " KL "s:query u:7 s:label u:1");
        ens_reject_t why;
        int rc = decode(m.sb.data, m.sb.size, NULL, NULL, &why);
        assert_int_equal(rc, n == 10000 ? 0 : ENS_EPARSE);
        if (rc)
            assert_int_equal(why, ENS_REJECT_BATCH_TOO_LONG);
        mp_free(&m);
    }
    for (size_t n = 1023; n <= 1024; n++) {
        mp_t m;
        mp_init(&m);
        mp_spec(&m, "{5 " KP "s:query s:q s:model s:extra s:label s:A s:predictions");
        msgpack_pack_map(&m.pk, n);
        for (size_t i = 0; i < n; i++) {
            char name[16];
            snprintf(name, sizeof(name), "m%zu", i);
            msgpack_pack_str_with_body(&m.pk, name, strlen(name));
            msgpack_pack_uint64(&m.pk, i % 3);
        }
        ens_decoded_t *d = NULL;
        ens_reject_t why;
        int rc = decode(m.sb.data, m.sb.size, NULL, &d, &why);
        assert_int_equal(rc, n == 1023 ? 0 : ENS_EPARSE);
        if (rc)
            assert_int_equal(why, ENS_REJECT_TOO_MANY_PREDICTIONS);
        else
            assert_int_equal(ens_decoded_event(d, 0)->npreds, 1024);
        ens_decoded_destroy(&d);
        mp_free(&m);
    }
    mp_t m;
    mp_init(&m);
    mp_spec(&m, "{4 " KL "s:query s:q s:label s:A s:pad");
    size_t pad = (1u << 20) - m.sb.size - 5; /* str32 header */
    mp_filled(&m, 'S', pad, 'p');
    assert_int_equal(m.sb.size, 1u << 20);
    ens_reject_t why;
    assert_int_equal(decode(m.sb.data, m.sb.size, NULL, NULL, &why), 0);
    mp_bytes(&m, "", 1);
    expect_reject(m.sb.data, m.sb.size, NULL, ENS_REJECT_TOO_BIG, "1 MiB + 1");
    mp_free(&m);
}

/* ---- hostile headers --------------------------------------------------- */

typedef struct {
    const char *hex;
    ens_reject_t why;
    const char *what;
} hcase_t;

static const hcase_t hostile[] = {
    {"ddff000000", ENS_REJECT_MALFORMED, "msgpack-c #1013: array32 of 4278190080"},
    {"dfffffffff", ENS_REJECT_MALFORMED, "msgpack-c #1013: map32 of 2^32-1"},
    {"dcffff", ENS_REJECT_MALFORMED, "array16 of 65535, no elements"},
    {"deffff", ENS_REJECT_MALFORMED, "map16 of 65535, no elements"},
    {"dbffffffff6161", ENS_REJECT_MALFORMED, "str32 claiming 4 GB"},
    {"c6ffffffff00", ENS_REJECT_MALFORMED, "bin32 claiming 4 GB"},
    {"c9ffffffff0161", ENS_REJECT_MALFORMED, "ext32 claiming 4 GB"},
    {"c90000000201", ENS_REJECT_MALFORMED, "ext32 of 2, 0 present"},
    {"c9000000", ENS_REJECT_MALFORMED, "ext32 header cut"},
    {"d8016161", ENS_REJECT_MALFORMED, "fixext16 cut"},
    {"dd0000000100", ENS_REJECT_NOT_EVENT, "array32 of one 0: complete, not an event"},
    {"c90000000101ff", ENS_REJECT_NOT_EVENT, "ext32 complete, not an event"},
    {"81a178dd0000ffff", ENS_REJECT_MALFORMED, "array32 inside a map"},
    {"9fc0c0c0", ENS_REJECT_MALFORMED, "fixarray of 15 with 3"},
    {"80c0", ENS_REJECT_TRAILING, "empty map then nil"},
    {"c1", ENS_REJECT_MALFORMED, "never used byte"},
    {"81c1c0", ENS_REJECT_MALFORMED, "never used byte as a key"},
};

static void test_protocol_hostile_headers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        mp_t m;
        mp_init(&m);
        char tok[64];
        snprintf(tok, sizeof(tok), "x:%s", hostile[i].hex);
        mp_token(&m, tok);
        expect_reject(m.sb.data, m.sb.size, NULL, hostile[i].why, hostile[i].what);
        int pw = prewalk(m.sb.data, m.sb.size, 4);
        if (hostile[i].why == ENS_REJECT_NOT_EVENT)
            assert_int_equal(pw, 0);
        else
            assert_int_equal(pw, -(int)(hostile[i].why + 1));
        mp_free(&m);
    }
}

/* 100 levels of arrays or maps are too deep; 4 levels pass the pre-walk. */
static void test_protocol_deep_nesting(void **state)
{
    (void)state;
    char buf[512];
    for (int kind = 0; kind < 2; kind++) {
        size_t n = 0;
        for (int i = 0; i < 100; i++) {
            if (kind == 0) {
                buf[n++] = (char)0x91;
            } else {
                buf[n++] = (char)0x81;
                buf[n++] = (char)0xc0;
            }
        }
        buf[n++] = (char)0xc0;
        expect_reject(buf, n, NULL, ENS_REJECT_TOO_DEEP, "100 levels");
        /* Cut short, the same nesting is still too deep before it is short. */
        expect_reject(buf, n / 2, NULL, ENS_REJECT_TOO_DEEP, "100 levels, half");
    }
    const char four[] = "\x91\x91\x91\x91\xc0";
    assert_int_equal(prewalk(four, 5, 4), 0);
    assert_int_equal(prewalk(four, 5, 3), -(ENS_REJECT_TOO_DEEP + 1));
    expect_reject(four, 5, NULL, ENS_REJECT_NOT_EVENT, "four levels");
    /* Empty containers open no level. */
    const char empties[] = "\x91\x91\x91\x91\x90";
    assert_int_equal(prewalk(empties, 5, 4), 0);
}

/* A valid batch followed by anything is trailing; every strict prefix of it,
 * down to the empty message, is malformed. */
static void test_protocol_trailing_and_truncated(void **state)
{
    (void)state;
    mp_t m;
    mp_init(&m);
    mp_spec(&m, "[3 {6 " KP "s:task s:qa s:query S:40 s:model s:m1 s:label u:300 s:ts f:1.25"
                " {4 " KP "s:query u:70000 s:predictions {3 s:a s:x s:b nil s:c i:-7 s:x e:20"
                " {5 " KL "s:query u:4294967296 s:label S:300 s:cost F:0.5 s:y b:70000");
    ens_proto_limits_t lim;
    ens_proto_limits_default(&lim);
    lim.max_name = 300;
    ens_reject_t why;
    assert_int_equal(decode(m.sb.data, m.sb.size, &lim, NULL, &why), 0);
    for (size_t len = 0; len < m.sb.size; len++) {
        char what[64];
        snprintf(what, sizeof(what), "prefix of %zu bytes", len);
        expect_reject(m.sb.data, len, &lim, ENS_REJECT_MALFORMED, what);
    }
    static const char *const tails[] = {"x:00", "x:c0", "x:c1", "x:dd", "{0", "[3 {0 {0 {0"};
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        mp_t t;
        mp_init(&t);
        mp_bytes(&t, m.sb.data, m.sb.size);
        mp_spec(&t, tails[i]);
        expect_reject(t.sb.data, t.sb.size, &lim, ENS_REJECT_TRAILING, tails[i]);
        mp_free(&t);
    }
    mp_free(&m);
}

/* ---- valid events ----------------------------------------------------- */

static void test_protocol_single_prediction_defaults(void **state)
{
    (void)state;
    ens_decoded_t *d = decode_ok("{4 " KP "s:query s:q1 s:model s:m1 s:label s:A");
    assert_int_equal(ens_decoded_count(d), 1);
    assert_null(ens_decoded_event(d, 1));
    const ens_event_t *e = ens_decoded_event(d, 0);
    assert_int_equal(e->kind, ENS_EVENT_PREDICTION);
    assert_str(e->task, "default");
    assert_int_equal(e->query_is_uint, 0);
    assert_str(e->query_str, "q1");
    assert_int_equal(e->npreds, 1);
    assert_str(e->preds[0].model, "m1");
    assert_str(e->preds[0].label, "A");
    assert_true(e->ts == -1);
    assert_true(e->cost == -1);
    release(&d);
    ens_decoded_destroy(&d); /* NULL-safe */
    ens_decoded_destroy(NULL);
}

static void test_protocol_label_event_fields(void **state)
{
    (void)state;
    /* Key order is free; unknown keys of every type are ignored; 256-byte
     * names are allowed; ts and cost take floats, float32 and integers. */
    ens_decoded_t *d =
        decode_ok("{9 s:x [2 b:3 e:1 s:ts f:1700000000.5 u:7 {1 s:a s:b s:label S:256 "
                  "s:cost u:0 s:query u:18446744073709551615 " KL "s:task S:256 s:kindx u:1");
    const ens_event_t *e = ens_decoded_event(d, 0);
    assert_int_equal(e->kind, ENS_EVENT_LABEL);
    assert_int_equal(e->task.len, 256);
    assert_int_equal(e->label.len, 256);
    assert_int_equal(e->query_is_uint, 1);
    assert_true(e->query_uint == UINT64_MAX);
    assert_true(e->ts == 1700000000.5);
    assert_true(e->cost == 0);
    assert_int_equal(e->npreds, 0);
    release(&d);

    d = decode_ok("{5 " KL "s:query u:0 s:label u:3 s:ts u:12 s:cost F:0.25");
    e = ens_decoded_event(d, 0);
    assert_int_equal(e->query_is_uint, 1);
    assert_true(e->query_uint == 0);
    assert_str(e->label, "3");
    assert_true(e->ts == 12);
    assert_true(e->cost == 0.25);
    release(&d);
}

/* Integer labels are their decimal text; nil and "?" are abstentions; the
 * predictions map and model/label combine. */
static void test_protocol_predictions_map(void **state)
{
    (void)state;
    ens_decoded_t *d =
        decode_ok("{5 " KP "s:query s:q s:model s:solo s:predictions {5 s:a u:3 s:b nil s:c s:? "
                  "s:d i:-12 s:e u:18446744073709551615 s:label s:3");
    const ens_event_t *e = ens_decoded_event(d, 0);
    assert_int_equal(e->npreds, 6);
    assert_str(*pred_of(e, "a"), "3");
    assert_str(*pred_of(e, "b"), "?");
    assert_str(*pred_of(e, "c"), "?");
    assert_str(*pred_of(e, "d"), "-12");
    assert_str(*pred_of(e, "e"), "18446744073709551615");
    assert_str(*pred_of(e, "solo"), "3");
    assert_null(pred_of(e, "label"));
    release(&d);

    /* The predictions map alone is enough; model/label alone too. */
    d = decode_ok("{3 " KP "s:query u:9 s:predictions {1 s:m u:0");
    e = ens_decoded_event(d, 0);
    assert_int_equal(e->npreds, 1);
    assert_str(*pred_of(e, "m"), "0");
    release(&d);
    d = decode_ok("{4 " KP "s:query u:9 s:model s:m s:label nil");
    assert_str(*pred_of(ens_decoded_event(d, 0), "m"), "?");
    release(&d);
}

static void test_protocol_batch(void **state)
{
    (void)state;
    ens_decoded_t *d = decode_ok("[3 {4 " KP "s:task s:t1 s:query s:a s:predictions {2 s:m s:x "
                                 "s:n s:y {3 " KL "s:query s:a s:label s:x {5 " KP
                                 "s:query u:5 s:model s:m s:label u:1 s:cost f:2.5");
    assert_int_equal(ens_decoded_count(d), 3);
    const ens_event_t *e0 = ens_decoded_event(d, 0), *e1 = ens_decoded_event(d, 1),
                      *e2 = ens_decoded_event(d, 2);
    assert_str(e0->task, "t1");
    assert_int_equal(e0->npreds, 2);
    assert_str(*pred_of(e0, "n"), "y");
    assert_int_equal(e1->kind, ENS_EVENT_LABEL);
    assert_str(e1->task, "default");
    assert_str(e1->label, "x");
    assert_int_equal(e2->npreds, 1);
    assert_str(e2->preds[0].label, "1");
    assert_true(e2->cost == 2.5 && e2->ts == -1);
    release(&d);
}

/* One bad event anywhere in a batch rejects the batch, with its reason. */
static void test_protocol_batch_all_or_nothing(void **state)
{
    (void)state;
    const char *good = "{3 " KL "s:query s:q s:label s:A";
    const char *bad = "{3 " KL "s:query s:q s:label s:?";
    for (size_t pos = 0; pos < 5; pos++) {
        mp_t m;
        mp_init(&m);
        mp_spec(&m, "[5");
        for (size_t i = 0; i < 5; i++)
            mp_spec(&m, i == pos ? bad : good);
        expect_reject(m.sb.data, m.sb.size, NULL, ENS_REJECT_NO_LABEL, "bad event in a batch");
        mp_free(&m);
    }
}

/* ---- random mutations -------------------------------------------------- */

static const char *const valid_specs[] = {
    "{4 " KP "s:query s:q1 s:model s:m1 s:label s:A",
    "{6 " KP "s:task s:qa s:query u:300 s:predictions {3 s:a u:1 s:b nil s:c s:? s:ts f:2.5 s:cost "
    "F:1",
    "{3 " KL "s:query u:70000 s:label i:-3",
    "[3 {3 " KL "s:query s:a s:label s:x {4 " KP "s:query s:a s:model s:m s:label s:y {4 " KL
    "s:query u:1 s:label u:2 s:extra [2 e:3 b:2",
};

static void check_event(const ens_event_t *e)
{
    assert_true(e->task.len >= 1 && e->task.len <= 256);
    assert_true(e->kind == ENS_EVENT_LABEL ? e->npreds == 0 && e->label.len >= 1 : e->npreds >= 1);
    assert_true(e->query_is_uint || (e->query_str.len >= 1 && e->query_str.len <= 256));
    for (size_t i = 0; i < e->npreds; i++)
        assert_true(e->preds[i].model.len >= 1 && e->preds[i].label.len >= 1);
}

/* Mutates buf[0..*len) (capacity cap) in place once. */
static void mutate(tu_rng_t *r, unsigned char *buf, size_t *len, size_t cap)
{
    static const unsigned char hot[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc1, 0xc4,
                                        0xc9, 0xcc, 0xcf, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xff};
    size_t op = tu_below(r, 5), at = *len ? tu_below(r, *len) : 0;
    if (op == 0 && *len) {
        buf[at] ^= (unsigned char)(1u << tu_below(r, 8));
    } else if (op == 1 && *len) {
        buf[at] = hot[tu_below(r, sizeof(hot))];
    } else if (op == 2 && *len < cap) {
        memmove(buf + at + 1, buf + at, *len - at);
        buf[at] = (unsigned char)tu_next(r);
        (*len)++;
    } else if (op == 3 && *len) {
        memmove(buf + at, buf + at + 1, *len - at - 1);
        (*len)--;
    } else if (*len) {
        *len = tu_below(r, *len + 1);
    }
}

static void test_protocol_random_mutations(void **state)
{
    (void)state;
    tu_rng_t r;
    tu_seed(&r, 20240611);
    size_t nspecs = sizeof(valid_specs) / sizeof(valid_specs[0]), accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        mp_t m;
        mp_init(&m);
        mp_spec(&m, valid_specs[tu_below(&r, nspecs)]);
        unsigned char buf[512];
        size_t len = m.sb.size;
        assert_true(len + 16 <= sizeof(buf));
        memcpy(buf, m.sb.data, len);
        mp_free(&m);
        for (size_t k = 1 + tu_below(&r, 4); k > 0; k--)
            mutate(&r, buf, &len, sizeof(buf));
        /* A private copy of exactly len bytes, so ASan sees any overread. */
        unsigned char *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        int pw = prewalk((const char *)exact, len, 4);
        ens_decoded_t *d = NULL;
        ens_reject_t why;
        if (decode(exact, len, NULL, &d, &why) == 0) {
            accepted++;
            assert_int_equal(pw, 0);
            for (size_t i = 0; i < ens_decoded_count(d); i++)
                check_event(ens_decoded_event(d, i));
            ens_decoded_destroy(&d);
        } else if (pw < 0) {
            assert_int_equal(why, -pw - 1);
        }
        free(exact);
    }
    /* Single bit flips inside strings keep many messages valid. */
    assert_true(accepted > 100);
}

/* ---- the pre-walk against msgpack-c's packer --------------------------- */

/* A str (kind 0) or bin (kind 1) of n bytes. */
static void pack_blob(msgpack_packer *pk, int kind, size_t n)
{
    char *body = calloc(n ? n : 1, 1);
    if (kind == 0) {
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, body, n);
    } else {
        msgpack_pack_bin(pk, n);
        msgpack_pack_bin_body(pk, body, n);
    }
    free(body);
}

static void pack_blob_ext(msgpack_packer *pk, size_t n)
{
    char *body = calloc(n ? n : 1, 1);
    msgpack_pack_ext_body(pk, body, n);
    free(body);
}

/* Packs a random object; non-empty containers nest at most `room` levels.
 * Returns the nesting depth of non-empty containers it used. */
static size_t pack_random(tu_rng_t *r, msgpack_packer *pk, size_t room)
{
    static const uint64_t widths[] = {5, 200, 60000, 4000000000u, UINT64_MAX};
    size_t kind = tu_below(r, room > 0 ? 15 : 9), n, depth = 0;
    switch (kind) {
    case 0:
        msgpack_pack_nil(pk);
        return 0;
    case 1:
        msgpack_pack_true(pk);
        return 0;
    case 2:
        msgpack_pack_uint64(pk, tu_next(r) % widths[tu_below(r, 5)]);
        return 0;
    case 3:
        msgpack_pack_int64(pk, -(int64_t)(tu_next(r) % widths[tu_below(r, 4)]) - 1);
        return 0;
    case 4:
        if (tu_below(r, 2))
            msgpack_pack_double(pk, tu_uniform(r));
        else
            msgpack_pack_float(pk, (float)tu_uniform(r));
        return 0;
    case 5:
    case 6:
        /* Mostly short, sometimes 8-, 16- or 32-bit lengths. */
        n = tu_below(r, 10) == 0   ? 65536 + tu_below(r, 1000)
            : tu_below(r, 10) == 0 ? 300
                                   : tu_below(r, 40);
        pack_blob(pk, (int)(kind - 5), n);
        return 0;
    case 7:
    case 8:
        n = tu_below(r, 2) ? (size_t)1 << tu_below(r, 5)
                           : tu_below(r, 70000 * tu_below(r, 2) + 300);
        msgpack_pack_ext(pk, n, (int8_t)tu_below(r, 100));
        pack_blob_ext(pk, n);
        return 0;
    default:
        n = tu_below(r, 5) == 0 ? 16 + tu_below(r, 40) : tu_below(r, 5);
        if (kind % 2)
            msgpack_pack_array(pk, n);
        else
            msgpack_pack_map(pk, n);
        for (size_t i = 0; i < n * (kind % 2 ? 1 : 2); i++) {
            size_t d = pack_random(r, pk, room - 1);
            depth = d > depth ? d : depth;
        }
        return n ? depth + 1 : 0;
    }
}

/* For random valid objects the pre-walk returns 0 and msgpack-c agrees;
 * every strict prefix is malformed; one level less depth is too deep. */
static void test_protocol_prewalk_vs_packer(void **state)
{
    (void)state;
    tu_rng_t r;
    tu_seed(&r, 77);
    size_t by_depth[5] = {0};
    for (int iter = 0; iter < 1000; iter++) {
        mp_t m;
        mp_init(&m);
        size_t depth = pack_random(&r, &m.pk, 4);
        by_depth[depth]++;
        const char *buf = m.sb.data;
        size_t len = m.sb.size;
        assert_int_equal(prewalk(buf, len, 4), 0);
        assert_int_equal(prewalk(buf, len, depth), 0);
        if (depth > 0)
            assert_int_equal(prewalk(buf, len, depth - 1), -(ENS_REJECT_TOO_DEEP + 1));
        msgpack_zone *z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
        msgpack_object o;
        size_t off = 0;
        assert_int_equal(msgpack_unpack(buf, len, &off, z, &o), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, len);
        msgpack_zone_free(z);
        /* Prefixes: all of them for small objects, a sample for large. */
        size_t step = len > 4096 ? 1 + len / 997 : 1;
        for (size_t cut = 0; cut < len; cut += step) {
            int pw = prewalk(buf, cut, depth);
            if (pw != -(ENS_REJECT_MALFORMED + 1))
                fail_msg("object %d, prefix %zu of %zu: prewalk %d", iter, cut, len, pw);
        }
        assert_int_equal(prewalk(buf, len - 1, depth), -(ENS_REJECT_MALFORMED + 1));
        mp_free(&m);
    }
    for (size_t d = 0; d <= 4; d++)
        if (by_depth[d] < 10)
            fail_msg("only %zu objects of depth %zu", by_depth[d], d);
}

/* ---- the event encoder ------------------------------------------------ */

static ens_str_t S(const char *s)
{
    ens_str_t r = {s, strlen(s)};
    return r;
}

/* The writer's bytes must be those of spec, packed by msgpack-c the way the
 * producers packed events by hand (ensemblectl send, replay, the closed
 * loop). */
static void assert_bytes(const ens_mpw_t *w, const char *spec)
{
    mp_t m;
    mp_init(&m);
    mp_spec(&m, spec);
    if (w->size != m.sb.size || memcmp(w->data, m.sb.data, w->size) != 0)
        fail_msg("encoder bytes differ from %s (%zu vs %zu bytes)", spec, w->size, m.sb.size);
    mp_free(&m);
}

static void test_protocol_encode_matches_producers(void **state)
{
    (void)state;
    ens_mpw_t w;
    ens_mpw_init(&w);
    /* send: one answer as model/label, ts then cost. */
    ens_pred_t one = {S("m1"), S("A")};
    ens_event_t e = {.kind = ENS_EVENT_PREDICTION,
                     .task = S("t"),
                     .query_str = S("q1"),
                     .preds = &one,
                     .npreds = 1,
                     .ts = 1700000000.5,
                     .cost = 0.25};
    ens_event_encode(&w, &e);
    assert_bytes(&w, "{7 s:kind s:prediction s:task s:t s:query s:q1 s:model s:m1 s:label s:A "
                     "s:ts f:1700000000.5 s:cost f:0.25");
    /* send --kind label --uint-query, without ts and cost. */
    ens_mpw_reset(&w);
    ens_event_t l = {.kind = ENS_EVENT_LABEL,
                     .task = S("default"),
                     .query_is_uint = 1,
                     .query_uint = 70000,
                     .label = S("B"),
                     .ts = -1,
                     .cost = -1};
    ens_event_encode(&w, &l);
    assert_bytes(&w, "{4 s:kind s:label s:task s:default s:query u:70000 s:label s:B");
    /* replay and the closed loop: a predictions map, "?" as sent, batched. */
    ens_mpw_reset(&w);
    ens_pred_t many[3] = {{S("a"), S("A")}, {S("b"), S("?")}, {S("c"), S("B")}};
    ens_event_t p = {.kind = ENS_EVENT_PREDICTION,
                     .task = S("default"),
                     .query_str = S("row-1"),
                     .preds = many,
                     .npreds = 3,
                     .ts = -1,
                     .cost = -1};
    l.query_is_uint = 0;
    l.query_str = S("row-1");
    l.label = S("A");
    ens_mpw_array_begin(&w);
    ens_event_encode(&w, &p);
    ens_event_encode(&w, &l);
    ens_mpw_array_end(&w);
    assert_bytes(&w, "[2 {4 s:kind s:prediction s:task s:default s:query s:row-1 s:predictions "
                     "{3 s:a s:A s:b s:? s:c s:B {4 s:kind s:label s:task s:default s:query "
                     "s:row-1 s:label s:A");
    /* Written as given, even what the decoder refuses (an empty label). */
    ens_mpw_reset(&w);
    many[1].label = S("");
    p.npreds = 2;
    p.query_is_uint = 1;
    p.query_uint = 3;
    ens_event_encode(&w, &p);
    assert_bytes(&w, "{4 s:kind s:prediction s:task s:default s:query u:3 s:predictions {2 s:a "
                     "s:A s:b s:");
    ens_reject_t why;
    assert_int_equal(decode(w.data, w.size, NULL, NULL, &why), ENS_EPARSE);
    assert_int_equal(why, ENS_REJECT_EMPTY_NAME);
    ens_mpw_free(&w);
}

static int str_eq(ens_str_t a, ens_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* What the decoder gives back for an encoded event: negative ts and cost
 * are absent (-1). */
static void assert_event_equal(const ens_event_t *got, const ens_event_t *want)
{
    assert_int_equal(got->kind, want->kind);
    assert_true(str_eq(got->task, want->task));
    assert_int_equal(got->query_is_uint, want->query_is_uint);
    if (want->query_is_uint)
        assert_true(got->query_uint == want->query_uint);
    else
        assert_true(str_eq(got->query_str, want->query_str));
    assert_true(got->ts == (want->ts >= 0 ? want->ts : -1));
    assert_true(got->cost == (want->cost >= 0 ? want->cost : -1));
    if (want->kind == ENS_EVENT_LABEL) {
        assert_true(str_eq(got->label, want->label));
        assert_int_equal(got->npreds, 0);
        return;
    }
    assert_int_equal(got->npreds, want->npreds);
    for (size_t i = 0; i < want->npreds; i++) {
        assert_true(str_eq(got->preds[i].model, want->preds[i].model));
        assert_true(str_eq(got->preds[i].label, want->preds[i].label));
    }
}

/* When set, roundtrip() also decodes into it: one decoder reused across
 * messages of every size must give what a fresh one gives. */
static ens_decoded_t *reused;

/* Encodes n events (as a batch when batch is set), decodes, compares. */
static void roundtrip(const ens_event_t *ev, size_t n, int batch)
{
    ens_mpw_t w;
    ens_mpw_init(&w);
    if (batch)
        ens_mpw_array_begin(&w);
    for (size_t i = 0; i < n; i++)
        ens_event_encode(&w, &ev[i]);
    if (batch)
        ens_mpw_array_end(&w);
    ens_decoded_t *d = NULL;
    ens_reject_t why;
    if (decode(w.data, w.size, NULL, &d, &why) != 0)
        fail_msg("encoded events rejected: %s", ens_reject_name(why));
    assert_int_equal(ens_decoded_count(d), n);
    for (size_t i = 0; i < n; i++)
        assert_event_equal(ens_decoded_event(d, i), &ev[i]);
    ens_decoded_destroy(&d);
    if (reused) {
        ens_proto_limits_t lim;
        ens_proto_limits_default(&lim);
        assert_int_equal(ens_proto_decode_into(reused, w.data, w.size, &lim, &why), 0);
        assert_int_equal(ens_decoded_count(reused), n);
        for (size_t i = 0; i < n; i++)
            assert_event_equal(ens_decoded_event(reused, i), &ev[i]);
    }
    ens_mpw_free(&w);
}

static void test_protocol_encode_roundtrip(void **state)
{
    (void)state;
    ens_pred_t one = {S("m"), S("?")}, two[2] = {{S("a\u00e9b"), S("x")}, {S("a"), S("?")}};
    ens_event_t ev[4] = {
        {.kind = ENS_EVENT_PREDICTION,
         .task = S("default"),
         .query_str = S("q"),
         .preds = &one,
         .npreds = 1,
         .ts = 0,
         .cost = 0},
        {.kind = ENS_EVENT_PREDICTION,
         .task = S("t"),
         .query_is_uint = 1,
         .query_uint = UINT64_MAX,
         .preds = two,
         .npreds = 2,
         .ts = -1,
         .cost = 12.5},
        {.kind = ENS_EVENT_LABEL,
         .task = S("t"),
         .query_is_uint = 1,
         .query_uint = 0,
         .label = S("3"),
         .ts = 1e9,
         .cost = -1},
        {.kind = ENS_EVENT_LABEL,
         .task = S("t"),
         .query_str = S("q"),
         .label = S("B"),
         .ts = -3,
         .cost = -1},
    };
    for (size_t i = 0; i < 4; i++)
        roundtrip(&ev[i], 1, 0);
    roundtrip(ev, 4, 1);
    roundtrip(ev, 1, 1); /* a batch of one is still a batch */
}

/* A random query id of 1..maxlen bytes, any byte (NUL included). */
static ens_str_t random_bytes(tu_rng_t *r, char *buf, size_t maxlen)
{
    size_t n = 1 + tu_below(r, maxlen);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)tu_below(r, 256);
    ens_str_t s = {buf, n};
    return s;
}

/* A random name of 1..maxlen bytes: code points of every UTF-8 length
 * (no NUL, no surrogates), encoded by hand. */
static ens_str_t random_name(tu_rng_t *r, char *buf, size_t maxlen)
{
    static const uint32_t top[] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    size_t want = 1 + tu_below(r, maxlen), n = 0;
    unsigned char *b = (unsigned char *)buf;
    while (n < want) {
        size_t len = 1 + tu_below(r, 4);
        uint32_t lo = len == 1 ? 1 : top[len - 2] + 1;
        uint32_t cp = lo + (uint32_t)tu_below(r, top[len - 1] - lo + 1);
        if (n + len > maxlen || (cp >= 0xD800 && cp <= 0xDFFF))
            break;
        if (len == 1)
            b[n] = (unsigned char)cp;
        else {
            b[n] = (unsigned char)((0xF00u >> len) | (cp >> (6 * (len - 1))));
            for (size_t k = 1; k < len; k++)
                b[n + k] = (unsigned char)(0x80 | ((cp >> (6 * (len - 1 - k))) & 0x3F));
        }
        n += len;
    }
    if (n == 0)
        b[n++] = 'x';
    assert_true(ens_name_valid(buf, n));
    ens_str_t s = {buf, n};
    return s;
}

static void test_protocol_encode_roundtrip_random(void **state)
{
    (void)state;
    enum { MAXEV = 20, MAXP = 30 };
    static char names[MAXEV][MAXP + 3][256];
    ens_event_t ev[MAXEV];
    ens_pred_t preds[MAXEV][MAXP];
    tu_rng_t r;
    tu_seed(&r, 7);
    reused = ens_decoded_new();
    for (int t = 0; t < 300; t++) {
        size_t n = 1 + tu_below(&r, MAXEV);
        for (size_t i = 0; i < n; i++) {
            ens_event_t *e = &ev[i];
            memset(e, 0, sizeof(*e));
            e->kind = tu_below(&r, 2) ? ENS_EVENT_LABEL : ENS_EVENT_PREDICTION;
            e->task = random_name(&r, names[i][0], 256);
            e->query_is_uint = (int)tu_below(&r, 2);
            e->query_uint = tu_next(&r) >> tu_below(&r, 64);
            if (!e->query_is_uint)
                e->query_str = random_bytes(&r, names[i][1], 256);
            e->ts = tu_below(&r, 3) ? tu_uniform(&r) * 2e9 : -1;
            e->cost = tu_below(&r, 3) ? tu_uniform(&r) * 10 : -1;
            do
                e->label = random_name(&r, names[i][2], 20);
            while (e->label.len == 1 && e->label.ptr[0] == '?');
            e->npreds = e->kind == ENS_EVENT_LABEL ? 0 : 1 + tu_below(&r, MAXP);
            e->preds = preds[i];
            for (size_t k = 0; k < e->npreds; k++) {
                preds[i][k].model = random_name(&r, names[i][3 + k], 256);
                preds[i][k].label = tu_below(&r, 3) == 0 ? S("?") : e->label;
            }
        }
        roundtrip(ev, n, n > 1 || tu_below(&r, 2));
    }
    ens_decoded_destroy(&reused);
}

/* A reused decoder: a huge batch, rejected messages (each leaves no event
 * and the reason a fresh decode gives), small messages, the huge one
 * again: every accepted message decodes to its events. */
static void test_protocol_decode_into_reuse(void **state)
{
    (void)state;
    enum { BIG = 6000 };
    static ens_event_t ev[BIG];
    ens_pred_t one = {S("model"), S("A")};
    for (size_t i = 0; i < BIG; i++)
        ev[i] = (ens_event_t){.kind = i % 2 ? ENS_EVENT_LABEL : ENS_EVENT_PREDICTION,
                              .task = S("t"),
                              .query_is_uint = 1,
                              .query_uint = i,
                              .label = S("B"),
                              .preds = &one,
                              .npreds = i % 2 ? 0 : 1,
                              .ts = -1,
                              .cost = (double)i};
    reused = ens_decoded_new();
    static const char *const bad[] = {"{2 " KP "s:query u:1",
                                      "[2 {4 " KP "s:query u:1 s:model s:m s:label s:A {1 s:x s:y",
                                      "{2 s:kind s:nope s:query u:1"};
    ens_proto_limits_t lim;
    ens_proto_limits_default(&lim);
    for (int round = 0; round < 3; round++) {
        roundtrip(ev, BIG, 1);
        roundtrip(ev + 7, 1, 0);
        for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
            mp_t m;
            mp_init(&m);
            mp_spec(&m, bad[b]);
            ens_reject_t want, got;
            assert_int_not_equal(decode(m.sb.data, m.sb.size, NULL, NULL, &want), 0);
            assert_int_equal(ens_proto_decode_into(reused, m.sb.data, m.sb.size, &lim, &got),
                             ENS_EPARSE);
            assert_int_equal(got, want);
            assert_int_equal(ens_decoded_count(reused), 0);
            assert_null(ens_decoded_event(reused, 0));
            mp_free(&m);
        }
        roundtrip(ev + 100, 3, 1);
        assert_int_equal(ens_proto_decode_into(reused, "\xc1", 1, &lim, &(ens_reject_t){0}),
                         ENS_EPARSE);
    }
    ens_decoded_destroy(&reused);
    assert_null(reused);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protocol_reject_names),
        cmocka_unit_test(test_protocol_utf8_names_and_version),
        cmocka_unit_test(test_protocol_name_valid_exhaustive),
        cmocka_unit_test(test_protocol_topic),
        cmocka_unit_test(test_protocol_every_reject_reason),
        cmocka_unit_test(test_protocol_default_limit_edges),
        cmocka_unit_test(test_protocol_hostile_headers),
        cmocka_unit_test(test_protocol_deep_nesting),
        cmocka_unit_test(test_protocol_trailing_and_truncated),
        cmocka_unit_test(test_protocol_single_prediction_defaults),
        cmocka_unit_test(test_protocol_label_event_fields),
        cmocka_unit_test(test_protocol_predictions_map),
        cmocka_unit_test(test_protocol_batch),
        cmocka_unit_test(test_protocol_batch_all_or_nothing),
        cmocka_unit_test(test_protocol_random_mutations),
        cmocka_unit_test(test_protocol_prewalk_vs_packer),
        cmocka_unit_test(test_protocol_encode_matches_producers),
        cmocka_unit_test(test_protocol_encode_roundtrip),
        cmocka_unit_test(test_protocol_encode_roundtrip_random),
        cmocka_unit_test(test_protocol_decode_into_reuse),
    };
    return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}
