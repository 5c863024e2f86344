/* Helpers built on tg_grad with create_graph: Hessian-vector products, full Hessians of small
 * problems, and Jacobian-vector products by the double-vjp trick. Each returns a persistent
 * tensor (the caller frees it) and leaves the tape reset, like tg_jacobian. */
#include <string.h>
#include "autograd/internal.h"

static void check_input(const tg_tensor *x, const char *op)
{
    tg_check_float(x, op);
    if (!x->persistent || !x->requires_grad)
        tg_fail("%s: the input must be a persistent tensor with requires_grad", op);
}

static tg_tensor *scalar_output(tg_vector_fn f, tg_tensor *x, void *ctx, const char *op)
{
    tg_tensor *y = f(x, ctx);
    tg_check_float(y, op);
    if (y->numel != 1)
        tg_fail("%s: the function must return one element, got %lld", op, (long long)y->numel);
    return y;
}

/* A direction (v of tg_hvp, u of tg_jvp): a live tensor of the input's shape and dtype. */
static void check_direction(const tg_tensor *x, const tg_tensor *d, const char *name,
                            const char *op)
{
    tg_check_live(d, op);
    if (!tg_same_shape(d, x) || d->dtype != x->dtype) {
        char s1[128], s2[128];
        tg_fail("%s: %s %s must have the input's shape and dtype, %s", op, name,
                tg_shape_str(d, s1, sizeof s1), tg_shape_str(x, s2, sizeof s2));
    }
}

/* ∇f built with create_graph, or NULL when it is constant (f at most linear in x). */
static tg_tensor *graph_gradient(tg_vector_fn f, tg_tensor *x, void *ctx, const char *op)
{
    tg_tensor *g;
    tg_tensor *y = scalar_output(f, x, ctx, op);
    if (!y->requires_grad) return NULL;
    tg_grad(y, NULL, 1, &x, &g, true);
    return g->requires_grad ? g : NULL;
}

/* The helpers record whatever the caller's grad mode (they are no use otherwise, and PyTorch's
 * functional API does the same); each puts the mode back. */

tg_tensor *tg_hvp(tg_vector_fn f, tg_tensor *x, const tg_tensor *v, void *ctx)
{
    check_input(x, "tg_hvp");
    check_direction(x, v, "v", "tg_hvp");
    bool was = tg_set_grad_enabled(true);
    tg_tensor *g = graph_gradient(f, x, ctx, "tg_hvp"), *hv = NULL;
    tg_tensor *out = tg_zeros(x->dtype, x->ndim, x->shape);
    if (g) {
        tg_grad(g, (tg_tensor *)v, 1, &x, &hv, false);
        tg_copy_(out, hv);
    }
    tg_tape_reset();
    tg_set_grad_enabled(was);
    return out;
}

/* Row i is ∂(∇f)_i/∂x: one backward through the gradient's graph per element. */
tg_tensor *tg_hessian(tg_vector_fn f, tg_tensor *x, void *ctx)
{
    check_input(x, "tg_hessian");
    int64_t n = x->numel;
    tg_tensor *hess = tg_zeros(x->dtype, TG_SHAPE(n, n));
    bool was = tg_set_grad_enabled(true);
    tg_tensor *g = graph_gradient(f, x, ctx, "tg_hessian");
    for (int64_t i = 0; g && i < n; i++) {
        tg_tensor *e = tg_op_output(g->dtype, g->ndim, g->shape), *row;
        memset(e->data, 0, tg_nbytes(e));
        tg_set_flat(e, i, 1);
        tg_grad(g, e, 1, &x, &row, false);
        for (int64_t j = 0; j < n; j++) tg_set_flat(hess, i * n + j, tg_get_flat(row, j));
    }
    tg_tape_reset();
    tg_set_grad_enabled(was);
    return hess;
}

/* J u without forward mode: with v a free variable, g(v) = Jᵀv is linear in v, and the gradient
 * of <g(v), u> with respect to v is J u. */
tg_tensor *tg_jvp(tg_vector_fn f, tg_tensor *x, const tg_tensor *u, void *ctx)
{
    check_input(x, "tg_jvp");
    check_direction(x, u, "u", "tg_jvp");
    bool was = tg_set_grad_enabled(true);
    tg_tensor *y = f(x, ctx);
    tg_check_float(y, "tg_jvp");
    tg_tensor *out = tg_zeros(y->dtype, y->ndim, y->shape);
    if (y->requires_grad) {
        tg_tensor *v = tg_op_output(y->dtype, y->ndim, y->shape), *g, *ju;
        memset(v->data, 0, tg_nbytes(v));
        tg_set_requires_grad(v, true);
        tg_grad(y, v, 1, &x, &g, true);
        if (g->requires_grad) {
            tg_tensor *uc = tg_op_output(g->dtype, g->ndim, g->shape);
            tg_copy_(uc, u);
            tg_grad(tg_sum(tg_mul(g, uc)), NULL, 1, &v, &ju, false);
            tg_copy_(out, ju);
        }
    }
    tg_tape_reset();
    tg_set_grad_enabled(was);
    return out;
}
