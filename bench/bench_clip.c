/* bench_clip [--params N] [--threads T] [--reps R]: clip by global L2 norm over one buffer,
 * against floors measured rep by rep in the same run, and against torch's clip_grad_norm_
 * (bench/torch_clip.py, run through python3 when torch is importable):
 *   active   (the norm is above max_norm: read, then scale)  vs one read + one scale pass
 *   inactive (the norm is under max_norm: one read, no write) vs one read pass
 * torch 1.13 always multiplies (by a coefficient clamped to 1), so it has one case.
 * Prints medians, ns per parameter and ratios. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>

#include <gradopt.h>

#include "bench_util.h"

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

int main(int argc, char **argv) {
    long n = 10000000;
    int threads = 2, reps = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--params") && i + 1 < argc) n = atol(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--params N] [--threads T] [--reps R]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || threads < 1 || reps < 1) {
        fprintf(stderr, "bench_clip: --params, --threads and --reps must be >= 1\n");
        return 2;
    }
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
    double lib = 0.0;
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
        if (active) lib = ours;
        printf("  %-8s libgradopt %9.3f ms (%.3f ns/param)   floor (%s) %9.3f ms   libgradopt/floor = %.2f\n",
               active ? "active" : "inactive", ours, ours * 1e6 / (double)n, active ? "read+scale" : "read",
               flo, ours / flo);
    }

    char args[128];
    snprintf(args, sizeof args, "%ld %d %d 2>/dev/null", n, threads, reps);
    FILE *p = bench_torch_open(NULL, "torch_clip.py", args);
    char line[256];
    int got = 0;
    while (p && fgets(line, sizeof line, p)) {
        char what[32];
        double ms;
        int k;
        if (sscanf(line, "%31s %lf %d", what, &ms, &k) == 3) {
            printf("  torch 1.13 (%s, %d tensors) %9.3f ms  -> torch/libgradopt (active) = %.2fx\n", what, k, ms, ms / lib);
            got = 1;
        }
    }
    if (p) pclose(p);
    if (!got) printf("  torch: not importable by python3, comparison skipped\n");
    free(g);
    free(t_lib);
    free(t_floor);
    return 0;
}
