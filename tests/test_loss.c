/* Losses: finite differences of value vs gradient, stability on extreme logits, errors. */
#include "testutil.h"

#include <math.h>

typedef gopt_status (*loss_fn)(const gopt_tensor *, const gopt_tensor *, float *, gopt_tensor *);

static void fd_pair(loss_fn fn, float *x, float *t, int64_t n, int64_t rows) {
    int64_t shape[2] = {rows, n / rows};
    gopt_tensor tx, tt, td;
    float *d = malloc(sizeof(float) * (size_t)n);
    assert_ok(gopt_tensor_view(x, 2, shape, &tx));
    assert_ok(gopt_tensor_view(t, 2, shape, &tt));
    assert_ok(gopt_tensor_view(d, 2, shape, &td));
    float loss;
    assert_ok(fn(&tx, &tt, &loss, &td));
    for (int64_t i = 0; i < n; i++) {
        float keep = x[i], lp, lm, h = 1e-2f;
        x[i] = keep + h;
        assert_ok(fn(&tx, &tt, &lp, NULL));
        x[i] = keep - h;
        assert_ok(fn(&tx, &tt, &lm, NULL));
        x[i] = keep;
        double num = ((double)lp - lm) / (2.0 * h);
        assert_true(fabs(num - d[i]) <= 1e-4 + 1e-2 * fabs(num));
    }
    free(d);
}

static void test_mse_bce_fd(void **state) {
    (void)state;
    gopt_rng rng;
    gopt_rng_seed(&rng, 3);
    float x[12], t[12];
    for (int i = 0; i < 12; i++) {
        x[i] = 2.0f * gopt_rng_normal(&rng);
        t[i] = gopt_rng_uniform(&rng);
    }
    fd_pair(gopt_loss_mse, x, t, 12, 3);
    fd_pair(gopt_loss_bce_with_logits, x, t, 12, 4);
}

static void test_cross_entropy_fd_and_values(void **state) {
    (void)state;
    gopt_rng rng;
    gopt_rng_seed(&rng, 4);
    float z[4 * 5], d[4 * 5];
    int32_t y[4] = {0, 4, 2, 2};
    for (int i = 0; i < 20; i++) z[i] = gopt_rng_normal(&rng);
    int64_t s[2] = {4, 5};
    gopt_tensor tz, td;
    assert_ok(gopt_tensor_view(z, 2, s, &tz));
    assert_ok(gopt_tensor_view(d, 2, s, &td));
    for (int k = 0; k < 3; k++) {
        float eps = 0.15f * (float)k, loss;
        assert_ok(gopt_loss_cross_entropy(&tz, y, eps, &loss, &td));
        double rowsum = 0.0;
        for (int i = 0; i < 20; i++) rowsum += d[i];
        assert_true(fabs(rowsum) < 1e-6); /* softmax minus a distribution sums to 0 */
        for (int i = 0; i < 20; i++) {
            float keep = z[i], lp, lm, h = 1e-2f;
            z[i] = keep + h;
            assert_ok(gopt_loss_cross_entropy(&tz, y, eps, &lp, NULL));
            z[i] = keep - h;
            assert_ok(gopt_loss_cross_entropy(&tz, y, eps, &lm, NULL));
            z[i] = keep;
            double num = ((double)lp - lm) / (2.0 * h);
            assert_true(fabs(num - d[i]) <= 1e-4 + 1e-2 * fabs(num));
        }
    }
    /* uniform logits: loss = log C whatever the smoothing */
    for (int i = 0; i < 20; i++) z[i] = 3.0f;
    float loss;
    assert_ok(gopt_loss_cross_entropy(&tz, y, 0.3f, &loss, NULL));
    assert_float_equal(loss, logf(5.0f), 1e-6);
    /* extreme logits stay finite */
    for (int i = 0; i < 20; i++) z[i] = (i % 2) ? 1e4f : -1e4f;
    assert_ok(gopt_loss_cross_entropy(&tz, y, 0.1f, &loss, &td));
    assert_true(isfinite(loss) && loss > 1e3f);
    for (int i = 0; i < 20; i++) assert_true(isfinite(d[i]));
    int64_t correct;
    for (int i = 0; i < 20; i++) z[i] = (float)(i % 5 == y[i / 5]);
    assert_ok(gopt_accuracy_count(&tz, y, &correct));
    assert_int_equal(correct, 4);
    z[0] = -1.0f;
    assert_ok(gopt_accuracy_count(&tz, y, &correct));
    assert_int_equal(correct, 3);
}

static void test_errors(void **state) {
    (void)state;
    float a[6] = {0}, b[8] = {0};
    int64_t s23[2] = {2, 3}, s24[2] = {2, 4}, s6[1] = {6};
    gopt_tensor ta, tb, t1;
    assert_ok(gopt_tensor_view(a, 2, s23, &ta));
    assert_ok(gopt_tensor_view(b, 2, s24, &tb));
    assert_ok(gopt_tensor_view(a, 1, s6, &t1));
    float loss;
    assert_status(gopt_loss_mse(&ta, &tb, &loss, NULL), GOPT_ESHAPE, "(2,4)");
    testutil_check_detail("(2,3)");
    assert_status(gopt_loss_bce_with_logits(&ta, &ta, &loss, &tb), GOPT_ESHAPE, "(2,4)");
    assert_status(gopt_loss_mse(NULL, &ta, &loss, NULL), GOPT_EINVAL, "pred");
    int32_t y[2] = {0, 3};
    assert_status(gopt_loss_cross_entropy(&ta, y, 0.0f, &loss, NULL), GOPT_ERANGE, "labels[1] = 3");
    y[1] = 2;
    assert_status(gopt_loss_cross_entropy(&ta, y, 1.5f, &loss, NULL), GOPT_EINVAL, "label_smoothing");
    assert_status(gopt_loss_cross_entropy(&t1, y, 0.0f, &loss, NULL), GOPT_ESHAPE, "(6)");
    assert_status(gopt_loss_cross_entropy(&ta, y, 0.0f, &loss, &tb), GOPT_ESHAPE, "(2,4)");
    assert_status(gopt_loss_cross_entropy(&ta, NULL, 0.0f, &loss, NULL), GOPT_EINVAL, "labels");
    int64_t c;
    assert_status(gopt_accuracy_count(&t1, y, &c), GOPT_ESHAPE, "(6)");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mse_bce_fd),
        cmocka_unit_test(test_cross_entropy_fd_and_values),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
