/* pipeline_int.h - the pipeline's result, shared by pipeline.c (the stages)
 * and pipeline_body.c (the body). Internal to the library. */
#ifndef ENSEMBLED_PIPELINE_INT_H
#define ENSEMBLED_PIPELINE_INT_H

#include "ensembled/choice.h"
#include "ensembled/combine.h"
#include "ensembled/pipeline.h"

struct ens_pipeline_s {
    ens_pipeline_in_t in;   /* borrowed */
    ens_pipeline_opts_t o;  /* the budget capped at the pool */
    size_t budget;          /* the budget asked for (published) */
    size_t *coverage;       /* per snap model: rows in which it was asked */
    ens_excl_t *excluded;   /* per snap model: why it is out of the pool */
    const ens_data_t *pool; /* the snap's columns of the pool's models: the
                             * snap itself when every model is in the pool,
                             * else pool_copy */
    ens_data_t *pool_copy;  /* owned, or NULL */
    size_t *from_snap;      /* per pool model: its index in the snap */
    ens_selection_t sel;    /* the set to publish, indices into pool */
    ens_reason_t reason;    /* why this set */
    int replaced;           /* it differs from the published one */
    ens_choice_t choice;    /* the final choice (n 0: none made) */
    ens_combiner_t *comb;   /* fitted on the pool over sel */
    double acc_combiner, acc_vote, acc_single, acc_in_sample;
    ens_bounds_t bounds;
    ens_body_t body;     /* its arrays are owned here, its names borrowed
                          * from pool and snap */
    int16_t *table_keys; /* the decision table's key cells */
};

/* Fills p->body from the stages' results (pipeline_body.c). */
void ens__pipeline_fill_body(struct ens_pipeline_s *p);
void ens__pipeline_free_body(struct ens_pipeline_s *p);

#endif
