/* RMSprop (Hinton, Coursera lecture 6e), centered form of Graves 2013.
 * https://pytorch.org/docs/1.13/generated/torch.optim.RMSprop.html
 *
 *   g += wd*p;  sq = alpha*sq + (1-alpha)*g*g;
 *   centered: ga = alpha*ga + (1-alpha)*g, avg = sqrt(sq - ga*ga) + eps;  else avg = sqrt(sq) + eps;
 *   momentum > 0: buf = momentum*buf + g/avg, p -= lr*buf;  else p -= lr * g/avg.
 *
 * State: square_avg; momentum_buffer when momentum > 0; grad_avg when centered. */
#include "optim/optim_impl.h"

typedef struct rmsprop_scalars {
    float grad_sign; /* -1 when maximize */
    float weight_decay;
    float neg_lr;
    float alpha, one_minus_alpha;
    float eps;
    float momentum;
    int wd_on;
} rmsprop_scalars;

static void defaults(gopt_optim_config *c) { c->lr = 1e-2f; }

static gopt_status validate(const gopt_optim_config *c, const char *where) {
    GOPT__REFUSE(!isfinite(c->alpha) || c->alpha < 0, "rmsprop", "alpha", "must be finite and >= 0", c->alpha, where);
    GOPT__REFUSE(!isfinite(c->momentum) || c->momentum < 0, "rmsprop", "momentum", "must be finite and >= 0",
                 c->momentum, where);
    return GOPT_OK;
}

static unsigned state_slots(const gopt_optim_config *c) {
    return 1u | (c->momentum > 0 ? 2u : 0u) | (c->centered ? 4u : 0u);
}

static void step_scalars(gopt__optim_group *g, int64_t t, void *out) {
    const gopt_optim_config *c = &g->cfg;
    rmsprop_scalars *k = out;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->weight_decay = c->weight_decay;
    k->wd_on = c->weight_decay != 0.0f;
    k->eps = c->eps;
    k->neg_lr = (float)-(double)c->lr;
    k->alpha = c->alpha;
    k->one_minus_alpha = (float)(1.0 - (double)c->alpha);
    k->momentum = c->momentum;
}

GOPT_INLINE void k_rmsprop(const rmsprop_scalars *c, float *restrict p, const float *restrict g,
                           float *restrict sq, float *restrict buf, float *restrict ga, int64_t n, const int wd_on,
                           const int centered, const int mom) {
    const float gs = c->grad_sign, wd = c->weight_decay, nlr = c->neg_lr, al = c->alpha, al1 = c->one_minus_alpha,
                eps = c->eps, m = c->momentum;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float s = sq[i] * al + al1 * (d * d);
        sq[i] = s;
        float avg;
        if (centered) {
            float a = ga[i] * al + al1 * d;
            ga[i] = a;
            avg = sqrtf(s - a * a) + eps;
        } else {
            avg = sqrtf(s) + eps;
        }
        if (mom) {
            float b = buf[i] * m + d / avg;
            buf[i] = b;
            p[i] = p[i] + nlr * b;
        } else {
            p[i] = p[i] + nlr * (d / avg);
        }
    }
}

GOPT_CLONES static void run(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                            float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const rmsprop_scalars *c = scalars;
    float *sq = state[0], *buf = state[1], *ga = state[2];
    int sel = c->wd_on | (cfg->centered ? 2 : 0) | (cfg->momentum > 0 ? 4 : 0);
    switch (sel) {
#define RMS_CASE(a, ce, mo) \
    case a | ce << 1 | mo << 2: k_rmsprop(c, p, g, sq, buf, ga, n, a, ce, mo); break;
        RMS_CASE(0, 0, 0) RMS_CASE(1, 0, 0) RMS_CASE(0, 1, 0) RMS_CASE(1, 1, 0)
        RMS_CASE(0, 0, 1) RMS_CASE(1, 0, 1) RMS_CASE(0, 1, 1) RMS_CASE(1, 1, 1)
#undef RMS_CASE
    default: break;
    }
}

const gopt__optim_algo *gopt__optim_rmsprop(void) {
    static const gopt__optim_algo algo = {
        .name = "rmsprop",
        .has_eps = 1,
        .has_betas = 0,
        .momentum_field = GOPT__MOMENTUM_MOMENTUM,
        .state_names = {"square_avg", "momentum_buffer", "grad_avg"},
        .defaults = defaults,
        .validate = validate,
        .state_slots = state_slots,
        .scalars_size = sizeof(rmsprop_scalars),
        .step_scalars = step_scalars,
        .run = run,
    };
    return &algo;
}
