#define _POSIX_C_SOURCE 200809L
/* bench_train: training throughput of a CIFAR ResNet (forward + cross-entropy + backward +
 * SGD momentum step) at a fixed batch on random data, with a per-layer-type time breakdown,
 * and optionally the same net in PyTorch (bench/torch_train.py) in the same invocation.
 *
 *   bench_train [--arch resnet8|resnet20|resnetN] [--batch 128] [--threads 2] [--iters 10]
 *               [--warmup 2] [--torch] [--python /usr/bin/python3] [--script PATH]
 *
 * The step is gopt_optim's SGD with momentum 0.9 (torch.optim.SGD(lr=0.01, momentum=0.9) on
 * the torch side). Medians over --iters are reported: other processes share the cores.
 * Threads: one OpenMP runtime owns them (the library links the OpenMP build of OpenBLAS). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <gradopt.h>

#include "bench_util.h"

static void die(const char *what, gopt_status s) {
    fprintf(stderr, "bench_train: %s: %s (%s)\n", what, gopt_status_str(s), gopt_last_error());
    exit(1);
}

int main(int argc, char **argv) {
    const char *arch = "resnet20", *python = NULL, *script = NULL;
    int batch = 128, threads = 2, iters = 10, warmup = 2, run_torch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--torch")) run_torch = 1;
        else if (v && !strcmp(a, "--arch")) arch = argv[++i];
        else if (v && !strcmp(a, "--batch")) batch = atoi(argv[++i]);
        else if (v && !strcmp(a, "--threads")) threads = atoi(argv[++i]);
        else if (v && !strcmp(a, "--iters")) iters = atoi(argv[++i]);
        else if (v && !strcmp(a, "--warmup")) warmup = atoi(argv[++i]);
        else if (v && !strcmp(a, "--python")) python = argv[++i];
        else if (v && !strcmp(a, "--script")) script = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--arch resnet8|resnet20] [--batch N] [--threads T] [--iters N] [--warmup N] "
                            "[--torch] [--python PATH] [--script PATH]\n", argv[0]);
            return 2;
        }
    }
    int depth = strncmp(arch, "resnet", 6) == 0 ? atoi(arch + 6) : 0;
    if (depth < 8 || (depth - 2) % 6 || batch < 1 || threads < 1 || iters < 1 || warmup < 0) {
        fprintf(stderr, "bench_train: bad --arch/--batch/--threads/--iters\n");
        return 2;
    }
    gopt_set_threads(threads);
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    gopt_resnet_config rc = gopt_resnet_config_default();
    rc.depth = depth;
    rc.max_batch = batch;
    gopt_net *net;
    gopt_status s = gopt_resnet_cifar(&rc, &net);
    if (s) die("gopt_resnet_cifar", s);
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
    printf("bench_train %s batch=%d threads=%d iters=%d params=%lld OPENBLAS_CORETYPE=%s\n", arch, batch, threads,
           iters, (long long)np, coretype ? coretype : "(unset)");
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
    if (run_torch) {
        char args[256];
        snprintf(args, sizeof args, "--arch %s --batch %d --threads %d --iters %d --warmup %d", arch, batch, threads,
                 iters, warmup);
        FILE *f = bench_torch_open(python, script ? script : "torch_train.py", args);
        char line[512];
        double timg = 0.0;
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
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
    free(x);
    free(dl);
    free(y);
    free(times);
    return 0;
}
