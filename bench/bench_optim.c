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
 * torch's GB/s counting the same bytes over its step time.
 * Muon and Adafactor (issue 18; not in torch 1.13: with --torch, torch_optim.py times their
 * PyTorch 2.x single-tensor steps transcribed in torch 1.13 ops) have rows of their own:
 * Adafactor over one (N/1024, 1024) matrix, over one vector, and over a convolution's
 * (N/9216, 1024, 3, 3) weight (its factors are 6 floats per 3x3 kernel) against the streams of
 * its passes (optim.adafactor, optim.adafactor-1d, optim.adafactor-conv, GB/s); Muon's Newton-Schulz GFLOP/s on a
 * 512x512 matrix against a 512^3 SGEMM timed alternately (optim.muon-ns512), and Muon's step
 * over ResNet-20's parameters against a ResNet-20 training step at batch 128
 * (optim.muon-resnet20: training steps per Muon step). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gradopt.h>

#include "bench_util.h"
#include "cli.h"
#include "core/blas.h"   /* gopt__sgemm: the in-run SGEMM peak of Muon's row */
#include "core/common.h" /* gopt__aligned_alloc */

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

/* ---- issue 18: Adafactor against its memory floor, Muon's GEMMs against SGEMM ------------------ */

static volatile double bench_sink;

/* torch_optim.py's transcribed peers, ns per step (--torch): adafactor-1d, adafactor,
 * adafactor-conv (af_torch_ns[AF_VECTOR..AF_CONV]), muon-ns512 */
enum { AF_VECTOR, AF_MATRIX, AF_CONV };
static double af_torch_ns[3] = {NAN, NAN, NAN}, muon_torch_ns = NAN;
static void frontier_peer(const char *name, double ns) {
    if (!strcmp(name, "adafactor")) af_torch_ns[AF_MATRIX] = ns;
    else if (!strcmp(name, "adafactor-1d")) af_torch_ns[AF_VECTOR] = ns;
    else if (!strcmp(name, "adafactor-conv")) af_torch_ns[AF_CONV] = ns;
    else if (!strcmp(name, "muon-ns512")) muon_torch_ns = ns;
}

/* Adafactor's floor: its passes' streams with trivial math (see src/optim/adafactor.c).
 * Matrix: A reads p g, B reads g, C reads p g and writes p (24 bytes per element); a batch of
 * small matrices adds its factors f (A reads and writes them, B and C read them).
 * Vector: A reads p g v and writes v, C reads p g v and writes p (32 bytes per element). */
BENCH_CLONES static double af_floor_a(const float *restrict p, const float *restrict g, int64_t lo, int64_t hi) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = lo; i < hi; i++) s += p[i] * p[i] + g[i] * g[i];
    return s;
}
BENCH_CLONES static double af_floor_b(const float *restrict g, int64_t lo, int64_t hi) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = lo; i < hi; i++) s += g[i] * g[i];
    return s;
}
BENCH_CLONES static void af_floor_c(float *restrict p, const float *restrict g, int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) p[i] = p[i] - 1e-9f * g[i];
}
BENCH_CLONES static double af_floor_va(const float *restrict p, const float *restrict g, float *restrict v,
                                       int64_t lo, int64_t hi) {
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = lo; i < hi; i++) {
        float vi = v[i] * 0.5f + g[i] * g[i];
        v[i] = vi;
        s += p[i] * p[i] + vi;
    }
    return s;
}
BENCH_CLONES static void af_floor_vc(float *restrict p, const float *restrict g, const float *restrict v, int64_t lo,
                                     int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; i++) p[i] = p[i] - 1e-9f * g[i] * v[i];
}

BENCH_CLONES static double af_floor_f(float *restrict f, int64_t lo, int64_t hi, int write) {
    float s = 0.0f;
    if (write) {
#pragma omp simd
        for (int64_t i = lo; i < hi; i++) f[i] = f[i] * 0.5f + 1.0f;
        return 0.0;
    }
#pragma omp simd reduction(+ : s)
    for (int64_t i = lo; i < hi; i++) s += f[i];
    return s;
}

/* f: nf floats of factors (a batch of small matrices), or nf = 0 */
static void af_floor(int factored, float *p, const float *g, float *v, int64_t n, float *f, int64_t nf,
                     int threads) {
    double total = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int64_t lo = n * t / nt, hi = n * (t + 1) / nt, flo = nf * t / nt, fhi = nf * (t + 1) / nt;
        if (factored) {
            total += af_floor_a(p, g, lo, hi) + af_floor_f(f, flo, fhi, 1);
#pragma omp barrier
            total += af_floor_b(g, lo, hi) + af_floor_f(f, flo, fhi, 0);
#pragma omp barrier
            af_floor_c(p, g, lo, hi);
            total += af_floor_f(f, flo, fhi, 0);
        } else {
            total += af_floor_va(p, g, v, lo, hi);
#pragma omp barrier
            af_floor_vc(p, g, v, lo, hi);
        }
    }
    bench_sink = total;
}

static int setup_fail(const char *what) {
    fprintf(stderr, "%s failed: %s\n", what, gopt_last_error());
    return 1;
}

/* Adafactor over one vector of n, one (n/1024, 1024) matrix, or a (n/9216, 1024, 3, 3)
 * convolution weight (kind AF_*), against af_floor. */
static int bench_adafactor(int64_t n, int threads, int reps, int kind) {
    const int factored = kind != AF_VECTOR;
    const int64_t cols = 1024, rows = n / cols > 0 ? n / cols : 1, outs = n / 9216 > 0 ? n / 9216 : 1;
    n = kind == AF_CONV ? outs * 9216 : rows * cols;
    const int64_t nf = kind == AF_CONV ? n / 9 * 6 : 0; /* a 3x3 kernel's 3 row and 3 column factors */
    gopt_params *p = NULL;
    gopt_optim *opt = NULL;
    int64_t shape4[4] = {outs, 1024, 3, 3}, shape2[2] = {rows, cols}, shape1[1] = {n};
    int64_t *shape = kind == AF_CONV ? shape4 : kind == AF_MATRIX ? shape2 : shape1;
    gopt_optim_config cfg = gopt_optim_config_default(GOPT_ALGO_ADAFACTOR);
    cfg.weight_decay = 0.01f;
    if (gopt_params_create(&p) || gopt_params_add(p, "w", kind == AF_CONV ? 4 : factored ? 2 : 1, shape,
                                                  GOPT_TAG_WEIGHT, NULL) ||
        gopt_params_finalize(p) || gopt_optim_create(&cfg, p, &opt))
        return setup_fail("adafactor setup");
    float *pv = gopt_params_values(p), *gv = gopt_params_grads(p);
    gopt_rng rng;
    gopt_rng_seed(&rng, 42);
    for (int64_t i = 0; i < n; i++) {
        pv[i] = gopt_rng_uniform(&rng) - 0.5f;
        gv[i] = 1e-3f * (gopt_rng_uniform(&rng) - 0.5f);
    }
    float *fp = malloc((size_t)n * 4), *fg = malloc((size_t)n * 4), *fv = malloc((size_t)n * 4);
    float *ff = calloc((size_t)(nf > 0 ? nf : 1), 4);
    double *t_ours = malloc((size_t)reps * sizeof(double)), *t_floor = malloc((size_t)reps * sizeof(double));
    if (!fp || !fg || !fv || !ff || !t_ours || !t_floor) return setup_fail("adafactor floor arrays");
    memcpy(fp, pv, (size_t)n * 4);
    memcpy(fg, gv, (size_t)n * 4);
    memset(fv, 0, (size_t)n * 4);
    gopt_optim_step(opt);
    af_floor(factored, fp, fg, fv, n, ff, nf, threads);
    for (int r = 0; r < reps; r++) { /* alternately, as the other rows */
        double t0 = bench_now();
        gopt_optim_step(opt);
        double t1 = bench_now();
        af_floor(factored, fp, fg, fv, n, ff, nf, threads);
        double t2 = bench_now();
        t_ours[r] = t1 - t0;
        t_floor[r] = t2 - t1;
    }
    double ours = bench_median(t_ours, reps), fl = bench_median(t_floor, reps);
    double bytes = (factored ? 24.0 : 32.0) * (double)n + 16.0 * (double)nf, peer = af_torch_ns[kind] * 1e-9;
    const char *name = kind == AF_CONV ? "adafactor-conv" : kind == AF_MATRIX ? "adafactor" : "adafactor-1d";
    const char *what = kind == AF_CONV     ? "a (n/9216, 1024, 3, 3) weight: 3 passes, 24 B/param + factors"
                       : kind == AF_MATRIX ? "one (n/1024, 1024) matrix: 3 passes, 24 B/param"
                                           : "one vector: 2 passes, 32 B/param";
    char tr[32] = "n/a";
    if (!isnan(peer)) snprintf(tr, sizeof tr, "%.3f", ours / peer);
    printf("%-14s %8.3f %8.2f %10.2f %10.3f %12s   (%s; state %zu bytes)\n", name, ours * 1e9 / (double)n,
           bytes / ours * 1e-9, bytes / fl * 1e-9, ours / fl, tr, what, gopt_optim_state_size(opt));
    char row[64];
    snprintf(row, sizeof row, "optim.%s", name);
    bench_row(row, "GB/s", bytes / ours * 1e-9, bytes / fl * 1e-9, bytes / peer * 1e-9);
    free(fp), free(fg), free(fv), free(ff), free(t_ours), free(t_floor);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
    return 0;
}

/* Muon on one 512x512 matrix (ns_steps 5: 15 GEMMs of 2*512^3 flops) against a plain
 * 512x512x512 SGEMM timed alternately in the same run. The step's time includes its
 * element-wise work, so the fraction is a lower bound for the GEMMs alone. */
static int bench_muon_ns(int threads, int reps) {
    const int m = 512;
    gopt_params *p = NULL;
    gopt_optim *opt = NULL;
    int64_t shape[2] = {m, m};
    gopt_optim_config cfg = gopt_optim_config_default(GOPT_ALGO_MUON);
    if (gopt_params_create(&p) || gopt_params_add(p, "w", 2, shape, GOPT_TAG_WEIGHT, NULL) || gopt_params_finalize(p) ||
        gopt_optim_create(&cfg, p, &opt))
        return setup_fail("muon setup");
    gopt_rng rng;
    gopt_rng_seed(&rng, 7);
    float *pv = gopt_params_values(p), *gv = gopt_params_grads(p);
    for (int64_t i = 0; i < (int64_t)m * m; i++) {
        pv[i] = gopt_rng_normal(&rng);
        gv[i] = gopt_rng_normal(&rng);
    }
    float *a = gopt__aligned_alloc(sizeof(float) * (size_t)m * m), *b = gopt__aligned_alloc(sizeof(float) * (size_t)m * m),
          *c = gopt__aligned_alloc(sizeof(float) * (size_t)m * m);
    int nr = reps < 5 ? 5 : reps;
    double *t_step = malloc((size_t)nr * sizeof(double)), *t_gemm = malloc((size_t)nr * sizeof(double));
    if (!a || !b || !c || !t_step || !t_gemm) return setup_fail("muon bench arrays");
    for (size_t i = 0; i < (size_t)m * m; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    gopt_optim_step(opt);
    gopt__sgemm(0, 0, m, m, m, 1.0f, a, m, b, m, 0.0f, c, m);
    for (int r = 0; r < nr; r++) {
        double t0 = bench_now();
        gopt_optim_step(opt);
        double t1 = bench_now();
        gopt__sgemm(0, 0, m, m, m, 1.0f, a, m, b, m, 0.0f, c, m);
        double t2 = bench_now();
        t_step[r] = t1 - t0;
        t_gemm[r] = t2 - t1;
    }
    double ts = bench_median(t_step, nr), tg = bench_median(t_gemm, nr);
    double flop = 2.0 * m * m * (double)m;
    double ours = cfg.ns_steps * 3.0 * flop / ts * 1e-9, peak = flop / tg * 1e-9;
    /* and the large-matrix peak (2048^3, as bench_train's), for reference */
    const int big = 2048;
    float *ba = gopt__aligned_alloc(sizeof(float) * (size_t)big * big), *bb = gopt__aligned_alloc(sizeof(float) * (size_t)big * big),
          *bc = gopt__aligned_alloc(sizeof(float) * (size_t)big * big);
    double peak_big = NAN;
    if (ba && bb && bc) {
        double tb[3];
        for (size_t i = 0; i < (size_t)big * big; i++) ba[i] = bb[i] = (float)(i % 5) * 0.1f;
        gopt__sgemm(0, 0, big, big, big, 1.0f, ba, big, bb, big, 0.0f, bc, big);
        for (int r = 0; r < 3; r++) {
            double t0 = bench_now();
            gopt__sgemm(0, 0, big, big, big, 1.0f, ba, big, bb, big, 0.0f, bc, big);
            tb[r] = bench_now() - t0;
        }
        peak_big = 2.0 * big * big * (double)big / bench_median(tb, 3) * 1e-9;
    }
    gopt__aligned_free(ba), gopt__aligned_free(bb), gopt__aligned_free(bc);
    printf("muon-ns512   step %.2f ms: Newton-Schulz %.1f GFLOP/s (15 GEMMs of 512^3 over the whole step) vs SGEMM "
           "512^3 %.1f GFLOP/s timed alternately (%d threads) = %.2f of peak (SGEMM 2048^3: %.1f GFLOP/s, %.2f)\n",
           ts * 1e3, ours, peak, threads, ours / peak, peak_big, ours / peak_big);
    const double torch_gf = cfg.ns_steps * 3.0 * flop / (muon_torch_ns * 1e-9) * 1e-9;
    if (!isnan(torch_gf))
        printf("muon-ns512   torch 1.13 (the same step transcribed, float32): %.2f ms, %.1f GFLOP/s; ours/torch time %.3f\n",
               muon_torch_ns * 1e-6, torch_gf, ts / (muon_torch_ns * 1e-9));
    bench_row("optim.muon-ns512", "GFLOP/s", ours, peak, torch_gf);
    gopt__aligned_free(a), gopt__aligned_free(b), gopt__aligned_free(c);
    free(t_step), free(t_gemm);
    gopt_optim_destroy(opt);
    gopt_params_destroy(p);
    return 0;
}

/* Muon's step over ResNet-20's parameters (its convolutions and the head through Muon, the
 * BatchNorm scales/shifts and the head's bias through the AdamW fallback) against one
 * ResNet-20 training step (batch 128: zero grads, forward, cross entropy, backward, SGD
 * step), timed alternately in the same run. */
static int bench_muon_resnet20(int threads, int reps) {
    gopt_resnet_config rc = gopt_resnet_config_default();
    gopt_net *net = NULL;
    if (gopt_resnet_cifar(&rc, &net)) return setup_fail("resnet20");
    gopt_params *p = gopt_net_params(net);
    gopt_optim_config mc = gopt_optim_config_default(GOPT_ALGO_MUON), sc = gopt_optim_config_default(GOPT_ALGO_SGD);
    mc.lr = 0.02f;
    sc.lr = 0.01f;
    sc.momentum = 0.9f;
    gopt_optim *muon = NULL, *sgd = NULL;
    if (gopt_optim_create(&mc, p, &muon) || gopt_optim_create(&sc, p, &sgd)) return setup_fail("resnet20 optimizers");
    const int batch = rc.max_batch, nr = reps < 5 ? 5 : reps;
    float *x = malloc(sizeof(float) * (size_t)batch * 3 * 32 * 32), *dl = malloc(sizeof(float) * (size_t)batch * 10);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch);
    double *t_muon = malloc((size_t)nr * sizeof(double)), *t_train = malloc((size_t)nr * sizeof(double));
    if (!x || !dl || !y || !t_muon || !t_train) return setup_fail("resnet20 arrays");
    gopt_rng rng;
    gopt_rng_seed(&rng, 1);
    for (int64_t i = 0; i < (int64_t)batch * 3 * 32 * 32; i++) x[i] = gopt_rng_normal(&rng);
    for (int i = 0; i < batch; i++) y[i] = (int32_t)gopt_rng_below(&rng, 10);
    int64_t xs[4] = {batch, 3, 32, 32}, ls[2] = {batch, 10};
    gopt_tensor tx, logits, tdl;
    gopt_tensor_view(x, 4, xs, &tx);
    gopt_tensor_view(dl, 2, ls, &tdl);
    float loss = 0.0f;
    for (int r = -1; r < nr; r++) { /* r = -1: warm-up */
        double t0 = bench_now();
        gopt_optim_zero_grad(sgd);
        if (gopt_net_forward(net, &tx, &logits) || gopt_loss_cross_entropy(&logits, y, 0.0f, &loss, &tdl) ||
            gopt_net_backward(net, &tdl) || gopt_optim_step(sgd))
            return setup_fail("resnet20 training step");
        double t1 = bench_now();
        gopt_optim_step(muon); /* on the gradients the training step left */
        double t2 = bench_now();
        if (r >= 0) {
            t_train[r] = t1 - t0;
            t_muon[r] = t2 - t1;
        }
    }
    double tt = bench_median(t_train, nr), tm = bench_median(t_muon, nr);
    printf("muon-resnet20  Muon step over ResNet-20's %lld parameters %.2f ms; ResNet-20 training step (batch %d, SGD) "
           "%.1f ms; Muon step = %.3f of a training step (%d threads)\n",
           (long long)gopt_params_numel(p), tm * 1e3, batch, tt * 1e3, tm / tt, threads);
    bench_row("optim.muon-resnet20", "train-steps/muon-step", tt / tm, NAN, NAN);
    free(x), free(dl), free(y), free(t_muon), free(t_train);
    gopt_optim_destroy(muon);
    gopt_optim_destroy(sgd);
    gopt_net_destroy(net);
    return 0;
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

typedef struct opts {
    int64_t n;
    int threads, reps, torch;
    const char *algo, *python;
} opts;

#define OO(f) offsetof(opts, f)
static const cli_opt opt_table[] = {
    CLI_O("--params", "N", CLI_I64, OO(n), 1, 4e9, NULL, "parameters (one arena)"),
    CLI_O("--threads", "T", CLI_INT, OO(threads), 1, 1024, NULL, "threads"),
    CLI_O("--reps", "R", CLI_INT, OO(reps), 1, 1000000, NULL, "repetitions (medians)"),
    CLI_O("--algo", "NAME", CLI_STR, OO(algo), 0, 0, NULL, "an algorithm's registry name (or ema, l1), or all"),
    CLI_O("--torch", NULL, CLI_FLAG, OO(torch), 0, 0, NULL, "time torch.optim too (bench/torch_optim.py)"),
    CLI_O("--python", "PATH", CLI_STR, OO(python), 0, 0, "the first python3 that imports torch",
          "the python3 for --torch"),
};
#undef OO
#define USAGE "bench_optim [options]"

int main(int argc, char **argv) {
    opts o = {.n = 10000000, .threads = 2, .reps = 7, .algo = "all"};
    cli_group group = {NULL, opt_table, CLI_COUNT(opt_table), &o, NULL, NULL};
    cli_spec spec = {.usage = USAGE, .groups = &group, .ngroups = 1};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed < 0 || parsed == CLI_HELP) return parsed < 0 ? 2 : 0;
    if (parsed == CLI_PRINT_CONFIG) {
        cli_print_values(stdout, &spec);
        return 0;
    }
    int64_t n = o.n;
    int threads = o.threads, reps = o.reps, torch = o.torch;
    const char *algo_arg = o.algo, *python = o.python;
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
                    if (strcmp(val, "skip") != 0) frontier_peer(name, atof(val)); /* issue 18 (muon) */
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
        if (algos[k] == GOPT_ALGO_MUON || algos[k] == GOPT_ALGO_ADAFACTOR) continue; /* their own rows, below */
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
    for (int k = 0; k < nalgo; k++) { /* issue 18 */
        if (algos[k] == GOPT_ALGO_ADAFACTOR && (bench_adafactor(n, threads, reps, AF_MATRIX) ||
                                                bench_adafactor(n, threads, reps, AF_VECTOR) ||
                                                bench_adafactor(n, threads, reps, AF_CONV)))
            return 1;
        if (algos[k] == GOPT_ALGO_MUON && (bench_muon_ns(threads, reps) || bench_muon_resnet20(threads, reps)))
            return 1;
    }
    sf_extra_rows(algo_arg, n, threads, reps);
    return 0;
}
