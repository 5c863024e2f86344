/* nn modules: registration and dotted names, train/eval, initialisation statistics, a custom
 * module written here, the FeedforwardNetwork layout, dropout, printing, and misuse errors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>

#include "tapegrad.h"
#include "tests/check.h"

static void expect_names(tg_module *m, const char *const *names, int n)
{
    tg_param_list ps = {0};
    tg_module_parameters(m, &ps);
    assert_int_equal(ps.n, n);
    for (int i = 0; i < n; i++) assert_string_equal(ps.names[i], names[i]);
    tg_param_list_free(&ps);
}

static double mean_of(const tg_tensor *t)
{
    double s = 0;
    for (int64_t i = 0; i < t->numel; i++) s += tg_get_flat(t, i);
    return s / (double)t->numel;
}

static double std_of(const tg_tensor *t)
{
    double m = mean_of(t), s = 0;
    for (int64_t i = 0; i < t->numel; i++) s += (tg_get_flat(t, i) - m) * (tg_get_flat(t, i) - m);
    return sqrt(s / (double)(t->numel - 1));
}

static double max_abs(const tg_tensor *t)
{
    double m = 0;
    for (int64_t i = 0; i < t->numel; i++) m = fmax(m, fabs(tg_get_flat(t, i)));
    return m;
}

/* ---- Linear ---------------------------------------------------------------------------------- */
static void test_linear_params(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_module *l = tg_linear_new(4, 3, true, tg_init_pytorch(), &rng);
    assert_string_equal(l->kind, "Linear");
    expect_names(l, (const char *[]){"weight", "bias"}, 2);
    assert_int_equal(tg_module_num_parameters(l), 4 * 3 + 3);
    tg_tensor *w = tg_linear_weight(l), *b = tg_linear_bias(l);
    assert_true(w == tg_module_param(l, "weight") && b == tg_module_param(l, "bias"));
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 3);
    assert_int_equal(w->shape[1], 4);
    assert_int_equal(b->shape[0], 3);
    assert_true(w->requires_grad && b->requires_grad && w->persistent);
    assert_int_equal(w->dtype, TG_F32);
    tg_module_free(l);

    l = tg_linear_new(4, 3, false, tg_init_f64(tg_init_pytorch()), &rng);
    expect_names(l, (const char *[]){"weight"}, 1);
    assert_int_equal(tg_module_num_parameters(l), 12);
    assert_null(tg_linear_bias(l));
    assert_int_equal(tg_linear_weight(l)->dtype, TG_F64);
    tg_module_free(l);
}

/* y = x·Wᵀ + b by hand, and gradients reach both parameters. */
static void test_linear_forward_by_hand(void **state)
{
    const double w[] = {1, 2, 3, -1, 0.5, 4}, b[] = {0.25, -2};
    tg_module *l = tg_linear_new(3, 2, true, tg_init_f64(tg_init_values(w, b)), NULL);
    const double x[] = {1, -1, 2, 0.5, 3, -2};
    tg_tensor *xt = tg_from_data(TG_F64, TG_SHAPE(2, 3), x);
    tg_tensor *y = tg_module_forward(l, xt);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 2);
    for (int i = 0; i < 2; i++)
        for (int o = 0; o < 2; o++) {
            double e = b[o];
            for (int k = 0; k < 3; k++) e += x[i * 3 + k] * w[o * 3 + k];
            assert_near(tg_get(y, (int64_t[]){i, o}), e, 1e-12);
        }
    tg_backward(tg_sum(y));
    tg_tensor *gb = tg_linear_bias(l)->grad, *gw = tg_linear_weight(l)->grad;
    assert_non_null(gb);
    assert_near(tg_get_flat(gb, 0), 2.0, 1e-12); /* dΣy/db_o = rows */
    assert_near(tg_get_flat(gw, 0), 1 + 0.5, 1e-12); /* dΣy/dW_ok = Σ_i x_ik */
    tg_tape_reset();

    /* tg_linear_set overwrites by hand. */
    const double w2[] = {0, 0, 0, 0, 0, 1};
    tg_linear_set(l, w2, NULL);
    assert_near(tg_get_flat(tg_linear_weight(l), 5), 1.0, 0);
    assert_near(tg_get_flat(tg_linear_bias(l), 1), -2.0, 0); /* bias left alone */
    tg_free(xt);
    tg_module_free(l);
}

/* ---- initialisation ----------------------------------------------------------------------- */
static void test_init_pytorch_bounds(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_module *l = tg_linear_new(100, 200, true, tg_init_pytorch(), &rng);
    double bound = 1.0 / sqrt(100.0);
    tg_tensor *w = tg_linear_weight(l), *b = tg_linear_bias(l);
    assert_true(max_abs(w) <= bound);
    assert_true(max_abs(b) <= bound);
    assert_true(max_abs(w) > 0.98 * bound); /* fills the range, not a narrower one */
    assert_true(max_abs(b) > 0.8 * bound);
    assert_true(fabs(mean_of(w)) < 0.003);
    assert_near(std_of(w), bound / sqrt(3.0), 0.003); /* U(-a, a) has std a/sqrt(3) */
    tg_module_free(l);
}

static void test_init_normal(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    /* The homework's MLP: weights N(0.1, 0.1²), zero biases. 20000 draws: SE of the mean 7e-4. */
    tg_module *l = tg_linear_new(100, 200, true, tg_init_normal(0.1, 0.1), &rng);
    assert_near(mean_of(tg_linear_weight(l)), 0.1, 0.004);
    assert_near(std_of(tg_linear_weight(l)), 0.1, 0.004);
    assert_near(max_abs(tg_linear_bias(l)), 0.0, 0);
    tg_module_free(l);
}

static void test_init_xavier_kaiming_zeros(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_module *x = tg_linear_new(300, 100, true, tg_init_xavier_uniform(), &rng);
    double a = sqrt(6.0 / 400.0);
    assert_true(max_abs(tg_linear_weight(x)) <= a && max_abs(tg_linear_weight(x)) > 0.98 * a);
    assert_near(std_of(tg_linear_weight(x)), a / sqrt(3.0), 0.003);
    assert_near(max_abs(tg_linear_bias(x)), 0.0, 0);
    tg_module_free(x);

    tg_module *k = tg_linear_new(200, 150, true, tg_init_kaiming_normal(), &rng);
    assert_near(mean_of(tg_linear_weight(k)), 0.0, 0.003);
    assert_near(std_of(tg_linear_weight(k)), sqrt(2.0 / 200.0), 0.003);
    tg_module_free(k);

    tg_module *z = tg_linear_new(5, 4, true, tg_init_zeros(), &rng);
    assert_near(max_abs(tg_linear_weight(z)) + max_abs(tg_linear_bias(z)), 0.0, 0);
    tg_module_free(z);
}

/* Same seed, same parameters; the generator argument is the only source. */
static void test_init_deterministic(void **state)
{
    tg_rng a, b;
    tg_rng_seed(&a, 5);
    tg_rng_seed(&b, 5);
    tg_module *l1 = tg_linear_new(7, 5, true, tg_init_pytorch(), &a);
    tg_module *l2 = tg_linear_new(7, 5, true, tg_init_pytorch(), &b);
    assert_memory_equal(tg_linear_weight(l1)->data, tg_linear_weight(l2)->data, 35 * sizeof(float));
    assert_memory_equal(tg_linear_bias(l1)->data, tg_linear_bias(l2)->data, 5 * sizeof(float));
    tg_module_free(l1);
    tg_module_free(l2);
}

/* ---- a module written by a user -------------------------------------------------------------- */
typedef struct {
    tg_module base;
    tg_module *fc1, *act, *fc2;
    tg_tensor *scale;
    int *destroyed; /* set by destroy, to check it runs */
} my_net;

static tg_tensor *my_forward(tg_module *self, tg_tensor *x)
{
    my_net *n = (my_net *)self;
    x = tg_module_forward(n->act, tg_module_forward(n->fc1, x));
    return tg_mul(tg_module_forward(n->fc2, x), n->scale);
}

static void my_destroy(tg_module *self) { *((my_net *)self)->destroyed += 1; }

static my_net *my_net_new(tg_rng *rng, int *destroyed)
{
    my_net *n = tg_module_new(sizeof *n, "MyNet", my_forward);
    n->base.destroy = my_destroy;
    n->destroyed = destroyed;
    n->scale = tg_module_add_param(&n->base, "scale", tg_full(TG_F64, TG_SHAPE(1), 2.0));
    n->fc1 = tg_module_add_child(&n->base, "fc1",
                                 tg_linear_new(3, 5, true, tg_init_f64(tg_init_pytorch()), rng));
    n->act = tg_module_add_child(&n->base, "act", tg_tanh_new());
    n->fc2 = tg_module_add_child(&n->base, "fc2",
                                 tg_linear_new(5, 2, false, tg_init_f64(tg_init_pytorch()), rng));
    return n;
}

static void test_custom_module(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    int destroyed = 0;
    my_net *n = my_net_new(&rng, &destroyed);
    expect_names(&n->base, (const char *[]){"scale", "fc1.weight", "fc1.bias", "fc2.weight"}, 4);
    assert_int_equal(tg_module_num_parameters(&n->base), 1 + 15 + 5 + 10);
    assert_true(tg_module_param(&n->base, "fc1.bias") == tg_linear_bias(n->fc1));
    assert_true(tg_module_child(&n->base, "fc2") == n->fc2);
    assert_null(tg_module_param(&n->base, "fc3.weight"));
    assert_null(tg_module_param(&n->base, "fc1.nothing"));
    assert_true(n->scale->requires_grad);
    assert_string_equal(n->scale->name, "scale");

    /* The custom forward is differentiable end to end: every parameter gets a gradient. */
    tg_tensor *x = tg_rand_normal(TG_F64, TG_SHAPE(4, 3), 0, 1, &rng);
    tg_backward(tg_sum(tg_module_forward(&n->base, x)));
    tg_param_list ps = {0};
    tg_module_parameters(&n->base, &ps);
    for (int i = 0; i < ps.n; i++) {
        assert_non_null(ps.tensors[i]->grad);
        assert_true(max_abs(ps.tensors[i]->grad) > 0);
    }
    tg_tape_reset();
    tg_module_zero_grad(&n->base);
    for (int i = 0; i < ps.n; i++) assert_near(max_abs(tg_get_grad(ps.tensors[i])), 0.0, 0);
    tg_param_list_free(&ps);
    tg_free(x);
    tg_module_free(&n->base);
    assert_int_equal(destroyed, 1);
}

/* A tensor registered in two modules (weight tying) is listed and freed once. */
static void test_shared_parameter(void **state)
{
    tg_module *a = tg_linear_new(4, 4, false, tg_init_pytorch(), NULL);
    tg_module *b = tg_module_new(sizeof(tg_module), "Tied", NULL);
    tg_module_add_param(b, "w", tg_linear_weight(a));
    tg_module *seq = tg_sequential_new(2, a, b);
    expect_names(seq, (const char *[]){"0.weight"}, 1);
    assert_int_equal(tg_module_num_parameters(seq), 16);
    tg_module_free(seq); /* ASan/valgrind would report a double free here */
}

/* ---- Sequential, activations, Dropout ------------------------------------------------------ */
static void test_sequential_and_activations(void **state)
{
    const double w1[] = {1, -1, 2, 0.5}, b1[] = {0, -3}, w2[] = {1, 1};
    tg_module *seq = tg_sequential_new(
        3, tg_linear_new(2, 2, true, tg_init_f64(tg_init_values(w1, b1)), NULL), tg_relu_new(),
        tg_linear_new(2, 1, false, tg_init_f64(tg_init_values(w2, NULL)), NULL));
    expect_names(seq, (const char *[]){"0.weight", "0.bias", "2.weight"}, 3);
    assert_string_equal(seq->child_names[1], "1");
    assert_string_equal(seq->children[1]->kind, "ReLU");
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(1, 2), (double[]){3, 1});
    /* h = [3 - 1, 6 + 0.5 - 3] = [2, 3.5] -> relu -> sum 5.5 */
    assert_near(tg_item(tg_module_forward(seq, x)), 5.5, 1e-12);
    tg_tape_reset();

    tg_tensor *z = tg_from_data(TG_F64, TG_SHAPE(3), (double[]){-2, 0.5, 3});
    const char *names[] = {"relu", "tanh", "sigmoid", "square", "identity"};
    for (int k = 0; k < 5; k++) {
        tg_module *m = tg_activation_new(names[k]);
        tg_activation_fn fn = tg_activation_fn_by_name(names[k]);
        assert_non_null(m);
        assert_non_null(fn);
        tg_tensor *y = tg_module_forward(m, z), *y2 = fn(z);
        for (int i = 0; i < 3; i++) {
            double v = tg_get_flat(z, i);
            double e = k == 0 ? fmax(v, 0) : k == 1 ? tanh(v) : k == 2 ? 1 / (1 + exp(-v))
                     : k == 3 ? v * v : v;
            assert_near(tg_get_flat(y, i), e, 1e-12);
            assert_near(tg_get_flat(y2, i), e, 1e-12);
        }
        tg_module_free(m);
        tg_tape_reset();
    }
    assert_null(tg_activation_new("gelu"));
    assert_non_null(strstr(tg_status_message(), "gelu"));
    assert_null(tg_activation_fn_by_name("softsign"));
    tg_free(x);
    tg_free(z);
    tg_module_free(seq);
}

static void test_dropout_module(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    tg_module *d = tg_dropout_new_rng(0.5, &rng);
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(50, 40), 1, 0.1, &rng);
    /* Training: about half zeroed, survivors doubled. */
    tg_tensor *y = tg_module_forward(d, x);
    int64_t zeros = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        double v = tg_get_flat(y, i);
        if (v == 0) zeros++;
        else assert_near(v, 2 * tg_get_flat(x, i), 1e-6);
    }
    assert_true(zeros > 900 && zeros < 1100);
    tg_tape_reset();
    /* Evaluation: the identity, and no random number is drawn. */
    tg_module_eval(d);
    tg_rng before = rng;
    y = tg_module_forward(d, x);
    assert_memory_equal(y->data, x->data, (size_t)x->numel * sizeof(float));
    assert_memory_equal(&before, &rng, sizeof rng);
    tg_tape_reset();
    tg_free(x);
    tg_module_free(d);
}

/* ---- FeedforwardNetwork ----------------------------------------------------------------------- */
static void expect_training(const tg_module *m, bool training)
{
    assert_int_equal(m->training, training);
    for (int i = 0; i < m->n_children; i++) expect_training(m->children[i], training);
}

static void test_feedforward_structure(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    tg_module *ff = tg_feedforward_new(10, 3, 8, 2, "relu", 0.3, tg_init_pytorch(), &rng);
    assert_non_null(ff);
    assert_string_equal(ff->kind, "FeedforwardNetwork");
    expect_names(ff, (const char *[]){"layers.0.weight", "layers.0.bias", "layers.3.weight",
                                      "layers.3.bias", "layers.6.weight", "layers.6.bias"}, 6);
    assert_int_equal(tg_module_num_parameters(ff), 10 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3);
    tg_module *layers = tg_module_child(ff, "layers");
    assert_non_null(layers);
    const char *kinds[] = {"Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"};
    assert_int_equal(layers->n_children, 7);
    for (int i = 0; i < 7; i++) assert_string_equal(layers->children[i]->kind, kinds[i]);
    assert_int_equal(tg_module_param(ff, "layers.6.weight")->shape[0], 3);
    assert_int_equal(tg_module_param(ff, "layers.6.weight")->shape[1], 8);

    /* train/eval reach every module. */
    expect_training(ff, true);
    tg_module_eval(ff);
    expect_training(ff, false);
    tg_module_train(ff, true);
    expect_training(ff, true);

    /* Forward shape; in eval mode two calls agree (dropout off). */
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(5, 10), 0, 1, &rng);
    tg_module_eval(ff);
    tg_tensor *y1 = tg_module_forward(ff, x), *y2 = tg_module_forward(ff, x);
    assert_int_equal(y1->ndim, 2);
    assert_int_equal(y1->shape[0], 5);
    assert_int_equal(y1->shape[1], 3);
    assert_memory_equal(y1->data, y2->data, 15 * sizeof(float));
    tg_tape_reset();

    /* In training, each ReLU + Dropout pair runs as one tg_relu_dropout: the same output, the
     * same gradients and the same draws as the layers one by one, with fewer records. */
    tg_module_train(ff, true);
    tg_rng saved = rng;
    tg_tensor *yf = tg_module_forward(ff, x);
    size_t fused_records = tg_tape_length();
    tg_backward(tg_sum(yf));
    tg_tensor *g_fused = tg_clone(tg_module_param(ff, "layers.0.weight")->grad);
    tg_rng after_fused = rng;
    tg_module_zero_grad(ff);
    rng = saved;
    tg_tensor *ys = x;
    for (int i = 0; i < layers->n_children; i++) ys = tg_module_forward(layers->children[i], ys);
    /* the unfused layers: one more record per pair (2 pairs); the +1 is the first tg_sum */
    assert_int_equal(tg_tape_length() - fused_records - 1, fused_records + 2);
    assert_memory_equal(yf->data, ys->data, 15 * sizeof(float));
    assert_memory_equal(&rng, &after_fused, sizeof rng);
    tg_backward(tg_sum(ys));
    assert_memory_equal(g_fused->data, tg_module_param(ff, "layers.0.weight")->grad->data,
                        (size_t)g_fused->numel * sizeof(float));
    tg_module_zero_grad(ff);
    tg_free(g_fused);
    tg_tape_reset();

    /* Printing names the tree. */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    tg_module_print(ff, mem);
    fclose(mem);
    assert_non_null(strstr(text, "FeedforwardNetwork(\n  (layers): Sequential(\n    (0): Linear("
                                 "in_features=10, out_features=8, bias=True)"));
    assert_non_null(strstr(text, "(2): Dropout(p=0.3)"));
    free(text);
    tg_free(x);
    tg_module_free(ff);

    ff = tg_feedforward_new(10, 3, 8, 1, "tanh", 0.0, tg_init_normal(0.1, 0.1), &rng);
    assert_string_equal(tg_module_child(ff, "layers.1")->kind, "Tanh");
    assert_int_equal(tg_module_child(ff, "layers")->n_children, 4);
    tg_module_free(ff);
    ff = tg_feedforward_new(10, 3, 0, 0, "relu", 0.0, tg_init_pytorch(), &rng);
    expect_names(ff, (const char *[]){"layers.0.weight", "layers.0.bias"}, 2);
    tg_module_free(ff);
    assert_null(tg_feedforward_new(10, 3, 8, 2, "swish", 0.1, tg_init_pytorch(), &rng));
    assert_non_null(strstr(tg_status_message(), "swish"));
}

/* ---- misuse is a programming error naming the function ---------------------------------------- */
static void test_errors(void **state)
{
    tg_module *box = tg_module_new(sizeof(tg_module), "Box", NULL);
    tg_module_add_param(box, "w", tg_zeros(TG_F32, TG_SHAPE(2)));
    tg_tensor *extra = tg_zeros(TG_F32, TG_SHAPE(2));
    EXPECT_ERROR("already has a parameter named 'w'", tg_module_add_param(box, "w", extra));
    EXPECT_ERROR("contains '.'", tg_module_add_param(box, "a.b", extra));
    EXPECT_ERROR("has no forward", tg_module_forward(box, extra));
    EXPECT_ERROR("tg_dropout_new", tg_dropout_new(1.0));
    EXPECT_ERROR("tg_linear_new", tg_linear_new(0, 3, true, tg_init_pytorch(), NULL));
    EXPECT_ERROR("tg_module_forward", tg_module_forward(NULL, extra));
    /* Cycles: a module into itself, or into its own descendant. */
    tg_module *inner = tg_module_add_child(box, "inner", tg_module_new(sizeof(tg_module), "Box",
                                                                       NULL));
    EXPECT_ERROR("would make a cycle", tg_module_add_child(box, "self", box));
    EXPECT_ERROR("would make a cycle", tg_module_add_child(inner, "outer", box));
    tg_free(extra);
    tg_module_free(box);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_params),
        cmocka_unit_test(test_linear_forward_by_hand),
        cmocka_unit_test(test_init_pytorch_bounds),
        cmocka_unit_test(test_init_normal),
        cmocka_unit_test(test_init_xavier_kaiming_zeros),
        cmocka_unit_test(test_init_deterministic),
        cmocka_unit_test(test_custom_module),
        cmocka_unit_test(test_shared_parameter),
        cmocka_unit_test(test_sequential_and_activations),
        cmocka_unit_test(test_dropout_module),
        cmocka_unit_test(test_feedforward_structure),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
