/* control.c - see control.h. */
#include "control.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/data.h"
#include "ensembled/protocol.h"
#include "ensembled/xalloc.h"
#include "log.h"
#include "zsock.h"

struct ens_control_s {
    ens_zsock_t *z;
    ens_control_hooks_t hooks;
};

static void reply_error(ens_mpw_t *w, const char *msg)
{
    ens_mpw_map_begin(w);
    ens_mpw_cstr(w, "ok");
    ens_mpw_bool(w, 0);
    ens_mpw_cstr(w, "error");
    ens_mpw_cstr(w, msg);
    ens_mpw_map_end(w);
}

static void reply_begin(ens_mpw_t *w)
{
    ens_mpw_map_begin(w);
    ens_mpw_cstr(w, "ok");
    ens_mpw_bool(w, 1);
}

/* The string value of key in map m: 0 and *out, 1 when absent, -1 when not
 * a string of at most max bytes. */
static int get_str(const msgpack_object *m, const char *key, size_t max, ens_str_t *out)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != strlen(key) ||
            memcmp(kv->key.via.str.ptr, key, strlen(key)) != 0)
            continue;
        if (kv->val.type != MSGPACK_OBJECT_STR || kv->val.via.str.size > max)
            return -1;
        out->ptr = kv->val.via.str.ptr;
        out->len = kv->val.via.str.size;
        return 0;
    }
    return 1;
}

static int is(ens_str_t s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static void cmd_ensemble(ens_control_t *c, ens_str_t task, ens_mpw_t *w)
{
    const char *body = NULL;
    size_t size = 0;
    int rc = c->hooks.ensemble(c->hooks.ud, task.ptr, task.len, &body, &size);
    if (rc < 0) {
        reply_error(w, rc == -1 ? "unknown task" : "no ensemble published yet for this task");
        return;
    }
    reply_begin(w);
    ens_mpw_cstr(w, "ensemble");
    ens_mpw_raw(w, body, size);
    ens_mpw_map_end(w);
}

static void cmd_recompute(ens_control_t *c, const ens_str_t *task, ens_mpw_t *w)
{
    int n = c->hooks.recompute(c->hooks.ud, task ? task->ptr : NULL, task ? task->len : 0);
    if (n < 0) {
        reply_error(w, "unknown task");
        return;
    }
    reply_begin(w);
    ens_mpw_cstr(w, "tasks");
    ens_mpw_uint(w, (uint64_t)n);
    ens_mpw_map_end(w);
}

static void dispatch(ens_control_t *c, const msgpack_object *req, ens_mpw_t *w)
{
    static const ens_str_t fallback = {"default", 7};
    ens_str_t cmd, task = fallback;
    if (req->type != MSGPACK_OBJECT_MAP || get_str(req, "cmd", 31, &cmd) != 0) {
        reply_error(w, "request must be a map with a string \"cmd\"");
        return;
    }
    int has_task = get_str(req, "task", ENS_MAX_NAME, &task);
    if (has_task < 0) {
        reply_error(w, "\"task\" must be a string of at most 256 bytes");
        return;
    }
    if (is(cmd, "status")) {
        reply_begin(w);
        c->hooks.status(c->hooks.ud, w);
        ens_mpw_map_end(w);
    } else if (is(cmd, "ensemble")) {
        cmd_ensemble(c, task, w);
    } else if (is(cmd, "recompute")) {
        cmd_recompute(c, has_task == 0 ? &task : NULL, w);
    } else {
        reply_error(w, "unknown command (status, ensemble, recompute)");
    }
}

void ens_control_handle(ens_control_t *c, const char *buf, size_t len, ens_mpw_t *w)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 2048);
    msgpack_object req;
    size_t off = 0;
    if (len > 65536 || ens_proto_prewalk(buf, len, 4) < 0 ||
        msgpack_unpack(buf, len, &off, &zone, &req) != MSGPACK_UNPACK_SUCCESS)
        reply_error(w, "request is not a valid MessagePack object of at most 64 KiB");
    else
        dispatch(c, &req, w);
    msgpack_zone_destroy(&zone);
}

static void on_request(void *ud, ens_zsock_t *z, zmq_msg_t *frames, size_t n)
{
    ens_control_t *c = ud;
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_control_handle(c, zmq_msg_data(&frames[n - 1]), zmq_msg_size(&frames[n - 1]), &w);
    if (zmq_send(ens_zsock_socket(z), w.data, w.size, ZMQ_DONTWAIT) < 0)
        ENS_LOG(WARNING, "control: reply not sent: %s", zmq_strerror(zmq_errno()));
    ens_mpw_free(&w);
}

ens_control_t *ens_control_new(uv_loop_t *loop, void *sock, const ens_control_hooks_t *hooks)
{
    ens_control_t *c = ens_xcalloc(1, sizeof(*c));
    c->hooks = *hooks;
    if (sock)
        c->z = ens_zsock_new(loop, sock, on_request, c, 64);
    return c;
}

void ens_control_close(ens_control_t *c)
{
    if (!c)
        return;
    ens_zsock_close(c->z);
    c->z = NULL;
}

void ens_control_destroy(ens_control_t **cp)
{
    ens_control_close(*cp);
    free(*cp);
    *cp = NULL;
}
