/* See task_adding.h. */
#include "task_adding.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LIB TRAINER_LIB
#define fail trainer_fail

typedef struct adding_task {
    adding_model model;
    int batch;
    int eval_batch;      /* the net's max_batch: test sequences per forward */
    uint64_t seed;
    gopt_rng rng;        /* the training stream */
    int64_t epoch, index; /* position of the next batch */
    float *x, *y;        /* (B,T,2), (B) */
    float *dout;         /* (B,T,1): zero except at t = T-1 */
    float *test_x, *test_y;
} adding_task;

const char *adding_arch_name(gopt_layer_type arch) { return arch == GOPT_LAYER_LSTM ? "lstm" : "rnn"; }

void adding_generate(gopt_rng *rng, int n, int T, float *x, float *y) {
    const int half = T / 2;
    for (int i = 0; i < n; i++) {
        float *s = x + (size_t)i * (size_t)T * 2;
        for (int t = 0; t < T; t++) {
            s[2 * t] = gopt_rng_uniform(rng);
            s[2 * t + 1] = 0.0f;
        }
        int a = (int)gopt_rng_below(rng, (uint64_t)half);
        int b = half + (int)gopt_rng_below(rng, (uint64_t)(T - half));
        s[2 * a + 1] = 1.0f;
        s[2 * b + 1] = 1.0f;
        y[i] = s[2 * a] + s[2 * b];
    }
}

int adding_net_build(const adding_model *m, int max_batch, uint64_t seed, gopt_net **out, char *err, size_t errlen) {
    *out = NULL;
    if (m->T < 2 || m->hidden < 1 || max_batch < 1)
        return fail(err, errlen, "adding problem: T = %d (>= 2), hidden = %d, batch = %d (>= 1)", m->T, m->hidden,
                    max_batch);
    if (m->arch != GOPT_LAYER_RNN && m->arch != GOPT_LAYER_LSTM)
        return fail(err, errlen, "adding problem: the recurrent layer must be rnn or lstm");
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = max_batch;
    nc.in_ndim = 2;
    nc.in_shape[0] = m->T;
    nc.in_shape[1] = 2;
    nc.seed = seed;
    nc.init = GOPT_NET_INIT_TORCH;
    gopt_net *net;
    LIB(gopt_net_create(&nc, &net), "network");
    gopt_layer_config rnn = m->arch == GOPT_LAYER_LSTM ? gopt_layer_lstm(2, m->hidden, 1, 1, 0.0f, seed + 1)
                                                       : gopt_layer_rnn(2, m->hidden, 1, GOPT_RNN_TANH, 1, 0.0f, seed + 1);
    gopt_layer_config head = gopt_layer_linear(m->hidden, 1, 1);
    gopt_status s = gopt_net_add(net, &rnn, "rnn");
    if (s == GOPT_OK) s = gopt_net_add(net, &head, "head");
    if (s == GOPT_OK) s = gopt_net_build(net);
    if (s == GOPT_OK && m->arch == GOPT_LAYER_RNN && m->rec_gain > 0) {
        gopt_params *p = gopt_net_params(net);
        int idx;
        gopt_param_info info;
        s = gopt_params_find(p, "rnn.weight_hh_l0", &idx);
        if (s == GOPT_OK) s = gopt_params_info(p, idx, &info);
        if (s == GOPT_OK) {
            gopt_rng r;
            gopt_rng_seed(&r, seed ^ 0x5eed0ddULL);
            s = gopt_tensor_fill_normal(&info.value, 0.0f, (float)(m->rec_gain / sqrt((double)m->hidden)), &r);
        }
    }
    if (s != GOPT_OK) {
        gopt_net_destroy(net);
        return fail(err, errlen, "adding net: %s (%s)", gopt_status_str(s), gopt_last_error());
    }
    *out = net;
    return 0;
}

static void adding_destroy(void *ctx) {
    adding_task *c = ctx;
    if (!c) return;
    free(c->x);
    free(c->y);
    free(c->dout);
    free(c->test_x);
    free(c->test_y);
    free(c);
}

static int64_t adding_batches(void *ctx) {
    (void)ctx;
    return ADDING_BATCHES_PER_EPOCH;
}

/* Each epoch is its own stream; batch `index` of it is reached by drawing the ones before. */
static int adding_seek(void *ctx, int64_t epoch, int64_t index, char *err, size_t errlen) {
    adding_task *c = ctx;
    if (epoch < 0 || index < 0 || index > ADDING_BATCHES_PER_EPOCH)
        return fail(err, errlen, "adding problem: no batch %lld of epoch %lld", (long long)index, (long long)epoch);
    gopt_rng_seed(&c->rng, c->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)epoch + 1);
    for (int64_t i = 0; i < index; i++) adding_generate(&c->rng, c->batch, c->model.T, c->x, c->y);
    c->epoch = epoch;
    c->index = index;
    return 0;
}

static int adding_train_batch(void *ctx, gopt_net *net, float label_smoothing, trainer_batch *out, char *err,
                              size_t errlen) {
    (void)label_smoothing;
    adding_task *c = ctx;
    const int B = c->batch, T = c->model.T;
    adding_generate(&c->rng, B, T, c->x, c->y);
    c->index++;
    gopt_tensor x, pred, d;
    LIB(gopt_tensor_view(c->x, 3, (const int64_t[]){B, T, 2}, &x), "input view");
    LIB(gopt_net_forward(net, &x, &pred), "forward");
    double loss = 0;
    for (int i = 0; i < B; i++) {
        const size_t last = (size_t)i * (size_t)T + (size_t)(T - 1);
        double e = (double)pred.data[last] - (double)c->y[i];
        loss += e * e;
        c->dout[last] = (float)(2.0 * e / B);
    }
    LIB(gopt_tensor_view(c->dout, 3, (const int64_t[]){B, T, 1}, &d), "gradient view");
    LIB(gopt_net_backward(net, &d), "backward");
    out->loss = loss / B;
    out->correct = 0;
    out->count = B;
    out->input = x.data;
    out->input_n = x.numel;
    return 0;
}

/* State: magic, epoch, index (the stream is replayed by seek). */
#define ADDING_MAGIC 0x31444441u /* "ADD1" */
#define ADDING_STATE_SIZE (4 + 4 + 8 + 8)

static size_t adding_state_size(void *ctx, gopt_net *net) {
    (void)ctx, (void)net;
    return ADDING_STATE_SIZE;
}

static int adding_state_save(void *ctx, gopt_net *net, void *buf, size_t size, char *err, size_t errlen) {
    (void)net;
    adding_task *c = ctx;
    if (size < ADDING_STATE_SIZE) return fail(err, errlen, "adding state buffer too small");
    unsigned char *p = buf;
    uint32_t u[2] = {ADDING_MAGIC, (uint32_t)c->model.T};
    memcpy(p, u, 8);
    memcpy(p + 8, &c->epoch, 8);
    memcpy(p + 16, &c->index, 8);
    return 0;
}

static int adding_state_check(void *ctx, gopt_net *net, const void *buf, size_t size, char *err, size_t errlen) {
    (void)net;
    adding_task *c = ctx;
    uint32_t u[2];
    if (size != ADDING_STATE_SIZE || (memcpy(u, buf, 8), u[0] != ADDING_MAGIC))
        return fail(err, errlen, "checkpoint section 'data' is not an adding-problem state");
    if (u[1] != (uint32_t)c->model.T)
        return fail(err, errlen, "the checkpoint was trained at T = %u, this run has T = %d", u[1], c->model.T);
    return 0;
}

static int adding_state_load(void *ctx, gopt_net *net, const void *buf, size_t size, char *err, size_t errlen) {
    if (adding_state_check(ctx, net, buf, size, err, errlen)) return -1;
    int64_t epoch, index;
    memcpy(&epoch, (const unsigned char *)buf + 8, 8);
    memcpy(&index, (const unsigned char *)buf + 16, 8);
    return adding_seek(ctx, epoch, index, err, errlen);
}

int adding_trainer_create(const trainer_config *cfg, const adding_model *m, trainer **out, char *err, size_t errlen) {
    *out = NULL;
    if (m->test_n < 1) return fail(err, errlen, "adding problem: test_n = %d must be >= 1", m->test_n);
    if (cfg->batch < 1) return fail(err, errlen, "adding problem: batch = %d must be >= 1", cfg->batch);
    adding_task *c = calloc(1, sizeof *c);
    if (!c) return fail(err, errlen, "out of memory");
    c->model = *m;
    c->batch = cfg->batch;
    c->eval_batch = cfg->batch > 128 ? cfg->batch : 128;
    if (c->eval_batch > m->test_n && m->test_n > cfg->batch) c->eval_batch = m->test_n;
    c->seed = cfg->seed;
    const size_t B = (size_t)cfg->batch, T = (size_t)m->T, n = (size_t)m->test_n;
    c->x = malloc(B * T * 2 * sizeof(float));
    c->y = malloc(B * sizeof(float));
    c->dout = calloc(B * T, sizeof(float));
    c->test_x = malloc(n * T * 2 * sizeof(float));
    c->test_y = malloc(n * sizeof(float));
    if (!c->x || !c->y || !c->dout || !c->test_x || !c->test_y) {
        adding_destroy(c);
        return fail(err, errlen, "out of memory for the adding problem's buffers");
    }
    gopt_rng r;
    gopt_rng_seed(&r, m->test_seed);
    adding_generate(&r, m->test_n, m->T, c->test_x, c->test_y);
    gopt_net *net;
    if (adding_net_build(m, c->eval_batch, cfg->seed, &net, err, errlen)) {
        adding_destroy(c);
        return -1;
    }
    trainer_task task = {c,                 adding_batches,     adding_seek,       adding_train_batch, adding_state_size,
                         adding_state_save, adding_state_check, adding_state_load, adding_destroy, NULL}; /* no BatchNorm */
    return trainer_create_custom(cfg, net, &task, out, err, errlen);
}

int adding_evaluate(trainer *t, double *mse, char *err, size_t errlen) {
    adding_task *c = trainer_task_ctx(t);
    gopt_net *net = trainer_net(t);
    const int T = c->model.T;
    double sum = 0;
    gopt_net_set_training(net, 0);
    for (int i0 = 0; i0 < c->model.test_n; i0 += c->eval_batch) {
        int n = c->model.test_n - i0 < c->eval_batch ? c->model.test_n - i0 : c->eval_batch;
        gopt_tensor x, pred;
        gopt_status s = gopt_tensor_view(c->test_x + (size_t)i0 * (size_t)T * 2, 3, (const int64_t[]){n, T, 2}, &x);
        if (s == GOPT_OK) s = gopt_net_forward(net, &x, &pred);
        if (s != GOPT_OK) {
            gopt_net_set_training(net, 1);
            return fail(err, errlen, "evaluation forward: %s (%s)", gopt_status_str(s), gopt_last_error());
        }
        for (int i = 0; i < n; i++) {
            double e = (double)pred.data[(size_t)i * (size_t)T + (size_t)(T - 1)] - (double)c->test_y[i0 + i];
            sum += e * e;
        }
    }
    gopt_net_set_training(net, 1);
    *mse = sum / c->model.test_n;
    return 0;
}
