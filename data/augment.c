/* Training-time augmentation of an image batch in place: random crop with zero padding (pad p,
 * crop back to the input's size: the image shifts by dy, dx in [-p, p]) and horizontal flip, as
 * torchvision's RandomCrop(size, padding=p) followed by RandomHorizontalFlip(). In place and with
 * memmove, so a training loop allocates nothing per batch. */
#include <string.h>
#include "autograd/internal.h"
#include "tg/data.h"

/* out[y] = in[y + s] (zero outside): whole rows of one plane move at once. */
static void shift_rows(char *plane, int64_t h, size_t row_bytes, int64_t s)
{
    int64_t keep = h - (s < 0 ? -s : s);
    if (keep <= 0) {
        memset(plane, 0, (size_t)h * row_bytes);
        return;
    }
    if (s > 0) {
        memmove(plane, plane + (size_t)s * row_bytes, (size_t)keep * row_bytes);
        memset(plane + (size_t)keep * row_bytes, 0, (size_t)s * row_bytes);
    } else if (s < 0) {
        memmove(plane + (size_t)(-s) * row_bytes, plane, (size_t)keep * row_bytes);
        memset(plane, 0, (size_t)(-s) * row_bytes);
    }
}

/* The same along a row: out[x] = in[x + s]. */
static void shift_row(char *row, int64_t w, size_t elem, int64_t s)
{
    shift_rows(row, w, elem, s);
}

static void reverse_row(char *row, int64_t w, size_t elem)
{
    char tmp[8];
    for (int64_t a = 0, b = w - 1; a < b; a++, b--) {
        memcpy(tmp, row + a * (int64_t)elem, elem);
        memcpy(row + a * (int64_t)elem, row + b * (int64_t)elem, elem);
        memcpy(row + b * (int64_t)elem, tmp, elem);
    }
}

void tg_random_crop_flip_(tg_tensor *x, int pad, bool flip, tg_rng *rng)
{
    char s[96];
    tg_check_float(x, "tg_random_crop_flip_");
    if (x->ndim != 4)
        tg_fail("tg_random_crop_flip_: images must be [N, C, H, W], got %s",
                 tg_shape_str(x, s, sizeof s));
    if (pad < 0)
        tg_fail("tg_random_crop_flip_: padding must be >= 0 (got %d)", pad);
    if (!rng) rng = tg_global_rng();
    int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3];
    size_t elem = tg_dtype_size(x->dtype), row_bytes = (size_t)w * elem;
    for (int64_t i = 0; i < n; i++) {
        /* Three draws per image, always in this order: the stream does not depend on the data. */
        int64_t dy = (int64_t)tg_rng_below(rng, (uint64_t)(2 * pad + 1)) - pad;
        int64_t dx = (int64_t)tg_rng_below(rng, (uint64_t)(2 * pad + 1)) - pad;
        bool mirror = tg_rng_below(rng, 2) && flip;
        if (dy == 0 && dx == 0 && !mirror) continue;
        for (int64_t k = 0; k < c; k++) {
            char *plane = (char *)x->data + (size_t)((i * c + k) * h) * row_bytes;
            shift_rows(plane, h, row_bytes, dy);
            for (int64_t y = 0; y < h; y++) {
                char *row = plane + (size_t)y * row_bytes;
                if (dx) shift_row(row, w, elem, dx);
                if (mirror) reverse_row(row, w, elem);
            }
        }
    }
}
