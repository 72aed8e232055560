/* airbench94's net (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU",
 * 2024) built from the library's public layers, for train_cifar10 (--arch airbench, the
 * --recipe nets) and bench_train (--arch airbench, beside the same net in PyTorch). */
#ifndef GOPT_EXAMPLES_AIRBENCH_H
#define GOPT_EXAMPLES_AIRBENCH_H

#include <stdint.h>

#include <gradopt.h>

/* A 3x3 stem of 24 channels with BatchNorm+ReLU, then three blocks of conv 3x3, maxpool 2,
 * BatchNorm+ReLU, conv 3x3, BatchNorm+ReLU at widths round(64k), round(256k), round(256k),
 * global average pooling and a linear layer without bias, for (3,32,32) images; every
 * convolution without bias, He-normal weights from `seed`. Layers "stem.conv", "stem.bn",
 * "block<b>.conv1", "block<b>.pool", "block<b>.bn1", "block<b>.conv2", "block<b>.bn2"
 * (b = 1..3), "pool", "fc". Its differences from airbench94: the 3x3 stem with BatchNorm
 * for its frozen 2x2 patch-whitening convolution (so 32-16-8-4 pixels, not 31-15-7-3), ReLU
 * for GELU, affine BatchNorm, global average pooling for the last 3x3 max pool and no 1/9
 * output scale. Errors: GOPT_EINVAL (a width that rounds to 0 channels, classes < 1), as
 * gopt_net_*. */
gopt_status airbench_build(float k, int classes, int max_batch, uint64_t seed, gopt_net **out);

#endif
