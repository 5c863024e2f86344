/* LeNet-5 on Fashion-MNIST: the first convolutional network.
 *
 *   1x28x28 -> conv 5x5, padding 2 -> 6x28x28 -> ReLU -> max pool 2 -> 6x14x14
 *           -> conv 5x5 -> 16x10x10 -> ReLU -> max pool 2 -> 16x5x5 -> flatten (400)
 *           -> 120 -> ReLU -> 84 -> ReLU -> 10 scores;  loss = cross-entropy
 *   PyTorch's default initialisation, Adam (lr 0.001), batch 64, 10 epochs.
 *
 * The training loop is written out below. bench/lenet_torch.py is the same protocol in PyTorch. */
#include "common.h"

/* One layer per statement: the order of a call's arguments is unspecified in C, and each layer
 * draws its initial weights from rng, so the layers are made (and drawn) in a fixed order. */
static tg_module *lenet5(tg_rng *rng)
{
    tg_init init = tg_init_pytorch();
    tg_pool2d_opts pool = {.kernel = {2, 2}};
    tg_module *net = tg_sequential_new(0);
    tg_sequential_append(net, tg_conv2d_new(1, 6, 5, &(tg_conv2d_opts){.padding = {2, 2}}, true,
                                            init, rng));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_max_pool2d_new(&pool));
    tg_sequential_append(net, tg_conv2d_new(6, 16, 5, NULL, true, init, rng));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_max_pool2d_new(&pool));
    tg_sequential_append(net, tg_flatten_new(1, -1));
    tg_sequential_append(net, tg_linear_new(16 * 5 * 5, 120, true, init, rng));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_linear_new(120, 84, true, init, rng));
    tg_sequential_append(net, tg_relu_new());
    tg_sequential_append(net, tg_linear_new(84, 10, true, init, rng));
    return net;
}

/* Accuracy in eval mode without recording, 1000 images at a time (the activations of a whole
 * test set at once would take hundreds of megabytes). */
static double accuracy(tg_module *model, const tg_dataset *d)
{
    bool grad = tg_set_grad_enabled(false);
    tg_module_eval(model);
    int64_t n = tg_dataset_size(d), hits = 0;
    const int32_t *labels = d->y->data;
    for (int64_t at = 0; at < n; at += 1000) {
        int64_t len = n - at < 1000 ? n - at : 1000;
        tg_tensor *pred = tg_argmax(tg_module_forward(model, tg_narrow(d->x, 0, at, len)), 1);
        const int32_t *p = pred->data;
        for (int64_t i = 0; i < len; i++) hits += p[i] == labels[at + i];
        tg_tape_reset();
    }
    tg_module_train(model, true);
    tg_set_grad_enabled(grad);
    return n ? (double)hits / (double)n : 0;
}

int main(int argc, char **argv)
{
    ex_check_args(argc, argv, "[--epochs 10] [--lr 0.001] [--batch 64] [--seed 42] [--data DIR] "
                              "[--fast]");
    bool fast = ex_flag(argc, argv, "--fast");
    int epochs = ex_count(argc, argv, "--epochs", 10);
    int batch = ex_count_max(argc, argv, "--batch", 64, 60000);
    double lr = ex_positive(argc, argv, "--lr", 0.001);
    tg_rng rng;
    tg_rng_seed(&rng, ex_seed(argc, argv, "--seed"));
    tg_mnist data = ex_load_mnist(argc, argv, fast, 4096, 1000);
    if (fast) epochs = 1;
    tg_dataset_as_images(&data.train, 1, 28, 28);
    tg_dataset_as_images(&data.val, 1, 28, 28);
    tg_dataset_as_images(&data.test, 1, 28, 28);

    tg_module *model = lenet5(&rng);
    tg_param_list params = {0};
    tg_module_parameters(model, &params);
    tg_adam_opts adam = tg_adam_defaults();
    adam.lr = lr;
    tg_optimizer *opt = tg_adam_new(&params, adam);
    tg_loader *loader = tg_loader_new(data.train.x, data.train.y, batch, true, false, &rng);
    printf("LeNet-5, %lld parameters, %lld training images, Adam lr %g, batch %d\n",
           (long long)tg_module_num_parameters(model), (long long)tg_dataset_size(&data.train),
           lr, batch);

    double first_losses = 0, last_losses = 0;   /* fast mode: the mean of the first/last 8 */
    int64_t step = 0, steps_per_epoch = tg_loader_num_batches(loader);
    for (int epoch = 1; epoch <= epochs; epoch++) {
        double t0 = ex_seconds(), total = 0;
        tg_tensor *x, *y;
        tg_loader_reset(loader);
        while (tg_loader_next(loader, &x, &y)) {
            tg_optimizer_zero_grad(opt);
            tg_tensor *loss = tg_cross_entropy(tg_module_forward(model, x), y, TG_REDUCE_MEAN);
            double l = tg_item(loss);
            tg_backward(loss);
            tg_optimizer_step(opt);
            tg_tape_reset();
            total += l * (double)y->numel;
            if (step < 8) first_losses += l / 8;
            if (step >= steps_per_epoch * epochs - 8) last_losses += l / 8;
            step++;
        }
        double secs = ex_seconds() - t0;
        printf("epoch %d  train loss %.4f  val accuracy %.4f  (%.1f s)\n", epoch,
               total / (double)tg_dataset_size(&data.train), accuracy(model, &data.val), secs);
    }
    double test = accuracy(model, &data.test);
    printf("test accuracy %.4f\n", test);

    tg_loader_free(loader);
    tg_optimizer_free(opt);
    tg_param_list_free(&params);
    tg_module_free(model);
    tg_mnist_free(&data);
    if (!fast) return 0;
    return ex_verdict(last_losses < 0.7 * first_losses && test > 0.5,
                      "LeNet-5: loss %.3f -> %.3f over %lld steps, test accuracy %.3f on 1000 "
                      "images (need a 30%% drop and > 0.5; chance is 0.1)", first_losses,
                      last_losses, (long long)step, test);
}
