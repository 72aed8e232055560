/* Recurrent layers (rnn, lstm, gru): parameter names, layout and init, the recurrent state
 * API (states in and out, batches below max_batch), error paths and allocation failures.
 * Gradients and semantics are checked in test_recurrent.c. */
#define _POSIX_C_SOURCE 200809L
#include "rnn_testutil.h"

#include <math.h>
#include <stdio.h>

/* ---- parameters: names, layout, init, no-bias ------------------------------------------- */

static void test_params_names_init(void **state) {
    (void)state;
    const char *kinds[3] = {"rnn", "lstm", "gru"};
    const int G[3] = {1, 4, 3};
    for (int k = 0; k < 3; k++) {
        for (int bias = 0; bias <= 1; bias++) {
            gopt_layer_config cfg = k == 0   ? gopt_layer_rnn(3, 8, 2, GOPT_RNN_TANH, bias, 0.0f, 0)
                                    : k == 1 ? gopt_layer_lstm(3, 8, 2, bias, 0.0f, 0)
                                             : gopt_layer_gru(3, 8, 2, bias, 0.0f, 0);
            gopt_params *params;
            gopt_layer *layer;
            int64_t in[2] = {4, 3};
            assert_ok(gopt_params_create(&params));
            assert_ok(gopt_layer_create(&cfg, 2, in, 2, params, kinds[k], &layer));
            assert_int_equal(gopt_params_count(params), bias ? 8 : 4);
            const char *names[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
            int idx = 0;
            for (int l = 0; l < 2; l++)
                for (int j = 0; j < (bias ? 4 : 2); j++, idx++) {
                    char want[64];
                    snprintf(want, sizeof want, "%s.%s_l%d", kinds[k], names[j], l);
                    int found;
                    assert_ok(gopt_params_find(params, want, &found));
                    assert_int_equal(found, idx);
                }
            assert_ok(gopt_params_finalize(params));
            gopt_param_info info;
            assert_ok(gopt_params_info(params, 0, &info));
            assert_int_equal(info.value.ndim, 2);
            assert_int_equal(info.value.shape[0], G[k] * 8);
            assert_int_equal(info.value.shape[1], 3);
            assert_int_equal(info.tag, GOPT_TAG_WEIGHT);
            assert_ok(gopt_params_info(params, bias ? 4 : 2, &info)); /* weight_ih_l1: (G*H, H) */
            assert_int_equal(info.value.shape[1], 8);
            if (bias) {
                assert_ok(gopt_params_info(params, 3, &info));
                assert_int_equal(info.tag, GOPT_TAG_BIAS);
                assert_int_equal(info.value.shape[0], G[k] * 8);
            }
            gopt_rng rng;
            gopt_rng_seed(&rng, 5);
            assert_ok(gopt_layer_init_params(layer, GOPT_INIT_TORCH_DEFAULT, &rng));
            const float *v = gopt_params_values(params);
            float bound = 1.0f / sqrtf(8.0f), mx = 0.0f;
            for (int64_t i = 0; i < gopt_params_numel(params); i++) {
                assert_true(fabsf(v[i]) <= bound);
                if (fabsf(v[i]) > mx) mx = fabsf(v[i]);
            }
            assert_true(mx > 0.9f * bound); /* uniform over the whole range, not a narrower one */
            int64_t out[3];
            assert_int_equal(gopt_layer_out_shape(layer, out), 2);
            assert_int_equal(out[0], 4);
            assert_int_equal(out[1], 8);
            drop(layer, params);
        }
    }
    gopt_layer_config d = gopt_layer_config_default(GOPT_LAYER_LSTM);
    assert_int_equal(d.num_layers, 1);
    assert_int_equal(d.bias, 1);
    assert_true(d.p == 0.0f);
    assert_int_equal(d.carry_state, 0);
}

/* ---- states in and out; a batch below max_batch ------------------------------------------ */

static void test_states_and_small_batch(void **state) {
    (void)state;
    const int N = 3, T = 4, I = 2, H = 3, L = 2;
    gopt_layer_config cfg = gopt_layer_lstm(I, H, L, 1, 0.0f, 0);
    gopt_params *params;
    gopt_layer *layer = new_layer(&cfg, T, N, &params);
    gopt_rng rng;
    gopt_rng_seed(&rng, 9);
    assert_ok(gopt_layer_init_params(layer, GOPT_INIT_TORCH_DEFAULT, &rng));
    float *x = randn(&rng, N * T * I, 1.0f), *h0 = randn(&rng, L * N * H, 1.0f), *c0 = randn(&rng, L * N * H, 1.0f);
    int64_t xs[3] = {N, T, I}, ss[3] = {L, N, H};
    gopt_tensor tx, ty, th, tc, hn, cn;
    assert_ok(gopt_tensor_view(x, 3, xs, &tx));
    assert_ok(gopt_tensor_view(h0, 3, ss, &th));
    assert_ok(gopt_tensor_view(c0, 3, ss, &tc));
    assert_status(gopt_layer_rnn_get_state(layer, &hn, &cn), GOPT_ESTATE, "no forward");
    assert_status(gopt_layer_rnn_set_state_grad(layer, NULL, NULL), GOPT_ESTATE, NULL);
    /* zero state == explicit zeros */
    assert_ok(gopt_layer_forward(layer, &tx, &ty));
    float *yz = malloc(sizeof(float) * N * T * H);
    memcpy(yz, ty.data, sizeof(float) * N * T * H);
    assert_status(gopt_layer_rnn_get_state_grad(layer, &hn, NULL), GOPT_ESTATE, "no backward");
    float *zeros = calloc((size_t)(L * N * H), sizeof(float));
    gopt_tensor tz;
    assert_ok(gopt_tensor_view(zeros, 3, ss, &tz));
    assert_ok(gopt_layer_rnn_set_state(layer, &tz, NULL)); /* c0 NULL: zeros */
    assert_ok(gopt_layer_forward(layer, &tx, &ty));
    assert_memory_equal(yz, ty.data, sizeof(float) * N * T * H);
    /* a set state is used, and stays in effect (no carry_state) until reset */
    assert_ok(gopt_layer_rnn_set_state(layer, &th, &tc));
    assert_ok(gopt_layer_forward(layer, &tx, &ty));
    float *ys = malloc(sizeof(float) * N * T * H);
    memcpy(ys, ty.data, sizeof(float) * N * T * H);
    assert_true(memcmp(ys, yz, sizeof(float) * N * T * H) != 0);
    assert_ok(gopt_layer_forward(layer, &tx, &ty));
    assert_memory_equal(ys, ty.data, sizeof(float) * N * T * H);
    /* h_n is the last output of the top layer */
    assert_ok(gopt_layer_rnn_get_state(layer, &hn, &cn));
    assert_int_equal(hn.ndim, 3);
    assert_int_equal(hn.shape[0], L);
    assert_int_equal(hn.shape[1], N);
    assert_int_equal(hn.shape[2], H);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < H; j++)
            assert_true(hn.data[(L - 1) * N * H + n * H + j] == ty.data[(n * T + T - 1) * H + j]);
    /* the state's batch must match the input's */
    int64_t x1s[3] = {1, T, I};
    gopt_tensor tx1;
    assert_ok(gopt_tensor_view(x, 3, x1s, &tx1));
    assert_status(gopt_layer_forward(layer, &tx1, &ty), GOPT_ESHAPE, "initial state");
    /* batch 1 of max 3: same as the first row of the batch of 3 */
    assert_ok(gopt_layer_rnn_reset_state(layer));
    assert_ok(gopt_layer_forward(layer, &tx1, &ty));
    for (int k = 0; k < T * H; k++) assert_float_equal(ty.data[k], yz[k], 1e-6);
    free_n(6, x, h0, c0, yz, ys, zeros);
    drop(layer, params);
}

/* ---- errors ------------------------------------------------------------------------------- */

static gopt_status try_create(gopt_layer_config cfg, int ndim, int64_t d0, int64_t d1) {
    gopt_params *params;
    gopt_layer *layer = (gopt_layer *)&params; /* must be reset to NULL on failure */
    int64_t in[3] = {d0, d1, 1};
    assert_ok(gopt_params_create(&params));
    gopt_status s = gopt_layer_create(&cfg, ndim, in, 2, params, "r", &layer);
    if (s != GOPT_OK) assert_null(layer);
    drop(layer, params);
    return s;
}

static void test_errors(void **state) {
    (void)state;
    gopt_layer_config ok = gopt_layer_lstm(3, 4, 2, 1, 0.0f, 0);
    assert_int_equal(try_create(ok, 2, 5, 3), GOPT_OK);
    assert_status(try_create(ok, 2, 5, 4), GOPT_ESHAPE, "(T,3)");
    assert_status(try_create(ok, 1, 5, 3), GOPT_ESHAPE, "(T,3)");
    assert_status(try_create(ok, 3, 5, 3), GOPT_ESHAPE, NULL);
    /* each field out of range in turn */
    gopt_layer_config bad[8];
    for (int i = 0; i < 8; i++) bad[i] = ok;
    bad[0].num_layers = 0;
    bad[1].out_features = 0;
    bad[2].in_features = -1;
    bad[3].p = 1.5f;
    bad[4].p = NAN;
    bad[5].carry_state = 2;
    bad[6].bias = 3;
    bad[7].num_layers = 65;
    const char *field[8] = {"num_layers", "hidden_size", "input_size", "dropout", "dropout", "carry_state", "bias",
                            "num_layers"};
    for (int i = 0; i < 8; i++) assert_status(try_create(bad[i], 2, 5, 3), GOPT_EINVAL, field[i]);
    assert_status(try_create(gopt_layer_rnn(3, 4, 1, 2, 1, 0.0f, 0), 2, 5, 3), GOPT_EINVAL, "nonlinearity");
    assert_status(try_create(gopt_layer_lstm(3, 64, 1, 1, 0.0f, 0), 2, 1 << 24, 3), GOPT_EOVERFLOW, "2^31");

    /* state calls: wrong shapes, wrong types, a non-recurrent layer */
    gopt_params *params;
    gopt_layer *lstm, *gru, *lin;
    int64_t in[2] = {5, 3}, lin_in[1] = {3};
    assert_ok(gopt_params_create(&params));
    assert_ok(gopt_layer_create(&ok, 2, in, 2, params, "lstm", &lstm));
    gopt_layer_config gc = gopt_layer_gru(3, 4, 1, 1, 0.0f, 0);
    assert_ok(gopt_layer_create(&gc, 2, in, 2, params, "gru", &gru));
    gopt_layer_config lc = gopt_layer_linear(3, 2, 1);
    assert_ok(gopt_layer_create(&lc, 1, lin_in, 2, params, "lin", &lin));
    assert_ok(gopt_params_finalize(params));
    float buf[64] = {0};
    gopt_tensor good, wrong_l, wrong_h, too_big, two_d, gru_state;
    int64_t sg[3] = {2, 2, 4}, sl[3] = {1, 2, 4}, sh[3] = {2, 2, 5}, sb[3] = {2, 3, 4}, s2[2] = {2, 4},
            sgru[3] = {1, 2, 4};
    assert_ok(gopt_tensor_view(buf, 3, sg, &good));
    assert_ok(gopt_tensor_view(buf, 3, sl, &wrong_l));
    assert_ok(gopt_tensor_view(buf, 3, sh, &wrong_h));
    assert_ok(gopt_tensor_view(buf, 3, sb, &too_big));
    assert_ok(gopt_tensor_view(buf, 2, s2, &two_d));
    assert_ok(gopt_tensor_view(buf, 3, sgru, &gru_state));
    assert_ok(gopt_layer_rnn_set_state(lstm, &good, &good));
    assert_status(gopt_layer_rnn_set_state(lstm, &wrong_l, NULL), GOPT_ESHAPE, "h0");
    assert_status(gopt_layer_rnn_set_state(lstm, &wrong_h, NULL), GOPT_ESHAPE, "h0");
    assert_status(gopt_layer_rnn_set_state(lstm, &too_big, NULL), GOPT_ESHAPE, "h0");
    assert_status(gopt_layer_rnn_set_state(lstm, &two_d, NULL), GOPT_ESHAPE, "h0");
    assert_status(gopt_layer_rnn_set_state(lstm, &good, &wrong_h), GOPT_ESHAPE, "c0");
    assert_status(gopt_layer_rnn_set_state(gru, &gru_state, &gru_state), GOPT_EINVAL, "cell state");
    assert_ok(gopt_layer_rnn_set_state(gru, &gru_state, NULL));
    assert_status(gopt_layer_rnn_set_state(gru, &good, NULL), GOPT_ESHAPE, "h0");
    assert_status(gopt_layer_rnn_set_state(lin, &good, NULL), GOPT_EINVAL, "not rnn");
    assert_status(gopt_layer_rnn_reset_state(lin), GOPT_EINVAL, "not rnn");
    assert_status(gopt_layer_rnn_get_state(lin, &good, NULL), GOPT_EINVAL, "not rnn");
    assert_status(gopt_layer_rnn_set_state_grad(lin, NULL, NULL), GOPT_EINVAL, "not rnn");
    assert_status(gopt_layer_rnn_get_state_grad(lin, NULL, NULL), GOPT_EINVAL, "not rnn");
    assert_status(gopt_layer_rnn_reset_state(NULL), GOPT_EINVAL, NULL);
    /* state gradients: shapes of the last forward's batch */
    float xb[2 * 5 * 3] = {0};
    int64_t xs[3] = {2, 5, 3};
    gopt_tensor tx, ty, hn, cn;
    assert_ok(gopt_tensor_view(xb, 3, xs, &tx));
    assert_ok(gopt_layer_forward(lstm, &tx, &ty));
    assert_ok(gopt_layer_rnn_set_state_grad(lstm, &good, &good));
    assert_status(gopt_layer_rnn_set_state_grad(lstm, &wrong_l, NULL), GOPT_ESHAPE, "dh_n");
    assert_status(gopt_layer_rnn_set_state_grad(lstm, &good, &too_big), GOPT_ESHAPE, "dc_n");
    assert_ok(gopt_layer_forward(gru, &tx, &ty));
    assert_status(gopt_layer_rnn_get_state(gru, &hn, &cn), GOPT_EINVAL, "cell state");
    assert_status(gopt_layer_rnn_set_state_grad(gru, &gru_state, &gru_state), GOPT_EINVAL, "cell state");
    /* wrong input shapes at forward / backward */
    int64_t xw[3] = {2, 4, 3};
    gopt_tensor bad_x;
    assert_ok(gopt_tensor_view(xb, 3, xw, &bad_x));
    assert_status(gopt_layer_forward(lstm, &bad_x, &ty), GOPT_ESHAPE, NULL);
    assert_ok(gopt_layer_forward(lstm, &tx, &ty));
    float dyb[2 * 5 * 4] = {0};
    int64_t dw[3] = {2, 5, 3};
    gopt_tensor bad_dy;
    assert_ok(gopt_tensor_view(dyb, 3, dw, &bad_dy));
    assert_status(gopt_layer_backward(lstm, &tx, &bad_dy, NULL), GOPT_ESHAPE, "dy");
    gopt_layer_destroy(lstm);
    gopt_layer_destroy(gru);
    drop(lin, params);
}

/* Every allocation of a recurrent layer's creation can fail cleanly. */
static void test_create_out_of_memory(void **state) {
    (void)state;
    gopt_layer_config cfg = gopt_layer_lstm(3, 4, 2, 1, 0.3f, 0);
    int64_t in[2] = {5, 3};
    int failed_somewhere = 0;
    for (long budget = 0; budget < 200; budget++) {
        gopt_params *params;
        assert_ok(gopt_params_create(&params));
        gopt_layer *layer = NULL;
        testutil_fail_after(budget);
        gopt_status s = gopt_layer_create(&cfg, 2, in, 2, params, "lstm", &layer);
        testutil_alloc_reset();
        drop(layer, params);
        if (s == GOPT_OK) break;
        assert_int_equal(s, GOPT_ENOMEM);
        failed_somewhere = 1;
    }
    assert_true(failed_somewhere);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_names_init),
        cmocka_unit_test(test_states_and_small_batch),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_create_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
