/* fuzz_decode.c - libFuzzer target for the wire protocol decoder.
 *
 * Feeds each input to ens_proto_prewalk and ens_proto_decode with the
 * default limits and checks what the API promises, trapping on any breach:
 * a rejection carries a valid reason and no message; a pre-walk failure is
 * exactly the reason decode reports; an input the pre-walk accepts is one
 * complete object to msgpack-c too (the pre-walk exists to stand in front
 * of it); an accepted message holds 1..max_batch events whose fields meet
 * the documented bounds. Every string of every event is read byte by byte
 * so that ASan sees any pointer outside the input or the decoder's storage.
 */
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ensembled/err.h"
#include "ensembled/protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static volatile unsigned sink;

/* A name of 1..max bytes, read whole. */
static void check_name(const ens_str_t *s, size_t max)
{
    CHECK(s->ptr != NULL);
    CHECK(s->len >= 1 && s->len <= max);
    unsigned h = 0;
    for (size_t i = 0; i < s->len; i++)
        h = h * 31 + (unsigned char)s->ptr[i];
    sink = h;
}

static void check_event(const ens_event_t *e, const ens_proto_limits_t *lim)
{
    check_name(&e->task, lim->max_name);
    if (!e->query_is_uint)
        check_name(&e->query_str, lim->max_name);
    CHECK(e->ts == -1 || e->ts >= 0);
    CHECK(e->cost == -1 || e->cost >= 0);
    if (e->kind == ENS_EVENT_LABEL) {
        check_name(&e->label, lim->max_name);
        CHECK(!(e->label.len == 1 && e->label.ptr[0] == '?'));
        CHECK(e->npreds == 0);
        return;
    }
    CHECK(e->kind == ENS_EVENT_PREDICTION);
    CHECK(e->npreds >= 1 && e->npreds <= lim->max_predictions);
    for (size_t i = 0; i < e->npreds; i++) {
        check_name(&e->preds[i].model, lim->max_name);
        check_name(&e->preds[i].label, lim->max_name);
    }
}

/* msgpack-c's own verdict on an input the pre-walk accepted. */
static void check_msgpack_agrees(const uint8_t *data, size_t size)
{
    msgpack_zone *z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    CHECK(z != NULL);
    msgpack_object o;
    size_t off = 0;
    int rc = msgpack_unpack((const char *)data, size, &off, z, &o);
    CHECK(rc == MSGPACK_UNPACK_SUCCESS && off == size);
    msgpack_zone_free(z);
}

static int same_str(ens_str_t a, ens_str_t b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

static int same_event(const ens_event_t *a, const ens_event_t *b)
{
    if (a->kind != b->kind || !same_str(a->task, b->task) || a->query_is_uint != b->query_is_uint ||
        a->npreds != b->npreds || a->cost != b->cost || a->ts != b->ts)
        return 0;
    if (a->query_is_uint ? a->query_uint != b->query_uint : !same_str(a->query_str, b->query_str))
        return 0;
    if (a->kind == ENS_EVENT_LABEL && !same_str(a->label, b->label))
        return 0;
    for (size_t i = 0; i < a->npreds; i++)
        if (!same_str(a->preds[i].model, b->preds[i].model) ||
            !same_str(a->preds[i].label, b->preds[i].label))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ens_proto_limits_t lim;
    ens_proto_limits_default(&lim);
    const char *buf = (const char *)data;

    ens_reject_t pw_why = ENS_REJECT_COUNT;
    int pw = ens_proto_prewalk(buf, size, lim.max_depth, &pw_why) == 0 ? 0 : -(int)pw_why - 1;
    CHECK(pw == 0 || pw == -(ENS_REJECT_MALFORMED + 1) || pw == -(ENS_REJECT_TRAILING + 1) ||
          pw == -(ENS_REJECT_TOO_DEEP + 1));
    if (pw == 0)
        check_msgpack_agrees(data, size);

    ens_decoded_t *m = (ens_decoded_t *)&lim; /* must be overwritten */
    ens_reject_t why = ENS_REJECT_COUNT;
    int rc = ens_proto_decode(buf, size, &lim, &m, &why);
    /* One decoder reused across every input (as ingest does) gives what a
     * fresh one gives. */
    static ens_decoded_t *reused;
    if (!reused)
        reused = ens_decoded_new();
    ens_reject_t why2 = ENS_REJECT_COUNT;
    int rc2 = ens_proto_decode_into(reused, buf, size, &lim, &why2);
    CHECK(rc2 == rc);
    CHECK(rc == 0 ? ens_decoded_count(reused) == ens_decoded_count(m)
                  : why2 == why && ens_decoded_count(reused) == 0);
    for (size_t i = 0; rc == 0 && i < ens_decoded_count(m); i++)
        CHECK(same_event(ens_decoded_event(reused, i), ens_decoded_event(m, i)));
    if (rc != 0) {
        CHECK(rc == ENS_EPARSE);
        CHECK(m == NULL);
        CHECK((size_t)why < ENS_REJECT_COUNT);
        if (size <= lim.max_message_bytes && pw < 0)
            CHECK(why == (ens_reject_t)(-pw - 1));
        return 0;
    }
    CHECK(pw == 0);
    CHECK(m != NULL);
    size_t n = ens_decoded_count(m);
    CHECK(n >= 1 && n <= lim.max_batch);
    for (size_t i = 0; i < n; i++)
        check_event(ens_decoded_event(m, i), &lim);
    CHECK(ens_decoded_event(m, n) == NULL);
    ens_decoded_destroy(&m);
    CHECK(m == NULL);
    return 0;
}
