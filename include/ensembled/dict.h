/* dict.h - interning of names (models, labels) to small dense ids.
 *
 * Ids are assigned 0, 1, 2, ... in order of first appearance and never change
 * while the dictionary lives. Names are byte strings of bounded length; the
 * dictionary copies them.
 */
#ifndef ENSEMBLED_DICT_H
#define ENSEMBLED_DICT_H

#include <stddef.h>

typedef struct ens_dict_s ens_dict_t;

/* Creates a dictionary holding at most max_entries names of at most max_len
 * bytes each. Returns NULL only if an argument is zero. */
ens_dict_t *ens_dict_new(size_t max_entries, size_t max_len);
void ens_dict_destroy(ens_dict_t **dp);

/* Returns the id of name, adding it if new: >= 0, or ENS_EFULL when the
 * dictionary is full, ENS_ETOOLONG when len > max_len, ENS_EINVAL when empty. */
int ens_dict_intern(ens_dict_t *d, const char *name, size_t len);

/* Returns the id of name or ENS_ENOTFOUND. */
int ens_dict_find(const ens_dict_t *d, const char *name, size_t len);

/* Borrowed, NUL-terminated, valid while the dictionary lives. */
const char *ens_dict_name(const ens_dict_t *d, int id);
/* The length of a name in bytes (names may hold NUL bytes); 0 for an
 * unknown id. */
size_t ens_dict_name_len(const ens_dict_t *d, int id);
size_t ens_dict_count(const ens_dict_t *d);

#endif
