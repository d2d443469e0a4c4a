/* control.c - see control.h. */
#include "control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/ctlmsg.h"
#include "ensembled/xalloc.h"
#include "log.h"
#include "zsock.h"

struct ens_control_s {
    ens_zsock_t *z;
    ens_control_hooks_t hooks;
    uint64_t dropped;        /* replies a full queue (or a gone client) did not take */
    ens_ratelimit_t rl_drop; /* their log line */
};

static void cmd_ensemble(ens_control_t *c, const ens_ctl_request_t *req, ens_mpw_t *w)
{
    const char *body = NULL;
    size_t size = 0;
    int rc = c->hooks.ensemble(c->hooks.ud, req->task, req->task_len, &body, &size);
    if (rc < 0) {
        ens_ctl_reply_error(
            w, ens_ctl_err_text(rc == -1 ? ENS_CTL_ERR_UNKNOWN_TASK : ENS_CTL_ERR_NO_ENSEMBLE));
        return;
    }
    ens_ctl_reply_begin(w);
    ens_mpw_cstr(w, "ensemble");
    ens_mpw_raw(w, body, size);
    ens_mpw_map_end(w);
}

static void cmd_recompute(ens_control_t *c, const ens_ctl_request_t *req, ens_mpw_t *w)
{
    const char *task = req->has_task ? req->task : NULL;
    int n = c->hooks.recompute(c->hooks.ud, task, req->task_len);
    if (n < 0) {
        ens_ctl_reply_error(w, ens_ctl_err_text(ENS_CTL_ERR_UNKNOWN_TASK));
        return;
    }
    ens_ctl_reply_begin(w);
    ens_mpw_cstr(w, "tasks");
    ens_mpw_uint(w, (uint64_t)n);
    ens_mpw_map_end(w);
}

void ens_control_handle(ens_control_t *c, const char *buf, size_t len, ens_mpw_t *w)
{
    ens_ctl_request_t req;
    char err[256];
    if (ens_ctl_request_decode(buf, len, &req, NULL, err, sizeof(err)) < 0) {
        ens_ctl_reply_error(w, err);
        return;
    }
    switch (req.cmd) {
    case ENS_CTL_STATUS:
        ens_ctl_reply_begin(w);
        c->hooks.status(c->hooks.ud, w);
        ens_mpw_map_end(w);
        break;
    case ENS_CTL_ENSEMBLE:
        cmd_ensemble(c, &req, w);
        break;
    default:
        cmd_recompute(c, &req, w);
        break;
    }
}

/* A request is the ROUTER's envelope (the client's identity, then for a REQ
 * client an empty delimiter) and the request map, last. The reply goes back
 * with the same envelope. With mandatory routing, a client whose queue is
 * full refuses the first frame and nothing of the reply is queued. */
static void on_request(void *ud, ens_zsock_t *z, zmq_msg_t *frames, size_t n)
{
    ens_control_t *c = ud;
    if (n < 2)
        return; /* a ROUTER always prepends the identity */
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_control_handle(c, zmq_msg_data(&frames[n - 1]), zmq_msg_size(&frames[n - 1]), &w);
    void *sock = ens_zsock_socket(z);
    int rc = 0;
    for (size_t i = 0; i + 1 < n && rc >= 0; i++)
        rc = zmq_send(sock, zmq_msg_data(&frames[i]), zmq_msg_size(&frames[i]),
                      ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc >= 0)
        rc = zmq_send(sock, w.data, w.size, ZMQ_DONTWAIT);
    if (rc < 0) {
        c->dropped++;
        ens_logf_limited(&c->rl_drop, ENS_LOG_WARNING, ENS_LOG_FIELDS({"reason", "reply_dropped"}),
                         "control: reply dropped: %s (control.max_queued replies already queued "
                         "for a client that does not read, or the client left)",
                         zmq_strerror(zmq_errno()));
    }
    ens_mpw_free(&w);
}

void ens_control_status(const ens_control_t *c, ens_mpw_t *w)
{
    ens_mpw_cstr(w, "control_replies_dropped");
    ens_mpw_uint(w, c ? c->dropped : 0);
}

ens_control_t *ens_control_new(uv_loop_t *loop, void *sock, const ens_control_hooks_t *hooks)
{
    ens_control_t *c = ens_xcalloc(1, sizeof(*c));
    c->hooks = *hooks;
    if (sock)
        ens_control_attach(c, loop, sock);
    return c;
}

void ens_control_attach(ens_control_t *c, uv_loop_t *loop, void *sock)
{
    c->z = ens_zsock_new(loop, sock, on_request, c, 64);
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
