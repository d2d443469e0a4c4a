/* xalloc.h - allocation that aborts on exhaustion.
 *
 * Running out of memory is not an input error: it aborts with a message, as
 * the style guide's third failure class says. Sizes are checked for overflow.
 */
#ifndef ENSEMBLED_XALLOC_H
#define ENSEMBLED_XALLOC_H

#include <stddef.h>

void *ens_xmalloc(size_t size);
void *ens_xcalloc(size_t count, size_t size);
/* Reallocates ptr to count * size bytes; aborts on overflow or exhaustion. */
void *ens_xreallocarray(void *ptr, size_t count, size_t size);
char *ens_xstrndup(const char *s, size_t len);
/* Grows the array *arr of *n elements of size bytes to at least need
 * elements (with some room ahead), the new ones zeroed; returns *arr. */
void *ens_xgrow_zeroed(void *arr, size_t *n, size_t need, size_t size);

#endif
