/* Private layer machinery: the layer struct, the per-type vtable, and the helpers the type
 * files share (layer_util.c).
 *
 * Dependencies point one way: each layer type is one file (linear.c, conv_layer.c,
 * batchnorm.c, pointwise.c, pool.c, dropout.c, flatten.c, block.c, ...) that fills a
 * gopt__layer_vt from the kernels (nn/kernels.h) and the helpers below; layer.c holds the
 * generic public API and finds a type's vtable in a table indexed by gopt_layer_type; net.c
 * drives layers only through this header. No type file calls into layer.c or net.c. */
#ifndef GRADOPT_INTERNAL_LAYER_H
#define GRADOPT_INTERNAL_LAYER_H

#include <stdint.h>

#include "gradopt/layer.h"
#include "nn/kernels.h"

/* ---- the vtable: everything one layer type does ------------------------------------------ */

enum {
    GOPT__VT_OUT_ALIASES_IN = 1, /* forward points l->out at its input (flatten): no output buffer */
    GOPT__VT_SELF_TIMED = 2,     /* the type charges its own parts to the net's timer (the block) */
    GOPT__VT_LEAN = 4            /* alloc(l, 1) trades a recomputation for memory (the block) */
};

/* What init_params applies (a type reads only what concerns it).
 *   build = 1: the layer's own defaults (gopt_layer_init_params, gopt_net_build): weights by
 *     `weights`, biases U(+-1/sqrt(fan_in)), an embedding N(0,1) and every recurrent
 *     parameter U(+-1/sqrt(H)) whatever `weights` says, as PyTorch's constructors.
 *   build = 0: the rules of gopt_net_init_weights (net.h): biases U(+-1/sqrt(fan_in)) only
 *     under TORCH_DEFAULT, else 0; an embedding by `weights` unless TORCH_DEFAULT; recurrent
 *     weight_ih gate blocks by `weights`, weight_hh ones by `recurrent`. */
/* nn/pool.c: 1 = maxpool2d's kernel-2 stride-2 forward on its scalar loop even where AVX2
 * is available (a test hook, not thread-safe: tests/test_layer.c compares the two) */
void gopt__maxpool_set_scalar(int on);

typedef struct gopt__init_spec {
    gopt_init weights, recurrent;
    int build;
} gopt__init_spec;
/* 1 when biases get PyTorch's U(+-1/sqrt(fan_in)), 0 when they are zeroed. */
static inline int gopt__init_torch_bias(const gopt__init_spec *s) {
    return s->build || s->weights == GOPT_INIT_TORCH_DEFAULT;
}

typedef struct gopt__layer_vt {
    gopt_layer_type type;
    unsigned flags; /* GOPT__VT_* */
    /* Shape checks against l->in_shape / l->cfg, parameter registration (gopt__add_param),
     * per-type state (l->st, zeroed, freed by layer.c after `free`); sets l->out_ndim,
     * l->out_shape and l->ws_floats (shared scratch the type needs). Required. */
    gopt_status (*setup)(gopt_layer *l, const char *prefix);
    /* Per-type buffers sized for l->max_batch (the output itself is generic), or NULL.
     * lean (only with GOPT__VT_LEAN): keep less and recompute in backward; may grow
     * l->ws_floats. A standalone layer calls it with 0, a net at build. */
    gopt_status (*alloc)(gopt_layer *l, int lean);
    /* Release what setup and alloc allocated (NULL: nothing); also called after a setup that
     * failed part way, so l->st may still be NULL. */
    void (*free)(gopt_layer *l);
    /* Initialise the parameters (arena finalized) as `spec` says and reset state (NULL:
     * none), drawing from rng in parameter order (the same spec and stream, the same values). */
    gopt_status (*init_params)(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng);
    /* Check a batch of n before anything runs (token ids in range, a set recurrent state of
     * batch n, ...); NULL: no check. x is the layer's input, or NULL when a net checks its
     * later layers before their inputs exist: then check only what does not depend on it. */
    gopt_status (*check_input)(const gopt_layer *l, const float *x, int n);
    /* writes l->out (or points it at x) for n samples */
    void (*forward)(gopt_layer *l, const float *x, int n);
    /* dy may be clobbered; dx may be NULL; dx is overwritten; dx may alias x */
    void (*backward)(gopt_layer *l, const float *x, float *dy, float *dx, int n);
    /* Rewrite l->out from the same x exactly as the last forward wrote it, changing no state
     * (no running statistics, no random stream): what a recomputed layer (gopt_net_set_recompute)
     * runs before the next layer's backward. NULL: the type cannot be recomputed. */
    void (*recompute)(gopt_layer *l, const float *x, int n);
    /* Multiply-adds x 2 of one forward per sample (NULL: 0). */
    double (*flops)(const gopt_layer *l);
    /* The batchnorms whose running statistics are this layer's state (up to 3; NULL: none). */
    int (*bns)(gopt_layer *l, gopt__bn **out3);
    /* Recurrent types: zero the carried initial states (gopt_net_reset_state); NULL: none. */
    gopt_status (*reset_state)(gopt_layer *l);
    /* The layer's own random stream (dropout masks), saved in the net's state so a resumed
     * run draws the masks the uninterrupted run would have; NULL: none. */
    gopt_rng *(*rng)(gopt_layer *l);
    /* Types whose forward or backward can fail (custom: user callbacks): the failure of the
     * last forward or backward, its message already recorded, then cleared; NULL: never fail. */
    gopt_status (*take_status)(gopt_layer *l);
    /* State that is neither a parameter nor a batchnorm's nor a random stream (custom),
     * saved in the net's state after those (gopt__layers_state_*); NULL: none. save gets
     * exactly state_size bytes; load checks its bytes and leaves the state as it was when
     * it refuses. */
    size_t (*state_size)(const gopt_layer *l);
    gopt_status (*state_save)(const gopt_layer *l, void *buf, size_t size);
    gopt_status (*state_load)(gopt_layer *l, const void *buf, size_t size);
} gopt__layer_vt;

/* The vtables, one function per type (functions, not exported objects: sanitizers add
 * unprefixed companion symbols to exported globals). */
const gopt__layer_vt *gopt__linear_vtable(void);
const gopt__layer_vt *gopt__conv2d_vtable(void);
const gopt__layer_vt *gopt__batchnorm2d_vtable(void);
const gopt__layer_vt *gopt__relu_vtable(void);
const gopt__layer_vt *gopt__gelu_vtable(void);
const gopt__layer_vt *gopt__maxpool2d_vtable(void);
const gopt__layer_vt *gopt__global_avgpool_vtable(void);
const gopt__layer_vt *gopt__dropout_vtable(void);
const gopt__layer_vt *gopt__flatten_vtable(void);
const gopt__layer_vt *gopt__basic_block_vtable(void);
const gopt__layer_vt *gopt__sigmoid_vtable(void); /* activation_st.c */
const gopt__layer_vt *gopt__tanh_vtable(void);
const gopt__layer_vt *gopt__rnn_vtable(void); /* recurrent.c */
const gopt__layer_vt *gopt__lstm_vtable(void);
const gopt__layer_vt *gopt__gru_vtable(void);
const gopt__layer_vt *gopt__embedding_vtable(void);
const gopt__layer_vt *gopt__batchnorm1d_vtable(void); /* batchnorm.c */
const gopt__layer_vt *gopt__residual_dense_vtable(void);
const gopt__layer_vt *gopt__custom_vtable(void); /* custom.c */
/* batchnorm.c: gopt__bn_forward / gopt__bn_backward for HW = 1, (n,C) row-major rows walked
 * in channel stripes (batchnorm1d over (N,C), residual_dense). relu_beta: NULL, or beta to
 * recompute a fused relu's mask. dx may alias x or g. */
void gopt__bn_rows_forward(gopt__bn *bn, const float *gamma, const float *beta, const float *x, float *y, int relu,
                           int n, int training);
void gopt__bn_rows_backward(const gopt__bn *bn, const float *gamma, const float *relu_beta, float *dgamma,
                            float *dbeta, const float *x, float *g, float *dx, int n, int training);

/* ---- the layer -------------------------------------------------------------------------- */
struct gopt_layer {
    const gopt__layer_vt *vt;
    gopt_layer_config cfg;
    int in_ndim, out_ndim;
    int64_t in_shape[3], out_shape[3];
    int64_t in_numel, out_numel; /* per sample */
    int max_batch;
    int training;
    int last_n;                  /* batch of the last forward, 0 before */
    gopt_params *params;
    float *out;                  /* the output: owned, or the net's (workspace when recompute), or x */
    int owns_out;
    float *ws;                   /* shared workspace (net) or owned (standalone) */
    size_t ws_floats;
    int owns_ws;
    int frozen;                  /* the last gopt_layer_set_frozen (0 default); the tensors' own
                                    flags (gopt__pg_train) are what the types read */
    int param_first, param_count; /* the arena tensors the layer registered at create */
    int created;                 /* 1 once gopt__layer_create has succeeded (custom: destroy) */
    int recompute;               /* a net's layer whose output is not kept (gopt_net_set_recompute) */
    double *timer;               /* NULL, or [2][GOPT_LAYER_TYPE_COUNT] seconds (fwd, bwd) */
    void *st;                    /* per-type state (the type file's struct) */
};

/* ---- helpers for the type files (layer_util.c) ------------------------------------------- */
/* Param views (arena finalized); NULL for index -1. */
float *gopt__pv(const gopt_layer *l, int index);
float *gopt__pg(const gopt_layer *l, int index);
/* The gradient a backward accumulates into: gopt__pg, or NULL when the tensor is frozen
 * (gopt_params_set_frozen, also through gopt_layer_set_frozen): the type then skips it.
 * Every type with parameters skips: linear, conv2d, batchnorm2d/1d, basic_block,
 * embedding, residual_dense, rnn/lstm/gru (their weight GEMMs and bias sums; the recurrence
 * itself runs for dx and the earlier layers), custom (through gopt_custom_requires_grad). */
float *gopt__pg_train(const gopt_layer *l, int index);
double gopt__now(void);
/* Register "<prefix>.<suffix>" in l->params. */
gopt_status gopt__add_param(gopt_layer *l, const char *prefix, const char *suffix, int ndim, const int64_t *shape,
                            gopt_param_tag tag, int *index);
/* A convolution's weight (K,C,R,R) and optional bias (K) / a batchnorm's weight and bias
 * (C, GOPT_TAG_NORM) under prefix. */
gopt_status gopt__add_conv_params(gopt_layer *l, gopt__conv *c, const char *prefix);
gopt_status gopt__add_bn_params(gopt_layer *l, gopt__bn *bn, const char *prefix);
/* weight by spec->weights, bias U(+-1/sqrt(C R R)) (or 0, gopt__init_torch_bias) / gamma 1,
 * beta 0, running stats reset. */
gopt_status gopt__init_conv(gopt_layer *l, const gopt__conv *c, const gopt__init_spec *spec, gopt_rng *rng);
void gopt__init_bn(gopt_layer *l, gopt__bn *bn);
double gopt__conv_flops(const gopt__conv *c);
/* "(N,3,32,32)"-style shape text, lead "N" or "". */
void gopt__shape_fmt(char *buf, size_t size, const char *lead, int ndim, const int64_t *shape);
/* GOPT_ESHAPE unless the layer's input is (N,C,H,W). */
gopt_status gopt__need_chw(const gopt_layer *l);
/* Allocate the zeroed per-type state l->st of `size` bytes. */
gopt_status gopt__layer_state(gopt_layer *l, size_t size);

/* ---- what net.c uses (layer.c) ----------------------------------------------------------- */
/* Forward/backward on raw buffers with no checks (the net checked the shapes and ran
 * check_input). They return the type's failure (vt->take_status: a custom layer's callback),
 * GOPT_OK for every built-in type; after a failed forward the activations are incomplete. */
gopt_status gopt__layer_forward_raw(gopt_layer *l, const float *x, int n);
gopt_status gopt__layer_backward_raw(gopt_layer *l, const float *x, float *dy, float *dx, int n);
/* vt->recompute, timed as backward. */
void gopt__layer_recompute_raw(gopt_layer *l, const float *x, int n);
/* gopt_layer_create; own_ws = 0 leaves the output, the per-type buffers and the workspace
 * to the caller (gopt__layer_alloc_buffers, gopt__layer_set_ws), so a net does not hold one
 * workspace per layer even while it is being built. */
gopt_status gopt__layer_create(const gopt_layer_config *cfg, int in_ndim, const int64_t in_shape[], int max_batch,
                               gopt_params *params, const char *prefix, int own_ws, gopt_layer **out);
/* The output buffer (unless the type aliases its input or the layer is recomputed: then
 * the net points l->out into its workspace) and the per-type buffers (vt->alloc(l, lean)). */
gopt_status gopt__layer_alloc_buffers(gopt_layer *l, int lean);
/* Use an external workspace (the net's) instead of an owned one. */
void gopt__layer_set_ws(gopt_layer *l, float *ws);
/* vt->init_params after the arena and scheme checks of gopt_layer_init_params. */
gopt_status gopt__layer_init(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng);
/* vt->flops, vt->bns (0 without). */
double gopt__layer_flops(const gopt_layer *l);
int gopt__layer_bns(gopt_layer *l, gopt__bn **out3);

/* The layers' own state in a net's state blob (vt->state_size; custom layers): for each
 * layer in order whose state_size is > 0, a u64 size and its bytes. size: the bytes of the
 * section; save writes it at w; check reads the section at r (advancing it) and returns
 * GOPT_EFORMAT naming the layer when a size differs; load then reads it at r again,
 * each layer's state_load checking its bytes. */
size_t gopt__layers_state_size(gopt_layer *const *layers, int n);
gopt_status gopt__layers_state_save(gopt_layer *const *layers, int n, gopt__wcur *w);
gopt_status gopt__layers_state_check(gopt_layer *const *layers, int n, gopt__rcur *r);
gopt_status gopt__layers_state_load(gopt_layer *const *layers, int n, gopt__rcur *r);

#endif
