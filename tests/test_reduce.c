/* Reductions: sum, mean (all elements and along an axis), max_axis, argmax. Forward values by
 * hand, gradients checked in float64 over ranks 1-3, every axis (negative too), keepdim both
 * ways, size-1 and size-0 axes; float32 forward against float64; errors name the op. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tapegrad.h"
#include "check.h"

static const double m23[] = {1, 2, 3, 4, 5, 6}; /* [[1, 2, 3], [4, 5, 6]] */

static void test_sum_mean_all(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(2, 3), m23);
        if (k) { /* float32 forward too */
            tg_tensor *x32 = tg_to_dtype(x, TG_F32);
            tg_free(x);
            x = x32;
        }
        tg_tensor *s = tg_sum(x), *m = tg_mean(x);
        assert_int_equal(s->ndim, 0);
        assert_int_equal(s->dtype, x->dtype);
        assert_true(tg_item(s) == 21.0);
        assert_true(tg_item(m) == 3.5);
        tg_tape_reset();
        tg_free(x);
    }
}

static void test_sum_mean_empty(void **state)
{
    (void)state;
    tg_tensor *e = tg_zeros(TG_F64, TG_SHAPE(0, 3));
    assert_true(tg_item(tg_sum(e)) == 0.0);
    assert_true(isnan(tg_item(tg_mean(e)))); /* like NumPy and PyTorch */
    tg_tensor *s0 = tg_sum_axis(e, 0, false);
    assert_int_equal(s0->ndim, 1);
    assert_int_equal(s0->shape[0], 3);
    expect_values(s0, (double[]){0, 0, 0}, 3, 0);
    tg_tensor *s1 = tg_mean_axis(e, 1, true);
    assert_int_equal(s1->shape[0], 0);
    assert_int_equal(s1->shape[1], 1);
    tg_tape_reset();
    tg_free(e);
}

static void test_axis_values(void **state)
{
    (void)state;
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(2, 3), m23);
    tg_tensor *s0 = tg_sum_axis(x, 0, false), *s1k = tg_sum_axis(x, -1, true);
    assert_int_equal(s0->ndim, 1);
    expect_values(s0, (double[]){5, 7, 9}, 3, 0);
    assert_int_equal(s1k->ndim, 2);
    assert_int_equal(s1k->shape[0], 2);
    assert_int_equal(s1k->shape[1], 1);
    expect_values(s1k, (double[]){6, 15}, 2, 0);
    expect_values(tg_mean_axis(x, 1, false), (double[]){2, 5}, 2, 1e-15);
    expect_values(tg_mean_axis(x, -2, true), (double[]){2.5, 3.5, 4.5}, 3, 1e-15);
    expect_values(tg_max_axis(x, 0, false), (double[]){4, 5, 6}, 3, 0);
    expect_values(tg_max_axis(x, 1, true), (double[]){3, 6}, 2, 0);
    tg_tensor *a = tg_argmax(x, 1);
    assert_int_equal(a->dtype, TG_I32);
    expect_values(a, (double[]){2, 2}, 2, 0);
    tg_tape_reset();
    tg_free(x);
}

/* The middle axis of a [2, 3, 2] tensor: the strided (inner > 1) path. */
static void test_axis_values_rank3(void **state)
{
    (void)state;
    tg_tensor *x = tg_arange(TG_F64, 0, 12, 1);
    tg_tensor *x3 = tg_reshape(x, TG_SHAPE(2, 3, 2));
    expect_values(tg_sum_axis(x3, 1, false), (double[]){6, 9, 24, 27}, 4, 0);
    expect_values(tg_max_axis(x3, 1, false), (double[]){4, 5, 10, 11}, 4, 0);
    expect_values(tg_argmax(x3, -2), (double[]){2, 2, 2, 2}, 4, 0);
    expect_values(tg_mean_axis(x3, 2, false), (double[]){0.5, 2.5, 4.5, 6.5, 8.5, 10.5}, 6,
                  1e-15);
    tg_tape_reset();
    tg_free(x);
}

/* max with dim: the gradient goes to the first maximal element only (PyTorch's choice). */
static void test_max_ties(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(
        tg_from_data(TG_F64, TG_SHAPE(2, 3), (double[]){1, 3, 3, 2, 2, 1}), true);
    tg_tensor *m = tg_max_axis(x, 1, false);
    expect_values(m, (double[]){3, 2}, 2, 0);
    tg_backward(tg_sum(m));
    expect_values(x->grad, (double[]){0, 1, 0, 1, 0, 0}, 6, 0);
    expect_values(tg_argmax(x, 1), (double[]){1, 0}, 2, 0);
    tg_tape_reset();
    tg_free(x);
}

static void test_argmax_nan_and_not_recorded(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(
        tg_from_data(TG_F32, TG_SHAPE(1, 3), (float[]){1, NAN, 3}), false);
    expect_values(tg_argmax(x, 1), (double[]){1}, 1, 0); /* NaN is the maximum, as in PyTorch */
    assert_true(isnan(tg_item(tg_max_axis(x, 1, false))));
    tg_set_requires_grad(x, true);
    size_t before = tg_tape_length();
    tg_tensor *a = tg_argmax(x, 0);
    assert_false(a->requires_grad);
    assert_int_equal(tg_tape_length(), before);
    tg_tape_reset();
    tg_free(x);
}

/* float32 forward against the float64 result on a larger random tensor. */
static void test_float32_forward(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_tensor *x = tg_rand_normal(TG_F64, TG_SHAPE(7, 33, 5), 0, 1, &rng);
    tg_tensor *x32 = tg_to_dtype(x, TG_F32);
    for (int axis = -3; axis < 3; axis++) {
        tg_tensor *pairs[][2] = {
            {tg_sum_axis(x, axis, false), tg_sum_axis(x32, axis, false)},
            {tg_mean_axis(x, axis, true), tg_mean_axis(x32, axis, true)},
            {tg_max_axis(x, axis, false), tg_max_axis(x32, axis, false)},
        };
        for (int p = 0; p < 3; p++) {
            assert_int_equal(pairs[p][1]->dtype, TG_F32);
            for (int64_t i = 0; i < pairs[p][0]->numel; i++)
                assert_true(fabs(tg_get_flat(pairs[p][0], i) - tg_get_flat(pairs[p][1], i)) <
                            1e-5);
        }
        tg_tape_reset();
    }
    assert_true(fabs(tg_item(tg_sum(x)) - tg_item(tg_sum(x32))) < 1e-4);
    tg_tape_reset();
    tg_free(x);
    tg_free(x32);
}

typedef struct {
    tg_tensor *(*op)(tg_tensor *, int, bool);
    int axis;
    bool keepdim;
} axis_case;

static tg_tensor *apply_axis(tg_tensor *x, void *ctx)
{
    axis_case *c = ctx;
    return c->op(x, c->axis, c->keepdim);
}

static tg_tensor *apply_sum(tg_tensor *x, void *ctx) { return (void)ctx, tg_sum(x); }
static tg_tensor *apply_mean(tg_tensor *x, void *ctx) { return (void)ctx, tg_mean(x); }

static void test_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    struct {
        int ndim;
        int64_t shape[3];
    } shapes[] = {{1, {5}}, {2, {3, 4}}, {2, {1, 4}}, {3, {2, 1, 3}}, {3, {2, 3, 2}}, {2, {1, 1}}};
    struct {
        tg_tensor *(*op)(tg_tensor *, int, bool);
        const char *name;
    } ops[] = {{tg_sum_axis, "tg_sum_axis"}, {tg_mean_axis, "tg_mean_axis"},
               {tg_max_axis, "tg_max_axis"}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        tg_tensor *x = param_f64(&rng, shapes[s].ndim, shapes[s].shape);
        expect_gradcheck_op(apply_sum, NULL, x, "tg_sum");
        expect_gradcheck_op(apply_mean, NULL, x, "tg_mean");
        for (size_t o = 0; o < 3; o++)
            for (int axis = -shapes[s].ndim; axis < shapes[s].ndim; axis++)
                for (int keep = 0; keep < 2; keep++) {
                    axis_case c = {ops[o].op, axis, keep};
                    expect_gradcheck_op(apply_axis, &c, x, "%s axis=%d keepdim=%d", ops[o].name,
                                        axis, keep);
                }
        tg_free(x);
    }
}

/* Size-0 tensors: reductions of nothing still build a tape that backward can walk. */
static void test_gradcheck_empty(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 12);
    tg_tensor *x = param_f64(&rng, TG_SHAPE(2, 0, 3));
    for (int keep = 0; keep < 2; keep++) {
        axis_case c = {tg_sum_axis, 1, keep};
        expect_gradcheck_op(apply_axis, &c, x, "tg_sum_axis axis=1 keepdim=%d", keep);
        c.op = tg_mean_axis;
        c.axis = -1;
        expect_gradcheck_op(apply_axis, &c, x, "tg_mean_axis axis=-1 keepdim=%d", keep);
    }
    expect_gradcheck_op(apply_sum, NULL, x, "tg_sum");
    tg_free(x);
}

static void test_errors(void **state)
{
    (void)state;
    tg_tensor *x = tg_zeros(TG_F64, TG_SHAPE(2, 3));
    tg_tensor *e = tg_zeros(TG_F64, TG_SHAPE(2, 0));
    tg_tensor *i = tg_zeros(TG_I32, TG_SHAPE(2, 3));
    EXPECT_ERROR("tg_sum_axis", tg_sum_axis(x, 2, false));
    EXPECT_ERROR("tg_mean_axis", tg_mean_axis(x, -3, true));
    EXPECT_ERROR("tg_max_axis", tg_max_axis(e, 1, false));
    EXPECT_ERROR("[2, 0]", tg_max_axis(e, 1, false));
    EXPECT_ERROR("tg_argmax", tg_argmax(e, -1));
    EXPECT_ERROR("tg_sum", tg_sum(i));
    EXPECT_ERROR("tg_mean", tg_mean(NULL));
    tg_free(x);
    tg_free(e);
    tg_free(i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_mean_all),
        cmocka_unit_test(test_sum_mean_empty),
        cmocka_unit_test(test_axis_values),
        cmocka_unit_test(test_axis_values_rank3),
        cmocka_unit_test(test_max_ties),
        cmocka_unit_test(test_argmax_nan_and_not_recorded),
        cmocka_unit_test(test_float32_forward),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_gradcheck_empty),
        cmocka_unit_test(test_errors),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    check_summary();
    return failed;
}
