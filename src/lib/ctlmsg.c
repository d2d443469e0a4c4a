/* ctlmsg.c - the control protocol (ctlmsg.h): requests and replies.
 *
 * The request checks are the daemon's, in the daemon's order, with its
 * error texts: a client that sent a bad request before this codec existed
 * gets the same answer now.
 */
#include "ensembled/ctlmsg.h"

#include <stdio.h>
#include <string.h>

#include "ensembled/err.h"
#include "ensembled/protocol.h"

/* A request is a flat map; depth 4 leaves room and refuses anything deep. */
#define REQUEST_DEPTH 4
/* A reply nests a publication body (itself up to 8 deep) in its map. */
#define REPLY_DEPTH 16
/* "cmd" values longer than this are no command (see ctlmsg.h). */
#define CMD_MAX 31

static const char *const cmd_names[] = {
#define ENS__CTL_CMD_NAME(id, name) name,
    ENS_CTL_CMD_MAP(ENS__CTL_CMD_NAME)
#undef ENS__CTL_CMD_NAME
};

static const char *const err_texts[] = {
#define ENS__CTL_ERR_TEXT(id, text) text,
    ENS_CTL_ERR_MAP(ENS__CTL_ERR_TEXT)
#undef ENS__CTL_ERR_TEXT
};

const char *ens_ctl_cmd_name(ens_ctl_cmd_t c)
{
    return (size_t)c < ENS_CTL_CMD_COUNT ? cmd_names[c] : "?";
}

const char *ens_ctl_err_text(ens_ctl_err_t e)
{
    return (size_t)e < ENS_CTL_ERR_COUNT ? err_texts[e] : "?";
}

int ens_ctl_cmd_parse(const char *s, size_t n, ens_ctl_cmd_t *out)
{
    for (size_t c = 0; c < ENS_CTL_CMD_COUNT; c++) {
        if (strlen(cmd_names[c]) == n && memcmp(cmd_names[c], s, n) == 0) {
            *out = (ens_ctl_cmd_t)c;
            return 0;
        }
    }
    return ENS_ENOTFOUND;
}

void ens_ctl_request_encode(ens_mpw_t *w, ens_ctl_cmd_t cmd, const char *task)
{
    ens_mpw_map_begin(w);
    ens_mpw_cstr(w, "cmd");
    ens_mpw_cstr(w, ens_ctl_cmd_name(cmd));
    if (task) {
        ens_mpw_cstr(w, "task");
        ens_mpw_cstr(w, task);
    }
    ens_mpw_map_end(w);
}

/* The value of the first key named key in map m, or NULL. */
static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    size_t n = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static int refuse(ens_ctl_err_t e, ens_ctl_err_t *why, char *err, size_t errlen)
{
    if (why)
        *why = e;
    snprintf(err, errlen, "%s", ens_ctl_err_text(e));
    return ENS_EPARSE;
}

/* The checks on the unpacked request, after the bytes passed. */
static int check_request(const msgpack_object *o, ens_ctl_request_t *req, ens_ctl_err_t *why,
                         char *err, size_t errlen)
{
    const msgpack_object *cmd = o->type == MSGPACK_OBJECT_MAP ? map_get(o, "cmd") : NULL;
    if (!cmd || cmd->type != MSGPACK_OBJECT_STR || cmd->via.str.size > CMD_MAX)
        return refuse(ENS_CTL_ERR_NO_CMD, why, err, errlen);
    const msgpack_object *task = map_get(o, "task");
    if (task && (task->type != MSGPACK_OBJECT_STR || task->via.str.size > ENS_MAX_NAME))
        return refuse(ENS_CTL_ERR_BAD_TASK, why, err, errlen);
    if (ens_ctl_cmd_parse(cmd->via.str.ptr, cmd->via.str.size, &req->cmd) < 0)
        return refuse(ENS_CTL_ERR_UNKNOWN_CMD, why, err, errlen);
    req->has_task = task != NULL;
    if (task) {
        req->task_len = task->via.str.size;
        if (req->task_len)
            memcpy(req->task, task->via.str.ptr, req->task_len);
    } else {
        req->task_len = strlen("default");
        memcpy(req->task, "default", req->task_len);
    }
    req->task[req->task_len] = '\0';
    return 0;
}

int ens_ctl_request_decode(const char *buf, size_t len, ens_ctl_request_t *req, ens_ctl_err_t *why,
                           char *err, size_t errlen)
{
    memset(req, 0, sizeof(*req));
    if (len > ENS_CTL_MAX_REQUEST || ens_proto_prewalk(buf, len, REQUEST_DEPTH, NULL) < 0)
        return refuse(ENS_CTL_ERR_NOT_MSGPACK, why, err, errlen);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 2048);
    msgpack_object o;
    size_t off = 0;
    int rc;
    if (msgpack_unpack(buf, len, &off, &zone, &o) != MSGPACK_UNPACK_SUCCESS)
        rc = refuse(ENS_CTL_ERR_NOT_MSGPACK, why, err, errlen);
    else
        rc = check_request(&o, req, why, err, errlen);
    msgpack_zone_destroy(&zone);
    return rc;
}

void ens_ctl_reply_error(ens_mpw_t *w, const char *msg)
{
    ens_mpw_map_begin(w);
    ens_mpw_cstr(w, "ok");
    ens_mpw_bool(w, 0);
    ens_mpw_cstr(w, "error");
    ens_mpw_cstr(w, msg);
    ens_mpw_map_end(w);
}

void ens_ctl_reply_begin(ens_mpw_t *w)
{
    ens_mpw_map_begin(w);
    ens_mpw_cstr(w, "ok");
    ens_mpw_bool(w, 1);
}

int ens_ctl_reply_check(const char *buf, size_t len, msgpack_zone *zone, msgpack_object *obj,
                        char *err, size_t errlen)
{
    ens_reject_t why;
    size_t off = 0;
    if (ens_proto_prewalk(buf, len, REPLY_DEPTH, &why) < 0) {
        snprintf(err, errlen, "malformed reply: %s", ens_reject_text(why));
        return ENS_EPARSE;
    }
    if (msgpack_unpack(buf, len, &off, zone, obj) != MSGPACK_UNPACK_SUCCESS) {
        snprintf(err, errlen, "malformed reply: not valid MessagePack");
        return ENS_EPARSE;
    }
    const msgpack_object *ok = obj->type == MSGPACK_OBJECT_MAP ? map_get(obj, "ok") : NULL;
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN) {
        snprintf(err, errlen, "malformed reply: not a map with a boolean \"ok\"");
        return ENS_EPARSE;
    }
    if (ok->via.boolean)
        return 0;
    const msgpack_object *e = map_get(obj, "error");
    if (e && e->type == MSGPACK_OBJECT_STR)
        snprintf(err, errlen, "%.*s", (int)(e->via.str.size < errlen ? e->via.str.size : errlen),
                 e->via.str.ptr);
    else
        snprintf(err, errlen, "no error given");
    return 1;
}
