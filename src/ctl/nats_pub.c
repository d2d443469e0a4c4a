/* nats_pub.c - ensemblectl's producer side of the NATS JetStream intake:
 * messages published to a stream subject, each acknowledged by the stream
 * before the next one goes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#ifdef ENS_HAVE_NATS

#include <nats/nats.h>

struct ctl_nats_s {
    natsConnection *nc;
    jsCtx *js;
    char subject[512];
    char id_prefix[64]; /* unique per run: the stream drops a retried message */
    unsigned long long n;
};

ctl_nats_t *ctl_nats_open(const char *urls, const char *subject, const char *tls_ca,
                          const char *creds)
{
    ctl_nats_t *p = calloc(1, sizeof(*p));
    natsOptions *o = NULL;
    char copy[1024];
    const char *servers[16];
    int ns = 0;
    if (!p || strlen(subject) >= sizeof(p->subject)) {
        free(p);
        ctl_error("--subject: too long");
        return NULL;
    }
    snprintf(copy, sizeof(copy), "%s", urls);
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t && ns < 16;
         t = strtok_r(NULL, ",", &save))
        servers[ns++] = t;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, servers, ns);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 250);
    if (s == NATS_OK && creds)
        s = natsOptions_SetUserCredentialsFromFiles(o, creds, NULL);
    if (s == NATS_OK && tls_ca)
        s = natsOptions_SetSecure(o, true);
    if (s == NATS_OK && tls_ca)
        s = natsOptions_LoadCATrustedCertificates(o, tls_ca);
    if (s == NATS_OK)
        s = natsConnection_Connect(&p->nc, o);
    natsOptions_Destroy(o);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&p->js, p->nc, NULL);
    if (s != NATS_OK) {
        ctl_error("--nats %s: %s", urls, nats_GetLastError(&s));
        ctl_nats_close(&p);
        return NULL;
    }
    snprintf(p->subject, sizeof(p->subject), "%s", subject);
    snprintf(p->id_prefix, sizeof(p->id_prefix), "%ld-%d", (long)time(NULL), (int)getpid());
    return p;
}

/* A publish that gets no acknowledgement (the stream's leader changing, a
 * server gone) is retried with the same message id for up to 30 s: the
 * stream keeps one copy. */
int ctl_nats_send(ctl_nats_t *p, const void *data, size_t len)
{
    char id[96];
    snprintf(id, sizeof(id), "%s-%llu", p->id_prefix, ++p->n);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = id;
    po.MaxWait = 2000;
    natsStatus s = NATS_OK;
    jsErrCode jerr = 0;
    int64_t deadline = nats_Now() + 30000;
    do {
        s = js_Publish(NULL, p->js, p->subject, data, (int)len, &po, &jerr);
        if (s == NATS_OK)
            return 0;
        nats_Sleep(200);
    } while (nats_Now() < deadline);
    ctl_error("publish to %s: %s (JetStream error %d)", p->subject, natsStatus_GetText(s),
              (int)jerr);
    return -1;
}

void ctl_nats_close(ctl_nats_t **pp)
{
    ctl_nats_t *p = *pp;
    if (!p)
        return;
    jsCtx_Destroy(p->js);
    if (p->nc)
        natsConnection_FlushTimeout(p->nc, 5000);
    natsConnection_Destroy(p->nc);
    free(p);
    *pp = NULL;
}

#else

ctl_nats_t *ctl_nats_open(const char *urls, const char *subject, const char *tls_ca,
                          const char *creds)
{
    (void)urls, (void)subject, (void)tls_ca, (void)creds;
    ctl_error("--nats: this build of ensemblectl lacks NATS (libnats)");
    return NULL;
}

int ctl_nats_send(ctl_nats_t *p, const void *data, size_t len)
{
    (void)p, (void)data, (void)len;
    return -1;
}

void ctl_nats_close(ctl_nats_t **pp)
{
    *pp = NULL;
}

#endif
