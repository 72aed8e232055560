/* See trainer.h. */
#include "trainer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct trainer {
    trainer_config cfg;
    trainer_task task;
    gopt_net *net;
    gopt_params *params;
    gopt_optim *opt;
    gopt_sched *sched;      /* NULL: constant LR */
    int sched_per_epoch;    /* plateau: stepped in trainer_end_epoch */
    gopt_sched *warmup;     /* plateau with warmup: the linear warmup, stepped per step */
    int64_t warmup_steps;   /* its length in optimizer steps */
    gopt_monitor *mon;
    gopt_accum *accum;
    gopt_average *avg;      /* --ema / --swa-start */
    gopt_sched *swalr;      /* the SWA phase's scheduler, created when the phase begins */
    void *net_state;        /* the net's own state (BatchNorm statistics) kept during evaluation */
    size_t net_state_size;
    int eval_swapped, eval_sf, eval_saved; /* what trainer_eval_begin did */
    int64_t epoch, steps, sched_steps, batch_in_epoch;
    double first_loss;
    double recent_loss[5]; /* the last losses, for the divergence test */
    int64_t recent_count;
    int diverged;
};

static const char *const schedule_names[SCHED_COUNT] = {"constant", "onecycle", "cosine", "step",
                                                        "multistep", "exponential", "plateau"};

const char *trainer_schedule_name(trainer_schedule s) {
    return (unsigned)s < SCHED_COUNT ? schedule_names[s] : "?";
}

int trainer_schedule_from_name(const char *name, trainer_schedule *out) {
    for (int i = 0; i < SCHED_COUNT; i++)
        if (strcmp(name, schedule_names[i]) == 0) {
            *out = (trainer_schedule)i;
            return 0;
        }
    if (strcmp(name, "none") == 0) {
        *out = SCHED_CONSTANT;
        return 0;
    }
    return -1;
}

trainer_config trainer_config_default(void) {
    trainer_config c;
    memset(&c, 0, sizeof c);
    c.depth = 8;
    c.width = 1.0f;
    c.batch = 128;
    c.seed = 1;
    c.augment = 1;
    c.crop_padding = 4;
    c.optim = gopt_optim_config_default(GOPT_ALGO_SGD);
    c.schedule = SCHED_CONSTANT;
    c.accum = 1;
    c.skip_nonfinite = 1;
    c.diverge_factor = 0;
    return c;
}

int trainer_fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

#define fail trainer_fail
#define LIB TRAINER_LIB

int trainer_rank(const trainer_config *cfg) { return cfg->dist ? gopt_dist_rank(cfg->dist) : 0; }
int trainer_world(const trainer_config *cfg) { return cfg->dist ? gopt_dist_size(cfg->dist) : 1; }

int trainer_local_batch(const trainer_config *cfg, int *local, char *err, size_t errlen) {
    int world = trainer_world(cfg);
    if (cfg->batch < 1) return fail(err, errlen, "batch = %d must be >= 1", cfg->batch);
    if (cfg->batch % world != 0)
        return fail(err, errlen,
                    "the batch of %d does not divide over the %d processes of this run: the batch is global "
                    "and each process trains on an equal share (give a multiple of %d)",
                    cfg->batch, world, world);
    *local = cfg->batch / world;
    return 0;
}

int trainer_agree(gopt_dist *d, int rc, char *err, size_t errlen) {
    if (!d) return rc;
    double failed[1] = {rc != 0};
    gopt_status s = gopt_dist_sum(d, failed, 1);
    if (s != GOPT_OK) {
        if (rc == 0) fail(err, errlen, "agreeing on a failure: %s (%s)", gopt_status_str(s), gopt_last_error());
        return -1; /* the world is broken: no clean exit */
    }
    if (failed[0] == 0) return 0;
    if (rc == 0)
        fail(err, errlen, "stopped: %d of the %d processes failed (their messages say why)", (int)failed[0],
             gopt_dist_size(d));
    return TRAINER_FAILED_ALL;
}

static gopt_sched_config warmup_part(int64_t warmup) {
    gopt_sched_config w = gopt_sched_config_default(GOPT_SCHED_LINEAR);
    w.start_factor = 0.01;
    w.end_factor = 1.0;
    w.total_iters = warmup;
    return w;
}

/* Wrap `main` after a linear warmup of `warmup` steps (SequentialLR), or return it as is. */
static int make_sched(trainer *t, const gopt_sched_config *main_part, int64_t warmup, char *err, size_t errlen) {
    if (warmup <= 0) {
        LIB(gopt_sched_create(main_part, t->opt, &t->sched), "scheduler");
        return 0;
    }
    gopt_sched_config parts[2] = {warmup_part(warmup), *main_part};
    gopt_sched_config seq = gopt_sched_config_default(GOPT_SCHED_SEQUENTIAL);
    seq.children = parts;
    seq.n_children = 2;
    seq.milestones[0] = warmup;
    seq.n_milestones = 1;
    LIB(gopt_sched_create(&seq, t->opt, &t->sched), "warmup scheduler");
    return 0;
}

static int build_schedule(trainer *t, char *err, size_t errlen) {
    const trainer_config *c = &t->cfg;
    int64_t total = c->total_steps > 0 ? c->total_steps : 1;
    int64_t warm = c->warmup_steps < total ? c->warmup_steps : total - 1;
    int64_t rest = total - (warm > 0 ? warm : 0);
    if (rest < 1) rest = 1;
    gopt_sched_config s;
    switch (c->schedule) {
    case SCHED_CONSTANT:
        if (warm > 0) {
            gopt_sched_config w = warmup_part(warm);
            LIB(gopt_sched_create(&w, t->opt, &t->sched), "warmup scheduler");
        }
        return 0;
    case SCHED_ONECYCLE: {
        s = gopt_sched_config_default(GOPT_SCHED_ONECYCLE);
        s.max_lr = c->optim.lr;
        s.total_steps = total;
        s.pct_start = warm > 0 ? (double)warm / (double)total : 0.25;
        s.anneal_strategy = GOPT_ANNEAL_COS;
        float m = gopt_optim_get_momentum(t->opt, 0);
        s.cycle_momentum = isfinite(m) && m > 0;
        if (s.cycle_momentum) {
            s.max_momentum = m;
            s.base_momentum = m > 0.1 ? m - 0.1 : 0;
        }
        LIB(gopt_sched_create(&s, t->opt, &t->sched), "one-cycle scheduler");
        return 0;
    }
    case SCHED_COSINE:
        s = gopt_sched_config_default(GOPT_SCHED_COSINE);
        s.T_max = rest;
        s.eta_min = 0;
        return make_sched(t, &s, warm, err, errlen);
    case SCHED_STEP:
        s = gopt_sched_config_default(GOPT_SCHED_STEP);
        s.step_size = rest / 3 > 0 ? rest / 3 : 1;
        s.gamma = 0.1;
        return make_sched(t, &s, warm, err, errlen);
    case SCHED_MULTISTEP:
        s = gopt_sched_config_default(GOPT_SCHED_MULTISTEP);
        s.milestones[0] = rest / 2 > 0 ? rest / 2 : 1;
        s.milestones[1] = rest * 3 / 4 > s.milestones[0] ? rest * 3 / 4 : s.milestones[0] + 1;
        s.n_milestones = 2;
        s.gamma = 0.1;
        return make_sched(t, &s, warm, err, errlen);
    case SCHED_EXPONENTIAL:
        s = gopt_sched_config_default(GOPT_SCHED_EXPONENTIAL);
        s.gamma = pow(0.01, 1.0 / (double)rest);
        return make_sched(t, &s, warm, err, errlen);
    case SCHED_PLATEAU:
        s = gopt_sched_config_default(GOPT_SCHED_PLATEAU);
        s.mode = GOPT_PLATEAU_MIN;
        s.factor = 0.2;
        s.patience = 1;
        s.threshold = 1e-3;
        t->sched_per_epoch = 1;
        LIB(gopt_sched_create(&s, t->opt, &t->sched), "plateau scheduler");
        if (warm > 0) { /* a second scheduler, created last so that its 1% LR is the first one */
            gopt_sched_config w = warmup_part(warm);
            LIB(gopt_sched_create(&w, t->opt, &t->warmup), "warmup scheduler");
            t->warmup_steps = warm;
        }
        return 0;
    default:
        return fail(err, errlen, "unknown schedule %d", (int)c->schedule);
    }
}

/* The SWA phase begins: SWALR over the optimizer, from the LR the main schedule left. */
static int start_swalr(trainer *t, char *err, size_t errlen) {
    gopt_sched_config c = gopt_sched_config_default(GOPT_SCHED_SWALR);
    c.swa_lr = t->cfg.swa_lr;
    c.anneal_epochs = t->cfg.swa_anneal_epochs;
    c.anneal_strategy = GOPT_ANNEAL_COS;
    LIB(gopt_sched_create(&c, t->opt, &t->swalr), "SWALR");
    return 0;
}

int trainer_create_custom(const trainer_config *cfg, gopt_net *net, const trainer_task *task, trainer **out,
                          char *err, size_t errlen) {
    *out = NULL;
    if (!cfg || !net || !task) {
        gopt_net_destroy(net);
        if (task && task->destroy) task->destroy(task->ctx);
        return fail(err, errlen, "trainer: config, net and task are required");
    }
    trainer *t = calloc(1, sizeof *t);
    if (!t) {
        gopt_net_destroy(net);
        if (task->destroy) task->destroy(task->ctx);
        return fail(err, errlen, "out of memory");
    }
    t->cfg = *cfg;
    t->net = net;
    t->task = *task;
    t->first_loss = NAN;
    *out = t; /* destroyed by the caller on failure too */
    if (cfg->accum < 1) return fail(err, errlen, "accum = %d must be >= 1", cfg->accum);
    int local_batch;
    if (trainer_local_batch(cfg, &local_batch, err, errlen)) return -1;
    t->params = gopt_net_params(t->net);
    if (cfg->init_weights) { /* e.g. weights initialised in PyTorch: strict, every name and shape */
        gopt_weights_config wc = gopt_weights_config_default();
        gopt_weights_report rep;
        size_t len = strlen(cfg->init_weights);
        if (len > 4 && strcmp(cfg->init_weights + len - 4, ".npz") == 0)
            LIB(gopt_net_load_npz(t->net, cfg->init_weights, &wc, &rep), "--init-weights");
        else
            LIB(gopt_net_load_safetensors(t->net, cfg->init_weights, &wc, &rep), "--init-weights");
    }
    if (!cfg->decay_norm_bias) {
        gopt_group_config nd = gopt_group_config_default();
        nd.weight_decay = 0.0f;
        LIB(gopt_params_group_by_tag(t->params, GOPT_TAG_BIAS | GOPT_TAG_NORM, &nd, NULL), "no-decay group");
    }
    /* Muon: what it should not take runs AdamW inside it (Keras' Muon, Keller Jordan's
     * recipe): vectors by the optimizer's own 1-D rule, and here the embedding tables and the
     * output layer (the last weight tensor) in a group of their own */
    int muon_group = -1;
    if (cfg->optim.algo == GOPT_ALGO_MUON) {
        int n = gopt_params_count(t->params), last_weight = -1;
        for (int i = 0; i < n; i++) {
            gopt_param_info pi;
            if (gopt_params_info(t->params, i, &pi) == GOPT_OK && pi.tag == GOPT_TAG_WEIGHT) last_weight = i;
        }
        for (int i = 0; i < n; i++) {
            gopt_param_info pi;
            LIB(gopt_params_info(t->params, i, &pi), "tensor info");
            if (i != last_weight && !(pi.tag == GOPT_TAG_WEIGHT && strstr(pi.name, "embed"))) continue;
            if (muon_group < 0) LIB(gopt_params_add_group(t->params, NULL, &muon_group), "Muon's AdamW group");
            LIB(gopt_params_set_group(t->params, i, muon_group), "Muon's AdamW group");
        }
    }
    gopt_dist *d = cfg->dist;
    if (d) {
        LIB(gopt_dist_optim_create(d, &cfg->optim, t->params, &t->opt), "optimizer");
        /* the same net, optimizer and options everywhere, before any collective over the net */
        const char *vt = cfg->verify_text ? cfg->verify_text : "";
        gopt_status vs = gopt_dist_verify(d, t->params, t->opt, vt, strlen(vt));
        if (vs != GOPT_OK) { /* a mismatch (EINVAL) is reported on every rank: they leave together */
            fail(err, errlen, "checking that every process built the same run: %s (%s)", gopt_status_str(vs),
                 gopt_last_error());
            return vs == GOPT_EINVAL ? TRAINER_FAILED_ALL : -1;
        }
        LIB(gopt_dist_broadcast_net(d, t->net), "broadcasting rank 0's net");
        if (cfg->sync_bn) LIB(gopt_dist_sync_batchnorm(d, t->net, 1), "SyncBatchNorm");
    } else {
        LIB(gopt_optim_create(&cfg->optim, t->params, &t->opt), "optimizer");
    }
    if (muon_group >= 0) {
        gopt_optim_config aw = gopt_optim_config_default(GOPT_ALGO_ADAMW);
        aw.lr = cfg->optim.lr * cfg->optim.adamw_lr_ratio;
        aw.beta1 = cfg->optim.beta1;
        aw.beta2 = cfg->optim.beta2;
        aw.eps = cfg->optim.adamw_eps;
        aw.weight_decay = cfg->optim.adamw_weight_decay;
        LIB(gopt_optim_set_group_config(t->opt, muon_group, &aw), "Muon's AdamW group (embeddings, output layer)");
    }
    if (build_schedule(t, err, errlen)) return -1;

    gopt_monitor_config mc = gopt_monitor_config_default();
    mc.skip_nonfinite = cfg->skip_nonfinite;
    mc.skip_spikes = cfg->skip_spikes;
    LIB(gopt_monitor_create(&mc, t->params, t->opt, &t->mon), "monitor");
    if (d) LIB(gopt_dist_attach_monitor(d, t->mon, t->opt), "monitor over the ranks");
    LIB(gopt_accum_create(cfg->accum, &t->accum), "accumulation");
    if (cfg->ema && cfg->swa_start > 0)
        return fail(err, errlen, "an EMA and SWA at once: choose one weight average (--ema or --swa-start)");
    if (cfg->ema || cfg->swa_start > 0) {
        gopt_average_config ac = gopt_average_config_default(cfg->ema ? GOPT_AVERAGE_EMA : GOPT_AVERAGE_SWA);
        if (cfg->ema) ac.decay = cfg->ema_decay;
        LIB(gopt_average_create(&ac, t->params, &t->avg), "weight average");
    }
    if (cfg->swa_start > 0 && !(isfinite(cfg->swa_lr) && cfg->swa_lr >= 0))
        return fail(err, errlen, "swa_lr = %g must be finite and >= 0", cfg->swa_lr);
    if (cfg->swa_anneal_epochs < 0)
        return fail(err, errlen, "swa_anneal_epochs = %d must be >= 0", cfg->swa_anneal_epochs);
    if (cfg->swa_start == 1 && start_swalr(t, err, errlen)) return -1; /* the SWA phase from the start */
    t->net_state_size = gopt_net_state_size(t->net);
    t->net_state = malloc(t->net_state_size ? t->net_state_size : 1);
    if (!t->net_state) return fail(err, errlen, "out of memory for the net state");
    if (t->task.batches_per_epoch(t->task.ctx) < 1) return fail(err, errlen, "the training data has no full batch");
    return t->task.seek(t->task.ctx, 0, 0, err, errlen);
}

void trainer_destroy(trainer *t) {
    if (!t) return;
    if (t->task.destroy) t->task.destroy(t->task.ctx);
    gopt_accum_destroy(t->accum);
    gopt_sched_destroy(t->swalr);
    gopt_average_destroy(t->avg);
    free(t->net_state);
    gopt_monitor_destroy(t->mon);
    gopt_sched_destroy(t->warmup);
    gopt_sched_destroy(t->sched);
    gopt_optim_destroy(t->opt);
    gopt_net_destroy(t->net);
    free(t);
}

int64_t trainer_epoch(const trainer *t) { return t->epoch; }
int64_t trainer_steps(const trainer *t) { return t->steps; }
int64_t trainer_steps_per_epoch(const trainer *t) {
    return t->task.batches_per_epoch(t->task.ctx) / t->cfg.accum;
}
gopt_net *trainer_net(trainer *t) { return t->net; }
gopt_optim *trainer_optim(trainer *t) { return t->opt; }
gopt_monitor *trainer_monitor(trainer *t) { return t->mon; }
gopt_average *trainer_average(trainer *t) { return t->avg; }
int trainer_in_swa(const trainer *t) { return t->swalr != NULL; }
int trainer_diverged(const trainer *t) { return t->diverged; }
void *trainer_task_ctx(trainer *t) { return t->task.ctx; }
const trainer_config *trainer_get_config(const trainer *t) { return &t->cfg; }

/* ||update|| / ||params|| over the whole arena, from the monitor's per-tensor norms. */
static double update_ratio(const trainer *t) {
    double upd = 0, par = 0;
    int n = gopt_params_count(t->params);
    for (int i = 0; i < n; i++) {
        gopt_monitor_tensor s;
        if (gopt_monitor_tensor_stats(t->mon, i, &s) != GOPT_OK || !isfinite(s.update_norm)) continue;
        upd += s.update_norm * s.update_norm;
        par += s.param_norm * s.param_norm;
    }
    return par > 0 ? sqrt(upd / par) : NAN;
}

int trainer_step_once(trainer *t, trainer_step *out, int *epoch_done, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    *epoch_done = 0;
    gopt_optim_zero_grad(t->opt);
    double loss_sum = 0;
    int64_t correct = 0, count = 0;
    const int64_t bpe = t->task.batches_per_epoch(t->task.ctx);
    for (int micro = 0; micro < t->cfg.accum; micro++) {
        if (t->batch_in_epoch >= bpe) { /* the epoch ended inside an accumulation window: start the next one */
            t->epoch++;
            t->batch_in_epoch = 0;
            if (t->task.seek(t->task.ctx, t->epoch, 0, err, errlen)) return -1;
        }
        trainer_batch b = {0};
        if (t->task.train_batch(t->task.ctx, t->net, t->cfg.label_smoothing, &b, err, errlen)) return -1;
        /* NaN/Inf in the data: the monitor skips the step even if the net swallowed them */
        if (b.input) LIB(gopt_monitor_check_input(t->mon, b.input, (size_t)b.input_n), "input check");
        t->batch_in_epoch++;
        correct += b.correct;
        count += b.count;
        loss_sum += b.loss;
        int step_now = 0;
        LIB(gopt_accum_add(t->accum, t->params, &step_now), "accumulate");
    }
    if (t->batch_in_epoch >= bpe || t->batch_in_epoch + t->cfg.accum > bpe) {
        /* the next step would not fit in this epoch: the epoch ends here */
        *epoch_done = 1;
    }
    gopt_dist *d = t->cfg.dist;
    double ranks = 1;
    if (d) {
        /* the gradient of the global batch on every rank (AGC needs whole rows: the whole
         * arena, also under ZeRO-1), then the step's figures summed over the ranks before
         * anything decides on them */
        if (t->cfg.agc > 0) LIB(gopt_dist_allreduce_grads(d, t->params), "gradient all-reduce");
        else LIB(gopt_dist_reduce_grads(d, t->opt), "gradient reduction");
        double v[3] = {loss_sum, (double)correct, (double)count};
        LIB(gopt_dist_sum(d, v, 3), "loss over the ranks");
        loss_sum = v[0];
        correct = (int64_t)v[1];
        count = (int64_t)v[2];
        ranks = gopt_dist_size(d);
    }
    t->steps++;
    out->step = t->steps;
    out->epoch = t->epoch;
    out->count = count;
    out->loss = loss_sum / (t->cfg.accum * ranks); /* every rank's micro-batch holds as many targets */
    out->acc = count ? (double)correct / (double)count : 0;
    out->lr = gopt_optim_get_lr(t->opt, 0);

    gopt_monitor_report rep;
    LIB(gopt_monitor_before_step(t->mon, out->loss, &rep), "monitor");
    out->grad_norm = rep.grad_norm;
    out->nonfinite = rep.nonfinite_grad || rep.nonfinite_loss || rep.nonfinite_input;
    out->spike = rep.spike;
    out->applied = rep.apply;
    out->update_ratio = NAN;
    if (rep.apply) {
        if (t->cfg.agc > 0) LIB(gopt_clip_agc(t->params, t->cfg.agc, 1e-3, GOPT_TAG_WEIGHT, NULL), "adaptive clipping");
        if (t->cfg.clip_norm > 0) {
            float total;
            if (d) LIB(gopt_dist_clip_grad_norm(d, t->opt, t->cfg.clip_norm, 2.0, 0, &total), "clip");
            else LIB(gopt_clip_grad_norm(t->params, t->cfg.clip_norm, 2.0, 0, &total), "clip");
            out->clipped = (float)t->cfg.clip_norm / (total + 1e-6f) < 1.0f; /* clip_grad_norm_'s coef */
        }
        if (t->cfg.clip_value > 0) {
            float maxabs;
            if (d) LIB(gopt_dist_grad_norm(d, t->opt, INFINITY, &maxabs), "max |g|");
            else LIB(gopt_norm(gopt_params_grads(t->params), gopt_params_numel(t->params), INFINITY, &maxabs), "max |g|");
            if (maxabs > (float)t->cfg.clip_value) {
                out->clipped = 1;
                /* under ZeRO-1 this also clamps the stale rest of the block: never read */
                LIB(gopt_clip_grad_value(t->params, t->cfg.clip_value), "clip by value");
            }
        }
        if (d) LIB(gopt_dist_step(d, t->opt), "optimizer step");
        else LIB(gopt_optim_step(t->opt), "optimizer step");
        LIB(gopt_monitor_after_step(t->mon), "monitor");
        out->update_ratio = update_ratio(t);
        if (t->avg && t->cfg.ema) LIB(gopt_average_update(t->avg), "EMA update");
    }
    /* The schedule counts batches, applied or skipped (monitor.h, as PyTorch's GradScaler
     * loops): it ends where total_steps says. Its last step is valid (sched.h, "End of a
     * schedule"); the guard only stops a resumed run that goes past the planned length. */
    if (t->sched && !t->swalr && !t->sched_per_epoch && t->sched_steps < t->cfg.total_steps) {
        LIB(gopt_sched_step(t->sched), "scheduler step");
        t->sched_steps++;
    }
    if (t->warmup && !t->swalr && t->sched_steps < t->warmup_steps) { /* plateau's warmup, in steps */
        LIB(gopt_sched_step(t->warmup), "warmup step");
        t->sched_steps++;
    }
    /* Diverged: a non-finite loss, or the mean of the last 5 losses above diverge_factor
     * times the first loss (a mean, so that one spike the run recovers from does not count). */
    if (isnan(t->first_loss) && isfinite(out->loss)) t->first_loss = out->loss;
    t->recent_loss[t->recent_count++ % 5] = out->loss;
    int64_t window = t->recent_count < 5 ? t->recent_count : 5;
    double recent = 0;
    for (int64_t i = 0; i < window; i++) recent += t->recent_loss[i];
    recent /= (double)window;
    if (!isfinite(out->loss) ||
        (t->cfg.diverge_factor > 0 && isfinite(t->first_loss) && recent > t->cfg.diverge_factor * t->first_loss))
        t->diverged = 1;
    out->diverged = t->diverged;
    if (*epoch_done) {
        /* SWA (torch's recipe, per epoch): from the end of epoch swa_start (1-based) on, fold
         * the weights into the average and step SWALR; the main schedule stops when the SWA
         * phase begins (SWALR takes the LR from where it left it) */
        if (t->cfg.swa_start > 0 && t->epoch + 1 >= t->cfg.swa_start) {
            if (!t->swalr && start_swalr(t, err, errlen)) return -1;
            LIB(gopt_average_update(t->avg), "SWA update");
            LIB(gopt_sched_step(t->swalr), "SWALR step");
        }
        if (t->cfg.swa_start > 0 && t->epoch + 2 == t->cfg.swa_start && !t->swalr &&
            start_swalr(t, err, errlen))
            return -1;
        t->epoch++;
        t->batch_in_epoch = 0;
        if (t->task.seek(t->task.ctx, t->epoch, 0, err, errlen)) return -1;
    }
    return 0;
}

int trainer_end_epoch(trainer *t, double val_loss, char *err, size_t errlen) {
    /* plateau: not during its warmup (the evaluations then see a rising LR) */
    if (t->sched && !t->swalr && t->sched_per_epoch && isfinite(val_loss) && t->sched_steps >= t->warmup_steps)
        LIB(gopt_sched_step_metric(t->sched, val_loss), "plateau scheduler");
    return 0;
}

/* ---- evaluation of the average or of Schedule-Free's x ------------------------------------ */

static int recalibrate(trainer *t, char *err, size_t errlen) {
    if (t->cfg.bn_recal < 1 || !t->task.recal_batch) return 0;
    LIB(gopt_net_recalibrate_bn(t->net, t->cfg.bn_recal, t->task.recal_batch, t->task.ctx),
        "recomputing the BatchNorm statistics");
    return 0;
}

int trainer_eval_begin(trainer *t, char *what, size_t whatlen, char *err, size_t errlen) {
    if (whatlen) what[0] = '\0';
    if (t->eval_swapped || t->eval_sf || t->eval_saved)
        return fail(err, errlen, "trainer_eval_begin twice without trainer_eval_end");
    int use_avg = t->avg && gopt_average_count(t->avg) > 0;
    const gopt_algo algo = t->cfg.optim.algo;
    int sf = !use_avg && (algo == GOPT_ALGO_ADAMW_SCHEDULEFREE || algo == GOPT_ALGO_SGD_SCHEDULEFREE);
    if (!use_avg && !sf) return 0; /* the training weights, as they are */
    if (sf) LIB(gopt_optim_eval(t->opt), "Schedule-Free eval mode");
    t->eval_sf = sf;
    LIB(gopt_net_state_save(t->net, t->net_state, t->net_state_size), "keeping the net state");
    t->eval_saved = 1;
    if (use_avg) {
        LIB(gopt_average_swap(t->avg), "swapping the average in");
        t->eval_swapped = 1;
        if (t->cfg.ema)
            snprintf(what, whatlen, "EMA %g of the weights", (double)t->cfg.ema_decay);
        else
            snprintf(what, whatlen, "SWA of %lld epoch%s", (long long)gopt_average_count(t->avg),
                     gopt_average_count(t->avg) == 1 ? "" : "s");
    } else {
        snprintf(what, whatlen, "Schedule-Free x");
    }
    return recalibrate(t, err, errlen);
}

int trainer_eval_end(trainer *t, char *err, size_t errlen) {
    int rc = 0;
    /* every restore is attempted, the first failure reported */
    if (t->eval_swapped) {
        gopt_status s = gopt_average_swap(t->avg);
        if (s != GOPT_OK) rc = fail(err, errlen, "swapping the average out: %s", gopt_last_error());
        t->eval_swapped = 0;
    }
    if (t->eval_sf) {
        gopt_status s = gopt_optim_train(t->opt);
        if (s != GOPT_OK && !rc) rc = fail(err, errlen, "back to train mode: %s", gopt_last_error());
        t->eval_sf = 0;
    }
    if (t->eval_saved) {
        gopt_status s = gopt_net_state_load(t->net, t->net_state, t->net_state_size);
        if (s != GOPT_OK && !rc) rc = fail(err, errlen, "restoring the net state: %s", gopt_last_error());
        t->eval_saved = 0;
    }
    return rc;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

typedef size_t (*size_fn)(const void *);
typedef gopt_status (*save_fn)(const void *, void *, size_t);

static int add_blob(gopt_ckpt_writer *w, const char *name, const void *obj, size_fn size, save_fn save, char *err,
                    size_t errlen) {
    size_t n = size(obj);
    void *buf = malloc(n ? n : 1);
    if (!buf) return fail(err, errlen, "out of memory saving '%s'", name);
    gopt_status s = save(obj, buf, n);
    if (s == GOPT_OK) s = gopt_ckpt_writer_add(w, name, buf, n);
    free(buf);
    if (s != GOPT_OK) return fail(err, errlen, "saving '%s': %s", name, gopt_last_error());
    return 0;
}

#define ADD(w, name, obj, kind) \
    add_blob(w, name, obj, (size_fn)gopt_##kind##_state_size, (save_fn)gopt_##kind##_state_save, err, errlen)

/* The section "dist": the world size and the ZeRO flag of the run that wrote it. */
typedef struct dist_section {
    uint32_t world, zero;
} dist_section;

/* The file, on one process (rank 0 under dist), from the optimizer and data blobs made by
 * the caller (collectively under dist). */
static int write_file(const trainer *t, const char *path, const char *config_text, const void *optim_blob,
                      size_t optim_size, const void *data_blob, size_t data_size, char *err, size_t errlen) {
    gopt_ckpt_writer *w;
    LIB(gopt_ckpt_writer_begin(path, &w), "checkpoint");
    uint64_t counters[4] = {(uint64_t)t->epoch, (uint64_t)t->steps, (uint64_t)t->sched_steps,
                            (uint64_t)t->batch_in_epoch};
    int rc = ADD(w, "params", t->params, params) || ADD(w, "net", t->net, net);
    if (!rc && gopt_ckpt_writer_add(w, "optim", optim_blob, optim_size) != GOPT_OK)
        rc = fail(err, errlen, "saving 'optim': %s", gopt_last_error());
    rc = rc || ADD(w, "monitor", t->mon, monitor) || ADD(w, "accum", t->accum, accum) ||
         (t->sched && ADD(w, "sched", t->sched, sched)) || (t->warmup && ADD(w, "warmup", t->warmup, sched)) ||
         (t->avg && ADD(w, "average", t->avg, average)) || (t->swalr && ADD(w, "swalr", t->swalr, sched));
    if (!rc && gopt_ckpt_writer_add(w, "data", data_blob, data_size) != GOPT_OK)
        rc = fail(err, errlen, "saving 'data': %s", gopt_last_error());
    if (!rc && gopt_ckpt_writer_add(w, "counters", counters, sizeof counters) != GOPT_OK)
        rc = fail(err, errlen, "saving counters: %s", gopt_last_error());
    double watch[7] = {t->first_loss, (double)t->recent_count};
    memcpy(watch + 2, t->recent_loss, sizeof t->recent_loss);
    if (!rc && gopt_ckpt_writer_add(w, "divergence", watch, sizeof watch) != GOPT_OK)
        rc = fail(err, errlen, "saving the divergence watch: %s", gopt_last_error());
    if (!rc && config_text && gopt_ckpt_writer_add_text(w, "config", config_text) != GOPT_OK)
        rc = fail(err, errlen, "saving config: %s", gopt_last_error());
    if (!rc && t->cfg.dist) {
        dist_section ds = {(uint32_t)gopt_dist_size(t->cfg.dist), (uint32_t)gopt_dist_get_config(t->cfg.dist)->zero};
        if (gopt_ckpt_writer_add(w, "dist", &ds, sizeof ds) != GOPT_OK)
            rc = fail(err, errlen, "saving 'dist': %s", gopt_last_error());
    }
    if (rc) {
        gopt_ckpt_writer_abort(w);
        return -1;
    }
    LIB(gopt_ckpt_writer_commit(w), "checkpoint commit");
    return 0;
}

int trainer_save(const trainer *t, const char *path, const char *config_text, char *err, size_t errlen) {
    gopt_dist *d = t->cfg.dist;
    const int writer = !d || gopt_dist_rank(d) == 0;
    if (t->eval_swapped || t->eval_sf || gopt_optim_in_eval_mode(t->opt))
        return fail(err, errlen, "a checkpoint is saved with the training weights in train mode (after "
                                 "trainer_eval_end)");
    /* the optimizer state (gathered to rank 0 under ZeRO-1) and the task's state (the text
     * task gathers every rank's carried state): collective, so every rank makes them */
    size_t optim_size = d ? gopt_dist_optim_state_size(d, t->opt) : gopt_optim_state_size(t->opt);
    size_t data_size = t->task.state_size(t->task.ctx, t->net);
    void *optim_blob = writer ? malloc(optim_size ? optim_size : 1) : NULL;
    void *data_blob = malloc(data_size ? data_size : 1);
    if ((writer && !optim_blob) || !data_blob) {
        free(optim_blob);
        free(data_blob);
        return fail(err, errlen, "out of memory saving a checkpoint");
    }
    gopt_status s = d ? gopt_dist_optim_state_save(d, t->opt, optim_blob, writer ? optim_size : 0)
                      : gopt_optim_state_save(t->opt, optim_blob, optim_size);
    int rc = 0;
    if (s != GOPT_OK) rc = fail(err, errlen, "saving 'optim': %s", gopt_last_error());
    else if (t->task.state_save(t->task.ctx, t->net, data_blob, data_size, err, errlen)) rc = -1;
    if (!rc && writer) rc = write_file(t, path, config_text, optim_blob, optim_size, data_blob, data_size, err, errlen);
    free(optim_blob);
    free(data_blob);
    return trainer_agree(d, rc, err, errlen);
}

typedef gopt_status (*load_fn)(void *, const void *, size_t);

static int load_blob(const gopt_ckpt *c, const char *name, void *obj, load_fn load, char *err, size_t errlen) {
    const void *data;
    size_t size;
    if (gopt_ckpt_find(c, name, &data, &size) != GOPT_OK)
        return fail(err, errlen, "checkpoint has no '%s' section: %s", name, gopt_last_error());
    if (load(obj, data, size) != GOPT_OK)
        return fail(err, errlen, "checkpoint section '%s' does not fit this run: %s", name, gopt_last_error());
    return 0;
}

#define LOAD(c, name, obj, kind) load_blob(c, name, obj, (load_fn)gopt_##kind##_state_load, err, errlen)

static int load_file(trainer *t, const char *path, char *err, size_t errlen);

int trainer_load(trainer *t, const char *path, char *err, size_t errlen) {
    /* every rank reads the file (the same path on every host) */
    return trainer_agree(t->cfg.dist, load_file(t, path, err, errlen), err, errlen);
}

static int load_file(trainer *t, const char *path, char *err, size_t errlen) {
    gopt_ckpt *c;
    LIB(gopt_ckpt_open(path, &c), "checkpoint");
    const void *data;
    size_t size;
    uint64_t counters[4];
    int rc = 0;
    /* the world that wrote it: none = one process */
    dist_section ds = {1, 0};
    const int world = trainer_world(&t->cfg);
    if (gopt_ckpt_find(c, "dist", &data, &size) == GOPT_OK) {
        if (size != sizeof ds) rc = fail(err, errlen, "checkpoint '%s' has an invalid 'dist' section", path);
        else memcpy(&ds, data, sizeof ds);
    }
    if (!rc && ds.world != (uint32_t)world)
        rc = fail(err, errlen,
                  "checkpoint '%s' was written by a run of %u process%s and this run has %d: resume with the same "
                  "world size (mpirun -np %u) for an exact continuation",
                  path, ds.world, ds.world == 1 ? "" : "es", world, ds.world);
    if (!rc && (gopt_ckpt_find(c, "counters", &data, &size) != GOPT_OK || size != sizeof counters))
        rc = fail(err, errlen, "checkpoint '%s' has no valid 'counters' section", path);
    if (!rc && (t->sched != NULL) != (gopt_ckpt_has(c, "sched") != 0))
        rc = fail(err, errlen, "checkpoint '%s' was made with %s schedule", path, t->sched ? "no" : "a");
    if (!rc && (t->warmup != NULL) != (gopt_ckpt_has(c, "warmup") != 0))
        rc = fail(err, errlen, "checkpoint '%s' was made with %s warmup before its plateau schedule", path,
                  t->warmup ? "no" : "a");
    if (!rc && (t->avg != NULL) != (gopt_ckpt_has(c, "average") != 0))
        rc = fail(err, errlen, "checkpoint '%s' was made %s a weight average (--ema / --swa-start): resume with "
                  "the same options", path, t->avg ? "without" : "with");
    if (!rc && gopt_ckpt_has(c, "swalr") && t->cfg.swa_start <= 0)
        rc = fail(err, errlen, "checkpoint '%s' is in the SWA phase and this run has no --swa-start", path);
    /* Validate everything before changing anything: the task's data first (a checkpoint of
     * other data, e.g. another vocabulary, is refused by name), then each load checks its
     * own blob and leaves the object unchanged on failure, the strictest (params) first. */
    const void *task_data = NULL;
    size_t task_size = 0;
    if (!rc && gopt_ckpt_find(c, "data", &task_data, &task_size) != GOPT_OK)
        rc = fail(err, errlen, "checkpoint '%s' has no 'data' section (made by another program?)", path);
    if (!rc && t->task.state_check(t->task.ctx, t->net, task_data, task_size, err, errlen)) rc = -1;
    if (!rc) rc = LOAD(c, "params", t->params, params) || LOAD(c, "net", t->net, net) ||
                  LOAD(c, "optim", t->opt, optim) || LOAD(c, "monitor", t->mon, monitor) ||
                  LOAD(c, "accum", t->accum, accum) || (t->sched && LOAD(c, "sched", t->sched, sched)) ||
                  (t->avg && LOAD(c, "average", t->avg, average));
    /* Each scheduler load writes its LR to the optimizer: the one that set the LR last goes
     * last (the warmup, until the plateau has stepped). */
    if (!rc && t->warmup)
        rc = LOAD(c, "warmup", t->warmup, sched) ||
             (gopt_sched_last_epoch(t->sched) > 0 && LOAD(c, "sched", t->sched, sched));
    /* in the SWA phase SWALR set the LR last */
    if (!rc && gopt_ckpt_has(c, "swalr")) {
        if (!t->swalr) rc = start_swalr(t, err, errlen);
        if (!rc) rc = LOAD(c, "swalr", t->swalr, sched);
    } else if (!rc && t->swalr) {
        gopt_sched_destroy(t->swalr);
        t->swalr = NULL;
    }
    if (!rc && t->task.state_load(t->task.ctx, t->net, task_data, task_size, err, errlen)) rc = -1;
    if (!rc) {
        memcpy(counters, data, sizeof counters);
        t->epoch = (int64_t)counters[0];
        t->steps = (int64_t)counters[1];
        t->sched_steps = (int64_t)counters[2];
        t->batch_in_epoch = (int64_t)counters[3];
        double watch[7];
        if (gopt_ckpt_find(c, "divergence", &data, &size) == GOPT_OK && size == sizeof watch) {
            memcpy(watch, data, sizeof watch);
            t->first_loss = watch[0];
            t->recent_count = (int64_t)watch[1];
            memcpy(t->recent_loss, watch + 2, sizeof t->recent_loss);
        }
    }
    gopt_ckpt_close(c);
    return rc;
}
