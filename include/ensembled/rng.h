/* rng.h - a small seeded generator (xoshiro256**), reproducible across runs. */
#ifndef ENSEMBLED_RNG_H
#define ENSEMBLED_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} ens_rng_t;

void ens_rng_seed(ens_rng_t *r, uint64_t seed);
uint64_t ens_rng_next(ens_rng_t *r);
/* Uniform in [0, 1). */
double ens_rng_uniform(ens_rng_t *r);
/* Uniform in 0..n-1 (n > 0), without modulo bias. */
size_t ens_rng_below(ens_rng_t *r, size_t n);
/* Standard normal. */
double ens_rng_normal(ens_rng_t *r);
void ens_rng_shuffle(ens_rng_t *r, size_t *a, size_t n);

#endif
