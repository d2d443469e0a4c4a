/* rng.c - xoshiro256** seeded through splitmix64 (public-domain algorithms
 * by Blackman and Vigna), so every split, sample and random selection is
 * reproducible from one 64-bit seed. */
#include "ensembled/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void ens_rng_seed(ens_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

uint64_t ens_rng_next(ens_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ens_rng_uniform(ens_rng_t *r)
{
    return (double)(ens_rng_next(r) >> 11) * 0x1.0p-53;
}

size_t ens_rng_below(ens_rng_t *r, size_t n)
{
    /* Rejection keeps every value equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do {
        v = ens_rng_next(r);
    } while (v >= limit);
    return (size_t)(v % n);
}

double ens_rng_normal(ens_rng_t *r)
{
    /* Box-Muller; 1 - u keeps the logarithm finite. */
    double u = 1.0 - ens_rng_uniform(r), v = ens_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

void ens_rng_shuffle(ens_rng_t *r, size_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = ens_rng_below(r, i);
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
