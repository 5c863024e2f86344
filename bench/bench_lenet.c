/* LeNet-5 training step, batch 64, one thread: milliseconds per step (median over blocks of 20
 * steps, after 20 warm-up steps), in wall time and in the process's CPU time (which the other
 * jobs of a shared machine do not inflate), and heap allocations per step in steady state. The
 * data are random images: a step's cost does not depend on the pixels. bench/compare_lenet.sh
 * runs this next to PyTorch's step (bench/lenet_torch.py -bench).
 *     build/bench/bench_lenet [blocks (10)] [steps per block (20): fewer under valgrind] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <tapegrad.h>
#include "bench/bench_util.h"

int main(int argc, char **argv)
{
    int blocks = argc > 1 ? atoi(argv[1]) : 10, steps = argc > 2 ? atoi(argv[2]) : 20, batch = 64;
    if (blocks < 1) blocks = 1;
    if (steps < 1) steps = 1;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_init init = tg_init_pytorch();
    tg_pool2d_opts pool = {.kernel = {2, 2}};
    tg_module *net = tg_sequential_new(0);   /* one layer per statement: draws in order */
    tg_sequential_append(net, tg_conv2d_new(1, 6, 5, &(tg_conv2d_opts){.padding = {2, 2}}, true,
                                            init, &rng));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_max_pool2d_new(&pool));
    tg_sequential_append(net, tg_conv2d_new(6, 16, 5, NULL, true, init, &rng));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_max_pool2d_new(&pool));
    tg_sequential_append(net, tg_flatten_new(1, -1));
    tg_sequential_append(net, tg_linear_new(400, 120, true, init, &rng));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_linear_new(120, 84, true, init, &rng));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_linear_new(84, 10, true, init, &rng));
    tg_param_list ps = {0};
    tg_module_parameters(net, &ps);
    tg_optimizer *opt = tg_adam_new(&ps, tg_adam_defaults());
    tg_tensor *x = tg_rand_uniform(TG_F32, TG_SHAPE(batch, 1, 28, 28), 0, 1, &rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(batch));
    for (int i = 0; i < batch; i++) ((int32_t *)y->data)[i] = (int32_t)tg_rng_below(&rng, 10);

    double *ms = malloc(2 * (size_t)blocks * sizeof *ms), *cpu_ms = ms + blocks;
    uint64_t allocs = bench_time_train_steps(net, opt, x, y, steps, steps, blocks, ms, cpu_ms);
    qsort(ms, (size_t)blocks, sizeof *ms, bench_cmp_double);
    qsort(cpu_ms, (size_t)blocks, sizeof *cpu_ms, bench_cmp_double);
    printf("%s\n", tg_blas_info());
    printf("tapegrad step ms: %.3f (LeNet-5, batch %d, median of %d blocks of %d steps)\n",
           ms[blocks / 2], batch, blocks, steps);
    printf("tapegrad step cpu ms: %.3f (process CPU time, same blocks)\n", cpu_ms[blocks / 2]);
    printf("heap allocations per step in steady state: %.2f (%llu over %d steps)\n",
           (double)allocs / ((double)steps * blocks), (unsigned long long)allocs, steps * blocks);
    free(ms);
    tg_optimizer_free(opt);
    tg_param_list_free(&ps);
    tg_module_free(net);
    tg_free(x), tg_free(y);
    return allocs == 0 ? 0 : 1;
}
