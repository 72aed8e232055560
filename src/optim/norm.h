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
/* clip_grad_norm_'s argument checks (GOPT_EINVAL naming the value) and its scaling of one
 * buffer whose total norm is known (PyTorch's float32 coefficient, NaN spreading): clip.c,
 * and gopt_dist_clip_grad_norm on a ZeRO-1 slice. */
gopt_status gopt__clip_check(double max_norm, double norm_type);
void gopt__clip_apply(float *g, int64_t n, float total, double max_norm, int parallel);
/* x *= coef. */
void gopt__scale(float *x, int64_t n, float coef, int parallel);

#endif
