/* pipeline_body.c - the pipeline's result as a publication body: names and
 * figures gathered into the ens_body_t that body.c encodes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ensembled/xalloc.h"
#include "pipeline_int.h"

static ens_str_t str_of(const char *s)
{
    ens_str_t r = {s, strlen(s)};
    return r;
}

/* A decision-table key cell on the wire: the symbol, or -1 abstained, -2
 * not asked. */
static int16_t key_cell(uint8_t x)
{
    return x == ENS_SYM_ABSTAIN ? ENS_BODY_ABSTAIN : x == ENS_SYM_MISSING ? ENS_BODY_MISSING : x;
}

typedef struct {
    ens_pipeline_t *p;
    size_t n; /* entries seen */
} table_ctx_t;

static void count_entry(void *ud, const uint8_t *key, size_t k, unsigned decision)
{
    (void)key, (void)k, (void)decision;
    ((table_ctx_t *)ud)->n++;
}

static void take_entry(void *ud, const uint8_t *key, size_t k, unsigned decision)
{
    table_ctx_t *c = ud;
    ens_body_entry_t *e = &c->p->body.table[c->n];
    e->key = c->p->table_keys + c->n * k;
    for (size_t i = 0; i < k; i++)
        e->key[i] = key_cell(key[i]);
    e->decision = (int32_t)decision;
    c->n++;
}

/* combiner: kind, per-model weights, decision table entries. */
static void fill_combiner(ens_pipeline_t *p)
{
    ens_body_t *b = &p->body;
    size_t k = p->sel.n;
    b->comb = ens_combiner_kind(p->comb);
    b->weights = ens_xcalloc(k + 1, sizeof(double));
    for (size_t i = 0; i < k; i++)
        b->weights[i] = ens_combiner_weight(p->comb, i);
    table_ctx_t c = {p, 0};
    ens_combiner_foreach(p->comb, count_entry, &c);
    b->ntable = c.n;
    b->table = ens_xcalloc(c.n + 1, sizeof(ens_body_entry_t));
    p->table_keys = ens_xcalloc(c.n * k + 1, sizeof(int16_t));
    c.n = 0;
    ens_combiner_foreach(p->comb, take_entry, &c);
}

/* models, steps, labels: the selection in pool names. */
static void fill_selection(ens_pipeline_t *p)
{
    ens_body_t *b = &p->body;
    b->nmodels = p->sel.n;
    b->models = ens_xcalloc(p->sel.n + 1, sizeof(ens_str_t));
    b->steps = ens_xcalloc(p->sel.n + 1, sizeof(ens_body_step_t));
    for (size_t i = 0; i < p->sel.n; i++) {
        b->models[i] = str_of(p->pool->model_names[p->sel.models[i]]);
        b->steps[i].model = b->models[i];
        b->steps[i].mi_bits = p->sel.mi_bits[i];
        b->steps[i].gain_bits = p->sel.gain_bits[i];
        b->steps[i].rows = p->sel.rows[i];
    }
    b->nlabels = p->pool->nlabels;
    b->labels = ens_xcalloc(b->nlabels + 1, sizeof(ens_str_t));
    for (size_t l = 0; l < b->nlabels; l++)
        b->labels[l] = str_of(p->pool->label_names[l]);
}

/* explore and the per-model coverage of the window. Routers ask every
 * model of the window but the retired ones on exploration queries: models
 * short of min_rows can only gain rows that way. */
static void fill_window(ens_pipeline_t *p)
{
    ens_body_t *b = &p->body;
    const ens_data_t *d = p->in.snap;
    b->explore_rate = p->o.explore_rate;
    b->explore_rule = str_of(ENS_EXPLORE_RULE);
    b->explore_models = ens_xcalloc(d->nmodels + 1, sizeof(ens_str_t));
    b->nwindow = d->nmodels;
    b->window = ens_xcalloc(d->nmodels + 1, sizeof(ens_body_model_t));
    for (size_t m = 0; m < d->nmodels; m++) {
        ens_body_model_t *w = &b->window[m];
        w->model = str_of(d->model_names[m]);
        w->rows = p->coverage[m];
        w->age = p->in.row_age && p->in.row_age[m] >= 0 ? p->in.row_age[m] : NAN;
        w->excluded = p->excluded[m];
        if (p->excluded[m] != ENS_EXCL_RETIRED)
            b->explore_models[b->nexplore++] = w->model;
    }
    size_t extra = b->nexplore > p->sel.n ? b->nexplore - p->sel.n : 0;
    b->explore_extra = p->o.explore_rate * (double)extra;
}

/* costs: per model of the window the mean cost of its answers (nil when
 * none reported one), and the published set's cost per query, the sum of
 * its models' (nil when one of them has none). */
static void fill_costs(ens_pipeline_t *p)
{
    ens_body_t *b = &p->body;
    const ens_data_t *d = p->in.snap;
    const uint32_t *n = p->in.cost_n;
    for (size_t m = 0; m < d->nmodels; m++)
        b->window[m].cost = n && n[m] > 0 ? d->cost[m] : NAN;
    b->expected_cost = 0;
    for (size_t i = 0; i < p->sel.n; i++)
        b->expected_cost += b->window[p->from_snap[p->sel.models[i]]].cost;
}

/* choice: every candidate of the final choice and the winner. */
static void fill_choice(ens_pipeline_t *p)
{
    ens_body_t *b = &p->body;
    const ens_choice_t *c = &p->choice;
    b->ncandidates = c->n;
    b->candidates = ens_xcalloc(c->n + 1, sizeof(ens_body_candidate_t));
    for (size_t i = 0; i < c->n; i++) {
        b->candidates[i].name = str_of(c->cand[i].name);
        b->candidates[i].models = c->cand[i].k;
        b->candidates[i].accuracy = c->cand[i].acc;
        b->candidates[i].se = c->cand[i].se;
    }
    b->choice_winner = c->n ? b->candidates[c->winner].name : str_of("selection");
}

void ens__pipeline_fill_body(ens_pipeline_t *p)
{
    ens_body_t *b = &p->body;
    memset(b, 0, sizeof(*b));
    b->strategy = str_of(ens_strategy_name(p->o.select.strategy));
    b->estimator = str_of(ens_estimator_name(p->o.select.estimator));
    /* The publisher says which normalization its task uses. */
    b->answers = str_of(p->in.snap->open ? "open" : "choice");
    b->normalize = str_of("exact");
    b->budget = p->budget;
    b->window_rows = p->in.snap->nrows;
    fill_selection(p);
    fill_combiner(p);
    b->acc_combiner = p->acc_combiner;
    b->acc_vote = p->acc_vote;
    b->acc_single = p->acc_single;
    b->acc_in_sample = p->acc_in_sample;
    b->fano_error_lower = p->bounds.fano;
    b->copula_error_floor = p->bounds.floor_pool;
    b->copula_error_floor_ensemble = p->bounds.floor_set;
    b->latent_correlation_mean = p->bounds.rho_pool;
    fill_window(p);
    fill_costs(p);
    b->replaced = p->replaced;
    b->reason = p->reason;
    fill_choice(p);
}

void ens__pipeline_free_body(ens_pipeline_t *p)
{
    ens_body_t *b = &p->body;
    free(b->models);
    free(b->steps);
    free(b->labels);
    free(b->weights);
    free(b->table);
    free(b->explore_models);
    free(b->window);
    free(b->candidates);
    free(p->table_keys);
    memset(b, 0, sizeof(*b));
}
