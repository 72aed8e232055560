/* The lab's resnet scenario, part 2: the learning-rate strategies people choose between
 * (constant, step, cosine, one-cycle, ReduceLROnPlateau, linear warmup then
 * ReduceLROnPlateau) for SGD-Nesterov and Adam over several epochs of a small ResNet on a
 * training subset, evaluated twice per epoch on the validation split (the plateau
 * scheduler steps on each evaluation's loss). See lab_resnet.c for the rest. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lab_resnet_internal.h"
#include "report.h"

enum { STRAT_CONSTANT = 0, STRAT_STEP, STRAT_COSINE, STRAT_ONECYCLE, STRAT_PLATEAU, STRAT_WARMUP_PLATEAU, NSTRAT };
static const char *const strat_names[NSTRAT] = {"constant", "step", "cosine", "one-cycle", "plateau",
                                                "warmup+plateau"};
static const trainer_schedule strat_sched[NSTRAT] = {SCHED_CONSTANT, SCHED_STEP, SCHED_COSINE,
                                                     SCHED_ONECYCLE, SCHED_PLATEAU, SCHED_PLATEAU};
#define NSOPT 2
static const char *const sopt_names[NSOPT] = {"SGD-Nesterov", "Adam"};

static gopt_optim_config sopt_config(int k) {
    gopt_optim_config c;
    if (k == 0) {
        c = gopt_optim_config_default(GOPT_ALGO_SGD);
        c.lr = 0.1f;
        c.momentum = 0.9f;
        c.nesterov = 1;
        c.weight_decay = 5e-4f;
    } else {
        c = gopt_optim_config_default(GOPT_ALGO_ADAM);
        c.lr = 1e-3f;
    }
    return c;
}

typedef struct sched_cfg {
    int epochs, batch;
    float width;
    double warmup_frac;
} sched_cfg;

/* LR cuts: steps whose LR is below the previous step's by more than rounding. */
static int lr_cuts(const rn_run *r) {
    int n = 0;
    for (int i = 1; i < r->steps; i++) n += r->lr_now[i] < r->lr_now[i - 1] * (1 - 1e-6);
    return n;
}

static void write_csv(FILE *f, const sched_cfg *c, int steps, rn_run (*runs)[NSTRAT]) {
    fputs("optimizer,strategy,lr,epochs,steps,final_val_acc,best_val_acc,final_val_loss,final_train_loss,final_lr,"
          "lr_cuts,diverged\n",
          f);
    for (int k = 0; k < NSOPT; k++)
        for (int s = 0; s < NSTRAT; s++) {
            const rn_run *r = &runs[k][s];
            fprintf(f, "%s,%s,%.6g,%d,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%d,%d\n", sopt_names[k], strat_names[s], r->lr,
                    c->epochs, r->steps, r->val_acc, r->best_val_acc, r->val_loss, r->final_loss,
                    r->lr_now[r->steps - 1], lr_cuts(r), r->diverged);
        }
}

/* Panels: per optimizer (what = 0: validation accuracy, 1: LR / its peak) or per strategy
 * (what = 2: the smoothed training loss). x in epochs. */
static void draw(FILE *f, int what, rn_run (*runs)[NSTRAT], double spe, const sched_cfg *c) {
    int np = what == 2 ? NSTRAT : NSOPT;
    report_panel p[NSTRAT];
    report_series s[NSTRAT][NSTRAT];
    double *bufs[NSOPT * NSTRAT * 2];
    int nb = 0;
    memset(p, 0, sizeof p);
    memset(s, 0, sizeof s);
    for (int i = 0; i < np; i++) {
        int ns = what == 2 ? NSOPT : NSTRAT;
        for (int j = 0; j < ns; j++) {
            int k = what == 2 ? j : i, st = what == 2 ? i : j;
            const rn_run *r = &runs[k][st];
            report_series *e = &s[i][j];
            e->name = what == 2 ? sopt_names[k] : strat_names[st];
            e->color = what == 2 ? k + 1 : st + 1;
            e->dashed = what != 2 && st == STRAT_PLATEAU; /* plateau dashed beside warmup+plateau */
            int n = what == 0 ? r->neval : r->steps;
            double *x = malloc((size_t)(n ? n : 1) * sizeof *x), *y = malloc((size_t)(n ? n : 1) * sizeof *y);
            bufs[nb++] = x;
            bufs[nb++] = y;
            if (!x || !y) n = 0;
            for (int t = 0; t < n; t++) {
                x[t] = (what == 0 ? r->eval_step[t] : t + 1) / spe;
                y[t] = what == 0 ? 100 * r->eval_acc[t] : what == 1 ? r->lr_now[t] / r->lr : r->loss[t];
            }
            e->x = x;
            e->y = y;
            e->n = n;
        }
        p[i].title = what == 2 ? strat_names[i] : sopt_names[i];
        p[i].s = s[i];
        p[i].ns = ns;
    }
    report_chart ch = report_chart_default();
    ch.xlabel = "epoch";
    char title[200];
    if (what == 0) {
        snprintf(title, sizeof title, "Validation accuracy over %d epochs, per optimizer (shared axes)", c->epochs);
        ch.ylabel = "val accuracy (%)";
    } else if (what == 1) {
        snprintf(title, sizeof title, "Learning rate as a fraction of the optimizer's peak LR, per step");
        ch.ylabel = "LR / peak LR";
    } else {
        snprintf(title, sizeof title, "Training loss per strategy, SGD-Nesterov against Adam (EMA 0.9 bold, raw "
                                      "faint; shared axes)");
        ch.ylabel = "loss";
        ch.smooth = 0.9;
    }
    ch.title = title;
    fputs("<figure>\n", f);
    report_small_multiples(f, &ch, p, np, what == 2 ? 3 : 2);
    fputs("</figure>\n", f);
    for (int i = 0; i < nb; i++) free(bufs[i]);
}

/* Rank (1 = best) of strategy s by final validation accuracy among the optimizer's runs. */
static int rank_of(rn_run *runs, int s) {
    int rank = 1;
    for (int j = 0; j < NSTRAT; j++)
        if (j != s && runs[j].val_acc > runs[s].val_acc) rank++;
    return rank;
}

int rn_schedules(const lab_options *o, const gopt_dataset *train, const gopt_dataset *val, FILE *runs_csv,
                 FILE *summary_csv, FILE *html, int run_no0, int run_total, rn_sched_result *res) {
    memset(res, 0, sizeof *res);
    sched_cfg c = {.epochs = o->quick ? 4 : 6, .batch = 64, .width = 0.25f,
                   .warmup_frac = 0.1};
    int64_t n = gopt_dataset_count(train);
    int spe = (int)(n / c.batch);
    if (spe < 2) {
        fprintf(stderr, "error: resnet: %lld training images are too few for the LR strategies at batch %d\n",
                (long long)n, c.batch);
        return -1;
    }
    int steps = c.epochs * spe, eval_every = spe / 2;
    int64_t warm = (int64_t)ceil(c.warmup_frac * steps);
    printf("\n== resnet: LR strategies: {SGD-Nesterov, Adam} x %d strategies, %d epochs of %lld images (%d steps), "
           "ResNet-8 width %g, batch %d, evaluation every %d steps\n",
           NSTRAT, c.epochs, (long long)n, steps, c.width, c.batch, eval_every);
    rn_run runs[NSOPT][NSTRAT];
    memset(runs, 0, sizeof runs);
    int rc = -1, run_no = run_no0;
    double t0 = cli_now();
    for (int k = 0; k < NSOPT; k++)
        for (int s = 0; s < NSTRAT; s++) {
            char name[80];
            snprintf(name, sizeof name, "%s %s", sopt_names[k], strat_names[s]);
            rn_spec sp = {.phase = "schedule", .name = name, .optimizer = sopt_names[k], .variant = strat_names[s],
                          .optim = sopt_config(k), .schedule = strat_sched[s],
                          .warmup_steps = s == STRAT_WARMUP_PLATEAU ? warm : 0, .steps = steps, .depth = 8,
                          .batch = c.batch, .width = c.width, .eval_every = eval_every, .diverge_factor = 3.0};
            if (rn_train(o, train, val, &sp, runs_csv, &runs[k][s], ++run_no, run_total)) goto done;
            rn_summary_row(summary_csv, &runs[k][s]);
        }
    res->seconds = cli_now() - t0;

    FILE *f = rn_open(o, "resnet_schedules.csv");
    if (!f) goto done;
    write_csv(f, &c, steps, runs);
    if (rn_close(f, o, "resnet_schedules.csv")) goto done;

    /* findings: the best strategy per optimizer against constant; warmup+plateau against plateau */
    int best[NSOPT];
    for (int k = 0; k < NSOPT; k++) {
        best[k] = 0;
        for (int s = 1; s < NSTRAT; s++)
            if (runs[k][s].val_acc > runs[k][best[k]].val_acc) best[k] = s;
    }
    char bs[NSOPT][160];
    for (int k = 0; k < NSOPT; k++) {
        if (best[k] == STRAT_CONSTANT)
            snprintf(bs[k], sizeof bs[k], "the constant LR stayed best for %s (%.1f%%)", sopt_names[k],
                     100 * runs[k][STRAT_CONSTANT].val_acc);
        else
            snprintf(bs[k], sizeof bs[k], "%s was best for %s (%.1f%% against %.1f%% at a constant LR)",
                     strat_names[best[k]], sopt_names[k], 100 * runs[k][best[k]].val_acc,
                     100 * runs[k][STRAT_CONSTANT].val_acc);
    }
    snprintf(res->finding, sizeof res->finding,
             "Over %d epochs of ResNet-8 (width %g) on %lld images, by final validation accuracy %s and %s; linear "
             "warmup then ReduceLROnPlateau reached %.1f%% and %.1f%% (rank %d and %d of %d) against %.1f%% and "
             "%.1f%% for ReduceLROnPlateau alone.",
             c.epochs, c.width, (long long)n, bs[0], bs[1], 100 * runs[0][STRAT_WARMUP_PLATEAU].val_acc,
             100 * runs[1][STRAT_WARMUP_PLATEAU].val_acc, rank_of(runs[0], STRAT_WARMUP_PLATEAU),
             rank_of(runs[1], STRAT_WARMUP_PLATEAU), NSTRAT, 100 * runs[0][STRAT_PLATEAU].val_acc,
             100 * runs[1][STRAT_PLATEAU].val_acc);

    fprintf(html,
            "<h3>Learning-rate strategies: SGD-Nesterov and Adam over %d epochs</h3>\n"
            "<p>ResNet-8 (width %g), batch %d, %d epochs of %lld training images (%d steps), validation loss and "
            "accuracy every %d steps (about twice per epoch) on the validation split; every run from the same "
            "initial weights over the same batches. SGD-Nesterov: LR %g, momentum 0.9, weight decay 5e-4; Adam: LR "
            "%g. <b>constant</b>: that LR throughout; <b>step</b>: &times;0.1 every third of the run; "
            "<b>cosine</b>: cosine annealing to 0; <b>one-cycle</b>: OneCycleLR with that LR as its peak at 25%% "
            "of the run (momentum or beta1 cycled 0.8&ndash;0.9); <b>plateau</b>: ReduceLROnPlateau on the "
            "validation loss at each evaluation (factor 0.2, patience 1, threshold 1e-3); "
            "<b>warmup+plateau</b>: LR linear from 1%% to 100%% over the first %lld steps (%g%%), then "
            "ReduceLROnPlateau as above (the evaluations inside the warmup do not step it). "
            "<span class=\"time\">(%.0f s)</span></p>\n",
            c.epochs, c.width, c.batch, c.epochs, (long long)n, steps, eval_every, (double)sopt_config(0).lr,
            (double)sopt_config(1).lr, (long long)warm, 100 * c.warmup_frac, res->seconds);
    fputs("<table><tr><th>optimizer</th><th>strategy</th><th>final val acc</th><th>best val acc</th>"
          "<th>final val loss</th><th>final LR</th><th>plateau cuts</th><th>diverged</th></tr>\n",
          html);
    for (int k = 0; k < NSOPT; k++)
        for (int s = 0; s < NSTRAT; s++) {
            const rn_run *r = &runs[k][s];
            int is_best = s == best[k];
            char cuts[16] = "-"; /* the LR cuts ReduceLROnPlateau made */
            if (strat_sched[s] == SCHED_PLATEAU) snprintf(cuts, sizeof cuts, "%d", lr_cuts(r));
            fprintf(html, "<tr><td>%s</td><td>%s%s%s</td><td>%s%.1f%%%s</td><td>%.1f%%</td><td>%.4f</td><td>%.3g</td>"
                          "<td>%s</td><td>%s</td></tr>\n",
                    sopt_names[k], is_best ? "<b>" : "", strat_names[s], is_best ? "</b>" : "", is_best ? "<b>" : "",
                    100 * r->val_acc, is_best ? "</b>" : "", 100 * r->best_val_acc, r->val_loss,
                    r->lr_now[r->steps - 1], cuts, r->diverged ? "<span class=\"bad\">yes</span>" : "no");
        }
    fputs("</table>\n", html);
    double spe_d = (double)spe;
    draw(html, 0, runs, spe_d, &c);
    draw(html, 1, runs, spe_d, &c);
    draw(html, 2, runs, spe_d, &c);
    rc = 0;
done:
    for (int k = 0; k < NSOPT; k++)
        for (int s = 0; s < NSTRAT; s++) rn_run_free(&runs[k][s]);
    return rc;
}
