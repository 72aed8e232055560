#define _POSIX_C_SOURCE 200809L
/* bench_train: training throughput of a CIFAR ResNet (forward + cross-entropy + backward +
 * SGD momentum step) at a fixed batch on random data, with a per-layer-type time breakdown,
 * and optionally the same net in PyTorch (bench/torch_train.py) in the same invocation.
 *
 *   bench_train [--arch resnet8|resnet20|resnetN] [--batch 128] [--threads 2] [--iters 10]
 *               [--warmup 2] [--torch] [--python /usr/bin/python3] [--script PATH]
 *
 *   bench_train --conv-paths [--arch ...] [--batch 128] [--threads 2] [--iters 10]
 *
 * --conv-paths times every convolution shape of the net on each path this CPU can run
 * (im2col + OpenBLAS SGEMM "generic", im2col + the library's AVX2 products "im2col", the
 * AVX-512 "direct" kernels, "winograd" F(4x4,3x3)), forward,
 * input gradient and weight gradient separately, as effective GFLOP/s (the direct FLOP count
 * over the time) against the SGEMM peak measured in the same run, and says which path the
 * library picks (GOPT_CONV_PATH=auto|winograd|direct|implicit|im2col|generic in the environment overrides it).
 *
 * Every run measures the SGEMM peak (2048^3, median of 5, the same threads) and reports the
 * convolutions' effective GFLOP/s over it (above 1.0: faster than any direct convolution at
 * that peak could be), and prints machine-readable rows for scripts/bench.sh:
 *   ROW <tab> name <tab> unit <tab> ours <tab> floor <tab> peer   (- when absent)
 *
 * The step is gopt_optim's SGD with momentum 0.9 (torch.optim.SGD(lr=0.01, momentum=0.9) on
 * the torch side). Medians over --iters are reported: other processes share the cores.
 * Threads: one OpenMP runtime owns them (the library links the OpenMP build of OpenBLAS). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <gradopt.h>

#include "airbench.h"
#include "bench_util.h"
#include "cli.h"
#include "core/blas.h"
#include "core/common.h"
#include "nn/kernels.h"

/* SGEMM GFLOP/s at n^3 with the library's threads: median of reps (the floor of a conv) */
static double sgemm_peak(int n, int reps) {
    float *a = gopt__aligned_alloc(sizeof(float) * (size_t)n * n), *b = gopt__aligned_alloc(sizeof(float) * (size_t)n * n),
          *c = gopt__aligned_alloc(sizeof(float) * (size_t)n * n);
    double t[16];
    if (!a || !b || !c || reps > 16) return 0.0;
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    gopt__sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm up */
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        gopt__sgemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t[r] = bench_now() - t0;
    }
    gopt__aligned_free(a), gopt__aligned_free(b), gopt__aligned_free(c);
    return 2.0 * n * n * (double)n / bench_median(t, reps) * 1e-9;
}

static void row(const char *name, const char *unit, double ours, double floor_, double peer) {
    printf("ROW\t%s\t%s\t%.4g\t", name, unit, ours);
    if (floor_ > 0) printf("%.4g\t", floor_); else printf("-\t");
    if (peer > 0) printf("%.4g\n", peer); else printf("-\n");
}

/* --conv-paths: one shape, one path; ms for forward, dX, dW (medians) or -1 if not taken */
typedef struct cshape {
    const char *what;
    int C, K, H, R, stride;
} cshape;

static int time_path(const cshape *sh, const char *path, int batch, int iters, double ms[3], int *picked) {
    gopt__conv c;
    setenv("GOPT_CONV_PATH", path, 1);
    gopt_status st = gopt__conv_setup(&c, sh->C, sh->K, sh->H, sh->H, sh->R, sh->stride, sh->R / 2, 0, batch);
    unsetenv("GOPT_CONV_PATH");
    if (st) return 0;
    const char *got = c.wino ? "winograd" : c.fast ? "direct" : c.impl ? "implicit" : c.cgemm ? "im2col" : "generic";
    if (strcmp(got, path)) return 0; /* this CPU or shape does not take that path */
    gopt__conv ca;
    if (gopt__conv_setup(&ca, sh->C, sh->K, sh->H, sh->H, sh->R, sh->stride, sh->R / 2, 0, batch) == GOPT_OK)
        *picked = !strcmp(path, ca.wino ? "winograd" : ca.fast ? "direct" : ca.impl ? "implicit" : ca.cgemm ? "im2col" : "generic");
    const size_t nx = (size_t)batch * sh->C * sh->H * sh->H, ny = (size_t)batch * sh->K * c.OH * c.OW,
                 nw = (size_t)sh->K * sh->C * sh->R * sh->R;
    float *x = gopt__aligned_alloc(nx * sizeof(float)), *y = gopt__aligned_alloc(ny * sizeof(float)),
          *dx = gopt__aligned_alloc(nx * sizeof(float)), *w = gopt__aligned_alloc(nw * sizeof(float)),
          *dw = gopt__aligned_alloc(nw * sizeof(float)), *ws = gopt__aligned_alloc(gopt__conv_ws_floats(&c) * sizeof(float));
    double *t = malloc(sizeof(double) * (size_t)iters);
    if (!x || !y || !dx || !w || !dw || !ws || !t) return 0;
    for (size_t i = 0; i < nx; i++) x[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < nw; i++) w[i] = (float)((i * 40503u) % 1000) * 1e-4f - 0.05f;
    for (size_t i = 0; i < ny; i++) y[i] = (float)((i * 69069u) % 1000) * 1e-3f - 0.5f;
    for (int part = 0; part < 3; part++) {
        for (int it = -1; it < iters; it++) {
            double t0 = bench_now();
            if (part == 0) gopt__conv_forward(&c, w, NULL, x, y, batch, ws);
            else if (part == 1) gopt__conv_backward(&c, w, NULL, NULL, x, y, dx, 0, batch, ws);
            else gopt__conv_backward(&c, w, dw, NULL, x, y, NULL, 0, batch, ws);
            if (it >= 0) t[it] = bench_now() - t0;
        }
        ms[part] = 1e3 * bench_median(t, iters);
    }
    gopt__aligned_free(x), gopt__aligned_free(y), gopt__aligned_free(dx), gopt__aligned_free(w), gopt__aligned_free(dw);
    gopt__aligned_free(ws);
    free(t);
    return 1;
}

static void conv_paths(int batch, int iters, double peak) {
    const cshape shapes[] = {
        {"stem 3x3", 3, 16, 32, 3, 1},     {"3x3 s1", 16, 16, 32, 3, 1}, {"3x3 s1", 32, 32, 16, 3, 1},
        {"3x3 s1", 64, 64, 8, 3, 1},       {"3x3 s2", 16, 32, 32, 3, 2}, {"3x3 s2", 32, 64, 16, 3, 2},
        {"1x1 s2 proj", 16, 32, 32, 1, 2}, {"1x1 s2 proj", 32, 64, 16, 1, 2},
    };
    const char *paths[] = {"generic", "im2col", "implicit", "direct", "winograd"};
    printf("convolution paths, batch %d, median of %d; effective GFLOP/s = direct FLOPs / time; SGEMM peak %.1f "
           "GFLOP/s; * = the path the library picks\n",
           batch, iters, peak);
    printf("%-12s %-16s %-9s %9s %9s %9s %8s %8s %8s %7s\n", "layer", "C->K @HxW", "path", "fwd ms", "dX ms",
           "dW ms", "fwd GF/s", "dX GF/s", "dW GF/s", "/peak");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const cshape *sh = &shapes[i];
        const int OH = (sh->H + 2 * (sh->R / 2) - sh->R) / sh->stride + 1;
        const double fl = 2.0 * sh->C * sh->K * sh->R * sh->R * (double)OH * OH * batch;
        for (int p = 0; p < 5; p++) {
            double ms[3];
            int picked = 0;
            if (!time_path(sh, paths[p], batch, iters, ms, &picked)) continue;
            char dims[32];
            snprintf(dims, sizeof dims, "%d->%d @%dx%d", sh->C, sh->K, sh->H, sh->H);
            const double tot = ms[0] + ms[1] + ms[2];
            printf("%-12s %-16s %-8s%s %9.2f %9.2f %9.2f %8.1f %8.1f %8.1f %7.2f\n", sh->what, dims, paths[p],
                   picked ? "*" : " ", ms[0], ms[1], ms[2], fl / ms[0] * 1e-6, fl / ms[1] * 1e-6, fl / ms[2] * 1e-6,
                   3 * fl / tot * 1e-6 / peak);
        }
    }
}

static void die(const char *what, gopt_status s) {
    fprintf(stderr, "bench_train: %s: %s (%s)\n", what, gopt_status_str(s), gopt_last_error());
    exit(1);
}

typedef struct opts {
    const char *arch, *python, *script;
    int batch, threads, iters, warmup, torch, paths;
    float width;
} opts;

#define OO(f) offsetof(opts, f)
static const cli_opt opt_table[] = {
    CLI_O("--arch", "A", CLI_STR, OO(arch), 0, 0, NULL,
          "resnet8 | resnet20 | resnetN (N = 6n+2) | airbench (train_cifar10's\n--recipe net)"),
    CLI_O("--width", "K", CLI_FLOAT, OO(width), 0.05, 16, "1, airbench 0.5", "width multiplier"),
    CLI_O("--batch", "N", CLI_INT, OO(batch), 1, 1000000, NULL, "batch size"),
    CLI_O("--threads", "T", CLI_INT, OO(threads), 1, 1024, NULL, "threads"),
    CLI_O("--iters", "N", CLI_INT, OO(iters), 1, 1000000, NULL, "timed steps (medians)"),
    CLI_O("--warmup", "N", CLI_INT, OO(warmup), 0, 1000000, NULL, "untimed steps first"),
    CLI_O("--torch", NULL, CLI_FLAG, OO(torch), 0, 0, NULL, "the same step in PyTorch too (bench/torch_train.py)"),
    CLI_O("--python", "PATH", CLI_STR, OO(python), 0, 0, "the first python3 that imports torch",
          "the python3 for --torch"),
    CLI_O("--script", "PATH", CLI_STR, OO(script), 0, 0, "bench/torch_train.py", "the torch script"),
    CLI_O("--conv-paths", NULL, CLI_FLAG, OO(paths), 0, 0, NULL,
          "time every convolution shape of the net on each path this CPU can run"),
};
#undef OO
#define USAGE "bench_train [options]"

int main(int argc, char **argv) {
    opts o = {.arch = "resnet20", .batch = 128, .threads = 2, .iters = 10, .warmup = 2};
    cli_group group = {NULL, opt_table, CLI_COUNT(opt_table), &o, NULL, NULL};
    cli_spec spec = {.usage = USAGE, .groups = &group, .ngroups = 1};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed < 0 || parsed == CLI_HELP) return parsed < 0 ? 2 : 0;
    const char *arch = o.arch, *python = o.python, *script = o.script;
    int batch = o.batch, threads = o.threads, iters = o.iters, warmup = o.warmup, run_torch = o.torch, paths = o.paths;
    const int airbench = strcmp(arch, "airbench") == 0;
    int depth = strncmp(arch, "resnet", 6) == 0 ? atoi(arch + 6) : 0;
    if (!cli_given(&spec, "--width")) o.width = airbench ? 0.5f : 1.0f;
    const float width = o.width;
    if ((!airbench && (depth < 8 || (depth - 2) % 6)) || batch < 1 || threads < 1 || iters < 1 || warmup < 0) {
        fprintf(stderr, "bench_train: bad --arch/--batch/--threads/--iters\n");
        return 2;
    }
    if (parsed == CLI_PRINT_CONFIG) {
        cli_print_values(stdout, &spec);
        return 0;
    }
    gopt_set_threads(threads);
    const double peak = sgemm_peak(2048, 5);
    if (paths) {
        conv_paths(batch, iters, peak);
        return 0;
    }
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    gopt_net *net;
    gopt_status s;
    if (airbench) {
        if ((s = airbench_build(width, 10, batch, 0, &net))) die("airbench_build", s);
    } else {
        gopt_resnet_config rc = gopt_resnet_config_default();
        rc.depth = depth;
        rc.width = width;
        rc.max_batch = batch;
        if ((s = gopt_resnet_cifar(&rc, &net))) die("gopt_resnet_cifar", s);
    }
    struct rusage ru0;
    getrusage(RUSAGE_SELF, &ru0);
    gopt_params *p = gopt_net_params(net);
    const int64_t np = gopt_params_numel(p);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.01f;
    oc.momentum = 0.9f;
    gopt_optim *opt;
    if ((s = gopt_optim_create(&oc, p, &opt))) die("gopt_optim_create", s);
    float *x = malloc(sizeof(float) * (size_t)batch * 3 * 32 * 32);
    float *dl = malloc(sizeof(float) * (size_t)batch * 10);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch);
    double *times = malloc(sizeof(double) * (size_t)iters);
    if (!x || !dl || !y || !times) return 1;
    gopt_rng rng;
    gopt_rng_seed(&rng, 1);
    for (int64_t i = 0; i < (int64_t)batch * 3 * 32 * 32; i++) x[i] = gopt_rng_normal(&rng);
    for (int i = 0; i < batch; i++) y[i] = (int32_t)gopt_rng_below(&rng, 10);
    int64_t xs[4] = {batch, 3, 32, 32}, ls[2] = {batch, 10};
    gopt_tensor tx, logits, tdl;
    gopt_tensor_view(x, 4, xs, &tx);
    gopt_tensor_view(dl, 2, ls, &tdl);
    float loss = 0.0f;
    for (int it = 0; it < warmup + iters; it++) {
        if (it == warmup) {
            gopt_net_timing_reset(net);
            gopt_net_set_timing(net, 1);
        }
        double t0 = bench_now();
        gopt_optim_zero_grad(opt);
        if ((s = gopt_net_forward(net, &tx, &logits))) die("forward", s);
        if ((s = gopt_loss_cross_entropy(&logits, y, 0.0f, &loss, &tdl))) die("loss", s);
        if ((s = gopt_net_backward(net, &tdl))) die("backward", s);
        if ((s = gopt_optim_step(opt))) die("step", s);
        double t = bench_now() - t0;
        if (it >= warmup) times[it - warmup] = t;
    }
    double med = bench_median(times, iters), best = times[0]; /* bench_median sorts */
    double flops = 3.0 * gopt_net_forward_flops(net) * batch; /* forward + 2x for backward */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("bench_train %s width=%g batch=%d threads=%d iters=%d params=%lld OPENBLAS_CORETYPE=%s\n", arch, width,
           batch, threads, iters, (long long)np, coretype ? coretype : "(unset)");
    printf("gradopt: median %.2f ms/iter (best %.2f)  %.1f img/s  %.2f GFLOP/s  loss %.4f  max RSS %.1f MB (%.1f MB after build)\n",
           1e3 * med, 1e3 * best, batch / med, flops / med * 1e-9, loss, ru.ru_maxrss / 1024.0, ru0.ru_maxrss / 1024.0);
    gopt_net_timing tm;
    gopt_net_timing_get(net, &tm);
    printf("per layer type (ms/iter, mean over timed iters): forward / backward\n");
    for (int t = 0; t < GOPT_LAYER_TYPE_COUNT; t++) {
        if (tm.forward_s[t] == 0.0 && tm.backward_s[t] == 0.0) continue;
        printf("  %-15s %8.2f / %8.2f\n", gopt_layer_type_name((gopt_layer_type)t), 1e3 * tm.forward_s[t] / iters,
               1e3 * tm.backward_s[t] / iters);
    }
    const double conv_s = (tm.forward_s[GOPT_LAYER_CONV2D] + tm.backward_s[GOPT_LAYER_CONV2D]) / iters;
    /* the net's forward FLOPs are its convolutions' but for the final linear layer's 1280 */
    const double conv_gf = conv_s > 0 ? flops / conv_s * 1e-9 : 0.0;
    printf("convolutions: %.1f ms/iter, effective %.1f GFLOP/s (direct FLOPs / time) over SGEMM peak %.1f GFLOP/s "
           "(2048^3, %d threads) = %.2f\n",
           1e3 * conv_s, conv_gf, peak, threads, conv_gf / peak);
    double timg = 0.0;
    if (run_torch) {
        char args[256];
        snprintf(args, sizeof args, "--arch %s --width %g --batch %d --threads %d --iters %d --warmup %d", arch, width,
                 batch, threads, iters, warmup);
        FILE *f = bench_torch_open(python, script ? script : "torch_train.py", args);
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            fputs(line, stdout);
            char *q = strstr(line, "img_s=");
            if (q) timg = atof(q + 6);
        }
        if (f) pclose(f);
        if (timg > 0.0)
            printf("ratio gradopt/torch img/s: %.2fx (medians, same run, %d threads)\n", (batch / med) / timg, threads);
        else
            printf("torch run failed (python3 with torch not found, or %s failed)\n", script ? script : "bench/torch_train.py");
    }
    char name[64];
    snprintf(name, sizeof name, "%s.step", arch);
    row(name, "img/s", batch / med, 0.0, timg);
    snprintf(name, sizeof name, "%s.conv", arch);
    row(name, "GFLOP/s", conv_gf, peak, 0.0);
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
    free(x);
    free(dl);
    free(y);
    free(times);
    return 0;
}
