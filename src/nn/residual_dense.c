/* residual_dense: the MLP residual block in full pre-activation form (He et al. 2016,
 * "Identity Mappings in Deep Residual Networks", ECCV, fig. 4e), (N,F) -> (N,F):
 *   a0 = act(BN1(x))                  (BN1 the identity without cfg.batchnorm)
 *   h1 = a0 W1^T + b1
 *   a1 = act(BN2(h1))
 *   y  = x + a1 W2^T + b2
 * act is relu, tanh or sigmoid (cfg.nonlinearity holds GOPT_LAYER_RELU/TANH/SIGMOID). It
 * keeps a0, h1 (with BN only: BN2's input) and a1; every activation's derivative is taken
 * from its output (relu: a > 0, tanh: 1 - a^2, sigmoid: a (1 - a)), so backward recomputes
 * nothing. Backward, from g = dL/dy:
 *   db2 += sum g, dW2 += g^T a1, d1 = (g W2) act'(a1), [d1 = BN2 backward(d1)],
 *   db1 += sum d1, dW1 += d1^T a0, d0 = (d1 W1) act'(a0), [d0 = BN1 backward(d0)],
 *   dx = g + d0.
 * d1 lives in the shared workspace, d0 in a1's buffer (no longer needed by then). */
#include <stdio.h>

#include "nn/act.h"
GOPT_ACT_NO_TRAPPING

#include "core/blas.h"
#include "core/common.h"
#include "nn/layer.h"

#define RD_OMP_MIN 65536 /* elements: below this one thread */

typedef struct rd_state {
    int F, act, use_bn;
    int w1, b1, w2, b2; /* arena indices */
    gopt__bn bn1, bn2;
    float *a0, *h1, *a1; /* max_batch x F each; h1 only with BN */
} rd_state;

static gopt_status add_linear(gopt_layer *l, const char *prefix, const char *part, int F, int *w, int *b) {
    char name[GOPT_PARAM_NAME_MAX];
    int len = snprintf(name, sizeof name, "%s.%s", prefix, part);
    if (len < 0 || len >= (int)sizeof name) return GOPT_FAIL(GOPT_EINVAL, "prefix '%s' too long", prefix);
    int64_t ws[2] = {F, F}, bs[1] = {F};
    GOPT_TRY(gopt__add_param(l, name, "weight", 2, ws, GOPT_TAG_WEIGHT, w));
    return gopt__add_param(l, name, "bias", 1, bs, GOPT_TAG_BIAS, b);
}

static gopt_status add_bn(gopt_layer *l, const char *prefix, const char *part, gopt__bn *bn) {
    char name[GOPT_PARAM_NAME_MAX];
    int len = snprintf(name, sizeof name, "%s.%s", prefix, part);
    if (len < 0 || len >= (int)sizeof name) return GOPT_FAIL(GOPT_EINVAL, "prefix '%s' too long", prefix);
    return gopt__add_bn_params(l, bn, name);
}

static gopt_status rd_setup(gopt_layer *l, const char *prefix) {
    const gopt_layer_config *cfg = &l->cfg;
    const int F = cfg->in_features;
    if (F < 1 || cfg->out_features != F)
        return GOPT_FAIL(GOPT_EINVAL, "residual_dense: in=%d out=%d must be equal and >= 1", F, cfg->out_features);
    if (cfg->nonlinearity != GOPT_LAYER_RELU && cfg->nonlinearity != GOPT_LAYER_TANH &&
        cfg->nonlinearity != GOPT_LAYER_SIGMOID)
        return GOPT_FAIL(GOPT_EINVAL, "residual_dense: activation %d (%s) must be relu, tanh or sigmoid",
                         cfg->nonlinearity, gopt_layer_type_name((gopt_layer_type)cfg->nonlinearity));
    if (cfg->batchnorm != 0 && cfg->batchnorm != 1)
        return GOPT_FAIL(GOPT_EINVAL, "residual_dense: batchnorm = %d must be 0 or 1", cfg->batchnorm);
    if (l->in_ndim != 1 || l->in_shape[0] != F) {
        char s[96];
        gopt__shape_fmt(s, sizeof s, "N", l->in_ndim, l->in_shape);
        return GOPT_FAIL(GOPT_ESHAPE, "residual_dense: input %s does not match (N,%d)", s, F);
    }
    GOPT_TRY(gopt__layer_state(l, sizeof(rd_state)));
    rd_state *st = l->st;
    st->F = F;
    st->act = cfg->nonlinearity;
    st->use_bn = cfg->batchnorm;
    if (st->use_bn) {
        GOPT_TRY(gopt__bn_setup(&st->bn1, F, 1, cfg->eps, cfg->momentum));
        GOPT_TRY(gopt__bn_setup(&st->bn2, F, 1, cfg->eps, cfg->momentum));
        GOPT_TRY(add_bn(l, prefix, "bn1", &st->bn1));
    }
    GOPT_TRY(add_linear(l, prefix, "fc1", F, &st->w1, &st->b1));
    if (st->use_bn) GOPT_TRY(add_bn(l, prefix, "bn2", &st->bn2));
    GOPT_TRY(add_linear(l, prefix, "fc2", F, &st->w2, &st->b2));
    l->out_ndim = 1;
    l->out_shape[0] = F;
    l->ws_floats = (size_t)l->max_batch * F; /* d1 in backward */
    return GOPT_OK;
}

static gopt_status rd_alloc(gopt_layer *l, int lean) {
    (void)lean;
    rd_state *st = l->st;
    size_t n = (size_t)l->max_batch * st->F;
    /* a failed build keeps what it allocated; the next one completes it */
    if (!st->a0) st->a0 = gopt__aligned_alloc(n * sizeof(float));
    if (!st->a1) st->a1 = gopt__aligned_alloc(n * sizeof(float));
    if (st->use_bn && !st->h1) st->h1 = gopt__aligned_alloc(n * sizeof(float));
    if (!st->a0 || !st->a1 || (st->use_bn && !st->h1))
        return GOPT_FAIL(GOPT_ENOMEM, "residual_dense activations of %zu floats", n);
    return GOPT_OK;
}

static void rd_free(gopt_layer *l) {
    rd_state *st = l->st;
    if (!st) return;
    gopt__aligned_free(st->a0);
    gopt__aligned_free(st->a1);
    gopt__aligned_free(st->h1);
    if (st->use_bn) {
        gopt__bn_free(&st->bn1);
        gopt__bn_free(&st->bn2);
    }
}

/* as linear: the weight by the scheme, the bias U(+-1/sqrt(F)) or 0 (gopt__init_torch_bias) */
static gopt_status init_linear(gopt_layer *l, int w, int b, const gopt__init_spec *spec, gopt_rng *rng) {
    gopt_param_info info;
    GOPT_TRY(gopt_params_info(l->params, w, &info));
    GOPT_TRY(gopt_tensor_init(&info.value, spec->weights, rng));
    GOPT_TRY(gopt_params_info(l->params, b, &info));
    if (!gopt__init_torch_bias(spec)) return gopt_tensor_fill(&info.value, 0.0f);
    float bound = 1.0f / sqrtf((float)l->cfg.in_features);
    return gopt_tensor_fill_uniform(&info.value, -bound, bound, rng);
}

static gopt_status rd_init(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng) {
    rd_state *st = l->st;
    if (st->use_bn) {
        gopt__init_bn(l, &st->bn1);
        gopt__init_bn(l, &st->bn2);
    }
    GOPT_TRY(init_linear(l, st->w1, st->b1, spec, rng));
    return init_linear(l, st->w2, st->b2, spec, rng);
}

/* ---- elementwise kernels (each element alone: results do not depend on the threads) ---- */

/* y = act(x) (y may alias x) */
static void act_fwd(int act, float *y, const float *x, int64_t total) {
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > RD_OMP_MIN)
    for (int64_t i = 0; i < total; i++) {
        float v = x[i];
        y[i] = act == GOPT_LAYER_RELU   ? (v > 0.0f ? v : 0.0f)
               : act == GOPT_LAYER_TANH ? gopt__tanhf(v)
                                        : gopt__sigmoidf(v);
    }
}

/* g *= act'(from the activation's output a) */
static void act_bwd(int act, float *g, const float *a, int64_t total) {
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > RD_OMP_MIN)
    for (int64_t i = 0; i < total; i++) {
        float v = a[i];
        float d = act == GOPT_LAYER_RELU ? (v > 0.0f ? 1.0f : 0.0f)
                  : act == GOPT_LAYER_TANH ? 1.0f - v * v
                                           : v * (1.0f - v);
        g[i] *= d;
    }
}

/* db[o] += sum_i g[i,o] (in double, as linear) */
static void bias_grad(float *db, const float *g, int n, int F) {
    for (int o = 0; o < F; o++) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) acc += g[(int64_t)i * F + o];
        db[o] += (float)acc;
    }
}

/* the forward; stats = 0 uses the statistics of the last forward and updates nothing */
static void rd_run(gopt_layer *l, const float *x, int n, int stats) {
    rd_state *st = l->st;
    const int F = st->F;
    const int64_t total = (int64_t)n * F;
    const int tr = l->training;
    if (st->use_bn) {
        const float *g = gopt__pv(l, st->bn1.g_index), *b = gopt__pv(l, st->bn1.b_index);
        if (stats)
            gopt__bn_rows_forward(&st->bn1, g, b, x, st->a0, 0, n, tr);
        else
            gopt__bn_apply(&st->bn1, g, b, x, st->a0, 0, n, tr);
        act_fwd(st->act, st->a0, st->a0, total);
    } else {
        act_fwd(st->act, st->a0, x, total);
    }
    float *h = st->use_bn ? st->h1 : st->a1;
    const float *b1 = gopt__pv(l, st->b1);
    for (int i = 0; i < n; i++) memcpy(h + (int64_t)i * F, b1, (size_t)F * sizeof(float));
    gopt__sgemm(0, 1, n, F, F, 1.0f, st->a0, F, gopt__pv(l, st->w1), F, 1.0f, h, F);
    if (st->use_bn) {
        const float *g = gopt__pv(l, st->bn2.g_index), *b = gopt__pv(l, st->bn2.b_index);
        if (stats)
            gopt__bn_rows_forward(&st->bn2, g, b, st->h1, st->a1, 0, n, tr);
        else
            gopt__bn_apply(&st->bn2, g, b, st->h1, st->a1, 0, n, tr);
    }
    act_fwd(st->act, st->a1, st->a1, total);
    const float *b2 = gopt__pv(l, st->b2);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < F; o++) l->out[(int64_t)i * F + o] = x[(int64_t)i * F + o] + b2[o];
    gopt__sgemm(0, 1, n, F, F, 1.0f, st->a1, F, gopt__pv(l, st->w2), F, 1.0f, l->out, F);
}

static void rd_forward(gopt_layer *l, const float *x, int n) { rd_run(l, x, n, 1); }
static void rd_recompute(gopt_layer *l, const float *x, int n) { rd_run(l, x, n, 0); }

static void rd_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    rd_state *st = l->st;
    const int F = st->F;
    const int64_t total = (int64_t)n * F;
    const int tr = l->training;
    float *d1 = l->ws, *d0 = st->a1;
    float *db2 = gopt__pg_train(l, st->b2), *dw2 = gopt__pg_train(l, st->w2); /* NULL: frozen */
    float *db1 = gopt__pg_train(l, st->b1), *dw1 = gopt__pg_train(l, st->w1);
    if (db2) bias_grad(db2, dy, n, F);
    if (dw2) gopt__sgemm(1, 0, F, F, n, 1.0f, dy, F, st->a1, F, 1.0f, dw2, F);
    gopt__sgemm(0, 0, n, F, F, 1.0f, dy, F, gopt__pv(l, st->w2), F, 0.0f, d1, F);
    act_bwd(st->act, d1, st->a1, total);
    if (st->use_bn)
        gopt__bn_rows_backward(&st->bn2, gopt__pv(l, st->bn2.g_index), NULL, gopt__pg_train(l, st->bn2.g_index),
                          gopt__pg_train(l, st->bn2.b_index), st->h1, d1, d1, n, tr);
    if (db1) bias_grad(db1, d1, n, F);
    if (dw1) gopt__sgemm(1, 0, F, F, n, 1.0f, d1, F, st->a0, F, 1.0f, dw1, F);
    /* the gradient reaching x through the branch is needed only for dx, but BN1's
     * parameter gradients need it too */
    if (!dx && !(st->use_bn && (gopt__pg_train(l, st->bn1.g_index) || gopt__pg_train(l, st->bn1.b_index)))) return;
    gopt__sgemm(0, 0, n, F, F, 1.0f, d1, F, gopt__pv(l, st->w1), F, 0.0f, d0, F);
    act_bwd(st->act, d0, st->a0, total);
    if (st->use_bn)
        gopt__bn_rows_backward(&st->bn1, gopt__pv(l, st->bn1.g_index), NULL, gopt__pg_train(l, st->bn1.g_index),
                          gopt__pg_train(l, st->bn1.b_index), x, d0, d0, n, tr);
    if (!dx) return;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > RD_OMP_MIN)
    for (int64_t i = 0; i < total; i++) dx[i] = dy[i] + d0[i];
}

static double rd_flops(const gopt_layer *l) { return 4.0 * (double)l->cfg.in_features * l->cfg.in_features; }

static int rd_bns(gopt_layer *l, gopt__bn **out3) {
    rd_state *st = l->st;
    if (!st->use_bn) return 0;
    out3[0] = &st->bn1;
    out3[1] = &st->bn2;
    return 2;
}

static const gopt__layer_vt rd_vt = {
    .type = GOPT_LAYER_RESIDUAL_DENSE,
    .setup = rd_setup,
    .alloc = rd_alloc,
    .free = rd_free,
    .init_params = rd_init,
    .forward = rd_forward,
    .backward = rd_backward,
    .recompute = rd_recompute,
    .flops = rd_flops,
    .bns = rd_bns,
};

const gopt__layer_vt *gopt__residual_dense_vtable(void) { return &rd_vt; }
