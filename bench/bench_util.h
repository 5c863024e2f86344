/* Helpers the benchmark programs share: clocks, the median of samples, and the machine's fp32
 * peak measured by an FMA loop of the widest vectors the CPU has (the bench programs are compiled
 * with -march=native, so the loop uses AVX-512 where it exists and AVX2 elsewhere).
 * Header-only (static functions): each bench program is one file built on its own. */
#ifndef TG_BENCH_UTIL_H
#define TG_BENCH_UTIL_H

#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <tapegrad.h>

/* Wall-clock seconds. */
static inline double bench_wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU seconds of the calling thread: on a shared machine wall time also counts the slices other
 * processes get; a one-thread figure is steadier in CPU time. */
static inline double bench_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU seconds of the whole process (the step's threads, if any, included). */
static inline double bench_process_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A classifier's training steps (zero_grad, forward, cross-entropy, backward, step, tape reset)
 * on one batch: a warm-up block of `warmup` steps (the arena and the gradients grow), then
 * `blocks` blocks of `steps`, each block's ms per step in wall time into ms[] and in process CPU
 * time into cpu_ms[]. Returns tapegrad's heap allocations over the timed blocks. */
static inline uint64_t bench_time_train_steps(tg_module *net, tg_optimizer *opt, tg_tensor *x,
                                              tg_tensor *y, int warmup, int steps, int blocks,
                                              double *ms, double *cpu_ms)
{
    uint64_t allocs = 0;
    for (int b = -1; b < blocks; b++) {
        int n = b < 0 ? warmup : steps;
        uint64_t a0 = tg_alloc_count();
        double t0 = bench_wall(), c0 = bench_process_cpu();
        for (int s = 0; s < n; s++) {
            tg_optimizer_zero_grad(opt);
            tg_tensor *loss = tg_cross_entropy(tg_module_forward(net, x), y, TG_REDUCE_MEAN);
            tg_backward(loss);
            tg_optimizer_step(opt);
            tg_tape_reset();
        }
        if (b < 0) continue;
        ms[b] = (bench_wall() - t0) / n * 1e3;
        cpu_ms[b] = (bench_process_cpu() - c0) / n * 1e3;
        allocs += tg_alloc_count() - a0;
    }
    return allocs;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v in place. */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- peak: independent FMA chains on the widest vectors ------------------------------------- */
#if defined(__AVX512F__)
typedef __m512 bench_vec;
#define BENCH_VFMA _mm512_fmadd_ps
#define BENCH_VSET _mm512_set1_ps
#define BENCH_LANES 16
#else /* AVX2 machines: half the width, so half the peak */
typedef __m256 bench_vec;
#define BENCH_VFMA _mm256_fmadd_ps
#define BENCH_VSET _mm256_set1_ps
#define BENCH_LANES 8
#endif
#define BENCH_FMA_CHAINS 12 /* > latency (4) x pipes (2), so the FMA units never wait */

typedef struct {
    long iters;
    float sink;
    double seconds; /* CPU time of the thread that ran the loop */
} bench_fma_job;

static inline void *bench_fma_loop(void *arg)
{
    bench_fma_job *job = arg;
    bench_vec acc[BENCH_FMA_CHAINS], x = BENCH_VSET(1e-7f), y = BENCH_VSET(0.999999f);
    for (int c = 0; c < BENCH_FMA_CHAINS; c++) acc[c] = BENCH_VSET((float)c);
    double t0 = bench_cpu();
    for (long it = 0; it < job->iters; it++)
        for (int c = 0; c < BENCH_FMA_CHAINS; c++) acc[c] = BENCH_VFMA(acc[c], y, x);
    job->seconds = bench_cpu() - t0;
    float s = 0;
    for (int c = 0; c < BENCH_FMA_CHAINS; c++) s += ((float *)&acc[c])[0];
    job->sink = s;
    return NULL;
}

/* fp32 GFLOP/s of one core (nthreads = 1) or of nthreads cores running the loop at once: the
 * median of 5 runs of `iters` iterations (2e7 take ~0.1 s on one core). One thread is timed in
 * its own CPU time; several in wall time, since they must overlap to count as parallel. */
static inline double bench_peak_gflops(int nthreads, long iters)
{
    enum { RUNS = 5, MAX_THREADS = 8 };
    double t[RUNS];
    if (nthreads < 1) nthreads = 1;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    for (int r = 0; r < RUNS; r++) {
        bench_fma_job jobs[MAX_THREADS];
        pthread_t th[MAX_THREADS];
        double t0 = bench_wall();
        for (int i = 0; i < nthreads; i++) {
            jobs[i] = (bench_fma_job){.iters = iters};
            pthread_create(&th[i], NULL, bench_fma_loop, &jobs[i]);
        }
        for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
        t[r] = nthreads == 1 ? jobs[0].seconds : bench_wall() - t0;
    }
    return (double)nthreads * (double)iters * BENCH_FMA_CHAINS * BENCH_LANES * 2 /
           bench_median(t, RUNS) * 1e-9;
}

#endif
