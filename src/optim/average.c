/* Weight averaging over the parameter arena: torch.optim.swa_utils.AveragedModel
 * (PyTorch 1.13; Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better
 * Generalization"; Polyak-Ruppert / exponential moving averages of the weights).
 * https://pytorch.org/docs/1.13/optim.html#stochastic-weight-averaging
 *
 *   update 1:  avg = p (copy);
 *   SWA:       avg = avg + (p - avg) / (n + 1)     n = updates before this one, as float;
 *   EMA:       avg = decay*avg + (1-decay)*p        decay and 1-decay rounded to float.
 *
 * Float32 throughout, in PyTorch's order of operations (its avg_fn is tensor arithmetic:
 * each operation rounds). One pass over the arena per update, split over OpenMP threads on
 * the optimizers' 16-element slices: the same bits for every thread count.
 *
 * Differences from other frameworks: PyTorch 2's get_ema_multi_avg_fn computes the EMA as
 * lerp(avg, p, 1-decay) (same value up to rounding); optax.ema starts from zeros and
 * debiases by 1-decay^t by default instead of copying the first value. AveragedModel is a second copy of the
 * model with its own BatchNorm buffers; here the average lives beside the arena, evaluated
 * by swapping it in (gopt_average_swap), with BatchNorm statistics recomputed by
 * gopt_net_recalibrate_bn (update_bn). */
#include <omp.h>

#include "optim/optim_impl.h" /* GOPT_CLONES */

#define AVG_MAGIC GOPT__MAGIC('A', 'V', 'G', '1')
#define AVG_PARALLEL_MIN 65536 /* elements: below this one thread (as the optimizers) */

struct gopt_average {
    gopt_average_config cfg;
    gopt_params *params;
    int64_t numel;
    int64_t count;
    int swapped;
    float *avg; /* numel floats, 64-byte aligned */
};

gopt_average_config gopt_average_config_default(gopt_average_kind kind) {
    gopt_average_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.decay = 0.999f;
    return c;
}

static gopt_status validate(const gopt_average_config *c) {
    if (c->kind != GOPT_AVERAGE_SWA && c->kind != GOPT_AVERAGE_EMA)
        return GOPT_FAIL(GOPT_EINVAL, "kind = %d is neither GOPT_AVERAGE_SWA nor GOPT_AVERAGE_EMA", (int)c->kind);
    if (c->kind == GOPT_AVERAGE_EMA && !(c->decay >= 0.0f && c->decay < 1.0f))
        return GOPT_FAIL(GOPT_EINVAL, "EMA decay = %g is outside [0, 1) (avg = decay*avg + (1-decay)*p)",
                         (double)c->decay);
    return GOPT_OK;
}

gopt_status gopt_average_create(const gopt_average_config *cfg, gopt_params *params, gopt_average **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    GOPT_CHECK_NULL(params);
    GOPT_TRY(validate(cfg));
    if (!gopt_params_finalized(params))
        return GOPT_FAIL(GOPT_ESTATE, "the params arena is not finalized (call gopt_params_finalize first)");
    gopt_average *a = gopt__calloc(1, sizeof *a);
    if (!a) return GOPT_FAIL(GOPT_ENOMEM, "average header");
    a->cfg = *cfg;
    a->params = params;
    a->numel = gopt_params_numel(params);
    a->avg = gopt__aligned_alloc((size_t)(a->numel > 0 ? a->numel : 1) * sizeof(float));
    if (!a->avg) {
        const long long numel = (long long)a->numel;
        gopt__free(a);
        return GOPT_FAIL(GOPT_ENOMEM, "average of %lld floats", numel);
    }
    *out = a;
    return GOPT_OK;
}

void gopt_average_destroy(gopt_average *a) {
    if (!a) return;
    gopt__aligned_free(a->avg);
    gopt__free(a);
}

/* ---- the pass ------------------------------------------------------------------------------ */

enum { OP_COPY, OP_SWA, OP_EMA, OP_SWAP };

GOPT_CLONES static void k_update(int op, float *restrict avg, float *restrict p, int64_t n, float a, float b) {
    switch (op) {
    case OP_COPY: memcpy(avg, p, (size_t)n * sizeof(float)); break;
    case OP_SWA: /* a = n + 1 */
#pragma omp simd
        for (int64_t i = 0; i < n; i++) avg[i] = avg[i] + (p[i] - avg[i]) / a;
        break;
    case OP_EMA: /* a = decay, b = 1 - decay */
#pragma omp simd
        for (int64_t i = 0; i < n; i++) avg[i] = a * avg[i] + b * p[i];
        break;
    default:
#pragma omp simd
        for (int64_t i = 0; i < n; i++) {
            float t = avg[i];
            avg[i] = p[i];
            p[i] = t;
        }
        break;
    }
}

static void pass(gopt_average *a, int op, float x, float y) {
    float *p = gopt_params_values(a->params), *avg = a->avg;
    const int64_t numel = a->numel;
    const int nthreads = numel > AVG_PARALLEL_MIN ? gopt_get_threads() : 1;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t chunks = (numel + 15) / 16;
        int64_t lo = chunks * t / nt * 16, hi = chunks * (t + 1) / nt * 16;
        if (lo > numel) lo = numel;
        if (hi > numel) hi = numel;
        if (lo < hi) k_update(op, avg + lo, p + lo, hi - lo, x, y);
    }
}

gopt_status gopt_average_update(gopt_average *a) {
    GOPT_CHECK_NULL(a);
    if (a->swapped)
        return GOPT_FAIL(GOPT_ESTATE, "the arena holds the average (gopt_average_swap): swap back before updating");
    if (a->count == 0) pass(a, OP_COPY, 0, 0);
    else if (a->cfg.kind == GOPT_AVERAGE_SWA) pass(a, OP_SWA, (float)(a->count + 1), 0);
    else pass(a, OP_EMA, a->cfg.decay, (float)(1.0 - (double)a->cfg.decay));
    a->count++;
    return GOPT_OK;
}

gopt_status gopt_average_swap(gopt_average *a) {
    GOPT_CHECK_NULL(a);
    if (a->count == 0) return GOPT_FAIL(GOPT_ESTATE, "no average yet (gopt_average_update has not run)");
    pass(a, OP_SWAP, 0, 0);
    a->swapped = !a->swapped;
    return GOPT_OK;
}

int64_t gopt_average_count(const gopt_average *a) { return a ? a->count : 0; }
const float *gopt_average_values(const gopt_average *a) { return a ? a->avg : NULL; }
int gopt_average_swapped(const gopt_average *a) { return a ? a->swapped : 0; }

/* ---- state: magic, kind, decay, numel, count, swapped, the buffer ------------------------- */

#define AVG_HEADER (4 + 4 + 4 + 8 + 8 + 4)

size_t gopt_average_state_size(const gopt_average *a) {
    return a ? AVG_HEADER + (size_t)a->numel * sizeof(float) : 0;
}

gopt_status gopt_average_state_save(const gopt_average *a, void *buf, size_t size) {
    GOPT_CHECK_NULL(a);
    GOPT_CHECK_NULL(buf);
    size_t need = gopt_average_state_size(a);
    if (size < need) return GOPT_FAIL(GOPT_EINVAL, "buffer of %zu bytes, need %zu", size, need);
    gopt__wcur w = gopt__wcur_make(buf, size);
    gopt__put_u32(&w, AVG_MAGIC);
    gopt__put_u32(&w, (uint32_t)a->cfg.kind);
    gopt__put_f32(&w, a->cfg.decay);
    gopt__put_i64(&w, a->numel);
    gopt__put_i64(&w, a->count);
    gopt__put_u32(&w, (uint32_t)a->swapped);
    gopt__put(&w, a->avg, (size_t)a->numel * sizeof(float));
    return w.ok ? GOPT_OK : GOPT_FAIL(GOPT_EINVAL, "buffer too small");
}

gopt_status gopt_average_state_load(gopt_average *a, const void *buf, size_t size) {
    GOPT_CHECK_NULL(a);
    GOPT_CHECK_NULL(buf);
    gopt__rcur r = gopt__rcur_make(buf, size);
    uint32_t magic = gopt__get_u32(&r), kind = gopt__get_u32(&r);
    float decay = gopt__get_f32(&r);
    int64_t numel = gopt__get_i64(&r), count = gopt__get_i64(&r);
    uint32_t swapped = gopt__get_u32(&r);
    if (!r.ok) return GOPT_FAIL(GOPT_EFORMAT, "average state of %zu bytes is truncated", size);
    if (magic != AVG_MAGIC) return GOPT_FAIL(GOPT_EFORMAT, "average state: bad magic");
    if (kind != (uint32_t)a->cfg.kind)
        return GOPT_FAIL(GOPT_EFORMAT, "average state is %s, this average is %s", kind == 0 ? "SWA" : "EMA",
                         a->cfg.kind == GOPT_AVERAGE_SWA ? "SWA" : "EMA");
    if (a->cfg.kind == GOPT_AVERAGE_EMA && decay != a->cfg.decay)
        return GOPT_FAIL(GOPT_EFORMAT, "average state has EMA decay %g, this average %g", (double)decay,
                         (double)a->cfg.decay);
    if (numel != a->numel)
        return GOPT_FAIL(GOPT_EFORMAT, "average state holds %lld values, the arena has %lld", (long long)numel,
                         (long long)a->numel);
    if (count < 0 || swapped > 1 || (swapped && count == 0))
        return GOPT_FAIL(GOPT_EFORMAT, "average state: count %lld, swapped %u", (long long)count, swapped);
    if (size != gopt_average_state_size(a))
        return GOPT_FAIL(GOPT_EFORMAT, "average state is %zu bytes, this average needs %zu", size,
                         gopt_average_state_size(a));
    gopt__get(&r, a->avg, (size_t)a->numel * sizeof(float));
    a->count = count;
    a->swapped = (int)swapped;
    return GOPT_OK;
}
