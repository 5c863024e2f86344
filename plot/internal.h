/* Shared between plot/chart.c (layout, lines) and plot/font.c (text). Not installed. */
#ifndef TG_PLOT_INTERNAL_H
#define TG_PLOT_INTERNAL_H

#include <stdint.h>

/* An 8-bit RGB image, row-major, no padding. */
typedef struct {
    uint8_t *px;
    int w, h;
} tg__canvas;

/* Blends colour 0xRRGGBB over pixel (x, y) with opacity a in [0, 1]; outside pixels are ignored. */
static inline void tg__blend(tg__canvas *c, int x, int y, uint32_t rgb, double a)
{
    if (x < 0 || y < 0 || x >= c->w || y >= c->h || !(a > 0)) return;
    if (a > 1) a = 1;
    uint8_t *p = c->px + ((size_t)y * (size_t)c->w + (size_t)x) * 3;
    for (int k = 0; k < 3; k++) {
        double src = (double)((rgb >> (16 - 8 * k)) & 0xff);
        p[k] = (uint8_t)(p[k] + (src - p[k]) * a + 0.5);
    }
}

typedef struct tg__font tg__font;

/* Loads $TG_PLOT_FONT or DejaVu Sans; when neither can be read, the built-in bitmap font is used.
 * Returns NULL only when out of memory. */
tg__font *tg__font_open(void);
void tg__font_close(tg__font *f);
int tg__font_is_truetype(const tg__font *f);

/* Metrics for a font size of px pixels (the em height): ascent above and descent below the
 * baseline (both positive), and the advance width of a UTF-8 string. */
double tg__font_ascent(const tg__font *f, double px);
double tg__font_descent(const tg__font *f, double px);
double tg__font_width(const tg__font *f, const char *s, double px);

/* Text placement: the anchor (x, y) is the point of the text box picked by halign (0 left,
 * 1 centre, 2 right, along the writing direction) and valign (0 top, 1 middle, 2 bottom of
 * ascent+descent). rotate90: written bottom-to-top (a y-axis label). Returns 0, or -1 when out
 * of memory. */
int tg__font_draw(const tg__font *f, tg__canvas *c, const char *s, double px, double x, double y,
                  int halign, int valign, int rotate90, uint32_t rgb);

#endif
