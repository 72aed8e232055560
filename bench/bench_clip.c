/* bench_clip [--params N] [--threads T] [--reps R] [--torch] [--python PATH]: clip by global
 * L2 norm over one buffer, against floors measured rep by rep in the same run, and (with
 * --torch) against torch's clip_grad_norm_ (bench/torch_clip.py, run through PATH or the first
 * python3 that imports torch):
 *   active   (the norm is above max_norm: read, then scale)  vs one read + one scale pass
 *   inactive (the norm is under max_norm: one read, no write) vs one read pass
 * torch 1.13 always multiplies (by a coefficient clamped to 1), so it has one case, timed on
 * one flat tensor and on a ResNet-like list of ~300 tensors of the same total size.
 * Prints medians, ns per parameter and ratios, and the machine-readable rows (bench_row), in
 * GB/s of the bytes the pass must move (active: 3 x 4 bytes per parameter, inactive: 4):
 *   ROW clip.active GB/s ours floor torch-flat
 *   ROW clip.active.torch_tensors GB/s ours floor torch-300-tensors   (with --torch only)
 *   ROW clip.inactive GB/s ours floor -            */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>

#include <gradopt.h>

#include "bench_util.h"
#include "cli.h"

/* floor: a plain vectorised read pass and a read-write scale pass, same threads */
BENCH_CLONES static float sumsq_range(const float *x, long lo, long hi) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (long i = lo; i < hi; i++) s += x[i] * x[i];
    return s;
}
BENCH_CLONES static void scale_range(float *x, long lo, long hi, float c) {
#pragma omp simd
    for (long i = lo; i < hi; i++) x[i] *= c;
}
static float floor_read(const float *x, long n, int threads) {
    float s = 0;
#pragma omp parallel num_threads(threads) reduction(+ : s)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        s += sumsq_range(x, n * t / nt, n * (t + 1) / nt);
    }
    return s;
}
static void floor_scale(float *x, long n, float c, int threads) {
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        scale_range(x, n * t / nt, n * (t + 1) / nt, c);
    }
}

typedef struct opts {
    int64_t n;
    int threads, reps, torch;
    const char *python;
} opts;

#define OO(f) offsetof(opts, f)
static const cli_opt opt_table[] = {
    CLI_O("--params", "N", CLI_I64, OO(n), 1, 4e9, NULL, "parameters in the buffer"),
    CLI_O("--threads", "T", CLI_INT, OO(threads), 1, 1024, NULL, "threads"),
    CLI_O("--reps", "R", CLI_INT, OO(reps), 1, 1000000, NULL, "repetitions (medians)"),
    CLI_O("--torch", NULL, CLI_FLAG, OO(torch), 0, 0, NULL, "time torch's clip_grad_norm_ too (bench/torch_clip.py)"),
    CLI_O("--python", "PATH", CLI_STR, OO(python), 0, 0, "the first python3 that imports torch",
          "the python3 for --torch"),
};
#undef OO
#define USAGE "bench_clip [options]"

int main(int argc, char **argv) {
    opts o = {.n = 10000000, .threads = 2, .reps = 20};
    cli_group group = {NULL, opt_table, CLI_COUNT(opt_table), &o, NULL, NULL};
    cli_spec spec = {.usage = USAGE, .groups = &group, .ngroups = 1};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed < 0 || parsed == CLI_HELP) return parsed < 0 ? 2 : 0;
    if (parsed == CLI_PRINT_CONFIG) {
        cli_print_values(stdout, &spec);
        return 0;
    }
    long n = (long)o.n;
    int threads = o.threads, reps = o.reps, torch = o.torch;
    const char *python = o.python;
    gopt_set_threads(threads);
    float *g = malloc((size_t)n * sizeof *g);
    if (!g) return 1;
    uint64_t s = 1;
    for (long i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        g[i] = (float)((s >> 40) & 0xffff) / 65536.0f - 0.5f;
    }
    double *t_lib = malloc(sizeof(double) * (size_t)reps), *t_floor = malloc(sizeof(double) * (size_t)reps);
    if (!t_lib || !t_floor) return 1;
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("clip_grad_norm L2, %ld params, %d threads, %d reps (medians)%s%s\n", n, threads, reps,
           core ? ", OPENBLAS_CORETYPE=" : "", core ? core : "");
    double lib = 0.0, lib_floor = 0.0, inactive = 0.0, inactive_floor = 0.0;
    for (int active = 1; active >= 0; active--) {
        double max_norm = active ? 1.0 : 1e30; /* g's norm is ~1 after the first active rep */
        volatile float sink = 0;
        for (int r = -2; r < reps; r++) { /* 2 warm-up reps */
            float total;
            double t0 = 1e3 * bench_now();
            if (gopt_clip_grad_norm_buffer(g, n, max_norm, 2.0, 0, &total) != GOPT_OK) {
                fprintf(stderr, "bench_clip: %s\n", gopt_last_error());
                return 1;
            }
            double t1 = 1e3 * bench_now();
            float ss = floor_read(g, n, threads);
            if (active) floor_scale(g, n, 1.0f / (sqrtf(ss) + 1e-6f), threads);
            double t2 = 1e3 * bench_now();
            sink += total + ss;
            if (r >= 0) {
                t_lib[r] = t1 - t0;
                t_floor[r] = t2 - t1;
            }
        }
        (void)sink;
        double ours = bench_median(t_lib, reps), flo = bench_median(t_floor, reps);
        if (active) {
            lib = ours;
            lib_floor = flo;
        } else {
            inactive = ours;
            inactive_floor = flo;
        }
        printf("  %-8s libgradopt %9.3f ms (%.3f ns/param)   floor (%s) %9.3f ms   libgradopt/floor = %.2f\n",
               active ? "active" : "inactive", ours, ours * 1e6 / (double)n, active ? "read+scale" : "read",
               flo, ours / flo);
    }

    char args[128];
    snprintf(args, sizeof args, "%ld %d %d 2>/dev/null", n, threads, reps);
    FILE *p = torch ? bench_torch_open(python, "torch_clip.py", args) : NULL;
    char line[256];
    int got = 0;
    double torch_flat = NAN, torch_tensors = NAN; /* ms */
    while (p && fgets(line, sizeof line, p)) {
        char what[32];
        double ms;
        int k;
        if (sscanf(line, "%31s %lf %d", what, &ms, &k) == 3) {
            printf("  torch 1.13 (%s, %d tensors) %9.3f ms  -> torch/libgradopt (active) = %.2fx\n", what, k, ms, ms / lib);
            got = 1;
            if (!strcmp(what, "flat")) torch_flat = ms;
            else if (!strcmp(what, "tensors")) torch_tensors = ms;
        }
    }
    if (p && pclose(p) != 0) printf("  torch: torch_clip.py failed; its figures may be missing\n");
    if (torch && !got) printf("  torch: not importable by python3, comparison skipped\n");
    /* GB/s of the bytes each pass must move; the times are in ms */
    const double active_gb = 12.0 * (double)n * 1e-6, inactive_gb = 4.0 * (double)n * 1e-6;
    bench_row("clip.active", "GB/s", active_gb / lib, active_gb / lib_floor, active_gb / torch_flat);
    if (torch) /* the same figures as clip.active but for the peer: only with one */
        bench_row("clip.active.torch_tensors", "GB/s", active_gb / lib, active_gb / lib_floor,
                  active_gb / torch_tensors);
    bench_row("clip.inactive", "GB/s", inactive_gb / inactive, inactive_gb / inactive_floor, NAN);
    free(g);
    free(t_lib);
    free(t_floor);
    return 0;
}
