/* Winograd convolution F(4x4, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2016) for 3x3 stride-1 padding-1 layers, in forward, input gradient and
 * weight gradient (see nn/kernels.h, gopt__conv_wino_*). AVX2 + FMA kernels, picked at load
 * time; other CPUs keep the direct paths.
 *
 * Each 4x4 output tile comes from a 6x6 input tile: Y = A^T [(G g G^T) . (B^T d B)] A, so a
 * tile costs 36 multiply-adds per (in, out) channel pair instead of 144: the 36 products of
 * one tile position xi over all channel pairs and a block of NB tiles are one small GEMM
 * M[xi] (K x NB) = U[xi] (K x C) V[xi] (C x NB), run by a 6 x 16 register-tile kernel.
 *  - forward: each thread takes a contiguous range of image groups (one image, or enough
 *    small images to fill NB tiles); a group is copied into a zero-padded buffer, through
 *    relu(x scale + shift) when the caller fuses a batchnorm + relu (the same expression as
 *    the batchnorm kernels, so the same bits), then per block of NB tiles: input transform
 *    (8 tiles per vector: rows loaded 4 floats at a time and transposed), 36 GEMMs, output
 *    transform (transposed back, written 4 floats per row, + bias, or added to y);
 *  - input gradient: the same on dY with the flipped, transposed weights;
 *  - weight gradient by F(2x2,3x3) (4x4 input tiles, 16 products): dL/dg = G^T [sum over
 *    tiles (A dY A^T) . (B^T d B)] G: per block the input transform with 8 channels per
 *    vector (so V^T[xi] is NB x C) and the transform of dY's 2x2 tiles (Z[xi], K x NB), then
 *    dU[xi] += Z[xi] V^T[xi] per thread, combined in thread order and mapped back through
 *    G^T . G once per call. Not F(4x4,3x3) here: its transforms' coefficients (up to 8 and
 *    5, against 1/24 on the way back) left single dW elements 3e-4 off, above PyTorch's 1e-4.
 * The weight gradient runs as a pass of its own before the input gradient, so dx may alias x
 * or dy (a group's dY is copied before its dX is written). Same inputs and thread count give
 * the same bits; other thread counts differ only in dW's rounding.
 *
 * Float32 error against a float64 direct convolution (ResNet-20's 3x3 stride-1 layers,
 * N(0,1) inputs and output gradients, He-initialised weights; max |error| / max |exact|
 * over each output, measured by tests/test_conv_paths.c, which bounds it at 2e-5):
 * forward 3-8e-6, input gradient 3-6e-6, weight gradient 2-6e-7; im2col + SGEMM on the same
 * data 1-8e-7 for all three. */
#include <string.h>

#include "core/common.h"
#include "nn/kernels.h"

#ifdef _OPENMP
#  include <omp.h>
#endif

#define NXI 36 /* 6 x 6 transformed tile */
#define NB 16  /* tiles per block: two vectors of 8 */

typedef struct wgeom {
    int C, K, H, W, Hp, Wp, TW, timg, g, nkb_k, nkb_c; /* nkb_*: blocks of 6 rows */
    int TW2, timg2, g2;                              /* the same for the 2x2 tiles of dW */
    int64_t up, pad, v, m, du, slot;                 /* floats per region */
} wgeom;

static inline int64_t up16(int64_t v) { return (v + 15) / 16 * 16; }

static wgeom wino_geom(const gopt__conv *c) {
    wgeom g;
    g.C = c->C;
    g.K = c->K;
    g.H = c->H;
    g.W = c->W;
    g.Hp = c->H + 2; /* rows -1 .. H */
    g.Wp = c->W + 4; /* cols -1 .. W+2: a tile's second 4-float load ends at col W+2 */
    g.TW = c->W / 4;
    g.timg = (c->H / 4) * g.TW;
    g.g = g.timg >= NB ? 1 : (NB + g.timg - 1) / g.timg;
    g.TW2 = c->W / 2;
    g.timg2 = (c->H / 2) * g.TW2;
    g.g2 = g.timg2 >= NB ? 1 : (NB + g.timg2 - 1) / g.timg2; /* <= g: the padded buffer holds it */
    g.nkb_k = (c->K + 5) / 6;
    g.nkb_c = (c->C + 5) / 6;
    const int64_t cmax = c->C > c->K ? c->C : c->K, r6 = 6 * (g.nkb_k > g.nkb_c ? g.nkb_k : g.nkb_c);
    const int64_t uf = (int64_t)NXI * 6 * g.nkb_k * c->C, ub = (int64_t)NXI * 6 * g.nkb_c * c->K;
    g.up = up16(uf > ub ? uf : ub);
    g.pad = up16((int64_t)g.g * cmax * g.Hp * g.Wp);
    g.v = up16((int64_t)NXI * cmax * NB);
    g.m = up16((int64_t)NXI * r6 * NB);
    g.du = up16((int64_t)NXI * 6 * g.nkb_k * c->C);
    g.slot = g.pad + g.v + g.m + g.du;
    return g;
}

int gopt__conv_wino_shape_ok(const gopt__conv *c) {
    return c->R == 3 && c->stride == 1 && c->pad == 1 && c->H % 4 == 0 && c->W % 4 == 0 && c->C % 8 == 0;
}

size_t gopt__conv_wino_ws_floats(const gopt__conv *c) {
    wgeom g = wino_geom(c);
    return (size_t)(g.up + g.slot * c->slots + 16);
}

/* ---- weight transforms (scalar, once per call; double inside) ------------------------ */
/* u = G g G^T for one 3x3 filter (row-major), u row-major 6x6 */
static void wtrans(const float *gk, float u[NXI]) {
    double t[6][3];
    for (int j = 0; j < 3; j++) {
        double g0 = gk[j], g1 = gk[3 + j], g2 = gk[6 + j];
        t[0][j] = g0 / 4;
        t[1][j] = -(g0 + g1 + g2) / 6;
        t[2][j] = -(g0 - g1 + g2) / 6;
        t[3][j] = g0 / 24 + g1 / 12 + g2 / 6;
        t[4][j] = g0 / 24 - g1 / 12 + g2 / 6;
        t[5][j] = g2;
    }
    for (int i = 0; i < 6; i++) {
        double g0 = t[i][0], g1 = t[i][1], g2 = t[i][2];
        u[i * 6 + 0] = (float)(g0 / 4);
        u[i * 6 + 1] = (float)(-(g0 + g1 + g2) / 6);
        u[i * 6 + 2] = (float)(-(g0 - g1 + g2) / 6);
        u[i * 6 + 3] = (float)(g0 / 24 + g1 / 12 + g2 / 6);
        u[i * 6 + 4] = (float)(g0 / 24 - g1 / 12 + g2 / 6);
        u[i * 6 + 5] = (float)g2;
    }
}

/* dw (3x3) += G^T du G for F(2x2,3x3): G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1] */
static void wtrans_back2(const double du[16], float *dw) {
    double t[3][4];
    for (int j = 0; j < 4; j++) {
        double u0 = du[j], u1 = du[4 + j], u2 = du[8 + j], u3 = du[12 + j];
        t[0][j] = u0 + 0.5 * (u1 + u2);
        t[1][j] = 0.5 * (u1 - u2);
        t[2][j] = 0.5 * (u1 + u2) + u3;
    }
    for (int i = 0; i < 3; i++) {
        double u0 = t[i][0], u1 = t[i][1], u2 = t[i][2], u3 = t[i][3];
        dw[i * 3 + 0] += (float)(u0 + 0.5 * (u1 + u2));
        dw[i * 3 + 1] += (float)(0.5 * (u1 - u2));
        dw[i * 3 + 2] += (float)(0.5 * (u1 + u2) + u3);
    }
}

/* up[xi][ob][i][6] = U of output channel ob*6+r, input channel i, for o in [o0, o1); the
 * call whose range ends at O also zeroes the padding rows past O.
 * flip: the input gradient's filters, W'[i=k][o=c] = W[k][c] rotated 180 degrees. */
static void pack_filters(const float *w, int K, int C, int flip, float *up, int o0, int o1) {
    const int I = flip ? K : C, nob = ((flip ? C : K) + 5) / 6;
    for (int o = o0; o < o1; o++)
        for (int i = 0; i < I; i++) {
            float g[9], u[NXI];
            const float *src = flip ? w + ((int64_t)i * C + o) * 9 : w + ((int64_t)o * C + i) * 9;
            for (int t = 0; t < 9; t++) g[t] = flip ? src[8 - t] : src[t];
            wtrans(g, u);
            for (int xi = 0; xi < NXI; xi++) up[(((int64_t)xi * nob + o / 6) * I + i) * 6 + o % 6] = u[xi];
        }
    if (o1 == (flip ? C : K)) /* the padding rows: zeros (stale workspace could hold denormals) */
        for (int o = o1; o < nob * 6; o++)
            for (int i = 0; i < I; i++)
                for (int xi = 0; xi < NXI; xi++) up[(((int64_t)xi * nob + o / 6) * I + i) * 6 + o % 6] = 0.0f;
}

/* gi images of Ci planes into the zero-padded buffer, through relu(x sc + sh) if sc. Plain C
 * (no FMA contraction in a target region), so the expression rounds as the batchnorm's. */
static void pad_images(const float *x, int gi, int Ci, int H, int W, int Hp, int Wp, const float *sc,
                       const float *sh, float *pad) {
    for (int64_t p = 0; p < (int64_t)gi * Ci; p++) {
        const float *s = x + p * H * W;
        float *d = pad + p * Hp * Wp;
        memset(d, 0, sizeof(float) * (size_t)Wp);
        for (int h = 0; h < H; h++) {
            float *row = d + (int64_t)(h + 1) * Wp;
            const float *sr = s + (int64_t)h * W;
            row[0] = 0.0f;
            if (sc) {
                const float a = sc[p % Ci], b = sh[p % Ci];
                for (int i = 0; i < W; i++) {
                    float v = sr[i] * a + b;
                    row[1 + i] = v > 0.0f ? v : 0.0f;
                }
            } else {
                memcpy(row + 1, sr, sizeof(float) * (size_t)W);
            }
            memset(row + 1 + W, 0, sizeof(float) * (size_t)(Wp - 1 - W));
        }
        memset(d + (int64_t)(H + 1) * Wp, 0, sizeof(float) * (size_t)Wp * (Hp - H - 1));
    }
}

#if GOPT__CONV_HAVE_AVX512 /* x86-64 with GCC or clang: target attributes */
#  include <immintrin.h>
#  define WT __attribute__((target("avx2,fma")))
#  define WTI __attribute__((target("avx2,fma"), always_inline)) static inline

int gopt__conv_cpu_wino(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* 4x4 transpose within each 128-bit half */
WTI void tr4(__m256 *r0, __m256 *r1, __m256 *r2, __m256 *r3) {
    __m256 t0 = _mm256_unpacklo_ps(*r0, *r1), t1 = _mm256_unpackhi_ps(*r0, *r1);
    __m256 t2 = _mm256_unpacklo_ps(*r2, *r3), t3 = _mm256_unpackhi_ps(*r2, *r3);
    *r0 = _mm256_shuffle_ps(t0, t2, 0x44);
    *r1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    *r2 = _mm256_shuffle_ps(t1, t3, 0x44);
    *r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/* lane l of the result: 4 floats at p[l] + off, lanes 0-3 low half, 4-7 high half, then
 * transposed: d[j] holds element j of every lane */
WTI void load_tr4(const float *const p[8], int64_t off, __m256 d[4]) {
    for (int l = 0; l < 4; l++)
        d[l] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p[l] + off)), _mm_loadu_ps(p[l + 4] + off), 1);
    tr4(&d[0], &d[1], &d[2], &d[3]);
}

/* v = B^T d (6 points) */
WTI void bt1d(const __m256 d[6], __m256 v[6]) {
    const __m256 f2 = _mm256_set1_ps(2.0f), f4 = _mm256_set1_ps(4.0f), f5 = _mm256_set1_ps(5.0f);
    v[0] = _mm256_fmadd_ps(f4, d[0], _mm256_fnmadd_ps(f5, d[2], d[4]));
    v[1] = _mm256_fnmadd_ps(f4, _mm256_add_ps(d[1], d[2]), _mm256_add_ps(d[3], d[4]));
    v[2] = _mm256_fmadd_ps(f4, _mm256_sub_ps(d[1], d[2]), _mm256_sub_ps(d[4], d[3]));
    const __m256 e = _mm256_sub_ps(d[4], d[2]), f = _mm256_sub_ps(d[3], d[1]);
    v[3] = _mm256_fmadd_ps(f2, f, e);
    v[4] = _mm256_fnmadd_ps(f2, f, e);
    v[5] = _mm256_fmadd_ps(f4, d[1], _mm256_fnmadd_ps(f5, d[3], d[5]));
}

/* o = A^T m (6 points -> 4) */
WTI void at1d(const __m256 m[6], __m256 o[4]) {
    const __m256 a = _mm256_add_ps(m[1], m[2]), b = _mm256_sub_ps(m[1], m[2]);
    const __m256 c = _mm256_add_ps(m[3], m[4]), d = _mm256_sub_ps(m[3], m[4]);
    o[0] = _mm256_add_ps(_mm256_add_ps(m[0], a), c);
    o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d, b);
    o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), c, a);
    o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d, b), m[5]);
}

/* B^T d B of 8 6x6 tiles (lane l: rows p[l] + i ld, i < 6): out[xi * xs + l] */
WT static void itrans8(const float *const p[8], int64_t ld, float *out, int64_t xs) {
    __m256 e[6][6];
    for (int i = 0; i < 6; i++) {
        __m256 d[8];
        load_tr4(p, i * ld, d);
        load_tr4(p, i * ld + 4, d + 4);
        bt1d(d, e[i]);
    }
    for (int j = 0; j < 6; j++) {
        __m256 col[6] = {e[0][j], e[1][j], e[2][j], e[3][j], e[4][j], e[5][j]}, v[6];
        bt1d(col, v);
        for (int i = 0; i < 6; i++) _mm256_storeu_ps(out + (i * 6 + j) * xs, v[i]);
    }
}

/* A^T M A of 8 tiles (m[xi * xs + l]) to lane l's 4x4 output at q[l] (row stride ld; NULL:
 * no tile), + bias, or added to what is there */
WT static void otrans8(const float *m, int64_t xs, float *const q[8], int64_t ld, float bias, int acc) {
    __m256 e[6][4];
    for (int i = 0; i < 6; i++) {
        __m256 r[6];
        for (int j = 0; j < 6; j++) r[j] = _mm256_loadu_ps(m + (i * 6 + j) * xs);
        at1d(r, e[i]);
    }
    __m256 y[4][4];
    const __m256 bv = _mm256_set1_ps(bias);
    for (int j = 0; j < 4; j++) {
        __m256 col[6] = {e[0][j], e[1][j], e[2][j], e[3][j], e[4][j], e[5][j]}, o[4];
        at1d(col, o);
        for (int i = 0; i < 4; i++) y[i][j] = _mm256_add_ps(o[i], bv);
    }
    for (int i = 0; i < 4; i++) {
        __m256 r0 = y[i][0], r1 = y[i][1], r2 = y[i][2], r3 = y[i][3];
        tr4(&r0, &r1, &r2, &r3);
        __m256 rr[4] = {r0, r1, r2, r3};
        for (int l = 0; l < 4; l++) {
            __m128 lo = _mm256_castps256_ps128(rr[l]), hi = _mm256_extractf128_ps(rr[l], 1);
            float *a = q[l], *b = q[l + 4];
            if (a) {
                a += i * ld;
                _mm_storeu_ps(a, acc ? _mm_add_ps(_mm_loadu_ps(a), lo) : lo);
            }
            if (b) {
                b += i * ld;
                _mm_storeu_ps(b, acc ? _mm_add_ps(_mm_loadu_ps(b), hi) : hi);
            }
        }
    }
}

/* F(2x2,3x3) for dW: v = B^T d (4 points), z = A y (2 points -> 4) */
WTI void bt2(const __m256 d[4], __m256 v[4]) {
    v[0] = _mm256_sub_ps(d[0], d[2]);
    v[1] = _mm256_add_ps(d[1], d[2]);
    v[2] = _mm256_sub_ps(d[2], d[1]);
    v[3] = _mm256_sub_ps(d[1], d[3]);
}

WTI void a2(const __m256 y[2], __m256 z[4]) {
    z[0] = y[0];
    z[1] = _mm256_add_ps(y[0], y[1]);
    z[2] = _mm256_sub_ps(y[0], y[1]);
    z[3] = _mm256_sub_ps(_mm256_setzero_ps(), y[1]);
}

/* B^T d B of 8 4x4 tiles (lane l: rows p[l] + i ld, i < 4): out[xi * xs + l], xi < 16 */
WT static void itrans4_8(const float *const p[8], int64_t ld, float *out, int64_t xs) {
    __m256 e[4][4];
    for (int i = 0; i < 4; i++) {
        __m256 d[4];
        load_tr4(p, i * ld, d);
        bt2(d, e[i]);
    }
    for (int j = 0; j < 4; j++) {
        __m256 col[4] = {e[0][j], e[1][j], e[2][j], e[3][j]}, v[4];
        bt2(col, v);
        for (int i = 0; i < 4; i++) _mm256_storeu_ps(out + (i * 4 + j) * xs, v[i]);
    }
}

/* A dY A^T of 8 2x2 tiles (lane l: rows p[l] + i ld, i < 2): out[xi * xs + l], xi < 16 */
WT static void ztrans2_8(const float *const p[8], int64_t ld, float *out, int64_t xs) {
    __m256 e[2][4];
    for (int i = 0; i < 2; i++) {
        __m128 h[4];
        for (int l = 0; l < 4; l++)
            h[l] = _mm_loadh_pi(_mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(p[2 * l] + i * ld)),
                                (const __m64 *)(p[2 * l + 1] + i * ld));
        const __m256 y0 = _mm256_insertf128_ps(_mm256_castps128_ps256(h[0]), h[2], 1); /* lanes 0 1 | 4 5 */
        const __m256 y1 = _mm256_insertf128_ps(_mm256_castps128_ps256(h[1]), h[3], 1); /* lanes 2 3 | 6 7 */
        __m256 d[2] = {_mm256_shuffle_ps(y0, y1, 0x88), _mm256_shuffle_ps(y0, y1, 0xDD)};
        a2(d, e[i]);
    }
    for (int j = 0; j < 4; j++) {
        __m256 col[2] = {e[0][j], e[1][j]}, z[4];
        a2(col, z);
        for (int i = 0; i < 4; i++) _mm256_storeu_ps(out + (i * 4 + j) * xs, z[i]);
    }
}

#  define ROW6(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* m (rows r0 .. r0+R of a 6-row block, x NB) = u ([I][6] of that block) x v (I x NB): R = 6,
 * or 4 / 2 for the last block of an O that is not a multiple of 6 (its other rows unread) */
#  define GEMM_FWD_ROWS(R, ROWS)                                                        \
      WT static void gemm_fwd##R(const float *u, const float *v, float *mo, int I) {    \
          ROWS(DECL)                                                                  \
          for (int i = 0; i < I; i++) {                                               \
              const __m256 v0 = _mm256_loadu_ps(v + i * NB), v1 = _mm256_loadu_ps(v + i * NB + 8); \
              ROWS(FMA)                                                               \
          }                                                                           \
          ROWS(ST)                                                                    \
      }
#  define DECL(r) __m256 a##r##0 = _mm256_setzero_ps(), a##r##1 = _mm256_setzero_ps();
#  define FMA(r)                                                  \
      {                                                           \
          const __m256 ur = _mm256_broadcast_ss(u + i * 6 + r);   \
          a##r##0 = _mm256_fmadd_ps(ur, v0, a##r##0);             \
          a##r##1 = _mm256_fmadd_ps(ur, v1, a##r##1);             \
      }
#  define ST(r)                                 \
      _mm256_storeu_ps(mo + r * NB, a##r##0);   \
      _mm256_storeu_ps(mo + r * NB + 8, a##r##1);
#  define ROW4(X) X(0) X(1) X(2) X(3)
#  define ROW2(X) X(0) X(1)
GEMM_FWD_ROWS(6, ROW6)
GEMM_FWD_ROWS(4, ROW4)
GEMM_FWD_ROWS(2, ROW2)
#  undef DECL
#  undef FMA
#  undef ST

/* m (nob*6 x NB) = up (nob blocks of [I][6]) x v (I x NB), rows past O left unwritten */
WT static void gemm_fwd(const float *up, const float *v, float *m, int I, int nob, int O) {
    for (int ob = 0; ob < nob; ob++) {
        const float *u = up + (int64_t)ob * I * 6;
        float *mo = m + (int64_t)ob * 6 * NB;
        const int rows = O - ob * 6;
        if (rows > 4)
            gemm_fwd6(u, v, mo, I);
        else if (rows > 2)
            gemm_fwd4(u, v, mo, I);
        else
            gemm_fwd2(u, v, mo, I);
    }
}

/* du (nkb*6 x C) += z (nkb*6 x NB) x vt (NB x C); C a multiple of 8 */
WT static void gemm_wgrad(const float *z, const float *vt, float *du, int C, int nkb) {
    for (int kb = 0; kb < nkb; kb++) {
        const float *zk = z + (int64_t)kb * 6 * NB;
        float *dk = du + (int64_t)kb * 6 * C;
        int c0 = 0;
        for (; c0 + 16 <= C; c0 += 16) {
#  define DECL(r) __m256 a##r##0 = _mm256_setzero_ps(), a##r##1 = _mm256_setzero_ps();
            ROW6(DECL)
#  undef DECL
            for (int b = 0; b < NB; b++) {
                const __m256 v0 = _mm256_loadu_ps(vt + b * C + c0), v1 = _mm256_loadu_ps(vt + b * C + c0 + 8);
#  define FMA(r)                                                \
      {                                                         \
          const __m256 zr = _mm256_broadcast_ss(zk + r * NB + b); \
          a##r##0 = _mm256_fmadd_ps(zr, v0, a##r##0);           \
          a##r##1 = _mm256_fmadd_ps(zr, v1, a##r##1);           \
      }
                ROW6(FMA)
#  undef FMA
            }
#  define ST(r)                                                                                 \
      _mm256_storeu_ps(dk + r * C + c0, _mm256_add_ps(_mm256_loadu_ps(dk + r * C + c0), a##r##0)); \
      _mm256_storeu_ps(dk + r * C + c0 + 8, _mm256_add_ps(_mm256_loadu_ps(dk + r * C + c0 + 8), a##r##1));
            ROW6(ST)
#  undef ST
        }
        for (; c0 < C; c0 += 8) {
#  define DECL(r) __m256 a##r##0 = _mm256_setzero_ps();
            ROW6(DECL)
#  undef DECL
            for (int b = 0; b < NB; b++) {
                const __m256 v0 = _mm256_loadu_ps(vt + b * C + c0);
#  define FMA(r) a##r##0 = _mm256_fmadd_ps(_mm256_broadcast_ss(zk + r * NB + b), v0, a##r##0);
                ROW6(FMA)
#  undef FMA
            }
#  define ST(r) _mm256_storeu_ps(dk + r * C + c0, _mm256_add_ps(_mm256_loadu_ps(dk + r * C + c0), a##r##0));
            ROW6(ST)
#  undef ST
        }
    }
}

/* ---- drivers ------------------------------------------------------------------------- */
/* where tile tl of a group lies: image, and offsets of its top-left corner in the padded
 * buffer (plane stride apart) and in an unpadded plane */
typedef struct tile_at {
    int img;
    int64_t pad_off, off;
} tile_at;

static inline tile_at tile_of(const wgeom *g, int tl) {
    tile_at t;
    t.img = tl / g->timg;
    const int r = tl % g->timg, ty = r / g->TW, tx = r % g->TW;
    t.pad_off = (int64_t)4 * ty * g->Wp + 4 * tx;
    t.off = (int64_t)4 * ty * g->W + 4 * tx;
    return t;
}

/* y (n, O, H, W) = or += conv3x3(x (n, I, H, W)) with w's filters packed into up first (the
 * threads split the packing, then the image groups) (+ bias) */
static void wino_run(const gopt__conv *c, const wgeom *g, const float *w, int flip, float *up, int I, int O,
                     const float *bias, const float *x, float *y, int acc, int n, float *ws, const float *sc,
                     const float *sh) {
    const int groups = (n + g->g - 1) / g->g, nob = (O + 5) / 6, T = gopt__conv_threads(c, groups);
    const int64_t HW = (int64_t)g->H * g->W, HWp = (int64_t)g->Hp * g->Wp;
#  pragma omp parallel num_threads(T)
    {
        const int t = gopt__conv_thread_id();
        pack_filters(w, g->K, g->C, flip, up, (int)((int64_t)O * t / T), (int)((int64_t)O * (t + 1) / T));
#  pragma omp barrier
        float *slot = ws + g->up + (int64_t)t * g->slot;
        float *pad = slot, *V = pad + g->pad, *M = V + g->v;
        int q0, q1;
        gopt__conv_range(groups, t, T, &q0, &q1);
        for (int q = q0; q < q1; q++) {
            const int img0 = q * g->g, gi = n - img0 < g->g ? n - img0 : g->g, ntiles = gi * g->timg;
            pad_images(x + (int64_t)img0 * I * HW, gi, I, g->H, g->W, g->Hp, g->Wp, sc, sh, pad);
            for (int t0 = 0; t0 < ntiles; t0 += NB) {
                const float *lp[NB];
                float *lq[NB];
                for (int l = 0; l < NB; l++) {
                    const int valid = t0 + l < ntiles;
                    tile_at at = tile_of(g, valid ? t0 + l : t0);
                    lp[l] = pad + (int64_t)at.img * I * HWp + at.pad_off;
                    lq[l] = valid ? y + (int64_t)(img0 + at.img) * O * HW + at.off : NULL;
                }
                for (int i = 0; i < I; i++)
                    for (int h = 0; h < 2; h++) {
                        const float *p8[8];
                        for (int l = 0; l < 8; l++) p8[l] = lp[h * 8 + l] + i * HWp;
                        itrans8(p8, g->Wp, V + i * NB + h * 8, (int64_t)I * NB);
                    }
                for (int xi = 0; xi < NXI; xi++)
                    gemm_fwd(up + (int64_t)xi * nob * 6 * I, V + (int64_t)xi * I * NB, M + (int64_t)xi * nob * 6 * NB,
                             I, nob, O);
                for (int o = 0; o < O; o++)
                    for (int h = 0; h < 2; h++) {
                        float *q8[8];
                        for (int l = 0; l < 8; l++) q8[l] = lq[h * 8 + l] ? lq[h * 8 + l] + o * HW : NULL;
                        otrans8(M + o * NB + h * 8, (int64_t)nob * 6 * NB, q8, g->W, bias ? bias[o] : 0.0f, acc);
                    }
            }
        }
    }
}

void gopt__conv_wino_forward(const gopt__conv *c, const float *w, const float *b, const float *x, float *y, int n,
                             float *ws, const float *in_scale, const float *in_shift) {
    const wgeom g = wino_geom(c);
    wino_run(c, &g, w, 0, ws, c->C, c->K, b, x, y, 0, n, ws, in_scale, in_shift);
}

/* dw += the weight gradient, summed per thread in slot.du, then in thread order. F(2x2,3x3)
 * here, not F(4x4,3x3): the 4x4 transforms' large coefficients (up to 8 and 5, against 1/24
 * on the way back) cost dW about 3e-4 relative error on single elements, above PyTorch's
 * 1e-4; the 2x2 ones (coefficients 1 and 1/2) stay near direct convolution's. */
static void wino_wgrad(const gopt__conv *c, const wgeom *g, float *dw, const float *x, const float *dy, int n,
                       float *ws, const float *sc, const float *sh) {
    enum { NX = 16 };
    const int groups = (n + g->g2 - 1) / g->g2, C = g->C, K = g->K, nkb = g->nkb_k, T = gopt__conv_threads(c, groups);
    const int64_t HW = (int64_t)g->H * g->W, HWp = (int64_t)g->Hp * g->Wp, rows = (int64_t)nkb * 6;
#  pragma omp parallel num_threads(T)
    {
        const int t = gopt__conv_thread_id();
        float *slot = ws + g->up + (int64_t)t * g->slot;
        float *pad = slot, *Vt = pad + g->pad, *Z = Vt + g->v, *dU = Z + g->m;
        memset(dU, 0, sizeof(float) * (size_t)(NX * rows * C));
        memset(Z, 0, sizeof(float) * (size_t)(NX * rows * NB)); /* rows K.. stay 0 */
        int q0, q1;
        gopt__conv_range(groups, t, T, &q0, &q1);
        for (int q = q0; q < q1; q++) {
            const int img0 = q * g->g2, gi = n - img0 < g->g2 ? n - img0 : g->g2, ntiles = gi * g->timg2;
            pad_images(x + (int64_t)img0 * C * HW, gi, C, g->H, g->W, g->Hp, g->Wp, sc, sh, pad);
            for (int t0 = 0; t0 < ntiles; t0 += NB) {
                const float *lz[NB];
                for (int l = 0; l < NB; l++) {
                    const int valid = t0 + l < ntiles, tl = valid ? t0 + l : t0;
                    const int img = tl / g->timg2, r = tl % g->timg2, ty = r / g->TW2, tx = r % g->TW2;
                    lz[l] = dy + (int64_t)(img0 + img) * K * HW + (int64_t)2 * ty * g->W + 2 * tx;
                    if (!valid) { /* no tile: V^T row of zeros, so whatever Z holds adds nothing */
                        for (int xi = 0; xi < NX; xi++) memset(Vt + ((int64_t)xi * NB + l) * C, 0, sizeof(float) * C);
                        continue;
                    }
                    const float *base = pad + (int64_t)img * C * HWp + (int64_t)2 * ty * g->Wp + 2 * tx;
                    for (int c0 = 0; c0 < C; c0 += 8) {
                        const float *p8[8];
                        for (int j = 0; j < 8; j++) p8[j] = base + (c0 + j) * HWp;
                        itrans4_8(p8, g->Wp, Vt + (int64_t)l * C + c0, (int64_t)NB * C);
                    }
                }
                for (int k = 0; k < K; k++)
                    for (int h = 0; h < 2; h++) {
                        const float *p8[8];
                        for (int l = 0; l < 8; l++) p8[l] = lz[h * 8 + l] + k * HW;
                        ztrans2_8(p8, g->W, Z + k * NB + h * 8, rows * NB);
                    }
                for (int xi = 0; xi < NX; xi++)
                    gemm_wgrad(Z + xi * rows * NB, Vt + (int64_t)xi * NB * C, dU + xi * rows * C, C, nkb);
            }
        }
    }
    /* combine in thread order (double), then dw += G^T dU G; output channels split over
     * the threads (each (k, c) the same sum whoever does it) */
#  pragma omp parallel for num_threads(T) schedule(static)
    for (int k = 0; k < K; k++)
        for (int ci = 0; ci < C; ci++) {
            double u[NX] = {0};
            for (int t = 0; t < T; t++) {
                const float *dU = ws + g->up + (int64_t)t * g->slot + g->pad + g->v + g->m;
                for (int xi = 0; xi < NX; xi++) u[xi] += dU[((int64_t)xi * rows + k) * C + ci];
            }
            wtrans_back2(u, dw + ((int64_t)k * C + ci) * 9);
        }
}

void gopt__conv_wino_backward(const gopt__conv *c, const float *w, float *dw, float *db, const float *x,
                              const float *dy, float *dx, int dx_accumulate, int n, float *ws, const float *in_scale,
                              const float *in_shift) {
    const wgeom g = wino_geom(c);
    if (db) gopt__conv_bias_grad(c, dy, n, db);
    if (dw) wino_wgrad(c, &g, dw, x, dy, n, ws, in_scale, in_shift);
    if (!dx) return;
    wino_run(c, &g, w, 1, ws, c->K, c->C, NULL, dy, dx, dx_accumulate, n, ws, NULL, NULL);
}

#else /* no AVX2 kernels in this build: the direct paths run */
int gopt__conv_cpu_wino(void) { return 0; }
void gopt__conv_wino_forward(const gopt__conv *c, const float *w, const float *b, const float *x, float *y, int n,
                             float *ws, const float *in_scale, const float *in_shift) {
    (void)c, (void)w, (void)b, (void)x, (void)y, (void)n, (void)ws, (void)in_scale, (void)in_shift;
    (void)pad_images, (void)pack_filters, (void)wtrans_back2;
}
void gopt__conv_wino_backward(const gopt__conv *c, const float *w, float *dw, float *db, const float *x,
                              const float *dy, float *dx, int dx_accumulate, int n, float *ws, const float *in_scale,
                              const float *in_shift) {
    (void)c, (void)w, (void)dw, (void)db, (void)x, (void)dy, (void)dx, (void)dx_accumulate, (void)n, (void)ws;
    (void)in_scale, (void)in_shift;
}
#endif
