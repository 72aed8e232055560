/* The only door to BLAS: src/blas.c is the one file that includes <cblas.h>, so the rest
 * of the library (and every public header) stays free of BLAS types and macros. */
#ifndef GRADOPT_INTERNAL_BLAS_H
#define GRADOPT_INTERNAL_BLAS_H

/* C = alpha * op(A) * op(B) + beta * C, row-major, as cblas_sgemm(CblasRowMajor, ...).
 * trans_a/trans_b: 0 = no transpose, 1 = transpose. op(A) is m x k, op(B) is k x n,
 * C is m x n with leading dimensions lda, ldb, ldc. Call it from outside the library's
 * OpenMP regions: OpenBLAS threads itself (see gopt_set_threads). */
void gopt__sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* y = alpha * op(A) * x + beta * y, row-major A (m x n). */
void gopt__sgemv(int trans_a, int m, int n, float alpha, const float *a, int lda,
                 const float *x, float beta, float *y);

/* Set OpenBLAS's own thread count (no-op with a single-threaded BLAS). */
void gopt__blas_set_threads(int threads);

#endif /* GRADOPT_INTERNAL_BLAS_H */
