/* Elementwise binary ops with NumPy broadcasting: add, sub, mul, div, maximum, minimum.
 *
 * Each op is one line of BINARY_OP: the forward z = f(x, y), the two partial derivatives
 * dz/dx, dz/dy as C expressions in x, y, z, and g·dz/dx, g·dz/dy again as tapegrad ops on the
 * tensors X, Y, Z, G (for differentiable backwards). The macro stamps float and double kernels
 * from that one definition. Backward: ga[ia[i]] += g[i]·dz/dx, gb[ib[i]] += g[i]·dz/dy; the
 * scatter through the broadcast index sums over broadcast axes (tg_sum_to in the ops form). */
#include <math.h>
#include "autograd/cpu_clones.h"
#include "ops/broadcast.h"

typedef struct {
    tg_op op;
    void (*forward[2])(const tg_bcast *bc, const void *a, const void *b, void *z);
    void (*backward[2])(const tg_bcast *bc, const void *a, const void *b, const void *z,
                        const void *g, void *ga, void *gb);
    tg_tensor *(*dx_ops)(tg_tensor *X, tg_tensor *Y, tg_tensor *Z, tg_tensor *G);
    tg_tensor *(*dy_ops)(tg_tensor *X, tg_tensor *Y, tg_tensor *Z, tg_tensor *G);
} binary_op;

static void binary_backward(const tg_node *node);
static void binary_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in);

#define BINARY_KERNELS(NAME, T, SUFFIX, FWD, DX, DY)                                          \
    static TG_CPU_CLONES void NAME##_fwd_##SUFFIX(const tg_bcast *bc, const void *pa,         \
                                                  const void *pb, void *pz)                    \
    {                                                                                          \
        const T *a = pa, *b = pb;                                                              \
        T *out = pz;                                                                           \
        for (int64_t i = 0; i < bc->numel; i++) {                                             \
            T x = a[tg__at(bc->ia, i)], y = b[tg__at(bc->ib, i)];                              \
            out[i] = (FWD);                                                                    \
        }                                                                                      \
    }                                                                                          \
    static TG_CPU_CLONES void NAME##_bwd_##SUFFIX(const tg_bcast *bc, const void *pa,         \
                                                  const void *pb, const void *pz,              \
                                                  const void *pg, void *pga, void *pgb)        \
    {                                                                                          \
        const T *a = pa, *b = pb, *zs = pz, *g = pg;                                           \
        T *ga = pga, *gb = pgb;                                                                \
        for (int64_t i = 0; i < bc->numel; i++) {                                             \
            T x = a[tg__at(bc->ia, i)], y = b[tg__at(bc->ib, i)], z = zs[i];                   \
            (void)x, (void)y, (void)z;                                                         \
            if (ga) ga[tg__at(bc->ia, i)] += g[i] * (DX);                                      \
            if (gb) gb[tg__at(bc->ib, i)] += g[i] * (DY);                                      \
        }                                                                                      \
    }

#define BINARY_OP(NAME, FWD, DX, DY, GDX_OPS, GDY_OPS)                                       \
    BINARY_KERNELS(NAME, float, f32, FWD, DX, DY)                                              \
    BINARY_KERNELS(NAME, double, f64, FWD, DX, DY)                                             \
    static tg_tensor *NAME##_dx_ops(tg_tensor *X, tg_tensor *Y, tg_tensor *Z, tg_tensor *G)    \
    {                                                                                          \
        (void)X, (void)Y, (void)Z;                                                             \
        return (GDX_OPS);                                                                      \
    }                                                                                          \
    static tg_tensor *NAME##_dy_ops(tg_tensor *X, tg_tensor *Y, tg_tensor *Z, tg_tensor *G)    \
    {                                                                                          \
        (void)X, (void)Y, (void)Z;                                                             \
        return (GDY_OPS);                                                                      \
    }                                                                                          \
    static const binary_op NAME##_op = {{"tg_" #NAME, binary_backward, binary_backward_ops},  \
                                        {NAME##_fwd_f32, NAME##_fwd_f64},                      \
                                        {NAME##_bwd_f32, NAME##_bwd_f64},                      \
                                        NAME##_dx_ops, NAME##_dy_ops};

/* dmax(x, y)/dx as a constant of the output's shape: 1 where x wins, 1/2 on ties, else 0 (the
 * same for y with the roles swapped, and for min with the comparison reversed). */
static tg_tensor *winner_mask(const tg_tensor *x, const tg_tensor *y, const tg_tensor *z,
                              bool x_side, bool max)
{
    tg_tensor *m = tg_op_output(z->dtype, z->ndim, z->shape);
    tg_bcast bc = tg__broadcast(x, y, "tg_maximum");
    for (int64_t i = 0; i < z->numel; i++) {
        double a = tg_get_flat(x, tg__at(bc.ia, i)), b = tg_get_flat(y, tg__at(bc.ib, i));
        if (!x_side) { double t = a; a = b; b = t; }
        tg_set_flat(m, i, (max ? a > b : a < b) ? 1 : a == b ? 0.5 : 0);
    }
    return m;
}

/* Ties in maximum/minimum split the gradient evenly, as PyTorch does. A NaN in either input
 * gives NaN, as in PyTorch (so a diverged run shows). */
BINARY_OP(add, x + y, 1, 1, G, G)
BINARY_OP(sub, x - y, 1, -1, G, tg_neg(G))
BINARY_OP(mul, x * y, y, x, tg_mul(G, Y), tg_mul(G, X))
BINARY_OP(div, x / y, 1 / y, -z / y, tg_div(G, Y), tg_neg(tg_div(tg_mul(G, Z), Y)))
BINARY_OP(maximum, x >= y || isnan(x) ? x : y,
          x > y ? 1 : (x == y ? 0.5f : 0), x < y ? 1 : (x == y ? 0.5f : 0),
          tg_mul(G, winner_mask(X, Y, Z, true, true)), tg_mul(G, winner_mask(X, Y, Z, false, true)))
BINARY_OP(minimum, x <= y || isnan(x) ? x : y,
          x < y ? 1 : (x == y ? 0.5f : 0), x > y ? 1 : (x == y ? 0.5f : 0),
          tg_mul(G, winner_mask(X, Y, Z, true, false)),
          tg_mul(G, winner_mask(X, Y, Z, false, false)))

typedef struct {
    const binary_op *op;
    tg_bcast bc;
} binary_saved;

static void binary_backward(const tg_node *node)
{
    const binary_saved *s = node->saved;
    int k = node->out->dtype == TG_F64;
    s->op->backward[k](&s->bc, node->in[0]->data, node->in[1]->data, node->out->data,
                       tg_op_grad_out(node), tg_op_grad(node->in[0]), tg_op_grad(node->in[1]));
}

/* gx = sum_to(g·dz/dx, shape of x): the sum over the axes x was broadcast along */
static void binary_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const binary_saved *s = node->saved;
    tg_tensor *x = node->in[0], *y = node->in[1], *z = node->out;
    if (x->requires_grad) grad_in[0] = tg_sum_to(s->op->dx_ops(x, y, z, g), x->ndim, x->shape);
    if (y->requires_grad) grad_in[1] = tg_sum_to(s->op->dy_ops(x, y, z, g), y->ndim, y->shape);
}

static tg_tensor *binary(const binary_op *op, tg_tensor *a, tg_tensor *b)
{
    tg_check_float(a, op->op.name);
    tg_check_float(b, op->op.name);
    tg_check_same_dtype(a, b, op->op.name);
    tg_bcast bc = tg__broadcast(a, b, op->op.name);
    tg_tensor *out = tg_op_output(a->dtype, bc.ndim, bc.shape);
    op->forward[a->dtype == TG_F64](&bc, a->data, b->data, out->data);
    tg_node *node = tg_op_record(&op->op, out, 2, (tg_tensor *[]){a, b}, sizeof(binary_saved));
    if (node) *(binary_saved *)node->saved = (binary_saved){op, bc};
    return out;
}

tg_tensor *tg_add(tg_tensor *a, tg_tensor *b) { return binary(&add_op, a, b); }
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b) { return binary(&sub_op, a, b); }
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b) { return binary(&mul_op, a, b); }
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b) { return binary(&div_op, a, b); }
tg_tensor *tg_maximum(tg_tensor *a, tg_tensor *b) { return binary(&maximum_op, a, b); }
tg_tensor *tg_minimum(tg_tensor *a, tg_tensor *b) { return binary(&minimum_op, a, b); }
