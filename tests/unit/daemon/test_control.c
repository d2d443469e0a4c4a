/* test_control.c - operator commands (control.h), through
 * ens_control_handle with fake hooks and no socket.
 *
 * Requests are packed and replies unpacked with msgpack-c, and each reply is
 * checked field by field: its keys, their types and values, the error texts
 * spelled out here as ensemblectl and scripts match them, and what the hooks
 * were asked (a task name with a NUL byte in it, or none).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

#define E_NOT_MSGPACK "request is not a valid MessagePack object of at most 64 KiB"
#define E_NO_CMD "request must be a map with a string \"cmd\""
#define E_BAD_TASK "\"task\" must be a string of at most 256 bytes"
#define E_UNKNOWN_CMD "unknown command (status, ensemble, recompute)"
#define E_UNKNOWN_TASK "unknown task"
#define E_NO_ENSEMBLE "no ensemble published yet for this task"

/* What the hooks were asked and what they answer. */
typedef struct {
    int calls;            /* hook calls of any kind */
    int task_null;        /* the last call got no task */
    char task[300];       /* the last task asked */
    size_t len;           /* its length */
    int ensemble_rc;      /* what the ensemble hook returns */
    int recompute_rc;     /* what the recompute hook returns */
    msgpack_sbuffer body; /* the published body */
    ens_control_t *ctl;
} fx_t;

static void remember(fx_t *fx, const char *task, size_t len)
{
    fx->calls++;
    fx->task_null = task == NULL;
    fx->len = task ? len : 0;
    if (task)
        memcpy(fx->task, task, len);
}

static void fake_status(void *ud, ens_mpw_t *w)
{
    fx_t *fx = ud;
    remember(fx, NULL, 0);
    ens_mpw_cstr(w, "version");
    ens_mpw_cstr(w, "9.9.9");
    ens_mpw_cstr(w, "tasks");
    ens_mpw_map_begin(w);
    ens_mpw_str(w, "t\0x", 3);
    ens_mpw_map_begin(w);
    ens_mpw_cstr(w, "rows");
    ens_mpw_uint(w, 42);
    ens_mpw_map_end(w);
    ens_mpw_map_end(w);
}

static int fake_ensemble(void *ud, const char *task, size_t len, const char **body, size_t *size)
{
    fx_t *fx = ud;
    remember(fx, task, len);
    if (fx->ensemble_rc == 0) {
        *body = fx->body.data;
        *size = fx->body.size;
    }
    return fx->ensemble_rc;
}

static int fake_recompute(void *ud, const char *task, size_t len)
{
    fx_t *fx = ud;
    remember(fx, task, len);
    return fx->recompute_rc;
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    msgpack_sbuffer_init(&fx->body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &fx->body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "version", 7);
    msgpack_pack_uint64(&pk, 17);
    msgpack_pack_str_with_body(&pk, "models", 6);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "m\0a", 3);
    msgpack_pack_double(&pk, 0.5);
    ens_control_hooks_t h = {fake_status, fake_ensemble, fake_recompute, fx};
    fx->ctl = ens_control_new(NULL, NULL, &h);
    assert_non_null(fx->ctl);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    ens_control_destroy(&fx->ctl);
    assert_null(fx->ctl);
    msgpack_sbuffer_destroy(&fx->body);
    free(fx);
    return 0;
}

/* ---- requests and replies ------------------------------------------------ */

typedef struct {
    char *buf; /* the reply's bytes, which its strings point into */
    msgpack_unpacked u;
    msgpack_object *map; /* the reply */
} reply_t;

static void reply_free(reply_t *r)
{
    msgpack_unpacked_destroy(&r->u);
    free(r->buf);
}

/* A request {"cmd": cmd} or {"cmd": cmd, "task": task[0..len)}. */
static void request(msgpack_sbuffer *sb, const char *cmd, const char *task, size_t len)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, task ? 2 : 1);
    msgpack_pack_str_with_body(&pk, "cmd", 3);
    msgpack_pack_str_with_body(&pk, cmd, strlen(cmd));
    if (task) {
        msgpack_pack_str_with_body(&pk, "task", 4);
        msgpack_pack_str_with_body(&pk, task, len);
    }
}

/* Hands buf to the control and unpacks the reply, which must be one whole
 * map with unique string keys and a boolean "ok" first. */
static void handle(fx_t *fx, const char *buf, size_t len, reply_t *r)
{
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_control_handle(fx->ctl, buf, len, &w);
    size_t size = 0, off = 0;
    r->buf = ens_mpw_take(&w, &size);
    msgpack_unpacked_init(&r->u);
    assert_int_equal(msgpack_unpack_next(&r->u, r->buf, size, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, size);
    r->map = &r->u.data;
    assert_int_equal(r->map->type, MSGPACK_OBJECT_MAP);
    msgpack_object_map *m = &r->map->via.map;
    assert_true(m->size >= 1);
    for (uint32_t i = 0; i < m->size; i++) {
        assert_int_equal(m->ptr[i].key.type, MSGPACK_OBJECT_STR);
        for (uint32_t k = 0; k < i; k++)
            assert_false(m->ptr[k].key.via.str.size == m->ptr[i].key.via.str.size &&
                         memcmp(m->ptr[k].key.via.str.ptr, m->ptr[i].key.via.str.ptr,
                                m->ptr[i].key.via.str.size) == 0);
    }
    assert_int_equal(m->ptr[0].key.via.str.size, 2);
    assert_memory_equal(m->ptr[0].key.via.str.ptr, "ok", 2);
    assert_int_equal(m->ptr[0].val.type, MSGPACK_OBJECT_BOOLEAN);
}

static void handle_sb(fx_t *fx, msgpack_sbuffer *sb, reply_t *r)
{
    handle(fx, sb->data, sb->size, r);
    msgpack_sbuffer_clear(sb);
}

static const msgpack_object *field(const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0)
            return &kv->val;
    }
    fail_msg("no \"%s\" in the reply", key);
    return NULL;
}

static void assert_str(const msgpack_object *o, const char *s, size_t len)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, len);
    assert_memory_equal(o->via.str.ptr, s, len);
}

/* {"ok": false, "error": text} and nothing else, no hook called. */
static void assert_error_reply(fx_t *fx, reply_t *r, const char *text, int calls)
{
    assert_int_equal(r->map->via.map.size, 2);
    assert_false(field(r->map, "ok")->via.boolean);
    const msgpack_object *e = field(r->map, "error");
    if (e->type != MSGPACK_OBJECT_STR || e->via.str.size != strlen(text) ||
        memcmp(e->via.str.ptr, text, strlen(text)) != 0)
        fail_msg("error \"%.*s\", not \"%s\"", (int)e->via.str.size, e->via.str.ptr, text);
    assert_int_equal(fx->calls, calls);
    reply_free(r);
}

/* ---- commands ------------------------------------------------------------ */

static void test_control_status(void **state)
{
    fx_t *fx = *state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    reply_t r;
    request(&sb, "status", NULL, 0);
    handle_sb(fx, &sb, &r);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(r.map->via.map.size, 3);
    assert_true(field(r.map, "ok")->via.boolean);
    assert_str(field(r.map, "version"), "9.9.9", 5);
    const msgpack_object *tasks = field(r.map, "tasks");
    assert_int_equal(tasks->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(tasks->via.map.size, 1);
    assert_str(&tasks->via.map.ptr[0].key, "t\0x", 3);
    const msgpack_object *rows = field(&tasks->via.map.ptr[0].val, "rows");
    assert_int_equal(rows->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(rows->via.u64, 42);
    reply_free(&r);
    /* Other keys of the request are ignored; a task given to status too. */
    request(&sb, "status", "nope", 4);
    handle_sb(fx, &sb, &r);
    assert_true(field(r.map, "ok")->via.boolean);
    assert_int_equal(fx->calls, 2);
    reply_free(&r);
    msgpack_sbuffer_destroy(&sb);
}

static void test_control_ensemble(void **state)
{
    fx_t *fx = *state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    reply_t r;
    request(&sb, "ensemble", "t\0x", 3);
    handle_sb(fx, &sb, &r);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->len, 3);
    assert_memory_equal(fx->task, "t\0x", 3);
    assert_int_equal(r.map->via.map.size, 2);
    assert_true(field(r.map, "ok")->via.boolean);
    /* The body goes out as it is, one object: packed again by msgpack-c it
     * is the body's bytes. */
    const msgpack_object *e = field(r.map, "ensemble");
    assert_int_equal(e->type, MSGPACK_OBJECT_MAP);
    assert_int_equal(field(e, "version")->via.u64, 17);
    const msgpack_object *models = field(e, "models");
    assert_int_equal(models->via.array.size, 2);
    assert_str(&models->via.array.ptr[0], "m\0a", 3);
    assert_true(models->via.array.ptr[1].via.f64 == 0.5);
    msgpack_sbuffer again;
    msgpack_sbuffer_init(&again);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &again, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *e);
    assert_int_equal(again.size, fx->body.size);
    assert_memory_equal(again.data, fx->body.data, again.size);
    msgpack_sbuffer_destroy(&again);
    reply_free(&r);

    /* Without a task: the default task is asked. */
    request(&sb, "ensemble", NULL, 0);
    handle_sb(fx, &sb, &r);
    assert_true(field(r.map, "ok")->via.boolean);
    assert_int_equal(fx->len, 7);
    assert_memory_equal(fx->task, "default", 7);
    reply_free(&r);
    msgpack_sbuffer_destroy(&sb);
}

static void test_control_ensemble_unknown_or_unpublished(void **state)
{
    fx_t *fx = *state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    reply_t r;
    fx->ensemble_rc = -1;
    request(&sb, "ensemble", "ghost", 5);
    handle_sb(fx, &sb, &r);
    assert_memory_equal(fx->task, "ghost", 5);
    assert_error_reply(fx, &r, E_UNKNOWN_TASK, 1);
    fx->ensemble_rc = -2;
    request(&sb, "ensemble", "young", 5);
    handle_sb(fx, &sb, &r);
    assert_memory_equal(fx->task, "young", 5);
    assert_error_reply(fx, &r, E_NO_ENSEMBLE, 2);
    msgpack_sbuffer_destroy(&sb);
}

static void test_control_recompute(void **state)
{
    fx_t *fx = *state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    reply_t r;
    fx->recompute_rc = 1;
    request(&sb, "recompute", "t\0x", 3);
    handle_sb(fx, &sb, &r);
    assert_false(fx->task_null);
    assert_int_equal(fx->len, 3);
    assert_memory_equal(fx->task, "t\0x", 3);
    assert_int_equal(r.map->via.map.size, 2);
    assert_true(field(r.map, "ok")->via.boolean);
    assert_int_equal(field(r.map, "tasks")->via.u64, 1);
    reply_free(&r);
    /* No task: every task, as the hook says how many. */
    fx->recompute_rc = 4;
    request(&sb, "recompute", NULL, 0);
    handle_sb(fx, &sb, &r);
    assert_true(fx->task_null);
    assert_int_equal(field(r.map, "tasks")->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(field(r.map, "tasks")->via.u64, 4);
    reply_free(&r);
    fx->recompute_rc = -1;
    request(&sb, "recompute", "ghost", 5);
    handle_sb(fx, &sb, &r);
    assert_error_reply(fx, &r, E_UNKNOWN_TASK, 3);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- bad requests: an error reply each, no hook called --------------------- */

static void test_control_malformed_requests(void **state)
{
    fx_t *fx = *state;
    reply_t r;
    static const struct {
        const char *bytes;
        size_t len;
        const char *error;
    } bad[] = {
        {"", 0, E_NOT_MSGPACK},
        {"\xc1", 1, E_NOT_MSGPACK}, /* never used */
        {"\x81\xa3"
         "cmd",
         5, E_NOT_MSGPACK}, /* truncated */
        {"\x81\xa3"
         "cmd\xa6status\x00",
         13, E_NOT_MSGPACK},                        /* trailing byte */
        {"\xdf\xff\xff\xff\xff", 5, E_NOT_MSGPACK}, /* a lying map header */
        {"\x92\xa3"
         "cmd\xa6status",
         12, E_NO_CMD}, /* an array */
        {"\x81\xa3"
         "cmd\x07",
         6, E_NO_CMD}, /* cmd not a string */
        {"\x81\xa3"
         "CMD\xa6status",
         12, E_NO_CMD}, /* no "cmd" */
        {"\x82\xa3"
         "cmd\xa6status\xa4task\x05",
         18, E_BAD_TASK},
        {"\x81\xa3"
         "cmd\xa4stat",
         10, E_UNKNOWN_CMD},
        {"\x81\xa3"
         "cmd\xa7status\x00",
         13, E_UNKNOWN_CMD}, /* a NUL is a byte */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        handle(fx, bad[i].bytes, bad[i].len, &r);
        assert_error_reply(fx, &r, bad[i].error, 0);
    }
}

/* A task name of 257 bytes, and requests of 64 KiB and one byte more. */
static void test_control_oversized_requests(void **state)
{
    fx_t *fx = *state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    reply_t r;
    char name[257];
    memset(name, 'n', sizeof(name));
    request(&sb, "ensemble", name, 257);
    handle_sb(fx, &sb, &r);
    assert_error_reply(fx, &r, E_BAD_TASK, 0);
    request(&sb, "ensemble", name, 256);
    handle_sb(fx, &sb, &r);
    assert_int_equal(fx->len, 256);
    assert_true(field(r.map, "ok")->via.boolean);
    reply_free(&r);

    char *pad = calloc(1, 70000);
    assert_non_null(pad);
    for (size_t want = 65536; want <= 65537; want++) {
        size_t n = 65500;
        for (int tries = 0; tries < 2; tries++) {
            msgpack_sbuffer_clear(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_map(&pk, 2);
            msgpack_pack_str_with_body(&pk, "cmd", 3);
            msgpack_pack_str_with_body(&pk, "status", 6);
            msgpack_pack_str_with_body(&pk, "pad", 3);
            msgpack_pack_str_with_body(&pk, pad, n);
            n += want - sb.size;
        }
        assert_int_equal(sb.size, want);
        int calls = fx->calls;
        handle_sb(fx, &sb, &r);
        if (want == 65536) {
            assert_true(field(r.map, "ok")->via.boolean);
            assert_int_equal(fx->calls, calls + 1);
            reply_free(&r);
        } else {
            assert_error_reply(fx, &r, E_NOT_MSGPACK, calls);
        }
    }
    free(pad);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_control_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_ensemble, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_ensemble_unknown_or_unpublished, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_control_recompute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_malformed_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_oversized_requests, setup, teardown),
    };
    return cmocka_run_group_tests_name("control", tests, NULL, NULL);
}
