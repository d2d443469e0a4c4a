/* state_restore.c - reading the snapshot and the journals back (see
 * state.h).
 *
 * Each file is read with its own id maps: a TASK, MODEL or LABEL record
 * says which name an id of that file stands for, and the name is interned
 * into the live task (whose own ids may differ). A row or block whose ids
 * the file never named (their record was damaged) is dropped and counted;
 * everything else in the file is kept. Restoring creates tasks and models
 * whatever ingest's caps say: caps limit what ingest adds, never what was
 * saved.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ensembled/xalloc.h"
#include "log.h"
#include "state_int.h"

/* Ids of one task in one file -> the live task's ids (-1: never named). */
typedef struct {
    ens_task_t *t;
    int16_t model[ENS_MAX_MODELS];
    int16_t label[ENS_MAX_LABELS];
} fmap_t;

typedef struct {
    ens_state_t *s;
    fmap_t **maps; /* by the file's task id */
    size_t nmaps;
    uint64_t skip_upto; /* journal rows with seq <= this are in the snapshot */
    uint64_t *rows;     /* the counter rows restored go to */
    uint64_t dropped;   /* records that could not be applied */
} replay_t;

static void replay_free(replay_t *rp)
{
    for (size_t i = 0; i < rp->nmaps; i++)
        free(rp->maps[i]);
    free(rp->maps);
    rp->maps = NULL;
    rp->nmaps = 0;
}

static fmap_t *fmap(const replay_t *rp, uint32_t task)
{
    return task < rp->nmaps ? rp->maps[task] : NULL;
}

static int on_task(replay_t *rp, const ens_jrec_t *r)
{
    if (r->dict.task >= rp->nmaps) {
        size_t n = r->dict.task + 1;
        rp->maps = ens_xreallocarray(rp->maps, n, sizeof(fmap_t *));
        memset(rp->maps + rp->nmaps, 0, (n - rp->nmaps) * sizeof(fmap_t *));
        rp->nmaps = n;
    }
    fmap_t *m = rp->maps[r->dict.task];
    if (!m)
        m = rp->maps[r->dict.task] = ens_xmalloc(sizeof(fmap_t));
    memset(m->model, 0xff, sizeof(m->model));
    memset(m->label, 0xff, sizeof(m->label));
    m->t = ens_tasks_intern(rp->s->tasks, r->dict.name, r->dict.len);
    /* Its rows are choice rows unless an ANSWERS record follows. */
    ens_task_restore_answers(m->t, ENS_ANSWERS_CHOICE, ENS_NORM_EXACT);
    return 0;
}

static int on_name(replay_t *rp, const ens_jrec_t *r)
{
    fmap_t *m = fmap(rp, r->dict.task);
    if (!m)
        return -1;
    int id;
    if (r->kind == ENS_JREC_MODEL) {
        id = ens_task_model(m->t, r->dict.name, r->dict.len);
        if (id < 0)
            return -1;
        m->model[r->dict.id] = (int16_t)id;
    } else {
        id = ens_task_label(m->t, r->dict.name, r->dict.len);
        if (id < 0 || id == ENS_SYM_ABSTAIN)
            return -1;
        m->label[r->dict.id] = (int16_t)id;
    }
    return 0;
}

/* Translates a row of file ids into live ids: 0, or -1 if an id was never
 * named in this file. */
static int translate(const fmap_t *m, uint8_t y, const uint8_t *x, size_t nx, uint8_t *ly,
                     uint8_t *lx, size_t *lnx)
{
    if (m->label[y] < 0)
        return -1;
    *ly = (uint8_t)m->label[y];
    memset(lx, ENS_SYM_MISSING, ENS_MAX_MODELS);
    *lnx = 0;
    for (size_t j = 0; j < nx; j++) {
        if (x[j] == ENS_SYM_MISSING)
            continue;
        int w = m->model[j];
        int v = x[j] == ENS_SYM_ABSTAIN ? ENS_SYM_ABSTAIN : m->label[x[j]];
        if (w < 0 || v < 0)
            return -1;
        lx[w] = (uint8_t)v;
        if ((size_t)w + 1 > *lnx)
            *lnx = (size_t)w + 1;
    }
    return 0;
}

/* Gives the newest row of m's task its saved costs (cost[j] of file model
 * j < nx, NaN: none), through the window's cost path, so that each model's
 * cost sum and count come back as they were. */
static void restore_costs(const fmap_t *m, const uint8_t *x, size_t nx, const double *cost)
{
    ens_window_t *w = m->t->window;
    size_t last = ens_window_rows(w) - 1;
    for (size_t j = 0; j < nx; j++)
        if (x[j] != ENS_SYM_MISSING && !isnan(cost[j]))
            ens_window_set_cost(w, last, (size_t)m->model[j], cost[j]);
}

static int push(replay_t *rp, const fmap_t *m, uint8_t y, const uint8_t *x, size_t nx, double ts,
                int ordinary, const double *cost)
{
    uint8_t ly, lx[ENS_MAX_MODELS];
    size_t lnx;
    if (translate(m, y, x, nx, &ly, lx, &lnx) < 0 ||
        ens_task_restore_row(m->t, ly, lx, lnx, ts, !ordinary) < 0)
        return -1;
    if (cost)
        restore_costs(m, x, nx, cost);
    (*rp->rows)++;
    return 0;
}

static int on_row(replay_t *rp, const ens_jrec_t *r)
{
    if (r->row.seq > rp->s->seq)
        rp->s->seq = r->row.seq;
    if (r->row.seq <= rp->skip_upto)
        return 0; /* already in the snapshot */
    const fmap_t *m = fmap(rp, r->row.task);
    return m ? push(rp, m, r->row.y, r->row.x, r->row.nx, r->row.ts, r->row.ordinary, r->row.cost)
             : -1;
}

static int on_block(replay_t *rp, const ens_jrec_t *r)
{
    const fmap_t *m = fmap(rp, r->block.task);
    if (!m)
        return -1;
    int rc = 0;
    int costs = r->block.cost_models != NULL;
    double cost[ENS_MAX_MODELS];
    size_t k = 0;
    for (uint64_t i = 0; i < r->block.nrows; i++) {
        if (costs)
            ens_jrec_block_costs(r, i, &k, cost);
        rc |= push(rp, m, r->block.y[i], r->block.x + i * r->block.nmodels, r->block.nmodels,
                   ens_jrec_block_ts(r, i), r->block.ordinary && r->block.ordinary[i],
                   costs ? cost : NULL);
    }
    return rc;
}

static int apply(replay_t *rp, const ens_jrec_t *r)
{
    const fmap_t *m;
    switch (r->kind) {
    case ENS_JREC_TASK:
        return on_task(rp, r);
    case ENS_JREC_MODEL:
    case ENS_JREC_LABEL:
        return on_name(rp, r);
    case ENS_JREC_ROW:
        return on_row(rp, r);
    case ENS_JREC_BLOCK:
        return on_block(rp, r);
    case ENS_JREC_ANSWERS:
        m = fmap(rp, r->answers.task);
        if (!m)
            return -1;
        ens_task_restore_answers(m->t, (ens_answers_t)r->answers.answers,
                                 (ens_norm_t)r->answers.normalize);
        return 0;
    case ENS_JREC_QUERY:
        m = fmap(rp, r->dict.task);
        if (!m)
            return -1;
        ens_task_restore_query(m->t, r->dict.name, r->dict.len, ens_mono());
        return 0;
    case ENS_JREC_VERSION:
        m = fmap(rp, r->version.task);
        if (!m)
            return -1;
        if (rp->s->hooks.version)
            rp->s->hooks.version(rp->s->hooks.ud, m->t, r->version.version);
        return 0;
    default:
        return -1; /* a HEADER inside a file */
    }
}

/* Applies every good record of a file image from the reader's position. */
static void replay_image(replay_t *rp, ens_jreader_t *rd, const char *path)
{
    ens_jrec_t r;
    while (ens_jreader_next(rd, &r))
        rp->dropped += apply(rp, &r) < 0;
    ens_state_stats_t *st = &rp->s->st;
    st->corrupt_records += rd->st.corrupt + rp->dropped;
    if (rd->st.corrupt || rp->dropped)
        ENS_LOG(ERR,
                "state: %s: skipped %llu damaged regions (%llu bytes) and %llu unusable records",
                path, (unsigned long long)rd->st.corrupt, (unsigned long long)rd->st.skipped,
                (unsigned long long)rp->dropped);
    rp->dropped = 0;
    replay_free(rp);
}

/* The snapshot: 0 (none, or loaded), or -1 with err when it is not one this
 * daemon can read. */
static int load_snapshot(ens_state_t *s, uint64_t *covers, char *err, size_t errlen)
{
    char path[ENS_CONF_STR + 32];
    ens__state_path(s, path, sizeof(path), "snapshot");
    size_t len = 0;
    uint8_t *buf = ens__slurp(path, &len);
    *covers = 0;
    if (!buf) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    ens_jreader_t rd;
    ens_jrec_t h;
    ens_jreader_init(&rd, buf, len, len);
    int rc = -1;
    if (len >= 8 && memcmp(buf, "ENSSNAP1", 8) == 0) {
        snprintf(err, errlen,
                 "%s: a snapshot of ensembled 0.1.0's format, which this version does not read",
                 path);
    } else if (!ens_jreader_next(&rd, &h) || h.kind != ENS_JREC_HEADER || rd.st.last_off != 0) {
        snprintf(err, errlen, "%s: not an ensembled snapshot of this version", path);
    } else if (h.header.format != ENS_JREC_FORMAT) {
        snprintf(err, errlen, "%s: snapshot format %u, this ensembled reads %u", path,
                 h.header.format, ENS_JREC_FORMAT);
    } else {
        replay_t rp = {.s = s, .rows = &s->st.rows_snapshot};
        s->seq = h.header.seq;
        *covers = h.header.journal;
        replay_image(&rp, &rd, path);
        rc = 0;
    }
    free(buf);
    return rc;
}

/* Journal numbers present in the directory, sorted; returns the count. */
static size_t list_journals(const ens_state_t *s, uint64_t **out)
{
    DIR *dir = opendir(s->conf->state_dir);
    size_t n = 0, cap = 0;
    *out = NULL;
    for (struct dirent *e; dir && (e = readdir(dir));) {
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
    if (dir)
        closedir(dir);
    for (size_t i = 1; i < n; i++)
        for (size_t k = i; k > 0 && (*out)[k - 1] > (*out)[k]; k--) {
            uint64_t t = (*out)[k];
            (*out)[k] = (*out)[k - 1];
            (*out)[k - 1] = t;
        }
    return n;
}

/* Replays one journal; a torn tail (bytes after the last good record) is
 * cut off so that new records never follow garbage. */
static void replay_journal(ens_state_t *s, uint64_t n, uint64_t skip_upto)
{
    char path[ENS_CONF_STR + 64], name[64];
    snprintf(name, sizeof(name), "journal.%llu", (unsigned long long)n);
    ens__state_path(s, path, sizeof(path), name);
    size_t len = 0;
    uint8_t *buf = ens__slurp(path, &len);
    if (!buf)
        return;
    ens_jreader_t rd;
    /* A journal record is at most a 64 KiB name or a row of 1024 answers
     * and their costs (under 10 KiB): a larger length is damage, and
     * believing it would make every magic met while resynchronising cost
     * a hash that long. */
    ens_jreader_init(&rd, buf, len, 1u << 17);
    replay_t rp = {.s = s, .skip_upto = skip_upto, .rows = &s->st.rows_replayed};
    replay_image(&rp, &rd, path);
    if (rd.st.good_end < len) {
        s->st.torn_records++;
        ENS_LOG(WARNING, "state: %s: discarding a torn tail of %zu bytes at offset %zu", path,
                len - rd.st.good_end, rd.st.good_end);
        if (truncate(path, (off_t)rd.st.good_end) < 0)
            ENS_LOG(ERR, "state: cannot truncate %s: %s", path, strerror(errno));
    }
    free(buf);
}

int ens__state_restore(ens_state_t *s, uint64_t *last, char *err, size_t errlen)
{
    uint64_t covers = 0, *js = NULL;
    if (load_snapshot(s, &covers, err, errlen) < 0)
        return -1;
    uint64_t skip = s->seq;
    size_t nj = list_journals(s, &js);
    *last = covers;
    for (size_t i = 0; i < nj; i++) {
        if (js[i] > covers)
            replay_journal(s, js[i], skip);
        if (js[i] > *last)
            *last = js[i];
    }
    free(js);
    double mono = ens_mono();
    for (uint32_t i = 0; i < ens_tasks_count(s->tasks); i++)
        ens_task_restored(ens_tasks_get(s->tasks, i), mono);
    return 0;
}

/* Renames <dir>/<name> to <name>.refused-<stamp>. */
static void aside(const ens_state_t *s, const char *name, long long stamp)
{
    char from[ENS_CONF_STR + 300], to[ENS_CONF_STR + 340];
    ens__state_path(s, from, sizeof(from), name);
    snprintf(to, sizeof(to), "%s.refused-%lld", from, stamp);
    if (rename(from, to) == 0)
        ENS_LOG(WARNING, "state: refused %s moved to %s", name, to);
}

void ens__state_set_aside(ens_state_t *s)
{
    long long stamp = (long long)ens_now();
    uint64_t *js = NULL;
    size_t nj = list_journals(s, &js);
    aside(s, "snapshot", stamp);
    for (size_t i = 0; i < nj; i++) {
        char name[64];
        snprintf(name, sizeof(name), "journal.%llu", (unsigned long long)js[i]);
        aside(s, name, stamp);
    }
    free(js);
    ENS_LOG(WARNING, "state: starting empty as asked (--discard-state)");
}

uint8_t *ens__slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0, got;
    uint8_t *buf = ens_xmalloc(cap);
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = ens_xreallocarray(buf, cap *= 2, 1);
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    *len = n;
    return buf;
}
