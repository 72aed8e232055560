/* The sigmoid and tanh layers (any shape -> same shape), with the vectorised kernels of
 * nn/act.h that the recurrent cells use too.
 *   sigmoid: y = 1 / (1 + exp(-x)), dx = dy y (1 - y)    (torch.sigmoid / nn.Sigmoid)
 *   tanh:    y = tanh(x),           dx = dy (1 - y^2)     (torch.tanh / nn.Tanh)
 * Backward recomputes y from x: in a net the output buffer may already hold dy. */
#include "nn/act.h"
GOPT_ACT_NO_TRAPPING

#include "gradopt/common.h"
#include "nn/recurrent.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#  define ACT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#  define ACT_CLONES
#endif

#define ACT_OMP_MIN 65536 /* elements: below this one thread */
#define ACT_CHUNK 4096    /* elements per parallel chunk (a multiple of the vector width) */

ACT_CLONES static void sigmoid_fwd(float *y, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = gopt__sigmoidf(x[i]);
}
ACT_CLONES static void sigmoid_bwd(float *dx, const float *x, const float *dy, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float s = gopt__sigmoidf(x[i]);
        dx[i] = dy[i] * (s * (1.0f - s));
    }
}
ACT_CLONES static void tanh_fwd(float *y, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) y[i] = gopt__tanhf(x[i]);
}
ACT_CLONES static void tanh_bwd(float *dx, const float *x, const float *dy, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float t = gopt__tanhf(x[i]);
        dx[i] = dy[i] * (1.0f - t * t);
    }
}

/* Split [0, total) in chunks over the threads when large; each element is computed alone,
 * so results do not depend on the thread count. */
static void run_fwd(void (*fn)(float *, const float *, int64_t), float *y, const float *x, int64_t total) {
    if (total < ACT_OMP_MIN || gopt_get_threads() < 2) {
        fn(y, x, total);
        return;
    }
    int64_t chunks = (total + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * ACT_CHUNK, len = total - lo < ACT_CHUNK ? total - lo : ACT_CHUNK;
        fn(y + lo, x + lo, len);
    }
}

static void run_bwd(void (*fn)(float *, const float *, const float *, int64_t), float *dx, const float *x,
                    const float *dy, int64_t total) {
    if (total < ACT_OMP_MIN || gopt_get_threads() < 2) {
        fn(dx, x, dy, total);
        return;
    }
    int64_t chunks = (total + ACT_CHUNK - 1) / ACT_CHUNK;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * ACT_CHUNK, len = total - lo < ACT_CHUNK ? total - lo : ACT_CHUNK;
        fn(dx + lo, x + lo, dy + lo, len);
    }
}

void gopt__sigmoid_forward(gopt_layer *l, const float *x, int n) {
    run_fwd(sigmoid_fwd, l->out, x, (int64_t)n * l->in_numel);
}
void gopt__sigmoid_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (dx) run_bwd(sigmoid_bwd, dx, x, dy, (int64_t)n * l->in_numel);
}
void gopt__tanh_forward(gopt_layer *l, const float *x, int n) {
    run_fwd(tanh_fwd, l->out, x, (int64_t)n * l->in_numel);
}
void gopt__tanh_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (dx) run_bwd(tanh_bwd, dx, x, dy, (int64_t)n * l->in_numel);
}

static gopt_status same_shape_setup(gopt_layer *l, const char *prefix) {
    (void)prefix;
    l->out_ndim = l->in_ndim;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
    return GOPT_OK;
}

static const gopt__layer_vt sigmoid_vt = {
    .type = GOPT_LAYER_SIGMOID,
    .setup = same_shape_setup,
    .forward = gopt__sigmoid_forward,
    .backward = gopt__sigmoid_backward,
    .recompute = gopt__sigmoid_forward,
};
static const gopt__layer_vt tanh_vt = {
    .type = GOPT_LAYER_TANH,
    .setup = same_shape_setup,
    .forward = gopt__tanh_forward,
    .backward = gopt__tanh_backward,
    .recompute = gopt__tanh_forward,
};
const gopt__layer_vt *gopt__sigmoid_vtable(void) { return &sigmoid_vt; }
const gopt__layer_vt *gopt__tanh_vtable(void) { return &tanh_vt; }
