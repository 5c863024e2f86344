/* Pooling modules (MaxPool2d, AvgPool2d, AdaptiveAvgPool2d): no parameters, the op's options
 * kept in the module. */
#include <stdio.h>
#include "autograd/internal.h"
#include "nn/internal.h"

typedef struct {
    tg_module base;
    tg_pool2d_opts opts;
} pool_module;

typedef struct {
    tg_module base;
    int64_t out_h, out_w;
} adaptive_module;

static tg_tensor *max_pool_forward(tg_module *self, tg_tensor *x)
{
    return tg_max_pool2d(x, &((pool_module *)self)->opts);
}

static tg_tensor *avg_pool_forward(tg_module *self, tg_tensor *x)
{
    return tg_avg_pool2d(x, &((pool_module *)self)->opts);
}

static tg_tensor *adaptive_forward(tg_module *self, tg_tensor *x)
{
    adaptive_module *a = (adaptive_module *)self;
    return tg_adaptive_avg_pool2d(x, a->out_h, a->out_w);
}

static void pool_describe(const tg_module *self, char *buf, size_t len)
{
    const tg_pool2d_opts *o = &((const pool_module *)self)->opts;
    int sh = o->stride[0] ? o->stride[0] : o->kernel[0];
    int sw = o->stride[1] ? o->stride[1] : o->kernel[1];
    snprintf(buf, len, "kernel_size=(%d, %d), stride=(%d, %d), padding=(%d, %d)", o->kernel[0],
             o->kernel[1], sh, sw, o->padding[0], o->padding[1]);
}

static void adaptive_describe(const tg_module *self, char *buf, size_t len)
{
    const adaptive_module *a = (const adaptive_module *)self;
    snprintf(buf, len, "output_size=(%lld, %lld)", (long long)a->out_h, (long long)a->out_w);
}

static tg_module *pool_new(const tg_pool2d_opts *opts, const char *kind, tg_forward_fn forward,
                           const char *op)
{
    if (!opts) tg_fail("%s: needs options with the kernel size (.kernel = {2, 2})", op);
    for (int a = 0; a < 2; a++)
        if (opts->kernel[a] < 1 || opts->stride[a] < 0 || opts->padding[a] < 0 ||
            2 * opts->padding[a] > opts->kernel[a])
            tg_fail("%s: axis %d: kernel %d must be >= 1, stride %d >= 0 (0: the kernel), "
                     "padding %d between 0 and half the kernel", op, a, opts->kernel[a],
                     opts->stride[a], opts->padding[a]);
    pool_module *p = tg_module_new(sizeof *p, kind, forward);
    p->base.describe = pool_describe;
    p->opts = *opts;
    return &p->base;
}

tg_module *tg_max_pool2d_new(const tg_pool2d_opts *opts)
{
    return pool_new(opts, "MaxPool2d", max_pool_forward, "tg_max_pool2d_new");
}

tg_module *tg_avg_pool2d_new(const tg_pool2d_opts *opts)
{
    return pool_new(opts, "AvgPool2d", avg_pool_forward, "tg_avg_pool2d_new");
}

tg_module *tg_adaptive_avg_pool2d_new(int64_t out_h, int64_t out_w)
{
    if (out_h < 1 || out_w < 1)
        tg_fail("tg_adaptive_avg_pool2d_new: output size must be positive (got %lld x %lld)",
                 (long long)out_h, (long long)out_w);
    adaptive_module *a = tg_module_new(sizeof *a, "AdaptiveAvgPool2d", adaptive_forward);
    a->base.describe = adaptive_describe;
    a->out_h = out_h;
    a->out_w = out_w;
    return &a->base;
}
