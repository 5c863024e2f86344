/* A one-hidden-layer perceptron (MLP) on Fashion-MNIST.
 *
 *   h = relu(W1 x + b1)   (200 units),   scores = W2 h + b2,   loss = cross-entropy
 *   weights ~ N(0.1, 0.1²), biases 0; SGD, learning rate 0.001, one example at a time.
 *
 * Each epoch goes into mlp_metrics.csv (the test accuracy as an extra column); a progress
 * bar shows on a terminal.
 *
 *   mlp [--epochs 20] [--hidden 200] [--lr 0.001] [--seed 42] [--data DIR] [--out DIR] [--fast] */
#include "common.h"

int main(int argc, char **argv)
{
    bool fast = ex_flag(argc, argv, "--fast");
    int epochs = ex_count(argc, argv, "--epochs", fast ? 1 : 20);
    int hidden = ex_count(argc, argv, "--hidden", 200);
    double lr = ex_num(argc, argv, "--lr", 0.001);
    tg_rng rng;
    tg_rng_seed(&rng, (uint64_t)ex_num(argc, argv, "--seed", 42));
    tg_mnist data = ex_load_mnist(argc, argv, fast, 10000, 1000);

    tg_init init = tg_init_normal(0.1, 0.1);
    tg_module *model = tg_sequential_new(3, tg_linear_new(784, hidden, true, init, &rng),
                                         tg_relu_new(),
                                         tg_linear_new(hidden, 10, true, init, &rng));
    tg_param_list params = {0};
    tg_module_parameters(model, &params);
    tg_optimizer *sgd = tg_sgd_new(&params, (tg_sgd_opts){.lr = lr});
    tg_loader *loader = tg_loader_new(data.train.x, data.train.y, 1, true, false, &rng);

    tg_metrics_log *log = ex_metrics_log(argc, argv, "mlp", 1, (const char *[]){"test_acc"});
    double train_loss[epochs], val_acc[epochs], test_acc[epochs], t0 = ex_seconds();
    for (int epoch = 0; epoch < epochs; epoch++) {
        tg_tensor *x, *y;
        double total = 0, t_epoch = ex_seconds();
        tg_progress bar;   /* on a terminal only: batches, running loss, speed, time left */
        tg_progress_begin(&bar, stderr, TG_PROGRESS_AUTO, "epoch", epoch + 1, epochs,
                          tg_loader_num_batches(loader));
        tg_loader_reset(loader);
        while (tg_loader_next(loader, &x, &y)) {
            tg_optimizer_zero_grad(sgd);
            tg_tensor *loss = tg_cross_entropy(tg_module_forward(model, x), y, TG_REDUCE_MEAN);
            double l = tg_item(loss);
            total += l;
            tg_progress_step(&bar, 1, l);
            tg_backward(loss);
            tg_optimizer_step(sgd);
            tg_tape_reset();
        }
        tg_progress_end(&bar);
        train_loss[epoch] = total / (double)tg_dataset_size(&data.train);
        val_acc[epoch] = ex_accuracy(model, &data.val);
        test_acc[epoch] = ex_accuracy(model, &data.test);
        printf("epoch %2d  train loss %.4f  val acc %.4f  test acc %.4f  (%.1f s)\n", epoch + 1,
               train_loss[epoch], val_acc[epoch], test_acc[epoch], ex_seconds() - t0);
        ex_log_epoch(log, (tg_epoch_metrics){epoch + 1, train_loss[epoch], NAN, val_acc[epoch],
                                             ex_seconds() - t_epoch, &test_acc[epoch]});
    }
    tg_metrics_log_close(log);
    ex_plot(ex_path(argc, argv, "mlp_loss.png"), "MLP: loss", "training cross-entropy", false, 1,
            NULL, (const double *[]){train_loss}, epochs);
    ex_plot(ex_path(argc, argv, "mlp_accuracy.png"), "MLP", "accuracy", false, 2,
            (const char *[]){"validation", "test"}, (const double *[]){val_acc, test_acc}, epochs);

    double final = val_acc[epochs - 1];
    tg_loader_free(loader);
    tg_optimizer_free(sgd);
    tg_param_list_free(&params);
    tg_module_free(model);
    tg_mnist_free(&data);
    if (!fast) return 0;
    return ex_verdict(final > 0.5, "MLP: validation accuracy %.4f after %d epoch(s) on 10000 "
                      "examples (need > 0.5)", final, epochs);
}
