/* gradopt/sched.h: learning-rate schedulers (torch.optim.lr_scheduler, PyTorch 1.13).
 *
 * Usage shape, as in PyTorch: create a scheduler over an optimizer (which sets the LR of
 * epoch 0 in every group, like the PyTorch constructors do), then after every
 * gopt_optim_step call gopt_sched_step (or gopt_sched_step_metric for ReduceLROnPlateau):
 *
 *     gopt_sched_config sc = gopt_sched_config_default(GOPT_SCHED_COSINE);
 *     sc.T_max = 100;
 *     gopt_sched *s; gopt_sched_create(&sc, opt, &s);
 *     for (...) { ...backward...; gopt_optim_step(opt); gopt_sched_step(s); }
 *
 * The scheduler math does not need an optimizer: gopt_sched_create_detached runs the same
 * scheduler over `ngroups` initial LRs, and gopt_sched_get_lr reads the LR of each group.
 *
 * Semantics: every scheduler reproduces PyTorch 1.13's sequence of LRs, including its
 * recursive ("chainable") get_lr forms, computed in double like Python floats. A bound
 * scheduler keeps each group's LR in double and writes it to the optimizer (float); if the
 * optimizer's LR was changed by someone else between steps (e.g. the monitor's LR back-off,
 * or gopt_optim_set_lr), the scheduler adopts the new value first, like PyTorch's chainable
 * schedulers that read group['lr'].
 *  - STEP        lr_e = lr_{e-1} * gamma if e % step_size == 0 (e > 0), else lr_{e-1}.
 *  - MULTISTEP   lr_e = lr_{e-1} * gamma^(count of e in milestones); duplicates count.
 *  - EXPONENTIAL lr_e = lr_{e-1} * gamma.
 *  - COSINE      PyTorch 1.13's recursive form (not the closed form; they differ when the LR
 *                was changed externally, and past T_max the LR rises again):
 *                lr_e = eta_min + (lr_{e-1} - eta_min) * (1 + cos(pi e/T)) / (1 + cos(pi (e-1)/T)),
 *                with lr_{e-1} + (base - eta_min)(1 - cos(pi/T))/2 when (e - 1 - T) % 2T == 0.
 *  - COSINE_WARM_RESTARTS  lr = eta_min + (base - eta_min)(1 + cos(pi T_cur/T_i))/2, T_i
 *                starts at T_0 and is multiplied by T_mult at each restart (Loshchilov &
 *                Hutter 2017, SGDR).
 *  - ONECYCLE    Smith & Topin 2018. Sets initial_lr = max_lr/div_factor at construction
 *                (the LR of epoch 0), min_lr = initial_lr/final_div_factor; phases
 *                [0, pct*T-1] initial->max, then max->min ending at T-1 (three_phase: max->
 *                initial ending at 2*pct*T-2, then initial->min). Annealing cos or linear.
 *                Stepping more than total_steps times returns GOPT_ESTATE (PyTorch raises).
 *                After step total_steps (the last one of the usual loop; no optimizer step
 *                uses its value) see "End of a schedule" below.
 *                cycle_momentum (default 1, as PyTorch) also cycles momentum (or beta1)
 *                max_momentum -> base_momentum -> max_momentum through
 *                gopt_optim_set_momentum; it requires an algorithm that has one.
 *  - LINEAR      factor from start_factor to end_factor over total_iters (recursive form).
 *  - CONSTANT    lr * factor until total_iters, then lr / factor.
 *  - POLYNOMIAL  lr_e = lr_{e-1} * ((1 - e/T)/(1 - (e-1)/T))^power for 0 < e <= T.
 *                power >= 0 (PyTorch accepts power < 0 and raises ZeroDivisionError at
 *                e = T, where the LR would be infinite; we refuse it at create).
 *  - LAMBDA      lr = initial_lr * lambda(user, group, e): the user's callback.
 *  - SEQUENTIAL  children[i] runs from milestones[i-1]; at a milestone the new child is
 *                stepped with PyTorch's step(0), i.e. its closed form at epoch 0 (= its
 *                base LR for most). At construction the LR is reset to initial_lr and only
 *                children[0] makes its initial step (SequentialLR's behaviour).
 *                Beyond PyTorch (its issue #68978): a child may be PLATEAU, e.g. a linear
 *                warmup for W steps then ReduceLROnPlateau (milestones = {W}). When the
 *                plateau child takes over it starts fresh (best, counters) from the group's
 *                initial LR, and the metric of that step is its first observation.
 *  - CHAINED     every child steps in turn on the same LRs (ChainedScheduler).
 *  - PLATEAU     ReduceLROnPlateau: better = a < best*(1-threshold) (min, rel), a < best -
 *                threshold (min, abs), a > best*(1+threshold) (max, rel), a > best +
 *                threshold (max, abs); otherwise a bad epoch. During cooldown bad epochs are
 *                ignored. When num_bad_epochs > patience (strictly): new = max(lr*factor,
 *                min_lr[g]) is applied only if lr - new > eps, then cooldown restarts.
 *                A NaN metric counts as a bad epoch (as in PyTorch).
 *  - SWALR       torch.optim.swa_utils.SWALR (PyTorch 1.13), for the stochastic weight
 *                averaging phase (gradopt/optim.h, gopt_average): anneals each group's LR to
 *                swa_lr over anneal_epochs steps, then holds it. Its recursive form, from the
 *                current LR: s = step_count - 1 (0 at construction; max(1, s) when
 *                anneal_epochs = 0), A = max(1, anneal_epochs), f(t) = (1 - cos(pi t))/2
 *                (cos) or t (linear), clamp to [0, 1]:
 *                  a' = f(clamp((s-1)/A)), prev = swa_lr if a' == 1 else (lr - a' swa_lr)/(1 - a'),
 *                  a = f(clamp(s/A)), lr = swa_lr a + prev (1 - a).
 *                Its base LR is whatever the group's LR is when it takes over (so it composes
 *                in a SEQUENTIAL after the main schedule, the usual SWA recipe: at the
 *                milestone it starts from that LR). A value < 0 (only when the LR was changed
 *                outside to below a' swa_lr) becomes swa_lr (see "End of a schedule").
 *
 * End of a schedule. A schedule is sized as PyTorch users size it: total_steps (OneCycle)
 * or total_iters is the number of optimizer steps, and the loop steps the scheduler after
 * each of them, so the last scheduler step computes an LR that no optimizer step uses.
 * Where that value lies outside what the optimizer accepts (LR finite and >= 0, momentum
 * in [0, 1)) PyTorch stores it anyway; gopt_sched_step must not fail there. The rule,
 * for every value of every group and at every step: the LR (and momentum) is PyTorch's
 * value when the optimizer accepts it, otherwise the final value of the schedule that
 * computed it. In PyTorch such values come from extrapolating past the end, and in one
 * composition mid-run (COSINE below), never from a schedule used as documented.
 *  - ONECYCLE, anneal linear: step total_steps extrapolates the last phase one step past
 *    its end (epoch total_steps - 1). PyTorch's LR there is min_lr - (lr_start - min_lr) /
 *    (phase length), negative for the usual factors (max_lr 0.01, total_steps 20, pct_start 0.25:
 *    PyTorch -0.000666624); it becomes min_lr = max_lr / div_factor / final_div_factor
 *    (4e-8 there). The momentum extrapolates past max_momentum (0.85 + 0.1 * 16/15 =
 *    0.95667 there): kept while < 1, else max_momentum. Cos annealing stays between its
 *    phase's end values, so PyTorch's value is always kept.
 *  - LINEAR with end_factor 0: the last factor is 1 - x/x' where x' equals x only up to
 *    rounding; PyTorch ends about a third of such schedules at about -1e-18 (start_factor
 *    0.37, total_iters 199: -4.9e-18). Such a value becomes base_lr * end_factor (0).
 *  - POLYNOMIAL ends at 0 for power > 0 (and stays at the LR for power 0).
 *  - COSINE alone stays between eta_min and the base LR, its recursion past T_max included
 *    (it rises again: the cyclic case). In a CHAINED after a scheduler that took the LR
 *    below eta_min (e.g. STEP, then COSINE with eta_min 1e-4), the rising half multiplies
 *    (lr - eta_min) < 0 by a ratio > 1 and overshoots below 0: PyTorch then steps with a
 *    negative LR (gradient ascent). Such a value becomes eta_min.
 *  - The others cannot leave the range: STEP, MULTISTEP, EXPONENTIAL and CONSTANT scale
 *    by factors >= 0; COSINE_WARM_RESTARTS is a closed form between eta_min and the base
 *    LR; PLATEAU only lowers, to min_lr at most. A LAMBDA LR is the user's: a negative or non-finite
 *    value is the optimizer's error (GOPT_EINVAL from gopt_optim_set_lr).
 * Past the end: ONECYCLE returns GOPT_ESTATE (as PyTorch raises); LINEAR, CONSTANT and
 * POLYNOMIAL keep their final LR; the others continue their formula, as PyTorch's.
 *
 * Skipped steps (gradopt/monitor.h): step the scheduler on every iteration, skipped or
 * not, as a PyTorch loop with GradScaler does (scaler.step(optimizer) skips the update,
 * scheduler.step() still runs): the schedule counts iterations, so it ends where it was
 * sized to end and its LRs line up with PyTorch's run.
 *
 * Errors: create validates the config (and every child's) and returns GOPT_EINVAL naming
 * the field, e.g. "gopt_sched_create: children[1].T_max = 0 must be >= 1". */
#ifndef GRADOPT_SCHED_H
#define GRADOPT_SCHED_H

#include "optim.h"

GOPT_EXTERN_C_BEGIN

typedef enum gopt_sched_kind {
    GOPT_SCHED_STEP = 0,
    GOPT_SCHED_MULTISTEP,
    GOPT_SCHED_EXPONENTIAL,
    GOPT_SCHED_COSINE,
    GOPT_SCHED_COSINE_WARM_RESTARTS,
    GOPT_SCHED_ONECYCLE,
    GOPT_SCHED_LINEAR,
    GOPT_SCHED_CONSTANT,
    GOPT_SCHED_POLYNOMIAL,
    GOPT_SCHED_LAMBDA,
    GOPT_SCHED_SEQUENTIAL,
    GOPT_SCHED_CHAINED,
    GOPT_SCHED_PLATEAU,
    GOPT_SCHED_SWALR,
    GOPT_SCHED_KIND_COUNT
} gopt_sched_kind;

typedef enum gopt_plateau_mode { GOPT_PLATEAU_MIN = 0, GOPT_PLATEAU_MAX = 1 } gopt_plateau_mode;
typedef enum gopt_threshold_mode { GOPT_THRESHOLD_REL = 0, GOPT_THRESHOLD_ABS = 1 } gopt_threshold_mode;
typedef enum gopt_anneal { GOPT_ANNEAL_COS = 0, GOPT_ANNEAL_LINEAR = 1 } gopt_anneal;

#define GOPT_SCHED_MAX_MILESTONES 32
#define GOPT_SCHED_MAX_CHILDREN 8
#define GOPT_SCHED_MAX_DEPTH 4 /* nesting of sequential/chained */

/* Multiplicative factor of LambdaLR for `group` at `epoch` (>= 0). */
typedef double (*gopt_sched_lambda_fn)(void *user, int group, int64_t epoch);

/* One struct for every kind, fields named as in torch.optim.lr_scheduler; a kind ignores
 * the fields it does not use. Start from gopt_sched_config_default(kind): PyTorch's
 * defaults for that kind (required arguments without a default get a usable value:
 * gamma 0.1, T_max 10, max_lr 0.1, total_steps 100). Pointers (children, min_lrs,
 * max_lrs, lambda_user) are read during create only, except lambda_user which is passed to
 * the callback and must outlive the scheduler. */
typedef struct gopt_sched_config gopt_sched_config;
struct gopt_sched_config {
    gopt_sched_kind kind;
    /* STEP: step_size >= 1; STEP/MULTISTEP/EXPONENTIAL: gamma >= 0 */
    int64_t step_size;
    double gamma;
    /* MULTISTEP milestones (any order, duplicates compound); SEQUENTIAL milestones
     * (strictly increasing, >= 1, exactly n_children - 1 of them) */
    int64_t milestones[GOPT_SCHED_MAX_MILESTONES];
    int n_milestones;
    /* COSINE: T_max >= 1; COSINE/WARM_RESTARTS: eta_min >= 0 */
    int64_t T_max;
    double eta_min;
    /* COSINE_WARM_RESTARTS: T_0 >= 1, T_mult >= 1 */
    int64_t T_0, T_mult;
    /* ONECYCLE: max_lr > 0 (or max_lrs[n_max_lrs], one per group), total_steps >= 1,
     * pct_start in [0, 1], div_factor > 0, final_div_factor > 0, momenta in [0, 1) */
    double max_lr;
    const double *max_lrs;
    int n_max_lrs;
    int64_t total_steps;
    double pct_start;
    gopt_anneal anneal_strategy;
    double div_factor, final_div_factor;
    int three_phase;
    int cycle_momentum;
    double base_momentum, max_momentum;
    /* LINEAR: start_factor in (0, 1], end_factor in [0, 1]; CONSTANT: factor in (0, 1];
     * LINEAR/CONSTANT/POLYNOMIAL: total_iters >= 1; POLYNOMIAL: power finite */
    double start_factor, end_factor;
    int64_t total_iters;
    double factor; /* CONSTANT's factor, and PLATEAU's factor in [0, 1) */
    double power;
    /* LAMBDA */
    gopt_sched_lambda_fn lr_lambda;
    void *lambda_user;
    /* SEQUENTIAL / CHAINED: 1..GOPT_SCHED_MAX_CHILDREN children (copied at create) */
    const gopt_sched_config *children;
    int n_children;
    /* PLATEAU: patience >= 0, cooldown >= 0, threshold >= 0, min_lr >= 0 (or min_lrs,
     * one per group), eps >= 0 */
    gopt_plateau_mode mode;
    gopt_threshold_mode threshold_mode;
    double threshold;
    int64_t patience, cooldown;
    double min_lr;
    const double *min_lrs;
    int n_min_lrs;
    double eps;
    /* SWALR: swa_lr finite and >= 0 (or swa_lrs, one per group), anneal_epochs >= 0,
     * anneal_strategy (above) cos or linear. Defaults: swa_lr 0.05 (PyTorch requires it),
     * anneal_epochs 10, cos. */
    double swa_lr;
    const double *swa_lrs;
    int n_swa_lrs;
    int64_t anneal_epochs;
};

typedef struct gopt_sched gopt_sched;

GOPT_API gopt_sched_config gopt_sched_config_default(gopt_sched_kind kind);
/* "step", "multistep", "exponential", "cosine", "cosine_warm_restarts", "onecycle",
 * "linear", "constant", "polynomial", "lambda", "sequential", "chained", "plateau", "swalr";
 * NULL for an unknown kind. */
GOPT_API const char *gopt_sched_kind_name(gopt_sched_kind kind);
GOPT_API gopt_status gopt_sched_kind_from_name(const char *name, gopt_sched_kind *out);

/* Create over an optimizer (which must outlive the scheduler): the base LRs are the
 * optimizer's initial LRs (gopt_optim_initial_lr), and the LR of epoch 0 is written to
 * every group now. Errors: GOPT_EINVAL (config field, or cycle_momentum with an
 * algorithm without momentum), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_sched_create(const gopt_sched_config *cfg, gopt_optim *opt, gopt_sched **out);
/* The same scheduler without an optimizer, over ngroups >= 1 groups whose initial LRs are
 * initial_lrs[ngroups] (finite, >= 0). Read the LRs with gopt_sched_get_lr. */
GOPT_API gopt_status gopt_sched_create_detached(const gopt_sched_config *cfg, int ngroups,
                                                const double *initial_lrs, gopt_sched **out);
GOPT_API void gopt_sched_destroy(gopt_sched *s);

/* One scheduler step (after the optimizer step). Allocates nothing.
 * Errors: GOPT_ESTATE (the scheduler contains a PLATEAU: use gopt_sched_step_metric;
 * ONECYCLE stepped past total_steps), errors of gopt_optim_set_lr/set_momentum.
 * On GOPT_ESTATE the scheduler is unchanged. */
GOPT_API gopt_status gopt_sched_step(gopt_sched *s);
/* One step with a metric (e.g. validation loss), for schedulers containing a PLATEAU.
 * Other children of a SEQUENTIAL/CHAINED ignore the metric.
 * Errors: GOPT_ESTATE (no PLATEAU in this scheduler; ONECYCLE past total_steps). */
GOPT_API gopt_status gopt_sched_step_metric(gopt_sched *s, double metric);

/* 1 if the scheduler needs gopt_sched_step_metric (it contains a PLATEAU). */
GOPT_API int gopt_sched_needs_metric(const gopt_sched *s);
/* LR of `group` after the last step (get_last_lr), in double; NAN for a bad group. */
GOPT_API double gopt_sched_get_lr(const gopt_sched *s, int group);
/* Momentum set by ONECYCLE with cycle_momentum for `group`; NAN if none. */
GOPT_API double gopt_sched_get_momentum(const gopt_sched *s, int group);
/* Steps taken since create (the top-level last_epoch). */
GOPT_API int64_t gopt_sched_last_epoch(const gopt_sched *s);
GOPT_API int gopt_sched_group_count(const gopt_sched *s);

/* State (params.h convention): every counter, LR and plateau best of the whole tree.
 * Load requires a scheduler created from the same kinds (tree shape) over the same group
 * count; a loaded scheduler continues the identical LR sequence. A bound scheduler also
 * writes the loaded LRs (and momenta) to its optimizer. */
GOPT_API size_t gopt_sched_state_size(const gopt_sched *s);
GOPT_API gopt_status gopt_sched_state_save(const gopt_sched *s, void *buf, size_t size);
GOPT_API gopt_status gopt_sched_state_load(gopt_sched *s, const void *buf, size_t size);

GOPT_EXTERN_C_END

#endif /* GRADOPT_SCHED_H */
