/* bench_optim: time one optimizer step over a flat arena, against a memory floor measured in
 * the same run and (with --torch) against torch.optim on the same layout.
 *
 *   build/bench/bench_optim [--params N] [--threads T] [--reps R] [--algo NAME|all] [--torch]
 *                           [--python PATH]
 *
 * Per algorithm: ns/param, GB/s (bytes the step must read + write / time), the ratio to the
 * floor (a pass over the same float streams with trivial math, same threads), and ours/torch.
 * Medians over R reps. Hyperparameters: PyTorch defaults, SGD with momentum 0.9.
 * Machine-readable, one line per algorithm (bench_row): ROW optim.<algo> GB/s ours floor torch,
 * torch's GB/s counting the same bytes over its step time. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gradopt.h>

#include "bench_util.h"

/* Streams a step reads and writes (p, g and the state buffers of the default config). */
typedef struct streams {
    int reads, writes;
} streams;

static streams algo_streams(gopt_algo a) {
    switch (a) {
    case GOPT_ALGO_SGD:      /* p g buf -> p buf */
    case GOPT_ALGO_ADAGRAD:  /* p g sum -> p sum */
    case GOPT_ALGO_RMSPROP:  /* p g sq -> p sq */
    case GOPT_ALGO_LION:     /* p g m -> p m */
    case GOPT_ALGO_SGD_SCHEDULEFREE: /* y g z -> y z */
        return (streams){3, 2};
    case GOPT_ALGO_LAMB:     /* pass 1: p g m v -> m v; pass 2: p m v -> p */
        return (streams){7, 3};
    default:                 /* p g s0 s1 -> p s0 s1 */
        return (streams){4, 3};
    }
}

/* The floor: the same streams over the same arrays with trivial math, same threads. */
BENCH_CLONES static void floor_range(int reads, float *restrict p, const float *restrict g, float *restrict s0,
                                     float *restrict s1, int64_t lo, int64_t hi) {
    if (reads == 3) {
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) {
            float s = s0[i] + g[i];
            s0[i] = s;
            p[i] = p[i] - 1e-9f * s;
        }
    } else {
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) {
            float m = s0[i] + g[i], v = s1[i] + g[i];
            s0[i] = m;
            s1[i] = v;
            p[i] = p[i] - 1e-9f * (m + v);
        }
    }
}

/* LAMB's two passes: p g m v -> m v, then p m v -> p */
BENCH_CLONES static void floor_lamb1(float *restrict p, const float *restrict g, float *restrict s0,
                                     float *restrict s1, int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) {
        s0[i] = s0[i] + g[i];
        s1[i] = s1[i] + p[i];
    }
}
BENCH_CLONES static void floor_lamb2(float *restrict p, const float *restrict s0, const float *restrict s1, int64_t lo,
                                     int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) p[i] = p[i] - 1e-9f * (s0[i] + s1[i]);
}

static void floor_pass(gopt_algo a, float *restrict p, const float *restrict g, float *restrict s0,
                       float *restrict s1, int64_t n, int threads) {
    streams st = algo_streams(a);
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t lo = n * t / nt, hi = n * (t + 1) / nt;
        if (st.reads != 7) {
            floor_range(st.reads, p, g, s0, s1, lo, hi);
        } else {
            floor_lamb1(p, g, s0, s1, lo, hi);
#pragma omp barrier
            floor_lamb2(p, s0, s1, lo, hi);
        }
    }
}

/* Extra rows (issue 18, helper "sf"): the EMA update (avg p -> avg) against a pass over the
 * same three streams, and SGD with momentum and L1 against SGD's floor (L1 adds no stream:
 * its term is added block by block in cache). `--algo ema` or `--algo l1` run one alone. */
BENCH_CLONES static void floor_ema(float *restrict avg, const float *restrict p, int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) avg[i] = avg[i] + 1e-9f * p[i];
}

static double ema_torch_ns = NAN; /* torch_optim.py's AveragedModel EMA update, with --torch */

static void sf_extra_rows(const char *which, int64_t n, int threads, int reps) {
    double *t_ours = malloc((size_t)reps * sizeof *t_ours), *t_floor = malloc((size_t)reps * sizeof *t_floor);
    int64_t shape[1] = {n};
    for (int row = 0; row < 2; row++) {
        const char *name = row == 0 ? "ema" : "l1";
        if (strcmp(which, "all") != 0 && strcmp(which, name) != 0) continue;
        gopt_params *p = NULL;
        gopt_optim *opt = NULL;
        gopt_average *avg = NULL;
        gopt_average_config ac = gopt_average_config_default(GOPT_AVERAGE_EMA);
        gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
        oc.momentum = 0.9f;
        oc.l1 = 1e-4f;
        if (gopt_params_create(&p) || gopt_params_add(p, "w", 1, shape, GOPT_TAG_WEIGHT, NULL) ||
            gopt_params_finalize(p) ||
            (row == 0 ? gopt_average_create(&ac, p, &avg) : gopt_optim_create(&oc, p, &opt))) {
            fprintf(stderr, "setup failed: %s\n", gopt_last_error());
            exit(1);
        }
        float *pv = gopt_params_values(p), *gv = gopt_params_grads(p);
        gopt_rng rng;
        gopt_rng_seed(&rng, 43);
        for (int64_t i = 0; i < n; i++) {
            pv[i] = gopt_rng_uniform(&rng) - 0.5f;
            gv[i] = 1e-3f * (gopt_rng_uniform(&rng) - 0.5f);
        }
        float *fp = malloc((size_t)n * 4), *fg = malloc((size_t)n * 4), *f0 = calloc((size_t)n, 4);
        if (!fp || !fg || !f0) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        memcpy(fp, pv, (size_t)n * 4);
        memcpy(fg, gv, (size_t)n * 4);
        for (int r = -1; r < reps; r++) { /* r = -1: warm-up (first touch, the EMA's copy) */
            double t0 = bench_now();
            if (row == 0) gopt_average_update(avg);
            else gopt_optim_step(opt);
            double t1 = bench_now();
            if (row == 0) {
#pragma omp parallel num_threads(threads)
                {
                    int t = omp_get_thread_num(), nt = omp_get_num_threads();
                    floor_ema(f0, fp, n * t / nt, n * (t + 1) / nt);
                }
            } else {
                floor_pass(GOPT_ALGO_SGD, fp, fg, f0, NULL, n, threads);
            }
            double t2 = bench_now();
            if (r >= 0) {
                t_ours[r] = t1 - t0;
                t_floor[r] = t2 - t1;
            }
        }
        double ns = bench_median(t_ours, reps) * 1e9, fl = bench_median(t_floor, reps) * 1e9;
        double bytes = 4.0 * (row == 0 ? 3 : 5) * (double)n, peer = row == 0 ? ema_torch_ns : NAN;
        char tr[32] = "n/a";
        if (!isnan(peer)) snprintf(tr, sizeof tr, "%.3f", ns / peer);
        printf("%-9s %10.3f %8.2f %10.2f %10.3f %12s\n", row == 0 ? "ema" : "sgd+l1", ns / (double)n, bytes / ns,
               bytes / fl, ns / fl, tr);
        bench_row(row == 0 ? "optim.ema_update" : "optim.sgd_l1", "GB/s", bytes / ns, bytes / fl, bytes / peer);
        free(fp);
        free(fg);
        free(f0);
        gopt_average_destroy(avg);
        gopt_optim_destroy(opt);
        gopt_params_destroy(p);
    }
    free(t_ours);
    free(t_floor);
}

typedef struct result {
    double ns_step, floor_ns, torch_ns;
} result;

int main(int argc, char **argv) {
    int64_t n = 10000000;
    int threads = 2, reps = 7, torch = 0;
    const char *algo_arg = "all", *python = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--params") && i + 1 < argc) n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--algo") && i + 1 < argc) algo_arg = argv[++i];
        else if (!strcmp(argv[i], "--torch")) torch = 1;
        else if (!strcmp(argv[i], "--python") && i + 1 < argc) python = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--params N] [--threads T] [--reps R] [--algo NAME|all] [--torch] [--python PATH]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || threads < 1 || reps < 1) {
        fprintf(stderr, "--params, --threads and --reps must be >= 1\n");
        return 2;
    }
    gopt_algo algos[GOPT_ALGO_COUNT];
    int nalgo = 0;
    if (!strcmp(algo_arg, "all")) {
        for (int a = 0; a < GOPT_ALGO_COUNT; a++) algos[nalgo++] = (gopt_algo)a;
    } else if (gopt_algo_from_name(algo_arg, &algos[0]) == GOPT_OK) {
        nalgo = 1;
    } else if (!strcmp(algo_arg, "ema") || !strcmp(algo_arg, "l1")) {
        nalgo = 0; /* sf_extra_rows below */
    } else {
        fprintf(stderr, "%s\n", gopt_last_error());
        return 2;
    }
    gopt_set_threads(threads);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("bench_optim: %lld params (one tensor), %d threads, %d reps (medians), OPENBLAS_CORETYPE=%s\n",
           (long long)n, threads, reps, ct ? ct : "(unset)");

    result res[GOPT_ALGO_COUNT];
    for (int k = 0; k < nalgo; k++) res[k].torch_ns = NAN;
    if (torch && (nalgo > 0 || !strcmp(algo_arg, "ema"))) { /* l1 alone: no torch peer */
        char args[512];
        int w = snprintf(args, sizeof args, "--params %lld --threads %d --reps %d --algos ", (long long)n, threads, reps);
        for (int k = 0; k < nalgo && w > 0 && (size_t)w < sizeof args; k++)
            w += snprintf(args + w, sizeof args - (size_t)w, "%s%s", k ? "," : "", gopt_algo_name(algos[k]));
        if ((!strcmp(algo_arg, "all") || !strcmp(algo_arg, "ema")) && w > 0 && (size_t)w < sizeof args)
            snprintf(args + w, sizeof args - (size_t)w, "%sema", nalgo ? "," : ""); /* sf_extra_rows */
        FILE *f = bench_torch_open(python, "torch_optim.py", args);
        if (!f) {
            printf("torch: skipped (python3 with torch is not importable)\n");
        } else {
            char line[512], name[64], val[64];
            while (fgets(line, sizeof line, f))
                if (sscanf(line, "torch %63s %63s", name, val) == 2) {
                    if (!strcmp(name, "ema") && strcmp(val, "skip") != 0) ema_torch_ns = atof(val);
                    for (int k = 0; k < nalgo; k++)
                        if (!strcmp(name, gopt_algo_name(algos[k])) && strcmp(val, "skip") != 0)
                            res[k].torch_ns = atof(val);
                }
            if (pclose(f) != 0) printf("torch: torch_optim.py failed; its figures may be missing\n");
        }
    }

    printf("%-9s %10s %8s %10s %10s %12s\n", "algo", "ns/param", "GB/s", "floor GB/s", "vs floor", "ours/torch");
    double *t_ours = malloc((size_t)reps * sizeof *t_ours), *t_floor = malloc((size_t)reps * sizeof *t_floor);
    for (int k = 0; k < nalgo; k++) {
        gopt_params *p = NULL;
        gopt_optim *opt = NULL;
        int64_t shape[1] = {n};
        gopt_optim_config cfg = gopt_optim_config_default(algos[k]);
        if (algos[k] == GOPT_ALGO_SGD) cfg.momentum = 0.9f;
        if (gopt_params_create(&p) || gopt_params_add(p, "w", 1, shape, GOPT_TAG_WEIGHT, NULL) ||
            gopt_params_finalize(p) || gopt_optim_create(&cfg, p, &opt)) {
            fprintf(stderr, "setup failed: %s\n", gopt_last_error());
            return 1;
        }
        float *pv = gopt_params_values(p), *gv = gopt_params_grads(p);
        gopt_rng rng;
        gopt_rng_seed(&rng, 42);
        for (int64_t i = 0; i < n; i++) {
            pv[i] = gopt_rng_uniform(&rng) - 0.5f;
            gv[i] = 1e-3f * (gopt_rng_uniform(&rng) - 0.5f);
        }
        /* Floor arrays: separate, same size, every page written before timing. (A calloc'ed
         * array that is only read stays mapped to the kernel's one zero page, so reading it
         * costs no memory traffic and the floor would skip a stream.) */
        float *fp = malloc((size_t)n * 4), *fg = malloc((size_t)n * 4), *f0 = calloc((size_t)n, 4), *f1 = calloc((size_t)n, 4);
        if (!fp || !fg || !f0 || !f1) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        memcpy(fp, pv, (size_t)n * 4);
        memcpy(fg, gv, (size_t)n * 4);
        gopt_optim_step(opt); /* warm-up: first touch of the state */
        floor_pass(algos[k], fp, fg, f0, f1, n, threads);
        for (int r = 0; r < reps; r++) { /* interleaved so both see the same machine load */
            double t0 = bench_now();
            gopt_optim_step(opt);
            double t1 = bench_now();
            floor_pass(algos[k], fp, fg, f0, f1, n, threads);
            double t2 = bench_now();
            t_ours[r] = t1 - t0;
            t_floor[r] = t2 - t1;
        }
        res[k].ns_step = bench_median(t_ours, reps) * 1e9;
        res[k].floor_ns = bench_median(t_floor, reps) * 1e9;
        streams st = algo_streams(algos[k]);
        double bytes = 4.0 * (double)(st.reads + st.writes) * (double)n;
        char tr[32] = "n/a";
        if (!isnan(res[k].torch_ns)) snprintf(tr, sizeof tr, "%.3f", res[k].ns_step / res[k].torch_ns);
        printf("%-9s %10.3f %8.2f %10.2f %10.3f %12s\n", gopt_algo_name(algos[k]), res[k].ns_step / (double)n,
               bytes / res[k].ns_step, bytes / res[k].floor_ns, res[k].ns_step / res[k].floor_ns, tr);
        char row[64];
        snprintf(row, sizeof row, "optim.%s", gopt_algo_name(algos[k]));
        bench_row(row, "GB/s", bytes / res[k].ns_step, bytes / res[k].floor_ns, bytes / res[k].torch_ns);
        free(fp);
        free(fg);
        free(f0);
        free(f1);
        gopt_optim_destroy(opt);
        gopt_params_destroy(p);
    }
    free(t_ours);
    free(t_floor);
    sf_extra_rows(algo_arg, n, threads, reps);
    return 0;
}
