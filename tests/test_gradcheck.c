/* The gradient checker itself: it passes correct gradients, catches a wrong one and names the
 * worst element, works in projection mode, and builds Jacobians. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include "tapegrad.h"
#include "tests/check.h"

/* A deliberately wrong op: y = x³ with backward 3x² + 1 on element 2 only. */
static void bad_cube_backward(const tg_node *node)
{
    const double *x = node->in[0]->data, *g = tg_op_grad_out(node);
    double *gx = tg_op_grad(node->in[0]);
    for (int64_t i = 0; i < node->out->numel; i++)
        gx[i] += g[i] * (3 * x[i] * x[i] + (i == 2 ? 1.0 : 0));
}

static tg_tensor *bad_cube(tg_tensor *x)
{
    tg_tensor *y = tg_op_output(TG_F64, x->ndim, x->shape);
    for (int64_t i = 0; i < x->numel; i++) {
        double v = ((double *)x->data)[i];
        ((double *)y->data)[i] = v * v * v;
    }
    static const tg_op bad_cube_op = {"bad_cube", bad_cube_backward, NULL};
    tg_op_record(&bad_cube_op, y, 1, &x, 0);
    return y;
}

static tg_tensor *f_bad(tg_tensor **in, int n, void *ctx) { (void)n, (void)ctx; return tg_sum(bad_cube(in[0])); }

static tg_tensor *f_good(tg_tensor **in, int n, void *ctx)
{
    (void)n, (void)ctx; /* sum(tanh(a)·b + a/b) */
    return tg_sum(tg_add(tg_mul(tg_tanh(in[0]), in[1]), tg_div(in[0], in[1])));
}

static void test_passes_correct_gradients(void **state)
{
    (void)state;
    tg_tensor *a = tg_set_requires_grad(tg_rand_normal(TG_F64, TG_SHAPE(3, 4), 0, 1, NULL), true);
    tg_tensor *b = tg_set_requires_grad(tg_rand_uniform(TG_F64, TG_SHAPE(3, 4), 1, 2, NULL), true);
    tg_tensor *in[] = {a, b};
    tg_gradcheck_result r = tg_gradcheck(f_good, in, 2, NULL, NULL);
    assert_true(r.ok);
    assert_int_equal(r.checked, 24);
    assert_near(tg_get_flat(tg_get_grad(a), 0), 0, 0); /* the checker leaves gradients zeroed */
    tg_free(a), tg_free(b);
}

static void test_catches_a_wrong_gradient_and_names_it(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(4), (double[]){1, 2, 3, 4}), true);
    tg_gradcheck_opts o = tg_gradcheck_defaults();
    o.quiet = true;
    tg_gradcheck_result r = tg_gradcheck(f_bad, &x, 1, NULL, &o);
    assert_false(r.ok);
    assert_int_equal(r.worst_input, 0);
    assert_int_equal(r.worst_index, 2);
    assert_near(r.analytic, 28.0, 1e-9);
    assert_near(r.numeric, 27.0, 1e-5);
    tg_free(x);
}

static tg_tensor *f_sqrt(tg_tensor **in, int n, void *ctx) { (void)n, (void)ctx; return tg_sum(tg_sqrt(in[0])); }

static void test_non_finite_gradient_fails(void **state)
{
    (void)state; /* d sqrt(x)/dx = inf at 0: must not hide behind a NaN comparison */
    tg_tensor *x = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(2), (double[]){1, 0}), true);
    tg_gradcheck_opts o = tg_gradcheck_defaults();
    o.quiet = true;
    tg_gradcheck_result r = tg_gradcheck(f_sqrt, &x, 1, NULL, &o);
    assert_false(r.ok);
    assert_int_equal(r.worst_index, 1);
    tg_free(x);
}

static void test_projection_mode(void **state)
{
    (void)state;
    tg_tensor *a = tg_set_requires_grad(tg_rand_normal(TG_F64, TG_SHAPE(50, 40), 0, 1, NULL), true);
    tg_tensor *b = tg_set_requires_grad(tg_rand_uniform(TG_F64, TG_SHAPE(50, 40), 1, 2, NULL), true);
    tg_tensor *in[] = {a, b};
    tg_gradcheck_opts o = tg_gradcheck_defaults();
    o.projections = 8;
    tg_gradcheck_result r = tg_gradcheck(f_good, in, 2, NULL, &o);
    assert_true(r.ok);
    assert_int_equal(r.checked, 8);
    tg_free(a), tg_free(b);

    tg_tensor *x = tg_set_requires_grad(tg_rand_uniform(TG_F64, TG_SHAPE(30), 1, 2, NULL), true);
    o.quiet = true;
    o.atol = 1e-7, o.rtol = 1e-7; /* the error on one element shows up in every projection */
    assert_false(tg_gradcheck(f_bad, &x, 1, NULL, &o).ok);
    tg_free(x);
}

static tg_tensor *vec_fn(tg_tensor *x, void *ctx) { (void)ctx; return tg_mul(tg_exp(x), tg_sigmoid(x)); }

static tg_tensor *mat_fn(tg_tensor *x, void *ctx)
{
    tg_tensor *w = ctx;
    return tg_tanh(tg_matmul(w, tg_reshape(x, TG_SHAPE(3, 1))));
}

static void test_jacobian_matches_numeric(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_rand_normal(TG_F64, TG_SHAPE(3), 0, 1, NULL), true);
    tg_tensor *w = tg_rand_normal(TG_F64, TG_SHAPE(2, 3), 0, 1, NULL);
    tg_vector_fn fns[] = {vec_fn, mat_fn};
    for (int k = 0; k < 2; k++) {
        tg_tensor *ja = tg_jacobian(fns[k], x, w);
        tg_tensor *jn = tg_jacobian_numeric(fns[k], x, w, 1e-6);
        assert_int_equal(ja->shape[0], k == 0 ? 3 : 2);
        assert_int_equal(ja->shape[1], 3);
        for (int64_t i = 0; i < ja->numel; i++)
            assert_near(tg_get_flat(ja, i), tg_get_flat(jn, i), 1e-6);
        if (k == 0) /* elementwise: diagonal */
            assert_near(tg_get_flat(ja, 1), 0, 0);
        tg_free(ja), tg_free(jn);
    }
    tg_free(x), tg_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passes_correct_gradients),
        cmocka_unit_test(test_catches_a_wrong_gradient_and_names_it),
        cmocka_unit_test(test_non_finite_gradient_fails),
        cmocka_unit_test(test_projection_mode),
        cmocka_unit_test(test_jacobian_matches_numeric),
    };
    return cmocka_run_group_tests_name("gradcheck", tests, NULL, NULL);
}
