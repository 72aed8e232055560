/* Tensors and the seeded RNG (see gradopt/tensor.h). */
#include <stdio.h>

#include "core/common.h"

/* ---- rng: splitmix64 seeding, xoshiro256** stream ----------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void gopt_rng_seed(gopt_rng *rng, uint64_t seed) {
    if (!rng) return;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t gopt_rng_u64(gopt_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float gopt_rng_uniform(gopt_rng *rng) {
    return (float)(gopt_rng_u64(rng) >> 40) * (1.0f / 16777216.0f);
}

uint64_t gopt_rng_below(gopt_rng *rng, uint64_t n) {
    if (n == 0) return 0;
    /* Lemire's multiply-shift with rejection of the biased low range. */
    __uint128_t m = (__uint128_t)gopt_rng_u64(rng) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = (0 - n) % n;
        while (low < threshold) {
            m = (__uint128_t)gopt_rng_u64(rng) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

float gopt_rng_normal(gopt_rng *rng) {
    /* u1 in (0, 1] so log is finite; 53-bit uniforms in double for the tails. */
    double u1 = ((double)(gopt_rng_u64(rng) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(gopt_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ---- shapes ------------------------------------------------------------------------- */

gopt_status gopt_shape_numel(int ndim, const int64_t shape[], int64_t *numel) {
    GOPT_CHECK_NULL(shape);
    GOPT_CHECK_NULL(numel);
    if (ndim < 1 || ndim > GOPT_MAX_DIMS)
        return GOPT_FAIL(GOPT_EINVAL, "ndim = %d is outside 1..%d", ndim, GOPT_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return GOPT_FAIL(GOPT_EINVAL, "shape[%d] = %lld must be >= 1", i, (long long)shape[i]);
        if (n > INT64_MAX / shape[i])
            return GOPT_FAIL(GOPT_EOVERFLOW, "element count overflows at shape[%d] = %lld", i,
                             (long long)shape[i]);
        n *= shape[i];
    }
    if ((uint64_t)n > SIZE_MAX / sizeof(float))
        return GOPT_FAIL(GOPT_EOVERFLOW, "%lld elements do not fit in memory", (long long)n);
    *numel = n;
    return GOPT_OK;
}

static void set_shape(gopt_tensor *t, int ndim, const int64_t shape[], int64_t numel) {
    t->ndim = ndim;
    for (int i = 0; i < GOPT_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 1;
    t->numel = numel;
}

gopt_status gopt_tensor_create(int ndim, const int64_t shape[], gopt_tensor **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    int64_t numel;
    GOPT_TRY(gopt_shape_numel(ndim, shape, &numel));
    gopt_tensor *t = gopt__calloc(1, sizeof *t);
    if (!t) return GOPT_FAIL(GOPT_ENOMEM, "tensor header");
    t->data = gopt__aligned_alloc((size_t)numel * sizeof(float));
    if (!t->data) {
        gopt__free(t);
        return GOPT_FAIL(GOPT_ENOMEM, "%lld floats", (long long)numel);
    }
    set_shape(t, ndim, shape, numel);
    t->owns_data = 1;
    *out = t;
    return GOPT_OK;
}

gopt_status gopt_tensor_view(float *data, int ndim, const int64_t shape[], gopt_tensor *out) {
    GOPT_CHECK_NULL(data);
    GOPT_CHECK_NULL(out);
    int64_t numel;
    GOPT_TRY(gopt_shape_numel(ndim, shape, &numel));
    out->data = data;
    set_shape(out, ndim, shape, numel);
    out->owns_data = 0;
    return GOPT_OK;
}

void gopt_tensor_destroy(gopt_tensor *t) {
    if (!t) return;
    if (t->owns_data) gopt__aligned_free(t->data);
    gopt__free(t);
}

int gopt_tensor_same_shape(const gopt_tensor *a, const gopt_tensor *b) {
    if (!a || !b || a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

char *gopt_shape_str(const gopt_tensor *t, char *buf, size_t size) {
    if (!buf || size == 0) return buf;
    buf[0] = '\0';
    if (!t) {
        snprintf(buf, size, "(null)");
        return buf;
    }
    size_t n = 0;
    n += (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < t->ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (n < size) snprintf(buf + n, size - n, ")");
    return buf;
}

/* ---- fills -------------------------------------------------------------------------- */

static gopt_status check_tensor(const gopt_tensor *t, const char *func) {
    if (!t) return gopt__fail(GOPT_EINVAL, func, "tensor is NULL");
    if (!t->data) return gopt__fail(GOPT_EINVAL, func, "tensor has no data");
    if (t->numel < 1) return gopt__fail(GOPT_EINVAL, func, "tensor has numel %lld", (long long)t->numel);
    return GOPT_OK;
}

gopt_status gopt_tensor_fill(gopt_tensor *t, float value) {
    GOPT_TRY(check_tensor(t, __func__));
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = value;
    return GOPT_OK;
}

gopt_status gopt_tensor_fill_uniform(gopt_tensor *t, float lo, float hi, gopt_rng *rng) {
    GOPT_TRY(check_tensor(t, __func__));
    GOPT_CHECK_NULL(rng);
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        return GOPT_FAIL(GOPT_EINVAL, "bounds [%g, %g) are not finite and ordered", lo, hi);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = lo + (hi - lo) * gopt_rng_uniform(rng);
    return GOPT_OK;
}

gopt_status gopt_tensor_fill_normal(gopt_tensor *t, float mean, float std, gopt_rng *rng) {
    GOPT_TRY(check_tensor(t, __func__));
    GOPT_CHECK_NULL(rng);
    if (!isfinite(mean) || !isfinite(std) || std < 0)
        return GOPT_FAIL(GOPT_EINVAL, "mean = %g, std = %g: need finite values and std >= 0", mean, std);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = mean + std * gopt_rng_normal(rng);
    return GOPT_OK;
}

/* gopt_tensor_init, gopt_init_name and the orthogonal initialisation: core/init.c. */
