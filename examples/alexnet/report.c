/* What the experiment leaves behind in -out: train_loss.png and val_accuracy.png (every run on
 * one chart; dashed lines are the runs without BN and dropout), curves.csv (one line per run and
 * epoch) and report.md (the protocol and one table row per run). */
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include "alexnet.h"

static void chart(const char *path, const char *title, const char *ylabel, bool log_y,
                  const ax_config *c, const ax_result *r, int n, bool loss)
{
    tg_chart ch = {.title = title, .xlabel = "epoch", .ylabel = ylabel, .log_y = log_y,
                   .n_series = n};
    static const uint32_t colours[4] = {TG_RGB(0x1f77b4), TG_RGB(0xff7f0e), TG_RGB(0x2ca02c),
                                        TG_RGB(0xd62728)};
    for (int i = 0; i < n && i < TG_CHART_MAX_SERIES; i++)
        ch.series[i] = (tg_series){.name = c[i].label, .y = loss ? r[i].train_loss : r[i].val_acc,
                                   .n = r[i].epochs, .color = colours[i % 4],
                                   .dashed = !c[i].bn_dropout, .markers = r[i].epochs < 15};
    if (tg_chart_write_png(&ch, path, 900, 560) != TG_OK)
        fprintf(stderr, "warning: %s\n", tg_status_message());
    else
        printf("wrote %s\n", path);
}

static FILE *open_out(const char *dir, const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) fprintf(stderr, "alexnet: cannot write %s\n", path);
    return f;
}

static int best_epoch(const ax_result *r)
{
    int best = 0;
    for (int e = 1; e < r->epochs; e++)
        if (r->val_acc[e] > r->val_acc[best]) best = e;
    return best;
}

static void table(FILE *f, const ax_config *c, const ax_result *r, int n)
{
    fprintf(f, "| run | final training loss | best validation accuracy (epoch) | final "
               "validation accuracy | test accuracy | time (s) |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        int b = best_epoch(&r[i]);
        double last = r[i].train_loss[r[i].epochs - 1];
        fprintf(f, "| %s | %s%.4f | %.4f (%d) | %.4f | %.4f | %.0f |\n", c[i].label,
                isfinite(last) ? "" : "diverged: ", last, r[i].val_acc[b], b + 1,
                r[i].val_acc[r[i].epochs - 1], r[i].test_acc, r[i].seconds);
    }
}

int ax_report(const ax_flags *fl, const ax_data *d, const ax_config *c, const ax_result *r, int n)
{
    char path[1024];
    (void)mkdir(fl->out, 0777);
    snprintf(path, sizeof path, "%s/train_loss.png", fl->out);
    chart(path, "Training loss", "mean batch loss", true, c, r, n, true);
    snprintf(path, sizeof path, "%s/val_accuracy.png", fl->out);
    chart(path, "Validation accuracy", "accuracy", false, c, r, n, false);

    FILE *f = open_out(fl->out, "curves.csv", path, sizeof path);
    if (!f) return 1;
    fprintf(f, "run,optimizer,lr,bn_dropout,epoch,train_loss,val_accuracy\n");
    for (int i = 0; i < n; i++)
        for (int e = 0; e < r[i].epochs; e++)
            fprintf(f, "\"%s\",%s,%g,%d,%d,%.8g,%.6f\n", c[i].label, c[i].optimizer, c[i].lr,
                    c[i].bn_dropout, e + 1, r[i].train_loss[e], r[i].val_acc[e]);
    fclose(f);

    if (!(f = open_out(fl->out, "report.md", path, sizeof path))) return 1;
    fprintf(f, "# AlexNet-style network: SGD vs Adam, with and without BN/dropout\n\n");
    fprintf(f, "Data: %s; %lld training images (%.0f%% of the training set after the validation "
               "split), %lld validation, %lld test.\n", d->name,
            (long long)tg_dataset_size(&d->train), 100 * fl->fraction,
            (long long)tg_dataset_size(&d->val), (long long)tg_dataset_size(&d->test));
    fprintf(f, "Network: width %g, hidden %d, dropout %g (%lld parameters with BN). %d epochs, "
               "batch %d, SGD momentum %g, Adam betas (0.9, 0.999); augmentation: %s; seed "
               "%llu.\n\n", fl->width, fl->hidden, fl->dropout, (long long)r[0].parameters,
            fl->epochs, fl->batch, fl->momentum,
            fl->augment ? "random crop (padding 4) and horizontal flip" : "none",
            (unsigned long long)fl->seed);
    table(f, c, r, n);
    fprintf(f, "\nCurves: train_loss.png, val_accuracy.png (dashed: without BN and dropout); "
               "values: curves.csv.\n");
    fclose(f);
    printf("wrote %s\n", path);
    table(stdout, c, r, n);
    return 0;
}
