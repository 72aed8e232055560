/* Adagrad (Duchi et al. 2011).
 * https://pytorch.org/docs/1.13/generated/torch.optim.Adagrad.html
 *
 *   g += wd*p;  clr = lr / (1 + (t-1)*lr_decay);  sum += g*g;  p -= clr * g/(sqrt(sum)+eps).
 *
 * State: sum, starting at each group's initial_accumulator_value. */
#include "optim/optim_impl.h"

typedef struct adagrad_scalars {
    float grad_sign; /* -1 when maximize */
    float weight_decay;
    float neg_clr;   /* -lr / (1 + (t-1)*lr_decay) */
    float eps;
    int wd_on;
} adagrad_scalars;

static void defaults(gopt_optim_config *c) {
    c->lr = 1e-2f;
    c->eps = 1e-10f;
}

static gopt_status validate(const gopt_optim_config *c, const char *where) {
    GOPT__REFUSE(!isfinite(c->lr_decay) || c->lr_decay < 0, "adagrad", "lr_decay", "must be finite and >= 0",
                 c->lr_decay, where);
    GOPT__REFUSE(!isfinite(c->initial_accumulator_value) || c->initial_accumulator_value < 0, "adagrad",
                 "initial_accumulator_value", "must be finite and >= 0", c->initial_accumulator_value, where);
    return GOPT_OK;
}

static unsigned state_slots(const gopt_optim_config *c) { return 1u; }

/* The accumulator starts at each group's initial_accumulator_value. */
static void init_state(gopt_optim *opt) {
    const gopt_param_run *runs = gopt_params_runs(opt->params);
    int nr = gopt_params_run_count(opt->params);
    float *sum = opt->state[0];
    const int64_t lo = opt->begin, hi = opt->begin + opt->numel; /* sum[i - lo]: arena element i */
    for (int r = 0; r < nr; r++) {
        const float v = opt->groups[runs[r].group].cfg.initial_accumulator_value;
        const int64_t b = runs[r].begin > lo ? runs[r].begin : lo, e = runs[r].end < hi ? runs[r].end : hi;
        for (int64_t i = b; i < e; i++) sum[i - lo] = v;
    }
}

static void step_scalars(gopt__optim_group *g, int64_t step, void *out) {
    const gopt_optim_config *c = &g->cfg;
    adagrad_scalars *k = out;
    double t = (double)step, lr = c->lr;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->weight_decay = c->weight_decay;
    k->wd_on = c->weight_decay != 0.0f;
    k->eps = c->eps;
    k->neg_clr = (float)-(lr / (1.0 + (t - 1.0) * (double)c->lr_decay));
}

GOPT_INLINE void k_adagrad(const adagrad_scalars *c, float *restrict p, const float *restrict g,
                           float *restrict sum, int64_t n, const int wd_on) {
    const float gs = c->grad_sign, wd = c->weight_decay, nlr = c->neg_clr, eps = c->eps;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float s = sum[i] + d * d;
        sum[i] = s;
        p[i] = p[i] + nlr * (d / (sqrtf(s) + eps));
    }
}

GOPT_CLONES static void run(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                            float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const adagrad_scalars *c = scalars;
    if (c->wd_on) k_adagrad(c, p, g, state[0], n, 1);
    else k_adagrad(c, p, g, state[0], n, 0);
}

const gopt__optim_algo *gopt__optim_adagrad(void) {
    static const gopt__optim_algo algo = {
        .name = "adagrad",
        .has_eps = 1,
        .has_betas = 0,
        .momentum_field = GOPT__MOMENTUM_NONE,
        .state_names = {"sum"},
        .defaults = defaults,
        .validate = validate,
        .state_slots = state_slots,
        .init_state = init_state,
        .scalars_size = sizeof(adagrad_scalars),
        .step_scalars = step_scalars,
        .run = run,
    };
    return &algo;
}
