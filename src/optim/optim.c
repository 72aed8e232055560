/* Optimizers over the parameter arena (see gradopt/optim.h).
 *
 * A step computes each group's scalar coefficients once (double, then float), then makes
 * one pass over the arena inside one OpenMP region: each thread takes a fixed slice of
 * [0, numel) and walks the group runs that intersect it, calling a kernel specialised (by
 * always-inlined constant flags) for the options that change the element-wise formula, so
 * the inner loops have no branches on hyperparameters and vectorise. Element-wise
 * algorithms give the same bits for every thread count. LAMB reduces per-tensor norms in
 * fixed blocks (see gopt_algo), so it does not depend on the thread count either. */
#include <omp.h>
#include <stdio.h>

#include "gradopt/optim.h"
#include "core/common.h"

/* The loops that call sqrtf vectorise only with -fno-math-errno, which CMakeLists.txt sets
 * for this file (GCC ignores it in pragmas and attributes). */
#if defined(__GNUC__) || defined(__clang__)
#  define GOPT_INLINE static inline __attribute__((always_inline))
#else
#  define GOPT_INLINE static inline
#endif

/* x86-64: the kernel drivers are compiled for AVX-512, AVX2 and the baseline, picked at
 * load time (GCC function multiversioning); the baseline build stays portable. Element-wise
 * results are the same in every clone (no FMA contraction in ISO C mode); LAMB's norm
 * partial sums may differ in the last bits between clones, never between thread counts. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#  define GOPT_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#  define GOPT_CLONES
#endif

#define OPT_MAGIC GOPT__MAGIC('O', 'P', 'T', '1')
#define PARALLEL_MIN 65536 /* elements: below this a step runs on one thread */
#define LAMB_BLOCK 4096    /* elements per partial sum of the LAMB norms */

/* State buffers, named per algorithm (bit i set in buf_mask: state[i] allocated). */
enum { S0 = 0, S1 = 1, S2 = 2, NSTATE = 3 };

typedef struct group_state {
    gopt_optim_config cfg; /* resolved; cfg.lr is the current LR */
    float initial_lr;
    float mu_product;      /* NAdam */
    int momentum_ready;    /* SGD: the momentum buffer has been initialised */
} group_state;

/* Per-group coefficients of one step. */
typedef struct coef {
    float gs;               /* grad sign: -1 when maximize */
    float wd;
    float nlr;              /* -lr (or -clr, -step_size) */
    float a1, a2, b1, b2;   /* decay and 1-decay pairs: a1 = beta (or momentum), a2 = 1 - a1 */
    float eps;
    float x1, x2, x3;       /* algorithm specific */
    int wd_on, first, flag; /* variant selectors (hoisted out of the loops) */
} coef;

typedef struct lamb_block {
    int64_t begin, end;
    int tensor, group;
} lamb_block;

struct gopt_optim {
    gopt_algo algo;
    gopt_params *params;
    int64_t numel;
    int ngroups;
    group_state *groups;
    coef *coefs;
    int64_t step;
    float *state[NSTATE];
    unsigned buf_mask;
    /* Lookahead */
    int lookahead_k;
    float lookahead_alpha;
    float *slow;
    int slow_ready;
    /* LAMB */
    int ntensors, nblocks;
    lamb_block *blocks;
    double *block_sums;   /* 2 per block: ||p||^2, ||r||^2 partials */
    float *trust;         /* per tensor */
};

/* ---- names and defaults ------------------------------------------------------------- */

static const char *const algo_names[GOPT_ALGO_COUNT] = {"sgd",   "adagrad", "rmsprop", "adam",
                                                        "adamw", "adadelta", "nadam",  "radam",
                                                        "adamax", "lion",   "lamb"};

const char *gopt_algo_name(gopt_algo algo) {
    return ((int)algo >= 0 && algo < GOPT_ALGO_COUNT) ? algo_names[algo] : NULL;
}

gopt_status gopt_algo_from_name(const char *name, gopt_algo *out) {
    GOPT_CHECK_NULL(name);
    GOPT_CHECK_NULL(out);
    for (int i = 0; i < GOPT_ALGO_COUNT; i++)
        if (strcmp(name, algo_names[i]) == 0) {
            *out = (gopt_algo)i;
            return GOPT_OK;
        }
    return GOPT_FAIL(GOPT_EINVAL, "unknown algo '%s'", name);
}

gopt_optim_config gopt_optim_config_default(gopt_algo algo) {
    gopt_optim_config c;
    memset(&c, 0, sizeof c);
    c.algo = algo;
    c.lr = 1e-3f;
    c.eps = 1e-8f;
    c.alpha = 0.99f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.rho = 0.9f;
    c.momentum_decay = 4e-3f;
    c.lookahead_k = 0;
    c.lookahead_alpha = 0.5f;
    switch (algo) {
    case GOPT_ALGO_SGD: c.lr = 1e-2f; break;
    case GOPT_ALGO_ADAGRAD: c.lr = 1e-2f; c.eps = 1e-10f; break;
    case GOPT_ALGO_RMSPROP: c.lr = 1e-2f; break;
    case GOPT_ALGO_ADAMW: c.weight_decay = 1e-2f; break;
    case GOPT_ALGO_ADADELTA: c.lr = 1.0f; c.eps = 1e-6f; break;
    case GOPT_ALGO_NADAM: c.lr = 2e-3f; break;
    case GOPT_ALGO_ADAMAX: c.lr = 2e-3f; break;
    case GOPT_ALGO_LION: c.lr = 1e-4f; c.beta2 = 0.99f; break;
    case GOPT_ALGO_LAMB: c.eps = 1e-6f; break;
    default: break;
    }
    return c;
}

/* ---- validation ---------------------------------------------------------------------- */

static int has_eps(gopt_algo a) { return a != GOPT_ALGO_SGD && a != GOPT_ALGO_LION; }
static int has_betas(gopt_algo a) {
    return a == GOPT_ALGO_ADAM || a == GOPT_ALGO_ADAMW || a == GOPT_ALGO_NADAM || a == GOPT_ALGO_RADAM ||
           a == GOPT_ALGO_ADAMAX || a == GOPT_ALGO_LION || a == GOPT_ALGO_LAMB;
}

/* `where` is "" or " (group N)". */
static gopt_status validate(const gopt_optim_config *c, const char *where) {
    if ((int)c->algo < 0 || c->algo >= GOPT_ALGO_COUNT)
        return GOPT_FAIL(GOPT_EINVAL, "algo %d is not a gopt_algo%s", (int)c->algo, where);
    const char *an = algo_names[c->algo];
#define REFUSE(cond, field, fmt, val) \
    do { if (cond) return GOPT_FAIL(GOPT_EINVAL, "%s: " field " = %g " fmt "%s", an, (double)(val), where); } while (0)
    REFUSE(!isfinite(c->lr) || c->lr < 0, "lr", "must be finite and >= 0", c->lr);
    REFUSE(!isfinite(c->weight_decay) || c->weight_decay < 0, "weight_decay", "must be finite and >= 0",
           c->weight_decay);
    if (has_eps(c->algo)) REFUSE(!isfinite(c->eps) || c->eps <= 0, "eps", "must be finite and > 0", c->eps);
    if (has_betas(c->algo)) {
        REFUSE(!(c->beta1 >= 0 && c->beta1 < 1), "betas[0]", "is outside [0, 1)", c->beta1);
        REFUSE(!(c->beta2 >= 0 && c->beta2 < 1), "betas[1]", "is outside [0, 1)", c->beta2);
    }
    switch (c->algo) {
    case GOPT_ALGO_SGD:
        REFUSE(!isfinite(c->momentum) || c->momentum < 0, "momentum", "must be finite and >= 0", c->momentum);
        REFUSE(!isfinite(c->dampening) || c->dampening < 0, "dampening", "must be finite and >= 0", c->dampening);
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return GOPT_FAIL(GOPT_EINVAL, "sgd: nesterov requires momentum > 0 and dampening == 0 (momentum %g, dampening %g)%s",
                             (double)c->momentum, (double)c->dampening, where);
        break;
    case GOPT_ALGO_ADAGRAD:
        REFUSE(!isfinite(c->lr_decay) || c->lr_decay < 0, "lr_decay", "must be finite and >= 0", c->lr_decay);
        REFUSE(!isfinite(c->initial_accumulator_value) || c->initial_accumulator_value < 0, "initial_accumulator_value",
               "must be finite and >= 0", c->initial_accumulator_value);
        break;
    case GOPT_ALGO_RMSPROP:
        REFUSE(!isfinite(c->alpha) || c->alpha < 0, "alpha", "must be finite and >= 0", c->alpha);
        REFUSE(!isfinite(c->momentum) || c->momentum < 0, "momentum", "must be finite and >= 0", c->momentum);
        break;
    case GOPT_ALGO_ADADELTA:
        REFUSE(!(c->rho >= 0 && c->rho <= 1), "rho", "is outside [0, 1]", c->rho);
        break;
    case GOPT_ALGO_NADAM:
        REFUSE(!isfinite(c->momentum_decay) || c->momentum_decay < 0, "momentum_decay", "must be finite and >= 0",
               c->momentum_decay);
        break;
    default: break;
    }
    REFUSE(c->lookahead_k < 0, "lookahead_k", "must be >= 0 (0 = off)", c->lookahead_k);
    REFUSE(!(c->lookahead_alpha >= 0 && c->lookahead_alpha <= 1), "lookahead_alpha", "is outside [0, 1]",
           c->lookahead_alpha);
#undef REFUSE
    return GOPT_OK;
}

static void apply_overrides(gopt_optim_config *c, const gopt_group_config *g) {
    if (!isnan(g->lr)) c->lr = g->lr;
    if (!isnan(g->weight_decay)) c->weight_decay = g->weight_decay;
    if (!isnan(g->momentum)) c->momentum = g->momentum;
    if (!isnan(g->beta1)) c->beta1 = g->beta1;
    if (!isnan(g->beta2)) c->beta2 = g->beta2;
    if (!isnan(g->eps)) c->eps = g->eps;
}

/* Which state buffers a group's config needs. */
static unsigned needed_buffers(const gopt_optim_config *c) {
    switch (c->algo) {
    case GOPT_ALGO_SGD: return c->momentum > 0 ? 1u : 0u;
    case GOPT_ALGO_ADAGRAD: return 1u;
    case GOPT_ALGO_RMSPROP: return 1u | (c->momentum > 0 ? 2u : 0u) | (c->centered ? 4u : 0u);
    case GOPT_ALGO_ADAM:
    case GOPT_ALGO_ADAMW: return 3u | (c->amsgrad ? 4u : 0u);
    case GOPT_ALGO_LION: return 1u;
    default: return 3u; /* adadelta, nadam, radam, adamax, lamb */
    }
}

static const char *buffer_name(gopt_algo a, int i) {
    static const char *const rms[3] = {"square_avg", "momentum_buffer", "grad_avg"};
    static const char *const adam[3] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    if (a == GOPT_ALGO_SGD) return "momentum_buffer";
    if (a == GOPT_ALGO_RMSPROP) return rms[i];
    return adam[i];
}

/* ---- lifetime ------------------------------------------------------------------------ */

void gopt_optim_destroy(gopt_optim *opt) {
    if (!opt) return;
    for (int i = 0; i < NSTATE; i++) gopt__aligned_free(opt->state[i]);
    gopt__aligned_free(opt->slow);
    gopt__free(opt->groups);
    gopt__free(opt->coefs);
    gopt__free(opt->blocks);
    gopt__free(opt->block_sums);
    gopt__free(opt->trust);
    gopt__free(opt);
}

static void fill_range(float *x, int64_t begin, int64_t end, float v) {
    for (int64_t i = begin; i < end; i++) x[i] = v;
}

/* Adagrad's accumulator starts at each group's initial_accumulator_value. */
static void init_adagrad_sums(gopt_optim *opt) {
    const gopt_param_run *runs = gopt_params_runs(opt->params);
    int nr = gopt_params_run_count(opt->params);
    for (int r = 0; r < nr; r++)
        fill_range(opt->state[S0], runs[r].begin, runs[r].end,
                   opt->groups[runs[r].group].cfg.initial_accumulator_value);
}

static gopt_status build_lamb_blocks(gopt_optim *opt) {
    gopt_params *p = opt->params;
    int nt = gopt_params_count(p);
    int64_t nb = 0;
    for (int i = 0; i < nt; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(p, i, &info));
        nb += (info.value.numel + LAMB_BLOCK - 1) / LAMB_BLOCK;
    }
    if (nb > INT32_MAX) return GOPT_FAIL(GOPT_EOVERFLOW, "too many LAMB blocks");
    opt->ntensors = nt;
    opt->nblocks = (int)nb;
    opt->blocks = gopt__calloc((size_t)nb, sizeof *opt->blocks);
    opt->block_sums = gopt__calloc((size_t)nb * 2, sizeof *opt->block_sums);
    opt->trust = gopt__calloc((size_t)nt, sizeof *opt->trust);
    if (!opt->blocks || !opt->block_sums || !opt->trust)
        return GOPT_FAIL(GOPT_ENOMEM, "LAMB tables for %d tensors", nt);
    int b = 0;
    for (int i = 0; i < nt; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(p, i, &info));
        for (int64_t o = 0; o < info.value.numel; o += LAMB_BLOCK) {
            lamb_block blk = {info.offset + o, info.offset + (o + LAMB_BLOCK < info.value.numel ? o + LAMB_BLOCK : info.value.numel),
                              i, info.group};
            opt->blocks[b++] = blk;
        }
    }
    return GOPT_OK;
}

gopt_status gopt_optim_create(const gopt_optim_config *cfg, gopt_params *params, gopt_optim **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    GOPT_CHECK_NULL(params);
    GOPT_TRY(validate(cfg, ""));
    if (!gopt_params_finalized(params))
        return GOPT_FAIL(GOPT_ESTATE, "the params arena is not finalized (call gopt_params_finalize first)");
    int ng = gopt_params_group_count(params);
    /* Resolve and check every group before allocating anything. */
    unsigned mask = 0;
    for (int g = 0; g < ng; g++) {
        gopt_group_config gc;
        GOPT_TRY(gopt_params_group_get(params, g, &gc));
        gopt_optim_config c = *cfg;
        apply_overrides(&c, &gc);
        char where[32];
        snprintf(where, sizeof where, " (group %d)", g);
        GOPT_TRY(validate(&c, where));
        mask |= needed_buffers(&c);
    }
    gopt_optim *opt = gopt__calloc(1, sizeof *opt);
    if (!opt) return GOPT_FAIL(GOPT_ENOMEM, "optimizer header");
    opt->algo = cfg->algo;
    opt->params = params;
    opt->numel = gopt_params_numel(params);
    opt->ngroups = ng;
    opt->buf_mask = mask;
    opt->lookahead_k = cfg->lookahead_k;
    opt->lookahead_alpha = cfg->lookahead_alpha;
    opt->groups = gopt__calloc((size_t)ng, sizeof *opt->groups);
    opt->coefs = gopt__calloc((size_t)ng, sizeof *opt->coefs);
    gopt_status s = GOPT_OK;
    if (!opt->groups || !opt->coefs) s = GOPT_FAIL(GOPT_ENOMEM, "%d groups", ng);
    size_t bytes = (size_t)opt->numel * sizeof(float);
    for (int i = 0; i < NSTATE && s == GOPT_OK; i++)
        if (mask & (1u << i)) {
            opt->state[i] = gopt__aligned_alloc(bytes);
            if (!opt->state[i]) s = GOPT_FAIL(GOPT_ENOMEM, "state buffer %s of %lld floats",
                                              buffer_name(cfg->algo, i), (long long)opt->numel);
        }
    if (s == GOPT_OK && opt->lookahead_k > 0) {
        opt->slow = gopt__aligned_alloc(bytes);
        if (!opt->slow) s = GOPT_FAIL(GOPT_ENOMEM, "lookahead slow weights of %lld floats", (long long)opt->numel);
    }
    if (s == GOPT_OK && cfg->algo == GOPT_ALGO_LAMB) s = build_lamb_blocks(opt);
    if (s != GOPT_OK) {
        gopt_optim_destroy(opt);
        return s;
    }
    for (int g = 0; g < ng; g++) {
        gopt_group_config gc;
        gopt_params_group_get(params, g, &gc);
        group_state *gs = &opt->groups[g];
        gs->cfg = *cfg;
        apply_overrides(&gs->cfg, &gc);
        gs->initial_lr = gs->cfg.lr;
        gs->mu_product = 1.0f;
    }
    if (cfg->algo == GOPT_ALGO_ADAGRAD) init_adagrad_sums(opt);
    *out = opt;
    return GOPT_OK;
}

/* ---- kernels --------------------------------------------------------------------------
 * Each works on [0, n) of pointers already offset to its range. Flags are compile-time
 * constants at every call site (see the dispatchers). */

GOPT_INLINE void k_sgd(const coef *c, float *restrict p, const float *restrict g, float *restrict buf, int64_t n,
                       const int wd_on, const int mom, const int first, const int nesterov) {
    const float gs = c->gs, wd = c->wd, nlr = c->nlr, m = c->a1, damp1 = c->a2;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        if (mom) {
            float b = first ? d : m * buf[i] + damp1 * d;
            buf[i] = b;
            d = nesterov ? d + m * b : b;
        }
        p[i] = p[i] + nlr * d;
    }
}

GOPT_INLINE void k_adagrad(const coef *c, float *restrict p, const float *restrict g, float *restrict sum, int64_t n,
                           const int wd_on) {
    const float gs = c->gs, wd = c->wd, nlr = c->nlr, eps = c->eps;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float s = sum[i] + d * d;
        sum[i] = s;
        p[i] = p[i] + nlr * (d / (sqrtf(s) + eps));
    }
}

GOPT_INLINE void k_rmsprop(const coef *c, float *restrict p, const float *restrict g, float *restrict sq,
                           float *restrict buf, float *restrict ga, int64_t n, const int wd_on, const int centered,
                           const int mom) {
    const float gs = c->gs, wd = c->wd, nlr = c->nlr, al = c->a1, al1 = c->a2, eps = c->eps, m = c->b1;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float s = sq[i] * al + al1 * (d * d);
        sq[i] = s;
        float avg;
        if (centered) {
            float a = ga[i] * al + al1 * d;
            ga[i] = a;
            avg = sqrtf(s - a * a) + eps;
        } else {
            avg = sqrtf(s) + eps;
        }
        if (mom) {
            float b = buf[i] * m + d / avg;
            buf[i] = b;
            p[i] = p[i] + nlr * b;
        } else {
            p[i] = p[i] + nlr * (d / avg);
        }
    }
}

/* Adam and AdamW: x1 = 1/sqrt(bc2) is not used; PyTorch divides by sqrt(bc2) (x1). */
GOPT_INLINE void k_adam(const coef *c, float *restrict p, const float *restrict g, float *restrict m,
                        float *restrict v, float *restrict vmax, int64_t n, const int wd_on, const int decoupled,
                        const int amsgrad) {
    const float gs = c->gs, wd = c->wd, nstep = c->nlr, b1 = c->a1, b11 = c->a2, b2 = c->b1, b21 = c->b2;
    const float eps = c->eps, bc2s = c->x1, decay = c->x2;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float pi = p[i];
        float d = gs * g[i];
        if (decoupled) pi = pi * decay;
        else if (wd_on) d = d + wd * pi;
        float mi = m[i] * b1 + b11 * d;
        float vi = v[i] * b2 + b21 * (d * d);
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            float mx = vmax[i];
            mx = mx > vi ? mx : vi;
            vmax[i] = mx;
            vi = mx;
        }
        float denom = sqrtf(vi) / bc2s + eps;
        p[i] = pi + nstep * (mi / denom);
    }
}

GOPT_INLINE void k_adadelta(const coef *c, float *restrict p, const float *restrict g, float *restrict sq,
                            float *restrict acc, int64_t n, const int wd_on) {
    const float gs = c->gs, wd = c->wd, nlr = c->nlr, rho = c->a1, rho1 = c->a2, eps = c->eps;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float s = sq[i] * rho + rho1 * (d * d);
        sq[i] = s;
        float delta = sqrtf(acc[i] + eps) / sqrtf(s + eps) * d;
        acc[i] = acc[i] * rho + rho1 * (delta * delta);
        p[i] = p[i] + nlr * delta;
    }
}

/* NAdam: x1 = bc2, x2 = -lr*(1-mu)/(1-mu_product), x3 = -lr*mu_next/(1-mu_product_next). */
GOPT_INLINE void k_nadam(const coef *c, float *restrict p, const float *restrict g, float *restrict m,
                         float *restrict v, int64_t n, const int wd_on) {
    const float gs = c->gs, wd = c->wd, b1 = c->a1, b11 = c->a2, b2 = c->b1, b21 = c->b2, eps = c->eps;
    const float bc2 = c->x1, cg = c->x2, cm = c->x3;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float mi = m[i] * b1 + b11 * d;
        float vi = v[i] * b2 + b21 * (d * d);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi / bc2) + eps;
        float pi = p[i] + cg * (d / denom);
        p[i] = pi + cm * (mi / denom);
    }
}

/* RAdam: x1 = bc1, x2 = sqrt(bc2), x3 = rect; nlr = -1 * lr kept as lr in a1? see below. */
GOPT_INLINE void k_radam(const coef *c, float *restrict p, const float *restrict g, float *restrict m,
                         float *restrict v, int64_t n, const int wd_on, const int rect) {
    const float gs = c->gs, wd = c->wd, b1 = c->a1, b11 = c->a2, b2 = c->b1, b21 = c->b2, eps = c->eps;
    const float bc1 = c->x1, bc2s = c->x2, r = c->x3, lr = -c->nlr;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float mi = m[i] * b1 + b11 * d;
        float vi = v[i] * b2 + b21 * (d * d);
        m[i] = mi;
        v[i] = vi;
        float bcm = mi / bc1;
        if (rect) {
            float adaptive = bc2s / (sqrtf(vi) + eps);
            p[i] = p[i] - ((bcm * lr) * adaptive) * r;
        } else {
            p[i] = p[i] - bcm * lr;
        }
    }
}

GOPT_INLINE void k_adamax(const coef *c, float *restrict p, const float *restrict g, float *restrict m,
                          float *restrict u, int64_t n, const int wd_on) {
    const float gs = c->gs, wd = c->wd, nclr = c->nlr, b1 = c->a1, b11 = c->a2, b2 = c->b1, eps = c->eps;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        if (wd_on) d = d + wd * p[i];
        float mi = m[i] * b1 + b11 * d;
        m[i] = mi;
        float a = u[i] * b2;
        float b = fabsf(d) + eps;
        float ui = a > b ? a : b;
        u[i] = ui;
        p[i] = p[i] + nclr * (mi / ui);
    }
}

GOPT_INLINE void k_lion(const coef *c, float *restrict p, const float *restrict g, float *restrict m, int64_t n,
                        const int wd_on) {
    const float gs = c->gs, wd = c->wd, lr = -c->nlr, b1 = c->a1, b11 = c->a2, b2 = c->b1, b21 = c->b2;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        float mi = m[i];
        float u = mi * b1 + b11 * d;
        float sgn = (float)(u > 0.0f) - (float)(u < 0.0f);
        if (wd_on) sgn = sgn + wd * p[i];
        p[i] = p[i] - lr * sgn;
        m[i] = mi * b2 + b21 * d;
    }
}

/* LAMB pass 1: moments, and the block's ||p||^2 and ||r||^2. x1 = bc1, x2 = bc2. */
GOPT_INLINE void k_lamb_moments(const coef *c, const float *restrict p, const float *restrict g, float *restrict m,
                                float *restrict v, int64_t n, double *pp, double *rr) {
    const float gs = c->gs, wd = c->wd, b1 = c->a1, b11 = c->a2, b2 = c->b1, b21 = c->b2, eps = c->eps;
    const float bc1 = c->x1, bc2 = c->x2;
    float sp = 0.0f, sr = 0.0f;
#pragma omp simd reduction(+ : sp, sr)
    for (int64_t i = 0; i < n; i++) {
        float d = gs * g[i];
        float mi = m[i] * b1 + b11 * d;
        float vi = v[i] * b2 + b21 * (d * d);
        m[i] = mi;
        v[i] = vi;
        float r = (mi / bc1) / (sqrtf(vi / bc2) + eps) + wd * p[i];
        sp += p[i] * p[i];
        sr += r * r;
    }
    *pp = sp;
    *rr = sr;
}

/* LAMB pass 2: p -= lr*trust*r, r recomputed from the stored moments (same float ops). */
GOPT_INLINE void k_lamb_update(const coef *c, float *restrict p, const float *restrict m, const float *restrict v,
                               int64_t n, float step) {
    const float wd = c->wd, eps = c->eps, bc1 = c->x1, bc2 = c->x2;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float r = (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps) + wd * p[i];
        p[i] = p[i] - step * r;
    }
}

/* ---- per-step coefficients ------------------------------------------------------------ */

static void make_coef(gopt_optim *opt, int gi, int64_t step) {
    group_state *gs = &opt->groups[gi];
    const gopt_optim_config *c = &gs->cfg;
    coef *k = &opt->coefs[gi];
    memset(k, 0, sizeof *k);
    double t = (double)step, lr = c->lr, b1 = c->beta1, b2 = c->beta2;
    k->gs = c->maximize ? -1.0f : 1.0f;
    k->wd = c->weight_decay;
    k->wd_on = c->weight_decay != 0.0f;
    k->eps = c->eps;
    k->nlr = (float)-lr;
    k->a1 = (float)b1;
    k->a2 = (float)(1.0 - b1);
    k->b1 = (float)b2;
    k->b2 = (float)(1.0 - b2);
    switch (c->algo) {
    case GOPT_ALGO_SGD:
        k->a1 = c->momentum;
        k->a2 = (float)(1.0 - (double)c->dampening);
        k->flag = c->momentum != 0.0f;
        k->first = !gs->momentum_ready;
        break;
    case GOPT_ALGO_ADAGRAD:
        k->nlr = (float)-(lr / (1.0 + (t - 1.0) * (double)c->lr_decay));
        break;
    case GOPT_ALGO_RMSPROP:
        k->a1 = c->alpha;
        k->a2 = (float)(1.0 - (double)c->alpha);
        k->b1 = c->momentum;
        break;
    case GOPT_ALGO_ADAM:
    case GOPT_ALGO_ADAMW: {
        double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
        k->nlr = (float)-(lr / bc1);
        k->x1 = (float)sqrt(bc2);
        k->x2 = (float)(1.0 - lr * (double)c->weight_decay);
        break;
    }
    case GOPT_ALGO_ADADELTA:
        k->a1 = c->rho;
        k->a2 = (float)(1.0 - (double)c->rho);
        break;
    case GOPT_ALGO_NADAM: {
        double md = c->momentum_decay;
        double mu = b1 * (1.0 - 0.5 * pow(0.96, t * md));
        double mu_next = b1 * (1.0 - 0.5 * pow(0.96, (t + 1.0) * md));
        /* PyTorch keeps mu_product as a float32 tensor. */
        gs->mu_product = gs->mu_product * (float)mu;
        float mpn = gs->mu_product * (float)mu * (float)mu_next;
        k->x1 = (float)(1.0 - pow(b2, t));
        k->x2 = (float)(-lr * (1.0 - mu) / (1.0 - (double)gs->mu_product));
        k->x3 = (float)(-lr * mu_next / (1.0 - (double)mpn));
        break;
    }
    case GOPT_ALGO_RADAM: {
        double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
        double rho_inf = 2.0 / (1.0 - b2) - 1.0;
        double rho_t = rho_inf - 2.0 * t * pow(b2, t) / bc2;
        k->x1 = (float)bc1;
        k->x2 = (float)sqrt(bc2);
        k->flag = rho_t > 5.0;
        if (k->flag)
            k->x3 = (float)sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t));
        break;
    }
    case GOPT_ALGO_ADAMAX:
        k->nlr = (float)-(lr / (1.0 - pow(b1, t)));
        break;
    case GOPT_ALGO_LAMB:
        k->x1 = (float)(1.0 - pow(b1, t));
        k->x2 = (float)(1.0 - pow(b2, t));
        break;
    default: break;
    }
}

/* Run the algorithm's kernel over [b, e) of group gi. */
GOPT_CLONES static void run_range(gopt_optim *opt, int gi, int64_t b, int64_t e) {
    const coef *c = &opt->coefs[gi];
    const gopt_optim_config *cfg = &opt->groups[gi].cfg;
    float *p = gopt_params_values(opt->params) + b;
    const float *g = gopt_params_grads(opt->params) + b;
    float *s0 = opt->state[S0] ? opt->state[S0] + b : NULL;
    float *s1 = opt->state[S1] ? opt->state[S1] + b : NULL;
    float *s2 = opt->state[S2] ? opt->state[S2] + b : NULL;
    int64_t n = e - b;
    const int w = c->wd_on;
    switch (opt->algo) {
    case GOPT_ALGO_SGD: {
        int sel = w | (c->flag ? 2 : 0) | (c->first ? 4 : 0) | (cfg->nesterov ? 8 : 0);
        switch (sel) {
#define SGD_CASE(a, mo, f, ne) \
    case a | mo << 1 | f << 2 | ne << 3: k_sgd(c, p, g, s0, n, a, mo, f, ne); break;
            SGD_CASE(0, 0, 0, 0) SGD_CASE(1, 0, 0, 0) SGD_CASE(0, 0, 1, 0) SGD_CASE(1, 0, 1, 0)
            SGD_CASE(0, 1, 0, 0) SGD_CASE(1, 1, 0, 0) SGD_CASE(0, 1, 1, 0) SGD_CASE(1, 1, 1, 0)
            SGD_CASE(0, 1, 0, 1) SGD_CASE(1, 1, 0, 1) SGD_CASE(0, 1, 1, 1) SGD_CASE(1, 1, 1, 1)
#undef SGD_CASE
        default: break; /* nesterov without momentum is refused at create */
        }
        break;
    }
    case GOPT_ALGO_ADAGRAD:
        if (w) k_adagrad(c, p, g, s0, n, 1);
        else k_adagrad(c, p, g, s0, n, 0);
        break;
    case GOPT_ALGO_RMSPROP: {
        int sel = w | (cfg->centered ? 2 : 0) | (cfg->momentum > 0 ? 4 : 0);
        switch (sel) {
#define RMS_CASE(a, ce, mo) \
    case a | ce << 1 | mo << 2: k_rmsprop(c, p, g, s0, s1, s2, n, a, ce, mo); break;
            RMS_CASE(0, 0, 0) RMS_CASE(1, 0, 0) RMS_CASE(0, 1, 0) RMS_CASE(1, 1, 0)
            RMS_CASE(0, 0, 1) RMS_CASE(1, 0, 1) RMS_CASE(0, 1, 1) RMS_CASE(1, 1, 1)
#undef RMS_CASE
        default: break;
        }
        break;
    }
    case GOPT_ALGO_ADAM:
    case GOPT_ALGO_ADAMW: {
        int dec = opt->algo == GOPT_ALGO_ADAMW;
        int sel = (dec ? 2 : w) | (cfg->amsgrad ? 4 : 0);
        switch (sel) {
        case 0: k_adam(c, p, g, s0, s1, s2, n, 0, 0, 0); break;
        case 1: k_adam(c, p, g, s0, s1, s2, n, 1, 0, 0); break;
        case 2: k_adam(c, p, g, s0, s1, s2, n, 0, 1, 0); break;
        case 4: k_adam(c, p, g, s0, s1, s2, n, 0, 0, 1); break;
        case 5: k_adam(c, p, g, s0, s1, s2, n, 1, 0, 1); break;
        case 6: k_adam(c, p, g, s0, s1, s2, n, 0, 1, 1); break;
        default: break;
        }
        break;
    }
    case GOPT_ALGO_ADADELTA:
        if (w) k_adadelta(c, p, g, s0, s1, n, 1);
        else k_adadelta(c, p, g, s0, s1, n, 0);
        break;
    case GOPT_ALGO_NADAM:
        if (w) k_nadam(c, p, g, s0, s1, n, 1);
        else k_nadam(c, p, g, s0, s1, n, 0);
        break;
    case GOPT_ALGO_RADAM:
        switch (w | (c->flag ? 2 : 0)) {
        case 0: k_radam(c, p, g, s0, s1, n, 0, 0); break;
        case 1: k_radam(c, p, g, s0, s1, n, 1, 0); break;
        case 2: k_radam(c, p, g, s0, s1, n, 0, 1); break;
        default: k_radam(c, p, g, s0, s1, n, 1, 1); break;
        }
        break;
    case GOPT_ALGO_ADAMAX:
        if (w) k_adamax(c, p, g, s0, s1, n, 1);
        else k_adamax(c, p, g, s0, s1, n, 0);
        break;
    case GOPT_ALGO_LION:
        if (w) k_lion(c, p, g, s0, n, 1);
        else k_lion(c, p, g, s0, n, 0);
        break;
    default: break; /* LAMB has its own driver */
    }
}

/* This thread's slice of [0, numel): 16-element aligned boundaries. */
static void thread_slice(int64_t numel, int t, int nt, int64_t *lo, int64_t *hi) {
    int64_t chunks = (numel + 15) / 16;
    int64_t a = chunks * t / nt * 16, b = chunks * (t + 1) / nt * 16;
    *lo = a < numel ? a : numel;
    *hi = b < numel ? b : numel;
}

static void elementwise_pass(gopt_optim *opt) {
    const gopt_param_run *runs = gopt_params_runs(opt->params);
    const int nr = gopt_params_run_count(opt->params);
    const int64_t numel = opt->numel;
    const int nthreads = numel > PARALLEL_MIN ? gopt_get_threads() : 1;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int64_t lo, hi;
        thread_slice(numel, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int r = 0; r < nr && lo < hi; r++) {
            int64_t b = runs[r].begin > lo ? runs[r].begin : lo;
            int64_t e = runs[r].end < hi ? runs[r].end : hi;
            if (b < e) run_range(opt, runs[r].group, b, e);
        }
    }
}

GOPT_CLONES static void lamb_moments_blocks(gopt_optim *opt, int b0, int b1) {
    const float *p = gopt_params_values(opt->params);
    const float *g = gopt_params_grads(opt->params);
    float *m = opt->state[S0], *v = opt->state[S1];
    for (int i = b0; i < b1; i++) {
        const lamb_block *bl = &opt->blocks[i];
        k_lamb_moments(&opt->coefs[bl->group], p + bl->begin, g + bl->begin, m + bl->begin, v + bl->begin,
                       bl->end - bl->begin, &opt->block_sums[2 * i], &opt->block_sums[2 * i + 1]);
    }
}

GOPT_CLONES static void lamb_update_blocks(gopt_optim *opt, int b0, int b1) {
    float *p = gopt_params_values(opt->params);
    const float *m = opt->state[S0], *v = opt->state[S1];
    for (int i = b0; i < b1; i++) {
        const lamb_block *bl = &opt->blocks[i];
        const coef *c = &opt->coefs[bl->group];
        float step = (float)((double)-c->nlr * (double)opt->trust[bl->tensor]);
        k_lamb_update(c, p + bl->begin, m + bl->begin, v + bl->begin, bl->end - bl->begin, step);
    }
}

static void lamb_pass(gopt_optim *opt) {
    const lamb_block *blocks = opt->blocks;
    const double *sums = opt->block_sums;
    const int nb = opt->nblocks, nt = opt->ntensors;
    const int nthreads = opt->numel > PARALLEL_MIN ? gopt_get_threads() : 1;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int b0 = (int)((int64_t)nb * t / T), b1 = (int)((int64_t)nb * (t + 1) / T);
        lamb_moments_blocks(opt, b0, b1);
#pragma omp barrier
#pragma omp single
        {
            /* Blocks of a tensor are consecutive: combine them in order. */
            int i = 0;
            for (int k = 0; k < nt; k++) {
                double pp = 0, rr = 0;
                while (i < nb && blocks[i].tensor == k) {
                    pp += sums[2 * i];
                    rr += sums[2 * i + 1];
                    i++;
                }
                double pn = sqrt(pp), rn = sqrt(rr);
                opt->trust[k] = (pn > 0 && rn > 0) ? (float)(pn / rn) : 1.0f;
            }
        } /* implicit barrier */
        lamb_update_blocks(opt, b0, b1);
    }
}

/* slow += alpha*(p - slow); p = slow (Zhang et al. 2019, Alg. 1). */
static void lookahead_sync(gopt_optim *opt, int init) {
    float *restrict p = gopt_params_values(opt->params);
    float *restrict slow = opt->slow;
    const float a = opt->lookahead_alpha;
    const int64_t numel = opt->numel;
    const int nthreads = numel > PARALLEL_MIN ? gopt_get_threads() : 1;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int64_t lo, hi;
        thread_slice(numel, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        if (init) {
            if (hi > lo) memcpy(slow + lo, p + lo, (size_t)(hi - lo) * sizeof(float));
        } else {
#pragma omp simd
            for (int64_t i = lo; i < hi; i++) {
                float s = slow[i] + a * (p[i] - slow[i]);
                slow[i] = s;
                p[i] = s;
            }
        }
    }
}

gopt_status gopt_optim_step(gopt_optim *opt) {
    GOPT_CHECK_NULL(opt);
    if (opt->lookahead_k > 0 && !opt->slow_ready) {
        lookahead_sync(opt, 1);
        opt->slow_ready = 1;
    }
    int64_t step = opt->step + 1;
    for (int gi = 0; gi < opt->ngroups; gi++) make_coef(opt, gi, step);
    if (opt->algo == GOPT_ALGO_LAMB) lamb_pass(opt);
    else elementwise_pass(opt);
    opt->step = step;
    if (opt->algo == GOPT_ALGO_SGD)
        for (int gi = 0; gi < opt->ngroups; gi++)
            if (opt->groups[gi].cfg.momentum != 0.0f) opt->groups[gi].momentum_ready = 1;
    if (opt->lookahead_k > 0 && step % opt->lookahead_k == 0) lookahead_sync(opt, 0);
    return GOPT_OK;
}

void gopt_optim_zero_grad(gopt_optim *opt) {
    if (opt) gopt_params_zero_grad(opt->params);
}

int64_t gopt_optim_step_count(const gopt_optim *opt) { return opt ? opt->step : 0; }
int gopt_optim_group_count(const gopt_optim *opt) { return opt ? opt->ngroups : 0; }
gopt_params *gopt_optim_params(gopt_optim *opt) { return opt ? opt->params : NULL; }

/* ---- group hyperparameters ----------------------------------------------------------- */

static int bad_group(const gopt_optim *opt, int group) { return !opt || group < 0 || group >= opt->ngroups; }

float gopt_optim_get_lr(const gopt_optim *opt, int group) {
    return bad_group(opt, group) ? NAN : opt->groups[group].cfg.lr;
}

float gopt_optim_initial_lr(const gopt_optim *opt, int group) {
    return bad_group(opt, group) ? NAN : opt->groups[group].initial_lr;
}

gopt_status gopt_optim_set_lr(gopt_optim *opt, int group, float lr) {
    GOPT_CHECK_NULL(opt);
    if (bad_group(opt, group)) return GOPT_FAIL(GOPT_ERANGE, "group %d is outside 0..%d", group, opt->ngroups - 1);
    if (!isfinite(lr) || lr < 0) return GOPT_FAIL(GOPT_EINVAL, "lr = %g must be finite and >= 0 (group %d)", (double)lr, group);
    opt->groups[group].cfg.lr = lr;
    return GOPT_OK;
}

static int momentum_kind(gopt_algo a) {
    if (a == GOPT_ALGO_SGD || a == GOPT_ALGO_RMSPROP) return 1;
    return has_betas(a) ? 2 : 0;
}

float gopt_optim_get_momentum(const gopt_optim *opt, int group) {
    if (bad_group(opt, group)) return NAN;
    switch (momentum_kind(opt->algo)) {
    case 1: return opt->groups[group].cfg.momentum;
    case 2: return opt->groups[group].cfg.beta1;
    default: return NAN;
    }
}

gopt_status gopt_optim_set_momentum(gopt_optim *opt, int group, float momentum) {
    GOPT_CHECK_NULL(opt);
    if (bad_group(opt, group)) return GOPT_FAIL(GOPT_ERANGE, "group %d is outside 0..%d", group, opt->ngroups - 1);
    int kind = momentum_kind(opt->algo);
    if (!kind) return GOPT_FAIL(GOPT_EINVAL, "%s has no momentum or beta1", algo_names[opt->algo]);
    if (!(momentum >= 0 && momentum < 1))
        return GOPT_FAIL(GOPT_EINVAL, "momentum = %g is outside [0, 1) (group %d)", (double)momentum, group);
    gopt_optim_config c = opt->groups[group].cfg;
    if (kind == 2) c.beta1 = momentum;
    else c.momentum = momentum;
    if (kind == 1) {
        if (c.nesterov && momentum <= 0)
            return GOPT_FAIL(GOPT_EINVAL, "momentum = 0 with nesterov (group %d)", group);
        if ((needed_buffers(&c) & ~opt->buf_mask) != 0)
            return GOPT_FAIL(GOPT_ESTATE, "momentum > 0 needs a momentum buffer: create with momentum > 0 (group %d)", group);
    }
    opt->groups[group].cfg = c;
    return GOPT_OK;
}

gopt_status gopt_optim_group_config(const gopt_optim *opt, int group, gopt_optim_config *out) {
    GOPT_CHECK_NULL(opt);
    GOPT_CHECK_NULL(out);
    if (bad_group(opt, group)) return GOPT_FAIL(GOPT_ERANGE, "group %d is outside 0..%d", group, opt->ngroups - 1);
    *out = opt->groups[group].cfg;
    out->lookahead_k = opt->lookahead_k;
    out->lookahead_alpha = opt->lookahead_alpha;
    return GOPT_OK;
}

gopt_status gopt_optim_set_group_config(gopt_optim *opt, int group, const gopt_optim_config *cfg) {
    GOPT_CHECK_NULL(opt);
    GOPT_CHECK_NULL(cfg);
    if (bad_group(opt, group)) return GOPT_FAIL(GOPT_ERANGE, "group %d is outside 0..%d", group, opt->ngroups - 1);
    if (cfg->algo != opt->algo)
        return GOPT_FAIL(GOPT_EINVAL, "algo %d differs from the optimizer's (%s)", (int)cfg->algo, algo_names[opt->algo]);
    gopt_optim_config c = *cfg;
    c.lookahead_k = opt->lookahead_k;
    c.lookahead_alpha = opt->lookahead_alpha;
    char where[32];
    snprintf(where, sizeof where, " (group %d)", group);
    GOPT_TRY(validate(&c, where));
    unsigned missing = needed_buffers(&c) & ~opt->buf_mask;
    for (int i = 0; i < NSTATE; i++)
        if (missing & (1u << i))
            return GOPT_FAIL(GOPT_ESTATE, "group %d needs state buffer %s, which was not allocated at create", group,
                             buffer_name(opt->algo, i));
    opt->groups[group].cfg = c;
    if (opt->step == 0) {
        opt->groups[group].initial_lr = c.lr;
        if (opt->algo == GOPT_ALGO_ADAGRAD) init_adagrad_sums(opt);
    }
    return GOPT_OK;
}

/* ---- state ---------------------------------------------------------------------------- */

#define CFG_BYTES (4 * 6 + 4 * 13)

static void put_cfg(gopt__wcur *w, const gopt_optim_config *c) {
    gopt__put_u32(w, (uint32_t)c->algo);
    gopt__put_u32(w, (uint32_t)c->maximize);
    gopt__put_u32(w, (uint32_t)c->nesterov);
    gopt__put_u32(w, (uint32_t)c->centered);
    gopt__put_u32(w, (uint32_t)c->amsgrad);
    gopt__put_u32(w, (uint32_t)c->lookahead_k);
    const float f[13] = {c->lr, c->weight_decay, c->momentum, c->dampening, c->lr_decay, c->initial_accumulator_value,
                         c->eps, c->alpha, c->beta1, c->beta2, c->rho, c->momentum_decay, c->lookahead_alpha};
    for (int i = 0; i < 13; i++) gopt__put_f32(w, f[i]);
}

static void get_cfg(gopt__rcur *r, gopt_optim_config *c) {
    c->algo = (gopt_algo)gopt__get_u32(r);
    c->maximize = (int)gopt__get_u32(r);
    c->nesterov = (int)gopt__get_u32(r);
    c->centered = (int)gopt__get_u32(r);
    c->amsgrad = (int)gopt__get_u32(r);
    c->lookahead_k = (int)gopt__get_u32(r);
    float *f[13] = {&c->lr, &c->weight_decay, &c->momentum, &c->dampening, &c->lr_decay, &c->initial_accumulator_value,
                    &c->eps, &c->alpha, &c->beta1, &c->beta2, &c->rho, &c->momentum_decay, &c->lookahead_alpha};
    for (int i = 0; i < 13; i++) *f[i] = gopt__get_f32(r);
}

#define HEADER_BYTES (4 + 4 + 8 + 4 + 8 + 4 + 4 + 4 + 4)
#define GROUP_BYTES (CFG_BYTES + 4 + 4 + 4)

static int nbuffers(const gopt_optim *opt) {
    int n = 0;
    for (int i = 0; i < NSTATE; i++) n += (opt->buf_mask >> i) & 1u;
    return n + (opt->slow != NULL);
}

size_t gopt_optim_state_size(const gopt_optim *opt) {
    if (!opt) return 0;
    return HEADER_BYTES + (size_t)opt->ngroups * GROUP_BYTES + (size_t)nbuffers(opt) * (size_t)opt->numel * sizeof(float);
}

gopt_status gopt_optim_state_save(const gopt_optim *opt, void *buf, size_t size) {
    GOPT_CHECK_NULL(opt);
    GOPT_CHECK_NULL(buf);
    size_t need = gopt_optim_state_size(opt);
    if (size < need) return GOPT_FAIL(GOPT_EINVAL, "buffer of %zu bytes, need %zu", size, need);
    gopt__wcur w = gopt__wcur_make(buf, size);
    gopt__put_u32(&w, OPT_MAGIC);
    gopt__put_u32(&w, (uint32_t)opt->algo);
    gopt__put_i64(&w, opt->numel);
    gopt__put_u32(&w, (uint32_t)opt->ngroups);
    gopt__put_i64(&w, opt->step);
    gopt__put_u32(&w, opt->buf_mask);
    gopt__put_u32(&w, (uint32_t)opt->lookahead_k);
    gopt__put_f32(&w, opt->lookahead_alpha);
    gopt__put_u32(&w, (uint32_t)opt->slow_ready);
    for (int g = 0; g < opt->ngroups; g++) {
        const group_state *gs = &opt->groups[g];
        put_cfg(&w, &gs->cfg);
        gopt__put_f32(&w, gs->initial_lr);
        gopt__put_f32(&w, gs->mu_product);
        gopt__put_u32(&w, (uint32_t)gs->momentum_ready);
    }
    size_t bytes = (size_t)opt->numel * sizeof(float);
    for (int i = 0; i < NSTATE; i++)
        if (opt->buf_mask & (1u << i)) gopt__put(&w, opt->state[i], bytes);
    if (opt->slow) gopt__put(&w, opt->slow, bytes);
    return w.ok ? GOPT_OK : GOPT_FAIL(GOPT_EINVAL, "buffer too small");
}

gopt_status gopt_optim_state_load(gopt_optim *opt, const void *buf, size_t size) {
    GOPT_CHECK_NULL(opt);
    GOPT_CHECK_NULL(buf);
    gopt__rcur r = gopt__rcur_make(buf, size);
    if (size < HEADER_BYTES) return GOPT_FAIL(GOPT_EFORMAT, "optimizer state of %zu bytes is truncated", size);
    if (gopt__get_u32(&r) != OPT_MAGIC) return GOPT_FAIL(GOPT_EFORMAT, "optimizer state: bad magic");
    uint32_t algo = gopt__get_u32(&r);
    if (algo != (uint32_t)opt->algo)
        return GOPT_FAIL(GOPT_EFORMAT, "optimizer state is for algo %s, this optimizer is %s",
                         algo < GOPT_ALGO_COUNT ? algo_names[algo] : "?", algo_names[opt->algo]);
    int64_t numel = gopt__get_i64(&r);
    if (numel != opt->numel)
        return GOPT_FAIL(GOPT_EFORMAT, "optimizer state holds %lld parameters, the arena has %lld", (long long)numel,
                         (long long)opt->numel);
    uint32_t ng = gopt__get_u32(&r);
    if (ng != (uint32_t)opt->ngroups)
        return GOPT_FAIL(GOPT_EFORMAT, "optimizer state holds %u groups, the optimizer has %d", ng, opt->ngroups);
    int64_t step = gopt__get_i64(&r);
    uint32_t mask = gopt__get_u32(&r);
    if (mask != opt->buf_mask)
        return GOPT_FAIL(GOPT_EFORMAT, "optimizer state buffers 0x%x differ from this optimizer's 0x%x (momentum, "
                         "centered or amsgrad differ)", mask, opt->buf_mask);
    int k = (int)gopt__get_u32(&r);
    float la = gopt__get_f32(&r);
    int slow_ready = (int)gopt__get_u32(&r);
    if (k != opt->lookahead_k || (k > 0 && la != opt->lookahead_alpha))
        return GOPT_FAIL(GOPT_EFORMAT, "optimizer state lookahead_k %d / alpha %g differ from this optimizer's %d / %g", k,
                         (double)la, opt->lookahead_k, (double)opt->lookahead_alpha);
    if (step < 0) return GOPT_FAIL(GOPT_EFORMAT, "optimizer state: step %lld < 0", (long long)step);
    if (size != gopt_optim_state_size(opt))
        return GOPT_FAIL(GOPT_EFORMAT, "optimizer state is %zu bytes, this optimizer needs %zu", size,
                         gopt_optim_state_size(opt));
    /* Check every group before changing anything. */
    gopt__rcur r2 = r;
    for (int g = 0; g < opt->ngroups; g++) {
        gopt_optim_config c;
        get_cfg(&r2, &c);
        gopt__get_f32(&r2);
        gopt__get_f32(&r2);
        gopt__get_u32(&r2);
        char where[48];
        snprintf(where, sizeof where, " (group %d of the state)", g);
        if (c.algo != opt->algo || validate(&c, where) != GOPT_OK)
            return GOPT_FAIL(GOPT_EFORMAT, "optimizer state: group %d has invalid hyperparameters (%s)", g,
                             gopt_last_error());
        if (needed_buffers(&c) & ~opt->buf_mask)
            return GOPT_FAIL(GOPT_EFORMAT, "optimizer state: group %d needs buffers this optimizer lacks", g);
    }
    for (int g = 0; g < opt->ngroups; g++) {
        group_state *gs = &opt->groups[g];
        get_cfg(&r, &gs->cfg);
        gs->initial_lr = gopt__get_f32(&r);
        gs->mu_product = gopt__get_f32(&r);
        gs->momentum_ready = (int)gopt__get_u32(&r);
    }
    size_t bytes = (size_t)opt->numel * sizeof(float);
    for (int i = 0; i < NSTATE; i++)
        if (opt->buf_mask & (1u << i)) gopt__get(&r, opt->state[i], bytes);
    if (opt->slow) gopt__get(&r, opt->slow, bytes);
    opt->step = step;
    opt->slow_ready = slow_ready;
    return GOPT_OK;
}
