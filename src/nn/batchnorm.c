/* batchnorm2d (torch.nn.BatchNorm2d): (N,C,H,W) -> same, y = gamma (x - mean)/sqrt(var + eps)
 * + beta, batch statistics in training (running statistics updated), running ones in eval;
 * optional fused ReLU (cfg.relu). batchnorm1d (torch.nn.BatchNorm1d): the same over (N,C) or
 * (N,C,L), a plane of L (or 1) values per sample and channel, so the statistics run over N
 * (N*L) and M = N (N*L) in the unbiased running variance. The kernels are in nn/conv.c. */
#include "core/common.h"
#include "nn/layer.h"

/* ---- (N,C) rows: one value per sample and channel (batchnorm1d without L, the residual
 * block). The per-plane kernels of conv.c would make a call per element here; these walk
 * the rows in stripes of ROW_STRIPE channels (contiguous in memory) with double sums per
 * channel. They keep conv.c's conventions (save_mean / save_invstd, the running update with
 * M = n, scale = gamma invstd, shift = beta - mean scale, y = x scale + shift), so
 * gopt__bn_apply and gopt__bn_backward stay valid on what they leave. */
#define ROW_STRIPE 64
#define ROW_OMP_MIN 65536 /* elements: below this one thread */

/* y = [relu](x scale + shift) over rows 0..n-1, columns c0..c0+w-1 of (n, C). */
static inline void rows_affine(const float *x, float *y, int C, int c0, int w, int n, const float *scale,
                               const float *shift, int relu) {
    for (int i = 0; i < n; i++) {
        const float *xr = x + (int64_t)i * C + c0;
        float *yr = y + (int64_t)i * C + c0;
        for (int j = 0; j < w; j++) {
            float v = xr[j] * scale[j] + shift[j];
            yr[j] = relu && !(v > 0.0f) ? 0.0f : v;
        }
    }
}

/* The per-process forward; update_running = 0 (a failed synchronisation falling back to
 * it) leaves the running statistics alone. */
static void rows_forward_local(gopt__bn *bn, const float *gamma, const float *beta, const float *x, float *y,
                               int relu, int n, int training, int update_running) {
    const int C = bn->C;
    const int stripes = (C + ROW_STRIPE - 1) / ROW_STRIPE;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if ((int64_t)n * C > ROW_OMP_MIN)
    for (int sidx = 0; sidx < stripes; sidx++) {
        const int c0 = sidx * ROW_STRIPE, w = C - c0 < ROW_STRIPE ? C - c0 : ROW_STRIPE;
        float scale[ROW_STRIPE], shift[ROW_STRIPE];
        if (training) {
            double sum[ROW_STRIPE] = {0}, sq[ROW_STRIPE] = {0};
            float mean[ROW_STRIPE];
            for (int i = 0; i < n; i++) {
                const float *xr = x + (int64_t)i * C + c0;
                for (int j = 0; j < w; j++) sum[j] += xr[j];
            }
            for (int j = 0; j < w; j++) mean[j] = (float)(sum[j] / n);
            for (int i = 0; i < n; i++) {
                const float *xr = x + (int64_t)i * C + c0;
                for (int j = 0; j < w; j++) {
                    float d = xr[j] - mean[j];
                    sq[j] += (double)d * d;
                }
            }
            for (int j = 0; j < w; j++) {
                const int c = c0 + j;
                double var = sq[j] / n, unbiased = n > 1 ? sq[j] / (n - 1) : var;
                bn->save_mean[c] = mean[j];
                bn->save_invstd[c] = (float)(1.0 / sqrt(var + bn->eps));
                float m = bn->momentum;
                if (update_running) {
                    bn->running_mean[c] = (1.0f - m) * bn->running_mean[c] + m * mean[j];
                    bn->running_var[c] = (1.0f - m) * bn->running_var[c] + m * (float)unbiased;
                }
            }
        }
        for (int j = 0; j < w; j++) {
            const int c = c0 + j;
            float m = training ? bn->save_mean[c] : bn->running_mean[c];
            float is = training ? bn->save_invstd[c] : (float)(1.0 / sqrt((double)bn->running_var[c] + bn->eps));
            scale[j] = gamma[c] * is;
            shift[j] = beta[c] - m * scale[j];
        }
        rows_affine(x, y, C, c0, w, n, scale, shift, relu);
    }
}

/* The synchronised training forward (nn/kernels.h, gopt__bn_sync): per-channel S = sum x and
 * Q = sum x^2 in double, [S (C), Q (C), n] summed over the processes, then mean = S/M and
 * var = Q/M - mean^2 with the global M. */
static void rows_forward_sync(gopt__bn *bn, const float *gamma, const float *beta, const float *x, float *y,
                              int relu, int n) {
    const int C = bn->C;
    const int stripes = (C + ROW_STRIPE - 1) / ROW_STRIPE;
    double *buf = bn->sync->buf;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if ((int64_t)n * C > ROW_OMP_MIN)
    for (int sidx = 0; sidx < stripes; sidx++) {
        const int c0 = sidx * ROW_STRIPE, w = C - c0 < ROW_STRIPE ? C - c0 : ROW_STRIPE;
        double sum[ROW_STRIPE] = {0}, sq[ROW_STRIPE] = {0};
        for (int i = 0; i < n; i++) {
            const float *xr = x + (int64_t)i * C + c0;
            for (int j = 0; j < w; j++) {
                double v = xr[j];
                sum[j] += v;
                sq[j] += v * v;
            }
        }
        for (int j = 0; j < w; j++) {
            buf[c0 + j] = sum[j];
            buf[C + c0 + j] = sq[j];
        }
    }
    buf[2 * C] = (double)n;
    if (gopt__bn_sync_sum(bn, 2 * C + 1) != GOPT_OK) {
        rows_forward_local(bn, gamma, beta, x, y, relu, n, 1, 0);
        return;
    }
    const double M = buf[2 * C];
    bn->sync->count = M;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if ((int64_t)n * C > ROW_OMP_MIN)
    for (int sidx = 0; sidx < stripes; sidx++) {
        const int c0 = sidx * ROW_STRIPE, w = C - c0 < ROW_STRIPE ? C - c0 : ROW_STRIPE;
        float scale[ROW_STRIPE], shift[ROW_STRIPE];
        for (int j = 0; j < w; j++) {
            const int c = c0 + j;
            double mean = buf[c] / M, var = buf[C + c] / M - mean * mean;
            if (var < 0.0) var = 0.0; /* rounding of Q/M - mean^2; a NaN stays NaN */
            double unbiased = M > 1.0 ? var * M / (M - 1.0) : var;
            bn->save_mean[c] = (float)mean;
            bn->save_invstd[c] = (float)(1.0 / sqrt(var + bn->eps));
            float m = bn->momentum;
            bn->running_mean[c] = (1.0f - m) * bn->running_mean[c] + m * (float)mean;
            bn->running_var[c] = (1.0f - m) * bn->running_var[c] + m * (float)unbiased;
            scale[j] = gamma[c] * bn->save_invstd[c];
            shift[j] = beta[c] - bn->save_mean[c] * scale[j];
        }
        rows_affine(x, y, C, c0, w, n, scale, shift, relu);
    }
}

void gopt__bn_rows_forward(gopt__bn *bn, const float *gamma, const float *beta, const float *x, float *y, int relu,
                           int n, int training) {
    if (training && bn->sync)
        rows_forward_sync(bn, gamma, beta, x, y, relu, n);
    else
        rows_forward_local(bn, gamma, beta, x, y, relu, n, training, 1);
}

/* The synchronised training backward: local sums (g masked first with a fused relu),
 * dgamma/dbeta from them, [sum g (C), sum g xhat (C)] summed over the processes and divided
 * by the global count for dx. A failed sum falls back to the local sums, kept after the 2C
 * handed to fn. */
static void rows_backward_sync(const gopt__bn *bn, const float *gamma, const float *relu_beta, float *dgamma,
                               float *dbeta, const float *x, float *g, float *dx, int n) {
    const int C = bn->C;
    const int stripes = (C + ROW_STRIPE - 1) / ROW_STRIPE;
    double *buf = bn->sync->buf, *local = buf + 2 * C + 1;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if ((int64_t)n * C > ROW_OMP_MIN)
    for (int sidx = 0; sidx < stripes; sidx++) {
        const int c0 = sidx * ROW_STRIPE, w = C - c0 < ROW_STRIPE ? C - c0 : ROW_STRIPE;
        double sg[ROW_STRIPE] = {0}, sgx[ROW_STRIPE] = {0};
        for (int i = 0; i < n; i++) {
            const float *xr = x + (int64_t)i * C + c0;
            float *gr = g + (int64_t)i * C + c0;
            if (relu_beta) /* the fused relu's mask, from the forward's expression */
                for (int j = 0; j < w; j++) {
                    const int c = c0 + j;
                    float sc = gamma[c] * bn->save_invstd[c];
                    float v = xr[j] * sc + (relu_beta[c] - bn->save_mean[c] * sc);
                    gr[j] = v > 0.0f ? gr[j] : 0.0f;
                }
            for (int j = 0; j < w; j++) {
                const int c = c0 + j;
                sg[j] += gr[j];
                sgx[j] += (double)gr[j] * ((xr[j] - bn->save_mean[c]) * bn->save_invstd[c]);
            }
        }
        for (int j = 0; j < w; j++) {
            const int c = c0 + j;
            if (dgamma) dgamma[c] += (float)sgx[j];
            if (dbeta) dbeta[c] += (float)sg[j];
            buf[c] = local[c] = sg[j];
            buf[C + c] = local[C + c] = sgx[j];
        }
    }
    double M = bn->sync->count > 0.0 ? bn->sync->count : (double)n;
    const double *sums = buf;
    if (gopt__bn_sync_sum(bn, 2 * C) != GOPT_OK) {
        M = (double)n;
        sums = local;
    }
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if ((int64_t)n * C > ROW_OMP_MIN)
    for (int sidx = 0; sidx < stripes; sidx++) {
        const int c0 = sidx * ROW_STRIPE, w = C - c0 < ROW_STRIPE ? C - c0 : ROW_STRIPE;
        float mean[ROW_STRIPE], is[ROW_STRIPE], k[ROW_STRIPE], mg[ROW_STRIPE], mgx[ROW_STRIPE];
        for (int j = 0; j < w; j++) {
            const int c = c0 + j;
            mean[j] = bn->save_mean[c];
            is[j] = bn->save_invstd[c];
            k[j] = gamma[c] * is[j];
            mg[j] = (float)(sums[c] / M);
            mgx[j] = (float)(sums[C + c] / M);
        }
        for (int i = 0; i < n; i++) {
            const float *xr = x + (int64_t)i * C + c0;
            const float *gr = g + (int64_t)i * C + c0;
            float *dr = dx + (int64_t)i * C + c0;
            for (int j = 0; j < w; j++) dr[j] = k[j] * (gr[j] - mg[j] - ((xr[j] - mean[j]) * is[j]) * mgx[j]);
        }
    }
}

void gopt__bn_rows_backward(const gopt__bn *bn, const float *gamma, const float *relu_beta, float *dgamma,
                            float *dbeta, const float *x, float *g, float *dx, int n, int training) {
    if (training && bn->sync) {
        rows_backward_sync(bn, gamma, relu_beta, dgamma, dbeta, x, g, dx, n);
        return;
    }
    const int C = bn->C;
    const int stripes = (C + ROW_STRIPE - 1) / ROW_STRIPE;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if ((int64_t)n * C > ROW_OMP_MIN)
    for (int sidx = 0; sidx < stripes; sidx++) {
        const int c0 = sidx * ROW_STRIPE, w = C - c0 < ROW_STRIPE ? C - c0 : ROW_STRIPE;
        float mean[ROW_STRIPE], is[ROW_STRIPE], k[ROW_STRIPE], mg[ROW_STRIPE], mgx[ROW_STRIPE];
        double sg[ROW_STRIPE] = {0}, sgx[ROW_STRIPE] = {0};
        for (int j = 0; j < w; j++) {
            const int c = c0 + j;
            mean[j] = training ? bn->save_mean[c] : bn->running_mean[c];
            is[j] = training ? bn->save_invstd[c] : (float)(1.0 / sqrt((double)bn->running_var[c] + bn->eps));
            k[j] = gamma[c] * is[j];
        }
        for (int i = 0; i < n; i++) {
            const float *xr = x + (int64_t)i * C + c0;
            float *gr = g + (int64_t)i * C + c0;
            if (relu_beta) /* the fused relu's mask, from the forward's expression */
                for (int j = 0; j < w; j++) {
                    float sc = gamma[c0 + j] * is[j];
                    float v = xr[j] * sc + (relu_beta[c0 + j] - mean[j] * sc);
                    gr[j] = v > 0.0f ? gr[j] : 0.0f;
                }
            for (int j = 0; j < w; j++) {
                sg[j] += gr[j];
                sgx[j] += (double)gr[j] * ((xr[j] - mean[j]) * is[j]);
            }
        }
        for (int j = 0; j < w; j++) {
            if (dgamma) dgamma[c0 + j] += (float)sgx[j];
            if (dbeta) dbeta[c0 + j] += (float)sg[j];
            mg[j] = (float)(sg[j] / n);
            mgx[j] = (float)(sgx[j] / n);
        }
        for (int i = 0; i < n; i++) {
            const float *xr = x + (int64_t)i * C + c0;
            const float *gr = g + (int64_t)i * C + c0;
            float *dr = dx + (int64_t)i * C + c0;
            if (training)
                for (int j = 0; j < w; j++) dr[j] = k[j] * (gr[j] - mg[j] - ((xr[j] - mean[j]) * is[j]) * mgx[j]);
            else
                for (int j = 0; j < w; j++) dr[j] = k[j] * gr[j];
        }
    }
}

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
    if (bn->HW == 1) {
        gopt__bn_rows_forward(bn, gopt__pv(l, bn->g_index), gopt__pv(l, bn->b_index), x, l->out, l->cfg.relu, n,
                              l->training);
        return;
    }
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
    if (bn->HW == 1) {
        gopt__bn_rows_backward(bn, gopt__pv(l, bn->g_index), l->cfg.relu ? gopt__pv(l, bn->b_index) : NULL,
                               gopt__pg_train(l, bn->g_index), gopt__pg_train(l, bn->b_index), x, dy, dx ? dx : dy, n,
                               l->training);
        return;
    }
    /* the relu's mask is recomputed from x: dy may live in l->out (the net's in-place gradients) */
    gopt__bn_relu relu = {gopt__pv(l, bn->b_index), NULL, NULL, NULL, NULL};
    gopt__bn_backward(bn, gopt__pv(l, bn->g_index), l->cfg.relu ? &relu : NULL, gopt__pg_train(l, bn->g_index),
                      gopt__pg_train(l, bn->b_index), x, dy, dx ? dx : dy, n, l->training);
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
