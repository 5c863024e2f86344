/* Elementwise unary ops. Each is one line of UNARY_OP: the forward y = f(x) and dy/dx, as C
 * expressions in x, y and the op's scalar argument s; <tgmath.h> makes exp/log/tanh pick the
 * float or double version, so one definition stamps both kernels.
 * Backward of every op here: gx += g · dy/dx. */
#include <tgmath.h>
#include "autograd/internal.h"

typedef struct {
    const char *name;
    void (*forward[2])(int64_t n, const void *x, void *y, double s);
    void (*backward[2])(int64_t n, const void *x, const void *y, const void *g, void *gx,
                        double s);
} unary_op;

#define UNARY_KERNELS(NAME, T, SUFFIX, FWD, DYDX)                                             \
    static void NAME##_fwd_##SUFFIX(int64_t n, const void *px, void *py, double sd)           \
    {                                                                                          \
        const T *xs = px, s = (T)sd;                                                           \
        T *ys = py;                                                                            \
        (void)s;                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                     \
            T x = xs[i];                                                                       \
            ys[i] = (FWD);                                                                     \
        }                                                                                      \
    }                                                                                          \
    static void NAME##_bwd_##SUFFIX(int64_t n, const void *px, const void *py, const void *pg, \
                                    void *pgx, double sd)                                      \
    {                                                                                          \
        const T *xs = px, *ys = py, *g = pg, s = (T)sd;                                        \
        T *gx = pgx;                                                                           \
        (void)s;                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                     \
            T x = xs[i], y = ys[i];                                                            \
            (void)x, (void)y;                                                                  \
            gx[i] += g[i] * (DYDX);                                                            \
        }                                                                                      \
    }

#define UNARY_OP(NAME, FWD, DYDX)                                                             \
    UNARY_KERNELS(NAME, float, f32, FWD, DYDX)                                                 \
    UNARY_KERNELS(NAME, double, f64, FWD, DYDX)                                                \
    static const unary_op NAME##_op = {"tg_" #NAME, {NAME##_fwd_f32, NAME##_fwd_f64},         \
                                       {NAME##_bwd_f32, NAME##_bwd_f64}};

UNARY_OP(neg, -x, -1)
UNARY_OP(add_scalar, x + s, 1)
UNARY_OP(mul_scalar, x * s, s)
UNARY_OP(exp, exp(x), y)
UNARY_OP(log, log(x), 1 / x)
UNARY_OP(sqrt, sqrt(x), 0.5f / y)
/* d/dx x^s = s·x^(s-1); written so that s = 0 gives 0 rather than 0·inf at x = 0. */
UNARY_OP(pow_scalar, pow(x, s), s == 0 ? 0 : s * pow(x, s - 1))
UNARY_OP(square, x * x, 2 * x)
/* abs'(0) = 0 and relu'(0) = 0, PyTorch's choices. */
UNARY_OP(abs, fabs(x), (x > 0) - (x < 0))
UNARY_OP(relu, x > 0 ? x : 0, x > 0)
UNARY_OP(tanh, tanh(x), 1 - y * y)
/* Two branches keep exp's argument non-positive: no overflow for large |x|. */
UNARY_OP(sigmoid, x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)), y * (1 - y))

static void unary_backward(tg_node *node)
{
    const unary_op *op = node->saved;
    tg_tensor *x = node->in[0];
    op->backward[x->dtype == TG_F64](x->numel, x->data, node->out->data, node->out->grad->data,
                                     tg__grad(x), node->f[0]);
}

static tg_tensor *unary(const unary_op *op, tg_tensor *x, double s)
{
    tg__check_float(x, op->name);
    tg_tensor *out = tg__new_intermediate(x->dtype, x->ndim, x->shape);
    op->forward[x->dtype == TG_F64](x->numel, x->data, out->data, s);
    tg_node *node = tg__record(op->name, unary_backward, out, 1, &x);
    if (node) {
        node->saved = (void *)op;
        node->f[0] = s;
    }
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
