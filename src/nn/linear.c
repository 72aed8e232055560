/* linear (torch.nn.Linear): y = x W^T + b, W (out,in), b (out); (N,in) -> (N,out), or
 * time-distributed (N,T,in) -> (N,T,out): the N*T rows are one SGEMM.
 * Parameters "<prefix>.weight", "<prefix>.bias"; init: weight as asked (PyTorch's default
 * kaiming-uniform a=sqrt(5)), bias U(+-1/sqrt(in)). */
#include "core/blas.h"
#include "core/common.h"
#include "nn/layer.h"

typedef struct linear_state {
    int w_index, b_index; /* b_index -1 without bias */
} linear_state;

static gopt_status linear_setup(gopt_layer *l, const char *prefix) {
    const gopt_layer_config *cfg = &l->cfg;
    if (cfg->in_features < 1 || cfg->out_features < 1)
        return GOPT_FAIL(GOPT_EINVAL, "linear: in=%d out=%d must be >= 1", cfg->in_features, cfg->out_features);
    if (l->in_ndim > 2 || l->in_shape[l->in_ndim - 1] != cfg->in_features) {
        char s[96];
        gopt__shape_fmt(s, sizeof s, "N", l->in_ndim, l->in_shape);
        return GOPT_FAIL(GOPT_ESHAPE, "linear: input %s does not match (N,%d) or (N,T,%d)", s, cfg->in_features,
                         cfg->in_features);
    }
    if ((int64_t)l->max_batch * (l->in_numel / cfg->in_features) > INT32_MAX)
        return GOPT_FAIL(GOPT_EOVERFLOW, "linear: max_batch %d x %lld time steps exceed 2^31 rows", l->max_batch,
                         (long long)(l->in_numel / cfg->in_features));
    GOPT_TRY(gopt__layer_state(l, sizeof(linear_state)));
    linear_state *st = l->st;
    l->out_ndim = l->in_ndim;
    l->out_shape[0] = l->in_shape[0]; /* T when time-distributed */
    l->out_shape[l->in_ndim - 1] = cfg->out_features;
    int64_t ws[2] = {cfg->out_features, cfg->in_features};
    GOPT_TRY(gopt__add_param(l, prefix, "weight", 2, ws, GOPT_TAG_WEIGHT, &st->w_index));
    st->b_index = -1;
    if (cfg->bias) {
        int64_t bs[1] = {cfg->out_features};
        GOPT_TRY(gopt__add_param(l, prefix, "bias", 1, bs, GOPT_TAG_BIAS, &st->b_index));
    }
    return GOPT_OK;
}

static gopt_status linear_init(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng) {
    const linear_state *st = l->st;
    gopt_param_info info;
    GOPT_TRY(gopt_params_info(l->params, st->w_index, &info));
    GOPT_TRY(gopt_tensor_init(&info.value, spec->weights, rng));
    if (st->b_index >= 0) {
        GOPT_TRY(gopt_params_info(l->params, st->b_index, &info));
        if (!gopt__init_torch_bias(spec)) return gopt_tensor_fill(&info.value, 0.0f);
        float bound = 1.0f / sqrtf((float)l->cfg.in_features);
        GOPT_TRY(gopt_tensor_fill_uniform(&info.value, -bound, bound, rng));
    }
    return GOPT_OK;
}

/* rows of the SGEMM: samples x time steps */
static int rows_of(const gopt_layer *l, int n) { return n * (int)(l->in_numel / l->cfg.in_features); }

static void linear_forward(gopt_layer *l, const float *x, int n) {
    const linear_state *st = l->st;
    n = rows_of(l, n);
    const int in = l->cfg.in_features, out = l->cfg.out_features;
    const float *w = gopt__pv(l, st->w_index);
    gopt__sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, l->out, out);
    if (st->b_index >= 0) {
        const float *b = gopt__pv(l, st->b_index);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) l->out[(int64_t)i * out + o] += b[o];
    }
}

static void linear_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    const linear_state *st = l->st;
    n = rows_of(l, n);
    const int in = l->cfg.in_features, out = l->cfg.out_features;
    float *dw = gopt__pg_train(l, st->w_index), *db = gopt__pg_train(l, st->b_index); /* NULL: frozen */
    if (dw) gopt__sgemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (db) {
        for (int o = 0; o < out; o++) {
            double acc = 0.0;
            for (int i = 0; i < n; i++) acc += dy[(int64_t)i * out + o];
            db[o] += (float)acc;
        }
    }
    if (dx) gopt__sgemm(0, 0, n, in, out, 1.0f, dy, out, gopt__pv(l, st->w_index), in, 0.0f, dx, in);
}

static double linear_flops(const gopt_layer *l) {
    return 2.0 * (double)rows_of(l, 1) * l->cfg.in_features * l->cfg.out_features;
}

static const gopt__layer_vt linear_vt = {
    .type = GOPT_LAYER_LINEAR,
    .setup = linear_setup,
    .init_params = linear_init,
    .forward = linear_forward,
    .backward = linear_backward,
    .recompute = linear_forward,
    .flops = linear_flops,
};

const gopt__layer_vt *gopt__linear_vtable(void) { return &linear_vt; }
