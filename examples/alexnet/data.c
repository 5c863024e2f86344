/* The data set, loaded once for every run: CIFAR-10 when -data holds its binary files,
 * Fashion-MNIST otherwise (zero-padded to 32x32 so that the same network fits); validation = the
 * last 5,000 training images, training = a seeded random fraction of the rest; every set
 * normalised per channel with the training subset's statistics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alexnet.h"

static void check(tg_status st, const char *what)
{
    if (st == TG_OK) return;
    fprintf(stderr, "alexnet: %s: %s\n", what, tg_status_message());
    exit(1);
}

/* [N, 784] rows -> [N, 1, 32, 32] with a 2-pixel zero border. */
static void pad_to_32(tg_dataset *d)
{
    int64_t n = tg_dataset_size(d);
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(n, 1, 32, 32));
    const float *src = d->x->data;
    float *dst = x->data;
    for (int64_t i = 0; i < n; i++)
        for (int r = 0; r < 28; r++)
            memcpy(dst + i * 1024 + (r + 2) * 32 + 2, src + i * 784 + r * 28, 28 * sizeof *src);
    tg_free(d->x);
    d->x = x;
}

ax_data ax_load(const ax_flags *f)
{
    ax_data d = {0};
    tg_dataset train_all = {0}, rest = {0};
    if (f->data_dir && tg_cifar10_present(f->data_dir)) {
        tg_dataset full;
        check(tg_cifar10_load(f->data_dir, &full, &d.test), f->data_dir);
        check(tg_dataset_split(&full, 5000, &train_all, &d.val), "validation split");
        tg_dataset_free(&full);
        d.name = "CIFAR-10";
        d.channels = 3;
    } else {
        tg_mnist m;
        tg_mnist_opts o = {.dir = f->data_dir, .n_val = 5000};
        check(tg_mnist_load(&o, &m), "Fashion-MNIST");
        train_all = m.train, d.val = m.val, d.test = m.test;
        pad_to_32(&train_all), pad_to_32(&d.val), pad_to_32(&d.test);
        d.name = "Fashion-MNIST (zero-padded to 32x32)";
        d.channels = 1;
    }
    int64_t n = tg_dataset_size(&train_all);
    int64_t keep = (int64_t)((double)n * f->fraction + 0.5);
    if (keep < 1) keep = 1;
    tg_rng rng;
    tg_rng_seed(&rng, f->seed);
    check(tg_dataset_random_split(&train_all, keep, &rng, &rest, &d.train), "training subset");
    tg_dataset_free(&train_all);
    tg_dataset_free(&rest);
    if (f->fast) {   /* a quick check: the first 500 validation and test images */
        tg_dataset *sets[2] = {&d.val, &d.test};
        for (int k = 0; k < 2; k++) {
            tg_dataset head, tail;
            check(tg_dataset_split(sets[k], tg_dataset_size(sets[k]) - 500, &head, &tail),
                  "fast subset");
            tg_dataset_free(sets[k]);
            tg_dataset_free(&tail);
            *sets[k] = head;
        }
    }
    double mean[3], std[3];
    tg_channel_stats(d.train.x, mean, std);
    tg_normalize_channels_(d.train.x, mean, std);
    tg_normalize_channels_(d.val.x, mean, std);
    tg_normalize_channels_(d.test.x, mean, std);
    return d;
}

void ax_data_free(ax_data *d)
{
    tg_dataset_free(&d->train);
    tg_dataset_free(&d->val);
    tg_dataset_free(&d->test);
}
