/* Multinomial logistic regression on Fashion-MNIST.
 *
 *   p(y | x) = softmax(W x + b)_y,   loss = -log p(y | x)   (fused, stable cross-entropy)
 *   SGD, learning rate 0.001, one example at a time, W and b start at zero.
 *
 * Each epoch goes into logistic_regression_metrics.csv (the test accuracy as an extra column);
 * the curves into logistic_regression_{loss,accuracy}.png; a progress bar shows on a terminal. */
#include "common.h"

int main(int argc, char **argv)
{
    ex_check_args(argc, argv,
                  "[--epochs 20] [--lr 0.001] [--seed 42] [--data DIR] "
                  "[--out DIR] [--fast]");
    bool fast = ex_flag(argc, argv, "--fast");
    int epochs = ex_count(argc, argv, "--epochs", fast ? 1 : 20);
    double lr = ex_positive(argc, argv, "--lr", 0.001);
    tg_rng rng;
    tg_rng_seed(&rng, ex_seed(argc, argv));
    tg_mnist data = ex_load_mnist(argc, argv, fast, 10000, 1000);

    tg_module *model = tg_linear_new(784, 10, true, tg_init_zeros(), &rng);
    tg_param_list params = {0};
    tg_module_parameters(model, &params);
    tg_optimizer *sgd = tg_sgd_new(&params, (tg_sgd_opts){.lr = lr});
    tg_loader *loader = tg_loader_new(data.train.x, data.train.y, 1, true, false, &rng);

    /* The loop itself (zero_grad, forward, cross-entropy, backward, step) is ex_train_epoch in
     * common.h; perceptron.c writes its loop out in full. */
    double final = ex_fit_classifier(argc, argv, "logistic_regression", "Logistic regression",
                                     model, sgd, loader, &data, epochs);
    ex_release(loader, sgd, &params, model, &data);
    if (!fast) return 0;
    return ex_verdict(final > 0.7, "logistic regression: validation accuracy %.4f after %d "
                      "epoch(s) on 10000 examples (need > 0.7)", final, epochs);
}
