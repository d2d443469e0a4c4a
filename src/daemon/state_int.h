/* state_int.h - internals shared by state.c (journal, replay, timers) and
 * snapshot.c (the snapshot file). Not for other modules: see state.h. */
#ifndef ENSEMBLED_STATE_INT_H
#define ENSEMBLED_STATE_INT_H

#include <msgpack.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include "state.h"

#define SNAP_MAGIC "ENSSNAP1"
#define SNAP_FORMAT "ensembled-state-1"
#define FRAME_HEAD 12 /* u32 length + u64 checksum */

struct ens_state_s {
    int fd;               /* current journal, -1 when none */
    uint64_t journal;     /* its number */
    uint64_t seq;         /* last row sequence number written */
    int dirty;            /* written since the last fdatasync */
    int syncing;          /* an fdatasync is in flight */
    int snapshotting;     /* a snapshot is in flight */
    double last_snapshot; /* wall time the last snapshot began */
    double last_sync;     /* wall time of the last fdatasync */
    uv_fs_t sync_req;
    msgpack_sbuffer out; /* framed records not yet written */
    uv_check_t flush;    /* writes `out` once per loop turn */
    int flush_open;      /* `flush` is initialised and not closed */
    ens_state_stats_t st;
};

static inline void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline void ens__pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

struct ens_daemon_s;

/* Writes all of buf: 0, or -1 with errno set. */
int ens__write_all(int fd, const void *buf, size_t len);
/* Reads a whole file (the caller frees it); NULL with errno set. */
char *ens__slurp(const char *path, size_t *len);
/* <state.dir>/<name> into buf. */
void ens__state_path(const struct ens_daemon_s *d, char *buf, size_t len, const char *name);

/* The framed snapshot file image of every task (loop thread). */
void ens__snapshot_serialize(struct ens_daemon_s *d, uint64_t covers, msgpack_sbuffer *file);
/* Writes file as <dir>/snapshot atomically (tmp, fsync, rename, fsync of the
 * directory), then deletes the journals numbered <= covers. Returns 0 or an
 * errno value. Any thread. */
int ens__snapshot_write(const char *dir, const msgpack_sbuffer *file, uint64_t covers);
/* Loads <state.dir>/snapshot into d's tasks if it exists; *covers gets the
 * last journal it holds. Returns 0, or -1 with why in err. */
int ens__snapshot_load(struct ens_daemon_s *d, uint64_t *covers, char *err, size_t errlen);

#endif
