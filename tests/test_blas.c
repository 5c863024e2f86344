/* tg__gemm_f32/f64 against a naive triple loop in double: every transpose combination, odd and
 * degenerate shapes (the gemv and empty paths), padded row strides, beta = 0 over NaN (must
 * overwrite), beta = 1 accumulation, and the threaded split against one thread. Then guard pages:
 * no product reads past A, B or C, with every BLIS kernel set this CPU runs (each in a child
 * process, since BLIS fixes its kernels once per process). */
#define _GNU_SOURCE /* malloc_usable_size */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "autograd/blas.h"
#include "tg/core.h"

#include <blis.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "autograd/internal.h"

typedef struct {
    bool ta, tb;
    int64_t m, n, k;
    double alpha, beta;
    int64_t pad; /* extra elements at the end of every row (lda = cols + pad, ...) */
} gemm_case;

static double *random_buf(int64_t n, unsigned *seed) {
    double *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = (double)rand_r(seed) / RAND_MAX - 0.5;
    return p;
}

/* Runs the case in the given precision; returns C (as double) in a new buffer. */
static double *run_case(const gemm_case *t, bool f64, const double *A, const double *B,
                        const double *C0, int64_t lda, int64_t ldb, int64_t ldc, int64_t na,
                        int64_t nb, int64_t nc) {
    double *out = malloc((size_t)(nc ? nc : 1) * sizeof *out);
    if (f64) {
        memcpy(out, C0, (size_t)nc * sizeof *out);
        tg__gemm_f64(t->ta, t->tb, t->m, t->n, t->k, t->alpha, A, lda, B, ldb, t->beta, out, ldc);
        return out;
    }
    float *a = malloc((size_t)(na + 1) * 4), *b = malloc((size_t)(nb + 1) * 4);
    float *c = malloc((size_t)(nc + 1) * 4);
    for (int64_t i = 0; i < na; i++) a[i] = (float)A[i];
    for (int64_t i = 0; i < nb; i++) b[i] = (float)B[i];
    for (int64_t i = 0; i < nc; i++) c[i] = (float)C0[i];
    tg__gemm_f32(t->ta, t->tb, t->m, t->n, t->k, (float)t->alpha, a, lda, b, ldb, (float)t->beta,
                 c, ldc);
    for (int64_t i = 0; i < nc; i++) out[i] = c[i];
    free(a), free(b), free(c);
    return out;
}

/* Checks one case in one precision against the double reference; returns the result. */
static double *check_case(const gemm_case *t, bool f64, unsigned seed) {
    int64_t rows_a = t->ta ? t->k : t->m, cols_a = t->ta ? t->m : t->k;
    int64_t rows_b = t->tb ? t->n : t->k, cols_b = t->tb ? t->k : t->n;
    int64_t lda = cols_a + t->pad, ldb = cols_b + t->pad, ldc = t->n + t->pad;
    int64_t na = rows_a * lda, nb = rows_b * ldb, nc = t->m * ldc;
    double *A = random_buf(na, &seed), *B = random_buf(nb, &seed), *C0 = random_buf(nc, &seed);
    if (!f64) { /* the reference must see the same (rounded) inputs */
        for (int64_t i = 0; i < na; i++) A[i] = (float)A[i];
        for (int64_t i = 0; i < nb; i++) B[i] = (float)B[i];
        for (int64_t i = 0; i < nc; i++) C0[i] = (float)C0[i];
    }
    if (t->beta == 0)
        for (int64_t i = 0; i < nc; i++) C0[i] = NAN; /* beta = 0 must not read C */
    double *C = run_case(t, f64, A, B, C0, lda, ldb, ldc, na, nb, nc);
    double eps = f64 ? 1e-13 : 1e-6;
    for (int64_t i = 0; i < t->m; i++) {
        for (int64_t j = 0; j < t->n; j++) {
            double ref = 0, mag = 0;
            for (int64_t p = 0; p < t->k; p++) {
                double x = t->ta ? A[p * lda + i] : A[i * lda + p];
                double y = t->tb ? B[j * ldb + p] : B[p * ldb + j];
                ref += x * y, mag += fabs(x * y);
            }
            double c0 = t->beta == 0 ? 0 : t->beta * C0[i * ldc + j];
            ref = t->alpha * ref + c0;
            double tol = eps * (double)(t->k + 2) * (fabs(t->alpha) * mag + fabs(c0) + 1e-30);
            double got = C[i * ldc + j];
            if (!(fabs(got - ref) <= tol))
                fail_msg("%s ta=%d tb=%d %ldx%ldx%ld pad=%ld alpha=%g beta=%g: C[%ld,%ld] = %.17g, "
                         "expected %.17g", f64 ? "f64" : "f32", t->ta, t->tb, (long)t->m,
                         (long)t->n, (long)t->k, (long)t->pad, t->alpha, t->beta, (long)i, (long)j,
                         got, ref);
        }
        for (int64_t j = t->n; j < ldc; j++) /* padding is never written */
            if (memcmp(&C[i * ldc + j], &C0[i * ldc + j], sizeof(double)) != 0 &&
                !(isnan(C[i * ldc + j]) && isnan(C0[i * ldc + j])))
                fail_msg("padding of C row %ld was written", (long)i);
    }
    free(A), free(B), free(C0);
    return C;
}

static const int64_t dims[][3] = {
    {7, 13, 5}, {1, 10, 784}, {16, 1, 100}, {9, 11, 1}, {1, 1, 3}, {33, 17, 65}, {16, 100, 16},
};

static void all_cases(double alpha, double beta) {
    for (int f64 = 0; f64 <= 1; f64++)
        for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
            for (int ta = 0; ta <= 1; ta++)
                for (int tb = 0; tb <= 1; tb++)
                    for (int64_t pad = 0; pad <= 3; pad += 3) {
                        gemm_case t = {ta, tb, dims[d][0], dims[d][1], dims[d][2], alpha, beta, pad};
                        free(check_case(&t, f64, (unsigned)(d * 131 + ta * 7 + tb * 3 + pad)));
                    }
}

static void test_overwrite(void **state) { (void)state; all_cases(1.0, 0.0); }
static void test_alpha_beta(void **state) { (void)state; all_cases(0.7, -1.5); }
static void test_accumulate(void **state) { (void)state; all_cases(1.0, 1.0); }

static void test_degenerate(void **state) {
    (void)state;
    gemm_case k0 = {false, false, 4, 5, 0, 1.0, 0.5, 1}; /* C = beta * C */
    gemm_case k0_zero = {true, true, 4, 5, 0, 1.0, 0.0, 0};
    gemm_case k0_row = {false, false, 1, 5, 0, 1.0, 0.0, 0}, k0_col = {false, false, 4, 1, 0, 1.0, 2.0, 0};
    gemm_case alpha0 = {false, true, 6, 7, 8, 0.0, 0.0, 0};
    for (int f64 = 0; f64 <= 1; f64++) {
        free(check_case(&k0, f64, 1));
        free(check_case(&k0_zero, f64, 2));
        free(check_case(&k0_row, f64, 3));
        free(check_case(&k0_col, f64, 4));
        free(check_case(&alpha0, f64, 5));
    }
    float c = 42.0f; /* empty products do nothing, not even read their pointers */
    tg__gemm_f32(false, false, 0, 5, 3, 1.0f, NULL, 3, NULL, 5, 0.0f, NULL, 5);
    tg__gemm_f32(false, false, 1, 0, 3, 1.0f, NULL, 3, NULL, 0, 0.0f, &c, 0);
    assert_true(c == 42.0f);
}

/* Shapes above the split threshold, split by columns and by rows, at 2 and 3 threads: same answer
 * as the reference and (to rounding) as one thread. */
static void test_threaded_split(void **state) {
    (void)state;
    static const int64_t big[][3] = {{64, 1000, 300}, {999, 70, 257}, {16, 4097, 100}};
    for (int threads = 2; threads <= 3; threads++)
        for (size_t d = 0; d < 3; d++)
            for (int f64 = 0; f64 <= 1; f64++) {
                gemm_case t = {d == 1, d == 2, big[d][0], big[d][1], big[d][2], 1.0, 1.0, 1};
                tg_set_num_threads(1);
                double *one = check_case(&t, f64, 7);
                tg_set_num_threads(threads);
                assert_int_equal(tg_get_num_threads(), threads);
                double *many = check_case(&t, f64, 7);
                for (int64_t i = 0; i < t.m * (t.n + t.pad); i++)
                    if (!(fabs(one[i] - many[i]) <= (f64 ? 1e-12 : 1e-4) * (1 + fabs(one[i]))))
                        fail_msg("threaded result differs at %ld: %g vs %g", (long)i, one[i],
                                 many[i]);
                free(one), free(many);
            }
    tg_set_num_threads(1);
}

/* A stress test of the hand-over: products that use different numbers of workers, back to back,
 * accumulating (beta = 1). A worker that sat out one product and woke late once ran a block of the
 * next one (adding it twice, or leaving the caller waiting for a count below zero). The window is
 * too narrow to hit reliably here: the fix was verified with -fsanitize=thread and with a delay
 * injected after the worker reads the generation (see the commit that stamps generations); this
 * test keeps the ordinary path honest (every result exact) and gives TSan a workload. */
static void test_pool_alternating_part_counts(void **state) {
    (void)state;
    enum { K1 = 16384, M2 = 64, N2 = 1024, K2 = 256 };
    float *a1 = malloc(sizeof(float) * 32 * K1), *b1 = malloc(sizeof(float) * K1 * 32);
    float *c1 = malloc(sizeof(float) * 32 * 32), *a2 = malloc(sizeof(float) * M2 * K2);
    float *b2 = malloc(sizeof(float) * K2 * N2), *c2 = malloc(sizeof(float) * M2 * N2);
    for (int i = 0; i < 32 * K1; i++) a1[i] = b1[i] = 1;
    for (int i = 0; i < M2 * K2; i++) a2[i] = 1;
    for (int i = 0; i < K2 * N2; i++) b2[i] = 1;
    tg_set_num_threads(3);
    for (int it = 0; it < 300; it++) {
        /* 32 x 32 x 16384: two blocks of columns, so one worker sits out */
        tg__gemm_f32(false, false, 32, 32, K1, 1.0f, a1, K1, b1, 32, 0.0f, c1, 32);
        memset(c2, 0, sizeof(float) * M2 * N2);
        /* 64 x 1024 x 256: both workers */
        tg__gemm_f32(false, false, M2, N2, K2, 1.0f, a2, K2, b2, N2, 1.0f, c2, N2);
        assert_true(c1[0] == (float)K1 && c1[32 * 32 - 1] == (float)K1);
        for (int i = 0; i < M2 * N2; i++)
            if (c2[i] != (float)K2) fail_msg("product %d: c[%d] = %g, want %d", it, i, c2[i], K2);
    }
    tg_set_num_threads(1);
    free(a1), free(b1), free(c1), free(a2), free(b2), free(c2);
}

static void test_info(void **state) {
    (void)state;
    tg_set_num_threads(0); /* clamped to 1 */
    assert_int_equal(tg_get_num_threads(), 1);
    const char *info = tg_blas_info();
    assert_non_null(strstr(info, "BLIS"));
    assert_non_null(strstr(info, "kernels"));
    assert_non_null(strstr(info, "1 thread"));
    tg_set_num_threads(2);
    assert_non_null(strstr(tg_blas_info(), "2 threads"));
    tg_set_num_threads(1);
}


/* ---- libxsmm (autograd/xsmm.c) ----------------------------------------------------------------
 * Built with it, the small products it is measured faster at must go to it (or the gain is
 * silently lost), and it must give what BLIS gives, where both run. */

/* One row-major product in BLIS-stride terms through the libxsmm path alone. */
static bool xsmm_takes(bool f64, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double beta) {
    size_t es = f64 ? sizeof(double) : sizeof(float);
    void *a = calloc((size_t)(m * k) + 16, es), *b = calloc((size_t)(k * n) + 16, es);
    void *c = calloc((size_t)(m * n) + 16, es);
    int64_t lda = ta ? m : k, ldb = tb ? k : n;
    bool took = tg__xsmm_gemm(f64, m, n, k, 1.0, a, ta ? 1 : lda, ta ? lda : 1, b, tb ? 1 : ldb,
                              tb ? ldb : 1, beta, c, n, 1);
    free(a), free(b), free(c);
    return took;
}

static void test_xsmm_takes_small_products(void **state) {
    (void)state;
#ifndef TG_WITH_XSMM
    assert_false(tg__xsmm_enabled());
    assert_false(xsmm_takes(false, false, false, 16, 100, 10, 1));
    skip();
#else
    assert_true(tg__xsmm_enabled());
    assert_non_null(strstr(tg_blas_info(), "libxsmm"));
    for (int f64 = 0; f64 <= 1; f64++) {
        /* The Table-1 step's input and weight gradients (beta 1, and 0 for a first write). */
        assert_true(xsmm_takes(f64, false, false, 16, 100, 10, 1)); /* dX = G·W2 */
        assert_true(xsmm_takes(f64, true, false, 10, 100, 16, 1));  /* dW2 = Gᵀ·H */
        assert_true(xsmm_takes(f64, true, false, 100, 784, 16, 0)); /* dW1 = Gᵀ·X */
        /* The forward x·Wᵀ of a batch of 16-64 (float32: through a transposed copy of x). */
        assert_int_equal(xsmm_takes(f64, false, true, 16, 100, 784, 1), !f64); /* x·W1ᵀ */
        assert_int_equal(xsmm_takes(f64, false, true, 16, 10, 100, 0), !f64);  /* h·W2ᵀ */
        assert_int_equal(xsmm_takes(f64, false, true, 64, 1024, 1024, 1), !f64);
        /* What it does not take: op(B) transposed at other batches (slower there; no kernel
         * without the copy), long K, alpha/beta. */
        assert_false(xsmm_takes(f64, false, true, 8, 100, 784, 1));
        assert_false(xsmm_takes(f64, false, true, 256, 1024, 784, 1));
        assert_false(xsmm_takes(f64, false, true, 16, 10, 784, 1)); /* narrow output, long K */
        assert_false(xsmm_takes(f64, true, true, 16, 100, 784, 1));
        assert_false(xsmm_takes(f64, true, false, 1024, 784, 256, 1));
        assert_false(xsmm_takes(f64, false, false, 16, 100, 10, 0.5));
    }
    tg__xsmm_xt_enable(false); /* the transposed-x path alone off */
    assert_false(xsmm_takes(false, false, true, 16, 100, 784, 1));
    assert_true(xsmm_takes(false, false, false, 16, 100, 10, 1));
    tg__xsmm_xt_enable(true);
    tg__xsmm_enable(false);
    assert_false(xsmm_takes(false, false, false, 16, 100, 10, 1));
    assert_false(xsmm_takes(false, false, true, 16, 100, 784, 1));
    tg__xsmm_enable(true);
#endif
}

/* Every transpose, beta 0 (over NaN) and 1, alpha 1 and 0.7, padded rows, both precisions: each
 * product against the double reference with libxsmm on and off, and the two results against each
 * other (float: within 1e-5 relative to the largest |C|; the sums run in different orders). */
static void test_xsmm_matches_blis(void **state) {
    (void)state;
    static const int64_t mn[] = {2, 3, 7, 16, 17, 32, 33}, ks[] = {2, 5, 10, 16, 17, 64, 100};
    static const double ab[][2] = {{1, 0}, {1, 1}, {0.7, 1}};
    const size_t nmn = sizeof mn / sizeof mn[0], nk = sizeof ks / sizeof ks[0];
    for (int f64 = 0; f64 <= 1; f64++)
        for (int t = 0; t < 4; t++)
            for (size_t i = 0; i < nmn * nmn * nk; i++)
                for (int v = 0; v < 3; v++) {
                    gemm_case c = {t & 1, t & 2, mn[i / (nmn * nk)], mn[i / nk % nmn],
                                   ks[i % nk], ab[v][0], ab[v][1], (int64_t)(i % 2) * 3};
                    unsigned seed = (unsigned)(i * 7 + t);
                    tg__xsmm_enable(true);
                    double *x = check_case(&c, f64, seed);
                    tg__xsmm_enable(false);
                    double *y = check_case(&c, f64, seed);
                    tg__xsmm_enable(true);
                    int64_t n = c.m * (c.n + c.pad);
                    double big = 0, diff = 0;
                    for (int64_t e = 0; e < n; e++) {
                        if (isnan(x[e]) && isnan(y[e])) continue; /* padding left as it was */
                        big = fmax(big, fabs(y[e]));
                        diff = fmax(diff, fabs(x[e] - y[e]));
                    }
                    if (!(diff <= (f64 ? 1e-13 : 1e-5) * (big + 1e-30)))
                        fail_msg("%s ta=%d tb=%d %ldx%ldx%ld alpha=%g beta=%g: libxsmm and BLIS "
                                 "differ by %g (largest |C| %g)", f64 ? "f64" : "f32", c.ta, c.tb,
                                 (long)c.m, (long)c.n, (long)c.k, c.alpha, c.beta, diff, big);
                    free(x), free(y);
                }
}

/* ---- guard pages ------------------------------------------------------------------------------
 * Each operand ends exactly where an inaccessible page begins,
 * so any read past it faults; the handler records the address and jumps back, and the sweep names
 * the shape and the operand. Values are irrelevant here (the pages are zero); the tests above
 * check them. */

typedef struct {
    char *map;
    size_t len, cap; /* cap: bytes usable before the guard page */
} guarded;

static sigjmp_buf guard_jump;
static volatile uintptr_t guard_fault;

static void on_fault(int sig, siginfo_t *info, void *ctx) {
    (void)sig, (void)ctx;
    guard_fault = (uintptr_t)info->si_addr;
    siglongjmp(guard_jump, 1);
}

/* A pointer to `bytes` bytes followed by `tail` accessible bytes and then the guard page. */
static void *guarded_at(guarded *g, size_t bytes, size_t tail) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (bytes + tail > g->cap) {
        if (g->map) munmap(g->map, g->len);
        g->cap = (bytes + tail + page - 1) / page * page;
        g->len = g->cap + page;
        g->map = mmap(NULL, g->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (g->map == MAP_FAILED || mprotect(g->map + g->cap, page, PROT_NONE) != 0) {
            perror("guard page");
            exit(3);
        }
    }
    return g->map + g->cap - tail - bytes;
}

static guarded guard_a, guard_b, guard_c;

/* Runs one product with guarded operands; returns 0, or 'A', 'B', 'C' for the operand read past
 * (and '?' for a fault elsewhere), with the bytes past its end in *past. */
static int guarded_product(bool f64, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                           long *past) {
    size_t es = f64 ? sizeof(double) : sizeof(float);
    int64_t lda = ta ? m : k, ldb = tb ? k : n;
    size_t bytes[3] = {(size_t)(m * k) * es, (size_t)(k * n) * es, (size_t)(m * n) * es};
    char *a = guarded_at(&guard_a, bytes[0], 0), *b = guarded_at(&guard_b, bytes[1], 0);
    char *c = guarded_at(&guard_c, bytes[2], 0);
    if (sigsetjmp(guard_jump, 1) == 0) {
        if (f64)
            tg__gemm_f64(ta, tb, m, n, k, 1.0, (double *)a, lda, (double *)b, ldb, 1.0,
                         (double *)c, n);
        else
            tg__gemm_f32(ta, tb, m, n, k, 1.0f, (float *)a, lda, (float *)b, ldb, 1.0f,
                         (float *)c, n);
        return 0;
    }
    char *ends[3] = {a + bytes[0], b + bytes[1], c + bytes[2]};
    for (int i = 0; i < 3; i++)
        if (guard_fault >= (uintptr_t)ends[i] && guard_fault < (uintptr_t)ends[i] + 2 * 4096) {
            *past = (long)(guard_fault - (uintptr_t)ends[i]);
            return "ABC"[i];
        }
    return '?';
}

/* One product with guarded operands; prints the first few faults; returns 1 if it faulted. */
static int guarded_case(bool f64, bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
    static int shown;
    long past = 0;
    int which = guarded_product(f64, ta, tb, m, n, k, &past);
    if (which && shown++ < 10)
        fprintf(stderr, "%s: %s ta=%d tb=%d M=%ld N=%ld K=%ld read %ld bytes past the end of %c\n",
                tg_blas_info(), f64 ? "f64" : "f32", ta, tb, (long)m, (long)n, (long)k, past,
                which);
    return which != 0;
}

/* The sweep one child runs: M, N from 1 to 70 (BLIS), or over the values libxsmm's kernels
 * branch on (its path JITs a kernel per shape, ~0.3 ms each: the full square would take
 * minutes), K over the values the kernels branch on (k % 8 and k % 32 tails, the ger path), both
 * transposes, both precisions, beta = 1 (C is read); then a few large shapes (the packed path
 * above BLIS's small-matrix thresholds, and the threaded split on 2 threads). Returns the number
 * of products that faulted. */
static int guard_sweep(bool xsmm) {
    struct sigaction sa = {.sa_sigaction = on_fault, .sa_flags = SA_SIGINFO};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    tg__xsmm_enable(xsmm);
    static const int64_t ks[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 32, 33, 63, 65, 70};
    static const int64_t xsmm_mn[] = {1,  2,  3,  4,  5,  7,  8,  9,  10, 15, 16,
                                      17, 23, 24, 25, 31, 32, 33, 47, 48, 64};
    static const int64_t big[][3] = {{16, 100, 784}, {16, 784, 100}, {100, 784, 16},
                                     {16, 100, 10}, {10, 100, 16}, {256, 1024, 10},
                                     {201, 201, 201}, {202, 210, 203}, {1000, 10, 785},
                                     {10, 1000, 785}, {300, 17, 1001}, {256, 300, 259},
                                     {520, 520, 241}, {16, 10, 784}, {32, 1000, 785},
                                     {64, 7, 100}, {48, 33, 999}};
    int64_t mn[70];
    size_t nmn = 0;
    if (xsmm)
        for (; nmn < sizeof xsmm_mn / sizeof xsmm_mn[0]; nmn++) mn[nmn] = xsmm_mn[nmn];
    else
        for (; nmn < 70; nmn++) mn[nmn] = (int64_t)nmn + 1;
    int faults = 0;
    for (int f64 = 0; f64 <= 1; f64++)
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            for (size_t m = 0; m < nmn; m++)
                for (size_t n = 0; n < nmn; n++)
                    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
                        faults += guarded_case(f64, ta, tb, mn[m], mn[n], ks[i]);
            for (int threads = 1; threads <= 2; threads++) {
                tg_set_num_threads(threads);
                for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
                    faults += guarded_case(f64, ta, tb, big[i][0], big[i][1], big[i][2]);
            }
            tg_set_num_threads(1);
        }
    return faults;
}

/* Kernel sets this CPU can run; a set it lacks would die of SIGILL, so none is forced. */
static int supported_kernel_sets(int ids[], const char *names[]) {
    int n = 0;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        ids[n] = BLIS_ARCH_HASWELL, names[n++] = "haswell";
        ids[n] = BLIS_ARCH_ZEN3, names[n++] = "zen3";
    }
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        ids[n] = BLIS_ARCH_SKX, names[n++] = "skx";
    return n;
}

/* Runs the sweep in a child with the given BLIS kernel set (id < 0: BLIS's own choice). */
static void guard_child(int id, const char *name, const char *mode) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char buf[8];
        snprintf(buf, sizeof buf, "%d", id);
        if (id >= 0) setenv("BLIS_ARCH_TYPE", buf, 1);
        execl("/proc/self/exe", "test_blas", mode, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("kernels %s, %s: products read past their operands (exit status %d, signal %d)",
                 name, mode, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void test_no_read_past_operands(void **state) {
    (void)state;
    int ids[4];
    const char *names[4];
    int n = supported_kernel_sets(ids, names);
    if (n == 0) skip(); /* no AVX2: BLIS's own choice, checked by the default child below */
    for (int i = 0; i < n; i++) guard_child(ids[i], names[i], "--guard-sweep");
}

/* The libxsmm path (its kernels do not depend on BLIS's set; BLIS runs what it does not take). */
static void test_xsmm_no_read_past_operands(void **state) {
    (void)state;
#ifndef TG_WITH_XSMM
    skip();
#endif
    guard_child(-1, "auto", "--guard-sweep-xsmm");
}

/* TG_BLAS_XSMM=value in a fresh process: exit status 0 when libxsmm ends up on, 1 when off. */
/* The exit status of this program run with `flag` and the environment variable `env` set to
 * value (unset when value is NULL): switches read once per process are tested in children. */
static int child_status(const char *env, const char *value, const char *flag) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (value) setenv(env, value, 1);
        else unsetenv(env);
        execl("/proc/self/exe", "test_blas", flag, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int xsmm_switch_child(const char *value) {
    return child_status("TG_BLAS_XSMM", value, "--xsmm-enabled");
}

/* The environment switches share one spelling (autograd/env.c): 0/off/false/no turn libxsmm off
 * in any case, as they do TG_CONV_DNNL. */
static void test_xsmm_switch_values(void **state) {
    (void)state;
#ifndef TG_WITH_XSMM
    skip();
#endif
    const char *off[] = {"0", "off", "OFF", "false", "No"}, *on[] = {"1", "on", "yes", ""};
    for (size_t i = 0; i < sizeof off / sizeof *off; i++)
        if (xsmm_switch_child(off[i]) != 1) fail_msg("TG_BLAS_XSMM=%s left libxsmm on", off[i]);
    for (size_t i = 0; i < sizeof on / sizeof *on; i++)
        if (xsmm_switch_child(on[i]) != 0) fail_msg("TG_BLAS_XSMM=%s turned libxsmm off", on[i]);
}

/* Two switches with values of neither spelling (TG_HUGEPAGES=2, TG_BLAS_XSMM=nope): each gets
 * its warning, the second is not silently taken as on. */
static void test_env_switch_warns_for_each_switch(void **state) {
    (void)state;
    char path[] = "/tmp/tg_switch_warnings_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    setenv("TG_TEST_SWITCH_A", "2", 1);
    setenv("TG_TEST_SWITCH_B", "nope", 1);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    bool a = tg__env_switch_on("TG_TEST_SWITCH_A"), b = tg__env_switch_on("TG_TEST_SWITCH_B");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    unsetenv("TG_TEST_SWITCH_A");
    unsetenv("TG_TEST_SWITCH_B");
    assert_true(a && b);
    char text[1024];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    if (!strstr(text, "TG_TEST_SWITCH_A=2") || !strstr(text, "TG_TEST_SWITCH_B=nope"))
        fail_msg("not a warning for each switch: \"%s\"", text);
}

/* Every allocation keeps its margin for BLIS (sizes around the 64-byte rounding). */
static void test_allocation_tail(void **state) {
    (void)state;
    static const size_t sizes[] = {1, 8, 63, 64, 65, 4096, 100000, 1 << 20, 4 << 20,
                                   (5 << 20) + 3};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = tg__aligned_bytes(sizes[i]);
        assert_non_null(p);
        if (malloc_usable_size(p) < sizes[i] + TG__BLAS_TAIL_BYTES)
            fail_msg("tg__aligned_bytes(%zu) gives %zu usable bytes, fewer than %zu", sizes[i],
                     malloc_usable_size(p), sizes[i] + TG__BLAS_TAIL_BYTES);
        tg__free(p);
    }
}

/* Sizes whose rounding overflows, up to the 64 bytes or up to the 2 MB of a large allocation
 * (which would ask aligned_alloc for 0 bytes and hand them out as ~SIZE_MAX): NULL, for the
 * caller's message. */
static void test_allocation_sizes_near_size_max(void **state) {
    (void)state;
    static const size_t back[] = {0, 1, 63, 64 + TG__BLAS_TAIL_BYTES, 1 << 20, (2 << 20) - 1};
    for (size_t i = 0; i < sizeof back / sizeof *back; i++) {
        void *p = tg__aligned_bytes(SIZE_MAX - back[i]);
        if (p) fail_msg("tg__aligned_bytes(SIZE_MAX - %zu) gave %p, not NULL", back[i], p);
    }
}

/* The end of the mapping holding p when it is advised for transparent huge pages ("hg" in its
 * VmFlags), else 0. */
static uintptr_t advised_huge_until(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return 0;
    char line[512];
    unsigned long lo = 0, hi = 0;
    bool inside = false;
    uintptr_t end = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) /* a mapping's first line */
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
        else if (inside && !strncmp(line, "VmFlags:", 8)) {
            end = strstr(line, " hg") ? hi : 0;
            break;
        }
    }
    fclose(f);
    return end;
}

/* Exit status 0 when allocations of 5 MB and of exactly 4 MB (the margin included) start on a
 * 2 MB boundary and, where the kernel has transparent huge pages, their whole 2 MB pages are
 * advised for them, while one of 64 bytes less is not advised; 1 when not aligned, 2 when not
 * advised as said (run with TG_HUGEPAGES set). */
static int huge_aligned(void) {
    bool thp = access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) == 0;
    void *small = tg__aligned_bytes((4 << 20) - TG__BLAS_TAIL_BYTES - 64);
    int status = thp && advised_huge_until(small) ? 2 : 0;
    static const size_t sizes[] = {5 << 20, (4 << 20) - TG__BLAS_TAIL_BYTES};
    for (int i = 0; i < 2; i++) {
        void *p = tg__aligned_bytes(sizes[i]);
        if (!p || (uintptr_t)p % (2 << 20)) status = 1;
        else if (thp && advised_huge_until(p) < (uintptr_t)p + (4 << 20) && !status) status = 2;
        tg__free(p);
    }
    tg__free(small);
    return status;
}

/* Exit status 0 when an allocation aligned_alloc cannot give is NULL (the sanitizer told to
 * return NULL too, as the C library does). */
static int huge_null(void) {
    dup2(open("/dev/null", O_WRONLY), 2); /* the sanitizer's warnings of each failed request */
    return tg__aligned_bytes((size_t)1 << 62) == NULL && tg__aligned_bytes((size_t)1 << 50) == NULL
               ? 0 : 1;
}

static int huge_child(const char *value) {
    return child_status("TG_HUGEPAGES", value, "--huge-aligned");
}

/* Allocations from 4 MB start on a 2 MB boundary, where transparent huge pages can back them
 * (autograd/alloc.c); TG_HUGEPAGES=0 keeps them on the 64-byte alignment alone. */
static void test_large_allocations_on_huge_pages(void **state) {
    (void)state;
    static const char *const status[] = {"aligned and advised", "not on a 2 MB boundary",
                                         "not advised MADV_HUGEPAGE as it should"};
    int st = huge_child(NULL);
    if (st != 0)
        fail_msg("allocations of 4 and 5 MB (or one just under 4 MB): %s",
                 st < 3 ? status[st] : "the child failed");
    if ((st = huge_child("1")) != 0)
        fail_msg("TG_HUGEPAGES=1: %s", st < 3 ? status[st] : "the child failed");
    if (huge_child("0") != 1) fail_msg("TG_HUGEPAGES=0: still on a 2 MB boundary");
    if (child_status("ASAN_OPTIONS", "allocator_may_return_null=1", "--huge-null") != 0)
        fail_msg("an allocation of 2^62 or 2^50 bytes is not NULL");
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--huge-aligned") == 0) return huge_aligned();
    if (argc > 1 && strcmp(argv[1], "--huge-null") == 0) return huge_null();
    if (argc > 1 && strcmp(argv[1], "--xsmm-enabled") == 0) return tg__xsmm_enabled() ? 0 : 1;
    if (argc > 1 && strcmp(argv[1], "--guard-sweep") == 0) return guard_sweep(false) ? 1 : 0;
    if (argc > 1 && strcmp(argv[1], "--guard-sweep-xsmm") == 0) return guard_sweep(true) ? 1 : 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overwrite),      cmocka_unit_test(test_alpha_beta),
        cmocka_unit_test(test_accumulate),     cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_threaded_split), cmocka_unit_test(test_info),
        cmocka_unit_test(test_pool_alternating_part_counts),
        cmocka_unit_test(test_no_read_past_operands), cmocka_unit_test(test_allocation_tail),
        cmocka_unit_test(test_large_allocations_on_huge_pages),
        cmocka_unit_test(test_allocation_sizes_near_size_max),
        cmocka_unit_test(test_env_switch_warns_for_each_switch),
        cmocka_unit_test(test_xsmm_no_read_past_operands),
        cmocka_unit_test(test_xsmm_switch_values),
        cmocka_unit_test(test_xsmm_takes_small_products),
        cmocka_unit_test(test_xsmm_matches_blis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
