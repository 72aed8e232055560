/* Merge nodes of a net (gradopt/net.h, gopt_net_add_merge): add, the elementwise sum of 2+
 * inputs of one shape, and concat, along the first per-sample dimension (channels of
 * (C,H,W), features of (F)). A merge is a gopt_layer with its own small vtable; the net
 * points it at its inputs before forward (gopt__merge_set_input) and at its inputs'
 * gradient buffers before backward (gopt__merge_set_grad), since a vtable call carries one
 * input. Elementwise loops run over OpenMP threads above 16384 floats. */
#include <stdio.h>

#include "core/common.h"
#include "nn/net_priv.h"

typedef struct merge_state {
    int k;              /* inputs */
    int64_t *numel;     /* per-sample floats of each input */
    const float **xs;   /* set before forward */
    float **dxs;        /* set before backward (NULL entries: no gradient wanted) */
    int *acc;           /* add into dxs[j] rather than write */
    int grads_set;      /* 1 between gopt__merge_set_grad and the backward that uses them */
} merge_state;

#define MERGE_PAR 16384

static void add_forward(gopt_layer *l, const float *x, int n) {
    (void)x;
    const merge_state *m = l->st;
    const int64_t total = (int64_t)n * l->out_numel;
    float *y = l->out;
    const float *a = m->xs[0], *b = m->xs[1];
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > MERGE_PAR)
    for (int64_t i = 0; i < total; i++) y[i] = a[i] + b[i];
    for (int j = 2; j < m->k; j++) { /* left to right: ((x0 + x1) + x2) + ... */
        const float *c = m->xs[j];
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > MERGE_PAR)
        for (int64_t i = 0; i < total; i++) y[i] += c[i];
    }
}

static void concat_forward(gopt_layer *l, const float *x, int n) {
    (void)x;
    const merge_state *m = l->st;
    const int64_t on = l->out_numel;
    float *y = l->out;
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if ((int64_t)n * on > MERGE_PAR)
    for (int s = 0; s < n; s++) {
        int64_t off = 0;
        for (int j = 0; j < m->k; j++) {
            memcpy(y + (int64_t)s * on + off, m->xs[j] + (int64_t)s * m->numel[j], sizeof(float) * (size_t)m->numel[j]);
            off += m->numel[j];
        }
    }
}

/* dx_j = dy (add) or its slice (concat), written or added (acc). dy is only read. */
static void merge_backward(gopt_layer *l, const float *x, float *dy, float *dx, int n) {
    (void)x;
    (void)dx;
    merge_state *m = l->st;
    if (!m->grads_set) return; /* the net sets the gradient buffers; nothing else may run this */
    m->grads_set = 0;
    const int concat = l->cfg.type == GOPT_LAYER_CONCAT;
    const int64_t on = l->out_numel;
    int64_t off = 0;
    for (int j = 0; j < m->k; j++) {
        float *d = m->dxs[j];
        const int64_t w = m->numel[j];
        const int acc = m->acc[j];
        if (d && !concat) {
            const int64_t total = (int64_t)n * on;
            if (acc) {
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if (total > MERGE_PAR)
                for (int64_t i = 0; i < total; i++) d[i] += dy[i];
            } else {
                memcpy(d, dy, sizeof(float) * (size_t)total);
            }
        } else if (d) {
#pragma omp parallel for num_threads(gopt_get_threads()) schedule(static) if ((int64_t)n * w > MERGE_PAR)
            for (int s = 0; s < n; s++) {
                const float *src = dy + (int64_t)s * on + off;
                float *dst = d + (int64_t)s * w;
                if (acc)
                    for (int64_t i = 0; i < w; i++) dst[i] += src[i];
                else
                    memcpy(dst, src, sizeof(float) * (size_t)w);
            }
        }
        off += w;
    }
}

/* A merge's inputs exist only inside a net: the public gopt_layer_forward on one is refused. */
static gopt_status merge_check_input(const gopt_layer *l, const float *x, int n) {
    (void)n;
    if (x)
        return GOPT_FAIL(GOPT_EINVAL, "a %s node reads several inputs: it runs only inside its net (gopt_net_forward)",
                         gopt_layer_type_name(l->cfg.type));
    return GOPT_OK;
}

static gopt_status merge_setup(gopt_layer *l, const char *prefix) {
    (void)l;
    (void)prefix;
    return GOPT_OK; /* gopt__merge_create sets everything */
}

static const gopt__layer_vt add_vt = {
    .type = GOPT_LAYER_ADD,
    .setup = merge_setup,
    .check_input = merge_check_input,
    .forward = add_forward,
    .backward = merge_backward,
};
static const gopt__layer_vt concat_vt = {
    .type = GOPT_LAYER_CONCAT,
    .setup = merge_setup,
    .check_input = merge_check_input,
    .forward = concat_forward,
    .backward = merge_backward,
};

int gopt__is_merge(const gopt_layer *l) { return l->vt == &add_vt || l->vt == &concat_vt; }

gopt_status gopt__merge_create(gopt_layer_type kind, const int64_t (*shapes)[3], const int *ndims, int ninputs,
                               int max_batch, gopt_params *params, gopt_layer **out) {
    *out = NULL;
    gopt_layer *l = gopt__calloc(1, sizeof *l);
    if (!l) return GOPT_FAIL(GOPT_ENOMEM, "%s node", gopt_layer_type_name(kind));
    l->vt = kind == GOPT_LAYER_ADD ? &add_vt : &concat_vt;
    l->cfg = gopt_layer_config_default(kind);
    l->in_ndim = ndims[0];
    l->in_numel = 1;
    for (int i = 0; i < 3; i++) {
        l->in_shape[i] = shapes[0][i];
        l->out_shape[i] = shapes[0][i];
        l->in_numel *= shapes[0][i]; /* unused dims are 1 */
    }
    l->out_ndim = ndims[0];
    if (kind == GOPT_LAYER_CONCAT) {
        l->out_shape[0] = 0;
        for (int j = 0; j < ninputs; j++) l->out_shape[0] += shapes[j][0];
    }
    l->out_numel = l->out_shape[0] * l->out_shape[1] * l->out_shape[2];
    l->max_batch = max_batch;
    l->training = 1;
    l->params = params;
    const size_t k = (size_t)ninputs;
    merge_state *m = gopt__calloc(1, sizeof *m + k * (sizeof(int64_t) + 2 * sizeof(void *) + sizeof(int)));
    if (!m) {
        gopt__free(l);
        return GOPT_FAIL(GOPT_ENOMEM, "%s node of %d inputs", gopt_layer_type_name(kind), ninputs);
    }
    m->k = ninputs;
    m->numel = (int64_t *)(m + 1);
    m->xs = (const float **)(m->numel + k);
    m->dxs = (float **)(m->xs + k);
    m->acc = (int *)(m->dxs + k);
    for (int j = 0; j < ninputs; j++) m->numel[j] = shapes[j][0] * shapes[j][1] * shapes[j][2];
    l->st = m;
    *out = l;
    return GOPT_OK;
}

void gopt__merge_set_input(gopt_layer *l, int j, const float *x) { ((merge_state *)l->st)->xs[j] = x; }

void gopt__merge_set_grad(gopt_layer *l, int j, float *dx, int acc) {
    merge_state *m = l->st;
    m->dxs[j] = dx;
    m->acc[j] = acc;
    m->grads_set = 1;
}

static void shape_text(char *buf, size_t size, int ndim, const int64_t *shape) {
    gopt__shape_fmt(buf, size, "N", ndim, shape);
}

gopt_status gopt_net_add_merge(gopt_net *net, gopt_layer_type kind, const char *const inputs[], int ninputs,
                               const char *name) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(inputs);
    if (net->built) return GOPT_FAIL(GOPT_ESTATE, "cannot add a layer after gopt_net_build");
    if (kind != GOPT_LAYER_ADD && kind != GOPT_LAYER_CONCAT)
        return GOPT_FAIL(GOPT_EINVAL, "kind = %d (%s) is not GOPT_LAYER_ADD or GOPT_LAYER_CONCAT", (int)kind,
                         gopt_layer_type_name(kind));
    if (ninputs < 2 || ninputs > 1024)
        return GOPT_FAIL(GOPT_EINVAL, "ninputs = %d: a merge takes 2..1024 inputs", ninputs);
    char auto_name[GOPT__NET_NAME_MAX];
    const char *why = gopt__net_name_problem(net, &name, auto_name);
    if (why) return GOPT_FAIL(GOPT_EINVAL, "name '%s' %s", name, why);
    int idx[1024];
    int ndims[1024];
    int64_t(*shapes)[3] = gopt__calloc((size_t)ninputs, sizeof *shapes);
    if (!shapes) return GOPT_FAIL(GOPT_ENOMEM, "%d input shapes", ninputs);
    gopt_status s = GOPT_OK;
    char a[64], b[64];
    for (int j = 0; j < ninputs && s == GOPT_OK; j++) {
        if (!inputs[j]) {
            s = GOPT_FAIL(GOPT_EINVAL, "inputs[%d] is NULL (name a layer, or \"input\" for the net's input)", j);
            break;
        }
        idx[j] = gopt__net_lookup(net, inputs[j]);
        if (idx[j] == -2) {
            s = GOPT_FAIL(GOPT_EINVAL, "inputs[%d] = '%s': no earlier layer has that name", j, inputs[j]);
            break;
        }
        ndims[j] = gopt__net_node_shape(net, idx[j], shapes[j]);
        if (j == 0) continue;
        int same_rest = ndims[j] == ndims[0];
        for (int d = 1; same_rest && d < 3; d++) same_rest = shapes[j][d] == shapes[0][d];
        int ok = kind == GOPT_LAYER_ADD ? same_rest && shapes[j][0] == shapes[0][0] : same_rest;
        if (!ok) {
            shape_text(a, sizeof a, ndims[0], shapes[0]);
            shape_text(b, sizeof b, ndims[j], shapes[j]);
            s = GOPT_FAIL(GOPT_ESHAPE,
                          kind == GOPT_LAYER_ADD
                              ? "add: input '%s' %s does not match input '%s' %s (an add needs identical shapes)"
                              : "concat: input '%s' %s does not match input '%s' %s (a concat needs equal dimensions "
                                "after the first)",
                          inputs[j], b, inputs[0], a);
        }
    }
    if (s == GOPT_OK && kind == GOPT_LAYER_CONCAT) {
        int64_t c = 0;
        for (int j = 0; j < ninputs; j++) c += shapes[j][0];
        if (c > (1 << 24)) s = GOPT_FAIL(GOPT_EOVERFLOW, "concat of %lld channels", (long long)c);
    }
    if (s == GOPT_OK) s = gopt__net_reserve(net);
    gopt_layer *l = NULL;
    if (s == GOPT_OK)
        s = gopt__merge_create(kind, (const int64_t(*)[3])shapes, ndims, ninputs, net->cfg.max_batch, net->params, &l);
    gopt__free(shapes);
    if (s != GOPT_OK) GOPT_RETURN(s);
    GOPT_RETURN(gopt__net_append(net, l, name, idx, ninputs, gopt_params_count(net->params)));
}
