/* Elementwise unary ops. Each is one line of UNARY_OP: the forward y = f(x), dy/dx as a C
 * expression in x, y and the op's scalar argument s, and dy/dx again as tapegrad ops on the
 * tensors X, Y (for differentiable backwards; tests keep the two in agreement). <tgmath.h> makes
 * exp/log/tanh pick the float or double version, so one definition stamps both kernels.
 * Backward of every op here: gx += g · dy/dx. */
#include <stdint.h>
#include <tgmath.h>
#include "autograd/cpu_clones.h"
#include "ops/kernel.h"

typedef struct unary_op {
    tg_op op;
    void (*forward[2])(int64_t n, const void *x, void *y, double s);
    void (*backward[2])(int64_t n, const void *x, const void *y, const void *g, void *gx,
                        double s, double beta); /* beta 0: overwrite gx, 1: add to it */
    tg_tensor *(*dydx)(tg_tensor *X, tg_tensor *Y, double s);
} unary_op;

typedef struct {
    const unary_op *op;
    double s;
} unary_saved;

static void unary_backward(const tg_node *node);
static void unary_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in);

#define UNARY_KERNELS(NAME, T, SUFFIX, FWD, DYDX)                                             \
    static TG_CPU_CLONES void NAME##_fwd_##SUFFIX(int64_t n, const void *px, void *py, double sd) \
    {                                                                                          \
        const T *xs = px, s = (T)sd;                                                           \
        T *ys = py;                                                                            \
        (void)s;                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                     \
            T x = xs[i];                                                                       \
            ys[i] = (FWD);                                                                     \
        }                                                                                      \
    }                                                                                          \
    static TG_CPU_CLONES void NAME##_bwd_##SUFFIX(int64_t n, const void *px, const void *py,  \
                                                  const void *pg, void *pgx, double sd,      \
                                                  double beta)                               \
    {                                                                                          \
        const T *xs = px, *ys = py, *g = pg, s = (T)sd;                                        \
        T *gx = pgx;                                                                           \
        (void)s;                                                                               \
        if (beta != 0)                                                                         \
            for (int64_t i = 0; i < n; i++) {                                                 \
                T x = xs[i], y = ys[i];                                                        \
                (void)x, (void)y;                                                              \
                T d = (DYDX); /* in a variable of type T, gcc vectorises relu's (x > 0) too */ \
                gx[i] += g[i] * d;                                                             \
            }                                                                                  \
        else /* 0 + keeps the sign of a zero product as adding onto zeros does (+0) */         \
            for (int64_t i = 0; i < n; i++) {                                                 \
                T x = xs[i], y = ys[i];                                                        \
                (void)x, (void)y;                                                              \
                T d = (DYDX);                                                                  \
                gx[i] = (T)0 + g[i] * d;                                                       \
            }                                                                                  \
    }

#define UNARY_OP(NAME, FWD, DYDX, DYDX_OPS)                                                   \
    UNARY_KERNELS(NAME, float, f32, FWD, DYDX)                                                 \
    UNARY_KERNELS(NAME, double, f64, FWD, DYDX)                                                \
    static tg_tensor *NAME##_dydx(tg_tensor *X, tg_tensor *Y, double s)                        \
    {                                                                                          \
        (void)X, (void)Y, (void)s;                                                             \
        return (DYDX_OPS);                                                                     \
    }                                                                                          \
    static const unary_op NAME##_op = {{"tg_" #NAME, unary_backward, unary_backward_ops},     \
                                       {NAME##_fwd_f32, NAME##_fwd_f64},                       \
                                       {NAME##_bwd_f32, NAME##_bwd_f64},                       \
                                       NAME##_dydx};

/* Constants of the differentiable backwards: no gradient flows through them. */
static tg_tensor *constant(const tg_tensor *x, double v) { return tg__constant_like(x, v); }

/* 1 where x > 0, 0 elsewhere (relu's derivative); sign(x) (abs's). */
static tg_tensor *step_of(const tg_tensor *x, bool sign)
{
    tg_tensor *c = tg_op_output(x->dtype, x->ndim, x->shape);
    for (int64_t i = 0; i < x->numel; i++) {
        double v = tg_get_flat(x, i);
        tg_set_flat(c, i, v > 0 ? 1 : sign && v < 0 ? -1 : 0);
    }
    return c;
}

static tg_tensor *one_minus(tg_tensor *t) { return tg_add_scalar(tg_neg(t), 1); }

/* tanh in float without a call into libm, so that the kernel's loop vectorises (libm's tanhf
 * was most of the time of an op on a small tensor: docs/overhead.md). x + x³·P(x²) for
 * |x| < 0.625 (Cephes tanhf's polynomial), else 1 - 2 / (e^(2|x|) + 1) with e^t from
 * t = n·ln2 + r (ln2 in two parts) and a degree-6 polynomial in r; at most 1.33 ulp from the
 * exact tanh over every float (checked exhaustively when it was written), ±0, ±inf and NaN as
 * libm. Both sides are computed and chosen by bit masks, and comparisons are made on the bits of
 * |x| (which order like the values), because any branch or float comparison in the loop keeps
 * gcc from vectorising it. No FMA is written, so every CPU clone computes the same bits. */
typedef union {
    float f;
    uint32_t u;
} float_bits;

static inline float tanh_f32(float x)
{
    float_bits in = {x}, abs_x = {.u = in.u & 0x7fffffffu}, clamped;
    float a = abs_x.f;
    uint32_t below_40 = -(uint32_t)(abs_x.u < 0x42200000u); /* 40.0f: e^80 fits a float */
    clamped.u = (abs_x.u & below_40) | (0x42200000u & ~below_40);
    float z = a * a;
    float p = (((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
               1.33314422036e-1f) * z - 3.33332819422e-1f;
    float_bits small = {a + a * z * p};
    float t = 2.0f * clamped.f;
    float n = (t * 1.44269504088896341f + 0x1.8p23f) - 0x1.8p23f; /* t/ln2 rounded */
    float r = t - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float e = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r +
                 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f) * (r * r) +
              r + 1.0f;
    float_bits scale = {.u = (uint32_t)((int32_t)n + 127) << 23};
    float_bits big = {1.0f - 2.0f / (e * scale.f + 1.0f)};
    uint32_t is_small = -(uint32_t)(abs_x.u < 0x3f200000u); /* 0.625f */
    uint32_t is_nan = -(uint32_t)(abs_x.u > 0x7f800000u);
    uint32_t magnitude = (small.u & is_small) | (big.u & ~is_small);
    float_bits y = {.u = (in.u & is_nan) | ((magnitude | (in.u & 0x80000000u)) & ~is_nan)};
    return y.f;
}

/* The float kernel uses tanh_f32, the double one libm's tanh. */
#define tanh_of(x) _Generic((x), float: tanh_f32, default: tanh)(x)

UNARY_OP(neg, -x, -1, constant(X, -1))
UNARY_OP(add_scalar, x + s, 1, constant(X, 1))
UNARY_OP(mul_scalar, x * s, s, constant(X, s))
UNARY_OP(exp, exp(x), y, Y)
UNARY_OP(log, log(x), 1 / x, tg_pow_scalar(X, -1))
UNARY_OP(sqrt, sqrt(x), 0.5f / y, tg_mul_scalar(tg_pow_scalar(Y, -1), 0.5))
/* d/dx x^s = s·x^(s-1); written so that s = 0 gives 0 rather than 0·inf at x = 0. */
UNARY_OP(pow_scalar, pow(x, s), s == 0 ? 0 : s * pow(x, s - 1),
         s == 0 ? constant(X, 0) : tg_mul_scalar(tg_pow_scalar(X, s - 1), s))
UNARY_OP(square, x * x, 2 * x, tg_mul_scalar(X, 2))
/* abs'(0) = 0 and relu'(0) = 0, PyTorch's choices; relu(NaN) is NaN, as in PyTorch, so that a
 * diverged run shows (| rather than ||: no branch, so the loop vectorises). */
UNARY_OP(abs, fabs(x), (x > 0) - (x < 0), step_of(X, true))
UNARY_OP(relu, (x > 0) | (x != x) ? x : 0, x > 0, step_of(X, false))
UNARY_OP(tanh, tanh_of(x), 1 - y * y, one_minus(tg_square(Y)))
UNARY_OP(sin, sin(x), cos(x), tg_cos(X))
UNARY_OP(cos, cos(x), -sin(x), tg_neg(tg_sin(X)))
/* Two branches keep exp's argument non-positive: no overflow for large |x|. */
UNARY_OP(sigmoid, x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)), y * (1 - y),
         tg_mul(Y, one_minus(Y)))

/* gx = beta·gx + g · dy/dx: one pass over the whole gradient, so a first writer overwrites it
 * (tg_op_grad_beta) instead of adding to a zeroed buffer */
static void unary_backward(const tg_node *node)
{
    const unary_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    double beta;
    void *gx = tg_op_grad_beta(x, &beta);
    s->op->backward[x->dtype == TG_F64](x->numel, x->data, node->out->data,
                                        tg_op_grad_out(node), gx, s->s, beta);
}

/* gx = g · dy/dx, with dy/dx built from ops on x and y */
static void unary_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const unary_saved *s = node->saved;
    grad_in[0] = tg_mul(g, s->op->dydx(node->in[0], node->out, s->s));
}

static tg_tensor *unary(const unary_op *op, tg_tensor *x, double s)
{
    tg_check_float(x, op->op.name);
    tg_tensor *out = tg_op_output(x->dtype, x->ndim, x->shape);
    op->forward[x->dtype == TG_F64](x->numel, x->data, out->data, s);
    tg_node *node = tg_op_record(&op->op, out, 1, &x, sizeof(unary_saved));
    if (node) *(unary_saved *)node->saved = (unary_saved){op, s};
    return out;
}

tg_tensor *tg_neg(tg_tensor *a) { return unary(&neg_op, a, 0); }
tg_tensor *tg_add_scalar(tg_tensor *a, double s) { return unary(&add_scalar_op, a, s); }
tg_tensor *tg_mul_scalar(tg_tensor *a, double s) { return unary(&mul_scalar_op, a, s); }
tg_tensor *tg_exp(tg_tensor *a) { return unary(&exp_op, a, 0); }
tg_tensor *tg_log(tg_tensor *a) { return unary(&log_op, a, 0); }
tg_tensor *tg_sqrt(tg_tensor *a) { return unary(&sqrt_op, a, 0); }
tg_tensor *tg_pow_scalar(tg_tensor *a, double p) { return unary(&pow_scalar_op, a, p); }
tg_tensor *tg_square(tg_tensor *a) { return unary(&square_op, a, 0); }
tg_tensor *tg_abs(tg_tensor *a) { return unary(&abs_op, a, 0); }
tg_tensor *tg_relu(tg_tensor *a) { return unary(&relu_op, a, 0); }
tg_tensor *tg_tanh(tg_tensor *a) { return unary(&tanh_op, a, 0); }
tg_tensor *tg_sigmoid(tg_tensor *a) { return unary(&sigmoid_op, a, 0); }
tg_tensor *tg_sin(tg_tensor *a) { return unary(&sin_op, a, 0); }
tg_tensor *tg_cos(tg_tensor *a) { return unary(&cos_op, a, 0); }
