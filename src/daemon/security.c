/* security.c - CURVE keys and the ZAP handler (see security.h). */
#include "security.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* Reads a key file without blocking (a FIFO or a device is refused before
 * any read): 0, or -1 with the reason in why. *mode gets the file's mode. */
static int read_key(const char *path, char *z85, mode_t *mode, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *mode = st.st_mode;
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "not a regular file");
        close(fd);
        return -1;
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int err = errno;
    close(fd);
    if (n < 0) {
        snprintf(why, whylen, "%s", strerror(err));
        return -1;
    }
    buf[n] = '\0';
    char *p = buf;
    while (*p && isspace((unsigned char)*p))
        p++;
    size_t len = 0;
    while (p[len] && !isspace((unsigned char)p[len]))
        len++;
    uint8_t bin[32];
    if (len == 40) {
        memcpy(z85, p, 40);
        z85[40] = '\0';
    }
    if (len != 40 || !zmq_z85_decode(bin, z85)) {
        snprintf(why, whylen, "not a Z85 key (40 characters)");
        return -1;
    }
    return 0;
}

int ens_read_z85(const char *path, char *z85, char *why, size_t whylen)
{
    mode_t mode;
    return read_key(path, z85, &mode, why, whylen);
}

static int has_key(uint8_t (*keys)[32], size_t n, const uint8_t *key)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(keys[i], key, 32) == 0)
            return 1;
    return 0;
}

/* Loads every regular key file of the authorized directory; what is not one
 * is skipped, logged and counted. *revoked gets how many keys loaded before
 * are gone. */
static int load_keys(ens_security_t *s, const char *dir, size_t *revoked, char *err, size_t errlen)
{
    DIR *dp = opendir(dir);
    if (!dp) {
        snprintf(err, errlen, "security.authorized_keys_dir %s: %s", dir, strerror(errno));
        return -1;
    }
    uint8_t(*keys)[32] = NULL;
    size_t n = 0, skipped = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        if (e->d_name[0] == '.')
            continue;
        char path[4352], z85[41], why[128];
        mode_t mode;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (read_key(path, z85, &mode, why, sizeof(why)) < 0) {
            ENS_LOG(WARNING, "security: %s: %s; skipped", path, why);
            skipped++;
            continue;
        }
        keys = ens_xreallocarray(keys, n + 1, 32);
        zmq_z85_decode(keys[n++], z85);
    }
    closedir(dp);
    *revoked = 0;
    for (size_t i = 0; i < s->nkeys; i++)
        *revoked += !has_key(keys, n, s->keys[i]);
    free(s->keys);
    s->keys = keys;
    s->nkeys = n;
    s->st.keys = n;
    s->st.skipped = skipped;
    return 0;
}

static int authorized(const ens_security_t *s, const void *key, size_t len)
{
    return len == 32 && has_key(s->keys, s->nkeys, key);
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
        char peer[64];
        snprintf(peer, sizeof(peer), "%.*s", n >= 4 ? (int)zmq_msg_size(&frames[3]) : 1,
                 n >= 4 ? (const char *)zmq_msg_data(&frames[3]) : "?");
        ens_logf_limited(&s->rl, ENS_LOG_WARNING,
                         ENS_LOG_FIELDS({"reason", "unauthorized_key"}, {"peer", peer}),
                         "security: refused a client from %s", peer);
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
    char pub[41], derived[41], why[128], path[ENS_CONF_STR + 256];
    const char *pwhy = NULL;
    mode_t mode;
    /* A key may be a systemd credential (credential:NAME, LoadCredential=). */
    if (ens_config_path(c->curve_secret_key_file, path, sizeof(path), &pwhy) < 0)
        snprintf(why, sizeof(why), "%s", pwhy);
    if (pwhy || read_key(path, s->secret, &mode, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "security.curve_secret_key_file %s: %s", c->curve_secret_key_file,
                 why);
        return -1;
    }
    if (mode & (S_IRWXG | S_IRWXO))
        ENS_LOG(WARNING,
                "security: the secret key %s is open to group or others (mode %04o); "
                "chmod 600 it",
                c->curve_secret_key_file, (unsigned)(mode & 07777));
    zmq_curve_public(derived, s->secret);
    if (c->curve_public_key_file[0]) {
        if (ens_config_path(c->curve_public_key_file, path, sizeof(path), &pwhy) < 0)
            snprintf(why, sizeof(why), "%s", pwhy);
        if (pwhy || ens_read_z85(path, pub, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "security.curve_public_key_file %s: %s", c->curve_public_key_file,
                     why);
            return -1;
        }
        if (strcmp(pub, derived) != 0) {
            snprintf(err, errlen, "security.curve_public_key_file %s does not match the secret key",
                     c->curve_public_key_file);
            return -1;
        }
    }
    if (c->authorized_keys_dir[0] == '\0') {
        snprintf(err, errlen, "security: a secret key needs security.authorized_keys_dir");
        return -1;
    }
    snprintf(s->keys_dir, sizeof(s->keys_dir), "%s", c->authorized_keys_dir);
    size_t revoked;
    return load_keys(s, c->authorized_keys_dir, &revoked, err, errlen);
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

size_t ens_security_reload(ens_security_t *s, const ens_config_t *c)
{
    char err[512];
    size_t revoked = 0;
    if (!s)
        return 0;
    if (c->authorized_keys_dir[0])
        snprintf(s->keys_dir, sizeof(s->keys_dir), "%s", c->authorized_keys_dir);
    if (load_keys(s, s->keys_dir, &revoked, err, sizeof(err)) < 0)
        ENS_LOG(ERR, "reload: %s; authorized keys unchanged", err);
    else
        ENS_LOG(NOTICE, "security: %zu authorized client keys, %zu revoked, %zu files skipped",
                s->nkeys, revoked, (size_t)s->st.skipped);
    return revoked;
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
    ens_mpw_cstr(w, "key_files_skipped");
    ens_mpw_uint(w, st->skipped);
    ens_mpw_map_end(w);
}
