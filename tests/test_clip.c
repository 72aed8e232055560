/* Tests of gradopt/clip.h: norms and clipping by hand, non-finite handling, thread-count
 * independence, AGC, errors, and gradient accumulation == one big batch. */
#include <math.h>
#include <stdio.h>

#include "testutil.h"

static gopt_params *arena(int64_t n0, int64_t rows, int64_t cols) {
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    int64_t a[1] = {n0}, b[2] = {rows, cols};
    assert_ok(gopt_params_add(p, "a", 1, a, GOPT_TAG_BIAS, NULL));
    assert_ok(gopt_params_add(p, "b", 2, b, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_finalize(p));
    return p;
}

static void test_norm_clip_by_hand(void **state) {
    (void)state;
    gopt_params *p = arena(2, 1, 2);
    float *g = gopt_params_grads(p);
    g[0] = 3; g[1] = 0; g[2] = -4; g[3] = 0; /* L2 5, L1 7, Linf 4 */
    float total = 0;
    assert_ok(gopt_clip_grad_norm(p, 10.0, 2.0, 0, &total));
    assert_true(total == 5.0f);
    assert_true(g[0] == 3.0f && g[2] == -4.0f); /* inactive: untouched */
    assert_ok(gopt_clip_grad_norm(p, 1.0, 2.0, 0, &total));
    float coef = 1.0f / (5.0f + 1e-6f);
    assert_true(g[0] == 3.0f * coef && g[2] == -4.0f * coef);
    g[0] = 3; g[2] = -4;
    assert_ok(gopt_clip_grad_norm(p, 3.5, 1.0, 0, &total));
    assert_true(total == 7.0f);
    assert_true(fabsf(g[0] - 1.5f) < 1e-6f);
    g[0] = 3; g[2] = -4;
    assert_ok(gopt_clip_grad_norm(p, 2.0, INFINITY, 0, &total));
    assert_true(total == 4.0f);
    assert_true(fabsf(g[2] + 2.0f) < 1e-6f);
    g[0] = 3; g[2] = -4;
    assert_ok(gopt_clip_grad_norm(p, 100.0, 3.0, 0, &total));
    assert_true(fabsf(total - cbrtf(27.0f + 64.0f)) < 1e-5f);
    /* per tensor */
    float norms[2];
    assert_ok(gopt_clip_grad_norm_per_tensor(p, 2.0, 2.0, norms));
    assert_true(norms[0] == 3.0f && norms[1] == 4.0f);
    assert_true(fabsf(g[0] - 2.0f) < 1e-5f && fabsf(g[2] + 2.0f) < 1e-5f);
    /* value */
    g[0] = 3; g[1] = NAN; g[2] = -4; g[3] = 0.25f;
    assert_ok(gopt_clip_grad_value(p, 0.5));
    assert_true(g[0] == 0.5f && isnan(g[1]) && g[2] == -0.5f && g[3] == 0.25f);
    gopt_params_destroy(p);
}

static void test_nonfinite(void **state) {
    (void)state;
    gopt_params *p = arena(3, 2, 2);
    float *g = gopt_params_grads(p);
    float orig[7] = {1, 2, NAN, 4, 5, 6, 7};
    for (float inf_or_nan = 0; inf_or_nan < 2; inf_or_nan++) {
        memcpy(g, orig, sizeof orig);
        if (inf_or_nan) g[2] = INFINITY;
        float saved[7];
        memcpy(saved, g, sizeof saved);
        float total = 0;
        assert_status(gopt_clip_grad_norm(p, 1.0, 2.0, 1, &total), GOPT_ENONFINITE, "untouched");
        assert_false(isfinite(total));
        assert_memory_equal(g, saved, sizeof saved);
        assert_status(gopt_clip_grad_norm(p, 1.0, INFINITY, 1, &total), GOPT_ENONFINITE, "norm");
        /* without the check, PyTorch's arithmetic spreads the NaN / zeroes by Inf */
        assert_ok(gopt_clip_grad_norm(p, 1.0, 2.0, 0, &total));
        assert_true(isnan(g[0]) || g[0] == 0.0f);
    }
    gopt_params_destroy(p);
}

static void test_threads_deterministic(void **state) {
    (void)state;
    int64_t n = 3000001;
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    uint64_t x = 88172645463325252ULL;
    for (int64_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        a[i] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5);
    }
    memcpy(b, a, (size_t)n * sizeof *a);
    double exact = 0;
    for (int64_t i = 0; i < n; i++) exact += (double)a[i] * a[i];
    exact = sqrt(exact);
    float t1, t2;
    int saved = gopt_get_threads();
    gopt_set_threads(1);
    assert_ok(gopt_clip_grad_norm_buffer(a, n, 1.0, 2.0, 0, &t1));
    gopt_set_threads(2);
    assert_ok(gopt_clip_grad_norm_buffer(b, n, 1.0, 2.0, 0, &t2));
    gopt_set_threads(saved);
    assert_true(t1 == t2);
    assert_true(fabs(t1 - exact) < 1e-5 * exact);
    assert_memory_equal(a, b, (size_t)n * sizeof *a);
    float nrm;
    assert_ok(gopt_norm(a, n, 2.0, &nrm));
    assert_true(fabsf(nrm - 1.0f) < 1e-4f);
    free(a);
    free(b);
}

static void test_agc(void **state) {
    (void)state;
    gopt_params *p = arena(2, 2, 2);
    float *w = gopt_params_values(p), *g = gopt_params_grads(p);
    /* bias (per element): w = {1, 0}, g = {0.5, 0.5} ; weight rows: w = {3,4},{0,0}, g = {0.03,0.04},{1,0} */
    float wv[6] = {1, 0, 3, 4, 0, 0}, gv[6] = {0.5f, 0.5f, 0.03f, 0.04f, 1, 0};
    memcpy(w, wv, sizeof wv);
    memcpy(g, gv, sizeof gv);
    int64_t clipped = -1;
    assert_ok(gopt_clip_agc(p, 0.1, 1e-3, GOPT_TAG_ALL, &clipped));
    /* bias[0]: max = 0.1*1 = 0.1 < 0.5 -> 0.1; bias[1]: max = 0.1*1e-3 -> 1e-4;
     * row 0: ||g|| = 0.05 <= 0.1*5 = 0.5 untouched; row 1: max 1e-4 -> g = {1e-4, 0} */
    assert_int_equal(clipped, 3);
    assert_true(fabsf(g[0] - 0.1f) < 1e-7f);
    assert_true(fabsf(g[1] - 1e-4f) < 1e-10f);
    assert_true(g[2] == 0.03f && g[3] == 0.04f);
    assert_true(fabsf(g[4] - 1e-4f) < 1e-10f && g[5] == 0.0f);
    memcpy(g, gv, sizeof gv);
    assert_ok(gopt_clip_agc(p, 0.1, 1e-3, GOPT_TAG_WEIGHT, &clipped));
    assert_int_equal(clipped, 1);
    assert_true(g[0] == 0.5f);
    assert_status(gopt_clip_agc(p, 0, 1e-3, GOPT_TAG_ALL, NULL), GOPT_EINVAL, "clipping");
    assert_status(gopt_clip_agc(p, 0.1, -1, GOPT_TAG_ALL, NULL), GOPT_EINVAL, "eps");
    assert_status(gopt_clip_agc(p, 0.1, 1e-3, 0, NULL), GOPT_EINVAL, "tag_mask");
    gopt_params_destroy(p);
}

static void test_errors(void **state) {
    (void)state;
    gopt_params *p = arena(2, 1, 1);
    float t;
    assert_status(gopt_clip_grad_norm(p, -1.0, 2.0, 0, &t), GOPT_EINVAL, "max_norm");
    assert_status(gopt_clip_grad_norm(p, NAN, 2.0, 0, &t), GOPT_EINVAL, "max_norm");
    assert_status(gopt_clip_grad_norm(p, 1.0, 0.0, 0, &t), GOPT_EINVAL, "norm_type");
    assert_status(gopt_clip_grad_norm(p, 1.0, NAN, 0, &t), GOPT_EINVAL, "norm_type");
    assert_status(gopt_clip_grad_norm_per_tensor(p, 1.0, -2.0, NULL), GOPT_EINVAL, "norm_type");
    assert_status(gopt_clip_grad_value(p, -0.5), GOPT_EINVAL, "clip_value");
    assert_status(gopt_clip_grad_norm(NULL, 1.0, 2.0, 0, &t), GOPT_EINVAL, "p");
    assert_status(gopt_clip_grad_norm_buffer(NULL, 4, 1.0, 2.0, 0, &t), GOPT_EINVAL, "grads");
    assert_status(gopt_clip_grad_norm_buffer(NULL, -1, 1.0, 2.0, 0, &t), GOPT_EINVAL, "n");
    assert_status(gopt_norm(NULL, 0, 2.0, NULL), GOPT_EINVAL, "out");
    gopt_params *raw = NULL;
    assert_ok(gopt_params_create(&raw));
    assert_status(gopt_clip_grad_norm(raw, 1.0, 2.0, 0, &t), GOPT_ESTATE, "finalized");
    assert_status(gopt_clip_grad_value(raw, 1.0), GOPT_ESTATE, "finalized");
    gopt_params_destroy(raw);
    gopt_params_destroy(p);
}

/* Linear model y = w.x + b with mean squared error: grads by hand.
 * dL/dw = 2/B sum (pred - y) x, dL/db = 2/B sum (pred - y). */
#define DIM 3
static void add_grads(gopt_params *p, const float (*x)[DIM], const float *y, int from, int count) {
    const float *v = gopt_params_values(p);
    float *g = gopt_params_grads(p);
    for (int i = from; i < from + count; i++) {
        float pred = v[DIM];
        for (int d = 0; d < DIM; d++) pred += v[d] * x[i][d];
        float r = 2.0f * (pred - y[i]) / (float)count;
        for (int d = 0; d < DIM; d++) g[d] += r * x[i][d];
        g[DIM] += r;
    }
}

static gopt_params *linear_model(gopt_optim **opt) {
    gopt_params *p = NULL;
    assert_ok(gopt_params_create(&p));
    int64_t w[1] = {DIM}, b[1] = {1};
    assert_ok(gopt_params_add(p, "w", 1, w, GOPT_TAG_WEIGHT, NULL));
    assert_ok(gopt_params_add(p, "b", 1, b, GOPT_TAG_BIAS, NULL));
    assert_ok(gopt_params_finalize(p));
    float init[DIM + 1] = {0.5f, -0.25f, 0.125f, 0.1f};
    memcpy(gopt_params_values(p), init, sizeof init);
    gopt_optim_config oc = gopt_optim_config_default(GOPT_ALGO_SGD);
    oc.lr = 0.05f;
    oc.momentum = 0.9f;
    assert_ok(gopt_optim_create(&oc, p, opt));
    return p;
}

static void test_accumulation_equals_big_batch(void **state) {
    (void)state;
    enum { K = 4, B = 3, STEPS = 3 };
    float x[STEPS * K * B][DIM], y[STEPS * K * B];
    for (int i = 0; i < STEPS * K * B; i++) {
        for (int d = 0; d < DIM; d++) x[i][d] = (float)((i * 7 + d * 3) % 11) / 11.0f - 0.5f;
        y[i] = (float)(i % 5) / 5.0f;
    }
    gopt_optim *big_opt = NULL, *acc_opt = NULL;
    gopt_params *big = linear_model(&big_opt), *acc = linear_model(&acc_opt);
    gopt_accum *a = NULL;
    assert_ok(gopt_accum_create(K, &a));
    gopt_sched_config sc = gopt_sched_config_default(GOPT_SCHED_STEP);
    sc.step_size = 1;
    sc.gamma = 0.5;
    gopt_sched *s_big = NULL, *s_acc = NULL;
    assert_ok(gopt_sched_create(&sc, big_opt, &s_big));
    assert_ok(gopt_sched_create(&sc, acc_opt, &s_acc));
    for (int t = 0; t < STEPS; t++) {
        add_grads(big, (const float(*)[DIM])x, y, t * K * B, K * B);
        assert_ok(gopt_optim_step(big_opt));
        assert_ok(gopt_sched_step(s_big));
        gopt_optim_zero_grad(big_opt);
        for (int k = 0; k < K; k++) {
            add_grads(acc, (const float(*)[DIM])x, y, t * K * B + k * B, B);
            int now = -1;
            assert_ok(gopt_accum_add(a, acc, &now));
            assert_int_equal(now, k == K - 1);
            assert_int_equal(gopt_accum_pending(a), (k + 1) % K);
            if (now) {
                assert_ok(gopt_optim_step(acc_opt));
                assert_ok(gopt_sched_step(s_acc)); /* counts optimizer steps */
                gopt_optim_zero_grad(acc_opt);
            }
        }
    }
    assert_int_equal(gopt_accum_steps(a), STEPS);
    assert_int_equal(gopt_sched_last_epoch(s_acc), STEPS);
    assert_true(gopt_sched_get_lr(s_acc, 0) == gopt_sched_get_lr(s_big, 0));
    const float *vb = gopt_params_values(big), *va = gopt_params_values(acc);
    for (int i = 0; i <= DIM; i++) assert_true(fabsf(va[i] - vb[i]) <= 1e-6f * (1 + fabsf(vb[i])));
    assert_true(va[0] != 0.5f); /* it did train */

    /* state and errors */
    int now;
    assert_ok(gopt_accum_add(a, acc, &now));
    size_t n = gopt_accum_state_size(a);
    unsigned char buf[64];
    assert_ok(gopt_accum_state_save(a, buf, n));
    gopt_accum *b = NULL, *other = NULL;
    assert_ok(gopt_accum_create(K, &b));
    assert_ok(gopt_accum_state_load(b, buf, n));
    assert_int_equal(gopt_accum_pending(b), 1);
    assert_int_equal(gopt_accum_steps(b), STEPS);
    assert_ok(gopt_accum_create(K + 1, &other));
    assert_status(gopt_accum_state_load(other, buf, n), GOPT_EFORMAT, "k");
    assert_status(gopt_accum_state_load(b, buf, n - 1), GOPT_EFORMAT, "bytes");
    gopt_accum_reset(b);
    assert_int_equal(gopt_accum_pending(b), 0);
    gopt_accum *bad = NULL;
    assert_status(gopt_accum_create(0, &bad), GOPT_EINVAL, "k");
    assert_status(gopt_accum_add(a, NULL, &now), GOPT_EINVAL, "p");
    gopt_accum_destroy(NULL);
    gopt_accum_destroy(a);
    gopt_accum_destroy(b);
    gopt_accum_destroy(other);
    gopt_sched_destroy(s_big);
    gopt_sched_destroy(s_acc);
    gopt_optim_destroy(big_opt);
    gopt_optim_destroy(acc_opt);
    gopt_params_destroy(big);
    gopt_params_destroy(acc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norm_clip_by_hand),
        cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_threads_deterministic),
        cmocka_unit_test(test_agc),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_accumulation_equals_big_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
