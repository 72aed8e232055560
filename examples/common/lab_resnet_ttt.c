/* The lab's resnet scenario: time to target (see lab_resnet_internal.h). AlgoPerf's measure
 * (Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms"): the training time
 * at which the validation metric first reaches a fixed target, "not reached" when it does
 * not within the budget. Each optimizer runs at its best LR from the scenario's sweep, the
 * scheduled ones under a cosine schedule over the run (what a user who knows the budget
 * does), the Schedule-Free ones at a constant LR (their point: no schedule, no budget to
 * know); every run from the same weights over the same batches, evaluated every
 * eval_every steps (Schedule-Free at x, with BatchNorm statistics recomputed there).
 * The step at which a target is reached is deterministic (resnet_time_to_target.csv); the
 * seconds are wall time (timing.csv, and <span class="time"> in the report). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lab_resnet_internal.h"
#include "report.h"

#define NTARGET RN_NTARGET

/* The first evaluation at or above `target`: its index, or -1. */
static int first_reached(const rn_run *r, double target) {
    for (int e = 0; e < r->neval; e++)
        if (r->eval_acc[e] >= target) return e;
    return -1;
}

int rn_time_to_target(const lab_options *o, const gopt_dataset *train, const gopt_dataset *val,
                      const rn_ttt_settings *ts, const char *const *labels, const gopt_optim_config *configs,
                      int nopt, FILE *runs_csv, FILE *summary_csv, FILE *html, int run_no0, int run_total,
                      char *finding, size_t nfinding, double *seconds) {
    double t_all = cli_now();
    const double *targets = ts->targets;
    finding[0] = '\0';
    rn_run *runs = calloc((size_t)nopt, sizeof *runs);
    int *ran = calloc((size_t)nopt, sizeof *ran);
    FILE *csv = rn_open(o, "resnet_time_to_target.csv");
    int rc = -1, run_no = run_no0;
    if (!runs || !ran || !csv) {
        if (!runs || !ran) fprintf(stderr, "error: resnet: out of memory\n");
        goto done;
    }
    printf("\n== resnet: time to target: %d optimizers at their best LR from the sweep, %d steps each, evaluated "
           "every %d steps\n",
           nopt, ts->steps, ts->eval_every);
    for (int k = 0; k < nopt; k++) {
        if (!(configs[k].lr > 0)) continue; /* no stable LR in the sweep */
        const int sf = cli_is_schedulefree(configs[k].algo);
        char name[80];
        snprintf(name, sizeof name, "%s lr=%.3g %s", labels[k], (double)configs[k].lr, sf ? "constant" : "cosine");
        rn_spec sp = {.phase = "ttt", .name = name, .optimizer = labels[k], .variant = sf ? "constant" : "cosine",
                      .optim = configs[k], .schedule = sf ? SCHED_CONSTANT : SCHED_COSINE, .steps = ts->steps,
                      .depth = ts->depth, .batch = ts->batch, .width = ts->width, .eval_every = ts->eval_every,
                      .diverge_factor = ts->diverge_factor};
        if (rn_train(o, train, val, &sp, runs_csv, &runs[k], ++run_no, run_total)) goto done;
        ran[k] = 1;
        rn_summary_row(summary_csv, &runs[k]);
    }
    /* the CSV: steps (deterministic); the seconds go to timing.csv */
    fputs("optimizer,lr,schedule,steps,eval_every,final_val_acc,best_val_acc", csv);
    for (int j = 0; j < NTARGET; j++) fprintf(csv, ",steps_to_%.0f", 100 * targets[j]);
    fputc('\n', csv);
    for (int k = 0; k < nopt; k++) {
        if (!ran[k]) {
            fprintf(csv, "%s,,,,,,", labels[k]);
            for (int j = 0; j < NTARGET; j++) fputc(',', csv);
            fputc('\n', csv);
            continue;
        }
        const rn_run *r = &runs[k];
        fprintf(csv, "%s,%.6g,%s,%d,%d,%.6g,%.6g", labels[k], r->lr, r->variant, r->steps, ts->eval_every, r->val_acc,
                r->best_val_acc);
        for (int j = 0; j < NTARGET; j++) {
            int e = first_reached(r, targets[j]);
            if (e >= 0) fprintf(csv, ",%.0f", r->eval_step[e]);
            else fputc(',', csv);
            char item[128];
            snprintf(item, sizeof item, "time to %.0f%% %s", 100 * targets[j], labels[k]);
            if (e >= 0) lab_timing(o, "resnet", item, r->eval_seconds[e]);
        }
        fputc('\n', csv);
    }

    fprintf(html,
            "<h3>Time to target (AlgoPerf's measure)</h3>\n<p>Each optimizer at its best LR from the sweep below "
            "(base variant), ResNet-%d width %g, batch %d, %d steps, the scheduled ones under a cosine schedule over "
            "the run, the Schedule-Free ones at a constant LR (evaluated at x, with BatchNorm statistics recomputed "
            "over 10 training batches); validation accuracy every %d steps. Each cell: the first evaluation at or "
            "above the target, as the step and the training time (steps only, evaluation excluded) at which it "
            "happened; <b>not reached</b> within the run otherwise. Times are wall time on this machine and vary "
            "run to run; the steps do not.</p>\n<table><tr><th>optimizer</th><th>LR</th><th>schedule</th>"
            "<th>final val acc</th><th>best val acc</th><th>s/step</th>",
            ts->depth, ts->width, ts->batch, ts->steps, ts->eval_every);
    for (int j = 0; j < NTARGET; j++) fprintf(html, "<th>to %.0f%%</th>", 100 * targets[j]);
    fputs("</tr>\n", html);
    int nreach[NTARGET] = {0};
    for (int k = 0; k < nopt; k++) {
        fputs("<tr><td>", html);
        report_escape(html, labels[k]);
        if (!ran[k]) {
            fprintf(html, "</td><td colspan=\"%d\">no LR of the sweep was stable: not run</td></tr>\n", 5 + NTARGET);
            continue;
        }
        const rn_run *r = &runs[k];
        double per_step = r->steps > 0 && r->neval > 0 ? r->eval_seconds[r->neval - 1] / r->eval_step[r->neval - 1]
                                                       : NAN;
        fprintf(html, "</td><td>%.3g</td><td>%s</td><td>%.1f%%%s</td><td>%.1f%%</td><td><span class=\"time\">%.3f"
                      "</span></td>",
                r->lr, r->variant, 100 * r->val_acc, r->diverged ? " <span class=\"bad\">diverged</span>" : "",
                100 * r->best_val_acc, per_step);
        for (int j = 0; j < NTARGET; j++) {
            int e = first_reached(r, targets[j]);
            if (e < 0) {
                fputs("<td>not reached</td>", html);
                continue;
            }
            nreach[j]++;
            fprintf(html, "<td>step %.0f, <span class=\"time\">%.1f s</span></td>", r->eval_step[e],
                    r->eval_seconds[e]);
        }
        fputs("</tr>\n", html);
    }
    fputs("</table>\n", html);
    /* the finding: in steps (deterministic) */
    size_t len = (size_t)snprintf(finding, nfinding, "Time to target (best sweep LR, %d steps):", ts->steps);
    for (int j = 0; j < NTARGET && len < nfinding; j++) {
        int best_step = -1;
        const char *who = NULL;
        for (int k = 0; k < nopt; k++) {
            if (!ran[k]) continue;
            int e = first_reached(&runs[k], targets[j]);
            if (e >= 0 && (best_step < 0 || runs[k].eval_step[e] < best_step))
                best_step = (int)runs[k].eval_step[e], who = labels[k];
        }
        if (who)
            len += (size_t)snprintf(finding + len, nfinding - len, " %.0f%% reached by %d of %d, first by %s at step %d;",
                                    100 * targets[j], nreach[j], nopt, who, best_step);
        else
            len += (size_t)snprintf(finding + len, nfinding - len, " %.0f%% reached by none;", 100 * targets[j]);
    }
    if (len < nfinding && len > 0 && finding[len - 1] == ';') finding[len - 1] = '.';
    rc = 0;
done:
    if (rn_close(csv, o, "resnet_time_to_target.csv")) rc = -1;
    for (int k = 0; runs && k < nopt; k++) rn_run_free(&runs[k]);
    free(runs);
    free(ran);
    *seconds = cli_now() - t_all;
    return rc;
}
