/* Elementwise binary ops with NumPy broadcasting: add, sub, mul, div, maximum, minimum.
 *
 * Each op is one line of BINARY_OP: the forward z = f(x, y) and the two partial derivatives
 * dz/dx, dz/dy as C expressions in x, y, z. The macro stamps float and double kernels from that
 * one definition. Backward: ga[ia[i]] += g[i]·dz/dx, gb[ib[i]] += g[i]·dz/dy; the scatter through
 * the broadcast index sums over broadcast axes. */
#include <math.h>
#include "ops/broadcast.h"

typedef struct {
    const char *name;
    void (*forward[2])(const tg_bcast *bc, const void *a, const void *b, void *z);
    void (*backward[2])(const tg_bcast *bc, const void *a, const void *b, const void *z,
                        const void *g, void *ga, void *gb);
} binary_op;

#define BINARY_KERNELS(NAME, T, SUFFIX, FWD, DX, DY)                                          \
    static void NAME##_fwd_##SUFFIX(const tg_bcast *bc, const void *pa, const void *pb,       \
                                    void *pz)                                                  \
    {                                                                                          \
        const T *a = pa, *b = pb;                                                              \
        T *out = pz;                                                                           \
        for (int64_t i = 0; i < bc->numel; i++) {                                             \
            T x = a[tg__at(bc->ia, i)], y = b[tg__at(bc->ib, i)];                              \
            out[i] = (FWD);                                                                    \
        }                                                                                      \
    }                                                                                          \
    static void NAME##_bwd_##SUFFIX(const tg_bcast *bc, const void *pa, const void *pb,       \
                                    const void *pz, const void *pg, void *pga, void *pgb)      \
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

#define BINARY_OP(NAME, FWD, DX, DY)                                                          \
    BINARY_KERNELS(NAME, float, f32, FWD, DX, DY)                                              \
    BINARY_KERNELS(NAME, double, f64, FWD, DX, DY)                                             \
    static const binary_op NAME##_op = {"tg_" #NAME, {NAME##_fwd_f32, NAME##_fwd_f64},        \
                                        {NAME##_bwd_f32, NAME##_bwd_f64}};

/* Ties in maximum/minimum split the gradient evenly, as PyTorch does. */
BINARY_OP(add, x + y, 1, 1)
BINARY_OP(sub, x - y, 1, -1)
BINARY_OP(mul, x * y, y, x)
BINARY_OP(div, x / y, 1 / y, -z / y)
BINARY_OP(maximum, x >= y ? x : y, x > y ? 1 : (x == y ? 0.5f : 0), x < y ? 1 : (x == y ? 0.5f : 0))
BINARY_OP(minimum, x <= y ? x : y, x < y ? 1 : (x == y ? 0.5f : 0), x > y ? 1 : (x == y ? 0.5f : 0))

typedef struct {
    const binary_op *op;
    tg_bcast bc;
} binary_saved;

static void binary_backward(tg_node *node)
{
    const binary_saved *s = node->saved;
    int k = node->out->dtype == TG_F64;
    s->op->backward[k](&s->bc, node->in[0]->data, node->in[1]->data, node->out->data,
                       node->out->grad->data, tg__grad(node->in[0]), tg__grad(node->in[1]));
}

static tg_tensor *binary(const binary_op *op, tg_tensor *a, tg_tensor *b)
{
    tg__check_float(a, op->name);
    tg__check_float(b, op->name);
    tg__check_same_dtype(a, b, op->name);
    tg_bcast bc = tg__broadcast(a, b, op->name);
    tg_tensor *out = tg__new_intermediate(a->dtype, bc.ndim, bc.shape);
    op->forward[a->dtype == TG_F64](&bc, a->data, b->data, out->data);
    tg_node *node = tg__record(op->name, binary_backward, out, 2, (tg_tensor *[]){a, b});
    if (node) {
        binary_saved *s = tg__arena_alloc(sizeof *s);
        *s = (binary_saved){op, bc};
        node->saved = s;
    }
    return out;
}

tg_tensor *tg_add(tg_tensor *a, tg_tensor *b) { return binary(&add_op, a, b); }
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b) { return binary(&sub_op, a, b); }
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b) { return binary(&mul_op, a, b); }
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b) { return binary(&div_op, a, b); }
tg_tensor *tg_maximum(tg_tensor *a, tg_tensor *b) { return binary(&maximum_op, a, b); }
tg_tensor *tg_minimum(tg_tensor *a, tg_tensor *b) { return binary(&minimum_op, a, b); }
