#define _POSIX_C_SOURCE 200809L
/* The sequence scenario's pieces (examples/common): the adding problem's generator, task and
 * its refusals, the trainer's clip by value and its `clipped` flag, and the built-in text. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "builtin_text.h"
#include "task_adding.h"

static void generator_marks_one_value_in_each_half(void **state) {
    (void)state;
    const int Ts[] = {2, 3, 10, 201};
    for (int k = 0; k < 4; k++) {
        const int T = Ts[k], n = 300;
        float *x = malloc((size_t)n * T * 2 * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
        assert_non_null(x);
        assert_non_null(y);
        gopt_rng r;
        gopt_rng_seed(&r, 5);
        adding_generate(&r, n, T, x, y);
        double mean = 0;
        for (int i = 0; i < n; i++) {
            const float *s = x + (size_t)i * T * 2;
            int first = 0, second = 0;
            double sum = 0;
            for (int t = 0; t < T; t++) {
                assert_true(s[2 * t] >= 0.0f && s[2 * t] < 1.0f);
                assert_true(s[2 * t + 1] == 0.0f || s[2 * t + 1] == 1.0f);
                if (s[2 * t + 1] == 1.0f) {
                    if (t < T / 2) first++;
                    else second++;
                    sum += s[2 * t];
                }
            }
            assert_int_equal(first, 1);
            assert_int_equal(second, 1);
            assert_float_equal(y[i], sum, 1e-6);
            mean += y[i];
        }
        assert_float_equal(mean / n, 1.0, 0.1); /* the sum of two U(0,1) has mean 1 */
        /* the same seed gives the same sequences */
        float *x2 = malloc((size_t)n * T * 2 * sizeof(float)), *y2 = malloc((size_t)n * sizeof(float));
        gopt_rng_seed(&r, 5);
        adding_generate(&r, n, T, x2, y2);
        assert_memory_equal(x, x2, (size_t)n * T * 2 * sizeof(float));
        assert_memory_equal(y, y2, (size_t)n * sizeof(float));
        free(x), free(y), free(x2), free(y2);
    }
}

static adding_model small_model(gopt_layer_type arch) {
    adding_model m = {arch, 12, 8, arch == GOPT_LAYER_RNN ? 1.0 : 0, 40, 77};
    return m;
}

static trainer_config small_config(void) {
    trainer_config c = trainer_config_default();
    c.batch = 8;
    c.seed = 3;
    c.optim = gopt_optim_config_default(GOPT_ALGO_ADAM);
    c.optim.lr = 0.01f;
    c.total_steps = 10;
    return c;
}

static void adding_refuses_bad_models(void **state) {
    (void)state;
    char err[256];
    trainer *t = (trainer *)0x1;
    trainer_config c = small_config();
    adding_model m = small_model(GOPT_LAYER_RNN);
    m.test_n = 0;
    assert_int_equal(adding_trainer_create(&c, &m, &t, err, sizeof err), -1);
    assert_null(t);
    assert_non_null(strstr(err, "test_n"));
    m = small_model(GOPT_LAYER_RNN);
    m.T = 1;
    assert_int_equal(adding_trainer_create(&c, &m, &t, err, sizeof err), -1);
    assert_null(t);
    assert_non_null(strstr(err, "T = 1"));
    m = small_model(GOPT_LAYER_GRU);
    assert_int_equal(adding_trainer_create(&c, &m, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "rnn or lstm"));
    m = small_model(GOPT_LAYER_LSTM);
    c.batch = 0;
    assert_int_equal(adding_trainer_create(&c, &m, &t, err, sizeof err), -1);
    assert_non_null(strstr(err, "batch"));
}

/* n steps; losses into out; returns the trainer. */
static trainer *run_steps(const trainer_config *c, const adding_model *m, int n, double *out) {
    char err[256];
    trainer *t;
    if (adding_trainer_create(c, m, &t, err, sizeof err)) fail_msg("%s", err);
    for (int i = 0; i < n; i++) {
        trainer_step st;
        int ed;
        if (trainer_step_once(t, &st, &ed, err, sizeof err)) fail_msg("%s", err);
        out[i] = st.loss;
    }
    return t;
}

static void adding_trains_deterministically_and_resumes(void **state) {
    (void)state;
    char err[256], path[] = "/tmp/gopt_adding_ckptXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    for (int a = 0; a < 2; a++) {
        gopt_layer_type arch = a ? GOPT_LAYER_LSTM : GOPT_LAYER_RNN;
        adding_model m = small_model(arch);
        trainer_config c = small_config();
        double l1[6], l2[6], l3[3];
        trainer *t1 = run_steps(&c, &m, 6, l1);
        trainer *t2 = run_steps(&c, &m, 3, l2);
        for (int i = 0; i < 3; i++) assert_true(l1[i] == l2[i]);
        assert_int_equal(trainer_save(t2, path, NULL, err, sizeof err), 0);
        trainer *t3 = run_steps(&c, &m, 0, l3);
        assert_int_equal(trainer_load(t3, path, err, sizeof err), 0);
        for (int i = 0; i < 3; i++) {
            trainer_step st;
            int ed;
            assert_int_equal(trainer_step_once(t3, &st, &ed, err, sizeof err), 0);
            assert_true(st.loss == l1[3 + i]); /* the resumed run continues bit-exactly */
        }
        double mse1, mse3;
        assert_int_equal(adding_evaluate(t1, &mse1, err, sizeof err), 0);
        assert_int_equal(adding_evaluate(t3, &mse3, err, sizeof err), 0);
        assert_true(mse1 == mse3);
        assert_true(isfinite(mse1) && mse1 > 0);
        /* another T is refused by name */
        adding_model m2 = m;
        m2.T = 14;
        trainer *t4 = run_steps(&c, &m2, 0, l3);
        assert_int_equal(trainer_load(t4, path, err, sizeof err), -1);
        assert_non_null(strstr(err, "T = 12"));
        trainer_destroy(t1), trainer_destroy(t2), trainer_destroy(t3), trainer_destroy(t4);
    }
    remove(path);
}

/* One step with the given clipping; *maxabs receives max |g| of the arena after it. */
static trainer_step clip_step(double clip_norm, double clip_value, double *maxabs, double *norm_after) {
    char err[256];
    adding_model m = small_model(GOPT_LAYER_RNN);
    trainer_config c = small_config();
    c.clip_norm = clip_norm;
    c.clip_value = clip_value;
    trainer *t;
    if (adding_trainer_create(&c, &m, &t, err, sizeof err)) fail_msg("%s", err);
    trainer_step st;
    int ed;
    if (trainer_step_once(t, &st, &ed, err, sizeof err)) fail_msg("%s", err);
    gopt_params *p = gopt_net_params(trainer_net(t));
    float mx, nm;
    assert_int_equal(gopt_norm(gopt_params_grads(p), gopt_params_numel(p), INFINITY, &mx), GOPT_OK);
    assert_int_equal(gopt_norm(gopt_params_grads(p), gopt_params_numel(p), 2.0, &nm), GOPT_OK);
    *maxabs = mx;
    *norm_after = nm;
    trainer_destroy(t);
    return st;
}

static void trainer_clips_by_value_and_says_so(void **state) {
    (void)state;
    double mx0, n0, mx, n;
    trainer_step s = clip_step(0, 0, &mx0, &n0);
    assert_int_equal(s.clipped, 0);
    assert_true(mx0 > 0);
    assert_float_equal(n0, s.grad_norm, 1e-4 * s.grad_norm);
    /* a value threshold below max |g| bites: every element within it, flagged */
    s = clip_step(0, 0.25 * mx0, &mx, &n);
    assert_int_equal(s.clipped, 1);
    assert_true(mx <= 0.25 * mx0 * (1 + 1e-6));
    assert_float_equal(s.grad_norm, n0, 1e-6 * n0); /* grad_norm is before clipping */
    /* above max |g|: untouched, not flagged */
    s = clip_step(0, 2 * mx0, &mx, &n);
    assert_int_equal(s.clipped, 0);
    assert_true(mx == mx0);
    /* the norm clip: flagged when it scales */
    s = clip_step(0.5 * n0, 0, &mx, &n);
    assert_int_equal(s.clipped, 1);
    assert_float_equal(n, 0.5 * n0, 1e-3 * n0);
    s = clip_step(2 * n0, 0, &mx, &n);
    assert_int_equal(s.clipped, 0);
    /* both: the value clip runs after the norm clip */
    s = clip_step(0.5 * n0, 0.1 * mx0, &mx, &n);
    assert_int_equal(s.clipped, 1);
    assert_true(mx <= 0.1 * mx0 * (1 + 1e-6));
}

static void builtin_text_is_seeded_and_exact(void **state) {
    (void)state;
    char *a, *b, *c;
    assert_int_equal(builtin_text_generate(9, 50000, &a), 0);
    assert_int_equal(builtin_text_generate(9, 50000, &b), 0);
    assert_int_equal(builtin_text_generate(10, 50000, &c), 0);
    assert_memory_equal(a, b, 50000);
    assert_true(memcmp(a, c, 50000) != 0);
    int seen[256] = {0}, symbols = 0, sentences = 0;
    for (int i = 0; i < 50000; i++) {
        unsigned char ch = (unsigned char)a[i];
        assert_true(ch == '\n' || (ch >= 32 && ch < 127));
        if (!seen[ch]++) symbols++;
        sentences += ch == '.';
    }
    assert_true(symbols >= 30 && symbols <= 60);
    assert_true(sentences > 500);
    const char *first = a[0] == '"' ? a + 1 : a; /* starts a capitalised sentence (maybe quoted) */
    assert_true(*first >= 'A' && *first <= 'Z');
    free(a), free(b), free(c);
    assert_int_equal(builtin_text_generate(1, 1, &a), 0);
    free(a);
}

int main(void) {
    gopt_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(generator_marks_one_value_in_each_half),
        cmocka_unit_test(adding_refuses_bad_models),
        cmocka_unit_test(adding_trains_deterministically_and_resumes),
        cmocka_unit_test(trainer_clips_by_value_and_says_so),
        cmocka_unit_test(builtin_text_is_seeded_and_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
