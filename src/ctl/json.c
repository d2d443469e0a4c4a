/* json.c - the one JSON writer of ensemblectl, over jansson.
 *
 * Every JSON document ensemblectl prints is built as a json_t tree with the
 * constructors here and written by ctl_json_print(), so that all of them
 * obey the same rules: strings are valid UTF-8 (a byte that is not becomes
 * U+FFFD, a NUL becomes \u0000), nil, NaN and infinities are null, and
 * reals are printed in the fewest digits that read back as the same double
 * (0.857, not the 0.85699999999999998 of %.17g): nothing is lost, so a
 * figure ensemblectl prints equals the daemon's to the last bit. */
#include <limits.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ensembled/xalloc.h"

json_t *ctl_json_real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* The length of the valid UTF-8 sequence at p[0..n) (n >= 1), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2, min = 0x80, cp = p[0] & 0x1fu;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3, min = 0x800, cp = p[0] & 0x0fu;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4, min = 0x10000, cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3fu);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF are not
     * UTF-8 (RFC 3629), and jansson refuses them. */
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

json_t *ctl_json_str(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    /* Each invalid byte grows into the 3 bytes of U+FFFD at most. */
    char *buf = ens_xmalloc(len * 3 + 1);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(p + i, len - i);
        if (k == 0) {
            memcpy(buf + n, "\xef\xbf\xbd", 3);
            n += 3;
            i++;
        } else {
            memcpy(buf + n, p + i, k);
            n += k;
            i += k;
        }
    }
    json_t *j = json_stringn(buf, n);
    free(buf);
    return j ? j : json_null();
}

json_t *ctl_json_cstr(const char *s)
{
    return s ? ctl_json_str(s, strlen(s)) : json_null();
}

void ctl_json_set(json_t *obj, const char *key, json_t *val)
{
    json_object_set_new(obj, key, val ? val : json_null());
}

void ctl_json_push(json_t *arr, json_t *val)
{
    json_array_append_new(arr, val ? val : json_null());
}

/* A map key as a JSON key: strings (made valid UTF-8), numbers and booleans
 * as their text, anything else "?". */
static json_t *key_of(const msgpack_object *k)
{
    char buf[32];
    switch (k->type) {
    case MSGPACK_OBJECT_STR:
        return ctl_json_str(k->via.str.ptr, k->via.str.size);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)k->via.u64);
        return json_string(buf);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(buf, sizeof(buf), "%lld", (long long)k->via.i64);
        return json_string(buf);
    case MSGPACK_OBJECT_BOOLEAN:
        return json_string(k->via.boolean ? "true" : "false");
    default:
        return json_string("?");
    }
}

json_t *ctl_json_from_msgpack(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        /* jansson's integers are signed 64-bit: larger ones as reals. */
        if (o->via.u64 > (uint64_t)LLONG_MAX)
            return ctl_json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return ctl_json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return ctl_json_str(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++)
            ctl_json_push(a, ctl_json_from_msgpack(&o->via.array.ptr[i]));
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            json_t *k = key_of(&o->via.map.ptr[i].key);
            json_t *v = ctl_json_from_msgpack(&o->via.map.ptr[i].val);
            /* The length form: a key may hold a NUL. */
            json_object_setn_new(m, json_string_value(k), json_string_length(k),
                                 v ? v : json_null());
            json_decref(k);
        }
        return m;
    }
    default:
        /* nil, and the binary and extension types no reply holds. */
        return json_null();
    }
}

/* Writes v into buf (at least 32 bytes) in the fewest significant digits
 * that read back as v, with ".0" when that looks like an integer (the value
 * stays a real for a typed reader). */
static void shortest(double v, char *buf, size_t len)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, len, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (!strpbrk(buf, ".eE"))
        strncat(buf, ".0", len - strlen(buf) - 1);
}

/* Copies the JSON text in to out, each real rewritten by shortest(). jansson
 * prints reals with one fixed precision for the whole document, too many
 * digits for some values or too few for others; its reals are all finite,
 * so every number token with a '.' or an exponent, outside strings, is one. */
static void write_reals_shortest(const char *in, FILE *out)
{
    int in_str = 0;
    for (const char *p = in; *p;) {
        if (in_str) {
            if (*p == '\\' && p[1]) {
                fputc(*p++, out);
            } else if (*p == '"') {
                in_str = 0;
            }
            fputc(*p++, out);
            continue;
        }
        if (*p == '"') {
            in_str = 1;
            fputc(*p++, out);
            continue;
        }
        if (*p != '-' && (*p < '0' || *p > '9')) {
            fputc(*p++, out);
            continue;
        }
        size_t n = strspn(p, "-+0123456789.eE");
        if (memchr(p, '.', n) || memchr(p, 'e', n) || memchr(p, 'E', n)) {
            char buf[40];
            shortest(strtod(p, NULL), buf, sizeof(buf));
            fputs(buf, out);
        } else {
            fwrite(p, 1, n, out);
        }
        p += n;
    }
}

int ctl_json_print(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (!text)
        return -1;
    write_reals_shortest(text, stdout);
    free(text);
    int rc = fputc('\n', stdout) == EOF ? -1 : 0;
    fflush(stdout);
    return rc;
}

int ctl_json_print_msgpack(const msgpack_object *o)
{
    return ctl_json_print(ctl_json_from_msgpack(o));
}
