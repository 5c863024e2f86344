/* Adagrad (Duchi, Hazan & Singer) with torch.optim.Adagrad's update, per parameter with its own
 * step count t:
 *   g += wd·p;  s = s + g²  (s starts at initial_accumulator_value);
 *   p -= lr/(1 + (t-1)·lr_decay) · g/(sqrt(s) + eps). */
#include <stddef.h>
#include <stdio.h>
#include <tgmath.h>
#include "tg/optim.h"

#define ADAGRAD_KERNEL(T, NAME)                                                                  \
    static void NAME(T *restrict p, const T *restrict g, T *restrict sum, int64_t n, double clr_, \
                     double wd_, double eps_)                                                    \
    {                                                                                            \
        const T clr = (T)clr_, wd = (T)wd_, eps = (T)eps_;                                       \
        for (int64_t i = 0; i < n; i++) {                                                        \
            const T gi = wd_ != 0 ? g[i] + wd * p[i] : g[i];                                     \
            sum[i] = sum[i] + gi * gi;                                                           \
            p[i] = p[i] - clr * (gi / (sqrt(sum[i]) + eps));                                     \
        }                                                                                        \
    }
ADAGRAD_KERNEL(float, adagrad_f32)
ADAGRAD_KERNEL(double, adagrad_f64)

static void adagrad_update(const tg_optim_update *u)
{
    const tg_adagrad_opts *o = u->settings;
    tg_tensor *p = u->param;
    /* The decayed rate in double, like PyTorch (a Python float). */
    double clr = u->lr / (1 + (double)(u->step - 1) * o->lr_decay);
    if (p->dtype == TG_F32)
        adagrad_f32(p->data, u->grad->data, u->state[0]->data, p->numel, clr, u->weight_decay,
                    o->eps);
    else
        adagrad_f64(p->data, u->grad->data, u->state[0]->data, p->numel, clr, u->weight_decay,
                    o->eps);
}

static int adagrad_state_names(const void *settings, const char **names)
{
    names[0] = "sum";
    return 1;
}

static double adagrad_state_init(const void *settings, int k)
{
    return ((const tg_adagrad_opts *)settings)->initial_accumulator_value;
}

static bool adagrad_validate(const void *settings, char *why, size_t len)
{
    const tg_adagrad_opts *o = settings;
    if (!(o->lr_decay >= 0) || !(o->initial_accumulator_value >= 0) || !(o->eps >= 0) ||
        !isfinite(o->lr_decay) || !isfinite(o->initial_accumulator_value) || !isfinite(o->eps)) {
        snprintf(why, len, "lr_decay, initial_accumulator_value and eps must be finite and >= 0 "
                 "(got %g, %g, %g); tg_adagrad_defaults() gives 0, 0, 1e-10", o->lr_decay,
                 o->initial_accumulator_value, o->eps);
        return false;
    }
    return true;
}

static void adagrad_describe(const void *settings, char *buf, size_t len)
{
    const tg_adagrad_opts *o = settings;
    snprintf(buf, len, "lr_decay=%.17g weight_decay=%.17g initial_accumulator_value=%.17g "
             "eps=%.17g", o->lr_decay, o->weight_decay, o->initial_accumulator_value, o->eps);
}

static const tg_optimizer_kind adagrad_kind = {
    .name = "adagrad",
    .settings_size = sizeof(tg_adagrad_opts),
    .lr_offset = offsetof(tg_adagrad_opts, lr),
    .weight_decay_offset = offsetof(tg_adagrad_opts, weight_decay),
    .state_names = adagrad_state_names,
    .state_init = adagrad_state_init,
    .saves_step = true,
    .validate = adagrad_validate,
    .describe = adagrad_describe,
    .update = adagrad_update,
    .elementwise = true,
};

tg_adagrad_opts tg_adagrad_defaults(void)
{
    return (tg_adagrad_opts){.lr = 0.01, .eps = 1e-10};
}

tg_optimizer *tg_adagrad_new(const tg_param_list *params, tg_adagrad_opts opts)
{
    return tg_optimizer_new(&adagrad_kind, params, &opts);
}
