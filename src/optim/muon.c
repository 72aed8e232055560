/* Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks",
 * https://kellerjordan.github.io/posts/muon/), as torch.optim.Muon of PyTorch 2.9+
 * (https://pytorch.org/docs/stable/generated/torch.optim.Muon.html, torch/optim/_muon.py),
 * with AdamW inside the same optimizer for the tensors Muon should not take.
 *
 * Per tensor of 2+ dims, seen as the matrix U (rows, cols) = (shape[0], numel/shape[0]):
 *   buf = lerp(buf, g, 1-momentum);  U = nesterov ? lerp(g, buf, momentum) : buf;
 *   X = U / max(||U||_F, eps);  r = min(rows, cols);
 *   ns_steps times:  A = X X^T (r x r);  B = b*A + c*A A;  X = a*X + B X
 *     (rows > cols: PyTorch transposes; here X stays (rows, cols) and the same products are
 *      A = X^T X and X = a*X + X B^T, so nothing is transposed in memory);
 *   p *= 1 - lr*wd;  p -= lr*ratio * X,  ratio = sqrt(max(1, rows/cols)) (adjust_lr_fn
 *   original) or 0.2*sqrt(max(rows, cols)) (match_rms_adamw).
 * lerp is torch's: self + w*(end - self) when |w| < 0.5, else end - (end - self)*(1 - w).
 * State: momentum_buffer (state[0]); the AdamW tensors use state[0] as exp_avg and state[1]
 * as exp_avg_sq (a tensor is either kind, so the slots are shared).
 *
 * Differences from other frameworks:
 * - PyTorch runs the iteration in bfloat16 and refuses every tensor that is not 2-D; here it
 *   is float32 on SGEMM (three GEMMs per iteration), and a conv weight (out,in,kh,kw) is the
 *   matrix (out, in*kh*kw) (pytorch#166209), its ratio from those rows and cols.
 * - Keras' Muon runs AdamW for variables that are not 2-4-D and for embeddings/excluded
 *   layers, with lr*adam_lr_ratio and the shared weight decay; here tensors of fewer than
 *   2 dims go to AdamW when muon_adamw_1d (default 1) with lr*adamw_lr_ratio, betas
 *   (beta1, beta2), adamw_eps, adamw_weight_decay; any other tensor (embeddings, the output
 *   layer) by moving it into a group whose config has algo GOPT_ALGO_ADAMW, which then runs
 *   torch.optim.AdamW (adam.c's kernel) with that config. optax's muon labels tensors by a
 *   mask function instead (optax#1271).
 * - Keller Jordan's reference multiplies by lr*max(1, rows/cols)^0.5 as PyTorch's original.
 * - maximize (not in PyTorch's Muon) negates g first, as elsewhere in this library.
 *
 * The Newton-Schulz workspaces (two matrices of the largest tensor and two r x r matrices;
 * one more set per thread for the small tensors) and the tensor table are allocated at
 * create; a step allocates nothing. A large tensor's GEMMs run outside any OpenMP region of
 * the library (OpenBLAS threads itself) and its element-wise parts split across OpenMP
 * threads, with the norm reduced over fixed blocks in order. Tensors of at most 65536
 * elements are spread over the threads, each with single-threaded GEMMs (OpenBLAS set to
 * one thread around that region, so neither BLAS build oversubscribes): their results do
 * not depend on the thread count; a large tensor's may, through OpenBLAS's own split. */
#include <limits.h>
#include <omp.h>

#include "core/blas.h"
#include "optim/optim_impl.h"

#define NORM_BLOCK 4096 /* elements per partial sum of ||U||^2 */
#define ADAMW_SCALARS_MAX 32

typedef struct muon_scalars {
    float grad_sign, momentum, one_minus_momentum, eps, decay;
    double lr;
    int nesterov;
    float adamw[ADAMW_SCALARS_MAX];  /* adam.c's scalars for this group's AdamW tensors */
    gopt_optim_config adamw_cfg;     /* the config AdamW's kernel sees */
} muon_scalars;

typedef struct muon_tensor {
    int64_t offset, numel;
    int rows, cols, ndim, group;
    const char *name;
} muon_tensor;

/* Newton-Schulz workspace of one thread: two (rows, cols) matrices, two r x r matrices,
 * the norm's block sums. */
typedef struct muon_ws {
    float *x, *x2, *gram, *poly;
    double *block_sums;
} muon_ws;

#define SMALL_NUMEL GOPT__OPTIM_PARALLEL_MIN /* Muon tensors up to this size: one per thread */
#define MAX_WS 64

typedef struct muon_data {
    int ntensors;
    muon_tensor *tensors;
    int nws;            /* workspaces: ws[0] for the largest tensor, the others for small ones */
    muon_ws ws[MAX_WS];
    int *small;         /* indices of the Muon-capable tensors of at most SMALL_NUMEL elements */
    int nsmall;
} muon_data;

static void defaults(gopt_optim_config *c) {
    c->lr = 1e-3f;
    c->weight_decay = 0.1f;
    c->momentum = 0.95f;
    c->nesterov = 1;
    c->eps = 1e-7f;
    c->ns_steps = 5;
    c->ns_coefficients[0] = 3.4445f;
    c->ns_coefficients[1] = -4.775f;
    c->ns_coefficients[2] = 2.0315f;
    c->adjust_lr_fn = GOPT_MUON_ADJUST_ORIGINAL;
    c->muon_adamw_1d = 1;
    c->adamw_lr_ratio = 1.0f;
    c->adamw_eps = 1e-8f;
    c->adamw_weight_decay = 1e-2f;
}

static gopt_status validate(const gopt_optim_config *c, const char *where) {
    GOPT__REFUSE(!(c->momentum >= 0 && c->momentum < 1), "muon", "momentum", "is outside [0, 1)", c->momentum, where);
    GOPT__REFUSE(c->ns_steps < 0 || c->ns_steps >= 100, "muon", "ns_steps", "is outside [0, 100)", c->ns_steps, where);
    for (int i = 0; i < 3; i++)
        GOPT__REFUSE(!isfinite(c->ns_coefficients[i]), "muon", "ns_coefficients[i]", "must be finite",
                     c->ns_coefficients[i], where);
    GOPT__REFUSE(c->adjust_lr_fn != GOPT_MUON_ADJUST_ORIGINAL && c->adjust_lr_fn != GOPT_MUON_ADJUST_MATCH_RMS_ADAMW,
                 "muon", "adjust_lr_fn", "is not original (0) or match_rms_adamw (1)", (int)c->adjust_lr_fn, where);
    GOPT__REFUSE(!isfinite(c->adamw_lr_ratio) || c->adamw_lr_ratio < 0, "muon", "adamw_lr_ratio",
                 "must be finite and >= 0", c->adamw_lr_ratio, where);
    GOPT__REFUSE(!isfinite(c->adamw_eps) || c->adamw_eps <= 0, "muon", "adamw_eps", "must be finite and > 0",
                 c->adamw_eps, where);
    GOPT__REFUSE(!isfinite(c->adamw_weight_decay) || c->adamw_weight_decay < 0, "muon", "adamw_weight_decay",
                 "must be finite and >= 0", c->adamw_weight_decay, where);
    return GOPT_OK;
}

/* momentum_buffer; exp_avg_sq for the AdamW fallback of tensors under 2 dims. */
static unsigned state_slots(const gopt_optim_config *c) { return 1u | (c->muon_adamw_1d ? 2u : 0u); }

/* 1: Muon takes a tensor of ndim dims in a group with config c; 0: AdamW does; -1: refused. */
static int takes(const gopt_optim_config *c, int ndim) {
    if (c->algo == GOPT_ALGO_ADAMW) return 0;
    if (ndim >= 2) return 1;
    return c->muon_adamw_1d ? 0 : -1;
}

/* Every tensor's kind with group `group` under config c (others under their own): refuses a
 * tensor Muon cannot take and an arena that leaves Muon none. `call` names the API call. */
static gopt_status check_tensors(const gopt_optim *opt, int group, const gopt_optim_config *c, const char *call) {
    const muon_data *md = opt->algo_data;
    int nmuon = 0;
    const muon_tensor *first = NULL;
    for (int i = 0; i < md->ntensors; i++) {
        const muon_tensor *t = &md->tensors[i];
        const gopt_optim_config *tc = t->group == group ? c : &opt->groups[t->group].cfg;
        int k = takes(tc, t->ndim);
        if (k < 0)
            return GOPT_FAIL(GOPT_EINVAL, "%s: muon takes tensors of 2+ dims (matrices, conv weights); tensor '%s' "
                             "(group %d) has %d: set muon_adamw_1d = 1 to run such tensors with AdamW, or move it "
                             "into a group whose config has algo adamw", call, t->name, t->group, t->ndim);
        nmuon += k;
        if (!first) first = t;
    }
    if (nmuon == 0)
        return GOPT_FAIL(GOPT_EINVAL, "%s: muon would take no tensor of this arena: every one runs AdamW (the first, "
                         "'%s', has %d dims, group %d); use algo adamw instead", call, first ? first->name : "?",
                         first ? first->ndim : 0, first ? first->group : 0);
    return GOPT_OK;
}

static gopt_status check_group(const gopt_optim *opt, int group, const gopt_optim_config *c) {
    return check_tensors(opt, group, c, "gopt_optim_set_group_config");
}

static void destroy(gopt_optim *opt) {
    muon_data *md = opt->algo_data;
    if (!md) return;
    gopt__free(md->tensors);
    gopt__free(md->small);
    for (int i = 0; i < md->nws; i++) {
        gopt__aligned_free(md->ws[i].x);
        gopt__aligned_free(md->ws[i].x2);
        gopt__aligned_free(md->ws[i].gram);
        gopt__aligned_free(md->ws[i].poly);
        gopt__free(md->ws[i].block_sums);
    }
    gopt__free(md);
    opt->algo_data = NULL;
}

static gopt_status alloc_ws(muon_data *md, int64_t numel, int64_t r2) {
    muon_ws *w = &md->ws[md->nws++]; /* counted first: destroy frees what was made */
    w->x = gopt__aligned_alloc((size_t)numel * sizeof(float));
    w->x2 = gopt__aligned_alloc((size_t)numel * sizeof(float));
    w->gram = gopt__aligned_alloc((size_t)r2 * sizeof(float));
    w->poly = gopt__aligned_alloc((size_t)r2 * sizeof(float));
    w->block_sums = gopt__calloc((size_t)(numel / NORM_BLOCK + 1), sizeof(double));
    if (!w->x || !w->x2 || !w->gram || !w->poly || !w->block_sums)
        return GOPT_FAIL(GOPT_ENOMEM, "muon Newton-Schulz workspace for a matrix of %lld elements", (long long)numel);
    return GOPT_OK;
}

static gopt_status create(gopt_optim *opt) {
    if (gopt__optim_adamw()->scalars_size > sizeof(((muon_scalars *)0)->adamw))
        return GOPT_FAIL(GOPT_EINVAL, "muon: AdamW's scalars outgrew muon_scalars.adamw");
    gopt_params *p = opt->params;
    int nt = gopt_params_count(p);
    muon_data *md = gopt__calloc(1, sizeof *md);
    if (!md) return GOPT_FAIL(GOPT_ENOMEM, "muon tables");
    opt->algo_data = md; /* freed by destroy, also when this fails below */
    md->tensors = gopt__calloc((size_t)nt, sizeof *md->tensors);
    if (!md->tensors) return GOPT_FAIL(GOPT_ENOMEM, "muon table of %d tensors", nt);
    md->ntensors = nt;
    int64_t max_numel = 1, max_r2 = 1, small_numel = 1, small_r2 = 1;
    md->small = gopt__calloc((size_t)(nt > 0 ? nt : 1), sizeof *md->small);
    if (!md->small) return GOPT_FAIL(GOPT_ENOMEM, "muon table of %d tensors", nt);
    for (int i = 0; i < nt; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(p, i, &info));
        muon_tensor *t = &md->tensors[i];
        t->offset = info.offset;
        t->numel = info.value.numel;
        t->ndim = info.value.ndim;
        t->group = info.group;
        t->name = info.name;
        if (t->ndim >= 2 && t->numel > 0) {
            int64_t rows = info.value.shape[0], cols = t->numel / rows;
            if (rows > INT_MAX || cols > INT_MAX)
                return GOPT_FAIL(GOPT_EINVAL, "gopt_optim_create: muon: tensor '%s' as a matrix (%lld, %lld) is too "
                                 "large for SGEMM", t->name, (long long)rows, (long long)cols);
            t->rows = (int)rows;
            t->cols = (int)cols;
            int64_t r = rows < cols ? rows : cols;
            if (t->numel > max_numel) max_numel = t->numel;
            if (r * r > max_r2) max_r2 = r * r;
            if (t->numel <= SMALL_NUMEL) {
                md->small[md->nsmall++] = i;
                if (t->numel > small_numel) small_numel = t->numel;
                if (r * r > small_r2) small_r2 = r * r;
            }
        }
    }
    GOPT_TRY(check_tensors(opt, -1, NULL, "gopt_optim_create"));
    /* one workspace for the largest tensor; one more per thread (as set now) for the small
     * tensors, which a step spreads over the threads (see pass) */
    GOPT_TRY(alloc_ws(md, max_numel, max_r2));
    int extra = md->nsmall > 1 ? gopt_get_threads() - 1 : 0;
    if (extra > MAX_WS - 1) extra = MAX_WS - 1;
    for (int i = 0; i < extra; i++) GOPT_TRY(alloc_ws(md, small_numel, small_r2));
    return GOPT_OK;
}

static void step_scalars(gopt__optim_group *g, int64_t step, void *out) {
    const gopt_optim_config *c = &g->cfg;
    muon_scalars *k = out;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->momentum = c->momentum;
    k->one_minus_momentum = (float)(1.0 - (double)c->momentum);
    k->eps = c->eps;
    k->lr = c->lr;
    k->decay = (float)(1.0 - (double)c->lr * (double)c->weight_decay);
    k->nesterov = c->nesterov;
    /* AdamW: the group's own config, or the fallback's for tensors under 2 dims */
    gopt__optim_group a = *g;
    if (c->algo != GOPT_ALGO_ADAMW) {
        a.cfg.algo = GOPT_ALGO_ADAMW;
        a.cfg.lr = (float)((double)c->lr * (double)c->adamw_lr_ratio);
        a.cfg.eps = c->adamw_eps;
        a.cfg.weight_decay = c->adamw_weight_decay;
        a.cfg.amsgrad = 0;
    }
    k->adamw_cfg = a.cfg;
    gopt__optim_adamw()->step_scalars(&a, step, k->adamw);
}

/* torch.lerp(self, end, w) for one element, w a float scalar. */
GOPT_INLINE float lerp1(float self, float end, float w, float one_minus_w, int small) {
    return small ? self + w * (end - self) : end - (end - self) * one_minus_w;
}

/* buf = lerp(buf, g, 1-momentum); x = U; returns sum of U^2 over [0, n). */
GOPT_CLONES static double momentum_block(const muon_scalars *k, const float *restrict g, float *restrict buf,
                                         float *restrict x, int64_t n) {
    const float gs = k->grad_sign, w = k->one_minus_momentum, omw = 1.0f - w, m = k->momentum, omm = 1.0f - m;
    const int small_w = fabsf(w) < 0.5f, small_m = fabsf(m) < 0.5f, nesterov = k->nesterov;
    float sum = 0.0f;
    double total = 0.0;
    /* float partial sums of 256 elements, added in double */
    for (int64_t b = 0; b < n; b += 256) {
        int64_t e = b + 256 < n ? b + 256 : n;
        sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t i = b; i < e; i++) {
            float gi = gs * g[i];
            float bi = lerp1(buf[i], gi, w, omw, small_w);
            buf[i] = bi;
            float u = nesterov ? lerp1(gi, bi, m, omm, small_m) : bi;
            x[i] = u;
            sum += u * u;
        }
        total += (double)sum;
    }
    return total;
}

GOPT_CLONES static void scale_block(float *restrict x, float norm, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) x[i] = x[i] / norm;
}

GOPT_CLONES static void update_block(float *restrict p, const float *restrict x, float decay, float neg_lr,
                                     int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) p[i] = p[i] * decay + neg_lr * x[i];
}

static int threads_for(int64_t n) { return n > GOPT__OPTIM_PARALLEL_MIN ? gopt_get_threads() : 1; }

/* One Muon tensor. */
static void muon_tensor_step(gopt_optim *opt, const muon_tensor *t, const muon_scalars *k,
                             const gopt_optim_config *c, muon_ws *ws) {
    const int64_t n = t->numel, nblocks = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    float *p = gopt_params_values(opt->params) + t->offset;
    const float *g = gopt__optim_grads(opt) + t->offset; /* with L1: g + l1*sign(p) */
    float *buf = opt->state[0] + t->offset;
    float *x = ws->x, *x2 = ws->x2, *A = ws->gram, *B = ws->poly;
    double *sums = ws->block_sums;
    const int nth = threads_for(n);
#pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t lo = b * NORM_BLOCK, len = n - lo < NORM_BLOCK ? n - lo : NORM_BLOCK;
        sums[b] = momentum_block(k, g + lo, buf + lo, x + lo, len);
    }
    double ss = 0.0;
    for (int64_t b = 0; b < nblocks; b++) ss += sums[b];
    float norm = (float)sqrt(ss);
    if (!(norm >= k->eps)) norm = norm != norm ? norm : k->eps; /* clamp(min=eps); NaN stays */
#pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t lo = b * NORM_BLOCK, len = n - lo < NORM_BLOCK ? n - lo : NORM_BLOCK;
        scale_block(x + lo, norm, len);
    }
    const int R = t->rows, C = t->cols, tall = R > C, r = tall ? C : R;
    const float a = c->ns_coefficients[0], bq = c->ns_coefficients[1], cq = c->ns_coefficients[2];
    for (int it = 0; it < c->ns_steps; it++) {
        /* A = X X^T (wide) or X^T X (tall): r x r */
        if (tall) gopt__sgemm(1, 0, C, C, R, 1.0f, x, C, x, C, 0.0f, A, C);
        else gopt__sgemm(0, 1, R, R, C, 1.0f, x, C, x, C, 0.0f, A, R);
        /* B = b*A + c*A A */
        memcpy(B, A, (size_t)r * (size_t)r * sizeof(float));
        gopt__sgemm(0, 0, r, r, r, cq, A, r, A, r, bq, B, r);
        /* X = a*X + B X (wide) or a*X + X B^T (tall) */
        memcpy(x2, x, (size_t)n * sizeof(float));
        if (tall) gopt__sgemm(0, 1, R, C, C, 1.0f, x, C, B, C, a, x2, C);
        else gopt__sgemm(0, 0, R, C, R, 1.0f, B, R, x, C, a, x2, C);
        float *tmp = x;
        x = x2;
        x2 = tmp;
    }
    double ratio = c->adjust_lr_fn == GOPT_MUON_ADJUST_MATCH_RMS_ADAMW
                       ? 0.2 * sqrt((double)(R > C ? R : C))
                       : sqrt((double)R / (double)C > 1.0 ? (double)R / (double)C : 1.0);
    const float neg_lr = (float)-(k->lr * ratio);
#pragma omp parallel for num_threads(nth) schedule(static) if (nth > 1)
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t lo = b * NORM_BLOCK, len = n - lo < NORM_BLOCK ? n - lo : NORM_BLOCK;
        update_block(p + lo, x + lo, k->decay, neg_lr, len);
    }
}

/* One AdamW tensor: adam.c's kernel on 16-aligned slices. */
static void adamw_tensor_step(gopt_optim *opt, const muon_tensor *t, const muon_scalars *k) {
    const gopt__optim_algo *aw = gopt__optim_adamw();
    float *p = gopt_params_values(opt->params) + t->offset;
    const float *g = gopt__optim_grads(opt) + t->offset; /* with L1: g + l1*sign(p) */
    float *m = opt->state[0] + t->offset, *v = opt->state[1] + t->offset;
    const int64_t n = t->numel;
    const int nth = threads_for(n);
#pragma omp parallel num_threads(nth) if (nth > 1)
    {
        int64_t lo, hi;
        gopt__optim_thread_slice(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        float *const st[GOPT__OPTIM_NSTATE] = {m + lo, v + lo, NULL};
        if (lo < hi) aw->run(k->adamw, &k->adamw_cfg, p + lo, g + lo, st, hi - lo);
    }
}

/* AdamW tensors and large Muon tensors one after the other (threads inside each: OpenMP
 * for the element-wise parts, OpenBLAS for the GEMMs); then the small Muon tensors (a CIFAR
 * ResNet's convolutions), one per thread at a time with single-threaded GEMMs, as many small
 * multi-threaded GEMMs would spend their time in fork/join. A tensor's result does not
 * depend on the thread that computes it. */
static void pass(gopt_optim *opt) {
    muon_data *md = opt->algo_data;
    const int threads = gopt_get_threads(), spread = md->nws > 1 && threads > 1;
    for (int i = 0; i < md->ntensors; i++) {
        const muon_tensor *t = &md->tensors[i];
        if (t->numel == 0 || gopt_params_is_frozen(opt->params, i)) continue;
        const gopt_optim_config *c = &opt->groups[t->group].cfg;
        const muon_scalars *k = gopt__optim_scalars(opt, t->group);
        if (takes(c, t->ndim) != 1) adamw_tensor_step(opt, t, k);
        else if (!spread || t->numel > SMALL_NUMEL) muon_tensor_step(opt, t, k, c, &md->ws[0]);
    }
    if (!spread) return;
    const int nth = threads < md->nws ? threads : md->nws, ns = md->nsmall;
    gopt__blas_set_threads(1); /* GEMMs inside the region below: one thread each */
#pragma omp parallel for num_threads(nth) schedule(dynamic)
    for (int s = 0; s < ns; s++) {
        const muon_tensor *t = &md->tensors[md->small[s]];
        const gopt_optim_config *c = &opt->groups[t->group].cfg;
        if (takes(c, t->ndim) == 1 && !gopt_params_is_frozen(opt->params, md->small[s]))
            muon_tensor_step(opt, t, gopt__optim_scalars(opt, t->group), c, &md->ws[omp_get_thread_num()]);
    }
    gopt__blas_set_threads(threads);
}

#define CFG_BYTES (4 * 9)

static void put_cfg(gopt__wcur *w, const gopt_optim_config *c) {
    gopt__put_u32(w, (uint32_t)c->ns_steps);
    for (int i = 0; i < 3; i++) gopt__put_f32(w, c->ns_coefficients[i]);
    gopt__put_u32(w, (uint32_t)c->adjust_lr_fn);
    gopt__put_u32(w, (uint32_t)c->muon_adamw_1d);
    gopt__put_f32(w, c->adamw_lr_ratio);
    gopt__put_f32(w, c->adamw_eps);
    gopt__put_f32(w, c->adamw_weight_decay);
}

static void get_cfg(gopt__rcur *r, gopt_optim_config *c) {
    c->ns_steps = (int)gopt__get_u32(r);
    for (int i = 0; i < 3; i++) c->ns_coefficients[i] = gopt__get_f32(r);
    c->adjust_lr_fn = (gopt_muon_adjust_lr)gopt__get_u32(r);
    c->muon_adamw_1d = (int)gopt__get_u32(r);
    c->adamw_lr_ratio = gopt__get_f32(r);
    c->adamw_eps = gopt__get_f32(r);
    c->adamw_weight_decay = gopt__get_f32(r);
}

const gopt__optim_algo *gopt__optim_muon(void) {
    static const gopt__optim_algo algo = {
        .name = "muon",
        .has_eps = 1,
        .has_betas = 1, /* the AdamW fallback's */
        .momentum_field = GOPT__MOMENTUM_MOMENTUM,
        .state_names = {"momentum_buffer", "exp_avg_sq", "max_exp_avg_sq (AdamW's amsgrad, not available inside muon)"},
        .defaults = defaults,
        .validate = validate,
        .state_slots = state_slots,
        .create = create,
        .destroy = destroy,
        .scalars_size = sizeof(muon_scalars),
        .step_scalars = step_scalars,
        .pass = pass,
        .group_algos = 1u << GOPT_ALGO_ADAMW,
        .check_group = check_group,
        .cfg_bytes = CFG_BYTES,
        .put_cfg = put_cfg,
        .get_cfg = get_cfg,
    };
    return &algo;
}
