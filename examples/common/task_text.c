/* See task_text.h.
 * Data parallel: the loader draws the global batch of B sequences on every rank and rank r
 * keeps sequences r, r + P, r + 2P, ... (B / P of them), so P ranks x B / P train on
 * exactly the sequences of one process x B; with carried state each rank carries its own
 * streams, and checkpoints hold the state of all B streams in one-process order. */
#include "task_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIB TRAINER_LIB
#define fail trainer_fail
#define IGNORE_INDEX (-100)

typedef struct text_task {
    text_model_config model;
    const gopt_text *train;
    gopt_text_loader *loader;
    gopt_text_loader_config loader_cfg;
    int batch, T, V;           /* batch: this rank's B / P sequences */
    int global_batch;          /* B: the loaders' batch */
    gopt_dist *dist;           /* NULL: one process */
    int world, rank;
    int32_t *inputs, *targets; /* (B,T): the global batch, this rank's rows compacted to the front */
    gopt_tensor *dlogits;      /* (B/P,T,V) */
    /* the recurrent layer and the state it carries between training batches */
    int rnn_index;
    int64_t state_numel;       /* L*(B/P)*H: this rank's streams */
    float *carry_h, *carry_c;  /* snapshot of the carried state (c: lstm only) */
    int carry_valid;           /* the next training forward starts from carry_h/c (else zeros) */
    int trained_since_snapshot;/* a training forward ran after the last snapshot */
    float *eval_h, *eval_c;    /* evaluation's own chain */
    gopt_text_loader *eval_loader;
    const gopt_text *eval_text;
} text_task;

static const char *const arch_names[] = {"lstm", "gru", "rnn"};
static const gopt_layer_type arch_types[] = {GOPT_LAYER_LSTM, GOPT_LAYER_GRU, GOPT_LAYER_RNN};

const char *text_arch_name(gopt_layer_type arch) {
    for (int i = 0; i < 3; i++)
        if (arch_types[i] == arch) return arch_names[i];
    return "?";
}

int text_arch_from_name(const char *name, gopt_layer_type *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, arch_names[i])) {
            *out = arch_types[i];
            return 0;
        }
    return -1;
}

int text_net_build(const text_model_config *m, int max_batch, int seq_len, int carry, uint64_t seed, gopt_net **out,
                   char *err, size_t errlen) {
    *out = NULL;
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = max_batch;
    nc.in_ndim = 1;
    nc.in_shape[0] = seq_len;
    nc.seed = seed;
    nc.init = GOPT_NET_INIT_TORCH;
    gopt_net *net;
    LIB(gopt_net_create(&nc, &net), "network");
    gopt_layer_config emb = gopt_layer_embedding(m->vocab, m->embed);
    gopt_layer_config rnn;
    switch (m->arch) {
    case GOPT_LAYER_LSTM: rnn = gopt_layer_lstm(m->embed, m->hidden, m->layers, 1, m->dropout, seed + 1); break;
    case GOPT_LAYER_GRU: rnn = gopt_layer_gru(m->embed, m->hidden, m->layers, 1, m->dropout, seed + 1); break;
    default: rnn = gopt_layer_rnn(m->embed, m->hidden, m->layers, GOPT_RNN_TANH, 1, m->dropout, seed + 1); break;
    }
    rnn.carry_state = carry;
    gopt_layer_config head = gopt_layer_linear(m->hidden, m->vocab, 1);
    gopt_status s;
    const char *what = "embedding";
    if ((s = gopt_net_add(net, &emb, "embed")) == GOPT_OK) {
        what = text_arch_name(m->arch);
        if ((s = gopt_net_add(net, &rnn, "rnn")) == GOPT_OK) {
            what = "output layer";
            if ((s = gopt_net_add(net, &head, "head")) == GOPT_OK) {
                what = "network build";
                s = gopt_net_build(net);
            }
        }
    }
    if (s != GOPT_OK) {
        gopt_net_destroy(net);
        return fail(err, errlen, "%s: %s (%s)", what, gopt_status_str(s), gopt_last_error());
    }
    *out = net;
    return 0;
}

/* ---- the carried state ---------------------------------------------------------------- */

static gopt_layer *rnn_layer(gopt_net *net, const text_task *c) { return gopt_net_layer(net, c->rnn_index); }

static int state_views(text_task *c, float *h, float *cc, gopt_tensor *th, gopt_tensor *tc, char *err, size_t errlen) {
    const int64_t shape[3] = {c->model.layers, c->batch, c->model.hidden};
    LIB(gopt_tensor_view(h, 3, shape, th), "state view");
    if (cc) LIB(gopt_tensor_view(cc, 3, shape, tc), "state view");
    return 0;
}

/* Copy the final state of the last training forward into carry_h/c. */
static int snapshot(text_task *c, gopt_net *net, char *err, size_t errlen) {
    if (!c->trained_since_snapshot) return 0;
    gopt_tensor hn, cn;
    int lstm = c->model.arch == GOPT_LAYER_LSTM;
    LIB(gopt_layer_rnn_get_state(rnn_layer(net, c), &hn, lstm ? &cn : NULL), "reading the recurrent state");
    if (hn.numel != c->state_numel) return fail(err, errlen, "recurrent state of %lld values, expected %lld",
                                                (long long)hn.numel, (long long)c->state_numel);
    memcpy(c->carry_h, hn.data, (size_t)c->state_numel * sizeof(float));
    if (lstm) memcpy(c->carry_c, cn.data, (size_t)c->state_numel * sizeof(float));
    c->trained_since_snapshot = 0;
    return 0;
}

/* Make the next training forward start from the carried state (or zeros). */
static int restore(text_task *c, gopt_net *net, char *err, size_t errlen) {
    gopt_layer *l = rnn_layer(net, c);
    if (!c->carry_valid) {
        LIB(gopt_layer_rnn_set_state(l, NULL, NULL), "resetting the recurrent state");
        return 0;
    }
    gopt_tensor th, tc;
    int lstm = c->model.arch == GOPT_LAYER_LSTM;
    if (state_views(c, c->carry_h, lstm ? c->carry_c : NULL, &th, &tc, err, errlen)) return -1;
    LIB(gopt_layer_rnn_set_state(l, &th, lstm ? &tc : NULL), "restoring the recurrent state");
    return 0;
}

/* Keep this rank's sequences r, r + P, ... of the global batch in rows 0 .. B/P - 1
 * (row i <- row i P + r: a forward copy, the source is never behind the destination). */
static void keep_my_rows(const text_task *c) {
    if (c->world == 1) return;
    const size_t row = (size_t)c->T * sizeof(int32_t);
    for (int i = 0; i < c->batch; i++) {
        const int64_t from = (int64_t)i * c->world + c->rank;
        memmove(c->inputs + (int64_t)i * c->T, c->inputs + from * c->T, row);
        memmove(c->targets + (int64_t)i * c->T, c->targets + from * c->T, row);
    }
}

/* Carried state (L, B/P, H) of every rank -> (L, B, H) in the order of the global batch
 * (stream i of rank r is stream i P + r), on every rank: each rank broadcasts its part in
 * turn. tmp holds L*(B/P)*H floats. */
static int gather_streams(text_task *c, const float *mine, float *all, float *tmp, char *err, size_t errlen) {
    const int64_t L = c->model.layers, Bl = c->batch, B = c->global_batch, H = c->model.hidden;
    for (int root = 0; root < c->world; root++) {
        const float *part = mine;
        if (c->dist) {
            if (root == c->rank) memcpy(tmp, mine, (size_t)c->state_numel * sizeof(float));
            LIB(gopt_dist_broadcast(c->dist, tmp, (size_t)c->state_numel * sizeof(float), root),
                "gathering the carried states");
            part = tmp;
        }
        for (int64_t l = 0; l < L; l++)
            for (int64_t i = 0; i < Bl; i++)
                memcpy(all + (l * B + i * c->world + root) * H, part + (l * Bl + i) * H, (size_t)H * sizeof(float));
    }
    return 0;
}

/* The inverse: this rank's streams out of (L, B, H). */
static void scatter_streams(const text_task *c, const float *all, float *mine) {
    const int64_t L = c->model.layers, Bl = c->batch, B = c->global_batch, H = c->model.hidden;
    for (int64_t l = 0; l < L; l++)
        for (int64_t i = 0; i < Bl; i++)
            memcpy(mine + (l * Bl + i) * H, all + (l * B + i * c->world + c->rank) * H, (size_t)H * sizeof(float));
}

/* ---- task callbacks ---------------------------------------------------------------------- */

static int64_t text_batches(void *ctx) { return gopt_text_loader_batches_per_epoch(((text_task *)ctx)->loader); }

static int text_seek(void *ctx, int64_t epoch, int64_t index, char *err, size_t errlen) {
    LIB(gopt_text_loader_seek(((text_task *)ctx)->loader, epoch, index), "text loader");
    return 0;
}

static int text_train_batch(void *ctx, gopt_net *net, float label_smoothing, trainer_batch *out, char *err,
                            size_t errlen) {
    text_task *c = ctx;
    int n;
    int64_t index;
    LIB(gopt_text_loader_next(c->loader, c->inputs, c->targets, &n, &index), "next batch");
    if (n == 0) return fail(err, errlen, "the text loader ran past the end of its epoch");
    keep_my_rows(c);
    if (c->model.streams && index == 0) { /* a new epoch: new streams, from zeros */
        gopt_net_reset_state(net);
        c->carry_valid = 0;
    }
    gopt_tensor logits, dl, flat;
    LIB(gopt_net_forward_tokens(net, c->inputs, c->batch, &logits), "forward");
    LIB(gopt_tensor_view(c->dlogits->data, logits.ndim, logits.shape, &dl), "gradient view");
    float loss;
    LIB(gopt_loss_cross_entropy_seq(&logits, c->targets, label_smoothing, IGNORE_INDEX, &loss, &dl), "loss");
    const int64_t rows = (int64_t)c->batch * c->T;
    LIB(gopt_tensor_view(logits.data, 2, (const int64_t[]){rows, c->V}, &flat), "logits view");
    int64_t correct;
    LIB(gopt_accuracy_count(&flat, c->targets, &correct), "accuracy");
    LIB(gopt_net_backward(net, &dl), "backward");
    if (c->model.streams) {
        c->trained_since_snapshot = 1;
        c->carry_valid = 1;
    }
    out->loss = loss;
    out->correct = correct;
    out->count = rows;
    return 0;
}

/* State: magic, vocabulary blob, loader blob, carry flag, then (carry) h and c. */
#define TEXT_TASK_MAGIC 0x31545854u /* "TXT1" */

static size_t text_state_size(void *ctx, gopt_net *net) {
    (void)net;
    text_task *c = ctx;
    size_t n = 4 + 4 + gopt_vocab_state_size(gopt_text_vocab(c->train)) + 4 + gopt_text_loader_state_size(c->loader) + 4;
    n += (size_t)c->state_numel * (size_t)c->world * sizeof(float) * (c->model.arch == GOPT_LAYER_LSTM ? 2 : 1);
    return n;
}

static int text_state_save(void *ctx, gopt_net *net, void *buf, size_t size, char *err, size_t errlen) {
    text_task *c = ctx;
    if (size < text_state_size(ctx, net)) return fail(err, errlen, "text state buffer too small");
    if (c->model.streams && snapshot(c, net, err, errlen)) return -1;
    unsigned char *p = buf;
    uint32_t u = TEXT_TASK_MAGIC;
    memcpy(p, &u, 4), p += 4;
    const gopt_vocab *v = gopt_text_vocab(c->train);
    u = (uint32_t)gopt_vocab_state_size(v);
    memcpy(p, &u, 4), p += 4;
    LIB(gopt_vocab_state_save(v, p, u), "saving the vocabulary");
    p += u;
    u = (uint32_t)gopt_text_loader_state_size(c->loader);
    memcpy(p, &u, 4), p += 4;
    LIB(gopt_text_loader_state_save(c->loader, p, u), "saving the loader position");
    p += u;
    u = (uint32_t)c->carry_valid; /* the same on every rank */
    memcpy(p, &u, 4), p += 4;
    size_t bytes = (size_t)c->state_numel * (size_t)c->world * sizeof(float);
    /* (the floats of p are not aligned: gathered through an aligned copy) */
    float *all = malloc(bytes), *tmp = malloc((size_t)c->state_numel * sizeof(float));
    int rc = all && tmp ? 0 : fail(err, errlen, "out of memory saving the carried state");
    for (int k = 0; k < (c->model.arch == GOPT_LAYER_LSTM ? 2 : 1) && !rc; k++) {
        if (c->carry_valid) {
            rc = gather_streams(c, k ? c->carry_c : c->carry_h, all, tmp, err, errlen);
            if (!rc) memcpy(p, all, bytes);
        } else {
            memset(p, 0, bytes);
        }
        p += bytes;
    }
    free(all);
    free(tmp);
    return rc;
}

/* Parse and validate a state; apply it when `apply`. */
static int text_state_read(text_task *c, gopt_net *net, const void *buf, size_t size, int apply, char *err,
                           size_t errlen) {
    const unsigned char *p = buf, *end = p + size;
    uint32_t u;
    if (size < 8 || (memcpy(&u, p, 4), u) != TEXT_TASK_MAGIC)
        return fail(err, errlen, "checkpoint section 'data' is not a text model's state (made by another program?)");
    p += 4;
    memcpy(&u, p, 4), p += 4;
    if ((size_t)(end - p) < u) return fail(err, errlen, "checkpoint section 'data' is truncated");
    gopt_vocab saved;
    gopt_status s = gopt_vocab_state_load(&saved, p, u);
    if (s != GOPT_OK) return fail(err, errlen, "checkpoint vocabulary: %s", gopt_last_error());
    if (gopt_vocab_compare(&saved, gopt_text_vocab(c->train)) != GOPT_OK)
        return fail(err, errlen, "the checkpoint was trained on another vocabulary: %s", gopt_last_error());
    p += u;
    if (end - p < 4) return fail(err, errlen, "checkpoint section 'data' is truncated");
    memcpy(&u, p, 4), p += 4;
    if ((size_t)(end - p) < u || u != gopt_text_loader_state_size(c->loader))
        return fail(err, errlen, "checkpoint section 'data': loader state of %u bytes", u);
    const unsigned char *loader_state = p;
    p += u;
    /* the recurrent state's size follows the model: checked on load, after the parameters
     * (whose mismatch names the tensor) */
    size_t bytes = (size_t)c->state_numel * (size_t)c->world * sizeof(float);
    size_t want = 4 + bytes * (c->model.arch == GOPT_LAYER_LSTM ? 2 : 1);
    if (apply && (size_t)(end - p) != want)
        return fail(err, errlen, "checkpoint section 'data': a recurrent state of %zu bytes, this model has %zu",
                    (size_t)(end - p), want);
    if (end - p < 4) return fail(err, errlen, "checkpoint section 'data' is truncated");
    uint32_t carry;
    memcpy(&carry, p, 4), p += 4;
    if (!apply) { /* the loader's own checks, on a scratch loader of the same config */
        gopt_text_loader *probe;
        s = gopt_text_loader_create(&c->loader_cfg, c->train, &probe);
        if (s == GOPT_OK) s = gopt_text_loader_state_load(probe, loader_state, u);
        gopt_text_loader_destroy(probe);
        if (s != GOPT_OK)
            return fail(err, errlen, "checkpoint section 'data' does not fit this run: %s", gopt_last_error());
        if (carry > 1 || (carry && !c->model.streams))
            return fail(err, errlen, "checkpoint section 'data': carried state flag %u does not fit this run", carry);
        return 0;
    }
    s = gopt_text_loader_state_load(c->loader, loader_state, u);
    if (s != GOPT_OK) return fail(err, errlen, "checkpoint section 'data' does not fit this run: %s", gopt_last_error());
    c->carry_valid = (int)carry;
    c->trained_since_snapshot = 0;
    if (carry) {
        float *all = malloc(bytes);
        if (!all) return fail(err, errlen, "out of memory loading the carried state");
        memcpy(all, p, bytes);
        scatter_streams(c, all, c->carry_h);
        if (c->model.arch == GOPT_LAYER_LSTM) {
            memcpy(all, p + bytes, bytes);
            scatter_streams(c, all, c->carry_c);
        }
        free(all);
    }
    return restore(c, net, err, errlen);
}

static int text_state_check(void *ctx, gopt_net *net, const void *buf, size_t size, char *err, size_t errlen) {
    return text_state_read(ctx, net, buf, size, 0, err, errlen);
}

static int text_state_load(void *ctx, gopt_net *net, const void *buf, size_t size, char *err, size_t errlen) {
    return text_state_read(ctx, net, buf, size, 1, err, errlen);
}

static void text_destroy(void *ctx) {
    text_task *c = ctx;
    if (!c) return;
    gopt_text_loader_destroy(c->loader);
    gopt_text_loader_destroy(c->eval_loader);
    gopt_tensor_destroy(c->dlogits);
    free(c->inputs);
    free(c->targets);
    free(c->carry_h);
    free(c->carry_c);
    free(c->eval_h);
    free(c->eval_c);
    free(c);
}

int text_trainer_create(const trainer_config *cfg, const text_model_config *m, const gopt_text *train, trainer **out,
                        char *err, size_t errlen) {
    *out = NULL;
    text_task *c = calloc(1, sizeof *c);
    if (!c) return fail(err, errlen, "out of memory");
    c->model = *m;
    c->train = train;
    if (trainer_local_batch(cfg, &c->batch, err, errlen)) {
        free(c);
        return -1;
    }
    c->global_batch = cfg->batch;
    c->dist = cfg->dist;
    c->world = trainer_world(cfg);
    c->rank = trainer_rank(cfg);
    c->T = m->seq_len;
    c->V = m->vocab;
    c->rnn_index = 1;
    c->state_numel = (int64_t)m->layers * c->batch * m->hidden;
    gopt_net *net = NULL;
    gopt_text_loader_config lc = gopt_text_loader_config_default();
    lc.batch_size = cfg->batch;
    lc.seq_len = m->seq_len;
    lc.order = m->streams ? GOPT_TEXT_STREAMS : GOPT_TEXT_RANDOM;
    lc.seed = cfg->seed;
    c->loader_cfg = lc;
    gopt_status s = gopt_text_loader_create(&lc, train, &c->loader);
    if (s != GOPT_OK) {
        text_destroy(c);
        return fail(err, errlen, "%s", gopt_last_error());
    }
    const size_t bt = (size_t)cfg->batch * (size_t)m->seq_len, st = (size_t)c->state_numel;
    c->inputs = malloc(bt * sizeof(int32_t));
    c->targets = malloc(bt * sizeof(int32_t));
    c->carry_h = calloc(st, sizeof(float));
    c->carry_c = calloc(st, sizeof(float));
    c->eval_h = calloc(st, sizeof(float));
    c->eval_c = calloc(st, sizeof(float));
    const int64_t shape[3] = {c->batch, m->seq_len, m->vocab};
    if (!c->inputs || !c->targets || !c->carry_h || !c->carry_c || !c->eval_h || !c->eval_c ||
        gopt_tensor_create(3, shape, &c->dlogits) != GOPT_OK) {
        text_destroy(c);
        return fail(err, errlen, "out of memory for the batch buffers");
    }
    if (text_net_build(m, c->batch, m->seq_len, m->streams, cfg->seed, &net, err, errlen)) {
        text_destroy(c);
        return -1;
    }
    trainer_task task = {c,          text_batches,     text_seek,       text_train_batch, text_state_size,
                         text_state_save, text_state_check, text_state_load, text_destroy, NULL}; /* no BatchNorm */
    return trainer_create_custom(cfg, net, &task, out, err, errlen);
}

int text_evaluate(trainer *t, const gopt_text *held_out, double *loss, double *acc, char *err, size_t errlen) {
    text_task *c = trainer_task_ctx(t);
    gopt_net *net = trainer_net(t);
    if (c->eval_text != held_out) {
        gopt_text_loader_destroy(c->eval_loader);
        c->eval_loader = NULL;
        gopt_text_loader_config lc = gopt_text_loader_config_default();
        lc.batch_size = c->global_batch; /* each rank evaluates its streams of it */
        lc.seq_len = c->T;
        lc.order = GOPT_TEXT_STREAMS;
        lc.cover_all = 1;
        lc.ignore_index = IGNORE_INDEX;
        gopt_status s = gopt_text_loader_create(&lc, held_out, &c->eval_loader);
        if (s != GOPT_OK) return fail(err, errlen, "evaluation data: %s", gopt_last_error());
        c->eval_text = held_out;
    }
    if (c->model.streams && snapshot(c, net, err, errlen)) return -1;
    gopt_layer *l = rnn_layer(net, c);
    const int lstm = c->model.arch == GOPT_LAYER_LSTM;
    const int64_t rows = (int64_t)c->batch * c->T, windows = gopt_text_loader_batches_per_epoch(c->eval_loader);
    gopt_net_set_training(net, 0);
    double loss_sum = 0;
    int64_t correct = 0, count = 0;
    int rc = 0;
    for (int64_t k = 0; k < windows && !rc; k++) {
        gopt_status s = gopt_text_loader_batch_at(c->eval_loader, 0, k, c->inputs, c->targets);
        if (s == GOPT_OK) keep_my_rows(c);
        gopt_tensor th, tc, logits, flat;
        if (s == GOPT_OK) {
            if (k == 0) s = gopt_layer_rnn_set_state(l, NULL, NULL);
            else if (!state_views(c, c->eval_h, lstm ? c->eval_c : NULL, &th, &tc, err, errlen))
                s = gopt_layer_rnn_set_state(l, &th, lstm ? &tc : NULL);
            else rc = -1;
        }
        if (rc) break;
        if (s == GOPT_OK) s = gopt_net_forward_tokens(net, c->inputs, c->batch, &logits);
        float l_mean = 0;
        if (s == GOPT_OK) s = gopt_loss_cross_entropy_seq(&logits, c->targets, 0.0f, IGNORE_INDEX, &l_mean, NULL);
        int64_t hits = 0;
        if (s == GOPT_OK) s = gopt_tensor_view(logits.data, 2, (const int64_t[]){rows, c->V}, &flat);
        if (s == GOPT_OK) s = gopt_accuracy_count(&flat, c->targets, &hits); /* padding (-100) never matches */
        gopt_tensor hn, cn;
        if (s == GOPT_OK) s = gopt_layer_rnn_get_state(l, &hn, lstm ? &cn : NULL);
        if (s != GOPT_OK) {
            rc = fail(err, errlen, "evaluation: %s (%s)", gopt_status_str(s), gopt_last_error());
            break;
        }
        memcpy(c->eval_h, hn.data, (size_t)c->state_numel * sizeof(float));
        if (lstm) memcpy(c->eval_c, cn.data, (size_t)c->state_numel * sizeof(float));
        int64_t valid = 0;
        for (int64_t i = 0; i < rows; i++) valid += c->targets[i] != IGNORE_INDEX;
        loss_sum += (double)l_mean * (double)valid;
        count += valid;
        correct += hits;
    }
    gopt_net_set_training(net, 1);
    if (!rc) rc = restore(c, net, err, errlen);
    if (!rc && c->dist) {
        double v[3] = {loss_sum, (double)correct, (double)count};
        LIB(gopt_dist_sum(c->dist, v, 3), "evaluation over the ranks");
        loss_sum = v[0];
        correct = (int64_t)v[1];
        count = (int64_t)v[2];
    }
    *loss = count ? loss_sum / (double)count : NAN;
    *acc = count ? (double)correct / (double)count : NAN;
    return rc;
}

int text_sample(trainer *t, const text_model_config *m, int n, double temperature, uint64_t seed, uint8_t *out,
                char *err, size_t errlen) {
    text_task *c = trainer_task_ctx(t);
    const gopt_vocab *v = gopt_text_vocab(c->train);
    gopt_params *src = gopt_net_params(trainer_net(t));
    gopt_net *gen = NULL;
    if (text_net_build(m, 1, 1, 1, seed, &gen, err, errlen)) return -1;
    double *p = malloc(sizeof(double) * (size_t)v->size);
    int rc = 0;
    /* arena to arena: the copy has not the trainer's parameter groups, which a state blob keeps */
    gopt_status s = p ? gopt_params_copy_values(gopt_net_params(gen), src) : GOPT_ENOMEM;
    if (s != GOPT_OK) rc = fail(err, errlen, "copying the model for sampling: %s", gopt_last_error());
    gopt_net_set_training(gen, 0);
    gopt_rng rng;
    gopt_rng_seed(&rng, seed);
    int32_t token = v->id['\n'] >= 0 ? v->id['\n'] : 0;
    for (int i = 0; i < n && !rc; i++) {
        gopt_tensor logits;
        s = gopt_net_forward_tokens(gen, &token, 1, &logits);
        if (s != GOPT_OK) {
            rc = fail(err, errlen, "sampling: %s (%s)", gopt_status_str(s), gopt_last_error());
            break;
        }
        const float *z = logits.data;
        int best = 0;
        for (int k = 1; k < v->size; k++)
            if (z[k] > z[best]) best = k;
        if (temperature <= 0) {
            token = best;
        } else {
            double total = 0;
            for (int k = 0; k < v->size; k++) total += p[k] = exp(((double)z[k] - z[best]) / temperature);
            double u = (double)gopt_rng_uniform(&rng) * total, acc = 0;
            token = v->size - 1;
            for (int k = 0; k < v->size; k++) {
                acc += p[k];
                if (u < acc) {
                    token = k;
                    break;
                }
            }
        }
        out[i] = v->bytes[token];
    }
    free(p);
    gopt_net_destroy(gen);
    return rc;
}
