/* tapegrad image ops: 2-D convolution, pooling, batch normalisation, flatten. NCHW layout
 * (batch, channels, height, width), float32 and float64, PyTorch's semantics; every result is an
 * intermediate of the step, and every op has a backward (differentiable backwards: docs/conv.md).
 *
 *     tg_tensor *h = tg_conv2d(x, w, b, &(tg_conv2d_opts){.padding = {2, 2}});
 *     h = tg_max_pool2d(tg_relu(h), &(tg_pool2d_opts){.kernel = {2, 2}});
 *     h = tg_flatten(h, 1, -1);                              // [N, C·H·W] for tg_linear
 *
 * Option structs are read with zero meaning "PyTorch's default", so designated initialisers
 * name only what differs; NULL stands for all defaults. */
#ifndef TG_CONV_H
#define TG_CONV_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Index 0 is the height axis, 1 the width axis. Zero fields: stride 1, padding 0, dilation 1,
 * groups 1. */
typedef struct {
    int stride[2], padding[2], dilation[2];
    int groups;     /* C and O split into groups; groups == C == O/k is depthwise */
} tg_conv2d_opts;

/* y[n, o] = bias[o] + Σ_{c in o's group, i, j} w[o, c, i, j] · x[n, c, s·oh + d·i - p, ...]
 * (zero outside the image). x [N, C, H, W], w [O, C/groups, kH, kW], bias [O] or NULL;
 * y [N, O, OH, OW] with OH = (H + 2p - d·(kH - 1) - 1) / s + 1 (floor), likewise OW. */
tg_tensor *tg_conv2d(tg_tensor *x, tg_tensor *w, tg_tensor *bias, const tg_conv2d_opts *opts);

/* Zero fields: stride = kernel (PyTorch's default), padding 0. kernel must be set (>= 1);
 * padding at most half the kernel. Output sizes as conv2d's with dilation 1 (floor mode). */
typedef struct {
    int kernel[2], stride[2], padding[2];
    /* avg_pool2d: false (PyTorch's count_include_pad=True) divides by the kernel's area, padding
     * included; true divides by the number of image elements in the window. */
    bool exclude_padding;
} tg_pool2d_opts;

/* The largest element of each window, padding counting as -inf; a tie goes to the first
 * element in row-major order, and a NaN in the window is the result (as in PyTorch). */
tg_tensor *tg_max_pool2d(tg_tensor *x, const tg_pool2d_opts *opts);
/* The mean of each window (see exclude_padding). */
tg_tensor *tg_avg_pool2d(tg_tensor *x, const tg_pool2d_opts *opts);
/* Output [N, C, out_h, out_w]: cell (i, j) averages rows floor(i·H/out_h) to
 * ceil((i+1)·H/out_h) - 1, likewise columns (PyTorch's adaptive_avg_pool2d). */
tg_tensor *tg_adaptive_avg_pool2d(tg_tensor *x, int64_t out_h, int64_t out_w);

/* Axes start_axis..end_axis (inclusive, negative from the end) merged into one: a reshape.
 * nn.Flatten's default is (x, 1, -1). */
tg_tensor *tg_flatten(tg_tensor *x, int start_axis, int end_axis);

/* Batch normalisation over axis 1 of x [N, C] or [N, C, ...] (BatchNorm1d/2d):
 *   y = (x - mean_c) / sqrt(var_c + eps) · weight[c] + bias[c]
 * weight, bias: [C] or NULL (affine off). With training true, or when running_mean is NULL,
 * mean and var are the batch's (var biased, over N and the spatial axes), and the gradient flows
 * through them. With training true and running statistics given ([C] persistent tensors), they
 * are updated in place: r = (1 - momentum)·r + momentum·batch, the variance unbiased (·n/(n-1))
 * as in PyTorch; no gradient reaches them. With training false they are used instead of the
 * batch's. PyTorch's defaults are momentum 0.1, eps 1e-5; its momentum=None (a cumulative
 * average) is momentum = 1 / (batches seen so far, this one included). */
tg_tensor *tg_batch_norm(tg_tensor *x, tg_tensor *weight, tg_tensor *bias,
                         tg_tensor *running_mean, tg_tensor *running_var, bool training,
                         double momentum, double eps);

#ifdef __cplusplus
}
#endif
#endif
