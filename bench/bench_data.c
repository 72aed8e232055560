#define _POSIX_C_SOURCE 200809L
/* bench_data: images/s of the CIFAR-10 training pipeline (gopt_loader: shuffle, random crop
 * with 4 pixels of zero padding, horizontal flip, ToTensor + Normalize into float NCHW
 * batches), set up as the examples' trainer sets it up (examples/common/task_cifar.c: batch
 * 128, augment on, drop_last, batches built in gopt_loader_next by the calling thread, no
 * prefetch thread), over an in-memory dataset of random bytes (the pipeline's cost does not
 * depend on the pixels). Compared with
 *   the floor: a plain memcpy, one thread, of the bytes a batch holds (n x 3 x 32 x 32 floats)
 *              from a 64 MB ring of source batches (not cache-resident) into one batch buffer;
 *   the need:  the images/s a ResNet-20 training step (forward + cross-entropy + backward +
 *              SGD momentum 0.9, batch 128, --threads threads, random inputs) consumes,
 *              measured in the same process, so the report can say how many times faster
 *              than training needs the pipeline is;
 *   the peer:  (--torch) the same shuffle + crop + flip + normalise in PyTorch tensors,
 *              vectorised over the batch (bench/torch_data.py, no torchvision), on a dataset
 *              of the same size, on one thread as in a torch DataLoader worker.
 *
 *   bench_data [--images N] [--batch B] [--batches K] [--reps R] [--threads T]
 *              [--train-iters I] [--torch] [--python PATH] [--quick]
 *
 * Each rep times K consecutive batches (the epoch wraps when it ends) and the loader's and
 * the floor's reps alternate; figures are medians over the reps. Machine-readable rows
 * (bench_row):
 *   ROW data.loader img/s ours memcpy-floor torch
 *   ROW data.loader_vs_resnet20_step img/s ours resnet20-step-img/s -
 * (in the second, the "floor" column is what training consumes: ours/floor is how many
 * times faster than a ResNet-20 step the pipeline delivers, on one thread). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gradopt.h>

#include "bench_util.h"
#include "cli.h"

static void die(const char *what, gopt_status s) {
    fprintf(stderr, "bench_data: %s: %s (%s)\n", what, gopt_status_str(s), gopt_last_error());
    exit(1);
}

/* images/s of a ResNet-20 training step at this batch, median of iters after warmup */
static double resnet20_step_img_s(int batch, int iters, int warmup) {
    gopt_resnet_config rc = gopt_resnet_config_default();
    rc.depth = 20;
    rc.max_batch = batch;
    gopt_net *net;
    gopt_status s = gopt_resnet_cifar(&rc, &net);
    if (s) die("gopt_resnet_cifar", s);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.01f;
    oc.momentum = 0.9f;
    gopt_optim *opt;
    if ((s = gopt_optim_create(&oc, gopt_net_params(net), &opt))) die("gopt_optim_create", s);
    const size_t nx = (size_t)batch * GOPT_IMAGE_BYTES;
    float *x = malloc(sizeof(float) * nx), *dl = malloc(sizeof(float) * (size_t)batch * 10);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch);
    double *t = malloc(sizeof(double) * (size_t)iters);
    if (!x || !dl || !y || !t) die("resnet20 buffers", GOPT_ENOMEM);
    gopt_rng rng;
    gopt_rng_seed(&rng, 1);
    for (size_t i = 0; i < nx; i++) x[i] = gopt_rng_normal(&rng);
    for (int i = 0; i < batch; i++) y[i] = (int32_t)gopt_rng_below(&rng, 10);
    int64_t xs[4] = {batch, 3, 32, 32}, ls[2] = {batch, 10};
    gopt_tensor tx, logits, tdl;
    gopt_tensor_view(x, 4, xs, &tx);
    gopt_tensor_view(dl, 2, ls, &tdl);
    float loss;
    for (int it = 0; it < warmup + iters; it++) {
        double t0 = bench_now();
        gopt_optim_zero_grad(opt);
        if ((s = gopt_net_forward(net, &tx, &logits))) die("forward", s);
        if ((s = gopt_loss_cross_entropy(&logits, y, 0.0f, &loss, &tdl))) die("loss", s);
        if ((s = gopt_net_backward(net, &tdl))) die("backward", s);
        if ((s = gopt_optim_step(opt))) die("step", s);
        if (it >= warmup) t[it - warmup] = bench_now() - t0;
    }
    double med = bench_median(t, iters);
    free(x);
    free(dl);
    free(y);
    free(t);
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
    return batch / med;
}

typedef struct opts {
    int64_t count;
    int batch, batches, reps, threads, train_iters, torch, quick;
    const char *python;
} opts;

#define OO(f) offsetof(opts, f)
static const cli_opt opt_table[] = {
    CLI_O("--images", "N", CLI_I64, OO(count), 1, 1e9, NULL, "images in the random dataset"),
    CLI_O("--batch", "B", CLI_INT, OO(batch), 1, 1000000, NULL, "batch size"),
    CLI_O("--batches", "K", CLI_INT, OO(batches), 1, 1000000000, NULL, "batches per timed pass"),
    CLI_O("--reps", "R", CLI_INT, OO(reps), 1, 1000000, NULL, "repetitions (medians)"),
    CLI_O("--threads", "T", CLI_INT, OO(threads), 1, 1024, NULL, "threads"),
    CLI_O("--train-iters", "I", CLI_INT, OO(train_iters), 1, 1000000, NULL, "training steps timed for the consumer rate"),
    CLI_O("--torch", NULL, CLI_FLAG, OO(torch), 0, 0, NULL, "the same pipeline in PyTorch tensors too (bench/torch_data.py)"),
    CLI_O("--python", "PATH", CLI_STR, OO(python), 0, 0, "the first python3 that imports torch",
          "the python3 for --torch"),
    CLI_O("--quick", NULL, CLI_FLAG, OO(quick), 0, 0, NULL, "at most 3 reps and 3 training steps"),
};
#undef OO
#define USAGE "bench_data [options]"

int main(int argc, char **argv) {
    opts o = {.count = 50000, .batch = 128, .batches = 100, .reps = 7, .threads = 2, .train_iters = 5};
    cli_group group = {NULL, opt_table, CLI_COUNT(opt_table), &o, NULL, NULL};
    cli_spec spec = {.usage = USAGE, .groups = &group, .ngroups = 1};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed < 0 || parsed == CLI_HELP) return parsed < 0 ? 2 : 0;
    int64_t count = o.count;
    int batch = o.batch, batches = o.batches, reps = o.reps, threads = o.threads, train_iters = o.train_iters;
    int torch = o.torch, quick = o.quick;
    const char *python = o.python;
    if (quick) { /* fewer reps and steps; the options given after --quick still win */
        reps = reps > 3 ? 3 : reps;
        train_iters = train_iters > 3 ? 3 : train_iters;
    }
    if (count < batch || batch < 1 || batches < 1 || reps < 1 || threads < 1 || train_iters < 1) {
        fprintf(stderr, "bench_data: need --images >= --batch >= 1 and --batches, --reps, --threads, "
                        "--train-iters >= 1\n");
        return 2;
    }
    if (parsed == CLI_PRINT_CONFIG) {
        cli_print_values(stdout, &spec);
        return 0;
    }
    gopt_set_threads(threads);

    /* the dataset: random bytes and labels (gopt_dataset_from_memory copies them) */
    uint8_t *img = malloc((size_t)count * GOPT_IMAGE_BYTES), *lab = malloc((size_t)count);
    if (!img || !lab) die("dataset bytes", GOPT_ENOMEM);
    gopt_rng rng;
    gopt_rng_seed(&rng, 3);
    for (size_t i = 0; i < (size_t)count * GOPT_IMAGE_BYTES; i += 8) {
        uint64_t r = gopt_rng_u64(&rng);
        size_t k = (size_t)count * GOPT_IMAGE_BYTES - i < 8 ? (size_t)count * GOPT_IMAGE_BYTES - i : 8;
        memcpy(img + i, &r, k);
    }
    for (int64_t i = 0; i < count; i++) lab[i] = (uint8_t)(i % 10);
    gopt_dataset *ds;
    gopt_status s = gopt_dataset_from_memory(img, lab, count, 10, &ds);
    if (s) die("gopt_dataset_from_memory", s);
    free(img);
    free(lab);

    gopt_loader_config lc = gopt_loader_config_default();
    lc.batch_size = batch;
    lc.augment = 1; /* crop_padding 4, flip 1: the defaults */
    lc.drop_last = 1;
    lc.seed = 1;
    gopt_loader *ld;
    if ((s = gopt_loader_create(&lc, ds, &ld))) die("gopt_loader_create", s);

    /* the floor: memcpy of a batch's float bytes from a 64 MB ring of source batches */
    const size_t batch_bytes = sizeof(float) * (size_t)batch * GOPT_IMAGE_BYTES;
    size_t ring_n = (size_t)(64e6 / (double)batch_bytes);
    if (ring_n < 2) ring_n = 2;
    float *ring = malloc(batch_bytes * ring_n), *dst = malloc(batch_bytes);
    if (!ring || !dst) die("floor buffers", GOPT_ENOMEM);
    for (size_t i = 0; i < batch_bytes * ring_n / sizeof(float); i++) ring[i] = (float)(i & 1023);
    memset(dst, 0, batch_bytes);

    printf("bench_data: %lld images in memory (random bytes), batch %d, crop (padding 4) + flip + normalise, "
           "one loader thread (no prefetch), %d batches per rep, %d reps (medians), training threads %d\n",
           (long long)count, batch, batches, reps, threads);
    double *t_ours = malloc(sizeof(double) * (size_t)reps), *t_floor = malloc(sizeof(double) * (size_t)reps);
    if (!t_ours || !t_floor) die("timing buffers", GOPT_ENOMEM);
    int64_t epoch = 0;
    volatile float sink = 0.0f;
    size_t slot = 0;
    for (int r = -1; r < reps; r++) { /* rep -1: warm-up (first touch of the batch buffers) */
        double t0 = bench_now();
        int64_t got = 0;
        for (int k = 0; k < batches; k++) {
            gopt_batch b;
            if ((s = gopt_loader_next(ld, &b))) die("gopt_loader_next", s);
            if (b.n == 0) { /* end of the epoch: the next one (its permutation is not timed apart) */
                if ((s = gopt_loader_start_epoch(ld, ++epoch))) die("gopt_loader_start_epoch", s);
                if ((s = gopt_loader_next(ld, &b))) die("gopt_loader_next", s);
            }
            got += b.n;
            sink += b.images[(size_t)(k % b.n) * GOPT_IMAGE_BYTES];
        }
        double t1 = bench_now();
        for (int k = 0; k < batches; k++) {
            memcpy(dst, (const char *)ring + batch_bytes * slot, batch_bytes);
            slot = (slot + 1) % ring_n;
            sink += dst[k % (batch * GOPT_IMAGE_BYTES)];
        }
        double t2 = bench_now();
        if (got != (int64_t)batches * batch) {
            fprintf(stderr, "bench_data: %lld images in %d batches, want %lld\n", (long long)got, batches,
                    (long long)batches * batch);
            return 1;
        }
        if (r >= 0) {
            t_ours[r] = t1 - t0;
            t_floor[r] = t2 - t1;
        }
    }
    (void)sink;
    const double imgs = (double)batches * batch;
    const double ours = imgs / bench_median(t_ours, reps), flo = imgs / bench_median(t_floor, reps);
    printf("loader: %.0f img/s (%.3f ms/batch)   floor (memcpy of %.2f MB per batch): %.0f img/s   "
           "loader/floor = %.3f\n",
           ours, 1e3 * batch / ours, 1e-6 * (double)batch_bytes, flo, ours / flo);
    gopt_loader_destroy(ld);
    gopt_dataset_destroy(ds);
    free(ring);
    free(dst);
    free(t_ours);
    free(t_floor);

    const double need = resnet20_step_img_s(batch, train_iters, 1);
    printf("ResNet-20 training step (batch %d, %d threads, median of %d): %.1f img/s -> the loader is %.1fx "
           "faster than training consumes\n", batch, threads, train_iters, need, ours / need);

    double peer = NAN;
    if (torch) {
        char args[256];
        /* one torch thread, as in a DataLoader worker (torch sets 1 there) and as our loader */
        snprintf(args, sizeof args, "--images %lld --batch %d --batches %d --reps %d --threads 1", (long long)count,
                 batch, batches, reps);
        FILE *f = bench_torch_open(python, "torch_data.py", args);
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            char *q = strstr(line, "img_s=");
            if (!strncmp(line, "TORCH", 5) && q) peer = atof(q + 6);
        }
        int rc = f ? pclose(f) : -1;
        if (isfinite(peer) && peer > 0.0)
            printf("torch (crop + flip + normalise, vectorised tensors): %.0f img/s -> ours/torch = %.2fx\n", peer,
                   ours / peer);
        else
            printf("torch run failed (python3 with torch not found, or bench/torch_data.py failed, status %d)\n", rc);
    }
    bench_row("data.loader", "img/s", ours, flo, peer);
    bench_row("data.loader_vs_resnet20_step", "img/s", ours, need, NAN);
    return 0;
}
