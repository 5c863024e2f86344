/* Multinomial logistic regression on Fashion-MNIST.
 *
 *   p(y | x) = softmax(W x + b)_y,   loss = -log p(y | x)   (fused, stable cross-entropy)
 *   SGD, learning rate 0.001, one example at a time, W and b start at zero.
 *
 * Each epoch goes into logistic_regression_metrics.csv; the curves into
 * logistic_regression_{loss,accuracy}.png; a progress bar shows on a terminal. */
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
    tg_rng_seed(&rng, ex_seed(argc, argv, "--seed"));
    tg_mnist data = ex_load_mnist(argc, argv, fast, 10000, 1000);

    tg_module *model = tg_linear_new(784, 10, true, tg_init_zeros(), &rng);
    tg_param_list params = {0};
    tg_module_parameters(model, &params);
    tg_optimizer *sgd = tg_sgd_new(&params, (tg_sgd_opts){.lr = lr});
    tg_loader *loader = tg_loader_new(data.train.x, data.train.y, 1, true, false, &rng);
    tg_metrics_log *log = ex_metrics_log(argc, argv, "logistic_regression", 5, (const char *[]){
        "epoch", "train_loss", "valid_acc", "test_acc", "seconds"});

    for (int epoch = 1; epoch <= epochs; epoch++) {
        double t0 = ex_seconds(), total = 0;
        tg_progress bar;   /* on a terminal only: batches, running loss, speed, time left */
        tg_progress_begin(&bar, stderr, TG_PROGRESS_AUTO, "epoch", epoch, epochs,
                          tg_loader_num_batches(loader));
        tg_tensor *x, *y;
        while (tg_loader_next(loader, &x, &y)) {   /* false once, at the end of the epoch */
            tg_optimizer_zero_grad(sgd);
            tg_tensor *loss = tg_cross_entropy(tg_module_forward(model, x), y, TG_REDUCE_MEAN);
            tg_backward(loss);
            tg_optimizer_step(sgd);
            total += tg_item(loss);
            tg_progress_step(&bar, 1, tg_item(loss));
            tg_tape_reset();
        }
        tg_progress_end(&bar);
        tg_eval valid = tg_evaluate_classifier(model, data.val.x, data.val.y, 0);
        tg_eval test = tg_evaluate_classifier(model, data.test.x, data.test.y, 0);
        double train_loss = total / (double)tg_loader_num_batches(loader);
        printf("epoch %2d  train loss %.4f  val acc %.4f  test acc %.4f  (%.1f s)\n", epoch,
               train_loss, valid.accuracy, test.accuracy, ex_seconds() - t0);
        ex_log(log, (double[]){epoch, train_loss, valid.accuracy, test.accuracy,
                               ex_seconds() - t0});
    }
    ex_plot_log(argc, argv, "logistic_regression_loss.png", log, "Logistic regression: loss",
            "training cross-entropy", false, 1, (const char *[]){"train_loss"}, NULL);
    ex_plot_log(argc, argv, "logistic_regression_accuracy.png", log, "Logistic regression",
            "accuracy", false, 2, (const char *[]){"valid_acc", "test_acc"},
            (const char *[]){"validation", "test"});

    double final = tg_metrics_log_column(log, "valid_acc")[epochs - 1];
    tg_metrics_log_close(log);
    tg_loader_free(loader), tg_optimizer_free(sgd), tg_param_list_free(&params);
    tg_module_free(model), tg_mnist_free(&data);
    if (!fast) return 0;
    return ex_verdict(final > 0.7, "logistic regression: validation accuracy %.4f after %d "
                      "epoch(s) on 10000 examples (need > 0.7)", final, epochs);
}
