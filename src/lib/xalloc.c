/* xalloc.c - allocation that aborts on exhaustion or size overflow. */
#include "ensembled/xalloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(size_t count, size_t size)
{
    fprintf(stderr, "ensembled: out of memory (%zu x %zu bytes)\n", count, size);
    abort();
}

void *ens_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        die(1, size);
    return p;
}

void *ens_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        die(count, size);
    return p;
}

void *ens_xreallocarray(void *ptr, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        die(count, size);
    size_t bytes = count * size;
    void *p = realloc(ptr, bytes ? bytes : 1);
    if (!p)
        die(count, size);
    return p;
}

void *ens_xgrow_zeroed(void *arr, size_t *n, size_t need, size_t size)
{
    if (need <= *n)
        return arr;
    size_t next = need + need / 2 + 8;
    char *p = ens_xreallocarray(arr, next, size);
    memset(p + *n * size, 0, (next - *n) * size);
    *n = next;
    return p;
}

char *ens_xstrndup(const char *s, size_t len)
{
    char *p = ens_xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
