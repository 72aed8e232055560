/* custom: layers whose forward, backward, parameters and state come from the user's
 * callbacks (see gradopt/custom_layer.h). This file is the GOPT_LAYER_CUSTOM vtable: it
 * calls the callbacks, keeps their failures for the generic layer code (take_status) with
 * the user's message, registers the parameters they ask for and initialises them as
 * declared, and guarantees the backward a dx that overlaps neither x nor dy. */
#include <stdio.h>

#include "core/common.h"
#include "gradopt/custom_layer.h"
#include "nn/layer.h"

typedef struct custom_param {
    int index; /* in the arena */
    gopt_custom_init init;
} custom_param;

struct gopt_custom {
    gopt_layer *layer;
    const gopt_custom_layer_ops *ops;
    void *user;
    const char *prefix;        /* during setup only (the caller's string) */
    char name[48];             /* the layer's name: its parameters' prefix */
    const char *phase;         /* the callback running: "setup", "forward", ... */
    int in_setup;
    int reported;              /* gopt_custom_fail was called in this callback */
    gopt_status status;        /* the last forward's / backward's failure, for take_status */
    custom_param params[GOPT_CUSTOM_MAX_PARAMS];
    int nparams;
    int64_t buffer_per_sample;
    float *buffer;             /* max_batch x buffer_per_sample */
    float *dx_scratch;         /* max_batch x in_numel: dx when the caller's overlaps x or dy */
};

static const char *ops_name(const gopt_custom *c) { return c->ops && c->ops->name ? c->ops->name : "custom"; }

/* ---- the public helpers the callbacks use ------------------------------------------------- */

gopt_layer_config gopt_layer_custom(const gopt_custom_layer_ops *ops, void *user) {
    gopt_layer_config cfg = gopt_layer_config_default(GOPT_LAYER_CUSTOM);
    cfg.custom = ops;
    cfg.custom_user = user;
    return cfg;
}

const char *gopt_layer_label(const gopt_layer *l) {
    if (!l) return "unknown";
    if (l->cfg.type == GOPT_LAYER_CUSTOM && l->st) return ops_name(l->st);
    return gopt_layer_type_name(l->cfg.type);
}

gopt_status gopt_custom_fail(const gopt_custom *c, gopt_status s, const char *fmt, ...) {
    if (s == GOPT_OK) s = GOPT_EINVAL;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt ? fmt : "", ap);
    va_end(ap);
    if (!c) return gopt__fail(s, "custom layer", "%s", msg);
    ((gopt_custom *)c)->reported = 1;
    char where[96]; /* the prefix gopt__fail puts before ": " */
    snprintf(where, sizeof where, "custom layer '%s' (%s) %s", c->name, ops_name(c), c->phase ? c->phase : "call");
    return gopt__fail(s, where, "%s", msg);
}

gopt_status gopt_custom_add_param(gopt_custom *c, const char *suffix, int ndim, const int64_t shape[],
                                  gopt_param_tag tag, const gopt_custom_init *init, int *index) {
    GOPT_CHECK_NULL(c);
    GOPT_CHECK_NULL(suffix);
    if (!c->in_setup)
        return GOPT_FAIL(GOPT_ESTATE, "'%s': parameters are registered in setup only", c->name);
    if (c->nparams >= GOPT_CUSTOM_MAX_PARAMS)
        return GOPT_FAIL(GOPT_EINVAL, "'%s': more than %d parameters", c->name, GOPT_CUSTOM_MAX_PARAMS);
    gopt_custom_init in = {GOPT_CUSTOM_INIT_ZEROS, 0.0f, 0.0f, GOPT_INIT_TORCH_DEFAULT};
    if (init) in = *init;
    switch (in.kind) {
    case GOPT_CUSTOM_INIT_ZEROS: break;
    case GOPT_CUSTOM_INIT_CONSTANT:
        if (!isfinite(in.a)) return GOPT_FAIL(GOPT_EINVAL, "'%s.%s': constant init %g is not finite", c->name, suffix, in.a);
        break;
    case GOPT_CUSTOM_INIT_UNIFORM:
        if (!(isfinite(in.a) && isfinite(in.b) && in.a <= in.b))
            return GOPT_FAIL(GOPT_EINVAL, "'%s.%s': uniform init U(%g, %g) needs finite a <= b", c->name, suffix, in.a, in.b);
        break;
    case GOPT_CUSTOM_INIT_NORMAL:
        if (!(isfinite(in.a) && isfinite(in.b) && in.b >= 0))
            return GOPT_FAIL(GOPT_EINVAL, "'%s.%s': normal init N(%g, %g^2) needs a finite mean and std >= 0", c->name,
                             suffix, in.a, in.b);
        break;
    case GOPT_CUSTOM_INIT_SCHEME:
        if (!(in.scheme >= GOPT_INIT_HE_NORMAL && in.scheme <= GOPT_INIT_ORTHOGONAL))
            return GOPT_FAIL(GOPT_EINVAL, "'%s.%s': init scheme %d is not a gopt_init", c->name, suffix, (int)in.scheme);
        if (ndim < 2)
            return GOPT_FAIL(GOPT_ESHAPE, "'%s.%s': init scheme %s needs a tensor of 2 or more dimensions (fans), not "
                             "%d", c->name, suffix, gopt_init_name(in.scheme), ndim);
        break;
    default: return GOPT_FAIL(GOPT_EINVAL, "'%s.%s': init kind %d is not a gopt_custom_init_kind", c->name, suffix,
                              (int)in.kind);
    }
    size_t len = strlen(c->prefix), slen = strlen(suffix);
    if (slen < 1 || len + 1 + slen >= GOPT_PARAM_NAME_MAX)
        return GOPT_FAIL(GOPT_EINVAL, "'%s': suffix '%s' must be 1 byte or more and '%s.%s' at most %d bytes", c->name,
                         suffix, c->name, suffix, GOPT_PARAM_NAME_MAX - 1);
    int idx;
    GOPT_TRY(gopt__add_param(c->layer, c->prefix, suffix, ndim, shape, tag, &idx));
    c->params[c->nparams].index = idx;
    c->params[c->nparams].init = in;
    if (index) *index = c->nparams;
    c->nparams++;
    return GOPT_OK;
}

gopt_status gopt_custom_request_buffer(gopt_custom *c, int64_t floats_per_sample) {
    GOPT_CHECK_NULL(c);
    if (!c->in_setup) return GOPT_FAIL(GOPT_ESTATE, "'%s': the buffer is requested in setup only", c->name);
    if (floats_per_sample < 0 || floats_per_sample > ((int64_t)1 << 31))
        return GOPT_FAIL(GOPT_EINVAL, "'%s': floats_per_sample = %lld must be in 0..2^31", c->name,
                         (long long)floats_per_sample);
    c->buffer_per_sample = floats_per_sample;
    return GOPT_OK;
}

void *gopt_custom_user(const gopt_custom *c) { return c ? c->user : NULL; }
const char *gopt_custom_name(const gopt_custom *c) { return c ? c->name : ""; }

int gopt_custom_in_shape(const gopt_custom *c, int64_t shape[3]) {
    if (!c || !shape) return 0;
    for (int i = 0; i < 3; i++) shape[i] = c->layer->in_shape[i];
    return c->layer->in_ndim;
}

int gopt_custom_out_shape(const gopt_custom *c, int64_t shape[3]) {
    if (!c || !shape) return 0;
    for (int i = 0; i < 3; i++) shape[i] = c->layer->out_shape[i];
    return c->layer->out_ndim;
}

int gopt_custom_max_batch(const gopt_custom *c) { return c ? c->layer->max_batch : 0; }
int gopt_custom_training(const gopt_custom *c) { return c ? c->layer->training : 0; }
float *gopt_custom_buffer(const gopt_custom *c) { return c ? c->buffer : NULL; }
int gopt_custom_param_count(const gopt_custom *c) { return c ? c->nparams : 0; }

static gopt_status param_info(const gopt_custom *c, int index, gopt_param_info *info) {
    GOPT_CHECK_NULL(c);
    if (index < 0 || index >= c->nparams)
        return GOPT_FAIL(GOPT_ERANGE, "'%s': parameter %d is outside 0..%d", c->name, index, c->nparams - 1);
    if (!gopt_params_finalized(c->layer->params))
        return GOPT_FAIL(GOPT_ESTATE, "'%s': the params arena is not finalized (no views during setup)", c->name);
    return gopt_params_info(c->layer->params, c->params[index].index, info);
}

gopt_status gopt_custom_param(const gopt_custom *c, int index, gopt_tensor *value) {
    GOPT_CHECK_NULL(value);
    gopt_param_info info;
    GOPT_TRY(param_info(c, index, &info));
    *value = info.value;
    return GOPT_OK;
}

gopt_status gopt_custom_grad(const gopt_custom *c, int index, gopt_tensor *grad) {
    GOPT_CHECK_NULL(grad);
    gopt_param_info info;
    GOPT_TRY(param_info(c, index, &info));
    *grad = info.grad;
    return GOPT_OK;
}

int gopt_custom_requires_grad(const gopt_custom *c, int index) {
    if (!c || index < 0 || index >= c->nparams) return 0;
    return !gopt_params_is_frozen(c->layer->params, c->params[index].index);
}

/* ---- calling the user ------------------------------------------------------------------------ */

static void begin(gopt_custom *c, const char *phase) {
    c->phase = phase;
    c->reported = 0;
}

/* A failing callback's status, with a message if it left none. */
static gopt_status finish(gopt_custom *c, gopt_status s) {
    if (s != GOPT_OK && !c->reported)
        s = gopt_custom_fail(c, s, "returned %s without a message (gopt_custom_fail)", gopt_status_str(s));
    c->phase = NULL;
    return s;
}

/* ---- the vtable ------------------------------------------------------------------------------- */

static gopt_status custom_setup(gopt_layer *l, const char *prefix) {
    const gopt_custom_layer_ops *ops = l->cfg.custom;
    if (!ops) return GOPT_FAIL(GOPT_EINVAL, "custom layer '%s': config field custom (the ops) is NULL (use gopt_layer_custom)", prefix);
    if (!ops->setup || !ops->forward || !ops->backward)
        return GOPT_FAIL(GOPT_EINVAL, "custom layer '%s' (%s): ops.%s is NULL (setup, forward and backward are required)",
                         prefix, ops->name ? ops->name : "custom",
                         !ops->setup ? "setup" : !ops->forward ? "forward" : "backward");
    int nstate = (ops->state_size != NULL) + (ops->state_save != NULL) + (ops->state_load != NULL);
    if (nstate != 0 && nstate != 3)
        return GOPT_FAIL(GOPT_EINVAL, "custom layer '%s' (%s): state_size, state_save and state_load go together (%d "
                         "of 3 set)", prefix, ops->name ? ops->name : "custom", nstate);
    GOPT_TRY(gopt__layer_state(l, sizeof(gopt_custom)));
    gopt_custom *c = l->st;
    c->layer = l;
    c->ops = ops;
    c->user = l->cfg.custom_user;
    c->prefix = prefix;
    snprintf(c->name, sizeof c->name, "%s", prefix);
    int64_t out_shape[3] = {l->in_shape[0], l->in_shape[1], l->in_shape[2]};
    int out_ndim = l->in_ndim;
    c->in_setup = 1;
    begin(c, "setup");
    gopt_status s = finish(c, ops->setup(c, l->in_ndim, l->in_shape, out_shape, &out_ndim));
    c->in_setup = 0;
    c->prefix = NULL;
    if (s != GOPT_OK) return s;
    if (out_ndim < 1 || out_ndim > 3)
        return GOPT_FAIL(GOPT_EINVAL, "custom layer '%s' (%s) setup: output ndim %d is not 1..3", c->name, ops_name(c),
                         out_ndim);
    for (int i = 0; i < out_ndim; i++)
        if (out_shape[i] < 1 || out_shape[i] > (1 << 24))
            return GOPT_FAIL(GOPT_ESHAPE, "custom layer '%s' (%s) setup: output dimension %d = %lld is out of range "
                             "(1..2^24)", c->name, ops_name(c), i, (long long)out_shape[i]);
    l->out_ndim = out_ndim;
    for (int i = 0; i < 3; i++) l->out_shape[i] = i < out_ndim ? out_shape[i] : 1;
    return GOPT_OK;
}

static gopt_status custom_alloc(gopt_layer *l, int lean) {
    (void)lean;
    gopt_custom *c = l->st;
    size_t nb = (size_t)l->max_batch * (size_t)c->buffer_per_sample, nx = (size_t)l->max_batch * (size_t)l->in_numel;
    if (nb && !c->buffer) {
        c->buffer = gopt__aligned_alloc(nb * sizeof(float));
        if (!c->buffer) return GOPT_FAIL(GOPT_ENOMEM, "custom layer '%s': buffer of %zu floats", c->name, nb);
    }
    if (!c->dx_scratch) {
        c->dx_scratch = gopt__aligned_alloc(nx * sizeof(float));
        if (!c->dx_scratch) return GOPT_FAIL(GOPT_ENOMEM, "custom layer '%s': dx buffer of %zu floats", c->name, nx);
    }
    return GOPT_OK;
}

static void custom_free(gopt_layer *l) {
    gopt_custom *c = l->st;
    if (!c) return;
    gopt__aligned_free(c->buffer);
    gopt__aligned_free(c->dx_scratch);
    if (l->created && c->ops && c->ops->destroy) c->ops->destroy(c->user);
}

static gopt_status custom_init(gopt_layer *l, const gopt__init_spec *spec, gopt_rng *rng) {
    gopt_custom *c = l->st;
    for (int i = 0; i < c->nparams; i++) {
        gopt_param_info info;
        GOPT_TRY(gopt_params_info(l->params, c->params[i].index, &info));
        const gopt_custom_init *in = &c->params[i].init;
        switch (in->kind) {
        case GOPT_CUSTOM_INIT_CONSTANT: GOPT_TRY(gopt_tensor_fill(&info.value, in->a)); break;
        case GOPT_CUSTOM_INIT_UNIFORM: GOPT_TRY(gopt_tensor_fill_uniform(&info.value, in->a, in->b, rng)); break;
        case GOPT_CUSTOM_INIT_NORMAL: GOPT_TRY(gopt_tensor_fill_normal(&info.value, in->a, in->b, rng)); break;
        case GOPT_CUSTOM_INIT_SCHEME:
            GOPT_TRY(gopt_tensor_init(&info.value, spec->build ? in->scheme : spec->weights, rng));
            break;
        default: GOPT_TRY(gopt_tensor_fill(&info.value, 0.0f)); break;
        }
    }
    if (!c->ops->init) return GOPT_OK;
    begin(c, "init");
    return finish(c, c->ops->init(c, rng));
}

static void custom_forward(gopt_layer *l, const float *x, int n) {
    gopt_custom *c = l->st;
    begin(c, "forward");
    c->status = finish(c, c->ops->forward(c, x, l->out, n));
}

static void custom_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    gopt_custom *c = l->st;
    const size_t in_bytes = (size_t)n * (size_t)l->in_numel * sizeof(float);
    const size_t out_bytes = (size_t)n * (size_t)l->out_numel * sizeof(float);
    /* the user's dx overlaps neither x nor dy (a net passes dx == x) */
    const char *xb = (const char *)x, *dyb = (const char *)dy, *dxb = (const char *)dx;
    const int overlap = dx && ((dxb < xb + in_bytes && xb < dxb + in_bytes) || (dxb < dyb + out_bytes && dyb < dxb + in_bytes));
    float *udx = overlap ? c->dx_scratch : dx;
    begin(c, "backward");
    c->status = finish(c, c->ops->backward(c, x, dy, udx, n));
    if (overlap && c->status == GOPT_OK) memcpy(dx, udx, in_bytes);
}

static gopt_status custom_take_status(gopt_layer *l) {
    gopt_custom *c = l->st;
    gopt_status s = c->status;
    c->status = GOPT_OK;
    return s;
}

static double custom_flops(const gopt_layer *l) {
    const gopt_custom *c = l->st;
    return c->ops->flops ? c->ops->flops(c) : 0.0;
}

static size_t custom_state_size(const gopt_layer *l) {
    const gopt_custom *c = l->st;
    return c->ops->state_size ? c->ops->state_size(c) : 0;
}

static gopt_status custom_state_save(const gopt_layer *l, void *buf, size_t size) {
    gopt_custom *c = l->st;
    begin(c, "state_save");
    return finish(c, c->ops->state_save(c, buf, size));
}

static gopt_status custom_state_load(gopt_layer *l, const void *buf, size_t size) {
    gopt_custom *c = l->st;
    begin(c, "state_load");
    return finish(c, c->ops->state_load(c, buf, size));
}

static const gopt__layer_vt custom_vt = {
    .type = GOPT_LAYER_CUSTOM,
    .setup = custom_setup,
    .alloc = custom_alloc,
    .free = custom_free,
    .init_params = custom_init,
    .forward = custom_forward,
    .backward = custom_backward,
    .flops = custom_flops,
    .take_status = custom_take_status,
    .state_size = custom_state_size,
    .state_save = custom_state_save,
    .state_load = custom_state_load,
};

const gopt__layer_vt *gopt__custom_vtable(void) { return &custom_vt; }
