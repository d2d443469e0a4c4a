/* combine_prefix.c - the published combiner of every prefix of a selection,
 * one model at a time (combine_int.h).
 *
 * Pruning (select.c) asks, for n = 1, 2, ..., which combiner
 * ens_combiner_fit_best would publish over the first n models and what its
 * leave-one-out predictions are. Fitted from scratch, each prefix gathers
 * every row's n answers, hashes its tuple and its pattern, and votes over n
 * models. Here each row keeps what the prefix so far made of it: its
 * (weighted) vote totals per label, its answer classes, and the entries of
 * its tuple and of its pattern, so that adding model n costs one answer per
 * row: a vote added, a class looked up, two entries refined through a
 * table of (entry, code). The rules are combine.c's, and so are the results: the
 * same weights, order, tie-breaks and decisions (ens__comb_decide).
 */
#include <stdlib.h>
#include <string.h>

#include "combine_int.h"
#include "ensembled/xalloc.h"

enum { K_WEIGHTED, K_VOTE, K_PATTERN, K_TABLE, K_COUNT };

/* Dense ids of (entry of the prefix so far, code of the new answer) for the
 * entries of the longer prefix. A code is a label or class index below L, or
 * L and L + 1 for abstention and missing: the table is entries * (L + 2)
 * wide, and only the rows of the entries in use are cleared and touched
 * (tuples of 10 binary answers have at most 2^10 entries). */
typedef struct {
    uint32_t *id; /* UINT32_MAX: not seen */
    size_t width; /* L + 2 */
    size_t next;  /* ids given */
} idmap_t;

struct ens__prefix_s {
    const ens_data_t *d;
    size_t n, L, k;                     /* rows, labels, models so far */
    size_t models[ENS_COMB_MAX_MODELS]; /* the prefix */
    double w[ENS_COMB_MAX_MODELS];      /* as combine.c's fit_weights */
    size_t order[ENS_COMB_MAX_MODELS];
    const uint8_t *ocol[ENS_COMB_MAX_MODELS]; /* the columns in that order */
    uint8_t prior;
    double *wsc;            /* n * L: weighted vote totals per row and label */
    uint8_t *vsc;           /* n * L: votes per row and label */
    uint8_t *reps, *ncls;   /* n * L answer classes per row, and how many */
    uint32_t *tid, *pid;    /* entry of each row's tuple and pattern */
    uint32_t *tcnt, *pcnt;  /* counts per entry: L labels; L classes and none */
    uint32_t *ttot, *ptot;  /* rows per entry */
    idmap_t tmap, pmap;     /* refinements of the entries */
    uint8_t *pred[K_COUNT]; /* leave-one-out predictions of each kind */
};

static int is_vote(uint8_t x)
{
    return x != ENS_SYM_ABSTAIN && x != ENS_SYM_MISSING;
}

static void idmap_init(idmap_t *m, size_t n, size_t L)
{
    m->width = L + 2;
    m->id = ens_xmalloc(n * m->width * sizeof(uint32_t));
    m->next = 1; /* every row starts in entry 0 */
}

/* Readies m for a refinement of the m->next entries of the last one. */
static void idmap_clear(idmap_t *m)
{
    memset(m->id, 0xff, m->next * m->width * sizeof(uint32_t));
    m->next = 0;
}

static uint32_t idmap_get(idmap_t *m, uint32_t entry, size_t code)
{
    uint32_t *id = &m->id[(size_t)entry * m->width + code];
    if (*id == UINT32_MAX)
        *id = (uint32_t)m->next++;
    return *id;
}

/* The code of answer byte x in the tables: itself below L, else L for an
 * abstention and L + 1 for a missing answer. */
static size_t sym_code(uint8_t x, size_t L)
{
    return x == ENS_SYM_ABSTAIN ? L : x == ENS_SYM_MISSING ? L + 1 : x;
}

int ens__prefix_applies(const ens_data_t *d)
{
    return d->nlabels <= ENS__PREFIX_MAX_LABELS && d->nrows < UINT32_MAX;
}

ens__prefix_t *ens__prefix_new(const ens_data_t *d)
{
    ens__prefix_t *p = ens_xcalloc(1, sizeof(*p));
    size_t n = d->nrows, L = d->nlabels, n1 = n + 1;
    p->d = d;
    p->n = n;
    p->L = L;
    uint32_t ycnt[256] = {0};
    for (size_t r = 0; r < n; r++)
        ycnt[d->y[r]]++;
    for (size_t l = 1; l < L; l++)
        if (ycnt[l] > ycnt[p->prior])
            p->prior = (uint8_t)l;
    p->wsc = ens_xcalloc(n1 * L, sizeof(double));
    p->vsc = ens_xcalloc(n1 * L, 1);
    p->reps = ens_xcalloc(n1 * L, 1);
    p->ncls = ens_xcalloc(n1, 1);
    p->tid = ens_xcalloc(n1, sizeof(uint32_t));
    p->pid = ens_xcalloc(n1, sizeof(uint32_t));
    p->tcnt = ens_xcalloc(n1 * L, sizeof(uint32_t));
    p->pcnt = ens_xcalloc(n1 * (L + 1), sizeof(uint32_t));
    p->ttot = ens_xcalloc(n1, sizeof(uint32_t));
    p->ptot = ens_xcalloc(n1, sizeof(uint32_t));
    idmap_init(&p->tmap, n1, L);
    idmap_init(&p->pmap, n1, L);
    for (size_t i = 0; i < K_COUNT; i++)
        p->pred[i] = ens_xmalloc(n1);
    return p;
}

void ens__prefix_destroy(ens__prefix_t **pp)
{
    ens__prefix_t *p = *pp;
    if (!p)
        return;
    free(p->wsc);
    free(p->vsc);
    free(p->reps);
    free(p->ncls);
    free(p->tid);
    free(p->pid);
    free(p->tcnt);
    free(p->pcnt);
    free(p->ttot);
    free(p->ptot);
    free(p->tmap.id);
    free(p->pmap.id);
    for (size_t i = 0; i < K_COUNT; i++)
        free(p->pred[i]);
    free(p);
    *pp = NULL;
}

/* The weight of model j and its place in the order (fit_weights: the stable
 * insertion sort by decreasing weight; the new model is the last inserted). */
static void add_weight(ens__prefix_t *p, size_t j)
{
    size_t k = p->k;
    double a = ens_data_accuracy(p->d, j);
    p->models[k] = j;
    p->w[k] = a > 1e-6 ? a : 1e-6;
    size_t h = k;
    while (h > 0 && p->w[p->order[h - 1]] < p->w[k]) {
        p->order[h] = p->order[h - 1];
        h--;
    }
    p->order[h] = k;
    p->k = k + 1;
    for (size_t o = 0; o <= k; o++)
        p->ocol[o] = ens_data_col(p->d, p->models[p->order[o]]);
}

/* The class of answer x in row r (a new one if x is new), or L and L + 1 for
 * an abstention and a missing answer: the pattern's code of x. */
static size_t class_code(const ens__prefix_t *p, size_t r, uint8_t x)
{
    if (!is_vote(x))
        return sym_code(x, p->L);
    uint8_t *reps = p->reps + r * p->L, c = 0;
    while (c < p->ncls[r] && reps[c] != x)
        c++;
    if (c == p->ncls[r])
        reps[p->ncls[r]++] = x;
    return c;
}

/* Adds column j to every row's votes, classes and entries, and counts the
 * rows in the entries of the longer prefix. */
static void refine(ens__prefix_t *p, const uint8_t *col, double w)
{
    /* The loops work on a local copy of *p: stores through the uint8_t
     * arrays may alias anything else in memory, and would make the compiler
     * reload every field of *p after each of them. */
    ens__prefix_t q = *p;
    const size_t L = q.L;
    const uint8_t *y = q.d->y;
    idmap_clear(&q.tmap);
    idmap_clear(&q.pmap);
    for (size_t r = 0; r < q.n; r++) {
        uint8_t x = col[r];
        if (is_vote(x)) {
            q.wsc[r * L + x] += w;
            q.vsc[r * L + x]++;
        }
        q.tid[r] = idmap_get(&q.tmap, q.tid[r], sym_code(x, L));
        q.pid[r] = idmap_get(&q.pmap, q.pid[r], class_code(&q, r, x));
    }
    memset(q.tcnt, 0, q.tmap.next * L * sizeof(uint32_t));
    memset(q.ttot, 0, q.tmap.next * sizeof(uint32_t));
    memset(q.pcnt, 0, q.pmap.next * (L + 1) * sizeof(uint32_t));
    memset(q.ptot, 0, q.pmap.next * sizeof(uint32_t));
    for (size_t r = 0; r < q.n; r++) {
        q.tcnt[(size_t)q.tid[r] * L + y[r]]++;
        q.ttot[q.tid[r]]++;
        const uint8_t *reps = q.reps + r * L;
        size_t z = 0;
        while (z < q.ncls[r] && reps[z] != y[r])
            z++;
        q.pcnt[(size_t)q.pid[r] * (L + 1) + (z < q.ncls[r] ? z : L)]++;
        q.ptot[q.pid[r]]++;
    }
    p->tmap = q.tmap;
    p->pmap = q.pmap;
}

/* The votes of row r (combine.c's vote): the label with the largest total
 * in sc[0..L), ties to the most accurate voter's label; the prior when
 * nobody voted. Written for both total types, weighted and plain. */
#define ROW_VOTE(name, type)                                                                       \
    static uint8_t name(const ens__prefix_t *p, size_t r, const type *sc)                          \
    {                                                                                              \
        type best = 0;                                                                             \
        for (size_t l = 0; l < p->L; l++)                                                          \
            if (sc[l] > best)                                                                      \
                best = sc[l];                                                                      \
        for (size_t o = 0; o < p->k; o++) {                                                        \
            uint8_t v = p->ocol[o][r];                                                             \
            if (is_vote(v) && (double)sc[v] >= (double)best - 1e-12)                               \
                return v;                                                                          \
        }                                                                                          \
        return p->prior;                                                                           \
    }
ROW_VOTE(row_vote_weighted, double)
ROW_VOTE(row_vote_plain, uint8_t)

/* The leave-one-out predictions of the four kinds for row r. */
static void predict_row(const ens__prefix_t *p, size_t r, uint8_t out[K_COUNT])
{
    const size_t L = p->L;
    const uint8_t y = p->d->y[r];
    uint8_t fb = row_vote_weighted(p, r, p->wsc + r * L);
    out[K_WEIGHTED] = fb;
    out[K_VOTE] = row_vote_plain(p, r, p->vsc + r * L);
    /* The table: entry tid, outcome y. */
    size_t o = SIZE_MAX;
    if (p->ttot[p->tid[r]] - 1 != 0)
        o = ens__comb_decide(p->tcnt + (size_t)p->tid[r] * L, L, y, fb);
    out[K_TABLE] = o == SIZE_MAX ? fb : (uint8_t)o;
    /* The pattern: entry pid, outcome the class holding y (L: none). */
    const uint8_t *reps = p->reps + r * L;
    size_t ncls = p->ncls[r], z = 0, fallback = SIZE_MAX;
    while (z < ncls && reps[z] != y)
        z++;
    for (size_t c = 0; c < ncls; c++)
        if (reps[c] == fb)
            fallback = c;
    o = SIZE_MAX;
    if (p->ptot[p->pid[r]] - 1 != 0)
        o = ens__comb_decide(p->pcnt + (size_t)p->pid[r] * (L + 1), ncls, z < ncls ? z : L,
                             fallback);
    out[K_PATTERN] = o == SIZE_MAX ? fb : reps[o];
}

void ens__prefix_add(ens__prefix_t *p, size_t j, uint8_t *pred)
{
    add_weight(p, j);
    refine(p, ens_data_col(p->d, j), p->w[p->k - 1]);
    /* A local copy, as in refine. */
    const ens__prefix_t q = *p;
    const uint8_t *y = q.d->y;
    size_t right[K_COUNT] = {0};
    for (size_t r = 0; r < q.n; r++) {
        uint8_t out[K_COUNT];
        predict_row(&q, r, out);
        for (size_t i = 0; i < K_COUNT; i++) {
            q.pred[i][r] = out[i];
            right[i] += out[i] == y[r];
        }
    }
    /* ens_combiner_fit_best: the first kind in order of preference with
     * the most rows right (the same denominator for all). */
    size_t best = K_WEIGHTED;
    for (size_t i = 1; i < K_COUNT; i++)
        if (!(i == K_TABLE && p->d->open) && right[i] > right[best])
            best = i;
    memcpy(pred, p->pred[best], p->n);
}
