/* SGD with momentum, dampening and Nesterov momentum.
 * https://pytorch.org/docs/1.13/generated/torch.optim.SGD.html
 *
 *   g += wd*p;  first step: buf = g;  later: buf = momentum*buf + (1-dampening)*g;
 *   nesterov: g = g + momentum*buf, else g = buf (when momentum > 0);  p -= lr*g.
 *
 * State: momentum_buffer (only when momentum > 0). The group's momentum_ready flag says
 * whether the buffer holds a value (PyTorch: whether state['momentum_buffer'] exists). */
#include "optim/optim_impl.h"

typedef struct sgd_scalars {
    float grad_sign;         /* -1 when maximize */
    float weight_decay;
    float neg_lr;
    float momentum;
    float one_minus_dampening;
    int wd_on, momentum_on, first;
} sgd_scalars;

static void defaults(gopt_optim_config *c) { c->lr = 1e-2f; } /* PyTorch has no default lr */

static gopt_status validate(const gopt_optim_config *c, const char *where) {
    GOPT__REFUSE(!isfinite(c->momentum) || c->momentum < 0, "sgd", "momentum", "must be finite and >= 0", c->momentum,
                 where);
    GOPT__REFUSE(!isfinite(c->dampening) || c->dampening < 0, "sgd", "dampening", "must be finite and >= 0",
                 c->dampening, where);
    if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
        return GOPT_FAIL(GOPT_EINVAL,
                         "sgd: nesterov requires momentum > 0 and dampening == 0 (momentum %g, dampening %g)%s",
                         (double)c->momentum, (double)c->dampening, where);
    return GOPT_OK;
}

static unsigned state_slots(const gopt_optim_config *c) { return c->momentum > 0 ? 1u : 0u; }

static void step_scalars(gopt__optim_group *g, int64_t t, void *out) {
    const gopt_optim_config *c = &g->cfg;
    sgd_scalars *k = out;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->weight_decay = c->weight_decay;
    k->wd_on = c->weight_decay != 0.0f;
    k->neg_lr = (float)-(double)c->lr;
    k->momentum = c->momentum;
    k->one_minus_dampening = (float)(1.0 - (double)c->dampening);
    k->momentum_on = c->momentum != 0.0f;
    k->first = !g->momentum_ready;
    if (k->momentum_on) g->momentum_ready = 1; /* after this step the buffer holds a value */
}

/* The flags are compile-time constants at every call site (see run). */
GOPT_INLINE void k_sgd(const sgd_scalars *c, float *restrict p, const float *restrict g, float *restrict buf,
                       int64_t n, const int wd_on, const int mom, const int first, const int nesterov) {
    const float gs = c->grad_sign, wd = c->weight_decay, nlr = c->neg_lr, m = c->momentum,
                damp1 = c->one_minus_dampening;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        if (mom) {
            float b = first ? d : m * buf[i] + damp1 * d;
            buf[i] = b;
            d = nesterov ? d + m * b : b;
        }
        p[i] = p[i] + nlr * d;
    }
}

GOPT_CLONES static void run(const void *scalars, const gopt_optim_config *cfg, float *p, const float *g,
                            float *const state[GOPT__OPTIM_NSTATE], int64_t n) {
    const sgd_scalars *c = scalars;
    float *buf = state[0];
    int sel = c->wd_on | (c->momentum_on ? 2 : 0) | (c->first ? 4 : 0) | (cfg->nesterov ? 8 : 0);
    switch (sel) {
#define SGD_CASE(a, mo, f, ne) \
    case a | mo << 1 | f << 2 | ne << 3: k_sgd(c, p, g, buf, n, a, mo, f, ne); break;
        SGD_CASE(0, 0, 0, 0) SGD_CASE(1, 0, 0, 0) SGD_CASE(0, 0, 1, 0) SGD_CASE(1, 0, 1, 0)
        SGD_CASE(0, 1, 0, 0) SGD_CASE(1, 1, 0, 0) SGD_CASE(0, 1, 1, 0) SGD_CASE(1, 1, 1, 0)
        SGD_CASE(0, 1, 0, 1) SGD_CASE(1, 1, 0, 1) SGD_CASE(0, 1, 1, 1) SGD_CASE(1, 1, 1, 1)
#undef SGD_CASE
    default: break; /* nesterov without momentum is refused at create */
    }
}

const gopt__optim_algo *gopt__optim_sgd(void) {
    static const gopt__optim_algo algo = {
        .name = "sgd",
        .has_eps = 0,
        .has_betas = 0,
        .momentum_field = GOPT__MOMENTUM_MOMENTUM,
        .state_names = {"momentum_buffer"},
        .defaults = defaults,
        .validate = validate,
        .state_slots = state_slots,
        .scalars_size = sizeof(sgd_scalars),
        .step_scalars = step_scalars,
        .run = run,
    };
    return &algo;
}
