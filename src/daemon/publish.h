/* publish.h - the XPUB socket, publication bodies and the last-value cache.
 *
 * Each publication is two frames: the topic ("ensemble.<task>" and a NUL
 * byte: ens_topic) and the body (ensembled/body.h, docs/protocol.md). The socket runs with
 * ZMQ_XPUB_VERBOSE so every subscription reaches us, even a repeated one; on
 * each, the latest body of every task whose topic the subscription prefix
 * matches is sent again, so a router that starts late never waits a whole
 * period. Versions are per task and only grow; the `published` hook sees
 * each one (the journal keeps them across restarts). Loop thread only.
 */
#ifndef ENSEMBLED_PUBLISH_H
#define ENSEMBLED_PUBLISH_H

#include <stdint.h>
#include <uv.h>

#include "ensembled/mpw.h"
#include "ensembled/pipeline.h"
#include "task.h"

typedef struct {
    void (*published)(void *ud, const ens_task_t *t, uint64_t version);
    void *ud;
} ens_publish_hooks_t;

typedef struct ens_publish_s ens_publish_t;

/* Without a socket, bodies are kept but not sent (until one is attached:
 * the daemon restores versions before it binds sockets). */
ens_publish_t *ens_publish_new(const ens_tasks_t *tasks, const ens_publish_hooks_t *hooks);
/* Takes sock, a bound XPUB socket (closed by ens_publish_close). */
void ens_publish_attach(ens_publish_t *pub, uv_loop_t *loop, void *sock);
/* Closes the socket (loop still running). */
void ens_publish_close(ens_publish_t *pub);
void ens_publish_destroy(ens_publish_t **pp);

/* Publishes a selection of t with the next version, stamped ts (wall). */
void ens_publish_result(ens_publish_t *pub, const ens_task_t *t, const ens_pipeline_t *p,
                        double ts);

/* A restored version: the next publication of t follows it. */
void ens_publish_restore_version(ens_publish_t *pub, const ens_task_t *t, uint64_t version);
uint64_t ens_publish_version(const ens_publish_t *pub, const ens_task_t *t);
/* The last body of t (borrowed; size 0: none yet). */
const char *ens_publish_body(const ens_publish_t *pub, const ens_task_t *t, size_t *size);
/* The published set of t by name (borrowed; n 0: none). */
void ens_publish_models(const ens_publish_t *pub, const ens_task_t *t, const ens_str_t **names,
                        size_t *n);

/* Entries of the status reply: `published` (new publications sent) and
 * `cache_resends` (last bodies sent again on a subscription), into the top
 * map, and, per
 * task, version, ensemble and explore_extra_queries_per_query. */
void ens_publish_status(const ens_publish_t *pub, ens_mpw_t *w);
void ens_publish_task_status(const ens_publish_t *pub, const ens_task_t *t, ens_mpw_t *w);

#endif
