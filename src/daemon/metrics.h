/* metrics.h - the Prometheus text exposition over HTTP ([metrics] bind).
 *
 * The figures are the status reply's (docs/protocol.md) under conventional
 * names (docs/metrics.md), the published bodies' accuracy and bounds, and a
 * histogram of selection durations kept here. This module reads no other:
 * the daemon hands it the status map as MessagePack and the bodies, on the
 * loop thread, which it copies; the first scrape after (on an HTTP thread
 * of libmicrohttpd) renders them into the text it and later scrapes get
 * until the next update. A scrape thus never waits for the loop, and the
 * loop neither waits for a scrape nor spends the rendering.
 */
#ifndef ENSEMBLED_METRICS_H
#define ENSEMBLED_METRICS_H

#include <stddef.h>

typedef struct ens_metrics_s ens_metrics_t;

/* A task's latest published body (MessagePack map; borrowed). */
typedef struct {
    const char *task;
    size_t len;
    const char *body;
    size_t size;
} ens_metrics_body_t;

/* Parses "host:port" (an IPv4 address, or an IPv6 one in brackets) into
 * the storage at addr (at least sizeof(struct sockaddr_in6)): 0, or -1
 * with the reason in err. */
int ens_metrics_parse_bind(const char *bind, void *addr, char *err, size_t errlen);

/* Listens on bind ("host:port"); an empty bind listens nowhere (the text
 * is still rendered: tests). NULL with the reason in err. */
ens_metrics_t *ens_metrics_new(const char *bind, char *err, size_t errlen);
/* Stops the HTTP thread (open scrapes are cut) and frees; NULL-safe. */
void ens_metrics_destroy(ens_metrics_t **mp);

/* One selection of task[0..len) took seconds. Loop thread. */
void ens_metrics_observe_selection(ens_metrics_t *m, const char *task, size_t len, double seconds);

/* Takes copies of status[0..len) (the status reply's map, "ok" optional),
 * the bodies and the histograms, rendered into the text scrapes get from
 * now on when the next one asks. Returns 0, or -1 when status is not a map
 * or memory is short (the previous text stays). Loop thread. */
int ens_metrics_update(ens_metrics_t *m, const char *status, size_t len,
                       const ens_metrics_body_t *bodies, size_t n);

/* A copy of the current text (free() it), its length in *len; renders
 * the last update first if no reader has yet (a status the renderer cannot
 * read leaves the previous text). */
char *ens_metrics_text(ens_metrics_t *m, size_t *len);

#endif
