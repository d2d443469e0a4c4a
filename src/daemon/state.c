/* state.c - snapshot + journal persistence (see state.h). */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "daemon.h"
#include "ensembled/xalloc.h"
#include "state_int.h"

/* ---- framing ---------------------------------------------------------- */

int ens__write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Appends one framed record to the journal. */
/* Writes the records gathered so far to the journal. */
static void flush(struct ens_state_s *s)
{
    if (s->out.size == 0 || s->fd < 0)
        return;
    if (ens__write_all(s->fd, s->out.data, s->out.size) < 0) {
        s->st.write_errors++;
        ENS_LOG(ERR, "state: journal write failed: %s", strerror(errno));
    }
    msgpack_sbuffer_clear(&s->out);
    s->dirty = 1;
}

static void on_flush(uv_check_t *h)
{
    flush(h->data);
}

/* Frames a record into the journal buffer. The buffer is written once per
 * loop turn (after the turn's events, before the loop waits again), so a
 * flood costs one write per turn instead of one per row, and a row is in the
 * kernel before the daemon next waits; a crash loses at most the rows of the
 * turn it interrupts. A torn write can only cut the tail. */
static void append(ens_daemon_t *d, const msgpack_sbuffer *sb)
{
    struct ens_state_s *s = d->state;
    if (!s || s->fd < 0)
        return;
    unsigned char head[FRAME_HEAD];
    put_le(head, sb->size, 4);
    put_le(head + 4, XXH3_64bits(sb->data, sb->size), 8);
    msgpack_sbuffer_write(&s->out, (const char *)head, FRAME_HEAD);
    msgpack_sbuffer_write(&s->out, sb->data, sb->size);
    if (s->out.size >= (1u << 20))
        flush(s);
}

void ens_state_row(ens_daemon_t *d, const ens_task_t *t, uint8_t y, const uint8_t *x, size_t nx,
                   double ts)
{
    if (!d->state)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t n = 0;
    for (size_t j = 0; j < nx; j++)
        n += x[j] != ENS_SYM_MISSING;
    msgpack_pack_array(&pk, 6);
    ens__pack_str(&pk, "r", 1);
    msgpack_pack_uint64(&pk, ++d->state->seq);
    ens__pack_str(&pk, t->name, strlen(t->name));
    msgpack_pack_double(&pk, ts);
    const char *label = ens_window_label_name(t->window, y);
    ens__pack_str(&pk, label, strlen(label));
    msgpack_pack_map(&pk, n);
    for (size_t j = 0; j < nx; j++) {
        if (x[j] == ENS_SYM_MISSING)
            continue;
        const char *m = ens_window_model_name(t->window, (int)j);
        const char *a = x[j] == ENS_SYM_ABSTAIN ? "?" : ens_window_label_name(t->window, x[j]);
        ens__pack_str(&pk, m, strlen(m));
        ens__pack_str(&pk, a, strlen(a));
    }
    append(d, &sb);
    msgpack_sbuffer_destroy(&sb);
}

void ens_state_version(ens_daemon_t *d, const ens_task_t *t)
{
    if (!d->state)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    ens__pack_str(&pk, "v", 1);
    ens__pack_str(&pk, t->name, strlen(t->name));
    msgpack_pack_uint64(&pk, t->version);
    append(d, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- paths ------------------------------------------------------------ */

void ens__state_path(const ens_daemon_t *d, char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", d->conf.state_dir, name);
}

static int open_journal(ens_daemon_t *d, uint64_t n)
{
    char path[4352], name[64];
    snprintf(name, sizeof(name), "journal.%llu", (unsigned long long)n);
    ens__state_path(d, path, sizeof(path), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        ENS_LOG(ERR, "state: cannot open %s: %s", path, strerror(errno));
    return fd;
}

/* Journal numbers present in the directory, sorted; returns the count. */
static size_t list_journals(const ens_daemon_t *d, uint64_t **out)
{
    DIR *dir = opendir(d->conf.state_dir);
    size_t n = 0, cap = 0;
    *out = NULL;
    if (!dir)
        return 0;
    for (struct dirent *e; (e = readdir(dir));) {
        char *end;
        if (strncmp(e->d_name, "journal.", 8) != 0)
            continue;
        unsigned long long v = strtoull(e->d_name + 8, &end, 10);
        if (*end || end == e->d_name + 8)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = ens_xreallocarray(*out, cap, sizeof(uint64_t));
        }
        (*out)[n++] = v;
    }
    closedir(dir);
    for (size_t i = 1; i < n; i++)
        for (size_t k = i; k > 0 && (*out)[k - 1] > (*out)[k]; k--) {
            uint64_t t = (*out)[k];
            (*out)[k] = (*out)[k - 1];
            (*out)[k - 1] = t;
        }
    return n;
}

/* ---- snapshot --------------------------------------------------------- */

typedef struct {
    uv_work_t req;
    ens_daemon_t *d;
    msgpack_sbuffer file;
    uint64_t covers; /* journals <= covers are in the snapshot */
    char dir[ENS_CONF_STR];
    int rc;
    int err;
} snap_job_t;

/* Writes the snapshot durably, then removes the journals it covers. */
static void snapshot_write(snap_job_t *j)
{
    j->err = ens__snapshot_write(j->dir, &j->file, j->covers);
    j->rc = j->err ? -1 : 0;
}

static void snapshot_work(uv_work_t *req)
{
    snapshot_write(req->data);
}

static void snapshot_done(uv_work_t *req, int status)
{
    snap_job_t *j = req->data;
    struct ens_state_s *s = j->d->state;
    s->snapshotting = 0;
    if (status < 0 || j->rc < 0) {
        s->st.write_errors++;
        ENS_LOG(ERR, "state: snapshot failed: %s; journals kept, will retry",
                strerror(j->err ? j->err : EIO));
    } else {
        s->st.snapshots++;
        ENS_LOG(DEBUG, "state: snapshot written (%zu bytes)", j->file.size);
    }
    msgpack_sbuffer_destroy(&j->file);
    free(j);
}

/* Rotates the journal and prepares a snapshot job covering the old ones. */
static snap_job_t *snapshot_begin(ens_daemon_t *d)
{
    struct ens_state_s *s = d->state;
    flush(s);
    if (s->fd >= 0) {
        fdatasync(s->fd);
        close(s->fd);
    }
    snap_job_t *j = ens_xcalloc(1, sizeof(*j));
    j->d = d;
    j->covers = s->journal;
    snprintf(j->dir, sizeof(j->dir), "%s", d->conf.state_dir);
    ens__snapshot_serialize(d, j->covers, &j->file);
    s->journal++;
    s->fd = open_journal(d, s->journal);
    s->dirty = 0;
    s->last_snapshot = ens_now();
    j->req.data = j;
    return j;
}

/* ---- journal replay --------------------------------------------------- */

/* Reads a whole file; NULL (errno set) on failure. */
char *ens__slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) == 0) {
        buf = ens_xmalloc((size_t)st.st_size + 1);
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        *len = got;
    }
    close(fd);
    return buf;
}

/* Applies one journal record; -1 if it makes no sense (treated as torn). */
static int replay_record(ens_daemon_t *d, const msgpack_object *r, uint64_t skip_upto)
{
    if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size < 3 ||
        r->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
        r->via.array.ptr[1].type == MSGPACK_OBJECT_NIL)
        return -1;
    const msgpack_object *a = r->via.array.ptr;
    char kind = a[0].via.str.size ? a[0].via.str.ptr[0] : 0;
    if (kind == 'v' && a[1].type == MSGPACK_OBJECT_STR &&
        a[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        ens_task_t *t = ens_task_find(d, a[1].via.str.ptr, a[1].via.str.size);
        if (!t)
            t = ens_task_create(d, a[1].via.str.ptr, a[1].via.str.size);
        if (t && a[2].via.u64 > t->version)
            t->version = a[2].via.u64;
        return t ? 0 : -1;
    }
    if (kind != 'r' || r->via.array.size != 6 || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[2].type != MSGPACK_OBJECT_STR ||
        (a[3].type != MSGPACK_OBJECT_FLOAT64 && a[3].type != MSGPACK_OBJECT_FLOAT32) ||
        a[4].type != MSGPACK_OBJECT_STR || a[5].type != MSGPACK_OBJECT_MAP)
        return -1;
    uint64_t seq = a[1].via.u64;
    if (seq > d->state->seq)
        d->state->seq = seq;
    if (seq <= skip_upto)
        return 0; /* already in the snapshot */
    ens_task_t *t = ens_task_find(d, a[2].via.str.ptr, a[2].via.str.size);
    if (!t)
        t = ens_task_create(d, a[2].via.str.ptr, a[2].via.str.size);
    if (!t)
        return -1;
    int y = ens_window_label(t->window, a[4].via.str.ptr, a[4].via.str.size);
    if (y < 0 || y == ENS_SYM_ABSTAIN)
        return -1;
    uint8_t x[ENS_MAX_MODELS];
    memset(x, ENS_SYM_MISSING, sizeof(x));
    size_t nx = 0;
    for (uint32_t i = 0; i < a[5].via.map.size; i++) {
        const msgpack_object_kv *kv = &a[5].via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_STR)
            return -1;
        int j = ens_window_model(t->window, kv->key.via.str.ptr, kv->key.via.str.size);
        int v = ens_window_label(t->window, kv->val.via.str.ptr, kv->val.via.str.size);
        if (j < 0 || v < 0)
            return -1;
        x[j] = (uint8_t)v;
        if ((size_t)j + 1 > nx)
            nx = (size_t)j + 1;
    }
    if (ens_window_push(t->window, (uint8_t)y, x, ens_window_models(t->window), a[3].via.f64) < 0)
        return -1;
    d->state->st.rows_replayed++;
    return 0;
}

/* Replays one journal; cuts it at the first torn or nonsensical record. */
static void replay_journal(ens_daemon_t *d, uint64_t n, uint64_t skip_upto)
{
    char path[ENS_CONF_STR + 64], name[64];
    snprintf(name, sizeof(name), "journal.%llu", (unsigned long long)n);
    ens__state_path(d, path, sizeof(path), name);
    size_t len = 0, off = 0;
    char *buf = ens__slurp(path, &len);
    if (!buf)
        return;
    const unsigned char *p = (const unsigned char *)buf;
    while (off < len) {
        size_t plen = len - off >= FRAME_HEAD ? get_le(p + off, 4) : SIZE_MAX;
        if (plen == SIZE_MAX || plen > len - off - FRAME_HEAD ||
            get_le(p + off + 4, 8) != XXH3_64bits(p + off + FRAME_HEAD, plen))
            break;
        msgpack_zone zone;
        msgpack_zone_init(&zone, 1024);
        msgpack_object r;
        size_t o = 0;
        int ok =
            ens_proto_prewalk(buf + off + FRAME_HEAD, plen, 4) == 0 &&
            msgpack_unpack(buf + off + FRAME_HEAD, plen, &o, &zone, &r) == MSGPACK_UNPACK_SUCCESS &&
            replay_record(d, &r, skip_upto) == 0;
        msgpack_zone_destroy(&zone);
        if (!ok)
            break;
        off += FRAME_HEAD + plen;
    }
    if (off < len) {
        d->state->st.torn_records++;
        ENS_LOG(WARNING, "state: %s: discarding a torn tail of %zu bytes at offset %zu", path,
                len - off, off);
        if (truncate(path, (off_t)off) < 0)
            ENS_LOG(ERR, "state: cannot truncate %s: %s", path, strerror(errno));
    }
    free(buf);
}

/* Moves a refused state aside so that a fresh start keeps it for a post
 * mortem. */
static void set_aside(ens_daemon_t *d)
{
    char from[ENS_CONF_STR + 32], to[ENS_CONF_STR + 64];
    ens__state_path(d, from, sizeof(from), "snapshot");
    snprintf(to, sizeof(to), "%s.refused-%lld", from, (long long)ens_now());
    rename(from, to);
    ENS_LOG(WARNING, "state: refused snapshot moved to %s; starting empty as asked", to);
}

int ens_state_open(ens_daemon_t *d, int discard, char *err, size_t errlen)
{
    if (d->conf.state_dir[0] == '\0')
        return 0;
    if (mkdir(d->conf.state_dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "state.dir %s: %s", d->conf.state_dir, strerror(errno));
        return -1;
    }
    struct ens_state_s *s = ens_xcalloc(1, sizeof(*s));
    s->fd = -1;
    msgpack_sbuffer_init(&s->out);
    uv_check_init(d->loop, &s->flush);
    s->flush.data = s;
    uv_check_start(&s->flush, on_flush);
    s->flush_open = 1;
    d->state = s;
    uint64_t covers = 0;
    int refused = 0;
    if (ens__snapshot_load(d, &covers, err, errlen) < 0) {
        if (!discard)
            return -1;
        /* Told to start empty: the journals after a refused snapshot are
         * not replayed either, since the rows before them are gone. */
        set_aside(d);
        ens_task_destroy_all(d);
        s->seq = 0;
        covers = 0;
        refused = 1;
    }
    uint64_t skip = s->seq, *js = NULL;
    size_t nj = list_journals(d, &js);
    s->journal = covers;
    for (size_t i = 0; i < nj; i++) {
        if (js[i] > covers && !refused)
            replay_journal(d, js[i], skip);
        if (js[i] > s->journal)
            s->journal = js[i];
    }
    free(js);
    s->journal++;
    s->fd = open_journal(d, s->journal);
    s->last_snapshot = ens_now();
    if (s->fd < 0) {
        snprintf(err, errlen, "state.dir %s: cannot open a journal", d->conf.state_dir);
        return -1;
    }
    /* Restored models count as heard from now (retire_after runs from the
     * restart) and their newest row is the newest restored one. */
    double now = ens_now();
    for (ens_task_t *t = d->tasks; t; t = t->hh.next) {
        size_t nm = ens_window_models(t->window), n = ens_window_rows(t->window);
        for (size_t m = 0; m < nm; m++)
            t->last_seen[m] = now;
        for (size_t i = 0; i < n; i++)
            for (size_t m = 0; m < nm; m++)
                if (ens_window_x(t->window, i, m) != ENS_SYM_MISSING &&
                    ens_window_ts(t->window, i) > t->last_row[m])
                    t->last_row[m] = ens_window_ts(t->window, i);
    }
    ENS_LOG(NOTICE, "state: restored %llu rows from the snapshot and %llu from journals",
            (unsigned long long)s->st.rows_snapshot, (unsigned long long)s->st.rows_replayed);
    return 0;
}

static void on_synced(uv_fs_t *req)
{
    ens_daemon_t *d = req->data;
    if (req->result < 0) {
        d->state->st.write_errors++;
        ENS_LOG(ERR, "state: fdatasync failed: %s", uv_strerror((int)req->result));
    }
    d->state->syncing = 0;
    uv_fs_req_cleanup(req);
}

void ens_state_tick(ens_daemon_t *d, double now)
{
    struct ens_state_s *s = d->state;
    if (!s || d->stopping)
        return;
    /* A due snapshot goes first: it syncs and rotates the journal itself.
     * It waits only for an fdatasync in flight on the journal it closes,
     * which the fsync below never starts while a snapshot is due. */
    int snapshot_due =
        d->conf.snapshot_interval > 0 && now - s->last_snapshot >= d->conf.snapshot_interval;
    if (snapshot_due && !s->snapshotting && !s->syncing) {
        snap_job_t *j = snapshot_begin(d);
        s->snapshotting = 1;
        s->last_sync = now;
        if (uv_queue_work(d->loop, &j->req, snapshot_work, snapshot_done) < 0) {
            s->snapshotting = 0;
            msgpack_sbuffer_destroy(&j->file);
            free(j);
        }
        return;
    }
    flush(s);
    if (!snapshot_due && s->dirty && !s->syncing && s->fd >= 0 &&
        now - s->last_sync >= d->conf.fsync_interval) {
        s->dirty = 0;
        s->syncing = 1;
        s->last_sync = now;
        s->sync_req.data = d;
        uv_fs_fdatasync(d->loop, &s->sync_req, s->fd, on_synced);
    }
}

void ens_state_close(ens_daemon_t *d)
{
    struct ens_state_s *s = d->state;
    if (!s)
        return;
    if (!s->snapshotting) {
        snap_job_t *j = snapshot_begin(d);
        snapshot_write(j);
        if (j->rc < 0)
            ENS_LOG(ERR, "state: final snapshot failed: %s; journals kept", strerror(j->err));
        msgpack_sbuffer_destroy(&j->file);
        free(j);
    }
    flush(s);
    if (s->fd >= 0) {
        fdatasync(s->fd);
        close(s->fd);
    }
    msgpack_sbuffer_destroy(&s->out);
    free(s);
    d->state = NULL;
}

void ens_state_stop(ens_daemon_t *d)
{
    struct ens_state_s *s = d->state;
    if (!s || !s->flush_open)
        return;
    flush(s);
    s->flush_open = 0;
    uv_check_stop(&s->flush);
    uv_close((uv_handle_t *)&s->flush, NULL);
}

void ens_state_abandon(ens_daemon_t *d)
{
    struct ens_state_s *s = d->state;
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    msgpack_sbuffer_destroy(&s->out);
    free(s);
    d->state = NULL;
}

const ens_state_stats_t *ens_state_stats(const ens_daemon_t *d)
{
    static const ens_state_stats_t none;
    return d->state ? &d->state->st : &none;
}
