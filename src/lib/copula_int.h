/* copula_int.h - internals shared by bvn.c, copula_floor.c and copula_vote.c (not public). */
#ifndef ENSEMBLED_COPULA_INT_H
#define ENSEMBLED_COPULA_INT_H

/* 20-point Gauss-Legendre on [-1, 1]: the positive nodes and their weights
 * (the rule is symmetric). Defined in bvn.c. */
extern const double ens__gl20_x[10];
extern const double ens__gl20_w[10];

/* A one-factor correlation clamped into [0, 1 - 1e-12] (copula.h). */
static inline double ens__clamp_rho(double rho)
{
    if (!(rho > 0))
        return 0;
    return rho > 1 - 1e-12 ? 1 - 1e-12 : rho;
}

#endif
