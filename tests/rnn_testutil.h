/* Helpers shared by the recurrent-layer tests (test_recurrent.c, test_recurrent_api.c). */
#ifndef GOPT_RNN_TESTUTIL_H
#define GOPT_RNN_TESTUTIL_H

#include <stdarg.h>

#include "testutil.h"

/* free(3) of n pointers. */
static inline void free_n(int n, ...) {
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) free(va_arg(ap, void *));
    va_end(ap);
}

static inline void drop(gopt_layer *layer, gopt_params *params) {
    gopt_layer_destroy(layer);
    gopt_params_destroy(params);
}

static inline float *randn(gopt_rng *rng, int64_t n, float scale) {
    float *p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = scale * gopt_rng_normal(rng);
    return p;
}

/* kind 0 lstm, 1 gru, 2 rnn (relu: nonlinearity), with biases and no dropout. */
static inline gopt_layer_config kind_cfg(int kind, int I, int H, int L, int relu) {
    return kind == 0   ? gopt_layer_lstm(I, H, L, 1, 0.0f, 0)
           : kind == 1 ? gopt_layer_gru(I, H, L, 1, 0.0f, 0)
                       : gopt_layer_rnn(I, H, L, relu ? GOPT_RNN_RELU : GOPT_RNN_TANH, 1, 0.0f, 0);
}

/* A layer over (T, cfg.in_features) in its own finalized arena. */
static inline gopt_layer *new_layer(const gopt_layer_config *cfg, int T, int max_batch, gopt_params **params) {
    gopt_layer *layer;
    int64_t in[2] = {T, cfg->in_features};
    assert_ok(gopt_params_create(params));
    assert_ok(gopt_layer_create(cfg, 2, in, max_batch, *params, "rnn", &layer));
    if (gopt_params_count(*params)) assert_ok(gopt_params_finalize(*params));
    return layer;
}

static inline void set_theta(gopt_params *params, const float *theta) {
    int64_t off = 0;
    for (int i = 0; i < gopt_params_count(params); i++) {
        gopt_param_info info;
        assert_ok(gopt_params_info(params, i, &info));
        memcpy(info.value.data, theta + off, sizeof(float) * (size_t)info.value.numel);
        off += info.value.numel;
    }
}

#endif
