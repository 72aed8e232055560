/* Recurrent layers (rnn, lstm, gru) and the sigmoid / tanh layers: finite-difference
 * gradient checks (inputs, initial states, every parameter), a 2-layer LSTM over 60 steps,
 * truncated BPTT across two batches, dropout between layers (train vs eval, determinism),
 * no-bias, the fused loop against the per-step SGEMM path, a net of them (names, states
 * and errors: test_recurrent_api.c). PyTorch reference values are in the golden
 * cases (tests/golden/cases/{rnn,lstm,gru,sigmoid,tanh}*.golden).
 *
 * Finite differences: the layers compute in float32, so a central difference with step h
 * has a rounding error of about ulp(loss) / h and a truncation error of about h^2 |f'''| / 6.
 * h = 1e-2 balances the two for these losses (|loss| ~ 1..10, ulp ~ 1e-6: ~1e-4 each);
 * tolerances are 2e-3 absolute + 1e-2 relative, far below the size of a wrong term. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "rnn_testutil.h"

#include <math.h>
#include <stdio.h>

#define FD_H 1e-2f
#define FD_ATOL 2e-3
#define FD_RTOL 1e-2

/* ---- a recurrent case evaluated on a fresh layer each time (so a dropout mask, drawn from
 * the layer's seeded stream on its first forward, is the same at every evaluation) ---- */
typedef struct rec_case {
    gopt_layer_config cfg;
    int N, T, I, H, L;
    int training;
    int lstm;
    float *x;        /* (N,T,I) */
    float *h0, *c0;  /* (L,N,H), NULL: zero state */
    float *theta;    /* all parameters in arena order */
    int64_t ntheta;
    float *r_out, *r_h, *r_c; /* loss weights: loss = sum(out r_out) + sum(h_n r_h) + sum(c_n r_c) */
} rec_case;

typedef struct rec_grads {
    float *dx, *dh0, *dc0, *dtheta;
} rec_grads;

static rec_grads grads_alloc(const struct rec_case *rc);
static void grads_free(rec_grads *g) {
    free_n(4, g->dx, g->dh0, g->dc0, g->dtheta);
}

static void make_layer(const rec_case *rc, int max_batch, int T, gopt_params **params, gopt_layer **layer) {
    *layer = new_layer(&rc->cfg, T, max_batch, params);
}

static double rec_loss(const rec_case *rc, rec_grads *g) {
    gopt_params *params;
    gopt_layer *layer;
    make_layer(rc, rc->N, rc->T, &params, &layer);
    set_theta(params, rc->theta);
    gopt_layer_set_training(layer, rc->training);
    int64_t xs[3] = {rc->N, rc->T, rc->I}, ss[3] = {rc->L, rc->N, rc->H};
    gopt_tensor x, y, th, tc, hn, cn;
    assert_ok(gopt_tensor_view(rc->x, 3, xs, &x));
    if (rc->h0) {
        assert_ok(gopt_tensor_view(rc->h0, 3, ss, &th));
        if (rc->lstm) assert_ok(gopt_tensor_view(rc->c0, 3, ss, &tc));
        assert_ok(gopt_layer_rnn_set_state(layer, &th, rc->lstm ? &tc : NULL));
    }
    assert_ok(gopt_layer_forward(layer, &x, &y));
    assert_ok(gopt_layer_rnn_get_state(layer, &hn, rc->lstm ? &cn : NULL));
    double loss = 0.0;
    for (int64_t i = 0; i < y.numel; i++) loss += (double)y.data[i] * rc->r_out[i];
    for (int64_t i = 0; i < hn.numel; i++) loss += (double)hn.data[i] * rc->r_h[i];
    if (rc->lstm)
        for (int64_t i = 0; i < cn.numel; i++) loss += (double)cn.data[i] * rc->r_c[i];
    if (g) {
        gopt_tensor dy, dx, dh0, dc0;
        int64_t ys[3] = {rc->N, rc->T, rc->H};
        float *dybuf = malloc(sizeof(float) * (size_t)y.numel);
        assert_non_null(dybuf);
        memcpy(dybuf, rc->r_out, sizeof(float) * (size_t)y.numel);
        assert_ok(gopt_tensor_view(dybuf, 3, ys, &dy));
        assert_ok(gopt_tensor_view(g->dx, 3, xs, &dx));
        assert_ok(gopt_tensor_view(rc->r_h, 3, ss, &th));
        if (rc->lstm) assert_ok(gopt_tensor_view(rc->r_c, 3, ss, &tc));
        assert_ok(gopt_layer_rnn_set_state_grad(layer, &th, rc->lstm ? &tc : NULL));
        gopt_params_zero_grad(params);
        assert_ok(gopt_layer_backward(layer, &x, &dy, &dx));
        assert_ok(gopt_layer_rnn_get_state_grad(layer, &dh0, rc->lstm ? &dc0 : NULL));
        memcpy(g->dh0, dh0.data, sizeof(float) * (size_t)dh0.numel);
        if (rc->lstm) memcpy(g->dc0, dc0.data, sizeof(float) * (size_t)dc0.numel);
        int64_t off = 0;
        for (int i = 0; i < gopt_params_count(params); i++) {
            gopt_param_info info;
            assert_ok(gopt_params_info(params, i, &info));
            memcpy(g->dtheta + off, info.grad.data, sizeof(float) * (size_t)info.grad.numel);
            off += info.grad.numel;
        }
        free(dybuf);
    }
    drop(layer, params);
    return loss;
}

static rec_grads grads_alloc(const rec_case *rc) {
    int64_t xn = (int64_t)rc->N * rc->T * rc->I, sn = (int64_t)rc->L * rc->N * rc->H;
    rec_grads g = {malloc(sizeof(float) * (size_t)xn), malloc(sizeof(float) * (size_t)sn),
                   malloc(sizeof(float) * (size_t)sn), malloc(sizeof(float) * (size_t)rc->ntheta)};
    assert_true(g.dx && g.dh0 && g.dc0 && g.dtheta);
    return g;
}

static double central(rec_case *rc, float *v, int64_t i, float h) {
    float keep = v[i];
    v[i] = keep + h;
    double lp = rec_loss(rc, NULL);
    v[i] = keep - h;
    double lm = rec_loss(rc, NULL);
    v[i] = keep;
    return (lp - lm) / (2.0 * (double)h);
}

/* About `count` evenly spread coordinates of v; a relu kink crossed inside [-h, h] spoils a
 * difference, so a mismatch is retried with smaller steps (a real bug persists). */
static void fd_compare(rec_case *rc, float *v, const float *ana, int64_t n, int count, const char *what) {
    int64_t step = n > count ? n / count : 1;
    for (int64_t i = 0; i < n; i += step) {
        double num = central(rc, v, i, FD_H);
        if (fabs(num - ana[i]) <= FD_ATOL + FD_RTOL * fabs(num)) continue;
        int ok = 0;
        for (float hh = FD_H / 4; !ok && hh > FD_H / 100; hh /= 4) {
            num = central(rc, v, i, hh);
            ok = fabs(num - ana[i]) <= 2 * FD_ATOL + FD_RTOL * fabs(num);
        }
        if (!ok) fail_msg("%s[%lld]: finite difference %.6g, analytic %.6g", what, (long long)i, num, (double)ana[i]);
    }
}

static void rec_case_init(rec_case *rc, gopt_layer_config cfg, int N, int T, int with_state, uint64_t seed) {
    memset(rc, 0, sizeof *rc);
    rc->cfg = cfg;
    rc->N = N;
    rc->T = T;
    rc->I = cfg.in_features;
    rc->H = cfg.out_features;
    rc->L = cfg.num_layers;
    rc->training = 1;
    rc->lstm = cfg.type == GOPT_LAYER_LSTM;
    gopt_rng rng;
    gopt_rng_seed(&rng, seed);
    gopt_params *params;
    gopt_layer *layer;
    make_layer(rc, N, T, &params, &layer);
    assert_ok(gopt_layer_init_params(layer, GOPT_INIT_TORCH_DEFAULT, &rng));
    rc->ntheta = gopt_params_numel(params);
    rc->theta = malloc(sizeof(float) * (size_t)rc->ntheta);
    assert_non_null(rc->theta);
    int64_t off = 0;
    for (int i = 0; i < gopt_params_count(params); i++) {
        gopt_param_info info;
        assert_ok(gopt_params_info(params, i, &info));
        memcpy(rc->theta + off, info.value.data, sizeof(float) * (size_t)info.value.numel);
        off += info.value.numel;
    }
    drop(layer, params);
    int64_t xn = (int64_t)N * T * rc->I, sn = (int64_t)rc->L * N * rc->H, yn = (int64_t)N * T * rc->H;
    rc->x = randn(&rng, xn, 1.0f);
    if (with_state) {
        rc->h0 = randn(&rng, sn, 0.5f);
        rc->c0 = randn(&rng, sn, 0.5f);
    }
    rc->r_out = randn(&rng, yn, 1.0f);
    rc->r_h = randn(&rng, sn, 1.0f);
    rc->r_c = randn(&rng, sn, 1.0f);
}

static void rec_case_free(rec_case *rc) {
    free_n(7, rc->x, rc->h0, rc->c0, rc->theta, rc->r_out, rc->r_h, rc->r_c);
}

/* Gradient check of every input: x, h0, c0 and each parameter tensor. */
static void fd_check_case(rec_case *rc, int count) {
    int64_t xn = (int64_t)rc->N * rc->T * rc->I, sn = (int64_t)rc->L * rc->N * rc->H;
    rec_grads g = grads_alloc(rc);
    rec_loss(rc, &g);
    fd_compare(rc, rc->x, g.dx, xn, count, "dx");
    if (rc->h0) {
        fd_compare(rc, rc->h0, g.dh0, sn, count, "dh0");
        if (rc->lstm) fd_compare(rc, rc->c0, g.dc0, sn, count, "dc0");
    }
    /* each parameter tensor separately, so each gets its share of coordinates */
    gopt_params *params;
    gopt_layer *layer;
    make_layer(rc, rc->N, rc->T, &params, &layer);
    int64_t off = 0;
    for (int i = 0; i < gopt_params_count(params); i++) {
        gopt_param_info info;
        assert_ok(gopt_params_info(params, i, &info));
        fd_compare(rc, rc->theta + off, g.dtheta + off, info.value.numel, count, info.name);
        off += info.value.numel;
    }
    drop(layer, params);
    grads_free(&g);
}

static void fd_one(gopt_layer_config cfg, int N, int T, int with_state, int training) {
    rec_case rc;
    rec_case_init(&rc, cfg, N, T, with_state, 42);
    rc.training = training;
    fd_check_case(&rc, 12);
    rec_case_free(&rc);
}

static void test_fd_rnn(void **state) {
    (void)state;
    fd_one(gopt_layer_rnn(3, 4, 1, GOPT_RNN_TANH, 1, 0.0f, 0), 2, 5, 1, 1);
    fd_one(gopt_layer_rnn(3, 4, 2, GOPT_RNN_TANH, 0, 0.0f, 0), 2, 4, 1, 1);
    fd_one(gopt_layer_rnn(3, 4, 2, GOPT_RNN_RELU, 1, 0.0f, 0), 3, 4, 1, 1);
}

static void test_fd_lstm(void **state) {
    (void)state;
    fd_one(gopt_layer_lstm(3, 4, 1, 1, 0.0f, 0), 2, 5, 1, 1);
    fd_one(gopt_layer_lstm(3, 4, 2, 0, 0.0f, 0), 2, 4, 1, 1);
    fd_one(gopt_layer_lstm(2, 3, 3, 1, 0.0f, 0), 1, 3, 0, 1);
}

static void test_fd_gru(void **state) {
    (void)state;
    fd_one(gopt_layer_gru(3, 4, 1, 1, 0.0f, 0), 2, 5, 1, 1);
    fd_one(gopt_layer_gru(3, 4, 2, 0, 0.0f, 0), 2, 4, 1, 1);
}

/* Dropout between layers in training mode: each evaluation is a fresh layer with the same
 * seed, so the mask is fixed and the gradient through it is checkable. */
static void test_fd_dropout(void **state) {
    (void)state;
    fd_one(gopt_layer_lstm(3, 4, 2, 1, 0.4f, 7), 2, 4, 1, 1);
    fd_one(gopt_layer_gru(3, 4, 3, 1, 0.3f, 9), 2, 3, 1, 1);
    fd_one(gopt_layer_rnn(3, 4, 2, GOPT_RNN_TANH, 1, 0.5f, 3), 2, 3, 1, 0); /* eval: identity */
}

/* A 2-layer LSTM over 60 steps: the gradient reaches the first steps through 60 products. */
static void test_fd_lstm_long(void **state) {
    (void)state;
    rec_case rc;
    rec_case_init(&rc, gopt_layer_lstm(3, 5, 2, 1, 0.0f, 0), 2, 60, 1, 5);
    /* forget gates biased open (b_if = 3, f ~ 0.95), as is usual for long sequences, so the
     * cell path carries x_0's influence over 60 steps (0.95^60 ~ 0.05) instead of vanishing */
    {
        const int64_t H = rc.H, G4 = 4 * H;
        int64_t off = 0;
        for (int l = 0; l < rc.L; l++) {
            int64_t in = l ? H : rc.I;
            off += G4 * in + G4 * H; /* weight_ih, weight_hh */
            for (int64_t j = H; j < 2 * H; j++) rc.theta[off + j] = 3.0f; /* bias_ih, forget block */
            off += 2 * G4;
        }
        assert_int_equal(off, rc.ntheta);
    }
    /* the loss only on the last output: the gradient of x_0 is the one that went the whole way */
    for (int n = 0; n < rc.N; n++)
        for (int t = 0; t < rc.T - 1; t++)
            for (int j = 0; j < rc.H; j++) rc.r_out[((int64_t)n * rc.T + t) * rc.H + j] = 0.0f;
    int64_t sn = (int64_t)rc.L * rc.N * rc.H;
    rec_grads g = grads_alloc(&rc);
    rec_loss(&rc, &g);
    /* the first steps of x (sample 0) and of the state, and spread parameters */
    fd_compare(&rc, rc.x, g.dx, 3 * rc.I, 9, "dx (first steps)");
    fd_compare(&rc, rc.h0, g.dh0, sn, 6, "dh0");
    fd_compare(&rc, rc.c0, g.dc0, sn, 6, "dc0");
    fd_compare(&rc, rc.theta, g.dtheta, rc.ntheta, 30, "dtheta");
    double first = 0.0;
    for (int i = 0; i < rc.I; i++) first += fabs(g.dx[i]);
    if (getenv("FD_VERBOSE")) printf("sum |dx_0| = %g\n", first);
    assert_true(first > 1e-4); /* a measurable gradient flowed back 60 steps (and was checked) */
    grads_free(&g);
    rec_case_free(&rc);
}

static void test_fd_sigmoid_tanh(void **state) {
    (void)state;
    for (int k = 0; k < 2; k++) {
        gopt_layer_config cfg = gopt_layer_config_default(k ? GOPT_LAYER_TANH : GOPT_LAYER_SIGMOID);
        int64_t shape[3] = {3, 4, 5};
        gopt_params *params;
        gopt_layer *layer;
        assert_ok(gopt_params_create(&params));
        assert_ok(gopt_layer_create(&cfg, 3, shape, 2, params, "act", &layer));
        gopt_rng rng;
        gopt_rng_seed(&rng, 11);
        int64_t n = 2 * 60, xs[4] = {2, 3, 4, 5};
        float *x = randn(&rng, n, 2.0f), *r = randn(&rng, n, 1.0f), *dy = malloc(sizeof(float) * n),
              *dx = malloc(sizeof(float) * n);
        gopt_tensor tx, ty, tdy, tdx;
        assert_ok(gopt_tensor_view(x, 4, xs, &tx));
        assert_ok(gopt_layer_forward(layer, &tx, &ty));
        for (int64_t i = 0; i < n; i++) {
            double v = x[i], want = k ? tanh(v) : 1.0 / (1.0 + exp(-v));
            assert_true(fabs(ty.data[i] - want) <= 4e-7 * fabs(want) + 1e-30);
        }
        memcpy(dy, r, sizeof(float) * n);
        assert_ok(gopt_tensor_view(dy, 4, xs, &tdy));
        assert_ok(gopt_tensor_view(dx, 4, xs, &tdx));
        assert_ok(gopt_layer_backward(layer, &tx, &tdy, &tdx));
        for (int64_t i = 0; i < n; i++) {
            double v = x[i], d;
            double fp, fm;
            fp = k ? tanh(v + 1e-3) : 1.0 / (1.0 + exp(-(v + 1e-3)));
            fm = k ? tanh(v - 1e-3) : 1.0 / (1.0 + exp(-(v - 1e-3)));
            d = (fp - fm) / 2e-3 * r[i];
            assert_true(fabs(dx[i] - d) <= 1e-5 + 1e-4 * fabs(d));
        }
        /* extremes and NaN */
        float ex[5] = {-100.0f, 100.0f, NAN, 0.0f, -1e-20f};
        memcpy(x, ex, sizeof ex);
        assert_ok(gopt_layer_forward(layer, &tx, &ty));
        assert_true(k ? ty.data[0] == -1.0f : ty.data[0] >= 0.0f && ty.data[0] < 1e-37f);
        assert_true(ty.data[1] == 1.0f);
        assert_true(isnan(ty.data[2]));
        assert_true(k ? ty.data[3] == 0.0f : ty.data[3] == 0.5f);
        if (k) assert_true(ty.data[4] == -1e-20f);
        free_n(4, x, r, dy, dx);
        drop(layer, params);
    }
}

/* ---- truncated BPTT ------------------------------------------------------------------------- */

static void copy_params(gopt_params *dst, gopt_params *src) {
    for (int i = 0; i < gopt_params_count(src); i++) {
        gopt_param_info a, b;
        assert_ok(gopt_params_info(src, i, &a));
        assert_ok(gopt_params_info(dst, i, &b));
        assert_int_equal(a.value.numel, b.value.numel);
        memcpy(b.value.data, a.value.data, sizeof(float) * (size_t)a.value.numel);
    }
}

static void test_truncated_bptt(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        const int N = 3, T = 5, I = 3, H = 4, L = 2;
        gopt_layer_config cfg = kind_cfg(kind, I, H, L, 0);
        gopt_layer_config carry = cfg;
        carry.carry_state = 1;
        const int lstm = kind == 0;
        gopt_params *pa, *pb, *pc;
        gopt_layer *a = new_layer(&carry, T, N, &pa), *b = new_layer(&cfg, 2 * T, N, &pb),
                   *c = new_layer(&cfg, T, N, &pc);
        gopt_rng rng;
        gopt_rng_seed(&rng, 100 + kind);
        assert_ok(gopt_layer_init_params(a, GOPT_INIT_TORCH_DEFAULT, &rng));
        copy_params(pb, pa);
        copy_params(pc, pa);
        float *xcat = randn(&rng, (int64_t)N * 2 * T * I, 1.0f);
        float *x1 = malloc(sizeof(float) * N * T * I), *x2 = malloc(sizeof(float) * N * T * I);
        for (int n = 0; n < N; n++) {
            memcpy(x1 + n * T * I, xcat + n * 2 * T * I, sizeof(float) * T * I);
            memcpy(x2 + n * T * I, xcat + (n * 2 * T + T) * I, sizeof(float) * T * I);
        }
        int64_t s5[3] = {N, T, I}, s10[3] = {N, 2 * T, I}, ys[3] = {N, T, H};
        gopt_tensor t1, t2, tcat, y, ycat, hn, cn, hn_b, cn_b;
        assert_ok(gopt_tensor_view(x1, 3, s5, &t1));
        assert_ok(gopt_tensor_view(x2, 3, s5, &t2));
        assert_ok(gopt_tensor_view(xcat, 3, s10, &tcat));
        /* batch 1, then batch 2 from its final state == the concatenated sequence */
        assert_ok(gopt_layer_forward(a, &t1, &y));
        float *h1 = malloc(sizeof(float) * L * N * H), *c1 = malloc(sizeof(float) * L * N * H);
        assert_ok(gopt_layer_rnn_get_state(a, &hn, lstm ? &cn : NULL));
        memcpy(h1, hn.data, sizeof(float) * L * N * H);
        if (lstm) memcpy(c1, cn.data, sizeof(float) * L * N * H);
        assert_ok(gopt_layer_forward(a, &t2, &y));
        assert_ok(gopt_layer_forward(b, &tcat, &ycat));
        for (int n = 0; n < N; n++)
            for (int k = 0; k < T * H; k++)
                assert_float_equal(y.data[n * T * H + k], ycat.data[(n * 2 * T + T) * H + k], 1e-6);
        assert_ok(gopt_layer_rnn_get_state(a, &hn, lstm ? &cn : NULL));
        assert_ok(gopt_layer_rnn_get_state(b, &hn_b, lstm ? &cn_b : NULL));
        for (int i = 0; i < L * N * H; i++) {
            assert_float_equal(hn.data[i], hn_b.data[i], 1e-6);
            if (lstm) assert_float_equal(cn.data[i], cn_b.data[i], 1e-6);
        }
        /* backward of batch 2: exactly the gradient of a run of batch 2 from the carried
         * state given as a value (nothing flows into batch 1's graph) */
        float *dyb = randn(&rng, (int64_t)N * T * H, 1.0f), *dyc = malloc(sizeof(float) * N * T * H);
        memcpy(dyc, dyb, sizeof(float) * N * T * H);
        gopt_tensor tdy, tdyc, th, tc, da, dc;
        assert_ok(gopt_tensor_view(dyb, 3, ys, &tdy));
        assert_ok(gopt_tensor_view(dyc, 3, ys, &tdyc));
        gopt_params_zero_grad(pa);
        assert_ok(gopt_layer_backward(a, &t2, &tdy, NULL));
        int64_t ss[3] = {L, N, H};
        assert_ok(gopt_tensor_view(h1, 3, ss, &th));
        assert_ok(gopt_tensor_view(c1, 3, ss, &tc));
        assert_ok(gopt_layer_rnn_set_state(c, &th, lstm ? &tc : NULL));
        assert_ok(gopt_layer_forward(c, &t2, &y));
        gopt_params_zero_grad(pc);
        assert_ok(gopt_layer_backward(c, &t2, &tdyc, NULL));
        for (int i = 0; i < gopt_params_count(pa); i++) {
            gopt_param_info ia, ic;
            assert_ok(gopt_params_info(pa, i, &ia));
            assert_ok(gopt_params_info(pc, i, &ic));
            assert_memory_equal(ia.grad.data, ic.grad.data, sizeof(float) * (size_t)ia.grad.numel);
        }
        /* the gradient w.r.t. the carried value is reported, and is that of the explicit run */
        assert_ok(gopt_layer_rnn_get_state_grad(a, &da, NULL));
        assert_ok(gopt_layer_rnn_get_state_grad(c, &dc, NULL));
        assert_memory_equal(da.data, dc.data, sizeof(float) * L * N * H);
        /* a batch of another size starts from zeros; reset_state does too */
        int64_t s1[3] = {1, T, I};
        gopt_tensor one;
        assert_ok(gopt_tensor_view(x2, 3, s1, &one));
        assert_ok(gopt_layer_forward(a, &one, &y));
        float *ya = malloc(sizeof(float) * T * H);
        memcpy(ya, y.data, sizeof(float) * T * H);
        assert_ok(gopt_layer_rnn_reset_state(c));
        assert_ok(gopt_layer_forward(c, &one, &y));
        assert_memory_equal(ya, y.data, sizeof(float) * T * H);
        assert_ok(gopt_layer_forward(a, &one, &y)); /* now carried from the N=1 batch: differs */
        int differs = 0;
        for (int k = 0; k < T * H; k++) differs |= ya[k] != y.data[k];
        assert_true(differs);
        assert_ok(gopt_layer_rnn_reset_state(a));
        assert_ok(gopt_layer_forward(a, &one, &y));
        assert_memory_equal(ya, y.data, sizeof(float) * T * H);
        free_n(8, ya, h1, c1, dyb, dyc, x1, x2, xcat);
        drop(a, pa);
        drop(b, pb);
        drop(c, pc);
    }
}

/* ---- dropout between layers --------------------------------------------------------------- */

static void run_once(const gopt_layer_config *cfg, const float *theta, const float *x, int N, int T, int training,
                     float *out, float *dx, float *dtheta) {
    gopt_params *params;
    gopt_layer *layer = new_layer(cfg, T, N, &params);
    int64_t xs[3] = {N, T, cfg->in_features}, ys[3] = {N, T, cfg->out_features};
    set_theta(params, theta);
    gopt_layer_set_training(layer, training);
    gopt_tensor tx, ty, tdy, tdx;
    assert_ok(gopt_tensor_view((float *)x, 3, xs, &tx));
    assert_ok(gopt_layer_forward(layer, &tx, &ty));
    memcpy(out, ty.data, sizeof(float) * (size_t)ty.numel);
    if (dx) {
        float *dy = malloc(sizeof(float) * (size_t)ty.numel);
        for (int64_t i = 0; i < ty.numel; i++) dy[i] = 1.0f;
        assert_ok(gopt_tensor_view(dy, 3, ys, &tdy));
        assert_ok(gopt_tensor_view(dx, 3, xs, &tdx));
        gopt_params_zero_grad(params);
        assert_ok(gopt_layer_backward(layer, &tx, &tdy, &tdx));
        memcpy(dtheta, gopt_params_grads(params), sizeof(float) * (size_t)gopt_params_numel(params));
        free(dy);
    }
    drop(layer, params);
}

static void test_dropout_train_eval(void **state) {
    (void)state;
    const int N = 3, T = 6, I = 4, H = 5;
    rec_case rc;
    rec_case_init(&rc, gopt_layer_lstm(I, H, 3, 1, 0.5f, 77), N, T, 0, 3);
    int64_t yn = (int64_t)N * T * H, xn = (int64_t)N * T * I;
    float *ya = malloc(sizeof(float) * yn), *yb = malloc(sizeof(float) * yn), *yc = malloc(sizeof(float) * yn);
    float *dx = malloc(sizeof(float) * xn), *dth = malloc(sizeof(float) * rc.ntheta);
    gopt_layer_config nodrop = rc.cfg;
    nodrop.p = 0.0f;
    /* eval: dropout is the identity, so p = 0.5 gives the p = 0 output bit for bit */
    run_once(&rc.cfg, rc.theta, rc.x, N, T, 0, ya, NULL, NULL);
    run_once(&nodrop, rc.theta, rc.x, N, T, 1, yb, NULL, NULL);
    assert_memory_equal(ya, yb, sizeof(float) * yn);
    /* training: masks change the output; the same seed gives the same bits */
    run_once(&rc.cfg, rc.theta, rc.x, N, T, 1, yb, NULL, NULL);
    run_once(&rc.cfg, rc.theta, rc.x, N, T, 1, yc, NULL, NULL);
    assert_memory_equal(yb, yc, sizeof(float) * yn);
    int differs = 0;
    for (int64_t i = 0; i < yn; i++) differs |= ya[i] != yb[i];
    assert_true(differs);
    gopt_layer_config other = rc.cfg;
    other.seed = 78;
    run_once(&other, rc.theta, rc.x, N, T, 1, yc, NULL, NULL);
    differs = 0;
    for (int64_t i = 0; i < yn; i++) differs |= yc[i] != yb[i];
    assert_true(differs);
    /* p = 1: layers above the first see zeros, so nothing reaches x or the first layer */
    gopt_layer_config all = rc.cfg;
    all.p = 1.0f;
    run_once(&all, rc.theta, rc.x, N, T, 1, ya, dx, dth);
    for (int64_t i = 0; i < xn; i++) assert_true(dx[i] == 0.0f);
    int64_t l0 = (int64_t)4 * H * I + 4 * H * H + 8 * H; /* layer 0's parameters come first */
    for (int64_t i = 0; i < l0; i++) assert_true(dth[i] == 0.0f);
    /* a second forward of one layer draws a new mask */
    {
        gopt_params *params;
        gopt_layer *layer = new_layer(&rc.cfg, T, N, &params);
        int64_t xs[3] = {N, T, I};
        set_theta(params, rc.theta);
        gopt_tensor tx, ty;
        assert_ok(gopt_tensor_view(rc.x, 3, xs, &tx));
        assert_ok(gopt_layer_forward(layer, &tx, &ty));
        memcpy(ya, ty.data, sizeof(float) * yn);
        assert_ok(gopt_layer_forward(layer, &tx, &ty));
        differs = 0;
        for (int64_t i = 0; i < yn; i++) differs |= ya[i] != ty.data[i];
        assert_true(differs);
        drop(layer, params);
    }
    free_n(5, ya, yb, yc, dx, dth);
    rec_case_free(&rc);
}

/* The fused recurrent loop (AVX2+FMA CPUs) against the per-step SGEMM path
 * (GOPT_RNN_GENERIC=1, read at create): hidden sizes that split over two threads and end in
 * a partial 16-wide panel, batches that end in partial row blocks; and the same threads give
 * the same bits (across thread counts OpenBLAS's own products may differ in the last bits). */
static void test_fused_matches_generic(void **state) {
    (void)state;
    const int N = 7, T = 6, I = 5, H = 70;
    const char *env = getenv("GOPT_RNN_GENERIC");
    char *saved = env ? strdup(env) : NULL;
    unsetenv("GOPT_RNN_GENERIC");
    for (int kind = 0; kind < 3; kind++) {
        gopt_layer_config cfg = kind_cfg(kind, I, H, 2, 1);
        rec_case rc;
        rec_case_init(&rc, cfg, N, T, 1, 31 + kind);
        int64_t yn = (int64_t)N * T * H, xn = (int64_t)N * T * I;
        float *y[3], *dx[3], *dth[3];
        for (int v = 0; v < 3; v++) { /* 0, 1: fused, 2 threads; 2: generic */
            y[v] = malloc(sizeof(float) * yn);
            dx[v] = malloc(sizeof(float) * xn);
            dth[v] = malloc(sizeof(float) * rc.ntheta);
            gopt_set_threads(2);
            if (v == 2) setenv("GOPT_RNN_GENERIC", "1", 1);
            run_once(&rc.cfg, rc.theta, rc.x, N, T, 1, y[v], dx[v], dth[v]);
            unsetenv("GOPT_RNN_GENERIC");
        }
        assert_memory_equal(y[0], y[1], sizeof(float) * yn);
        assert_memory_equal(dx[0], dx[1], sizeof(float) * xn);
        assert_memory_equal(dth[0], dth[1], sizeof(float) * rc.ntheta);
        for (int64_t i = 0; i < yn; i++) assert_true(fabsf(y[0][i] - y[2][i]) <= 1e-5f + 1e-4f * fabsf(y[2][i]));
        for (int64_t i = 0; i < xn; i++) assert_true(fabsf(dx[0][i] - dx[2][i]) <= 1e-5f + 1e-4f * fabsf(dx[2][i]));
        for (int64_t i = 0; i < rc.ntheta; i++)
            assert_true(fabsf(dth[0][i] - dth[2][i]) <= 1e-5f + 1e-4f * fabsf(dth[2][i]));
        for (int v = 0; v < 3; v++) {
            free_n(3, y[v], dx[v], dth[v]);
        }
        rec_case_free(&rc);
    }
    if (saved) setenv("GOPT_RNN_GENERIC", saved, 1);
    free(saved);
}

/* In a net (gradients in place: dy is the layer's own output buffer, dx overwrites x), a
 * stack lstm -> tanh -> gru gives what the standalone layers give. */
static void test_in_net(void **state) {
    (void)state;
    const int N = 3, T = 5, I = 4, H = 6;
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = N;
    nc.in_ndim = 2;
    nc.in_shape[0] = T;
    nc.in_shape[1] = I;
    gopt_net *net;
    assert_ok(gopt_net_create(&nc, &net));
    gopt_layer_config cfg[3] = {gopt_layer_lstm(I, H, 2, 1, 0.0f, 0), gopt_layer_config_default(GOPT_LAYER_TANH),
                                gopt_layer_gru(H, H, 1, 1, 0.0f, 0)};
    cfg[1].in_features = H; /* unused by tanh; new_layer's input width */
    for (int i = 0; i < 3; i++) assert_ok(gopt_net_add(net, &cfg[i], NULL));
    assert_ok(gopt_net_build(net));
    gopt_rng rng;
    gopt_rng_seed(&rng, 4);
    int64_t xn = (int64_t)N * T * I, yn = (int64_t)N * T * H, xs[3] = {N, T, I}, ys[3] = {N, T, H};
    float *x = randn(&rng, xn, 1.0f), *r = randn(&rng, yn, 1.0f), *y = malloc(sizeof(float) * yn),
          *dy = malloc(sizeof(float) * yn);
    gopt_tensor tx, ty, tdy;
    assert_ok(gopt_tensor_view(x, 3, xs, &tx));
    assert_ok(gopt_net_forward(net, &tx, &ty));
    memcpy(y, ty.data, sizeof(float) * yn);
    assert_ok(gopt_tensor_view(r, 3, ys, &tdy));
    gopt_params *np = gopt_net_params(net);
    gopt_params_zero_grad(np);
    assert_ok(gopt_net_backward(net, &tdy));
    /* the same by hand on standalone layers with the net's parameters */
    gopt_params *p[3];
    gopt_layer *l[3];
    int64_t off = 0;
    const float *v = gopt_params_values(np), *g = gopt_params_grads(np);
    gopt_tensor in = tx, out[3];
    for (int i = 0; i < 3; i++) {
        l[i] = new_layer(&cfg[i], T, N, &p[i]);
        if (gopt_params_count(p[i])) set_theta(p[i], v + off), gopt_params_zero_grad(p[i]);
        off += gopt_params_numel(p[i]);
        assert_ok(gopt_layer_forward(l[i], &in, &out[i]));
        in = out[i];
    }
    assert_memory_equal(y, out[2].data, sizeof(float) * yn);
    memcpy(dy, r, sizeof(float) * yn);
    assert_ok(gopt_tensor_view(dy, 3, ys, &tdy));
    for (int i = 2; i >= 0; i--) { /* dx into the previous layer's output, as the net does */
        gopt_tensor *dx = i > 0 ? &out[i - 1] : NULL;
        assert_ok(gopt_layer_backward(l[i], i > 0 ? &out[i - 1] : &tx, &tdy, dx));
        if (i > 0) tdy = out[i - 1];
    }
    off = 0;
    for (int i = 0; i < 3; i++) {
        if (gopt_params_count(p[i]))
            assert_memory_equal(g + off, gopt_params_grads(p[i]), sizeof(float) * (size_t)gopt_params_numel(p[i]));
        off += gopt_params_numel(p[i]);
        drop(l[i], p[i]);
    }
    /* carry_state in a net: the second forward continues from the first's final states;
     * gopt_net_reset_state starts from zeros again */
    gopt_net *cnet;
    cfg[0].carry_state = 1;
    assert_ok(gopt_net_create(&nc, &cnet));
    for (int i = 0; i < 3; i++) assert_ok(gopt_net_add(cnet, &cfg[i], NULL));
    assert_ok(gopt_net_build(cnet));
    memcpy(gopt_params_values(gopt_net_params(cnet)), v, sizeof(float) * (size_t)gopt_params_numel(np));
    assert_ok(gopt_net_forward(cnet, &tx, &ty));
    assert_memory_equal(y, ty.data, sizeof(float) * yn);
    assert_ok(gopt_net_forward(cnet, &tx, &ty));
    assert_true(memcmp(y, ty.data, sizeof(float) * yn) != 0);
    gopt_net_reset_state(cnet);
    assert_ok(gopt_net_forward(cnet, &tx, &ty));
    assert_memory_equal(y, ty.data, sizeof(float) * yn);
    gopt_net_destroy(cnet);
    free_n(4, x, r, y, dy);
    gopt_net_destroy(net);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_rnn),
        cmocka_unit_test(test_fd_lstm),
        cmocka_unit_test(test_fd_gru),
        cmocka_unit_test(test_fd_dropout),
        cmocka_unit_test(test_fd_lstm_long),
        cmocka_unit_test(test_fd_sigmoid_tanh),
        cmocka_unit_test(test_truncated_bptt),
        cmocka_unit_test(test_dropout_train_eval),
        cmocka_unit_test(test_fused_matches_generic),
        cmocka_unit_test(test_in_net),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
