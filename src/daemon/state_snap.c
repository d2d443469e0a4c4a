/* state_snap.c - the snapshot file: a HEADER record, every name, per task
 * its version, then the windows' rows as BLOCKs, serialized a bounded
 * piece per loop turn (see state.h, state_int.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ensembled/xalloc.h"
#include "state_int.h"

/* The costs of rows [from, from + n), models [0, nm), row-major (NaN:
 * none), or NULL when no model has a cost in the window: a fleet that
 * reports none pays nothing for them. */
static double *block_costs(const ens_window_t *w, size_t from, size_t n, uint32_t nm)
{
    int any = 0;
    for (uint32_t j = 0; j < nm && !any; j++) {
        uint32_t k = 0;
        ens_window_cost(w, j, &k);
        any = k > 0;
    }
    if (!any)
        return NULL;
    double *cost = ens_xmalloc(sizeof(double) * (n * nm + 1));
    for (size_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < nm; j++)
            cost[i * nm + j] = ens_window_cost_at(w, from + i, j);
    return cost;
}

/* Rows [from, from + n) of t's window, models [0, nm), as one BLOCK. */
static void block_of(const ens_task_t *t, size_t from, size_t n, uint32_t nm, ens__bytes_t *file)
{
    uint8_t *y = ens_xmalloc(n + 1), *x = ens_xmalloc(n * nm + 1), *ts = ens_xmalloc(8 * n + 1);
    double *tv = ens_xmalloc(sizeof(double) * (n + 1));
    ens_window_copy_rows(t->window, from, n, nm, y, tv, x);
    for (size_t i = 0; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &tv[i], 8);
        for (int b = 0; b < 8; b++)
            ts[8 * i + (size_t)b] = (uint8_t)(bits >> (8 * b));
    }
    /* The rows' flags go only with a block that has an ordinary row. */
    uint8_t *ord = ens_xmalloc(n + 1);
    int any = 0;
    for (size_t i = 0; i < n; i++)
        any |= ord[i] = !ens_window_explored(t->window, from + i);
    double *cost = block_costs(t->window, from, n, nm);
    ens_jrec_t r = {.kind = ENS_JREC_BLOCK};
    r.block.cost = cost;
    r.block.task = t->id;
    r.block.nrows = n;
    r.block.nmodels = nm;
    r.block.y = y;
    r.block.ts = ts;
    r.block.x = x;
    r.block.ordinary = any ? ord : NULL;
    ens__bytes_record(file, &r);
    free(cost);
    free(ord);
    free(y);
    free(x);
    free(ts);
    free(tv);
}

/* A new, empty piece at the end of snap's image. */
static ens__bytes_t *new_piece(ens__snap_t *snap)
{
    if (snap->npieces == snap->cap) {
        snap->cap = snap->cap ? 2 * snap->cap : 16;
        snap->file = ens_xreallocarray(snap->file, snap->cap, sizeof(*snap->file));
    }
    ens__bytes_t *b = &snap->file[snap->npieces++];
    memset(b, 0, sizeof(*b));
    b->mapped = 1; /* freed on the pool: see ens__bytes_t */
    return b;
}

void ens__snapshot_begin(const ens_state_t *s, uint64_t covers, ens__snap_t *snap)
{
    memset(snap, 0, sizeof(*snap));
    ens_jrec_t h = {.kind = ENS_JREC_HEADER};
    h.header.format = ENS_JREC_FORMAT;
    h.header.seq = s->seq;
    h.header.journal = covers;
    ens__bytes_t *file = new_piece(snap);
    ens__bytes_record(file, &h);
    snap->names_off = file->size;
    ens__state_names(s, file);
    snap->names_len = file->size - snap->names_off;
    snap->size = file->size;
    snap->nparts = ens_tasks_count(s->tasks);
    snap->parts = ens_xcalloc(snap->nparts + 1, sizeof(*snap->parts));
    for (uint32_t i = 0; i < snap->nparts; i++) {
        const ens_task_t *t = ens_tasks_get(s->tasks, i);
        ens_jrec_t v = {.kind = ENS_JREC_VERSION};
        v.version.task = t->id;
        v.version.version = s->hooks.version_of ? s->hooks.version_of(s->hooks.ud, t) : 0;
        ens__bytes_record(file, &v);
        size_t n = ens_window_rows(t->window);
        snap->parts[i].nm = (uint32_t)ens_window_models(t->window);
        snap->parts[i].next = n ? ens_window_serial(t->window, 0) : 1;
        snap->parts[i].end = n ? ens_window_serial(t->window, n - 1) : 0;
    }
}

int ens__snapshot_step(const ens_state_t *s, ens__snap_t *snap, size_t cells, size_t slice,
                       double deadline, size_t *done)
{
    size_t left = cells;
    ens__bytes_t *file = NULL;
    while (snap->at < snap->nparts) {
        ens__snap_part_t *p = &snap->parts[snap->at];
        const ens_task_t *t = ens_tasks_get(s->tasks, (uint32_t)snap->at);
        /* Rows that left the window meanwhile are skipped; rows joined
         * since the start are in the journal, not here. */
        size_t from = ens_window_find_serial(t->window, p->next);
        size_t to = p->next <= p->end ? ens_window_find_serial(t->window, p->end + 1) : from;
        if (from >= to) {
            snap->at++;
            continue;
        }
        size_t per_row = p->nm ? p->nm : 1;
        if (left < per_row && left < cells)
            return 0; /* this turn's budget is spent */
        /* A block is at most a slice: the clock is read between blocks,
         * and the cost of a cell differs by window (how many models
         * answered, whether costs are kept, what the caches hold). */
        size_t lim = left < slice ? left : slice;
        size_t n = lim / per_row ? lim / per_row : 1;
        if (n > to - from)
            n = to - from;
        if (!file)
            file = new_piece(snap);
        size_t before = file->size;
        block_of(t, from, n, p->nm, file);
        snap->size += file->size - before;
        p->next = ens_window_serial(t->window, from + n - 1) + 1;
        *done += n * per_row;
        left = n * per_row >= left ? 0 : left - n * per_row;
        if (deadline > 0 && ens_mono() >= deadline)
            return 0; /* this turn's time is spent; the next goes on */
    }
    return 1;
}

void ens__snapshot_free(ens__snap_t *snap)
{
    for (size_t i = 0; i < snap->npieces; i++)
        ens__bytes_free(&snap->file[i]);
    free(snap->file);
    free(snap->parts);
    memset(snap, 0, sizeof(*snap));
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Deletes the journals numbered <= covers. */
static void remove_journals(const char *dir, uint64_t covers)
{
    DIR *dp = opendir(dir);
    for (struct dirent *e; dp && (e = readdir(dp));) {
        char *end;
        if (strncmp(e->d_name, "journal.", 8) != 0)
            continue;
        unsigned long long v = strtoull(e->d_name + 8, &end, 10);
        if (*end == '\0' && end != e->d_name + 8 && v <= covers) {
            char p[ENS_CONF_STR + 300];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (dp)
        closedir(dp);
}

int ens__snapshot_write(const char *dir, const ens__snap_t *snap, uint64_t covers)
{
    char tmp[ENS_CONF_STR + 32], dst[ENS_CONF_STR + 32];
    snprintf(tmp, sizeof(tmp), "%s/snapshot.tmp", dir);
    snprintf(dst, sizeof(dst), "%s/snapshot", dir);
    size_t done = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -1 : 0;
    for (size_t i = 0; i < snap->npieces && rc == 0; i++)
        rc = ens__write_all(fd, snap->file[i].data, snap->file[i].size, &done);
    if (rc < 0 || fsync(fd) < 0) {
        int err = errno ? errno : EIO;
        if (fd >= 0)
            close(fd);
        unlink(tmp); /* a partial copy would only hold the disk's space */
        return err;
    }
    close(fd);
    if (rename(tmp, dst) < 0 || fsync_dir(dir) < 0)
        return errno ? errno : EIO;
    /* Durable: the journals it covers are no longer needed. */
    remove_journals(dir, covers);
    return 0;
}
