/* What every example shares: command-line flags, a wall clock, accuracy on a data set, the
 * Fashion-MNIST subset of fast mode, the metrics log, and the fast-mode verdict. Kept out of the
 * programs so each one reads as its model; nothing here knows about any particular model. */
#ifndef EXAMPLES_COMMON_H
#define EXAMPLES_COMMON_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <tapegrad.h>

/* How flag `arg` appears in usage ("[--epochs 20] [--fast]"): 1 when it takes a value
 * ("[--epochs 20]"), 0 for a switch ("[--fast]"), -1 when it is not there. */
static inline int ex_usage_flag(const char *usage, const char *arg)
{
    size_t n = strlen(arg);
    for (const char *p = strchr(usage, '['); p && n; p = strchr(p + 1, '[')) {
        if (strncmp(p + 1, arg, n) != 0) continue;
        if (p[1 + n] == ' ') return 1;
        if (p[1 + n] == ']') return 0;
    }
    return -1;
}

/* The first call of every example: -h/--help prints the usage and exits 0; an argument that the
 * usage does not list (a typo, one dash instead of two) exits 2 instead of being ignored. The
 * values themselves are checked where they are read (ex_num, ex_count, ...). */
static inline void ex_check_args(int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: %s %s\n", argv[0], usage);
            exit(0);
        }
        int takes_value = ex_usage_flag(usage, argv[i]);
        if (takes_value < 0) {
            fprintf(stderr, "%s: unknown argument '%s'\nusage: %s %s\n", argv[0], argv[i],
                    argv[0], usage);
            exit(2);
        }
        if (takes_value && (i + 1 == argc || ex_usage_flag(usage, argv[i + 1]) >= 0)) {
            /* "--out --fast": the next word is a flag of its own, not the value */
            fprintf(stderr, "%s: %s needs a value\n", argv[0], argv[i]);
            exit(2);
        }
        i += takes_value; /* skip the value: "--lr -1" is a value, not a flag */
    }
}

static inline bool ex_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name)) return true;
    return false;
}

/* "--name VALUE"; a missing or malformed value is an input error: message and exit status 2. */
static inline const char *ex_str(int argc, char **argv, const char *name, const char *fallback)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name)) {
            if (i + 1 < argc) return argv[i + 1];
            fprintf(stderr, "%s: %s needs a value\n", argv[0], name);
            exit(2);
        }
    return fallback;
}

static inline double ex_num(int argc, char **argv, const char *name, double fallback)
{
    const char *s = ex_str(argc, argv, name, NULL);
    if (!s) return fallback;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end) {
        fprintf(stderr, "%s: %s: cannot read '%s' as a number\n", argv[0], name, s);
        exit(2);
    }
    return v;
}

/* A positive finite number ("--lr 0.001"); anything else is an input error (exit status 2). */
static inline double ex_positive(int argc, char **argv, const char *name, double fallback)
{
    double v = ex_num(argc, argv, name, fallback);
    if (!(v > 0 && isfinite(v))) {
        fprintf(stderr, "%s: %s must be a positive number, got %g\n", argv[0], name, v);
        exit(2);
    }
    return v;
}

/* A positive whole number ("--epochs 20"); anything else is an input error (exit status 2). */
static inline int ex_count(int argc, char **argv, const char *name, int fallback)
{
    double v = ex_num(argc, argv, name, fallback);
    if (!(v >= 1 && v <= 1e9) || v != (int)v) {
        fprintf(stderr, "%s: %s must be a positive whole number, got %g\n", argv[0], name, v);
        exit(2);
    }
    return (int)v;
}

/* "--seed N" (default 42): a whole number in [0, 2^53], so every seed is exact. */
static inline uint64_t ex_seed(int argc, char **argv)
{
    double v = ex_num(argc, argv, "--seed", 42);
    if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v)) {
        fprintf(stderr, "%s: --seed must be a whole number >= 0, got %g\n", argv[0], v);
        exit(2);
    }
    return (uint64_t)v;
}

static inline double ex_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "<--out dir>/<name>", default directory "out" (created if missing, one level; a folder that
 * cannot be made shows up as the write's error). */
static inline const char *ex_path(int argc, char **argv, const char *name)
{
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ % 4];
    const char *dir = ex_str(argc, argv, "--out", "out");
    (void)mkdir(dir, 0777);
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* Curves over epochs 1..n, 800x500; a failure to write is reported, not fatal. */
static inline void ex_plot(const char *path, const char *title, const char *ylabel, bool log_y,
                           int n_series, const char *const *names, const double *const *ys, int n)
{
    tg_chart c = {.title = title, .xlabel = "epoch", .ylabel = ylabel, .log_y = log_y,
                  .n_series = n_series, .no_legend = !names};
    for (int k = 0; k < n_series; k++)
        c.series[k] = (tg_series){.name = names ? names[k] : NULL, .y = ys[k], .n = n};
    if (tg_chart_write_png(&c, path, 800, 500) != TG_OK)
        fprintf(stderr, "warning: %s\n", tg_status_message());
    else
        printf("wrote %s\n", path);
}

/* "<--out dir>/<name>_metrics.csv", one line per epoch (include/tg/train.h): the curves, which the
 * charts can be redrawn from. A folder that cannot be written is an input error (exit status 2). */
static inline tg_metrics_log *ex_metrics_log(int argc, char **argv, const char *name, int n_extra,
                                             const char *const *extra_names)
{
    char file[256];
    snprintf(file, sizeof file, "%s_metrics.csv", name);
    tg_metrics_log *log;
    tg_metrics_opts o = {.n_extra = n_extra, .extra_names = extra_names};
    if (tg_metrics_log_open(&log, ex_path(argc, argv, file), NULL, &o) != TG_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], tg_status_message());
        exit(2);
    }
    return log;
}

/* One epoch into the log; a failed write is reported, not fatal (like a chart's). */
static inline void ex_log_epoch(tg_metrics_log *log, tg_epoch_metrics m)
{
    if (tg_metrics_log_write(log, &m) != TG_OK)
        fprintf(stderr, "warning: %s\n", tg_status_message());
}

/* Fraction of rows whose argmax score is the label, evaluated without recording. */
static inline double ex_accuracy(tg_module *model, const tg_dataset *d)
{
    bool grad = tg_set_grad_enabled(false);
    tg_module_eval(model);
    tg_tensor *pred = tg_argmax(tg_module_forward(model, d->x), 1);
    int64_t n = d->y->numel, hits = 0;
    for (int64_t i = 0; i < n; i++)
        hits += ((const int32_t *)pred->data)[i] == ((const int32_t *)d->y->data)[i];
    tg_tape_reset();
    tg_module_train(model, true);
    tg_set_grad_enabled(grad);
    return n ? (double)hits / (double)n : 0;
}

/* The plain training loop of a classifier, one epoch: per batch zero_grad, forward,
 * cross-entropy, backward, step, and release the step's intermediates. Returns the mean loss
 * per example (the loss is a per-batch mean, weighted by the batch size). */
static inline double ex_train_epoch(tg_module *model, tg_optimizer *opt, tg_loader *loader,
                                    int epoch, int epochs)
{
    tg_tensor *x, *y;
    double total = 0;
    int64_t seen = 0;
    tg_progress bar;   /* on a terminal only: batches, running loss, speed, time left */
    tg_progress_begin(&bar, stderr, TG_PROGRESS_AUTO, "epoch", epoch + 1, epochs,
                      tg_loader_num_batches(loader));
    tg_loader_reset(loader);
    while (tg_loader_next(loader, &x, &y)) {
        tg_optimizer_zero_grad(opt);
        tg_tensor *loss = tg_cross_entropy(tg_module_forward(model, x), y, TG_REDUCE_MEAN);
        double l = tg_item(loss);
        total += l * (double)y->numel;
        seen += y->numel;
        tg_progress_step(&bar, y->numel, l);
        tg_backward(loss);
        tg_optimizer_step(opt);
        tg_tape_reset();
    }
    tg_progress_end(&bar);
    return seen ? total / (double)seen : 0;
}

/* Trains for `epochs` with ex_train_epoch, prints one line per epoch with the validation and
 * test accuracy, logs each epoch to <name>_metrics.csv and draws <name>_loss.png and
 * <name>_accuracy.png. Returns the final validation accuracy. */
static inline double ex_fit_classifier(int argc, char **argv, const char *name, const char *title,
                                       tg_module *model, tg_optimizer *opt, tg_loader *loader,
                                       const tg_mnist *data, int epochs)
{
    tg_metrics_log *log = ex_metrics_log(argc, argv, name, 1, (const char *[]){"test_acc"});
    double train_loss[epochs], val_acc[epochs], test_acc[epochs], t0 = ex_seconds();
    for (int epoch = 0; epoch < epochs; epoch++) {
        double t_epoch = ex_seconds();
        train_loss[epoch] = ex_train_epoch(model, opt, loader, epoch, epochs);
        val_acc[epoch] = ex_accuracy(model, &data->val);
        test_acc[epoch] = ex_accuracy(model, &data->test);
        printf("epoch %2d  train loss %.4f  val acc %.4f  test acc %.4f  (%.1f s)\n", epoch + 1,
               train_loss[epoch], val_acc[epoch], test_acc[epoch], ex_seconds() - t0);
        ex_log_epoch(log, (tg_epoch_metrics){epoch + 1, train_loss[epoch], NAN, val_acc[epoch],
                                             ex_seconds() - t_epoch, &test_acc[epoch]});
    }
    tg_metrics_log_close(log);
    char file[256], heading[256];
    snprintf(file, sizeof file, "%s_loss.png", name);
    snprintf(heading, sizeof heading, "%s: loss", title);
    ex_plot(ex_path(argc, argv, file), heading, "training cross-entropy", false, 1, NULL,
            (const double *[]){train_loss}, epochs);
    snprintf(file, sizeof file, "%s_accuracy.png", name);
    ex_plot(ex_path(argc, argv, file), title, "accuracy", false, 2,
            (const char *[]){"validation", "test"}, (const double *[]){val_acc, test_acc}, epochs);
    return val_acc[epochs - 1];
}

/* Fashion-MNIST from --data (default: TG_DATA_DIR or the Debian path). Fast mode keeps the
 * first n_train training and n_eval validation/test images. Exits with status 2 on bad files. */
static inline tg_mnist ex_load_mnist(int argc, char **argv, bool fast, int64_t n_train,
                                     int64_t n_eval)
{
    tg_mnist m, cut = {0};
    tg_mnist_opts o = {.dir = ex_str(argc, argv, "--data", NULL)};
    if (tg_mnist_load(&o, &m) != TG_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], tg_status_message());
        exit(2);
    }
    if (!fast) return m;
    tg_dataset *full[3] = {&m.train, &m.val, &m.test}, *part[3] = {&cut.train, &cut.val, &cut.test};
    for (int k = 0; k < 3; k++) {
        tg_dataset rest;
        int64_t keep = k == 0 ? n_train : n_eval;
        if (tg_dataset_split(full[k], tg_dataset_size(full[k]) - keep, part[k], &rest) != TG_OK) {
            fprintf(stderr, "%s: %s\n", argv[0], tg_status_message());
            exit(2);
        }
        tg_dataset_free(&rest);
    }
    tg_mnist_free(&m);
    return cut;
}

/* Releases what a Fashion-MNIST training program built, in the reverse order of building it. */
static inline void ex_release(tg_loader *loader, tg_optimizer *opt, tg_param_list *params,
                              tg_module *model, tg_mnist *data)
{
    tg_loader_free(loader);
    tg_optimizer_free(opt);
    tg_param_list_free(params);
    tg_module_free(model);
    tg_mnist_free(data);
}

/* The fast-mode verdict: one line, and the exit status of the program. */
static inline int ex_verdict(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", ok ? "PASS" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    return ok ? 0 : 1;
}

#endif
