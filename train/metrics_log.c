/* The metrics log (include/tg/train.h): the program's columns, one row per call, written as CSV
 * and JSON lines side by side and flushed at once, and kept in memory as columns for charts; and
 * a CSV read back into columns for redrawing them. */
#include "tg/plot.h"
#include "tg/train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/internal.h"

struct tg_metrics_log {
    FILE *file[2];              /* csv, jsonl; NULL when not asked for */
    char *path[2];
    int err[2];                 /* errno of a file's first failed write, for the close */
    int n_cols;
    char **names;
    int64_t n_rows, cap_rows;
    double *data;               /* column c is data[c * cap_rows .. c * cap_rows + n_rows - 1] */
};

static bool plain_name(const char *s)
{
    if (!s || !*s) return false;
    for (; *s; s++)
        if (!(*s == '_' || (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
              (*s >= 'A' && *s <= 'Z')))
            return false;
    return true;
}

static void log_free(tg_metrics_log *log)
{
    for (int i = 0; i < 2; i++) {
        if (log->file[i]) fclose(log->file[i]);
        tg__free(log->path[i]);
    }
    for (int i = 0; i < log->n_cols; i++) tg__free(log->names[i]);
    tg__free(log->names);
    tg__free(log->data);
    tg__free(log);
}

/* After a line: flush, so the line is on disk (and visible to `tail -f`) before training goes
 * on. */
static tg_status check_written(tg_metrics_log *log, int i)
{
    if (fflush(log->file[i]) == 0 && !ferror(log->file[i])) return TG_OK;
    if (!log->err[i]) log->err[i] = errno ? errno : EIO;
    return tg_status_set(TG_ERR_IO, "%s: write failed: %s", log->path[i], strerror(log->err[i]));
}

static tg_status check_columns(int n_cols, const char *const *columns)
{
    if (n_cols < 1 || n_cols > TG_METRICS_MAX_COLUMNS || !columns)
        return tg_status_set(TG_ERR_VALUE, "tg_metrics_log_open: %d columns (give 1 to %d "
                                           "names)", n_cols, TG_METRICS_MAX_COLUMNS);
    for (int i = 0; i < n_cols; i++) {
        if (!plain_name(columns[i]))
            return tg_status_set(TG_ERR_VALUE, "tg_metrics_log_open: column name '%s' is not a "
                                               "plain identifier ([A-Za-z0-9_])",
                                 columns[i] ? columns[i] : "(null)");
        for (int j = 0; j < i; j++)
            if (!strcmp(columns[i], columns[j]))
                return tg_status_set(TG_ERR_VALUE, "tg_metrics_log_open: column '%s' is named "
                                                   "twice", columns[i]);
    }
    return TG_OK;
}

tg_status tg_metrics_log_open(tg_metrics_log **out, const char *csv_path, const char *jsonl_path,
                              int n_cols, const char *const *columns)
{
    *out = NULL;
    tg_status st = check_columns(n_cols, columns);
    if (st != TG_OK) return st;
    tg_metrics_log *log = tg__calloc(sizeof *log);
    log->names = tg__calloc((size_t)n_cols * sizeof *log->names);
    log->n_cols = n_cols;
    for (int i = 0; i < n_cols; i++) log->names[i] = tg__xstrdup(columns[i]);
    const char *paths[2] = {csv_path, jsonl_path};
    for (int i = 0; i < 2; i++) {
        if (!paths[i]) continue;
        log->path[i] = tg__xstrdup(paths[i]);
        if (!(log->file[i] = fopen(paths[i], "w"))) {
            st = tg_status_set(TG_ERR_IO, "%s: cannot write: %s", paths[i], strerror(errno));
            log_free(log);
            return st;
        }
    }
    if (log->file[0]) {
        for (int i = 0; i < n_cols; i++)
            fprintf(log->file[0], "%s%s", i ? "," : "", log->names[i]);
        fputc('\n', log->file[0]);
        st = check_written(log, 0);
        if (st != TG_OK) return log_free(log), st;
    }
    *out = log;
    return TG_OK;
}

/* A whole number (an epoch, a step, a count) as one; anything else with 8 significant digits,
 * so a loss below 5e-7 is not written as 0 (a log-scale chart redrawn from the file needs it). */
static void put_value(FILE *f, double v, const char *missing)
{
    if (!isfinite(v)) fputs(missing, f);
    else if (v == floor(v) && fabs(v) < 1e15) fprintf(f, "%.0f", v);
    else fprintf(f, "%.8g", v);
}

/* Room for one more row in memory: capacity doubles, so a run of n rows reallocates log2(n)
 * times, never per row in steady state. */
static void reserve_row(tg_metrics_log *log)
{
    if (log->n_rows < log->cap_rows) return;
    int64_t cap = log->cap_rows ? 2 * log->cap_rows : 64;
    double *d = tg__malloc((size_t)cap * (size_t)log->n_cols * sizeof *d);
    for (int c = 0; c < log->n_cols; c++)
        if (log->n_rows)
            memcpy(d + (size_t)c * (size_t)cap, log->data + (size_t)c * (size_t)log->cap_rows,
                   (size_t)log->n_rows * sizeof *d);
    tg__free(log->data);
    log->data = d;
    log->cap_rows = cap;
}

tg_status tg_metrics_log_write(tg_metrics_log *log, const double *row)
{
    if (!log || !row) tg_fail("tg_metrics_log_write: %s is NULL", log ? "row" : "log");
    reserve_row(log);
    for (int c = 0; c < log->n_cols; c++)
        log->data[(size_t)c * (size_t)log->cap_rows + (size_t)log->n_rows] = row[c];
    log->n_rows++;
    for (int k = 0; k < 2; k++) {
        FILE *f = log->file[k];
        if (!f) continue;
        bool csv = k == 0;
        if (!csv) fputc('{', f);
        for (int i = 0; i < log->n_cols; i++) {
            if (csv) fputs(i ? "," : "", f);
            else fprintf(f, "%s\"%s\": ", i ? ", " : "", log->names[i]);
            put_value(f, row[i], csv ? "nan" : "null");
        }
        fputs(csv ? "\n" : "}\n", f);
        tg_status st = check_written(log, k);
        if (st != TG_OK) return st;
    }
    return TG_OK;
}

int64_t tg_metrics_log_rows(const tg_metrics_log *log) { return log ? log->n_rows : 0; }

const double *tg_metrics_log_column(const tg_metrics_log *log, const char *name)
{
    for (int c = 0; log && c < log->n_cols; c++)
        if (!strcmp(log->names[c], name)) {
            static const double none[1] = {0};   /* present but still empty: not NULL */
            return log->data ? log->data + (size_t)c * (size_t)log->cap_rows : none;
        }
    return NULL;
}

tg_status tg_metrics_log_plot(const tg_metrics_log *log, const char *path, const char *title,
                              const char *ylabel, bool log_y, int n, const char *const *columns,
                              const char *const *labels)
{
    if (!log || n < 1 || n > TG_CHART_MAX_SERIES || !columns)
        return tg_status_set(TG_ERR_VALUE, "tg_metrics_log_plot: %d columns (give 1 to %d)", n,
                             TG_CHART_MAX_SERIES);
    tg_chart c = {.title = title, .xlabel = log->names[0], .ylabel = ylabel, .log_y = log_y,
                  .n_series = n};
    for (int k = 0; k < n; k++) {
        const double *y = tg_metrics_log_column(log, columns[k]);
        if (!y)
            return tg_status_set(TG_ERR_VALUE, "tg_metrics_log_plot: %s: the log has no column "
                                 "'%s'", path, columns[k]);
        c.series[k] = (tg_series){.name = labels ? labels[k] : columns[k],
                                  .x = log->data, .y = y, .n = (int)log->n_rows};
    }
    return tg_chart_write_png(&c, path, 800, 500);
}

tg_status tg_metrics_log_close(tg_metrics_log *log)
{
    if (!log) return TG_OK;
    tg_status st = TG_OK;
    for (int i = 0; i < 2; i++) {
        if (!log->file[i]) continue;
        bool failed = ferror(log->file[i]) != 0;
        errno = 0;
        failed |= fclose(log->file[i]) != 0;
        log->file[i] = NULL;
        int err = log->err[i] ? log->err[i] : errno ? errno : EIO;
        if (failed && st == TG_OK)
            st = tg_status_set(TG_ERR_IO, "%s: write failed: %s", log->path[i], strerror(err));
    }
    log_free(log);
    return st;
}

/* ---- reading a CSV back ---------------------------------------------------------------------- */

void tg_metrics_table_free(tg_metrics_table *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_cols; i++) tg__free(t->names[i]);
    tg__free(t->names);
    tg__free(t->data);
    memset(t, 0, sizeof *t);
}

const double *tg_metrics_column(const tg_metrics_table *t, const char *name)
{
    for (int i = 0; i < t->n_cols; i++)
        if (!strcmp(t->names[i], name)) return t->data + (size_t)i * (size_t)t->n_rows;
    return NULL;
}

/* Splits line (modified in place) at commas; returns the number of cells (at most max), or
 * max + 1 when there are more. The newline is dropped; spaces around a cell are kept for strtod,
 * which skips leading ones (trailing ones are checked by the caller). */
static int split_cells(char *line, char **cells, int max)
{
    line[strcspn(line, "\r\n")] = '\0';
    int n = 0;
    for (char *p = line;; p++) {
        if (n == max) return max + 1;
        cells[n++] = p;
        p = strchr(p, ',');
        if (!p) return n;
        *p = '\0';
    }
}

/* s without the spaces around it (in place). */
static char *trim(char *s)
{
    while (*s == ' ') s++;
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == ' ') s[--n] = '\0';
    return s;
}

static bool read_number(const char *s, double *v)
{
    while (*s == ' ') s++;
    if (!*s) { *v = NAN; return true; }
    char *end;
    *v = strtod(s, &end);
    while (*end == ' ') end++;
    return end != s && !*end;
}

#define MAX_COLS 64

/* p grown from old to new bytes, or NULL (p untouched) when memory is short. */
static void *grow(void *p, size_t old, size_t new_size)
{
    void *q = tg__aligned_bytes(new_size);
    if (q && old) memcpy(q, p, old);
    if (q) tg__free(p);
    return q;
}

/* The next line of f into *buf (grown as needed): its length, 0 at the end of the file, -1 when
 * memory is short. The buffer grows with the bytes really read. */
static long read_line(FILE *f, char **buf, size_t *cap)
{
    size_t len = 0;
    for (int c; (c = fgetc(f)) != EOF;) {
        if (len + 2 > *cap) {
            size_t want = *cap ? 2 * *cap : 256;
            char *g = grow(*buf, len, want);
            if (!g) return -1;
            *buf = g, *cap = want;
        }
        (*buf)[len++] = (char)c;
        if (c == '\n') break;
    }
    if (len) (*buf)[len] = '\0';
    return (long)len;
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = tg__aligned_bytes(n);
    if (d) memcpy(d, s, n);
    return d;
}

tg_status tg_metrics_read_csv(const char *path, tg_metrics_table *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f) return tg_status_set(TG_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    char *line = NULL, *cells[MAX_COLS];
    size_t cap = 0, rows_cap = 0;
    double *rows = NULL;   /* row-major while reading; transposed at the end */
    tg_status st = TG_OK;
    int n_cols = 0, n_rows = 0;
    for (long lineno = 1;; lineno++) {
        long got = read_line(f, &line, &cap);
        if (got < 0) { st = tg_status_set(TG_ERR_NOMEM, "%s: out of memory", path); break; }
        if (got == 0) break;
        if (line[strspn(line, " \r\n")] == '\0') continue;   /* blank line */
        int n = split_cells(line, cells, MAX_COLS);
        if (!out->names) {
            if (n > MAX_COLS) {
                st = tg_status_set(TG_ERR_FORMAT, "%s: more than %d columns", path, MAX_COLS);
                break;
            }
            n_cols = n;
            out->names = tg__aligned_bytes((size_t)n * sizeof *out->names);
            if (!out->names) { st = tg_status_set(TG_ERR_NOMEM, "%s: out of memory", path); break; }
            memset(out->names, 0, (size_t)n * sizeof *out->names);
            out->n_cols = n;
            for (int i = 0; i < n; i++)
                if (!(out->names[i] = copy_string(trim(cells[i])))) {
                    st = tg_status_set(TG_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
            if (st != TG_OK) break;
            continue;
        }
        if (n != n_cols) {
            st = tg_status_set(TG_ERR_FORMAT, "%s: line %ld has %s%d cells, the header %d", path,
                               lineno, n > MAX_COLS ? "more than " : "",
                               n > MAX_COLS ? MAX_COLS : n, n_cols);
            break;
        }
        if ((size_t)(n_rows + 1) * (size_t)n_cols > rows_cap) {
            size_t want = rows_cap ? 2 * rows_cap : 64 * (size_t)n_cols;
            double *grown = grow(rows, (size_t)n_rows * (size_t)n_cols * sizeof *rows, want * sizeof *rows);
            if (!grown) { st = tg_status_set(TG_ERR_NOMEM, "%s: out of memory", path); break; }
            rows = grown, rows_cap = want;
        }
        for (int i = 0; i < n; i++)
            if (!read_number(cells[i], &rows[(size_t)n_rows * (size_t)n_cols + (size_t)i])) {
                st = tg_status_set(TG_ERR_FORMAT, "%s: line %ld, column %d (%s): cannot read '%s' "
                                   "as a number", path, lineno, i + 1, out->names[i], cells[i]);
                break;
            }
        if (st != TG_OK) break;
        n_rows++;
    }
    tg__free(line);
    fclose(f);
    if (st == TG_OK && !out->names) st = tg_status_set(TG_ERR_FORMAT, "%s: empty file", path);
    /* At least one element: a header-only log (a run that died in epoch 1) still has its
     * columns, each of length 0, and tg_metrics_column must not take NULL for "absent". */
    size_t n_data = (size_t)n_rows * (size_t)n_cols;
    if (st == TG_OK && !(out->data = tg__aligned_bytes((n_data ? n_data : 1) * sizeof *out->data)))
        st = tg_status_set(TG_ERR_NOMEM, "%s: out of memory", path);
    if (st != TG_OK) {
        tg__free(rows);
        tg_metrics_table_free(out);
        return st;
    }
    for (size_t r = 0; r < (size_t)n_rows; r++)
        for (size_t c = 0; c < (size_t)n_cols; c++)
            out->data[c * (size_t)n_rows + r] = rows[r * (size_t)n_cols + c];
    out->n_rows = n_rows;
    tg__free(rows);
    return TG_OK;
}
