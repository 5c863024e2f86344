/* Image modules: buffers in the module tree and in checkpoints, Conv2d / BatchNorm initialisation,
 * batch norm's train/eval switching and running statistics, the pooling and flatten modules, and
 * a LeNet-style CNN trained a few steps. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>

#include "tapegrad.h"
#include "tests/check.h"

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", check_tmpdir, name);
    return p;
}

static void expect_names(const tg_param_list *l, const char *const *names, int n)
{
    if (l->n != n) fail_msg("%d names listed, expected %d", l->n, n);
    for (int i = 0; i < n; i++) assert_string_equal(l->names[i], names[i]);
}

static double max_abs(const tg_tensor *t)
{
    double m = 0;
    for (int64_t i = 0; i < t->numel; i++) m = fmax(m, fabs(tg_get_flat(t, i)));
    return m;
}

static double std_of(const tg_tensor *t)
{
    double s = 0, sq = 0;
    for (int64_t i = 0; i < t->numel; i++) s += tg_get_flat(t, i);
    double m = s / (double)t->numel;
    for (int64_t i = 0; i < t->numel; i++) sq += pow(tg_get_flat(t, i) - m, 2);
    return sqrt(sq / (double)(t->numel - 1));
}

/* ---- buffers in the module tree ------------------------------------------------------------- */
static tg_tensor *pass_forward(tg_module *self, tg_tensor *x) { return x; }

static void test_buffers(void **state)
{
    tg_module *root = tg_module_new(sizeof(tg_module), "Root", pass_forward);
    tg_module *child = tg_module_new(sizeof(tg_module), "Child", pass_forward);
    tg_tensor *w = tg_module_add_param(root, "w", tg_zeros(TG_F32, TG_SHAPE(2)));
    tg_tensor *count = tg_module_add_buffer(root, "count", tg_zeros(TG_I64, 0, NULL));
    tg_tensor *stats = tg_module_add_buffer(child, "stats", tg_ones(TG_F32, TG_SHAPE(3)));
    tg_module_add_param(child, "v", tg_zeros(TG_F64, TG_SHAPE(1)));
    tg_module_add_child(root, "child", child);
    assert_false(count->requires_grad || stats->requires_grad);
    assert_true(w->requires_grad);
    assert_string_equal(count->name, "count");

    tg_param_list l = {0};
    tg_module_parameters(root, &l);
    expect_names(&l, (const char *[]){"w", "child.v"}, 2);
    tg_module_buffers(root, &l);
    expect_names(&l, (const char *[]){"count", "child.stats"}, 2);
    tg_module_state(root, &l);
    expect_names(&l, (const char *[]){"w", "count", "child.v", "child.stats"}, 4);
    tg_param_list_free(&l);
    assert_ptr_equal(tg_module_buffer(root, "child.stats"), stats);
    assert_ptr_equal(tg_module_buffer(root, "count"), count);
    assert_null(tg_module_buffer(root, "w"));         /* a parameter, not a buffer */
    assert_null(tg_module_param(root, "count"));
    assert_int_equal(tg_module_num_parameters(root), 3);

    tg_tensor *extra = tg_zeros(TG_F32, TG_SHAPE(1));
    EXPECT_ERROR("already has a parameter named 'w'", tg_module_add_buffer(root, "w", extra));
    EXPECT_ERROR("already has a buffer named 'count'", tg_module_add_param(root, "count", extra));
    EXPECT_ERROR("already has a buffer named 'count'", tg_module_add_buffer(root, "count", extra));
    EXPECT_ERROR("contains '.'", tg_module_add_buffer(root, "a.b", extra));
    tg_free(extra);
    tg_module_free(root);   /* frees buffers too (ASan checks) */
}

/* ---- Conv2d and BatchNorm initialisation ---------------------------------------------------- */
static void test_conv2d_init(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    tg_module *c = tg_conv2d_new(16, 32, 3, &(tg_conv2d_opts){.padding = {1, 1}}, true,
                                 tg_init_pytorch(), &rng);
    assert_string_equal(c->kind, "Conv2d");
    tg_tensor *w = tg_module_param(c, "weight"), *b = tg_module_param(c, "bias");
    int64_t shape[] = {32, 16, 3, 3};
    for (int a = 0; a < 4; a++) assert_int_equal(w->shape[a], shape[a]);
    assert_int_equal(b->shape[0], 32);
    double bound = 1.0 / sqrt(16 * 9);   /* kaiming_uniform(a=√5) = U(±1/√fan_in) */
    assert_true(max_abs(w) <= bound && max_abs(w) > 0.98 * bound);
    assert_near(std_of(w), bound / sqrt(3), 0.05 * bound / sqrt(3));
    assert_true(max_abs(b) <= bound && max_abs(b) > 0.7 * bound);
    tg_module_free(c);

    /* groups: fan_in is in/groups·k² */
    c = tg_conv2d_new(8, 12, 5, &(tg_conv2d_opts){.groups = 4}, false, tg_init_pytorch(), &rng);
    w = tg_module_param(c, "weight");
    assert_int_equal(w->shape[1], 2);
    assert_null(tg_module_param(c, "bias"));
    bound = 1.0 / sqrt(2 * 25);
    assert_true(max_abs(w) <= bound && max_abs(w) > 0.95 * bound);
    tg_module_free(c);

    /* Xavier with conv fans: fan_out = out·k² */
    c = tg_conv2d_new(4, 6, 3, NULL, true, tg_init_xavier_uniform(), &rng);
    bound = sqrt(6.0 / (4 * 9 + 6 * 9));
    w = tg_module_param(c, "weight");
    assert_true(max_abs(w) <= bound && max_abs(w) > 0.9 * bound);
    assert_true(max_abs(tg_module_param(c, "bias")) == 0);
    tg_module_free(c);

    EXPECT_ERROR("groups 3 must divide", tg_conv2d_new(8, 12, 3, &(tg_conv2d_opts){.groups = 3},
                                                       true, tg_init_pytorch(), &rng));
}

static void test_batch_norm_init(void **state)
{
    tg_module *bn = tg_batch_norm2d_new(5, NULL);
    assert_string_equal(bn->kind, "BatchNorm2d");
    tg_param_list l = {0};
    tg_module_state(bn, &l);
    expect_names(&l, (const char *[]){"weight", "bias", "running_mean", "running_var",
                                      "num_batches_tracked"}, 5);
    for (int i = 0; i < 4; i++) {
        double want = i == 0 || i == 3 ? 1 : 0;
        assert_int_equal(l.tensors[i]->numel, 5);
        for (int64_t k = 0; k < 5; k++) assert_true(tg_get_flat(l.tensors[i], k) == want);
    }
    assert_int_equal(l.tensors[4]->dtype, TG_I64);
    assert_int_equal(l.tensors[4]->ndim, 0);
    assert_true(tg_item(l.tensors[4]) == 0);
    tg_module_parameters(bn, &l);
    expect_names(&l, (const char *[]){"weight", "bias"}, 2);   /* what an optimizer gets */
    tg_param_list_free(&l);
    char buf[256];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    tg_module_print(bn, f);
    fclose(f);
    assert_non_null(strstr(buf, "BatchNorm2d(5, eps=1e-05, momentum=0.1, affine=True, "
                                "track_running_stats=True)"));
    tg_module_free(bn);

    bn = tg_batch_norm1d_new(3, &(tg_batch_norm_opts){.no_affine = true, .no_running_stats = true});
    tg_module_state(bn, &l);
    assert_int_equal(l.n, 0);
    tg_param_list_free(&l);
    tg_module_free(bn);
    EXPECT_ERROR("momentum in (0, 1]",
                 tg_batch_norm2d_new(3, &(tg_batch_norm_opts){.momentum = 2}));
}

/* ---- batch norm: train and eval ------------------------------------------------------------- */
static void test_batch_norm_train_eval(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    int64_t n = 4, c = 3, h = 2, w = 5, per = n * h * w;
    tg_tensor *x = tg_rand_normal(TG_F64, TG_SHAPE(n, c, h, w), 2, 3, &rng);
    tg_module *bn = tg_batch_norm2d_new(c, &(tg_batch_norm_opts){.dtype = TG_F64});
    tg_module *dropout = tg_dropout_new_rng(0.5, &rng);
    tg_module *seq = tg_sequential_new(2, bn, dropout);
    tg_tensor *rm = tg_module_buffer(bn, "running_mean"), *rv = tg_module_buffer(bn, "running_var");
    tg_tensor *nbt = tg_module_buffer(bn, "num_batches_tracked");

    double mean[3], var[3];   /* batch statistics per channel, by hand */
    for (int64_t k = 0; k < c; k++) {
        double s = 0, sq = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t p = 0; p < h * w; p++) s += tg_get_flat(x, (i * c + k) * h * w + p);
        mean[k] = s / (double)per;
        for (int64_t i = 0; i < n; i++)
            for (int64_t p = 0; p < h * w; p++)
                sq += pow(tg_get_flat(x, (i * c + k) * h * w + p) - mean[k], 2);
        var[k] = sq / (double)per;
    }

    /* training: batch statistics, running ones updated (unbiased variance), count + 1 */
    tg_tensor *y = tg_module_forward(bn, x);
    for (int64_t k = 0; k < c; k++) {
        assert_near(tg_get_flat(rm, k), 0.1 * mean[k], 1e-12);
        double unbiased = var[k] * (double)per / (double)(per - 1);
        assert_near(tg_get_flat(rv, k), 0.9 + 0.1 * unbiased, 1e-12);
        for (int64_t i = 0; i < n; i++) {
            int64_t at = (i * c + k) * h * w + 3;
            assert_near(tg_get_flat(y, at), (tg_get_flat(x, at) - mean[k]) / sqrt(var[k] + 1e-5),
                        1e-10);
        }
    }
    assert_true(tg_item(nbt) == 1);
    tg_tape_reset();

    /* eval through the parent: running statistics, nothing updated, dropout off too */
    tg_module_eval(seq);
    assert_false(bn->training || dropout->training);
    double rm0 = tg_get_flat(rm, 1), rv0 = tg_get_flat(rv, 1);
    y = tg_module_forward(seq, x);
    for (int64_t i = 0; i < x->numel; i++) {
        int64_t k = i / (h * w) % c;
        assert_near(tg_get_flat(y, i),
                    (tg_get_flat(x, i) - tg_get_flat(rm, k)) / sqrt(tg_get_flat(rv, k) + 1e-5),
                    1e-10);
    }
    assert_true(tg_get_flat(rm, 1) == rm0 && tg_get_flat(rv, 1) == rv0 && tg_item(nbt) == 1);
    tg_tape_reset();

    /* back to training: statistics move again */
    tg_module_train(seq, true);
    tg_module_forward(bn, x);
    assert_true(tg_item(nbt) == 2);
    assert_near(tg_get_flat(rm, 1), 0.9 * rm0 + 0.1 * mean[1], 1e-12);
    tg_tape_reset();

    /* momentum=None: the running mean is the plain average of the batch means */
    tg_module *cum = tg_batch_norm1d_new(2, &(tg_batch_norm_opts){.cumulative = true,
                                                                  .dtype = TG_F64});
    tg_tensor *a = tg_rand_normal(TG_F64, TG_SHAPE(6, 2), 1, 1, &rng);
    tg_tensor *b = tg_rand_normal(TG_F64, TG_SHAPE(6, 2), -3, 1, &rng);
    tg_module_forward(cum, a);
    tg_module_forward(cum, b);
    tg_tape_reset();
    double ma = 0, mb = 0;
    for (int i = 0; i < 6; i++) ma += tg_get_flat(a, 2 * i) / 6, mb += tg_get_flat(b, 2 * i) / 6;
    assert_near(tg_get_flat(tg_module_buffer(cum, "running_mean"), 0), (ma + mb) / 2, 1e-12);
    tg_module_free(cum);
    tg_free(a), tg_free(b);
    tg_tensor *rows = tg_zeros(TG_F64, TG_SHAPE(2, 3));
    EXPECT_ERROR("BatchNorm2d(3): expected input [N, C, H, W] with 3 channels",
                 tg_module_forward(bn, rows));
    tg_free(x), tg_free(rows);
    tg_module_free(seq);
}

/* ---- pooling and flatten -------------------------------------------------------------------- */
static void test_pool_flatten(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(2, 3, 8, 6), 0, 1, &rng);
    tg_module *mp = tg_max_pool2d_new(&(tg_pool2d_opts){.kernel = {2, 2}});
    tg_module *ap = tg_avg_pool2d_new(&(tg_pool2d_opts){.kernel = {3, 3}, .stride = {1, 1},
                                                        .padding = {1, 1}});
    tg_module *gap = tg_adaptive_avg_pool2d_new(1, 1);
    tg_module *fl = tg_flatten_new(1, -1);

    tg_tensor *y = tg_module_forward(mp, x);
    assert_int_equal(y->shape[2], 4);
    assert_int_equal(y->shape[3], 3);
    /* element (1, 2, 3, 1): the largest of rows 6-7, columns 2-3 */
    double m = -INFINITY;
    for (int r = 6; r < 8; r++)
        for (int q = 2; q < 4; q++) m = fmax(m, tg_get(x, (int64_t[]){1, 2, r, q}));
    assert_true(tg_get(y, (int64_t[]){1, 2, 3, 1}) == m);

    y = tg_module_forward(ap, x);
    assert_int_equal(y->shape[2], 8);
    assert_int_equal(y->shape[3], 6);

    y = tg_module_forward(gap, x);
    assert_int_equal(y->ndim, 4);
    assert_int_equal(y->shape[2] * y->shape[3], 1);
    double s = 0;
    for (int r = 0; r < 8; r++)
        for (int q = 0; q < 6; q++) s += tg_get(x, (int64_t[]){0, 1, r, q});
    assert_near(tg_get(y, (int64_t[]){0, 1, 0, 0}), s / 48, 1e-5);

    y = tg_module_forward(fl, x);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[1], 3 * 8 * 6);
    tg_tape_reset();

    char buf[512];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    tg_module *seq = tg_sequential_new(4, mp, ap, gap, fl);
    tg_module_print(seq, f);
    fclose(f);
    assert_non_null(strstr(buf, "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"));
    assert_non_null(strstr(buf, "AdaptiveAvgPool2d(output_size=(1, 1))"));
    assert_non_null(strstr(buf, "Flatten(start_dim=1, end_dim=-1)"));
    EXPECT_ERROR("padding 2 between 0 and half the kernel",
                 tg_max_pool2d_new(&(tg_pool2d_opts){.kernel = {2, 2}, .padding = {2, 0}}));
    tg_module_free(seq);
    tg_free(x);
}

/* ---- a CNN: checkpoints with buffers, and a few training steps ----------------------------- */
/* LeNet-5 for 1x28x28 inputs: conv 5x5 pad 2 -> 6, pool, conv 5x5 -> 16, pool, 120, 84, out. */
static tg_module *lenet(int n_classes, bool batch_norm, tg_rng *rng)
{
    tg_init init = tg_init_pytorch();
    tg_pool2d_opts pool = {.kernel = {2, 2}};
    tg_module *net = tg_sequential_new(0);
    tg_sequential_append(net, tg_conv2d_new(1, 6, 5, &(tg_conv2d_opts){.padding = {2, 2}}, true,
                                            init, rng));
    if (batch_norm) tg_sequential_append(net, tg_batch_norm2d_new(6, NULL));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_max_pool2d_new(&pool));
    tg_sequential_append(net, tg_conv2d_new(6, 16, 5, NULL, true, init, rng));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_max_pool2d_new(&pool));
    tg_sequential_append(net, tg_flatten_new(1, -1));
    tg_sequential_append(net, tg_linear_new(16 * 5 * 5, 120, true, init, rng));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_linear_new(120, 84, true, init, rng));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_linear_new(84, n_classes, true, init, rng));
    return net;
}

/* Two classes of 28x28 images: noise plus a bright horizontal (class 0) or vertical (class 1)
 * bar at a random position. */
static void make_bars(int64_t n, tg_rng *rng, tg_tensor **x, tg_tensor **y)
{
    *x = tg_rand_normal(TG_F32, TG_SHAPE(n, 1, 28, 28), 0, 0.3, rng);
    *y = tg_zeros(TG_I32, TG_SHAPE(n));
    float *px = (*x)->data;
    for (int64_t i = 0; i < n; i++) {
        int label = (int)tg_rng_below(rng, 2), at = 4 + (int)tg_rng_below(rng, 20);
        ((int32_t *)(*y)->data)[i] = label;
        for (int t = 0; t < 28; t++) px[i * 784 + (label ? t * 28 + at : at * 28 + t)] += 1.5f;
    }
}

static double train_steps(tg_module *net, tg_optimizer *opt, tg_tensor *x, tg_tensor *y, int steps,
                          uint64_t *allocs_late)
{
    double loss = 0;
    *allocs_late = tg_alloc_count();
    for (int s = 0; s < steps; s++) {
        if (s == steps - 3) *allocs_late = tg_alloc_count();
        tg_optimizer_zero_grad(opt);
        tg_tensor *l = tg_cross_entropy(tg_module_forward(net, x), y, TG_REDUCE_MEAN);
        loss = tg_item(l);
        tg_backward(l);
        tg_optimizer_step(opt);
        tg_tape_reset();
    }
    *allocs_late = tg_alloc_count() - *allocs_late;
    return loss;
}

static double accuracy(tg_module *net, tg_tensor *x, tg_tensor *y)
{
    bool grad = tg_set_grad_enabled(false);
    tg_module_eval(net);
    tg_tensor *pred = tg_argmax(tg_module_forward(net, x), 1);
    int64_t hits = 0;
    for (int64_t i = 0; i < y->numel; i++)
        hits += ((int32_t *)pred->data)[i] == ((int32_t *)y->data)[i];
    tg_tape_reset();
    tg_module_train(net, true);
    tg_set_grad_enabled(grad);
    return (double)hits / (double)y->numel;
}

static void test_cnn_trains(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 21);
    tg_tensor *x, *y, *xt, *yt;
    make_bars(64, &rng, &x, &y);
    make_bars(128, &rng, &xt, &yt);
    tg_module *net = lenet(2, true, &rng);
    tg_param_list ps = {0};
    tg_module_parameters(net, &ps);
    tg_adam_opts ao = tg_adam_defaults();
    ao.lr = 3e-3;
    tg_optimizer *opt = tg_adam_new(&ps, ao);
    double before = accuracy(net, xt, yt);
    tg_tensor *l0 = tg_cross_entropy(tg_module_forward(net, x), y, TG_REDUCE_MEAN);
    double first = tg_item(l0);
    tg_tape_reset();
    uint64_t allocs;
    double last = train_steps(net, opt, x, y, 25, &allocs);
    double after = accuracy(net, xt, yt);
    printf("LeNet+BN on bars: loss %.4f -> %.4f, held-out accuracy %.3f -> %.3f, %llu "
           "allocations in the last 3 steps\n", first, last, before, after,
           (unsigned long long)allocs);
    assert_true(last < 0.5 * first);
    assert_true(after > 0.9);
    assert_int_equal(allocs, 0);
    assert_true(tg_item(tg_module_buffer(net, "1.num_batches_tracked")) == 26);
    tg_optimizer_free(opt);
    tg_param_list_free(&ps);
    tg_module_free(net);
    tg_free(x), tg_free(y), tg_free(xt), tg_free(yt);
}

static void test_checkpoint_buffers(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_tensor *x, *y;
    make_bars(16, &rng, &x, &y);
    tg_module *net = lenet(2, true, &rng);
    tg_param_list ps = {0};
    tg_module_parameters(net, &ps);
    tg_optimizer *opt = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.05, .momentum = 0.9});
    uint64_t allocs;
    train_steps(net, opt, x, y, 3, &allocs);
    const char *path = tmp_path("lenet_bn.safetensors");
    assert_int_equal(tg_checkpoint_save(path, net, opt, NULL), TG_OK);

    /* PyTorch's names and dtypes: a strict load of exactly these tensors must succeed */
    tg_param_list want = {0};
    tg_module_state(net, &want);
    assert_string_equal(want.names[2], "1.weight");
    assert_string_equal(want.names[4], "1.running_mean");
    assert_string_equal(want.names[6], "1.num_batches_tracked");
    assert_int_equal(want.tensors[6]->dtype, TG_I64);
    tg_tensor *saved_rm = tg_clone(want.tensors[4]), *saved_w = tg_clone(want.tensors[0]);

    /* train on: buffers and weights move; loading restores them all */
    train_steps(net, opt, x, y, 2, &allocs);
    assert_true(tg_item(want.tensors[6]) == 5);
    assert_true(tg_get_flat(want.tensors[4], 0) != tg_get_flat(saved_rm, 0));
    assert_int_equal(tg_checkpoint_load(path, net, opt, NULL), TG_OK);
    assert_true(tg_item(want.tensors[6]) == 3);
    assert_memory_equal(want.tensors[4]->data, saved_rm->data, tg_nbytes(saved_rm));
    assert_memory_equal(want.tensors[0]->data, saved_w->data, tg_nbytes(saved_w));

    /* a model without batch norm cannot load it, and the reverse names the missing buffer */
    tg_module *plain = lenet(2, false, &rng);
    assert_int_equal(tg_checkpoint_load(path, plain, NULL, NULL), TG_ERR_FORMAT);
    const char *plain_path = tmp_path("lenet.safetensors");
    assert_int_equal(tg_checkpoint_save(plain_path, plain, NULL, NULL), TG_OK);
    tg_module *other = lenet(2, true, &rng);
    assert_int_equal(tg_checkpoint_load(plain_path, other, NULL, NULL), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "1.weight"));

    tg_free(saved_rm), tg_free(saved_w);
    tg_param_list_free(&want);
    tg_optimizer_free(opt);
    tg_param_list_free(&ps);
    tg_module_free(net), tg_module_free(plain), tg_module_free(other);
    tg_free(x), tg_free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buffers),
        cmocka_unit_test(test_conv2d_init),
        cmocka_unit_test(test_batch_norm_init),
        cmocka_unit_test(test_batch_norm_train_eval),
        cmocka_unit_test(test_pool_flatten),
        cmocka_unit_test(test_cnn_trains),
        cmocka_unit_test(test_checkpoint_buffers),
    };
    return cmocka_run_group_tests(tests, check_tmpdir_setup, check_tmpdir_teardown);
}
