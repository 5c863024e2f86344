/* A user-defined differentiable op, Swish (SiLU): y = x·σ(x), written against the op API of
 * autograd/internal.h, gradient-checked, then used as the activation of a small regressor.
 *
 *   forward   y = x·σ(x)
 *   backward  dy/dx = σ(x) + x·σ(x)(1 - σ(x)) = σ(x)·(1 + x·(1 - σ(x))) */
#include <tgmath.h>
#include "common.h"
#include "autograd/internal.h" /* the op API: tg__new_intermediate, tg__record, tg__grad */

/* ---- the op: one definition stamped for float and double (<tgmath.h> picks exp) ---------- */
#define SWISH_KERNELS(T, S)                                                                  \
    static void swish_fwd_##S(int64_t n, const T *x, T *y)                                   \
    {                                                                                        \
        for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1 + exp(-x[i])); /* x·σ(x) */        \
    }                                                                                        \
    static void swish_bwd_##S(int64_t n, const T *x, const T *g, T *gx)                      \
    {                                                                                        \
        for (int64_t i = 0; i < n; i++) {                                                   \
            T s = 1 / (1 + exp(-x[i]));                                                      \
            gx[i] += g[i] * s * (1 + x[i] * (1 - s));                                        \
        }                                                                                    \
    }
SWISH_KERNELS(float, f32)
SWISH_KERNELS(double, f64)

/* gx += g · σ(x)(1 + x(1 - σ(x))) */
static void swish_backward(tg_node *node)
{
    tg_tensor *x = node->in[0];
    if (x->dtype == TG_F64) swish_bwd_f64(x->numel, x->data, node->out->grad->data, tg__grad(x));
    else swish_bwd_f32(x->numel, x->data, node->out->grad->data, tg__grad(x));
}

static tg_tensor *swish(tg_tensor *x)
{
    tg__check_float(x, "swish");
    tg_tensor *y = tg__new_intermediate(x->dtype, x->ndim, x->shape);
    if (x->dtype == TG_F64) swish_fwd_f64(x->numel, x->data, y->data);
    else swish_fwd_f32(x->numel, x->data, y->data);
    tg__record("swish", swish_backward, y, 1, &x); /* backward reads x: nothing else to save */
    return y;
}

/* ---- gradient check of f(x, W) = Σ swish(x Wᵀ)², in float64 ------------------------------- */
static tg_tensor *f(tg_tensor **in, int n, void *ctx)
{
    return tg_sum(tg_square(swish(tg_linear(in[0], in[1], NULL))));
}

/* ---- a model that uses it: ŷ = w2ᵀ swish(W1 x + b1) + b2, fitting sin(3x) on [-1, 1] ---- */
static tg_tensor *swish_forward(tg_module *self, tg_tensor *x) { return swish(x); }

int main(int argc, char **argv)
{
    ex_check_args(argc, argv, "[--epochs 300] [--seed 42] [--out DIR] [--fast]");
    bool fast = ex_flag(argc, argv, "--fast");
    int epochs = ex_count(argc, argv, "--epochs", fast ? 150 : 300);
    tg_rng rng;
    tg_rng_seed(&rng, ex_seed(argc, argv));

    tg_tensor *in[2] = {tg_rand_normal(TG_F64, TG_SHAPE(5, 3), 0, 2, &rng),
                        tg_rand_normal(TG_F64, TG_SHAPE(4, 3), 0, 1, &rng)};
    for (int k = 0; k < 2; k++) tg_set_requires_grad(in[k], true);
    tg_gradcheck_result gc = tg_gradcheck(f, in, 2, NULL, NULL);
    printf("gradcheck of Σ swish(x Wᵀ)²: %s on %d elements (worst: analytic %.8g, numeric %.8g)\n",
           gc.ok ? "ok" : "FAILED", gc.checked, gc.analytic, gc.numeric);

    tg_module *act = tg_module_new(sizeof(tg_module), "Swish", swish_forward);
    tg_module *net = tg_sequential_new(3, tg_linear_new(1, 32, true, tg_init_pytorch(), &rng), act,
                                       tg_linear_new(32, 1, true, tg_init_pytorch(), &rng));
    tg_tensor *x = tg_rand_uniform(TG_F32, TG_SHAPE(256, 1), -1, 1, &rng);
    tg_tensor *y = tg_zeros(TG_F32, TG_SHAPE(256, 1));
    for (int i = 0; i < 256; i++) tg_set_flat(y, i, sin(3 * tg_get_flat(x, i)));
    tg_param_list params = {0};
    tg_module_parameters(net, &params);
    tg_adam_opts ao = tg_adam_defaults();
    ao.lr = 0.01;
    tg_optimizer *adam = tg_adam_new(&params, ao);
    tg_loader *loader = tg_loader_new(x, y, 32, true, false, &rng);
    double curve[epochs];
    for (int e = 0; e < epochs; e++) {
        tg_tensor *xb, *yb;
        curve[e] = 0;
        tg_loader_reset(loader);
        while (tg_loader_next(loader, &xb, &yb)) {
            tg_optimizer_zero_grad(adam);
            tg_tensor *loss = tg_mse_loss(tg_module_forward(net, xb), yb, TG_REDUCE_MEAN);
            curve[e] += tg_item(loss) / (double)tg_loader_num_batches(loader);
            tg_backward(loss);
            tg_optimizer_step(adam);
            tg_tape_reset();
        }
    }
    printf("swish network fitting sin(3x): training MSE %.3g after %d epochs (first epoch %.3g)\n",
           curve[epochs - 1], epochs, curve[0]);
    ex_plot(ex_path(argc, argv, "custom_op_loss.png"), "Swish network fitting sin(3x)",
            "training MSE", true, 1, NULL, (const double *[]){curve}, epochs);

    double last = curve[epochs - 1];
    tg_loader_free(loader), tg_optimizer_free(adam), tg_param_list_free(&params);
    tg_module_free(net), tg_free(x), tg_free(y), tg_free(in[0]), tg_free(in[1]);
    if (!fast) return 0;
    return ex_verdict(gc.ok && last < 1e-3, "custom_op: swish gradcheck %s, training MSE %.3g "
                      "(need < 1e-3)", gc.ok ? "ok" : "FAILED", last);
}
