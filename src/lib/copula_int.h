/* copula_int.h - internals shared by bvn.c and copula_floor.c (not public). */
#ifndef ENSEMBLED_COPULA_INT_H
#define ENSEMBLED_COPULA_INT_H

/* 20-point Gauss-Legendre on [-1, 1]: the positive nodes and their weights
 * (the rule is symmetric). Defined in bvn.c. */
extern const double ens__gl20_x[10];
extern const double ens__gl20_w[10];

#endif
