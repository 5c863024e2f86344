/* Conv2d module: y = conv2d(x, W) + b through tg_conv2d, W [out, in/groups, k, k]. */
#include <math.h>
#include <stdio.h>
#include "autograd/internal.h"
#include "nn/internal.h"

typedef struct {
    tg_module base;
    int64_t in, out;
    int kernel;
    tg_conv2d_opts opts;
    tg_tensor *weight, *bias;
} conv2d_module;

static tg_tensor *conv2d_forward(tg_module *self, tg_tensor *x)
{
    conv2d_module *c = (conv2d_module *)self;
    return tg_conv2d(x, c->weight, c->bias, &c->opts);
}

static int or_default(int v, int fallback) { return v ? v : fallback; }

static void conv2d_describe(const tg_module *self, char *buf, size_t len)
{
    const conv2d_module *c = (const conv2d_module *)self;
    const tg_conv2d_opts *o = &c->opts;
    int n = snprintf(buf, len, "%lld, %lld, kernel_size=(%d, %d), stride=(%d, %d)",
                     (long long)c->in, (long long)c->out, c->kernel, c->kernel,
                     or_default(o->stride[0], 1), or_default(o->stride[1], 1));
    if (n < 0 || (size_t)n >= len) return;
    if (o->padding[0] || o->padding[1])
        n += snprintf(buf + n, len - (size_t)n, ", padding=(%d, %d)", o->padding[0],
                      o->padding[1]);
    bool dilated = or_default(o->dilation[0], 1) != 1 || or_default(o->dilation[1], 1) != 1;
    if ((size_t)n < len && dilated)
        n += snprintf(buf + n, len - (size_t)n, ", dilation=(%d, %d)", o->dilation[0],
                      o->dilation[1]);
    if ((size_t)n < len && or_default(o->groups, 1) != 1)
        n += snprintf(buf + n, len - (size_t)n, ", groups=%d", o->groups);
    if ((size_t)n < len && !c->bias) snprintf(buf + n, len - (size_t)n, ", bias=False");
}

static void fill_uniform(tg_tensor *t, double bound, tg_rng *rng)
{
    for (int64_t i = 0; i < t->numel; i++)
        tg_set_flat(t, i, -bound + 2.0 * bound * tg_rng_uniform(rng));
}

/* PyTorch's fans for a conv weight [out, in/groups, k, k]: fan_in = in/groups·k², fan_out =
 * out·k². Every initialiser but Xavier needs fan_in only, so the weight is initialised as the
 * [out, fan_in] matrix it is for tg_init_linear_; Xavier also needs the true fan_out. */
static void init_conv(tg_tensor *w, tg_tensor *b, tg_init init, tg_rng *rng)
{
    int64_t out = w->shape[0], fan_in = w->shape[1] * w->shape[2] * w->shape[3];
    if (init.kind == TG_INIT_XAVIER_UNIFORM) {
        double gain = init.gain > 0 ? init.gain : 1.0;
        double fan_out = (double)(out * w->shape[2] * w->shape[3]);
        fill_uniform(w, gain * sqrt(6.0 / ((double)fan_in + fan_out)), rng);
        if (b) tg_fill_(b, 0.0);
        return;
    }
    tg_tensor *matrix = tg_wrap(w->dtype, TG_SHAPE(out, fan_in), w->data);
    tg_init_linear_(matrix, b, init, rng);
    tg_free(matrix);   /* the header only: the data is w's */
}

static int opt_or(const int *v, int i, int fallback) { return v[i] ? v[i] : fallback; }

tg_module *tg_conv2d_new(int64_t in_channels, int64_t out_channels, int kernel,
                         const tg_conv2d_opts *opts, bool bias, tg_init init, tg_rng *rng)
{
    tg_conv2d_opts o = opts ? *opts : (tg_conv2d_opts){0};
    int groups = o.groups ? o.groups : 1;
    if (in_channels <= 0 || out_channels <= 0 || kernel <= 0)
        tg_fail("tg_conv2d_new: channels and kernel must be positive (in %lld, out %lld, "
                 "kernel %d)", (long long)in_channels, (long long)out_channels, kernel);
    if (groups < 1 || in_channels % groups || out_channels % groups)
        tg_fail("tg_conv2d_new: groups %d must divide in_channels %lld and out_channels %lld",
                 groups, (long long)in_channels, (long long)out_channels);
    for (int a = 0; a < 2; a++)
        if (opt_or(o.stride, a, 1) < 1 || o.padding[a] < 0 || opt_or(o.dilation, a, 1) < 1)
            tg_fail("tg_conv2d_new: stride and dilation must be >= 1 and padding >= 0 (axis "
                     "%d: stride %d, padding %d, dilation %d)", a, o.stride[a], o.padding[a],
                     o.dilation[a]);
    if (init.dtype != TG_F32 && init.dtype != TG_F64)
        tg_fail("tg_conv2d_new: parameters are float32 or float64, not %s",
                 tg_dtype_name(init.dtype));
    conv2d_module *c = tg_module_new(sizeof *c, "Conv2d", conv2d_forward);
    c->base.describe = conv2d_describe;
    c->in = in_channels;
    c->out = out_channels;
    c->kernel = kernel;
    c->opts = o;
    c->weight = tg_zeros(init.dtype, TG_SHAPE(out_channels, in_channels / groups, kernel, kernel));
    c->bias = bias ? tg_zeros(init.dtype, TG_SHAPE(out_channels)) : NULL;
    init_conv(c->weight, c->bias, init, rng);
    tg_module_add_param(&c->base, "weight", c->weight);
    if (c->bias) tg_module_add_param(&c->base, "bias", c->bias);
    return &c->base;
}
