/* Matrix products through BLIS (autograd/blas.c). Transposes are flags on the GEMM, never copies,
 * in the forward and in both backward products. */
#include <string.h>
#include "autograd/blas.h"
#include "autograd/internal.h"

/* C = alpha·op(A)·op(B) + beta·C for row-major A [ar, ac] and B [br, bc] as stored. */
static void gemm(tg_dtype dtype, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                 const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
                 int64_t ldc)
{
    if (dtype == TG_F32)
        tg__gemm_f32(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, (float)beta, C, ldc);
    else
        tg__gemm_f64(ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

static void check_matrix(const tg_tensor *t, const char *op)
{
    tg__check_float(t, op);
    if (t->ndim != 2) {
        char s[128];
        tg__fail("%s: expected a 2-D tensor, got %s (reshape first)", op,
                 tg_shape_str(t, s, sizeof s));
    }
}

/* Y = op(A)·op(B), flags in node->i[0] (trans_a) and node->i[1] (trans_b).
 * dA: op(A) is [M,K], dop(A) = G·op(B)ᵀ; if A is stored transposed, dA = op(B)·Gᵀ.
 * dB: dop(B) = op(A)ᵀ·G;             if B is stored transposed, dB = Gᵀ·op(A).       */
static void matmul_backward(tg_node *node)
{
    tg_tensor *a = node->in[0], *b = node->in[1], *y = node->out;
    bool ta = node->i[0], tb = node->i[1];
    int64_t M = y->shape[0], N = y->shape[1], K = ta ? a->shape[0] : a->shape[1];
    int64_t lda = a->shape[1], ldb = b->shape[1];
    const void *g = y->grad->data;
    void *ga = tg__grad(a), *gb = tg__grad(b);
    if (ga && !ta) gemm(y->dtype, false, !tb, M, K, N, g, N, b->data, ldb, 1, ga, lda);
    if (ga && ta) gemm(y->dtype, tb, true, K, M, N, b->data, ldb, g, N, 1, ga, lda);
    if (gb && !tb) gemm(y->dtype, !ta, false, K, N, M, a->data, lda, g, N, 1, gb, ldb);
    if (gb && tb) gemm(y->dtype, true, ta, N, K, M, g, N, a->data, lda, 1, gb, ldb);
}

tg_tensor *tg_matmul_t(tg_tensor *a, bool ta, tg_tensor *b, bool tb)
{
    const char *op = "tg_matmul";
    check_matrix(a, op);
    check_matrix(b, op);
    tg__check_same_dtype(a, b, op);
    int64_t M = ta ? a->shape[1] : a->shape[0], K = ta ? a->shape[0] : a->shape[1];
    int64_t Kb = tb ? b->shape[1] : b->shape[0], N = tb ? b->shape[0] : b->shape[1];
    if (K != Kb) {
        char s1[128], s2[128];
        tg__fail("%s: inner sizes differ: %s%s · %s%s gives %lld vs %lld", op,
                 tg_shape_str(a, s1, sizeof s1), ta ? "ᵀ" : "", tg_shape_str(b, s2, sizeof s2),
                 tb ? "ᵀ" : "", (long long)K, (long long)Kb);
    }
    tg_tensor *y = tg__new_intermediate(a->dtype, TG_SHAPE(M, N));
    gemm(a->dtype, ta, tb, M, N, K, a->data, a->shape[1], b->data, b->shape[1], 0, y->data, N);
    tg_node *node = tg__record(op, matmul_backward, y, 2, (tg_tensor *[]){a, b});
    if (node) {
        node->i[0] = ta;
        node->i[1] = tb;
    }
    return y;
}

tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b) { return tg_matmul_t(a, false, b, false); }

/* Y = X·Wᵀ + b.  dX = G·W,  dW = Gᵀ·X,  db = Σ_rows G. */
static void linear_backward(tg_node *node)
{
    tg_tensor *x = node->in[0], *w = node->in[1], *y = node->out;
    tg_tensor *bias = node->n_in > 2 ? node->in[2] : NULL;
    int64_t N = x->shape[0], in = x->shape[1], out = w->shape[0];
    const void *g = y->grad->data;
    void *gx = tg__grad(x), *gw = tg__grad(w), *gb = bias ? tg__grad(bias) : NULL;
    if (gx) gemm(y->dtype, false, false, N, in, out, g, out, w->data, in, 1, gx, in);
    if (gw) gemm(y->dtype, true, false, out, in, N, g, out, x->data, in, 1, gw, in);
    for (int64_t r = 0; gb && r < N; r++)
        for (int64_t j = 0; j < out; j++) {
            if (y->dtype == TG_F32) ((float *)gb)[j] += ((const float *)g)[r * out + j];
            else ((double *)gb)[j] += ((const double *)g)[r * out + j];
        }
}

tg_tensor *tg_linear(tg_tensor *x, tg_tensor *w, tg_tensor *b)
{
    const char *op = "tg_linear";
    char s1[128], s2[128];
    check_matrix(x, op);
    check_matrix(w, op);
    tg__check_same_dtype(x, w, op);
    int64_t N = x->shape[0], in = x->shape[1], out = w->shape[0];
    if (w->shape[1] != in)
        tg__fail("%s: input %s does not match weight %s (expected [out, %lld])", op,
                 tg_shape_str(x, s1, sizeof s1), tg_shape_str(w, s2, sizeof s2), (long long)in);
    if (b) {
        tg__check_float(b, op);
        tg__check_same_dtype(x, b, op);
        if (b->ndim != 1 || b->shape[0] != out)
            tg__fail("%s: bias %s does not match %lld outputs (expected [%lld])", op,
                     tg_shape_str(b, s1, sizeof s1), (long long)out, (long long)out);
    }
    tg_tensor *y = tg__new_intermediate(x->dtype, TG_SHAPE(N, out));
    size_t row = (size_t)out * tg_dtype_size(x->dtype);
    for (int64_t r = 0; b && r < N; r++) /* start from the bias; the GEMM accumulates onto it */
        memcpy((char *)y->data + r * row, b->data, row);
    gemm(x->dtype, false, true, N, out, in, x->data, in, w->data, in, b ? 1 : 0, y->data, out);
    tg_tensor *inputs[3] = {x, w, b};
    tg__record(op, linear_backward, y, b ? 3 : 2, inputs);
    return y;
}
