/* Reader and comparison helpers for the PyTorch reference cases (`gradopt-golden 1`,
 * described in tests/golden/FORMAT.md), shared by golden_runner's per-kind runners. */
#ifndef GOPT_TESTS_GOLDEN_H
#define GOPT_TESTS_GOLDEN_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define GOLDEN_MAX_WORDS 4
#define GOLDEN_MAX_IDX 2
#define GOLDEN_MAX_KV 48

typedef struct golden_kv {
    char *key, *value;
} golden_kv;

/* One record. A tensor record "<words...> <idx...> <ndim> <dims...>" + a line of values;
 * a scalar record "<word> <value>"; a group record "group <g> key=value...". */
typedef struct golden_record {
    char *words[GOLDEN_MAX_WORDS]; /* e.g. {"expect", "dinput"} */
    int nwords;
    long idx[GOLDEN_MAX_IDX]; /* e.g. step and tensor index */
    int nidx;
    int is_scalar;
    double scalar;
    int ndim;
    int64_t shape[4];
    int64_t numel;
    double *values;  /* numel doubles (as printed, 9 significant digits) */
    float *fvalues;  /* the same values rounded to float */
    golden_kv kv[GOLDEN_MAX_KV]; /* group records */
    int nkv;
    int line;
} golden_record;

typedef struct golden_case {
    const char *file;
    int line;        /* of the `case` line */
    char *name, *kind;
    golden_kv config[GOLDEN_MAX_KV];
    int nconfig;
    golden_record *records;
    int nrecords, capacity;
} golden_case;

/* Outcome of running one case. */
typedef struct golden_result {
    double worst_abs;   /* largest |got - want| */
    double worst_ratio; /* largest |got - want| / (atol + rtol * |want|); <= 1 passes */
    char worst_what[320];
    int nonfinite;      /* a NaN/Inf where the reference is finite */
    long compared;
    char error[512];    /* set when the case could not be run */
} golden_result;

/* Parse every case of the file at path and, when run is 1, run it, one line per case on
 * out ("ok ..." / "FAIL ..."); adds to passed and failed (with run 0 a parsed case counts as
 * passed). Returns -1 if the file cannot be opened or parsed (the line is named on out). */
int golden_run_file(const char *path, int run, FILE *out, int *passed, int *failed);

/* ---- config access ---- */
const char *golden_cfg(const golden_case *c, const char *key);            /* NULL if absent */
double golden_cfg_num(const golden_case *c, const char *key, double dflt); /* "true"/"false" -> 1/0 */
const char *golden_kv_get(const golden_kv *kv, int n, const char *key);

/* ---- record access: first record whose words match (w1 may be NULL = any/none) and
 * whose indices match (pass -1 to skip an index). */
const golden_record *golden_find(const golden_case *c, const char *w0, const char *w1, long i0, long i1);

/* ---- comparison with the FORMAT.md tolerance |got - want| <= atol + rtol * |want| ---- */
void golden_compare(golden_result *r, const char *what, const float *got, const double *want,
                    int64_t n, double atol, double rtol);
void golden_compare_scalar(golden_result *r, const char *what, double got, double want, double atol,
                           double rtol);
/* Record a failure to run the case; returns -1 for `return golden_fail(...)`. */
int golden_fail(golden_result *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Per-kind runners: fill r and return 0, or return -1 after golden_fail. Defined in
 * run_<kind>.c; a kind whose runner is not linked in is reported as unsupported. */
typedef int (*golden_kind_fn)(const golden_case *c, golden_result *r);
int golden_run_optimizer(const golden_case *c, golden_result *r);
int golden_run_scheduler(const golden_case *c, golden_result *r);
int golden_run_clip(const golden_case *c, golden_result *r);
int golden_run_layer(const golden_case *c, golden_result *r);
int golden_run_loss(const golden_case *c, golden_result *r);
/* kind average (run_average.c): torch.optim.swa_utils.AveragedModel through gopt_average. */
int golden_run_average(const golden_case *c, golden_result *r);
/* The recurrent section (run_recurrent.c): layer=rnn|lstm|gru|sigmoid|tanh. */
int golden_recurrent_handles(const golden_case *c);
int golden_run_recurrent(const golden_case *c, golden_result *r);

#endif
