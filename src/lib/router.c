/* router.c - exploration, agreement patterns and combiners for routers
 * (router.h). Pure: it reads a decoded body and the caller's answers. */
#include "ensembled/router.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ensembled/err.h"
#include "ensembled/open.h"
#include "ensembled/xalloc.h"

/* Cells of a table key that no entry holds: an answer outside the label
 * alphabet, which therefore matches no entry. */
#define NOT_A_LABEL (-3)

static size_t query_key(const ens_router_query_t *q, unsigned char *key9)
{
    if (q->is_uint) {
        key9[0] = 'u';
        for (int i = 0; i < 8; i++)
            key9[1 + i] = (unsigned char)(q->u >> (56 - 8 * i));
        return 9;
    }
    key9[0] = 's';
    return 1;
}

uint64_t ens_router_explore_hash(const char *task, size_t task_len, const ens_router_query_t *q)
{
    unsigned char head[9];
    size_t hlen = query_key(q, head);
    size_t tail = q->is_uint ? 0 : q->len;
    size_t n = task_len + 1 + hlen + tail;
    /* Names are at most 256 bytes on the wire; a longer id from a caller
     * still hashes, through the heap. */
    unsigned char stack[1024];
    unsigned char *buf = n <= sizeof(stack) ? stack : ens_xmalloc(n);
    memcpy(buf, task, task_len);
    buf[task_len] = '\0';
    memcpy(buf + task_len + 1, head, hlen);
    if (tail)
        memcpy(buf + task_len + 1 + hlen, q->s, tail);
    uint64_t h = XXH3_64bits_withSeed(buf, n, 1);
    if (buf != stack)
        free(buf);
    return h;
}

int ens_router_explore_below(uint64_t hash, double rate)
{
    if (!(rate > 0))
        return 0;
    if (rate >= 1)
        return 1;
    /* rate * 2^64 is exact (a power-of-two scaling) and below 2^64; for an
     * integer hash, hash < t iff hash < ceil(t), and ceil(t) fits in 64 bits.
     * Converting the hash to double instead would round it to 53 bits and
     * decide differently near the threshold. */
    double t = ceil(ldexp(rate, 64));
    if (t >= 18446744073709551616.0)
        return 1;
    return hash < (uint64_t)t;
}

int ens_router_explores(const ens_body_t *b, const ens_router_query_t *q)
{
    return ens_router_explore_below(ens_router_explore_hash(b->task.ptr, b->task.len, q),
                                    b->explore_rate);
}

size_t ens_router_models(const ens_body_t *b, const ens_router_query_t *q, const ens_str_t **models)
{
    if (ens_router_explores(b, q)) {
        *models = b->explore_models;
        return b->nexplore;
    }
    *models = b->models;
    return b->nmodels;
}

static int is_abstain(const ens_str_t *a)
{
    return a->ptr && a->len == 1 && a->ptr[0] == '?';
}

static int same(const ens_str_t *a, const ens_str_t *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

size_t ens_router_pattern(const ens_str_t *answers, size_t k, int16_t *pattern, size_t *first)
{
    size_t ncls = 0;
    for (size_t i = 0; i < k; i++) {
        if (!answers[i].ptr) {
            pattern[i] = ENS_ROUTER_MISSING;
            continue;
        }
        if (is_abstain(&answers[i])) {
            pattern[i] = ENS_ROUTER_ABSTAIN;
            continue;
        }
        size_t c = 0;
        while (c < ncls && !same(&answers[first[c]], &answers[i]))
            c++;
        if (c == ncls)
            first[ncls++] = i;
        pattern[i] = (int16_t)c;
    }
    return ncls;
}

int ens_router_vote(const ens_str_t *answers, const double *weights, size_t k, int weighted)
{
    /* Scores per answer class, summed in model order; the classes are found
     * by the pattern walk so that equal answers share one score. */
    int16_t stackp[64];
    size_t stackf[64];
    double stacks[64];
    int16_t *pat = k <= 64 ? stackp : ens_xmalloc(k * sizeof(*pat));
    size_t *first = k <= 64 ? stackf : ens_xmalloc(k * sizeof(*first));
    double *score = k <= 64 ? stacks : ens_xmalloc(k * sizeof(*score));
    size_t ncls = ens_router_pattern(answers, k, pat, first);
    double best = 0;
    for (size_t c = 0; c < ncls; c++)
        score[c] = 0;
    for (size_t i = 0; i < k; i++) {
        if (pat[i] < 0)
            continue;
        score[pat[i]] += weighted ? weights[i] : 1.0;
        if (score[pat[i]] > best)
            best = score[pat[i]];
    }
    /* Ties: the tied answer of the heaviest voter, the earlier on equal
     * weights (the daemon orders models by a stable sort on accuracy). */
    int win = -1;
    for (size_t i = 0; i < k; i++) {
        if (pat[i] < 0 || score[pat[i]] < best - 1e-12)
            continue;
        if (win < 0 || weights[i] > weights[win])
            win = (int)i;
    }
    if (k > 64) {
        free(pat);
        free(first);
        free(score);
    }
    return win;
}

/* The table-key cell of one answer: its label index, "?", nil, or a cell no
 * entry holds. */
static int cell_of(const ens_body_t *b, const ens_str_t *a)
{
    if (!a->ptr)
        return ENS_BODY_MISSING;
    if (is_abstain(a))
        return ENS_BODY_ABSTAIN;
    for (size_t l = 0; l < b->nlabels; l++)
        if (same(&b->labels[l], a))
            return (int)l;
    return NOT_A_LABEL;
}

/* The entry of the table whose key is cells[0..k), or NULL. Linear: a table
 * holds at most one entry per distinct answer tuple of the window. */
static const ens_body_entry_t *find_entry(const ens_body_t *b, const int *cells)
{
    for (size_t e = 0; e < b->ntable; e++) {
        size_t i = 0;
        while (i < b->nmodels && b->table[e].key[i] == cells[i])
            i++;
        if (i == b->nmodels)
            return &b->table[e];
    }
    return NULL;
}

/* The table or pattern decision, or -1 (no entry, or a pattern entry whose
 * class is not among the answers): a label index (table) or the position of
 * the first answer of the decided class (pattern), flagged by *is_label. */
static long table_decision(const ens_body_t *b, const ens_str_t *answers, int *is_label)
{
    size_t k = b->nmodels;
    int stackc[64];
    int16_t stackp[64];
    size_t stackf[64];
    int *cells = k <= 64 ? stackc : ens_xmalloc(k * sizeof(*cells));
    int16_t *pat = k <= 64 ? stackp : ens_xmalloc(k * sizeof(*pat));
    size_t *first = k <= 64 ? stackf : ens_xmalloc(k * sizeof(*first));
    long out = -1;
    size_t ncls = ens_router_pattern(answers, k, pat, first);
    *is_label = b->comb == ENS_COMB_TABLE;
    for (size_t i = 0; i < k; i++)
        cells[i] = *is_label ? cell_of(b, &answers[i]) : pat[i];
    const ens_body_entry_t *e = find_entry(b, cells);
    if (e && e->decision >= 0) {
        if (*is_label && (size_t)e->decision < b->nlabels)
            out = e->decision;
        else if (!*is_label && (size_t)e->decision < ncls)
            out = (long)first[e->decision];
    }
    if (k > 64) {
        free(cells);
        free(pat);
        free(first);
    }
    return out;
}

/* Open answers: each answer that agrees (open.h keys under the body's
 * normalize) with an earlier one is replaced by that earlier answer's text,
 * so that the byte comparisons of the rules see agreement. canon gets k
 * cells. Returns 0, or ENS_EPARSE for an unknown normalize. */
static int canonical_answers(const ens_body_t *b, const ens_str_t *answers, ens_str_t *canon)
{
    ens_norm_t norm;
    char name[16];
    size_t n = b->normalize.len < sizeof(name) - 1 ? b->normalize.len : sizeof(name) - 1;
    memcpy(name, b->normalize.ptr ? b->normalize.ptr : "", n);
    name[n] = '\0';
    if (n == 0)
        norm = ENS_NORM_EXACT;
    else if (ens_norm_parse(name, &norm) != 0)
        return ENS_EPARSE;
    size_t k = b->nmodels;
    uint64_t stackk[64];
    uint64_t *key = k <= 64 ? stackk : ens_xmalloc(k * sizeof(*key));
    for (size_t i = 0; i < k; i++) {
        canon[i] = answers[i];
        if (!answers[i].ptr || is_abstain(&answers[i]))
            continue;
        key[i] = ens_open_key(answers[i].ptr, answers[i].len, norm);
        for (size_t j = 0; j < i; j++)
            if (canon[j].ptr && !is_abstain(&canon[j]) && key[j] == key[i]) {
                canon[i] = canon[j];
                break;
            }
    }
    if (k > 64)
        free(key);
    return 0;
}

static int combine_choice(const ens_body_t *b, const ens_str_t *answers, ens_str_t *out);

int ens_router_combine(const ens_body_t *b, const ens_str_t *answers, ens_str_t *out)
{
    if (!(b->answers.len == 4 && memcmp(b->answers.ptr, "open", 4) == 0))
        return combine_choice(b, answers, out);
    size_t k = b->nmodels;
    ens_str_t stackc[64];
    ens_str_t *canon = k <= 64 ? stackc : ens_xmalloc(k * sizeof(*canon));
    int rc = canonical_answers(b, answers, canon);
    if (rc == 0)
        rc = combine_choice(b, canon, out);
    if (k > 64)
        free(canon);
    return rc;
}

/* The rules on answers compared as bytes. */
static int combine_choice(const ens_body_t *b, const ens_str_t *answers, ens_str_t *out)
{
    if (b->comb == ENS_COMB_TABLE || b->comb == ENS_COMB_PATTERN) {
        int is_label;
        long d = table_decision(b, answers, &is_label);
        if (d >= 0) {
            *out = is_label ? b->labels[d] : answers[d];
            return 0;
        }
    }
    int w = ens_router_vote(answers, b->weights, b->nmodels, b->comb != ENS_COMB_VOTE);
    if (w < 0)
        return ENS_ENOTFOUND;
    *out = answers[w];
    return 0;
}
