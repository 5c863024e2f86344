/* The AlexNet experiment: flags, the eight runs, the report, and in -fast mode the verdict. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "../common.h"
#include "alexnet.h"

static const char *usage =
    "[-data DIR] [-out out/alexnet] [-epochs 20] [-batch 64] [-fraction 0.1] [-width 1] "
    "[-hidden 4096] [-dropout 0.5] [-momentum 0.9] [-seed 42] [-threads 1] [-no_augment] "
    "[-fast]";

static ax_flags read_flags(int argc, char **argv)
{
    ex_check_args(argc, argv, usage);
    ax_flags f = {.fast = ex_flag(argc, argv, "-fast")};
    f.data_dir = ex_str(argc, argv, "-data", NULL);
    f.out = ex_str(argc, argv, "-out", "out/alexnet");
    f.epochs = ex_count_max(argc, argv, "-epochs", f.fast ? 3 : 20, AX_MAX_EPOCHS);
    f.batch = ex_count_max(argc, argv, "-batch", 64, 4096);
    f.fraction = ex_positive(argc, argv, "-fraction", f.fast ? 0.01 : 0.1);
    f.width = ex_positive(argc, argv, "-width", f.fast ? 0.125 : 1);
    f.hidden = ex_count_max(argc, argv, "-hidden", f.fast ? 64 : 4096, 16384);
    f.dropout = ex_num(argc, argv, "-dropout", 0.5);
    f.momentum = ex_num(argc, argv, "-momentum", 0.9);
    f.seed = ex_seed(argc, argv, "-seed");
    f.threads = ex_count_max(argc, argv, "-threads", 1, 64);
    f.augment = !ex_flag(argc, argv, "-no_augment");
    if (f.fraction > 1 || f.width > 4 || !(f.dropout >= 0 && f.dropout < 1) ||
        !(f.momentum >= 0 && f.momentum < 1)) {
        fprintf(stderr, "%s: -fraction at most 1, -width at most 4, -dropout and -momentum in "
                        "[0, 1)\n", argv[0]);
        exit(2);
    }
    return f;
}

/* The fast-mode check: every run finite, and the run whose loss fell most learned something
 * (its loss fell by 15%, its test accuracy is twice chance). */
static int verdict(const ax_config *c, const ax_result *r, int n)
{
    int best = 0;
    bool finite = true;
    for (int i = 0; i < n; i++) {
        for (int e = 0; e < r[i].epochs; e++) finite &= isfinite(r[i].train_loss[e]);
        if (r[i].train_loss[r[i].epochs - 1] / r[i].train_loss[0] <
            r[best].train_loss[r[best].epochs - 1] / r[best].train_loss[0])
            best = i;
    }
    const ax_result *b = &r[best];
    bool learned = b->train_loss[b->epochs - 1] < 0.85 * b->train_loss[0] && b->test_acc > 0.2;
    return ex_verdict(finite && learned, "AlexNet: %d runs finite: %s; best (%s) loss %.3f -> "
                      "%.3f, test accuracy %.3f (need a 15%% fall and > 0.2; chance 0.1)", n,
                      finite ? "yes" : "no", c[best].label, b->train_loss[0],
                      b->train_loss[b->epochs - 1], b->test_acc);
}

int main(int argc, char **argv)
{
    ax_flags f = read_flags(argc, argv);
    tg_set_num_threads(f.threads);
    ax_data d = ax_load(&f);
    printf("AlexNet experiment on %s: %lld training, %lld validation, %lld test images\n", d.name,
           (long long)tg_dataset_size(&d.train), (long long)tg_dataset_size(&d.val),
           (long long)tg_dataset_size(&d.test));
    static ax_config runs[AX_RUNS];
    static ax_result results[AX_RUNS];
    const char *opts[2] = {"sgd", "adam"};
    const double lrs[2] = {5e-5, 5e-3};
    int n = 0;
    for (int bn = 1; bn >= 0; bn--)
        for (int o = 0; o < 2; o++)
            for (int l = 0; l < 2; l++) {
                ax_config *c = &runs[n++];
                *c = (ax_config){.optimizer = opts[o], .lr = lrs[l], .bn_dropout = bn};
                snprintf(c->label, sizeof c->label, "%s %.0e%s", o ? "Adam" : "SGD", lrs[l],
                         bn ? ", BN+dropout" : ", plain");
            }
    for (int i = 0; i < n; i++) ax_train(&f, &d, &runs[i], &results[i]);
    int status = ax_report(&f, &d, runs, results, n);
    if (f.fast && status == 0) status = verdict(runs, results, n);
    ax_data_free(&d);
    return status;
}
