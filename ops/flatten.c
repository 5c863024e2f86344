/* flatten: axes start..end merged into one, a reshape (its gradient is the reshape back). */
#include "ops/kernel.h"
#include "tg/conv.h"

tg_tensor *tg_flatten(tg_tensor *x, int start_axis, int end_axis)
{
    const char *op = "tg_flatten";
    tg_check_float(x, op);
    if (x->ndim == 0) return tg_reshape(x, TG_SHAPE(1)); /* PyTorch: a 0-d tensor becomes [1] */
    int lo = tg_normalize_axis(start_axis, x->ndim, op), hi = tg_normalize_axis(end_axis, x->ndim, op);
    if (lo > hi) {
        char s[128];
        tg_fail("%s: start axis %d comes after end axis %d of %s", op, start_axis, end_axis,
                tg_shape_str(x, s, sizeof s));
    }
    int64_t shape[TG_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < lo; d++) shape[nd++] = x->shape[d];
    shape[nd] = 1;
    for (int d = lo; d <= hi; d++) shape[nd] *= x->shape[d];
    nd++;
    for (int d = hi + 1; d < x->ndim; d++) shape[nd++] = x->shape[d];
    return tg_reshape(x, nd, shape);
}
