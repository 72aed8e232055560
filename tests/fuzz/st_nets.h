/* The two nets fuzz_safetensors loads into, shared with make_seeds.c (which writes their
 * exports as the seed corpus): "tiny" (fc 4->3 with bias, batchnorm1d 3) and "block" (conv1
 * 3->4, bn1, a basic block 4->8 stride 2 with its projection shortcut, pool, fc 8->2) on
 * 3x4x4 inputs, whose PyTorch names include layers.0.shortcut.{0,1}. */
#ifndef GOPT_TESTS_FUZZ_ST_NETS_H
#define GOPT_TESTS_FUZZ_ST_NETS_H

#include <gradopt.h>

static inline gopt_net *st_net(int which) {
    gopt_net_config nc = gopt_net_config_default();
    nc.max_batch = 1;
    gopt_net *net = NULL;
    gopt_layer_config lc[5];
    const char *names[5];
    int n;
    if (which == 0) {
        nc.in_ndim = 1;
        nc.in_shape[0] = 4;
        lc[0] = gopt_layer_linear(4, 3, 1);
        lc[1] = gopt_layer_batchnorm1d(3);
        names[0] = "fc";
        names[1] = "bn";
        n = 2;
    } else {
        nc.in_ndim = 3;
        nc.in_shape[0] = 3;
        nc.in_shape[1] = 4;
        nc.in_shape[2] = 4;
        lc[0] = gopt_layer_conv2d(3, 4, 3, 1, 1, 0);
        lc[1] = gopt_layer_batchnorm2d(4, 1);
        lc[2] = gopt_layer_basic_block(4, 8, 2);
        lc[3] = gopt_layer_config_default(GOPT_LAYER_GLOBAL_AVGPOOL);
        lc[4] = gopt_layer_linear(8, 2, 1);
        names[0] = "conv1";
        names[1] = "bn1";
        names[2] = "layer1.0";
        names[3] = "pool";
        names[4] = "fc";
        n = 5;
    }
    if (gopt_net_create(&nc, &net) != GOPT_OK) return NULL;
    for (int i = 0; i < n; i++)
        if (gopt_net_add(net, &lc[i], names[i]) != GOPT_OK) {
            gopt_net_destroy(net);
            return NULL;
        }
    if (gopt_net_build(net) != GOPT_OK) {
        gopt_net_destroy(net);
        return NULL;
    }
    return net;
}

#endif
