/* Weight initialisation schemes (see gradopt/tensor.h): PyTorch's fan convention, their
 * names, and the orthogonal initialisation with its small double-precision Householder QR
 * (no LAPACK: the matrices are at most a few thousand wide and this runs once per layer). */
#include "core/common.h"

/* ---- names -------------------------------------------------------------------------------- */

static const char *const init_names[] = {"he_normal",      "he_uniform", "xavier_normal",
                                         "xavier_uniform", "default",    "orthogonal"};
#define NINIT ((int)(sizeof init_names / sizeof init_names[0]))

static const struct {
    const char *alias;
    gopt_init kind;
} init_aliases[] = {{"kaiming_normal", GOPT_INIT_HE_NORMAL},         {"kaiming_uniform", GOPT_INIT_HE_UNIFORM},
                    {"glorot_normal", GOPT_INIT_XAVIER_NORMAL},      {"glorot_uniform", GOPT_INIT_XAVIER_UNIFORM},
                    {"torch", GOPT_INIT_TORCH_DEFAULT}};

const char *gopt_init_name(gopt_init kind) {
    return ((int)kind >= 0 && (int)kind < NINIT) ? init_names[kind] : "?";
}

gopt_status gopt_init_from_name(const char *name, gopt_init *out) {
    GOPT_CHECK_NULL(name);
    GOPT_CHECK_NULL(out);
    for (int i = 0; i < NINIT; i++)
        if (strcmp(name, init_names[i]) == 0) {
            *out = (gopt_init)i;
            return GOPT_OK;
        }
    for (size_t i = 0; i < sizeof init_aliases / sizeof init_aliases[0]; i++)
        if (strcmp(name, init_aliases[i].alias) == 0) {
            *out = init_aliases[i].kind;
            return GOPT_OK;
        }
    return GOPT_FAIL(GOPT_EINVAL,
                     "unknown init '%.64s'; known: he_normal, he_uniform, xavier_normal, xavier_uniform, default, "
                     "orthogonal (aliases kaiming_normal, kaiming_uniform, glorot_normal, glorot_uniform, torch)",
                     name);
}

/* ---- orthogonal ----------------------------------------------------------------------------- */

/* q (m,n) := the Q of the thin QR a = Q R of a (m,n), m >= n, row-major, with Q's column j
 * multiplied by sign(R[j][j]): R's diagonal becomes non-negative, which makes the QR unique,
 * so the result does not depend on the reflector convention (torch.nn.init.orthogonal_ does
 * the same after LAPACK's geqrf). Householder reflections H_j = I - 2 v_j v_j^T, the unit
 * v_j stored over a's column j from row j down; a is destroyed; sign has n entries. */
static void householder_q(double *a, double *q, double *sign, int64_t m, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double norm = 0;
        for (int64_t i = j; i < m; i++) norm += a[i * n + j] * a[i * n + j];
        norm = sqrt(norm);
        const double x0 = a[j * n + j];
        const double alpha = x0 >= 0 ? -norm : norm; /* R[j][j]; the sign opposite x0 avoids cancellation */
        a[j * n + j] = x0 - alpha;                   /* v = x - alpha e_1, then normalised */
        double vnorm = 0;
        for (int64_t i = j; i < m; i++) vnorm += a[i * n + j] * a[i * n + j];
        vnorm = sqrt(vnorm);
        for (int64_t i = j; i < m; i++) a[i * n + j] = vnorm > 0 ? a[i * n + j] / vnorm : 0.0;
        for (int64_t k = j + 1; k < n; k++) { /* columns right of j: col -= 2 v (v . col) */
            double dot = 0;
            for (int64_t i = j; i < m; i++) dot += a[i * n + j] * a[i * n + k];
            dot *= 2;
            for (int64_t i = j; i < m; i++) a[i * n + k] -= dot * a[i * n + j];
        }
        sign[j] = alpha > 0 ? 1.0 : (alpha < 0 ? -1.0 : 0.0);
    }
    /* Q = H_0 H_1 ... H_{n-1} [I_n; 0]: apply H_{n-1} first to the identity's columns */
    memset(q, 0, (size_t)(m * n) * sizeof(double));
    for (int64_t j = 0; j < n; j++) q[j * n + j] = 1.0;
    for (int64_t j = n - 1; j >= 0; j--) {
        for (int64_t k = 0; k < n; k++) {
            double dot = 0;
            for (int64_t i = j; i < m; i++) dot += a[i * n + j] * q[i * n + k];
            if (dot == 0) continue;
            dot *= 2;
            for (int64_t i = j; i < m; i++) q[i * n + k] -= dot * a[i * n + j];
        }
    }
    for (int64_t i = 0; i < m; i++)
        for (int64_t k = 0; k < n; k++) q[i * n + k] *= sign[k];
}

/* torch.nn.init.orthogonal_(t, gain=1): W (rows, cols) = t flattened from dim 1; draw
 * N(0,1) (rows, cols) in row-major order, transpose when rows < cols, QR, sign, transpose
 * back. The rows (rows <= cols) or the columns of W come out orthonormal. */
static gopt_status init_orthogonal(gopt_tensor *t, gopt_rng *rng) {
    const int64_t rows = t->shape[0], cols = t->numel / rows;
    const int wide = rows < cols;
    const int64_t m = wide ? cols : rows, n = wide ? rows : cols; /* m >= n */
    size_t mn, bytes;
    if (!gopt__mul_size((size_t)m, (size_t)n, &mn) || !gopt__mul_size(mn, 2 * sizeof(double), &bytes) ||
        bytes > SIZE_MAX - (size_t)n * sizeof(double))
        return GOPT_FAIL(GOPT_EOVERFLOW, "orthogonal init of a (%lld,%lld) matrix", (long long)rows, (long long)cols);
    double *a = gopt__malloc(bytes + (size_t)n * sizeof(double));
    if (!a) return GOPT_FAIL(GOPT_ENOMEM, "orthogonal init scratch for a (%lld,%lld) matrix", (long long)rows,
                             (long long)cols);
    double *q = a + mn, *sign = q + mn;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double z = gopt_rng_normal(rng);
            if (wide) a[c * n + r] = z; /* a = the draw transposed, (cols, rows) */
            else a[r * n + c] = z;
        }
    householder_q(a, q, sign, m, n);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) t->data[r * cols + c] = (float)(wide ? q[c * n + r] : q[r * n + c]);
    gopt__free(a);
    return GOPT_OK;
}

/* ---- the schemes ---------------------------------------------------------------------------- */

gopt_status gopt_tensor_init(gopt_tensor *t, gopt_init kind, gopt_rng *rng) {
    GOPT_CHECK_NULL(t);
    GOPT_CHECK_NULL(rng);
    if (!t->data || t->numel < 1) return GOPT_FAIL(GOPT_EINVAL, "tensor has no data");
    if (t->ndim < 2)
        return GOPT_FAIL(GOPT_ESHAPE, "fan-in/fan-out need a tensor of 2 or more dims, got %d-D", t->ndim);
    double receptive = 1;
    for (int i = 2; i < t->ndim; i++) receptive *= (double)t->shape[i];
    double fan_in = (double)t->shape[1] * receptive, fan_out = (double)t->shape[0] * receptive;
    double bound;
    switch (kind) {
    case GOPT_INIT_HE_NORMAL:
        return gopt_tensor_fill_normal(t, 0.0f, (float)(sqrt(2.0) / sqrt(fan_in)), rng);
    case GOPT_INIT_HE_UNIFORM:
        bound = sqrt(2.0) * sqrt(3.0 / fan_in);
        break;
    case GOPT_INIT_XAVIER_NORMAL:
        return gopt_tensor_fill_normal(t, 0.0f, (float)sqrt(2.0 / (fan_in + fan_out)), rng);
    case GOPT_INIT_XAVIER_UNIFORM:
        bound = sqrt(6.0 / (fan_in + fan_out));
        break;
    case GOPT_INIT_TORCH_DEFAULT:
        bound = 1.0 / sqrt(fan_in);
        break;
    case GOPT_INIT_ORTHOGONAL:
        return init_orthogonal(t, rng);
    default:
        return GOPT_FAIL(GOPT_EINVAL, "unknown init kind %d", (int)kind);
    }
    return gopt_tensor_fill_uniform(t, (float)-bound, (float)bound, rng);
}
