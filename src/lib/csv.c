/* csv.c - parser of the wide prediction CSV (see csv.h).
 *
 * Fields are split on commas; a field may be double-quoted (with "" for a
 * quote) so that names holding commas survive. Lines end in LF or CRLF. Blank
 * lines are skipped. Every row must have exactly as many fields as the header.
 */
#include "ensembled/csv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/dict.h"
#include "ensembled/err.h"
#include "ensembled/open.h"
#include "ensembled/xalloc.h"

typedef struct {
    const char *p;   /* next byte */
    const char *end; /* one past the last byte */
    size_t line;     /* 1-based line of p */
} cursor_t;

typedef struct {
    const char *ptr; /* the field's bytes: into the input, or buf when quoted */
    size_t len;      /* bytes at ptr */
    char *buf;       /* unquoted bytes of a quoted field */
    size_t cap;      /* allocated bytes of buf */
} field_t;

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static void field_put(field_t *f, char c)
{
    if (f->len + 1 >= f->cap) {
        f->cap = f->cap ? f->cap * 2 : 64;
        f->buf = ens_xreallocarray(f->buf, f->cap, 1);
    }
    f->buf[f->len++] = c;
}

/* Reads one field into f. Returns 1 if a comma follows, 0 at end of line or
 * input, ENS_EPARSE on an unterminated quote. */
static int next_field(cursor_t *c, field_t *f)
{
    f->len = 0;
    if (c->p < c->end && *c->p == '"') {
        c->p++;
        for (;;) {
            if (c->p >= c->end)
                return ENS_EPARSE;
            if (*c->p == '"') {
                if (c->p + 1 < c->end && c->p[1] == '"') {
                    field_put(f, '"');
                    c->p += 2;
                    continue;
                }
                c->p++;
                break;
            }
            if (*c->p == '\n')
                return ENS_EPARSE;
            field_put(f, *c->p++);
        }
        f->ptr = f->buf ? f->buf : "";
    } else {
        /* Unquoted: the bytes stay where they are. */
        const char *q = c->p;
        while (q < c->end && *q != ',' && *q != '\n' && *q != '\r')
            q++;
        f->ptr = c->p;
        f->len = (size_t)(q - c->p);
        c->p = q;
    }
    if (c->p < c->end && *c->p == ',') {
        c->p++;
        return 1;
    }
    if (c->p < c->end && *c->p == '\r')
        c->p++;
    if (c->p < c->end && *c->p == '\n') {
        c->p++;
        c->line++;
        return 0;
    }
    if (c->p < c->end)
        return ENS_EPARSE; /* bytes after a closing quote */
    return 0;
}

static void skip_blank_lines(cursor_t *c)
{
    while (c->p < c->end && (*c->p == '\n' || *c->p == '\r')) {
        if (*c->p == '\n')
            c->line++;
        c->p++;
    }
}

static size_t count_lines(const char *buf, size_t len)
{
    size_t n = 1;
    for (const char *p = buf, *end = buf + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
        n++;
    return n;
}

/* Parses the header: item,label,<models...>. Fills names (owned) and *m. */
static int parse_header(cursor_t *c, field_t *f, char ***names, size_t *m, char *err, size_t errlen)
{
    size_t col = 0, cap = 0;
    int more;
    ens_dict_t *seen = ens_dict_new(ENS_MAX_MODELS, ENS_MAX_NAME);
    int rc = 0;
    /* next_field moves past the newline ending the header; report line 1-based
     * as it was when the header started. */
    size_t line = c->line;
    do {
        more = next_field(c, f);
        if (more < 0) {
            rc = fail(err, errlen, ENS_EPARSE, "line %zu: unterminated quote in header", line);
            break;
        }
        if (col >= 2) {
            size_t j = col - 2;
            int id = ens_dict_intern(seen, f->ptr, f->len);
            if (id == ENS_EFULL || id == ENS_ETOOLONG || id == ENS_EINVAL) {
                rc = fail(err, errlen, id == ENS_EFULL ? ENS_EFULL : ENS_EPARSE,
                          "line %zu: model column %zu: %s", line, j + 1,
                          id == ENS_EFULL    ? "more than 1024 models"
                          : id == ENS_EINVAL ? "empty model name"
                                             : "model name longer than 256 bytes");
                break;
            }
            if ((size_t)id != j) {
                rc = fail(err, errlen, ENS_EDUP, "line %zu: duplicate model name '%.*s'", line,
                          (int)f->len, f->ptr);
                break;
            }
            if (j >= cap) {
                cap = cap ? cap * 2 : 32;
                *names = ens_xreallocarray(*names, cap, sizeof(char *));
            }
            (*names)[j] = ens_xstrndup(f->ptr, f->len);
            *m = j + 1;
        }
        col++;
    } while (more == 1);
    ens_dict_destroy(&seen);
    if (rc == 0 && *m == 0)
        rc = fail(err, errlen, ENS_EPARSE,
                  "line 1: header must be item,label,<model_1>,...,<model_M> with M >= 1");
    return rc;
}

/* The label alphabet, with the ids of one-byte labels (the usual A, B, ...)
 * cached by byte so that most cells skip the dictionary. */
typedef struct {
    ens_dict_t *dict;
    int16_t one[256]; /* -1: not interned yet */
} labels_t;

/* Interns a cell into the label alphabet; returns its id or an error. */
static int cell_symbol(labels_t *l, const field_t *f, int is_truth)
{
    if (f->len == 0)
        return is_truth ? ENS_EINVAL : ENS_SYM_MISSING;
    if (f->len == 1) {
        unsigned char b = (unsigned char)f->ptr[0];
        if (b == '?')
            return is_truth ? ENS_EINVAL : ENS_SYM_ABSTAIN;
        if (l->one[b] < 0) {
            int id = ens_dict_intern(l->dict, f->ptr, 1);
            if (id < 0)
                return id;
            l->one[b] = (int16_t)id;
        }
        return l->one[b];
    }
    return ens_dict_intern(l->dict, f->ptr, f->len);
}

static const char *symbol_error(int code, int is_truth)
{
    if (code == ENS_EFULL)
        return "more than 254 distinct labels";
    if (code == ENS_ETOOLONG)
        return "label longer than 256 bytes";
    return is_truth ? "the true label is empty or '?'" : "bad label";
}

/* Open answers: the keys of the current row's answers and of its truth. */
typedef struct {
    ens_norm_t norm;
    uint64_t *key; /* m answers */
    uint64_t truth;
    uint8_t *row;  /* m symbols */
    size_t maxcls; /* classes used by the widest row */
} open_row_t;

static int open_cell(open_row_t *o, const field_t *f, size_t col)
{
    const char *s = f->ptr;
    if (col == 1) {
        if (f->len == 0 || (f->len == 1 && s[0] == '?'))
            return ENS_EINVAL;
        o->truth = ens_open_key(s, f->len, o->norm);
        return 0;
    }
    uint8_t sym = 0;
    if (f->len == 0)
        sym = ENS_SYM_MISSING;
    else if (f->len == 1 && s[0] == '?')
        sym = ENS_SYM_ABSTAIN;
    else
        o->key[col - 2] = ens_open_key(s, f->len, o->norm);
    o->row[col - 2] = sym;
    return sym;
}

/* Stores the pattern of the row just read as row n. */
static void open_row_end(open_row_t *o, size_t m, uint8_t *y, uint8_t *x, size_t maxrows, size_t n)
{
    y[n] = ens_open_pattern(o->key, o->row, m, o->truth);
    for (size_t j = 0; j < m; j++) {
        x[j * maxrows + n] = o->row[j];
        if (o->row[j] < ENS_OPEN_MAX_CLASSES && o->row[j] + 1u > o->maxcls)
            o->maxcls = o->row[j] + 1u;
    }
}

/* The classes "c0", "c1", ... then "none" as the last label. */
static ens_data_t *open_data(const open_row_t *o, size_t n, size_t m, const uint8_t *y)
{
    ens_data_t *d = ens_data_new(n, m, o->maxcls + 1);
    d->open = 1;
    for (size_t i = 0; i < n; i++)
        d->y[i] = y[i] == ENS_OPEN_NONE ? (uint8_t)o->maxcls : y[i];
    char name[32];
    for (size_t l = 0; l < o->maxcls; l++) {
        snprintf(name, sizeof(name), "c%zu", l);
        ens_data_set_label_name(d, l, name);
    }
    ens_data_set_label_name(d, o->maxcls, "none");
    return d;
}

/* The common answer cell, read in place: empty or one byte whose label id
 * is cached, then a comma or LF. Returns 1 with the symbol in *sym and
 * whether a comma followed in *more (the cursor moved past the separator),
 * or 0 (cursor untouched) for anything else: next_field reads it. */
static inline int fast_cell(cursor_t *c, const labels_t *l, uint8_t *sym, int *more)
{
    if (c->end - c->p < 2)
        return 0;
    unsigned char a = (unsigned char)c->p[0], b = (unsigned char)c->p[1];
    if (a == ',') {
        *sym = ENS_SYM_MISSING;
        c->p++;
        return *more = 1;
    }
    if (b != ',' && b != '\n')
        return 0;
    if (a == '?')
        *sym = ENS_SYM_ABSTAIN;
    else if (l->one[a] >= 0 && a != '"' && a != '\n' && a != '\r')
        *sym = (uint8_t)l->one[a];
    else
        return 0;
    c->p += 2;
    *more = b == ',';
    c->line += b == '\n';
    return 1;
}

/* Where the cells of the rows go. */
typedef struct {
    open_row_t *o;    /* open answers, or NULL */
    labels_t *labels; /* choice: the label alphabet */
    uint8_t *y, *x;   /* choice: truths, and columns of maxrows */
    size_t maxrows;
} store_t;

/* Stores cell col (>= 1) of row n. Returns 0, or an error code with the
 * reason in *why. */
static int store_cell(const store_t *s, const field_t *f, size_t col, size_t n, const char **why)
{
    if (s->o) {
        *why = symbol_error(ENS_EINVAL, 1);
        return open_cell(s->o, f, col) < 0 ? ENS_EPARSE : 0;
    }
    int sym = cell_symbol(s->labels, f, col == 1);
    if (sym < 0) {
        *why = symbol_error(sym, col == 1);
        return sym == ENS_EFULL ? ENS_EFULL : ENS_EPARSE;
    }
    if (col == 1)
        s->y[n] = (uint8_t)sym;
    else
        s->x[(col - 2) * s->maxrows + n] = (uint8_t)sym;
    return 0;
}

/* Reads row n (at its first field) into st. Returns 0 or an error code
 * with the message in err. */
static int read_row(cursor_t *c, field_t *f, const store_t *st, size_t m, size_t n, char *err,
                    size_t errlen)
{
    size_t line = c->line, col = 0;
    int more, rc = 0;
    do {
        uint8_t sym;
        if (!st->o && col >= 2 && col < 2 + m && fast_cell(c, st->labels, &sym, &more)) {
            /* The answers of the row, while they take the fast path. */
            uint8_t *cell = st->x + (col - 2) * st->maxrows + n;
            *cell = sym;
            for (col++; more == 1 && col < 2 + m && fast_cell(c, st->labels, &sym, &more); col++)
                *(cell += st->maxrows) = sym;
            continue;
        }
        more = next_field(c, f);
        if (more < 0)
            return fail(err, errlen, ENS_EPARSE, "line %zu: malformed quoted field", line);
        if (col >= 2 + m) {
            col++;
            continue;
        }
        const char *why = NULL;
        if (col >= 1 && (rc = store_cell(st, f, col, n, &why)) < 0)
            return fail(err, errlen, rc, "line %zu: column %zu: %s", line, col + 1, why);
        col++;
    } while (more == 1);
    if (col != 2 + m)
        return fail(err, errlen, ENS_EPARSE, "line %zu: %zu fields, the header has %zu", line, col,
                    2 + m);
    if (st->o)
        open_row_end(st->o, m, st->y, st->x, st->maxrows, n);
    return 0;
}

/* The data of n parsed rows. The parse buffers become the data's (no second
 * copy of the cells): *x and *y are taken (set to NULL) where they are. */
static ens_data_t *take_data(open_row_t *o, const labels_t *lab, size_t n, size_t m, uint8_t **x,
                             uint8_t **y, size_t maxrows)
{
    ens_data_t *d;
    if (o) {
        d = open_data(o, n, m, *y);
    } else {
        /* y holds maxrows >= n bytes. */
        d = ens_data_new(0, m, ens_dict_count(lab->dict));
        d->nrows = n;
        free(d->y);
        d->y = *y;
        *y = NULL;
        for (size_t l = 0; l < d->nlabels; l++)
            ens_data_set_label_name(d, l, ens_dict_name(lab->dict, (int)l));
    }
    /* Columns from stride maxrows to stride n, in place (forward: a column
     * never moves past its old start); x keeps maxrows * m >= n * m + 1
     * bytes, as ens_data_new allocates. */
    uint8_t *cells = *x;
    for (size_t j = 1; j < m; j++)
        memmove(cells + j * n, cells + j * maxrows, n);
    cells[n * m] = 0;
    free(d->x);
    d->x = cells;
    *x = NULL;
    return d;
}

static int parse(const char *buf, size_t len, open_row_t *o, ens_data_t **out, char *err,
                 size_t errlen)
{
    cursor_t c = {buf, buf + len, 1};
    field_t f = {0};
    char **names = NULL;
    size_t m = 0, n = 0;
    *out = NULL;

    skip_blank_lines(&c);
    if (c.p >= c.end)
        return fail(err, errlen, ENS_EEMPTY, "empty file: no header");
    int rc = parse_header(&c, &f, &names, &m, err, errlen);

    size_t maxrows = count_lines(buf, len);
    uint8_t *y = ens_xmalloc(maxrows);
    uint8_t *x = rc == 0 ? ens_xmalloc(maxrows * m) : NULL;
    labels_t lab = {.dict = ens_dict_new(ENS_MAX_LABELS, ENS_MAX_NAME)};
    memset(lab.one, 0xFF, sizeof(lab.one));
    if (o && rc == 0) {
        o->key = ens_xcalloc(m, sizeof(uint64_t));
        o->row = ens_xcalloc(m, 1);
    }

    const store_t st = {o, &lab, y, x, maxrows};
    while (rc == 0) {
        skip_blank_lines(&c);
        if (c.p >= c.end)
            break;
        rc = read_row(&c, &f, &st, m, n++, err, errlen);
    }
    if (rc == 0 && n == 0)
        rc = fail(err, errlen, ENS_EEMPTY, "no data rows");

    if (rc == 0) {
        *out = take_data(o, &lab, n, m, &x, &y, maxrows);
        for (size_t j = 0; j < m; j++)
            ens_data_set_model_name(*out, j, names[j]);
    }
    if (o) {
        free(o->key);
        free(o->row);
    }
    for (size_t j = 0; j < m; j++)
        free(names[j]);
    free(names);
    free(f.buf);
    free(x);
    free(y);
    ens_dict_destroy(&lab.dict);
    return rc;
}

int ens_csv_parse(const char *buf, size_t len, ens_data_t **out, char *err, size_t errlen)
{
    return parse(buf, len, NULL, out, err, errlen);
}

int ens_csv_parse_open(const char *buf, size_t len, ens_norm_t norm, ens_data_t **out, char *err,
                       size_t errlen)
{
    open_row_t o = {.norm = norm};
    return parse(buf, len, &o, out, err, errlen);
}
