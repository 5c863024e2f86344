/* RMSprop (Hinton's lecture 6e) with torch.optim.RMSprop's update, per parameter:
 *   g += wd·p;  v = α·v + (1-α)·g²;
 *   centered: ḡ = α·ḡ + (1-α)·g and the denominator is sqrt(v - ḡ²) + eps, else sqrt(v) + eps;
 *   momentum μ > 0: b = μ·b + g/denominator, p -= lr·b;  else p -= lr·g/denominator. */
#include <stddef.h>
#include <stdio.h>
#include <tgmath.h>
#include "tg/optim.h"

/* buf and gavg are NULL without momentum / centering. The loop-invariant tests are hoisted out of
 * the loop by the compiler (loop unswitching at -O3). */
#define RMSPROP_KERNEL(T, NAME)                                                                  \
    static void NAME(T *restrict p, const T *restrict g, T *restrict v, T *restrict buf,         \
                     T *restrict gavg, int64_t n, const tg_rmsprop_opts *o, double lr_,          \
                     double wd_)                                                                 \
    {                                                                                            \
        const T lr = (T)lr_, wd = (T)wd_, alpha = (T)o->alpha, eps = (T)o->eps;                  \
        const T mu = (T)o->momentum, c = (T)(1.0 - o->alpha); /* 1-α rounded once */            \
        for (int64_t i = 0; i < n; i++) {                                                        \
            const T gi = wd_ != 0 ? g[i] + wd * p[i] : g[i];                                     \
            v[i] = alpha * v[i] + c * gi * gi;                                                   \
            T denom;                                                                             \
            if (gavg) {                                                                          \
                gavg[i] = alpha * gavg[i] + c * gi;                                              \
                denom = sqrt(v[i] - gavg[i] * gavg[i]) + eps;                                    \
            } else {                                                                             \
                denom = sqrt(v[i]) + eps;                                                        \
            }                                                                                    \
            if (buf) {                                                                           \
                buf[i] = mu * buf[i] + gi / denom;                                               \
                p[i] = p[i] - lr * buf[i];                                                       \
            } else {                                                                             \
                p[i] = p[i] - lr * (gi / denom);                                                 \
            }                                                                                    \
        }                                                                                        \
    }
RMSPROP_KERNEL(float, rmsprop_f32)
RMSPROP_KERNEL(double, rmsprop_f64)

/* PyTorch's state order: square_avg, then momentum_buffer and grad_avg when in use. */
static int rmsprop_state_names(const void *settings, const char **names)
{
    const tg_rmsprop_opts *o = settings;
    int n = 0;
    names[n++] = "square_avg";
    if (o->momentum > 0) names[n++] = "momentum_buffer";
    if (o->centered) names[n++] = "grad_avg";
    return n;
}

static void *data_or_null(const tg_optim_update *u, bool used, int k)
{
    return used ? u->state[k]->data : NULL;
}

static void rmsprop_update(const tg_optim_update *u)
{
    const tg_rmsprop_opts *o = u->settings;
    tg_tensor *p = u->param;
    bool momentum = o->momentum > 0;
    void *v = u->state[0]->data, *buf = data_or_null(u, momentum, 1);
    void *gavg = data_or_null(u, o->centered, momentum ? 2 : 1);
    if (p->dtype == TG_F32)
        rmsprop_f32(p->data, u->grad->data, v, buf, gavg, p->numel, o, u->lr, u->weight_decay);
    else
        rmsprop_f64(p->data, u->grad->data, v, buf, gavg, p->numel, o, u->lr, u->weight_decay);
}

static bool rmsprop_validate(const void *settings, char *why, size_t len)
{
    const tg_rmsprop_opts *o = settings;
    if (!(o->alpha >= 0 && o->alpha <= 1) || !(o->eps >= 0) || !(o->momentum >= 0) ||
        !isfinite(o->eps) || !isfinite(o->momentum)) {
        snprintf(why, len, "need alpha in [0, 1], eps >= 0 and momentum >= 0, finite (got %g, "
                 "%g, %g); tg_rmsprop_defaults() gives 0.99, 1e-8, 0", o->alpha, o->eps,
                 o->momentum);
        return false;
    }
    return true;
}

static void rmsprop_describe(const void *settings, char *buf, size_t len)
{
    const tg_rmsprop_opts *o = settings;
    snprintf(buf, len, "alpha=%.17g eps=%.17g weight_decay=%.17g momentum=%.17g centered=%d",
             o->alpha, o->eps, o->weight_decay, o->momentum, (int)o->centered);
}

static const tg_optimizer_kind rmsprop_kind = {
    .name = "rmsprop",
    .settings_size = sizeof(tg_rmsprop_opts),
    .lr_offset = offsetof(tg_rmsprop_opts, lr),
    .weight_decay_offset = offsetof(tg_rmsprop_opts, weight_decay),
    .state_names = rmsprop_state_names,
    .saves_step = true,
    .validate = rmsprop_validate,
    .describe = rmsprop_describe,
    .update = rmsprop_update,
    .elementwise = true,
};

tg_rmsprop_opts tg_rmsprop_defaults(void)
{
    return (tg_rmsprop_opts){.lr = 0.01, .alpha = 0.99, .eps = 1e-8};
}

tg_optimizer *tg_rmsprop_new(const tg_param_list *params, tg_rmsprop_opts opts)
{
    return tg_optimizer_new(&rmsprop_kind, params, &opts);
}
