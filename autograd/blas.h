/* Internal: every matrix product of tapegrad goes through these two calls (BLIS underneath).
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

#endif
