/* Loads Fashion-MNIST, prints the size and class counts of each split and how long loading took,
 * and draws the class counts of the three splits as a chart (data_summary_classes.png).
 * Usage: data_summary [DIR [CHART.png]]
 *        (DIR default: $TG_DATA_DIR, else /usr/share/datasets/fashion-mnist)
 * Exits with status 1 and the loader's message when the files are missing or malformed. */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "tapegrad.h"

static const char *const class_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc > 3 || (argc >= 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: %s [DIR [CHART.png]]  (an MNIST-style directory; default %s)\n",
                argv[0], TG_FASHION_MNIST_DIR);
        return 2;
    }
    tg_mnist_opts opts = {.dir = argc >= 2 ? argv[1] : NULL};
    const char *chart_path = argc == 3 ? argv[2] : "data_summary_classes.png";
    tg_mnist m;
    double t0 = now();
    if (tg_mnist_load(&opts, &m) != TG_OK) {
        fprintf(stderr, "data_summary: %s\n", tg_status_message());
        return 1;
    }
    double t_load = now() - t0;

    const tg_dataset *splits[3] = {&m.train, &m.val, &m.test};
    const char *names[3] = {"train", "val", "test"};
    int k = m.train.n_classes;
    int64_t counts[3][256];
    for (int s = 0; s < 3; s++) tg_dataset_class_counts(splits[s], counts[s]);

    printf("Fashion-MNIST from %s\n", opts.dir ? opts.dir : "the default directory");
    printf("%-14s %8s %8s %8s\n", "class", names[0], names[1], names[2]);
    for (int c = 0; c < k; c++)
        printf("%d %-12s %8lld %8lld %8lld\n", c, k == 10 ? class_names[c] : "",
               (long long)counts[0][c], (long long)counts[1][c], (long long)counts[2][c]);
    printf("%-14s %8lld %8lld %8lld\n", "total", (long long)tg_dataset_size(&m.train),
           (long long)tg_dataset_size(&m.val), (long long)tg_dataset_size(&m.test));
    printf("features per image: %lld; pixels scaled to [0, 1]\n",
           (long long)(m.train.x->ndim > 1 ? m.train.x->shape[1] : 1));

    /* the class counts per split as a chart: x = class index, one series per split */
    double x[256], ys[3][256];
    tg_chart chart = {.title = "Class counts per split", .xlabel = "class",
                      .ylabel = "images", .n_series = 3, .y_min = 0, .y_max = NAN};
    for (int s = 0; s < 3; s++) {
        for (int c = 0; c < k; c++) x[c] = c, ys[s][c] = (double)counts[s][c];
        chart.series[s] =
            (tg_series){.name = names[s], .x = x, .y = ys[s], .n = k, .markers = true};
    }
    if (tg_chart_write_png(&chart, chart_path, 800, 500) != TG_OK) {
        fprintf(stderr, "data_summary: %s\n", tg_status_message());
        return 1;
    }
    printf("chart: %s\n", chart_path);

    /* one shuffled pass over the training split, to show what an epoch of batching costs */
    tg_rng rng;
    tg_rng_seed(&rng, 0);
    tg_loader *L = tg_loader_new(m.train.x, m.train.y, 64, true, false, &rng);
    tg_tensor *xb, *yb;
    int64_t batches = 0;
    double t1 = now();
    while (tg_loader_next(L, &xb, &yb)) batches++;
    double t_epoch = now() - t1;
    tg_loader_free(L);

    printf("load: %.3f s; one shuffled epoch of %lld batches of 64: %.3f s\n", t_load,
           (long long)batches, t_epoch);
    tg_mnist_free(&m);
    return 0;
}
