/* zsock.h - a libzmq socket driven by a libuv loop.
 *
 * ZMQ_FD signals edge-triggered: a wake-up means "something changed", not
 * "one message is here". So each wake-up drains the socket until a receive
 * finds nothing and ZMQ_EVENTS then says no ZMQ_POLLIN (asking it costs a
 * system call, so not before each message). A drain stops after `fair_cap` messages or 2 ms so one
 * flooded socket cannot starve the loop; it then re-arms through an idle handle, because no new
 * edge will come for the messages already queued. A socket drains at most once a turn while its
 * idle handle is on. Sends and receives made outside the socket's own
 * callback can consume an edge too: call ens_zsock_kick() after them, which re-checks on the next
 * loop turn.
 */
#ifndef ENSEMBLED_ZSOCK_H
#define ENSEMBLED_ZSOCK_H

#include <stddef.h>
#include <uv.h>
#include <zmq.h>

#include "looptime.h"

typedef struct ens_zsock_s ens_zsock_t;

/* Called once per received message with its frames (borrowed for the call):
 * all of them, or of a message of more than 8 frames, the first 7 and the
 * last. */
typedef void (*ens_zsock_msg_fn)(void *ud, ens_zsock_t *z, zmq_msg_t *frames, size_t nframes);

/* Wraps zsock (taken: closed by ens_zsock_close). Returns NULL if its ZMQ_FD
 * cannot be polled. Checks ZMQ_EVENTS once right away. */
ens_zsock_t *ens_zsock_new(uv_loop_t *loop, void *zsock, ens_zsock_msg_fn on_msg, void *ud,
                           size_t fair_cap);

/* What the socket's drains are charged to in the loop's accounts
 * (looptime.h); ENS_LOOP_REQUESTS unless set. */
void ens_zsock_set_section(ens_zsock_t *z, ens_loop_section_t section);

/* The libzmq socket (borrowed). */
void *ens_zsock_socket(const ens_zsock_t *z);

/* Hands every message queued now (at most max) to the callback at once,
 * whatever the fair cap: before the socket is closed, so that nothing it
 * took in is lost. */
void ens_zsock_flush(ens_zsock_t *z, size_t max);

/* For the callback: the time of the message it is handed, read by the
 * drain just before (mono: ens_mono(); now: the wall clock, ens_now(), as
 * far from it as at the drain's start, so a step of the wall clock within
 * a drain's 2 ms shows from the next drain on). One clock read per message
 * instead of three. */
void ens_zsock_time(const ens_zsock_t *z, double *now, double *mono);

/* Schedules a drain on the next loop iteration. */
void ens_zsock_kick(ens_zsock_t *z);

/* Stops polling, closes the libzmq socket (linger 0) and frees z once libuv
 * has released its handles. NULL-safe. */
void ens_zsock_close(ens_zsock_t *z);

#endif
