/* Tests of the initialisation schemes (gradopt/tensor.h: gopt_tensor_init, the names) and
 * of gopt_net_init_weights (gradopt/net.h): orthogonality, variances, determinism, the
 * per-layer rules and the errors. */
#include <math.h>
#include <stdio.h>

#include "testutil.h"

/* max |(W W^T)_ij - I_ij| over the (rows, cols) view of t, or of W^T W when rows > cols */
static double orth_error(const float *w, int64_t rows, int64_t cols) {
    const int by_rows = rows <= cols;
    const int64_t k = by_rows ? rows : cols, len = by_rows ? cols : rows;
    double worst = 0;
    for (int64_t a = 0; a < k; a++)
        for (int64_t b = 0; b < k; b++) {
            double dot = 0;
            for (int64_t i = 0; i < len; i++)
                dot += by_rows ? (double)w[a * cols + i] * w[b * cols + i] : (double)w[i * cols + a] * w[i * cols + b];
            double e = fabs(dot - (a == b ? 1.0 : 0.0));
            if (e > worst) worst = e;
        }
    return worst;
}

static void check_orthogonal(int ndim, const int64_t *shape, uint64_t seed) {
    gopt_tensor *t = NULL;
    assert_ok(gopt_tensor_create(ndim, shape, &t));
    gopt_rng rng;
    gopt_rng_seed(&rng, seed);
    assert_ok(gopt_tensor_init(t, GOPT_INIT_ORTHOGONAL, &rng));
    int64_t rows = shape[0], cols = t->numel / rows;
    double err = orth_error(t->data, rows, cols);
    if (!(err < 1e-5)) fail_msg("orthogonal (%lld,%lld): max |W W^T - I| = %g", (long long)rows, (long long)cols, err);
    /* same seed, same values */
    gopt_tensor *u = NULL;
    assert_ok(gopt_tensor_create(ndim, shape, &u));
    gopt_rng_seed(&rng, seed);
    assert_ok(gopt_tensor_init(u, GOPT_INIT_ORTHOGONAL, &rng));
    assert_memory_equal(t->data, u->data, (size_t)t->numel * sizeof(float));
    gopt_tensor_destroy(t);
    gopt_tensor_destroy(u);
}

static void test_orthogonal_shapes(void **state) {
    (void)state;
    int64_t square[2] = {64, 64}, wide[2] = {16, 100}, tall[2] = {120, 24}, conv[4] = {16, 8, 3, 3},
            conv_tall[4] = {200, 3, 3, 3}, one[2] = {1, 7}, col[2] = {9, 1};
    check_orthogonal(2, square, 1);
    check_orthogonal(2, wide, 2);
    check_orthogonal(2, tall, 3);
    check_orthogonal(4, conv, 4);     /* (16, 72): rows orthonormal */
    check_orthogonal(4, conv_tall, 5); /* (200, 27): columns orthonormal */
    check_orthogonal(2, one, 6);
    check_orthogonal(2, col, 7);
}

/* The distribution is Haar (QR of a Gaussian with signs fixed): the entries of a square
 * orthogonal matrix have mean 0 and variance 1/n; signs not fixed would still pass, but a
 * wrong transposition or a non-random Q (e.g. identity) would not. */
static void test_orthogonal_is_random(void **state) {
    (void)state;
    const int64_t n = 128;
    int64_t shape[2] = {n, n};
    gopt_tensor *t = NULL;
    assert_ok(gopt_tensor_create(2, shape, &t));
    gopt_rng rng;
    gopt_rng_seed(&rng, 11);
    assert_ok(gopt_tensor_init(t, GOPT_INIT_ORTHOGONAL, &rng));
    double mean = 0, var = 0, diag = 0;
    for (int64_t i = 0; i < t->numel; i++) mean += t->data[i];
    mean /= (double)t->numel;
    for (int64_t i = 0; i < t->numel; i++) var += (t->data[i] - mean) * (t->data[i] - mean);
    var /= (double)t->numel;
    for (int64_t i = 0; i < n; i++) diag += t->data[i * n + i];
    assert_true(fabs(mean) < 0.01 / sqrt((double)n));
    assert_true(fabs(var * n - 1.0) < 0.02);
    assert_true(fabs(diag) < 5.0); /* trace of a Haar matrix is O(1); identity would give 128 */
    gopt_tensor_destroy(t);
}

/* variance of the fill of a (512, 256) tensor against the scheme's formula */
static void check_variance(gopt_init kind, int ndim, const int64_t *shape, double want_var, double want_bound) {
    gopt_tensor *t = NULL;
    assert_ok(gopt_tensor_create(ndim, shape, &t));
    gopt_rng rng;
    gopt_rng_seed(&rng, 42 + (uint64_t)kind);
    assert_ok(gopt_tensor_init(t, kind, &rng));
    double mean = 0, var = 0, maxabs = 0;
    for (int64_t i = 0; i < t->numel; i++) {
        mean += t->data[i];
        if (fabs(t->data[i]) > maxabs) maxabs = fabs(t->data[i]);
    }
    mean /= (double)t->numel;
    for (int64_t i = 0; i < t->numel; i++) var += (t->data[i] - mean) * (t->data[i] - mean);
    var /= (double)t->numel;
    /* 131072 samples: the sample variance is within ~1% (3 sigma of a normal's: 3*sqrt(2/N)) */
    if (fabs(var / want_var - 1.0) > 0.015)
        fail_msg("%s: variance %g, want %g", gopt_init_name(kind), var, want_var);
    assert_true(fabs(mean) < 4.0 * sqrt(want_var / (double)t->numel));
    if (want_bound > 0) assert_true(maxabs <= want_bound);
    gopt_tensor_destroy(t);
}

static void test_variances(void **state) {
    (void)state;
    int64_t mat[2] = {512, 256}, conv[4] = {128, 64, 4, 4};
    double fi = 256, fo = 512;
    check_variance(GOPT_INIT_HE_NORMAL, 2, mat, 2.0 / fi, 0);
    check_variance(GOPT_INIT_HE_UNIFORM, 2, mat, 2.0 / fi, sqrt(6.0 / fi));
    check_variance(GOPT_INIT_XAVIER_NORMAL, 2, mat, 2.0 / (fi + fo), 0);
    check_variance(GOPT_INIT_XAVIER_UNIFORM, 2, mat, 2.0 / (fi + fo), sqrt(6.0 / (fi + fo)));
    check_variance(GOPT_INIT_TORCH_DEFAULT, 2, mat, 1.0 / (3.0 * fi), 1.0 / sqrt(fi));
    /* conv: fan_in = 64*16, fan_out = 128*16 */
    check_variance(GOPT_INIT_HE_NORMAL, 4, conv, 2.0 / 1024, 0);
    check_variance(GOPT_INIT_XAVIER_UNIFORM, 4, conv, 2.0 / (1024 + 2048), sqrt(6.0 / 3072));
    /* orthogonal (512, 256): columns unit length, so the mean square is 256/(512*256) */
    check_variance(GOPT_INIT_ORTHOGONAL, 2, mat, 1.0 / 512, 1.0 + 1e-6);
}

static void test_names(void **state) {
    (void)state;
    const gopt_init all[] = {GOPT_INIT_HE_NORMAL,     GOPT_INIT_HE_UNIFORM,    GOPT_INIT_XAVIER_NORMAL,
                             GOPT_INIT_XAVIER_UNIFORM, GOPT_INIT_TORCH_DEFAULT, GOPT_INIT_ORTHOGONAL};
    const char *names[] = {"he_normal", "he_uniform", "xavier_normal", "xavier_uniform", "default", "orthogonal"};
    for (int i = 0; i < 6; i++) {
        assert_string_equal(gopt_init_name(all[i]), names[i]);
        gopt_init k = (gopt_init)-1;
        assert_ok(gopt_init_from_name(gopt_init_name(all[i]), &k));
        assert_int_equal(k, all[i]);
    }
    const struct {
        const char *alias;
        gopt_init kind;
    } aliases[] = {{"kaiming_normal", GOPT_INIT_HE_NORMAL},    {"kaiming_uniform", GOPT_INIT_HE_UNIFORM},
                   {"glorot_normal", GOPT_INIT_XAVIER_NORMAL}, {"glorot_uniform", GOPT_INIT_XAVIER_UNIFORM},
                   {"torch", GOPT_INIT_TORCH_DEFAULT}};
    for (int i = 0; i < 5; i++) {
        gopt_init k = (gopt_init)-1;
        assert_ok(gopt_init_from_name(aliases[i].alias, &k));
        assert_int_equal(k, aliases[i].kind);
    }
    assert_string_equal(gopt_init_name((gopt_init)6), "?");
    assert_string_equal(gopt_init_name((gopt_init)-1), "?");
    gopt_init k = GOPT_INIT_HE_UNIFORM;
    assert_status(gopt_init_from_name("orthogonl", &k), GOPT_EINVAL, "'orthogonl'");
    testutil_check_detail("xavier_uniform");
    testutil_check_detail("glorot_normal");
    assert_int_equal(k, GOPT_INIT_HE_UNIFORM); /* untouched */
    assert_status(gopt_init_from_name("", &k), GOPT_EINVAL, "''");
    assert_status(gopt_init_from_name("Orthogonal", &k), GOPT_EINVAL, "Orthogonal"); /* names are exact */
    assert_status(gopt_init_from_name(NULL, &k), GOPT_EINVAL, "name");
    assert_status(gopt_init_from_name("default", NULL), GOPT_EINVAL, "out");
}

static void test_tensor_init_errors(void **state) {
    (void)state;
    int64_t v[1] = {8}, m[2] = {4, 4};
    gopt_tensor *t = NULL, *u = NULL;
    assert_ok(gopt_tensor_create(1, v, &t));
    assert_ok(gopt_tensor_create(2, m, &u));
    gopt_rng rng;
    gopt_rng_seed(&rng, 1);
    assert_status(gopt_tensor_init(t, GOPT_INIT_ORTHOGONAL, &rng), GOPT_ESHAPE, "1-D");
    assert_status(gopt_tensor_init(u, (gopt_init)6, &rng), GOPT_EINVAL, "6");
    assert_status(gopt_tensor_init(u, GOPT_INIT_ORTHOGONAL, NULL), GOPT_EINVAL, "rng");
    assert_status(gopt_tensor_init(NULL, GOPT_INIT_ORTHOGONAL, &rng), GOPT_EINVAL, NULL);
    testutil_fail_after(0);
    assert_status(gopt_tensor_init(u, GOPT_INIT_ORTHOGONAL, &rng), GOPT_ENOMEM, "orthogonal");
    testutil_alloc_reset();
    gopt_tensor_destroy(t);
    gopt_tensor_destroy(u);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orthogonal_shapes), cmocka_unit_test(test_orthogonal_is_random),
        cmocka_unit_test(test_variances),         cmocka_unit_test(test_names),
        cmocka_unit_test(test_tensor_init_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
