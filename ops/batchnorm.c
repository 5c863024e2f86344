/* Batch normalisation over axis 1 (channels) of x [N, C, ...], viewed as [N, C, S]: each channel
 * is normalised over its n = N·S values.
 *
 * Training (batch statistics): xhat = (x - mean)·invstd, y = w·xhat + b, and the gradient goes
 * through mean and var too, which gives the classic form
 *     gx = w·invstd · (g - mean(g) - xhat·mean(g·xhat)),   gw = Σ g·xhat,   gb = Σ g.
 * Evaluation (running statistics, constants): gx = w·invstd·g.
 * Statistics are accumulated in double (two passes: mean, then squared deviations), whatever
 * the dtype, so float32 batch norm does not lose the variance of large-mean inputs. */
#include <math.h>
#include <string.h>
#include "autograd/cpu_clones.h"
#include "ops/kernel.h"
#include "tg/conv.h"

typedef struct {
    int64_t N, C, S;
} channel_view;

typedef struct {
    channel_view v;
    double *mean, *invstd;  /* [C]: the statistics the forward used */
    bool batch_stats;       /* true: mean and invstd are functions of x (gradient flows) */
    double eps;
} bn_saved;

/* The kernels walk the channels in blocks of whole channels, about BN_BLOCK values of the batch
 * each (cb channels, L = cb·S positions of every sample's [C, S] slice): a block of x (and of g)
 * stays in L2 cache across the passes over it (sums, then the normalisation), so x is read from
 * memory once. Within a block each pass is a loop over samples around a contiguous loop over the
 * L positions with per-position constants (each channel's value repeated S times): it vectorises
 * whatever S is (S = 1 for [N, C] inputs included), and a sum goes into per-position double
 * accumulators, each adding its samples in order, which then add up per channel: no serial
 * chain of additions, and no reassociation for the compiler to refuse. */
enum { BN_BLOCK = 32768 };   /* 128 KB of float32 */

static int64_t block_channels(channel_view v)
{
    int64_t per_channel = v.N * v.S > 0 ? v.N * v.S : 1, cb = BN_BLOCK / per_channel;
    return cb < 1 ? 1 : cb > v.C ? v.C : cb;
}

/* Scratch of one call: per position of a block, two double sums, the mean in double and four
 * constants in the dtype; per channel, five doubles. */
typedef struct {
    double *sum0, *sum1, *mean;
    double *ch[5];
    void *k[4];
} bn_work;

static bn_work bn_scratch(channel_view v, size_t elem)
{
    size_t L = (size_t)(block_channels(v) * v.S), C = (size_t)v.C;
    double *d = tg_op_scratch(L * (3 * sizeof(double) + 4 * elem) + 5 * C * sizeof(double));
    bn_work w = {d, d + L, d + 2 * L, {0}, {0}};
    for (int i = 0; i < 5; i++) w.ch[i] = d + 3 * L + (size_t)i * C;
    char *t = (char *)(d + 3 * L + 5 * C);
    for (int i = 0; i < 4; i++) w.k[i] = t + (size_t)i * L * elem;
    return w;
}

/* out[c] = Σ_i acc[c·S + i] */
static void channel_totals(const double *acc, int64_t cb, int64_t S, double *out)
{
    for (int64_t c = 0; c < cb; c++) {
        double t = 0;
        for (int64_t i = 0; i < S; i++) t += acc[c * S + i];
        out[c] = t;
    }
}

/* dst[c·S + i] = v[c] */
static void expand_double(double *dst, const double *v, int64_t cb, int64_t S)
{
    for (int64_t c = 0; c < cb; c++)
        for (int64_t i = 0; i < S; i++) dst[c * S + i] = v[c];
}

/* In each kernel x (g, y, gx) points at sample 0's part of the block, the samples `stride`
 * values apart, and j runs over the block's L positions. */
#define BN_KERNELS(T, S_)                                                                      \
    static void expand_##S_(T *dst, const double *v, int64_t cb, int64_t S)                    \
    {                                                                                          \
        for (int64_t c = 0; c < cb; c++)                                                       \
            for (int64_t i = 0; i < S; i++) dst[c * S + i] = (T)v[c];                          \
    }                                                                                          \
    /* acc[j] = Σ_n x(n, j) */                                                                 \
    static TG_CPU_CLONES void bn_sum_##S_(int64_t N, int64_t L, int64_t stride,                \
                                          const T *restrict x, double *restrict acc)           \
    {                                                                                          \
        for (int64_t j = 0; j < L; j++) acc[j] = 0;                                            \
        for (int64_t n = 0; n < N; n++)                                                        \
            for (int64_t j = 0; j < L; j++) acc[j] += x[n * stride + j];                       \
    }                                                                                          \
    /* acc[j] = Σ_n (x(n, j) - m[j])² */                                                       \
    static TG_CPU_CLONES void bn_sum_sq_dev_##S_(int64_t N, int64_t L, int64_t stride,         \
                                                 const T *restrict x, const double *restrict m, \
                                                 double *restrict acc)                         \
    {                                                                                          \
        for (int64_t j = 0; j < L; j++) acc[j] = 0;                                            \
        for (int64_t n = 0; n < N; n++)                                                        \
            for (int64_t j = 0; j < L; j++) {                                                  \
                double d = x[n * stride + j] - m[j];                                           \
                acc[j] += d * d;                                                               \
            }                                                                                  \
    }                                                                                          \
    /* y = (x - m)·a + b */                                                                    \
    static TG_CPU_CLONES void bn_affine_##S_(int64_t N, int64_t L, int64_t stride,             \
                                             const T *restrict x, const T *restrict m,         \
                                             const T *restrict a, const T *restrict b,         \
                                             T *restrict y)                                    \
    {                                                                                          \
        for (int64_t n = 0; n < N; n++)                                                        \
            for (int64_t j = 0; j < L; j++)                                                    \
                y[n * stride + j] = (x[n * stride + j] - m[j]) * a[j] + b[j];                  \
    }                                                                                          \
    /* sg[j] = Σ_n g(n, j), sgx[j] = Σ_n g(n, j)·(x(n, j) - m[j]) */                           \
    static TG_CPU_CLONES void bn_grad_sums_##S_(int64_t N, int64_t L, int64_t stride,          \
                                                const T *restrict g, const T *restrict x,      \
                                                const double *restrict m,                      \
                                                double *restrict sg, double *restrict sgx)     \
    {                                                                                          \
        for (int64_t j = 0; j < L; j++) sg[j] = 0, sgx[j] = 0;                                 \
        for (int64_t n = 0; n < N; n++)                                                        \
            for (int64_t j = 0; j < L; j++) {                                                  \
                double gj = g[n * stride + j];                                                 \
                sg[j] += gj;                                                                   \
                sgx[j] += gj * (x[n * stride + j] - m[j]);                                     \
            }                                                                                  \
    }                                                                                          \
    /* gx += k1·g + k2·(x - m) + k3 */                                                         \
    static TG_CPU_CLONES void bn_grad_input_##S_(int64_t N, int64_t L, int64_t stride,         \
                                                 const T *restrict g, const T *restrict x,     \
                                                 const T *restrict m, const T *restrict k1,    \
                                                 const T *restrict k2, const T *restrict k3,   \
                                                 T *restrict gx)                               \
    {                                                                                          \
        for (int64_t n = 0; n < N; n++)                                                        \
            for (int64_t j = 0; j < L; j++) {                                                  \
                int64_t at = n * stride + j;                                                   \
                gx[at] += k1[j] * g[at] + k2[j] * (x[at] - m[j]) + k3[j];                      \
            }                                                                                  \
    }                                                                                          \
    /* Batch statistics (batch_stats: mean[c], biased var[c]) or the given ones, invstd[c], and \
     * y = (x - mean)·invstd·w + b; w, b may be NULL (1 and 0). */                             \
    static void bn_fwd_##S_(channel_view v, const void *px, bool batch_stats, double eps,      \
                            double *mean, double *var, double *invstd, const void *pw,         \
                            const void *pb, void *py)                                          \
    {                                                                                          \
        const T *x = px, *w = pw, *b = pb;                                                     \
        T *y = py;                                                                             \
        int64_t cb_max = block_channels(v), stride = v.C * v.S;                                \
        double count = (double)(v.N * v.S), *scale = NULL, *bias = NULL;                       \
        bn_work k = bn_scratch(v, sizeof(T));                                                  \
        scale = k.ch[0], bias = k.ch[1];                                                       \
        for (int64_t c0 = 0; c0 < v.C; c0 += cb_max) {                                         \
            int64_t cb = v.C - c0 < cb_max ? v.C - c0 : cb_max, L = cb * v.S, at = c0 * v.S;   \
            if (batch_stats) {                                                                 \
                bn_sum_##S_(v.N, L, stride, x + at, k.sum0);                                   \
                channel_totals(k.sum0, cb, v.S, mean + c0);                                    \
                for (int64_t c = c0; c < c0 + cb; c++) mean[c] /= count;                       \
                expand_double(k.mean, mean + c0, cb, v.S);                                        \
                bn_sum_sq_dev_##S_(v.N, L, stride, x + at, k.mean, k.sum0);                    \
                channel_totals(k.sum0, cb, v.S, var + c0);                                     \
                for (int64_t c = c0; c < c0 + cb; c++) var[c] /= count;                        \
            }                                                                                  \
            for (int64_t c = c0; c < c0 + cb; c++) {                                           \
                invstd[c] = 1 / sqrt(var[c] + eps);                                            \
                scale[c] = invstd[c] * (w ? w[c] : 1);                                         \
                bias[c] = b ? b[c] : 0;                                                        \
            }                                                                                  \
            T *m = k.k[0], *a = k.k[1], *shift = k.k[2];                                       \
            expand_##S_(m, mean + c0, cb, v.S);                                                \
            expand_##S_(a, scale + c0, cb, v.S);                                               \
            expand_##S_(shift, bias + c0, cb, v.S);                                            \
            bn_affine_##S_(v.N, L, stride, x + at, m, a, shift, y + at);                       \
        }                                                                                      \
    }                                                                                          \
    static void bn_bwd_##S_(const bn_saved *s, const void *px, const void *pw, const void *pg, \
                            void *pgx, void *pgw, void *pgb)                                   \
    {                                                                                          \
        const T *x = px, *w = pw, *g = pg;                                                     \
        T *gx = pgx, *gw = pgw, *gb = pgb;                                                     \
        channel_view v = s->v;                                                                 \
        int64_t cb_max = block_channels(v), stride = v.C * v.S;                                \
        double count = (double)(v.N * v.S);                                                    \
        bn_work k = bn_scratch(v, sizeof(T));                                                  \
        double *tg = k.ch[0], *tgx = k.ch[1], *c1 = k.ch[2], *c2 = k.ch[3], *c3 = k.ch[4];     \
        for (int64_t c0 = 0; c0 < v.C; c0 += cb_max) {                                         \
            int64_t cb = v.C - c0 < cb_max ? v.C - c0 : cb_max, L = cb * v.S, at = c0 * v.S;   \
            expand_double(k.mean, s->mean + c0, cb, v.S);                                         \
            bn_grad_sums_##S_(v.N, L, stride, g + at, x + at, k.mean, k.sum0, k.sum1);         \
            channel_totals(k.sum0, cb, v.S, tg + c0);                                          \
            channel_totals(k.sum1, cb, v.S, tgx + c0);                                         \
            for (int64_t c = c0; c < c0 + cb; c++) {                                           \
                double is = s->invstd[c], sgx = tgx[c] * is;                                   \
                if (gw) gw[c] += (T)sgx;                                                       \
                if (gb) gb[c] += (T)tg[c];                                                     \
                double scale = is * (w ? w[c] : 1);                                            \
                double mg = s->batch_stats ? tg[c] / count : 0;                                \
                double mgx = s->batch_stats ? sgx / count : 0;                                 \
                c1[c] = scale, c2[c] = -scale * is * mgx, c3[c] = -scale * mg;                 \
            }                                                                                  \
            if (!gx) continue;                                                                 \
            T *m = k.k[0], *k1 = k.k[1], *k2 = k.k[2], *k3 = k.k[3];                           \
            expand_##S_(m, s->mean + c0, cb, v.S);                                             \
            expand_##S_(k1, c1 + c0, cb, v.S);                                                 \
            expand_##S_(k2, c2 + c0, cb, v.S);                                                 \
            expand_##S_(k3, c3 + c0, cb, v.S);                                                 \
            bn_grad_input_##S_(v.N, L, stride, g + at, x + at, m, k1, k2, k3, gx + at);        \
        }                                                                                      \
    }
TG_STAMP(BN_KERNELS)

static tg_tensor *bn_weight(const tg_node *node) { return node->n_in > 1 ? node->in[1] : NULL; }
static tg_tensor *bn_bias(const tg_node *node) { return node->n_in > 2 ? node->in[2] : NULL; }

static void bn_backward(const tg_node *node)
{
    const bn_saved *s = node->saved;
    tg_tensor *x = node->in[0], *w = bn_weight(node), *b = bn_bias(node);
    TG_KERNEL_FOR(bn_bwd, x)(s, x->data, w ? w->data : NULL, tg_op_grad_out(node),
                             tg_op_grad(x), w ? tg_op_grad(w) : NULL, b ? tg_op_grad(b) : NULL);
}

/* ---- the same backward with ops, on the [N, C, S] view ---- */

/* mean over axes 0 and 2 of [N, C, S], kept as [1, C, 1] */
static tg_tensor *channel_mean(tg_tensor *t)
{
    return tg_mean_axis(tg_mean_axis(t, 2, true), 0, true);
}

static tg_tensor *channel_sum(tg_tensor *t)   /* -> [C] */
{
    return tg_sum_axis(tg_sum_axis(t, 2, false), 0, false);
}

/* A [1, C, 1] constant holding a saved statistic. */
static tg_tensor *channel_constant(const double *v, int64_t C, tg_dtype dt)
{
    tg_tensor *t = tg_op_output(dt, TG_SHAPE(1, C, 1));
    for (int64_t c = 0; c < C; c++) tg_set_flat(t, c, v[c]);
    return t;
}

static void bn_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const bn_saved *s = node->saved;
    tg_tensor *x = node->in[0], *w = bn_weight(node), *b = bn_bias(node);
    int64_t C = s->v.C;
    tg_tensor *x3 = tg_reshape(x, TG_SHAPE(s->v.N, C, s->v.S));
    tg_tensor *g3 = tg_reshape(g, TG_SHAPE(s->v.N, C, s->v.S));
    tg_tensor *invstd, *xhat;
    if (s->batch_stats) {
        tg_tensor *xc = tg_sub(x3, channel_mean(x3));
        invstd = tg_pow_scalar(tg_add_scalar(channel_mean(tg_square(xc)), s->eps), -0.5);
        xhat = tg_mul(xc, invstd);
    } else {
        invstd = channel_constant(s->invstd, C, x->dtype);
        xhat = tg_mul(tg_sub(x3, channel_constant(s->mean, C, x->dtype)), invstd);
    }
    if (x->requires_grad) {
        tg_tensor *t = g3;
        if (s->batch_stats)
            t = tg_sub(tg_sub(g3, channel_mean(g3)), tg_mul(xhat, channel_mean(tg_mul(g3, xhat))));
        t = tg_mul(t, invstd);
        if (w) t = tg_mul(t, tg_reshape(w, TG_SHAPE(1, C, 1)));
        grad_in[0] = tg_reshape(t, x->ndim, x->shape);
    }
    if (w && w->requires_grad) grad_in[1] = channel_sum(tg_mul(g3, xhat));
    if (b && b->requires_grad) grad_in[2] = channel_sum(g3);
}

static const tg_op bn_op = {"tg_batch_norm", bn_backward, bn_backward_ops};

/* ---- checks and the running statistics ---- */

static void check_channels(const tg_tensor *t, const tg_tensor *x, int64_t C, const char *what)
{
    char s1[128], s2[128];
    tg_check_float(t, "tg_batch_norm");
    if (t->dtype != x->dtype || t->ndim != 1 || t->shape[0] != C)
        tg_fail("tg_batch_norm: %s %s does not match input %s (expected [%lld] %s)", what,
                tg_shape_str(t, s1, sizeof s1), tg_shape_str(x, s2, sizeof s2), (long long)C,
                tg_dtype_name(x->dtype));
}

static channel_view check_bn(const tg_tensor *x, const tg_tensor *w, const tg_tensor *b,
                             const tg_tensor *rm, const tg_tensor *rv, double eps)
{
    char s[128];
    tg_check_float(x, "tg_batch_norm");
    if (x->ndim < 2)
        tg_fail("tg_batch_norm: expected input [N, C] or [N, C, ...], got %s",
                tg_shape_str(x, s, sizeof s));
    channel_view v = {x->shape[0], x->shape[1], 1};
    for (int d = 2; d < x->ndim; d++) v.S *= x->shape[d];
    if (w) check_channels(w, x, v.C, "weight");
    if (b) check_channels(b, x, v.C, "bias");
    if (!rm != !rv)
        tg_fail("tg_batch_norm: give both running_mean and running_var, or neither");
    if (rm) check_channels(rm, x, v.C, "running_mean");
    if (rv) check_channels(rv, x, v.C, "running_var");
    if (!(eps >= 0)) tg_fail("tg_batch_norm: eps = %g must be >= 0", eps);
    return v;
}

/* r = (1 - momentum)·r + momentum·batch, the variance made unbiased */
static void update_running(tg_tensor *rm, tg_tensor *rv, const double *mean, const double *var,
                           int64_t count, double momentum)
{
    double unbias = (double)count / (double)(count - 1);
    for (int64_t c = 0; c < rm->numel; c++) {
        tg_set_flat(rm, c, (1 - momentum) * tg_get_flat(rm, c) + momentum * mean[c]);
        tg_set_flat(rv, c, (1 - momentum) * tg_get_flat(rv, c) + momentum * var[c] * unbias);
    }
}

tg_tensor *tg_batch_norm(tg_tensor *x, tg_tensor *weight, tg_tensor *bias,
                         tg_tensor *running_mean, tg_tensor *running_var, bool training,
                         double momentum, double eps)
{
    channel_view v = check_bn(x, weight, bias, running_mean, running_var, eps);
    bool batch_stats = training || !running_mean;
    int64_t count = v.N * v.S;
    if (training && count <= 1) {
        char s[128];
        tg_fail("tg_batch_norm: training needs more than one value per channel, input %s has %lld"
                " (use a larger batch, or evaluation mode)", tg_shape_str(x, s, sizeof s),
                (long long)count);
    }
    double *mean = tg_op_scratch(3 * (size_t)v.C * sizeof *mean), *var = mean + v.C;
    double *invstd = var + v.C;
    if (!batch_stats)
        for (int64_t c = 0; c < v.C; c++)
            mean[c] = tg_get_flat(running_mean, c), var[c] = tg_get_flat(running_var, c);
    tg_tensor *y = tg_op_output(x->dtype, x->ndim, x->shape);
    TG_KERNEL_FOR(bn_fwd, x)(v, x->data, batch_stats, eps, mean, var, invstd,
                             weight ? weight->data : NULL, bias ? bias->data : NULL, y->data);
    if (training && running_mean) update_running(running_mean, running_var, mean, var, count,
                                                 momentum);
    /* inputs x, weight, bias in that order; a NULL weight with a bias records a constant 1 */
    tg_tensor *in[3] = {x, weight, bias};
    int n_in = bias ? 3 : weight ? 2 : 1;
    if (bias && !weight) in[1] = tg__constant_like(bias, 1);
    tg_node *node = tg_op_record(&bn_op, y, n_in, in, sizeof(bn_saved));
    if (node) *(bn_saved *)node->saved = (bn_saved){v, mean, invstd, batch_stats, eps};
    return y;
}
