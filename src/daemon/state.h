/* state.h - persistence of windows, dictionaries and versions.
 *
 * Layout under state.dir (docs/persistence.md):
 *   lock         held (flock) while a daemon uses the directory
 *   snapshot     the last complete snapshot (atomic: written to
 *                snapshot.tmp, fsynced, renamed, directory fsynced)
 *   journal.<N>  append-only records since a snapshot began
 *
 * Both files are sequences of framed, checksummed records in id space
 * (ensembled/journal.h): each journal opens with every name the daemon
 * knows (TASK, MODEL, LABEL records), then records each new name once, each
 * joined row as ids (ROW, with a sequence number) and each publication
 * (VERSION). Ids in a file mean what that file's own name records say, so a
 * lost record costs only the rows that need it. A snapshot is a HEADER
 * (last row sequence number, journals covered), then per task its names,
 * its VERSION, then the rows as BLOCKs. A snapshot rotates the journal
 * (journal.<N+1> takes new records) and, once durable, deletes the
 * journals it covers. A damaged record is skipped, counted and logged; the
 * rest of the file is kept.
 *
 * Loop thread only, but for the snapshot write, which runs on the thread
 * pool over a serialized image. The image is serialized on the loop a
 * bounded number of window cells per turn (docs/persistence.md), so no
 * snapshot stalls the loop for long, whatever the windows hold.
 */
#ifndef ENSEMBLED_STATE_H
#define ENSEMBLED_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "ensembled/mpw.h"
#include "task.h"

typedef struct {
    uint64_t rows_replayed;   /* rows restored from journals at start */
    uint64_t rows_snapshot;   /* rows restored from the snapshot */
    uint64_t torn_records;    /* journal tails discarded at start */
    uint64_t corrupt_records; /* damaged regions and unusable records skipped */
    uint64_t snapshots;       /* snapshots written */
    uint64_t fsyncs;          /* journal fdatasyncs completed */
    uint64_t write_errors;    /* failed writes (logged, retried) */
    uint64_t records_dropped; /* records not journaled: the write buffer was full */
} ens_state_stats_t;

typedef struct {
    /* Restore: the saved version of t. */
    void (*version)(void *ud, const ens_task_t *t, uint64_t version);
    /* Snapshot: the current version of t. */
    uint64_t (*version_of)(void *ud, const ens_task_t *t);
    void *ud;
} ens_state_hooks_t;

typedef struct ens_state_s ens_state_t;

/* Locks state.dir, loads the snapshot and replays the journals into tasks
 * (before any hook of tasks is set). Returns 0 and the state in *out (NULL
 * without state.dir), or -1 with a reason in err: another daemon holds the
 * directory, or the snapshot is corrupt or foreign and discard is 0. With
 * discard, a refused snapshot and its journals are moved aside and the
 * daemon starts empty. conf is borrowed for the state's life. */
int ens_state_open(uv_loop_t *loop, const ens_config_t *conf, ens_tasks_t *tasks,
                   const ens_state_hooks_t *hooks, int discard, ens_state_t **out, char *err,
                   size_t errlen);

/* Journal records (NULL-safe): a new name, a joined row, a publication.
 * Gathered in memory, written once per loop turn (a publication's at once,
 * with everything gathered before it, since its body is about to be sent),
 * made durable by the fsync timer. */
void ens_state_added(ens_state_t *s, const ens_task_t *t, ens_name_kind_t kind, uint32_t id,
                     ens_str_t name);
/* ens_state_row's row is the newest of t's window (the `joined` hook): its
 * exploration flag is read from there. */
void ens_state_row(ens_state_t *s, const ens_task_t *t, uint8_t y, const uint8_t *x, size_t nx,
                   double ts);
void ens_state_version(ens_state_t *s, const ens_task_t *t, uint64_t version);

/* A query of t joined (key[0..len)); called just before its row's
 * ens_state_row. Journaled as a QUERY record when the daemon has an intake
 * that delivers again after a crash (ingest.nats), restored as the join's
 * tombstone, so a message delivered again adds no second row. NULL-safe. */
void ens_state_query(ens_state_t *s, const ens_task_t *t, const void *key, size_t len);

/* Row sequence numbers (NULL-safe): the last one given to a row, and the
 * last one durable (fdatasync or snapshot done; every row before it too).
 * An intake that acknowledges its sources waits for durable >= the last
 * row seq its messages produced. Without state, last is 0 and durable
 * UINT64_MAX. */
uint64_t ens_state_last_seq(const ens_state_t *s);
uint64_t ens_state_durable_seq(const ens_state_t *s);

/* Timer work: fdatasync the journal; start a snapshot when one is due.
 * mono: the monotonic clock (a wall-clock step moves neither). */
void ens_state_tick(ens_state_t *s, double mono);

/* When the daemon begins to stop (loop still running): writes what is
 * buffered and releases the per-turn flush handle. */
void ens_state_stop(ens_state_t *s);

/* At a clean stop, once the loop has run dry: a synchronous snapshot, then
 * the journals are removed; frees the state. */
void ens_state_close(ens_state_t **sp);

/* After a failed start: frees everything and writes nothing, so a refused
 * state stays exactly as it was on disk. */
void ens_state_abandon(ens_state_t **sp);

/* The `state` map of the status reply (key and value; NULL-safe). */
void ens_state_status(const ens_state_t *s, ens_mpw_t *w);

#endif
