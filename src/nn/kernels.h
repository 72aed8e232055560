/* Private convolution and batchnorm kernels (conv.c, conv_winograd.c, conv_implicit.c,
 * conv_gemm.c, conv_avx512.c), shared by the conv2d,
 * batchnorm2d and basic-block layers and by nothing above them: no layer types here. */
#ifndef GRADOPT_INTERNAL_KERNELS_H
#define GRADOPT_INTERNAL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "gradopt/status.h"
#include "core/common.h"

/* ---- convolution: NCHW, weight (K, C*R*R), im2col over chunks of `chunk` images ------- */
typedef struct gopt__conv {
    int C, K, H, W, R, stride, pad, OH, OW;
    int has_bias;
    int w_index, b_index; /* in the arena; b_index -1 without bias */
    int chunk;            /* images per SGEMM (generic path) */
    int fast;             /* 1: the AVX-512 kernels of conv_avx512.c, parallel over images */
    int wino;             /* 1: Winograd F(4x4,3x3), conv_winograd.c (then fast is 0) */
    int cgemm;            /* generic path: 1 = its products on conv_gemm.c's AVX2 kernels */
    int impl;             /* 1: the implicit-GEMM AVX2 kernels of conv_implicit.c */
    int slots;            /* per-thread workspace slots of the fast path (threads it can use) */
} gopt__conv;

#ifdef _OPENMP
#  include <omp.h>
#endif

/* The threads of one convolution call, shared by its paths: the library's count, at most
 * the workspace's slots and the n units of work (images, groups, chunks), at least 1 (1
 * without OpenMP: the units are split by thread id, so one thread must take them all). */
static inline int gopt__conv_threads(const gopt__conv *c, int n) {
#ifndef _OPENMP
    (void)c, (void)n;
    return 1;
#else
    int t = gopt_get_threads();
    if (t > c->slots) t = c->slots;
    if (t > n) t = n;
    return t < 1 ? 1 : t;
#endif
}

static inline int gopt__conv_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* [*u0, *u1): thread t's contiguous share of n units among T threads */
static inline void gopt__conv_range(int n, int t, int T, int *u0, int *u1) {
    *u0 = (int)((int64_t)n * t / T);
    *u1 = (int)((int64_t)n * (t + 1) / T);
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#  define GOPT__CONV_HAVE_AVX512 1
#else
#  define GOPT__CONV_HAVE_AVX512 0
#endif
/* The AVX-512 path (nn/conv_avx512.c): 1 if this CPU runs it. */
int gopt__conv_cpu_fast(void);
size_t gopt__conv_fast_ws_floats(const gopt__conv *c);
/* The fast path with two extras: in_scale/in_shift (NULL, or C each) feed the convolution
 * relu(x scale[ci] + shift[ci]) instead of x (a batchnorm + relu applied on the fly, so its
 * output need not be stored); dw may be NULL (dX only); dx may alias dy (needs C*H*W ==
 * K*OH*OW). Only when c->fast. */
void gopt__conv_fast_forward(const gopt__conv *c, const float *w, const float *b, const float *x, float *y, int n,
                             float *ws, const float *in_scale, const float *in_shift);
void gopt__conv_fast_backward(const gopt__conv *c, const float *w, float *dw, float *db, const float *x,
                              const float *dy, float *dx, int dx_accumulate, int n, float *ws, const float *in_scale,
                              const float *in_shift);
/* The Winograd path (nn/conv_winograd.c): 3x3, stride 1, padding 1, H and W multiples of 4,
 * in channels a multiple of 8, on a CPU with AVX2 and FMA. The same contract as the fast
 * path's two functions (in_scale/in_shift, dw NULL, dx aliasing x or dy). */
int gopt__conv_cpu_wino(void);
int gopt__conv_wino_shape_ok(const gopt__conv *c);
size_t gopt__conv_wino_ws_floats(const gopt__conv *c);
void gopt__conv_wino_forward(const gopt__conv *c, const float *w, const float *b, const float *x, float *y, int n,
                             float *ws, const float *in_scale, const float *in_shift);
void gopt__conv_wino_backward(const gopt__conv *c, const float *w, float *dw, float *db, const float *x,
                              const float *dy, float *dx, int dx_accumulate, int n, float *ws, const float *in_scale,
                              const float *in_shift);
/* The implicit-GEMM path (nn/conv_implicit.c): AVX2 and FMA, OW and K multiples of 8, any
 * kernel size, stride and padding. The contract of gopt__conv_forward/backward (dx may
 * alias x, not dy). */
int gopt__conv_impl_shape_ok(const gopt__conv *c);
size_t gopt__conv_impl_ws_floats(const gopt__conv *c);
void gopt__conv_impl_forward(const gopt__conv *c, const float *w, const float *b, const float *x, float *y, int n,
                             float *ws);
void gopt__conv_impl_backward(const gopt__conv *c, const float *w, float *dw, float *db, const float *x,
                              const float *dy, float *dx, int dx_accumulate, int n, float *ws);
/* The im2col path's own AVX2 products (nn/conv_gemm.c), for CPUs with AVX2 and FMA:
 * pack_a: ap = A (M x K; trans: A is given as K x M) in 6-row blocks [K][6], (M+5)/6*6*K
 * floats; nn: C (M x N, ldc) = A B (B K x N, ldb), N a multiple of 16; nt_acc: D (M x Kc,
 * ldd) += G (M x N, ldg) Bt^T (Bt Kc x N, ldb), M a multiple of 4, N of 8. */
void gopt__cgemm_pack_a(const float *a, int M, int K, int trans, float *ap);
void gopt__cgemm_nn(const float *ap, int M, int K, const float *b, int64_t ldb, int N, float *c, int64_t ldc);
void gopt__cgemm_nt_acc(const float *g, int M, int64_t ldg, const float *bt, int Kc, int64_t ldb, int N, float *d,
                        int64_t ldd);
/* stride-2 rows for im2col / col2im (AVX2 only where c->cgemm): d[i] = s[2i], i < n (reads
 * s[2n-1] too if one_more); d[2i] += s[i], i < n (d[2n-1] is read and written back + 0) */
void gopt__cgemm_gather2(float *d, const float *s, int n, int one_more);
void gopt__cgemm_scatter_add2(float *d, const float *s, int n);
/* 1 if the convolution runs the fast or the Winograd path, which take a fused
 * batchnorm + relu on their input (gopt__conv_fused_*) */
static inline int gopt__conv_fuses(const gopt__conv *c) { return c->fast || c->wino; }
void gopt__conv_fused_forward(const gopt__conv *c, const float *w, const float *b, const float *x, float *y, int n,
                              float *ws, const float *in_scale, const float *in_shift);
void gopt__conv_fused_backward(const gopt__conv *c, const float *w, float *dw, float *db, const float *x,
                               const float *dy, float *dx, int dx_accumulate, int n, float *ws, const float *in_scale,
                               const float *in_shift);
/* The path each convolution takes is chosen at setup: GOPT_CONV_PATH in the environment
 * (auto, winograd, direct, implicit, im2col, generic; GOPT_CONV_GENERIC=1 is generic)
 * overrides the default (auto: Winograd where the shape and CPU allow it and the CPU lacks
 * AVX-512, the AVX-512 kernels where the CPU has them, else the implicit-GEMM AVX2 kernels
 * where the CPU and shape allow, else im2col with the AVX2 products of conv_gemm.c where
 * they allow, else im2col + SGEMM, "generic"). A forced path the shape or CPU cannot take
 * falls back the same way. An unknown value: GOPT_EINVAL. */
gopt_status gopt__conv_setup(gopt__conv *c, int C, int K, int H, int W, int R, int stride, int pad, int has_bias,
                             int max_batch);
size_t gopt__conv_ws_floats(const gopt__conv *c);
/* db[k] += sum of dy (n,K,OH,OW) over images and pixels (float64 sums): every path's bias
 * gradient but the AVX-512 kernels' (which sum per thread as they go). */
void gopt__conv_bias_grad(const gopt__conv *c, const float *dy, int n, float *db);
/* y (n,K,OH,OW) = conv(x (n,C,H,W)) (+ b). ws: gopt__conv_ws_floats floats. */
void gopt__conv_forward(const gopt__conv *c, const float *w, const float *b, const float *x, float *y, int n,
                        float *ws);
/* dw (may be NULL) += dy * x, db += sum dy; dx (may be NULL) = or += (dx_accumulate) W^T dy.
 * dx may alias x (each image / chunk of x is read before that part of dx is written). */
void gopt__conv_backward(const gopt__conv *c, const float *w, float *dw, float *db, const float *x, const float *dy,
                         float *dx, int dx_accumulate, int n, float *ws);

/* ---- batchnorm2d ---------------------------------------------------------------------- */
/* Synchronised statistics (torch.nn.SyncBatchNorm, PyTorch 1.13): in a training forward the
 * per-channel sums S = sum x, Q = sum x^2 (double) and the count M of the local batch are
 * summed over the processes with fn, then mean = S/M, var = Q/M - mean^2 (biased, >= 0)
 * normalise, and the running variance takes var M/(M-1) with the GLOBAL M. In a training
 * backward the sums sum g and sum g xhat are summed with fn and divided by the global M for
 * dx = gamma invstd (g - mean g - xhat mean(g xhat)); dgamma and dbeta stay local sums (the
 * data-parallel average divides them later). fn is called from the calling thread, outside
 * any parallel region. A failing fn: the call falls back to the local statistics (the
 * running statistics are then left alone), and the first failure is kept in `status` for
 * the layer's owner (gopt__bn_sync_take) to report. Eval passes do not synchronise. */
typedef struct gopt__bn_sync {
    gopt__sum_fn fn;
    void *ctx;
    double count;       /* global M of the last synchronised training forward */
    gopt_status status; /* first failure of fn since the last gopt__bn_sync_take */
    double *buf;        /* 2C + 1 doubles handed to fn */
} gopt__bn_sync;

typedef struct gopt__bn {
    int C, HW;
    float eps, momentum;
    int g_index, b_index;
    float *running_mean, *running_var; /* owned, C each */
    float *save_mean, *save_invstd;    /* batch statistics of the last training forward */
    float *scale, *shift;              /* scratch for gopt__bn_coeffs (C each) */
    gopt__bn_sync *sync;               /* NULL: per-process statistics (the default) */
} gopt__bn;

gopt_status gopt__bn_setup(gopt__bn *bn, int C, int HW, float eps, float momentum);
void gopt__bn_free(gopt__bn *bn);
/* fn != NULL: synchronise through fn (allocates the 2C+1 doubles of scratch here, so
 * nothing is allocated in a step); fn == NULL: back to per-process statistics (frees it).
 * GOPT_ENOMEM leaves the bn as it was. */
gopt_status gopt__bn_set_sync(gopt__bn *bn, gopt__sum_fn fn, void *ctx);
/* The status fn failed with since the last call (GOPT_OK if none, or not synchronised),
 * cleared. */
gopt_status gopt__bn_sync_take(gopt__bn *bn);
/* Calls fn on the first n doubles of the scratch; on failure records the status (the
 * first one) and returns it. For the kernels of conv.c and batchnorm.c. */
gopt_status gopt__bn_sync_sum(const gopt__bn *bn, int n);
void gopt__bn_reset_running(gopt__bn *bn);
/* y = [relu](gamma xhat + beta [+ res]); training: batch stats (saved) and running update.
 * y may alias res or x; y NULL: statistics only. */
void gopt__bn_forward(gopt__bn *bn, const float *gamma, const float *beta, const float *x, float *y,
                      const float *res, int relu, int n, int training);
/* Recompute y = [relu](gamma xhat + beta) with the statistics of the last forward (never
 * synchronises). */
void gopt__bn_apply(const gopt__bn *bn, const float *gamma, const float *beta, const float *x, float *y, int relu,
                    int n, int training);
/* The relu fused after a batchnorm, described so backward can recompute its mask from what
 * is stored: v = x scale + shift (this bn's coefficients with beta) [+ res | + res rscale +
 * rshift (res_bn's coefficients with res_gamma/res_beta)], the same expressions as forward. */
typedef struct gopt__bn_relu {
    const float *beta;
    const float *res;
    const gopt__bn *res_bn;
    const float *res_gamma, *res_beta;
} gopt__bn_relu;
/* From g = dL/d(bn output [+ res], before the relu if any): with relu, g is first masked in
 * place (kept where v > 0); then dgamma += sum g xhat, dbeta += sum g, dx = d(bn)/dx^T g.
 * dx may alias x or g. */
void gopt__bn_backward(const gopt__bn *bn, const float *gamma, const gopt__bn_relu *relu, float *dgamma,
                       float *dbeta, const float *x, float *g, float *dx, int n, int training);
/* scale[c] = gamma invstd, shift[c] = beta - mean scale: the affine of the last forward. */
void gopt__bn_coeffs(const gopt__bn *bn, const float *gamma, const float *beta, int training, float *scale,
                     float *shift);

#endif
