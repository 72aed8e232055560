/* Private: the recurrent layers (rnn, lstm, gru; src/nn/recurrent.c), their fused per-step
 * kernels (src/nn/recurrent_kernels.c), and the sigmoid / tanh layers
 * (src/nn/activation_st.c). See gradopt/layer.h for the semantics.
 *
 * Internal layout is time-major: per layer, gates (T,N,G*H), hidden states (T+1,N,H) with
 * h_{-1} = h0 stored first, so that the input projection of all steps, the weight gradients
 * of all steps and the input gradient are each one SGEMM over contiguous rows, and each
 * recurrent step is one SGEMM on the previous state's N rows. The user-facing tensors are
 * batch-first (N,T,F); they are transposed once per call on the way in and out. */
#ifndef GRADOPT_NN_RECURRENT_H
#define GRADOPT_NN_RECURRENT_H

#include <stdint.h>

#include "nn/layer.h"

typedef struct gopt__rnn gopt__rnn; /* a recurrent layer's state (l->st), recurrent.c */

/* ---- one time step of a cell, rows 0..N-1 (time-major slices) -----------------------------
 * Forward (pre-activations come from the GEMMs without biases; the kernels add them):
 *   rnn:  h = act(gates + bias)                                         (gates unchanged)
 *   lstm: [i f g o] = [sig sig tanh sig](gates + bias), c = f c_prev + i g, tc = tanh(c),
 *         h = o tc; gates becomes the activated [i f g o]
 *   gru:  r = sig(x_r + b_ir + hh_r + b_hr), z = sig(x_z + b_iz + hh_z + b_hz),
 *         hn = hh_n + b_hn (saved), n = tanh(x_n + b_in + r hn), h = (h_prev - n) z + n
 *         (PyTorch's GRUCell form); gates (the x projections) becomes the activated [r z n]
 * Backward (dh = dL/dh_t in total, including the recurrent path):
 *   rnn:  gates = dh * act'(h)
 *   lstm: dct = dc + dh o (1 - tc^2); gates = [dct g i(1-i), dct c_prev f(1-f),
 *         dct i (1-g^2), dh tc o(1-o)]; dc = dct f (for step t-1)
 *   gru:  gates = dGx = [dr, dz, dn] (pre-activation), gh = dGh = [dr, dz, dn r],
 *         dh_prev += dh z */
typedef struct gopt__rnn_step {
    int N, H;
    float *gates;          /* (N, G*H) */
    float *gh;             /* gru: forward (N,3H) = h_prev W_hh^T; backward (N,3H) dGh out */
    const float *bias;     /* rnn/lstm: b_ih + b_hh (G*H); gru: b_ih (3H); zeros without bias */
    const float *bias_h;   /* gru: b_hh (3H); zeros without bias */
    float *hn;             /* gru: (N,H) W_hn h_prev + b_hn, saved for backward */
    const float *h_prev;   /* (N,H) */
    float *h;              /* (N,H) */
    const float *c_prev;   /* lstm (N,H) */
    float *c, *tc;         /* lstm (N,H): cell state and tanh(c) */
    float *out;            /* forward: NULL, or also write h's rows to out + n*out_ld */
    int64_t out_ld;
    float *dh;             /* backward (N,H): dL/dh_t */
    float *dc;             /* lstm backward (N,H): in dL/dc_t from later steps, out for c_{t-1} */
    float *dh_prev;        /* gru backward (N,H): += dh z */
    int relu;              /* rnn: 1 = relu, 0 = tanh */
} gopt__rnn_step;

void gopt__rnn_step_forward(const gopt__rnn_step *s);
void gopt__rnn_step_backward(const gopt__rnn_step *s);
void gopt__lstm_step_forward(const gopt__rnn_step *s);
void gopt__lstm_step_backward(const gopt__rnn_step *s);
void gopt__gru_step_forward(const gopt__rnn_step *s);
void gopt__gru_step_backward(const gopt__rnn_step *s);
/* One cell pass (G = 1 rnn, 3 gru, 4 lstm; forward or backward) over all N rows and the
 * hidden units [j0, j1) only, on the calling thread (the fused sequence loop's share). */
void gopt__rnn_cell_range(int G, int backward, const gopt__rnn_step *s, int j0, int j1);

/* ---- the fused recurrent loop of one layer (recurrent_seq.c; AVX2 + FMA only) ---------
 * Forward: for t = 0..T-1, gates[t] += h_{t-1} W_hh^T (gru: gh = h_{t-1} W_hh^T), then the
 * cell pass; hs[0] (cs[0]) hold h0 (c0) on entry. Backward: for t = T-1..0, the cell pass
 * from dH[t] (the total dL/dh_t), then dH[t-1] (t = 0: dh0) += dGates_t W_hh (gru: dGh;
 * gru's dh0 must be zeroed on entry). `step` carries N, H, the biases, relu, out/out_ld
 * and (lstm backward) dc; the per-step pointers are derived from the arrays. */
typedef struct gopt__rnn_seq {
    int G, T, N, H;
    const float *w_hh;   /* (G*H, H) */
    float *packed;       /* gopt__rnn_seq_packed_floats, 64-byte aligned */
    float *gates;        /* (T,N,G*H) */
    float *gh;           /* gru: (T,N,G*H) */
    float *hs, *cs;      /* (T+1,N,H) */
    float *tc, *hn;      /* (T,N,H) */
    float *dH, *dh0;     /* backward: (T,N,H), (N,H) */
    gopt__rnn_step step;
} gopt__rnn_seq;
int gopt__rnn_seq_available(void);
size_t gopt__rnn_seq_packed_floats(int G, int H);
void gopt__rnn_seq_forward(const gopt__rnn_seq *q);
void gopt__rnn_seq_backward(const gopt__rnn_seq *q);

/* dst (B,A,F) = src (A,B,F) with rows of F floats swapped between the two leading axes. */
void gopt__swap_axes(float *dst, const float *src, int A, int B, int F);
/* y = x * mask * scale over n elements (scale 1/(1-p), 0 when p = 1). */
void gopt__mask_scale(float *y, const float *x, const uint8_t *mask, float scale, int64_t n);

/* ---- sigmoid / tanh layers ---- */
void gopt__sigmoid_forward(gopt_layer *l, const float *x, int n);
void gopt__sigmoid_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n);
void gopt__tanh_forward(gopt_layer *l, const float *x, int n);
void gopt__tanh_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n);

/* ---- recurrent layers (rnn, lstm, gru) ----
 * setup: check the config and the input shape (T,I), set out_shape (T,H), register the
 * parameters, allocate every per-step buffer for max_batch x T. free: release them (NULL
 * state ok). init_params: U(-1/sqrt(H), 1/sqrt(H)) for all, in PyTorch's order (a build, or
 * gopt_net_init_weights with TORCH_DEFAULT twice); otherwise per layer each gate's (H,in)
 * block of weight_ih by spec->weights, each (H,H) block of weight_hh by spec->recurrent,
 * biases 0.
 * check_forward: GOPT_ESHAPE when a state set by gopt_layer_rnn_set_state does not have
 * the batch n of this forward. */
gopt_status gopt__rnn_setup(gopt_layer *l, const char *prefix);
void gopt__rnn_free(gopt_layer *l);
gopt_status gopt__rnn_init_params(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng);
double gopt__rnn_flops(const gopt_layer *l);
gopt_status gopt__rnn_check_forward(const gopt_layer *l, const float *x, int n);
void gopt__rnn_forward(gopt_layer *l, const float *x, int n);
void gopt__rnn_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n);

static inline int gopt__is_recurrent(gopt_layer_type t) {
    return t == GOPT_LAYER_RNN || t == GOPT_LAYER_LSTM || t == GOPT_LAYER_GRU;
}

#endif /* GRADOPT_NN_RECURRENT_H */
