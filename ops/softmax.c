/* softmax and log_softmax along any axis.
 *
 * Stability: with m the row's maximum, exp(x - m) <= 1 never overflows and the sum s >= 1 never
 * underflows, so softmax = exp(x - m) / s and log_softmax = (x - m) - log(s) are finite for any
 * finite input (the log-sum-exp trick). The input is viewed as [outer, n, inner], n being the
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
            double s = 0;                                                                      \
            for (int64_t k = 0; k < v.n; k++) m = x[k * v.inner] > m ? x[k * v.inner] : m;     \
            for (int64_t k = 0; k < v.n; k++) s += exp(x[k * v.inner] - m);                    \
            T log_s = (T)log(s);                                                               \
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
STAMP(SOFTMAX_KERNELS)

static void softmax_backward(tg_node *node)
{
    tg_tensor *x = node->in[0];
    KERNEL_FOR(softmax_bwd, x)(view_of(x, (int)node->i[0]), node->i[1], node->out->data,
                               node->out->grad->data, tg__grad(x));
}

static tg_tensor *softmax(tg_tensor *a, int axis, bool log_out, const char *op)
{
    tg__check_float(a, op);
    int ax = tg__normalize_axis(axis, a->ndim, op);
    tg_tensor *out = tg__new_intermediate(a->dtype, a->ndim, a->shape);
    KERNEL_FOR(softmax_fwd, a)(view_of(a, ax), log_out, a->data, out->data);
    tg_node *node = tg__record(op, softmax_backward, out, 1, &a);
    if (node) {
        node->i[0] = ax;
        node->i[1] = log_out;
    }
    return out;
}

tg_tensor *tg_softmax(tg_tensor *a, int axis) { return softmax(a, axis, false, "tg_softmax"); }

tg_tensor *tg_log_softmax(tg_tensor *a, int axis)
{
    return softmax(a, axis, true, "tg_log_softmax");
}
