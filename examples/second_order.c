/* Second derivatives, numerically: the homework derivations checked with tg_grad(create_graph),
 * tg_jacobian and tg_hessian, then one use of them, Newton's method.
 *
 *   1. σ' = σ(1 - σ), and the binary logistic loss L(z) = log(1 + e^-z) with L'' = σ(z)(1 - σ(z)),
 *      over z in [-6, 6], against the closed forms; drawn as second_order_sigmoid.png.
 *   2. The softmax Jacobian against diag(s) - s sᵀ.
 *   3. The Hessian of the cross-entropy in the logits against diag(s) - s sᵀ, with its eigenvalues
 *      (LAPACK's dsyev): all >= 0, so the loss is convex in the logits. A counter-example,
 *      f(x) = Σ sin(x_i), has a negative eigenvalue.
 *   4. Newton's method, w <- w - H⁻¹∇L, on a small L2-regularised logistic regression, against
 *      gradient descent: the number of steps each needs to reach |∇L| < 1e-8.
 *
 * Usage: second_order [--out DIR] [--fast]   (writes DIR/second_order_sigmoid.png; default out/) */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <tapegrad.h>

enum { N_POINTS = 121, K = 5 };

/* ---- 1. σ' and L'' on a grid ------------------------------------------------------------------ */

static double sigmoid(double z) { return 1 / (1 + exp(-z)); }

/* Returns the largest error against the closed forms; fills the curves for the chart. */
static double sigmoid_derivatives(double *z, double *s, double *ds, double *d2l)
{
    tg_tensor *x = tg_set_requires_grad(tg_zeros(TG_F64, TG_SHAPE(N_POINTS)), true);
    tg_tensor *targets = tg_ones(TG_F64, TG_SHAPE(N_POINTS));
    for (int i = 0; i < N_POINTS; i++) tg_set_flat(x, i, z[i] = -6 + 0.1 * i);
    tg_tensor *ds_t, *dl, *d2l_t;
    /* elementwise functions: the gradient of the sum is the derivative at each point */
    tg_grad(tg_sum(tg_sigmoid(x)), NULL, 1, &x, &ds_t, false);
    tg_grad(tg_logistic_loss(x, targets, TG_REDUCE_SUM), NULL, 1, &x, &dl, true);
    tg_grad(tg_sum(dl), NULL, 1, &x, &d2l_t, false);
    double worst = 0;
    for (int i = 0; i < N_POINTS; i++) {
        s[i] = sigmoid(z[i]);
        ds[i] = tg_get_flat(ds_t, i);
        d2l[i] = tg_get_flat(d2l_t, i);
        worst = fmax(worst, fabs(ds[i] - s[i] * (1 - s[i])));
        worst = fmax(worst, fabs(tg_get_flat(dl, i) + sigmoid(-z[i]))); /* L' = -σ(-z) */
        worst = fmax(worst, fabs(d2l[i] - s[i] * (1 - s[i])));
    }
    tg_tape_reset();
    tg_free(x), tg_free(targets);
    return worst;
}

static void plot_sigmoid(const char *dir, const double *z, const double *s, const double *ds,
                         const double *d2l)
{
    char path[512];
    snprintf(path, sizeof path, "%s/second_order_sigmoid.png", dir);
    tg_chart c = {.title = "σ, σ' and the logistic loss's L'' (tapegrad, create_graph)",
                  .xlabel = "z", .ylabel = "value"};
    c.series[0] = (tg_series){.name = "σ(z)", .x = z, .y = s, .n = N_POINTS};
    c.series[1] = (tg_series){.name = "σ'(z)", .x = z, .y = ds, .n = N_POINTS};
    c.series[2] = (tg_series){.name = "L''(z) of log(1+e^-z)", .x = z, .y = d2l, .n = N_POINTS,
                              .dashed = true};
    c.n_series = 3;
    if (tg_chart_write_png(&c, path, 800, 500) != TG_OK)
        fprintf(stderr, "second_order: %s\n", tg_status_message());
    else
        printf("  wrote %s\n", path);
}

/* ---- 2. and 3. softmax and cross-entropy --------------------------------------------------- */

static tg_tensor *softmax_fn(tg_tensor *z, void *ctx)
{
    (void)ctx;
    return tg_softmax(z, 0);
}

static tg_tensor *cross_entropy_fn(tg_tensor *z, void *ctx)
{
    tg_tensor *label = tg_op_output(TG_I32, TG_SHAPE(1));
    tg_set_flat(label, 0, *(const int *)ctx);
    return tg_cross_entropy(tg_reshape(z, TG_SHAPE(1, K)), label, TG_REDUCE_MEAN);
}

static tg_tensor *sum_sin_fn(tg_tensor *x, void *ctx)
{
    (void)ctx;
    return tg_sum(tg_sin(x));
}

/* |M - (diag(s) - s sᵀ)| at its largest, for a K x K matrix M. */
static double distance_to_softmax_form(const tg_tensor *m, const double *s)
{
    double worst = 0;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            worst = fmax(worst, fabs(tg_get_flat(m, i * K + j) - ((i == j) * s[i] - s[i] * s[j])));
    return worst;
}

/* The eigenvalues of a symmetric K x K matrix, ascending. */
static int eigenvalues(const tg_tensor *m, double *w)
{
    double a[K * K];
    for (int i = 0; i < K * K; i++) a[i] = tg_get_flat(m, i);
    return (int)LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', K, a, K, w);
}

static void print_values(const char *label, const double *w)
{
    printf("  %s", label);
    for (int i = 0; i < K; i++) printf(" %+.3e", w[i]);
    printf("\n");
}

/* ---- 4. Newton vs gradient descent --------------------------------------------------------- */

enum { N_SAMPLES = 200, D = 4 };

typedef struct {
    tg_tensor *x, *y;   /* [N, D] features (last column 1), [N] labels in {-1, +1} */
    double lambda;
} logreg;

/* L(w) = mean_i log(1 + exp(-y_i x_iᵀw)) + λ/2 |w|² */
static tg_tensor *logreg_loss(tg_tensor *w, void *ctx)
{
    const logreg *p = ctx;
    tg_tensor *z = tg_matmul(p->x, tg_reshape(w, TG_SHAPE(D, 1)));
    tg_tensor *fit = tg_logistic_loss(z, p->y, TG_REDUCE_MEAN);
    return tg_add(fit, tg_mul_scalar(tg_sum(tg_square(w)), p->lambda / 2));
}

static logreg make_problem(tg_rng *rng)
{
    const double truth[D] = {1.5, -2, 0.5, 0.3};
    logreg p = {tg_rand_normal(TG_F64, TG_SHAPE(N_SAMPLES, D), 0, 1, rng),
                tg_zeros(TG_F64, TG_SHAPE(N_SAMPLES)), 1e-3};
    for (int i = 0; i < N_SAMPLES; i++) {
        double z = 0;
        tg_set_flat(p.x, i * D + D - 1, 1);
        for (int j = 0; j < D; j++) z += truth[j] * tg_get_flat(p.x, i * D + j);
        tg_set_flat(p.y, i, tg_rng_uniform(rng) < sigmoid(z) ? 1 : -1);
    }
    return p;
}

static double gradient_norm(const tg_tensor *g)
{
    double n = 0;
    for (int j = 0; j < D; j++) n += tg_get_flat(g, j) * tg_get_flat(g, j);
    return sqrt(n);
}

/* Steps until |∇L| < tol (or max_steps); newton chooses the update. */
static int minimise(logreg *p, bool newton, double lr, int max_steps, double tol, double *loss)
{
    tg_tensor *w = tg_set_requires_grad(tg_zeros(TG_F64, TG_SHAPE(D)), true);
    int step = 0;
    for (;; step++) {
        tg_tensor *g, *l = logreg_loss(w, p);
        tg_grad(l, NULL, 1, &w, &g, false);
        *loss = tg_item(l);
        double norm = gradient_norm(g), d[D];
        for (int j = 0; j < D; j++) d[j] = tg_get_flat(g, j);
        tg_tape_reset();
        if (norm < tol || step == max_steps) break;
        if (newton) { /* d = H⁻¹ g by Cholesky: H is positive definite (convex + λ > 0) */
            tg_tensor *h = tg_hessian(logreg_loss, w, p);
            double a[D * D];
            for (int i = 0; i < D * D; i++) a[i] = tg_get_flat(h, i);
            tg_free(h);
            if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', D, 1, a, D, d, 1) != 0) break;
        }
        for (int j = 0; j < D; j++)
            tg_set_flat(w, j, tg_get_flat(w, j) - (newton ? 1 : lr) * d[j]);
    }
    tg_free(w);
    return step;
}

/* ---- main ----------------------------------------------------------------------------------- */

static int parse(int argc, char **argv, const char **out, bool *fast)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--fast")) *fast = true;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) *out = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return printf("usage: second_order [--out DIR] [--fast]\n"), -1;
        else
            return fprintf(stderr, "usage: second_order [--out DIR] [--fast]\n"
                                   "second_order: unexpected argument '%s'\n", argv[i]), 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *out = "out";
    bool fast = false;
    int rc = parse(argc, argv, &out, &fast);
    if (rc) return rc < 0 ? 0 : rc;
    mkdir(out, 0777);
    tg_rng rng;
    tg_rng_seed(&rng, 42);

    printf("1. sigma' = sigma(1 - sigma) and the logistic loss's L'' on [-6, 6]\n");
    double z[N_POINTS], s[N_POINTS], ds[N_POINTS], d2l[N_POINTS];
    double err1 = sigmoid_derivatives(z, s, ds, d2l);
    printf("  largest difference from the closed forms: %.2e\n", err1);
    plot_sigmoid(out, z, s, ds, d2l);

    printf("2. softmax Jacobian against diag(s) - s s^T\n");
    tg_tensor *logits = tg_set_requires_grad(tg_rand_normal(TG_F64, TG_SHAPE(K), 0, 2, &rng), true);
    tg_tensor *sm = softmax_fn(logits, NULL);
    double sv[K];
    for (int i = 0; i < K; i++) sv[i] = tg_get_flat(sm, i);
    tg_tape_reset();
    tg_tensor *jac = tg_jacobian(softmax_fn, logits, NULL);
    double err2 = distance_to_softmax_form(jac, sv);
    printf("  largest difference: %.2e\n", err2);

    printf("3. cross-entropy Hessian in the logits against diag(s) - s s^T, and its eigenvalues\n");
    int label = 2;
    tg_tensor *hess = tg_hessian(cross_entropy_fn, logits, &label);
    double err3 = distance_to_softmax_form(hess, sv), w_ce[K], w_sin[K];
    printf("  largest difference: %.2e\n", err3);
    int info = eigenvalues(hess, w_ce);
    print_values("eigenvalues:", w_ce);
    tg_tensor *x_sin = tg_rand_uniform(TG_F64, TG_SHAPE(K), 0.5, 2.5, &rng);
    tg_set_requires_grad(x_sin, true);
    tg_tensor *hess_sin = tg_hessian(sum_sin_fn, x_sin, NULL);
    info |= eigenvalues(hess_sin, w_sin);
    print_values("sum(sin(x)) at x in (0.5, 2.5), eigenvalues:", w_sin);
    bool convex = info == 0 && w_ce[0] >= -1e-12, counter = info == 0 && w_sin[0] < 0;
    printf("  cross-entropy: %s; sum(sin(x)): %s\n", convex ? "convex (all >= 0)" : "NOT convex",
           counter ? "not convex (a negative eigenvalue)" : "no negative eigenvalue");

    printf("4. Newton's method vs gradient descent, logistic regression (N = %d, D = %d)\n",
           N_SAMPLES, D);
    logreg p = make_problem(&rng);
    double loss_newton, loss_gd;
    int max_gd = fast ? 2000 : 100000;
    int n_newton = minimise(&p, true, 0, 50, 1e-8, &loss_newton);
    int n_gd = minimise(&p, false, 1.0, max_gd, 1e-8, &loss_gd);
    printf("  Newton: %d steps (loss %.10f); gradient descent, lr 1: %d%s steps (loss %.10f)\n",
           n_newton, loss_newton, n_gd, n_gd == max_gd ? "+ (not converged)" : "", loss_gd);

    tg_free(logits), tg_free(jac), tg_free(hess), tg_free(x_sin), tg_free(hess_sin);
    tg_free(p.x), tg_free(p.y);
    bool ok = err1 < 1e-12 && err2 < 1e-12 && err3 < 1e-12 && convex && counter &&
              n_newton <= 10 && n_gd > 10 * n_newton;
    printf("%s: second_order: closed forms to %.1e, convex %s, counter-example %s, Newton %d "
           "steps vs %d\n", ok ? "PASS" : "FAIL", fmax(err1, fmax(err2, err3)),
           convex ? "yes" : "no", counter ? "yes" : "no", n_newton, n_gd);
    return ok ? 0 : 1;
}
