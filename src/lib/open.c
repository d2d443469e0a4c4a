/* open.c - open-answer keys and agreement patterns (see open.h). */
#include "ensembled/open.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
/* Inlined: an answer is a few bytes, and a call through the shared
 * library's PLT cost more than hashing them (the same functions, the same
 * keys). XXH3_state_t on the stack comes with it. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "ensembled/err.h"

/* Seeds keep the key spaces of texts and numbers apart: the text "x" and a
 * number whose 8 bytes happen to read "x..." never share a key by design. */
#define SEED_TEXT 0x7465787400000001ull
#define SEED_NUMBER 0x6e756d6200000002ull

static const char *const answers_names[] = {"choice", "open"};
static const char *const norm_names[] = {"exact", "fold", "numeric"};

const char *ens_answers_name(ens_answers_t a)
{
    return (size_t)a < 2 ? answers_names[a] : "?";
}

int ens_answers_parse(const char *s, ens_answers_t *out)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(s, answers_names[i]) == 0) {
            *out = (ens_answers_t)i;
            return 0;
        }
    return ENS_ENOTFOUND;
}

const char *ens_norm_name(ens_norm_t n)
{
    return (size_t)n < 3 ? norm_names[n] : "?";
}

int ens_norm_parse(const char *s, ens_norm_t *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, norm_names[i]) == 0) {
            *out = (ens_norm_t)i;
            return 0;
        }
    return ENS_ENOTFOUND;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_space(**s))
        (*s)++, (*len)--;
    while (*len > 0 && is_space((*s)[*len - 1]))
        (*len)--;
}

/* Folds in chunks so that an answer of any length hashes without a copy of
 * its whole text; one chunk is one call (XXH3 streamed or in one call gives
 * the same hash). */
static uint64_t fold_key(const char *s, size_t len)
{
    char buf[256];
    if (len <= sizeof(buf)) {
        for (size_t i = 0; i < len; i++)
            buf[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        return XXH3_64bits_withSeed(buf, len, SEED_TEXT);
    }
    XXH3_state_t st;
    memset(&st, 0, sizeof(st)); /* what the reset does not set, for the compiler */
    XXH3_64bits_reset_withSeed(&st, SEED_TEXT);
    while (len > 0) {
        size_t n = len < sizeof(buf) ? len : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        XXH3_64bits_update(&st, buf, n);
        s += n, len -= n;
    }
    return XXH3_64bits_digest(&st);
}

/* The number an answer spells, if the whole (trimmed) answer is one finite
 * number. */
static int parse_number(const char *s, size_t len, double *v)
{
    char buf[128];
    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* Decimal numbers only: strtod's hexadecimal forms are text here, as
     * they are for routers (docs/protocol.md). */
    if (memchr(buf, 'x', len) || memchr(buf, 'X', len))
        return 0;
    char *end = NULL;
    double d = strtod(buf, &end);
    if (end != buf + len || !isfinite(d))
        return 0;
    *v = d == 0 ? 0.0 : d; /* -0 agrees with 0 */
    return 1;
}

uint64_t ens_open_key(const char *s, size_t len, ens_norm_t n)
{
    if (n == ENS_NORM_FOLD) {
        trim(&s, &len);
        return fold_key(s, len);
    }
    if (n == ENS_NORM_NUMERIC) {
        const char *t = s;
        size_t tl = len;
        double v;
        trim(&t, &tl);
        if (parse_number(t, tl, &v))
            return XXH3_64bits_withSeed(&v, sizeof(v), SEED_NUMBER);
    }
    return XXH3_64bits_withSeed(s, len, SEED_TEXT);
}

/* The slot of key in a table of mask + 1 slots, or the empty slot where it
 * would go. Probing starts from the high bits of a multiplicative mix, so
 * that keys differing only in high bits (small numbers in tests, or
 * crafted texts) still spread. */
static size_t slot_of(const uint64_t *slot_key, const uint8_t *slot_cls, size_t mask, uint64_t key)
{
    size_t h = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 40) & mask;
    while (slot_cls[h] && slot_key[h] != key)
        h = (h + 1) & mask;
    return h;
}

uint8_t ens_open_pattern(const uint64_t *key, uint8_t *x, size_t n, uint64_t truth)
{
    /* The classes' keys in an open-addressing table at most half full,
     * probed from a slot the key's bits pick; a slot holds its class + 1,
     * 0 when empty. Classes are numbered in the models' order as answers
     * first appear, so the table changes how they are found, not what
     * they are. (A linear scan of the classes was a quarter of an open
     * CSV's parse at 100 models and 10 classes.) */
    enum { SLOTS = 512 };
    _Static_assert(2 * ENS_OPEN_MAX_CLASSES <= SLOTS, "the table holds twice the classes");
    uint64_t slot_key[SLOTS];
    uint8_t slot_cls[SLOTS];
    size_t want = 2 * (n < ENS_OPEN_MAX_CLASSES ? n : ENS_OPEN_MAX_CLASSES), cap = 16;
    while (cap < want)
        cap *= 2;
    memset(slot_cls, 0, cap);
    size_t mask = cap - 1, ncls = 0;
    for (size_t i = 0; i < n; i++) {
        if (x[i] == ENS_SYM_ABSTAIN || x[i] == ENS_SYM_MISSING)
            continue;
        size_t h = slot_of(slot_key, slot_cls, mask, key[i]);
        if (!slot_cls[h]) {
            if (ncls == ENS_OPEN_MAX_CLASSES) {
                x[i] = ENS_SYM_ABSTAIN;
                continue;
            }
            slot_key[h] = key[i];
            slot_cls[h] = (uint8_t)++ncls;
        }
        x[i] = (uint8_t)(slot_cls[h] - 1);
    }
    size_t h = slot_of(slot_key, slot_cls, mask, truth);
    return slot_cls[h] ? (uint8_t)(slot_cls[h] - 1) : ENS_OPEN_NONE;
}
