/* BatchNorm1d / BatchNorm2d modules: tg_batch_norm with the module's training flag. The running
 * statistics are buffers (saved by checkpoints, never given to optimizers); num_batches_tracked
 * counts the training forwards, as PyTorch's does (an int64 scalar in its files). */
#include <math.h>
#include <stdio.h>
#include "autograd/internal.h"
#include "nn/internal.h"

typedef struct {
    tg_module base;
    int64_t features;
    int spatial_dims;        /* 1d: 0 or 1 ([N, C] or [N, C, L]); 2d: 2 */
    double eps, momentum;    /* momentum 0: cumulative average (PyTorch's momentum=None) */
    tg_tensor *weight, *bias;                              /* NULL without affine */
    tg_tensor *running_mean, *running_var, *num_batches;   /* NULL without running stats */
} batch_norm_module;

static void check_input(const batch_norm_module *b, const tg_tensor *x)
{
    char s[96];
    bool rank_ok = b->spatial_dims == 2 ? x->ndim == 4 : x->ndim == 2 || x->ndim == 3;
    if (!rank_ok || x->shape[1] != b->features)
        tg_fail("%s(%lld): expected input %s with %lld channels on axis 1, got %s", b->base.kind,
                 (long long)b->features,
                 b->spatial_dims == 2 ? "[N, C, H, W]" : "[N, C] or [N, C, L]",
                 (long long)b->features, tg_shape_str(x, s, sizeof s));
}

static tg_tensor *batch_norm_forward(tg_module *self, tg_tensor *x)
{
    batch_norm_module *b = (batch_norm_module *)self;
    tg_check_live(x, b->base.kind);
    check_input(b, x);
    bool batch_stats = self->training || !b->running_mean;
    double momentum = b->momentum;
    if (self->training && b->num_batches) {
        double seen = tg_get_flat(b->num_batches, 0) + 1;
        tg_set_flat(b->num_batches, 0, seen);
        if (momentum == 0) momentum = 1.0 / seen;
    }
    return tg_batch_norm(x, b->weight, b->bias, b->running_mean, b->running_var, batch_stats,
                         momentum, b->eps);
}

static void batch_norm_describe(const tg_module *self, char *buf, size_t len)
{
    const batch_norm_module *b = (const batch_norm_module *)self;
    char momentum[32] = "None";
    if (b->momentum > 0) snprintf(momentum, sizeof momentum, "%g", b->momentum);
    snprintf(buf, len, "%lld, eps=%g, momentum=%s, affine=%s, track_running_stats=%s",
             (long long)b->features, b->eps, momentum, b->weight ? "True" : "False",
             b->running_mean ? "True" : "False");
}

static tg_module *batch_norm_new(int64_t features, const tg_batch_norm_opts *opts, int spatial,
                                 const char *kind, const char *op)
{
    tg_batch_norm_opts o = opts ? *opts : (tg_batch_norm_opts){0};
    double eps = o.eps ? o.eps : 1e-5, momentum = o.momentum ? o.momentum : 0.1;
    if (features <= 0) tg_fail("%s: num_features must be positive (got %lld)", op,
                                (long long)features);
    if (!(eps > 0) || !(momentum > 0 && momentum <= 1))
        tg_fail("%s: eps must be > 0 and momentum in (0, 1] (got eps %g, momentum %g)", op, eps,
                 momentum);
    if (o.dtype != TG_F32 && o.dtype != TG_F64)
        tg_fail("%s: parameters are float32 or float64, not %s", op, tg_dtype_name(o.dtype));
    batch_norm_module *b = tg_module_new(sizeof *b, kind, batch_norm_forward);
    b->base.describe = batch_norm_describe;
    b->features = features;
    b->spatial_dims = spatial;
    b->eps = eps;
    b->momentum = o.cumulative ? 0 : momentum;
    if (!o.no_affine) {
        b->weight = tg_module_add_param(&b->base, "weight", tg_ones(o.dtype, TG_SHAPE(features)));
        b->bias = tg_module_add_param(&b->base, "bias", tg_zeros(o.dtype, TG_SHAPE(features)));
    }
    if (!o.no_running_stats) {
        b->running_mean = tg_module_add_buffer(&b->base, "running_mean",
                                               tg_zeros(o.dtype, TG_SHAPE(features)));
        b->running_var = tg_module_add_buffer(&b->base, "running_var",
                                              tg_ones(o.dtype, TG_SHAPE(features)));
        b->num_batches = tg_module_add_buffer(&b->base, "num_batches_tracked",
                                              tg_zeros(TG_I64, 0, NULL));
    }
    return &b->base;
}

tg_module *tg_batch_norm1d_new(int64_t num_features, const tg_batch_norm_opts *opts)
{
    return batch_norm_new(num_features, opts, 1, "BatchNorm1d", "tg_batch_norm1d_new");
}

tg_module *tg_batch_norm2d_new(int64_t num_features, const tg_batch_norm_opts *opts)
{
    return batch_norm_new(num_features, opts, 2, "BatchNorm2d", "tg_batch_norm2d_new");
}
