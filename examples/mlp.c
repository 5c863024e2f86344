/* A one-hidden-layer perceptron (MLP) on Fashion-MNIST.
 *
 *   h = relu(W1 x + b1)   (200 units),   scores = W2 h + b2,   loss = cross-entropy
 *   weights ~ N(0.1, 0.1²), biases 0; SGD, learning rate 0.001, one example at a time.
 *
 * Each epoch goes into mlp_metrics.csv (the test accuracy as an extra column); a progress
 * bar shows on a terminal; the curves go into mlp_loss.png and mlp_accuracy.png. */
#include "common.h"

int main(int argc, char **argv)
{
    ex_check_args(argc, argv,
                  "[--epochs 20] [--hidden 200] [--lr 0.001] [--seed 42] "
                  "[--data DIR] [--out DIR] [--fast]");
    bool fast = ex_flag(argc, argv, "--fast");
    int epochs = ex_count(argc, argv, "--epochs", fast ? 1 : 20);
    int hidden = ex_count(argc, argv, "--hidden", 200);
    double lr = ex_positive(argc, argv, "--lr", 0.001);
    tg_rng rng;
    tg_rng_seed(&rng, ex_seed(argc, argv));
    tg_mnist data = ex_load_mnist(argc, argv, fast, 10000, 1000);

    tg_init init = tg_init_normal(0.1, 0.1);
    tg_module *model = tg_sequential_new(3, tg_linear_new(784, hidden, true, init, &rng),
                                         tg_relu_new(),
                                         tg_linear_new(hidden, 10, true, init, &rng));
    tg_param_list params = {0};
    tg_module_parameters(model, &params);
    tg_optimizer *sgd = tg_sgd_new(&params, (tg_sgd_opts){.lr = lr});
    tg_loader *loader = tg_loader_new(data.train.x, data.train.y, 1, true, false, &rng);

    /* The loop itself (zero_grad, forward, cross-entropy, backward, step) is ex_train_epoch in
     * common.h; perceptron.c writes its loop out in full. */
    double final = ex_fit_classifier(argc, argv, "mlp", "MLP", model, sgd, loader,
                                     &data, epochs);
    ex_release(loader, sgd, &params, model, &data);
    if (!fast) return 0;
    return ex_verdict(final > 0.5, "MLP: validation accuracy %.4f after %d epoch(s) on 10000 "
                      "examples (need > 0.5)", final, epochs);
}
