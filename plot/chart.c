/* Line charts as PNG: layout (nice ticks, margins sized from the text), antialiased lines drawn
 * from a per-series coverage buffer, legend placement, and the PNG file itself (stb_image_write,
 * implementation in Debian's libstb). The look follows matplotlib's defaults: tab10 colours,
 * light grid, dark frame, outward ticks; the legend in a corner free of data, else beside the
 * plot. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb/stb_image_write.h>

#include "tg/plot.h"
#include "autograd/internal.h"
#include "plot/internal.h"

/* matplotlib's tab10 without its grey (too close to the grid and frame), then the darker and
 * the olive shades of tab20b/tab20c, so 16 series have 16 colours. */
static const uint32_t palette[] = {
    0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x17becf,
    0xbcbd22, 0x393b79, 0xad494a, 0x637939, 0x8c6d31, 0x7b4173, 0x000000, 0x6baed6,
};
enum { N_PALETTE = sizeof palette / sizeof palette[0] };

uint32_t tg_chart_palette(int i)
{
    return TG_RGB(palette[((i % N_PALETTE) + N_PALETTE) % N_PALETTE]);
}

#define COL_BG 0xffffffu
#define COL_GRID 0xe3e3e3u
#define COL_FRAME 0x3a3a3au
#define COL_TEXT 0x262626u
#define COL_LEGEND_EDGE 0xccccccu

#define MAX_TICKS 64
#define TICK_LABEL_LEN 40

typedef struct {
    double lo, hi;   /* visible range, in axis space (log10 of the value on a log axis) */
    bool log;
    int n;
    double at[MAX_TICKS];                 /* tick positions, axis space */
    char label[MAX_TICKS][TICK_LABEL_LEN];
} axis;

/* The plot area: integer frame columns/rows; data maps onto [x0, x1] x [y0, y1] continuously. */
typedef struct {
    int left, top, right, bottom;
} rect;

/* ---- ranges and ticks ---------------------------------------------------------------------- */

static double series_x(const tg_series *s, int i) { return s->x ? s->x[i] : (double)(i + 1); }

/* A point is drawn when both coordinates are finite (and y > 0 on a log axis). */
static bool point_ok(const tg_series *s, int i, bool log_y, double *x, double *y)
{
    double xv = series_x(s, i), yv = s->y[i];
    if (!isfinite(xv) || !isfinite(yv)) return false;
    if (log_y) {
        if (!(yv > 0)) return false;
        yv = log10(yv);
    }
    *x = xv;
    *y = yv;
    return true;
}

/* Fits [lo, hi] from the data extent [dlo, dhi] (dlo > dhi: no data) and the caller's fixed ends
 * (NaN: automatic). Automatic ends get a 5% margin, as matplotlib does. */
static void fit_range(double dlo, double dhi, double fix_lo, double fix_hi, double *lo, double *hi)
{
    bool flo = isfinite(fix_lo), fhi = isfinite(fix_hi);
    if (dlo > dhi) { /* no data at all */
        dlo = flo ? fix_lo : fhi ? fix_hi - 1 : 0;
        dhi = fhi ? fix_hi : dlo + 1;
    }
    double a = flo ? fix_lo : dlo, b = fhi ? fix_hi : dhi;
    double span = b - a;
    if (!(span > 0)) {
        /* constant data (or a fixed end beyond the data): open a window around it */
        double d = fabs(flo ? a : b) * 0.05;
        span = d > 0 ? 2 * d : 1;
        if (flo && !fhi) b = a + span;
        else if (fhi && !flo) a = b - span;
        else { a -= span / 2; b += span / 2; }
        *lo = a;
        *hi = b;
        return;
    }
    *lo = flo ? a : a - 0.05 * span;
    *hi = fhi ? b : b + 0.05 * span;
}

/* The nice step (1, 2 or 5 times a power of ten) nearest, in ratio, to range/target. */
static double nice_step(double range, double target, bool integer)
{
    double raw = range / target;
    double mag = pow(10, floor(log10(raw)));
    static const double m[] = {1, 2, 5, 10};
    double step = mag, best = INFINITY;
    for (int i = 0; i < 4; i++) {
        double d = fabs(log(m[i] * mag / raw));
        if (d < best) {
            best = d;
            step = m[i] * mag;
        }
    }
    if (integer && step < 1) step = 1; /* epochs: no 2.5 */
    return step;
}

/* "%g"-like text for tick values that differ by multiples of step: enough decimals to tell them
 * apart, no "-0", scientific only for very large or very small magnitudes. */
static void format_tick(char *out, double v, double step, double maxabs, bool unicode_minus)
{
    char buf[TICK_LABEL_LEN - 4]; /* room for the 3-byte minus sign */
    if (fabs(v) < step * 1e-9) v = 0;
    int dec = (int)-floor(log10(step) + 1e-9);
    if (maxabs >= 1e6 || dec > 5) {
        int digits = (int)floor(log10(maxabs) + 1e-9) - (int)floor(log10(step) + 1e-9) + 1;
        if (digits < 1) digits = 1;
        if (digits > 15) digits = 15;
        snprintf(buf, sizeof buf, "%.*g", digits, v);
    } else {
        snprintf(buf, sizeof buf, "%.*f", dec > 0 ? dec : 0, v);
    }
    if (buf[0] == '-' && unicode_minus)
        snprintf(out, TICK_LABEL_LEN, "\xe2\x88\x92%s", buf + 1); /* U+2212, as matplotlib */
    else
        snprintf(out, TICK_LABEL_LEN, "%s", buf);
}

static void linear_ticks(axis *ax, double lo, double hi, double target, bool integer,
                         bool unicode_minus, bool positions_log)
{
    double step = nice_step(hi - lo, target, integer);
    double first = ceil(lo / step - 1e-9) * step;
    double maxabs = fmax(fabs(lo), fabs(hi));
    ax->n = 0;
    for (int k = 0; ax->n < MAX_TICKS; k++) {
        double v = first + k * step;
        if (v > hi + step * 1e-9) break;
        if (positions_log && !(v > 0)) continue;
        ax->at[ax->n] = positions_log ? log10(v) : v;
        format_tick(ax->label[ax->n], v, step, maxabs, unicode_minus);
        ax->n++;
    }
}

/* Log axis: ticks at 10^k, else {1,2,5}·10^k, else {1..9}·10^k, whichever first gives at least
 * three ticks; a range narrower than that gets linear nice ticks. */
static void log_ticks(axis *ax, double target, bool unicode_minus)
{
    static const int sets[3][10] = {{1, 0}, {1, 2, 5, 0}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 0}};
    int d0 = (int)floor(ax->lo), d1 = (int)ceil(ax->hi);
    for (int s = 0; s < 3; s++) {
        int every = 1; /* many decades: label every k-th */
        if (s == 0) while ((d1 - d0) / every > target * 1.5) every++;
        ax->n = 0;
        for (int d = d0; d <= d1 && ax->n < MAX_TICKS; d++) {
            if (s == 0 && (d % every) != 0) continue;
            for (int j = 0; sets[s][j] && ax->n < MAX_TICKS; j++) {
                double p = log10((double)sets[s][j]) + d;
                if (p < ax->lo - 1e-9 || p > ax->hi + 1e-9) continue;
                ax->at[ax->n] = p;
                double v = sets[s][j] * pow(10, d);
                snprintf(ax->label[ax->n], TICK_LABEL_LEN, "%g", v);
                ax->n++;
            }
        }
        if (ax->n >= 3) return;
    }
    if (ax->n >= 2) return;
    linear_ticks(ax, pow(10, ax->lo), pow(10, ax->hi), target, false, unicode_minus, true);
}

/* ---- drawing ------------------------------------------------------------------------------- */

static void fill_rect(tg__canvas *c, int x0, int y0, int x1, int y1, uint32_t rgb)
{
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) tg__blend(c, x, y, rgb, 1);
}

/* Coverage of one round-capped segment of half width hw, max-combined into cov (so joints and
 * overlaps within a series are not blended twice). Only pixels inside clip are touched. */
static void cov_segment(float *cov, int w, rect clip, double ax, double ay, double bx, double by,
                        double hw)
{
    double r = hw + 1;
    int x0 = (int)floor(fmin(ax, bx) - r), x1 = (int)ceil(fmax(ax, bx) + r);
    int y0 = (int)floor(fmin(ay, by) - r), y1 = (int)ceil(fmax(ay, by) + r);
    if (x0 < clip.left) x0 = clip.left;
    if (y0 < clip.top) y0 = clip.top;
    if (x1 > clip.right) x1 = clip.right;
    if (y1 > clip.bottom) y1 = clip.bottom;
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            double px = x + 0.5 - ax, py = y + 0.5 - ay;
            double t = len2 > 0 ? (px * dx + py * dy) / len2 : 0;
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            double ex = px - t * dx, ey = py - t * dy;
            double a = hw + 0.5 - sqrt(ex * ex + ey * ey);
            if (a <= 0) continue;
            float *p = cov + (size_t)y * (size_t)w + (size_t)x;
            if (a > 1) a = 1;
            if (a > *p) *p = (float)a;
        }
}

/* Liang-Barsky: clips segment a-b to the box; false when nothing is left. Keeps the pixel loops
 * bounded whatever the data (a fixed range far from a point). */
static bool clip_segment(double *ax, double *ay, double *bx, double *by, double x0, double y0,
                         double x1, double y1)
{
    double t0 = 0, t1 = 1, dx = *bx - *ax, dy = *by - *ay;
    double p[4] = {-dx, dx, -dy, dy}, q[4] = {*ax - x0, x1 - *ax, *ay - y0, y1 - *ay};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0) {
            if (q[i] < 0) return false;
            continue;
        }
        double t = q[i] / p[i];
        if (p[i] < 0) {
            if (t > t1) return false;
            if (t > t0) t0 = t;
        } else {
            if (t < t0) return false;
            if (t < t1) t1 = t;
        }
    }
    double nax = *ax + t0 * dx, nay = *ay + t0 * dy;
    *bx = *ax + t1 * dx;
    *by = *ay + t1 * dy;
    *ax = nax;
    *ay = nay;
    return true;
}

typedef struct {
    float *cov;
    int w;
    rect clip;
    double hw;
    bool dashed;
    double on, off, phase; /* dash pattern and position along it, in pixels */
} pen;

static void pen_segment(pen *p, double ax, double ay, double bx, double by)
{
    double m = p->hw + 2;
    double len = hypot(bx - ax, by - ay);
    if (!p->dashed) {
        if (clip_segment(&ax, &ay, &bx, &by, p->clip.left - m, p->clip.top - m, p->clip.right + m,
                         p->clip.bottom + m))
            cov_segment(p->cov, p->w, p->clip, ax, ay, bx, by, p->hw);
        return;
    }
    /* Dashes continue their phase across the joints of a polyline. Very long segments (far
     * outside the plot) are clipped first so the dash loop stays short. */
    if (len > 4.0 * (p->clip.right - p->clip.left + p->clip.bottom - p->clip.top + 4 * m)) {
        double cax = ax, cay = ay, cbx = bx, cby = by;
        if (!clip_segment(&cax, &cay, &cbx, &cby, p->clip.left - m, p->clip.top - m,
                          p->clip.right + m, p->clip.bottom + m)) {
            p->phase = fmod(p->phase + len, p->on + p->off);
            return;
        }
        p->phase = fmod(p->phase + hypot(cax - ax, cay - ay), p->on + p->off);
        double rest = hypot(bx - cbx, by - cby);
        ax = cax; ay = cay; bx = cbx; by = cby;
        len = hypot(bx - ax, by - ay);
        pen_segment(p, ax, ay, bx, by);
        p->phase = fmod(p->phase + rest, p->on + p->off);
        return;
    }
    if (len <= 0) return;
    double period = p->on + p->off, s = 0;
    while (s < len) {
        double ph = fmod(p->phase, period);
        /* to the next on/off switch; at least a hair, so rounding at a switch cannot stall */
        double seg = fmax(ph < p->on ? p->on - ph : period - ph, 1e-6);
        double e = fmin(len, s + seg);
        if (ph < p->on) {
            double t0 = s / len, t1 = e / len;
            double sx = ax + (bx - ax) * t0, sy = ay + (by - ay) * t0;
            double ex = ax + (bx - ax) * t1, ey = ay + (by - ay) * t1;
            if (clip_segment(&sx, &sy, &ex, &ey, p->clip.left - m, p->clip.top - m,
                             p->clip.right + m, p->clip.bottom + m))
                cov_segment(p->cov, p->w, p->clip, sx, sy, ex, ey, p->hw);
        }
        p->phase = fmod(p->phase + (e - s), period);
        s = e;
    }
}

static void cov_disk(float *cov, int w, rect clip, double cx, double cy, double r)
{
    cov_segment(cov, w, clip, cx, cy, cx, cy, r);
}

/* Composites a coverage buffer in one colour over the clip rectangle and clears it. */
static void composite(tg__canvas *c, float *cov, rect clip, uint32_t rgb)
{
    /* The coverage buffer is the canvas's size: never index outside it, whatever the caller's
     * rectangle (a legend wider than the plot starts left of the canvas). */
    int left = clip.left > 0 ? clip.left : 0, top = clip.top > 0 ? clip.top : 0;
    int right = clip.right < c->w - 1 ? clip.right : c->w - 1;
    int bottom = clip.bottom < c->h - 1 ? clip.bottom : c->h - 1;
    for (int y = top; y <= bottom; y++)
        for (int x = left; x <= right; x++) {
            float *p = cov + (size_t)y * (size_t)c->w + (size_t)x;
            if (*p > 0) {
                tg__blend(c, x, y, rgb, *p);
                *p = 0;
            }
        }
}

/* Signed distance from (px, py) to a rounded rectangle (negative inside). */
static double round_rect_sd(double px, double py, double x0, double y0, double x1, double y1,
                            double r)
{
    double cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    double qx = fabs(px - cx) - ((x1 - x0) / 2 - r), qy = fabs(py - cy) - ((y1 - y0) / 2 - r);
    double ox = fmax(qx, 0), oy = fmax(qy, 0);
    return hypot(ox, oy) + fmin(fmax(qx, qy), 0) - r;
}

/* ---- the chart ----------------------------------------------------------------------------- */

typedef struct {
    const tg_chart *ch;
    tg__canvas c;
    tg__font *font;
    double s;                     /* scale: 1 at 800x500 */
    double fs_tick, fs_label, fs_title, fs_legend;
    rect plot;
    axis ax, ay;
    uint32_t color[TG_CHART_MAX_SERIES];
    /* The legend: its names cut to fit, its box (columns of rows), and where it goes. */
    char fitted[TG_CHART_MAX_SERIES][256];
    const char *names[TG_CHART_MAX_SERIES];
    int n_named, rows_per_col, cols;
    double name_w, col_w, row_h, leg_w, leg_h, leg_x, leg_y;
    bool outside;
} ctx;

static double map_x(const ctx *k, double v)
{
    double p = k->plot.left + 0.5 + (v - k->ax.lo) / (k->ax.hi - k->ax.lo) *
                                        (k->plot.right - k->plot.left);
    return fmax(-1e6, fmin(1e6, p)); /* huge values stay finite; clip_segment does the rest */
}

static double map_y(const ctx *k, double v)
{
    double p = k->plot.bottom + 0.5 - (v - k->ay.lo) / (k->ay.hi - k->ay.lo) *
                                          (k->plot.bottom - k->plot.top);
    return fmax(-1e6, fmin(1e6, p));
}

static double text_h(const ctx *k, double px)
{
    return tg__font_ascent(k->font, px) + tg__font_descent(k->font, px);
}

static bool has_text(const char *s) { return s && *s; }

/* Calls fn on every drawn segment of series i in pixel space (isolated points as zero-length
 * segments), which is how both the lines and the legend placement see the data. */
enum { SEG_LINE, SEG_RUN_START, SEG_DOT };
typedef void (*seg_fn)(void *user, double ax, double ay, double bx, double by, int kind);

static void walk_series(const ctx *k, int i, seg_fn fn, void *user)
{
    const tg_series *s = &k->ch->series[i];
    bool have_prev = false;
    double px = 0, py = 0;
    for (int j = 0; j < s->n; j++) {
        double x, y;
        if (!point_ok(s, j, k->ch->log_y, &x, &y)) {
            have_prev = false;
            continue;
        }
        double X = map_x(k, x), Y = map_y(k, y);
        bool next_ok = false;
        if (j + 1 < s->n) {
            double x2, y2;
            next_ok = point_ok(s, j + 1, k->ch->log_y, &x2, &y2);
        }
        if (have_prev) fn(user, px, py, X, Y, SEG_LINE);
        else fn(user, X, Y, X, Y, next_ok ? SEG_RUN_START : SEG_DOT); /* isolated: a dot */
        px = X;
        py = Y;
        have_prev = true;
    }
}

static void draw_seg(void *user, double ax, double ay, double bx, double by, int kind)
{
    pen *p = user;
    if (kind == SEG_LINE) pen_segment(p, ax, ay, bx, by);
    else if (kind == SEG_DOT) cov_disk(p->cov, p->w, p->clip, ax, ay, 1.8 * p->hw);
    else p->phase = 0; /* each run after a gap starts its dash pattern afresh */
}

typedef struct {
    double x0, y0, x1, y1;
    long hits;
} box_count;

static void count_seg(void *user, double ax, double ay, double bx, double by, int kind)
{
    box_count *b = user;
    double len = hypot(bx - ax, by - ay);
    int n = (int)fmin(ceil(len / 3), 4000) + 1;
    for (int i = 0; i < n; i++) {
        double t = n > 1 ? (double)i / (n - 1) : 0;
        double x = ax + (bx - ax) * t, y = ay + (by - ay) * t;
        if (x >= b->x0 && x <= b->x1 && y >= b->y0 && y <= b->y1) b->hits++;
    }
}

static void draw_series(ctx *k, float *cov, int i)
{
    const tg_series *s = &k->ch->series[i];
    pen p = {.cov = cov, .w = k->c.w, .clip = k->plot, .hw = 1.0 * k->s, .dashed = s->dashed,
             .on = 5.5 * k->s, .off = 5.0 * k->s};
    /* lines from this pen are at least ~2 px wide and never thinner than one pixel */
    if (p.hw < 0.6) p.hw = 0.6;
    walk_series(k, i, draw_seg, &p);
    if (s->markers)
        for (int j = 0; j < s->n; j++) {
            double x, y;
            if (point_ok(s, j, k->ch->log_y, &x, &y))
                cov_disk(cov, k->c.w, k->plot, map_x(k, x), map_y(k, y), 3.2 * k->s);
        }
    composite(&k->c, cov, k->plot, k->color[i]);
}

enum { FIT_MAX = 256 }; /* bytes of a fitted legend name, "…" included */

/* name, or its longest prefix of whole UTF-8 characters + "…" that is at most max_w wide, in
 * buf[FIT_MAX]. Bisection over the characters' start offsets: the width grows with the prefix. */
static const char *fit_text(const ctx *k, const char *name, double px, double max_w, char *buf)
{
    if (tg__font_width(k->font, name, px) <= max_w) return name;
    int starts[FIT_MAX], n = 0; /* starts[i]: byte length of the first i characters */
    for (size_t b = 0; name[b] && b <= FIT_MAX - 4 && n < FIT_MAX; b++)
        if (((unsigned char)name[b] & 0xC0) != 0x80) starts[n++] = (int)b;
    int lo = 0, hi = n - 1; /* prefixes of starts[lo] bytes fit (0 always "fits") */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        snprintf(buf, FIT_MAX, "%.*s\xE2\x80\xA6", starts[mid], name);
        if (tg__font_width(k->font, buf, px) <= max_w) lo = mid;
        else hi = mid - 1;
    }
    snprintf(buf, FIT_MAX, "%.*s\xE2\x80\xA6", n ? starts[lo] : 0, name);
    return buf;
}

/* The legend's names (cut to max_name_w with "…") and its box size: rows of one series each, in
 * as many columns as max_h needs. */
static void legend_size(ctx *k, double max_name_w, double max_h)
{
    const tg_chart *ch = k->ch;
    double s = k->s, pad = 7 * s, handle = 26 * s, gap = 8 * s;
    k->n_named = 0;
    k->name_w = 0;
    for (int i = 0; i < ch->n_series; i++) {
        k->names[i] = NULL;
        if (!has_text(ch->series[i].name)) continue;
        k->names[i] = fit_text(k, ch->series[i].name, k->fs_legend, max_name_w, k->fitted[i]);
        k->n_named++;
        k->name_w = fmax(k->name_w, tg__font_width(k->font, k->names[i], k->fs_legend));
    }
    k->row_h = text_h(k, k->fs_legend) * 1.25;
    int fit = (int)fmax(1, floor((max_h - 2 * pad + (k->row_h - text_h(k, k->fs_legend))) /
                                 k->row_h));
    k->cols = k->n_named ? (k->n_named + fit - 1) / fit : 0;
    k->rows_per_col = k->cols ? (k->n_named + k->cols - 1) / k->cols : 0;
    k->col_w = handle + gap + k->name_w;
    k->leg_w = 2 * pad + k->cols * k->col_w + (k->cols - 1) * 2 * gap;
    k->leg_h = 2 * pad + k->rows_per_col * k->row_h - (k->row_h - text_h(k, k->fs_legend));
}

/* Data points (sampled along the drawn segments) under the box at (x, y). */
static long legend_hits(const ctx *k, double x, double y)
{
    box_count b = {x - 2, y - 2, x + k->leg_w + 2, y + k->leg_h + 2, 0};
    for (int i = 0; i < k->ch->n_series; i++) walk_series(k, i, count_seg, &b);
    return b.hits;
}

/* Inside the plot in the first of matplotlib's "best" corners that covers no data; false when
 * every corner covers some (or the box is taller than the plot). */
static bool legend_inside(ctx *k)
{
    double inset = 9 * k->s;
    if (k->cols != 1 || k->leg_h > k->plot.bottom - k->plot.top - 2 * inset) return false;
    double L = k->plot.left + inset, R = k->plot.right - inset - k->leg_w;
    double T = k->plot.top + inset, B = k->plot.bottom - inset - k->leg_h;
    double cand[4][2] = {{R, T}, {L, T}, {L, B}, {R, B}};
    for (int c = 0; c < 4; c++)
        if (cand[c][0] >= L && legend_hits(k, cand[c][0], cand[c][1]) == 0) {
            k->leg_x = cand[c][0], k->leg_y = cand[c][1];
            return true;
        }
    return false;
}

static int draw_legend(ctx *k, float *cov)
{
    const tg_chart *ch = k->ch;
    if (k->n_named == 0 || ch->no_legend) return 0;
    double s = k->s, pad = 7 * s, handle = 26 * s, gap = 8 * s;
    double x0 = floor(k->leg_x) + 0.5, y0 = floor(k->leg_y) + 0.5;
    double x1 = x0 + ceil(k->leg_w), y1 = y0 + ceil(k->leg_h), r = 3.5 * s, ew = fmax(1, s);
    for (int y = (int)floor(y0) - 1; y <= (int)ceil(y1) + 1; y++)
        for (int x = (int)floor(x0) - 1; x <= (int)ceil(x1) + 1; x++) {
            double d = round_rect_sd(x + 0.5, y + 0.5, x0, y0, x1, y1, r);
            double fill = fmin(fmax(0.5 - d, 0), 1);
            double edge = fmin(fmax(ew / 2 + 0.5 - fabs(d + ew / 2 - 0.5), 0), 1);
            tg__blend(&k->c, x, y, COL_BG, 0.85 * fill);
            tg__blend(&k->c, x, y, COL_LEGEND_EDGE, edge);
        }
    rect all = {0, 0, k->c.w - 1, k->c.h - 1};
    int slot = 0;
    for (int i = 0; i < ch->n_series; i++) {
        const tg_series *se = &ch->series[i];
        if (!k->names[i]) continue;
        double cx0 = x0 + pad + (slot / k->rows_per_col) * (k->col_w + 2 * gap);
        double ty = y0 + pad + (slot % k->rows_per_col) * k->row_h;
        slot++;
        double cy = floor(ty + text_h(k, k->fs_legend) / 2) + 0.5;
        pen p = {.cov = cov, .w = k->c.w, .clip = all, .hw = fmax(0.6, 1.0 * s),
                 .dashed = se->dashed, .on = 5.5 * s, .off = 5.0 * s};
        double hx0 = cx0 + p.hw, hx1 = cx0 + handle - p.hw;
        if (se->dashed) { /* centre the dash pattern on the handle */
            double len = hx1 - hx0, period = p.on + p.off;
            p.phase = fmod(period - fmod((len - p.on) / 2, period), period);
            if (p.phase < 0) p.phase += period;
        }
        pen_segment(&p, hx0, cy, hx1, cy);
        if (se->markers) cov_disk(cov, k->c.w, all, (hx0 + hx1) / 2, cy, 3.2 * s);
        composite(&k->c, cov,
                  (rect){(int)cx0 - 1, (int)(cy - 8 * s - 2), (int)ceil(cx0 + handle) + 1,
                         (int)(cy + 8 * s + 2)},
                  k->color[i]);
        if (tg__font_draw(k->font, &k->c, k->names[i], k->fs_legend, cx0 + handle + gap, ty, 0,
                          0, 0, COL_TEXT))
            return -1;
    }
    return 0;
}

/* Largest tick label width. */
static double max_label_w(const ctx *k, const axis *a, double px)
{
    double w = 0;
    for (int i = 0; i < a->n; i++) w = fmax(w, tg__font_width(k->font, a->label[i], px));
    return w;
}

static tg_status check(const tg_chart *ch, const char *path, int width, int height)
{
    if (!ch) return tg_status_set(TG_ERR_VALUE, "tg_chart_write_png: chart is NULL");
    if (!path || !*path) return tg_status_set(TG_ERR_VALUE, "tg_chart_write_png: path is empty");
    if (width < 200 || height < 200 || width > 8000 || height > 8000)
        return tg_status_set(TG_ERR_VALUE, "%s: chart size %dx%d is outside 200..8000 pixels",
                             path, width, height);
    if (ch->n_series < 0 || ch->n_series > TG_CHART_MAX_SERIES)
        return tg_status_set(TG_ERR_VALUE, "%s: %d series; a chart holds 0..%d", path,
                             ch->n_series, TG_CHART_MAX_SERIES);
    for (int i = 0; i < ch->n_series; i++) {
        const tg_series *s = &ch->series[i];
        if (s->n < 0 || (s->n > 0 && !s->y))
            return tg_status_set(TG_ERR_VALUE, "%s: series %d has n = %d and y %s", path, i, s->n,
                                 s->y ? "set" : "NULL");
    }
    const double r[2][2] = {{ch->x_min, ch->x_max}, {ch->y_min, ch->y_max}};
    for (int a = 0; a < 2; a++) {
        double lo = r[a][0], hi = r[a][1];
        if (lo == 0 && hi == 0) continue;
        if (isinf(lo) || isinf(hi) || (!isnan(lo) && !isnan(hi) && !(lo < hi)) ||
            (a == 1 && ch->log_y && (lo <= 0 || hi <= 0)))
            return tg_status_set(TG_ERR_VALUE,
                                 "%s: fixed %c range [%g, %g] is invalid (need min < max, NaN for "
                                 "an automatic end%s)",
                                 path, a ? 'y' : 'x', lo, hi,
                                 a && ch->log_y ? ", > 0 on a log axis" : "");
    }
    return TG_OK;
}

/* The PNG bytes go through our own FILE so errors carry errno and a failed file is removed. */
typedef struct {
    FILE *fp;
    bool failed;
    int err; /* errno of the first failed write */
} png_sink;

static void png_write(void *user, void *data, int size)
{
    png_sink *s = user;
    if (!s->failed && fwrite(data, 1, (size_t)size, s->fp) != (size_t)size) {
        s->failed = true;
        s->err = errno;
    }
}

static tg_status write_png(const char *path, const tg__canvas *c)
{
    png_sink sink = {fopen(path, "wb"), false, 0};
    if (!sink.fp)
        return tg_status_set(TG_ERR_IO, "%s: cannot create the chart file (%s)", path,
                             strerror(errno));
    struct stat sb;
    bool regular = fstat(fileno(sink.fp), &sb) == 0 && S_ISREG(sb.st_mode);
    int ok = stbi_write_png_to_func(png_write, &sink, c->w, c->h, 3, c->px, c->w * 3);
    int err = errno;
    if (ok && !sink.failed && fflush(sink.fp) == 0) {
        if (fclose(sink.fp) == 0) return TG_OK;
        err = errno;
    } else {
        if (ok) err = sink.failed ? sink.err : errno;
        fclose(sink.fp);
    }
    if (regular) remove(path); /* no truncated PNG left behind (but never unlink /dev/...) */
    if (!ok) return tg_status_set(TG_ERR_NOMEM, "%s: out of memory encoding the PNG", path);
    return tg_status_set(TG_ERR_IO, "%s: writing the chart failed (%s)", path, strerror(err));
}

/* x ticks: as many as fit the plot's width with room between labels. */
static void fit_x_ticks(ctx *k, bool integer_x, bool uminus)
{
    double s = k->s, plot_w = k->plot.right - k->plot.left;
    for (double target = fmin(12, plot_w / (70 * s)); ; target *= 0.8) {
        linear_ticks(&k->ax, k->ax.lo, k->ax.hi, fmax(target, 1), integer_x, uminus, false);
        double room =
            k->ax.n > 1 ? plot_w * (k->ax.at[1] - k->ax.at[0]) / (k->ax.hi - k->ax.lo) : 1e9;
        if (room > max_label_w(k, &k->ax, k->fs_tick) + 12 * s || target < 1.5) break;
    }
}

static tg_status render(ctx *k, float *cov)
{
    const tg_chart *ch = k->ch;
    tg__canvas *c = &k->c;
    double s = k->s;
    memset(c->px, 0xff, (size_t)c->w * (size_t)c->h * 3);
    bool uminus = tg__font_is_truetype(k->font);

    /* Data extent over drawable points. */
    double dxlo = INFINITY, dxhi = -INFINITY, dylo = INFINITY, dyhi = -INFINITY;
    bool integer_x = true;
    for (int i = 0; i < ch->n_series; i++)
        for (int j = 0; j < ch->series[i].n; j++) {
            double x, y;
            if (!point_ok(&ch->series[i], j, ch->log_y, &x, &y)) continue;
            dxlo = fmin(dxlo, x);
            dxhi = fmax(dxhi, x);
            dylo = fmin(dylo, y);
            dyhi = fmax(dyhi, y);
            if (x != floor(x)) integer_x = false;
        }
    bool xfixed = !(ch->x_min == 0 && ch->x_max == 0), yfixed = !(ch->y_min == 0 && ch->y_max == 0);
    fit_range(dxlo, dxhi, xfixed ? ch->x_min : NAN, xfixed ? ch->x_max : NAN, &k->ax.lo, &k->ax.hi);
    double fylo = yfixed ? ch->y_min : NAN, fyhi = yfixed ? ch->y_max : NAN;
    if (ch->log_y) {
        fylo = isnan(fylo) ? fylo : log10(fylo);
        fyhi = isnan(fyhi) ? fyhi : log10(fyhi);
    }
    fit_range(dylo, dyhi, fylo, fyhi, &k->ay.lo, &k->ay.hi);
    k->ay.log = ch->log_y;

    /* Vertical layout first: it fixes the plot height, hence the y ticks, hence the left margin. */
    double margin = 12 * s, tick_len = 4.5 * s, tick_pad = 4 * s, label_pad = 6 * s;
    double top = margin + (has_text(ch->title) ? text_h(k, k->fs_title) + 8 * s : 4 * s);
    double bottom = margin + tick_len + tick_pad + text_h(k, k->fs_tick) +
                    (has_text(ch->xlabel) ? label_pad + text_h(k, k->fs_label) : 0);
    k->plot.top = (int)lround(top);
    k->plot.bottom = c->h - 1 - (int)lround(bottom);
    double plot_h = k->plot.bottom - k->plot.top;
    double ytarget = fmax(2, fmin(10, plot_h / (55 * s)));
    if (ch->log_y) log_ticks(&k->ay, ytarget, uminus);
    else linear_ticks(&k->ay, k->ay.lo, k->ay.hi, ytarget, false, uminus, false);

    double left = margin + (has_text(ch->ylabel) ? text_h(k, k->fs_label) + label_pad : 0) +
                  max_label_w(k, &k->ay, k->fs_tick) + tick_pad + tick_len;
    k->plot.left = (int)lround(left);
    k->plot.right = c->w - 1 - (int)lround(margin + 10 * s);
    fit_x_ticks(k, integer_x, uminus);

    /* The legend inside the plot where a corner is free of data; else right of the plot, which
     * narrows to make room (in columns when it is taller than the plot). */
    if (!ch->no_legend) {
        double inset = 9 * s, handle_etc = 2 * 7 * s + 26 * s + 8 * s;
        legend_size(k, fmax(k->plot.right - k->plot.left - 2 * inset - handle_etc, 10 * s),
                    plot_h - 2 * inset);
        k->outside = k->n_named > 0 && (ch->legend_outside || !legend_inside(k));
        if (k->outside) {
            legend_size(k, fmax(0.34 * c->w - handle_etc, 10 * s), plot_h);
            if (k->leg_w > 0.5 * c->w) legend_size(k, fmax(0.12 * c->w, 10 * s), plot_h);
            k->plot.right = c->w - 1 - (int)lround(margin + k->leg_w + 10 * s);
            k->leg_x = k->plot.right + 10 * s;
            k->leg_y = k->plot.top;
            fit_x_ticks(k, integer_x, uminus);
        }
    }

    /* Grid, snapped to pixel columns/rows for crisp 1-px lines. */
    int gw = (int)fmax(1, lround(s));
    for (int i = 0; i < k->ax.n; i++) {
        int x = (int)floor(map_x(k, k->ax.at[i]));
        fill_rect(c, x - gw / 2, k->plot.top, x - gw / 2 + gw - 1, k->plot.bottom, COL_GRID);
    }
    for (int i = 0; i < k->ay.n; i++) {
        int y = (int)floor(map_y(k, k->ay.at[i]));
        fill_rect(c, k->plot.left, y - gw / 2, k->plot.right, y - gw / 2 + gw - 1, COL_GRID);
    }

    for (int i = 0; i < ch->n_series; i++) draw_series(k, cov, i);

    /* Frame and outward ticks. */
    int fw = gw;
    fill_rect(c, k->plot.left - fw + 1, k->plot.top - fw + 1, k->plot.right + fw - 1, k->plot.top,
              COL_FRAME);
    fill_rect(c, k->plot.left - fw + 1, k->plot.bottom, k->plot.right + fw - 1,
              k->plot.bottom + fw - 1, COL_FRAME);
    fill_rect(c, k->plot.left - fw + 1, k->plot.top, k->plot.left, k->plot.bottom, COL_FRAME);
    fill_rect(c, k->plot.right, k->plot.top, k->plot.right + fw - 1, k->plot.bottom, COL_FRAME);
    int tl = (int)lround(tick_len);
    double label_y = k->plot.bottom + fw + tick_len + tick_pad;
    for (int i = 0; i < k->ax.n; i++) {
        int x = (int)floor(map_x(k, k->ax.at[i]));
        fill_rect(c, x - gw / 2, k->plot.bottom + fw, x - gw / 2 + gw - 1,
                  k->plot.bottom + fw - 1 + tl, COL_FRAME);
        if (tg__font_draw(k->font, c, k->ax.label[i], k->fs_tick, x + 0.5, label_y, 1, 0, 0,
                          COL_TEXT))
            return TG_ERR_NOMEM;
    }
    for (int i = 0; i < k->ay.n; i++) {
        int y = (int)floor(map_y(k, k->ay.at[i]));
        fill_rect(c, k->plot.left - fw + 1 - tl, y - gw / 2, k->plot.left - fw, y - gw / 2 + gw - 1,
                  COL_FRAME);
        if (tg__font_draw(k->font, c, k->ay.label[i], k->fs_tick,
                          k->plot.left - fw - tick_len - tick_pad, y + 0.5, 2, 1, 0, COL_TEXT))
            return TG_ERR_NOMEM;
    }

    if (draw_legend(k, cov)) return TG_ERR_NOMEM;

    double pcx = (k->plot.left + k->plot.right + 1) / 2.0,
           pcy = (k->plot.top + k->plot.bottom + 1) / 2.0;
    /* A long title (a run's whole configuration) is drawn smaller rather than cut at the edges:
     * it is centred on the plot, so the room is twice the plot centre's distance to the nearer
     * canvas edge. Below half size it would be unreadable anyway: it is cut there. */
    double fs_title = k->fs_title;
    if (has_text(ch->title)) {
        double room = 2 * fmin(pcx, k->c.w - pcx) - 8 * s;
        double w = tg__font_width(k->font, ch->title, fs_title);
        if (w > room) fs_title *= fmax(0.5, room / w);
    }
    if (has_text(ch->title) && tg__font_draw(k->font, c, ch->title, fs_title, pcx,
                                             k->plot.top - 8 * s, 1, 2, 0, 0x111111))
        return TG_ERR_NOMEM;
    if (has_text(ch->xlabel) &&
        tg__font_draw(k->font, c, ch->xlabel, k->fs_label, pcx,
                      label_y + text_h(k, k->fs_tick) + label_pad, 1, 0, 0, COL_TEXT))
        return TG_ERR_NOMEM;
    if (has_text(ch->ylabel) &&
        tg__font_draw(k->font, c, ch->ylabel, k->fs_label, margin, pcy, 1, 0, 1, COL_TEXT))
        return TG_ERR_NOMEM;
    return TG_OK;
}

tg_status tg_chart_write_png(const tg_chart *chart, const char *path, int width, int height)
{
    tg_status st = check(chart, path, width, height);
    if (st != TG_OK) return st;
    ctx k = {.ch = chart};
    k.s = fmax(0.7, fmin(width / 800.0, height / 500.0));
    double ts = fmax(0.85, k.s); /* text shrinks less than the rest: it must stay readable */
    k.fs_tick = 12.5 * ts;
    k.fs_legend = 12.5 * ts;
    k.fs_label = 14 * ts;
    k.fs_title = 16.5 * ts;
    int next = 0;
    for (int i = 0; i < chart->n_series; i++) {
        uint32_t col = chart->series[i].color;
        k.color[i] = col ? (col & 0xffffffu) : palette[next++ % N_PALETTE];
    }
    k.c.w = width;
    k.c.h = height;
    k.c.px = tg__aligned_bytes((size_t)width * (size_t)height * 3);
    float *cov = tg__aligned_bytes((size_t)width * (size_t)height * sizeof *cov);
    if (cov) memset(cov, 0, (size_t)width * (size_t)height * sizeof *cov);
    k.font = tg__font_open();
    if (!k.c.px || !cov || !k.font) {
        st =
            tg_status_set(TG_ERR_NOMEM, "%s: out of memory for a %dx%d chart", path, width, height);
    } else {
        st = render(&k, cov);
        if (st != TG_OK) st = tg_status_set(st, "%s: out of memory rendering the chart", path);
        else st = write_png(path, &k.c);
    }
    tg__font_close(k.font);
    tg__free(cov);
    tg__free(k.c.px);
    return st;
}

tg_status tg_plot_curves(const char *path, const char *title, const char *xlabel,
                         const char *ylabel, int n_series, const char *const *names,
                         const double *const *ys, int n_points)
{
    if (n_series < 0 || n_series > TG_CHART_MAX_SERIES)
        return tg_status_set(TG_ERR_VALUE, "%s: %d series; a chart holds 0..%d",
                             path ? path : "(null)", n_series, TG_CHART_MAX_SERIES);
    if (n_series > 0 && !ys)
        return tg_status_set(TG_ERR_VALUE, "%s: ys is NULL", path ? path : "(null)");
    tg_chart ch = {.title = title, .xlabel = xlabel, .ylabel = ylabel, .n_series = n_series};
    for (int i = 0; i < n_series; i++)
        ch.series[i] = (tg_series){.name = names ? names[i] : NULL, .y = ys[i], .n = n_points};
    return tg_chart_write_png(&ch, path, 800, 500);
}
