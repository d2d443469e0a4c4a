/* loop.h - simulate --closed-loop, private to its files: the simulator's state
 * (ctl_loop_sim_t) shared by cmd_loop.c (options, routers, run loop),
 * loop_fleet.c (the fleet model: families, models, scheduled changes, the
 * correctness draw), loop_pub.c (reading the publications) and
 * loop_report.c (the progress lines and the summary).
 *
 * One sim_t per run, used from the main thread only. Families and changes
 * live in fixed arrays; models[] is allocated once by ctl_loop_make_models()
 * and ens_names[] is replaced at each publication; both are the sim_t's.
 */
#ifndef ENSEMBLECTL_LOOP_H
#define ENSEMBLECTL_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/data.h"
#include "ensembled/rng.h"

#define CTL_LOOP_MAX_FAMILIES 64
#define CTL_LOOP_MAX_CHANGES 32

typedef struct {
    char name[64];
    size_t count;
    double accuracy, rho;
    size_t born;       /* the query its models appear at */
    double tau;        /* Phi^-1(1 - accuracy) */
    int in_ensemble;   /* a model of it is in the current ensemble */
    size_t first_in_q; /* first query at which a model of it was in an ensemble (SIZE_MAX) */
} ctl_loop_family_t;

typedef struct {
    char name[ENS_MAX_NAME + 1];
    size_t family;
    size_t silent_from; /* SIZE_MAX: answers throughout */
    int in_ens, in_explore;
} ctl_loop_model_t;

enum { CTL_CH_DRIFT, CTL_CH_ADD, CTL_CH_SILENCE };

typedef struct {
    int kind;
    size_t query;
    size_t family; /* drift, add */
    double accuracy;
    char model[ENS_MAX_NAME + 1]; /* silence */
    /* outcome */
    size_t picked_q, picked_version;   /* drift, add: first ensemble holding it */
    size_t left_q, left_version;       /* silence: first ensemble without it */
    size_t retired_q, retired_version; /* silence: first body calling it retired */
} ctl_loop_change_t;

typedef struct {
    ctl_loop_family_t fam[CTL_LOOP_MAX_FAMILIES];
    size_t nfam;
    ctl_loop_model_t *models;
    size_t nmodels;
    ctl_loop_change_t ch[CTL_LOOP_MAX_CHANGES];
    size_t nch;
    size_t classes;
    double global_rho;
    /* the latest publication */
    int have_ens;
    uint64_t version;
    double pub_rate;
    size_t ens_size, pool_size;
    char **ens_names;
    size_t ens_n;
    double extra_published;
    size_t publications, first_pub_q;
    size_t replacements; /* publications whose set differs from the previous one */
    /* counters */
    size_t q;    /* the query being drawn (0-based) */
    size_t sent; /* queries sent: the clock of every figure */
    size_t label_delay;
    size_t labels;             /* label events sent */
    size_t explore_q, ens_q;   /* exploration queries, queries with an ensemble */
    size_t asked_with_ens;     /* model queries made on queries with an ensemble */
    size_t ens_size_sum;       /* sum of the ensemble size on those queries */
    size_t rep_explore, rep_q; /* since the last progress line */
} ctl_loop_sim_t;

/* --- loop_fleet.c: every function prints its error and returns -1 ------- */

/* Index of the family called name, or -1. */
int ctl_loop_find_family(const ctl_loop_sim_t *s, const char *name);

/* Adds the families of "name:count:acc:rho,..." born at query born; opt
 * names the option in errors. Returns the count added, or -1. */
int ctl_loop_add_families(ctl_loop_sim_t *s, const char *spec, size_t born, const char *opt);

/* The argument of --silence MODEL@Q, --add FAMILY:COUNT:ACC:RHO@Q (its
 * families and one change each) and --drift FAMILY:ACC@Q, as changes:
 * 0 or -1. A drift may name a family that an --add brings. */
int ctl_loop_add_silence(ctl_loop_sim_t *s, const char *arg);
int ctl_loop_add_add(ctl_loop_sim_t *s, const char *arg);
int ctl_loop_add_drift(ctl_loop_sim_t *s, const char *arg);

/* The models of every family, after the families and changes are in:
 * 0 or -1 (s->models may then hold memory to free). */
int ctl_loop_make_models(ctl_loop_sim_t *s);

/* Applies the changes due at query s->q. */
void ctl_loop_apply_changes(ctl_loop_sim_t *s);

/* Draws the class *y of query s->q and every model's answer ans[m] from the
 * copula; factor has room for one value per family. */
void ctl_loop_draw_answers(ctl_loop_sim_t *s, ens_rng_t *rng, uint8_t *y, double *factor,
                           uint8_t *ans);

/* --- loop_pub.c ------------------------------------------------------- */

/* Reads every publication waiting on the SUB socket into s, waiting at most
 * timeout_ms for the first. Returns 0, or -1 on a socket error. */
int ctl_loop_drain(ctl_loop_sim_t *s, void *sub, long timeout_ms);

/* Frees the names of the current ensemble. */
void ctl_loop_free_ensemble(ctl_loop_sim_t *s);

/* --- loop_report.c: on stdout, flushed ----------------------------------- */

/* A progress line; restarts the counts of the next one. */
void ctl_loop_print_progress(ctl_loop_sim_t *s);

/* The JSON summary line. */
void ctl_loop_print_summary(const ctl_loop_sim_t *s);

#endif
