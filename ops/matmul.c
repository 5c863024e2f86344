/* Matrix products through BLIS (autograd/blas.c). Transposes are flags on the GEMM, never copies,
 * in the forward and in both backward products. */
#include <string.h>
#include "autograd/blas.h"
#include "autograd/cpu_clones.h"
#include "ops/kernel.h"

void tg_op_gemm(tg_dtype dtype, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
                int64_t ldc)
{
    if (dtype == TG_F32)
        tg__gemm_f32(ta, tb, M, N, K, (float)alpha, A, lda, B, ldb, (float)beta, C, ldc);
    else if (dtype == TG_F64)
        tg__gemm_f64(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        tg_fail("tg_op_gemm: dtype %s is not float32 or float64", tg_dtype_name(dtype));
}

/* C = op(A)·op(B) + beta·C for row-major A [ar, ac] and B [br, bc] as stored. */
static void gemm(tg_dtype dtype, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                 const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
                 int64_t ldc)
{
    tg_op_gemm(dtype, ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

static void check_matrix(const tg_tensor *t, const char *op)
{
    tg_check_float(t, op);
    if (t->ndim != 2) {
        char s[128];
        tg_fail("%s: expected a 2-D tensor, got %s (reshape first)", op,
                 tg_shape_str(t, s, sizeof s));
    }
}

typedef struct {
    bool trans_a, trans_b;
} matmul_saved;

/* Y = op(A)·op(B).
 * dA: op(A) is [M,K], dop(A) = G·op(B)ᵀ; if A is stored transposed, dA = op(B)·Gᵀ.
 * dB: dop(B) = op(A)ᵀ·G;             if B is stored transposed, dB = Gᵀ·op(A).       */
static void matmul_backward(const tg_node *node)
{
    const matmul_saved *s = node->saved;
    tg_tensor *a = node->in[0], *b = node->in[1], *y = node->out;
    bool ta = s->trans_a, tb = s->trans_b;
    int64_t M = y->shape[0], N = y->shape[1], K = ta ? a->shape[0] : a->shape[1];
    int64_t lda = a->shape[1], ldb = b->shape[1];
    const void *g = tg_op_grad_out(node);
    double beta_a, beta_b; /* a and b may be one tensor: its second product then adds (beta 1) */
    void *ga = tg_op_grad_beta(a, &beta_a), *gb = tg_op_grad_beta(b, &beta_b);
    if (ga && !ta) gemm(y->dtype, false, !tb, M, K, N, g, N, b->data, ldb, beta_a, ga, lda);
    if (ga && ta) gemm(y->dtype, tb, true, K, M, N, b->data, ldb, g, N, beta_a, ga, lda);
    if (gb && !tb) gemm(y->dtype, !ta, false, K, N, M, a->data, lda, g, N, beta_b, gb, ldb);
    if (gb && tb) gemm(y->dtype, true, ta, N, K, M, g, N, a->data, lda, beta_b, gb, ldb);
}

/* The same four products, as recorded ops. */
static void matmul_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const matmul_saved *s = node->saved;
    tg_tensor *a = node->in[0], *b = node->in[1];
    bool ta = s->trans_a, tb = s->trans_b;
    if (a->requires_grad)
        grad_in[0] = ta ? tg_matmul_t(b, tb, g, true) : tg_matmul_t(g, false, b, !tb);
    if (b->requires_grad)
        grad_in[1] = tb ? tg_matmul_t(g, true, a, ta) : tg_matmul_t(a, !ta, g, false);
}

static const tg_op matmul_op = {"tg_matmul", matmul_backward, matmul_backward_ops};

tg_tensor *tg_matmul_t(tg_tensor *a, bool ta, tg_tensor *b, bool tb)
{
    const char *op = "tg_matmul";
    check_matrix(a, op);
    check_matrix(b, op);
    tg_check_same_dtype(a, b, op);
    int64_t M = ta ? a->shape[1] : a->shape[0], K = ta ? a->shape[0] : a->shape[1];
    int64_t Kb = tb ? b->shape[1] : b->shape[0], N = tb ? b->shape[0] : b->shape[1];
    if (K != Kb) {
        char s1[128], s2[128];
        tg_fail("%s: inner sizes differ: %s%s · %s%s gives %lld vs %lld", op,
                 tg_shape_str(a, s1, sizeof s1), ta ? "ᵀ" : "", tg_shape_str(b, s2, sizeof s2),
                 tb ? "ᵀ" : "", (long long)K, (long long)Kb);
    }
    tg_tensor *y = tg_op_output(a->dtype, TG_SHAPE(M, N));
    gemm(a->dtype, ta, tb, M, N, K, a->data, a->shape[1], b->data, b->shape[1], 0, y->data, N);
    tg_node *node = tg_op_record(&matmul_op, y, 2, (tg_tensor *[]){a, b}, sizeof(matmul_saved));
    if (node) *(matmul_saved *)node->saved = (matmul_saved){ta, tb};
    return y;
}

tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b) { return tg_matmul_t(a, false, b, false); }

/* gb_j = beta·gb_j + Σ_r g_rj over the rows of g [rows, n], beta 0 or 1 (tg_op_grad_beta): row by
 * row, so the inner loop runs along contiguous memory and vectorises (the order of the sum is the
 * rows' order either way). With beta 0 the first row is stored, not added, so gb is never read. */
#define BIAS_GRAD_KERNEL(T, S)                                                                 \
    static TG_CPU_CLONES void bias_grad_##S(int64_t rows, int64_t n, const void *pg,           \
                                            double beta, void *pgb)                            \
    {                                                                                          \
        const T *restrict g = pg;                                                              \
        T *restrict gb = pgb;                                                                  \
        int64_t r = 0;                                                                         \
        if (beta == 0) {                                                                       \
            for (int64_t j = 0; j < n; j++) gb[j] = rows > 0 ? g[j] : 0;                       \
            r = 1;                                                                             \
        }                                                                                      \
        for (; r < rows; r++)                                                                  \
            for (int64_t j = 0; j < n; j++) gb[j] += g[r * n + j];                             \
    }
TG_STAMP(BIAS_GRAD_KERNEL)

/* s = alpha·g over n elements. */
#define SCALED_COPY_KERNEL(T, S)                                                                \
    static TG_CPU_CLONES void scaled_copy_##S(int64_t n, double alpha, const void *pg, void *ps) \
    {                                                                                          \
        const T *restrict g = pg;                                                              \
        T *restrict s = ps;                                                                    \
        const T a = (T)alpha;                                                                  \
        for (int64_t i = 0; i < n; i++) s[i] = a * g[i];                                       \
    }
TG_STAMP(SCALED_COPY_KERNEL)

/* Batches up to this size make the short-K products that libxsmm's kernels take
 * (autograd/xsmm.c), which take alpha = 1 only; BLIS takes any alpha. */
enum { SHORT_K_BATCH = 64 };

/* The optimizer's update written in place of dW (tg_op_update_in_backward): W = beta·W +
 * alpha·Gᵀ·X. A small batch's product takes alpha·G (a copy of N·out elements, small next to
 * W's out·in) with alpha 1, so that it keeps the short-K kernels. */
static void update_weight(const tg_tensor *y, int64_t N, int64_t in, int64_t out, const void *g,
                          const void *x, double alpha, double beta, void *w)
{
    if (N > SHORT_K_BATCH) {
        tg_op_gemm(y->dtype, true, false, out, in, N, alpha, g, out, x, in, beta, w, in);
        return;
    }
    void *scaled = tg_op_scratch((size_t)(N * out) * tg_dtype_size(y->dtype));
    TG_KERNEL_FOR(scaled_copy, y)(N * out, alpha, g, scaled);
    gemm(y->dtype, true, false, out, in, N, scaled, out, x, in, beta, w, in);
}

/* Y = X·Wᵀ + b.  dX = G·W,  dW = Gᵀ·X,  db = Σ_rows G: each one product over its whole gradient,
 * so each asks tg_op_grad_beta whether to add or to overwrite. When W's optimizer updates it in
 * this backward, the dW product writes the update instead, after dX has read W. */
static void linear_backward(const tg_node *node)
{
    tg_tensor *x = node->in[0], *w = node->in[1], *y = node->out;
    tg_tensor *bias = node->n_in > 2 ? node->in[2] : NULL;
    int64_t N = x->shape[0], in = x->shape[1], out = w->shape[0];
    const void *g = tg_op_grad_out(node);
    double beta_x, beta_w, beta_b = 1; /* x and w may be one tensor: see matmul_backward */
    double alpha_u, beta_u;
    bool update_w = tg_op_update_in_backward(w, &alpha_u, &beta_u);
    void *gx = tg_op_grad_beta(x, &beta_x);
    void *gw = update_w ? NULL : tg_op_grad_beta(w, &beta_w);
    void *gb = bias ? tg_op_grad_beta(bias, &beta_b) : NULL;
    if (gx) gemm(y->dtype, false, false, N, in, out, g, out, w->data, in, beta_x, gx, in);
    if (update_w) update_weight(y, N, in, out, g, x->data, alpha_u, beta_u, w->data);
    if (gw) gemm(y->dtype, true, false, out, in, N, g, out, x->data, in, beta_w, gw, in);
    if (gb) TG_KERNEL_FOR(bias_grad, y)(N, out, g, beta_b, gb);
}

static void linear_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    tg_tensor *x = node->in[0], *w = node->in[1];
    if (x->requires_grad) grad_in[0] = tg_matmul(g, w);
    if (w->requires_grad) grad_in[1] = tg_matmul_t(g, true, x, false);
    if (node->n_in > 2 && node->in[2]->requires_grad) grad_in[2] = tg_sum_axis(g, 0, false);
}

static const tg_op linear_op = {"tg_linear", linear_backward, linear_backward_ops};

tg_tensor *tg_linear(tg_tensor *x, tg_tensor *w, tg_tensor *b)
{
    const char *op = "tg_linear";
    char s1[128], s2[128];
    check_matrix(x, op);
    check_matrix(w, op);
    tg_check_same_dtype(x, w, op);
    int64_t N = x->shape[0], in = x->shape[1], out = w->shape[0];
    if (w->shape[1] != in)
        tg_fail("%s: input %s does not match weight %s (expected [out, %lld])", op,
                 tg_shape_str(x, s1, sizeof s1), tg_shape_str(w, s2, sizeof s2), (long long)in);
    if (b) {
        tg_check_float(b, op);
        tg_check_same_dtype(x, b, op);
        if (b->ndim != 1 || b->shape[0] != out)
            tg_fail("%s: bias %s does not match %lld outputs (expected [%lld])", op,
                     tg_shape_str(b, s1, sizeof s1), (long long)out, (long long)out);
    }
    tg_tensor *y = tg_op_output(x->dtype, TG_SHAPE(N, out));
    size_t row = (size_t)out * tg_dtype_size(x->dtype);
    for (int64_t r = 0; b && r < N; r++) /* start from the bias; the GEMM accumulates onto it */
        memcpy((char *)y->data + r * row, b->data, row);
    gemm(x->dtype, false, true, N, out, in, x->data, in, w->data, in, b ? 1 : 0, y->data, out);
    tg_tensor *inputs[3] = {x, w, b};
    tg_op_record(&linear_op, y, b ? 3 : 2, inputs, 0);
    return y;
}
