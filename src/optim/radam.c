/* RAdam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond").
 * https://pytorch.org/docs/1.13/generated/torch.optim.RAdam.html
 *
 *   g += wd*p;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;  bc1 = 1-b1^t, bc2 = 1-b2^t;
 *   rho_inf = 2/(1-b2) - 1;  rho_t = rho_inf - 2t*b2^t/bc2;
 *   rho_t > 5: r = sqrt((rho_t-4)(rho_t-2)rho_inf / ((rho_inf-4)(rho_inf-2)rho_t)),
 *              p -= (m/bc1)*lr * sqrt(bc2)/(sqrt(v)+eps) * r;
 *   else:      p -= (m/bc1)*lr  (the un-adapted momentum step of the first steps).
 *
 * State: exp_avg, exp_avg_sq. */
#include "optim/optim_impl.h"

typedef struct radam_scalars {
    float grad_sign; /* -1 when maximize */
    float weight_decay;
    float lr;
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float eps;
    float bc1, sqrt_bc2;
    float rect;      /* r, when rectified */
    int wd_on, rectified;
} radam_scalars;

static unsigned state_slots(const gopt_optim_config *c) { return 3u; }

static void step_scalars(gopt__optim_group *g, int64_t step, void *out) {
    const gopt_optim_config *c = &g->cfg;
    radam_scalars *k = out;
    double t = (double)step, lr = c->lr, b1 = c->beta1, b2 = c->beta2;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->weight_decay = c->weight_decay;
    k->wd_on = c->weight_decay != 0.0f;
    k->eps = c->eps;
    k->lr = (float)lr;
    k->beta1 = (float)b1;
    k->one_minus_beta1 = (float)(1.0 - b1);
    k->beta2 = (float)b2;
    k->one_minus_beta2 = (float)(1.0 - b2);
    double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    double rho_inf = 2.0 / (1.0 - b2) - 1.0;
    double rho_t = rho_inf - 2.0 * t * pow(b2, t) / bc2;
    k->bc1 = (float)bc1;
    k->sqrt_bc2 = (float)sqrt(bc2);
    k->rectified = rho_t > 5.0;
    k->rect = k->rectified
                  ? (float)sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                  : 0.0f;
}

GOPT_INLINE void k_radam(const radam_scalars *c, float *restrict p, const float *restrict g, float *restrict m,
                         float *restrict v, int64_t n, const int wd_on, const int rect) {
    const float gs = c->grad_sign, wd = c->weight_decay, b1 = c->beta1, b11 = c->one_minus_beta1, b2 = c->beta2,
                b21 = c->one_minus_beta2, eps = c->eps;
    const float bc1 = c->bc1, bc2s = c->sqrt_bc2, r = c->rect, lr = c->lr;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float mi = m[i] * b1 + b11 * d;
        float vi = v[i] * b2 + b21 * (d * d);
        m[i] = mi;
        v[i] = vi;
        float bcm = mi / bc1;
        if (rect) {
            float adaptive = bc2s / (sqrtf(vi) + eps);
            p[i] = p[i] - ((bcm * lr) * adaptive) * r;
        } else {
            p[i] = p[i] - bcm * lr;
        }
    }
}

GOPT_CLONES static void run(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                            float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const radam_scalars *c = scalars;
    float *m = state[0], *v = state[1];
    switch (c->wd_on | (c->rectified ? 2 : 0)) {
    case 0: k_radam(c, p, g, m, v, n, 0, 0); break;
    case 1: k_radam(c, p, g, m, v, n, 1, 0); break;
    case 2: k_radam(c, p, g, m, v, n, 0, 1); break;
    default: k_radam(c, p, g, m, v, n, 1, 1); break;
    }
}

const gopt__optim_algo *gopt__optim_radam(void) {
    static const gopt__optim_algo algo = {
        .name = "radam",
        .has_eps = 1,
        .has_betas = 1,
        .momentum_field = GOPT__MOMENTUM_BETA1,
        .state_names = {"exp_avg", "exp_avg_sq"},
        .state_slots = state_slots,
        .scalars_size = sizeof(radam_scalars),
        .step_scalars = step_scalars,
        .run = run,
    };
    return &algo;
}
