/* The layers of the depth scenario: batchnorm1d (torch.nn.BatchNorm1d over (N,C) and
 * (N,C,L)) and residual_dense (the full pre-activation MLP block, relu/tanh/sigmoid, with
 * and without BatchNorm). Finite-difference gradient checks, PyTorch 1.13 references
 * (tests/depth_layers_golden.h, made by tests/golden/gen_depth_layers.py), parameter
 * names, a net of blocks, and the errors. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>

#include "depth_layers_golden.h"
#include "nn/layer.h"

/* ---- finite differences of sum(y * r) ---------------------------------------------------- */

typedef struct fd_setup {
    gopt_params *params;
    gopt_layer *layer;
    float *x, *r, *dy, *dx;
    int64_t xn, yn;
    gopt_tensor tx, tdx;
} fd_setup;

static double objective(fd_setup *s) {
    gopt_tensor y;
    assert_ok(gopt_layer_forward(s->layer, &s->tx, &y));
    double acc = 0.0;
    for (int64_t i = 0; i < s->yn; i++) acc += (double)y.data[i] * s->r[i];
    return acc;
}

static double central(fd_setup *s, float *v, int64_t i, float h) {
    float keep = v[i];
    v[i] = keep + h;
    double lp = objective(s);
    v[i] = keep - h;
    double lm = objective(s);
    v[i] = keep;
    return (lp - lm) / (2.0 * h);
}

/* every coordinate; a ReLU kink crossed inside [-h, h] is retried with smaller steps */
static void fd_compare(fd_setup *s, float *v, const float *ana, int64_t n, float h, double atol, double rtol,
                       const char *what) {
    for (int64_t i = 0; i < n; i++) {
        double num = central(s, v, i, h);
        if (fabs(num - ana[i]) <= atol + rtol * fabs(num)) continue;
        int ok = 0;
        for (float hh = h / 4; !ok && hh > h / 100; hh /= 4) {
            num = central(s, v, i, hh);
            ok = fabs(num - ana[i]) <= 2 * atol + rtol * fabs(num);
        }
        if (!ok) fail_msg("%s[%lld]: finite difference %.6g, analytic %.6g", what, (long long)i, num, (double)ana[i]);
    }
}

static void fd_check(const gopt_layer_config *cfg, int ndim, const int64_t *shape, int n, int training, float h,
                     double atol, double rtol) {
    fd_setup s;
    memset(&s, 0, sizeof s);
    assert_ok(gopt_params_create(&s.params));
    assert_ok(gopt_layer_create(cfg, ndim, shape, n, s.params, "l", &s.layer));
    gopt_rng rng;
    gopt_rng_seed(&rng, 7);
    assert_ok(gopt_params_finalize(s.params));
    assert_ok(gopt_layer_init_params(s.layer, GOPT_INIT_TORCH_DEFAULT, &rng));
    int np = gopt_params_count(s.params);
    for (int i = 0; i < np; i++) { /* a BN affine away from 1, 0 so that every term matters */
        gopt_param_info info;
        assert_ok(gopt_params_info(s.params, i, &info));
        if (info.tag == GOPT_TAG_NORM)
            for (int64_t k = 0; k < info.value.numel; k++) info.value.data[k] = 0.5f + gopt_rng_uniform(&rng);
    }
    if (!training) { /* running statistics that are not the identity's */
        gopt__bn *bn[3];
        int nb = gopt__layer_bns(s.layer, bn);
        for (int b = 0; b < nb; b++)
            for (int c = 0; c < bn[b]->C; c++) {
                bn[b]->running_mean[c] = gopt_rng_normal(&rng) * 0.3f;
                bn[b]->running_var[c] = 0.5f + gopt_rng_uniform(&rng);
            }
    }
    int64_t xs[4] = {n, 1, 1, 1};
    s.xn = n;
    for (int i = 0; i < ndim; i++) {
        xs[i + 1] = shape[i];
        s.xn *= shape[i];
    }
    s.x = malloc(sizeof(float) * (size_t)s.xn);
    s.dx = malloc(sizeof(float) * (size_t)s.xn);
    for (int64_t i = 0; i < s.xn; i++) s.x[i] = gopt_rng_normal(&rng);
    assert_ok(gopt_tensor_view(s.x, ndim + 1, xs, &s.tx));
    assert_ok(gopt_tensor_view(s.dx, ndim + 1, xs, &s.tdx));
    gopt_layer_set_training(s.layer, training);
    gopt_tensor y;
    assert_ok(gopt_layer_forward(s.layer, &s.tx, &y));
    s.yn = y.numel;
    s.r = malloc(sizeof(float) * (size_t)s.yn);
    s.dy = malloc(sizeof(float) * (size_t)s.yn);
    for (int64_t i = 0; i < s.yn; i++) s.dy[i] = s.r[i] = gopt_rng_normal(&rng);
    gopt_tensor tdy;
    assert_ok(gopt_tensor_view(s.dy, y.ndim, y.shape, &tdy));
    gopt_params_zero_grad(s.params);
    assert_ok(gopt_layer_backward(s.layer, &s.tx, &tdy, &s.tdx));
    fd_compare(&s, s.x, s.dx, s.xn, h, atol, rtol, "dinput");
    int64_t pn = gopt_params_numel(s.params);
    float *g = malloc(sizeof(float) * (size_t)pn);
    memcpy(g, gopt_params_grads(s.params), sizeof(float) * (size_t)pn);
    fd_compare(&s, gopt_params_values(s.params), g, pn, h, atol, rtol, "dparam");
    /* backward accumulates: a second backward (dx skipped) doubles the gradients */
    for (int64_t i = 0; i < s.yn; i++) s.dy[i] = s.r[i];
    assert_ok(gopt_layer_forward(s.layer, &s.tx, &y));
    assert_ok(gopt_layer_backward(s.layer, &s.tx, &tdy, NULL));
    const float *g2 = gopt_params_grads(s.params);
    for (int64_t i = 0; i < pn; i++) assert_true(fabsf(g2[i] - 2.0f * g[i]) <= 1e-5f + 1e-4f * fabsf(g[i]));
    free(g);
    free(s.x);
    free(s.dx);
    free(s.r);
    free(s.dy);
    gopt_layer_destroy(s.layer);
    gopt_params_destroy(s.params);
}

static void test_fd_batchnorm1d(void **state) {
    (void)state;
    gopt_layer_config c = gopt_layer_batchnorm1d(4);
    const int64_t nc[1] = {4}, ncl[2] = {4, 3};
    fd_check(&c, 1, nc, 5, 1, 1e-2f, 2e-3, 2e-2);
    fd_check(&c, 1, nc, 5, 0, 1e-2f, 2e-3, 2e-2);
    fd_check(&c, 2, ncl, 3, 1, 1e-2f, 2e-3, 2e-2);
    c.relu = 1;
    fd_check(&c, 1, nc, 5, 1, 1e-3f, 5e-3, 2e-2);
}

static void test_fd_residual_dense(void **state) {
    (void)state;
    const int64_t in[1] = {5};
    const gopt_layer_type acts[3] = {GOPT_LAYER_RELU, GOPT_LAYER_TANH, GOPT_LAYER_SIGMOID};
    for (int a = 0; a < 3; a++)
        for (int bn = 0; bn < 2; bn++) {
            gopt_layer_config c = gopt_layer_residual_dense(5, acts[a], bn);
            fd_check(&c, 1, in, 4, 1, 1e-2f, 3e-3, 2e-2);
            fd_check(&c, 1, in, 4, 0, 1e-2f, 3e-3, 2e-2);
        }
}

/* ---- PyTorch references ------------------------------------------------------------------- */

static void set_params(gopt_params *p, const float *values, int64_t n) {
    int64_t off = 0;
    for (int i = 0; i < gopt_params_count(p); i++) {
        gopt_param_info info;
        assert_ok(gopt_params_info(p, i, &info));
        memcpy(info.value.data, values + off, sizeof(float) * (size_t)info.value.numel);
        off += info.value.numel;
    }
    assert_int_equal(off, n);
}

static void expect_close(const float *got, const float *want, int64_t n, double atol, double rtol, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= atol + rtol * fabs(want[i])))
            fail_msg("%s[%lld]: %.7g, PyTorch %.7g", what, (long long)i, (double)got[i], (double)want[i]);
}

static void expect_grads(gopt_params *p, const float *want, int64_t n, const char *what) {
    int64_t off = 0;
    for (int i = 0; i < gopt_params_count(p); i++) {
        gopt_param_info info;
        assert_ok(gopt_params_info(p, i, &info));
        expect_close(info.grad.data, want + off, info.grad.numel, 2e-5, 2e-4, what);
        off += info.grad.numel;
    }
    assert_int_equal(off, n);
}

typedef struct golden_case {
    const char *name;
    gopt_layer_config cfg;
    int ndim, n;
    int64_t shape[2];
    const float *x, *dy, *params;
    int64_t xn, pn;
    const float *y[2], *dx[2], *grads[2]; /* [train, eval] */
    const float *running;                 /* per BN: mean then var, C each */
} golden_case;

static void run_golden(const golden_case *gc) {
    gopt_params *p;
    gopt_layer *l;
    assert_ok(gopt_params_create(&p));
    assert_ok(gopt_layer_create(&gc->cfg, gc->ndim, gc->shape, gc->n, p, "l", &l));
    assert_ok(gopt_params_finalize(p));
    set_params(p, gc->params, gc->pn);
    int64_t xs[3] = {gc->n, gc->shape[0], gc->shape[1]};
    float *x = malloc(sizeof(float) * (size_t)gc->xn), *dy = malloc(sizeof(float) * (size_t)gc->xn),
          *dx = malloc(sizeof(float) * (size_t)gc->xn);
    gopt_tensor tx, tdy, tdx, y;
    assert_ok(gopt_tensor_view(x, gc->ndim + 1, xs, &tx));
    assert_ok(gopt_tensor_view(dy, gc->ndim + 1, xs, &tdy));
    assert_ok(gopt_tensor_view(dx, gc->ndim + 1, xs, &tdx));
    for (int mode = 0; mode < 2; mode++) { /* train, then eval with the running statistics it left */
        char what[96];
        memcpy(x, gc->x, sizeof(float) * (size_t)gc->xn);
        memcpy(dy, gc->dy, sizeof(float) * (size_t)gc->xn);
        gopt_layer_set_training(l, mode == 0);
        gopt_params_zero_grad(p);
        assert_ok(gopt_layer_forward(l, &tx, &y));
        snprintf(what, sizeof what, "%s %s y", gc->name, mode ? "eval" : "train");
        expect_close(y.data, gc->y[mode], gc->xn, 2e-5, 2e-4, what);
        if (mode == 0 && gc->running) {
            gopt__bn *bn[3];
            int nb = gopt__layer_bns(l, bn);
            assert_true(nb >= 1);
            for (int b = 0; b < nb; b++) {
                snprintf(what, sizeof what, "%s running stats of bn %d", gc->name, b);
                expect_close(bn[b]->running_mean, gc->running + 2 * b * bn[b]->C, bn[b]->C, 1e-6, 1e-5, what);
                expect_close(bn[b]->running_var, gc->running + (2 * b + 1) * bn[b]->C, bn[b]->C, 1e-6, 1e-5, what);
            }
        }
        /* dx written over x's own buffer, as a net does */
        assert_ok(gopt_layer_backward(l, &tx, &tdy, &tx));
        snprintf(what, sizeof what, "%s %s dx", gc->name, mode ? "eval" : "train");
        expect_close(x, gc->dx[mode], gc->xn, 2e-5, 2e-4, what);
        snprintf(what, sizeof what, "%s %s parameter gradients", gc->name, mode ? "eval" : "train");
        expect_grads(p, gc->grads[mode], gc->pn, what);
    }
    free(x);
    free(dy);
    free(dx);
    gopt_layer_destroy(l);
    gopt_params_destroy(p);
}

#define NELEM(a) ((int64_t)(sizeof(a) / sizeof((a)[0])))
#define BN_CASE(tag, nd, s0, s1)                                                                          \
    {#tag, gopt_layer_batchnorm1d(6), nd, 5, {s0, s1}, tag##_x, tag##_dy, tag##_params, NELEM(tag##_x),      \
     NELEM(tag##_params), {tag##_train_y, tag##_eval_y}, {tag##_train_dx, tag##_eval_dx},                  \
     {tag##_train_grads, tag##_eval_grads}, tag##_running}
#define RD_CASE(tag, act, bn, running)                                                                     \
    {#tag, gopt_layer_residual_dense(6, act, bn), 1, 5, {6, 1}, tag##_x, tag##_dy, tag##_params,            \
     NELEM(tag##_x), NELEM(tag##_params), {tag##_train_y, tag##_eval_y}, {tag##_train_dx, tag##_eval_dx}, \
     {tag##_train_grads, tag##_eval_grads}, running}

static void test_golden_batchnorm1d(void **state) {
    (void)state;
    const golden_case cases[] = {BN_CASE(bn1d_nc, 1, 6, 1), BN_CASE(bn1d_ncl, 2, 6, 3)};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_golden(&cases[i]);
}

static void test_golden_residual_dense(void **state) {
    (void)state;
    const golden_case cases[] = {
        RD_CASE(rd_relu_bn0, GOPT_LAYER_RELU, 0, NULL),
        RD_CASE(rd_relu_bn1, GOPT_LAYER_RELU, 1, rd_relu_bn1_running),
        RD_CASE(rd_tanh_bn0, GOPT_LAYER_TANH, 0, NULL),
        RD_CASE(rd_tanh_bn1, GOPT_LAYER_TANH, 1, rd_tanh_bn1_running),
        RD_CASE(rd_sigmoid_bn0, GOPT_LAYER_SIGMOID, 0, NULL),
        RD_CASE(rd_sigmoid_bn1, GOPT_LAYER_SIGMOID, 1, rd_sigmoid_bn1_running),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_golden(&cases[i]);
}

/* ---- names, nets, errors ------------------------------------------------------------------- */

static void test_names_and_monitor_layers(void **state) {
    (void)state;
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = 4;
    nc.in_ndim = 1;
    nc.in_shape[0] = 8;
    gopt_net *net;
    assert_ok(gopt_net_create(&nc, &net));
    gopt_layer_config c = gopt_layer_residual_dense(8, GOPT_LAYER_TANH, 1);
    assert_ok(gopt_net_add(net, &c, "block0"));
    c = gopt_layer_batchnorm1d(8);
    assert_ok(gopt_net_add(net, &c, "bn"));
    c = gopt_layer_linear(8, 3, 1);
    assert_ok(gopt_net_add(net, &c, "fc"));
    assert_ok(gopt_net_build(net));
    gopt_params *p = gopt_net_params(net);
    const char *want[] = {"block0.bn1.weight", "block0.bn1.bias", "block0.fc1.weight", "block0.fc1.bias",
                          "block0.bn2.weight", "block0.bn2.bias", "block0.fc2.weight", "block0.fc2.bias",
                          "bn.weight",         "bn.bias",         "fc.weight",         "fc.bias"};
    const gopt_param_tag tags[] = {GOPT_TAG_NORM, GOPT_TAG_NORM, GOPT_TAG_WEIGHT, GOPT_TAG_BIAS,
                                   GOPT_TAG_NORM, GOPT_TAG_NORM, GOPT_TAG_WEIGHT, GOPT_TAG_BIAS,
                                   GOPT_TAG_NORM, GOPT_TAG_NORM, GOPT_TAG_WEIGHT, GOPT_TAG_BIAS};
    assert_int_equal(gopt_params_count(p), 12);
    for (int i = 0; i < 12; i++) {
        gopt_param_info info;
        assert_ok(gopt_params_info(p, i, &info));
        assert_string_equal(info.name, want[i]);
        assert_int_equal(info.tag, tags[i]);
    }
    /* both BNs of the block and the standalone one are net state: 3 x (mean, var) of 8 */
    size_t with_bn = gopt_net_state_size(net);
    assert_true(with_bn >= 3 * 2 * 8 * sizeof(float));
    /* forward and backward through the net: finite, and the block's first linear gets a gradient */
    float x[4 * 8], d[4 * 3];
    for (int i = 0; i < 32; i++) x[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
    for (int i = 0; i < 12; i++) d[i] = (float)(i % 3) - 1.0f;
    gopt_tensor tx, logits, td;
    assert_ok(gopt_tensor_view(x, 2, (const int64_t[]){4, 8}, &tx));
    assert_ok(gopt_tensor_view(d, 2, (const int64_t[]){4, 3}, &td));
    assert_ok(gopt_net_forward(net, &tx, &logits));
    assert_ok(gopt_net_backward(net, &td));
    gopt_param_info info;
    assert_ok(gopt_params_info(p, 2, &info));
    double sq = 0;
    for (int64_t i = 0; i < info.grad.numel; i++) sq += (double)info.grad.data[i] * info.grad.data[i];
    assert_true(isfinite(sq) && sq > 0);
    gopt_net_destroy(net);
}

static void test_errors(void **state) {
    (void)state;
    gopt_params *p;
    assert_ok(gopt_params_create(&p));
    gopt_layer *l = NULL;
    const int64_t f6[1] = {6}, f5[1] = {5}, chw[3] = {6, 2, 2}, ncl[2] = {6, 3};
    gopt_layer_config c = gopt_layer_residual_dense(6, GOPT_LAYER_GELU, 0);
    assert_status(gopt_layer_create(&c, 1, f6, 2, p, "r", &l), GOPT_EINVAL, "relu, tanh or sigmoid");
    assert_null(l);
    c = gopt_layer_residual_dense(6, GOPT_LAYER_RELU, 2);
    assert_status(gopt_layer_create(&c, 1, f6, 2, p, "r", &l), GOPT_EINVAL, "batchnorm = 2");
    c = gopt_layer_residual_dense(0, GOPT_LAYER_RELU, 0);
    assert_status(gopt_layer_create(&c, 1, f6, 2, p, "r", &l), GOPT_EINVAL, "residual_dense");
    c = gopt_layer_residual_dense(6, GOPT_LAYER_RELU, 0);
    c.out_features = 4;
    assert_status(gopt_layer_create(&c, 1, f6, 2, p, "r", &l), GOPT_EINVAL, "equal");
    c = gopt_layer_residual_dense(6, GOPT_LAYER_SIGMOID, 1);
    assert_status(gopt_layer_create(&c, 1, f5, 2, p, "r", &l), GOPT_ESHAPE, "(N,6)");
    assert_status(gopt_layer_create(&c, 2, ncl, 2, p, "r", &l), GOPT_ESHAPE, "(N,6)");
    c = gopt_layer_batchnorm1d(6);
    assert_status(gopt_layer_create(&c, 1, f5, 2, p, "b", &l), GOPT_ESHAPE, "(N,6) or (N,6,L)");
    assert_status(gopt_layer_create(&c, 3, chw, 2, p, "b", &l), GOPT_ESHAPE, "batchnorm1d");
    c = gopt_layer_batchnorm1d(0);
    assert_status(gopt_layer_create(&c, 1, f6, 2, p, "b", &l), GOPT_EINVAL, "features = 0");
    c = gopt_layer_batchnorm1d(6);
    c.momentum = 2.0f;
    assert_status(gopt_layer_create(&c, 1, f6, 2, p, "b", &l), GOPT_EINVAL, "momentum");
    /* running statistics: batchnorm1d yes, a block no */
    c = gopt_layer_batchnorm1d(6);
    assert_ok(gopt_layer_create(&c, 1, f6, 2, p, "b", &l));
    float *mean = NULL, *var = NULL;
    assert_ok(gopt_layer_bn_running(l, &mean, &var));
    assert_true(mean && var && mean[0] == 0.0f && var[5] == 1.0f);
    gopt_layer_destroy(l);
    c = gopt_layer_residual_dense(6, GOPT_LAYER_RELU, 1);
    assert_ok(gopt_layer_create(&c, 1, f6, 2, p, "r", &l));
    assert_status(gopt_layer_bn_running(l, &mean, &var), GOPT_EINVAL, "residual_dense");
    /* a batch above max_batch */
    float x[3 * 6] = {0};
    gopt_tensor tx, y;
    assert_ok(gopt_tensor_view(x, 2, (const int64_t[]){3, 6}, &tx));
    assert_ok(gopt_params_finalize(p));
    assert_status(gopt_layer_forward(l, &tx, &y), GOPT_ESHAPE, "batch at most 2");
    gopt_layer_destroy(l);
    gopt_params_destroy(p);
    assert_string_equal(gopt_layer_type_name(GOPT_LAYER_BATCHNORM1D), "batchnorm1d");
    assert_string_equal(gopt_layer_type_name(GOPT_LAYER_RESIDUAL_DENSE), "residual_dense");
}

static void test_out_of_memory(void **state) {
    (void)state;
    const int64_t in[1] = {6};
    gopt_layer_config c = gopt_layer_residual_dense(6, GOPT_LAYER_TANH, 1);
    int ok = 0;
    for (long budget = 0; budget < 40 && !ok; budget++) {
        gopt_params *p;
        assert_ok(gopt_params_create(&p));
        gopt_layer *l = NULL;
        testutil_fail_after(budget);
        gopt_status s = gopt_layer_create(&c, 1, in, 2, p, "r", &l);
        testutil_alloc_reset();
        if (s == GOPT_OK) {
            ok = 1;
            assert_true(budget > 5);
            gopt_layer_destroy(l);
        } else {
            assert_int_equal(s, GOPT_ENOMEM);
            assert_null(l);
        }
        gopt_params_destroy(p);
    }
    assert_true(ok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_batchnorm1d),
        cmocka_unit_test(test_fd_residual_dense),
        cmocka_unit_test(test_golden_batchnorm1d),
        cmocka_unit_test(test_golden_residual_dense),
        cmocka_unit_test(test_names_and_monitor_layers),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
