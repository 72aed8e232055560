/* AVX2 + FMA matrix products for the im2col convolution path (see nn/kernels.h,
 * gopt__cgemm_*): the shapes of a convolution layer (M = 16 to 64 output channels, K a few
 * hundred, N = a chunk's pixels, a multiple of 16) are too thin for a general SGEMM to pay
 * for packing the wide operand, so only the small one is packed:
 *  - C = A B: A (M x K) packed once per call into 6-row blocks [K][6]; B row-major read in
 *    16-column panels, each panel (K x 16 floats) copied to one contiguous block on the
 *    stack and reused from L1 by every row block through a 6 x 16 register tile;
 *  - D += G Bt^T (dW: a reduction over the pixels): 4 x 3 register tiles of 8-lane partial
 *    sums over N, added up once per tile.
 * Each output element is summed in a fixed order, so results do not depend on threads. */
#include "core/common.h"
#include "nn/kernels.h"

#if GOPT__CONV_HAVE_AVX512 /* x86-64 with GCC or clang: target attributes */
#  include <immintrin.h>
#  define CT __attribute__((target("avx2,fma")))

void gopt__cgemm_pack_a(const float *a, int M, int K, int trans, float *ap) {
    const int nmb = (M + 5) / 6;
    for (int mb = 0; mb < nmb; mb++)
        for (int k = 0; k < K; k++)
            for (int r = 0; r < 6; r++) {
                const int m = mb * 6 + r;
                ap[((int64_t)mb * K + k) * 6 + r] =
                    m < M ? (trans ? a[(int64_t)k * M + m] : a[(int64_t)m * K + k]) : 0.0f;
            }
}

#  define ROW6(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* one 16-column panel: c rows of the 6-row blocks = ap x bp, bp read at stride ldb */
static inline __attribute__((always_inline)) CT void nn_panel(const float *ap, int M, int K, const float *bp,
                                                              int64_t ldb, float *c, int64_t ldc) {
    const int nmb = (M + 5) / 6;
    for (int mb = 0; mb < nmb; mb++) {
        const float *u = ap + (int64_t)mb * K * 6;
#  define DECL(r) __m256 a##r##0 = _mm256_setzero_ps(), a##r##1 = _mm256_setzero_ps();
        ROW6(DECL)
#  undef DECL
        for (int k = 0; k < K; k++) {
            const __m256 v0 = _mm256_loadu_ps(bp + k * ldb), v1 = _mm256_loadu_ps(bp + k * ldb + 8);
#  define FMA(r)                                                \
      {                                                         \
          const __m256 ur = _mm256_broadcast_ss(u + k * 6 + r); \
          a##r##0 = _mm256_fmadd_ps(ur, v0, a##r##0);           \
          a##r##1 = _mm256_fmadd_ps(ur, v1, a##r##1);           \
      }
            ROW6(FMA)
#  undef FMA
        }
        const int rows = M - mb * 6 < 6 ? M - mb * 6 : 6;
        float *co = c + (int64_t)mb * 6 * ldc;
#  define ST(r)                                        \
      if (r < rows) {                                  \
          _mm256_storeu_ps(co + r * ldc, a##r##0);     \
          _mm256_storeu_ps(co + r * ldc + 8, a##r##1); \
      }
        ROW6(ST)
#  undef ST
    }
}

#  define PANEL_MAX_K 1024 /* panels up to 64 KB are copied to the stack first */

CT void gopt__cgemm_nn(const float *ap, int M, int K, const float *b, int64_t ldb, int N, float *c, int64_t ldc) {
    float panel[PANEL_MAX_K * 16] __attribute__((aligned(32)));
    for (int n0 = 0; n0 < N; n0 += 16) {
        if (K > PANEL_MAX_K || M <= 6) { /* one row block: the panel would be read once */
            nn_panel(ap, M, K, b + n0, ldb, c + n0, ldc);
            continue;
        }
        /* the panel's K rows of 64 bytes, ldb apart, made one contiguous L1 block: every
         * row block then streams it instead of K separate lines */
        for (int k = 0; k < K; k++) {
            _mm256_store_ps(panel + k * 16, _mm256_loadu_ps(b + k * ldb + n0));
            _mm256_store_ps(panel + k * 16 + 8, _mm256_loadu_ps(b + k * ldb + n0 + 8));
        }
        nn_panel(ap, M, K, panel, 16, c + n0, ldc);
    }
}

CT void gopt__cgemm_gather2(float *d, const float *s, int n, int one_more) {
    int i = 0;
    for (; i + 8 < n || (i + 8 == n && one_more); i += 8) { /* the even lanes of 16 floats, in order */
        const __m256 a = _mm256_loadu_ps(s + 2 * i), b = _mm256_loadu_ps(s + 2 * i + 8);
        const __m256 e = _mm256_shuffle_ps(a, b, 0x88); /* a0 a2 b0 b2 | a4 a6 b4 b6 */
        _mm256_storeu_ps(d + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
    }
    for (; i < n; i++) d[i] = s[2 * i];
}

CT void gopt__cgemm_scatter_add2(float *d, const float *s, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) { /* d[2i] += s[i]: s interleaved with zeros, added to 16 floats */
        const __m256 v = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_loadu_ps(s + i)), 0xD8));
        const __m256 z = _mm256_setzero_ps();
        const __m256 lo = _mm256_unpacklo_ps(v, z), hi = _mm256_unpackhi_ps(v, z); /* s0 0 s1 0 s2 0 s3 0 | ... */
        _mm256_storeu_ps(d + 2 * i, _mm256_add_ps(_mm256_loadu_ps(d + 2 * i), lo));
        _mm256_storeu_ps(d + 2 * i + 8, _mm256_add_ps(_mm256_loadu_ps(d + 2 * i + 8), hi));
    }
    for (; i < n; i++) d[2 * i] += s[i];
}

static inline CT float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

CT void gopt__cgemm_nt_acc(const float *g, int M, int64_t ldg, const float *bt, int Kc, int64_t ldb, int N,
                           float *d, int64_t ldd) {
    for (int m0 = 0; m0 < M; m0 += 4) {
        const float *g0 = g + (int64_t)m0 * ldg, *g1 = g0 + ldg, *g2 = g1 + ldg, *g3 = g2 + ldg;
        int j = 0;
        for (; j + 3 <= Kc; j += 3) {
            const float *b0 = bt + (int64_t)j * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb;
            __m256 s00 = _mm256_setzero_ps(), s01 = s00, s02 = s00, s10 = s00, s11 = s00, s12 = s00;
            __m256 s20 = s00, s21 = s00, s22 = s00, s30 = s00, s31 = s00, s32 = s00;
            for (int n = 0; n < N; n += 8) {
                const __m256 x0 = _mm256_loadu_ps(b0 + n), x1 = _mm256_loadu_ps(b1 + n), x2 = _mm256_loadu_ps(b2 + n);
                __m256 y = _mm256_loadu_ps(g0 + n);
                s00 = _mm256_fmadd_ps(y, x0, s00), s01 = _mm256_fmadd_ps(y, x1, s01), s02 = _mm256_fmadd_ps(y, x2, s02);
                y = _mm256_loadu_ps(g1 + n);
                s10 = _mm256_fmadd_ps(y, x0, s10), s11 = _mm256_fmadd_ps(y, x1, s11), s12 = _mm256_fmadd_ps(y, x2, s12);
                y = _mm256_loadu_ps(g2 + n);
                s20 = _mm256_fmadd_ps(y, x0, s20), s21 = _mm256_fmadd_ps(y, x1, s21), s22 = _mm256_fmadd_ps(y, x2, s22);
                y = _mm256_loadu_ps(g3 + n);
                s30 = _mm256_fmadd_ps(y, x0, s30), s31 = _mm256_fmadd_ps(y, x1, s31), s32 = _mm256_fmadd_ps(y, x2, s32);
            }
            float *dd = d + (int64_t)m0 * ldd + j;
            dd[0] += hsum8(s00), dd[1] += hsum8(s01), dd[2] += hsum8(s02);
            dd += ldd;
            dd[0] += hsum8(s10), dd[1] += hsum8(s11), dd[2] += hsum8(s12);
            dd += ldd;
            dd[0] += hsum8(s20), dd[1] += hsum8(s21), dd[2] += hsum8(s22);
            dd += ldd;
            dd[0] += hsum8(s30), dd[1] += hsum8(s31), dd[2] += hsum8(s32);
        }
        for (; j < Kc; j++) {
            const float *b0 = bt + (int64_t)j * ldb;
            __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
            for (int n = 0; n < N; n += 8) {
                const __m256 x0 = _mm256_loadu_ps(b0 + n);
                s0 = _mm256_fmadd_ps(_mm256_loadu_ps(g0 + n), x0, s0);
                s1 = _mm256_fmadd_ps(_mm256_loadu_ps(g1 + n), x0, s1);
                s2 = _mm256_fmadd_ps(_mm256_loadu_ps(g2 + n), x0, s2);
                s3 = _mm256_fmadd_ps(_mm256_loadu_ps(g3 + n), x0, s3);
            }
            float *dd = d + (int64_t)m0 * ldd + j;
            dd[0] += hsum8(s0), dd[ldd] += hsum8(s1), dd[2 * ldd] += hsum8(s2), dd[3 * ldd] += hsum8(s3);
        }
    }
}

#else /* no AVX2 kernels in this build: the callers use SGEMM (gopt__cgemm_ok says no) */
void gopt__cgemm_gather2(float *d, const float *s, int n, int one_more) {
    (void)one_more;
    for (int i = 0; i < n; i++) d[i] = s[2 * i];
}
void gopt__cgemm_scatter_add2(float *d, const float *s, int n) {
    for (int i = 0; i < n; i++) d[2 * i] += s[i];
}
void gopt__cgemm_pack_a(const float *a, int M, int K, int trans, float *ap) { (void)a, (void)M, (void)K, (void)trans, (void)ap; }
void gopt__cgemm_nn(const float *ap, int M, int K, const float *b, int64_t ldb, int N, float *c, int64_t ldc) {
    (void)ap, (void)M, (void)K, (void)b, (void)ldb, (void)N, (void)c, (void)ldc;
}
void gopt__cgemm_nt_acc(const float *g, int M, int64_t ldg, const float *bt, int Kc, int64_t ldb, int N,
                        float *d, int64_t ldd) {
    (void)g, (void)M, (void)ldg, (void)bt, (void)Kc, (void)ldb, (void)N, (void)d, (void)ldd;
}
#endif
