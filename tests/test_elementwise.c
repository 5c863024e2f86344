/* Elementwise ops: forward values, broadcasting, and float64 gradient checks of every op. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>
#include "tapegrad.h"
#include "tests/check.h"

typedef tg_tensor *(*binary_fn)(tg_tensor *, tg_tensor *);
typedef tg_tensor *(*unary_fn)(tg_tensor *);

static const struct { const char *name; binary_fn fn; } binaries[] = {
    {"add", tg_add}, {"sub", tg_sub}, {"mul", tg_mul},
    {"div", tg_div}, {"maximum", tg_maximum}, {"minimum", tg_minimum},
};

/* Weighting the output by fixed random numbers makes every output element matter differently,
 * so a gradient routed to the wrong element cannot pass. */
typedef struct { binary_fn bin; unary_fn un; tg_tensor *weights; } ctx_t;

static tg_tensor *weighted_sum(tg_tensor *y, ctx_t *c)
{
    if (!c->weights) c->weights = tg_rand_normal(TG_F64, y->ndim, y->shape, 0, 1, NULL);
    return tg_sum(tg_mul(y, c->weights));
}

static tg_tensor *f_binary(tg_tensor **in, int n, void *p) { (void)n; return weighted_sum(((ctx_t *)p)->bin(in[0], in[1]), p); }
static tg_tensor *f_unary(tg_tensor **in, int n, void *p) { (void)n; return weighted_sum(((ctx_t *)p)->un(in[0]), p); }

static tg_tensor *param(int ndim, const int64_t *shape, double lo, double hi)
{
    return tg_set_requires_grad(tg_rand_uniform(TG_F64, ndim, shape, lo, hi, NULL), true);
}

static void check_binary_shapes(int nda, const int64_t *sa, int ndb, const int64_t *sb)
{
    for (size_t k = 0; k < sizeof binaries / sizeof *binaries; k++) {
        /* b in [0.5, 2] keeps div away from 0; distinct ranges avoid max/min ties */
        tg_tensor *in[2] = {param(nda, sa, -2, 2), param(ndb, sb, 0.5, 2)};
        ctx_t c = {.bin = binaries[k].fn};
        char sa_str[64], sb_str[64];
        expect_gradcheck(f_binary, in, 2, &c, "tg_%s %s with %s", binaries[k].name,
                         tg_shape_str(in[0], sa_str, sizeof sa_str),
                         tg_shape_str(in[1], sb_str, sizeof sb_str));
        tg_free(in[0]), tg_free(in[1]), tg_free(c.weights);
    }
}

static void test_binary_same_shape(void **s) { (void)s; check_binary_shapes(TG_SHAPE(3, 4), TG_SHAPE(3, 4)); }
static void test_binary_broadcast_row(void **s) { (void)s; check_binary_shapes(TG_SHAPE(3, 4), TG_SHAPE(4)); }
static void test_binary_broadcast_left(void **s) { (void)s; check_binary_shapes(TG_SHAPE(4), TG_SHAPE(3, 4)); }
static void test_binary_broadcast_both(void **s) { (void)s; check_binary_shapes(TG_SHAPE(3, 1), TG_SHAPE(1, 4)); }
static void test_binary_broadcast_rank3(void **s) { (void)s; check_binary_shapes(TG_SHAPE(2, 1, 3), TG_SHAPE(4, 1)); }
static void test_binary_scalar(void **s) { (void)s; check_binary_shapes(TG_SHAPE(2, 3), 0, NULL); }

static void test_binary_size_zero(void **s)
{
    (void)s;
    tg_tensor *a = tg_zeros(TG_F64, TG_SHAPE(0, 3)), *b = tg_ones(TG_F64, TG_SHAPE(3));
    tg_tensor *y = tg_add(a, b);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], 0);
    assert_int_equal(y->numel, 0);
    tg_free(a), tg_free(b);
    tg_tape_reset();
}

static void test_binary_forward_values(void **s)
{
    (void)s;
    tg_tensor *a = tg_from_data(TG_F32, TG_SHAPE(2, 2), (float[]){1, 2, 3, 4});
    tg_tensor *b = tg_from_data(TG_F32, TG_SHAPE(2), (float[]){10, 1});
    const float expect[][4] = {{11, 3, 13, 5}, {-9, 1, -7, 3}, {10, 2, 30, 4},
                               {0.1f, 2, 0.3f, 4}, {10, 2, 10, 4}, {1, 1, 3, 1}};
    for (int k = 0; k < 6; k++) {
        tg_tensor *y = binaries[k].fn(a, b);
        for (int i = 0; i < 4; i++) assert_near(tg_get_flat(y, i), expect[k][i], 1e-6);
    }
    tg_free(a), tg_free(b);
    tg_tape_reset();
}


/* A NaN propagates as in PyTorch (relu(NaN) = NaN, maximum(NaN, 1) = NaN), in float32 and float64:
 * a diverged run must not look finite. */
static void test_nan_propagates(void **s)
{
    (void)s;
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(3), (double[]){NAN, -1, 2});
        tg_tensor *xd = tg_to_dtype(x, dt), *one = tg_full(dt, TG_SHAPE(3), 1);
        tg_tensor *r = tg_relu(xd), *mx = tg_maximum(xd, one), *mn = tg_minimum(one, xd);
        tg_tensor *mx2 = tg_maximum(one, xd), *mn2 = tg_minimum(xd, one);
        assert_true(isnan(tg_get_flat(r, 0)));
        assert_true(isnan(tg_get_flat(mx, 0)) && isnan(tg_get_flat(mx2, 0)));
        assert_true(isnan(tg_get_flat(mn, 0)) && isnan(tg_get_flat(mn2, 0)));
        assert_near(tg_get_flat(r, 1), 0, 0);
        assert_near(tg_get_flat(mx, 1), 1, 0);
        assert_near(tg_get_flat(mn, 2), 1, 0);
        tg_tape_reset();
        tg_free(x), tg_free(xd), tg_free(one);
    }
}

static void test_maximum_tie_splits_gradient(void **s)
{
    (void)s;
    tg_tensor *a = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(1), 2.0), true);
    tg_tensor *b = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(1), 2.0), true);
    tg_backward(tg_sum(tg_maximum(a, b)));
    assert_near(tg_item(a->grad), 0.5, 0);
    assert_near(tg_item(b->grad), 0.5, 0);
    tg_free(a), tg_free(b);
    tg_tape_reset();
}

static void test_broadcast_mismatch_names_op_and_shapes(void **s)
{
    (void)s;
    tg_tensor *a = tg_ones(TG_F32, TG_SHAPE(3, 4)), *b = tg_ones(TG_F32, TG_SHAPE(3));
    EXPECT_ERROR("tg_mul: shapes [3, 4] f32 and [3] f32 do not broadcast", tg_mul(a, b));
    tg_free(a), tg_free(b);
}

static tg_tensor *sq_scalar(tg_tensor *x) { return tg_mul_scalar(tg_add_scalar(x, 0.5), -3.0); }
static tg_tensor *pow3(tg_tensor *x) { return tg_pow_scalar(x, 3.0); }
static tg_tensor *pow_half(tg_tensor *x) { return tg_pow_scalar(x, 0.5); }
static tg_tensor *pow_neg(tg_tensor *x) { return tg_pow_scalar(x, -1.5); }

static const struct { const char *name; unary_fn fn; double lo, hi; } unaries[] = {
    {"neg", tg_neg, -2, 2},          {"add/mul_scalar", sq_scalar, -2, 2},
    {"exp", tg_exp, -2, 2},          {"log", tg_log, 0.2, 3},
    {"sqrt", tg_sqrt, 0.2, 3},       {"pow_scalar 3", pow3, -2, 2},
    {"pow_scalar 0.5", pow_half, 0.2, 3}, {"pow_scalar -1.5", pow_neg, 0.2, 3},
    {"square", tg_square, -2, 2},    {"abs", tg_abs, -2, 2},
    {"relu", tg_relu, -2, 2},        {"tanh", tg_tanh, -3, 3},
    {"sigmoid", tg_sigmoid, -5, 5},
    {"sin", tg_sin, -4, 4},
    {"cos", tg_cos, -4, 4},
};

/* un(x) + tanh(x): two backwards write x's gradient, the first overwriting, the second adding */
static tg_tensor *f_unary_fan_out(tg_tensor **in, int n, void *p)
{
    (void)n;
    return weighted_sum(tg_add(((ctx_t *)p)->un(in[0]), tg_tanh(in[0])), p);
}

static void test_unary_gradients(void **s)
{
    (void)s;
    const int64_t shapes[][3] = {{2, 3, 4}, {1, 1, 1}};
    for (size_t k = 0; k < sizeof unaries / sizeof *unaries; k++) {
        for (int sh = 0; sh < 2; sh++) {
            tg_tensor *x = param(3, shapes[sh], unaries[k].lo, unaries[k].hi);
            ctx_t c = {.un = unaries[k].fn};
            char shape[64];
            expect_gradcheck(f_unary, &x, 1, &c, "tg_%s %s", unaries[k].name,
                             tg_shape_str(x, shape, sizeof shape));
            expect_lazy_grads(f_unary, &x, 1, &c, unaries[k].name);
            tg_free(c.weights);
            c.weights = NULL;
            expect_lazy_grads(f_unary_fan_out, &x, 1, &c, "fan-out with tg_tanh");
            tg_free(x), tg_free(c.weights);
        }
    }
}

static void test_unary_forward_values(void **s)
{
    (void)s;
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(3), (double[]){-1, 0, 2});
    struct { unary_fn fn; double y[3]; } cases[] = {
        {tg_relu, {0, 0, 2}}, {tg_abs, {1, 0, 2}}, {tg_square, {1, 0, 4}}, {tg_neg, {1, 0, -2}},
        {tg_exp, {exp(-1), 1, exp(2)}}, {tg_tanh, {tanh(-1), 0, tanh(2)}},
        {tg_sigmoid, {1 / (1 + exp(1)), 0.5, 1 / (1 + exp(-2))}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tg_tensor *y = cases[k].fn(x);
        for (int i = 0; i < 3; i++) assert_near(tg_get_flat(y, i), cases[k].y[i], 1e-15);
    }
    tg_free(x);
    tg_tape_reset();
}

static void test_sigmoid_is_stable_at_extremes(void **s)
{
    (void)s;
    tg_tensor *x = tg_set_requires_grad(tg_from_data(TG_F32, TG_SHAPE(2), (float[]){-1000, 1000}), true);
    tg_tensor *y = tg_sigmoid(x);
    assert_near(tg_get_flat(y, 0), 0, 0);
    assert_near(tg_get_flat(y, 1), 1, 0);
    tg_backward(tg_sum(y));
    assert_true(isfinite(tg_get_flat(x->grad, 0)) && isfinite(tg_get_flat(x->grad, 1)));
    tg_free(x);
    tg_tape_reset();
}

/* Operands of one shape take the fast path of the broadcast (no index maps); the same values
 * with a leading axis of 1 take the general one. Values and both gradients must agree. */
static void test_same_shape_path_matches_broadcast_path(void **s)
{
    (void)s;
    for (size_t k = 0; k < sizeof binaries / sizeof *binaries; k++) {
        tg_tensor *a = param(TG_SHAPE(3, 4), -2, 2), *b = param(TG_SHAPE(3, 4), 0.5, 2);
        tg_tensor *b1 = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(1, 3, 4), b->data), true);
        tg_tensor *w = tg_rand_normal(TG_F64, TG_SHAPE(3, 4), 0, 1, NULL);
        tg_tensor *same = binaries[k].fn(a, b), *general = binaries[k].fn(a, b1);
        assert_int_equal(same->ndim, 2);
        assert_int_equal(general->ndim, 3);
        for (int64_t i = 0; i < 12; i++)
            assert_near(tg_get_flat(same, i), tg_get_flat(general, i), 0);
        tg_backward(tg_sum(tg_mul(same, w)));
        tg_tensor *ga = tg_clone(a->grad);
        tg_zero_grad(a);
        tg_backward(tg_sum(tg_mul(tg_reshape(general, TG_SHAPE(3, 4)), w)));
        double reached = 0;
        for (int64_t i = 0; i < 12; i++) {
            assert_near(tg_get_flat(a->grad, i), tg_get_flat(ga, i), 0);
            assert_near(tg_get_flat(b1->grad, i), tg_get_flat(b->grad, i), 0);
            reached += fabs(tg_get_flat(ga, i)) + fabs(tg_get_flat(b->grad, i));
        }
        assert_true(reached > 0);
        tg_tape_reset();
        tg_free(a), tg_free(b), tg_free(b1), tg_free(w), tg_free(ga);
    }
}

/* Same rank and element count but other sizes: not the same shape, so no fast path. */
static void test_same_numel_other_shape_does_not_broadcast(void **s)
{
    (void)s;
    tg_tensor *a = tg_ones(TG_F32, TG_SHAPE(3, 4)), *b = tg_ones(TG_F32, TG_SHAPE(4, 3));
    tg_tensor *c = tg_ones(TG_F32, TG_SHAPE(2, 6));
    EXPECT_ERROR("tg_add: shapes [3, 4] f32 and [4, 3] f32 do not broadcast", tg_add(a, b));
    EXPECT_ERROR("tg_mul: shapes [2, 6] f32 and [3, 4] f32 do not broadcast", tg_mul(c, a));
    tg_free(a), tg_free(b), tg_free(c);
}

/* float32 tanh is computed without libm (ops/unary.c): within 1.5 ulp of the exact value on a
 * sweep of float bit patterns over [0, 45] (every 61st) and their negatives, odd, and exact
 * at the special values. */
static double ulps_from(float got, double exact)
{
    float nearest = (float)exact;
    double ulp = nextafterf(fabsf(nearest), INFINITY) - fabsf(nearest);
    return fabs((double)got - exact) / ulp;
}

static void test_tanh_float32_accuracy(void **s)
{
    (void)s;
    enum { N = 1 << 20 };
    const uint32_t last = 0x42340000u; /* 45.0f */
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(2 * N));
    float *xs = x->data;
    for (uint32_t i = 0; i < N; i++) {
        uint32_t u = (uint32_t)((uint64_t)i * last / N);
        float v;
        memcpy(&v, &u, sizeof v);
        xs[2 * i] = v;
        xs[2 * i + 1] = -v;
    }
    tg_tensor *y = tg_tanh(x);
    const float *ys = y->data;
    double worst = 0;
    for (int64_t i = 0; i < 2 * N; i++) {
        double e = ulps_from(ys[i], tanh((double)xs[i]));
        worst = e > worst ? e : worst;
        if (i % 2) assert_true(ys[i] == -ys[i - 1]);
    }
    assert_true(worst <= 1.5);
    tg_tensor *sp = tg_from_data(TG_F32, TG_SHAPE(6),
                                 (float[]){0.0f, -0.0f, INFINITY, -INFINITY, NAN, 100});
    tg_tensor *t = tg_tanh(sp);
    const float *ts = t->data;
    assert_true(ts[0] == 0 && !signbit(ts[0]) && ts[1] == 0 && signbit(ts[1]));
    assert_true(ts[2] == 1 && ts[3] == -1 && isnan(ts[4]) && ts[5] == 1);
    tg_free(x), tg_free(sp);
    tg_tape_reset();
}

static void test_float32_matches_float64(void **s)
{
    (void)s;
    tg_tensor *x64 = tg_rand_uniform(TG_F64, TG_SHAPE(5, 7), 0.2, 2, NULL);
    tg_tensor *x32 = tg_to_dtype(x64, TG_F32);
    for (size_t k = 0; k < sizeof unaries / sizeof *unaries; k++) {
        tg_tensor *a = unaries[k].fn(x64), *b = unaries[k].fn(x32);
        for (int64_t i = 0; i < a->numel; i++)
            assert_near(tg_get_flat(b, i), tg_get_flat(a, i), 1e-5 * (1 + fabs(tg_get_flat(a, i))));
    }
    tg_free(x64), tg_free(x32);
    tg_tape_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_same_shape),
        cmocka_unit_test(test_binary_broadcast_row),
        cmocka_unit_test(test_binary_broadcast_left),
        cmocka_unit_test(test_binary_broadcast_both),
        cmocka_unit_test(test_binary_broadcast_rank3),
        cmocka_unit_test(test_binary_scalar),
        cmocka_unit_test(test_binary_size_zero),
        cmocka_unit_test(test_binary_forward_values),
        cmocka_unit_test(test_maximum_tie_splits_gradient),
        cmocka_unit_test(test_nan_propagates),
        cmocka_unit_test(test_broadcast_mismatch_names_op_and_shapes),
        cmocka_unit_test(test_unary_gradients),
        cmocka_unit_test(test_unary_forward_values),
        cmocka_unit_test(test_sigmoid_is_stable_at_extremes),
        cmocka_unit_test(test_float32_matches_float64),
        cmocka_unit_test(test_same_shape_path_matches_broadcast_path),
        cmocka_unit_test(test_same_numel_other_shape_does_not_broadcast),
        cmocka_unit_test(test_tanh_float32_accuracy),
    };
    int failed = cmocka_run_group_tests_name("elementwise", tests, NULL, NULL);
    check_summary();
    return failed;
}
