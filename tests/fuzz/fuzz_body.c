/* fuzz_body.c - libFuzzer target for what routers and the daemon decode
 * besides events: publication bodies (ens_body_decode) and control requests
 * (ens_ctl_request_decode).
 *
 * The first input byte picks the decoder (even: body, odd: request); the
 * rest is the message. A body that decodes is encoded again and decoded
 * again: the second decoding must accept it and agree with the first in
 * every count and name, and encoding that one must give the same bytes (the
 * encoding is canonical). A request that decodes is encoded again from its
 * command and task and must decode to the same. Every decoded string is read
 * byte by byte so that ASan sees any pointer outside the decoder's storage.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ensembled/body.h"
#include "ensembled/ctlmsg.h"
#include "ensembled/mpw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static volatile unsigned sink;

static void touch(ens_str_t s)
{
    unsigned h = 0;
    for (size_t i = 0; i < s.len; i++)
        h = h * 31 + (unsigned char)s.ptr[i];
    sink = h;
}

static int same(ens_str_t a, ens_str_t b)
{
    return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* Every name and cell of b read; its shape within the documented bounds. */
static void check_body(const ens_body_t *b)
{
    touch(b->task);
    touch(b->strategy);
    touch(b->estimator);
    touch(b->explore_rule);
    for (size_t i = 0; i < b->nmodels; i++) {
        touch(b->models[i]);
        touch(b->steps[i].model);
        uint64_t bits;
        memcpy(&bits, &b->weights[i], sizeof(bits));
        sink += (unsigned)bits;
    }
    for (size_t l = 0; l < b->nlabels; l++)
        touch(b->labels[l]);
    for (size_t e = 0; e < b->ntable; e++) {
        for (size_t i = 0; i < b->nmodels; i++)
            CHECK(b->table[e].key[i] >= ENS_BODY_MISSING);
        CHECK(b->table[e].decision >= 0);
    }
    for (size_t i = 0; i < b->nexplore; i++)
        touch(b->explore_models[i]);
    for (size_t m = 0; m < b->nwindow; m++) {
        touch(b->window[m].model);
        CHECK((size_t)b->window[m].excluded < ENS_EXCL_COUNT);
    }
    CHECK((size_t)b->reason < ENS_REASON_COUNT);
    CHECK((size_t)b->comb < ENS_COMB_COUNT);
}

/* The counts and names two decodings of one body must agree on. */
static void check_same(const ens_body_t *a, const ens_body_t *b)
{
    CHECK(same(a->task, b->task) && a->version == b->version && a->budget == b->budget);
    CHECK(a->nmodels == b->nmodels && a->nlabels == b->nlabels && a->ntable == b->ntable);
    CHECK(a->nexplore == b->nexplore && a->nwindow == b->nwindow);
    CHECK(a->comb == b->comb && a->reason == b->reason && a->replaced == b->replaced);
    for (size_t i = 0; i < a->nmodels; i++)
        CHECK(same(a->models[i], b->models[i]));
    for (size_t l = 0; l < a->nlabels; l++)
        CHECK(same(a->labels[l], b->labels[l]));
    for (size_t e = 0; e < a->ntable; e++) {
        CHECK(a->table[e].decision == b->table[e].decision);
        CHECK(memcmp(a->table[e].key, b->table[e].key, a->nmodels * sizeof(int16_t)) == 0);
    }
    for (size_t m = 0; m < a->nwindow; m++)
        CHECK(same(a->window[m].model, b->window[m].model) &&
              a->window[m].rows == b->window[m].rows &&
              a->window[m].excluded == b->window[m].excluded);
}

static void fuzz_body(const char *buf, size_t len)
{
    ens_body_t *b = NULL, *again = NULL;
    char err[256];
    if (ens_body_decode(buf, len, &b, err, sizeof(err)) != 0) {
        CHECK(b == NULL);
        return;
    }
    check_body(b);
    ens_mpw_t w1, w2;
    ens_mpw_init(&w1);
    ens_mpw_init(&w2);
    ens_body_encode(b, &w1);
    CHECK(ens_body_decode(w1.data, w1.size, &again, err, sizeof(err)) == 0);
    check_same(b, again);
    ens_body_encode(again, &w2);
    CHECK(w1.size == w2.size && memcmp(w1.data, w2.data, w1.size) == 0);
    ens_mpw_free(&w1);
    ens_mpw_free(&w2);
    ens_body_destroy(&again);
    ens_body_destroy(&b);
    CHECK(b == NULL);
}

static void fuzz_request(const char *buf, size_t len)
{
    ens_ctl_request_t req, again;
    ens_ctl_err_t why = ENS_CTL_ERR_COUNT;
    char err[256];
    if (ens_ctl_request_decode(buf, len, &req, &why, err, sizeof(err)) != 0) {
        CHECK((size_t)why < ENS_CTL_ERR_COUNT);
        CHECK(strcmp(err, ens_ctl_err_text(why)) == 0);
        return;
    }
    CHECK((size_t)req.cmd < ENS_CTL_CMD_COUNT);
    CHECK(req.task_len <= ENS_MAX_NAME && req.task[req.task_len] == '\0');
    /* The encoder takes a NUL-terminated task: re-encode only those. */
    if (memchr(req.task, '\0', req.task_len))
        return;
    ens_mpw_t w;
    ens_mpw_init(&w);
    ens_ctl_request_encode(&w, req.cmd, req.has_task ? req.task : NULL);
    CHECK(ens_ctl_request_decode(w.data, w.size, &again, NULL, err, sizeof(err)) == 0);
    CHECK(again.cmd == req.cmd && again.has_task == req.has_task);
    CHECK(again.task_len == req.task_len && memcmp(again.task, req.task, req.task_len) == 0);
    ens_mpw_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_request((const char *)data + 1, size - 1);
    else
        fuzz_body((const char *)data + 1, size - 1);
    return 0;
}
