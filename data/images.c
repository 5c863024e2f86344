/* Image data sets as NCHW tensors: the [N, H*W] rows of IDX files viewed as [N, C, H, W], and
 * per-channel normalisation (x - mean_c) / std_c. */
#include <math.h>
#include "autograd/internal.h"
#include "tg/data.h"

static void check_images(const tg_tensor *x, const char *op)
{
    char s[96];
    tg_check_float(x, op);
    if (x->ndim != 4)
        tg_fail("%s: images must be [N, C, H, W], got %s (tg_dataset_as_images reshapes "
                 "[N, H*W] rows)", op, tg_shape_str(x, s, sizeof s));
}

void tg_dataset_as_images(tg_dataset *d, int64_t channels, int64_t height, int64_t width)
{
    char s[96];
    if (!d || !d->x) tg_fail("tg_dataset_as_images: NULL data set or data set without x");
    tg_tensor *x = d->x;
    if (!x->persistent)
        tg_fail("tg_dataset_as_images: x is an intermediate; only a data set's own tensors "
                 "can be reshaped in place");
    int64_t n = x->ndim ? x->shape[0] : 0;
    if (channels < 1 || height < 1 || width < 1 || n * channels * height * width != x->numel)
        tg_fail("tg_dataset_as_images: %s does not hold [%lld, %lld, %lld, %lld] images",
                 tg_shape_str(x, s, sizeof s), (long long)n, (long long)channels,
                 (long long)height, (long long)width);
    x->ndim = 4;
    x->shape[1] = channels;
    x->shape[2] = height;
    x->shape[3] = width;
}

void tg_channel_stats(const tg_tensor *x, double *mean, double *std)
{
    check_images(x, "tg_channel_stats");
    int64_t n = x->shape[0], c = x->shape[1], plane = x->shape[2] * x->shape[3];
    if (n * plane == 0) tg_fail("tg_channel_stats: no images (N*H*W is 0)");
    for (int64_t k = 0; k < c; k++) {
        /* Two passes in double: the one-pass E[x²]-E[x]² loses digits over millions of pixels. */
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t p = 0; p < plane; p++) sum += tg_get_flat(x, (i * c + k) * plane + p);
        double m = sum / (double)(n * plane);
        for (int64_t i = 0; i < n; i++)
            for (int64_t p = 0; p < plane; p++) {
                double v = tg_get_flat(x, (i * c + k) * plane + p) - m;
                sq += v * v;
            }
        mean[k] = m;
        std[k] = sqrt(sq / (double)(n * plane));   /* population std, as torchvision recipes */
    }
}

void tg_normalize_channels_(tg_tensor *x, const double *mean, const double *std)
{
    check_images(x, "tg_normalize_channels_");
    int64_t n = x->shape[0], c = x->shape[1], plane = x->shape[2] * x->shape[3];
    for (int64_t k = 0; k < c; k++)
        if (!(std[k] > 0) || !isfinite(std[k]) || !isfinite(mean[k]))
            tg_fail("tg_normalize_channels_: channel %lld has mean %g, std %g; std must be "
                     "positive and both finite (a constant channel has std 0)", (long long)k,
                     mean[k], std[k]);
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < c; k++) {
            double m = mean[k], inv = 1.0 / std[k];
            int64_t base = (i * c + k) * plane;
            if (x->dtype == TG_F32) {
                float *p = (float *)x->data + base;
                for (int64_t j = 0; j < plane; j++) p[j] = (float)((p[j] - m) * inv);
            } else {
                double *p = (double *)x->data + base;
                for (int64_t j = 0; j < plane; j++) p[j] = (p[j] - m) * inv;
            }
        }
}
