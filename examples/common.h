/* The examples' command line: flags and their checks, the --out folder (its metrics log and
 * charts), --data with the Fashion-MNIST subset of --fast, a wall clock, and the fast-mode verdict.
 * The training loops and evaluation are in the programs themselves, on the library's toolkit
 * (include/tg/train.h). */
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

/* A whole number in [1, max] ("--hidden 200"); anything else is an input error (exit status 2),
 * checked before anything is sized by it. */
static inline int ex_count_max(int argc, char **argv, const char *name, int fallback, int max)
{
    double v = ex_num(argc, argv, name, fallback);
    if (!(v >= 1 && v <= max) || v != (int)v) {
        fprintf(stderr, "%s: %s must be a whole number from 1 to %d, got %g\n", argv[0], name, max,
                v);
        exit(2);
    }
    return (int)v;
}

/* Bounds: counts (epochs, steps) whose per-count arrays stay small, and a layer width whose
 * weights (784 x width floats, with gradients) fit in a few hundred MB. */
enum { EX_MAX_COUNT = 100000, EX_MAX_WIDTH = 65536 };

/* A count ("--epochs 20"): a whole number from 1 to EX_MAX_COUNT. */
static inline int ex_count(int argc, char **argv, const char *name, int fallback)
{
    return ex_count_max(argc, argv, name, fallback, EX_MAX_COUNT);
}

/* The seed flag NAME ("--seed N", default 42): a whole number in [0, 2^53], every seed exact. */
static inline uint64_t ex_seed(int argc, char **argv, const char *name)
{
    double v = ex_num(argc, argv, name, 42);
    if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v)) {
        fprintf(stderr, "%s: %s must be a whole number >= 0, got %g\n", argv[0], name, v);
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

/* "<--out dir>/<name>_metrics.csv": the program's columns, one line per row (include/tg/train.h),
 * which the charts are drawn from. A folder that cannot be written is an input error (exit 2). */
static inline tg_metrics_log *ex_metrics_log(int argc, char **argv, const char *name, int n,
                                             const char *const *columns)
{
    char file[256];
    snprintf(file, sizeof file, "%s_metrics.csv", name);
    tg_metrics_log *log;
    if (tg_metrics_log_open(&log, ex_path(argc, argv, file), NULL, n, columns) != TG_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], tg_status_message());
        exit(2);
    }
    return log;
}

/* One row into the log; a failed write is reported, not fatal (like a chart's). */
static inline void ex_log(tg_metrics_log *log, const double *row)
{
    if (tg_metrics_log_write(log, row) != TG_OK)
        fprintf(stderr, "warning: %s\n", tg_status_message());
}

/* "<--out dir>/<file>": a chart of n columns of the log against its first; a failure to write is
 * reported, not fatal. */
static inline void ex_plot_log(int argc, char **argv, const char *file, const tg_metrics_log *log,
                               const char *title, const char *ylabel, bool log_y, int n,
                               const char *const *columns, const char *const *labels)
{
    const char *path = ex_path(argc, argv, file);
    if (tg_metrics_log_plot(log, path, title, ylabel, log_y, n, columns, labels) != TG_OK)
        fprintf(stderr, "warning: %s\n", tg_status_message());
    else
        printf("wrote %s\n", path);
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
        int64_t keep = k == 0 ? n_train : n_eval, size = tg_dataset_size(full[k]);
        if (tg_dataset_head(full[k], keep < size ? keep : size, part[k]) != TG_OK) {
            fprintf(stderr, "%s: %s\n", argv[0], tg_status_message());
            exit(2);
        }
    }
    tg_mnist_free(&m);
    return cut;
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
