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

static double mse(tg_module *m, tg_tensor *x, tg_tensor *y)
{
    bool grad = tg_set_grad_enabled(false);
    double v = tg_item(tg_mse_loss(tg_module_forward(m, x), y, TG_REDUCE_MEAN));
    tg_tape_reset(), tg_set_grad_enabled(grad);
    return v;
}

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
    const char *csv = ex_str(argc, argv, "--csv", "examples/data/regression.csv");
    tg_rng rng;
    tg_rng_seed(&rng, ex_seed(argc, argv));
    if (ex_str(argc, argv, "--make-csv", NULL))
        return make_csv(ex_str(argc, argv, "--make-csv", NULL), ex_count(argc, argv, "--rows", 500),
                        &rng);
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
    tg_module *mlp = tg_sequential_new(3, tg_linear_new(D, 150, true, tg_init_pytorch(), &rng),
                                       tg_relu_new(),
                                       tg_linear_new(150, 1, true, tg_init_pytorch(), &rng));
    tg_param_list pl = {0}, pm = {0};
    tg_module_parameters(linear, &pl), tg_module_parameters(mlp, &pm);
    tg_optimizer *sgd_l = tg_sgd_new(&pl, (tg_sgd_opts){.lr = 0.02, .weight_decay = LAMBDA});
    tg_optimizer *sgd_m = tg_sgd_new(&pm, (tg_sgd_opts){.lr = 0.01});
    tg_loader *loader = tg_loader_new(x_train, y_train, BATCH, true, false, &rng);
    double dist[epochs], lin[epochs], net[epochs];
    for (int e = 0; e < epochs; e++) {
        tg_optimizer_step_decay(sgd_l, 0.02, e, 10, 0.5);   /* halve the step every 10 epochs */
        train_epoch(linear, sgd_l, loader), train_epoch(mlp, sgd_m, loader);
        tg_tensor *w = tg_linear_weight(linear), *b = tg_linear_bias(linear);
        double d2 = pow(tg_get_flat(b, 0) - theta[D], 2);
        for (int k = 0; k < D; k++) d2 += pow(tg_get_flat(w, k) - theta[k], 2);
        dist[e] = sqrt(d2), lin[e] = mse(linear, x_test, y_test), net[e] = mse(mlp, x_test, y_test);
        printf("epoch %3d  |θ - θ*| %.2e  test MSE: linear %.4f  MLP %.4f\n", e + 1, dist[e],
               lin[e], net[e]);
    }
    ex_plot(ex_path(argc, argv, "regression_ridge_distance.png"), "Linear regression vs ridge",
            "|θ - θ*|", true, 1, NULL, (const double *[]){dist}, epochs);
    ex_plot(ex_path(argc, argv, "regression_test_mse.png"), "Regression: test MSE", "MSE", false,
            2, (const char *[]){"linear", "MLP (150 ReLU)"}, (const double *[]){lin, net}, epochs);

    tg_loader_free(loader), tg_optimizer_free(sgd_l), tg_optimizer_free(sgd_m);
    tg_param_list_free(&pl), tg_param_list_free(&pm);
    tg_module_free(linear), tg_module_free(mlp);
    tg_free(x_train), tg_free(y_train), tg_free(x_test), tg_free(y_test);
    tg_free(x), tg_free(y);
    int last = epochs - 1;
    return !fast ? 0 : ex_verdict(dist[last] < 0.01 && net[last] < lin[last], "regression: "
                                  "|θ - θ*| = %.2e (need < 0.01), test MSE MLP %.4f < linear %.4f",
                                  dist[last], net[last], lin[last]);
}
