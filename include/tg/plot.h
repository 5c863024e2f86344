/* tapegrad plot: training-curve line charts written as PNG (matplotlib-like look).
 *
 * Standalone: nothing here touches tensors or the tape. Text is rendered with DejaVu Sans through
 * stb_truetype (override the font file with the TG_PLOT_FONT environment variable); if the font
 * cannot be read the chart is still written, with a built-in bitmap font. Charts are built by the
 * caller in a plain struct; zero-initialise it and fill what you need:
 *
 *     tg_chart c = {.title = "Validation accuracy", .xlabel = "epoch", .ylabel = "accuracy"};
 *     c.series[0] = (tg_series){.name = "MLP", .y = acc_mlp, .n = epochs};
 *     c.series[1] = (tg_series){.name = "CNN", .y = acc_cnn, .n = epochs, .dashed = true};
 *     c.n_series = 2;
 *     if (tg_chart_write_png(&c, "acc.png", 800, 500) != TG_OK)
 *         fprintf(stderr, "%s\n", tg_status_message());
 *
 * Non-finite points (NaN, ±Inf; and values <= 0 on a log axis) are skipped and leave a gap in the
 * line. Nothing is kept between calls: charts may be written from several threads at once. */
#ifndef TG_PLOT_H
#define TG_PLOT_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TG_CHART_MAX_SERIES 32

/* An explicit series colour: TG_RGB(0x1f77b4). A colour of 0 means "next palette colour" (the
 * matplotlib tab10 cycle), which is why the macro sets a marker bit. */
#define TG_RGB(hex) (0x1000000u | ((uint32_t)(hex) & 0xffffffu))

typedef struct {
    const char *name;   /* legend entry; NULL or "" leaves the series out of the legend */
    const double *x;    /* n values, or NULL for x = 1, 2, ..., n (epochs) */
    const double *y;    /* n values; may be NULL only when n == 0 */
    int n;              /* 0 is allowed: an empty series (still listed in the legend) */
    uint32_t color;     /* TG_RGB(0xRRGGBB), or 0 for the next palette colour */
    bool markers;       /* a dot at every finite point */
    bool dashed;        /* e.g. training curve dashed, validation curve solid, same colour */
} tg_series;

typedef struct {
    const char *title, *xlabel, *ylabel;   /* each may be NULL (no text, no space reserved) */
    int n_series;                          /* 0 .. TG_CHART_MAX_SERIES */
    tg_series series[TG_CHART_MAX_SERIES];
    /* Axis ranges. Both 0 (the zero-initialised default): fitted to the data with a 5% margin.
     * Otherwise each finite end is fixed and a NaN end is fitted (y_min = 0, y_max = NAN: start
     * at zero); fixed ends need min < max (and > 0 on a log axis), else TG_ERR_VALUE. Points
     * outside a fixed range are clipped at the frame. */
    double x_min, x_max;
    double y_min, y_max;
    bool log_y;                            /* logarithmic y axis (losses); ticks at 1/2/5·10^k */
    bool no_legend;                        /* suppress the legend even if series have names */
    /* The legend never covers data: it goes in a corner of the plot where no line passes, else
     * right of the plot (which narrows; several columns when it is taller than the plot). */
    bool legend_outside;                   /* right of the plot whatever the data */
} tg_chart;

/* Colour i of the series palette (16 colours, then again), as TG_RGB: for series that must share
 * a colour (a configuration's training and validation curves). */
uint32_t tg_chart_palette(int i);

/* Renders the chart and writes an 8-bit RGB PNG. width and height in pixels, 200 .. 8000; text
 * and line widths scale with the size (800x500 is the reference). Returns TG_OK, TG_ERR_VALUE
 * (NULL chart or path, bad size or series count, negative n, NULL y with n > 0, bad fixed range),
 * TG_ERR_IO (the file cannot be created or written; the message names the path) or TG_ERR_NOMEM;
 * the message is read with tg_status_message(). */
tg_status tg_chart_write_png(const tg_chart *chart, const char *path, int width, int height);

/* The common case in one call: n_series curves of n_points values each, x = 1..n_points (epochs),
 * palette colours, an 800x500 image. names may be NULL (no legend), as may any names[i]. */
tg_status tg_plot_curves(const char *path, const char *title, const char *xlabel,
                         const char *ylabel, int n_series, const char *const *names,
                         const double *const *ys, int n_points);

#ifdef __cplusplus
}
#endif
#endif
