/* The recurrent loop of one layer over all T steps, fused (x86-64 with AVX2 and FMA; the
 * caller falls back to one BLAS SGEMM per step elsewhere).
 *
 * Why: a step's product (N x H)(H x G*H) is small (16.8 MFLOP for the default 32 x 256 LSTM)
 * and comes 128 times per layer and pass; as a BLAS call it repacks the 1 MB W_hh every time
 * (~15% of the layer's time) and, threaded, pays two fork/joins per step. Here the threads
 * stay in one OpenMP region for the whole sequence; each owns a fixed range of hidden units,
 * packs its W_hh rows (forward) or columns (backward) once per pass into 16-wide panels, and
 * per step runs its share of the product (register-blocked 6 x 16 FMA kernel) followed by the
 * fused cell pass of nn/recurrent_kernels.c on its own units, then one barrier: step t+1's
 * product needs all of h_t (forward), step t-1's product all of dGates_t (backward).
 * Each output element is computed by one thread with the same k order whatever the thread
 * count, so results do not depend on it. No BLAS call is made in the region.
 * Everything in this file is compiled for AVX2 + FMA: call it only when
 * gopt__rnn_seq_available() (recurrent.c) says the CPU has both. */
#if defined(__GNUC__) && defined(__x86_64__)
#  define SEQ_X86 1
#  if defined(__clang__) /* clang ignores GCC's pragma: the same per function */
#    pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#  else
#    pragma GCC target("avx2,fma")
#  endif
#  include <immintrin.h>
#else
#  define SEQ_X86 0
#endif

#ifdef _OPENMP
#  include <omp.h>
#endif

#include "gradopt/common.h"
#include "nn/recurrent.h"

#define PANEL 16 /* columns per packed panel (two 8-float vectors) */
#define MR 6     /* rows per register block: 12 accumulators */

#if SEQ_X86

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* Write one row's 16 accumulated columns: C (+)= acc for the w <= 16 columns that exist. */
static inline __attribute__((always_inline)) void store_row(float *c, __m256 lo, __m256 hi, int w, int accumulate) {
    if (w == PANEL) {
        if (accumulate) {
            lo = _mm256_add_ps(_mm256_loadu_ps(c), lo);
            hi = _mm256_add_ps(_mm256_loadu_ps(c + 8), hi);
        }
        _mm256_storeu_ps(c, lo);
        _mm256_storeu_ps(c + 8, hi);
        return;
    }
    float tmp[PANEL];
    _mm256_storeu_ps(tmp, lo);
    _mm256_storeu_ps(tmp + 8, hi);
    for (int j = 0; j < w; j++) c[j] = accumulate ? c[j] + tmp[j] : tmp[j];
}

/* C[r][0..w) (+)= sum_k A[r*lda + k] Bp[k*16 + c] for r < R <= 6: six rows in named
 * registers (12 accumulators hide the FMA latency); rows R..5 repeat row R-1 and are not
 * stored. Bp is a packed panel, zero padded to 16 columns. */
static void kernel6(int R, int K, const float *A, int lda, const float *Bp, float *C, int ldc, int w,
                    int accumulate) {
    const float *a0 = A, *a1 = A + (size_t)(R > 1 ? 1 : R - 1) * lda, *a2 = A + (size_t)(R > 2 ? 2 : R - 1) * lda,
                *a3 = A + (size_t)(R > 3 ? 3 : R - 1) * lda, *a4 = A + (size_t)(R > 4 ? 4 : R - 1) * lda,
                *a5 = A + (size_t)(R > 5 ? 5 : R - 1) * lda;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
           c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int k = 0; k < K; k++) {
        const __m256 b0 = _mm256_load_ps(Bp + (size_t)k * PANEL), b1 = _mm256_load_ps(Bp + (size_t)k * PANEL + 8);
        __m256 a;
#define ROW(r)                                         \
    a = _mm256_broadcast_ss(a##r + k);                 \
    c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);         \
    c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
    }
    store_row(C, c00, c01, w, accumulate);
    if (R > 1) store_row(C + (size_t)ldc, c10, c11, w, accumulate);
    if (R > 2) store_row(C + (size_t)2 * ldc, c20, c21, w, accumulate);
    if (R > 3) store_row(C + (size_t)3 * ldc, c30, c31, w, accumulate);
    if (R > 4) store_row(C + (size_t)4 * ldc, c40, c41, w, accumulate);
    if (R > 5) store_row(C + (size_t)5 * ldc, c50, c51, w, accumulate);
}

/* The same with four rows (the tail of N, so fewer rows are computed twice). */
static void kernel4(int R, int K, const float *A, int lda, const float *Bp, float *C, int ldc, int w,
                    int accumulate) {
    const float *a0 = A, *a1 = A + (size_t)(R > 1 ? 1 : R - 1) * lda, *a2 = A + (size_t)(R > 2 ? 2 : R - 1) * lda,
                *a3 = A + (size_t)(R > 3 ? 3 : R - 1) * lda;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    for (int k = 0; k < K; k++) {
        const __m256 b0 = _mm256_load_ps(Bp + (size_t)k * PANEL), b1 = _mm256_load_ps(Bp + (size_t)k * PANEL + 8);
        __m256 a;
#define ROW(r)                                         \
    a = _mm256_broadcast_ss(a##r + k);                 \
    c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);         \
    c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);
        ROW(0) ROW(1) ROW(2) ROW(3)
#undef ROW
    }
    store_row(C, c00, c01, w, accumulate);
    if (R > 1) store_row(C + (size_t)ldc, c10, c11, w, accumulate);
    if (R > 2) store_row(C + (size_t)2 * ldc, c20, c21, w, accumulate);
    if (R > 3) store_row(C + (size_t)3 * ldc, c30, c31, w, accumulate);
}

/* All N rows of one panel: C (N x w, ldc) (+)= A (N x K, lda) Bp. */
static void panel_product(int N, int K, const float *A, int lda, const float *Bp, float *C, int ldc, int w,
                          int accumulate) {
    /* blocks of 6 rows; a remainder of 5 is one block of 6 (one row twice), of 1..4 one block
     * of 4; a remainder of 2 after a 6 becomes 4 + 4, so N = 32 computes no row twice */
    int n = 0, full = N / MR, rem = N % MR;
    if (rem == 2 && full > 0) full--;
    for (int b = 0; b < full; b++, n += MR)
        kernel6(MR, K, A + (size_t)n * lda, lda, Bp, C + (size_t)n * ldc, ldc, w, accumulate);
    while (n < N) {
        int left = N - n, R = left == 5 ? 5 : left >= 4 ? 4 : left;
        if (R == 5) kernel6(5, K, A + (size_t)n * lda, lda, Bp, C + (size_t)n * ldc, ldc, w, accumulate);
        else kernel4(R, K, A + (size_t)n * lda, lda, Bp, C + (size_t)n * ldc, ldc, w, accumulate);
        n += R;
    }
}

/* This thread's unit-panel range [pb0, pb1) of the NPB = ceil(H/16) panels per gate. */
static void my_panels(int npb, int *pb0, int *pb1) {
#ifdef _OPENMP
    int id = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    int id = 0, nt = 1;
#endif
    *pb0 = (int)((int64_t)npb * id / nt);
    *pb1 = (int)((int64_t)npb * (id + 1) / nt);
}

static int seq_threads(const gopt__rnn_seq *q) {
    int threads = gopt_get_threads(), npb = ceil_div(q->H, PANEL);
    /* a thread needs work worth a barrier per step: at least 2 panels per gate */
    if (threads > npb / 2) threads = npb / 2;
    return threads < 1 ? 1 : threads;
}

static void seq_forward_thread(const gopt__rnn_seq *q) {
    const int G = q->G, N = q->N, H = q->H, GH = G * H, npb = ceil_div(H, PANEL);
    const int64_t NH = (int64_t)N * H;
    int pb0, pb1;
    my_panels(npb, &pb0, &pb1);
    const int j0 = pb0 * PANEL, j1 = pb1 * PANEL < H ? pb1 * PANEL : H;
    /* panel (g, pb) holds W_hh rows g*H + pb*16 .. +15 transposed: Bp[k*16 + c] */
    for (int g = 0; g < G; g++)
        for (int pb = pb0; pb < pb1; pb++) {
            float *Bp = q->packed + ((size_t)g * npb + pb) * PANEL * H;
            for (int c = 0; c < PANEL; c++) {
                int row = pb * PANEL + c;
                const float *w = q->w_hh + ((size_t)g * H + row) * H;
                for (int k = 0; k < H; k++) Bp[(size_t)k * PANEL + c] = row < H ? w[k] : 0.0f;
            }
        }
    for (int t = 0; t < q->T; t++) {
        gopt__rnn_step s = q->step;
        s.h_prev = q->hs + t * NH;
        s.h = q->hs + (t + 1) * NH;
        s.gates = q->gates + (int64_t)t * N * GH;
        if (G == 4) {
            s.c_prev = q->cs + t * NH;
            s.c = q->cs + (t + 1) * NH;
            s.tc = q->tc + t * NH;
        }
        if (G == 3) s.hn = q->hn + t * NH;
        if (s.out) s.out += (int64_t)t * H;
        float *C = G == 3 ? q->gh : s.gates; /* gru: h W_hh^T apart from the x side */
        for (int g = 0; g < G; g++)
            for (int pb = pb0; pb < pb1; pb++) {
                int j = pb * PANEL, w = H - j < PANEL ? H - j : PANEL;
                panel_product(N, H, s.h_prev, H, q->packed + ((size_t)g * npb + pb) * PANEL * H, C + g * H + j, GH,
                              w, G != 3);
            }
        if (j1 > j0) gopt__rnn_cell_range(G, 0, &s, j0, j1);
#pragma omp barrier
    }
}

static void seq_backward_thread(const gopt__rnn_seq *q) {
    const int G = q->G, N = q->N, H = q->H, GH = G * H, npb = ceil_div(H, PANEL);
    const int64_t NH = (int64_t)N * H;
    int pb0, pb1;
    my_panels(npb, &pb0, &pb1);
    const int j0 = pb0 * PANEL, j1 = pb1 * PANEL < H ? pb1 * PANEL : H;
    /* panel pb holds W_hh columns pb*16 .. +15: Bp[c*16 + i] = W_hh[c][pb*16 + i], c < G*H */
    for (int pb = pb0; pb < pb1; pb++) {
        float *Bp = q->packed + (size_t)pb * PANEL * GH;
        for (int c = 0; c < GH; c++) {
            const float *w = q->w_hh + (size_t)c * H;
            for (int i = 0; i < PANEL; i++) Bp[(size_t)c * PANEL + i] = pb * PANEL + i < H ? w[pb * PANEL + i] : 0.0f;
        }
    }
    float *dgh_all = G == 3 ? q->gh : q->gates;
    for (int t = q->T - 1; t >= 0; t--) {
        gopt__rnn_step s = q->step;
        s.gates = q->gates + (int64_t)t * N * GH;
        s.h_prev = q->hs + t * NH;
        s.h = q->hs + (t + 1) * NH;
        s.dh = q->dH + t * NH;
        float *dprev = t > 0 ? q->dH + (t - 1) * NH : q->dh0;
        if (G == 4) {
            s.c_prev = q->cs + t * NH;
            s.tc = q->tc + t * NH;
        }
        if (G == 3) {
            s.gh = q->gh + (int64_t)t * N * GH;
            s.hn = q->hn + t * NH;
            s.dh_prev = dprev;
        }
        if (j1 > j0) gopt__rnn_cell_range(G, 1, &s, j0, j1);
#pragma omp barrier
        /* dh_{t-1}[:, my units] += dGates_t W_hh[:, my units] (t = 0: dh0; = unless gru,
         * whose cell pass already put dh z there) */
        const int accumulate = t > 0 || G == 3;
        for (int pb = pb0; pb < pb1; pb++) {
            int j = pb * PANEL, w = H - j < PANEL ? H - j : PANEL;
            panel_product(N, GH, dgh_all + (int64_t)t * N * GH, GH, q->packed + (size_t)pb * PANEL * GH, dprev + j, H,
                          w, accumulate);
        }
    }
}

void gopt__rnn_seq_forward(const gopt__rnn_seq *q) {
    int threads = seq_threads(q);
    if (threads == 1) {
        seq_forward_thread(q);
        return;
    }
#pragma omp parallel num_threads(threads)
    seq_forward_thread(q);
}

void gopt__rnn_seq_backward(const gopt__rnn_seq *q) {
    int threads = seq_threads(q);
    if (threads == 1) {
        seq_backward_thread(q);
        return;
    }
#pragma omp parallel num_threads(threads)
    seq_backward_thread(q);
}

#else /* not x86-64 GCC/Clang: never called (gopt__rnn_seq_available() is 0) */

void gopt__rnn_seq_forward(const gopt__rnn_seq *q) { (void)q; }
void gopt__rnn_seq_backward(const gopt__rnn_seq *q) { (void)q; }

#endif

#if SEQ_X86 && defined(__clang__)
#  pragma clang attribute pop
#endif
