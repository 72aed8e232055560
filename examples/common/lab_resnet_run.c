/* The lab's resnet scenario: one training run (see lab_resnet_internal.h), recorded per
 * step and per evaluation, with its CSV rows and its progress line. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lab_resnet_internal.h"

void rn_run_free(rn_run *r) {
    free(r->loss);
    free(r->acc);
    free(r->lr_now);
    free(r->grad_norm);
    free(r->applied);
    free(r->eval_step);
    free(r->eval_loss);
    free(r->eval_acc);
    free(r->eval_seconds);
    memset(r, 0, sizeof *r);
}

static int train_fail(trainer *t, const char *name, const char *err) {
    fprintf(stderr, "\nerror: resnet: %s: %s\n", name, err);
    trainer_destroy(t);
    return -1;
}

int rn_train(const lab_options *o, const gopt_dataset *train, const gopt_dataset *val, const rn_spec *sp,
             FILE *csv, rn_run *r, int run_no, int run_total) {
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", sp->name);
    r->phase = sp->phase;
    r->optimizer = sp->optimizer;
    r->variant = sp->variant;
    r->lr = sp->optim.lr;
    r->clip_norm = sp->clip_norm;
    r->diverge_step = -1;
    r->val_loss = r->val_acc = r->best_val_acc = NAN;
    size_t n = (size_t)sp->steps, ne = sp->eval_every > 0 ? n / (size_t)sp->eval_every + 2 : 1;
    r->loss = calloc(n, sizeof(double));
    r->acc = calloc(n, sizeof(double));
    r->lr_now = calloc(n, sizeof(double));
    r->grad_norm = calloc(n, sizeof(double));
    r->applied = calloc(n, sizeof(int));
    r->eval_step = calloc(ne, sizeof(double));
    r->eval_loss = calloc(ne, sizeof(double));
    r->eval_acc = calloc(ne, sizeof(double));
    r->eval_seconds = calloc(ne, sizeof(double));
    if (!r->loss || !r->acc || !r->lr_now || !r->grad_norm || !r->applied || !r->eval_step || !r->eval_loss ||
        !r->eval_acc || !r->eval_seconds) {
        fprintf(stderr, "error: resnet: out of memory\n");
        return -1;
    }
    trainer_config tc = trainer_config_default();
    tc.depth = sp->depth;
    tc.width = sp->width;
    tc.batch = sp->batch;
    tc.seed = o->seed; /* same initial weights and batch order for every run */
    tc.optim = sp->optim;
    tc.schedule = sp->schedule;
    tc.total_steps = sp->steps;
    tc.warmup_steps = sp->warmup_steps;
    tc.clip_norm = sp->clip_norm;
    tc.label_smoothing = 0;
    tc.diverge_factor = sp->diverge_factor;
    tc.bn_recal = 10; /* Schedule-Free: BatchNorm statistics recomputed at x before evaluating it */
    trainer *t = NULL;
    char err[1024];
    double t0 = cli_now(), train_s = 0;
    if (trainer_create(&tc, train, val, &t, err, sizeof err)) return train_fail(t, sp->name, err);
    for (int i = 0; i < sp->steps; i++) {
        trainer_step st;
        int epoch_done;
        double ts = cli_now();
        if (trainer_step_once(t, &st, &epoch_done, err, sizeof err)) return train_fail(t, sp->name, err);
        train_s += cli_now() - ts;
        r->loss[i] = st.loss;
        r->acc[i] = st.acc;
        r->lr_now[i] = st.lr;
        r->grad_norm[i] = st.grad_norm;
        r->applied[i] = st.applied;
        int clipped = st.applied && sp->clip_norm > 0 && st.grad_norm > sp->clip_norm;
        r->clipped += clipped;
        r->skipped += !st.applied;
        r->steps = i + 1;
        if (i == 0) r->initial_loss = st.loss;
        int last = i + 1 == sp->steps || st.diverged;
        double vl = NAN, va = NAN;
        if ((sp->eval_every > 0 && (i + 1) % sp->eval_every == 0) || (sp->eval_every >= 0 && last)) {
            /* Schedule-Free: x, with BatchNorm statistics for it; then back to y (trainer.h) */
            if (trainer_eval_begin(t, r->eval_what, sizeof r->eval_what, err, sizeof err)) {
                trainer_eval_end(t, err + strlen(err), 0);
                return train_fail(t, sp->name, err);
            }
            int ev = trainer_evaluate(t, val, &vl, &va, err, sizeof err);
            if (trainer_eval_end(t, ev ? err + strlen(err) : err, ev ? 0 : sizeof err) || ev)
                return train_fail(t, sp->name, err);
            r->eval_seconds[r->neval] = train_s;
            if (trainer_end_epoch(t, vl, err, sizeof err)) return train_fail(t, sp->name, err);
            r->eval_step[r->neval] = i + 1;
            r->eval_loss[r->neval] = vl;
            r->eval_acc[r->neval] = va;
            r->neval++;
            r->val_loss = vl;
            r->val_acc = va;
            if (!(va <= r->best_val_acc)) r->best_val_acc = va;
        }
        fprintf(csv, "%s,%s,%s,%s,%.6g,%d,%lld,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%d,%d", sp->phase, sp->name,
                sp->optimizer, sp->variant, (double)sp->optim.lr, i + 1, (long long)st.epoch, st.loss, st.acc, st.lr,
                st.grad_norm, sp->clip_norm, clipped, st.applied, st.diverged);
        if (isfinite(vl)) fprintf(csv, ",%.6g,%.6g\n", vl, va);
        else fputs(",,\n", csv);
        if (o->tty && (i % 5 == 0 || last)) {
            printf("\r[%d/%d] %-36s step %4d/%d loss %8.4f |g| %9.3g\033[K", run_no, run_total, sp->name, i + 1,
                   sp->steps, st.loss, st.grad_norm);
            fflush(stdout);
        }
        if (st.diverged) {
            r->diverged = 1;
            r->diverge_step = i + 1;
            break;
        }
    }
    r->seconds = cli_now() - t0;
    trainer_destroy(t);
    int tail = r->steps / 10 > 0 ? r->steps / 10 : 1;
    double sum = 0;
    for (int i = r->steps - tail; i < r->steps; i++) sum += r->loss[i];
    r->final_loss = r->diverged ? r->initial_loss : sum / tail; /* capped at the initial loss if diverged */
    if (!isfinite(r->final_loss)) r->final_loss = r->initial_loss;
    if (o->tty) printf("\r\033[K");
    printf("[%d/%d] %-36s %s after %d steps: loss %.4f", run_no, run_total, sp->name,
           r->diverged ? "DIVERGED" : "done", r->steps, r->diverged ? r->loss[r->steps - 1] : r->final_loss);
    if (isfinite(r->val_acc)) printf(", val acc %.1f%%", 100 * r->val_acc);
    if (sp->clip_norm > 0) printf(", clipped %.0f%% of steps", 100.0 * (double)r->clipped / r->steps);
    printf(" (%.1f s)\n", r->seconds);
    fflush(stdout);
    return 0;
}

void rn_summary_row(FILE *f, const rn_run *r) {
    fprintf(f, "%s,%s,%s,%s,%.6g,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%lld,%d,%d\n", r->phase, r->name, r->optimizer,
            r->variant, r->lr, r->steps, r->initial_loss, r->final_loss, r->val_loss, r->val_acc, r->best_val_acc,
            r->clip_norm, r->steps ? (double)r->clipped / r->steps : 0.0, (long long)r->skipped, r->diverged,
            r->diverge_step);
}

FILE *rn_open(const lab_options *o, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", o->out_dir, name);
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, "error: resnet: cannot write '%s': %s\n", path, strerror(errno));
    return f;
}

int rn_close(FILE *f, const lab_options *o, const char *name) {
    if (!f) return 0;
    int bad = ferror(f);
    if (fclose(f) || bad) {
        fprintf(stderr, "error: resnet: writing '%s/%s' failed\n", o->out_dir, name);
        return -1;
    }
    return 0;
}

