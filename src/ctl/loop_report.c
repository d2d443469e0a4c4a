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

static void json_q(const char *key, size_t v)
{
    printf(",\"%s\":", key);
    if (v == SIZE_MAX)
        fputs("null", stdout);
    else
        printf("%zu", v);
}

/* One element of the summary's "changes" array. */
static void print_change(const ctl_loop_sim_t *s, const ctl_loop_change_t *ch, int first)
{
    static const char *const kinds[] = {"drift", "add", "silence"};
    printf("%s{\"kind\":\"%s\",\"query\":%zu,", first ? "" : ",", kinds[ch->kind], ch->query);
    if (ch->kind == CTL_CH_SILENCE) {
        fputs("\"model\":", stdout);
        ctl_json_string(stdout, ch->model);
        json_q("left_query", ch->left_q);
        json_q("left_version", ch->left_q == SIZE_MAX ? SIZE_MAX : ch->left_version);
        json_q("retired_query", ch->retired_q);
        json_q("retired_version", ch->retired_q == SIZE_MAX ? SIZE_MAX : ch->retired_version);
        putchar('}');
        return;
    }
    fputs("\"family\":", stdout);
    ctl_json_string(stdout, s->fam[ch->family].name);
    printf(",\"accuracy\":%.4f", ch->accuracy);
    json_q("picked_query", ch->picked_q);
    json_q("picked_version", ch->picked_q == SIZE_MAX ? SIZE_MAX : ch->picked_version);
    json_q("picked_after_queries", ch->picked_q == SIZE_MAX ? SIZE_MAX : ch->picked_q - ch->query);
    /* Labeled queries of the new regime: labels sent by then for queries at
     * or after the change (label_delay queries late). */
    size_t lab = SIZE_MAX;
    if (ch->picked_q != SIZE_MAX)
        lab = ch->picked_q > ch->query + s->label_delay ? ch->picked_q - ch->query - s->label_delay
                                                        : 0;
    json_q("picked_after_labels", lab);
    putchar('}');
}

void ctl_loop_print_summary(const ctl_loop_sim_t *s)
{
    printf("{\"queries\":%zu,\"labels\":%zu,\"publications\":%zu,\"replacements\":%zu", s->sent,
           s->labels, s->publications, s->replacements);
    json_q("first_publication_query", s->publications ? s->first_pub_q : SIZE_MAX);
    printf(",\"exploration_queries\":%zu,\"exploration_share\":%.6f", s->explore_q,
           s->ens_q ? (double)s->explore_q / (double)s->ens_q : 0.0);
    /* Measured cost: model queries beyond the ensemble's, per query. */
    printf(",\"extra_queries_per_query\":%.6f",
           s->ens_q ? (double)(s->asked_with_ens - s->ens_size_sum) / (double)s->ens_q : 0.0);
    printf(",\"final\":{\"version\":%llu,\"models\":[", (unsigned long long)s->version);
    for (size_t i = 0; i < s->ens_n; i++) {
        if (i)
            putchar(',');
        ctl_json_string(stdout, s->ens_names[i]);
    }
    printf("],\"explore_rate\":%.6f,\"pool\":%zu,\"extra_queries_per_query\":", s->pub_rate,
           s->pool_size);
    if (isfinite(s->extra_published))
        printf("%.6f}", s->extra_published);
    else
        fputs("null}", stdout);
    fputs(",\"families\":{", stdout);
    for (size_t f = 0; f < s->nfam; f++) {
        printf("%s", f ? "," : "");
        ctl_json_string(stdout, s->fam[f].name);
        printf(":{\"accuracy\":%.4f,\"born\":%zu,\"in_ensemble\":%s", s->fam[f].accuracy,
               s->fam[f].born, s->fam[f].in_ensemble ? "true" : "false");
        json_q("first_in_ensemble_query", s->fam[f].first_in_q);
        putchar('}');
    }
    fputs("},\"changes\":[", stdout);
    for (size_t c = 0; c < s->nch; c++)
        print_change(s, &s->ch[c], c == 0);
    puts("]}");
    fflush(stdout);
}
