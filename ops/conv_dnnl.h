/* The sizes of one convolution, and the float32 path through oneDNN (ops/conv_dnnl.c) that
 * ops/conv.c takes for large layers when tapegrad is built with it (make DNNL=1, the default when
 * libdnnl-dev is installed). Each call returns whether it ran; when it did not (built without
 * oneDNN, switched off, a layer below the threshold, a geometry oneDNN does not take), the caller
 * runs im2col. */
#ifndef TG_OPS_CONV_DNNL_H
#define TG_OPS_CONV_DNNL_H

#include <stdbool.h>
#include <stdint.h>

/* input [N, C, H, W], weight [O, C/groups, kh, kw], output [N, O, OH, OW] */
typedef struct {
    int64_t N, C, H, W, O, kh, kw, OH, OW;
    int64_t sh, sw, ph, pw, dh, dw, groups;
} conv_geom;

/* The rows of one group's im2col matrix (C/groups·kh·kw), and the output pixels of one sample:
 * one group's multiply-adds per sample and output channel are their product. */
static inline int64_t conv_group_rows(const conv_geom *g)
{
    return g->C / g->groups * g->kh * g->kw;
}
static inline int64_t conv_out_pixels(const conv_geom *g) { return g->OH * g->OW; }

/* y = conv(x, w) (+ b when not NULL) when fresh, else y += conv(x, w) (b must be NULL) */
bool tg__conv_dnnl_fwd(const conv_geom *g, const float *x, const float *w, const float *b,
                       bool fresh, float *y);
/* dx += the input gradient of conv for output gradient gy */
bool tg__conv_dnnl_dx(const conv_geom *g, const float *w, const float *gy, float *dx);
/* dw += the weight gradient of conv for input x and output gradient gy */
bool tg__conv_dnnl_dw(const conv_geom *g, const float *x, const float *gy, float *dw);

/* Which layers go to oneDNN: none, those above the threshold (the default; TG_CONV_DNNL=0, off,
 * false or no in the environment means none), or every one it takes (for the tests on small
 * geometries). */
typedef enum { TG_DNNL_OFF, TG_DNNL_AUTO, TG_DNNL_ALL } tg__dnnl_mode;
void tg__conv_dnnl_set_mode(tg__dnnl_mode mode);
tg__dnnl_mode tg__conv_dnnl_mode(void);
/* How many calls oneDNN ran since the start (tests check that the path was taken). */
int64_t tg__conv_dnnl_calls(void);
/* The threads oneDNN runs on: tapegrad's thread count when OpenMP's threads sleep when idle
 * (OMP_WAIT_POLICY=passive), else 1; 0 when built without oneDNN. */
int tg__conv_dnnl_threads(void);
/* The next call's convolution fails as if oneDNN had (the tests check the error path). */
void tg__conv_dnnl_fail_next_call(void);

#endif
