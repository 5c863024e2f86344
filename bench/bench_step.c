/* Engine overhead benchmark (prints figures; not a test):
 *   - ns per recorded elementwise op on 10-element tensors (forward + its share of backward)
 *   - µs per logistic-regression training step at batch 1 (784 -> 10: forward, cross-entropy,
 *     backward, SGD update written inline so only the engine is measured)
 *   - heap allocations per step after warm-up
 *   - GFLOP/s of tg_matmul on the shapes of a batch-16 MLP step and on 256x784·784x1024
 * Every figure is the median of several repetitions.
 *
 * Usage: bench_step [--quick] [--only small|logreg|mlp|gemm] [threads]
 *   --quick runs one repetition of a tenth of the iterations (for valgrind --tool=callgrind;
 *   the figures of the benchmark are the default runs). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tapegrad.h"
#include "bench/bench_util.h"

static int reps = 9, iter_div = 1;
enum { MAX_REPS = 9 };

/* A chain of 100 ops on 10 elements, then backward: time per op. (noinline, here and below:
 * callgrind --toggle-collect finds the measured loops by name.) */
__attribute__((noinline)) static double small_op_ns(void)
{
    tg_tensor *x = tg_set_requires_grad(tg_rand_normal(TG_F32, TG_SHAPE(10), 0, 1, NULL), true);
    tg_tensor *c = tg_rand_normal(TG_F32, TG_SHAPE(10), 0, 1, NULL);
    double t[MAX_REPS];
    const int iters = 2000 / iter_div, ops = 100;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_wall();
        for (int it = 0; it < iters; it++) {
            tg_tensor *h = x;
            for (int k = 0; k < ops / 4; k++) h = tg_tanh(tg_add(tg_mul(h, c), tg_mul_scalar(h, 0.5)));
            tg_backward(tg_sum(h));
            tg_tape_reset();
        }
        t[r] = (bench_wall() - t0) / (iters * (double)(ops + 1)) * 1e9;
    }
    tg_free(x), tg_free(c);
    return bench_median(t, reps);
}

static void sgd_update(tg_tensor *p, float lr)
{
    float *w = p->data, *g = tg_get_grad(p)->data;
    for (int64_t i = 0; i < p->numel; i++) w[i] -= lr * g[i];
    tg_zero_grad(p);
}

/* Logistic regression, batch 1: returns µs per step and sets *allocs to allocations per step. */
__attribute__((noinline)) static double logreg_step_us(double *allocs)
{
    tg_tensor *W = tg_set_requires_grad(tg_rand_uniform(TG_F32, TG_SHAPE(10, 784), -0.03, 0.03, NULL), true);
    tg_tensor *b = tg_set_requires_grad(tg_zeros(TG_F32, TG_SHAPE(10)), true);
    tg_tensor *x = tg_rand_uniform(TG_F32, TG_SHAPE(1, 784), 0, 1, NULL);
    tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(1), (int32_t[]){3});
    const int steps = 20000 / iter_div;
    double t[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        uint64_t a0 = 0;
        double t0 = 0;
        for (int s = -100; s < steps; s++) {
            if (s == 0) a0 = tg_alloc_count(), t0 = bench_wall();
            tg_tensor *loss = tg_cross_entropy(tg_linear(x, W, b), y, TG_REDUCE_MEAN);
            tg_backward(loss);
            sgd_update(W, 1e-3f);
            sgd_update(b, 1e-3f);
            tg_tape_reset();
        }
        t[r] = (bench_wall() - t0) / steps * 1e6;
        *allocs = (double)(tg_alloc_count() - a0) / steps;
    }
    tg_free(W), tg_free(b), tg_free(x), tg_free(y);
    return bench_median(t, reps);
}

/* The default Question 2 MLP (784-100-10, ReLU, dropout 0.3, batch 16, SGD lr 0.01) on random
 * data held in the batch tensors: µs per step of zero_grad, forward, cross-entropy, backward,
 * tg_optimizer_step, tg_item and tape reset (the runner's loop without the loader's row copies). */
static double mlp_step_us(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_module *m = tg_feedforward_new(784, 10, 100, 1, "relu", 0.3, tg_init_pytorch(), &rng);
    tg_param_list ps = {0};
    tg_module_parameters(m, &ps);
    tg_optimizer *opt = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.01});
    tg_param_list_free(&ps);
    tg_tensor *x = tg_rand_uniform(TG_F32, TG_SHAPE(16, 784), 0, 1, &rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(16));
    for (int i = 0; i < 16; i++) ((int32_t *)y->data)[i] = i % 10;
    const int steps = 2000 / iter_div;
    double t[MAX_REPS], sink = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = 0;
        for (int s = -100; s < steps; s++) {
            if (s == 0) t0 = bench_wall();
            tg_optimizer_zero_grad(opt);
            tg_tensor *loss = tg_cross_entropy(tg_module_forward(m, x), y, TG_REDUCE_MEAN);
            tg_backward(loss);
            tg_optimizer_step(opt);
            sink += tg_item(loss);
            tg_tape_reset();
        }
        t[r] = (bench_wall() - t0) / steps * 1e6;
    }
    if (sink != sink) printf("(loss became NaN)\n");
    tg_optimizer_free(opt);
    tg_module_free(m);
    tg_free(x), tg_free(y);
    return bench_median(t, reps);
}

/* GFLOP/s of tg_matmul (a [M,K] · b [K,N]) or of tg_linear (x [M,K] · W[N,K]ᵀ, no bias), the
 * product every nn.Linear forward makes. */
static double matmul_gflops(int64_t M, int64_t K, int64_t N, bool linear)
{
    tg_tensor *a = tg_rand_normal(TG_F32, TG_SHAPE(M, K), 0, 1, NULL);
    tg_tensor *b = linear ? tg_rand_normal(TG_F32, TG_SHAPE(N, K), 0, 1, NULL)
                          : tg_rand_normal(TG_F32, TG_SHAPE(K, N), 0, 1, NULL);
    double flops = 2.0 * (double)(M * K * N), t[MAX_REPS];
    int iters = (int)(4e9 / flops / iter_div) + 1;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_wall();
        for (int it = 0; it < iters; it++) {
            if (linear) tg_linear(a, b, NULL);
            else tg_matmul(a, b);
            tg_tape_reset();
        }
        t[r] = flops * iters / (bench_wall() - t0) / 1e9;
    }
    tg_free(a), tg_free(b);
    return bench_median(t, reps);
}

static bool wanted(const char *only, const char *part) { return !only || !strcmp(only, part); }

int main(int argc, char **argv)
{
    int threads = 2;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) reps = 1, iter_div = 10;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (atoi(argv[i]) > 0) threads = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--only small|logreg|mlp|gemm] [threads]\n",
                    argv[0]);
            return 2;
        }
    }
    tg_set_debug_checks(false);
    tg_manual_seed(1);
    printf("tapegrad %s, %s\n", tg_version(), tg_blas_info());
    if (wanted(only, "small"))
        printf("small op (10 elements, fwd+bwd):      %8.1f ns/op   (goal <= 60)\n", small_op_ns());
    if (wanted(only, "logreg")) {
        double allocs = 0;
        double us = logreg_step_us(&allocs);
        printf("logistic regression step, batch 1:     %8.2f us/step (goal <= 2)\n", us);
        printf("heap allocations per step (steady):    %8.3f        (goal 0)\n", allocs);
    }
    if (wanted(only, "mlp"))
        printf("MLP 784-100-10 step, batch 16, dropout: %8.2f us/step (1 thread)\n", mlp_step_us());
    if (!wanted(only, "gemm")) return 0;
    const int64_t shapes[][3] = {{16, 784, 100}, {16, 100, 10}, {1, 784, 10}, {256, 784, 1024}};
    printf("%-24s %-8s %16s %16s\n", "product (M x K . K x N)", "threads", "tg_matmul", "tg_linear");
    for (int s = 0; s < 4; s++) {
        for (int th = 1; th <= threads; th++) {
            tg_set_num_threads(th);
            char name[64];
            snprintf(name, sizeof name, "%lldx%lld . %lldx%lld", (long long)shapes[s][0],
                     (long long)shapes[s][1], (long long)shapes[s][1], (long long)shapes[s][2]);
            double mm = matmul_gflops(shapes[s][0], shapes[s][1], shapes[s][2], false);
            double lin = matmul_gflops(shapes[s][0], shapes[s][1], shapes[s][2], true);
            printf("%-24s %-8d %9.1f GFLOP/s %9.1f GFLOP/s\n", name, th, mm, lin);
        }
    }
    printf("(GFLOP/s are medians of %d runs; this machine's peak: see bench_gemm)\n", reps);
    return 0;
}
