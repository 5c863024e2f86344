/* tapegrad train: what sits around a training loop: a per-epoch metrics log (CSV and JSON lines)
 * that the plots can be redrawn from, and a progress bar for a terminal.
 *
 *     tg_metrics_log *log;
 *     if (tg_metrics_log_open(&log, "out/metrics.csv", "out/metrics.jsonl", NULL) != TG_OK)
 *         return fprintf(stderr, "%s\n", tg_status_message()), 1;
 *     for (int epoch = 1; epoch <= epochs; epoch++) {
 *         tg_progress bar;
 *         tg_progress_begin(&bar, stderr, TG_PROGRESS_AUTO, "epoch", epoch, epochs,
 *                           tg_loader_num_batches(L));
 *         while (tg_loader_next(L, &xb, &yb)) {
 *             ...one step...
 *             tg_progress_step(&bar, yb->numel, tg_item(loss));
 *         }
 *         tg_progress_end(&bar);                   // clears the bar; then print the epoch line
 *         tg_metrics_log_write(log, &(tg_epoch_metrics){epoch, train_loss, valid_loss,
 *                                                       valid_acc, seconds, NULL});
 *     }
 *     tg_metrics_log_close(log);
 *
 * Both are standalone: nothing here touches tensors or the tape. */
#ifndef TG_TRAIN_H
#define TG_TRAIN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- metrics log -----------------------------------------------------------------------------
 * One line per epoch, flushed as it is written (a crashed or interrupted run keeps its curves):
 *   CSV          epoch,train_loss,valid_loss,valid_acc,seconds[,extra...]   (a header line first)
 *   JSON lines   {"epoch": 1, "train_loss": 0.51234567, ..., "seconds": 2.5312, "extra": ...}
 * Losses are written with 8 significant digits (a tiny loss stays visible on a log scale),
 * accuracy with 6 decimals, seconds with 4, extra columns with 6 significant digits. A value
 * that is not finite (NaN: "not measured") is written as nan in the CSV and null in JSON. Every
 * I/O failure returns TG_ERR_IO with a message naming the path. */
#define TG_METRICS_MAX_EXTRA 8

typedef struct {
    const char *seconds_name;     /* NULL: "seconds" (e.g. "sec_train") */
    int n_extra;                  /* 0 .. TG_METRICS_MAX_EXTRA */
    const char *const *extra_names; /* n_extra column names, e.g. {"sec_eval", "lr"} */
} tg_metrics_opts;

typedef struct {
    int epoch;                    /* 1-based */
    double train_loss, valid_loss, valid_acc, seconds;
    const double *extra;          /* n_extra values, in extra_names order (NULL when n_extra 0) */
} tg_epoch_metrics;

typedef struct tg_metrics_log tg_metrics_log;

/* Creates (truncates) csv_path and/or jsonl_path; either may be NULL, not both. opts may be NULL.
 * Names must be plain identifiers ([A-Za-z0-9_], as CSV and JSON keys need no quoting then);
 * a bad name or count is TG_ERR_VALUE. On error *log is NULL and no file is left open. */
tg_status tg_metrics_log_open(tg_metrics_log **log, const char *csv_path, const char *jsonl_path,
                              const tg_metrics_opts *opts);
tg_status tg_metrics_log_write(tg_metrics_log *log, const tg_epoch_metrics *m);
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
    char **names;     /* n_cols column names, in file order ("epoch" first for this writer) */
    double *data;     /* column c is data[c * n_rows .. c * n_rows + n_rows - 1] */
} tg_metrics_table;

tg_status tg_metrics_read_csv(const char *path, tg_metrics_table *out);
const double *tg_metrics_column(const tg_metrics_table *t, const char *name); /* NULL: absent */
void tg_metrics_table_free(tg_metrics_table *t);                              /* back to {0} */

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

#ifdef __cplusplus
}
#endif
#endif
