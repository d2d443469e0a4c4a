/* mpw.h - a small MessagePack writer that counts its own containers.
 *
 * Every wire format of the project (events, publication bodies, control
 * requests and replies, journal records) is written with it, so that no
 * caller counts map entries by hand: a map or an array is opened, its items
 * are written, and closing it writes the smallest header for the count it
 * actually holds. Map items alternate key, value; closing a map with an odd
 * number of items is a programmer error (assert).
 *
 * The buffer grows as needed (ens_xrealloc: exhaustion aborts). Containers
 * nest up to ENS_MPW_DEPTH deep. A writer is used by one thread at a time.
 */
#ifndef ENSEMBLED_MPW_H
#define ENSEMBLED_MPW_H

#include <stddef.h>
#include <stdint.h>

#define ENS_MPW_DEPTH 16

typedef struct {
    char *data;  /* the bytes written so far (owned) */
    size_t size; /* used */
    size_t cap;  /* allocated */
    size_t depth;
    struct {
        size_t start; /* offset of the container's first item */
        size_t items; /* items written at this level */
        int is_map;
    } open[ENS_MPW_DEPTH];
} ens_mpw_t;

void ens_mpw_init(ens_mpw_t *w);
/* Frees the buffer; the writer may be initialised again. */
void ens_mpw_free(ens_mpw_t *w);
/* Forgets what was written, keeps the buffer. */
void ens_mpw_reset(ens_mpw_t *w);
/* Hands the buffer to the caller (free() it); the writer is empty after. */
char *ens_mpw_take(ens_mpw_t *w, size_t *size);

void ens_mpw_map_begin(ens_mpw_t *w);
void ens_mpw_map_end(ens_mpw_t *w);
void ens_mpw_array_begin(ens_mpw_t *w);
void ens_mpw_array_end(ens_mpw_t *w);

void ens_mpw_nil(ens_mpw_t *w);
void ens_mpw_bool(ens_mpw_t *w, int v);
void ens_mpw_uint(ens_mpw_t *w, uint64_t v);
void ens_mpw_int(ens_mpw_t *w, int64_t v);
void ens_mpw_double(ens_mpw_t *w, double v);
/* A double, or nil when v is NaN. */
void ens_mpw_double_or_nil(ens_mpw_t *w, double v);
/* A string of n bytes (any bytes, NUL included). */
void ens_mpw_str(ens_mpw_t *w, const char *s, size_t n);
/* A NUL-terminated string. */
void ens_mpw_cstr(ens_mpw_t *w, const char *s);
void ens_mpw_bin(ens_mpw_t *w, const void *p, size_t n);
/* One complete, already encoded MessagePack object (counted as one item). */
void ens_mpw_raw(ens_mpw_t *w, const void *p, size_t n);

#endif
