/* Internal: every matrix product of tapegrad goes through these two calls (BLIS underneath, and
 * libxsmm for the small products where it is faster, when built with it: autograd/xsmm.c).
 * Row-major. C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C, with op = transpose when the
 * flag is set; lda/ldb/ldc are the row strides of A, B, C as stored (no copies for transposes). */
#ifndef TG_BLAS_H
#define TG_BLAS_H
#include <stdbool.h>
#include <stdint.h>

/* Readable bytes every tapegrad allocation keeps after its end (autograd/alloc.c): a margin for
 * BLIS kernels that read a little past an operand. The ones measured here (docs/blas.md) are
 * handled in autograd/blas.c for any buffer, so A, B and C may be anyone's memory; the margin
 * covers kernel sets this project's machines cannot run. */
#define TG__BLAS_TAIL_BYTES 64

void tg__gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                  float beta, float *C, int64_t ldc);
void tg__gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
                  double beta, double *C, int64_t ldc);

/* fn(ctx, lo, hi) over disjoint ranges covering [0, n), edges on multiples of 16, run on the
 * product threads (tg_set_num_threads) and the caller through the worker pool of autograd/blas.c;
 * one call fn(ctx, 0, n) on the caller when one thread is set, n < min_n, or a product holds the
 * pool. Returns when every range is done. For memory-bound elementwise passes over large
 * tensors (optim/optimizer.c). */
void tg__parallel_ranges(int64_t n, int64_t min_n, void (*fn)(void *ctx, int64_t lo, int64_t hi),
                         void *ctx);

/* The libxsmm path of autograd/xsmm.c, which autograd/blas.c asks first for each product on one
 * thread, in BLIS's terms (op() folded into row/column strides). True when it ran the product;
 * false when libxsmm does not take it (shape, layout, alpha/beta, disabled, or not built in),
 * and then nothing was touched. */
bool tg__xsmm_gemm(bool f64, int64_t m, int64_t n, int64_t k, double alpha, const void *a,
                   int64_t rsa, int64_t csa, const void *b, int64_t rsb, int64_t csb, double beta,
                   void *c, int64_t rsc, int64_t csc);
/* On unless TG_BLAS_XSMM=0 in the environment (read once) or tg__xsmm_enable(false); always off
 * in a build without libxsmm. Tests and benchmarks switch it to compare the two paths. */
void tg__xsmm_enable(bool on);
bool tg__xsmm_enabled(void);
/* The transposed-x path alone (x·Wᵀ of a short float32 batch: autograd/xsmm.c), on unless
 * TG_BLAS_XSMM_XT=0 or tg__xsmm_xt_enable(false); it also needs the libxsmm path on. */
void tg__xsmm_xt_enable(bool on);

#endif
