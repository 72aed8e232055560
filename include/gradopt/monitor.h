/* gradopt/monitor.h: training-stability instruments around the optimizer step.
 *
 * One monitor watches a parameter arena (and optionally the optimizer stepping it):
 *
 *     gopt_monitor_report rep;
 *     gopt_monitor_before_step(mon, loss, &rep);  // after backward, before clip/step
 *     if (rep.apply) { gopt_clip_grad_norm(...); gopt_optim_step(opt);
 *                      gopt_monitor_after_step(mon); }
 *     gopt_sched_step(s);                         // skipped or not: see below
 *     gopt_optim_zero_grad(opt);
 *
 * "Do I step the scheduler on a skipped step?" Yes: step it on every iteration, as a PyTorch
 * loop with GradScaler does (scaler.step(optimizer) skips optimizer.step() when it finds an
 * Inf/NaN; scheduler.step() runs regardless). A schedule counts iterations (OneCycle's
 * total_steps = epochs * batches), so stepping it on skips makes it end where it was sized
 * to end and keeps every LR where PyTorch's run has it; not stepping would leave it behind
 * by the number of skips. The optimizer's own step count (Adam's bias corrections,
 * Lookahead's k) does not advance on a skip, as in PyTorch. With nonfinite_lr_backoff < 1
 * the back-off multiplies the current LR; chainable schedulers continue from the lowered LR,
 * closed-form ones (ONECYCLE, COSINE_WARM_RESTARTS, LAMBDA) overwrite it at their next step,
 * as PyTorch's would. ReduceLROnPlateau is stepped with its metric (e.g. per epoch), as
 * before. tests/trajectory checks this loop against PyTorch's (monitor_skip_* cases).
 *
 * before_step reads the gradients once: per-tensor L2 norms, per-layer ones (below) and the
 * global L2 norm (sqrt of the sum of the per-tensor sums of squares, in arena order
 * whatever the grouping), non-finite gradients (NaN/Inf in
 * any element), a non-finite loss, and the non-finite input elements counted by
 * gopt_monitor_check_input since the last before_step. It then decides whether the step should be applied
 * and says so in the report (PyTorch users cannot tell whether a step was skipped, e.g.
 * by GradScaler: pytorch#44511):
 *  - non-finite gradient, loss or input: skipped when skip_nonfinite (default), counted, and when
 *    nonfinite_lr_backoff < 1 every group's LR is multiplied by it (gopt_optim_set_lr).
 *  - loss spike: z = (loss - mean) / std over the last loss_window losses of applied steps
 *    (population std), judged once loss_min_samples are there; z > spike_zscore is a
 *    spike (upward only), skipped when skip_spikes, else only flagged.
 *  - explosion: grad_norm > explosion_factor * the mean of the previous explosion_window
 *    finite global norms (at least 2 of them). Flag only.
 *  - vanishing: grad_norm < vanishing_floor. Flag only.
 *  - frozen tensors (gopt_params_set_frozen) are not read: their gradients count 0 in every
 *    norm (as in clipping), and a layer whose tensors are all frozen is never flagged.
 *  - vanishing layers: a layer's grad norm < layer_vanishing_ratio x the largest layer's
 *    (judged only when every layer's norm is finite). Flag only; report.vanishing_layers
 *    counts them, gopt_monitor_layer_stats says which.
 * When the step is applied and track_updates is set, the parameters are copied into a
 * buffer allocated at create; after_step then computes per tensor ||w_new - w_old||
 * (the update, = ||lr * direction|| of the step), ||w_new|| and their ratio (update /
 * parameter norm; ~1e-3 is the usual healthy range for SGD/Adam).
 * Nothing is allocated after create. Rows can be exported to CSV or JSON Lines: to a
 * FILE* of the caller's, or appended to a path (the library never prints by itself).
 *
 * Threads: the gradient pass uses the library's deterministic norm reduction
 * (see clip.h); results do not depend on the thread count. */
#ifndef GRADOPT_MONITOR_H
#define GRADOPT_MONITOR_H

#include <stdio.h>

#include "optim.h"

GOPT_EXTERN_C_BEGIN

typedef struct gopt_monitor_config {
    int history;                 /* global grad-norm history length, >= 1 (1000) */
    int loss_window;             /* losses used for the z-score, >= 2 (100) */
    int loss_min_samples;        /* in [2, loss_window] (20) */
    double spike_zscore;         /* > 0 (6.0) */
    int skip_spikes;             /* 1: skip spiking steps (0: flag only) */
    int skip_nonfinite;          /* 1: skip steps with a NaN/Inf gradient, loss or input (1) */
    double nonfinite_lr_backoff; /* in (0, 1]: LR factor on each non-finite skip; < 1 needs an optimizer (1.0) */
    int explosion_window;        /* >= 2 (50) */
    double explosion_factor;     /* > 1 (10.0) */
    double vanishing_floor;      /* >= 0 (1e-8) */
    int track_updates;           /* 1: update/parameter ratios (one arena-sized buffer) (1) */
    double layer_vanishing_ratio; /* >= 0: a layer whose gradient norm is below this times the
                                     largest layer's is flagged vanishing (1e-4; 0: off) */
    int layer_history;           /* per-layer grad-norm history length, >= 0 (0: none) */
} gopt_monitor_config;

GOPT_API gopt_monitor_config gopt_monitor_config_default(void);

/* What before_step found and decided. */
typedef struct gopt_monitor_report {
    int64_t step;        /* 0-based index of this before_step call */
    int apply;           /* 1: take the optimizer step; 0: skip it (and zero the gradients) */
    int nonfinite_grad;  /* a gradient element is NaN or Inf */
    int nonfinite_loss;  /* the loss is NaN or Inf */
    int spike;           /* loss z-score above spike_zscore */
    int explosion;
    int vanishing;
    double loss;
    double zscore;       /* NAN until loss_min_samples losses were seen */
    double grad_norm;    /* global L2 norm (Inf/NaN when nonfinite_grad) */
    int vanishing_layers; /* layers flagged vanishing this step (see gopt_monitor_layer) */
    int64_t nonfinite_input; /* NaN/Inf input elements reported by gopt_monitor_check_input
                                since the previous before_step (0: none, or not checked) */
} gopt_monitor_report;

/* Per tensor, from the last before_step (grad) and after_step (param, update). */
typedef struct gopt_monitor_tensor {
    double grad_norm, param_norm, update_norm, update_ratio; /* NAN if not measured */
} gopt_monitor_tensor;

typedef struct gopt_monitor_counts {
    int64_t steps;             /* before_step calls */
    int64_t applied;
    int64_t skipped_nonfinite;
    int64_t skipped_spike;
    int64_t nonfinite_grad, nonfinite_loss, spikes, explosions, vanishing;
    int64_t lr_backoffs;
    int64_t nonfinite_input;   /* steps whose input held a NaN/Inf (gopt_monitor_check_input) */
} gopt_monitor_counts;

typedef enum gopt_monitor_format { GOPT_MONITOR_CSV = 0, GOPT_MONITOR_JSONL = 1 } gopt_monitor_format;

typedef struct gopt_monitor gopt_monitor;

/* Over a finalized arena; opt (may be NULL) is the optimizer stepping it, used for the LR
 * back-off and the LR column. Both must outlive the monitor.
 * Errors: GOPT_EINVAL naming the config field, GOPT_ESTATE (arena not finalized, or opt
 * over another arena), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_monitor_create(const gopt_monitor_config *cfg, gopt_params *params, gopt_optim *opt,
                                         gopt_monitor **out);
GOPT_API void gopt_monitor_destroy(gopt_monitor *m);

/* Inspect the gradients and the loss of this step; report (not NULL) says whether to step.
 * Errors: GOPT_EINVAL (NULL), errors of gopt_optim_set_lr during a back-off. */
GOPT_API gopt_status gopt_monitor_before_step(gopt_monitor *m, double loss, gopt_monitor_report *report);
/* Count the non-finite elements (NaN, +Inf, -Inf) of this step's input: x[0..n), e.g. the
 * float batch given to gopt_net_forward. Call it after the forward (or before), as often as
 * the step has float inputs (micro-batches, several tensors: the counts add up), then call
 * before_step, which reports the total in report.nonfinite_input, counts the step in
 * counts.nonfinite_input, and treats it as a non-finite gradient: skipped when
 * skip_nonfinite (counted in skipped_nonfinite, with the LR back-off), and its grad norm
 * kept out of the history and explosion window. The step is skipped even when the loss
 * and the gradients came out finite: a NaN can be swallowed (our relu maps it to 0, a
 * max-pool in floor mode never reads the last rows and columns of an odd-sized input, a
 * dropout mask zeroes it), and a corrupt batch would otherwise train silently. Each before_step starts a new count. Data-parallel
 * (gopt_dist_attach_monitor): every rank checks its own batch and the counts are summed
 * over the ranks before the decision, so the ranks skip together; call check_input on
 * every rank or on none. One read pass over x, nothing allocated, no effect on the
 * gradients. Token ids (gopt_net_forward_tokens) are integers and need no check.
 * Errors: GOPT_EINVAL (m NULL, x NULL with n > 0). */
GOPT_API gopt_status gopt_monitor_check_input(gopt_monitor *m, const float *x, size_t n);

/* After an applied optimizer step: per-tensor parameter norms and update ratios.
 * Errors: GOPT_ESTATE (the last before_step did not apply, or after_step was already called). */
GOPT_API gopt_status gopt_monitor_after_step(gopt_monitor *m);

GOPT_API const gopt_monitor_report *gopt_monitor_last_report(const gopt_monitor *m);
GOPT_API gopt_status gopt_monitor_counts_get(const gopt_monitor *m, gopt_monitor_counts *out);
/* Tensor `index` of the arena. Errors: GOPT_ERANGE. */
GOPT_API gopt_status gopt_monitor_tensor_stats(const gopt_monitor *m, int index, gopt_monitor_tensor *out);
/* Global grad-norm history, oldest first: copies min(max, available) values into out and
 * sets *n. */
GOPT_API gopt_status gopt_monitor_grad_norm_history(const gopt_monitor *m, double *out, int max, int *n);

/* Per-layer view. The net names its parameters "<layer>.<param>" (net.h); the monitor
 * groups consecutive arena tensors whose names share the part before the last '.' into one
 * layer, in arena order (a name without '.' is a layer of its own). Layer 0 is the one
 * nearest the input in a net built front to back, so a plot of grad_norm against the layer
 * index shows gradients vanishing (falling towards layer 0) or exploding. */
typedef struct gopt_monitor_layer {
    const char *name;          /* the shared prefix; valid while the monitor lives */
    int first_tensor, ntensors;
    double grad_norm;          /* L2 over the layer's gradients at the last before_step */
    double param_norm, update_norm, update_ratio; /* after the last after_step (NAN if not measured) */
    int vanishing;             /* grad_norm < layer_vanishing_ratio x the largest layer's at the last before_step */
} gopt_monitor_layer;

GOPT_API int gopt_monitor_layer_count(const gopt_monitor *m);
/* Errors: GOPT_ERANGE (layer), GOPT_EINVAL (NULL). */
GOPT_API gopt_status gopt_monitor_layer_stats(const gopt_monitor *m, int layer, gopt_monitor_layer *out);
/* The layer's grad norms of the last min(layer_history, steps) before_step calls, oldest
 * first: copies up to `max` of the newest into out and sets *n. Errors: GOPT_ERANGE,
 * GOPT_ESTATE (layer_history is 0). */
GOPT_API gopt_status gopt_monitor_layer_history(const gopt_monitor *m, int layer, double *out, int max, int *n);

/* Export the last step as one row: columns step, applied, loss, zscore, grad_norm, lr
 * (group 0; empty without an optimizer), the five flags, then per tensor
 * <name>.grad_norm, <name>.param_norm, <name>.update_ratio, then nonfinite_input (the
 * report's count; JSON Lines: a key after "tensors"). CSV writes the header line
 * first when header is 1. Errors: GOPT_EIO (write failed), GOPT_ESTATE (no step yet). */
GOPT_API gopt_status gopt_monitor_write_row(const gopt_monitor *m, FILE *f, gopt_monitor_format fmt, int header);
/* Append the last row to `path` (CSV: with a header line if the file is empty or new).
 * Errors: GOPT_EIO naming the path. */
GOPT_API gopt_status gopt_monitor_append_row(const gopt_monitor *m, const char *path, gopt_monitor_format fmt);

/* State (params.h convention): counters, loss window, norm history, explosion window and
 * the per-layer grad-norm history (layer_history > 0). Load requires the same config sizes,
 * tensor count and layer count; a blob saved before the layer history was kept ("MON1")
 * still loads and leaves the layer history empty, and one saved before non-finite inputs
 * were counted ("MON1", "MON2") loads with counts.nonfinite_input 0. */
GOPT_API size_t gopt_monitor_state_size(const gopt_monitor *m);
GOPT_API gopt_status gopt_monitor_state_save(const gopt_monitor *m, void *buf, size_t size);
GOPT_API gopt_status gopt_monitor_state_load(gopt_monitor *m, const void *buf, size_t size);

GOPT_EXTERN_C_END

#endif /* GRADOPT_MONITOR_H */
