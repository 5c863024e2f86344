/* A quadratic-activation network ŷ = vᵀ(Wx)² (W [K, D], v [K]) is a linear model in disguise:
 *
 *   ŷ = Σ_k v_k (w_kᵀx)² = xᵀ M x  with  M = Wᵀ Diag(v) W
 *     = c · φ(x)  with  φ(x) = (x_i², 2·x_i·x_j for i < j),  c = vech(M) = (M_ij) for i <= j,
 *
 * so the squared loss has a closed-form minimum over c (least squares, LAPACKE_dgels). With
 * K >= D the net can reach it (any symmetric M is Wᵀ Diag(v) W: its eigendecomposition); with
 * K < D only matrices of rank <= K are reachable and the loss stays above the closed form.
 * Data: x ~ N(0, I_D), y = xᵀ A x + 0.1·noise with a random full-rank A. */
#include <lapacke.h>
#include <math.h>
#include "common.h"

enum { N = 1000, MAX_D = 12, MAX_P = MAX_D * (MAX_D + 1) / 2, MAX_K = 4096 };

/* Full-batch Adam on the squared loss; logs (step, loss) into log (in memory) and fills
 * c = vech(Wᵀ Diag(v) W). */
static void train(int k, int d, tg_tensor *x, tg_tensor *y, int steps, tg_metrics_log *log,
                  double *c, tg_rng *rng)
{
    tg_tensor *w = tg_rand_normal(TG_F64, TG_SHAPE(k, d), 0, 1 / sqrt(d), rng);
    tg_tensor *v = tg_rand_normal(TG_F64, TG_SHAPE(k, 1), 0, 1, rng);
    tg_param_list params = {0};
    tg_param_list_add(&params, "W", tg_set_requires_grad(w, true));
    tg_param_list_add(&params, "v", tg_set_requires_grad(v, true));
    tg_adam_opts ao = tg_adam_defaults();
    ao.lr = 0.01;
    tg_optimizer *adam = tg_adam_new(&params, ao);
    for (int s = 0; s < steps; s++, tg_tape_reset()) {
        tg_optimizer_zero_grad(adam);
        tg_tensor *yhat = tg_matmul(tg_square(tg_linear(x, w, NULL)), v);   /* (Wx)²·v */
        tg_tensor *loss = tg_mse_loss(yhat, y, TG_REDUCE_MEAN);
        tg_metrics_log_write(log, (double[]){s + 1, tg_item(loss)});
        tg_backward(loss);
        tg_optimizer_step(adam);
    }
    for (int i = 0, q = 0; i < d; i++)
        for (int j = i; j < d; j++, q++) {
            c[q] = 0;
            for (int r = 0; r < k; r++)
                c[q] += tg_get_flat(w, r * d + i) * tg_get_flat(v, r) * tg_get_flat(w, r * d + j);
        }
    tg_optimizer_free(adam), tg_param_list_free(&params), tg_free(w), tg_free(v);
}

int main(int argc, char **argv)
{
    ex_check_args(argc, argv,
                  "[--dim 5] [--k 2·dim] [--steps 3000] [--seed 42] [--out DIR] "
                  "[--fast]");
    bool fast = ex_flag(argc, argv, "--fast");
    int d = ex_count_max(argc, argv, "--dim", 5, MAX_D), p = d * (d + 1) / 2;
    int steps = ex_count(argc, argv, "--steps", fast ? 1000 : 3000);
    int ks[2] = {ex_count_max(argc, argv, "--k", 2 * d, MAX_K), d / 2 > 0 ? d / 2 : 1};
    tg_rng rng;
    tg_rng_seed(&rng, ex_seed(argc, argv, "--seed"));

    tg_tensor *a = tg_rand_normal(TG_F64, TG_SHAPE(d, d), 0, 1, &rng);
    tg_tensor *x = tg_rand_normal(TG_F64, TG_SHAPE(N, d), 0, 1, &rng);
    tg_tensor *y = tg_zeros(TG_F64, TG_SHAPE(N, 1));
    static double phi[N * MAX_P], c_hat[N];
    for (int n = 0; n < N; n++) {
        const double *xn = (const double *)x->data + n * d, *an = a->data;
        double t = 0.1 * tg_rng_normal(&rng);
        for (int i = 0, q = 0; i < d; i++)
            for (int j = i; j < d; j++, q++) {
                phi[n * p + q] = (i == j ? 1 : 2) * xn[i] * xn[j];
                t += (an[i * d + j] + an[j * d + i]) / 2 * phi[n * p + q];   /* xᵀ sym(A) x */
            }
        tg_set_flat(y, n, c_hat[n] = t);
    }
    if (LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', N, p, 1, phi, p, c_hat, 1) != 0) abort();
    double closed = 0;   /* dgels leaves the residuals' coordinates in rows p..N-1 */
    for (int n = p; n < N; n++) closed += c_hat[n] * c_hat[n] / N;

    double c[2][MAX_P], worst[2] = {0, 0}, final[2];
    tg_chart chart = {.title = "Quadratic network vs closed form", .xlabel = "Adam step",
                      .ylabel = "training MSE", .log_y = true, .n_series = 3};
    char names[2][32];
    tg_metrics_log *curve[2];   /* in memory: (step, loss) of each run */
    for (int r = 0; r < 2; r++) {
        tg_metrics_log_open(&curve[r], NULL, NULL, 2, (const char *[]){"step", "mse"});
        train(ks[r], d, x, y, steps, curve[r], c[r], &rng);
        final[r] = tg_metrics_log_column(curve[r], "mse")[steps - 1];
        for (int q = 0; q < p; q++) worst[r] = fmax(worst[r], fabs(c[r][q] - c_hat[q]));
        printf("K = %2d, D = %d: trained loss %.6f, closed-form loss %.6f, max |c_Θ - ĉ| = %.2g\n",
               ks[r], d, final[r], closed, worst[r]);
        snprintf(names[r], sizeof names[r], "network, K = %d", ks[r]);
        chart.series[r] = (tg_series){.name = names[r], .n = steps,
                                      .x = tg_metrics_log_column(curve[r], "step"),
                                      .y = tg_metrics_log_column(curve[r], "mse")};
    }
    printf("\n  i  j   closed-form ĉ   c_Θ (K = %d)   c_Θ (K = %d)\n", ks[0], ks[1]);
    for (int i = 0, q = 0; i < d; i++)
        for (int j = i; j < d; j++, q++)
            printf("%3d%3d %14.4f %14.4f %14.4f\n", i + 1, j + 1, c_hat[q], c[0][q], c[1][q]);
    double ends[2] = {1, steps}, flat[2] = {closed, closed};   /* a level line needs two points */
    chart.series[2] = (tg_series){.name = "closed form", .x = ends, .y = flat, .n = 2,
                                  .dashed = true};
    if (tg_chart_write_png(&chart, ex_path(argc, argv, "quadratic_net_loss.png"), 800, 500))
        fprintf(stderr, "warning: %s\n", tg_status_message());

    double big = final[0], small = final[1];
    tg_metrics_log_close(curve[0]), tg_metrics_log_close(curve[1]);
    tg_free(a), tg_free(x), tg_free(y);
    return !fast ? 0 : ex_verdict(closed <= fmin(big, small) + 1e-12 && big <= closed * 1.001 &&
                                  worst[0] < 1e-3 && small > 2 * closed, "quadratic_net: closed "
                                  "form %.6f; K = %d reaches it (%.6f, c within %.1g); K = %d "
                                  "stays above (%.4f)", closed, ks[0], big, worst[0], ks[1], small);
}
