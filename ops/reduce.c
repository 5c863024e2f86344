/* Reductions: sum and mean (of all elements or along one axis), max along an axis, argmax.
 *
 * An axis reduction views its input as [outer, n, inner], n being the reduced axis: element
 * (o, k, j) sits at (o·n + k)·inner + j and reduces into out[o·inner + j]. A reduction of all
 * elements is the view [1, numel, 1]. Kernels are stamped for float and double by STAMP;
 * <tgmath.h> picks the float or double isnan. */
#include <string.h>
#include <tgmath.h>
#include "ops/kernel.h"

/* The output shape of a reduction along axis; returns its rank. */
static int reduced_shape(const tg_tensor *a, int axis, bool keepdim, int64_t *shape)
{
    int nd = 0;
    for (int d = 0; d < a->ndim; d++) {
        if (d != axis) shape[nd++] = a->shape[d];
        else if (keepdim) shape[nd++] = 1;
    }
    return nd;
}

/* Accumulates in double, o-k-j order (contiguous reads) through a row of `inner` sums. */
#define SUM_KERNELS(T, S)                                                                      \
    static void sum_fwd_##S(axis_view v, double scale, const void *px, void *py, double *acc) \
    {                                                                                          \
        const T *x = px;                                                                       \
        T *y = py;                                                                             \
        for (int64_t o = 0; v.inner == 1 && o < v.outer; o++, x += v.n) { /* a plain sum */   \
            double s = 0;                                                                      \
            for (int64_t k = 0; k < v.n; k++) s += x[k];                                       \
            y[o] = (T)(s * scale);                                                             \
        }                                                                                      \
        for (int64_t o = 0; v.inner > 1 && o < v.outer; o++) {                                \
            memset(acc, 0, (size_t)v.inner * sizeof *acc);                                     \
            for (int64_t k = 0; k < v.n; k++, x += v.inner)                                    \
                for (int64_t j = 0; j < v.inner; j++) acc[j] += x[j];                          \
            for (int64_t j = 0; j < v.inner; j++) y[o * v.inner + j] = (T)(acc[j] * scale);    \
        }                                                                                      \
    }                                                                                          \
    static void sum_bwd_##S(axis_view v, double scale, const void *pg, void *pgx)              \
    {                                                                                          \
        const T *g = pg;                                                                       \
        T *gx = pgx;                                                                           \
        for (int64_t o = 0; o < v.outer; o++, g += v.inner)                                    \
            for (int64_t k = 0; k < v.n; k++, gx += v.inner)                                   \
                for (int64_t j = 0; j < v.inner; j++) gx[j] += (T)(g[j] * scale);              \
    }
TG_STAMP(SUM_KERNELS)

/* arg[o·inner + j] = the first k of the largest x(o, k, j); a NaN wins, as in PyTorch.
 * y (the max itself) may be NULL. */
#define MAX_KERNELS(T, S)                                                                      \
    static void max_fwd_##S(axis_view v, const void *px, void *py, int64_t *arg)               \
    {                                                                                          \
        for (int64_t o = 0; o < v.outer; o++)                                                 \
            for (int64_t j = 0; j < v.inner; j++) {                                           \
                const T *x = (const T *)px + o * v.n * v.inner + j;                            \
                int64_t best = 0;                                                              \
                for (int64_t k = 1; k < v.n; k++) {                                           \
                    T c = x[k * v.inner], b = x[best * v.inner];                               \
                    if (c > b || (isnan(c) && !isnan(b))) best = k;                            \
                }                                                                              \
                arg[o * v.inner + j] = best;                                                   \
                if (py) ((T *)py)[o * v.inner + j] = x[best * v.inner];                        \
            }                                                                                  \
    }                                                                                          \
    static void max_bwd_##S(axis_view v, const int64_t *arg, const void *pg, void *pgx)        \
    {                                                                                          \
        const T *g = pg;                                                                       \
        T *gx = pgx;                                                                           \
        for (int64_t o = 0; o < v.outer; o++)                                                 \
            for (int64_t j = 0; j < v.inner; j++) {                                           \
                int64_t i = o * v.inner + j;                                                   \
                gx[(o * v.n + arg[i]) * v.inner + j] += g[i];                                  \
            }                                                                                  \
    }
TG_STAMP(MAX_KERNELS)

typedef struct {
    axis_view v;
    double scale;
    int axis;      /* the reduced axis, or -1 for all elements */
} sum_saved;

/* g reshaped with the reduced axis kept as size 1, then broadcast to x's shape. */
static tg_tensor *spread(tg_tensor *g, const tg_tensor *x, int axis)
{
    if (axis >= 0) {
        int64_t keep[TG_MAX_DIMS];
        memcpy(keep, x->shape, sizeof keep);
        keep[axis] = 1;
        g = tg_reshape(g, x->ndim, keep);
    }
    return tg_broadcast_to(g, x->ndim, x->shape);
}

/* d/dx (scale·Σ_k x(o,k,j)) = scale: gx(o,k,j) += scale · g(o,j) */
static void sum_backward(const tg_node *node)
{
    const sum_saved *s = node->saved;
    TG_KERNEL_FOR(sum_bwd, node->out)(s->v, s->scale, tg_op_grad_out(node),
                                      tg_op_grad(node->in[0]));
}

static void sum_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const sum_saved *s = node->saved;
    grad_in[0] = tg_mul_scalar(spread(g, node->in[0], s->axis), s->scale);
}

static const tg_op sum_op = {"tg_sum", sum_backward, sum_backward_ops};
static const tg_op mean_op = {"tg_mean", sum_backward, sum_backward_ops};
static const tg_op sum_axis_op = {"tg_sum_axis", sum_backward, sum_backward_ops};
static const tg_op mean_axis_op = {"tg_mean_axis", sum_backward, sum_backward_ops};

static tg_tensor *reduce_sum(const tg_op *op, tg_tensor *a, axis_view v, int axis, double scale,
                             int ndim, const int64_t *shape)
{
    tg_tensor *out = tg_op_output(a->dtype, ndim, shape);
    double *acc = tg_op_scratch((size_t)v.inner * sizeof *acc);
    TG_KERNEL_FOR(sum_fwd, a)(v, scale, a->data, out->data, acc);
    tg_node *node = tg_op_record(op, out, 1, &a, sizeof(sum_saved));
    if (node) *(sum_saved *)node->saved = (sum_saved){v, scale, axis};
    return out;
}

/* The mean of nothing is NaN (as in NumPy and PyTorch), not a division by zero. */
static double mean_scale(int64_t n) { return n ? 1.0 / (double)n : NAN; }

tg_tensor *tg_sum(tg_tensor *a)
{
    tg_check_float(a, "tg_sum");
    return reduce_sum(&sum_op, a, (axis_view){1, a->numel, 1}, -1, 1.0, 0, NULL);
}

tg_tensor *tg_mean(tg_tensor *a)
{
    tg_check_float(a, "tg_mean");
    return reduce_sum(&mean_op, a, (axis_view){1, a->numel, 1}, -1, mean_scale(a->numel), 0, NULL);
}

static tg_tensor *sum_along(const tg_op *op, tg_tensor *a, int axis, bool keepdim, bool mean)
{
    tg_check_float(a, op->name);
    int ax = tg_normalize_axis(axis, a->ndim, op->name);
    int64_t shape[TG_MAX_DIMS];
    int nd = reduced_shape(a, ax, keepdim, shape);
    axis_view v = view_of(a, ax);
    return reduce_sum(op, a, v, ax, mean ? mean_scale(v.n) : 1.0, nd, shape);
}

tg_tensor *tg_sum_axis(tg_tensor *a, int axis, bool keepdim)
{
    return sum_along(&sum_axis_op, a, axis, keepdim, false);
}

tg_tensor *tg_mean_axis(tg_tensor *a, int axis, bool keepdim)
{
    return sum_along(&mean_axis_op, a, axis, keepdim, true);
}

/* Validates a max/argmax and returns its view: an empty axis has no maximum. */
static axis_view max_view(const tg_tensor *a, int axis, int *ax, const char *op)
{
    tg_check_float(a, op);
    *ax = tg_normalize_axis(axis, a->ndim, op);
    if (a->shape[*ax] == 0) {
        char s[128];
        tg_fail("%s: axis %d of %s is empty and has no maximum", op, axis,
                 tg_shape_str(a, s, sizeof s));
    }
    return view_of(a, *ax);
}

typedef struct {
    axis_view v;
    int64_t *arg;
    int axis;
} max_saved;

/* y = x(o, k*, j) with k* the argmax: gx(o, k*, j) += g(o, j) */
static void max_backward(const tg_node *node)
{
    const max_saved *s = node->saved;
    TG_KERNEL_FOR(max_bwd, node->out)(s->v, s->arg, tg_op_grad_out(node), tg_op_grad(node->in[0]));
}

/* gx = spread(g) · onehot(argmax), the one-hot a constant of x's shape */
static void max_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const max_saved *s = node->saved;
    tg_tensor *x = node->in[0], *hot = tg__constant_like(x, 0);
    for (int64_t o = 0; o < s->v.outer; o++)
        for (int64_t j = 0; j < s->v.inner; j++)
            tg_set_flat(hot, (o * s->v.n + s->arg[o * s->v.inner + j]) * s->v.inner + j, 1);
    grad_in[0] = tg_mul(spread(g, x, s->axis), hot);
}

static const tg_op max_axis_op = {"tg_max_axis", max_backward, max_backward_ops};

tg_tensor *tg_max_axis(tg_tensor *a, int axis, bool keepdim)
{
    int ax;
    axis_view v = max_view(a, axis, &ax, "tg_max_axis");
    int64_t shape[TG_MAX_DIMS];
    tg_tensor *out = tg_op_output(a->dtype, reduced_shape(a, ax, keepdim, shape), shape);
    int64_t *arg = tg_op_scratch((size_t)out->numel * sizeof *arg);
    TG_KERNEL_FOR(max_fwd, a)(v, a->data, out->data, arg);
    tg_node *node = tg_op_record(&max_axis_op, out, 1, &a, sizeof(max_saved));
    if (node) *(max_saved *)node->saved = (max_saved){v, arg, ax};
    return out;
}

tg_tensor *tg_argmax(tg_tensor *a, int axis)
{
    int ax;
    axis_view v = max_view(a, axis, &ax, "tg_argmax");
    int64_t shape[TG_MAX_DIMS];
    tg_tensor *out = tg_op_output(TG_I32, reduced_shape(a, ax, false, shape), shape);
    int64_t *arg = tg_op_scratch((size_t)out->numel * sizeof *arg);
    TG_KERNEL_FOR(max_fwd, a)(v, a->data, NULL, arg);
    for (int64_t i = 0; i < out->numel; i++) ((int32_t *)out->data)[i] = (int32_t)arg[i];
    return out;
}
