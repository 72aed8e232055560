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

gopt_status gopt_resnet_cifar(const gopt_resnet_config *cfg, gopt_net **out) {
    GOPT_CHECK_NULL(out);
    *out = NULL;
    GOPT_CHECK_NULL(cfg);
    if (cfg->depth < 8 || (cfg->depth - 2) % 6 != 0)
        return GOPT_FAIL(GOPT_EINVAL, "depth = %d is not 6n+2 with n >= 1", cfg->depth);
    if (!(cfg->width > 0.0f) || !(cfg->width <= 64.0f))
        return GOPT_FAIL(GOPT_EINVAL, "width = %g must be in (0, 64]", cfg->width);
    if (cfg->num_classes < 1) return GOPT_FAIL(GOPT_EINVAL, "num_classes = %d must be >= 1", cfg->num_classes);
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
    /* the stem conv's output is not kept: recomputed (3 input channels: cheap) in backward */
    if (s == GOPT_OK) s = gopt_net_set_recompute(net, 0, 1);
    int in = widths[0];
    for (int stage = 0; stage < 3 && s == GOPT_OK; stage++) {
        for (int b = 0; b < n && s == GOPT_OK; b++) {
            char name[32];
            snprintf(name, sizeof name, "layer%d.%d", stage + 1, b);
            lc = gopt_layer_basic_block(in, widths[stage], (stage > 0 && b == 0) ? 2 : 1);
            s = gopt_net_add(net, &lc, name);
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
