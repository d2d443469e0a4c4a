/* err.h - error codes of the ensembled library.
 *
 * Functions return 0 (or a non-negative count or id) on success and a negative
 * ENS_E* code on failure. System failures are returned as -errno, which never
 * collides with these codes (they start at -1000).
 */
#ifndef ENSEMBLED_ERR_H
#define ENSEMBLED_ERR_H

#define ENS_ERR_MAP(XX)                                                                            \
    XX(EINVAL, -1000, "invalid argument")                                                          \
    XX(EPARSE, -1001, "malformed input")                                                           \
    XX(EFULL, -1002, "capacity exceeded")                                                          \
    XX(ETOOLONG, -1003, "name too long")                                                           \
    XX(ENOTFOUND, -1004, "not found")                                                              \
    XX(EEMPTY, -1005, "no usable rows")                                                            \
    XX(ETOOBIG, -1006, "problem too large")                                                        \
    XX(EDUP, -1007, "duplicate name")

enum {
#define ENS__ERR_ENUM(name, value, text) ENS_##name = (value),
    ENS_ERR_MAP(ENS__ERR_ENUM)
#undef ENS__ERR_ENUM
};

/* Returns a static description of an ENS_E* code or of a -errno value. */
const char *ens_strerror(int err);

#endif
