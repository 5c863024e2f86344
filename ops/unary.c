/* Elementwise unary ops. Each is one line of UNARY_OP: the forward y = f(x), dy/dx as a C
 * expression in x, y and the op's scalar argument s, and dy/dx again as tapegrad ops on the
 * tensors X, Y (for differentiable backwards; tests keep the two in agreement). <tgmath.h> makes
 * exp/log/tanh pick the float or double version, so one definition stamps both kernels.
 * Backward of every op here: gx += g · dy/dx. */
#include <tgmath.h>
#include "autograd/cpu_clones.h"
#include "ops/kernel.h"

typedef struct unary_op {
    tg_op op;
    void (*forward[2])(int64_t n, const void *x, void *y, double s);
    void (*backward[2])(int64_t n, const void *x, const void *y, const void *g, void *gx,
                        double s);
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
                                                  const void *pg, void *pgx, double sd)      \
    {                                                                                          \
        const T *xs = px, *ys = py, *g = pg, s = (T)sd;                                        \
        T *gx = pgx;                                                                           \
        (void)s;                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                     \
            T x = xs[i], y = ys[i];                                                            \
            (void)x, (void)y;                                                                  \
            T d = (DYDX); /* in a variable of type T, gcc vectorises relu's (x > 0) too */     \
            gx[i] += g[i] * d;                                                                 \
        }                                                                                      \
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
UNARY_OP(tanh, tanh(x), 1 - y * y, one_minus(tg_square(Y)))
UNARY_OP(sin, sin(x), cos(x), tg_cos(X))
UNARY_OP(cos, cos(x), -sin(x), tg_neg(tg_sin(X)))
/* Two branches keep exp's argument non-positive: no overflow for large |x|. */
UNARY_OP(sigmoid, x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)), y * (1 - y),
         tg_mul(Y, one_minus(Y)))

/* gx += g · dy/dx */
static void unary_backward(const tg_node *node)
{
    const unary_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    s->op->backward[x->dtype == TG_F64](x->numel, x->data, node->out->data,
                                        tg_op_grad_out(node), tg_op_grad(x), s->s);
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
