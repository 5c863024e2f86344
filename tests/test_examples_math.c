/* The mathematical claims behind examples/: one engine step of the perceptron model (linear layer,
 * multiclass hinge with margin 0, SGD with learning rate 1) is exactly the classic perceptron
 * update, and the hand-set ReLU networks of relu_max.c and xor_interval.c compute max(x1, x2) and
 * XOR exactly. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>
#include "tapegrad.h"

enum { D = 20, C = 10 };

/* The engine's step on (x, y): zero_grad, hinge(Wx + b, y, margin 0), backward, SGD lr 1. */
static void engine_step(tg_module *model, tg_optimizer *sgd, const float *x, int32_t y)
{
    tg_tensor *xt = tg_from_data(TG_F32, TG_SHAPE(1, D), x);
    tg_tensor *yt = tg_from_data(TG_I32, TG_SHAPE(1), &y);
    tg_optimizer_zero_grad(sgd);
    tg_backward(tg_multiclass_hinge(tg_module_forward(model, xt), yt, 0, TG_REDUCE_SUM));
    tg_optimizer_step(sgd);
    tg_tape_reset();
    tg_free(xt), tg_free(yt);
}

/* The classic multiclass perceptron: ŷ = the first argmax of Wx + b; on a mistake
 * w_y += x, w_ŷ -= x, b_y += 1, b_ŷ -= 1. Returns whether it was a mistake. */
static bool classic_step(float *w, float *b, const float *x, int32_t y)
{
    int best = 0;
    double top = -INFINITY;
    for (int j = 0; j < C; j++) {
        double s = b[j];
        for (int k = 0; k < D; k++) s += (double)w[j * D + k] * x[k];
        if (s > top) top = s, best = j;
    }
    if (best == y) return false;
    for (int k = 0; k < D; k++) w[y * D + k] += x[k], w[best * D + k] -= x[k];
    b[y] += 1, b[best] -= 1;
    return true;
}

static void run_both(tg_init init, int steps, tg_rng *rng, int *mistakes)
{
    tg_module *model = tg_linear_new(D, C, true, init, rng);
    tg_tensor *wt = tg_linear_weight(model), *bt = tg_linear_bias(model);
    float w[C * D], b[C], x[D];
    memcpy(w, wt->data, sizeof w), memcpy(b, bt->data, sizeof b);
    tg_param_list params = {0};
    tg_module_parameters(model, &params);
    tg_optimizer *sgd = tg_sgd_new(&params, (tg_sgd_opts){.lr = 1});
    *mistakes = 0;
    for (int s = 0; s < steps; s++) {
        for (int k = 0; k < D; k++) x[k] = (float)tg_rng_uniform(rng);   /* pixel-like */
        int32_t y = (int32_t)tg_rng_below(rng, C);
        engine_step(model, sgd, x, y);
        *mistakes += classic_step(w, b, x, y);
        /* bit for bit, after every step */
        assert_memory_equal(wt->data, w, sizeof w);
        assert_memory_equal(bt->data, b, sizeof b);
    }
    tg_optimizer_free(sgd), tg_param_list_free(&params), tg_module_free(model);
}

static void perceptron_step_is_classic_update(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    int mistakes;
    run_both(tg_init_normal(0, 1), 500, &rng, &mistakes);
    /* both branches (update and no update) were exercised */
    assert_in_range(mistakes, 1, 499);
}

/* From zero weights every score ties: the hinge's subgradient picks the first maximal class,
 * exactly as the classic perceptron's first-index argmax does. */
static void perceptron_ties_from_zero(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    int mistakes;
    run_both(tg_init_zeros(), 200, &rng, &mistakes);
    assert_true(mistakes > 0);
}

/* in -> hidden ReLUs -> 1, float64, all weights zero until set by hand */
static tg_module *relu_net(int in, int hidden)
{
    tg_init zeros = tg_init_f64(tg_init_zeros());
    return tg_sequential_new(3, tg_linear_new(in, hidden, true, zeros, NULL), tg_relu_new(),
                             tg_linear_new(hidden, 1, true, zeros, NULL));
}

/* relu_max.c's network: max(a, b) = ½relu(a+b) - ½relu(-a-b) + ½relu(a-b) + ½relu(b-a). */
static void relu_network_computes_max(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    tg_module *net = relu_net(2, 4);
    tg_linear_set(tg_module_child(net, "0"), (double[]){1, 1, -1, -1, 1, -1, -1, 1}, NULL);
    tg_linear_set(tg_module_child(net, "2"), (double[]){0.5, -0.5, 0.5, 0.5}, NULL);
    enum { N = 10000 };
    tg_tensor *x = tg_rand_uniform(TG_F64, TG_SHAPE(N, 2), -1000, 1000, &rng);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: reals, within a few rounding errors of the inputs' size; pass 1: the same
         * rounded to integers, where every operation is exact, so the result must be bit-exact */
        if (pass == 1)
            for (int64_t i = 0; i < 2 * N; i++) tg_set_flat(x, i, round(tg_get_flat(x, i)));
        tg_tensor *y = tg_module_forward(net, x);
        for (int64_t i = 0; i < N; i++) {
            double a = tg_get_flat(x, 2 * i), b = tg_get_flat(x, 2 * i + 1);
            double err = fabs(tg_get_flat(y, i) - fmax(a, b));
            if (pass == 1) assert_true(err == 0);
            else assert_true(err <= 1e-13 * (fabs(a) + fabs(b)));
        }
        tg_tape_reset();
    }
    tg_free(x), tg_module_free(net);
}

/* xor_interval.c's hand-set XOR on {-1, +1}²: 1 - relu(x1 + x2) - relu(-x1 - x2), exactly ±1. */
static void relu_network_computes_xor(void **state)
{
    (void)state;
    tg_module *net = relu_net(2, 2);
    tg_linear_set(tg_module_child(net, "0"), (double[]){1, 1, -1, -1}, NULL);
    tg_linear_set(tg_module_child(net, "2"), (double[]){-1, -1}, (double[]){1});
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(4, 2), (double[]){-1, -1, 1, -1, -1, 1, 1, 1});
    tg_tensor *y = tg_module_forward(net, x);
    const double want[] = {-1, 1, 1, -1};
    for (int i = 0; i < 4; i++) assert_true(tg_get_flat(y, i) == want[i]);
    tg_tape_reset();
    tg_free(x), tg_module_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(perceptron_step_is_classic_update),
        cmocka_unit_test(perceptron_ties_from_zero),
        cmocka_unit_test(relu_network_computes_max),
        cmocka_unit_test(relu_network_computes_xor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
