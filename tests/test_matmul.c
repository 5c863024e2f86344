/* Matrix products: forward values, all transpose combinations, linear, and a composite network,
 * gradient-checked in float64. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>
#include "tapegrad.h"
#include "tests/check.h"

static tg_tensor *param(int ndim, const int64_t *shape)
{
    return tg_set_requires_grad(tg_rand_normal(TG_F64, ndim, shape, 0, 1, NULL), true);
}

typedef struct { bool ta, tb; tg_tensor *weights; } mm_ctx;

static tg_tensor *f_matmul(tg_tensor **in, int n, void *p)
{
    (void)n;
    mm_ctx *c = p;
    tg_tensor *y = tg_matmul_t(in[0], c->ta, in[1], c->tb);
    if (!c->weights) c->weights = tg_rand_normal(TG_F64, y->ndim, y->shape, 0, 1, NULL);
    return tg_sum(tg_mul(y, c->weights));
}

static void test_matmul_forward_values(void **s)
{
    (void)s;
    tg_tensor *a = tg_from_data(TG_F32, TG_SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    tg_tensor *b = tg_from_data(TG_F32, TG_SHAPE(3, 2), (float[]){1, 0, 0, 1, 1, 1});
    tg_tensor *y = tg_matmul(a, b);
    const float expect[] = {4, 5, 10, 11};
    for (int i = 0; i < 4; i++) assert_near(tg_get_flat(y, i), expect[i], 0);
    tg_tensor *yt = tg_matmul_t(a, true, a, false); /* aᵀa, [3,3] */
    assert_int_equal(yt->shape[0], 3);
    assert_near(tg_get_flat(yt, 0), 17, 0);
    assert_near(tg_get_flat(yt, 8), 45, 0);
    tg_free(a), tg_free(b);
    tg_tape_reset();
}

static void test_matmul_all_transposes_gradcheck(void **s)
{
    (void)s;
    const int64_t M = 3, K = 4, N = 5;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            tg_tensor *a = ta ? param(TG_SHAPE(K, M)) : param(TG_SHAPE(M, K));
            tg_tensor *b = tb ? param(TG_SHAPE(N, K)) : param(TG_SHAPE(K, N));
            mm_ctx c = {ta, tb, NULL};
            tg_tensor *in[] = {a, b};
            expect_gradcheck(f_matmul, in, 2, &c, "tg_matmul_t ta=%d tb=%d", ta, tb);
            tg_free(a), tg_free(b), tg_free(c.weights);
        }
}

static void test_matmul_edge_shapes(void **s)
{
    (void)s;
    /* row vector, column vector and inner size 1 take BLIS's gemv / rank-1 paths */
    const int64_t shapes[][3] = {{1, 6, 4}, {5, 6, 1}, {4, 1, 3}, {1, 1, 1}};
    for (int k = 0; k < 4; k++) {
        const int64_t *d = shapes[k];
        tg_tensor *in[] = {param(TG_SHAPE(d[0], d[1])), param(TG_SHAPE(d[1], d[2]))};
        mm_ctx c = {false, false, NULL};
        expect_gradcheck(f_matmul, in, 2, &c, "tg_matmul [%lld, %lld]·[%lld, %lld]",
                         (long long)d[0], (long long)d[1], (long long)d[1], (long long)d[2]);
        tg_free(in[0]), tg_free(in[1]), tg_free(c.weights);
    }
}

static tg_tensor *f_linear(tg_tensor **in, int n, void *p)
{
    tg_tensor *y = tg_linear(in[0], in[1], n > 2 ? in[2] : NULL);
    tg_tensor **weights = p;
    if (!*weights) *weights = tg_rand_normal(TG_F64, y->ndim, y->shape, 0, 1, NULL);
    return tg_sum(tg_mul(y, *weights));
}

static void test_linear_gradcheck(void **s)
{
    (void)s;
    const int64_t batches[] = {1, 4};
    for (int k = 0; k < 2; k++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            tg_tensor *in[] = {param(TG_SHAPE(batches[k], 5)), param(TG_SHAPE(3, 5)), param(TG_SHAPE(3))};
            tg_tensor *weights = NULL;
            expect_gradcheck(f_linear, in, 2 + with_bias, &weights, "tg_linear batch %lld%s",
                             (long long)batches[k], with_bias ? " + bias" : "");
            for (int i = 0; i < 3; i++) tg_free(in[i]);
            tg_free(weights);
        }
}

static void test_linear_matches_matmul_plus_bias(void **s)
{
    (void)s;
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(4, 6), 0, 1, NULL);
    tg_tensor *w = tg_rand_normal(TG_F32, TG_SHAPE(3, 6), 0, 1, NULL);
    tg_tensor *b = tg_rand_normal(TG_F32, TG_SHAPE(3), 0, 1, NULL);
    tg_tensor *y1 = tg_linear(x, w, b);
    tg_tensor *y2 = tg_add(tg_matmul_t(x, false, w, true), b);
    for (int64_t i = 0; i < y1->numel; i++)
        assert_near(tg_get_flat(y1, i), tg_get_flat(y2, i), 1e-5);
    tg_free(x), tg_free(w), tg_free(b);
    tg_tape_reset();
}

/* Two-layer network with cross-entropy, gradient-checked through every parameter. */
typedef struct { tg_tensor *x, *labels; } net_ctx;

static tg_tensor *f_network(tg_tensor **p, int n, void *ctx)
{
    (void)n;
    net_ctx *c = ctx;
    tg_tensor *h = tg_tanh(tg_linear(c->x, p[0], p[1]));
    return tg_cross_entropy(tg_linear(h, p[2], p[3]), c->labels, TG_REDUCE_MEAN);
}

static void test_two_layer_network_gradcheck(void **s)
{
    (void)s;
    net_ctx c = {tg_rand_normal(TG_F64, TG_SHAPE(6, 5), 0, 1, NULL),
                 tg_from_data(TG_I32, TG_SHAPE(6), (int32_t[]){0, 1, 2, 2, 1, 0})};
    tg_tensor *p[] = {param(TG_SHAPE(4, 5)), param(TG_SHAPE(4)), param(TG_SHAPE(3, 4)), param(TG_SHAPE(3))};
    expect_gradcheck(f_network, p, 4, &c, "two-layer tanh network + tg_cross_entropy");
    for (int i = 0; i < 4; i++) tg_free(p[i]);
    tg_free(c.x), tg_free(c.labels);
}

static void test_shape_errors_name_the_op(void **s)
{
    (void)s;
    tg_tensor *a = tg_ones(TG_F32, TG_SHAPE(2, 3)), *b = tg_ones(TG_F32, TG_SHAPE(4, 2));
    tg_tensor *v = tg_ones(TG_F32, TG_SHAPE(3));
    EXPECT_ERROR("tg_matmul: inner sizes differ: [2, 3] f32 · [4, 2] f32 gives 3 vs 4", tg_matmul(a, b));
    EXPECT_ERROR("tg_matmul: expected a 2-D tensor, got [3] f32", tg_matmul(v, a));
    EXPECT_ERROR("tg_linear: input [2, 3] f32 does not match weight [4, 2] f32", tg_linear(a, b, NULL));
    tg_free(a), tg_free(b), tg_free(v);
}

/* ---- lazy zero_grad: the products that overwrite a whole gradient (tg_op_grad_beta) --------- */

static tg_tensor *param_of(tg_dtype dt, int ndim, const int64_t *shape)
{
    return tg_set_requires_grad(tg_rand_normal(dt, ndim, shape, 0, 1, NULL), true);
}

/* Σ y·R with R fixed random weights of y's shape and dtype, made on the first call. */
static tg_tensor *weighted_sum(tg_tensor *y, tg_tensor **weights)
{
    if (!*weights) *weights = tg_rand_normal(y->dtype, y->ndim, y->shape, 0, 1, NULL);
    return tg_sum(tg_mul(y, *weights));
}

typedef struct {
    tg_tensor *weights;
    bool hidden_x;    /* x enters as tanh(x): its gradient is an intermediate's */
    bool x_fans_out;  /* and tanh(x) also feeds Σ tanh(x)², whose backward writes first */
    bool ta, tb;      /* tg_matmul_t's flags */
    bool same;        /* tg_matmul_t(a, ta, a, tb): one tensor on both sides */
    bool bias_add;    /* tg_add(matmul, bias [N]): the bias gradient sums over the rows */
} lazy_ctx;

static tg_tensor *f_lazy_linear(tg_tensor **in, int n, void *p)
{
    lazy_ctx *c = p;
    tg_tensor *x = c->hidden_x ? tg_tanh(in[0]) : in[0];
    tg_tensor *loss = weighted_sum(tg_linear(x, in[1], n > 2 ? in[2] : NULL), &c->weights);
    return c->x_fans_out ? tg_add(loss, tg_sum(tg_mul(x, x))) : loss;
}

static void test_linear_lazy_zero_grad(void **s)
{
    (void)s;
    /* batch, in, out: products that go to gemv (a batch or an output of 1), to the K = 1 outer
     * product (dW of batch 1, dX of one output), to libxsmm (short K) and to BLIS (K = 80). */
    const int64_t shapes[][3] = {{1, 7, 3}, {5, 7, 1}, {3, 1, 4}, {16, 40, 10}, {80, 30, 20}};
    for (int dt = 0; dt < 2; dt++)
        for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
            for (int mode = 0; mode < 3; mode++) {
                tg_dtype d = dt ? TG_F64 : TG_F32;
                int64_t N = shapes[k][0], in = shapes[k][1], out = shapes[k][2];
                tg_tensor *t[] = {param_of(d, TG_SHAPE(N, in)), param_of(d, TG_SHAPE(out, in)),
                                  param_of(d, TG_SHAPE(out))};
                lazy_ctx c = {.hidden_x = mode > 0, .x_fans_out = mode == 2};
                char label[128];
                snprintf(label, sizeof label, "tg_linear %s %lldx%lld->%lld%s", tg_dtype_name(d),
                         (long long)N, (long long)in, (long long)out,
                         mode == 0 ? "" : mode == 1 ? ", x hidden" : ", x hidden, fan-out");
                expect_lazy_grads(f_lazy_linear, t, 3, &c, label);
                tg_free(c.weights);
                c.weights = NULL;
                expect_lazy_grads(f_lazy_linear, t, 2, &c, "tg_linear without bias");
                for (int i = 0; i < 3; i++) tg_free(t[i]);
                tg_free(c.weights);
            }
}

static tg_tensor *f_lazy_matmul(tg_tensor **in, int n, void *p)
{
    lazy_ctx *c = p;
    tg_tensor *y = tg_matmul_t(in[0], c->ta, c->same ? in[0] : in[1], c->tb);
    if (c->bias_add) y = tg_add(y, in[n - 1]);
    return weighted_sum(y, &c->weights);
}

static void test_matmul_lazy_zero_grad(void **s)
{
    (void)s;
    const int64_t M = 6, K = 5, N = 4;
    for (int dt = 0; dt < 2; dt++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                tg_dtype d = dt ? TG_F64 : TG_F32;
                tg_tensor *t[] = {ta ? param_of(d, TG_SHAPE(K, M)) : param_of(d, TG_SHAPE(M, K)),
                                  tb ? param_of(d, TG_SHAPE(N, K)) : param_of(d, TG_SHAPE(K, N)),
                                  param_of(d, TG_SHAPE(N))};
                char label[96];
                lazy_ctx c = {.ta = ta, .tb = tb};
                snprintf(label, sizeof label, "tg_matmul_t %s ta=%d tb=%d", tg_dtype_name(d), ta,
                         tb);
                expect_lazy_grads(f_lazy_matmul, t, 2, &c, label);
                tg_free(c.weights);
                c = (lazy_ctx){.ta = ta, .tb = tb, .bias_add = true};
                snprintf(label, sizeof label, "tg_matmul_t %s ta=%d tb=%d + broadcast bias",
                         tg_dtype_name(d), ta, tb);
                expect_lazy_grads(f_lazy_matmul, t, 3, &c, label);
                tg_free(c.weights);
                /* a·a, aᵀ·a, a·aᵀ: one gradient written by the first product, added by the
                 * second */
                tg_tensor *sq = param_of(d, TG_SHAPE(K, K));
                c = (lazy_ctx){.ta = ta, .tb = tb, .same = true};
                snprintf(label, sizeof label, "tg_matmul_t(a, %d, a, %d) %s", ta, tb,
                         tg_dtype_name(d));
                expect_lazy_grads(f_lazy_matmul, &sq, 1, &c, label);
                tg_free(c.weights);
                tg_free(sq);
                for (int i = 0; i < 3; i++) tg_free(t[i]);
            }
}

/* An empty batch: dW = Gᵀ·X has K = 0 and the bias gradient sums no rows, so with beta 0 both
 * must write zeros over whatever the pending buffers held. */
static void test_linear_empty_batch_writes_zeros(void **s)
{
    (void)s;
    for (int dt = 0; dt < 2; dt++) {
        tg_dtype d = dt ? TG_F64 : TG_F32;
        tg_tensor *x = tg_zeros(d, TG_SHAPE(0, 4));
        tg_tensor *w = param_of(d, TG_SHAPE(3, 4)), *b = param_of(d, TG_SHAPE(3));
        tg_tensor *ps[] = {w, b};
        for (int pass = 0; pass < 2; pass++) { /* no buffers, then NaN buffers left pending */
            tg_backward(tg_sum(tg_linear(x, w, b)));
            tg_tape_reset();
            for (int k = 0; k < 2; k++) {
                tg_tensor *g = tg_get_grad(ps[k]);
                assert_non_null(g);
                for (int64_t i = 0; i < g->numel; i++) assert_near(tg_get_flat(g, i), 0, 0);
                tg_fill_(g, NAN);
                tg_zero_grad(ps[k]);
            }
        }
        tg_free(x), tg_free(w), tg_free(b);
    }
}

int main(void)
{
    tg_manual_seed(7);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_forward_values),
        cmocka_unit_test(test_matmul_all_transposes_gradcheck),
        cmocka_unit_test(test_matmul_edge_shapes),
        cmocka_unit_test(test_linear_gradcheck),
        cmocka_unit_test(test_linear_matches_matmul_plus_bias),
        cmocka_unit_test(test_two_layer_network_gradcheck),
        cmocka_unit_test(test_shape_errors_name_the_op),
        cmocka_unit_test(test_linear_lazy_zero_grad),
        cmocka_unit_test(test_matmul_lazy_zero_grad),
        cmocka_unit_test(test_linear_empty_batch_writes_zeros),
    };
    int failed = cmocka_run_group_tests_name("matmul", tests, NULL, NULL);
    check_summary();
    return failed;
}
