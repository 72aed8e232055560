/* The net's buffers by name (BatchNorm running statistics) and PyTorch's state_dict names
 * of the net's tensors (see gradopt/net.h and gradopt/interop.h). A residual block is a
 * basic_block layer, or one written out with nodes whose add is named "<block>.add"
 * (gopt_resnet_config.graph): the k-th of either, in layer order, is PyTorch's "layers.<k>". Only reads the layers
 * through nn/layer.h; net.c is unchanged. */
#include <stdio.h>

#include "core/common.h"
#include "nn/layer.h"
#include "gradopt/interop.h"
#include "gradopt/net.h"

/* The batchnorm behind buffer i (2 per batchnorm: running_mean, running_var), in layer order. */
static gopt__bn *buffer_bn(gopt_net *net, int i, int *layer) {
    int seen = 0;
    for (int li = 0; li < gopt_net_layer_count(net); li++) {
        gopt__bn *b3[3];
        int k = gopt__layer_bns(gopt_net_layer(net, li), b3);
        if (i / 2 < seen + k) {
            *layer = li;
            return b3[i / 2 - seen];
        }
        seen += k;
    }
    return NULL;
}

int gopt_net_buffer_count(const gopt_net *net) {
    if (!net) return 0;
    int n = 0;
    gopt_net *m = (gopt_net *)net; /* the layer getters are not const; nothing is written */
    for (int li = 0; li < gopt_net_layer_count(m); li++) {
        gopt__bn *b3[3];
        n += 2 * gopt__layer_bns(gopt_net_layer(m, li), b3);
    }
    return n;
}

gopt_status gopt_net_buffer_info(gopt_net *net, int i, gopt_net_buffer *out) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(out);
    int layer = -1;
    gopt__bn *bn = i >= 0 ? buffer_bn(net, i, &layer) : NULL;
    if (!bn) return GOPT_FAIL(GOPT_ERANGE, "buffer index %d not in [0, %d)", i, gopt_net_buffer_count(net));
    gopt_param_info pi;
    GOPT_TRY(gopt_params_info(gopt_net_params(net), bn->g_index, &pi));
    size_t len = strlen(pi.name);
    static const char wsuf[] = ".weight";
    if (len < sizeof wsuf - 1 || strcmp(pi.name + len - (sizeof wsuf - 1), wsuf) != 0)
        return GOPT_FAIL(GOPT_ESTATE, "batchnorm scale '%s' does not end in .weight", pi.name);
    const char *what = (i % 2) == 0 ? "running_mean" : "running_var";
    int n = snprintf(out->name, sizeof out->name, "%.*s.%s", (int)(len - (sizeof wsuf - 1)), pi.name, what);
    if (n < 0 || n >= (int)sizeof out->name)
        return GOPT_FAIL(GOPT_EINVAL, "buffer name of '%s' longer than %d bytes", pi.name, (int)sizeof out->name - 1);
    int64_t shape[1] = {bn->C};
    GOPT_TRY(gopt_tensor_view((i % 2) == 0 ? bn->running_mean : bn->running_var, 1, shape, &out->value));
    out->layer = layer;
    return GOPT_OK;
}

gopt_status gopt_net_find_buffer(gopt_net *net, const char *name, gopt_tensor *view) {
    GOPT_CHECK_NULL(net);
    GOPT_CHECK_NULL(name);
    GOPT_CHECK_NULL(view);
    const int n = gopt_net_buffer_count(net);
    for (int i = 0; i < n; i++) {
        gopt_net_buffer bi;
        GOPT_TRY(gopt_net_buffer_info(net, i, &bi));
        char torch[GOPT_PARAM_NAME_MAX + 16];
        GOPT_TRY(gopt_net_torch_name(net, bi.name, torch, sizeof torch));
        if (strcmp(bi.name, name) == 0 || strcmp(torch, name) == 0) {
            *view = bi.value;
            return GOPT_OK;
        }
    }
    return GOPT_FAIL(GOPT_ERANGE, "no buffer named '%s' (the net has %d: running_mean and running_var of each "
                                  "batchnorm)", name, n);
}

/* A basic block's prefix: its first batchnorm's scale name without ".bn1.weight". */
static int block_prefix(gopt_net *net, gopt_layer *l, const char **name, size_t *len) {
    gopt__bn *b3[3];
    if (gopt__layer_bns(l, b3) < 1) return 0;
    gopt_param_info pi;
    if (gopt_params_info(gopt_net_params(net), b3[0]->g_index, &pi) != GOPT_OK) return 0;
    static const char suf[] = ".bn1.weight";
    size_t n = strlen(pi.name);
    if (n < sizeof suf - 1 || strcmp(pi.name + n - (sizeof suf - 1), suf) != 0) return 0;
    *name = pi.name;
    *len = n - (sizeof suf - 1);
    return 1;
}

gopt_status gopt_net_torch_name(const gopt_net *cnet, const char *name, char *buf, size_t size) {
    GOPT_CHECK_NULL(cnet);
    GOPT_CHECK_NULL(name);
    GOPT_CHECK_NULL(buf);
    gopt_net *net = (gopt_net *)cnet; /* read only */
    int k = 0;
    const char *out_prefix = NULL, *rest = name;
    char idx[32];
    for (int li = 0; li < gopt_net_layer_count(net); li++) {
        gopt_layer *l = gopt_net_layer(net, li);
        const char *p;
        size_t plen;
        int block;
        if (gopt_layer_get_type(l) == GOPT_LAYER_BASIC_BLOCK) {
            block = block_prefix(net, l, &p, &plen);
        } else if (gopt_layer_get_type(l) == GOPT_LAYER_ADD) { /* a block written out with nodes: "<p>.add" */
            p = gopt_net_layer_name(net, li);
            plen = p ? strlen(p) : 0;
            block = plen > 4 && strcmp(p + plen - 4, ".add") == 0;
            plen -= block ? 4 : 0;
        } else {
            continue;
        }
        if (!block) continue;
        if (strncmp(name, p, plen) == 0 && name[plen] == '.') {
            snprintf(idx, sizeof idx, "layers.%d", k);
            out_prefix = idx;
            rest = name + plen; /* ".conv1.weight", ".shortcut.conv.weight", ... */
            break;
        }
        k++;
    }
    int n;
    if (!out_prefix) {
        n = snprintf(buf, size, "%s", name);
    } else if (strncmp(rest, ".shortcut.conv.", 15) == 0) {
        n = snprintf(buf, size, "%s.shortcut.0.%s", out_prefix, rest + 15);
    } else if (strncmp(rest, ".shortcut.bn.", 13) == 0) {
        n = snprintf(buf, size, "%s.shortcut.1.%s", out_prefix, rest + 13);
    } else {
        n = snprintf(buf, size, "%s%s", out_prefix, rest);
    }
    if (size == 0 || n < 0 || (size_t)n >= size)
        return GOPT_FAIL(GOPT_ERANGE, "the PyTorch name of '%s' needs %d bytes, buf has %zu", name, n + 1, size);
    return GOPT_OK;
}
