/* Mini-batch loader: an index permutation reshuffled per epoch, rows gathered into batch buffers
 * allocated once. Two tensor headers per side share each buffer: one with batch_size rows and one
 * with the remainder, so a short last batch has the right shape[0] without touching a header the
 * caller may still hold. Without shuffling a batch is not copied: its header points at the rows
 * themselves. */
#include <string.h>
#include "autograd/internal.h"
#include "tg/data.h"

struct tg_loader {
    const tg_tensor *x, *y;
    int64_t n, batch_size, pos;
    bool shuffle, drop_last, started, done;
    tg_rng rng;
    tg_rng order_rng;          /* the state of rng the current epoch's order was drawn from */
    int64_t *perm;
    int64_t last_n;            /* rows in the batch last returned */
    size_t x_row, y_row;       /* bytes per row */
    tg_tensor *xb_full, *xb_tail, *yb_full, *yb_tail;
    void *xbuf, *ybuf;         /* the gather buffers (the headers may point into x, y instead) */
};

static tg_tensor *batch_tensor(const tg_tensor *src, int64_t rows, void *buf)
{
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, src->shape, sizeof shape);
    shape[0] = rows;
    return tg_wrap(src->dtype, src->ndim, shape, buf);
}

tg_loader *tg_loader_new(const tg_tensor *x, const tg_tensor *y, int64_t batch_size, bool shuffle,
                         bool drop_last, tg_rng *rng)
{
    if (!x) tg_fail("tg_loader_new: x is NULL");
    tg_check_live(x, "tg_loader_new");
    if (x->ndim < 1) tg_fail("tg_loader_new: x must have at least one axis (rows)");
    if (y) {
        tg_check_live(y, "tg_loader_new");
        if (y->ndim < 1 || y->shape[0] != x->shape[0])
            tg_fail("tg_loader_new: x has %lld rows but y has %lld; pass matching tensors",
                     (long long)x->shape[0], (long long)(y->ndim ? y->shape[0] : 0));
    }
    if (batch_size < 1)
        tg_fail("tg_loader_new: batch_size must be at least 1 (got %lld)", (long long)batch_size);

    tg_loader *L = tg__calloc(sizeof *L);
    L->x = x;
    L->y = y;
    L->n = x->shape[0];
    L->batch_size = batch_size;
    L->shuffle = shuffle;
    L->drop_last = drop_last;
    tg_rng_seed(&L->rng, tg_rng_next(rng ? rng : tg_global_rng()));
    L->perm = tg__malloc((size_t)(L->n ? L->n : 1) * sizeof *L->perm);
    for (int64_t i = 0; i < L->n; i++) L->perm[i] = i;

    int64_t full = L->batch_size <= L->n ? L->batch_size : 0;
    int64_t tail = drop_last ? 0 : L->n % L->batch_size;
    int64_t rows = full ? full : tail;
    L->x_row = L->n ? tg_nbytes(x) / (size_t)L->n : 0;
    L->xbuf = tg__malloc(L->x_row * (size_t)(rows ? rows : 1));
    L->xb_full = batch_tensor(x, full, L->xbuf);
    L->xb_tail = batch_tensor(x, tail, L->xbuf);
    if (y) {
        L->y_row = L->n ? tg_nbytes(y) / (size_t)L->n : 0;
        L->ybuf = tg__malloc(L->y_row * (size_t)(rows ? rows : 1));
        L->yb_full = batch_tensor(y, full, L->ybuf);
        L->yb_tail = batch_tensor(y, tail, L->ybuf);
    }
    return L;
}

void tg_loader_reset(tg_loader *L)
{
    /* Every order is drawn from 0..n-1, not from the previous order: it then depends on the
     * generator state alone, which a checkpoint can save (tg_loader_get_state). */
    L->order_rng = L->rng;
    for (int64_t i = 0; i < L->n; i++) L->perm[i] = i;
    if (L->shuffle) tg_rng_shuffle(&L->rng, L->perm, L->n);
    L->pos = 0;
    L->last_n = 0;
    L->started = true;
}

int64_t tg_loader_num_batches(const tg_loader *L)
{
    if (L->drop_last) return L->n / L->batch_size;
    return (L->n + L->batch_size - 1) / L->batch_size;
}

static bool consecutive(const int64_t *idx, int64_t n)
{
    for (int64_t i = 1; i < n; i++)
        if (idx[i] != idx[0] + i) return false;
    return true;
}

/* Points the batch header b at rows idx of src: the rows themselves when the loader does not
 * shuffle (they are then consecutive), else copies of them in buf. A shuffled batch is always a
 * copy, even when its rows happen to be consecutive (one row, a one-row tail): training loops
 * augment shuffled batches in place (tg_random_crop_flip_), which must not reach the data set. */
static void fill_batch(tg_tensor *b, void *buf, const tg_tensor *src, size_t row,
                       const int64_t *idx, int64_t n, bool in_place)
{
    const char *s = src->data;
    if (in_place && consecutive(idx, n)) {
        b->data = (void *)(s + (size_t)idx[0] * row);
        return;
    }
    char *d = buf;
    for (int64_t i = 0; i < n; i++) memcpy(d + (size_t)i * row, s + (size_t)idx[i] * row, row);
    b->data = buf;
}

/* Asks for the next batch's rows while this batch is being used: shuffled rows are scattered
 * over the whole data set, so gathering them waits on memory unless the loads start a step
 * earlier. Only the first lines of each row: the CPU's stream prefetcher follows a row once its
 * start is fetched, while asking for every line fills the miss buffers and the loop stalls until
 * they drain (docs/speed.md, lever 4b). Into L2/L3 only (locality 1): the step's own working set
 * keeps L1. */
enum { PREFETCH_ROW_BYTES = 256 };

static void prefetch_rows(const void *src, size_t row, const int64_t *idx, int64_t n)
{
    const char *s = src;
    size_t head = row < PREFETCH_ROW_BYTES ? row : PREFETCH_ROW_BYTES;
    for (int64_t i = 0; i < n; i++)
        for (size_t b = 0; b < head; b += 64) __builtin_prefetch(s + (size_t)idx[i] * row + b, 0, 1);
}

bool tg_loader_next(tg_loader *L, tg_tensor **xb, tg_tensor **yb)
{
    if (!L->started) tg_loader_reset(L);
    int64_t left = L->n - L->pos;
    int64_t k = left < L->batch_size ? left : L->batch_size;
    if (k == 0 || (k < L->batch_size && L->drop_last)) {
        /* The end of an epoch, said once: the next call starts the next epoch by itself, so a
         * loop that never calls tg_loader_reset still sees every epoch, each in a new order. */
        L->last_n = 0;
        L->started = false;
        if (xb) *xb = NULL;
        if (yb) *yb = NULL;
        return false;
    }
    if (L->x->shape[0] != L->n)
        tg_fail("tg_loader_next: x changed from %lld to %lld rows after tg_loader_new",
                 (long long)L->n, (long long)L->x->shape[0]);
    const int64_t *idx = L->perm + L->pos;
    tg_tensor *bx = k == L->batch_size ? L->xb_full : L->xb_tail;
    fill_batch(bx, L->xbuf, L->x, L->x_row, idx, k, !L->shuffle);
    if (xb) *xb = bx;
    if (L->y) {
        tg_tensor *by = k == L->batch_size ? L->yb_full : L->yb_tail;
        fill_batch(by, L->ybuf, L->y, L->y_row, idx, k, !L->shuffle);
        if (yb) *yb = by;
    } else if (yb) {
        *yb = NULL;
    }
    L->pos += k;
    L->last_n = k;
    int64_t next = L->n - L->pos < L->batch_size ? L->n - L->pos : L->batch_size;
    prefetch_rows(L->x->data, L->x_row, L->perm + L->pos, next);
    return true;
}

const int64_t *tg_loader_batch_indices(const tg_loader *L, int64_t *n)
{
    if (n) *n = L->last_n;
    return L->perm + L->pos - L->last_n;
}

void tg_loader_free(tg_loader *L)
{
    if (!L) return;
    tg_free(L->xb_tail);
    tg_free(L->xb_full);
    tg_free(L->yb_tail);
    tg_free(L->yb_full);
    tg__free(L->xbuf);
    tg__free(L->ybuf);
    tg__free(L->perm);
    tg__free(L);
}

tg_loader_state tg_loader_get_state(const tg_loader *L)
{
    if (!L) tg_fail("tg_loader_get_state: NULL loader");
    return (tg_loader_state){
        .rows = L->n,
        .batch_size = L->batch_size,
        .shuffle = L->shuffle,
        .drop_last = L->drop_last,
        .started = L->started,
        .pos = L->started ? L->pos : 0,
        .rng = L->rng,
        .order_rng = L->started ? L->order_rng : L->rng,
    };
}

void tg_loader_set_state(tg_loader *L, const tg_loader_state *s)
{
    if (!L || !s) tg_fail("tg_loader_set_state: NULL loader or state");
    if (s->rows != L->n || s->batch_size != L->batch_size || s->shuffle != L->shuffle ||
        s->drop_last != L->drop_last)
        tg_fail("tg_loader_set_state: the state is of a loader over %lld rows in batches of "
                 "%lld (shuffle %d, drop_last %d), this one has %lld, %lld (%d, %d)",
                 (long long)s->rows, (long long)s->batch_size, (int)s->shuffle,
                 (int)s->drop_last, (long long)L->n, (long long)L->batch_size, (int)L->shuffle,
                 (int)L->drop_last);
    if (s->pos < 0 || s->pos > L->n)
        tg_fail("tg_loader_set_state: position %lld is outside the epoch's 0..%lld rows",
                 (long long)s->pos, (long long)L->n);
    if (s->started) {
        L->rng = s->order_rng;
        tg_loader_reset(L); /* draws the epoch's order again */
        L->pos = s->pos;
    } else {
        L->started = false;
        L->pos = 0;
        L->last_n = 0;
    }
    L->rng = s->rng;
}
