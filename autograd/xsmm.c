/* Small products through libxsmm's JIT kernels, where they beat BLIS's small-matrix path
 * (docs/blas.md, "libxsmm"; bench/bench_xsmm.c measures both).
 *
 * - Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: libxsmm gets m = N, n = M, its
 *   A is our B and its B our A. libxsmm 1.17 has no kernels with its A transposed, so products
 *   with op(B) = Bᵀ (the forward x·Wᵀ) have no kernel as they stand; ours with op(A) = Aᵀ (the
 *   weight gradient Gᵀ·X) are its B transposed, which it has.
 * - It takes alpha = 1 and beta in {0, 1}: every product of tg_linear and tg_matmul.
 * - The forward x·Wᵀ of a short batch (M = 16, 32, 48 or 64, float32) still goes to libxsmm: its
 *   kernels vectorise along the batch there (the 16 rows of x are two AVX2 vectors) once x is
 *   copied transposed into per-thread scratch (M·K floats, a sixth of W₁ for the Table-1
 *   forward); the kernel writes Cᵀ into scratch too, added onto C (the bias) row by row.
 * - Asking libxsmm's registry for a kernel costs a sizeable part of a small product's time
 *   (docs/blas.md, libxsmm: Kernels), so each thread keeps the last few kernels it used (a
 *   lookup is a scan of a few keys); the registry, and its JIT the first time a shape is seen,
 *   run only on a miss. No allocation in
 *   steady state: the cache is static per thread, and libxsmm allocates only on JIT.
 * Built without libxsmm (make XSMM=0), tg__xsmm_gemm takes nothing and every product is BLIS's. */
#include "autograd/blas.h"
#include "autograd/cpu_clones.h"
#include "autograd/internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#ifdef TG_WITH_XSMM
#include <limits.h>
#include <libxsmm.h>
#include <pthread.h>

/* Which products libxsmm takes: its kernels do not block K, so they win where K is short (up to
 * 16 at every M x N measured, up to 64 on small outputs) and lose on long K (the GEMM MLP's
 * products). The sweep: docs/blas.md, libxsmm, and docs/speed.md, Lever 5. */
#define XSMM_MAX_K 16
#define XSMM_SMALL_MN 2048 /* M·N of an output small enough for K up to XSMM_SMALL_MN_MAX_K */
#define XSMM_SMALL_MN_MAX_K 64
#define XSMM_MAX_MNK (1LL << 22)

static bool pays(int64_t m, int64_t n, int64_t k) {
    if (m * n * k > XSMM_MAX_MNK) return false;
    return k <= XSMM_MAX_K || (k <= XSMM_SMALL_MN_MAX_K && m * n <= XSMM_SMALL_MN);
}

/* The transposed-x path for op(B) = Bᵀ (docs/speed.md, Lever 7, has the sweep): it wins where
 * the batch M is a multiple of 16 up to 64, loses at M = 4 and 8 and on outputs of fewer than 16
 * columns with long K. The caps bound the
 * per-thread scratch (M·K + N·M floats). */
#define XT_MAX_M 64
#define XT_MAX_KN 4096

static bool pays_transposed(int64_t m, int64_t n, int64_t k) {
    return m % 16 == 0 && m <= XT_MAX_M && k >= 16 && k <= XT_MAX_KN && n <= XT_MAX_KN &&
           !(n < 16 && k > 256);
}

static atomic_int enabled = -1; /* -1: not read from TG_BLAS_XSMM yet */

static bool is_enabled(void) {
    int e = atomic_load_explicit(&enabled, memory_order_relaxed);
    if (e < 0) {
        e = tg__env_switch_on("TG_BLAS_XSMM");
        atomic_store(&enabled, e);
    }
    return e;
}

/* TG_BLAS_XSMM_XT=0 turns off only the transposed-x path (old/new comparisons in one binary). */
static atomic_int xt_enabled = -1;

static bool is_xt_enabled(void) {
    int e = atomic_load_explicit(&xt_enabled, memory_order_relaxed);
    if (e < 0) {
        e = tg__env_switch_on("TG_BLAS_XSMM_XT");
        atomic_store(&xt_enabled, e);
    }
    return e;
}

void tg__xsmm_enable(bool on) { atomic_store(&enabled, on); }
void tg__xsmm_xt_enable(bool on) { atomic_store(&xt_enabled, on); }
bool tg__xsmm_enabled(void) { return is_enabled(); }

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool have_avx;
static void init(void) {
    libxsmm_init();
    __builtin_cpu_init();
    have_avx = __builtin_cpu_supports("avx");
}

/* libxsmm's JIT kernels return with the upper halves of the ymm registers in use (they end in
 * pops and ret, no vzeroupper, unlike compiled AVX code and BLIS's kernels). Until something
 * clears them, every legacy-SSE instruction of the code that follows (most of tapegrad is built
 * for baseline x86-64) pays for the merge, all through the training step (docs/speed.md,
 * Lever 7). No vzeroupper on CPUs without AVX, whose kernels libxsmm writes in SSE. */
__attribute__((target("avx"))) static void clear_upper_avx(void) { __builtin_ia32_vzeroupper(); }
static void after_kernel(void) {
    if (have_avx) clear_upper_avx();
}

/* A kernel as libxsmm names it; found: the registry was asked (kernel may be NULL: none). */
typedef struct {
    bool found, f64;
    int flags;
    libxsmm_blasint m, n, k, lda, ldb, ldc;
    libxsmm_xmmfunction kernel;
} cached;

#define CACHE_SIZE 16
static _Thread_local cached cache[CACHE_SIZE];
static _Thread_local unsigned cache_next; /* round-robin replacement */

static bool same(const cached *e, const cached *key) {
    return e->found && e->f64 == key->f64 && e->flags == key->flags && e->m == key->m &&
           e->n == key->n && e->k == key->k && e->lda == key->lda && e->ldb == key->ldb &&
           e->ldc == key->ldc;
}

static libxsmm_xmmfunction kernel_for(const cached *key) {
    for (int i = 0; i < CACHE_SIZE; i++)
        if (same(&cache[i], key)) return cache[i].kernel;
    pthread_once(&init_once, init);
    cached e = *key;
    e.found = true;
    bool beta0 = key->flags & LIBXSMM_GEMM_FLAG_BETA_0;
    int prefetch = LIBXSMM_GEMM_PREFETCH_NONE; /* the kernel takes (a, b, c) and nothing else */
    if (key->f64) {
        double alpha = 1, beta = beta0 ? 0 : 1;
        e.kernel.dmm = libxsmm_dmmdispatch(key->m, key->n, key->k, &key->lda, &key->ldb, &key->ldc,
                                           &alpha, &beta, &key->flags, &prefetch);
    } else {
        float alpha = 1, beta = beta0 ? 0 : 1;
        e.kernel.smm = libxsmm_smmdispatch(key->m, key->n, key->k, &key->lda, &key->ldb, &key->ldc,
                                           &alpha, &beta, &key->flags, &prefetch);
    }
    cache[cache_next++ % CACHE_SIZE] = e;
    return e.kernel;
}

static bool fits_int(int64_t x) { return x > 0 && x <= INT_MAX; }

/* ---- the transposed-x path ------------------------------------------------------------------ */

/* Per-thread scratch for xᵀ and Cᵀ, grown to the largest product seen and released when the
 * thread ends (the key's destructor); after the first product of a shape a call allocates
 * nothing. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void make_scratch_key(void) { pthread_key_create(&scratch_key, tg__free); }
static _Thread_local float *scratch;
static _Thread_local size_t scratch_floats;

static float *scratch_for(size_t floats) {
    if (floats <= scratch_floats) return scratch;
    pthread_once(&scratch_once, make_scratch_key);
    float *p = tg__aligned_bytes(floats * sizeof(float));
    if (!p) return NULL; /* BLIS runs the product instead */
    tg__free(scratch);
    scratch = p, scratch_floats = floats;
    pthread_setspecific(scratch_key, p);
    return p;
}

typedef float v8 __attribute__((vector_size(32)));
typedef float v8_unaligned __attribute__((vector_size(32), aligned(4), may_alias));

/* out[j][i] = in[i][j] for i < rows, j < cols (row strides ldi, ldo). Whole 8x8 tiles are
 * transposed in eight vector registers, in the three rounds of the textbook AVX transpose:
 * interleave row pairs, then pairs of pairs, then swap 128-bit halves; edges go element by
 * element. The tile's rows are loaded as vectors straight from memory: copied through a local
 * array, gcc spills them and every reload stalls on store forwarding (docs/speed.md, Lever 7). */
static TG_CPU_CLONES void transpose_f32(int64_t rows, int64_t cols, const float *in, int64_t ldi,
                                        float *out, int64_t ldo) {
    int64_t i0 = 0;
    for (; i0 + 8 <= rows; i0 += 8) {
        int64_t j0 = 0;
        for (; j0 + 8 <= cols; j0 += 8) {
            v8 r[8], t[8], u[8];
            for (int i = 0; i < 8; i++) r[i] = *(const v8_unaligned *)(in + (i0 + i) * ldi + j0);
            for (int i = 0; i < 8; i += 2) { /* (r0 r1): 00 10 01 11 04 14 05 15, ... */
                t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
                t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
            }
            for (int h = 0; h < 8; h += 4) { /* u[h + q]: column q (low half), q + 4 (high) */
                u[h] = __builtin_shufflevector(t[h], t[h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
                u[h + 1] = __builtin_shufflevector(t[h], t[h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
                u[h + 2] = __builtin_shufflevector(t[h + 1], t[h + 3], 0, 1, 8, 9, 4, 5, 12, 13);
                u[h + 3] = __builtin_shufflevector(t[h + 1], t[h + 3], 2, 3, 10, 11, 6, 7, 14, 15);
            }
            for (int q = 0; q < 4; q++) { /* rows 0-3 of column q from u[q], rows 4-7 from u[q+4] */
                *(v8_unaligned *)(out + (j0 + q) * ldo + i0) =
                    __builtin_shufflevector(u[q], u[q + 4], 0, 1, 2, 3, 8, 9, 10, 11);
                *(v8_unaligned *)(out + (j0 + q + 4) * ldo + i0) =
                    __builtin_shufflevector(u[q], u[q + 4], 4, 5, 6, 7, 12, 13, 14, 15);
            }
        }
        for (int64_t i = i0; i < i0 + 8; i++)
            for (int64_t j = j0; j < cols; j++) out[j * ldo + i] = in[i * ldi + j];
    }
    for (int64_t i = i0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) out[j * ldo + i] = in[i * ldi + j];
}

/* C = beta·C + ctᵀ for C [m, n] (row stride ldc) and ct [n, m]; beta is 0 or 1. */
static void add_transposed(int64_t m, int64_t n, const float *ct, float beta, float *c,
                           int64_t ldc) {
    for (int64_t i = 0; i < m; i++) {
        float *row = c + i * ldc;
        if (beta == 0)
            for (int64_t j = 0; j < n; j++) row[j] = ct[j * m + i];
        else
            for (int64_t j = 0; j < n; j++) row[j] += ct[j * m + i];
    }
}

/* Row-major C = A·Bᵀ (+ C) with A [m, k] and B [n, k] stored by rows. In libxsmm's column-major
 * terms: ct (m x n, ld m) = at (m x k, ld m: the scratch copy of A, row-major Aᵀ) · B (k x n,
 * ld ldb: its column j is row j of B), neither transposed. ct read row-major is Cᵀ [n, m]. */
static bool transposed_x_gemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                              const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (!fits_int(ldb) || !fits_int(ldc)) return false;
    cached key = {.f64 = false, .flags = LIBXSMM_GEMM_FLAG_BETA_0, .m = (libxsmm_blasint)m,
                  .n = (libxsmm_blasint)n, .k = (libxsmm_blasint)k, .lda = (libxsmm_blasint)m,
                  .ldb = (libxsmm_blasint)ldb, .ldc = (libxsmm_blasint)m};
    libxsmm_xmmfunction f = kernel_for(&key);
    float *at = f.smm ? scratch_for((size_t)(m * k + n * m)) : NULL;
    if (!at) return false;
    float *ct = at + m * k;
    transpose_f32(m, k, a, lda, at, m);
    f.smm(at, b, ct);
    after_kernel();
    add_transposed(m, n, ct, beta, c, ldc);
    return true;
}

bool tg__xsmm_gemm(bool f64, int64_t m, int64_t n, int64_t k, double alpha, const void *a,
                   int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb, double beta,
                   void *c, int64_t rsc, int64_t csc) {
    if (alpha != 1 || (beta != 0 && beta != 1) || csc != 1) return false;
    if (!f64 && csa == 1 && rsb == 1 && pays_transposed(m, n, k)) /* x·Wᵀ of a short batch */
        return is_enabled() && is_xt_enabled() && transposed_x_gemm(m, n, k, a, rsa, b, csb, (float)beta, c, rsc);
    if (csb != 1 || !pays(m, n, k)) return false; /* libxsmm's A (our B) untransposed */
    bool a_by_rows = csa == 1;
    if (!a_by_rows && rsa != 1) return false;
    int64_t lda = rsb, ldb = a_by_rows ? rsa : csa;
    if (!fits_int(lda) || !fits_int(ldb) || !fits_int(rsc) || !is_enabled()) return false;
    cached key = {.f64 = f64,
                  .flags = (a_by_rows ? 0 : LIBXSMM_GEMM_FLAG_TRANS_B) |
                           (beta == 0 ? LIBXSMM_GEMM_FLAG_BETA_0 : 0),
                  .m = (libxsmm_blasint)n, .n = (libxsmm_blasint)m, .k = (libxsmm_blasint)k,
                  .lda = (libxsmm_blasint)lda, .ldb = (libxsmm_blasint)ldb,
                  .ldc = (libxsmm_blasint)rsc};
    libxsmm_xmmfunction f = kernel_for(&key);
    if (f64) {
        if (!f.dmm) return false;
        f.dmm(b, a, c);
    } else {
        if (!f.smm) return false;
        f.smm(b, a, c);
    }
    after_kernel();
    return true;
}

#else

void tg__xsmm_enable(bool on) { (void)on; }
void tg__xsmm_xt_enable(bool on) { (void)on; }
bool tg__xsmm_enabled(void) { return false; }
bool tg__xsmm_gemm(bool f64, int64_t m, int64_t n, int64_t k, double alpha, const void *a,
                   int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb, double beta,
                   void *c, int64_t rsc, int64_t csc) {
    return false;
}

#endif
