/* dict.h - interning of names (models, labels) to small dense ids.
 *
 * Ids are assigned 0, 1, 2, ... in order of first appearance; a name keeps its
 * id until it is released, and a released id is handed to the next new name
 * (the lowest first), so ids stay below the most names held at once. Names
 * are byte strings of bounded length; the dictionary copies them.
 */
#ifndef ENSEMBLED_DICT_H
#define ENSEMBLED_DICT_H

#include <stddef.h>

typedef struct ens_dict_s ens_dict_t;

/* Creates a dictionary holding at most max_entries names of at most max_len
 * bytes each. Returns NULL only if an argument is zero. */
ens_dict_t *ens_dict_new(size_t max_entries, size_t max_len);
void ens_dict_destroy(ens_dict_t **dp);

/* Returns the id of name, adding it if new (at a released id if there is
 * one): >= 0, or ENS_EFULL when max_entries names are held, ENS_ETOOLONG
 * when len > max_len, ENS_EINVAL when empty. */
int ens_dict_intern(ens_dict_t *d, const char *name, size_t len);

/* Forgets the name of id; the id goes to the next new name. Returns 0, or
 * ENS_EINVAL when id holds no name. */
int ens_dict_release(ens_dict_t *d, int id);

/* Returns the id of name or ENS_ENOTFOUND. */
int ens_dict_find(const ens_dict_t *d, const char *name, size_t len);

/* Borrowed, NUL-terminated, valid until the id is released; NULL for an id
 * that holds no name. */
const char *ens_dict_name(const ens_dict_t *d, int id);
/* The length of a name in bytes (names may hold NUL bytes); 0 for an
 * unknown id. */
size_t ens_dict_name_len(const ens_dict_t *d, int id);
/* Ids handed out (names held plus released ids): every id is below it. */
size_t ens_dict_count(const ens_dict_t *d);
/* Names held. */
size_t ens_dict_live(const ens_dict_t *d);

#endif
