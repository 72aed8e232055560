#define _POSIX_C_SOURCE 200809L
/* Layers (see gradopt/layer.h): creation, the per-type vtables, and the public API. */
#include <stdio.h>

#include <time.h>

#include "core/blas.h"
#include "core/common.h"
#include "nn/layer.h"
#include "nn/recurrent.h"

#define OMP_MIN 16384

static const char *const type_names[GOPT_LAYER_TYPE_COUNT] = {
    "linear", "conv2d", "batchnorm2d", "relu", "gelu", "maxpool2d", "global_avgpool", "dropout", "flatten",
    "basic_block", "sigmoid", "tanh", "embedding", "rnn", "lstm", "gru"};

const char *gopt_layer_type_name(gopt_layer_type t) {
    return (t >= 0 && t < GOPT_LAYER_TYPE_COUNT) ? type_names[t] : "unknown";
}

double gopt__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- config helpers ------------------------------------------------------------------------ */

gopt_layer_config gopt_layer_config_default(gopt_layer_type type) {
    gopt_layer_config c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.stride = 1;
    c.eps = 1e-5f;
    c.momentum = 0.1f;
    c.p = 0.5f;
    if (gopt__is_recurrent(type)) { /* PyTorch's defaults: one layer, biases, no dropout */
        c.num_layers = 1;
        c.bias = 1;
        c.p = 0.0f;
    }
    return c;
}
gopt_layer_config gopt_layer_linear(int in, int out, int bias) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_LINEAR);
    c.in_features = in;
    c.out_features = out;
    c.bias = bias;
    return c;
}
gopt_layer_config gopt_layer_conv2d(int in, int out, int kernel, int stride, int padding, int bias) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_CONV2D);
    c.in_features = in;
    c.out_features = out;
    c.kernel = kernel;
    c.stride = stride;
    c.padding = padding;
    c.bias = bias;
    return c;
}
gopt_layer_config gopt_layer_batchnorm2d(int channels, int fused_relu) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_BATCHNORM2D);
    c.channels = channels;
    c.relu = fused_relu;
    return c;
}
gopt_layer_config gopt_layer_maxpool2d(int kernel, int stride, int padding) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_MAXPOOL2D);
    c.kernel = kernel;
    c.stride = stride;
    c.padding = padding;
    return c;
}
gopt_layer_config gopt_layer_dropout(float p, uint64_t seed) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_DROPOUT);
    c.p = p;
    c.seed = seed;
    return c;
}
gopt_layer_config gopt_layer_basic_block(int in, int out, int stride) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_BASIC_BLOCK);
    c.in_features = in;
    c.out_features = out;
    c.stride = stride;
    return c;
}

/* ---- helpers ------------------------------------------------------------------------------ */

float *gopt__pv(const gopt_layer *l, int index) {
    gopt_param_info info;
    if (index < 0 || gopt_params_info(l->params, index, &info) != GOPT_OK) return NULL;
    return info.value.data;
}
float *gopt__pg(const gopt_layer *l, int index) {
    gopt_param_info info;
    if (index < 0 || gopt_params_info(l->params, index, &info) != GOPT_OK) return NULL;
    return info.grad.data;
}

static gopt_status add_param(gopt_layer *l, const char *prefix, const char *suffix, int ndim, const int64_t *shape,
                             gopt_param_tag tag, int *index) {
    char name[GOPT_PARAM_NAME_MAX];
    int len = snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    if (len < 0 || len >= (int)sizeof name)
        return GOPT_FAIL(GOPT_EINVAL, "parameter name '%s.%s' longer than %d bytes", prefix, suffix,
                         GOPT_PARAM_NAME_MAX - 1);
    return gopt_params_add(l->params, name, ndim, shape, tag, index);
}

static gopt_status add_conv_params(gopt_layer *l, gopt__conv *c, const char *prefix) {
    int64_t ws[4] = {c->K, c->C, c->R, c->R};
    GOPT_TRY(add_param(l, prefix, "weight", 4, ws, GOPT_TAG_WEIGHT, &c->w_index));
    c->b_index = -1;
    if (c->has_bias) {
        int64_t bs[1] = {c->K};
        GOPT_TRY(add_param(l, prefix, "bias", 1, bs, GOPT_TAG_BIAS, &c->b_index));
    }
    return GOPT_OK;
}

static gopt_status add_bn_params(gopt_layer *l, gopt__bn *bn, const char *prefix) {
    int64_t s[1] = {bn->C};
    GOPT_TRY(add_param(l, prefix, "weight", 1, s, GOPT_TAG_NORM, &bn->g_index));
    return add_param(l, prefix, "bias", 1, s, GOPT_TAG_NORM, &bn->b_index);
}

/* exported to the block */
gopt_status gopt__layer_add_conv(gopt_layer *l, gopt__conv *c, const char *prefix);
gopt_status gopt__layer_add_bn(gopt_layer *l, gopt__bn *bn, const char *prefix);
gopt_status gopt__layer_add_conv(gopt_layer *l, gopt__conv *c, const char *prefix) {
    return add_conv_params(l, c, prefix);
}
gopt_status gopt__layer_add_bn(gopt_layer *l, gopt__bn *bn, const char *prefix) { return add_bn_params(l, bn, prefix); }

/* ---- linear ------------------------------------------------------------------------------- */

static void linear_forward(gopt_layer *l, const float *x, int n) {
    const int in = l->cfg.in_features, out = l->cfg.out_features;
    const float *w = gopt__pv(l, l->w_index);
    gopt__sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, l->out, out);
    if (l->b_index >= 0) {
        const float *b = gopt__pv(l, l->b_index);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) l->out[(int64_t)i * out + o] += b[o];
    }
}

static void linear_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    const int in = l->cfg.in_features, out = l->cfg.out_features;
    gopt__sgemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, gopt__pg(l, l->w_index), in);
    if (l->b_index >= 0) {
        float *db = gopt__pg(l, l->b_index);
        for (int o = 0; o < out; o++) {
            double acc = 0.0;
            for (int i = 0; i < n; i++) acc += dy[(int64_t)i * out + o];
            db[o] += (float)acc;
        }
    }
    if (dx) gopt__sgemm(0, 0, n, in, out, 1.0f, dy, out, gopt__pv(l, l->w_index), in, 0.0f, dx, in);
}

/* ---- conv2d ------------------------------------------------------------------------------- */

static void conv_forward(gopt_layer *l, const float *x, int n) {
    gopt__conv_forward(&l->conv, gopt__pv(l, l->conv.w_index), l->conv.has_bias ? gopt__pv(l, l->conv.b_index) : NULL,
                       x, l->out, n, l->ws);
}

static void conv_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    gopt__conv_backward(&l->conv, gopt__pv(l, l->conv.w_index), gopt__pg(l, l->conv.w_index),
                        l->conv.has_bias ? gopt__pg(l, l->conv.b_index) : NULL, x, dy, dx, 0, n, l->ws);
}

/* ---- batchnorm2d -------------------------------------------------------------------------- */

static void bn_forward(gopt_layer *l, const float *x, int n) {
    gopt__bn_forward(&l->bn, gopt__pv(l, l->bn.g_index), gopt__pv(l, l->bn.b_index), x, l->out, NULL, l->cfg.relu, n,
                     l->training);
}

static void bn_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    /* the relu's mask is recomputed from x: dy may live in l->out (the net's in-place gradients) */
    gopt__bn_relu relu = {gopt__pv(l, l->bn.b_index), NULL, NULL, NULL, NULL};
    gopt__bn_backward(&l->bn, gopt__pv(l, l->bn.g_index), l->cfg.relu ? &relu : NULL, gopt__pg(l, l->bn.g_index),
                      gopt__pg(l, l->bn.b_index), x, dy, dx ? dx : dy, n, l->training);
}

/* ---- relu, gelu --------------------------------------------------------------------------- */

static void relu_forward(gopt_layer *l, const float *x, int n) {
    int64_t total = (int64_t)n * l->in_numel;
    float *y = l->out;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > OMP_MIN)
    for (int64_t i = 0; i < total; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (!dx) return;
    int64_t total = (int64_t)n * l->in_numel;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > OMP_MIN)
    for (int64_t i = 0; i < total; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

#define GOPT_SQRT1_2 0.70710678118654752440
#define GOPT_INV_SQRT_2PI 0.39894228040143267794
#define GOPT_SQRT_2_PI 0.79788456080286535588

static void gelu_forward(gopt_layer *l, const float *x, int n) {
    int64_t total = (int64_t)n * l->in_numel;
    float *y = l->out;
    int tanh_form = l->cfg.gelu_tanh;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > OMP_MIN)
    for (int64_t i = 0; i < total; i++) {
        double v = x[i];
        if (tanh_form)
            y[i] = (float)(0.5 * v * (1.0 + tanh(GOPT_SQRT_2_PI * (v + 0.044715 * v * v * v))));
        else
            y[i] = (float)(0.5 * v * (1.0 + erf(v * GOPT_SQRT1_2)));
    }
}

static void gelu_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (!dx) return;
    int64_t total = (int64_t)n * l->in_numel;
    int tanh_form = l->cfg.gelu_tanh;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > OMP_MIN)
    for (int64_t i = 0; i < total; i++) {
        double v = x[i], d;
        if (tanh_form) {
            double u = GOPT_SQRT_2_PI * (v + 0.044715 * v * v * v), t = tanh(u);
            d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GOPT_SQRT_2_PI * (1.0 + 3.0 * 0.044715 * v * v);
        } else {
            d = 0.5 * (1.0 + erf(v * GOPT_SQRT1_2)) + v * GOPT_INV_SQRT_2PI * exp(-0.5 * v * v);
        }
        dx[i] = (float)(dy[i] * d);
    }
}

/* ---- maxpool2d, global avgpool ------------------------------------------------------------ */

static void maxpool_forward(gopt_layer *l, const float *x, int n) {
    const int C = (int)l->in_shape[0], H = (int)l->in_shape[1], W = (int)l->in_shape[2];
    const int OH = (int)l->out_shape[1], OW = (int)l->out_shape[2];
    const int k = l->cfg.kernel, s = l->cfg.stride, pad = l->cfg.padding;
    const int64_t planes = (int64_t)n * C;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (planes * H * W > OMP_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * H * W;
        float *yp = l->out + pl * OH * OW;
        int32_t *ap = l->argmax + pl * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float best = -INFINITY;
                int32_t bi = -1;
                for (int ky = 0; ky < k; ky++) {
                    int iy = oy * s - pad + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < k; kx++) {
                        int ix = ox * s - pad + kx;
                        if (ix < 0 || ix >= W) continue;
                        float v = xp[iy * W + ix];
                        if (bi < 0 || v > best || (isnan(v) && !isnan(best))) {
                            best = v;
                            bi = iy * W + ix;
                        }
                    }
                }
                yp[oy * OW + ox] = best;
                ap[oy * OW + ox] = bi;
            }
    }
}

static void maxpool_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (!dx) return;
    const int C = (int)l->in_shape[0], H = (int)l->in_shape[1], W = (int)l->in_shape[2];
    const int64_t P = l->out_shape[1] * l->out_shape[2];
    const int64_t planes = (int64_t)n * C;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (planes * H * W > OMP_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dp = dx + pl * H * W;
        memset(dp, 0, sizeof(float) * (size_t)H * W);
        for (int64_t p = 0; p < P; p++) {
            int32_t a = l->argmax[pl * P + p];
            if (a >= 0) dp[a] += dy[pl * P + p];
        }
    }
}

static void avgpool_forward(gopt_layer *l, const float *x, int n) {
    const int64_t planes = (int64_t)n * l->in_shape[0], HW = l->in_shape[1] * l->in_shape[2];
    for (int64_t pl = 0; pl < planes; pl++) {
        float acc = 0.0f;
        for (int64_t p = 0; p < HW; p++) acc += x[pl * HW + p];
        l->out[pl] = acc / (float)HW;
    }
}

static void avgpool_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (!dx) return;
    const int64_t planes = (int64_t)n * l->in_shape[0], HW = l->in_shape[1] * l->in_shape[2];
    for (int64_t pl = 0; pl < planes; pl++) {
        float g = dy[pl] / (float)HW;
        for (int64_t p = 0; p < HW; p++) dx[pl * HW + p] = g;
    }
}

/* ---- dropout, flatten --------------------------------------------------------------------- */

static void dropout_forward(gopt_layer *l, const float *x, int n) {
    int64_t total = (int64_t)n * l->in_numel;
    float p = l->cfg.p;
    if (!l->training || p == 0.0f) {
        memcpy(l->out, x, sizeof(float) * (size_t)total);
        memset(l->mask, 1, (size_t)total);
        return;
    }
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (int64_t i = 0; i < total; i++) { /* serial: one deterministic stream */
        uint8_t keep = gopt_rng_uniform(&l->rng) >= p;
        l->mask[i] = keep;
        l->out[i] = keep ? x[i] * scale : 0.0f;
    }
}

static void dropout_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (!dx) return;
    int64_t total = (int64_t)n * l->in_numel;
    float p = l->cfg.p;
    float scale = (!l->training || p == 0.0f) ? 1.0f : (p < 1.0f ? 1.0f / (1.0f - p) : 0.0f);
    for (int64_t i = 0; i < total; i++) dx[i] = l->mask[i] ? dy[i] * scale : 0.0f;
}

static void flatten_forward(gopt_layer *l, const float *x, int n) { l->out = (float *)x; }

static void flatten_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (dx && dx != dy) memcpy(dx, dy, sizeof(float) * (size_t)((int64_t)n * l->in_numel));
}

static const gopt__layer_vt vts[GOPT_LAYER_TYPE_COUNT] = {
    {GOPT_LAYER_LINEAR, linear_forward, linear_backward},
    {GOPT_LAYER_CONV2D, conv_forward, conv_backward},
    {GOPT_LAYER_BATCHNORM2D, bn_forward, bn_backward},
    {GOPT_LAYER_RELU, relu_forward, relu_backward},
    {GOPT_LAYER_GELU, gelu_forward, gelu_backward},
    {GOPT_LAYER_MAXPOOL2D, maxpool_forward, maxpool_backward},
    {GOPT_LAYER_GLOBAL_AVGPOOL, avgpool_forward, avgpool_backward},
    {GOPT_LAYER_DROPOUT, dropout_forward, dropout_backward},
    {GOPT_LAYER_FLATTEN, flatten_forward, flatten_backward},
    {GOPT_LAYER_BASIC_BLOCK, NULL, NULL}, /* gopt__block_vtable() */
    {GOPT_LAYER_SIGMOID, gopt__sigmoid_forward, gopt__sigmoid_backward},
    {GOPT_LAYER_TANH, gopt__tanh_forward, gopt__tanh_backward},
    {GOPT_LAYER_EMBEDDING, NULL, NULL},
    {GOPT_LAYER_RNN, gopt__rnn_forward, gopt__rnn_backward},
    {GOPT_LAYER_LSTM, gopt__rnn_forward, gopt__rnn_backward},
    {GOPT_LAYER_GRU, gopt__rnn_forward, gopt__rnn_backward},
};

/* ---- creation ----------------------------------------------------------------------------- */

static void shape_fmt(char *buf, size_t size, const char *lead, int ndim, const int64_t *shape) {
    int o = snprintf(buf, size, "(%s", lead);
    for (int i = 0; i < ndim && o > 0 && (size_t)o < size; i++)
        o += snprintf(buf + o, size - (size_t)o, "%s%lld", (i == 0 && !*lead) ? "" : ",", (long long)shape[i]);
    if (o > 0 && (size_t)o < size) snprintf(buf + o, size - (size_t)o, ")");
}

static gopt_status need_chw(const gopt_layer_config *cfg, int in_ndim, const int64_t *in_shape) {
    if (in_ndim != 3) {
        char s[96];
        shape_fmt(s, sizeof s, "N", in_ndim, in_shape);
        return GOPT_FAIL(GOPT_ESHAPE, "%s needs a (N,C,H,W) input, got %s", gopt_layer_type_name(cfg->type), s);
    }
    return GOPT_OK;
}

static gopt_status setup(gopt_layer *l, const char *prefix) {
    const gopt_layer_config *cfg = &l->cfg;
    const int64_t *in = l->in_shape;
    switch (cfg->type) {
    case GOPT_LAYER_LINEAR: {
        if (cfg->in_features < 1 || cfg->out_features < 1)
            return GOPT_FAIL(GOPT_EINVAL, "linear: in=%d out=%d must be >= 1", cfg->in_features, cfg->out_features);
        if (l->in_ndim != 1 || in[0] != cfg->in_features) {
            char s[96];
            shape_fmt(s, sizeof s, "N", l->in_ndim, in);
            return GOPT_FAIL(GOPT_ESHAPE, "linear: input %s does not match (N,%d)", s, cfg->in_features);
        }
        l->out_ndim = 1;
        l->out_shape[0] = cfg->out_features;
        int64_t ws[2] = {cfg->out_features, cfg->in_features};
        GOPT_TRY(add_param(l, prefix, "weight", 2, ws, GOPT_TAG_WEIGHT, &l->w_index));
        l->b_index = -1;
        if (cfg->bias) {
            int64_t bs[1] = {cfg->out_features};
            GOPT_TRY(add_param(l, prefix, "bias", 1, bs, GOPT_TAG_BIAS, &l->b_index));
        }
        return GOPT_OK;
    }
    case GOPT_LAYER_CONV2D: {
        GOPT_TRY(need_chw(cfg, l->in_ndim, in));
        if (in[0] != cfg->in_features) {
            char s[96];
            shape_fmt(s, sizeof s, "N", 3, in);
            return GOPT_FAIL(GOPT_ESHAPE, "conv2d: input %s does not match (N,%d,H,W)", s, cfg->in_features);
        }
        GOPT_TRY(gopt__conv_setup(&l->conv, cfg->in_features, cfg->out_features, (int)in[1], (int)in[2], cfg->kernel,
                                  cfg->stride, cfg->padding, cfg->bias, l->max_batch));
        l->out_ndim = 3;
        l->out_shape[0] = cfg->out_features;
        l->out_shape[1] = l->conv.OH;
        l->out_shape[2] = l->conv.OW;
        l->ws_floats = gopt__conv_ws_floats(&l->conv);
        return add_conv_params(l, &l->conv, prefix);
    }
    case GOPT_LAYER_BATCHNORM2D: {
        GOPT_TRY(need_chw(cfg, l->in_ndim, in));
        if (in[0] != cfg->channels) {
            char s[96];
            shape_fmt(s, sizeof s, "N", 3, in);
            return GOPT_FAIL(GOPT_ESHAPE, "batchnorm2d: input %s does not match (N,%d,H,W)", s, cfg->channels);
        }
        GOPT_TRY(gopt__bn_setup(&l->bn, cfg->channels, (int)(in[1] * in[2]), cfg->eps, cfg->momentum));
        l->nbn = 1;
        l->out_ndim = 3;
        memcpy(l->out_shape, in, sizeof l->out_shape);
        return add_bn_params(l, &l->bn, prefix);
    }
    case GOPT_LAYER_RNN:
    case GOPT_LAYER_LSTM:
    case GOPT_LAYER_GRU: return gopt__rnn_setup(l, prefix);
    case GOPT_LAYER_RELU:
    case GOPT_LAYER_GELU:
    case GOPT_LAYER_SIGMOID:
    case GOPT_LAYER_TANH:
    case GOPT_LAYER_DROPOUT:
        if (cfg->type == GOPT_LAYER_DROPOUT) {
            if (!(cfg->p >= 0.0f && cfg->p <= 1.0f)) return GOPT_FAIL(GOPT_EINVAL, "dropout: p = %g must be in [0, 1]", cfg->p);
            gopt_rng_seed(&l->rng, cfg->seed);
        }
        l->out_ndim = l->in_ndim;
        memcpy(l->out_shape, in, sizeof l->out_shape);
        return GOPT_OK;
    case GOPT_LAYER_MAXPOOL2D: {
        GOPT_TRY(need_chw(cfg, l->in_ndim, in));
        int k = cfg->kernel, s = cfg->stride ? cfg->stride : cfg->kernel, p = cfg->padding;
        if (k < 1 || s < 1 || p < 0 || p > k / 2)
            return GOPT_FAIL(GOPT_EINVAL, "maxpool2d: kernel=%d stride=%d padding=%d (need padding <= kernel/2)", k, s,
                             p);
        l->cfg.stride = s;
        if (in[1] + 2 * p < k || in[2] + 2 * p < k) {
            char sh[96];
            shape_fmt(sh, sizeof sh, "N", 3, in);
            return GOPT_FAIL(GOPT_ESHAPE, "maxpool2d: kernel %d larger than the padded input %s", k, sh);
        }
        l->out_ndim = 3;
        l->out_shape[0] = in[0];
        l->out_shape[1] = (in[1] + 2 * p - k) / s + 1;
        l->out_shape[2] = (in[2] + 2 * p - k) / s + 1;
        return GOPT_OK;
    }
    case GOPT_LAYER_GLOBAL_AVGPOOL:
        GOPT_TRY(need_chw(cfg, l->in_ndim, in));
        l->out_ndim = 1;
        l->out_shape[0] = in[0];
        return GOPT_OK;
    case GOPT_LAYER_FLATTEN:
        l->out_ndim = 1;
        l->out_shape[0] = l->in_numel;
        return GOPT_OK;
    case GOPT_LAYER_BASIC_BLOCK:
        GOPT_TRY(need_chw(cfg, l->in_ndim, in));
        return gopt__block_setup(l, prefix);
    default:
        return GOPT_FAIL(GOPT_EINVAL, "unknown layer type %d", (int)cfg->type);
    }
}

gopt_status gopt__layer_alloc_buffers(gopt_layer *l) {
    size_t n = (size_t)l->max_batch * (size_t)l->out_numel;
    if (l->cfg.type != GOPT_LAYER_FLATTEN) {
        l->out = gopt__aligned_alloc(n * sizeof(float));
        if (!l->out) return GOPT_FAIL(GOPT_ENOMEM, "%s output of %zu floats", gopt_layer_type_name(l->cfg.type), n);
        l->owns_out = 1;
    }
    if (l->cfg.type == GOPT_LAYER_MAXPOOL2D) {
        l->argmax = gopt__aligned_alloc(n * sizeof(int32_t));
        if (!l->argmax) return GOPT_FAIL(GOPT_ENOMEM, "maxpool2d indices");
    }
    if (l->cfg.type == GOPT_LAYER_DROPOUT) {
        l->mask = gopt__aligned_alloc(n);
        if (!l->mask) return GOPT_FAIL(GOPT_ENOMEM, "dropout mask");
    }
    return GOPT_OK;
}

void gopt_layer_destroy(gopt_layer *l) {
    if (!l) return;
    if (l->owns_out) gopt__aligned_free(l->out);
    if (l->owns_ws) gopt__aligned_free(l->ws);
    gopt__aligned_free(l->argmax);
    gopt__aligned_free(l->mask);
    gopt__aligned_free(l->t1);
    gopt__aligned_free(l->t3);
    gopt__aligned_free(l->ts);
    gopt__bn_free(&l->bn);
    gopt__bn_free(&l->bn2);
    gopt__bn_free(&l->bn_s);
    gopt__rnn_free(l);
    gopt__free(l);
}

gopt_status gopt_layer_create(const gopt_layer_config *cfg, int in_ndim, const int64_t in_shape[], int max_batch,
                              gopt_params *params, const char *prefix, gopt_layer **out) {
    return gopt__layer_create(cfg, in_ndim, in_shape, max_batch, params, prefix, 1, out);
}

gopt_status gopt__layer_create(const gopt_layer_config *cfg, int in_ndim, const int64_t in_shape[], int max_batch,
                               gopt_params *params, const char *prefix, int own_ws, gopt_layer **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    GOPT_CHECK_NULL(in_shape);
    GOPT_CHECK_NULL(params);
    GOPT_CHECK_NULL(prefix);
    if (cfg->type < 0 || cfg->type >= GOPT_LAYER_TYPE_COUNT)
        return GOPT_FAIL(GOPT_EINVAL, "layer type %d is out of range", (int)cfg->type);
    if (in_ndim < 1 || in_ndim > 3) return GOPT_FAIL(GOPT_EINVAL, "in_ndim = %d must be 1..3", in_ndim);
    if (max_batch < 1) return GOPT_FAIL(GOPT_EINVAL, "max_batch = %d must be >= 1", max_batch);
    size_t plen = strlen(prefix);
    if (plen < 1 || plen > 40) return GOPT_FAIL(GOPT_EINVAL, "prefix '%s' must be 1..40 bytes", prefix);
    if (gopt_params_finalized(params))
        return GOPT_FAIL(GOPT_ESTATE, "cannot add layer '%s': the params arena is already finalized", prefix);
    int64_t numel = 1;
    for (int i = 0; i < in_ndim; i++) {
        if (in_shape[i] < 1 || in_shape[i] > (1 << 24))
            return GOPT_FAIL(GOPT_ESHAPE, "input dimension %d = %lld is out of range", i, (long long)in_shape[i]);
        numel *= in_shape[i];
        if (numel > ((int64_t)1 << 31)) return GOPT_FAIL(GOPT_EOVERFLOW, "input of more than 2^31 elements per sample");
    }
    gopt_layer *l = gopt__calloc(1, sizeof *l);
    if (!l) return GOPT_FAIL(GOPT_ENOMEM, "layer");
    l->cfg = *cfg;
    l->vt = cfg->type == GOPT_LAYER_BASIC_BLOCK ? gopt__block_vtable() : &vts[cfg->type];
    l->in_ndim = in_ndim;
    for (int i = 0; i < 3; i++) l->in_shape[i] = i < in_ndim ? in_shape[i] : 1;
    l->in_numel = numel;
    l->max_batch = max_batch;
    l->training = 1;
    l->params = params;
    gopt_status s = setup(l, prefix);
    if (s == GOPT_OK) {
        l->out_numel = 1;
        for (int i = 0; i < l->out_ndim; i++) l->out_numel *= l->out_shape[i];
        for (int i = l->out_ndim; i < 3; i++) l->out_shape[i] = 1;
        if ((double)l->out_numel * max_batch > 1e10) s = GOPT_FAIL(GOPT_EOVERFLOW, "output too large");
    }
    if (s == GOPT_OK && own_ws) s = gopt__layer_alloc_buffers(l); /* a net allocates at build */
    if (s == GOPT_OK && own_ws && cfg->type == GOPT_LAYER_BASIC_BLOCK) s = gopt__block_finish(l, 0);
    if (s == GOPT_OK && l->ws_floats && own_ws) {
        l->ws = gopt__aligned_alloc(l->ws_floats * sizeof(float));
        l->owns_ws = 1;
        if (!l->ws) s = GOPT_FAIL(GOPT_ENOMEM, "workspace of %zu floats", l->ws_floats);
    }
    if (s != GOPT_OK) {
        gopt_layer_destroy(l);
        return s;
    }
    *out = l;
    return GOPT_OK;
}

void gopt__layer_set_ws(gopt_layer *l, float *ws) {
    if (l->owns_ws) gopt__aligned_free(l->ws);
    l->owns_ws = 0;
    l->ws = ws;
}

gopt_layer_type gopt_layer_get_type(const gopt_layer *l) { return l ? l->cfg.type : GOPT_LAYER_TYPE_COUNT; }

int gopt_layer_out_shape(const gopt_layer *l, int64_t out_shape[3]) {
    if (!l || !out_shape) return 0;
    for (int i = 0; i < 3; i++) out_shape[i] = l->out_shape[i];
    return l->out_ndim;
}

int gopt__layer_bns(gopt_layer *l, gopt__bn **out3) {
    int n = 0;
    if (l->cfg.type == GOPT_LAYER_BATCHNORM2D) out3[n++] = &l->bn;
    if (l->cfg.type == GOPT_LAYER_BASIC_BLOCK) {
        out3[n++] = &l->bn;
        out3[n++] = &l->bn2;
        if (l->projection) out3[n++] = &l->bn_s;
    }
    return n;
}

static void init_conv(gopt_layer *l, const gopt__conv *c, gopt_init kind, gopt_rng *rng) {
    gopt_param_info info;
    gopt_params_info(l->params, c->w_index, &info);
    gopt_tensor_init(&info.value, kind, rng);
    if (c->b_index >= 0) {
        gopt_params_info(l->params, c->b_index, &info);
        float bound = 1.0f / sqrtf((float)(c->C * c->R * c->R));
        gopt_tensor_fill_uniform(&info.value, -bound, bound, rng);
    }
}

static void init_bn(gopt_layer *l, gopt__bn *bn) {
    float *g = gopt__pv(l, bn->g_index), *b = gopt__pv(l, bn->b_index);
    for (int c = 0; c < bn->C; c++) {
        g[c] = 1.0f;
        b[c] = 0.0f;
    }
    gopt__bn_reset_running(bn);
}

gopt_status gopt_layer_init_params(gopt_layer *l, gopt_init weight_init, gopt_rng *rng) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(rng);
    if (!gopt_params_finalized(l->params)) return GOPT_FAIL(GOPT_ESTATE, "the params arena is not finalized");
    if (weight_init < GOPT_INIT_HE_NORMAL || weight_init > GOPT_INIT_TORCH_DEFAULT)
        return GOPT_FAIL(GOPT_EINVAL, "weight_init = %d is not a gopt_init", (int)weight_init);
    switch (l->cfg.type) {
    case GOPT_LAYER_LINEAR: {
        gopt_param_info info;
        gopt_params_info(l->params, l->w_index, &info);
        GOPT_TRY(gopt_tensor_init(&info.value, weight_init, rng));
        if (l->b_index >= 0) {
            gopt_params_info(l->params, l->b_index, &info);
            float bound = 1.0f / sqrtf((float)l->cfg.in_features);
            GOPT_TRY(gopt_tensor_fill_uniform(&info.value, -bound, bound, rng));
        }
        break;
    }
    case GOPT_LAYER_CONV2D: init_conv(l, &l->conv, weight_init, rng); break;
    case GOPT_LAYER_BATCHNORM2D: init_bn(l, &l->bn); break;
    case GOPT_LAYER_RNN:
    case GOPT_LAYER_LSTM:
    case GOPT_LAYER_GRU: return gopt__rnn_init_params(l, rng);
    case GOPT_LAYER_BASIC_BLOCK:
        init_conv(l, &l->conv, weight_init, rng);
        init_bn(l, &l->bn);
        init_conv(l, &l->conv2, weight_init, rng);
        init_bn(l, &l->bn2);
        if (l->projection) {
            init_conv(l, &l->conv_s, weight_init, rng);
            init_bn(l, &l->bn_s);
        }
        break;
    default: break;
    }
    return GOPT_OK;
}

void gopt_layer_set_training(gopt_layer *l, int training) {
    if (l) l->training = training ? 1 : 0;
}

gopt_status gopt_layer_bn_running(gopt_layer *l, float **running_mean, float **running_var) {
    GOPT_CHECK_NULL(l);
    if (l->cfg.type != GOPT_LAYER_BATCHNORM2D)
        return GOPT_FAIL(GOPT_EINVAL, "layer is %s, not batchnorm2d", gopt_layer_type_name(l->cfg.type));
    if (running_mean) *running_mean = l->bn.running_mean;
    if (running_var) *running_var = l->bn.running_var;
    return GOPT_OK;
}

double gopt__layer_flops(const gopt_layer *l) {
    const gopt__conv *cs[3] = {NULL, NULL, NULL};
    switch (l->cfg.type) {
    case GOPT_LAYER_LINEAR: return 2.0 * l->cfg.in_features * l->cfg.out_features;
    case GOPT_LAYER_RNN:
    case GOPT_LAYER_LSTM:
    case GOPT_LAYER_GRU: return gopt__rnn_flops(l);
    case GOPT_LAYER_CONV2D: cs[0] = &l->conv; break;
    case GOPT_LAYER_BASIC_BLOCK:
        cs[0] = &l->conv;
        cs[1] = &l->conv2;
        if (l->projection) cs[2] = &l->conv_s;
        break;
    default: return 0.0;
    }
    double f = 0.0;
    for (int i = 0; i < 3; i++)
        if (cs[i]) f += 2.0 * cs[i]->K * cs[i]->C * cs[i]->R * cs[i]->R * (double)cs[i]->OH * cs[i]->OW;
    return f;
}

void gopt__layer_forward_raw(gopt_layer *l, const float *x, int n) {
    if (l->timer && l->cfg.type != GOPT_LAYER_BASIC_BLOCK) {
        double t0 = gopt__now();
        l->vt->forward(l, x, n);
        l->timer[l->cfg.type] += gopt__now() - t0;
    } else {
        l->vt->forward(l, x, n);
    }
    l->last_n = n;
}

void gopt__layer_backward_raw(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (l->timer && l->cfg.type != GOPT_LAYER_BASIC_BLOCK) {
        double t0 = gopt__now();
        l->vt->backward(l, x, dy, dx, n);
        l->timer[GOPT_LAYER_TYPE_COUNT + l->cfg.type] += gopt__now() - t0;
    } else {
        l->vt->backward(l, x, dy, dx, n);
    }
}

static gopt_status check_tensor(const gopt_layer *l, const gopt_tensor *t, const char *what, int ndim,
                                const int64_t *shape, int want_n) {
    char want[96], got[96];
    shape_fmt(want, sizeof want, want_n > 0 ? "" : "N", ndim, shape);
    if (want_n > 0) {
        int64_t full[4] = {want_n, shape[0], shape[1], shape[2]};
        shape_fmt(want, sizeof want, "", ndim + 1, full);
    }
    if (!t->data) return GOPT_FAIL(GOPT_EINVAL, "%s: %s has no data", gopt_layer_type_name(l->cfg.type), what);
    int ok = t->ndim == ndim + 1 && t->shape[0] >= 1 && t->shape[0] <= l->max_batch &&
             (want_n <= 0 || t->shape[0] == want_n);
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i + 1] == shape[i];
    if (!ok) {
        gopt_shape_str(t, got, sizeof got);
        return GOPT_FAIL(GOPT_ESHAPE, "%s: %s %s does not match %s (batch at most %d)",
                         gopt_layer_type_name(l->cfg.type), what, got, want, l->max_batch);
    }
    return GOPT_OK;
}

gopt_status gopt_layer_forward(gopt_layer *l, const gopt_tensor *x, gopt_tensor *y) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(x);
    GOPT_CHECK_NULL(y);
    GOPT_TRY(check_tensor(l, x, "input", l->in_ndim, l->in_shape, 0));
    if (!gopt_params_finalized(l->params) && l->params && gopt_params_count(l->params) > 0)
        return GOPT_FAIL(GOPT_ESTATE, "%s: the params arena is not finalized", gopt_layer_type_name(l->cfg.type));
    int n = (int)x->shape[0];
    if (gopt__is_recurrent(l->cfg.type)) GOPT_TRY(gopt__rnn_check_forward(l, n));
    gopt__layer_forward_raw(l, x->data, n);
    int64_t shape[4] = {n, l->out_shape[0], l->out_shape[1], l->out_shape[2]};
    return gopt_tensor_view(l->out, l->out_ndim + 1, shape, y);
}

gopt_status gopt_layer_backward(gopt_layer *l, const gopt_tensor *x, gopt_tensor *dy, gopt_tensor *dx) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(x);
    GOPT_CHECK_NULL(dy);
    if (l->last_n == 0) return GOPT_FAIL(GOPT_ESTATE, "%s: backward before forward", gopt_layer_type_name(l->cfg.type));
    GOPT_TRY(check_tensor(l, x, "input", l->in_ndim, l->in_shape, l->last_n));
    GOPT_TRY(check_tensor(l, dy, "dy", l->out_ndim, l->out_shape, l->last_n));
    if (dx) GOPT_TRY(check_tensor(l, dx, "dx", l->in_ndim, l->in_shape, l->last_n));
    gopt__layer_backward_raw(l, x->data, dy->data, dx ? dx->data : NULL, l->last_n);
    return GOPT_OK;
}
