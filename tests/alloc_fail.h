/* Shared by tests/test_alloc_fail.c and tests/test_alloc_fail_io.c: a counting allocator
 * that can fail exactly the k-th allocation, the driver that fails every allocation site of
 * a call in turn, and small nets and arenas to call things on (see test_alloc_fail.c). */
#ifndef GOPT_ALLOC_FAIL_H
#define GOPT_ALLOC_FAIL_H

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include <gradopt/dist.h>

/* ---- the counting allocator ------------------------------------------------------------ */

static atomic_long n_calls;   /* malloc_fn calls so far */
static atomic_long n_live;    /* allocations not yet freed */
static atomic_long fail_at = -1; /* the call index that returns NULL (-1: none) */
static atomic_int injected;   /* the failure was hit */

static inline void *count_malloc(void *opaque, size_t size) {
    (void)opaque;
    long k = atomic_fetch_add(&n_calls, 1);
    if (k == atomic_load(&fail_at)) {
        atomic_store(&injected, 1);
        return NULL;
    }
    void *p = malloc(size);
    if (p) atomic_fetch_add(&n_live, 1);
    return p;
}
static inline void count_free(void *opaque, void *ptr) {
    (void)opaque;
    if (ptr) atomic_fetch_sub(&n_live, 1);
    free(ptr);
}
static inline void install_counter(void) {
    gopt_allocator a = {count_malloc, count_free, NULL};
    gopt_set_allocator(&a);
}

/* ---- the driver -------------------------------------------------------------------------
 * fx holds what exists before the call (made by setup) and what the call made (out, out2).
 * call: the call under test. on_fail: after GOPT_ENOMEM (default: outputs are NULL).
 * on_ok: destroys what a successful call made. teardown: destroys the fixtures. */
typedef struct fx {
    int arg;
    gopt_params *p;
    gopt_net *net;
    gopt_optim *opt;
    gopt_dataset *ds;
    gopt_text *text;
    gopt_ckpt_writer *w;
    gopt_dist *dist;
    gopt_monitor *mon;
    gopt_tensor *t;
    void *out, *out2;
    char path[256];
} fx;

typedef struct acase {
    const char *name;
    void (*setup)(fx *);
    gopt_status (*call)(fx *);
    void (*on_fail)(fx *);
    void (*on_ok)(fx *);
    void (*teardown)(fx *);
} acase;

static int sentinel_obj;
#define SENTINEL ((void *)&sentinel_obj)

static inline void teardown_all(fx *f) {
    gopt_ckpt_writer_abort(f->w);
    gopt_monitor_destroy(f->mon);
    gopt_optim_destroy(f->opt);
    gopt_net_destroy(f->net);
    gopt_params_destroy(f->p);
    gopt_dataset_destroy(f->ds);
    gopt_text_destroy(f->text);
    gopt_dist_destroy(f->dist);
    gopt_tensor_destroy(f->t);
    if (f->path[0]) unlink(f->path);
}

static int total_sites;

/* Runs one case for arg; returns N. */
static inline long run_case(const acase *c, int arg, const char *label) {
    long base = atomic_load(&n_live);
    fx f;
    memset(&f, 0, sizeof f);
    f.arg = arg;
    if (c->setup) c->setup(&f);
    f.out = f.out2 = SENTINEL;
    long c0 = atomic_load(&n_calls);
    gopt_status s = c->call(&f);
    long n = atomic_load(&n_calls) - c0;
    if (s != GOPT_OK) fail_msg("%s: the counting run failed: %s (%s)", label, gopt_status_str(s), gopt_last_error());
    if (n == 0) fail_msg("%s: the call allocated nothing: no site to fail (a case that tests nothing)", label);
    if (c->on_ok) c->on_ok(&f);
    c->teardown ? c->teardown(&f) : teardown_all(&f);
    if (atomic_load(&n_live) != base)
        fail_msg("%s: %ld allocations live after destroying everything", label, atomic_load(&n_live) - base);
    for (long k = 0; k < n; k++) {
        memset(&f, 0, sizeof f);
        f.arg = arg;
        if (c->setup) c->setup(&f);
        f.out = f.out2 = SENTINEL;
        atomic_store(&injected, 0);
        gopt_clear_error();
        atomic_store(&fail_at, atomic_load(&n_calls) + k);
        s = c->call(&f);
        atomic_store(&fail_at, -1);
        if (!atomic_load(&injected))
            fail_msg("%s: allocation %ld of %ld was never reached (the call made fewer this time)", label, k, n);
        if (s != GOPT_ENOMEM)
            fail_msg("%s: failing allocation %ld of %ld gave %s, not GOPT_ENOMEM; detail: %s", label, k, n,
                     gopt_status_str(s), gopt_last_error());
        if (strlen(gopt_last_error()) == 0) fail_msg("%s: failing allocation %ld left no detail", label, k);
        if (c->on_fail) {
            c->on_fail(&f);
        } else {
            if (f.out != NULL) fail_msg("%s: failing allocation %ld left *out non-NULL", label, k);
        }
        c->teardown ? c->teardown(&f) : teardown_all(&f);
        if (atomic_load(&n_live) != base)
            fail_msg("%s: failing allocation %ld of %ld leaked %ld allocations", label, k, n,
                     atomic_load(&n_live) - base);
    }
    printf("%s: %ld allocation sites, each failed in turn: ok\n", label, n);
    fflush(stdout);
    total_sites += (int)n;
    return n;
}

static inline void run(const acase *c) { run_case(c, 0, c->name); }

/* ---- helpers ----------------------------------------------------------------------------- */

static inline gopt_params *small_params(void) {
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    int64_t w[2] = {8, 4}, b[1] = {8};
    assert_ok(gopt_params_add(p, "fc.weight", 2, w, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(p, "fc.bias", 1, b, GOPT_TAG_BIAS, NULL));
    gopt_group_config g = gopt_group_config_default();
    g.weight_decay = 0.0f;
    g.lr = 0.05f;
    assert_ok(gopt_params_group_by_tag(p, GOPT_TAG_BIAS, &g, NULL));
    assert_ok(gopt_params_finalize(p));
    float *v = gopt_params_values(p), *gr = gopt_params_grads(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) {
        v[i] = 0.1f * (float)((i % 7) - 3);
        gr[i] = 0.01f * (float)((i % 5) - 2) + 0.003f;
    }
    return p;
}

static inline void fill_pattern(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * (float)((i * 37) % 19 - 9) / 9.0f;
}

/* A layer spec: its config and the per-sample input shape it takes. */
typedef struct layer_spec {
    gopt_layer_config cfg;
    int ndim;
    int64_t shape[3];
    int tokens; /* the input is token ids in [0, 10) */
} layer_spec;

static inline layer_spec spec_of(gopt_layer_type t) {
    layer_spec s;
    memset(&s, 0, sizeof s);
    s.ndim = 3;
    s.shape[0] = 3;
    s.shape[1] = 6;
    s.shape[2] = 6;
    switch (t) {
    case GOPT_LAYER_LINEAR: s.cfg = gopt_layer_linear(8, 5, 1); s.ndim = 1; s.shape[0] = 8; break;
    case GOPT_LAYER_CONV2D: s.cfg = gopt_layer_conv2d(3, 4, 3, 1, 1, 1); break;
    case GOPT_LAYER_BATCHNORM2D: s.cfg = gopt_layer_batchnorm2d(3, 1); break;
    case GOPT_LAYER_MAXPOOL2D: s.cfg = gopt_layer_maxpool2d(2, 2, 0); break;
    case GOPT_LAYER_DROPOUT: s.cfg = gopt_layer_dropout(0.25f, 7); break;
    case GOPT_LAYER_BASIC_BLOCK: s.cfg = gopt_layer_basic_block(3, 4, 2); break;
    case GOPT_LAYER_EMBEDDING: s.cfg = gopt_layer_embedding(10, 4); s.ndim = 1; s.shape[0] = 5; s.tokens = 1; break;
    case GOPT_LAYER_RNN:
        s.cfg = gopt_layer_rnn(4, 6, 2, GOPT_RNN_TANH, 1, 0.5f, 3);
        s.ndim = 2; s.shape[0] = 5; s.shape[1] = 4;
        break;
    case GOPT_LAYER_LSTM:
        s.cfg = gopt_layer_lstm(4, 6, 2, 1, 0.5f, 3);
        s.ndim = 2; s.shape[0] = 5; s.shape[1] = 4;
        break;
    case GOPT_LAYER_GRU:
        s.cfg = gopt_layer_gru(4, 6, 2, 1, 0.5f, 3);
        s.ndim = 2; s.shape[0] = 5; s.shape[1] = 4;
        break;
    case GOPT_LAYER_BATCHNORM1D: s.cfg = gopt_layer_batchnorm1d(8); s.ndim = 1; s.shape[0] = 8; break;
    case GOPT_LAYER_RESIDUAL_DENSE:
        s.cfg = gopt_layer_residual_dense(8, GOPT_LAYER_RELU, 1); s.ndim = 1; s.shape[0] = 8;
        break;
    default: s.cfg = gopt_layer_config_default(t); break;
    }
    return s;
}

#define MAXB 3

static inline gopt_net *net_for(const layer_spec *s) {
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = MAXB;
    nc.in_ndim = s->ndim;
    for (int i = 0; i < 3; i++) nc.in_shape[i] = s->shape[i];
    nc.seed = 11;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&nc, &net));
    return net;
}

/* The rest of a net after its first layer: flatten if needed, then a linear to 3 outputs. */
static inline void net_finish(gopt_net *net) {
    int64_t sh[3];
    int nd = gopt_net_out_shape(net, sh);
    if (nd > 1) {
        gopt_layer_config fl = gopt_layer_config_default(GOPT_LAYER_FLATTEN);
        assert_ok(gopt_net_add(net, &fl, "flat"));
        nd = gopt_net_out_shape(net, sh);
    }
    gopt_layer_config head = gopt_layer_linear((int)sh[0], 3, 1);
    assert_ok(gopt_net_add(net, &head, "head"));
}

/* Two training steps (forward, backward, SGD with momentum); the values it leaves are
 * compared bit for bit with a net built without any failure. */
static inline void net_train(gopt_net *net, const layer_spec *in) {
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.1f;
    oc.momentum = 0.9f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&oc, gopt_net_params(net), &opt));
    for (int step = 0; step < 2; step++) {
        gopt_tensor logits;
        if (in->tokens) {
            int32_t ids[MAXB * 5];
            for (int i = 0; i < MAXB * 5; i++) ids[i] = (i * 3 + step) % 10;
            assert_ok(gopt_net_forward_tokens(net, ids, MAXB, &logits));
        } else {
            float x[MAXB * 3 * 6 * 6];
            fill_pattern(x, MAXB * 3 * 6 * 6, 1.0f + (float)step);
            int64_t sh[4] = {MAXB, in->shape[0], in->shape[1], in->shape[2]};
            gopt_tensor xt;
            assert_ok(gopt_tensor_view(x, in->ndim + 1, sh, &xt));
            assert_ok(gopt_net_forward(net, &xt, &logits));
        }
        float dl[MAXB * 3];
        assert_int_equal(logits.numel, MAXB * 3);
        for (int i = 0; i < MAXB * 3; i++) dl[i] = logits.data[i] - (float)(i % 3 == step);
        gopt_tensor dt;
        assert_ok(gopt_tensor_view(dl, logits.ndim, logits.shape, &dt));
        assert_ok(gopt_net_backward(net, &dt));
        assert_ok(gopt_optim_step(opt));
        gopt_optim_zero_grad(opt);
    }
    gopt_optim_destroy(opt);
    const float *v = gopt_params_values(gopt_net_params(net));
    for (int64_t i = 0; i < gopt_params_numel(gopt_net_params(net)); i++) assert_true(isfinite(v[i]));
}

static inline void assert_same_params(gopt_net *a, gopt_net *b) {
    gopt_params *pa = gopt_net_params(a), *pb = gopt_net_params(b);
    assert_int_equal(gopt_params_count(pa), gopt_params_count(pb));
    assert_int_equal(gopt_params_numel(pa), gopt_params_numel(pb));
    for (int i = 0; i < gopt_params_count(pa); i++) {
        gopt_param_info ia, ib;
        assert_ok(gopt_params_info(pa, i, &ia));
        assert_ok(gopt_params_info(pb, i, &ib));
        assert_string_equal(ia.name, ib.name);
    }
    assert_memory_equal(gopt_params_values(pa), gopt_params_values(pb),
                        (size_t)gopt_params_numel(pa) * sizeof(float));
    size_t na = gopt_net_state_size(a), nb = gopt_net_state_size(b);
    assert_int_equal(na, nb);
    unsigned char *sa = malloc(na), *sb = malloc(nb);
    assert_ok(gopt_net_state_save(a, sa, na));
    assert_ok(gopt_net_state_save(b, sb, nb));
    assert_memory_equal(sa, sb, na);
    free(sa);
    free(sb);
}


static inline void build_image_net(gopt_net *net) {
    gopt_layer_config l[] = {
        gopt_layer_conv2d(3, 4, 3, 1, 1, 0),
        gopt_layer_batchnorm2d(4, 0),
        gopt_layer_config_default(GOPT_LAYER_RELU),
        gopt_layer_basic_block(4, 6, 2),
        gopt_layer_dropout(0.2f, 5),
        gopt_layer_config_default(GOPT_LAYER_GELU),
        gopt_layer_maxpool2d(2, 1, 0),
        gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL),
        gopt_layer_batchnorm1d(6),
        gopt_layer_residual_dense(6, GOPT_LAYER_TANH, 1),
        gopt_layer_config_default(GOPT_LAYER_SIGMOID),
        gopt_layer_linear(6, 3, 1),
    };
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++) assert_ok(gopt_net_add(net, &l[i], NULL));
    assert_ok(gopt_net_set_recompute(net, 0, 1));
}

static inline void setup_net_build(fx *f) {
    layer_spec s = spec_of(GOPT_LAYER_CONV2D);
    f->net = net_for(&s);
    build_image_net(f->net);
}

static inline void build_seq_net(gopt_net *net) {
    gopt_layer_config l[] = {
        gopt_layer_embedding(10, 4),
        gopt_layer_lstm(4, 6, 2, 1, 0.3f, 2),
        gopt_layer_gru(6, 5, 1, 1, 0.0f, 2),
        gopt_layer_rnn(5, 4, 2, GOPT_RNN_RELU, 0, 0.1f, 2),
        gopt_layer_config_default(GOPT_LAYER_FLATTEN),
        gopt_layer_linear(20, 3, 1),
    };
    for (size_t i = 0; i < sizeof l / sizeof l[0]; i++) assert_ok(gopt_net_add(net, &l[i], NULL));
}

static inline void setup_built_net(fx *f) {
    setup_net_build(f);
    assert_ok(gopt_net_build(f->net));
}

static inline int group_setup(void **state) {
    (void)state;
    install_counter();
    return 0;
}
static inline int group_teardown(void **state) {
    (void)state;
    gopt_set_allocator(NULL);
    if (atomic_load(&n_live) != 0) {
        fprintf(stderr, "%ld allocations still live at the end\n", atomic_load(&n_live));
        return -1;
    }
    printf("total: %d allocation sites failed in turn\n", total_sites);
    return 0;
}

#endif
