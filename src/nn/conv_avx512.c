/* AVX-512 convolution kernels (see nn/kernels.h, gopt__conv_fast_*): no BLAS, no im2col
 * over the batch. Each thread takes a contiguous range of images; per image:
 *  - forward and dX of stride-1 "same" convolutions (3x3 pad 1, 1x1 pad 0): implicit GEMM.
 *    A 64-pixel output panel of tap (ky,kx) is a contiguous window of each input plane, so
 *    the 6 x 64 register-tile micro-kernel (kern_direct) loads the shifted windows itself
 *    with lane masks for the borders; dX is the same kernel on dY with the flipped,
 *    transposed weights;
 *  - other shapes (stride 2, ...): the image is packed into 64-pixel column panels
 *    ([panel][C*R*R][64]) for the same kind of micro-kernel (kern_6x64); dX is W^T dY
 *    plus col2im, or a full convolution of dY when the stride is 1;
 *  - dW: dW^T[r][k] += sum_p cols[r][p] dY^T[p][k] with register tiles of up to 4 x 16
 *    output channels that stay in registers over all pixels; for 3x3 "same" convolutions
 *    on 8/16/32-pixel images the taps are read at constant offsets from a zero-padded
 *    copy of the image (dwp_*), otherwise from packed columns (dw_tile*). Each thread
 *    sums into its own partial, combined in thread order.
 * So same inputs and thread count give bit-identical results; other thread counts differ
 * only in dW's rounding. Optional extras: the input may go through relu(x scale + shift)
 * per channel on the fly (a batchnorm + relu that is then never stored), and dx may alias
 * dy (per-image scratch). */
#include "core/common.h"
#include "nn/kernels.h"

#ifdef _OPENMP
#  include <omp.h>
#endif

#if GOPT__CONV_HAVE_AVX512
#  include <immintrin.h>

#  define TGT __attribute__((target("avx512f")))
#  define MR 6  /* forward tile rows (output channels) */
#  define NR 64 /* panel width (pixels) */

int gopt__conv_cpu_fast(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

/* ---- geometry of one convolution as seen by the packer ------------------------------- */
typedef struct geom {
    int C, H, W, R, s, pad, OH, OW, rows_pad; /* rows_pad: packed rows per panel (>= C*R*R) */
} geom;

static inline int64_t npanels(int64_t P) { return (P + NR - 1) / NR; }

/* d[0..n) = srow[ix0 + i] (zero outside 0 <= ix0 + i < W): one output-row segment of a
 * stride-1 convolution, 16 lanes at a time with masked loads (masked-off lanes are not read). */
TGT static inline void seg_copy_s1(float *d, const float *srow, int ix0, int n, int W) {
    for (int i = 0; i < n; i += 16) {
        int m = n - i < 16 ? n - i : 16, a = -(ix0 + i), e = W - (ix0 + i);
        unsigned full = m == 16 ? 0xFFFFu : (1u << m) - 1u;
        unsigned lo = a <= 0 ? 0xFFFFu : a >= 16 ? 0u : (0xFFFFu << a) & 0xFFFFu;
        unsigned hi = e >= 16 ? 0xFFFFu : e <= 0 ? 0u : (1u << e) - 1u;
        __m512 v = _mm512_maskz_loadu_ps((__mmask16)(full & lo & hi), srow + (ix0 + i));
        _mm512_mask_storeu_ps(d + i, (__mmask16)full, v);
    }
}

/* bits [lo, hi) of a 16-bit mask, lo and hi clamped to [0, 16] */
static inline unsigned range16(int lo, int hi) {
    lo = lo < 0 ? 0 : lo > 16 ? 16 : lo;
    hi = hi < 0 ? 0 : hi > 16 ? 16 : hi;
    return hi > lo ? ((0xFFFFu >> (16 - (hi - lo))) << lo) & 0xFFFFu : 0u;
}

/* d[i] = srow[ix0 + 2i] (zero outside 0 <= . < W), i < n: a stride-2 row segment, 16
 * outputs from two masked loads of 32 inputs and one even-lane permute. */
TGT static inline void seg_copy_s2(float *d, const float *srow, int ix0, int n, int W) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int i = 0; i < n; i += 16) {
        int m = n - i < 16 ? n - i : 16, b = ix0 + 2 * i; /* inputs b .. b + 2m - 1 */
        int lo = -b, hi = W - b < 2 * m ? W - b : 2 * m;
        __m512 v0 = _mm512_maskz_loadu_ps((__mmask16)range16(lo, hi), srow + b);
        __m512 v1 = _mm512_maskz_loadu_ps((__mmask16)range16(lo - 16, hi - 16), srow + b + 16);
        __m512 v = _mm512_permutex2var_ps(v0, even, v1);
        _mm512_mask_storeu_ps(d + i, (__mmask16)(m == 16 ? 0xFFFFu : (1u << m) - 1u), v);
    }
}

/* out[panel][r][0..64) = im2col(x)[r][panel*64 + i] for one image x (C,H,W). */
TGT static void pack_cols(const geom *g, const float *x, float *out) {
    const int C = g->C, H = g->H, W = g->W, R = g->R, s = g->s, pad = g->pad, OW = g->OW;
    const int64_t P = (int64_t)g->OH * OW, np = npanels(P), rows = (int64_t)C * R * R, rp = g->rows_pad;
    if (s == 1 && OW <= NR && NR % OW == 0) {
        /* output rows never straddle panels: one masked load/store per 16 pixels of a row */
        const int nch = (OW + 15) / 16, OH = g->OH;
        const __m512 zero = _mm512_setzero_ps();
        for (int64_t r = 0; r < rows; r++) {
            const int kx = (int)(r % R), ky = (int)((r / R) % R), ci = (int)(r / (R * R));
            const float *xp = x + (int64_t)ci * H * W;
            const int ix0 = kx - pad;
            __mmask16 full[4], valid[4];
            for (int c = 0; c < nch; c++) {
                int m = OW - 16 * c < 16 ? OW - 16 * c : 16, a = -(ix0 + 16 * c), e = W - (ix0 + 16 * c);
                unsigned f = m == 16 ? 0xFFFFu : (1u << m) - 1u;
                unsigned lo = a <= 0 ? 0xFFFFu : a >= 16 ? 0u : (0xFFFFu << a) & 0xFFFFu;
                unsigned hi = e >= 16 ? 0xFFFFu : e <= 0 ? 0u : (1u << e) - 1u;
                full[c] = (__mmask16)f;
                valid[c] = (__mmask16)(f & lo & hi);
            }
            for (int oy = 0; oy < OH; oy++) {
                int64_t p = (int64_t)oy * OW;
                float *d = out + ((p / NR) * rp + r) * NR + p % NR;
                int iy = oy - pad + ky;
                if (iy >= 0 && iy < H) {
                    const float *srow = xp + (int64_t)iy * W + ix0;
                    for (int c = 0; c < nch; c++)
                        _mm512_mask_storeu_ps(d + 16 * c, full[c], _mm512_maskz_loadu_ps(valid[c], srow + 16 * c));
                } else {
                    for (int c = 0; c < nch; c++) _mm512_mask_storeu_ps(d + 16 * c, full[c], zero);
                }
            }
            if (P % NR) {
                float *d = out + ((np - 1) * rp + r) * NR;
                memset(d + P % NR, 0, sizeof(float) * (size_t)(NR - P % NR));
            }
        }
        for (int64_t pb = 0; pb < np; pb++)
            if (rp > rows) memset(out + (pb * rp + rows) * NR, 0, sizeof(float) * (size_t)((rp - rows) * NR));
        return;
    }
    for (int64_t r = 0; r < rows; r++) {
        const int kx = (int)(r % R), ky = (int)((r / R) % R), ci = (int)(r / (R * R));
        const float *xp = x + (int64_t)ci * H * W;
        for (int64_t pb = 0; pb < np; pb++) {
            float *d = out + (pb * rp + r) * NR;
            int64_t p = pb * NR, p1 = p + NR < P ? p + NR : P;
            int oy = (int)(p / OW), ox = (int)(p % OW);
            while (p < p1) {
                int n = OW - ox < p1 - p ? OW - ox : (int)(p1 - p);
                int iy = oy * s - pad + ky;
                if (iy < 0 || iy >= H) {
                    memset(d, 0, sizeof(float) * (size_t)n);
                } else if (s == 1) {
                    seg_copy_s1(d, xp + (int64_t)iy * W, ox - pad + kx, n, W);
                } else if (s == 2) {
                    seg_copy_s2(d, xp + (int64_t)iy * W, ox * 2 - pad + kx, n, W);
                } else {
                    const float *srow = xp + (int64_t)iy * W;
                    for (int i = 0; i < n; i++) {
                        int ix = (ox + i) * s - pad + kx;
                        d[i] = (ix >= 0 && ix < W) ? srow[ix] : 0.0f;
                    }
                }
                d += n;
                p += n;
                ox = 0;
                oy++;
            }
            int64_t used = p1 - pb * NR;
            if (used < NR) memset(d, 0, sizeof(float) * (size_t)(NR - used));
        }
    }
    for (int64_t pb = 0; pb < np; pb++)
        if (rp > rows) memset(out + (pb * rp + rows) * NR, 0, sizeof(float) * (size_t)((rp - rows) * NR));
}

/* c[i][0..ncols) (=|+=) sum_k a[k][i] b[k][0..64) for i < rows (<= 6). */
TGT static void kern_6x64(int64_t kd, const float *a, const float *b, float *c, int64_t ldc, int rows, int ncols,
                          int accumulate) {
    __m512 acc[MR][4];
#  pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#  pragma GCC unroll 4
        for (int v = 0; v < 4; v++) acc[i][v] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kd; k++) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32),
               b3 = _mm512_loadu_ps(b + 48);
#  pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
            acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
            acc[i][3] = _mm512_fmadd_ps(ai, b3, acc[i][3]);
        }
        a += MR;
        b += NR;
    }
    __mmask16 m[4];
    for (int v = 0; v < 4; v++) {
        int rem = ncols - 16 * v;
        m[v] = rem >= 16 ? (__mmask16)0xFFFF : rem <= 0 ? (__mmask16)0 : (__mmask16)((1u << rem) - 1u);
    }
#  pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (i >= rows) break;
        float *cr = c + (int64_t)i * ldc;
#  pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            __m512 r = acc[i][v];
            if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m[v], cr + 16 * v));
            _mm512_mask_storeu_ps(cr + 16 * v, m[v], r);
        }
    }
}

/* Stride 1 with OW == W and OH == H ("same" padding): the 64-pixel panel at p0 of tap
 * (ky,kx) is the contiguous window x[p0 + (ky-pad)*W + (kx-pad) ...] of each input plane,
 * lanes outside the image masked to zero. So no columns are packed: the micro-kernel loads
 * the shifted windows itself. offs/masks: per panel and tap, computed once per call. */
static int same_s1(const gopt__conv *c) { return c->stride == 1 && c->OW == c->W && c->OH == c->H; }

static void panel_masks(const gopt__conv *c, int64_t *offs, uint16_t *masks) {
    const int H = c->H, W = c->W, R = c->R, pad = c->pad;
    const int64_t P = (int64_t)H * W, np = npanels(P);
    for (int64_t pb = 0; pb < np; pb++)
        for (int t = 0; t < R * R; t++) {
            int ky = t / R, kx = t % R;
            int64_t p0 = pb * NR;
            offs[pb * R * R + t] = p0 + (int64_t)(ky - pad) * W + (kx - pad);
            uint16_t *m = masks + (pb * R * R + t) * 4;
            m[0] = m[1] = m[2] = m[3] = 0;
            for (int l = 0; l < NR; l++) {
                int64_t p = p0 + l;
                if (p >= P) break;
                int iy = (int)(p / W) + ky - pad, ix = (int)(p % W) + kx - pad;
                if (iy >= 0 && iy < H && ix >= 0 && ix < W) m[l / 16] |= (uint16_t)(1u << (l % 16));
            }
        }
}

/* c[i][0..ncols) (=|+=) sum_{t, ci} a[t*C+ci][i] x[ci][offs[t] + 0..64) (masked), i < rows. */
TGT static void kern_direct(int taps, int C, int64_t plane, const float *a, const float *x, const int64_t *offs,
                            const uint16_t *masks, float *c, int64_t ldc, int rows, int ncols, int accumulate) {
    __m512 acc[MR][4];
#  pragma GCC unroll 6
    for (int i = 0; i < MR; i++)
#  pragma GCC unroll 4
        for (int v = 0; v < 4; v++) acc[i][v] = _mm512_setzero_ps();
    for (int t = 0; t < taps; t++) {
        const __mmask16 m0 = masks[4 * t], m1 = masks[4 * t + 1], m2 = masks[4 * t + 2], m3 = masks[4 * t + 3];
        const float *bp = x + offs[t];
        for (int ci = 0; ci < C; ci++) {
            __m512 b0 = _mm512_maskz_loadu_ps(m0, bp), b1 = _mm512_maskz_loadu_ps(m1, bp + 16),
                   b2 = _mm512_maskz_loadu_ps(m2, bp + 32), b3 = _mm512_maskz_loadu_ps(m3, bp + 48);
#  pragma GCC unroll 6
            for (int i = 0; i < MR; i++) {
                __m512 ai = _mm512_set1_ps(a[i]);
                acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
                acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
                acc[i][3] = _mm512_fmadd_ps(ai, b3, acc[i][3]);
            }
            a += MR;
            bp += plane;
        }
    }
    __mmask16 m[4];
    for (int v = 0; v < 4; v++) {
        int rem = ncols - 16 * v;
        m[v] = rem >= 16 ? (__mmask16)0xFFFF : rem <= 0 ? (__mmask16)0 : (__mmask16)((1u << rem) - 1u);
    }
#  pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (i >= rows) break;
        float *cr = c + (int64_t)i * ldc;
#  pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            __m512 r = acc[i][v];
            if (accumulate) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m[v], cr + 16 * v));
            _mm512_mask_storeu_ps(cr + 16 * v, m[v], r);
        }
    }
}

/* y (m, H*W) (=|+=) same-padded stride-1 conv of x (C, H, W); ap packed [m/6][(t,ci)][6]. */
TGT static void conv_direct(const gopt__conv *c, int C, int m, const float *ap, const float *x, const int64_t *offs,
                            const uint16_t *masks, float *y, int accumulate) {
    const int taps = c->R * c->R;
    const int64_t P = (int64_t)c->H * c->W, np = npanels(P), kd = (int64_t)taps * C;
    for (int64_t pb = 0; pb < np; pb++) {
        int ncols = (int)(P - pb * NR < NR ? P - pb * NR : NR);
        for (int mt = 0; mt < (m + MR - 1) / MR; mt++) {
            int rows = m - mt * MR < MR ? m - mt * MR : MR;
            kern_direct(taps, C, P, ap + (int64_t)mt * kd * MR, x, offs + pb * taps, masks + pb * taps * 4,
                        y + (int64_t)mt * MR * P + pb * NR, P, rows, ncols, accumulate);
        }
    }
}

/* ap[mt][k][i] = a(mt*6+i, k) for a matrix of m rows and kd columns given by element(row, k). */
static void pack_a_rowmajor(const float *w, int m, int64_t kd, float *ap) {
    for (int mt = 0; mt < (m + MR - 1) / MR; mt++)
        for (int64_t k = 0; k < kd; k++)
            for (int i = 0; i < MR; i++) {
                int row = mt * MR + i;
                ap[((int64_t)mt * kd + k) * MR + i] = row < m ? w[(int64_t)row * kd + k] : 0.0f;
            }
}

/* y(m, P) (=|+=) A(m, kd) cols(kd, P): all panels, all row tiles. */
TGT static void gemm_panels(const float *ap, int m, int64_t kd, const float *cols, int64_t rows_pad, int64_t P,
                            float *y, int64_t ldy, int accumulate) {
    const int64_t np = npanels(P);
    for (int64_t pb = 0; pb < np; pb++) {
        int ncols = (int)(P - pb * NR < NR ? P - pb * NR : NR);
        const float *bp = cols + pb * rows_pad * NR;
        for (int mt = 0; mt < (m + MR - 1) / MR; mt++) {
            int rows = m - mt * MR < MR ? m - mt * MR : MR;
            kern_6x64(kd, ap + (int64_t)mt * kd * MR, bp, y + (int64_t)mt * MR * ldy + pb * NR, ldy, rows, ncols,
                      accumulate);
        }
    }
}

/* ---- dW tiles: acc[i][v] (rows r0+i, channels 16v..) += cols[r0+i][p] * dyt[p][16v..] ---- */
#  define DW_TILE(NAME, NV, RR)                                                                                      \
      TGT static void NAME(const float *cols, int64_t rows_pad, int64_t P, const float *dyt, int64_t kr,           \
                           float *part) {                                                                           \
          __m512 acc[RR][NV];                                                                                       \
          _Pragma("GCC unroll 16") for (int i = 0; i < RR; i++)                                                     \
              _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[i][v] =                                      \
                  _mm512_loadu_ps(part + (int64_t)i * kr + 16 * v);                                                  \
          const int64_t np = npanels(P);                                                                            \
          for (int64_t pb = 0; pb < np; pb++) {                                                                     \
              const float *cp = cols + pb * rows_pad * NR;                                                          \
              const float *dp = dyt + pb * NR * kr;                                                                 \
              int n = (int)(P - pb * NR < NR ? P - pb * NR : NR);                                                   \
              for (int q = 0; q < n; q++) {                                                                         \
                  __m512 bv[NV];                                                                                    \
                  _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(dp + q * kr + 16 * v); \
                  _Pragma("GCC unroll 16") for (int i = 0; i < RR; i++) {                                           \
                      __m512 a = _mm512_set1_ps(cp[i * NR + q]);                                                    \
                      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[i][v] =                              \
                          _mm512_fmadd_ps(a, bv[v], acc[i][v]);                                                     \
                  }                                                                                                 \
              }                                                                                                     \
          }                                                                                                         \
          _Pragma("GCC unroll 16") for (int i = 0; i < RR; i++)                                                     \
              _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                                  \
                  _mm512_storeu_ps(part + (int64_t)i * kr + 16 * v, acc[i][v]);                                      \
      }
DW_TILE(dw_tile1, 1, 16)
DW_TILE(dw_tile2, 2, 12)
DW_TILE(dw_tile3, 3, 8)
DW_TILE(dw_tile4, 4, 6)

/* part[r][k] += sum_p cols[r][p] dyt[p][k] over all rows (rows_pad, a multiple of 48). */
TGT static void dw_image(const float *cols, int64_t rows_pad, int64_t P, const float *dyt, int64_t kr, float *part) {
    for (int64_t kb = 0; kb < kr; kb += 64) {
        int nv = (int)((kr - kb) / 16 < 4 ? (kr - kb) / 16 : 4);
        int rr = nv == 1 ? 16 : nv == 2 ? 12 : nv == 3 ? 8 : 6;
        for (int64_t r0 = 0; r0 < rows_pad; r0 += rr) {
            const float *cp = cols + r0 * NR;
            float *pp = part + r0 * kr + kb;
            switch (nv) {
            case 1: dw_tile1(cp, rows_pad, P, dyt + kb, kr, pp); break;
            case 2: dw_tile2(cp, rows_pad, P, dyt + kb, kr, pp); break;
            case 3: dw_tile3(cp, rows_pad, P, dyt + kb, kr, pp); break;
            default: dw_tile4(cp, rows_pad, P, dyt + kb, kr, pp); break;
            }
        }
    }
}

/* ---- dW of 3x3 "same" convolutions from a zero-padded copy of the image ------------------
 * xp[ci][(H+2)(W+2)] holds the image with a one-pixel zero border, so column row (ci,ky,kx)
 * at pixel (oy,ox) is xp[ci][(oy+ky)(W+2) + ox+kx]: nine taps at constant offsets from one
 * pointer (W is a compile-time constant below), no 9x column packing. Tiles: NCI channels x
 * NTAP taps (from TAP0) x NV*16 output channels, register-resident over all pixels. */
static inline __attribute__((always_inline)) TGT void dwp_tile(const int W, const int H, const int NV, const int NCI,
                                                               const int TAP0, const int NTAP, const float *xp,
                                                               int64_t plane, const float *dyt, int64_t kr,
                                                               float *part) {
    __m512 acc[2][9][4];
#  pragma GCC unroll 2
    for (int c = 0; c < NCI; c++)
#  pragma GCC unroll 9
        for (int t = 0; t < NTAP; t++)
#  pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[c][t][v] = _mm512_loadu_ps(part + ((int64_t)c * 9 + TAP0 + t) * kr + 16 * v);
    for (int oy = 0; oy < H; oy++) {
        const float *xr = xp + (int64_t)oy * (W + 2);
        const float *dr = dyt + (int64_t)oy * W * kr;
        for (int ox = 0; ox < W; ox++) {
            __m512 bv[4];
#  pragma GCC unroll 4
            for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(dr + (int64_t)ox * kr + 16 * v);
#  pragma GCC unroll 2
            for (int c = 0; c < NCI; c++)
#  pragma GCC unroll 9
                for (int t = 0; t < NTAP; t++) {
                    const int tap = TAP0 + t, ky = tap / 3, kx = tap % 3;
                    __m512 a = _mm512_set1_ps(xr[c * plane + ky * (W + 2) + kx + ox]);
#  pragma GCC unroll 4
                    for (int v = 0; v < NV; v++) acc[c][t][v] = _mm512_fmadd_ps(a, bv[v], acc[c][t][v]);
                }
        }
    }
#  pragma GCC unroll 2
    for (int c = 0; c < NCI; c++)
#  pragma GCC unroll 9
        for (int t = 0; t < NTAP; t++)
#  pragma GCC unroll 4
            for (int v = 0; v < NV; v++) _mm512_storeu_ps(part + ((int64_t)c * 9 + TAP0 + t) * kr + 16 * v, acc[c][t][v]);
}

static inline __attribute__((always_inline)) TGT void dwp_image_w(const int W, int C, const float *xp, const float *dyt,
                                                                  int64_t kr, float *part) {
    const int H = W;
    const int64_t plane = (int64_t)(H + 2) * (W + 2);
    for (int64_t kb = 0; kb < kr; kb += 64) {
        const int nv = (int)((kr - kb) / 16 < 4 ? (kr - kb) / 16 : 4);
        const float *d = dyt + kb;
        for (int ci = 0; ci < C;) {
            const float *x = xp + (int64_t)ci * plane;
            float *pp = part + (int64_t)ci * 9 * kr + kb;
            if (nv == 1 && ci + 1 < C) {
                dwp_tile(W, H, 1, 2, 0, 9, x, plane, d, kr, pp);
                ci += 2;
                continue;
            }
            switch (nv) {
            case 1: dwp_tile(W, H, 1, 1, 0, 9, x, plane, d, kr, pp); break;
            case 2: dwp_tile(W, H, 2, 1, 0, 9, x, plane, d, kr, pp); break;
            case 3:
                dwp_tile(W, H, 3, 1, 0, 5, x, plane, d, kr, pp);
                dwp_tile(W, H, 3, 1, 5, 4, x, plane, d, kr, pp);
                break;
            default:
                dwp_tile(W, H, 4, 1, 0, 5, x, plane, d, kr, pp);
                dwp_tile(W, H, 4, 1, 5, 4, x, plane, d, kr, pp);
                break;
            }
            ci++;
        }
    }
}

/* 1 if dW can use the padded-copy kernels: 3x3 stride 1 pad 1, square 8/16/32 images. */
static int dw_padded(const gopt__conv *c) {
    return c->R == 3 && c->stride == 1 && c->pad == 1 && c->H == c->W && (c->W == 8 || c->W == 16 || c->W == 32);
}

TGT static void pad_image(const float *x, int C, int W, float *xp) {
    const int64_t plane = (int64_t)(W + 2) * (W + 2);
    for (int ci = 0; ci < C; ci++) {
        float *o = xp + ci * plane;
        memset(o, 0, sizeof(float) * (size_t)(W + 2));
        for (int y = 0; y < W; y++) {
            float *r = o + (int64_t)(y + 1) * (W + 2);
            r[0] = 0.0f;
            memcpy(r + 1, x + ((int64_t)ci * W + y) * W, sizeof(float) * (size_t)W);
            r[W + 1] = 0.0f;
        }
        memset(o + (int64_t)(W + 1) * (W + 2), 0, sizeof(float) * (size_t)(W + 2));
    }
}

TGT static void dwp_image(int W, int C, const float *xp, const float *dyt, int64_t kr, float *part) {
    switch (W) {
    case 8: dwp_image_w(8, C, xp, dyt, kr, part); break;
    case 16: dwp_image_w(16, C, xp, dyt, kr, part); break;
    default: dwp_image_w(32, C, xp, dyt, kr, part); break;
    }
}

/* In-register transpose of a 16x16 block: r[i][c] -> r[c][i]. */
TGT static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* u[4i+j], 128-bit lane L: column 4L+j of rows 4i..4i+3 */
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int j = 0; j < 4; j++) {
        __m512 x01 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44), y01 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
        __m512 x23 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE), y23 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
        r[j] = _mm512_shuffle_f32x4(x01, y01, 0x88);
        r[4 + j] = _mm512_shuffle_f32x4(x01, y01, 0xDD);
        r[8 + j] = _mm512_shuffle_f32x4(x23, y23, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(x23, y23, 0xDD);
    }
}

/* dyt[p][k] = dy[k][p] (k < K), 0 for K <= k < kr; p < P. */
TGT static void transpose_dy(const float *dy, int K, int64_t P, int64_t kr, float *dyt) {
    if (K % 16 == 0 && P % 16 == 0) {
        for (int64_t p0 = 0; p0 < P; p0 += 16)
            for (int k0 = 0; k0 < K; k0 += 16) {
                __m512 r[16];
                for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(dy + (int64_t)(k0 + i) * P + p0);
                transpose16(r);
                for (int c = 0; c < 16; c++) _mm512_storeu_ps(dyt + (p0 + c) * kr + k0, r[c]);
            }
        return;
    }
    for (int64_t p0 = 0; p0 < P; p0 += 16) {
        int64_t p1 = p0 + 16 < P ? p0 + 16 : P;
        for (int k = 0; k < K; k++) {
            const float *src = dy + (int64_t)k * P;
            for (int64_t p = p0; p < p1; p++) dyt[p * kr + k] = src[p];
        }
        for (int64_t p = p0; p < p1; p++)
            for (int64_t k = K; k < kr; k++) dyt[p * kr + k] = 0.0f;
    }
}

/* dx (C,H,W) += col2im(cols (C*R*R, OH*OW)) for one image. */
static void col2im_one(const gopt__conv *c, const float *col, float *dx) {
    const int C = c->C, H = c->H, W = c->W, R = c->R, s = c->stride, pad = c->pad, OH = c->OH, OW = c->OW;
    const int64_t P = (int64_t)OH * OW;
    for (int ci = 0; ci < C; ci++) {
        float *xp = dx + (int64_t)ci * H * W;
        for (int ky = 0; ky < R; ky++)
            for (int kx = 0; kx < R; kx++) {
                const float *src = col + ((int64_t)(ci * R + ky) * R + kx) * P;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * s - pad + ky;
                    if (iy < 0 || iy >= H) continue;
                    float *drow = xp + (int64_t)iy * W;
                    const float *sr = src + (int64_t)oy * OW;
                    for (int ox = 0; ox < OW; ox++) {
                        int ix = ox * s - pad + kx;
                        if (ix >= 0 && ix < W) drow[ix] += sr[ox];
                    }
                }
            }
    }
}

/* ---- workspace layout ------------------------------------------------------------------ */
static inline int64_t up16(int64_t v) { return (v + 15) / 16 * 16; }

static geom fwd_geom(const gopt__conv *c) {
    geom g = {c->C, c->H, c->W, c->R, c->stride, c->pad, c->OH, c->OW, 0};
    int64_t rows = (int64_t)c->C * c->R * c->R;
    /* dw_image walks rows in tiles of 16/12/8/6 for 1/2/3/4 vectors of output channels; with
     * one block of at most 64 channels only that tile divides rows_pad, else all do (48) */
    int nv = (c->K + 15) / 16, rr = c->K > 64 ? 48 : nv == 1 ? 16 : nv == 2 ? 12 : nv == 3 ? 8 : 6;
    g.rows_pad = (int)((rows + rr - 1) / rr * rr);
    return g;
}
/* dX as the stride-1 full convolution of dY: C_out channels in, C out, pad R-1-pad. */
static int dx_is_conv(const gopt__conv *c) { return c->stride == 1 && c->pad <= c->R - 1; }
static geom dx_geom(const gopt__conv *c) {
    geom g = {c->K, c->OH, c->OW, c->R, 1, c->R - 1 - c->pad, c->H, c->W, 0};
    g.rows_pad = c->K * c->R * c->R;
    return g;
}

typedef struct layout {
    int64_t apf, apd, msk;             /* shared: packed forward / dX weights, panel masks */
    int64_t cols, dyt, part, dbp, xin, dxt, slot; /* per-thread offsets within a slot, slot size */
    int64_t kr, crs;
} layout;

static layout get_layout(const gopt__conv *c) {
    layout L;
    const int64_t crs = (int64_t)c->C * c->R * c->R, P = (int64_t)c->OH * c->OW, np = npanels(P);
    const int64_t HW = (int64_t)c->H * c->W, kr = up16(c->K);
    geom g = fwd_geom(c);
    L.kr = kr;
    L.crs = crs;
    L.apf = up16((int64_t)(c->K + MR - 1) / MR * MR * crs);
    L.msk = same_s1(c) ? up16(npanels(P) * c->R * c->R * 4) : 0; /* int64 offs + 4 uint16 masks */
    L.apd = dx_is_conv(c) ? up16((int64_t)(c->C + MR - 1) / MR * MR * c->K * c->R * c->R)
                          : up16((crs + MR - 1) / MR * MR * c->K);
    int64_t cols = (int64_t)g.rows_pad * np * NR;
    int64_t dxneed = dx_is_conv(c) ? (int64_t)c->K * c->R * c->R * npanels(HW) * NR
                                   : (int64_t)c->K * np * NR + up16(crs * P);
    if (dxneed > cols) cols = dxneed;
    L.cols = 0;
    L.dyt = up16(cols);
    L.part = L.dyt + up16(np * NR * kr);
    L.dbp = L.part + up16((int64_t)g.rows_pad * kr);
    L.xin = L.dbp + kr;
    L.dxt = L.xin + up16(HW * c->C);
    L.slot = L.dxt + up16(HW * c->C);
    return L;
}

size_t gopt__conv_fast_ws_floats(const gopt__conv *c) {
    layout L = get_layout(c);
    return (size_t)(L.apf + L.apd + L.msk + L.slot * c->slots + 16);
}

/* out = relu(x scale[ci] + shift[ci]) for one image (C planes of hw): batchnorm + relu
 * applied on the fly (the same expression as the batchnorm kernels, so the same bits). */
TGT static const float *input_transform(const float *x, int C, int64_t hw, const float *scale, const float *shift,
                                        float *out) {
    if (!scale) return x;
    for (int ci = 0; ci < C; ci++) {
        const float sc = scale[ci], sh = shift[ci];
        const float *xp = x + (int64_t)ci * hw;
        float *o = out + (int64_t)ci * hw;
        for (int64_t i = 0; i < hw; i++) {
            float v = xp[i] * sc + sh;
            o[i] = v > 0.0f ? v : 0.0f;
        }
    }
    return out;
}

void gopt__conv_fast_forward(const gopt__conv *c, const float *w, const float *b, const float *x, float *y, int n,
                             float *ws, const float *in_scale, const float *in_shift) {
    const layout L = get_layout(c);
    const geom g = fwd_geom(c);
    const int64_t P = (int64_t)c->OH * c->OW, in_n = (int64_t)c->C * c->H * c->W, out_n = (int64_t)c->K * P;
    float *apf = ws;
    const int direct = same_s1(c), taps = c->R * c->R, C = c->C;
    int64_t *offs = (int64_t *)(ws + L.apf + L.apd);
    uint16_t *masks = (uint16_t *)(offs + (direct ? npanels(P) * taps : 0));
    if (direct) { /* weights by (tap, ci) */
        for (int mt = 0; mt < (c->K + MR - 1) / MR; mt++)
            for (int t = 0; t < taps; t++)
                for (int ci = 0; ci < C; ci++)
                    for (int i = 0; i < MR; i++) {
                        int k = mt * MR + i;
                        apf[(((int64_t)mt * taps + t) * C + ci) * MR + i] =
                            k < c->K ? w[((int64_t)k * C + ci) * taps + t] : 0.0f;
                    }
        panel_masks(c, offs, masks);
    } else {
        pack_a_rowmajor(w, c->K, L.crs, apf);
    }
    const int T = gopt__conv_threads(c, n);
#  pragma omp parallel num_threads(T)
    {
        const int t = gopt__conv_thread_id();
        float *slot = ws + L.apf + L.apd + L.msk + (int64_t)t * L.slot;
        float *cols = slot + L.cols;
        int j0, j1;
        gopt__conv_range(n, t, T, &j0, &j1);
        for (int j = j0; j < j1; j++) {
            float *yj = y + j * out_n;
            const float *xj = input_transform(x + j * in_n, C, (int64_t)c->H * c->W, in_scale, in_shift, slot + L.xin);
            if (direct) {
                conv_direct(c, C, c->K, apf, xj, offs, masks, yj, 0);
            } else {
                pack_cols(&g, xj, cols);
                gemm_panels(apf, c->K, L.crs, cols, g.rows_pad, P, yj, P, 0);
            }
            if (b)
                for (int k = 0; k < c->K; k++)
                    for (int64_t p = 0; p < P; p++) yj[k * P + p] += b[k];
        }
    }
}

void gopt__conv_fast_backward(const gopt__conv *c, const float *w, float *dw, float *db, const float *x,
                              const float *dy, float *dx, int dx_accumulate, int n, float *ws, const float *in_scale,
                              const float *in_shift) {
    const layout L = get_layout(c);
    const geom g = fwd_geom(c);
    const int K = c->K, C = c->C, R = c->R;
    const int64_t P = (int64_t)c->OH * c->OW, HW = (int64_t)c->H * c->W, in_n = (int64_t)C * HW,
                  out_n = (int64_t)K * P, crs = L.crs, kr = L.kr, krr = (int64_t)K * R * R;
    const int conv_dx = dx_is_conv(c);
    const geom gd = dx_geom(c);
    float *apd = ws + L.apf;
    const int direct = same_s1(c), taps = R * R, padded = dw_padded(c);
    int64_t *offs = (int64_t *)(ws + L.apf + L.apd);
    uint16_t *masks = (uint16_t *)(offs + (direct ? npanels(P) * taps : 0));
    if (dx && direct) { /* Wt[ci][(t,k)] = W[k][ci][flipped t], rows ci */
        for (int mt = 0; mt < (C + MR - 1) / MR; mt++)
            for (int t = 0; t < taps; t++)
                for (int k = 0; k < K; k++)
                    for (int i = 0; i < MR; i++) {
                        int ci = mt * MR + i;
                        apd[(((int64_t)mt * taps + t) * K + k) * MR + i] =
                            ci < C ? w[((int64_t)k * C + ci) * taps + (taps - 1 - t)] : 0.0f;
                    }
        panel_masks(c, offs, masks);
    } else if (dx) {
        if (conv_dx) { /* Wt[ci][(k*R+ky)*R+kx] = W[k][ci][R-1-ky][R-1-kx], packed by rows ci */
            for (int mt = 0; mt < (C + MR - 1) / MR; mt++)
                for (int64_t q = 0; q < krr; q++) {
                    int k = (int)(q / (R * R)), ky = (int)((q / R) % R), kx = (int)(q % R);
                    for (int i = 0; i < MR; i++) {
                        int ci = mt * MR + i;
                        apd[((int64_t)mt * krr + q) * MR + i] =
                            ci < C ? w[(((int64_t)k * C + ci) * R + (R - 1 - ky)) * R + (R - 1 - kx)] : 0.0f;
                    }
                }
        } else { /* W^T: rows r = (ci,ky,kx), columns k */
            for (int64_t mt = 0; mt < (crs + MR - 1) / MR; mt++)
                for (int k = 0; k < K; k++)
                    for (int i = 0; i < MR; i++) {
                        int64_t r = mt * MR + i;
                        apd[(mt * K + k) * MR + i] = r < crs ? w[(int64_t)k * crs + r] : 0.0f;
                    }
        }
    }
    const int T = gopt__conv_threads(c, n);
#  pragma omp parallel num_threads(T)
    {
        const int t = gopt__conv_thread_id();
        float *slot = ws + L.apf + L.apd + L.msk + (int64_t)t * L.slot;
        float *cols = slot + L.cols, *dyt = slot + L.dyt, *part = slot + L.part, *dbp = slot + L.dbp;
        memset(part, 0, sizeof(float) * (size_t)(g.rows_pad * kr));
        memset(dbp, 0, sizeof(float) * (size_t)kr);
        int j0, j1;
        gopt__conv_range(n, t, T, &j0, &j1);
        for (int j = j0; j < j1; j++) {
            const float *dyj = dy + j * out_n;
            if (db)
                for (int k = 0; k < K; k++) {
                    float acc = 0.0f;
                    for (int64_t p = 0; p < P; p++) acc += dyj[k * P + p];
                    dbp[k] += acc;
                }
            /* dW first: x_j is read before dx_j (which may alias it) is written */
            if (dw) {
                const float *xj = input_transform(x + j * in_n, C, HW, in_scale, in_shift, slot + L.xin);
                transpose_dy(dyj, K, P, kr, dyt);
                if (padded) {
                    pad_image(xj, C, c->W, cols);
                    dwp_image(c->W, C, cols, dyt, kr, part);
                } else {
                    pack_cols(&g, xj, cols);
                    dw_image(cols, g.rows_pad, P, dyt, kr, part);
                }
            }
            if (!dx) continue;
            /* dx aliasing dy: image j's dX goes to a scratch plane, then over dy_j */
            float *dxj = dx == dy ? slot + L.dxt : dx + j * in_n;
            if (direct) {
                conv_direct(c, K, C, apd, dyj, offs, masks, dxj, dx_accumulate);
            } else if (conv_dx) {
                pack_cols(&gd, dyj, cols);
                gemm_panels(apd, C, krr, cols, gd.rows_pad, HW, dxj, HW, dx_accumulate);
            } else {
                /* dY_j as panels [K][64], then cols = W^T dY_j, then col2im */
                const int64_t np = npanels(P);
                float *cm = cols + K * np * NR;
                for (int64_t pb = 0; pb < np; pb++)
                    for (int k = 0; k < K; k++) {
                        float *d = cols + (pb * K + k) * NR;
                        int64_t p0 = pb * NR, m = P - p0 < NR ? P - p0 : NR;
                        memcpy(d, dyj + k * P + p0, sizeof(float) * (size_t)m);
                        if (m < NR) memset(d + m, 0, sizeof(float) * (size_t)(NR - m));
                    }
                gemm_panels(apd, (int)crs, K, cols, K, P, cm, P, 0);
                if (!dx_accumulate) memset(dxj, 0, sizeof(float) * (size_t)in_n);
                col2im_one(c, cm, dxj);
            }
            if (dx == dy) memcpy(dx + j * in_n, dxj, sizeof(float) * (size_t)in_n);
        }
    }
    if (!dw) return;
    /* combine the per-thread partials in thread order */
#  pragma omp parallel for num_threads(T) schedule(static) if (crs * K > 16384)
    for (int64_t r = 0; r < crs; r++)
        for (int k = 0; k < K; k++) {
            float acc = 0.0f;
            for (int t = 0; t < T; t++) acc += ws[L.apf + L.apd + L.msk + (int64_t)t * L.slot + L.part + r * kr + k];
            dw[(int64_t)k * crs + r] += acc;
        }
    if (db)
        for (int k = 0; k < K; k++) {
            float acc = 0.0f;
            for (int t = 0; t < T; t++) acc += ws[L.apf + L.apd + L.msk + (int64_t)t * L.slot + L.dbp + k];
            db[k] += acc;
        }
}

#else /* no AVX-512 kernels in this build */
int gopt__conv_cpu_fast(void) { return 0; }
size_t gopt__conv_fast_ws_floats(const gopt__conv *c) { return 0; }
/* out = relu(x scale[ci] + shift[ci]) for one image (C planes of hw): batchnorm + relu
 * applied on the fly (the same expression as the batchnorm kernels, so the same bits). */
TGT static const float *input_transform(const float *x, int C, int64_t hw, const float *scale, const float *shift,
                                        float *out) {
    if (!scale) return x;
    for (int ci = 0; ci < C; ci++) {
        const float sc = scale[ci], sh = shift[ci];
        const float *xp = x + (int64_t)ci * hw;
        float *o = out + (int64_t)ci * hw;
        for (int64_t i = 0; i < hw; i++) {
            float v = xp[i] * sc + sh;
            o[i] = v > 0.0f ? v : 0.0f;
        }
    }
    return out;
}

void gopt__conv_fast_forward(const gopt__conv *c, const float *w, const float *b, const float *x, float *y, int n,
                             float *ws, const float *in_scale, const float *in_shift) {}
void gopt__conv_fast_backward(const gopt__conv *c, const float *w, float *dw, float *db, const float *x,
                              const float *dy, float *dx, int dx_accumulate, int n, float *ws, const float *in_scale,
                              const float *in_shift) {}
#endif
