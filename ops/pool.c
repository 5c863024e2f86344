/* Pooling over the last two axes of [N, C, H, W]: max, average and adaptive average.
 *
 * Max pooling keeps, for every output, the flat index of the input element it took, so its
 * backward is a scatter of the gradient to those indices: tg_scatter_rows, whose own backward is a
 * gather, which gives the differentiable backward for free.
 *
 * Average pooling of either kind is a set of rectangular windows, each with a divisor; the
 * windows are products of per-axis intervals (rows [h0, h1) × columns [w0, w1), divisor
 * ch·cw), which is how PyTorch defines them too. The op and its adjoint (spreading each output's
 * gradient back over its window, divided the same way) are linear and each other's backward. */
#include <math.h>
#include <string.h>
#include "ops/kernel.h"
#include "autograd/cpu_clones.h"
#include "ops/window.h"
#include "tg/conv.h"

/* For each output along one axis: the input interval [lo, hi) and its divisor count. */
typedef struct {
    int64_t *lo, *hi, *count;
} axis_windows;

typedef struct {
    int64_t planes, H, W, OH, OW;   /* planes = N·C */
    axis_windows rows, cols;
} windows;

/* Pooling options with PyTorch's defaults filled in, checked against x. */
typedef struct {
    int64_t kh, kw, sh, sw, ph, pw, OH, OW;
} pool_geom;

static void check_image(const tg_tensor *x, const char *op)
{
    tg_check_float(x, op);
    if (x->ndim != 4) {
        char s[128];
        tg_fail("%s: expected input [N, C, H, W], got %s (reshape a single image to [1, C, H, W])",
                op, tg_shape_str(x, s, sizeof s));
    }
}

static pool_geom check_pool(const tg_tensor *x, const tg_pool2d_opts *o, const char *op)
{
    char s[128];
    check_image(x, op);
    if (!o) tg_fail("%s: options are required (at least the kernel size)", op);
    pool_geom g = {o->kernel[0], o->kernel[1], o->stride[0] ? o->stride[0] : o->kernel[0],
                   o->stride[1] ? o->stride[1] : o->kernel[1], o->padding[0], o->padding[1], 0, 0};
    if (g.kh < 1 || g.kw < 1 || g.sh < 1 || g.sw < 1 || g.ph < 0 || g.pw < 0 ||
        2 * g.ph > g.kh || 2 * g.pw > g.kw)
        tg_fail("%s: kernel %lldx%lld and stride %lldx%lld must be >= 1, padding %lldx%lld "
                "between 0 and half the kernel", op, (long long)g.kh, (long long)g.kw,
                (long long)g.sh, (long long)g.sw, (long long)g.ph, (long long)g.pw);
    int64_t H = x->shape[2], W = x->shape[3];
    if (H + 2 * g.ph < g.kh || W + 2 * g.pw < g.kw)
        tg_fail("%s: kernel %lldx%lld does not fit input %s padded by %lldx%lld", op,
                (long long)g.kh, (long long)g.kw, tg_shape_str(x, s, sizeof s), (long long)g.ph,
                (long long)g.pw);
    g.OH = (H + 2 * g.ph - g.kh) / g.sh + 1;
    g.OW = (W + 2 * g.pw - g.kw) / g.sw + 1;
    return g;
}

/* ---- max_pool2d ---- */

/* y = the window's maximum, idx = its flat index in x. A NaN wins; a tie keeps the first in
 * row-major order. One output row at a time, kernel offset by kernel offset, so that the inner
 * loop runs across outputs (vectorised; a loop within each window is a chain of dependent
 * compares). idx starts at each window's first element in the image: the result when every
 * element is -inf. cols[j], cols[kw + j]: the outputs [lo, hi) whose column offset j reads the
 * image, the same for every row and plane (worked out once: a range costs two divisions). */
#define MAX_POOL(T, S)                                                                         \
    /* outputs [0, n) of a row, window offsets at = first + k·sw in x (row points at first) */   \
    static void max_pool_row_##S(const T *restrict row, int64_t first, int64_t n, int64_t sw,  \
                                 T *restrict y, int32_t *restrict idx)                         \
    {                                                                                          \
        for (int64_t k = 0; k < n; k++) {                                                     \
            T v = row[k * sw];                                                                 \
            bool take = v > y[k] || v != v;                                                    \
            y[k] = take ? v : y[k];                                                            \
            idx[k] = take ? (int32_t)(first + k * sw) : idx[k];                                \
        }                                                                                      \
    }                                                                                          \
    static void max_pool_first_##S(const T *restrict row, int64_t first, int64_t n,            \
                                   int64_t sw, T *restrict y, int32_t *restrict idx)           \
    {                                                                                          \
        for (int64_t k = 0; k < n; k++) {                                                     \
            y[k] = row[k * sw];                                                                \
            idx[k] = (int32_t)(first + k * sw);                                                \
        }                                                                                      \
    }                                                                                          \
    static TG_CPU_CLONES void max_pool_##S(const tg_tensor *x, const pool_geom *g,             \
                                           const int64_t *cols,                                \
                                           T *y, int32_t *idx)                                 \
    {                                                                                          \
        const T *px = x->data;                                                                 \
        int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];          \
        /* no padding: each window's first element is in the image, and taking it is the      \
         * -inf start followed by its own pass, one pass fewer */                             \
        bool plain = !g->ph && !g->pw;                                                         \
        for (int64_t p = 0; p < planes; p++)                                                  \
            for (int64_t oh = 0; oh < g->OH; oh++, y += g->OW, idx += g->OW) {                \
                int64_t h0 = oh * g->sh - g->ph;                                               \
                if (plain) {                                                                   \
                    int64_t first = (p * H + h0) * W;                                          \
                    max_pool_first_##S(px + first, first, g->OW, g->sw, y, idx);               \
                }                                                                              \
                for (int64_t ow = 0; ow < g->OW && !plain; ow++) {                            \
                    int64_t w0 = ow * g->sw - g->pw;                                           \
                    y[ow] = -INFINITY;                                                         \
                    idx[ow] = (int32_t)((p * H + (h0 < 0 ? 0 : h0)) * W + (w0 < 0 ? 0 : w0));  \
                }                                                                              \
                for (int64_t i = 0; i < g->kh; i++) {                                         \
                    int64_t h = h0 + i;                                                        \
                    if (h < 0 || h >= H) continue;                                             \
                    for (int64_t j = plain && i == 0; j < g->kw; j++) {                       \
                        int64_t lo = cols[j], hi = cols[g->kw + j];                            \
                        int64_t first = (p * H + h) * W + lo * g->sw + j - g->pw;              \
                        max_pool_row_##S(px + first, first, hi - lo, g->sw, y + lo, idx + lo); \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
    }                                                                                          \
    /* 2x2 windows of stride 2 without padding (LeNet's, the CIFAR AlexNet's and VGG's pools):  \
     * the four elements of each window compared in max_pool's order (top left, top right,      \
     * bottom left, bottom right, with the same take rule), so ties and NaNs come out the same;  \
     * one loop per output row instead of a call per row and kernel offset (rows of 2-8         \
     * outputs spent most of their time in those calls). */                                     \
    static TG_CPU_CLONES void max_pool_2x2_##S(const T *restrict x, int64_t planes, int64_t H,  \
                                               int64_t W, int64_t OH, int64_t OW,               \
                                               T *restrict y, int32_t *restrict idx)            \
    {                                                                                          \
        for (int64_t p = 0; p < planes; p++)                                                  \
            for (int64_t oh = 0; oh < OH; oh++, y += OW, idx += OW) {                         \
                int64_t top = (p * H + 2 * oh) * W;                                            \
                const T *r0 = x + top, *r1 = r0 + W;                                           \
                for (int64_t ow = 0; ow < OW; ow++) {                                         \
                    T best = r0[2 * ow], v = r0[2 * ow + 1];                                   \
                    int64_t at = top + 2 * ow;                                                 \
                    bool take = v > best || v != v;                                            \
                    best = take ? v : best;                                                    \
                    at = take ? top + 2 * ow + 1 : at;                                         \
                    v = r1[2 * ow];                                                            \
                    take = v > best || v != v;                                                 \
                    best = take ? v : best;                                                    \
                    at = take ? top + W + 2 * ow : at;                                         \
                    v = r1[2 * ow + 1];                                                        \
                    take = v > best || v != v;                                                 \
                    best = take ? v : best;                                                    \
                    at = take ? top + W + 2 * ow + 1 : at;                                     \
                    y[ow] = best;                                                              \
                    idx[ow] = (int32_t)at;                                                     \
                }                                                                              \
            }                                                                                  \
    }                                                                                          \
    static void max_unpool_##S(int64_t n, const int32_t *idx, const void *pg, void *pgx)       \
    {                                                                                          \
        const T *g = pg;                                                                       \
        T *gx = pgx;                                                                           \
        for (int64_t k = 0; k < n; k++) gx[idx[k]] += g[k];                                   \
    }
TG_STAMP(MAX_POOL)

typedef struct {
    tg_tensor *index;   /* int32 [OH·OW·planes]: the flat input index of each output */
} max_pool_saved;

/* y[k] = x[idx[k]]: gx[idx[k]] += g[k] */
static void max_pool_backward(const tg_node *node)
{
    const max_pool_saved *s = node->saved;
    TG_KERNEL_FOR(max_unpool, node->out)(node->out->numel, s->index->data, tg_op_grad_out(node),
                                         tg_op_grad(node->in[0]));
}

static void max_pool_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const max_pool_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    tg_tensor *col = tg_reshape(g, TG_SHAPE(g->numel, 1));
    grad_in[0] = tg_reshape(tg_scatter_rows(col, s->index, x->numel), x->ndim, x->shape);
}

static const tg_op max_pool_op = {"tg_max_pool2d", max_pool_backward, max_pool_backward_ops};

tg_tensor *tg_max_pool2d(tg_tensor *x, const tg_pool2d_opts *opts)
{
    pool_geom g = check_pool(x, opts, "tg_max_pool2d");
    if (x->numel > INT32_MAX) {
        char s[128];
        tg_fail("tg_max_pool2d: input %s has more than 2^31 elements (split the batch)",
                tg_shape_str(x, s, sizeof s));
    }
    tg_tensor *y = tg_op_output(x->dtype, TG_SHAPE(x->shape[0], x->shape[1], g.OH, g.OW));
    tg_tensor *index = tg_op_output(TG_I32, TG_SHAPE(y->numel));
    int64_t *cols = tg_op_scratch(2 * (size_t)g.kw * sizeof *cols);
    for (int64_t j = 0; j < g.kw; j++)
        tg__valid_range(g.OW, x->shape[3], g.sw, j - g.pw, &cols[j], &cols[g.kw + j]);
    bool two_by_two = g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && !g.ph && !g.pw;
    int64_t planes = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3];
    if (two_by_two && x->dtype == TG_F64)
        max_pool_2x2_f64(x->data, planes, H, W, g.OH, g.OW, y->data, index->data);
    else if (two_by_two)
        max_pool_2x2_f32(x->data, planes, H, W, g.OH, g.OW, y->data, index->data);
    else if (x->dtype == TG_F64)
        max_pool_f64(x, &g, cols, y->data, index->data);
    else
        max_pool_f32(x, &g, cols, y->data, index->data);
    tg_node *node = tg_op_record(&max_pool_op, y, 1, &x, sizeof(max_pool_saved));
    if (node) ((max_pool_saved *)node->saved)->index = index;
    return y;
}

/* ---- average pooling: windows and their two kernels ---- */

/* spread = false: y[o] (+)= Σ_window x / divisor. spread = true, the adjoint: x[window] += y[o] /
 * divisor (x is then the destination). */
#define WINDOW_MEAN(T, S)                                                                      \
    static void window_mean_##S(const windows *v, const T *x, T *y, bool add)                 \
    {                                                                                          \
        for (int64_t p = 0; p < v->planes; p++, x += v->H * v->W)                             \
            for (int64_t oh = 0; oh < v->OH; oh++)                                            \
                for (int64_t ow = 0; ow < v->OW; ow++, y++) {                                 \
                    T s = 0;                                                                   \
                    for (int64_t h = v->rows.lo[oh]; h < v->rows.hi[oh]; h++)                  \
                        for (int64_t w = v->cols.lo[ow]; w < v->cols.hi[ow]; w++)              \
                            s += x[h * v->W + w];                                              \
                    s /= (T)(v->rows.count[oh] * v->cols.count[ow]);                           \
                    *y = add ? *y + s : s;                                                     \
                }                                                                              \
    }                                                                                          \
    static void window_spread_##S(const windows *v, const T *g, T *x)                         \
    {                                                                                          \
        for (int64_t p = 0; p < v->planes; p++, x += v->H * v->W)                             \
            for (int64_t oh = 0; oh < v->OH; oh++)                                            \
                for (int64_t ow = 0; ow < v->OW; ow++, g++) {                                 \
                    T s = *g / (T)(v->rows.count[oh] * v->cols.count[ow]);                     \
                    for (int64_t h = v->rows.lo[oh]; h < v->rows.hi[oh]; h++)                  \
                        for (int64_t w = v->cols.lo[ow]; w < v->cols.hi[ow]; w++)              \
                            x[h * v->W + w] += s;                                              \
                }                                                                              \
    }
TG_STAMP(WINDOW_MEAN)

static void window_mean(const windows *v, tg_dtype dt, const void *x, void *y, bool add)
{
    if (dt == TG_F64) window_mean_f64(v, x, y, add);
    else window_mean_f32(v, x, y, add);
}

static void window_spread(const windows *v, tg_dtype dt, const void *g, void *x)
{
    if (dt == TG_F64) window_spread_f64(v, g, x);
    else window_spread_f32(v, g, x);
}

static const tg_op avg_pool_op, adaptive_op, spread_op;
static tg_tensor *mean_op(const tg_op *op, tg_tensor *x, const windows *v);

/* gx = the adjoint of the windows' mean, built as an op: its backward is the mean again */
static tg_tensor *spread_as_op(tg_tensor *g, const windows *v)
{
    tg_tensor *gx = tg_op_output(g->dtype, TG_SHAPE(g->shape[0], g->shape[1], v->H, v->W));
    memset(gx->data, 0, tg_nbytes(gx));
    window_spread(v, g->dtype, g->data, gx->data);
    tg_node *node = tg_op_record(&spread_op, gx, 1, &g, sizeof *v);
    if (node) *(windows *)node->saved = *v;
    return gx;
}

/* y = mean over windows: gx[window] += g / divisor */
static void mean_backward(const tg_node *node)
{
    void *gx = tg_op_grad(node->in[0]);
    if (gx) window_spread(node->saved, node->out->dtype, tg_op_grad_out(node), gx);
}

static void mean_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    grad_in[0] = spread_as_op(g, node->saved);
}

/* z = spread(g): gg[o] += Σ_window h / divisor */
static void spread_backward(const tg_node *node)
{
    void *gg = tg_op_grad(node->in[0]);
    if (gg) window_mean(node->saved, node->out->dtype, tg_op_grad_out(node), gg, true);
}

static void spread_backward_ops(const tg_node *node, tg_tensor *h, tg_tensor **grad_in)
{
    grad_in[0] = mean_op(&avg_pool_op, h, node->saved);
}

static const tg_op avg_pool_op = {"tg_avg_pool2d", mean_backward, mean_backward_ops};
static const tg_op adaptive_op = {"tg_adaptive_avg_pool2d", mean_backward, mean_backward_ops};
static const tg_op spread_op = {"tg_avg_pool2d (adjoint)", spread_backward, spread_backward_ops};

static tg_tensor *mean_op(const tg_op *op, tg_tensor *x, const windows *v)
{
    tg_tensor *y = tg_op_output(x->dtype, TG_SHAPE(x->shape[0], x->shape[1], v->OH, v->OW));
    window_mean(v, x->dtype, x->data, y->data, false);
    tg_node *node = tg_op_record(op, y, 1, &x, sizeof *v);
    if (node) *(windows *)node->saved = *v;
    return y;
}

static axis_windows new_axis_windows(int64_t n_out)
{
    int64_t *p = tg_op_scratch(3 * (size_t)n_out * sizeof *p);
    return (axis_windows){p, p + n_out, p + 2 * n_out};
}

/* Sliding windows along one axis of size n: PyTorch's avg_pool2d divisor counts the padding
 * inside the window (but not beyond it) unless exclude_padding. */
static axis_windows sliding(int64_t n, int64_t n_out, int64_t k, int64_t s, int64_t pad,
                            bool exclude_padding)
{
    axis_windows a = new_axis_windows(n_out);
    for (int64_t o = 0; o < n_out; o++) {
        int64_t lo = o * s - pad, hi = lo + k < n + pad ? lo + k : n + pad;
        int64_t padded = hi - lo;
        a.lo[o] = lo < 0 ? 0 : lo;
        a.hi[o] = hi < n ? hi : n;
        a.count[o] = exclude_padding ? a.hi[o] - a.lo[o] : padded;
    }
    return a;
}

/* Adaptive windows: [floor(o·n/n_out), ceil((o+1)·n/n_out)) */
static axis_windows adaptive(int64_t n, int64_t n_out)
{
    axis_windows a = new_axis_windows(n_out);
    for (int64_t o = 0; o < n_out; o++) {
        a.lo[o] = o * n / n_out;
        a.hi[o] = ((o + 1) * n + n_out - 1) / n_out;
        a.count[o] = a.hi[o] - a.lo[o];
    }
    return a;
}

tg_tensor *tg_avg_pool2d(tg_tensor *x, const tg_pool2d_opts *opts)
{
    pool_geom g = check_pool(x, opts, "tg_avg_pool2d");
    int64_t H = x->shape[2], W = x->shape[3];
    windows v = {x->shape[0] * x->shape[1], H, W, g.OH, g.OW,
                 sliding(H, g.OH, g.kh, g.sh, g.ph, opts->exclude_padding),
                 sliding(W, g.OW, g.kw, g.sw, g.pw, opts->exclude_padding)};
    return mean_op(&avg_pool_op, x, &v);
}

tg_tensor *tg_adaptive_avg_pool2d(tg_tensor *x, int64_t out_h, int64_t out_w)
{
    check_image(x, "tg_adaptive_avg_pool2d");
    int64_t H = x->shape[2], W = x->shape[3];
    if (out_h < 1 || out_w < 1 || H < 1 || W < 1) {
        char s[128];
        tg_fail("tg_adaptive_avg_pool2d: output %lldx%lld must be >= 1x1 and input %s non-empty",
                (long long)out_h, (long long)out_w, tg_shape_str(x, s, sizeof s));
    }
    windows v = {x->shape[0] * x->shape[1], H, W, out_h, out_w, adaptive(H, out_h),
                 adaptive(W, out_w)};
    return mean_op(&adaptive_op, x, &v);
}
