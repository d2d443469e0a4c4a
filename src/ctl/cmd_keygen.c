/* cmd_keygen.c - ensemblectl keygen: a CURVE key pair for ensembled or a
 * client, and the client side of CURVE for the other commands: their
 * --server-key/--client-key options and the keys they apply to a socket. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "ctl.h"

static const char usage[] =
    "usage: ensemblectl keygen NAME\n"
    "Writes a CURVE key pair: NAME.key (the secret key, mode 0600) and NAME.pub\n"
    "(the public key), each one Z85 line. For the daemon: point\n"
    "security.curve_secret_key_file at NAME.key (and curve_public_key_file at\n"
    "NAME.pub). For a client: copy NAME.pub into security.authorized_keys_dir\n"
    "and pass --client-key NAME.key --server-key DAEMON.pub to ensemblectl.\n"
    "Under systemd's DynamicUser, which cannot read NAME.key: add\n"
    "LoadCredential=server.key:/path/NAME.key to the unit and set\n"
    "curve_secret_key_file = credential:server.key (docs/security.md).\n";

static int write_key(const char *path, const char *z85, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0) {
        ctl_error("%s: %s", path, strerror(errno));
        return -1;
    }
    char line[42];
    snprintf(line, sizeof(line), "%s\n", z85);
    int rc = write(fd, line, 41) == 41 ? 0 : -1;
    if (close(fd) < 0 || rc < 0) {
        ctl_error("%s: write failed", path);
        return -1;
    }
    return 0;
}

int ctl_keygen(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fputs(usage, argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
        return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    char pub[41], sec[41], path[4096];
    if (zmq_curve_keypair(pub, sec) < 0) {
        ctl_error("keygen: %s", zmq_strerror(zmq_errno()));
        return 1;
    }
    snprintf(path, sizeof(path), "%s.key", argv[1]);
    if (write_key(path, sec, 0600) < 0)
        return 1;
    snprintf(path, sizeof(path), "%s.pub", argv[1]);
    if (write_key(path, pub, 0644) < 0)
        return 1;
    printf("%s.key %s.pub\n", argv[1], argv[1]);
    return 0;
}

/* Reads a Z85 key: the first 40-character word of the file. */
static int read_z85(const char *path, char *z85)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        ctl_error("%s: %s", path, strerror(errno));
        return -1;
    }
    int n = fscanf(f, " %40s", z85);
    fclose(f);
    uint8_t bin[32];
    if (n != 1 || strlen(z85) != 40 || !zmq_z85_decode(bin, z85)) {
        ctl_error("%s: not a Z85 CURVE key", path);
        return -1;
    }
    return 0;
}

int ctl_curve_option(int c, ctl_curve_keys_t *k)
{
    if (c == CTL_OPT_SERVER_KEY)
        k->server = optarg;
    else if (c == CTL_OPT_CLIENT_KEY)
        k->client = optarg;
    else
        return 0;
    return 1;
}

int ctl_curve_client(void *sock, const ctl_curve_keys_t *k)
{
    if (!k->server && !k->client)
        return 0;
    if (!k->server || !k->client) {
        ctl_error("CURVE needs both --server-key and --client-key");
        return -1;
    }
    char srv[41], sec[41], pub[41];
    if (read_z85(k->server, srv) < 0 || read_z85(k->client, sec) < 0)
        return -1;
    zmq_curve_public(pub, sec);
    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, srv, 40);
    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 40);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, 40);
    return 0;
}
