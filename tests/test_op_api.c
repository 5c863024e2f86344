/* The op-authoring example at the top of include/tg/op.h, as written there (leaky ReLU with its
 * fast backward and its differentiable backward), with the kernels it leaves out: it must build
 * against the public headers, pass the first- and second-order checks in float64, and agree in
 * float32. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "tapegrad.h"
#include "tests/check.h"

#define LEAKY_KERNELS(T, S)                                                                  \
    static void leaky_fwd_##S(int64_t n, double alpha, const void *px, void *py)             \
    {                                                                                        \
        const T *x = px;                                                                     \
        T *y = py;                                                                           \
        for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : (T)alpha * x[i];           \
    }                                                                                        \
    static void leaky_bwd_##S(int64_t n, double alpha, const void *px, const void *pg,       \
                              void *pgx)                                                     \
    {                                                                                        \
        const T *x = px, *g = pg;                                                            \
        T *gx = pgx;                                                                         \
        for (int64_t i = 0; gx && i < n; i++) gx[i] += g[i] * (x[i] > 0 ? 1 : (T)alpha);    \
    }
TG_STAMP(LEAKY_KERNELS)

/* ---- from include/tg/op.h ---- */
typedef struct { double alpha; } leaky_saved;

static void leaky_backward(const tg_node *node)
{
    const leaky_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    TG_KERNEL_FOR(leaky_bwd, x)(x->numel, s->alpha, x->data, tg_op_grad_out(node),
                                tg_op_grad(x));
}

static void leaky_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const leaky_saved *s = node->saved;
    tg_tensor *x = node->in[0], *k = tg_op_output(x->dtype, x->ndim, x->shape);
    for (int64_t i = 0; i < x->numel; i++)
        tg_set_flat(k, i, tg_get_flat(x, i) > 0 ? 1 : s->alpha);
    grad_in[0] = tg_mul(g, k);
}

static const tg_op leaky_op = {"leaky_relu", leaky_backward, leaky_backward_ops};

static tg_tensor *leaky_relu(tg_tensor *x, double alpha)
{
    tg_check_float(x, "leaky_relu");
    tg_tensor *y = tg_op_output(x->dtype, x->ndim, x->shape);
    TG_KERNEL_FOR(leaky_fwd, x)(x->numel, alpha, x->data, y->data);
    tg_node *node = tg_op_record(&leaky_op, y, 1, &x, sizeof(leaky_saved));
    if (node) ((leaky_saved *)node->saved)->alpha = alpha;
    return y;
}
/* ---- end of the header's example ---- */

/* Σ leaky(x)·tanh(x): a second derivative that goes through the op and around it. */
static tg_tensor *f(tg_tensor **in, int n, void *ctx)
{
    (void)n, (void)ctx;
    return tg_sum(tg_mul(leaky_relu(in[0], 0.1), tg_tanh(in[0])));
}

static void test_header_example_checks(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *x = param_f64(&rng, TG_SHAPE(3, 5));
    expect_gradcheck(f, &x, 1, NULL, "leaky_relu (the op.h example)");
    tg_free(x);
}

static void test_header_example_float32(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(
        tg_from_data(TG_F32, TG_SHAPE(4), (float[]){-2, -0.5f, 0.5f, 3}), true);
    tg_backward(tg_sum(leaky_relu(x, 0.25)));
    expect_values(x->grad, (double[]){0.25, 0.25, 1, 1}, 4, 0);
    tg_tensor *labels = tg_zeros(TG_I32, TG_SHAPE(1));
    EXPECT_ERROR("leaky_relu: expected a float32 or float64 tensor", leaky_relu(labels, 0.1));
    tg_tape_reset();
    tg_free(x), tg_free(labels);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_example_checks),
        cmocka_unit_test(test_header_example_float32),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
