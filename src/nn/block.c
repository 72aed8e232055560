/* The residual basic block (He et al. 2016) as one layer, so it keeps only what its
 * backward needs: conv1's output t1, conv2's output t3 (or recomputes it from t1 when a net
 * says so), the projection conv's output ts and the block output. bn1+relu's output t2 is
 * applied on the fly by conv2 (fast path) or lives in the shared workspace (generic path);
 * the final relu's mask is recomputed from t3 and the shortcut; gradients overwrite t3, ts
 * and t1 in place. */
#include <stdio.h>

#include "core/common.h"
#include "nn/layer.h"

typedef struct block_state {
    gopt__conv conv, conv2, conv_s; /* conv1, conv2, shortcut conv (projection only) */
    gopt__bn bn, bn2, bn_s;
    float *t1, *t3, *ts;            /* conv1 out, conv2 out, shortcut conv out */
    int projection;
    int recompute_t3;               /* conv2's output lives in the workspace, recomputed in backward */
} block_state;

static gopt_status add_named(gopt_layer *l, const char *prefix, const char *part, gopt__conv *c, gopt__bn *bn) {
    char name[GOPT_PARAM_NAME_MAX];
    int len = snprintf(name, sizeof name, "%s.%s", prefix, part);
    if (len < 0 || len >= (int)sizeof name) return GOPT_FAIL(GOPT_EINVAL, "prefix '%s' too long", prefix);
    return c ? gopt__add_conv_params(l, c, name) : gopt__add_bn_params(l, bn, name);
}

static gopt_status block_setup(gopt_layer *l, const char *prefix) {
    const gopt_layer_config *cfg = &l->cfg;
    GOPT_TRY(gopt__need_chw(l));
    const int C = (int)l->in_shape[0], H = (int)l->in_shape[1], W = (int)l->in_shape[2];
    const int K = cfg->out_features, s = cfg->stride;
    if (C != cfg->in_features)
        return GOPT_FAIL(GOPT_ESHAPE, "basic_block: input (N,%d,%d,%d) does not match (N,%d,H,W)", C, H, W,
                         cfg->in_features);
    if (K < 1 || s < 1 || s > 2) return GOPT_FAIL(GOPT_EINVAL, "basic_block: out=%d stride=%d (stride 1 or 2)", K, s);
    GOPT_TRY(gopt__layer_state(l, sizeof(block_state)));
    block_state *b = l->st;
    GOPT_TRY(gopt__conv_setup(&b->conv, C, K, H, W, 3, s, 1, 0, l->max_batch));
    const int OH = b->conv.OH, OW = b->conv.OW;
    GOPT_TRY(gopt__conv_setup(&b->conv2, K, K, OH, OW, 3, 1, 1, 0, l->max_batch));
    b->projection = s != 1 || C != K;
    if (b->projection) GOPT_TRY(gopt__conv_setup(&b->conv_s, C, K, H, W, 1, s, 0, 0, l->max_batch));
    GOPT_TRY(gopt__bn_setup(&b->bn, K, OH * OW, cfg->eps, cfg->momentum));
    GOPT_TRY(gopt__bn_setup(&b->bn2, K, OH * OW, cfg->eps, cfg->momentum));
    if (b->projection) GOPT_TRY(gopt__bn_setup(&b->bn_s, K, OH * OW, cfg->eps, cfg->momentum));
    GOPT_TRY(add_named(l, prefix, "conv1", &b->conv, NULL));
    GOPT_TRY(add_named(l, prefix, "bn1", NULL, &b->bn));
    GOPT_TRY(add_named(l, prefix, "conv2", &b->conv2, NULL));
    GOPT_TRY(add_named(l, prefix, "bn2", NULL, &b->bn2));
    if (b->projection) {
        GOPT_TRY(add_named(l, prefix, "shortcut.conv", &b->conv_s, NULL));
        GOPT_TRY(add_named(l, prefix, "shortcut.bn", NULL, &b->bn_s));
    }
    l->out_ndim = 3;
    l->out_shape[0] = K;
    l->out_shape[1] = OH;
    l->out_shape[2] = OW;
    size_t act = (size_t)l->max_batch * K * OH * OW;
    size_t cw = gopt__conv_ws_floats(&b->conv), c2 = gopt__conv_ws_floats(&b->conv2);
    if (c2 > cw) cw = c2;
    if (b->projection && gopt__conv_ws_floats(&b->conv_s) > cw) cw = gopt__conv_ws_floats(&b->conv_s);
    /* the fast path feeds conv2 bn1+relu on the fly; otherwise t2 lives in the workspace, the
     * conv workspace after it 64-byte aligned. t3 is left to block_alloc. */
    l->ws_floats = gopt__conv_fuses(&b->conv2) ? cw : (act + 15) / 16 * 16 + cw;
    b->t1 = gopt__aligned_alloc(act * sizeof(float));
    if (b->projection) b->ts = gopt__aligned_alloc(act * sizeof(float));
    if (!b->t1 || (b->projection && !b->ts))
        return GOPT_FAIL(GOPT_ENOMEM, "basic_block activations of %zu floats", act);
    return GOPT_OK;
}

/* t3, or (lean, fast path only) keep conv2's output in the workspace and recompute it in
 * backward: one more conv2 forward for max_batch * out_numel floats less. A net decides
 * this at build; a standalone block stores. */
static gopt_status block_alloc(gopt_layer *l, int recompute_t3) {
    block_state *b = l->st;
    const size_t act = (size_t)l->max_batch * l->out_numel;
    if (recompute_t3 && gopt__conv_fuses(&b->conv2)) {
        if (!b->recompute_t3) l->ws_floats += (act + 15) / 16 * 16; /* once, if a build is retried */
        b->recompute_t3 = 1;
        return GOPT_OK;
    }
    if (!b->t3) b->t3 = gopt__aligned_alloc(act * sizeof(float)); /* kept by a failed build */
    return b->t3 ? GOPT_OK : GOPT_FAIL(GOPT_ENOMEM, "basic_block activations of %zu floats", act);
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
    block_state *b = l->st;
    const size_t act = ((size_t)l->max_batch * l->out_numel + 15) / 16 * 16;
    float *p = l->ws;
    *t3 = b->recompute_t3 ? p : b->t3;
    if (b->recompute_t3) p += act;
    *t2 = p;
    if (!gopt__conv_fuses(&b->conv2)) p += act;
    *cws = p;
}

static void block_forward(gopt_layer *l, const float *x, int n) {
    block_state *b = l->st;
    const int fast = gopt__conv_fuses(&b->conv2);
    float *t3, *t2, *cws;
    block_ws(l, &t3, &t2, &cws);
    const int tr = l->training;
    const float *g1 = gopt__pv(l, b->bn.g_index), *b1 = gopt__pv(l, b->bn.b_index);
    TIMED(l, GOPT_LAYER_CONV2D, gopt__conv_forward(&b->conv, gopt__pv(l, b->conv.w_index), NULL, x, b->t1, n, cws));
    if (fast) { /* t2 = relu(bn1(t1)) is never stored: conv2 applies it per image */
        TIMED(l, GOPT_LAYER_BATCHNORM2D, {
            gopt__bn_forward(&b->bn, g1, b1, b->t1, NULL, NULL, 1, n, tr);
            gopt__bn_coeffs(&b->bn, g1, b1, tr, b->bn.scale, b->bn.shift);
        });
        TIMED(l, GOPT_LAYER_CONV2D,
              gopt__conv_fused_forward(&b->conv2, gopt__pv(l, b->conv2.w_index), NULL, b->t1, t3, n, cws,
                                      b->bn.scale, b->bn.shift));
    } else {
        TIMED(l, GOPT_LAYER_BATCHNORM2D, gopt__bn_forward(&b->bn, g1, b1, b->t1, t2, NULL, 1, n, tr));
        TIMED(l, GOPT_LAYER_CONV2D,
              gopt__conv_forward(&b->conv2, gopt__pv(l, b->conv2.w_index), NULL, t2, t3, n, cws));
    }
    const float *res = x;
    if (b->projection) {
        TIMED(l, GOPT_LAYER_CONV2D,
              gopt__conv_forward(&b->conv_s, gopt__pv(l, b->conv_s.w_index), NULL, x, b->ts, n, cws));
        TIMED(l, GOPT_LAYER_BATCHNORM2D,
              gopt__bn_forward(&b->bn_s, gopt__pv(l, b->bn_s.g_index), gopt__pv(l, b->bn_s.b_index), b->ts, l->out,
                               NULL, 0, n, tr));
        res = l->out;
    }
    TIMED(l, GOPT_LAYER_BATCHNORM2D,
          gopt__bn_forward(&b->bn2, gopt__pv(l, b->bn2.g_index), gopt__pv(l, b->bn2.b_index), t3, l->out, res, 1, n,
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
    block_state *b = l->st;
    const int fast = gopt__conv_fuses(&b->conv2);
    const int64_t total = (int64_t)n * l->out_numel;
    float *t3, *t2, *cws;
    block_ws(l, &t3, &t2, &cws);
    const int tr = l->training;
    const int slot = GOPT_LAYER_TYPE_COUNT; /* backward half of the timer */
    const float *g1 = gopt__pv(l, b->bn.g_index), *b1 = gopt__pv(l, b->bn.b_index);
    if (b->recompute_t3) /* conv2's output again, bit for bit (same weights, inputs, kernels) */
        TIMED(l, slot + GOPT_LAYER_CONV2D, {
            gopt__bn_coeffs(&b->bn, g1, b1, tr, b->bn.scale, b->bn.shift);
            gopt__conv_fused_forward(&b->conv2, gopt__pv(l, b->conv2.w_index), NULL, b->t1, t3, n, cws, b->bn.scale,
                                    b->bn.shift);
        });
    gopt__bn_relu relu2 = {gopt__pv(l, b->bn2.b_index), x, NULL, NULL, NULL};
    if (b->projection) {
        relu2.res = b->ts;
        relu2.res_bn = &b->bn_s;
        relu2.res_gamma = gopt__pv(l, b->bn_s.g_index);
        relu2.res_beta = gopt__pv(l, b->bn_s.b_index);
    }
    TIMED(l, slot + GOPT_LAYER_BATCHNORM2D, /* masks dy in place, t3 <- d(conv2 out) */
          gopt__bn_backward(&b->bn2, gopt__pv(l, b->bn2.g_index), &relu2, gopt__pg_train(l, b->bn2.g_index),
                            gopt__pg_train(l, b->bn2.b_index), t3, dy, t3, n, tr));
    if (b->projection) {
        TIMED(l, slot + GOPT_LAYER_BATCHNORM2D,
              gopt__bn_backward(&b->bn_s, gopt__pv(l, b->bn_s.g_index), NULL, gopt__pg_train(l, b->bn_s.g_index),
                                gopt__pg_train(l, b->bn_s.b_index), b->ts, dy, b->ts, n, tr));
        TIMED(l, slot + GOPT_LAYER_CONV2D,
              gopt__conv_backward(&b->conv_s, gopt__pv(l, b->conv_s.w_index), gopt__pg_train(l, b->conv_s.w_index), NULL, x,
                                  b->ts, NULL, 0, n, cws));
    }
    float *g2; /* d(bn1+relu output) */
    if (fast) {
        TIMED(l, slot + GOPT_LAYER_CONV2D, {
            gopt__bn_coeffs(&b->bn, g1, b1, tr, b->bn.scale, b->bn.shift);
            gopt__conv_fused_backward(&b->conv2, gopt__pv(l, b->conv2.w_index), gopt__pg_train(l, b->conv2.w_index), NULL,
                                     b->t1, t3, t3, 0, n, cws, b->bn.scale, b->bn.shift);
        });
        g2 = t3;
    } else {
        TIMED(l, slot + GOPT_LAYER_BATCHNORM2D, gopt__bn_apply(&b->bn, g1, b1, b->t1, t2, 1, n, tr));
        TIMED(l, slot + GOPT_LAYER_CONV2D,
              gopt__conv_backward(&b->conv2, gopt__pv(l, b->conv2.w_index), gopt__pg_train(l, b->conv2.w_index), NULL, t2,
                                  t3, t2, 0, n, cws));
        g2 = t2;
    }
    gopt__bn_relu relu1 = {b1, NULL, NULL, NULL, NULL};
    TIMED(l, slot + GOPT_LAYER_BATCHNORM2D,
          gopt__bn_backward(&b->bn, g1, &relu1, gopt__pg_train(l, b->bn.g_index), gopt__pg_train(l, b->bn.b_index), b->t1, g2,
                            b->t1, n, tr));
    TIMED(l, slot + GOPT_LAYER_CONV2D,
          gopt__conv_backward(&b->conv, gopt__pv(l, b->conv.w_index), gopt__pg_train(l, b->conv.w_index), NULL, x, b->t1, dx,
                              0, n, cws));
    if (!dx) return;
    if (b->projection)
        TIMED(l, slot + GOPT_LAYER_CONV2D,
              gopt__conv_backward(&b->conv_s, gopt__pv(l, b->conv_s.w_index), NULL, NULL, x, b->ts, dx, 1, n, cws));
    else
        TIMED(l, slot + GOPT_LAYER_BASIC_BLOCK, add_into(dx, dy, total));
}

static void block_free(gopt_layer *l) {
    block_state *b = l->st;
    if (!b) return;
    gopt__aligned_free(b->t1);
    gopt__aligned_free(b->t3);
    gopt__aligned_free(b->ts);
    gopt__bn_free(&b->bn);
    gopt__bn_free(&b->bn2);
    gopt__bn_free(&b->bn_s);
}

static gopt_status block_init(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng) {
    block_state *b = l->st;
    GOPT_TRY(gopt__init_conv(l, &b->conv, spec, rng));
    gopt__init_bn(l, &b->bn);
    GOPT_TRY(gopt__init_conv(l, &b->conv2, spec, rng));
    gopt__init_bn(l, &b->bn2);
    if (b->projection) {
        GOPT_TRY(gopt__init_conv(l, &b->conv_s, spec, rng));
        gopt__init_bn(l, &b->bn_s);
    }
    return GOPT_OK;
}

static double block_flops(const gopt_layer *l) {
    const block_state *b = l->st;
    double f = gopt__conv_flops(&b->conv) + gopt__conv_flops(&b->conv2);
    return b->projection ? f + gopt__conv_flops(&b->conv_s) : f;
}

static int block_bns(gopt_layer *l, gopt__bn **out3) {
    block_state *b = l->st;
    out3[0] = &b->bn;
    out3[1] = &b->bn2;
    if (b->projection) out3[2] = &b->bn_s;
    return b->projection ? 3 : 2;
}

/* No recompute: forward updates three batchnorms' statistics and writes t1 and ts. */
static const gopt__layer_vt block_vt = {
    .type = GOPT_LAYER_BASIC_BLOCK,
    .flags = GOPT__VT_SELF_TIMED | GOPT__VT_LEAN,
    .setup = block_setup,
    .alloc = block_alloc,
    .free = block_free,
    .init_params = block_init,
    .forward = block_forward,
    .backward = block_backward,
    .flops = block_flops,
    .bns = block_bns,
};

const gopt__layer_vt *gopt__basic_block_vtable(void) { return &block_vt; }
