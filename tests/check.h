/* Shared helpers for the cmocka tests. Include after <cmocka.h> and "tapegrad.h".
 *
 *   EXPECT_ERROR("tg_op", statement);      the statement must raise a programming error whose
 *   expect_error(fn, ctx, "tg_op");          message contains "tg_op" (the tape is reset after)
 *   expect_gradcheck(f, inputs, n, ctx, "tg_concat axis=%d", axis);
 *                                          tg_gradcheck must pass; prints "gradcheck ok: ...";
 *                                          then tg_gradgradcheck must pass too (second order,
 *                                          "gradgradcheck ok: ..."); an op on the way without a
 *                                          differentiable backward fails it, unless the test file
 *                                          lists that op in check_first_order_ops (then
 *                                          "gradgradcheck skipped: ...")
 *   expect_gradcheck_op(op, ctx, x, "tg_softmax axis=%d", axis);
 *                                          the same for y = op(x, ctx), through Σ y·w with
 *                                          random w; x's shape is appended to the label
 *   param_f64(rng, TG_SHAPE(3, 4))         persistent random F64 tensor with requires_grad
 *   expect_values(t, expected, n, tol)     t's elements against a double array
 *   assert_near(a, b, tol)                 |a - b| <= tol, in double (cmocka's
 *                                          assert_float_equal rounds both sides to float)
 *   check_summary()                        prints the number of gradient-checked ops
 *   expect_lazy_grads(f, inputs, n, ctx, "tg_linear")
 *                                          inputs' gradients after a backward of f are the same
 *                                          whether tg_zero_grad left NaN buffers pending, they
 *                                          were settled, zeroed or absent (lazy zero_grad)
 *   check_tmpdir / check_tmpdir_setup / check_tmpdir_teardown / check_path(name)
 *                                          one temporary folder per test program, removed
 *                                          with everything in it (cmocka group fixtures) */
#ifndef TG_TESTS_CHECK_H
#define TG_TESTS_CHECK_H

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int check_gradchecked_ops, check_gradgradchecked_ops;
/* Ops this test file knows to be first-order only, e.g. "tg_foo,tg_bar" (none by default). */
static const char *check_first_order_ops;

/* Whether the error names an op listed in check_first_order_ops. */
static inline bool check_listed_first_order(const char *message)
{
    char list[512];
    snprintf(list, sizeof list, "%s", check_first_order_ops ? check_first_order_ops : "");
    for (char *op = strtok(list, ","); op; op = strtok(NULL, ",")) {
        char needle[128];
        snprintf(needle, sizeof needle, "tg_grad: %s has no differentiable backward", op);
        if (strstr(message, needle)) return true;
    }
    return false;
}

#define assert_near(a, b, tol)                                                                 \
    do {                                                                                       \
        double a_ = (a), b_ = (b);                                                             \
        if (!(fabs(a_ - b_) <= (tol)))                                                         \
            fail_msg("%s = %.17g, expected %.17g (tol %g)", #a, a_, b_, (double)(tol));         \
    } while (0)

/* The handler the error helpers install: back to the setjmp of the test. */
static inline void check_longjmp(const char *message, void *jump)
{
    (void)message;
    longjmp(*(jmp_buf *)jump, 1);
}

static inline void check_error_names(const char *needle, const char *what)
{
    tg_tape_reset(); /* the failed op may have left a half-built step */
    if (!strstr(tg_last_error(), needle))
        fail_msg("%s raised \"%s\", which does not mention \"%s\"", what, tg_last_error(),
                 needle);
}

/* The statement must fail through tg_fail with a message containing needle. */
#define EXPECT_ERROR(needle, ...)                                                              \
    do {                                                                                       \
        jmp_buf check_jump_;                                                                   \
        void *check_prev_data_ = tg_error_handler_data();                                      \
        tg_error_handler check_prev_ = tg_set_error_handler(check_longjmp, &check_jump_);      \
        if (setjmp(check_jump_) == 0) {                                                        \
            __VA_ARGS__;                                                                       \
            tg_set_error_handler(check_prev_, check_prev_data_);                                           \
            fail_msg("no error raised by: %s", #__VA_ARGS__);                                  \
        }                                                                                      \
        tg_set_error_handler(check_prev_, check_prev_data_);                                               \
        check_error_names(needle, #__VA_ARGS__);                                               \
    } while (0)

/* The same as a function: fn(ctx) must fail with a message containing needle. */
static inline void expect_error(void (*fn)(void *ctx), void *ctx, const char *needle)
{
    EXPECT_ERROR(needle, fn(ctx));
}

/* Second order: an op without a differentiable backward is reported, not failed; any other
 * error or a mismatch fails the test. */
static inline void check_gradgradcheck(tg_scalar_fn f, tg_tensor **inputs, int n, void *ctx,
                                       const char *label)
{
    jmp_buf jump;
    void *prev_data = tg_error_handler_data();
    tg_error_handler prev = tg_set_error_handler(check_longjmp, &jump);
    tg_gradcheck_result r = {0};
    if (setjmp(jump) == 0) {
        r = tg_gradgradcheck(f, inputs, n, ctx, NULL);
        tg_set_error_handler(prev, prev_data);
    } else {
        tg_set_error_handler(prev, prev_data);
        tg_tape_reset();
        if (!check_listed_first_order(tg_last_error()))
            fail_msg("gradgradcheck of %s raised: %s (an op without a differentiable backward "
                     "must be listed in check_first_order_ops)", label, tg_last_error());
        printf("gradgradcheck skipped: %s: %s\n", label, tg_last_error());
        return;
    }
    if (!r.ok)
        fail_msg("gradgradcheck FAILED: %s: input %d index %lld second derivative %.10g numeric "
                 "%.10g", label, r.worst_input, (long long)r.worst_index, r.analytic, r.numeric);
    check_gradgradchecked_ops++;
    printf("gradgradcheck ok: %s (%d elements)\n", label, r.checked);
}

static inline void check_vgradcheck(tg_scalar_fn f, tg_tensor **inputs, int n, void *ctx,
                                    const char *label_fmt, va_list ap)
{
    char label[256];
    vsnprintf(label, sizeof label, label_fmt, ap);
    tg_gradcheck_result r = tg_gradcheck(f, inputs, n, ctx, NULL);
    if (!r.ok)
        fail_msg("gradcheck FAILED: %s: input %d index %lld analytic %.10g numeric %.10g", label,
                 r.worst_input, (long long)r.worst_index, r.analytic, r.numeric);
    check_gradchecked_ops++;
    printf("gradcheck ok: %s (%d elements)\n", label, r.checked);
    check_gradgradcheck(f, inputs, n, ctx, label);
}

/* tg_gradcheck with the default tolerances must pass; the label says what was checked. */
static inline __attribute__((format(printf, 5, 6))) void
expect_gradcheck(tg_scalar_fn f, tg_tensor **inputs, int n, void *ctx, const char *label_fmt, ...)
{
    va_list ap;
    va_start(ap, label_fmt);
    check_vgradcheck(f, inputs, n, ctx, label_fmt, ap);
    va_end(ap);
}

/* One-input ops: gradcheck of Σ op(x)·w with fixed random weights w, so that no gradient is
 * degenerate (Σ softmax(x) = 1 would have a zero gradient). x: persistent F64, requires_grad. */
typedef tg_tensor *(*check_op_fn)(tg_tensor *x, void *ctx);
typedef struct {
    check_op_fn op;
    void *ctx;
    tg_tensor *w;
} check_projection;

static inline tg_tensor *check_projected(tg_tensor **in, int n, void *ctx)
{
    (void)n;
    check_projection *p = ctx;
    return tg_sum(tg_mul(p->op(in[0], p->ctx), p->w));
}

static inline __attribute__((format(printf, 4, 5))) void
expect_gradcheck_op(check_op_fn op, void *ctx, tg_tensor *x, const char *label_fmt, ...)
{
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    tg_tensor *y = op(x, ctx);
    check_projection p = {op, ctx, tg_rand_normal(TG_F64, y->ndim, y->shape, 0, 1, &rng)};
    tg_tape_reset();
    char fmt[256], shape[96];
    snprintf(fmt, sizeof fmt, "%s %s", label_fmt, tg_shape_str(x, shape, sizeof shape));
    va_list ap;
    va_start(ap, label_fmt);
    check_vgradcheck(check_projected, &x, 1, &p, fmt, ap);
    va_end(ap);
    tg_free(p.w);
}

static inline void check_summary(void)
{
    printf("gradient-checked ops: %d, second order: %d\n", check_gradchecked_ops,
           check_gradgradchecked_ops);
}

/* A persistent float64 tensor with N(0, 1) entries and requires_grad: a gradcheck input. */
static inline tg_tensor *param_f64(tg_rng *rng, int ndim, const int64_t *shape)
{
    return tg_set_requires_grad(tg_rand_normal(TG_F64, ndim, shape, 0, 1, rng), true);
}

/* Every element of t within tol (absolute, plus relative tol) of expected. */
static inline void expect_values(const tg_tensor *t, const double *expected, int64_t n,
                                 double tol)
{
    if (t->numel != n) fail_msg("expected %lld elements, got %lld", (long long)n,
                                (long long)t->numel);
    for (int64_t i = 0; i < n; i++) {
        double v = tg_get_flat(t, i);
        if (!(fabs(v - expected[i]) <= tol * (1 + fabs(expected[i]))))
            fail_msg("element %lld: got %.12g, expected %.12g", (long long)i, v, expected[i]);
    }
}

/* Lazy zero_grad (core.h: tg_zero_grad only marks a gradient pending; the first backward write
 * overwrites it). f(inputs, n, ctx) builds a scalar loss; its gradients in inputs' ->grad must be
 * the same (to rounding) from buffers holding zeros as from NaN-filled buffers left pending by
 * tg_zero_grad, from NaN buffers settled by tg_get_grad (which must read zeros), and from no
 * buffer at all; two backwards after one tg_zero_grad must add up. A path that reads a stale
 * buffer gives NaN; one that overwrites what it should add to loses the first backward. */
static inline void check_lazy_fill_nan_pending(tg_tensor **inputs, int n)
{
    for (int k = 0; k < n; k++) {
        tg_fill_(tg_get_grad(inputs[k]), NAN);
        tg_zero_grad(inputs[k]);
    }
}

static inline void check_lazy_compare(tg_tensor **inputs, int n, tg_tensor **ref, double scale,
                                      const char *label, const char *path)
{
    for (int k = 0; k < n; k++) {
        tg_tensor *g = tg_get_grad(inputs[k]);
        if (!g) fail_msg("%s, %s: input %d has no gradient", label, path, k);
        double tol = inputs[k]->dtype == TG_F32 ? 1e-6 : 1e-13;
        for (int64_t i = 0; i < g->numel; i++) {
            double want = scale * tg_get_flat(ref[k], i), got = tg_get_flat(g, i);
            if (!(fabs(got - want) <= tol * (1 + fabs(want))))
                fail_msg("%s, %s: input %d element %lld is %.17g, expected %.17g", label, path,
                         k, (long long)i, got, want);
        }
    }
}

static inline void expect_lazy_grads(tg_scalar_fn f, tg_tensor **inputs, int n, void *ctx,
                                     const char *label)
{
    tg_tensor *ref[16];
    if (n > 16) fail_msg("expect_lazy_grads: at most 16 inputs");
    for (int k = 0; k < n; k++) { /* the reference: every gradient added onto zeros */
        tg_tensor *g = tg_get_grad(inputs[k]);
        if (!g) inputs[k]->grad = tg_zeros(inputs[k]->dtype, inputs[k]->ndim, inputs[k]->shape);
        else tg_fill_(g, 0);
    }
    tg_backward(f(inputs, n, ctx));
    double reached = 0;
    for (int k = 0; k < n; k++) {
        ref[k] = tg_clone(inputs[k]->grad);
        for (int64_t i = 0; i < ref[k]->numel; i++) reached += fabs(tg_get_flat(ref[k], i));
    }
    tg_tape_reset();
    if (!(reached > 0)) fail_msg("%s: the reference gradients are all zero", label);

    check_lazy_fill_nan_pending(inputs, n);
    tg_backward(f(inputs, n, ctx));
    check_lazy_compare(inputs, n, ref, 1, label, "pending NaN buffers");
    tg_tape_reset();

    check_lazy_fill_nan_pending(inputs, n);
    for (int k = 0; k < n; k++) {
        tg_tensor *g = tg_get_grad(inputs[k]);
        for (int64_t i = 0; i < g->numel; i++)
            if (tg_get_flat(g, i) != 0)
                fail_msg("%s: tg_get_grad after tg_zero_grad: input %d element %lld is %g",
                         label, k, (long long)i, tg_get_flat(g, i));
    }
    tg_backward(f(inputs, n, ctx));
    check_lazy_compare(inputs, n, ref, 1, label, "buffers settled by tg_get_grad");
    tg_tape_reset();

    check_lazy_fill_nan_pending(inputs, n);
    tg_tensor *loss = f(inputs, n, ctx);
    tg_backward(loss);
    tg_backward(loss);
    check_lazy_compare(inputs, n, ref, 2, label, "two backwards after one tg_zero_grad");
    tg_tape_reset();

    for (int k = 0; k < n; k++) {
        tg_free(inputs[k]->grad);
        inputs[k]->grad = NULL;
    }
    tg_backward(f(inputs, n, ctx));
    check_lazy_compare(inputs, n, ref, 1, label, "no buffers");
    tg_tape_reset();
    for (int k = 0; k < n; k++) tg_free(ref[k]);
    printf("lazy zero_grad ok: %s\n", label);
}

/* A fresh folder under /tmp for the test program's files: check_tmpdir after the group setup. */
static char check_tmpdir[64];

static inline int check_tmpdir_setup(void **state)
{
    (void)state;
    snprintf(check_tmpdir, sizeof check_tmpdir, "/tmp/tg_test_XXXXXX");
    return mkdtemp(check_tmpdir) ? 0 : -1;
}

/* check_tmpdir/name; four results live at once (a call may take two or three paths). */
static inline const char *check_path(const char *name)
{
    static char buf[4][160];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", check_tmpdir, name);
    return buf[k];
}

static inline int check_tmpdir_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", check_tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
