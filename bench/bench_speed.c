/* Every speed goal of issue 14, measured in one run and printed with its ratio and the goal:
 *   - the machine's fp32 peak, from an FMA loop of the widest vectors the CPU has (bench_util.h)
 *   - Table-1 MLP (784-100-10, ReLU, dropout 0.3, batch 16, SGD lr 0.01): seconds per epoch of
 *     50,000 examples through tg_train_epoch and a shuffling tg_loader, against the GEMM floor
 *     (the step's counted FLOPs / peak)
 *   - logistic regression (784 -> 10) at batch 1: µs per step (zero_grad, forward, cross-entropy,
 *     backward, SGD step, tape reset)
 *   - GEMM-bound MLP (784-1024-1024-10, ReLU, batch 256, SGD): % of one core's peak on one thread,
 *     and the speed-up of two threads over one
 *   - ns per recorded small op; heap allocations per training step in steady state
 * Figures are medians of repetitions. One-thread figures are timed in the thread's CPU time (the
 * machine may be shared; the peak is timed the same way), two-thread ones in wall time.
 *   bench_speed [-quick]       -quick: fewer repetitions, for a smoke run
 *   bench_speed -table1        only the Table-1 epoch (old/new comparisons of a lever)
 *   bench_speed -gemm          only the GEMM-bound MLP on one thread
 *   bench_speed -threads       only the GEMM-bound MLP on 1 and 2 threads, wall time
 *   bench_speed -logreg        only the logistic-regression step
 *   bench_speed -profile N     only N Table-1 steps on 4,000 examples, for
 *                              valgrind --tool=callgrind (instruction counts per lever)
 *   ... -in_backward           (after any of the above) SGD updates in backward
 * The full run prints the Table-1, logistic-regression and GEMM figures both ways: the usual
 * gradient-then-step, and with SGD's update written in the backward (tg_optimizer_set_in_backward).
 * bench/compare_speed.sh runs this next to bench/speed_torch.py. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tapegrad.h"
#include "bench/bench_util.h"

static int reps = 5;
/* SGD updates during backward (tg_optimizer_set_in_backward): lever 8 of docs/speed.md. */
static bool in_backward;

static tg_optimizer *sgd(tg_module *m, double lr)
{
    tg_param_list ps = {0};
    tg_module_parameters(m, &ps);
    tg_optimizer *opt = tg_sgd_new(&ps, (tg_sgd_opts){.lr = lr});
    tg_param_list_free(&ps);
    if (in_backward && !tg_optimizer_set_in_backward(opt, true)) {
        fprintf(stderr, "bench_speed: SGD refused updates in backward\n");
        exit(1);
    }
    return opt;
}

/* ---- Table-1 MLP ---------------------------------------------------------------------------- */

enum { T1_IN = 784, T1_HIDDEN = 100, T1_CLASSES = 10, T1_BATCH = 16, T1_EXAMPLES = 50000 };

/* FLOPs of one step: forward x·W1ᵀ and h·W2ᵀ; backward dW1, dW2 and dh (the input needs no
 * gradient). Elementwise work is not counted: the floor is the products alone. */
static double t1_step_flops(void)
{
    double b = T1_BATCH, l1 = (double)T1_IN * T1_HIDDEN, l2 = (double)T1_HIDDEN * T1_CLASSES;
    return 2 * b * (l1 + l2) + 2 * b * (l1 + l2) + 2 * b * l2;
}

typedef struct {
    double epoch_seconds, allocs_per_step, loss;
} t1_result;

/* The steps of tg_train_epoch, by hand: callgrind counts this function alone
 * (--toggle-collect=t1_profile_steps). Returns the last loss. */
static __attribute__((noinline)) double t1_profile_steps(tg_module *m, tg_optimizer *opt,
                                                         tg_loader *L, int steps)
{
    tg_tensor *xb, *yb;
    double loss = 0;
    for (int s = 0; s < steps; s++) {
        if (!tg_loader_next(L, &xb, &yb)) tg_loader_next(L, &xb, &yb);
        tg_optimizer_zero_grad(opt);
        tg_tensor *l = tg_cross_entropy(tg_module_forward(m, xb), yb, TG_REDUCE_MEAN);
        tg_backward(l);
        tg_optimizer_step(opt);
        loss = tg_item(l);
        tg_tape_reset();
    }
    return loss;
}

/* profile_steps > 0: only that many steps, on 4,000 examples (for callgrind). */
static t1_result table1_epochs(int profile_steps)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    int64_t n = profile_steps ? 4000 : T1_EXAMPLES;
    tg_tensor *x = tg_rand_uniform(TG_F32, TG_SHAPE(n, T1_IN), 0, 1, &rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(n));
    for (int64_t i = 0; i < n; i++) ((int32_t *)y->data)[i] = (int32_t)(tg_rng_next(&rng) % 10);
    tg_module *m = tg_feedforward_new(T1_IN, T1_CLASSES, T1_HIDDEN, 1, "relu", 0.3,
                                      tg_init_pytorch(), &rng);
    tg_optimizer *opt = sgd(m, 0.01);
    tg_loader *L = tg_loader_new(x, y, T1_BATCH, true, false, &rng);
    tg_train_opts topts = {.progress = TG_PROGRESS_OFF};
    double t[16];
    t1_result r = {0};
    if (profile_steps) {
        t1_profile_steps(m, opt, L, 20); /* warm-up, outside the counted function's first call */
        r.loss = t1_profile_steps(m, opt, L, profile_steps);
        goto done;
    }
    tg_train_epoch(m, opt, L, &topts); /* warm-up: arena chunks, BLIS buffers, page faults */
    uint64_t a0 = tg_alloc_count();
    int64_t steps = 0;
    for (int k = 0; k < reps; k++) {
        double t0 = bench_cpu();
        tg_epoch_stats s = tg_train_epoch(m, opt, L, &topts);
        t[k] = bench_cpu() - t0;
        steps += s.steps;
        r.loss = s.loss;
    }
    r.allocs_per_step = (double)(tg_alloc_count() - a0) / (double)steps;
    r.epoch_seconds = bench_median(t, reps);
done:
    tg_loader_free(L);
    tg_optimizer_free(opt);
    tg_module_free(m);
    tg_free(x), tg_free(y);
    return r;
}

/* ---- logistic regression, batch 1 ----------------------------------------------------------- */

static double logreg_step_us(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    tg_module *m = tg_linear_new(784, 10, true, tg_init_pytorch(), &rng);
    tg_optimizer *opt = sgd(m, 0.001);
    tg_tensor *x = tg_rand_uniform(TG_F32, TG_SHAPE(1, 784), 0, 1, &rng);
    tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(1), (int32_t[]){3});
    const int steps = 20000;
    double t[16];
    for (int k = 0; k < reps; k++) {
        double t0 = 0;
        for (int s = -200; s < steps; s++) {
            if (s == 0) t0 = bench_cpu();
            tg_optimizer_zero_grad(opt);
            tg_backward(tg_cross_entropy(tg_module_forward(m, x), y, TG_REDUCE_MEAN));
            tg_optimizer_step(opt);
            tg_tape_reset();
        }
        t[k] = (bench_cpu() - t0) / steps * 1e6;
    }
    tg_optimizer_free(opt);
    tg_module_free(m);
    tg_free(x), tg_free(y);
    return bench_median(t, reps);
}

/* ---- GEMM-bound MLP ------------------------------------------------------------------------- */

enum { G_IN = 784, G_HIDDEN = 1024, G_CLASSES = 10, G_BATCH = 256 };

static double gemm_mlp_flops(void)
{
    double b = G_BATCH, l1 = (double)G_IN * G_HIDDEN, l2 = (double)G_HIDDEN * G_HIDDEN,
           l3 = (double)G_HIDDEN * G_CLASSES;
    return 2 * b * (l1 + l2 + l3)      /* forward */
           + 2 * b * (l1 + l2 + l3)    /* weight gradients */
           + 2 * b * (l2 + l3);        /* input gradients of layers 2 and 3 */
}

/* Seconds per step (median), timed with clock(). */
static double gemm_mlp_step(int threads, double (*clock)(void))
{
    tg_set_num_threads(threads);
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_module *m = tg_feedforward_new(G_IN, G_CLASSES, G_HIDDEN, 2, "relu", 0, tg_init_pytorch(),
                                      &rng);
    tg_optimizer *opt = sgd(m, 0.01);
    tg_tensor *x = tg_rand_uniform(TG_F32, TG_SHAPE(G_BATCH, G_IN), 0, 1, &rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(G_BATCH));
    for (int i = 0; i < G_BATCH; i++) ((int32_t *)y->data)[i] = i % G_CLASSES;
    const int steps = 10;
    double t[16];
    for (int k = -1; k < reps; k++) { /* k = -1: warm-up */
        double t0 = clock();
        for (int s = 0; s < steps; s++) {
            tg_optimizer_zero_grad(opt);
            tg_backward(tg_cross_entropy(tg_module_forward(m, x), y, TG_REDUCE_MEAN));
            tg_optimizer_step(opt);
            tg_tape_reset();
        }
        if (k >= 0) t[k] = (clock() - t0) / steps;
    }
    tg_optimizer_free(opt);
    tg_module_free(m);
    tg_free(x), tg_free(y);
    tg_set_num_threads(1);
    return bench_median(t, reps);
}

/* ---- recorded small ops --------------------------------------------------------------------- */

/* A chain of 100 ops on 10 elements, then backward: time per op (forward and its backward). */
static double small_op_ns(void)
{
    tg_tensor *x = tg_set_requires_grad(tg_rand_normal(TG_F32, TG_SHAPE(10), 0, 1, NULL), true);
    tg_tensor *c = tg_rand_normal(TG_F32, TG_SHAPE(10), 0, 1, NULL);
    double t[16];
    const int iters = 2000, ops = 100;
    for (int k = 0; k < reps; k++) {
        double t0 = bench_cpu();
        for (int it = 0; it < iters; it++) {
            tg_tensor *h = x;
            for (int j = 0; j < ops / 4; j++)
                h = tg_tanh(tg_add(tg_mul(h, c), tg_mul_scalar(h, 0.5)));
            tg_backward(tg_sum(h));
            tg_tape_reset();
        }
        t[k] = (bench_cpu() - t0) / (iters * (double)(ops + 1)) * 1e9;
    }
    tg_free(x), tg_free(c);
    return bench_median(t, reps);
}

/* ---- report --------------------------------------------------------------------------------- */

static void line(const char *what, double value, const char *unit, const char *ratio,
                 const char *goal, bool met)
{
    printf("%-44s %10.3f %-9s %-26s %-22s %s\n", what, value, unit, ratio, goal,
           met ? "met" : "NOT MET");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-in_backward") == 0) in_backward = true;
    if (argc > 1 && strcmp(argv[1], "-quick") == 0) reps = 3;
    if (argc > 1 && strcmp(argv[1], "-logreg") == 0) {
        printf("logistic regression step %.3f us (median of %d, thread CPU time)\n",
               logreg_step_us(), reps);
        return 0;
    }
    tg_set_debug_checks(false);
    tg_manual_seed(1);
    if (argc > 2 && strcmp(argv[1], "-profile") == 0) {
        t1_result r = table1_epochs(atoi(argv[2]));
        printf("%d Table-1 steps, last loss %.6f\n", atoi(argv[2]), r.loss);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "-table1") == 0) {
        t1_result r = table1_epochs(0);
        printf("Table-1 MLP epoch %.4f s (median of %d, thread CPU time)\n", r.epoch_seconds, reps);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "-gemm") == 0) {
        double sec = gemm_mlp_step(1, bench_cpu);
        printf("GEMM MLP step %.3f ms (%.2f GFLOP, median of %d, thread CPU time)\n", sec * 1e3,
               gemm_mlp_flops() * 1e-9, reps);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "-threads") == 0) {
        double w1 = gemm_mlp_step(1, bench_wall), w2 = gemm_mlp_step(2, bench_wall);
        printf("GEMM MLP step, wall: 1 thread %.3f ms, 2 threads %.3f ms: %.2fx\n", w1 * 1e3,
               w2 * 1e3, w1 / w2);
        return 0;
    }
    printf("tapegrad %s, %s\n", tg_version(), tg_blas_info());
    double peak1 = bench_peak_gflops(1, 20000000L), peak2 = bench_peak_gflops(2, 20000000L);
    printf("peak fp32 (FMA loop, %d-bit vectors): %.1f GFLOP/s on 1 core, %.1f on 2 cores\n",
           BENCH_LANES * 32, peak1, peak2);
    printf("(medians of %d repetitions; 1-thread figures in thread CPU time, 2-thread in wall "
           "time)\n\n", reps);
    char ratio[64];

    double w1 = 0, w2 = 0, lr = 0, s1 = 0;
    t1_result t1 = {0};
    for (int pass = 0; pass < 2; pass++) {
        in_backward = pass == 1;
        printf(in_backward ? "\nSGD updates in backward (tg_optimizer_set_in_backward):\n"
                           : "gradient, then tg_optimizer_step:\n");
        t1 = table1_epochs(0);
        double steps = (T1_EXAMPLES + T1_BATCH - 1) / T1_BATCH;
        double floor_s = t1_step_flops() * steps / (peak1 * 1e9);
        snprintf(ratio, sizeof ratio, "%.2fx floor (%.3f s)", t1.epoch_seconds / floor_s, floor_s);
        line("Table-1 MLP epoch (50k, batch 16, 1 thread)", t1.epoch_seconds, "s", ratio,
             "<= 1.5x floor", t1.epoch_seconds <= 1.5 * floor_s);
        printf("  (step %.2f us, %.2f MFLOP/step, last epoch's loss %.4f)\n",
               t1.epoch_seconds / ((T1_EXAMPLES + T1_BATCH - 1) / T1_BATCH) * 1e6,
               t1_step_flops() * 1e-6, t1.loss);
        line("heap allocations per step (Table-1 MLP)", t1.allocs_per_step, "", "", "0",
             t1.allocs_per_step == 0);

        lr = logreg_step_us();
        line("logistic regression, batch 1", lr, "us/step", "", "<= 2 us", lr <= 2);

        double f = gemm_mlp_flops();
        s1 = gemm_mlp_step(1, bench_cpu);
        double pct = 100 * f / s1 / (peak1 * 1e9);
        snprintf(ratio, sizeof ratio, "%.1f%% of 1-core peak", pct);
        line("GEMM MLP 784-1024-1024-10 b256, 1 thread", s1 * 1e3, "ms/step", ratio, ">= 85%",
             pct >= 85);
        w1 = gemm_mlp_step(1, bench_wall);
        w2 = gemm_mlp_step(2, bench_wall);
        snprintf(ratio, sizeof ratio, "%.2fx 1 thread (%.2f ms)", w1 / w2, w1 * 1e3);
        line("GEMM MLP, 2 threads (wall)", w2 * 1e3, "ms/step", ratio, ">= 1.8x", w1 / w2 >= 1.8);
        if (pass == 0)
            printf("\nRESULT table1_epoch_s=%.4f\nRESULT logreg_us=%.3f\nRESULT gemm_1t_ms=%.3f\n"
                   "RESULT gemm_2t_ms=%.3f\n", t1.epoch_seconds, lr, s1 * 1e3, w2 * 1e3);
    }
    printf("\n");

    double ns = small_op_ns();
    line("recorded small op (10 elements, fwd+bwd)", ns, "ns/op", "", "<= 60 ns", ns <= 60);
    /* for bench/compare_speed.sh, the keys of bench/speed_torch.py: the last pass's */
    printf("\nRESULT table1_in_backward_s=%.4f\nRESULT logreg_in_backward_us=%.3f\n"
           "RESULT gemm_1t_in_backward_ms=%.3f\nRESULT gemm_2t_in_backward_ms=%.3f\n",
           t1.epoch_seconds, lr, s1 * 1e3, w2 * 1e3);
    return 0;
}
