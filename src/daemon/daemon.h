/* daemon.h - ensembled as a whole: it owns the loop and every module, and
 * wires them together.
 *
 * Modules depend downwards only: daemon -> {ingest, control, metrics,
 * publish, recompute, state, security} -> task -> the library. What
 * crosses between siblings goes through hooks the daemon sets: a joined row
 * (task) reaches the journal (state) and the recompute trigger (recompute);
 * a finished selection (recompute) is published (publish) and timed
 * (metrics); a publication's version is journaled (state); status (control)
 * is written by each module in turn, and the same status map, with the
 * published bodies, is handed to metrics each second (what /metrics
 * serves).
 *
 * Start order: config, loop, ZeroMQ context, state (restore), security,
 * sockets (ingest, publish, control), metrics (HTTP thread), timers,
 * signals, then READY=1. Stop runs in reverse: STOPPING=1, sockets closed,
 * metrics stopped, timers and signals closed, the loop run until queued
 * selections and writes return, state persisted, modules freed.
 */
#ifndef ENSEMBLED_DAEMON_H
#define ENSEMBLED_DAEMON_H

/* Runs the daemon until SIGTERM/SIGINT; returns the exit code. */
int ens_daemon_run(const char *conf_path, int foreground, int discard_state);

#endif
