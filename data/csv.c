/* Numeric CSV with a header row -> features x [N, D] and a target column y [N].
 * The whole file is read into memory (CSV data sets are small next to their tensors) and parsed
 * in place; values are held as doubles until the row count is known. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/internal.h"
#include "data/internal.h"

typedef struct {
    const char *s;
    size_t n;
} span;

static span trim(const char *s, size_t n)
{
    while (n && (s[0] == ' ' || s[0] == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') s++, n -= 2;
    return (span){s, n};
}

/* Next line of [*p, end) without its '\n' (a trailing '\r' is trimmed with the cells). */
static bool next_line(const char **p, const char *end, span *line)
{
    if (*p >= end) return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    *line = (span){*p, (size_t)(stop - *p)};
    *p = nl ? nl + 1 : end;
    return true;
}

static bool blank(span line)
{
    for (size_t i = 0; i < line.n; i++)
        if (line.s[i] != ' ' && line.s[i] != '\t' && line.s[i] != '\r') return false;
    return true;
}

static int count_cells(span line, char delim)
{
    int n = 1;
    for (size_t i = 0; i < line.n; i++) n += line.s[i] == delim;
    return n;
}

/* Cell `i` boundaries are found by walking; callers walk cells in order with this cursor. */
static span next_cell(const char **p, const char *end, char delim)
{
    const char *d = memchr(*p, delim, (size_t)(end - *p));
    const char *stop = d ? d : end;
    span c = trim(*p, (size_t)(stop - *p));
    *p = d ? d + 1 : end;
    return c;
}

typedef struct {
    double *v;
    size_t len, cap;
} dvec;

static bool dvec_push(dvec *a, double x)
{
    if (a->len == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 1024;
        double *nv = ncap > a->cap ? tg__aligned_bytes(ncap * sizeof *nv) : NULL;
        if (!nv) return false;
        if (a->len) memcpy(nv, a->v, a->len * sizeof *nv);
        tg__free(a->v);
        a->v = nv;
        a->cap = ncap;
    }
    a->v[a->len++] = x;
    return true;
}

tg_status tg_csv_load(const char *path, const tg_csv_opts *opts, tg_tensor **x, tg_tensor **y)
{
    *x = NULL;
    if (y) *y = NULL;
    tg_csv_opts o = opts ? *opts : (tg_csv_opts){0};
    char delim = o.delimiter ? o.delimiter : ',';
    if (o.x_dtype != TG_F32 && o.x_dtype != TG_F64)
        tg_fail("tg_csv_load: x_dtype must be TG_F32 or TG_F64 (got %s)",
                 tg_dtype_name(o.x_dtype));
    if (o.y_dtype != TG_F32 && o.y_dtype != TG_F64 && o.y_dtype != TG_I32)
        tg_fail("tg_csv_load: y_dtype must be TG_F32, TG_F64 or TG_I32 (got %d)", (int)o.y_dtype);

    tg__reader r;
    tg_status st = tg__reader_open_file(&r, path);
    if (st != TG_OK) return st;
    char *text;
    size_t len;
    st = tg__read_alloc(&r, SIZE_MAX, (void **)&text, &len);
    tg__reader_close(&r);
    if (st != TG_OK) return st;

    const char *p = text, *end = text + len;
    if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3; /* UTF-8 byte order mark (Excel) */
    dvec vals = {0};
    span line;
    long long lineno = 0;
    bool have_header = false;
    while (next_line(&p, end, &line)) {
        lineno++;
        if (!blank(line)) {
            have_header = true;
            break;
        }
    }
    if (!have_header) {
        st = tg_status_set(TG_ERR_FORMAT, "%s: empty file (expected a header row)", path);
        goto done;
    }
    span header = line;
    long long header_line = lineno;
    int ncols = count_cells(header, delim);

    /* find the target column */
    int target = -1;
    if (y) {
        if (o.target) {
            const char *q = header.s, *hend = header.s + header.n;
            for (int c = 0; c < ncols; c++) {
                span name = next_cell(&q, hend, delim);
                if (name.n == strlen(o.target) && memcmp(name.s, o.target, name.n) == 0) {
                    target = c;
                    break;
                }
            }
            if (target < 0) {
                st = tg_status_set(TG_ERR_VALUE, "%s: no column named '%s' in the header "
                                   "(line %lld: %.*s)", path, o.target, header_line,
                                   header.n > 200 ? 200 : (int)header.n, header.s);
                goto done;
            }
        } else {
            int t = o.target_index < 0 ? o.target_index + ncols : o.target_index;
            if (t < 0 || t >= ncols) {
                st = tg_status_set(TG_ERR_VALUE, "%s: target column index %d out of range: the "
                                   "header has %d columns", path, o.target_index, ncols);
                goto done;
            }
            target = t;
        }
    }

    /* data rows */
    int64_t nrows = 0;
    while (next_line(&p, end, &line)) {
        lineno++;
        if (blank(line)) continue;
        int n = count_cells(line, delim);
        if (n != ncols) {
            st = tg_status_set(TG_ERR_FORMAT, "%s: line %lld has %d columns, the header has %d",
                               path, lineno, n, ncols);
            goto done;
        }
        const char *q = line.s, *lend = line.s + line.n;
        for (int c = 0; c < ncols; c++) {
            span cell = next_cell(&q, lend, delim);
            char buf[128];
            double v = 0;
            enum { OK, EMPTY, NAN_, INF_, F32_RANGE, NOT_INT } why = OK;
            if (cell.n == 0) {
                why = EMPTY;
            } else if (cell.n >= sizeof buf || memchr(cell.s, 0, cell.n)) {
                why = NAN_;
            } else {
                memcpy(buf, cell.s, cell.n);
                buf[cell.n] = 0;
                char *stop;
                v = strtod(buf, &stop);
                if (stop == buf || *stop) why = NAN_;
                else if (!isfinite(v)) why = INF_;
                else if ((c == target ? o.y_dtype : o.x_dtype) == TG_F32 && !isfinite((float)v))
                    why = F32_RANGE;
                else if (c == target && o.y_dtype == TG_I32 &&
                         (v != floor(v) || v < INT32_MIN || v > INT32_MAX))
                    why = NOT_INT;
            }
            if (why != OK) {
                /* the column's header name, for the message */
                const char *hq = header.s, *hend = header.s + header.n;
                span name = {"", 0};
                for (int k = 0; k <= c; k++) name = next_cell(&hq, hend, delim);
                static const char *const what[] = {
                    [EMPTY] = "empty cell where a number is expected",
                    [NAN_] = "cannot read '%.*s' as a number",
                    [INF_] = "'%.*s' is not a finite number",
                    [F32_RANGE] = "'%.*s' does not fit in float32 (choose float64)",
                    [NOT_INT] = "'%.*s' is not an integer class label",
                };
                char detail[160];
                snprintf(detail, sizeof detail, what[why], cell.n > 60 ? 60 : (int)cell.n,
                         cell.s);
                st = tg_status_set(why == NOT_INT ? TG_ERR_VALUE : TG_ERR_FORMAT,
                                   "%s: line %lld, column %d (%.*s): %s", path, lineno, c + 1,
                                   name.n > 60 ? 60 : (int)name.n, name.s, detail);
                goto done;
            }
            if (!dvec_push(&vals, v)) {
                st = tg_status_set(TG_ERR_NOMEM, "%s: out of memory at line %lld", path, lineno);
                goto done;
            }
        }
        nrows++;
    }
    if (nrows == 0) {
        st = tg_status_set(TG_ERR_FORMAT, "%s: no data rows after the header", path);
        goto done;
    }

    int64_t nfeat = y ? ncols - 1 : ncols;
    tg_tensor *tx = tg_zeros(o.x_dtype, TG_SHAPE(nrows, nfeat));
    tg_tensor *ty = y ? tg_zeros(o.y_dtype, TG_SHAPE(nrows)) : NULL;
    for (int64_t i = 0; i < nrows; i++) {
        const double *row = vals.v + i * ncols;
        int64_t j = 0;
        for (int c = 0; c < ncols; c++) {
            if (c == target) {
                tg_set_flat(ty, i, row[c]);
            } else if (o.x_dtype == TG_F32) {
                ((float *)tx->data)[i * nfeat + j++] = (float)row[c];
            } else {
                ((double *)tx->data)[i * nfeat + j++] = row[c];
            }
        }
    }
    *x = tx;
    if (y) *y = ty;
    st = TG_OK;
done:
    tg__free(vals.v);
    tg__free(text);
    return st;
}
