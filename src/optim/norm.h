/* Private: deterministic norm reductions and scaling over float buffers (src/clip.c),
 * shared by clipping and the monitor. */
#ifndef GRADOPT_INTERNAL_NORM_H
#define GRADOPT_INTERNAL_NORM_H

#include <stdint.h>

/* sum_i |x_i|^p, or max_i |x_i| for p = INFINITY (NaN if any x_i is NaN). Fixed chunking:
 * the result does not depend on the thread count. parallel: may use OpenMP threads. */
double gopt__pow_sum(const float *x, int64_t n, double p, int parallel);
/* (pow_sum)^(1/p), or the max for p = INFINITY. */
double gopt__pnorm(const float *x, int64_t n, double p, int parallel);
/* x *= coef. */
void gopt__scale(float *x, int64_t n, float coef, int parallel);

#endif
