/* NumPy broadcasting: the index maps of elementwise binary ops, and the two ops that move between
 * a shape and a broadcast of it, tg_broadcast_to (expand) and tg_sum_to (its adjoint), which the
 * differentiable backwards of broadcasting ops are written with. */
#include "ops/broadcast.h"

/* Flat index into x (aligned to the right of the target shape) for every target element;
 * NULL when x already has the target's shape. */
static const int64_t *operand_index(const tg_tensor *x, int ndim, const int64_t *shape,
                                    int64_t numel)
{
    if (x->numel == numel && x->ndim == ndim) return NULL;
    int64_t stride[TG_MAX_DIMS] = {0}, s = 1;
    int offset = ndim - x->ndim;
    for (int d = x->ndim - 1; d >= 0; d--) {
        stride[d + offset] = x->shape[d] == 1 ? 0 : s;
        s *= x->shape[d];
    }
    int64_t *index = tg_op_scratch((size_t)numel * sizeof *index);
    int64_t counter[TG_MAX_DIMS] = {0}, flat = 0;
    for (int64_t i = 0; i < numel; i++) {
        index[i] = flat;
        for (int d = ndim - 1; d >= 0; d--) { /* odometer step */
            flat += stride[d];
            if (++counter[d] < shape[d]) break;
            flat -= stride[d] * counter[d];
            counter[d] = 0;
        }
    }
    return index;
}

/* Operands of one shape, the common case: identity maps, the output has their shape. */
static bool same_shape_bcast(const tg_tensor *a, const tg_tensor *b, tg_bcast *bc)
{
    if (a->ndim != b->ndim || a->numel != b->numel) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    bc->ndim = a->ndim;
    for (int d = 0; d < TG_MAX_DIMS; d++) bc->shape[d] = d < a->ndim ? a->shape[d] : 0;
    bc->numel = a->numel;
    bc->ia = bc->ib = NULL;
    return true;
}

tg_bcast tg__broadcast(const tg_tensor *a, const tg_tensor *b, const char *op)
{
    tg_bcast bc;
    if (same_shape_bcast(a, b, &bc)) return bc;
    bc = (tg_bcast){.ndim = a->ndim > b->ndim ? a->ndim : b->ndim, .numel = 1};
    for (int d = 0; d < bc.ndim; d++) {
        int da = d - (bc.ndim - a->ndim), db = d - (bc.ndim - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char s1[128], s2[128];
            tg_fail("%s: shapes %s and %s do not broadcast (axis %d: %lld vs %lld)", op,
                    tg_shape_str(a, s1, sizeof s1), tg_shape_str(b, s2, sizeof s2), d,
                    (long long)sa, (long long)sb);
        }
        bc.shape[d] = sa == 1 ? sb : sa;
        bc.numel *= bc.shape[d];
    }
    bc.ia = operand_index(a, bc.ndim, bc.shape, bc.numel);
    bc.ib = operand_index(b, bc.ndim, bc.shape, bc.numel);
    return bc;
}

/* The index map from the big shape to the small one, checking that small broadcasts to big. */
static const int64_t *small_index(const tg_tensor *small, int ndim, const int64_t *big,
                                  int64_t *numel, const char *op)
{
    bool ok = small->ndim <= ndim && ndim <= TG_MAX_DIMS;
    *numel = 1;
    for (int d = 0; ok && d < ndim; d++) {
        int ds = d - (ndim - small->ndim);
        ok = ds < 0 || small->shape[ds] == 1 || small->shape[ds] == big[d];
        *numel *= big[d];
    }
    if (!ok) {
        char s[128];
        tg_fail("%s: %s does not broadcast to a shape of rank %d (sizes must match or be 1, "
                "aligned to the right)", op, tg_shape_str(small, s, sizeof s), ndim);
    }
    return operand_index(small, ndim, big, *numel);
}

/* out[i] = small[index[i]] (add = false) or big[i] summed into out[index[i]] (add = true). */
#define GATHER_SCATTER(T, S)                                                                   \
    static void expand_##S(int64_t n, const int64_t *index, const void *psmall, void *pbig)   \
    {                                                                                          \
        const T *small = psmall;                                                               \
        T *big = pbig;                                                                         \
        for (int64_t i = 0; i < n; i++) big[i] += small[index ? index[i] : i];                 \
    }                                                                                          \
    static void reduce_##S(int64_t n, const int64_t *index, const void *pbig, void *psmall)   \
    {                                                                                          \
        const T *big = pbig;                                                                   \
        T *small = psmall;                                                                     \
        for (int64_t i = 0; i < n; i++) small[index ? index[i] : i] += big[i];                 \
    }
TG_STAMP(GATHER_SCATTER)

typedef struct {
    const int64_t *index;   /* big element -> small element */
    int64_t n;              /* elements of the big shape */
} expand_saved;

static void broadcast_to_backward(const tg_node *node);
static void broadcast_to_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in);
static void sum_to_backward(const tg_node *node);
static void sum_to_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in);
static const tg_op broadcast_to_op = {"tg_broadcast_to", broadcast_to_backward,
                                      broadcast_to_backward_ops};
static const tg_op sum_to_op = {"tg_sum_to", sum_to_backward, sum_to_backward_ops};

/* y = x broadcast: gx[index[i]] += g[i] */
static void broadcast_to_backward(const tg_node *node)
{
    const expand_saved *s = node->saved;
    TG_KERNEL_FOR(reduce, node->out)(s->n, s->index, tg_op_grad_out(node), tg_op_grad(node->in[0]));
}

static void broadcast_to_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    grad_in[0] = tg_sum_to(g, node->in[0]->ndim, node->in[0]->shape);
}

/* y[index[i]] = Σ x[i]: gx[i] += g[index[i]] */
static void sum_to_backward(const tg_node *node)
{
    const expand_saved *s = node->saved;
    TG_KERNEL_FOR(expand, node->out)(s->n, s->index, tg_op_grad_out(node), tg_op_grad(node->in[0]));
}

static void sum_to_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    grad_in[0] = tg_broadcast_to(g, node->in[0]->ndim, node->in[0]->shape);
}

tg_tensor *tg_broadcast_to(tg_tensor *a, int ndim, const int64_t *shape)
{
    tg_check_float(a, "tg_broadcast_to");
    int64_t n;
    const int64_t *index = small_index(a, ndim, shape, &n, "tg_broadcast_to");
    tg_tensor *out = tg_op_output(a->dtype, ndim, shape);
    memset(out->data, 0, tg_nbytes(out));
    TG_KERNEL_FOR(expand, a)(n, index, a->data, out->data);
    tg_node *node = tg_op_record(&broadcast_to_op, out, 1, &a, sizeof(expand_saved));
    if (node) *(expand_saved *)node->saved = (expand_saved){index, n};
    return out;
}

tg_tensor *tg_sum_to(tg_tensor *a, int ndim, const int64_t *shape)
{
    tg_check_float(a, "tg_sum_to");
    tg_tensor *out = tg_op_output(a->dtype, ndim, shape);
    int64_t n;
    const int64_t *index = small_index(out, a->ndim, a->shape, &n, "tg_sum_to");
    memset(out->data, 0, tg_nbytes(out));
    TG_KERNEL_FOR(reduce, a)(n, index, a->data, out->data);
    tg_node *node = tg_op_record(&sum_to_op, out, 1, &a, sizeof(expand_saved));
    if (node) *(expand_saved *)node->saved = (expand_saved){index, n};
    return out;
}
