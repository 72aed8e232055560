/* Nets of any shape (issue 19): gopt_net_add_from, gopt_net_add_merge, names, summary,
 * graph backward, frozen layers skipped in backward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <gradopt.h>
#include "nn/net_priv.h"
#include "testutil.h"

static gopt_net *new_net(int ndim, int64_t c, int64_t h, int64_t w, int max_batch, uint64_t seed) {
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = max_batch;
    nc.in_ndim = ndim;
    nc.in_shape[0] = c;
    nc.in_shape[1] = h;
    nc.in_shape[2] = w;
    nc.seed = seed;
    gopt_net *net;
    assert_ok(gopt_net_create(&nc, &net));
    return net;
}

static gopt_tensor view(float *d, int ndim, int64_t a, int64_t b, int64_t c, int64_t e) {
    int64_t s[4] = {a, b, c, e};
    gopt_tensor t;
    assert_ok(gopt_tensor_view(d, ndim, s, &t));
    return t;
}

/* Copy every tensor of `from` into the tensor of the same name in `to` (all must exist). */
static void copy_by_name(gopt_net *from, gopt_net *to) {
    gopt_params *a = gopt_net_params(from), *b = gopt_net_params(to);
    assert_int_equal(gopt_params_count(a), gopt_params_count(b));
    for (int i = 0; i < gopt_params_count(a); i++) {
        gopt_param_info pa, pb;
        int j;
        assert_ok(gopt_params_info(a, i, &pa));
        assert_ok(gopt_params_find(b, pa.name, &j));
        assert_ok(gopt_params_info(b, j, &pb));
        assert_int_equal(pa.value.numel, pb.value.numel);
        memcpy(pb.value.data, pa.value.data, sizeof(float) * (size_t)pa.value.numel);
    }
}

static void same_by_name(gopt_net *a_net, gopt_net *b_net, int grads) {
    gopt_params *a = gopt_net_params(a_net), *b = gopt_net_params(b_net);
    for (int i = 0; i < gopt_params_count(a); i++) {
        gopt_param_info pa, pb;
        int j;
        assert_ok(gopt_params_info(a, i, &pa));
        assert_ok(gopt_params_find(b, pa.name, &j));
        assert_ok(gopt_params_info(b, j, &pb));
        const gopt_tensor *ta = grads ? &pa.grad : &pa.value, *tb = grads ? &pb.grad : &pb.value;
        if (memcmp(ta->data, tb->data, sizeof(float) * (size_t)ta->numel) != 0) {
            for (int64_t k = 0; k < ta->numel; k++)
                if (ta->data[k] != tb->data[k]) {
                    print_error("%s %s[%lld]: %.9g vs %.9g\n", pa.name, grads ? "grad" : "value", (long long)k,
                                ta->data[k], tb->data[k]);
                    break;
                }
            fail();
        }
    }
}

/* The user's basic block: stem conv, then conv1, bn1+relu, conv2, bn2 (+ shortcut conv, bn),
 * add, relu, then pool and fc; named so the parameters match the built-in block "blk". */
static gopt_net *user_block(int C, int K, int stride, uint64_t seed) {
    gopt_net *net = new_net(3, 3, 8, 8, 6, seed);
    gopt_layer_config lc = gopt_layer_conv2d(3, C, 3, 1, 1, 0);
    assert_ok(gopt_net_add(net, &lc, "stem"));
    lc = gopt_layer_conv2d(C, K, 3, stride, 1, 0);
    assert_ok(gopt_net_add(net, &lc, "blk.conv1"));
    lc = gopt_layer_batchnorm2d(K, 1);
    assert_ok(gopt_net_add(net, &lc, "blk.bn1"));
    lc = gopt_layer_conv2d(K, K, 3, 1, 1, 0);
    assert_ok(gopt_net_add(net, &lc, "blk.conv2"));
    lc = gopt_layer_batchnorm2d(K, 0);
    assert_ok(gopt_net_add(net, &lc, "blk.bn2"));
    const char *res = "stem";
    if (stride != 1 || C != K) {
        lc = gopt_layer_conv2d(C, K, 1, stride, 0, 0);
        assert_ok(gopt_net_add_from(net, &lc, "blk.shortcut.conv", "stem"));
        lc = gopt_layer_batchnorm2d(K, 0);
        assert_ok(gopt_net_add(net, &lc, "blk.shortcut.bn"));
        res = "blk.shortcut.bn";
    }
    const char *in[2] = {"blk.bn2", res};
    assert_ok(gopt_net_add_merge(net, GOPT_LAYER_ADD, in, 2, "blk.add"));
    lc = gopt_layer_config_default(GOPT_LAYER_RELU);
    assert_ok(gopt_net_add(net, &lc, "blk.relu"));
    lc = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL);
    assert_ok(gopt_net_add(net, &lc, "pool"));
    lc = gopt_layer_linear(K, 5, 1);
    assert_ok(gopt_net_add(net, &lc, "fc"));
    assert_ok(gopt_net_build(net));
    return net;
}

static gopt_net *builtin_block(int C, int K, int stride, uint64_t seed) {
    gopt_net *net = new_net(3, 3, 8, 8, 6, seed);
    gopt_layer_config lc = gopt_layer_conv2d(3, C, 3, 1, 1, 0);
    assert_ok(gopt_net_add(net, &lc, "stem"));
    lc = gopt_layer_basic_block(C, K, stride);
    assert_ok(gopt_net_add(net, &lc, "blk"));
    lc = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL);
    assert_ok(gopt_net_add(net, &lc, "pool"));
    lc = gopt_layer_linear(K, 5, 1);
    assert_ok(gopt_net_add(net, &lc, "fc"));
    assert_ok(gopt_net_build(net));
    return net;
}

static void check_block(int C, int K, int stride) {
    gopt_net *a = builtin_block(C, K, stride, 7), *b = user_block(C, K, stride, 99);
    copy_by_name(a, b);
    const int N = 6;
    float *x = malloc(sizeof(float) * N * 3 * 64), *d = malloc(sizeof(float) * N * 5);
    assert_non_null(x);
    assert_non_null(d);
    const int ia = 0, ib = 0; /* the stem: its output gradient is the block's input gradient */
    for (int step = 0; step < 3; step++) {
        const int n = step == 2 ? 4 : N; /* a short batch too */
        testutil_fill_normal(x, N * 3 * 64, 100 + (uint64_t)step);
        testutil_fill_normal(d, N * 5, 200 + (uint64_t)step);
        gopt_tensor xt = view(x, 4, n, 3, 8, 8), dt = view(d, 2, N, 5, 0, 0), la, lb;
        assert_ok(gopt_net_forward(a, &xt, &la));
        assert_ok(gopt_net_forward(b, &xt, &lb));
        assert_memory_equal(la.data, lb.data, sizeof(float) * (size_t)n * 5);
        gopt_params_zero_grad(gopt_net_params(a));
        gopt_params_zero_grad(gopt_net_params(b));
        assert_ok(gopt_net_backward(a, &dt)); /* N rows for a batch of n: the first n are read */
        assert_ok(gopt_net_backward(b, &dt));
        same_by_name(a, b, 1);
        const int64_t act = (int64_t)n * C * 64;
        const float *ga = gopt__net_grad(a, ia), *gb = gopt__net_grad(b, ib);
        assert_non_null(ga);
        assert_non_null(gb);
        assert_memory_equal(ga, gb, sizeof(float) * (size_t)act);
        /* an SGD step on both */
        float *pa = gopt_params_values(gopt_net_params(a));
        const float *gga = gopt_params_grads(gopt_net_params(a));
        for (int64_t i = 0; i < gopt_params_numel(gopt_net_params(a)); i++) pa[i] -= 0.1f * gga[i];
        float *pb = gopt_params_values(gopt_net_params(b));
        const float *ggb = gopt_params_grads(gopt_net_params(b));
        for (int64_t i = 0; i < gopt_params_numel(gopt_net_params(b)); i++) pb[i] -= 0.1f * ggb[i];
        same_by_name(a, b, 0);
    }
    /* the running statistics too, by name */
    for (int i = 0; i < gopt_net_buffer_count(a); i++) {
        gopt_net_buffer ba;
        gopt_tensor vb;
        assert_ok(gopt_net_buffer_info(a, i, &ba));
        assert_ok(gopt_net_find_buffer(b, ba.name, &vb));
        assert_memory_equal(ba.value.data, vb.data, sizeof(float) * (size_t)K);
    }
    /* eval mode */
    gopt_net_set_training(a, 0);
    gopt_net_set_training(b, 0);
    gopt_tensor xt = view(x, 4, N, 3, 8, 8), la, lb;
    assert_ok(gopt_net_forward(a, &xt, &la));
    assert_ok(gopt_net_forward(b, &xt, &lb));
    assert_memory_equal(la.data, lb.data, sizeof(float) * N * 5);
    free(x);
    free(d);
    gopt_net_destroy(a);
    gopt_net_destroy(b);
}

static void test_user_block_identity(void **state) {
    (void)state;
    check_block(8, 8, 1);
}
static void test_user_block_projection(void **state) {
    (void)state;
    check_block(8, 12, 2);
}

/* ---- finite differences -------------------------------------------------------------------
 * loss = sum(logits * r); d loss / d logits = r. Central differences in double from the
 * float forward at two step sizes, which must agree with each other (the check itself is
 * sound) and with the analytic gradient. */
static double loss_of(gopt_net *net, const gopt_tensor *x, const float *r) {
    gopt_tensor lo;
    assert_ok(gopt_net_forward(net, x, &lo));
    double s = 0.0;
    for (int64_t i = 0; i < lo.numel; i++) s += (double)lo.data[i] * r[i];
    return s;
}

static void fd_check(gopt_net *net, const gopt_tensor *x, int per_tensor) {
    gopt_tensor lo;
    assert_ok(gopt_net_forward(net, x, &lo));
    float *r = malloc(sizeof(float) * (size_t)lo.numel);
    assert_non_null(r);
    testutil_fill_normal(r, lo.numel, 5);
    gopt_tensor rt;
    assert_ok(gopt_tensor_view(r, lo.ndim, lo.shape, &rt));
    gopt_params *p = gopt_net_params(net);
    gopt_params_zero_grad(p);
    assert_ok(gopt_net_backward(net, &rt));
    int checked = 0;
    for (int t = 0; t < gopt_params_count(p); t++) {
        gopt_param_info pi;
        assert_ok(gopt_params_info(p, t, &pi));
        for (int k = 0; k < per_tensor; k++) {
            const int64_t idx = (k * 7919 + t * 31) % pi.value.numel;
            float *v = &pi.value.data[idx];
            const float v0 = *v, g = pi.grad.data[idx];
            double fd[2];
            const float hs[2] = {1e-2f, 5e-3f};
            for (int h = 0; h < 2; h++) {
                *v = v0 + hs[h];
                double up = loss_of(net, x, r);
                *v = v0 - hs[h];
                double dn = loss_of(net, x, r);
                *v = v0;
                fd[h] = (up - dn) / (2.0 * (double)hs[h]);
            }
            const double tol = 2e-3 + 2e-2 * fabs(fd[1]);
            if (fabs(fd[0] - fd[1]) > tol || fabs(g - fd[1]) > tol) {
                print_error("%s[%lld]: analytic %.7g, central differences %.7g (h=1e-2) %.7g (h=5e-3)\n", pi.name,
                            (long long)idx, g, fd[0], fd[1]);
                fail();
            }
            checked++;
        }
    }
    assert_true(checked >= per_tensor * 2);
    free(r);
}

/* gopt_resnet_cifar with graph = 1 (each block written out with add_from / add_merge) is the
 * fused net's twin: same tensor names, and from the same weights the same logits, gradients
 * and running statistics, bit for bit, over SGD steps. */
static void test_resnet_graph_twin(void **state) {
    (void)state;
    gopt_resnet_config rc = gopt_resnet_config_default();
    rc.depth = 8;
    rc.max_batch = 4;
    rc.in_shape[1] = rc.in_shape[2] = 16;
    gopt_net *a, *b;
    assert_ok(gopt_resnet_cifar(&rc, &a));
    rc.graph = 1;
    assert_ok(gopt_resnet_cifar(&rc, &b));
    assert_int_equal(gopt_net_layer_count(b), 2 + 6 + 8 + 8 + 2); /* stem, blocks (identity, 2 projections), pool, fc */
    copy_by_name(a, b);
    float *x = malloc(sizeof(float) * 4 * 3 * 256), *d = malloc(sizeof(float) * 4 * 10);
    assert_non_null(x);
    assert_non_null(d);
    for (int step = 0; step < 3; step++) {
        testutil_fill_normal(x, 4 * 3 * 256, 300 + (uint64_t)step);
        testutil_fill_normal(d, 4 * 10, 400 + (uint64_t)step);
        gopt_tensor xt = view(x, 4, 4, 3, 16, 16), dt = view(d, 2, 4, 10, 0, 0), la, lb;
        assert_ok(gopt_net_forward(a, &xt, &la));
        assert_ok(gopt_net_forward(b, &xt, &lb));
        assert_memory_equal(la.data, lb.data, sizeof(float) * 4 * 10);
        gopt_params_zero_grad(gopt_net_params(a));
        gopt_params_zero_grad(gopt_net_params(b));
        assert_ok(gopt_net_backward(a, &dt));
        assert_ok(gopt_net_backward(b, &dt));
        same_by_name(a, b, 1);
        gopt_params *pa = gopt_net_params(a), *pb = gopt_net_params(b);
        for (int64_t i = 0; i < gopt_params_numel(pa); i++) gopt_params_values(pa)[i] -= 0.1f * gopt_params_grads(pa)[i];
        for (int64_t i = 0; i < gopt_params_numel(pb); i++) gopt_params_values(pb)[i] -= 0.1f * gopt_params_grads(pb)[i];
    }
    for (int i = 0; i < gopt_net_buffer_count(a); i++) {
        gopt_net_buffer ba;
        gopt_tensor vb;
        assert_ok(gopt_net_buffer_info(a, i, &ba));
        assert_ok(gopt_net_find_buffer(b, ba.name, &vb));
        assert_memory_equal(ba.value.data, vb.data, sizeof(float) * (size_t)vb.numel);
    }
    /* the same PyTorch state_dict names (interop.h) for every tensor and buffer */
    for (int i = 0; i < gopt_params_count(gopt_net_params(a)); i++) {
        gopt_param_info pi;
        char ta[96], tb[96];
        assert_ok(gopt_params_info(gopt_net_params(a), i, &pi));
        assert_ok(gopt_net_torch_name(a, pi.name, ta, sizeof ta));
        assert_ok(gopt_net_torch_name(b, pi.name, tb, sizeof tb));
        assert_string_equal(ta, tb);
    }
    assert_int_equal(gopt_net_buffer_count(a), gopt_net_buffer_count(b));
    for (int i = 0; i < gopt_net_buffer_count(a); i++) {
        gopt_net_buffer ba;
        char ta[96], tb[96];
        assert_ok(gopt_net_buffer_info(a, i, &ba));
        assert_ok(gopt_net_torch_name(a, ba.name, ta, sizeof ta));
        assert_ok(gopt_net_torch_name(b, ba.name, tb, sizeof tb));
        assert_string_equal(ta, tb);
    }
    rc.graph = 2;
    gopt_net *bad = NULL;
    assert_int_equal(gopt_resnet_cifar(&rc, &bad), GOPT_EINVAL);
    assert_non_null(strstr(gopt_last_error(), "graph = 2"));
    free(x);
    free(d);
    gopt_net_destroy(a);
    gopt_net_destroy(b);
}

static void test_two_branch_concat_fd(void **state) {
    (void)state;
    gopt_net *net = new_net(3, 3, 6, 6, 3, 11);
    gopt_layer_config lc = gopt_layer_conv2d(3, 4, 3, 1, 1, 1);
    assert_ok(gopt_net_add(net, &lc, "a"));
    lc = gopt_layer_config_default(GOPT_LAYER_TANH);
    assert_ok(gopt_net_add(net, &lc, "a_act"));
    lc = gopt_layer_conv2d(3, 2, 1, 1, 0, 1);
    assert_ok(gopt_net_add_from(net, &lc, "b", "input"));
    const char *in[2] = {"a_act", "b"};
    assert_ok(gopt_net_add_merge(net, GOPT_LAYER_CONCAT, in, 2, "cat"));
    int64_t shape[3];
    assert_int_equal(gopt_layer_out_shape(gopt_net_layer(net, 3), shape), 3);
    assert_true(shape[0] == 6 && shape[1] == 6 && shape[2] == 6);
    lc = gopt_layer_config_default(GOPT_LAYER_TANH);
    assert_ok(gopt_net_add(net, &lc, "cat_act"));
    lc = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL);
    assert_ok(gopt_net_add(net, &lc, "pool"));
    lc = gopt_layer_linear(6, 3, 1);
    assert_ok(gopt_net_add(net, &lc, "fc"));
    assert_ok(gopt_net_build(net));
    float x[3 * 3 * 36];
    testutil_fill_normal(x, 3 * 3 * 36, 3);
    gopt_tensor xt = view(x, 4, 3, 3, 6, 6);
    fd_check(net, &xt, 4);
    gopt_net_destroy(net);

    /* features: two linear branches of (5) concatenated to (7) */
    net = new_net(1, 5, 1, 1, 4, 12);
    lc = gopt_layer_linear(5, 3, 1);
    assert_ok(gopt_net_add(net, &lc, "a"));
    lc = gopt_layer_linear(5, 4, 1);
    assert_ok(gopt_net_add_from(net, &lc, "b", "input"));
    const char *in2[2] = {"b", "a"};
    assert_ok(gopt_net_add_merge(net, GOPT_LAYER_CONCAT, in2, 2, "cat"));
    lc = gopt_layer_config_default(GOPT_LAYER_TANH);
    assert_ok(gopt_net_add(net, &lc, "act"));
    lc = gopt_layer_linear(7, 2, 1);
    assert_ok(gopt_net_add(net, &lc, "fc"));
    assert_ok(gopt_net_build(net));
    float xf[4 * 5];
    testutil_fill_normal(xf, 20, 4);
    xt = view(xf, 2, 4, 5, 0, 0);
    fd_check(net, &xt, 4);
    gopt_net_destroy(net);
}

/* One output read by three layers (two linears and the add that also takes their outputs),
 * the net's input read twice, and a flatten (which aliases its input) read by two. */
static void test_three_consumers_fd(void **state) {
    (void)state;
    gopt_net *net = new_net(3, 2, 3, 3, 4, 13);
    gopt_layer_config lc = gopt_layer_config_default(GOPT_LAYER_FLATTEN);
    assert_ok(gopt_net_add(net, &lc, "flat"));
    lc = gopt_layer_linear(18, 8, 1);
    assert_ok(gopt_net_add(net, &lc, "h"));
    lc = gopt_layer_config_default(GOPT_LAYER_TANH);
    assert_ok(gopt_net_add(net, &lc, "t"));
    lc = gopt_layer_linear(8, 8, 1);
    assert_ok(gopt_net_add(net, &lc, "p"));
    lc = gopt_layer_linear(8, 8, 0);
    assert_ok(gopt_net_add_from(net, &lc, "q", "t"));
    const char *in[3] = {"t", "p", "q"};
    assert_ok(gopt_net_add_merge(net, GOPT_LAYER_ADD, in, 3, "s"));
    lc = gopt_layer_config_default(GOPT_LAYER_TANH);
    assert_ok(gopt_net_add(net, &lc, "s_act"));
    lc = gopt_layer_linear(18, 8, 0);
    assert_ok(gopt_net_add_from(net, &lc, "skip", "flat"));
    const char *in2[2] = {"s_act", "skip"};
    assert_ok(gopt_net_add_merge(net, GOPT_LAYER_CONCAT, in2, 2, "c"));
    lc = gopt_layer_linear(16, 3, 1);
    assert_ok(gopt_net_add(net, &lc, "fc"));
    assert_ok(gopt_net_build(net));
    assert_int_equal(net->nodes[2].consumers, 3);
    assert_int_equal(net->nodes[0].consumers, 2);
    float x[4 * 18];
    testutil_fill_normal(x, 4 * 18, 6);
    gopt_tensor xt = view(x, 4, 4, 2, 3, 3);
    fd_check(net, &xt, 5);
    gopt_net_destroy(net);
}

/* ---- frozen layers are skipped in backward ---------------------------------------------- */
static void test_frozen_skip(void **state) {
    (void)state;
    /* sequential: a (frozen), tanh, b: a and tanh never run backward, b gets no dx */
    gopt_net *ref = new_net(1, 6, 1, 1, 4, 21), *net = new_net(1, 6, 1, 1, 4, 21);
    gopt_net *nets[2] = {ref, net};
    for (int k = 0; k < 2; k++) {
        gopt_layer_config lc = gopt_layer_linear(6, 8, 1);
        assert_ok(gopt_net_add(nets[k], &lc, "a"));
        lc = gopt_layer_config_default(GOPT_LAYER_TANH);
        assert_ok(gopt_net_add(nets[k], &lc, "t"));
        lc = gopt_layer_linear(8, 3, 1);
        assert_ok(gopt_net_add(nets[k], &lc, "b"));
        assert_ok(gopt_net_build(nets[k]));
    }
    gopt_net_layer(net, 0)->frozen = 1;
    float x[24], d[12], keep[32];
    testutil_fill_normal(x, 24, 1);
    testutil_fill_normal(d, 12, 2);
    gopt_tensor xt = view(x, 2, 4, 6, 0, 0), dt = view(d, 2, 4, 3, 0, 0), lo;
    for (int k = 0; k < 2; k++) {
        assert_ok(gopt_net_forward(nets[k], &xt, &lo));
        memcpy(keep, gopt_net_layer(nets[k], 1)->out, sizeof keep);
        assert_ok(gopt_net_backward(nets[k], &dt));
    }
    /* the tanh output was not overwritten by b's input gradient: nothing asked for it */
    assert_memory_equal(keep, gopt_net_layer(net, 1)->out, sizeof keep);
    assert_null(gopt__net_grad(net, 1));
    assert_non_null(gopt__net_grad(ref, 1));
    gopt_param_info pi, pr;
    int idx;
    assert_ok(gopt_params_find(gopt_net_params(net), "a.weight", &idx));
    assert_ok(gopt_params_info(gopt_net_params(net), idx, &pi));
    for (int64_t i = 0; i < pi.grad.numel; i++) assert_true(pi.grad.data[i] == 0.0f);
    assert_ok(gopt_params_find(gopt_net_params(net), "b.weight", &idx));
    assert_ok(gopt_params_info(gopt_net_params(net), idx, &pi));
    assert_ok(gopt_params_info(gopt_net_params(ref), idx, &pr));
    assert_memory_equal(pi.grad.data, pr.grad.data, sizeof(float) * (size_t)pi.grad.numel);
    gopt_net_destroy(ref);
    gopt_net_destroy(net);

    /* graph: x -> a ; x -> b (frozen) ; add -> c ; and a frozen c between trainable a and
     * the output still passes the gradient on to a */
    for (int variant = 0; variant < 2; variant++) {
        ref = new_net(1, 6, 1, 1, 4, 22);
        net = new_net(1, 6, 1, 1, 4, 22);
        nets[0] = ref;
        nets[1] = net;
        for (int k = 0; k < 2; k++) {
            gopt_layer_config lc = gopt_layer_linear(6, 5, 1);
            assert_ok(gopt_net_add(nets[k], &lc, "a"));
            assert_ok(gopt_net_add_from(nets[k], &lc, "b", "input"));
            const char *in[2] = {"a", "b"};
            assert_ok(gopt_net_add_merge(nets[k], GOPT_LAYER_ADD, in, 2, "s"));
            lc = gopt_layer_linear(5, 3, 1);
            assert_ok(gopt_net_add(nets[k], &lc, "c"));
            assert_ok(gopt_net_build(nets[k]));
        }
        gopt_net_layer(net, variant == 0 ? 1 : 3)->frozen = 1;
        testutil_fill_normal(x, 24, 3);
        for (int k = 0; k < 2; k++) {
            assert_ok(gopt_net_forward(nets[k], &xt, &lo));
            assert_ok(gopt_net_backward(nets[k], &dt));
        }
        const char *same[2] = {"a.weight", "a.bias"};
        for (int j = 0; j < 2; j++) {
            assert_ok(gopt_params_find(gopt_net_params(net), same[j], &idx));
            assert_ok(gopt_params_info(gopt_net_params(net), idx, &pi));
            assert_ok(gopt_params_info(gopt_net_params(ref), idx, &pr));
            assert_memory_equal(pi.grad.data, pr.grad.data, sizeof(float) * (size_t)pi.grad.numel);
        }
        if (variant == 0) { /* b never ran backward */
            assert_ok(gopt_params_find(gopt_net_params(net), "b.weight", &idx));
            assert_ok(gopt_params_info(gopt_net_params(net), idx, &pi));
            for (int64_t i = 0; i < pi.grad.numel; i++) assert_true(pi.grad.data[i] == 0.0f);
        }
        gopt_net_destroy(ref);
        gopt_net_destroy(net);
    }
}

/* ---- errors ------------------------------------------------------------------------------ */
static void test_errors(void **state) {
    (void)state;
    gopt_net *net = new_net(3, 4, 8, 8, 2, 1);
    gopt_layer_config lc = gopt_layer_conv2d(4, 8, 3, 1, 1, 0);
    assert_ok(gopt_net_add(net, &lc, "a"));
    lc = gopt_layer_conv2d(4, 8, 3, 2, 1, 0);
    assert_status(gopt_net_add_from(net, &lc, "b", "nope"), GOPT_EINVAL, "gopt_net_add_from");
    testutil_check_detail("'nope'");
    assert_ok(gopt_net_add_from(net, &lc, "b", "input"));
    lc = gopt_layer_conv2d(8, 8, 3, 1, 1, 0);
    assert_status(gopt_net_add(net, &lc, "a"), GOPT_EINVAL, "'a'");
    testutil_check_detail("taken");
    assert_status(gopt_net_add(net, &lc, "input"), GOPT_EINVAL, "reserved");
    const char *bad[2] = {"a", "b"};
    assert_status(gopt_net_add_merge(net, GOPT_LAYER_ADD, bad, 2, "s"), GOPT_ESHAPE, "gopt_net_add_merge");
    testutil_check_detail("'b' (N,8,4,4)");
    testutil_check_detail("'a' (N,8,8,8)");
    assert_status(gopt_net_add_merge(net, GOPT_LAYER_CONCAT, bad, 2, "s"), GOPT_ESHAPE, "concat");
    testutil_check_detail("(N,8,4,4)");
    const char *unk[2] = {"a", "zz"};
    assert_status(gopt_net_add_merge(net, GOPT_LAYER_ADD, unk, 2, "s"), GOPT_EINVAL, "'zz'");
    assert_status(gopt_net_add_merge(net, GOPT_LAYER_RELU, bad, 2, "s"), GOPT_EINVAL, "GOPT_LAYER_ADD");
    assert_status(gopt_net_add_merge(net, GOPT_LAYER_ADD, bad, 1, "s"), GOPT_EINVAL, "ninputs");
    const char *dup[2] = {"a", "a"};
    assert_status(gopt_net_add_merge(net, GOPT_LAYER_ADD, dup, 2, "b"), GOPT_EINVAL, "'b'");
    lc = gopt_layer_config_default(GOPT_LAYER_ADD);
    assert_status(gopt_net_add(net, &lc, "s"), GOPT_EINVAL, "gopt_net_add_merge");
    /* concat of channels with a mismatch in H only */
    lc = gopt_layer_conv2d(4, 3, 3, 1, 1, 0);
    assert_ok(gopt_net_add_from(net, &lc, "c", "input"));
    const char *cc[2] = {"c", "b"};
    assert_status(gopt_net_add_merge(net, GOPT_LAYER_CONCAT, cc, 2, "cat"), GOPT_ESHAPE, "'b' (N,8,4,4)");
    testutil_check_detail("'c' (N,3,8,8)");
    const char *ok[3] = {"c", "a", "input"};
    assert_ok(gopt_net_add_merge(net, GOPT_LAYER_CONCAT, ok, 3, "cat"));
    assert_int_equal(gopt_net_layer_count(net), 4);
    /* names read back */
    assert_string_equal(gopt_net_layer_name(net, 3), "cat");
    assert_null(gopt_net_layer_name(net, 4));
    assert_null(gopt_net_layer_name(net, -1));
    int i = -1;
    assert_ok(gopt_net_find_layer(net, "c", &i));
    assert_int_equal(i, 2);
    assert_status(gopt_net_find_layer(net, "zz", &i), GOPT_ERANGE, "'zz'");
    /* b's output is read by nobody */
    assert_status(gopt_net_build(net), GOPT_EINVAL, "'b'");
    gopt_net_destroy(net);

    /* recompute in a graph net */
    net = new_net(1, 4, 1, 1, 2, 1);
    lc = gopt_layer_linear(4, 4, 1);
    assert_ok(gopt_net_add(net, &lc, "a"));
    lc = gopt_layer_config_default(GOPT_LAYER_RELU);
    assert_ok(gopt_net_add(net, &lc, "r"));
    const char *in[2] = {"r", "input"};
    assert_ok(gopt_net_add_merge(net, GOPT_LAYER_ADD, in, 2, NULL));
    assert_string_equal(gopt_net_layer_name(net, 2), "layer2");
    lc = gopt_layer_linear(4, 2, 1);
    assert_ok(gopt_net_add(net, &lc, NULL));
    assert_ok(gopt_net_set_recompute(net, 1, 1));
    assert_status(gopt_net_build(net), GOPT_EINVAL, "recompute");
    assert_ok(gopt_net_set_recompute(net, 1, 0));
    assert_ok(gopt_net_build(net));
    /* a merge layer cannot run on its own */
    float x[8] = {0};
    gopt_tensor xt = view(x, 2, 2, 4, 0, 0), yt;
    assert_status(gopt_layer_forward(gopt_net_layer(net, 2), &xt, &yt), GOPT_EINVAL, "inside its net");
    gopt_net_destroy(net);
}

/* ---- summary ------------------------------------------------------------------------------- */
static void grouped(char *b, size_t size, long long v) {
    char d[32];
    int n = snprintf(d, sizeof d, "%lld", v), o = 0;
    for (int i = 0; i < n && o + 2 < (int)size; i++) {
        if (i > 0 && (n - i) % 3 == 0) b[o++] = ',';
        b[o++] = d[i];
    }
    b[o] = '\0';
}

static void test_summary(void **state) {
    (void)state;
    gopt_resnet_config rc = gopt_resnet_config_default();
    rc.depth = 8;
    rc.max_batch = 4;
    gopt_net *net;
    assert_ok(gopt_resnet_cifar(&rc, &net));
    size_t len = gopt_net_summary(net, NULL, 0);
    assert_true(len > 200);
    char *buf = malloc(len + 1);
    assert_non_null(buf);
    assert_int_equal(gopt_net_summary(net, buf, len + 1), len);
    assert_int_equal(strlen(buf), len);
    char want[128], num[32];
    grouped(num, sizeof num, (long long)gopt_params_numel(gopt_net_params(net)));
    snprintf(want, sizeof want, "Total params: %s\n", num);
    assert_non_null(strstr(buf, want));
    snprintf(want, sizeof want, "Trainable params: %s\n", num);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "Frozen params: 0\n"));
    assert_non_null(strstr(buf, "layer1.0"));
    assert_non_null(strstr(buf, "basic_block"));
    assert_non_null(strstr(buf, "(N,16,32,32)"));
    assert_non_null(strstr(buf, "(N,10)"));
    assert_non_null(strstr(buf, "conv1 "));
    grouped(num, sizeof num, (long long)gopt_net_forward_flops(net));
    snprintf(want, sizeof want, "Forward FLOPs per sample: %s\n", num);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "Activation memory at max_batch 4"));
    /* cut: NUL-terminated, same length returned */
    char small[50];
    assert_int_equal(gopt_net_summary(net, small, sizeof small), len);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, buf, sizeof small - 1);
    /* frozen layer's parameters */
    int fc;
    assert_ok(gopt_net_find_layer(net, "fc", &fc));
    (void)fc;
    assert_ok(gopt_net_freeze(net, "fc", 1)); /* the layer and its tensors */
    assert_int_equal(gopt_net_summary(net, buf, len + 1) >= len, 1);
    free(buf);
    len = gopt_net_summary(net, NULL, 0);
    buf = malloc(len + 1);
    gopt_net_summary(net, buf, len + 1);
    assert_non_null(strstr(buf, "Frozen params: 650\n")); /* 64*10 + 10 */
    assert_non_null(strstr(buf, "650 (F)"));
    assert_ok(gopt_net_freeze(net, "fc", 0));
    assert_ok(gopt_net_freeze(net, "fc.bias", 1)); /* one tensor of the layer */
    free(buf);
    len = gopt_net_summary(net, NULL, 0);
    buf = malloc(len + 1);
    assert_non_null(buf);
    assert_int_equal(gopt_net_summary(net, buf, len + 1), len);
    assert_non_null(strstr(buf, "Frozen params: 10\n"));
    assert_non_null(strstr(buf, "650 (part F)"));
    free(buf);
    gopt_net_destroy(net);

    /* a graph net: inputs listed for the merge and the branch, not for sequential layers */
    net = new_net(1, 4, 1, 1, 2, 1);
    gopt_layer_config lc = gopt_layer_linear(4, 4, 1);
    assert_ok(gopt_net_add(net, &lc, "a"));
    assert_ok(gopt_net_add_from(net, &lc, "b", "input"));
    const char *in[2] = {"a", "b"};
    assert_ok(gopt_net_add_merge(net, GOPT_LAYER_CONCAT, in, 2, "cat"));
    char text[4096];
    len = gopt_net_summary(net, text, sizeof text);
    assert_true(len < sizeof text);
    assert_non_null(strstr(text, "a,b"));
    assert_non_null(strstr(text, "concat"));
    assert_non_null(strstr(text, "(N,8)"));
    assert_non_null(strstr(text, " input "));
    assert_non_null(strstr(text, "Total params: 40\n"));
    assert_int_equal(gopt_net_summary(NULL, text, sizeof text), 0);
    assert_string_equal(text, "");
    gopt_net_destroy(net);
}

/* ---- state, recalibration, timing, tokens in graph nets -------------------------------- */
static gopt_status next_batch(void *user, int64_t i, gopt_tensor *x) {
    (void)i;
    *x = *(gopt_tensor *)user;
    return GOPT_OK;
}

static void test_graph_net_services(void **state) {
    (void)state;
    gopt_net *net = new_net(3, 3, 6, 6, 4, 31);
    gopt_layer_config lc = gopt_layer_conv2d(3, 4, 3, 1, 1, 0);
    assert_ok(gopt_net_add(net, &lc, "a"));
    lc = gopt_layer_batchnorm2d(4, 1);
    assert_ok(gopt_net_add(net, &lc, "a_bn"));
    lc = gopt_layer_conv2d(3, 4, 1, 1, 0, 0);
    assert_ok(gopt_net_add_from(net, &lc, "b", "input"));
    lc = gopt_layer_batchnorm2d(4, 0);
    assert_ok(gopt_net_add(net, &lc, "b_bn"));
    const char *in[2] = {"a_bn", "b_bn"};
    assert_ok(gopt_net_add_merge(net, GOPT_LAYER_ADD, in, 2, "s"));
    lc = gopt_layer_config_default(GOPT_LAYER_FLATTEN);
    assert_ok(gopt_net_add(net, &lc, "f"));
    lc = gopt_layer_linear(144, 2, 1);
    assert_ok(gopt_net_add(net, &lc, "fc"));
    assert_ok(gopt_net_build(net));
    float x[4 * 108], d[8];
    testutil_fill_normal(x, 4 * 108, 8);
    testutil_fill_normal(d, 8, 9);
    gopt_tensor xt = view(x, 4, 4, 3, 6, 6), dt = view(d, 2, 4, 2, 0, 0), lo;
    gopt_net_set_timing(net, 1);
    assert_ok(gopt_net_forward(net, &xt, &lo));
    assert_ok(gopt_net_backward(net, &dt));
    assert_status(gopt_net_backward(net, &dt), GOPT_ESTATE, "already");
    gopt_net_timing tm;
    gopt_net_timing_get(net, &tm);
    assert_int_equal(tm.calls[GOPT_LAYER_ADD], 1);
    assert_true(tm.backward_s[GOPT_LAYER_ADD] >= 0.0);
    /* state: two batchnorms, saved and loaded */
    size_t sz = gopt_net_state_size(net);
    char *blob = malloc(sz);
    assert_ok(gopt_net_state_save(net, blob, sz));
    assert_int_equal(gopt_net_buffer_count(net), 4);
    gopt_tensor rm;
    assert_ok(gopt_net_find_buffer(net, "b_bn.running_mean", &rm));
    const float saved = rm.data[0];
    assert_ok(gopt_net_recalibrate_bn(net, 2, next_batch, &xt));
    assert_true(rm.data[0] != saved);
    assert_ok(gopt_net_state_load(net, blob, sz));
    assert_true(rm.data[0] == saved);
    free(blob);
    gopt_net_destroy(net);

    /* tokens: embedding, a time-distributed linear and a residual add of the two */
    net = new_net(1, 5, 1, 1, 3, 32);
    lc = gopt_layer_embedding(10, 4);
    assert_ok(gopt_net_add(net, &lc, "emb"));
    lc = gopt_layer_linear(4, 4, 1);
    assert_ok(gopt_net_add(net, &lc, "a"));
    const char *in2[2] = {"emb", "a"};
    assert_ok(gopt_net_add_merge(net, GOPT_LAYER_ADD, in2, 2, "s"));
    lc = gopt_layer_linear(4, 3, 1);
    assert_ok(gopt_net_add(net, &lc, "fc"));
    assert_ok(gopt_net_build(net));
    int32_t tok[15];
    for (int i = 0; i < 15; i++) tok[i] = (i * 7) % 10;
    float dd[45];
    testutil_fill_normal(dd, 45, 3);
    gopt_tensor ddt;
    int64_t ds[3] = {3, 5, 3};
    assert_ok(gopt_tensor_view(dd, 3, ds, &ddt));
    assert_ok(gopt_net_forward_tokens(net, tok, 3, &lo));
    assert_ok(gopt_net_backward(net, &ddt));
    int idx;
    gopt_param_info pi;
    assert_ok(gopt_params_find(gopt_net_params(net), "emb.weight", &idx));
    assert_ok(gopt_params_info(gopt_net_params(net), idx, &pi));
    double s = 0.0;
    for (int64_t i = 0; i < pi.grad.numel; i++) s += fabs(pi.grad.data[i]);
    assert_true(s > 0.0 && isfinite(s));
    tok[4] = 10;
    assert_status(gopt_net_forward_tokens(net, tok, 3, &lo), GOPT_EINVAL, "token id 10");
    gopt_net_destroy(net);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_block_identity), cmocka_unit_test(test_user_block_projection),
        cmocka_unit_test(test_resnet_graph_twin),
        cmocka_unit_test(test_two_branch_concat_fd), cmocka_unit_test(test_three_consumers_fd),
        cmocka_unit_test(test_frozen_skip),          cmocka_unit_test(test_errors),
        cmocka_unit_test(test_summary),              cmocka_unit_test(test_graph_net_services),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
