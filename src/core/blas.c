/* The one file that includes cblas.h (see core/blas.h). */
#include <cblas.h>

#include "core/blas.h"

void gopt__sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gopt__sgemv(int trans_a, int m, int n, float alpha, const float *a, int lda,
                 const float *x, float beta, float *y) {
    cblas_sgemv(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, m, n, alpha, a, lda, x, 1, beta, y, 1);
}

#if defined(OPENBLAS_VERSION) || defined(OPENBLAS_CONST) || defined(GOPT_HAVE_OPENBLAS)
void gopt__blas_set_threads(int threads) { openblas_set_num_threads(threads); }
#else
void gopt__blas_set_threads(int threads) { (void)threads; }
#endif
