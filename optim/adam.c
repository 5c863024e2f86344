/* Adam (Kingma & Ba) with PyTorch's update rule, per parameter with its own step count t:
 *   g += wd·p (L2) or p *= 1 - lr·wd (decoupled, AdamW);
 *   m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²;
 *   p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps). */
#include <tgmath.h>
#include "autograd/cpu_clones.h"
#include "autograd/internal.h"
#include "nn/internal.h"
#include "optim/internal.h"

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
                                   int64_t t)                                                    \
    {                                                                                            \
        /* Bias corrections in double whatever T is: β^t for large t is tiny but not zero. */    \
        const T step_size = (T)(lr / (1.0 - pow(o->beta1, (double)t)));                         \
        const T bc2_sqrt = (T)sqrt(1.0 - pow(o->beta2, (double)t));                             \
        const T b1 = (T)o->beta1, b2 = (T)o->beta2, eps = (T)o->eps, wd = (T)o->weight_decay;   \
        const T decay = (T)(1.0 - lr * o->weight_decay);                                        \
        /* 1-β in double, then rounded once (as PyTorch does): in float, 1.0f - 0.999f is off \
         * by 1.3e-5 relative, which shifts every early Adam step by ~6e-6. */                 \
        const T c1 = (T)(1.0 - o->beta1), c2 = (T)(1.0 - o->beta2);                             \
        /* One straight loop per case (branches hoisted, pointers restrict) so each vectorises; \
         * the arithmetic is the general rule's, unchanged. sqrt vectorises with -fno-math-errno \
         * (the release OPT); v >= 0, so errno is never set anyway. */                           \
        if (o->weight_decay == 0)                                                                \
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

static void adam_step(tg_optimizer *o)
{
    for (int i = 0; i < o->n; i++) {
        tg_tensor *p = o->params[i];
        if (!p->grad) continue; /* never reached by a backward: no update, no state */
        int64_t t = ++o->param_steps[i];
        tg_tensor *m = tg__optimizer_state(o, 0, i), *v = tg__optimizer_state(o, 1, i);
        if (p->dtype == TG_F32)
            adam_f32(p->data, p->grad->data, m->data, v->data, p->numel, &o->adam, o->lr, t);
        else
            adam_f64(p->data, p->grad->data, m->data, v->data, p->numel, &o->adam, o->lr, t);
    }
}

tg_adam_opts tg_adam_defaults(void)
{
    return (tg_adam_opts){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

tg_optimizer *tg_adam_new(const tg_param_list *params, tg_adam_opts opts)
{
    if (!(opts.beta1 >= 0 && opts.beta1 < 1) || !(opts.beta2 >= 0 && opts.beta2 < 1))
        tg__fail("tg_adam_new: betas must be in [0, 1) (got %g, %g); tg_adam_defaults() gives "
                 "0.9, 0.999", opts.beta1, opts.beta2);
    if (!(opts.eps >= 0) || !(opts.weight_decay >= 0) || !isfinite(opts.weight_decay))
        tg__fail("tg_adam_new: eps and weight_decay must be >= 0 (got %g, %g)", opts.eps,
                 opts.weight_decay);
    static const char *const names[] = {"exp_avg", "exp_avg_sq"};
    tg_optimizer *o = tg__optimizer_new("adam", params, opts.lr, 2, names);
    o->adam = opts;
    o->per_param_step_saved = true;
    o->step = adam_step;
    return o;
}
