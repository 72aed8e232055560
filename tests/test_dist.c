/* Data-parallel training (gradopt/dist.h). ctest runs this file twice: as a world of one
 * (test_dist) and, when built with MPI, under `mpirun -np 2` (test_dist_mpi2). Every check
 * is made on every rank.
 *
 * Equivalence: P ranks training on B/P samples each (rank r takes samples r, r+P, ... of
 * each global batch, as the sharded loader does) must end, after 20 steps, where one
 * process training on the B samples ends, within 1e-5 relative (the sums run in another
 * order): SGD-momentum and Adam, with and without ZeRO-1 and clipping, a net without
 * BatchNorm and one with SyncBatchNorm. The reference runs in the same process, with the
 * library alone (no dist). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <gradopt.h>
#include <gradopt/dist.h>

#define GLOBAL_BATCH 128
#define STEPS 20
#define FEATURES 3
#define SIDE 6
#define CLASSES 5
#define SAMPLE (FEATURES * SIDE * SIDE)

static gopt_dist *world;

#define OK(call) assert_int_equal((call), GOPT_OK)

typedef struct run_config {
    gopt_algo algo;
    int zero;
    double clip;  /* > 0: clip the global norm to this */
    int batchnorm; /* 1: conv + BatchNorm net, SyncBatchNorm on when distributed */
} run_config;

/* Global batch `step`: deterministic inputs and labels. */
static void make_batch(int step, float *x, int32_t *labels) {
    gopt_rng rng;
    gopt_rng_seed(&rng, 1000u + (uint64_t)step);
    for (int i = 0; i < GLOBAL_BATCH * SAMPLE; i++) x[i] = (float)(gopt_rng_uniform(&rng) * 2.0 - 1.0);
    for (int i = 0; i < GLOBAL_BATCH; i++) labels[i] = (int32_t)gopt_rng_below(&rng, CLASSES);
}

static gopt_net *make_net(int max_batch, int batchnorm, int hidden) {
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = max_batch;
    nc.seed = 7;
    gopt_net *net = NULL;
    if (batchnorm) {
        nc.in_ndim = 3;
        nc.in_shape[0] = FEATURES;
        nc.in_shape[1] = SIDE;
        nc.in_shape[2] = SIDE;
        OK(gopt_net_create(&nc, &net));
        gopt_layer_config c = gopt_layer_conv2d(FEATURES, 8, 3, 1, 1, 0);
        OK(gopt_net_add(net, &c, "conv"));
        c = gopt_layer_batchnorm2d(8, 1);
        OK(gopt_net_add(net, &c, "bn"));
        c = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL);
        OK(gopt_net_add(net, &c, "pool"));
        c = gopt_layer_linear(8, CLASSES, 1);
        OK(gopt_net_add(net, &c, "fc"));
    } else {
        nc.in_ndim = 1;
        nc.in_shape[0] = SAMPLE;
        OK(gopt_net_create(&nc, &net));
        gopt_layer_config c = gopt_layer_linear(SAMPLE, hidden, 1);
        OK(gopt_net_add(net, &c, "fc1"));
        c = gopt_layer_config_default(GOPT_LAYER_RELU);
        OK(gopt_net_add(net, &c, "relu"));
        c = gopt_layer_linear(hidden, CLASSES, 1);
        OK(gopt_net_add(net, &c, "fc2"));
    }
    OK(gopt_net_build(net));
    return net;
}

static gopt_optim_config optim_config(gopt_algo algo) {
    gopt_optim_config oc = gopt_optim_config_default(algo);
    if (algo == GOPT_ALGO_SGD) {
        oc.lr = 0.1f;
        oc.momentum = 0.9f;
        oc.weight_decay = 5e-4f;
    } else {
        oc.lr = 1e-2f;
    }
    return oc;
}

/* forward + cross entropy + backward of n samples; returns the mean loss. */
static double train_batch(gopt_net *net, const float *x, const int32_t *labels, int n, int ndim) {
    int64_t shape[4] = {n, FEATURES, SIDE, SIDE};
    if (ndim == 1) shape[1] = SAMPLE;
    gopt_tensor xt, logits, dlogits;
    OK(gopt_tensor_view((float *)x, ndim + 1, shape, &xt));
    OK(gopt_net_forward(net, &xt, &logits));
    float *d = malloc((size_t)n * CLASSES * sizeof *d);
    assert_non_null(d);
    OK(gopt_tensor_view(d, 2, logits.shape, &dlogits));
    float loss;
    OK(gopt_loss_cross_entropy(&logits, labels, 0.0f, &loss, &dlogits));
    OK(gopt_net_backward(net, &dlogits));
    free(d);
    return loss;
}

/* The reference: one process, the whole global batch, no dist. */
static float *reference_run(const run_config *rc, int64_t *numel) {
    gopt_net *net = make_net(GLOBAL_BATCH, rc->batchnorm, 32);
    gopt_params *p = gopt_net_params(net);
    gopt_optim_config oc = optim_config(rc->algo);
    gopt_optim *opt;
    OK(gopt_optim_create(&oc, p, &opt));
    float *x = malloc((size_t)GLOBAL_BATCH * SAMPLE * sizeof *x);
    int32_t labels[GLOBAL_BATCH];
    for (int s = 0; s < STEPS; s++) {
        make_batch(s, x, labels);
        gopt_optim_zero_grad(opt);
        train_batch(net, x, labels, GLOBAL_BATCH, rc->batchnorm ? 3 : 1);
        if (rc->clip > 0) OK(gopt_clip_grad_norm(p, rc->clip, 2.0, 0, NULL));
        OK(gopt_optim_step(opt));
    }
    *numel = gopt_params_numel(p);
    float *out = malloc((size_t)*numel * sizeof *out);
    memcpy(out, gopt_params_values(p), (size_t)*numel * sizeof *out);
    free(x);
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
    return out;
}

/* This rank's samples of a global batch: r, r+P, ... */
static int shard(const float *x, const int32_t *labels, float *xs, int32_t *ls) {
    int P = gopt_dist_size(world), r = gopt_dist_rank(world), n = 0;
    for (int i = r; i < GLOBAL_BATCH; i += P, n++) {
        memcpy(xs + (size_t)n * SAMPLE, x + (size_t)i * SAMPLE, SAMPLE * sizeof *x);
        ls[n] = labels[i];
    }
    return n;
}

/* A distributed trainer of the same run. */
typedef struct dist_run {
    gopt_dist *d;
    gopt_net *net;
    gopt_optim *opt;
    gopt_monitor *mon;
    run_config rc;
    float *x, *xs;
    int32_t labels[GLOBAL_BATCH], ls[GLOBAL_BATCH];
    int clipped; /* steps whose global norm exceeded rc.clip */
} dist_run;

static void dist_open(dist_run *t, const run_config *rc) {
    memset(t, 0, sizeof *t);
    t->rc = *rc;
    gopt_dist_config dc = gopt_dist_config_default();
    dc.zero = rc->zero;
    OK(gopt_dist_create(&dc, &t->d));
    int P = gopt_dist_size(t->d);
    t->net = make_net(GLOBAL_BATCH / P, rc->batchnorm, 32);
    gopt_optim_config oc = optim_config(rc->algo);
    OK(gopt_dist_optim_create(t->d, &oc, gopt_net_params(t->net), &t->opt));
    OK(gopt_dist_verify(t->d, gopt_net_params(t->net), t->opt, "opts", 4));
    OK(gopt_dist_broadcast_net(t->d, t->net));
    if (rc->batchnorm) OK(gopt_dist_sync_batchnorm(t->d, t->net, 1));
    gopt_monitor_config mc = gopt_monitor_config_default();
    OK(gopt_monitor_create(&mc, gopt_net_params(t->net), t->opt, &t->mon));
    OK(gopt_dist_attach_monitor(t->d, t->mon, t->opt));
    t->x = malloc((size_t)GLOBAL_BATCH * SAMPLE * sizeof *t->x);
    t->xs = malloc((size_t)GLOBAL_BATCH * SAMPLE * sizeof *t->xs);
}

static void dist_close(dist_run *t) {
    gopt_monitor_destroy(t->mon);
    gopt_optim_destroy(t->opt);
    gopt_net_destroy(t->net);
    gopt_dist_destroy(t->d);
    free(t->x);
    free(t->xs);
}

/* One step; poison: 1 puts a NaN into this rank's gradient, 2 makes its loss NaN, 3 shows
 * the input check a NaN pixel the net never saw (as if swallowed: gradients and loss stay
 * finite). Every rank checks its input. Returns the monitor's apply. */
static int dist_step(dist_run *t, int s, int poison) {
    make_batch(s, t->x, t->labels);
    int n = shard(t->x, t->labels, t->xs, t->ls);
    gopt_optim_zero_grad(t->opt);
    double loss = train_batch(t->net, t->xs, t->ls, n, t->rc.batchnorm ? 3 : 1);
    if (poison == 1) gopt_params_grads(gopt_net_params(t->net))[3] = NAN;
    if (poison == 2) loss = NAN;
    if (poison == 3) t->xs[0] = NAN;
    OK(gopt_monitor_check_input(t->mon, t->xs, (size_t)n * SAMPLE));
    OK(gopt_dist_reduce_grads(t->d, t->opt));
    double v[1] = {loss};
    OK(gopt_dist_sum(t->d, v, 1));
    gopt_monitor_report rep;
    OK(gopt_monitor_before_step(t->mon, v[0] / gopt_dist_size(t->d), &rep));
    if (rep.apply) {
        if (t->rc.clip > 0) {
            float total;
            OK(gopt_dist_clip_grad_norm(t->d, t->opt, t->rc.clip, 2.0, 0, &total));
            t->clipped += total > t->rc.clip;
        }
        OK(gopt_dist_step(t->d, t->opt));
        OK(gopt_monitor_after_step(t->mon));
    }
    return rep.apply;
}

static double rel_diff(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = (double)a[i] - (double)b[i];
        num += e * e;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

static void check_equivalence(const run_config *rc) {
    int64_t numel;
    float *ref = reference_run(rc, &numel);
    dist_run t;
    dist_open(&t, rc);
    for (int s = 0; s < STEPS; s++) assert_int_equal(dist_step(&t, s, 0), 1);
    gopt_params *p = gopt_net_params(t.net);
    assert_int_equal(gopt_params_numel(p), numel);
    double rel = rel_diff(gopt_params_values(p), ref, numel);
    if (rel > 1e-5 || gopt_dist_rank(t.d) == 0)
        printf("rank %d/%d %s zero=%d clip=%g bn=%d: relative difference %.3g\n", gopt_dist_rank(t.d),
               gopt_dist_size(t.d), gopt_algo_name(rc->algo), rc->zero, rc->clip, rc->batchnorm, rel);
    assert_true(rel <= 1e-5);
    if (rc->clip > 0) assert_true(t.clipped >= STEPS / 2); /* the clip did act */
    /* every rank holds the same parameters, bit for bit */
    double h[2] = {0, 0};
    for (int64_t i = 0; i < numel; i++) h[0] += gopt_params_values(p)[i] * (double)(i % 7 + 1);
    h[1] = h[0] * gopt_dist_size(t.d);
    OK(gopt_dist_sum(t.d, h, 1));
    assert_true(h[0] == h[1]);
    dist_close(&t);
    free(ref);
}

static void test_equivalence_sgd(void **state) {
    (void)state;
    for (int zero = 0; zero <= 1; zero++)
        for (int clip = 0; clip <= 1; clip++) {
            run_config rc = {GOPT_ALGO_SGD, zero, clip ? 0.05 : 0, 0};
            check_equivalence(&rc);
        }
}

static void test_equivalence_adam(void **state) {
    (void)state;
    for (int zero = 0; zero <= 1; zero++)
        for (int clip = 0; clip <= 1; clip++) {
            run_config rc = {GOPT_ALGO_ADAM, zero, clip ? 0.05 : 0, 0};
            check_equivalence(&rc);
        }
}

static void test_equivalence_sync_batchnorm(void **state) {
    (void)state;
    for (int zero = 0; zero <= 1; zero++) {
        run_config rc = {GOPT_ALGO_SGD, zero, 0, 1};
        check_equivalence(&rc);
        run_config ra = {GOPT_ALGO_ADAM, zero, 0.05, 1};
        check_equivalence(&ra);
    }
}

/* A NaN gradient, loss or input on the last rank only: every rank skips the step. */
static void test_nonfinite_on_one_rank_skips_everywhere(void **state) {
    (void)state;
    for (int zero = 0; zero <= 1; zero++)
        for (int poison = 1; poison <= 3; poison++) {
            run_config rc = {GOPT_ALGO_ADAM, zero, 0, 0};
            dist_run t;
            dist_open(&t, &rc);
            int last = gopt_dist_size(t.d) - 1;
            assert_int_equal(dist_step(&t, 0, 0), 1);
            gopt_params *p = gopt_net_params(t.net);
            int64_t n = gopt_params_numel(p);
            float *before = malloc((size_t)n * sizeof *before);
            memcpy(before, gopt_params_values(p), (size_t)n * sizeof *before);
            int apply = dist_step(&t, 1, gopt_dist_rank(t.d) == last ? poison : 0);
            assert_int_equal(apply, 0);
            assert_memory_equal(before, gopt_params_values(p), (size_t)n * sizeof *before);
            gopt_monitor_counts c;
            OK(gopt_monitor_counts_get(t.mon, &c));
            assert_int_equal(c.skipped_nonfinite, 1);
            assert_int_equal(c.nonfinite_input, poison == 3);
            assert_int_equal(gopt_optim_step_count(t.opt), 1);
            assert_int_equal(dist_step(&t, 2, 0), 1); /* and training goes on */
            free(before);
            dist_close(&t);
        }
}

/* Save after 6 steps (rank 0 writes; the optimizer state gathered), go on to 12; a new
 * run that loads the file and trains the same 6 steps ends bit-identical. */
static void test_resume_bit_exact(void **state) {
    (void)state;
    char path[64];
    for (int zero = 0; zero <= 1; zero++) {
        run_config rc = {GOPT_ALGO_ADAM, zero, 0.5, 0};
        dist_run a;
        dist_open(&a, &rc);
        snprintf(path, sizeof path, "test_dist_resume_%d.ckpt", gopt_dist_size(a.d));
        for (int s = 0; s < 6; s++) dist_step(&a, s, 0);
        gopt_params *p = gopt_net_params(a.net);
        size_t osize = gopt_dist_optim_state_size(a.d, a.opt);
        size_t psize = gopt_params_state_size(p);
        void *obuf = malloc(osize), *pbuf = malloc(psize);
        OK(gopt_dist_optim_state_save(a.d, a.opt, gopt_dist_rank(a.d) == 0 ? obuf : NULL, osize));
        if (gopt_dist_rank(a.d) == 0) {
            OK(gopt_params_state_save(p, pbuf, psize));
            gopt_ckpt_writer *w;
            OK(gopt_ckpt_writer_begin(path, &w));
            OK(gopt_ckpt_writer_add(w, "params", pbuf, psize));
            OK(gopt_ckpt_writer_add(w, "optim", obuf, osize));
            OK(gopt_ckpt_writer_commit(w));
        }
        OK(gopt_dist_barrier(a.d));
        for (int s = 6; s < 12; s++) dist_step(&a, s, 0);
        /* the gathered state is that of an unsharded optimizer: same size */
        if (zero) {
            int64_t b, e;
            gopt_optim_range(a.opt, &b, &e);
            assert_true(gopt_optim_state_size(a.opt) < osize || gopt_dist_size(a.d) == 1);
            /* optimizer state per rank about 1/P of the whole (two Adam moments) */
            int64_t n = gopt_params_numel(p);
            assert_true(e - b <= n / gopt_dist_size(a.d) + 16);
        }

        dist_run b;
        dist_open(&b, &rc);
        gopt_ckpt *c;
        OK(gopt_ckpt_open(path, &c));
        const void *data;
        size_t size;
        OK(gopt_ckpt_find(c, "params", &data, &size));
        OK(gopt_params_state_load(gopt_net_params(b.net), data, size));
        OK(gopt_ckpt_find(c, "optim", &data, &size));
        OK(gopt_optim_state_load(b.opt, data, size));
        gopt_ckpt_close(c);
        for (int s = 6; s < 12; s++) dist_step(&b, s, 0);
        assert_memory_equal(gopt_params_values(gopt_net_params(b.net)), gopt_params_values(p),
                            (size_t)gopt_params_numel(p) * sizeof(float));
        OK(gopt_dist_barrier(b.d));
        if (gopt_dist_rank(a.d) == 0) unlink(path);
        free(obuf);
        free(pbuf);
        dist_close(&b);
        dist_close(&a);
    }
}

/* Ranks that built different nets, optimizers or options are told so at start. */
static void test_verify_refuses_mismatch(void **state) {
    (void)state;
    gopt_dist *d;
    OK(gopt_dist_create(NULL, &d));
    int r = gopt_dist_rank(d), P = gopt_dist_size(d);
    gopt_net *net = make_net(8, 0, r == P - 1 && P > 1 ? 16 : 32);
    gopt_optim_config oc = optim_config(GOPT_ALGO_SGD);
    gopt_optim *opt;
    OK(gopt_optim_create(&oc, gopt_net_params(net), &opt));
    gopt_status s = gopt_dist_verify(d, gopt_net_params(net), opt, NULL, 0);
    if (P > 1) {
        assert_int_equal(s, GOPT_EINVAL);
        assert_non_null(strstr(gopt_last_error(), "arena layout"));
        char want[32];
        snprintf(want, sizeof want, "rank %d", P - 1);
        assert_non_null(strstr(gopt_last_error(), want));
    } else {
        OK(s);
    }
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);

    net = make_net(8, 0, 32);
    oc.lr = r == P - 1 ? 0.2f : 0.1f;
    OK(gopt_optim_create(&oc, gopt_net_params(net), &opt));
    s = gopt_dist_verify(d, gopt_net_params(net), opt, NULL, 0);
    if (P > 1) {
        assert_int_equal(s, GOPT_EINVAL);
        assert_non_null(strstr(gopt_last_error(), "optimizer"));
    }
    oc.lr = 0.1f;
    OK(gopt_optim_set_group_config(opt, 0, &oc));
    int extra = r;
    s = gopt_dist_verify(d, gopt_net_params(net), opt, &extra, sizeof extra);
    if (P > 1) {
        assert_int_equal(s, GOPT_EINVAL);
        assert_non_null(strstr(gopt_last_error(), "extra"));
    }
    OK(gopt_dist_verify(d, gopt_net_params(net), opt, "same", 4));
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
    gopt_dist_destroy(d);
}

/* Sums are the same bits on every rank; slices tile the arena. */
static void test_sum_and_slices(void **state) {
    (void)state;
    gopt_dist *d;
    OK(gopt_dist_create(NULL, &d));
    int r = gopt_dist_rank(d), P = gopt_dist_size(d);
    double v[3] = {0.1 * (r + 1), 1e16, -1e16 + r}, want0 = 0, want2 = 0;
    for (int k = 0; k < P; k++) {
        want0 += 0.1 * (k + 1);
        want2 += -1e16 + k;
    }
    OK(gopt_dist_sum(d, v, 3));
    assert_true(v[0] == want0);
    assert_true(v[1] == 1e16 * P);
    assert_true(v[2] == want2);
    int64_t sizes[4] = {0, 15, 1000, 123457};
    for (int k = 0; k < 4; k++) {
        int64_t expect = 0;
        for (int q = 0; q < P; q++) {
            int64_t b, e;
            gopt_dist_slice(d, sizes[k], q, &b, &e);
            assert_int_equal(b, expect);
            assert_true(e >= b && (b % 16 == 0));
            expect = e;
        }
        assert_int_equal(expect, sizes[k]);
    }
    assert_int_equal(gopt_dist_broadcast(d, v, sizeof v, P), GOPT_EINVAL);
    assert_int_equal(gopt_dist_sum(d, v, -1), GOPT_EINVAL);
    /* ZeRO-1 refuses LAMB */
    gopt_dist_config dc = gopt_dist_config_default();
    dc.zero = 1;
    gopt_dist *dz;
    OK(gopt_dist_create(&dc, &dz));
    gopt_net *net = make_net(4, 0, 8);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_LAMB);
    gopt_optim *opt = NULL;
    assert_int_equal(gopt_dist_optim_create(dz, &oc, gopt_net_params(net), &opt), GOPT_EINVAL);
    assert_non_null(strstr(gopt_last_error(), "LAMB"));
    assert_null(opt);
    gopt_net_destroy(net);
    gopt_dist_destroy(dz);
    dc.zero = 2;
    assert_int_equal(gopt_dist_create(&dc, &dz), GOPT_EINVAL);
    gopt_dist_destroy(d);
}

/* Optimizers over complementary ranges step exactly as one over the whole arena, for every
 * element-wise algorithm (Adagrad's initial accumulator and Lookahead included); a range
 * optimizer loads its slice out of a whole optimizer's state; bad ranges are refused. */
static void test_optim_range_matches_whole(void **state) {
    (void)state;
    const gopt_algo algos[] = {GOPT_ALGO_SGD, GOPT_ALGO_ADAGRAD, GOPT_ALGO_RMSPROP, GOPT_ALGO_ADAM,
                               GOPT_ALGO_ADAMW, GOPT_ALGO_NADAM, GOPT_ALGO_LION};
    for (size_t k = 0; k < sizeof algos / sizeof algos[0]; k++) {
        gopt_net *whole = make_net(4, 0, 24), *parts = make_net(4, 0, 24);
        gopt_params *pw = gopt_net_params(whole), *pp = gopt_net_params(parts);
        /* a no-decay group for the biases, so runs of two groups cross the cut */
        gopt_group_config nd = gopt_group_config_default();
        nd.weight_decay = 0.0f;
        OK(gopt_params_group_by_tag(pw, GOPT_TAG_BIAS, &nd, NULL));
        OK(gopt_params_group_by_tag(pp, GOPT_TAG_BIAS, &nd, NULL));
        gopt_optim_config oc = optim_config(algos[k]);
        oc.weight_decay = 0.01f;
        oc.initial_accumulator_value = 0.1f;
        oc.lookahead_k = 3;
        const int64_t n = gopt_params_numel(pw), cut = (n / 3 + 15) / 16 * 16;
        gopt_optim *ow, *o1, *o2;
        OK(gopt_optim_create(&oc, pw, &ow));
        OK(gopt_optim_create_range(&oc, pp, 0, cut, &o1));
        OK(gopt_optim_create_range(&oc, pp, cut, n, &o2));
        int64_t b, e;
        gopt_optim_range(o2, &b, &e);
        assert_int_equal(b, cut);
        assert_int_equal(e, n);
        gopt_rng rng;
        gopt_rng_seed(&rng, 3);
        for (int s = 0; s < 7; s++) {
            for (int64_t i = 0; i < n; i++)
                gopt_params_grads(pw)[i] = gopt_params_grads(pp)[i] = gopt_rng_normal(&rng);
            OK(gopt_optim_step(ow));
            OK(gopt_optim_step(o1));
            OK(gopt_optim_step(o2));
        }
        assert_memory_equal(gopt_params_values(pw), gopt_params_values(pp), (size_t)n * sizeof(float));
        /* the slice of a whole state: o2 reloaded from ow's state continues identically */
        size_t size = gopt_optim_state_size(ow);
        void *buf = malloc(size);
        OK(gopt_optim_state_save(ow, buf, size));
        assert_true(gopt_optim_state_size(o2) < size);
        OK(gopt_optim_state_load(o2, buf, size));
        OK(gopt_optim_state_load(o1, buf, size));
        for (int64_t i = 0; i < n; i++) gopt_params_grads(pw)[i] = gopt_params_grads(pp)[i] = gopt_rng_normal(&rng);
        OK(gopt_optim_step(ow));
        OK(gopt_optim_step(o1));
        OK(gopt_optim_step(o2));
        assert_memory_equal(gopt_params_values(pw), gopt_params_values(pp), (size_t)n * sizeof(float));
        /* a slice's own state round-trips; another slice's size is refused */
        size_t s2 = gopt_optim_state_size(o2);
        void *b2 = malloc(s2);
        OK(gopt_optim_state_save(o2, b2, s2));
        OK(gopt_optim_state_load(o2, b2, s2));
        assert_int_equal(gopt_optim_state_load(o1, b2, s2), GOPT_EFORMAT);
        free(b2);
        free(buf);
        gopt_optim *bad = NULL;
        assert_int_equal(gopt_optim_create_range(&oc, pp, 8, n, &bad), GOPT_ERANGE);
        assert_int_equal(gopt_optim_create_range(&oc, pp, 0, n + 1, &bad), GOPT_ERANGE);
        assert_int_equal(gopt_optim_create_range(&oc, pp, 32, 16, &bad), GOPT_ERANGE);
        assert_null(bad);
        gopt_optim_destroy(ow);
        gopt_optim_destroy(o1);
        gopt_optim_destroy(o2);
        gopt_net_destroy(whole);
        gopt_net_destroy(parts);
    }
    gopt_net *net = make_net(4, 0, 24);
    gopt_optim_config lamb = gopt_optim_config_default(GOPT_ALGO_LAMB);
    gopt_optim *o = NULL;
    assert_int_equal(gopt_optim_create_range(&lamb, gopt_net_params(net), 0, 16, &o), GOPT_EINVAL);
    OK(gopt_optim_create_range(&lamb, gopt_net_params(net), 0, gopt_params_numel(gopt_net_params(net)), &o));
    gopt_optim_destroy(o);
    gopt_net_destroy(net);
}

int main(void) {
    gopt_set_threads(1);
    /* The world lives for the whole program: MPI can be initialised once per process. */
    if (gopt_dist_create(NULL, &world) != GOPT_OK) {
        fprintf(stderr, "gopt_dist_create: %s\n", gopt_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_and_slices),
        cmocka_unit_test(test_optim_range_matches_whole),
        cmocka_unit_test(test_equivalence_sgd),
        cmocka_unit_test(test_equivalence_adam),
        cmocka_unit_test(test_equivalence_sync_batchnorm),
        cmocka_unit_test(test_nonfinite_on_one_rank_skips_everywhere),
        cmocka_unit_test(test_resume_bit_exact),
        cmocka_unit_test(test_verify_refuses_mismatch),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    gopt_dist_destroy(world); /* finalises MPI */
    return failed;
}
