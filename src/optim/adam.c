/* Adam, AdamW and their AMSGrad variants (Kingma and Ba 2015; Loshchilov and Hutter 2019;
 * Reddi et al. 2018).
 * https://pytorch.org/docs/1.13/generated/torch.optim.Adam.html
 * https://pytorch.org/docs/1.13/generated/torch.optim.AdamW.html
 *
 *   Adam:  g += wd*p (coupled, L2).   AdamW: p *= 1 - lr*wd (decoupled), no g += wd*p.
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
 *   amsgrad: vmax = max(vmax, v), used for v below;  bc1 = 1-b1^t, bc2 = 1-b2^t;
 *   p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps).
 *
 * PyTorch divides sqrt(v) by sqrt(bc2) rather than multiplying by its inverse; so do we,
 * for the same bits. State: exp_avg, exp_avg_sq, and max_exp_avg_sq when amsgrad. */
#include "optim/optim_impl.h"

typedef struct adam_scalars {
    float grad_sign;    /* -1 when maximize */
    float weight_decay; /* Adam's coupled decay */
    float neg_step;     /* -lr / bc1 */
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float eps;
    float sqrt_bc2;     /* sqrt(1 - b2^t) */
    float decay;        /* AdamW: 1 - lr*wd */
    int wd_on;
} adam_scalars;

static void adamw_defaults(gopt_optim_config *c) { c->weight_decay = 1e-2f; }

static unsigned state_slots(const gopt_optim_config *c) { return 3u | (c->amsgrad ? 4u : 0u); }

static void step_scalars(gopt__optim_group *g, int64_t step, void *out) {
    const gopt_optim_config *c = &g->cfg;
    adam_scalars *k = out;
    double t = (double)step, lr = c->lr, b1 = c->beta1, b2 = c->beta2;
    double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->weight_decay = c->weight_decay;
    k->wd_on = c->weight_decay != 0.0f;
    k->eps = c->eps;
    k->beta1 = (float)b1;
    k->one_minus_beta1 = (float)(1.0 - b1);
    k->beta2 = (float)b2;
    k->one_minus_beta2 = (float)(1.0 - b2);
    k->neg_step = (float)-(lr / bc1);
    k->sqrt_bc2 = (float)sqrt(bc2);
    k->decay = (float)(1.0 - lr * (double)c->weight_decay);
}

/* The flags are compile-time constants at every call site (see run_adam, run_adamw). */
GOPT_INLINE void k_adam(const adam_scalars *c, float *restrict p, const float *restrict g, float *restrict m,
                        float *restrict v, float *restrict vmax, int64_t n, const int wd_on, const int decoupled,
                        const int amsgrad) {
    const float gs = c->grad_sign, wd = c->weight_decay, nstep = c->neg_step, b1 = c->beta1,
                b11 = c->one_minus_beta1, b2 = c->beta2, b21 = c->one_minus_beta2;
    const float eps = c->eps, bc2s = c->sqrt_bc2, decay = c->decay;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i];
        float d = gs * g[i];
        if (decoupled) pi = pi * decay;
        else if (wd_on) d = d + wd * pi;
        float mi = m[i] * b1 + b11 * d;
        float vi = v[i] * b2 + b21 * (d * d);
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            float mx = vmax[i];
            mx = mx > vi ? mx : vi;
            vmax[i] = mx;
            vi = mx;
        }
        float denom = sqrtf(vi) / bc2s + eps;
        p[i] = pi + nstep * (mi / denom);
    }
}

GOPT_CLONES static void run_adam(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                                 float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const adam_scalars *c = scalars;
    float *m = state[0], *v = state[1], *vmax = state[2];
    switch (c->wd_on | (cfg->amsgrad ? 2 : 0)) {
    case 0: k_adam(c, p, g, m, v, vmax, n, 0, 0, 0); break;
    case 1: k_adam(c, p, g, m, v, vmax, n, 1, 0, 0); break;
    case 2: k_adam(c, p, g, m, v, vmax, n, 0, 0, 1); break;
    default: k_adam(c, p, g, m, v, vmax, n, 1, 0, 1); break;
    }
}

/* AdamW always scales p by 1 - lr*wd (exactly 1 when wd = 0). */
GOPT_CLONES static void run_adamw(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                                  float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const adam_scalars *c = scalars;
    float *m = state[0], *v = state[1], *vmax = state[2];
    if (cfg->amsgrad) k_adam(c, p, g, m, v, vmax, n, 0, 1, 1);
    else k_adam(c, p, g, m, v, vmax, n, 0, 1, 0);
}

const gopt__optim_algo *gopt__optim_adam(void) {
    static const gopt__optim_algo algo = {
        .name = "adam",
        .has_eps = 1,
        .has_betas = 1,
        .momentum_field = GOPT__MOMENTUM_BETA1,
        .state_names = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
        .state_slots = state_slots,
        .scalars_size = sizeof(adam_scalars),
        .step_scalars = step_scalars,
        .run = run_adam,
    };
    return &algo;
}

const gopt__optim_algo *gopt__optim_adamw(void) {
    static const gopt__optim_algo algo = {
        .name = "adamw",
        .has_eps = 1,
        .has_betas = 1,
        .momentum_field = GOPT__MOMENTUM_BETA1,
        .state_names = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
        .defaults = adamw_defaults,
        .state_slots = state_slots,
        .scalars_size = sizeof(adam_scalars),
        .step_scalars = step_scalars,
        .run = run_adamw,
    };
    return &algo;
}
