/* CIFAR ResNets (He et al. 2016, "Deep Residual Learning", sec. 4.2), see gradopt/net.h. */
#include <stdio.h>

#include "core/common.h"
#include "gradopt/net.h"

gopt_resnet_config gopt_resnet_config_default(void) {
    gopt_resnet_config c;
    memset(&c, 0, sizeof c);
    c.depth = 20;
    c.width = 1.0f;
    c.num_classes = 10;
    c.max_batch = 128;
    c.in_shape[0] = 3;
    c.in_shape[1] = 32;
    c.in_shape[2] = 32;
    c.init = GOPT_NET_INIT_HE;
    return c;
}

/* One basic block written out with graph nodes (gopt_resnet_config.graph): reads `prev`, leaves
 * the name of its last node in prev. */
static gopt_status add_block_nodes(gopt_net *net, const char *p, int in, int out, int stride, char prev[64]) {
    char nm[64], b2[64], res[64];
    gopt_layer_config lc = gopt_layer_conv2d(in, out, 3, stride, 1, 0);
    snprintf(nm, sizeof nm, "%s.conv1", p);
    GOPT_TRY(gopt_net_add_from(net, &lc, nm, prev));
    lc = gopt_layer_batchnorm2d(out, 1);
    snprintf(nm, sizeof nm, "%s.bn1", p);
    GOPT_TRY(gopt_net_add(net, &lc, nm));
    lc = gopt_layer_conv2d(out, out, 3, 1, 1, 0);
    snprintf(nm, sizeof nm, "%s.conv2", p);
    GOPT_TRY(gopt_net_add(net, &lc, nm));
    lc = gopt_layer_batchnorm2d(out, 0);
    snprintf(b2, sizeof b2, "%s.bn2", p);
    GOPT_TRY(gopt_net_add(net, &lc, b2));
    snprintf(res, sizeof res, "%s", prev);
    if (stride != 1 || in != out) { /* projection shortcut: 1x1 conv with the stride, then BN */
        lc = gopt_layer_conv2d(in, out, 1, stride, 0, 0);
        snprintf(nm, sizeof nm, "%s.shortcut.conv", p);
        GOPT_TRY(gopt_net_add_from(net, &lc, nm, prev));
        lc = gopt_layer_batchnorm2d(out, 0);
        snprintf(res, sizeof res, "%s.shortcut.bn", p);
        GOPT_TRY(gopt_net_add(net, &lc, res));
    }
    const char *ins[2] = {b2, res};
    snprintf(nm, sizeof nm, "%s.add", p);
    GOPT_TRY(gopt_net_add_merge(net, GOPT_LAYER_ADD, ins, 2, nm));
    lc = gopt_layer_config_default(GOPT_LAYER_RELU);
    snprintf(prev, 64, "%s.relu", p);
    GOPT_RETURN(gopt_net_add(net, &lc, prev));
}

gopt_status gopt_resnet_cifar(const gopt_resnet_config *cfg, gopt_net **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    if (cfg->depth < 8 || (cfg->depth - 2) % 6 != 0)
        return GOPT_FAIL(GOPT_EINVAL, "depth = %d is not 6n+2 with n >= 1", cfg->depth);
    if (!(cfg->width > 0.0f) || !(cfg->width <= 64.0f))
        return GOPT_FAIL(GOPT_EINVAL, "width = %g must be in (0, 64]", cfg->width);
    if (cfg->num_classes < 1) return GOPT_FAIL(GOPT_EINVAL, "num_classes = %d must be >= 1", cfg->num_classes);
    if (cfg->graph != 0 && cfg->graph != 1) return GOPT_FAIL(GOPT_EINVAL, "graph = %d must be 0 or 1", cfg->graph);
    const int n = (cfg->depth - 2) / 6;
    int widths[3];
    for (int i = 0; i < 3; i++) {
        widths[i] = (int)lrintf(16.0f * (float)(1 << i) * cfg->width);
        if (widths[i] < 1) widths[i] = 1;
    }
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = cfg->max_batch;
    nc.in_ndim = 3;
    for (int i = 0; i < 3; i++) nc.in_shape[i] = cfg->in_shape[i];
    nc.seed = cfg->seed;
    nc.init = cfg->init;
    gopt_net *net;
    GOPT_TRY(gopt_net_create(&nc, &net));
    gopt_status s = GOPT_OK;
    gopt_layer_config lc = gopt_layer_conv2d((int)cfg->in_shape[0], widths[0], 3, 1, 1, 0);
    if (s == GOPT_OK) s = gopt_net_add(net, &lc, "conv1");
    lc = gopt_layer_batchnorm2d(widths[0], 1);
    if (s == GOPT_OK) s = gopt_net_add(net, &lc, "bn1");
    /* the stem conv's output is not kept: recomputed (3 input channels: cheap) in backward
     * (a sequential net only: graph nets keep every output) */
    if (s == GOPT_OK && !cfg->graph) s = gopt_net_set_recompute(net, 0, 1);
    int in = widths[0];
    char prev[64] = "bn1";
    for (int stage = 0; stage < 3 && s == GOPT_OK; stage++) {
        for (int b = 0; b < n && s == GOPT_OK; b++) {
            char name[32];
            const int stride = (stage > 0 && b == 0) ? 2 : 1;
            snprintf(name, sizeof name, "layer%d.%d", stage + 1, b);
            if (cfg->graph) {
                s = add_block_nodes(net, name, in, widths[stage], stride, prev);
            } else {
                lc = gopt_layer_basic_block(in, widths[stage], stride);
                s = gopt_net_add(net, &lc, name);
            }
            in = widths[stage];
        }
    }
    lc = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL);
    if (s == GOPT_OK) s = gopt_net_add(net, &lc, "avgpool");
    lc = gopt_layer_linear(in, cfg->num_classes, 1);
    if (s == GOPT_OK) s = gopt_net_add(net, &lc, "fc");
    if (s == GOPT_OK) s = gopt_net_build(net);
    if (s != GOPT_OK) {
        gopt_net_destroy(net);
        return s;
    }
    *out = net;
    return GOPT_OK;
}
