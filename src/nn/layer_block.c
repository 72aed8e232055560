/* The residual basic block (He et al. 2016) as one layer, so it keeps only what its
 * backward needs: conv1's output t1, conv2's output t3 (or recomputes it from t1 when a net
 * says so), the projection conv's output ts and the block output. bn1+relu's output t2 is
 * applied on the fly by conv2 (fast path) or lives in the shared workspace (generic path);
 * the final relu's mask is recomputed from t3 and the shortcut; gradients overwrite t3, ts
 * and t1 in place. */
#include <stdio.h>

#include "core/common.h"
#include "nn/layer.h"

gopt_status gopt__layer_add_conv(gopt_layer *l, gopt__conv *c, const char *prefix);
gopt_status gopt__layer_add_bn(gopt_layer *l, gopt__bn *bn, const char *prefix);

static gopt_status add_named(gopt_layer *l, const char *prefix, const char *part, gopt__conv *c, gopt__bn *bn) {
    char name[GOPT_PARAM_NAME_MAX];
    int len = snprintf(name, sizeof name, "%s.%s", prefix, part);
    if (len < 0 || len >= (int)sizeof name) return GOPT_FAIL(GOPT_EINVAL, "prefix '%s' too long", prefix);
    return c ? gopt__layer_add_conv(l, c, name) : gopt__layer_add_bn(l, bn, name);
}

gopt_status gopt__block_setup(gopt_layer *l, const char *prefix) {
    const gopt_layer_config *cfg = &l->cfg;
    const int C = (int)l->in_shape[0], H = (int)l->in_shape[1], W = (int)l->in_shape[2];
    const int K = cfg->out_features, s = cfg->stride;
    if (C != cfg->in_features)
        return GOPT_FAIL(GOPT_ESHAPE, "basic_block: input (N,%d,%d,%d) does not match (N,%d,H,W)", C, H, W,
                         cfg->in_features);
    if (K < 1 || s < 1 || s > 2) return GOPT_FAIL(GOPT_EINVAL, "basic_block: out=%d stride=%d (stride 1 or 2)", K, s);
    GOPT_TRY(gopt__conv_setup(&l->conv, C, K, H, W, 3, s, 1, 0, l->max_batch));
    const int OH = l->conv.OH, OW = l->conv.OW;
    GOPT_TRY(gopt__conv_setup(&l->conv2, K, K, OH, OW, 3, 1, 1, 0, l->max_batch));
    l->projection = s != 1 || C != K;
    if (l->projection) GOPT_TRY(gopt__conv_setup(&l->conv_s, C, K, H, W, 1, s, 0, 0, l->max_batch));
    GOPT_TRY(gopt__bn_setup(&l->bn, K, OH * OW, cfg->eps, cfg->momentum));
    l->nbn = 1;
    GOPT_TRY(gopt__bn_setup(&l->bn2, K, OH * OW, cfg->eps, cfg->momentum));
    l->nbn = 2;
    if (l->projection) {
        GOPT_TRY(gopt__bn_setup(&l->bn_s, K, OH * OW, cfg->eps, cfg->momentum));
        l->nbn = 3;
    }
    GOPT_TRY(add_named(l, prefix, "conv1", &l->conv, NULL));
    GOPT_TRY(add_named(l, prefix, "bn1", NULL, &l->bn));
    GOPT_TRY(add_named(l, prefix, "conv2", &l->conv2, NULL));
    GOPT_TRY(add_named(l, prefix, "bn2", NULL, &l->bn2));
    if (l->projection) {
        GOPT_TRY(add_named(l, prefix, "shortcut.conv", &l->conv_s, NULL));
        GOPT_TRY(add_named(l, prefix, "shortcut.bn", NULL, &l->bn_s));
    }
    l->out_ndim = 3;
    l->out_shape[0] = K;
    l->out_shape[1] = OH;
    l->out_shape[2] = OW;
    size_t act = (size_t)l->max_batch * K * OH * OW;
    size_t cw = gopt__conv_ws_floats(&l->conv), c2 = gopt__conv_ws_floats(&l->conv2);
    if (c2 > cw) cw = c2;
    if (l->projection && gopt__conv_ws_floats(&l->conv_s) > cw) cw = gopt__conv_ws_floats(&l->conv_s);
    /* the fast path feeds conv2 bn1+relu on the fly; otherwise t2 lives in the workspace, the
     * conv workspace after it 64-byte aligned. t3 is left to gopt__block_finish. */
    l->ws_floats = l->conv.fast ? cw : (act + 15) / 16 * 16 + cw;
    l->t1 = gopt__aligned_alloc(act * sizeof(float));
    if (l->projection) l->ts = gopt__aligned_alloc(act * sizeof(float));
    if (!l->t1 || (l->projection && !l->ts))
        return GOPT_FAIL(GOPT_ENOMEM, "basic_block activations of %zu floats", act);
    return GOPT_OK;
}

gopt_status gopt__block_finish(gopt_layer *l, int recompute_t3) {
    const size_t act = (size_t)l->max_batch * l->out_numel;
    if (recompute_t3 && l->conv.fast) {
        l->recompute_t3 = 1;
        l->ws_floats += (act + 15) / 16 * 16;
        return GOPT_OK;
    }
    l->t3 = gopt__aligned_alloc(act * sizeof(float));
    return l->t3 ? GOPT_OK : GOPT_FAIL(GOPT_ENOMEM, "basic_block activations of %zu floats", act);
}

#define TIMED(l, slot, stmt)                                      \
    do {                                                          \
        if ((l)->timer) {                                         \
            double t0_ = gopt__now();                             \
            stmt;                                                 \
            (l)->timer[(slot)] += gopt__now() - t0_;              \
        } else {                                                  \
            stmt;                                                 \
        }                                                         \
    } while (0)

/* Workspace: [t3 scratch if recomputed][t2 unless fast][conv workspace], each 64-byte aligned. */
static void block_ws(gopt_layer *l, float **t3, float **t2, float **cws) {
    const size_t act = ((size_t)l->max_batch * l->out_numel + 15) / 16 * 16;
    float *p = l->ws;
    *t3 = l->recompute_t3 ? p : l->t3;
    if (l->recompute_t3) p += act;
    *t2 = p;
    if (!l->conv.fast) p += act;
    *cws = p;
}

static void block_forward(gopt_layer *l, const float *x, int n) {
    const int fast = l->conv.fast;
    float *t3, *t2, *cws;
    block_ws(l, &t3, &t2, &cws);
    const int tr = l->training;
    const float *g1 = gopt__pv(l, l->bn.g_index), *b1 = gopt__pv(l, l->bn.b_index);
    TIMED(l, GOPT_LAYER_CONV2D, gopt__conv_forward(&l->conv, gopt__pv(l, l->conv.w_index), NULL, x, l->t1, n, cws));
    if (fast) { /* t2 = relu(bn1(t1)) is never stored: conv2 applies it per image */
        TIMED(l, GOPT_LAYER_BATCHNORM2D, {
            gopt__bn_forward(&l->bn, g1, b1, l->t1, NULL, NULL, 1, n, tr);
            gopt__bn_coeffs(&l->bn, g1, b1, tr, l->bn.scale, l->bn.shift);
        });
        TIMED(l, GOPT_LAYER_CONV2D,
              gopt__conv_fast_forward(&l->conv2, gopt__pv(l, l->conv2.w_index), NULL, l->t1, t3, n, cws,
                                      l->bn.scale, l->bn.shift));
    } else {
        TIMED(l, GOPT_LAYER_BATCHNORM2D, gopt__bn_forward(&l->bn, g1, b1, l->t1, t2, NULL, 1, n, tr));
        TIMED(l, GOPT_LAYER_CONV2D,
              gopt__conv_forward(&l->conv2, gopt__pv(l, l->conv2.w_index), NULL, t2, t3, n, cws));
    }
    const float *res = x;
    if (l->projection) {
        TIMED(l, GOPT_LAYER_CONV2D,
              gopt__conv_forward(&l->conv_s, gopt__pv(l, l->conv_s.w_index), NULL, x, l->ts, n, cws));
        TIMED(l, GOPT_LAYER_BATCHNORM2D,
              gopt__bn_forward(&l->bn_s, gopt__pv(l, l->bn_s.g_index), gopt__pv(l, l->bn_s.b_index), l->ts, l->out,
                               NULL, 0, n, tr));
        res = l->out;
    }
    TIMED(l, GOPT_LAYER_BATCHNORM2D,
          gopt__bn_forward(&l->bn2, gopt__pv(l, l->bn2.g_index), gopt__pv(l, l->bn2.b_index), t3, l->out, res, 1, n,
                           tr));
}

/* dx += g */
static void add_into(float *dx, const float *g, int64_t total) {
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > 16384)
    for (int64_t i = 0; i < total; i++) dx[i] += g[i];
}

/* dy may be l->out (a net's in-place gradients) and dx may alias x: the final relu's mask is
 * recomputed from t3 and the shortcut, x is read (bn2's mask, the shortcut's and conv1's dW)
 * before conv1 writes dx, and the shortcut's dX is added last. */
static void block_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    const int fast = l->conv.fast;
    const int64_t total = (int64_t)n * l->out_numel;
    float *t3, *t2, *cws;
    block_ws(l, &t3, &t2, &cws);
    const int tr = l->training;
    const int slot = GOPT_LAYER_TYPE_COUNT; /* backward half of the timer */
    const float *g1 = gopt__pv(l, l->bn.g_index), *b1 = gopt__pv(l, l->bn.b_index);
    if (l->recompute_t3) /* conv2's output again, bit for bit (same weights, inputs, kernels) */
        TIMED(l, slot + GOPT_LAYER_CONV2D, {
            gopt__bn_coeffs(&l->bn, g1, b1, tr, l->bn.scale, l->bn.shift);
            gopt__conv_fast_forward(&l->conv2, gopt__pv(l, l->conv2.w_index), NULL, l->t1, t3, n, cws, l->bn.scale,
                                    l->bn.shift);
        });
    gopt__bn_relu relu2 = {gopt__pv(l, l->bn2.b_index), x, NULL, NULL, NULL};
    if (l->projection) {
        relu2.res = l->ts;
        relu2.res_bn = &l->bn_s;
        relu2.res_gamma = gopt__pv(l, l->bn_s.g_index);
        relu2.res_beta = gopt__pv(l, l->bn_s.b_index);
    }
    TIMED(l, slot + GOPT_LAYER_BATCHNORM2D, /* masks dy in place, t3 <- d(conv2 out) */
          gopt__bn_backward(&l->bn2, gopt__pv(l, l->bn2.g_index), &relu2, gopt__pg(l, l->bn2.g_index),
                            gopt__pg(l, l->bn2.b_index), t3, dy, t3, n, tr));
    if (l->projection) {
        TIMED(l, slot + GOPT_LAYER_BATCHNORM2D,
              gopt__bn_backward(&l->bn_s, gopt__pv(l, l->bn_s.g_index), NULL, gopt__pg(l, l->bn_s.g_index),
                                gopt__pg(l, l->bn_s.b_index), l->ts, dy, l->ts, n, tr));
        TIMED(l, slot + GOPT_LAYER_CONV2D,
              gopt__conv_backward(&l->conv_s, gopt__pv(l, l->conv_s.w_index), gopt__pg(l, l->conv_s.w_index), NULL, x,
                                  l->ts, NULL, 0, n, cws));
    }
    float *g2; /* d(bn1+relu output) */
    if (fast) {
        TIMED(l, slot + GOPT_LAYER_CONV2D, {
            gopt__bn_coeffs(&l->bn, g1, b1, tr, l->bn.scale, l->bn.shift);
            gopt__conv_fast_backward(&l->conv2, gopt__pv(l, l->conv2.w_index), gopt__pg(l, l->conv2.w_index), NULL,
                                     l->t1, t3, t3, 0, n, cws, l->bn.scale, l->bn.shift);
        });
        g2 = t3;
    } else {
        TIMED(l, slot + GOPT_LAYER_BATCHNORM2D, gopt__bn_apply(&l->bn, g1, b1, l->t1, t2, 1, n, tr));
        TIMED(l, slot + GOPT_LAYER_CONV2D,
              gopt__conv_backward(&l->conv2, gopt__pv(l, l->conv2.w_index), gopt__pg(l, l->conv2.w_index), NULL, t2,
                                  t3, t2, 0, n, cws));
        g2 = t2;
    }
    gopt__bn_relu relu1 = {b1, NULL, NULL, NULL, NULL};
    TIMED(l, slot + GOPT_LAYER_BATCHNORM2D,
          gopt__bn_backward(&l->bn, g1, &relu1, gopt__pg(l, l->bn.g_index), gopt__pg(l, l->bn.b_index), l->t1, g2,
                            l->t1, n, tr));
    TIMED(l, slot + GOPT_LAYER_CONV2D,
          gopt__conv_backward(&l->conv, gopt__pv(l, l->conv.w_index), gopt__pg(l, l->conv.w_index), NULL, x, l->t1, dx,
                              0, n, cws));
    if (!dx) return;
    if (l->projection)
        TIMED(l, slot + GOPT_LAYER_CONV2D,
              gopt__conv_backward(&l->conv_s, gopt__pv(l, l->conv_s.w_index), NULL, NULL, x, l->ts, dx, 1, n, cws));
    else
        TIMED(l, slot + GOPT_LAYER_BASIC_BLOCK, add_into(dx, dy, total));
}

static const gopt__layer_vt block_vt = {GOPT_LAYER_BASIC_BLOCK, block_forward, block_backward};

const gopt__layer_vt *gopt__block_vtable(void) { return &block_vt; }
