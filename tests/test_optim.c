/* Optimizers against values computed here from the published update rules (PyTorch's docs for
 * torch.optim.SGD, Adam, RMSprop and Adagrad), step by step in float64 and float32, and RMSprop and
 * Adagrad against numbers from torch itself (tests/torch/optim_fixtures.py); parameter groups. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <float.h>
#include <stdlib.h>

#include "tapegrad.h"
#include "tests/check.h"

#define N 3

/* |a - b| <= tol·(1 + |b|): relative for large values, absolute near zero. */
#define assert_close(a, b, tol)                                                                \
    do {                                                                                       \
        double a_ = (a), b_ = (b);                                                             \
        if (!(fabs(a_ - b_) <= (tol) * (1 + fabs(b_))))                                        \
            fail_msg("%s = %.17g, expected %.17g (tol %g)", #a, a_, b_, (double)(tol));         \
    } while (0)

static const double P0[N] = {0.5, -1.25, 2.0};
static const double G1[N] = {0.3, -0.7, 1.5};
static const double G2[N] = {-0.2, 0.4, 0.9};
static const double G3[N] = {0.05, 0.6, -1.1};

/* One parameter "w" with the values of P0 (exact in float32 too). */
typedef struct {
    tg_tensor *w;
    tg_param_list ps;
} fixture;

static fixture make_dtype(tg_dtype dtype)
{
    tg_tensor *w = tg_set_requires_grad(tg_zeros(dtype, TG_SHAPE(N)), true);
    for (int i = 0; i < N; i++) tg_set_flat(w, i, P0[i]);
    fixture f = {.w = w};
    tg_param_list_add(&f.ps, "w", f.w);
    return f;
}

static fixture make(void) { return make_dtype(TG_F64); }

static void drop(fixture *f)
{
    tg_param_list_free(&f->ps);
    tg_free(f->w);
}

/* Sets p's gradient as a backward would have left it. */
static void set_grad(tg_tensor *p, const double *g)
{
    tg_tensor *grad = tg_get_grad(p); /* settles a pending zero_grad, which would undo these */
    if (!grad) grad = p->grad = tg_zeros(p->dtype, p->ndim, p->shape);
    for (int64_t i = 0; i < p->numel; i++) tg_set_flat(grad, i, g[i]);
}

/* Against the rule computed in double: to 1e-14 for float64 parameters; float32 ones are
 * updated in float32 (gradients rounded to float too), so to 1e-5 relative, which still catches
 * a dropped term (weight decay moves p by ~5e-3 per step here) or a wrong coefficient. */
static void expect_param(const tg_tensor *p, const double *expected)
{
    double tol = p->dtype == TG_F32 ? 1e-5 : 1e-14;
    for (int i = 0; i < N; i++) assert_close(tg_get_flat(p, i), expected[i], tol);
}

/* ---- SGD ------------------------------------------------------------------------------------ */
static void test_sgd_plain(void **state)
{
    fixture f = make();
    tg_optimizer *o = tg_sgd_new(&f.ps, (tg_sgd_opts){.lr = 0.1});
    double p[N];
    memcpy(p, P0, sizeof p);
    set_grad(f.w, G1);
    tg_optimizer_step(o);
    for (int i = 0; i < N; i++) p[i] -= 0.1 * G1[i];
    expect_param(f.w, p);
    set_grad(f.w, G2);
    tg_optimizer_step(o);
    for (int i = 0; i < N; i++) p[i] -= 0.1 * G2[i];
    expect_param(f.w, p);
    assert_int_equal(tg_optimizer_steps(o), 2);
    assert_string_equal(tg_optimizer_name(o), "sgd");
    tg_optimizer_free(o);
    drop(&f);
}

/* buf_1 = g_1 (no dampening on the first step), buf_t = m·buf + (1 - d)·g_t, p -= lr·buf. */
static void run_momentum_dtype(tg_dtype dtype, double lr, double m, double d, double wd,
                               bool nesterov)
{
    fixture f = make_dtype(dtype);
    tg_optimizer *o = tg_sgd_new(&f.ps, (tg_sgd_opts){.lr = lr, .momentum = m, .dampening = d,
                                                      .weight_decay = wd, .nesterov = nesterov});
    const double *gs[3] = {G1, G2, G3};
    double p[N], buf[N] = {0};
    memcpy(p, P0, sizeof p);
    for (int t = 0; t < 3; t++) {
        set_grad(f.w, gs[t]);
        tg_optimizer_step(o);
        for (int i = 0; i < N; i++) {
            double g = gs[t][i] + wd * p[i];
            buf[i] = t == 0 ? g : m * buf[i] + (1 - d) * g;
            double step = nesterov ? g + m * buf[i] : buf[i];
            p[i] -= lr * step;
        }
        expect_param(f.w, p);
    }
    tg_optimizer_free(o);
    drop(&f);
}

/* Every SGD case runs for float64 and float32 parameters (models train in float32). */
static void run_momentum(double lr, double m, double d, double wd, bool nesterov)
{
    run_momentum_dtype(TG_F64, lr, m, d, wd, nesterov);
    run_momentum_dtype(TG_F32, lr, m, d, wd, nesterov);
}

static void test_sgd_momentum_first_and_second_step(void **state)
{
    /* Spelled out for the first two steps, then the loop above for three. */
    fixture f = make();
    tg_optimizer *o = tg_sgd_new(&f.ps, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9});
    set_grad(f.w, G1);
    tg_optimizer_step(o);
    expect_param(f.w, (double[]){0.5 - 0.1 * 0.3, -1.25 + 0.1 * 0.7, 2.0 - 0.1 * 1.5});
    set_grad(f.w, G2);
    tg_optimizer_step(o);
    double b0 = 0.9 * 0.3 - 0.2, b1 = 0.9 * -0.7 + 0.4, b2 = 0.9 * 1.5 + 0.9;
    expect_param(f.w, (double[]){0.5 - 0.1 * 0.3 - 0.1 * b0, -1.25 + 0.1 * 0.7 - 0.1 * b1,
                                 2.0 - 0.1 * 1.5 - 0.1 * b2});
    tg_optimizer_free(o);
    drop(&f);
    run_momentum(0.1, 0.9, 0, 0, false);
}

static void test_sgd_dampening(void **state) { run_momentum(0.05, 0.8, 0.3, 0, false); }
static void test_sgd_nesterov(void **state) { run_momentum(0.05, 0.9, 0, 0, true); }
static void test_sgd_weight_decay(void **state)
{
    run_momentum(0.1, 0, 0, 0.01, false);   /* plain SGD with L2 */
    run_momentum(0.1, 0.9, 0.1, 0.05, false);
    run_momentum(0.1, 0.9, 0, 0.05, true);
}

/* ---- Adam ------------------------------------------------------------------------------------- */
/* m_t = β1·m + (1-β1)·g;  v_t = β2·v + (1-β2)·g²;  m̂ = m_t/(1-β1^t);  v̂ = v_t/(1-β2^t);
 * p -= lr·m̂/(sqrt(v̂) + eps). Weight decay: g += wd·p, or (decoupled) p *= 1 - lr·wd first. */
static void run_adam_dtype(tg_dtype dtype, tg_adam_opts a)
{
    fixture f = make_dtype(dtype);
    tg_optimizer *o = tg_adam_new(&f.ps, a);
    const double *gs[3] = {G1, G2, G3};
    double p[N], m[N] = {0}, v[N] = {0};
    memcpy(p, P0, sizeof p);
    for (int t = 1; t <= 3; t++) {
        set_grad(f.w, gs[t - 1]);
        tg_optimizer_step(o);
        for (int i = 0; i < N; i++) {
            double g = gs[t - 1][i];
            if (a.decoupled) p[i] *= 1 - a.lr * a.weight_decay;
            else g += a.weight_decay * p[i];
            m[i] = a.beta1 * m[i] + (1 - a.beta1) * g;
            v[i] = a.beta2 * v[i] + (1 - a.beta2) * g * g;
            double mhat = m[i] / (1 - pow(a.beta1, t)), vhat = v[i] / (1 - pow(a.beta2, t));
            p[i] -= a.lr * mhat / (sqrt(vhat) + a.eps);
        }
        expect_param(f.w, p);
    }
    tg_optimizer_free(o);
    drop(&f);
}

static void run_adam(tg_adam_opts a)
{
    run_adam_dtype(TG_F64, a);
    run_adam_dtype(TG_F32, a);
}

static void test_adam_first_two_steps(void **state)
{
    /* First step by hand: m̂ = g and v̂ = g², so p moves by lr·g/(|g| + eps) ≈ lr·sign(g): the
     * bias correction is what makes the first step full-sized. */
    fixture f = make();
    tg_adam_opts a = tg_adam_defaults();
    assert_close(a.lr, 1e-3, 0);
    assert_close(a.beta1, 0.9, 0);
    assert_close(a.beta2, 0.999, 0);
    assert_close(a.eps, 1e-8, 0);
    a.lr = 0.01;
    tg_optimizer *o = tg_adam_new(&f.ps, a);
    set_grad(f.w, G1);
    tg_optimizer_step(o);
    double p1[N];
    for (int i = 0; i < N; i++) p1[i] = P0[i] - 0.01 * G1[i] / (fabs(G1[i]) + 1e-8);
    expect_param(f.w, p1);
    /* Second step: m = 0.09 g1 + 0.1 g2, v = 0.000999 g1² + 0.001 g2², corrections 0.19, 0.001999. */
    set_grad(f.w, G2);
    tg_optimizer_step(o);
    double p2[N];
    for (int i = 0; i < N; i++) {
        double m = 0.9 * 0.1 * G1[i] + 0.1 * G2[i];
        double v = 0.999 * 0.001 * G1[i] * G1[i] + 0.001 * G2[i] * G2[i];
        p2[i] = p1[i] - 0.01 * (m / 0.19) / (sqrt(v / (1 - 0.999 * 0.999)) + 1e-8);
    }
    expect_param(f.w, p2);
    tg_optimizer_free(o);
    drop(&f);
    run_adam(a);
}

static void test_adam_options(void **state)
{
    run_adam((tg_adam_opts){.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-3});
    run_adam((tg_adam_opts){.lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                            .weight_decay = 0.1});
    run_adam((tg_adam_opts){.lr = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                            .weight_decay = 0.1, .decoupled = true});
}

/* ---- RMSprop and Adagrad ------------------------------------------------------------------------ */
/* Printed by tests/torch/optim_fixtures.py: the parameter after each of three steps from P0 with
 * G1, G2, G3, in float64 and in float32 (torch computing in float32). */
/* torch 1.13.0a0 */
static const double TORCH_RMSPROP_DEFAULT_F64[3][N] = {{0.40000003333332224, -1.1500000142857123, 1.9000000066666662}, {0.45566305184059741, -1.1998019721265565, 1.8483602316801968}, {0.44181200244574403, -1.2598425372317519, 1.9019256408785472}};
static const double TORCH_RMSPROP_DEFAULT_F32[3][N] = {{0.400000036, -1.14999998, 1.89999998}, {0.455663055, -1.19980192, 1.84836018}, {0.441812009, -1.25984251, 1.90192556}};
static const double TORCH_RMSPROP_ALL_F64[3][N] = {{0.46698113207547171, -1.2168008048289738, 1.9667318982387476}, {0.45383720542780942, -1.2009646431841168, 1.9204992826917304}, {0.43482139022458699, -1.2046909395035623, 1.8977830651016663}};
static const double TORCH_RMSPROP_ALL_F32[3][N] = {{0.466981143, -1.21680081, 1.96673191}, {0.453837216, -1.20096469, 1.92049932}, {0.434821397, -1.20469093, 1.89778316}};
static const double TORCH_RMSPROP_MOMENTUM_F64[3][N] = {{1.6666661132869189e-07, -0.7500000714285614, 1.5000000333333314}, {0.028315342536292906, -0.74900989634706261, 0.99180117506764998}, {-0.026782316503133192, -1.0487176343322906, 1.0055287919265612}};
static const double TORCH_RMSPROP_MOMENTUM_F32[3][N] = {{1.35600573e-07, -0.75000006, 1.5}, {0.0283152983, -0.749009907, 0.991801143}, {-0.0267823655, -1.04871762, 1.00552881}};
static const double TORCH_RMSPROP_CENTERED_F64[3][N] = {{0.29899249910820064, -1.0489924634426069, 1.7989924495744196}, {0.3983952147132297, -1.132387740644291, 1.6923696425224652}, {0.36127151647495021, -1.2419168043057756, 1.7882418655588745}};
static const double TORCH_RMSPROP_CENTERED_F32[3][N] = {{0.298992515, -1.0489924, 1.7989924}, {0.39839524, -1.13238764, 1.69236958}, {0.36127153, -1.24191666, 1.78824186}};
static const double TORCH_ADAGRAD_DEFAULT_F64[3][N] = {{0.40000000003333336, -1.1500000000142858, 1.9000000000066666}, {0.45547001964047168, -1.1996138938438154, 1.8485504244668551}, {0.44173396324937636, -1.2593161252504741, 1.90178315549882}};
static const double TORCH_ADAGRAD_DEFAULT_F32[3][N] = {{0.400000006, -1.14999998, 1.89999998}, {0.455470026, -1.19961393, 1.84855044}, {0.441733956, -1.25931621, 1.90178323}};
static const double TORCH_ADAGRAD_ALL_F64[3][N] = {{0.4461539289939554, -1.1666890609851075, 1.9048183264290111}, {0.46829696213710298, -1.1928869913921631, 1.8551895022104907}, {0.45526159937893124, -1.2313339997290518, 1.8915924817887619}};
static const double TORCH_ADAGRAD_ALL_F32[3][N] = {{0.446153939, -1.16668904, 1.9048183}, {0.468296975, -1.19288695, 1.85518944}, {0.455261618, -1.23133397, 1.89159238}};

/* torch.optim.RMSprop (1.13): g += wd·p; v = α·v + (1-α)·g²; centered: ḡ = α·ḡ + (1-α)·g,
 * d = sqrt(v - ḡ²) + eps, else d = sqrt(v) + eps; momentum: b = μ·b + g/d, p -= lr·b; else
 * p -= lr·g/d. */
static void rmsprop_rule(tg_rmsprop_opts o, double expected[3][N])
{
    const double *gs[3] = {G1, G2, G3};
    double p[N], v[N] = {0}, gavg[N] = {0}, b[N] = {0};
    memcpy(p, P0, sizeof p);
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < N; i++) {
            double g = gs[t][i] + o.weight_decay * p[i];
            v[i] = o.alpha * v[i] + (1 - o.alpha) * g * g;
            gavg[i] = o.alpha * gavg[i] + (1 - o.alpha) * g;
            double d = sqrt(o.centered ? v[i] - gavg[i] * gavg[i] : v[i]) + o.eps;
            b[i] = o.momentum * b[i] + g / d;
            p[i] -= o.lr * (o.momentum > 0 ? b[i] : g / d);
            expected[t][i] = p[i];
        }
}

/* torch.optim.Adagrad (1.13): g += wd·p; s += g² (from initial_accumulator_value);
 * p -= lr/(1 + (t-1)·lr_decay) · g/(sqrt(s) + eps). */
static void adagrad_rule(tg_adagrad_opts o, double expected[3][N])
{
    const double *gs[3] = {G1, G2, G3};
    double p[N], s[N];
    memcpy(p, P0, sizeof p);
    for (int i = 0; i < N; i++) s[i] = o.initial_accumulator_value;
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < N; i++) {
            double g = gs[t][i] + o.weight_decay * p[i];
            s[i] += g * g;
            p[i] -= o.lr / (1 + t * o.lr_decay) * g / (sqrt(s[i]) + o.eps);
            expected[t][i] = p[i];
        }
}

/* Three steps of o from P0 in dtype, each compared with expected[t] to tol (relative). */
static void expect_steps(tg_optimizer *o, fixture *f, const double expected[3][N], double tol)
{
    const double *gs[3] = {G1, G2, G3};
    for (int t = 0; t < 3; t++) {
        set_grad(f->w, gs[t]);
        tg_optimizer_step(o);
        for (int i = 0; i < N; i++) assert_close(tg_get_flat(f->w, i), expected[t][i], tol);
    }
}

typedef tg_optimizer *(*make_fn)(const tg_param_list *ps, const void *opts);
static tg_optimizer *make_rmsprop(const tg_param_list *ps, const void *o)
{
    return tg_rmsprop_new(ps, *(const tg_rmsprop_opts *)o);
}
static tg_optimizer *make_adagrad(const tg_param_list *ps, const void *o)
{
    return tg_adagrad_new(ps, *(const tg_adagrad_opts *)o);
}

/* The rule computed here (float64 to 1e-14; float32 to 1e-5, as expect_param), and torch's own
 * numbers: float64 to 1e-14, float32 to 4 float ulps (the same float operations in another
 * order). */
static void check_kind(make_fn make_opt, const void *opts, const double rule[3][N],
                       const double torch_f64[3][N], const double torch_f32[3][N])
{
    const struct { tg_dtype dtype; const double (*want)[N]; double tol; } runs[] = {
        {TG_F64, rule, 1e-14}, {TG_F32, rule, 1e-5},
        {TG_F64, torch_f64, 1e-14}, {TG_F32, torch_f32, 4 * FLT_EPSILON},
    };
    for (int r = 0; r < 4; r++) {
        fixture f = make_dtype(runs[r].dtype);
        tg_optimizer *o = make_opt(&f.ps, opts);
        expect_steps(o, &f, runs[r].want, runs[r].tol);
        tg_optimizer_free(o);
        drop(&f);
    }
}

static void test_rmsprop(void **state)
{
    tg_rmsprop_opts d = tg_rmsprop_defaults();
    assert_close(d.lr, 0.01, 0);
    assert_close(d.alpha, 0.99, 0);
    assert_close(d.eps, 1e-8, 0);
    assert_true(d.momentum == 0 && d.weight_decay == 0 && !d.centered);
    const struct { tg_rmsprop_opts o; const double (*f64)[N], (*f32)[N]; } cases[] = {
        {d, TORCH_RMSPROP_DEFAULT_F64, TORCH_RMSPROP_DEFAULT_F32},
        {{.lr = 0.01, .alpha = 0.9, .eps = 1e-3, .weight_decay = 0.1, .momentum = 0.8,
          .centered = true}, TORCH_RMSPROP_ALL_F64, TORCH_RMSPROP_ALL_F32},
        {{.lr = 0.05, .alpha = 0.99, .eps = 1e-8, .momentum = 0.5},
         TORCH_RMSPROP_MOMENTUM_F64, TORCH_RMSPROP_MOMENTUM_F32},
        {{.lr = 0.02, .alpha = 0.99, .eps = 1e-8, .weight_decay = 0.05, .centered = true},
         TORCH_RMSPROP_CENTERED_F64, TORCH_RMSPROP_CENTERED_F32},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double rule[3][N];
        rmsprop_rule(cases[c].o, rule);
        check_kind(make_rmsprop, &cases[c].o, (const double (*)[N])rule, cases[c].f64,
                   cases[c].f32);
    }
}

static void test_adagrad(void **state)
{
    tg_adagrad_opts d = tg_adagrad_defaults();
    assert_close(d.lr, 0.01, 0);
    assert_close(d.eps, 1e-10, 0);
    assert_true(d.lr_decay == 0 && d.weight_decay == 0 && d.initial_accumulator_value == 0);
    d.lr = 0.1;
    const struct { tg_adagrad_opts o; const double (*f64)[N], (*f32)[N]; } cases[] = {
        {d, TORCH_ADAGRAD_DEFAULT_F64, TORCH_ADAGRAD_DEFAULT_F32},
        {{.lr = 0.1, .lr_decay = 0.05, .weight_decay = 0.1, .initial_accumulator_value = 0.3,
          .eps = 1e-6}, TORCH_ADAGRAD_ALL_F64, TORCH_ADAGRAD_ALL_F32},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double rule[3][N];
        adagrad_rule(cases[c].o, rule);
        check_kind(make_adagrad, &cases[c].o, (const double (*)[N])rule, cases[c].f64,
                   cases[c].f32);
    }
}

/* ---- parameter groups --------------------------------------------------------------------------- */
/* Two groups, as for "no weight decay on biases": each is updated with its own lr and decay. */
static void test_param_groups(void **state)
{
    tg_tensor *w = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(N), P0), true);
    tg_tensor *b = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(N), P0), true);
    tg_param_list pw = {0}, pb = {0};
    tg_param_list_add(&pw, "weight", w);
    tg_param_list_add(&pb, "bias", b);
    tg_optimizer *o = tg_sgd_new(&pw, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9,
                                                    .weight_decay = 0.05});
    assert_int_equal(tg_optimizer_add_group(o, &pb, 0.02, 0.0), 1);
    assert_int_equal(tg_optimizer_num_groups(o), 2);
    assert_close(tg_optimizer_group_lr(o, 0), 0.1, 0);
    assert_close(tg_optimizer_group_lr(o, 1), 0.02, 0);
    assert_close(tg_optimizer_group_weight_decay(o, 0), 0.05, 0);
    assert_close(tg_optimizer_group_weight_decay(o, 1), 0.0, 0);
    double pw_[N], pb_[N], bw[N] = {0}, bb[N] = {0};
    memcpy(pw_, P0, sizeof pw_);
    memcpy(pb_, P0, sizeof pb_);
    const double *gs[3] = {G1, G2, G3};
    for (int t = 0; t < 3; t++) {
        set_grad(w, gs[t]);
        set_grad(b, gs[t]);
        tg_optimizer_step(o);
        for (int i = 0; i < N; i++) {
            double gw = gs[t][i] + 0.05 * pw_[i], gb = gs[t][i];
            bw[i] = t == 0 ? gw : 0.9 * bw[i] + gw;
            bb[i] = t == 0 ? gb : 0.9 * bb[i] + gb;
            pw_[i] -= 0.1 * bw[i];
            pb_[i] -= 0.02 * bb[i];
        }
        expect_param(w, pw_);
        expect_param(b, pb_);
    }
    /* set_lr sets every group; per-group setters one. */
    tg_optimizer_set_lr(o, 0.5);
    assert_close(tg_optimizer_group_lr(o, 1), 0.5, 0);
    tg_optimizer_set_group_lr(o, 1, 0.25);
    assert_close(tg_optimizer_group_lr(o, 0), 0.5, 0);
    assert_close(tg_optimizer_group_lr(o, 1), 0.25, 0);
    /* StepLR scales each group from the lr it was created with. */
    assert_close(tg_optimizer_step_lr(o, 5, 2, 0.5), 0.1 * 0.25, 1e-15);
    assert_close(tg_optimizer_group_lr(o, 1), 0.02 * 0.25, 1e-15);
    /* The one-base-lr schedule sets every group. */
    tg_optimizer_step_decay(o, 0.2, 2, 2, 0.5);
    assert_close(tg_optimizer_group_lr(o, 0), 0.1, 1e-15);
    assert_close(tg_optimizer_group_lr(o, 1), 0.1, 1e-15);

    EXPECT_ERROR("already in group 0", tg_optimizer_add_group(o, &pw, 0.1, 0));
    EXPECT_ERROR("group 2 does not exist", tg_optimizer_group_lr(o, 2));
    EXPECT_ERROR("weight_decay", tg_optimizer_add_group(o, &(tg_param_list){0}, 0.1, -1));
    tg_optimizer_free(o);
    tg_param_list_free(&pw);
    tg_param_list_free(&pb);
    tg_free(w);
    tg_free(b);
}

/* ---- shared behaviour ------------------------------------------------------------------------- */
/* A parameter no backward reached (grad NULL) is skipped; its state starts at its own first
 * update, like PyTorch's lazily created state. */
static void test_params_without_grad_skipped(void **state)
{
    tg_tensor *a = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(N), P0), true);
    tg_tensor *b = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(N), P0), true);
    tg_param_list ps = {0};
    tg_param_list_add(&ps, "a", a);
    tg_param_list_add(&ps, "b", b);
    for (int kind = 0; kind < 2; kind++) {
        tg_fill_(a, 1.0);
        for (int i = 0; i < N; i++) tg_set_flat(b, i, P0[i]);
        tg_free(a->grad);
        tg_free(b->grad);
        a->grad = b->grad = NULL;
        tg_optimizer *o = kind == 0 ? tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9})
                                    : tg_adam_new(&ps, tg_adam_defaults());
        set_grad(a, G1);
        tg_optimizer_step(o);
        tg_optimizer_step(o);
        expect_param(b, P0); /* untouched */
        /* b's first update behaves like a first step. */
        set_grad(b, G1);
        tg_fill_(a->grad, 0.0);
        tg_optimizer_step(o);
        double p[N];
        for (int i = 0; i < N; i++)
            p[i] = kind == 0 ? P0[i] - 0.1 * G1[i] : P0[i] - 1e-3 * G1[i] / (fabs(G1[i]) + 1e-8);
        expect_param(b, p);
        tg_optimizer_free(o);
    }
    tg_param_list_free(&ps);
    tg_free(a);
    tg_free(b);
}

static void test_zero_grad_lr_schedule(void **state)
{
    fixture f = make();
    tg_optimizer *o = tg_sgd_new(&f.ps, (tg_sgd_opts){.lr = 0.1});
    set_grad(f.w, G1);
    tg_optimizer_zero_grad(o);
    for (int i = 0; i < N; i++) assert_close(tg_get_flat(tg_get_grad(f.w), i), 0.0, 0);
    assert_close(tg_optimizer_lr(o), 0.1, 0);
    tg_optimizer_set_lr(o, 0.5);
    assert_close(tg_optimizer_lr(o), 0.5, 0);
    set_grad(f.w, G1);
    tg_optimizer_step(o);
    expect_param(f.w, (double[]){0.5 - 0.5 * 0.3, -1.25 + 0.5 * 0.7, 2.0 - 0.5 * 1.5});
    /* StepLR(step_size=3, gamma=0.1): epochs 0-2 at base, 3-5 at base/10, 6 at base/100. */
    const double expected[] = {1, 1, 1, 0.1, 0.1, 0.1, 0.01};
    for (int e = 0; e < 7; e++) {
        assert_close(tg_lr_step_decay(1.0, e, 3, 0.1), expected[e], 1e-15);
        assert_close(tg_optimizer_step_decay(o, 0.2, e, 3, 0.1), 0.2 * expected[e], 1e-15);
        assert_close(tg_optimizer_lr(o), 0.2 * expected[e], 1e-15);
    }
    tg_optimizer_free(o);
    drop(&f);
}

/* float32 parameters are updated in float32 arithmetic. */
static void test_sgd_float32(void **state)
{
    tg_tensor *w = tg_set_requires_grad(tg_full(TG_F32, TG_SHAPE(1), 1.1), true);
    tg_param_list ps = {0};
    tg_param_list_add(&ps, "w", w);
    tg_optimizer *o = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.1});
    set_grad(w, (double[]){0.3});
    tg_optimizer_step(o);
    float expected = 1.1f - 0.1f * 0.3f;
    assert_memory_equal(w->data, &expected, sizeof expected);
    tg_optimizer_free(o);
    tg_param_list_free(&ps);
    tg_free(w);
}

/* Float32 Adam stays within rounding of the float64 rule: its first step with g = 1 is -lr
 * (m̂ = v̂ = 1). Computing 1-β2 in float (1.0f - 0.999f) would be 57 ulps off here. */
static void test_adam_float32_rounding(void **state)
{
    tg_tensor *w = tg_set_requires_grad(tg_zeros(TG_F32, TG_SHAPE(1)), true);
    tg_param_list ps = {0};
    tg_param_list_add(&ps, "w", w);
    tg_adam_opts opts = tg_adam_defaults();
    tg_optimizer *o = tg_adam_new(&ps, opts);
    set_grad(w, (double[]){1});
    tg_optimizer_step(o);
    double exact = -opts.lr / (1 + opts.eps);
    assert_near(tg_get_flat(w, 0), exact, 4 * FLT_EPSILON * opts.lr);
    tg_optimizer_free(o);
    tg_param_list_free(&ps);
    tg_free(w);
}

/* State is allocated with the optimizer: step() makes no heap allocation, ever. */
static void test_no_allocation_in_step(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_module *net = tg_feedforward_new(4, 3, 8, 1, "relu", 0.0, tg_init_pytorch(), &rng);
    tg_param_list ps = {0};
    tg_module_parameters(net, &ps);
    for (int i = 0; i < ps.n; i++)
        set_grad(ps.tensors[i], (double[64]){0.1, 0.2, 0.3});
    tg_rmsprop_opts rms = tg_rmsprop_defaults();
    rms.momentum = 0.9;
    rms.centered = true;
    for (int kind = 0; kind < 4; kind++) {
        tg_optimizer *o = kind == 0 ? tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9,
                                                                    .weight_decay = 1e-4})
                        : kind == 1 ? tg_adam_new(&ps, tg_adam_defaults())
                        : kind == 2 ? tg_rmsprop_new(&ps, rms)
                                    : tg_adagrad_new(&ps, tg_adagrad_defaults());
        uint64_t before = tg_alloc_count();
        for (int s = 0; s < 5; s++) {
            tg_optimizer_step(o);
            tg_optimizer_zero_grad(o);
        }
        assert_int_equal(tg_alloc_count(), before);
        tg_optimizer_free(o);
    }
    tg_param_list_free(&ps);
    tg_module_free(net);
}

/* End to end: a Linear fitted to y = 2x - 1 by SGD with momentum through the ops. */
static void test_fit_line(void **state)
{
    tg_module *lin = tg_linear_new(1, 1, true, tg_init_f64(tg_init_zeros()), NULL);
    tg_param_list ps = {0};
    tg_module_parameters(lin, &ps);
    tg_optimizer *o = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.1, .momentum = 0.5});
    double xs[8], ys[8];
    for (int i = 0; i < 8; i++) {
        xs[i] = -1 + i * 0.25;
        ys[i] = 2 * xs[i] - 1;
    }
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(8, 1), xs), *y = tg_from_data(TG_F64, TG_SHAPE(8, 1), ys);
    double loss = 0;
    for (int s = 0; s < 200; s++) {
        tg_optimizer_zero_grad(o);
        tg_tensor *l = tg_mse_loss(tg_module_forward(lin, x), y, TG_REDUCE_MEAN);
        loss = tg_item(l);
        tg_backward(l);
        tg_optimizer_step(o);
        tg_tape_reset();
    }
    assert_true(loss < 1e-10);
    assert_close(tg_get_flat(tg_linear_weight(lin), 0), 2.0, 1e-5);
    assert_close(tg_get_flat(tg_linear_bias(lin), 0), -1.0, 1e-5);
    tg_optimizer_free(o);
    tg_param_list_free(&ps);
    tg_free(x);
    tg_free(y);
    tg_module_free(lin);
}

static void test_errors(void **state)
{
    fixture f = make();
    EXPECT_ERROR("Nesterov", tg_sgd_new(&f.ps, (tg_sgd_opts){.lr = 0.1, .nesterov = true}));
    EXPECT_ERROR("Nesterov", tg_sgd_new(&f.ps, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9,
                                                             .dampening = 0.1, .nesterov = true}));
    EXPECT_ERROR("betas", tg_adam_new(&f.ps, (tg_adam_opts){.lr = 0.1, .beta1 = 1.0}));
    EXPECT_ERROR("learning rate", tg_sgd_new(&f.ps, (tg_sgd_opts){.lr = -1}));
    tg_param_list twice = {0};
    tg_param_list_add(&twice, "a", f.w);
    tg_param_list_add(&twice, "b", f.w);
    EXPECT_ERROR("listed twice", tg_sgd_new(&twice, (tg_sgd_opts){.lr = 0.1}));
    tg_param_list_free(&twice);
    /* The kinds' validators: the message names the optimizer and the value. */
    tg_rmsprop_opts rms = tg_rmsprop_defaults();
    rms.alpha = 1.5;
    EXPECT_ERROR("(rmsprop): need alpha in [0, 1]", tg_rmsprop_new(&f.ps, rms));
    tg_adagrad_opts ada = tg_adagrad_defaults();
    ada.initial_accumulator_value = -0.1;
    EXPECT_ERROR("(adagrad): lr_decay, initial_accumulator_value", tg_adagrad_new(&f.ps, ada));
    EXPECT_ERROR("-0.1", tg_adagrad_new(&f.ps, ada));
    EXPECT_ERROR("(sgd): weight_decay must be finite",
                 tg_sgd_new(&f.ps, (tg_sgd_opts){.lr = 0.1, .weight_decay = -1}));
    drop(&f);
}

/* Lazy zero_grad: a parameter the step's backward does not reach keeps its buffer pending (here
 * over NaN); step() must update it as with a zero gradient: momentum and weight decay only. */
static void test_unreached_param_after_zero_grad(void **state)
{
    (void)state;
    const double lr = 0.1, mu = 0.9, wd = 0.01, C[N] = {0.5, -2.0, 1.0}, D[N] = {1.5, 0.25, -3.0};
    tg_tensor *a = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(N), P0), true);
    tg_tensor *b = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(N), G1), true);
    tg_tensor *c = tg_from_data(TG_F64, TG_SHAPE(N), C), *d = tg_from_data(TG_F64, TG_SHAPE(N), D);
    tg_param_list ps = {0};
    tg_param_list_add(&ps, "a", a);
    tg_param_list_add(&ps, "b", b);
    tg_optimizer *o = tg_sgd_new(&ps, (tg_sgd_opts){.lr = lr, .momentum = mu, .weight_decay = wd});
    tg_optimizer_zero_grad(o);
    tg_backward(tg_add(tg_sum(tg_mul(a, c)), tg_sum(tg_mul(b, d)))); /* grads C and D */
    tg_tape_reset();
    tg_optimizer_step(o);
    tg_fill_(b->grad, NAN); /* what the buffer holds does not matter once zero_grad ran */
    tg_optimizer_zero_grad(o);
    tg_backward(tg_sum(tg_mul(a, c))); /* reaches a only */
    tg_tape_reset();
    tg_optimizer_step(o);
    double wa[N], wb[N];
    for (int i = 0; i < N; i++) {
        double ga = C[i] + wd * P0[i], a1 = P0[i] - lr * ga;       /* first step: buf = g */
        double buf_a = mu * ga + C[i] + wd * a1;
        wa[i] = a1 - lr * buf_a;
        double gb = D[i] + wd * G1[i], b1 = G1[i] - lr * gb;
        double buf_b = mu * gb + 0 + wd * b1;                      /* zero gradient */
        wb[i] = b1 - lr * buf_b;
    }
    expect_param(a, wa);
    expect_param(b, wb);
    for (int i = 0; i < N; i++) assert_close(tg_get_flat(tg_get_grad(b), i), 0.0, 0);
    tg_optimizer_free(o);
    tg_param_list_free(&ps);
    tg_free(a), tg_free(b), tg_free(c), tg_free(d);
}

/* After zero_grad, a gradient the program writes itself (a tensor assigned to ->grad, or values
 * set through the element accessors) is the one step() uses: the pending zero belongs to the
 * buffer zero_grad marked, not to the parameter. */
static void test_gradient_written_by_hand_after_zero_grad(void **state)
{
    (void)state;
    tg_tensor *w = tg_set_requires_grad(tg_zeros(TG_F64, TG_SHAPE(N)), true);
    tg_param_list ps = {0};
    tg_param_list_add(&ps, "w", w);
    tg_optimizer *o = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.5});
    tg_backward(tg_sum(w));
    tg_tape_reset();
    tg_optimizer_zero_grad(o);
    tg_free(w->grad);
    w->grad = tg_full(TG_F64, TG_SHAPE(N), 1.0);
    tg_optimizer_step(o);
    expect_param(w, (double[N]){-0.5, -0.5, -0.5});
    tg_optimizer_zero_grad(o);
    tg_set_flat(w->grad, 1, 2.0);
    assert_close(tg_get_flat(w->grad, 0), 0.0, 0);
    tg_optimizer_step(o);
    expect_param(w, (double[N]){-0.5, -1.5, -0.5});
    tg_optimizer_zero_grad(o);
    tg_fill_(w->grad, 4.0);
    tg_optimizer_step(o);
    expect_param(w, (double[N]){-2.5, -3.5, -2.5});
    tg_optimizer_free(o);
    tg_param_list_free(&ps);
    tg_free(w);
}

/* ---- large parameters on two threads ---------------------------------------------------- */

/* Above the split threshold (2^18), and no multiple of the slices' 16-element edges. */
enum { BIG_ROWS = 7086, BIG = BIG_ROWS * 37 };

static tg_tensor *big_param(tg_dtype dt, uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    return tg_set_requires_grad(tg_rand_normal(dt, TG_SHAPE(BIG_ROWS, 37), 0, 1, &rng), true);
}

/* Three steps of opt on a large parameter; returns it (gradients drawn from the seed). */
static tg_tensor *three_steps(tg_optimizer *(*make_opt)(tg_param_list *), tg_dtype dt,
                              int threads)
{
    tg_set_num_threads(threads);
    tg_tensor *p = big_param(dt, 1);
    tg_param_list ps = {0};
    tg_param_list_add(&ps, "p", p);
    tg_optimizer *o = make_opt(&ps);
    for (uint64_t s = 0; s < 3; s++) {
        tg_tensor *g = big_param(dt, 10 + s);
        tg_optimizer_zero_grad(o);
        tg_backward(tg_sum(tg_mul(p, g)));   /* gradient g */
        tg_tape_reset();
        tg_optimizer_step(o);
        tg_free(g);
    }
    tg_optimizer_free(o);
    tg_param_list_free(&ps);
    tg_set_num_threads(1);
    return p;
}

static tg_optimizer *big_sgd(tg_param_list *ps)
{
    return tg_sgd_new(ps, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01});
}
static tg_optimizer *big_adam(tg_param_list *ps) { return tg_adam_new(ps, tg_adam_defaults()); }
static tg_optimizer *big_rmsprop(tg_param_list *ps)
{
    tg_rmsprop_opts o = tg_rmsprop_defaults();
    o.centered = true;
    o.momentum = 0.5;
    return tg_rmsprop_new(ps, o);
}
static tg_optimizer *big_adagrad(tg_param_list *ps)
{
    return tg_adagrad_new(ps, tg_adagrad_defaults());
}

/* The library's kinds update a large parameter in slices on two threads: bit for bit what one
 * thread gives. */
static void test_large_update_split_matches_one_thread(void **state)
{
    (void)state;
    tg_optimizer *(*makes[])(tg_param_list *) = {big_sgd, big_adam, big_rmsprop, big_adagrad};
    for (int dt = 0; dt < 2; dt++)
        for (size_t k = 0; k < sizeof makes / sizeof *makes; k++) {
            tg_dtype d = dt ? TG_F64 : TG_F32;
            tg_tensor *one = three_steps(makes[k], d, 1), *two = three_steps(makes[k], d, 2);
            assert_memory_equal(one->data, two->data, tg_nbytes(one));
            tg_free(one), tg_free(two);
        }
}

/* A kind that is not elementwise sees the whole parameter, however large and however many
 * threads. */
static int64_t whole_seen;
static void count_update(const tg_optim_update *u)
{
    if (u->param->numel != BIG || u->grad->numel != BIG || u->param->ndim != 2)
        fail_msg("a non-elementwise kind got a slice of %lld elements",
                 (long long)u->param->numel);
    whole_seen++;
}
static void describe_nothing(const void *settings, char *buf, size_t len)
{
    (void)settings;
    snprintf(buf, len, "-");
}
static int no_state(const void *settings, const char **names)
{
    (void)settings, (void)names;
    return 0;
}

static void test_non_elementwise_kind_sees_whole_tensors(void **state)
{
    (void)state;
    typedef struct { double lr, weight_decay; } whole_opts;
    static const tg_optimizer_kind whole_kind = {
        .name = "whole",
        .settings_size = sizeof(whole_opts),
        .lr_offset = offsetof(whole_opts, lr),
        .weight_decay_offset = offsetof(whole_opts, weight_decay),
        .state_names = no_state,
        .describe = describe_nothing,
        .update = count_update,
    };
    tg_set_num_threads(2);
    tg_tensor *p = big_param(TG_F32, 1);
    tg_param_list ps = {0};
    tg_param_list_add(&ps, "p", p);
    tg_optimizer *o = tg_optimizer_new(&whole_kind, &ps, &(whole_opts){0.1, 0});
    tg_backward(tg_sum(p));
    tg_tape_reset();
    whole_seen = 0;
    tg_optimizer_step(o);
    assert_int_equal(whole_seen, 1);
    tg_optimizer_free(o);
    tg_param_list_free(&ps);
    tg_free(p);
    tg_set_num_threads(1);
}

/* An elementwise kind is handed a large parameter in slices on two threads, which together
 * cover it once. */
static _Atomic int64_t slices_seen, elements_seen;
static void count_slices(const tg_optim_update *u)
{
    if (u->param->numel >= BIG || u->grad->numel != u->param->numel)
        fail_msg("a slice of %lld elements (gradient %lld) of a %d-element parameter",
                 (long long)u->param->numel, (long long)u->grad->numel, BIG);
    slices_seen++;
    elements_seen += u->param->numel;
}

static void test_elementwise_kind_gets_slices(void **state)
{
    (void)state;
    typedef struct { double lr, weight_decay; } slice_opts;
    static const tg_optimizer_kind slice_kind = {
        .name = "slices",
        .settings_size = sizeof(slice_opts),
        .lr_offset = offsetof(slice_opts, lr),
        .weight_decay_offset = offsetof(slice_opts, weight_decay),
        .state_names = no_state,
        .describe = describe_nothing,
        .update = count_slices,
        .elementwise = true,
    };
    tg_set_num_threads(2);
    tg_tensor *p = big_param(TG_F32, 1);
    tg_param_list ps = {0};
    tg_param_list_add(&ps, "p", p);
    tg_optimizer *o = tg_optimizer_new(&slice_kind, &ps, &(slice_opts){0.1, 0});
    tg_backward(tg_sum(p));
    tg_tape_reset();
    slices_seen = elements_seen = 0;
    tg_optimizer_step(o);
    assert_true(slices_seen > 1);
    assert_int_equal(elements_seen, BIG);
    tg_optimizer_free(o);
    tg_param_list_free(&ps);
    tg_free(p);
    tg_set_num_threads(1);
}

/* ---- updates in backward (tg_optimizer_set_in_backward) ------------------------------------ */

typedef struct {
    tg_module *net;
    tg_optimizer *opt;
    tg_param_list weights, biases;
} ib_model;

/* A feedforward net (no dropout) whose weights (group 0: lr, weight decay wd) and biases (group
 * 1: lr/2, no decay) are trained by plain SGD; in_backward turned on before the biases' group is
 * added, so that adding a group to an optimizer already updating in backward is covered. */
static ib_model ib_make(tg_dtype dt, int64_t in, int64_t hidden, int64_t classes, double lr,
                        double wd, bool in_backward)
{
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    tg_init init = tg_init_pytorch();
    init.dtype = dt;
    ib_model m = {.net = tg_feedforward_new(in, classes, hidden, 2, "relu", 0.0, init, &rng)};
    tg_param_list ps = {0};
    tg_module_parameters(m.net, &ps);
    for (int i = 0; i < ps.n; i++)
        tg_param_list_add(ps.tensors[i]->ndim == 2 ? &m.weights : &m.biases, ps.names[i],
                          ps.tensors[i]);
    tg_param_list_free(&ps);
    m.opt = tg_sgd_new(&m.weights, (tg_sgd_opts){.lr = lr, .weight_decay = wd});
    if (in_backward) assert_true(tg_optimizer_set_in_backward(m.opt, true));
    tg_optimizer_add_group(m.opt, &m.biases, lr / 2, 0.0);
    return m;
}

static void ib_drop(ib_model *m)
{
    tg_optimizer_free(m->opt);
    tg_module_free(m->net);
    tg_param_list_free(&m->weights);
    tg_param_list_free(&m->biases);
}

static tg_tensor *ib_loss(ib_model *m, tg_tensor *x, tg_tensor *y)
{
    return tg_cross_entropy(tg_module_forward(m->net, x), y, TG_REDUCE_MEAN);
}

static void expect_same_params(const tg_param_list *a, const tg_param_list *b, double tol)
{
    for (int i = 0; i < a->n; i++)
        for (int64_t k = 0; k < a->tensors[i]->numel; k++)
            assert_close(tg_get_flat(a->tensors[i], k), tg_get_flat(b->tensors[i], k), tol);
}

/* Steps of the usual gradient-then-step and of updates in backward from the same start agree up
 * to rounding, with weight decay, two groups and a learning-rate change; and the weights were
 * really updated inside tg_backward (changed before step(), their gradients left at zero) while
 * the biases (a row sum, not a product) took the usual path. Turning it off and on again, and
 * adding a group while it is on, are on the way. */
static void run_in_backward_matches(tg_dtype dt, int64_t batch, int64_t in, int64_t hidden,
                                    double wd, double tol)
{
    const int64_t classes = 5;
    ib_model ref = ib_make(dt, in, hidden, classes, 0.1, wd, false);
    ib_model ib = ib_make(dt, in, hidden, classes, 0.1, wd, true);
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_tensor *x = tg_rand_normal(dt, TG_SHAPE(batch, in), 0, 1, &rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(batch));
    for (int64_t i = 0; i < batch; i++) ((int32_t *)y->data)[i] = (int32_t)((i * 7 + 3) % classes);
    tg_tensor *w0 = tg_clone(ib.weights.tensors[0]);
    uint64_t allocs = 0;
    for (int s = 0; s < 6; s++) {
        if (s == 3) {
            tg_optimizer_set_lr(ref.opt, 0.05);
            tg_optimizer_set_lr(ib.opt, 0.05);
        }
        if (s == 2) allocs = tg_alloc_count();
        tg_optimizer_zero_grad(ref.opt);
        tg_backward(ib_loss(&ref, x, y));
        tg_optimizer_step(ref.opt);
        tg_tape_reset();

        /* step 0 takes the usual path, so the weights have gradient buffers (left pending by
         * zero_grad) when updates in backward start: step() must not update them again */
        if (s <= 1) assert_true(tg_optimizer_set_in_backward(ib.opt, s == 1));
        if (s == 1) tg_copy_(w0, ib.weights.tensors[0]);
        tg_optimizer_zero_grad(ib.opt);
        tg_backward(ib_loss(&ib, x, y));
        if (s == 1) {
            const tg_tensor *w = ib.weights.tensors[0];
            double moved = 0, grad = 0;
            for (int64_t k = 0; k < w->numel; k++) {
                moved += fabs(tg_get_flat(w, k) - tg_get_flat(w0, k));
                grad += fabs(tg_get_flat(w->grad, k));
            }
            assert_true(moved > 0);
            assert_true(grad == 0);
            const tg_tensor *bias_grad = tg_get_grad(ib.biases.tensors[0]);
            assert_non_null(bias_grad);
        }
        tg_optimizer_step(ib.opt);
        tg_tape_reset();
    }
    assert_int_equal(tg_alloc_count(), allocs); /* steps 2-5 of both: no allocation */
    assert_int_equal(tg_optimizer_steps(ib.opt), tg_optimizer_steps(ref.opt));
    expect_same_params(&ref.weights, &ib.weights, tol);
    expect_same_params(&ref.biases, &ib.biases, tol);
    tg_free(w0), tg_free(x), tg_free(y);
    ib_drop(&ref);
    ib_drop(&ib);
}

static void test_in_backward_matches_step(void **state)
{
    (void)state;
    run_in_backward_matches(TG_F64, 16, 20, 12, 0.0, 1e-12);
    run_in_backward_matches(TG_F64, 16, 20, 12, 0.01, 1e-12);
    run_in_backward_matches(TG_F64, 1, 20, 12, 0.01, 1e-12); /* the K = 1 outer product */
    run_in_backward_matches(TG_F32, 16, 784, 100, 0.0, 2e-5); /* the Table-1 shapes (libxsmm) */
    run_in_backward_matches(TG_F32, 1, 784, 10, 0.01, 2e-5);
    run_in_backward_matches(TG_F64, 80, 20, 12, 0.01, 1e-12); /* alpha passed to the product */
    run_in_backward_matches(TG_F32, 80, 64, 32, 0.0, 2e-5);
}

/* Only plain SGD has a rule; the others keep the usual path, and nothing is changed. */
static void test_in_backward_kinds(void **state)
{
    (void)state;
    fixture f = make();
    tg_optimizer *o = tg_sgd_new(&f.ps, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9});
    assert_false(tg_optimizer_set_in_backward(o, true));
    assert_null(f.w->in_backward);
    tg_optimizer_free(o);
    o = tg_adam_new(&f.ps, tg_adam_defaults());
    assert_false(tg_optimizer_set_in_backward(o, true));
    tg_optimizer_free(o);
    o = tg_rmsprop_new(&f.ps, tg_rmsprop_defaults());
    assert_false(tg_optimizer_set_in_backward(o, true));
    tg_optimizer_free(o);
    o = tg_sgd_new(&f.ps, (tg_sgd_opts){.lr = 0.1});
    assert_false(tg_optimizer_in_backward(o));
    assert_true(tg_optimizer_set_in_backward(o, true));
    assert_true(tg_optimizer_in_backward(o));
    assert_non_null(f.w->in_backward);
    tg_optimizer *other = tg_sgd_new(&f.ps, (tg_sgd_opts){.lr = 0.1});
    EXPECT_ERROR("already updated in backward by another optimizer",
                 tg_optimizer_set_in_backward(other, true));
    tg_optimizer_free(other);
    assert_true(tg_optimizer_set_in_backward(o, false));
    assert_null(f.w->in_backward);
    tg_optimizer_free(o);
    drop(&f);
}

static void count_hook(const tg_node *node, void *data)
{
    (void)node;
    (*(int *)data)++;
}

/* y = x·Wᵀ + b; returns whether tg_backward (run by `how`) changed W. */
enum { IB_ONCE, IB_TWICE, IB_HOOK, IB_ANOMALY, IB_ACCUMULATED, IB_OFF };
static bool weight_moved_in_backward(int how)
{
    tg_tensor *w = tg_set_requires_grad(
        tg_from_data(TG_F64, TG_SHAPE(2, 2), (double[]){0.5, -1, 2, 0.25}), true);
    tg_tensor *b = tg_set_requires_grad(tg_zeros(TG_F64, TG_SHAPE(2)), true);
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(1, 2), (double[]){1, 2});
    tg_param_list ps = {0};
    tg_param_list_add(&ps, "w", w);
    tg_param_list_add(&ps, "b", b);
    tg_optimizer *o = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.1});
    if (how == IB_ACCUMULATED) { /* a gradient accumulated before updates in backward start */
        tg_backward(tg_sum(tg_linear(x, w, b)));
        tg_tape_reset();
    }
    assert_true(tg_optimizer_set_in_backward(o, how != IB_OFF));
    if (how != IB_ACCUMULATED) tg_optimizer_zero_grad(o);
    double before = tg_get_flat(w, 0);
    tg_tensor *h = tg_linear(x, w, b);
    if (how == IB_TWICE) h = tg_linear(h, w, b);
    int calls = 0;
    if (how == IB_HOOK) tg_set_backward_hook(count_hook, &calls);
    if (how == IB_ANOMALY) tg_set_anomaly_mode(true);
    tg_backward(tg_sum(h));
    tg_set_backward_hook(NULL, NULL);
    tg_set_anomaly_mode(false);
    bool moved = tg_get_flat(w, 0) != before;
    if (how == IB_HOOK) assert_true(calls > 0);
    tg_tape_reset();
    tg_optimizer_free(o);
    tg_param_list_free(&ps);
    tg_free(w), tg_free(b), tg_free(x);
    return moved;
}

/* Only where nothing else could read the weight or its gradient: read twice on the tape, a hook
 * that sees the gradients (tg_ddp's), anomaly mode, or a gradient already accumulated keep the
 * usual path. */
static void test_in_backward_only_when_safe(void **state)
{
    (void)state;
    assert_true(weight_moved_in_backward(IB_ONCE));
    assert_false(weight_moved_in_backward(IB_OFF));
    assert_false(weight_moved_in_backward(IB_TWICE));
    assert_false(weight_moved_in_backward(IB_HOOK));
    assert_false(weight_moved_in_backward(IB_ANOMALY));
    assert_false(weight_moved_in_backward(IB_ACCUMULATED));
}

/* tg_grad returns gradients and updates nothing; a second backward over a tape whose backward
 * updated parameters is refused, and the next step works again. Freeing the parameters before
 * the optimizer is safe too. */
static void test_in_backward_tg_grad_and_second_backward(void **state)
{
    (void)state;
    ib_model m = ib_make(TG_F64, 3, 4, 2, 0.1, 0.0, true);
    tg_tensor *x = tg_rand_normal(TG_F64, TG_SHAPE(2, 3), 0, 1, NULL);
    tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(2), (int32_t[]){0, 1});
    tg_tensor *w = m.weights.tensors[0], *w0 = tg_clone(w), *g = NULL;
    tg_grad(ib_loss(&m, x, y), NULL, 1, &w, &g, false);
    for (int64_t k = 0; k < w->numel; k++) assert_true(tg_get_flat(w, k) == tg_get_flat(w0, k));
    double norm = 0;
    for (int64_t k = 0; k < g->numel; k++) norm += fabs(tg_get_flat(g, k));
    assert_true(norm > 0);
    tg_tape_reset();

    tg_optimizer_zero_grad(m.opt);
    tg_tensor *loss = ib_loss(&m, x, y);
    tg_backward(loss);
    EXPECT_ERROR("already updated parameters in place", tg_backward(loss));
    tg_optimizer_step(m.opt);
    tg_tape_reset();
    tg_optimizer_zero_grad(m.opt);
    tg_backward(ib_loss(&m, x, y));
    tg_optimizer_step(m.opt);
    tg_tape_reset();

    tg_module_free(m.net); /* parameters first, then the optimizer: nothing reaches freed memory */
    m.net = NULL;
    tg_optimizer_free(m.opt);
    m.opt = NULL;
    ib_drop(&m);
    tg_free(w0), tg_free(x), tg_free(y);
}

/* A 2x2 weight w (its gradient buffer made and zeroed, so zero_grad leaves it pending) trained
 * by plain SGD with weight decay, updates in backward on. */
typedef struct {
    tg_tensor *w, *x;
    tg_param_list ps;
    tg_optimizer *opt;
} ib_tiny;

static ib_tiny ib_tiny_make(bool in_backward)
{
    ib_tiny t = {0};
    t.w = tg_set_requires_grad(
        tg_from_data(TG_F64, TG_SHAPE(2, 2), (double[]){0.5, -1, 2, 0.25}), true);
    t.x = tg_from_data(TG_F64, TG_SHAPE(1, 2), (double[]){1, 2});
    tg_param_list_add(&t.ps, "w", t.w);
    t.opt = tg_sgd_new(&t.ps, (tg_sgd_opts){.lr = 0.1, .weight_decay = 0.5});
    tg_backward(tg_sum(tg_linear(t.x, t.w, NULL)));
    tg_tape_reset();
    tg_optimizer_zero_grad(t.opt);
    if (in_backward) assert_true(tg_optimizer_set_in_backward(t.opt, true));
    return t;
}

static tg_tensor *ib_tiny_loss(ib_tiny *t) { return tg_sum(tg_square(tg_linear(t->x, t->w, NULL))); }

static void ib_tiny_drop(ib_tiny *t)
{
    tg_optimizer_free(t->opt);
    tg_param_list_free(&t->ps);
    tg_free(t->w), tg_free(t->x);
}

/* Gradients accumulated over two backwards before one step: the second forward would read the
 * weight the first backward already updated, and the second backward update it again (a
 * different result from the usual path, not rounding), so recording an op that reads it before
 * step() is refused; after step() the next forward works. */
static void test_in_backward_accumulation_refused(void **state)
{
    (void)state;
    ib_tiny t = ib_tiny_make(true);
    tg_backward(ib_tiny_loss(&t));
    tg_tape_reset();
    EXPECT_ERROR("tg_optimizer_step has not run", ib_tiny_loss(&t));
    tg_tape_reset();
    tg_optimizer_step(t.opt);
    tg_optimizer_zero_grad(t.opt);
    tg_backward(ib_tiny_loss(&t));
    tg_optimizer_step(t.opt);
    tg_tape_reset();
    ib_tiny_drop(&t);
}

/* Turning updates in backward off between a backward that used them and step() would make step()
 * update the weight again (weight decay applied twice): refused until step() has run. */
static void test_in_backward_off_before_step(void **state)
{
    (void)state;
    ib_tiny ref = ib_tiny_make(false), t = ib_tiny_make(true);
    tg_backward(ib_tiny_loss(&ref));
    tg_optimizer_step(ref.opt);
    tg_tape_reset();
    tg_backward(ib_tiny_loss(&t));
    EXPECT_ERROR("call tg_optimizer_step first", tg_optimizer_set_in_backward(t.opt, false));
    tg_optimizer_step(t.opt);
    tg_tape_reset();
    assert_true(tg_optimizer_set_in_backward(t.opt, false));
    for (int64_t k = 0; k < t.w->numel; k++)
        assert_close(tg_get_flat(t.w, k), tg_get_flat(ref.w, k), 1e-14);
    ib_tiny_drop(&ref);
    ib_tiny_drop(&t);
}

/* A weight the user froze (requires_grad off) after turning updates in backward on is read by
 * tg_linear but not trained: the backward leaves it alone (step() then treats it as usual). */
static void test_in_backward_frozen_weight(void **state)
{
    (void)state;
    ib_tiny t = ib_tiny_make(true);
    tg_tensor *w0 = tg_clone(t.w);
    tg_set_requires_grad(t.w, false);
    tg_tensor *x = tg_set_requires_grad(tg_clone(t.x), true);
    tg_backward(tg_sum(tg_square(tg_linear(x, t.w, NULL))));
    for (int64_t k = 0; k < t.w->numel; k++) assert_true(tg_get_flat(t.w, k) == tg_get_flat(w0, k));
    tg_optimizer_step(t.opt);
    tg_tape_reset();
    tg_set_requires_grad(t.w, true);
    tg_free(w0), tg_free(x);
    ib_tiny_drop(&t);
}

/* The optimizer's switches: on twice is on once; a group added while on cannot take a
 * parameter another optimizer updates in backward; tg_grad after a backward that updated is
 * refused like a second tg_backward. */
static void test_in_backward_switches(void **state)
{
    (void)state;
    ib_tiny a = ib_tiny_make(true), b = ib_tiny_make(true);
    assert_true(tg_optimizer_set_in_backward(a.opt, true));
    assert_true(a.w->in_backward != NULL);
    EXPECT_ERROR("already updated in backward by another optimizer",
                 tg_optimizer_add_group(b.opt, &a.ps, 0.1, 0.0));
    tg_tensor *loss = ib_tiny_loss(&a);
    tg_backward(loss);
    tg_tensor *g = NULL;
    EXPECT_ERROR("already updated parameters in place", tg_grad(loss, NULL, 1, &a.w, &g, false));
    tg_optimizer_step(a.opt);
    tg_tape_reset();
    ib_tiny_drop(&a);
    ib_tiny_drop(&b);
}

/* A kind whose rule holds for some groups only (here: without weight decay), and whose update
 * sees the parameter's step count. */
typedef struct { double lr, weight_decay; } rule_opts;
static const tg_tensor *rule_watched; /* the parameter whose step rule_last_step keeps */
static int64_t rule_last_step;
static bool rule_without_decay(const void *settings, double lr, double weight_decay,
                               double *alpha, double *beta)
{
    (void)settings;
    *alpha = -lr;
    *beta = 1;
    return weight_decay == 0;
}
static void rule_update(const tg_optim_update *u)
{
    if (u->param->data == rule_watched->data) rule_last_step = u->step;
    for (int64_t i = 0; i < u->param->numel; i++)
        tg_set_flat(u->param, i, tg_get_flat(u->param, i) - u->lr * tg_get_flat(u->grad, i));
}

/* Group 1's settings have no rule, so its weight takes the usual path while group 0's is updated
 * in backward; a step that skips a weight updated in backward still counts as one of its steps. */
static void test_in_backward_rule_per_group(void **state)
{
    (void)state;
    static const tg_optimizer_kind rule_kind = {
        .name = "rule",
        .settings_size = sizeof(rule_opts),
        .lr_offset = offsetof(rule_opts, lr),
        .weight_decay_offset = offsetof(rule_opts, weight_decay),
        .state_names = no_state,
        .describe = describe_nothing,
        .update = rule_update,
        .in_backward_rule = rule_without_decay,
    };
    tg_tensor *w1 = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(2, 2), 0.5), true);
    tg_tensor *w2 = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(2, 2), -0.25), true);
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(1, 2), (double[]){1, 2});
    tg_param_list p1 = {0}, p2 = {0};
    tg_param_list_add(&p1, "w1", w1);
    tg_param_list_add(&p2, "w2", w2);
    tg_optimizer *o = tg_optimizer_new(&rule_kind, &p1, &(rule_opts){0.1, 0});
    assert_true(tg_optimizer_set_in_backward(o, true));
    tg_optimizer_add_group(o, &p2, 0.1, 0.5);
    tg_tensor *w1_0 = tg_clone(w1), *w2_0 = tg_clone(w2);
    tg_backward(tg_sum(tg_square(tg_linear(tg_linear(x, w1, NULL), w2, NULL))));
    assert_true(tg_get_flat(w1, 0) != tg_get_flat(w1_0, 0));
    assert_true(tg_get_flat(w2, 0) == tg_get_flat(w2_0, 0));
    rule_watched = w2, rule_last_step = 0;
    tg_optimizer_step(o);
    tg_tape_reset();
    assert_int_equal(rule_last_step, 1); /* w2's first update, through step() */
    assert_true(tg_get_flat(w2, 0) != tg_get_flat(w2_0, 0));
    /* w1 read twice: the usual path, its second step */
    tg_optimizer_zero_grad(o);
    tg_tensor *h = tg_linear(tg_linear(x, w1, NULL), w1, NULL);
    tg_backward(tg_sum(tg_square(h)));
    rule_watched = w1, rule_last_step = 0;
    tg_optimizer_step(o);
    tg_tape_reset();
    assert_int_equal(rule_last_step, 2);
    tg_optimizer_free(o);
    tg_param_list_free(&p1), tg_param_list_free(&p2);
    tg_free(w1), tg_free(w2), tg_free(x), tg_free(w1_0), tg_free(w2_0);
}

/* Turned on between two ops reading the same weight: the first was recorded uncounted, so the
 * tape cannot tell the weight is read twice; this tape keeps the usual path (the first op's
 * backward reads the weight after the second's), and x's gradient is the usual one. */
static void test_in_backward_on_mid_forward(void **state)
{
    (void)state;
    double gx[2][2];
    for (int ib = 0; ib < 2; ib++) {
        ib_tiny t = ib_tiny_make(false);
        tg_tensor *x = tg_set_requires_grad(tg_clone(t.x), true);
        tg_tensor *h1 = tg_linear(x, t.w, NULL);
        if (ib) assert_true(tg_optimizer_set_in_backward(t.opt, true));
        tg_tensor *h2 = tg_linear(x, t.w, NULL);
        tg_backward(tg_add(tg_sum(tg_square(h1)), tg_sum(tg_square(h2))));
        for (int k = 0; k < 2; k++) gx[ib][k] = tg_get_flat(x->grad, k);
        tg_optimizer_step(t.opt);
        tg_tape_reset();
        tg_free(x);
        ib_tiny_drop(&t);
    }
    for (int k = 0; k < 2; k++) assert_close(gx[1][k], gx[0][k], 1e-14);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_plain),
        cmocka_unit_test(test_in_backward_matches_step),
        cmocka_unit_test(test_in_backward_kinds),
        cmocka_unit_test(test_in_backward_only_when_safe),
        cmocka_unit_test(test_in_backward_tg_grad_and_second_backward),
        cmocka_unit_test(test_in_backward_accumulation_refused),
        cmocka_unit_test(test_in_backward_off_before_step),
        cmocka_unit_test(test_in_backward_frozen_weight),
        cmocka_unit_test(test_in_backward_switches),
        cmocka_unit_test(test_in_backward_rule_per_group),
        cmocka_unit_test(test_in_backward_on_mid_forward),
        cmocka_unit_test(test_sgd_momentum_first_and_second_step),
        cmocka_unit_test(test_sgd_dampening),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_sgd_weight_decay),
        cmocka_unit_test(test_adam_first_two_steps),
        cmocka_unit_test(test_adam_options),
        cmocka_unit_test(test_rmsprop),
        cmocka_unit_test(test_adagrad),
        cmocka_unit_test(test_param_groups),
        cmocka_unit_test(test_params_without_grad_skipped),
        cmocka_unit_test(test_zero_grad_lr_schedule),
        cmocka_unit_test(test_sgd_float32),
        cmocka_unit_test(test_adam_float32_rounding),
        cmocka_unit_test(test_no_allocation_in_step),
        cmocka_unit_test(test_fit_line),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_unreached_param_after_zero_grad),
        cmocka_unit_test(test_gradient_written_by_hand_after_zero_grad),
        cmocka_unit_test(test_large_update_split_matches_one_thread),
        cmocka_unit_test(test_non_elementwise_kind_sees_whole_tensors),
        cmocka_unit_test(test_elementwise_kind_gets_slices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
