/* A ReLU network with 4 hidden units that computes max(x1, x2), first by hand, then learned.
 *
 *   max(a, b) = (a + b)/2 + |a - b|/2
 *             = ½relu(a + b) - ½relu(-a - b) + ½relu(a - b) + ½relu(b - a)
 *
 * so W1 = [[1, 1], [-1, -1], [1, -1], [-1, 1]], w2 = [½, -½, ½, ½], zero biases. The same
 * architecture is then trained from a random initialisation (Adam, squared loss) on points of
 * [-1, 1]²; the best linear predictor of max there has mean squared error 1/18 ≈ 0.056. */
#include <math.h>
#include "common.h"

static tg_module *relu_net(tg_init init, tg_rng *rng)
{
    tg_module *hidden = tg_linear_new(2, 4, true, init, rng);   /* first: the draws' order */
    tg_module *out = tg_linear_new(4, 1, true, init, rng);
    return tg_sequential_new(3, hidden, tg_relu_new(), out);
}

/* Mean squared and largest absolute error of the network against max on n random points. */
static void max_errors(tg_module *net, int64_t n, double range, tg_rng *rng, double *mse,
                       double *worst)
{
    tg_tensor *x = tg_rand_uniform(TG_F64, TG_SHAPE(n, 2), -range, range, rng);
    bool grad = tg_set_grad_enabled(false);
    tg_tensor *y = tg_module_forward(net, x);
    *mse = *worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(tg_get_flat(y, i) - fmax(tg_get_flat(x, 2 * i),
                                                  tg_get_flat(x, 2 * i + 1)));
        *mse += e * e / (double)n;
        *worst = fmax(*worst, e);
    }
    tg_tape_reset();
    tg_set_grad_enabled(grad);
    tg_free(x);
}

int main(int argc, char **argv)
{
    ex_check_args(argc, argv, "[--epochs 200] [--seed 42] [--out DIR] [--fast]");
    bool fast = ex_flag(argc, argv, "--fast");
    int epochs = ex_count(argc, argv, "--epochs", fast ? 30 : 200);
    tg_rng rng;
    tg_rng_seed(&rng, ex_seed(argc, argv, "--seed"));

    static const double w1[] = {1, 1, -1, -1, 1, -1, -1, 1}, w2[] = {0.5, -0.5, 0.5, 0.5};
    tg_module *hand = relu_net(tg_init_f64(tg_init_zeros()), &rng);
    tg_linear_set(tg_module_child(hand, "0"), w1, NULL);
    tg_linear_set(tg_module_child(hand, "2"), w2, NULL);
    double mse, hand_worst;
    max_errors(hand, 10000, 1000, &rng, &mse, &hand_worst);
    printf("hand-set network, 10,000 points of [-1000, 1000]^2: largest error %.3g\n", hand_worst);

    /* Learn it: 1,000 fixed training points, mini-batches of 16, Adam. */
    tg_module *net = relu_net(tg_init_f64(tg_init_pytorch()), &rng);
    tg_tensor *x = tg_rand_uniform(TG_F64, TG_SHAPE(1000, 2), -1, 1, &rng);
    tg_tensor *y = tg_zeros(TG_F64, TG_SHAPE(1000, 1));
    for (int64_t i = 0; i < 1000; i++)
        tg_set_flat(y, i, fmax(tg_get_flat(x, 2 * i), tg_get_flat(x, 2 * i + 1)));
    tg_param_list params = {0};
    tg_module_parameters(net, &params);
    tg_adam_opts ao = tg_adam_defaults();
    ao.lr = 0.01;
    tg_optimizer *adam = tg_adam_new(&params, ao);
    tg_loader *loader = tg_loader_new(x, y, 16, true, false, &rng);
    tg_metrics_log *log = ex_metrics_log(argc, argv, "relu_max", 2,
                                         (const char *[]){"epoch", "train_mse"});
    for (int epoch = 1; epoch <= epochs; epoch++) {
        tg_tensor *xb, *yb;
        double mse_sum = 0;
        while (tg_loader_next(loader, &xb, &yb)) {
            tg_optimizer_zero_grad(adam);
            tg_tensor *loss = tg_mse_loss(tg_module_forward(net, xb), yb, TG_REDUCE_MEAN);
            mse_sum += tg_item(loss);
            tg_backward(loss);
            tg_optimizer_step(adam);
            tg_tape_reset();
        }
        ex_log(log, (double[]){epoch, mse_sum / (double)tg_loader_num_batches(loader)});
    }
    double learned_mse, learned_worst;
    max_errors(net, 10000, 1, &rng, &learned_mse, &learned_worst);
    printf("trained network (%d epochs): test MSE %.3g, largest error %.3g on [-1, 1]^2\n",
           epochs, learned_mse, learned_worst);
    tg_module_print(net, stdout);
    for (int k = 0; k < params.n; k++) tg_print(params.tensors[k], stdout);
    ex_plot_log(argc, argv, "relu_max_loss.png", log, "Learning max(x1, x2) with 4 ReLUs",
                "training MSE", true, 1, (const char *[]){"train_mse"}, NULL);
    tg_metrics_log_close(log);

    tg_loader_free(loader);
    tg_optimizer_free(adam);
    tg_param_list_free(&params);
    tg_free(x);
    tg_free(y);
    tg_module_free(net);
    tg_module_free(hand);
    if (!fast) return 0;
    return ex_verdict(hand_worst <= 1e-6 && learned_mse < 0.005,
                      "relu_max: hand-set error %.3g (need <= 1e-6), learned test MSE %.3g "
                      "(need < 0.005; linear: 0.056)", hand_worst, learned_mse);
}
