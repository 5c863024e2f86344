/* softmax and log_softmax: values by hand along the last and a middle axis, stability at
 * ±1000, gradients checked in float64 over every axis (negative too, size-1 and size-0 axes),
 * float32 against float64, and errors naming the op. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tapegrad.h"
#include "check.h"

static void test_values(void **state)
{
    (void)state;
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(2, 3), (double[]){1, 2, 3, 0, 0, 0});
    double z = exp(1) + exp(2) + exp(3);
    double sm[] = {exp(1) / z, exp(2) / z, exp(3) / z, 1. / 3, 1. / 3, 1. / 3};
    double lsm[] = {1 - log(z), 2 - log(z), 3 - log(z), -log(3), -log(3), -log(3)};
    expect_values(tg_softmax(x, -1), sm, 6, 1e-15);
    expect_values(tg_softmax(x, 1), sm, 6, 1e-15);
    expect_values(tg_log_softmax(x, 1), lsm, 6, 1e-15);
    /* along axis 0 each column is a pair (a, b): softmax = (e^a, e^b) / (e^a + e^b) */
    double s0[6];
    for (int j = 0; j < 3; j++) {
        double a = j + 1.0;
        s0[j] = exp(a) / (exp(a) + 1);
        s0[3 + j] = 1 / (exp(a) + 1);
    }
    expect_values(tg_softmax(x, 0), s0, 6, 1e-15);
    for (int i = 0; i < 6; i++) s0[i] = log(s0[i]);
    expect_values(tg_log_softmax(x, -2), s0, 6, 1e-15);
    tg_tape_reset();
    tg_free(x);
}

/* A middle axis ([2, 3, 2], axis 1) against the same softmax computed on the transpose. */
static void test_middle_axis(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *x = tg_rand_normal(TG_F64, TG_SHAPE(2, 3, 2), 0, 2, &rng);
    tg_tensor *s = tg_softmax(x, 1);
    tg_tensor *ref = tg_transpose(tg_softmax(tg_transpose(x, 1, 2), -1), 1, 2);
    for (int64_t i = 0; i < 12; i++)
        assert_true(fabs(tg_get_flat(s, i) - tg_get_flat(ref, i)) < 1e-15);
    for (int64_t o = 0; o < 2; o++) /* every (o, ., j) sums to 1 */
        for (int64_t j = 0; j < 2; j++) {
            double sum = 0;
            for (int64_t k = 0; k < 3; k++) sum += tg_get(s, (int64_t[]){o, k, j});
            assert_true(fabs(sum - 1) < 1e-15);
        }
    tg_tape_reset();
    tg_free(x);
}

/* exp(1000) overflows and exp(-1000) underflows; the max-shifted forms do not care. */
static void test_extreme_logits(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        tg_tensor *x = tg_set_requires_grad(
            tg_from_data(TG_F64, TG_SHAPE(1, 3), (double[]){1000, -1000, 0}), true);
        tg_tensor *xd = dt == TG_F64 ? x : tg_set_requires_grad(tg_to_dtype(x, dt), true);
        expect_values(tg_softmax(xd, -1), (double[]){1, 0, 0}, 3, 1e-7);
        tg_tensor *ls = tg_log_softmax(xd, -1);
        expect_values(ls, (double[]){0, -2000, -1000}, 3, 1e-7);
        /* d/dx Σ_k w_k log_softmax_k = w - softmax·Σw; with w = (0, 1, 0): (-1, 1, 0) */
        tg_tensor *w = tg_from_data(dt, TG_SHAPE(1, 3), dt == TG_F64 ? (void *)(double[]){0, 1, 0}
                                                                   : (void *)(float[]){0, 1, 0});
        tg_backward(tg_sum(tg_mul(ls, w)));
        expect_values(xd->grad, (double[]){-1, 1, 0}, 3, 1e-7);
        tg_zero_grad(xd);
        tg_backward(tg_sum(tg_mul(tg_softmax(xd, -1), w)));
        expect_values(xd->grad, (double[]){0, 0, 0}, 3, 1e-7);
        tg_tape_reset();
        if (xd != x) tg_free(xd);
        tg_free(x);
        tg_free(w);
    }
}

typedef struct {
    bool log;
    int axis;
} sm_arg;

static tg_tensor *apply_softmax(tg_tensor *x, void *ctx)
{
    sm_arg *a = ctx;
    return a->log ? tg_log_softmax(x, a->axis) : tg_softmax(x, a->axis);
}

static void test_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_tensor *xs[] = {param_f64(&rng, TG_SHAPE(5)),       param_f64(&rng, TG_SHAPE(3, 4)),
                       param_f64(&rng, TG_SHAPE(2, 3, 2)), param_f64(&rng, TG_SHAPE(3, 1)),
                       param_f64(&rng, TG_SHAPE(1, 4)),    param_f64(&rng, TG_SHAPE(2, 0, 3))};
    for (size_t k = 0; k < sizeof xs / sizeof *xs; k++) {
        for (int axis = -xs[k]->ndim; axis < xs[k]->ndim; axis++)
            for (int lg = 0; lg < 2; lg++) {
                sm_arg a = {lg, axis};
                expect_gradcheck_op(apply_softmax, &a, xs[k], "%s axis=%d",
                                    lg ? "tg_log_softmax" : "tg_softmax", axis);
            }
        tg_free(xs[k]);
    }
}

/* float32 against float64 on wide rows (large differences between entries). */
static void test_float32_forward(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    tg_tensor *x = tg_rand_normal(TG_F64, TG_SHAPE(6, 50), 0, 10, &rng);
    tg_tensor *x32 = tg_to_dtype(x, TG_F32);
    for (int axis = 0; axis < 2; axis++) {
        tg_tensor *s = tg_softmax(x, axis), *s32 = tg_softmax(x32, axis);
        tg_tensor *l = tg_log_softmax(x, axis), *l32 = tg_log_softmax(x32, axis);
        assert_int_equal(s32->dtype, TG_F32);
        for (int64_t i = 0; i < x->numel; i++) {
            assert_true(fabs(tg_get_flat(s, i) - tg_get_flat(s32, i)) < 1e-6);
            assert_true(fabs(tg_get_flat(l, i) - tg_get_flat(l32, i)) <
                        1e-5 * (1 + fabs(tg_get_flat(l, i))));
        }
        tg_tape_reset();
    }
    tg_free(x);
    tg_free(x32);
}

static void test_errors(void **state)
{
    (void)state;
    tg_tensor *x = tg_zeros(TG_F64, TG_SHAPE(2, 3));
    tg_tensor *i = tg_zeros(TG_I32, TG_SHAPE(2, 3));
    EXPECT_ERROR("tg_softmax", tg_softmax(x, 2));
    EXPECT_ERROR("tg_log_softmax", tg_log_softmax(x, -3));
    EXPECT_ERROR("tg_softmax", tg_softmax(i, 0));
    EXPECT_ERROR("[2, 3] i32", tg_log_softmax(i, 0));
    tg_free(x);
    tg_free(i);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),         cmocka_unit_test(test_middle_axis),
        cmocka_unit_test(test_extreme_logits), cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_float32_forward), cmocka_unit_test(test_errors),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    check_summary();
    return failed;
}
