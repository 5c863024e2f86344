/* Every matrix product of tapegrad: serial BLIS underneath, tapegrad's own threads on top.
 *
 * - Transposes are expressed as BLIS row/column strides, so nothing is ever copied.
 * - BLIS 0.9.0 does not recognise Zen 5 and would run its portable C kernels (far below peak), so
 *   on first use we choose the kernel set ourselves unless the user set BLIS_ARCH_TYPE.
 * - Large products are split into column (or row) blocks of C, one per thread; each thread calls
 *   serial BLIS on its block. The worker pool is created lazily and then only woken, never
 *   re-created, and a call allocates nothing. docs/blas.md has the measurements behind the
 *   kernel choice and the split threshold.
 * - Small products that libxsmm runs faster go to autograd/xsmm.c first (when built with it). */
#include "autograd/blas.h"
#include "autograd/cpu_clones.h"
#include "autograd/internal.h"

#include <blis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_THREADS 64
/* Products with fewer multiply-adds (M*N*K) than this stay on the calling thread. On a quiet
 * machine splitting pays for smaller products too, but when another process holds the second
 * core every split product waits for the scheduler, and a 2^24 product takes about as long as
 * that wait: smaller ones split make a training step slower, not faster, so they are never
 * split. The figures: docs/blas.md, Threads (the caveat). */
#ifndef TG_BLAS_SPLIT_MIN_MNK
#define TG_BLAS_SPLIT_MIN_MNK (1LL << 24)
#endif
#define SPLIT_ALIGN 16 /* block edges on multiples of 16 elements (64-byte lines for f32) */

/* BLIS 0.9.0 integer id for BLIS_ARCH_TYPE (names are not accepted; 0 skx, 6 zen3, 25 generic). */
enum { ARCH_SKX = 0, ARCH_HASWELL = 3 };

/* One product (or one block of it) in BLIS terms: op() already folded into the strides. */
typedef struct {
    bool f64;
    int64_t m, n, k;
    const void *alpha, *beta;
    const void *a, *b;
    void *c;
    int64_t rsa, csa, rsb, csb, rsc, csc;
} gemm_job;

/* ---- initialisation and information ---------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static atomic_int num_threads = 1;
static char info_base[224];
static char info[256];
static pthread_mutex_t info_mu = PTHREAD_MUTEX_INITIALIZER;

static atomic_bool info_ready; /* info_base written (BLIS initialised) */
static bool sup_reads_past_end; /* the kernels chosen read past operands: run_last_row_apart */
static cntx_t *blis_context; /* its small-matrix thresholds: which products use those kernels */

static void update_info(void) {
    if (!atomic_load(&info_ready)) return; /* init() writes it once BLIS is up */
    int n = atomic_load(&num_threads);
    pthread_mutex_lock(&info_mu);
    snprintf(info, sizeof info, "%s, %d thread%s", info_base, n, n == 1 ? "" : "s");
    pthread_mutex_unlock(&info_mu);
}

static int clamp_threads(int n) { return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n; }

/* The thread count is set up apart from BLIS, so that tg_set_num_threads does not fix the kernel
 * choice before a tg_blas_prefer call. */
static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static void init_threads(void) {
    const char *env = getenv("TG_NUM_THREADS");
    atomic_store(&num_threads, clamp_threads(env ? atoi(env) : 1));
}

/* Which kernels to ask for when the user did not say; reason names what decided.
 * skx (AVX-512) is the faster set on large products; haswell (AVX2 + the small-matrix "sup"
 * path) is the faster one on the small products of a batch-16 MLP step. BLIS cannot mix
 * kernel sets per call through Debian's library, so by default we take the one that keeps large
 * products at full speed (the GEMM-bound experiments); tg_blas_prefer(TG_BLAS_SMALL_PRODUCTS)
 * or BLIS_ARCH_TYPE=3 picks haswell. Measurements: docs/blas.md, Kernel choice. */
static int auto_arch(tg_blas_workload w, const char **reason) {
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (w == TG_BLAS_SMALL_PRODUCTS && avx2)
        return *reason = "tg_blas_prefer(small products): avx2+fma", ARCH_HASWELL;
    if (__builtin_cpu_supports("avx512f"))
        return *reason = w == TG_BLAS_LARGE_PRODUCTS ? "tg_blas_prefer(large products): avx512f"
                                                     : "auto: avx512f",
               ARCH_SKX;
    if (avx2) return *reason = "auto: avx2+fma", ARCH_HASWELL;
    *reason = "auto: no avx2, BLIS's own detection";
    return -1; /* leave BLIS's own detection alone */
}

/* The preference of tg_blas_prefer, read once by init(); `initialised` (under prefer_mu) tells a
 * late tg_blas_prefer that it comes too late. */
static pthread_mutex_t prefer_mu = PTHREAD_MUTEX_INITIALIZER;
static tg_blas_workload preferred = TG_BLAS_AUTO;
static bool initialised;

static bool user_arch(void) {
    const char *user = getenv("BLIS_ARCH_TYPE");
    return user && *user;
}

static void init(void) {
    pthread_mutex_lock(&prefer_mu);
    tg_blas_workload w = preferred;
    initialised = true;
    pthread_mutex_unlock(&prefer_mu);

    bool user = user_arch();
    const char *reason = "user: BLIS_ARCH_TYPE";
    bool set_here = false;
    if (!user) {
        int id = auto_arch(w, &reason);
        char buf[8];
        snprintf(buf, sizeof buf, "%d", id);
        /* BLIS reads the variable once, while it initialises: it must be set before bli_init. */
        if (id >= 0) set_here = setenv("BLIS_ARCH_TYPE", buf, 1) == 0;
    }
    bli_init();
    if (set_here) unsetenv("BLIS_ARCH_TYPE"); /* do not leak our choice into child processes */
    bli_error_checking_level_set(BLIS_NO_ERROR_CHECKING); /* tapegrad checks shapes itself */
    arch_t arch = bli_arch_query_id();
    sup_reads_past_end = arch == BLIS_ARCH_HASWELL || arch == BLIS_ARCH_ZEN ||
                       arch == BLIS_ARCH_ZEN2 || arch == BLIS_ARCH_ZEN3;
    blis_context = bli_gks_query_cntx();

    const char *variant = bli_info_get_enable_openmp()     ? "openmp"
                          : bli_info_get_enable_pthreads() ? "pthreads"
                                                           : "serial";
    snprintf(info_base, sizeof info_base, "BLIS %s (%s), kernels %s [%s]%s",
             bli_info_get_version_str(), variant, bli_arch_string(bli_arch_query_id()), reason,
             tg__xsmm_enabled() ? ", libxsmm for small products" : "");
    pthread_once(&threads_once, init_threads);
    atomic_store(&info_ready, true);
    update_info();
}

bool tg_blas_prefer(tg_blas_workload workload) {
    if (workload != TG_BLAS_AUTO && workload != TG_BLAS_SMALL_PRODUCTS &&
        workload != TG_BLAS_LARGE_PRODUCTS)
        tg_fail("tg_blas_prefer: unknown workload %d; use TG_BLAS_AUTO, TG_BLAS_SMALL_PRODUCTS "
                 "or TG_BLAS_LARGE_PRODUCTS", (int)workload);
    pthread_mutex_lock(&prefer_mu);
    bool ok = !initialised && !user_arch();
    if (ok) preferred = workload;
    pthread_mutex_unlock(&prefer_mu);
    return ok;
}

static inline void ensure_init(void) { pthread_once(&init_once, init); }

const char *tg_blas_info(void) {
    ensure_init();
    return info;
}

void tg_set_num_threads(int n) {
    pthread_once(&threads_once, init_threads);
    atomic_store(&num_threads, clamp_threads(n));
    update_info();
}

int tg_get_num_threads(void) {
    pthread_once(&threads_once, init_threads);
    return atomic_load(&num_threads);
}

/* ---- one product on the calling thread ------------------------------------------------------ */

/* Calls bli_s<op> or bli_d<op>; the void pointers convert to float* or double* implicitly. */
#define BLIS(j, op, ...) ((j)->f64 ? bli_d##op(__VA_ARGS__) : bli_s##op(__VA_ARGS__))
#define P(x) ((void *)(x)) /* BLIS's typed API is not const-correct */

static double scalar(const gemm_job *j, const void *x) {
    return j->f64 ? *(const double *)x : *(const float *)x;
}
static bool is_zero(const gemm_job *j, const void *x) {
    return j->f64 ? *(const double *)x == 0 : *(const float *)x == 0;
}
static bool is_one(const gemm_job *j, const void *x) {
    return j->f64 ? *(const double *)x == 1 : *(const float *)x == 1;
}

/* BLIS 0.9.0's small-matrix ("sup") kernels of the haswell family (haswell, zen, zen2, zen3)
 * read past the end of an operand in two cases, both f32 and below the small-matrix thresholds
 * (above them products are packed, which reads exactly). docs/blas.md has the measurements.
 * - A, stored by rows, with op(B) by columns (the "rd" kernels), K % 8 != 0, M % 3 == 1, in the
 *   n-loop variant, which BLIS picks when C has more 16-column blocks than 6-row ones
 *   (M / 6 < N / 16). That variant cuts M into 6-row blocks and an edge of 3 + 1, 2 + 1 or 1 rows;
 *   its one-row edge (bli_sgemmsup_rd_haswell_asm_1x16n) also loads the next row of A in its
 *   k % 8 loop: up to one row stride past A's end.
 * - C, with beta != 0 and op(B) stored by rows (the "rv" kernels), N % 16 in {2, 3, 10, 11, 14,
 *   15}: the 2-column edge kernel (bli_sgemmsup_rv_haswell_asm_6x2) loads 4 floats of each row of
 *   C where it keeps 2: up to 8 bytes past C's end.
 * Either way only the last row reads past the end, so it runs apart, through gemv, which reads
 * exactly; the rows above read into that last row, which exists, and stay one BLIS call. A row
 * has no size bound and A, B and C may be anyone's buffers (tg_wrap, tg_op_gemm), so no padding
 * could do this. */
static bool below_sup_thresholds(const gemm_job *j) { /* either orientation: BLIS may swap */
    return bli_cntx_l3_sup_thresh_is_met(BLIS_FLOAT, j->m, j->n, j->k, blis_context) ||
           bli_cntx_l3_sup_thresh_is_met(BLIS_FLOAT, j->n, j->m, j->k, blis_context);
}

static bool last_row_reads_past_end(const gemm_job *j) {
    if (!sup_reads_past_end || j->f64 || !below_sup_thresholds(j)) return false;
    bool past_a = j->csa == 1 && j->rsb == 1 && j->k % 8 != 0 && j->m % 3 == 1 &&
                  j->m / 6 < j->n / 16;
    int64_t edge = j->n % 16;
    bool past_c = j->csb == 1 && !is_zero(j, j->beta) &&
                  (edge == 2 || edge == 3 || edge == 10 || edge == 11 || edge == 14 || edge == 15);
    return past_a || past_c;
}

static void blis_gemm(const gemm_job *j) {
    BLIS(j, gemm, BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, j->m, j->n, j->k, P(j->alpha), P(j->a),
         j->rsa, j->csa, P(j->b), j->rsb, j->csb, P(j->beta), j->c, j->rsc, j->csc);
}

static void run_serial(const gemm_job *j);

/* M >= 2 here. The top M - 1 rows go straight to BLIS: what they read past their end is the last
 * row of A or C. They do not split again: in the A case (M - 1) % 3 == 0, so the one-row edge
 * does not run; in the C case op(B) is stored by rows, so the A case cannot hold. */
static void run_last_row_apart(const gemm_job *j) {
    size_t es = sizeof(float);
    gemm_job top = *j, last = *j;
    top.m = j->m - 1;
    last.m = 1;
    last.a = (const char *)j->a + (j->m - 1) * j->rsa * es;
    last.c = (char *)j->c + (j->m - 1) * j->rsc * es;
    if (top.m == 1) run_serial(&top);
    else blis_gemm(&top);
    run_serial(&last);
}

/* C = alpha·a·bᵀ stored over C (K = 1, beta = 0): one pass that only writes C, where setm then
 * ger write it, read it and write it again. a is op(A)'s column, b op(B)'s row. */
#define OUTER_WRITE_KERNEL(T, S)                                                                 \
    static TG_CPU_CLONES void outer_write_##S(const gemm_job *j) {                               \
        const T *a = j->a, *b = j->b;                                                            \
        T alpha = *(const T *)j->alpha, *c = j->c;                                               \
        int64_t m = j->m, n = j->n, rsa = j->rsa, csb = j->csb, rsc = j->rsc, csc = j->csc;      \
        for (int64_t i = 0; i < m; i++) {                                                        \
            T ai = alpha * a[i * rsa];                                                           \
            T *restrict ci = c + i * rsc; /* C is not an operand: restrict lets it vectorise */  \
            if (csc == 1 && csb == 1)                                                            \
                for (int64_t l = 0; l < n; l++) ci[l] = ai * b[l];                               \
            else                                                                                 \
                for (int64_t l = 0; l < n; l++) ci[l * csc] = ai * b[l * csb];                   \
        }                                                                                        \
    }
TG_STAMP(OUTER_WRITE_KERNEL)

/* M = 1 and N = 1 go to gemv, K = 1 to ger: BLIS's gemm is slower on them (docs/blas.md,
 * gemv / ger instead of gemm). */
static void run_serial(const gemm_job *j) {
    if (j->m == 0 || j->n == 0) return;
    if (j->m == 1) { /* C row = op(B)^T · op(A) row: gemv on the N x K view of op(B) */
        BLIS(j, gemv, BLIS_NO_TRANSPOSE, BLIS_NO_CONJUGATE, j->n, j->k, P(j->alpha), P(j->b),
             j->csb, j->rsb, P(j->a), j->csa, P(j->beta), j->c, j->csc);
    } else if (j->n == 1) { /* C column = op(A) · op(B) column */
        BLIS(j, gemv, BLIS_NO_TRANSPOSE, BLIS_NO_CONJUGATE, j->m, j->k, P(j->alpha), P(j->a),
             j->rsa, j->csa, P(j->b), j->rsb, P(j->beta), j->c, j->rsc);
    } else if (j->k == 1 && is_zero(j, j->beta)) { /* beta = 0 overwrites, even NaN */
        if (j->f64) outer_write_f64(j);
        else outer_write_f32(j);
    } else if (j->k == 1) { /* outer product: C = beta C, then ger (cheaper than gemm) */
        if (!is_one(j, j->beta))
            BLIS(j, scalm, BLIS_NO_CONJUGATE, 0, BLIS_NONUNIT_DIAG, BLIS_DENSE, j->m, j->n,
                 P(j->beta), j->c, j->rsc, j->csc);
        BLIS(j, ger, BLIS_NO_CONJUGATE, BLIS_NO_CONJUGATE, j->m, j->n, P(j->alpha), P(j->a),
             j->rsa, P(j->b), j->csb, j->c, j->rsc, j->csc);
    } else if (tg__xsmm_gemm(j->f64, j->m, j->n, j->k, scalar(j, j->alpha), j->a, j->rsa,
                             j->csa, j->b, j->rsb, j->csb, scalar(j, j->beta), j->c, j->rsc,
                             j->csc)) {
        return;
    } else if (last_row_reads_past_end(j)) {
        run_last_row_apart(j);
    } else {
        blis_gemm(j);
    }
}

/* ---- the worker pool -------------------------------------------------------------------------
 * A product above the split threshold is cut into TG_BLAS_BLOCKS_PER_THREAD blocks per thread
 * taking part; the caller and the workers assigned to the generation take blocks one at a time
 * from a shared counter until none is left. A worker the scheduler has not run yet (another
 * process holds its core) then costs nothing: the caller takes its blocks too, so a product is
 * never much slower than on one thread (only a block a worker started and was preempted in waits
 * for it). More blocks per thread shorten that wait and cost BLIS a packing of the shared operand
 * per block (docs/blas.md, Threads). tg__parallel_ranges hands the same pool ranges of an
 * elementwise pass instead of blocks of a product. The
 * counter holds the generation in its high 32 bits, so a worker late for one generation cannot
 * take a block of the next. One product uses the pool at a time (call_mu); a concurrent caller
 * that finds it busy runs serially instead. Waking a thread through a condition variable costs
 * more than a batch-16 product takes, so both sides first spin for SPIN_SECONDS (back-to-back
 * products of a training step are then handed over without a wake-up) and only then sleep. The
 * hand-over costs: docs/blas.md, Threads. */

#ifndef TG_BLAS_BLOCKS_PER_THREAD
#define TG_BLAS_BLOCKS_PER_THREAD 1
#endif
#define SPIN_SECONDS 100e-6

static struct {
    pthread_mutex_t call_mu, mu;
    pthread_cond_t go, done;
    int started;                 /* workers created so far (never shrinks; call_mu) */
    /* The generation worker w takes part in, stamped before that generation starts. A worker
     * that wakes late for one it sat out must not read the next one's jobs or count: it runs only
     * when its stamp equals the generation it has observed. */
    atomic_ulong assigned[MAX_THREADS];
    atomic_int sleeping;         /* workers blocked (or about to block) on `go` */
    atomic_bool caller_sleeping; /* the caller is blocked (or about to block) on `done` */
    atomic_int pending;          /* blocks of this generation not finished yet */
    atomic_ulong generation;     /* bumped (after the job and stamps are written) to start one */
    atomic_ullong next_block;    /* (generation & 0xffffffff) << 32 | the next block to take */
    unsigned long born[MAX_THREADS]; /* generation current when worker w was created */
    /* The job being split: run_block(job, part, blocks) runs block `part` (a product's, or a
     * range of tg__parallel_ranges). */
    void (*run_block)(const void *job, int part, int parts);
    const void *job;
    int blocks;                  /* into this many blocks */
} pool = {.call_mu = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER,
          .go = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Spins until done(arg) or SPIN_SECONDS pass; returns done(arg). */
static bool spin_until(bool (*done)(unsigned long), unsigned long arg) {
    double t0 = seconds();
    for (int i = 1;; i++) {
        if (done(arg)) return true;
        __builtin_ia32_pause();
        if (i % 256 == 0 && seconds() - t0 > SPIN_SECONDS) return done(arg);
    }
}
static bool new_generation(unsigned long seen) { return atomic_load(&pool.generation) != seen; }
static bool all_done(unsigned long unused) { return atomic_load(&pool.pending) == 0; }

/* Block `part` of `parts` along C's longer side, edges aligned to SPLIT_ALIGN. */
static gemm_job block(const gemm_job *j, int part, int parts) {
    size_t es = j->f64 ? sizeof(double) : sizeof(float);
    bool by_rows = j->m > j->n;
    int64_t len = by_rows ? j->m : j->n;
    int64_t step = (len + parts - 1) / parts;
    step = (step + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
    int64_t lo = part * step < len ? part * step : len;
    int64_t hi = lo + step < len ? lo + step : len;
    gemm_job s = *j;
    if (by_rows) {
        s.m = hi - lo;
        s.a = (const char *)j->a + lo * j->rsa * es;
        s.c = (char *)j->c + lo * j->rsc * es;
    } else {
        s.n = hi - lo;
        s.b = (const char *)j->b + lo * j->csb * es;
        s.c = (char *)j->c + lo * j->csc * es;
    }
    return s;
}

/* Runs blocks of generation gen until none is left; true when it finished the last one. */
static bool take_blocks(unsigned long gen) {
    unsigned long long tag = (unsigned long long)(gen & 0xffffffffUL) << 32;
    bool last = false;
    for (;;) {
        unsigned long long v = atomic_load(&pool.next_block);
        if ((v & ~0xffffffffULL) != tag || (int)(v & 0xffffffffULL) >= pool.blocks) return last;
        if (!atomic_compare_exchange_weak(&pool.next_block, &v, v + 1)) continue;
        pool.run_block(pool.job, (int)(v & 0xffffffffULL), pool.blocks);
        last = atomic_fetch_sub(&pool.pending, 1) == 1;
    }
}

static void *worker(void *arg) {
    int w = (int)(intptr_t)arg;
    pthread_mutex_lock(&pool.mu);
    unsigned long seen = pool.born[w];
    pthread_mutex_unlock(&pool.mu);
    for (;;) {
        if (!spin_until(new_generation, seen)) {
            pthread_mutex_lock(&pool.mu);
            atomic_fetch_add(&pool.sleeping, 1);
            while (!new_generation(seen)) pthread_cond_wait(&pool.go, &pool.mu);
            atomic_fetch_sub(&pool.sleeping, 1);
            pthread_mutex_unlock(&pool.mu);
        }
        seen = atomic_load(&pool.generation);
        if (atomic_load(&pool.assigned[w]) != seen) continue;
        if (take_blocks(seen) && atomic_load(&pool.caller_sleeping)) {
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.mu);
        }
    }
    return NULL;
}

/* Makes sure `want` workers exist (call_mu held); returns how many do. */
static int grow_pool(int want) {
    while (pool.started < want) {
        pthread_t t;
        pthread_mutex_lock(&pool.mu); /* a new worker must not take an old generation for new */
        pool.born[pool.started] = atomic_load(&pool.generation);
        int ok = pthread_create(&t, NULL, worker, (void *)(intptr_t)pool.started) == 0;
        pthread_mutex_unlock(&pool.mu);
        if (!ok) break;
        pthread_detach(t);
        pool.started++;
    }
    return pool.started;
}

/* Runs blocks [0, max_blocks) of job, at most TG_BLAS_BLOCKS_PER_THREAD per thread taking part,
 * on the caller and up to threads - 1 workers; false (nothing run) when another caller holds the
 * pool. */
static bool run_on_pool(void (*run_block)(const void *job, int part, int parts), const void *job,
                        int64_t threads, int64_t max_blocks) {
    if (pthread_mutex_trylock(&pool.call_mu) != 0) return false;
    int workers = grow_pool((int)threads - 1);
    int parts = 1 + (workers < threads - 1 ? workers : (int)threads - 1);
    int64_t nblocks = (int64_t)parts * TG_BLAS_BLOCKS_PER_THREAD;
    pool.run_block = run_block;
    pool.job = job;
    pool.blocks = (int)(nblocks < max_blocks ? nblocks : max_blocks);
    unsigned long next = atomic_load(&pool.generation) + 1; /* only call_mu's holder bumps it */
    for (int w = 0; w < parts - 1; w++) atomic_store(&pool.assigned[w], next);
    atomic_store(&pool.pending, pool.blocks);
    atomic_store(&pool.next_block, (unsigned long long)(next & 0xffffffffUL) << 32);
    atomic_store(&pool.generation, next); /* publishes the job and stamps to spinning workers */
    if (atomic_load(&pool.sleeping)) {     /* and wakes the sleeping ones */
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.go);
        pthread_mutex_unlock(&pool.mu);
    }

    take_blocks(next);

    if (!spin_until(all_done, 0)) {
        pthread_mutex_lock(&pool.mu);
        atomic_store(&pool.caller_sleeping, true);
        while (!all_done(0)) pthread_cond_wait(&pool.done, &pool.mu);
        atomic_store(&pool.caller_sleeping, false);
        pthread_mutex_unlock(&pool.mu);
    }
    pthread_mutex_unlock(&pool.call_mu);
    return true;
}

static void gemm_block(const void *job, int part, int parts) {
    gemm_job b = block(job, part, parts);
    run_serial(&b);
}

static void run(const gemm_job *j) {
    int64_t blocks = ((j->m > j->n ? j->m : j->n) + SPLIT_ALIGN - 1) / SPLIT_ALIGN;
    int64_t want = atomic_load(&num_threads);
    if (want > blocks) want = blocks;
    if (want <= 1 || j->m * j->n * j->k < TG_BLAS_SPLIT_MIN_MNK ||
        !run_on_pool(gemm_block, j, want, blocks))
        run_serial(j);
}

/* ---- ranges of elementwise work on the same threads ------------------------------------------ */

typedef struct {
    int64_t n;
    void (*fn)(void *ctx, int64_t lo, int64_t hi);
    void *ctx;
} range_job;

static void range_block(const void *job, int part, int parts) {
    const range_job *r = job;
    int64_t step = (r->n + parts - 1) / parts;
    step = (step + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
    int64_t lo = part * step < r->n ? part * step : r->n;
    int64_t hi = lo + step < r->n ? lo + step : r->n;
    if (hi > lo) r->fn(r->ctx, lo, hi);
}

void tg__parallel_ranges(int64_t n, int64_t min_n, void (*fn)(void *ctx, int64_t lo, int64_t hi),
                         void *ctx) {
    int64_t want = n >= min_n ? tg_get_num_threads() : 1;
    range_job r = {n, fn, ctx};
    if (want <= 1 || !run_on_pool(range_block, &r, want, (n + SPLIT_ALIGN - 1) / SPLIT_ALIGN))
        fn(ctx, 0, n);
}

/* ---- the two entry points ------------------------------------------------------------------- */

/* op(X) of a row-major matrix with row stride ld: no transpose -> (ld, 1); transpose -> (1, ld). */
#define GEMM_ENTRY(name, T, is_f64)                                                               \
    void name(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T *A,  \
              int64_t lda, const T *B, int64_t ldb, T beta, T *C, int64_t ldc) {                  \
        ensure_init();                                                                            \
        gemm_job j = {.f64 = is_f64, .m = M, .n = N, .k = K, .alpha = &alpha, .beta = &beta,      \
                      .a = A, .b = B, .c = C,                                                     \
                      .rsa = trans_a ? 1 : lda, .csa = trans_a ? lda : 1,                         \
                      .rsb = trans_b ? 1 : ldb, .csb = trans_b ? ldb : 1,                         \
                      .rsc = ldc, .csc = 1};                                                      \
        run(&j);                                                                                  \
    }

GEMM_ENTRY(tg__gemm_f32, float, false)
GEMM_ENTRY(tg__gemm_f64, double, true)
