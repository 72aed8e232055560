/* Optimizers over the parameter arena (see gradopt/optim.h): the parts every algorithm
 * shares. Each algorithm's formula, config checks, per-step scalars and kernel are in its
 * own file (sgd.c, adam.c, ...), reached through the table below (see optim_impl.h).
 *
 * A step computes each group's scalars once (double, then float; the algorithm's
 * step_scalars), then makes one pass over the arena inside one OpenMP region: each thread
 * takes a fixed slice of [0, numel) and walks the group runs that intersect it, calling
 * the algorithm's run on each piece. run picks a kernel specialised (by always-inlined
 * constant flags) for the options that change the element-wise formula, so the inner
 * loops have no branches on hyperparameters and vectorise. Element-wise algorithms give
 * the same bits for every thread count. LAMB, which is not element-wise, has its own pass
 * (lamb.c) and does not depend on the thread count either. */
#include <omp.h>
#include <stdio.h>

#include "optim/dist_hooks.h"
#include "optim/optim_impl.h"

#define OPT_MAGIC GOPT__MAGIC('O', 'P', 'T', '1')
#define NSTATE GOPT__OPTIM_NSTATE

/* ---- the table of algorithms ------------------------------------------------------------ */

static const gopt__optim_algo_fn algos[GOPT_ALGO_COUNT] = {
    [GOPT_ALGO_SGD] = gopt__optim_sgd,           [GOPT_ALGO_ADAGRAD] = gopt__optim_adagrad,
    [GOPT_ALGO_RMSPROP] = gopt__optim_rmsprop,   [GOPT_ALGO_ADAM] = gopt__optim_adam,
    [GOPT_ALGO_ADAMW] = gopt__optim_adamw,       [GOPT_ALGO_ADADELTA] = gopt__optim_adadelta,
    [GOPT_ALGO_NADAM] = gopt__optim_nadam,       [GOPT_ALGO_RADAM] = gopt__optim_radam,
    [GOPT_ALGO_ADAMAX] = gopt__optim_adamax,     [GOPT_ALGO_LION] = gopt__optim_lion,
    [GOPT_ALGO_LAMB] = gopt__optim_lamb,
    [GOPT_ALGO_ADAMW_SCHEDULEFREE] = gopt__optim_adamw_schedulefree,
    [GOPT_ALGO_SGD_SCHEDULEFREE] = gopt__optim_sgd_schedulefree,
    [GOPT_ALGO_MUON] = gopt__optim_muon,         [GOPT_ALGO_ADAFACTOR] = gopt__optim_adafactor,
};

/* The entry of algo; NULL when algo is not a gopt_algo. */
static const gopt__optim_algo *algo_of(gopt_algo algo) {
    return ((int)algo >= 0 && algo < GOPT_ALGO_COUNT) ? algos[algo]() : NULL;
}

/* ---- names and defaults ------------------------------------------------------------- */

const char *gopt_algo_name(gopt_algo algo) {
    const gopt__optim_algo *a = algo_of(algo);
    return a ? a->name : NULL;
}

gopt_status gopt_algo_from_name(const char *name, gopt_algo *out) {
    GOPT_CHECK_NULL(name);
    GOPT_CHECK_NULL(out);
    for (int i = 0; i < GOPT_ALGO_COUNT; i++)
        if (strcmp(name, algos[i]()->name) == 0) {
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
    const gopt__optim_algo *a = algo_of(algo);
    if (a && a->defaults) a->defaults(&c);
    return c;
}

/* ---- validation ---------------------------------------------------------------------- */

/* The checks every algorithm shares, then the algorithm's own. `where` is "" or
 * " (group N)". */
static gopt_status validate(const gopt_optim_config *c, const char *where) {
    const gopt__optim_algo *a = algo_of(c->algo);
    if (!a) return GOPT_FAIL(GOPT_EINVAL, "algo %d is not a gopt_algo%s", (int)c->algo, where);
    const char *an = a->name;
    GOPT__REFUSE(!isfinite(c->lr) || c->lr < 0, an, "lr", "must be finite and >= 0", c->lr, where);
    GOPT__REFUSE(!isfinite(c->weight_decay) || c->weight_decay < 0, an, "weight_decay", "must be finite and >= 0",
                 c->weight_decay, where);
    if (a->has_eps) GOPT__REFUSE(!isfinite(c->eps) || c->eps <= 0, an, "eps", "must be finite and > 0", c->eps, where);
    if (a->has_betas) {
        GOPT__REFUSE(!(c->beta1 >= 0 && c->beta1 < 1), an, "betas[0]", "is outside [0, 1)", c->beta1, where);
        GOPT__REFUSE(!(c->beta2 >= 0 && c->beta2 < 1), an, "betas[1]", "is outside [0, 1)", c->beta2, where);
    }
    GOPT__REFUSE(!isfinite(c->l1) || c->l1 < 0, an, "l1", "must be finite and >= 0", c->l1, where);
    if (a->validate) GOPT_TRY(a->validate(c, where));
    GOPT__REFUSE(c->lookahead_k < 0, an, "lookahead_k", "must be >= 0 (0 = off)", c->lookahead_k, where);
    GOPT__REFUSE(!(c->lookahead_alpha >= 0 && c->lookahead_alpha <= 1), an, "lookahead_alpha", "is outside [0, 1]",
                 c->lookahead_alpha, where);
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

/* Which state buffers a group's config needs (valid config). */
static unsigned needed_buffers(const gopt_optim_config *c) { return algos[c->algo]()->state_slots(c); }

/* ---- lifetime ------------------------------------------------------------------------ */

void gopt_optim_destroy(gopt_optim *opt) {
    if (!opt) return;
    if (opt->impl && opt->impl->destroy) opt->impl->destroy(opt);
    for (int i = 0; i < NSTATE; i++) gopt__aligned_free(opt->state[i]);
    gopt__aligned_free(opt->slow);
    gopt__aligned_free(opt->l1_grads);
    gopt__free(opt->groups);
    gopt__free(opt->scalars);
    gopt__free(opt);
}

gopt_status gopt_optim_create(const gopt_optim_config *cfg, gopt_params *params, gopt_optim **out) {
    GOPT_RETURN(gopt_optim_create_range(cfg, params, 0, params ? gopt_params_numel(params) : 0, out));
}

gopt_status gopt_optim_create_range(const gopt_optim_config *cfg, gopt_params *params, int64_t begin, int64_t end,
                                    gopt_optim **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    GOPT_CHECK_NULL(params);
    GOPT_TRY(validate(cfg, ""));
    if (!gopt_params_finalized(params))
        return GOPT_FAIL(GOPT_ESTATE, "the params arena is not finalized (call gopt_params_finalize first)");
    const int64_t total = gopt_params_numel(params);
    if (begin < 0 || begin > end || end > total || begin % 16 != 0 || (end % 16 != 0 && end != total))
        return GOPT_FAIL(GOPT_ERANGE, "optimizer range [%lld, %lld) of an arena of %lld: need 0 <= begin <= end <= "
                         "numel, both multiples of 16 (or end == numel)", (long long)begin, (long long)end,
                         (long long)total);
    const gopt__optim_algo *impl = algos[cfg->algo]();
    if (impl->pass && (begin != 0 || end != total))
        return GOPT_FAIL(GOPT_EINVAL, "%s updates whole tensors (trust ratios, matrices, factors): it cannot take the "
                         "range [%lld, %lld) of the arena (ZeRO-1)", impl->name, (long long)begin, (long long)end);
    int ng = gopt_params_group_count(params);
    /* Resolve and check every group before allocating anything. */
    unsigned mask = 0;
    int any_l1 = 0;
    for (int g = 0; g < ng; g++) {
        gopt_group_config gc;
        GOPT_TRY(gopt_params_group_get(params, g, &gc));
        gopt_optim_config c = *cfg;
        apply_overrides(&c, &gc);
        char where[32];
        snprintf(where, sizeof where, " (group %d)", g);
        GOPT_TRY(validate(&c, where));
        mask |= needed_buffers(&c);
        any_l1 |= c.l1 > 0;
    }
    gopt_optim *opt = gopt__calloc(1, sizeof *opt);
    if (!opt) return GOPT_FAIL(GOPT_ENOMEM, "optimizer header");
    opt->algo = cfg->algo;
    opt->impl = impl;
    opt->params = params;
    opt->begin = begin;
    opt->numel = end - begin;
    opt->ngroups = ng;
    opt->buf_mask = mask;
    opt->lookahead_k = cfg->lookahead_k;
    opt->lookahead_alpha = cfg->lookahead_alpha;
    /* Scalars blocks 16-byte aligned (they hold floats and ints). */
    opt->scalars_stride = (impl->scalars_size + 15) & ~(size_t)15;
    opt->groups = gopt__calloc((size_t)ng, sizeof *opt->groups);
    opt->scalars = gopt__calloc((size_t)ng, opt->scalars_stride);
    gopt_status s = GOPT_OK;
    if (!opt->groups || !opt->scalars) s = GOPT_FAIL(GOPT_ENOMEM, "%d groups", ng);
    size_t bytes = (size_t)(opt->numel > 0 ? opt->numel : 1) * sizeof(float);
    for (int i = 0; i < NSTATE && s == GOPT_OK; i++)
        if (mask & (1u << i)) {
            opt->state[i] = gopt__aligned_alloc(bytes);
            if (!opt->state[i]) s = GOPT_FAIL(GOPT_ENOMEM, "state buffer %s of %lld floats",
                                              impl->state_names[i], (long long)opt->numel);
        }
    if (s == GOPT_OK && opt->lookahead_k > 0) {
        opt->slow = gopt__aligned_alloc(bytes);
        if (!opt->slow) s = GOPT_FAIL(GOPT_ENOMEM, "lookahead slow weights of %lld floats", (long long)opt->numel);
    }
    if (s == GOPT_OK && any_l1 && impl->pass) {
        opt->l1_grads = gopt__aligned_alloc(bytes);
        if (!opt->l1_grads) s = GOPT_FAIL(GOPT_ENOMEM, "L1 gradients of %lld floats", (long long)opt->numel);
    }
    for (int g = 0; g < ng && s == GOPT_OK; g++) {
        gopt_group_config gc;
        gopt_params_group_get(params, g, &gc);
        gopt__optim_group *gs = &opt->groups[g];
        gs->cfg = *cfg;
        apply_overrides(&gs->cfg, &gc);
        gs->initial_lr = gs->cfg.lr;
        gs->mu_product = 1.0f;
        gs->weight_sum = 0.0;
        gs->lr_max = -1.0;
    }
    /* after the groups: an algorithm's create may look at their configs (Muon) */
    if (s == GOPT_OK && impl->create) s = impl->create(opt);
    if (s != GOPT_OK) {
        gopt_optim_destroy(opt);
        return s;
    }
    if (impl->init_state) impl->init_state(opt);
    *out = opt;
    return GOPT_OK;
}

/* ---- the step ------------------------------------------------------------------------- */

/* ---- L1: g += l1*sign(p), in one place for every algorithm ------------------------------
 * The term goes into a copy of the gradient, never into the arena's gradients (PyTorch's
 * single-tensor paths add weight decay out of place too). Element-wise algorithms take the
 * copy in blocks of L1_BLOCK floats on the thread's stack, so the block the kernel reads is
 * in cache and the step moves no more memory than without L1 (1 kB blocks: measured on an
 * AMD EPYC Zen 3 against 512 B to 16 kB, SGD+L1 within 1.1x of the floor, 4 kB 1.13-1.27x).
 * With maximize the kernel
 * negates g first, so the copy holds g + sign_g*l1*sign(p): the kernel's sign_g*copy is then
 * -g + l1*sign(p), bit for bit (negation is exact). Algorithms with their own pass (LAMB,
 * ...) read the whole copy (opt->l1_grads) through gopt__optim_grads. */
#define L1_BLOCK 256

GOPT_CLONES static void l1_grads(float *restrict out, const float *restrict g, const float *restrict p, int64_t n,
                                 float l1) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) out[i] = g[i] + gopt__l1_term(p[i], l1);
}

/* The algorithm's kernel over [b, e) of the arena, inside group gi and the optimizer's range. */
static void run_range(const gopt_optim *opt, int gi, int64_t b, int64_t e) {
    float *state[NSTATE];
    for (int i = 0; i < NSTATE; i++) state[i] = opt->state[i] ? opt->state[i] + (b - opt->begin) : NULL;
    const gopt_optim_config *cfg = &opt->groups[gi].cfg;
    float *p = gopt_params_values(opt->params) + b;
    const float *g = gopt_params_grads(opt->params) + b;
    if (cfg->l1 == 0.0f) {
        opt->impl->run(gopt__optim_scalars(opt, gi), cfg, p, g, state, e - b);
        return;
    }
    const float l1 = cfg->maximize ? -cfg->l1 : cfg->l1;
    _Alignas(64) float block[L1_BLOCK];
    for (int64_t o = 0; o < e - b; o += L1_BLOCK) {
        int64_t n = e - b - o < L1_BLOCK ? e - b - o : L1_BLOCK;
        float *st[NSTATE];
        for (int i = 0; i < NSTATE; i++) st[i] = state[i] ? state[i] + o : NULL;
        l1_grads(block, g + o, p + o, n, l1);
        opt->impl->run(gopt__optim_scalars(opt, gi), cfg, p + o, block, st, n);
    }
}

/* The whole copy g + l1*sign(p) for an algorithm's own pass (groups without L1 copy g). */
static void l1_pass(gopt_optim *opt) {
    const gopt_param_run *runs = gopt_params_runs(opt->params);
    const int nr = gopt_params_run_count(opt->params);
    const float *g = gopt_params_grads_const(opt->params), *p = gopt_params_values_const(opt->params);
    const int nthreads = gopt__optim_threads(opt);
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int64_t lo, hi;
        gopt__optim_thread_slice(opt->numel, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        lo += opt->begin;
        hi += opt->begin;
        for (int r = 0; r < nr && lo < hi; r++) {
            int64_t b = runs[r].begin > lo ? runs[r].begin : lo;
            int64_t e = runs[r].end < hi ? runs[r].end : hi;
            if (b >= e) continue;
            const gopt_optim_config *cfg = &opt->groups[runs[r].group].cfg;
            l1_grads(opt->l1_grads + (b - opt->begin), g + b, p + b, e - b, cfg->maximize ? -cfg->l1 : cfg->l1);
        }
    }
}

static void elementwise_pass(gopt_optim *opt) {
    const gopt_param_run *runs = gopt_params_runs(opt->params);
    const int nr = gopt_params_run_count(opt->params);
    const int64_t numel = opt->numel;
    const int nthreads = gopt__optim_threads(opt);
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int64_t lo, hi;
        gopt__optim_thread_slice(numel, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        lo += opt->begin;
        hi += opt->begin;
        for (int r = 0; r < nr && lo < hi; r++) {
            int64_t b = runs[r].begin > lo ? runs[r].begin : lo;
            int64_t e = runs[r].end < hi ? runs[r].end : hi;
            if (b < e) run_range(opt, runs[r].group, b, e);
        }
    }
}

gopt_status gopt_optim_step(gopt_optim *opt) {
    GOPT_CHECK_NULL(opt);
    if (opt->eval_mode)
        return GOPT_FAIL(GOPT_ESTATE, "%s is in eval mode (gopt_optim_eval: the arena holds x, not y); call "
                         "gopt_optim_train before gopt_optim_step", opt->impl->name);
    if (opt->lookahead_k > 0 && !opt->slow_ready) {
        gopt__lookahead_sync(opt, 1);
        opt->slow_ready = 1;
    }
    int64_t step = opt->step + 1;
    for (int gi = 0; gi < opt->ngroups; gi++)
        opt->impl->step_scalars(&opt->groups[gi], step, opt->scalars + (size_t)gi * opt->scalars_stride);
    if (opt->impl->pass) {
        if (opt->l1_grads) l1_pass(opt);
        opt->impl->pass(opt);
    } else {
        elementwise_pass(opt);
    }
    opt->step = step;
    if (opt->lookahead_k > 0 && step % opt->lookahead_k == 0) gopt__lookahead_sync(opt, 0);
    return GOPT_OK;
}

/* Train/eval modes: the algorithm's set_mode moves the arena between y and x. */
static gopt_status set_mode(gopt_optim *opt, int to_eval) {
    GOPT_CHECK_NULL(opt);
    if (!opt->impl->set_mode || opt->eval_mode == to_eval) return GOPT_OK;
    if (opt->step > 0) opt->impl->set_mode(opt, to_eval); /* before the first step there is no z */
    opt->eval_mode = to_eval;
    return GOPT_OK;
}

gopt_status gopt_optim_train(gopt_optim *opt) { return set_mode(opt, 0); }
gopt_status gopt_optim_eval(gopt_optim *opt) { return set_mode(opt, 1); }
int gopt_optim_in_eval_mode(const gopt_optim *opt) { return opt ? opt->eval_mode : 0; }

void gopt_optim_zero_grad(gopt_optim *opt) {
    if (opt) gopt_params_zero_grad(opt->params);
}

int64_t gopt_optim_step_count(const gopt_optim *opt) { return opt ? opt->step : 0; }

void gopt_optim_range(const gopt_optim *opt, int64_t *begin, int64_t *end) {
    int64_t b = opt ? opt->begin : 0, e = opt ? opt->begin + opt->numel : 0;
    if (begin) *begin = b;
    if (end) *end = e;
}
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

float gopt_optim_get_momentum(const gopt_optim *opt, int group) {
    if (bad_group(opt, group)) return NAN;
    switch (opt->impl->momentum_field) {
    case GOPT__MOMENTUM_MOMENTUM: return opt->groups[group].cfg.momentum;
    case GOPT__MOMENTUM_BETA1: return opt->groups[group].cfg.beta1;
    default: return NAN;
    }
}

gopt_status gopt_optim_set_momentum(gopt_optim *opt, int group, float momentum) {
    GOPT_CHECK_NULL(opt);
    if (bad_group(opt, group)) return GOPT_FAIL(GOPT_ERANGE, "group %d is outside 0..%d", group, opt->ngroups - 1);
    gopt__momentum_field field = opt->impl->momentum_field;
    if (field == GOPT__MOMENTUM_NONE)
        return GOPT_FAIL(GOPT_EINVAL, "%s has no momentum or beta1", opt->impl->name);
    if (!(momentum >= 0 && momentum < 1))
        return GOPT_FAIL(GOPT_EINVAL, "momentum = %g is outside [0, 1) (group %d)", (double)momentum, group);
    gopt_optim_config c = opt->groups[group].cfg;
    char where[32];
    snprintf(where, sizeof where, " (group %d)", group);
    if (field == GOPT__MOMENTUM_BETA1) {
        c.beta1 = momentum;
        GOPT_TRY(validate(&c, where)); /* e.g. Schedule-Free's beta1 > 0 */
    } else {
        c.momentum = momentum;
        if (c.nesterov && momentum <= 0)
            return GOPT_FAIL(GOPT_EINVAL, "momentum = 0 with nesterov (group %d)", group);
        if ((needed_buffers(&c) & ~opt->buf_mask) != 0)
            return GOPT_FAIL(GOPT_ESTATE, "momentum > 0 needs a momentum buffer: create with momentum > 0 (group %d)", group);
        GOPT_TRY(validate(&c, where)); /* e.g. Schedule-Free SGD's momentum in (0, 1) */
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
    if (cfg->algo != opt->algo && !((int)cfg->algo >= 0 && cfg->algo < GOPT_ALGO_COUNT &&
                                    (opt->impl->group_algos >> cfg->algo) & 1u))
        return GOPT_FAIL(GOPT_EINVAL, "algo %d differs from the optimizer's (%s)", (int)cfg->algo, opt->impl->name);
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
                             opt->impl->state_names[i]);
    if (c.l1 > 0 && opt->impl->pass && !opt->l1_grads)
        return GOPT_FAIL(GOPT_ESTATE, "group %d: l1 > 0 with %s needs a gradient copy that was not allocated at "
                         "create: create with l1 > 0 in some group", group, opt->impl->name);
    if (opt->impl->check_group) GOPT_TRY(opt->impl->check_group(opt, group, &c));
    opt->groups[group].cfg = c;
    if (opt->step == 0) {
        opt->groups[group].initial_lr = c.lr;
        if (opt->impl->init_state) opt->impl->init_state(opt);
    }
    return GOPT_OK;
}

/* ---- state ---------------------------------------------------------------------------- */

#define CFG_BYTES (4 * 6 + 4 * 13 + 4 * 4)

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
    /* L1 and Schedule-Free's fields */
    gopt__put_f32(w, c->l1);
    gopt__put_u32(w, (uint32_t)c->warmup_steps);
    gopt__put_f32(w, c->r);
    gopt__put_f32(w, c->weight_lr_power);
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
    c->l1 = gopt__get_f32(r);
    c->warmup_steps = (int)gopt__get_u32(r);
    c->r = gopt__get_f32(r);
    c->weight_lr_power = gopt__get_f32(r);
}

#define HEADER_BYTES (4 + 4 + 8 + 4 + 8 + 4 + 4 + 4 + 4)
#define GROUP_BYTES (CFG_BYTES + 4 + 4 + 4 + 8 + 8 + 4 + opt->impl->cfg_bytes) /* (uses opt) */

static int nbuffers(const gopt_optim *opt) {
    int n = 0;
    for (int i = 0; i < NSTATE; i++) n += (opt->buf_mask >> i) & 1u;
    return n + (opt->slow != NULL);
}

static size_t state_bytes(const gopt_optim *opt, int64_t numel) {
    return HEADER_BYTES + (size_t)opt->ngroups * GROUP_BYTES + (size_t)nbuffers(opt) * (size_t)numel * sizeof(float) +
           (opt->impl->extra_size ? opt->impl->extra_size(opt) : 0);
}

size_t gopt_optim_state_size(const gopt_optim *opt) { return opt ? state_bytes(opt, opt->numel) : 0; }

size_t gopt__optim_state_size_whole(const gopt_optim *opt) {
    return opt ? state_bytes(opt, gopt_params_numel(opt->params)) : 0;
}

/* Everything before the buffers, with `numel` as the element count. */
static void put_header(gopt__wcur *w, const gopt_optim *opt, int64_t numel) {
    gopt__wcur *wp = w; /* shorter lines below */
    gopt__put_u32(wp, OPT_MAGIC);
    gopt__put_u32(wp, (uint32_t)opt->algo);
    gopt__put_i64(wp, numel);
    gopt__put_u32(wp, (uint32_t)opt->ngroups);
    gopt__put_i64(wp, opt->step);
    gopt__put_u32(wp, opt->buf_mask);
    gopt__put_u32(wp, (uint32_t)opt->lookahead_k);
    gopt__put_f32(wp, opt->lookahead_alpha);
    gopt__put_u32(wp, (uint32_t)opt->slow_ready);
    for (int g = 0; g < opt->ngroups; g++) {
        const gopt__optim_group *gs = &opt->groups[g];
        put_cfg(wp, &gs->cfg);
        gopt__put_f32(wp, gs->initial_lr);
        gopt__put_f32(wp, gs->mu_product);
        gopt__put_u32(wp, (uint32_t)gs->momentum_ready);
        gopt__put_f64(wp, gs->weight_sum);
        gopt__put_f64(wp, gs->lr_max);
        gopt__put_u32(wp, (uint32_t)opt->eval_mode); /* schedule_free's group['train_mode'], negated */
        if (opt->impl->put_cfg) opt->impl->put_cfg(wp, &gs->cfg);
    }
}

gopt_status gopt__optim_state_save_gathered(const gopt_optim *opt, gopt__gather_fn fn, void *ctx, void *buf,
                                            size_t size) {
    GOPT_CHECK_NULL(opt);
    GOPT_CHECK_NULL(fn);
    const int64_t whole = gopt_params_numel(opt->params);
    size_t need = state_bytes(opt, whole);
    if (buf && size < need) return GOPT_FAIL(GOPT_EINVAL, "buffer of %zu bytes, need %zu", size, need);
    gopt__wcur w = gopt__wcur_make(buf, size);
    if (buf) put_header(&w, opt, whole);
    /* The buffers in the order of gopt_optim_state_save; the gather writes each one's
     * slices in place (the buffer's offset inside buf is 4-byte aligned, as memcpy needs). */
    const float *bufs[NSTATE + 1];
    int nb = 0;
    for (int i = 0; i < NSTATE; i++)
        if (opt->buf_mask & (1u << i)) bufs[nb++] = opt->state[i];
    if (opt->slow) bufs[nb++] = opt->slow;
    for (int i = 0; i < nb; i++) {
        float *full = NULL;
        if (buf) {
            full = (float *)(void *)w.p;
            w.p += (size_t)whole * sizeof(float);
        }
        GOPT_TRY(fn(ctx, bufs[i], opt->numel, full));
    }
    if (buf && opt->impl->extra_save) opt->impl->extra_save(opt, &w);
    return GOPT_OK;
}

gopt_status gopt_optim_state_save(const gopt_optim *opt, void *buf, size_t size) {
    GOPT_CHECK_NULL(opt);
    GOPT_CHECK_NULL(buf);
    size_t need = gopt_optim_state_size(opt);
    if (size < need) return GOPT_FAIL(GOPT_EINVAL, "buffer of %zu bytes, need %zu", size, need);
    gopt__wcur w = gopt__wcur_make(buf, size);
    put_header(&w, opt, opt->numel);
    size_t bytes = (size_t)opt->numel * sizeof(float);
    for (int i = 0; i < NSTATE; i++)
        if (opt->buf_mask & (1u << i)) gopt__put(&w, opt->state[i], bytes);
    if (opt->slow) gopt__put(&w, opt->slow, bytes);
    if (opt->impl->extra_save) opt->impl->extra_save(opt, &w);
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
                         algo < GOPT_ALGO_COUNT ? algos[algo]()->name : "?", opt->impl->name);
    int64_t numel = gopt__get_i64(&r);
    const int64_t whole = gopt_params_numel(opt->params);
    /* This optimizer's own blob, or (for a range optimizer) a whole-arena one whose slice it takes. */
    if (numel != opt->numel && numel != whole)
        return GOPT_FAIL(GOPT_EFORMAT, "optimizer state holds %lld parameters, the arena has %lld%s", (long long)numel,
                         (long long)whole, opt->numel != whole ? " (and this optimizer's slice fewer)" : "");
    const int64_t skip = numel == opt->numel ? 0 : opt->begin; /* first element of ours in the blob's buffers */
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
    if (size != state_bytes(opt, numel))
        return GOPT_FAIL(GOPT_EFORMAT, "optimizer state is %zu bytes, this optimizer needs %zu", size,
                         state_bytes(opt, numel));
    /* Check every group before changing anything. */
    gopt__rcur r2 = r;
    uint32_t mode0 = 0;
    for (int g = 0; g < opt->ngroups; g++) {
        gopt_optim_config c = opt->groups[g].cfg; /* fields the state does not hold stay */
        get_cfg(&r2, &c);
        gopt__get_f32(&r2);
        gopt__get_f32(&r2);
        gopt__get_u32(&r2);
        double wsum = gopt__get_f64(&r2), lr_max = gopt__get_f64(&r2);
        uint32_t mode = gopt__get_u32(&r2);
        if (!isfinite(wsum) || wsum < 0 || !(lr_max >= -1.0) || !isfinite(lr_max))
            return GOPT_FAIL(GOPT_EFORMAT, "optimizer state: group %d has weight_sum %g, lr_max %g", g, wsum, lr_max);
        if (mode > 1 || (mode && !opt->impl->set_mode))
            return GOPT_FAIL(GOPT_EFORMAT, "optimizer state: group %d has mode %u (%s has no eval mode)", g, mode,
                             opt->impl->name);
        if (g == 0) mode0 = mode;
        else if (mode != mode0)
            return GOPT_FAIL(GOPT_EFORMAT, "optimizer state: group %d is in %s mode, group 0 in %s mode", g,
                             mode ? "eval" : "train", mode0 ? "eval" : "train");
        if (opt->impl->get_cfg) opt->impl->get_cfg(&r2, &c);
        char where[48];
        snprintf(where, sizeof where, " (group %d of the state)", g);
        int algo_ok = c.algo == opt->algo ||
                      ((uint32_t)c.algo < GOPT_ALGO_COUNT && ((opt->impl->group_algos >> c.algo) & 1u));
        if (!algo_ok || validate(&c, where) != GOPT_OK)
            return GOPT_FAIL(GOPT_EFORMAT, "optimizer state: group %d has invalid hyperparameters (%s)", g,
                             gopt_last_error());
        if (needed_buffers(&c) & ~opt->buf_mask)
            return GOPT_FAIL(GOPT_EFORMAT, "optimizer state: group %d needs buffers this optimizer lacks", g);
        if (opt->impl->check_group && opt->impl->check_group(opt, g, &c) != GOPT_OK)
            return GOPT_FAIL(GOPT_EFORMAT, "optimizer state: group %d does not fit this arena (%s)", g,
                             gopt_last_error());
    }
    for (int g = 0; g < opt->ngroups; g++) {
        gopt__optim_group *gs = &opt->groups[g];
        get_cfg(&r, &gs->cfg);
        gs->initial_lr = gopt__get_f32(&r);
        gs->mu_product = gopt__get_f32(&r);
        gs->momentum_ready = (int)gopt__get_u32(&r);
        gs->weight_sum = gopt__get_f64(&r);
        gs->lr_max = gopt__get_f64(&r);
        (void)gopt__get_u32(&r); /* the mode, checked above */
        if (opt->impl->get_cfg) opt->impl->get_cfg(&r, &gs->cfg);
    }
    size_t bytes = (size_t)opt->numel * sizeof(float);
    size_t before = (size_t)skip * sizeof(float), after = (size_t)(numel - skip - opt->numel) * sizeof(float);
    for (int i = 0; i < NSTATE + 1; i++) {
        float *dst = i < NSTATE ? ((opt->buf_mask & (1u << i)) ? opt->state[i] : NULL) : opt->slow;
        if (!dst) continue;
        r.p += before;
        gopt__get(&r, dst, bytes);
        r.p += after;
    }
    if (opt->impl->extra_load) opt->impl->extra_load(opt, &r);
    opt->step = step;
    opt->slow_ready = slow_ready;
    opt->eval_mode = (int)mode0;
    return GOPT_OK;
}
