/* state_snap.c - the snapshot file: a HEADER record, then per task its
 * names, its version and its window as one BLOCK (see state.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ensembled/xalloc.h"
#include "state_int.h"

/* One task's window as a BLOCK: y and ts columns, answers row-major. */
static void block_of(const ens_task_t *t, ens__bytes_t *file)
{
    const ens_window_t *w = t->window;
    size_t n = ens_window_rows(w), nm = ens_window_models(w);
    uint8_t *y = ens_xmalloc(n + 1), *x = ens_xmalloc(n * nm + 1), *ts = ens_xmalloc(8 * n + 1);
    for (size_t i = 0; i < n; i++) {
        y[i] = ens_window_y(w, i);
        double v = ens_window_ts(w, i);
        uint64_t bits;
        memcpy(&bits, &v, 8);
        for (int b = 0; b < 8; b++)
            ts[8 * i + (size_t)b] = (uint8_t)(bits >> (8 * b));
        for (size_t j = 0; j < nm; j++)
            x[i * nm + j] = ens_window_x(w, i, j);
    }
    ens_jrec_t r = {.kind = ENS_JREC_BLOCK};
    r.block.task = t->id;
    r.block.nrows = n;
    r.block.nmodels = (uint32_t)nm;
    r.block.y = y;
    r.block.ts = ts;
    r.block.x = x;
    ens__bytes_record(file, &r);
    free(y);
    free(x);
    free(ts);
}

void ens__snapshot_serialize(const ens_state_t *s, uint64_t covers, ens__bytes_t *file)
{
    memset(file, 0, sizeof(*file));
    ens_jrec_t h = {.kind = ENS_JREC_HEADER};
    h.header.format = ENS_JREC_FORMAT;
    h.header.seq = s->seq;
    h.header.journal = covers;
    ens__bytes_record(file, &h);
    ens__state_names(s, file);
    for (uint32_t i = 0; i < ens_tasks_count(s->tasks); i++) {
        const ens_task_t *t = ens_tasks_get(s->tasks, i);
        ens_jrec_t v = {.kind = ENS_JREC_VERSION};
        v.version.task = t->id;
        v.version.version = s->hooks.version_of ? s->hooks.version_of(s->hooks.ud, t) : 0;
        ens__bytes_record(file, &v);
        block_of(t, file);
    }
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

int ens__snapshot_write(const char *dir, const ens__bytes_t *file, uint64_t covers)
{
    char tmp[ENS_CONF_STR + 32], dst[ENS_CONF_STR + 32];
    snprintf(tmp, sizeof(tmp), "%s/snapshot.tmp", dir);
    snprintf(dst, sizeof(dst), "%s/snapshot", dir);
    size_t done = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ens__write_all(fd, file->data, file->size, &done) < 0 || fsync(fd) < 0) {
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
