/* Schedule-Free AdamW and SGD (Defazio, Yang, Mehta, Mishchenko, Khaled and Cutkosky 2024,
 * "The Road Less Scheduled", arXiv:2405.15682), as facebookresearch/schedule_free 1.3
 * (AdamWScheduleFree, SGDScheduleFree; their foreach=False path, one tensor at a time).
 * https://github.com/facebookresearch/schedule_free
 *
 * Three sequences: z (the base iterate, state "z"), x (the average of the z's, the point
 * to evaluate) and y = (1-b1) z + b1 x (where gradients are taken). The arena holds y in
 * train mode; x is not stored but recovered from y and z: x = lerp(y, z, 1-1/b1). Per group
 * and step t (k = t-1), in double as Python floats:
 *   sched = (k+1)/warmup_steps if k < warmup_steps else 1;  lr_t = lr*sched;
 *   lr_max = max(lr_max, lr_t);  c = (k+1)^r * lr_max^weight_lr_power;  weight_sum += c;
 *   ckp1 = c/weight_sum (0 when weight_sum == 0, schedule_free's ZeroDivisionError);
 * then element-wise in float32 (AdamW; bc2 = 1-b2^(k+1)):
 *   first step: z = y;
 *   v = b2*v + (1-b2)*g*g;  u = g / (sqrt(v/bc2) + eps);  u += wd*y (if wd != 0);
 *   y = lerp(y, z, ckp1);  y += lr_t*(b1*(1-ckp1) - 1) * u;  z -= lr_t*u
 * and SGD: u = g + wd*y;  the same y and z updates with momentum in place of b1.
 * lerp(a, b, w) = w < 0.5 ? a + w*(b-a) : b - (b-a)*(1-w), torch.lerp's CPU formula.
 * eval (x into the arena): x = lerp(y, z, 1-1/b1); train: y back.
 * g is the gradient after maximize (g = -g) and L1 (optim.c), as for every algorithm;
 * schedule_free has neither. Weight decay is evaluated at y and goes through the
 * Adam normalisation only in the sense of being added after it (u += wd*y), as upstream.
 * Defaults: AdamW lr 0.0025, betas (0.9, 0.999), eps 1e-8; SGD lr 1.0, momentum 0.9; both
 * wd 0, warmup_steps 0, r 0, weight_lr_power 2.
 *
 * Differences from schedule_free 1.3:
 *  - Mode at create: train (upstream starts in eval mode and raises on a step before
 *    .train(); before the first step both modes hold the same weights).
 *  - Back to train mode: upstream recomputes y = lerp(x, z, 1-b1), which rounds, so every
 *    evaluation moves y by an ulp or so and a run's result depends on how often it was
 *    evaluated. Here eval keeps y (state "y", one more arena-sized buffer) and train copies
 *    it back: an eval/train round trip changes no bit, and a run evaluated every step ends
 *    where an unevaluated one does. x itself is computed as upstream.
 *  - The mode is one per optimizer (upstream stores it per group but switches all groups at
 *    once and checks group 0's in step).
 *  - Refused at create: betas[0] == 0 / momentum outside (0, 1) (x divides by it; upstream
 *    checks SGD's momentum only), warmup_steps < 0, r or weight_lr_power not finite,
 *    weight_lr_power < 0 (lr_max^power would be infinite for lr_max = 0).
 *  - torch.optim has no Schedule-Free optimizer; Keras 3 (ScheduleFreeAdamW) and optax
 *    (contrib.schedule_free) follow the same paper with their own conventions for which
 *    point the parameters hold; we follow the PyTorch reference above.
 *
 * State: z, exp_avg_sq (AdamW), y (the train-mode weights while in eval mode); per group
 * weight_sum and lr_max (gopt__optim_group), k is the optimizer's step count. */
#include <omp.h>

#include "optim/optim_impl.h"

typedef struct sf_scalars {
    float grad_sign; /* -1 when maximize */
    float weight_decay;
    float beta2, one_minus_beta2, bc2, eps; /* AdamW */
    float ckp1, one_minus_ckp1;
    float y_coef; /* lr_t*(b1*(1-ckp1) - 1) */
    float lr;     /* lr_t */
    int wd_on, first;
} sf_scalars;

/* ---- config ----------------------------------------------------------------------------- */

static void adamw_defaults(gopt_optim_config *c) {
    c->lr = 0.0025f;
    c->weight_lr_power = 2.0f;
}

static void sgd_defaults(gopt_optim_config *c) {
    c->lr = 1.0f;
    c->momentum = 0.9f;
    c->weight_lr_power = 2.0f;
}

static gopt_status validate_common(const char *an, const gopt_optim_config *c, const char *where) {
    GOPT__REFUSE(c->warmup_steps < 0, an, "warmup_steps", "must be >= 0", c->warmup_steps, where);
    GOPT__REFUSE(!isfinite(c->r), an, "r", "must be finite", c->r, where);
    GOPT__REFUSE(!isfinite(c->weight_lr_power) || c->weight_lr_power < 0, an, "weight_lr_power",
                 "must be finite and >= 0", c->weight_lr_power, where);
    return GOPT_OK;
}

static gopt_status adamw_validate(const gopt_optim_config *c, const char *where) {
    GOPT__REFUSE(!(c->beta1 > 0), "adamw_schedulefree", "betas[0]", "must be > 0 (eval's x = lerp(y, z, 1-1/b1))",
                 c->beta1, where);
    return validate_common("adamw_schedulefree", c, where);
}

static gopt_status sgd_validate(const gopt_optim_config *c, const char *where) {
    GOPT__REFUSE(!(c->momentum > 0 && c->momentum < 1), "sgd_schedulefree", "momentum", "is outside (0, 1)",
                 c->momentum, where);
    return validate_common("sgd_schedulefree", c, where);
}

static unsigned adamw_slots(const gopt_optim_config *c) { return 7u; } /* z, exp_avg_sq, y */
static unsigned sgd_slots(const gopt_optim_config *c) { return 3u; }   /* z, y */

/* ---- per-step scalars ------------------------------------------------------------------- */

/* The group's averaging weight ckp1 and scheduled LR of step t; advances weight_sum and
 * lr_max (schedule_free's step, before the per-tensor loop). b1 is beta1 or momentum. */
static void schedule(gopt__optim_group *g, int64_t t, double b1, sf_scalars *k) {
    const gopt_optim_config *c = &g->cfg;
    double step = (double)t; /* k+1 */
    double sched = t - 1 < c->warmup_steps ? step / (double)c->warmup_steps : 1.0;
    double lr = (double)c->lr * sched;
    if (lr > g->lr_max) g->lr_max = lr;
    double weight = pow(step, (double)c->r) * pow(g->lr_max, (double)c->weight_lr_power);
    g->weight_sum += weight;
    double ckp1 = g->weight_sum != 0.0 ? weight / g->weight_sum : 0.0;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->weight_decay = c->weight_decay;
    k->wd_on = c->weight_decay != 0.0f;
    k->ckp1 = (float)ckp1;
    k->one_minus_ckp1 = 1.0f - k->ckp1; /* torch.lerp: 1 - weight in the tensor's type */
    k->y_coef = (float)(lr * (b1 * (1.0 - ckp1) - 1.0));
    k->lr = (float)lr;
    k->first = t == 1;
}

static void adamw_scalars(gopt__optim_group *g, int64_t t, void *out) {
    sf_scalars *k = out;
    schedule(g, t, g->cfg.beta1, k);
    double b2 = g->cfg.beta2;
    k->beta2 = (float)b2;
    k->one_minus_beta2 = (float)(1.0 - b2);
    k->bc2 = (float)(1.0 - pow(b2, (double)t));
    k->eps = g->cfg.eps;
}

static void sgd_scalars(gopt__optim_group *g, int64_t t, void *out) {
    schedule(g, t, g->cfg.momentum, out);
}

/* ---- kernels ------------------------------------------------------------------------------ */

GOPT_INLINE float lerp(float a, float b, float w, float one_minus_w) {
    return w < 0.5f ? a + w * (b - a) : b - (b - a) * one_minus_w;
}

/* The flags are compile-time constants at every call site. */
GOPT_INLINE void k_sf(const sf_scalars *c, float *restrict y, const float *restrict g, float *restrict z,
                      float *restrict v, int64_t n, const int adam, const int wd_on, const int first) {
    const float gs = c->grad_sign, wd = c->weight_decay, b2 = c->beta2, b21 = c->one_minus_beta2, bc2 = c->bc2,
                eps = c->eps, w = c->ckp1, w1 = c->one_minus_ckp1, yc = c->y_coef, lr = c->lr;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float yi = y[i];
        float zi = first ? yi : z[i];
        float u = gs * g[i];
        if (adam) {
            float vi = v[i] * b2 + b21 * u * u;
            v[i] = vi;
            u = u / (sqrtf(vi / bc2) + eps);
        }
        if (wd_on) u = u + wd * yi;
        yi = lerp(yi, zi, w, w1);
        y[i] = yi + yc * u;
        z[i] = zi - lr * u;
    }
}

GOPT_CLONES static void run_adamw(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                                  float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const sf_scalars *c = scalars;
    float *z = state[0], *v = state[1];
    switch (c->wd_on | (c->first ? 2 : 0)) {
    case 0: k_sf(c, p, g, z, v, n, 1, 0, 0); break;
    case 1: k_sf(c, p, g, z, v, n, 1, 1, 0); break;
    case 2: k_sf(c, p, g, z, v, n, 1, 0, 1); break;
    default: k_sf(c, p, g, z, v, n, 1, 1, 1); break;
    }
}

GOPT_CLONES static void run_sgd(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                                float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const sf_scalars *c = scalars;
    float *z = state[0];
    switch (c->wd_on | (c->first ? 2 : 0)) {
    case 0: k_sf(c, p, g, z, NULL, n, 0, 0, 0); break;
    case 1: k_sf(c, p, g, z, NULL, n, 0, 1, 0); break;
    case 2: k_sf(c, p, g, z, NULL, n, 0, 0, 1); break;
    default: k_sf(c, p, g, z, NULL, n, 0, 1, 1); break;
    }
}

/* ---- train / eval ------------------------------------------------------------------------- */

/* eval: ysave = y, y = lerp(y, z, w) = x.  train: y = ysave. */
GOPT_CLONES static void to_x(float *restrict y, const float *restrict z, float *restrict ysave, int64_t n, float w) {
    const float w1 = 1.0f - w;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float yi = y[i];
        ysave[i] = yi;
        y[i] = lerp(yi, z[i], w, w1);
    }
}

/* Over the optimizer's range, group by group (each group has its own b1). */
static void switch_mode(gopt_optim *opt, int to_eval, int y_slot, int momentum_is_beta1) {
    const gopt_param_run *runs = gopt_params_runs(opt->params);
    const int nr = gopt_params_run_count(opt->params);
    float *values = gopt_params_values(opt->params);
    const float *z = opt->state[0];
    float *ysave = opt->state[y_slot];
    const int nthreads = gopt__optim_threads(opt);
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int64_t lo, hi;
        gopt__optim_thread_slice(opt->numel, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        lo += opt->begin;
        hi += opt->begin;
        for (int r = 0; r < nr && lo < hi; r++) {
            int64_t b = runs[r].begin > lo ? runs[r].begin : lo;
            int64_t e = runs[r].end < hi ? runs[r].end : hi;
            if (b >= e) continue;
            int64_t o = b - opt->begin;
            if (to_eval) {
                const gopt_optim_config *c = &opt->groups[runs[r].group].cfg;
                double b1 = momentum_is_beta1 ? c->beta1 : c->momentum;
                to_x(values + b, z + o, ysave + o, e - b, (float)(1.0 - 1.0 / b1));
            } else {
                memcpy(values + b, ysave + o, (size_t)(e - b) * sizeof(float));
            }
        }
    }
}

static void adamw_set_mode(gopt_optim *opt, int to_eval) { switch_mode(opt, to_eval, 2, 1); }
static void sgd_set_mode(gopt_optim *opt, int to_eval) { switch_mode(opt, to_eval, 1, 0); }

/* ---- table entries ------------------------------------------------------------------------- */

const gopt__optim_algo *gopt__optim_adamw_schedulefree(void) {
    static const gopt__optim_algo algo = {
        .name = "adamw_schedulefree",
        .has_eps = 1,
        .has_betas = 1,
        .momentum_field = GOPT__MOMENTUM_BETA1,
        .state_names = {"z", "exp_avg_sq", "y"},
        .defaults = adamw_defaults,
        .validate = adamw_validate,
        .state_slots = adamw_slots,
        .scalars_size = sizeof(sf_scalars),
        .step_scalars = adamw_scalars,
        .run = run_adamw,
        .set_mode = adamw_set_mode,
    };
    return &algo;
}

const gopt__optim_algo *gopt__optim_sgd_schedulefree(void) {
    static const gopt__optim_algo algo = {
        .name = "sgd_schedulefree",
        .has_eps = 0,
        .has_betas = 0,
        .momentum_field = GOPT__MOMENTUM_MOMENTUM,
        .state_names = {"z", "y"},
        .defaults = sgd_defaults,
        .validate = sgd_validate,
        .state_slots = sgd_slots,
        .scalars_size = sizeof(sf_scalars),
        .step_scalars = sgd_scalars,
        .run = run_sgd,
        .set_mode = sgd_set_mode,
    };
    return &algo;
}
