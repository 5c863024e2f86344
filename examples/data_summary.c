/* Loads Fashion-MNIST (--data DIR, default $TG_DATA_DIR, else /usr/share/datasets/fashion-mnist),
 * prints the size and class counts of each split and how long loading took, and draws the class
 * counts of the three splits as a chart (data_summary_classes.png). Exits with status 2 and the
 * loader's message when the files are missing or malformed. */
#include "common.h"

static const char *const class_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

int main(int argc, char **argv)
{
    ex_check_args(argc, argv, "[--data DIR] [--out DIR] [--fast]");
    const char *dir = ex_str(argc, argv, "--data", NULL);
    const char *chart_path = ex_path(argc, argv, "data_summary_classes.png");
    double t0 = ex_seconds();
    tg_mnist m = ex_load_mnist(argc, argv, false, 0, 0);
    double t_load = ex_seconds() - t0;

    const tg_dataset *splits[3] = {&m.train, &m.val, &m.test};
    const char *names[3] = {"train", "val", "test"};
    int k = m.train.n_classes;
    int64_t counts[3][256];
    for (int s = 0; s < 3; s++) tg_dataset_class_counts(splits[s], counts[s]);

    printf("Fashion-MNIST from %s\n", dir ? dir : "the default directory");
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
    tg_status written = tg_chart_write_png(&chart, chart_path, 800, 500);
    if (written != TG_OK)
        fprintf(stderr, "data_summary: %s\n", tg_status_message());
    else
        printf("chart: %s\n", chart_path);

    /* one shuffled pass over the training split, to show what an epoch of batching costs */
    tg_rng rng;
    tg_rng_seed(&rng, 0);
    tg_loader *L = tg_loader_new(m.train.x, m.train.y, 64, true, false, &rng);
    tg_tensor *xb, *yb;
    int64_t batches = 0;
    int64_t seen = 0;
    double t1 = ex_seconds();
    for (; tg_loader_next(L, &xb, &yb); batches++) seen += yb->numel;
    double t_epoch = ex_seconds() - t1;
    tg_loader_free(L);

    printf("load: %.3f s; one shuffled epoch of %lld batches of 64: %.3f s\n", t_load,
           (long long)batches, t_epoch);
    /* Every image is counted in exactly one class, and an epoch visits each training image once. */
    int64_t counted = 0;
    for (int s = 0; s < 3; s++)
        for (int c = 0; c < k; c++) counted += counts[s][c];
    int64_t total = tg_dataset_size(&m.train) + tg_dataset_size(&m.val) + tg_dataset_size(&m.test);
    bool ok = written == TG_OK && counted == total && seen == tg_dataset_size(&m.train);
    tg_mnist_free(&m);
    if (!ex_flag(argc, argv, "--fast")) return written == TG_OK ? 0 : 1;
    return ex_verdict(ok, "data_summary: %lld images in %d classes counted once each, an epoch of "
                      "%lld examples, chart written", (long long)counted, k, (long long)seen);
}
