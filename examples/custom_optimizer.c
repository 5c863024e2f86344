/* A user-defined optimizer, Lion (Chen et al. 2023, "Symbolic Discovery of Optimization
 * Algorithms"), written against <tapegrad.h> alone, then used to train a small classifier.
 *
 *   c = β1·m + (1-β1)·g          the direction: only its sign is used
 *   p = p·(1 - lr·wd) - lr·sign(c)
 *   m = β2·m + (1-β2)·g          one state tensor, "exp_avg" (as in the lion-pytorch package)
 *
 * All an optimizer author writes is a tg_optimizer_kind: a name, the settings struct, the state
 * it keeps and one update per parameter. The library loops over parameters, keeps step counts
 * and parameter groups, and saves the state in checkpoints.
 *
 *   custom_optimizer [--fast] [--epochs N] [--seed S] [--out DIR (unused: writes nothing)]
 * exits 0 when the checks pass. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tapegrad.h>

/* ---- the optimizer ------------------------------------------------------------------------ */
typedef struct {
    double lr, beta1, beta2, weight_decay;
} lion_opts;

static int lion_state_names(const void *settings, const char **names)
{
    (void)settings; /* the count does not depend on the settings */
    names[0] = "exp_avg";
    return 1;
}

static bool lion_validate(const void *settings, char *why, size_t len)
{
    const lion_opts *o = settings;
    if (o->beta1 >= 0 && o->beta1 <= 1 && o->beta2 >= 0 && o->beta2 <= 1) return true;
    snprintf(why, len, "betas must be in [0, 1] (got %g, %g)", o->beta1, o->beta2);
    return false;
}

static void lion_describe(const void *settings, char *buf, size_t len)
{
    const lion_opts *o = settings;
    snprintf(buf, len, "beta1=%.17g beta2=%.17g weight_decay=%.17g", o->beta1, o->beta2,
             o->weight_decay);
}

/* One definition for float and double parameters (each is updated in its own dtype). */
#define LION_KERNEL(T, NAME)                                                                     \
    static void NAME(T *p, const T *g, T *m, int64_t n, const lion_opts *o, double lr,          \
                     double wd)                                                                  \
    {                                                                                            \
        const T b1 = (T)o->beta1, b2 = (T)o->beta2, step = (T)lr, keep = (T)(1 - lr * wd);      \
        for (int64_t i = 0; i < n; i++) {                                                        \
            T c = b1 * m[i] + (1 - b1) * g[i];                                                   \
            p[i] = p[i] * keep - step * (T)((c > 0) - (c < 0));                                  \
            m[i] = b2 * m[i] + (1 - b2) * g[i];                                                  \
        }                                                                                        \
    }
LION_KERNEL(float, lion_f32)
LION_KERNEL(double, lion_f64)

static void lion_update(const tg_optim_update *u)
{
    tg_tensor *p = u->param, *m = u->state[0];
    if (p->dtype == TG_F32)
        lion_f32(p->data, u->grad->data, m->data, p->numel, u->settings, u->lr, u->weight_decay);
    else
        lion_f64(p->data, u->grad->data, m->data, p->numel, u->settings, u->lr, u->weight_decay);
}

static const tg_optimizer_kind lion_kind = {
    .name = "lion",
    .settings_size = sizeof(lion_opts),
    .lr_offset = offsetof(lion_opts, lr),
    .weight_decay_offset = offsetof(lion_opts, weight_decay),
    .state_names = lion_state_names,
    .validate = lion_validate,
    .describe = lion_describe,
    .update = lion_update,
};

static tg_optimizer *lion_new(const tg_param_list *params, lion_opts opts)
{
    return tg_optimizer_new(&lion_kind, params, &opts);
}

/* ---- checks ---------------------------------------------------------------------------------- */
static int failures;

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

/* Two steps on one float64 parameter against the rule written out by hand. */
static void check_rule(void)
{
    double p0[3] = {0.5, -1.0, 2.0}, g1[3] = {0.3, -0.2, 0.0}, g2[3] = {-0.4, -0.1, 0.5};
    tg_tensor *w = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(3), p0), true);
    tg_param_list ps = {0};
    tg_param_list_add(&ps, "w", w);
    lion_opts o = {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.99, .weight_decay = 0.5};
    tg_optimizer *opt = lion_new(&ps, o);
    w->grad = tg_from_data(TG_F64, TG_SHAPE(3), g1);
    tg_optimizer_step(opt);
    double m[3], want[3];
    for (int i = 0; i < 3; i++) {
        double c = 0.1 * g1[i]; /* m starts at 0 */
        want[i] = p0[i] * (1 - 0.05) - 0.1 * ((c > 0) - (c < 0));
        m[i] = 0.01 * g1[i];
    }
    for (int i = 0; i < 3; i++) check(tg_get_flat(w, i) == want[i], "Lion step 1");
    for (int i = 0; i < 3; i++) tg_set_flat(w->grad, i, g2[i]);
    tg_optimizer_step(opt);
    for (int i = 0; i < 3; i++) {
        double c = 0.9 * m[i] + 0.1 * g2[i];
        want[i] = want[i] * (1 - 0.05) - 0.1 * ((c > 0) - (c < 0));
    }
    for (int i = 0; i < 3; i++) check(fabs(tg_get_flat(w, i) - want[i]) < 1e-15, "Lion step 2");
    tg_optimizer_free(opt);
    tg_param_list_free(&ps);
    tg_free(w);
}

/* ---- training: two interleaved half-moons, MLP 2-32-2 ------------------------------------- */
static void make_moons(int n, tg_rng *rng, tg_tensor **x, tg_tensor **y)
{
    const double pi = 3.14159265358979323846;
    *x = tg_zeros(TG_F32, TG_SHAPE(n, 2));
    *y = tg_zeros(TG_I32, TG_SHAPE(n));
    for (int i = 0; i < n; i++) {
        int label = i % 2;
        double t = pi * tg_rng_uniform(rng);
        double px = label ? 1 - cos(t) : cos(t), py = label ? 0.5 - sin(t) : sin(t);
        tg_set_flat(*x, 2 * i, px + 0.1 * tg_rng_normal(rng));
        tg_set_flat(*x, 2 * i + 1, py + 0.1 * tg_rng_normal(rng));
        tg_set_flat(*y, i, label);
    }
}

static double accuracy(tg_module *net, tg_tensor *x, tg_tensor *y)
{
    tg_module_eval(net);
    tg_tensor *pred = tg_argmax(tg_module_forward(net, x), 1);
    int64_t right = 0;
    for (int64_t i = 0; i < y->numel; i++) right += tg_get_flat(pred, i) == tg_get_flat(y, i);
    tg_tape_reset();
    tg_module_train(net, true);
    return (double)right / (double)y->numel;
}

static long flag_value(int argc, char **argv, int *i)
{
    char *end;
    long v = *i + 1 < argc ? strtol(argv[*i + 1], &end, 10) : -1;
    if (*i + 1 >= argc || *end || v < 1 || v > 100000) {
        fprintf(stderr, "custom_optimizer: %s needs an integer in [1, 100000]\n", argv[*i]);
        exit(2);
    }
    (*i)++;
    return v;
}

int main(int argc, char **argv)
{
    long epochs = 60, seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--fast")) epochs = 30;
        else if (!strcmp(argv[i], "--epochs")) epochs = flag_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--seed")) seed = flag_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) i++; /* writes nothing */
        else {
            fprintf(stderr, "usage: custom_optimizer [--fast] [--epochs N] [--seed S] "
                            "[--out DIR]\n");
            return 2;
        }
    }
    check_rule();

    tg_rng rng;
    tg_rng_seed(&rng, (uint64_t)seed);
    tg_tensor *x, *y;
    make_moons(512, &rng, &x, &y);
    /* One statement per layer: the layers draw their weights in this order on every compiler (the
     * order in which a call's arguments are evaluated is unspecified in C). */
    tg_module *fc1 = tg_linear_new(2, 32, true, tg_init_pytorch(), &rng);
    tg_module *fc2 = tg_linear_new(32, 2, true, tg_init_pytorch(), &rng);
    tg_module *net = tg_sequential_new(3, fc1, tg_tanh_new(), fc2);
    /* Weights decay, biases do not: two parameter groups. */
    tg_param_list weights = {0}, biases = {0}, all = {0};
    tg_module_parameters(net, &all);
    for (int i = 0; i < all.n; i++)
        tg_param_list_add(strstr(all.names[i], "bias") ? &biases : &weights, all.names[i],
                          all.tensors[i]);
    tg_optimizer *opt = lion_new(&weights, (lion_opts){.lr = 3e-3, .beta1 = 0.9, .beta2 = 0.99,
                                                       .weight_decay = 0.1});
    tg_optimizer_add_group(opt, &biases, 3e-3, 0.0);
    tg_loader *loader = tg_loader_new(x, y, 32, true, false, &rng);

    double first_loss = 0, loss = 0;
    for (long e = 0; e < epochs; e++) {
        tg_optimizer_step_lr(opt, e, 20, 0.5); /* halve both groups' lr every 20 epochs */
        double sum = 0;
        tg_tensor *xb, *yb;
        tg_loader_reset(loader);
        while (tg_loader_next(loader, &xb, &yb)) {
            tg_optimizer_zero_grad(opt);
            tg_tensor *l = tg_cross_entropy(tg_module_forward(net, xb), yb, TG_REDUCE_MEAN);
            sum += tg_item(l);
            tg_backward(l);
            tg_optimizer_step(opt);
            tg_tape_reset();
        }
        loss = sum / (double)tg_loader_num_batches(loader);
        if (e == 0) first_loss = loss;
    }
    double acc = accuracy(net, x, y);
    printf("Lion (%s), %ld epochs: loss %.4f -> %.4f, training accuracy %.4f\n",
           tg_optimizer_name(opt), epochs, first_loss, loss, acc);
    check(acc > 0.95, "training accuracy above 0.95");
    check(loss < 0.5 * first_loss, "loss at least halved");

    tg_loader_free(loader);
    tg_optimizer_free(opt);
    tg_param_list_free(&weights);
    tg_param_list_free(&biases);
    tg_param_list_free(&all);
    tg_module_free(net);
    tg_free(x);
    tg_free(y);
    if (failures) return 1;
    printf("PASS: custom_optimizer: Lion matches its rule, accuracy %.4f (need > 0.95)\n", acc);
    return 0;
}
