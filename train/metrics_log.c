/* The per-epoch metrics log (include/tg/train.h): CSV and JSON lines written side by side, one
 * line per epoch, flushed at once; and the CSV read back into columns for redrawing plots. */
#include "tg/train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_FIXED 4   /* train_loss, valid_loss, valid_acc, seconds (after epoch) */

struct tg_metrics_log {
    FILE *file[2];              /* csv, jsonl; NULL when not asked for */
    char *path[2];
    int n_extra;
    char *names[N_FIXED + TG_METRICS_MAX_EXTRA];
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
        free(log->path[i]);
    }
    for (int i = 0; i < N_FIXED + log->n_extra; i++) free(log->names[i]);
    free(log);
}

/* After a line: flush, so the line is on disk (and visible to `tail -f`) before training goes
 * on. */
static tg_status check_written(tg_metrics_log *log, int i)
{
    if (fflush(log->file[i]) == 0 && !ferror(log->file[i])) return TG_OK;
    return tg_status_set(TG_ERR_IO, "%s: write failed: %s", log->path[i],
                         strerror(errno ? errno : EIO));
}

tg_status tg_metrics_log_open(tg_metrics_log **out, const char *csv_path, const char *jsonl_path,
                              const tg_metrics_opts *opts)
{
    *out = NULL;
    tg_metrics_opts o = opts ? *opts : (tg_metrics_opts){0};
    if (!csv_path && !jsonl_path)
        return tg_status_set(TG_ERR_VALUE, "tg_metrics_log_open: give a CSV path, a JSON lines "
                                           "path, or both");
    if (o.n_extra < 0 || o.n_extra > TG_METRICS_MAX_EXTRA || (o.n_extra && !o.extra_names))
        return tg_status_set(TG_ERR_VALUE, "tg_metrics_log_open: %d extra columns (0 to %d, "
                                           "each named)", o.n_extra, TG_METRICS_MAX_EXTRA);
    const char *names[N_FIXED + TG_METRICS_MAX_EXTRA] = {
        "train_loss", "valid_loss", "valid_acc", o.seconds_name ? o.seconds_name : "seconds"};
    for (int i = 0; i < o.n_extra; i++) names[N_FIXED + i] = o.extra_names[i];
    for (int i = 0; i < N_FIXED + o.n_extra; i++)
        if (!plain_name(names[i]))
            return tg_status_set(TG_ERR_VALUE, "tg_metrics_log_open: column name '%s' is not a "
                                               "plain identifier ([A-Za-z0-9_])",
                                 names[i] ? names[i] : "(null)");

    tg_metrics_log *log = calloc(1, sizeof *log);
    if (!log) return tg_status_set(TG_ERR_NOMEM, "tg_metrics_log_open: out of memory");
    log->n_extra = o.n_extra;
    for (int i = 0; i < N_FIXED + o.n_extra; i++)
        if (!(log->names[i] = strdup(names[i]))) {
            log_free(log);
            return tg_status_set(TG_ERR_NOMEM, "tg_metrics_log_open: out of memory");
        }
    const char *paths[2] = {csv_path, jsonl_path};
    for (int i = 0; i < 2; i++) {
        if (!paths[i]) continue;
        if (!(log->path[i] = strdup(paths[i]))) {
            log_free(log);
            return tg_status_set(TG_ERR_NOMEM, "tg_metrics_log_open: out of memory");
        }
        if (!(log->file[i] = fopen(paths[i], "w"))) {
            tg_status st = tg_status_set(TG_ERR_IO, "%s: cannot write: %s", paths[i],
                                         strerror(errno));
            log_free(log);
            return st;
        }
    }
    if (log->file[0]) {
        fputs("epoch", log->file[0]);
        for (int i = 0; i < N_FIXED + log->n_extra; i++)
            fprintf(log->file[0], ",%s", log->names[i]);
        fputc('\n', log->file[0]);
        tg_status st = check_written(log, 0);
        if (st != TG_OK) return log_free(log), st;
    }
    *out = log;
    return TG_OK;
}

/* One value: fmt for a finite one, else the format's word for "missing". */
static void put_value(FILE *f, const char *fmt, double v, const char *missing)
{
    if (isfinite(v)) fprintf(f, fmt, v);
    else fputs(missing, f);
}

tg_status tg_metrics_log_write(tg_metrics_log *log, const tg_epoch_metrics *m)
{
    double v[N_FIXED + TG_METRICS_MAX_EXTRA] = {m->train_loss, m->valid_loss, m->valid_acc,
                                                m->seconds};
    for (int i = 0; i < log->n_extra; i++) v[N_FIXED + i] = m->extra[i];
    /* Losses with 8 significant digits: a fixed 6 decimals would write a loss below 5e-7 as 0,
     * which a log-scale chart redrawn from the log could not show. */
    static const char *const fmt[N_FIXED] = {"%.8g", "%.8g", "%.6f", "%.4f"};
    for (int k = 0; k < 2; k++) {
        FILE *f = log->file[k];
        if (!f) continue;
        bool csv = k == 0;
        if (csv) fprintf(f, "%d", m->epoch);
        else fprintf(f, "{\"epoch\": %d", m->epoch);
        for (int i = 0; i < N_FIXED + log->n_extra; i++) {
            if (csv) fputc(',', f);
            else fprintf(f, ", \"%s\": ", log->names[i]);
            put_value(f, i < N_FIXED ? fmt[i] : "%.6g", v[i], csv ? "nan" : "null");
        }
        fputs(csv ? "\n" : "}\n", f);
        tg_status st = check_written(log, k);
        if (st != TG_OK) return st;
    }
    return TG_OK;
}

tg_status tg_metrics_log_close(tg_metrics_log *log)
{
    if (!log) return TG_OK;
    tg_status st = TG_OK;
    for (int i = 0; i < 2; i++) {
        if (!log->file[i]) continue;
        bool failed = ferror(log->file[i]) != 0;
        failed |= fclose(log->file[i]) != 0;
        log->file[i] = NULL;
        if (failed && st == TG_OK)
            st = tg_status_set(TG_ERR_IO, "%s: write failed", log->path[i]);
    }
    log_free(log);
    return st;
}

/* ---- reading a CSV back ---------------------------------------------------------------------- */

void tg_metrics_table_free(tg_metrics_table *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_cols; i++) free(t->names[i]);
    free(t->names);
    free(t->data);
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
    for (long lineno = 1; getline(&line, &cap, f) >= 0; lineno++) {
        if (line[strspn(line, " \r\n")] == '\0') continue;   /* blank line */
        int n = split_cells(line, cells, MAX_COLS);
        if (!out->names) {
            if (n > MAX_COLS) {
                st = tg_status_set(TG_ERR_FORMAT, "%s: more than %d columns", path, MAX_COLS);
                break;
            }
            n_cols = n;
            out->names = calloc((size_t)n, sizeof *out->names);
            if (!out->names) { st = tg_status_set(TG_ERR_NOMEM, "%s: out of memory", path); break; }
            out->n_cols = n;
            for (int i = 0; i < n; i++)
                if (!(out->names[i] = strdup(trim(cells[i])))) {
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
            double *grown = realloc(rows, want * sizeof *rows);
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
    free(line);
    fclose(f);
    if (st == TG_OK && !out->names) st = tg_status_set(TG_ERR_FORMAT, "%s: empty file", path);
    /* At least one element: a header-only log (a run that died in epoch 1) still has its
     * columns, each of length 0, and tg_metrics_column must not take NULL for "absent". */
    size_t n_data = (size_t)n_rows * (size_t)n_cols;
    if (st == TG_OK && !(out->data = malloc((n_data ? n_data : 1) * sizeof *out->data)))
        st = tg_status_set(TG_ERR_NOMEM, "%s: out of memory", path);
    if (st != TG_OK) {
        free(rows);
        tg_metrics_table_free(out);
        return st;
    }
    for (size_t r = 0; r < (size_t)n_rows; r++)
        for (size_t c = 0; c < (size_t)n_cols; c++)
            out->data[c * (size_t)n_rows + r] = rows[r * (size_t)n_cols + c];
    out->n_rows = n_rows;
    free(rows);
    return TG_OK;
}
