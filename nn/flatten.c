/* Flatten module: axes start..end merged into one (nn.Flatten, default 1..-1). */
#include <stdio.h>
#include "autograd/internal.h"
#include "nn/internal.h"

typedef struct {
    tg_module base;
    int start, end;
} flatten_module;

static tg_tensor *flatten_forward(tg_module *self, tg_tensor *x)
{
    flatten_module *f = (flatten_module *)self;
    return tg_flatten(x, f->start, f->end);
}

static void flatten_describe(const tg_module *self, char *buf, size_t len)
{
    const flatten_module *f = (const flatten_module *)self;
    snprintf(buf, len, "start_dim=%d, end_dim=%d", f->start, f->end);
}

tg_module *tg_flatten_new(int start_axis, int end_axis)
{
    flatten_module *f = tg_module_new(sizeof *f, "Flatten", flatten_forward);
    f->base.describe = flatten_describe;
    f->start = start_axis;
    f->end = end_axis;
    return &f->base;
}
