/* What the training programs (train_cifar10, train_text) share above the trainer: the
 * command-line options of the optimizer, schedule, clipping, monitor, checkpoints, logs and
 * run length; and the training loop with its progress bar, periodic evaluation,
 * checkpoints and CSV/JSONL log. */
#ifndef GOPT_EXAMPLES_RUN_H
#define GOPT_EXAMPLES_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "trainer.h"

/* The process in its data-parallel world (gradopt/dist.h): the programs run unchanged
 * under `mpirun -np P` (and alone as a world of one). */
typedef struct run_world {
    gopt_dist *dist; /* always created */
    int rank, size;
} run_world;

/* Join the world (ZeRO-1 when argv holds --zero), prefix this process's errors with
 * "rank N: " when there are several, and send the standard output of every rank but 0 to
 * /dev/null: the progress bar, evaluations and summaries come from rank 0. Prints the
 * error and returns -1 when the world cannot be joined. */
int run_world_init(run_world *w, int argc, char **argv);
/* The trainer's dist: NULL in a world of one (the one-process code path, bit for bit). */
gopt_dist *run_world_dist(const run_world *w);
/* Threads per process: `threads` when given (--threads), else under mpirun the cores of
 * this host shared by the ranks on it (OMPI_COMM_WORLD_LOCAL_SIZE), at least 1; alone,
 * the library's default (all cores). */
void run_world_threads(const run_world *w, int threads);
/* Leave with exit code `code`. rc is how the run ended: 0 or TRAINER_FAILED_ALL (every
 * rank failed together: MPI is finalised as usual), or -1 (this rank failed alone while
 * the others may be waiting in a collective: the process ends at once without finalising
 * MPI, and mpirun then ends the job). Returns code. */
int run_world_exit(run_world *w, int rc, int code);

typedef struct run_options {
    trainer_config tc;
    gopt_algo algo;
    const char *checkpoint, *resume, *log, *test;
    const char *export_weights; /* --export: the final weights, .safetensors or .npz, PyTorch names */
    int epochs, threads;
    double warmup_epochs;
    int64_t max_steps;
    double max_seconds;   /* training time (evaluation excluded); 0: no limit */
    int64_t eval_every;   /* also evaluate every N steps (0: epoch ends and the end only) */
    double eval_seconds;  /* also evaluate every S seconds of training time */
    int have_lr, have_epochs, have_ls, have_sched, have_batch, have_clip;
    int zero;             /* --zero: ZeRO-1 (the world was joined with it, see run_world_init) */
} run_options;

/* Start from the program's defaults (`tc`, whose optim config is the default algorithm's). */
void run_options_init(run_options *o, const trainer_config *tc);

/* The shared options as two cli.h groups for the program's cli_spec: out[0] the run options
 * (--epochs, --batch, --optimizer/--optim, --schedule, clipping, averaging, monitor,
 * --threads, --seed, --checkpoint, --resume, --log, --test, ...; under `heading`), out[1]
 * the optimizer hyperparameters (cli.c's table) and the data-parallel notes. --optimizer
 * is applied first, so that its defaults come before the hyperparameters; then
 * Schedule-Free's constant schedule and Muon's AdamW ratio, before the other options. The
 * groups point into `o`. */
void run_cli_groups(run_options *o, const char *heading, cli_group out[2]);

/* After cli_parse: which of the options a recipe fills were given (have_lr, ...). */
void run_options_given(run_options *o, const cli_spec *spec);

/* After the program's recipe: checks across options (one weight average, --swa-start
 * within the run) and their defaults (--swa-lr: a tenth of the LR). Prints the error and
 * returns -1. */
int run_options_finish(run_options *o);

/* The shared part of the configuration line (optimizer, schedule, stability, seed; and
 * the world when it has several processes). */
void run_options_describe(const run_options *o, const run_world *w, char *buf, size_t n);

/* Under a world of P: --batch must divide by P. Prints the error naming both numbers and
 * returns -1 otherwise (on every rank). */
int run_check_batch(const run_options *o, const run_world *w);

/* Linear warmup in steps from --warmup (epochs) and the steps per epoch. */
int64_t run_warmup_steps(const run_options *o, int64_t steps_per_epoch);

typedef struct run_spec {
    const char *unit;        /* rate unit: "img", "tok" */
    const char *eval_name;   /* "val", or "test" for a held-out file given with --test */
    const char *data_label;  /* the tail of each evaluation line (NULL: none) */
    const char *config_text; /* stored in the checkpoints */
    /* loss and accuracy on the held-out data (NAN when not measured) */
    int (*evaluate)(void *ctx, trainer *t, double *loss, double *acc, char *err, size_t errlen);
    void *eval_ctx;
} run_spec;

typedef struct run_result {
    double eval_loss, eval_acc;     /* the last evaluation (NAN: none) */
    double best_eval_acc, best_eval_loss;
    double train_seconds;           /* inside trainer steps */
    double wall_seconds;            /* the whole loop */
    int64_t units;                  /* images or tokens trained on */
    int evaluations;
    int out_of_time;                /* stopped by --max-seconds */
} run_result;

/* Train until epochs x steps per epoch (or --max-steps) optimizer steps, --max-seconds of
 * training time, or divergence. Evaluates at every epoch end, every --eval-every steps and
 * --eval-seconds seconds and at the end; after each evaluation steps a plateau schedule,
 * prints a line and writes the checkpoint. Logs every step (--log, CSV or .jsonl; appended
 * on --resume; rank 0 only; flushed at each evaluation; a write that fails, e.g. on a full
 * disk or past `ulimit -f`, ends the loop with the log's name and the cause). Data parallel: every rank runs the loop, time limits follow
 * rank 0's clock so that all ranks evaluate and stop at the same step. Returns 0, or -1 /
 * TRAINER_FAILED_ALL with the message in err. */
int run_loop(const run_options *o, const run_spec *s, trainer *t, run_result *r, char *err, size_t errlen);

/* "N optimizer steps (A applied, ...) in X s, R unit/s". */
void run_print_steps(FILE *f, trainer *t, const run_result *r, const char *unit);

#endif
