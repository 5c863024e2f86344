/* The sharded loader: one tg_loader over row numbers draws the global order and the global
 * batches (the same on every rank, from the same seed); each rank copies the rows of its slice.
 * Drawing row numbers instead of rows keeps the other ranks' rows from being copied at all. */
#include <string.h>
#include "dist/internal.h"
#include "tg/data.h"

struct tg_shard_loader {
    const tg_tensor *x, *y;
    tg_tensor *row_ids;          /* [N, 1] int32: what the inner loader shuffles */
    tg_loader *order;
    tg_rng rng0;                 /* the caller's generator before the loader forked it: seek */
    int64_t global_batch;
    bool shuffle, drop_last;
    bool reset_pending;          /* a reset now starts an epoch (false right after new or seek) */
    int64_t global_rows, local_rows;
    size_t x_row, y_row;
    unsigned char *xbuf, *ybuf;
    /* Headers over xbuf / ybuf: [0] of the first shape seen, [1] of any other (the short last
     * batch), so that steps allocate nothing, epoch after epoch. */
    tg_tensor *xb[2], *yb[2];
};

static size_t row_bytes(const tg_tensor *t)
{
    return t ? tg_nbytes(t) / (size_t)(t->shape[0] ? t->shape[0] : 1) : 0;
}

static void open_order(tg_shard_loader *L)
{
    tg_rng rng = L->rng0;
    tg_loader_free(L->order);
    L->order = tg_loader_new(L->row_ids, NULL, L->global_batch, L->shuffle, L->drop_last, &rng);
}

tg_shard_loader *tg_shard_loader_new(const tg_tensor *x, const tg_tensor *y, int64_t global_batch,
                                     bool shuffle, bool drop_last, tg_rng *rng)
{
    tg_check_live(x, "tg_shard_loader_new");
    if (global_batch < 1)
        tg_fail("tg_shard_loader_new: global_batch must be at least 1 (got %lld)",
                 (long long)global_batch);
    if (y && y->shape[0] != x->shape[0])
        tg_fail("tg_shard_loader_new: x has %lld rows but y has %lld", (long long)x->shape[0],
                 (long long)y->shape[0]);
    tg_shard_loader *L = tg__calloc(sizeof *L);
    *L = (tg_shard_loader){.x = x, .y = y, .global_batch = global_batch, .shuffle = shuffle,
                           .drop_last = drop_last, .x_row = row_bytes(x), .y_row = row_bytes(y)};
    L->rng0 = *(rng ? rng : tg_global_rng());
    tg_rng_next(rng ? rng : tg_global_rng()); /* the caller's generator moves on, as tg_loader's */
    int64_t n = x->shape[0];
    L->row_ids = tg_zeros(TG_I32, TG_SHAPE(n, 1));
    int32_t *ids = L->row_ids->data;
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)i;
    open_order(L);
    int world = tg_dist_world_size();
    int64_t most = (global_batch + world - 1) / world;
    L->xbuf = tg__malloc(L->x_row * (size_t)most + 1);
    L->ybuf = tg__malloc(L->y_row * (size_t)most + 1);
    return L;
}

void tg_shard_loader_reset(tg_shard_loader *L)
{
    if (L->reset_pending) tg_loader_reset(L->order);
    L->reset_pending = true;
}

static tg_tensor *make_header(const tg_tensor *src, int64_t rows, void *buf)
{
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, src->shape, sizeof shape);
    shape[0] = rows;
    return tg_wrap(src->dtype, src->ndim, shape, buf);
}

static tg_tensor *header(tg_tensor *h[2], const tg_tensor *src, int64_t rows, void *buf)
{
    if (!h[0]) h[0] = make_header(src, rows, buf);
    if (h[0]->shape[0] == rows) return h[0];
    if (h[1] && h[1]->shape[0] == rows) return h[1];
    tg_free(h[1]);
    h[1] = make_header(src, rows, buf);
    return h[1];
}

bool tg_shard_loader_next(tg_shard_loader *L, tg_tensor **xb, tg_tensor **yb)
{
    tg_tensor *ids_batch;
    L->reset_pending = true;
    if (!tg_loader_next(L->order, &ids_batch, NULL)) {
        *xb = NULL;
        if (yb) *yb = NULL;
        L->global_rows = L->local_rows = 0;
        return false;
    }
    int64_t b = ids_batch->shape[0], world = tg_dist_world_size(), r = tg_dist_rank();
    int64_t lo = r * b / world, hi = (r + 1) * b / world;
    const int32_t *ids = ids_batch->data;
    L->global_rows = b;
    L->local_rows = hi - lo;
    if (hi == lo) {
        *xb = NULL;
        if (yb) *yb = NULL;
        return true;
    }
    for (int64_t i = lo; i < hi; i++) {
        memcpy(L->xbuf + (size_t)(i - lo) * L->x_row,
               (const unsigned char *)L->x->data + (size_t)ids[i] * L->x_row, L->x_row);
        if (L->y)
            memcpy(L->ybuf + (size_t)(i - lo) * L->y_row,
                   (const unsigned char *)L->y->data + (size_t)ids[i] * L->y_row, L->y_row);
    }
    *xb = header(L->xb, L->x, hi - lo, L->xbuf);
    if (yb) *yb = L->y ? header(L->yb, L->y, hi - lo, L->ybuf) : NULL;
    return true;
}

int64_t tg_shard_loader_num_batches(const tg_shard_loader *L)
{
    return tg_loader_num_batches(L->order);
}
int64_t tg_shard_loader_global_rows(const tg_shard_loader *L) { return L->global_rows; }
int64_t tg_shard_loader_local_rows(const tg_shard_loader *L) { return L->local_rows; }
double tg_shard_loader_weight(const tg_shard_loader *L)
{
    return L->global_rows ? (double)L->local_rows / (double)L->global_rows : 0;
}

/* Replays the global order from creation: only row numbers are drawn, so this is cheap. */
void tg_shard_loader_seek(tg_shard_loader *L, int64_t step)
{
    if (step < 0) tg_fail("tg_shard_loader_seek: step %lld is negative", (long long)step);
    open_order(L);
    int64_t per_epoch = tg_loader_num_batches(L->order);
    int64_t epoch = per_epoch ? step / per_epoch : 0, pos = per_epoch ? step % per_epoch : 0;
    tg_tensor *ids;
    for (int64_t e = 0; e < epoch; e++) {
        tg_loader_reset(L->order);
        while (tg_loader_next(L->order, &ids, NULL)) {}
    }
    if (epoch > 0 || pos > 0) tg_loader_reset(L->order);
    for (int64_t k = 0; k < pos; k++) tg_loader_next(L->order, &ids, NULL);
    L->reset_pending = false;
}

void tg_shard_loader_free(tg_shard_loader *L)
{
    if (!L) return;
    tg_loader_free(L->order);
    tg_free(L->row_ids);
    for (int k = 0; k < 2; k++) tg_free(L->xb[k]), tg_free(L->yb[k]);
    tg__free(L->xbuf);
    tg__free(L->ybuf);
    tg__free(L);
}
