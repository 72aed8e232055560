/* Command-line helpers shared by the example programs: strict number parsing, optimizer
 * options, data loading with the CIFAR-10 / built-in fallback, and a progress line. */
#ifndef GOPT_EXAMPLES_CLI_H
#define GOPT_EXAMPLES_CLI_H

#include <stdint.h>
#include <stdio.h>

#include <gradopt.h>

/* Errors: "error: MESSAGE\n" on stderr, prefixed by "rank N: " in a data-parallel run of
 * more than one process (after cli_set_rank). */
void cli_set_rank(int rank, int size);
void cli_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Parse a whole string as a number within [lo, hi]; print "prog: --opt: ..." and return -1
 * otherwise. */
int cli_double(const char *opt, const char *s, double lo, double hi, double *out);
int cli_int(const char *opt, const char *s, long lo, long hi, long *out);

/* Apply "--NAME VALUE" for an optimizer hyperparameter (lr, momentum, wd/weight-decay,
 * dampening, nesterov, beta1, beta2, eps, alpha, rho, amsgrad, centered, lr-decay,
 * momentum-decay, lookahead-k, lookahead-alpha, l1, and Schedule-Free's warmup-steps, r,
 * weight-lr-power). Returns 1 if NAME is one of them (and
 * VALUE was valid: 0 for consumed, -1 for a bad value), 0 if NAME is not an optimizer
 * option. */
int cli_optim_option(const char *name, const char *value, gopt_optim_config *cfg);
/* 1 if NAME is one of the optimizer options above. */
int cli_is_optim_option(const char *name);

/* An algorithm by its registry name (gopt_algo_from_name) or a trainer alias: "adamw-sf"
 * (adamw_schedulefree), "sgd-sf" (sgd_schedulefree). 0, or -1 for an unknown name. */
int cli_algo_from_name(const char *name, gopt_algo *out);
/* The alias when there is one, else the registry name. */
const char *cli_algo_short_name(gopt_algo algo);
/* 1 for Schedule-Free AdamW and SGD (train/eval modes). */
int cli_is_schedulefree(gopt_algo algo);

/* Sensible default LR per algorithm for ResNets on CIFAR-10 at batch 128. */
float cli_default_lr(gopt_algo algo);

/* Where the data came from. */
typedef struct cli_data {
    gopt_dataset *train, *val;
    char source[512]; /* human-readable: "CIFAR-10 in DIR (data_batch_1..4 train, 5 validation)" */
    int synthetic;
} cli_data;

/* Load CIFAR-10 from dir (train = batches 1..5 minus the validation split: val_split
 * images from the end, or the file test_file when given), or when dir is NULL the built-in
 * synthetic dataset of synth_count images. Prints the error and returns -1 on failure. */
int cli_load_data(const char *dir, int64_t val_split, const char *test_file, int64_t synth_count, uint64_t seed,
                  cli_data *out);
void cli_data_free(cli_data *d);

/* Seconds since an arbitrary start (monotonic). */
double cli_now(void);

/* One progress line (rate in `unit`/s: "img", "tok"): on a terminal redrawn in place (\r),
 * otherwise one line per call. */
void cli_progress(FILE *f, int is_tty, const char *label, int64_t done, int64_t total, double loss, double acc,
                  double lr, double rate, const char *unit, double eta_s, int final);

#endif
