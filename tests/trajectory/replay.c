/* Replay a parsed trajectory through libgradopt's public API only (<gradopt.h>): the loop of
 * tests/trajectory/FORMAT.md, every status checked, every parameter compared after every
 * step, LR and momentum too. With `resume k` the trajectory runs twice: straight through,
 * then with every state written to a checkpoint file after step k and loaded into freshly
 * created objects; the second run must match the expectations and the first run bit for bit. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gradopt.h>

#include "traj.h"

#define ATOL 1e-5
#define RTOL 1e-4

static int fail(traj_result *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    return -1;
}

/* A library call: on failure, the case fails with the step, the call and the detail. */
#define LIB(call, r, ...)                                                                              \
    do {                                                                                               \
        gopt_status st_ = (call);                                                                      \
        if (st_ != GOPT_OK) {                                                                          \
            char where_[160];                                                                          \
            snprintf(where_, sizeof where_, __VA_ARGS__);                                              \
            return fail(r, "%s: %s: %s (%s)", where_, #call, gopt_status_str(st_), gopt_last_error()); \
        }                                                                                              \
    } while (0)

static void note(traj_result *r, const char *what, double got, double want) {
    r->compared++;
    if (!isfinite(want)) {
        if (got == want || (isnan(got) && isnan(want))) return;
        r->worst_ratio = INFINITY;
        snprintf(r->worst_what, sizeof r->worst_what, "%s (got %g, want %g)", what, got, want);
        return;
    }
    if (!isfinite(got)) {
        if (!r->nonfinite) snprintf(r->worst_what, sizeof r->worst_what, "%s (got %g, want %g)", what, got, want);
        r->nonfinite++;
        r->worst_ratio = INFINITY;
        return;
    }
    double err = fabs(got - want), ratio = err / (ATOL + RTOL * fabs(want));
    if (err > r->worst_abs) r->worst_abs = err;
    if (ratio > r->worst_ratio && !r->nonfinite) {
        r->worst_ratio = ratio;
        snprintf(r->worst_what, sizeof r->worst_what, "%s (got %.9g, want %.9g)", what, got, want);
    }
}

/* ---- configs from the header lines ------------------------------------------------------------ */

typedef struct lambda_spec {
    int warmup_fn; /* 0: rate^epoch, 1: min(1, (epoch + 1) / warmup) */
    double rate[TRAJ_MAX_GROUPS];
    int nrate;
    double warmup;
} lambda_spec;

typedef struct setup {
    gopt_optim_config oc;
    gopt_group_config gc[TRAJ_MAX_GROUPS];
    int has_sched, plateau;
    gopt_sched_config sc, kids[TRAJ_MAX_CHILDREN];
    double lists[2 * (1 + TRAJ_MAX_CHILDREN)][TRAJ_MAX_GROUPS]; /* max_lrs, min_lrs per node */
    lambda_spec lambda[1 + TRAJ_MAX_CHILDREN];
    int clip_norm, clip_value;
    double max_norm, norm_type, clip_limit;
    int has_monitor;
    gopt_monitor_config mc;
} setup;

static int num(const char *v, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end) return 0;
    *out = x;
    return 1;
}

static int boolean(const char *v, int *out) {
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1")) return *out = 1, 1;
    if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0")) return *out = 0, 1;
    return 0;
}

static int integer(const char *v, int64_t *out) {
    double x;
    if (!num(v, &x) || x != floor(x) || fabs(x) > 1e15) return 0;
    *out = (int64_t)x;
    return 1;
}

/* "a,b,c" into at most max doubles. */
static int list(const char *v, double *out, int max, int *n) {
    *n = 0;
    const char *p = v;
    for (;;) {
        char *end;
        if (*n == max) return 0;
        out[(*n)++] = strtod(p, &end);
        if (end == p) return 0;
        if (!*end) return 1;
        if (*end != ',') return 0;
        p = end + 1;
    }
}

#define BADKEY(r, t, k, i, what) fail(r, "%s:%d: %s: bad value '%s' for '%s'", (t)->path, (k)->line, what, (k)->kv[i].value, (k)->kv[i].key)

static int optim_setup(const traj *t, setup *su, traj_result *r) {
    const traj_kvs *k = &t->optim;
    const char *algo = traj_get(k, "algo");
    gopt_algo a;
    if (!algo || gopt_algo_from_name(algo, &a) != GOPT_OK)
        return fail(r, "%s:%d: optim: algo '%s' is not one of libgradopt's", t->path, k->line, algo ? algo : "(missing)");
    su->oc = gopt_optim_config_default(a);
    gopt_optim_config *c = &su->oc;
    static const char *const fnames[] = {"lr", "momentum", "dampening", "weight_decay", "lr_decay",
                                         "initial_accumulator_value", "eps", "alpha", "rho", "momentum_decay"};
    float *fields[] = {&c->lr, &c->momentum, &c->dampening, &c->weight_decay, &c->lr_decay,
                       &c->initial_accumulator_value, &c->eps, &c->alpha, &c->rho, &c->momentum_decay};
    for (int i = 0; i < k->n; i++) {
        const char *key = k->kv[i].key, *v = k->kv[i].value;
        double x, b[2];
        int nb, flag, done = 0;
        if (!strcmp(key, "algo")) continue;
        for (size_t f = 0; f < sizeof fnames / sizeof *fnames && !done; f++)
            if (!strcmp(key, fnames[f])) {
                if (!num(v, &x)) return BADKEY(r, t, k, i, "optim");
                *fields[f] = (float)x;
                done = 1;
            }
        if (done) continue;
        int *flags[] = {&c->nesterov, &c->maximize, &c->centered, &c->amsgrad};
        static const char *const bnames[] = {"nesterov", "maximize", "centered", "amsgrad"};
        for (int f = 0; f < 4 && !done; f++)
            if (!strcmp(key, bnames[f])) {
                if (!boolean(v, &flag)) return BADKEY(r, t, k, i, "optim");
                *flags[f] = flag;
                done = 1;
            }
        if (done) continue;
        if (!strcmp(key, "betas")) {
            if (!list(v, b, 2, &nb) || nb != 2) return BADKEY(r, t, k, i, "optim");
            c->beta1 = (float)b[0];
            c->beta2 = (float)b[1];
            continue;
        }
        return fail(r, "%s:%d: optim: unknown key '%s'", t->path, k->line, key);
    }
    if (t->lookahead.present) {
        const traj_kvs *l = &t->lookahead;
        for (int i = 0; i < l->n; i++) {
            double x;
            if (!num(l->kv[i].value, &x)) return BADKEY(r, t, l, i, "lookahead");
            if (!strcmp(l->kv[i].key, "k")) c->lookahead_k = (int)x;
            else if (!strcmp(l->kv[i].key, "alpha")) c->lookahead_alpha = (float)x;
            else return fail(r, "%s:%d: lookahead: unknown key '%s'", t->path, l->line, l->kv[i].key);
        }
    }
    for (int g = 0; g < TRAJ_MAX_GROUPS; g++) {
        su->gc[g] = gopt_group_config_default();
        const traj_kvs *gk = &t->group[g];
        for (int i = 0; i < gk->n; i++) {
            const char *key = gk->kv[i].key, *v = gk->kv[i].value;
            double x, b[2];
            int nb;
            gopt_group_config *o = &su->gc[g];
            if (!strcmp(key, "betas")) {
                if (!list(v, b, 2, &nb) || nb != 2) return BADKEY(r, t, gk, i, "group");
                o->beta1 = (float)b[0];
                o->beta2 = (float)b[1];
                continue;
            }
            if (!num(v, &x)) return BADKEY(r, t, gk, i, "group");
            if (!strcmp(key, "lr")) o->lr = (float)x;
            else if (!strcmp(key, "weight_decay")) o->weight_decay = (float)x;
            else if (!strcmp(key, "momentum")) o->momentum = (float)x;
            else if (!strcmp(key, "eps")) o->eps = (float)x;
            else return fail(r, "%s:%d: group: unknown key '%s' (lr, weight_decay, momentum, betas, eps)", t->path, gk->line, key);
        }
    }
    return 0;
}

static double lambda_cb(void *user, int group, int64_t epoch) {
    const lambda_spec *l = user;
    if (l->warmup_fn) {
        double f = (double)(epoch + 1) / l->warmup;
        return f < 1.0 ? f : 1.0;
    }
    return pow(l->nrate > 1 ? l->rate[group] : l->rate[0], (double)epoch);
}

/* One scheduler node from its line; node 0 is the root, 1.. the children. */
static int sched_node(const traj *t, setup *su, const traj_kvs *k, int node, gopt_sched_config *c, traj_result *r) {
    const char *kind = traj_get(k, "kind");
    gopt_sched_kind sk;
    if (!kind || gopt_sched_kind_from_name(kind, &sk) != GOPT_OK)
        return fail(r, "%s:%d: sched: kind '%s' is not one of libgradopt's", t->path, k->line, kind ? kind : "(missing)");
    *c = gopt_sched_config_default(sk);
    lambda_spec *lam = &su->lambda[node];
    if (sk == GOPT_SCHED_LAMBDA) {
        c->lr_lambda = lambda_cb;
        c->lambda_user = lam;
    }
    static const char *const inames[] = {"step_size", "T_max", "T_0", "T_mult", "total_steps", "total_iters", "patience", "cooldown"};
    int64_t *ifields[] = {&c->step_size, &c->T_max, &c->T_0, &c->T_mult, &c->total_steps, &c->total_iters, &c->patience, &c->cooldown};
    static const char *const dnames[] = {"gamma", "eta_min", "max_lr", "pct_start", "div_factor", "final_div_factor",
                                         "base_momentum", "max_momentum", "start_factor", "end_factor", "factor",
                                         "power", "threshold", "min_lr", "eps"};
    double *dfields[] = {&c->gamma, &c->eta_min, &c->max_lr, &c->pct_start, &c->div_factor, &c->final_div_factor,
                         &c->base_momentum, &c->max_momentum, &c->start_factor, &c->end_factor, &c->factor,
                         &c->power, &c->threshold, &c->min_lr, &c->eps};
    for (int i = 0; i < k->n; i++) {
        const char *key = k->kv[i].key, *v = k->kv[i].value;
        int done = 0, n;
        if (!strcmp(key, "kind")) continue;
        for (size_t f = 0; f < sizeof inames / sizeof *inames && !done; f++)
            if (!strcmp(key, inames[f])) {
                if (!integer(v, ifields[f])) return BADKEY(r, t, k, i, "sched");
                done = 1;
            }
        for (size_t f = 0; f < sizeof dnames / sizeof *dnames && !done; f++)
            if (!strcmp(key, dnames[f])) {
                if (!num(v, dfields[f])) return BADKEY(r, t, k, i, "sched");
                done = 1;
            }
        if (done) continue;
        if (!strcmp(key, "three_phase") || !strcmp(key, "cycle_momentum")) {
            if (!boolean(v, !strcmp(key, "three_phase") ? &c->three_phase : &c->cycle_momentum)) return BADKEY(r, t, k, i, "sched");
        } else if (!strcmp(key, "anneal_strategy")) {
            if (!strcmp(v, "cos")) c->anneal_strategy = GOPT_ANNEAL_COS;
            else if (!strcmp(v, "linear")) c->anneal_strategy = GOPT_ANNEAL_LINEAR;
            else return BADKEY(r, t, k, i, "sched");
        } else if (!strcmp(key, "mode")) {
            if (!strcmp(v, "min")) c->mode = GOPT_PLATEAU_MIN;
            else if (!strcmp(v, "max")) c->mode = GOPT_PLATEAU_MAX;
            else return BADKEY(r, t, k, i, "sched");
        } else if (!strcmp(key, "threshold_mode")) {
            if (!strcmp(v, "rel")) c->threshold_mode = GOPT_THRESHOLD_REL;
            else if (!strcmp(v, "abs")) c->threshold_mode = GOPT_THRESHOLD_ABS;
            else return BADKEY(r, t, k, i, "sched");
        } else if (!strcmp(key, "milestones")) {
            double ms[GOPT_SCHED_MAX_MILESTONES];
            if (!list(v, ms, GOPT_SCHED_MAX_MILESTONES, &n)) return BADKEY(r, t, k, i, "sched");
            for (int m = 0; m < n; m++) c->milestones[m] = (int64_t)ms[m];
            c->n_milestones = n;
        } else if (!strcmp(key, "max_lrs") || !strcmp(key, "min_lrs")) {
            int is_max = !strcmp(key, "max_lrs");
            double *dst = su->lists[2 * node + !is_max];
            if (!list(v, dst, TRAJ_MAX_GROUPS, &n)) return BADKEY(r, t, k, i, "sched");
            if (is_max) c->max_lrs = dst, c->n_max_lrs = n;
            else c->min_lrs = dst, c->n_min_lrs = n;
        } else if (!strcmp(key, "fn") && sk == GOPT_SCHED_LAMBDA) {
            if (!strcmp(v, "exp")) lam->warmup_fn = 0;
            else if (!strcmp(v, "warmup")) lam->warmup_fn = 1;
            else return BADKEY(r, t, k, i, "sched");
        } else if (!strcmp(key, "rate") && sk == GOPT_SCHED_LAMBDA) {
            if (!list(v, lam->rate, TRAJ_MAX_GROUPS, &lam->nrate)) return BADKEY(r, t, k, i, "sched");
        } else if (!strcmp(key, "warmup") && sk == GOPT_SCHED_LAMBDA) {
            if (!num(v, &lam->warmup) || !(lam->warmup > 0)) return BADKEY(r, t, k, i, "sched");
        } else {
            return fail(r, "%s:%d: sched: unknown key '%s' for kind '%s'", t->path, k->line, key, kind);
        }
    }
    if (sk == GOPT_SCHED_LAMBDA) {
        if (!traj_get(k, "fn")) return fail(r, "%s:%d: sched: lambda needs fn=exp|warmup", t->path, k->line);
        if (lam->warmup_fn ? !traj_get(k, "warmup") : lam->nrate < 1)
            return fail(r, "%s:%d: sched: lambda fn=%s needs %s", t->path, k->line, lam->warmup_fn ? "warmup" : "exp",
                        lam->warmup_fn ? "warmup=<steps>" : "rate=<r>[,<r>...]");
        if (lam->nrate > 1 && lam->nrate != t->ngroups)
            return fail(r, "%s:%d: sched: %d rates for %d groups", t->path, k->line, lam->nrate, t->ngroups);
    }
    if (sk == GOPT_SCHED_PLATEAU) su->plateau = 1;
    return 0;
}

static int setup_make(const traj *t, setup *su, traj_result *r) {
    memset(su, 0, sizeof *su);
    if (optim_setup(t, su, r)) return -1;
    if (t->sched.present) {
        su->has_sched = 1;
        if (sched_node(t, su, &t->sched, 0, &su->sc, r)) return -1;
        for (int i = 0; i < t->nchildren; i++)
            if (sched_node(t, su, &t->child[i], 1 + i, &su->kids[i], r)) return -1;
        if (t->nchildren) {
            su->sc.children = su->kids;
            su->sc.n_children = t->nchildren;
        }
    }
    if (t->clip_mode[0]) {
        const traj_kvs *k = &t->clip;
        su->clip_norm = !strcmp(t->clip_mode, "norm");
        su->clip_value = !su->clip_norm;
        su->norm_type = 2.0;
        su->max_norm = su->clip_limit = NAN;
        for (int i = 0; i < k->n; i++) {
            double x;
            if (!num(k->kv[i].value, &x)) return BADKEY(r, t, k, i, "clip");
            const char *key = k->kv[i].key;
            if (su->clip_norm && !strcmp(key, "max_norm")) su->max_norm = x;
            else if (su->clip_norm && !strcmp(key, "norm_type")) su->norm_type = x;
            else if (su->clip_value && !strcmp(key, "clip_value")) su->clip_limit = x;
            else return fail(r, "%s:%d: clip %s: unknown key '%s'", t->path, k->line, t->clip_mode, key);
        }
        if (su->clip_norm ? isnan(su->max_norm) : isnan(su->clip_limit))
            return fail(r, "%s:%d: clip %s needs %s", t->path, k->line, t->clip_mode, su->clip_norm ? "max_norm" : "clip_value");
    }
    if (t->monitor.present) {
        su->has_monitor = 1;
        su->mc = gopt_monitor_config_default();
        su->mc.skip_spikes = 0; /* the file's rule is GradScaler's: non-finite only */
        const traj_kvs *k = &t->monitor;
        for (int i = 0; i < k->n; i++) {
            if (strcmp(k->kv[i].key, "skip_nonfinite")) return fail(r, "%s:%d: monitor: unknown key '%s'", t->path, k->line, k->kv[i].key);
            if (!boolean(k->kv[i].value, &su->mc.skip_nonfinite)) return BADKEY(r, t, k, i, "monitor");
        }
    }
    return 0;
}

/* ---- the objects of one run ------------------------------------------------------------------- */

typedef struct objs {
    gopt_params *params;
    gopt_optim *opt;
    gopt_sched *sched;
    gopt_monitor *mon;
    gopt_accum *acc;
    int64_t offset[TRAJ_MAX_TENSORS]; /* of each tensor in the arena */
} objs;

static void objs_free(objs *o) {
    gopt_accum_destroy(o->acc);
    gopt_monitor_destroy(o->mon);
    gopt_sched_destroy(o->sched);
    gopt_optim_destroy(o->opt);
    gopt_params_destroy(o->params);
    memset(o, 0, sizeof *o);
}

static int objs_make(const traj *t, const setup *su, objs *o, traj_result *r) {
    memset(o, 0, sizeof *o);
    LIB(gopt_params_create(&o->params), r, "create");
    for (int i = 0; i < t->ntensors; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%d", i);
        LIB(gopt_params_add(o->params, name, t->tensor[i].ndim, t->tensor[i].shape, GOPT_TAG_WEIGHT, NULL), r, "tensor %d", i);
    }
    LIB(gopt_params_group_set(o->params, 0, &su->gc[0]), r, "group 0");
    for (int g = 1; g < t->ngroups; g++) {
        int id;
        LIB(gopt_params_add_group(o->params, &su->gc[g], &id), r, "group %d", g);
        if (id != g) return fail(r, "group %d was created as %d", g, id);
    }
    for (int i = 0; i < t->ntensors; i++)
        if (t->tensor[i].group) LIB(gopt_params_set_group(o->params, i, t->tensor[i].group), r, "tensor %d", i);
    LIB(gopt_params_finalize(o->params), r, "create");
    for (int i = 0; i < t->ntensors; i++) {
        gopt_param_info info;
        LIB(gopt_params_info(o->params, i, &info), r, "tensor %d", i);
        memcpy(info.value.data, t->tensor[i].init, (size_t)t->tensor[i].numel * sizeof(float));
        o->offset[i] = info.offset;
    }
    LIB(gopt_optim_create(&su->oc, o->params, &o->opt), r, "create");
    if (su->has_sched) LIB(gopt_sched_create(&su->sc, o->opt, &o->sched), r, "create");
    if (su->has_monitor) LIB(gopt_monitor_create(&su->mc, o->params, o->opt, &o->mon), r, "create");
    if (t->accum > 1) LIB(gopt_accum_create(t->accum, &o->acc), r, "create");
    return 0;
}

typedef struct blob_ops {
    const char *name;
    size_t (*size)(const void *);
    gopt_status (*save)(const void *, void *, size_t);
    gopt_status (*load)(void *, const void *, size_t);
} blob_ops;

/* Typed wrappers, so that every state function is called through its own type. */
#define WRAP(x)                                                                                         \
    static size_t x##_size(const void *o) { return gopt_##x##_state_size((const gopt_##x *)o); }       \
    static gopt_status x##_save(const void *o, void *b, size_t n) { return gopt_##x##_state_save((const gopt_##x *)o, b, n); } \
    static gopt_status x##_load(void *o, const void *b, size_t n) { return gopt_##x##_state_load((gopt_##x *)o, b, n); }
WRAP(params)
WRAP(optim)
WRAP(sched)
WRAP(monitor)
WRAP(accum)
#define OPS(x) {#x, x##_size, x##_save, x##_load}

/* Every state into a checkpoint file, every object destroyed and created afresh from the
 * header, every state loaded back: what a program resuming in a new process does. */
static int save_and_reload(const traj *t, const setup *su, objs *o, const char *workdir, int step, traj_result *r) {
    static const blob_ops ops[5] = {OPS(params), OPS(optim), OPS(sched), OPS(monitor), OPS(accum)};
    char path[1024];
    char safe[sizeof t->name];
    for (size_t i = 0; i < sizeof safe; i++) { /* the name is the file's: keep it a plain file name */
        char ch = t->name[i];
        safe[i] = (ch == '/' || ch == '\\') ? '_' : ch;
        if (!ch) break;
    }
    snprintf(path, sizeof path, "%s/traj-%ld-%s.ckpt", workdir, (long)getpid(), safe);
    void *objects[5] = {o->params, o->opt, o->sched, o->mon, o->acc};
    gopt_ckpt_writer *w;
    LIB(gopt_ckpt_writer_begin(path, &w), r, "resume at step %d", step);
    for (int i = 0; i < 5; i++) {
        if (!objects[i]) continue;
        size_t n = ops[i].size(objects[i]);
        void *buf = malloc(n ? n : 1);
        if (!buf) {
            gopt_ckpt_writer_abort(w);
            return fail(r, "out of memory");
        }
        gopt_status st = ops[i].save(objects[i], buf, n);
        if (st == GOPT_OK) st = gopt_ckpt_writer_add(w, ops[i].name, buf, n);
        free(buf);
        if (st != GOPT_OK) {
            gopt_ckpt_writer_abort(w);
            return fail(r, "resume at step %d: saving %s: %s", step, ops[i].name, gopt_last_error());
        }
    }
    LIB(gopt_ckpt_writer_commit(w), r, "resume at step %d", step);
    objs_free(o);
    if (objs_make(t, su, o, r)) return -1;
    void *fresh[5] = {o->params, o->opt, o->sched, o->mon, o->acc};
    gopt_ckpt *c;
    LIB(gopt_ckpt_open(path, &c), r, "resume at step %d", step);
    for (int i = 0; i < 5; i++) {
        if (!fresh[i]) continue;
        const void *data;
        size_t n;
        gopt_status st = gopt_ckpt_find(c, ops[i].name, &data, &n);
        if (st == GOPT_OK) st = ops[i].load(fresh[i], data, n);
        if (st != GOPT_OK) {
            gopt_ckpt_close(c);
            return fail(r, "resume at step %d: loading %s: %s", step, ops[i].name, gopt_last_error());
        }
    }
    gopt_ckpt_close(c);
    remove(path);
    return 0;
}

/* ---- one run -------------------------------------------------------------------------------- */

/* What a run leaves after each step, for the bit-for-bit check of the resumed run. */
static size_t snap_size(const traj *t) { return (size_t)t->numel + 2 * (size_t)t->ngroups; }

static int run(const traj *t, const setup *su, const char *workdir, int resume, float *snaps, traj_result *r) {
    objs o;
    if (objs_make(t, su, &o, r)) return objs_free(&o), -1;
    int rc = 0;
    char what[96];
    for (int g = 0; g < t->ngroups; g++) {
        if (t->lr_seen[g]) snprintf(what, sizeof what, "lr before step 1 group %d", g), note(r, what, gopt_optim_get_lr(o.opt, g), t->exp_lr[g]);
        if (t->mom_seen[g])
            snprintf(what, sizeof what, "momentum before step 1 group %d", g), note(r, what, gopt_optim_get_momentum(o.opt, g), t->exp_mom[g]);
    }
    for (int s = 1; s <= t->steps && rc == 0; s++) {
        float *grads = gopt_params_grads(o.params);
        double loss = 0;
        for (int m = 1; m <= t->accum && rc == 0; m++) {
            size_t row = (size_t)(s - 1) * (size_t)t->accum + (size_t)(m - 1);
            const float *src = t->grad + row * (size_t)t->numel;
            for (int i = 0; i < t->ntensors; i++) /* backward accumulates */
                for (int64_t x = 0; x < t->tensor[i].numel; x++) grads[o.offset[i] + x] += src[t->tensor[i].offset + x];
            loss += t->loss_seen[row] ? t->loss[row] : 0.0;
            if (o.acc) {
                int now = -1;
                gopt_status st = gopt_accum_add(o.acc, o.params, &now);
                if (st != GOPT_OK) rc = fail(r, "step %d: gopt_accum_add: %s", s, gopt_last_error());
                else if (now != (m == t->accum)) rc = fail(r, "step %d micro-batch %d: gopt_accum_add said step_now = %d", s, m, now);
            }
        }
        if (rc) break;
        loss /= t->accum;
        int apply = 1;
        if (o.mon) {
            gopt_monitor_report rep;
            gopt_status st = gopt_monitor_before_step(o.mon, loss, &rep);
            if (st != GOPT_OK) { rc = fail(r, "step %d: gopt_monitor_before_step: %s", s, gopt_last_error()); break; }
            apply = rep.apply;
        }
        if (t->exp_applied[s - 1] >= 0 && t->exp_applied[s - 1] != apply) {
            rc = fail(r, "step %d: the update was %s, PyTorch's loop %s it", s, apply ? "applied" : "skipped",
                      t->exp_applied[s - 1] ? "applied" : "skipped");
            break;
        }
        gopt_status st = GOPT_OK;
        const char *call = "";
        if (apply) {
            float norm;
            if (su->clip_norm) st = gopt_clip_grad_norm(o.params, su->max_norm, su->norm_type, 0, &norm), call = "gopt_clip_grad_norm";
            if (su->clip_value) st = gopt_clip_grad_value(o.params, su->clip_limit), call = "gopt_clip_grad_value";
            if (st == GOPT_OK) st = gopt_optim_step(o.opt), call = "gopt_optim_step";
            if (st == GOPT_OK && o.mon) st = gopt_monitor_after_step(o.mon), call = "gopt_monitor_after_step";
        }
        /* the scheduler steps on every iteration, skipped or not (sched.h, monitor.h) */
        if (st == GOPT_OK && o.sched) {
            if (su->plateau) {
                if (!t->metric_seen[s - 1]) { rc = fail(r, "step %d: ReduceLROnPlateau needs 'metric %d'", s, s); break; }
                st = gopt_sched_step_metric(o.sched, t->metric[s - 1]), call = "gopt_sched_step_metric";
            } else {
                st = gopt_sched_step(o.sched), call = "gopt_sched_step";
            }
        }
        if (st != GOPT_OK) { rc = fail(r, "step %d: %s: %s (%s)", s, call, gopt_status_str(st), gopt_last_error()); break; }
        gopt_optim_zero_grad(o.opt);

        const float *values = gopt_params_values(o.params);
        for (int g = 0; g < t->ngroups; g++) {
            size_t at = (size_t)s * TRAJ_MAX_GROUPS + (size_t)g;
            if (t->lr_seen[at]) snprintf(what, sizeof what, "lr after step %d group %d", s, g), note(r, what, gopt_optim_get_lr(o.opt, g), t->exp_lr[at]);
            if (t->mom_seen[at])
                snprintf(what, sizeof what, "momentum after step %d group %d", s, g), note(r, what, gopt_optim_get_momentum(o.opt, g), t->exp_mom[at]);
        }
        for (int i = 0; i < t->ntensors; i++) {
            if (!t->param_seen[(size_t)(s - 1) * (size_t)t->ntensors + (size_t)i]) continue;
            const float *want = t->exp_param + (size_t)(s - 1) * (size_t)t->numel + t->tensor[i].offset;
            for (int64_t x = 0; x < t->tensor[i].numel; x++) {
                snprintf(what, sizeof what, "tensor %d[%lld] after step %d", i, (long long)x, s);
                note(r, what, values[o.offset[i] + x], want[x]);
            }
        }
        /* snapshot: parameters, LRs and momenta as the run leaves them */
        float *snap = malloc(snap_size(t) * sizeof *snap);
        if (!snap) { rc = fail(r, "out of memory"); break; }
        for (int i = 0; i < t->ntensors; i++)
            memcpy(snap + t->tensor[i].offset, values + o.offset[i], (size_t)t->tensor[i].numel * sizeof *snap);
        for (int g = 0; g < t->ngroups; g++) {
            snap[t->numel + 2 * g] = gopt_optim_get_lr(o.opt, g);
            snap[t->numel + 2 * g + 1] = gopt_optim_get_momentum(o.opt, g);
        }
        float *mine = snaps + (size_t)(s - 1) * snap_size(t);
        if (!resume) memcpy(mine, snap, snap_size(t) * sizeof *snap);
        else if (s > resume && memcmp(mine, snap, snap_size(t) * sizeof *snap) != 0)
            rc = fail(r, "step %d: the run resumed after step %d differs from the uninterrupted run (bits)", s, resume);
        free(snap);
        if (rc == 0 && s == resume) rc = save_and_reload(t, su, &o, workdir, s, r);
    }
    objs_free(&o);
    return rc;
}

int traj_replay(const traj *t, const char *workdir, traj_result *r) {
    memset(r, 0, sizeof *r);
    setup *su = calloc(1, sizeof *su);
    float *snaps = calloc((size_t)t->steps * snap_size(t), sizeof *snaps);
    int rc = !su || !snaps ? fail(r, "out of memory") : setup_make(t, su, r);
    if (rc == 0) rc = run(t, su, workdir, 0, snaps, r);
    if (rc == 0 && t->resume) {
        rc = run(t, su, workdir, t->resume, snaps, r);
        if (rc == 0) r->resumed = 1;
    }
    free(snaps);
    free(su);
    return rc;
}
