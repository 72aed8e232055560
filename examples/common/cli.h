/* Command-line helpers shared by the example and bench programs: the option tables parsed
 * with getopt_long (and the --help generated from them), strict number parsing, the
 * optimizer options, data loading with the CIFAR-10 / built-in fallback, and a progress
 * line. */
#ifndef GOPT_EXAMPLES_CLI_H
#define GOPT_EXAMPLES_CLI_H

#include <stddef.h>
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

/* ---- option tables ------------------------------------------------------------------------
 * Every program describes its options in one table (cli_opt[]): name, argument name, help
 * text, default and where the value goes. cli_parse runs getopt_long over the tables, so
 * "--lr=0.1" and "--lr 0.1" are the same, and cli_help prints --help from the very same
 * entries: an option cannot be parsed without being documented, nor the other way round.
 * Options are spelled out in full (getopt_long's abbreviations are refused: a script's
 * "--warm" would change meaning when an option "--warmup-steps" is added). Values are
 * applied in the order given (the last of a repeated option wins), the `early` ones first
 * (--optimizer, whose defaults come before the hyperparameters). Every program also takes
 * -h/--help (help on stdout, exit 0) and --print-config (parse, print the configuration,
 * exit 0: nothing runs). Errors go through cli_error, naming the option:
 *   error: unknown option '--lrr' (see --help)
 *   error: --lr needs a value (see --help)
 *   error: --lr: 'x' is not a number in [-1e+30, 1e+30]
 *   error: --quick takes no value ('--quick=1')
 *   error: unexpected argument 'foo' (see --help) */
typedef enum cli_kind {
    CLI_FLAG,   /* no value: int target = 1 */
    CLI_FLAG_OFF, /* no value: int target = 0 (--no-augment) */
    CLI_INT,    /* int target, an integer in [lo, hi] */
    CLI_I64,    /* int64_t target, an integer in [lo, hi] */
    CLI_U64,    /* uint64_t target, an integer in [lo, hi] */
    CLI_FLOAT,  /* float target, a number in [lo, hi] */
    CLI_DOUBLE, /* double target, a number in [lo, hi] */
    CLI_STR,    /* const char * target: the argument itself */
    CLI_FN      /* fn(base, name, value) does it all (value NULL for a flag: arg NULL) */
} cli_kind;

typedef struct cli_opt {
    const char *name; /* as typed: "--lr" */
    const char *arg;  /* the argument's name in --help ("X", "DIR"); NULL: a flag */
    cli_kind kind;
    size_t off;       /* the target: the group's base + off */
    double lo, hi;    /* numbers: the accepted range */
    const char *def;  /* the default in --help: NULL shows the target's value before parsing
                         (numbers; strings when set), "" shows none, else this text */
    const char *help; /* the description (may hold '\n': continuation lines) */
    int (*fn)(void *base, const char *name, const char *value); /* CLI_FN: 0, or -1 printed */
    int early;        /* applied before every other option */
} cli_opt;

typedef struct cli_group {
    const char *heading;  /* a line before the options (NULL: none) */
    const cli_opt *opts;
    size_t count;
    void *base;           /* where the options' targets are (offsets from here) */
    void (*prepare)(void *base); /* after the early options, before the rest (NULL: none) */
    const char *notes;    /* free text after the group's options (not option documentation) */
} cli_group;

enum { CLI_MAX_OPTS = 256 };

typedef struct cli_spec {
    const char *usage;  /* "train_cifar10 [options]": printed after "usage: " */
    const char *about;  /* a paragraph after the usage line (NULL: none) */
    const cli_group *groups;
    size_t ngroups;
    const char *notes;  /* free text at the end of --help (NULL: none) */
    unsigned char given[CLI_MAX_OPTS]; /* set by cli_parse: option i (over all groups) given */
} cli_spec;

/* An entry without a handler: CLI_O(name, arg, kind, off, lo, hi, def, help). */
#define CLI_O(...) {__VA_ARGS__, NULL, 0}
#define CLI_COUNT(a) (sizeof(a) / sizeof((a)[0]))

enum { CLI_RUN = 0, CLI_HELP = 1, CLI_PRINT_CONFIG = 2 };

/* Parse argv[1..argc) against spec's tables and apply the values. Returns CLI_RUN,
 * CLI_HELP (help printed on stdout: exit 0), CLI_PRINT_CONFIG (--print-config given; the
 * values are applied: the program prints its configuration and exits 0), or -1 after
 * printing the error (exit nonzero). Does not modify argv (getopt_long runs on a copy). */
int cli_parse(cli_spec *spec, int argc, char **argv);
/* --help from the tables. */
void cli_help(FILE *f, const cli_spec *spec);
/* 1 when the option NAME ("--lr") was on the command line (after cli_parse). */
int cli_given(const cli_spec *spec, const char *name);
/* Every valued option and its value now, one "--name value" a line (flags: "--name" when
 * set); the generic --print-config. */
void cli_print_values(FILE *f, const cli_spec *spec);

/* The optimizer hyperparameters (--lr, --momentum, ... below) as a group whose base is a
 * gopt_optim_config. */
cli_group cli_optim_group(gopt_optim_config *cfg, const char *heading);

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
