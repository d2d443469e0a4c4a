/* cmd_floor.c - ensemblectl floor: the Gaussian-copula fit of a fleet, its
 * error floor, and Fano's bound for the greedy-mi ensembles of K = 1..7
 * (docs/theory.md, docs/floor.md). */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ensembled/copula.h"
#include "ensembled/err.h"
#include "ensembled/eval.h"
#include "ensembled/pipeline.h"
#include "ensembled/select.h"
#include "ensembled/xalloc.h"

static const char usage[] =
    "usage: ensemblectl floor --csv FILE [--models a,b,c] [--max-k K] [--cluster-rho R]\n"
    "          [--fano-z Z] [--splits N] [--seed S] [--json]\n"
    "          [--answers choice|open] [--normalize exact|fold|numeric]\n"
    "Fits the Gaussian copula of correctness to the models (all by default):\n"
    "accuracies, latent (tetrachoric) correlations and clusters of models whose\n"
    "correlation is at least R (default 0.8). Prints the error floor of infinitely\n"
    "many models of the fitted one-factor copula, with wrong answers uniform over\n"
    "the other labels and with wrong answers all alike, and for the greedy-mi\n"
    "ensembles of K = 1..K (default 7; no pruning, so each has K models): Fano's\n"
    "lower bound on the error of any combiner (plug-in H(Y|X_S) lowered by Z standard\n"
    "errors, default 2), the errors of majority vote and of the Bayes combiner under\n"
    "the fitted copula, and with --splits N > 0 the held-out error of the published\n"
    "combiner (mean over N half splits).\n" CTL_ANSWER_USAGE;

typedef struct {
    const char *csv, *models;
    size_t max_k, splits;
    double cluster_rho, fano_z;
    uint64_t seed;
    int json;
} args_t;

typedef struct {
    ens_selection_t sel;
    double fano, vote, bayes, floor, heldout;
} step_t;

static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {{"csv", required_argument, NULL, 'c'},
                                         {"models", required_argument, NULL, 'm'},
                                         {"max-k", required_argument, NULL, 'k'},
                                         {"cluster-rho", required_argument, NULL, 'r'},
                                         {"fano-z", required_argument, NULL, 'z'},
                                         {"splits", required_argument, NULL, 'n'},
                                         {"seed", required_argument, NULL, 'S'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         CTL_ANSWER_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    size_t seed;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->csv = optarg;
            break;
        case 'm':
            a->models = optarg;
            break;
        case 'k':
            if (ctl_parse_size("--max-k", optarg, 1, ENS_SELECT_MAX, &a->max_k) < 0)
                return 2;
            break;
        case 'r':
            if (ctl_parse_double("--cluster-rho", optarg, -1, 1, &a->cluster_rho) < 0)
                return 2;
            break;
        case 'z':
            if (ctl_parse_double("--fano-z", optarg, 0, 10, &a->fano_z) < 0)
                return 2;
            break;
        case 'n':
            if (ctl_parse_size("--splits", optarg, 0, 10000, &a->splits) < 0)
                return 2;
            break;
        case 'S':
            if (ctl_parse_size("--seed", optarg, 0, SIZE_MAX, &seed) < 0)
                return 2;
            a->seed = seed;
            break;
        case 'j':
            a->json = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return 1;
        default:
            if (ctl_answer_option(c) == 1)
                break;
            fputs(usage, stderr);
            return 2;
        }
    }
    if (!a->csv || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    return 0;
}

/* The columns named in list (comma-separated), or NULL with an error. */
static ens_data_t *restrict_models(const ens_data_t *d, const char *list)
{
    size_t cols[ENS_MAX_MODELS];
    int n = ctl_parse_models(d, list, cols, ENS_MAX_MODELS);
    return n < 0 ? NULL : ens_data_columns(d, cols, (size_t)n);
}

static void print_text(const ens_data_t *d, const args_t *a, const ens_copula_t *c,
                       const ens_copula_summary_t *s, const size_t *cl, size_t ncl, double floor,
                       double floor_alike, const step_t *st, size_t nk)
{
    printf("rows %zu, models %zu, labels %zu\n\n", d->nrows, d->nmodels, d->nlabels);
    printf("%-40s %9s %7s\n", "model", "accuracy", "rows");
    for (size_t i = 0; i < c->n; i++)
        printf("%-40s %9.4f %7zu\n", d->model_names[i], c->accuracy[i], c->asked[i]);
    printf("\nlatent correlation over %zu pairs: mean %.3f, min %.3f, max %.3f\n", s->pairs,
           s->mean, s->min, s->max);
    printf("clusters with latent correlation >= %.2f:", a->cluster_rho);
    int any = 0;
    for (size_t k = 0; k < ncl; k++) {
        size_t members = 0;
        for (size_t i = 0; i < c->n; i++)
            members += cl[i] == k;
        if (members < 2)
            continue;
        printf("\n ");
        any = 1;
        for (size_t i = 0; i < c->n; i++)
            if (cl[i] == k)
                printf(" %s", d->model_names[i]);
    }
    printf("%s\n", any ? "" : " none");
    printf("\nerror floor of infinitely many models (one-factor copula, mean correlation):\n"
           "  %.4f  wrong answers uniform over the other %zu labels\n"
           "  %.4f  wrong answers all alike\n",
           floor, d->nlabels - 1, floor_alike);
    printf("\ngreedy-mi ensembles (Fano: any combiner is at least this wrong; copula: errors\n"
           "under the fitted model; floor: of infinitely many models like these):\n");
    printf("%3s %9s %11s %12s %9s %9s  %s\n", "K", "fano", "copula-vote", "copula-bayes", "floor",
           "held-out", "models");
    for (size_t k = 0; k < nk; k++) {
        printf("%3zu %9.4f %11.4f %12.4f %9.4f ", k + 1, st[k].fano, st[k].vote, st[k].bayes,
               st[k].floor);
        if (isnan(st[k].heldout))
            printf("%9s ", "-");
        else
            printf("%9.4f ", st[k].heldout);
        for (size_t i = 0; i < st[k].sel.n; i++)
            printf(" %s", d->model_names[st[k].sel.models[i]]);
        printf("\n");
    }
}

static json_t *names_json(const ens_data_t *d, const ens_selection_t *sel)
{
    json_t *a = json_array();
    for (size_t i = 0; i < sel->n; i++)
        ctl_json_push(a, ctl_json_cstr(d->model_names[sel->models[i]]));
    return a;
}

/* The clusters of two models or more, each an array of names. */
static json_t *clusters_json(const ens_data_t *d, const ens_copula_t *c, const size_t *cl,
                             size_t ncl)
{
    json_t *all = json_array();
    for (size_t k = 0; k < ncl; k++) {
        json_t *one = json_array();
        for (size_t i = 0; i < c->n; i++)
            if (cl[i] == k)
                ctl_json_push(one, ctl_json_cstr(d->model_names[i]));
        if (json_array_size(one) >= 2)
            ctl_json_push(all, one);
        else
            json_decref(one);
    }
    return all;
}

static json_t *fano_json(const ens_data_t *d, const step_t *st, size_t nk)
{
    json_t *fano = json_array();
    for (size_t k = 0; k < nk; k++) {
        json_t *o = json_object();
        ctl_json_set(o, "budget", json_integer((json_int_t)(k + 1)));
        ctl_json_set(o, "models", names_json(d, &st[k].sel));
        ctl_json_set(o, "error_lower_bound", ctl_json_real(st[k].fano));
        ctl_json_set(o, "copula_vote_error", ctl_json_real(st[k].vote));
        ctl_json_set(o, "copula_bayes_error", ctl_json_real(st[k].bayes));
        ctl_json_set(o, "copula_floor", ctl_json_real(st[k].floor));
        ctl_json_set(o, "heldout_error", ctl_json_real(st[k].heldout));
        ctl_json_push(fano, o);
    }
    return fano;
}

static void print_json(const ens_data_t *d, const args_t *a, const ens_copula_t *c,
                       const ens_copula_summary_t *s, const size_t *cl, size_t ncl, double floor,
                       double floor_alike, const step_t *st, size_t nk)
{
    json_t *j = json_object(), *models = json_array(), *lc = json_object();
    ctl_json_set(j, "rows", json_integer((json_int_t)d->nrows));
    ctl_json_set(j, "labels", json_integer((json_int_t)d->nlabels));
    for (size_t i = 0; i < c->n; i++) {
        json_t *m = json_object();
        ctl_json_set(m, "name", ctl_json_cstr(d->model_names[i]));
        ctl_json_set(m, "accuracy", ctl_json_real(c->accuracy[i]));
        ctl_json_set(m, "rows", json_integer((json_int_t)c->asked[i]));
        ctl_json_push(models, m);
    }
    ctl_json_set(j, "models", models);
    ctl_json_set(lc, "mean", ctl_json_real(s->mean));
    ctl_json_set(lc, "min", ctl_json_real(s->min));
    ctl_json_set(lc, "max", ctl_json_real(s->max));
    ctl_json_set(lc, "pairs", json_integer((json_int_t)s->pairs));
    ctl_json_set(lc, "cluster_threshold", ctl_json_real(a->cluster_rho));
    ctl_json_set(lc, "clusters", clusters_json(d, c, cl, ncl));
    ctl_json_set(j, "latent_correlation", lc);
    ctl_json_set(j, "error_floor", ctl_json_real(floor));
    ctl_json_set(j, "error_floor_alike", ctl_json_real(floor_alike));
    ctl_json_set(j, "fano_z", ctl_json_real(a->fano_z));
    ctl_json_set(j, "fano", fano_json(d, st, nk));
    ctl_json_print(j);
}

/* Selects the greedy-mi ensemble of exactly k models (no pruning, no gain
 * threshold) and computes its bounds; st->heldout is NaN without splits. */
static int run_step(const ens_data_t *d, const ens_copula_t *c, const args_t *a, size_t k,
                    step_t *st)
{
    ens_select_opts_t o;
    ens_select_opts_default(&o);
    o.budget = k;
    o.prune = 0;
    o.min_gain_bits = -1e9;
    o.seed = a->seed;
    char err[256];
    int rc = ens_select(d, &o, &st->sel, err, sizeof(err));
    if (rc < 0) {
        ctl_error("K=%zu: %s", k, err);
        return rc;
    }
    /* Fano's bound and the set's floor as the daemon computes them. */
    ens_bounds_t b;
    ens_pipeline_bounds(d, st->sel.models, st->sel.n, a->fano_z, &b);
    if (isnan(b.fano)) {
        ctl_error("K=%zu: Fano's bound cannot be computed", k);
        return ENS_EINVAL;
    }
    st->fano = b.fano;
    /* The fit holds every column in order, so positions are columns. */
    ens_copula_summary_t s;
    ens_copula_summary(c, st->sel.models, st->sel.n, &s);
    double tau[ENS_SELECT_MAX];
    for (size_t i = 0; i < st->sel.n; i++)
        tau[i] = c->tau[st->sel.models[i]];
    double rho = st->sel.n > 1 ? s.mean : 0;
    st->vote = st->bayes = NAN;
    if (st->sel.n <= ENS_COPULA_FINITE_MAX && !isnan(rho))
        ens_copula_finite_errors(rho, tau, st->sel.n, d->nlabels, &st->vote, &st->bayes);
    st->floor = st->sel.n > 1 ? b.floor_set
                              : ens_copula_floor_fit(c, st->sel.models, 1, (double)d->nlabels);
    st->heldout = NAN;
    if (a->splits > 0) {
        ens_eval_t e;
        rc = ens_evaluate(d, &o, a->splits, 0.5, a->seed, &e);
        if (rc < 0) {
            ctl_error("K=%zu: evaluation: %s", k, ens_strerror(rc));
            return rc;
        }
        st->heldout = 1 - e.acc[ENS_EVAL_PUBLISHED].mean;
    }
    return 0;
}

int ctl_floor(int argc, char **argv)
{
    args_t a = {.max_k = 7, .cluster_rho = 0.8, .fano_z = 2, .seed = 7};
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    ens_data_t *all = ctl_load_csv(a.csv);
    if (!all)
        return 1;
    ens_data_t *d = all;
    if (a.models) {
        d = restrict_models(all, a.models);
        if (!d) {
            ens_data_destroy(&all);
            return 2;
        }
    }
    if (d->nlabels < 2) {
        ctl_error("%s: fewer than two labels", a.csv);
        rc = 1;
        goto done;
    }
    ens_copula_t *c = ens_copula_fit(d, NULL, 0);
    ens_copula_summary_t s;
    ens_copula_summary(c, NULL, 0, &s);
    size_t *cl = ens_xcalloc(c->n, sizeof(size_t));
    size_t ncl = ens_copula_clusters(c, a.cluster_rho, cl);
    double floor = ens_copula_floor_fit(c, NULL, 0, (double)d->nlabels);
    double floor_alike = ens_copula_floor_fit(c, NULL, 0, 2);
    size_t nk = a.max_k < d->nmodels ? a.max_k : d->nmodels;
    step_t *st = ens_xcalloc(nk, sizeof(step_t));
    for (size_t k = 0; k < nk && rc == 0; k++)
        if (run_step(d, c, &a, k + 1, &st[k]) < 0)
            rc = 1;
    if (rc == 0) {
        if (a.json)
            print_json(d, &a, c, &s, cl, ncl, floor, floor_alike, st, nk);
        else
            print_text(d, &a, c, &s, cl, ncl, floor, floor_alike, st, nk);
    }
    free(st);
    free(cl);
    ens_copula_destroy(&c);
done:
    if (d != all)
        ens_data_destroy(&d);
    ens_data_destroy(&all);
    return rc;
}
