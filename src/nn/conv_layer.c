/* conv2d (torch.nn.Conv2d): (N,C,H,W) -> (N,K,H',W'), H' = (H + 2p - k)/s + 1, weight
 * (K,C,k,k), bias (K); the kernels are nn/conv.c (im2col + SGEMM) and nn/conv_avx512.c. */
#include "core/common.h"
#include "nn/layer.h"

typedef struct conv_state {
    gopt__conv conv;
} conv_state;

static gopt_status conv_setup(gopt_layer *l, const char *prefix) {
    const gopt_layer_config *cfg = &l->cfg;
    const int64_t *in = l->in_shape;
    GOPT_TRY(gopt__need_chw(l));
    if (in[0] != cfg->in_features) {
        char s[96];
        gopt__shape_fmt(s, sizeof s, "N", 3, in);
        return GOPT_FAIL(GOPT_ESHAPE, "conv2d: input %s does not match (N,%d,H,W)", s, cfg->in_features);
    }
    GOPT_TRY(gopt__layer_state(l, sizeof(conv_state)));
    gopt__conv *c = &((conv_state *)l->st)->conv;
    GOPT_TRY(gopt__conv_setup(c, cfg->in_features, cfg->out_features, (int)in[1], (int)in[2], cfg->kernel,
                              cfg->stride, cfg->padding, cfg->bias, l->max_batch));
    l->out_ndim = 3;
    l->out_shape[0] = cfg->out_features;
    l->out_shape[1] = c->OH;
    l->out_shape[2] = c->OW;
    l->ws_floats = gopt__conv_ws_floats(c);
    return gopt__add_conv_params(l, c, prefix);
}

static gopt_status conv_init(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng) {
    return gopt__init_conv(l, &((conv_state *)l->st)->conv, spec, rng);
}

static void conv_forward(gopt_layer *l, const float *x, int n) {
    const gopt__conv *c = &((conv_state *)l->st)->conv;
    gopt__conv_forward(c, gopt__pv(l, c->w_index), gopt__pv(l, c->b_index), x, l->out, n, l->ws);
}

static void conv_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    const gopt__conv *c = &((conv_state *)l->st)->conv;
    gopt__conv_backward(c, gopt__pv(l, c->w_index), gopt__pg_train(l, c->w_index), gopt__pg_train(l, c->b_index), x, dy, dx, 0, n,
                        l->ws);
}

static double conv_flops(const gopt_layer *l) { return gopt__conv_flops(&((const conv_state *)l->st)->conv); }

static const gopt__layer_vt conv_vt = {
    .type = GOPT_LAYER_CONV2D,
    .setup = conv_setup,
    .init_params = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .recompute = conv_forward, /* deterministic for a given thread count: the same bits again */
    .flops = conv_flops,
};

const gopt__layer_vt *gopt__conv2d_vtable(void) { return &conv_vt; }
