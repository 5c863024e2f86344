/* Losses: cross-entropy, MSE, multiclass hinge, logistic. Values and gradients by hand (mean and
 * sum), the stable losses at logits of ±1000 in float64 and float32 (finite, exact values and
 * gradients), gradients checked in float64, and errors that name the op (labels out of range with
 * their row, shape mismatches, targets that are not ±1). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tapegrad.h"
#include "check.h"

static double sigmoid(double u) { return 1 / (1 + exp(-u)); }

/* Copies x (f64 data) into a persistent tensor of dtype dt with requires_grad. */
static tg_tensor *leaf(tg_dtype dt, int ndim, const int64_t *shape, const double *x)
{
    tg_tensor *d = tg_from_data(TG_F64, ndim, shape, x);
    tg_tensor *t = tg_to_dtype(d, dt);
    tg_free(d);
    return tg_set_requires_grad(t, true);
}

/* ---- cross-entropy ---- */

static void test_cross_entropy_values(void **state)
{
    (void)state;
    double z = exp(1) + exp(2) + exp(3);
    double rows[] = {log(z) - 3, log(3)};
    double p[] = {exp(1) / z, exp(2) / z, exp(3) / z, 1. / 3, 1. / 3, 1. / 3};
    for (int k = 0; k < 4; k++) {
        tg_dtype dt = k < 2 ? TG_F64 : TG_F32;
        tg_reduction r = k % 2 ? TG_REDUCE_SUM : TG_REDUCE_MEAN;
        double scale = r == TG_REDUCE_SUM ? 1 : 0.5, tol = dt == TG_F64 ? 1e-15 : 1e-6;
        tg_tensor *x = leaf(dt, TG_SHAPE(2, 3), (double[]){1, 2, 3, 1, 1, 1});
        tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(2), (int32_t[]){2, 0});
        tg_tensor *loss = tg_cross_entropy(x, y, r);
        assert_int_equal(loss->ndim, 0);
        assert_int_equal(loss->dtype, dt);
        expect_values(loss, (double[]){(rows[0] + rows[1]) * scale}, 1, tol);
        tg_backward(loss);
        double g[6];
        for (int i = 0; i < 6; i++) g[i] = (p[i] - (i == 2 || i == 3)) * scale;
        expect_values(x->grad, g, 6, tol);
        tg_tape_reset();
        tg_free(x);
        tg_free(y);
    }
}

static void test_cross_entropy_extreme(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        tg_tensor *x = leaf(k ? TG_F32 : TG_F64, TG_SHAPE(3, 2),
                            (double[]){1000, -1000, -1000, 1000, 1000, 1000});
        tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(3), (int32_t[]){1, 1, 0});
        tg_tensor *loss = tg_cross_entropy(x, y, TG_REDUCE_SUM);
        expect_values(loss, (double[]){2000 + log(2)}, 1, 1e-7);
        tg_backward(loss);
        expect_values(x->grad, (double[]){1, -1, 0, 0, -0.5, 0.5}, 6, 1e-7);
        tg_tape_reset();
        tg_free(x);
        tg_free(y);
    }
}

typedef struct {
    const tg_tensor *labels;
    tg_reduction r;
    double margin;
} loss_arg;

static tg_tensor *apply_ce(tg_tensor *x, void *ctx)
{
    loss_arg *a = ctx;
    return tg_cross_entropy(x, a->labels, a->r);
}

static tg_tensor *apply_hinge(tg_tensor *x, void *ctx)
{
    loss_arg *a = ctx;
    return tg_multiclass_hinge(x, a->labels, a->margin, a->r);
}

static tg_tensor *apply_logistic(tg_tensor *x, void *ctx)
{
    loss_arg *a = ctx;
    return tg_logistic_loss(x, a->labels, a->r);
}

static tg_tensor *random_labels(tg_rng *rng, int64_t n, int64_t c)
{
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(n));
    for (int64_t i = 0; i < n; i++) tg_set_flat(y, i, (double)tg_rng_below(rng, (uint64_t)c));
    return y;
}

/* Cross-entropy and hinge on [N, C] shapes including N = 1, C = 1 and N = 0. */
static void test_class_losses_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 21);
    int64_t shapes[][2] = {{4, 3}, {1, 5}, {3, 1}, {6, 2}, {0, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int64_t n = shapes[s][0], c = shapes[s][1];
        tg_tensor *x = param_f64(&rng, TG_SHAPE(n, c));
        tg_tensor *y = random_labels(&rng, n, c);
        for (int r = 0; r < 2; r++) {
            loss_arg a = {y, (tg_reduction)r, 1.0};
            const char *red = r ? "sum" : "mean";
            expect_gradcheck_op(apply_ce, &a, x, "tg_cross_entropy %s", red);
            expect_gradcheck_op(apply_hinge, &a, x, "tg_multiclass_hinge margin=1 %s", red);
            a.margin = 0;
            expect_gradcheck_op(apply_hinge, &a, x, "tg_multiclass_hinge margin=0 %s", red);
        }
        tg_free(x);
        tg_free(y);
    }
}

/* Gradients at ±1000 checked against finite differences too, not only by hand. */
static void test_extreme_gradcheck(void **state)
{
    (void)state;
    double v[] = {1000, -1000, 3, -1000, 1000, -2, 1000, 999, 999.5};
    tg_tensor *x = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(3, 3), v), true);
    tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(3), (int32_t[]){1, 1, 2});
    tg_tensor *t = tg_from_data(TG_I32, TG_SHAPE(3, 3), (int32_t[]){1, -1, 1, 1, -1, 1, -1, 1, 1});
    loss_arg a = {y, TG_REDUCE_MEAN, 1.0};
    expect_gradcheck_op(apply_ce, &a, x, "tg_cross_entropy at ±1000");
    expect_gradcheck_op(apply_hinge, &a, x, "tg_multiclass_hinge at ±1000");
    a.labels = t;
    expect_gradcheck_op(apply_logistic, &a, x, "tg_logistic_loss at ±1000");
    tg_free(x);
    tg_free(y);
    tg_free(t);
}

/* ---- MSE ---- */


/* Logits sharing a large offset: the loss of a confident row keeps its digits, as PyTorch's does.
 * Exact values: log1p(e^-20 + e^-21) and log1p(e^-35) (the 1000 cancels exactly). */
static void test_cross_entropy_confident_rows(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F64 : TG_F32;
        tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(1), (int32_t[]){0});
        tg_tensor *a = tg_from_data(TG_F64, TG_SHAPE(1, 3), (double[]){1000, 980, 979});
        tg_tensor *b = tg_from_data(TG_F64, TG_SHAPE(1, 2), (double[]){1000, 965});
        tg_tensor *ad = tg_to_dtype(a, dt), *bd = tg_to_dtype(b, dt);
        double la = tg_item(tg_cross_entropy(ad, y, TG_REDUCE_MEAN));
        double lb = tg_item(tg_cross_entropy(bd, y, TG_REDUCE_MEAN));
        double exact_a = log1p(exp(-20.0) + exp(-21.0)), exact_b = log1p(exp(-35.0));
        assert_near(la, exact_a, 1e-6 * exact_a);   /* 2.81941e-9 */
        assert_near(lb, exact_b, 1e-6 * exact_b);   /* 6.30512e-16, not 0 */
        double ls = tg_get_flat(tg_log_softmax(bd, 1), 0);
        assert_near(ls, -exact_b, 1e-6 * exact_b);
        tg_tape_reset();
        tg_free(y), tg_free(a), tg_free(b), tg_free(ad), tg_free(bd);
    }
}

/* A NaN score gives a NaN hinge loss and a NaN cross-entropy (not a finite one). */
static void test_losses_propagate_nan(void **state)
{
    (void)state;
    tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(2), (int32_t[]){0, 1});
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(2, 3), (double[]){1, NAN, 0, 2, 1, 0});
    assert_true(isnan(tg_item(tg_multiclass_hinge(x, y, 1, TG_REDUCE_MEAN))));
    assert_true(isnan(tg_item(tg_multiclass_hinge(x, y, 0, TG_REDUCE_SUM))));
    assert_true(isnan(tg_item(tg_cross_entropy(x, y, TG_REDUCE_MEAN))));
    tg_tape_reset();
    tg_free(x), tg_free(y);
}

/* A +inf logit (a diverged run) gives a NaN in the cross-entropy's gradient, as in PyTorch (whose
 * whole row is NaN), not a finite gradient that trains on: softmax's inf - inf at that maximum. */
static void test_cross_entropy_inf_logit_gives_nan_gradient(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        for (int32_t label = 0; label < 2; label++) {
            tg_tensor *x = leaf(d ? TG_F64 : TG_F32, TG_SHAPE(1, 2), (double[]){INFINITY, 0});
            tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(1), &label);
            tg_tensor *loss = tg_cross_entropy(x, y, TG_REDUCE_MEAN);
            assert_false(isfinite(tg_item(loss)));
            tg_backward(loss);
            if (!isnan(tg_get_flat(x->grad, 0)))
                fail_msg("%s, label %d: gradient %g at the +inf logit, not NaN",
                         d ? "f64" : "f32", (int)label, tg_get_flat(x->grad, 0));
            tg_tape_reset();
            tg_free(x), tg_free(y);
        }
    }
}

static void test_mse_values(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        tg_tensor *p = leaf(dt, TG_SHAPE(2, 2), (double[]){1, 2, 3, 1000});
        tg_tensor *t = leaf(dt, TG_SHAPE(2, 2), (double[]){0, 2, 5, -1000});
        tg_tensor *loss = tg_mse_loss(p, t, TG_REDUCE_MEAN);
        expect_values(loss, (double[]){(1 + 0 + 4 + 4e6) / 4}, 1, 1e-7);
        tg_backward(loss);
        expect_values(p->grad, (double[]){0.5, 0, -1, 1000}, 4, 1e-7);
        expect_values(t->grad, (double[]){-0.5, 0, 1, -1000}, 4, 1e-7);
        tg_tape_reset();
        expect_values(tg_mse_loss(p, t, TG_REDUCE_SUM), (double[]){5 + 4e6}, 1, 1e-7);
        tg_tape_reset();
        tg_free(p);
        tg_free(t);
    }
}

typedef struct {
    tg_reduction r;
} mse_arg;

static tg_tensor *mse_fn(tg_tensor **in, int n, void *ctx)
{
    (void)n;
    return tg_mse_loss(in[0], in[1], ((mse_arg *)ctx)->r);
}

static void test_mse_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 22);
    struct {
        int ndim;
        int64_t shape[3];
    } shapes[] = {{0, {0}}, {1, {5}}, {2, {3, 1}}, {3, {2, 3, 2}}, {2, {0, 4}}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int r = 0; r < 2; r++) {
            tg_tensor *in[] = {param_f64(&rng, shapes[s].ndim, shapes[s].shape),
                               param_f64(&rng, shapes[s].ndim, shapes[s].shape)};
            char str[64];
            expect_gradcheck(mse_fn, in, 2, &(mse_arg){(tg_reduction)r}, "tg_mse_loss %s %s",
                             r ? "sum" : "mean", tg_shape_str(in[0], str, sizeof str));
            tg_free(in[0]);
            tg_free(in[1]);
        }
}

/* ---- multiclass hinge ---- */

static void test_hinge_values(void **state)
{
    (void)state;
    /* margin 1; terms s_j - s_y + [j != y]:
     *   row 0, y = 0: (0, 3, 3) -> 3 at j* = 1 (first of the tie)
     *   row 1, y = 1: (2, 0, 2) -> 2 at j* = 0
     *   row 2, y = 2: (-4, -4, 0) -> 0 at j* = y: no gradient */
    for (int k = 0; k < 2; k++) {
        tg_tensor *x = leaf(k ? TG_F32 : TG_F64, TG_SHAPE(3, 3),
                            (double[]){1, 3, 3, 2, 1, 2, 0, 0, 5});
        tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(3), (int32_t[]){0, 1, 2});
        tg_tensor *loss = tg_multiclass_hinge(x, y, 1.0, TG_REDUCE_MEAN);
        expect_values(loss, (double[]){5.0 / 3}, 1, 1e-7);
        tg_backward(loss);
        double t = 1.0 / 3;
        expect_values(x->grad, (double[]){-t, t, 0, t, -t, 0, 0, 0, 0}, 9, 1e-7);
        tg_tape_reset();
        tg_free(x);
        tg_free(y);
    }
}

/* margin 0 (the perceptron): a tie with the label still picks the first index. */
static void test_hinge_perceptron_and_extreme(void **state)
{
    (void)state;
    tg_tensor *x = leaf(TG_F64, TG_SHAPE(3, 2), (double[]){1, 1, 1000, -1000, -1000, 1000});
    tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(3), (int32_t[]){1, 1, 1});
    tg_tensor *loss = tg_multiclass_hinge(x, y, 0.0, TG_REDUCE_SUM);
    expect_values(loss, (double[]){0 + 2000 + 0}, 1, 0);
    tg_backward(loss);
    expect_values(x->grad, (double[]){1, -1, 1, -1, 0, 0}, 6, 0);
    tg_tape_reset();
    tg_free(x);
    tg_free(y);
}

/* ---- logistic ---- */

static void test_logistic_values(void **state)
{
    (void)state;
    double z[] = {0, 2, -1}, y[] = {1, -1, 1};
    double loss = log(2) + log(1 + exp(2)) + log(1 + exp(1));
    double g[] = {-0.5, sigmoid(2), -sigmoid(1)};
    for (int k = 0; k < 6; k++) {
        tg_dtype dt = k < 3 ? TG_F64 : TG_F32;
        tg_tensor *x = leaf(dt, TG_SHAPE(3), z);
        tg_tensor *yt = tg_from_data(TG_F64, TG_SHAPE(3, 1), y); /* same numel, other shape */
        tg_tensor *targets = tg_to_dtype(yt, k % 3 == 0 ? TG_I32 : k % 3 == 1 ? TG_F32 : TG_F64);
        tg_tensor *l = tg_logistic_loss(x, targets, k % 2 ? TG_REDUCE_SUM : TG_REDUCE_MEAN);
        double scale = k % 2 ? 1 : 1.0 / 3, tol = dt == TG_F64 ? 1e-15 : 1e-6;
        expect_values(l, (double[]){loss * scale}, 1, tol);
        tg_backward(l);
        double gs[3] = {g[0] * scale, g[1] * scale, g[2] * scale};
        expect_values(x->grad, gs, 3, tol);
        tg_tape_reset();
        tg_free(x);
        tg_free(yt);
        tg_free(targets);
    }
}

/* log(1 + exp(1000)) must be 1000, not inf; its gradient -1, not NaN. */
static void test_logistic_extreme(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        tg_tensor *x = leaf(k ? TG_F32 : TG_F64, TG_SHAPE(4), (double[]){1000, -1000, 1000, -1000});
        tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(4), (int32_t[]){1, 1, -1, -1});
        tg_tensor *l = tg_logistic_loss(x, y, TG_REDUCE_SUM);
        expect_values(l, (double[]){2000}, 1, 1e-12);
        tg_backward(l);
        expect_values(x->grad, (double[]){0, -1, 1, 0}, 4, 1e-12);
        tg_tape_reset();
        tg_free(x);
        tg_free(y);
    }
}

static void test_logistic_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 23);
    tg_tensor *x = param_f64(&rng, TG_SHAPE(3, 4));
    tg_tensor *yi = tg_zeros(TG_I32, TG_SHAPE(3, 4)), *yf = tg_zeros(TG_F64, TG_SHAPE(3, 4));
    for (int64_t i = 0; i < 12; i++) {
        double s = tg_rng_uniform(&rng) < 0.5 ? -1 : 1;
        tg_set_flat(yi, i, s);
        tg_set_flat(yf, i, -s);
    }
    for (int r = 0; r < 2; r++) {
        loss_arg a = {yi, (tg_reduction)r, 0};
        expect_gradcheck_op(apply_logistic, &a, x, "tg_logistic_loss int32 targets %s",
                            r ? "sum" : "mean");
        a.labels = yf;
        expect_gradcheck_op(apply_logistic, &a, x, "tg_logistic_loss f64 targets %s",
                            r ? "sum" : "mean");
    }
    tg_free(x);
    tg_free(yi);
    tg_free(yf);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    tg_tensor *x = tg_zeros(TG_F64, TG_SHAPE(2, 3)), *xt = tg_zeros(TG_F64, TG_SHAPE(3, 2));
    tg_tensor *x1 = tg_zeros(TG_F64, TG_SHAPE(6)), *x32 = tg_zeros(TG_F32, TG_SHAPE(2, 3));
    tg_tensor *bad = tg_from_data(TG_I32, TG_SHAPE(2), (int32_t[]){0, 3});
    tg_tensor *neg = tg_from_data(TG_I32, TG_SHAPE(2), (int32_t[]){-1, 0});
    tg_tensor *ok = tg_from_data(TG_I32, TG_SHAPE(2), (int32_t[]){0, 2});
    tg_tensor *ok3 = tg_from_data(TG_I32, TG_SHAPE(3), (int32_t[]){0, 2, 1});
    tg_tensor *okf = tg_from_data(TG_F32, TG_SHAPE(2), (float[]){0, 2});
    tg_tensor *pm = tg_from_data(TG_F64, TG_SHAPE(2, 3), (double[]){1, -1, 1, 0, 1, 1});
    EXPECT_ERROR("tg_cross_entropy: label 3 in row 1", tg_cross_entropy(x, bad, TG_REDUCE_MEAN));
    EXPECT_ERROR("tg_cross_entropy: label -1 in row 0", tg_cross_entropy(x, neg, TG_REDUCE_SUM));
    EXPECT_ERROR("got [2, 3] f64 and [3] i32", tg_cross_entropy(x, ok3, TG_REDUCE_MEAN));
    EXPECT_ERROR("got [2, 3] f64 and [2] f32", tg_cross_entropy(x, okf, TG_REDUCE_MEAN));
    EXPECT_ERROR("got [6] f64 and [2] i32", tg_cross_entropy(x1, ok, TG_REDUCE_MEAN));
    EXPECT_ERROR("tg_cross_entropy: unknown reduction 7",
                 tg_cross_entropy(x, ok, (tg_reduction)7));
    EXPECT_ERROR("tg_multiclass_hinge: label 3 in row 1",
                 tg_multiclass_hinge(x, bad, 1, TG_REDUCE_MEAN));
    EXPECT_ERROR("tg_mse_loss: pred [2, 3] f64 and target [3, 2] f64",
                 tg_mse_loss(x, xt, TG_REDUCE_MEAN));
    EXPECT_ERROR("target [6] f64 must have the same shape", tg_mse_loss(x, x1, TG_REDUCE_SUM));
    EXPECT_ERROR("target [2, 3] f32 must have the same shape and dtype",
                 tg_mse_loss(x, x32, TG_REDUCE_SUM));
    EXPECT_ERROR("tg_logistic_loss: target 3 is 0", tg_logistic_loss(x, pm, TG_REDUCE_MEAN));
    EXPECT_ERROR("targets [2] i32 and logits [2, 3] f64 must have the same shape",
                 tg_logistic_loss(x, ok, TG_REDUCE_MEAN));
    EXPECT_ERROR("tg_logistic_loss: expected a float32 or float64 tensor, got [2] i32",
                 tg_logistic_loss(bad, ok, TG_REDUCE_MEAN));
    /* transposed targets: as many elements, another layout */
    EXPECT_ERROR("must have the same shape", tg_logistic_loss(x, xt, TG_REDUCE_MEAN));
    tg_tensor *all[] = {x, xt, x1, x32, bad, neg, ok, ok3, okf, pm};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tg_free(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_entropy_values),
        cmocka_unit_test(test_cross_entropy_extreme),
        cmocka_unit_test(test_class_losses_gradcheck),
        cmocka_unit_test(test_extreme_gradcheck),
        cmocka_unit_test(test_mse_values),
        cmocka_unit_test(test_mse_gradcheck),
        cmocka_unit_test(test_hinge_values),
        cmocka_unit_test(test_hinge_perceptron_and_extreme),
        cmocka_unit_test(test_logistic_values),
        cmocka_unit_test(test_logistic_extreme),
        cmocka_unit_test(test_logistic_gradcheck),
        cmocka_unit_test(test_cross_entropy_confident_rows),
        cmocka_unit_test(test_cross_entropy_inf_logit_gives_nan_gradient),
        cmocka_unit_test(test_losses_propagate_nan),
        cmocka_unit_test(test_errors),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    check_summary();
    return failed;
}
