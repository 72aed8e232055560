#define _POSIX_C_SOURCE 200809L
/* NaN and Inf in the input data (issue 15): gopt_monitor_check_input counts them, the next
 * before_step reports them and skips the step (parameters and optimizer state untouched),
 * the counts, the exported row and the state blob carry them, older blobs still load, and
 * end to end a small net fed a batch with a NaN pixel skips the step even where the NaN
 * never reaches the loss or the gradients (swallowed by a max-pool or a ReLU). */
#include <math.h>
#include <stdio.h>

#include "testutil.h"

static gopt_params *make_params(void) {
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    int64_t w[2] = {3, 4}, b[1] = {3};
    assert_ok(gopt_params_add(p, "fc.weight", 2, w, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(p, "fc.bias", 1, b, GOPT_TAG_BIAS, NULL));
    assert_ok(gopt_params_finalize(p));
    float *v = gopt_params_values(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) v[i] = 0.1f * (float)(i + 1);
    return p;
}

static void fill_grads(gopt_params *p) {
    float *g = gopt_params_grads(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) g[i] = 0.05f * (float)((i % 5) - 2) + 0.01f;
}

#define BATCH 96 /* e.g. 2 images of 3 x 4 x 4 */

static void finite_batch(float *x) {
    for (int i = 0; i < BATCH; i++) x[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;
}

/* Everything a skipped step must leave alone: the parameters and the optimizer's state. */
typedef struct snap {
    float values[15];
    unsigned char *opt;
    size_t opt_size;
} snap;

static void take(snap *s, gopt_params *p, gopt_optim *o) {
    memcpy(s->values, gopt_params_values(p), sizeof s->values);
    s->opt_size = gopt_optim_state_size(o);
    s->opt = malloc(s->opt_size);
    assert_ok(gopt_optim_state_save(o, s->opt, s->opt_size));
}

static void assert_untouched(snap *s, gopt_params *p, gopt_optim *o) {
    assert_memory_equal(s->values, gopt_params_values(p), sizeof s->values);
    unsigned char *now = malloc(s->opt_size);
    assert_ok(gopt_optim_state_save(o, now, s->opt_size));
    assert_memory_equal(now, s->opt, s->opt_size);
    free(now);
    free(s->opt);
}

/* One monitored step over the batch x: finite gradients and loss whatever x holds. */
static gopt_monitor_report step(gopt_monitor *m, gopt_optim *o, gopt_params *p, const float *x) {
    fill_grads(p);
    assert_ok(gopt_monitor_check_input(m, x, BATCH));
    gopt_monitor_report r;
    assert_ok(gopt_monitor_before_step(m, 0.75, &r));
    if (r.apply) {
        assert_ok(gopt_optim_step(o));
        assert_ok(gopt_monitor_after_step(m));
    }
    gopt_optim_zero_grad(o);
    return r;
}

static void test_nan_then_inf_then_finite(void **state) {
    (void)state;
    gopt_params *p = make_params();
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_ADAM);
    oc.lr = 0.01f;
    gopt_optim *o = NULL;
    assert_ok(gopt_optim_create(&oc, p, &o));
    gopt_monitor_config mc = gopt_monitor_config_default();
    gopt_monitor *m = NULL;
    assert_ok(gopt_monitor_create(&mc, p, o, &m));
    float x[BATCH];

    finite_batch(x); /* a normal step first: Adam has state to protect */
    gopt_monitor_report r = step(m, o, p, x);
    assert_true(r.apply);
    assert_int_equal(r.nonfinite_input, 0);

    /* one NaN pixel: reported, skipped, nothing changed, though gradients and loss are finite */
    finite_batch(x);
    x[37] = NAN;
    snap s;
    take(&s, p, o);
    r = step(m, o, p, x);
    assert_int_equal(r.nonfinite_input, 1);
    assert_false(r.apply);
    assert_false(r.nonfinite_grad);
    assert_false(r.nonfinite_loss);
    assert_untouched(&s, p, o);
    assert_int_equal(gopt_optim_step_count(o), 1);

    /* CSV: nonfinite_input is the last column, JSON Lines a key after the tensors */
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_ok(gopt_monitor_write_row(m, f, GOPT_MONITOR_CSV, 1));
    assert_ok(gopt_monitor_write_row(m, f, GOPT_MONITOR_JSONL, 0));
    fclose(f);
    const char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_true(nl - out > 16 && strncmp(nl - 16, ",nonfinite_input", 16) == 0);
    const char *lead = "step,applied,loss,zscore,grad_norm,lr,nonfinite_grad,"; /* old columns in place */
    assert_true(strncmp(out, lead, strlen(lead)) == 0);
    const char *row = nl + 1, *row_end = strchr(row, '\n');
    assert_true(strncmp(row, "1,0,", 4) == 0);
    assert_true(row_end[-1] == '1' && row_end[-2] == ',');
    assert_non_null(strstr(row_end + 1, "}},\"nonfinite_input\":1}\n"));
    free(out);

    /* one +Inf and, in the same step's second micro-batch, one -Inf: the counts add up */
    finite_batch(x);
    x[0] = INFINITY;
    take(&s, p, o);
    fill_grads(p);
    assert_ok(gopt_monitor_check_input(m, x, BATCH));
    finite_batch(x);
    x[BATCH - 1] = -INFINITY;
    assert_ok(gopt_monitor_check_input(m, x, BATCH));
    assert_ok(gopt_monitor_before_step(m, 0.75, &r));
    assert_int_equal(r.nonfinite_input, 2);
    assert_false(r.apply);
    gopt_optim_zero_grad(o);
    assert_untouched(&s, p, o);

    /* a finite batch after: applied again, nothing carried over from the skipped steps */
    finite_batch(x);
    take(&s, p, o);
    r = step(m, o, p, x);
    assert_true(r.apply);
    assert_int_equal(r.nonfinite_input, 0);
    assert_memory_not_equal(s.values, gopt_params_values(p), sizeof s.values);
    free(s.opt);
    assert_int_equal(gopt_optim_step_count(o), 2);

    gopt_monitor_counts c;
    assert_ok(gopt_monitor_counts_get(m, &c));
    assert_int_equal(c.steps, 4);
    assert_int_equal(c.applied, 2);
    assert_int_equal(c.nonfinite_input, 2);
    assert_int_equal(c.skipped_nonfinite, 2);
    assert_int_equal(c.nonfinite_grad, 0);
    assert_int_equal(c.nonfinite_loss, 0);
    /* the grad norms of the corrupt steps stay out of the history */
    double h[8];
    int n;
    assert_ok(gopt_monitor_grad_norm_history(m, h, 8, &n));
    assert_int_equal(n, 2);

    /* argument errors */
    assert_status(gopt_monitor_check_input(NULL, x, BATCH), GOPT_EINVAL, "m");
    assert_status(gopt_monitor_check_input(m, NULL, 3), GOPT_EINVAL, "x");
    assert_ok(gopt_monitor_check_input(m, NULL, 0));

    gopt_monitor_destroy(m);
    gopt_optim_destroy(o);
    gopt_params_destroy(p);
}

/* skip_nonfinite = 0: flagged and counted, applied; the LR back-off applies to input skips */
static void test_flag_only_and_backoff(void **state) {
    (void)state;
    gopt_params *p = make_params();
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.1f;
    gopt_optim *o = NULL;
    assert_ok(gopt_optim_create(&oc, p, &o));
    gopt_monitor_config mc = gopt_monitor_config_default();
    mc.skip_nonfinite = 0;
    gopt_monitor *m = NULL;
    assert_ok(gopt_monitor_create(&mc, p, o, &m));
    float x[BATCH];
    finite_batch(x);
    x[5] = NAN;
    gopt_monitor_report r = step(m, o, p, x);
    assert_int_equal(r.nonfinite_input, 1);
    assert_true(r.apply);
    gopt_monitor_counts c;
    assert_ok(gopt_monitor_counts_get(m, &c));
    assert_int_equal(c.nonfinite_input, 1);
    assert_int_equal(c.skipped_nonfinite, 0);
    gopt_monitor_destroy(m);

    mc.skip_nonfinite = 1;
    mc.nonfinite_lr_backoff = 0.5;
    assert_ok(gopt_monitor_create(&mc, p, o, &m));
    r = step(m, o, p, x);
    assert_false(r.apply);
    assert_true(gopt_optim_get_lr(o, 0) == 0.05f);
    assert_ok(gopt_monitor_counts_get(m, &c));
    assert_int_equal(c.lr_backoffs, 1);
    gopt_monitor_destroy(m);
    gopt_optim_destroy(o);
    gopt_params_destroy(p);
}

/* The count is in the state (MON3); MON2 blobs (without it) still load with 0. */
static void test_state(void **state) {
    (void)state;
    gopt_params *p = make_params();
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    gopt_optim *o = NULL;
    assert_ok(gopt_optim_create(&oc, p, &o));
    gopt_monitor_config mc = gopt_monitor_config_default();
    gopt_monitor *a = NULL, *b = NULL;
    assert_ok(gopt_monitor_create(&mc, p, o, &a));
    assert_ok(gopt_monitor_create(&mc, p, o, &b));
    float x[BATCH];
    for (int k = 0; k < 5; k++) {
        finite_batch(x);
        if (k % 2) x[k] = NAN;
        step(a, o, p, x);
    }
    size_t size = gopt_monitor_state_size(a);
    unsigned char *buf = malloc(size);
    assert_ok(gopt_monitor_state_save(a, buf, size));
    assert_int_equal(buf[3], '3');
    assert_ok(gopt_monitor_state_load(b, buf, size));
    gopt_monitor_counts ca, cb;
    assert_ok(gopt_monitor_counts_get(a, &ca));
    assert_ok(gopt_monitor_counts_get(b, &cb));
    assert_int_equal(cb.nonfinite_input, 2);
    assert_memory_equal(&ca, &cb, sizeof ca);

    /* a count above the step count is refused and leaves the monitor unchanged */
    unsigned char *bad = malloc(size);
    memcpy(bad, buf, size);
    int64_t big = 99;
    memcpy(bad + size - sizeof big, &big, sizeof big);
    assert_status(gopt_monitor_state_load(b, bad, size), GOPT_EFORMAT, "nonfinite_input = 99");
    assert_ok(gopt_monitor_counts_get(b, &cb));
    assert_int_equal(cb.nonfinite_input, 2);

    /* MON2: the same blob without its last 8 bytes */
    memcpy(bad, buf, size - 8);
    bad[3] = '2';
    gopt_monitor *c = NULL;
    assert_ok(gopt_monitor_create(&mc, p, o, &c));
    assert_ok(gopt_monitor_state_load(c, bad, size - 8));
    gopt_monitor_counts cc;
    assert_ok(gopt_monitor_counts_get(c, &cc));
    assert_int_equal(cc.steps, 5);
    assert_int_equal(cc.skipped_nonfinite, 2);
    assert_int_equal(cc.nonfinite_input, 0);
    assert_status(gopt_monitor_state_load(c, bad, size), GOPT_EFORMAT, "MON2");
    /* a check_input pending before a load does not leak into the next step */
    x[0] = NAN;
    assert_ok(gopt_monitor_check_input(c, x, BATCH));
    assert_ok(gopt_monitor_state_load(c, bad, size - 8));
    fill_grads(p);
    gopt_monitor_report r;
    assert_ok(gopt_monitor_before_step(c, 1.0, &r));
    assert_int_equal(r.nonfinite_input, 0);
    assert_true(r.apply);
    free(bad);
    free(buf);
    gopt_monitor_destroy(a);
    gopt_monitor_destroy(b);
    gopt_monitor_destroy(c);
    gopt_optim_destroy(o);
    gopt_params_destroy(p);
}

/* End to end: input (1,4,4) -> [maxpool 3x3 stride 3 | relu] -> flatten -> linear(., 3), one
 * NaN pixel that the first layer swallows: the max-pool's floor mode never reads the last
 * row and column (its one window covers rows and columns 0..2), and our relu maps NaN to 0. Without the input check the step would be applied with
 * finite loss and gradients; with it the monitor skips it and the net is unchanged. */
static void run_swallowed(gopt_layer_type first) {
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = 2;
    nc.in_ndim = 3;
    nc.in_shape[0] = 1;
    nc.in_shape[1] = 4;
    nc.in_shape[2] = 4;
    nc.seed = 3;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&nc, &net));
    gopt_layer_config l0 = first == GOPT_LAYER_MAXPOOL2D ? gopt_layer_maxpool2d(3, 3, 0)
                                                         : gopt_layer_config_default(GOPT_LAYER_RELU);
    gopt_layer_config fl = gopt_layer_config_default(GOPT_LAYER_FLATTEN);
    int feat = first == GOPT_LAYER_MAXPOOL2D ? 1 : 16;
    gopt_layer_config fc = gopt_layer_linear(feat, 3, 1);
    assert_ok(gopt_net_add(net, &l0, "l0"));
    assert_ok(gopt_net_add(net, &fl, "flat"));
    assert_ok(gopt_net_add(net, &fc, "fc"));
    assert_ok(gopt_net_build(net));
    gopt_params *p = gopt_net_params(net);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.1f;
    oc.momentum = 0.9f;
    gopt_optim *o = NULL;
    assert_ok(gopt_optim_create(&oc, p, &o));
    gopt_monitor *m = NULL;
    gopt_monitor_config mc = gopt_monitor_config_default();
    assert_ok(gopt_monitor_create(&mc, p, o, &m));

    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)((i * 5) % 7) - 2.0f; /* has negatives for the relu */
    const int bad = first == GOPT_LAYER_MAXPOOL2D ? 15 : 6; /* maxpool: pixel (3,3), outside the window */
    x[bad] = NAN;
    int32_t y[2] = {0, 2};
    const size_t nbytes = (size_t)gopt_params_numel(p) * sizeof(float);
    float *before = malloc(nbytes);
    memcpy(before, gopt_params_values(p), nbytes);

    gopt_tensor xt, logits, dl;
    assert_ok(gopt_tensor_view(x, 4, (const int64_t[]){2, 1, 4, 4}, &xt));
    assert_ok(gopt_net_forward(net, &xt, &logits));
    float dbuf[6];
    assert_ok(gopt_tensor_view(dbuf, 2, (const int64_t[]){2, 3}, &dl));
    float loss;
    assert_ok(gopt_loss_cross_entropy(&logits, y, 0.0f, &loss, &dl));
    assert_ok(gopt_net_backward(net, &dl));
    /* the premise: nothing downstream shows the NaN */
    assert_true(isfinite(loss));
    const float *g = gopt_params_grads(p);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) assert_true(isfinite(g[i]));

    /* without the input check the monitor would apply it: a second monitor sees the same */
    gopt_monitor *blind = NULL;
    assert_ok(gopt_monitor_create(&mc, p, o, &blind));
    gopt_monitor_report rb;
    assert_ok(gopt_monitor_before_step(blind, loss, &rb));
    assert_true(rb.apply);
    gopt_monitor_destroy(blind);

    assert_ok(gopt_monitor_check_input(m, xt.data, (size_t)xt.numel));
    gopt_monitor_report r;
    assert_ok(gopt_monitor_before_step(m, loss, &r));
    assert_false(r.apply);
    assert_int_equal(r.nonfinite_input, 1);
    if (r.apply) assert_ok(gopt_optim_step(o));
    gopt_optim_zero_grad(o);
    assert_memory_equal(before, gopt_params_values(p), nbytes);
    assert_int_equal(gopt_optim_step_count(o), 0);

    /* the next, clean batch trains */
    x[bad] = 0.5f;
    assert_ok(gopt_net_forward(net, &xt, &logits));
    assert_ok(gopt_loss_cross_entropy(&logits, y, 0.0f, &loss, &dl));
    assert_ok(gopt_net_backward(net, &dl));
    assert_ok(gopt_monitor_check_input(m, xt.data, (size_t)xt.numel));
    assert_ok(gopt_monitor_before_step(m, loss, &r));
    assert_true(r.apply);
    assert_ok(gopt_optim_step(o));
    assert_memory_not_equal(before, gopt_params_values(p), nbytes);
    gopt_monitor_counts c;
    assert_ok(gopt_monitor_counts_get(m, &c));
    assert_int_equal(c.nonfinite_input, 1);
    assert_int_equal(c.skipped_nonfinite, 1);
    assert_int_equal(c.applied, 1);
    free(before);
    gopt_monitor_destroy(m);
    gopt_optim_destroy(o);
    gopt_net_destroy(net);
}

static void test_end_to_end_maxpool_skips_nan(void **state) {
    (void)state;
    run_swallowed(GOPT_LAYER_MAXPOOL2D);
}

static void test_end_to_end_relu_swallows_nan(void **state) {
    (void)state;
    run_swallowed(GOPT_LAYER_RELU);
}

/* check_input and before_step allocate nothing */
static void test_no_allocation(void **state) {
    (void)state;
    gopt_params *p = make_params();
    gopt_monitor_config mc = gopt_monitor_config_default();
    gopt_monitor *m = NULL;
    assert_ok(gopt_monitor_create(&mc, p, NULL, &m));
    float x[BATCH];
    finite_batch(x);
    x[3] = NAN;
    testutil_fail_after(0);
    assert_ok(gopt_monitor_check_input(m, x, BATCH));
    gopt_monitor_report r;
    assert_ok(gopt_monitor_before_step(m, 1.0, &r));
    testutil_alloc_reset();
    assert_int_equal(r.nonfinite_input, 1);
    gopt_monitor_destroy(m);
    gopt_params_destroy(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nan_then_inf_then_finite),
        cmocka_unit_test(test_flag_only_and_backoff),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_end_to_end_maxpool_skips_nan),
        cmocka_unit_test(test_end_to_end_relu_swallows_nan),
        cmocka_unit_test(test_no_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
