/* Inverted dropout: each element is zeroed with probability p and survivors are scaled by
 * 1/(1-p), so the expected activation is unchanged and evaluation needs no rescaling. The mask
 * (one byte per element) lives in the arena for backward. tg_relu_dropout is dropout(relu(x)) in
 * one op: one mask (kept and positive), one pass forward and one backward. */
#include <math.h>
#include "autograd/cpu_clones.h"
#include "autograd/internal.h" /* tg__xoshiro_next: the generator inlined in the mask loop */
#include "ops/kernel.h"

/* y_i = x_i · mask_i · scale; the backward is the same map added to gx (add = true). A dropped
 * element is 0 (or leaves gx as it was) even where x is Inf or NaN. Each loop forms the product
 * for every element and then overwrites it where the mask is 0, the shape gcc vectorises (a
 * product under a condition is not if-converted: it might trap). */
#define MASK_KERNEL(T, S)                                                                      \
    static TG_CPU_CLONES void apply_mask_##S(int64_t n, const unsigned char *restrict mask,    \
                                             double scale, const void *px, void *py, bool add) \
    {                                                                                          \
        const T *restrict x = px, s = (T)scale;                                                \
        T *restrict y = py;                                                                    \
        if (add)                                                                               \
            for (int64_t i = 0; i < n; i++) {                                                  \
                T old = y[i];                                                                  \
                y[i] = old + x[i] * s;                                                         \
                if (!mask[i]) y[i] = old;                                                      \
            }                                                                                  \
        else                                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                  \
                y[i] = x[i] * s;                                                               \
                if (!mask[i]) y[i] = 0;                                                        \
            }                                                                                  \
    }
TG_STAMP(MASK_KERNEL)

/* y_i = relu(x_i) · s where mask_i is set, and mask_i &= x_i > 0 (the backward's mask). relu(NaN)
 * is NaN, as in tg_relu: a NaN that dropout keeps stays visible. Bitwise & and | keep the
 * conditions branch-free, so the loop vectorises. */
#define RELU_MASK_KERNEL(T, S)                                                                 \
    static TG_CPU_CLONES void relu_mask_##S(int64_t n, unsigned char *restrict mask,           \
                                            double scale, const void *px, void *py)            \
    {                                                                                          \
        const T *restrict x = px, s = (T)scale;                                                \
        T *restrict y = py;                                                                    \
        for (int64_t i = 0; i < n; i++) {                                                      \
            T xi = x[i];                                                                       \
            unsigned char pos = xi > 0, nan = xi != xi, keep = mask[i];                        \
            y[i] = xi * s;                                                                     \
            if (!(keep & (pos | nan))) y[i] = 0;                                               \
            mask[i] = keep & pos;                                                              \
        }                                                                                      \
    }
TG_STAMP(RELU_MASK_KERNEL)

/* mask_i = 1 with probability 1 - p: each 64-bit draw of the generator gives four 16-bit lanes,
 * element 4j + k keeps when lane k of draw j is >= round(p·2^16). The keep probability is then
 * 1 - round(p·2^16)/2^16, within 2^-17 of 1 - p (2^-16 for p above 1 - 2^-17, see
 * keep_threshold), and a mask costs a quarter of a draw per
 * element. The draws of a block go to a buffer first: the generator is a serial chain, the
 * comparisons are not, and apart they vectorise. The state is kept in locals: stores through the
 * byte mask may alias anything, which otherwise forces a reload and store of it per draw. */
enum { MASK_BLOCK = 256 }; /* elements per buffer of draws */

static TG_CPU_CLONES void compare_lanes(unsigned char *restrict mask,
                                        const uint64_t *restrict draws, int64_t n,
                                        uint32_t threshold)
{
    for (int64_t j = 0; j < n / 4; j++)
        for (int k = 0; k < 4; k++)
            mask[4 * j + k] = ((draws[j] >> (16 * k)) & 0xffff) >= threshold;
    for (int64_t i = n / 4 * 4; i < n; i++)
        mask[i] = ((draws[i / 4] >> (16 * (i % 4))) & 0xffff) >= threshold;
}

/* round(p·2^16), at most 2^16 - 1: a p just below 1 must still keep some elements (one lane
 * value in 2^16), not drop all of them while survivors would be scaled by 1/(1 - p). */
static uint32_t keep_threshold(double p)
{
    long t = lround(p * 65536.0);
    return t > 65535 ? 65535u : (uint32_t)t;
}

static void make_mask(unsigned char *restrict mask, int64_t n, double p, tg_rng *rng)
{
    const uint32_t threshold = keep_threshold(p);
    uint64_t s[4] = {rng->s[0], rng->s[1], rng->s[2], rng->s[3]};
    uint64_t draws[MASK_BLOCK / 4];
    for (int64_t start = 0; start < n; start += MASK_BLOCK) {
        int64_t len = n - start < MASK_BLOCK ? n - start : MASK_BLOCK;
        for (int64_t j = 0; j < (len + 3) / 4; j++) draws[j] = tg__xoshiro_next(s);
        compare_lanes(mask + start, draws, len, threshold);
    }
    for (int k = 0; k < 4; k++) rng->s[k] = s[k];
}

typedef struct {
    const unsigned char *mask;
    double scale;           /* 1 / (1 - p) */
} dropout_saved;

/* gx_i += g_i · mask_i / (1 - p), or = when this is gx's first writer (tg_op_grad_beta); for
 * relu_dropout the mask already holds x_i > 0 */
static void dropout_backward(const tg_node *node)
{
    const dropout_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    double beta;
    void *gx = tg_op_grad_beta(x, &beta);
    TG_KERNEL_FOR(apply_mask, x)(x->numel, s->mask, s->scale, tg_op_grad_out(node), gx,
                                 beta != 0);
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
static const tg_op relu_dropout_op = {"tg_relu_dropout", dropout_backward, dropout_backward_ops};

static void check_p(const tg_tensor *a, double p, const char *op)
{
    tg_check_float(a, op);
    if (!(p >= 0 && p < 1)) /* also rejects NaN */
        tg_fail("%s: p = %g is outside [0, 1)", op, p);
}

static tg_tensor *record(const tg_op *op, tg_tensor *a, tg_tensor *out, const unsigned char *mask,
                         double scale)
{
    tg_node *node = tg_op_record(op, out, 1, &a, sizeof(dropout_saved));
    if (node) *(dropout_saved *)node->saved = (dropout_saved){mask, scale};
    return out;
}

tg_tensor *tg_dropout(tg_tensor *a, double p, bool training, tg_rng *rng)
{
    check_p(a, p, "tg_dropout");
    if (!training || p == 0) return a;
    unsigned char *mask = tg_op_scratch((size_t)a->numel);
    make_mask(mask, a->numel, p, rng ? rng : tg_global_rng());
    double scale = 1 / (1 - p);
    tg_tensor *out = tg_op_output(a->dtype, a->ndim, a->shape);
    TG_KERNEL_FOR(apply_mask, a)(a->numel, mask, scale, a->data, out->data, false);
    return record(&dropout_op, a, out, mask, scale);
}

tg_tensor *tg_relu_dropout(tg_tensor *a, double p, bool training, tg_rng *rng)
{
    check_p(a, p, "tg_relu_dropout");
    if (!training || p == 0) return tg_relu(a);
    unsigned char *mask = tg_op_scratch((size_t)a->numel);
    make_mask(mask, a->numel, p, rng ? rng : tg_global_rng());
    double scale = 1 / (1 - p);
    tg_tensor *out = tg_op_output(a->dtype, a->ndim, a->shape);
    TG_KERNEL_FOR(relu_mask, a)(a->numel, mask, scale, a->data, out->data);
    return record(&relu_dropout_op, a, out, mask, scale);
}
