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

/* mean[c] and biased var[c] over n and s of x(n, c, s) */
#define BN_KERNELS(T, S_)                                                                      \
    static void bn_stats_##S_(channel_view v, const void *px, double *mean, double *var)      \
    {                                                                                          \
        const T *x = px;                                                                       \
        double count = (double)(v.N * v.S);                                                    \
        for (int64_t c = 0; c < v.C; c++) {                                                   \
            double s = 0, ss = 0;                                                              \
            for (int64_t n = 0; n < v.N; n++)                                                 \
                for (int64_t i = 0; i < v.S; i++) s += x[(n * v.C + c) * v.S + i];            \
            mean[c] = s / count;                                                               \
            for (int64_t n = 0; n < v.N; n++)                                                 \
                for (int64_t i = 0; i < v.S; i++) {                                           \
                    double d = x[(n * v.C + c) * v.S + i] - mean[c];                           \
                    ss += d * d;                                                               \
                }                                                                              \
            var[c] = ss / count;                                                               \
        }                                                                                      \
    }                                                                                          \
    /* y = (x - mean)·invstd·w + b; w, b may be NULL (1 and 0) */                              \
    static void bn_fwd_##S_(channel_view v, const void *px, const double *mean,                \
                            const double *invstd, const void *pw, const void *pb, void *py)    \
    {                                                                                          \
        const T *x = px, *w = pw, *b = pb;                                                     \
        T *y = py;                                                                             \
        for (int64_t n = 0; n < v.N; n++)                                                     \
            for (int64_t c = 0; c < v.C; c++) {                                               \
                double scale = invstd[c] * (w ? w[c] : 1), shift = b ? b[c] : 0;               \
                int64_t at = (n * v.C + c) * v.S;                                              \
                for (int64_t i = 0; i < v.S; i++)                                             \
                    y[at + i] = (T)((x[at + i] - mean[c]) * scale + shift);                    \
            }                                                                                  \
    }                                                                                          \
    static void bn_bwd_##S_(const bn_saved *s, const void *px, const void *pw, const void *pg, \
                            void *pgx, void *pgw, void *pgb)                                   \
    {                                                                                          \
        const T *x = px, *w = pw, *g = pg;                                                     \
        T *gx = pgx, *gw = pgw, *gb = pgb;                                                     \
        channel_view v = s->v;                                                                 \
        double count = (double)(v.N * v.S);                                                    \
        for (int64_t c = 0; c < v.C; c++) {                                                   \
            double sg = 0, sgx = 0, m = s->mean[c], is = s->invstd[c];                         \
            for (int64_t n = 0; n < v.N; n++)                                                 \
                for (int64_t i = 0; i < v.S; i++) {                                           \
                    int64_t at = (n * v.C + c) * v.S + i;                                      \
                    sg += g[at];                                                               \
                    sgx += g[at] * (x[at] - m) * is;                                           \
                }                                                                              \
            if (gw) gw[c] += (T)sgx;                                                           \
            if (gb) gb[c] += (T)sg;                                                            \
            if (!gx) continue;                                                                 \
            double scale = is * (w ? w[c] : 1);                                                \
            double mg = s->batch_stats ? sg / count : 0, mgx = s->batch_stats ? sgx / count : 0; \
            for (int64_t n = 0; n < v.N; n++)                                                 \
                for (int64_t i = 0; i < v.S; i++) {                                           \
                    int64_t at = (n * v.C + c) * v.S + i;                                      \
                    double xhat = (x[at] - m) * is;                                            \
                    gx[at] += (T)(scale * (g[at] - mg - xhat * mgx));                          \
                }                                                                              \
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
    if (batch_stats) {
        TG_KERNEL_FOR(bn_stats, x)(v, x->data, mean, var);
    } else {
        for (int64_t c = 0; c < v.C; c++)
            mean[c] = tg_get_flat(running_mean, c), var[c] = tg_get_flat(running_var, c);
    }
    for (int64_t c = 0; c < v.C; c++) invstd[c] = 1 / sqrt(var[c] + eps);
    if (training && running_mean) update_running(running_mean, running_var, mean, var, count,
                                                 momentum);
    tg_tensor *y = tg_op_output(x->dtype, x->ndim, x->shape);
    TG_KERNEL_FOR(bn_fwd, x)(v, x->data, mean, invstd, weight ? weight->data : NULL,
                             bias ? bias->data : NULL, y->data);
    /* inputs x, weight, bias in that order; a NULL weight with a bias records a constant 1 */
    tg_tensor *in[3] = {x, weight, bias};
    int n_in = bias ? 3 : weight ? 2 : 1;
    if (bias && !weight) in[1] = tg__constant_like(bias, 1);
    tg_node *node = tg_op_record(&bn_op, y, n_in, in, sizeof(bn_saved));
    if (node) *(bn_saved *)node->saved = (bn_saved){v, mean, invstd, batch_stats, eps};
    return y;
}
