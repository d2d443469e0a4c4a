/* control.h - the socket of operator commands (docs/protocol.md).
 *
 * Requests are MessagePack maps {"cmd": "status" | "ensemble" |
 * "recompute", "task": name?}; every reply is a map with "ok" and, on
 * failure, "error". A malformed request gets an error reply. The socket is
 * a ROUTER answering as a REP would (REQ and DEALER clients alike), so that
 * a client whose reply queue is full (control.max_queued: it sends and does
 * not read) loses that reply, counted, instead of growing the queue. What the commands do is
 * the daemon's business, reached through hooks, so this module depends on
 * no other. Loop thread only.
 */
#ifndef ENSEMBLED_CONTROL_H
#define ENSEMBLED_CONTROL_H

#include <stddef.h>
#include <uv.h>

#include "ensembled/mpw.h"

typedef struct {
    /* Writes the status entries into the open reply map (after "ok"). */
    void (*status)(void *ud, ens_mpw_t *w);
    /* The latest body of task[0..len): 0 and *body, *size (borrowed), or -1
     * unknown task, -2 nothing published yet. */
    int (*ensemble)(void *ud, const char *task, size_t len, const char **body, size_t *size);
    /* Starts selections of task[0..len) (every task when task is NULL):
     * how many, or -1 for an unknown task. */
    int (*recompute)(void *ud, const char *task, size_t len);
    void *ud;
} ens_control_hooks_t;

typedef struct ens_control_s ens_control_t;

/* Requests larger than this are dropped by ZeroMQ (ZMQ_MAXMSGSIZE). */
#define ENS_CONTROL_MAX_REQUEST 65536

/* Takes sock, a bound ROUTER socket with ZMQ_ROUTER_MANDATORY (closed by
 * ens_control_close). */
ens_control_t *ens_control_new(uv_loop_t *loop, void *sock, const ens_control_hooks_t *hooks);
/* Serves sock (as for ens_control_new) after ens_control_close. */
void ens_control_attach(ens_control_t *c, uv_loop_t *loop, void *sock);
/* Closes the socket (loop still running). */
void ens_control_close(ens_control_t *c);
void ens_control_destroy(ens_control_t **cp);

/* Answers one request buf[0..len) into w (what the socket sends back);
 * exposed for tests. */
void ens_control_handle(ens_control_t *c, const char *buf, size_t len, ens_mpw_t *w);

/* Status entry (into the top map; NULL-safe): control_replies_dropped. */
void ens_control_status(const ens_control_t *c, ens_mpw_t *w);

#endif
