/* The multiclass perceptron on Fashion-MNIST, as an engine model.
 *
 *   scores s = W x + b,  prediction ŷ = argmax_j s_j
 *   loss   L = max_j s_j - s_y          (multiclass hinge with margin 0)
 *   step   W -= 1 · ∂L/∂W               (SGD, learning rate 1, one example at a time)
 *
 * On a mistake ∂L/∂s = e_ŷ - e_y, so the step is exactly the classic update w_y += x, w_ŷ -= x
 * (b_y += 1, b_ŷ -= 1: the bias is a constant feature 1); on a correct example L = 0 and nothing
 * moves. tests/test_examples_math.c proves the equality bit for bit.
 *
 * Each epoch goes into perceptron_metrics.csv (train_loss is the mean hinge loss, next to the
 * mistakes and the accuracies); a progress bar shows on a terminal. */
#include "common.h"

int main(int argc, char **argv)
{
    ex_check_args(argc, argv, "[--epochs 20] [--seed 42] [--data DIR] [--out DIR] [--fast]");
    bool fast = ex_flag(argc, argv, "--fast");
    int epochs = ex_count(argc, argv, "--epochs", fast ? 1 : 20);
    tg_rng rng;
    tg_rng_seed(&rng, ex_seed(argc, argv, "--seed"));
    tg_mnist data = ex_load_mnist(argc, argv, fast, 2000, 1000);

    tg_module *model = tg_linear_new(784, 10, true, tg_init_zeros(), &rng);
    tg_param_list params = {0};
    tg_module_parameters(model, &params);
    tg_optimizer *sgd = tg_sgd_new(&params, (tg_sgd_opts){.lr = 1});
    tg_loader *loader = tg_loader_new(data.train.x, data.train.y, 1, true, false, &rng);
    tg_metrics_log *log = ex_metrics_log(argc, argv, "perceptron", 6, (const char *[]){
        "epoch", "train_loss", "mistakes", "valid_acc", "test_acc", "seconds"});

    for (int epoch = 1; epoch <= epochs; epoch++) {
        tg_tensor *x, *y;
        double mistakes = 0, hinge = 0, t0 = ex_seconds();
        tg_progress bar;   /* on a terminal only; its "loss" is the mean hinge loss so far */
        tg_progress_begin(&bar, stderr, TG_PROGRESS_AUTO, "epoch", epoch, epochs,
                          tg_loader_num_batches(loader));
        while (tg_loader_next(loader, &x, &y)) {
            tg_optimizer_zero_grad(sgd);
            tg_tensor *scores = tg_module_forward(model, x);
            tg_tensor *loss = tg_multiclass_hinge(scores, y, 0, TG_REDUCE_SUM);
            mistakes += tg_get_flat(tg_argmax(scores, 1), 0) != tg_get_flat(y, 0);
            hinge += tg_item(loss);
            tg_progress_step(&bar, 1, tg_item(loss));
            tg_backward(loss);
            tg_optimizer_step(sgd);
            tg_tape_reset();
        }
        tg_progress_end(&bar);
        tg_eval valid = tg_evaluate_classifier(model, data.val.x, data.val.y, 0);
        tg_eval test = tg_evaluate_classifier(model, data.test.x, data.test.y, 0);
        printf("epoch %2d  mistakes %5.0f  val acc %.4f  test acc %.4f  (%.1f s)\n", epoch,
               mistakes, valid.accuracy, test.accuracy, ex_seconds() - t0);
        double mean_hinge = hinge / (double)tg_dataset_size(&data.train);
        ex_log(log, (double[]){epoch, mean_hinge, mistakes, valid.accuracy, test.accuracy,
                               ex_seconds() - t0});
    }
    ex_plot_log(argc, argv, "perceptron_accuracy.png", log, "Perceptron on Fashion-MNIST",
                "accuracy", false, 2, (const char *[]){"valid_acc", "test_acc"},
                (const char *[]){"validation", "test"});

    double final = tg_metrics_log_column(log, "valid_acc")[epochs - 1];
    tg_metrics_log_close(log);
    tg_loader_free(loader), tg_optimizer_free(sgd), tg_param_list_free(&params);
    tg_module_free(model), tg_mnist_free(&data);
    if (!fast) return 0;
    return ex_verdict(final > 0.6, "perceptron: validation accuracy %.4f after %d epoch(s) on "
                      "2000 examples (need > 0.6)", final, epochs);
}
