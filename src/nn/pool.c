/* Pooling: maxpool2d (torch.nn.MaxPool2d: (N,C,H,W) -> (N,C,H',W'), padding counts as -inf,
 * floor mode, the first maximum in scan order receives the gradient) and global_avgpool
 * ((N,C,H,W) -> (N,C), torch.nn.AdaptiveAvgPool2d(1) + flatten). */
#include "core/common.h"
#include "nn/layer.h"

#define OMP_MIN 16384

static int maxpool_scalar; /* gopt__maxpool_set_scalar */

void gopt__maxpool_set_scalar(int on) { maxpool_scalar = on; }

typedef struct maxpool_state {
    int32_t *argmax; /* max_batch * out_numel: the input index of each output's maximum, -1 none */
} maxpool_state;

static gopt_status maxpool_setup(gopt_layer *l, const char *prefix) {
    const gopt_layer_config *cfg = &l->cfg;
    const int64_t *in = l->in_shape;
    GOPT_TRY(gopt__need_chw(l));
    int k = cfg->kernel, s = cfg->stride ? cfg->stride : cfg->kernel, p = cfg->padding;
    if (k < 1 || s < 1 || p < 0 || p > k / 2)
        return GOPT_FAIL(GOPT_EINVAL, "maxpool2d: kernel=%d stride=%d padding=%d (need padding <= kernel/2)", k, s, p);
    l->cfg.stride = s;
    if (in[1] + 2 * p < k || in[2] + 2 * p < k) {
        char sh[96];
        gopt__shape_fmt(sh, sizeof sh, "N", 3, in);
        return GOPT_FAIL(GOPT_ESHAPE, "maxpool2d: kernel %d larger than the padded input %s", k, sh);
    }
    GOPT_TRY(gopt__layer_state(l, sizeof(maxpool_state)));
    l->out_ndim = 3;
    l->out_shape[0] = in[0];
    l->out_shape[1] = (in[1] + 2 * p - k) / s + 1;
    l->out_shape[2] = (in[2] + 2 * p - k) / s + 1;
    return GOPT_OK;
}

static gopt_status maxpool_alloc(gopt_layer *l, int lean) {
    maxpool_state *st = l->st;
    size_t n = (size_t)l->max_batch * (size_t)l->out_numel;
    if (!st->argmax) st->argmax = gopt__aligned_alloc(n * sizeof(int32_t)); /* kept by a failed build */
    return st->argmax ? GOPT_OK : GOPT_FAIL(GOPT_ENOMEM, "maxpool2d indices of %zu", n);
}

static void maxpool_free(gopt_layer *l) {
    if (l->st) gopt__aligned_free(((maxpool_state *)l->st)->argmax);
}

/* v replaces the running maximum m: greater, or NaN over a number (NaN propagates; the
 * first maximum in scan order is kept on ties) */
static inline int maxpool_takes(float v, float m) { return (v > m) | (isnan(v) & !isnan(m)); }

/* kernel 2, stride 2, no padding (the common case: every window inside the input): the
 * generic loop's result without its bounds checks, outputs ox0..OW-1 of the output row whose
 * input rows are r0, r1 (r0 at index `base` of the plane) */
static void maxpool_row_2x2(const float *r0, const float *r1, float *y, int32_t *a, int32_t base, int W, int ox0,
                            int OW) {
    for (int ox = ox0; ox < OW; ox++) {
        float m = r0[2 * ox];
        int32_t i = base + 2 * ox;
        const float v1 = r0[2 * ox + 1], v2 = r1[2 * ox], v3 = r1[2 * ox + 1];
        int t = maxpool_takes(v1, m);
        m = t ? v1 : m;
        i = t ? base + 2 * ox + 1 : i;
        t = maxpool_takes(v2, m);
        m = t ? v2 : m;
        i = t ? base + W + 2 * ox : i;
        t = maxpool_takes(v3, m);
        m = t ? v3 : m;
        i = t ? base + W + 2 * ox + 1 : i;
        y[ox] = m;
        a[ox] = i;
    }
}

static void maxpool_forward_2x2(const float *xp, float *yp, int32_t *ap, int W, int OH, int OW) {
    for (int oy = 0; oy < OH; oy++)
        maxpool_row_2x2(xp + 2 * oy * W, xp + (2 * oy + 1) * W, yp + oy * OW, ap + oy * OW, 2 * oy * W, W, 0, OW);
}

#if defined(__GNUC__) && defined(__x86_64__)
#  include <immintrin.h>
#  define MAXPOOL_AVX2 1
/* maxpool_forward_2x2 with AVX2, 8 outputs at a time (the same rule, lane by lane: the same
 * bits and indices), the scalar loop for the rest of a row */
__attribute__((target("avx2"))) static void maxpool_forward_2x2_avx2(const float *xp, float *yp, int32_t *ap,
                                                                     int W, int OH, int OW) {
    const __m256i lane2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    for (int oy = 0; oy < OH; oy++) {
        const float *r0 = xp + 2 * oy * W, *r1 = r0 + W;
        const int32_t base = 2 * oy * W;
        int ox = 0;
        for (; ox + 8 <= OW; ox += 8) {
            const __m256 a0 = _mm256_loadu_ps(r0 + 2 * ox), a1 = _mm256_loadu_ps(r0 + 2 * ox + 8);
            const __m256 b0 = _mm256_loadu_ps(r1 + 2 * ox), b1 = _mm256_loadu_ps(r1 + 2 * ox + 8);
            /* even and odd columns of each row, in order (shuffle within lanes, then 64-bit) */
            const __m256 v[4] = {
                _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0x88)), 0xd8)),
                _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a0, a1, 0xdd)), 0xd8)),
                _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(b0, b1, 0x88)), 0xd8)),
                _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(b0, b1, 0xdd)), 0xd8))};
            const __m256i i0 = _mm256_add_epi32(_mm256_set1_epi32(base + 2 * ox), lane2);
            const int32_t off[4] = {0, 1, W, W + 1};
            __m256 m = v[0];
            __m256 idx = _mm256_castsi256_ps(i0);
            for (int t = 1; t < 4; t++) {
                /* v > m, or v NaN and m not */
                const __m256 take = _mm256_or_ps(
                    _mm256_cmp_ps(v[t], m, _CMP_GT_OQ),
                    _mm256_andnot_ps(_mm256_cmp_ps(m, m, _CMP_UNORD_Q), _mm256_cmp_ps(v[t], v[t], _CMP_UNORD_Q)));
                m = _mm256_blendv_ps(m, v[t], take);
                idx = _mm256_blendv_ps(idx, _mm256_castsi256_ps(_mm256_add_epi32(i0, _mm256_set1_epi32(off[t]))), take);
            }
            _mm256_storeu_ps(yp + oy * OW + ox, m);
            _mm256_storeu_si256((__m256i *)(ap + oy * OW + ox), _mm256_castps_si256(idx));
        }
        maxpool_row_2x2(r0, r1, yp + oy * OW, ap + oy * OW, base, W, ox, OW);
    }
}
#endif

static void maxpool_forward(gopt_layer *l, const float *x, int n) {
    int32_t *argmax = ((maxpool_state *)l->st)->argmax;
    const int C = (int)l->in_shape[0], H = (int)l->in_shape[1], W = (int)l->in_shape[2];
    const int OH = (int)l->out_shape[1], OW = (int)l->out_shape[2];
    const int k = l->cfg.kernel, s = l->cfg.stride, pad = l->cfg.padding;
    const int64_t planes = (int64_t)n * C;
    if (k == 2 && s == 2 && pad == 0) {
        void (*plane)(const float *, float *, int32_t *, int, int, int) = maxpool_forward_2x2;
#ifdef MAXPOOL_AVX2
        if (!maxpool_scalar && __builtin_cpu_supports("avx2")) plane = maxpool_forward_2x2_avx2;
#endif
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (planes * H * W > OMP_MIN)
        for (int64_t pl = 0; pl < planes; pl++)
            plane(x + pl * H * W, l->out + pl * OH * OW, argmax + pl * OH * OW, W, OH, OW);
        return;
    }
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (planes * H * W > OMP_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * H * W;
        float *yp = l->out + pl * OH * OW;
        int32_t *ap = argmax + pl * OH * OW;
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
                        if (bi < 0 || maxpool_takes(v, best)) {
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
    const int32_t *argmax = ((maxpool_state *)l->st)->argmax;
    const int C = (int)l->in_shape[0], H = (int)l->in_shape[1], W = (int)l->in_shape[2];
    const int64_t P = l->out_shape[1] * l->out_shape[2];
    const int64_t planes = (int64_t)n * C;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (planes * H * W > OMP_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dp = dx + pl * H * W;
        memset(dp, 0, sizeof(float) * (size_t)H * W);
        for (int64_t p = 0; p < P; p++) {
            int32_t a = argmax[pl * P + p];
            if (a >= 0) dp[a] += dy[pl * P + p];
        }
    }
}

static gopt_status avgpool_setup(gopt_layer *l, const char *prefix) {
    GOPT_TRY(gopt__need_chw(l));
    l->out_ndim = 1;
    l->out_shape[0] = l->in_shape[0];
    return GOPT_OK;
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

static const gopt__layer_vt maxpool_vt = {
    .type = GOPT_LAYER_MAXPOOL2D,
    .setup = maxpool_setup,
    .alloc = maxpool_alloc,
    .free = maxpool_free,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
    .recompute = maxpool_forward, /* rewrites the same indices */
};

static const gopt__layer_vt avgpool_vt = {
    .type = GOPT_LAYER_GLOBAL_AVGPOOL,
    .setup = avgpool_setup,
    .forward = avgpool_forward,
    .backward = avgpool_backward,
    .recompute = avgpool_forward,
};

const gopt__layer_vt *gopt__maxpool2d_vtable(void) { return &maxpool_vt; }
const gopt__layer_vt *gopt__global_avgpool_vtable(void) { return &avgpool_vt; }
