/* ctlmsg.h - the control protocol (docs/protocol.md, "Control"): requests
 * {"cmd": name, "task": T?} and replies {"ok": bool, "error"?: text, ...}.
 *
 * The daemon decodes requests with ens_ctl_request_decode and writes replies
 * with ens_ctl_reply_begin / ens_ctl_reply_error; ensemblectl writes
 * requests with ens_ctl_request_encode and reads replies with
 * ens_ctl_reply_check. A request is untrusted: the size cap and the
 * container pre-walk of protocol.h run before msgpack-c sees a byte.
 */
#ifndef ENSEMBLED_CTLMSG_H
#define ENSEMBLED_CTLMSG_H

#include <msgpack.h>
#include <stddef.h>

#include "ensembled/data.h"
#include "ensembled/mpw.h"

/* The commands and their names on the wire. */
#define ENS_CTL_CMD_MAP(XX)                                                                        \
    XX(STATUS, "status")                                                                           \
    XX(ENSEMBLE, "ensemble")                                                                       \
    XX(RECOMPUTE, "recompute")

typedef enum {
#define ENS__CTL_CMD_ENUM(id, name) ENS_CTL_##id,
    ENS_CTL_CMD_MAP(ENS__CTL_CMD_ENUM)
#undef ENS__CTL_CMD_ENUM
        ENS_CTL_CMD_COUNT
} ens_ctl_cmd_t;

/* Every error text the daemon replies with, so that the daemon, ensemblectl
 * and the tests spell them alike. The first four come from
 * ens_ctl_request_decode; the last two are the daemon's answers about
 * tasks. */
#define ENS_CTL_ERR_MAP(XX)                                                                        \
    XX(NOT_MSGPACK, "request is not a valid MessagePack object of at most 64 KiB")                 \
    XX(NO_CMD, "request must be a map with a string \"cmd\"")                                      \
    XX(BAD_TASK, "\"task\" must be a string of at most 256 bytes")                                 \
    XX(UNKNOWN_CMD, "unknown command (status, ensemble, recompute)")                               \
    XX(UNKNOWN_TASK, "unknown task")                                                               \
    XX(NO_ENSEMBLE, "no ensemble published yet for this task")

typedef enum {
#define ENS__CTL_ERR_ENUM(id, text) ENS_CTL_ERR_##id,
    ENS_CTL_ERR_MAP(ENS__CTL_ERR_ENUM)
#undef ENS__CTL_ERR_ENUM
        ENS_CTL_ERR_COUNT
} ens_ctl_err_t;

/* Largest request accepted, in bytes. */
#define ENS_CTL_MAX_REQUEST 65536

/* The name of a command / the text of an error ("?" out of range). */
const char *ens_ctl_cmd_name(ens_ctl_cmd_t c);
const char *ens_ctl_err_text(ens_ctl_err_t e);

/* The command named s[0..n) (exact bytes): 0, or ENS_ENOTFOUND. */
int ens_ctl_cmd_parse(const char *s, size_t n, ens_ctl_cmd_t *out);

typedef struct {
    ens_ctl_cmd_t cmd;
    int has_task;                /* "task" was given */
    char task[ENS_MAX_NAME + 1]; /* NUL-terminated copy; "default" when absent */
    size_t task_len;             /* bytes (the name may hold NUL bytes) */
} ens_ctl_request_t;

/* Appends the request map {"cmd": name} or {"cmd": name, "task": task} to
 * w; task is NUL-terminated, NULL for none. */
void ens_ctl_request_encode(ens_mpw_t *w, ens_ctl_cmd_t cmd, const char *task);

/* Decodes one request with the daemon's checks, in this order: at most
 * ENS_CTL_MAX_REQUEST bytes, one complete MessagePack object (pre-walk,
 * depth 4) (NOT_MSGPACK); a map whose first "cmd" is a string of at most
 * 31 bytes (NO_CMD: no command name is longer, and the daemon has always
 * answered so);
 * its first "task", if any, a string of at most ENS_MAX_NAME bytes
 * (BAD_TASK); a known command (UNKNOWN_CMD). Other keys are ignored.
 * Returns 0 and fills *req, or ENS_EPARSE with the error text to reply in
 * err and its id in *why (why may be NULL). */
int ens_ctl_request_decode(const char *buf, size_t len, ens_ctl_request_t *req, ens_ctl_err_t *why,
                           char *err, size_t errlen);

/* Appends the whole reply {"ok": false, "error": msg} to w. */
void ens_ctl_reply_error(ens_mpw_t *w, const char *msg);

/* Opens the reply map and writes "ok": true; the caller appends its
 * entries and closes the map with ens_mpw_map_end. */
void ens_ctl_reply_begin(ens_mpw_t *w);

/* Reads a reply (client side): pre-walks and unpacks buf[0..len) into zone
 * (initialised by the caller, which destroys it after use of *obj) and
 * checks that it is a map with a boolean "ok". Returns 0 when ok is true;
 * 1 when it is false, with the reply's "error" text in err (or "no error
 * given"); ENS_EPARSE when buf is not a reply, with the reason in err. On 0
 * and 1, *obj is the whole reply, valid while zone lives. */
int ens_ctl_reply_check(const char *buf, size_t len, msgpack_zone *zone, msgpack_object *obj,
                        char *err, size_t errlen);

#endif
