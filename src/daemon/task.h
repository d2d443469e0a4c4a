/* task.h - the tasks: per task a sliding window and the join feeding it.
 *
 * A registry (ens_tasks_t) holds the tasks by name and by id: ids are
 * 0, 1, 2, ... in order of creation and never change while the daemon runs,
 * so other modules keep their per-task state in arrays indexed by id. The
 * fields of ens_task_t are written only by task.c; other modules read them.
 *
 * Two hooks let the daemon see what the tasks do without the tasks knowing
 * who listens: `added` for every new name (task, model, label: the
 * journal records each once) and `joined` for every row entering a window
 * (the journal, the recompute trigger). Restoring saved state goes through
 * the same calls before the hooks are set, so nothing is recorded twice.
 *
 * Caps (ingest.max_tasks, ingest.max_models) limit what ingest adds (the
 * models held now, so a freed slot makes room); they
 * are checked by the caller, never here, so a restore never loses state to a
 * lowered cap. Loop thread only.
 */
#ifndef ENSEMBLED_TASK_H
#define ENSEMBLED_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ensembled/join.h"
#include "ensembled/protocol.h"
#include "ensembled/window.h"

/* What a dictionary addition adds. */
typedef enum { ENS_NAME_TASK, ENS_NAME_MODEL, ENS_NAME_LABEL } ens_name_kind_t;

typedef struct ens_task_s {
    uint32_t id;          /* index in the registry */
    char *name;           /* owned, NUL-terminated copy of name[0..len) */
    size_t len;           /* bytes in name (it may hold NUL bytes) */
    ens_task_conf_t conf; /* effective settings */
    ens_window_t *window;
    ens_join_t *join;
    double *last_seen;     /* per model: arrival of its latest prediction (monotonic) */
    double *last_row;      /* per model: wall time of its newest joined row */
    uint64_t sampled_out;  /* events left out by ingest.sample_rate */
    double *label_seen;    /* per label: the latest event naming it (monotonic) */
    uint64_t models_freed; /* model slots freed (retired, out of the window) */
    uint64_t labels_freed; /* label slots freed (unused as long, out of the window) */
    int16_t open_label[ENS_MAX_LABELS]; /* open answers: class -> label id (-1: not yet) */
    uint64_t open_lost;                 /* open answers: rows the window could not take */
    const void *joining;                /* the query key being fed to the join (during the call) */
    size_t joining_len;
    struct ens_tasks_s *owner;
} ens_task_t;

typedef struct {
    /* A name was added: a task (id is its task id), a model or a label of t
     * with that id. */
    void (*added)(void *ud, const ens_task_t *t, ens_name_kind_t kind, uint32_t id, ens_str_t name);
    /* A joined row entered t's window: label y, answers x[0..nx) by model id. */
    void (*joined)(void *ud, ens_task_t *t, uint8_t y, const uint8_t *x, size_t nx, double ts);
    void *ud;
    /* Optional (NULL: none): query key[0..len) of t joined; called just
     * before `joined` for its row. */
    void (*query)(void *ud, const ens_task_t *t, const void *key, size_t len);
} ens_task_hooks_t;

typedef struct ens_tasks_s ens_tasks_t;

/* A registry with no hook set; conf is borrowed until the next set_config. */
ens_tasks_t *ens_tasks_new(const ens_config_t *conf);
void ens_tasks_destroy(ens_tasks_t **tp);
void ens_tasks_set_hooks(ens_tasks_t *ts, const ens_task_hooks_t *hooks);
/* A reload: every task takes its new settings (window.rows only at restart). */
void ens_tasks_set_config(ens_tasks_t *ts, const ens_config_t *conf, double mono);

size_t ens_tasks_count(const ens_tasks_t *ts);
/* By id (< count), or by name; NULL when there is none. */
ens_task_t *ens_tasks_get(const ens_tasks_t *ts, uint32_t id);
ens_task_t *ens_tasks_find(const ens_tasks_t *ts, const char *name, size_t len);
/* The task named name[0..len), created if new (no cap is checked). */
ens_task_t *ens_tasks_intern(ens_tasks_t *ts, const char *name, size_t len);

/* Expires old pending queries and window rows of every task, and frees
 * the slot of every model that retired (silent for longer than
 * select.retire_after and join.ttl) and that no row of its window holds:
 * its id may go to a new model, whose `added` is then reported with it.
 * Likewise for labels no event named for as long. */
void ens_tasks_tick(ens_tasks_t *ts, double now, double mono);

/* A model's or a label's id in t, added if new: >= 0 or a negative ENS_E*
 * (dictionary full, name too long). "?" as a label is ENS_SYM_ABSTAIN. */
int ens_task_model(ens_task_t *t, const char *name, size_t len);
int ens_task_label(ens_task_t *t, const char *name, size_t len);

/* Feeds the join: the answers of one prediction event, or a truth label,
 * for the query key[0..klen). The join runs on the monotonic clock (mono),
 * so a step of the wall clock never expires every pending query at once;
 * ts is the row's wall time. */
void ens_task_predictions(ens_task_t *t, const void *key, size_t klen, const ens_join_pred_t *preds,
                          size_t n, double mono);
void ens_task_truth(ens_task_t *t, const void *key, size_t klen, uint8_t y, double mono, double ts);
/* Open answers (conf.answers): the truth as the key of the true answer.
 * Joined rows enter the window as agreement classes, labels "c0", "c1", ...
 * and "none" (open.h), so that the label dictionary never holds more than
 * ENS_MAX_LABELS names whatever the number of distinct answers. */
void ens_task_truth_key(ens_task_t *t, const void *key, size_t klen, uint64_t answer, double mono,
                        double ts);
void ens_task_sampled_out(ens_task_t *t);

/* Restores a saved row into the window (no hook is called), with its
 * exploration flag (1: explored or not known, as in files written before
 * the flag). Returns 0 or ENS_EINVAL (an unknown symbol). */
int ens_task_restore_row(ens_task_t *t, uint8_t y, const uint8_t *x, size_t nx, double ts,
                         int explored);
/* A restore: t's saved rows read as `answers` under `norm` (a journal's
 * ANSWERS record, or choice without one). A restored task keeps the mode of
 * its rows; window.answers applies to tasks created after the change. */
void ens_task_restore_answers(ens_task_t *t, ens_answers_t answers, ens_norm_t norm);

/* Restores a query that joined before a restart (a QUERY record): its
 * tombstone makes what a source delivers again for it late. */
void ens_task_restore_query(ens_task_t *t, const void *key, size_t len, double mono);
/* After a restore: models and labels no restored row holds are freed (no query is
 * pending after a restart); the others count as heard from at mono, their
 * newest row is their newest restored one. */
void ens_task_restored(ens_task_t *t, double mono);

#endif
