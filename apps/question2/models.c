/* The convolutional models of question2, on images [N, C, H, W] (data.c shapes the IDX rows so):
 *
 *   lenet    LeNet-5 (examples/lenet.c): conv 5x5 pad 2 -> 6, act, max pool 2, conv 5x5 -> 16,
 *            act, max pool 2, flatten, 120, act, [dropout], 84, act, [dropout], n_classes
 *   alexnet  the AlexNet-style net of examples/alexnet/model.c: five 3x3 convolutions (64, 192,
 *            384, 256, 256 channels x -width, the first of stride 2) each with [BatchNorm2d] and
 *            act, max pools after the 1st, 2nd and 5th, adaptive average pool 2x2, flatten, then
 *            [dropout] hidden act [dropout] hidden act, n_classes
 *
 * Bracketed layers only when asked for (-dropout > 0, -batch_norm). PyTorch's default
 * initialisation, every layer made (and drawn from rng) in order, one statement each. */
#include "question2.h"

#include <math.h>

static tg_module *append(tg_module *net, tg_module *m)
{
    return tg_sequential_append(net, m);
}

tg_module *q2_lenet_new(const q2_config *c, int64_t channels, int64_t height, int64_t width,
                        int n_classes, tg_rng *rng)
{
    tg_init init = tg_init_pytorch();
    tg_pool2d_opts pool = {.kernel = {2, 2}};
    tg_module *net = tg_sequential_new(0);
    append(net, tg_conv2d_new(channels, 6, 5, &(tg_conv2d_opts){.padding = {2, 2}}, true, init,
                              rng));
    append(net, tg_activation_new(c->activation));
    append(net, tg_max_pool2d_new(&pool));
    append(net, tg_conv2d_new(6, 16, 5, NULL, true, init, rng));
    append(net, tg_activation_new(c->activation));
    append(net, tg_max_pool2d_new(&pool));
    append(net, tg_flatten_new(1, -1));
    int64_t features = 16 * ((height / 2 - 4) / 2) * ((width / 2 - 4) / 2);
    static const int64_t hidden[2] = {120, 84};
    for (int i = 0; i < 2; i++) {
        append(net, tg_linear_new(features, hidden[i], true, init, rng));
        append(net, tg_activation_new(c->activation));
        if (c->dropout > 0) append(net, tg_dropout_new_rng(c->dropout, rng));
        features = hidden[i];
    }
    append(net, tg_linear_new(features, n_classes, true, init, rng));
    return net;
}

tg_module *q2_alexnet_new(const q2_config *c, int64_t channels, int64_t height, int n_classes,
                          tg_rng *rng)
{
    static const int64_t widths[5] = {64, 192, 384, 256, 256};
    static const bool pool_after[5] = {true, true, false, false, true};
    tg_init init = tg_init_pytorch();
    tg_pool2d_opts pool = {.kernel = {2, 2}};
    tg_module *net = tg_sequential_new(0);
    /* The network is made for 32 x 32: a smaller image is zero-padded to 32 as examples/alexnet
     * does (Fashion-MNIST's 28 by 2 on each side), folded into the first convolution's padding,
     * which gives the same sums and the same 16 x 16 first feature map. */
    int first_pad = 1 + (height < 32 ? (int)(32 - height) / 2 : 0);
    int64_t in = channels;
    for (int i = 0; i < 5; i++) {
        int64_t out = (int64_t)fmax(1, round((double)widths[i] * c->width));
        int pad = i == 0 ? first_pad : 1, stride = i == 0 ? 2 : 1;
        tg_conv2d_opts conv = {.padding = {pad, pad}, .stride = {stride, stride}};
        append(net, tg_conv2d_new(in, out, 3, &conv, true, init, rng));
        if (c->batch_norm) append(net, tg_batch_norm2d_new(out, NULL));
        append(net, tg_activation_new(c->activation));
        if (pool_after[i]) append(net, tg_max_pool2d_new(&pool));
        in = out;
    }
    append(net, tg_adaptive_avg_pool2d_new(2, 2));
    append(net, tg_flatten_new(1, -1));
    int64_t features = in * 4;
    for (int i = 0; i < 2; i++) {
        if (c->dropout > 0) append(net, tg_dropout_new_rng(c->dropout, rng));
        append(net, tg_linear_new(features, c->hidden_size, true, init, rng));
        append(net, tg_activation_new(c->activation));
        features = c->hidden_size;
    }
    append(net, tg_linear_new(features, n_classes, true, init, rng));
    return net;
}
