/* LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning", Alg. 2), per
 * registered tensor (the paper's "layer"). Not in torch.optim.
 *
 *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;  bc1 = 1-b1^t, bc2 = 1-b2^t;
 *   r = (m/bc1) / (sqrt(v/bc2) + eps) + wd*p (decoupled);
 *   trust = ||p|| / ||r|| (1 when either norm is 0; phi = identity);  p -= lr*trust*r.
 *
 * Defaults lr 1e-3, betas (0.9, 0.999), eps 1e-6, wd 0. State: exp_avg, exp_avg_sq.
 *
 * Not element-wise, so it has its own pass: pass 1 updates the moments and reduces the
 * partial sums of ||p||^2 and ||r||^2 over fixed LAMB_BLOCK-element blocks of each tensor;
 * one thread combines each tensor's blocks in order (double) into its trust ratio; pass 2
 * recomputes r from the stored moments (the same float operations) and updates p. The
 * blocks, not the threads, fix the order of the sums, so the result does not depend on the
 * thread count. */
#include <omp.h>

#include "optim/optim_impl.h"

#define LAMB_BLOCK 4096 /* elements per partial sum of the norms */

typedef struct lamb_scalars {
    float grad_sign; /* -1 when maximize */
    float weight_decay;
    float lr;
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float eps;
    float bc1, bc2;
} lamb_scalars;

typedef struct lamb_block {
    int64_t begin, end;
    int tensor, group;
} lamb_block;

/* opt->algo_data */
typedef struct lamb_tables {
    int ntensors, nblocks;
    lamb_block *blocks; /* a tensor's blocks are consecutive */
    double *block_sums; /* 2 per block: ||p||^2, ||r||^2 partials */
    float *trust;       /* per tensor */
} lamb_tables;

static void defaults(gopt_optim_config *c) { c->eps = 1e-6f; }

static unsigned state_slots(const gopt_optim_config *c) { return 3u; }

static void destroy(gopt_optim *opt) {
    lamb_tables *lt = opt->algo_data;
    if (!lt) return;
    gopt__free(lt->blocks);
    gopt__free(lt->block_sums);
    gopt__free(lt->trust);
    gopt__free(lt);
    opt->algo_data = NULL;
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
    lamb_tables *lt = gopt__calloc(1, sizeof *lt);
    if (!lt) return GOPT_FAIL(GOPT_ENOMEM, "LAMB tables for %d tensors", nt);
    opt->algo_data = lt; /* freed by destroy, also when this fails below */
    lt->ntensors = nt;
    lt->nblocks = (int)nb;
    lt->blocks = gopt__calloc((size_t)nb, sizeof *lt->blocks);
    lt->block_sums = gopt__calloc((size_t)nb * 2, sizeof *lt->block_sums);
    lt->trust = gopt__calloc((size_t)nt, sizeof *lt->trust);
    if (!lt->blocks || !lt->block_sums || !lt->trust)
        return GOPT_FAIL(GOPT_ENOMEM, "LAMB tables for %d tensors", nt);
    int b = 0;
    for (int i = 0; i < nt; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(p, i, &info));
        for (int64_t o = 0; o < info.value.numel; o += LAMB_BLOCK) {
            lamb_block blk = {info.offset + o,
                              info.offset + (o + LAMB_BLOCK < info.value.numel ? o + LAMB_BLOCK : info.value.numel),
                              i, info.group};
            lt->blocks[b++] = blk;
        }
    }
    return GOPT_OK;
}

static void step_scalars(gopt__optim_group *g, int64_t step, void *out) {
    const gopt_optim_config *c = &g->cfg;
    lamb_scalars *k = out;
    double t = (double)step, b1 = c->beta1, b2 = c->beta2;
    k->grad_sign = c->maximize ? -1.0f : 1.0f;
    k->weight_decay = c->weight_decay;
    k->eps = c->eps;
    k->lr = c->lr;
    k->beta1 = (float)b1;
    k->one_minus_beta1 = (float)(1.0 - b1);
    k->beta2 = (float)b2;
    k->one_minus_beta2 = (float)(1.0 - b2);
    k->bc1 = (float)(1.0 - pow(b1, t));
    k->bc2 = (float)(1.0 - pow(b2, t));
}

/* Pass 1: moments, and the block's ||p||^2 and ||r||^2. */
GOPT_INLINE void k_lamb_moments(const lamb_scalars *c, const float *restrict p, const float *restrict g,
                                float *restrict m, float *restrict v, int64_t n, double *pp, double *rr) {
    const float gs = c->grad_sign, wd = c->weight_decay, b1 = c->beta1, b11 = c->one_minus_beta1, b2 = c->beta2,
                b21 = c->one_minus_beta2, eps = c->eps;
    const float bc1 = c->bc1, bc2 = c->bc2;
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

/* Pass 2: p -= lr*trust*r, r recomputed from the stored moments (same float ops). */
GOPT_INLINE void k_lamb_update(const lamb_scalars *c, float *restrict p, const float *restrict m,
                               const float *restrict v, int64_t n, float step) {
    const float wd = c->weight_decay, eps = c->eps, bc1 = c->bc1, bc2 = c->bc2;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float r = (m[i] / bc1) / (sqrtf(v[i] / bc2) + eps) + wd * p[i];
        p[i] = p[i] - step * r;
    }
}

GOPT_CLONES static void lamb_moments_blocks(gopt_optim *opt, int b0, int b1) {
    const lamb_tables *lt = opt->algo_data;
    const float *p = gopt_params_values(opt->params);
    const float *g = gopt__optim_grads(opt);
    float *m = opt->state[0], *v = opt->state[1];
    for (int i = b0; i < b1; i++) {
        const lamb_block *bl = &lt->blocks[i];
        if (gopt_params_is_frozen(opt->params, bl->tensor)) continue; /* moments stay */
        k_lamb_moments(gopt__optim_scalars(opt, bl->group), p + bl->begin, g + bl->begin, m + bl->begin,
                       v + bl->begin, bl->end - bl->begin, &lt->block_sums[2 * i], &lt->block_sums[2 * i + 1]);
    }
}

GOPT_CLONES static void lamb_update_blocks(gopt_optim *opt, int b0, int b1) {
    const lamb_tables *lt = opt->algo_data;
    float *p = gopt_params_values(opt->params);
    const float *m = opt->state[0], *v = opt->state[1];
    for (int i = b0; i < b1; i++) {
        const lamb_block *bl = &lt->blocks[i];
        if (gopt_params_is_frozen(opt->params, bl->tensor)) continue;
        const lamb_scalars *c = gopt__optim_scalars(opt, bl->group);
        float step = (float)((double)c->lr * (double)lt->trust[bl->tensor]);
        k_lamb_update(c, p + bl->begin, m + bl->begin, v + bl->begin, bl->end - bl->begin, step);
    }
}

static void pass(gopt_optim *opt) {
    lamb_tables *lt = opt->algo_data;
    const lamb_block *blocks = lt->blocks;
    const double *sums = lt->block_sums;
    const int nb = lt->nblocks, nt = lt->ntensors;
    const int nthreads = gopt__optim_threads(opt);
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
                lt->trust[k] = (pn > 0 && rn > 0) ? (float)(pn / rn) : 1.0f;
            }
        } /* implicit barrier */
        lamb_update_blocks(opt, b0, b1);
    }
}

const gopt__optim_algo *gopt__optim_lamb(void) {
    static const gopt__optim_algo algo = {
        .name = "lamb",
        .has_eps = 1,
        .has_betas = 1,
        .momentum_field = GOPT__MOMENTUM_BETA1,
        .state_names = {"exp_avg", "exp_avg_sq"},
        .defaults = defaults,
        .state_slots = state_slots,
        .create = build_lamb_blocks,
        .destroy = destroy,
        .scalars_size = sizeof(lamb_scalars),
        .step_scalars = step_scalars,
        .pass = pass,
    };
    return &algo;
}
