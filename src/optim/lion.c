/* Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Alg. 2).
 * Not in torch.optim; the reference is the paper's pseudocode.
 *
 *   c = b1*m + (1-b1)*g;  p -= lr*(sign(c) + wd*p) (decoupled);  m = b2*m + (1-b2)*g.
 *
 * sign(0) = 0. Defaults lr 1e-4, betas (0.9, 0.99), wd 0. No eps. State: exp_avg. */
#include "optim/optim_impl.h"

typedef struct lion_scalars {
    float grad_sign; /* -1 when maximize */
    float weight_decay;
    float lr;
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    int wd_on;
} lion_scalars;

static void defaults(gopt_optim_config *c) {
    c->lr = 1e-4f;
    c->beta2 = 0.99f;
}

static unsigned state_slots(const gopt_optim_config *c) { return 1u; }

static void step_scalars(gopt__optim_group *g, int64_t t, void *out) {
    const gopt_optim_config *c = &g->cfg;
    lion_scalars *k = out;
    double b1 = c->beta1, b2 = c->beta2;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->weight_decay = c->weight_decay;
    k->wd_on = c->weight_decay != 0.0f;
    k->lr = c->lr;
    k->beta1 = (float)b1;
    k->one_minus_beta1 = (float)(1.0 - b1);
    k->beta2 = (float)b2;
    k->one_minus_beta2 = (float)(1.0 - b2);
}

GOPT_INLINE void k_lion(const lion_scalars *c, float *restrict p, const float *restrict g, float *restrict m,
                        int64_t n, const int wd_on) {
    const float gs = c->grad_sign, wd = c->weight_decay, lr = c->lr, b1 = c->beta1, b11 = c->one_minus_beta1,
                b2 = c->beta2, b21 = c->one_minus_beta2;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        float mi = m[i];
        float u = mi * b1 + b11 * d;
        float sgn = (float)(u > 0.0f) - (float)(u < 0.0f);
        if (wd_on) sgn = sgn + wd * p[i];
        p[i] = p[i] - lr * sgn;
        m[i] = mi * b2 + b21 * d;
    }
}

GOPT_CLONES static void run(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                            float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const lion_scalars *c = scalars;
    if (c->wd_on) k_lion(c, p, g, state[0], n, 1);
    else k_lion(c, p, g, state[0], n, 0);
}

const gopt__optim_algo *gopt__optim_lion(void) {
    static const gopt__optim_algo algo = {
        .name = "lion",
        .has_eps = 0,
        .has_betas = 1,
        .momentum_field = GOPT__MOMENTUM_BETA1,
        .state_names = {"exp_avg"},
        .defaults = defaults,
        .state_slots = state_slots,
        .scalars_size = sizeof(lion_scalars),
        .step_scalars = step_scalars,
        .run = run,
    };
    return &algo;
}
