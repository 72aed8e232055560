/* Synchronised BatchNorm (nn/bn_sync.h, torch.nn.SyncBatchNorm) without MPI: two pthreads
 * play two processes, each with its own net (same seed and weights) fed half of a batch,
 * and a gopt__sum_fn built on a barrier sums their vectors in rank order. Against one net
 * fed the whole batch without sync: the outputs, every batchnorm's running statistics and
 * the AVERAGE of the two threads' gradients (what DDP's allreduce gives) agree within 1e-5
 * relative (max |a - b| over max |b|). Also: a failing sum propagates out of
 * gopt_net_forward / gopt_net_backward, eval passes never sum, and with fn = NULL the
 * results are bitwise those of a net that never synchronised. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>

#include "core/common.h"
#include "nn/bn_sync.h"
#include "nn/layer.h"

#define TOL 1e-5
#define SUM_MAX 4096 /* doubles a sum may take (2C + 1 for the widest batchnorm here) */
#define MAX_BNS 16

/* ---- the nets ------------------------------------------------------------------------- */

enum { NET_IMAGE, NET_DENSE };

/* Image: (3,8,8) conv 3->8, batchnorm2d, relu, basic block 8->16 stride 2 (projection: the
 * shortcut bn and the fused residual relu), basic block 16->16 (identity shortcut), global
 * average pool, linear 16->5. Dense: (4,6) batchnorm1d over 4 planes of 6, flatten, linear
 * 24->16, batchnorm1d(16) with a fused relu, residual_dense(16, relu, batchnorm), linear
 * 16->5. The parameters are nudged off their defaults (gamma != 1, beta != 0) the same way
 * in every net. */
static gopt_status make_net(int kind, int max_batch, gopt_net **out) {
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = max_batch;
    c.seed = 11;
    gopt_layer_config lc[8];
    int nl = 0;
    if (kind == NET_IMAGE) {
        c.in_ndim = 3;
        c.in_shape[0] = 3;
        c.in_shape[1] = 8;
        c.in_shape[2] = 8;
        lc[nl++] = gopt_layer_conv2d(3, 8, 3, 1, 1, 1);
        lc[nl++] = gopt_layer_batchnorm2d(8, 0);
        lc[nl++] = gopt_layer_config_default(GOPT_LAYER_RELU);
        lc[nl++] = gopt_layer_basic_block(8, 16, 2);
        lc[nl++] = gopt_layer_basic_block(16, 16, 1);
        lc[nl++] = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL);
        lc[nl++] = gopt_layer_linear(16, 5, 1);
    } else {
        c.in_ndim = 2;
        c.in_shape[0] = 4;
        c.in_shape[1] = 6;
        c.in_shape[2] = 1;
        lc[nl++] = gopt_layer_batchnorm1d(4);
        lc[nl++] = gopt_layer_config_default(GOPT_LAYER_FLATTEN);
        lc[nl++] = gopt_layer_linear(24, 16, 1);
        lc[nl] = gopt_layer_batchnorm1d(16);
        lc[nl++].relu = 1;
        lc[nl++] = gopt_layer_residual_dense(16, GOPT_LAYER_RELU, 1);
        lc[nl++] = gopt_layer_linear(16, 5, 1);
    }
    gopt_net *net;
    GOPT_TRY(gopt_net_create(&c, &net));
    gopt_status s = GOPT_OK;
    for (int i = 0; i < nl && s == GOPT_OK; i++) s = gopt_net_add(net, &lc[i], NULL);
    if (s == GOPT_OK) s = gopt_net_build(net);
    if (s != GOPT_OK) {
        gopt_net_destroy(net);
        return s;
    }
    gopt_params *p = gopt_net_params(net);
    float *v = gopt_params_values(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) v[i] += 0.1f * (float)sin(1.3 * (double)i);
    *out = net;
    return GOPT_OK;
}

static int64_t in_numel(int kind) { return kind == NET_IMAGE ? 3 * 8 * 8 : 4 * 6; }
#define OUT_F 5

/* n samples, channel means away from 0 (so the variance is not the second moment); freq
 * picks one of a family of such inputs */
static float *make_input_freq(int kind, int n, double freq) {
    const int64_t per = in_numel(kind);
    float *x = malloc(sizeof(float) * (size_t)(n * per));
    for (int64_t i = 0; i < n * per; i++) {
        int64_t ch = kind == NET_IMAGE ? (i / 64) % 3 : (i / 6) % 4;
        x[i] = 0.7f * (float)ch - 0.4f + 1.5f * (float)sin(freq * (double)i + 0.11 * (double)(i * i % 97));
    }
    return x;
}
static float *make_input(int kind, int n) { return make_input_freq(kind, n, 0.37); }

/* the upstream gradient of a loss that is the mean over the n_local samples of sum r */
static void make_dlogits(float *d, const float *r, int n_local) {
    for (int i = 0; i < n_local * OUT_F; i++) d[i] = r[i] / (float)n_local;
}

static float *make_r(int n) {
    float *r = malloc(sizeof(float) * (size_t)(n * OUT_F));
    for (int i = 0; i < n * OUT_F; i++) r[i] = (float)cos(0.71 * i) + 0.25f;
    return r;
}

static gopt_tensor view_in(int kind, float *x, int n) {
    gopt_tensor t;
    int64_t s4[4] = {n, kind == NET_IMAGE ? 3 : 4, kind == NET_IMAGE ? 8 : 6, 8};
    (void)gopt_tensor_view(x, kind == NET_IMAGE ? 4 : 3, s4, &t);
    return t;
}

/* every batchnorm of the net, blocks' included, in order */
static int net_bns(gopt_net *net, gopt__bn **bns) {
    int k = 0;
    for (int i = 0; i < gopt_net_layer_count(net); i++) {
        gopt__bn *b3[3];
        int m = gopt__layer_bns(gopt_net_layer(net, i), b3);
        for (int j = 0; j < m && k < MAX_BNS; j++) bns[k++] = b3[j];
    }
    return k;
}

/* running mean and var of every batchnorm, concatenated; returns the count */
static int copy_running(gopt_net *net, float *out) {
    gopt__bn *bns[MAX_BNS];
    int nb = net_bns(net, bns), k = 0;
    for (int b = 0; b < nb; b++) {
        memcpy(out + k, bns[b]->running_mean, sizeof(float) * (size_t)bns[b]->C);
        k += bns[b]->C;
        memcpy(out + k, bns[b]->running_var, sizeof(float) * (size_t)bns[b]->C);
        k += bns[b]->C;
    }
    return k;
}

static double max_rel(const float *a, const double *b, int64_t n) {
    double diff = 0.0, ref = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= diff)) diff = d; /* NaN wins */
        if (fabs(b[i]) > ref) ref = fabs(b[i]);
    }
    return ref > 0.0 ? diff / ref : diff;
}

static double max_rel_f(const float *a, const float *b, int64_t n) {
    double *bd = malloc(sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < n; i++) bd[i] = b[i];
    double r = max_rel(a, bd, n);
    free(bd);
    return r;
}

/* ---- one training pass: `steps` times zero grads, forward, backward ------------------ */

typedef struct pass_out {
    float *logits; /* n x OUT_F of the last forward */
    float *grads;  /* the arena's gradients after the last backward */
    float running[2 * 1024];
    int nrun;
    int64_t nparams;
    gopt_status status;
    char detail[256];
} pass_out;

static gopt_status run_pass(gopt_net *net, int kind, float *x, const float *r, int n, int steps, pass_out *o) {
    float *d = malloc(sizeof(float) * (size_t)(n * OUT_F));
    gopt_params *p = gopt_net_params(net);
    gopt_status s = GOPT_OK;
    for (int k = 0; k < steps && s == GOPT_OK; k++) {
        gopt_params_zero_grad(p);
        gopt_tensor tx = view_in(kind, x, n), logits, dl;
        s = gopt_net_forward(net, &tx, &logits);
        if (s != GOPT_OK) break;
        memcpy(o->logits, logits.data, sizeof(float) * (size_t)(n * OUT_F));
        make_dlogits(d, r, n);
        int64_t ds[2] = {n, OUT_F};
        (void)gopt_tensor_view(d, 2, ds, &dl);
        s = gopt_net_backward(net, &dl);
    }
    o->nparams = gopt_params_numel(p);
    memcpy(o->grads, gopt_params_grads(p), sizeof(float) * (size_t)o->nparams);
    o->nrun = copy_running(net, o->running);
    free(d);
    return s;
}

static void pass_alloc(pass_out *o, int n) {
    memset(o, 0, sizeof *o);
    o->logits = calloc((size_t)n * OUT_F, sizeof(float));
    o->grads = calloc(1 << 16, sizeof(float));
}
static void pass_free(pass_out *o) {
    free(o->logits);
    free(o->grads);
}

/* ---- two processes as two threads -------------------------------------------------- */

typedef struct world {
    pthread_barrier_t bar;
    const double *posted[2];
    int calls[2];
} world;

typedef struct rank_ctx {
    world *w;
    int rank;
    double sum[SUM_MAX];
} rank_ctx;

/* post, wait, sum both in rank order (same bits on both), wait, then write back: the second
 * wait keeps a rank from overwriting its vector while the other still reads it */
static gopt_status barrier_sum(void *ctx, double *v, int n) {
    rank_ctx *rc = ctx;
    world *w = rc->w;
    w->posted[rc->rank] = v;
    pthread_barrier_wait(&w->bar);
    int m = n < SUM_MAX ? n : SUM_MAX; /* the test keeps n far below */
    for (int i = 0; i < m; i++) rc->sum[i] = w->posted[0][i] + w->posted[1][i];
    pthread_barrier_wait(&w->bar);
    memcpy(v, rc->sum, sizeof(double) * (size_t)m);
    w->calls[rc->rank]++;
    return GOPT_OK;
}

typedef struct job {
    int kind, n, steps;
    float *x;
    const float *r;
    rank_ctx rc;
    pass_out out;
} job;

static void *rank_main(void *arg) {
    job *j = arg;
    gopt_net *net = NULL;
    gopt_status s = make_net(j->kind, j->n, &net);
    if (s == GOPT_OK) s = gopt__net_set_bn_sync(net, barrier_sum, &j->rc);
    /* a rank that fails before its first sum would leave the other at the barrier: both
     * build the same net, so both fail or neither */
    if (s == GOPT_OK) s = run_pass(net, j->kind, j->x, j->r, j->n, j->steps, &j->out);
    j->out.status = s;
    if (s != GOPT_OK) snprintf(j->out.detail, sizeof j->out.detail, "%s", gopt_last_error());
    gopt_net_destroy(net);
    return NULL;
}

/* One input: the exact invariants asserted, 1 if the figures are within TOL. */
static int two_ranks_once(int kind, int N, int steps, double freq) {
    const int h = N / 2;
    float *x = make_input_freq(kind, N, freq), *r = make_r(N);
    /* the reference: one net, the whole batch, no sync */
    pass_out ref;
    pass_alloc(&ref, N);
    gopt_net *net;
    assert_ok(make_net(kind, N, &net));
    assert_ok(run_pass(net, kind, x, r, N, steps, &ref));
    gopt_net_destroy(net);

    world w;
    memset(&w, 0, sizeof w);
    assert_int_equal(pthread_barrier_init(&w.bar, NULL, 2), 0);
    job jobs[2];
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        memset(&jobs[k], 0, sizeof jobs[k]);
        jobs[k].kind = kind;
        jobs[k].n = h;
        jobs[k].steps = steps;
        jobs[k].x = x + (int64_t)k * h * in_numel(kind);
        jobs[k].r = r + k * h * OUT_F;
        jobs[k].rc.w = &w;
        jobs[k].rc.rank = k;
        pass_alloc(&jobs[k].out, h);
    }
    for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&th[k], NULL, rank_main, &jobs[k]), 0);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    pthread_barrier_destroy(&w.bar);
    for (int k = 0; k < 2; k++)
        if (jobs[k].out.status != GOPT_OK) fail_msg("rank %d: status %d: %s", k, jobs[k].out.status, jobs[k].out.detail);

    /* every batchnorm summed twice per step (forward, backward), the same on both ranks */
    gopt_net *probe;
    assert_ok(make_net(kind, 1, &probe));
    gopt__bn *bns[MAX_BNS];
    const int nb = net_bns(probe, bns);
    gopt_net_destroy(probe);
    assert_int_equal(w.calls[0], 2 * nb * steps);
    assert_int_equal(w.calls[1], 2 * nb * steps);

    /* outputs: rank k's rows of the whole batch */
    double worst_out = 0.0;
    for (int k = 0; k < 2; k++) {
        double e = max_rel_f(jobs[k].out.logits, ref.logits + k * h * OUT_F, (int64_t)h * OUT_F);
        if (e > worst_out) worst_out = e;
    }
    /* running statistics: the same bits on both ranks, and the whole batch's */
    assert_int_equal(jobs[0].out.nrun, ref.nrun);
    assert_memory_equal(jobs[0].out.running, jobs[1].out.running, sizeof(float) * (size_t)ref.nrun);
    double e_run = max_rel_f(jobs[0].out.running, ref.running, ref.nrun);
    /* gradients: the average over the ranks is the whole batch's gradient */
    const int64_t P = ref.nparams;
    assert_int_equal(jobs[0].out.nparams, P);
    double *avg = malloc(sizeof(double) * (size_t)P);
    for (int64_t i = 0; i < P; i++) avg[i] = 0.5 * ((double)jobs[0].out.grads[i] + (double)jobs[1].out.grads[i]);
    float *avgf = malloc(sizeof(float) * (size_t)P);
    for (int64_t i = 0; i < P; i++) avgf[i] = (float)avg[i];
    double *refd = malloc(sizeof(double) * (size_t)P);
    for (int64_t i = 0; i < P; i++) refd[i] = ref.grads[i];
    double e_grad = max_rel(avgf, refd, P);
    /* without sync the two halves give other gradients: the check can fail */
    print_message("%s net, 2 x %d vs 1 x %d, %d step(s), input %.3f: outputs %.2e, running stats %.2e, mean gradient "
                  "%.2e\n",
                  kind == NET_IMAGE ? "image" : "dense", h, N, steps, freq, worst_out, e_run, e_grad);
    const int ok = worst_out <= TOL && e_run <= TOL && e_grad <= TOL;
    free(avg);
    free(avgf);
    free(refd);
    for (int k = 0; k < 2; k++) pass_free(&jobs[k].out);
    pass_free(&ref);
    free(x);
    free(r);
    return ok;
}

/* Two synced ranks against the whole batch on three inputs, at least two within TOL. Not
 * one: the ranks' sums round otherwise than the whole batch's, and a ReLU input within that
 * rounding of 0 flips its mask and moves the gradients by 1e-3 (seen: 2 of 31 inputs of
 * this family, on different inputs with different convolution kernels). A sync fault is off
 * on every input (the unsynced halves: by more than 1e-3). */
static void check_two_ranks_match_one(int kind, int N, int steps) {
    int ok = 0;
    for (int k = 0; k < 3; k++) ok += two_ranks_once(kind, N, steps, 0.37 + 0.001 * k);
    assert_true(ok >= 2);
}

/* The same two halves without sync: the averaged gradient is NOT the whole batch's (the
 * comparison above has something to detect). */
static void test_unsynced_halves_differ(void **state) {
    (void)state;
    const int kind = NET_IMAGE, N = 16, h = 8;
    float *x = make_input(kind, N), *r = make_r(N);
    pass_out ref, half[2];
    pass_alloc(&ref, N);
    gopt_net *net;
    assert_ok(make_net(kind, N, &net));
    assert_ok(run_pass(net, kind, x, r, N, 1, &ref));
    gopt_net_destroy(net);
    for (int k = 0; k < 2; k++) {
        pass_alloc(&half[k], h);
        assert_ok(make_net(kind, h, &net));
        assert_ok(run_pass(net, kind, x + (int64_t)k * h * in_numel(kind), r + k * h * OUT_F, h, 1, &half[k]));
        gopt_net_destroy(net);
    }
    const int64_t P = ref.nparams;
    float *avg = malloc(sizeof(float) * (size_t)P);
    for (int64_t i = 0; i < P; i++) avg[i] = 0.5f * (half[0].grads[i] + half[1].grads[i]);
    double e = max_rel_f(avg, ref.grads, P);
    print_message("unsynced halves: mean gradient off by %.2e\n", e);
    assert_true(e > 1e-3);
    free(avg);
    for (int k = 0; k < 2; k++) pass_free(&half[k]);
    pass_free(&ref);
    free(x);
    free(r);
}

static void test_image_net_two_ranks(void **state) {
    (void)state;
    gopt_set_threads(1); /* two ranks on two cores; also keeps each rank's OpenBLAS serial */
    check_two_ranks_match_one(NET_IMAGE, 32, 1);
    check_two_ranks_match_one(NET_IMAGE, 32, 3);
    gopt_set_threads(2); /* the batchnorm loops split over channels in each rank */
    check_two_ranks_match_one(NET_IMAGE, 64, 2);
    gopt_set_threads(0);
}

static void test_dense_net_two_ranks(void **state) {
    (void)state;
    gopt_set_threads(1);
    check_two_ranks_match_one(NET_DENSE, 64, 1);
    check_two_ranks_match_one(NET_DENSE, 128, 3);
    gopt_set_threads(0);
}

/* ---- a world of one, and failures ---------------------------------------------------- */

typedef struct one_ctx {
    int calls;
    int fail_at; /* 1-based call that fails (0: none) */
} one_ctx;

/* a world of one: the sum is the vector itself */
static gopt_status one_sum(void *ctx, double *v, int n) {
    (void)v;
    (void)n;
    one_ctx *c = ctx;
    c->calls++;
    if (c->fail_at && c->calls == c->fail_at) return GOPT_FAIL(GOPT_ESTATE, "injected sum failure at call %d", c->calls);
    return GOPT_OK;
}

/* Synchronised with one process: the global statistics are the local ones, computed from
 * raw moments instead of two passes, so the results agree to rounding. */
static void test_world_of_one_matches_local(void **state) {
    (void)state;
    for (int kind = NET_IMAGE; kind <= NET_DENSE; kind++) {
        const int N = 24;
        float *x = make_input(kind, N), *r = make_r(N);
        pass_out a, b;
        pass_alloc(&a, N);
        pass_alloc(&b, N);
        gopt_net *na, *nb;
        assert_ok(make_net(kind, N, &na));
        assert_ok(make_net(kind, N, &nb));
        one_ctx c = {0, 0};
        assert_ok(gopt__net_set_bn_sync(nb, one_sum, &c));
        assert_ok(run_pass(na, kind, x, r, N, 2, &a));
        assert_ok(run_pass(nb, kind, x, r, N, 2, &b));
        assert_true(c.calls > 0);
        assert_true(max_rel_f(b.logits, a.logits, (int64_t)N * OUT_F) <= TOL);
        assert_true(max_rel_f(b.running, a.running, a.nrun) <= TOL);
        assert_true(max_rel_f(b.grads, a.grads, a.nparams) <= TOL);
        /* and not by accident bit-identical: the synchronised path really ran */
        assert_true(memcmp(b.grads, a.grads, sizeof(float) * (size_t)a.nparams) != 0);
        gopt_net_destroy(na);
        gopt_net_destroy(nb);
        pass_free(&a);
        pass_free(&b);
        free(x);
        free(r);
    }
}

/* A recomputed batchnorm layer (gopt_net_set_recompute) rewrites its output from the saved
 * global statistics: no extra sum, the same bits as when its output is kept. */
static void test_recompute_under_sync(void **state) {
    (void)state;
    const int kind = NET_IMAGE, N = 10;
    float *x = make_input(kind, N), *r = make_r(N);
    pass_out a, b;
    pass_alloc(&a, N);
    pass_alloc(&b, N);
    gopt_net *na, *nb;
    assert_ok(make_net(kind, N, &na));
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = N;
    c.seed = 11;
    c.in_shape[0] = 3;
    c.in_shape[1] = 8;
    c.in_shape[2] = 8;
    assert_ok(gopt_net_create(&c, &nb));
    for (int i = 0; i < gopt_net_layer_count(na); i++) { /* the same layers, the batchnorm recomputed */
        gopt_layer_config lc;
        gopt_layer *l = gopt_net_layer(na, i);
        lc = l->cfg;
        assert_ok(gopt_net_add(nb, &lc, NULL));
    }
    assert_ok(gopt_net_set_recompute(nb, 1, 1));
    assert_ok(gopt_net_build(nb));
    gopt_params *pa = gopt_net_params(na), *pb = gopt_net_params(nb);
    assert_int_equal(gopt_params_numel(pa), gopt_params_numel(pb));
    memcpy(gopt_params_values(pb), gopt_params_values(pa), sizeof(float) * (size_t)gopt_params_numel(pa));
    one_ctx ca = {0, 0}, cb = {0, 0};
    assert_ok(gopt__net_set_bn_sync(na, one_sum, &ca));
    assert_ok(gopt__net_set_bn_sync(nb, one_sum, &cb));
    assert_ok(run_pass(na, kind, x, r, N, 2, &a));
    assert_ok(run_pass(nb, kind, x, r, N, 2, &b));
    assert_int_equal(ca.calls, cb.calls);
    assert_memory_equal(a.logits, b.logits, sizeof(float) * (size_t)N * OUT_F);
    assert_memory_equal(a.grads, b.grads, sizeof(float) * (size_t)a.nparams);
    assert_memory_equal(a.running, b.running, sizeof(float) * (size_t)a.nrun);
    gopt_net_destroy(na);
    gopt_net_destroy(nb);
    pass_free(&a);
    pass_free(&b);
    free(x);
    free(r);
}

/* fn = NULL after sync was on (and a net that was never synchronised): the same bits. */
static void test_null_fn_bitwise_unchanged(void **state) {
    (void)state;
    for (int kind = NET_IMAGE; kind <= NET_DENSE; kind++) {
        const int N = 12;
        float *x = make_input(kind, N), *r = make_r(N);
        pass_out a, b;
        pass_alloc(&a, N);
        pass_alloc(&b, N);
        gopt_net *na, *nb;
        assert_ok(make_net(kind, N, &na));
        assert_ok(make_net(kind, N, &nb));
        one_ctx c = {0, 0};
        assert_ok(gopt__net_set_bn_sync(nb, one_sum, &c));
        assert_ok(gopt__net_set_bn_sync(nb, NULL, NULL));
        gopt__bn *bns[MAX_BNS];
        int k = net_bns(nb, bns);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) assert_null(bns[i]->sync);
        assert_ok(run_pass(na, kind, x, r, N, 2, &a));
        assert_ok(run_pass(nb, kind, x, r, N, 2, &b));
        assert_int_equal(c.calls, 0);
        assert_memory_equal(a.logits, b.logits, sizeof(float) * (size_t)N * OUT_F);
        assert_memory_equal(a.grads, b.grads, sizeof(float) * (size_t)a.nparams);
        assert_memory_equal(a.running, b.running, sizeof(float) * (size_t)a.nrun);
        gopt_net_destroy(na);
        gopt_net_destroy(nb);
        pass_free(&a);
        pass_free(&b);
        free(x);
        free(r);
    }
}

/* Eval mode: running statistics, no sum (an always-failing fn is never called). */
static void test_eval_does_not_sync(void **state) {
    (void)state;
    for (int kind = NET_IMAGE; kind <= NET_DENSE; kind++) {
        const int N = 6;
        float *x = make_input(kind, N);
        gopt_net *na, *nb;
        assert_ok(make_net(kind, N, &na));
        assert_ok(make_net(kind, N, &nb));
        one_ctx c = {0, 1};
        assert_ok(gopt__net_set_bn_sync(nb, one_sum, &c));
        gopt_net_set_training(na, 0);
        gopt_net_set_training(nb, 0);
        gopt_tensor tx = view_in(kind, x, N), la, lb;
        assert_ok(gopt_net_forward(na, &tx, &la));
        assert_ok(gopt_net_forward(nb, &tx, &lb));
        assert_memory_equal(la.data, lb.data, sizeof(float) * (size_t)N * OUT_F);
        assert_int_equal(c.calls, 0);
        gopt_net_destroy(na);
        gopt_net_destroy(nb);
        free(x);
    }
}

/* A failing sum in forward: gopt_net_forward returns its status and detail, the running
 * statistics are left alone, backward refuses, and the net stops at the failing layer. */
static void test_forward_failure_propagates(void **state) {
    (void)state;
    for (int kind = NET_IMAGE; kind <= NET_DENSE; kind++) {
        const int N = 8;
        float *x = make_input(kind, N), *r = make_r(N);
        gopt_net *net;
        assert_ok(make_net(kind, N, &net));
        gopt__bn *bns[MAX_BNS];
        const int nb = net_bns(net, bns);
        /* fail at the first batchnorm, and at one inside a block / residual_dense (call 3:
         * the image net's first block's second bn, the dense net's residual bn1) */
        const int fail_at[2] = {1, 3};
        for (int f = 0; f < 2; f++) {
            float before[2 * 1024], after[2 * 1024];
            int nrun = copy_running(net, before);
            one_ctx c = {0, fail_at[f]};
            assert_ok(gopt__net_set_bn_sync(net, one_sum, &c));
            gopt_tensor tx = view_in(kind, x, N), logits;
            assert_status(gopt_net_forward(net, &tx, &logits), GOPT_ESTATE, "injected sum failure");
            /* the failing layer's later batchnorms still summed (every rank makes the same
             * calls), no layer after it ran */
            const int expect = f == 0 ? 1 : 4; /* image: bn1 | block: bn1, shortcut bn (fails), bn2 */
            assert_int_equal(c.calls, expect);
            /* the first bn failed: it kept its running statistics (as every later bn did) */
            if (f == 0) {
                assert_int_equal(copy_running(net, after), nrun);
                assert_memory_equal(before, after, sizeof(float) * (size_t)nrun);
            }
            float d[8 * OUT_F];
            make_dlogits(d, r, N);
            int64_t ds[2] = {N, OUT_F};
            gopt_tensor dl;
            assert_ok(gopt_tensor_view(d, 2, ds, &dl));
            assert_status(gopt_net_backward(net, &dl), GOPT_ESTATE, "backward before forward");
            /* the status does not stick: the next forward runs (fn now succeeds) */
            assert_ok(gopt_net_forward(net, &tx, &logits));
            assert_ok(gopt_net_backward(net, &dl));
            assert_int_equal(c.calls, expect + 2 * nb);
        }
        gopt_net_destroy(net);
        free(x);
        free(r);
    }
}

/* A failing sum in backward: gopt_net_backward returns it. */
static void test_backward_failure_propagates(void **state) {
    (void)state;
    for (int kind = NET_IMAGE; kind <= NET_DENSE; kind++) {
        const int N = 8;
        float *x = make_input(kind, N), *r = make_r(N);
        gopt_net *net;
        assert_ok(make_net(kind, N, &net));
        gopt__bn *bns[MAX_BNS];
        const int nb = net_bns(net, bns);
        for (int back = 1; back <= nb; back += nb - 1) { /* the last bn's backward sum, and the first's */
            one_ctx c = {0, nb + back};
            assert_ok(gopt__net_set_bn_sync(net, one_sum, &c));
            gopt_tensor tx = view_in(kind, x, N), logits, dl;
            assert_ok(gopt_net_forward(net, &tx, &logits));
            float d[8 * OUT_F];
            make_dlogits(d, r, N);
            int64_t ds[2] = {N, OUT_F};
            assert_ok(gopt_tensor_view(d, 2, ds, &dl));
            assert_status(gopt_net_backward(net, &dl), GOPT_ESTATE, "injected sum failure");
            assert_true(c.calls >= nb + back);
            if (back == 1) assert_true(c.calls < 2 * nb || nb == 1);
            /* gradients stay finite (the failing bn fell back to its local sums) */
            gopt_params *p = gopt_net_params(net);
            const float *g = gopt_params_grads(p);
            for (int64_t i = 0; i < gopt_params_numel(p); i++) assert_true(isfinite(g[i]));
        }
        gopt_net_destroy(net);
        free(x);
        free(r);
    }
}

static void test_set_sync_errors(void **state) {
    (void)state;
    one_ctx c = {0, 0};
    assert_status(gopt__net_set_bn_sync(NULL, one_sum, &c), GOPT_EINVAL, "net");
    gopt_net_config cfg = gopt_net_config_default();
    gopt_net *net;
    assert_ok(gopt_net_create(&cfg, &net));
    gopt_layer_config bn = gopt_layer_batchnorm2d(3, 0);
    assert_ok(gopt_net_add(net, &bn, NULL));
    assert_status(gopt__net_set_bn_sync(net, one_sum, &c), GOPT_ESTATE, "not built");
    gopt_net_destroy(net);

    /* out of memory part way: every batchnorm back to per-process statistics, and the
     * net then computes exactly what a never-synchronised one does */
    const int kind = NET_IMAGE, N = 4;
    gopt_net *a, *b;
    assert_ok(make_net(kind, N, &a));
    assert_ok(make_net(kind, N, &b));
    gopt__bn *bns[MAX_BNS];
    const int nb = net_bns(b, bns);
    testutil_fail_after(2);
    assert_status(gopt__net_set_bn_sync(b, one_sum, &c), GOPT_ENOMEM, "batchnorm sync");
    testutil_alloc_reset();
    for (int i = 0; i < nb; i++) assert_null(bns[i]->sync);
    float *x = make_input(kind, N), *r = make_r(N);
    pass_out pa, pb;
    pass_alloc(&pa, N);
    pass_alloc(&pb, N);
    assert_ok(run_pass(a, kind, x, r, N, 1, &pa));
    assert_ok(run_pass(b, kind, x, r, N, 1, &pb));
    assert_int_equal(c.calls, 0);
    assert_memory_equal(pa.logits, pb.logits, sizeof(float) * (size_t)N * OUT_F);
    assert_memory_equal(pa.grads, pb.grads, sizeof(float) * (size_t)pa.nparams);
    pass_free(&pa);
    pass_free(&pb);
    free(x);
    free(r);
    gopt_net_destroy(a);
    gopt_net_destroy(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_net_two_ranks),
        cmocka_unit_test(test_dense_net_two_ranks),
        cmocka_unit_test(test_unsynced_halves_differ),
        cmocka_unit_test(test_world_of_one_matches_local),
        cmocka_unit_test(test_recompute_under_sync),
        cmocka_unit_test(test_null_fn_bitwise_unchanged),
        cmocka_unit_test(test_eval_does_not_sync),
        cmocka_unit_test(test_forward_failure_propagates),
        cmocka_unit_test(test_backward_failure_propagates),
        cmocka_unit_test(test_set_sync_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
