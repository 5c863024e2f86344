/* Inverted dropout: identity (the same tensor) in evaluation and at p = 0, the fraction of zeros
 * close to p, survivors scaled by 1/(1-p), one seed -> one mask, the gradient equal to the
 * mask's scaling (by hand and against finite differences with a re-seeded mask), and p outside
 * [0, 1) rejected. The mask draws 16 bits per element (four per 64-bit draw); tg_relu_dropout is
 * the same as tg_dropout(tg_relu(x)), values, gradients and draws. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tapegrad.h"
#include "check.h"

static void test_identity(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_ones(TG_F32, TG_SHAPE(4, 5)), true);
    size_t before = tg_tape_length();
    assert_ptr_equal(tg_dropout(x, 0.5, false, NULL), x);
    assert_ptr_equal(tg_dropout(x, 0.0, true, NULL), x);
    assert_int_equal(tg_tape_length(), before);
    tg_free(x);
}

/* Fraction of zeros within 5 standard deviations of p; survivors exactly x/(1-p). */
static void test_fraction_and_scaling(void **state)
{
    (void)state;
    const int64_t n = 100000;
    double ps[] = {0.1, 0.5, 0.9};
    for (int k = 0; k < 6; k++) {
        double p = ps[k % 3];
        tg_rng rng;
        tg_rng_seed(&rng, 100 + (uint64_t)k);
        tg_tensor *x = tg_rand_uniform(k < 3 ? TG_F64 : TG_F32, TG_SHAPE(n / 100, 100), 1, 2,
                                       &rng);
        tg_tensor *y = tg_dropout(x, p, true, &rng);
        assert_int_equal(y->dtype, x->dtype);
        assert_true(tg_same_shape(x, y));
        int64_t zeros = 0;
        for (int64_t i = 0; i < n; i++) {
            double v = tg_get_flat(y, i), expect = tg_get_flat(x, i) / (1 - p);
            if (v == 0) zeros++;
            else assert_true(fabs(v - expect) <= 1e-6 * expect);
        }
        double frac = (double)zeros / (double)n, sd = sqrt(p * (1 - p) / (double)n);
        if (fabs(frac - p) > 5 * sd) fail_msg("p = %g: fraction of zeros %g", p, frac);
        tg_tape_reset();
        tg_free(x);
    }
}

/* A p within 2^-17 of 1 rounds to a threshold of 2^16: every element would be dropped while
 * survivors are scaled by 1/(1 - p). Some must survive (about n / 2^16), for both ops. */
static void test_p_just_below_one_keeps_some(void **state)
{
    (void)state;
    const int64_t n = 1 << 20;
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(n));
    for (int relu = 0; relu < 2; relu++) {
        tg_rng rng;
        tg_rng_seed(&rng, 11);
        tg_tensor *y = relu ? tg_relu_dropout(x, 0.999999, true, &rng)
                            : tg_dropout(x, 0.999999, true, &rng);
        int64_t kept = 0;
        for (int64_t i = 0; i < n; i++) kept += tg_get_flat(y, i) != 0;
        if (kept < 2 || kept > 64) fail_msg("relu %d: %lld of %lld kept", relu, (long long)kept,
                                            (long long)n);
        tg_tape_reset();
    }
    tg_free(x);
}

static void test_same_seed_same_mask(void **state)
{
    (void)state;
    tg_tensor *x = tg_ones(TG_F64, TG_SHAPE(1000));
    tg_rng a, b, c;
    tg_rng_seed(&a, 7);
    tg_rng_seed(&b, 7);
    tg_rng_seed(&c, 8);
    tg_tensor *ya = tg_dropout(x, 0.5, true, &a), *yb = tg_dropout(x, 0.5, true, &b);
    tg_tensor *yc = tg_dropout(x, 0.5, true, &c);
    size_t bytes = (size_t)x->numel * sizeof(double);
    assert_memory_equal(ya->data, yb->data, bytes);
    assert_memory_not_equal(ya->data, yc->data, bytes);
    /* NULL means the global generator: the same seed gives the same mask there too */
    tg_manual_seed(7);
    tg_tensor *yg = tg_dropout(x, 0.5, true, NULL);
    assert_memory_equal(ya->data, yg->data, bytes);
    tg_tape_reset();
    tg_free(x);
}

/* backward of Σ dropout(x): 1/(1-p) where kept, 0 where dropped, and accumulation (+=). */
static void test_gradient_is_mask_scaling(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        tg_tensor *x = tg_set_requires_grad(tg_full(dt, TG_SHAPE(8, 16), 3.0), true);
        tg_rng rng;
        tg_rng_seed(&rng, 5);
        tg_tensor *y = tg_dropout(x, 0.25, true, &rng);
        tg_backward(tg_sum(y));
        tg_backward(tg_sum(y)); /* a second backward adds to x's gradient */
        int64_t kept = 0;
        for (int64_t i = 0; i < x->numel; i++) {
            bool keep = tg_get_flat(y, i) != 0;
            kept += keep;
            assert_true(fabs(tg_get_flat(x->grad, i) - (keep ? 2 / 0.75 : 0)) < 1e-6);
            assert_true(fabs(tg_get_flat(y, i) - (keep ? 3 / 0.75 : 0)) < 1e-6);
        }
        assert_true(kept > 0 && kept < x->numel);
        tg_tape_reset();
        tg_free(x);
    }
}

/* The mask is re-drawn from the same seed at every evaluation, so f is a fixed linear map. */
static tg_tensor *apply_dropout(tg_tensor *x, void *ctx)
{
    tg_rng rng;
    tg_rng_seed(&rng, 99);
    return tg_dropout(x, *(double *)ctx, true, &rng);
}

static void test_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 6);
    double ps[] = {0.2, 0.5, 0.0};
    tg_tensor *xs[] = {param_f64(&rng, TG_SHAPE(4, 5)), param_f64(&rng, TG_SHAPE(3, 1, 2)),
                       param_f64(&rng, TG_SHAPE(0, 3))};
    for (size_t k = 0; k < 3; k++) {
        for (size_t j = 0; j < 3; j++)
            expect_gradcheck_op(apply_dropout, &ps[j], xs[k], "tg_dropout p=%g", ps[j]);
        tg_free(xs[k]);
    }
}

/* Four elements per draw: the first n elements of a longer mask are the mask of n elements (the
 * tail of a draw is dropped), and a mask of n elements advances the generator ceil(n/4) draws. */
static void test_mask_draws(void **state)
{
    (void)state;
    tg_tensor *x7 = tg_ones(TG_F64, TG_SHAPE(7)), *x8 = tg_ones(TG_F64, TG_SHAPE(8));
    tg_rng a, b;
    tg_rng_seed(&a, 11);
    tg_rng_seed(&b, 11);
    tg_tensor *y7 = tg_dropout(x7, 0.5, true, &a), *y8 = tg_dropout(x8, 0.5, true, &b);
    assert_memory_equal(y7->data, y8->data, 7 * sizeof(double));
    assert_memory_equal(&a, &b, sizeof a);
    tg_rng c;
    tg_rng_seed(&c, 11);
    tg_rng_next(&c), tg_rng_next(&c);
    assert_memory_equal(&a, &c, sizeof a);
    tg_tape_reset();
    tg_free(x7), tg_free(x8);
}

/* p not a multiple of 2^-16 (0.3): the keep rate is round(0.3·2^16)/2^16 = 0.300003 away from p
 * by far less than the 5-sd band of 10^6 draws, and the survivors are x/(1-p) exactly as asked. */
static void test_rate_p_not_dyadic(void **state)
{
    (void)state;
    const int64_t n = 1000000;
    tg_rng rng;
    tg_rng_seed(&rng, 12);
    tg_tensor *x = tg_full(TG_F32, TG_SHAPE(n), 2.0);
    tg_tensor *y = tg_dropout(x, 0.3, true, &rng);
    int64_t zeros = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = ((float *)y->data)[i];
        if (v == 0) zeros++;
        else assert_float_equal(v, 2.0f * (float)(1 / 0.7), 0);
    }
    double frac = (double)zeros / (double)n, sd = sqrt(0.3 * 0.7 / (double)n);
    if (fabs(frac - 0.3) > 5 * sd) fail_msg("fraction of zeros %g for p = 0.3", frac);
    tg_tape_reset();
    tg_free(x);
}

/* tg_relu_dropout(x) == tg_dropout(tg_relu(x)) bit for bit from the same seed, with the same
 * generator state after, and the same gradient; relu alone in evaluation and at p = 0. */
static void test_relu_dropout_is_the_composition(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        tg_rng init, r1, r2;
        tg_rng_seed(&init, 21);
        tg_tensor *x = tg_rand_normal(dt, TG_SHAPE(13, 17), 0, 1, &init);
        tg_set_requires_grad(x, true);
        tg_tensor *w = tg_rand_normal(dt, TG_SHAPE(13, 17), 0, 1, &init);
        tg_rng_seed(&r1, 22);
        tg_rng_seed(&r2, 22);
        tg_tensor *fused = tg_relu_dropout(x, 0.3, true, &r1);
        tg_tensor *plain = tg_dropout(tg_relu(x), 0.3, true, &r2);
        size_t bytes = (size_t)x->numel * tg_dtype_size(dt);
        assert_memory_equal(fused->data, plain->data, bytes);
        assert_memory_equal(&r1, &r2, sizeof r1);
        tg_backward(tg_sum(tg_mul(fused, w)));
        tg_tensor *g_fused = tg_clone(x->grad);
        tg_zero_grad(x);
        tg_backward(tg_sum(tg_mul(plain, w)));
        assert_memory_equal(g_fused->data, x->grad->data, bytes);
        tg_tensor *ev = tg_relu_dropout(x, 0.3, false, &r1), *relu = tg_relu(x);
        assert_memory_equal(ev->data, relu->data, bytes);
        assert_memory_equal(tg_relu_dropout(x, 0, true, &r1)->data, relu->data, bytes);
        assert_memory_equal(&r1, &r2, sizeof r1); /* no draws when nothing is dropped */
        tg_tape_reset();
        tg_free(g_fused), tg_free(x), tg_free(w);
    }
}

static tg_tensor *apply_relu_dropout(tg_tensor *x, void *ctx)
{
    tg_rng rng;
    tg_rng_seed(&rng, 98);
    return tg_relu_dropout(x, *(double *)ctx, true, &rng);
}

typedef struct { double p; bool fused; tg_tensor *weights; } lazy_dropout_ctx;

/* Σ relu_dropout(x)·R, or dropout(relu(x)): the same mask every call (seeded here) */
static tg_tensor *f_lazy_dropout(tg_tensor **in, int n, void *ctx)
{
    (void)n;
    lazy_dropout_ctx *c = ctx;
    tg_rng rng;
    tg_rng_seed(&rng, 98);
    tg_tensor *y = c->fused ? tg_relu_dropout(in[0], c->p, true, &rng)
                            : tg_dropout(tg_relu(in[0]), c->p, true, &rng);
    if (!c->weights) c->weights = tg_rand_normal(y->dtype, y->ndim, y->shape, 0, 1, NULL);
    return tg_sum(tg_mul(y, c->weights));
}

/* Lazy zero_grad: the dropout backwards overwrite a gradient they write first. */
static void test_dropout_lazy_zero_grad(void **state)
{
    (void)state;
    for (int dt = 0; dt < 2; dt++)
        for (int fused = 0; fused < 2; fused++) {
            tg_dtype d = dt ? TG_F64 : TG_F32;
            tg_tensor *x = tg_set_requires_grad(tg_rand_normal(d, TG_SHAPE(6, 7), 0, 1, NULL),
                                                true);
            lazy_dropout_ctx c = {.p = 0.3, .fused = fused};
            expect_lazy_grads(f_lazy_dropout, &x, 1, &c,
                              fused ? "tg_relu_dropout" : "tg_dropout(tg_relu)");
            tg_free(c.weights), tg_free(x);
        }
}

static void test_relu_dropout_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    double ps[] = {0.3, 0.5, 0.0};
    tg_tensor *xs[] = {param_f64(&rng, TG_SHAPE(4, 5)), param_f64(&rng, TG_SHAPE(3, 1, 3))};
    for (size_t k = 0; k < 2; k++) {
        for (size_t j = 0; j < 3; j++)
            expect_gradcheck_op(apply_relu_dropout, &ps[j], xs[k], "tg_relu_dropout p=%g", ps[j]);
        tg_free(xs[k]);
    }
}

static void test_errors(void **state)
{
    (void)state;
    tg_tensor *x = tg_ones(TG_F64, TG_SHAPE(3));
    tg_tensor *i = tg_zeros(TG_I32, TG_SHAPE(3));
    EXPECT_ERROR("tg_dropout: p = 1", tg_dropout(x, 1.0, true, NULL));
    EXPECT_ERROR("tg_dropout: p = -0.1 is outside [0, 1)", tg_dropout(x, -0.1, true, NULL));
    EXPECT_ERROR("tg_dropout: p = nan is outside", tg_dropout(x, NAN, true, NULL));
    /* wrong even in evaluation */
    EXPECT_ERROR("tg_dropout: p = 1.5 is outside", tg_dropout(x, 1.5, false, NULL));
    EXPECT_ERROR("tg_dropout: expected a float32 or float64 tensor, got [3] i32",
                 tg_dropout(i, 0.5, true, NULL));
    EXPECT_ERROR("tg_relu_dropout: p = 1 is outside [0, 1)", tg_relu_dropout(x, 1.0, true, NULL));
    EXPECT_ERROR("tg_relu_dropout: p = nan is outside", tg_relu_dropout(x, NAN, false, NULL));
    EXPECT_ERROR("tg_relu_dropout: expected a float32 or float64 tensor, got [3] i32",
                 tg_relu_dropout(i, 0.5, true, NULL));
    tg_free(x);
    tg_free(i);
}

/* The mask follows the documented lane rule exactly: element 4j + k is kept when lane k (16 bits)
 * of draw j is >= round(p·2^16). p is set from an actual lane u of the stream: (u - 0.4)/2^16
 * makes the threshold u (a comparison > instead of >= drops that element), (u + 0.6)/2^16 makes
 * it u + 1 (a truncated threshold u keeps it). Element 1000 of 1001 is a block's last, partial
 * draw; element 997 is inside the four-lane loop. */
static void test_mask_lane_rule(void **state)
{
    (void)state;
    enum { N = 1001 };
    const int64_t targets[] = {997, 1000};
    const double offsets[] = {-0.4, 0.6};
    for (int c = 0; c < 8; c++) {
        bool fused = c & 1;
        int64_t target = targets[(c >> 1) & 1];
        tg_tensor *x = tg_ones(TG_F64, TG_SHAPE(N));
        tg_rng rng, copy;
        tg_rng_seed(&rng, 77 + (uint64_t)c);
        copy = rng;
        uint64_t draws[(N + 3) / 4];
        for (int64_t j = 0; j < (N + 3) / 4; j++) draws[j] = tg_rng_next(&copy);
        uint32_t u = (uint32_t)((draws[target / 4] >> (16 * (target % 4))) & 0xffff);
        double p = ((double)u + offsets[c >> 2]) / 65536.0;
        if (p < 0 || p >= 1) p = 0.5;
        uint32_t threshold = (uint32_t)lround(p * 65536.0);
        tg_tensor *y = fused ? tg_relu_dropout(x, p, true, &rng) : tg_dropout(x, p, true, &rng);
        for (int64_t i = 0; i < N; i++) {
            bool keep = ((draws[i / 4] >> (16 * (i % 4))) & 0xffff) >= threshold;
            if ((tg_get_flat(y, i) != 0) != keep)
                fail_msg("%s, element %lld (p = %.9g): %s, the lane rule says %s",
                         fused ? "tg_relu_dropout" : "tg_dropout", (long long)i, p,
                         tg_get_flat(y, i) != 0 ? "kept" : "dropped", keep ? "keep" : "drop");
        }
        assert_memory_equal(&rng, &copy, sizeof rng);   /* a quarter of a draw per element */
        tg_tape_reset();
        tg_free(x);
    }
}

/* Non-finite inputs: a kept NaN stays NaN (as tg_relu's), a kept +Inf stays +Inf, -Inf and -0
 * become 0, a dropped element is 0 whatever it was: the values of tg_dropout(tg_relu(x)). */
static void test_relu_dropout_non_finite(void **state)
{
    (void)state;
    const double specials[] = {NAN, INFINITY, -INFINITY, -0.0, 0.0, 2.0, -3.0};
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        tg_tensor *x = tg_zeros(dt, TG_SHAPE(700));
        for (int64_t i = 0; i < 700; i++) tg_set_flat(x, i, specials[i % 7]);
        tg_rng r1, r2;
        tg_rng_seed(&r1, 31);
        tg_rng_seed(&r2, 31);
        tg_tensor *fused = tg_relu_dropout(x, 0.4, true, &r1);
        tg_tensor *plain = tg_dropout(tg_relu(x), 0.4, true, &r2);
        int64_t kept_nan = 0;
        for (int64_t i = 0; i < 700; i++) {
            double a = tg_get_flat(fused, i), b = tg_get_flat(plain, i);
            if (isnan(b)) kept_nan++;
            if (!(a == b || (isnan(a) && isnan(b))))
                fail_msg("element %lld, x = %g: %g, composition %g", (long long)i,
                         tg_get_flat(x, i), a, b);
        }
        assert_true(kept_nan > 0);
        tg_tape_reset();
        tg_free(x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_fraction_and_scaling),
        cmocka_unit_test(test_p_just_below_one_keeps_some),
        cmocka_unit_test(test_same_seed_same_mask),
        cmocka_unit_test(test_gradient_is_mask_scaling),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_mask_draws),
        cmocka_unit_test(test_rate_p_not_dyadic),
        cmocka_unit_test(test_mask_lane_rule),
        cmocka_unit_test(test_relu_dropout_non_finite),
        cmocka_unit_test(test_relu_dropout_is_the_composition),
        cmocka_unit_test(test_relu_dropout_gradcheck),
        cmocka_unit_test(test_dropout_lazy_zero_grad),
        cmocka_unit_test(test_errors),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    check_summary();
    return failed;
}
