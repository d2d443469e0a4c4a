/* test_ctlmsg.c - the control protocol (ctlmsg.h).
 *
 * Requests and replies are compared byte for byte with msgpack-c packing
 * the same maps (what ensemblectl and the daemon packed by hand before the
 * codec); every request rejection is checked against the error text the
 * daemon has always replied with, spelled out here; replies are read back
 * after being built by msgpack-c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "ensembled/ctlmsg.h"
#include "ensembled/err.h"

#define E_NOT_MSGPACK "request is not a valid MessagePack object of at most 64 KiB"
#define E_NO_CMD "request must be a map with a string \"cmd\""
#define E_BAD_TASK "\"task\" must be a string of at most 256 bytes"
#define E_UNKNOWN_CMD "unknown command (status, ensemble, recompute)"

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mp_t;

static void mp_init(mp_t *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_str(mp_t *m, const char *s, size_t n)
{
    msgpack_pack_str_with_body(&m->pk, s, n);
}

static void mp_cstr(mp_t *m, const char *s)
{
    mp_str(m, s, strlen(s));
}

static void assert_same(const ens_mpw_t *w, const mp_t *m)
{
    assert_int_equal(w->size, m->sb.size);
    assert_memory_equal(w->data, m->sb.data, w->size);
}

static void test_ctlmsg_names(void **state)
{
    (void)state;
    static const char *const names[] = {"status", "ensemble", "recompute"};
    assert_int_equal(ENS_CTL_CMD_COUNT, 3);
    for (int c = 0; c < ENS_CTL_CMD_COUNT; c++) {
        assert_string_equal(ens_ctl_cmd_name((ens_ctl_cmd_t)c), names[c]);
        ens_ctl_cmd_t got = ENS_CTL_CMD_COUNT;
        assert_int_equal(ens_ctl_cmd_parse(names[c], strlen(names[c]), &got), 0);
        assert_int_equal(got, c);
    }
    ens_ctl_cmd_t x;
    assert_int_equal(ens_ctl_cmd_parse("statu", 5, &x), ENS_ENOTFOUND);
    assert_int_equal(ens_ctl_cmd_parse("status\0x", 8, &x), ENS_ENOTFOUND);
    assert_int_equal(ens_ctl_cmd_parse("", 0, &x), ENS_ENOTFOUND);
    assert_string_equal(ens_ctl_cmd_name(ENS_CTL_CMD_COUNT), "?");
    assert_string_equal(ens_ctl_err_text(ENS_CTL_ERR_NOT_MSGPACK), E_NOT_MSGPACK);
    assert_string_equal(ens_ctl_err_text(ENS_CTL_ERR_NO_CMD), E_NO_CMD);
    assert_string_equal(ens_ctl_err_text(ENS_CTL_ERR_BAD_TASK), E_BAD_TASK);
    assert_string_equal(ens_ctl_err_text(ENS_CTL_ERR_UNKNOWN_CMD), E_UNKNOWN_CMD);
    assert_string_equal(ens_ctl_err_text(ENS_CTL_ERR_UNKNOWN_TASK), "unknown task");
    assert_string_equal(ens_ctl_err_text(ENS_CTL_ERR_NO_ENSEMBLE),
                        "no ensemble published yet for this task");
    assert_string_equal(ens_ctl_err_text(ENS_CTL_ERR_COUNT), "?");
}

static void decode_ok(const void *buf, size_t len, ens_ctl_request_t *req)
{
    char err[128] = "";
    ens_ctl_err_t why = ENS_CTL_ERR_COUNT;
    if (ens_ctl_request_decode(buf, len, req, &why, err, sizeof(err)) != 0)
        fail_msg("refused: %s", err);
    assert_int_equal(why, ENS_CTL_ERR_COUNT); /* untouched */
}

static void test_ctlmsg_request_roundtrip(void **state)
{
    (void)state;
    char long_task[ENS_MAX_NAME + 1];
    memset(long_task, 't', ENS_MAX_NAME);
    long_task[ENS_MAX_NAME] = '\0';
    const char *tasks[] = {NULL, "default", "t1", "", long_task};
    for (int c = 0; c < ENS_CTL_CMD_COUNT; c++) {
        for (size_t t = 0; t < sizeof(tasks) / sizeof(tasks[0]); t++) {
            ens_mpw_t w;
            ens_mpw_init(&w);
            ens_ctl_request_encode(&w, (ens_ctl_cmd_t)c, tasks[t]);
            /* The bytes ensemblectl packed by hand. */
            mp_t m;
            mp_init(&m);
            msgpack_pack_map(&m.pk, tasks[t] ? 2 : 1);
            mp_cstr(&m, "cmd");
            mp_cstr(&m, ens_ctl_cmd_name((ens_ctl_cmd_t)c));
            if (tasks[t]) {
                mp_cstr(&m, "task");
                mp_cstr(&m, tasks[t]);
            }
            assert_same(&w, &m);
            ens_ctl_request_t req;
            decode_ok(w.data, w.size, &req);
            assert_int_equal(req.cmd, c);
            assert_int_equal(req.has_task, tasks[t] != NULL);
            assert_string_equal(req.task, tasks[t] ? tasks[t] : "default");
            assert_int_equal(req.task_len, strlen(req.task));
            msgpack_sbuffer_destroy(&m.sb);
            ens_mpw_free(&w);
        }
    }
}

/* Keys in any order, unknown keys, the first of two "cmd", a task with a
 * NUL byte. */
static void test_ctlmsg_request_lenient_parts(void **state)
{
    (void)state;
    mp_t m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 5);
    mp_cstr(&m, "task");
    mp_str(&m, "a\0b", 3);
    msgpack_pack_uint64(&m.pk, 7); /* a non-string key */
    msgpack_pack_nil(&m.pk);
    mp_cstr(&m, "cmd");
    mp_cstr(&m, "recompute");
    mp_cstr(&m, "cmd");
    mp_cstr(&m, "launch");
    mp_cstr(&m, "verbose");
    msgpack_pack_true(&m.pk);
    ens_ctl_request_t req;
    decode_ok(m.sb.data, m.sb.size, &req);
    assert_int_equal(req.cmd, ENS_CTL_RECOMPUTE);
    assert_int_equal(req.has_task, 1);
    assert_int_equal(req.task_len, 3);
    assert_memory_equal(req.task, "a\0b", 4);
    msgpack_sbuffer_destroy(&m.sb);
}

static void expect_refused(const void *buf, size_t len, ens_ctl_err_t want, const char *text,
                           const char *what)
{
    ens_ctl_request_t req;
    char err[128] = "";
    ens_ctl_err_t why = ENS_CTL_ERR_COUNT;
    if (ens_ctl_request_decode(buf, len, &req, &why, err, sizeof(err)) != ENS_EPARSE)
        fail_msg("%s: accepted", what);
    if (why != want || strcmp(err, text) != 0)
        fail_msg("%s: refused with '%s', expected '%s'", what, err, text);
    /* why is optional. */
    assert_int_equal(ens_ctl_request_decode(buf, len, &req, NULL, err, sizeof(err)), ENS_EPARSE);
}

/* A request map {"cmd": cmd (cmdlen bytes), "task"?: task, "pad": pad
 * bytes of padding}; cmd or task given as NULL is left out; a task type
 * of 'u' sends an integer. */
static void request(mp_t *m, const char *cmd, size_t cmdlen, const char *task, size_t tasklen,
                    char task_type, size_t pad)
{
    mp_init(m);
    msgpack_pack_map(&m->pk, (cmd != NULL) + (task != NULL) + (pad > 0));
    if (cmd) {
        mp_cstr(m, "cmd");
        mp_str(m, cmd, cmdlen);
    }
    if (task) {
        mp_cstr(m, "task");
        if (task_type == 'u')
            msgpack_pack_uint64(&m->pk, 5);
        else
            mp_str(m, task, tasklen);
    }
    if (pad) {
        char *p = calloc(pad, 1);
        mp_cstr(m, "pad");
        mp_str(m, p, pad);
        free(p);
    }
}

static void test_ctlmsg_request_size_and_bytes(void **state)
{
    (void)state;
    mp_t m;
    /* 65536 bytes exactly pass; one more does not. The sizes: fixmap 1,
     * "cmd" 4, "status" 7, "pad" 4, a str16 header 3, then the pad. */
    request(&m, "status", 6, NULL, 0, 's', 65536 - 19);
    assert_int_equal(m.sb.size, 65536);
    ens_ctl_request_t req;
    decode_ok(m.sb.data, m.sb.size, &req);
    assert_int_equal(req.cmd, ENS_CTL_STATUS);
    msgpack_sbuffer_destroy(&m.sb);
    request(&m, "status", 6, NULL, 0, 's', 65536 - 18);
    assert_int_equal(m.sb.size, 65537);
    expect_refused(m.sb.data, m.sb.size, ENS_CTL_ERR_NOT_MSGPACK, E_NOT_MSGPACK, "64 KiB + 1");
    msgpack_sbuffer_destroy(&m.sb);
    /* Truncated, trailing bytes, empty. */
    request(&m, "status", 6, NULL, 0, 's', 0);
    expect_refused(m.sb.data, m.sb.size - 1, ENS_CTL_ERR_NOT_MSGPACK, E_NOT_MSGPACK, "truncated");
    msgpack_pack_nil(&m.pk);
    expect_refused(m.sb.data, m.sb.size, ENS_CTL_ERR_NOT_MSGPACK, E_NOT_MSGPACK, "trailing");
    expect_refused(m.sb.data, 0, ENS_CTL_ERR_NOT_MSGPACK, E_NOT_MSGPACK, "empty");
    msgpack_sbuffer_destroy(&m.sb);
    /* msgpack-c issue #1013. */
    static const unsigned char trap[] = {0xdd, 0xff, 0x00, 0x00, 0x00};
    expect_refused(trap, sizeof(trap), ENS_CTL_ERR_NOT_MSGPACK, E_NOT_MSGPACK, "trap");
    /* {"cmd": "status", "x": [[[[]]]]}: four levels pass, five do not. */
    unsigned char deep[] = {0x82, 0xa3, 'c', 'm',  'd', 0xa6, 's',  't',  'a',
                            't',  'u',  's', 0xa1, 'x', 0x91, 0x91, 0x91, 0x90};
    decode_ok(deep, sizeof(deep), &req);
    deep[sizeof(deep) - 1] = 0x91;
    unsigned char deeper[sizeof(deep) + 1];
    memcpy(deeper, deep, sizeof(deep));
    deeper[sizeof(deep)] = 0x90;
    expect_refused(deeper, sizeof(deeper), ENS_CTL_ERR_NOT_MSGPACK, E_NOT_MSGPACK, "depth 5");
}

static void test_ctlmsg_request_refusals(void **state)
{
    (void)state;
    char name[300];
    memset(name, 'x', sizeof(name));
    static const struct {
        const char *cmd;
        size_t cmdlen;
        const char *task;
        size_t tasklen;
        char task_type;
        ens_ctl_err_t want;
        const char *text, *what;
    } cases[] = {
        {NULL, 0, NULL, 0, 's', ENS_CTL_ERR_NO_CMD, E_NO_CMD, "empty map"},
        {NULL, 0, "t", 1, 's', ENS_CTL_ERR_NO_CMD, E_NO_CMD, "task only"},
        {NULL, 0, "t", 1, 'u', ENS_CTL_ERR_NO_CMD, E_NO_CMD, "no cmd, bad task: cmd first"},
        {"x", 32, NULL, 0, 's', ENS_CTL_ERR_NO_CMD, E_NO_CMD, "cmd of 32 bytes"},
        {"x", 31, NULL, 0, 's', ENS_CTL_ERR_UNKNOWN_CMD, E_UNKNOWN_CMD, "cmd of 31 bytes"},
        {"launch", 6, NULL, 0, 's', ENS_CTL_ERR_UNKNOWN_CMD, E_UNKNOWN_CMD, "unknown"},
        {"status\0", 7, NULL, 0, 's', ENS_CTL_ERR_UNKNOWN_CMD, E_UNKNOWN_CMD, "NUL in cmd"},
        {"", 0, NULL, 0, 's', ENS_CTL_ERR_UNKNOWN_CMD, E_UNKNOWN_CMD, "empty cmd"},
        {"status", 6, "t", 1, 'u', ENS_CTL_ERR_BAD_TASK, E_BAD_TASK, "integer task"},
        {"status", 6, "x", 257, 's', ENS_CTL_ERR_BAD_TASK, E_BAD_TASK, "task of 257 bytes"},
        {"launch", 6, "t", 1, 'u', ENS_CTL_ERR_BAD_TASK, E_BAD_TASK, "bad task before cmd"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        mp_t m;
        /* Long names come from the buffer of x's. */
        const char *cmd = cases[i].cmd && cases[i].cmdlen > 8 ? name : cases[i].cmd;
        const char *task = cases[i].task && cases[i].tasklen > 8 ? name : cases[i].task;
        request(&m, cmd, cases[i].cmdlen, task, cases[i].tasklen, cases[i].task_type, 0);
        expect_refused(m.sb.data, m.sb.size, cases[i].want, cases[i].text, cases[i].what);
        msgpack_sbuffer_destroy(&m.sb);
    }
    /* Not a map; cmd not a string. */
    static const unsigned char arr[] = {0x91, 0xa6, 's', 't', 'a', 't', 'u', 's'};
    expect_refused(arr, sizeof(arr), ENS_CTL_ERR_NO_CMD, E_NO_CMD, "array");
    static const unsigned char num[] = {0x81, 0xa3, 'c', 'm', 'd', 0x01};
    expect_refused(num, sizeof(num), ENS_CTL_ERR_NO_CMD, E_NO_CMD, "integer cmd");
    /* A task of 256 bytes is fine. */
    mp_t m;
    request(&m, "ensemble", 8, name, 256, 's', 0);
    ens_ctl_request_t req;
    decode_ok(m.sb.data, m.sb.size, &req);
    assert_int_equal(req.task_len, 256);
    assert_int_equal(req.task[256], '\0');
    msgpack_sbuffer_destroy(&m.sb);
}

/* ---- replies ------------------------------------------------------------ */

static void test_ctlmsg_reply_bytes(void **state)
{
    (void)state;
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_ctl_reply_error(&w, "unknown task");
    mp_t m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    mp_cstr(&m, "ok");
    msgpack_pack_false(&m.pk);
    mp_cstr(&m, "error");
    mp_cstr(&m, "unknown task");
    assert_same(&w, &m);
    msgpack_sbuffer_destroy(&m.sb);
    /* {"ok": true, "tasks": 3}, as recompute replies. */
    ens_mpw_reset(&w);
    ens_ctl_reply_begin(&w);
    ens_mpw_cstr(&w, "tasks");
    ens_mpw_uint(&w, 3);
    ens_mpw_map_end(&w);
    mp_init(&m);
    msgpack_pack_map(&m.pk, 2);
    mp_cstr(&m, "ok");
    msgpack_pack_true(&m.pk);
    mp_cstr(&m, "tasks");
    msgpack_pack_uint64(&m.pk, 3);
    assert_same(&w, &m);
    msgpack_sbuffer_destroy(&m.sb);
    ens_mpw_free(&w);
}

static int check(const void *buf, size_t len, msgpack_object *o, char *err, size_t errlen,
                 msgpack_zone *z)
{
    msgpack_zone_init(z, 1024);
    return ens_ctl_reply_check(buf, len, z, o, err, errlen);
}

static void test_ctlmsg_reply_check(void **state)
{
    (void)state;
    ens_mpw_t w;
    ens_mpw_init(&w);
    msgpack_zone z;
    msgpack_object o;
    char err[64];
    /* ok: the ensemble reply embeds a body as a raw object. */
    static const unsigned char body[] = {0x81, 0xa4, 't', 'a', 's', 'k', 0xa1, 't'};
    ens_ctl_reply_begin(&w);
    ens_mpw_cstr(&w, "ensemble");
    ens_mpw_raw(&w, body, sizeof(body));
    ens_mpw_map_end(&w);
    assert_int_equal(check(w.data, w.size, &o, err, sizeof(err), &z), 0);
    assert_int_equal(o.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o.via.map.size, 2);
    assert_int_equal(o.via.map.ptr[1].val.via.map.size, 1);
    msgpack_zone_destroy(&z);
    /* Refused: the daemon's message, truncated to err. */
    ens_mpw_reset(&w);
    ens_ctl_reply_error(&w, "no ensemble published yet for this task");
    assert_int_equal(check(w.data, w.size, &o, err, sizeof(err), &z), 1);
    assert_string_equal(err, "no ensemble published yet for this task");
    msgpack_zone_destroy(&z);
    assert_int_equal(check(w.data, w.size, &o, err, 8, &z), 1);
    assert_string_equal(err, "no ense");
    msgpack_zone_destroy(&z);
    /* Truncated replies, every prefix. */
    for (size_t n = 0; n < w.size; n++) {
        assert_int_equal(check(w.data, n, &o, err, sizeof(err), &z), ENS_EPARSE);
        assert_non_null(strstr(err, "malformed reply"));
        msgpack_zone_destroy(&z);
    }
    ens_mpw_free(&w);
    static const struct {
        const char *bytes;
        size_t len;
        int want;
        const char *text;
    } cases[] = {
        {"\x81\xa2ok\xc2", 5, 1, "no error given"},
        {"\x82\xa2ok\xc2\xa5"
         "error\x01",
         12, 1, "no error given"},
        {"\x81\xa2ok\xc3", 5, 0, NULL},
        {"\x81\xa2ok\x01", 5, ENS_EPARSE, "boolean \"ok\""},
        {"\x81\xa2no\xc3", 5, ENS_EPARSE, "boolean \"ok\""},
        {"\x91\xc3", 2, ENS_EPARSE, "boolean \"ok\""},
        {"\xdd\xff\x00\x00\x00", 5, ENS_EPARSE, "truncated"},
        {"\x81\xa2ok\xc3\xc0", 6, ENS_EPARSE, "after the MessagePack object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = check(cases[i].bytes, cases[i].len, &o, err, sizeof(err), &z);
        assert_int_equal(rc, cases[i].want);
        if (cases[i].text && !strstr(err, cases[i].text))
            fail_msg("case %zu: '%s' does not mention '%s'", i, err, cases[i].text);
        msgpack_zone_destroy(&z);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctlmsg_names),
        cmocka_unit_test(test_ctlmsg_request_roundtrip),
        cmocka_unit_test(test_ctlmsg_request_lenient_parts),
        cmocka_unit_test(test_ctlmsg_request_size_and_bytes),
        cmocka_unit_test(test_ctlmsg_request_refusals),
        cmocka_unit_test(test_ctlmsg_reply_bytes),
        cmocka_unit_test(test_ctlmsg_reply_check),
    };
    return cmocka_run_group_tests_name("ctlmsg", tests, NULL, NULL);
}
