/* Small products through libxsmm's JIT kernels, where they beat BLIS's small-matrix path
 * (docs/blas.md, "libxsmm"; bench/bench_xsmm.c measures both).
 *
 * - Row-major C = op(A)·op(B) is column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: libxsmm gets m = N, n = M, its
 *   A is our B and its B our A. libxsmm 1.17 has no kernels with its A transposed, so products
 *   with op(B) = Bᵀ (the forward x·Wᵀ) stay on BLIS; ours with op(A) = Aᵀ (the weight gradient
 *   Gᵀ·X) are its B transposed, which it has.
 * - It takes alpha = 1 and beta in {0, 1}: every product of tg_linear and tg_matmul.
 * - Asking libxsmm's registry for a kernel costs ~0.16 us, a third of a 16x100x10 product, so
 *   each thread keeps the last few kernels it used (a lookup is a scan of a few keys); the
 *   registry, and its JIT the first time a shape is seen, run only on a miss. No allocation in
 *   steady state: the cache is static per thread, and libxsmm allocates only on JIT.
 * Built without libxsmm (make XSMM=0), tg__xsmm_gemm takes nothing and every product is BLIS's. */
#include "autograd/blas.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#ifdef TG_WITH_XSMM
#include <limits.h>
#include <libxsmm.h>
#include <pthread.h>

/* Which products libxsmm takes, from the sweep in docs/blas.md: its kernels do not block K, so
 * they win where K is short (K <= 16: 0.2-0.87 of BLIS's time at every M x N measured; up to 64
 * on small outputs) and lose from K ~128 (up to 2-2.6x slower on the GEMM MLP's products). */
#define XSMM_MAX_K 16
#define XSMM_SMALL_MN 2048 /* M·N of an output small enough for K up to XSMM_SMALL_MN_MAX_K */
#define XSMM_SMALL_MN_MAX_K 64
#define XSMM_MAX_MNK (1LL << 22)

static bool pays(int64_t m, int64_t n, int64_t k) {
    if (m * n * k > XSMM_MAX_MNK) return false;
    return k <= XSMM_MAX_K || (k <= XSMM_SMALL_MN_MAX_K && m * n <= XSMM_SMALL_MN);
}

static atomic_int enabled = -1; /* -1: not read from TG_BLAS_XSMM yet */

static bool is_enabled(void) {
    int e = atomic_load_explicit(&enabled, memory_order_relaxed);
    if (e < 0) {
        const char *env = getenv("TG_BLAS_XSMM");
        e = !(env && strcmp(env, "0") == 0);
        atomic_store(&enabled, e);
    }
    return e;
}

void tg__xsmm_enable(bool on) { atomic_store(&enabled, on); }
bool tg__xsmm_enabled(void) { return is_enabled(); }

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void init(void) { libxsmm_init(); }

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

bool tg__xsmm_gemm(bool f64, int64_t m, int64_t n, int64_t k, double alpha, const void *a,
                   int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb, double beta,
                   void *c, int64_t rsc, int64_t csc) {
    if (alpha != 1 || (beta != 0 && beta != 1) || !pays(m, n, k)) return false;
    if (csb != 1 || csc != 1) return false; /* libxsmm's A (our B) untransposed, C by rows */
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
    return true;
}

#else

void tg__xsmm_enable(bool on) { (void)on; }
bool tg__xsmm_enabled(void) { return false; }
bool tg__xsmm_gemm(bool f64, int64_t m, int64_t n, int64_t k, double alpha, const void *a,
                   int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb, double beta,
                   void *c, int64_t rsc, int64_t csc) {
    return false;
}

#endif
