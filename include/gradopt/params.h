/* gradopt/params.h: the parameter arena.
 *
 * Every parameter value lives in one contiguous float block and every gradient in another,
 * at the same offsets (llm.c's malloc_and_point_parameters, kann's kad_ext_collate), so an
 * optimizer step, a clip or a norm is one loop over the arena. Tensors are registered by
 * name with a tag, then the arena is finalized (allocated, zero-filled) once; views into
 * it stay valid until gopt_params_destroy.
 *
 * Parameter groups (torch.optim's param_groups): group 0 always exists and holds every
 * tensor not moved elsewhere. A group carries optional hyperparameter overrides; an
 * optimizer created over the arena starts each group from its own config and applies the
 * overrides that are set (not NAN). The optimizer then owns each group's current LR.
 *
 * Serialisation convention shared by every stateful object in the library:
 *   size_t      gopt_X_state_size(const gopt_X *x);
 *   gopt_status gopt_X_state_save(const gopt_X *x, void *buf, size_t size);
 *   gopt_status gopt_X_state_load(gopt_X *x, const void *buf, size_t size);
 * save needs size >= state_size; load checks the size, a magic and every field and
 * returns GOPT_EFORMAT naming what did not match, leaving the object unchanged. */
#ifndef GRADOPT_PARAMS_H
#define GRADOPT_PARAMS_H

#include "tensor.h"

GOPT_EXTERN_C_BEGIN

typedef enum gopt_param_tag {
    GOPT_TAG_WEIGHT = 1, /* matrices and conv kernels: weight decay applies */
    GOPT_TAG_BIAS = 2,   /* biases */
    GOPT_TAG_NORM = 4    /* normalisation scales and shifts (batchnorm gamma/beta) */
} gopt_param_tag;

#define GOPT_TAG_ALL (GOPT_TAG_WEIGHT | GOPT_TAG_BIAS | GOPT_TAG_NORM)
#define GOPT_PARAM_NAME_MAX 64 /* names are at most 63 bytes */

/* Hyperparameter overrides of one group. NAN (the default) means "take the optimizer
 * config's value". momentum is SGD's/RMSprop's momentum; beta1/beta2 are the Adam family's
 * betas (and Lion's); eps is the algorithm's epsilon. */
typedef struct gopt_group_config {
    float lr;
    float weight_decay;
    float momentum;
    float beta1;
    float beta2;
    float eps;
} gopt_group_config;

GOPT_API gopt_group_config gopt_group_config_default(void);

typedef struct gopt_params gopt_params;

/* What one registered tensor is: views of its value and gradient inside the arena. */
typedef struct gopt_param_info {
    const char *name;   /* owned by the arena */
    gopt_param_tag tag;
    int group;
    int frozen;         /* 1: frozen (gopt_params_set_frozen) */
    int64_t offset;     /* index of its first element in the arena */
    gopt_tensor value;  /* borrowed view (owns_data = 0) */
    gopt_tensor grad;   /* borrowed view */
} gopt_param_info;

GOPT_API gopt_status gopt_params_create(gopt_params **out);
GOPT_API void gopt_params_destroy(gopt_params *p);

/* Register a tensor before finalize. Names must be unique and 1..63 bytes.
 * index (may be NULL) receives its index, in registration order.
 * Errors: GOPT_EINVAL (bad name, duplicate, bad tag or shape), GOPT_ESTATE (already
 * finalized), GOPT_EOVERFLOW, GOPT_ENOMEM. */
GOPT_API gopt_status gopt_params_add(gopt_params *p, const char *name, int ndim,
                                     const int64_t shape[], gopt_param_tag tag, int *index);

/* Allocate the value and gradient blocks (zero-filled, 64-byte aligned), in registration
 * order. Errors: GOPT_ESTATE (twice, or no tensors), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_params_finalize(gopt_params *p);

GOPT_API int gopt_params_finalized(const gopt_params *p);
GOPT_API int gopt_params_count(const gopt_params *p);       /* tensors registered */
GOPT_API int64_t gopt_params_numel(const gopt_params *p);   /* total scalars */
/* The arena blocks (NULL before finalize). */
GOPT_API float *gopt_params_values(gopt_params *p);
GOPT_API float *gopt_params_grads(gopt_params *p);
GOPT_API const float *gopt_params_values_const(const gopt_params *p);
GOPT_API const float *gopt_params_grads_const(const gopt_params *p);

/* Views of tensor `index`. Before finalize the views' data pointers are NULL.
 * Errors: GOPT_ERANGE (index), GOPT_EINVAL (NULL). */
GOPT_API gopt_status gopt_params_info(const gopt_params *p, int index, gopt_param_info *out);
/* Index of the tensor named `name`. BatchNorm running statistics are not parameters: a net
 * finds them with gopt_net_find_buffer (net.h), which this error names for "*.running_mean",
 * "*.running_var" and "*.num_batches_tracked". Errors: GOPT_ERANGE (no such name), GOPT_EINVAL. */
GOPT_API gopt_status gopt_params_find(const gopt_params *p, const char *name, int *index);

/* grads = 0 over the whole arena (optimizer.zero_grad(set_to_none=False)). */
GOPT_API void gopt_params_zero_grad(gopt_params *p);

/* ---- groups ------------------------------------------------------------------------ */
/* Add an (empty) group with the given overrides (NULL = all inherit). */
GOPT_API gopt_status gopt_params_add_group(gopt_params *p, const gopt_group_config *cfg, int *group);
/* Move tensor `index` to `group`. */
GOPT_API gopt_status gopt_params_set_group(gopt_params *p, int index, int group);
/* Add a group with `cfg` and move into it every tensor whose tag is in tag_mask.
 * The common case, exempting biases and norms from weight decay:
 *   gopt_group_config nd = gopt_group_config_default(); nd.weight_decay = 0.0f;
 *   gopt_params_group_by_tag(p, GOPT_TAG_BIAS | GOPT_TAG_NORM, &nd, NULL); */
GOPT_API gopt_status gopt_params_group_by_tag(gopt_params *p, unsigned tag_mask,
                                              const gopt_group_config *cfg, int *group);
GOPT_API int gopt_params_group_count(const gopt_params *p);
GOPT_API gopt_status gopt_params_group_get(const gopt_params *p, int group, gopt_group_config *out);
GOPT_API gopt_status gopt_params_group_set(gopt_params *p, int group, const gopt_group_config *cfg);

/* Contiguous runs of the arena that belong to one group, in arena order: run r covers
 * [begin, end) of group `group`. Adjacent tensors of one group merge into one run, so a
 * net whose groups are not interleaved has as many runs as groups. Frozen tensors are in
 * no run (the optimizers walk the runs: that is how they skip them); the runs are
 * recomputed whenever a group or a frozen flag changes, and the pointer stays valid. */
typedef struct gopt_param_run {
    int64_t begin, end;
    int group;
} gopt_param_run;
GOPT_API int gopt_params_run_count(const gopt_params *p);
GOPT_API const gopt_param_run *gopt_params_runs(const gopt_params *p);

/* ---- freezing (PyTorch's requires_grad = False) ----------------------------------------
 * A frozen tensor keeps its value through training: every optimizer skips it (no update,
 * no change to its state buffers, no weight decay or L1), gradient clipping leaves it out
 * of the norm and does not scale it (gopt_clip_grad_norm, _per_tensor, _value, agc), and
 * the layers that own it compute no gradient for it where that can be skipped (see
 * gopt_layer_set_frozen, layer.h), so its gradient stays as the last gopt_params_zero_grad
 * left it; the stability monitor does not read it (monitor.h). Unfreezing resumes training
 * from the current value and the tensor's optimizer state as freezing left it. For a tensor
 * frozen since the optimizer's first step that state is zero, where PyTorch would create it
 * at the tensor's first step: SGD's momentum buffer then starts at (1 - dampening) g rather
 * than g, Adam-family bias corrections use the optimizer's step count rather than the
 * tensor's, and Schedule-Free's z (set from the parameters at the first step) is 0: do not
 * unfreeze under Schedule-Free a tensor that was frozen at its first step.
 * Freezing is training configuration, not state: gopt_params_state_save does not save it.
 * Valid before or after finalize, also between steps.
 * Errors: GOPT_ERANGE (index), GOPT_EINVAL (NULL p, on not 0/1). */
GOPT_API gopt_status gopt_params_set_frozen(gopt_params *p, int index, int on);
/* 1 when tensor `index` is frozen; 0 otherwise (also for a bad index or NULL). */
GOPT_API int gopt_params_is_frozen(const gopt_params *p, int index);
/* How many tensors are frozen. */
GOPT_API int gopt_params_frozen_count(const gopt_params *p);

/* ---- state (see the convention above): tensor names, shapes, tags, groups and values;
 * gradients and frozen flags are not saved. Load requires the same tensors (name, shape,
 * tag) in the same order and the same parameter groups (count and each tensor's group), and
 * names the first mismatch: "tensor 'fc.weight' is (10,64) (640 values) in the state,
 * (10,32) (320 values) in the arena", "tensor 'fc.bias' is in group 1 in the state, group 0
 * in the arena", "... the first missing one is 'fc.bias'", with GOPT_EFORMAT, leaving the
 * arena unchanged. Blobs of the older format (magic "PRM1", before groups were saved) still
 * load, without the group check. */
GOPT_API size_t gopt_params_state_size(const gopt_params *p);
/* Copy the values of src into dst (both finalized), which must hold the same tensors (name,
 * shape) in the same order; tags, groups and frozen flags may differ: the weights of a
 * training net into an inference copy built without its parameter groups, which
 * gopt_params_state_load refuses. Errors: GOPT_EINVAL (NULL), GOPT_ESTATE (not finalized),
 * GOPT_EFORMAT naming the first tensor that differs (dst unchanged). */
GOPT_API gopt_status gopt_params_copy_values(gopt_params *dst, const gopt_params *src);
GOPT_API gopt_status gopt_params_state_save(const gopt_params *p, void *buf, size_t size);
GOPT_API gopt_status gopt_params_state_load(gopt_params *p, const void *buf, size_t size);

GOPT_EXTERN_C_END

#endif /* GRADOPT_PARAMS_H */
