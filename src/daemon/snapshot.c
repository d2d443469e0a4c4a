/* snapshot.c - the snapshot file: every task's window, dictionaries and
 * version in one checksummed MessagePack image (docs/persistence.md). */
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

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

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
    ens__pack_str(pk, "name", 4);
    ens__pack_str(pk, t->name, strlen(t->name));
    ens__pack_str(pk, "version", 7);
    msgpack_pack_uint64(pk, t->version);
    ens__pack_str(pk, "models", 6);
    msgpack_pack_array(pk, nm);
    for (size_t j = 0; j < nm; j++) {
        const char *m = ens_window_model_name(w, (int)j);
        ens__pack_str(pk, m, strlen(m));
    }
    ens__pack_str(pk, "labels", 6);
    msgpack_pack_array(pk, nl);
    for (size_t l = 0; l < nl; l++) {
        const char *s = ens_window_label_name(w, (int)l);
        ens__pack_str(pk, s, strlen(s));
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
    ens__pack_str(pk, "rows", 4);
    msgpack_pack_map(pk, 3);
    ens__pack_str(pk, "y", 1);
    pack_bin(pk, y, n);
    ens__pack_str(pk, "ts", 2);
    pack_bin(pk, ts, 8 * n);
    ens__pack_str(pk, "x", 1);
    pack_bin(pk, x, n * nm);
    free(y);
    free(x);
    free(ts);
}

void ens__snapshot_serialize(ens_daemon_t *d, uint64_t covers, msgpack_sbuffer *file)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    ens__pack_str(&pk, "format", 6);
    ens__pack_str(&pk, SNAP_FORMAT, strlen(SNAP_FORMAT));
    ens__pack_str(&pk, "seq", 3);
    msgpack_pack_uint64(&pk, d->state->seq);
    ens__pack_str(&pk, "journal", 7);
    msgpack_pack_uint64(&pk, covers);
    ens__pack_str(&pk, "tasks", 5);
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

int ens__snapshot_write(const char *dir, const msgpack_sbuffer *file, uint64_t covers)
{
    char tmp[ENS_CONF_STR + 32], dst[ENS_CONF_STR + 32];
    snprintf(tmp, sizeof(tmp), "%s/snapshot.tmp", dir);
    snprintf(dst, sizeof(dst), "%s/snapshot", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || ens__write_all(fd, file->data, file->size) < 0 || fsync(fd) < 0) {
        int err = errno ? errno : EIO;
        if (fd >= 0)
            close(fd);
        return err;
    }
    close(fd);
    if (rename(tmp, dst) < 0 || fsync_dir(dir) < 0)
        return errno ? errno : EIO;
    /* Durable: the journals it covers are no longer needed. */
    DIR *dp = opendir(dir);
    for (struct dirent *e; dp && (e = readdir(dp));) {
        char *end;
        if (strncmp(e->d_name, "journal.", 8) != 0)
            continue;
        unsigned long long v = strtoull(e->d_name + 8, &end, 10);
        if (*end == '\0' && v <= covers) {
            char p[ENS_CONF_STR + 300];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (dp)
        closedir(dp);
    return 0;
}

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

int ens__snapshot_load(ens_daemon_t *d, uint64_t *covers, char *err, size_t errlen)
{
    char path[ENS_CONF_STR + 32];
    ens__state_path(d, path, sizeof(path), "snapshot");
    size_t len = 0;
    char *buf = ens__slurp(path, &len);
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
