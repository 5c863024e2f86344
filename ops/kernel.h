/* Shared by the op files: stamping float and double kernels from one definition, and the
 * [outer, n, inner] view of a tensor around one axis. Internal to ops/. */
#ifndef TG_OPS_KERNEL_H
#define TG_OPS_KERNEL_H
#include "autograd/internal.h"

/* STAMP(K) expands K(float, f32) and K(double, f64); KERNEL_FOR picks by the tensor's dtype. */
#define STAMP(KERNEL) KERNEL(float, f32) KERNEL(double, f64)
#define KERNEL_FOR(NAME, t) ((t)->dtype == TG_F64 ? NAME##_f64 : NAME##_f32)

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

#endif
