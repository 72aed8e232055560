/* Adadelta (Zeiler 2012).
 * https://pytorch.org/docs/1.13/generated/torch.optim.Adadelta.html
 *
 *   g += wd*p;  sq = rho*sq + (1-rho)*g*g;  d = sqrt(acc+eps)/sqrt(sq+eps) * g;
 *   acc = rho*acc + (1-rho)*d*d;  p -= lr*d  (lr default 1.0).
 *
 * State: square_avg, acc_delta. */
#include "optim/optim_impl.h"

typedef struct adadelta_scalars {
    float grad_sign; /* -1 when maximize */
    float weight_decay;
    float neg_lr;
    float rho, one_minus_rho;
    float eps;
    int wd_on;
} adadelta_scalars;

static void defaults(gopt_optim_config *c) {
    c->lr = 1.0f;
    c->eps = 1e-6f;
}

static gopt_status validate(const gopt_optim_config *c, const char *where) {
    GOPT__REFUSE(!(c->rho >= 0 && c->rho <= 1), "adadelta", "rho", "is outside [0, 1]", c->rho, where);
    return GOPT_OK;
}

static unsigned state_slots(const gopt_optim_config *c) { return 3u; }

static void step_scalars(gopt__optim_group *g, int64_t t, void *out) {
    const gopt_optim_config *c = &g->cfg;
    adadelta_scalars *k = out;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->weight_decay = c->weight_decay;
    k->wd_on = c->weight_decay != 0.0f;
    k->eps = c->eps;
    k->neg_lr = (float)-(double)c->lr;
    k->rho = c->rho;
    k->one_minus_rho = (float)(1.0 - (double)c->rho);
}

GOPT_INLINE void k_adadelta(const adadelta_scalars *c, float *restrict p, const float *restrict g,
                            float *restrict sq, float *restrict acc, int64_t n, const int wd_on) {
    const float gs = c->grad_sign, wd = c->weight_decay, nlr = c->neg_lr, rho = c->rho, rho1 = c->one_minus_rho,
                eps = c->eps;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float s = sq[i] * rho + rho1 * (d * d);
        sq[i] = s;
        float delta = sqrtf(acc[i] + eps) / sqrtf(s + eps) * d;
        acc[i] = acc[i] * rho + rho1 * (delta * delta);
        p[i] = p[i] + nlr * delta;
    }
}

GOPT_CLONES static void run(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                            float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const adadelta_scalars *c = scalars;
    if (c->wd_on) k_adadelta(c, p, g, state[0], state[1], n, 1);
    else k_adadelta(c, p, g, state[0], state[1], n, 0);
}

const gopt__optim_algo *gopt__optim_adadelta(void) {
    static const gopt__optim_algo algo = {
        .name = "adadelta",
        .has_eps = 1,
        .has_betas = 0,
        .momentum_field = GOPT__MOMENTUM_NONE,
        .state_names = {"square_avg", "acc_delta"},
        .defaults = defaults,
        .validate = validate,
        .state_slots = state_slots,
        .scalars_size = sizeof(adadelta_scalars),
        .step_scalars = step_scalars,
        .run = run,
    };
    return &algo;
}
