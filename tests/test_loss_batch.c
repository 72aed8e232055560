/* The losses (loss.h) with one gradient buffer for every batch size: a dlogits / dpred
 * allocated once at max_batch rows takes the gradient of a shorter batch (the short last
 * batch of an epoch) bit for bit as an exact-shape tensor would, leaves the rows past the
 * batch untouched, and other shapes are refused naming both (issue 19). */
#include "testutil.h"

static void test_loss_larger_grad_buffer(void **state) {
    (void)state;
    enum { N = 3, MAXB = 8, C = 4, T = 2 };
    float z[MAXB * T * C], t[MAXB * T * C], exact[MAXB * T * C], big[MAXB * T * C];
    testutil_fill_normal(z, MAXB * T * C, 1);
    testutil_fill_normal(t, MAXB * T * C, 2);
    for (int i = 0; i < MAXB * T * C; i++) t[i] = t[i] > 0 ? 1.0f : 0.0f;
    int32_t y[N * T] = {0, 3, 1, 2, 2, 0};
    const int64_t s_n[2] = {N, C}, s_max[2] = {MAXB, C}, s_small[2] = {N - 1, C}, s_wide[2] = {MAXB, C + 1};
    const int64_t s3_n[3] = {N, T, C}, s3_max[3] = {MAXB, T, C}, s3_bad[3] = {MAXB, T + 1, C};
    gopt_tensor zl, ze, zb, zs, zw, z3, e3, b3, bad3, tt;
    assert_ok(gopt_tensor_view(z, 2, s_n, &zl));
    assert_ok(gopt_tensor_view(exact, 2, s_n, &ze));
    assert_ok(gopt_tensor_view(big, 2, s_max, &zb));
    assert_ok(gopt_tensor_view(big, 2, s_small, &zs));
    assert_ok(gopt_tensor_view(big, 2, s_wide, &zw));
    assert_ok(gopt_tensor_view(z, 3, s3_n, &z3));
    assert_ok(gopt_tensor_view(exact, 3, s3_n, &e3));
    assert_ok(gopt_tensor_view(big, 3, s3_max, &b3));
    assert_ok(gopt_tensor_view(big, 3, s3_bad, &bad3));
    assert_ok(gopt_tensor_view(t, 2, s_n, &tt));
    float l1, l2;
    for (int which = 0; which < 4; which++) {
        for (int i = 0; i < MAXB * T * C; i++) big[i] = 1234.5f; /* sentinel past the first N rows */
        memset(exact, 0, sizeof exact);
        int64_t rows_floats;
        if (which == 0) {
            assert_ok(gopt_loss_cross_entropy(&zl, y, 0.1f, &l1, &ze));
            assert_ok(gopt_loss_cross_entropy(&zl, y, 0.1f, &l2, &zb));
            rows_floats = N * C;
        } else if (which == 1) {
            assert_ok(gopt_loss_cross_entropy_seq(&z3, y, 0.0f, -100, &l1, &e3));
            assert_ok(gopt_loss_cross_entropy_seq(&z3, y, 0.0f, -100, &l2, &b3));
            rows_floats = N * T * C;
        } else if (which == 2) {
            assert_ok(gopt_loss_mse(&zl, &tt, &l1, &ze));
            assert_ok(gopt_loss_mse(&zl, &tt, &l2, &zb));
            rows_floats = N * C;
        } else {
            assert_ok(gopt_loss_bce_with_logits(&zl, &tt, &l1, &ze));
            assert_ok(gopt_loss_bce_with_logits(&zl, &tt, &l2, &zb));
            rows_floats = N * C;
        }
        assert_true(l1 == l2);
        assert_memory_equal(exact, big, (size_t)rows_floats * sizeof(float)); /* bit for bit */
        for (int64_t i = rows_floats; i < MAXB * T * C; i++) assert_true(big[i] == 1234.5f); /* untouched */
    }
    /* a smaller leading dimension, or other trailing dimensions: refused naming both shapes */
    assert_status(gopt_loss_cross_entropy(&zl, y, 0.0f, &l1, &zs), GOPT_ESHAPE,
                  "dlogits (2,4) does not match logits (3,4)");
    testutil_check_detail("leading dimension >= 3");
    assert_status(gopt_loss_cross_entropy(&zl, y, 0.0f, &l1, &zw), GOPT_ESHAPE, "(8,5)");
    assert_status(gopt_loss_cross_entropy_seq(&z3, y, 0.0f, -100, &l1, &bad3), GOPT_ESHAPE, "(8,3,4)");
    assert_status(gopt_loss_mse(&zl, &tt, &l1, &zs), GOPT_ESHAPE, "dpred (2,4)");
    assert_status(gopt_loss_bce_with_logits(&zl, &tt, &l1, &zw), GOPT_ESHAPE, "dlogits (8,5)");
    assert_status(gopt_loss_cross_entropy(&zl, y, 0.0f, &l1, &b3), GOPT_ESHAPE, "(8,2,4)");
    /* the target itself must still match the prediction exactly */
    gopt_tensor tbig;
    assert_ok(gopt_tensor_view(t, 2, s_max, &tbig));
    assert_status(gopt_loss_mse(&zl, &tbig, &l1, NULL), GOPT_ESHAPE, "target (8,4)");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_larger_grad_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
