/* Implicit-GEMM AVX2 + FMA convolution (see nn/kernels.h, gopt__conv_impl_*) for the
 * shapes Winograd does not take on a CPU without AVX-512: ResNet's stem (3 input channels),
 * its stride-2 3x3 convolutions and its 1x1 stride-2 projections. No im2col: each image is
 * copied once into its s x s polyphase planes, zero-padded,
 *     xp[c][py][px][i][j] = x[c][s i + py - pad][s j + px - pad]   (0 outside the image),
 * so that the input under tap (c, ky, kx) for 8 outputs (oy, ox .. ox+7) of one output row
 * is the 8 contiguous floats at xp + off[r] + oy Wp + ox, off[r] = ((c sp + ky%s) sp +
 * kx%s) Hp Wp + (ky/s) Wp + kx/s (sp = min(s, R) phases are kept). Per image, with the
 * images split into contiguous ranges over the threads:
 *  - forward: y = W cols, 6 output channels x 16 pixels per register tile, the 16 pixels'
 *    rows of cols read through off[] straight from xp;
 *  - dX: dcols = W^T dY in 6 x 16 tiles over the taps, each tile added into a zeroed
 *    polyphase dX at off[], which is then interleaved back into dx (= or +=);
 *  - dW: dW^T[r][k] += sum_p cols[r][p] dY^T[p][k] in 6 x 16 tiles held in registers over
 *    all of the image's pixels (dY^T transposed once per image), added into the thread's
 *    partial; the partials are combined in thread order.
 * Every sum runs in a fixed order: forward and dX are the same bits for any thread count,
 * dW differs between thread counts only in rounding. Needs OW % 8 == 0 and K % 8 == 0. */
#include <string.h>

#include "core/common.h"
#include "nn/kernels.h"

#if GOPT__CONV_HAVE_AVX512 /* x86-64 with GCC or clang: target attributes */
#  include <immintrin.h>
#  define IT __attribute__((target("avx2,fma")))
#  define INL static inline __attribute__((always_inline))

typedef struct igeom {
    int s, sp, Hp, Wp, CRS, G;   /* stride, phases kept per axis, plane, taps, 8-pixel groups */
    int64_t plane, xp_n, P;      /* Hp Wp, floats of one polyphase image, output pixels */
} igeom;

static igeom impl_geom(const gopt__conv *c) {
    igeom g;
    g.s = c->stride;
    g.sp = c->R < c->stride ? c->R : c->stride;
    g.Hp = c->OH + (c->R - 1) / c->stride;
    g.Wp = c->OW + (c->R - 1) / c->stride;
    g.CRS = c->C * c->R * c->R;
    g.P = (int64_t)c->OH * c->OW;
    g.G = (int)(g.P / 8);
    g.plane = (int64_t)g.Hp * g.Wp;
    g.xp_n = (int64_t)c->C * g.sp * g.sp * g.plane;
    return g;
}

static size_t r16(size_t n) { return (n + 15) / 16 * 16; }

int gopt__conv_impl_shape_ok(const gopt__conv *c) {
    if (c->OW % 8 != 0 || c->K % 8 != 0) return 0;
    /* the 32-bit tap offsets and the per-image scratch stay small */
    const igeom g = impl_geom(c);
    return g.xp_n < (1 << 26) && (int64_t)g.CRS * c->K < (1 << 26);
}

/* shared: packed W or W^T, off[] (as CRS int32 slots); per thread: xp, dxp, dY^T, dW^T */
static size_t shared_floats(const gopt__conv *c, const igeom *g) {
    const size_t a = (size_t)(c->K + 5) / 6 * 6 * g->CRS, b = (size_t)(g->CRS + 5) / 6 * 6 * c->K;
    return r16(a > b ? a : b) + r16((size_t)g->CRS);
}

static size_t slot_floats(const gopt__conv *c, const igeom *g) {
    return 2 * r16((size_t)g->xp_n) + r16((size_t)g->P * c->K) + r16((size_t)g->CRS * c->K);
}

size_t gopt__conv_impl_ws_floats(const gopt__conv *c) {
    const igeom g = impl_geom(c);
    return shared_floats(c, &g) + slot_floats(c, &g) * (size_t)c->slots;
}

static void tap_offsets(const gopt__conv *c, const igeom *g, int32_t *off) {
    const int R = c->R, s = g->s, sp = g->sp;
    for (int ci = 0; ci < c->C; ci++)
        for (int ky = 0; ky < R; ky++)
            for (int kx = 0; kx < R; kx++)
                off[(ci * R + ky) * R + kx] =
                    (int32_t)(((int64_t)(ci * sp + ky % s) * sp + kx % s) * g->plane + (int64_t)(ky / s) * g->Wp +
                              kx / s);
}

/* xp = the polyphase planes of one image x (C,H,W), writing only the positions that hold
 * an input pixel: the rest (the padding) is the same for every image, zeroed once per call
 * by the caller. Stride 2 splits each input row into its two phases 16 pixels at a time. */
IT static void pack_image(const gopt__conv *c, const igeom *g, const float *x, float *xp) {
    const int s = g->s, sp = g->sp, pad = c->pad, H = c->H, W = c->W;
    for (int ci = 0; ci < c->C; ci++)
        for (int iy = 0; iy < H; iy++) {
            const int py = (iy + pad) % s, i = (iy + pad) / s;
            if (py >= sp || i >= g->Hp) continue; /* a row no tap reads */
            const float *src = x + ((int64_t)ci * H + iy) * W;
            float *rows = xp + ((int64_t)(ci * sp + py) * sp) * g->plane + (int64_t)i * g->Wp;
            int ix = 0;
            if (s == 1) {
                memcpy(rows + pad, src, sizeof(float) * (size_t)(W + pad <= g->Wp ? W : g->Wp - pad));
                continue;
            }
            if (s == 2) { /* even ix go to phase pad%2 at (ix + pad)/2, odd ix to the other */
                const int pe = pad % 2, po = (pad + 1) % 2;
                float *de = pe < sp ? rows + (int64_t)pe * g->plane : NULL;
                float *dq = po < sp ? rows + (int64_t)po * g->plane : NULL;
                for (; ix + 16 <= W && (ix + 15 + pad) / 2 < g->Wp; ix += 16) {
                    const __m256 v0 = _mm256_loadu_ps(src + ix), v1 = _mm256_loadu_ps(src + ix + 8);
                    if (de)
                        _mm256_storeu_ps(de + (ix + pad) / 2,
                                         _mm256_castpd_ps(_mm256_permute4x64_pd(
                                             _mm256_castps_pd(_mm256_shuffle_ps(v0, v1, 0x88)), 0xD8)));
                    if (dq)
                        _mm256_storeu_ps(dq + (ix + 1 + pad) / 2,
                                         _mm256_castpd_ps(_mm256_permute4x64_pd(
                                             _mm256_castps_pd(_mm256_shuffle_ps(v0, v1, 0xDD)), 0xD8)));
                }
            }
            for (; ix < W; ix++) {
                const int px = (ix + pad) % s, j = (ix + pad) / s;
                if (px < sp && j < g->Wp) rows[(int64_t)px * g->plane + j] = src[ix];
            }
        }
}

/* dx (C,H,W) = or += the polyphase dxp: every input pixel lies in exactly one phase */
IT static void unpack_dx(const gopt__conv *c, const igeom *g, const float *dxp, float *dx, int acc) {
    const int s = g->s, pad = c->pad, H = c->H, W = c->W;
    for (int ci = 0; ci < c->C; ci++)
        for (int iy = 0; iy < H; iy++) {
            float *d = dx + ((int64_t)ci * H + iy) * W;
            const int py = (iy + pad) % s, i = (iy + pad) / s;
            if (py >= g->sp || i >= g->Hp) { /* a row no tap reads (R < s): no gradient */
                if (!acc) memset(d, 0, sizeof(float) * (size_t)W);
                continue;
            }
            const float *rows = dxp + ((int64_t)(ci * g->sp + py) * g->sp) * g->plane + (int64_t)i * g->Wp;
            if (s == 1) {
                const float *r = rows + pad;
                if (acc)
                    for (int ix = 0; ix < W; ix++) d[ix] += r[ix];
                else
                    memcpy(d, r, sizeof(float) * (size_t)W);
                continue;
            }
            int ix = 0;
            if (s == 2) { /* even ix from phase pad%2 at j = m + pad/2, odd from the other */
                const int pa = pad % 2, pb = (pad + 1) % 2;
                const float *a = rows + (int64_t)pa * g->plane + pad / 2, *b = rows + (int64_t)pb * g->plane + (pad + 1) / 2;
                const int has_b = pb < g->sp;
                for (; ix + 16 <= W && (ix + 15 + pad) / 2 < g->Wp; ix += 16) {
                    const int m = ix / 2;
                    const __m256 va = pa < g->sp ? _mm256_loadu_ps(a + m) : _mm256_setzero_ps();
                    const __m256 vb = has_b ? _mm256_loadu_ps(b + m) : _mm256_setzero_ps();
                    const __m256 lo = _mm256_unpacklo_ps(va, vb), hi = _mm256_unpackhi_ps(va, vb);
                    __m256 o0 = _mm256_permute2f128_ps(lo, hi, 0x20), o1 = _mm256_permute2f128_ps(lo, hi, 0x31);
                    if (acc) {
                        o0 = _mm256_add_ps(o0, _mm256_loadu_ps(d + ix));
                        o1 = _mm256_add_ps(o1, _mm256_loadu_ps(d + ix + 8));
                    }
                    _mm256_storeu_ps(d + ix, o0);
                    _mm256_storeu_ps(d + ix + 8, o1);
                }
            }
            for (; ix < W; ix++) {
                const int px = (ix + pad) % s, j = (ix + pad) / s;
                const float v = px < g->sp && j < g->Wp ? rows[(int64_t)px * g->plane + j] : 0.0f;
                d[ix] = acc ? d[ix] + v : v;
            }
        }
}

/* t[p][k] = dy[k][p] for one image, 8 x 8 blocks */
IT static void transpose_dy(const float *dy, int K, int64_t P, float *t) {
    for (int64_t p = 0; p < P; p += 8)
        for (int k = 0; k < K; k += 8) {
            __m256 r0 = _mm256_loadu_ps(dy + (k + 0) * P + p), r1 = _mm256_loadu_ps(dy + (k + 1) * P + p);
            __m256 r2 = _mm256_loadu_ps(dy + (k + 2) * P + p), r3 = _mm256_loadu_ps(dy + (k + 3) * P + p);
            __m256 r4 = _mm256_loadu_ps(dy + (k + 4) * P + p), r5 = _mm256_loadu_ps(dy + (k + 5) * P + p);
            __m256 r6 = _mm256_loadu_ps(dy + (k + 6) * P + p), r7 = _mm256_loadu_ps(dy + (k + 7) * P + p);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *o = t + p * K + k;
            _mm256_storeu_ps(o + 0 * K, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(o + 1 * K, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(o + 2 * K, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(o + 3 * K, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(o + 4 * K, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(o + 5 * K, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(o + 6 * K, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(o + 7 * K, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
}

#  define ROW6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#  define DECL(r) __m256 a##r##0 = _mm256_setzero_ps(), a##r##1 = _mm256_setzero_ps();

/* Forward tile: y rows k0 .. k0+rows-1, pixels p0 .. p0+8(1+two)-1 = sum over taps of the
 * packed W block u ([CRS][6]) times the tap rows at b0 + off[r] (and b1 + off[r]). */
INL IT void fwd_tile(const float *u, int CRS, const int32_t *off, const float *b0, const float *b1, int two,
                     float *y, int64_t ldy, int rows, const float *bias) {
    ROW6(DECL)
    for (int r = 0; r < CRS; r++) {
        const __m256 v0 = _mm256_loadu_ps(b0 + off[r]);
        const __m256 v1 = two ? _mm256_loadu_ps(b1 + off[r]) : v0;
#  define FMA(i)                                                \
      {                                                         \
          const __m256 w = _mm256_broadcast_ss(u + r * 6 + i);  \
          a##i##0 = _mm256_fmadd_ps(w, v0, a##i##0);            \
          if (two) a##i##1 = _mm256_fmadd_ps(w, v1, a##i##1);   \
      }
        ROW6(FMA)
#  undef FMA
    }
#  define ST(i)                                                                  \
      if (i < rows) {                                                            \
          const __m256 bv = _mm256_set1_ps(bias ? bias[i] : 0.0f);               \
          _mm256_storeu_ps(y + i * ldy, bias ? _mm256_add_ps(a##i##0, bv) : a##i##0); \
          if (two) _mm256_storeu_ps(y + i * ldy + 8, bias ? _mm256_add_ps(a##i##1, bv) : a##i##1); \
      }
    ROW6(ST)
#  undef ST
}

/* dX tile: taps r0 .. r0+rows-1 x 8(1+two) pixels of W^T dY (u: the packed W^T block
 * [K][6], g: dY at the tile's first pixel, row stride P), added into the polyphase dX at
 * b0 + off[r] (and b1 + off[r]). */
INL IT void dx_tile(const float *u, int K, const float *g, int64_t P, int two, const int32_t *off, int rows,
                    float *b0, float *b1) {
    ROW6(DECL)
    for (int k = 0; k < K; k++) {
        const __m256 v0 = _mm256_loadu_ps(g + k * P);
        const __m256 v1 = two ? _mm256_loadu_ps(g + k * P + 8) : v0;
#  define FMA(i)                                                \
      {                                                         \
          const __m256 w = _mm256_broadcast_ss(u + k * 6 + i);  \
          a##i##0 = _mm256_fmadd_ps(w, v0, a##i##0);            \
          if (two) a##i##1 = _mm256_fmadd_ps(w, v1, a##i##1);   \
      }
        ROW6(FMA)
#  undef FMA
    }
#  define ADD(i)                                                                               \
      if (i < rows) {                                                                          \
          float *d0 = b0 + off[i];                                                             \
          _mm256_storeu_ps(d0, _mm256_add_ps(_mm256_loadu_ps(d0), a##i##0));                  \
          if (two) {                                                                           \
              float *d1 = b1 + off[i];                                                         \
              _mm256_storeu_ps(d1, _mm256_add_ps(_mm256_loadu_ps(d1), a##i##1));               \
          }                                                                                    \
      }
    ROW6(ADD)
#  undef ADD
}

/* dW^T tile: rows r0 .. r0+5 (the tap pointers x[i] = xp + off[r0+i]; rows past the last
 * tap repeat it and are not stored) x 8 nv output channels, summed over the image's pixels
 * (t: dY^T at channel k0, row stride K) and added into d (row stride K). */
INL IT void dw_tile(const float *const x[6], const igeom *g, int OW, const float *t, int K, int nv, int rows,
                    float *d) {
    ROW6(DECL)
    const int OH = (int)(g->P / OW);
    for (int oy = 0; oy < OH; oy++) {
        const int64_t rb = (int64_t)oy * g->Wp;
        const float *tp = t + (int64_t)oy * OW * K;
        for (int ox = 0; ox < OW; ox++, tp += K) {
            const __m256 v0 = _mm256_loadu_ps(tp);
            const __m256 v1 = nv == 2 ? _mm256_loadu_ps(tp + 8) : v0;
#  define FMA(i)                                                   \
      {                                                            \
          const __m256 w = _mm256_broadcast_ss(x[i] + rb + ox);    \
          a##i##0 = _mm256_fmadd_ps(w, v0, a##i##0);               \
          if (nv == 2) a##i##1 = _mm256_fmadd_ps(w, v1, a##i##1);  \
      }
            ROW6(FMA)
#  undef FMA
        }
    }
#  define ADD(i)                                                                               \
      if (i < rows) {                                                                          \
          float *o = d + (int64_t)i * K;                                                       \
          _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), a##i##0));                     \
          if (nv == 2) _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), a##i##1)); \
      }
    ROW6(ADD)
#  undef ADD
}
#  undef DECL

/* pixel group q (8 outputs of one row) starts at xp offset oy Wp + ox */
static inline int64_t group_base(const igeom *g, int OW, int q) {
    const int64_t p = (int64_t)q * 8;
    return (p / OW) * g->Wp + p % OW;
}

IT static void fwd_image(const gopt__conv *c, const igeom *g, const float *ap, const int32_t *off, const float *b,
                         const float *xp, float *y) {
    const int K = c->K, nkb = (K + 5) / 6;
    for (int q = 0; q < g->G; q += 2) {
        const int two = q + 1 < g->G;
        const float *b0 = xp + group_base(g, c->OW, q), *b1 = two ? xp + group_base(g, c->OW, q + 1) : b0;
        float *yo = y + (int64_t)q * 8;
        for (int kb = 0; kb < nkb; kb++) {
            const int rows = K - kb * 6 < 6 ? K - kb * 6 : 6;
            const float *u = ap + (int64_t)kb * 6 * g->CRS;
            float *yk = yo + (int64_t)kb * 6 * g->P;
            const float *bk = b ? b + kb * 6 : NULL;
            if (two)
                fwd_tile(u, g->CRS, off, b0, b1, 1, yk, g->P, rows, bk);
            else
                fwd_tile(u, g->CRS, off, b0, b1, 0, yk, g->P, rows, bk);
        }
    }
}

IT static void dx_image(const gopt__conv *c, const igeom *g, const float *ap, const int32_t *off, const float *dy,
                        float *dxp) {
    const int nrb = (g->CRS + 5) / 6;
    memset(dxp, 0, sizeof(float) * (size_t)g->xp_n);
    for (int q = 0; q < g->G; q += 2) {
        const int two = q + 1 < g->G;
        float *b0 = dxp + group_base(g, c->OW, q), *b1 = two ? dxp + group_base(g, c->OW, q + 1) : b0;
        const float *gq = dy + (int64_t)q * 8;
        for (int rb = 0; rb < nrb; rb++) {
            const int rows = g->CRS - rb * 6 < 6 ? g->CRS - rb * 6 : 6;
            const float *u = ap + (int64_t)rb * 6 * c->K;
            if (two)
                dx_tile(u, c->K, gq, g->P, 1, off + rb * 6, rows, b0, b1);
            else
                dx_tile(u, c->K, gq, g->P, 0, off + rb * 6, rows, b0, b1);
        }
    }
}

IT static void dw_image(const gopt__conv *c, const igeom *g, const int32_t *off, const float *xp, const float *t,
                        float *dwt) {
    const int K = c->K, nrb = (g->CRS + 5) / 6;
    for (int rb = 0; rb < nrb; rb++) {
        const int rows = g->CRS - rb * 6 < 6 ? g->CRS - rb * 6 : 6;
        const float *x[6];
        for (int i = 0; i < 6; i++) x[i] = xp + off[rb * 6 + (i < rows ? i : rows - 1)];
        float *d = dwt + (int64_t)rb * 6 * K;
        int k = 0;
        for (; k + 16 <= K; k += 16) dw_tile(x, g, c->OW, t + k, K, 2, rows, d + k);
        if (k < K) dw_tile(x, g, c->OW, t + k, K, 1, rows, d + k);
    }
}

void gopt__conv_impl_forward(const gopt__conv *c, const float *w, const float *b, const float *x, float *y, int n,
                             float *ws) {
    const igeom g = impl_geom(c);
    const int T = gopt__conv_threads(c, n);
    const size_t sh = shared_floats(c, &g), slot = slot_floats(c, &g);
    float *ap = ws;
    int32_t *off = (int32_t *)(ws + sh - r16((size_t)g.CRS));
    gopt__cgemm_pack_a(w, c->K, g.CRS, 0, ap);
    tap_offsets(c, &g, off);
    const int64_t in_n = (int64_t)c->C * c->H * c->W, out_n = (int64_t)c->K * g.P;
#  pragma omp parallel num_threads(T)
    {
        const int t = gopt__conv_thread_id();
        float *xp = ws + sh + (size_t)t * slot;
        memset(xp, 0, sizeof(float) * (size_t)g.xp_n);
        int i0, i1;
        gopt__conv_range(n, t, T, &i0, &i1);
        for (int i = i0; i < i1; i++) {
            pack_image(c, &g, x + i * in_n, xp);
            fwd_image(c, &g, ap, off, b, xp, y + i * out_n);
        }
    }
}

void gopt__conv_impl_backward(const gopt__conv *c, const float *w, float *dw, float *db, const float *x,
                              const float *dy, float *dx, int dx_accumulate, int n, float *ws) {
    const igeom g = impl_geom(c);
    const int T = gopt__conv_threads(c, n), K = c->K;
    const size_t sh = shared_floats(c, &g), slot = slot_floats(c, &g);
    const size_t o_dxp = r16((size_t)g.xp_n), o_t = 2 * o_dxp, o_dw = o_t + r16((size_t)g.P * K);
    if (db) gopt__conv_bias_grad(c, dy, n, db);
    float *ap = ws;
    int32_t *off = (int32_t *)(ws + sh - r16((size_t)g.CRS));
    if (dx) gopt__cgemm_pack_a(w, g.CRS, K, 1, ap);
    tap_offsets(c, &g, off);
    const int64_t in_n = (int64_t)c->C * c->H * c->W, out_n = (int64_t)K * g.P;
#  pragma omp parallel num_threads(T)
    {
        const int t = gopt__conv_thread_id();
        float *xp = ws + sh + (size_t)t * slot, *dxp = xp + o_dxp, *dyt = xp + o_t, *dwt = xp + o_dw;
        if (dw) memset(dwt, 0, sizeof(float) * (size_t)g.CRS * K);
        if (dw) memset(xp, 0, sizeof(float) * (size_t)g.xp_n);
        int i0, i1;
        gopt__conv_range(n, t, T, &i0, &i1);
        for (int i = i0; i < i1; i++) {
            const float *dyi = dy + i * out_n;
            if (dw) { /* x is read before dx (which may alias it) is written */
                pack_image(c, &g, x + i * in_n, xp);
                transpose_dy(dyi, K, g.P, dyt);
                dw_image(c, &g, off, xp, dyt, dwt);
            }
            if (dx) {
                dx_image(c, &g, ap, off, dyi, dxp);
                unpack_dx(c, &g, dxp, dx + i * in_n, dx_accumulate);
            }
        }
    }
    if (dw) /* dw[k][r] += the partials' dW^T[r][k], in thread order */
        for (int t = 0; t < T; t++) {
            const float *dwt = ws + sh + (size_t)t * slot + o_dw;
            for (int r = 0; r < g.CRS; r++)
                for (int k = 0; k < K; k++) dw[(int64_t)k * g.CRS + r] += dwt[(int64_t)r * K + k];
        }
}

#else /* no x86-64 target attributes: the path is never chosen */
int gopt__conv_impl_shape_ok(const gopt__conv *c) {
    (void)c;
    return 0;
}
size_t gopt__conv_impl_ws_floats(const gopt__conv *c) {
    (void)c;
    return 0;
}
void gopt__conv_impl_forward(const gopt__conv *c, const float *w, const float *b, const float *x, float *y, int n,
                             float *ws) {
    (void)c, (void)w, (void)b, (void)x, (void)y, (void)n, (void)ws;
}
void gopt__conv_impl_backward(const gopt__conv *c, const float *w, float *dw, float *db, const float *x,
                              const float *dy, float *dx, int dx_accumulate, int n, float *ws) {
    (void)c, (void)w, (void)dw, (void)db, (void)x, (void)dy, (void)dx, (void)dx_accumulate, (void)n, (void)ws;
}
#endif
