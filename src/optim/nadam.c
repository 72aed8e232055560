/* NAdam (Dozat 2016), as PyTorch 1.13 computes it.
 * https://pytorch.org/docs/1.13/generated/torch.optim.NAdam.html
 *
 *   g += wd*p;  mu_t = b1*(1 - 0.5*0.96^(t*momentum_decay)), mu_{t+1} likewise;
 *   mu_product *= mu_t;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;  bc2 = 1-b2^t;
 *   denom = sqrt(v/bc2) + eps;
 *   p -= lr*(1-mu_t)/(1-mu_product) * g/denom;
 *   p -= lr*mu_{t+1}/(1-mu_product*mu_t*mu_{t+1}) * m/denom.
 *
 * The extra mu_t in the last denominator is PyTorch 1.13's (fixed in 2.x). mu_product is a
 * float32 per group, as PyTorch's tensor is, and is saved with the state.
 * State: exp_avg, exp_avg_sq. */
#include "optim/optim_impl.h"

typedef struct nadam_scalars {
    float grad_sign; /* -1 when maximize */
    float weight_decay;
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float eps;
    float bc2;       /* 1 - b2^t */
    float grad_coef; /* -lr*(1-mu_t)/(1-mu_product) */
    float mom_coef;  /* -lr*mu_{t+1}/(1-mu_product*mu_t*mu_{t+1}) */
    int wd_on;
} nadam_scalars;

static void defaults(gopt_optim_config *c) { c->lr = 2e-3f; }

static gopt_status validate(const gopt_optim_config *c, const char *where) {
    GOPT__REFUSE(!isfinite(c->momentum_decay) || c->momentum_decay < 0, "nadam", "momentum_decay",
                 "must be finite and >= 0", c->momentum_decay, where);
    return GOPT_OK;
}

static unsigned state_slots(const gopt_optim_config *c) { return 3u; }

static void step_scalars(gopt__optim_group *g, int64_t step, void *out) {
    const gopt_optim_config *c = &g->cfg;
    nadam_scalars *k = out;
    double t = (double)step, lr = c->lr, b1 = c->beta1, b2 = c->beta2;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->weight_decay = c->weight_decay;
    k->wd_on = c->weight_decay != 0.0f;
    k->eps = c->eps;
    k->beta1 = (float)b1;
    k->one_minus_beta1 = (float)(1.0 - b1);
    k->beta2 = (float)b2;
    k->one_minus_beta2 = (float)(1.0 - b2);
    double md = c->momentum_decay;
    double mu = b1 * (1.0 - 0.5 * pow(0.96, t * md));
    double mu_next = b1 * (1.0 - 0.5 * pow(0.96, (t + 1.0) * md));
    /* PyTorch keeps mu_product as a float32 tensor. */
    g->mu_product = g->mu_product * (float)mu;
    float mpn = g->mu_product * (float)mu * (float)mu_next;
    k->bc2 = (float)(1.0 - pow(b2, t));
    k->grad_coef = (float)(-lr * (1.0 - mu) / (1.0 - (double)g->mu_product));
    k->mom_coef = (float)(-lr * mu_next / (1.0 - (double)mpn));
}

GOPT_INLINE void k_nadam(const nadam_scalars *c, float *restrict p, const float *restrict g, float *restrict m,
                         float *restrict v, int64_t n, const int wd_on) {
    const float gs = c->grad_sign, wd = c->weight_decay, b1 = c->beta1, b11 = c->one_minus_beta1, b2 = c->beta2,
                b21 = c->one_minus_beta2, eps = c->eps;
    const float bc2 = c->bc2, cg = c->grad_coef, cm = c->mom_coef;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float mi = m[i] * b1 + b11 * d;
        float vi = v[i] * b2 + b21 * (d * d);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi / bc2) + eps;
        float pi = p[i] + cg * (d / denom);
        p[i] = pi + cm * (mi / denom);
    }
}

GOPT_CLONES static void run(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                            float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const nadam_scalars *c = scalars;
    if (c->wd_on) k_nadam(c, p, g, state[0], state[1], n, 1);
    else k_nadam(c, p, g, state[0], state[1], n, 0);
}

const gopt__optim_algo *gopt__optim_nadam(void) {
    static const gopt__optim_algo algo = {
        .name = "nadam",
        .has_eps = 1,
        .has_betas = 1,
        .momentum_field = GOPT__MOMENTUM_BETA1,
        .state_names = {"exp_avg", "exp_avg_sq"},
        .defaults = defaults,
        .validate = validate,
        .state_slots = state_slots,
        .scalars_size = sizeof(nadam_scalars),
        .step_scalars = step_scalars,
        .run = run,
    };
    return &algo;
}
