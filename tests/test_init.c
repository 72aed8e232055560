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

/* ---- gopt_net_init_weights ---------------------------------------------------------------- */

static gopt_param_info param(gopt_net *net, const char *name) {
    gopt_params *p = gopt_net_params(net);
    int idx = -1;
    gopt_clear_error();
    if (gopt_params_find(p, name, &idx) != GOPT_OK) fail_msg("no parameter '%s': %s", name, gopt_last_error());
    gopt_param_info info;
    assert_ok(gopt_params_info(p, idx, &info));
    return info;
}

static void assert_all(const gopt_param_info *info, float value) {
    for (int64_t i = 0; i < info->value.numel; i++)
        if (info->value.data[i] != value) fail_msg("%s[%lld] = %g, want %g", info->name, (long long)i, info->value.data[i], value);
}

static void assert_bounded(const gopt_param_info *info, double bound) {
    double maxabs = 0;
    for (int64_t i = 0; i < info->value.numel; i++)
        if (fabs(info->value.data[i]) > maxabs) maxabs = fabs(info->value.data[i]);
    if (!(maxabs <= bound && maxabs > 0.5 * bound)) fail_msg("%s: max |w| = %g, bound %g", info->name, maxabs, bound);
}

static void assert_orth(const gopt_param_info *info) {
    int64_t rows = info->value.shape[0], cols = info->value.numel / rows;
    double err = orth_error(info->value.data, rows, cols);
    if (!(err < 1e-5)) fail_msg("%s (%lld,%lld) is not orthogonal: %g", info->name, (long long)rows, (long long)cols, err);
}

static float *copy_values(gopt_net *net) {
    gopt_params *p = gopt_net_params(net);
    size_t bytes = (size_t)gopt_params_numel(p) * sizeof(float);
    float *v = malloc(bytes);
    assert_non_null(v);
    memcpy(v, gopt_params_values(p), bytes);
    return v;
}

static void assert_values(gopt_net *net, const float *want, int equal) {
    gopt_params *p = gopt_net_params(net);
    int same = memcmp(want, gopt_params_values(p), (size_t)gopt_params_numel(p) * sizeof(float)) == 0;
    if (same != equal) fail_msg("%s", equal ? "parameters differ" : "parameters did not change");
}

static gopt_net *make_mlp(uint64_t seed) {
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = 4;
    c.in_ndim = 1;
    c.in_shape[0] = 20;
    c.seed = seed;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&c, &net));
    gopt_layer_config l1 = gopt_layer_linear(20, 64, 1), r = gopt_layer_config_default(GOPT_LAYER_RELU),
                      l2 = gopt_layer_linear(64, 48, 1), l3 = gopt_layer_linear(48, 10, 1);
    assert_ok(gopt_net_add(net, &l1, "fc1"));
    assert_ok(gopt_net_add(net, &r, NULL));
    assert_ok(gopt_net_add(net, &l2, "fc2"));
    assert_ok(gopt_net_add(net, &r, NULL));
    assert_ok(gopt_net_add(net, &l3, "fc3"));
    return net;
}

static void test_net_init_mlp(void **state) {
    (void)state;
    gopt_net *net = make_mlp(5);
    /* before build */
    assert_status(gopt_net_init_weights(net, -1, GOPT_INIT_HE_NORMAL, GOPT_INIT_ORTHOGONAL, 1), GOPT_ESTATE, "built");
    assert_ok(gopt_net_build(net));
    float *built = copy_values(net);

    /* TORCH_DEFAULT with the build's seed gives back what build gave */
    assert_ok(gopt_net_init_weights(net, -1, GOPT_INIT_XAVIER_UNIFORM, GOPT_INIT_ORTHOGONAL, 5));
    assert_values(net, built, 0);
    assert_ok(gopt_net_init_weights(net, -1, GOPT_INIT_TORCH_DEFAULT, GOPT_INIT_TORCH_DEFAULT, 5));
    assert_values(net, built, 1);

    /* Xavier: weights within their bound, biases 0; deterministic from the seed */
    assert_ok(gopt_net_init_weights(net, -1, GOPT_INIT_XAVIER_UNIFORM, GOPT_INIT_ORTHOGONAL, 8));
    gopt_param_info w1 = param(net, "fc1.weight"), w3 = param(net, "fc3.weight");
    assert_bounded(&w1, sqrt(6.0 / (20 + 64)));
    assert_bounded(&w3, sqrt(6.0 / (48 + 10)));
    const char *biases[3] = {"fc1.bias", "fc2.bias", "fc3.bias"};
    for (int i = 0; i < 3; i++) {
        gopt_param_info b = param(net, biases[i]);
        assert_all(&b, 0.0f);
    }
    float *xavier = copy_values(net);
    assert_ok(gopt_net_init_weights(net, -1, GOPT_INIT_HE_NORMAL, GOPT_INIT_ORTHOGONAL, 8));
    assert_values(net, xavier, 0);
    assert_ok(gopt_net_init_weights(net, -1, GOPT_INIT_XAVIER_UNIFORM, GOPT_INIT_HE_NORMAL, 8)); /* recurrent unused */
    assert_values(net, xavier, 1);

    /* orthogonal: wide, tall and square weights */
    assert_ok(gopt_net_init_weights(net, -1, GOPT_INIT_ORTHOGONAL, GOPT_INIT_ORTHOGONAL, 3));
    const char *weights[3] = {"fc1.weight", "fc2.weight", "fc3.weight"};
    for (int i = 0; i < 3; i++) {
        gopt_param_info w = param(net, weights[i]);
        assert_orth(&w);
    }

    /* one layer: only its parameters change */
    float *before = copy_values(net);
    assert_ok(gopt_net_init_weights(net, 2, GOPT_INIT_TORCH_DEFAULT, GOPT_INIT_TORCH_DEFAULT, 77));
    gopt_param_info w2 = param(net, "fc2.weight"), b2 = param(net, "fc2.bias");
    gopt_params *p = gopt_net_params(net);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) {
        int in_fc2 = (i >= w2.offset && i < w2.offset + w2.value.numel) || (i >= b2.offset && i < b2.offset + b2.value.numel);
        if (!in_fc2 && gopt_params_values(p)[i] != before[i]) fail_msg("element %lld outside fc2 changed", (long long)i);
    }
    assert_bounded(&w2, 1.0 / sqrt(64.0));
    assert_bounded(&b2, 1.0 / sqrt(64.0)); /* TORCH_DEFAULT: biases U(+-1/sqrt(fan_in)) */
    assert_ok(gopt_net_init_weights(net, 1, GOPT_INIT_HE_NORMAL, GOPT_INIT_HE_NORMAL, 1)); /* relu: nothing */

    /* errors */
    assert_status(gopt_net_init_weights(net, 5, GOPT_INIT_HE_NORMAL, GOPT_INIT_HE_NORMAL, 1), GOPT_ERANGE, "5");
    assert_status(gopt_net_init_weights(net, -2, GOPT_INIT_HE_NORMAL, GOPT_INIT_HE_NORMAL, 1), GOPT_ERANGE, "-2");
    assert_status(gopt_net_init_weights(net, -1, (gopt_init)6, GOPT_INIT_HE_NORMAL, 1), GOPT_EINVAL, "weights");
    assert_status(gopt_net_init_weights(net, -1, GOPT_INIT_HE_NORMAL, (gopt_init)-1, 1), GOPT_EINVAL, "recurrent");
    assert_status(gopt_net_init_weights(NULL, -1, GOPT_INIT_HE_NORMAL, GOPT_INIT_HE_NORMAL, 1), GOPT_EINVAL, "net");
    free(built);
    free(xavier);
    free(before);
    gopt_net_destroy(net);
}

static void test_net_init_conv(void **state) {
    (void)state;
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = 2;
    c.in_shape[1] = c.in_shape[2] = 8;
    c.seed = 21;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&c, &net));
    gopt_layer_config conv = gopt_layer_conv2d(3, 8, 3, 1, 1, 1), bn = gopt_layer_batchnorm2d(8, 1),
                      block = gopt_layer_basic_block(8, 16, 2), pool = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL),
                      fc = gopt_layer_linear(16, 10, 1);
    assert_ok(gopt_net_add(net, &conv, "conv"));
    assert_ok(gopt_net_add(net, &bn, "bn"));
    assert_ok(gopt_net_add(net, &block, "block"));
    assert_ok(gopt_net_add(net, &pool, NULL));
    assert_ok(gopt_net_add(net, &fc, "fc"));
    assert_ok(gopt_net_build(net));
    float *built = copy_values(net);

    /* disturb: a training forward moves the running statistics; scale every parameter */
    gopt_params *p = gopt_net_params(net);
    for (int64_t i = 0; i < gopt_params_numel(p); i++) gopt_params_values(p)[i] = 0.5f * gopt_params_values(p)[i] + 0.25f;
    int64_t xs[4] = {2, 3, 8, 8};
    gopt_tensor *x = NULL, logits;
    assert_ok(gopt_tensor_create(4, xs, &x));
    gopt_rng rng;
    gopt_rng_seed(&rng, 1);
    assert_ok(gopt_tensor_fill_normal(x, 3.0f, 2.0f, &rng));
    assert_ok(gopt_net_forward(net, x, &logits));
    float *mean = NULL, *var = NULL;
    assert_ok(gopt_layer_bn_running(gopt_net_layer(net, 1), &mean, &var));
    assert_true(mean[0] != 0.0f);

    assert_ok(gopt_net_init_weights(net, -1, GOPT_INIT_ORTHOGONAL, GOPT_INIT_TORCH_DEFAULT, 4));
    int nconv = 0;
    for (int i = 0; i < gopt_params_count(p); i++) {
        gopt_param_info info;
        assert_ok(gopt_params_info(p, i, &info));
        if (info.value.ndim == 4) {
            assert_orth(&info); /* every convolution, the block's included */
            nconv++;
        } else if (info.tag == GOPT_TAG_NORM) {
            int is_gamma = strstr(info.name, ".weight") != NULL;
            assert_all(&info, is_gamma ? 1.0f : 0.0f);
        } else if (info.tag == GOPT_TAG_BIAS) {
            assert_all(&info, 0.0f);
        }
    }
    assert_int_equal(nconv, 4); /* conv, block conv1, conv2 and the projection shortcut */
    for (int ch = 0; ch < 8; ch++) {
        assert_true(mean[ch] == 0.0f);
        assert_true(var[ch] == 1.0f);
    }
    gopt_param_info fcw = param(net, "fc.weight");
    assert_orth(&fcw);

    /* He normal on the convolutions: sample variance near 2/fan_in for the block's conv2 */
    assert_ok(gopt_net_init_weights(net, 2, GOPT_INIT_HE_NORMAL, GOPT_INIT_HE_NORMAL, 4));
    for (int i = 0; i < gopt_params_count(p); i++) {
        gopt_param_info info;
        assert_ok(gopt_params_info(p, i, &info));
        if (info.value.ndim != 4 || strncmp(info.name, "block.", 6) != 0 || info.value.shape[1] != 16) continue;
        double ss = 0;
        for (int64_t k = 0; k < info.value.numel; k++) ss += (double)info.value.data[k] * info.value.data[k];
        double v = ss / (double)info.value.numel, want = 2.0 / (16 * 9);
        if (fabs(v / want - 1.0) > 0.1) fail_msg("%s: variance %g, want %g", info.name, v, want);
    }
    /* back to the build */
    assert_ok(gopt_net_init_weights(net, -1, GOPT_INIT_TORCH_DEFAULT, GOPT_INIT_TORCH_DEFAULT, 21));
    assert_values(net, built, 1);
    assert_ok(gopt_net_forward(net, x, &logits));
    for (int64_t i = 0; i < logits.numel; i++) assert_true(isfinite(logits.data[i]));
    free(built);
    gopt_tensor_destroy(x);
    gopt_net_destroy(net);
}

static gopt_net *make_seq(gopt_layer_config rec, const char *name, uint64_t seed) {
    gopt_net_config c = gopt_net_config_default();
    c.max_batch = 2;
    c.in_ndim = 1;
    c.in_shape[0] = 6;
    c.seed = seed;
    gopt_net *net = NULL;
    assert_ok(gopt_net_create(&c, &net));
    gopt_layer_config e = gopt_layer_embedding(30, 12), o = gopt_layer_linear(24, 30, 1);
    assert_ok(gopt_net_add(net, &e, "emb"));
    assert_ok(gopt_net_add(net, &rec, name));
    assert_ok(gopt_net_add(net, &o, "out"));
    assert_ok(gopt_net_build(net));
    return net;
}

static void check_recurrent(gopt_layer_config rec, const char *name, int G) {
    gopt_net *net = make_seq(rec, name, 13);
    float *built = copy_values(net);
    assert_ok(gopt_net_init_weights(net, -1, GOPT_INIT_XAVIER_UNIFORM, GOPT_INIT_ORTHOGONAL, 2));
    const int H = 24;
    for (int k = 0; k < 2; k++) {
        char buf[64];
        const int in = k == 0 ? 12 : H;
        snprintf(buf, sizeof buf, "%s.weight_hh_l%d", name, k);
        gopt_param_info hh = param(net, buf);
        assert_int_equal(hh.value.shape[0], G * H);
        for (int g = 0; g < G; g++) {
            double err = orth_error(hh.value.data + (int64_t)g * H * H, H, H);
            if (!(err < 1e-5)) fail_msg("%s gate %d: |W W^T - I| = %g", buf, g, err);
        }
        /* the whole (G*H, H) matrix is not orthonormal (W^T W = G I): the blocks were taken one by one */
        if (G > 1) assert_true(orth_error(hh.value.data, G * H, H) > 0.5);
        snprintf(buf, sizeof buf, "%s.weight_ih_l%d", name, k);
        gopt_param_info ih = param(net, buf);
        assert_bounded(&ih, sqrt(6.0 / (in + H))); /* the gate block's fans, not (in, G*H) */
        const char *bn[2] = {"bias_ih", "bias_hh"};
        for (int j = 0; j < 2; j++) {
            snprintf(buf, sizeof buf, "%s.%s_l%d", name, bn[j], k);
            gopt_param_info b = param(net, buf);
            assert_all(&b, 0.0f);
        }
    }
    gopt_param_info emb = param(net, "emb.weight");
    assert_bounded(&emb, sqrt(6.0 / (30 + 12)));
    gopt_param_info outb = param(net, "out.bias");
    assert_all(&outb, 0.0f);

    /* it still runs */
    const int32_t tok[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 29};
    gopt_tensor logits;
    assert_ok(gopt_net_forward_tokens(net, tok, 2, &logits));
    for (int64_t i = 0; i < logits.numel; i++) assert_true(isfinite(logits.data[i]));

    /* both TORCH_DEFAULT with the build's seed: the build's values, every bias included */
    assert_ok(gopt_net_init_weights(net, -1, GOPT_INIT_TORCH_DEFAULT, GOPT_INIT_TORCH_DEFAULT, 13));
    assert_values(net, built, 1);
    /* only the recurrent layer, both TORCH_DEFAULT: every parameter U(+-1/sqrt(H)) */
    assert_ok(gopt_net_init_weights(net, 1, GOPT_INIT_TORCH_DEFAULT, GOPT_INIT_TORCH_DEFAULT, 99));
    char buf[64];
    snprintf(buf, sizeof buf, "%s.bias_hh_l1", name);
    gopt_param_info b = param(net, buf);
    assert_bounded(&b, 1.0 / sqrt((double)H));
    /* embedding under TORCH_DEFAULT is N(0,1) again: its values are the build's */
    gopt_param_info e2 = param(net, "emb.weight");
    assert_memory_equal(e2.value.data, built + e2.offset, (size_t)e2.value.numel * sizeof(float));
    free(built);
    gopt_net_destroy(net);
}

static void test_net_init_recurrent(void **state) {
    (void)state;
    check_recurrent(gopt_layer_lstm(12, 24, 2, 1, 0.0f, 1), "lstm", 4);
    check_recurrent(gopt_layer_gru(12, 24, 2, 1, 0.0f, 1), "gru", 3);
    check_recurrent(gopt_layer_rnn(12, 24, 2, GOPT_RNN_TANH, 1, 0.0f, 1), "rnn", 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orthogonal_shapes), cmocka_unit_test(test_orthogonal_is_random),
        cmocka_unit_test(test_variances),         cmocka_unit_test(test_names),
        cmocka_unit_test(test_tensor_init_errors), cmocka_unit_test(test_net_init_mlp),
        cmocka_unit_test(test_net_init_conv),      cmocka_unit_test(test_net_init_recurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
