/* GFLOP/s of tg__gemm_f32 on the shapes tapegrad's MLP training produces, at 1 and 2 threads,
 * against the peak of this machine measured by an FMA loop in the same process.
 * Each figure is the median of REPS timed samples (after one warm-up sample); a sample repeats
 * the product enough times to last >= ~5 ms. The machine is shared: compare medians only.
 * "MLP step" times the five products of a batch-16 784-100-10 training step back to back. */
#include "autograd/blas.h"
#include "tg/core.h"
#include "bench/bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPS 15
#define SAMPLE_SECONDS 5e-3

typedef struct {
    const char *label;
    bool ta, tb;
    int64_t m, n, k;
} shape;

static const shape shapes[] = {
    {"1x784 . 784x10", false, false, 1, 10, 784},
    {"16x784 . 784x100", false, false, 16, 100, 784},
    {"16x100 . 100x10", false, false, 16, 10, 100},
    {"dW (16x100)^T . 16x784", true, false, 100, 784, 16},
    {"dX 16x100 . (784x100)^T", false, true, 16, 784, 100},
    {"256x784 . 784x1024", false, false, 256, 1024, 784},
    {"1024 . 1024 . 1024", false, false, 1024, 1024, 1024},
};

/* ---- gemm --------------------------------------------------------------------------------------- */

static float *random_matrix(int64_t n) {
    float *p = malloc((size_t)n * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

/* Median seconds per call of one shape. */
static double time_shape(const shape *s) {
    int64_t rows_a = s->ta ? s->k : s->m, cols_a = s->ta ? s->m : s->k;
    int64_t rows_b = s->tb ? s->n : s->k, cols_b = s->tb ? s->k : s->n;
    float *A = random_matrix(rows_a * cols_a), *B = random_matrix(rows_b * cols_b);
    float *C = random_matrix(s->m * s->n);
    long calls = 1;
    for (;;) { /* calibrate: a sample must last SAMPLE_SECONDS (doubles as warm-up) */
        double t0 = bench_wall();
        for (long i = 0; i < calls; i++)
            tg__gemm_f32(s->ta, s->tb, s->m, s->n, s->k, 1.0f, A, cols_a, B, cols_b, 0.0f, C, s->n);
        if (bench_wall() - t0 >= SAMPLE_SECONDS) break;
        calls *= 2;
    }
    double t[REPS];
    for (int r = 0; r < REPS; r++) {
        double t0 = bench_wall();
        for (long i = 0; i < calls; i++)
            tg__gemm_f32(s->ta, s->tb, s->m, s->n, s->k, 1.0f, A, cols_a, B, cols_b, 0.0f, C, s->n);
        t[r] = (bench_wall() - t0) / (double)calls;
    }
    free(A), free(B), free(C);
    return bench_median(t, REPS);
}

/* The five products of one training step of a 784-100-10 MLP at batch 16 (weights stored
 * [in, out]), back to back as the tape runs them: what decides the kernel choice. */
static const shape step[] = {
    {"h = x W1", false, false, 16, 100, 784},   {"y = h W2", false, false, 16, 10, 100},
    {"dW2 = h^T dy", true, false, 100, 10, 16}, {"dh = dy W2^T", false, true, 16, 100, 10},
    {"dW1 = x^T dh", true, false, 784, 100, 16},
};

static double time_step(double *flop) {
    enum { NS = sizeof step / sizeof step[0] };
    float *buf[NS][3];
    *flop = 0;
    for (int i = 0; i < NS; i++) {
        const shape *s = &step[i];
        buf[i][0] = random_matrix(s->m * s->k), buf[i][1] = random_matrix(s->k * s->n);
        buf[i][2] = random_matrix(s->m * s->n);
        *flop += 2.0 * (double)(s->m * s->n * s->k);
    }
    double t[REPS + 1];
    for (int r = 0; r <= REPS; r++) { /* sample 0 is the warm-up */
        double t0 = bench_wall();
        for (int it = 0; it < 200; it++)
            for (int i = 0; i < NS; i++) {
                const shape *s = &step[i];
                tg__gemm_f32(s->ta, s->tb, s->m, s->n, s->k, 1.0f, buf[i][0], s->ta ? s->m : s->k,
                             buf[i][1], s->tb ? s->k : s->n, 0.0f, buf[i][2], s->n);
            }
        t[r] = (bench_wall() - t0) / 200;
    }
    for (int i = 0; i < NS; i++) free(buf[i][0]), free(buf[i][1]), free(buf[i][2]);
    return bench_median(t + 1, REPS);
}

int main(void) {
    printf("%s\n", tg_blas_info());
    double peak1 = bench_peak_gflops(1, 20000000L), peak2 = bench_peak_gflops(2, 20000000L);
    printf("peak fp32 (FMA loop, %d-bit): %.0f GFLOP/s on 1 core, %.0f on 2\n\n", BENCH_LANES * 32, peak1, peak2);
    printf("%-26s %10s %10s %7s %10s %10s %7s\n", "shape (M x K . K x N)", "us/call 1t", "GFLOP/s 1t",
           "%peak", "us/call 2t", "GFLOP/s 2t", "%peak2");
    int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    double sec[2][sizeof shapes / sizeof shapes[0]];
    for (int th = 1; th <= 2; th++) {
        tg_set_num_threads(th);
        for (int i = 0; i < nshapes; i++) sec[th - 1][i] = time_shape(&shapes[i]);
    }
    double step_flop, step_sec[2];
    for (int th = 1; th <= 2; th++) {
        tg_set_num_threads(th);
        step_sec[th - 1] = time_step(&step_flop);
    }
    for (int i = 0; i < nshapes; i++) {
        const shape *s = &shapes[i];
        double flop = 2.0 * (double)(s->m * s->n * s->k);
        double g1 = flop / sec[0][i] * 1e-9, g2 = flop / sec[1][i] * 1e-9;
        printf("%-26s %10.2f %10.1f %6.1f%% %10.2f %10.1f %6.1f%%\n", s->label, sec[0][i] * 1e6, g1,
               100 * g1 / peak1, sec[1][i] * 1e6, g2, 100 * g2 / peak2);
    }
    double g1 = step_flop / step_sec[0] * 1e-9, g2 = step_flop / step_sec[1] * 1e-9;
    printf("%-26s %10.2f %10.1f %6.1f%% %10.2f %10.1f %6.1f%%\n", "MLP step (5 products)",
           step_sec[0] * 1e6, g1, 100 * g1 / peak1, step_sec[1] * 1e6, g2, 100 * g2 / peak2);
    tg_set_num_threads(1);
    printf("\n(%%peak: of 1 core for 1 thread, of 2 cores for 2 threads; medians of %d samples)\n",
           REPS);
    return 0;
}
