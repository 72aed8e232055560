#define _POSIX_C_SOURCE 200809L
/* Recurrent layers rnn, lstm, gru (see gradopt/layer.h and nn/recurrent.h): setup, the
 * forward and backpropagation-through-time drivers, and the recurrent state API.
 *
 * Per layer and call, the BLAS work is: one SGEMM for the input projections of all T steps
 * (T*N x I)(I x G*H); per step one SGEMM (N x H)(H x G*H) on the previous state; in backward
 * per step one SGEMM (N x G*H)(G*H x H) for the recurrent gradient, then one SGEMM each for
 * dW_hh (all dGates with all previous states), dW_ih (all dGates with all inputs) and the
 * input gradient, and one SGEMV per bias. Everything else is one fused pass per step
 * (recurrent_kernels.c). No BLAS call is made from inside an OpenMP region. */
#include <stdio.h>
#include <stdlib.h>

#include "core/blas.h"
#include "core/common.h"
#include "nn/recurrent.h"

#define RNN_MAX_LAYERS 64

typedef struct gopt__rnn_layer {
    int w_ih, w_hh, b_ih, b_hh; /* arena indices; b_* -1 without bias */
    int in;                     /* input features: I for layer 0, H after */
    float *gates;               /* (T,N,G*H): x projections, then activated gates, then dGates */
    float *hs;                  /* (T+1,N,H): h0, h_0 .. h_{T-1} */
    float *cs, *tc;             /* lstm: (T+1,N,H) c0, c_0..; (T,N,H) tanh(c_t) */
    float *hn;                  /* gru: (T,N,H) W_hn h_{t-1} + b_hn */
    float *drop;                /* dropout on this layer's output (all but the last): (T,N,H) */
    uint8_t *mask;              /* (T,N,H) */
    float *bias;                /* (G*H): rnn/lstm b_ih + b_hh, gru b_ih; zeros without bias */
    float *bias_h;              /* gru (3H): b_hh; zeros without bias */
} gopt__rnn_layer;

struct gopt__rnn {
    int L, I, H, G, T, max_n, has_bias, relu, carry;
    float p;
    gopt__rnn_layer *layers; /* L */
    float *xt;               /* (T,N,I) the input, time-major */
    float *gh;               /* gru: (T,N,3H): step scratch in forward, dGh in backward */
    float *dbuf[2];          /* (T,N,max(I,H)) output / input gradients, time-major */
    float *dc;               /* lstm (N,H) running dL/dc */
    float *colsum;           /* (G*H) bias gradient scratch */
    float *ones;             /* (T*N) */
    float *h0, *c0;          /* (L,N,H) initial states */
    int state_n;             /* batch of h0/c0; 0: zeros */
    int state_carried;       /* 1: h0/c0 are the last forward's final states (carry_state) */
    float *hN, *cN;          /* (L,N,H) final states of the last forward */
    float *dhN, *dcN;        /* (L,N,H) upstream gradients of the final states */
    int dstate_set;          /* dhN/dcN hold values for the next backward */
    float *dh0, *dc0;        /* (L,N,H) gradients of the initial states (last backward) */
    int fwd_n, bwd_n;        /* batch of the last forward / backward; 0 before */
    int fwd_dropped;         /* the last forward applied dropout between layers */
    gopt_rng rng;            /* dropout masks */
    int fused;               /* the fused loop of recurrent_seq.c (AVX2+FMA; GOPT_RNN_GENERIC=1 turns it off) */
    float *packed;           /* its packed W_hh panels */
};

static const char *kind_name(const gopt_layer *l) { return gopt_layer_type_name(l->cfg.type); }

/* ---- config helpers ----------------------------------------------------------------------- */

static gopt_layer_config rec_config(gopt_layer_type type, int input_size, int hidden_size, int num_layers, int bias,
                                    float dropout, uint64_t seed) {
    gopt_layer_config c = gopt_layer_config_default(type);
    c.in_features = input_size;
    c.out_features = hidden_size;
    c.num_layers = num_layers;
    c.bias = bias;
    c.p = dropout;
    c.seed = seed;
    return c;
}
gopt_layer_config gopt_layer_rnn(int input_size, int hidden_size, int num_layers, int nonlinearity, int bias,
                                 float dropout, uint64_t seed) {
    gopt_layer_config c = rec_config(GOPT_LAYER_RNN, input_size, hidden_size, num_layers, bias, dropout, seed);
    c.nonlinearity = nonlinearity;
    return c;
}
gopt_layer_config gopt_layer_lstm(int input_size, int hidden_size, int num_layers, int bias, float dropout,
                                  uint64_t seed) {
    return rec_config(GOPT_LAYER_LSTM, input_size, hidden_size, num_layers, bias, dropout, seed);
}
gopt_layer_config gopt_layer_gru(int input_size, int hidden_size, int num_layers, int bias, float dropout,
                                 uint64_t seed) {
    return rec_config(GOPT_LAYER_GRU, input_size, hidden_size, num_layers, bias, dropout, seed);
}

/* ---- the fused loop's availability --------------------------------------------------------- */

int gopt__rnn_seq_available(void) {
#if defined(__GNUC__) && defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

size_t gopt__rnn_seq_packed_floats(int G, int H) {
    size_t panels = (size_t)(H + 15) / 16 * 16; /* H rounded up to whole 16-wide panels */
    return (size_t)G * panels * (size_t)H;  /* forward (G*panels x H) and backward (panels x G*H) alike */
}

/* ---- setup -------------------------------------------------------------------------------- */

static float *alloc_floats(size_t n, const char *what, gopt_status *s) {
    if (*s != GOPT_OK) return NULL;
    float *p = gopt__aligned_alloc((n ? n : 1) * sizeof(float));
    if (!p) *s = GOPT_FAIL(GOPT_ENOMEM, "recurrent layer: %s of %zu floats", what, n);
    return p;
}

static gopt_status add_param(gopt_layer *l, const char *prefix, const char *what, int layer, int ndim,
                             const int64_t *shape, gopt_param_tag tag, int *index) {
    char name[GOPT_PARAM_NAME_MAX];
    int len = snprintf(name, sizeof name, "%s.%s_l%d", prefix, what, layer);
    if (len < 0 || len >= (int)sizeof name)
        return GOPT_FAIL(GOPT_EINVAL, "parameter name '%s.%s_l%d' longer than %d bytes", prefix, what, layer,
                         GOPT_PARAM_NAME_MAX - 1);
    return gopt_params_add(l->params, name, ndim, shape, tag, index);
}

gopt_status gopt__rnn_setup(gopt_layer *l, const char *prefix) {
    const gopt_layer_config *cfg = &l->cfg;
    const char *name = kind_name(l);
    if (cfg->in_features < 1 || cfg->out_features < 1 || cfg->in_features > (1 << 20) || cfg->out_features > (1 << 20))
        return GOPT_FAIL(GOPT_EINVAL, "%s: input_size=%d hidden_size=%d must be 1..2^20", name, cfg->in_features,
                         cfg->out_features);
    if (cfg->num_layers < 1 || cfg->num_layers > RNN_MAX_LAYERS)
        return GOPT_FAIL(GOPT_EINVAL, "%s: num_layers=%d must be 1..%d", name, cfg->num_layers, RNN_MAX_LAYERS);
    if (cfg->bias != 0 && cfg->bias != 1) return GOPT_FAIL(GOPT_EINVAL, "%s: bias=%d must be 0 or 1", name, cfg->bias);
    if (!(cfg->p >= 0.0f && cfg->p <= 1.0f))
        return GOPT_FAIL(GOPT_EINVAL, "%s: dropout p = %g must be in [0, 1]", name, cfg->p);
    if (cfg->carry_state != 0 && cfg->carry_state != 1)
        return GOPT_FAIL(GOPT_EINVAL, "%s: carry_state=%d must be 0 or 1", name, cfg->carry_state);
    if (cfg->type == GOPT_LAYER_RNN && cfg->nonlinearity != GOPT_RNN_TANH && cfg->nonlinearity != GOPT_RNN_RELU)
        return GOPT_FAIL(GOPT_EINVAL, "rnn: nonlinearity=%d must be GOPT_RNN_TANH (0) or GOPT_RNN_RELU (1)",
                         cfg->nonlinearity);
    if (l->in_ndim != 2 || l->in_shape[1] != cfg->in_features)
        return GOPT_FAIL(GOPT_ESHAPE, "%s: per-sample input needs shape (T,%d) (batch first: (N,T,%d)), got ndim %d "
                         "(%lld,%lld,%lld)", name, cfg->in_features, cfg->in_features, l->in_ndim,
                         (long long)l->in_shape[0], (long long)l->in_shape[1], (long long)l->in_shape[2]);
    GOPT_TRY(gopt__layer_state(l, sizeof(gopt__rnn)));
    gopt__rnn *r = l->st;
        r->L = cfg->num_layers;
    r->I = cfg->in_features;
    r->H = cfg->out_features;
    r->G = cfg->type == GOPT_LAYER_LSTM ? 4 : cfg->type == GOPT_LAYER_GRU ? 3 : 1;
    r->T = (int)l->in_shape[0];
    r->max_n = l->max_batch;
    r->has_bias = cfg->bias;
    r->relu = cfg->type == GOPT_LAYER_RNN && cfg->nonlinearity == GOPT_RNN_RELU;
    r->carry = cfg->carry_state;
    r->p = cfg->p;
    gopt_rng_seed(&r->rng, cfg->seed);
    l->out_ndim = 2;
    l->out_shape[0] = r->T;
    l->out_shape[1] = r->H;
    const int64_t L = r->L, H = r->H, GH = (int64_t)r->G * H, TN = (int64_t)r->T * r->max_n, N = r->max_n;
    if ((double)TN * (double)(GH > r->I ? GH : r->I) > (double)INT32_MAX) /* BLAS sizes are int */
        return GOPT_FAIL(GOPT_EOVERFLOW, "%s: T*max_batch*max(%lld,%d) floats per buffer exceed 2^31", name,
                         (long long)GH, r->I);
    r->layers = gopt__calloc((size_t)L, sizeof *r->layers);
    if (!r->layers) return GOPT_FAIL(GOPT_ENOMEM, "%s layers", name);
    for (int k = 0; k < r->L; k++) {
        gopt__rnn_layer *ly = &r->layers[k];
        ly->in = k == 0 ? r->I : r->H;
        int64_t sih[2] = {GH, ly->in}, shh[2] = {GH, H}, sb[1] = {GH};
        GOPT_TRY(add_param(l, prefix, "weight_ih", k, 2, sih, GOPT_TAG_WEIGHT, &ly->w_ih));
        GOPT_TRY(add_param(l, prefix, "weight_hh", k, 2, shh, GOPT_TAG_WEIGHT, &ly->w_hh));
        ly->b_ih = ly->b_hh = -1;
        if (r->has_bias) {
            GOPT_TRY(add_param(l, prefix, "bias_ih", k, 1, sb, GOPT_TAG_BIAS, &ly->b_ih));
            GOPT_TRY(add_param(l, prefix, "bias_hh", k, 1, sb, GOPT_TAG_BIAS, &ly->b_hh));
        }
    }
    gopt_status s = GOPT_OK;
    for (int k = 0; k < r->L; k++) {
        gopt__rnn_layer *ly = &r->layers[k];
        ly->gates = alloc_floats((size_t)(TN * GH), "gates", &s);
        ly->hs = alloc_floats((size_t)(TN * H + N * H), "hidden states", &s);
        if (r->G == 4) {
            ly->cs = alloc_floats((size_t)(TN * H + N * H), "cell states", &s);
            ly->tc = alloc_floats((size_t)(TN * H), "tanh of the cell states", &s);
        }
        if (r->G == 3) ly->hn = alloc_floats((size_t)(TN * H), "gru W_hn h", &s);
        if (k + 1 < r->L && r->p > 0.0f) {
            ly->drop = alloc_floats((size_t)(TN * H), "dropout output", &s);
            if (s == GOPT_OK && !(ly->mask = gopt__aligned_alloc((size_t)(TN * H))))
                s = GOPT_FAIL(GOPT_ENOMEM, "%s: dropout mask of %lld bytes", name, (long long)(TN * H));
        }
        ly->bias = alloc_floats((size_t)GH, "bias", &s);
        if (r->G == 3) ly->bias_h = alloc_floats((size_t)GH, "bias", &s);
    }
    int64_t feat = r->I > r->H ? r->I : r->H;
    r->xt = alloc_floats((size_t)(TN * r->I), "time-major input", &s);
    if (r->G == 3) r->gh = alloc_floats((size_t)(TN * GH), "gru hidden projections", &s);
    r->dbuf[0] = alloc_floats((size_t)(TN * feat), "gradient buffer", &s);
    r->dbuf[1] = alloc_floats((size_t)(TN * feat), "gradient buffer", &s);
    if (r->G == 4) r->dc = alloc_floats((size_t)(N * H), "cell gradient", &s);
    r->colsum = alloc_floats((size_t)GH, "bias gradient", &s);
    const char *generic = getenv("GOPT_RNN_GENERIC");
    r->fused = gopt__rnn_seq_available() && !(generic && generic[0] == '1');
    if (r->fused) r->packed = alloc_floats(gopt__rnn_seq_packed_floats(r->G, r->H), "packed W_hh", &s);
    r->ones = alloc_floats((size_t)TN, "ones", &s);
    r->h0 = alloc_floats((size_t)(L * N * H), "h0", &s);
    r->hN = alloc_floats((size_t)(L * N * H), "h_n", &s);
    r->dhN = alloc_floats((size_t)(L * N * H), "dh_n", &s);
    r->dh0 = alloc_floats((size_t)(L * N * H), "dh0", &s);
    if (r->G == 4) {
        r->c0 = alloc_floats((size_t)(L * N * H), "c0", &s);
        r->cN = alloc_floats((size_t)(L * N * H), "c_n", &s);
        r->dcN = alloc_floats((size_t)(L * N * H), "dc_n", &s);
        r->dc0 = alloc_floats((size_t)(L * N * H), "dc0", &s);
    }
    if (s != GOPT_OK) return s;
    for (int64_t i = 0; i < TN; i++) r->ones[i] = 1.0f;
    return GOPT_OK;
}

void gopt__rnn_free(gopt_layer *l) {
    gopt__rnn *r = l ? l->st : NULL;
    if (!r) return;
    for (int k = 0; r->layers && k < r->L; k++) {
        gopt__rnn_layer *ly = &r->layers[k];
        gopt__aligned_free(ly->gates);
        gopt__aligned_free(ly->hs);
        gopt__aligned_free(ly->cs);
        gopt__aligned_free(ly->tc);
        gopt__aligned_free(ly->hn);
        gopt__aligned_free(ly->drop);
        gopt__aligned_free(ly->mask);
        gopt__aligned_free(ly->bias);
        gopt__aligned_free(ly->bias_h);
    }
    gopt__free(r->layers);
    float *bufs[] = {r->xt, r->gh,  r->dbuf[0], r->dbuf[1], r->dc,  r->colsum, r->ones, r->h0,
                     r->c0, r->hN,  r->cN,      r->dhN,     r->dcN, r->dh0,    r->dc0,  r->packed};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) gopt__aligned_free(bufs[i]);
}

/* Each gate's block of a (G*H, cols) weight, rows [g*H, (g+1)*H), as its own (H, cols)
 * matrix: a gate's fan-in and orthogonality are the block's, as Keras' recurrent_initializer
 * and the usual torch.nn.init loops over weight_hh.chunk(G) do. */
static gopt_status init_gate_blocks(gopt_layer *l, int index, int G, int64_t H, gopt_init kind, gopt_rng *rng) {
    gopt_param_info info;
    GOPT_TRY(gopt_params_info(l->params, index, &info));
    const int64_t cols = info.value.shape[1], shape[2] = {H, cols};
    for (int g = 0; g < G; g++) {
        gopt_tensor block;
        GOPT_TRY(gopt_tensor_view(info.value.data + (int64_t)g * H * cols, 2, shape, &block));
        GOPT_TRY(gopt_tensor_init(&block, kind, rng));
    }
    return GOPT_OK;
}

gopt_status gopt__rnn_init_params(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng) {
    gopt__rnn *r = l->st;
    if (!spec->build && !(spec->weights == GOPT_INIT_TORCH_DEFAULT && spec->recurrent == GOPT_INIT_TORCH_DEFAULT)) {
        for (int k = 0; k < r->L; k++) {
            const gopt__rnn_layer *ly = &r->layers[k];
            GOPT_TRY(init_gate_blocks(l, ly->w_ih, r->G, r->H, spec->weights, rng));
            GOPT_TRY(init_gate_blocks(l, ly->w_hh, r->G, r->H, spec->recurrent, rng));
            const int bias[2] = {ly->b_ih, ly->b_hh};
            for (int j = 0; j < 2; j++) {
                if (bias[j] < 0) continue;
                gopt_param_info info;
                GOPT_TRY(gopt_params_info(l->params, bias[j], &info));
                GOPT_TRY(gopt_tensor_fill(&info.value, 0.0f));
            }
        }
        return GOPT_OK;
    }
    /* PyTorch initialises every recurrent parameter U(-1/sqrt(H), 1/sqrt(H)) */
    float bound = 1.0f / sqrtf((float)r->H);
    for (int k = 0; k < r->L; k++) {
        const int idx[4] = {r->layers[k].w_ih, r->layers[k].w_hh, r->layers[k].b_ih, r->layers[k].b_hh};
        for (int j = 0; j < 4; j++) {
            if (idx[j] < 0) continue;
            gopt_param_info info;
            GOPT_TRY(gopt_params_info(l->params, idx[j], &info));
            GOPT_TRY(gopt_tensor_fill_uniform(&info.value, -bound, bound, rng));
        }
    }
    return GOPT_OK;
}

double gopt__rnn_flops(const gopt_layer *l) {
    const gopt__rnn *r = l->st;
    double f = 0.0, GH = (double)r->G * r->H;
    for (int k = 0; k < r->L; k++) f += 2.0 * r->T * GH * (r->layers[k].in + r->H);
    return f;
}

gopt_status gopt__rnn_check_forward(const gopt_layer *l, const float *x, int n) {
    (void)x;
    const gopt__rnn *r = l->st;
    if (r->state_n && !r->state_carried && r->state_n != n)
        return GOPT_FAIL(GOPT_ESHAPE, "%s: the initial state set is (%d,%d,%d) but the input batch is %d",
                         kind_name(l), r->L, r->state_n, r->H, n);
    return GOPT_OK;
}

/* ---- forward ------------------------------------------------------------------------------ */

static void prepare_bias(const gopt_layer *l, gopt__rnn_layer *ly) {
    const gopt__rnn *r = l->st;
    const int GH = r->G * r->H;
    if (!r->has_bias) {
        memset(ly->bias, 0, sizeof(float) * (size_t)GH);
        if (ly->bias_h) memset(ly->bias_h, 0, sizeof(float) * (size_t)GH);
        return;
    }
    const float *bi = gopt__pv(l, ly->b_ih), *bh = gopt__pv(l, ly->b_hh);
    if (r->G == 3) { /* gru: b_hn sits inside r * (W_hn h + b_hn), so the two stay apart */
        memcpy(ly->bias, bi, sizeof(float) * (size_t)GH);
        memcpy(ly->bias_h, bh, sizeof(float) * (size_t)GH);
    } else {
        for (int j = 0; j < GH; j++) ly->bias[j] = bi[j] + bh[j];
    }
}

/* One step with BLAS (the path without AVX2/FMA): gates[t] += h_{t-1} W_hh^T (gru: into
 * the scratch gh), then the cell pass over all rows. */
static void step_forward(gopt__rnn *r, gopt__rnn_layer *ly, const float *w_hh, int t, int n, float *out) {
    const int H = r->H, G = r->G, GH = G * H;
    const int64_t NH = (int64_t)n * H;
    gopt__rnn_step s = {0};
    s.N = n;
    s.H = H;
    s.gates = ly->gates + (int64_t)t * n * GH;
    s.bias = ly->bias;
    s.bias_h = ly->bias_h;
    s.h_prev = ly->hs + t * NH;
    s.h = ly->hs + (t + 1) * NH;
    s.relu = r->relu;
    if (out) {
        s.out = out + (int64_t)t * H;
        s.out_ld = (int64_t)r->T * H;
    }
    if (G == 3) {
        s.gh = r->gh;
        s.hn = ly->hn + t * NH;
        gopt__sgemm(0, 1, n, GH, H, 1.0f, s.h_prev, H, w_hh, H, 0.0f, r->gh, GH);
        gopt__gru_step_forward(&s);
        return;
    }
    gopt__sgemm(0, 1, n, GH, H, 1.0f, s.h_prev, H, w_hh, H, 1.0f, s.gates, GH);
    if (G == 4) {
        s.c_prev = ly->cs + t * NH;
        s.c = ly->cs + (t + 1) * NH;
        s.tc = ly->tc + t * NH;
        gopt__lstm_step_forward(&s);
    } else {
        gopt__rnn_step_forward(&s);
    }
}

/* One backward step with BLAS: the cell pass, then dh_{t-1} (t = 0: dh0) += dGates_t W_hh. */
static void step_backward(gopt__rnn *r, gopt__rnn_layer *ly, const float *w_hh, int t, int n, float *dH,
                          float *dh0) {
    const int H = r->H, G = r->G, GH = G * H;
    const int64_t NH = (int64_t)n * H;
    gopt__rnn_step s = {0};
    s.N = n;
    s.H = H;
    s.gates = ly->gates + (int64_t)t * n * GH;
    s.h_prev = ly->hs + t * NH;
    s.h = ly->hs + (t + 1) * NH;
    s.dh = dH + t * NH;
    s.relu = r->relu;
    float *dprev = t > 0 ? dH + (t - 1) * NH : dh0;
    float beta = t > 0 ? 1.0f : 0.0f;
    float *dg = s.gates;
    if (G == 4) {
        s.c_prev = ly->cs + t * NH;
        s.tc = ly->tc + t * NH;
        s.dc = r->dc;
        gopt__lstm_step_backward(&s);
    } else if (G == 3) {
        s.gh = dg = r->gh + (int64_t)t * n * GH;
        s.hn = ly->hn + t * NH;
        s.dh_prev = dprev;
        gopt__gru_step_backward(&s);
        beta = 1.0f; /* dh0 holds dh z already */
    } else {
        gopt__rnn_step_backward(&s);
    }
    gopt__sgemm(0, 0, n, H, GH, 1.0f, dg, GH, w_hh, H, beta, dprev, H);
}

void gopt__rnn_forward(gopt_layer *l, const float *x, int n) {
    gopt__rnn *r = l->st;
    const int T = r->T, H = r->H, G = r->G, GH = G * H, TN = T * n;
    const int64_t NH = (int64_t)n * H;
    /* initial states: set or carried ones of this batch, else zeros */
    int have_state = r->state_n == n;
    gopt__swap_axes(r->xt, x, n, T, r->I);
    const float *input = r->xt;
    r->fwd_dropped = l->training && r->p > 0.0f && r->L > 1;
    for (int k = 0; k < r->L; k++) {
        gopt__rnn_layer *ly = &r->layers[k];
        const float *w_ih = gopt__pv(l, ly->w_ih), *w_hh = gopt__pv(l, ly->w_hh);
        prepare_bias(l, ly);
        /* all steps' input projections: one GEMM (T*N x in)(in x G*H) */
        gopt__sgemm(0, 1, TN, GH, ly->in, 1.0f, input, ly->in, w_ih, ly->in, 0.0f, ly->gates, GH);
        if (have_state) {
            memcpy(ly->hs, r->h0 + k * NH, sizeof(float) * (size_t)NH);
            if (G == 4) memcpy(ly->cs, r->c0 + k * NH, sizeof(float) * (size_t)NH);
        } else {
            memset(ly->hs, 0, sizeof(float) * (size_t)NH);
            if (G == 4) memset(ly->cs, 0, sizeof(float) * (size_t)NH);
        }
        const int last = k == r->L - 1;
        if (r->fused) {
            gopt__rnn_seq q = {G, T, n, H, w_hh, r->packed, ly->gates, r->gh, ly->hs, ly->cs, ly->tc, ly->hn,
                               NULL, NULL, {0}};
            q.step.N = n;
            q.step.H = H;
            q.step.bias = ly->bias;
            q.step.bias_h = ly->bias_h;
            q.step.relu = r->relu;
            q.step.gh = r->gh;
            if (last) {
                q.step.out = l->out;
                q.step.out_ld = (int64_t)T * H;
            }
            gopt__rnn_seq_forward(&q);
        } else {
            for (int t = 0; t < T; t++) step_forward(r, ly, w_hh, t, n, last ? l->out : NULL);
        }
        memcpy(r->hN + k * NH, ly->hs + T * NH, sizeof(float) * (size_t)NH);
        if (G == 4) memcpy(r->cN + k * NH, ly->cs + T * NH, sizeof(float) * (size_t)NH);
        input = ly->hs + NH;
        if (!last && r->fwd_dropped) {
            /* PyTorch's dropout between layers; serial: one deterministic stream */
            const float p = r->p, scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
            const int64_t m = (int64_t)TN * H;
            for (int64_t i = 0; i < m; i++) ly->mask[i] = gopt_rng_uniform(&r->rng) >= p;
            gopt__mask_scale(ly->drop, input, ly->mask, scale, m);
            input = ly->drop;
        }
    }
    r->fwd_n = n;
    r->dstate_set = 0;
    r->bwd_n = 0;
    if (r->carry) { /* truncated BPTT: the final states seed the next forward, as values */
        memcpy(r->h0, r->hN, sizeof(float) * (size_t)(r->L * NH));
        if (G == 4) memcpy(r->c0, r->cN, sizeof(float) * (size_t)(r->L * NH));
        r->state_n = n;
        r->state_carried = 1;
    }
}

/* ---- backward through time ---------------------------------------------------------------- */

void gopt__rnn_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    (void)x; /* the input was copied (time-major) in forward; dx may alias x */
    gopt__rnn *r = l->st;
    const int T = r->T, H = r->H, G = r->G, GH = G * H, TN = T * n;
    const int64_t NH = (int64_t)n * H;
    float *dH = r->dbuf[0], *dX = r->dbuf[1];
    gopt__swap_axes(dH, dy, n, T, H); /* dy may be the layer's own output buffer */
    for (int k = r->L - 1; k >= 0; k--) {
        gopt__rnn_layer *ly = &r->layers[k];
        const float *w_ih = gopt__pv(l, ly->w_ih), *w_hh = gopt__pv(l, ly->w_hh);
        float *dh0 = r->dh0 + k * NH;
        if (r->dstate_set) {
            const float *d = r->dhN + k * NH;
            float *dlast = dH + (T - 1) * NH;
            for (int64_t i = 0; i < NH; i++) dlast[i] += d[i];
        }
        if (G == 4) {
            if (r->dstate_set) memcpy(r->dc, r->dcN + k * NH, sizeof(float) * (size_t)NH);
            else memset(r->dc, 0, sizeof(float) * (size_t)NH);
        }
        if (G == 3) memset(dh0, 0, sizeof(float) * (size_t)NH);
        float *dgh_all = G == 3 ? r->gh : ly->gates; /* the gradients on the W_hh side */
        if (r->fused) {
            gopt__rnn_seq q = {G, T, n, H, w_hh, r->packed, ly->gates, r->gh, ly->hs, ly->cs, ly->tc, ly->hn,
                               dH, dh0, {0}};
            q.step.N = n;
            q.step.H = H;
            q.step.relu = r->relu;
            q.step.dc = r->dc;
            gopt__rnn_seq_backward(&q);
        } else {
            for (int t = T - 1; t >= 0; t--) step_backward(r, ly, w_hh, t, n, dH, dh0);
        }
        if (G == 4) memcpy(r->dc0 + k * NH, r->dc, sizeof(float) * (size_t)NH);
        /* weight gradients of all steps: one GEMM each (none for a frozen tensor: NULL) */
        float *dw_hh = gopt__pg_train(l, ly->w_hh), *dw_ih = gopt__pg_train(l, ly->w_ih);
        if (dw_hh) gopt__sgemm(1, 0, GH, H, TN, 1.0f, dgh_all, GH, ly->hs, H, 1.0f, dw_hh, H);
        const float *input = k == 0 ? r->xt : r->fwd_dropped ? r->layers[k - 1].drop : r->layers[k - 1].hs + NH;
        if (dw_ih) gopt__sgemm(1, 0, GH, ly->in, TN, 1.0f, ly->gates, GH, input, ly->in, 1.0f, dw_ih, ly->in);
        if (r->has_bias) {
            float *db_ih = gopt__pg_train(l, ly->b_ih), *db_hh = gopt__pg_train(l, ly->b_hh);
            if (db_ih || db_hh) gopt__sgemv(1, TN, GH, 1.0f, ly->gates, GH, r->ones, 0.0f, r->colsum);
            if (db_ih)
                for (int j = 0; j < GH; j++) db_ih[j] += r->colsum[j];
            if (db_hh) {
                if (G == 3) gopt__sgemv(1, TN, GH, 1.0f, dgh_all, GH, r->ones, 0.0f, r->colsum);
                for (int j = 0; j < GH; j++) db_hh[j] += r->colsum[j];
            }
        }
        /* input gradient: one GEMM (T*N x G*H)(G*H x in) */
        if (k > 0 || dx) gopt__sgemm(0, 0, TN, ly->in, GH, 1.0f, ly->gates, GH, w_ih, ly->in, 0.0f, dX, ly->in);
        if (k > 0) {
            const gopt__rnn_layer *below = &r->layers[k - 1];
            if (r->fwd_dropped) {
                const float p = r->p, scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
                gopt__mask_scale(dX, dX, below->mask, scale, (int64_t)TN * H);
            }
            float *tmp = dH;
            dH = dX;
            dX = tmp;
        } else if (dx) {
            gopt__swap_axes(dx, dX, T, n, r->I);
        }
    }
    r->dstate_set = 0;
    r->bwd_n = n;
}

/* ---- recurrent state API ------------------------------------------------------------------ */

static gopt_status need_recurrent(const gopt_layer *l) {
    if (!l) return GOPT_FAIL(GOPT_EINVAL, "argument 'l' is NULL");
    if (!gopt__is_recurrent(l->cfg.type) || !l->st)
        return GOPT_FAIL(GOPT_EINVAL, "layer is %s, not rnn, lstm or gru", kind_name(l));
    return GOPT_OK;
}

/* A state tensor must be (L,N,H) with 1 <= N <= max_batch (want_n > 0: N == want_n). */
static gopt_status check_state(const gopt_layer *l, const gopt_tensor *t, const char *what, int want_n) {
    const gopt__rnn *r = l->st;
    if (!t->data) return GOPT_FAIL(GOPT_EINVAL, "%s: %s has no data", kind_name(l), what);
    int ok = t->ndim == 3 && t->shape[0] == r->L && t->shape[2] == r->H && t->shape[1] >= 1 &&
             t->shape[1] <= r->max_n && (want_n <= 0 || t->shape[1] == want_n);
    if (!ok) {
        char got[96];
        gopt_shape_str(t, got, sizeof got);
        if (want_n > 0)
            return GOPT_FAIL(GOPT_ESHAPE, "%s: %s %s does not match (%d,%d,%d)", kind_name(l), what, got, r->L, want_n,
                             r->H);
        return GOPT_FAIL(GOPT_ESHAPE, "%s: %s %s does not match (%d,N,%d) with 1 <= N <= %d", kind_name(l), what, got,
                         r->L, r->H, r->max_n);
    }
    return GOPT_OK;
}

gopt_status gopt_layer_rnn_set_state(gopt_layer *l, const gopt_tensor *h0, const gopt_tensor *c0) {
    GOPT_TRY(need_recurrent(l));
    gopt__rnn *r = l->st;
    if (c0 && r->G != 4) return GOPT_FAIL(GOPT_EINVAL, "%s: has no cell state; c0 must be NULL", kind_name(l));
    if (h0) GOPT_TRY(check_state(l, h0, "h0", 0));
    if (c0) GOPT_TRY(check_state(l, c0, "c0", h0 ? (int)h0->shape[1] : 0));
    if (!h0 && !c0) return gopt_layer_rnn_reset_state(l);
    int n = (int)(h0 ? h0->shape[1] : c0->shape[1]);
    size_t bytes = sizeof(float) * (size_t)r->L * (size_t)n * (size_t)r->H;
    if (h0) memcpy(r->h0, h0->data, bytes);
    else memset(r->h0, 0, bytes);
    if (r->G == 4) {
        if (c0) memcpy(r->c0, c0->data, bytes);
        else memset(r->c0, 0, bytes);
    }
    r->state_n = n;
    r->state_carried = 0;
    return GOPT_OK;
}

gopt_status gopt_layer_rnn_reset_state(gopt_layer *l) {
    GOPT_TRY(need_recurrent(l));
    ((gopt__rnn *)l->st)->state_n = 0;
    ((gopt__rnn *)l->st)->state_carried = 0;
    return GOPT_OK;
}

/* Views (L,n,H) of the state buffers h and (lstm) c. */
static gopt_status state_views(const gopt_layer *l, float *h, float *c, int n, gopt_tensor *hv, gopt_tensor *cv) {
    const gopt__rnn *r = l->st;
    int64_t shape[3] = {r->L, n, r->H};
    if (hv) GOPT_TRY(gopt_tensor_view(h, 3, shape, hv));
    if (cv) GOPT_TRY(gopt_tensor_view(c, 3, shape, cv));
    return GOPT_OK;
}

gopt_status gopt_layer_rnn_get_state(gopt_layer *l, gopt_tensor *hn, gopt_tensor *cn) {
    GOPT_TRY(need_recurrent(l));
    gopt__rnn *r = l->st;
    if (cn && r->G != 4) return GOPT_FAIL(GOPT_EINVAL, "%s: has no cell state; cn must be NULL", kind_name(l));
    if (r->fwd_n == 0) return GOPT_FAIL(GOPT_ESTATE, "%s: no forward yet", kind_name(l));
    return state_views(l, r->hN, r->cN, r->fwd_n, hn, cn);
}

gopt_status gopt_layer_rnn_set_state_grad(gopt_layer *l, const gopt_tensor *dhn, const gopt_tensor *dcn) {
    GOPT_TRY(need_recurrent(l));
    gopt__rnn *r = l->st;
    if (dcn && r->G != 4) return GOPT_FAIL(GOPT_EINVAL, "%s: has no cell state; dcn must be NULL", kind_name(l));
    if (r->fwd_n == 0) return GOPT_FAIL(GOPT_ESTATE, "%s: no forward to take state gradients for", kind_name(l));
    if (dhn) GOPT_TRY(check_state(l, dhn, "dh_n", r->fwd_n));
    if (dcn) GOPT_TRY(check_state(l, dcn, "dc_n", r->fwd_n));
    if (!dhn && !dcn) {
        r->dstate_set = 0;
        return GOPT_OK;
    }
    size_t bytes = sizeof(float) * (size_t)r->L * (size_t)r->fwd_n * (size_t)r->H;
    if (dhn) memcpy(r->dhN, dhn->data, bytes);
    else memset(r->dhN, 0, bytes);
    if (r->G == 4) {
        if (dcn) memcpy(r->dcN, dcn->data, bytes);
        else memset(r->dcN, 0, bytes);
    }
    r->dstate_set = 1;
    return GOPT_OK;
}

gopt_status gopt_layer_rnn_get_state_grad(gopt_layer *l, gopt_tensor *dh0, gopt_tensor *dc0) {
    GOPT_TRY(need_recurrent(l));
    gopt__rnn *r = l->st;
    if (dc0 && r->G != 4) return GOPT_FAIL(GOPT_EINVAL, "%s: has no cell state; dc0 must be NULL", kind_name(l));
    if (r->bwd_n == 0) return GOPT_FAIL(GOPT_ESTATE, "%s: no backward since the last forward", kind_name(l));
    return state_views(l, r->dh0, r->dc0, r->bwd_n, dh0, dc0);
}

/* ---- vtables ------------------------------------------------------------------------------ */

static gopt_rng *rnn_rng(gopt_layer *l) { return &((gopt__rnn *)l->st)->rng; }

#define RNN_VT(name, kind)                                                                           \
    static const gopt__layer_vt name##_vt = {                                                        \
        .type = kind,                                                                                \
        .setup = gopt__rnn_setup,                                                                    \
        .free = gopt__rnn_free,                                                                      \
        .init_params = gopt__rnn_init_params,                                                        \
        .check_input = gopt__rnn_check_forward,                                                      \
        .forward = gopt__rnn_forward,                                                                \
        .backward = gopt__rnn_backward,                                                              \
        .flops = gopt__rnn_flops,                                                                    \
        .reset_state = gopt_layer_rnn_reset_state,                                                   \
        .rng = rnn_rng,                                                                              \
    };                                                                                               \
    const gopt__layer_vt *gopt__##name##_vtable(void) { return &name##_vt; }
RNN_VT(rnn, GOPT_LAYER_RNN)
RNN_VT(lstm, GOPT_LAYER_LSTM)
RNN_VT(gru, GOPT_LAYER_GRU)
