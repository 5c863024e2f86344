/* Image ops: conv2d, max/avg/adaptive pooling, flatten, batch norm. Forward values and
 * gradients against PyTorch fixtures (tests/fixtures/make_conv_fixtures.py), in float64 and
 * float32; gradient checks in float64 over stride/padding/dilation/groups edge cases, odd sizes,
 * batch 1, kernels larger than the stride, depthwise; second derivatives through the
 * differentiable backwards; batch-norm train vs eval and running statistics; errors that name the
 * op and the shapes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tapegrad.h"
#include "check.h"
#include "fixtures/conv_fixtures.h"

#define LEN(a) ((int64_t)(sizeof(a) / sizeof *(a)))

/* A persistent tensor of dtype dt holding a fixture's float64 values. */
static tg_tensor *fixture(tg_dtype dt, const double *v, int ndim, const int64_t *shape)
{
    tg_tensor *t = tg_from_data(TG_F64, ndim, shape, v);
    if (dt == TG_F64) return t;
    tg_tensor *c = tg_to_dtype(t, dt);
    tg_free(t);
    return c;
}

static void expect_fixture(const tg_tensor *t, const double *v, int64_t n, tg_dtype dt)
{
    expect_values(t, v, n, dt == TG_F64 ? 1e-12 : 2e-5);
}

static void expect_gradgradcheck(tg_scalar_fn f, tg_tensor **in, int n, void *ctx,
                                 const char *label)
{
    tg_gradcheck_result r = tg_gradgradcheck(f, in, n, ctx, NULL);
    if (!r.ok)
        fail_msg("gradgradcheck FAILED: %s: input %d index %lld analytic %.10g numeric %.10g",
                 label, r.worst_input, (long long)r.worst_index, r.analytic, r.numeric);
    printf("gradgradcheck ok: %s (%d elements)\n", label, r.checked);
}

/* ---- conv2d against PyTorch ---- */

typedef struct {
    const double *x, *w, *b, *r, *y, *gx, *gw, *gb;
    int64_t nx, nw, ny;
    int64_t xs[4], ws[4], ys[4];
    tg_conv2d_opts opts;
} conv_fixture;

#define CONV_FIXTURE(name, X, W, Y, ...)                                                       \
    {.x = name##_x, .w = name##_w, .r = name##_r, .y = name##_y, .gx = name##_gx,              \
     .gw = name##_gw, .nx = LEN(name##_x), .nw = LEN(name##_w), .ny = LEN(name##_y),           \
     .xs = X, .ws = W, .ys = Y, __VA_ARGS__}
#define SHAPE4(a, b, c, d) {a, b, c, d}

static void check_conv_fixture(const conv_fixture *c, tg_dtype dt)
{
    tg_tensor *x = tg_set_requires_grad(fixture(dt, c->x, 4, c->xs), true);
    tg_tensor *w = tg_set_requires_grad(fixture(dt, c->w, 4, c->ws), true);
    tg_tensor *b = c->b ? tg_set_requires_grad(fixture(dt, c->b, TG_SHAPE(c->ws[0])), true) : NULL;
    tg_tensor *r = fixture(dt, c->r, 4, c->ys);
    tg_tensor *y = tg_conv2d(x, w, b, &c->opts);
    for (int d = 0; d < 4; d++) assert_int_equal(y->shape[d], c->ys[d]);
    expect_fixture(y, c->y, c->ny, dt);
    tg_backward(tg_sum(tg_mul(y, r)));
    expect_fixture(x->grad, c->gx, c->nx, dt);
    expect_fixture(w->grad, c->gw, c->nw, dt);
    if (b) expect_fixture(b->grad, c->gb, c->ws[0], dt);
    tg_tape_reset();
    tg_free(x), tg_free(w), tg_free(b), tg_free(r);
}

static const conv_fixture *conv_fixtures(int *n)
{
    static const conv_fixture f[] = {
        CONV_FIXTURE(conv_a, SHAPE4(2, 3, 7, 6), SHAPE4(4, 3, 3, 2), SHAPE4(2, 4, 4, 8),
                     .b = conv_a_b, .gb = conv_a_gb,
                     .opts = {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}}),
        CONV_FIXTURE(conv_groups, SHAPE4(1, 6, 5, 5), SHAPE4(6, 2, 3, 3), SHAPE4(1, 6, 3, 3),
                     .b = conv_groups_b, .gb = conv_groups_gb,
                     .opts = {.stride = {2, 2}, .padding = {1, 1}, .groups = 3}),
        CONV_FIXTURE(conv_depthwise, SHAPE4(2, 4, 6, 5), SHAPE4(8, 1, 3, 3), SHAPE4(2, 8, 6, 3),
                     .opts = {.padding = {2, 1}, .dilation = {2, 2}, .groups = 4}),
        CONV_FIXTURE(conv_1x1, SHAPE4(3, 5, 4, 3), SHAPE4(2, 5, 1, 1), SHAPE4(3, 2, 4, 3)),
    };
    *n = (int)(sizeof f / sizeof *f);
    return f;
}

static void test_conv_vs_torch(void **state)
{
    (void)state;
    int n;
    const conv_fixture *f = conv_fixtures(&n);
    for (int k = 0; k < n; k++) {
        check_conv_fixture(&f[k], TG_F64);
        check_conv_fixture(&f[k], TG_F32);
    }
}

/* ---- conv2d gradient checks ---- */

typedef struct {
    tg_conv2d_opts opts;
    tg_tensor *r;      /* fixed weights of the output */
    bool square;       /* Σ conv² · r, for second derivatives */
} conv_ctx;

static tg_tensor *conv_loss(tg_tensor **in, int n, void *pctx)
{
    conv_ctx *c = pctx;
    tg_tensor *y = tg_conv2d(in[0], in[1], n > 2 ? in[2] : NULL, &c->opts);
    return tg_sum(tg_mul(c->square ? tg_square(y) : y, c->r));
}

typedef struct {
    const char *label;
    int64_t x[4], w[4];
    bool bias;
    tg_conv2d_opts opts;
} conv_case;

static const conv_case conv_cases[] = {
    {.label = "plain 3x3", .x = {2, 2, 5, 5}, .w = {3, 2, 3, 3}, .bias = true},
    {.label = "batch 1, odd sizes, stride 2 pad 1", .x = {1, 3, 7, 5}, .w = {2, 3, 3, 3},
     .bias = true, .opts = {.stride = {2, 2}, .padding = {1, 1}}},
    {.label = "kernel larger than stride, uneven stride", .x = {2, 1, 9, 8}, .w = {2, 1, 5, 4},
     .bias = false, .opts = {.stride = {3, 2}, .padding = {2, 0}}},
    {.label = "stride larger than kernel (skipped pixels)", .x = {1, 2, 8, 7}, .w = {2, 2, 2, 2},
     .bias = true, .opts = {.stride = {3, 3}}},
    {.label = "dilation 2x3 with padding", .x = {2, 2, 8, 9}, .w = {2, 2, 3, 2},
     .bias = true, .opts = {.padding = {2, 3}, .dilation = {2, 3}}},
    {.label = "groups 2", .x = {2, 4, 5, 4}, .w = {6, 2, 3, 2},
     .bias = true, .opts = {.padding = {1, 1}, .groups = 2}},
    {.label = "depthwise, multiplier 2", .x = {1, 3, 6, 6}, .w = {6, 1, 3, 3},
     .bias = false, .opts = {.stride = {2, 1}, .padding = {1, 1}, .groups = 3}},
    {.label = "same padding with dilation 2 (rows copied as one span)", .x = {2, 2, 6, 7},
     .w = {2, 2, 3, 3}, .bias = false, .opts = {.padding = {2, 2}, .dilation = {2, 2}}},
    {.label = "batch 3 in chunks of 2 samples", .x = {3, 1, 8, 16}, .w = {2, 1, 3, 3},
     .bias = true, .opts = {.padding = {1, 1}}},
    {.label = "1x1", .x = {2, 3, 3, 4}, .w = {4, 3, 1, 1}, .bias = true},
    {.label = "kernel = input (one output pixel)", .x = {2, 2, 4, 3}, .w = {3, 2, 4, 3},
     .bias = true},
    {.label = "padding larger than half the kernel", .x = {1, 1, 3, 3}, .w = {1, 1, 2, 2},
     .bias = false, .opts = {.padding = {2, 2}}},
};

static tg_tensor **conv_inputs(const conv_case *c, tg_rng *rng, tg_tensor **in, conv_ctx *ctx)
{
    in[0] = param_f64(rng, 4, c->x);
    in[1] = param_f64(rng, 4, c->w);
    in[2] = c->bias ? param_f64(rng, TG_SHAPE(c->w[0])) : NULL;
    ctx->opts = c->opts;
    tg_tensor *y = tg_conv2d(in[0], in[1], in[2], &c->opts);
    ctx->r = tg_rand_normal(TG_F64, y->ndim, y->shape, 0, 1, rng);
    tg_tape_reset();
    return in;
}

static void test_conv_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    for (size_t k = 0; k < sizeof conv_cases / sizeof *conv_cases; k++) {
        const conv_case *c = &conv_cases[k];
        tg_tensor *in[3];
        conv_ctx ctx = {.square = false};
        conv_inputs(c, &rng, in, &ctx);
        expect_gradcheck(conv_loss, in, c->bias ? 3 : 2, &ctx, "tg_conv2d %s", c->label);
        expect_lazy_grads(conv_loss, in, c->bias ? 3 : 2, &ctx, c->label);
        ctx.square = true;
        if (k % 3 == 0) expect_gradgradcheck(conv_loss, in, c->bias ? 3 : 2, &ctx, c->label);
        tg_free(in[0]), tg_free(in[1]), tg_free(in[2]), tg_free(ctx.r);
    }
}

static void test_conv_errors(void **state)
{
    (void)state;
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(2, 4, 5, 5));
    tg_tensor *w = tg_zeros(TG_F32, TG_SHAPE(3, 4, 3, 3));
    tg_tensor *w2 = tg_zeros(TG_F32, TG_SHAPE(3, 2, 3, 3));
    tg_tensor *big = tg_zeros(TG_F32, TG_SHAPE(3, 4, 7, 7));
    tg_tensor *x3 = tg_zeros(TG_F32, TG_SHAPE(4, 5, 5));
    tg_tensor *b = tg_zeros(TG_F32, TG_SHAPE(4));
    tg_tensor *xd = tg_zeros(TG_F64, TG_SHAPE(2, 4, 5, 5));
    EXPECT_ERROR("tg_conv2d: expected input [N, C, H, W]", tg_conv2d(x3, w, NULL, NULL));
    EXPECT_ERROR("[2, 4, 5, 5] f32 and weight [3, 2, 3, 3] f32 do not fit groups = 1",
                 tg_conv2d(x, w2, NULL, NULL));
    EXPECT_ERROR("do not fit groups = 2", tg_conv2d(x, w2, NULL, &(tg_conv2d_opts){.groups = 2}));
    EXPECT_ERROR("kernel [3, 4, 7, 7] f32 (dilation 1x1) does not fit input [2, 4, 5, 5]",
                 tg_conv2d(x, big, NULL, NULL));
    EXPECT_ERROR("does not fit", tg_conv2d(x, w, NULL, &(tg_conv2d_opts){.dilation = {3, 1}}));
    EXPECT_ERROR("bias [4] f32 does not match weight [3, 4, 3, 3] f32 (expected [3])",
                 tg_conv2d(x, w, b, NULL));
    EXPECT_ERROR("stride -1x1", tg_conv2d(x, w, NULL, &(tg_conv2d_opts){.stride = {-1, 1}}));
    EXPECT_ERROR("padding 0x-2", tg_conv2d(x, w, NULL, &(tg_conv2d_opts){.padding = {0, -2}}));
    EXPECT_ERROR("tg_conv2d", tg_conv2d(xd, w, NULL, NULL));
    tg_free(x), tg_free(w), tg_free(w2), tg_free(big), tg_free(x3), tg_free(b), tg_free(xd);
}

/* ---- the oneDNN path (ops/conv_dnnl.c) against im2col, float32 ----
 * oneDNN has no float64 convolution on CPUs, so the gradient checks above run im2col only; these
 * compare the two paths in float32 on the same cases (forced onto oneDNN whatever their size),
 * each checking that oneDNN did run. Tolerance: |oneDNN - im2col| <= 1e-4 · (1 + the largest
 * |im2col| value of that tensor): the two sum the same products in different orders in float32
 * (~1e-7 relative per term), over at most a few hundred terms here. */

#ifdef TG_HAVE_DNNL
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "ops/conv_dnnl.h"

static void expect_close_f32(const tg_tensor *got, const tg_tensor *want, const char *what,
                             const char *label)
{
    double big = 0;
    for (int64_t i = 0; i < want->numel; i++)
        if (fabs(tg_get_flat(want, i)) > big) big = fabs(tg_get_flat(want, i));
    for (int64_t i = 0; i < want->numel; i++) {
        double a = tg_get_flat(got, i), b = tg_get_flat(want, i);
        if (!(fabs(a - b) <= 1e-4 * (1 + big)))
            fail_msg("%s, %s: element %lld oneDNN %.9g im2col %.9g (largest |im2col| %.3g)",
                     label, what, (long long)i, a, b, big);
    }
}

/* The results of one path: y, and the gradients of Σ y·r + Σ conv(x, w, b)² · r (the layer used
 * twice, so the second backward adds into gradients that already hold values), as copies. */
typedef struct {
    tg_tensor *y, *gx, *gw, *gb;
} conv_results;

static conv_results conv_run(const conv_case *c, tg_tensor *const *in, tg_tensor *r,
                             tg__dnnl_mode mode)
{
    tg__conv_dnnl_set_mode(mode);
    for (int i = 0; i < 3; i++)
        if (in[i]) tg_zero_grad(in[i]);
    tg_tensor *y = tg_conv2d(in[0], in[1], in[2], &c->opts);
    tg_tensor *y2 = tg_conv2d(in[0], in[1], in[2], &c->opts);
    tg_backward(tg_add(tg_sum(tg_mul(y, r)), tg_sum(tg_mul(tg_square(y2), r))));
    conv_results out = {tg_clone(y), tg_clone(in[0]->grad), tg_clone(in[1]->grad),
                        in[2] ? tg_clone(in[2]->grad) : NULL};
    tg_tape_reset();
    tg__conv_dnnl_set_mode(TG_DNNL_AUTO);
    return out;
}

/* Second order: the gradients of Σ gx² + Σ gw² where (gx, gw) = ∇ Σ y²·r (create_graph), which
 * runs the adjoint ops' kernels, the accumulating forward among them. */
static void conv_run_second(const conv_case *c, tg_tensor *const *in, tg_tensor *r,
                            tg__dnnl_mode mode, tg_tensor **hx, tg_tensor **hw)
{
    tg__conv_dnnl_set_mode(mode);
    for (int i = 0; i < 3; i++)
        if (in[i]) tg_zero_grad(in[i]);
    tg_tensor *y = tg_conv2d(in[0], in[1], in[2], &c->opts);
    tg_tensor *g[2];
    tg_grad(tg_sum(tg_mul(tg_square(y), r)), NULL, 2, in, g, true);
    tg_backward(tg_add(tg_sum(tg_mul(g[0], g[0])), tg_sum(tg_mul(g[1], g[1]))));
    *hx = tg_clone(in[0]->grad), *hw = tg_clone(in[1]->grad);
    tg_tape_reset();
    tg__conv_dnnl_set_mode(TG_DNNL_AUTO);
}

static void free_results(conv_results *r)
{
    tg_free(r->y), tg_free(r->gx), tg_free(r->gw), tg_free(r->gb);
}

/* Cases of the gradient checks, and larger ones whose channels oneDNN's blocked layouts pad
 * (3, 5, 12: not multiples of 8). */
static const conv_case dnnl_cases[] = {
    {.label = "3 -> 12 channels, 13x11, stride 2 pad 1", .x = {3, 3, 13, 11}, .w = {12, 3, 3, 3},
     .bias = true, .opts = {.stride = {2, 2}, .padding = {1, 1}}},
    {.label = "5 -> 16, 5x5 pad 2, batch 1", .x = {1, 5, 12, 9}, .w = {16, 5, 5, 5},
     .bias = false, .opts = {.padding = {2, 2}}},
    {.label = "16 -> 24, groups 4, dilation 2", .x = {2, 16, 10, 10}, .w = {24, 4, 3, 3},
     .bias = true, .opts = {.padding = {2, 2}, .dilation = {2, 2}, .groups = 4}},
    {.label = "32 -> 32 3x3 same", .x = {2, 32, 8, 8}, .w = {32, 32, 3, 3}, .bias = true,
     .opts = {.padding = {1, 1}}},
};

static void check_dnnl_case(const conv_case *c, tg_rng *rng)
{
    tg_tensor *in[3] = {
        tg_set_requires_grad(tg_rand_normal(TG_F32, 4, c->x, 0, 1, rng), true),
        tg_set_requires_grad(tg_rand_normal(TG_F32, 4, c->w, 0, 1, rng), true),
        c->bias ? tg_set_requires_grad(tg_rand_normal(TG_F32, TG_SHAPE(c->w[0]), 0, 1, rng), true)
                : NULL};
    tg_tensor *y = tg_conv2d(in[0], in[1], in[2], &c->opts);
    tg_tensor *r = tg_rand_normal(TG_F32, y->ndim, y->shape, 0, 1, rng);
    tg_tape_reset();
    conv_results want = conv_run(c, in, r, TG_DNNL_OFF);
    int64_t before = tg__conv_dnnl_calls();
    conv_results got = conv_run(c, in, r, TG_DNNL_ALL);
    /* two forwards, two input and two weight gradients */
    if (tg__conv_dnnl_calls() - before != 6)
        fail_msg("%s: oneDNN ran %lld calls, expected 6", c->label,
                 (long long)(tg__conv_dnnl_calls() - before));
    expect_close_f32(got.y, want.y, "output", c->label);
    expect_close_f32(got.gx, want.gx, "input gradient", c->label);
    expect_close_f32(got.gw, want.gw, "weight gradient", c->label);
    if (c->bias) expect_close_f32(got.gb, want.gb, "bias gradient", c->label);
    tg_tensor *hx0, *hw0, *hx1, *hw1;
    conv_run_second(c, in, r, TG_DNNL_OFF, &hx0, &hw0);
    conv_run_second(c, in, r, TG_DNNL_ALL, &hx1, &hw1);
    expect_close_f32(hx1, hx0, "second order, input", c->label);
    expect_close_f32(hw1, hw0, "second order, weight", c->label);
    free_results(&want), free_results(&got);
    tg_free(hx0), tg_free(hw0), tg_free(hx1), tg_free(hw1);
    tg_free(in[0]), tg_free(in[1]), tg_free(in[2]), tg_free(r);
}

static void test_conv_dnnl_matches_im2col(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    for (size_t k = 0; k < sizeof conv_cases / sizeof *conv_cases; k++)
        check_dnnl_case(&conv_cases[k], &rng);
    for (size_t k = 0; k < sizeof dnnl_cases / sizeof *dnnl_cases; k++)
        check_dnnl_case(&dnnl_cases[k], &rng);
    /* and against PyTorch's values directly */
    int n;
    const conv_fixture *f = conv_fixtures(&n);
    tg__conv_dnnl_set_mode(TG_DNNL_ALL);
    int64_t before = tg__conv_dnnl_calls();
    for (int k = 0; k < n; k++) check_conv_fixture(&f[k], TG_F32);
    tg__conv_dnnl_set_mode(TG_DNNL_AUTO);
    assert_int_equal(tg__conv_dnnl_calls() - before, 3 * n);
}

/* By default (TG_DNNL_AUTO) a LeNet-sized layer stays on im2col and an AlexNet-sized one goes to
 * oneDNN (its weight gradient only on a large output image); float64 never does; TG_DNNL_OFF
 * keeps everything on im2col. */
static void test_conv_dnnl_threshold(void **state)
{
    (void)state;
    tg_tensor *lx = tg_zeros(TG_F32, TG_SHAPE(64, 6, 14, 14));
    tg_tensor *lw = tg_zeros(TG_F32, TG_SHAPE(16, 6, 5, 5));
    tg_tensor *ax = tg_zeros(TG_F32, TG_SHAPE(4, 128, 16, 16));
    tg_tensor *aw = tg_zeros(TG_F32, TG_SHAPE(128, 128, 3, 3));
    tg_tensor *ax64 = tg_zeros(TG_F64, TG_SHAPE(4, 128, 16, 16));
    tg_tensor *aw64 = tg_zeros(TG_F64, TG_SHAPE(128, 128, 3, 3));
    tg_conv2d_opts same = {.padding = {1, 1}};
    tg__conv_dnnl_set_mode(TG_DNNL_AUTO); /* the default, whatever TG_CONV_DNNL says */
    int64_t c0 = tg__conv_dnnl_calls();
    tg_conv2d(lx, lw, NULL, NULL);
    assert_int_equal(tg__conv_dnnl_calls(), c0);
    tg_conv2d(ax64, aw64, NULL, &same);
    assert_int_equal(tg__conv_dnnl_calls(), c0);
    tg_conv2d(ax, aw, NULL, &same);
    assert_int_equal(tg__conv_dnnl_calls(), c0 + 1);
    tg_set_requires_grad(ax, true), tg_set_requires_grad(aw, true);
    tg_backward(tg_sum(tg_conv2d(ax, aw, NULL, &same))); /* 16x16 output: dW on im2col */
    assert_int_equal(tg__conv_dnnl_calls(), c0 + 3);
    tg_tensor *bx = tg_set_requires_grad(tg_zeros(TG_F32, TG_SHAPE(2, 64, 32, 32)), true);
    tg_tensor *bw = tg_set_requires_grad(tg_zeros(TG_F32, TG_SHAPE(64, 64, 3, 3)), true);
    tg_backward(tg_sum(tg_conv2d(bx, bw, NULL, &same))); /* 32x32 output: dW on oneDNN */
    assert_int_equal(tg__conv_dnnl_calls(), c0 + 6);
    tg__conv_dnnl_set_mode(TG_DNNL_OFF);
    tg_conv2d(ax, aw, NULL, &same);
    assert_int_equal(tg__conv_dnnl_calls(), c0 + 6);
    tg__conv_dnnl_set_mode(TG_DNNL_AUTO);
    tg_tape_reset();
    tg_free(lx), tg_free(lw), tg_free(ax), tg_free(aw), tg_free(ax64), tg_free(aw64);
    tg_free(bx), tg_free(bw);
}

/* The exit status of a fresh process of this test run with the flag (main: --dnnl-mode,
 * --dnnl-threads), with env's changes ("NAME=value" sets, "NAME" unsets, NULL ends); what it
 * wrote on stderr goes to err (size n). */
static int child_status(const char *flag, const char *const *env, char *err, size_t n)
{
    fflush(NULL);
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2), close(fd[0]), close(fd[1]);
        for (; *env; env++) {
            char name[64];
            const char *eq = strchr(*env, '=');
            snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - *env) : 63, *env);
            if (eq) setenv(name, eq + 1, 1);
            else unsetenv(name);
        }
        execl("/proc/self/exe", "test_conv", flag, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < n && (r = read(fd[0], err + got, n - 1 - got)) > 0) got += (size_t)r;
    err[got] = 0;
    close(fd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* The mode a fresh process reads from TG_CONV_DNNL=value (NULL: unset). */
static int mode_under_env_err(const char *value, char *err, size_t n)
{
    char set[128];
    snprintf(set, sizeof set, "TG_CONV_DNNL=%s", value ? value : "");
    return child_status("--dnnl-mode", (const char *[]){value ? set : "TG_CONV_DNNL", NULL}, err,
                        n);
}

static int mode_under_env(const char *value)
{
    char err[512];
    int m = mode_under_env_err(value, err, sizeof err);
    if (*err)
        fail_msg("TG_CONV_DNNL=%s: unexpected warning \"%s\"", value ? value : "(unset)", err);
    return m;
}

/* 0/off/false/no (any case) turn the path off for the whole process; 1/on/true/yes or unset
 * leave the default; another value leaves it too, with a warning naming the variable. */
static void test_conv_dnnl_env_switch(void **state)
{
    (void)state;
    const char *off[] = {"0", "off", "OFF", "false", "False", "no", "NO"};
    const char *on[] = {"1", "on", "true", "YES", ""};
    for (int i = 0; i < LEN(off); i++) assert_int_equal(mode_under_env(off[i]), TG_DNNL_OFF);
    for (int i = 0; i < LEN(on); i++) assert_int_equal(mode_under_env(on[i]), TG_DNNL_AUTO);
    assert_int_equal(mode_under_env(NULL), TG_DNNL_AUTO);
    char err[512];
    assert_int_equal(mode_under_env_err("of", err, sizeof err), TG_DNNL_AUTO);
    if (!strstr(err, "TG_CONV_DNNL=of")) fail_msg("no warning for TG_CONV_DNNL=of: \"%s\"", err);
}

/* More geometries than the table of primitives holds (128 entries): each still runs on oneDNN
 * (the least recently used entry makes way), with im2col's results, the first one again too
 * after it was evicted. Under make test-asan, a write past the table would show. */
static void test_conv_dnnl_cache_evicts(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    enum { GEOMETRIES = 150 };
    tg_tensor *w = tg_rand_normal(TG_F32, TG_SHAPE(2, 1, 3, 3), 0, 1, &rng);
    for (int k = 0; k <= GEOMETRIES; k++) {
        int64_t h = 3 + k % GEOMETRIES;
        tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(1, 1, h, 4), 0, 1, &rng);
        tg__conv_dnnl_set_mode(TG_DNNL_OFF);
        tg_tensor *want = tg_conv2d(x, w, NULL, NULL);
        tg__conv_dnnl_set_mode(TG_DNNL_ALL);
        int64_t before = tg__conv_dnnl_calls();
        tg_tensor *got = tg_conv2d(x, w, NULL, NULL);
        tg__conv_dnnl_set_mode(TG_DNNL_AUTO);
        if (tg__conv_dnnl_calls() - before != 1)
            fail_msg("input [1, 1, %lld, 4], geometry %d: ran on im2col, not oneDNN",
                     (long long)h, k);
        expect_close_f32(got, want, "output", "cache eviction");
        tg_tape_reset();
        tg_free(x);
    }
    tg_free(w);
}

/* oneDNN's thread count in a fresh process with TG_NUM_THREADS=2: 2 when OpenMP's idle threads
 * sleep (OMP_WAIT_POLICY=passive, any case, or GOMP_SPINCOUNT=0), else 1. */
static void test_conv_dnnl_threads(void **state)
{
    (void)state;
    char err[256];
    const char *plain[] = {"TG_NUM_THREADS=2", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", NULL};
    const char *passive[] = {"TG_NUM_THREADS=2", "OMP_WAIT_POLICY=PASSIVE", "GOMP_SPINCOUNT",
                             NULL};
    const char *active[] = {"TG_NUM_THREADS=2", "OMP_WAIT_POLICY=active", "GOMP_SPINCOUNT",
                            NULL};
    const char *nospin[] = {"TG_NUM_THREADS=2", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT=0", NULL};
    assert_int_equal(child_status("--dnnl-threads", plain, err, sizeof err), 1);
    assert_int_equal(child_status("--dnnl-threads", passive, err, sizeof err), 2);
    assert_int_equal(child_status("--dnnl-threads", active, err, sizeof err), 1);
    assert_int_equal(child_status("--dnnl-threads", nospin, err, sizeof err), 2);
}

/* The cache's key is the whole geometry: two layers with the same sizes in and out (input
 * [2, 8, 8, 8], weight [8, 8, 3, 3], 8x8 output) but padding 1, then padding 2 and dilation 2,
 * get a primitive each; so do strides and groups. Each must match im2col. */
static void test_conv_dnnl_cache_key(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 17);
    static const conv_case same_sizes[] = {
        {.label = "padding 1", .x = {2, 8, 8, 8}, .w = {8, 8, 3, 3},
         .opts = {.padding = {1, 1}}},
        {.label = "padding 2 dilation 2", .x = {2, 8, 8, 8}, .w = {8, 8, 3, 3},
         .opts = {.padding = {2, 2}, .dilation = {2, 2}}},
        {.label = "padding 1 groups 2", .x = {2, 8, 8, 8}, .w = {8, 4, 3, 3},
         .opts = {.padding = {1, 1}, .groups = 2}},
        {.label = "padding 1 stride 2", .x = {2, 8, 16, 16}, .w = {8, 8, 3, 3},
         .opts = {.stride = {2, 2}, .padding = {1, 1}}},
        {.label = "padding 0 stride 1", .x = {2, 8, 10, 10}, .w = {8, 8, 3, 3}},
        {.label = "padding 2 stride 3", .x = {2, 8, 22, 22}, .w = {8, 8, 3, 3},
         .opts = {.stride = {3, 3}, .padding = {2, 2}}},
    };
    for (int k = 0; k < LEN(same_sizes); k++) check_dnnl_case(&same_sizes[k], &rng);
}

/* The routing rule on either side of each threshold (ops/conv_dnnl.c, pays): 2^26 multiply-adds
 * (a 1x1 layer of 64 -> 64 channels on 128x128 pixels has exactly that many, on 128x127 fewer);
 * a strided forward on fewer than 8 input channels stays on im2col (AlexNet's first layer), on 8
 * or unstrided it does not; the weight gradient needs 512 output pixels (22² no, 23² yes). */
static void test_conv_dnnl_threshold_edges(void **state)
{
    (void)state;
    typedef struct {
        const char *label;
        int64_t x[4], w[4];
        tg_conv2d_opts opts;
        bool backward;
        int64_t calls; /* oneDNN calls expected: forward, then input and weight gradients */
    } edge;
    static const edge edges[] = {
        {"2^26 multiply-adds", {1, 64, 128, 128}, {64, 64, 1, 1}, {.stride = {1, 1}}, false, 1},
        {"2^26 - 8192 multiply-adds", {1, 64, 128, 127}, {64, 64, 1, 1}, {.stride = {1, 1}}, false,
         0},
        {"3 channels stride 4", {8, 3, 128, 128}, {64, 3, 11, 11},
         {.stride = {4, 4}, .padding = {2, 2}}, false, 0},
        {"8 channels stride 4", {8, 8, 128, 128}, {64, 8, 11, 11},
         {.stride = {4, 4}, .padding = {2, 2}}, false, 1},
        {"3 channels stride 1", {1, 3, 64, 64}, {64, 3, 11, 11}, {.stride = {1, 1}}, false, 1},
        {"22x22 output", {4, 64, 22, 22}, {64, 64, 3, 3}, {.padding = {1, 1}}, true, 2},
        {"23x23 output", {4, 64, 23, 23}, {64, 64, 3, 3}, {.padding = {1, 1}}, true, 3},
    };
    tg__conv_dnnl_set_mode(TG_DNNL_AUTO);
    for (int k = 0; k < LEN(edges); k++) {
        const edge *c = &edges[k];
        tg_tensor *x = tg_set_requires_grad(tg_zeros(TG_F32, 4, c->x), c->backward);
        tg_tensor *w = tg_set_requires_grad(tg_zeros(TG_F32, 4, c->w), c->backward);
        int64_t before = tg__conv_dnnl_calls();
        tg_tensor *y = tg_conv2d(x, w, NULL, &c->opts);
        if (c->backward) tg_backward(tg_sum(y));
        if (tg__conv_dnnl_calls() - before != c->calls)
            fail_msg("%s: %lld oneDNN calls, expected %lld", c->label,
                     (long long)(tg__conv_dnnl_calls() - before), (long long)c->calls);
        tg_tape_reset();
        tg_free(x), tg_free(w);
    }
}

/* A call on the geometry of g from another thread: done once it returned. */
typedef struct {
    conv_geom g;
    const float *x, *w;
    float *y;
    atomic_bool done;
} other_call;

static void *call_from_other_thread(void *p)
{
    other_call *c = p;
    tg__conv_dnnl_fwd(&c->g, c->x, c->w, NULL, true, c->y);
    tg_tape_free();
    atomic_store(&c->done, true);
    return NULL;
}

/* A failing oneDNN call raises an error naming the op and the workaround, and leaves nothing
 * behind when the error handler longjmps: OpenMP's thread count is restored and the next call
 * on the same geometry (from another thread, so that a lock still held shows as a timeout rather
 * than a hang) runs. */
static void test_conv_dnnl_error_releases(void **state)
{
    (void)state;
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(1, 2, 5, 5));
    tg_tensor *w = tg_ones(TG_F32, TG_SHAPE(3, 2, 3, 3));
    float y[3 * 3 * 3];
    int threads = omp_get_max_threads();
    tg__conv_dnnl_set_mode(TG_DNNL_ALL);
    tg_conv2d(x, w, NULL, NULL); /* makes the entry */
    tg__conv_dnnl_fail_next_call();
    EXPECT_ERROR("TG_CONV_DNNL=0", tg_conv2d(x, w, NULL, NULL));
    assert_int_equal(omp_get_max_threads(), threads);
    other_call c = {.g = {.N = 1, .C = 2, .H = 5, .W = 5, .O = 3, .kh = 3, .kw = 3, .OH = 3,
                          .OW = 3, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1},
                    .x = x->data, .w = w->data, .y = y};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, call_from_other_thread, &c), 0);
    for (int ms = 0; ms < 10000 && !atomic_load(&c.done); ms++) usleep(1000);
    if (!atomic_load(&c.done)) fail_msg("the next call on the geometry still waits after 10 s");
    pthread_join(t, NULL);
    for (int i = 0; i < 27; i++) assert_float_equal(y[i], 18, 1e-5);
    tg__conv_dnnl_set_mode(TG_DNNL_AUTO);
    tg_tape_reset();
    tg_free(x), tg_free(w);
}

/* n floats ending where an inaccessible page begins, zeroed. */
static float *guarded_floats(int64_t n, void **map, size_t *len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = (size_t)n * sizeof(float);
    size_t cap = (bytes + page - 1) / page * page;
    *len = cap + page;
    char *m = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + cap, page, PROT_NONE), 0);
    *map = m;
    return (float *)(m + cap - bytes);
}

/* oneDNN reads tapegrad's buffers (the borrowed input and weight here) no further than their
 * last element: each ends at a guard page, so a read past it faults (a test failure). Its own
 * buffers are in the arena, sized by its descriptors. */
static void test_conv_dnnl_no_read_past_buffers(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg__conv_dnnl_set_mode(TG_DNNL_ALL);
    int64_t before = tg__conv_dnnl_calls();
    int runs = 0;
    const conv_case *all[LEN(conv_cases) + LEN(dnnl_cases)];
    for (int64_t k = 0; k < LEN(conv_cases); k++) all[runs++] = &conv_cases[k];
    for (int64_t k = 0; k < LEN(dnnl_cases); k++) all[runs++] = &dnnl_cases[k];
    for (int k = 0; k < runs; k++) {
        const conv_case *c = all[k];
        void *mx, *mw;
        size_t lx, lw;
        int64_t nx = c->x[0] * c->x[1] * c->x[2] * c->x[3];
        int64_t nw = c->w[0] * c->w[1] * c->w[2] * c->w[3];
        tg_tensor *x = tg_set_requires_grad(tg_wrap(TG_F32, 4, c->x, guarded_floats(nx, &mx, &lx)),
                                            true);
        tg_tensor *w = tg_set_requires_grad(tg_wrap(TG_F32, 4, c->w, guarded_floats(nw, &mw, &lw)),
                                            true);
        tg_tensor *y = tg_conv2d(x, w, NULL, &c->opts);
        tg_backward(tg_sum(tg_square(y)));
        tg_tape_reset();
        tg_free(x), tg_free(w);
        munmap(mx, lx), munmap(mw, lw);
    }
    tg__conv_dnnl_set_mode(TG_DNNL_AUTO);
    assert_int_equal(tg__conv_dnnl_calls() - before, 3 * runs);
}
#endif

/* ---- pooling against PyTorch ---- */

static const int64_t pool_shape[4] = {2, 2, 7, 6};

static void test_pool_vs_torch(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        tg_tensor *x = fixture(dt, pool_x, 4, pool_shape);
        tg_tensor *y = tg_max_pool2d(x, &(tg_pool2d_opts){.kernel = {3, 3}, .stride = {2, 2},
                                                          .padding = {1, 1}});
        assert_int_equal(y->shape[2], 4);
        assert_int_equal(y->shape[3], 3);
        expect_fixture(y, maxpool_y, LEN(maxpool_y), dt);
        expect_fixture(tg_max_pool2d(x, &(tg_pool2d_opts){.kernel = {2, 2}}), maxpool_k2_y,
                       LEN(maxpool_k2_y), dt);
        expect_fixture(tg_avg_pool2d(x, &(tg_pool2d_opts){.kernel = {3, 3}, .stride = {2, 2},
                                                          .padding = {1, 1}}),
                       avgpool_y, LEN(avgpool_y), dt);
        expect_fixture(tg_avg_pool2d(x, &(tg_pool2d_opts){.kernel = {3, 2}, .stride = {2, 1},
                                                          .padding = {1, 1},
                                                          .exclude_padding = true}),
                       avgpool_excl_y, LEN(avgpool_excl_y), dt);
        tg_tensor *a = tg_adaptive_avg_pool2d(x, 3, 4);
        assert_int_equal(a->shape[2], 3);
        assert_int_equal(a->shape[3], 4);
        expect_fixture(a, adaptive_y, LEN(adaptive_y), dt);
        expect_fixture(tg_adaptive_avg_pool2d(x, 9, 5), adaptive_up_y, LEN(adaptive_up_y), dt);
        tg_tape_reset();
        tg_free(x);
    }
}

/* A tie goes to the first element; a NaN anywhere in the window is the result. */
/* Odd height and width: the last row and column belong to no 2x2 window. */
static void test_max_pool_odd_sizes(void **state)
{
    (void)state;
    double v[2 * 3 * 5];
    for (int i = 0; i < 30; i++) v[i] = (i * 7) % 30;   /* a permutation of 0..29 */
    tg_tensor *x = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(2, 1, 3, 5), v), true);
    tg_tensor *y = tg_max_pool2d(x, &(tg_pool2d_opts){.kernel = {2, 2}});
    assert_int_equal(y->shape[2], 1);
    assert_int_equal(y->shape[3], 2);
    double expected[4], grad[30] = {0};
    for (int n = 0; n < 2; n++)
        for (int ow = 0; ow < 2; ow++) {
            int best = n * 15 + 2 * ow;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++)
                    if (v[n * 15 + i * 5 + 2 * ow + j] > v[best]) best = n * 15 + i * 5 + 2 * ow + j;
            expected[n * 2 + ow] = v[best];
            grad[best] = 1;
        }
    expect_values(y, expected, 4, 0);
    tg_backward(tg_sum(y));
    expect_values(x->grad, grad, 30, 0);
    tg_tape_reset();
    tg_free(x);
}

static void test_max_pool_ties_nan(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(
        tg_from_data(TG_F64, TG_SHAPE(1, 1, 2, 4), (double[]){3, 3, 1, NAN, 3, 2, 0, 5}), true);
    tg_tensor *y = tg_max_pool2d(x, &(tg_pool2d_opts){.kernel = {2, 2}});
    assert_near(tg_get_flat(y, 0), 3, 0);
    assert_true(isnan(tg_get_flat(y, 1)));
    tg_backward(tg_sum(tg_mul_scalar(tg_narrow(tg_reshape(y, TG_SHAPE(2)), 0, 0, 1), 2)));
    expect_values(x->grad, (double[]){2, 0, 0, 0, 0, 0, 0, 0}, 8, 0);
    tg_tape_reset();
    /* padding is -inf, never the maximum, even of all-negative windows */
    tg_tensor *neg = tg_full(TG_F32, TG_SHAPE(1, 1, 3, 3), -7);
    tg_tensor *p = tg_max_pool2d(neg, &(tg_pool2d_opts){.kernel = {3, 3}, .stride = {1, 1},
                                                        .padding = {1, 1}});
    for (int64_t i = 0; i < p->numel; i++) assert_near(tg_get_flat(p, i), -7, 0);
    tg_tape_reset();
    /* without padding a window starts from its first element: a NaN there makes the result NaN
     * (the window's last NaN takes the gradient, as with padding), and a window of -inf gives its
     * gradient to its first element */
    tg_tensor *first = tg_set_requires_grad(
        tg_from_data(TG_F32, TG_SHAPE(1, 1, 2, 4),
                     (float[]){NAN, 5, -INFINITY, -INFINITY, 1, NAN, -INFINITY, -INFINITY}),
        true);
    tg_tensor *q = tg_max_pool2d(first, &(tg_pool2d_opts){.kernel = {2, 2}});
    assert_true(isnan(tg_get_flat(q, 0)));
    assert_true(isinf(tg_get_flat(q, 1)) && tg_get_flat(q, 1) < 0);
    tg_tensor *weights = tg_from_data(TG_F32, TG_SHAPE(1, 1, 1, 2), (float[]){2, 3});
    tg_backward(tg_sum(tg_mul(q, weights)));
    expect_values(first->grad, (double[]){0, 0, 3, 0, 0, 2, 0, 0}, 8, 0);
    tg_tape_reset();
    tg_free(x), tg_free(neg), tg_free(first), tg_free(weights);
}

/* ---- pooling gradient checks ---- */

typedef struct {
    const char *label;
    int kind;          /* 0 max, 1 avg, 2 adaptive */
    int64_t x[4];
    tg_pool2d_opts opts;
    int64_t out_h, out_w;
} pool_case;

static tg_tensor *apply_pool(tg_tensor *x, void *ctx)
{
    const pool_case *c = ctx;
    if (c->kind == 0) return tg_max_pool2d(x, &c->opts);
    if (c->kind == 1) return tg_avg_pool2d(x, &c->opts);
    return tg_adaptive_avg_pool2d(x, c->out_h, c->out_w);
}

static const pool_case pool_cases[] = {
    {.label = "tg_max_pool2d 2x2", .kind = 0, .x = {2, 3, 6, 4}, .opts = {.kernel = {2, 2}}},
    {.label = "tg_max_pool2d 2x2 on odd sizes (last row and column unused)", .kind = 0,
     .x = {1, 2, 5, 7}, .opts = {.kernel = {2, 2}}},
    {.label = "tg_max_pool2d 3x3 stride 2 pad 1 (overlapping)", .kind = 0, .x = {1, 2, 7, 5},
     .opts = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}},
    {.label = "tg_max_pool2d 3x2 stride 1x3 pad 1x0", .kind = 0, .x = {2, 1, 5, 8},
     .opts = {.kernel = {3, 2}, .stride = {1, 3}, .padding = {1, 0}}},
    {.label = "tg_avg_pool2d 2x2", .kind = 1, .x = {2, 3, 6, 4}, .opts = {.kernel = {2, 2}}},
    {.label = "tg_avg_pool2d 3x3 stride 2 pad 1", .kind = 1, .x = {1, 2, 7, 5},
     .opts = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}},
    {.label = "tg_avg_pool2d 3x2 stride 2x1 pad 1, exclude padding", .kind = 1, .x = {2, 1, 5, 6},
     .opts = {.kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1}, .exclude_padding = true}},
    {.label = "tg_adaptive_avg_pool2d 7x5 -> 3x2", .kind = 2, .x = {2, 2, 7, 5},
     .out_h = 3, .out_w = 2},
    {.label = "tg_adaptive_avg_pool2d 4x3 -> 6x5 (overlapping)", .kind = 2, .x = {1, 2, 4, 3},
     .out_h = 6, .out_w = 5},
    {.label = "tg_adaptive_avg_pool2d to 1x1", .kind = 2, .x = {2, 3, 3, 4},
     .out_h = 1, .out_w = 1},
};

typedef struct {
    const pool_case *c;
    tg_tensor *r;
} pool_ctx;

static tg_tensor *pool_loss_sq(tg_tensor **in, int n, void *pctx)
{
    pool_ctx *p = pctx;
    return tg_sum(tg_mul(tg_square(apply_pool(in[0], (void *)p->c)), p->r));
}

static void test_pool_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    for (size_t k = 0; k < sizeof pool_cases / sizeof *pool_cases; k++) {
        const pool_case *c = &pool_cases[k];
        tg_tensor *x = param_f64(&rng, 4, c->x);
        expect_gradcheck_op(apply_pool, (void *)c, x, "%s", c->label);
        tg_tensor *y = apply_pool(x, (void *)c);
        pool_ctx p = {c, tg_rand_normal(TG_F64, y->ndim, y->shape, 0, 1, &rng)};
        tg_tape_reset();
        expect_gradgradcheck(pool_loss_sq, &x, 1, &p, c->label);
        tg_free(x), tg_free(p.r);
    }
}

static void test_pool_errors(void **state)
{
    (void)state;
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(1, 2, 4, 4));
    tg_tensor *x2 = tg_zeros(TG_F32, TG_SHAPE(4, 4));
    EXPECT_ERROR("tg_max_pool2d: expected input [N, C, H, W], got [4, 4] f32",
                 tg_max_pool2d(x2, &(tg_pool2d_opts){.kernel = {2, 2}}));
    EXPECT_ERROR("tg_max_pool2d: options are required", tg_max_pool2d(x, NULL));
    EXPECT_ERROR("tg_avg_pool2d: kernel 0x2",
                 tg_avg_pool2d(x, &(tg_pool2d_opts){.kernel = {0, 2}}));
    EXPECT_ERROR("padding 2x0 between 0 and half the kernel",
                 tg_max_pool2d(x, &(tg_pool2d_opts){.kernel = {3, 3}, .padding = {2, 0}}));
    EXPECT_ERROR("tg_avg_pool2d: kernel 5x5 does not fit input [1, 2, 4, 4] f32",
                 tg_avg_pool2d(x, &(tg_pool2d_opts){.kernel = {5, 5}}));
    EXPECT_ERROR("tg_adaptive_avg_pool2d: output 0x3", tg_adaptive_avg_pool2d(x, 0, 3));
    EXPECT_ERROR("tg_adaptive_avg_pool2d: expected input", tg_adaptive_avg_pool2d(x2, 1, 1));
    tg_free(x), tg_free(x2);
}

/* ---- flatten ---- */

typedef struct {
    int start, end;
} flatten_arg;

static tg_tensor *apply_flatten(tg_tensor *x, void *ctx)
{
    const flatten_arg *a = ctx;
    return tg_flatten(x, a->start, a->end);
}

static void test_flatten(void **state)
{
    (void)state;
    tg_tensor *x = tg_arange(TG_F32, 0, 120, 1);
    tg_tensor *x4 = tg_reshape(x, TG_SHAPE(2, 3, 4, 5));
    tg_tensor *f = tg_flatten(x4, 1, -1);
    assert_int_equal(f->ndim, 2);
    assert_int_equal(f->shape[0], 2);
    assert_int_equal(f->shape[1], 60);
    assert_near(tg_get_flat(f, 77), 77, 0);
    tg_tensor *m = tg_flatten(x4, 1, 2);
    assert_int_equal(m->ndim, 3);
    assert_int_equal(m->shape[1], 12);
    assert_int_equal(m->shape[2], 5);
    assert_int_equal(tg_flatten(x4, 0, -1)->ndim, 1);
    assert_int_equal(tg_flatten(x4, 2, 2)->ndim, 4);
    EXPECT_ERROR("tg_flatten: start axis 2 comes after end axis 1 of [2, 3, 4, 5] f32",
                 tg_flatten(x4, 2, 1));
    x4 = tg_reshape(x, TG_SHAPE(2, 3, 4, 5));
    EXPECT_ERROR("tg_flatten", tg_flatten(x4, 1, 4));
    tg_tape_reset();
    tg_free(x);

    tg_rng rng;
    tg_rng_seed(&rng, 8);
    tg_tensor *p = param_f64(&rng, TG_SHAPE(2, 3, 2, 2));
    flatten_arg args[] = {{1, -1}, {0, 2}, {-2, -1}};
    for (int k = 0; k < 3; k++)
        expect_gradcheck_op(apply_flatten, &args[k], p, "tg_flatten %d..%d", args[k].start,
                            args[k].end);
    tg_free(p);
}

/* ---- batch norm ---- */

typedef struct {
    const double *x, *w, *b, *rm0, *rv0, *train_y, *rm1, *rv1, *eval_y;
    int64_t n, C;
    int ndim;
    int64_t shape[4];
} bn_fixture;

#define BN_FIXTURE(name, ND, ...)                                                              \
    {name##_x, name##_w, name##_b, name##_rm0, name##_rv0, name##_train_y, name##_rm1,         \
     name##_rv1, name##_eval_y, LEN(name##_x), LEN(name##_w), ND, {__VA_ARGS__}}

static void check_bn_fixture(const bn_fixture *f, tg_dtype dt)
{
    tg_tensor *x = fixture(dt, f->x, f->ndim, f->shape);
    tg_tensor *w = fixture(dt, f->w, TG_SHAPE(f->C)), *b = fixture(dt, f->b, TG_SHAPE(f->C));
    tg_tensor *rm = fixture(dt, f->rm0, TG_SHAPE(f->C));
    tg_tensor *rv = fixture(dt, f->rv0, TG_SHAPE(f->C));
    expect_fixture(tg_batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5), f->train_y, f->n, dt);
    expect_fixture(rm, f->rm1, f->C, dt);
    expect_fixture(rv, f->rv1, f->C, dt);
    expect_fixture(tg_batch_norm(x, w, b, rm, rv, false, 0.1, 1e-5), f->eval_y, f->n, dt);
    expect_fixture(rm, f->rm1, f->C, dt); /* evaluation leaves the running statistics alone */
    expect_fixture(rv, f->rv1, f->C, dt);
    /* no running statistics: batch statistics in either mode, nothing to update */
    expect_fixture(tg_batch_norm(x, w, b, NULL, NULL, false, 0.1, 1e-5), f->train_y, f->n, dt);
    tg_tape_reset();
    tg_free(x), tg_free(w), tg_free(b), tg_free(rm), tg_free(rv);
}

static void test_batch_norm_vs_torch(void **state)
{
    (void)state;
    const bn_fixture f[] = {BN_FIXTURE(bn4, 4, 3, 2, 3, 2), BN_FIXTURE(bn2, 2, 5, 3)};
    for (int k = 0; k < 2; k++) {
        check_bn_fixture(&f[k], TG_F64);
        check_bn_fixture(&f[k], TG_F32);
    }
}

/* Momentum 1 makes the running statistics the last batch's: mean and unbiased variance. */
static void test_batch_norm_running_stats(void **state)
{
    (void)state;
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(4, 1), (double[]){1, 2, 3, 6});
    tg_tensor *rm = tg_zeros(TG_F64, TG_SHAPE(1)), *rv = tg_ones(TG_F64, TG_SHAPE(1));
    tg_tensor *y = tg_batch_norm(x, NULL, NULL, rm, rv, true, 1.0, 0);
    assert_near(tg_get_flat(rm, 0), 3, 1e-15);
    assert_near(tg_get_flat(rv, 0), 14.0 / 3, 1e-14);          /* Σ(x - 3)² / (n - 1) */
    assert_near(tg_get_flat(y, 3), 3 / sqrt(3.5), 1e-14);       /* biased variance 14/4 */
    tg_batch_norm(x, NULL, NULL, rm, rv, true, 0.25, 0);
    assert_near(tg_get_flat(rm, 0), 3, 1e-15);
    assert_near(tg_get_flat(rv, 0), 14.0 / 3, 1e-14);
    tg_tensor *e = tg_batch_norm(x, NULL, NULL, rm, rv, false, 0.25, 0);
    assert_near(tg_get_flat(e, 0), (1 - 3) / sqrt(14.0 / 3), 1e-14);
    tg_tape_reset();
    tg_free(x), tg_free(rm), tg_free(rv);
}

typedef struct {
    bool training, affine, bias_only;
    tg_tensor *rm, *rv, *r;
    bool square;
} bn_ctx;

static tg_tensor *bn_loss(tg_tensor **in, int n, void *pctx)
{
    bn_ctx *c = pctx;
    tg_tensor *w = c->affine && !c->bias_only ? in[1] : NULL;
    tg_tensor *b = c->bias_only ? in[1] : c->affine ? in[2] : NULL;
    tg_tensor *y = tg_batch_norm(in[0], w, b, c->rm, c->rv, c->training, 0.1, 1e-5);
    return tg_sum(tg_mul(c->square ? tg_square(y) : y, c->r));
}

static void test_batch_norm_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    const int64_t shapes[][4] = {{3, 2, 3, 2}, {5, 3, 0, 0}, {1, 2, 2, 3}, {4, 2, 1, 1}};
    const int ndims[] = {4, 2, 4, 4};
    for (int k = 0; k < 4; k++) {
        int64_t C = shapes[k][1];
        tg_tensor *in[3] = {param_f64(&rng, ndims[k], shapes[k]), param_f64(&rng, TG_SHAPE(C)),
                            param_f64(&rng, TG_SHAPE(C))};
        tg_tensor *rm = tg_rand_normal(TG_F64, TG_SHAPE(C), 0, 1, &rng);
        tg_tensor *rv = tg_rand_uniform(TG_F64, TG_SHAPE(C), 0.5, 2, &rng);
        bn_ctx c = {.r = tg_rand_normal(TG_F64, ndims[k], shapes[k], 0, 1, &rng)};
        char shape[64];
        tg_shape_str(in[0], shape, sizeof shape);
        for (int mode = 0; mode < 4; mode++) {
            c.training = mode != 1;
            c.affine = mode != 2;
            c.bias_only = mode == 3;
            c.rm = mode == 0 || mode == 1 ? rm : NULL;
            c.rv = c.rm ? rv : NULL;
            int n = c.bias_only ? 2 : c.affine ? 3 : 1;
            tg_tensor *bias_only[2] = {in[0], in[2]}, **inputs = c.bias_only ? bias_only : in;
            const char *what[] = {"training, running stats", "evaluation", "training, no affine",
                                  "training, bias only"};
            c.square = false;
            expect_gradcheck(bn_loss, inputs, n, &c, "tg_batch_norm %s %s", what[mode], shape);
            expect_lazy_grads(bn_loss, inputs, n, &c, what[mode]);
            c.square = true;
            if (k < 2 || mode == 1)
                expect_gradgradcheck(bn_loss, inputs, n, &c, "tg_batch_norm second order");
        }
        tg_free(in[0]), tg_free(in[1]), tg_free(in[2]);
        tg_free(rm), tg_free(rv), tg_free(c.r);
    }
}

/* Shapes large enough that the kernels take the channels in several blocks, the last one
 * partial ([3, 5, 47, 47]: blocks of 4 channels; [3, 12000]: one value per channel and sample):
 * the forward against statistics computed here, the fast backward against the differentiable
 * one (tg_grad with create_graph), and float32 against float64. */
static void bn_reference(const tg_tensor *x, const tg_tensor *w, const tg_tensor *b, double *y)
{
    int64_t N = x->shape[0], C = x->shape[1], S = x->numel / (N * C);
    const double *xd = x->data, *wd = w->data, *bd = b->data;
    for (int64_t c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) s += xd[(n * C + c) * S + i];
        double mean = s / (double)(N * S);
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                double d = xd[(n * C + c) * S + i] - mean;
                ss += d * d;
            }
        double invstd = 1 / sqrt(ss / (double)(N * S) + 1e-5);
        for (int64_t n = 0; n < N; n++)
            for (int64_t i = 0; i < S; i++) {
                int64_t at = (n * C + c) * S + i;
                y[at] = (xd[at] - mean) * invstd * wd[c] + bd[c];
            }
    }
}

static void test_batch_norm_blocks(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 12);
    const int64_t shapes[][4] = {{3, 5, 47, 47}, {3, 12000, 0, 0}};
    const int ndims[] = {4, 2};
    for (int k = 0; k < 2; k++) {
        int64_t C = shapes[k][1];
        tg_tensor *in[3] = {tg_rand_normal(TG_F64, ndims[k], shapes[k], 3, 2, &rng),
                            param_f64(&rng, TG_SHAPE(C)), param_f64(&rng, TG_SHAPE(C))};
        tg_set_requires_grad(in[0], true);
        tg_tensor *r = tg_rand_normal(TG_F64, ndims[k], shapes[k], 0, 1, &rng);
        double *expected = malloc((size_t)in[0]->numel * sizeof *expected);
        bn_reference(in[0], in[1], in[2], expected);
        tg_tensor *y = tg_batch_norm(in[0], in[1], in[2], NULL, NULL, true, 0.1, 1e-5);
        expect_values(y, expected, y->numel, 1e-12);
        tg_tensor *loss = tg_sum(tg_mul(y, r)), *ops_grad[3];
        tg_grad(loss, NULL, 3, in, ops_grad, true);
        tg_backward(loss);
        for (int i = 0; i < 3; i++)
            expect_values(in[i]->grad, ops_grad[i]->data, ops_grad[i]->numel, 1e-10);
        /* float32: the same values to float32's precision */
        tg_tensor *in32[3], *r32 = tg_to_dtype(r, TG_F32);
        for (int i = 0; i < 3; i++)
            in32[i] = tg_set_requires_grad(tg_to_dtype(in[i], TG_F32), true);
        tg_tensor *y32 = tg_batch_norm(in32[0], in32[1], in32[2], NULL, NULL, true, 0.1, 1e-5);
        expect_values(y32, expected, y32->numel, 1e-5);
        tg_backward(tg_sum(tg_mul(y32, r32)));
        for (int i = 0; i < 3; i++)
            expect_values(in32[i]->grad, in[i]->grad->data, in[i]->numel, i == 0 ? 1e-4 : 1e-3);
        tg_tape_reset();
        free(expected);
        for (int i = 0; i < 3; i++) tg_free(in[i]), tg_free(in32[i]);
        tg_free(r), tg_free(r32);
    }
}

static void test_batch_norm_errors(void **state)
{
    (void)state;
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(4, 3, 2, 2));
    tg_tensor *w2 = tg_ones(TG_F32, TG_SHAPE(2)), *w3 = tg_ones(TG_F32, TG_SHAPE(3));
    tg_tensor *wd = tg_ones(TG_F64, TG_SHAPE(3)), *v = tg_zeros(TG_F32, TG_SHAPE(3));
    tg_tensor *one = tg_zeros(TG_F32, TG_SHAPE(1, 3, 1, 1));
    EXPECT_ERROR("tg_batch_norm: weight [2] f32 does not match input [4, 3, 2, 2] f32 "
                 "(expected [3] f32)", tg_batch_norm(x, w2, NULL, NULL, NULL, true, 0.1, 1e-5));
    EXPECT_ERROR("tg_batch_norm: bias [3] f64",
                 tg_batch_norm(x, w3, wd, NULL, NULL, true, 0.1, 1e-5));
    EXPECT_ERROR("running_var [2] f32", tg_batch_norm(x, w3, w3, v, w2, true, 0.1, 1e-5));
    EXPECT_ERROR("give both running_mean and running_var",
                 tg_batch_norm(x, NULL, NULL, v, NULL, false, 0.1, 1e-5));
    EXPECT_ERROR("expected input [N, C] or [N, C, ...], got [3] f32",
                 tg_batch_norm(w3, NULL, NULL, NULL, NULL, true, 0.1, 1e-5));
    EXPECT_ERROR("more than one value per channel, input [1, 3, 1, 1] f32 has 1",
                 tg_batch_norm(one, NULL, NULL, v, w3, true, 0.1, 1e-5));
    tg_batch_norm(one, NULL, NULL, v, w3, false, 0.1, 1e-5); /* evaluation of one value is fine */
    tg_tape_reset();
    tg_free(x), tg_free(w2), tg_free(w3), tg_free(wd), tg_free(v), tg_free(one);
}

int main(int argc, char **argv)
{
#ifdef TG_HAVE_DNNL
    if (argc > 1 && strcmp(argv[1], "--dnnl-mode") == 0) return (int)tg__conv_dnnl_mode();
    if (argc > 1 && strcmp(argv[1], "--dnnl-threads") == 0) return tg__conv_dnnl_threads();
#else
    (void)argc, (void)argv;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_vs_torch),
        cmocka_unit_test(test_conv_gradcheck),
        cmocka_unit_test(test_conv_errors),
#ifdef TG_HAVE_DNNL
        cmocka_unit_test(test_conv_dnnl_matches_im2col),
        cmocka_unit_test(test_conv_dnnl_threshold),
        cmocka_unit_test(test_conv_dnnl_env_switch),
        cmocka_unit_test(test_conv_dnnl_error_releases),
        cmocka_unit_test(test_conv_dnnl_cache_evicts),
        cmocka_unit_test(test_conv_dnnl_cache_key),
        cmocka_unit_test(test_conv_dnnl_threshold_edges),
        cmocka_unit_test(test_conv_dnnl_threads),
        cmocka_unit_test(test_conv_dnnl_no_read_past_buffers),
#endif
        cmocka_unit_test(test_pool_vs_torch),
        cmocka_unit_test(test_max_pool_odd_sizes),
        cmocka_unit_test(test_max_pool_ties_nan),
        cmocka_unit_test(test_pool_gradcheck),
        cmocka_unit_test(test_pool_errors),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_batch_norm_vs_torch),
        cmocka_unit_test(test_batch_norm_running_stats),
        cmocka_unit_test(test_batch_norm_gradcheck),
        cmocka_unit_test(test_batch_norm_blocks),
        cmocka_unit_test(test_batch_norm_errors),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    check_summary();
    return failed;
}
