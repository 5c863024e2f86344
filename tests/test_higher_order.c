/* Higher-order derivatives: tg_grad (with and without create_graph), Hessians against PyTorch's,
 * Hessian- and Jacobian-vector products, third order against a closed form, and the errors. The
 * second-order check of every op runs in each op's own test file (check.h's expect_gradcheck). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include "tapegrad.h"
#include "tests/check.h"
#include "tests/fixtures/hessians.h"

static tg_tensor *constant(int ndim, const int64_t *shape, const double *values)
{
    tg_tensor *c = tg_op_output(TG_F64, ndim, shape);
    for (int64_t i = 0; i < c->numel; i++) tg_set_flat(c, i, values[i]);
    return c;
}

/* Twins of the functions of tests/fixtures/make_hessians.py. */
static tg_tensor *poly_tanh(tg_tensor *x, void *ctx)
{
    (void)ctx;
    tg_tensor *s = tg_sum(x);
    return tg_add(tg_sum(tg_mul(tg_tanh(x), tg_mul(x, x))), tg_mul(s, s));
}

static tg_tensor *cross_entropy(tg_tensor *x, void *ctx)
{
    (void)ctx;
    tg_tensor *labels = tg_op_output(TG_I32, TG_SHAPE(2));
    for (int i = 0; i < 2; i++) tg_set_flat(labels, i, hessian_labels[i]);
    return tg_cross_entropy(tg_reshape(x, TG_SHAPE(2, 3)), labels, TG_REDUCE_MEAN);
}

static tg_tensor *logistic_mse(tg_tensor *x, void *ctx)
{
    (void)ctx;
    tg_tensor *z = tg_sigmoid(tg_matmul(constant(TG_SHAPE(2, 6), hessian_a),
                                        tg_reshape(x, TG_SHAPE(6, 1))));
    tg_tensor *mse = tg_mean(tg_square(tg_add_scalar(z, -0.5)));
    return tg_sub(mse, tg_mean(tg_log_softmax(tg_mul(x, x), 0)));
}

static tg_tensor *soft_max_exp(tg_tensor *x, void *ctx)
{
    (void)ctx;
    tg_tensor *den = tg_add_scalar(tg_square(x), 1);
    return tg_sum(tg_div(tg_mul(tg_softmax(x, 0), tg_exp(tg_mul_scalar(x, 0.5))), den));
}

static tg_tensor *input_x(void)
{
    return tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(6), hessian_x), true);
}

static void expect_hessian(tg_vector_fn f, const double *expected, const char *name)
{
    tg_tensor *x = input_x(), *h = tg_hessian(f, x, NULL);
    assert_int_equal(h->numel, 36);
    for (int i = 0; i < 36; i++)
        if (!(fabs(tg_get_flat(h, i) - expected[i]) <= 1e-12 * (1 + fabs(expected[i]))))
            fail_msg("%s: Hessian element %d is %.17g, PyTorch says %.17g", name, i,
                     tg_get_flat(h, i), expected[i]);
    for (int i = 0; i < 6; i++) /* symmetric, as a Hessian of a smooth function is */
        for (int j = 0; j < i; j++) assert_near(tg_get_flat(h, i * 6 + j), tg_get_flat(h, j * 6 + i), 1e-12);
    tg_free(h), tg_free(x);
}

static void test_hessians_match_pytorch(void **state)
{
    (void)state;
    expect_hessian(poly_tanh, hessian_poly_tanh, "poly_tanh");
    expect_hessian(cross_entropy, hessian_cross_entropy, "cross_entropy");
    expect_hessian(logistic_mse, hessian_logistic_mse, "logistic_mse");
    expect_hessian(soft_max_exp, hessian_soft_max_exp, "soft_max_exp");
}

/* The softmax cross-entropy Hessian is (diag(s) - s sᵀ)/N per row block: the closed form. */
static void test_cross_entropy_hessian_closed_form(void **state)
{
    (void)state;
    tg_tensor *x = input_x(), *h = tg_hessian(cross_entropy, x, NULL);
    for (int r = 0; r < 2; r++) {
        double m = -INFINITY, z = 0, s[3];
        for (int j = 0; j < 3; j++) m = fmax(m, hessian_x[3 * r + j]);
        for (int j = 0; j < 3; j++) z += exp(hessian_x[3 * r + j] - m);
        for (int j = 0; j < 3; j++) s[j] = exp(hessian_x[3 * r + j] - m) / z;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                assert_near(tg_get_flat(h, (3 * r + i) * 6 + 3 * r + j),
                            ((i == j ? s[i] : 0) - s[i] * s[j]) / 2, 1e-15);
    }
    assert_near(tg_get_flat(h, 0 * 6 + 3), 0, 0); /* rows do not interact */
    tg_free(h), tg_free(x);
}

/* tanh' = 1 - t², tanh'' = -2t(1 - t²), tanh''' = -2(1 - t²)(1 - 3t²), by three tg_grad calls. */
static void test_third_order_tanh(void **state)
{
    (void)state;
    const double xs[5] = {-2, -0.7, 0, 0.4, 1.3};
    tg_tensor *x = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(5), xs), true);
    tg_tensor *d1, *d2, *d3;
    tg_grad(tg_sum(tg_tanh(x)), NULL, 1, &x, &d1, true);
    tg_grad(tg_sum(d1), NULL, 1, &x, &d2, true);
    tg_grad(tg_sum(d2), NULL, 1, &x, &d3, false);
    for (int i = 0; i < 5; i++) {
        double t = tanh(xs[i]);
        assert_near(tg_get_flat(d1, i), 1 - t * t, 1e-15);
        assert_near(tg_get_flat(d2, i), -2 * t * (1 - t * t), 1e-15);
        assert_near(tg_get_flat(d3, i), -2 * (1 - t * t) * (1 - 3 * t * t), 1e-14);
    }
    tg_tape_reset();
    tg_free(x);
}

/* tg_grad leaves ->grad alone and agrees with tg_backward; create_graph gives the same values. */
static void test_grad_is_functional(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor *w = param_f64(&rng, TG_SHAPE(3, 4)), *b = param_f64(&rng, TG_SHAPE(3));
    tg_tensor *x = tg_rand_normal(TG_F64, TG_SHAPE(5, 4), 0, 1, &rng);
    tg_tensor *y = tg_sum(tg_tanh(tg_linear(x, w, b)));
    tg_tensor *g[2], *gg[2], *in[2] = {w, b};
    tg_grad(y, NULL, 2, in, g, false);
    tg_grad(y, NULL, 2, in, gg, true);
    assert_null(w->grad);
    assert_null(b->grad);
    tg_backward(y);
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < in[k]->numel; i++) {
            assert_near(tg_get_flat(g[k], i), tg_get_flat(in[k]->grad, i), 1e-14);
            assert_near(tg_get_flat(gg[k], i), tg_get_flat(in[k]->grad, i), 1e-14);
        }
    assert_false(g[0]->requires_grad);  /* first order: a plain result */
    assert_true(gg[0]->requires_grad);  /* create_graph: recorded */
    tg_tape_reset();
    tg_free(w), tg_free(b), tg_free(x);
}

/* Lazy zero_grad: tg_grad (first order and create_graph) writes its own slots, whatever ->grad
 * holds; a pending ->grad stays pending and untouched (NaN here), and the next tg_backward
 * overwrites it. Asking for some inputs only hands the others' products throwaway buffers. */
static void test_grad_with_pending_zero_grad(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    tg_tensor *w = param_f64(&rng, TG_SHAPE(3, 4)), *b = param_f64(&rng, TG_SHAPE(3));
    tg_tensor *x = param_f64(&rng, TG_SHAPE(5, 4)), *in[3] = {w, b, x}, *ref[3];
    tg_backward(tg_sum(tg_tanh(tg_linear(x, w, b))));
    for (int k = 0; k < 3; k++) ref[k] = tg_clone(in[k]->grad);
    tg_tape_reset();
    for (int k = 0; k < 3; k++) {
        tg_fill_(in[k]->grad, NAN);
        tg_zero_grad(in[k]);
    }
    for (int create_graph = 0; create_graph < 2; create_graph++)
        for (int first = 0; first < 3; first++) { /* inputs [first, 3) asked for */
            tg_tensor *g[3];
            tg_grad(tg_sum(tg_tanh(tg_linear(x, w, b))), NULL, 3 - first, in + first, g,
                    create_graph);
            for (int k = first; k < 3; k++)
                for (int64_t i = 0; i < in[k]->numel; i++)
                    assert_near(tg_get_flat(g[k - first], i), tg_get_flat(ref[k], i), 1e-14);
            tg_tape_reset();
        }
    for (int k = 0; k < 3; k++) {
        assert_true(in[k]->grad->zero_pending);
        assert_true(isnan(((const double *)in[k]->grad->data)[0]));
    }
    tg_backward(tg_sum(tg_tanh(tg_linear(x, w, b))));
    for (int k = 0; k < 3; k++) {
        for (int64_t i = 0; i < in[k]->numel; i++)
            assert_near(tg_get_flat(in[k]->grad, i), tg_get_flat(ref[k], i), 1e-14);
        tg_free(ref[k]);
    }
    tg_tape_reset();
    tg_free(w), tg_free(b), tg_free(x);
}

/* An input the output does not depend on gets zeros; a scalar function of an intermediate. */
static void test_grad_unused_and_intermediate_inputs(void **state)
{
    (void)state;
    tg_tensor *a = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(2), 3), true);
    tg_tensor *u = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(2), 1), true);
    tg_tensor *h = tg_mul(a, a), *g[2];
    tg_tensor *in[2] = {h, u};
    tg_grad(tg_sum(tg_exp(h)), NULL, 2, in, g, false);
    for (int i = 0; i < 2; i++) {
        assert_near(tg_get_flat(g[0], i), exp(9), 1e-9);
        assert_near(tg_get_flat(g[1], i), 0, 0);
    }
    tg_tape_reset();
    tg_free(a), tg_free(u);
}

static tg_tensor *cubic(tg_tensor *x, void *ctx)
{
    (void)ctx; /* Σ x_i³ + x_0 x_1 */
    tg_tensor *pair = tg_mul(tg_narrow(x, 0, 0, 1), tg_narrow(x, 0, 1, 1));
    return tg_add(tg_sum(tg_pow_scalar(x, 3)), tg_sum(pair));
}

static void test_hvp_matches_hessian(void **state)
{
    (void)state;
    const double xs[3] = {0.5, -2, 1.5}, vs[3] = {1, 2, -1};
    tg_tensor *x = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(3), xs), true);
    tg_tensor *v = tg_from_data(TG_F64, TG_SHAPE(3), vs);
    tg_tensor *hv = tg_hvp(cubic, x, v, NULL), *h = tg_hessian(cubic, x, NULL);
    /* H = diag(6x) + [[0, 1, 0], [1, 0, 0], [0, 0, 0]] */
    const double expect[3] = {6 * 0.5 * 1 + 2, 6 * -2.0 * 2 + 1, 6 * 1.5 * -1};
    for (int i = 0; i < 3; i++) {
        assert_near(tg_get_flat(hv, i), expect[i], 1e-12);
        double row = 0;
        for (int j = 0; j < 3; j++) row += tg_get_flat(h, i * 3 + j) * vs[j];
        assert_near(row, expect[i], 1e-12);
    }
    tg_free(hv), tg_free(h), tg_free(v), tg_free(x);
}

static tg_tensor *vector_fn(tg_tensor *x, void *ctx)
{
    (void)ctx; /* softmax(x) ⊙ tanh(x), R^4 -> R^4 */
    return tg_mul(tg_softmax(x, 0), tg_tanh(x));
}

static void test_jvp_matches_jacobian(void **state)
{
    (void)state;
    const double xs[4] = {0.2, -1, 0.7, 1.1}, us[4] = {1, -0.5, 2, 0.25};
    tg_tensor *x = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(4), xs), true);
    tg_tensor *u = tg_from_data(TG_F64, TG_SHAPE(4), us);
    tg_tensor *ju = tg_jvp(vector_fn, x, u, NULL), *jac = tg_jacobian(vector_fn, x, NULL);
    for (int i = 0; i < 4; i++) {
        double row = 0;
        for (int j = 0; j < 4; j++) row += tg_get_flat(jac, i * 4 + j) * us[j];
        assert_near(tg_get_flat(ju, i), row, 1e-14);
    }
    tg_free(ju), tg_free(jac), tg_free(u), tg_free(x);
}

/* The helpers record even inside a no-grad scope (as PyTorch's functional API does) and put the
 * mode back. */
static void test_helpers_in_no_grad_scope(void **state)
{
    (void)state;
    const double xs[3] = {0.5, -2, 1.5}, vs[3] = {1, 2, -1};
    tg_tensor *x = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(3), xs), true);
    tg_tensor *v = tg_from_data(TG_F64, TG_SHAPE(3), vs);
    bool was = tg_set_grad_enabled(false);
    tg_tensor *h = tg_hessian(cubic, x, NULL), *hv = tg_hvp(cubic, x, v, NULL);
    tg_tensor *ju = tg_jvp(vector_fn, x, v, NULL);
    assert_false(tg_grad_enabled());
    tg_set_grad_enabled(was);
    assert_near(tg_get_flat(h, 0), 6 * 0.5, 1e-12);
    assert_near(tg_get_flat(hv, 0), 6 * 0.5 * 1 + 2, 1e-12);
    assert_true(fabs(tg_get_flat(ju, 0)) > 0);
    tg_free(h), tg_free(hv), tg_free(ju), tg_free(v), tg_free(x);
}

/* Edge cases of the ops forms: pow(x, 1)'s second derivative at 0 is 0 (not 0·inf), pow(x, 0)'s
 * derivative at 0 is 0, and a tie in maximum splits the gradient in the ops form too. */
static void test_ops_form_edge_cases(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_zeros(TG_F64, TG_SHAPE(2)), true), *g, *h;
    tg_grad(tg_sum(tg_pow_scalar(x, 1)), NULL, 1, &x, &g, true);
    tg_grad(tg_sum(tg_mul(g, g)), NULL, 1, &x, &h, false);
    assert_near(tg_get_flat(g, 0), 1, 0);
    assert_near(tg_get_flat(h, 0), 0, 0);
    tg_grad(tg_sum(tg_pow_scalar(x, 0)), NULL, 1, &x, &g, false);
    assert_near(tg_get_flat(g, 0), 0, 0);
    tg_grad(tg_sum(tg_pow_scalar(x, 0)), NULL, 1, &x, &g, true);
    assert_near(tg_get_flat(g, 0), 0, 0);
    tg_grad(tg_sum(tg_maximum(x, x)), NULL, 1, &x, &g, true); /* 1/2 + 1/2 */
    assert_near(tg_get_flat(g, 1), 1, 0);
    tg_grad(tg_sum(tg_minimum(x, x)), NULL, 1, &x, &g, true);
    assert_near(tg_get_flat(g, 1), 1, 0);
    tg_tape_reset();
    tg_free(x);
}

/* A differentiable backward that is off by a constant has the right second derivative, but its
 * first derivative disagrees with the fast backward: tg_gradgradcheck must fail. */
static void cube_backward(const tg_node *node)
{
    double *gx = tg_op_grad(node->in[0]);
    const double *g = tg_op_grad_out(node), *x = node->in[0]->data;
    for (int64_t i = 0; gx && i < node->out->numel; i++) gx[i] += 3 * x[i] * x[i] * g[i];
}

static void cube_backward_ops_off(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    tg_tensor *x = node->in[0];
    grad_in[0] = tg_mul(g, tg_add_scalar(tg_mul_scalar(tg_square(x), 3), 1e-4));
}

static tg_tensor *cube_off(tg_tensor **in, int n, void *ctx)
{
    (void)n, (void)ctx;
    static const tg_op op = {"cube_off", cube_backward, cube_backward_ops_off};
    tg_tensor *y = tg_op_output(TG_F64, in[0]->ndim, in[0]->shape);
    for (int64_t i = 0; i < y->numel; i++) tg_set_flat(y, i, pow(tg_get_flat(in[0], i), 3));
    tg_op_record(&op, y, 1, in, 0);
    return tg_sum(y);
}

static void test_gradgradcheck_catches_disagreeing_backwards(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(3), 0.7), true);
    tg_gradcheck_opts o = tg_gradcheck_defaults();
    o.quiet = true;
    assert_true(tg_gradcheck(cube_off, &x, 1, NULL, &o).ok);     /* the fast backward is right */
    assert_false(tg_gradgradcheck(cube_off, &x, 1, NULL, &o).ok);
    tg_free(x);
}

/* ---- errors ---- */

static void first_order_only_backward(const tg_node *node)
{
    double *gx = tg_op_grad(node->in[0]);
    const double *g = tg_op_grad_out(node);
    for (int64_t i = 0; gx && i < node->out->numel; i++) gx[i] += 2 * g[i];
}

static tg_tensor *twice(tg_tensor *x)
{
    static const tg_op twice_op = {"twice_first_order", first_order_only_backward, NULL};
    tg_tensor *y = tg_op_output(TG_F64, x->ndim, x->shape);
    for (int64_t i = 0; i < x->numel; i++) tg_set_flat(y, i, 2 * tg_get_flat(x, i));
    tg_op_record(&twice_op, y, 1, &x, 0);
    return y;
}

static void test_errors(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(3), 1), true), *g;
    tg_tensor *c = tg_full(TG_F64, TG_SHAPE(3), 1), *short_v = tg_full(TG_F64, TG_SHAPE(2), 1);
    EXPECT_ERROR("twice_first_order has no differentiable backward",
                 tg_grad(tg_sum(twice(x)), NULL, 1, &x, &g, true));
    tg_grad(tg_sum(twice(x)), NULL, 1, &x, &g, false); /* first order is fine */
    assert_near(tg_get_flat(g, 0), 2, 0);
    tg_tape_reset();
    EXPECT_ERROR("input 0 does not require grad", tg_grad(tg_sum(tg_mul(x, c)), NULL, 1, &c, &g, false));
    EXPECT_ERROR("not a scalar", tg_grad(tg_mul(x, x), NULL, 1, &x, &g, false));
    EXPECT_ERROR("tg_hvp: v", tg_hvp(cubic, x, short_v, NULL));
    tg_tensor *go32 = tg_full(TG_F32, TG_SHAPE(3), 1);
    EXPECT_ERROR("grad_output [3] f32 does not match output [3] f64",
                 tg_grad(tg_sin(x), go32, 1, &x, &g, true));
    EXPECT_ERROR("tg_grad: need n >= 0", tg_grad(tg_sum(tg_sin(x)), NULL, 1, &x, NULL, false));
    static const tg_op no_backward = {"no_backward", NULL, NULL};
    EXPECT_ERROR("tg_op_record: no_backward has no backward function",
                 tg_op_record(&no_backward, tg_op_output(TG_F64, TG_SHAPE(3)), 1, &x, 0));
    static const tg_op plain = {"plain", first_order_only_backward, NULL};
    EXPECT_ERROR("plain: the output to record must be a fresh tg_op_output()",
                 tg_op_record(&plain, c, 1, &x, 0));
    EXPECT_ERROR("plain: input 0 is NULL",
                 tg_op_record(&plain, tg_op_output(TG_F64, TG_SHAPE(3)), 1,
                              (tg_tensor *[]){NULL}, 0));
    /* after a failed create_graph pass the engine is usable again */
    tg_grad(tg_sum(tg_mul(x, x)), NULL, 1, &x, &g, true);
    assert_true(g->requires_grad);
    tg_tape_reset();
    tg_free(x), tg_free(c), tg_free(short_v), tg_free(go32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hessians_match_pytorch),
        cmocka_unit_test(test_cross_entropy_hessian_closed_form),
        cmocka_unit_test(test_third_order_tanh),
        cmocka_unit_test(test_grad_is_functional),
        cmocka_unit_test(test_grad_with_pending_zero_grad),
        cmocka_unit_test(test_grad_unused_and_intermediate_inputs),
        cmocka_unit_test(test_hvp_matches_hessian),
        cmocka_unit_test(test_jvp_matches_jacobian),
        cmocka_unit_test(test_helpers_in_no_grad_scope),
        cmocka_unit_test(test_ops_form_edge_cases),
        cmocka_unit_test(test_gradgradcheck_catches_disagreeing_backwards),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
