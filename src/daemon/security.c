/* security.c - CURVE keys and the ZAP handler (see security.h). */
#include "security.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ensembled/xalloc.h"
#include "log.h"
#include "zsock.h"

struct ens_security_s {
    char secret[41];     /* the server's secret key, Z85 */
    uint8_t (*keys)[32]; /* authorized client public keys */
    size_t nkeys;
    ens_zsock_t *zap; /* the ZAP handler's REP socket */
    ens_security_stats_t st;
    ens_ratelimit_t rl;
    char keys_dir[ENS_CONF_STR]; /* security.authorized_keys_dir */
};

int ens_read_z85(const char *path, char *z85)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char buf[256];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = buf;
    while (*p && isspace((unsigned char)*p))
        p++;
    size_t len = 0;
    while (p[len] && !isspace((unsigned char)p[len]))
        len++;
    if (len != 40)
        return -1;
    memcpy(z85, p, 40);
    z85[40] = '\0';
    uint8_t bin[32];
    return zmq_z85_decode(bin, z85) ? 0 : -1;
}

/* Loads every key file of the authorized directory. */
static int load_keys(ens_security_t *s, const char *dir, char *err, size_t errlen)
{
    DIR *dp = opendir(dir);
    if (!dp) {
        snprintf(err, errlen, "security.authorized_keys_dir %s: %s", dir, strerror(errno));
        return -1;
    }
    free(s->keys);
    s->keys = NULL;
    s->nkeys = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        if (e->d_name[0] == '.')
            continue;
        char path[4352], z85[41];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (ens_read_z85(path, z85) < 0) {
            ENS_LOG(WARNING, "security: %s is not a Z85 public key; ignored", path);
            continue;
        }
        s->keys = ens_xreallocarray(s->keys, s->nkeys + 1, 32);
        zmq_z85_decode(s->keys[s->nkeys++], z85);
    }
    closedir(dp);
    s->st.keys = s->nkeys;
    return 0;
}

static int authorized(const ens_security_t *s, const void *key, size_t len)
{
    if (len != 32)
        return 0;
    for (size_t i = 0; i < s->nkeys; i++)
        if (memcmp(s->keys[i], key, 32) == 0)
            return 1;
    return 0;
}

/* A ZAP request: version, request id, domain, address, identity,
 * mechanism, credentials. The reply: version, request id, status code,
 * status text, user id, metadata. */
static void on_zap(void *ud, ens_zsock_t *z, zmq_msg_t *frames, size_t n)
{
    ens_security_t *s = ud;
    void *sock = ens_zsock_socket(z);
    int ok = n >= 7 && zmq_msg_size(&frames[5]) == 5 &&
             memcmp(zmq_msg_data(&frames[5]), "CURVE", 5) == 0 &&
             authorized(s, zmq_msg_data(&frames[6]), zmq_msg_size(&frames[6]));
    if (ok) {
        s->st.accepted++;
    } else {
        s->st.refused++;
        ens_log_limited(&s->rl, ENS_LOG_WARNING, "security: refused a client from %.*s",
                        n >= 4 ? (int)zmq_msg_size(&frames[3]) : 1,
                        n >= 4 ? (const char *)zmq_msg_data(&frames[3]) : "?");
    }
    const char *code = ok ? "200" : "400", *text = ok ? "OK" : "unauthorized client key";
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(sock, n >= 2 ? zmq_msg_data(&frames[1]) : "", n >= 2 ? zmq_msg_size(&frames[1]) : 0,
             ZMQ_SNDMORE);
    zmq_send(sock, code, 3, ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0);
}

/* The keys of the configuration: 0, or -1 with err. */
static int load_server_keys(ens_security_t *s, const ens_config_t *c, char *err, size_t errlen)
{
    char pub[41], derived[41], path[ENS_CONF_STR + 256];
    const char *why = NULL;
    if (ens_config_path(c->curve_secret_key_file, path, sizeof(path), &why) == 0 &&
        access(path, R_OK) < 0)
        why = strerror(errno);
    else if (!why && ens_read_z85(path, s->secret) < 0)
        why = "not a Z85 key";
    if (why) {
        snprintf(err, errlen, "security.curve_secret_key_file %s: %s", c->curve_secret_key_file,
                 why);
        return -1;
    }
    zmq_curve_public(derived, s->secret);
    if (c->curve_public_key_file[0] &&
        (ens_config_path(c->curve_public_key_file, path, sizeof(path), &why) < 0 ||
         ens_read_z85(path, pub) < 0 || strcmp(pub, derived) != 0)) {
        snprintf(err, errlen, "security.curve_public_key_file %s does not match the secret key",
                 c->curve_public_key_file);
        return -1;
    }
    if (c->authorized_keys_dir[0] == '\0') {
        snprintf(err, errlen, "security: a secret key needs security.authorized_keys_dir");
        return -1;
    }
    snprintf(s->keys_dir, sizeof(s->keys_dir), "%s", c->authorized_keys_dir);
    return load_keys(s, c->authorized_keys_dir, err, errlen);
}

int ens_security_open(uv_loop_t *loop, void *zctx, const ens_config_t *c, ens_security_t **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    if (c->curve_secret_key_file[0] == '\0')
        return 0;
    if (!zmq_has("curve")) {
        snprintf(err, errlen, "security: this libzmq has no CURVE support");
        return -1;
    }
    ens_security_t *s = ens_xcalloc(1, sizeof(*s));
    if (load_server_keys(s, c, err, errlen) < 0) {
        ens_security_free(&s);
        return -1;
    }
    void *zap = zmq_socket(zctx, ZMQ_REP);
    if (zmq_bind(zap, "inproc://zeromq.zap.01") < 0) {
        snprintf(err, errlen, "security: ZAP handler: %s", zmq_strerror(zmq_errno()));
        zmq_close(zap);
        ens_security_free(&s);
        return -1;
    }
    s->zap = ens_zsock_new(loop, zap, on_zap, s, 256);
    ENS_LOG(NOTICE, "security: CURVE on every socket, %zu authorized client keys", s->nkeys);
    *out = s;
    return 0;
}

void ens_security_apply(const ens_security_t *s, void *sock)
{
    if (!s)
        return;
    int one = 1;
    zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one));
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, s->secret, 40);
    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "ensembled", 9);
}

void ens_security_reload(ens_security_t *s, const ens_config_t *c)
{
    char err[512];
    if (!s)
        return;
    if (c->authorized_keys_dir[0])
        snprintf(s->keys_dir, sizeof(s->keys_dir), "%s", c->authorized_keys_dir);
    if (load_keys(s, s->keys_dir, err, sizeof(err)) < 0)
        ENS_LOG(ERR, "reload: %s; authorized keys unchanged", err);
    else
        ENS_LOG(NOTICE, "security: %zu authorized client keys", s->nkeys);
}

void ens_security_close(ens_security_t *s)
{
    if (!s)
        return;
    ens_zsock_close(s->zap);
    s->zap = NULL;
}

void ens_security_free(ens_security_t **sp)
{
    ens_security_t *s = *sp;
    if (!s)
        return;
    free(s->keys);
    free(s);
    *sp = NULL;
}

void ens_security_status(const ens_security_t *s, ens_mpw_t *w)
{
    static const ens_security_stats_t none;
    const ens_security_stats_t *st = s ? &s->st : &none;
    ens_mpw_cstr(w, "security");
    ens_mpw_map_begin(w);
    ens_mpw_cstr(w, "curve_accepted");
    ens_mpw_uint(w, st->accepted);
    ens_mpw_cstr(w, "curve_refused");
    ens_mpw_uint(w, st->refused);
    ens_mpw_cstr(w, "authorized_keys");
    ens_mpw_uint(w, st->keys);
    ens_mpw_map_end(w);
}
