/* main.c - ensembled: argv, --check-config, exit codes. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "ensembled/version.h"

static const char usage[] =
    "usage: ensembled -c FILE [--check-config] [--foreground] [--discard-state]\n"
    "\n"
    "Consumes prediction and label events (ZeroMQ PULL, MessagePack), joins\n"
    "them per query, keeps a sliding window per task, selects the budgeted\n"
    "ensemble that carries the most information about the truth, and\n"
    "publishes it (XPUB, topic ensemble.<task> and a NUL byte) with its\n"
    "combiner and accuracy.\n"
    "\n"
    "  -c, --config FILE   configuration (INI; see conf/ensembled.conf)\n"
    "      --check-config  validate the configuration and what it names (key\n"
    "                      files, the state directory) and exit (0: valid);\n"
    "                      every error is printed, with its file:line\n"
    "      --foreground    log to stderr, never to the journal on its own\n"
    "                      (log.format auto: logfmt; ensembled never forks\n"
    "                      either way)\n"
    "      --discard-state start empty when the saved state is corrupt or\n"
    "                      foreign (it is moved aside, never deleted); without\n"
    "                      it such a state is refused and the daemon exits 1\n"
    "  -h, --help          this help\n"
    "      --version       print the version\n"
    "\n"
    "Signals: SIGHUP reloads the configuration (keys that need a restart are\n"
    "logged), SIGTERM and SIGINT stop cleanly.\n"
    "Exit codes: 0 clean stop, 1 bad configuration or a socket that cannot be\n"
    "bound, 2 bad usage.\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"foreground", no_argument, NULL, 'f'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"discard-state", no_argument, NULL, 'D'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *path = NULL;
    int check = 0, foreground = 0, discard = 0, c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'f':
            foreground = 1;
            break;
        case 'D':
            discard = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'V':
            puts("ensembled " ENS_VERSION);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    if (check) {
        static ens_config_t conf;
        static char err[ENS_CONF_MAX_ERRORS * 512];
        if (ens_config_check(path, &conf, err, sizeof(err)) < 0) {
            /* Every error, one a line. */
            for (char *save = NULL, *l = strtok_r(err, "\n", &save); l;
                 l = strtok_r(NULL, "\n", &save))
                fprintf(stderr, "ensembled: %s\n", l);
            return 1;
        }
        printf("%s: configuration ok\n", path);
        return 0;
    }
    return ens_daemon_run(path, foreground, discard);
}
