/* tapegrad's product path (tg__gemm_f32 / tg__gemm_f64: BLIS) against a libxsmm JIT kernel, per
 * shape, for the five products of the Table-1 step and the GEMM-bound MLP's (issue 14, lever 5).
 * Row-major C[M,N] = op(A)·op(B) + beta C is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, so libxsmm gets
 * m = N, n = M, its A = B (transposed when trans_b) and its B = A (transposed when trans_a).
 * Each repetition times a batch of calls of one path then of the other (interleaved), in thread
 * CPU time; the table gives medians, GFLOP/s, the share of the FMA-loop peak and xsmm/BLIS time,
 * and tg/BLIS: tg__gemm as built (libxsmm where autograd/xsmm.c's rule sends it, through its
 * kernel cache) over tg__gemm with the libxsmm path off.
 *   bench_xsmm [-quick] [-f64]
 *   bench_xsmm -only NAME xsmm|blis|tg   1000 calls of one path on one shape (callgrind counts;
 *                                        tg: tg__gemm as built)
 *   bench_xsmm -fwd                      the forward x·Wᵀ products, every way tried to run them
 *                                        (BLIS orientations, sup off, packing; libxsmm on a
 *                                        transposed copy of W or of x): docs/speed.md, Lever 7
 *   bench_xsmm -step [blocks]            the Table-1 step (784-100-10, dropout, batch 16, SGD) by
 *                                        phase, with the transposed-x path off and on in
 *                                        alternating blocks of 500 steps in one process
 *   bench_xsmm -step [blocks] -in_backward  the same with SGD's update in backward
 * Built only when libxsmm is present (make XSMM=1, the default when its header exists). */
#include <blis.h>
#include <libxsmm.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tapegrad.h"
#include "autograd/blas.h"
#include "bench/bench_util.h"

typedef struct {
    const char *name;
    bool ta, tb;
    int m, n, k;
    double beta;
} shape;

/* Where tapegrad issues these (ops/matmul.c, tg_linear): the forward x·Wᵀ with beta 1 (the bias is
 * already in y), the input gradient G·W and the weight gradient Gᵀ·X, both accumulated (beta 1). */
static const shape shapes[] = {
    {"t1 fwd1 x.W1t", false, true, 16, 100, 784, 1},
    {"t1 fwd2 h.W2t", false, true, 16, 10, 100, 1},
    {"t1 dX2 g.W2", false, false, 16, 100, 10, 1},
    {"t1 dW2 gt.h", true, false, 10, 100, 16, 1},
    {"t1 dW1 gt.x", true, false, 100, 784, 16, 1},
    {"t1 fwd1 beta0", false, true, 16, 100, 784, 0},
    {"t1 dW1 beta0", true, false, 100, 784, 16, 0},
    {"lr fwd x.Wt", false, true, 1, 10, 784, 1}, /* logistic regression, batch 1: gemv */
    {"lr dW gt.x", true, false, 10, 784, 1, 1},  /* and ger (K = 1) */
    {"g fwd1 x.W1t", false, true, 256, 1024, 784, 1},
    {"g fwd2 h.W2t", false, true, 256, 1024, 1024, 1},
    {"g fwd3 h.W3t", false, true, 256, 10, 1024, 1},
    {"g dX3 g.W3", false, false, 256, 1024, 10, 1},
    {"g dX2 g.W2", false, false, 256, 1024, 1024, 1},
    {"g dW3 gt.h", true, false, 10, 1024, 256, 1},
    {"g dW2 gt.h", true, false, 1024, 1024, 256, 1},
    {"g dW1 gt.x", true, false, 1024, 784, 256, 1},
};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

typedef struct {
    int64_t lda, ldb, ldc;
    void *a, *b, *c;
    libxsmm_smmfunction sk;
    libxsmm_dmmfunction dk;
} operands;

static void *filled(size_t n, bool f64)
{
    size_t es = f64 ? sizeof(double) : sizeof(float);
    void *p = aligned_alloc(64, (n * es + 64 + 63) / 64 * 64); /* + BLIS's tail margin */
    for (size_t i = 0; i < n; i++) {
        double v = (double)((i * 2654435761u) % 1000) / 1000.0 - 0.5;
        if (f64) ((double *)p)[i] = v;
        else ((float *)p)[i] = (float)v;
    }
    return p;
}

static operands setup(const shape *s, bool f64)
{
    operands o;
    o.lda = s->ta ? s->m : s->k; /* A stored K x M when transposed, else M x K */
    o.ldb = s->tb ? s->k : s->n;
    o.ldc = s->n;
    o.a = filled((size_t)s->m * s->k, f64);
    o.b = filled((size_t)s->k * s->n, f64);
    o.c = filled((size_t)s->m * s->n, f64);
    int flags = (s->tb ? LIBXSMM_GEMM_FLAG_TRANS_A : 0) | (s->ta ? LIBXSMM_GEMM_FLAG_TRANS_B : 0) |
                (s->beta == 0 ? LIBXSMM_GEMM_FLAG_BETA_0 : 0);
    libxsmm_blasint lda = (libxsmm_blasint)o.ldb, ldb = (libxsmm_blasint)o.lda,
                    ldc = (libxsmm_blasint)o.ldc;
    int prefetch = LIBXSMM_GEMM_PREFETCH_NONE;
    o.sk = NULL, o.dk = NULL;
    if (f64) {
        double alpha = 1, beta = s->beta;
        o.dk = libxsmm_dmmdispatch(s->n, s->m, s->k, &lda, &ldb, &ldc, &alpha, &beta, &flags, &prefetch);
    } else {
        float alpha = 1, beta = (float)s->beta;
        o.sk = libxsmm_smmdispatch(s->n, s->m, s->k, &lda, &ldb, &ldc, &alpha, &beta, &flags, &prefetch);
    }
    return o;
}

/* tg__gemm with the libxsmm path off (BLIS) or on (what tapegrad runs: BLIS or libxsmm by shape,
 * through its kernel cache). */
static void run_tg(const shape *s, const operands *o, bool f64, bool xsmm)
{
    tg__xsmm_enable(xsmm);
    if (f64)
        tg__gemm_f64(s->ta, s->tb, s->m, s->n, s->k, 1.0, o->a, o->lda, o->b, o->ldb, s->beta,
                     o->c, o->ldc);
    else
        tg__gemm_f32(s->ta, s->tb, s->m, s->n, s->k, 1.0f, o->a, o->lda, o->b, o->ldb,
                     (float)s->beta, o->c, o->ldc);
}

static void run_xsmm(const operands *o, bool f64)
{
    if (f64) o->dk(o->b, o->a, o->c);
    else o->sk(o->b, o->a, o->c);
}

/* Largest difference between the two paths' C, from the same C (beta 1) or any (beta 0). */
static double max_diff(const shape *s, operands *o, bool f64)
{
    size_t n = (size_t)s->m * s->n, es = f64 ? sizeof(double) : sizeof(float);
    void *c0 = malloc(n * es);
    memcpy(c0, o->c, n * es);
    run_tg(s, o, f64, false);
    void *c1 = malloc(n * es);
    memcpy(c1, o->c, n * es);
    memcpy(o->c, c0, n * es);
    run_xsmm(o, f64);
    double d = 0, big = 0;
    for (size_t i = 0; i < n; i++) {
        double x = f64 ? ((double *)c1)[i] : ((float *)c1)[i];
        double y = f64 ? ((double *)o->c)[i] : ((float *)o->c)[i];
        if (fabs(x - y) > d) d = fabs(x - y);
        if (fabs(x) > big) big = fabs(x);
    }
    memcpy(o->c, c0, n * es);
    free(c0), free(c1);
    return big > 0 ? d / big : d;
}

static int calls_for(const shape *s)
{
    double flop = 2.0 * s->m * s->n * s->k;
    int c = (int)(2e6 / flop); /* ~20 us of work per timed batch at 100 GFLOP/s */
    return c < 1 ? 1 : c;
}

typedef struct {
    bool have; /* libxsmm made a kernel */
    double blis_s, xsmm_s, tg_s, lookup_s, rel_diff;
} timing;

/* Medians of reps interleaved batches (fewer for products above 1e8 multiply-adds). */
static timing measure(const shape *s, bool f64, int reps)
{
    operands o = setup(s, f64);
    timing t = {.have = f64 ? o.dk != NULL : o.sk != NULL};
    int calls = calls_for(s);
    if ((double)s->m * s->n * s->k > 1e8) reps = (reps + 3) / 4;
    if (reps < 3) reps = 3;
    double tb[64], tx[64], tt[64], tl[64];
    for (int w = 0; w < calls; w++) run_tg(s, &o, f64, false);
    for (int w = 0; w < calls; w++) run_tg(s, &o, f64, true);
    for (int w = 0; t.have && w < calls; w++) run_xsmm(&o, f64);
    for (int r = 0; r < reps; r++) {
        double t0 = bench_cpu();
        for (int c = 0; c < calls; c++) run_tg(s, &o, f64, false);
        tb[r] = (bench_cpu() - t0) / calls;
        t0 = bench_cpu();
        for (int c = 0; c < calls; c++) run_tg(s, &o, f64, true);
        tt[r] = (bench_cpu() - t0) / calls;
        if (!t.have) continue;
        t0 = bench_cpu();
        for (int c = 0; c < calls; c++) run_xsmm(&o, f64);
        tx[r] = (bench_cpu() - t0) / calls;
        t0 = bench_cpu(); /* the registry lookup a call would pay without a cache of its own */
        for (int c = 0; c < 1000; c++) {
            libxsmm_blasint lda = (libxsmm_blasint)o.ldb, ldb = (libxsmm_blasint)o.lda,
                            ldc = (libxsmm_blasint)o.ldc;
            int flags = (s->tb ? LIBXSMM_GEMM_FLAG_TRANS_A : 0) |
                        (s->ta ? LIBXSMM_GEMM_FLAG_TRANS_B : 0) |
                        (s->beta == 0 ? LIBXSMM_GEMM_FLAG_BETA_0 : 0);
            float alpha = 1, beta = (float)s->beta;
            int pf = LIBXSMM_GEMM_PREFETCH_NONE;
            double dalpha = 1, dbeta = s->beta;
            volatile void *k = f64 ? (void *)libxsmm_dmmdispatch(s->n, s->m, s->k, &lda, &ldb, &ldc,
                                                                 &dalpha, &dbeta, &flags, &pf)
                                   : (void *)libxsmm_smmdispatch(s->n, s->m, s->k, &lda, &ldb, &ldc,
                                                                 &alpha, &beta, &flags, &pf);
            (void)k;
        }
        tl[r] = (bench_cpu() - t0) / 1000;
    }
    t.blis_s = bench_median(tb, reps);
    t.tg_s = bench_median(tt, reps);
    if (t.have) {
        t.xsmm_s = bench_median(tx, reps);
        t.lookup_s = bench_median(tl, reps);
        t.rel_diff = max_diff(s, &o, f64);
    }
    free(o.a), free(o.b), free(o.c);
    return t;
}

/* M x N x K over the Table-1 and GEMM-MLP sizes, the two layouts libxsmm has kernels for. */
static void sweep(bool f64, int reps)
{
    static const int mn[][2] = {{16, 100}, {10, 100}, {100, 784}, {16, 784}, {256, 1024}};
    static const int ks[] = {4, 10, 16, 32, 64, 128, 256};
    printf("\nsweep, xsmm time / BLIS time (beta 1)\n%-3s %-10s", "op", "M x N");
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) printf(" K=%-5d", ks[i]);
    printf("\n");
    for (int op = 0; op < 2; op++)
        for (size_t i = 0; i < sizeof mn / sizeof mn[0]; i++) {
            printf("%-3s %4dx%-5d", op ? "TN" : "NN", mn[i][0], mn[i][1]);
            for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
                shape s = {"", op == 1, false, mn[i][0], mn[i][1], ks[j], 1};
                timing t = measure(&s, f64, reps);
                if (t.have) printf(" %7.2f", t.xsmm_s / t.blis_s);
                else printf(" %7s", "-");
                fflush(stdout);
            }
            printf("\n");
        }
}

/* ---- -fwd: the forward x·Wᵀ, row-major Y [M,N] += X [M,K] · W [N,K]ᵀ ------------------------ */

typedef struct {
    int m, n, k;
    float *x, *w, *y, *wt, *xt, *yt;
    rntm_t nosup, pack_a, pack_b;
    libxsmm_smmfunction nn_wt, nn_xt;
} fwd_case;

static fwd_case fc;
static float f_one = 1;

static void fwd_tg(void) { tg__gemm_f32(false, true, fc.m, fc.n, fc.k, 1, fc.x, fc.k, fc.w, fc.k, 1, fc.y, fc.n); }
static void fwd_blis_off(void) { tg__xsmm_xt_enable(false), fwd_tg(), tg__xsmm_xt_enable(true); }
static void blis_ex(bool swapped, rntm_t *r) {
    if (swapped) /* Yᵀ = W·Xᵀ: C stored by columns (rs_c = 1, cs_c = N) */
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, fc.n, fc.m, fc.k, &f_one, fc.w, fc.k, 1,
                     fc.x, 1, fc.k, &f_one, fc.y, 1, fc.n, NULL, r);
    else
        bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, fc.m, fc.n, fc.k, &f_one, fc.x, fc.k, 1,
                     fc.w, 1, fc.k, &f_one, fc.y, fc.n, 1, NULL, r);
}
static void fwd_blis(void) { blis_ex(false, NULL); }
static void fwd_blis_swapped(void) { blis_ex(true, NULL); }
static void fwd_blis_nosup(void) { blis_ex(false, &fc.nosup); }
static void fwd_blis_swapped_nosup(void) { blis_ex(true, &fc.nosup); }
static void fwd_blis_pack_a(void) { blis_ex(false, &fc.pack_a); }
static void fwd_blis_pack_b(void) { blis_ex(false, &fc.pack_b); }
/* Wᵀ [K,N] copied each call, then libxsmm NN (column-major Yᵀ... i.e. Y (N x M, ld N) = Wᵀ·X). */
static void fwd_wt_copy(void) { libxsmm_otrans(fc.wt, fc.w, 4, fc.k, fc.n, fc.k, fc.n); }
static void fwd_wt_kernel(void) { fc.nn_wt(fc.wt, fc.x, fc.y); }
static void fwd_wt_both(void) { fwd_wt_copy(), fwd_wt_kernel(); }
/* The kernel of the transposed-x path alone, on a ready xᵀ [K,M]: Yᵀ [N,M] = (xᵀ)ᵀ·Wᵀ, beta 0. */
static void fwd_xt_kernel(void) { fc.nn_xt(fc.xt, fc.w, fc.yt); }

static const struct {
    const char *name;
    void (*run)(void);
} fwd_ways[] = {
    {"tg__gemm, xt path off (BLIS)", fwd_blis_off},
    {"tg__gemm as built", fwd_tg},
    {"BLIS Y = X.Wt", fwd_blis},
    {"BLIS Yt = W.Xt (C by columns)", fwd_blis_swapped},
    {"BLIS, sup off (packed path)", fwd_blis_nosup},
    {"BLIS Yt = W.Xt, sup off", fwd_blis_swapped_nosup},
    {"BLIS sup, pack A", fwd_blis_pack_a},
    {"BLIS sup, pack B", fwd_blis_pack_b},
    {"Wt copy (libxsmm_otrans)", fwd_wt_copy},
    {"libxsmm NN on Wt", fwd_wt_kernel},
    {"Wt copy + libxsmm NN", fwd_wt_both},
    {"libxsmm NN on xt (kernel only)", fwd_xt_kernel},
};
enum { NWAYS = sizeof fwd_ways / sizeof fwd_ways[0] };

static void forward_ways(int reps, double peak)
{
    static const int sizes[][3] = {{16, 100, 784}, {16, 10, 100}, {32, 100, 784}, {16, 1024, 784}};
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        fc.m = sizes[c][0], fc.n = sizes[c][1], fc.k = sizes[c][2];
        fc.x = filled((size_t)fc.m * fc.k, false), fc.w = filled((size_t)fc.n * fc.k, false);
        fc.y = filled((size_t)fc.m * fc.n, false), fc.wt = filled((size_t)fc.n * fc.k, false);
        fc.xt = filled((size_t)fc.m * fc.k, false), fc.yt = filled((size_t)fc.m * fc.n, false);
        bli_rntm_init(&fc.nosup), bli_rntm_disable_l3_sup(&fc.nosup);
        bli_rntm_init(&fc.pack_a), bli_rntm_set_pack_a(true, &fc.pack_a);
        bli_rntm_init(&fc.pack_b), bli_rntm_set_pack_b(true, &fc.pack_b);
        float a1 = 1, b1 = 1, b0 = 0;
        int none = 0, beta0 = LIBXSMM_GEMM_FLAG_BETA_0, pf = LIBXSMM_GEMM_PREFETCH_NONE;
        libxsmm_blasint lda = fc.n, ldb = fc.k, ldc = fc.n, lda2 = fc.m, ldb2 = fc.k, ldc2 = fc.m;
        fc.nn_wt = libxsmm_smmdispatch(fc.n, fc.m, fc.k, &lda, &ldb, &ldc, &a1, &b1, &none, &pf);
        fc.nn_xt = libxsmm_smmdispatch(fc.m, fc.n, fc.k, &lda2, &ldb2, &ldc2, &a1, &b0, &beta0, &pf);
        double flop = 2.0 * fc.m * fc.n * fc.k, t[NWAYS][64];
        int calls = (int)(4e6 / flop) + 1;
        for (int r = -1; r < reps; r++) /* r = -1: warm-up (JIT, BLIS's pools) */
            for (int w = 0; w < NWAYS; w++) {
                double t0 = bench_cpu();
                for (int i = 0; i < calls; i++) fwd_ways[w].run();
                if (r >= 0) t[w][r] = (bench_cpu() - t0) / calls;
            }
        printf("\nforward x.Wt %dx%dx%d (beta 1; the kernel-only rows beta 0), medians of %d "
               "interleaved batches of %d calls\n", fc.m, fc.n, fc.k, reps, calls);
        double base = bench_median(t[0], reps);
        for (int w = 0; w < NWAYS; w++) {
            double us = bench_median(t[w], reps) * 1e6, g = flop / us * 1e-3;
            printf("  %-32s %9.2f us %7.1f GFLOP/s %5.0f%% peak  %5.2f x BLIS\n", fwd_ways[w].name,
                   us, g, 100 * g / peak, us * 1e-6 / base);
        }
        free(fc.x), free(fc.w), free(fc.y), free(fc.wt), free(fc.xt), free(fc.yt);
    }
}

/* ---- -step: the Table-1 step with the transposed-x path off and on, alternating ------------- */

/* in_backward: SGD's update written in the backward (tg_optimizer_set_in_backward). */
static void step_phases(int blocks, bool in_backward)
{
    enum { STEPS = 500, PHASES = 5, MAX_BLOCKS = 64 };
    if (blocks > MAX_BLOCKS) blocks = MAX_BLOCKS;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    int64_t n = 50000;
    tg_tensor *x = tg_rand_uniform(TG_F32, TG_SHAPE(n, 784), 0, 1, &rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(n));
    for (int64_t i = 0; i < n; i++) ((int32_t *)y->data)[i] = (int32_t)(tg_rng_next(&rng) % 10);
    tg_module *m = tg_feedforward_new(784, 10, 100, 1, "relu", 0.3, tg_init_pytorch(), &rng);
    tg_param_list ps = {0};
    tg_module_parameters(m, &ps);
    tg_optimizer *opt = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.01});
    tg_param_list_free(&ps);
    if (in_backward) tg_optimizer_set_in_backward(opt, true);
    tg_loader *L = tg_loader_new(x, y, 16, true, false, &rng);
    static double t[2][PHASES][MAX_BLOCKS];
    static const char *names[PHASES] = {"loader", "zero_grad", "forward + loss", "backward",
                                        "SGD + tape reset"};
    for (int b = -2; b < 2 * blocks; b++) { /* b < 0: warm-up of both paths */
        int on = b & 1;
        tg__xsmm_xt_enable(on);
        double acc[PHASES] = {0}, c[PHASES + 1];
        for (int s = 0; s < STEPS; s++) {
            tg_tensor *xb, *yb;
            c[0] = bench_cpu();
            if (!tg_loader_next(L, &xb, &yb)) tg_loader_next(L, &xb, &yb);
            c[1] = bench_cpu();
            tg_optimizer_zero_grad(opt);
            c[2] = bench_cpu();
            tg_tensor *l = tg_cross_entropy(tg_module_forward(m, xb), yb, TG_REDUCE_MEAN);
            c[3] = bench_cpu();
            tg_backward(l);
            c[4] = bench_cpu();
            tg_optimizer_step(opt);
            tg_tape_reset();
            c[5] = bench_cpu();
            for (int p = 0; p < PHASES; p++) acc[p] += c[p + 1] - c[p];
        }
        for (int p = 0; b >= 0 && p < PHASES; p++) t[on][p][b / 2] = acc[p] / STEPS * 1e6;
    }
    tg__xsmm_xt_enable(true);
    printf("\nTable-1 step by phase, us (medians of %d blocks of %d steps each, off and on "
           "alternating; thread CPU time, the clock calls included)\n%-18s %10s %10s\n",
           blocks, STEPS, "phase", "xt off", "xt on");
    double sum[2] = {0};
    for (int p = 0; p < PHASES; p++) {
        double off = bench_median(t[0][p], blocks), on = bench_median(t[1][p], blocks);
        sum[0] += off, sum[1] += on;
        printf("%-18s %10.2f %10.2f\n", names[p], off, on);
    }
    printf("%-18s %10.2f %10.2f   (on / off %.3f)\n", "step", sum[0], sum[1], sum[1] / sum[0]);
    tg_loader_free(L);
    tg_optimizer_free(opt);
    tg_module_free(m);
    tg_free(x), tg_free(y);
}

int main(int argc, char **argv)
{
    int reps = 41;
    bool f64 = false, do_sweep = false, fwd = false;
    const char *only = NULL, *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-quick")) reps = 11;
        else if (!strcmp(argv[i], "-f64")) f64 = true;
        else if (!strcmp(argv[i], "-sweep")) do_sweep = true;
        else if (!strcmp(argv[i], "-fwd")) fwd = true;
        else if (!strcmp(argv[i], "-step")) {
            bool ib = false;
            for (int j = i + 1; j < argc; j++) ib |= !strcmp(argv[j], "-in_backward");
            step_phases(i + 1 < argc ? atoi(argv[i + 1]) : 10, ib);
            return 0;
        }
        else if (!strcmp(argv[i], "-only") && i + 2 < argc) only = argv[++i], path = argv[++i];
    }
    libxsmm_init();
    printf("%s, libxsmm %s, target arch %s, %s\n", tg_blas_info(), LIBXSMM_VERSION,
           libxsmm_get_target_arch(), f64 ? "float64" : "float32");
    if (only) {
        for (int i = 0; i < NSHAPES; i++) {
            if (strcmp(shapes[i].name, only)) continue;
            operands o = setup(&shapes[i], f64);
            bool x = !strcmp(path, "xsmm"), tg = !strcmp(path, "tg");
            if (x && !(f64 ? (void *)o.dk : (void *)o.sk)) return printf("no kernel\n"), 1;
            for (int r = 0; r < 1000; r++)
                x ? run_xsmm(&o, f64) : run_tg(&shapes[i], &o, f64, tg);
            return 0;
        }
        return printf("unknown shape %s\n", only), 2;
    }
    double peak = bench_peak_gflops(1, 20000000L) / (f64 ? 2 : 1);
    printf("peak %.1f GFLOP/s (FMA loop, 1 core%s); medians of %d interleaved batches, thread CPU "
           "time\n\n", peak, f64 ? ", halved for float64" : "", reps);
    if (fwd) {
        forward_ways(reps, peak);
        libxsmm_finalize();
        return 0;
    }
    printf("%-16s %-3s %-15s %4s %9s %8s %6s %9s %8s %6s %7s %9s %9s %9s\n", "product", "op",
           "M x N x K", "beta", "BLIS us", "GFLOP/s", "%peak", "xsmm us", "GFLOP/s", "%peak",
           "x/BLIS", "lookup us", "rel diff", "tg/BLIS");
    for (int i = 0; i < NSHAPES; i++) {
        const shape *s = &shapes[i];
        char dims[32], op[4];
        snprintf(dims, sizeof dims, "%dx%dx%d", s->m, s->n, s->k);
        snprintf(op, sizeof op, "%c%c", s->ta ? 'T' : 'N', s->tb ? 'T' : 'N');
        timing t = measure(s, f64, reps);
        double flop = 2.0 * s->m * s->n * s->k, gb = flop / t.blis_s * 1e-9;
        printf("%-16s %-3s %-15s %4g %9.2f %8.1f %5.0f%%", s->name, op, dims, s->beta,
               t.blis_s * 1e6, gb, 100 * gb / peak);
        if (!t.have) {
            printf(" %9s %8s %6s %7s %9s %9s %9.2f\n", "no kernel", "", "", "", "", "",
                   t.tg_s / t.blis_s);
            continue;
        }
        double gx = flop / t.xsmm_s * 1e-9;
        printf(" %9.2f %8.1f %5.0f%% %7.2f %9.3f %9.2g %9.2f\n", t.xsmm_s * 1e6, gx,
               100 * gx / peak, t.xsmm_s / t.blis_s, t.lookup_s * 1e6, t.rel_diff,
               t.tg_s / t.blis_s);
        fflush(stdout);
    }
    if (do_sweep) sweep(f64, reps < 21 ? reps : 21);
    libxsmm_finalize();
    return 0;
}
