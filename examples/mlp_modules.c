/* An MLP with dropout built from nn modules, trained with SGD + momentum on a 3-arm spiral made
 * here (each epoch is one full-batch step). Usage: mlp_modules [--fast]. Prints PASS, or FAIL and
 * exits 1, at 90% train accuracy. */
#include <math.h>
#include <string.h>
#include <tapegrad.h>

int main(int argc, char **argv)
{
    int fast = argc > 1 && !strcmp(argv[1], "--fast"), n = 300, epochs = fast ? 150 : 400, ok;
    if (argc > 1 + fast) /* -h: the usage, exit 0; anything else: the usage, exit 2 */
        return fprintf(stderr, "usage: %s [--fast]\n", argv[0]), strcmp(argv[1], "-h") ? 2 : 0;
    tg_manual_seed(1); /* the global generator: initialisation, noise, dropout masks */
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(n, 2)), *y = tg_zeros(TG_I32, TG_SHAPE(n));
    for (int i = 0; i < n; i++) { /* arm c = i / 100: radius r, angle 4r + 2πc/3 + noise */
        double r = (i % 100 + 1) / 100.0, a = 4 * r + 2 * M_PI * (i / 100) / 3;
        a += 0.2 * tg_rng_normal(NULL);
        tg_set(x, (int64_t[]){i, 0}, r * sin(a)), tg_set(x, (int64_t[]){i, 1}, r * cos(a));
        tg_set_flat(y, i, i / 100);
    }
    tg_module *net = tg_feedforward_new(2, 3, 64, 2, "relu", 0.1, tg_init_pytorch(), NULL);
    tg_param_list params = {0};
    tg_module_parameters(net, &params);
    tg_optimizer *opt = tg_sgd_new(&params, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9});
    for (int epoch = 1; epoch <= epochs; epoch++) {
        tg_module_train(net, true);
        tg_optimizer_zero_grad(opt);
        tg_tensor *loss = tg_cross_entropy(tg_module_forward(net, x), y, TG_REDUCE_MEAN);
        tg_backward(loss);
        tg_optimizer_step(opt);
        tg_module_eval(net); /* accuracy without dropout, and without recording a tape */
        bool grad = tg_set_grad_enabled(false);
        tg_tensor *pred = tg_argmax(tg_module_forward(net, x), 1);
        ok = 0;
        for (int i = 0; i < n; i++) ok += tg_get_flat(pred, i) == tg_get_flat(y, i);
        if (epoch % (epochs / 10) == 0)
            printf("epoch %3d  loss %.4f  accuracy %.3f\n", epoch, tg_item(loss), ok / (double)n);
        tg_set_grad_enabled(grad);
        tg_tape_reset();
    }
    tg_optimizer_free(opt), tg_param_list_free(&params), tg_module_free(net);
    tg_free(x), tg_free(y);
    printf("%s: train accuracy %.3f (need >= 0.9)\n", ok >= 0.9 * n ? "PASS" : "FAIL",
           ok / (double)n);
    return ok < 0.9 * n;
}
