#include "ops/broadcast.h"

/* Flat index into x (aligned to the right of the output shape) for every output element;
 * NULL when x already has the output's shape. */
static const int64_t *operand_index(const tg_tensor *x, const tg_bcast *bc)
{
    if (x->numel == bc->numel && x->ndim == bc->ndim) return NULL;
    int64_t stride[TG_MAX_DIMS] = {0}, s = 1;
    int offset = bc->ndim - x->ndim;
    for (int d = x->ndim - 1; d >= 0; d--) {
        stride[d + offset] = x->shape[d] == 1 ? 0 : s;
        s *= x->shape[d];
    }
    int64_t *index = tg__arena_alloc((size_t)bc->numel * sizeof *index);
    int64_t counter[TG_MAX_DIMS] = {0}, flat = 0;
    for (int64_t i = 0; i < bc->numel; i++) {
        index[i] = flat;
        for (int d = bc->ndim - 1; d >= 0; d--) { /* odometer step */
            flat += stride[d];
            if (++counter[d] < bc->shape[d]) break;
            flat -= stride[d] * counter[d];
            counter[d] = 0;
        }
    }
    return index;
}

tg_bcast tg__broadcast(const tg_tensor *a, const tg_tensor *b, const char *op)
{
    tg_bcast bc = {.ndim = a->ndim > b->ndim ? a->ndim : b->ndim, .numel = 1};
    for (int d = 0; d < bc.ndim; d++) {
        int da = d - (bc.ndim - a->ndim), db = d - (bc.ndim - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char s1[128], s2[128];
            tg__fail("%s: shapes %s and %s do not broadcast (axis %d: %lld vs %lld)", op,
                     tg_shape_str(a, s1, sizeof s1), tg_shape_str(b, s2, sizeof s2), d,
                     (long long)sa, (long long)sb);
        }
        bc.shape[d] = sa == 1 ? sb : sa;
        bc.numel *= bc.shape[d];
    }
    bc.ia = operand_index(a, &bc);
    bc.ib = operand_index(b, &bc);
    return bc;
}
