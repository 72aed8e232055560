/* Vectorisable float32 exp, sigmoid and tanh for the activation layers and the recurrent
 * cells (src/nn/activation_st.c, src/nn/recurrent_kernels.c).
 *
 * Plain C with no libm calls and no branches, so that a loop calling them under
 * `#pragma omp simd` compiles to packed AVX2 code (the callers are built as target clones).
 * GCC if-converts the selects below only without trapping math: a file that includes this
 * header starts with GOPT_ACT_NO_TRAPPING (values are unchanged; only FP exception flags,
 * which the library never reads, may differ).
 * The polynomials are Cephes' expf and tanhf (S. Moshier), accurate to about 2 ulp over
 * the float range; sigmoid(x) = 1 / (1 + exp(-x)) inherits exp's relative accuracy. NaN
 * propagates (the clamps are comparisons that NaN fails, and the polynomial carries it).
 * Results do not depend on the instruction set: ISO C mode forbids FMA contraction. */
#ifndef GRADOPT_NN_ACT_H
#define GRADOPT_NN_ACT_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#  define GOPT_ACT_NO_TRAPPING _Pragma("GCC optimize(\"no-trapping-math\")")
#else
#  define GOPT_ACT_NO_TRAPPING
#endif
#if defined(__GNUC__) || defined(__clang__)
#  define GOPT_ACT_INLINE static inline __attribute__((always_inline))
#else
#  define GOPT_ACT_INLINE static inline
#endif

/* exp(x): clamped to [-87.3, 88] (results 1.2e-38 .. 1.65e38, never Inf, so 1/(1+e) never
 * divides by Inf), range reduction x = k ln2 + r with ln2 split in two, a degree-5
 * polynomial on r, then 2^k put into the exponent bits. */
GOPT_ACT_INLINE float gopt__expf(float x) {
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.3f ? -87.3f : x;
    /* k = round(x log2 e) by the 1.5 * 2^23 trick (exact in round-to-nearest; ISO C keeps
     * the two additions); a NaN becomes k = 0 (no undefined cast; r carries the NaN) */
    float t = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    t = t == t ? t : 0.0f;
    float r = x - t * 0.693359375f;
    r = r - t * -2.12194440e-4f;
    float z = r * r;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * z + r + 1.0f;
    int32_t e = ((int32_t)t + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return y * s;
}

GOPT_ACT_INLINE float gopt__sigmoidf(float x) { return 1.0f / (1.0f + gopt__expf(-x)); }

/* tanh(x): |x| < 0.625 an odd polynomial (no cancellation near 0), else
 * 1 - 2 / (exp(2|x|) + 1); the sign restored. Both branches are computed and one selected. */
GOPT_ACT_INLINE float gopt__tanhf(float x) {
    float a = x < 0.0f ? -x : x;
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    float big = 1.0f - 2.0f / (gopt__expf(2.0f * a) + 1.0f);
    big = x < 0.0f ? -big : big;
    return a < 0.625f ? small : big;
}

#endif /* GRADOPT_NN_ACT_H */
