/* PNG charts: written files are read back with stb_image and checked pixel by pixel. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image.h>

#include <tapegrad.h>
#include "tg/plot.h"

#define W 800
#define H 500

/* The first three palette colours (matplotlib tab10). */
static const uint32_t C0 = 0x1f77b4, C1 = 0xff7f0e, C2 = 0x2ca02c;

typedef struct {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/tg_test_plot_XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->path, sizeof f->path, "%s/chart.png", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    remove(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

typedef struct {
    unsigned char *px;
    int w, h;
} image;

static image load(const char *path)
{
    image im = {0};
    int n = 0;
    im.px = stbi_load(path, &im.w, &im.h, &n, 3);
    assert_non_null(im.px);
    return im;
}

static uint32_t pixel(const image *im, int x, int y)
{
    const unsigned char *p = im->px + ((size_t)y * (size_t)im->w + (size_t)x) * 3;
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* Near-exact colour match: line interiors are drawn at full opacity. */
static int is_color(uint32_t a, uint32_t b)
{
    for (int k = 0; k < 24; k += 8) {
        int d = (int)((a >> k) & 0xff) - (int)((b >> k) & 0xff);
        if (d < -6 || d > 6) return 0;
    }
    return 1;
}

typedef struct {
    long count;
    int min_x, max_x;
    int median_y;
} color_stats;

static color_stats stats(const image *im, uint32_t color)
{
    color_stats s = {0, im->w, -1, -1};
    long *rows = calloc((size_t)im->h, sizeof *rows);
    assert_non_null(rows);
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++)
            if (is_color(pixel(im, x, y), color)) {
                s.count++;
                rows[y]++;
                if (x < s.min_x) s.min_x = x;
                if (x > s.max_x) s.max_x = x;
            }
    long acc = 0;
    for (int y = 0; y < im->h && s.count; y++) {
        acc += rows[y];
        if (acc * 2 >= s.count) {
            s.median_y = y;
            break;
        }
    }
    free(rows);
    return s;
}

/* Longest run of columns, between the first and last column holding the colour within rows
 * [y0, y1], that hold none of it. */
static int widest_gap(const image *im, uint32_t color, int y0, int y1)
{
    int last = -1, gap = 0;
    for (int x = 0; x < im->w; x++) {
        int hit = 0;
        for (int y = y0 < 0 ? 0 : y0; y <= y1 && y < im->h && !hit; y++)
            hit = is_color(pixel(im, x, y), color);
        if (!hit) continue;
        if (last >= 0 && x - last - 1 > gap) gap = x - last - 1;
        last = x;
    }
    return gap;
}

static double flat_a[10], flat_b[10], flat_c[10];

static tg_chart three_flat_lines(void)
{
    for (int i = 0; i < 10; i++) {
        flat_a[i] = 0.2;
        flat_b[i] = 0.5;
        flat_c[i] = 0.8;
    }
    tg_chart c = {.title = "Validation accuracy", .xlabel = "epoch", .ylabel = "accuracy",
                  .y_min = 0, .y_max = 1};
    c.series[0] = (tg_series){.name = "low", .y = flat_a, .n = 10};
    c.series[1] = (tg_series){.name = "middle", .y = flat_b, .n = 10, .markers = true};
    c.series[2] = (tg_series){.name = "high", .y = flat_c, .n = 10, .dashed = true};
    c.n_series = 3;
    return c;
}

static void test_series_drawn_in_their_colours(void **state)
{
    fixture *f = *state;
    tg_chart c = three_flat_lines();
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
    image im = load(f->path);
    assert_int_equal(im.w, W);
    assert_int_equal(im.h, H);

    color_stats a = stats(&im, C0), b = stats(&im, C1), d = stats(&im, C2);
    /* 2-px lines across most of the plot: hundreds of full-colour pixels each (dashed: fewer) */
    assert_true(a.count > 400);
    assert_true(b.count > 400);
    assert_true(d.count > 200);
    assert_true(a.max_x - a.min_x > W / 2);
    assert_true(d.max_x - d.min_x > W / 2);
    /* y = 0.2 lies below 0.5 which lies below 0.8 (image rows grow downwards), evenly spaced */
    assert_true(a.median_y > b.median_y + 50);
    assert_true(b.median_y > d.median_y + 50);
    int gap1 = a.median_y - b.median_y, gap2 = b.median_y - d.median_y;
    assert_true(abs(gap1 - gap2) <= 3);
    /* a solid line has no holes; a dashed one has small ones */
    assert_true(widest_gap(&im, C0, a.median_y - 2, a.median_y + 2) <= 1);
    int dash_gap = widest_gap(&im, C2, d.median_y - 2, d.median_y + 2);
    assert_true(dash_gap >= 1 && dash_gap < 12);

    /* Background dominates: overall, and on the row halfway between two lines no series colour
     * appears and white is the rule (only grid lines, frame and text cross it). */
    long white = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) white += pixel(&im, x, y) == 0xffffff;
    assert_true(white > (long)W * H * 6 / 10);
    int mid = (a.median_y + b.median_y) / 2;
    long row_white = 0;
    for (int x = 0; x < W; x++) {
        uint32_t p = pixel(&im, x, mid);
        assert_false(is_color(p, C0) || is_color(p, C1) || is_color(p, C2));
        row_white += p == 0xffffff;
    }
    assert_true(row_white > W * 8 / 10);
    stbi_image_free(im.px);
}

static void test_text_is_rendered(void **state)
{
    fixture *f = *state;
    tg_chart c = three_flat_lines();
    const char *fonts[2] = {NULL, "/nonexistent/font.ttf"}; /* DejaVu, then the bitmap fallback */
    for (int k = 0; k < 2; k++) {
        if (fonts[k]) setenv("TG_PLOT_FONT", fonts[k], 1);
        else unsetenv("TG_PLOT_FONT");
        assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
        image im = load(f->path);
        /* the title sits in the top band (above the plot), centred: dark pixels there, none at
         * the far edges */
        long dark = 0, edge = 0;
        for (int y = 0; y < 30; y++)
            for (int x = 0; x < W; x++) {
                uint32_t p = pixel(&im, x, y);
                int g = (int)((p >> 16 & 0xff) + (p >> 8 & 0xff) + (p & 0xff)) / 3;
                if (g < 128) {
                    dark++;
                    if (x < W / 4 || x > 3 * W / 4) edge++;
                }
            }
        assert_true(dark > 40);
        assert_int_equal(edge, 0);
        stbi_image_free(im.px);
    }
    unsetenv("TG_PLOT_FONT");
}

/* A title wider than the canvas at its size (a run's whole configuration) is drawn smaller, not
 * cut: the title band has dark pixels over most of its width, none in the outermost columns. */
static void test_long_title_fits(void **state)
{
    fixture *f = *state;
    tg_chart c = three_flat_lines();
    c.title = "2.2-default: mlp 100x1 relu, dropout 0.3 \xc2\xb7 rmsprop lr 0.001 momentum 0.9 alpha 0.5 "
              "eps 1e-06 centered \xc2\xb7 l2 0.0001 \xc2\xb7 batch 16: accuracy";
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
    image im = load(f->path);
    int left = W, right = -1;
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < W; x++) {
            uint32_t p = pixel(&im, x, y);
            int g = (int)((p >> 16 & 0xff) + (p >> 8 & 0xff) + (p & 0xff)) / 3;
            if (g < 128) left = x < left ? x : left, right = x > right ? x : right;
        }
    stbi_image_free(im.px);
    assert_true(left < W / 8 && right > W - W / 8);   /* it spans the canvas */
    assert_true(left >= 3 && right <= W - 4);          /* and is not cut at either edge */
}

/* A legend name far wider than the plot is cut to fit (with "…"): the legend box stays inside
 * the plot, so nothing is drawn left of it (the sanitizer suite also checks no pixel outside the
 * canvas is touched). */
static void test_long_legend_names_fit(void **state)
{
    fixture *f = *state;
    tg_chart c = three_flat_lines();
    c.ylabel = NULL; /* nothing of its own left of the plot but the tick labels */
    for (size_t len = 3500; len <= 40000; len *= 11) {
        char *name = malloc(len + 1);
        assert_non_null(name);
        memset(name, 'W', len);
        name[len] = 0;
        c.series[0].name = name;
        assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
        image im = load(f->path);
        color_stats s0 = stats(&im, C0);
        assert_true(s0.count > 0);
        assert_true(s0.min_x >= 30); /* the legend handle is inside the plot, not off its left */
        stbi_image_free(im.px);
        free(name);
    }
}

/* The legend never covers data: with twelve flat lines filling the plot from bottom to top, no
 * corner is free, so the legend goes beside the plot; every line stays unbroken, and every
 * series has its own colour and legend handle (right of its line's end). With three lines low in
 * the plot, the legend sits in the free top corner and still breaks no line. */
static void test_legend_never_covers_data(void **state)
{
    fixture *f = *state;
    enum { N = 12, P = 20 };
    static double ys[N][P];
    static char names[N][32];
    tg_chart c = {.title = "twelve series", .xlabel = "epoch", .ylabel = "value",
                  .n_series = N};
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < P; j++) ys[i][j] = i;
        snprintf(names[i], sizeof names[i], "configuration %d", i + 1);
        c.series[i] = (tg_series){.name = names[i], .y = ys[i], .n = P,
                                  .color = tg_chart_palette(i)};
    }
    for (int low = 0; low < 2; low++) {
        if (low) c.n_series = 3, c.y_min = -0.5, c.y_max = 10;
        assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
        image im = load(f->path);
        for (int i = 0; i < c.n_series; i++) {
            uint32_t col = tg_chart_palette(i) & 0xffffff;
            color_stats st = stats(&im, col);
            assert_true(st.count > 300);
            int line_y = -1;   /* the row with most of the colour: the line's */
            long best = 0;
            for (int y = 0; y < im.h; y++) {
                long n = 0;
                for (int x = 0; x < im.w; x++) n += is_color(pixel(&im, x, y), col);
                if (n > best) best = n, line_y = y;
            }
            assert_true(best > 300);
            int gap = widest_gap(&im, col, line_y, line_y);
            if (gap > 0) fail_msg("series %d (%s): its line has a gap of %d px", i,
                                  low ? "3 low lines" : "12 lines", gap);
            /* its legend handle: the colour away from the line's row */
            long handle = 0;
            for (int y = 0; y < im.h; y++)
                for (int x = 0; x < im.w && abs(y - line_y) > 3; x++)
                    handle += is_color(pixel(&im, x, y), col);
            if (handle < 10) fail_msg("series %d has no legend handle", i);
        }
        stbi_image_free(im.px);
    }
    assert_int_equal(tg_chart_palette(0), TG_RGB(C0));
    assert_int_not_equal(tg_chart_palette(8) & 0xffffff, tg_chart_palette(0) & 0xffffff);
}

static void test_nan_points_leave_gaps(void **state)
{
    fixture *f = *state;
    double y[21], z[21];
    for (int i = 0; i < 21; i++) y[i] = z[i] = 0.5;
    y[10] = NAN;
    z[5] = INFINITY;
    z[15] = -INFINITY;
    tg_chart c = {.title = "gaps", .y_min = 0, .y_max = 1};
    c.series[0] = (tg_series){.y = y, .n = 21};
    c.n_series = 1;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
    image im = load(f->path);
    color_stats s = stats(&im, C0);
    assert_true(s.count > 500);
    /* the two segments next to the NaN are missing: about 2/20 of the plot width */
    int gap = widest_gap(&im, C0, s.median_y - 2, s.median_y + 2);
    assert_true(gap > W / 20);
    assert_true(gap < W / 5);
    stbi_image_free(im.px);

    /* without the NaN the same line is unbroken */
    y[10] = 0.5;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
    im = load(f->path);
    s = stats(&im, C0);
    assert_true(widest_gap(&im, C0, s.median_y - 2, s.median_y + 2) <= 1);
    stbi_image_free(im.px);

    /* infinities are gaps too; all-NaN and empty series, and no series at all, are fine */
    double nan3[3] = {NAN, NAN, NAN};
    c.series[0].y = z;
    c.series[1] = (tg_series){.name = "all NaN", .y = nan3, .n = 3};
    c.series[2] = (tg_series){.name = "empty", .y = NULL, .n = 0};
    c.n_series = 3;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
    c.n_series = 0;
    c.y_min = c.y_max = 0;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
    im = load(f->path);
    assert_int_equal(im.w, W);
    stbi_image_free(im.px);
}

static void test_log_axis_and_extreme_values(void **state)
{
    fixture *f = *state;
    double loss[30];
    for (int i = 0; i < 30; i++) loss[i] = 2.3 * exp(-i / 4.0) + 1e-3;
    loss[3] = 0;   /* not drawable on a log axis: a gap */
    loss[4] = -1;
    tg_chart c = {.title = "loss", .log_y = true};
    c.series[0] = (tg_series){.name = "train", .y = loss, .n = 30};
    c.n_series = 1;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
    image im = load(f->path);
    assert_true(stats(&im, C0).count > 300);
    stbi_image_free(im.px);

    /* values far outside a fixed range are clipped, quickly and without overflow */
    double wild[4] = {1e300, -1e300, 0.5, 1e-300};
    c = (tg_chart){.y_min = 0, .y_max = 1, .x_min = 0, .x_max = 5};
    c.series[0] = (tg_series){.y = wild, .n = 4, .dashed = true, .markers = true};
    c.n_series = 1;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
    /* (this chart once stalled the dash loop on a rounding boundary) */
    double wild2[6] = {0.2, 1e300, -1e300, 0.5, NAN, 0.7};
    c.x_min = c.x_max = 0;
    c.series[0] = (tg_series){.name = "w", .y = wild2, .n = 6, .dashed = true, .markers = true};
    assert_int_equal(tg_chart_write_png(&c, f->path, 400, 300), TG_OK);

    /* a constant series and a single point still get a sensible range */
    double one = 3.0;
    c = (tg_chart){0};
    c.series[0] = (tg_series){.y = &one, .n = 1, .color = TG_RGB(0x000000)};
    c.n_series = 1;
    assert_int_equal(tg_chart_write_png(&c, f->path, 400, 300), TG_OK);
    im = load(f->path);
    assert_int_equal(im.w, 400);
    assert_int_equal(im.h, 300);
    stbi_image_free(im.px);
}

static void test_plot_curves(void **state)
{
    fixture *f = *state;
    double a[20], b[20];
    for (int i = 0; i < 20; i++) {
        a[i] = 0.9 - 0.3 * exp(-i / 3.0);
        b[i] = 0.8 - 0.3 * exp(-i / 5.0);
    }
    const char *names[] = {"mlp", "linear"};
    const double *ys[] = {a, b};
    assert_int_equal(tg_plot_curves(f->path, "accuracy", "epoch", "acc", 2, names, ys, 20), TG_OK);
    image im = load(f->path);
    assert_int_equal(im.w, 800);
    assert_int_equal(im.h, 500);
    color_stats s0 = stats(&im, C0), s1 = stats(&im, C1);
    assert_true(s0.count > 500 && s1.count > 500);
    assert_true(s0.median_y < s1.median_y); /* higher accuracy, higher on the image */
    stbi_image_free(im.px);
    assert_int_equal(tg_plot_curves(f->path, NULL, NULL, NULL, 2, NULL, ys, 20), TG_OK);
}

static void test_unwritable_path(void **state)
{
    fixture *f = *state;
    tg_chart c = three_flat_lines();
    const char *bad = "/nonexistent-tg-dir/sub/chart.png";
    assert_int_equal(tg_chart_write_png(&c, bad, W, H), TG_ERR_IO);
    assert_non_null(strstr(tg_status_message(), bad));
    /* a directory is not a file either */
    assert_int_equal(tg_chart_write_png(&c, f->dir, W, H), TG_ERR_IO);
    assert_non_null(strstr(tg_status_message(), f->dir));
    /* a device that refuses the bytes: the error shows up while writing, not at open */
    if (access("/dev/full", W_OK) == 0) {
        assert_int_equal(tg_chart_write_png(&c, "/dev/full", W, H), TG_ERR_IO);
        assert_non_null(strstr(tg_status_message(), "/dev/full"));
        assert_int_equal(access("/dev/full", F_OK), 0);
    }
}

static void test_bad_input(void **state)
{
    fixture *f = *state;
    tg_chart c = three_flat_lines();
    assert_int_equal(tg_chart_write_png(NULL, f->path, W, H), TG_ERR_VALUE);
    assert_int_equal(tg_chart_write_png(&c, NULL, W, H), TG_ERR_VALUE);
    assert_int_equal(tg_chart_write_png(&c, f->path, 10, H), TG_ERR_VALUE);
    assert_int_equal(tg_chart_write_png(&c, f->path, W, 100000), TG_ERR_VALUE);
    c.n_series = TG_CHART_MAX_SERIES + 1;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_ERR_VALUE);
    c.n_series = -1;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_ERR_VALUE);
    c = three_flat_lines();
    c.series[1].n = -3;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_ERR_VALUE);
    c = three_flat_lines();
    c.series[2].y = NULL;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_ERR_VALUE);
    assert_non_null(strstr(tg_status_message(), "series 2"));
    c = three_flat_lines();
    c.y_min = 1;
    c.y_max = 0;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_ERR_VALUE);
    c.y_min = 0;
    c.y_max = 1;
    c.log_y = true;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_ERR_VALUE);
    c.log_y = false;
    c.x_min = -INFINITY;
    c.x_max = 3;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_ERR_VALUE);
    assert_int_equal(access(f->path, F_OK), -1); /* rejected charts write nothing */

    /* one fixed end, the other automatic (NaN), is valid */
    c = three_flat_lines();
    c.y_min = 0;
    c.y_max = NAN;
    assert_int_equal(tg_chart_write_png(&c, f->path, W, H), TG_OK);
    assert_int_equal(tg_plot_curves(f->path, "t", "x", "y", 9, NULL, NULL, 5), TG_ERR_VALUE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_series_drawn_in_their_colours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_is_rendered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_title_fits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_legend_names_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_legend_never_covers_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nan_points_leave_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_axis_and_extreme_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plot_curves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
