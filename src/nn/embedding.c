/* embedding (torch.nn.Embedding, https://pytorch.org/docs/1.13/generated/torch.nn.Embedding.html):
 * per-sample input (T) of token ids held as floats that are exact integers in [0, V),
 * output (T,E): y[t] = W[id_t], W (V,E) "<prefix>.weight", init N(0,1) as PyTorch.
 * Backward: dW[id_t] += dy[t] in order (repeated ids accumulate); ids have no gradient, so
 * dx is neither needed nor written. check_input refuses an id that is not an integer or is
 * outside [0, V) (GOPT_EINVAL naming it and its position) before anything runs; forward
 * itself never reads outside W. */
#include "core/common.h"
#include "nn/layer.h"

typedef struct embedding_state {
    int w_index;
} embedding_state;

/* ids must stay exact in a float */
#define MAX_EMBEDDINGS (1 << 24)

static gopt_status embedding_setup(gopt_layer *l, const char *prefix) {
    const int V = l->cfg.in_features, E = l->cfg.out_features;
    if (V < 1 || V > MAX_EMBEDDINGS || E < 1)
        return GOPT_FAIL(GOPT_EINVAL, "embedding: num_embeddings=%d (1..%d) embedding_dim=%d (>= 1)", V, MAX_EMBEDDINGS,
                         E);
    if (l->in_ndim != 1) {
        char s[96];
        gopt__shape_fmt(s, sizeof s, "N", l->in_ndim, l->in_shape);
        return GOPT_FAIL(GOPT_ESHAPE, "embedding: input %s must be token ids (N,T)", s);
    }
    GOPT_TRY(gopt__layer_state(l, sizeof(embedding_state)));
    embedding_state *st = l->st;
    l->out_ndim = 2;
    l->out_shape[0] = l->in_shape[0];
    l->out_shape[1] = E;
    int64_t ws[2] = {V, E};
    return gopt__add_param(l, prefix, "weight", 2, ws, GOPT_TAG_WEIGHT, &st->w_index);
}

static gopt_status embedding_init(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng) {
    gopt_param_info info;
    GOPT_TRY(gopt_params_info(l->params, ((embedding_state *)l->st)->w_index, &info));
    if (!spec->build && spec->weights != GOPT_INIT_TORCH_DEFAULT) return gopt_tensor_init(&info.value, spec->weights, rng);
    return gopt_tensor_fill_normal(&info.value, 0.0f, 1.0f, rng); /* PyTorch's init (the layer's build default) */
}

static int valid_id(float v, int V) { return v >= 0.0f && v < (float)V && v == floorf(v); }

static gopt_status embedding_check(const gopt_layer *l, const float *x, int n) {
    if (!x) return GOPT_OK; /* only a net's first layer sees ids */
    const int64_t T = l->in_shape[0];
    const int V = l->cfg.in_features;
    for (int64_t i = 0; i < (int64_t)n * T; i++)
        if (!valid_id(x[i], V))
            return GOPT_FAIL(GOPT_EINVAL, "embedding: token id %g at (sample %lld, step %lld) is %s [0, %d)",
                             (double)x[i], (long long)(i / T), (long long)(i % T),
                             x[i] == x[i] && x[i] == floorf(x[i]) ? "outside" : "not an integer in", V);
    return GOPT_OK;
}

static void embedding_forward(gopt_layer *l, const float *x, int n) {
    const int V = l->cfg.in_features, E = l->cfg.out_features;
    const float *w = gopt__pv(l, ((embedding_state *)l->st)->w_index);
    const int64_t rows = (int64_t)n * l->in_shape[0];
    for (int64_t i = 0; i < rows; i++) {
        float *y = l->out + i * E;
        if (valid_id(x[i], V)) /* always, after check_input; never read outside W */
            memcpy(y, w + (int64_t)x[i] * E, sizeof(float) * (size_t)E);
        else
            memset(y, 0, sizeof(float) * (size_t)E);
    }
}

static void embedding_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    const int V = l->cfg.in_features, E = l->cfg.out_features;
    float *dw = gopt__pg_train(l, ((embedding_state *)l->st)->w_index);
    if (!dw) return; /* frozen: ids have no gradient, so nothing else to do */
    const int64_t rows = (int64_t)n * l->in_shape[0];
    for (int64_t i = 0; i < rows; i++) { /* serial, in order: repeated ids accumulate deterministically */
        if (!valid_id(x[i], V)) continue;
        float *d = dw + (int64_t)x[i] * E;
        const float *g = dy + i * E;
        for (int e = 0; e < E; e++) d[e] += g[e];
    }
}

static const gopt__layer_vt embedding_vt = {
    .type = GOPT_LAYER_EMBEDDING,
    .setup = embedding_setup,
    .init_params = embedding_init,
    .check_input = embedding_check,
    .forward = embedding_forward,
    .backward = embedding_backward,
    .recompute = embedding_forward,
};

const gopt__layer_vt *gopt__embedding_vtable(void) { return &embedding_vt; }
