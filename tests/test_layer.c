/* Layers: finite-difference gradient checks for every layer type (train and eval where it
 * matters), dropout semantics, shape and argument errors. PyTorch reference values are in
 * the golden cases (tests/golden/cases). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/layer.h" /* gopt__maxpool_set_scalar */

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

/* Central difference of sum(y * r) at coordinate i of v with step h. */
static double central(fd_setup *s, float *v, int64_t i, float h) {
    float keep = v[i];
    v[i] = keep + h;
    double lp = objective(s);
    v[i] = keep - h;
    double lm = objective(s);
    v[i] = keep;
    return (lp - lm) / (2.0 * h);
}

/* Compare d/dv of sum(y * r) by central differences with the analytic gradient `ana`, on
 * about 24 evenly spread coordinates of v. A ReLU or max-pool kink crossed inside [-h, h]
 * spoils a difference, so a mismatch is retried with h/4 and h/16 (a real gradient bug
 * persists at every step size). */
static void fd_compare(fd_setup *s, float *v, const float *ana, int64_t n, float h, double atol, double rtol,
                       const char *what) {
    int64_t step = n > 24 ? n / 24 : 1;
    for (int64_t i = 0; i < n; i += step) {
        double num = central(s, v, i, h);
        if (getenv("FD_VERBOSE")) printf("%s[%lld] fd %.6g an %.6g\n", what, (long long)i, num, (double)ana[i]);
        if (fabs(num - ana[i]) <= atol + rtol * fabs(num)) continue;
        int ok = 0;
        for (float hh = h / 4; !ok && hh > h / 100; hh /= 4) {
            num = central(s, v, i, hh);
            ok = fabs(num - ana[i]) <= 2 * atol + rtol * fabs(num);
        }
        if (!ok)
            fail_msg("%s[%lld]: finite difference %.6g, analytic %.6g", what, (long long)i, num, (double)ana[i]);
    }
}

static void fd_check(const gopt_layer_config *cfg, int ndim, const int64_t *shape, int n, int training, float h,
                     double atol, double rtol) {
    fd_setup s;
    memset(&s, 0, sizeof s);
    assert_ok(gopt_params_create(&s.params));
    assert_ok(gopt_layer_create(cfg, ndim, shape, n, s.params, "l", &s.layer));
    int np = gopt_params_count(s.params);
    gopt_rng rng;
    gopt_rng_seed(&rng, 42);
    if (np) {
        assert_ok(gopt_params_finalize(s.params));
        assert_ok(gopt_layer_init_params(s.layer, GOPT_INIT_TORCH_DEFAULT, &rng));
        /* non-trivial BN affine and running stats so every term matters */
        for (int i = 0; i < np; i++) {
            gopt_param_info info;
            assert_ok(gopt_params_info(s.params, i, &info));
            if (info.tag == GOPT_TAG_NORM)
                for (int64_t k = 0; k < info.value.numel; k++) info.value.data[k] = 0.5f + gopt_rng_uniform(&rng);
        }
    }
    int64_t xs[4] = {n, 1, 1, 1};
    for (int i = 0; i < ndim; i++) xs[i + 1] = shape[i];
    s.xn = n;
    for (int i = 0; i < ndim; i++) s.xn *= shape[i];
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
    if (np) gopt_params_zero_grad(s.params);
    assert_ok(gopt_layer_backward(s.layer, &s.tx, &tdy, &s.tdx));
    fd_compare(&s, s.x, s.dx, s.xn, h, atol, rtol, "dinput");
    if (np) {
        int64_t pn = gopt_params_numel(s.params);
        float *g = malloc(sizeof(float) * (size_t)pn);
        memcpy(g, gopt_params_grads(s.params), sizeof(float) * (size_t)pn);
        fd_compare(&s, gopt_params_values(s.params), g, pn, h, atol, rtol, "dparam");
        /* backward accumulates: a second backward doubles the gradients */
        for (int64_t i = 0; i < s.yn; i++) s.dy[i] = s.r[i];
        assert_ok(gopt_layer_forward(s.layer, &s.tx, &y));
        assert_ok(gopt_layer_backward(s.layer, &s.tx, &tdy, NULL));
        const float *g2 = gopt_params_grads(s.params);
        for (int64_t i = 0; i < pn; i++) assert_true(fabsf(g2[i] - 2.0f * g[i]) <= 1e-5f + 1e-4f * fabsf(g[i]));
        free(g);
    }
    free(s.x);
    free(s.dx);
    free(s.r);
    free(s.dy);
    gopt_layer_destroy(s.layer);
    gopt_params_destroy(s.params);
}

static void test_fd_linear(void **state) {
    (void)state;
    int64_t in[1] = {7};
    gopt_layer_config c = gopt_layer_linear(7, 5, 1);
    fd_check(&c, 1, in, 3, 1, 1e-2f, 1e-3, 1e-2);
    c = gopt_layer_linear(7, 4, 0);
    fd_check(&c, 1, in, 1, 1, 1e-2f, 1e-3, 1e-2);
}

/* time-distributed: (N,T,F) -> (N,T,out), the N*T rows through one weight */
static void test_fd_linear_time_distributed(void **state) {
    (void)state;
    int64_t in[2] = {4, 7};
    gopt_layer_config c = gopt_layer_linear(7, 5, 1);
    fd_check(&c, 2, in, 3, 1, 1e-2f, 1e-3, 1e-2);
    c = gopt_layer_linear(7, 2, 0);
    fd_check(&c, 2, in, 1, 1, 1e-2f, 1e-3, 1e-2);
    /* each time step is the plain linear of its row */
    gopt_params *p;
    gopt_layer *td, *flat;
    assert_ok(gopt_params_create(&p));
    c = gopt_layer_linear(7, 5, 1);
    int64_t one[1] = {7};
    assert_ok(gopt_layer_create(&c, 2, in, 2, p, "td", &td));
    assert_ok(gopt_layer_create(&c, 1, one, 8, p, "flat", &flat));
    assert_ok(gopt_params_finalize(p));
    gopt_rng rng;
    gopt_rng_seed(&rng, 3);
    assert_ok(gopt_layer_init_params(td, GOPT_INIT_TORCH_DEFAULT, &rng));
    gopt_param_info a, b;
    for (int i = 0; i < 2; i++) { /* same weights in both */
        assert_ok(gopt_params_info(p, i, &a));
        assert_ok(gopt_params_info(p, i + 2, &b));
        memcpy(b.value.data, a.value.data, sizeof(float) * (size_t)a.value.numel);
    }
    float x[2 * 4 * 7];
    for (int i = 0; i < 56; i++) x[i] = gopt_rng_normal(&rng);
    int64_t s3[3] = {2, 4, 7}, s2[2] = {8, 7};
    gopt_tensor t3, t2, y3, y2;
    assert_ok(gopt_tensor_view(x, 3, s3, &t3));
    assert_ok(gopt_tensor_view(x, 2, s2, &t2));
    assert_ok(gopt_layer_forward(td, &t3, &y3));
    assert_ok(gopt_layer_forward(flat, &t2, &y2));
    assert_int_equal(y3.ndim, 3);
    assert_int_equal(y3.shape[1], 4);
    assert_int_equal(y3.shape[2], 5);
    assert_memory_equal(y3.data, y2.data, sizeof(float) * 40);
    gopt_layer_destroy(td);
    gopt_layer_destroy(flat);
    gopt_params_destroy(p);
}

/* embedding: finite differences of sum(y * r) in every weight (repeated ids accumulate,
 * unused rows get 0), dx left untouched, ids refused before anything runs. */
static void test_embedding(void **state) {
    (void)state;
    gopt_params *p;
    gopt_layer *l = NULL;
    assert_ok(gopt_params_create(&p));
    enum { V = 6, E = 3, T = 5, N = 3 };
    int64_t in[1] = {T};
    gopt_layer_config c = gopt_layer_embedding(V, E);
    assert_ok(gopt_layer_create(&c, 1, in, N, p, "emb", &l));
    int64_t out[3];
    assert_int_equal(gopt_layer_out_shape(l, out), 2);
    assert_int_equal(out[0], T);
    assert_int_equal(out[1], E);
    assert_ok(gopt_params_finalize(p));
    gopt_rng rng;
    gopt_rng_seed(&rng, 8);
    assert_ok(gopt_layer_init_params(l, GOPT_INIT_HE_NORMAL, &rng)); /* N(0,1) regardless */
    float ids[N * T] = {2, 2, 2, 0, 5, 1, 2, 0, 0, 5, 3, 3, 2, 1, 0}; /* id 4 unused */
    float r[N * T * E], dx[N * T];
    for (int i = 0; i < N * T * E; i++) r[i] = gopt_rng_normal(&rng);
    for (int i = 0; i < N * T; i++) dx[i] = 7.0f;
    int64_t xs[2] = {N, T}, ys[3] = {N, T, E};
    gopt_tensor tx, tdx, y, tdy;
    assert_ok(gopt_tensor_view(ids, 2, xs, &tx));
    assert_ok(gopt_tensor_view(dx, 2, xs, &tdx));
    assert_ok(gopt_layer_forward(l, &tx, &y));
    float *w = gopt_params_values(p);
    for (int i = 0; i < N * T; i++)
        for (int e = 0; e < E; e++) assert_true(y.data[i * E + e] == w[(int)ids[i] * E + e]);
    float dy[N * T * E];
    memcpy(dy, r, sizeof dy);
    assert_ok(gopt_tensor_view(dy, 3, ys, &tdy));
    gopt_params_zero_grad(p);
    assert_ok(gopt_layer_backward(l, &tx, &tdy, &tdx));
    for (int i = 0; i < N * T; i++) assert_true(dx[i] == 7.0f); /* ids have no gradient */
    const float *g = gopt_params_grads(p);
    for (int k = 0; k < V * E; k++) {
        const float h = 1e-2f, keep = w[k];
        double obj[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            w[k] = keep + (sgn ? -h : h);
            assert_ok(gopt_layer_forward(l, &tx, &y));
            double acc = 0.0;
            for (int i = 0; i < N * T * E; i++) acc += (double)y.data[i] * r[i];
            obj[sgn] = acc;
        }
        w[k] = keep;
        double num = (obj[0] - obj[1]) / (2.0 * h);
        if (fabs(num - g[k]) > 1e-3 + 1e-3 * fabs(num)) fail_msg("dweight[%d]: fd %.6g, analytic %.6g", k, num, g[k]);
        if (k / E == 4) assert_true(g[k] == 0.0f);
    }
    /* id 2 appears 5 times: its row is the sum of those five dy rows */
    for (int e = 0; e < E; e++) {
        double want = 0.0;
        for (int i = 0; i < N * T; i++)
            if (ids[i] == 2.0f) want += r[i * E + e];
        assert_float_equal(g[2 * E + e], want, 1e-5);
    }
    /* bad ids: out of range, negative, not integers, NaN; each names the id and its position */
    const float bad[5] = {6.0f, -1.0f, 2.5f, NAN, INFINITY};
    const char *why[5] = {"outside", "outside", "not an integer", "not an integer", "outside"};
    for (int k = 0; k < 5; k++) {
        float x2[N * T];
        memcpy(x2, ids, sizeof x2);
        x2[7] = bad[k];
        gopt_tensor t2;
        assert_ok(gopt_tensor_view(x2, 2, xs, &t2));
        assert_status(gopt_layer_forward(l, &t2, &y), GOPT_EINVAL, why[k]);
        testutil_check_detail("sample 1, step 2");
    }
    gopt_layer_destroy(l);
    /* shapes and config */
    int64_t in2[2] = {T, 2};
    assert_status(gopt_layer_create(&c, 2, in2, N, p, "e2", &l), GOPT_ESTATE, "finalized");
    gopt_params_destroy(p);
    assert_ok(gopt_params_create(&p));
    assert_status(gopt_layer_create(&c, 2, in2, N, p, "e2", &l), GOPT_ESHAPE, "token ids");
    c = gopt_layer_embedding(0, 3);
    assert_status(gopt_layer_create(&c, 1, in, N, p, "e3", &l), GOPT_EINVAL, "num_embeddings=0");
    c = gopt_layer_embedding(4, 0);
    assert_status(gopt_layer_create(&c, 1, in, N, p, "e4", &l), GOPT_EINVAL, "embedding_dim=0");
    c = gopt_layer_linear(3, 2, 1);
    assert_status(gopt_layer_create(&c, 2, in2, N, p, "td", &l), GOPT_ESHAPE, "(N,T,3)");
    int64_t in3[3] = {2, 3, 3};
    assert_status(gopt_layer_create(&c, 3, in3, N, p, "td", &l), GOPT_ESHAPE, "(N,2,3,3)");
    gopt_params_destroy(p);
}

static void test_fd_conv(void **state) {
    (void)state;
    int64_t in[3] = {3, 7, 6};
    gopt_layer_config c = gopt_layer_conv2d(3, 4, 3, 1, 1, 1);
    fd_check(&c, 3, in, 2, 1, 1e-2f, 2e-3, 1e-2);
    c = gopt_layer_conv2d(3, 2, 3, 2, 1, 0);
    fd_check(&c, 3, in, 3, 1, 1e-2f, 2e-3, 1e-2);
    c = gopt_layer_conv2d(3, 5, 1, 2, 0, 1);
    fd_check(&c, 3, in, 2, 1, 1e-2f, 2e-3, 1e-2);
    c = gopt_layer_conv2d(3, 2, 5, 1, 2, 1);
    fd_check(&c, 3, in, 1, 1, 1e-2f, 2e-3, 1e-2);
    c = gopt_layer_conv2d(3, 3, 1, 1, 0, 0); /* 1x1 stride 1: no im2col */
    fd_check(&c, 3, in, 1, 1, 1e-2f, 2e-3, 1e-2);
}

static void test_fd_batchnorm(void **state) {
    (void)state;
    int64_t in[3] = {3, 4, 5};
    gopt_layer_config c = gopt_layer_batchnorm2d(3, 0);
    fd_check(&c, 3, in, 3, 1, 1e-2f, 2e-3, 2e-2);
    fd_check(&c, 3, in, 3, 0, 1e-2f, 2e-3, 2e-2);
    c = gopt_layer_batchnorm2d(3, 1);
    fd_check(&c, 3, in, 2, 1, 1e-3f, 5e-3, 2e-2);
}

static void test_fd_activations_pools(void **state) {
    (void)state;
    int64_t in[3] = {2, 6, 5};
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_RELU);
    fd_check(&c, 3, in, 2, 1, 1e-3f, 2e-3, 1e-2);
    c = gopt_layer_config_default(GOPT_LAYER_GELU);
    fd_check(&c, 3, in, 2, 1, 1e-2f, 2e-3, 1e-2);
    c.gelu_tanh = 1;
    fd_check(&c, 3, in, 2, 1, 1e-2f, 2e-3, 1e-2);
    c = gopt_layer_maxpool2d(2, 2, 0);
    fd_check(&c, 3, in, 2, 1, 1e-3f, 2e-3, 1e-2);
    c = gopt_layer_maxpool2d(3, 2, 1);
    fd_check(&c, 3, in, 2, 1, 1e-3f, 2e-3, 1e-2);
    c = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL);
    fd_check(&c, 3, in, 2, 1, 1e-2f, 1e-3, 1e-2);
    c = gopt_layer_config_default(GOPT_LAYER_FLATTEN);
    fd_check(&c, 3, in, 2, 1, 1e-2f, 1e-3, 1e-2);
    c = gopt_layer_dropout(0.3f, 9);
    fd_check(&c, 3, in, 2, 0, 1e-2f, 1e-3, 1e-2); /* eval: identity */
}

/* maxpool2d kernel 2 stride 2: the AVX2 and the scalar loops give the generic rule's values
 * bit for bit, and backward sends each gradient to the first maximum in scan order, NaN
 * winning (PyTorch's rule), over ties, NaN, infinities, signed zeros and rows whose output
 * width is not a multiple of 8. */
static void test_maxpool_2x2_exact(void **state) {
    (void)state;
    const int64_t shapes[3][3] = {{3, 6, 37}, {4, 32, 32}, {2, 5, 5}};
    const float pool[8] = {-1.0f, 0.0f, -0.0f, 1.0f, 2.0f, NAN, INFINITY, -INFINITY};
    gopt_rng rng;
    gopt_rng_seed(&rng, 11);
    for (int k = 0; k < 3; k++) {
        const int n = 3, C = (int)shapes[k][0], H = (int)shapes[k][1], W = (int)shapes[k][2];
        const int OH = H / 2, OW = W / 2;
        const int64_t xn = (int64_t)n * C * H * W, yn = (int64_t)n * C * OH * OW;
        float *x = malloc(sizeof(float) * (size_t)xn), *dy = malloc(sizeof(float) * (size_t)yn);
        float *ry = malloc(sizeof(float) * (size_t)yn), *rdx = calloc((size_t)xn, sizeof(float));
        assert_non_null(x);
        assert_non_null(dy);
        assert_non_null(ry);
        assert_non_null(rdx);
        for (int64_t i = 0; i < xn; i++) { /* mostly ties among 4 values, sometimes the others */
            const uint64_t r = gopt_rng_below(&rng, 40);
            x[i] = r < 36 ? pool[r % 4] : pool[4 + (r - 36)];
        }
        for (int64_t i = 0; i < yn; i++) dy[i] = (float)(i + 1);
        for (int64_t pl = 0; pl < (int64_t)n * C; pl++) /* the rule, written out */
            for (int oy = 0; oy < OH; oy++)
                for (int ox = 0; ox < OW; ox++) {
                    int64_t best = -1;
                    for (int t = 0; t < 4; t++) {
                        const int64_t i = pl * H * W + (int64_t)(2 * oy + t / 2) * W + 2 * ox + t % 2;
                        if (best < 0 || x[i] > x[best] || (isnan(x[i]) && !isnan(x[best]))) best = i;
                    }
                    const int64_t o = (pl * OH + oy) * OW + ox;
                    ry[o] = x[best];
                    rdx[best] += dy[o];
                }
        for (int scalar = 0; scalar < 2; scalar++) {
            gopt__maxpool_set_scalar(scalar);
            gopt_params *p;
            gopt_layer *l;
            assert_ok(gopt_params_create(&p));
            gopt_layer_config c = gopt_layer_maxpool2d(2, 2, 0);
            assert_ok(gopt_layer_create(&c, 3, shapes[k], n, p, "m", &l)); /* no parameters: no finalize */
            gopt_tensor tx, y, tdy, tdx;
            float *dx = malloc(sizeof(float) * (size_t)xn);
            assert_non_null(dx);
            assert_ok(gopt_tensor_view(x, 4, (const int64_t[]){n, C, H, W}, &tx));
            assert_ok(gopt_layer_forward(l, &tx, &y));
            assert_int_equal(y.numel, yn);
            assert_memory_equal(y.data, ry, sizeof(float) * (size_t)yn);
            assert_ok(gopt_tensor_view(dy, 4, (const int64_t[]){n, C, OH, OW}, &tdy));
            assert_ok(gopt_tensor_view(dx, 4, (const int64_t[]){n, C, H, W}, &tdx));
            assert_ok(gopt_layer_backward(l, &tx, &tdy, &tdx));
            assert_memory_equal(dx, rdx, sizeof(float) * (size_t)xn);
            free(dx);
            gopt_layer_destroy(l);
            gopt_params_destroy(p);
        }
        gopt__maxpool_set_scalar(0);
        free(x);
        free(dy);
        free(ry);
        free(rdx);
    }
}

static void test_fd_basic_block(void **state) {
    (void)state;
    int64_t in[3] = {2, 6, 6};
    gopt_layer_config c = gopt_layer_basic_block(2, 3, 2); /* projection shortcut */
    fd_check(&c, 3, in, 2, 1, 3e-3f, 5e-3, 3e-2);
    fd_check(&c, 3, in, 2, 0, 3e-3f, 5e-3, 3e-2);
    c = gopt_layer_basic_block(2, 2, 1); /* identity shortcut */
    fd_check(&c, 3, in, 3, 1, 3e-3f, 5e-3, 3e-2);
}

static void test_dropout_train(void **state) {
    (void)state;
    gopt_params *p;
    gopt_layer *l;
    assert_ok(gopt_params_create(&p));
    int64_t in[1] = {10000};
    gopt_layer_config c = gopt_layer_dropout(0.25f, 5);
    assert_ok(gopt_layer_create(&c, 1, in, 1, p, "drop", &l));
    float *x = malloc(sizeof(float) * 10000), *d = malloc(sizeof(float) * 10000), *dx = malloc(sizeof(float) * 10000);
    for (int i = 0; i < 10000; i++) x[i] = 1.0f + (float)(i % 7);
    int64_t s[2] = {1, 10000};
    gopt_tensor tx, y, td, tdx;
    assert_ok(gopt_tensor_view(x, 2, s, &tx));
    assert_ok(gopt_layer_forward(l, &tx, &y));
    int kept = 0;
    for (int i = 0; i < 10000; i++) {
        if (y.data[i] != 0.0f) {
            kept++;
            assert_float_equal(y.data[i], x[i] / 0.75f, 1e-5);
        }
        d[i] = 1.0f;
    }
    assert_in_range(kept, 7200, 7800);
    assert_ok(gopt_tensor_view(d, 2, s, &td));
    assert_ok(gopt_tensor_view(dx, 2, s, &tdx));
    assert_ok(gopt_layer_backward(l, &tx, &td, &tdx));
    for (int i = 0; i < 10000; i++) assert_float_equal(dx[i], y.data[i] != 0.0f ? 1.0f / 0.75f : 0.0f, 1e-6);
    /* same seed, same mask */
    gopt_layer *l2;
    assert_ok(gopt_layer_create(&c, 1, in, 1, p, "drop2", &l2));
    gopt_tensor y2;
    assert_ok(gopt_layer_forward(l2, &tx, &y2));
    assert_memory_equal(y.data, y2.data, sizeof(float) * 10000);
    gopt_layer_set_training(l2, 0);
    assert_ok(gopt_layer_forward(l2, &tx, &y2));
    assert_memory_equal(x, y2.data, sizeof(float) * 10000);
    gopt_layer_destroy(l);
    gopt_layer_destroy(l2);
    gopt_params_destroy(p);
    free(x);
    free(d);
    free(dx);
}

static void test_param_tags_and_names(void **state) {
    (void)state;
    gopt_params *p;
    gopt_layer *l;
    assert_ok(gopt_params_create(&p));
    int64_t in[3] = {4, 8, 8};
    gopt_layer_config c = gopt_layer_basic_block(4, 8, 2);
    assert_ok(gopt_layer_create(&c, 3, in, 2, p, "blk", &l));
    assert_int_equal(gopt_params_count(p), 9);
    int idx;
    gopt_param_info info;
    assert_ok(gopt_params_find(p, "blk.conv1.weight", &idx));
    assert_ok(gopt_params_info(p, idx, &info));
    assert_int_equal(info.tag, GOPT_TAG_WEIGHT);
    assert_ok(gopt_params_find(p, "blk.shortcut.bn.bias", &idx));
    assert_ok(gopt_params_info(p, idx, &info));
    assert_int_equal(info.tag, GOPT_TAG_NORM);
    int64_t os[3];
    assert_int_equal(gopt_layer_out_shape(l, os), 3);
    assert_int_equal(os[0], 8);
    assert_int_equal(os[1], 4);
    gopt_layer_destroy(l);
    gopt_layer *lin;
    int64_t fin[1] = {6};
    c = gopt_layer_linear(6, 3, 1);
    assert_ok(gopt_layer_create(&c, 1, fin, 2, p, "fc", &lin));
    assert_ok(gopt_params_find(p, "fc.bias", &idx));
    assert_ok(gopt_params_info(p, idx, &info));
    assert_int_equal(info.tag, GOPT_TAG_BIAS);
    gopt_layer_destroy(lin);
    gopt_params_destroy(p);
}

static void test_errors(void **state) {
    (void)state;
    gopt_params *p;
    gopt_layer *l = NULL;
    assert_ok(gopt_params_create(&p));
    int64_t in[3] = {3, 8, 8};
    gopt_layer_config c = gopt_layer_conv2d(4, 8, 3, 1, 1, 0);
    assert_status(gopt_layer_create(&c, 3, in, 2, p, "c", &l), GOPT_ESHAPE, "(N,3,8,8)");
    assert_null(l);
    c = gopt_layer_conv2d(3, 8, 11, 1, 1, 0);
    assert_status(gopt_layer_create(&c, 3, in, 2, p, "c", &l), GOPT_ESHAPE, "kernel 11");
    c = gopt_layer_conv2d(3, 0, 3, 1, 1, 0);
    assert_status(gopt_layer_create(&c, 3, in, 2, p, "c", &l), GOPT_EINVAL, "out=0");
    c = gopt_layer_conv2d(3, 8, 3, 1, 1, 0);
    assert_status(gopt_layer_create(&c, 3, in, 0, p, "c", &l), GOPT_EINVAL, "max_batch");
    assert_status(gopt_layer_create(NULL, 3, in, 2, p, "c", &l), GOPT_EINVAL, "cfg");
    assert_status(gopt_layer_create(&c, 3, in, 2, p, "", &l), GOPT_EINVAL, "prefix");
    c = gopt_layer_batchnorm2d(3, 0);
    c.eps = 0.0f;
    assert_status(gopt_layer_create(&c, 3, in, 2, p, "bn", &l), GOPT_EINVAL, "eps");
    c = gopt_layer_dropout(1.5f, 0);
    assert_status(gopt_layer_create(&c, 3, in, 2, p, "d", &l), GOPT_EINVAL, "p = 1.5");
    c = gopt_layer_maxpool2d(2, 2, 2);
    assert_status(gopt_layer_create(&c, 3, in, 2, p, "m", &l), GOPT_EINVAL, "padding");
    int64_t flat[1] = {10};
    c = gopt_layer_linear(12, 4, 1);
    assert_status(gopt_layer_create(&c, 1, flat, 2, p, "fc", &l), GOPT_ESHAPE, "(N,10)");
    c = gopt_layer_conv2d(3, 8, 3, 1, 1, 0);
    assert_status(gopt_layer_create(&c, 1, flat, 2, p, "c", &l), GOPT_ESHAPE, "(N,C,H,W)");

    /* forward / backward shape errors name both shapes */
    assert_ok(gopt_layer_create(&c, 3, in, 2, p, "conv", &l));
    float buf[4 * 3 * 8 * 8] = {0};
    int64_t bad[4] = {2, 3, 8, 7}, big[4] = {3, 3, 8, 8}, good[4] = {2, 3, 8, 8};
    gopt_tensor x, y;
    assert_ok(gopt_tensor_view(buf, 4, good, &x));
    assert_status(gopt_layer_forward(l, &x, &y), GOPT_ESTATE, "not finalized");
    assert_ok(gopt_tensor_view(buf, 4, bad, &x));
    assert_ok(gopt_params_finalize(p));
    assert_status(gopt_layer_backward(l, &x, &x, NULL), GOPT_ESTATE, "before forward");
    assert_status(gopt_layer_forward(l, &x, &y), GOPT_ESHAPE, "(2,3,8,7)");
    testutil_check_detail("(N,3,8,8)");
    assert_ok(gopt_tensor_view(buf, 4, big, &x));
    assert_status(gopt_layer_forward(l, &x, &y), GOPT_ESHAPE, "batch at most 2");
    assert_ok(gopt_tensor_view(buf, 4, good, &x));
    assert_ok(gopt_layer_forward(l, &x, &y));
    assert_int_equal(y.shape[1], 8);
    gopt_tensor dy;
    assert_ok(gopt_tensor_view(buf, 4, good, &dy));
    assert_status(gopt_layer_backward(l, &x, &dy, NULL), GOPT_ESHAPE, "(2,3,8,8)");
    testutil_check_detail("(2,8,8,8)");
    assert_status(gopt_layer_bn_running(l, NULL, NULL), GOPT_EINVAL, "conv2d");
    assert_status(gopt_layer_init_params(l, (gopt_init)99, NULL), GOPT_EINVAL, "rng");
    gopt_layer_destroy(l);
    gopt_layer_destroy(NULL);
    c = gopt_layer_conv2d(3, 8, 3, 1, 1, 0);
    assert_status(gopt_layer_create(&c, 3, in, 2, p, "late", &l), GOPT_ESTATE, "finalized");
    gopt_params_destroy(p);
}

/* Every declared type: created with its default config on a few input shapes, it is
 * made, or refused with a status and a detail (a type not implemented yet: GOPT_EINVAL
 * "layer type X is not implemented"), never a crash; a type out of range is GOPT_EINVAL. */
static void test_every_type_created_or_refused(void **state) {
    (void)state;
    const int64_t shapes[3][3] = {{6, 1, 1}, {4, 6, 1}, {2, 4, 4}};
    int made = 0, refused = 0;
    for (int t = 0; t < GOPT_LAYER_TYPE_COUNT; t++)
        for (int k = 0; k < 3; k++) {
            gopt_params *p;
            assert_ok(gopt_params_create(&p));
            gopt_layer *l = NULL;
            gopt_layer_config c = gopt_layer_config_default((gopt_layer_type)t);
            gopt_clear_error();
            gopt_status s = gopt_layer_create(&c, k + 1, shapes[k], 2, p, "l", &l);
            if (s == GOPT_OK) {
                assert_non_null(l);
                assert_int_equal(gopt_layer_get_type(l), t);
                made++;
            } else {
                assert_null(l);
                assert_true(s == GOPT_EINVAL || s == GOPT_ESHAPE);
                assert_true(strlen(gopt_last_error()) > 0);
                if (strstr(gopt_last_error(), "not implemented"))
                    testutil_check_detail(gopt_layer_type_name((gopt_layer_type)t));
                refused++;
            }
            gopt_layer_destroy(l);
            gopt_params_destroy(p);
        }
    assert_true(made > 0 && refused > 0);
    gopt_params *p;
    assert_ok(gopt_params_create(&p));
    gopt_layer *l = NULL;
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_TYPE_COUNT);
    assert_status(gopt_layer_create(&c, 3, shapes[2], 2, p, "l", &l), GOPT_EINVAL, "out of range");
    c.type = (gopt_layer_type)-1;
    assert_status(gopt_layer_create(&c, 3, shapes[2], 2, p, "l", &l), GOPT_EINVAL, "out of range");
    gopt_params_destroy(p);
}

static void test_out_of_memory(void **state) {
    (void)state;
    int64_t in[3] = {3, 8, 8};
    gopt_layer_config c = gopt_layer_basic_block(3, 6, 2);
    for (long budget = 0; budget < 40; budget++) {
        gopt_params *p;
        assert_ok(gopt_params_create(&p));
        gopt_layer *l = NULL;
        testutil_fail_after(budget);
        gopt_status s = gopt_layer_create(&c, 3, in, 2, p, "b", &l);
        testutil_alloc_reset();
        if (s == GOPT_OK) {
            gopt_layer_destroy(l);
            gopt_params_destroy(p);
            assert_true(budget > 5);
            break;
        }
        assert_int_equal(s, GOPT_ENOMEM);
        assert_null(l);
        gopt_params_destroy(p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_linear),
        cmocka_unit_test(test_fd_linear_time_distributed),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_fd_conv),
        cmocka_unit_test(test_fd_batchnorm),
        cmocka_unit_test(test_fd_activations_pools),
        cmocka_unit_test(test_maxpool_2x2_exact),
        cmocka_unit_test(test_fd_basic_block),
        cmocka_unit_test(test_dropout_train),
        cmocka_unit_test(test_param_tags_and_names),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_every_type_created_or_refused),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
