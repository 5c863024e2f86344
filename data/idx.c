/* IDX files (the MNIST format): a big-endian header, then unsigned bytes.
 *   magic 0x000008NN (0x08 = unsigned byte, NN = number of dimensions), NN big-endian uint32 sizes,
 *   then prod(sizes) bytes and nothing else. */
#include <stdlib.h>
#include "autograd/internal.h"
#include "data/internal.h"

#define IDX_IMAGES 0x00000803u
#define IDX_LABELS 0x00000801u

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Opens the file and reads the header (expecting `magic`); dims gets the sizes, *item the bytes
 * per item (image or label). On success the reader is left open after the header. */
static tg_status idx_open(tg__reader *r, const char *path, uint32_t magic, uint32_t *dims,
                          size_t *item_bytes)
{
    const char *kind = magic == IDX_IMAGES ? "image" : "label";
    int ndim = (int)(magic & 0xff);
    tg_status st = tg__reader_open_file(r, path);
    if (st != TG_OK) return st;

    unsigned char head[4 + 4 * 3];
    size_t head_len = 4 + 4 * (size_t)ndim;
    int64_t k = tg__read_full(r, head, head_len);
    if (k < 0) {
        st = r->err;
        goto fail;
    }
    if (k < 4) {
        st = tg_status_set(TG_ERR_FORMAT, "%s: not an IDX %s file: only %lld bytes", path, kind,
                           (long long)k);
        goto fail;
    }
    uint32_t m = be32(head);
    if (m != magic) {
        const char *hint = m == IDX_IMAGES ? " (this is an IDX image file)"
                           : m == IDX_LABELS ? " (this is an IDX label file)" : "";
        st = tg_status_set(TG_ERR_FORMAT, "%s: not an IDX %s file: magic 0x%08x, expected 0x%08x%s",
                           path, kind, m, magic, hint);
        goto fail;
    }
    if ((size_t)k < head_len) {
        st = tg_status_set(TG_ERR_FORMAT, "%s: truncated header: %lld of %zu bytes", path,
                           (long long)k, head_len);
        goto fail;
    }
    size_t item = 1;
    for (int i = 0; i < ndim; i++) {
        dims[i] = be32(head + 4 + 4 * i);
        /* sizes above INT32_MAX are corrupt headers (and keep rows/cols representable) */
        if (dims[i] > INT32_MAX) {
            st = tg_status_set(TG_ERR_FORMAT, "%s: dimension %d has an impossible size %u", path,
                               i, dims[i]);
            goto fail;
        }
        if (i > 0) item *= dims[i];
    }
    if (item == 0) {
        st = tg_status_set(TG_ERR_FORMAT, "%s: %ss of size %ux%u", path, kind, dims[1], dims[2]);
        goto fail;
    }
    if (dims[0] > (SIZE_MAX / 8) / item) {
        st = tg_status_set(TG_ERR_FORMAT, "%s: header sizes too large", path);
        goto fail;
    }
    *item_bytes = item;
    return TG_OK;
fail:
    tg__reader_close(r);
    return st;
}

/* After `got` payload bytes of the `want` announced: truncation and trailing-data checks. */
static tg_status idx_check_end(tg__reader *r, const char *path, const char *kind, uint32_t n,
                               size_t item, size_t got, size_t want)
{
    if (got < want)
        return tg_status_set(TG_ERR_FORMAT, "%s: truncated: header says %u %ss, file holds %zu%s",
                             path, n, kind, got / item, got % item ? " and part of another" : "");
    uint64_t extra;
    tg_status st = tg__read_rest(r, &extra);
    if (st == TG_OK && extra)
        st = tg_status_set(TG_ERR_FORMAT,
                           "%s: %llu bytes of trailing data after the %u %ss the header announces",
                           path, (unsigned long long)extra, n, kind);
    return st;
}

tg_status tg_idx_load_images(const char *path, tg_tensor **images, int *rows, int *cols)
{
    *images = NULL;
    uint32_t dims[3] = {0};
    size_t item = 0;
    tg__reader r;
    tg_status st = idx_open(&r, path, IDX_IMAGES, dims, &item);
    if (st != TG_OK) return st;

    /* Decompress in chunks and convert straight into the output: no byte copy of the whole file.
     * The output is reserved at the announced size but only touched (and prefaulted) as data
     * arrives. A header announcing more than the file can hold (r.max_size) gets no reservation:
     * the rest is read anyway, to report how much the file really holds. */
    size_t want = (size_t)dims[0] * item, got = 0;
    float *x = want <= r.max_size ? tg__aligned_bytes(want * sizeof(float)) : NULL;
    enum { CHUNK = 1 << 18 };
    unsigned char *chunk = tg__aligned_bytes(CHUNK);
    if (!chunk) {
        tg__free(x);
        tg__reader_close(&r);
        return tg_status_set(TG_ERR_NOMEM, "%s: out of memory", path);
    }
    while (got < want) {
        size_t n = want - got < CHUNK ? want - got : CHUNK;
        int64_t k = tg__read_full(&r, chunk, n);
        if (k < 0) {
            st = r.err;
            break;
        }
        if (x) {
            tg__prefault(x + got, (size_t)k * sizeof(float));
            for (int64_t i = 0; i < k; i++)
                x[got + (size_t)i] = (float)chunk[i] / 255.0f; /* exactly torchvision's ToTensor */
        }
        got += (size_t)k;
        if ((size_t)k < n) break;
    }
    tg__free(chunk);
    if (st == TG_OK) st = idx_check_end(&r, path, "image", dims[0], item, got, want);
    if (st == TG_OK && !x)
        st = tg_status_set(TG_ERR_NOMEM, "%s: out of memory for %u images", path, dims[0]);
    tg__reader_close(&r);
    if (st != TG_OK) {
        tg__free(x);
        return st;
    }
    *images = tg__tensor_adopt(TG_F32, TG_SHAPE((int64_t)dims[0], (int64_t)item), x);
    if (rows) *rows = (int)dims[1];
    if (cols) *cols = (int)dims[2];
    return TG_OK;
}

tg_status tg_idx_load_labels(const char *path, tg_tensor **labels)
{
    *labels = NULL;
    uint32_t dims[3] = {0}; /* idx_open may name dims[1..2] in messages */
    size_t item = 0;
    tg__reader r;
    tg_status st = idx_open(&r, path, IDX_LABELS, dims, &item);
    if (st != TG_OK) return st;
    void *raw;
    size_t got;
    st = tg__read_alloc(&r, dims[0], &raw, &got);
    if (st == TG_OK) {
        st = idx_check_end(&r, path, "label", dims[0], 1, got, dims[0]);
        if (st != TG_OK) tg__free(raw);
    }
    tg__reader_close(&r);
    if (st != TG_OK) return st;
    tg_tensor *t = tg__tensor_uninit(TG_I32, TG_SHAPE((int64_t)dims[0]));
    int32_t *y = t->data;
    const unsigned char *b = raw;
    for (size_t i = 0; i < got; i++) y[i] = b[i];
    tg__free(raw);
    *labels = t;
    return TG_OK;
}
