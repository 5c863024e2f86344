/* 2-D convolution by im2col + GEMM, one group and one sample (for the weight gradient, one chunk
 * of samples) at a time.
 *
 * im2col lays the receptive fields of one sample's group out as a matrix col [K, P], K = Cg·kH·kW
 * (one row per input channel and kernel offset), P = OH·OW (one column per output pixel); a chunk
 * of samples sits side by side, [K, nb·P]. Then
 *     forward       Y_g  = W_g · col               [Og, P] = [Og, K] · [K, P]
 *     weight grad   dW_g += G_g · colᵀ
 *     input grad    dX  += col2im(W_gᵀ · G_g)      col2im is im2col's adjoint: it adds back
 * The col buffer comes from the step's scratch memory; nothing is saved between forward and
 * backward (im2col is recomputed, as PyTorch does), so a layer costs no memory beyond its output.
 *
 * Large float32 layers go to oneDNN instead when tapegrad is built with it (ops/conv_dnnl.c).
 *
 * The three products are three bilinear ops, each the others' adjoints, which is what makes the
 * backward differentiable (docs/conv.md):
 *     conv2d(X, W)          = Y   backward: dX = conv_input_grad(G, W), dW = conv_weight_grad(X, G)
 *     conv_input_grad(G, W) = dX  backward: dG = conv2d(H, W),          dW = conv_weight_grad(H, G)
 *     conv_weight_grad(X, G)= dW  backward: dX = conv_input_grad(G, K), dG = conv2d(X, K)       */
#include <string.h>
#include "ops/conv_dnnl.h"
#include "ops/kernel.h"
#include "ops/window.h"
#include "tg/conv.h"

/* Samples per weight-gradient GEMM. Its inner dimension is the number of output pixels, which is
 * short for small images (64 at 8x8): the [Og, K] result is then read and written once per 64
 * multiply-adds. Samples side by side in col make that dimension about CHUNK_COLUMNS long
 * (measured: docs/conv.md; the forward and input-gradient products, whose inner dimensions are
 * K and Og, measured better one sample at a time, col staying in cache). */
#define CHUNK_COLUMNS 256

static int64_t chunk_samples(const conv_geom *g)
{
    int64_t nb = (CHUNK_COLUMNS + conv_out_pixels(g) - 1) / conv_out_pixels(g);
    return nb < g->N ? nb : g->N;
}

/* Rows of im2col: dst[0, n) = every stride-th element of src, and its adjoint, which adds back.
 * The rows are short (10 elements in LeNet's conv2, 0-2 for a padding edge). A plain loop would
 * become a call to memcpy or memset (the compiler recognises the pattern), which costs more than
 * the copy at these lengths: blocks of 8, 4, 2 and 1 of constant size compile to a few moves. */
#define ROW_KERNELS(T, S)                                                                      \
    static inline void row_zero_##S(T *dst, int64_t n)                                         \
    {                                                                                          \
        int64_t k = 0;                                                                         \
        for (; k + 8 <= n; k += 8) memset(dst + k, 0, 8 * sizeof *dst);                        \
        if (n - k >= 4) memset(dst + k, 0, 4 * sizeof *dst), k += 4;                           \
        if (n - k >= 2) memset(dst + k, 0, 2 * sizeof *dst), k += 2;                           \
        if (n - k >= 1) dst[k] = 0;                                                            \
    }                                                                                          \
    static inline void row_copy_##S(T *restrict dst, const T *restrict src, int64_t n,         \
                                    int64_t stride)                                            \
    {                                                                                          \
        int64_t k = 0;                                                                         \
        if (stride != 1) {                                                                     \
            for (; k < n; k++) dst[k] = src[k * stride];                                       \
            return;                                                                            \
        }                                                                                      \
        for (; k + 8 <= n; k += 8) memcpy(dst + k, src + k, 8 * sizeof *dst);                  \
        if (n - k >= 4) memcpy(dst + k, src + k, 4 * sizeof *dst), k += 4;                     \
        if (n - k >= 2) memcpy(dst + k, src + k, 2 * sizeof *dst), k += 2;                     \
        if (n - k >= 1) dst[k] = src[k];                                                       \
    }                                                                                          \
    static inline void row_add_##S(T *restrict dst, const T *restrict src, int64_t n,          \
                                   int64_t stride)                                             \
    {                                                                                          \
        if (stride == 1)                                                                       \
            for (int64_t k = 0; k < n; k++) dst[k] += src[k];                                  \
        else                                                                                   \
            for (int64_t k = 0; k < n; k++) dst[k * stride] += src[k];                         \
    }                                                                                          \
    /* row_copy / row_add on m rows, dst_step and src_step apart. Everything the loop reads is  \
     * a parameter: the copies above may alias anything (memcpy), which would make the compiler \
     * reload a geometry read through a pointer on every row. */                              \
    static void rows_copy_##S(T *dst, int64_t dst_step, const T *src, int64_t src_step,        \
                              int64_t m, int64_t n, int64_t stride)                            \
    {                                                                                          \
        for (int64_t r = 0; r < m; r++)                                                       \
            row_copy_##S(dst + r * dst_step, src + r * src_step, n, stride);                   \
    }                                                                                          \
    static void rows_add_##S(T *dst, int64_t dst_step, const T *src, int64_t src_step,         \
                             int64_t m, int64_t n, int64_t stride)                             \
    {                                                                                          \
        for (int64_t r = 0; r < m; r++)                                                       \
            row_add_##S(dst + r * dst_step, src + r * src_step, n, stride);                    \
    }                                                                                          \
    /* rows r < m of OW elements: columns [0, lo) and [hi, OW) zeroed */                        \
    static void rows_zero_edges_##S(T *dst, int64_t m, int64_t OW, int64_t lo, int64_t hi)     \
    {                                                                                          \
        for (int64_t r = 0; r < m; r++, dst += OW) {                                          \
            row_zero_##S(dst, lo);                                                             \
            row_zero_##S(dst + hi, OW - hi);                                                   \
        }                                                                                      \
    }
TG_STAMP(ROW_KERNELS)

/* im2col of Cg channels starting at x (one sample's group), and its adjoint col2im, which adds
 * col back into x. Row (c·kh + i)·kw + j of col (rows ld apart) holds
 *     x[c, oh·sh - ph + i·dh, ow·sw - pw + j·dw]
 * at column oh·OW + ow, zero where that falls in the padding: for each kernel offset (i, j), the
 * output rows [oh_lo, oh_hi) and columns [lo, hi) read the image (tg__valid_range). */
#define IM2COL_KERNELS(T, S)                                                                   \
    /* Stride 1 with "same" width (OW = W): the valid rows of a col row are one contiguous span  \
     * of the image, copied at once; the columns that fall in the padding are zeroed after. */   \
    static void im2col_same_##S(const conv_geom *g, const T *x, T *col, int64_t i, int64_t j,  \
                                int64_t lo, int64_t hi, int64_t oh_lo, int64_t oh_hi)          \
    {                                                                                          \
        int64_t OW = g->OW, first = oh_lo * OW + lo, end = (oh_hi - 1) * OW + hi;              \
        int64_t shift = (i * g->dh - g->ph) * g->W + j * g->dw - g->pw;                        \
        row_zero_##S(col, oh_lo * OW);                                                         \
        row_zero_##S(col + oh_hi * OW, (g->OH - oh_hi) * OW);                                  \
        if (oh_lo >= oh_hi) return;                                                            \
        memcpy(col + first, x + first + shift, (size_t)(end - first) * sizeof *col);           \
        rows_zero_edges_##S(col + oh_lo * OW, oh_hi - oh_lo, OW, lo, hi);                      \
    }                                                                                          \
    static void im2col_##S(const conv_geom *g, const T *x, T *col, int64_t ld)                \
    {                                                                                          \
        int64_t Cg = g->C / g->groups, OH = g->OH, OW = g->OW;                                 \
        bool same = g->sw == 1 && g->sh == 1 && OW == g->W;                                    \
        for (int64_t c = 0; c < Cg; c++)                                                      \
            for (int64_t i = 0; i < g->kh; i++)                                               \
                for (int64_t j = 0; j < g->kw; j++, col += ld) {                              \
                    int64_t lo, hi, oh_lo, oh_hi;                                              \
                    tg__valid_range(OW, g->W, g->sw, j * g->dw - g->pw, &lo, &hi);             \
                    tg__valid_range(OH, g->H, g->sh, i * g->dh - g->ph, &oh_lo, &oh_hi);       \
                    if (same && lo < hi) {                                                     \
                        im2col_same_##S(g, x + c * g->H * g->W, col, i, j, lo, hi, oh_lo,      \
                                        oh_hi);                                                \
                        continue;                                                              \
                    }                                                                          \
                    /* the padding's part: all of it when some columns fall in the padding  \
                     * (one memset, then the copies), else the rows above and below */        \
                    size_t row_bytes = (size_t)OW * sizeof *col;                               \
                    if (lo > 0 || hi < OW) {                                                   \
                        memset(col, 0, (size_t)OH * row_bytes);                                \
                    } else {                                                                   \
                        if (oh_lo > 0) memset(col, 0, (size_t)oh_lo * row_bytes);              \
                        if (oh_hi < OH)                                                        \
                            memset(col + oh_hi * OW, 0, (size_t)(OH - oh_hi) * row_bytes);     \
                    }                                                                          \
                    if (lo == hi || oh_lo == oh_hi) continue;                                  \
                    const T *src = x + (c * g->H + oh_lo * g->sh - g->ph + i * g->dh) * g->W   \
                                   + lo * g->sw + j * g->dw - g->pw;                           \
                    rows_copy_##S(col + oh_lo * OW + lo, OW, src, g->sh * g->W, oh_hi - oh_lo, \
                                  hi - lo, g->sw);                                             \
                }                                                                              \
    }                                                                                          \
    static void col2im_##S(const conv_geom *g, const T *col, int64_t ld, T *x)                \
    {                                                                                          \
        int64_t Cg = g->C / g->groups;                                                         \
        for (int64_t c = 0; c < Cg; c++)                                                      \
            for (int64_t i = 0; i < g->kh; i++)                                               \
                for (int64_t j = 0; j < g->kw; j++, col += ld) {                              \
                    int64_t lo, hi, oh_lo, oh_hi;                                              \
                    tg__valid_range(g->OW, g->W, g->sw, j * g->dw - g->pw, &lo, &hi);          \
                    tg__valid_range(g->OH, g->H, g->sh, i * g->dh - g->ph, &oh_lo, &oh_hi);    \
                    if (lo == hi || oh_lo == oh_hi) continue;                                  \
                    T *row = x + (c * g->H + oh_lo * g->sh - g->ph + i * g->dh) * g->W         \
                             + lo * g->sw + j * g->dw - g->pw;                                 \
                    rows_add_##S(row, g->sh * g->W, col + oh_lo * g->OW + lo, g->OW,           \
                                 oh_hi - oh_lo, hi - lo, g->sw);                               \
                }                                                                              \
    }
TG_STAMP(IM2COL_KERNELS)

/* A chunk of m samples of one group: the tensor's rows t[s, o, :] (s < m, o < Og, rows of P
 * elements, samples O·P apart) copied into the matrix buf [Og, m·P] the GEMM uses. */
#define CHUNK_KERNELS(T, S)                                                                    \
    static void chunk_gather_##S(const conv_geom *g, int64_t m, const T *t, T *buf)           \
    {                                                                                          \
        int64_t P = conv_out_pixels(g), Og = g->O / g->groups;                                     \
        for (int64_t o = 0; o < Og; o++)                                                      \
            for (int64_t s = 0; s < m; s++, buf += P)                                         \
                memcpy(buf, t + (s * g->O + o) * P, (size_t)P * sizeof *buf);                 \
    }
TG_STAMP(CHUNK_KERNELS)

/* The three products, per sample (conv_dw: per chunk of nb samples) and group; every one adds
 * into its destination.
 *   conv_fwd:  y  += W · im2col(x)
 *   conv_dx:   dx += col2im(Wᵀ · g)
 *   conv_dw:   dw += g · im2col(x)ᵀ
 * col: scratch of K·P elements (K·nb·P for conv_dw, whose buf holds Og·nb·P). A one-sample
 * chunk reads g in place; a larger one gathers it into buf. */
#define CONV_DTYPE(T) (sizeof(T) == sizeof(double) ? TG_F64 : TG_F32)

#define CONV_KERNELS(T, S)                                                                     \
    static void conv_fwd_##S(const conv_geom *g, const T *x, const T *w, const T *b, bool fresh, \
                             T *y, T *col)                                                     \
    {                                                                                          \
        int64_t K = conv_group_rows(g), P = conv_out_pixels(g), Og = g->O / g->groups;             \
        int64_t Cg = g->C / g->groups;                                                         \
        for (int64_t n = 0; n < g->N; n++)                                                    \
            for (int64_t gr = 0; gr < g->groups; gr++) {                                      \
                T *yn = y + (n * g->O + gr * Og) * P;                                          \
                if (fresh && b)                                                                \
                    for (int64_t o = 0; o < Og; o++)                                          \
                        for (int64_t p = 0; p < P; p++) yn[o * P + p] = b[gr * Og + o];       \
                im2col_##S(g, x + (n * g->C + gr * Cg) * g->H * g->W, col, P);                 \
                tg_op_gemm(CONV_DTYPE(T), false, false, Og, P, K, 1, w + gr * Og * K, K, col, P, \
                           fresh && !b ? 0 : 1, yn, P);                                        \
            }                                                                                  \
    }                                                                                          \
    static void conv_dx_##S(const conv_geom *g, const T *w, const T *gy, T *dx, T *col)        \
    {                                                                                          \
        int64_t K = conv_group_rows(g), P = conv_out_pixels(g), Og = g->O / g->groups;             \
        int64_t Cg = g->C / g->groups;                                                         \
        for (int64_t n = 0; n < g->N; n++)                                                    \
            for (int64_t gr = 0; gr < g->groups; gr++) {                                      \
                tg_op_gemm(CONV_DTYPE(T), true, false, K, P, Og, 1, w + gr * Og * K, K,        \
                           gy + (n * g->O + gr * Og) * P, P, 0, col, P);                       \
                col2im_##S(g, col, P, dx + (n * g->C + gr * Cg) * g->H * g->W);                \
            }                                                                                  \
    }                                                                                          \
    static void conv_dw_##S(const conv_geom *g, int64_t nb, const T *x, const T *gy, T *dw,    \
                            T *col, T *buf)                                                    \
    {                                                                                          \
        int64_t K = conv_group_rows(g), P = conv_out_pixels(g), Og = g->O / g->groups;             \
        int64_t Cg = g->C / g->groups;                                                         \
        for (int64_t n0 = 0; n0 < g->N; n0 += nb)                                             \
            for (int64_t gr = 0; gr < g->groups; gr++) {                                      \
                int64_t m = g->N - n0 < nb ? g->N - n0 : nb, ld = m * P;                       \
                const T *gg = gy + (n0 * g->O + gr * Og) * P;                                  \
                if (m > 1) chunk_gather_##S(g, m, gg, buf), gg = buf;                          \
                for (int64_t s = 0; s < m; s++)                                               \
                    im2col_##S(g, x + ((n0 + s) * g->C + gr * Cg) * g->H * g->W, col + s * P, \
                               ld);                                                            \
                tg_op_gemm(CONV_DTYPE(T), false, true, Og, K, ld, 1, gg, ld, col, ld, 1,       \
                           dw + gr * Og * K, K);                                               \
            }                                                                                  \
    }
TG_STAMP(CONV_KERNELS)

static void *scratch_of(int64_t elements, tg_dtype dtype)
{
    return tg_op_scratch((size_t)elements * tg_dtype_size(dtype));
}

/* The entry points of the kernels for a dtype; a NULL destination is skipped. */
static void conv_fwd_to(const conv_geom *g, tg_dtype dt, const void *x, const void *w,
                        const void *b, bool fresh, void *y)
{
    if (!y || !g->N) return;
    if (dt == TG_F32 && tg__conv_dnnl_fwd(g, x, w, b, fresh, y)) return;
    void *col = scratch_of(conv_group_rows(g) * conv_out_pixels(g), dt);
    if (dt == TG_F64) conv_fwd_f64(g, x, w, b, fresh, y, col);
    else conv_fwd_f32(g, x, w, b, fresh, y, col);
}

static void conv_fwd(const conv_geom *g, tg_dtype dt, const void *x, const void *w, void *y)
{
    conv_fwd_to(g, dt, x, w, NULL, false, y);
}

static void conv_dx(const conv_geom *g, tg_dtype dt, const void *w, const void *gy, void *dx)
{
    if (!dx || !g->N) return;
    if (dt == TG_F32 && tg__conv_dnnl_dx(g, w, gy, dx)) return;
    void *col = scratch_of(conv_group_rows(g) * conv_out_pixels(g), dt);
    if (dt == TG_F64) conv_dx_f64(g, w, gy, dx, col);
    else conv_dx_f32(g, w, gy, dx, col);
}

static void conv_dw(const conv_geom *g, tg_dtype dt, const void *x, const void *gy, void *dw)
{
    if (!dw || !g->N) return;
    if (dt == TG_F32 && tg__conv_dnnl_dw(g, x, gy, dw)) return;
    int64_t nb = chunk_samples(g), cols = nb * conv_out_pixels(g);
    void *col = scratch_of(conv_group_rows(g) * cols, dt);
    void *buf = scratch_of(g->O / g->groups * cols, dt);
    if (dt == TG_F64) conv_dw_f64(g, nb, x, gy, dw, col, buf);
    else conv_dw_f32(g, nb, x, gy, dw, col, buf);
}

/* gb[o] += Σ_{n, p} g[n, o, p]. Eight partial sums let the compiler vectorise the sum (it may
 * not reorder one float sum by itself). */
#define BIAS_GRAD(T, S)                                                                        \
    static void bias_grad_##S(const conv_geom *g, const void *pgy, void *pgb)                  \
    {                                                                                          \
        const T *gy = pgy;                                                                     \
        T *gb = pgb;                                                                           \
        int64_t P = conv_out_pixels(g);                                                            \
        for (int64_t n = 0; n < g->N; n++)                                                    \
            for (int64_t o = 0; o < g->O; o++, gy += P) {                                     \
                T part[8] = {0}, s = 0;                                                        \
                int64_t p = 0;                                                                 \
                for (; p + 8 <= P; p += 8)                                                     \
                    for (int l = 0; l < 8; l++) part[l] += gy[p + l];                          \
                for (; p < P; p++) s += gy[p];                                                 \
                for (int l = 0; l < 8; l++) s += part[l];                                      \
                gb[o] += s;                                                                    \
            }                                                                                  \
    }
TG_STAMP(BIAS_GRAD)

static tg_tensor *zeros_of(tg_dtype dtype, int ndim, const int64_t *shape)
{
    tg_tensor *t = tg_op_output(dtype, ndim, shape);
    memset(t->data, 0, tg_nbytes(t));
    return t;
}

/* ---- the two adjoint ops (recorded only by differentiable backwards) ---- */

static tg_tensor *conv_input_grad(tg_tensor *gy, tg_tensor *w, const conv_geom *g);
static tg_tensor *conv_weight_grad(tg_tensor *x, tg_tensor *gy, const conv_geom *g);
static tg_tensor *conv_apply(tg_tensor *x, tg_tensor *w, const conv_geom *g);

/* Z = conv_input_grad(G, W), linear in each: dG = conv2d(H, W), dW = conv_weight_grad(H, G) */
static void input_grad_backward(const tg_node *node)
{
    const conv_geom *g = node->saved;
    tg_tensor *gy = node->in[0], *w = node->in[1];
    const void *h = tg_op_grad_out(node);
    conv_fwd(g, gy->dtype, h, w->data, tg_op_grad(gy));
    conv_dw(g, gy->dtype, h, gy->data, tg_op_grad(w));
}

static void input_grad_backward_ops(const tg_node *node, tg_tensor *h, tg_tensor **grad_in)
{
    const conv_geom *g = node->saved;
    tg_tensor *gy = node->in[0], *w = node->in[1];
    if (gy->requires_grad) grad_in[0] = conv_apply(h, w, g);
    if (w->requires_grad) grad_in[1] = conv_weight_grad(h, gy, g);
}

static const tg_op input_grad_op = {"tg_conv2d (input gradient)", input_grad_backward,
                                    input_grad_backward_ops};

/* V = conv_weight_grad(X, G): dX = conv_input_grad(G, K), dG = conv2d(X, K) */
static void weight_grad_backward(const tg_node *node)
{
    const conv_geom *g = node->saved;
    tg_tensor *x = node->in[0], *gy = node->in[1];
    const void *k = tg_op_grad_out(node);
    conv_dx(g, x->dtype, k, gy->data, tg_op_grad(x));
    conv_fwd(g, x->dtype, x->data, k, tg_op_grad(gy));
}

static void weight_grad_backward_ops(const tg_node *node, tg_tensor *k, tg_tensor **grad_in)
{
    const conv_geom *g = node->saved;
    tg_tensor *x = node->in[0], *gy = node->in[1];
    if (x->requires_grad) grad_in[0] = conv_input_grad(gy, k, g);
    if (gy->requires_grad) grad_in[1] = conv_apply(x, k, g);
}

static const tg_op weight_grad_op = {"tg_conv2d (weight gradient)", weight_grad_backward,
                                     weight_grad_backward_ops};

static tg_tensor *conv_input_grad(tg_tensor *gy, tg_tensor *w, const conv_geom *g)
{
    tg_tensor *dx = zeros_of(gy->dtype, TG_SHAPE(g->N, g->C, g->H, g->W));
    conv_dx(g, gy->dtype, w->data, gy->data, dx->data);
    tg_node *node = tg_op_record(&input_grad_op, dx, 2, (tg_tensor *[]){gy, w}, sizeof *g);
    if (node) *(conv_geom *)node->saved = *g;
    return dx;
}

static tg_tensor *conv_weight_grad(tg_tensor *x, tg_tensor *gy, const conv_geom *g)
{
    tg_tensor *dw = zeros_of(x->dtype, TG_SHAPE(g->O, g->C / g->groups, g->kh, g->kw));
    conv_dw(g, x->dtype, x->data, gy->data, dw->data);
    tg_node *node = tg_op_record(&weight_grad_op, dw, 2, (tg_tensor *[]){x, gy}, sizeof *g);
    if (node) *(conv_geom *)node->saved = *g;
    return dw;
}

/* ---- conv2d ---- */

/* Y = conv(X, W) + b: dX = col2im(Wᵀ·G), dW = G·im2colᵀ, db = Σ_{n,p} G */
static void conv2d_backward(const tg_node *node)
{
    const conv_geom *g = node->saved;
    tg_tensor *x = node->in[0], *w = node->in[1], *b = node->n_in > 2 ? node->in[2] : NULL;
    const void *gy = tg_op_grad_out(node);
    conv_dx(g, x->dtype, w->data, gy, tg_op_grad(x));
    conv_dw(g, x->dtype, x->data, gy, tg_op_grad(w));
    void *gb = b ? tg_op_grad(b) : NULL;
    if (gb) TG_KERNEL_FOR(bias_grad, x)(g, gy, gb);
}

static void conv2d_backward_ops(const tg_node *node, tg_tensor *gy, tg_tensor **grad_in)
{
    const conv_geom *g = node->saved;
    tg_tensor *x = node->in[0], *w = node->in[1];
    if (x->requires_grad) grad_in[0] = conv_input_grad(gy, w, g);
    if (w->requires_grad) grad_in[1] = conv_weight_grad(x, gy, g);
    if (node->n_in > 2 && node->in[2]->requires_grad)
        grad_in[2] = tg_sum_axis(tg_sum_axis(tg_sum_axis(gy, 3, false), 2, false), 0, false);
}

static const tg_op conv2d_op = {"tg_conv2d", conv2d_backward, conv2d_backward_ops};

/* y = conv(x, w) (+ bias), recorded; bias may be NULL. */
static tg_tensor *conv_with_bias(tg_tensor *x, tg_tensor *w, tg_tensor *bias, const conv_geom *g)
{
    tg_tensor *y = tg_op_output(x->dtype, TG_SHAPE(g->N, g->O, g->OH, g->OW));
    conv_fwd_to(g, x->dtype, x->data, w->data, bias ? bias->data : NULL, true, y->data);
    tg_node *node = tg_op_record(&conv2d_op, y, bias ? 3 : 2, (tg_tensor *[]){x, w, bias},
                                 sizeof *g);
    if (node) *(conv_geom *)node->saved = *g;
    return y;
}

static tg_tensor *conv_apply(tg_tensor *x, tg_tensor *w, const conv_geom *g)
{
    return conv_with_bias(x, w, NULL, g);
}

static int64_t opt_or(int v, int64_t dflt) { return v ? v : dflt; }

static conv_geom check_conv(const tg_tensor *x, const tg_tensor *w, const tg_tensor *b,
                            const tg_conv2d_opts *o)
{
    const char *op = "tg_conv2d";
    char s1[128], s2[128];
    tg_conv2d_opts none = {0};
    if (!o) o = &none;
    tg_check_float(x, op);
    tg_check_float(w, op);
    tg_check_same_dtype(x, w, op);
    if (x->ndim != 4 || w->ndim != 4)
        tg_fail("%s: expected input [N, C, H, W] and weight [O, C/groups, kH, kW], got %s and %s",
                op, tg_shape_str(x, s1, sizeof s1), tg_shape_str(w, s2, sizeof s2));
    conv_geom g = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2],
                   w->shape[3], 0, 0, opt_or(o->stride[0], 1), opt_or(o->stride[1], 1),
                   o->padding[0], o->padding[1], opt_or(o->dilation[0], 1),
                   opt_or(o->dilation[1], 1), opt_or(o->groups, 1)};
    if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1 || g.ph < 0 || g.pw < 0 || g.groups < 1)
        tg_fail("%s: stride %lldx%lld, dilation %lldx%lld and groups %lld must be >= 1, padding "
                "%lldx%lld >= 0", op, (long long)g.sh, (long long)g.sw, (long long)g.dh,
                (long long)g.dw, (long long)g.groups, (long long)g.ph, (long long)g.pw);
    if (g.C % g.groups || g.O % g.groups || w->shape[1] * g.groups != g.C)
        tg_fail("%s: input %s and weight %s do not fit groups = %lld (need C and O divisible by "
                "groups, weight [O, C/groups, kH, kW])", op, tg_shape_str(x, s1, sizeof s1),
                tg_shape_str(w, s2, sizeof s2), (long long)g.groups);
    g.OH = (g.H + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
    g.OW = (g.W + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
    if (g.kh < 1 || g.kw < 1 || g.H + 2 * g.ph < g.dh * (g.kh - 1) + 1 ||
        g.W + 2 * g.pw < g.dw * (g.kw - 1) + 1)
        tg_fail("%s: kernel %s (dilation %lldx%lld) does not fit input %s padded by %lldx%lld",
                op, tg_shape_str(w, s2, sizeof s2), (long long)g.dh, (long long)g.dw,
                tg_shape_str(x, s1, sizeof s1), (long long)g.ph, (long long)g.pw);
    if (b) {
        tg_check_float(b, op);
        tg_check_same_dtype(x, b, op);
        if (b->ndim != 1 || b->shape[0] != g.O)
            tg_fail("%s: bias %s does not match weight %s (expected [%lld])", op,
                    tg_shape_str(b, s1, sizeof s1), tg_shape_str(w, s2, sizeof s2),
                    (long long)g.O);
    }
    return g;
}

tg_tensor *tg_conv2d(tg_tensor *x, tg_tensor *w, tg_tensor *bias, const tg_conv2d_opts *opts)
{
    conv_geom g = check_conv(x, w, bias, opts);
    return conv_with_bias(x, w, bias, &g);
}
