/* Weight initialisation for [out, in] weights, with PyTorch's formulas for the bounds. */
#include <math.h>
#include "autograd/internal.h"
#include "nn/internal.h"

static void fill_uniform(tg_tensor *t, double bound, tg_rng *rng)
{
    for (int64_t i = 0; i < t->numel; i++)
        tg_set_flat(t, i, -bound + 2.0 * bound * tg_rng_uniform(rng));
}

static void fill_normal(tg_tensor *t, double mean, double std, tg_rng *rng)
{
    for (int64_t i = 0; i < t->numel; i++)
        tg_set_flat(t, i, mean + std * tg_rng_normal(rng));
}

void tg_init_linear_(tg_tensor *w, tg_tensor *b, tg_init init, tg_rng *rng)
{
    char s[128];
    tg_check_float(w, "tg_init_linear_");
    if (w->ndim != 2)
        tg_fail("tg_init_linear_: weight must be [out, in], got %s", tg_shape_str(w, s, sizeof s));
    if (b) {
        tg_check_float(b, "tg_init_linear_");
        if (b->numel != w->shape[0])
            tg_fail("tg_init_linear_: bias %s does not match weight [%lld, %lld]",
                     tg_shape_str(b, s, sizeof s), (long long)w->shape[0], (long long)w->shape[1]);
    }
    double fan_in = (double)w->shape[1], fan_out = (double)w->shape[0];
    switch (init.kind) {
    case TG_INIT_PYTORCH: {
        /* kaiming_uniform_(a=sqrt(5)): gain sqrt(2/(1+5)), bound gain·sqrt(3/fan_in), which is
         * 1/sqrt(fan_in); the bias uses the same 1/sqrt(fan_in). */
        double bound = fan_in > 0 ? 1.0 / sqrt(fan_in) : 0.0;
        fill_uniform(w, bound, rng);
        if (b) fill_uniform(b, bound, rng);
        return;
    }
    case TG_INIT_NORMAL:
        if (!(init.std >= 0))
            tg_fail("tg_init_linear_: normal init needs std >= 0 (got %g)", init.std);
        fill_normal(w, init.mean, init.std, rng);
        break;
    case TG_INIT_XAVIER_UNIFORM: {
        double gain = init.gain > 0 ? init.gain : 1.0;
        fill_uniform(w, fan_in + fan_out > 0 ? gain * sqrt(6.0 / (fan_in + fan_out)) : 0.0, rng);
        break;
    }
    case TG_INIT_KAIMING_NORMAL: {
        double gain = init.gain > 0 ? init.gain : sqrt(2.0);   /* ReLU, fan_in mode */
        fill_normal(w, 0.0, fan_in > 0 ? gain / sqrt(fan_in) : 0.0, rng);
        break;
    }
    case TG_INIT_ZEROS:
        tg_fill_(w, 0.0);
        break;
    case TG_INIT_VALUES:
        if (!init.weight)
            tg_fail("tg_init_linear_: TG_INIT_VALUES needs a weight array ([out*in] doubles)");
        for (int64_t i = 0; i < w->numel; i++) tg_set_flat(w, i, init.weight[i]);
        for (int64_t i = 0; b && i < b->numel; i++)
            tg_set_flat(b, i, init.bias ? init.bias[i] : 0.0);
        return;
    default:
        tg_fail("tg_init_linear_: unknown init kind %d", (int)init.kind);
    }
    if (b) tg_fill_(b, 0.0);
}
