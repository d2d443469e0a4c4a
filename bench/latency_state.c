/* bench/latency_state.c - writes a state directory whose snapshot holds
 * TASKS tasks of MODELS models and ROWS rows each, for bench/latency.py.
 *
 * Filling a daemon that large through ZeroMQ takes a quarter of an hour;
 * the daemon restores this file in seconds instead, through the same
 * reader that restores its own snapshots (docs/persistence.md). The file is
 * what the daemon writes: a HEADER, per task its TASK, MODEL and LABEL
 * records and a VERSION, then its rows as BLOCKs. Answers are drawn so that
 * selection has something to find: three labels; model j of a task is right
 * with a probability between 0.45 and 0.9 and otherwise answers one of the
 * labels at random (one answer in 50 is "?"). Row times are the last ROWS
 * milliseconds before now, so no age limit expires them at once. With
 * ASKED below MODELS, each row holds the answers of ASKED models drawn at
 * random, the others missing, as rows joined from queries asking only some
 * models are.
 *
 * Usage: latency_state DIR [TASKS MODELS ROWS [ASKED]]   (64 256 50000 MODELS)
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ensembled/journal.h"

#define LABELS 3
#define BLOCK_ROWS 5000

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    /* xorshift64*: fast, and reproducible from the fixed seed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static int put(FILE *f, const ens_jrec_t *r)
{
    static uint8_t *buf;
    static size_t cap;
    size_t n = ens_jrec_size(r);
    if (n == 0)
        return -1;
    if (n > cap) {
        free(buf);
        cap = n;
        buf = malloc(cap);
        if (!buf)
            return -1;
    }
    ens_jrec_encode(r, buf, cap);
    return fwrite(buf, 1, n, f) == n ? 0 : -1;
}

static int put_name(FILE *f, ens_jrec_kind_t kind, uint32_t task, uint32_t id, const char *name)
{
    ens_jrec_t r = {.kind = kind};
    r.dict.task = task;
    r.dict.id = id;
    r.dict.name = name;
    r.dict.len = strlen(name);
    return put(f, &r);
}

/* The task's names and version. */
static int put_task(FILE *f, uint32_t task, uint32_t models)
{
    char name[64];
    snprintf(name, sizeof(name), "task%02u", task);
    int rc = put_name(f, ENS_JREC_TASK, task, 0, name);
    for (uint32_t l = 0; l < LABELS; l++) {
        snprintf(name, sizeof(name), "%c", 'A' + l);
        rc |= put_name(f, ENS_JREC_LABEL, task, l, name);
    }
    for (uint32_t m = 0; m < models; m++) {
        snprintf(name, sizeof(name), "model%03u", m);
        rc |= put_name(f, ENS_JREC_MODEL, task, m, name);
    }
    ens_jrec_t v = {.kind = ENS_JREC_VERSION};
    v.version.task = task;
    v.version.version = 1;
    return rc | put(f, &v);
}

/* Leaves `asked` answers of the row's `models` (drawn at random), the
 * others missing. */
static void keep_asked(uint8_t *x, uint32_t models, uint32_t asked)
{
    uint8_t keep[ENS_MAX_MODELS];
    memset(keep, 0, models);
    for (uint32_t k = 0; k < asked;) {
        uint32_t m = rnd() % models;
        k += !keep[m];
        keep[m] = 1;
    }
    for (uint32_t m = 0; m < models; m++)
        if (!keep[m])
            x[m] = ENS_SYM_MISSING;
}

/* Rows [from, from + n) of a task as one BLOCK. */
static int put_block(FILE *f, uint32_t task, uint32_t models, uint32_t asked, size_t from, size_t n,
                     size_t rows, const uint32_t *skill, double now, uint8_t *y, uint8_t *ts,
                     uint8_t *x)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = (uint8_t)(rnd() % LABELS);
        double t = now - (double)(rows - from - i) * 0.001;
        uint64_t bits;
        memcpy(&bits, &t, 8);
        for (int b = 0; b < 8; b++)
            ts[8 * i + (size_t)b] = (uint8_t)(bits >> (8 * b));
        for (uint32_t m = 0; m < models; m++) {
            uint32_t r = rnd();
            uint8_t a = (r & 0xffff) < skill[m] ? y[i] : (uint8_t)((r >> 16) % LABELS);
            x[i * models + m] = (r >> 24) < 5 ? ENS_SYM_ABSTAIN : a;
        }
        if (asked < models)
            keep_asked(x + i * models, models, asked);
    }
    ens_jrec_t r = {.kind = ENS_JREC_BLOCK};
    r.block.task = task;
    r.block.nrows = n;
    r.block.nmodels = models;
    r.block.y = y;
    r.block.ts = ts;
    r.block.x = x;
    return put(f, &r);
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 5 && argc != 6) {
        fprintf(stderr, "usage: latency_state DIR [TASKS MODELS ROWS [ASKED]]\n");
        return 2;
    }
    uint32_t tasks = argc >= 5 ? (uint32_t)atoi(argv[2]) : 64;
    uint32_t models = argc >= 5 ? (uint32_t)atoi(argv[3]) : 256;
    size_t rows = argc >= 5 ? (size_t)atol(argv[4]) : 50000;
    uint32_t asked = argc == 6 ? (uint32_t)atoi(argv[5]) : models;
    if (tasks == 0 || models == 0 || models > ENS_MAX_MODELS || rows == 0 || asked == 0 ||
        asked > models) {
        fprintf(stderr,
                "latency_state: TASKS, ROWS >= 1, 1 <= MODELS <= %d and 1 <= ASKED <= MODELS\n",
                ENS_MAX_MODELS);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/snapshot", argv[1]);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "latency_state: %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    ens_jrec_t h = {.kind = ENS_JREC_HEADER};
    h.header.format = ENS_JREC_FORMAT;
    h.header.seq = 0; /* no journal row follows */
    h.header.journal = 0;
    int rc = put(f, &h);
    for (uint32_t t = 0; t < tasks; t++)
        rc |= put_task(f, t, models);
    uint8_t *y = malloc(BLOCK_ROWS), *ts = malloc(8 * BLOCK_ROWS);
    uint8_t *x = malloc((size_t)BLOCK_ROWS * models);
    uint32_t *skill = malloc(sizeof(uint32_t) * models);
    if (!y || !ts || !x || !skill)
        return 1;
    for (uint32_t t = 0; t < tasks && rc == 0; t++) {
        for (uint32_t m = 0; m < models; m++)
            skill[m] = 29491 + rnd() % 29492; /* 0.45 .. 0.9 of 65536 */
        for (size_t from = 0; from < rows && rc == 0; from += BLOCK_ROWS) {
            size_t n = rows - from < BLOCK_ROWS ? rows - from : BLOCK_ROWS;
            rc = put_block(f, t, models, asked, from, n, rows, skill,
                           (double)now.tv_sec + (double)now.tv_nsec * 1e-9, y, ts, x);
        }
    }
    if (fclose(f) != 0 || rc != 0) {
        fprintf(stderr, "latency_state: writing %s failed\n", path);
        return 1;
    }
    printf("latency_state: %s: %u tasks x %u models x %zu rows, %u answers a row\n", path, tasks,
           models, rows, asked);
    free(y);
    free(ts);
    free(x);
    free(skill);
    return 0;
}
