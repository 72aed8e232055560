/* Gradient clipping (see gradopt/clip.h). */


#include "gradopt/clip.h"
#include "core/common.h"
#include "optim/norm.h"

#define LANES 16
#define FLUSH 1024            /* float lanes are flushed into double this often */
#define MAX_CHUNKS 1024       /* partial sums live on the stack */
#define MIN_CHUNK (1 << 16)
#define PARALLEL_MIN (1 << 18) /* below this, threads cost more than they save */

/* sum of squares of x[0..n), float lanes flushed to double every FLUSH elements */
static double sumsq(const float *x, int64_t n) {
    double total = 0;
    for (int64_t i = 0; i < n; i += FLUSH) {
        int64_t m = n - i < FLUSH ? n - i : FLUSH;
        const float *b = x + i;
        float acc[LANES] = {0};
        int64_t j = 0;
        for (; j + LANES <= m; j += LANES)
            for (int k = 0; k < LANES; k++) acc[k] += b[j + k] * b[j + k];
        float tail = 0;
        for (; j < m; j++) tail += b[j] * b[j];
        double s = tail;
        for (int k = 0; k < LANES; k++) s += acc[k];
        total += s;
    }
    return total;
}

static double sumabs(const float *x, int64_t n) {
    double total = 0;
    for (int64_t i = 0; i < n; i += FLUSH) {
        int64_t m = n - i < FLUSH ? n - i : FLUSH;
        const float *b = x + i;
        float acc[LANES] = {0};
        int64_t j = 0;
        for (; j + LANES <= m; j += LANES)
            for (int k = 0; k < LANES; k++) acc[k] += fabsf(b[j + k]);
        float tail = 0;
        for (; j < m; j++) tail += fabsf(b[j]);
        double s = tail;
        for (int k = 0; k < LANES; k++) s += acc[k];
        total += s;
    }
    return total;
}

static double maxabs(const float *x, int64_t n) {
    float acc[LANES] = {0};
    int nan = 0;
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int k = 0; k < LANES; k++) {
            float a = fabsf(x[j + k]);
            acc[k] = a > acc[k] ? a : acc[k];
            nan |= a != a;
        }
    float m = 0;
    for (; j < n; j++) {
        float a = fabsf(x[j]);
        m = a > m ? a : m;
        nan |= a != a;
    }
    for (int k = 0; k < LANES; k++) m = acc[k] > m ? acc[k] : m;
    return nan ? NAN : (double)m;
}

static double sumpow(const float *x, int64_t n, double p) {
    double total = 0;
    for (int64_t j = 0; j < n; j++) total += pow(fabs((double)x[j]), p);
    return total;
}

static double chunk_reduce(const float *x, int64_t n, double p) {
    if (p == 2.0) return sumsq(x, n);
    if (p == 1.0) return sumabs(x, n);
    if (isinf(p)) return maxabs(x, n);
    return sumpow(x, n, p);
}

static int64_t chunk_size(int64_t n) {
    int64_t c = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    if (c < MIN_CHUNK) c = MIN_CHUNK;
    return (c + FLUSH - 1) / FLUSH * FLUSH;
}

double gopt__pow_sum(const float *x, int64_t n, double p, int parallel) {
    if (n <= 0) return 0.0;
    int64_t cs = chunk_size(n);
    int64_t nchunks = (n + cs - 1) / cs;
    double partial[MAX_CHUNKS];
    int threads = gopt_get_threads();
    int use_omp = parallel && threads > 1 && n >= PARALLEL_MIN && nchunks > 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (use_omp)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t b = c * cs, e = b + cs < n ? b + cs : n;
        partial[c] = chunk_reduce(x + b, e - b, p);
    }
    double r = 0.0;
    for (int64_t c = 0; c < nchunks; c++) {
        if (isinf(p)) {
            if (isnan(partial[c]) || isnan(r)) r = NAN;
            else if (partial[c] > r) r = partial[c];
        } else {
            r += partial[c];
        }
    }
    return r;
}

double gopt__pnorm(const float *x, int64_t n, double p, int parallel) {
    double s = gopt__pow_sum(x, n, p, parallel);
    if (isinf(p) || p == 1.0) return s;
    if (p == 2.0) return sqrt(s);
    return pow(s, 1.0 / p);
}

void gopt__scale(float *x, int64_t n, float coef, int parallel) {
    int threads = gopt_get_threads();
    int use_omp = parallel && threads > 1 && n >= PARALLEL_MIN;
    int64_t cs = chunk_size(n);
    int64_t nchunks = (n + cs - 1) / cs;
#pragma omp parallel for schedule(static) num_threads(threads) if (use_omp)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t b = c * cs, e = b + cs < n ? b + cs : n;
        for (int64_t i = b; i < e; i++) x[i] *= coef;
    }
}

/* ---- argument checks ---------------------------------------------------------------- */

static gopt_status check_norm_type(double norm_type) {
    if (!(norm_type > 0)) return GOPT_FAIL(GOPT_EINVAL, "norm_type = %g must be > 0 (or INFINITY)", norm_type);
    return GOPT_OK;
}

static gopt_status check_max_norm(double max_norm) {
    if (!(isfinite(max_norm) && max_norm >= 0)) return GOPT_FAIL(GOPT_EINVAL, "max_norm = %g must be finite and >= 0", max_norm);
    return GOPT_OK;
}

gopt_status gopt__clip_check(double max_norm, double norm_type) {
    GOPT_TRY(check_max_norm(max_norm));
    return check_norm_type(norm_type);
}

static gopt_status arena_grads(gopt_params *p, float **grads, int64_t *n) {
    GOPT_CHECK_NULL(p);
    if (!gopt_params_finalized(p)) return GOPT_FAIL(GOPT_ESTATE, "the parameter arena is not finalized");
    *grads = gopt_params_grads(p);
    *n = gopt_params_numel(p);
    return GOPT_OK;
}

gopt_status gopt_norm(const float *x, int64_t n, double norm_type, float *out) {
    GOPT_CHECK_NULL(out);
    if (n < 0) return GOPT_FAIL(GOPT_EINVAL, "n = %lld must be >= 0", (long long)n);
    if (n > 0) GOPT_CHECK_NULL(x);
    GOPT_TRY(check_norm_type(norm_type));
    *out = (float)gopt__pnorm(x, n, norm_type, 1);
    return GOPT_OK;
}

/* Clip one buffer whose norm is known: PyTorch's float32 coefficient. */
void gopt__clip_apply(float *g, int64_t n, float total, double max_norm, int parallel) {
    float coef = (float)max_norm / (total + 1e-6f);
    if (!(coef >= 1.0f)) gopt__scale(g, n, coef, parallel); /* NaN coef spreads NaN, as PyTorch */
}

gopt_status gopt_clip_grad_norm_buffer(float *grads, int64_t n, double max_norm, double norm_type,
                                       int error_if_nonfinite, float *total_norm) {
    if (n < 0) return GOPT_FAIL(GOPT_EINVAL, "n = %lld must be >= 0", (long long)n);
    if (n > 0) GOPT_CHECK_NULL(grads);
    GOPT_TRY(gopt__clip_check(max_norm, norm_type));
    float total = (float)gopt__pnorm(grads, n, norm_type, 1);
    if (total_norm) *total_norm = total;
    if (error_if_nonfinite && !isfinite(total))
        return GOPT_FAIL(GOPT_ENONFINITE, "the total %g-norm of the gradients is %g; gradients left untouched", norm_type,
                         (double)total);
    gopt__clip_apply(grads, n, total, max_norm, 1);
    return GOPT_OK;
}

gopt_status gopt_clip_grad_norm(gopt_params *p, double max_norm, double norm_type, int error_if_nonfinite,
                                float *total_norm) {
    float *g = NULL;
    int64_t n = 0;
    GOPT_TRY(arena_grads(p, &g, &n));
    GOPT_RETURN(gopt_clip_grad_norm_buffer(g, n, max_norm, norm_type, error_if_nonfinite, total_norm));
}

gopt_status gopt_clip_grad_norm_per_tensor(gopt_params *p, double max_norm, double norm_type, float *norms) {
    float *g = NULL;
    int64_t n = 0;
    GOPT_TRY(arena_grads(p, &g, &n));
    GOPT_TRY(check_max_norm(max_norm));
    GOPT_TRY(check_norm_type(norm_type));
    int count = gopt_params_count(p);
    for (int i = 0; i < count; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(p, i, &info));
        float *t = info.grad.data;
        int64_t m = info.grad.numel;
        float total = (float)gopt__pnorm(t, m, norm_type, 1);
        if (norms) norms[i] = total;
        gopt__clip_apply(t, m, total, max_norm, 1);
    }
    return GOPT_OK;
}

gopt_status gopt_clip_grad_value_buffer(float *grads, int64_t n, double clip_value) {
    if (n < 0) return GOPT_FAIL(GOPT_EINVAL, "n = %lld must be >= 0", (long long)n);
    if (n > 0) GOPT_CHECK_NULL(grads);
    if (!(isfinite(clip_value) && clip_value >= 0))
        return GOPT_FAIL(GOPT_EINVAL, "clip_value = %g must be finite and >= 0", clip_value);
    float v = (float)clip_value;
    int threads = gopt_get_threads();
    int use_omp = threads > 1 && n >= PARALLEL_MIN;
#pragma omp parallel for schedule(static) num_threads(threads) if (use_omp)
    for (int64_t i = 0; i < n; i++) {
        float x = grads[i];
        grads[i] = x > v ? v : (x < -v ? -v : x);
    }
    return GOPT_OK;
}

gopt_status gopt_clip_grad_value(gopt_params *p, double clip_value) {
    float *g = NULL;
    int64_t n = 0;
    GOPT_TRY(arena_grads(p, &g, &n));
    GOPT_RETURN(gopt_clip_grad_value_buffer(g, n, clip_value));
}

gopt_status gopt_clip_agc(gopt_params *p, double clipping, double eps, unsigned tag_mask, int64_t *clipped) {
    float *g = NULL;
    int64_t n = 0;
    GOPT_TRY(arena_grads(p, &g, &n));
    if (!(isfinite(clipping) && clipping > 0)) return GOPT_FAIL(GOPT_EINVAL, "clipping = %g must be finite and > 0", clipping);
    if (!(isfinite(eps) && eps >= 0)) return GOPT_FAIL(GOPT_EINVAL, "eps = %g must be finite and >= 0", eps);
    if ((tag_mask & GOPT_TAG_ALL) == 0) return GOPT_FAIL(GOPT_EINVAL, "tag_mask = 0x%x selects no tensor", tag_mask);
    int64_t total_clipped = 0;
    int count = gopt_params_count(p);
    int threads = gopt_get_threads();
    for (int i = 0; i < count; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(p, i, &info));
        if (!(info.tag & tag_mask)) continue;
        int64_t units = info.value.ndim >= 2 ? info.value.shape[0] : info.value.numel;
        int64_t len = info.value.numel / units;
        const float *w = info.value.data;
        float *gr = info.grad.data;
        int use_omp = threads > 1 && info.value.numel >= PARALLEL_MIN;
        int64_t nclip = 0;
#pragma omp parallel for schedule(static) num_threads(threads) if (use_omp) reduction(+ : nclip)
        for (int64_t u = 0; u < units; u++) {
            double wn = sqrt(sumsq(w + u * len, len));
            double gn = sqrt(sumsq(gr + u * len, len));
            double max_norm = (wn > eps ? wn : eps) * clipping;
            if (gn > max_norm) {
                float coef = (float)(max_norm / (gn > 1e-6 ? gn : 1e-6));
                for (int64_t k = 0; k < len; k++) gr[u * len + k] *= coef;
                nclip++;
            }
        }
        total_clipped += nclip;
    }
    if (clipped) *clipped = total_clipped;
    return GOPT_OK;
}
