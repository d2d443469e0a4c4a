/* journal.h - the persistence record codec: one framing and one set of
 * records for the journal and the snapshot file.
 *
 * Records live in id space: a task, a model of a task and a label of a task
 * are each named once (TASK, MODEL, LABEL records, names as length-prefixed
 * bytes, so NUL is an ordinary byte), and rows carry only ids. A journal is a
 * sequence of frames; a snapshot file is a HEADER record followed by the
 * dictionaries, a VERSION per task and BLOCKs of rows. The codec is pure:
 * no I/O, no allocation, no global state.
 *
 * Frame (all integers little endian; offsets in bytes):
 *
 *   0   4   magic  E5 4A 52 43  ("\xE5JRC")
 *   4   8   check  XXH3_64bits(bytes 12 .. 16+len), i.e. of the length
 *               field followed by the payload
 *   12  4   len    payload length
 *   16  len payload
 *
 * The checksum comes before the length so that what it covers (length and
 * payload) is one contiguous range, hashed in one call. The magic lets a
 * reader that met a damaged frame scan forward to the next frame; only a
 * frame whose checksum verifies is believed, so a magic inside a payload or
 * in garbage is not taken for a record.
 *
 * Payload: one kind byte, then the kind's fields in this order, nothing
 * after them (u8/u16/u32/u64 little endian, f64 as the u64 of its IEEE-754
 * bit pattern, name = u16 length 1..65535 then that many bytes):
 *
 *   HEADER  01  format u32, seq u64, journal u64                  21 bytes
 *   TASK    02  task u32, name                                7 + n bytes
 *   MODEL   03  task u32, id u32 (< ENS_MAX_MODELS), name    11 + n bytes
 *   LABEL   04  task u32, id u32 (< ENS_MAX_LABELS), name    11 + n bytes
 *   ROW     05  seq u64, task u32, ts f64, y u8, form u8, count u16, then
 *               form 0 (dense): count bytes x[0..count)
 *               form 1 (sparse): count pairs (model u16, symbol u8)
 *               form | 2: the same, the row's query an ordinary one
 *               form | 4: then the costs: f64 per answer stored, in
 *                     model order (NaN where the answer carried none)
 *   VERSION 06  task u32, version u64                             13 bytes
 *   BLOCK   07  task u32, nrows u64, nmodels u32, y[nrows],
 *               ts[nrows] (f64), x[nrows * nmodels] row-major,
 *               optionally ordinary[nrows] (u8 0 or 1), then
 *               optionally costs: cost_models[nmodels] (u8 0 or 1),
 *               then per row, oldest first, per model with a 1 there
 *               whose answer the row holds, in model order, its cost f64
 *               (NaN where the answer carried none); a block with costs
 *               always has the ordinary bytes (zeros when none)
 *   ANSWERS 08  task u32, answers u8 (0 choice, 1 open),
 *               normalize u8 (0 exact, 1 fold, 2 numeric)           7 bytes
 *
 * ANSWERS says how the task's rows read (open.h): written right after the
 * task's TASK record when its answers are open, so that its labels are
 * agreement classes. A task without one is a choice task, as every task of
 * a file written before open answers existed is.
 *   QUERY   09  task u32, key (a name: the join key of a query)  7 + n bytes
 *
 * QUERY says a query of the task joined (its row is the ROW next to it): a
 * source that delivers again after a crash (NATS) finds it joined. It is
 * written only by a daemon with such a source, and its fields are TASK's
 * (dict.task, dict.name, dict.len).
 *
 * A row's query was an exploration query (routers asked every model) or an
 * ordinary one (routers asked the published ensemble only; data.h's
 * `explored`): ROW's form bit 2 and BLOCK's ordinary bytes say "ordinary".
 * Files written before the flag have neither, and their rows read as
 * explored (not known), as does a BLOCK without the bytes.
 *
 * Costs (the `cost` of the answers, protocol.h): a ROW has them (form bit
 * 4) only when one of its answers carried a cost, a BLOCK only when one of
 * its rows did, and a BLOCK only for the models (cost_models) one of whose
 * answers in it did: a fleet that reports no cost writes what it wrote
 * before costs were recorded. A cost is NaN (none) or finite and >= 0. The
 * reader refuses a ROW whose costs are all NaN and a BLOCK that flags a
 * model none of whose costs in it is a number (the encoder never writes
 * them). Files written before costs have neither and read without costs.
 * A BLOCK's trailing bytes tell its parts apart: none, exactly nrows (the
 * ordinary bytes), or more (ordinary bytes and costs, whose size must then
 * be exact).
 *
 * ROW answers: x[j] is model j's symbol (a label id, ENS_SYM_ABSTAIN, or
 * ENS_SYM_MISSING when model j was not asked; data.h). A row is stored up to
 * its last asked model: nx = 0 when no model was asked, else x[nx-1] !=
 * ENS_SYM_MISSING. Dense stores those nx bytes (count = nx); sparse stores
 * one pair per asked model, models strictly increasing, symbols never
 * ENS_SYM_MISSING (count = pairs, nx = last model + 1). The encoder writes
 * sparse only when it is strictly smaller (3 * pairs < nx); the reader
 * accepts either form. Decoded rows are always dense x[0..nx).
 *
 * Validation is strict and shared by encoder and reader (ens_jrec_check):
 * exact payload length, known kind and form, names 1..65535 bytes, ANSWERS
 * values among those above, y a label
 * id (never ENS_SYM_ABSTAIN or ENS_SYM_MISSING, in ROW and BLOCK alike),
 * nx and nmodels <= ENS_MAX_MODELS, nrows * (9 + nmodels) without overflow
 * and within the u32 payload length, every cost NaN or finite and >= 0
 * (stored NaNs are one bit pattern, the one the encoder writes). The HEADER format is not checked
 * here: a reader of a newer file should say so, not call it corrupt.
 */
#ifndef ENSEMBLED_JOURNAL_H
#define ENSEMBLED_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ensembled/data.h"

#define ENS_JREC_MAGIC "\xE5JRC"
#define ENS_JREC_HEAD 16        /* magic, check, len */
#define ENS_JREC_FORMAT 1       /* HEADER.format written by this codec */
#define ENS_JREC_MAX_NAME 65535 /* bytes of a task, model or label name */
#define ENS_JREC_MAX_PAYLOAD 0xFFFFFFFFu

/* Record kinds: id, wire byte, name. The wire bytes never change. */
#define ENS_JREC_KIND_MAP(XX)                                                                      \
    XX(HEADER, 1, "header")                                                                        \
    XX(TASK, 2, "task")                                                                            \
    XX(MODEL, 3, "model")                                                                          \
    XX(LABEL, 4, "label")                                                                          \
    XX(ROW, 5, "row")                                                                              \
    XX(VERSION, 6, "version")                                                                      \
    XX(BLOCK, 7, "block")                                                                          \
    XX(ANSWERS, 8, "answers")                                                                      \
    XX(QUERY, 9, "query")

typedef enum {
#define ENS__JREC_ENUM(id, byte, name) ENS_JREC_##id = (byte),
    ENS_JREC_KIND_MAP(ENS__JREC_ENUM)
#undef ENS__JREC_ENUM
} ens_jrec_kind_t;

/* One record. Pointers are borrowed: into the file image for a decoded
 * record (into the reader's scratch for a sparse row's x), into the
 * caller's memory for a record to encode. The encoder reads only the
 * fields of r->kind; a decoded record is zeroed before they are set. */
typedef struct {
    ens_jrec_kind_t kind;
    union {
        struct {
            uint32_t format;  /* ENS_JREC_FORMAT when written by this codec */
            uint64_t seq;     /* last row sequence number the file holds or covers */
            uint64_t journal; /* journals numbered <= this are covered (snapshot) */
        } header;
        struct {              /* TASK, MODEL, LABEL; QUERY (name: the key) */
            uint32_t task;    /* task id */
            uint32_t id;      /* model or label id (not in TASK) */
            const char *name; /* len bytes, may contain NUL, not terminated */
            size_t len;       /* 1 .. ENS_JREC_MAX_NAME */
        } dict;
        struct {
            uint64_t seq;     /* row sequence number */
            uint32_t task;    /* task id */
            double ts;        /* event time, stored and compared as bits */
            uint8_t y;        /* true label id (< ENS_MAX_LABELS) */
            const uint8_t *x; /* x[0..nx), may be NULL when nx is 0 */
            size_t nx;        /* <= ENS_MAX_MODELS; decoded: up to the last asked */
            uint8_t ordinary; /* 1: an ordinary query; 0: explored or not known */
            /* cost[j] for j < nx (NaN: none; ignored where x[j] is missing),
             * or NULL: no cost. Decoded: into the reader's scratch. */
            const double *cost;
        } row;
        struct {
            uint32_t task;    /* task id */
            uint64_t version; /* the task's last publication version */
        } version;
        struct {
            uint32_t task;           /* task id */
            uint64_t nrows;          /* rows, oldest first */
            uint32_t nmodels;        /* answers per row, <= ENS_MAX_MODELS */
            const uint8_t *y;        /* y[nrows], label ids */
            const uint8_t *ts;       /* nrows f64, 8 bytes each, little endian */
            const uint8_t *x;        /* x[nrows * nmodels], row i at x + i * nmodels */
            const uint8_t *ordinary; /* ordinary[nrows] (0 or 1), or NULL: none */
            /* To encode: cost[i * nmodels + j] (NaN: none), or NULL: no
             * cost. Decoded: NULL; the costs are cost_models and costs,
             * read with ens_jrec_block_costs. */
            const double *cost;
            const uint8_t *cost_models; /* decoded: cost_models[nmodels], or NULL */
            const uint8_t *costs;       /* decoded: the f64 costs, little endian */
        } block;
        struct {
            uint32_t task;     /* task id */
            uint8_t answers;   /* ens_answers_t */
            uint8_t normalize; /* ens_norm_t */
        } answers;
    };
} ens_jrec_t;

/* The name of a kind ("row"), or "unknown". */
const char *ens_jrec_kind_name(int kind);

/* Checks r against the rules above (for ROW: any x, trailing
 * ENS_SYM_MISSING included, since the encoder drops those). Returns 0,
 * ENS_EINVAL (unknown kind, empty name, an id or y out of range, a NULL
 * pointer with a non-zero count), ENS_ETOOLONG (name over 65535 bytes) or
 * ENS_ETOOBIG (nx or nmodels over ENS_MAX_MODELS, a BLOCK whose payload
 * would not fit in u32). */
int ens_jrec_check(const ens_jrec_t *r);

/* Frames r into out[0..cap). Returns the frame's size in bytes and writes
 * it only when it fits (size <= cap; out may be NULL when cap is 0), like
 * snprintf: call with cap 0 to size a buffer. Returns 0, writing nothing,
 * when ens_jrec_check(r) fails. A ROW is written without its trailing
 * ENS_SYM_MISSING answers, in whichever form is smaller. */
size_t ens_jrec_encode(const ens_jrec_t *r, void *out, size_t cap);

/* ens_jrec_encode(r, NULL, 0). */
size_t ens_jrec_size(const ens_jrec_t *r);

/* Timestamp i of a BLOCK (r->block.ts holds them little endian, unaligned). */
static inline double ens_jrec_block_ts(const ens_jrec_t *r, uint64_t i)
{
    uint64_t bits = 0;
    for (int b = 7; b >= 0; b--)
        bits = bits << 8 | r->block.ts[8 * i + (uint64_t)b];
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

/* The costs of row i of a BLOCK into cost[0..nmodels) (NaN: none), for a
 * record to encode or a decoded one alike. *k is where row i's costs start
 * among the stored ones: 0 for row 0, then what the call for row i - 1 left
 * in it (so rows are read in order). */
void ens_jrec_block_costs(const ens_jrec_t *r, uint64_t i, size_t *k, double *cost);

/* What a reader has seen so far. Every byte of the image ends up in
 * exactly one of: a record's frame, a skipped region, or the tail
 * (len - good_end) once ens_jreader_next has returned 0. */
typedef struct {
    uint64_t records; /* records returned */
    uint64_t corrupt; /* damaged regions skipped before a good record */
    uint64_t skipped; /* bytes in those regions */
    size_t good_end;  /* offset just after the last good record (0: none) */
    size_t last_off;  /* offset of the frame of the record last returned */
} ens_jreader_stats_t;

/* A reader over a whole file image in memory. The caller owns it (it is
 * plain data: no destroy); the image must outlive it and every record it
 * returned. */
typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t off;        /* where the next frame is looked for */
    size_t max_record; /* largest payload believed */
    ens_jreader_stats_t st;
    uint8_t x[ENS_MAX_MODELS];   /* a sparse row, expanded */
    double cost[ENS_MAX_MODELS]; /* a row's costs, expanded */
} ens_jreader_t;

/* Starts reading buf[0..len). A frame that declares a payload over
 * max_record bytes is treated as damaged, never trusted: max_record bounds
 * what one record can make the reader hash and the caller process. It also
 * bounds the cost of damage: each magic met while resynchronising costs at
 * most one hash of max_record bytes, so a journal (rows under 10 KiB with
 * their costs, names under 64 KiB) is best read with a limit near 64 KiB +
 * 16, and only a snapshot (whose BLOCKs are large) with a large one. */
void ens_jreader_init(ens_jreader_t *rd, const void *buf, size_t len, size_t max_record);

/* Stores the next good record in *out and returns 1, or returns 0 at the end
 * of the image. A frame with a bad magic, an impossible or too large
 * length, a checksum mismatch, or a verified payload that breaks the rules
 * is skipped: a damaged frame by scanning forward to the next magic whose
 * frame verifies, a verified frame that does not parse as a whole. Nothing
 * ends the reading but the end of the image. Pointers in *out are valid
 * while the image lives, except a sparse row's x, which the next call
 * overwrites, as does a row's cost. Counts are in rd->st; once 0 is returned, bytes from
 * rd->st.good_end on are a torn tail (or trailing garbage) the caller may
 * truncate. */
int ens_jreader_next(ens_jreader_t *rd, ens_jrec_t *out);

#endif
