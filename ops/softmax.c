/* softmax and log_softmax along any axis.
 *
 * Stability: with m the row's maximum, exp(x - m) <= 1 never overflows and the sum s >= 1 never
 * underflows, so softmax = exp(x - m) / s and log_softmax = (x - m) - log(s) are finite for any
 * finite input (the log-sum-exp trick). Accuracy: s = 1 + r, r the sum over every entry but the
 * first maximum, and log(s) = log1p(r): a tiny r (a confident row) keeps its digits instead of
 * vanishing into the 1. The input is viewed as [outer, n, inner], n being the
 * axis: row (o, j) is x[(o·n + k)·inner + j], k < n. <tgmath.h> stamps float and double. */
#include <tgmath.h>
#include "ops/kernel.h"

/* Row r of the view starts at this element; its entries are `inner` apart. */
static int64_t row_start(axis_view v, int64_t r)
{
    return (r / v.inner) * v.n * v.inner + r % v.inner;
}

/* Backward, with y the output and d = Σ_k g_k·y_k (softmax) or Σ_k g_k (log_softmax):
 *   softmax:     gx_k += y_k·(g_k - d);   log_softmax: gx_k += g_k - exp(y_k)·d */
#define SOFTMAX_KERNELS(T, S)                                                                  \
    static void softmax_fwd_##S(axis_view v, bool log_out, const void *px, void *py)           \
    {                                                                                          \
        for (int64_t r = 0; r < v.outer * v.inner; r++) {                                     \
            const T *x = (const T *)px + row_start(v, r);                                      \
            T *y = (T *)py + row_start(v, r), m = -INFINITY;                                   \
            int64_t top = 0;                                                                   \
            double rest = 0;                                                                   \
            for (int64_t k = 0; k < v.n; k++)                                                 \
                if (x[k * v.inner] > m) m = x[k * v.inner], top = k; /* a NaN reaches rest */  \
            for (int64_t k = 0; k < v.n; k++)                                                 \
                if (k != top) rest += exp((double)x[k * v.inner] - m);                         \
            double s = 1 + rest;                                                               \
            T log_s = (T)log1p(rest);                                                          \
            for (int64_t k = 0; k < v.n; k++) {                                               \
                T z = x[k * v.inner] - m;                                                      \
                y[k * v.inner] = log_out ? z - log_s : (T)(exp(z) / s);                        \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void softmax_bwd_##S(axis_view v, bool log_out, const void *py, const void *pg,     \
                                void *pgx)                                                     \
    {                                                                                          \
        for (int64_t r = 0; r < v.outer * v.inner; r++) {                                     \
            const T *y = (const T *)py + row_start(v, r), *g = (const T *)pg + row_start(v, r); \
            T *gx = (T *)pgx + row_start(v, r);                                                \
            double d = 0;                                                                      \
            for (int64_t k = 0; k < v.n; k++)                                                 \
                d += log_out ? g[k * v.inner] : g[k * v.inner] * y[k * v.inner];               \
            for (int64_t k = 0; k < v.n; k++) {                                               \
                T gk = g[k * v.inner], yk = y[k * v.inner];                                    \
                gx[k * v.inner] += log_out ? gk - exp(yk) * (T)d : yk * (gk - (T)d);           \
            }                                                                                  \
        }                                                                                      \
    }
TG_STAMP(SOFTMAX_KERNELS)

typedef struct {
    int axis;
    bool log_out;
} softmax_saved;

static void softmax_backward(const tg_node *node)
{
    const softmax_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    TG_KERNEL_FOR(softmax_bwd, x)(view_of(x, s->axis), s->log_out, node->out->data,
                                  tg_op_grad_out(node), tg_op_grad(x));
}

/* softmax: gx = y·(g - Σ_k g_k y_k);  log_softmax: gx = g - exp(y)·Σ_k g_k */
static void softmax_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const softmax_saved *s = node->saved;
    tg_tensor *y = node->out;
    if (s->log_out)
        grad_in[0] = tg_sub(g, tg_mul(tg_exp(y), tg_sum_axis(g, s->axis, true)));
    else
        grad_in[0] = tg_mul(y, tg_sub(g, tg_sum_axis(tg_mul(g, y), s->axis, true)));
}

static const tg_op softmax_op = {"tg_softmax", softmax_backward, softmax_backward_ops};
static const tg_op log_softmax_op = {"tg_log_softmax", softmax_backward, softmax_backward_ops};

static tg_tensor *softmax(const tg_op *op, tg_tensor *a, int axis, bool log_out)
{
    tg_check_float(a, op->name);
    int ax = tg_normalize_axis(axis, a->ndim, op->name);
    tg_tensor *out = tg_op_output(a->dtype, a->ndim, a->shape);
    TG_KERNEL_FOR(softmax_fwd, a)(view_of(a, ax), log_out, a->data, out->data);
    tg_node *node = tg_op_record(op, out, 1, &a, sizeof(softmax_saved));
    if (node) *(softmax_saved *)node->saved = (softmax_saved){ax, log_out};
    return out;
}

tg_tensor *tg_softmax(tg_tensor *a, int axis) { return softmax(&softmax_op, a, axis, false); }

tg_tensor *tg_log_softmax(tg_tensor *a, int axis)
{
    return softmax(&log_softmax_op, a, axis, true);
}
