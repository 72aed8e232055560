/* gradopt/custom_layer.h: layers defined by the user, without editing the library.
 *
 * A custom layer is a layer of type GOPT_LAYER_CUSTOM whose behaviour comes from a const
 * table of callbacks (gopt_custom_layer_ops) and a user pointer, both given in the layer
 * config (gopt_layer_custom(ops, user)). It is created, added to a net, run, saved and
 * freed like any built-in layer: gopt_layer_create / gopt_net_add, gopt_net_forward /
 * gopt_net_backward, gopt_net_state_save, gopt_net_freeze, the net's summary (which names it
 * by gopt_layer_label).
 *
 * The callbacks receive a gopt_custom handle: the layer's side of the interface. Through
 * it they register parameters (during setup only), read views of their parameters and
 * gradients (during forward, backward and init), reach the user pointer, and report errors
 * with a message (gopt_custom_fail). Every callback but flops returns a gopt_status; a
 * failure stops the forward or backward of the net there and is returned by the public call
 * that ran it (gopt_layer_forward, gopt_net_forward, ...), with gopt_last_error() reading
 *     "custom layer 'act1' (prelu) forward: <the user's message>".
 * A failing forward leaves no activations: the next backward is refused (GOPT_ESTATE) until
 * a forward succeeds.
 *
 * Callbacks, in the order a layer sees them:
 *   setup(c, in_ndim, in_shape, out_shape, out_ndim)          required
 *       Given the per-sample input shape (in_ndim 1..3, batch excluded), write the
 *       per-sample output shape (out_shape, *out_ndim 1..3; both arrive holding the input's,
 *       so a shape-preserving layer writes nothing) and register the parameters with
 *       gopt_custom_add_param. Refuse a shape with gopt_custom_fail(c, GOPT_ESHAPE, ...):
 *       the create fails with that status and message and the arena is left as it was.
 *   init(c, rng)                                               optional
 *       After the declared initialisations (see gopt_custom_init) of every parameter, draw
 *       whatever else from rng: the net's stream (gopt_net_build with the net's seed,
 *       gopt_net_init_weights), so the same seed gives the same values.
 *   forward(c, x, y, n)                                         required
 *       x (n, in_shape...) -> y (n, out_shape...), 1 <= n <= max_batch. y is the layer's
 *       output buffer; it never overlaps x. Keep in the layer's buffer
 *       (gopt_custom_request_buffer) what backward needs beyond x: in a net, y's memory
 *       holds dy by the time backward runs.
 *   backward(c, x, dy, dx, n)                                   required
 *       The backward of the last forward: x is its input again, dy (n, out_shape...) the
 *       gradient of the output; write dx (n, in_shape...) unless dx is NULL (nothing needs
 *       it: the first layer of a net) and ACCUMULATE (+=) the parameter gradients into the
 *       views of gopt_custom_grad. dx never overlaps x or dy (the layer passes a buffer of
 *       its own when the caller's would, and copies it back). Skip the gradient of a tensor
 *       for which gopt_custom_requires_grad is 0 (frozen): not required (the optimizers
 *       and clipping skip frozen tensors anyway), but it saves the work and keeps the
 *       frozen gradient at 0 as the built-in layers do.
 *   flops(c)                                                    optional (0 without)
 *       Floating-point operations of one forward per sample (multiply-adds x 2), for the
 *       net's summary and gopt_net_forward_flops.
 *   state_size(c), state_save(c, buf, size), state_load(c, buf, size)   optional, together
 *       State of the layer that is not a parameter (running statistics, counters): saved
 *       and loaded by gopt_net_state_save / _load (and so by checkpoints), after the
 *       net's own. state_size must not change over the layer's life; save receives exactly
 *       state_size bytes; load receives the bytes save wrote and should check them and
 *       leave the state unchanged when it refuses (GOPT_EFORMAT with gopt_custom_fail).
 *   destroy(user)                                               optional
 *       Called once when the layer is destroyed (gopt_layer_destroy, gopt_net_destroy),
 *       never when its create fails (the caller still owns user then). With a destroy,
 *       give every layer its own user pointer.
 *
 * Nothing inside forward or backward should allocate (the library's rule for a training
 * step): size buffers in setup (gopt_custom_request_buffer) or in the user data.
 *
 * Worked example: PReLU with one learned slope per feature (torch.nn.PReLU(num_parameters=F)),
 *   y = x if x > 0 else a[f] x,   da[f] += sum over the batch of dy x [x <= 0],
 *   dx = dy if x > 0 else a[f] dy;  (N,F) -> (N,F), a (F) initialised to 0.25.
 *
 *     static gopt_status prelu_setup(gopt_custom *c, int in_ndim, const int64_t in_shape[],
 *                                    int64_t out_shape[3], int *out_ndim) {
 *         (void)out_shape; (void)out_ndim;                 // same shape as the input
 *         if (in_ndim != 1) return gopt_custom_fail(c, GOPT_ESHAPE, "needs (N,F) input");
 *         gopt_custom_init quarter = {.kind = GOPT_CUSTOM_INIT_CONSTANT, .a = 0.25f};
 *         return gopt_custom_add_param(c, "weight", 1, in_shape, GOPT_TAG_WEIGHT, &quarter, NULL);
 *     }
 *     static gopt_status prelu_forward(gopt_custom *c, const float *x, float *y, int n) {
 *         gopt_tensor a;
 *         gopt_status s = gopt_custom_param(c, 0, &a);
 *         if (s != GOPT_OK) return s;
 *         const int64_t F = a.numel;
 *         for (int64_t i = 0; i < n * F; i++) y[i] = x[i] > 0 ? x[i] : a.data[i % F] * x[i];
 *         return GOPT_OK;
 *     }
 *     static gopt_status prelu_backward(gopt_custom *c, const float *x, const float *dy,
 *                                       float *dx, int n) {
 *         gopt_tensor a, da;
 *         gopt_status s = gopt_custom_param(c, 0, &a);
 *         if (s == GOPT_OK) s = gopt_custom_grad(c, 0, &da);
 *         if (s != GOPT_OK) return s;
 *         const int64_t F = a.numel;
 *         const int learn = gopt_custom_requires_grad(c, 0);
 *         for (int64_t i = 0; i < n * F; i++) {
 *             if (learn && x[i] <= 0) da.data[i % F] += dy[i] * x[i];
 *             if (dx) dx[i] = x[i] > 0 ? dy[i] : a.data[i % F] * dy[i];
 *         }
 *         return GOPT_OK;
 *     }
 *     static double prelu_flops(const gopt_custom *c) {   // a compare and a multiply per feature
 *         int64_t in[3];
 *         gopt_custom_in_shape(c, in);
 *         return 2.0 * (double)in[0];
 *     }
 *     static const gopt_custom_layer_ops prelu_ops = {
 *         .name = "prelu", .setup = prelu_setup, .forward = prelu_forward,
 *         .backward = prelu_backward, .flops = prelu_flops,
 *     };
 *     ...
 *     gopt_layer_config act = gopt_layer_custom(&prelu_ops, NULL);
 *     gopt_net_add(net, &act, "act1");        // parameter "act1.weight", like any layer's
 *
 * tests/test_custom_layer.c defines a per-feature affine layer (with a running statistic as
 * state) and checks it against finite differences inside a net of linear layers. */
#ifndef GRADOPT_CUSTOM_LAYER_H
#define GRADOPT_CUSTOM_LAYER_H

#include "layer.h"

GOPT_EXTERN_C_BEGIN

/* The layer's side of the interface, passed to every callback; valid while the layer lives. */
typedef struct gopt_custom gopt_custom;

typedef struct gopt_custom_layer_ops {
    const char *name; /* short type name for messages and the summary ("prelu"); NULL: "custom" */
    gopt_status (*setup)(gopt_custom *c, int in_ndim, const int64_t in_shape[], int64_t out_shape[3], int *out_ndim);
    gopt_status (*init)(gopt_custom *c, gopt_rng *rng);
    gopt_status (*forward)(gopt_custom *c, const float *x, float *y, int n);
    gopt_status (*backward)(gopt_custom *c, const float *x, const float *dy, float *dx, int n);
    double (*flops)(const gopt_custom *c);
    size_t (*state_size)(const gopt_custom *c);
    gopt_status (*state_save)(const gopt_custom *c, void *buf, size_t size);
    gopt_status (*state_load)(gopt_custom *c, const void *buf, size_t size);
    void (*destroy)(void *user);
} gopt_custom_layer_ops;

/* A layer config of type GOPT_LAYER_CUSTOM running `ops` (not copied: it must outlive the
 * layer; a static const table) with `user` (may be NULL). Checked at create: GOPT_EINVAL
 * when ops, ops->setup, ops->forward or ops->backward is NULL, or when only some of the
 * three state callbacks are set. */
GOPT_API gopt_layer_config gopt_layer_custom(const gopt_custom_layer_ops *ops, void *user);

/* The name of a layer's type for a summary or a message: a custom layer's ops name
 * ("prelu", "custom" when the ops have none), else gopt_layer_type_name of its type;
 * "unknown" for NULL. */
GOPT_API const char *gopt_layer_label(const gopt_layer *l);

/* ---- setup: parameters ---------------------------------------------------------------- */

/* How a parameter is initialised, at gopt_net_build (or gopt_layer_init_params) and
 * gopt_net_init_weights, in registration order, before ops->init:
 *   ZEROS     0 (also what a NULL init means)
 *   CONSTANT  a
 *   UNIFORM   U(a, b), a <= b
 *   NORMAL    N(a, b^2): mean a, standard deviation b >= 0
 *   SCHEME    gopt_tensor_init(scheme) (fans as torch.nn.init; 2-D or more), e.g.
 *             GOPT_INIT_TORCH_DEFAULT as nn.Linear's weight; gopt_net_init_weights applies its
 *             own `weights` scheme to these tensors instead. */
typedef enum gopt_custom_init_kind {
    GOPT_CUSTOM_INIT_ZEROS = 0,
    GOPT_CUSTOM_INIT_CONSTANT,
    GOPT_CUSTOM_INIT_UNIFORM,
    GOPT_CUSTOM_INIT_NORMAL,
    GOPT_CUSTOM_INIT_SCHEME
} gopt_custom_init_kind;

typedef struct gopt_custom_init {
    gopt_custom_init_kind kind;
    float a, b;
    gopt_init scheme;
} gopt_custom_init;

#define GOPT_CUSTOM_MAX_PARAMS 32 /* parameters per custom layer */

/* During setup only: register "<layer name>.<suffix>" in the arena with `tag` (GOPT_TAG_WEIGHT,
 * _BIAS or _NORM: what parameter groups and weight-decay exemptions select on) and `init`
 * (copied; NULL: zeros). *index (may be NULL) receives the layer's own index of the tensor,
 * 0 for the first registered, for gopt_custom_param / _grad / _requires_grad.
 * Errors: GOPT_ESTATE (not in setup), GOPT_EINVAL (suffix not 1.. bytes or the whole name
 * over 63 bytes, duplicate name, bad tag or init, more than GOPT_CUSTOM_MAX_PARAMS),
 * GOPT_ESHAPE (SCHEME on a 1-D tensor, bad shape), GOPT_ENOMEM. */
GOPT_API gopt_status gopt_custom_add_param(gopt_custom *c, const char *suffix, int ndim, const int64_t shape[],
                                           gopt_param_tag tag, const gopt_custom_init *init, int *index);

/* During setup only: ask for a buffer of floats_per_sample x max_batch floats that the
 * layer keeps (allocated with the layer's other buffers, zeroed), for what forward saves
 * for backward; gopt_custom_buffer returns it. A second call replaces the size.
 * Errors: GOPT_ESTATE (not in setup), GOPT_EINVAL (floats_per_sample < 0 or above 2^31). */
GOPT_API gopt_status gopt_custom_request_buffer(gopt_custom *c, int64_t floats_per_sample);

/* ---- in every callback -------------------------------------------------------------------- */

GOPT_API void *gopt_custom_user(const gopt_custom *c);
/* The layer's name in its net (the prefix of its parameters), e.g. "act1". */
GOPT_API const char *gopt_custom_name(const gopt_custom *c);
/* Per-sample shapes (returns ndim); the output's is 0 until setup has returned. */
GOPT_API int gopt_custom_in_shape(const gopt_custom *c, int64_t shape[3]);
GOPT_API int gopt_custom_out_shape(const gopt_custom *c, int64_t shape[3]);
GOPT_API int gopt_custom_max_batch(const gopt_custom *c);
/* 1 in training mode (gopt_net_set_training / gopt_layer_set_training), 0 in eval mode. */
GOPT_API int gopt_custom_training(const gopt_custom *c);
/* The buffer of gopt_custom_request_buffer (NULL without one, and before the layer's
 * buffers exist: from forward on it is there). */
GOPT_API float *gopt_custom_buffer(const gopt_custom *c);
/* Number of parameters registered. */
GOPT_API int gopt_custom_param_count(const gopt_custom *c);
/* Views (owns_data = 0, shape as registered) of the value / gradient of the layer's
 * parameter `index`. Errors: GOPT_ERANGE (index), GOPT_ESTATE (the arena is not finalized:
 * during setup). */
GOPT_API gopt_status gopt_custom_param(const gopt_custom *c, int index, gopt_tensor *value);
GOPT_API gopt_status gopt_custom_grad(const gopt_custom *c, int index, gopt_tensor *grad);
/* 0 when parameter `index` is frozen (gopt_params_set_frozen, gopt_layer_set_frozen,
 * gopt_net_freeze) or out of range: backward need not compute its gradient. */
GOPT_API int gopt_custom_requires_grad(const gopt_custom *c, int index);

/* Record "custom layer '<name>' (<ops name>) <callback>: <message>" as this thread's error
 * detail and return s (GOPT_EINVAL if s is GOPT_OK, which is not a failure). A callback
 * that fails without calling it gets "... returned <status string> without a message". */
GOPT_API gopt_status gopt_custom_fail(const gopt_custom *c, gopt_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

GOPT_EXTERN_C_END

#endif /* GRADOPT_CUSTOM_LAYER_H */
