/* cmd_simulate.c - ensemblectl simulate: write a synthetic fleet as CSV. */
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "ctl.h"
#include "ensembled/sample.h"

static const char usage[] =
    "usage: ensemblectl simulate --families name:count:acc:rho,... --rows N\n"
    "                            [--classes C] [--global-rho G] [--seed S] --csv OUT\n"
    "Writes a Gaussian-copula fleet: models of one family have latent correlation\n"
    "rho of their correctness, all models share a global factor G (G <= every rho).\n"
    "Defaults: --classes 4, --global-rho 0, --seed 1.\n";

static int write_csv(const ens_data_t *d, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        ctl_error("%s: %s", path, strerror(errno));
        return -1;
    }
    fputs("item,label", f);
    for (size_t j = 0; j < d->nmodels; j++)
        fprintf(f, ",%s", d->model_names[j]);
    fputc('\n', f);
    for (size_t r = 0; r < d->nrows; r++) {
        fprintf(f, "%zu,%s", r + 1, d->label_names[d->y[r]]);
        for (size_t j = 0; j < d->nmodels; j++) {
            uint8_t x = ens_data_col(d, j)[r];
            fprintf(f, ",%s",
                    x == ENS_SYM_ABSTAIN   ? "?"
                    : x == ENS_SYM_MISSING ? ""
                                           : d->label_names[x]);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        ctl_error("%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int ctl_simulate(int argc, char **argv)
{
    static const struct option opts[] = {
        {"families", required_argument, NULL, 'f'}, {"rows", required_argument, NULL, 'r'},
        {"classes", required_argument, NULL, 'k'},  {"global-rho", required_argument, NULL, 'g'},
        {"seed", required_argument, NULL, 's'},     {"csv", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    ens_family_t fam[64];
    ens_sample_opts_t so = {.families = fam, .classes = 4, .seed = 1};
    const char *out = NULL, *spec = NULL;
    size_t seed = 1;
    int c;
    char err[256];
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--closed-loop") == 0)
            return ctl_simulate_loop(argc, argv);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            spec = optarg;
            break;
        case 'r':
            if (ctl_parse_size("--rows", optarg, 1, 100000000, &so.rows) < 0)
                return 2;
            break;
        case 'k':
            if (ctl_parse_size("--classes", optarg, 2, ENS_MAX_LABELS, &so.classes) < 0)
                return 2;
            break;
        case 'g':
            if (ctl_parse_double("--global-rho", optarg, 0, 0.999, &so.global_rho) < 0)
                return 2;
            break;
        case 's':
            if (ctl_parse_size("--seed", optarg, 0, SIZE_MAX, &seed) < 0)
                return 2;
            so.seed = seed;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!spec || !out || so.rows == 0 || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    int n = ens_families_parse(spec, fam, 64, err, sizeof(err));
    if (n < 0) {
        ctl_error("--families: %s", err);
        return 2;
    }
    so.nfamilies = (size_t)n;
    ens_data_t *d = ens_sample(&so, err, sizeof(err));
    if (!d) {
        ctl_error("simulate: %s", err);
        return 2;
    }
    int rc = write_csv(d, out) < 0 ? 1 : 0;
    ens_data_destroy(&d);
    return rc;
}
