/* The AlexNet-style network for 32x32 inputs (the usual CIFAR-10 adaptation of AlexNet):
 *
 *   conv 3x3 stride 2 -> 64   [BN] ReLU  max pool 2      16x16 -> 8x8
 *   conv 3x3 -> 192           [BN] ReLU  max pool 2      8x8 -> 4x4
 *   conv 3x3 -> 384           [BN] ReLU
 *   conv 3x3 -> 256           [BN] ReLU
 *   conv 3x3 -> 256           [BN] ReLU  max pool 2      4x4 -> 2x2
 *   adaptive average pool 2x2, flatten (1024)
 *   [dropout] 4096 ReLU [dropout] 4096 ReLU 10
 *
 * Channel counts are scaled by width, the hidden layers are `hidden` wide; the bracketed layers
 * are left out when bn_dropout is false. PyTorch's default initialisation. */
#include <math.h>
#include "alexnet.h"

static int64_t scaled(int64_t channels, double width)
{
    int64_t c = (int64_t)lround((double)channels * width);
    return c < 1 ? 1 : c;
}

tg_module *ax_alexnet(int channels, int n_classes, double width, int hidden, bool bn_dropout,
                      double dropout, tg_rng *rng)
{
    static const int64_t widths[5] = {64, 192, 384, 256, 256};
    static const bool pool_after[5] = {true, true, false, false, true};
    tg_init init = tg_init_pytorch();
    tg_pool2d_opts pool = {.kernel = {2, 2}};
    tg_module *net = tg_sequential_new(0);
    int64_t in = channels;
    for (int i = 0; i < 5; i++) {
        int64_t out = scaled(widths[i], width);
        tg_conv2d_opts conv = {.padding = {1, 1}, .stride = {i == 0 ? 2 : 1, i == 0 ? 2 : 1}};
        tg_sequential_append(net, tg_conv2d_new(in, out, 3, &conv, true, init, rng));
        if (bn_dropout) tg_sequential_append(net, tg_batch_norm2d_new(out, NULL));
        tg_sequential_append(net, tg_relu_new());
        if (pool_after[i]) tg_sequential_append(net, tg_max_pool2d_new(&pool));
        in = out;
    }
    tg_sequential_append(net, tg_adaptive_avg_pool2d_new(2, 2));
    tg_sequential_append(net, tg_flatten_new(1, -1));
    int64_t features = in * 4;
    for (int i = 0; i < 2; i++) {
        if (bn_dropout) tg_sequential_append(net, tg_dropout_new_rng(dropout, rng));
        tg_sequential_append(net, tg_linear_new(features, hidden, true, init, rng));
        tg_sequential_append(net, tg_relu_new());
        features = hidden;
    }
    tg_sequential_append(net, tg_linear_new(features, n_classes, true, init, rng));
    return net;
}
