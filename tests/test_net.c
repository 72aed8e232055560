/* Nets: ResNet parameter counts, a whole-net finite-difference check, batches below the
 * maximum, determinism, BN state save/load, timing counters, errors. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "testutil.h"

#include <math.h>
#include <stdio.h>

static gopt_net *resnet(int depth, float width, int max_batch, uint64_t seed) {
    gopt_resnet_config c = gopt_resnet_config_default();
    c.depth = depth;
    c.width = width;
    c.max_batch = max_batch;
    c.seed = seed;
    gopt_net *net;
    assert_ok(gopt_resnet_cifar(&c, &net));
    return net;
}

static void test_resnet_param_counts(void **state) {
    (void)state;
    gopt_net *net = resnet(20, 1.0f, 2, 0);
    assert_int_equal(gopt_params_numel(gopt_net_params(net)), 272474); /* torch's count */
    int64_t os[3];
    assert_int_equal(gopt_net_out_shape(net, os), 1);
    assert_int_equal(os[0], 10);
    /* FLOPs: ResNet-20 is ~41 M multiply-adds per image */
    double f = gopt_net_forward_flops(net);
    assert_true(f > 2 * 40e6 && f < 2 * 42e6);
    gopt_net_destroy(net);
    net = resnet(8, 1.0f, 1, 0);
    assert_int_equal(gopt_params_numel(gopt_net_params(net)), 78042);
    gopt_net_destroy(net);
    net = resnet(56, 1.0f, 1, 0);
    assert_int_equal(gopt_params_numel(gopt_net_params(net)), 855770);
    gopt_net_destroy(net);
    gopt_resnet_config c = gopt_resnet_config_default();
    c.depth = 21;
    assert_status(gopt_resnet_cifar(&c, &net), GOPT_EINVAL, "6n+2");
    c.depth = 20;
    c.width = 0.0f;
    assert_status(gopt_resnet_cifar(&c, &net), GOPT_EINVAL, "width");
}

static float net_loss(gopt_net *net, const gopt_tensor *x, const int32_t *y) {
    gopt_tensor logits;
    assert_ok(gopt_net_forward(net, x, &logits));
    float loss;
    assert_ok(gopt_loss_cross_entropy(&logits, y, 0.0f, &loss, NULL));
    return loss;
}

static void test_net_finite_difference(void **state) {
    (void)state;
    gopt_net *net = resnet(8, 0.25f, 2, 11); /* widths 4, 8, 16 */
    gopt_params *p = gopt_net_params(net);
    gopt_rng rng;
    gopt_rng_seed(&rng, 5);
    float *x = malloc(sizeof(float) * 2 * 3 * 32 * 32);
    for (int i = 0; i < 2 * 3 * 32 * 32; i++) x[i] = gopt_rng_normal(&rng);
    int64_t xs[4] = {2, 3, 32, 32};
    gopt_tensor tx, logits, dl;
    assert_ok(gopt_tensor_view(x, 4, xs, &tx));
    int32_t y[2] = {3, 7};
    float dbuf[20];
    int64_t ls[2] = {2, 10};
    assert_ok(gopt_tensor_view(dbuf, 2, ls, &dl));
    assert_ok(gopt_net_forward(net, &tx, &logits));
    float loss;
    assert_ok(gopt_loss_cross_entropy(&logits, y, 0.0f, &loss, &dl));
    gopt_params_zero_grad(p);
    assert_ok(gopt_net_backward(net, &dl));
    int64_t n = gopt_params_numel(p);
    float *v = gopt_params_values(p);
    const float *g = gopt_params_grads(p);
    int checked = 0;
    for (int t = 0; t < gopt_params_count(p); t++) {
        gopt_param_info info;
        assert_ok(gopt_params_info(p, t, &info));
        for (int k = 0; k < 2; k++) { /* two coordinates of every tensor */
            int64_t i = info.offset + (k * 7919) % info.value.numel;
            int ok = 0;
            double num = 0.0;
            for (float h = 1e-2f; !ok && h > 1e-4f; h /= 4) {
                float keep = v[i];
                v[i] = keep + h;
                double lp = net_loss(net, &tx, y);
                v[i] = keep - h;
                double lm = net_loss(net, &tx, y);
                v[i] = keep;
                num = (lp - lm) / (2.0 * h);
                ok = fabs(num - g[i]) <= 2e-3 + 5e-2 * fabs(num);
            }
            if (!ok) fail_msg("%s[%lld]: finite difference %.6g, analytic %.6g", info.name,
                              (long long)(i - info.offset), num, (double)g[i]);
            checked++;
        }
    }
    assert_true(checked >= 40);
    assert_true(n > 0);
    free(x);
    gopt_net_destroy(net);
}

static void test_small_batch_and_determinism(void **state) {
    (void)state;
    gopt_net *a = resnet(8, 0.5f, 4, 7), *b = resnet(8, 0.5f, 4, 7);
    assert_memory_equal(gopt_params_values(gopt_net_params(a)), gopt_params_values(gopt_net_params(b)),
                        sizeof(float) * (size_t)gopt_params_numel(gopt_net_params(a)));
    gopt_rng rng;
    gopt_rng_seed(&rng, 1);
    float *x = malloc(sizeof(float) * 4 * 3 * 32 * 32);
    for (int i = 0; i < 4 * 3 * 32 * 32; i++) x[i] = gopt_rng_normal(&rng);
    int64_t s4[4] = {4, 3, 32, 32}, s1[4] = {1, 3, 32, 32};
    gopt_tensor x4, x1, la, lb;
    assert_ok(gopt_tensor_view(x, 4, s4, &x4));
    assert_ok(gopt_tensor_view(x, 4, s1, &x1));
    /* eval mode: a sample's logits do not depend on the rest of the batch */
    gopt_net_set_training(a, 0);
    gopt_net_set_training(b, 0);
    assert_ok(gopt_net_forward(a, &x4, &la));
    assert_int_equal(la.shape[0], 4);
    assert_ok(gopt_net_forward(b, &x1, &lb));
    assert_int_equal(lb.shape[0], 1);
    for (int i = 0; i < 10; i++) assert_float_equal(la.data[i], lb.data[i], 1e-4);
    /* training step: identical across the two nets, bit for bit */
    gopt_net_set_training(a, 1);
    gopt_net_set_training(b, 1);
    float d[40];
    for (int i = 0; i < 40; i++) d[i] = 0.01f * (float)(i % 7);
    int64_t ds[2] = {4, 10};
    gopt_tensor td;
    assert_ok(gopt_tensor_view(d, 2, ds, &td));
    gopt_net *nets[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        gopt_params_zero_grad(gopt_net_params(nets[k]));
        assert_ok(gopt_net_forward(nets[k], &x4, &la));
        assert_ok(gopt_net_backward(nets[k], &td));
    }
    assert_memory_equal(gopt_params_grads(gopt_net_params(a)), gopt_params_grads(gopt_net_params(b)),
                        sizeof(float) * (size_t)gopt_params_numel(gopt_net_params(a)));
    /* batch of 3 after a batch of 4 works */
    int64_t s3[4] = {3, 3, 32, 32}, d3s[2] = {3, 10};
    gopt_tensor x3, d3;
    assert_ok(gopt_tensor_view(x, 4, s3, &x3));
    assert_ok(gopt_tensor_view(d, 2, d3s, &d3));
    assert_ok(gopt_net_forward(a, &x3, &la));
    assert_ok(gopt_net_backward(a, &d3));
    for (int64_t i = 0; i < gopt_params_numel(gopt_net_params(a)); i++)
        assert_true(isfinite(gopt_params_grads(gopt_net_params(a))[i]));
    /* the backward of a batch of 3 refuses a dlogits of 2 rows and reads the first 3 of 4
     * (a buffer allocated at max_batch serves a short last batch), as d3 does */
    int64_t d2s[2] = {2, 10};
    gopt_tensor d2;
    assert_ok(gopt_tensor_view(d, 2, d2s, &d2));
    assert_ok(gopt_net_forward(a, &x3, &la));
    assert_status(gopt_net_backward(a, &d2), GOPT_ESHAPE, "(2,10)");
    testutil_check_detail("(3,10)");
    const int64_t np = gopt_params_numel(gopt_net_params(a));
    float *g3 = malloc(sizeof(float) * (size_t)np);
    assert_non_null(g3);
    gopt_params_zero_grad(gopt_net_params(a));
    assert_ok(gopt_net_backward(a, &d3));
    memcpy(g3, gopt_params_grads(gopt_net_params(a)), sizeof(float) * (size_t)np);
    gopt_params_zero_grad(gopt_net_params(a));
    assert_ok(gopt_net_forward(a, &x3, &la));
    assert_ok(gopt_net_backward(a, &td));
    assert_memory_equal(g3, gopt_params_grads(gopt_net_params(a)), sizeof(float) * (size_t)np);
    free(g3);
    free(x);
    gopt_net_destroy(a);
    gopt_net_destroy(b);
}

/* The default convolution paths (AVX-512 kernels where the CPU has them, else Winograd
 * F(4x4,3x3) for the 3x3 stride-1 layers) against the im2col + BLAS path (GOPT_CONV_GENERIC=1
 * at creation): ResNet-14s whose first-stage blocks recompute conv2 in backward, with
 * in-place gradients; then thread counts (same count: same bits).
 * The gradients are compared by their L2 distance over the whole arena: at batch 3 a
 * pre-activation within rounding of 0 flips its relu mask between two paths (Winograd's
 * rounding differs from SGEMM's by ~1e-6), and through batchnorm's batch coupling one flip
 * moves every gradient slightly (measured: 1-2% of a tensor's largest element, 3e-3 of the
 * arena's norm); a wrong kernel moves them by their own size. */
static void grads_close(gopt_net *a, gopt_net *b, double rel) {
    const float *ga = gopt_params_grads(gopt_net_params(a)), *gb = gopt_params_grads(gopt_net_params(b));
    int64_t n = gopt_params_numel(gopt_net_params(a));
    double d2 = 0.0, b2 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        d2 += ((double)ga[i] - gb[i]) * ((double)ga[i] - gb[i]);
        b2 += (double)gb[i] * gb[i];
    }
    assert_true(b2 > 0.0);
    if (!(sqrt(d2 / b2) <= rel)) fail_msg("gradients differ: |a - b| / |b| = %g > %g", sqrt(d2 / b2), rel);
}

static void train_step(gopt_net *net, const gopt_tensor *x, const int32_t *y, float *logits_out) {
    gopt_tensor l, dl;
    float d[3 * 10], loss;
    int64_t ds[2] = {3, 10};
    assert_ok(gopt_tensor_view(d, 2, ds, &dl));
    gopt_params_zero_grad(gopt_net_params(net));
    assert_ok(gopt_net_forward(net, x, &l));
    memcpy(logits_out, l.data, sizeof(float) * 30);
    assert_ok(gopt_loss_cross_entropy(&l, y, 0.0f, &loss, &dl));
    assert_ok(gopt_net_backward(net, &dl));
    /* backward consumed the activations: a second one needs a new forward */
    assert_status(gopt_net_backward(net, &dl), GOPT_ESTATE, "already ran");
    for (int i = 0; i < 30; i++) assert_true(l.data[i] == logits_out[i]); /* logits intact */
}

static void kernels_agree(float width) {
    int threads = gopt_get_threads();
    gopt_net *fast = resnet(14, width, 3, 11);
    setenv("GOPT_CONV_GENERIC", "1", 1);
    gopt_net *generic = resnet(14, width, 3, 11);
    unsetenv("GOPT_CONV_GENERIC");
    gopt_rng rng;
    gopt_rng_seed(&rng, 5);
    float *x = malloc(sizeof(float) * 3 * 3 * 32 * 32);
    for (int i = 0; i < 3 * 3 * 32 * 32; i++) x[i] = gopt_rng_normal(&rng);
    int64_t xs[4] = {3, 3, 32, 32};
    gopt_tensor tx;
    assert_ok(gopt_tensor_view(x, 4, xs, &tx));
    int32_t y[3] = {1, 7, 3};
    float la[30], lb[30], lc[30];
    train_step(fast, &tx, y, la);
    train_step(generic, &tx, y, lb);
    for (int i = 0; i < 30; i++) assert_float_equal(la[i], lb[i], 1e-4 + 1e-4 * fabs(lb[i]));
    grads_close(fast, generic, 5e-2);
    /* one thread: same values up to rounding; two threads again: the same bits as before */
    gopt_net *one = resnet(14, width, 3, 11);
    gopt_set_threads(1);
    train_step(one, &tx, y, lc);
    for (int i = 0; i < 30; i++) assert_float_equal(la[i], lc[i], 1e-4 + 1e-4 * fabs(la[i]));
    grads_close(one, fast, 5e-2);
    gopt_set_threads(2);
    gopt_net *two = resnet(14, width, 3, 11), *two_b = resnet(14, width, 3, 11);
    train_step(two, &tx, y, la);
    train_step(two_b, &tx, y, lb);
    assert_memory_equal(la, lb, sizeof la);
    assert_memory_equal(gopt_params_grads(gopt_net_params(two)), gopt_params_grads(gopt_net_params(two_b)),
                        sizeof(float) * (size_t)gopt_params_numel(gopt_net_params(two)));
    gopt_set_threads(threads);
    free(x);
    gopt_net_destroy(fast);
    gopt_net_destroy(generic);
    gopt_net_destroy(one);
    gopt_net_destroy(two);
    gopt_net_destroy(two_b);
}

/* widths 0.75 and 1: channels 12/24/48 and 16/32/64 (every register-tile width) */
static void test_kernels_agree(void **state) {
    (void)state;
    kernels_agree(0.75f);
    kernels_agree(1.0f);
}

static void test_state_and_timing(void **state) {
    (void)state;
    gopt_net *a = resnet(8, 0.25f, 2, 3), *b = resnet(8, 0.25f, 2, 3);
    float x[2 * 3 * 32 * 32];
    for (int i = 0; i < 2 * 3 * 32 * 32; i++) x[i] = (float)((i * 37) % 11) - 5.0f;
    int64_t s[4] = {2, 3, 32, 32};
    gopt_tensor tx, l;
    assert_ok(gopt_tensor_view(x, 4, s, &tx));
    gopt_net_set_timing(a, 1);
    assert_ok(gopt_net_forward(a, &tx, &l)); /* updates a's running stats */
    gopt_net_timing timing;
    gopt_net_timing_get(a, &timing);
    assert_true(timing.forward_s[GOPT_LAYER_CONV2D] > 0.0);
    assert_true(timing.calls[GOPT_LAYER_BASIC_BLOCK] == 3);
    gopt_net_timing_reset(a);
    gopt_net_timing_get(a, &timing);
    assert_true(timing.forward_s[GOPT_LAYER_CONV2D] == 0.0);
    size_t size = gopt_net_state_size(a);
    unsigned char *buf = malloc(size);
    assert_status(gopt_net_state_save(a, buf, size - 1), GOPT_EINVAL, "bytes");
    assert_ok(gopt_net_state_save(a, buf, size));
    gopt_net_set_training(a, 0);
    gopt_net_set_training(b, 0);
    float la[20];
    assert_ok(gopt_net_forward(a, &tx, &l));
    memcpy(la, l.data, sizeof la);
    assert_ok(gopt_net_forward(b, &tx, &l));
    assert_true(memcmp(la, l.data, sizeof la) != 0); /* b still has fresh stats */
    /* corrupt: bad magic, wrong size, wrong net; b unchanged */
    buf[0] ^= 1;
    assert_status(gopt_net_state_load(b, buf, size), GOPT_EFORMAT, "magic");
    buf[0] ^= 1;
    assert_status(gopt_net_state_load(b, buf, size - 4), GOPT_EFORMAT, "bytes");
    gopt_net *other = resnet(8, 0.5f, 2, 3);
    assert_status(gopt_net_state_load(other, buf, size), GOPT_EFORMAT, "channels");
    gopt_net_destroy(other);
    assert_ok(gopt_net_forward(b, &tx, &l));
    assert_true(memcmp(la, l.data, sizeof la) != 0);
    assert_ok(gopt_net_state_load(b, buf, size));
    assert_ok(gopt_net_forward(b, &tx, &l));
    assert_memory_equal(la, l.data, sizeof la);
    free(buf);
    gopt_net_destroy(a);
    gopt_net_destroy(b);
}

/* conv R, bn+relu, conv, bn R, gelu, dropout R, maxpool, flatten, linear R, relu, linear
 * on (1,8,8); R: recomputed when `recompute`. */
static gopt_net *checkpoint_net(int recompute) {
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = 3;
    c.in_shape[0] = 1;
    c.in_shape[1] = 8;
    c.in_shape[2] = 8;
    c.seed = 17;
    gopt_net *net;
    assert_ok(gopt_net_create(&c, &net));
    gopt_layer_config lc[11] = {
        gopt_layer_conv2d(1, 4, 3, 1, 1, 1), gopt_layer_batchnorm2d(4, 1), gopt_layer_conv2d(4, 6, 3, 1, 1, 0),
        gopt_layer_batchnorm2d(6, 0), gopt_layer_config_default(GOPT_LAYER_GELU), gopt_layer_dropout(0.3f, 5),
        gopt_layer_maxpool2d(2, 2, 0), gopt_layer_config_default(GOPT_LAYER_FLATTEN), gopt_layer_linear(96, 8, 1),
        gopt_layer_config_default(GOPT_LAYER_RELU), gopt_layer_linear(8, 3, 1)};
    for (int i = 0; i < 11; i++) assert_ok(gopt_net_add(net, &lc[i], NULL));
    const int marked[4] = {0, 3, 5, 8};
    for (int k = 0; recompute && k < 4; k++) assert_ok(gopt_net_set_recompute(net, marked[k], 1));
    assert_ok(gopt_net_build(net));
    return net;
}

/* The dropout streams (a dropout layer's, and between stacked LSTM layers) are net state:
 * saved after step k and loaded back, the next training forward draws the same masks. */
static void test_dropout_stream_in_state(void **state) {
    (void)state;
    gopt_net *a = checkpoint_net(0);
    float x[3 * 64];
    for (int i = 0; i < 3 * 64; i++) x[i] = (float)((i * 29) % 13) - 6.0f;
    int64_t s[4] = {3, 1, 8, 8};
    gopt_tensor tx, l;
    assert_ok(gopt_tensor_view(x, 4, s, &tx));
    assert_ok(gopt_net_forward(a, &tx, &l));
    size_t size = gopt_net_state_size(a);
    unsigned char *buf = malloc(size);
    assert_non_null(buf);
    assert_ok(gopt_net_state_save(a, buf, size));
    float first[9], second[9];
    assert_ok(gopt_net_forward(a, &tx, &l));
    memcpy(first, l.data, sizeof first);
    assert_ok(gopt_net_forward(a, &tx, &l)); /* a new mask: other logits */
    memcpy(second, l.data, sizeof second);
    assert_true(memcmp(first, second, sizeof first) != 0);
    assert_ok(gopt_net_state_load(a, buf, size));
    assert_ok(gopt_net_forward(a, &tx, &l));
    assert_memory_equal(first, l.data, sizeof first);
    free(buf);
    gopt_net_destroy(a);

    /* embedding -> 2-layer LSTM with dropout 0.5 -> linear, on token ids */
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = 2;
    c.in_ndim = 1;
    c.in_shape[0] = 5;
    c.seed = 4;
    gopt_net *r, *plain;
    assert_ok(gopt_net_create(&c, &r));
    gopt_layer_config e = gopt_layer_embedding(7, 4), m = gopt_layer_lstm(4, 6, 2, 1, 0.5f, 9), o = gopt_layer_linear(6, 7, 1);
    assert_ok(gopt_net_add(r, &e, "emb"));
    assert_ok(gopt_net_add(r, &m, "lstm"));
    assert_ok(gopt_net_add(r, &o, "out"));
    assert_ok(gopt_net_build(r));
    const int32_t tok[10] = {1, 2, 3, 4, 5, 6, 0, 1, 2, 3};
    assert_ok(gopt_net_forward_tokens(r, tok, 2, &l));
    size = gopt_net_state_size(r);
    buf = malloc(size);
    assert_non_null(buf);
    assert_ok(gopt_net_state_save(r, buf, size));
    float lf[70];
    assert_ok(gopt_net_forward_tokens(r, tok, 2, &l));
    memcpy(lf, l.data, sizeof lf);
    assert_ok(gopt_net_forward_tokens(r, tok, 2, &l));
    assert_true(memcmp(lf, l.data, sizeof lf) != 0);
    assert_ok(gopt_net_state_load(r, buf, size));
    assert_ok(gopt_net_forward_tokens(r, tok, 2, &l));
    assert_memory_equal(lf, l.data, sizeof lf);
    /* a net without a random stream refuses the blob, naming the streams */
    assert_ok(gopt_net_create(&c, &plain));
    gopt_layer_config o4 = gopt_layer_linear(4, 7, 1);
    assert_ok(gopt_net_add(plain, &e, "emb"));
    assert_ok(gopt_net_add(plain, &o4, "out"));
    assert_ok(gopt_net_build(plain));
    assert_status(gopt_net_state_load(plain, buf, size), GOPT_EFORMAT, "random stream");
    free(buf);
    gopt_net_destroy(plain);
    gopt_net_destroy(r);
}

/* A recomputed layer (activation checkpointing) changes no bit: logits, gradients, batchnorm
 * running statistics and dropout masks over three training steps, then an eval forward. */
static void test_recompute_bit_identical(void **state) {
    (void)state;
    gopt_net *a = checkpoint_net(0), *b = checkpoint_net(1);
    float x[3 * 64], d[9], la[9], lb[9];
    int32_t y[3] = {2, 0, 1};
    for (int i = 0; i < 3 * 64; i++) x[i] = sinf(0.37f * (float)i) + 0.1f * (float)(i % 5);
    int64_t xs[4] = {3, 1, 8, 8}, ds[2] = {3, 3};
    gopt_tensor tx, td, l;
    assert_ok(gopt_tensor_view(x, 4, xs, &tx));
    assert_ok(gopt_tensor_view(d, 2, ds, &td));
    gopt_params *pa = gopt_net_params(a), *pb = gopt_net_params(b);
    const int64_t np = gopt_params_numel(pa);
    for (int step = 0; step < 3; step++) {
        gopt_net *nets[2] = {a, b};
        float *out[2] = {la, lb};
        for (int k = 0; k < 2; k++) {
            float loss;
            gopt_params_zero_grad(gopt_net_params(nets[k]));
            assert_ok(gopt_net_forward(nets[k], &tx, &l));
            memcpy(out[k], l.data, sizeof la);
            assert_ok(gopt_loss_cross_entropy(&l, y, 0.0f, &loss, &td));
            assert_ok(gopt_net_backward(nets[k], &td));
            for (int i = 0; i < 9; i++) assert_true(l.data[i] == out[k][i]); /* logits intact */
        }
        assert_memory_equal(la, lb, sizeof la);
        assert_memory_equal(gopt_params_grads(pa), gopt_params_grads(pb), sizeof(float) * (size_t)np);
        float *ga = gopt_params_grads(pa), *va = gopt_params_values(pa), *vb = gopt_params_values(pb);
        double gnorm = 0.0;
        for (int64_t i = 0; i < np; i++) {
            gnorm += (double)ga[i] * ga[i];
            va[i] -= 0.05f * ga[i];
            vb[i] -= 0.05f * ga[i];
        }
        assert_true(gnorm > 1e-6); /* every layer got a gradient signal to compare */
    }
    size_t size = gopt_net_state_size(a);
    assert_int_equal(size, gopt_net_state_size(b));
    unsigned char *sa = malloc(size), *sb = malloc(size);
    assert_ok(gopt_net_state_save(a, sa, size));
    assert_ok(gopt_net_state_save(b, sb, size));
    assert_memory_equal(sa, sb, size); /* running statistics updated once per forward */
    gopt_net_set_training(a, 0);
    gopt_net_set_training(b, 0);
    assert_ok(gopt_net_forward(a, &tx, &l));
    memcpy(la, l.data, sizeof la);
    assert_ok(gopt_net_forward(b, &tx, &l));
    assert_memory_equal(la, l.data, sizeof la);
    free(sa);
    free(sb);
    gopt_net_destroy(a);
    gopt_net_destroy(b);
}

static void test_recompute_errors(void **state) {
    (void)state;
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = 2;
    c.in_shape[0] = 2;
    c.in_shape[1] = 4;
    c.in_shape[2] = 4;
    gopt_layer_config lc[5] = {gopt_layer_conv2d(2, 2, 3, 1, 1, 0), gopt_layer_basic_block(2, 2, 1),
                               gopt_layer_config_default(GOPT_LAYER_RELU),
                               gopt_layer_config_default(GOPT_LAYER_FLATTEN), gopt_layer_linear(32, 2, 1)};
    gopt_net *net;
    assert_ok(gopt_net_create(&c, &net));
    for (int i = 0; i < 5; i++) assert_ok(gopt_net_add(net, &lc[i], NULL));
    assert_status(gopt_net_set_recompute(NULL, 0, 1), GOPT_EINVAL, NULL);
    assert_status(gopt_net_set_recompute(net, 5, 1), GOPT_EINVAL, "out of range");
    assert_status(gopt_net_set_recompute(net, -1, 1), GOPT_EINVAL, "out of range");
    assert_status(gopt_net_set_recompute(net, 1, 1), GOPT_EINVAL, "basic_block");
    assert_status(gopt_net_set_recompute(net, 3, 1), GOPT_EINVAL, "flatten");
    assert_ok(gopt_net_set_recompute(net, 3, 0)); /* off is always fine */
    gopt_net_destroy(net);
    /* at build: a recomputed layer is not the last, feeds no flatten, has no recomputed neighbour */
    /* the build-time checks, each on its own net */
    for (int k = 0; k < 3; k++) {
        assert_ok(gopt_net_create(&c, &net));
        gopt_layer_config chain[6] = {gopt_layer_conv2d(2, 2, 3, 1, 1, 0), gopt_layer_config_default(GOPT_LAYER_RELU),
                                      gopt_layer_config_default(GOPT_LAYER_RELU),
                                      gopt_layer_config_default(GOPT_LAYER_FLATTEN), gopt_layer_linear(32, 2, 1),
                                      gopt_layer_linear(2, 2, 1)};
        for (int i = 0; i < 6; i++) assert_ok(gopt_net_add(net, &chain[i], NULL));
        if (k == 0) {
            assert_ok(gopt_net_set_recompute(net, 5, 1));
            assert_status(gopt_net_build(net), GOPT_EINVAL, "last");
        } else if (k == 1) {
            assert_ok(gopt_net_set_recompute(net, 2, 1));
            assert_status(gopt_net_build(net), GOPT_EINVAL, "passes its input on");
        } else {
            assert_ok(gopt_net_set_recompute(net, 0, 1));
            assert_ok(gopt_net_set_recompute(net, 1, 1));
            assert_status(gopt_net_build(net), GOPT_EINVAL, "adjacent");
            assert_ok(gopt_net_set_recompute(net, 1, 0));
            assert_ok(gopt_net_set_recompute(net, 4, 1));
            assert_ok(gopt_net_build(net));
            assert_status(gopt_net_set_recompute(net, 2, 1), GOPT_ESTATE, "before");
        }
        gopt_net_destroy(net);
    }
}

/* embedding -> time-distributed linear -> relu -> linear over token ids; T = 6, V = 9 */
static gopt_net *token_net(int max_batch) {
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = max_batch;
    c.in_ndim = 1;
    c.in_shape[0] = 6;
    c.seed = 4;
    gopt_net *net;
    assert_ok(gopt_net_create(&c, &net));
    gopt_layer_config lc[4] = {gopt_layer_embedding(9, 5), gopt_layer_linear(5, 7, 1),
                               gopt_layer_config_default(GOPT_LAYER_GELU), gopt_layer_linear(7, 9, 0)};
    const char *names[4] = {"emb", "fc1", "act", "fc2"};
    for (int i = 0; i < 4; i++) assert_ok(gopt_net_add(net, &lc[i], names[i]));
    assert_ok(gopt_net_build(net));
    return net;
}

static double token_loss(gopt_net *net, const int32_t *tok, const int32_t *y, int n) {
    gopt_tensor l;
    float loss;
    assert_ok(gopt_net_forward_tokens(net, tok, n, &l));
    assert_ok(gopt_loss_cross_entropy_seq(&l, y, 0.0f, -100, &loss, NULL));
    return loss;
}

/* Token ids in, (N,T,V) logits out: forward_tokens equals forward on float ids, the
 * whole-net gradient matches finite differences (ignored targets included), and bad ids are
 * refused before anything runs. */
static void test_token_net(void **state) {
    (void)state;
    gopt_net *net = token_net(3);
    int64_t out[3];
    assert_int_equal(gopt_net_out_shape(net, out), 2);
    assert_int_equal(out[0], 6);
    assert_int_equal(out[1], 9);
    int idx;
    assert_ok(gopt_params_find(gopt_net_params(net), "emb.weight", &idx));
    const int32_t tok[18] = {1, 4, 4, 0, 8, 2, 3, 3, 3, 3, 7, 1, 0, 5, 6, 2, 8, 8};
    int32_t y[18];
    for (int i = 0; i < 18; i++) y[i] = i % 5 == 2 ? -100 : (tok[i] + 1) % 9; /* some ignored */
    float ftok[18];
    for (int i = 0; i < 18; i++) ftok[i] = (float)tok[i];
    int64_t xs[2] = {3, 6};
    gopt_tensor tx, l;
    assert_ok(gopt_tensor_view(ftok, 2, xs, &tx));
    assert_ok(gopt_net_forward(net, &tx, &l));
    float la[3 * 6 * 9];
    memcpy(la, l.data, sizeof la);
    assert_ok(gopt_net_forward_tokens(net, tok, 3, &l));
    assert_int_equal(l.ndim, 3);
    assert_memory_equal(la, l.data, sizeof la);
    float d[3 * 6 * 9], loss;
    gopt_tensor td;
    assert_ok(gopt_tensor_view(d, 3, l.shape, &td));
    assert_ok(gopt_loss_cross_entropy_seq(&l, y, 0.0f, -100, &loss, &td));
    gopt_params *p = gopt_net_params(net);
    gopt_params_zero_grad(p);
    assert_ok(gopt_net_backward(net, &td));
    float *v = gopt_params_values(p);
    const float *g = gopt_params_grads(p);
    const int64_t np = gopt_params_numel(p);
    for (int64_t i = 0; i < np; i += 3) {
        float keep = v[i], h = 1e-2f;
        v[i] = keep + h;
        double lp = token_loss(net, tok, y, 3);
        v[i] = keep - h;
        double lm = token_loss(net, tok, y, 3);
        v[i] = keep;
        double num = (lp - lm) / (2.0 * h);
        if (fabs(num - g[i]) > 1e-3 + 2e-2 * fabs(num))
            fail_msg("param %lld: fd %.6g, analytic %.6g", (long long)i, num, g[i]);
    }
    /* errors: ids out of range anywhere, in both entry points, before anything runs */
    assert_ok(gopt_net_forward_tokens(net, tok, 3, &l));
    assert_ok(gopt_net_backward(net, &td));
    int32_t bad[18];
    memcpy(bad, tok, sizeof bad);
    bad[13] = 9;
    assert_status(gopt_net_forward_tokens(net, bad, 3, &l), GOPT_EINVAL, "token id 9 at (sample 2, step 1)");
    bad[13] = -1;
    assert_status(gopt_net_forward_tokens(net, bad, 3, &l), GOPT_EINVAL, "outside [0, 9)");
    ftok[13] = 2.5f;
    assert_status(gopt_net_forward(net, &tx, &l), GOPT_EINVAL, "not an integer");
    ftok[13] = NAN;
    assert_status(gopt_net_forward(net, &tx, &l), GOPT_EINVAL, "sample 2, step 1");
    assert_status(gopt_net_backward(net, &td), GOPT_ESTATE, "already"); /* the refused forwards ran nothing */
    assert_status(gopt_net_forward_tokens(net, tok, 4, &l), GOPT_ESHAPE, "1..3");
    assert_status(gopt_net_forward_tokens(net, tok, 0, &l), GOPT_ESHAPE, "1..3");
    assert_status(gopt_net_forward_tokens(net, NULL, 1, &l), GOPT_EINVAL, NULL);
    gopt_net_reset_state(net); /* no recurrent layer: nothing to do */
    gopt_net_reset_state(NULL);
    gopt_net_destroy(net);
    /* token input needs an embedding first; an embedding anywhere else is refused */
    gopt_net_config c = gopt_net_config_default();
    c.in_ndim = 1;
    c.in_shape[0] = 9;
    assert_ok(gopt_net_create(&c, &net));
    gopt_layer_config lin = gopt_layer_linear(9, 9, 1), emb = gopt_layer_embedding(9, 2);
    assert_ok(gopt_net_add(net, &lin, "fc"));
    assert_status(gopt_net_add(net, &emb, "emb"), GOPT_EINVAL, "first layer");
    assert_ok(gopt_net_build(net));
    assert_status(gopt_net_forward_tokens(net, tok, 1, &l), GOPT_EINVAL, "embedding");
    gopt_net_destroy(net);
    assert_ok(gopt_net_create(&c, &net));
    assert_ok(gopt_net_add(net, &emb, "emb"));
    assert_status(gopt_net_forward_tokens(net, tok, 1, &l), GOPT_ESTATE, "not built");
    gopt_net_destroy(net);
}

/* End to end: embedding -> lstm -> time-distributed linear, trained with Adam on "output the
 * previous token" over random sequences (position 0 has no previous token: ignore_index).
 * The answer at step t is only in h_{t-1}, so only backpropagation through time can teach
 * it (measured: 0.002 nats after 300 steps; with the gradient through time cut, dh and dc
 * both, 1.46, the forward state's random features alone; chance is ln V = 2.08). */
static void test_lstm_learns_previous_token(void **state) {
    (void)state;
    enum { V = 8, T = 12, N = 16, E = 8, H = 32, STEPS = 300 };
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = N;
    c.in_ndim = 1;
    c.in_shape[0] = T;
    c.seed = 1;
    gopt_net *net;
    assert_ok(gopt_net_create(&c, &net));
    gopt_layer_config lc[3] = {gopt_layer_embedding(V, E), gopt_layer_lstm(E, H, 1, 1, 0.0f, 0),
                               gopt_layer_linear(H, V, 1)};
    const char *names[3] = {"emb", "lstm", "head"};
    for (int i = 0; i < 3; i++) assert_ok(gopt_net_add(net, &lc[i], names[i]));
    assert_ok(gopt_net_build(net));
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_ADAM);
    oc.lr = 1e-2f;
    gopt_optim *opt;
    assert_ok(gopt_optim_create(&oc, gopt_net_params(net), &opt));
    gopt_rng rng;
    gopt_rng_seed(&rng, 12);
    int32_t tok[N * T], y[N * T];
    float d[N * T * V], first = 0.0f, loss = 0.0f, tail = 0.0f;
    for (int step = 0; step < STEPS; step++) {
        for (int i = 0; i < N * T; i++) tok[i] = (int32_t)(gopt_rng_uniform(&rng) * V) % V;
        for (int i = 0; i < N * T; i++) y[i] = i % T == 0 ? -100 : tok[i - 1];
        gopt_tensor l, td;
        assert_ok(gopt_net_forward_tokens(net, tok, N, &l));
        assert_ok(gopt_tensor_view(d, 3, l.shape, &td));
        assert_ok(gopt_loss_cross_entropy_seq(&l, y, 0.0f, -100, &loss, &td));
        if (step == 0) first = loss;
        if (step >= STEPS - 20) tail += loss / 20.0f;
        gopt_optim_zero_grad(opt);
        assert_ok(gopt_net_backward(net, &td));
        assert_ok(gopt_optim_step(opt));
    }
    if (getenv("E2E_VERBOSE")) printf("previous-token lstm: loss %.4f -> %.4f\n", first, tail);
    assert_true(first > 1.9f);  /* chance, ln 8 = 2.08 */
    assert_true(tail < 0.15f);  /* learnt: far below what a broken backward reaches */
    gopt_net_reset_state(net);
    gopt_optim_destroy(opt);
    gopt_net_destroy(net);
}

static void test_errors_and_manual_net(void **state) {
    (void)state;
    gopt_net_config c = gopt_net_config_default();
    gopt_net *net = NULL;
    c.max_batch = 0;
    assert_status(gopt_net_create(&c, &net), GOPT_EINVAL, "max_batch");
    c = gopt_net_config_default();
    c.max_batch = 2;
    c.in_shape[0] = 1;
    c.in_shape[1] = 8;
    c.in_shape[2] = 8;
    assert_ok(gopt_net_create(&c, &net));
    assert_status(gopt_net_build(net), GOPT_ESTATE, "no layers");
    gopt_layer_config lc = gopt_layer_conv2d(1, 4, 3, 1, 1, 1);
    assert_ok(gopt_net_add(net, &lc, "conv"));
    lc = gopt_layer_batchnorm2d(4, 1);
    assert_ok(gopt_net_add(net, &lc, "bn"));
    lc = gopt_layer_maxpool2d(2, 2, 0);
    assert_ok(gopt_net_add(net, &lc, NULL));
    lc = gopt_layer_config_default(GOPT_LAYER_FLATTEN);
    assert_ok(gopt_net_add(net, &lc, NULL));
    lc = gopt_layer_linear(60, 3, 1);
    assert_status(gopt_net_add(net, &lc, "fc"), GOPT_ESHAPE, "(N,64)");
    lc = gopt_layer_linear(64, 3, 1);
    assert_ok(gopt_net_add(net, &lc, "fc"));
    float x[2 * 64];
    int64_t s[4] = {2, 1, 8, 8};
    gopt_tensor tx, l;
    assert_ok(gopt_tensor_view(x, 4, s, &tx));
    assert_status(gopt_net_forward(net, &tx, &l), GOPT_ESTATE, "not built");
    assert_ok(gopt_net_build(net));
    assert_status(gopt_net_build(net), GOPT_ESTATE, "already");
    assert_status(gopt_net_add(net, &lc, "late"), GOPT_ESTATE, "after");
    assert_status(gopt_net_backward(net, &tx), GOPT_ESTATE, "before forward");
    int64_t bad[4] = {2, 1, 8, 9};
    gopt_tensor tb;
    assert_ok(gopt_tensor_view(x, 4, bad, &tb));
    assert_status(gopt_net_forward(net, &tb, &l), GOPT_ESHAPE, "(2,1,8,9)");
    testutil_check_detail("(N,1,8,8)");
    for (int i = 0; i < 128; i++) x[i] = (float)(i % 13) * 0.1f;
    assert_ok(gopt_net_forward(net, &tx, &l));
    assert_int_equal(l.shape[1], 3);
    int32_t y[2] = {0, 2};
    float d[6];
    int64_t ds[2] = {2, 3};
    gopt_tensor td;
    assert_ok(gopt_tensor_view(d, 2, ds, &td));
    float loss;
    assert_ok(gopt_loss_cross_entropy(&l, y, 0.0f, &loss, &td));
    assert_ok(gopt_net_backward(net, &td));
    int idx;
    assert_ok(gopt_params_find(gopt_net_params(net), "bn.weight", &idx));
    assert_ok(gopt_params_find(gopt_net_params(net), "conv.bias", &idx));
    assert_non_null(gopt_net_layer(net, 4));
    assert_null(gopt_net_layer(net, 5));
    gopt_net_destroy(net);
    gopt_net_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet_param_counts),
        cmocka_unit_test(test_net_finite_difference),
        cmocka_unit_test(test_small_batch_and_determinism),
        cmocka_unit_test(test_kernels_agree),
        cmocka_unit_test(test_state_and_timing),
        cmocka_unit_test(test_errors_and_manual_net),
        cmocka_unit_test(test_recompute_bit_identical),
        cmocka_unit_test(test_recompute_errors),
        cmocka_unit_test(test_token_net),
        cmocka_unit_test(test_dropout_stream_in_state),
        cmocka_unit_test(test_lstm_learns_previous_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
