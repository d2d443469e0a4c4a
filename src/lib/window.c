/* window.c - the live sliding window (see window.h).
 *
 * Storage: columns of `capacity` bytes, one per model slot, used as a ring:
 * the oldest row sits at `head`, row i at (head + i) % capacity. Column j is
 * allocated only when model j is first interned; until then every row of it
 * reads ENS_SYM_MISSING.
 *
 * Counts: per model a table counts[x][y] of (ENS_MAX_LABELS + 1) x
 * ENS_MAX_LABELS cells would be 256 KB; tables are allocated for the current
 * label capacity instead and regrown (doubling) as labels appear. Row x ==
 * label_cap of the table counts abstentions.
 *
 * Costs: a model's column of per-row costs (a double each, NAN where the
 * answer carried none: 8 bytes per row, where its answers take 1) is
 * allocated at its first answer with a cost, so a fleet that reports no
 * cost pays nothing for them. Doubles, not floats: a cost of 0.01 must
 * publish as 0.01, and offline selections over a costs file (which hold
 * doubles) must see the same numbers. Per model, the sum and
 * the number of the costs in the window move with every push and expiry;
 * the sum restarts at exactly 0 whenever the count reaches 0, so rounding
 * cannot build up past one stretch of costed answers, and a mean is never
 * below 0 (rounding could leave -1e-17 where every cost left is 0). The sum
 * is a long double: in a double, 1267 answers at 0.01 average to
 * 0.009999999999999822, and a body should say 0.01.
 *
 * Answer sets: per row, a bit per model that answered it (asked[g][at], bit
 * j % 64 of group g = j / 64; 8 bytes per row per 64 model slots in use).
 * A push or an expiry visits only the columns of the models that answered
 * the row, where a pass over every column would touch one cache line (and,
 * the columns being apart, one TLB entry) per model per row: at 256 models
 * of which 8 answer, 16 columns instead of 512. Invariant: a bit is set iff
 * the model's byte at that row is not ENS_SYM_MISSING; ring positions
 * holding no row read missing in every column and have no bit set, so a
 * push writes only the answers it brings.
 */
#include "ensembled/window.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/dict.h"
#include "ensembled/err.h"
#include "ensembled/xalloc.h"

struct ens_window_s {
    size_t capacity;       /* ring size in rows */
    size_t max_models;     /* model slots */
    size_t head;           /* ring index of the oldest row */
    size_t rows;           /* rows present */
    uint8_t *y;            /* capacity true labels */
    double *ts;            /* capacity row times */
    uint64_t *serial;      /* capacity row serial numbers, increasing from head */
    uint8_t *explored;     /* capacity row flags: 1 explored or unknown, 0 ordinary */
    uint64_t pushed;       /* rows ever pushed: the last row's serial */
    double ts_low;         /* <= the oldest time of a row present */
    double ts_high;        /* the newest time pushed since the window was empty */
    int disorder;          /* some row is newer than one after it */
    uint8_t **cols;        /* max_models columns of capacity bytes (NULL until used) */
    uint64_t **asked;      /* (max_models + 63) / 64 columns of capacity answer sets
                            * (NULL until a model of the group is interned) */
    uint32_t **counts;     /* max_models tables of (label_cap + 1) x label_cap */
    uint32_t *present;     /* max_models: rows in which the model was asked */
    double **costs;        /* max_models columns of capacity costs, NAN: none
                            * (NULL until the model's first costed answer) */
    long double *cost_sum; /* max_models: sum of the costs in the window */
    uint32_t *cost_n;      /* max_models: answers with a cost in the window */
    uint32_t *truths;      /* ENS_MAX_LABELS: rows whose true label it is */
    uint32_t *answers;     /* ENS_MAX_LABELS: answers giving it, over all models */
    size_t label_cap;      /* labels the count tables can index */
    ens_dict_t *models;    /* model names -> ids */
    ens_dict_t *labels;    /* label names -> ids */
};

/* Answer-set words that cover n model ids. */
static size_t groups(size_t n)
{
    return (n + 63) / 64;
}

ens_window_t *ens_window_new(size_t capacity, size_t max_models)
{
    if (capacity == 0 || max_models == 0 || max_models > ENS_MAX_MODELS)
        return NULL;
    ens_window_t *w = ens_xcalloc(1, sizeof(*w));
    w->capacity = capacity;
    w->max_models = max_models;
    w->y = ens_xcalloc(capacity, 1);
    w->ts = ens_xcalloc(capacity, sizeof(double));
    w->serial = ens_xcalloc(capacity, sizeof(uint64_t));
    w->explored = ens_xcalloc(capacity, 1);
    w->cols = ens_xcalloc(max_models, sizeof(uint8_t *));
    w->asked = ens_xcalloc(groups(max_models), sizeof(uint64_t *));
    w->counts = ens_xcalloc(max_models, sizeof(uint32_t *));
    w->present = ens_xcalloc(max_models, sizeof(uint32_t));
    w->costs = ens_xcalloc(max_models, sizeof(double *));
    w->cost_sum = ens_xcalloc(max_models, sizeof(long double));
    w->cost_n = ens_xcalloc(max_models, sizeof(uint32_t));
    w->truths = ens_xcalloc(ENS_MAX_LABELS, sizeof(uint32_t));
    w->answers = ens_xcalloc(ENS_MAX_LABELS, sizeof(uint32_t));
    w->label_cap = 4;
    w->models = ens_dict_new(max_models, ENS_MAX_NAME);
    w->labels = ens_dict_new(ENS_MAX_LABELS, ENS_MAX_NAME);
    return w;
}

void ens_window_destroy(ens_window_t **wp)
{
    if (!wp || !*wp)
        return;
    ens_window_t *w = *wp;
    for (size_t j = 0; j < w->max_models; j++) {
        free(w->cols[j]);
        free(w->counts[j]);
        free(w->costs[j]);
    }
    for (size_t g = 0; g < groups(w->max_models); g++)
        free(w->asked[g]);
    free(w->asked);
    free(w->costs);
    free(w->cost_sum);
    free(w->cost_n);
    free(w->cols);
    free(w->counts);
    free(w->present);
    free(w->truths);
    free(w->answers);
    free(w->y);
    free(w->ts);
    free(w->serial);
    free(w->explored);
    ens_dict_destroy(&w->models);
    ens_dict_destroy(&w->labels);
    free(w);
    *wp = NULL;
}

static size_t table_cells(size_t label_cap)
{
    return (label_cap + 1) * label_cap;
}

/* Index of (x, y) in a count table; abstentions use the last row. */
static size_t cell(const ens_window_t *w, uint8_t x, uint8_t y)
{
    size_t xi = x == ENS_SYM_ABSTAIN ? w->label_cap : x;
    return xi * w->label_cap + y;
}

int ens_window_model(ens_window_t *w, const char *name, size_t len)
{
    int id = ens_dict_intern(w->models, name, len);
    if (id >= 0 && !w->cols[id]) {
        w->cols[id] = ens_xmalloc(w->capacity);
        memset(w->cols[id], ENS_SYM_MISSING, w->capacity);
        w->counts[id] = ens_xcalloc(table_cells(w->label_cap), sizeof(uint32_t));
        if (!w->asked[id / 64])
            w->asked[id / 64] = ens_xcalloc(w->capacity, sizeof(uint64_t));
    }
    return id;
}

/* Regrows every count table so that label ids < cap can be indexed. */
static void grow_tables(ens_window_t *w, size_t cap)
{
    size_t old = w->label_cap;
    for (size_t j = 0; j < w->max_models; j++) {
        if (!w->counts[j])
            continue;
        uint32_t *t = ens_xcalloc(table_cells(cap), sizeof(uint32_t));
        for (size_t x = 0; x <= old; x++) {
            size_t nx = x == old ? cap : x;
            memcpy(t + nx * cap, w->counts[j] + x * old, old * sizeof(uint32_t));
        }
        free(w->counts[j]);
        w->counts[j] = t;
    }
    w->label_cap = cap;
}

int ens_window_label(ens_window_t *w, const char *name, size_t len)
{
    if (len == 1 && name[0] == '?')
        return ENS_SYM_ABSTAIN;
    int id = ens_dict_intern(w->labels, name, len);
    if (id >= 0 && (size_t)id >= w->label_cap) {
        size_t cap = w->label_cap;
        while (cap <= (size_t)id)
            cap *= 2;
        grow_tables(w, cap < ENS_MAX_LABELS ? cap : ENS_MAX_LABELS);
    }
    return id;
}

/* Is s a symbol of a window with nl labels? */
static int known_symbol(size_t nl, uint8_t s)
{
    return s == ENS_SYM_MISSING || s == ENS_SYM_ABSTAIN || s < nl;
}

/* Takes model j's cost at ring position at out of the sums. */
static void uncost(ens_window_t *w, size_t j, size_t at)
{
    if (!w->costs[j] || isnan(w->costs[j][at]))
        return;
    w->cost_sum[j] -= w->costs[j][at];
    if (--w->cost_n[j] == 0)
        w->cost_sum[j] = 0;
    w->costs[j][at] = NAN;
}

/* Stores model j's cost c (negative or NaN: none) at ring position at. */
static void put_cost(ens_window_t *w, size_t j, size_t at, double c)
{
    if (!(c >= 0)) {
        if (w->costs[j])
            w->costs[j][at] = NAN;
        return;
    }
    if (!w->costs[j]) {
        w->costs[j] = ens_xmalloc(w->capacity * sizeof(double));
        for (size_t i = 0; i < w->capacity; i++)
            w->costs[j][i] = NAN;
    }
    w->costs[j][at] = c;
    w->cost_sum[j] += c;
    w->cost_n[j]++;
}

/* The lowest model id in the answer set *m, taken out of it. */
static size_t take_lowest(uint64_t *m, size_t g)
{
    size_t j = g * 64 + (size_t)__builtin_ctzll(*m);
    *m &= *m - 1;
    return j;
}

/* Removes the row at ring position `at` from the counts; its answers read
 * missing afterwards. Visits only the models that answered it. */
static void uncount(ens_window_t *w, size_t at)
{
    uint8_t y = w->y[at];
    size_t ng = groups(ens_dict_count(w->models));
    w->truths[y]--;
    for (size_t g = 0; g < ng; g++) {
        uint64_t m = w->asked[g][at];
        if (m == 0)
            continue;
        w->asked[g][at] = 0;
        while (m) {
            size_t j = take_lowest(&m, g);
            uint8_t x = w->cols[j][at];
            w->counts[j][cell(w, x, y)]--;
            w->present[j]--;
            if (x < ENS_MAX_LABELS)
                w->answers[x]--;
            w->cols[j][at] = ENS_SYM_MISSING;
            uncost(w, j, at);
        }
    }
}

/* Removes the oldest row from the counts and the ring. */
static void expire_one(ens_window_t *w)
{
    uncount(w, w->head);
    w->head = (w->head + 1) % w->capacity;
    w->rows--;
}

/* The first j >= from with an answer in x (x[j] not missing), or nx. A row
 * of 256 models of which 8 answered is mostly missing bytes: they are
 * skipped eight at a time. */
static size_t next_answer(const uint8_t *x, size_t from, size_t nx)
{
    size_t j = from;
    for (; j + 8 <= nx; j += 8) {
        uint64_t v;
        memcpy(&v, x + j, sizeof(v));
        if (v != UINT64_MAX)
            break;
    }
    while (j < nx && x[j] == ENS_SYM_MISSING)
        j++;
    return j;
}

int ens_window_push(ens_window_t *w, uint8_t y, const uint8_t *x, size_t nx, double ts)
{
    return ens_window_push_costs(w, y, x, NULL, nx, ts);
}

int ens_window_push_costs(ens_window_t *w, uint8_t y, const uint8_t *x, const double *cost,
                          size_t nx, double ts)
{
    size_t nm = ens_dict_count(w->models), nl = ens_dict_count(w->labels);
    if (y >= nl || nx > nm)
        return ENS_EINVAL;
    for (size_t j = 0; j < nx; j++)
        if (!known_symbol(nl, x[j]))
            return ENS_EINVAL;
    if (w->rows == w->capacity)
        expire_one(w);
    size_t at = (w->head + w->rows) % w->capacity;
    if (w->rows == 0) {
        w->ts_low = w->ts_high = ts;
        w->disorder = 0;
    }
    if (ts < w->ts_high)
        w->disorder = 1;
    if (ts > w->ts_high)
        w->ts_high = ts;
    if (ts < w->ts_low)
        w->ts_low = ts;
    w->y[at] = y;
    w->ts[at] = ts;
    w->serial[at] = ++w->pushed;
    w->explored[at] = 1;
    w->truths[y]++;
    /* The slot holds no row: every column reads missing there and its
     * answer sets are empty, so only the answers are written. */
    for (size_t j = next_answer(x, 0, nx); j < nx; j = next_answer(x, j + 1, nx)) {
        uint8_t v = x[j];
        w->cols[j][at] = v;
        w->asked[j / 64][at] |= (uint64_t)1 << (j % 64);
        w->counts[j][cell(w, v, y)]++;
        w->present[j]++;
        put_cost(w, j, at, cost ? cost[j] : -1);
        if (v < ENS_MAX_LABELS)
            w->answers[v]++;
    }
    w->rows++;
    return 0;
}

void ens_window_expire(ens_window_t *w, size_t n)
{
    while (n-- > 0 && w->rows > 0)
        expire_one(w);
}

/* Moves the row at ring position `from` to ring position `to`. */
static void move_row(ens_window_t *w, size_t from, size_t to)
{
    size_t ng = groups(ens_dict_count(w->models));
    w->y[to] = w->y[from];
    w->ts[to] = w->ts[from];
    w->serial[to] = w->serial[from];
    w->explored[to] = w->explored[from];
    for (size_t g = 0; g < ng; g++) {
        /* `to` holds no row (removed, or moved from already): only the
         * answers of the moving row are written. */
        uint64_t m = w->asked[g][from];
        assert(w->asked[g][to] == 0);
        w->asked[g][to] = m;
        w->asked[g][from] = 0;
        while (m) {
            size_t j = take_lowest(&m, g);
            w->cols[j][to] = w->cols[j][from];
            w->cols[j][from] = ENS_SYM_MISSING;
            if (w->costs[j]) { /* the cost moves with its answer; the sums stay */
                w->costs[j][to] = w->costs[j][from];
                w->costs[j][from] = NAN;
            }
        }
    }
}

/* Removes every row older than ts_min wherever it sits, keeping the order
 * of the others. Rows move towards the end that costs fewer moves: only
 * those between the removed ones and that end. Recomputes the time bounds
 * and the disorder flag from the rows that stay. Returns the rows removed. */
static size_t compact(ens_window_t *w, double ts_min)
{
    size_t first = SIZE_MAX, last = 0, gone = 0, cap = w->capacity;
    for (size_t i = 0; i < w->rows; i++) {
        if (w->ts[(w->head + i) % cap] >= ts_min)
            continue;
        if (first == SIZE_MAX)
            first = i;
        last = i;
        gone++;
    }
    if (gone > 0 && last + 1 < w->rows - first) {
        /* Near the oldest end: the rows before `last` move up to it. */
        size_t k = last + 1;
        for (size_t i = last + 1; i-- > 0;) {
            size_t at = (w->head + i) % cap;
            if (w->ts[at] < ts_min)
                uncount(w, at);
            else if (--k != i)
                move_row(w, at, (w->head + k) % cap);
        }
        w->head = (w->head + gone) % cap;
    } else if (gone > 0) {
        /* Near the newest end: the rows after `first` move down to it. */
        size_t k = first;
        for (size_t i = first; i < w->rows; i++) {
            size_t at = (w->head + i) % cap;
            if (w->ts[at] < ts_min)
                uncount(w, at);
            else if (k++ != i)
                move_row(w, at, (w->head + k - 1) % cap);
        }
    }
    w->rows -= gone;
    w->disorder = 0;
    for (size_t i = 0; i < w->rows; i++) {
        double t = w->ts[(w->head + i) % cap];
        if (i == 0 || t < w->ts_low)
            w->ts_low = t;
        if (i > 0 && t < w->ts[(w->head + i - 1) % cap])
            w->disorder = 1;
    }
    return gone;
}

size_t ens_window_expire_before(ens_window_t *w, double ts_min)
{
    size_t n = 0;
    while (w->rows > 0 && w->ts[w->head] < ts_min) {
        expire_one(w);
        n++;
    }
    /* Rows in time order end here. Otherwise (a label's time earlier than
     * that of a row joined before it) an older row may sit behind a newer
     * one: look for one only when the lower bound of the times says there
     * may be one, so a window in order costs nothing more. */
    if (w->rows > 0 && w->disorder && w->ts_low < ts_min)
        n += compact(w, ts_min);
    return n;
}

uint64_t ens_window_serial(const ens_window_t *w, size_t i)
{
    return w->serial[(w->head + i) % w->capacity];
}

size_t ens_window_find_serial(const ens_window_t *w, uint64_t serial)
{
    size_t lo = 0, hi = w->rows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ens_window_serial(w, mid) < serial)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void ens_window_copy_rows(const ens_window_t *w, size_t from, size_t n, size_t nm, uint8_t *y,
                          double *ts, uint8_t *x)
{
    size_t cap = w->capacity;
    for (size_t i = 0; i < n; i++) {
        size_t at = (w->head + from + i) % cap;
        y[i] = w->y[at];
        ts[i] = w->ts[at];
    }
    /* A transpose in tiles of 64 rows: the tile's rows of x (64 x nm
     * bytes) stay in cache while every column is read into them, where a
     * pass over all n rows per column would refetch x once per model. */
    for (size_t i0 = 0; i0 < n; i0 += 64) {
        size_t k = n - i0 < 64 ? n - i0 : 64, start = (w->head + from + i0) % cap;
        uint8_t *tile = x + i0 * nm;
        for (size_t j = 0; j < nm; j++) {
            const uint8_t *col = j < w->max_models ? w->cols[j] : NULL;
            size_t at = start;
            for (size_t i = 0; i < k; i++) {
                tile[i * nm + j] = col ? col[at] : ENS_SYM_MISSING;
                if (++at == cap)
                    at = 0;
            }
        }
    }
}

int ens_window_find_model(const ens_window_t *w, const char *name, size_t len)
{
    return ens_dict_find(w->models, name, len);
}

int ens_window_find_label(const ens_window_t *w, const char *name, size_t len)
{
    if (len == 1 && name[0] == '?')
        return ENS_SYM_ABSTAIN;
    return ens_dict_find(w->labels, name, len);
}

size_t ens_window_rows(const ens_window_t *w)
{
    return w->rows;
}

size_t ens_window_capacity(const ens_window_t *w)
{
    return w->capacity;
}

size_t ens_window_models(const ens_window_t *w)
{
    return ens_dict_count(w->models);
}

size_t ens_window_models_held(const ens_window_t *w)
{
    return ens_dict_live(w->models);
}

size_t ens_window_model_ids(const ens_window_t *w, size_t *ids)
{
    size_t n = 0;
    for (size_t j = 0; j < ens_dict_count(w->models); j++)
        if (ens_dict_name(w->models, (int)j))
            ids[n++] = j;
    return n;
}

int ens_window_release_model(ens_window_t *w, int id)
{
    if (id < 0 || (size_t)id >= ens_dict_count(w->models) || w->present[id] > 0)
        return ENS_EINVAL;
    /* No row holds it: its column reads missing everywhere and its counts
     * and cost sums are zero, as a new model's must. */
    w->cost_sum[id] = 0;
    w->cost_n[id] = 0;
    return ens_dict_release(w->models, id);
}

size_t ens_window_labels_held(const ens_window_t *w)
{
    return ens_dict_live(w->labels);
}

int ens_window_release_label(ens_window_t *w, int id)
{
    if (id < 0 || (size_t)id >= ens_dict_count(w->labels) || w->truths[id] > 0 ||
        w->answers[id] > 0)
        return ENS_EINVAL;
    return ens_dict_release(w->labels, id);
}

size_t ens_window_labels(const ens_window_t *w)
{
    return ens_dict_count(w->labels);
}

const char *ens_window_model_name(const ens_window_t *w, int id)
{
    return ens_dict_name(w->models, id);
}

const char *ens_window_label_name(const ens_window_t *w, int id)
{
    return ens_dict_name(w->labels, id);
}

ens_str_t ens_window_model_str(const ens_window_t *w, int id)
{
    ens_str_t s = {ens_dict_name(w->models, id), ens_dict_name_len(w->models, id)};
    return s;
}

ens_str_t ens_window_label_str(const ens_window_t *w, int id)
{
    ens_str_t s = {ens_dict_name(w->labels, id), ens_dict_name_len(w->labels, id)};
    return s;
}

uint8_t ens_window_x(const ens_window_t *w, size_t i, size_t j)
{
    return w->cols[j][(w->head + i) % w->capacity];
}

uint8_t ens_window_y(const ens_window_t *w, size_t i)
{
    return w->y[(w->head + i) % w->capacity];
}

double ens_window_ts(const ens_window_t *w, size_t i)
{
    return w->ts[(w->head + i) % w->capacity];
}

int ens_window_explored(const ens_window_t *w, size_t i)
{
    return w->explored[(w->head + i) % w->capacity];
}

void ens_window_set_explored(ens_window_t *w, size_t i, int explored)
{
    if (i < w->rows)
        w->explored[(w->head + i) % w->capacity] = explored != 0;
}

uint32_t ens_window_count(const ens_window_t *w, size_t j, uint8_t x, uint8_t y)
{
    if (j >= ens_dict_count(w->models) || y >= ens_dict_count(w->labels))
        return 0;
    if (x != ENS_SYM_ABSTAIN && x >= ens_dict_count(w->labels))
        return 0;
    return w->counts[j][cell(w, x, y)];
}

uint32_t ens_window_present(const ens_window_t *w, size_t j)
{
    return j < ens_dict_count(w->models) ? w->present[j] : 0;
}

static double mean_cost(const ens_window_t *w, size_t j)
{
    double m = (double)(w->cost_sum[j] / w->cost_n[j]);
    return m > 0 ? m : 0;
}

double ens_window_cost(const ens_window_t *w, size_t j, uint32_t *n)
{
    uint32_t k = j < ens_dict_count(w->models) ? w->cost_n[j] : 0;
    if (n)
        *n = k;
    return k ? mean_cost(w, j) : NAN;
}

/* Copies ring positions [from, from + n) of src into dst[0..n). */
static void copy_ring(uint8_t *dst, const uint8_t *src, size_t cap, size_t from, size_t n)
{
    size_t first = cap - from < n ? cap - from : n;
    memcpy(dst, src + from, first);
    memcpy(dst + first, src, n - first);
}

/* Names d's labels: those held, in id order. When a released id lies
 * among them, labels are renumbered densely in y and every column. */
static void relabel(const ens_window_t *w, ens_data_t *d)
{
    uint8_t map[256];
    size_t nl = 0;
    for (size_t v = 0; v < 256; v++)
        map[v] = (uint8_t)v;
    for (size_t l = 0; l < ens_dict_count(w->labels); l++) {
        const char *name = ens_dict_name(w->labels, (int)l);
        if (!name)
            continue;
        map[l] = (uint8_t)nl;
        ens_data_set_label_name(d, nl++, name);
    }
    if (nl == ens_dict_count(w->labels))
        return;
    for (size_t i = 0; i < d->nrows; i++)
        d->y[i] = map[d->y[i]];
    for (size_t k = 0; k < d->nrows * d->nmodels; k++)
        d->x[k] = map[d->x[k]];
}

void ens_window_copy_columns(const ens_window_t *w, size_t from, size_t n, const size_t *ids,
                             size_t nm, size_t stride, uint8_t *y, uint8_t *x)
{
    size_t at = (w->head + from) % w->capacity;
    copy_ring(y, w->y, w->capacity, at, n);
    for (size_t k = 0; k < nm; k++)
        copy_ring(x + k * stride, w->cols[ids[k]], w->capacity, at, n);
}

void ens_window_copy_explored(const ens_window_t *w, size_t from, size_t n, uint8_t *explored)
{
    copy_ring(explored, w->explored, w->capacity, (w->head + from) % w->capacity, n);
}

ens_data_t *ens_window_snapshot(const ens_window_t *w)
{
    size_t ids[ENS_MAX_MODELS];
    size_t nm = ens_window_model_ids(w, ids), nl = ens_dict_live(w->labels);
    ens_data_t *d = ens_data_new(w->rows, nm, nl);
    copy_ring(d->y, w->y, w->capacity, w->head, w->rows);
    for (size_t j = 0; j < nm; j++) {
        copy_ring(d->x + j * w->rows, w->cols[ids[j]], w->capacity, w->head, w->rows);
        ens_data_set_model_name(d, j, ens_dict_name(w->models, (int)ids[j]));
        if (w->cost_n[ids[j]] > 0)
            d->cost[j] = mean_cost(w, ids[j]);
    }
    relabel(w, d);
    uint8_t *flags = ens_xcalloc(w->rows + 1, 1);
    copy_ring(flags, w->explored, w->capacity, w->head, w->rows);
    if (memchr(flags, 0, w->rows))
        d->explored = flags;
    else
        free(flags);
    return d;
}

double ens_window_cost_at(const ens_window_t *w, size_t i, size_t j)
{
    if (i >= w->rows || j >= ens_dict_count(w->models) || !w->costs[j])
        return NAN;
    return w->costs[j][(w->head + i) % w->capacity];
}

int ens_window_set_cost(ens_window_t *w, size_t i, size_t j, double c)
{
    if (i >= w->rows || j >= ens_dict_count(w->models) || (!isnan(c) && !(c >= 0)))
        return ENS_EINVAL;
    size_t at = (w->head + i) % w->capacity;
    if (w->cols[j][at] == ENS_SYM_MISSING)
        return ENS_EINVAL;
    /* Through the sums, as a push would: the old cost leaves them first. */
    uncost(w, j, at);
    put_cost(w, j, at, c);
    return 0;
}
