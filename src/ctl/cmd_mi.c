/* cmd_mi.c - ensemblectl mi: I(Y; X_S) of a named set over a CSV. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ensembled/err.h"
#include "ensembled/mi.h"
#include "ensembled/select.h"

static const char usage[] =
    "usage: ensemblectl mi --csv FILE --models a,b,c [--estimator heldout|plugin|miller-madow]\n"
    "          [--answers choice|open] [--normalize exact|fold|numeric]\n"
    "Prints I(Y; X_S) in bits over the rows where every listed model was asked,\n"
    "and the number of those rows.\n" CTL_ANSWER_USAGE;

int ctl_mi(int argc, char **argv)
{
    static const struct option opts[] = {{"csv", required_argument, NULL, 'c'},
                                         {"models", required_argument, NULL, 'm'},
                                         {"estimator", required_argument, NULL, 'e'},
                                         {"help", no_argument, NULL, 'h'},
                                         CTL_ANSWER_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    const char *csv = NULL, *models = NULL;
    ens_estimator_t est = ENS_EST_HELDOUT;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            csv = optarg;
            break;
        case 'm':
            models = optarg;
            break;
        case 'e':
            if (ens_estimator_parse(optarg, &est) < 0) {
                ctl_error("--estimator: unknown estimator '%s'", optarg);
                return 2;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            if (ctl_answer_option(c) == 1)
                break;
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!csv || !models || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    ens_data_t *d = ctl_load_csv(csv);
    if (!d)
        return 1;
    size_t set[ENS_SELECT_MAX];
    int k = ctl_parse_models(d, models, set, ENS_SELECT_MAX);
    int rc = 1;
    if (k > 0) {
        double bits = 0;
        size_t rows = 0;
        int err = ens_mi(d, set, (size_t)k, est, &bits, &rows);
        if (err < 0) {
            ctl_error("%s: %s", csv,
                      err == ENS_EEMPTY ? "no row has every listed model" : ens_strerror(err));
        } else {
            printf("mi_bits %.12f\nrows %zu\nestimator %s\n", bits, rows, ens_estimator_name(est));
            rc = 0;
        }
    }
    ens_data_destroy(&d);
    return rc;
}
