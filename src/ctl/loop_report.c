/* loop_report.c - simulate --closed-loop: what the run prints. A progress
 * line every --report queries (the current ensemble, the exploration rate
 * published and measured since the last line, where each change stands) and
 * the one-line JSON summary at the end, whose figures count queries sent
 * (the clock of every figure; SIZE_MAX prints as null: not reached).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "ctl.h"
#include "loop.h"

void ctl_loop_print_progress(ctl_loop_sim_t *s)
{
    printf("q=%zu labels=%zu v%llu ensemble=[", s->sent, s->labels, (unsigned long long)s->version);
    for (size_t i = 0; i < s->ens_n; i++)
        printf("%s%s", i ? "," : "", s->ens_names[i]);
    printf("] explore_rate=%.3f explored=%.3f pool=%zu", s->pub_rate,
           s->rep_q ? (double)s->rep_explore / (double)s->rep_q : 0.0, s->pool_size);
    for (size_t c = 0; c < s->nch; c++) {
        const ctl_loop_change_t *ch = &s->ch[c];
        if (ch->kind == CTL_CH_SILENCE)
            continue;
        printf(" %s%s=%s",
               ch->kind == CTL_CH_DRIFT ? "drifted:" : "added:", s->fam[ch->family].name,
               s->sent <= ch->query             ? "pending"
               : s->fam[ch->family].in_ensemble ? "in"
                                                : "out");
    }
    putchar('\n');
    fflush(stdout);
    s->rep_q = s->rep_explore = 0;
}

/* A query count; SIZE_MAX (not reached) is null. */
static json_t *json_q(size_t v)
{
    return v == SIZE_MAX ? json_null() : json_integer((json_int_t)v);
}

/* One element of the summary's "changes" array. */
static json_t *change_json(const ctl_loop_sim_t *s, const ctl_loop_change_t *ch)
{
    static const char *const kinds[] = {"drift", "add", "silence"};
    json_t *o = json_object();
    ctl_json_set(o, "kind", json_string(kinds[ch->kind]));
    ctl_json_set(o, "query", json_integer((json_int_t)ch->query));
    if (ch->kind == CTL_CH_SILENCE) {
        ctl_json_set(o, "model", ctl_json_cstr(ch->model));
        ctl_json_set(o, "left_query", json_q(ch->left_q));
        ctl_json_set(o, "left_version",
                     json_q(ch->left_q == SIZE_MAX ? SIZE_MAX : ch->left_version));
        ctl_json_set(o, "retired_query", json_q(ch->retired_q));
        ctl_json_set(o, "retired_version",
                     json_q(ch->retired_q == SIZE_MAX ? SIZE_MAX : ch->retired_version));
        return o;
    }
    ctl_json_set(o, "family", ctl_json_cstr(s->fam[ch->family].name));
    ctl_json_set(o, "accuracy", ctl_json_real(ch->accuracy));
    ctl_json_set(o, "picked_query", json_q(ch->picked_q));
    ctl_json_set(o, "picked_version",
                 json_q(ch->picked_q == SIZE_MAX ? SIZE_MAX : ch->picked_version));
    ctl_json_set(o, "picked_after_queries",
                 json_q(ch->picked_q == SIZE_MAX ? SIZE_MAX : ch->picked_q - ch->query));
    /* Labeled queries of the new regime: labels sent by then for queries at
     * or after the change (label_delay queries late). */
    size_t lab = SIZE_MAX;
    if (ch->picked_q != SIZE_MAX)
        lab = ch->picked_q > ch->query + s->label_delay ? ch->picked_q - ch->query - s->label_delay
                                                        : 0;
    ctl_json_set(o, "picked_after_labels", json_q(lab));
    return o;
}

/* The ensemble at the end of the run. */
static json_t *final_json(const ctl_loop_sim_t *s)
{
    json_t *o = json_object(), *models = json_array();
    ctl_json_set(o, "version", json_integer((json_int_t)s->version));
    for (size_t i = 0; i < s->ens_n; i++)
        ctl_json_push(models, ctl_json_cstr(s->ens_names[i]));
    ctl_json_set(o, "models", models);
    ctl_json_set(o, "explore_rate", ctl_json_real(s->pub_rate));
    ctl_json_set(o, "pool", json_integer((json_int_t)s->pool_size));
    ctl_json_set(o, "extra_queries_per_query", ctl_json_real(s->extra_published));
    return o;
}

void ctl_loop_print_summary(const ctl_loop_sim_t *s)
{
    json_t *j = json_object(), *fams = json_object(), *changes = json_array();
    ctl_json_set(j, "queries", json_integer((json_int_t)s->sent));
    ctl_json_set(j, "labels", json_integer((json_int_t)s->labels));
    ctl_json_set(j, "publications", json_integer((json_int_t)s->publications));
    ctl_json_set(j, "replacements", json_integer((json_int_t)s->replacements));
    ctl_json_set(j, "first_publication_query", json_q(s->publications ? s->first_pub_q : SIZE_MAX));
    ctl_json_set(j, "exploration_queries", json_integer((json_int_t)s->explore_q));
    ctl_json_set(j, "exploration_share",
                 ctl_json_real(s->ens_q ? (double)s->explore_q / (double)s->ens_q : 0.0));
    /* Measured cost: model queries beyond the ensemble's, per query. */
    ctl_json_set(
        j, "extra_queries_per_query",
        ctl_json_real(s->ens_q ? (double)(s->asked_with_ens - s->ens_size_sum) / (double)s->ens_q
                               : 0.0));
    ctl_json_set(j, "final", final_json(s));
    for (size_t f = 0; f < s->nfam; f++) {
        json_t *o = json_object();
        ctl_json_set(o, "accuracy", ctl_json_real(s->fam[f].accuracy));
        ctl_json_set(o, "born", json_integer((json_int_t)s->fam[f].born));
        ctl_json_set(o, "in_ensemble", json_boolean(s->fam[f].in_ensemble));
        ctl_json_set(o, "first_in_ensemble_query", json_q(s->fam[f].first_in_q));
        json_t *k = ctl_json_cstr(s->fam[f].name);
        json_object_setn_new(fams, json_string_value(k), json_string_length(k), o);
        json_decref(k);
    }
    ctl_json_set(j, "families", fams);
    for (size_t c = 0; c < s->nch; c++)
        ctl_json_push(changes, change_json(s, &s->ch[c]));
    ctl_json_set(j, "changes", changes);
    ctl_json_print(j);
}
