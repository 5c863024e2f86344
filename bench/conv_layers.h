/* The convolution layers the conv benchmarks time (bench_conv.c, dnnl/bench_dnnl.c). */
#ifndef TG_BENCH_CONV_LAYERS_H
#define TG_BENCH_CONV_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *net, *label;
    int64_t n, c, h, w, o, k;
    int stride, pad;
    bool first;     /* a network's first layer: no input gradient (the data needs none) */
} layer;

/* LeNet-5 on 28x28 (padded first layer, as torchvision-style ports do) at batch 64; AlexNet's five
 * convolutions on 224x224 at batch 8; the CIFAR-sized AlexNet (32x32, 3x3 kernels) at batch 64. */
static const layer layers[] = {
    {"LeNet-5", "conv1 1->6 5x5 p2 @28", 64, 1, 28, 28, 6, 5, 1, 2, true},
    {"LeNet-5", "conv2 6->16 5x5 @14", 64, 6, 14, 14, 16, 5, 1, 0, false},
    {"AlexNet", "conv1 3->64 11x11 s4 p2 @224", 8, 3, 224, 224, 64, 11, 4, 2, true},
    {"AlexNet", "conv2 64->192 5x5 p2 @27", 8, 64, 27, 27, 192, 5, 1, 2, false},
    {"AlexNet", "conv3 192->384 3x3 p1 @13", 8, 192, 13, 13, 384, 3, 1, 1, false},
    {"AlexNet", "conv4 384->256 3x3 p1 @13", 8, 384, 13, 13, 256, 3, 1, 1, false},
    {"AlexNet", "conv5 256->256 3x3 p1 @13", 8, 256, 13, 13, 256, 3, 1, 1, false},
    {"CIFAR AlexNet", "conv1 3->64 3x3 p1 @32", 64, 3, 32, 32, 64, 3, 1, 1, true},
    {"CIFAR AlexNet", "conv2 64->192 3x3 p1 @16", 64, 64, 16, 16, 192, 3, 1, 1, false},
    {"CIFAR AlexNet", "conv3 192->384 3x3 p1 @8", 64, 192, 8, 8, 384, 3, 1, 1, false},
    {"CIFAR AlexNet", "conv4 384->256 3x3 p1 @8", 64, 384, 8, 8, 256, 3, 1, 1, false},
    {"CIFAR AlexNet", "conv5 256->256 3x3 p1 @8", 64, 256, 8, 8, 256, 3, 1, 1, false},
};

#endif
