/* tapegrad op authoring: everything a new differentiable op needs. The library's own ops (the
 * files of ops/) are written with exactly this API; examples/custom_op.c is a complete user op.
 *
 * An op is a forward function and a backward function side by side:
 *
 *     typedef struct { double alpha; } leaky_saved;            // what backward needs
 *
 *     // dy/dx = 1 for x > 0, alpha otherwise:  gx += g · (x > 0 ? 1 : alpha)
 *     static void leaky_backward(const tg_node *node)
 *     {
 *         const leaky_saved *s = node->saved;
 *         tg_tensor *x = node->in[0];
 *         TG_KERNEL_FOR(leaky_bwd, x)(x->numel, s->alpha, x->data, tg_op_grad_out(node),
 *                                     tg_op_grad(x));     // NULL when x needs no gradient
 *     }
 *     static const tg_op leaky_op = {"leaky_relu", leaky_backward, NULL};
 *
 *     tg_tensor *leaky_relu(tg_tensor *x, double alpha)
 *     {
 *         tg_check_float(x, "leaky_relu");                 // live, float32 or float64
 *         tg_tensor *y = tg_op_output(x->dtype, x->ndim, x->shape);
 *         TG_KERNEL_FOR(leaky_fwd, x)(x->numel, alpha, x->data, y->data);
 *         tg_node *node = tg_op_record(&leaky_op, y, 1, &x, sizeof(leaky_saved));
 *         if (node) ((leaky_saved *)node->saved)->alpha = alpha;  // NULL: nothing recorded
 *         return y;
 *     }
 *
 * Rules a backward follows: it reads the output's gradient (tg_op_grad_out), the inputs, the
 * output and its saved state, and *adds* into each input's gradient buffer (tg_op_grad returns
 * it zeroed on first use, NULL when that input needs no gradient: a kernel with several inputs
 * skips the NULL ones). It never overwrites a gradient: fan-out (one tensor used by several ops)
 * is correct only because every op adds. A kernel that writes every element of an input's
 * gradient in one go (a matrix product, a row sum) may ask tg_op_grad_beta instead: it says
 * whether the buffer already holds a gradient to add to (beta 1) or holds nothing yet and is to
 * be overwritten (beta 0: a fresh buffer, or one tg_zero_grad left pending), which saves zeroing
 * it first. tg_linear's and tg_matmul's backwards (ops/matmul.c), the unary ops' and dropout's
 * are written so. The output
 * given to tg_op_record is the fresh result of tg_op_output; an op has at most TG_MAX_INPUTS
 * inputs (tg_concat of more parts concatenates them in groups).
 *
 * Higher-order derivatives: an op may also give its backward written with tapegrad ops
 * (tg_op.backward_ops). Then a backward run with create_graph records the gradient computation
 * itself, so the gradient can be differentiated again (tg_grad, tg_hessian in core.h). For the
 * op above:
 *
 *     // gx = g · (x > 0 ? 1 : alpha), the factor a constant: no gradient flows through it
 *     static void leaky_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
 *     {
 *         const leaky_saved *s = node->saved;
 *         tg_tensor *x = node->in[0], *k = tg_op_output(x->dtype, x->ndim, x->shape);
 *         for (int64_t i = 0; i < x->numel; i++)
 *             tg_set_flat(k, i, tg_get_flat(x, i) > 0 ? 1 : s->alpha);
 *         grad_in[0] = tg_mul(g, k);
 *     }
 *
 * It must reach the result from g through ops (never read g->data): the result is then
 * differentiable in g too, which Jacobian-vector products (tg_jvp) need. A tensor made with
 * tg_op_output and filled by hand (as k) is a constant of the step. An op without backward_ops
 * is first-order only: a create_graph backward that reaches it fails naming it. */
#ifndef TG_OP_H
#define TG_OP_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TG_MAX_INPUTS 4

/* What an op gives the tape: its name (for errors, printing and DOT output) and its backward. */
typedef struct tg_op {
    const char *name;
    /* First order, the fast path: accumulates into tg_op_grad(node->in[i]). */
    void (*backward)(const tg_node *node);
    /* Optional, for higher-order derivatives: the same backward written with tapegrad ops.
     * grad_out is the output's gradient as a tensor; sets grad_in[i] to the gradient of input i
     * (a tensor of the input's shape), or leaves it NULL when that input needs none
     * (node->in[i]->requires_grad is false). Every tensor it builds is recorded like any op. */
    void (*backward_ops)(const tg_node *node, tg_tensor *grad_out, tg_tensor **grad_in);
} tg_op;

/* One record on the tape: an op applied to its inputs. */
struct tg_node {
    const tg_op *op;
    tg_tensor *out;
    int n_in;
    tg_tensor *in[TG_MAX_INPUTS];
    void *saved;        /* the op's state for backward: saved_bytes given to tg_op_record */
    size_t index;       /* position on the tape */
};

/* ---- checking inputs (failures are programming errors: the error handler, then abort) ---- */
void tg_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void tg_check_live(const tg_tensor *t, const char *op);      /* not NULL, not released */
void tg_check_float(const tg_tensor *t, const char *op);     /* live, float32 or float64 */
void tg_check_same_dtype(const tg_tensor *a, const tg_tensor *b, const char *op);
/* The axis in [0, ndim): negative axes count from the end; out of range fails naming op. */
int tg_normalize_axis(int axis, int ndim, const char *op);

/* ---- memory of the step (released by tg_tape_reset) ---------------------------------------- */
/* The op's result: an intermediate with uninitialised data. */
tg_tensor *tg_op_output(tg_dtype dtype, int ndim, const int64_t *shape);
/* Scratch memory, 64-byte aligned, valid until the tape is reset. */
void *tg_op_scratch(size_t bytes);

/* ---- recording ----------------------------------------------------------------------------- */
/* Records op on the tape when grad mode is on and some input requires grad (out then requires
 * grad too), with saved_bytes of uninitialised state at node->saved for the backward. Returns
 * NULL when nothing was recorded: the op then saves nothing. Also runs the anomaly check. */
tg_node *tg_op_record(const tg_op *op, tg_tensor *out, int n_in, tg_tensor *const *in,
                      size_t saved_bytes);
/* In a backward: the output's gradient data (same dtype and shape as node->out). */
const void *tg_op_grad_out(const tg_node *node);
/* In a backward: the gradient buffer of an input, zeroed on first use; NULL when t needs no
 * gradient. */
void *tg_op_grad(tg_tensor *t);
/* In a backward, for a kernel that writes every element of t's gradient: the same buffer as
 * tg_op_grad, not zeroed, with *beta = 1 when it holds a gradient the kernel must add to and
 * *beta = 0 when it holds nothing yet (uninitialised or stale memory, even NaN): the kernel then
 * writes every element without reading any, as a product with beta 0 does. NULL (and *beta = 1)
 * when t needs no gradient. */
void *tg_op_grad_beta(tg_tensor *t, double *beta);
/* For a kernel whose one product computes the whole gradient g of its input t (as tg_linear's
 * dW = Gᵀ·X): true when t's optimizer updates t in this backward instead
 * (tg_optimizer_set_in_backward, optim.h; the tape has checked that no other record reads t).
 * The kernel then writes t = beta·t + alpha·g into t->data itself, after its own last read of
 * t->data, and takes no gradient of t (no tg_op_grad or tg_op_grad_beta for t). A true marks t
 * updated, so call it once per t, only where the kernel will write the update. false: take the
 * gradient from tg_op_grad_beta or tg_op_grad as usual. */
bool tg_op_update_in_backward(tg_tensor *t, double *alpha, double *beta);

/* ---- matrix products for kernels ---------------------------------------------------------
 * C = alpha·op(A)·op(B) + beta·C on row-major float (dtype TG_F32) or double (TG_F64) data, with
 * op(X) = Xᵀ when the flag is set (a transpose read through strides, never copied): A is stored
 * [M, K] (or [K, M] transposed) with row stride lda, B [K, N] (or [N, K]) with ldb, C [M, N] with
 * ldc. The library's products go through it: BLIS, with large products split over
 * tg_set_num_threads threads. */
void tg_op_gemm(tg_dtype dtype, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                double alpha, const void *A, int64_t lda, const void *B, int64_t ldb, double beta,
                void *C, int64_t ldc);

/* ---- one kernel definition, float and double ----------------------------------------------
 *     #define SCALE_KERNEL(T, S)                                                  \
 *         static void scale_##S(int64_t n, double a, void *px)                    \
 *         {                                                                       \
 *             T *x = px;                                                          \
 *             for (int64_t i = 0; i < n; i++) x[i] *= (T)a;                       \
 *         }
 *     TG_STAMP(SCALE_KERNEL)                    // scale_f32 (float) and scale_f64 (double)
 *     TG_KERNEL_FOR(scale, t)(t->numel, 2, t->data);   // picks by t's dtype
 * The two kernels take data as void * so that they have one type and TG_KERNEL_FOR can choose
 * between them. With <tgmath.h>, exp/log/sqrt in a kernel pick the float or double version. */
#define TG_STAMP(KERNEL) KERNEL(float, f32) KERNEL(double, f64)
#define TG_KERNEL_FOR(NAME, t) ((t)->dtype == TG_F64 ? NAME##_f64 : NAME##_f32)

#ifdef __cplusplus
}
#endif
#endif
