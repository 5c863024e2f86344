/* The AlexNet-sized training step, one thread: milliseconds per step (median over blocks of
 * steps, after warm-up steps), in wall time and in the process's CPU time (which the other jobs of
 * a shared machine do not inflate), heap allocations per step in steady state (non-zero exit if
 * any), and where the step's CPU time goes, per op family. bench/compare_alexnet.sh runs this next
 * to PyTorch's step (bench/alexnet_step_torch.py).
 *
 * One step = zero_grad, forward, cross-entropy, backward, SGD step (momentum 0.9) on random data:
 *   -net cifar     the AlexNet experiment's network (examples/alexnet/model.c, with batch norm and
 *                  dropout, width 1, hidden 4096) on [64, 3, 32, 32], 10 classes (default);
 *   -net imagenet  the 224x224 AlexNet (torchvision's layers, no batch norm; its convolutions are
 *                  the "AlexNet" rows of bench/conv_layers.h) on [8, 3, 224, 224], 1000 classes.
 *
 *     build/bench/bench_alexnet [-net cifar|imagenet] [-blocks 5] [-steps 2] [-warmup 2]
 *                               [-breakdown 3]    (steps timed per op family; 0: none) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tapegrad.h>
#include "bench/bench_util.h"
#include "examples/alexnet/alexnet.h"

typedef struct {
    const char *net;
    int blocks, steps, warmup, breakdown;
} flags;

static int int_flag(const char *name, const char *value)
{
    char *end;
    long v = value ? strtol(value, &end, 10) : -1;
    if (!value || *end || v < 0 || v > 100000) {
        fprintf(stderr, "bench_alexnet: %s needs a count in [0, 100000], got %s\n", name,
                value ? value : "nothing");
        exit(2);
    }
    return (int)v;
}

static flags parse(int argc, char **argv)
{
    flags f = {"cifar", 5, 2, 2, 3};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-net") && v && (!strcmp(v, "cifar") || !strcmp(v, "imagenet"))) f.net = v;
        else if (!strcmp(a, "-blocks")) f.blocks = int_flag(a, v);
        else if (!strcmp(a, "-steps")) f.steps = int_flag(a, v);
        else if (!strcmp(a, "-warmup")) f.warmup = int_flag(a, v);
        else if (!strcmp(a, "-breakdown")) f.breakdown = int_flag(a, v);
        else {
            fprintf(stderr, "bench_alexnet: unknown flag or value at '%s' (flags: -net cifar|"
                            "imagenet, -blocks N, -steps N, -warmup N, -breakdown N)\n", a);
            exit(2);
        }
        i++;
    }
    if (f.blocks < 1) f.blocks = 1;
    if (f.steps < 1) f.steps = 1;
    return f;
}

/* torchvision's AlexNet for 224x224 inputs: five convolutions with ReLU and three 3x3 stride-2
 * max pools, adaptive average pool 6x6, dropout 0.5, 9216 -> 4096 -> 4096 -> classes. */
static tg_module *imagenet_alexnet(int64_t classes, tg_rng *rng)
{
    static const struct { int64_t out, k; int stride, pad; bool pool; } conv[5] = {
        {64, 11, 4, 2, true}, {192, 5, 1, 2, true}, {384, 3, 1, 1, false},
        {256, 3, 1, 1, false}, {256, 3, 1, 1, true}};
    tg_init init = tg_init_pytorch();
    tg_pool2d_opts pool = {.kernel = {3, 3}, .stride = {2, 2}};
    tg_module *net = tg_sequential_new(0);
    int64_t in = 3;
    for (int i = 0; i < 5; i++) {
        tg_conv2d_opts o = {.stride = {conv[i].stride, conv[i].stride},
                            .padding = {conv[i].pad, conv[i].pad}};
        tg_sequential_append(net, tg_conv2d_new(in, conv[i].out, conv[i].k, &o, true, init, rng));
        tg_sequential_append(net, tg_relu_new());
        if (conv[i].pool) tg_sequential_append(net, tg_max_pool2d_new(&pool));
        in = conv[i].out;
    }
    tg_sequential_append(net, tg_adaptive_avg_pool2d_new(6, 6));
    tg_sequential_append(net, tg_flatten_new(1, -1));
    int64_t features = in * 36;
    for (int i = 0; i < 2; i++) {
        tg_sequential_append(net, tg_dropout_new_rng(0.5, rng));
        tg_sequential_append(net, tg_linear_new(features, 4096, true, init, rng));
        tg_sequential_append(net, tg_relu_new());
        features = 4096;
    }
    tg_sequential_append(net, tg_linear_new(features, classes, true, init, rng));
    return net;
}

/* ---- per-op-family breakdown: forward by module, backward by tape record (backward hook) ---- */

enum { CONV, BN, POOL, RELU_DROPOUT, LINEAR, LOSS, OTHER, ZERO_GRAD, OPTIMIZER, FAMILIES };
static const char *const family_names[FAMILIES] = {
    "conv", "batch norm", "pooling", "relu/dropout", "linear", "loss", "other", "zero_grad",
    "optimizer"};

static int family_of(const char *name)
{
    static const struct { const char *needle; int family; } map[] = {
        {"Conv", CONV}, {"conv", CONV}, {"BatchNorm", BN}, {"batch_norm", BN},
        {"Pool", POOL}, {"pool", POOL}, {"ReLU", RELU_DROPOUT}, {"relu", RELU_DROPOUT},
        {"Dropout", RELU_DROPOUT}, {"dropout", RELU_DROPOUT}, {"Linear", LINEAR},
        {"linear", LINEAR}, {"matmul", LINEAR}, {"cross_entropy", LOSS}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strstr(name, map[i].needle)) return map[i].family;
    return OTHER;
}

typedef struct {
    double fwd[FAMILIES], bwd[FAMILIES];
    double last;   /* CPU time of the previous backward record's end */
} family_times;

static void time_record(const tg_node *node, void *user)
{
    family_times *t = user;
    double now = bench_process_cpu();
    t->bwd[family_of(node->op->name)] += now - t->last;
    t->last = now;
}

/* One step with its pieces timed: the layers' forwards one by one, every backward record, the
 * optimizer's zero_grad and step. */
static void timed_step(tg_module *net, tg_optimizer *opt, tg_tensor *x, tg_tensor *y,
                       family_times *t)
{
    memset(t, 0, sizeof *t);
    double c = bench_process_cpu();
    tg_optimizer_zero_grad(opt);
    t->fwd[ZERO_GRAD] += bench_process_cpu() - c;
    for (int i = 0; i < net->n_children; i++) {
        c = bench_process_cpu();
        x = tg_module_forward(net->children[i], x);
        t->fwd[family_of(net->children[i]->kind)] += bench_process_cpu() - c;
    }
    c = bench_process_cpu();
    tg_tensor *loss = tg_cross_entropy(x, y, TG_REDUCE_MEAN);
    t->fwd[LOSS] += bench_process_cpu() - c;
    tg_set_backward_hook(time_record, t);
    t->last = bench_process_cpu();
    tg_backward(loss);
    tg_set_backward_hook(NULL, NULL);
    c = bench_process_cpu();
    tg_optimizer_step(opt);
    t->bwd[OPTIMIZER] += bench_process_cpu() - c;
    tg_tape_reset();
}

static double median_of(const family_times *t, int n, int family, bool bwd, double *scratch)
{
    for (int i = 0; i < n; i++) scratch[i] = bwd ? t[i].bwd[family] : t[i].fwd[family];
    return bench_median(scratch, n) * 1e3;
}

static void print_breakdown(tg_module *net, tg_optimizer *opt, tg_tensor *x, tg_tensor *y, int n)
{
    family_times *t = malloc((size_t)n * sizeof *t);
    double *scratch = malloc((size_t)n * sizeof *scratch), total = 0;
    for (int i = 0; i < n; i++) timed_step(net, opt, x, y, &t[i]);
    printf("tapegrad breakdown, ms of CPU time per step (median of %d steps): family, forward, "
           "backward, both\n", n);
    for (int f = 0; f < FAMILIES; f++) {
        double fw = median_of(t, n, f, false, scratch), bw = median_of(t, n, f, true, scratch);
        total += fw + bw;
        printf("tapegrad family %-13s %9.2f %9.2f %9.2f\n", family_names[f], fw, bw, fw + bw);
    }
    printf("tapegrad family %-13s %9s %9s %9.2f\n", "sum", "", "", total);
    free(t);
    free(scratch);
}

int main(int argc, char **argv)
{
    flags f = parse(argc, argv);
    bool cifar = !strcmp(f.net, "cifar");
    int64_t batch = cifar ? 64 : 8, side = cifar ? 32 : 224, classes = cifar ? 10 : 1000;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_module *net = cifar ? ax_alexnet(3, (int)classes, 1.0, 4096, true, 0.5, &rng)
                           : imagenet_alexnet(classes, &rng);
    tg_param_list ps = {0};
    tg_module_parameters(net, &ps);
    tg_optimizer *opt = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 5e-3, .momentum = 0.9});
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(batch, 3, side, side), 0, 1, &rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(batch));
    for (int64_t i = 0; i < batch; i++)
        ((int32_t *)y->data)[i] = (int32_t)tg_rng_below(&rng, (uint64_t)classes);

    double *ms = malloc(2 * (size_t)f.blocks * sizeof *ms), *cpu_ms = ms + f.blocks;
    uint64_t allocs =
        bench_time_train_steps(net, opt, x, y, f.warmup, f.steps, f.blocks, ms, cpu_ms);
    printf("%s\n", tg_blas_info());
    printf("tapegrad step ms: %.2f (AlexNet %s, batch %lld, %lld parameters, median of %d "
           "blocks of %d steps)\n", bench_median(ms, f.blocks), f.net, (long long)batch,
           (long long)tg_module_num_parameters(net), f.blocks, f.steps);
    printf("tapegrad step cpu ms: %.2f (process CPU time, same blocks)\n",
           bench_median(cpu_ms, f.blocks));
    printf("heap allocations per step in steady state: %.2f (%llu over %d steps)\n",
           (double)allocs / ((double)f.steps * f.blocks), (unsigned long long)allocs,
           f.steps * f.blocks);
    if (f.breakdown > 0) print_breakdown(net, opt, x, y, f.breakdown);
    free(ms);
    tg_optimizer_free(opt);
    tg_param_list_free(&ps);
    tg_module_free(net);
    tg_free(x), tg_free(y);
    return allocs == 0 ? 0 : 1;
}
