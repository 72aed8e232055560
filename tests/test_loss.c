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

/* PyTorch 1.13: F.cross_entropy(z.reshape(-1, 4), y, ignore_index=-1, label_smoothing=0.2)
 * for z (2,3,4) with rows 0 and 4 ignored (tests/golden/make_seq_cases.py --c). */
static const float seq_z[24] = {-2.46040344f, 1.18689346f, 2.69672537f, -4.16521168f, -0.500988066f, 0.855449915f, -1.92327452f, -2.68096638f, -2.54672575f, -3.65078831f, -0.243064761f, 4.08445549f, -3.90965009f, 0.262435138f, -4.15488434f, 1.51069164f, -2.60010481f, -1.69202006f, -6.16938782f, -1.07016754f, 3.28674126f, 1.44706249f, 4.19675541f, 4.21755886f};
static const int32_t seq_y[6] = {-1, 1, 0, 2, -1, 1};
static const float seq_loss = 3.90946531f;
static const float seq_dz[24] = {0.0f, 0.0f, 0.0f, 0.0f, 0.035241399f, -0.0271517038f, -0.000986590981f, -0.00710312277f, -0.212175205f, -0.0123923244f, -0.00924856961f, 0.233816087f, -0.0116455602f, 0.0429108851f, -0.211831391f, 0.180566072f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0279543288f, -0.20607309f, 0.088003017f, 0.090115726f};

static void test_cross_entropy_seq(void **state) {
    (void)state;
    float z[24], d[24], loss;
    memcpy(z, seq_z, sizeof z);
    int64_t s3[3] = {2, 3, 4};
    gopt_tensor tz, td;
    assert_ok(gopt_tensor_view(z, 3, s3, &tz));
    assert_ok(gopt_tensor_view(d, 3, s3, &td));
    assert_ok(gopt_loss_cross_entropy_seq(&tz, seq_y, 0.2f, -1, &loss, &td));
    assert_float_equal(loss, seq_loss, 1e-5 + 1e-4 * fabs(seq_loss));
    for (int i = 0; i < 24; i++) assert_float_equal(d[i], seq_dz[i], 1e-5 + 1e-4 * fabs(seq_dz[i]));
    for (int c = 0; c < 4; c++) assert_true(d[c] == 0.0f && d[16 + c] == 0.0f); /* ignored rows */
    /* finite differences of the loss against the gradient, smoothing and ignore_index on */
    for (int i = 0; i < 24; i++) {
        float keep = z[i], lp, lm, h = 1e-2f;
        z[i] = keep + h;
        assert_ok(gopt_loss_cross_entropy_seq(&tz, seq_y, 0.2f, -1, &lp, NULL));
        z[i] = keep - h;
        assert_ok(gopt_loss_cross_entropy_seq(&tz, seq_y, 0.2f, -1, &lm, NULL));
        z[i] = keep;
        double num = ((double)lp - lm) / (2.0 * h);
        if (fabs(num - d[i]) > 1e-4 + 1e-2 * fabs(num)) fail_msg("dz[%d]: fd %.6g, analytic %.6g", i, num, d[i]);
    }
    /* with nothing ignored it is gopt_loss_cross_entropy on the (R,C) rows */
    int32_t y6[6] = {0, 1, 3, 2, 2, 1};
    float d2[24], l2;
    int64_t s2[2] = {6, 4};
    gopt_tensor tz2, td2;
    assert_ok(gopt_tensor_view(z, 2, s2, &tz2));
    assert_ok(gopt_tensor_view(d2, 2, s2, &td2));
    assert_ok(gopt_loss_cross_entropy_seq(&tz, y6, 0.1f, -100, &loss, &td));
    assert_ok(gopt_loss_cross_entropy(&tz2, y6, 0.1f, &l2, &td2));
    assert_float_equal(loss, l2, 1e-6);
    for (int i = 0; i < 24; i++) assert_float_equal(d[i], d2[i], 1e-7);
    /* ignore_index may be a valid class: only the rows labelled with it are skipped */
    int32_t y_ign2[6] = {2, 1, 2, 0, 3, 2};
    assert_ok(gopt_loss_cross_entropy_seq(&tz, y_ign2, 0.0f, 2, &loss, &td));
    int32_t y3[3] = {1, 0, 3};
    float zr[12], dr[12], lr;
    memcpy(zr, z + 4, 4 * sizeof(float)); /* the rows that count: 1, 3, 4 */
    memcpy(zr + 4, z + 12, 8 * sizeof(float));
    int64_t sr[2] = {3, 4};
    gopt_tensor tzr, tdr;
    assert_ok(gopt_tensor_view(zr, 2, sr, &tzr));
    assert_ok(gopt_tensor_view(dr, 2, sr, &tdr));
    assert_ok(gopt_loss_cross_entropy(&tzr, y3, 0.0f, &lr, &tdr));
    assert_float_equal(loss, lr, 1e-6);
    for (int c = 0; c < 4; c++) {
        assert_float_equal(d[4 + c], dr[c], 1e-7);
        assert_float_equal(d[12 + c], dr[4 + c], 1e-7);
        assert_true(d[c] == 0.0f && d[8 + c] == 0.0f && d[20 + c] == 0.0f);
    }
    /* every row ignored: loss 0, gradient 0 (PyTorch: NaN) */
    int32_t all[6] = {-100, -100, -100, -100, -100, -100};
    assert_ok(gopt_loss_cross_entropy_seq(&tz, all, 0.3f, -100, &loss, &td));
    assert_true(loss == 0.0f);
    for (int i = 0; i < 24; i++) assert_true(d[i] == 0.0f);
    /* errors */
    int32_t bad[6] = {0, 1, 4, 2, -100, 1};
    assert_status(gopt_loss_cross_entropy_seq(&tz, bad, 0.0f, -100, &loss, &td), GOPT_ERANGE, "labels[2] = 4");
    bad[2] = -5;
    assert_status(gopt_loss_cross_entropy_seq(&tz, bad, 0.0f, -100, &loss, &td), GOPT_ERANGE, "ignore_index -100");
    assert_status(gopt_loss_cross_entropy_seq(&tz, y6, 1.5f, -100, &loss, &td), GOPT_EINVAL, "label_smoothing");
    assert_status(gopt_loss_cross_entropy_seq(&tz, y6, 0.0f, -100, &loss, &td2), GOPT_ESHAPE, "(6,4)");
    int64_t s1[1] = {24};
    gopt_tensor t1;
    assert_ok(gopt_tensor_view(z, 1, s1, &t1));
    assert_status(gopt_loss_cross_entropy_seq(&t1, y6, 0.0f, -100, &loss, NULL), GOPT_ESHAPE, "(24)");
    assert_status(gopt_loss_cross_entropy_seq(NULL, y6, 0.0f, -100, &loss, NULL), GOPT_EINVAL, NULL);
    assert_status(gopt_loss_cross_entropy_seq(&tz, NULL, 0.0f, -100, &loss, NULL), GOPT_EINVAL, NULL);
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
        cmocka_unit_test(test_cross_entropy_seq),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
