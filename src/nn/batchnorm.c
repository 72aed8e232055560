/* batchnorm2d (torch.nn.BatchNorm2d): (N,C,H,W) -> same, y = gamma (x - mean)/sqrt(var + eps)
 * + beta, batch statistics in training (running statistics updated), running ones in eval;
 * optional fused ReLU (cfg.relu). batchnorm1d (torch.nn.BatchNorm1d): the same over (N,C) or
 * (N,C,L), a plane of L (or 1) values per sample and channel, so the statistics run over N
 * (N*L) and M = N (N*L) in the unbiased running variance. The kernels are in nn/conv.c. */
#include "core/common.h"
#include "nn/layer.h"

typedef struct bn_state {
    gopt__bn bn;
} bn_state;

static gopt__bn *bn_of(const gopt_layer *l) { return &((bn_state *)l->st)->bn; }

static gopt_status bn_setup(gopt_layer *l, const char *prefix) {
    const gopt_layer_config *cfg = &l->cfg;
    const int64_t *in = l->in_shape;
    GOPT_TRY(gopt__need_chw(l));
    if (in[0] != cfg->channels) {
        char s[96];
        gopt__shape_fmt(s, sizeof s, "N", 3, in);
        return GOPT_FAIL(GOPT_ESHAPE, "batchnorm2d: input %s does not match (N,%d,H,W)", s, cfg->channels);
    }
    GOPT_TRY(gopt__layer_state(l, sizeof(bn_state)));
    GOPT_TRY(gopt__bn_setup(bn_of(l), cfg->channels, (int)(in[1] * in[2]), cfg->eps, cfg->momentum));
    l->out_ndim = 3;
    memcpy(l->out_shape, in, sizeof l->out_shape);
    return gopt__add_bn_params(l, bn_of(l), prefix);
}

/* (C) or (C,L) per sample: planes of L (or 1) values */
static gopt_status bn1d_setup(gopt_layer *l, const char *prefix) {
    const gopt_layer_config *cfg = &l->cfg;
    const int64_t *in = l->in_shape;
    if (cfg->channels < 1) return GOPT_FAIL(GOPT_EINVAL, "batchnorm1d: features = %d must be >= 1", cfg->channels);
    if (l->in_ndim > 2 || in[0] != cfg->channels) {
        char s[96];
        gopt__shape_fmt(s, sizeof s, "N", l->in_ndim, in);
        return GOPT_FAIL(GOPT_ESHAPE, "batchnorm1d: input %s does not match (N,%d) or (N,%d,L)", s, cfg->channels,
                         cfg->channels);
    }
    GOPT_TRY(gopt__layer_state(l, sizeof(bn_state)));
    GOPT_TRY(gopt__bn_setup(bn_of(l), cfg->channels, l->in_ndim == 2 ? (int)in[1] : 1, cfg->eps, cfg->momentum));
    l->out_ndim = l->in_ndim;
    memcpy(l->out_shape, in, sizeof l->out_shape);
    return gopt__add_bn_params(l, bn_of(l), prefix);
}

static void bn_free(gopt_layer *l) {
    if (l->st) gopt__bn_free(bn_of(l));
}

static gopt_status bn_init(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng) {
    gopt__init_bn(l, bn_of(l));
    return GOPT_OK;
}

static void bn_forward(gopt_layer *l, const float *x, int n) {
    gopt__bn *bn = bn_of(l);
    gopt__bn_forward(bn, gopt__pv(l, bn->g_index), gopt__pv(l, bn->b_index), x, l->out, NULL, l->cfg.relu, n,
                     l->training);
}

/* the same y as forward (same coefficients, same per-plane kernel), no statistics update */
static void bn_recompute(gopt_layer *l, const float *x, int n) {
    const gopt__bn *bn = bn_of(l);
    gopt__bn_apply(bn, gopt__pv(l, bn->g_index), gopt__pv(l, bn->b_index), x, l->out, l->cfg.relu, n, l->training);
}

static void bn_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    const gopt__bn *bn = bn_of(l);
    /* the relu's mask is recomputed from x: dy may live in l->out (the net's in-place gradients) */
    gopt__bn_relu relu = {gopt__pv(l, bn->b_index), NULL, NULL, NULL, NULL};
    gopt__bn_backward(bn, gopt__pv(l, bn->g_index), l->cfg.relu ? &relu : NULL, gopt__pg(l, bn->g_index),
                      gopt__pg(l, bn->b_index), x, dy, dx ? dx : dy, n, l->training);
}

static int bn_bns(gopt_layer *l, gopt__bn **out3) {
    out3[0] = bn_of(l);
    return 1;
}

static const gopt__layer_vt bn_vt = {
    .type = GOPT_LAYER_BATCHNORM2D,
    .setup = bn_setup,
    .free = bn_free,
    .init_params = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    .recompute = bn_recompute,
    .bns = bn_bns,
};

static const gopt__layer_vt bn1d_vt = {
    .type = GOPT_LAYER_BATCHNORM1D,
    .setup = bn1d_setup,
    .free = bn_free,
    .init_params = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    .recompute = bn_recompute,
    .bns = bn_bns,
};

const gopt__layer_vt *gopt__batchnorm2d_vtable(void) { return &bn_vt; }
const gopt__layer_vt *gopt__batchnorm1d_vtable(void) { return &bn1d_vt; }
