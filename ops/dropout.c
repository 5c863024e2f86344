/* Inverted dropout: each element is zeroed with probability p and survivors are scaled by
 * 1/(1-p), so the expected activation is unchanged and evaluation needs no rescaling. The mask
 * (one byte per element, from tg_rng_uniform(rng) >= p) lives in the arena for backward. */
#include <math.h>
#include "autograd/internal.h" /* tg__xoshiro_next: the generator inlined in the mask loop */
#include "ops/kernel.h"

/* y_i = x_i · mask_i · scale; the backward is the same map applied to g (add = true). */
#define MASK_KERNEL(T, S)                                                                      \
    static void apply_mask_##S(int64_t n, const unsigned char *mask, double scale,             \
                               const void *px, void *py, bool add)                             \
    {                                                                                          \
        const T *x = px, s = (T)scale;                                                         \
        T *y = py;                                                                             \
        for (int64_t i = 0; i < n; i++) {                                                     \
            T v = mask[i] ? x[i] * s : 0;                                                      \
            y[i] = add ? y[i] + v : v;                                                         \
        }                                                                                      \
    }
TG_STAMP(MASK_KERNEL)

/* mask_i = tg_rng_uniform(rng) >= p, i.e. k_i·2^-53 >= p for k_i the top 53 bits of the next
 * draw, computed as k_i >= ceil(p·2^53) in integers (exact: p·2^53 only rescales by a power of
 * two). The state is copied into locals: stores through the byte mask may alias anything, which
 * otherwise forces a reload and store of the state per element. */
static void make_mask(unsigned char *restrict mask, int64_t n, double p, tg_rng *rng)
{
    const uint64_t threshold = (uint64_t)ceil(p * 0x1p53);
    uint64_t s[4] = {rng->s[0], rng->s[1], rng->s[2], rng->s[3]};
    for (int64_t i = 0; i < n; i++) mask[i] = (tg__xoshiro_next(s) >> 11) >= threshold;
    for (int k = 0; k < 4; k++) rng->s[k] = s[k];
}

typedef struct {
    const unsigned char *mask;
    double scale;           /* 1 / (1 - p) */
} dropout_saved;

/* gx_i += g_i · mask_i / (1 - p) */
static void dropout_backward(const tg_node *node)
{
    const dropout_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    TG_KERNEL_FOR(apply_mask, x)(x->numel, s->mask, s->scale, tg_op_grad_out(node), tg_op_grad(x),
                                 true);
}

/* gx = g · (mask / (1 - p)), the scaled mask a constant */
static void dropout_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const dropout_saved *s = node->saved;
    tg_tensor *x = node->in[0], *m = tg__constant_like(x, 1);
    TG_KERNEL_FOR(apply_mask, x)(x->numel, s->mask, s->scale, m->data, m->data, false);
    grad_in[0] = tg_mul(g, m);
}

static const tg_op dropout_op = {"tg_dropout", dropout_backward, dropout_backward_ops};

tg_tensor *tg_dropout(tg_tensor *a, double p, bool training, tg_rng *rng)
{
    tg_check_float(a, "tg_dropout");
    if (!(p >= 0 && p < 1)) /* also rejects NaN */
        tg_fail("tg_dropout: p = %g is outside [0, 1)", p);
    if (!training || p == 0) return a;
    unsigned char *mask = tg_op_scratch((size_t)a->numel);
    make_mask(mask, a->numel, p, rng ? rng : tg_global_rng());
    double scale = 1 / (1 - p);
    tg_tensor *out = tg_op_output(a->dtype, a->ndim, a->shape);
    TG_KERNEL_FOR(apply_mask, a)(a->numel, mask, scale, a->data, out->data, false);
    tg_node *node = tg_op_record(&dropout_op, out, 1, &a, sizeof(dropout_saved));
    if (node) *(dropout_saved *)node->saved = (dropout_saved){mask, scale};
    return out;
}
