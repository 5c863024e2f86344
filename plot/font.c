/* Chart text: DejaVu Sans through stb_truetype (implementation in Debian's libstb), with
 * stb_easy_font's segment font as the fallback when no TrueType file can be read. Either way a
 * string is first rasterised into an 8-bit coverage buffer in "text space" (x along the baseline),
 * then blended onto the canvas, rotated for y-axis labels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_truetype.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

#include "autograd/internal.h"
#include "plot/internal.h"

#define DEFAULT_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
#define MAX_FONT_BYTES (64L << 20)

/* stb_easy_font's glyphs are 7 units tall above the baseline with descenders to 9; treating the
 * em as 10 units makes its cap height match DejaVu's (0.73 em). */
#define EASY_EM 10.0
#define EASY_ASCENT 7.0
#define EASY_DESCENT 2.5

struct tg__font {
    unsigned char *ttf; /* NULL: bitmap fallback */
    stbtt_fontinfo info;
    double ascent, descent; /* in em units */
};

static unsigned char *read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    unsigned char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    if (n > 0 && n < MAX_FONT_BYTES && fseek(fp, 0, SEEK_SET) == 0) {
        buf = tg__aligned_bytes((size_t)n);
        if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
            tg__free(buf);
            buf = NULL;
        }
    }
    fclose(fp);
    return buf;
}

tg__font *tg__font_open(void)
{
    tg__font *f = tg__aligned_bytes(sizeof *f);
    if (!f) return NULL;
    memset(f, 0, sizeof *f);
    const char *env = getenv("TG_PLOT_FONT");
    const char *path = env && *env ? env : DEFAULT_FONT;
    f->ttf = read_file(path);
    if (f->ttf) {
        int off = stbtt_GetFontOffsetForIndex(f->ttf, 0);
        int asc, desc, gap;
        if (off < 0 || !stbtt_InitFont(&f->info, f->ttf, off)) {
            tg__free(f->ttf); /* not a font: fall back rather than fail the chart */
            f->ttf = NULL;
        } else {
            stbtt_GetFontVMetrics(&f->info, &asc, &desc, &gap);
            double em = 1.0 / stbtt_ScaleForMappingEmToPixels(&f->info, 1.0f);
            f->ascent = asc / em;
            f->descent = -desc / em;
        }
    }
    if (!f->ttf) {
        f->ascent = EASY_ASCENT / EASY_EM;
        f->descent = EASY_DESCENT / EASY_EM;
    }
    return f;
}

void tg__font_close(tg__font *f)
{
    if (!f) return;
    tg__free(f->ttf);
    tg__free(f);
}

int tg__font_is_truetype(const tg__font *f) { return f->ttf != NULL; }
double tg__font_ascent(const tg__font *f, double px) { return f->ascent * px; }
double tg__font_descent(const tg__font *f, double px) { return f->descent * px; }

/* Next code point of a UTF-8 string; malformed bytes come out as U+FFFD, one byte at a time. */
static unsigned utf8_next(const char **ps)
{
    const unsigned char *s = (const unsigned char *)*ps;
    unsigned c = s[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0) {
        *ps += 1;
        return 0xfffd;
    }
    if (len == 1) {
        *ps += 1;
        return c;
    }
    unsigned cp = c & (0x3fu >> (len - 1));
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *ps += 1;
            return 0xfffd;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    *ps += len;
    return cp;
}

/* The bitmap font knows printable ASCII only; everything else becomes '?' (minus sign: '-'). */
static char *easy_ascii(const char *s)
{
    char *out = tg__aligned_bytes(strlen(s) + 1), *o = out;
    if (!out) return NULL;
    while (*s) {
        unsigned cp = utf8_next(&s);
        *o++ = cp == 0x2212 ? '-' : (cp >= 32 && cp < 127) ? (char)cp : '?';
    }
    *o = 0;
    return out;
}

/* Advance of one string in pixels at size px; for TrueType, with kerning. */
static double tt_width(const tg__font *f, const char *s, double px)
{
    float scale = stbtt_ScaleForMappingEmToPixels(&f->info, (float)px);
    double w = 0;
    int prev = 0;
    while (*s) {
        int g = stbtt_FindGlyphIndex(&f->info, (int)utf8_next(&s));
        int adv, lsb;
        stbtt_GetGlyphHMetrics(&f->info, g, &adv, &lsb);
        if (prev) w += scale * stbtt_GetGlyphKernAdvance(&f->info, prev, g);
        w += scale * adv;
        prev = g;
    }
    return w;
}

double tg__font_width(const tg__font *f, const char *s, double px)
{
    if (!s || !*s) return 0;
    if (f->ttf) return tt_width(f, s, px);
    char *a = easy_ascii(s);
    if (!a) return 0;
    double w = stb_easy_font_width(a) * px / EASY_EM;
    tg__free(a);
    return w;
}

/* Saturating add of a glyph's coverage into the string buffer at (ox, oy). */
static void add_cov(uint8_t *buf, int bw, int bh, const uint8_t *g, int gw, int gh, int ox, int oy)
{
    for (int y = 0; y < gh; y++) {
        int by = oy + y;
        if (by < 0 || by >= bh) continue;
        for (int x = 0; x < gw; x++) {
            int bx = ox + x;
            if (bx < 0 || bx >= bw) continue;
            int v = buf[by * bw + bx] + g[y * gw + x];
            buf[by * bw + bx] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
}

/* TrueType: glyphs placed at sub-pixel x positions (stb's subpixel shift), baseline on row bl. */
static int tt_raster(const tg__font *f, const char *s, double px, double x0, uint8_t *buf, int bw,
                     int bh, int bl)
{
    float scale = stbtt_ScaleForMappingEmToPixels(&f->info, (float)px);
    double pen = x0;
    int prev = 0;
    uint8_t *g = NULL;
    size_t gcap = 0;
    while (*s) {
        int gi = stbtt_FindGlyphIndex(&f->info, (int)utf8_next(&s));
        int adv, lsb;
        stbtt_GetGlyphHMetrics(&f->info, gi, &adv, &lsb);
        if (prev) pen += scale * stbtt_GetGlyphKernAdvance(&f->info, prev, gi);
        prev = gi;
        double ipen = floor(pen);
        float frac = (float)(pen - ipen);
        int ix0, iy0, ix1, iy1;
        stbtt_GetGlyphBitmapBoxSubpixel(&f->info, gi, scale, scale, frac, 0, &ix0, &iy0, &ix1,
                                        &iy1);
        int gw = ix1 - ix0, gh = iy1 - iy0;
        if (gw > 0 && gh > 0) {
            if ((size_t)gw * (size_t)gh > gcap) {
                tg__free(g);
                gcap = (size_t)gw * (size_t)gh;
                g = tg__aligned_bytes(gcap);
                if (!g) return -1;
            }
            stbtt_MakeGlyphBitmapSubpixel(&f->info, g, gw, gh, gw, scale, scale, frac, 0, gi);
            add_cov(buf, bw, bh, g, gw, gh, (int)ipen + ix0, bl + iy0);
        }
        pen += scale * adv;
    }
    tg__free(g);
    return 0;
}

/* Bitmap fallback: stb_easy_font's quads scaled by k, rasterised with exact area coverage so the
 * scaled segments stay smooth. */
static int easy_raster(const char *s, double px, double x0, uint8_t *buf, int bw, int bh, int bl)
{
    char *a = easy_ascii(s);
    if (!a) return -1;
    size_t cap = (strlen(a) + 1) * 300; /* ~270 bytes per character, per the header */
    float *vb = tg__aligned_bytes(cap);
    if (!vb) {
        tg__free(a);
        return -1;
    }
    int nq = stb_easy_font_print(0, 0, a, NULL, vb, (int)cap);
    double k = px / EASY_EM;
    for (int q = 0; q < nq; q++) {
        const float *v = vb + q * 16; /* 4 vertices of 4 floats (x, y, z, colour) */
        double qx0 = x0 + v[0] * k, qx1 = x0 + v[8] * k;
        double qy0 = bl + (v[1] - EASY_ASCENT) * k, qy1 = bl + (v[9] - EASY_ASCENT) * k;
        for (int y = (int)floor(qy0); y < (int)ceil(qy1); y++) {
            if (y < 0 || y >= bh) continue;
            double cy = fmin(qy1, y + 1.0) - fmax(qy0, (double)y);
            for (int x = (int)floor(qx0); x < (int)ceil(qx1); x++) {
                if (x < 0 || x >= bw) continue;
                double cx = fmin(qx1, x + 1.0) - fmax(qx0, (double)x);
                int val = buf[y * bw + x] + (int)(cx * cy * 255 + 0.5);
                buf[y * bw + x] = (uint8_t)(val > 255 ? 255 : val);
            }
        }
    }
    tg__free(vb);
    tg__free(a);
    return 0;
}

int tg__font_draw(const tg__font *f, tg__canvas *c, const char *s, double px, double x, double y,
                  int halign, int valign, int rotate90, uint32_t rgb)
{
    if (!s || !*s) return 0;
    double tw = tg__font_width(f, s, px);
    double asc = tg__font_ascent(f, px), desc = tg__font_descent(f, px);
    /* The anchor in text space (u right along the baseline, v down), relative to the box's
     * top-left corner. */
    double au = halign == 0 ? 0 : halign == 1 ? tw / 2 : tw;
    double av = valign == 0 ? 0 : valign == 1 ? (asc + desc) / 2 : asc + desc;
    /* Whole-pixel box origin on the canvas keeps baselines crisp; the horizontal remainder goes
     * into the sub-pixel pen start for unrotated text. */
    int pad = (int)ceil(px * 0.25) + 2;
    double ox = x - au, oy = y - av; /* canvas position of the box corner (unrotated case) */
    double frac = 0;
    int cx0, cy0;
    if (!rotate90) {
        cx0 = (int)floor(ox);
        frac = ox - cx0;
        cy0 = (int)lround(oy);
    } else {
        /* Rotated 90° counter-clockwise: text space u runs up the canvas, v runs right. */
        cx0 = (int)lround(x - av);
        cy0 = (int)lround(y + au);
    }
    int bw = (int)ceil(tw + frac) + 2 * pad, bh = (int)ceil(asc + desc) + 2 * pad;
    int bl = pad + (int)lround(asc);
    uint8_t *buf = tg__aligned_bytes((size_t)bw * (size_t)bh);
    if (!buf) return -1;
    memset(buf, 0, (size_t)bw * (size_t)bh);
    int rc = f->ttf ? tt_raster(f, s, px, pad + frac, buf, bw, bh, bl)
                    : easy_raster(s, px, pad + frac, buf, bw, bh, bl);
    if (rc == 0) {
        for (int v = 0; v < bh; v++)
            for (int u = 0; u < bw; u++) {
                uint8_t cov = buf[v * bw + u];
                if (!cov) continue;
                int X, Y;
                if (!rotate90) {
                    X = cx0 + u - pad;
                    Y = cy0 + v - pad;
                } else {
                    X = cx0 + v - pad;
                    Y = cy0 - (u - pad) - 1;
                }
                tg__blend(c, X, Y, rgb, cov / 255.0);
            }
    }
    tg__free(buf);
    return rc;
}
