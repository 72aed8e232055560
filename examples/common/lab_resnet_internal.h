/* Private to the lab's resnet scenario (lab_resnet.c: the comparison, the LR sweep and the
 * driver; lab_resnet_sched.c: the LR strategies; lab_resnet_run.c: one training run and
 * what it recorded). */
#ifndef GOPT_EXAMPLES_LAB_RESNET_INTERNAL_H
#define GOPT_EXAMPLES_LAB_RESNET_INTERNAL_H

#include "lab.h"
#include "trainer.h"

/* What to train. */
typedef struct rn_spec {
    const char *phase;    /* "compare", "sweep", "schedule" */
    const char *name;     /* the run's name in the CSV files and the report */
    const char *optimizer, *variant; /* "Adam", "clip" / "cosine" ... */
    gopt_optim_config optim;
    trainer_schedule schedule;
    int64_t warmup_steps;
    double clip_norm;     /* 0: no clipping */
    int steps, depth, batch;
    float width;
    int64_t eval_every;   /* > 0: evaluate every this many steps (and at the end); 0: at the end only;
                             < 0: never (the sweep ranks runs by training loss) */
    double diverge_factor;
} rn_spec;

/* What one run recorded (per step, and per evaluation). */
typedef struct rn_run {
    char name[80];
    const char *phase, *optimizer, *variant;
    double lr, clip_norm;
    int steps;            /* steps taken (fewer than planned when it diverged) */
    double *loss, *acc, *lr_now, *grad_norm;
    int *applied;
    int neval;
    double *eval_step, *eval_loss, *eval_acc;
    double *eval_seconds; /* training seconds (steps only, evaluation excluded) at each evaluation */
    char eval_what[48];   /* what the evaluations reported: "" (the weights), "Schedule-Free x" */
    double initial_loss, final_loss; /* final: mean training loss over the last 10% of steps */
    double val_loss, val_acc, best_val_acc;
    int64_t clipped, skipped;        /* clipped: applied steps whose norm exceeded clip_norm */
    int diverged, diverge_step;
    double seconds;
} rn_run;

/* Run spec over train/val, append one CSV row per step to `csv` (resnet_runs.csv), print
 * one line (run_no of run_total). Returns 0, or -1 after printing the error. */
int rn_train(const lab_options *o, const gopt_dataset *train, const gopt_dataset *val, const rn_spec *spec,
             FILE *csv, rn_run *r, int run_no, int run_total);
void rn_run_free(rn_run *r);
/* The time-to-target runs (lab_resnet_ttt.c): the frontier optimizers at their best LR from
 * the sweep (best_lr[k] for optimizers[] entry k, NAN: no stable LR), with periodic
 * evaluations; the step and training time at which validation accuracy first reached each
 * target. Appends to the runs and summary CSV files, writes resnet_time_to_target.csv
 * (steps: deterministic) and the wall times to timing.csv and <span class="time">, and
 * the subsection's HTML to `html`; a sentence for the findings. */
#define RN_NTARGET 3
typedef struct rn_ttt_settings {
    double targets[RN_NTARGET]; /* validation accuracies, ascending */
    int steps, eval_every, batch, depth;
    float width;
    double diverge_factor;
} rn_ttt_settings;
int rn_time_to_target(const lab_options *o, const gopt_dataset *train, const gopt_dataset *val,
                      const rn_ttt_settings *ts, const char *const *labels, const gopt_optim_config *configs,
                      int nopt, FILE *runs_csv, FILE *summary_csv, FILE *html, int run_no0, int run_total,
                      char *finding, size_t nfinding, double *seconds);

/* One resnet_summary.csv row. */
void rn_summary_row(FILE *f, const rn_run *r);

/* What the LR strategies found, for the scenario's findings. */
typedef struct rn_sched_result {
    char finding[1024];
    double seconds;
} rn_sched_result;

/* The LR strategies: constant, step, cosine, one-cycle, plateau, warmup + plateau for
 * SGD-Nesterov and Adam on `train` (a subset) with evaluations on `val`. Appends to the
 * runs and summary CSV files, writes resnet_schedules.csv and the subsection's HTML to
 * `html`. Returns 0, or -1 after printing the error. */
int rn_schedules(const lab_options *o, const gopt_dataset *train, const gopt_dataset *val, FILE *runs_csv,
                 FILE *summary_csv, FILE *html, int run_no0, int run_total, rn_sched_result *res);

/* Open DIR/NAME for writing and close it checking for write errors (print and -1). */
FILE *rn_open(const lab_options *o, const char *name);
int rn_close(FILE *f, const lab_options *o, const char *name);

#endif
