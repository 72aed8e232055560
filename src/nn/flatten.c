/* flatten (torch.nn.Flatten): (N,...) -> (N,prod); the output is the input itself (no copy,
 * no buffer), so a flatten cannot be recomputed and a recomputed layer cannot feed one. */
#include "core/common.h"
#include "nn/layer.h"

static gopt_status flatten_setup(gopt_layer *l, const char *prefix) {
    l->out_ndim = 1;
    l->out_shape[0] = l->in_numel;
    return GOPT_OK;
}

static void flatten_forward(gopt_layer *l, const float *x, int n) { l->out = (float *)x; }

static void flatten_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (dx && dx != dy) memcpy(dx, dy, sizeof(float) * (size_t)((int64_t)n * l->in_numel));
}

static const gopt__layer_vt flatten_vt = {
    .type = GOPT_LAYER_FLATTEN,
    .flags = GOPT__VT_OUT_ALIASES_IN,
    .setup = flatten_setup,
    .forward = flatten_forward,
    .backward = flatten_backward,
};

const gopt__layer_vt *gopt__flatten_vtable(void) { return &flatten_vt; }
