/* Adafactor (Shazeer and Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear
 * Memory Cost", https://arxiv.org/abs/1804.04235), as torch.optim.Adafactor of PyTorch 2.5+
 * (https://pytorch.org/docs/stable/generated/torch.optim.Adafactor.html, its single-tensor
 * path in torch/optim/_adafactor.py).
 *
 * Per tensor, at step t (1-based), g = -g first when maximize:
 *   w = t^beta2_decay (the lerp weight, 1 - beta2_t);  rho = min(lr, 1/sqrt(t));
 *   alpha = max(eps2, ||p||/sqrt(numel)) * rho      (p before the decay below);
 *   p *= 1 - lr*wd (decoupled; skipped when wd = 0);
 *   2+ dims, factored over the last two (R, C), each of the B = numel/(R*C) matrices:
 *     row = lerp(row, mean_j g^2, w) (R values);  col = lerp(col, mean_i g^2, w) (C values);
 *     V = row_i*col_j / max(mean_i row, eps1);
 *   1 or 0 dims:  V = v = lerp(v, g^2, w);
 *   U = g / sqrt(max(V, eps1^2));  p -= alpha / max(1, RMS(U)/d) * U.
 * eps1 is cfg.eps (PyTorch's None is float32's machine epsilon 2^-23: the default here),
 * eps2 cfg.eps2 (1e-3), d cfg.clip_threshold (1.0); defaults lr 1e-2, beta2_decay -0.8, wd 0.
 * lerp is torch's (self + w*(end-self) for |w| < 0.5, else end - (end-self)*(1-w)).
 * State: R + C floats per matrix (a 1024x1024 weight keeps 8 kB), numel floats per vector:
 * it lives in the optimizer's own block and its checkpoint blob, not in arena-sized buffers.
 *
 * Differences from other frameworks (PyTorch's own note says so too): the paper and
 * Keras/optax/HF transformers add eps1 to g^2 before the factors (eps1 ~ 1e-30) and use no
 * clamp afterwards; PyTorch (and this file) leaves the factors alone and clamps the variance
 * estimate and its mean instead. The paper caps rho at 0.01 and has no lr; PyTorch's lr is
 * that cap and scales the decoupled weight decay. HF's Adafactor has relative_step and
 * warmup_init options and optional first moment (beta1), which PyTorch's lacks.
 * Refused beyond PyTorch: eps1 = 0 (it gives 0/0 for an all-zero gradient row).
 *
 * The step is three passes over every tensor, split into fixed units (row chunks of a
 * matrix, batches of matrices, 64 Ki-element blocks of a vector: large enough that the
 * threads' shares stream well, at 16 kB units the 1-D step ran 1.15x its memory floor) whose
 * partial sums are combined in order, so results do not depend on the thread count:
 *   A: ||p||^2, row sums of g^2 (row factors updated in place), column sums (a 2-D matrix's
 *      row chunks leave per-chunk partials; a batch of matrices sums its columns in stack
 *      tiles); vectors update v and sum U^2 here;  then column factors, alpha;
 *   B: sum of U^2 of the factored tensors;  then each tensor's step alpha/denom;
 *   C: p update (U recomputed with the same float operations).
 * So a matrix is read p,g + g + p,g and written p once: 24 bytes per element (a vector:
 * p,g,v read and v written, then p,g,v read and p written: 32). The units are fixed (32 row
 * chunks of a single matrix, whose column partials take 32 x cols floats of workspace) and
 * shared dynamically among the threads of one parallel region; the sums between the passes
 * run on one thread. Where no clamp can act, U of a matrix costs no division or root per
 * element (see rows_b). Batches of small matrices (convolution kernels) take the small_*
 * loops. Everything is allocated at create. */
#include <float.h>
#include <omp.h>

#include "optim/optim_impl.h"

#define CHUNKS 32         /* row chunks of a single (B = 1) matrix */
#define UNIT_ELEMS 65536  /* elements per unit of a vector or of a batch of matrices */
#define SUM_BLOCK 4096    /* elements per float partial sum of a vector (added in double) */
#define COL_TILE 256      /* column tile of a batch of matrices' column sums */
#define SMALL_C 16        /* batches of matrices at most this wide and tall take the small_* loops */

typedef struct af_scalars {
    float grad_sign, w, one_minus_w, decay, eps1, eps1_sq;
    int small_w, wd_on;
    double rho, eps2, d;
} af_scalars;

typedef struct af_tensor {
    int64_t offset, numel, batches;
    int rows, cols, factored, group, chunks;
    int64_t state;   /* its row then column factors (or its variance) in af_data.state */
    int64_t colpart; /* B = 1 matrices: CHUNKS x cols partial column sums in af_data.colpart */
    int unit0, unit1;
    float coef;      /* -alpha/denom of this step */
    float cmin, rm;  /* B = 1 matrices: min of the column factors, clamped mean of the row factors */
    double alpha;
} af_tensor;

typedef struct af_unit {
    int tensor, chunk;
    int64_t b0, b1; /* batches, factored */
    int r0, r1;     /* rows of each batch, factored */
    int64_t e0, e1; /* elements, vector */
} af_unit;

typedef struct af_data {
    int ntensors, nunits;
    af_tensor *tensors;
    af_unit *units;
    double *pp, *uu;   /* per unit: ||p||^2 and ||U||^2 partials */
    float *state;
    int64_t state_len;
    float *colpart;
} af_data;

static void defaults(gopt_optim_config *c) {
    c->lr = 1e-2f;
    c->eps = FLT_EPSILON; /* PyTorch's eps1 = None: torch.finfo(float32).eps = 2^-23 */
    c->beta2_decay = -0.8f;
    c->eps2 = 1e-3f;
    c->clip_threshold = 1.0f;
}

static gopt_status validate(const gopt_optim_config *c, const char *where) {
    GOPT__REFUSE(!isfinite(c->beta2_decay) || c->beta2_decay > 0, "adafactor", "beta2_decay",
                 "must be finite and <= 0", c->beta2_decay, where);
    GOPT__REFUSE(!isfinite(c->eps2) || c->eps2 < 0, "adafactor", "eps2", "must be finite and >= 0", c->eps2, where);
    GOPT__REFUSE(!isfinite(c->clip_threshold) || c->clip_threshold < 1, "adafactor", "clip_threshold (d)",
                 "must be finite and >= 1", c->clip_threshold, where);
    return GOPT_OK;
}

static unsigned state_slots(const gopt_optim_config *c) {
    (void)c;
    return 0u;
}

static void destroy(gopt_optim *opt) {
    af_data *d = opt->algo_data;
    if (!d) return;
    gopt__free(d->tensors);
    gopt__free(d->units);
    gopt__free(d->pp);
    gopt__free(d->uu);
    gopt__aligned_free(d->state);
    gopt__aligned_free(d->colpart);
    gopt__free(d);
    opt->algo_data = NULL;
}

/* The units of tensor t (count only when units is NULL). */
static int make_units(const af_tensor *t, int ti, af_unit *units) {
    int n = 0;
    if (t->numel == 0) return 0;
    if (!t->factored) {
        for (int64_t e = 0; e < t->numel; e += UNIT_ELEMS, n++)
            if (units) {
                af_unit u = {ti, 0, 0, 0, 0, 0, e, e + UNIT_ELEMS < t->numel ? e + UNIT_ELEMS : t->numel};
                units[n] = u;
            }
    } else if (t->batches == 1) {
        for (int k = 0; k < t->chunks; k++, n++)
            if (units) {
                af_unit u = {ti, k, 0, 1, (int)((int64_t)t->rows * k / t->chunks),
                             (int)((int64_t)t->rows * (k + 1) / t->chunks), 0, 0};
                units[n] = u;
            }
    } else {
        int64_t per = (int64_t)t->rows * t->cols, step = UNIT_ELEMS / per > 1 ? UNIT_ELEMS / per : 1;
        for (int64_t b = 0; b < t->batches; b += step, n++)
            if (units) {
                af_unit u = {ti, 0, b, b + step < t->batches ? b + step : t->batches, 0, t->rows, 0, 0};
                units[n] = u;
            }
    }
    return n;
}

static gopt_status create(gopt_optim *opt) {
    gopt_params *p = opt->params;
    int nt = gopt_params_count(p);
    af_data *d = gopt__calloc(1, sizeof *d);
    if (!d) return GOPT_FAIL(GOPT_ENOMEM, "adafactor tables");
    opt->algo_data = d; /* freed by destroy, also when this fails below */
    d->tensors = gopt__calloc((size_t)nt, sizeof *d->tensors);
    if (!d->tensors) return GOPT_FAIL(GOPT_ENOMEM, "adafactor table of %d tensors", nt);
    d->ntensors = nt;
    int64_t state = 0, colpart = 0, units = 0;
    for (int i = 0; i < nt; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(p, i, &info));
        af_tensor *t = &d->tensors[i];
        t->offset = info.offset;
        t->numel = info.value.numel;
        t->group = info.group;
        t->state = state;
        t->colpart = -1;
        int nd = info.value.ndim;
        t->factored = nd >= 2;
        if (t->factored) {
            int64_t R = info.value.shape[nd - 2], C = info.value.shape[nd - 1];
            if (R > INT32_MAX || C > INT32_MAX)
                return GOPT_FAIL(GOPT_EINVAL, "adafactor: tensor '%s' has a last-two-dims matrix too large", info.name);
            t->rows = (int)R;
            t->cols = (int)C;
            t->batches = R * C > 0 ? t->numel / (R * C) : 0;
            t->chunks = R < CHUNKS ? (int)R : CHUNKS;
            state += t->batches * (R + C);
            if (t->batches == 1) {
                t->colpart = colpart;
                colpart += (int64_t)t->chunks * C;
            }
        } else {
            state += t->numel;
        }
        t->unit0 = (int)units;
        units += make_units(t, i, NULL);
        t->unit1 = (int)units;
        if (units > INT32_MAX) return GOPT_FAIL(GOPT_EOVERFLOW, "adafactor: too many units");
    }
    d->nunits = (int)units;
    d->state_len = state;
    d->units = gopt__calloc((size_t)(units > 0 ? units : 1), sizeof *d->units);
    d->pp = gopt__calloc((size_t)(units > 0 ? units : 1), sizeof *d->pp);
    d->uu = gopt__calloc((size_t)(units > 0 ? units : 1), sizeof *d->uu);
    d->state = gopt__aligned_alloc((size_t)(state > 0 ? state : 1) * sizeof(float));
    d->colpart = gopt__aligned_alloc((size_t)(colpart > 0 ? colpart : 1) * sizeof(float));
    if (!d->units || !d->pp || !d->uu || !d->state || !d->colpart)
        return GOPT_FAIL(GOPT_ENOMEM, "adafactor state of %lld floats and %lld units", (long long)state,
                         (long long)units);
    for (int i = 0; i < nt; i++) make_units(&d->tensors[i], i, d->units + d->tensors[i].unit0);
    return GOPT_OK;
}

static void step_scalars(gopt__optim_group *g, int64_t step, void *out) {
    const gopt_optim_config *c = &g->cfg;
    af_scalars *k = out;
    double t = (double)step, lr = c->lr;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->w = (float)pow(t, (double)c->beta2_decay);
    k->one_minus_w = 1.0f - k->w;
    k->small_w = fabsf(k->w) < 0.5f;
    k->rho = fmin(lr, 1.0 / sqrt(t));
    k->wd_on = c->weight_decay != 0.0f;
    k->decay = (float)(1.0 - lr * (double)c->weight_decay);
    k->eps1 = c->eps;
    k->eps1_sq = (float)((double)c->eps * (double)c->eps);
    k->eps2 = c->eps2;
    k->d = c->clip_threshold;
}

GOPT_INLINE float lerpw(float self, float end, float w, float omw, int small) {
    return small ? self + w * (end - self) : end - (end - self) * omw;
}
GOPT_INLINE float lerp1(float self, float end, const af_scalars *k) {
    return lerpw(self, end, k->w, k->one_minus_w, k->small_w);
}

/* mean_i row_i of one matrix, clamped at eps1 (torch's row_var.mean(dim=-2).clamp_(min=eps1)). */
static float row_mean(const float *row, int R, float eps1) {
    double s = 0.0;
    for (int i = 0; i < R; i++) s += row[i];
    float m = (float)(s / R);
    return m < eps1 ? eps1 : m;
}

/* ---- pass A ---- */

/* Rows [r0, r1) of a matrix: row factors, ||p||^2, and (with_cols) column sums added into
 * colsum (C floats). */
GOPT_INLINE double k_rows_a(const af_scalars *k, const float *restrict P, const float *restrict G,
                            float *restrict row, float *restrict colsum, int r0, int r1, int C, const int with_cols) {
    double pp = 0.0;
    for (int i = r0; i < r1; i++) {
        const float *gr = G + (int64_t)i * C, *pr = P + (int64_t)i * C;
        float rs = 0.0f, ps = 0.0f;
#pragma omp simd reduction(+ : rs, ps)
        for (int j = 0; j < C; j++) {
            float gj = gr[j];
            rs += gj * gj;
            ps += pr[j] * pr[j];
            if (with_cols) colsum[j] += gj * gj;
        }
        row[i] = lerp1(row[i], rs / (float)C, k);
        pp += (double)ps;
    }
    return pp;
}
GOPT_CLONES static double rows_a_cols(const af_scalars *k, const float *P, const float *G, float *row, float *colsum,
                                      int r0, int r1, int C) {
    return k_rows_a(k, P, G, row, colsum, r0, r1, C, 1);
}
GOPT_CLONES static double rows_a(const af_scalars *k, const float *P, const float *G, float *row, int r0, int r1,
                                 int C) {
    return k_rows_a(k, P, G, row, NULL, r0, r1, C, 0);
}

/* Column factors of a whole matrix from its own rows, in COL_TILE stack tiles. */
GOPT_CLONES static void cols_a(const af_scalars *k, const float *restrict G, float *restrict col, int R, int C) {
    for (int j0 = 0; j0 < C; j0 += COL_TILE) {
        int nj = C - j0 < COL_TILE ? C - j0 : COL_TILE;
        float acc[COL_TILE];
        for (int j = 0; j < nj; j++) acc[j] = 0.0f;
        for (int i = 0; i < R; i++) {
            const float *gr = G + (int64_t)i * C + j0;
#pragma omp simd
            for (int j = 0; j < nj; j++) acc[j] += gr[j] * gr[j];
        }
        for (int j = 0; j < nj; j++) col[j0 + j] = lerp1(col[j0 + j], acc[j] / (float)R, k);
    }
}

/* 1/sqrt(max(v, eps1^2)): U per unit of g, every path's exact form */
GOPT_INLINE float inv_rms(float v, float e2) { return 1.0f / sqrtf(v > e2 ? v : e2); }

/* A vector block: v, ||p||^2 and ||U||^2. */
GOPT_INLINE void k_vec_a(const af_scalars *k, const float *restrict p, const float *restrict g, float *restrict v,
                         int64_t n, double *pp_out, double *uu_out, const int small) {
    const float gs = k->grad_sign, e2 = k->eps1_sq, w = k->w, omw = k->one_minus_w;
    float pp = 0.0f, uu = 0.0f;
#pragma omp simd reduction(+ : pp, uu)
    for (int64_t i = 0; i < n; i++) {
        float gi = gs * g[i];
        float vi = lerpw(v[i], gi * gi, w, omw, small);
        v[i] = vi;
        float u = inv_rms(vi, e2) * gi;
        pp += p[i] * p[i];
        uu += u * u;
    }
    *pp_out = pp;
    *uu_out = uu;
}
GOPT_CLONES static void vec_a(const af_scalars *k, const float *p, const float *g, float *v, int64_t n, double *pp_out,
                              double *uu_out) {
    double pp = 0.0, uu = 0.0;
    for (int64_t e = 0; e < n; e += SUM_BLOCK) {
        int64_t m = n - e < SUM_BLOCK ? n - e : SUM_BLOCK;
        double bp, bu;
        if (k->small_w) k_vec_a(k, p + e, g + e, v + e, m, &bp, &bu, 1);
        else k_vec_a(k, p + e, g + e, v + e, m, &bp, &bu, 0);
        pp += bp;
        uu += bu;
    }
    *pp_out = pp;
    *uu_out = uu;
}

/* ---- passes B and C: U of rows [r0, r1) of one matrix ---- */

/* U_ij = g_ij / sqrt(max(row_i*col_j/rm, eps1^2)). Where no clamp can act in row i
 * (a_i*min_j col_j > eps1^2 with a margin, a_i = row_i/rm), U_ij = g_ij * (1/sqrt(a_i)) *
 * isc_j with isc_j = 1/sqrt(col_j) precomputed: no division or root per element (a few ulps
 * from PyTorch's (row*col)/rm order, far inside the 1e-4 tolerance; passes B and C take the
 * same path, so they agree bit for bit). Otherwise, or without isc, PyTorch's order. */
typedef struct af_cols {
    const float *col, *isc; /* isc NULL: the exact per-element form everywhere */
    float rm, cmin;
} af_cols;

/* 1/sqrt(a) where no clamp can act in a row of a = row_i/rm (a*cmin > eps1^2 with a margin),
 * else -1: the exact form */
GOPT_INLINE float fast_ia(float a, float cmin, float e2) { return a * cmin > e2 * 1.001f ? 1.0f / sqrtf(a) : -1.0f; }

GOPT_INLINE int fast_row(const af_cols *cs, float ri, float e2, float *ia) {
    if (!cs->isc) return 0;
    *ia = fast_ia(ri / cs->rm, cs->cmin, e2);
    return *ia >= 0.0f;
}

GOPT_CLONES static double rows_b(const af_scalars *k, const float *restrict G, const float *restrict row,
                                 const af_cols *cs, int r0, int r1, int C) {
    const float gs = k->grad_sign, e2 = k->eps1_sq, rm = cs->rm;
    const float *restrict col = cs->col, *restrict isc = cs->isc;
    double total = 0.0;
    for (int i = r0; i < r1; i++) {
        const float *gr = G + (int64_t)i * C;
        const float ri = row[i];
        float s = 0.0f, ia;
        if (fast_row(cs, ri, e2, &ia)) {
#pragma omp simd reduction(+ : s)
            for (int j = 0; j < C; j++) {
                float u = (gs * gr[j]) * (ia * isc[j]);
                s += u * u;
            }
        } else {
#pragma omp simd reduction(+ : s)
            for (int j = 0; j < C; j++) {
                float v = (ri * col[j]) / rm;
                float u = inv_rms(v, e2) * (gs * gr[j]);
                s += u * u;
            }
        }
        total += (double)s;
    }
    return total;
}

GOPT_CLONES static void rows_c(const af_scalars *k, float *restrict P, const float *restrict G,
                               const float *restrict row, const af_cols *cs, float coef, int r0, int r1, int C) {
    const float gs = k->grad_sign, e2 = k->eps1_sq, decay = k->wd_on ? k->decay : 1.0f, rm = cs->rm;
    const float *restrict col = cs->col, *restrict isc = cs->isc;
    for (int i = r0; i < r1; i++) {
        float *pr = P + (int64_t)i * C;
        const float *gr = G + (int64_t)i * C;
        const float ri = row[i];
        float ia;
        if (fast_row(cs, ri, e2, &ia)) {
#pragma omp simd
            for (int j = 0; j < C; j++) {
                float u = (gs * gr[j]) * (ia * isc[j]);
                pr[j] = pr[j] * decay + coef * u;
            }
        } else {
#pragma omp simd
            for (int j = 0; j < C; j++) {
                float v = (ri * col[j]) / rm;
                float u = inv_rms(v, e2) * (gs * gr[j]);
                pr[j] = pr[j] * decay + coef * u;
            }
        }
    }
}

/* 1/sqrt of a column factor (0 for 0) */
GOPT_INLINE float isc_of(float c) { return c > 0 ? 1.0f / sqrtf(c) : 0.0f; }

/* min_j col_j of one matrix's columns, 0 if one is 0 (also NaN -> 0: the exact form) */
static float col_min(const float *col, int C) {
    float cmin = INFINITY;
    for (int j = 0; j < C; j++) cmin = col[j] < cmin ? col[j] : cmin;
    return cmin > 0 ? cmin : 0.0f;
}

/* isc_j = 1/sqrt(col_j) of one matrix's columns, and their col_min. */
static float col_isc(const float *col, float *isc, int C) {
    for (int j = 0; j < C; j++) isc[j] = isc_of(col[j]);
    return col_min(col, C);
}

GOPT_CLONES static void vec_c(const af_scalars *k, float *restrict p, const float *restrict g,
                              const float *restrict v, float coef, int64_t n) {
    const float gs = k->grad_sign, e2 = k->eps1_sq, decay = k->wd_on ? k->decay : 1.0f;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float gi = gs * g[i];
        float vi = v[i];
        float u = inv_rms(vi, e2) * gi;
        p[i] = p[i] * decay + coef * u;
    }
}

/* ---- batches of small matrices ---- */

/* A convolution's (out, in, kh, kw) weight is out*in matrices of kh x kw: the per-matrix
 * calls, SIMD reductions and scalar divisions and roots above cost more than such a
 * matrix's 9 elements (3.5 GB/s on a (1024, 1024, 3, 3) weight; about 20 with these).
 * Matrices of at most SMALL_C rows and columns and SMALL_F elements take these instead, in
 * blocks of SMALL_B of a unit's matrices: the elements' arithmetic in flat SIMD loops over the
 * block (g^2 and ||p||^2; U = (gs g) * F with F per element from its row and column), the
 * per-row and per-column quantities (sums, lerps, 1/sqrt of the factors, fast_row's test) in
 * short loops between. The same formulas and path choice as above. Stack: about 32 kB. */
#define SMALL_B 64
#define SMALL_F 64 /* elements per matrix at most: the block's g^2 or F, SMALL_B x SMALL_F floats */

GOPT_INLINE double k_small_a(const af_scalars *k, const float *restrict p, const float *restrict g,
                             float *restrict rows, float *restrict cols, int64_t b0, int64_t b1, const int R,
                             const int C) {
    const int64_t per = (int64_t)R * C;
    float g2[SMALL_B * SMALL_F], rsum[SMALL_B * SMALL_C], csum[SMALL_B * SMALL_C];
    double pp = 0.0;
    for (int64_t c0 = b0; c0 < b1; c0 += SMALL_B) {
        const int nb = b1 - c0 < SMALL_B ? (int)(b1 - c0) : SMALL_B, ne = nb * R * C;
        const float *P = p + c0 * per, *G = g + c0 * per;
        float ps = 0.0f;
#pragma omp simd reduction(+ : ps)
        for (int e = 0; e < ne; e++) {
            g2[e] = G[e] * G[e];
            ps += P[e] * P[e];
        }
        pp += (double)ps;
        for (int bb = 0; bb < nb; bb++) { /* sums in index order, as the matrix loops above */
            const float *q = g2 + bb * R * C;
            for (int i = 0; i < R; i++) {
                float rs = 0.0f;
                for (int j = 0; j < C; j++) rs += q[i * C + j];
                rsum[bb * R + i] = rs;
            }
            for (int j = 0; j < C; j++) {
                float cs = 0.0f;
                for (int i = 0; i < R; i++) cs += q[i * C + j];
                csum[bb * C + j] = cs;
            }
        }
        float *rw = rows + c0 * R, *cl = cols + c0 * C;
        for (int q = 0; q < nb * R; q++) rw[q] = lerp1(rw[q], rsum[q] / (float)C, k);
        for (int q = 0; q < nb * C; q++) cl[q] = lerp1(cl[q], csum[q] / (float)R, k);
    }
    return pp;
}

/* Pass B (p NULL: returns ||U||^2) or C (p += coef*U after the decay) over matrices [b0, b1). */
GOPT_INLINE double k_small_bc(const af_scalars *k, float *restrict p, const float *restrict g,
                              const float *restrict rows, const float *restrict cols, float coef, int64_t b0,
                              int64_t b1, const int R, const int C) {
    const int64_t per = (int64_t)R * C;
    const float gs = k->grad_sign, e2 = k->eps1_sq, decay = k->wd_on ? k->decay : 1.0f;
    float isc[SMALL_B * SMALL_C], ia[SMALL_B * SMALL_C], rmr[SMALL_B * SMALL_C], cmr[SMALL_B * SMALL_C];
    float F[SMALL_B * SMALL_F];
    double total = 0.0;
    for (int64_t c0 = b0; c0 < b1; c0 += SMALL_B) {
        const int nb = b1 - c0 < SMALL_B ? (int)(b1 - c0) : SMALL_B;
        const float *rw = rows + c0 * R, *cl = cols + c0 * C;
        for (int q = 0; q < nb * C; q++) isc[q] = isc_of(cl[q]); /* col_isc over the block */
        for (int bb = 0; bb < nb; bb++) {
            const float rm = row_mean(rw + bb * R, R, k->eps1), cmin = col_min(cl + bb * C, C);
            for (int i = 0; i < R; i++) rmr[bb * R + i] = rm, cmr[bb * R + i] = cmin;
        }
        for (int q = 0; q < nb * R; q++) ia[q] = fast_ia(rw[q] / rmr[q], cmr[q], e2); /* fast_row's */
        /* F: U / (gs g) per element of the block, then U and its use in one flat loop */
        for (int bb = 0; bb < nb; bb++) {
            const float *col = cl + bb * C, *is = isc + bb * C;
            for (int i = 0; i < R; i++) {
                const float ai = ia[bb * R + i], ri = rw[bb * R + i], rm = rmr[bb * R + i];
                float *f = F + (bb * R + i) * C;
                if (ai >= 0.0f) {
                    for (int j = 0; j < C; j++) f[j] = ai * is[j];
                } else {
                    for (int j = 0; j < C; j++) {
                        float v = (ri * col[j]) / rm;
                        f[j] = inv_rms(v, e2);
                    }
                }
            }
        }
        const float *G = g + c0 * per;
        const int ne = nb * R * C;
        float s = 0.0f;
        if (p) {
            float *P = p + c0 * per;
#pragma omp simd
            for (int e = 0; e < ne; e++) P[e] = P[e] * decay + coef * ((gs * G[e]) * F[e]);
        } else {
#pragma omp simd reduction(+ : s)
            for (int e = 0; e < ne; e++) {
                float u = (gs * G[e]) * F[e];
                s += u * u;
            }
        }
        total += (double)s;
    }
    return total;
}

/* 3x3 (a 3x3 convolution's kernels) with the sizes as constants: its loops unrolled. */
GOPT_CLONES static double small_a(const af_scalars *k, const float *p, const float *g, float *rows, float *cols,
                                  int64_t b0, int64_t b1, int R, int C) {
    if (R == 3 && C == 3) return k_small_a(k, p, g, rows, cols, b0, b1, 3, 3);
    return k_small_a(k, p, g, rows, cols, b0, b1, R, C);
}
GOPT_CLONES static double small_bc(const af_scalars *k, float *p, const float *g, const float *rows,
                                   const float *cols, float coef, int64_t b0, int64_t b1, int R, int C) {
    if (R == 3 && C == 3) return k_small_bc(k, p, g, rows, cols, coef, b0, b1, 3, 3);
    return k_small_bc(k, p, g, rows, cols, coef, b0, b1, R, C);
}

/* ---- the step ---- */

static void unit_pass(gopt_optim *opt, int pass, int ui) {
    af_data *d = opt->algo_data;
    const af_unit *u = &d->units[ui];
    if (gopt_params_is_frozen(opt->params, u->tensor)) return; /* frozen: value and factors stay */
    af_tensor *t = &d->tensors[u->tensor];
    const af_scalars *k = gopt__optim_scalars(opt, t->group);
    float *p = gopt_params_values(opt->params) + t->offset;
    const float *g = gopt__optim_grads(opt) + t->offset; /* with L1: g + l1*sign(p) */
    float *st = d->state + t->state;
    if (!t->factored) {
        if (pass == 0) vec_a(k, p + u->e0, g + u->e0, st + u->e0, u->e1 - u->e0, &d->pp[ui], &d->uu[ui]);
        else if (pass == 2) vec_c(k, p + u->e0, g + u->e0, st + u->e0, t->coef, u->e1 - u->e0);
        return;
    }
    const int R = t->rows, C = t->cols;
    const int64_t per = (int64_t)R * C;
    float *rows = st, *cols = st + t->batches * R;
    double acc = 0.0;
    if (t->batches > 1 && R <= SMALL_C && C <= SMALL_C && R * C <= SMALL_F) {
        if (pass == 0) d->pp[ui] = small_a(k, p, g, rows, cols, u->b0, u->b1, R, C);
        else if (pass == 1) d->uu[ui] = small_bc(k, NULL, g, rows, cols, 0.0f, u->b0, u->b1, R, C);
        else small_bc(k, p, g, rows, cols, t->coef, u->b0, u->b1, R, C);
        return;
    }
    for (int64_t b = u->b0; b < u->b1; b++) {
        float *P = p + b * per, *row = rows + b * R, *col = cols + b * C;
        const float *G = g + b * per;
        if (pass == 0) {
            if (t->batches == 1) {
                float *cp = d->colpart + t->colpart + (int64_t)u->chunk * C;
                for (int j = 0; j < C; j++) cp[j] = 0.0f;
                acc += rows_a_cols(k, P, G, row, cp, u->r0, u->r1, C);
            } else {
                acc += rows_a(k, P, G, row, u->r0, u->r1, C);
                cols_a(k, G, col, R, C);
            }
        } else {
            af_cols cs = {col, NULL, 0.0f, 0.0f};
            float isc[COL_TILE];
            if (t->batches == 1) { /* computed once per step, after pass A */
                cs.isc = d->colpart + t->colpart;
                cs.cmin = t->cmin;
                cs.rm = t->rm;
            } else {
                cs.rm = row_mean(row, R, k->eps1);
                if (C <= COL_TILE) {
                    cs.cmin = col_isc(col, isc, C);
                    cs.isc = isc;
                }
            }
            if (pass == 1) acc += rows_b(k, G, row, &cs, u->r0, u->r1, C);
            else rows_c(k, P, G, row, &cs, t->coef, u->r0, u->r1, C);
        }
    }
    if (pass == 0) d->pp[ui] = acc;
    else if (pass == 1) d->uu[ui] = acc;
}

/* After pass A: alpha from ||p|| (before the decay); a single matrix's column factors from
 * its chunks, then 1/sqrt of them and the clamped mean of its row factors. */
static void combine_a(gopt_optim *opt) {
    af_data *d = opt->algo_data;
    for (int i = 0; i < d->ntensors; i++) {
        af_tensor *t = &d->tensors[i];
        if (t->numel == 0 || gopt_params_is_frozen(opt->params, i)) continue;
        const af_scalars *k = gopt__optim_scalars(opt, t->group);
        double pp = 0.0;
        for (int u = t->unit0; u < t->unit1; u++) pp += d->pp[u];
        double rms = (double)(float)sqrt(pp) / sqrt((double)t->numel);
        t->alpha = (rms > k->eps2 ? rms : k->eps2) * k->rho;
        if (t->factored && t->batches == 1) {
            const int C = t->cols;
            float *col = d->state + t->state + t->rows;
            const float *cp = d->colpart + t->colpart;
            for (int j = 0; j < C; j++) {
                double s = 0.0;
                for (int c = 0; c < t->chunks; c++) s += cp[(int64_t)c * C + j];
                col[j] = lerp1(col[j], (float)s / (float)t->rows, k);
            }
            t->cmin = col_isc(col, d->colpart + t->colpart, C); /* the partials are spent: isc in their place */
            t->rm = row_mean(d->state + t->state, t->rows, k->eps1);
        }
    }
}

/* After pass B: each tensor's step -alpha/denom. */
static void combine_b(gopt_optim *opt) {
    af_data *d = opt->algo_data;
    for (int i = 0; i < d->ntensors; i++) {
        af_tensor *t = &d->tensors[i];
        if (t->numel == 0) continue;
        const af_scalars *k = gopt__optim_scalars(opt, t->group);
        double uu = 0.0;
        for (int u = t->unit0; u < t->unit1; u++) uu += d->uu[u];
        double rms_d = (double)(float)sqrt(uu) / (sqrt((double)t->numel) * k->d);
        double denom = rms_d > 1.0 ? rms_d : 1.0;
        t->coef = (float)(-t->alpha / denom);
    }
}

/* One parallel region: the units of every tensor in each pass (fixed units, dynamically
 * shared among the threads: the partial sums do not depend on the thread count), the
 * combinations between the passes on one thread. */
static void pass(gopt_optim *opt) {
    af_data *d = opt->algo_data;
    const int nthreads = gopt__optim_threads(opt), nu = d->nunits;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
#pragma omp for schedule(dynamic)
        for (int ui = 0; ui < nu; ui++) unit_pass(opt, 0, ui);
#pragma omp single
        combine_a(opt);
#pragma omp for schedule(dynamic)
        for (int ui = 0; ui < nu; ui++) unit_pass(opt, 1, ui);
#pragma omp single
        combine_b(opt);
#pragma omp for schedule(dynamic)
        for (int ui = 0; ui < nu; ui++) unit_pass(opt, 2, ui);
    }
}

/* ---- state: the factors after the shared part; the config fields in each group's record ---- */

static size_t extra_size(const gopt_optim *opt) {
    const af_data *d = opt->algo_data;
    return d ? (size_t)d->state_len * sizeof(float) : 0;
}
static void extra_save(const gopt_optim *opt, gopt__wcur *w) {
    const af_data *d = opt->algo_data;
    gopt__put(w, d->state, (size_t)d->state_len * sizeof(float));
}
static void extra_load(gopt_optim *opt, gopt__rcur *r) {
    af_data *d = opt->algo_data;
    gopt__get(r, d->state, (size_t)d->state_len * sizeof(float));
}

static void put_cfg(gopt__wcur *w, const gopt_optim_config *c) {
    gopt__put_f32(w, c->beta2_decay);
    gopt__put_f32(w, c->eps2);
    gopt__put_f32(w, c->clip_threshold);
}
static void get_cfg(gopt__rcur *r, gopt_optim_config *c) {
    c->beta2_decay = gopt__get_f32(r);
    c->eps2 = gopt__get_f32(r);
    c->clip_threshold = gopt__get_f32(r);
}

const gopt__optim_algo *gopt__optim_adafactor(void) {
    static const gopt__optim_algo algo = {
        .name = "adafactor",
        .has_eps = 1,
        .has_betas = 0,
        .momentum_field = GOPT__MOMENTUM_NONE,
        .state_names = {"(none)"},
        .defaults = defaults,
        .validate = validate,
        .state_slots = state_slots,
        .create = create,
        .destroy = destroy,
        .scalars_size = sizeof(af_scalars),
        .step_scalars = step_scalars,
        .pass = pass,
        .cfg_bytes = 12,
        .put_cfg = put_cfg,
        .get_cfg = get_cfg,
        .extra_size = extra_size,
        .extra_save = extra_save,
        .extra_load = extra_load,
    };
    return &algo;
}
