/* Elementwise activations, any shape -> same: relu (torch.nn.ReLU), gelu (torch.nn.GELU:
 * exact x/2 (1 + erf(x/sqrt 2)), or approximate='tanh' x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715
 * x^3))) with cfg.gelu_tanh). */
#include "core/common.h"
#include "nn/layer.h"

#define OMP_MIN 16384

static gopt_status same_shape_setup(gopt_layer *l, const char *prefix) {
    l->out_ndim = l->in_ndim;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
    return GOPT_OK;
}

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

static const gopt__layer_vt relu_vt = {
    .type = GOPT_LAYER_RELU,
    .setup = same_shape_setup,
    .forward = relu_forward,
    .backward = relu_backward,
    .recompute = relu_forward,
};

static const gopt__layer_vt gelu_vt = {
    .type = GOPT_LAYER_GELU,
    .setup = same_shape_setup,
    .forward = gelu_forward,
    .backward = gelu_backward,
    .recompute = gelu_forward,
};

const gopt__layer_vt *gopt__relu_vtable(void) { return &relu_vt; }
const gopt__layer_vt *gopt__gelu_vtable(void) { return &gelu_vt; }
