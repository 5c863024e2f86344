/* Regression from a CSV file: a linear model and a 150-ReLU regressor, SGD on the squared loss.
 *
 *   linear  ŷ = wᵀx + b,                   loss = mean (ŷ - y)² + (λ/2)(|w|² + b²)  (weight decay)
 *   MLP     ŷ = w2ᵀ relu(W1 x + b1) + b2,  loss = mean (ŷ - y)²
 *
 * The linear loss has a closed-form minimiser, ridge regression on X̃ = [X 1]:
 *   θ* = argmin |X̃θ - y|² + (λn/2)|θ|² = least squares of [X̃; sqrt(λn/2) I] θ ≈ [y; 0],
 * and |θ - θ*| is plotted per epoch. examples/data/regression.csv (500 rows) comes from
 * --make-csv: y = 1.5x1 - 2x2 + 0.5x3 + sin(2x4) + x5·x6 + 0.1·noise, x ~ U(-2, 2)^6. */
#include <lapacke.h>
#include <math.h>
#include "common.h"

enum { D = 6, N_TEST = 100, BATCH = 16 };
static const double LAMBDA = 0.01;

static int make_csv(const char *path, int rows, tg_rng *rng)
{
    FILE *f = fopen(path, "w");
    if (!f) return perror(path), 2;
    fprintf(f, "y,x1,x2,x3,x4,x5,x6\n");
    for (double x[D]; rows-- > 0; fprintf(f, "\n")) {
        for (int k = 0; k < D; k++) x[k] = 4 * tg_rng_uniform(rng) - 2;
        fprintf(f, "%.6f", 1.5 * x[0] - 2 * x[1] + 0.5 * x[2] + sin(2 * x[3]) + x[4] * x[5] +
                               0.1 * tg_rng_normal(rng));
        for (int k = 0; k < D; k++) fprintf(f, ",%.6f", x[k]);
    }
    return fclose(f) ? (perror(path), 2) : 0;
}

/* θ* = (w, b) of the ridge problem above, through LAPACKE_dgels. */
static void ridge(const float *x, const float *y, int n, double theta[D + 1])
{
    int m = n + D + 1;
    double *a = calloc((size_t)m * (D + 1), sizeof *a), *b = calloc((size_t)m, sizeof *b);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < D; k++) a[i * (D + 1) + k] = x[i * D + k];
        a[i * (D + 1) + D] = 1, b[i] = y[i];
    }
    for (int k = 0; k <= D; k++) a[(n + k) * (D + 1) + k] = sqrt(LAMBDA * n / 2);
    if (LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', m, D + 1, 1, a, D + 1, b, 1) != 0) abort();
    memcpy(theta, b, (D + 1) * sizeof *b);
    free(a), free(b);
}

/* One epoch of mini-batch SGD; the loader is shared by both models, so each epoch starts afresh. */
static void train_epoch(tg_module *m, tg_optimizer *opt, tg_loader *loader)
{
    tg_tensor *xb, *yb;
    for (tg_loader_reset(loader); tg_loader_next(loader, &xb, &yb); tg_tape_reset()) {
        tg_optimizer_zero_grad(opt);
        tg_backward(tg_mse_loss(tg_module_forward(m, xb), yb, TG_REDUCE_MEAN));
        tg_optimizer_step(opt);
    }
}

int main(int argc, char **argv)
{
    ex_check_args(argc, argv,
                  "[--csv FILE] [--epochs 100] [--seed 42] [--out DIR] [--fast]\n"
                  "   or: regression [--make-csv PATH] [--rows 500] [--seed 42]");
    bool fast = ex_flag(argc, argv, "--fast");
    int epochs = ex_count(argc, argv, "--epochs", fast ? 40 : 100);
    int rows = ex_count(argc, argv, "--rows", 500);
    const char *csv = ex_str(argc, argv, "--csv", "examples/data/regression.csv");
    tg_rng rng;
    tg_rng_seed(&rng, ex_seed(argc, argv, "--seed"));
    if (ex_str(argc, argv, "--make-csv", NULL))
        return make_csv(ex_str(argc, argv, "--make-csv", NULL), rows, &rng);
    tg_tensor *x, *y;
    if (tg_csv_load(csv, &(tg_csv_opts){.target = "y"}, &x, &y) != TG_OK)
        return fprintf(stderr, "%s: %s\n", argv[0], tg_status_message()), 2;
    int n = (int)x->shape[0] - N_TEST;
    if (x->shape[1] != D || n < BATCH)
        return fprintf(stderr, "%s: %s: need %d features and > %d rows\n", argv[0], csv, D,
                       N_TEST + BATCH), 2;
    float *xs = x->data, *ys = y->data;  /* train: the first n rows, test: the rest (borrowed) */
    tg_tensor *x_train = tg_wrap(TG_F32, TG_SHAPE(n, D), xs);
    tg_tensor *y_train = tg_wrap(TG_F32, TG_SHAPE(n, 1), ys);
    tg_tensor *x_test = tg_wrap(TG_F32, TG_SHAPE(N_TEST, D), xs + n * D);
    tg_tensor *y_test = tg_wrap(TG_F32, TG_SHAPE(N_TEST, 1), ys + n);
    double theta[D + 1];
    ridge(xs, ys, n, theta);

    tg_module *linear = tg_linear_new(D, 1, true, tg_init_zeros(), &rng);
    tg_module *fc1 = tg_linear_new(D, 150, true, tg_init_pytorch(), &rng);   /* draws fc1 first */
    tg_module *fc2 = tg_linear_new(150, 1, true, tg_init_pytorch(), &rng);
    tg_module *mlp = tg_sequential_new(3, fc1, tg_relu_new(), fc2);
    tg_param_list pl = {0}, pm = {0};
    tg_module_parameters(linear, &pl), tg_module_parameters(mlp, &pm);
    tg_optimizer *sgd_l = tg_sgd_new(&pl, (tg_sgd_opts){.lr = 0.02, .weight_decay = LAMBDA});
    tg_optimizer *sgd_m = tg_sgd_new(&pm, (tg_sgd_opts){.lr = 0.01});
    tg_loader *loader = tg_loader_new(x_train, y_train, BATCH, true, false, &rng);
    tg_metrics_log *log = ex_metrics_log(argc, argv, "regression", 4, (const char *[]){
        "epoch", "ridge_distance", "test_mse_linear", "test_mse_mlp"});
    double dist = NAN, lin = NAN, net = NAN;
    for (int e = 0; e < epochs; e++) {
        tg_optimizer_step_decay(sgd_l, 0.02, e, 10, 0.5);   /* halve the step every 10 epochs */
        train_epoch(linear, sgd_l, loader), train_epoch(mlp, sgd_m, loader);
        tg_tensor *w = tg_linear_weight(linear), *b = tg_linear_bias(linear);
        double d2 = pow(tg_get_flat(b, 0) - theta[D], 2);
        for (int k = 0; k < D; k++) d2 += pow(tg_get_flat(w, k) - theta[k], 2);
        dist = sqrt(d2);
        lin = tg_evaluate_regressor(linear, x_test, y_test, 0).loss;
        net = tg_evaluate_regressor(mlp, x_test, y_test, 0).loss;
        printf("epoch %3d  |θ - θ*| %.2e  test MSE: linear %.4f  MLP %.4f\n", e + 1, dist, lin,
               net);
        ex_log(log, (double[]){e + 1, dist, lin, net});
    }
    ex_plot_log(argc, argv, "regression_ridge_distance.png", log, "Linear regression vs ridge",
                "|θ - θ*|", true, 1, (const char *[]){"ridge_distance"}, NULL);
    ex_plot_log(argc, argv, "regression_test_mse.png", log, "Regression: test MSE", "MSE", false,
                2, (const char *[]){"test_mse_linear", "test_mse_mlp"},
                (const char *[]){"linear", "MLP (150 ReLU)"});
    tg_metrics_log_close(log);

    tg_loader_free(loader), tg_optimizer_free(sgd_l), tg_optimizer_free(sgd_m);
    tg_param_list_free(&pl), tg_param_list_free(&pm);
    tg_module_free(linear), tg_module_free(mlp);
    tg_free(x_train), tg_free(y_train), tg_free(x_test), tg_free(y_test);
    tg_free(x), tg_free(y);
    return !fast ? 0 : ex_verdict(dist < 0.01 && net < lin, "regression: |θ - θ*| = %.2e (need "
                                  "< 0.01), test MSE MLP %.4f < linear %.4f", dist, net, lin);
}
