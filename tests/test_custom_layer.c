/* Custom layers (gradopt/custom_layer.h), through the public headers only (CMake builds this
 * file without the library's src/ on the include path): a per-feature affine layer
 *   y = x * scale[f] + shift[f],  (N,F) -> (N,F),
 * with a running mean of its input as state, defined here; finite-difference checks of its
 * input and parameter gradients alone and inside a net of linear layers; training with SGD;
 * the state round trip through gopt_net_state_save / _load; and the refusals (a shape the
 * setup refuses, a failing forward or backward, missing callbacks, bad state). */
#include <math.h>
#include <stdio.h>

#include "testutil.h"

/* ---- the layer ---------------------------------------------------------------------------- */

typedef struct affine_user {
    int fail_forward, fail_backward, silent_fail; /* refusal paths */
    int destroyed;                                /* destroy calls */
    int init_calls;
    int F;
    float running_mean[16]; /* state: mean of the inputs seen in training, per feature */
    uint64_t batches;
} affine_user;

#define AFFINE_MAGIC 0x41464631u /* "AFF1" */

static gopt_status affine_setup(gopt_custom *c, int in_ndim, const int64_t in_shape[], int64_t out_shape[3],
                                int *out_ndim) {
    (void)out_shape;
    (void)out_ndim; /* same shape */
    if (in_ndim != 1 || in_shape[0] > 16)
        return gopt_custom_fail(c, GOPT_ESHAPE, "needs (N,F) input with F <= 16, got %d dimensions", in_ndim);
    affine_user *u = gopt_custom_user(c);
    if (u) u->F = (int)in_shape[0];
    gopt_custom_init scale = {.kind = GOPT_CUSTOM_INIT_UNIFORM, .a = 0.5f, .b = 1.5f};
    gopt_custom_init shift = {.kind = GOPT_CUSTOM_INIT_NORMAL, .a = 0.0f, .b = 0.1f};
    int i0 = -1, i1 = -1;
    gopt_status s = gopt_custom_add_param(c, "scale", 1, in_shape, GOPT_TAG_WEIGHT, &scale, &i0);
    if (s == GOPT_OK) s = gopt_custom_add_param(c, "shift", 1, in_shape, GOPT_TAG_BIAS, &shift, &i1);
    if (s != GOPT_OK) return s;
    if (i0 != 0 || i1 != 1) return gopt_custom_fail(c, GOPT_EINVAL, "indices %d %d", i0, i1);
    return gopt_custom_request_buffer(c, 0);
}

static gopt_status affine_init(gopt_custom *c, gopt_rng *rng) {
    (void)rng;
    affine_user *u = gopt_custom_user(c);
    if (u) {
        u->init_calls++;
        for (int f = 0; f < 16; f++) u->running_mean[f] = 0.0f;
        u->batches = 0;
    }
    return GOPT_OK;
}

static gopt_status affine_forward(gopt_custom *c, const float *x, float *y, int n) {
    affine_user *u = gopt_custom_user(c);
    if (u && u->fail_forward) return u->silent_fail ? GOPT_ENONFINITE : gopt_custom_fail(c, GOPT_EINVAL, "asked to fail");
    gopt_tensor scale, shift;
    gopt_status s = gopt_custom_param(c, 0, &scale);
    if (s == GOPT_OK) s = gopt_custom_param(c, 1, &shift);
    if (s != GOPT_OK) return s;
    const int64_t F = scale.numel;
    for (int i = 0; i < n; i++)
        for (int64_t f = 0; f < F; f++) y[i * F + f] = x[i * F + f] * scale.data[f] + shift.data[f];
    if (u && gopt_custom_training(c)) {
        for (int64_t f = 0; f < F; f++) {
            double m = 0;
            for (int i = 0; i < n; i++) m += x[i * F + f];
            u->running_mean[f] = 0.9f * u->running_mean[f] + 0.1f * (float)(m / n);
        }
        u->batches++;
    }
    return GOPT_OK;
}

static gopt_status affine_backward(gopt_custom *c, const float *x, const float *dy, float *dx, int n) {
    affine_user *u = gopt_custom_user(c);
    if (u && u->fail_backward) return gopt_custom_fail(c, GOPT_ERANGE, "backward refused");
    gopt_tensor scale, dscale, dshift;
    gopt_status s = gopt_custom_param(c, 0, &scale);
    if (s == GOPT_OK) s = gopt_custom_grad(c, 0, &dscale);
    if (s == GOPT_OK) s = gopt_custom_grad(c, 1, &dshift);
    if (s != GOPT_OK) return s;
    const int64_t F = scale.numel;
    const int ls = gopt_custom_requires_grad(c, 0), lb = gopt_custom_requires_grad(c, 1);
    for (int i = 0; i < n; i++)
        for (int64_t f = 0; f < F; f++) {
            const float g = dy[i * F + f];
            if (ls) dscale.data[f] += g * x[i * F + f];
            if (lb) dshift.data[f] += g;
            if (dx) dx[i * F + f] = g * scale.data[f];
        }
    return GOPT_OK;
}

static double affine_flops(const gopt_custom *c) {
    int64_t in[3];
    gopt_custom_in_shape(c, in);
    return 2.0 * (double)in[0];
}

static size_t affine_state_size(const gopt_custom *c) {
    affine_user *u = gopt_custom_user(c);
    return 4 + 8 + sizeof(float) * (size_t)u->F;
}

static gopt_status affine_state_save(const gopt_custom *c, void *buf, size_t size) {
    affine_user *u = gopt_custom_user(c);
    if (size != affine_state_size(c)) return gopt_custom_fail(c, GOPT_EINVAL, "size %zu", size);
    unsigned char *p = buf;
    uint32_t magic = AFFINE_MAGIC;
    memcpy(p, &magic, 4);
    memcpy(p + 4, &u->batches, 8);
    memcpy(p + 12, u->running_mean, sizeof(float) * (size_t)u->F);
    return GOPT_OK;
}

static gopt_status affine_state_load(gopt_custom *c, const void *buf, size_t size) {
    affine_user *u = gopt_custom_user(c);
    const unsigned char *p = buf;
    uint32_t magic;
    memcpy(&magic, p, 4);
    if (size != affine_state_size(c) || magic != AFFINE_MAGIC)
        return gopt_custom_fail(c, GOPT_EFORMAT, "not an affine state (magic 0x%08x)", magic);
    memcpy(&u->batches, p + 4, 8);
    memcpy(u->running_mean, p + 12, sizeof(float) * (size_t)u->F);
    return GOPT_OK;
}

static void affine_destroy(void *user) { ((affine_user *)user)->destroyed++; }

static const gopt_custom_layer_ops affine_ops = {
    .name = "affine",
    .setup = affine_setup,
    .init = affine_init,
    .forward = affine_forward,
    .backward = affine_backward,
    .flops = affine_flops,
    .state_size = affine_state_size,
    .state_save = affine_state_save,
    .state_load = affine_state_load,
    .destroy = affine_destroy,
};

/* ---- helpers ---------------------------------------------------------------------------------- */

enum { B = 5, IN = 4, HID = 6, OUT = 3 };

/* linear(IN->HID) -> affine -> linear(HID->OUT) */
static gopt_net *make_net(affine_user *u, uint64_t seed, int max_batch) {
    gopt_net_config cfg = gopt_net_config_default();
    cfg.max_batch = max_batch;
    cfg.in_ndim = 1;
    cfg.in_shape[0] = IN;
    cfg.seed = seed;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&cfg, &net));
    gopt_layer_config l1 = gopt_layer_linear(IN, HID, 1), l2 = gopt_layer_linear(HID, OUT, 1);
    gopt_layer_config aff = gopt_layer_custom(&affine_ops, u);
    assert_ok(gopt_net_add(net, &l1, "fc1"));
    assert_ok(gopt_net_add(net, &aff, "aff"));
    assert_ok(gopt_net_add(net, &l2, "fc2"));
    assert_ok(gopt_net_build(net));
    return net;
}

/* L = sum(logits .* R) */
static double net_loss(gopt_net *net, const float *x, const float *R, int n) {
    gopt_tensor xt, logits;
    assert_ok(gopt_tensor_view((float *)x, 2, (const int64_t[]){n, IN}, &xt));
    assert_ok(gopt_net_forward(net, &xt, &logits));
    double L = 0;
    for (int64_t i = 0; i < logits.numel; i++) L += (double)logits.data[i] * R[i];
    return L;
}

static void check_close(double analytic, double numeric, const char *what, int i) {
    double tol = 2e-3 + 2e-3 * fabs(numeric);
    if (fabs(analytic - numeric) > tol)
        fail_msg("%s[%d]: analytic %.6g, finite difference %.6g", what, i, analytic, numeric);
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* The layer alone: dx and the parameter gradients against central differences. */
static void test_standalone_gradcheck(void **state) {
    (void)state;
    affine_user u = {0};
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    gopt_layer *l = NULL;
    gopt_layer_config cfg = gopt_layer_custom(&affine_ops, &u);
    assert_ok(gopt_layer_create(&cfg, 1, (const int64_t[]){HID}, B, p, "aff", &l));
    assert_int_equal(gopt_layer_get_type(l), GOPT_LAYER_CUSTOM);
    assert_string_equal(gopt_layer_label(l), "affine");
    assert_string_equal(gopt_layer_label(NULL), "unknown");
    assert_int_equal(gopt_params_count(p), 2);
    gopt_param_info info;
    assert_ok(gopt_params_info(p, 1, &info));
    assert_string_equal(info.name, "aff.shift");
    assert_int_equal(info.tag, GOPT_TAG_BIAS);
    assert_ok(gopt_params_finalize(p));
    gopt_rng rng;
    gopt_rng_seed(&rng, 3);
    assert_ok(gopt_layer_init_params(l, GOPT_INIT_TORCH_DEFAULT, &rng));
    assert_int_equal(u.init_calls, 1);
    float *v = gopt_params_values(p);
    for (int f = 0; f < HID; f++) assert_true(v[f] >= 0.5f && v[f] <= 1.5f); /* UNIFORM(0.5, 1.5) */

    float x[B * HID], R[B * HID], dyb[B * HID], dxb[B * HID];
    testutil_fill_normal(x, B * HID, 11);
    testutil_fill_normal(R, B * HID, 12);
    gopt_tensor xt, y, dy, dx;
    assert_ok(gopt_tensor_view(x, 2, (const int64_t[]){B, HID}, &xt));
    assert_ok(gopt_layer_forward(l, &xt, &y));
    memcpy(dyb, R, sizeof dyb);
    assert_ok(gopt_tensor_view(dyb, 2, (const int64_t[]){B, HID}, &dy));
    assert_ok(gopt_tensor_view(dxb, 2, (const int64_t[]){B, HID}, &dx));
    gopt_params_zero_grad(p);
    assert_ok(gopt_layer_backward(l, &xt, &dy, &dx));
    const float eps = 1e-2f;
    for (int i = 0; i < B * HID; i++) { /* dL/dx, L = sum(y .* R) */
        double Lp, Lm;
        float keep = x[i];
        x[i] = keep + eps;
        assert_ok(gopt_layer_forward(l, &xt, &y));
        Lp = 0;
        for (int j = 0; j < B * HID; j++) Lp += (double)y.data[j] * R[j];
        x[i] = keep - eps;
        assert_ok(gopt_layer_forward(l, &xt, &y));
        Lm = 0;
        for (int j = 0; j < B * HID; j++) Lm += (double)y.data[j] * R[j];
        x[i] = keep;
        check_close(dxb[i], (Lp - Lm) / (2 * eps), "dx", i);
    }
    const float *g = gopt_params_grads(p);
    for (int i = 0; i < 2 * HID; i++) {
        double Lp, Lm;
        float keep = v[i];
        v[i] = keep + eps;
        assert_ok(gopt_layer_forward(l, &xt, &y));
        Lp = 0;
        for (int j = 0; j < B * HID; j++) Lp += (double)y.data[j] * R[j];
        v[i] = keep - eps;
        assert_ok(gopt_layer_forward(l, &xt, &y));
        Lm = 0;
        for (int j = 0; j < B * HID; j++) Lm += (double)y.data[j] * R[j];
        v[i] = keep;
        check_close(g[i], (Lp - Lm) / (2 * eps), "dparam", i);
    }
    /* dx may be x's own buffer: the layer hands the callback a separate one */
    float xcopy[B * HID];
    memcpy(xcopy, x, sizeof xcopy);
    assert_ok(gopt_layer_forward(l, &xt, &y));
    memcpy(dyb, R, sizeof dyb);
    assert_ok(gopt_layer_backward(l, &xt, &dy, &xt));
    for (int i = 0; i < B * HID; i++) assert_float_equal(x[i], dxb[i], 0.0f);
    (void)xcopy;
    gopt_layer_destroy(l);
    assert_int_equal(u.destroyed, 1);
    gopt_params_destroy(p);
}

/* Inside a net: every parameter (the first linear's through the custom layer's dx). */
static void test_net_gradcheck(void **state) {
    (void)state;
    affine_user u = {0};
    gopt_net *net = make_net(&u, 5, B);
    gopt_params *p = gopt_net_params(net);
    assert_int_equal(gopt_params_count(p), 6);
    assert_string_equal(gopt_layer_label(gopt_net_layer(net, 0)), "linear");
    assert_string_equal(gopt_layer_label(gopt_net_layer(net, 1)), "affine");
    int idx;
    assert_ok(gopt_params_find(p, "aff.scale", &idx));
    assert_int_equal(idx, 2);
    float x[B * IN], R[B * OUT];
    testutil_fill_normal(x, B * IN, 21);
    testutil_fill_normal(R, B * OUT, 22);
    gopt_net_set_training(net, 0); /* the running mean does not change the output, but keep it still */
    net_loss(net, x, R, B);
    gopt_tensor dl;
    assert_ok(gopt_tensor_view(R, 2, (const int64_t[]){B, OUT}, &dl));
    gopt_params_zero_grad(p);
    assert_ok(gopt_net_backward(net, &dl));
    const int64_t n = gopt_params_numel(p);
    float *g = malloc(sizeof(float) * (size_t)n);
    memcpy(g, gopt_params_grads(p), sizeof(float) * (size_t)n);
    float *v = gopt_params_values(p);
    const float eps = 1e-2f;
    for (int64_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + eps;
        double Lp = net_loss(net, x, R, B);
        v[i] = keep - eps;
        double Lm = net_loss(net, x, R, B);
        v[i] = keep;
        check_close(g[i], (Lp - Lm) / (2 * eps), "net dparam", (int)i);
    }
    free(g);
    /* FLOPs: the custom layer's callback is counted */
    double f = gopt_net_forward_flops(net);
    assert_true(fabs(f - (2.0 * IN * HID + 2.0 * HID + 2.0 * HID * OUT)) < 1e-9);
    gopt_net_destroy(net);
    assert_int_equal(u.destroyed, 1);
}

/* Regression y = x A (fixed A), MSE, SGD: the loss falls. */
static void test_trains(void **state) {
    (void)state;
    enum { N = 32 };
    affine_user u = {0};
    gopt_net *net = make_net(&u, 7, N);
    gopt_params *p = gopt_net_params(net);
    float x[N * IN], A[IN * OUT], t[N * OUT], d[N * OUT];
    testutil_fill_normal(x, N * IN, 31);
    testutil_fill_normal(A, IN * OUT, 32);
    for (int i = 0; i < N; i++)
        for (int o = 0; o < OUT; o++) {
            double s = 0;
            for (int k = 0; k < IN; k++) s += x[i * IN + k] * A[k * OUT + o];
            t[i * OUT + o] = (float)s;
        }
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.05f;
    oc.momentum = 0.9f;
    gopt_optim *opt = NULL;
    assert_ok(gopt_optim_create(&oc, p, &opt));
    gopt_param_info scale0;
    assert_ok(gopt_params_info(p, 2, &scale0));
    float scale_before = scale0.value.data[0];
    double first = 0, last = 0;
    for (int step = 0; step < 200; step++) {
        gopt_tensor xt, logits, dl;
        assert_ok(gopt_tensor_view(x, 2, (const int64_t[]){N, IN}, &xt));
        assert_ok(gopt_net_forward(net, &xt, &logits));
        double L = 0;
        for (int i = 0; i < N * OUT; i++) {
            double e = logits.data[i] - t[i];
            L += e * e / (N * OUT);
            d[i] = (float)(2 * e / (N * OUT));
        }
        if (step == 0) first = L;
        last = L;
        assert_ok(gopt_tensor_view(d, 2, (const int64_t[]){N, OUT}, &dl));
        gopt_optim_zero_grad(opt);
        assert_ok(gopt_net_backward(net, &dl));
        assert_ok(gopt_optim_step(opt));
    }
    assert_true(last < 0.05 * first);
    assert_true(scale0.value.data[0] != scale_before); /* the custom layer's parameters trained too */
    assert_int_equal(u.batches, 200);
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
}

/* The same seed gives the same parameters (init draws from the net's stream), another seed others. */
static void test_init_reproducible(void **state) {
    (void)state;
    affine_user u1 = {0}, u2 = {0}, u3 = {0};
    gopt_net *a = make_net(&u1, 9, 4), *b = make_net(&u2, 9, 4), *c = make_net(&u3, 10, 4);
    const int64_t n = gopt_params_numel(gopt_net_params(a));
    assert_memory_equal(gopt_params_values(gopt_net_params(a)), gopt_params_values(gopt_net_params(b)),
                        sizeof(float) * (size_t)n);
    gopt_param_info ia, ic;
    assert_ok(gopt_params_info(gopt_net_params(a), 2, &ia));
    assert_ok(gopt_params_info(gopt_net_params(c), 2, &ic));
    assert_true(memcmp(ia.value.data, ic.value.data, sizeof(float) * HID) != 0);
    gopt_net_destroy(a);
    gopt_net_destroy(b);
    gopt_net_destroy(c);
}

/* gopt_net_state_save keeps the custom layer's state; a bad one is refused with its message. */
static void test_state_round_trip(void **state) {
    (void)state;
    affine_user u1 = {0}, u2 = {0};
    gopt_net *a = make_net(&u1, 1, B), *b = make_net(&u2, 2, B);
    float x[B * IN], R[B * OUT];
    testutil_fill_normal(x, B * IN, 41);
    testutil_fill_normal(R, B * OUT, 42);
    for (int i = 0; i < 3; i++) net_loss(a, x, R, B);
    assert_int_equal(u1.batches, 3);
    size_t size = gopt_net_state_size(a);
    assert_int_equal(size, gopt_net_state_size(b));
    unsigned char *buf = malloc(size);
    assert_ok(gopt_net_state_save(a, buf, size));
    assert_ok(gopt_net_state_load(b, buf, size));
    assert_int_equal(u2.batches, 3);
    assert_memory_equal(u2.running_mean, u1.running_mean, sizeof(float) * HID);
    /* the layer's own check: its magic is the last section's first word */
    size_t at = size - (4 + 8 + sizeof(float) * HID);
    buf[at] ^= 0x5a;
    u2.batches = 77;
    assert_status(gopt_net_state_load(b, buf, size), GOPT_EFORMAT, "'aff' (affine) state_load: not an affine state");
    assert_int_equal(u2.batches, 77);
    buf[at] ^= 0x5a;
    /* truncated: the net names the layer before calling it */
    assert_status(gopt_net_state_load(b, buf, size - 4), GOPT_EFORMAT, "layer 1 (custom)");
    free(buf);
    gopt_net_destroy(a);
    gopt_net_destroy(b);
}

/* A shape the setup refuses: its status and message; the arena is as it was; no destroy. */
static void test_setup_refuses(void **state) {
    (void)state;
    affine_user u = {0};
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    gopt_layer *l = NULL;
    gopt_layer_config cfg = gopt_layer_custom(&affine_ops, &u);
    assert_status(gopt_layer_create(&cfg, 3, (const int64_t[]){2, 3, 3}, 4, p, "aff", &l), GOPT_ESHAPE,
                  "custom layer 'aff' (affine) setup: needs (N,F) input with F <= 16, got 3 dimensions");
    assert_null(l);
    assert_int_equal(gopt_params_count(p), 0);
    assert_int_equal(u.destroyed, 0);
    /* in a net, through gopt_net_add */
    gopt_net_config nc = gopt_net_config_default();
    nc.in_ndim = 1;
    nc.in_shape[0] = 20;
    nc.max_batch = 2;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&nc, &net));
    assert_status(gopt_net_add(net, &cfg, "big"), GOPT_ESHAPE, "F <= 16");
    gopt_net_destroy(net);
    /* missing callbacks, half the state callbacks */
    gopt_custom_layer_ops no_fwd = affine_ops;
    no_fwd.forward = NULL;
    cfg = gopt_layer_custom(&no_fwd, &u);
    assert_status(gopt_layer_create(&cfg, 1, (const int64_t[]){4}, 4, p, "aff", &l), GOPT_EINVAL, "ops.forward is NULL");
    gopt_custom_layer_ops half = affine_ops;
    half.state_load = NULL;
    cfg = gopt_layer_custom(&half, &u);
    assert_status(gopt_layer_create(&cfg, 1, (const int64_t[]){4}, 4, p, "aff", &l), GOPT_EINVAL, "go together");
    cfg = gopt_layer_custom(NULL, NULL);
    assert_status(gopt_layer_create(&cfg, 1, (const int64_t[]){4}, 4, p, "aff", &l), GOPT_EINVAL, "ops");
    assert_int_equal(gopt_params_count(p), 0);
    assert_int_equal(u.destroyed, 0);
    gopt_params_destroy(p);
}

/* A failing forward or backward stops the net there with the user's message. */
static void test_callback_failures(void **state) {
    (void)state;
    affine_user u = {0};
    gopt_net *net = make_net(&u, 3, B);
    float x[B * IN], R[B * OUT];
    testutil_fill_normal(x, B * IN, 51);
    testutil_fill_normal(R, B * OUT, 52);
    gopt_tensor xt, logits, dl;
    assert_ok(gopt_tensor_view(x, 2, (const int64_t[]){B, IN}, &xt));
    assert_ok(gopt_tensor_view(R, 2, (const int64_t[]){B, OUT}, &dl));
    u.fail_forward = 1;
    assert_status(gopt_net_forward(net, &xt, &logits), GOPT_EINVAL, "custom layer 'aff' (affine) forward: asked to fail");
    assert_status(gopt_net_backward(net, &dl), GOPT_ESTATE, "backward before forward");
    u.silent_fail = 1; /* no message from the user: the library says so */
    assert_status(gopt_net_forward(net, &xt, &logits), GOPT_ENONFINITE, "returned non-finite value without a message");
    u.fail_forward = 0;
    assert_ok(gopt_net_forward(net, &xt, &logits));
    u.fail_backward = 1;
    assert_status(gopt_net_backward(net, &dl), GOPT_ERANGE, "'aff' (affine) backward: backward refused");
    u.fail_backward = 0;
    assert_ok(gopt_net_forward(net, &xt, &logits));
    assert_ok(gopt_net_backward(net, &dl));
    gopt_net_destroy(net);
}

/* Registration outside setup, bad inits; a frozen custom parameter reads requires_grad 0. */
static gopt_custom *saved_handle;
static gopt_status bad_setup(gopt_custom *c, int in_ndim, const int64_t in_shape[], int64_t out_shape[3],
                             int *out_ndim) {
    (void)in_ndim;
    saved_handle = c;
    out_shape[0] = 2 * in_shape[0]; /* another output shape */
    *out_ndim = 1;
    gopt_custom_init bad = {.kind = GOPT_CUSTOM_INIT_UNIFORM, .a = 2.0f, .b = 1.0f};
    gopt_status s = gopt_custom_add_param(c, "w", 1, in_shape, GOPT_TAG_WEIGHT, &bad, NULL);
    if (s != GOPT_EINVAL) return gopt_custom_fail(c, GOPT_EINVAL, "uniform(2,1) accepted");
    gopt_custom_init scheme = {.kind = GOPT_CUSTOM_INIT_SCHEME, .scheme = GOPT_INIT_HE_NORMAL};
    s = gopt_custom_add_param(c, "w", 1, in_shape, GOPT_TAG_WEIGHT, &scheme, NULL);
    if (s != GOPT_ESHAPE) return gopt_custom_fail(c, GOPT_EINVAL, "1-D scheme accepted");
    int64_t shape2[2] = {out_shape[0], in_shape[0]};
    return gopt_custom_add_param(c, "w", 2, shape2, GOPT_TAG_WEIGHT, &scheme, NULL);
}
static gopt_status dup_forward(gopt_custom *c, const float *x, float *y, int n) {
    int64_t in[3];
    gopt_custom_in_shape(c, in);
    for (int i = 0; i < n; i++)
        for (int64_t f = 0; f < in[0]; f++) y[i * 2 * in[0] + f] = y[i * 2 * in[0] + in[0] + f] = x[i * in[0] + f];
    return GOPT_OK;
}
static gopt_status dup_backward(gopt_custom *c, const float *x, const float *dy, float *dx, int n) {
    (void)x;
    int64_t in[3];
    gopt_custom_in_shape(c, in);
    for (int i = 0; dx && i < n; i++)
        for (int64_t f = 0; f < in[0]; f++) dx[i * in[0] + f] = dy[i * 2 * in[0] + f] + dy[i * 2 * in[0] + in[0] + f];
    return GOPT_OK;
}
static const gopt_custom_layer_ops dup_ops = {.name = "dup", .setup = bad_setup, .forward = dup_forward,
                                              .backward = dup_backward};

static void test_registration_rules(void **state) {
    (void)state;
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    gopt_layer *l = NULL;
    gopt_layer_config cfg = gopt_layer_custom(&dup_ops, NULL);
    assert_ok(gopt_layer_create(&cfg, 1, (const int64_t[]){3}, 2, p, "dup", &l));
    int64_t out[3];
    assert_int_equal(gopt_layer_out_shape(l, out), 1);
    assert_int_equal(out[0], 6);
    assert_int_equal(gopt_custom_param_count(saved_handle), 1);
    assert_status(gopt_custom_add_param(saved_handle, "late", 1, (const int64_t[]){2}, GOPT_TAG_BIAS, NULL, NULL),
                  GOPT_ESTATE, "setup only");
    gopt_tensor t;
    assert_status(gopt_custom_param(saved_handle, 0, &t), GOPT_ESTATE, "not finalized");
    assert_ok(gopt_params_finalize(p));
    assert_ok(gopt_custom_param(saved_handle, 0, &t));
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.shape[0], 6);
    assert_status(gopt_custom_grad(saved_handle, 1, &t), GOPT_ERANGE, "outside");
    assert_string_equal(gopt_custom_name(saved_handle), "dup");
    assert_int_equal(gopt_custom_requires_grad(saved_handle, 0), 1);
    assert_ok(gopt_layer_set_frozen(l, 1));
    assert_int_equal(gopt_custom_requires_grad(saved_handle, 0), 0);
    assert_int_equal(gopt_layer_is_frozen(l), 1);
    assert_ok(gopt_layer_set_frozen(l, 0));
    assert_int_equal(gopt_custom_requires_grad(saved_handle, 0), 1);
    gopt_layer_destroy(l);
    gopt_params_destroy(p);
}

/* Out of memory at every allocation of a custom layer's create and of a net holding one:
 * a status, the arena as it was, no destroy of the user's data, no leak (ASan). */
static void test_out_of_memory(void **state) {
    (void)state;
    int succeeded = 0;
    for (long budget = 0; budget < 200 && !succeeded; budget++) {
        affine_user u = {0};
        gopt_params *p = NULL;
        assert_ok(gopt_params_create(&p));
        gopt_layer *l = NULL;
        gopt_layer_config cfg = gopt_layer_custom(&affine_ops, &u);
        testutil_fail_after(budget);
        gopt_status s = gopt_layer_create(&cfg, 1, (const int64_t[]){HID}, B, p, "aff", &l);
        testutil_alloc_reset();
        if (s == GOPT_OK) {
            succeeded = 1;
            gopt_layer_destroy(l);
            assert_int_equal(u.destroyed, 1);
        } else {
            assert_int_equal(s, GOPT_ENOMEM);
            assert_null(l);
            assert_int_equal(gopt_params_count(p), 0);
            assert_int_equal(u.destroyed, 0);
        }
        gopt_params_destroy(p);
    }
    assert_true(succeeded);
    succeeded = 0;
    for (long budget = 0; budget < 400 && !succeeded; budget++) {
        affine_user u = {0};
        gopt_net_config cfg = gopt_net_config_default();
        cfg.max_batch = B;
        cfg.in_ndim = 1;
        cfg.in_shape[0] = IN;
        gopt_net *net = NULL;
        assert_ok(gopt_net_create(&cfg, &net));
        gopt_layer_config l1 = gopt_layer_linear(IN, HID, 1), aff = gopt_layer_custom(&affine_ops, &u);
        assert_ok(gopt_net_add(net, &l1, "fc1"));
        testutil_fail_after(budget);
        gopt_status s = gopt_net_add(net, &aff, "aff");
        const int added = s == GOPT_OK; /* then the net owns the layer, built or not */
        if (s == GOPT_OK) s = gopt_net_build(net);
        testutil_alloc_reset();
        if (s == GOPT_OK) succeeded = 1;
        else assert_int_equal(s, GOPT_ENOMEM);
        gopt_net_destroy(net);
        assert_int_equal(u.destroyed, added);
    }
    assert_true(succeeded);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standalone_gradcheck), cmocka_unit_test(test_net_gradcheck),
        cmocka_unit_test(test_trains),               cmocka_unit_test(test_init_reproducible),
        cmocka_unit_test(test_state_round_trip),     cmocka_unit_test(test_setup_refuses),
        cmocka_unit_test(test_callback_failures),    cmocka_unit_test(test_registration_rules),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
