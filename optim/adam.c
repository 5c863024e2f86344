/* Adam (Kingma & Ba) with PyTorch's update rule, per parameter with its own step count t:
 *   g += wd·p (L2) or p *= 1 - lr·wd (decoupled, AdamW);
 *   m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
 *   p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps). */
#include <stddef.h>
#include <stdio.h>
#include <tgmath.h>
#include "autograd/cpu_clones.h"
#include "tg/optim.h"

/* m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;  p -= step_size · m / (sqrt(v)/sqrt(1-β2^t) + eps) */
#define ADAM_UPDATE(G)                                                                           \
    do {                                                                                         \
        const __typeof__(*p) gi = (G);                                                           \
        m[i] = b1 * m[i] + c1 * gi;                                                              \
        v[i] = b2 * v[i] + c2 * gi * gi;                                                         \
        p[i] = p[i] - step_size * (m[i] / (sqrt(v[i]) / bc2_sqrt + eps));                        \
    } while (0)

#define ADAM_KERNEL(T, NAME)                                                                     \
    static TG_CPU_CLONES void NAME(T *restrict p, const T *restrict g, T *restrict m,           \
                                   T *restrict v, int64_t n, const tg_adam_opts *o, double lr,   \
                                   double wd_, int64_t t)                                        \
    {                                                                                            \
        /* Bias corrections in double whatever T is: β^t for large t is tiny but not zero. */    \
        const T step_size = (T)(lr / (1.0 - pow(o->beta1, (double)t)));                         \
        const T bc2_sqrt = (T)sqrt(1.0 - pow(o->beta2, (double)t));                             \
        const T b1 = (T)o->beta1, b2 = (T)o->beta2, eps = (T)o->eps, wd = (T)wd_;               \
        const T decay = (T)(1.0 - lr * wd_);                                                    \
        /* 1-β in double, then rounded once (as PyTorch does): in float, 1.0f - 0.999f is off \
         * by 1.3e-5 relative, which shifts every early Adam step by ~6e-6. */                 \
        const T c1 = (T)(1.0 - o->beta1), c2 = (T)(1.0 - o->beta2);                             \
        /* One straight loop per case (branches hoisted, pointers restrict) so each vectorises; \
         * each computes the general rule's arithmetic. sqrt vectorises with -fno-math-errno   \
         * (the release OPT); v >= 0, so errno is never set anyway. */                           \
        if (wd_ == 0)                                                                            \
            for (int64_t i = 0; i < n; i++) ADAM_UPDATE(g[i]);                                   \
        else if (o->decoupled)                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                    \
                p[i] = p[i] * decay;                                                             \
                ADAM_UPDATE(g[i]);                                                               \
            }                                                                                    \
        else                                                                                     \
            for (int64_t i = 0; i < n; i++) ADAM_UPDATE(g[i] + wd * p[i]);                       \
    }
ADAM_KERNEL(float, adam_f32)
ADAM_KERNEL(double, adam_f64)

static void adam_update(const tg_optim_update *u)
{
    tg_tensor *p = u->param, *m = u->state[0], *v = u->state[1];
    if (p->dtype == TG_F32)
        adam_f32(p->data, u->grad->data, m->data, v->data, p->numel, u->settings, u->lr,
                 u->weight_decay, u->step);
    else
        adam_f64(p->data, u->grad->data, m->data, v->data, p->numel, u->settings, u->lr,
                 u->weight_decay, u->step);
}

static int adam_state_names(const void *settings, const char **names)
{
    names[0] = "exp_avg";
    names[1] = "exp_avg_sq";
    return 2;
}

static bool adam_validate(const void *settings, char *why, size_t len)
{
    const tg_adam_opts *a = settings;
    if (!(a->beta1 >= 0 && a->beta1 < 1) || !(a->beta2 >= 0 && a->beta2 < 1)) {
        snprintf(why, len, "betas must be in [0, 1) (got %g, %g); tg_adam_defaults() gives "
                 "0.9, 0.999", a->beta1, a->beta2);
        return false;
    }
    if (!(a->eps >= 0)) {
        snprintf(why, len, "eps must be >= 0 (got %g)", a->eps);
        return false;
    }
    return true;
}

static void adam_describe(const void *settings, char *buf, size_t len)
{
    const tg_adam_opts *a = settings;
    snprintf(buf, len, "beta1=%.17g beta2=%.17g eps=%.17g weight_decay=%.17g decoupled=%d",
             a->beta1, a->beta2, a->eps, a->weight_decay, (int)a->decoupled);
}

static const tg_optimizer_kind adam_kind = {
    .name = "adam",
    .settings_size = sizeof(tg_adam_opts),
    .lr_offset = offsetof(tg_adam_opts, lr),
    .weight_decay_offset = offsetof(tg_adam_opts, weight_decay),
    .state_names = adam_state_names,
    .saves_step = true,
    .validate = adam_validate,
    .describe = adam_describe,
    .update = adam_update,
    .elementwise = true,
};

tg_adam_opts tg_adam_defaults(void)
{
    return (tg_adam_opts){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

tg_optimizer *tg_adam_new(const tg_param_list *params, tg_adam_opts opts)
{
    return tg_optimizer_new(&adam_kind, params, &opts);
}
