/* loop_fleet.c - simulate --closed-loop: the simulated fleet. Owns the
 * families and their models (named <family>-<i> as 'simulate' names them),
 * the changes scheduled by --drift, --add and --silence, and the per-query
 * draw of every model's answer from the Gaussian copula of sample.h.
 *
 * Changes are kept in the order they were given per kind, silences first,
 * then adds, then drifts: the summary lists them in that order.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "ensembled/sample.h"
#include "ensembled/xalloc.h"
#include "loop.h"

int ctl_loop_find_family(const ctl_loop_sim_t *s, const char *name)
{
    for (size_t f = 0; f < s->nfam; f++)
        if (strcmp(s->fam[f].name, name) == 0)
            return (int)f;
    return -1;
}

/* Splits "SPEC@Q": writes SPEC into buf, Q into *q. */
static int split_at(const char *opt, const char *arg, char *buf, size_t len, size_t *q)
{
    const char *at = strrchr(arg, '@');
    if (!at || at == arg || (size_t)(at - arg) >= len) {
        ctl_error("%s: '%s': expected SPEC@QUERY", opt, arg);
        return -1;
    }
    memcpy(buf, arg, (size_t)(at - arg));
    buf[at - arg] = '\0';
    return ctl_parse_size(opt, at + 1, 0, SIZE_MAX - 1, q);
}

static int add_change(ctl_loop_sim_t *s, const ctl_loop_change_t *c)
{
    if (s->nch >= CTL_LOOP_MAX_CHANGES) {
        ctl_error("more than %d --drift/--add/--silence options", CTL_LOOP_MAX_CHANGES);
        return -1;
    }
    s->ch[s->nch] = *c;
    s->ch[s->nch].picked_q = s->ch[s->nch].left_q = s->ch[s->nch].retired_q = SIZE_MAX;
    s->nch++;
    return 0;
}

int ctl_loop_add_families(ctl_loop_sim_t *s, const char *spec, size_t born, const char *opt)
{
    ens_family_t fam[CTL_LOOP_MAX_FAMILIES];
    char err[256];
    int n = ens_families_parse(spec, fam, CTL_LOOP_MAX_FAMILIES, err, sizeof(err));
    if (n < 0) {
        ctl_error("%s: %s", opt, err);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (s->nfam >= CTL_LOOP_MAX_FAMILIES || ctl_loop_find_family(s, fam[i].name) >= 0) {
            ctl_error("%s: family '%s' is given twice (or more than %d families)", opt, fam[i].name,
                      CTL_LOOP_MAX_FAMILIES);
            return -1;
        }
        ctl_loop_family_t *f = &s->fam[s->nfam++];
        memset(f, 0, sizeof(*f));
        memcpy(f->name, fam[i].name, sizeof(f->name));
        f->name[sizeof(f->name) - 1] = '\0';
        f->count = fam[i].count;
        f->accuracy = fam[i].accuracy;
        f->rho = fam[i].rho;
        f->born = born;
        f->first_in_q = SIZE_MAX;
    }
    return n;
}

int ctl_loop_add_silence(ctl_loop_sim_t *s, const char *arg)
{
    ctl_loop_change_t ch = {.kind = CTL_CH_SILENCE};
    if (split_at("--silence", arg, ch.model, sizeof(ch.model), &ch.query) < 0)
        return -1;
    return add_change(s, &ch);
}

int ctl_loop_add_add(ctl_loop_sim_t *s, const char *arg)
{
    char buf[512];
    size_t q;
    if (split_at("--add", arg, buf, sizeof(buf), &q) < 0)
        return -1;
    size_t before = s->nfam;
    if (ctl_loop_add_families(s, buf, q, "--add") < 0)
        return -1;
    for (size_t f = before; f < s->nfam; f++) {
        ctl_loop_change_t ch = {
            .kind = CTL_CH_ADD, .query = q, .family = f, .accuracy = s->fam[f].accuracy};
        if (add_change(s, &ch) < 0)
            return -1;
    }
    return 0;
}

int ctl_loop_add_drift(ctl_loop_sim_t *s, const char *arg)
{
    ctl_loop_change_t ch = {.kind = CTL_CH_DRIFT};
    char buf[512], *colon;
    if (split_at("--drift", arg, buf, sizeof(buf), &ch.query) < 0)
        return -1;
    if (!(colon = strrchr(buf, ':'))) {
        ctl_error("--drift: '%s': expected FAMILY:ACC@QUERY", arg);
        return -1;
    }
    *colon = '\0';
    int f = ctl_loop_find_family(s, buf);
    if (f < 0) {
        ctl_error("--drift: no family '%s'", buf);
        return -1;
    }
    ch.family = (size_t)f;
    if (ctl_parse_double("--drift", colon + 1, 1e-6, 1 - 1e-6, &ch.accuracy) < 0)
        return -1;
    return add_change(s, &ch);
}

/* Marks the model each --silence names: 0, or -1 for a name not in the
 * fleet. */
static int mark_silences(ctl_loop_sim_t *s)
{
    for (size_t c = 0; c < s->nch; c++) {
        if (s->ch[c].kind != CTL_CH_SILENCE)
            continue;
        size_t m = 0;
        while (m < s->nmodels && strcmp(s->models[m].name, s->ch[c].model) != 0)
            m++;
        if (m == s->nmodels) {
            ctl_error("--silence: no model '%s' in the fleet", s->ch[c].model);
            return -1;
        }
        s->models[m].silent_from = s->ch[c].query;
    }
    return 0;
}

int ctl_loop_make_models(ctl_loop_sim_t *s)
{
    size_t n = 0;
    for (size_t f = 0; f < s->nfam; f++) {
        if (!(s->fam[f].rho >= s->global_rho)) {
            ctl_error("family '%s': rho must be >= --global-rho", s->fam[f].name);
            return -1;
        }
        n += s->fam[f].count;
    }
    if (n > ENS_MAX_MODELS) {
        ctl_error("more than %d models", ENS_MAX_MODELS);
        return -1;
    }
    s->models = ens_xcalloc(n + 1, sizeof(ctl_loop_model_t));
    for (size_t f = 0; f < s->nfam; f++) {
        s->fam[f].tau = ens_norm_quantile(1 - s->fam[f].accuracy);
        for (size_t i = 0; i < s->fam[f].count; i++) {
            ctl_loop_model_t *m = &s->models[s->nmodels++];
            snprintf(m->name, sizeof(m->name), "%s-%zu", s->fam[f].name, i + 1);
            m->family = f;
            m->silent_from = SIZE_MAX;
        }
    }
    return mark_silences(s);
}

void ctl_loop_apply_changes(ctl_loop_sim_t *s)
{
    for (size_t c = 0; c < s->nch; c++) {
        ctl_loop_change_t *ch = &s->ch[c];
        if (ch->query != s->q || ch->kind != CTL_CH_DRIFT)
            continue;
        ctl_loop_family_t *f = &s->fam[ch->family];
        f->accuracy = ch->accuracy;
        f->tau = ens_norm_quantile(1 - f->accuracy);
    }
    /* A change that is true of the current ensemble already counts now. */
    for (size_t c = 0; c < s->nch; c++) {
        ctl_loop_change_t *ch = &s->ch[c];
        if (ch->query == s->q && ch->kind != CTL_CH_SILENCE && s->fam[ch->family].in_ensemble &&
            ch->picked_q == SIZE_MAX) {
            ch->picked_q = s->sent;
            ch->picked_version = (size_t)s->version;
        }
    }
}

/* Every model's answer is drawn, whoever is asked, so that the fleet's
 * answers do not depend on the routing. The correctness of each model is
 * drawn per query, so that a family's accuracy can change mid-run. */
void ctl_loop_draw_answers(ctl_loop_sim_t *s, ens_rng_t *rng, uint8_t *y, double *factor,
                           uint8_t *ans)
{
    *y = (uint8_t)ens_rng_below(rng, s->classes);
    double g = ens_rng_normal(rng), gl = sqrt(s->global_rho);
    for (size_t f = 0; f < s->nfam; f++)
        factor[f] = ens_rng_normal(rng);
    for (size_t m = 0; m < s->nmodels; m++) {
        const ctl_loop_family_t *f = &s->fam[s->models[m].family];
        double z = gl * g + sqrt(f->rho - s->global_rho) * factor[s->models[m].family] +
                   sqrt(1 - f->rho) * ens_rng_normal(rng);
        size_t x = *y;
        if (z <= f->tau) {
            /* Uniform over the other classes, as ens_sample draws it. */
            x = ens_rng_below(rng, s->classes - 1);
            if (x >= *y)
                x++;
        }
        ans[m] = (uint8_t)x;
    }
}
