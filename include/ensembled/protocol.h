/* protocol.h - wire protocol v2: decoding and encoding prediction and label
 * events, and the rules for names and topics.
 *
 * One ZeroMQ message is one MessagePack object: an event map or an array of
 * event maps (a batch); see docs/protocol.md. Decoding is all or nothing: a
 * batch with one bad event is rejected whole, so a producer never has to
 * guess which half of its batch was kept.
 *
 * Before msgpack-c sees a byte, a pre-walk checks every container header
 * against the bytes actually present (msgpack-c sizes its allocations from
 * the declared lengths: five bytes can ask it for ~96 GB) and bounds nesting
 * depth and object count. Strings in decoded events point into the message
 * buffer, which must outlive the events.
 */
#ifndef ENSEMBLED_PROTOCOL_H
#define ENSEMBLED_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/mpw.h"

/* Why a message was rejected; the names are the counters of `status`. */
#define ENS_REJECT_MAP(XX)                                                                         \
    XX(TOO_BIG, "too_big", "message larger than ingest.max_message_bytes")                         \
    XX(MALFORMED, "malformed", "not valid MessagePack (truncated or bad header)")                  \
    XX(TRAILING, "trailing_bytes", "bytes after the MessagePack object")                           \
    XX(TOO_DEEP, "too_deep", "containers nested too deep")                                         \
    XX(NOT_EVENT, "not_event", "neither an event map nor an array of event maps")                  \
    XX(BATCH_TOO_LONG, "batch_too_long", "more events in a batch than allowed")                    \
    XX(EMPTY_BATCH, "empty_batch", "a batch with no event")                                        \
    XX(BAD_KIND, "bad_kind", "kind missing or not prediction/label")                               \
    XX(BAD_TYPE, "bad_type", "a field of the wrong type")                                          \
    XX(DUP_KEY, "duplicate_key", "a key given twice in one event")                                 \
    XX(NO_QUERY, "no_query", "query missing or empty")                                             \
    XX(NO_MODEL, "no_model", "prediction without model/label or predictions")                      \
    XX(NO_LABEL, "no_label", "label event without a label, or '?' as the truth")                   \
    XX(NAME_TOO_LONG, "name_too_long", "a task, model, query or label longer than allowed")        \
    XX(EMPTY_NAME, "empty_name", "an empty task, model or label")                                  \
    XX(BAD_NAME, "bad_name", "a task, model or label not valid UTF-8 or holding a NUL byte")       \
    XX(BAD_PROTOCOL, "bad_protocol", "protocol not an integer from 1 to the daemon's version")     \
    XX(BAD_TS, "bad_ts", "ts not a finite non-negative number")                                    \
    XX(BAD_COST, "bad_cost", "cost not a finite number from 0 to ingest.max_cost")                 \
    XX(TOO_MANY_PREDICTIONS, "too_many_predictions", "more predictions in one event than allowed")

typedef enum {
#define ENS__REJECT_ENUM(id, name, text) ENS_REJECT_##id,
    ENS_REJECT_MAP(ENS__REJECT_ENUM)
#undef ENS__REJECT_ENUM
        ENS_REJECT_COUNT
} ens_reject_t;

/* The counter name and a description of a reason. */
const char *ens_reject_name(ens_reject_t r);
const char *ens_reject_text(ens_reject_t r);

/* The protocol version this build speaks: every body carries it as
 * `protocol`, and events may (1 and 2 decode alike). Version 2 made names
 * UTF-8 without NUL and ended topics with a NUL byte. */
#define ENS_PROTOCOL_VERSION 2

/* Whether p[0..len) may name a task, model or label: valid UTF-8 (shortest
 * form, no surrogates, at most U+10FFFF) without a NUL byte. Returns 1 or 0.
 * Length limits are the decoder's business. */
int ens_name_valid(const char *p, size_t len);

/* The publication topic of a task: "ensemble." then the name then one NUL
 * byte. Since names hold no NUL, subscribing to a task's whole topic matches
 * that task only (ZeroMQ matches subscriptions by prefix); "ensemble."
 * matches every task. Writes at most cap bytes to buf and returns the
 * topic's length (which may exceed cap: then buf holds a truncated topic). */
#define ENS_TOPIC_PREFIX "ensemble."
size_t ens_topic(const char *task, size_t len, char *buf, size_t cap);

typedef struct {
    const char *ptr; /* into the message buffer, not NUL-terminated */
    size_t len;
} ens_str_t;

typedef struct {
    ens_str_t model;
    ens_str_t label; /* "?" or an empty label from nil: an abstention */
} ens_pred_t;

typedef enum { ENS_EVENT_PREDICTION, ENS_EVENT_LABEL } ens_event_kind_t;

typedef struct {
    ens_event_kind_t kind;
    ens_str_t task;    /* "default" when absent */
    int query_is_uint; /* 1: query_uint holds it; 0: query_str */
    uint64_t query_uint;
    ens_str_t query_str;
    ens_str_t label;   /* label events: the truth */
    ens_pred_t *preds; /* prediction events: one or more answers */
    size_t npreds;
    double cost; /* -1 when absent */
    double ts;   /* -1 when absent */
} ens_event_t;

typedef struct {
    size_t max_message_bytes; /* whole message */
    size_t max_batch;         /* events per batch */
    size_t max_name;          /* bytes of a task, model, label or query */
    size_t max_predictions;   /* answers in one event */
    size_t max_depth;         /* container nesting */
    double max_cost;          /* largest `cost` of an event */
} ens_proto_limits_t;

/* Sensible limits: 1 MiB, 10,000 events, 256-byte names, 1024 predictions,
 * depth 4, cost 1e6. */
void ens_proto_limits_default(ens_proto_limits_t *lim);

typedef struct ens_decoded_s ens_decoded_t;

/* Decodes buf[0..len). On success returns 0 and stores in *out a decoded
 * message (free with ens_decoded_destroy) whose events point into buf. On
 * failure returns ENS_EPARSE and stores the reason in *why; *out is NULL. */
int ens_proto_decode(const char *buf, size_t len, const ens_proto_limits_t *lim,
                     ens_decoded_t **out, ens_reject_t *why);

/* The same into a message kept for reuse: ens_decoded_new() once, then
 * ens_proto_decode_into for each message, ens_decoded_destroy at the end.
 * The events of the previous message are gone; after a failure m holds no
 * event. A stream of messages of similar size allocates nothing. */
ens_decoded_t *ens_decoded_new(void);
int ens_proto_decode_into(ens_decoded_t *m, const char *buf, size_t len,
                          const ens_proto_limits_t *lim, ens_reject_t *why);

size_t ens_decoded_count(const ens_decoded_t *m);
/* Borrowed, valid until ens_decoded_destroy. */
const ens_event_t *ens_decoded_event(const ens_decoded_t *m, size_t i);
void ens_decoded_destroy(ens_decoded_t **mp);

/* Checks that buf[0..len) is one complete MessagePack object whose containers
 * fit in the bytes present, nested at most max_depth deep: run it before
 * msgpack-c unpacks anything from the network or a file. Returns 0, or
 * ENS_EPARSE with the reason (ENS_REJECT_MALFORMED, _TRAILING, _TOO_DEEP) in
 * *why when why is not NULL. */
int ens_proto_prewalk(const char *buf, size_t len, size_t max_depth, ens_reject_t *why);

/* Appends one event map to w, as every producer writes it: kind, task,
 * query (an unsigned integer when query_is_uint, else a string), then for a
 * prediction with one answer model and label, with several a predictions
 * map (model -> label), and for a label event its label; ts and cost last,
 * each only when >= 0. Labels are strings ("?": an abstention). A batch is
 * an array of such maps: the caller opens and closes it. Nothing is
 * validated: an event the decoder would refuse (an empty name, say) is
 * written as given, so the daemon counts it. Strings are borrowed. */
void ens_event_encode(ens_mpw_t *w, const ens_event_t *e);

#endif
