/* A user-defined differentiable op, Swish (SiLU): y = x·σ(x), written against the public op
 * API (<tapegrad.h> and nothing else: this file builds out of tree), gradient-checked to first
 * and second order, then used as the activation of a small regressor.
 *
 *   forward   y = x·σ(x)
 *   backward  dy/dx = σ(x) + x·σ(x)(1 - σ(x)) = σ(x)·(1 + x·(1 - σ(x)))                        */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
#include <tapegrad.h>

/* ---- the op: one definition stamped for float and double (<tgmath.h> picks exp) ---------- */
#define SWISH_KERNELS(T, S)                                                                  \
    static void swish_fwd_##S(int64_t n, const void *px, void *py)                           \
    {                                                                                        \
        const T *x = px;                                                                     \
        T *y = py;                                                                           \
        for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1 + exp(-x[i])); /* x·σ(x) */        \
    }                                                                                        \
    static void swish_bwd_##S(int64_t n, const void *px, const void *pg, void *pgx)          \
    {                                                                                        \
        const T *x = px, *g = pg;                                                            \
        T *gx = pgx;                                                                         \
        for (int64_t i = 0; i < n; i++) {                                                   \
            T s = 1 / (1 + exp(-x[i]));                                                      \
            gx[i] += g[i] * s * (1 + x[i] * (1 - s));                                        \
        }                                                                                    \
    }
TG_STAMP(SWISH_KERNELS)

/* gx += g · σ(x)(1 + x(1 - σ(x))); the backward reads x only, so nothing is saved */
static void swish_backward(const tg_node *node)
{
    tg_tensor *x = node->in[0];
    TG_KERNEL_FOR(swish_bwd, x)(x->numel, x->data, tg_op_grad_out(node), tg_op_grad(x));
}

/* The same derivative written with ops, so that second derivatives go through swish too:
 * gx = g · s·(1 + x·(1 - s)) with s = σ(x). */
static void swish_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    tg_tensor *x = node->in[0], *s = tg_sigmoid(x);
    tg_tensor *one_minus_s = tg_add_scalar(tg_neg(s), 1);
    tg_tensor *dydx = tg_mul(s, tg_add_scalar(tg_mul(x, one_minus_s), 1));
    grad_in[0] = tg_mul(g, dydx);
}

static const tg_op swish_op = {"swish", swish_backward, swish_backward_ops};

static tg_tensor *swish(tg_tensor *x)
{
    tg_check_float(x, "swish");
    tg_tensor *y = tg_op_output(x->dtype, x->ndim, x->shape);
    TG_KERNEL_FOR(swish_fwd, x)(x->numel, x->data, y->data);
    tg_op_record(&swish_op, y, 1, &x, 0);
    return y;
}

/* ---- checks of f(x, W) = Σ swish(x Wᵀ)², in float64 ------------------------------------------ */
static tg_tensor *f(tg_tensor **in, int n, void *ctx)
{
    (void)n, (void)ctx;
    return tg_sum(tg_square(swish(tg_linear(in[0], in[1], NULL))));
}

/* ---- a model that uses it: ŷ = w2ᵀ swish(W1 x + b1) + b2, fitting sin(3x) on [-1, 1] ---- */
static tg_tensor *swish_forward(tg_module *self, tg_tensor *x)
{
    (void)self;
    return swish(x);
}

/* --epochs N (1..100000), --seed S, --out DIR (unused: nothing is written), --fast */
static int parse(int argc, char **argv, int *epochs, uint64_t *seed, bool *fast)
{
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--fast")) *fast = true;
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc)
            *epochs = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            *seed = strtoull(argv[++i], &end, 10);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) ++i;
        else return fprintf(stderr, "usage: custom_op [--epochs 1..100000] [--seed S] [--fast]\n"
                            "custom_op: unexpected argument '%s'\n", argv[i]), 2;
        if (end && *end) return fprintf(stderr, "custom_op: '%s' is not a number\n", argv[i]), 2;
    }
    if (*epochs < 1 || *epochs > 100000)
        return fprintf(stderr, "custom_op: --epochs must be in 1..100000\n"), 2;
    return 0;
}

int main(int argc, char **argv)
{
    int epochs = 300;
    uint64_t seed = 42;
    bool fast = false;
    int rc = parse(argc, argv, &epochs, &seed, &fast);
    if (rc) return rc;
    if (fast && epochs == 300) epochs = 150;
    tg_rng rng;
    tg_rng_seed(&rng, seed);

    tg_tensor *in[2];
    in[0] = tg_rand_normal(TG_F64, TG_SHAPE(5, 3), 0, 2, &rng);
    in[1] = tg_rand_normal(TG_F64, TG_SHAPE(4, 3), 0, 1, &rng);
    for (int k = 0; k < 2; k++) tg_set_requires_grad(in[k], true);
    tg_gradcheck_result gc = tg_gradcheck(f, in, 2, NULL, NULL);
    tg_gradcheck_result ggc = tg_gradgradcheck(f, in, 2, NULL, NULL);
    printf("gradcheck of Σ swish(x Wᵀ)²: %s on %d elements (worst: analytic %.8g, numeric %.8g)\n",
           gc.ok ? "ok" : "FAILED", gc.checked, gc.analytic, gc.numeric);
    printf("second-order check: %s on %d elements\n", ggc.ok ? "ok" : "FAILED", ggc.checked);

    tg_module *act = tg_module_new(sizeof(tg_module), "Swish", swish_forward);
    tg_module *fc1 = tg_linear_new(1, 32, true, tg_init_pytorch(), &rng);   /* draws fc1 first */
    tg_module *fc2 = tg_linear_new(32, 1, true, tg_init_pytorch(), &rng);
    tg_module *net = tg_sequential_new(3, fc1, act, fc2);
    tg_tensor *x = tg_rand_uniform(TG_F32, TG_SHAPE(256, 1), -1, 1, &rng);
    tg_tensor *y = tg_zeros(TG_F32, TG_SHAPE(256, 1));
    for (int i = 0; i < 256; i++) tg_set_flat(y, i, sin(3 * tg_get_flat(x, i)));
    tg_param_list params = {0};
    tg_module_parameters(net, &params);
    tg_adam_opts ao = tg_adam_defaults();
    ao.lr = 0.01;
    tg_optimizer *adam = tg_adam_new(&params, ao);
    tg_loader *loader = tg_loader_new(x, y, 32, true, false, &rng);
    double first = 0, last = 0;
    for (int e = 0; e < epochs; e++) {
        tg_tensor *xb, *yb;
        double epoch_loss = 0;
        tg_loader_reset(loader);
        while (tg_loader_next(loader, &xb, &yb)) {
            tg_optimizer_zero_grad(adam);
            tg_tensor *loss = tg_mse_loss(tg_module_forward(net, xb), yb, TG_REDUCE_MEAN);
            epoch_loss += tg_item(loss) / (double)tg_loader_num_batches(loader);
            tg_backward(loss);
            tg_optimizer_step(adam);
            tg_tape_reset();
        }
        if (e == 0) first = epoch_loss;
        last = epoch_loss;
    }
    printf("swish network fitting sin(3x): training MSE %.3g after %d epochs (first epoch %.3g)\n",
           last, epochs, first);

    tg_loader_free(loader), tg_optimizer_free(adam), tg_param_list_free(&params);
    tg_module_free(net), tg_free(x), tg_free(y), tg_free(in[0]), tg_free(in[1]);
    bool ok = gc.ok && ggc.ok && last < 1e-3;
    printf("%s: custom_op: swish gradcheck %s, second order %s, training MSE %.3g (need < 1e-3)\n",
           ok ? "PASS" : "FAIL", gc.ok ? "ok" : "FAILED", ggc.ok ? "ok" : "FAILED", last);
    return ok ? 0 : 1;
}
