/* looptime.h - how long the event loop's turns take.
 *
 * A turn's work is the wall time between two passes of a uv_prepare
 * handle (which runs once a turn, just before the loop waits for I/O) less
 * the time the loop spent waiting in between (libuv's idle-time metric,
 * UV_METRICS_IDLE_TIME). So a turn's figure is how long every callback of
 * that turn held the loop, including time the thread was ready but not
 * scheduled: what a `status` request or a producer waits at most behind
 * it. Kept: the turns counted, the longest since the start and over the
 * last 10 to 20 seconds, and the turns over 5 ms (docs/overload.md). Each
 * turn's CPU time (the loop thread's, CLOCK_THREAD_CPUTIME_ID) is kept
 * apart, longest and over 5 ms: the part of a long turn the daemon itself
 * spent, the rest having gone to waiting for a core; with it, which of the
 * loop's sections took most of each such turn.
 */
#ifndef ENSEMBLED_LOOPTIME_H
#define ENSEMBLED_LOOPTIME_H

#include <stdint.h>
#include <uv.h>

#include "ensembled/mpw.h"

/* A turn over this is slow. */
#define ENS_LOOPTIME_SLOW_MS 5.0

/* What the loop is doing, so that a slow turn says where its CPU time
 * went. The loop thread's CPU time is charged to the section entered last;
 * a turn is put down to the section that took most of it. */
typedef enum {
    ENS_LOOP_OTHER,    /* whatever no section names */
    ENS_LOOP_INGEST,   /* the ingest sockets' drains: decode, join, window */
    ENS_LOOP_REQUESTS, /* control requests, subscriptions, ZAP */
    ENS_LOOP_TASKS,    /* the tick's expiry and retirement over every task */
    ENS_LOOP_JOURNAL,  /* the journal's writes */
    ENS_LOOP_SNAPSHOT, /* a snapshot's start (names, journal rotated), its pieces */
    ENS_LOOP_SELECT,   /* selections started, their windows copied, results */
    ENS_LOOP_METRICS,  /* the status map and bodies copied for /metrics */
    ENS_LOOP_NSECTIONS
} ens_loop_section_t;

typedef struct ens_looptime_s ens_looptime_t;

/* Configures loop to measure its idle time: call before the loop first
 * runs. Returns 0 or a libuv error. */
int ens_looptime_configure(uv_loop_t *loop);
/* Starts measuring loop's turns; NULL if the handle cannot start. */
ens_looptime_t *ens_looptime_new(uv_loop_t *loop);
/* Stops measuring; the memory goes when the loop has closed the handle. */
void ens_looptime_close(ens_looptime_t *lt);

/* From now on the loop thread's CPU time is charged to s (of the looptime
 * last started), until the next call; returns the section charged until
 * now, for the caller to enter again when it is done. A call from another
 * thread, or with no looptime started, does nothing. Costs a read of the
 * thread's CPU clock (a system call): enter per drain or per tick, not per
 * message. */
ens_loop_section_t ens_looptime_enter(ens_loop_section_t s);

/* `loop`: a map of turns, longest_turn_ms, longest_turn_recent_ms,
 * turns_over_5ms, longest_turn_cpu_ms, longest_turn_cpu_in (the section
 * that took most of that turn), turns_over_5ms_cpu and
 * turns_over_5ms_cpu_by (a map of section names to the slow turns each
 * took most of), into an open map. lt may be NULL (all zero). */
void ens_looptime_status(const ens_looptime_t *lt, ens_mpw_t *w);

#endif
