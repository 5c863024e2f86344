/* Linear module: y = x·Wᵀ + b through the fused tg_linear op (one GEMM). */
#include <stdio.h>
#include <string.h>
#include "autograd/internal.h"
#include "nn/internal.h"

typedef struct {
    tg_module base;
    int64_t in, out;
    tg_tensor *weight, *bias;
} linear_module;

static tg_tensor *linear_forward(tg_module *self, tg_tensor *x)
{
    linear_module *l = (linear_module *)self;
    return tg_linear(x, l->weight, l->bias);
}

static void linear_describe(const tg_module *self, char *buf, size_t len)
{
    const linear_module *l = (const linear_module *)self;
    snprintf(buf, len, "in_features=%lld, out_features=%lld, bias=%s%s", (long long)l->in,
             (long long)l->out, l->bias ? "True" : "False",
             l->weight->dtype == TG_F64 ? ", dtype=f64" : "");
}

tg_module *tg_linear_new(int64_t in_features, int64_t out_features, bool bias, tg_init init,
                         tg_rng *rng)
{
    if (in_features <= 0 || out_features <= 0)
        tg_fail("tg_linear_new: sizes must be positive (in %lld, out %lld)",
                 (long long)in_features, (long long)out_features);
    if (init.dtype != TG_F32 && init.dtype != TG_F64)
        tg_fail("tg_linear_new: parameters are float32 or float64, not %s",
                 tg_dtype_name(init.dtype));
    linear_module *l = tg_module_new(sizeof *l, "Linear", linear_forward);
    l->base.describe = linear_describe;
    l->in = in_features;
    l->out = out_features;
    l->weight = tg_zeros(init.dtype, TG_SHAPE(out_features, in_features));
    l->bias = bias ? tg_zeros(init.dtype, TG_SHAPE(out_features)) : NULL;
    tg_init_linear_(l->weight, l->bias, init, rng);
    tg_module_add_param(&l->base, "weight", l->weight);
    if (l->bias) tg_module_add_param(&l->base, "bias", l->bias);
    return &l->base;
}

static linear_module *as_linear(tg_module *m, const char *op)
{
    if (!m || m->forward != linear_forward)
        tg_fail("%s: expected a module made by tg_linear_new, got %s", op,
                 m && m->kind ? m->kind : "NULL");
    return (linear_module *)m;
}

tg_tensor *tg_linear_weight(tg_module *m) { return as_linear(m, "tg_linear_weight")->weight; }
tg_tensor *tg_linear_bias(tg_module *m) { return as_linear(m, "tg_linear_bias")->bias; }

void tg_linear_set(tg_module *m, const double *weight, const double *bias)
{
    linear_module *l = as_linear(m, "tg_linear_set");
    if (weight)
        for (int64_t i = 0; i < l->weight->numel; i++) tg_set_flat(l->weight, i, weight[i]);
    if (bias && l->bias)
        for (int64_t i = 0; i < l->bias->numel; i++) tg_set_flat(l->bias, i, bias[i]);
}
