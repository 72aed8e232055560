/* Learning-rate schedulers (see gradopt/sched.h): PyTorch 1.13's torch.optim.lr_scheduler,
 * computed in double in the same order of operations as its Python code. */
#include <stdio.h>

#include "gradopt/sched.h"
#include "core/common.h"
#include "optim/sched.h"

#ifndef M_PI
#  define M_PI 3.14159265358979323846
#endif

#define SCHED_MAGIC GOPT__MAGIC('S', 'C', 'H', '1')

/* OneCycle per-group values, in the order PyTorch names them on the group. */
enum { OC_INITIAL = 0, OC_MAX, OC_MIN, OC_MAX_MOM, OC_BASE_MOM, OC_COUNT };

typedef struct sched_node {
    gopt_sched_config cfg; /* pointers cleared after create */
    int64_t last_epoch, step_count;
    double *base;          /* base_lrs, one per group */
    int64_t T_i, T_cur;    /* warm restarts */
    double *oc;            /* OneCycle: OC_COUNT per group */
    double phase_end[3];
    int phase_start_lr[3], phase_end_lr[3], phase_start_mom[3], phase_end_mom[3], nphase;
    double best;           /* plateau */
    int64_t num_bad, cooldown_counter;
    double *min_lrs;
    double *swa_lrs;       /* SWALR, one per group */
    struct sched_node *child;
    int nchild;
} sched_node;

struct gopt_sched {
    int ngroups;
    double *initial, *lr, *mom;
    int has_mom, has_plateau;
    sched_node root;
    gopt__sched_target target;
    int bound;
    unsigned char *rollback; /* bound: the state before a load, in case the optimizer refuses it */
    size_t rollback_size;
};

static const char *const kind_names[GOPT_SCHED_KIND_COUNT] = {
    "step", "multistep", "exponential", "cosine", "cosine_warm_restarts", "onecycle", "linear",
    "constant", "polynomial", "lambda", "sequential", "chained", "plateau", "swalr"};

const char *gopt_sched_kind_name(gopt_sched_kind kind) {
    if ((int)kind < 0 || kind >= GOPT_SCHED_KIND_COUNT) return NULL;
    return kind_names[kind];
}

gopt_status gopt_sched_kind_from_name(const char *name, gopt_sched_kind *out) {
    GOPT_CHECK_NULL(name);
    GOPT_CHECK_NULL(out);
    for (int k = 0; k < GOPT_SCHED_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *out = (gopt_sched_kind)k;
            return GOPT_OK;
        }
    return GOPT_FAIL(GOPT_EINVAL, "unknown scheduler kind '%s'", name);
}

gopt_sched_config gopt_sched_config_default(gopt_sched_kind kind) {
    gopt_sched_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.step_size = 1;
    c.gamma = 0.1;
    c.T_max = 10;
    c.eta_min = 0.0;
    c.T_0 = 10;
    c.T_mult = 1;
    c.max_lr = 0.1;
    c.total_steps = 100;
    c.pct_start = 0.3;
    c.anneal_strategy = GOPT_ANNEAL_COS;
    c.div_factor = 25.0;
    c.final_div_factor = 1e4;
    c.three_phase = 0;
    c.cycle_momentum = 1;
    c.base_momentum = 0.85;
    c.max_momentum = 0.95;
    c.start_factor = 1.0 / 3;
    c.end_factor = 1.0;
    c.total_iters = 5;
    c.factor = kind == GOPT_SCHED_PLATEAU ? 0.1 : 1.0 / 3;
    c.power = 1.0;
    c.mode = GOPT_PLATEAU_MIN;
    c.threshold_mode = GOPT_THRESHOLD_REL;
    c.threshold = 1e-4;
    c.patience = 10;
    c.cooldown = 0;
    c.min_lr = 0.0;
    c.eps = 1e-8;
    c.swa_lr = 0.05;
    c.anneal_epochs = 10;
    return c;
}

/* ---- validation ---------------------------------------------------------------------- */

#define BAD(path, ...) bad_field(path, __VA_ARGS__)
static gopt_status bad_field(const char *path, const char *fmt, ...) GOPT_PRINTF(2, 3);
static gopt_status bad_field(const char *path, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return gopt__fail(GOPT_EINVAL, "gopt_sched_create", "%s%s", path, msg);
}

static int nonneg(double x) { return isfinite(x) && x >= 0; }

/* Phase ends of OneCycle, as PyTorch computes them. */
static int onecycle_phases(const gopt_sched_config *c, double end[3]) {
    double T = (double)c->total_steps;
    if (c->three_phase) {
        end[0] = c->pct_start * T - 1;
        end[1] = 2 * c->pct_start * T - 2;
        end[2] = T - 1;
        return 3;
    }
    end[0] = c->pct_start * T - 1;
    end[1] = T - 1;
    return 2;
}

static gopt_status validate(const gopt_sched_config *c, const char *path, int depth, int ngroups,
                            int *has_plateau) {
    switch (c->kind) {
    case GOPT_SCHED_STEP:
        if (c->step_size < 1) return BAD(path, "step_size = %lld must be >= 1", (long long)c->step_size);
        if (!nonneg(c->gamma)) return BAD(path, "gamma = %g must be finite and >= 0", c->gamma);
        break;
    case GOPT_SCHED_MULTISTEP:
        if (c->n_milestones < 0 || c->n_milestones > GOPT_SCHED_MAX_MILESTONES)
            return BAD(path, "n_milestones = %d is outside [0, %d]", c->n_milestones, GOPT_SCHED_MAX_MILESTONES);
        for (int i = 0; i < c->n_milestones; i++)
            if (c->milestones[i] < 0) return BAD(path, "milestones[%d] = %lld must be >= 0", i, (long long)c->milestones[i]);
        if (!nonneg(c->gamma)) return BAD(path, "gamma = %g must be finite and >= 0", c->gamma);
        break;
    case GOPT_SCHED_EXPONENTIAL:
        if (!nonneg(c->gamma)) return BAD(path, "gamma = %g must be finite and >= 0", c->gamma);
        break;
    case GOPT_SCHED_COSINE:
        if (c->T_max < 1) return BAD(path, "T_max = %lld must be >= 1", (long long)c->T_max);
        if (!nonneg(c->eta_min)) return BAD(path, "eta_min = %g must be finite and >= 0", c->eta_min);
        break;
    case GOPT_SCHED_COSINE_WARM_RESTARTS:
        if (c->T_0 < 1) return BAD(path, "T_0 = %lld must be >= 1", (long long)c->T_0);
        if (c->T_mult < 1) return BAD(path, "T_mult = %lld must be >= 1", (long long)c->T_mult);
        if (!nonneg(c->eta_min)) return BAD(path, "eta_min = %g must be finite and >= 0", c->eta_min);
        break;
    case GOPT_SCHED_ONECYCLE: {
        if (c->max_lrs) {
            if (c->n_max_lrs != ngroups)
                return BAD(path, "n_max_lrs = %d but there are %d groups", c->n_max_lrs, ngroups);
            for (int g = 0; g < ngroups; g++)
                if (!(isfinite(c->max_lrs[g]) && c->max_lrs[g] > 0))
                    return BAD(path, "max_lrs[%d] = %g must be finite and > 0", g, c->max_lrs[g]);
        } else if (!(isfinite(c->max_lr) && c->max_lr > 0)) {
            return BAD(path, "max_lr = %g must be finite and > 0", c->max_lr);
        }
        if (c->total_steps < 1) return BAD(path, "total_steps = %lld must be >= 1", (long long)c->total_steps);
        if (!(c->pct_start >= 0 && c->pct_start <= 1)) return BAD(path, "pct_start = %g is outside [0, 1]", c->pct_start);
        if (c->anneal_strategy != GOPT_ANNEAL_COS && c->anneal_strategy != GOPT_ANNEAL_LINEAR)
            return BAD(path, "anneal_strategy = %d is neither GOPT_ANNEAL_COS nor GOPT_ANNEAL_LINEAR", (int)c->anneal_strategy);
        if (!(isfinite(c->div_factor) && c->div_factor > 0)) return BAD(path, "div_factor = %g must be > 0", c->div_factor);
        if (!(isfinite(c->final_div_factor) && c->final_div_factor > 0))
            return BAD(path, "final_div_factor = %g must be > 0", c->final_div_factor);
        if (c->cycle_momentum) {
            if (!(c->base_momentum >= 0 && c->base_momentum < 1)) return BAD(path, "base_momentum = %g is outside [0, 1)", c->base_momentum);
            if (!(c->max_momentum >= 0 && c->max_momentum < 1)) return BAD(path, "max_momentum = %g is outside [0, 1)", c->max_momentum);
        }
        double end[3];
        int n = onecycle_phases(c, end);
        double start = 0;
        for (int i = 0; i < n; i++) { /* PyTorch divides by (end - start): ZeroDivisionError */
            if (end[i] == start)
                return BAD(path, "pct_start = %g with total_steps = %lld makes phase %d empty", c->pct_start,
                           (long long)c->total_steps, i);
            start = end[i];
        }
        break;
    }
    case GOPT_SCHED_LINEAR:
        if (!(c->start_factor > 0 && c->start_factor <= 1)) return BAD(path, "start_factor = %g is outside (0, 1]", c->start_factor);
        if (!(c->end_factor >= 0 && c->end_factor <= 1)) return BAD(path, "end_factor = %g is outside [0, 1]", c->end_factor);
        if (c->total_iters < 1) return BAD(path, "total_iters = %lld must be >= 1", (long long)c->total_iters);
        break;
    case GOPT_SCHED_CONSTANT:
        if (!(c->factor > 0 && c->factor <= 1)) return BAD(path, "factor = %g is outside (0, 1]", c->factor);
        if (c->total_iters < 1) return BAD(path, "total_iters = %lld must be >= 1", (long long)c->total_iters);
        break;
    case GOPT_SCHED_POLYNOMIAL:
        if (c->total_iters < 1) return BAD(path, "total_iters = %lld must be >= 1", (long long)c->total_iters);
        if (!nonneg(c->power)) /* PyTorch raises ZeroDivisionError (0^power) at total_iters */
            return BAD(path, "power = %g must be finite and >= 0 (< 0: the LR at total_iters is infinite)", c->power);
        break;
    case GOPT_SCHED_LAMBDA:
        if (!c->lr_lambda) return BAD(path, "lr_lambda is NULL");
        break;
    case GOPT_SCHED_SEQUENTIAL:
    case GOPT_SCHED_CHAINED: {
        if (depth >= GOPT_SCHED_MAX_DEPTH) return BAD(path, "children nest deeper than %d", GOPT_SCHED_MAX_DEPTH);
        if (c->n_children < 1 || c->n_children > GOPT_SCHED_MAX_CHILDREN)
            return BAD(path, "n_children = %d is outside [1, %d]", c->n_children, GOPT_SCHED_MAX_CHILDREN);
        if (!c->children) return BAD(path, "children is NULL");
        if (c->kind == GOPT_SCHED_SEQUENTIAL) {
            if (c->n_milestones != c->n_children - 1)
                return BAD(path, "n_milestones = %d must be n_children - 1 = %d", c->n_milestones, c->n_children - 1);
            for (int i = 0; i < c->n_milestones; i++) {
                if (c->milestones[i] < 1) return BAD(path, "milestones[%d] = %lld must be >= 1", i, (long long)c->milestones[i]);
                if (i > 0 && c->milestones[i] <= c->milestones[i - 1])
                    return BAD(path, "milestones[%d] = %lld must be > milestones[%d]", i, (long long)c->milestones[i], i - 1);
            }
        }
        for (int i = 0; i < c->n_children; i++) {
            char sub[160];
            snprintf(sub, sizeof sub, "%schildren[%d].", path, i);
            GOPT_TRY(validate(&c->children[i], sub, depth + 1, ngroups, has_plateau));
        }
        break;
    }
    case GOPT_SCHED_PLATEAU:
        *has_plateau = 1;
        if (c->mode != GOPT_PLATEAU_MIN && c->mode != GOPT_PLATEAU_MAX) return BAD(path, "mode = %d is neither min nor max", (int)c->mode);
        if (c->threshold_mode != GOPT_THRESHOLD_REL && c->threshold_mode != GOPT_THRESHOLD_ABS)
            return BAD(path, "threshold_mode = %d is neither rel nor abs", (int)c->threshold_mode);
        if (!(c->factor >= 0 && c->factor < 1)) return BAD(path, "factor = %g is outside [0, 1)", c->factor);
        if (!nonneg(c->threshold)) return BAD(path, "threshold = %g must be finite and >= 0", c->threshold);
        if (c->patience < 0) return BAD(path, "patience = %lld must be >= 0", (long long)c->patience);
        if (c->cooldown < 0) return BAD(path, "cooldown = %lld must be >= 0", (long long)c->cooldown);
        if (!nonneg(c->eps)) return BAD(path, "eps = %g must be finite and >= 0", c->eps);
        if (c->min_lrs) {
            if (c->n_min_lrs != ngroups) return BAD(path, "n_min_lrs = %d but there are %d groups", c->n_min_lrs, ngroups);
            for (int g = 0; g < ngroups; g++)
                if (!nonneg(c->min_lrs[g])) return BAD(path, "min_lrs[%d] = %g must be finite and >= 0", g, c->min_lrs[g]);
        } else if (!nonneg(c->min_lr)) {
            return BAD(path, "min_lr = %g must be finite and >= 0", c->min_lr);
        }
        break;
    case GOPT_SCHED_SWALR:
        if (c->swa_lrs) {
            if (c->n_swa_lrs != ngroups) return BAD(path, "n_swa_lrs = %d but there are %d groups", c->n_swa_lrs, ngroups);
            for (int g = 0; g < ngroups; g++)
                if (!nonneg(c->swa_lrs[g])) return BAD(path, "swa_lrs[%d] = %g must be finite and >= 0", g, c->swa_lrs[g]);
        } else if (!nonneg(c->swa_lr)) {
            return BAD(path, "swa_lr = %g must be finite and >= 0", c->swa_lr);
        }
        if (c->anneal_epochs < 0) return BAD(path, "anneal_epochs = %lld must be >= 0", (long long)c->anneal_epochs);
        if (c->anneal_strategy != GOPT_ANNEAL_COS && c->anneal_strategy != GOPT_ANNEAL_LINEAR)
            return BAD(path, "anneal_strategy = %d is neither GOPT_ANNEAL_COS nor GOPT_ANNEAL_LINEAR", (int)c->anneal_strategy);
        break;
    default:
        return BAD(path, "kind = %d is not a gopt_sched_kind", (int)c->kind);
    }
    return GOPT_OK;
}

/* ---- stepping ---------------------------------------------------------------------- */

static int64_t py_mod(int64_t a, int64_t m) { return ((a % m) + m) % m; }

static double anneal(const sched_node *n, double start, double end, double pct) {
    if (n->cfg.anneal_strategy == GOPT_ANNEAL_COS) {
        double cos_out = cos(M_PI * pct) + 1;
        return end + (start - end) / 2.0 * cos_out;
    }
    return (end - start) * pct + start;
}

/* What the optimizer accepts. A value outside becomes the schedule's final value (sched.h,
 * "End of a schedule"): here step total_steps, whose linear extrapolation of the last phase
 * goes below 0 (LR) or up to 1 (momentum). */
static int lr_valid(double lr) { return isfinite(lr) && lr >= 0; }
static int momentum_valid(double m) { return m >= 0 && m < 1; }

static void onecycle_lr(gopt_sched *s, sched_node *n) {
    double e = (double)n->last_epoch;
    int last = n->nphase - 1;
    for (int g = 0; g < s->ngroups; g++) {
        const double *v = n->oc + (size_t)g * OC_COUNT;
        double start = 0;
        for (int i = 0; i < n->nphase; i++) {
            double end = n->phase_end[i];
            if (e <= end || i == last) {
                double pct = (e - start) / (end - start);
                double lr = anneal(n, v[n->phase_start_lr[i]], v[n->phase_end_lr[i]], pct);
                s->lr[g] = lr_valid(lr) ? lr : v[n->phase_end_lr[last]];
                if (n->cfg.cycle_momentum) {
                    double m = anneal(n, v[n->phase_start_mom[i]], v[n->phase_end_mom[i]], pct);
                    s->mom[g] = momentum_valid(m) ? m : v[n->phase_end_mom[last]];
                }
                break;
            }
            start = end;
        }
    }
}

/* Closed form at last_epoch (PyTorch's _get_closed_form_lr), used by step(0). */
static double closed_form(const sched_node *n, double base) {
    const gopt_sched_config *c = &n->cfg;
    int64_t e = n->last_epoch;
    switch (c->kind) {
    case GOPT_SCHED_STEP: return base * pow(c->gamma, (double)(e / c->step_size));
    case GOPT_SCHED_MULTISTEP: {
        int count = 0; /* bisect_right over the sorted milestones */
        for (int i = 0; i < c->n_milestones; i++) count += c->milestones[i] <= e;
        return base * pow(c->gamma, count);
    }
    case GOPT_SCHED_EXPONENTIAL: return base * pow(c->gamma, (double)e);
    case GOPT_SCHED_COSINE:
        return c->eta_min + (base - c->eta_min) * (1 + cos(M_PI * (double)e / (double)c->T_max)) / 2;
    case GOPT_SCHED_LINEAR:
        return base * (c->start_factor + (c->end_factor - c->start_factor) * (double)(e < c->total_iters ? e : c->total_iters) /
                                             (double)c->total_iters);
    case GOPT_SCHED_CONSTANT: return base * (c->factor + (double)(e >= c->total_iters) * (1 - c->factor));
    case GOPT_SCHED_POLYNOMIAL:
        return base * pow(1.0 - (double)(e < c->total_iters ? e : c->total_iters) / (double)c->total_iters, c->power);
    default: return base;
    }
}

/* SWALR's annealing of t in [0, 1] (clamped first, as max(0, min(1, t))). */
static double swa_anneal(const gopt_sched_config *c, double t) {
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return c->anneal_strategy == GOPT_ANNEAL_COS ? (1 - cos(M_PI * t)) / 2 : t;
}

/* SWALR.get_lr for one group (sched.h), from the current LR. */
static double swalr(const sched_node *n, int g, double lr) {
    const gopt_sched_config *c = &n->cfg;
    int64_t step = n->step_count - 1;
    if (c->anneal_epochs == 0 && step < 1) step = 1;
    double A = (double)(c->anneal_epochs > 1 ? c->anneal_epochs : 1), swa = n->swa_lrs[g];
    double prev_alpha = swa_anneal(c, (double)(step - 1) / A);
    double prev = prev_alpha == 1 ? swa : (lr - prev_alpha * swa) / (1 - prev_alpha);
    double alpha = swa_anneal(c, (double)step / A);
    double next = swa * alpha + prev * (1 - alpha);
    return lr_valid(next) ? next : swa;
}

/* PyTorch's chainable get_lr for one group at last_epoch, from the current LR. */
static double chainable(const sched_node *n, int g, double lr, double base) {
    const gopt_sched_config *c = &n->cfg;
    int64_t e = n->last_epoch;
    switch (c->kind) {
    case GOPT_SCHED_STEP: return (e == 0 || e % c->step_size != 0) ? lr : lr * c->gamma;
    case GOPT_SCHED_MULTISTEP: {
        int count = 0;
        for (int i = 0; i < c->n_milestones; i++) count += c->milestones[i] == e;
        return count == 0 ? lr : lr * pow(c->gamma, count);
    }
    case GOPT_SCHED_EXPONENTIAL: return e == 0 ? lr : lr * c->gamma;
    case GOPT_SCHED_COSINE: {
        double T = (double)c->T_max;
        if (e == 0) return lr;
        if (n->step_count == 1 && e > 0) return closed_form(n, base);
        double next;
        if (py_mod(e - 1 - c->T_max, 2 * c->T_max) == 0) next = lr + (base - c->eta_min) * (1 - cos(M_PI / T)) / 2;
        else next = (1 + cos(M_PI * (double)e / T)) / (1 + cos(M_PI * (double)(e - 1) / T)) * (lr - c->eta_min) + c->eta_min;
        return lr_valid(next) ? next : c->eta_min; /* < 0: chained below eta_min (sched.h) */
    }
    case GOPT_SCHED_LINEAR: {
        if (e == 0) return lr * c->start_factor;
        if (e > c->total_iters) return lr;
        double d = c->end_factor - c->start_factor;
        double next = lr * (1. + d / ((double)c->total_iters * c->start_factor + (double)(e - 1) * d));
        return lr_valid(next) ? next : base * c->end_factor; /* end_factor 0: -1e-18 by rounding */
    }
    case GOPT_SCHED_CONSTANT:
        if (e == 0) return lr * c->factor;
        if (e != c->total_iters) return lr;
        return lr * (1.0 / c->factor);
    case GOPT_SCHED_POLYNOMIAL: {
        if (e == 0 || e > c->total_iters) return lr;
        double T = (double)c->total_iters;
        double decay = pow((1.0 - (double)e / T) / (1.0 - (double)(e - 1) / T), c->power);
        return lr * decay;
    }
    case GOPT_SCHED_LAMBDA: return base * c->lr_lambda(c->lambda_user, g, e);
    case GOPT_SCHED_SWALR: return swalr(n, g, lr);
    default: return lr;
    }
}

static void plateau_reset(sched_node *n) {
    n->best = n->cfg.mode == GOPT_PLATEAU_MIN ? INFINITY : -INFINITY;
    n->cooldown_counter = 0;
    n->num_bad = 0;
}

static int plateau_better(const sched_node *n, double a) {
    const gopt_sched_config *c = &n->cfg;
    if (c->mode == GOPT_PLATEAU_MIN)
        return c->threshold_mode == GOPT_THRESHOLD_REL ? a < n->best * (1. - c->threshold) : a < n->best - c->threshold;
    return c->threshold_mode == GOPT_THRESHOLD_REL ? a > n->best * (c->threshold + 1.) : a > n->best + c->threshold;
}

static void plateau_step(gopt_sched *s, sched_node *n, double metric) {
    n->last_epoch++;
    if (plateau_better(n, metric)) {
        n->best = metric;
        n->num_bad = 0;
    } else {
        n->num_bad++;
    }
    if (n->cooldown_counter > 0) {
        n->cooldown_counter--;
        n->num_bad = 0;
    }
    if (n->num_bad > n->cfg.patience) {
        for (int g = 0; g < s->ngroups; g++) {
            double old_lr = s->lr[g];
            double new_lr = old_lr * n->cfg.factor;
            if (n->min_lrs[g] > new_lr) new_lr = n->min_lrs[g];
            if (old_lr - new_lr > n->cfg.eps) s->lr[g] = new_lr;
        }
        n->cooldown_counter = n->cfg.cooldown;
        n->num_bad = 0;
    }
}

static int seq_index(const sched_node *n, int64_t epoch) {
    int idx = 0; /* bisect_right(milestones, epoch) */
    while (idx < n->cfg.n_milestones && n->cfg.milestones[idx] <= epoch) idx++;
    return idx;
}

/* Would this step fail? (OneCycle past total_steps.) Checked before anything changes. */
static gopt_status precheck(const sched_node *n, int explicit0) {
    switch (n->cfg.kind) {
    case GOPT_SCHED_ONECYCLE: {
        int64_t e = explicit0 ? 0 : n->last_epoch + 1;
        if (e > n->cfg.total_steps)
            return GOPT_FAIL(GOPT_ESTATE, "onecycle: step %lld is past total_steps = %lld (the schedule has ended)",
                             (long long)e, (long long)n->cfg.total_steps);
        return GOPT_OK;
    }
    case GOPT_SCHED_SEQUENTIAL: {
        int64_t e = n->last_epoch + 1;
        int idx = seq_index(n, e);
        return precheck(&n->child[idx], idx > 0 && n->cfg.milestones[idx - 1] == e);
    }
    case GOPT_SCHED_CHAINED:
        for (int i = 0; i < n->nchild; i++) GOPT_TRY(precheck(&n->child[i], 0));
        return GOPT_OK;
    default: return GOPT_OK;
    }
}

/* One step of node n; explicit0 is PyTorch's step(0) (SequentialLR at a milestone). */
static void node_step(gopt_sched *s, sched_node *n, int explicit0, double metric, int initial) {
    const gopt_sched_config *c = &n->cfg;
    switch (c->kind) {
    case GOPT_SCHED_PLATEAU:
        if (initial) return; /* ReduceLROnPlateau makes no initial step */
        if (explicit0) {     /* taking over in a sequential: start fresh from the base LR */
            plateau_reset(n);
            n->last_epoch = 0;
            for (int g = 0; g < s->ngroups; g++) s->lr[g] = n->base[g];
        }
        plateau_step(s, n, metric);
        return;
    case GOPT_SCHED_SEQUENTIAL: {
        n->last_epoch++;
        int idx = seq_index(n, n->last_epoch);
        node_step(s, &n->child[idx], idx > 0 && c->milestones[idx - 1] == n->last_epoch, metric, 0);
        return;
    }
    case GOPT_SCHED_CHAINED:
        n->last_epoch++;
        for (int i = 0; i < n->nchild; i++) node_step(s, &n->child[i], 0, metric, 0);
        return;
    case GOPT_SCHED_COSINE_WARM_RESTARTS: {
        n->step_count++;
        if (explicit0 || n->last_epoch < 0) {
            n->T_i = c->T_0;
            n->T_cur = 0;
            n->last_epoch = 0;
        } else {
            n->last_epoch++;
            n->T_cur++;
            if (n->T_cur >= n->T_i) {
                n->T_cur -= n->T_i;
                n->T_i *= c->T_mult;
            }
        }
        for (int g = 0; g < s->ngroups; g++)
            s->lr[g] = c->eta_min + (n->base[g] - c->eta_min) *
                                        (1 + cos(M_PI * (double)n->T_cur / (double)n->T_i)) / 2;
        return;
    }
    case GOPT_SCHED_ONECYCLE:
        n->step_count++;
        n->last_epoch = explicit0 ? 0 : n->last_epoch + 1;
        onecycle_lr(s, n);
        return;
    default:
        n->step_count++;
        if (explicit0) {
            n->last_epoch = 0;
            for (int g = 0; g < s->ngroups; g++)
                /* no _get_closed_form_lr in LambdaLR and SWALR: step(0) calls get_lr() */
                s->lr[g] = c->kind == GOPT_SCHED_LAMBDA || c->kind == GOPT_SCHED_SWALR
                               ? chainable(n, g, s->lr[g], n->base[g])
                               : closed_form(n, n->base[g]);
        } else {
            n->last_epoch++;
            for (int g = 0; g < s->ngroups; g++) s->lr[g] = chainable(n, g, s->lr[g], n->base[g]);
        }
        return;
    }
}

/* ---- construction ------------------------------------------------------------------ */

static void node_free(sched_node *n) {
    for (int i = 0; i < n->nchild; i++) node_free(&n->child[i]);
    gopt__free(n->child);
    gopt__free(n->base);
    gopt__free(n->oc);
    gopt__free(n->min_lrs);
    gopt__free(n->swa_lrs);
}

/* Build node n from cfg in PyTorch's constructor order (each constructor makes its initial
 * step on the shared LRs). */
static gopt_status node_init(gopt_sched *s, sched_node *n, const gopt_sched_config *cfg) {
    int ng = s->ngroups;
    n->cfg = *cfg;
    n->cfg.children = NULL;
    n->cfg.min_lrs = NULL;
    n->cfg.max_lrs = NULL;
    n->cfg.swa_lrs = NULL;
    n->base = gopt__calloc((size_t)ng, sizeof *n->base);
    if (!n->base) return GOPT_FAIL(GOPT_ENOMEM, "scheduler base LRs");
    n->last_epoch = -1;
    n->step_count = 0;
    switch (cfg->kind) {
    case GOPT_SCHED_SEQUENTIAL:
    case GOPT_SCHED_CHAINED:
        n->child = gopt__calloc((size_t)cfg->n_children, sizeof *n->child);
        if (!n->child) return GOPT_FAIL(GOPT_ENOMEM, "scheduler children");
        for (int i = 0; i < cfg->n_children; i++) {
            n->nchild = i + 1;
            GOPT_TRY(node_init(s, &n->child[i], &cfg->children[i]));
        }
        for (int g = 0; g < ng; g++) n->base[g] = s->initial[g];
        n->last_epoch = 0;
        if (cfg->kind == GOPT_SCHED_SEQUENTIAL) {
            for (int g = 0; g < ng; g++) s->lr[g] = s->initial[g];
            for (int i = 0; i < n->nchild; i++) n->child[i].last_epoch -= 1;
            n->child[0].step_count = 0;
            node_step(s, &n->child[0], 0, 0.0, 1);
        }
        return GOPT_OK;
    case GOPT_SCHED_PLATEAU:
        n->min_lrs = gopt__calloc((size_t)ng, sizeof *n->min_lrs);
        if (!n->min_lrs) return GOPT_FAIL(GOPT_ENOMEM, "plateau min_lrs");
        for (int g = 0; g < ng; g++) {
            n->min_lrs[g] = cfg->min_lrs ? cfg->min_lrs[g] : cfg->min_lr;
            n->base[g] = s->initial[g];
        }
        plateau_reset(n);
        n->last_epoch = 0;
        return GOPT_OK;
    case GOPT_SCHED_ONECYCLE: {
        n->oc = gopt__calloc((size_t)ng * OC_COUNT, sizeof *n->oc);
        if (!n->oc) return GOPT_FAIL(GOPT_ENOMEM, "onecycle values");
        for (int g = 0; g < ng; g++) {
            double *v = n->oc + (size_t)g * OC_COUNT;
            double max_lr = cfg->max_lrs ? cfg->max_lrs[g] : cfg->max_lr;
            v[OC_INITIAL] = max_lr / cfg->div_factor;
            v[OC_MAX] = max_lr;
            v[OC_MIN] = v[OC_INITIAL] / cfg->final_div_factor;
            v[OC_MAX_MOM] = cfg->max_momentum;
            v[OC_BASE_MOM] = cfg->base_momentum;
            s->initial[g] = v[OC_INITIAL]; /* OneCycleLR overwrites group['initial_lr'] */
            if (cfg->cycle_momentum) s->mom[g] = cfg->max_momentum;
        }
        if (cfg->cycle_momentum) s->has_mom = 1;
        n->nphase = onecycle_phases(cfg, n->phase_end);
        static const int two[4][2] = {{OC_INITIAL, OC_MAX}, {OC_MAX, OC_MIN}, {OC_MAX_MOM, OC_BASE_MOM}, {OC_BASE_MOM, OC_MAX_MOM}};
        static const int three[4][3] = {{OC_INITIAL, OC_MAX, OC_INITIAL},
                                        {OC_MAX, OC_INITIAL, OC_MIN},
                                        {OC_MAX_MOM, OC_BASE_MOM, OC_MAX_MOM},
                                        {OC_BASE_MOM, OC_MAX_MOM, OC_MAX_MOM}};
        for (int i = 0; i < n->nphase; i++) {
            n->phase_start_lr[i] = n->nphase == 3 ? three[0][i] : two[0][i];
            n->phase_end_lr[i] = n->nphase == 3 ? three[1][i] : two[1][i];
            n->phase_start_mom[i] = n->nphase == 3 ? three[2][i] : two[2][i];
            n->phase_end_mom[i] = n->nphase == 3 ? three[3][i] : two[3][i];
        }
        break;
    }
    case GOPT_SCHED_COSINE_WARM_RESTARTS:
        n->T_i = cfg->T_0;
        n->T_cur = -1;
        break;
    case GOPT_SCHED_SWALR:
        n->swa_lrs = gopt__calloc((size_t)ng, sizeof *n->swa_lrs);
        if (!n->swa_lrs) return GOPT_FAIL(GOPT_ENOMEM, "swalr swa_lrs");
        for (int g = 0; g < ng; g++) n->swa_lrs[g] = cfg->swa_lrs ? cfg->swa_lrs[g] : cfg->swa_lr;
        break;
    default: break;
    }
    for (int g = 0; g < ng; g++) n->base[g] = s->initial[g];
    node_step(s, n, 0, 0.0, 1);
    return GOPT_OK;
}

static gopt_status push(gopt_sched *s) {
    if (!s->bound) return GOPT_OK;
    for (int g = 0; g < s->ngroups; g++) {
        GOPT_TRY(s->target.set_lr(s->target.ctx, g, (float)s->lr[g]));
        if (s->has_mom) GOPT_TRY(s->target.set_momentum(s->target.ctx, g, (float)s->mom[g]));
    }
    return GOPT_OK;
}

gopt_status gopt__sched_create(const gopt_sched_config *cfg, int ngroups, const double *initial_lrs,
                               const gopt__sched_target *target, gopt_sched **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    GOPT_CHECK_NULL(initial_lrs);
    if (ngroups < 1) return GOPT_FAIL(GOPT_EINVAL, "ngroups = %d must be >= 1", ngroups);
    for (int g = 0; g < ngroups; g++)
        if (!nonneg(initial_lrs[g])) return GOPT_FAIL(GOPT_EINVAL, "initial_lrs[%d] = %g must be finite and >= 0", g, initial_lrs[g]);
    int has_plateau = 0;
    GOPT_TRY(validate(cfg, "", 0, ngroups, &has_plateau));
    gopt_sched *s = gopt__calloc(1, sizeof *s);
    if (!s) return GOPT_FAIL(GOPT_ENOMEM, "scheduler");
    s->ngroups = ngroups;
    s->has_plateau = has_plateau;
    s->initial = gopt__calloc((size_t)ngroups, sizeof *s->initial);
    s->lr = gopt__calloc((size_t)ngroups, sizeof *s->lr);
    s->mom = gopt__calloc((size_t)ngroups, sizeof *s->mom);
    gopt_status st = GOPT_OK;
    if (!s->initial || !s->lr || !s->mom) {
        st = GOPT_FAIL(GOPT_ENOMEM, "scheduler LRs");
    } else {
        for (int g = 0; g < ngroups; g++) {
            s->initial[g] = initial_lrs[g];
            s->lr[g] = initial_lrs[g];
            s->mom[g] = NAN;
        }
        if (target) {
            s->target = *target;
            s->bound = 1;
            for (int g = 0; g < ngroups; g++) { /* start from the optimizer's current LR */
                float cur = target->get_lr(target->ctx, g);
                if (isfinite(cur)) s->lr[g] = cur;
            }
        }
        st = node_init(s, &s->root, cfg);
        if (st == GOPT_OK && s->bound) {
            s->rollback_size = gopt_sched_state_size(s);
            s->rollback = gopt__malloc(s->rollback_size);
            if (!s->rollback) st = GOPT_FAIL(GOPT_ENOMEM, "scheduler state of %zu bytes", s->rollback_size);
        }
        if (st == GOPT_OK) st = push(s);
    }
    if (st != GOPT_OK) {
        gopt_sched_destroy(s);
        return st;
    }
    *out = s;
    return GOPT_OK;
}

gopt_status gopt_sched_create_detached(const gopt_sched_config *cfg, int ngroups, const double *initial_lrs,
                                       gopt_sched **out) {
    return gopt__sched_create(cfg, ngroups, initial_lrs, NULL, out);
}

void gopt_sched_destroy(gopt_sched *s) {
    if (!s) return;
    node_free(&s->root);
    gopt__free(s->initial);
    gopt__free(s->lr);
    gopt__free(s->mom);
    gopt__free(s->rollback);
    gopt__free(s);
}

static gopt_status do_step(gopt_sched *s, double metric) {
    GOPT_TRY(precheck(&s->root, 0));
    if (s->bound) { /* adopt LRs changed outside the scheduler (chainable semantics) */
        for (int g = 0; g < s->ngroups; g++) {
            float cur = s->target.get_lr(s->target.ctx, g);
            if (isfinite(cur) && cur != (float)s->lr[g]) s->lr[g] = cur;
        }
    }
    node_step(s, &s->root, 0, metric, 0);
    return push(s);
}

gopt_status gopt_sched_step(gopt_sched *s) {
    GOPT_CHECK_NULL(s);
    if (s->has_plateau)
        return GOPT_FAIL(GOPT_ESTATE, "this scheduler contains a plateau scheduler: step it with gopt_sched_step_metric");
    return do_step(s, 0.0);
}

gopt_status gopt_sched_step_metric(gopt_sched *s, double metric) {
    GOPT_CHECK_NULL(s);
    if (!s->has_plateau)
        return GOPT_FAIL(GOPT_ESTATE, "this scheduler has no plateau scheduler to use the metric: use gopt_sched_step");
    return do_step(s, metric);
}

int gopt_sched_needs_metric(const gopt_sched *s) { return s ? s->has_plateau : 0; }
double gopt_sched_get_lr(const gopt_sched *s, int group) {
    return (s && group >= 0 && group < s->ngroups) ? s->lr[group] : NAN;
}
double gopt_sched_get_momentum(const gopt_sched *s, int group) {
    return (s && s->has_mom && group >= 0 && group < s->ngroups) ? s->mom[group] : NAN;
}
int64_t gopt_sched_last_epoch(const gopt_sched *s) { return s ? s->root.last_epoch : -1; }
int gopt_sched_group_count(const gopt_sched *s) { return s ? s->ngroups : 0; }

/* ---- state --------------------------------------------------------------------------- */

static size_t node_size(const sched_node *n, int ng) {
    size_t sz = sizeof(uint32_t) + 6 * sizeof(int64_t) + sizeof(double) + (size_t)ng * sizeof(double);
    if (n->oc) sz += (size_t)ng * OC_COUNT * sizeof(double);
    for (int i = 0; i < n->nchild; i++) sz += node_size(&n->child[i], ng);
    return sz;
}

size_t gopt_sched_state_size(const gopt_sched *s) {
    if (!s) return 0;
    return 4 * sizeof(uint32_t) + 3 * (size_t)s->ngroups * sizeof(double) + node_size(&s->root, s->ngroups);
}

static void node_save(const sched_node *n, int ng, gopt__wcur *w) {
    gopt__put_u32(w, (uint32_t)n->cfg.kind);
    gopt__put_i64(w, n->last_epoch);
    gopt__put_i64(w, n->step_count);
    gopt__put_i64(w, n->T_i);
    gopt__put_i64(w, n->T_cur);
    gopt__put_i64(w, n->num_bad);
    gopt__put_i64(w, n->cooldown_counter);
    gopt__put_f64(w, n->best);
    gopt__put(w, n->base, (size_t)ng * sizeof(double));
    if (n->oc) gopt__put(w, n->oc, (size_t)ng * OC_COUNT * sizeof(double));
    for (int i = 0; i < n->nchild; i++) node_save(&n->child[i], ng, w);
}

gopt_status gopt_sched_state_save(const gopt_sched *s, void *buf, size_t size) {
    GOPT_CHECK_NULL(s);
    GOPT_CHECK_NULL(buf);
    size_t need = gopt_sched_state_size(s);
    if (size < need) return GOPT_FAIL(GOPT_EINVAL, "size = %zu, the state needs %zu bytes", size, need);
    gopt__wcur w = gopt__wcur_make(buf, size);
    gopt__put_u32(&w, SCHED_MAGIC);
    gopt__put_u32(&w, (uint32_t)s->ngroups);
    gopt__put_u32(&w, (uint32_t)s->has_mom);
    gopt__put_u32(&w, (uint32_t)s->root.cfg.kind);
    size_t ng = (size_t)s->ngroups;
    gopt__put(&w, s->initial, ng * sizeof(double));
    gopt__put(&w, s->lr, ng * sizeof(double));
    gopt__put(&w, s->mom, ng * sizeof(double));
    node_save(&s->root, s->ngroups, &w);
    if (!w.ok) return GOPT_FAIL(GOPT_EINVAL, "state buffer too small");
    return GOPT_OK;
}

/* Read node state; when apply is 0 only check it. */
static gopt_status node_load(sched_node *n, int ng, gopt__rcur *r, int apply, const char *path) {
    uint32_t kind = gopt__get_u32(r);
    if (!r->ok) return GOPT_FAIL(GOPT_EFORMAT, "scheduler state truncated at %snode", path);
    if (kind != (uint32_t)n->cfg.kind)
        return GOPT_FAIL(GOPT_EFORMAT, "%skind: state has %u ('%s'), this scheduler is '%s'", path, kind,
                         kind < GOPT_SCHED_KIND_COUNT ? kind_names[kind] : "?", kind_names[n->cfg.kind]);
    int64_t v[6];
    for (int i = 0; i < 6; i++) v[i] = gopt__get_i64(r);
    double best = gopt__get_f64(r);
    const unsigned char *base = r->p;
    gopt__get(r, NULL, 0);
    if (!r->ok || (size_t)(r->end - r->p) < (size_t)ng * sizeof(double))
        return GOPT_FAIL(GOPT_EFORMAT, "scheduler state truncated at %sbase", path);
    r->p += (size_t)ng * sizeof(double);
    const unsigned char *oc = NULL;
    if (n->oc) {
        if ((size_t)(r->end - r->p) < (size_t)ng * OC_COUNT * sizeof(double))
            return GOPT_FAIL(GOPT_EFORMAT, "scheduler state truncated at %sonecycle values", path);
        oc = r->p;
        r->p += (size_t)ng * OC_COUNT * sizeof(double);
    }
    if (n->cfg.kind == GOPT_SCHED_COSINE_WARM_RESTARTS && v[2] < 1)
        return GOPT_FAIL(GOPT_EFORMAT, "%sT_i = %lld must be >= 1", path, (long long)v[2]);
    /* Counters as a run can reach them (last_epoch and T_cur start at -1), bounded so that
     * the step arithmetic cannot overflow; base LRs finite and >= 0. */
    static const char *const counter[6] = {"last_epoch", "step_count", "T_i", "T_cur", "num_bad", "cooldown_counter"};
    static const int64_t lowest[6] = {-1, 0, 0, -1, 0, 0}, highest = (int64_t)1 << 50;
    for (int i = 0; i < 6; i++)
        if (v[i] < lowest[i] || v[i] > highest)
            return GOPT_FAIL(GOPT_EFORMAT, "%s%s = %lld is outside [%lld, 2^50]", path, counter[i], (long long)v[i],
                             (long long)lowest[i]);
    for (int g = 0; g < ng; g++) {
        double b;
        memcpy(&b, base + (size_t)g * sizeof(double), sizeof b);
        if (!nonneg(b)) return GOPT_FAIL(GOPT_EFORMAT, "%sbase LR of group %d = %g", path, g, b);
    }
    if (apply) {
        n->last_epoch = v[0];
        n->step_count = v[1];
        n->T_i = v[2];
        n->T_cur = v[3];
        n->num_bad = v[4];
        n->cooldown_counter = v[5];
        n->best = best;
        memcpy(n->base, base, (size_t)ng * sizeof(double));
        if (oc) memcpy(n->oc, oc, (size_t)ng * OC_COUNT * sizeof(double));
    }
    for (int i = 0; i < n->nchild; i++) {
        char sub[160];
        snprintf(sub, sizeof sub, "%schildren[%d].", path, i);
        GOPT_TRY(node_load(&n->child[i], ng, r, apply, sub));
    }
    return GOPT_OK;
}

static gopt_status load_pass(gopt_sched *s, const void *buf, size_t size, int apply) {
    gopt__rcur r = gopt__rcur_make(buf, size);
    uint32_t magic = gopt__get_u32(&r);
    uint32_t ng = gopt__get_u32(&r);
    uint32_t has_mom = gopt__get_u32(&r);
    uint32_t kind = gopt__get_u32(&r);
    if (!r.ok) return GOPT_FAIL(GOPT_EFORMAT, "scheduler state: %zu bytes is too short for the header", size);
    if (magic != SCHED_MAGIC) return GOPT_FAIL(GOPT_EFORMAT, "scheduler state: bad magic 0x%08x", magic);
    if (ng != (uint32_t)s->ngroups)
        return GOPT_FAIL(GOPT_EFORMAT, "scheduler state: %u groups, this scheduler has %d", ng, s->ngroups);
    if (kind != (uint32_t)s->root.cfg.kind)
        return GOPT_FAIL(GOPT_EFORMAT, "scheduler state: kind %u, this scheduler is '%s'", kind, kind_names[s->root.cfg.kind]);
    if (has_mom != (uint32_t)s->has_mom) return GOPT_FAIL(GOPT_EFORMAT, "scheduler state: momentum cycling differs");
    size_t bytes = (size_t)ng * sizeof(double);
    if ((size_t)(r.end - r.p) < 3 * bytes) return GOPT_FAIL(GOPT_EFORMAT, "scheduler state truncated at the LRs");
    const unsigned char *lrs = r.p;
    r.p += 3 * bytes;
    for (uint32_t g = 0; g < ng; g++) {
        double v[3];
        for (int k = 0; k < 3; k++) memcpy(&v[k], lrs + k * bytes + g * sizeof(double), sizeof(double));
        if (!nonneg(v[0]) || !nonneg(v[1]) || !isfinite((float)v[1]) || (has_mom && !isfinite(v[2])))
            return GOPT_FAIL(GOPT_EFORMAT, "scheduler state: group %u has initial LR %g, LR %g, momentum %g", g, v[0],
                             v[1], v[2]);
    }
    GOPT_TRY(node_load(&s->root, s->ngroups, &r, apply, ""));
    if (r.p != r.end)
        return GOPT_FAIL(GOPT_EFORMAT, "scheduler state: %zu bytes, expected %zu", size, gopt_sched_state_size(s));
    if (apply) {
        memcpy(s->initial, lrs, bytes);
        memcpy(s->lr, lrs + bytes, bytes);
        memcpy(s->mom, lrs + 2 * bytes, bytes);
    }
    return GOPT_OK;
}

gopt_status gopt_sched_state_load(gopt_sched *s, const void *buf, size_t size) {
    GOPT_CHECK_NULL(s);
    GOPT_CHECK_NULL(buf);
    GOPT_TRY(load_pass(s, buf, size, 0));
    if (!s->bound) return load_pass(s, buf, size, 1);
    /* The optimizer may still refuse a value (a momentum its algorithm cannot take): then
     * the scheduler and the optimizer go back to where they were (the buffer is sized at
     * create: a load allocates nothing). */
    gopt_status st = gopt_sched_state_save(s, s->rollback, s->rollback_size);
    if (st == GOPT_OK) st = load_pass(s, buf, size, 1);
    if (st == GOPT_OK) st = push(s);
    if (st != GOPT_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", gopt_last_error());
        (void)load_pass(s, s->rollback, s->rollback_size, 1);
        (void)push(s);
        st = GOPT_FAIL(GOPT_EFORMAT, "scheduler state does not fit the optimizer: %s", why);
    }
    return st;
}
