/* state.h - persistence of windows, dictionaries and versions.
 *
 * Layout under state.dir:
 *   snapshot          the last complete snapshot (atomic: written to
 *                     snapshot.tmp, fsynced, renamed, directory fsynced)
 *   journal.<N>       append-only records since a snapshot began
 *
 * Every record is framed as u32 length (little endian), u64 XXH3-64 of the
 * payload, then the MessagePack payload: ["r", seq, task, ts, label,
 * {model: answer}] for a joined row, ["v", task, version] for a
 * publication. Rows carry a sequence number; the snapshot stores the last
 * one it holds, so a journal written while a snapshot was in flight is
 * replayed without duplicating a row. A snapshot rotates the journal
 * (journal.<N+1> takes new records) and, once durable, deletes the journals
 * it covers. Journals are fdatasync'ed every state.fsync_interval; a torn
 * tail (a crash mid-write) is detected by its length or checksum, counted,
 * logged and cut off.
 */
#ifndef ENSEMBLED_STATE_H
#define ENSEMBLED_STATE_H

#include <stddef.h>
#include <stdint.h>

struct ens_daemon_s;
struct ens_task_s;

typedef struct {
    uint64_t rows_replayed; /* rows restored from journals at start */
    uint64_t rows_snapshot; /* rows restored from the snapshot */
    uint64_t torn_records;  /* journal tails discarded at start */
    uint64_t snapshots;     /* snapshots written */
    uint64_t write_errors;  /* failed writes (logged, retried) */
} ens_state_stats_t;

/* Loads the snapshot and replays the journals into d's tasks. Returns 0, or
 * -1 with a reason in err when the state is corrupt or foreign (the caller
 * refuses to start unless told to discard it). No state.dir: nothing. */
int ens_state_open(struct ens_daemon_s *d, int discard, char *err, size_t errlen);

/* Appends a joined row / a publication to the journal: gathered in memory,
 * written once per loop turn, made durable by the fsync timer. */
void ens_state_row(struct ens_daemon_s *d, const struct ens_task_s *t, uint8_t y, const uint8_t *x,
                   size_t nx, double ts);
void ens_state_version(struct ens_daemon_s *d, const struct ens_task_s *t);

/* Timer work: fdatasync the journal; start a snapshot when it is due. */
void ens_state_tick(struct ens_daemon_s *d, double now);

/* When the daemon begins to stop (loop still running): writes what is
 * buffered and releases the per-turn flush handle. */
void ens_state_stop(struct ens_daemon_s *d);

/* At a clean stop: a synchronous snapshot, then the journals are removed. */
void ens_state_close(struct ens_daemon_s *d);

/* After a failed start: frees everything and writes nothing, so a refused
 * state stays exactly as it was on disk. */
void ens_state_abandon(struct ens_daemon_s *d);

const ens_state_stats_t *ens_state_stats(const struct ens_daemon_s *d);

#endif
