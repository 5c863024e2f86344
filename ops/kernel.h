/* Shared by the op files: the [outer, n, inner] view of a tensor around one axis, and constants
 * for differentiable backwards. Internal to ops/; everything else an op uses is the public op API
 * (include/tg/op.h). */
#ifndef TG_OPS_KERNEL_H
#define TG_OPS_KERNEL_H
#include <string.h>
#include "tg/core.h"
#include "tg/op.h"

/* Element (o, k, j) of the view sits at (o·n + k)·inner + j; n is the size of the axis. */
typedef struct {
    int64_t outer, n, inner;
} axis_view;

static inline axis_view view_of(const tg_tensor *a, int axis)
{
    axis_view v = {1, a->shape[axis], 1};
    for (int d = 0; d < axis; d++) v.outer *= a->shape[d];
    for (int d = axis + 1; d < a->ndim; d++) v.inner *= a->shape[d];
    return v;
}

/* A tensor of the step that no gradient flows through (a mask, a one-hot, a constant), shaped
 * like t, of dtype t->dtype, filled with value. */
static inline tg_tensor *tg__constant_like(const tg_tensor *t, double value)
{
    tg_tensor *c = tg_op_output(t->dtype, t->ndim, t->shape);
    tg_fill_(c, value);
    return c;
}

#endif
