/* natspub.c - publication to a NATS JetStream key-value bucket (see
 * natspub.h). */
#include "natspub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "ensembled/xalloc.h"
#include "log.h"
#include "natsin.h"

/* The key stream_seq with its value, as ens_natspub_value appends it: a
 * fixstr of 10 bytes, then a uint 64 (big endian). */
#define SEQ_KEY "stream_seq"
#define SEQ_TAIL (1 + 10 + 1 + 8)

int ens_natspub_value(const char *body, size_t size, uint64_t seq, char **out, size_t *outlen)
{
    const unsigned char *b = (const unsigned char *)body;
    size_t head, n;
    if (size >= 1 && b[0] >= 0x80 && b[0] <= 0x8f)
        head = 1, n = b[0] & 0x0f;
    else if (size >= 3 && b[0] == 0xde)
        head = 3, n = ((size_t)b[1] << 8) | b[2];
    else if (size >= 5 && b[0] == 0xdf)
        head = 5, n = ((size_t)b[1] << 24) | ((size_t)b[2] << 16) | ((size_t)b[3] << 8) | b[4];
    else
        return -1;
    /* The new count as a map32 header, whatever the old one was. */
    n++;
    size_t len = 5 + (size - head) + SEQ_TAIL;
    unsigned char *v = ens_xmalloc(len), *p = v;
    *p++ = 0xdf;
    for (int i = 3; i >= 0; i--)
        *p++ = (unsigned char)(n >> (8 * i));
    memcpy(p, b + head, size - head);
    p += size - head;
    *p++ = 0xa0 | 10;
    memcpy(p, SEQ_KEY, 10);
    p += 10;
    *p++ = 0xcf;
    for (int i = 7; i >= 0; i--)
        *p++ = (unsigned char)(seq >> (8 * i));
    *out = (char *)v;
    *outlen = len;
    return 0;
}

uint64_t ens_natspub_value_seq(const void *value, size_t len)
{
    if (!value || len < SEQ_TAIL)
        return 0;
    const unsigned char *t = (const unsigned char *)value + len - SEQ_TAIL;
    if (t[0] != (0xa0 | 10) || memcmp(t + 1, SEQ_KEY, 10) != 0 || t[11] != 0xcf)
        return 0;
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++)
        seq = (seq << 8) | t[12 + i];
    return seq;
}

#ifdef ENS_HAVE_NATS

#include <stdatomic.h>

/* A body waiting for the thread. */
typedef struct item_s {
    struct item_s *next;
    char *key;   /* NUL-terminated task name */
    char *value; /* body with stream_seq */
    size_t len;
    uint64_t seq;
} item_t;

struct ens_natspub_s {
    const ens_config_t *conf; /* borrowed */
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    uv_thread_t thread;
    int thread_started;
    uv_mutex_t mu; /* guards queue, quit */
    uv_cond_t wake;
    item_t *queue; /* at most one per task */
    int quit;
    atomic_uint_fast64_t puts, skipped, errors;
    uint64_t bad_keys; /* loop thread */
    ens_ratelimit_t rl_key, rl_err;
};

static void item_free(item_t *it)
{
    free(it->key);
    free(it->value);
    free(it);
}

/* Puts it unless the bucket holds a value at a position as high: create
 * when absent, else update on the revision read; a lost race is retried
 * with the new revision. */
static void put_if_newer(ens_natspub_t *p, const item_t *it)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        kvEntry *e = NULL;
        uint64_t rev = 0;
        natsStatus s = kvStore_Get(&e, p->kv, it->key);
        if (s == NATS_NOT_FOUND) {
            s = kvStore_Create(&rev, p->kv, it->key, it->value, (int)it->len);
        } else if (s == NATS_OK) {
            uint64_t stored = ens_natspub_value_seq(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e));
            uint64_t last = kvEntry_Revision(e);
            kvEntry_Destroy(e);
            if (stored >= it->seq) {
                atomic_fetch_add(&p->skipped, 1);
                return;
            }
            s = kvStore_Update(&rev, p->kv, it->key, it->value, (int)it->len, last);
        }
        if (s == NATS_OK) {
            atomic_fetch_add(&p->puts, 1);
            return;
        }
        nats_Sleep(20);
    }
    atomic_fetch_add(&p->errors, 1);
    ens_log_limited(&p->rl_err, ENS_LOG_WARNING, "nats: put of %s into bucket %s failed: %s",
                    it->key, p->conf->nats_kv, nats_GetLastError(NULL));
}

static void worker(void *arg)
{
    ens_natspub_t *p = arg;
    for (;;) {
        uv_mutex_lock(&p->mu);
        while (!p->quit && !p->queue)
            uv_cond_wait(&p->wake, &p->mu);
        item_t *q = p->queue;
        p->queue = NULL;
        int quit = p->quit;
        uv_mutex_unlock(&p->mu);
        while (q) {
            item_t *next = q->next;
            put_if_newer(p, q);
            item_free(q);
            q = next;
        }
        if (quit)
            return;
    }
}

/* A NATS subject token: what a key may hold. */
static int key_ok(const char *s, size_t len)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!strchr("-_=/.", s[i]) &&
            !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

void ens_natspub_put(ens_natspub_t *p, const char *task, size_t len, const char *body, size_t size,
                     uint64_t seq)
{
    if (!p)
        return;
    if (!key_ok(task, len)) {
        p->bad_keys++;
        ens_log_limited(&p->rl_key, ENS_LOG_WARNING,
                        "nats: task %.*s is not a key-value key ([-_=/.a-zA-Z0-9]); not put",
                        (int)(len > 64 ? 64 : len), task);
        return;
    }
    item_t *it = ens_xcalloc(1, sizeof(*it));
    if (ens_natspub_value(body, size, seq, &it->value, &it->len) < 0) {
        free(it);
        return;
    }
    it->key = ens_xmalloc(len + 1);
    memcpy(it->key, task, len);
    it->key[len] = '\0';
    it->seq = seq;
    uv_mutex_lock(&p->mu);
    item_t **at = &p->queue;
    while (*at && strcmp((*at)->key, it->key) != 0)
        at = &(*at)->next;
    if (*at) { /* a newer body of the same task replaces the one queued */
        it->next = (*at)->next;
        item_free(*at);
    }
    *at = it;
    uv_cond_signal(&p->wake);
    uv_mutex_unlock(&p->mu);
}

int ens_natspub_open(const ens_config_t *conf, ens_natspub_t **out, char *err, size_t errlen)
{
    ens_natspub_t *p = ens_xcalloc(1, sizeof(*p));
    p->conf = conf;
    uv_mutex_init(&p->mu);
    uv_cond_init(&p->wake);
    *out = p;
    if (ens_natsin_connect(conf, &p->nc, err, errlen) < 0)
        return -1;
    natsStatus s = natsConnection_JetStream(&p->js, p->nc, NULL);
    if (s == NATS_OK)
        s = js_KeyValue(&p->kv, p->js, conf->nats_kv);
    if (s != NATS_OK) {
        snprintf(err, errlen, "publish.nats_kv: bucket %s: %s", conf->nats_kv,
                 nats_GetLastError(&s));
        return -1;
    }
    if (uv_thread_create(&p->thread, worker, p) != 0) {
        snprintf(err, errlen, "publish.nats_kv: cannot start its thread");
        return -1;
    }
    p->thread_started = 1;
    return 0;
}

void ens_natspub_destroy(ens_natspub_t **pp)
{
    ens_natspub_t *p = *pp;
    if (!p)
        return;
    if (p->thread_started) {
        uv_mutex_lock(&p->mu);
        p->quit = 1;
        uv_cond_signal(&p->wake);
        uv_mutex_unlock(&p->mu);
        uv_thread_join(&p->thread);
    }
    while (p->queue) {
        item_t *next = p->queue->next;
        item_free(p->queue);
        p->queue = next;
    }
    kvStore_Destroy(p->kv);
    jsCtx_Destroy(p->js);
    natsConnection_Destroy(p->nc);
    uv_mutex_destroy(&p->mu);
    uv_cond_destroy(&p->wake);
    free(p);
    *pp = NULL;
}

void ens_natspub_status(const ens_natspub_t *p, ens_mpw_t *w)
{
    if (!p)
        return;
    ens_natspub_t *m = (ens_natspub_t *)(uintptr_t)p; /* atomics load through a non-const */
    const struct {
        const char *key;
        uint64_t v;
    } counts[] = {{"puts", atomic_load(&m->puts)},
                  {"skipped_older", atomic_load(&m->skipped)},
                  {"bad_keys", p->bad_keys},
                  {"errors", atomic_load(&m->errors)}};
    ens_mpw_cstr(w, "nats_kv");
    ens_mpw_map_begin(w);
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        ens_mpw_cstr(w, counts[i].key);
        ens_mpw_uint(w, counts[i].v);
    }
    ens_mpw_map_end(w);
}

#else /* !ENS_HAVE_NATS */

int ens_natspub_open(const ens_config_t *conf, ens_natspub_t **out, char *err, size_t errlen)
{
    (void)conf;
    *out = NULL;
    snprintf(err, errlen, "publish.nats_kv: this build of ensembled lacks NATS (libnats)");
    return -1;
}

void ens_natspub_put(ens_natspub_t *p, const char *task, size_t len, const char *body, size_t size,
                     uint64_t seq)
{
    (void)p, (void)task, (void)len, (void)body, (void)size, (void)seq;
}

void ens_natspub_destroy(ens_natspub_t **pp)
{
    *pp = NULL;
}

void ens_natspub_status(const ens_natspub_t *p, ens_mpw_t *w)
{
    (void)p, (void)w;
}

#endif
