/* state_int.h - internals shared by state.c (journal, timers),
 * state_snap.c (the snapshot file) and state_restore.c (reading both back).
 * Not for other modules: see state.h. */
#ifndef ENSEMBLED_STATE_INT_H
#define ENSEMBLED_STATE_INT_H

#include <stdint.h>
#include <uv.h>

#include "ensembled/journal.h"
#include "state.h"

/* Records wait in memory at most this much while the disk refuses them;
 * past it new records are dropped (counted) and a snapshot is forced. */
#define ENS_STATE_MAX_BUFFER (64u << 20)

/* Window cells (rows times models) a snapshot serializes per loop turn at
 * most, so that a snapshot of any size never stalls the loop long ... */
#define ENS_STATE_SNAP_CELLS (1u << 18)
/* ... and at most this many cells between two reads of the clock, and no
 * more after this many seconds of a turn: the cost of a cell differs
 * several times over by window and by what the caches hold (11 ms for
 * ENS_STATE_SNAP_CELLS measured in one turn), so the time bounds a turn,
 * the cells only bound the memory of a piece. The ingest drain's 2 ms and
 * a selection's copy (0.5 ms) may share the turn. */
#define ENS_STATE_SNAP_SLICE (1u << 13)
#define ENS_STATE_SNAP_TURN_S 0.0005

/* A growable byte buffer. A mapped one lives in its own anonymous mapping
 * (grown by mremap, freed by munmap) instead of malloc's heap: a
 * snapshot's pieces, 0.9 GB at 64 x 256 x 50,000 cells, are written on the
 * loop and freed on the pool, and in the heap they would be given back to
 * the system only by a later free on the loop, as one shrink of the whole
 * image in one loop turn (17 to 35 ms measured). */
typedef struct {
    uint8_t *data;
    size_t size, cap;
    int mapped;
} ens__bytes_t;

/* One task's part of a snapshot being serialized. */
typedef struct {
    uint64_t end;  /* rows with serials <= end were in the window at the start */
    uint64_t next; /* the serial to serialize next */
    uint32_t nm;   /* models at the start: later ones hold no such row */
} ens__snap_part_t;

/* A snapshot being serialized, a piece per loop turn. It holds the rows
 * each window had when it began (the HEADER's seq is the last of them),
 * minus those that left a window before their turn came: a restore
 * replaying the later journal rows over it ends with the same windows. */
typedef struct {
    ens__bytes_t *file; /* the image in pieces, one a turn: no piece is
                         * ever copied to grow another */
    size_t npieces, cap;
    size_t size;             /* bytes in all pieces */
    ens__snap_part_t *parts; /* by task id, the tasks known at the start */
    size_t nparts;
    size_t at;                   /* the part serialized next */
    size_t names_off, names_len; /* where the first piece holds every name */
} ens__snap_t;

typedef struct snap_job_s snap_job_t;

struct ens_state_s {
    uv_loop_t *loop;
    const ens_config_t *conf; /* borrowed */
    ens_tasks_t *tasks;       /* borrowed */
    ens_state_hooks_t hooks;
    int lock_fd;          /* the flock on <dir>/lock */
    int fd;               /* current journal, -1 when none */
    uint64_t journal;     /* its number */
    uint64_t seq;         /* last row sequence number written */
    uint64_t seq_written; /* last row whose record the kernel has (all before it too) */
    uint64_t seq_syncing; /* seq_written when the fdatasync in flight began */
    uint64_t seq_synced;  /* last row made durable by an fdatasync or a snapshot */
    int dropped;          /* records were dropped since the last snapshot began */
    int dirty;            /* written since the last fdatasync */
    int syncing;          /* an fdatasync is in flight */
    int snapshotting;     /* a snapshot is in flight */
    int force_snapshot;   /* records were dropped: snapshot as soon as possible */
    double last_snapshot; /* monotonic time the last snapshot began */
    double retry_delay;   /* after a failed snapshot: seconds before the next (0: none failed) */
    int write_failing;    /* the last journal write failed */
    double last_sync;     /* monotonic time of the last fdatasync */
    uv_fs_t sync_req;
    int sync_close_fd;    /* closed once the fdatasync in flight returns (-1: none) */
    ens__bytes_t out;     /* framed records not yet written */
    uv_check_t flush;     /* writes `out` once per loop turn */
    int flush_open;       /* `flush` is initialised and not closed */
    uv_idle_t serial;     /* serializes the snapshot in `job`, a piece per turn */
    snap_job_t *job;      /* the snapshot being serialized (NULL: none) */
    size_t snap_cells;    /* cells serialized per turn (ENS_STATE_SNAP_CELLS) */
    size_t snap_slice;    /* cells between clock reads (ENS_STATE_SNAP_SLICE) */
    double snap_turn_s;   /* seconds of serializing per turn (ENS_STATE_SNAP_TURN_S) */
    size_t snap_turns;    /* loop turns snapshots were serialized in */
    size_t snap_turn_max; /* most cells one of those turns serialized */
    ens_state_stats_t st;
};

/* Appends the frame of r to b. */
void ens__bytes_record(ens__bytes_t *b, const ens_jrec_t *r);
void ens__bytes_free(ens__bytes_t *b);

/* Writes all of buf: 0, or -1 with errno set; *done gets the bytes written. */
int ens__write_all(int fd, const void *buf, size_t len, size_t *done);
/* Reads a whole file (the caller frees it); NULL with errno set. */
uint8_t *ens__slurp(const char *path, size_t *len);
/* <state.dir>/<name> into buf. */
void ens__state_path(const ens_state_t *s, char *buf, size_t len, const char *name);
/* The TASK, MODEL and LABEL records of every task known, into b. */
void ens__state_names(const ens_state_t *s, ens__bytes_t *b);
/* The ANSWERS record of t into *r: 1, or 0 when t needs none (choice). */
int ens__state_answers(const ens_task_t *t, ens_jrec_t *r);

/* Begins a snapshot covering journals <= covers: its HEADER, every name
 * and version into the first piece, and a part per task (loop thread). */
void ens__snapshot_begin(const ens_state_t *s, uint64_t covers, ens__snap_t *snap);
/* Serializes rows of the parts into a new piece, at most `cells` window
 * cells (rows times models; at least one row), in blocks of at most
 * `slice` cells (at least one row each), and stops after the block during
 * which the monotonic clock (ens_mono) passed `deadline` (0: no deadline).
 * Adds the cells done to *done. Returns 1 once every part is done, else 0. */
int ens__snapshot_step(const ens_state_t *s, ens__snap_t *snap, size_t cells, size_t slice,
                       double deadline, size_t *done);
/* Frees what snap holds. */
void ens__snapshot_free(ens__snap_t *snap);
/* Writes the pieces of snap as <dir>/snapshot atomically (tmp, fsync,
 * rename, fsync of the directory), then deletes the journals numbered <=
 * covers. Returns 0 or an errno value. Any thread. */
int ens__snapshot_write(const char *dir, const ens__snap_t *snap, uint64_t covers);

/* Loads the snapshot (if any) and replays the journals after it; *last
 * gets the highest journal number present. Returns 0 or -1 with err. */
int ens__state_restore(ens_state_t *s, uint64_t *last, char *err, size_t errlen);
/* Moves the snapshot and every journal aside (<name>.refused-<time>). */
void ens__state_set_aside(ens_state_t *s);

#endif
