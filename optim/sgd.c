/* SGD with momentum, dampening, Nesterov and L2 weight decay, in PyTorch's form:
 *   d = g + wd·p;  buf = d (first update) or m·buf + (1 - dampening)·d;
 *   d = nesterov ? d + m·buf : buf;  p -= lr·d. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include "autograd/cpu_clones.h"
#include "tg/optim.h"

/* One definition, stamped for float and double: the update runs in the parameter's dtype.
 * Every case is its own straight loop (the branches are hoisted out of the element loop and the
 * pointers are restrict), so each one vectorises; a per-element test of buf / wd / first keeps
 * gcc from vectorising (docs/DESIGN.md, optimizers). Each case computes exactly the general
 * rule's arithmetic, so the cases agree bit for bit with it. */
#define SGD_KERNEL(T, NAME)                                                                      \
    static TG_CPU_CLONES void NAME(T *restrict p, const T *restrict g, T *restrict buf,         \
                                   int64_t n, double lr_, double m_, double damp_, double wd_,   \
                                   bool nesterov, bool first)                                    \
    {                                                                                            \
        const T lr = (T)lr_, m = (T)m_, keep = (T)(1.0 - damp_), wd = (T)wd_;                  \
        if (!buf) {                                                                              \
            if (wd_ == 0)                                                                        \
                for (int64_t i = 0; i < n; i++) p[i] = p[i] - lr * g[i];                         \
            else                                                                                 \
                for (int64_t i = 0; i < n; i++) p[i] = p[i] - lr * (g[i] + wd * p[i]);           \
            return;                                                                              \
        }                                                                                        \
        /* d = g + wd·p; buf = first ? d : m·buf + keep·d; p -= lr·(nesterov ? d + m·buf : buf) */ \
        if (wd_ == 0 && first && !nesterov)                                                      \
            for (int64_t i = 0; i < n; i++) {                                                    \
                buf[i] = g[i];                                                                   \
                p[i] = p[i] - lr * buf[i];                                                       \
            }                                                                                    \
        else if (wd_ == 0 && !first && !nesterov)                                                \
            for (int64_t i = 0; i < n; i++) {                                                    \
                buf[i] = m * buf[i] + keep * g[i];                                               \
                p[i] = p[i] - lr * buf[i];                                                       \
            }                                                                                    \
        else if (first)                                                                          \
            for (int64_t i = 0; i < n; i++) {                                                    \
                T d = wd_ != 0 ? g[i] + wd * p[i] : g[i];                                        \
                buf[i] = d;                                                                      \
                p[i] = p[i] - lr * (nesterov ? d + m * buf[i] : buf[i]);                         \
            }                                                                                    \
        else                                                                                     \
            for (int64_t i = 0; i < n; i++) {                                                    \
                T d = wd_ != 0 ? g[i] + wd * p[i] : g[i];                                        \
                buf[i] = m * buf[i] + keep * d;                                                  \
                p[i] = p[i] - lr * (nesterov ? d + m * buf[i] : buf[i]);                         \
            }                                                                                    \
    }
SGD_KERNEL(float, sgd_f32)
SGD_KERNEL(double, sgd_f64)

static void sgd_update(const tg_optim_update *u)
{
    const tg_sgd_opts *s = u->settings;
    tg_tensor *p = u->param, *buf = s->momentum != 0 ? u->state[0] : NULL;
    bool first = u->step == 1;
    if (p->dtype == TG_F32)
        sgd_f32(p->data, u->grad->data, buf ? buf->data : NULL, p->numel, u->lr, s->momentum,
                s->dampening, u->weight_decay, s->nesterov, first);
    else
        sgd_f64(p->data, u->grad->data, buf ? buf->data : NULL, p->numel, u->lr, s->momentum,
                s->dampening, u->weight_decay, s->nesterov, first);
}

static int sgd_state_names(const void *settings, const char **names)
{
    const tg_sgd_opts *s = settings;
    names[0] = "momentum_buffer";
    return s->momentum != 0 ? 1 : 0; /* plain SGD keeps no state, as PyTorch */
}

static bool sgd_validate(const void *settings, char *why, size_t len)
{
    const tg_sgd_opts *s = settings;
    if (!(s->momentum >= 0) || !isfinite(s->momentum) || !isfinite(s->dampening)) {
        snprintf(why, len, "momentum must be finite and >= 0 and dampening finite (got %g, %g)",
                 s->momentum, s->dampening);
        return false;
    }
    if (s->nesterov && (s->momentum <= 0 || s->dampening != 0)) {
        snprintf(why, len, "Nesterov momentum requires momentum > 0 and dampening 0 (got %g, %g)",
                 s->momentum, s->dampening);
        return false;
    }
    return true;
}

static void sgd_describe(const void *settings, char *buf, size_t len)
{
    const tg_sgd_opts *s = settings;
    snprintf(buf, len, "momentum=%.17g dampening=%.17g nesterov=%d weight_decay=%.17g",
             s->momentum, s->dampening, (int)s->nesterov, s->weight_decay);
}

/* Plain SGD is linear in the gradient: p - lr·(g + wd·p) = (1 - lr·wd)·p - lr·g. */
static bool sgd_in_backward_rule(const void *settings, double lr, double weight_decay,
                                 double *alpha, double *beta)
{
    const tg_sgd_opts *s = settings;
    if (s->momentum != 0) return false;
    *alpha = -lr;
    *beta = 1 - lr * weight_decay;
    return true;
}

static const tg_optimizer_kind sgd_kind = {
    .name = "sgd",
    .settings_size = sizeof(tg_sgd_opts),
    .lr_offset = offsetof(tg_sgd_opts, lr),
    .weight_decay_offset = offsetof(tg_sgd_opts, weight_decay),
    .state_names = sgd_state_names,
    .validate = sgd_validate,
    .describe = sgd_describe,
    .update = sgd_update,
    .elementwise = true,
    .in_backward_rule = sgd_in_backward_rule,
};

tg_optimizer *tg_sgd_new(const tg_param_list *params, tg_sgd_opts opts)
{
    return tg_optimizer_new(&sgd_kind, params, &opts);
}
