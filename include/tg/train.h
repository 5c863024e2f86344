/* tapegrad train: the pieces of a training loop a program writes itself, short:
 *
 *     tg_metrics_log *log;                          // the program's own columns
 *     tg_metrics_log_open(&log, "out/metrics.csv", "out/metrics.jsonl", 4,
 *                         (const char *[]){"epoch", "train_loss", "valid_loss", "valid_acc"});
 *     for (int epoch = 1; epoch <= epochs; epoch++) {
 *         tg_epoch_stats s = tg_train_epoch(model, opt, loader, NULL);    // or a loop of one's own
 *         tg_eval v = tg_evaluate_classifier(model, valid.x, valid.y, 1000);
 *         tg_metrics_log_write(log, (double[]){epoch, s.loss, v.loss, v.accuracy});
 *     }
 *     tg_metrics_log_close(log);
 *
 * The evaluators and tg_train_epoch reset the tape after each batch: call them between steps. */
#ifndef TG_TRAIN_H
#define TG_TRAIN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core.h"
#include "data.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_module tg_module;         /* include/tg/nn.h */
typedef struct tg_optimizer tg_optimizer;

/* ---- progress bar ----------------------------------------------------------------------------
 *   epoch 3/20 [##########..........] 1563/3125 loss 0.4321 48210 ex/s 0:03 left
 * (batches done/total, the mean of the epoch's batch losses so far, examples per second since
 * tg_progress_begin, the time left at that pace). Drawn on one line (carriage return, no newline).
 * TG_PROGRESS_AUTO draws only when out is a terminal (isatty, and TERM is not "dumb"): in CI and
 * pipes every call does nothing, and the caller's one line per epoch is the log. TG_PROGRESS_ON
 * draws whatever out is (tests, or a log that wants the bar); TG_PROGRESS_OFF never draws (a -quiet
 * flag). Redrawn at most 10 times per second; tg_progress_step reads the clock only every few
 * batches (~50 reads per second, and at least every 16 batches, so a slowdown shows at once), so
 * a step costs a few additions, no system call and no allocation. tg_progress_end erases the
 * line, so the caller's epoch line takes its place. The struct is the caller's (on the stack);
 * nothing is allocated. */
typedef enum { TG_PROGRESS_AUTO = 0, TG_PROGRESS_ON, TG_PROGRESS_OFF } tg_progress_mode;

typedef struct {
    FILE *out;
    bool active;                  /* false: every call returns at once */
    char label[24];               /* "epoch" */
    int index, count;             /* "3/20"; count 0: no index shown */
    int64_t total, done;          /* batches */
    int64_t examples;
    double loss_sum;
    int64_t loss_n;
    int64_t next_check, stride;   /* read the clock when done reaches next_check */
    double t_start, t_drawn;
    int columns;                  /* terminal width (80 off a terminal): the bar narrows, then the
                                     line is cut, so it never reaches the last column (a wrapped
                                     line could not be redrawn) */
    int drawn;                    /* lines drawn so far (tests read it) */
    double (*clock)(void);        /* seconds; NULL: CLOCK_MONOTONIC. Tests set a fake clock after
                                     tg_progress_begin, with t_start = t_drawn = its time */
} tg_progress;

/* Starts a bar of total batches: "label index/count" (count 0: just "label"). out NULL means
 * stderr; label NULL means "epoch" (longer labels are cut at 23 characters). */
void tg_progress_begin(tg_progress *p, FILE *out, tg_progress_mode mode, const char *label,
                       int index, int count, int64_t total);
/* One batch of n examples done, with its loss (NaN: no loss shown for it). */
void tg_progress_step(tg_progress *p, int64_t n, double loss);
void tg_progress_draw(tg_progress *p);   /* draws now, whatever the time since the last draw */
void tg_progress_end(tg_progress *p);    /* erases the bar (if any was drawn) */

/* ---- evaluation ------------------------------------------------------------------------------
 * One pass over rows [0, N) of x in batches of batch_size (0: 1000), without recording (no-grad)
 * and in eval mode (dropout off). The previous grad mode and the model's train/eval mode are
 * restored afterwards (the model's own mode, set on all its children, as tg_module_train does).
 * Batches are views of x's rows, not copies: in steady state a call allocates nothing.
 *   classifier  y int32 [N] labels: loss = mean cross-entropy per example, accuracy = fraction of
 *               rows whose largest score is the label
 *   regressor   y float, x's rows: loss = mean squared error per element (tg_mse_loss's mean);
 *               accuracy = NaN
 * An empty set gives n = 0 and NaN loss and accuracy. x and y must be persistent tensors with the
 * same number of rows (else a programming error). */
typedef struct {
    double loss, accuracy;
    int64_t n;                   /* examples evaluated */
    /* The sums the figures divide: the per-example losses (regressor: squared errors) added
     * batch by batch in order, and the rows scored right (classifier). A set split into parts
     * evaluated apart (data-parallel evaluation) adds its parts' loss_sum in the same order to
     * get these bits again. */
    double loss_sum;
    int64_t correct;
} tg_eval;

#define TG_EVAL_BATCH 1000

tg_eval tg_evaluate_classifier(tg_module *model, const tg_tensor *x, const tg_tensor *y,
                               int64_t batch_size);
/* Rows of scores [N, C] whose largest score is at the int32 label of labels [N] (the numerator
 * of a classifier's accuracy); records nothing on the tape's graph. */
int64_t tg_count_correct(tg_tensor *scores, const tg_tensor *labels);
tg_eval tg_evaluate_regressor(tg_module *model, const tg_tensor *x, const tg_tensor *y,
                              int64_t batch_size);

/* ---- one training epoch ----------------------------------------------------------------------
 * Per batch of the loader, until its epoch ends: zero_grad, forward, loss (batch mean), backward,
 * step, tape reset: the plain loop, for programs (runners) that do not write their own. opts may be
 * NULL: cross-entropy, a progress bar on a terminal, stop at the first non-finite loss.
 * Stopping early (opts->stop set, or a NaN/Inf loss) leaves the loader in the middle of its epoch;
 * its next call of tg_loader_next continues there (tg_loader_reset starts afresh).
 *
 * A step of one's own (opts->step, loader NULL) keeps the rest, the statistics, the bar and the
 * stopping rules, for loops that differ only in where a batch comes from and how it becomes an
 * update (data-parallel training: question2-mpi). The step draws its batch, updates the model,
 * resets the tape, and gives the figures the epoch adds up (a field it leaves unset reads as 0);
 * false when the epoch is over. */
typedef enum { TG_LOSS_CROSS_ENTROPY = 0, TG_LOSS_MSE } tg_loss_kind;

typedef struct {
    double loss;                /* the batch's mean loss */
    int64_t examples;           /* rows of the batch */
    int64_t correct;            /* rows scored right (read with opts->accuracy) */
    bool stop;                  /* end the epoch after this step (it counts as stopped) */
} tg_step_figures;

typedef bool (*tg_train_step_fn)(void *data, tg_module *model, tg_optimizer *opt, bool accuracy,
                                 tg_step_figures *out);

typedef struct {
    tg_loss_kind loss;
    bool accuracy;              /* classifier: count the training examples scored right (an
                                   argmax per step, in train mode, before the step) */
    bool keep_nonfinite;        /* true: go on after a NaN/Inf loss (it is still reported) */
    volatile sig_atomic_t *stop;   /* non-NULL: read before each step; nonzero ends the epoch */
    tg_progress_mode progress;  /* TG_PROGRESS_AUTO: a bar on a terminal only */
    FILE *progress_out;         /* NULL: stderr */
    const char *label;          /* the bar's "label epoch/epochs"; NULL: "epoch" */
    int epoch, epochs;          /* 1-based; epochs 0: no index shown */
    tg_train_step_fn step;      /* NULL: the plain step over the loader */
    void *step_data;            /* step's first argument */
    int64_t steps;              /* with step: the epoch's steps, for the bar */
} tg_train_opts;

typedef struct {
    double loss;                /* mean of the batch losses (NaN after no step) */
    double loss_per_example;    /* the batch losses weighted by batch size */
    double accuracy;            /* with opts->accuracy, else NaN */
    int64_t steps, examples;
    int64_t nonfinite_step;     /* 1-based step of the first NaN/Inf loss; 0: none */
    bool stopped;               /* ended early by opts->stop */
    double seconds;
} tg_epoch_stats;

tg_epoch_stats tg_train_epoch(tg_module *model, tg_optimizer *opt, tg_loader *loader,
                              const tg_train_opts *opts);

/* ---- metrics log -----------------------------------------------------------------------------
 * A table whose columns the program names (1 to TG_METRICS_MAX_COLUMNS plain identifiers,
 * [A-Za-z0-9_], distinct): one row of doubles per tg_metrics_log_write (an epoch, a step, ...),
 * written at once, flushed (a crashed or interrupted run keeps its rows), to
 *   CSV          a header line of the names, then one line per row: 1,0.51234567,0.8123
 *   JSON lines   {"epoch": 1, "train_loss": 0.51234567, "valid_acc": 0.8123}
 * and kept in memory, so a chart can be drawn from a column at the end. Whole numbers are written
 * as such, other values with 8 significant digits; a value that is not finite (NaN: "not
 * measured", or a diverged loss) is nan in the CSV and null in JSON. Either path may be NULL; with
 * both NULL the log is in memory only. Every I/O failure returns TG_ERR_IO naming the path; bad
 * names are TG_ERR_VALUE. On error *log is NULL and no file is left open. */
#define TG_METRICS_MAX_COLUMNS 64

typedef struct tg_metrics_log tg_metrics_log;

tg_status tg_metrics_log_open(tg_metrics_log **log, const char *csv_path, const char *jsonl_path,
                              int n_columns, const char *const *columns);
/* row holds one value per column, in the order of the names. */
tg_status tg_metrics_log_write(tg_metrics_log *log, const double *row);
int64_t tg_metrics_log_rows(const tg_metrics_log *log);
/* The column's values so far (tg_metrics_log_rows of them), valid until the next write or close;
 * NULL when no column has that name. */
const double *tg_metrics_log_column(const tg_metrics_log *log, const char *name);
/* An 800x500 PNG line chart of n columns of the log (1 to TG_CHART_MAX_SERIES), one series each,
 * named by labels[k] (labels NULL: the column names), against the log's first column (an epoch or
 * step; its name labels the x axis). log_y: a logarithmic y axis, for losses. An unknown column is
 * TG_ERR_VALUE; the chart's own errors are tg_chart_write_png's. */
tg_status tg_metrics_log_plot(const tg_metrics_log *log, const char *path, const char *title,
                              const char *ylabel, bool log_y, int n, const char *const *columns,
                              const char *const *labels);
/* Closes the files and frees the log (NULL is fine); TG_ERR_IO if a final write failed. */
tg_status tg_metrics_log_close(tg_metrics_log *log);

/* Reading a metrics CSV back (this writer's, or any numeric CSV with a header line): columns are
 * stored one after the other, so a column is directly a chart series:
 *     tg_metrics_table t;
 *     if (tg_metrics_read_csv("out/metrics.csv", &t) == TG_OK) {
 *         c.series[0] = (tg_series){.name = "validation", .y = tg_metrics_column(&t, "valid_acc"),
 *                                   .n = t.n_rows};  ...  tg_metrics_table_free(&t); }
 * Empty cells and "nan" read as NaN. A missing file is TG_ERR_IO; a cell that is not a number or a
 * line with the wrong number of cells is TG_ERR_FORMAT naming the path and the line. */
typedef struct {
    int n_rows, n_cols;
    char **names;     /* n_cols column names, in file order */
    double *data;     /* column c is data[c * n_rows .. c * n_rows + n_rows - 1] */
} tg_metrics_table;

tg_status tg_metrics_read_csv(const char *path, tg_metrics_table *out);
const double *tg_metrics_column(const tg_metrics_table *t, const char *name); /* NULL: absent */
void tg_metrics_table_free(tg_metrics_table *t);                              /* back to {0} */

#ifdef __cplusplus
}
#endif
#endif
