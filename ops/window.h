/* Sliding windows along one axis, shared by the convolution and pooling kernels (ops/conv.c,
 * ops/pool.c). Internal to ops/. */
#ifndef TG_OPS_WINDOW_H
#define TG_OPS_WINDOW_H
#include <stdint.h>

/* The outputs o in [lo, hi) of an axis of n_out outputs whose input index o·stride + offset lies
 * in [0, n): the part of a kernel offset's row that reads the input rather than the padding.
 * Stride 1, the common case, divides by nothing (an integer division costs tens of cycles, and
 * the im2col of a small layer asks for hundreds of ranges per image). */
static inline void tg__valid_range(int64_t n_out, int64_t n, int64_t stride, int64_t offset,
                                   int64_t *lo, int64_t *hi)
{
    if (stride == 1) {
        *lo = offset >= 0 ? 0 : -offset;
        *hi = n - offset;
    } else {
        *lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
        *hi = n - 1 - offset < 0 ? 0 : (n - 1 - offset) / stride + 1;
    }
    if (*hi > n_out) *hi = n_out;
    if (*hi < 0) *hi = 0;
    if (*lo > *hi) *lo = *hi;
}

#endif
