/* dict.c - name interning on uthash.
 *
 * Entries live in an array indexed by id (so ens_dict_name is O(1)) and in a
 * uthash table keyed by the name bytes (so intern and find are O(1) expected).
 */
#include "ensembled/dict.h"

#include <string.h>
#include <uthash.h>

#include "ensembled/err.h"
#include "ensembled/xalloc.h"

typedef struct entry_s {
    char *name;        /* owned, NUL-terminated */
    size_t len;        /* bytes in name */
    int id;            /* dense id */
    UT_hash_handle hh; /* keyed by name[0..len) */
} entry_t;

struct ens_dict_s {
    entry_t **by_id;    /* count entries */
    entry_t *table;     /* uthash head */
    size_t count;       /* ids handed out, free ones included */
    size_t nfree;       /* released ids, waiting to be reused */
    size_t max_entries; /* capacity */
    size_t max_len;     /* longest accepted name */
};

ens_dict_t *ens_dict_new(size_t max_entries, size_t max_len)
{
    if (max_entries == 0 || max_len == 0)
        return NULL;
    ens_dict_t *d = ens_xcalloc(1, sizeof(*d));
    d->max_entries = max_entries;
    d->max_len = max_len;
    return d;
}

void ens_dict_destroy(ens_dict_t **dp)
{
    if (!dp || !*dp)
        return;
    ens_dict_t *d = *dp;
    HASH_CLEAR(hh, d->table);
    for (size_t i = 0; i < d->count; i++) {
        free(d->by_id[i]->name);
        free(d->by_id[i]);
    }
    free(d->by_id);
    free(d);
    *dp = NULL;
}

int ens_dict_find(const ens_dict_t *d, const char *name, size_t len)
{
    entry_t *e = NULL;
    HASH_FIND(hh, d->table, name, len, e);
    return e ? e->id : ENS_ENOTFOUND;
}

int ens_dict_intern(ens_dict_t *d, const char *name, size_t len)
{
    if (len == 0)
        return ENS_EINVAL;
    if (len > d->max_len)
        return ENS_ETOOLONG;
    int id = ens_dict_find(d, name, len);
    if (id >= 0)
        return id;
    entry_t *e = NULL;
    if (d->nfree > 0) {
        /* The lowest released id: ids stay dense, so arrays indexed by
         * them never grow past the most names ever held at once. */
        for (size_t i = 0; !e; i++)
            if (!d->by_id[i]->name)
                e = d->by_id[i];
        d->nfree--;
    } else {
        if (d->count >= d->max_entries)
            return ENS_EFULL;
        e = ens_xcalloc(1, sizeof(*e));
        e->id = (int)d->count;
        d->by_id = ens_xreallocarray(d->by_id, d->count + 1, sizeof(*d->by_id));
        d->by_id[d->count++] = e;
    }
    e->name = ens_xstrndup(name, len);
    e->len = len;
    HASH_ADD_KEYPTR(hh, d->table, e->name, e->len, e);
    return e->id;
}

int ens_dict_release(ens_dict_t *d, int id)
{
    if (id < 0 || (size_t)id >= d->count || !d->by_id[id]->name)
        return ENS_EINVAL;
    entry_t *e = d->by_id[id];
    HASH_DEL(d->table, e);
    free(e->name);
    e->name = NULL;
    e->len = 0;
    d->nfree++;
    return 0;
}

size_t ens_dict_live(const ens_dict_t *d)
{
    return d->count - d->nfree;
}

const char *ens_dict_name(const ens_dict_t *d, int id)
{
    if (id < 0 || (size_t)id >= d->count)
        return NULL;
    return d->by_id[id]->name;
}

size_t ens_dict_name_len(const ens_dict_t *d, int id)
{
    if (id < 0 || (size_t)id >= d->count)
        return 0;
    return d->by_id[id]->len;
}

size_t ens_dict_count(const ens_dict_t *d)
{
    return d->count;
}
