/* gradopt/clip.h: gradient clipping (torch.nn.utils.clip_grad_norm_ / clip_grad_value_,
 * PyTorch 1.13), adaptive gradient clipping, and gradient accumulation over micro-batches.
 *
 * Everything runs over the arena's gradient block (gopt_params_grads) in place. Norms are
 * accumulated per fixed chunk (float lanes flushed into double every 1024 elements, chunks
 * combined in chunk order), so results do not depend on the thread count; large arenas are
 * split across gopt_get_threads() OpenMP threads. Nothing is allocated.
 *
 * Norm of order p over every gradient element together (PyTorch takes the p-norm of the
 * per-tensor p-norms, which is the same quantity):
 *     total = (sum_i |g_i|^p)^(1/p),  p = INFINITY: max_i |g_i|.
 * Clipping (clip_grad_norm_): coef = max_norm / (total + 1e-6) in float, clamped to 1;
 * when coef < 1 (or NaN, as PyTorch, which then spreads NaN) every gradient is multiplied
 * by coef; when coef >= 1 the gradients are not touched (PyTorch multiplies by 1.0, which
 * changes nothing), so an inactive clip costs one read pass.
 * Frozen tensors (gopt_params_set_frozen) are left out of the arena functions' norms and
 * are never scaled or clamped (as PyTorch, which clips only the tensors given to it, those
 * with requires_grad); _per_tensor still reports their norms. With some tensor frozen the
 * norm is combined over the arena's runs (gopt_params_runs), which may round differently
 * in the last bit from one buffer holding the same gradients. */
#ifndef GRADOPT_CLIP_H
#define GRADOPT_CLIP_H

#include "params.h"

GOPT_EXTERN_C_BEGIN

/* The global p-norm of n floats (norm_type > 0, or INFINITY). Errors: GOPT_EINVAL. */
GOPT_API gopt_status gopt_norm(const float *x, int64_t n, double norm_type, float *out);

/* clip_grad_norm_ over a raw gradient buffer of n floats. total_norm (may be NULL)
 * receives the norm before clipping. max_norm finite and >= 0; norm_type > 0 or INFINITY.
 * error_if_nonfinite: a NaN/Inf total norm returns GOPT_ENONFINITE and leaves the gradients
 * untouched (total_norm is still written). Errors: GOPT_EINVAL naming the argument. */
GOPT_API gopt_status gopt_clip_grad_norm_buffer(float *grads, int64_t n, double max_norm, double norm_type,
                                                int error_if_nonfinite, float *total_norm);
/* The same over every gradient of a finalized arena. Errors: also GOPT_ESTATE (arena not
 * finalized). */
GOPT_API gopt_status gopt_clip_grad_norm(gopt_params *p, double max_norm, double norm_type,
                                         int error_if_nonfinite, float *total_norm);

/* Each tensor clipped to its own p-norm (clip_grad_norm_ called per tensor).
 * norms (may be NULL) receives gopt_params_count(p) norms before clipping. */
GOPT_API gopt_status gopt_clip_grad_norm_per_tensor(gopt_params *p, double max_norm, double norm_type,
                                                    float *norms);

/* clip_grad_value_: g = min(max(g, -clip_value), clip_value); NaN stays NaN.
 * clip_value finite and >= 0. */
GOPT_API gopt_status gopt_clip_grad_value_buffer(float *grads, int64_t n, double clip_value);
GOPT_API gopt_status gopt_clip_grad_value(gopt_params *p, double clip_value);

/* Adaptive gradient clipping, unit-wise (Brock et al. 2021, "High-Performance Large-Scale
 * Image Recognition Without Normalization", NFNets): for every unit of every tensor whose
 * tag is in tag_mask (a unit is a row along dimension 0 of a tensor of rank >= 2, e.g. one
 * output neuron or one conv filter, and a single element of a rank-1 tensor such as a
 * bias), with L2 norms over the unit:
 *     max = clipping * max(||w_unit||, eps);  if ||g_unit|| > max: g_unit *= max / max(||g_unit||, 1e-6)
 * The paper leaves the final classifier layer unclipped: leave it out with tag_mask or
 * give it its own tag. Defaults in the paper: clipping 0.01 (batch-size dependent), eps
 * 1e-3. clipped (may be NULL) receives the number of units scaled.
 * Errors: GOPT_EINVAL (clipping not > 0, eps not >= 0, tag_mask empty), GOPT_ESTATE. */
GOPT_API gopt_status gopt_clip_agc(gopt_params *p, double clipping, double eps, unsigned tag_mask,
                                   int64_t *clipped);

/* ---- gradient accumulation ------------------------------------------------------------
 * Averaging k micro-batches: let each micro-batch's loss be the mean over its samples and
 * let backward accumulate (+=) into the arena; after the k-th micro-batch the arena holds
 * the sum of k mean-gradients, and gopt_accum_add scales it by 1/k (the gradient of the mean
 * loss over all k*b samples when micro-batches have equal size b) and says "step now".
 * Step the optimizer and the scheduler only then (schedulers count optimizer steps, not
 * micro-batches), then zero the gradients:
 *
 *     for each micro-batch: forward; backward; gopt_accum_add(acc, params, &step_now);
 *         if (step_now) { gopt_optim_step(opt); gopt_sched_step(s); gopt_optim_zero_grad(opt); } */
typedef struct gopt_accum gopt_accum;

/* k >= 1 micro-batches per optimizer step. Errors: GOPT_EINVAL, GOPT_ENOMEM. */
GOPT_API gopt_status gopt_accum_create(int k, gopt_accum **out);
GOPT_API void gopt_accum_destroy(gopt_accum *a);
/* Count one micro-batch; on the k-th scale the arena's gradients by 1/k and set
 * *step_now = 1 (else 0), and start counting again. Errors: GOPT_EINVAL, GOPT_ESTATE
 * (arena not finalized). */
GOPT_API gopt_status gopt_accum_add(gopt_accum *a, gopt_params *p, int *step_now);
/* Micro-batches counted since the last "step now" (0..k-1). */
GOPT_API int gopt_accum_pending(const gopt_accum *a);
/* "Step now" signals given so far (optimizer steps). */
GOPT_API int64_t gopt_accum_steps(const gopt_accum *a);
GOPT_API int gopt_accum_k(const gopt_accum *a);
/* Forget the pending micro-batches (e.g. after a skipped step; zero the gradients too). */
GOPT_API void gopt_accum_reset(gopt_accum *a);
/* State (params.h convention): k, pending count, steps. Load requires the same k. */
GOPT_API size_t gopt_accum_state_size(const gopt_accum *a);
GOPT_API gopt_status gopt_accum_state_save(const gopt_accum *a, void *buf, size_t size);
GOPT_API gopt_status gopt_accum_state_load(gopt_accum *a, const void *buf, size_t size);

GOPT_EXTERN_C_END

#endif /* GRADOPT_CLIP_H */
