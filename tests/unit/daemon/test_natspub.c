/* test_natspub.c - the key-value value of a body (natspub.h).
 *
 * Bodies are packed here with msgpack-c as maps of 1, 15, 16 and 70000
 * entries (fixmap, fixmap at its limit, map16, map32); the value must
 * unpack, with msgpack-c, to the same map plus stream_seq, and its position
 * must read back. Values the daemon did not make read as position 0, so
 * any of them is replaced.
 */
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "natspub.h"

static void pack_map(msgpack_sbuffer *sb, size_t n)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < n; i++) {
        char k[32];
        int len = snprintf(k, sizeof(k), "k%zu", i);
        msgpack_pack_str(&pk, (size_t)len);
        msgpack_pack_str_body(&pk, k, (size_t)len);
        msgpack_pack_uint64(&pk, i * 3);
    }
}

static void check_size(size_t n, uint64_t seq)
{
    msgpack_sbuffer sb;
    pack_map(&sb, n);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(ens_natspub_value(sb.data, sb.size, seq, &v, &len), 0);
    assert_true(ens_natspub_value_seq(v, len) == seq);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, v, len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, len);
    assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
    const msgpack_object_map *m = &u.data.via.map;
    assert_int_equal(m->size, n + 1);
    for (size_t i = 0; i < n; i++) {
        char k[32];
        int kl = snprintf(k, sizeof(k), "k%zu", i);
        assert_int_equal(m->ptr[i].key.via.str.size, kl);
        assert_memory_equal(m->ptr[i].key.via.str.ptr, k, (size_t)kl);
        assert_true(m->ptr[i].val.via.u64 == i * 3);
    }
    const msgpack_object_kv *last = &m->ptr[n];
    assert_int_equal(last->key.via.str.size, 10);
    assert_memory_equal(last->key.via.str.ptr, "stream_seq", 10);
    assert_int_equal(last->val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(last->val.via.u64 == seq);
    msgpack_unpacked_destroy(&u);
    free(v);
    msgpack_sbuffer_destroy(&sb);
}

static void test_natspub_value_every_map_header(void **state)
{
    (void)state;
    check_size(0, 1);
    check_size(1, 0);
    check_size(15, UINT64_MAX);
    check_size(16, 123456789);
    check_size(70000, 42);
}

static void test_natspub_foreign_values(void **state)
{
    (void)state;
    char *v = NULL;
    size_t len = 0;
    /* Not a map: refused. */
    assert_int_equal(ens_natspub_value("\x93\x01\x02\x03", 4, 5, &v, &len), -1);
    assert_int_equal(ens_natspub_value("", 0, 5, &v, &len), -1);
    assert_int_equal(ens_natspub_value("\xde\x00", 2, 5, &v, &len), -1);
    /* Short, or not ending in our stream_seq: position 0. */
    assert_true(ens_natspub_value_seq("", 0) == 0);
    assert_true(ens_natspub_value_seq("\x80", 1) == 0);
    msgpack_sbuffer sb;
    pack_map(&sb, 20);
    assert_true(ens_natspub_value_seq(sb.data, sb.size) == 0);
    assert_int_equal(ens_natspub_value(sb.data, sb.size, 77, &v, &len), 0);
    v[len - 9] = (char)0xce; /* another integer type than ours */
    assert_true(ens_natspub_value_seq(v, len) == 0);
    free(v);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_natspub_value_every_map_header),
        cmocka_unit_test(test_natspub_foreign_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
