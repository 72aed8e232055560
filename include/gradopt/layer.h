/* gradopt/layer.h: layers behind one small const vtable {forward, backward, ...}.
 *
 * Shapes are per sample; a batch adds a leading N (1 <= N <= max_batch given at create):
 *   linear          (N,in)        -> (N,out)          y = x W^T + b, W (out,in), b (out)
 *                   (N,T,in)      -> (N,T,out)        time-distributed: the same on each of
 *                   the N*T rows (one SGEMM), as torch.nn.Linear on a 3-D input
 *   embedding       (N,T)         -> (N,T,E)          y[n,t] = W[x[n,t]], W (V,E)
 *                   (torch.nn.Embedding; gopt_layer_embedding(V, E) sets in_features = V,
 *                   out_features = E). x holds token ids as floats that are exact integers in
 *                   [0, V); forward refuses another value (GOPT_EINVAL naming it and its
 *                   position) before reading anything. W is initialised N(0,1) whatever
 *                   weight_init says (PyTorch's init). Backward: dW[x[n,t]] += dy[n,t], repeated
 *                   ids accumulating; ids have no gradient: dx is not needed and not written.
 *                   In a net it must be the first layer (gopt_net_forward_tokens)
 *   conv2d          (N,C,H,W)     -> (N,K,H',W')      H' = (H + 2p - k)/s + 1, W (K,C,k,k), b (K)
 *                   cross-correlation as torch.nn.Conv2d; AVX-512 kernels over images (run-time
 *                   check), else im2col over chunks of images + SGEMM. The environment
 *                   variable GOPT_CONV_GENERIC=1, read when a conv layer is created, forces the
 *                   im2col + SGEMM path (for comparing the two; results differ by rounding)
 *   batchnorm2d     (N,C,H,W)     -> (N,C,H,W)        y = gamma (x - mean)/sqrt(var + eps) + beta
 *                   training: batch statistics (biased variance), then
 *                   running_mean = (1-m) running_mean + m mean,
 *                   running_var  = (1-m) running_var  + m var * M/(M-1)   (unbiased, M = N*H*W),
 *                   eval: running statistics. Optional fused ReLU after the affine (cfg.relu).
 *   batchnorm1d     (N,C)         -> (N,C)            torch.nn.BatchNorm1d: as batchnorm2d with the
 *                   (N,C,L)       -> (N,C,L)          statistics over N (and L): M = N (N*L) in the
 *                   unbiased running variance; gopt_layer_batchnorm1d(C) sets cfg.channels = C
 *                   (https://pytorch.org/docs/1.13/generated/torch.nn.BatchNorm1d.html). A
 *                   separate type rather than batchnorm2d on a 1-D shape, so that a net reads
 *                   as its PyTorch twin; same parameters, running statistics and fused ReLU
 *   residual_dense  (N,F)         -> (N,F)            the MLP residual block in full pre-activation
 *                   form (He et al. 2016, "Identity Mappings in Deep Residual Networks", fig. 4e):
 *                     y = x + W2 act(BN2(W1 act(BN1(x)) + b1)) + b2
 *                   W1, W2 (F,F), b1, b2 (F), act = cfg.nonlinearity: GOPT_LAYER_RELU (default),
 *                   GOPT_LAYER_TANH or GOPT_LAYER_SIGMOID; BN1, BN2 are BatchNorm1d (training:
 *                   batch statistics, as batchnorm1d) with cfg.batchnorm = 1, the identity with 0
 *                   (then y = x + W2 act(W1 act(x) + b1) + b2). The shortcut is the identity, so
 *                   dL/dx = dL/dy + (branch): gradients reach the first block undiminished. A net
 *                   of such blocks ends, as pre-activation ResNets do, with [BN +] act before
 *                   its classifier. Parameters, in forward order: "<prefix>.bn1.weight/.bias"
 *                   (with batchnorm), "<prefix>.fc1.weight/.bias", "<prefix>.bn2.*",
 *                   "<prefix>.fc2.weight/.bias": the monitor's per-layer view
 *                   (gopt_monitor_layer_stats groups by the name before the last '.') sees one
 *                   layer per linear and per BN ("block3.fc1", "block3.bn2", ...), so a
 *                   per-layer gradient profile counts the block's two linears as two layers
 *                   like a plain MLP's. Init as linear's: W1, W2 by the weight scheme, biases
 *                   U(+-1/sqrt(F)) (gopt_net_init_weights: 0 unless TORCH_DEFAULT); BN gamma 1,
 *                   beta 0. Keeps act(BN1(x)), BN2's input and act(BN2(.)) (3 max_batch F
 *                   floats; 2 without BN); backward recomputes nothing
 *   relu, gelu      any shape     -> same             gelu exact: x/2 (1 + erf(x/sqrt 2)),
 *                   tanh form:    x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)))
 *   maxpool2d       (N,C,H,W)     -> (N,C,H',W')      padding counts as -inf, floor mode, first
 *                   maximum in scan order receives the gradient (as PyTorch)
 *   global_avgpool  (N,C,H,W)     -> (N,C)
 *   dropout         any shape     -> same             training: keep with prob 1-p, scale 1/(1-p),
 *                   mask from the layer's own gopt_rng (seeded); eval: identity
 *   flatten         (N,...)       -> (N,prod)
 *   basic_block     (N,C,H,W)     -> (N,K,H/s,W/s)    relu(bn2(conv3x3(relu(bn1(conv3x3_s(x))))) + sc(x)),
 *                   sc = identity, or bn(conv1x1 stride s) when s != 1 or C != K (He et al. 2016)
 *   sigmoid, tanh   any shape     -> same             1/(1 + exp(-x)), tanh(x) (torch.sigmoid,
 *                   torch.tanh), polynomial kernels accurate to ~2.5 ulp (sigmoid below
 *                   x = -87 returns ~1e-38 instead of a denormal)
 *   rnn, lstm, gru  (N,T,I)       -> (N,T,H)          torch.nn.RNN / LSTM / GRU with batch_first=True
 *                   (https://pytorch.org/docs/1.13/generated/torch.nn.LSTM.html): in_features = I
 *                   (input_size), out_features = H (hidden_size), num_layers L (layer l > 0 reads
 *                   layer l-1's outputs, I = H), per-sample input (T,I) fixed at create. Per step t:
 *       rnn:  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu (cfg.nonlinearity)
 *       lstm: [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh;  i, f, o sigmoid, g tanh;
 *             c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)
 *       gru:  [r z] = sigmoid(W_i[rz] x_t + b_i[rz] + W_h[rz] h_{t-1} + b_h[rz]),
 *             n = tanh(W_in x_t + b_in + r (W_hn h_{t-1} + b_hn)),  h_t = (1 - z) n + z h_{t-1}
 *                   The output is the last layer's h_t for every t. Parameters per layer l, in
 *                   PyTorch's order and layout: "<prefix>.weight_ih_l<l>" (G*H, I or H),
 *                   "weight_hh_l<l>" (G*H, H) (tag weight), with cfg.bias "bias_ih_l<l>",
 *                   "bias_hh_l<l>" (G*H) (tag bias); G = 1, 4, 3, rows gate-major (i f g o; r z n).
 *                   All initialised U(-1/sqrt(H), 1/sqrt(H)) (weight_init is ignored), as PyTorch.
 *                   cfg.p (PyTorch's `dropout`, default 0): in training mode the outputs of every
 *                   layer but the last are dropped with probability p and scaled by 1/(1-p) before
 *                   the next layer, masks drawn from the layer's gopt_rng seeded by cfg.seed
 *                   (so the masks, not their statistics, differ from PyTorch's); eval: none.
 *                   Speed: the input projections of all steps are one SGEMM per layer, and so
 *                   are dW_ih, dW_hh and dx in backward; the recurrence runs in one OpenMP
 *                   region per layer pass where each thread owns a range of hidden units, keeps
 *                   its W_hh panels packed and per step multiplies (FMA kernel, x86-64 with AVX2
 *                   and FMA, checked at run time) and applies the fused gate pass. Other CPUs,
 *                   or GOPT_RNN_GENERIC=1 in the environment when the layer is created, use one
 *                   SGEMM per step instead (results differ by rounding only).
 *                   Backward is backpropagation through time over the whole sequence; initial
 *                   and final states: see "recurrent state" below. Errors at create: GOPT_EINVAL
 *                   (I or H outside 1..2^20, num_layers outside 1..64, bias or carry_state not 0/1,
 *                   p outside [0,1], rnn nonlinearity not GOPT_RNN_TANH/RELU), GOPT_ESHAPE (input
 *                   not (T,I)). Buffers for every step (gates, states, tanh(c), dropout masks)
 *                   are allocated at create for max_batch x T: about (G + 3) T max_batch H floats
 *                   per layer for lstm.
 *
 * Parameters are registered in a gopt_params arena at create (names "<prefix>.weight",
 * "<prefix>.bias", BN "<prefix>.weight"/"<prefix>.bias" with tag GOPT_TAG_NORM; a block's
 * are "<prefix>.conv1.weight", "<prefix>.bn1.weight", ..., "<prefix>.shortcut.conv.weight").
 * The layer keeps indices into the arena; finalize the arena before the first forward.
 * Backward ACCUMULATES (+=) parameter gradients into the arena; zero them explicitly
 * (gopt_params_zero_grad). BatchNorm running statistics are layer state, not parameters.
 *
 * Ownership: the layer owns its output and saved activations (sized once for max_batch);
 * forward returns a view of its output, valid until the next forward. Nothing is allocated
 * by forward or backward. */
#ifndef GRADOPT_LAYER_H
#define GRADOPT_LAYER_H

#include "params.h"

GOPT_EXTERN_C_BEGIN

typedef enum gopt_layer_type {
    GOPT_LAYER_LINEAR = 0,
    GOPT_LAYER_CONV2D,
    GOPT_LAYER_BATCHNORM2D,
    GOPT_LAYER_RELU,
    GOPT_LAYER_GELU,
    GOPT_LAYER_MAXPOOL2D,
    GOPT_LAYER_GLOBAL_AVGPOOL,
    GOPT_LAYER_DROPOUT,
    GOPT_LAYER_FLATTEN,
    GOPT_LAYER_BASIC_BLOCK,
    GOPT_LAYER_SIGMOID,
    GOPT_LAYER_TANH,
    GOPT_LAYER_EMBEDDING,
    GOPT_LAYER_RNN,
    GOPT_LAYER_LSTM,
    GOPT_LAYER_GRU,
    GOPT_LAYER_BATCHNORM1D,
    GOPT_LAYER_RESIDUAL_DENSE,
    GOPT_LAYER_ADD,      /* merge nodes of a net (gradopt/net.h): elementwise sum of inputs */
    GOPT_LAYER_CONCAT,   /* concatenation along channels (C,H,W) or features (F) */
    GOPT_LAYER_CUSTOM,   /* a user-defined layer (gradopt/custom_layer.h) */
    GOPT_LAYER_TYPE_COUNT
} gopt_layer_type;

/* Short lowercase name ("conv2d", ...); "unknown" out of range. */
GOPT_API const char *gopt_layer_type_name(gopt_layer_type t);

/* One config for every layer type; fields a type does not use are ignored. */
typedef struct gopt_layer_config {
    gopt_layer_type type;
    int in_features, out_features; /* linear; conv2d / basic_block: in and out channels */
    int kernel, stride, padding;   /* conv2d, maxpool2d (stride 0 = kernel); block: stride */
    int bias;                      /* linear, conv2d: 1 = with bias */
    int channels;                  /* batchnorm2d, batchnorm1d */
    float eps, momentum;           /* batchnorm2d/1d (and the BNs of a block): 1e-5, 0.1 */
    int relu;                      /* batchnorm2d/1d: fuse a ReLU after the affine */
    int gelu_tanh;                 /* gelu: 1 = approximate='tanh' */
    float p;                       /* dropout probability in [0, 1] */
    uint64_t seed;                 /* dropout mask stream (dropout; rnn/lstm/gru between layers) */
    int num_layers;                /* rnn, lstm, gru: stacked layers (default 1) */
    int nonlinearity;              /* rnn: GOPT_RNN_TANH (default) or GOPT_RNN_RELU;
                                      residual_dense: GOPT_LAYER_RELU (default), _TANH, _SIGMOID */
    int carry_state;               /* rnn, lstm, gru: 1 = truncated BPTT (see below) */
    int batchnorm;                 /* residual_dense: 1 = BatchNorm1d before each activation */
    const struct gopt_custom_layer_ops *custom; /* custom: the callbacks (gradopt/custom_layer.h) */
    void *custom_user;             /* custom: their user pointer */
} gopt_layer_config;

enum { GOPT_RNN_TANH = 0, GOPT_RNN_RELU = 1 };

/* Config helpers (everything else at its default). */
GOPT_API gopt_layer_config gopt_layer_config_default(gopt_layer_type type);
GOPT_API gopt_layer_config gopt_layer_linear(int in, int out, int bias);
GOPT_API gopt_layer_config gopt_layer_conv2d(int in, int out, int kernel, int stride, int padding, int bias);
GOPT_API gopt_layer_config gopt_layer_batchnorm2d(int channels, int fused_relu);
GOPT_API gopt_layer_config gopt_layer_batchnorm1d(int features);
/* features F (in_features = out_features = F), activation GOPT_LAYER_RELU / TANH / SIGMOID,
 * batchnorm 0 or 1. Errors at create: GOPT_EINVAL (F < 1, another activation, batchnorm
 * not 0/1), GOPT_ESHAPE (input not (F)). */
GOPT_API gopt_layer_config gopt_layer_residual_dense(int features, gopt_layer_type activation, int batchnorm);
GOPT_API gopt_layer_config gopt_layer_maxpool2d(int kernel, int stride, int padding);
GOPT_API gopt_layer_config gopt_layer_dropout(float p, uint64_t seed);
GOPT_API gopt_layer_config gopt_layer_basic_block(int in, int out, int stride);
GOPT_API gopt_layer_config gopt_layer_embedding(int num_embeddings, int embedding_dim);
/* rnn (nonlinearity GOPT_RNN_TANH / GOPT_RNN_RELU), lstm, gru: input_size, hidden_size,
 * num_layers, bias, dropout between layers (PyTorch's `dropout`), its mask seed. */
GOPT_API gopt_layer_config gopt_layer_rnn(int input_size, int hidden_size, int num_layers, int nonlinearity, int bias,
                                          float dropout, uint64_t seed);
GOPT_API gopt_layer_config gopt_layer_lstm(int input_size, int hidden_size, int num_layers, int bias, float dropout,
                                           uint64_t seed);
GOPT_API gopt_layer_config gopt_layer_gru(int input_size, int hidden_size, int num_layers, int bias, float dropout,
                                          uint64_t seed);

typedef struct gopt_layer gopt_layer;

/* Create a layer for per-sample input shape in_shape[0..in_ndim-1] (in_ndim 1..3) and
 * batches up to max_batch, registering its parameters in `params` (not finalized) under
 * `prefix` (1..40 bytes). Errors: GOPT_EINVAL (config out of range), GOPT_ESHAPE (input
 * shape does not fit the layer, e.g. conv in_features != C, kernel larger than the padded
 * input), GOPT_ESTATE (params finalized), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_layer_create(const gopt_layer_config *cfg, int in_ndim, const int64_t in_shape[],
                                       int max_batch, gopt_params *params, const char *prefix,
                                       gopt_layer **out);
GOPT_API void gopt_layer_destroy(gopt_layer *l);

GOPT_API gopt_layer_type gopt_layer_get_type(const gopt_layer *l);
/* Per-sample output shape; returns its ndim (1..3). */
GOPT_API int gopt_layer_out_shape(const gopt_layer *l, int64_t out_shape[3]);

/* Initialise this layer's parameters (arena finalized): conv/linear weights with
 * `weight_init` (GOPT_INIT_TORCH_DEFAULT is PyTorch's default), biases U(+-1/sqrt(fan_in)),
 * BN gamma = 1, beta = 0; BN running stats reset to mean 0, var 1. */
GOPT_API gopt_status gopt_layer_init_params(gopt_layer *l, gopt_init weight_init, gopt_rng *rng);

/* Freeze (on = 1) or unfreeze (0) every parameter tensor of the layer
 * (gopt_params_set_frozen on each, params.h: PyTorch's layer.requires_grad_(False)):
 * the optimizers and clipping skip them, and backward computes no parameter gradient for
 * them (linear, conv2d, batchnorm2d/1d, basic_block, embedding, residual_dense, rnn, lstm,
 * gru; custom layers that check gopt_custom_requires_grad): those gradients stay as
 * gopt_params_zero_grad left them. Backward still computes dx, so the layers before a
 * frozen one keep training. A layer without parameters is accepted (nothing to
 * freeze). Errors: GOPT_EINVAL (NULL, on not 0/1). */
GOPT_API gopt_status gopt_layer_set_frozen(gopt_layer *l, int on);
/* 1 when every parameter of the layer is frozen (also after freezing them one by one), 0
 * otherwise and for a layer without parameters. */
GOPT_API int gopt_layer_is_frozen(const gopt_layer *l);

/* Training (1, the default) or eval (0) mode: batchnorm statistics, dropout. */
GOPT_API void gopt_layer_set_training(gopt_layer *l, int training);

/* y = layer(x). x is (N, in_shape...) with 1 <= N <= max_batch; *y becomes a view of the
 * layer's output (N, out_shape...). Training-mode batchnorm updates its running stats.
 * Errors: GOPT_ESHAPE naming both shapes, GOPT_ESTATE (arena not finalized), GOPT_EINVAL. */
GOPT_API gopt_status gopt_layer_forward(gopt_layer *l, const gopt_tensor *x, gopt_tensor *y);

/* Backward of the last forward: x must be the same input, dy (N, out_shape...) the
 * upstream gradient; dy is used as scratch and is overwritten, and so are the activations a
 * layer saved (one backward per forward). dx may be x's own buffer (it is written only after
 * x is read). Parameter gradients are
 * accumulated (+=) into the arena; dx (same shape as x; may be NULL to skip) is written.
 * Errors: GOPT_ESHAPE naming both shapes, GOPT_ESTATE (no forward with this batch). */
GOPT_API gopt_status gopt_layer_backward(gopt_layer *l, const gopt_tensor *x, gopt_tensor *dy, gopt_tensor *dx);

/* BatchNorm running statistics (batchnorm2d and batchnorm1d layers only): views of C floats
 * each, owned by the layer. Errors: GOPT_EINVAL (another type). A residual_dense block's BNs
 * are net state (gopt_net_state_save), not reachable here. */
GOPT_API gopt_status gopt_layer_bn_running(gopt_layer *l, float **running_mean, float **running_var);

/* ---- recurrent state (rnn, lstm, gru; GOPT_EINVAL for another type or a NULL layer) ---
 * States are (L,N,H): L = num_layers, N = the batch, H = hidden_size; c only for lstm
 * (passing c0/cn/dcn/dc0 for rnn or gru is GOPT_EINVAL).
 * Initial states h0 (c0): zeros until set. A state set with gopt_layer_rnn_set_state is
 * used by every following forward until it is set again or reset (a forward whose batch
 * differs from it fails with GOPT_ESHAPE).
 * cfg.carry_state = 1 (truncated backpropagation through time): after each forward, its
 * final states h_n (c_n) are copied into the initial states of the next forward, as values:
 * the next backward stops at them (no gradient flows into the previous batch, whose
 * activations are gone), and reports dL/dh0 at them through get_state_grad. A forward whose
 * batch N differs from the carried states' starts from zeros; reset_state (the start of a
 * new stream or epoch) and set_state replace the carried states.
 * Final-state gradients dL/dh_n (dL/dc_n) enter the backward as if h_n (c_n) were also used
 * by the loss: zero unless set by gopt_layer_rnn_set_state_grad between the forward and
 * its backward. */
/* Set the initial states (copied); NULL, NULL sets zeros; for lstm one of them NULL means
 * zeros for that one. h0 and c0 must be (L,N,H), 1 <= N <= max_batch (GOPT_ESHAPE), and N
 * must be the batch of the forwards that use them (checked there: GOPT_ESHAPE). */
GOPT_API gopt_status gopt_layer_rnn_set_state(gopt_layer *l, const gopt_tensor *h0, const gopt_tensor *c0);
/* Zero the initial states (a new stream, the start of an epoch); drops carried states. */
GOPT_API gopt_status gopt_layer_rnn_reset_state(gopt_layer *l);
/* Views (L,N,H) of the final states h_n, c_n of the last forward (hn or cn may be NULL; for
 * rnn and gru cn must be). Valid until the next forward. GOPT_ESTATE before a forward. */
GOPT_API gopt_status gopt_layer_rnn_get_state(gopt_layer *l, gopt_tensor *hn, gopt_tensor *cn);
/* Upstream gradients of the final states for the backward of the last forward (copied;
 * NULL: zeros, the default; cleared by every forward and backward): loss terms that depend
 * on h_n, c_n directly. Shapes (L,N,H) with N the last forward's batch (GOPT_ESHAPE);
 * GOPT_ESTATE before a forward. */
GOPT_API gopt_status gopt_layer_rnn_set_state_grad(gopt_layer *l, const gopt_tensor *dhn, const gopt_tensor *dcn);
/* Views (L,N,H) of the gradients w.r.t. h0 (and c0) computed by the last backward (either
 * may be NULL); valid until the next backward. GOPT_ESTATE if no backward followed the
 * last forward. */
GOPT_API gopt_status gopt_layer_rnn_get_state_grad(gopt_layer *l, gopt_tensor *dh0, gopt_tensor *dc0);

GOPT_EXTERN_C_END

#endif /* GRADOPT_LAYER_H */
