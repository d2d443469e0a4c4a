/* test_mpw.c - the MessagePack writer (mpw.h) against msgpack-c's packer.
 *
 * Every value is written twice, once with ens_mpw_* and once with the
 * msgpack_pack_* call for the same value and count, and the bytes must be
 * identical: scalars at every encoding boundary, strings and bins at every
 * length boundary, containers of 0, 15/16, 255/256 and 65535/65536 items,
 * random nested trees, raw objects. Misuse (an odd map, nesting too deep)
 * must abort, checked in a child process. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "ensembled/mpw.h"
#include "testutil.h"

/* Both writers side by side. */
typedef struct {
    ens_mpw_t w;
    msgpack_sbuffer sb;
    msgpack_packer pk;
} pair_t;

static void pair_init(pair_t *p)
{
    ens_mpw_init(&p->w);
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void pair_free(pair_t *p)
{
    ens_mpw_free(&p->w);
    msgpack_sbuffer_destroy(&p->sb);
}

static void assert_same(const pair_t *p)
{
    assert_int_equal(p->w.depth, 0);
    if (p->w.size != p->sb.size)
        fail_msg("writer wrote %zu bytes, msgpack-c %zu", p->w.size, p->sb.size);
    for (size_t i = 0; i < p->sb.size; i++)
        if ((unsigned char)p->w.data[i] != (unsigned char)p->sb.data[i])
            fail_msg("byte %zu: writer %02x, msgpack-c %02x", i, (unsigned char)p->w.data[i],
                     (unsigned char)p->sb.data[i]);
}

static void test_mpw_scalars(void **state)
{
    (void)state;
    pair_t p;
    pair_init(&p);
    ens_mpw_nil(&p.w);
    msgpack_pack_nil(&p.pk);
    ens_mpw_bool(&p.w, 1);
    msgpack_pack_true(&p.pk);
    ens_mpw_bool(&p.w, 0);
    msgpack_pack_false(&p.pk);
    ens_mpw_bool(&p.w, 7); /* any non-zero is true */
    msgpack_pack_true(&p.pk);
    assert_same(&p);
    pair_free(&p);
}

static void test_mpw_uint_boundaries(void **state)
{
    (void)state;
    static const uint64_t v[] = {0,
                                 1,
                                 127,
                                 128,
                                 255,
                                 256,
                                 65535,
                                 65536,
                                 UINT32_MAX,
                                 (uint64_t)UINT32_MAX + 1,
                                 UINT64_MAX - 1,
                                 UINT64_MAX};
    pair_t p;
    pair_init(&p);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ens_mpw_uint(&p.w, v[i]);
        msgpack_pack_uint64(&p.pk, v[i]);
    }
    assert_same(&p);
    /* Fixints, then the uint8/16/32/64 forms: 1+1+1+2+2+3+3+5+5+9+9+9 bytes. */
    assert_int_equal(p.w.size, 50);
    pair_free(&p);
}

static void test_mpw_int_boundaries(void **state)
{
    (void)state;
    static const int64_t v[] = {0,
                                1,
                                127,
                                128,
                                255,
                                256,
                                65535,
                                65536,
                                INT32_MAX,
                                (int64_t)INT32_MAX + 1,
                                INT64_MAX,
                                -1,
                                -31,
                                -32,
                                -33,
                                -127,
                                -128,
                                -129,
                                -32767,
                                -32768,
                                -32769,
                                INT32_MIN,
                                (int64_t)INT32_MIN - 1,
                                INT64_MIN + 1,
                                INT64_MIN};
    pair_t p;
    pair_init(&p);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ens_mpw_int(&p.w, v[i]);
        msgpack_pack_int64(&p.pk, v[i]);
    }
    assert_same(&p);
    pair_free(&p);
    /* The daemon's pattern keys are written with msgpack_pack_int today. */
    pair_init(&p);
    for (int i = -40; i < 300; i++) {
        ens_mpw_int(&p.w, i);
        msgpack_pack_int(&p.pk, i);
    }
    assert_same(&p);
    pair_free(&p);
}

static void test_mpw_doubles(void **state)
{
    (void)state;
    static const double v[] = {0.0,      -0.0,     1.5, -2.25, 1e-310, 1.7976931348623157e308,
                               INFINITY, -INFINITY};
    pair_t p;
    pair_init(&p);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ens_mpw_double(&p.w, v[i]);
        msgpack_pack_double(&p.pk, v[i]);
        ens_mpw_double_or_nil(&p.w, v[i]);
        msgpack_pack_double(&p.pk, v[i]);
    }
    /* A whole-valued double stays a float64: 3.0 is not packed as 3. */
    ens_mpw_double(&p.w, 3.0);
    msgpack_pack_double(&p.pk, 3.0);
    ens_mpw_double_or_nil(&p.w, NAN);
    msgpack_pack_nil(&p.pk);
    assert_same(&p);
    pair_free(&p);
    /* A NaN written as a double is a float64 NaN (the daemon's weights). */
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_mpw_double(&w, NAN);
    assert_int_equal(w.size, 9);
    assert_int_equal((unsigned char)w.data[0], 0xcb);
    ens_mpw_free(&w);
}

static void test_mpw_str_bin_boundaries(void **state)
{
    (void)state;
    static const size_t len[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 70000};
    char *body = malloc(70000);
    for (size_t i = 0; i < 70000; i++)
        body[i] = (char)(i * 7); /* NUL bytes included */
    pair_t p;
    pair_init(&p);
    for (size_t i = 0; i < sizeof(len) / sizeof(len[0]); i++) {
        ens_mpw_str(&p.w, body, len[i]);
        msgpack_pack_str_with_body(&p.pk, body, len[i]);
        ens_mpw_bin(&p.w, body, len[i]);
        msgpack_pack_bin_with_body(&p.pk, body, len[i]);
    }
    ens_mpw_cstr(&p.w, "kind");
    msgpack_pack_str_with_body(&p.pk, "kind", 4);
    ens_mpw_cstr(&p.w, "");
    msgpack_pack_str_with_body(&p.pk, "", 0);
    ens_mpw_str(&p.w, NULL, 0);
    msgpack_pack_str(&p.pk, 0);
    assert_same(&p);
    pair_free(&p);
    free(body);
}

/* A map and an array of n items each (map values distinct small ints),
 * inside an outer array so that the move of the items is exercised with
 * bytes before and after. */
static void containers_of(size_t n)
{
    pair_t p;
    pair_init(&p);
    ens_mpw_array_begin(&p.w);
    msgpack_pack_array(&p.pk, 3);
    ens_mpw_map_begin(&p.w);
    msgpack_pack_map(&p.pk, n);
    for (size_t i = 0; i < n; i++) {
        ens_mpw_uint(&p.w, i);
        msgpack_pack_uint64(&p.pk, i);
        ens_mpw_int(&p.w, -(int64_t)(i % 100));
        msgpack_pack_int64(&p.pk, -(int64_t)(i % 100));
    }
    ens_mpw_map_end(&p.w);
    ens_mpw_array_begin(&p.w);
    msgpack_pack_array(&p.pk, n);
    for (size_t i = 0; i < n; i++) {
        ens_mpw_uint(&p.w, i * 3);
        msgpack_pack_uint64(&p.pk, i * 3);
    }
    ens_mpw_array_end(&p.w);
    ens_mpw_cstr(&p.w, "end");
    msgpack_pack_str_with_body(&p.pk, "end", 3);
    ens_mpw_array_end(&p.w);
    assert_same(&p);
    pair_free(&p);
}

static void test_mpw_container_boundaries(void **state)
{
    (void)state;
    static const size_t n[] = {0, 1, 15, 16, 17, 255, 256, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); i++)
        containers_of(n[i]);
}

static void test_mpw_empty_and_nested_empty(void **state)
{
    (void)state;
    pair_t p;
    pair_init(&p);
    /* [[], {}, [[]], {"a": {}}] */
    ens_mpw_array_begin(&p.w);
    ens_mpw_array_begin(&p.w);
    ens_mpw_array_end(&p.w);
    ens_mpw_map_begin(&p.w);
    ens_mpw_map_end(&p.w);
    ens_mpw_array_begin(&p.w);
    ens_mpw_array_begin(&p.w);
    ens_mpw_array_end(&p.w);
    ens_mpw_array_end(&p.w);
    ens_mpw_map_begin(&p.w);
    ens_mpw_cstr(&p.w, "a");
    ens_mpw_map_begin(&p.w);
    ens_mpw_map_end(&p.w);
    ens_mpw_map_end(&p.w);
    ens_mpw_array_end(&p.w);
    static const unsigned char want[] = {0x94, 0x90, 0x80, 0x91, 0x90, 0x81, 0xa1, 'a', 0x80};
    assert_int_equal(p.w.size, sizeof(want));
    assert_memory_equal(p.w.data, want, sizeof(want));
    /* A top-level empty map alone. */
    ens_mpw_reset(&p.w);
    ens_mpw_map_begin(&p.w);
    ens_mpw_map_end(&p.w);
    msgpack_pack_map(&p.pk, 0);
    assert_same(&p);
    pair_free(&p);
}

/* A random tree of depth at most maxdepth, written by both writers in
 * lockstep: the item count is drawn before the items, which is what
 * msgpack-c needs and what the writer must not. */
static void random_tree(pair_t *p, tu_rng_t *r, size_t depth, size_t maxdepth)
{
    size_t kind = tu_below(r, depth < maxdepth ? 9 : 6);
    switch (kind) {
    case 0:
        ens_mpw_nil(&p->w);
        msgpack_pack_nil(&p->pk);
        break;
    case 1: {
        uint64_t v = tu_next(r) >> tu_below(r, 64);
        ens_mpw_uint(&p->w, v);
        msgpack_pack_uint64(&p->pk, v);
        break;
    }
    case 2: {
        int64_t v = (int64_t)(tu_next(r) >> (1 + tu_below(r, 63))) * (tu_below(r, 2) ? -1 : 1);
        ens_mpw_int(&p->w, v);
        msgpack_pack_int64(&p->pk, v);
        break;
    }
    case 3: {
        double v = (tu_uniform(r) - 0.5) * 1e6;
        ens_mpw_double(&p->w, v);
        msgpack_pack_double(&p->pk, v);
        break;
    }
    case 4:
    case 5: {
        static const size_t lens[] = {0, 5, 31, 32, 200, 300};
        static const char text[301] = {'x'};
        size_t n = lens[tu_below(r, 6)];
        ens_mpw_str(&p->w, text, n);
        msgpack_pack_str_with_body(&p->pk, text, n);
        break;
    }
    default: {
        static const size_t counts[] = {0, 1, 3, 15, 16, 40};
        size_t n = counts[tu_below(r, 6)], is_map = kind == 6;
        if (is_map) {
            ens_mpw_map_begin(&p->w);
            msgpack_pack_map(&p->pk, n);
        } else {
            ens_mpw_array_begin(&p->w);
            msgpack_pack_array(&p->pk, n);
        }
        for (size_t i = 0; i < n * (is_map ? 2 : 1); i++)
            random_tree(p, r, depth + 1, maxdepth);
        if (is_map)
            ens_mpw_map_end(&p->w);
        else
            ens_mpw_array_end(&p->w);
    }
    }
}

static void test_mpw_random_nested_trees(void **state)
{
    (void)state;
    tu_rng_t r;
    tu_seed(&r, 42);
    for (int t = 0; t < 300; t++) {
        pair_t p;
        pair_init(&p);
        ens_mpw_array_begin(&p.w);
        msgpack_pack_array(&p.pk, 2);
        random_tree(&p, &r, 1, 4);
        random_tree(&p, &r, 1, 4);
        ens_mpw_array_end(&p.w);
        assert_same(&p);
        pair_free(&p);
    }
}

static void test_mpw_full_depth(void **state)
{
    (void)state;
    pair_t p;
    pair_init(&p);
    for (int d = 0; d < ENS_MPW_DEPTH; d++) {
        ens_mpw_array_begin(&p.w);
        msgpack_pack_array(&p.pk, d + 1 == ENS_MPW_DEPTH ? 1 : 17);
        if (d + 1 < ENS_MPW_DEPTH)
            for (int i = 0; i < 16; i++) {
                ens_mpw_uint(&p.w, (uint64_t)i);
                msgpack_pack_uint64(&p.pk, (uint64_t)i);
            }
    }
    ens_mpw_nil(&p.w);
    msgpack_pack_nil(&p.pk);
    for (int d = 0; d < ENS_MPW_DEPTH; d++)
        ens_mpw_array_end(&p.w);
    assert_same(&p);
    pair_free(&p);
}

static void test_mpw_raw(void **state)
{
    (void)state;
    /* An object packed elsewhere (the daemon's stored body) inside a map. */
    msgpack_sbuffer inner;
    msgpack_sbuffer_init(&inner);
    msgpack_packer ipk;
    msgpack_packer_init(&ipk, &inner, msgpack_sbuffer_write);
    msgpack_pack_map(&ipk, 1);
    msgpack_pack_str_with_body(&ipk, "models", 6);
    msgpack_pack_array(&ipk, 20);
    for (int i = 0; i < 20; i++)
        msgpack_pack_int(&ipk, i);
    pair_t p;
    pair_init(&p);
    ens_mpw_map_begin(&p.w);
    msgpack_pack_map(&p.pk, 16);
    for (int i = 0; i < 15; i++) {
        ens_mpw_uint(&p.w, (uint64_t)i);
        msgpack_pack_int(&p.pk, i);
        ens_mpw_bool(&p.w, i % 2);
        if (i % 2)
            msgpack_pack_true(&p.pk);
        else
            msgpack_pack_false(&p.pk);
    }
    ens_mpw_cstr(&p.w, "ensemble");
    msgpack_pack_str_with_body(&p.pk, "ensemble", 8);
    ens_mpw_raw(&p.w, inner.data, inner.size); /* the 32nd item: the map is a map16 */
    msgpack_sbuffer_write(&p.sb, inner.data, inner.size);
    ens_mpw_map_end(&p.w);
    assert_same(&p);
    /* Unpacks as one object with msgpack-c. */
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    msgpack_object o;
    size_t off = 0;
    assert_int_equal(msgpack_unpack(p.w.data, p.w.size, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, p.w.size);
    assert_int_equal(o.via.map.size, 16);
    assert_int_equal(o.via.map.ptr[15].val.via.map.ptr[0].val.via.array.size, 20);
    msgpack_zone_destroy(&z);
    msgpack_sbuffer_destroy(&inner);
    pair_free(&p);
}

static void test_mpw_reset_take_reuse(void **state)
{
    (void)state;
    ens_mpw_t w;
    ens_mpw_init(&w);
    size_t n = 99;
    char *empty = ens_mpw_take(&w, &n);
    assert_non_null(empty);
    assert_int_equal(n, 0);
    free(empty);
    ens_mpw_array_begin(&w);
    ens_mpw_cstr(&w, "abc");
    ens_mpw_array_end(&w);
    size_t cap = w.cap;
    ens_mpw_reset(&w);
    assert_int_equal(w.size, 0);
    assert_int_equal(w.cap, cap);
    ens_mpw_uint(&w, 5);
    char *buf = ens_mpw_take(&w, &n);
    assert_int_equal(n, 1);
    assert_int_equal(buf[0], 5);
    assert_null(w.data);
    assert_int_equal(w.size, 0);
    free(buf);
    /* Usable again after take and after free. */
    ens_mpw_nil(&w);
    assert_int_equal(w.size, 1);
    ens_mpw_free(&w);
    ens_mpw_init(&w);
    ens_mpw_bool(&w, 1);
    assert_int_equal((unsigned char)w.data[0], 0xc3);
    ens_mpw_free(&w);
}

/* Runs fn in a child with stderr closed; asserts that it aborts. */
static void assert_aborts(void (*fn)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(2);
        fn();
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
}

static void odd_map(void)
{
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_mpw_map_begin(&w);
    ens_mpw_cstr(&w, "key without value");
    ens_mpw_map_end(&w);
}

static void too_deep(void)
{
    ens_mpw_t w;
    ens_mpw_init(&w);
    for (int d = 0; d <= ENS_MPW_DEPTH; d++)
        ens_mpw_array_begin(&w);
}

static void wrong_end(void)
{
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_mpw_array_begin(&w);
    ens_mpw_map_end(&w);
}

static void end_without_begin(void)
{
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_mpw_array_end(&w);
}

static void take_open(void)
{
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_mpw_map_begin(&w);
    size_t n;
    free(ens_mpw_take(&w, &n));
}

static void test_mpw_misuse_aborts(void **state)
{
    (void)state;
    assert_aborts(odd_map);
    assert_aborts(too_deep);
    assert_aborts(wrong_end);
    assert_aborts(end_without_begin);
    assert_aborts(take_open);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpw_scalars),
        cmocka_unit_test(test_mpw_uint_boundaries),
        cmocka_unit_test(test_mpw_int_boundaries),
        cmocka_unit_test(test_mpw_doubles),
        cmocka_unit_test(test_mpw_str_bin_boundaries),
        cmocka_unit_test(test_mpw_container_boundaries),
        cmocka_unit_test(test_mpw_empty_and_nested_empty),
        cmocka_unit_test(test_mpw_random_nested_trees),
        cmocka_unit_test(test_mpw_full_depth),
        cmocka_unit_test(test_mpw_raw),
        cmocka_unit_test(test_mpw_reset_take_reuse),
        cmocka_unit_test(test_mpw_misuse_aborts),
    };
    return cmocka_run_group_tests_name("mpw", tests, NULL, NULL);
}
