/* Private: the scheduler core (src/sched.c) writes LRs through these hooks, which
 * src/sched_optim.c points at a gopt_optim. Keeping the optimizer calls out of sched.c lets
 * detached schedulers link without the optimizer's object file. */
#ifndef GRADOPT_INTERNAL_SCHED_H
#define GRADOPT_INTERNAL_SCHED_H

#include "gradopt/sched.h"

typedef struct gopt__sched_target {
    void *ctx;
    float (*get_lr)(void *ctx, int group);
    gopt_status (*set_lr)(void *ctx, int group, float lr);
    gopt_status (*set_momentum)(void *ctx, int group, float momentum);
} gopt__sched_target;

/* Create the core over ngroups initial LRs; target may be NULL (detached). The LR of epoch
 * 0 is written through the target before returning. */
gopt_status gopt__sched_create(const gopt_sched_config *cfg, int ngroups, const double *initial_lrs,
                               const gopt__sched_target *target, gopt_sched **out);

#endif
