#define _POSIX_C_SOURCE 200809L
/* Helpers the layer type files share (see nn/layer.h): parameter registration and views,
 * initialisation of convolutions and batchnorms, shape text, the clock. */
#include <stdio.h>

#include <time.h>

#include "core/common.h"
#include "nn/layer.h"

double gopt__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

float *gopt__pv(const gopt_layer *l, int index) {
    gopt_param_info info;
    if (index < 0 || gopt_params_info(l->params, index, &info) != GOPT_OK) return NULL;
    return info.value.data;
}
float *gopt__pg(const gopt_layer *l, int index) {
    gopt_param_info info;
    if (index < 0 || gopt_params_info(l->params, index, &info) != GOPT_OK) return NULL;
    return info.grad.data;
}

float *gopt__pg_train(const gopt_layer *l, int index) {
    return gopt_params_is_frozen(l->params, index) ? NULL : gopt__pg(l, index);
}

gopt_status gopt__add_param(gopt_layer *l, const char *prefix, const char *suffix, int ndim, const int64_t *shape,
                            gopt_param_tag tag, int *index) {
    char name[GOPT_PARAM_NAME_MAX];
    int len = snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    if (len < 0 || len >= (int)sizeof name)
        return GOPT_FAIL(GOPT_EINVAL, "parameter name '%s.%s' longer than %d bytes", prefix, suffix,
                         GOPT_PARAM_NAME_MAX - 1);
    return gopt_params_add(l->params, name, ndim, shape, tag, index);
}

gopt_status gopt__add_conv_params(gopt_layer *l, gopt__conv *c, const char *prefix) {
    int64_t ws[4] = {c->K, c->C, c->R, c->R};
    GOPT_TRY(gopt__add_param(l, prefix, "weight", 4, ws, GOPT_TAG_WEIGHT, &c->w_index));
    c->b_index = -1;
    if (c->has_bias) {
        int64_t bs[1] = {c->K};
        GOPT_TRY(gopt__add_param(l, prefix, "bias", 1, bs, GOPT_TAG_BIAS, &c->b_index));
    }
    return GOPT_OK;
}

gopt_status gopt__add_bn_params(gopt_layer *l, gopt__bn *bn, const char *prefix) {
    int64_t s[1] = {bn->C};
    GOPT_TRY(gopt__add_param(l, prefix, "weight", 1, s, GOPT_TAG_NORM, &bn->g_index));
    return gopt__add_param(l, prefix, "bias", 1, s, GOPT_TAG_NORM, &bn->b_index);
}

gopt_status gopt__init_conv(gopt_layer *l, const gopt__conv *c, const gopt__init_spec *spec, gopt_rng *rng) {
    gopt_param_info info;
    GOPT_TRY(gopt_params_info(l->params, c->w_index, &info));
    GOPT_TRY(gopt_tensor_init(&info.value, spec->weights, rng));
    if (c->b_index >= 0) {
        GOPT_TRY(gopt_params_info(l->params, c->b_index, &info));
        if (!gopt__init_torch_bias(spec)) return gopt_tensor_fill(&info.value, 0.0f);
        float bound = 1.0f / sqrtf((float)(c->C * c->R * c->R));
        GOPT_TRY(gopt_tensor_fill_uniform(&info.value, -bound, bound, rng));
    }
    return GOPT_OK;
}

void gopt__init_bn(gopt_layer *l, gopt__bn *bn) {
    float *g = gopt__pv(l, bn->g_index), *b = gopt__pv(l, bn->b_index);
    for (int c = 0; c < bn->C; c++) {
        g[c] = 1.0f;
        b[c] = 0.0f;
    }
    gopt__bn_reset_running(bn);
}

double gopt__conv_flops(const gopt__conv *c) { return 2.0 * c->K * c->C * c->R * c->R * (double)c->OH * c->OW; }

void gopt__shape_fmt(char *buf, size_t size, const char *lead, int ndim, const int64_t *shape) {
    int o = snprintf(buf, size, "(%s", lead);
    for (int i = 0; i < ndim && o > 0 && (size_t)o < size; i++)
        o += snprintf(buf + o, size - (size_t)o, "%s%lld", (i == 0 && !*lead) ? "" : ",", (long long)shape[i]);
    if (o > 0 && (size_t)o < size) snprintf(buf + o, size - (size_t)o, ")");
}

gopt_status gopt__need_chw(const gopt_layer *l) {
    if (l->in_ndim != 3) {
        char s[96];
        gopt__shape_fmt(s, sizeof s, "N", l->in_ndim, l->in_shape);
        return GOPT_FAIL(GOPT_ESHAPE, "%s needs a (N,C,H,W) input, got %s", gopt_layer_type_name(l->cfg.type), s);
    }
    return GOPT_OK;
}

gopt_status gopt__layer_state(gopt_layer *l, size_t size) {
    l->st = gopt__calloc(1, size);
    return l->st ? GOPT_OK : GOPT_FAIL(GOPT_ENOMEM, "%s state", gopt_layer_type_name(l->cfg.type));
}
