/* gradopt/tensor.h: float32 tensors (up to 4-D, row-major, NCHW for images) and the
 * library's seeded random number generator.
 *
 * gopt_tensor is an open struct (ggml_tensor's idea). Invariants, kept by every function
 * that makes one:
 *   1 <= ndim <= GOPT_MAX_DIMS; shape[i] >= 1 for i < ndim and shape[i] == 1 for i >= ndim;
 *   numel == shape[0] * ... * shape[ndim-1] and fits in int64_t and size_t bytes;
 *   data points to numel contiguous floats (row-major: the last dimension varies fastest).
 * A tensor from gopt_tensor_create owns its data; one from gopt_tensor_view borrows it. */
#ifndef GRADOPT_TENSOR_H
#define GRADOPT_TENSOR_H

#include "status.h"

GOPT_EXTERN_C_BEGIN

#define GOPT_MAX_DIMS 4

typedef struct gopt_tensor {
    float *data;
    int ndim;
    int64_t shape[GOPT_MAX_DIMS];
    int64_t numel;
    int owns_data; /* 1: gopt_tensor_destroy frees data; 0: data is borrowed */
} gopt_tensor;

/* ---- random numbers ------------------------------------------------------------------
 * xoshiro256** (Blackman & Vigna 2018), seeded through splitmix64: seed -> s[0..3].
 * The whole state is the four words; save/restore it by copying the struct. Same seed,
 * same sequence, on every platform. */
typedef struct gopt_rng {
    uint64_t s[4];
} gopt_rng;

GOPT_API void gopt_rng_seed(gopt_rng *rng, uint64_t seed);
GOPT_API uint64_t gopt_rng_u64(gopt_rng *rng);
/* Uniform float in [0, 1) with 24 random bits. */
GOPT_API float gopt_rng_uniform(gopt_rng *rng);
/* Uniform integer in [0, n) without modulo bias (Lemire 2019); n >= 1, returns 0 for n == 0. */
GOPT_API uint64_t gopt_rng_below(gopt_rng *rng, uint64_t n);
/* Standard normal sample (Box-Muller on two uniforms from the stream; no cached spare, so
 * the struct stays the whole state). */
GOPT_API float gopt_rng_normal(gopt_rng *rng);

/* ---- lifetime ------------------------------------------------------------------------ */

/* Allocate a zero-filled tensor of the given shape.
 * Errors: GOPT_EINVAL (out NULL, shape NULL, ndim outside 1..4, a dim < 1),
 *         GOPT_EOVERFLOW (numel or its byte size overflows), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_tensor_create(int ndim, const int64_t shape[], gopt_tensor **out);

/* Fill *out as a borrowing view of `data` (no allocation; out->owns_data = 0).
 * Errors as gopt_tensor_create, plus GOPT_EINVAL for data NULL. */
GOPT_API gopt_status gopt_tensor_view(float *data, int ndim, const int64_t shape[], gopt_tensor *out);

/* Free a tensor from gopt_tensor_create (its data too if it owns it). NULL is a no-op. */
GOPT_API void gopt_tensor_destroy(gopt_tensor *t);

/* Compute numel for a shape with the same checks as gopt_tensor_create. */
GOPT_API gopt_status gopt_shape_numel(int ndim, const int64_t shape[], int64_t *numel);

/* 1 if a and b have the same ndim and shape, else 0 (NULL-safe: 0). */
GOPT_API int gopt_tensor_same_shape(const gopt_tensor *a, const gopt_tensor *b);

/* Format a shape as "(2,3,4)" into buf (always NUL-terminated); returns buf. */
GOPT_API char *gopt_shape_str(const gopt_tensor *t, char *buf, size_t size);

/* ---- fills and initialisation -------------------------------------------------------- */

GOPT_API gopt_status gopt_tensor_fill(gopt_tensor *t, float value);
/* Uniform on [lo, hi). Errors: GOPT_EINVAL if lo > hi or not finite. */
GOPT_API gopt_status gopt_tensor_fill_uniform(gopt_tensor *t, float lo, float hi, gopt_rng *rng);
/* Normal(mean, std). Errors: GOPT_EINVAL if std < 0 or not finite. */
GOPT_API gopt_status gopt_tensor_fill_normal(gopt_tensor *t, float mean, float std, gopt_rng *rng);

/* Weight initialisations with PyTorch's fan convention (torch.nn.init):
 *   fan_in = shape[1] * receptive, fan_out = shape[0] * receptive,
 *   receptive = prod(shape[2..]) (1 for 2-D); a 1-D tensor is refused (GOPT_ESHAPE).
 *   HE_NORMAL      N(0, gain/sqrt(fan_in)),  gain = sqrt(2)   kaiming_normal_(relu, fan_in)
 *   HE_UNIFORM     U(+-gain*sqrt(3/fan_in))                   kaiming_uniform_(relu, fan_in)
 *   XAVIER_NORMAL  N(0, sqrt(2/(fan_in+fan_out)))             xavier_normal_
 *   XAVIER_UNIFORM U(+-sqrt(6/(fan_in+fan_out)))              xavier_uniform_
 *   TORCH_DEFAULT  U(+-1/sqrt(fan_in))   what nn.Linear/nn.Conv2d do to weights
 *                  (kaiming_uniform_ with a = sqrt(5)) and to biases (bound from the
 *                  weight's fan_in: use gopt_tensor_fill_uniform for a bias). */
typedef enum gopt_init {
    GOPT_INIT_HE_NORMAL = 0,
    GOPT_INIT_HE_UNIFORM,
    GOPT_INIT_XAVIER_NORMAL,
    GOPT_INIT_XAVIER_UNIFORM,
    GOPT_INIT_TORCH_DEFAULT,
    GOPT_INIT_ORTHOGONAL
} gopt_init;
/*   ORTHOGONAL     torch.nn.init.orthogonal_ (gain 1): the tensor as a (shape[0], rest)
 *                  matrix whose rows (shape[0] <= rest) or columns are orthonormal, from the
 *                  QR decomposition of an N(0,1) matrix with Q's columns signed by R's
 *                  diagonal (Saxe et al. 2014); for recurrent weights (see net.h).
 * Names (gopt_init_name / gopt_init_from_name): "he_normal", "he_uniform", "xavier_normal",
 * "xavier_uniform", "default" (TORCH_DEFAULT), "orthogonal"; from_name also takes
 * "kaiming_normal", "kaiming_uniform", "glorot_normal", "glorot_uniform" and "torch". */
GOPT_API const char *gopt_init_name(gopt_init kind); /* "?" when out of range */
/* Errors: GOPT_EINVAL naming the unknown name and listing the known ones. */
GOPT_API gopt_status gopt_init_from_name(const char *name, gopt_init *out);

/* Errors: GOPT_EINVAL (NULL, kind out of range), GOPT_ESHAPE (1-D), GOPT_ENOMEM (ORTHOGONAL's
 * double-precision scratch, 2 x numel + min(rows, cols) doubles, freed before returning). */
GOPT_API gopt_status gopt_tensor_init(gopt_tensor *t, gopt_init kind, gopt_rng *rng);

GOPT_EXTERN_C_END

#endif /* GRADOPT_TENSOR_H */
