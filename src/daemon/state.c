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
    ens_state_stats_t st;
};

/* ---- framing ---------------------------------------------------------- */

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int write_all(int fd, const void *buf, size_t len)
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
static void append(ens_daemon_t *d, const msgpack_sbuffer *sb)
{
    struct ens_state_s *s = d->state;
    if (!s || s->fd < 0)
        return;
    unsigned char head[FRAME_HEAD];
    put_le(head, sb->size, 4);
    put_le(head + 4, XXH3_64bits(sb->data, sb->size), 8);
    /* One write per record keeps a torn record at the tail, never inside. */
    char *rec = ens_xmalloc(FRAME_HEAD + sb->size);
    memcpy(rec, head, FRAME_HEAD);
    memcpy(rec + FRAME_HEAD, sb->data, sb->size);
    if (write_all(s->fd, rec, FRAME_HEAD + sb->size) < 0) {
        s->st.write_errors++;
        ENS_LOG(ERR, "state: journal write failed: %s", strerror(errno));
    }
    free(rec);
    s->dirty = 1;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
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
    pack_str(&pk, "r", 1);
    msgpack_pack_uint64(&pk, ++d->state->seq);
    pack_str(&pk, t->name, strlen(t->name));
    msgpack_pack_double(&pk, ts);
    const char *label = ens_window_label_name(t->window, y);
    pack_str(&pk, label, strlen(label));
    msgpack_pack_map(&pk, n);
    for (size_t j = 0; j < nx; j++) {
        if (x[j] == ENS_SYM_MISSING)
            continue;
        const char *m = ens_window_model_name(t->window, (int)j);
        const char *a = x[j] == ENS_SYM_ABSTAIN ? "?" : ens_window_label_name(t->window, x[j]);
        pack_str(&pk, m, strlen(m));
        pack_str(&pk, a, strlen(a));
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
    pack_str(&pk, "v", 1);
    pack_str(&pk, t->name, strlen(t->name));
    msgpack_pack_uint64(&pk, t->version);
    append(d, &sb);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- paths ------------------------------------------------------------ */

static void path_of(const ens_daemon_t *d, char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", d->conf.state_dir, name);
}

static int open_journal(ens_daemon_t *d, uint64_t n)
{
    char path[4352], name[64];
    snprintf(name, sizeof(name), "journal.%llu", (unsigned long long)n);
    path_of(d, path, sizeof(path), name);
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

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* ---- snapshot --------------------------------------------------------- */

static void pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

static void pack_task(msgpack_packer *pk, const ens_task_t *t)
{
    const ens_window_t *w = t->window;
    size_t n = ens_window_rows(w), nm = ens_window_models(w), nl = ens_window_labels(w);
    msgpack_pack_map(pk, 5);
    pack_str(pk, "name", 4);
    pack_str(pk, t->name, strlen(t->name));
    pack_str(pk, "version", 7);
    msgpack_pack_uint64(pk, t->version);
    pack_str(pk, "models", 6);
    msgpack_pack_array(pk, nm);
    for (size_t j = 0; j < nm; j++) {
        const char *m = ens_window_model_name(w, (int)j);
        pack_str(pk, m, strlen(m));
    }
    pack_str(pk, "labels", 6);
    msgpack_pack_array(pk, nl);
    for (size_t l = 0; l < nl; l++) {
        const char *s = ens_window_label_name(w, (int)l);
        pack_str(pk, s, strlen(s));
    }
    /* Rows, oldest first: y and ts columns, answers row-major. */
    uint8_t *y = ens_xmalloc(n + 1), *x = ens_xmalloc(n * nm + 1);
    unsigned char *ts = ens_xmalloc(8 * n + 1);
    for (size_t i = 0; i < n; i++) {
        y[i] = ens_window_y(w, i);
        double v = ens_window_ts(w, i);
        uint64_t bits;
        memcpy(&bits, &v, 8);
        put_le(ts + 8 * i, bits, 8);
        for (size_t j = 0; j < nm; j++)
            x[i * nm + j] = ens_window_x(w, i, j);
    }
    pack_str(pk, "rows", 4);
    msgpack_pack_map(pk, 3);
    pack_str(pk, "y", 1);
    pack_bin(pk, y, n);
    pack_str(pk, "ts", 2);
    pack_bin(pk, ts, 8 * n);
    pack_str(pk, "x", 1);
    pack_bin(pk, x, n * nm);
    free(y);
    free(x);
    free(ts);
}

/* Serializes every task (loop thread): the framed snapshot file image. */
static void serialize(ens_daemon_t *d, uint64_t covers, msgpack_sbuffer *file)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    pack_str(&pk, "format", 6);
    pack_str(&pk, SNAP_FORMAT, strlen(SNAP_FORMAT));
    pack_str(&pk, "seq", 3);
    msgpack_pack_uint64(&pk, d->state->seq);
    pack_str(&pk, "journal", 7);
    msgpack_pack_uint64(&pk, covers);
    pack_str(&pk, "tasks", 5);
    msgpack_pack_array(&pk, d->ntasks);
    for (const ens_task_t *t = d->tasks; t; t = t->hh.next)
        pack_task(&pk, t);
    unsigned char head[8 + FRAME_HEAD];
    memcpy(head, SNAP_MAGIC, 8);
    put_le(head + 8, sb.size, 4);
    put_le(head + 12, XXH3_64bits(sb.data, sb.size), 8);
    msgpack_sbuffer_init(file);
    msgpack_sbuffer_write(file, (const char *)head, sizeof(head));
    msgpack_sbuffer_write(file, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

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
    char tmp[ENS_CONF_STR + 32], dst[ENS_CONF_STR + 32];
    snprintf(tmp, sizeof(tmp), "%s/snapshot.tmp", j->dir);
    snprintf(dst, sizeof(dst), "%s/snapshot", j->dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    j->rc = -1;
    if (fd < 0 || write_all(fd, j->file.data, j->file.size) < 0 || fsync(fd) < 0) {
        j->err = errno;
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    if (rename(tmp, dst) < 0 || fsync_dir(j->dir) < 0) {
        j->err = errno;
        return;
    }
    j->rc = 0;
    DIR *dir = opendir(j->dir);
    for (struct dirent *e; dir && (e = readdir(dir));) {
        char *end;
        if (strncmp(e->d_name, "journal.", 8) != 0)
            continue;
        unsigned long long v = strtoull(e->d_name + 8, &end, 10);
        if (*end == '\0' && v <= j->covers) {
            char p[ENS_CONF_STR + 300];
            snprintf(p, sizeof(p), "%s/%s", j->dir, e->d_name);
            unlink(p);
        }
    }
    if (dir)
        closedir(dir);
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
    if (s->fd >= 0) {
        fdatasync(s->fd);
        close(s->fd);
    }
    snap_job_t *j = ens_xcalloc(1, sizeof(*j));
    j->d = d;
    j->covers = s->journal;
    snprintf(j->dir, sizeof(j->dir), "%s", d->conf.state_dir);
    serialize(d, j->covers, &j->file);
    s->journal++;
    s->fd = open_journal(d, s->journal);
    s->dirty = 0;
    s->last_snapshot = ens_now();
    j->req.data = j;
    return j;
}

/* ---- loading ---------------------------------------------------------- */

static const msgpack_object *get(const msgpack_object *m, const char *key)
{
    if (m->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static int is(const msgpack_object *o, msgpack_object_type t)
{
    return o && o->type == t;
}

/* Reads a whole file; NULL (errno set) on failure. */
static char *slurp(const char *path, size_t *len)
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

/* Interns the dictionaries and pushes the rows of one snapshotted task. */
static int restore_task(ens_daemon_t *d, const msgpack_object *o)
{
    const msgpack_object *name = get(o, "name"), *ver = get(o, "version"),
                         *models = get(o, "models"), *labels = get(o, "labels"),
                         *rows = get(o, "rows");
    if (!is(name, MSGPACK_OBJECT_STR) || !is(ver, MSGPACK_OBJECT_POSITIVE_INTEGER) ||
        !is(models, MSGPACK_OBJECT_ARRAY) || !is(labels, MSGPACK_OBJECT_ARRAY) || !rows)
        return -1;
    const msgpack_object *y = get(rows, "y"), *ts = get(rows, "ts"), *x = get(rows, "x");
    size_t nm = models->via.array.size,
           n = y && y->type == MSGPACK_OBJECT_BIN ? y->via.bin.size : 0;
    if (!is(y, MSGPACK_OBJECT_BIN) || !is(ts, MSGPACK_OBJECT_BIN) || !is(x, MSGPACK_OBJECT_BIN) ||
        ts->via.bin.size != 8 * n || x->via.bin.size != n * nm || nm > ENS_MAX_MODELS)
        return -1;
    ens_task_t *t = ens_task_find(d, name->via.str.ptr, name->via.str.size);
    if (!t)
        t = ens_task_create(d, name->via.str.ptr, name->via.str.size);
    if (!t)
        return -1;
    for (size_t j = 0; j < nm; j++) {
        const msgpack_object *m = &models->via.array.ptr[j];
        if (m->type != MSGPACK_OBJECT_STR ||
            ens_window_model(t->window, m->via.str.ptr, m->via.str.size) != (int)j)
            return -1;
    }
    for (size_t l = 0; l < labels->via.array.size; l++) {
        const msgpack_object *s = &labels->via.array.ptr[l];
        if (s->type != MSGPACK_OBJECT_STR ||
            ens_window_label(t->window, s->via.str.ptr, s->via.str.size) != (int)l)
            return -1;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t bits = get_le((const unsigned char *)ts->via.bin.ptr + 8 * i, 8);
        double when;
        memcpy(&when, &bits, 8);
        if (ens_window_push(t->window, (uint8_t)y->via.bin.ptr[i],
                            (const uint8_t *)x->via.bin.ptr + i * nm, nm, when) < 0)
            return -1;
    }
    t->version = ver->via.u64;
    d->state->st.rows_snapshot += n;
    return 0;
}

/* Loads the snapshot file if there is one. */
static int load_snapshot(ens_daemon_t *d, uint64_t *covers, char *err, size_t errlen)
{
    char path[ENS_CONF_STR + 32];
    path_of(d, path, sizeof(path), "snapshot");
    size_t len = 0;
    char *buf = slurp(path, &len);
    *covers = 0;
    if (!buf) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    const unsigned char *p = (const unsigned char *)buf;
    int rc = -1;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1 << 16);
    msgpack_object root;
    size_t off = 0, plen = len >= 20 ? get_le(p + 8, 4) : 0;
    if (len < 20 || memcmp(p, SNAP_MAGIC, 8) != 0 || plen != len - 20) {
        snprintf(err, errlen, "%s: not an ensembled snapshot (bad magic or length)", path);
    } else if (get_le(p + 12, 8) != XXH3_64bits(p + 20, plen)) {
        snprintf(err, errlen, "%s: checksum mismatch: the snapshot is corrupt", path);
    } else if (msgpack_unpack(buf + 20, plen, &off, &zone, &root) != MSGPACK_UNPACK_SUCCESS ||
               !is(get(&root, "format"), MSGPACK_OBJECT_STR) ||
               strncmp(get(&root, "format")->via.str.ptr, SNAP_FORMAT, strlen(SNAP_FORMAT)) != 0) {
        snprintf(err, errlen, "%s: unknown snapshot format", path);
    } else {
        const msgpack_object *tasks = get(&root, "tasks"), *seq = get(&root, "seq"),
                             *jn = get(&root, "journal");
        rc = is(tasks, MSGPACK_OBJECT_ARRAY) && is(seq, MSGPACK_OBJECT_POSITIVE_INTEGER) &&
                     is(jn, MSGPACK_OBJECT_POSITIVE_INTEGER)
                 ? 0
                 : -1;
        for (uint32_t i = 0; rc == 0 && i < tasks->via.array.size; i++)
            rc = restore_task(d, &tasks->via.array.ptr[i]);
        if (rc < 0)
            snprintf(err, errlen, "%s: malformed snapshot content", path);
        else
            d->state->seq = seq->via.u64, *covers = jn->via.u64;
    }
    msgpack_zone_destroy(&zone);
    free(buf);
    return rc;
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
    path_of(d, path, sizeof(path), name);
    size_t len = 0, off = 0;
    char *buf = slurp(path, &len);
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
    path_of(d, from, sizeof(from), "snapshot");
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
    d->state = s;
    uint64_t covers = 0;
    int refused = 0;
    if (load_snapshot(d, &covers, err, errlen) < 0) {
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
    if (s->fd >= 0) {
        fdatasync(s->fd);
        close(s->fd);
    }
    free(s);
    d->state = NULL;
}

void ens_state_abandon(ens_daemon_t *d)
{
    struct ens_state_s *s = d->state;
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s);
    d->state = NULL;
}

const ens_state_stats_t *ens_state_stats(const ens_daemon_t *d)
{
    static const ens_state_stats_t none;
    return d->state ? &d->state->st : &none;
}
