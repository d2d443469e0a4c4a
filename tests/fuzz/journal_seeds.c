/* journal_seeds.c - writes the seed corpus of fuzz_journal.
 *
 *   journal_seeds DIR      (DIR: tests/fuzz/corpus/journal)
 *
 * The seeds are made by the codec's own encoder: a journal and a snapshot
 * of every kind, names with NUL bytes, dense and sparse rows at the model
 * limit, rows and a BLOCK with costs, and the same images damaged the
 * ways the reader must survive (a flipped byte, a half record, a torn
 * tail, a length over the limit). A few verified frames whose payload
 * breaks a rule are framed here by hand, so the fuzzer starts with the
 * parser's refusals reachable. The s_* seeds are the same images as
 * fuzz_journal's chunk lists, whose frames the target checksums itself:
 * the fuzzer mutates their payloads freely. The files are checked in;
 * rerun this after changing the format.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ensembled/journal.h"

typedef struct {
    uint8_t p[8192];
    size_t n;
} img_t;

static void add(img_t *m, const ens_jrec_t *r)
{
    size_t n = ens_jrec_encode(r, m->p + m->n, sizeof(m->p) - m->n);
    if (n == 0 || m->n + n > sizeof(m->p)) {
        fprintf(stderr, "journal_seeds: record of kind %d does not fit\n", (int)r->kind);
        exit(1);
    }
    m->n += n;
}

/* A verified frame around an arbitrary payload (journal.h's layout). */
static void add_raw(img_t *m, const uint8_t *payload, size_t n)
{
    uint8_t *f = m->p + m->n;
    memcpy(f, ENS_JREC_MAGIC, 4);
    for (int i = 0; i < 4; i++)
        f[12 + i] = (uint8_t)(n >> (8 * i));
    memcpy(f + 16, payload, n);
    uint64_t h = XXH3_64bits(f + 12, 4 + n);
    for (int i = 0; i < 8; i++)
        f[4 + i] = (uint8_t)(h >> (8 * i));
    m->n += 16 + n;
}

static void dict(img_t *m, ens_jrec_kind_t kind, uint32_t task, uint32_t id, const char *name,
                 size_t len)
{
    ens_jrec_t r = {.kind = kind};
    r.dict.task = task;
    r.dict.id = id;
    r.dict.name = name;
    r.dict.len = len;
    add(m, &r);
}

static void row(img_t *m, uint64_t seq, uint8_t y, const uint8_t *x, size_t nx)
{
    ens_jrec_t r = {.kind = ENS_JREC_ROW};
    r.row.seq = seq;
    r.row.task = 0;
    r.row.ts = 1700000000.0 + (double)seq;
    r.row.y = y;
    r.row.x = x;
    r.row.nx = nx;
    add(m, &r);
}

static void row_costs(img_t *m, uint64_t seq, uint8_t y, const uint8_t *x, size_t nx,
                      const double *cost)
{
    ens_jrec_t r = {.kind = ENS_JREC_ROW};
    r.row.seq = seq;
    r.row.ts = 1700000000.0 + (double)seq;
    r.row.y = y;
    r.row.x = x;
    r.row.nx = nx;
    r.row.cost = cost;
    add(m, &r);
}

static void version(img_t *m, uint32_t task, uint64_t v)
{
    ens_jrec_t r = {.kind = ENS_JREC_VERSION};
    r.version.task = task;
    r.version.version = v;
    add(m, &r);
}

static void save(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* A journal: dictionaries, then rows dense, sparse and empty, and a
 * publication. The middle record is m->p[*mid .. *mid_end). */
static void journal(img_t *m, size_t *mid, size_t *mid_end)
{
    dict(m, ENS_JREC_TASK, 0, 0, "medqa", 5);
    dict(m, ENS_JREC_MODEL, 0, 0, "gpt\0x", 5);
    dict(m, ENS_JREC_MODEL, 0, 1, "m", 1);
    dict(m, ENS_JREC_MODEL, 0, 2, "llama-70b", 9);
    dict(m, ENS_JREC_LABEL, 0, 0, "A", 1);
    dict(m, ENS_JREC_LABEL, 0, 1, "B", 1);
    dict(m, ENS_JREC_LABEL, 0, 253, "\0", 1);
    const uint8_t x1[] = {0, 1, ENS_SYM_ABSTAIN}, x2[] = {ENS_SYM_MISSING, 1, ENS_SYM_MISSING};
    row(m, 1, 0, x1, 3);
    *mid = m->n;
    row(m, 2, 1, x2, 3);
    *mid_end = m->n;
    row(m, 3, 253, NULL, 0);
    uint8_t wide[ENS_MAX_MODELS];
    memset(wide, ENS_SYM_MISSING, sizeof(wide));
    wide[0] = 1;
    wide[ENS_MAX_MODELS - 1] = 0;
    row(m, 4, 1, wide, sizeof(wide)); /* sparse */
    /* Rows whose answers carry costs, dense and sparse. */
    static double cost[ENS_MAX_MODELS];
    for (size_t j = 0; j < ENS_MAX_MODELS; j++)
        cost[j] = NAN;
    cost[0] = 0.25;
    cost[1] = 0.01;
    row_costs(m, 5, 0, x1, 3, cost);
    cost[ENS_MAX_MODELS - 1] = 3.5;
    row_costs(m, 6, 1, wide, sizeof(wide), cost);
    version(m, 0, 17);
    /* An open-answer task: its ANSWERS record, class labels, one row. */
    dict(m, ENS_JREC_TASK, 2, 0, "open", 4);
    ens_jrec_t a = {.kind = ENS_JREC_ANSWERS};
    a.answers.task = 2;
    a.answers.answers = 1;
    a.answers.normalize = 1;
    add(m, &a);
    dict(m, ENS_JREC_LABEL, 2, 0, "c0", 2);
    dict(m, ENS_JREC_LABEL, 2, 1, "none", 4);
}

/* A snapshot: header, dictionaries, version, and a BLOCK of n rows of two
 * models (n <= 256). */
static void snapshot(img_t *m, size_t n)
{
    ens_jrec_t h = {.kind = ENS_JREC_HEADER};
    h.header.format = ENS_JREC_FORMAT;
    h.header.seq = 40;
    h.header.journal = 3;
    add(m, &h);
    dict(m, ENS_JREC_TASK, 1, 0, "t", 1);
    dict(m, ENS_JREC_MODEL, 1, 0, "a", 1);
    dict(m, ENS_JREC_MODEL, 1, 1, "b", 1);
    dict(m, ENS_JREC_LABEL, 1, 0, "yes", 3);
    dict(m, ENS_JREC_LABEL, 1, 1, "no", 2);
    version(m, 1, 5);
    static uint8_t y[256], ts[8 * 256], x[2 * 256];
    for (size_t i = 0; i < n; i++) {
        y[i] = (uint8_t)(i % 2);
        double v = 1700000000.0 + (double)i;
        uint64_t bits;
        memcpy(&bits, &v, 8);
        for (int b = 0; b < 8; b++)
            ts[8 * i + (size_t)b] = (uint8_t)(bits >> (8 * b));
        x[2 * i] = (uint8_t)(i % 3 == 0 ? ENS_SYM_ABSTAIN : i % 2);
        x[2 * i + 1] = (uint8_t)(i % 4 == 0 ? ENS_SYM_MISSING : (i + 1) % 2);
    }
    ens_jrec_t b = {.kind = ENS_JREC_BLOCK};
    b.block.task = 1;
    b.block.nrows = n;
    b.block.nmodels = 2;
    b.block.y = y;
    b.block.ts = ts;
    b.block.x = x;
    add(m, &b);
    /* Its first rows again, model 0's answers with costs (some none). */
    static double cost[2 * 16];
    size_t k = n < 16 ? n : 16;
    for (size_t i = 0; i < k; i++) {
        cost[2 * i] = i % 3 == 1 ? NAN : 0.125 * (double)i;
        cost[2 * i + 1] = NAN;
    }
    b.block.nrows = k;
    b.block.cost = cost;
    add(m, &b);
}

/* Verified frames whose payloads the reader must refuse, one rule each,
 * then a good record. */
static void refused(img_t *m)
{
    const uint8_t kind[] = {0x09, 0};
    const uint8_t empty_name[] = {0x02, 0, 0, 0, 0, 0, 0};
    const uint8_t label_254[] = {0x04, 0, 0, 0, 0, 254, 0, 0, 0, 1, 0, 'l'};
    const uint8_t version_short[] = {0x06, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    add_raw(m, kind, sizeof(kind));
    add_raw(m, empty_name, sizeof(empty_name));
    add_raw(m, label_254, sizeof(label_254));
    add_raw(m, version_short, sizeof(version_short));
    /* ROW: kind, seq, task, ts, then y at 21, form at 22, count at 23. */
    uint8_t r[31] = {0x05, 1};
    r[21] = ENS_SYM_ABSTAIN;
    add_raw(m, r, 25);
    r[21] = 0;
    r[22] = 1; /* sparse, two pairs, models 5 then 3 */
    r[23] = 2;
    r[25] = 5;
    r[27] = 1;
    r[28] = 3;
    r[30] = 1;
    add_raw(m, r, 31);
    /* Dense, one answer, costs bit: a cost 7 bytes short, then all none. */
    uint8_t c[34] = {0x05, 1};
    c[22] = 4;
    c[23] = 1;
    add_raw(m, c, 33);
    c[32] = 0xF8;
    c[33] = 0x7F;
    add_raw(m, c, 34);
    version(m, 0, 1);
}

/* The same image as fuzz_journal's chunk list ('S', then op, u16 length,
 * payload per frame): every frame of m becomes an op-0 chunk, and ops[i],
 * when not 0, replaces the op of chunk i (1 raw, 2 + 4 * c cut to c/64,
 * 3 wrong checksum). */
static void save_chunks(const char *dir, const char *name, const img_t *m, const uint8_t *ops,
                        size_t nops)
{
    static uint8_t out[sizeof(m->p) + 1];
    size_t n = 0, i = 0;
    out[n++] = 'S';
    for (size_t at = 0; at + ENS_JREC_HEAD <= m->n; i++) {
        size_t len = (size_t)m->p[at + 12] | (size_t)m->p[at + 13] << 8;
        out[n++] = i < nops ? ops[i] : 0;
        out[n++] = (uint8_t)len;
        out[n++] = (uint8_t)(len >> 8);
        memcpy(out + n, m->p + at + ENS_JREC_HEAD, len);
        n += len;
        at += ENS_JREC_HEAD + len;
    }
    save(dir, name, out, n);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: journal_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    static img_t j, m;
    size_t mid, mid_end;
    journal(&j, &mid, &mid_end);
    save(dir, "journal", j.p, j.n);
    save_chunks(dir, "s_journal", &j, NULL, 0);
    const uint8_t damage[] = {0, 1, 2 + 4 * 32, 3, 0, 2 + 4 * 5};
    save_chunks(dir, "s_damaged", &j, damage, sizeof(damage));

    m = j;
    m.p[mid + 20] ^= 0x40; /* in the middle record's payload */
    save(dir, "flipped_byte", m.p, m.n);
    /* 20 bytes of the middle record (a write cut by a full disk), then the
     * records written after it. */
    m = j;
    memmove(m.p + mid + 20, j.p + mid_end, j.n - mid_end);
    save(dir, "half_record", m.p, j.n - (mid_end - mid - 20));
    save(dir, "torn_tail", j.p, j.n - 7);

    m.n = 0;
    snapshot(&m, 12);
    save(dir, "snapshot", m.p, m.n);
    save_chunks(dir, "s_snapshot", &m, NULL, 0);
    /* 17 + 200 * 11 bytes of BLOCK: over fuzz_journal's 2048-byte limit. */
    m.n = 0;
    snapshot(&m, 200);
    save(dir, "snapshot_over_limit", m.p, m.n);

    m.n = 0;
    refused(&m);
    save(dir, "refused", m.p, m.n);
    save_chunks(dir, "s_refused", &m, NULL, 0);
    const uint8_t magics[] = "\xE5JRC\xE5JRC\0\0\0\0\0\0\0\0\xFF\xFF\xFF\xFF\xE5JR";
    save(dir, "magics", magics, sizeof(magics) - 1);
    return 0;
}
