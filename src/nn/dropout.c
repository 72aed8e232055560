/* dropout (torch.nn.Dropout): any shape -> same. Training: keep each element with
 * probability 1-p and scale it by 1/(1-p), the mask drawn from the layer's own gopt_rng
 * (cfg.seed), serially: one deterministic stream; eval (or p = 0): identity. */
#include "core/common.h"
#include "nn/layer.h"

typedef struct dropout_state {
    uint8_t *mask; /* max_batch * numel: 1 kept */
    gopt_rng rng;
} dropout_state;

static gopt_status dropout_setup(gopt_layer *l, const char *prefix) {
    const float p = l->cfg.p;
    if (!(p >= 0.0f && p <= 1.0f)) return GOPT_FAIL(GOPT_EINVAL, "dropout: p = %g must be in [0, 1]", p);
    GOPT_TRY(gopt__layer_state(l, sizeof(dropout_state)));
    gopt_rng_seed(&((dropout_state *)l->st)->rng, l->cfg.seed);
    l->out_ndim = l->in_ndim;
    memcpy(l->out_shape, l->in_shape, sizeof l->out_shape);
    return GOPT_OK;
}

static gopt_status dropout_alloc(gopt_layer *l, int lean) {
    dropout_state *st = l->st;
    size_t n = (size_t)l->max_batch * (size_t)l->out_numel;
    if (!st->mask) st->mask = gopt__aligned_alloc(n); /* kept by a failed build */
    return st->mask ? GOPT_OK : GOPT_FAIL(GOPT_ENOMEM, "dropout mask of %zu bytes", n);
}

static void dropout_free(gopt_layer *l) {
    if (l->st) gopt__aligned_free(((dropout_state *)l->st)->mask);
}

static float keep_scale(const gopt_layer *l) {
    const float p = l->cfg.p;
    return (!l->training || p == 0.0f) ? 1.0f : (p < 1.0f ? 1.0f / (1.0f - p) : 0.0f);
}

static void dropout_forward(gopt_layer *l, const float *x, int n) {
    dropout_state *st = l->st;
    int64_t total = (int64_t)n * l->in_numel;
    float p = l->cfg.p;
    if (!l->training || p == 0.0f) {
        memcpy(l->out, x, sizeof(float) * (size_t)total);
        memset(st->mask, 1, (size_t)total);
        return;
    }
    float scale = keep_scale(l);
    for (int64_t i = 0; i < total; i++) { /* serial: one deterministic stream */
        uint8_t keep = gopt_rng_uniform(&st->rng) >= p;
        st->mask[i] = keep;
        l->out[i] = keep ? x[i] * scale : 0.0f;
    }
}

/* the stored mask again, no new draws */
static void dropout_recompute(gopt_layer *l, const float *x, int n) {
    const uint8_t *mask = ((dropout_state *)l->st)->mask;
    int64_t total = (int64_t)n * l->in_numel;
    float scale = keep_scale(l);
    for (int64_t i = 0; i < total; i++) l->out[i] = mask[i] ? x[i] * scale : 0.0f;
}

static void dropout_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    if (!dx) return;
    const uint8_t *mask = ((dropout_state *)l->st)->mask;
    int64_t total = (int64_t)n * l->in_numel;
    float scale = keep_scale(l);
    for (int64_t i = 0; i < total; i++) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
}

static gopt_rng *dropout_rng(gopt_layer *l) { return &((dropout_state *)l->st)->rng; }

static const gopt__layer_vt dropout_vt = {
    .type = GOPT_LAYER_DROPOUT,
    .setup = dropout_setup,
    .alloc = dropout_alloc,
    .free = dropout_free,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .recompute = dropout_recompute,
    .rng = dropout_rng,
};

const gopt__layer_vt *gopt__dropout_vtable(void) { return &dropout_vt; }
