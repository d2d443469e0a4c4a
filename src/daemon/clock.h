/* clock.h - the daemon's two clocks.
 *
 * Wall time (ens_now) is what bodies, rows and logs carry. Intervals,
 * timeouts and ages the daemon acts on should run on the monotonic clock
 * (ens_mono), which a step of the wall clock does not move.
 */
#ifndef ENSEMBLED_CLOCK_H
#define ENSEMBLED_CLOCK_H

/* Wall-clock seconds since the epoch. */
double ens_now(void);

/* Monotonic seconds since an arbitrary origin. */
double ens_mono(void);

#endif
