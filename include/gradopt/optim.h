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

/* Notation: p parameter, g gradient (g = -g first when maximize), t the step (1-based,
 * a float in the bias corrections), wd weight_decay, every operation element-wise in
 * float32 with scalar coefficients computed in double then rounded to float, as PyTorch
 * 1.13's single-tensor (foreach=False) path does. "Coupled" weight decay means g += wd*p
 * before anything else (PyTorch's choice everywhere except AdamW, Lion and LAMB).
 * Refused by create, and by gopt_optim_set_group_config: see each algorithm. */
typedef enum gopt_algo {
    /* SGD  https://pytorch.org/docs/1.13/generated/torch.optim.SGD.html
     *   g += wd*p;  first step: buf = g;  later: buf = momentum*buf + (1-dampening)*g;
     *   nesterov: g = g + momentum*buf, else g = buf (when momentum > 0);  p -= lr*g.
     *   PyTorch has no default lr; ours is 0.01. Keras/TF differ: their Nesterov form is
     *   p += momentum*v - lr*g with v the velocity (scaled by lr), so an LR change acts on
     *   the buffer differently; the first step there does not copy g into the buffer.
     *   Refused: momentum < 0, dampening < 0, nesterov with momentum == 0 or dampening != 0. */
    GOPT_ALGO_SGD = 0,
    /* Adagrad  https://pytorch.org/docs/1.13/generated/torch.optim.Adagrad.html
     *   g += wd*p;  clr = lr / (1 + (t-1)*lr_decay);  sum += g*g;  p -= clr * g/(sqrt(sum)+eps).
     *   State starts at initial_accumulator_value. Keras: eps inside nothing either but
     *   default eps 1e-7 and initial_accumulator_value 0.1; TF1 had no eps at all.
     *   Refused: lr_decay < 0, initial_accumulator_value < 0, eps <= 0 (see eps below). */
    GOPT_ALGO_ADAGRAD,
    /* RMSprop  https://pytorch.org/docs/1.13/generated/torch.optim.RMSprop.html
     *   g += wd*p;  sq = alpha*sq + (1-alpha)*g*g;  centered: ga = alpha*ga + (1-alpha)*g,
     *   avg = sqrt(sq - ga*ga) + eps, else avg = sqrt(sq) + eps;  momentum > 0:
     *   buf = momentum*buf + g/avg, p -= lr*buf;  else p -= lr * g/avg.
     *   Keras/TF put eps inside the square root (sqrt(sq + eps)) and use rho for alpha and
     *   eps 1e-7; PyTorch adds eps after the root. Refused: alpha < 0, momentum < 0. */
    GOPT_ALGO_RMSPROP,
    /* Adam  https://pytorch.org/docs/1.13/generated/torch.optim.Adam.html
     *   g += wd*p (coupled, L2);  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
     *   amsgrad: vmax = max(vmax, v) used for v below;  bc1 = 1-b1^t, bc2 = 1-b2^t;
     *   p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps).
     *   Keras/TF put eps as eps_hat outside the bias correction: p -= lr_t*m/(sqrt(v)+eps)
     *   with lr_t = lr*sqrt(bc2)/bc1 (an eps sqrt(bc2) times smaller), default eps 1e-7.
     *   Refused: betas outside [0, 1), eps <= 0. */
    GOPT_ALGO_ADAM,
    /* AdamW  https://pytorch.org/docs/1.13/generated/torch.optim.AdamW.html
     *   p *= 1 - lr*wd (decoupled, scaled by lr, unlike the paper's schedule-multiplier-only
     *   form and unlike TF-Addons' AdamW whose weight_decay is not multiplied by lr), then
     *   Adam without the coupled g += wd*p. Default wd 0.01. */
    GOPT_ALGO_ADAMW,
    /* Adadelta  https://pytorch.org/docs/1.13/generated/torch.optim.Adadelta.html
     *   g += wd*p;  sq = rho*sq + (1-rho)*g*g;  d = sqrt(acc+eps)/sqrt(sq+eps) * g;
     *   acc = rho*acc + (1-rho)*d*d;  p -= lr*d (lr default 1.0). Keras: same eps placement,
     *   eps 1e-7, lr default 0.001. Refused: rho outside [0, 1], eps <= 0. */
    GOPT_ALGO_ADADELTA,
    /* NAdam  https://pytorch.org/docs/1.13/generated/torch.optim.NAdam.html
     *   g += wd*p;  mu_t = b1*(1 - 0.5*0.96^(t*momentum_decay)), mu_{t+1} likewise;
     *   mu_product *= mu_t (float32 state, saved);  m, v as Adam;
     *   denom = sqrt(v/bc2) + eps;  p -= lr*(1-mu_t)/(1-mu_product) * g/denom;
     *   p -= lr*mu_{t+1}/(1-mu_product*mu_t*mu_{t+1}) * m/denom.
     *   The extra mu_t in the last denominator is PyTorch 1.13's formula (fixed in 2.x);
     *   we follow 1.13. Keras' Nadam uses a fixed 0.004 schedule decay and eps outside
     *   sqrt(v_hat) too. Refused: momentum_decay < 0, betas, eps <= 0.
     *   maximize (not in PyTorch 1.13 NAdam/RAdam) negates g as elsewhere. */
    GOPT_ALGO_NADAM,
    /* RAdam  https://pytorch.org/docs/1.13/generated/torch.optim.RAdam.html
     *   g += wd*p;  m, v as Adam;  rho_inf = 2/(1-b2) - 1;  rho_t = rho_inf - 2t*b2^t/bc2;
     *   rho_t > 5: r = sqrt((rho_t-4)(rho_t-2)rho_inf / ((rho_inf-4)(rho_inf-2)rho_t)),
     *   p -= (m/bc1)*lr * sqrt(bc2)/(sqrt(v)+eps) * r;  else p -= (m/bc1)*lr.
     *   TF-Addons' RectifiedAdam uses threshold sma_threshold = 5 too but eps inside
     *   sqrt(v_hat) + eps after bias correction. */
    GOPT_ALGO_RADAM,
    /* Adamax  https://pytorch.org/docs/1.13/generated/torch.optim.Adamax.html
     *   g += wd*p;  m = b1*m + (1-b1)*g;  u = max(b2*u, |g| + eps);  p -= lr/bc1 * m/u.
     *   Keras adds eps to u in the division instead (m/(u+eps)), u = max(b2*u, |g|). */
    GOPT_ALGO_ADAMAX,
    /* Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Alg. 2):
     *   c = b1*m + (1-b1)*g;  p -= lr*(sign(c) + wd*p) (decoupled);  m = b2*m + (1-b2)*g.
     *   sign(0) = 0. Defaults lr 1e-4, betas (0.9, 0.99), wd 0. No eps. */
    GOPT_ALGO_LION,
    /* LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning", Alg. 2), per
     * registered tensor (the paper's "layer"):
     *   m, v as Adam;  r = (m/bc1) / (sqrt(v/bc2) + eps) + wd*p (decoupled);
     *   trust = ||p|| / ||r|| (1 when either norm is 0; phi = identity);  p -= lr*trust*r.
     *   Defaults lr 1e-3, betas (0.9, 0.999), eps 1e-6, wd 0. The norms are reduced in
     *   fixed 4096-element blocks combined in order (double), so results do not depend on
     *   the thread count. A step makes two passes (moments + norms, then the update). */
    GOPT_ALGO_LAMB,
    /* Schedule-Free AdamW (Defazio et al. 2024, "The Road Less Scheduled"), as
     * facebookresearch/schedule_free 1.3 AdamWScheduleFree (its single-tensor path):
     *   k = t-1;  sched = (k+1)/warmup_steps if k < warmup_steps else 1;  lr_t = lr*sched;
     *   lr_max = max(lr_max, lr_t);  c = (k+1)^r * lr_max^weight_lr_power;  weight_sum += c;
     *   ckp1 = c/weight_sum (0 when weight_sum == 0);  bc2 = 1-b2^(k+1);
     *   first step: z = y;  v = b2*v + (1-b2)*g*g;  u = g/(sqrt(v/bc2) + eps) + wd*y;
     *   y = lerp(y, z, ckp1);  y += lr_t*(b1*(1-ckp1) - 1)*u;  z -= lr_t*u.
     * The arena holds y; eval mode (gopt_optim_eval) puts x = lerp(y, z, 1-1/b1) there.
     * Defaults lr 0.0025, betas (0.9, 0.999), eps 1e-8, wd 0, warmup 0, r 0, power 2.
     * Details and differences (mode at create, exact y on return to train mode) in
     * src/optim/schedulefree.c. Refused: betas[0] == 0 (x divides by it), warmup_steps < 0,
     * r or weight_lr_power not finite, weight_lr_power < 0. */
    GOPT_ALGO_ADAMW_SCHEDULEFREE,
    /* Schedule-Free SGD (schedule_free 1.3 SGDScheduleFree): as above with u = g + wd*y,
     * no second moment and momentum in place of b1 (lr_t without bias correction):
     *   y = lerp(y, z, ckp1);  y += lr_t*(momentum*(1-ckp1) - 1)*u;  z -= lr_t*u;
     *   x = lerp(y, z, 1-1/momentum). Defaults lr 1.0, momentum 0.9. Refused: momentum
     *   outside (0, 1) (as schedule_free), warmup_steps, r, weight_lr_power as above. */
    GOPT_ALGO_SGD_SCHEDULEFREE,
    /* Muon  torch.optim.Muon of PyTorch 2.9+  https://pytorch.org/docs/stable/generated/torch.optim.Muon.html
     *   buf = lerp(buf, g, 1-momentum);  U = nesterov ? lerp(g, buf, momentum) : buf;
     *   O = NS(U): the quintic Newton-Schulz iteration (ns_coefficients a,b,c; ns_steps; eps)
     *   on the matrix (rows, cols) = (shape[0], numel/shape[0]), in float32 on SGEMM;
     *   p *= 1 - lr*wd (decoupled);  p -= lr*ratio*O, ratio sqrt(max(1, rows/cols)) (original)
     *   or 0.2*sqrt(max(rows, cols)) (match_rms_adamw). Defaults lr 1e-3, wd 0.1, momentum
     *   0.95, nesterov, eps 1e-7, ns_steps 5. PyTorch takes only 2-D tensors and iterates in
     *   bfloat16; here a conv weight (out,in,kh,kw) is the matrix (out, in*kh*kw) and the
     *   iteration is float32. Tensors Muon should not take run torch.optim.AdamW inside the
     *   same optimizer (as Keras' Muon): with muon_adamw_1d (default 1) every tensor of fewer
     *   than 2 dims, with the adamw_* fields below; and every tensor of a group whose config
     *   has algo GOPT_ALGO_ADAMW (gopt_optim_set_group_config), with that config's lr, betas,
     *   eps, weight_decay. Refused: momentum outside [0, 1), ns_steps outside [0, 100), eps
     *   <= 0, non-finite coefficients; at create, a tensor of fewer than 2 dims without the
     *   fallback, and an arena that leaves Muon no tensor. See src/optim/muon.c. */
    GOPT_ALGO_MUON,
    /* Adafactor  torch.optim.Adafactor of PyTorch 2.5+
     *   https://pytorch.org/docs/stable/generated/torch.optim.Adafactor.html
     *   per tensor: w = t^beta2_decay;  rho = min(lr, 1/sqrt(t));
     *   alpha = max(eps2, RMS(p)) * rho;  p *= 1 - lr*wd (decoupled);
     *   >= 2 dims, factored over the last two (R, C): row = lerp(row, mean_j g^2, w),
     *   col = lerp(col, mean_i g^2, w), V = row*col / max(mean_i row, eps1);
     *   1-D: V = v = lerp(v, g^2, w);  U = g / sqrt(max(V, eps1^2));
     *   p -= alpha / max(1, RMS(U)/d) * U.  eps is eps1 (PyTorch's None = 2^-23, the
     *   default here), eps2 (1e-3), clip_threshold is d (1.0). State: row and column factors
     *   only for a tensor of 2+ dims (R + C floats per matrix), a full variance for vectors.
     *   Refused: beta2_decay > 0, eps2 < 0, clip_threshold < 1, eps <= 0 (PyTorch allows
     *   eps1 = 0, which gives 0/0 for a zero gradient row). See src/optim/adafactor.c. */
    GOPT_ALGO_ADAFACTOR,
    GOPT_ALGO_COUNT
} gopt_algo;

/* Every hyperparameter of every algorithm, named as in torch.optim. Fields an algorithm
 * does not use are ignored. Start from gopt_optim_config_default(algo), which holds
 * PyTorch 1.13's defaults for that algorithm, and override with designated fields. */
/* Muon's adjust_lr_fn: the LR ratio for a (rows, cols) matrix. */
typedef enum gopt_muon_adjust_lr {
    GOPT_MUON_ADJUST_ORIGINAL = 0,    /* sqrt(max(1, rows/cols)) (Keller Jordan's; PyTorch's None) */
    GOPT_MUON_ADJUST_MATCH_RMS_ADAMW  /* 0.2*sqrt(max(rows, cols)) (Moonshot's) */
} gopt_muon_adjust_lr;

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
    /* epsilon of every algorithm that has one. PyTorch refuses eps < 0; we also refuse
     * eps == 0 for every algorithm (Adagrad and Adadelta included) because each of them
     * divides 0 by 0 for a zero gradient when eps is 0. */
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
    /* L1 regularisation, coupled, for every algorithm: g += l1*sign(p) (sign(0) = 0) before
     * anything else (after maximize's g = -g, before weight_decay's coupled g += wd*p).
     * Neither PyTorch nor Keras optimizers have it (Keras puts L1 in the loss as a layer
     * regularizer, which gives the same gradient). Default 0; refused: < 0 or not finite. */
    float l1;
    /* Schedule-Free (GOPT_ALGO_*_SCHEDULEFREE): linear warmup steps (>= 0), the average's
     * polynomial weighting power r, and weight_lr_power (>= 0). */
    int warmup_steps;
    float r;
    float weight_lr_power;
    /* Muon (GOPT_ALGO_MUON) */
    int ns_steps;                    /* Newton-Schulz iterations, 5 */
    float ns_coefficients[3];        /* a, b, c: (3.4445, -4.775, 2.0315) */
    gopt_muon_adjust_lr adjust_lr_fn; /* GOPT_MUON_ADJUST_ORIGINAL */
    /* Muon's AdamW fallback for tensors of fewer than 2 dims (biases, norms): 1 (default)
     * sends them to AdamW with lr = group lr * adamw_lr_ratio (so schedules move both),
     * betas (beta1, beta2), eps adamw_eps and weight decay adamw_weight_decay (AdamW's
     * defaults: ratio 1, 1e-8, 0.01); 0 refuses them at create, as torch.optim.Muon does. */
    int muon_adamw_1d;
    float adamw_lr_ratio, adamw_eps, adamw_weight_decay;
    /* Adafactor (GOPT_ALGO_ADAFACTOR); eps is its eps1 */
    float beta2_decay;               /* -0.8 */
    float eps2;                      /* 1e-3 */
    float clip_threshold;            /* torch's d, 1.0 */
} gopt_optim_config;

typedef struct gopt_optim gopt_optim;

GOPT_API gopt_optim_config gopt_optim_config_default(gopt_algo algo);

/* "sgd", "adagrad", "rmsprop", "adam", "adamw", "adadelta", "nadam", "radam", "adamax",
 * "lion", "lamb", "adamw_schedulefree", "sgd_schedulefree", "muon", "adafactor"; NULL for an
 * unknown value. */
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
/* An optimizer that updates only [begin, end) of the arena, with state buffers of
 * end - begin floats: one rank's slice under ZeRO stage 1 (gradopt/dist.h), the rest of
 * the arena left as it is. Every group keeps its hyperparameters and LR (schedulers work
 * unchanged). begin and end must be multiples of 16 (or end == numel), 0 <= begin <= end
 * <= numel. Its state blob holds the slice; gopt_optim_state_load also takes the state of
 * a whole-arena optimizer of the same config and loads its slice. Not for LAMB (per-tensor
 * trust ratios) unless the range is the whole arena. Errors: as create; GOPT_ERANGE
 * (range), GOPT_EINVAL (LAMB). */
GOPT_API gopt_status gopt_optim_create_range(const gopt_optim_config *cfg, gopt_params *params, int64_t begin,
                                             int64_t end, gopt_optim **out);
/* The range an optimizer updates ([0, numel) unless made by gopt_optim_create_range). */
GOPT_API void gopt_optim_range(const gopt_optim *opt, int64_t *begin, int64_t *end);

/* One update of every parameter from the arena's gradients. Allocates nothing.
 * Errors: GOPT_EINVAL (NULL), GOPT_ESTATE (a Schedule-Free optimizer in eval mode: call
 * gopt_optim_train first). Non-finite gradients are not checked here (that is the
 * monitor's job, before the step); they propagate as PyTorch's would. */
GOPT_API gopt_status gopt_optim_step(gopt_optim *opt);

/* Train and eval modes (schedule_free's optimizer.train() / optimizer.eval()). For the
 * Schedule-Free algorithms the arena holds y in train mode (where gradients are taken) and
 * x, the point to evaluate, in eval mode: gopt_optim_eval writes x = lerp(y, z, 1-1/b1)
 * into the arena (one pass; y is kept in the optimizer's state), gopt_optim_train puts y
 * back bit for bit. Call eval before evaluating (and before recalibrating BatchNorm with
 * gopt_net_recalibrate_bn) and before saving a checkpoint meant for inference; call train
 * before the next step. Both are idempotent; before the first step they only change the
 * mode (there is no z yet). The mode is saved in the state blob (a checkpoint taken in eval
 * mode resumes in eval mode, with the arena holding x). The values of the arena in eval
 * mode are for evaluation: gopt_optim_train restores y and discards changes made to x.
 * A Schedule-Free optimizer is created in train mode (schedule_free 1.3 creates it in eval
 * mode and refuses the first step until .train(): before the first step both modes hold the
 * same weights, so we start where the step can run). A range optimizer (ZeRO-1) switches
 * its slice only. For every other algorithm both calls return GOPT_OK and change nothing
 * (there is one set of weights): the mode stays train, and trainers may call them
 * unconditionally. Errors: GOPT_EINVAL (NULL). */
GOPT_API gopt_status gopt_optim_train(gopt_optim *opt);
GOPT_API gopt_status gopt_optim_eval(gopt_optim *opt);
/* 1 in eval mode (only ever for a Schedule-Free optimizer), 0 otherwise or for NULL. */
GOPT_API int gopt_optim_in_eval_mode(const gopt_optim *opt);

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

/* Replace every hyperparameter of one group (PyTorch's param_group dict, any key), e.g.
 * a group with its own dampening or amsgrad. cfg->algo must be the optimizer's (or, for
 * Muon, GOPT_ALGO_ADAMW: the group's tensors run AdamW with cfg's lr, betas, eps and
 * weight_decay; refused with GOPT_ESTATE for amsgrad, or when the optimizer was created with
 * muon_adamw_1d = 0 (no exp_avg_sq), and with GOPT_EINVAL when it would leave Muon no
 * tensor); cfg->lr
 * becomes the current LR (and the initial LR before the first step); the lookahead fields
 * are ignored (they are global). Validated as create does. Options that need a state
 * buffer the optimizer did not allocate at create (SGD/RMSprop momentum > 0, RMSprop
 * centered, amsgrad) are refused with GOPT_ESTATE: create with a config (or group
 * override) that needs them. Errors: GOPT_EINVAL, GOPT_ERANGE (group), GOPT_ESTATE. */
GOPT_API gopt_status gopt_optim_set_group_config(gopt_optim *opt, int group, const gopt_optim_config *cfg);

/* State (see params.h for the convention): algorithm, step count, per-group current LR
 * and hyperparameters, and every state buffer. Load requires the same algorithm and an
 * arena of the same size and group count; a loaded optimizer continues bit-identically. */
GOPT_API size_t gopt_optim_state_size(const gopt_optim *opt);
GOPT_API gopt_status gopt_optim_state_save(const gopt_optim *opt, void *buf, size_t size);
GOPT_API gopt_status gopt_optim_state_load(gopt_optim *opt, const void *buf, size_t size);

/* ---- weight averaging: torch.optim.swa_utils.AveragedModel over the arena ---------------
 * https://pytorch.org/docs/1.13/optim.html#stochastic-weight-averaging (src/optim/average.c)
 * An average of every value of the arena, updated after optimizer steps (every step for an
 * EMA, every epoch from swa_start for SWA, as the caller decides), in one vectorised pass
 * that allocates nothing:
 *   first update: avg = p (a copy);
 *   SWA: avg = avg + (p - avg) / (n + 1)  (n updates so far; PyTorch 1.13's default avg_fn);
 *   EMA: avg = decay*avg + (1-decay)*p     (the 1.13 docs' ema_avg; PyTorch 2's
 *        get_ema_multi_avg_fn lerps instead: same value up to rounding).
 * Only the parameters are averaged (AveragedModel's default use_buffers=False): BatchNorm
 * running statistics are recomputed for the averaged weights with gopt_net_recalibrate_bn
 * (update_bn). To evaluate or checkpoint the average: gopt_average_swap puts it in the arena
 * (and the training weights in the average's buffer), a second swap puts them back, bit
 * for bit. The arena must outlive the average. A Schedule-Free optimizer's arena holds y in
 * train mode: average after gopt_optim_eval to average x (what schedule_free recommends
 * evaluating), or y, as you choose; the average does not know. */
typedef enum gopt_average_kind { GOPT_AVERAGE_SWA = 0, GOPT_AVERAGE_EMA = 1 } gopt_average_kind;

typedef struct gopt_average_config {
    gopt_average_kind kind;
    float decay; /* EMA: in [0, 1) (refused otherwise), default 0.999; ignored by SWA */
} gopt_average_config;

typedef struct gopt_average gopt_average;

GOPT_API gopt_average_config gopt_average_config_default(gopt_average_kind kind);
/* Over a finalized arena; allocates the average (numel floats). Errors: GOPT_EINVAL (NULL,
 * kind, EMA decay outside [0, 1) or NaN), GOPT_ESTATE (arena not finalized), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_average_create(const gopt_average_config *cfg, gopt_params *params, gopt_average **out);
GOPT_API void gopt_average_destroy(gopt_average *avg);
/* update_parameters: fold the arena's current values into the average.
 * Errors: GOPT_EINVAL (NULL), GOPT_ESTATE (swapped: the arena holds the average). */
GOPT_API gopt_status gopt_average_update(gopt_average *avg);
/* Updates so far (AveragedModel.n_averaged). */
GOPT_API int64_t gopt_average_count(const gopt_average *avg);
/* The average (numel floats, arena order) while not swapped; the training weights while
 * swapped. NULL for NULL. */
GOPT_API const float *gopt_average_values(const gopt_average *avg);
/* Exchange the arena's values and the average (one pass). Errors: GOPT_EINVAL (NULL),
 * GOPT_ESTATE (no update yet: there is no average). */
GOPT_API gopt_status gopt_average_swap(gopt_average *avg);
/* 1 while the arena holds the average (after an odd number of swaps). */
GOPT_API int gopt_average_swapped(const gopt_average *avg);
/* State: kind, decay, count, the swapped flag and the buffer; load requires the same kind,
 * decay and arena size, and continues bit-identically (a checkpoint taken while swapped
 * resumes swapped, the arena's own state holding the average). Errors: GOPT_EFORMAT. */
GOPT_API size_t gopt_average_state_size(const gopt_average *avg);
GOPT_API gopt_status gopt_average_state_save(const gopt_average *avg, void *buf, size_t size);
GOPT_API gopt_status gopt_average_state_load(gopt_average *avg, const void *buf, size_t size);

GOPT_EXTERN_C_END

#endif /* GRADOPT_OPTIM_H */
