/* airbench94's net from public layers (see airbench.h). */
#include <math.h>
#include <stdio.h>

#include "airbench.h"

gopt_status airbench_build(float k, int classes, int max_batch, uint64_t seed, gopt_net **out) {
    *out = NULL;
    if (classes < 1) return GOPT_EINVAL;
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = max_batch;
    nc.seed = seed;
    nc.init = GOPT_NET_INIT_HE;
    gopt_net *net = NULL;
    gopt_status s = gopt_net_create(&nc, &net);
    const int stem = 24, widths[3] = {(int)lroundf(64 * k), (int)lroundf(256 * k), (int)lroundf(256 * k)};
    gopt_layer_config c;
    char name[32];
#define ADD(cfg_, ...) \
    (c = (cfg_), snprintf(name, sizeof name, __VA_ARGS__), s == GOPT_OK ? (s = gopt_net_add(net, &c, name)) : s)
    ADD(gopt_layer_conv2d(3, stem, 3, 1, 1, 0), "stem.conv");
    ADD(gopt_layer_batchnorm2d(stem, 1), "stem.bn");
    for (int b = 0, in = stem; b < 3; in = widths[b++]) {
        if (widths[b] < 1 && s == GOPT_OK) s = GOPT_EINVAL;
        ADD(gopt_layer_conv2d(in, widths[b], 3, 1, 1, 0), "block%d.conv1", b + 1);
        ADD(gopt_layer_maxpool2d(2, 2, 0), "block%d.pool", b + 1);
        ADD(gopt_layer_batchnorm2d(widths[b], 1), "block%d.bn1", b + 1);
        ADD(gopt_layer_conv2d(widths[b], widths[b], 3, 1, 1, 0), "block%d.conv2", b + 1);
        ADD(gopt_layer_batchnorm2d(widths[b], 1), "block%d.bn2", b + 1);
    }
    ADD(gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL), "pool");
    ADD(gopt_layer_linear(widths[2], classes, 0), "fc");
#undef ADD
    if (s == GOPT_OK) s = gopt_net_build(net);
    if (s != GOPT_OK) {
        gopt_net_destroy(net);
        return s;
    }
    *out = net;
    return GOPT_OK;
}

