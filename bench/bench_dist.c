#define _POSIX_C_SOURCE 200809L
/* bench_dist: data-parallel costs on MPI (issue 14), on this machine's 2 cores.
 *
 *   mpirun --allow-run-as-root -np 2 build/bench/bench_dist [--quick] [--repeat N]
 *       --mode allreduce (the default): the gradient average of gopt_dist_allreduce_grads
 *       (one in-place all-reduce + 1/P scale over a gopt_params arena, gradopt/dist.h) against a
 *       plain MPI_Allreduce(MPI_IN_PLACE, MPI_SUM) of the same floats followed by the scale
 *       by 1/P, on arenas of 0.1, 1, 10 and 100 MB (10^6 bytes) and on the ResNet-20
 *       gradient (1.09 MB), alternated A/B in one run; plus the latency of a 1-float
 *       MPI_Allreduce (the alpha of a ring model). Prints per size the medians of --repeat
 *       samples of the time, the algorithm bandwidth (bytes / time), the bus bandwidth
 *       (2 (P-1)/P bytes / time, what each rank moves in a ring) and ours/plain; and per size
 *       one machine-readable line (bench_row), algbw in GB/s, the plain MPI_Allreduce as the
 *       floor, the peer left to scripts/bench.sh (bench/torch_dist.py, gloo):
 *         ROW dist.allreduce.<0.1MB|1MB|10MB|100MB|resnet20> GB/s ours plain -
 *   mpirun --allow-run-as-root -np 2 build/bench/bench_dist --mode ranks [--batch 128]
 *       ResNet-20 (width 1) training on synthetic images, global batch 128 split over the
 *       ranks (64 each), 1 thread per rank: zero_grad, forward, cross-entropy, backward,
 *       gopt_dist_reduce_grads, gopt_dist_step (SGD momentum 0.9). Per rank, the medians
 *       of the compute (forward + backward + step), of the wait for the slowest rank (a
 *       barrier before the reduction: load imbalance, not communication) and of the
 *       reduction itself; img/s of the whole step. --zero 1 runs ZeRO stage 1 instead.
 *   build/bench/bench_dist --mode threads [--batch 128] [--threads 2]
 *       The same training in one process without MPI: batch 128 on 2 threads.
 *   bench/bench_dist.sh alternates the two training modes and prints the ratio.
 *
 * Common options: --quick (fewer samples and steps), --repeat N (samples per size in
 * allreduce mode, default 9, quick 3), --steps N / --warmup N (training, default 12 / 2).
 * Every figure is a median: other processes share the cores, so the first lines give the
 * CPU (lscpu's model name), OPENBLAS_CORETYPE and the load average before and after.
 * The training modes end with one line "result mode=... img_s=..." for the driver. */
#include <math.h>
#include <mpi.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gradopt.h>
#include <gradopt/dist.h>

#include "bench_util.h"
#include "cli.h"

static int g_rank = 0;

static void die(const char *what, gopt_status s) {
    fprintf(stderr, "bench_dist (rank %d): %s: %s (%s)\n", g_rank, what, gopt_status_str(s), gopt_last_error());
    exit(1);
}

static void die_mpi(const char *what, int rc) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fprintf(stderr, "bench_dist (rank %d): %s failed: %s\n", g_rank, what, msg);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

#define MPI_CHECK(call)                       \
    do {                                      \
        int rc_ = (call);                     \
        if (rc_ != MPI_SUCCESS) die_mpi(#call, rc_); \
    } while (0)

/* lscpu's "Model name" (the same string as /proc/cpuinfo's "model name" on x86). */
static void cpu_name(char *buf, size_t n) {
    snprintf(buf, n, "unknown CPU");
    FILE *f = popen("lscpu 2>/dev/null", "r");
    const char *key = "Model name:";
    if (!f) return;
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (!found && !strncmp(line, key, strlen(key))) {
            char *c = line + strlen(key);
            while (*c == ' ' || *c == '\t') c++;
            c[strcspn(c, "\n")] = '\0';
            snprintf(buf, n, "%s", c);
            found = 1;
        }
    pclose(f);
}

static void loadavg(char *buf, size_t n) {
    snprintf(buf, n, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return;
    double a, b, c;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(buf, n, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

static void print_header(const char *mode, int world) {
    char cpu[512], load[64];
    cpu_name(cpu, sizeof cpu);
    loadavg(load, sizeof load);
    const char *ct = getenv("OPENBLAS_CORETYPE"), *wait = getenv("OMP_WAIT_POLICY");
    printf("bench_dist mode=%s ranks=%d threads/rank=%d cpu=\"%s\" (lscpu model name) OPENBLAS_CORETYPE=%s "
           "OMP_WAIT_POLICY=%s\n", mode, world, gopt_get_threads(), cpu, ct ? ct : "(unset)", wait ? wait : "(unset)");
    printf("load average before: %s (2 cores, shared: figures are medians)\n", load);
}

static void print_footer(void) {
    char load[64];
    loadavg(load, sizeof load);
    printf("load average after: %s\n", load);
}

/* ---- allreduce ------------------------------------------------------------------------ */

/* The largest elapsed time over the ranks of a span every rank timed. */
static double max_over_ranks(double t) {
    double m = t;
    MPI_CHECK(MPI_Allreduce(&t, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    return m;
}

static void plain_allreduce(float *buf, int64_t n, int world) {
    /* MPI counts are int: split the buffer (100 MB is 25e6 floats, under INT_MAX anyway). */
    for (int64_t off = 0; off < n; off += (int64_t)1 << 30) {
        int64_t c = n - off < ((int64_t)1 << 30) ? n - off : ((int64_t)1 << 30);
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
    const float inv = 1.0f / (float)world;
    for (int64_t i = 0; i < n; i++) buf[i] *= inv;
}

/* buf[i] = rank + 1 on every rank: the average is (P + 1) / 2 everywhere. Checked after the
 * first call of each variant, so neither is timed doing nothing. */
static void fill_rank(float *buf, int64_t n, int rank) {
    for (int64_t i = 0; i < n; i++) buf[i] = (float)(rank + 1);
}

static void check_mean(const char *who, const float *buf, int64_t n, int world) {
    const float want = 0.5f * (float)(world + 1);
    const int64_t probe[3] = {0, n / 2, n - 1};
    for (int k = 0; k < 3; k++)
        if (buf[probe[k]] != want) {
            fprintf(stderr, "bench_dist (rank %d): %s gave %g at %lld, want %g\n", g_rank, who,
                    (double)buf[probe[k]], (long long)probe[k], (double)want);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
}

static int run_allreduce(gopt_dist *d, int repeat, int quick, int resnet_numel) {
    const int world = gopt_dist_size(d), rank = gopt_dist_rank(d);
    /* bytes; the last one is the ResNet-20 gradient arena */
    double sizes[5] = {0.1e6, 1e6, 10e6, 100e6, 4.0 * resnet_numel};
    const char *labels[5] = {"0.1 MB", "1 MB", "10 MB", "100 MB", "resnet20"};
    const char *rows[5] = {"dist.allreduce.0.1MB", "dist.allreduce.1MB", "dist.allreduce.10MB",
                           "dist.allreduce.100MB", "dist.allreduce.resnet20"};
    const double target = quick ? 40e6 : 200e6; /* bytes reduced per timed sample */
    double *t_ours = malloc(sizeof(double) * (size_t)repeat), *t_plain = malloc(sizeof(double) * (size_t)repeat);
    if (!t_ours || !t_plain) return 1;
    if (rank == 0) {
        print_header("allreduce", world);
        printf("ours = gopt_dist_allreduce_grads on a gopt_params arena (in-place MPI_Allreduce, then 1/P);\n"
               "plain = MPI_Allreduce(MPI_IN_PLACE, MPI_SUM) of the same floats + scale by 1/P.\n"
               "Each sample: barrier, k calls, the slowest rank's time / k; %d samples, A/B alternated, medians.\n"
               "algbw = bytes/time, busbw = 2(P-1)/P * bytes/time (P=%d); MB = 1e6 bytes, GB/s = 1e9 bytes/s.\n",
               repeat, world);
        printf("%-9s %10s %5s | %10s %8s %8s | %10s %8s %8s | %10s\n", "size", "bytes", "k", "ours us", "algbw",
               "busbw", "plain us", "algbw", "busbw", "ours/plain");
    }
    const double bus = 2.0 * (world - 1) / world;
    for (int si = 0; si < 5; si++) {
        const int64_t n = (int64_t)(sizes[si] / 4.0);
        const double bytes = 4.0 * (double)n;
        int k = (int)ceil(target / bytes);
        if (k > 2000) k = 2000;
        gopt_params *p;
        gopt_status s = gopt_params_create(&p);
        if (s) die("gopt_params_create", s);
        int64_t shape[1] = {n};
        if ((s = gopt_params_add(p, "arena", 1, shape, GOPT_TAG_WEIGHT, NULL))) die("gopt_params_add", s);
        if ((s = gopt_params_finalize(p))) die("gopt_params_finalize", s);
        float *grads = gopt_params_grads(p);
        float *plain = malloc(sizeof(float) * (size_t)n);
        if (!plain) return 1;
        /* warm-up call of each (first-touch, MPI's shared-memory segments), checked */
        fill_rank(grads, n, rank);
        fill_rank(plain, n, rank);
        if ((s = gopt_dist_allreduce_grads(d, p))) die("gopt_dist_allreduce_grads", s);
        plain_allreduce(plain, n, world);
        check_mean("gopt_dist_allreduce_grads", grads, n, world);
        check_mean("MPI_Allreduce", plain, n, world);
        for (int r = 0; r < repeat; r++) {
            for (int pass = 0; pass < 2; pass++) {
                const int ours = (pass == 0) == (r % 2 == 0); /* ours first on even samples */
                MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
                double t0 = bench_now();
                for (int j = 0; j < k; j++) {
                    if (ours) {
                        if ((s = gopt_dist_allreduce_grads(d, p))) die("gopt_dist_allreduce_grads", s);
                    } else {
                        plain_allreduce(plain, n, world);
                    }
                }
                double t = max_over_ranks((bench_now() - t0) / k);
                if (ours) t_ours[r] = t;
                else t_plain[r] = t;
            }
        }
        double mo = bench_median(t_ours, repeat), mp = bench_median(t_plain, repeat);
        if (rank == 0)
            printf("%-9s %10.0f %5d | %10.1f %8.2f %8.2f | %10.1f %8.2f %8.2f | %9.2fx\n", labels[si], bytes, k,
                   1e6 * mo, bytes / mo * 1e-9, bus * bytes / mo * 1e-9, 1e6 * mp, bytes / mp * 1e-9,
                   bus * bytes / mp * 1e-9, mp / mo);
        if (rank == 0) bench_row(rows[si], "GB/s", bytes / mo * 1e-9, bytes / mp * 1e-9, NAN);
        free(plain);
        gopt_params_destroy(p);
    }
    /* alpha: the time of a 1-float MPI_Allreduce is 2(P-1) alpha in the ring model */
    {
        const int k = quick ? 2000 : 20000;
        float one = 1.0f;
        for (int r = 0; r < repeat; r++) {
            MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
            double t0 = bench_now();
            for (int j = 0; j < k; j++) MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &one, 1, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
            t_plain[r] = max_over_ranks((bench_now() - t0) / k);
        }
        double lat = bench_median(t_plain, repeat);
        if (rank == 0)
            printf("latency: 1-float MPI_Allreduce %.2f us (median of %d x %d calls) -> alpha = t / (2(P-1)) = %.2f us\n",
                   1e6 * lat, repeat, k, 1e6 * lat / (2.0 * (world - 1)));
    }
    /* ours/plain > 1 means ours is faster (plain time / our time) */
    if (rank == 0) {
        printf("ours/plain = plain time / our time (> 1: ours faster)\n");
        print_footer();
    }
    free(t_ours);
    free(t_plain);
    return 0;
}

/* ---- training --------------------------------------------------------------------------- */

typedef struct train_opts {
    int global_batch, steps, warmup, threads, zero;
} train_opts;

/* ResNet-20 on synthetic images, global_batch split over the ranks of d (d NULL: one
 * process). Prints on rank 0; returns 0 on success. */
static int run_train(gopt_dist *d, const train_opts *o, const char *mode) {
    const int world = d ? gopt_dist_size(d) : 1, rank = d ? gopt_dist_rank(d) : 0;
    if (o->global_batch % world) {
        if (rank == 0) fprintf(stderr, "bench_dist: --batch %d is not divisible by %d ranks\n", o->global_batch, world);
        return 2;
    }
    const int batch = o->global_batch / world;
    gopt_resnet_config rc = gopt_resnet_config_default();
    rc.depth = 20;
    rc.width = 1.0f;
    rc.max_batch = batch;
    rc.seed = 7;
    gopt_net *net;
    gopt_status s = gopt_resnet_cifar(&rc, &net);
    if (s) die("gopt_resnet_cifar", s);
    gopt_params *p = gopt_net_params(net);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.01f;
    oc.momentum = 0.9f;
    gopt_optim *opt;
    if (d) {
        if ((s = gopt_dist_verify(d, p, NULL, NULL, 0))) die("gopt_dist_verify", s);
        if ((s = gopt_dist_broadcast_net(d, net))) die("gopt_dist_broadcast_net", s);
        if ((s = gopt_dist_optim_create(d, &oc, p, &opt))) die("gopt_dist_optim_create", s);
    } else if ((s = gopt_optim_create(&oc, p, &opt))) {
        die("gopt_optim_create", s);
    }
    /* enough images for every step without wrapping (each rank draws its shard) */
    const int total = o->warmup + o->steps;
    gopt_dataset *ds;
    if ((s = gopt_dataset_synthetic((int64_t)o->global_batch * total, 10, 3, &ds))) die("gopt_dataset_synthetic", s);
    gopt_loader_config lc = gopt_loader_config_default();
    lc.batch_size = batch;
    lc.drop_last = 1;
    lc.seed = 5;
    lc.num_replicas = world;
    lc.rank = rank;
    gopt_loader *ld;
    if ((s = gopt_loader_create(&lc, ds, &ld))) die("gopt_loader_create", s);
    float *dl = malloc(sizeof(float) * (size_t)batch * 10);
    double *t_compute = malloc(sizeof(double) * (size_t)o->steps), *t_wait = malloc(sizeof(double) * (size_t)o->steps);
    double *t_comm = malloc(sizeof(double) * (size_t)o->steps), *t_total = malloc(sizeof(double) * (size_t)o->steps);
    double *t_data = malloc(sizeof(double) * (size_t)o->steps);
    if (!dl || !t_compute || !t_wait || !t_comm || !t_total || !t_data) return 1;
    int64_t ls[2] = {batch, 10};
    gopt_tensor tdl, logits;
    gopt_tensor_view(dl, 2, ls, &tdl);
    float loss = 0.0f;
    for (int it = 0; it < total; it++) {
        double t0 = bench_now();
        gopt_batch b;
        if ((s = gopt_loader_next(ld, &b))) die("gopt_loader_next", s);
        if (b.n != batch) {
            fprintf(stderr, "bench_dist: short batch %d at step %d\n", b.n, it);
            return 1;
        }
        int64_t xs[4] = {batch, 3, 32, 32};
        gopt_tensor tx;
        gopt_tensor_view((float *)b.images, 4, xs, &tx);
        double t1 = bench_now();
        gopt_optim_zero_grad(opt);
        if ((s = gopt_net_forward(net, &tx, &logits))) die("forward", s);
        if ((s = gopt_loss_cross_entropy(&logits, b.labels, 0.0f, &loss, &tdl))) die("loss", s);
        if ((s = gopt_net_backward(net, &tdl))) die("backward", s);
        double t2 = bench_now(), t3 = t2, t4 = t2;
        if (d) {
            /* the barrier separates waiting for a slower rank from moving bytes */
            if ((s = gopt_dist_barrier(d))) die("gopt_dist_barrier", s);
            t3 = bench_now();
            if ((s = gopt_dist_reduce_grads(d, opt))) die("gopt_dist_reduce_grads", s);
            t4 = bench_now();
            if ((s = gopt_dist_step(d, opt))) die("gopt_dist_step", s);
        } else if ((s = gopt_optim_step(opt))) {
            die("gopt_optim_step", s);
        }
        double t5 = bench_now();
        if (it >= o->warmup) {
            int i = it - o->warmup;
            t_data[i] = t1 - t0;
            t_compute[i] = (t2 - t1) + (t5 - t4);
            t_wait[i] = t3 - t2;
            t_comm[i] = t4 - t3;
            t_total[i] = t5 - t1; /* the training step, without the loader */
        }
    }
    /* per-rank medians gathered to every rank through gopt_dist_sum (slot = rank) */
    enum { NF = 6 };
    double mine[NF] = {bench_median(t_compute, o->steps), bench_median(t_wait, o->steps),
                       bench_median(t_comm, o->steps), bench_median(t_total, o->steps),
                       bench_median(t_data, o->steps), (double)loss};
    double *all = calloc((size_t)world * NF, sizeof(double));
    if (!all) return 1;
    memcpy(all + (size_t)rank * NF, mine, sizeof mine);
    if (d && (s = gopt_dist_sum(d, all, world * NF))) die("gopt_dist_sum", s);
    if (rank == 0) {
        print_header(mode, world);
        printf("ResNet-20 (width 1, %lld params, gradient %.3f MB), global batch %d = %d x %d, SGD momentum, "
               "synthetic images, %d warm-up + %d timed steps%s\n",
               (long long)gopt_params_numel(p), 4e-6 * (double)gopt_params_numel(p), o->global_batch, world, batch,
               o->warmup, o->steps, d && o->zero ? ", ZeRO-1" : "");
        if (d)
            printf("per rank, medians in ms/step: compute = forward+loss+backward+step; wait = barrier before the "
                   "reduction (imbalance); comm = gopt_dist_reduce_grads%s\n",
                   o->zero ? " (ZeRO-1: the parameter all-gather of gopt_dist_step is counted in compute)" : "");
        else
            printf("one process, no MPI, medians in ms/step: compute = forward+loss+backward+step\n");
        double worst = 0.0;
        for (int r = 0; r < world; r++) {
            const double *v = all + (size_t)r * NF;
            printf("  rank %d: compute %8.2f  wait %7.2f  comm %7.2f  step %8.2f  (loader %.2f, outside the step)  "
                   "loss %.4f\n", r, 1e3 * v[0], 1e3 * v[1], 1e3 * v[2], 1e3 * v[3], 1e3 * v[4], v[5]);
            if (v[3] > worst) worst = v[3];
        }
        printf("result mode=%s ranks=%d threads=%d batch_per_rank=%d step_ms=%.2f compute_ms=%.2f comm_ms=%.2f "
               "img_s=%.1f\n", mode, world, gopt_get_threads(), batch, 1e3 * worst, 1e3 * all[0], 1e3 * all[2],
               o->global_batch / worst);
        print_footer();
    }
    free(all);
    free(dl);
    free(t_compute);
    free(t_wait);
    free(t_comm);
    free(t_total);
    free(t_data);
    gopt_loader_destroy(ld);
    gopt_dataset_destroy(ds);
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
    return 0;
}

typedef struct opts {
    const char *mode;
    int quick, repeat;
    train_opts t;
} opts;

#define OO(f) offsetof(opts, f)
static const cli_opt opt_table[] = {
    CLI_O("--mode", "M", CLI_STR, OO(mode), 0, 0, NULL, "allreduce | ranks | threads"),
    CLI_O("--quick", NULL, CLI_FLAG, OO(quick), 0, 0, NULL, "fewer samples and steps"),
    CLI_O("--repeat", "N", CLI_INT, OO(repeat), 0, 1000000, "9, quick 3", "samples per size in allreduce mode"),
    CLI_O("--batch", "N", CLI_INT, OO(t.global_batch), 1, 1000000, NULL, "the global batch (training modes)"),
    CLI_O("--steps", "N", CLI_INT, OO(t.steps), 0, 1000000, "12, quick 4", "timed training steps"),
    CLI_O("--warmup", "N", CLI_INT, OO(t.warmup), 0, 1000000, "2, quick 1", "untimed training steps first"),
    CLI_O("--threads", "T", CLI_INT, OO(t.threads), 0, 1024, "2 in threads mode, else 1", "threads per process"),
    CLI_O("--zero", "0|1", CLI_INT, OO(t.zero), 0, 1, NULL, "ranks mode: ZeRO stage 1"),
};
#undef OO
#define USAGE "bench_dist [options] (under mpirun --allow-run-as-root -np 2 but for --mode threads)"

int main(int argc, char **argv) {
    opts oo = {.mode = "allreduce", .t = {.global_batch = 128, .steps = 0, .warmup = -1, .threads = 0, .zero = 0}};
    cli_group group = {NULL, opt_table, CLI_COUNT(opt_table), &oo, NULL, NULL};
    cli_spec spec = {.usage = USAGE, .groups = &group, .ngroups = 1};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed < 0 || parsed == CLI_HELP) return parsed < 0 ? 2 : 0;
    const char *mode = oo.mode;
    int quick = oo.quick, repeat = oo.repeat;
    train_opts o = oo.t;
    const int is_threads = !strcmp(mode, "threads"), is_ranks = !strcmp(mode, "ranks");
    if (!is_threads && !is_ranks && strcmp(mode, "allreduce")) {
        fprintf(stderr, "bench_dist: unknown --mode %s (allreduce, ranks, threads)\n", mode);
        return 2;
    }
    if (repeat == 0) repeat = quick ? 3 : 9;
    if (o.steps == 0) o.steps = quick ? 4 : 12;
    if (o.warmup < 0) o.warmup = quick ? 1 : 2;
    if (o.threads == 0) o.threads = is_threads ? 2 : 1;
    if (repeat < 1 || o.steps < 1 || o.warmup < 0 || o.threads < 1 || o.global_batch < 1 || (o.zero != 0 && o.zero != 1)) {
        fprintf(stderr, "bench_dist: bad --repeat/--steps/--warmup/--threads/--batch/--zero\n");
        return 2;
    }
    if (parsed == CLI_PRINT_CONFIG) {
        printf("--mode %s\n--quick %d\n--repeat %d\n--batch %d\n--steps %d\n--warmup %d\n--threads %d\n--zero %d\n", mode,
               quick, repeat, o.global_batch, o.steps, o.warmup, o.threads, o.zero);
        return 0;
    }
    gopt_set_threads(o.threads);
    if (is_threads) /* one process, no MPI: the baseline the ranks are compared with */
        return run_train(NULL, &o, mode);

    if (!gopt_dist_has_mpi()) {
        fprintf(stderr, "bench_dist: the library was built without MPI (GOPT_WITH_MPI); only --mode threads runs\n");
        return 2;
    }
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    /* our MPI calls report failures instead of aborting inside MPI */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    gopt_dist_config dc = gopt_dist_config_default();
    dc.zero = is_ranks ? o.zero : 0;
    gopt_dist *d;
    gopt_status s = gopt_dist_create(&dc, &d);
    if (s) die("gopt_dist_create", s);
    int world = gopt_dist_size(d);
    int rc = 0;
    if (world < 2 && g_rank == 0)
        fprintf(stderr, "bench_dist: warning: a world of %d (run under mpirun -np 2)\n", world);
    if (is_ranks) {
        rc = run_train(d, &o, mode);
    } else {
        /* the ResNet-20 arena size, for its row in the table */
        gopt_resnet_config rcfg = gopt_resnet_config_default();
        rcfg.depth = 20;
        rcfg.max_batch = 1;
        gopt_net *net;
        if ((s = gopt_resnet_cifar(&rcfg, &net))) die("gopt_resnet_cifar", s);
        int numel = (int)gopt_params_numel(gopt_net_params(net));
        gopt_net_destroy(net);
        rc = run_allreduce(d, repeat, quick, numel);
    }
    gopt_dist_destroy(d);
    MPI_Finalize();
    return rc;
}
