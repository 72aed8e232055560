/* gradopt/net.h: a net of layers that owns them and its parameter arena, and the CIFAR
 * ResNet builder.
 *
 * Build: gopt_net_create(cfg) -> gopt_net_add(layer configs, in order; each layer's input
 * shape is the previous one's output) -> gopt_net_build (finalizes the arena, initialises
 * the parameters from cfg.seed, sizes every buffer for cfg.max_batch once). After build,
 * forward/backward allocate nothing; any batch 1..max_batch works.
 *
 * Nets of any shape (as a Keras functional model or a PyTorch forward with branches): every
 * layer has a unique name; gopt_net_add_from makes a layer read the output of any earlier
 * layer (or the net's input, "input"), and gopt_net_add_merge adds an add or concat node
 * over several earlier outputs, so residual, multi-branch and multi-input-path nets are
 * built from ordinary layers. Layers run in the order they were added; the net's output is
 * the last layer's. In such a net (a "graph net": some layer reads other than the previous
 * one) backward keeps the activations and gives layer outputs gradient buffers of their
 * own (max_batch x the per-sample output floats), shared between layers whose gradients
 * are not needed at the same time (a chain of layers needs two or three), plus one scratch
 * as large as the largest output read by several layers: an output read by k layers
 * receives the sum of their k input gradients, added in the reverse of the order the
 * readers were added. A purely sequential net keeps the in-place scheme below, with no
 * extra memory. gopt_net_summary reports the total.
 *
 * Memory: each layer keeps only what its backward needs: a basic block keeps conv1's output,
 * conv2's output (or, in the blocks of the largest activation size when there are several,
 * recomputes it in backward from one shared scratch), the shortcut conv's output and its own
 * output; bn1+relu is applied on the fly; layers marked with gopt_net_set_recompute keep no
 * output at all. Gradients are computed in place: a layer's output
 * gradient lives in its output buffer and its input gradient overwrites the previous
 * layer's output, so backward consumes the activations of the forward it follows. One
 * workspace (per-thread convolution scratch) is shared by all layers.
 *
 * Threads: gopt_set_threads(T) governs the OpenMP loops (convolution over images,
 * batchnorm over channels, pooling) and OpenBLAS (the OpenMP build, one runtime), which is
 * never called from inside an OpenMP region. Where the CPU has AVX-512 (checked at run
 * time) convolutions use the library's own kernels, otherwise im2col + SGEMM; results may
 * differ between the two in the last bits, never between runs with the same thread count. */
#ifndef GRADOPT_NET_H
#define GRADOPT_NET_H

#include "layer.h"

GOPT_EXTERN_C_BEGIN

typedef enum gopt_net_init {
    GOPT_NET_INIT_TORCH = 0, /* PyTorch defaults: kaiming-uniform a=sqrt(5) weights, U(+-1/sqrt(fan_in)) biases */
    GOPT_NET_INIT_HE = 1     /* conv weights He-normal (fan_in, gain sqrt 2); linear as PyTorch */
} gopt_net_init;

typedef struct gopt_net_config {
    int max_batch;         /* >= 1 */
    int in_ndim;           /* 1..3: per-sample input shape in_shape[0..in_ndim-1] */
    int64_t in_shape[3];   /* e.g. {3, 32, 32} */
    uint64_t seed;         /* parameter initialisation */
    gopt_net_init init;
} gopt_net_config;

GOPT_API gopt_net_config gopt_net_config_default(void); /* batch 128, (3,32,32), seed 0, TORCH */

typedef struct gopt_net gopt_net;

GOPT_API gopt_status gopt_net_create(const gopt_net_config *cfg, gopt_net **out);
GOPT_API void gopt_net_destroy(gopt_net *net);
/* Append a layer reading the previous layer's output (the net's input for the first);
 * name (NULL: "layer<i>", i its index) names the layer and prefixes its parameter names.
 * Names are unique within a net, 1..40 bytes, and "input" is reserved.
 * Errors: as gopt_layer_create, GOPT_EINVAL (a name taken or reserved; an add or concat
 * type: use gopt_net_add_merge), GOPT_ESTATE after build. */
GOPT_API gopt_status gopt_net_add(gopt_net *net, const gopt_layer_config *cfg, const char *name);
/* As gopt_net_add, but the layer reads the output of the earlier layer named `input`:
 * "input" means the net's input (cfg.in_shape), NULL the previous layer (gopt_net_add).
 * Its per-sample input shape is that layer's output shape.
 * Errors: GOPT_EINVAL (no earlier layer named `input`, naming it), as gopt_net_add. */
GOPT_API gopt_status gopt_net_add_from(gopt_net *net, const gopt_layer_config *cfg, const char *name,
                                       const char *input);
/* A merge node over the outputs of the earlier layers named inputs[0..ninputs-1] ("input":
 * the net's input; a name may appear more than once), named `name` (NULL: "layer<i>"):
 *   GOPT_LAYER_ADD     y = x_0 + x_1 + ... (left to right), all inputs of one shape S;
 *                      output S. Backward: every input's gradient is dy.
 *   GOPT_LAYER_CONCAT  y = cat(x_0, x_1, ...) along the first per-sample dimension: inputs
 *                      (C_j,H,W) -> (sum C_j,H,W) (torch.cat(dim=1)), (F_j) -> (sum F_j);
 *                      the other dimensions equal. Backward: each input gets its slice of dy.
 * No parameters, no FLOPs counted (gopt_net_forward_flops counts conv and linear only).
 * Loops run over OpenMP threads for large batches.
 * Errors: GOPT_EINVAL (kind not ADD or CONCAT, ninputs outside 2..1024, an input name
 * unknown, naming it, a name taken), GOPT_ESHAPE (naming the offending input, its shape and
 * the first input's shape), GOPT_ESTATE (built), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_net_add_merge(gopt_net *net, gopt_layer_type kind, const char *const inputs[], int ninputs,
                                        const char *name);
/* The name of layer i (NULL out of range), valid until gopt_net_destroy. */
GOPT_API const char *gopt_net_layer_name(const gopt_net *net, int i);
/* The index of the layer named `name` into *index (may be NULL).
 * Errors: GOPT_EINVAL (NULL net or name), GOPT_ERANGE (no such layer). */
GOPT_API gopt_status gopt_net_find_layer(const gopt_net *net, const char *name, int *index);
/* Recompute (activation checkpointing, as torch.utils.checkpoint): on = 1 makes layer i keep
 * no output of its own. Forward writes it into the net's shared workspace, where layer i+1
 * reads it; backward, just before layer i+1's backward, rewrites it from layer i's stored
 * input, bit for bit as forward wrote it and changing no state (a batchnorm reuses the batch
 * statistics of the forward without updating its running ones again; a dropout reuses its
 * mask), then runs layers i+1 and i as usual. It trades one more forward of layer i per step
 * for its output buffer (max_batch x its per-sample output floats); the workspace grows
 * only where that output plus the scratch of layers i and i+1 exceeds it. After a forward
 * the layer's output (gopt_net_layer(net, i)) is not readable. The CIFAR ResNet builder
 * recomputes its stem convolution this way. Call between gopt_net_add and gopt_net_build.
 * Errors: GOPT_EINVAL (i out of range; a type that cannot be recomputed: flatten, whose
 * output is its input, and basic_block, whose forward updates three batchnorms),
 * GOPT_ESTATE (built). gopt_net_build then fails with GOPT_EINVAL if a recomputed layer is
 * the last one, is next to another recomputed layer, or feeds a flatten, and in a graph net
 * (gopt_net_add_from, gopt_net_add_merge), where recompute is not supported. */
GOPT_API gopt_status gopt_net_set_recompute(gopt_net *net, int i, int on);
/* Errors: GOPT_ESTATE (twice, or no layers), GOPT_EINVAL (recompute, above; in a graph net,
 * a layer other than the last whose output no layer reads, naming it), GOPT_ENOMEM (the net
 * stays unbuilt and keeps what it allocated; a later build completes it). */
GOPT_API gopt_status gopt_net_build(gopt_net *net);

/* The arena (owned by the net; valid until gopt_net_destroy). */
/* Re-initialise the parameters of layer `layer` (-1: every layer) after build, from `seed`
 * (the same seed, scheme and net give the same values), as a PyTorch user does with
 * torch.nn.init over model.modules() (or Keras' kernel_initializer / recurrent_initializer):
 *  - linear, conv2d, basic blocks' convolutions: weights by `weights` (gopt_tensor_init);
 *    biases U(+-1/sqrt(fan_in)) under GOPT_INIT_TORCH_DEFAULT, else 0.
 *  - rnn, lstm, gru: each gate's block of weight_ih by `weights` and of weight_hh by
 *    `recurrent` (e.g. XAVIER_UNIFORM and ORTHOGONAL, Keras' LSTM default); both
 *    TORCH_DEFAULT restores PyTorch's U(+-1/sqrt(H)) for every parameter, biases included;
 *    otherwise biases are 0.
 *  - embedding: N(0,1) under TORCH_DEFAULT, else by `weights`.
 *  - batchnorm: gamma 1, beta 0, running statistics reset; other layers have no parameters.
 * One stream from `seed` runs through the layers in order, drawing as gopt_net_build does:
 * layer -1 with TORCH_DEFAULT twice and seed = cfg.seed gives back the values build gave a
 * GOPT_NET_INIT_TORCH net (a single layer draws from the start of the stream).
 * Errors: GOPT_ESTATE (not built), GOPT_ERANGE (layer), GOPT_EINVAL (a scheme out of range). */
GOPT_API gopt_status gopt_net_init_weights(gopt_net *net, int layer, gopt_init weights, gopt_init recurrent,
                                           uint64_t seed);

GOPT_API gopt_params *gopt_net_params(gopt_net *net);
GOPT_API int gopt_net_layer_count(const gopt_net *net);
GOPT_API gopt_layer *gopt_net_layer(gopt_net *net, int i); /* NULL out of range */
/* Per-sample output shape; returns its ndim. */
GOPT_API int gopt_net_out_shape(const gopt_net *net, int64_t out_shape[3]);

GOPT_API void gopt_net_set_training(gopt_net *net, int training); /* 1 train (default), 0 eval */

/* logits = net(x): x (N, in_shape...), 1 <= N <= max_batch, is copied (the caller may
 * reuse it); *logits becomes a view (N, out_shape...) of the net's buffer, valid until the
 * next forward. Errors: GOPT_ESHAPE naming both shapes, GOPT_ESTATE (not built). */
GOPT_API gopt_status gopt_net_forward(gopt_net *net, const gopt_tensor *x, gopt_tensor *logits);
/* Backward of the last forward from dlogits (not modified; the logits view stays valid):
 * dlogits is (M, out_shape...) with M >= N, the last forward's batch, and its first N rows
 * are read, so a buffer allocated once at (max_batch, ...) serves a short last batch.
 * Accumulates (+=) into the arena's gradients. It consumes the forward's activations: a
 * second backward needs a new forward. A layer with no trainable parameters in it or
 * anywhere upstream (parameter-free or frozen layers only) is skipped entirely, and no
 * layer computes an input gradient that nothing upstream needs; a frozen layer with
 * trainable layers upstream still runs backward for its input gradient. Errors: GOPT_ESHAPE (naming both
 * shapes), GOPT_ESTATE (not built, no forward, or backward already ran for this forward). */
GOPT_API gopt_status gopt_net_backward(gopt_net *net, const gopt_tensor *dlogits);

/* ---- sequences: a net whose first layer is an embedding takes token ids (per-sample
 * input shape (T): cfg.in_ndim 1, cfg.in_shape[0] = T; an embedding anywhere else is
 * refused by gopt_net_add). gopt_net_forward accepts them as floats holding exact
 * integers; this takes them as integers: tokens[n*T] (sample-major), each in
 * [0, num_embeddings), 1 <= n <= max_batch; backward as after gopt_net_forward.
 * Errors: GOPT_EINVAL (an id out of range or not an integer, naming it and its position;
 * the first layer not an embedding), GOPT_ESHAPE, GOPT_ESTATE as gopt_net_forward. */
GOPT_API gopt_status gopt_net_forward_tokens(gopt_net *net, const int32_t *tokens, int n, gopt_tensor *logits);
/* Zero the carried initial states of every recurrent layer (gopt_layer_rnn_reset_state). */
GOPT_API void gopt_net_reset_state(gopt_net *net);

/* ---- BatchNorm recalibration (torch.optim.swa_utils.update_bn, PyTorch 1.13) ------------
 * Recompute every BatchNorm's running statistics at the current weights: reset them (mean
 * 0, var 1), run nbatches training-mode forwards with the cumulative average in place of
 * the momentum (PyTorch's momentum=None: batch k, 1-based, enters with weight 1/k), so that
 * after the call running_mean is the mean of the batches' means and running_var the mean of
 * their unbiased variances, each batch weighted equally whatever its size. Then the
 * momenta and the training/eval flag are restored. Use it after gopt_average_swap (the
 * averaged weights) or gopt_optim_eval (Schedule-Free's x), before evaluating.
 * next(user, i, &x) is called for i = 0..nbatches-1 and points x at batch i: a tensor
 * (N, in_shape...) with 1 <= N <= max_batch, read before the next call (the net copies it).
 * As in update_bn, dropout layers are active during these forwards; unlike it, their random
 * streams are put back afterwards, so a run that recalibrates draws the same training
 * masks as one that does not. A net without BatchNorm returns GOPT_OK at once without
 * calling next (update_bn returns before reading the loader). With synchronised BatchNorm
 * (gradopt/dist.h) every process must make the call with the same nbatches.
 * Allocates a few bytes per BatchNorm and dropout layer (not a training step).
 * Errors: GOPT_EINVAL (NULL, nbatches < 1), GOPT_ESTATE (not built), GOPT_ENOMEM, the
 * status of next or of the forward (GOPT_ESHAPE, ...): the statistics then hold the batches
 * before the failure, and the momenta, flag and streams are restored all the same. */
typedef gopt_status (*gopt_net_batch_fn)(void *user, int64_t i, gopt_tensor *x);
GOPT_API gopt_status gopt_net_recalibrate_bn(gopt_net *net, int64_t nbatches, gopt_net_batch_fn next, void *user);

/* ---- timing: per layer type, forward and backward seconds and calls (off by default).
 * Inside a basic block, convolutions and batchnorms count as their own types and the
 * remaining elementwise work (residual add, relu) as GOPT_LAYER_BASIC_BLOCK. */
typedef struct gopt_net_timing {
    double forward_s[GOPT_LAYER_TYPE_COUNT];
    double backward_s[GOPT_LAYER_TYPE_COUNT];
    int64_t calls[GOPT_LAYER_TYPE_COUNT];
} gopt_net_timing;
GOPT_API void gopt_net_set_timing(gopt_net *net, int on);
GOPT_API void gopt_net_timing_get(const gopt_net *net, gopt_net_timing *out);
GOPT_API void gopt_net_timing_reset(gopt_net *net);
/* Multiply-adds x 2 of one forward pass per sample (conv and linear only). */
GOPT_API double gopt_net_forward_flops(const gopt_net *net);

/* ---- summary, as Keras' model.summary() or torchinfo.summary: a text table with one row
 * per layer: name, type, per-sample output shape with the batch as "N" ("(N,16,32,32)"),
 * the names of its inputs where it does not simply read the previous layer (a merge, or
 * gopt_net_add_from), its parameter count (marked "(F)" when every tensor of the layer is
 * frozen, "(part F)" when some are) and its FLOPs per sample (as gopt_net_forward_flops);
 * then the totals: parameters (equal to gopt_params_numel), trainable and frozen
 * parameters (those in frozen tensors: gopt_net_freeze, gopt_params_set_frozen), forward FLOPs per
 * sample, and the activation memory at max_batch in bytes: the layers' output buffers
 * (flatten and recomputed layers keep none; what a basic block or a recurrent layer saves
 * inside for its backward is not counted) and, in a graph net, its gradient buffers.
 * Writes at most `size` bytes including the terminating NUL into buf (buf may be NULL when
 * size is 0) and returns the length of the whole text (snprintf's convention: the text was
 * cut if the return value >= size); 0 for a NULL net. Works before and after build. */
GOPT_API size_t gopt_net_summary(const gopt_net *net, char *buf, size_t size);

/* ---- state: BatchNorm running statistics and the random streams of dropout layers and of
 * dropout between recurrent layers (non-parameter state), params.h convention: a resumed
 * run draws the masks the uninterrupted one would. Load requires the same BN layers
 * (count, channels) and the same number of dropout streams, and names the first mismatch;
 * a blob saved before the streams were kept ("GNS1") loads and leaves them as they are.
 * Custom layers' own state (gradopt/custom_layer.h: state_size/save/load) follows, layer by
 * layer; their loads run (and may refuse) before anything else changes. */
GOPT_API size_t gopt_net_state_size(const gopt_net *net);
GOPT_API gopt_status gopt_net_state_save(const gopt_net *net, void *buf, size_t size);
GOPT_API gopt_status gopt_net_state_load(gopt_net *net, const void *buf, size_t size);

/* ---- buffers: the non-parameter tensors of the net by name (PyTorch's module buffers) ----
 * Every BatchNorm (a batchnorm layer, and the two or three inside a basic block) has two,
 * its running statistics, named after its scale: "bn1.weight" -> "bn1.running_mean" and
 * "bn1.running_var" (C floats each), "layer1.0.shortcut.bn.running_var", ... They are not in
 * the parameter arena (gopt_params_find does not know them: no gradient, no optimizer).
 * Buffer i (0 <= i < count) is running_mean of batchnorm i/2 for even i, running_var for odd
 * i, batchnorms in layer order. The views point into the net (writable; a write changes
 * what eval-mode forwards use) and stay valid until gopt_net_destroy; they exist from
 * gopt_net_add on. The library does not count BatchNorm updates (PyTorch's
 * num_batches_tracked: its momentum is fixed, the count only matters to momentum=None), so
 * there is no such buffer; gradopt/interop.h writes one on export.
 * find_buffer takes the net's name or its PyTorch name (gopt_net_torch_name, interop.h:
 * "layers.0.bn1.running_mean" for the first block of gopt_resnet_cifar).
 * Errors: GOPT_EINVAL (NULL), GOPT_ERANGE (index out of range; no buffer of that name). */
typedef struct gopt_net_buffer {
    char name[GOPT_PARAM_NAME_MAX + 16]; /* "<batchnorm>.running_mean" / ".running_var" */
    gopt_tensor value;                   /* borrowed view (C) */
    int layer;                           /* index of the layer that owns it */
} gopt_net_buffer;
GOPT_API int gopt_net_buffer_count(const gopt_net *net); /* 0 for NULL */
GOPT_API gopt_status gopt_net_buffer_info(gopt_net *net, int i, gopt_net_buffer *out);
GOPT_API gopt_status gopt_net_find_buffer(gopt_net *net, const char *name, gopt_tensor *view);

/* ---- CIFAR ResNet (He et al. 2016, sec. 4.2): 6n+2 layers, widths 16k, 32k, 64k
 * (k = width multiplier, rounded, at least 1); stem conv3x3(3->16k)+BN+ReLU, 3 stages of n
 * basic blocks (stride 1, 2, 2) with 1x1-projection (conv stride 2 + BN) shortcuts where the
 * shape changes, global average pool, linear 64k -> classes (with bias). Convs have no
 * bias. ResNet-20 (depth 20, k 1, 10 classes) has 272,474 parameters.
 * Input (N,3,32,32) (any H, W >= 4 also works), output (N,classes). */
typedef struct gopt_resnet_config {
    int depth;          /* 6n+2: 8, 20, 32, 56, ... */
    float width;        /* k > 0, default 1 */
    int num_classes;    /* default 10 */
    int max_batch;      /* default 128 */
    int64_t in_shape[3];/* default (3,32,32) */
    uint64_t seed;
    gopt_net_init init; /* default GOPT_NET_INIT_HE */
    int graph;          /* 0 (default): each block one fused basic_block layer; 1: written out
                           with the public graph calls (gopt_net_add_from, gopt_net_add_merge):
                           conv1, bn1 (+ReLU), conv2, bn2, [shortcut.conv, shortcut.bn], add,
                           relu per block "layer<s>.<b>", the tensors named as the fused block's.
                           The same outputs, gradients and running statistics bit for bit from
                           the same weights (tests/test_net_dag.c), the form to copy for a
                           variant; 17% slower per ResNet-20 step (214 vs 183 ms, AMD EPYC Zen 3,
                           batch 128: the fused block folds the add and ReLU into its BN2
                           backward) and more memory, so not the default. Initial values differ
                           (another draw order); PyTorch names (interop.h) are the fused net's. */
} gopt_resnet_config;
GOPT_API gopt_resnet_config gopt_resnet_config_default(void);
/* Errors: GOPT_EINVAL (depth not 6n+2 with n >= 1, width <= 0, classes < 1), as gopt_net_*. */
GOPT_API gopt_status gopt_resnet_cifar(const gopt_resnet_config *cfg, gopt_net **out);

/* ---- freezing (src/nn/net_freeze.c; PyTorch's requires_grad_(False)) ----
 * Freeze (on = 1) or unfreeze (0) by name: a tensor name ("fc.bias") freezes that tensor, a
 * layer name ("fc", "layer1.0": gopt_net_find_layer) the layer and all its tensors
 * (gopt_layer_set_frozen), and a part of a layer ("layer1.0.conv1" inside a basic block)
 * every tensor whose name starts with "<name>.". What freezing does: gopt_params_set_frozen
 * (params.h) and gopt_layer_set_frozen (layer.h). Valid before or after gopt_net_build and
 * between steps.
 * Errors: GOPT_EINVAL (NULL, on not 0/1), GOPT_ERANGE (no tensor, layer or part of a layer
 * has that name). */
GOPT_API gopt_status gopt_net_freeze(gopt_net *net, const char *name, int on);

GOPT_EXTERN_C_END

#endif /* GRADOPT_NET_H */
