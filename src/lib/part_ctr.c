/* part_ctr.c - the counter of the partition-refinement engine (see part_int.h).
 *
 * Counts 64-bit keys in a table that is dense (slot == key) when the key space
 * is at most DENSE_MAX entries and open addressing (linear probing, Fibonacci
 * hashing) otherwise. Slots that turn non-zero are listed in touched, so that
 * reading the counts back and clearing them costs O(keys counted) and not
 * O(slots): a part keeps one counter for its life and reuses it for every pass.
 * Adding keys (ens__ctr_slot/addn/add) is inline in part_int.h, as it runs per
 * row; what is here runs once per pass.
 */
#include <stdlib.h>

#include "ensembled/xalloc.h"
#include "part_int.h"

/* Largest key space a dense counter may use (entries). */
#define DENSE_MAX ((uint64_t)1 << 22)

void ens__ctr_setup(ens__ctr_t *c, uint64_t keyspace, size_t maxkeys)
{
    size_t want;
    if (keyspace <= DENSE_MAX) {
        c->dense = 1;
        want = (size_t)keyspace;
    } else {
        c->dense = 0;
        want = 16;
        while (want < 2 * maxkeys)
            want *= 2;
        c->mask = want - 1;
    }
    if (want > c->slots) {
        free(c->cnt);
        free(c->keys);
        c->cnt = ens_xcalloc(want, sizeof(uint32_t));
        c->keys = NULL;
        c->slots = want;
    }
    /* Keys are only stored in hash mode. */
    if (!c->dense && !c->keys)
        c->keys = ens_xcalloc(c->slots, sizeof(uint64_t));
    if (maxkeys > c->touched_cap) {
        c->touched = ens_xreallocarray(c->touched, maxkeys, sizeof(size_t));
        c->touched_cap = maxkeys;
    }
    if (!c->dense)
        c->mask = want - 1;
    c->nt = 0;
}

void ens__ctr_free(ens__ctr_t *c)
{
    free(c->cnt);
    free(c->keys);
    free(c->touched);
}

size_t ens__ctr_drain(ens__ctr_t *c, uint64_t *keys, uint32_t *cnts)
{
    size_t nt = c->nt;
    for (size_t i = 0; i < nt; i++) {
        size_t s = c->touched[i];
        keys[i] = c->dense ? (uint64_t)s : c->keys[s];
        cnts[i] = c->cnt[s];
        c->cnt[s] = 0;
    }
    c->nt = 0;
    return nt;
}
