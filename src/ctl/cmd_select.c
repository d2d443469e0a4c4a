/* cmd_select.c - ensemblectl select: offline selection and held-out scoring
 * with every strategy, the same library code as the daemon. */
#include <getopt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ensembled/eval.h"
#include "ensembled/select.h"

static const char usage[] =
    "usage: ensemblectl select --csv FILE --budget K [--strategy NAME|all]\n"
    "          [--estimator heldout|plugin|miller-madow] [--min-gain-bits G]\n"
    "          [--cost-budget C] [--costs FILE] [--no-prune] [--splits N]\n"
    "          [--test-frac F] [--seed S] [--json] [--answers choice|open]\n"
    "          [--normalize exact|fold|numeric]\n"
    "       ensemblectl select --csv FILE --body [--config FILE] [--task T] [--costs FILE]\n"
    "Selects an ensemble of at most K models on all rows with each strategy and\n"
    "prints its models with the cumulative information per step; then scores each\n"
    "strategy held out: over N random splits (default 20) it selects and fits on\n"
    "the training rows and measures accuracy on the held-out fraction F (default\n"
    "0.5), for every combiner over the selection and for what the daemon would\n"
    "publish (greedy-mi and exhaustive: the final choice between the selection, the\n"
    "best single model and the top-K weighted vote, docs/estimators.md).\n"
    "--strategy all (default) runs greedy-mi, top-k, random, caruana, exhaustive\n"
    "(when the pool is small enough) and greedy-cost (when --cost-budget is given).\n"
    "--costs FILE: each model's cost per query, a CSV of `model,cost` lines (a\n"
    "`model,cost` header allowed); models it leaves out cost 1.0, as in the daemon a\n"
    "model none of whose answers carried a cost. greedy-cost spends --cost-budget\n"
    "of them; with --body every answer of a model the file names carries its cost.\n"
    "The greedy keeps the prefix of its picks whose combiner predicts best held out\n"
    "on the rows given; --no-prune keeps every pick and makes no final choice (the\n"
    "paper's algorithm).\n"
    "--body prints, as JSON, the body ensembled would publish for task T (default\n"
    "\"default\") after `replay --label-lag 0` of the CSV, under the daemon's\n"
    "configuration FILE (default: every key at its default): the same modules run,\n"
    "without sockets. Only ts, version and the ages in freshness differ. A task\n"
    "configured with window.answers = open reads the file as open answers.\n" CTL_ANSWER_USAGE;

typedef struct {
    const char *csv;
    const char *config; /* --body: the daemon's configuration */
    const char *task;   /* --body: the task */
    const char *costs;  /* --costs: model,cost CSV */
    int body;
    ens_select_opts_t sel;
    int all;
    int json;
    size_t splits;
    double test_frac;
} args_t;

typedef struct {
    ens_strategy_t strategy;
    int rc;        /* 0 or the ens_select error */
    char err[256]; /* its message */
    ens_selection_t sel;
    ens_eval_t eval;
} result_t;

/* The selection options: 0, or 2 after printing the error. */
static int parse_selection(int c, args_t *a)
{
    size_t seed;
    switch (c) {
    case 'k':
        return ctl_parse_size("--budget", optarg, 1, ENS_SELECT_MAX, &a->sel.budget) < 0 ? 2 : 0;
    case 's':
        a->all = strcmp(optarg, "all") == 0;
        if (!a->all && ens_strategy_parse(optarg, &a->sel.strategy) < 0) {
            ctl_error("--strategy: unknown strategy '%s'", optarg);
            return 2;
        }
        return 0;
    case 'e':
        if (ens_estimator_parse(optarg, &a->sel.estimator) < 0) {
            ctl_error("--estimator: unknown estimator '%s'", optarg);
            return 2;
        }
        return 0;
    case 'g':
        return ctl_parse_double("--min-gain-bits", optarg, -1e9, 1e9, &a->sel.min_gain_bits) < 0
                   ? 2
                   : 0;
    case 'C':
        return ctl_parse_double("--cost-budget", optarg, 1e-9, 1e12, &a->sel.cost_budget) < 0 ? 2
                                                                                              : 0;
    case 'S':
        if (ctl_parse_size("--seed", optarg, 0, SIZE_MAX, &seed) < 0)
            return 2;
        a->sel.seed = seed;
        return 0;
    default: /* 'P' */
        a->sel.prune = 0;
        return 0;
    }
}

/* Every other option: 0, 1 (help printed) or 2 (usage error). */
static int parse_other(int c, args_t *a)
{
    switch (c) {
    case 'c':
        a->csv = optarg;
        return 0;
    case 'n':
        return ctl_parse_size("--splits", optarg, 0, 10000, &a->splits) < 0 ? 2 : 0;
    case 't':
        return ctl_parse_double("--test-frac", optarg, 0.01, 0.99, &a->test_frac) < 0 ? 2 : 0;
    case 'j':
        a->json = 1;
        return 0;
    case 'B':
        a->body = 1;
        return 0;
    case 'F':
        a->config = optarg;
        return 0;
    case 'T':
        a->task = optarg;
        return 0;
    case 'O':
        a->costs = optarg;
        return 0;
    case 'h':
        fputs(usage, stdout);
        return 1;
    default: {
        int k = ctl_answer_option(c);
        if (k == 0)
            fputs(usage, stderr);
        return k == 1 ? 0 : 2;
    }
    }
}

static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {{"csv", required_argument, NULL, 'c'},
                                         {"budget", required_argument, NULL, 'k'},
                                         {"strategy", required_argument, NULL, 's'},
                                         {"estimator", required_argument, NULL, 'e'},
                                         {"min-gain-bits", required_argument, NULL, 'g'},
                                         {"cost-budget", required_argument, NULL, 'C'},
                                         {"splits", required_argument, NULL, 'n'},
                                         {"test-frac", required_argument, NULL, 't'},
                                         {"seed", required_argument, NULL, 'S'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"no-prune", no_argument, NULL, 'P'},
                                         {"body", no_argument, NULL, 'B'},
                                         {"config", required_argument, NULL, 'F'},
                                         {"task", required_argument, NULL, 'T'},
                                         {"costs", required_argument, NULL, 'O'},
                                         {"help", no_argument, NULL, 'h'},
                                         CTL_ANSWER_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        rc = c && strchr("ksegCSP", c) ? parse_selection(c, a) : parse_other(c, a);
    if (rc)
        return rc;
    if (!a->csv || (a->sel.budget == 0 && !a->body) || optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    return 0;
}

static void run_one(const ens_data_t *d, const args_t *a, result_t *r)
{
    ens_select_opts_t o = a->sel;
    o.strategy = r->strategy;
    r->rc = ens_select(d, &o, &r->sel, r->err, sizeof(r->err));
    if (r->rc == 0 && a->splits > 0)
        r->rc = ens_evaluate(d, &o, a->splits, a->test_frac, o.seed, &r->eval);
}

static void print_text(const ens_data_t *d, const args_t *a, const result_t *res, size_t n)
{
    printf("rows %zu, models %zu, labels %zu, estimator %s, budget %zu\n\n", d->nrows, d->nmodels,
           d->nlabels, ens_estimator_name(a->sel.estimator), a->sel.budget);
    for (size_t i = 0; i < n; i++) {
        const result_t *r = &res[i];
        printf("%s:", ens_strategy_name(r->strategy));
        if (r->rc < 0) {
            printf(" not run: %s\n\n", r->err);
            continue;
        }
        printf(" %zu model%s\n", r->sel.n, r->sel.n == 1 ? "" : "s");
        for (size_t s = 0; s < r->sel.n; s++)
            printf("  %zu. %-40s mi %.4f bits  gain %+.4f  rows %zu\n", s + 1,
                   d->model_names[r->sel.models[s]], r->sel.mi_bits[s], r->sel.gain_bits[s],
                   r->sel.rows[s]);
        printf("\n");
    }
    if (a->splits == 0)
        return;
    printf("held-out accuracy, mean ± sd over %zu splits (%.0f%% of rows held out):\n", a->splits,
           a->test_frac * 100);
    printf("%-12s %-15s %-15s %-15s %-15s %-15s %s\n", "strategy", "vote", "weighted", "table",
           "pattern", "published", "models");
    for (size_t i = 0; i < n; i++) {
        const result_t *r = &res[i];
        if (r->rc < 0)
            continue;
        printf("%-12s", ens_strategy_name(r->strategy));
        for (size_t k = 0; k <= ENS_COMB_COUNT; k++)
            printf(" %.4f±%.4f  ", r->eval.acc[k].mean, r->eval.acc[k].sd);
        printf("%.1f\n", r->eval.size.mean);
    }
}

/* The names of the models of sel, as a JSON array. */
static json_t *names_json(const ens_data_t *d, const ens_selection_t *sel)
{
    json_t *a = json_array();
    for (size_t s = 0; s < sel->n; s++)
        ctl_json_push(a, ctl_json_cstr(d->model_names[sel->models[s]]));
    return a;
}

static json_t *selections_json(const ens_data_t *d, const result_t *res, size_t n)
{
    json_t *sels = json_array();
    for (size_t i = 0; i < n; i++) {
        const result_t *r = &res[i];
        if (r->rc < 0)
            continue;
        json_t *o = json_object(), *mi = json_array(), *rows = json_array();
        ctl_json_set(o, "strategy", json_string(ens_strategy_name(r->strategy)));
        ctl_json_set(o, "models", names_json(d, &r->sel));
        for (size_t s = 0; s < r->sel.n; s++) {
            ctl_json_push(mi, ctl_json_real(r->sel.mi_bits[s]));
            ctl_json_push(rows, json_integer((json_int_t)r->sel.rows[s]));
        }
        ctl_json_set(o, "mi_bits", mi);
        ctl_json_set(o, "rows", rows);
        ctl_json_push(sels, o);
    }
    return sels;
}

static json_t *evaluation_json(const args_t *a, const result_t *res, size_t n)
{
    json_t *ev = json_array();
    for (size_t i = 0; i < n && a->splits > 0; i++) {
        const result_t *r = &res[i];
        if (r->rc < 0)
            continue;
        for (size_t k = 0; k <= ENS_COMB_COUNT; k++) {
            json_t *o = json_object();
            ctl_json_set(o, "strategy", json_string(ens_strategy_name(r->strategy)));
            ctl_json_set(o, "budget", json_integer((json_int_t)a->sel.budget));
            ctl_json_set(o, "combiner",
                         json_string(k == ENS_COMB_COUNT ? "published" : ens_comb_name(k)));
            ctl_json_set(o, "accuracy_mean", ctl_json_real(r->eval.acc[k].mean));
            ctl_json_set(o, "accuracy_sd", ctl_json_real(r->eval.acc[k].sd));
            ctl_json_set(o, "models_mean", ctl_json_real(r->eval.size.mean));
            ctl_json_push(ev, o);
        }
    }
    return ev;
}

static void print_json(const ens_data_t *d, const args_t *a, const result_t *res, size_t n)
{
    json_t *j = json_object(), *errs = json_array();
    ctl_json_set(j, "rows", json_integer((json_int_t)d->nrows));
    ctl_json_set(j, "models", json_integer((json_int_t)d->nmodels));
    ctl_json_set(j, "labels", json_integer((json_int_t)d->nlabels));
    ctl_json_set(j, "estimator", json_string(ens_estimator_name(a->sel.estimator)));
    ctl_json_set(j, "budget", json_integer((json_int_t)a->sel.budget));
    ctl_json_set(j, "splits", json_integer((json_int_t)a->splits));
    ctl_json_set(j, "test_frac", ctl_json_real(a->test_frac));
    ctl_json_set(j, "selections", selections_json(d, res, n));
    for (size_t i = 0; i < n; i++) {
        if (res[i].rc >= 0)
            continue;
        json_t *o = json_object();
        ctl_json_set(o, "strategy", json_string(ens_strategy_name(res[i].strategy)));
        ctl_json_set(o, "error", ctl_json_cstr(res[i].err));
        ctl_json_push(errs, o);
    }
    ctl_json_set(j, "errors", errs);
    ctl_json_set(j, "evaluation", evaluation_json(a, res, n));
    ctl_json_print(j);
}

int ctl_select(int argc, char **argv)
{
    args_t a = {.all = 1, .splits = 20, .test_frac = 0.5, .task = "default"};
    ens_select_opts_default(&a.sel);
    a.sel.budget = 0;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (a.body)
        return ctl_select_body(a.csv, a.config, a.task, a.costs);

    ens_data_t *d = ctl_load_csv(a.csv);
    if (!d)
        return 1;
    double *given = calloc(d->nmodels + 1, sizeof(double));
    rc = a.costs ? ctl_load_costs(a.costs, d, given) : 0;
    free(given);
    if (rc < 0) {
        ens_data_destroy(&d);
        return 2;
    }
    if (a.sel.budget > d->nmodels) {
        ctl_error("--budget %zu is larger than the %zu models of %s", a.sel.budget, d->nmodels,
                  a.csv);
        ens_data_destroy(&d);
        return 2;
    }

    result_t *res = calloc(ENS_STRAT_COUNT, sizeof(*res));
    size_t n = 0;
    if (a.all) {
        static const ens_strategy_t order[] = {ENS_STRAT_GREEDY_MI,  ENS_STRAT_TOPK,
                                               ENS_STRAT_RANDOM,     ENS_STRAT_CARUANA,
                                               ENS_STRAT_EXHAUSTIVE, ENS_STRAT_GREEDY_COST};
        for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
            if (order[i] != ENS_STRAT_GREEDY_COST || a.sel.cost_budget > 0)
                res[n++].strategy = order[i];
    } else {
        res[n++].strategy = a.sel.strategy;
    }
    rc = 0;
    for (size_t i = 0; i < n; i++) {
        run_one(d, &a, &res[i]);
        /* A strategy asked for by name must run; under "all", a refused one
         * (exhaustive on a large pool) is reported and skipped. */
        if (res[i].rc < 0 && !a.all) {
            ctl_error("%s", res[i].err);
            rc = 1;
        }
    }
    if (rc == 0) {
        if (a.json)
            print_json(d, &a, res, n);
        else
            print_text(d, &a, res, n);
    }
    free(res);
    ens_data_destroy(&d);
    return rc;
}
