/* Layers (see gradopt/layer.h): the generic public API. Each type is one file that fills a
 * gopt__layer_vt (nn/layer.h); this file finds it in a table indexed by the type and knows
 * nothing else about it. */
#include "core/common.h"
#include "nn/layer.h"

static const char *const type_names[GOPT_LAYER_TYPE_COUNT] = {
    "linear", "conv2d", "batchnorm2d", "relu", "gelu", "maxpool2d", "global_avgpool", "dropout", "flatten",
    "basic_block", "sigmoid", "tanh", "embedding", "rnn", "lstm", "gru", "batchnorm1d", "residual_dense", "add", "concat", "custom"};

const char *gopt_layer_type_name(gopt_layer_type t) {
    return (t >= 0 && t < GOPT_LAYER_TYPE_COUNT) ? type_names[t] : "unknown";
}

/* The layer types, by gopt_layer_type; NULL: declared in gradopt/layer.h, not implemented. */
static const gopt__layer_vt *(*const vtables[GOPT_LAYER_TYPE_COUNT])(void) = {
    [GOPT_LAYER_LINEAR] = gopt__linear_vtable,
    [GOPT_LAYER_CONV2D] = gopt__conv2d_vtable,
    [GOPT_LAYER_BATCHNORM2D] = gopt__batchnorm2d_vtable,
    [GOPT_LAYER_RELU] = gopt__relu_vtable,
    [GOPT_LAYER_GELU] = gopt__gelu_vtable,
    [GOPT_LAYER_MAXPOOL2D] = gopt__maxpool2d_vtable,
    [GOPT_LAYER_GLOBAL_AVGPOOL] = gopt__global_avgpool_vtable,
    [GOPT_LAYER_DROPOUT] = gopt__dropout_vtable,
    [GOPT_LAYER_FLATTEN] = gopt__flatten_vtable,
    [GOPT_LAYER_BASIC_BLOCK] = gopt__basic_block_vtable,
    [GOPT_LAYER_SIGMOID] = gopt__sigmoid_vtable,
    [GOPT_LAYER_TANH] = gopt__tanh_vtable,
    [GOPT_LAYER_RNN] = gopt__rnn_vtable,
    [GOPT_LAYER_LSTM] = gopt__lstm_vtable,
    [GOPT_LAYER_GRU] = gopt__gru_vtable,
    [GOPT_LAYER_EMBEDDING] = gopt__embedding_vtable,
    [GOPT_LAYER_BATCHNORM1D] = gopt__batchnorm1d_vtable,
    [GOPT_LAYER_RESIDUAL_DENSE] = gopt__residual_dense_vtable,
    [GOPT_LAYER_CUSTOM] = gopt__custom_vtable,
};

/* ---- config helpers ------------------------------------------------------------------------ */

gopt_layer_config gopt_layer_config_default(gopt_layer_type type) {
    gopt_layer_config c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.stride = 1;
    c.eps = 1e-5f;
    c.momentum = 0.1f;
    c.p = 0.5f;
    if (type == GOPT_LAYER_RNN || type == GOPT_LAYER_LSTM || type == GOPT_LAYER_GRU) {
        c.num_layers = 1; /* PyTorch's defaults: one layer, biases, no dropout */
        c.bias = 1;
        c.p = 0.0f;
    }
    if (type == GOPT_LAYER_RESIDUAL_DENSE) c.nonlinearity = GOPT_LAYER_RELU;
    return c;
}
gopt_layer_config gopt_layer_linear(int in, int out, int bias) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_LINEAR);
    c.in_features = in;
    c.out_features = out;
    c.bias = bias;
    return c;
}
gopt_layer_config gopt_layer_conv2d(int in, int out, int kernel, int stride, int padding, int bias) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_CONV2D);
    c.in_features = in;
    c.out_features = out;
    c.kernel = kernel;
    c.stride = stride;
    c.padding = padding;
    c.bias = bias;
    return c;
}
gopt_layer_config gopt_layer_batchnorm2d(int channels, int fused_relu) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_BATCHNORM2D);
    c.channels = channels;
    c.relu = fused_relu;
    return c;
}
gopt_layer_config gopt_layer_batchnorm1d(int features) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_BATCHNORM1D);
    c.channels = features;
    return c;
}
gopt_layer_config gopt_layer_residual_dense(int features, gopt_layer_type activation, int batchnorm) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_RESIDUAL_DENSE);
    c.in_features = features;
    c.out_features = features;
    c.nonlinearity = (int)activation;
    c.batchnorm = batchnorm;
    return c;
}
gopt_layer_config gopt_layer_maxpool2d(int kernel, int stride, int padding) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_MAXPOOL2D);
    c.kernel = kernel;
    c.stride = stride;
    c.padding = padding;
    return c;
}
gopt_layer_config gopt_layer_dropout(float p, uint64_t seed) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_DROPOUT);
    c.p = p;
    c.seed = seed;
    return c;
}
gopt_layer_config gopt_layer_embedding(int num_embeddings, int embedding_dim) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_EMBEDDING);
    c.in_features = num_embeddings;
    c.out_features = embedding_dim;
    return c;
}
gopt_layer_config gopt_layer_basic_block(int in, int out, int stride) {
    gopt_layer_config c = gopt_layer_config_default(GOPT_LAYER_BASIC_BLOCK);
    c.in_features = in;
    c.out_features = out;
    c.stride = stride;
    return c;
}


/* ---- creation ------------------------------------------------------------------------------ */

gopt_status gopt__layer_alloc_buffers(gopt_layer *l, int lean) {
    size_t n = (size_t)l->max_batch * (size_t)l->out_numel;
    /* Each buffer is allocated only if it is not there yet: a net whose build ran out of
     * memory keeps what it had and a second gopt_net_build completes it. */
    if (!(l->vt->flags & GOPT__VT_OUT_ALIASES_IN) && !l->recompute && !l->out) {
        l->out = gopt__aligned_alloc(n * sizeof(float));
        if (!l->out) return GOPT_FAIL(GOPT_ENOMEM, "%s output of %zu floats", gopt_layer_type_name(l->cfg.type), n);
        l->owns_out = 1;
    }
    if (l->vt->alloc) GOPT_TRY(l->vt->alloc(l, lean && (l->vt->flags & GOPT__VT_LEAN)));
    return GOPT_OK;
}

void gopt_layer_destroy(gopt_layer *l) {
    if (!l) return;
    if (l->owns_out) gopt__aligned_free(l->out);
    if (l->owns_ws) gopt__aligned_free(l->ws);
    if (l->vt->free) l->vt->free(l); /* also after a failed setup */
    gopt__free(l->st);
    gopt__free(l);
}

gopt_status gopt_layer_create(const gopt_layer_config *cfg, int in_ndim, const int64_t in_shape[], int max_batch,
                              gopt_params *params, const char *prefix, gopt_layer **out) {
    return gopt__layer_create(cfg, in_ndim, in_shape, max_batch, params, prefix, 1, out);
}

gopt_status gopt__layer_create(const gopt_layer_config *cfg, int in_ndim, const int64_t in_shape[], int max_batch,
                               gopt_params *params, const char *prefix, int own_ws, gopt_layer **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    GOPT_CHECK_NULL(in_shape);
    GOPT_CHECK_NULL(params);
    GOPT_CHECK_NULL(prefix);
    if (cfg->type < 0 || cfg->type >= GOPT_LAYER_TYPE_COUNT)
        return GOPT_FAIL(GOPT_EINVAL, "layer type %d is out of range", (int)cfg->type);
    if (!vtables[cfg->type])
        return GOPT_FAIL(GOPT_EINVAL, "layer type %s is not implemented", gopt_layer_type_name(cfg->type));
    if (in_ndim < 1 || in_ndim > 3) return GOPT_FAIL(GOPT_EINVAL, "in_ndim = %d must be 1..3", in_ndim);
    if (max_batch < 1) return GOPT_FAIL(GOPT_EINVAL, "max_batch = %d must be >= 1", max_batch);
    size_t plen = strlen(prefix);
    if (plen < 1 || plen > 40) return GOPT_FAIL(GOPT_EINVAL, "prefix '%s' must be 1..40 bytes", prefix);
    if (gopt_params_finalized(params))
        return GOPT_FAIL(GOPT_ESTATE, "cannot add layer '%s': the params arena is already finalized", prefix);
    int64_t numel = 1;
    for (int i = 0; i < in_ndim; i++) {
        if (in_shape[i] < 1 || in_shape[i] > (1 << 24))
            return GOPT_FAIL(GOPT_ESHAPE, "input dimension %d = %lld is out of range", i, (long long)in_shape[i]);
        numel *= in_shape[i];
        if (numel > ((int64_t)1 << 31)) return GOPT_FAIL(GOPT_EOVERFLOW, "input of more than 2^31 elements per sample");
    }
    gopt_layer *l = gopt__calloc(1, sizeof *l);
    if (!l) return GOPT_FAIL(GOPT_ENOMEM, "layer");
    l->cfg = *cfg;
    l->vt = vtables[cfg->type]();
    l->in_ndim = in_ndim;
    for (int i = 0; i < 3; i++) l->in_shape[i] = i < in_ndim ? in_shape[i] : 1;
    l->in_numel = numel;
    l->max_batch = max_batch;
    l->training = 1;
    l->params = params;
    int registered = gopt_params_count(params);
    gopt_status s = l->vt->setup(l, prefix);
    if (s == GOPT_OK) {
        l->out_numel = 1;
        for (int i = 0; i < l->out_ndim; i++) l->out_numel *= l->out_shape[i];
        for (int i = l->out_ndim; i < 3; i++) l->out_shape[i] = 1;
        if ((double)l->out_numel * max_batch > 1e10) s = GOPT_FAIL(GOPT_EOVERFLOW, "output too large");
    }
    if (s == GOPT_OK && own_ws) s = gopt__layer_alloc_buffers(l, 0); /* a net allocates at build */
    if (s == GOPT_OK && l->ws_floats && own_ws) {
        l->ws = gopt__aligned_alloc(l->ws_floats * sizeof(float));
        l->owns_ws = 1;
        if (!l->ws) s = GOPT_FAIL(GOPT_ENOMEM, "workspace of %zu floats", l->ws_floats);
    }
    if (s != GOPT_OK) {
        gopt_layer_destroy(l);
        gopt__params_truncate(params, registered); /* the arena as it was: the caller may retry */
        return s;
    }
    l->param_first = registered;
    l->param_count = gopt_params_count(params) - registered;
    l->created = 1;
    *out = l;
    return GOPT_OK;
}

void gopt__layer_set_ws(gopt_layer *l, float *ws) {
    if (l->owns_ws) gopt__aligned_free(l->ws);
    l->owns_ws = 0;
    l->ws = ws;
}

/* ---- queries, init, mode ------------------------------------------------------------------- */

gopt_layer_type gopt_layer_get_type(const gopt_layer *l) { return l ? l->cfg.type : GOPT_LAYER_TYPE_COUNT; }

int gopt_layer_out_shape(const gopt_layer *l, int64_t out_shape[3]) {
    if (!l || !out_shape) return 0;
    for (int i = 0; i < 3; i++) out_shape[i] = l->out_shape[i];
    return l->out_ndim;
}

int gopt__layer_bns(gopt_layer *l, gopt__bn **out3) { return l->vt->bns ? l->vt->bns(l, out3) : 0; }

double gopt__layer_flops(const gopt_layer *l) { return l->vt->flops ? l->vt->flops(l) : 0.0; }

static int init_in_range(gopt_init k) { return k >= GOPT_INIT_HE_NORMAL && k <= GOPT_INIT_ORTHOGONAL; }

gopt_status gopt__layer_init(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(spec);
    GOPT_CHECK_NULL(rng);
    if (!gopt_params_finalized(l->params)) return GOPT_FAIL(GOPT_ESTATE, "the params arena is not finalized");
    if (!init_in_range(spec->weights))
        return GOPT_FAIL(GOPT_EINVAL, "weight init = %d is not a gopt_init", (int)spec->weights);
    if (!init_in_range(spec->recurrent))
        return GOPT_FAIL(GOPT_EINVAL, "recurrent init = %d is not a gopt_init", (int)spec->recurrent);
    return l->vt->init_params ? l->vt->init_params(l, spec, rng) : GOPT_OK;
}

gopt_status gopt_layer_init_params(gopt_layer *l, gopt_init weight_init, gopt_rng *rng) {
    gopt__init_spec spec = {weight_init, GOPT_INIT_TORCH_DEFAULT, 1};
    return gopt__layer_init(l, &spec, rng);
}

gopt_status gopt_layer_set_frozen(gopt_layer *l, int on) {
    GOPT_CHECK_NULL(l);
    if (on != 0 && on != 1) return GOPT_FAIL(GOPT_EINVAL, "on = %d must be 0 or 1", on);
    for (int i = 0; i < l->param_count; i++) GOPT_TRY(gopt_params_set_frozen(l->params, l->param_first + i, on));
    l->frozen = on;
    return GOPT_OK;
}

int gopt_layer_is_frozen(const gopt_layer *l) {
    if (!l || l->param_count == 0) return 0;
    for (int i = 0; i < l->param_count; i++)
        if (!gopt_params_is_frozen(l->params, l->param_first + i)) return 0;
    return 1;
}

void gopt_layer_set_training(gopt_layer *l, int training) {
    if (l) l->training = training ? 1 : 0;
}

gopt_status gopt_layer_bn_running(gopt_layer *l, float **running_mean, float **running_var) {
    GOPT_CHECK_NULL(l);
    gopt__bn *bn[3];
    if ((l->cfg.type != GOPT_LAYER_BATCHNORM2D && l->cfg.type != GOPT_LAYER_BATCHNORM1D) ||
        gopt__layer_bns(l, bn) != 1)
        return GOPT_FAIL(GOPT_EINVAL, "layer is %s, not batchnorm2d or batchnorm1d", gopt_layer_type_name(l->cfg.type));
    if (running_mean) *running_mean = bn[0]->running_mean;
    if (running_var) *running_var = bn[0]->running_var;
    return GOPT_OK;
}

/* ---- running ------------------------------------------------------------------------------- */

gopt_status gopt__layer_forward_raw(gopt_layer *l, const float *x, int n) {
    if (l->timer && !(l->vt->flags & GOPT__VT_SELF_TIMED)) {
        double t0 = gopt__now();
        l->vt->forward(l, x, n);
        l->timer[l->cfg.type] += gopt__now() - t0;
    } else {
        l->vt->forward(l, x, n);
    }
    gopt_status s = l->vt->take_status ? l->vt->take_status(l) : GOPT_OK;
    l->last_n = s == GOPT_OK ? n : 0; /* a failed forward has no backward */
    return s;
}

gopt_status gopt__layer_backward_raw(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (l->timer && !(l->vt->flags & GOPT__VT_SELF_TIMED)) {
        double t0 = gopt__now();
        l->vt->backward(l, x, dy, dx, n);
        l->timer[GOPT_LAYER_TYPE_COUNT + l->cfg.type] += gopt__now() - t0;
    } else {
        l->vt->backward(l, x, dy, dx, n);
    }
    return l->vt->take_status ? l->vt->take_status(l) : GOPT_OK;
}

void gopt__layer_recompute_raw(gopt_layer *l, const float *x, int n) {
    double t0 = l->timer ? gopt__now() : 0.0;
    l->vt->recompute(l, x, n);
    if (l->timer) l->timer[GOPT_LAYER_TYPE_COUNT + l->cfg.type] += gopt__now() - t0;
}

static gopt_status check_tensor(const gopt_layer *l, const gopt_tensor *t, const char *what, int ndim,
                                const int64_t *shape, int want_n) {
    char want[96], got[96];
    gopt__shape_fmt(want, sizeof want, want_n > 0 ? "" : "N", ndim, shape);
    if (want_n > 0) {
        int64_t full[4] = {want_n, shape[0], shape[1], shape[2]};
        gopt__shape_fmt(want, sizeof want, "", ndim + 1, full);
    }
    if (!t->data) return GOPT_FAIL(GOPT_EINVAL, "%s: %s has no data", gopt_layer_type_name(l->cfg.type), what);
    int ok = t->ndim == ndim + 1 && t->shape[0] >= 1 && t->shape[0] <= l->max_batch &&
             (want_n <= 0 || t->shape[0] == want_n);
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i + 1] == shape[i];
    if (!ok) {
        gopt_shape_str(t, got, sizeof got);
        return GOPT_FAIL(GOPT_ESHAPE, "%s: %s %s does not match %s (batch at most %d)",
                         gopt_layer_type_name(l->cfg.type), what, got, want, l->max_batch);
    }
    return GOPT_OK;
}

gopt_status gopt_layer_forward(gopt_layer *l, const gopt_tensor *x, gopt_tensor *y) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(x);
    GOPT_CHECK_NULL(y);
    GOPT_TRY(check_tensor(l, x, "input", l->in_ndim, l->in_shape, 0));
    if (!gopt_params_finalized(l->params) && l->params && gopt_params_count(l->params) > 0)
        return GOPT_FAIL(GOPT_ESTATE, "%s: the params arena is not finalized", gopt_layer_type_name(l->cfg.type));
    int n = (int)x->shape[0];
    if (l->vt->check_input) GOPT_TRY(l->vt->check_input(l, x->data, n));
    GOPT_TRY(gopt__layer_forward_raw(l, x->data, n));
    int64_t shape[4] = {n, l->out_shape[0], l->out_shape[1], l->out_shape[2]};
    return gopt_tensor_view(l->out, l->out_ndim + 1, shape, y);
}

gopt_status gopt_layer_backward(gopt_layer *l, const gopt_tensor *x, gopt_tensor *dy, gopt_tensor *dx) {
    GOPT_CHECK_NULL(l);
    GOPT_CHECK_NULL(x);
    GOPT_CHECK_NULL(dy);
    if (l->last_n == 0) return GOPT_FAIL(GOPT_ESTATE, "%s: backward before forward", gopt_layer_type_name(l->cfg.type));
    GOPT_TRY(check_tensor(l, x, "input", l->in_ndim, l->in_shape, l->last_n));
    GOPT_TRY(check_tensor(l, dy, "dy", l->out_ndim, l->out_shape, l->last_n));
    if (dx) GOPT_TRY(check_tensor(l, dx, "dx", l->in_ndim, l->in_shape, l->last_n));
    return gopt__layer_backward_raw(l, x->data, dy->data, dx ? dx->data : NULL, l->last_n);
}

/* ---- the layers' own state in a net's state (custom layers) ------------------------------ */

static size_t own_state_size(const gopt_layer *l) { return l->vt->state_size ? l->vt->state_size(l) : 0; }

size_t gopt__layers_state_size(gopt_layer *const *layers, int n) {
    size_t size = 0;
    for (int i = 0; i < n; i++) {
        size_t s = own_state_size(layers[i]);
        if (s) size += 8 + s;
    }
    return size;
}

gopt_status gopt__layers_state_save(gopt_layer *const *layers, int n, gopt__wcur *w) {
    for (int i = 0; i < n; i++) {
        size_t s = own_state_size(layers[i]);
        if (!s) continue;
        gopt__put_u64(w, (uint64_t)s);
        if (!w->ok || (size_t)(w->end - w->p) < s) {
            w->ok = 0;
            return GOPT_FAIL(GOPT_EINVAL, "buffer too small for layer %d's state of %zu bytes", i, s);
        }
        GOPT_TRY(layers[i]->vt->state_save(layers[i], w->p, s));
        w->p += s;
    }
    return GOPT_OK;
}

gopt_status gopt__layers_state_check(gopt_layer *const *layers, int n, gopt__rcur *r) {
    for (int i = 0; i < n; i++) {
        size_t s = own_state_size(layers[i]);
        if (!s) continue;
        uint64_t have = gopt__get_u64(r);
        if (!r->ok)
            return GOPT_FAIL(GOPT_EFORMAT, "net state: truncated before the state of layer %d (%s)", i,
                             gopt_layer_type_name(layers[i]->cfg.type));
        if (have != (uint64_t)s || (size_t)(r->end - r->p) < s)
            return GOPT_FAIL(GOPT_EFORMAT, "net state: layer %d (%s) has %llu bytes of state in the blob (%zu left), "
                             "the layer needs %zu", i, gopt_layer_type_name(layers[i]->cfg.type),
                             (unsigned long long)have, (size_t)(r->end - r->p), s);
        r->p += s;
    }
    return GOPT_OK;
}

gopt_status gopt__layers_state_load(gopt_layer *const *layers, int n, gopt__rcur *r) {
    for (int i = 0; i < n; i++) {
        size_t s = own_state_size(layers[i]);
        if (!s) continue;
        (void)gopt__get_u64(r); /* checked */
        GOPT_TRY(layers[i]->vt->state_load(layers[i], r->p, s));
        r->p += s;
    }
    return GOPT_OK;
}
