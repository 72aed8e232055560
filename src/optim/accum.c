/* Gradient accumulation over k micro-batches (see gradopt/clip.h). */
#include "gradopt/clip.h"
#include "core/common.h"
#include "optim/norm.h"

#define ACCUM_MAGIC GOPT__MAGIC('A', 'C', 'C', '1')

struct gopt_accum {
    int k, pending;
    int64_t steps;
};

gopt_status gopt_accum_create(int k, gopt_accum **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    if (k < 1) return GOPT_FAIL(GOPT_EINVAL, "k = %d micro-batches must be >= 1", k);
    gopt_accum *a = gopt__calloc(1, sizeof *a);
    if (!a) return GOPT_FAIL(GOPT_ENOMEM, "accumulator");
    a->k = k;
    *out = a;
    return GOPT_OK;
}

void gopt_accum_destroy(gopt_accum *a) { gopt__free(a); }

gopt_status gopt_accum_add(gopt_accum *a, gopt_params *p, int *step_now) {
    GOPT_CHECK_NULL(a);
    GOPT_CHECK_NULL(p);
    GOPT_CHECK_NULL(step_now);
    *step_now = 0;
    if (!gopt_params_finalized(p)) return GOPT_FAIL(GOPT_ESTATE, "the parameter arena is not finalized");
    if (++a->pending < a->k) return GOPT_OK;
    if (a->k > 1) gopt__scale(gopt_params_grads(p), gopt_params_numel(p), 1.0f / (float)a->k, 1);
    a->pending = 0;
    a->steps++;
    *step_now = 1;
    return GOPT_OK;
}

int gopt_accum_pending(const gopt_accum *a) { return a ? a->pending : 0; }
int64_t gopt_accum_steps(const gopt_accum *a) { return a ? a->steps : 0; }
int gopt_accum_k(const gopt_accum *a) { return a ? a->k : 0; }
void gopt_accum_reset(gopt_accum *a) {
    if (a) a->pending = 0;
}

size_t gopt_accum_state_size(const gopt_accum *a) { return a ? 3 * sizeof(uint32_t) + sizeof(int64_t) : 0; }

gopt_status gopt_accum_state_save(const gopt_accum *a, void *buf, size_t size) {
    GOPT_CHECK_NULL(a);
    GOPT_CHECK_NULL(buf);
    if (size < gopt_accum_state_size(a))
        return GOPT_FAIL(GOPT_EINVAL, "size = %zu, the state needs %zu bytes", size, gopt_accum_state_size(a));
    gopt__wcur w = gopt__wcur_make(buf, size);
    gopt__put_u32(&w, ACCUM_MAGIC);
    gopt__put_u32(&w, (uint32_t)a->k);
    gopt__put_u32(&w, (uint32_t)a->pending);
    gopt__put_i64(&w, a->steps);
    return GOPT_OK;
}

gopt_status gopt_accum_state_load(gopt_accum *a, const void *buf, size_t size) {
    GOPT_CHECK_NULL(a);
    GOPT_CHECK_NULL(buf);
    if (size != gopt_accum_state_size(a))
        return GOPT_FAIL(GOPT_EFORMAT, "accumulator state: %zu bytes, expected %zu", size, gopt_accum_state_size(a));
    gopt__rcur r = gopt__rcur_make(buf, size);
    uint32_t magic = gopt__get_u32(&r), k = gopt__get_u32(&r), pending = gopt__get_u32(&r);
    int64_t steps = gopt__get_i64(&r);
    if (magic != ACCUM_MAGIC) return GOPT_FAIL(GOPT_EFORMAT, "accumulator state: bad magic 0x%08x", magic);
    if (k != (uint32_t)a->k) return GOPT_FAIL(GOPT_EFORMAT, "accumulator state: k = %u, this accumulator has k = %d", k, a->k);
    if (pending >= k) return GOPT_FAIL(GOPT_EFORMAT, "accumulator state: pending = %u must be < k = %u", pending, k);
    if (steps < 0) return GOPT_FAIL(GOPT_EFORMAT, "accumulator state: steps = %lld is negative", (long long)steps);
    a->pending = (int)pending;
    a->steps = steps;
    return GOPT_OK;
}
