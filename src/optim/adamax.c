/* Adamax (Kingma and Ba 2015, section 7.1: Adam with the infinity norm).
 * https://pytorch.org/docs/1.13/generated/torch.optim.Adamax.html
 *
 *   g += wd*p;  m = b1*m + (1-b1)*g;  u = max(b2*u, |g| + eps);  p -= lr/(1-b1^t) * m/u.
 *
 * State: exp_avg, exp_inf. */
#include "optim/optim_impl.h"

typedef struct adamax_scalars {
    float grad_sign; /* -1 when maximize */
    float weight_decay;
    float neg_clr;   /* -lr / (1 - b1^t) */
    float beta1, one_minus_beta1, beta2;
    float eps;
    int wd_on;
} adamax_scalars;

static void defaults(gopt_optim_config *c) { c->lr = 2e-3f; }

static unsigned state_slots(const gopt_optim_config *c) { return 3u; }

static void step_scalars(gopt__optim_group *g, int64_t step, void *out) {
    const gopt_optim_config *c = &g->cfg;
    adamax_scalars *k = out;
    double t = (double)step, lr = c->lr, b1 = c->beta1;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->weight_decay = c->weight_decay;
    k->wd_on = c->weight_decay != 0.0f;
    k->eps = c->eps;
    k->beta1 = (float)b1;
    k->one_minus_beta1 = (float)(1.0 - b1);
    k->beta2 = c->beta2;
    k->neg_clr = (float)-(lr / (1.0 - pow(b1, t)));
}

GOPT_INLINE void k_adamax(const adamax_scalars *c, float *restrict p, const float *restrict g, float *restrict m,
                          float *restrict u, int64_t n, const int wd_on) {
    const float gs = c->grad_sign, wd = c->weight_decay, nclr = c->neg_clr, b1 = c->beta1, b11 = c->one_minus_beta1,
                b2 = c->beta2, eps = c->eps;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float mi = m[i] * b1 + b11 * d;
        m[i] = mi;
        float a = u[i] * b2;
        float b = fabsf(d) + eps;
        float ui = a > b ? a : b;
        u[i] = ui;
        p[i] = p[i] + nclr * (mi / ui);
    }
}

GOPT_CLONES static void run(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                            float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const adamax_scalars *c = scalars;
    if (c->wd_on) k_adamax(c, p, g, state[0], state[1], n, 1);
    else k_adamax(c, p, g, state[0], state[1], n, 0);
}

const gopt__optim_algo *gopt__optim_adamax(void) {
    static const gopt__optim_algo algo = {
        .name = "adamax",
        .has_eps = 1,
        .has_betas = 1,
        .momentum_field = GOPT__MOMENTUM_BETA1,
        .state_names = {"exp_avg", "exp_inf"},
        .defaults = defaults,
        .state_slots = state_slots,
        .scalars_size = sizeof(adamax_scalars),
        .step_scalars = step_scalars,
        .run = run,
    };
    return &algo;
}
