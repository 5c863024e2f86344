/* Internal: every matrix product of tapegrad goes through these two calls (BLIS underneath).
 * Row-major. C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C, with op = transpose when the
 * flag is set; lda/ldb/ldc are the row strides of A, B, C as stored (no copies for transposes). */
#ifndef TG_BLAS_H
#define TG_BLAS_H
#include <stdbool.h>
#include <stdint.h>

/* Readable bytes every tapegrad allocation keeps after its end (autograd/alloc.c), because with
 * beta != 0 BLIS 0.9.0's haswell-family small-matrix kernels read past the end of C: their
 * 2-column edge kernel loads 4 floats of each row where it keeps 2 (8 bytes past the last
 * element at most; docs/blas.md). So C must be tapegrad-allocated (or as padded); A and B may be
 * any buffer, borrowed ones included: the one over-read of A is avoided in autograd/blas.c. */
#define TG__BLAS_TAIL_BYTES 64

void tg__gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                  float beta, float *C, int64_t ldc);
void tg__gemm_f64(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                  double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
                  double beta, double *C, int64_t ldc);

#endif
