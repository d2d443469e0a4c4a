/* err.c - descriptions of ENS_E* codes and -errno values. */
#include "ensembled/err.h"

#include <string.h>

const char *ens_strerror(int err)
{
    switch (err) {
#define ENS__ERR_CASE(name, value, text)                                                           \
    case ENS_##name:                                                                               \
        return text;
        ENS_ERR_MAP(ENS__ERR_CASE)
#undef ENS__ERR_CASE
    case 0:
        return "success";
    default:
        break;
    }
    if (err < 0 && err > -1000)
        return strerror(-err);
    return "unknown error";
}
