/* The AlexNet experiment of the homework, as one command: an AlexNet-style network with batch
 * normalisation and dropout trained on 10% of the training set with SGD and Adam at learning
 * rates 5e-5 and 5e-3, and the same four runs with BN and dropout removed. Curves of training
 * loss and validation accuracy (one chart per quantity, every run on it) and report.md.
 *
 *     alexnet                              Fashion-MNIST (28x28 zero-padded to 32x32)
 *     alexnet -data DIR                    CIFAR-10 when DIR holds data_batch_1.bin ...
 *     alexnet -epochs 3 -width 0.5 -hidden 1024     a shorter run
 *     alexnet -fast                        the make-test check (a tiny net, a few steps)
 *
 * Protocol (bench/alexnet_torch.py is the same in PyTorch): validation = the last 5,000 training
 * images, training = a seeded random 10% (-fraction) of the rest, test = the test set; per-channel
 * normalisation with the training subset's statistics; training batches augmented by a random
 * crop of the 4-padded image and a horizontal flip; batch 64; SGD with momentum 0.9 or Adam
 * (β 0.9, 0.999); every run starts from the same initial weights (same seed); the training loss
 * is the mean of the epoch's batch losses; accuracies in eval mode without gradients.
 *
 * Files: main.c (flags, the runs, the verdict), data.c (the data set, loaded once), model.c (the
 * network), train.c (one run), report.c (charts, curves.csv, report.md). */
#ifndef ALEXNET_H
#define ALEXNET_H

#include <stdbool.h>
#include <stdint.h>
#include <tapegrad.h>

#define AX_MAX_EPOCHS 200
#define AX_RUNS 8

typedef struct {
    const char *data_dir;    /* NULL: Fashion-MNIST's default folder */
    const char *out;
    int epochs, batch, threads;
    double fraction, width, momentum, dropout;
    int hidden;
    bool augment;
    uint64_t seed;
    bool fast;
} ax_flags;

typedef struct {
    tg_dataset train, val, test;
    const char *name;        /* "CIFAR-10" or "Fashion-MNIST (padded to 32x32)" */
    int channels;
} ax_data;

typedef struct {
    const char *optimizer;   /* "sgd" or "adam" */
    double lr;
    bool bn_dropout;
    char label[48];          /* "Adam 5e-3, BN+dropout" */
} ax_config;

typedef struct {
    int epochs;
    double train_loss[AX_MAX_EPOCHS], val_acc[AX_MAX_EPOCHS];
    double test_acc, seconds;
    int64_t parameters;
} ax_result;

/* data.c: exits with status 1 on a data error (the message names the file). */
ax_data ax_load(const ax_flags *f);
void ax_data_free(ax_data *d);

/* model.c */
tg_module *ax_alexnet(int channels, int n_classes, double width, int hidden, bool bn_dropout,
                      double dropout, tg_rng *rng);

/* train.c */
void ax_train(const ax_flags *f, const ax_data *d, const ax_config *c, ax_result *r);
double ax_accuracy(tg_module *model, const tg_dataset *d);

/* report.c */
int ax_report(const ax_flags *f, const ax_data *d, const ax_config *c, const ax_result *r, int n);

#endif
