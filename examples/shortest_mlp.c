/* The shortest complete Fashion-MNIST program: load, a 100-ReLU MLP, SGD, 3 epochs, test accuracy.
 * Data from $TG_DATA_DIR or /usr/share/datasets/fashion-mnist; exits 1 below 80% test accuracy. */
#include <stdio.h>
#include <tapegrad.h>

int main(void)
{
    tg_mnist data;
    if (tg_mnist_load(NULL, &data) != TG_OK) return fprintf(stderr, "%s\n", tg_status_message()), 2;
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    tg_module *model = tg_feedforward_new(784, 10, 100, 1, "relu", 0, tg_init_pytorch(), &rng);
    tg_param_list params = {0};
    tg_module_parameters(model, &params);
    tg_optimizer *sgd = tg_sgd_new(&params, (tg_sgd_opts){.lr = 0.1});
    tg_loader *batches = tg_loader_new(data.train.x, data.train.y, 64, true, false, &rng);
    tg_eval test;
    for (int epoch = 1; epoch <= 3; epoch++) {
        for (tg_tensor *x, *y; tg_loader_next(batches, &x, &y); tg_tape_reset()) {
            tg_optimizer_zero_grad(sgd);
            tg_backward(tg_cross_entropy(tg_module_forward(model, x), y, TG_REDUCE_MEAN));
            tg_optimizer_step(sgd);
        }
        test = tg_evaluate_classifier(model, data.test.x, data.test.y, 0);
        printf("epoch %d: test accuracy %.4f\n", epoch, test.accuracy);
    }
    tg_loader_free(batches), tg_optimizer_free(sgd), tg_param_list_free(&params);
    tg_module_free(model), tg_mnist_free(&data);
    return test.accuracy < 0.8;
}
