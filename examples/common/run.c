/* See run.h. */
#define _POSIX_C_SOURCE 200809L
#include "run.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* --optimizer NAME (early: its defaults come before the hyperparameters) */
static int opt_optimizer(void *base, const char *name, const char *v) {
    run_options *o = base;
    gopt_algo algo;
    (void)name;
    if (cli_algo_from_name(v, &algo)) {
        cli_error("--optimizer: unknown algorithm '%s' (see --help)", v);
        return -1;
    }
    if (algo != o->algo) o->tc.optim = gopt_optim_config_default(algo);
    o->algo = algo;
    return 0;
}

/* after --optimizer, before the hyperparameters */
static void run_prepare(void *base) {
    run_options *o = base;
    /* Schedule-Free replaces the schedule (its own warmup, --warmup-steps): constant unless
     * --schedule says otherwise */
    if (cli_is_schedulefree(o->algo)) o->tc.schedule = SCHED_CONSTANT;
    /* Muon at its LR 0.02: its AdamW part at a tenth of it (--adamw-lr-ratio) */
    if (o->algo == GOPT_ALGO_MUON) o->tc.optim.adamw_lr_ratio = 0.1f;
}

static int opt_schedule(void *base, const char *name, const char *v) {
    run_options *o = base;
    (void)name;
    if (trainer_schedule_from_name(v, &o->tc.schedule)) {
        cli_error("--schedule: unknown schedule '%s' (see --help)", v);
        return -1;
    }
    return 0;
}

static int opt_ema(void *base, const char *name, const char *v) {
    run_options *o = base;
    char *end;
    (void)name;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= 0 && d < 1)) {
        cli_error("--ema: the decay '%s' is outside [0, 1): the average keeps DECAY of itself at each step "
                  "(0.999 is usual; 1 would never move)", v);
        return -1;
    }
    o->tc.ema = 1;
    o->tc.ema_decay = (float)d;
    return 0;
}

#define RO(f) offsetof(run_options, f)
static const cli_opt run_opts[] = {
    CLI_O("--epochs", "N", CLI_INT, RO(epochs), 1, 1000000, "per recipe", "length of the run (the schedules span it)"),
    CLI_O("--batch", "B", CLI_INT, RO(tc.batch), 1, 65536, NULL,
     "the global batch size. Under mpirun -np P each process trains on\nB / P of it (P must divide B)"),
    CLI_O("--max-steps", "N", CLI_I64, RO(max_steps), 1, 1000000000L, "",
     "stop after N optimizer steps (for tests and timing)"),
    CLI_O("--max-seconds", "S", CLI_DOUBLE, RO(max_seconds), 0.001, 1e9, "",
     "stop after S seconds of training (evaluation not counted)"),
    CLI_O("--eval-every", "N", CLI_I64, RO(eval_every), 0, 1000000000L, "", "also evaluate every N optimizer steps"),
    CLI_O("--eval-seconds", "S", CLI_DOUBLE, RO(eval_seconds), 0, 1e9, "", "also evaluate every S seconds of training"),
    {"--optimizer", "NAME", CLI_FN, 0, 0, 0, NULL,
     "sgd adagrad rmsprop adam adamw adadelta nadam radam adamax lion lamb\n"
     "adamw-sf sgd-sf (Schedule-Free AdamW / SGD, schedule_free 1.3; also by\n"
     "their registry names adamw_schedulefree, sgd_schedulefree)\n"
     "muon (torch.optim.Muon; conv weights as (out, in*kh*kw); vectors,\n"
     "embeddings and the output layer run AdamW inside it) adafactor.\n"
     "With adamw-sf/sgd-sf the schedule defaults to constant, evaluation and\n"
     "checkpoints use eval mode / train mode (evaluation reports x, with\n"
     "BatchNorm statistics recomputed at x)",
     opt_optimizer, 1},
    {"--optim", "NAME", CLI_FN, 0, 0, 0, "", "the same as --optimizer", opt_optimizer, 1},
    {"--ema", "DECAY", CLI_FN, 0, 0, 0, "",
     "evaluate an EMA of the weights (DECAY in [0, 1), e.g. 0.999),\nupdated after every applied step", opt_ema, 0},
    CLI_O("--swa-start", "E", CLI_INT, RO(tc.swa_start), 1, 1000000, "",
     "stochastic weight averaging from epoch E (1-based): the schedule\n"
     "stops there, SWALR anneals to --swa-lr over --swa-anneal-epochs\n"
     "and the average takes the weights at each epoch end;\nevaluation reports the average"),
    CLI_O("--swa-lr", "X", CLI_DOUBLE, RO(tc.swa_lr), 0, 1e30, "a tenth of --lr", "SWALR's target LR"),
    CLI_O("--swa-anneal-epochs", "N", CLI_INT, RO(tc.swa_anneal_epochs), 0, 1000000, NULL, "epochs of SWALR's cos anneal"),
    CLI_O("--bn-recal", "N", CLI_INT, RO(tc.bn_recal), 0, 1000000, NULL,
     "training batches over which BatchNorm statistics are recomputed\n"
     "before evaluating an average or Schedule-Free's x (0: keep the\ntraining statistics)"),
    CLI_O("--decay-norm-bias", NULL, CLI_FLAG, RO(tc.decay_norm_bias), 0, 0, NULL,
     "apply weight decay to biases and norm parameters too (default: exempt)"),
    {"--schedule", "S", CLI_FN, 0, 0, 0, "per recipe",
     "onecycle | cosine | step | multistep | exponential | plateau | constant", opt_schedule, 0},
    CLI_O("--warmup", "E", CLI_DOUBLE, RO(warmup_epochs), 0, 1000, NULL,
     "linear warmup over E epochs (fractions allowed), in optimizer steps;\n"
     "with plateau the evaluations during the warmup do not step it"),
    CLI_O("--clip-norm", "X", CLI_DOUBLE, RO(tc.clip_norm), 0, 1e30, NULL, "clip the global L2 gradient norm to X (0: off)"),
    CLI_O("--clip-value", "X", CLI_DOUBLE, RO(tc.clip_value), 0, 1e30, NULL,
     "then clamp every gradient element to [-X, X] (0: off)"),
    CLI_O("--agc", "X", CLI_DOUBLE, RO(tc.agc), 0, 1e30, NULL, "adaptive gradient clipping with factor X (0: off)"),
    CLI_O("--label-smoothing", "X", CLI_FLOAT, RO(tc.label_smoothing), 0, 1, "per recipe", "cross-entropy label smoothing"),
    CLI_O("--accum", "K", CLI_INT, RO(tc.accum), 1, 1024, NULL, "accumulate K micro-batches per optimizer step"),
    CLI_O("--skip-spikes", NULL, CLI_FLAG, RO(tc.skip_spikes), 0, 0, NULL, "monitor: skip the steps whose loss spikes"),
    CLI_O("--no-skip-nonfinite", NULL, CLI_FLAG_OFF, RO(tc.skip_nonfinite), 0, 0, NULL,
     "monitor: apply steps with NaN/Inf gradients (default: skip them)"),
    CLI_O("--diverge-factor", "X", CLI_DOUBLE, RO(tc.diverge_factor), 0, 1e30, NULL,
     "stop when the loss exceeds X times the first loss (0: only NaN/Inf)"),
    CLI_O("--threads", "T", CLI_INT, RO(threads), 1, 1024, "all cores; under mpirun, the host's cores / its ranks",
     "busy cores"),
    CLI_O("--zero", NULL, CLI_FLAG, RO(zero), 0, 0, NULL,
     "under mpirun: ZeRO stage 1, the optimizer state sharded over the\nprocesses (1/P of it each; not with lamb)"),
    CLI_O("--seed", "S", CLI_U64, RO(tc.seed), 0, 2147483647L, NULL, "weights, data order, dropout"),
    CLI_O("--checkpoint", "PATH", CLI_STR, RO(checkpoint), 0, 0, NULL, "save a checkpoint after every evaluation (atomic)"),
    CLI_O("--resume", "PATH", CLI_STR, RO(resume), 0, 0, NULL, "continue a run from its checkpoint, bit-exactly"),
    CLI_O("--log", "FILE", CLI_STR, RO(log), 0, 0, NULL, "per-step log, CSV (.csv) or JSON lines (.jsonl)"),
    CLI_O("--init-weights", "FILE", CLI_STR, RO(tc.init_weights), 0, 0, NULL,
     "start from these weights (.safetensors or .npz with PyTorch's state_dict\n"
     "names, e.g. initialised in PyTorch); every tensor must match"),
    CLI_O("--export", "FILE", CLI_STR, RO(export_weights), 0, 0, NULL,
     "write the final weights for PyTorch / NumPy: .safetensors, or .npz"),
    CLI_O("--test", "FILE", CLI_STR, RO(test), 0, 0, NULL,
     "evaluate on a held-out FILE (reported as test figures) instead of a split"),
};
#undef RO

static const char run_notes[] =
    "Data parallel: mpirun -np P PROGRAM OPTIONS runs P processes (MPI; across hosts with\n"
    "  --hostfile, the same binary and data paths everywhere) that train as one with the global\n"
    "  batch: the gradients are averaged, every step is decided on global values, rank 0 prints,\n"
    "  logs and writes the checkpoints; a checkpoint resumes only with the same P.\n";

void run_options_init(run_options *o, const trainer_config *tc) {
    memset(o, 0, sizeof *o);
    o->tc = *tc;
    o->algo = tc->optim.algo;
    o->tc.bn_recal = 20;
    o->tc.swa_anneal_epochs = 1;
    o->tc.swa_lr = NAN;
}

void run_cli_groups(run_options *o, const char *heading, cli_group out[2]) {
    cli_group run = {heading, run_opts, CLI_COUNT(run_opts), o, run_prepare, NULL};
    out[0] = run;
    out[1] = cli_optim_group(&o->tc.optim,
                             "Optimizer hyperparameters (torch.optim names; the defaults shown are the default "
                             "optimizer's,\n--optimizer brings its own):");
    out[1].notes = run_notes;
}

void run_options_given(run_options *o, const cli_spec *spec) {
    o->have_lr = cli_given(spec, "--lr");
    o->have_epochs = cli_given(spec, "--epochs");
    o->have_ls = cli_given(spec, "--label-smoothing");
    o->have_sched = cli_given(spec, "--schedule");
    o->have_batch = cli_given(spec, "--batch");
    o->have_clip = cli_given(spec, "--clip-norm");
}

int run_options_finish(run_options *o) {
    if (o->tc.ema && o->tc.swa_start > 0) {
        cli_error("--ema and --swa-start: choose one weight average");
        return -1;
    }
    if (o->tc.swa_start > 0 && o->epochs > 0 && o->tc.swa_start > o->epochs) {
        cli_error("--swa-start %d is after the last epoch (%d): the average would never be updated",
                  o->tc.swa_start, o->epochs);
        return -1;
    }
    if (isnan(o->tc.swa_lr)) o->tc.swa_lr = 0.1 * o->tc.optim.lr;
    return 0;
}

void run_options_describe(const run_options *o, const run_world *w, char *buf, size_t n) {
    const gopt_optim_config *c = &o->tc.optim;
    char extra[256] = "";
    int e = 0;
    if (c->l1 != 0) e += snprintf(extra + e, sizeof extra - (size_t)e, " l1=%g", c->l1);
    if (cli_is_schedulefree(c->algo))
        e += snprintf(extra + e, sizeof extra - (size_t)e, " sf_warmup_steps=%d r=%g weight_lr_power=%g",
                      c->warmup_steps, c->r, c->weight_lr_power);
    if (c->algo == GOPT_ALGO_MUON)
        e += snprintf(extra + e, sizeof extra - (size_t)e, " ns_steps=%d adamw_lr_ratio=%g adamw_wd=%g", c->ns_steps,
                      c->adamw_lr_ratio, c->adamw_weight_decay);
    if (c->algo == GOPT_ALGO_ADAFACTOR)
        e += snprintf(extra + e, sizeof extra - (size_t)e, " beta2_decay=%g eps2=%g clip_threshold=%g", c->beta2_decay,
                      c->eps2, c->clip_threshold);
    if (o->tc.ema) e += snprintf(extra + e, sizeof extra - (size_t)e, " ema=%g", (double)o->tc.ema_decay);
    if (o->tc.swa_start > 0)
        e += snprintf(extra + e, sizeof extra - (size_t)e, " swa_start=%d swa_lr=%g swa_anneal_epochs=%d",
                      o->tc.swa_start, o->tc.swa_lr, o->tc.swa_anneal_epochs);
    if ((o->tc.ema || o->tc.swa_start > 0 || cli_is_schedulefree(c->algo)) && e < (int)sizeof extra)
        snprintf(extra + e, sizeof extra - (size_t)e, " bn_recal=%d", o->tc.bn_recal);
    int len = snprintf(buf, n,
             "epochs=%d batch=%d optimizer=%s lr=%g momentum=%g nesterov=%d wd=%g beta1=%g beta2=%g eps=%g"
             "%s schedule=%s warmup=%g clip_norm=%g clip_value=%g agc=%g label_smoothing=%g accum=%d skip_spikes=%d seed=%llu",
             o->epochs, o->tc.batch, cli_algo_short_name(c->algo), c->lr, c->momentum, c->nesterov, c->weight_decay,
             c->beta1, c->beta2, c->eps, extra, trainer_schedule_name(o->tc.schedule), o->warmup_epochs, o->tc.clip_norm,
             o->tc.clip_value, o->tc.agc, o->tc.label_smoothing, o->tc.accum, o->tc.skip_spikes, (unsigned long long)o->tc.seed);
    if (w && w->size > 1 && len > 0 && (size_t)len < n)
        snprintf(buf + len, n - (size_t)len, " processes=%d zero=%d sync_bn=%d", w->size, o->zero, o->tc.sync_bn);
}

int run_check_batch(const run_options *o, const run_world *w) {
    if (o->tc.batch % w->size == 0) return 0;
    cli_error("--batch %d does not divide over the %d processes of this run (mpirun -np %d): the batch is "
              "global and each process trains on an equal share, so give a multiple of %d",
              o->tc.batch, w->size, w->size, w->size);
    return -1;
}

int run_world_init(run_world *w, int argc, char **argv) {
    memset(w, 0, sizeof *w);
    gopt_dist_config dc = gopt_dist_config_default();
    for (int i = 1; i < argc; i++) dc.zero |= !strcmp(argv[i], "--zero");
    gopt_status s = gopt_dist_create(&dc, &w->dist);
    if (s != GOPT_OK) {
        cli_error("joining the MPI world: %s (%s)", gopt_status_str(s), gopt_last_error());
        return -1;
    }
    w->rank = gopt_dist_rank(w->dist);
    w->size = gopt_dist_size(w->dist);
    /* started by mpirun with several processes, each alone: a build without MPI would train
     * P independent copies writing the same files */
    const char *launched = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
    if (w->size == 1 && launched && atol(launched) > 1) {
        cli_error("started as one of %ld processes by mpirun, but this process is alone in its world (%s): "
                  "rebuild with MPI (libopenmpi-dev) or run one process without mpirun",
                  atol(launched), gopt_dist_has_mpi() ? "MPI did not join the others" : "built without MPI");
        gopt_dist_destroy(w->dist);
        return -1;
    }
    cli_set_rank(w->rank, w->size);
    if (w->rank != 0 && !freopen("/dev/null", "w", stdout)) {
        cli_error("cannot silence the standard output of rank %d", w->rank);
        gopt_dist_destroy(w->dist);
        return -1;
    }
    return 0;
}

gopt_dist *run_world_dist(const run_world *w) { return w->size > 1 ? w->dist : NULL; }

void run_world_threads(const run_world *w, int threads) {
    if (threads > 0) {
        gopt_set_threads(threads);
        return;
    }
    if (w->size < 2) return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long local = w->size;
    const char *names[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"};
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(names[i]);
        if (v && atol(v) > 0) {
            local = atol(v);
            break;
        }
    }
    long per = cores > 0 ? cores / local : 1;
    gopt_set_threads(per > 0 ? (int)per : 1);
}

int run_world_exit(run_world *w, int rc, int code) {
    fflush(stdout);
    fflush(stderr);
    if (w->size > 1 && rc == -1) _exit(code); /* see run.h: MPI_Finalize would wait for the others */
    gopt_dist_destroy(w->dist);
    w->dist = NULL;
    return code;
}

int64_t run_warmup_steps(const run_options *o, int64_t spe) {
    return (int64_t)llround(o->warmup_epochs * (double)spe); /* every schedule, plateau too */
}

/* One CSV or JSONL row; < 0 with errno when the write failed (or an earlier one did). */
static int log_row(FILE *log, int jsonl, const trainer_step *st, double seconds, const char *ev, double vl,
                   double va) {
    int n;
    if (jsonl)
        n = fprintf(log,
                    "{\"step\":%lld,\"epoch\":%lld,\"loss\":%.6g,\"acc\":%.6g,\"lr\":%.6g,\"grad_norm\":%.6g,"
                    "\"update_ratio\":%.6g,\"applied\":%d,\"%s_loss\":%.6g,\"%s_acc\":%.6g,\"train_seconds\":%.3f}\n",
                    (long long)st->step, (long long)st->epoch, st->loss, st->acc, st->lr, st->grad_norm,
                    isfinite(st->update_ratio) ? st->update_ratio : -1, st->applied, ev, isfinite(vl) ? vl : -1, ev,
                    isfinite(va) ? va : -1, seconds);
    else
        n = fprintf(log, "%lld,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%.6g,%.6g,%.3f\n", (long long)st->step,
                    (long long)st->epoch, st->loss, st->acc, st->lr, st->grad_norm, st->update_ratio, st->applied, vl,
                    va, seconds);
    return n < 0 || ferror(log) ? -1 : 0;
}

/* The log could not be written: errno err (0: unknown, the stream's error flag was set by an
 * earlier buffered write). */
static int log_failed(const char *path, const char *what, int err, char *msg, size_t msglen) {
    const char *hint = err == EFBIG    ? " (the file size limit, `ulimit -f`, was reached)"
                       : err == ENOSPC ? " (the disk is full)"
                                       : "";
    return trainer_fail(msg, msglen, "%s log '%s' failed: %s%s", what, path, err ? strerror(err) : "write error",
                        hint);
}

int run_loop(const run_options *o, const run_spec *s, trainer *t, run_result *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    r->eval_loss = r->eval_acc = r->best_eval_loss = NAN;
    r->best_eval_acc = 0;
    FILE *log = NULL;
    int jsonl = 0, rc = 0;
    gopt_dist *dist = trainer_get_config(t)->dist;
    if (o->log && trainer_rank(trainer_get_config(t)) == 0) {
        size_t len = strlen(o->log);
        jsonl = len > 6 && !strcmp(o->log + len - 6, ".jsonl");
        errno = 0;
        log = fopen(o->log, o->resume ? "a" : "w");
        if (!log) rc = trainer_fail(err, errlen, "cannot open log '%s': %s", o->log, strerror(errno));
        else if (!jsonl && !o->resume &&
                 fprintf(log, "step,epoch,loss,acc,lr,grad_norm,update_ratio,applied,%s_loss,%s_acc,train_seconds\n",
                         s->eval_name, s->eval_name) < 0)
            rc = log_failed(o->log, "writing the header of", errno, err, errlen);
    }
    int opened = trainer_agree(dist, rc, err, errlen);
    if (opened) {
        if (log) fclose(log);
        return opened;
    }
    /* time limits on rank 0's clock, so that every rank evaluates and stops at the same step */
    const int sync_time = dist && (o->max_seconds > 0 || o->eval_seconds > 0);
    const int64_t spe = trainer_steps_per_epoch(t) > 0 ? trainer_steps_per_epoch(t) : 1;
    int64_t total = trainer_get_config(t)->total_steps;
    if (o->max_steps && o->max_steps < total) total = o->max_steps;
    /* a terminal: the redrawn progress bar. Not under mpirun, which hands every rank a
     * pseudo-terminal even when its own output goes to a file: plain lines there. */
    const int tty = isatty(STDOUT_FILENO) && !getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_RANK");
    const double wall0 = cli_now();
    double next_eval_time = o->eval_seconds > 0 ? o->eval_seconds : INFINITY;
    int64_t units = 0, steps_here = 0;
    double loss_ema = NAN, acc_ema = NAN;
    while (trainer_steps(t) < total && !trainer_diverged(t) &&
           !(o->max_seconds > 0 && r->train_seconds >= o->max_seconds)) {
        trainer_step st;
        int epoch_done;
        double t0 = cli_now();
        if (trainer_step_once(t, &st, &epoch_done, err, errlen)) {
            rc = -1;
            break;
        }
        r->train_seconds += cli_now() - t0;
        if (sync_time) {
            gopt_status bs = gopt_dist_broadcast(dist, &r->train_seconds, sizeof r->train_seconds, 0);
            if (bs != GOPT_OK) {
                rc = trainer_fail(err, errlen, "sharing rank 0's clock: %s", gopt_last_error());
                break;
            }
        }
        steps_here++;
        units += st.count;
        loss_ema = isnan(loss_ema) ? st.loss : 0.95 * loss_ema + 0.05 * st.loss;
        acc_ema = isnan(acc_ema) ? st.acc : 0.95 * acc_ema + 0.05 * st.acc;
        double rate = units / r->train_seconds;
        double eta = (double)(total - trainer_steps(t)) * r->train_seconds / (double)steps_here;
        if (o->max_seconds > 0 && o->max_seconds - r->train_seconds < eta) eta = o->max_seconds - r->train_seconds;
        char label[48];
        snprintf(label, sizeof label, "epoch %lld/%d", (long long)st.epoch + 1, o->epochs);
        int64_t in_epoch = (st.step - 1) % spe + 1;
        if (tty || epoch_done || in_epoch % 50 == 0)
            cli_progress(stdout, tty, label, in_epoch, spe, loss_ema, acc_ema, st.lr, rate, s->unit, eta, 0);
        int out_of_time = o->max_seconds > 0 && r->train_seconds >= o->max_seconds;
        int last = trainer_steps(t) >= total || trainer_diverged(t) || out_of_time;
        int timed = r->train_seconds >= next_eval_time;
        while (next_eval_time <= r->train_seconds) next_eval_time += o->eval_seconds;
        int stepped = o->eval_every > 0 && st.step % o->eval_every == 0;
        double vl = NAN, va = NAN;
        if (epoch_done || last || timed || stepped) {
            /* the average or Schedule-Free's x, with BatchNorm statistics for it; then
             * everything back as it was (trainer_eval_begin) */
            char what[96];
            if (trainer_eval_begin(t, what, sizeof what, err, errlen)) {
                trainer_eval_end(t, err + strlen(err), 0);
                rc = -1;
                break;
            }
            int ev = s->evaluate(s->eval_ctx, t, &vl, &va, err, errlen);
            if (trainer_eval_end(t, ev ? err + strlen(err) : err, ev ? 0 : errlen) || ev) {
                rc = -1;
                break;
            }
            if (trainer_end_epoch(t, vl, err, errlen)) {
                rc = -1;
                break;
            }
            r->evaluations++;
            r->eval_loss = vl;
            r->eval_acc = va;
            if (va > r->best_eval_acc) r->best_eval_acc = va;
            if (!(vl >= r->best_eval_loss)) r->best_eval_loss = vl;
            if (tty) fputc('\n', stdout);
            if (epoch_done && !timed && !stepped && o->eval_every == 0 && o->eval_seconds == 0)
                printf("epoch %lld: ", (long long)st.epoch + 1);
            else
                printf("step %lld (epoch %lld, %.1f s): ", (long long)st.step, (long long)st.epoch + 1,
                       r->train_seconds);
            printf("train loss %.4f acc %.2f%% | %s loss %.4f acc %.2f%%%s%s%s | lr %.4g | %.0f %s/s%s%s\n",
                   loss_ema, 100 * acc_ema, s->eval_name, vl, 100 * va, what[0] ? " (" : "", what,
                   what[0] ? ")" : "", st.lr, rate, s->unit, s->data_label ? " | " : "",
                   s->data_label ? s->data_label : "");
            fflush(stdout);
            if (o->checkpoint && (rc = trainer_save(t, o->checkpoint, s->config_text, err, errlen)) != 0) break;
        }
        /* A log that cannot be written (a full disk, `ulimit -f`) stops the run at once with
         * the reason. Rows are buffered: flushed at each evaluation, so that an error shows
         * no later than there. Rank 0 alone writes it: under mpirun this is a failure of one
         * rank (-1), and mpirun ends the others. */
        if (log) {
            errno = 0;
            if (log_row(log, jsonl, &st, r->train_seconds, s->eval_name, vl, va) != 0 ||
                (isfinite(vl) && fflush(log) != 0)) {
                rc = log_failed(o->log, "writing", errno, err, errlen);
                break;
            }
        }
        r->out_of_time = out_of_time;
    }
    r->units = units;
    r->wall_seconds = cli_now() - wall0;
    if (rc == 0 && o->export_weights && trainer_rank(trainer_get_config(t)) == 0) {
        gopt_weights_config wc = gopt_weights_config_default();
        size_t len = strlen(o->export_weights);
        gopt_status s2 = len > 4 && strcmp(o->export_weights + len - 4, ".npz") == 0
                             ? gopt_net_save_npz(trainer_net(t), o->export_weights, &wc)
                             : gopt_net_save_safetensors(trainer_net(t), o->export_weights, &wc);
        if (s2 != GOPT_OK) rc = trainer_fail(err, errlen, "--export: %s", gopt_last_error());
        else printf("weights written to %s\n", o->export_weights);
    }
    if (log) {
        errno = 0;
        int bad = ferror(log) != 0;
        int closed = fclose(log);
        if ((closed != 0 || bad) && rc == 0) rc = log_failed(o->log, "writing", closed != 0 ? errno : 0, err, errlen);
    }
    return rc;
}

void run_print_steps(FILE *f, trainer *t, const run_result *r, const char *unit) {
    gopt_monitor_counts mc;
    gopt_monitor_counts_get(trainer_monitor(t), &mc);
    fprintf(f,
            "  %lld optimizer steps (%lld applied, %lld skipped non-finite, %lld skipped spikes) in %.1f s of "
            "training (%.1f s wall), %.0f %s/s\n",
            (long long)trainer_steps(t), (long long)mc.applied, (long long)mc.skipped_nonfinite,
            (long long)mc.skipped_spike, r->train_seconds, r->wall_seconds,
            r->train_seconds > 0 ? r->units / r->train_seconds : 0.0, unit);
}
