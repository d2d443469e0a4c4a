/* control.c - see control.h. */
#include "control.h"

#include <stdlib.h>
#include <string.h>

#include "ensembled/ctlmsg.h"
#include "ensembled/xalloc.h"
#include "log.h"
#include "zsock.h"

struct ens_control_s {
    ens_zsock_t *z;
    ens_control_hooks_t hooks;
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
