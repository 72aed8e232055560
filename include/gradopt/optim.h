/* gradopt/optim.h: optimizers over a parameter arena (torch.optim semantics).
 *
 * One opaque type, gopt_optim, whose algorithm is chosen by its config. It is created over
 * a finalized gopt_params arena and keeps its state (momentum buffers, moments, ...) in
 * blocks laid out exactly like the arena, so a step is one fused, vectorised pass over
 * the arena (split across OpenMP threads when large) that allocates nothing.
 *
 * Groups: every group of the arena (gopt_params groups) starts from this config; the
 * overrides set in its gopt_group_config (lr, weight_decay, momentum, beta1, beta2, eps)
 * replace the config's values for that group. The optimizer owns each group's current LR
 * (schedulers change it through gopt_optim_set_lr) and remembers its initial LR.
 *
 * Order of a training step, as in PyTorch: zero grads, forward, backward (gradients
 * accumulate into the arena), optional clipping, gopt_optim_step, then a scheduler step.
 * The per-algorithm formulas, PyTorch pages and differences from Keras/TF are given at
 * each gopt_algo value below. */
#ifndef GRADOPT_OPTIM_H
#define GRADOPT_OPTIM_H

#include "params.h"

GOPT_EXTERN_C_BEGIN

typedef enum gopt_algo {
    GOPT_ALGO_SGD = 0,   /* torch.optim.SGD (momentum, dampening, nesterov, weight_decay, maximize) */
    GOPT_ALGO_ADAGRAD,   /* torch.optim.Adagrad */
    GOPT_ALGO_RMSPROP,   /* torch.optim.RMSprop */
    GOPT_ALGO_ADAM,      /* torch.optim.Adam (amsgrad) */
    GOPT_ALGO_ADAMW,     /* torch.optim.AdamW */
    GOPT_ALGO_ADADELTA,  /* torch.optim.Adadelta */
    GOPT_ALGO_NADAM,     /* torch.optim.NAdam */
    GOPT_ALGO_RADAM,     /* torch.optim.RAdam */
    GOPT_ALGO_ADAMAX,    /* torch.optim.Adamax */
    GOPT_ALGO_LION,      /* Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms" */
    GOPT_ALGO_LAMB,      /* You et al. 2020, "Large Batch Optimization for Deep Learning" */
    GOPT_ALGO_COUNT
} gopt_algo;

/* Every hyperparameter of every algorithm, named as in torch.optim. Fields an algorithm
 * does not use are ignored. Start from gopt_optim_config_default(algo), which holds
 * PyTorch 1.13's defaults for that algorithm, and override with designated fields. */
typedef struct gopt_optim_config {
    gopt_algo algo;
    float lr;
    float weight_decay;
    int maximize;                    /* 1: ascend the objective (SGD, Adam, AdamW, ...) */
    /* SGD and RMSprop */
    float momentum;
    float dampening;                 /* SGD */
    int nesterov;                    /* SGD: requires momentum > 0 and dampening == 0 */
    /* Adagrad */
    float lr_decay;
    float initial_accumulator_value;
    /* epsilon of every algorithm that has one */
    float eps;
    /* RMSprop */
    float alpha;
    int centered;
    /* Adam family, Lion, LAMB: betas */
    float beta1, beta2;
    int amsgrad;                     /* Adam, AdamW */
    /* Adadelta */
    float rho;
    /* NAdam */
    float momentum_decay;
    /* Lookahead (Zhang et al. 2019) around any algorithm: every k steps the slow weights
     * move alpha of the way to the fast weights and the fast weights restart there.
     * k = 0 turns it off (the default). */
    int lookahead_k;
    float lookahead_alpha;
} gopt_optim_config;

typedef struct gopt_optim gopt_optim;

GOPT_API gopt_optim_config gopt_optim_config_default(gopt_algo algo);

/* "sgd", "adagrad", "rmsprop", "adam", "adamw", "adadelta", "nadam", "radam", "adamax",
 * "lion", "lamb"; NULL for an unknown value. */
GOPT_API const char *gopt_algo_name(gopt_algo algo);
/* Inverse of gopt_algo_name. Errors: GOPT_EINVAL naming the unknown name. */
GOPT_API gopt_status gopt_algo_from_name(const char *name, gopt_algo *out);

/* Create over a finalized arena (which must outlive the optimizer). Validates the config
 * and every group's resolved hyperparameters as PyTorch would refuse them: lr < 0,
 * eps <= 0 (> 0 required), betas outside [0, 1), momentum < 0, nesterov without momentum
 * or with dampening, weight_decay < 0, rho outside [0, 1], ... -> GOPT_EINVAL naming the
 * field (and the group when it came from a group override).
 * Errors: GOPT_EINVAL, GOPT_ESTATE (arena not finalized), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_optim_create(const gopt_optim_config *cfg, gopt_params *params, gopt_optim **out);
GOPT_API void gopt_optim_destroy(gopt_optim *opt);

/* One update of every parameter from the arena's gradients. Allocates nothing.
 * Errors: GOPT_EINVAL (NULL). Non-finite gradients are not checked here (that is the
 * monitor's job, before the step); they propagate as PyTorch's would. */
GOPT_API gopt_status gopt_optim_step(gopt_optim *opt);

/* Zero the arena's gradients (optimizer.zero_grad(set_to_none=False)). */
GOPT_API void gopt_optim_zero_grad(gopt_optim *opt);

/* Number of steps taken (PyTorch's state['step']). */
GOPT_API int64_t gopt_optim_step_count(const gopt_optim *opt);
GOPT_API int gopt_optim_group_count(const gopt_optim *opt);
GOPT_API gopt_params *gopt_optim_params(gopt_optim *opt);

/* Current and initial LR of a group (PyTorch's group['lr'], group['initial_lr']).
 * get returns NAN for a bad group. set: GOPT_ERANGE (group), GOPT_EINVAL (lr < 0 or not
 * finite). */
GOPT_API float gopt_optim_get_lr(const gopt_optim *opt, int group);
GOPT_API gopt_status gopt_optim_set_lr(gopt_optim *opt, int group, float lr);
GOPT_API float gopt_optim_initial_lr(const gopt_optim *opt, int group);

/* The momentum-like hyperparameter that OneCycleLR cycles: SGD/RMSprop momentum, or beta1
 * for the Adam family, Lion and LAMB. get returns NAN for a bad group or an algorithm
 * without one. set: GOPT_ERANGE, GOPT_EINVAL (outside [0, 1)). */
GOPT_API float gopt_optim_get_momentum(const gopt_optim *opt, int group);
GOPT_API gopt_status gopt_optim_set_momentum(gopt_optim *opt, int group, float momentum);

/* The resolved hyperparameters of a group (config + the group's overrides + current LR). */
GOPT_API gopt_status gopt_optim_group_config(const gopt_optim *opt, int group, gopt_optim_config *out);

/* State (see params.h for the convention): algorithm, step count, per-group current LR
 * and hyperparameters, and every state buffer. Load requires the same algorithm and an
 * arena of the same size and group count; a loaded optimizer continues bit-identically. */
GOPT_API size_t gopt_optim_state_size(const gopt_optim *opt);
GOPT_API gopt_status gopt_optim_state_save(const gopt_optim *opt, void *buf, size_t size);
GOPT_API gopt_status gopt_optim_state_load(gopt_optim *opt, const void *buf, size_t size);

GOPT_EXTERN_C_END

#endif /* GRADOPT_OPTIM_H */
