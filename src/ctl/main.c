/* main.c - ensemblectl: the operator's client and offline toolbox. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "ensembled/version.h"

static const char usage[] =
    "usage: ensemblectl COMMAND [OPTIONS]\n"
    "\n"
    "Offline commands over wide CSV files (item,label,<model_1>,...,<model_M>;\n"
    "an empty cell: the model was not asked; '?': it abstained):\n"
    "  mi        --csv FILE --models a,b,c [--estimator heldout|plugin|miller-madow]\n"
    "            print I(Y; X_S) in bits and the rows used\n"
    "  select    --csv FILE --budget K [--strategy NAME|all] [--estimator E]\n"
    "            [--min-gain-bits G] [--cost-budget C] [--costs FILE] [--no-prune]\n"
    "            [--splits N] [--test-frac F] [--seed S] [--json]\n"
    "            select an ensemble with each strategy and score it held out\n"
    "  simulate  --families name:count:acc:rho,... --rows N [--classes C]\n"
    "            [--global-rho G] [--seed S] --csv OUT\n"
    "            write a synthetic fleet with correlated families\n"
    "  floor     --csv FILE [--models a,b,c] [--max-k K] [--splits N] [--json]\n"
    "            copula fit, error floor and Fano bound of greedy-mi ensembles\n"
    "\n"
    "Commands talking to a running ensembled:\n"
    "  status    [--control ENDPOINT] [--task T] [--json] [--timeout MS]\n"
    "            the daemon's figures and a table of its tasks\n"
    "  ensemble | recompute  [--control ENDPOINT] [--task T] [--timeout MS]\n"
    "            ask the control socket; print the reply as JSON\n"
    "  health    [--control ENDPOINT] [--warn-age S] [--crit-age S]\n"
    "            [--warn-refused F] [--crit-refused F] [--window S] [--task T]\n"
    "            monitoring-plugin check: exit 0 OK, 1 WARNING, 2 CRITICAL\n"
    "  watch     [--publish ENDPOINT] [--task T] [--count N] [--json]\n"
    "            [--timeout MS] [--idle MS]\n"
    "            live view of the published ensembles\n"
    "  replay    --csv FILE [--ingest ENDPOINT] [--task T] [--rate R]\n"
    "            [--label-lag ROWS] [--batch N] [--timeout MS] [--nats URL --subject S]\n"
    "            stream a CSV as prediction and label events (to the daemon, or\n"
    "            to a NATS JetStream stream)\n"
    "  simulate --closed-loop --families name:count:acc:rho,... [--queries N]\n"
    "            [--rate QPS] [--label-delay Q] [--drift FAMILY:ACC@Q]\n"
    "            [--add FAMILY:COUNT:ACC:RHO@Q] [--silence MODEL@Q] [--explore-rate R]\n"
    "            a simulated fleet behind routers that follow the published\n"
    "            ensembles and exploration rule (docs/exploration.md)\n"
    "  send      --kind prediction|label --query Q [--model M] --label L\n"
    "            [--timeout MS]  send one event\n"
    "  keygen    NAME: write a CURVE key pair NAME.key / NAME.pub\n"
    "  Each fails with one line when nothing answers within its --timeout (exit 1;\n"
    "  health: 2, CRITICAL).\n"
    "  (status, ensemble, recompute, health, watch and replay take --server-key FILE\n"
    "  --client-key FILE when the daemon runs with CURVE)\n"
    "\n"
    "Strategies: greedy-mi (default), greedy-cost, top-k, random, caruana, exhaustive.\n"
    "Run 'ensemblectl COMMAND --help' for the options of one command.\n";

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        puts("ensemblectl " ENS_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "mi") == 0)
        return ctl_mi(argc - 1, argv + 1);
    if (strcmp(argv[1], "select") == 0)
        return ctl_select(argc - 1, argv + 1);
    if (strcmp(argv[1], "simulate") == 0)
        return ctl_simulate(argc - 1, argv + 1);
    if (strcmp(argv[1], "floor") == 0)
        return ctl_floor(argc - 1, argv + 1);
    if (strcmp(argv[1], "status") == 0 || strcmp(argv[1], "ensemble") == 0 ||
        strcmp(argv[1], "recompute") == 0)
        return ctl_control(argc - 1, argv + 1);
    if (strcmp(argv[1], "health") == 0)
        return ctl_health(argc - 1, argv + 1);
    if (strcmp(argv[1], "watch") == 0)
        return ctl_watch(argc - 1, argv + 1);
    if (strcmp(argv[1], "replay") == 0)
        return ctl_replay(argc - 1, argv + 1);
    if (strcmp(argv[1], "send") == 0)
        return ctl_send(argc - 1, argv + 1);
    if (strcmp(argv[1], "keygen") == 0)
        return ctl_keygen(argc - 1, argv + 1);
    ctl_error("unknown command '%s' (try --help)", argv[1]);
    return 2;
}
