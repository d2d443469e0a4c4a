/* config_check.c - the checks of a parsed configuration (config.h): what
 * the values mean (endpoints, binds beyond loopback), and what the machine
 * must offer (key files, the state directory). Each error carries the line
 * that set the key. */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "metrics.h"

/* Whether host (of a tcp:// endpoint) is the loopback interface. */
static int is_loopback(const char *host, size_t n)
{
    char h[64];
    if (n >= sizeof(h))
        return 0;
    memcpy(h, host, n);
    h[n] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, h, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return strcmp(h, "localhost") == 0 || strcmp(h, "lo") == 0 || strcmp(h, "[::1]") == 0 ||
           strcmp(h, "::1") == 0;
}

/* NULL when ep is a ZeroMQ endpoint the daemon can bind (or connect), or
 * the reason; *loopback says whether it stays on this machine. */
static const char *endpoint_error(const char *ep, int bind, int *loopback)
{
    *loopback = 1;
    if (strncmp(ep, "ipc://", 6) == 0) {
        if (ep[6] == '\0')
            return "ipc:// needs a path";
        if (strlen(ep + 6) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return "ipc path longer than a Unix socket path may be (107 bytes)";
        return NULL;
    }
    if (strncmp(ep, "inproc://", 9) == 0)
        return "inproc:// reaches nothing outside the daemon (use tcp:// or ipc://)";
    if (strncmp(ep, "tcp://", 6) != 0)
        return "not a ZeroMQ endpoint the daemon uses (tcp://HOST:PORT or ipc://PATH)";
    const char *host = ep + 6;
    const char *semi = bind ? NULL : strchr(host, ';'); /* connect: source;destination */
    if (semi)
        host = semi + 1;
    const char *colon = strrchr(host, ':');
    if (!colon || colon == host)
        return "tcp:// needs HOST:PORT (e.g. tcp://127.0.0.1:5557)";
    const char *port = colon + 1;
    size_t hn = (size_t)(colon - host);
    if ((host[0] == '[' && host[hn - 1] != ']') ||
        (host[0] != '[' && memchr(host, ':', hn) != NULL))
        return "an IPv6 address goes in brackets: tcp://[::1]:5557";
    for (size_t i = 0; i < hn; i++)
        if (isspace((unsigned char)host[i]))
            return "a space in the host";
    if (!(bind && strcmp(port, "*") == 0)) {
        char *end = NULL;
        long p = strtol(port, &end, 10);
        if (end == port || *end || p < 1 || p > 65535)
            return "the port is not a number in [1, 65535]";
    }
    *loopback = is_loopback(host, hn);
    return NULL;
}

static void check_endpoint(const ens_config_t *c, ens_config_errors_t *e, const char *section,
                           const char *key, const char *ep, int bind)
{
    int loopback;
    int line = ens_config_line(c, section, bind ? "bind" : "connect");
    const char *why = endpoint_error(ep, bind, &loopback);
    if (why) {
        ens_config_error(e, line, "%s.%s: %s: %s", section, key, ep, why);
        return;
    }
    if (bind && !loopback && !c->curve_secret_key_file[0] && !c->allow_plaintext)
        ens_config_error(e, line,
                         "%s.%s: %s binds beyond loopback without CURVE: set "
                         "security.curve_secret_key_file, or security.allow_plaintext = yes",
                         section, key, ep);
}

static void check_metrics(const ens_config_t *c, ens_config_errors_t *e)
{
    struct sockaddr_in6 addr;
    char why[256];
    int line = ens_config_line(c, "metrics", "bind");
    if (!c->metrics_bind[0])
        return;
    if (ens_metrics_parse_bind(c->metrics_bind, &addr, why, sizeof(why)) < 0) {
        ens_config_error(e, line, "%s", why);
        return;
    }
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)(const void *)&addr;
    int loopback = addr.sin6_family == AF_INET6
                       ? memcmp(&addr.sin6_addr, &in6addr_loopback, sizeof(addr.sin6_addr)) == 0
                       : (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    if (!loopback && !c->allow_plaintext)
        ens_config_error(e, line,
                         "metrics.bind: %s serves /metrics beyond loopback, to anyone, "
                         "unencrypted: set security.allow_plaintext = yes",
                         c->metrics_bind);
}

/* [ingest] nats needs a build with libnats, a stream and a durable name
 * (a NATS consumer name holds no '.', '*', '>' or space). */
static void check_nats(const ens_config_t *c, ens_config_errors_t *e)
{
    int line = ens_config_line(c, "ingest", "nats");
    if (c->nats_kv[0] && !c->nats_url[0])
        ens_config_error(e, ens_config_line(c, "publish", "nats_kv"),
                         "publish.nats_kv: needs ingest.nats (the servers it publishes to)");
    if (!c->nats_url[0])
        return;
#ifndef ENS_HAVE_NATS
    ens_config_error(e, line, "ingest.nats: this build of ensembled lacks NATS (libnats)");
#endif
    if (!c->nats_stream[0] || !c->nats_subject[0])
        ens_config_error(e, line, "ingest.nats: nats_stream and nats_subject must not be empty");
    if (!c->nats_durable[0] || strpbrk(c->nats_durable, ".*> \t"))
        ens_config_error(e, ens_config_line(c, "ingest", "nats_durable"),
                         "ingest.nats_durable '%s': a name without '.', '*', '>' or blanks",
                         c->nats_durable);
}

void ens_config_check_values(const ens_config_t *c, ens_config_errors_t *e)
{
    check_nats(c, e);
    check_endpoint(c, e, "ingest", "bind", c->ingest_bind, 1);
    for (size_t i = 0; i < c->ingest_nconnect; i++)
        check_endpoint(c, e, "ingest", "connect", c->ingest_connect[i], 0);
    check_endpoint(c, e, "publish", "bind", c->publish_bind, 1);
    check_endpoint(c, e, "control", "bind", c->control_bind, 1);
    check_metrics(c, e);
}

/* A Z85 key file: opened (the OS error otherwise) and holding a key. */
static void check_key_file(const ens_config_t *c, ens_config_errors_t *e, const char *key,
                           const char *value)
{
    char path[ENS_CONF_STR + 256], buf[256];
    const char *why = NULL;
    int line = ens_config_line(c, "security", key);
    if (!value[0])
        return;
    if (ens_config_path(value, path, sizeof(path), &why) < 0) {
        ens_config_error(e, line, "security.%s %s: %s", key, value, why);
        return;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        ens_config_error(e, line, "security.%s %s: %s", key, path, strerror(errno));
        return;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = buf + strspn(buf, " \t\r\n");
    size_t len = strcspn(p, " \t\r\n");
    uint8_t bin[32];
    p[len] = '\0';
    if (len != 40 || !zmq_z85_decode(bin, p))
        ens_config_error(e, line, "security.%s %s: not a Z85 key (40 characters)", key, path);
}

/* The state directory: writable, or creatable (the daemon makes the last
 * component). */
static void check_state_dir(const ens_config_t *c, ens_config_errors_t *e)
{
    const char *dir = c->state_dir;
    int line = ens_config_line(c, "state", "dir");
    struct stat st;
    if (!dir[0])
        return;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            ens_config_error(e, line, "state.dir %s: not a directory", dir);
        else if (access(dir, W_OK | X_OK) < 0)
            ens_config_error(e, line, "state.dir %s: %s", dir, strerror(errno));
        return;
    }
    if (errno != ENOENT) {
        ens_config_error(e, line, "state.dir %s: %s", dir, strerror(errno));
        return;
    }
    char parent[ENS_CONF_STR];
    snprintf(parent, sizeof(parent), "%s", dir);
    char *slash = strrchr(parent, '/');
    while (slash && slash > parent && slash[1] == '\0') {
        *slash = '\0';
        slash = strrchr(parent, '/');
    }
    if (!slash)
        snprintf(parent, sizeof(parent), ".");
    else
        slash[slash == parent ? 1 : 0] = '\0';
    if (access(parent, W_OK | X_OK) < 0)
        ens_config_error(e, line, "state.dir %s: does not exist and cannot be created: %s: %s", dir,
                         parent, strerror(errno));
}

void ens_config_check_files(const ens_config_t *c, ens_config_errors_t *e)
{
    check_key_file(c, e, "curve_secret_key_file", c->curve_secret_key_file);
    check_key_file(c, e, "curve_public_key_file", c->curve_public_key_file);
    if (c->authorized_keys_dir[0]) {
        DIR *d = opendir(c->authorized_keys_dir);
        if (d)
            closedir(d);
        else
            ens_config_error(e, ens_config_line(c, "security", "authorized_keys_dir"),
                             "security.authorized_keys_dir %s: %s", c->authorized_keys_dir,
                             strerror(errno));
    }
    check_state_dir(c, e);
    const char *nats_files[][2] = {{"nats_creds", c->nats_creds}, {"nats_tls_ca", c->nats_tls_ca}};
    for (size_t i = 0; c->nats_url[0] && i < 2; i++) {
        FILE *f = nats_files[i][1][0] ? fopen(nats_files[i][1], "r") : NULL;
        if (f)
            fclose(f);
        else if (nats_files[i][1][0])
            ens_config_error(e, ens_config_line(c, "ingest", nats_files[i][0]), "ingest.%s %s: %s",
                             nats_files[i][0], nats_files[i][1], strerror(errno));
    }
}
