/* Schedulers bound to an optimizer (see gradopt/sched.h): the core in sched.c writes the
 * group LRs and momenta through these hooks. */
#include "gradopt/sched.h"
#include "core/common.h"
#include "optim/sched.h"

static float hook_get_lr(void *ctx, int group) { return gopt_optim_get_lr((const gopt_optim *)ctx, group); }
static gopt_status hook_set_lr(void *ctx, int group, float lr) { return gopt_optim_set_lr((gopt_optim *)ctx, group, lr); }
static gopt_status hook_set_momentum(void *ctx, int group, float m) {
    return gopt_optim_set_momentum((gopt_optim *)ctx, group, m);
}

#define MAX_STACK_GROUPS 64

gopt_status gopt_sched_create(const gopt_sched_config *cfg, gopt_optim *opt, gopt_sched **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    GOPT_CHECK_NULL(opt);
    int ng = gopt_optim_group_count(opt);
    if (ng < 1) return GOPT_FAIL(GOPT_EINVAL, "the optimizer has %d groups", ng);
    double stack[MAX_STACK_GROUPS];
    double *initial = ng <= MAX_STACK_GROUPS ? stack : gopt__calloc((size_t)ng, sizeof *initial);
    if (!initial) return GOPT_FAIL(GOPT_ENOMEM, "%d initial LRs", ng);
    int wants_momentum = 0;
    const gopt_sched_config *c = cfg;
    /* cycle_momentum needs an algorithm with a momentum (PyTorch: 'momentum' or 'betas') */
    if (c->kind == GOPT_SCHED_ONECYCLE && c->cycle_momentum) wants_momentum = 1;
    if ((c->kind == GOPT_SCHED_SEQUENTIAL || c->kind == GOPT_SCHED_CHAINED) && c->children)
        for (int i = 0; i < c->n_children && i < GOPT_SCHED_MAX_CHILDREN; i++)
            if (c->children[i].kind == GOPT_SCHED_ONECYCLE && c->children[i].cycle_momentum) wants_momentum = 1;
    gopt_status st = GOPT_OK;
    if (wants_momentum && isnan(gopt_optim_get_momentum(opt, 0))) {
        gopt_optim_config oc;
        const char *name = gopt_optim_group_config(opt, 0, &oc) == GOPT_OK ? gopt_algo_name(oc.algo) : NULL;
        st = GOPT_FAIL(GOPT_EINVAL, "cycle_momentum: the %s optimizer has no momentum or beta1 to cycle",
                       name ? name : "given");
    }
    if (st == GOPT_OK) {
        for (int g = 0; g < ng; g++) initial[g] = gopt_optim_initial_lr(opt, g);
        gopt__sched_target t = {opt, hook_get_lr, hook_set_lr, hook_set_momentum};
        st = gopt__sched_create(cfg, ng, initial, &t, out);
    }
    if (initial != stack) gopt__free(initial);
    return st;
}
