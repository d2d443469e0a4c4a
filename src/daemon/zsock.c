/* zsock.c - see zsock.h. */
#include "zsock.h"

#include <stdlib.h>

#include "clock.h"
#include "ensembled/xalloc.h"
#include "log.h"

#define MAX_FRAMES 8 /* a ZAP request has 7 */
/* Frames kept, and one more to receive into while MAX_FRAMES are kept. */
#define FRAME_SLOTS (MAX_FRAMES + 1)

struct ens_zsock_s {
    uv_poll_t poll; /* on ZMQ_FD, readable */
    uv_idle_t idle; /* re-arms a capped or kicked drain */
    void *sock;     /* the libzmq socket */
    ens_zsock_msg_fn on_msg;
    void *ud;
    size_t fair_cap;    /* messages per drain */
    double budget;      /* seconds per drain */
    double mono;        /* ens_mono() read before the message being handed on */
    double wall_offset; /* ens_now() - ens_mono() at the drain's start */
    int closing;
    int handles;                /* handles not yet closed */
    ens_loop_section_t section; /* what its drains are, for looptime.h */
};

/* Receives one whole message into frames[FRAME_SLOTS]. Of a message
 * longer than MAX_FRAMES frames the first MAX_FRAMES - 1 and the last are
 * kept, the others dropped: the last frame is the one that matters (an
 * ingest event, docs/protocol.md). Frames are received in place, with no
 * message moved, but past MAX_FRAMES. Returns the frame count, 0 when
 * nothing was waiting. */
static size_t recv_message(ens_zsock_t *z, zmq_msg_t *frames)
{
    size_t n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t *next = &frames[n];
        zmq_msg_init(next);
        if (zmq_msg_recv(next, z->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(next);
            break;
        }
        more = zmq_msg_more(next);
        if (n++ < MAX_FRAMES)
            continue;
        /* A middle frame, frames[MAX_FRAMES - 1], is replaced by the later one. */
        zmq_msg_close(&frames[MAX_FRAMES - 1]);
        zmq_msg_init(&frames[MAX_FRAMES - 1]);
        zmq_msg_move(&frames[MAX_FRAMES - 1], next);
        zmq_msg_close(next);
        n = MAX_FRAMES;
    }
    return n;
}

/* Whether ZMQ_EVENTS says a message is waiting. Asking costs libzmq a
 * poll() of its mailbox (a system call), so a drain asks only when a
 * receive found nothing or a limit was reached, not before each message. */
static int readable(ens_zsock_t *z)
{
    int events = 0;
    size_t len = sizeof(events);
    return zmq_getsockopt(z->sock, ZMQ_EVENTS, &events, &len) == 0 && (events & ZMQ_POLLIN);
}

static void on_idle(uv_idle_t *h);

/* Receives and hands on messages until ZMQ_EVENTS says none is waiting or
 * a limit is reached. A receive that finds nothing has made libzmq process
 * its pending commands, as asking ZMQ_EVENTS does; ZMQ_EVENTS is still
 * asked before the drain ends, so that it ends only in the state that
 * re-arms the edge of ZMQ_FD. */
static void drain_messages(ens_zsock_t *z)
{
    size_t handled = 0;
    double start = z->mono = ens_mono();
    z->wall_offset = ens_now() - start;
    int asked = 0; /* ZMQ_EVENTS said POLLIN since the last receive */
    while (!z->closing) {
        /* The clock read for the budget is the message's time too
         * (ens_zsock_time): one read per message. */
        if (handled > 0)
            z->mono = ens_mono();
        /* A few huge batches take as long as many small messages: the drain
         * yields on whichever limit comes first, so the control socket and
         * the timers are served within a few milliseconds under any load. */
        if (handled == z->fair_cap || z->mono - start > z->budget) {
            if (!readable(z))
                break;
            /* Queued messages raise no new edge: come back next turn. */
            uv_idle_start(&z->idle, on_idle);
            return;
        }
        zmq_msg_t frames[FRAME_SLOTS];
        size_t n = recv_message(z, frames);
        if (n == 0) {
            /* Nothing, or something arrived just now: ask, once. */
            if (asked || !readable(z))
                break;
            asked = 1;
            continue;
        }
        asked = 0;
        z->on_msg(z->ud, z, frames, n);
        for (size_t i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
        handled++;
    }
    if (!z->closing)
        uv_idle_stop(&z->idle);
}

/* A drain, its CPU time charged to the socket's section (looptime.h). */
static void drain(ens_zsock_t *z)
{
    ens_loop_section_t was = ens_looptime_enter(z->section);
    drain_messages(z);
    ens_looptime_enter(was);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)events;
    ens_zsock_t *z = h->data;
    if (status < 0)
        ENS_LOG(WARNING, "zsock: poll error: %s", uv_strerror(status));
    /* An active idle handle has drained this turn already (libuv runs idle
     * handles before polling), or was kicked during it, and drains on the
     * next turn, which does not wait: a drain here would give the socket
     * two budgets in one turn. */
    if (uv_is_active((uv_handle_t *)&z->idle))
        return;
    drain(z);
}

static void on_idle(uv_idle_t *h)
{
    drain(h->data);
}

ens_zsock_t *ens_zsock_new(uv_loop_t *loop, void *zsock, ens_zsock_msg_fn on_msg, void *ud,
                           size_t fair_cap)
{
    int fd = -1;
    size_t len = sizeof(fd);
    if (zmq_getsockopt(zsock, ZMQ_FD, &fd, &len) < 0)
        return NULL;
    ens_zsock_t *z = ens_xcalloc(1, sizeof(*z));
    z->sock = zsock;
    z->on_msg = on_msg;
    z->ud = ud;
    z->fair_cap = fair_cap ? fair_cap : 1;
    z->section = ENS_LOOP_REQUESTS;
    /* 2 ms: with the other work of a turn, under the 5 ms a turn should
     * take at most (docs/overload.md). */
    z->budget = 2e-3;
    if (uv_poll_init(loop, &z->poll, fd) < 0) {
        free(z);
        return NULL;
    }
    uv_idle_init(loop, &z->idle);
    z->poll.data = z;
    z->idle.data = z;
    z->handles = 2;
    uv_poll_start(&z->poll, UV_READABLE, on_poll);
    /* Messages may have arrived before the poll was armed: their edge is
     * gone, so look once now (on the next turn, outside the caller). */
    ens_zsock_kick(z);
    return z;
}

void ens_zsock_set_section(ens_zsock_t *z, ens_loop_section_t section)
{
    z->section = section;
}

void *ens_zsock_socket(const ens_zsock_t *z)
{
    return z->sock;
}

void ens_zsock_time(const ens_zsock_t *z, double *now, double *mono)
{
    *mono = z->mono;
    *now = z->mono + z->wall_offset;
}

void ens_zsock_flush(ens_zsock_t *z, size_t max)
{
    if (z)
        z->wall_offset = ens_now() - ens_mono();
    for (size_t i = 0; z && !z->closing && i < max; i++) {
        z->mono = ens_mono();
        zmq_msg_t frames[FRAME_SLOTS];
        size_t n = recv_message(z, frames);
        if (n == 0)
            break;
        z->on_msg(z->ud, z, frames, n);
        for (size_t k = 0; k < n; k++)
            zmq_msg_close(&frames[k]);
    }
}

void ens_zsock_kick(ens_zsock_t *z)
{
    if (z && !z->closing)
        uv_idle_start(&z->idle, on_idle);
}

static void on_closed(uv_handle_t *h)
{
    ens_zsock_t *z = h->data;
    if (--z->handles == 0)
        free(z);
}

void ens_zsock_close(ens_zsock_t *z)
{
    if (!z || z->closing)
        return;
    z->closing = 1;
    /* The poll handle must stop before the socket (and its fd) goes away. */
    uv_poll_stop(&z->poll);
    uv_idle_stop(&z->idle);
    int linger = 0;
    zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(z->sock);
    uv_close((uv_handle_t *)&z->poll, on_closed);
    uv_close((uv_handle_t *)&z->idle, on_closed);
}
