/* CIFAR-10, binary version: each file is a run of 3073-byte records, one label byte (0-9) then
 * 3072 pixel bytes, the 32x32 red plane, then green, then blue (row-major), which is NCHW order
 * already. No header: the file size alone says how many records there are. */
#include <stdio.h>
#include <string.h>
#include "autograd/internal.h"
#include "data/internal.h"

enum { CIFAR_SIDE = 32, CIFAR_PIXELS = 3 * 32 * 32, CIFAR_RECORD = 1 + 3 * 32 * 32 };

/* Reads one file whole and validates it: a positive whole number of records, every label 0-9. */
static tg_status read_records(const char *path, unsigned char **raw, int64_t *n_records)
{
    *raw = NULL;
    *n_records = 0;
    tg__reader r;
    tg_status st = tg__reader_open_file(&r, path);
    if (st != TG_OK) return st;
    void *buf;
    size_t got;
    st = tg__read_alloc(&r, SIZE_MAX, &buf, &got);
    tg__reader_close(&r);
    if (st != TG_OK) return st;
    if (got == 0) {
        st = tg_status_set(TG_ERR_FORMAT, "%s: empty file (a CIFAR-10 batch holds 3073-byte "
                           "records)", path);
    } else if (got % CIFAR_RECORD) {
        st = tg_status_set(TG_ERR_FORMAT, "%s: %zu bytes is not a whole number of 3073-byte "
                           "CIFAR-10 records: record %zu is truncated (%zu of 3073 bytes)", path,
                           got, got / CIFAR_RECORD, got % CIFAR_RECORD);
    }
    const unsigned char *b = buf;
    for (size_t i = 0; st == TG_OK && i < got / CIFAR_RECORD; i++)
        if (b[i * CIFAR_RECORD] > 9)
            st = tg_status_set(TG_ERR_VALUE, "%s: record %zu (byte offset %zu) has label %d; "
                               "CIFAR-10 labels are 0-9 (is this CIFAR-100, or another file?)",
                               path, i, i * CIFAR_RECORD, b[i * CIFAR_RECORD]);
    if (st != TG_OK) {
        tg__free(buf);
        return st;
    }
    *raw = buf;
    *n_records = (int64_t)(got / CIFAR_RECORD);
    return TG_OK;
}

/* Records -> x [.., 3, 32, 32] in [0, 1] (pixel / 255, as torchvision's ToTensor) and y. */
static void convert(const unsigned char *raw, int64_t n, float *x, int32_t *y)
{
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *rec = raw + i * CIFAR_RECORD;
        y[i] = rec[0];
        for (int k = 0; k < CIFAR_PIXELS; k++)
            x[i * CIFAR_PIXELS + k] = (float)rec[1 + k] / 255.0f;
    }
}

tg_status tg_cifar10_load_files(int n_files, const char *const *paths, tg_dataset *out)
{
    memset(out, 0, sizeof *out);
    if (n_files < 1 || !paths)
        tg_fail("tg_cifar10_load_files: needs at least one file (got %d)", n_files);
    unsigned char **raw = tg__calloc((size_t)n_files * sizeof *raw);
    int64_t *counts = tg__calloc((size_t)n_files * sizeof *counts);
    int64_t total = 0;
    tg_status st = TG_OK;
    for (int f = 0; f < n_files && st == TG_OK; f++) {
        st = read_records(paths[f], &raw[f], &counts[f]);
        total += counts[f];
    }
    if (st == TG_OK) {
        float *x = tg__aligned_bytes((size_t)total * CIFAR_PIXELS * sizeof(float));
        if (!x) {
            st = tg_status_set(TG_ERR_NOMEM, "%s: out of memory for %lld CIFAR-10 images",
                               paths[0], (long long)total);
        } else {
            out->x = tg__tensor_adopt(TG_F32, TG_SHAPE(total, 3, CIFAR_SIDE, CIFAR_SIDE), x);
            out->y = tg_zeros(TG_I32, TG_SHAPE(total));
            out->n_classes = 10;
            int64_t at = 0;
            for (int f = 0; f < n_files; f++) {
                convert(raw[f], counts[f], x + at * CIFAR_PIXELS, (int32_t *)out->y->data + at);
                at += counts[f];
            }
        }
    }
    for (int f = 0; f < n_files; f++) tg__free(raw[f]);
    tg__free(raw);
    tg__free(counts);
    return st;
}

tg_status tg_cifar10_load(const char *dir, tg_dataset *train, tg_dataset *test)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!dir) tg_fail("tg_cifar10_load: NULL directory");
    char names[6][4096];
    const char *paths[6];
    for (int i = 0; i < 6; i++) {
        if (i < 5) snprintf(names[i], sizeof names[i], "%s/data_batch_%d.bin", dir, i + 1);
        else snprintf(names[i], sizeof names[i], "%s/test_batch.bin", dir);
        paths[i] = names[i];
    }
    tg_status st = tg_cifar10_load_files(5, paths, train);
    if (st != TG_OK) return st;
    st = tg_cifar10_load_files(1, paths + 5, test);
    if (st != TG_OK) tg_dataset_free(train);
    return st;
}

bool tg_cifar10_present(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/data_batch_1.bin", dir ? dir : "");
    FILE *f = dir ? fopen(path, "rb") : NULL;
    if (f) fclose(f);
    return f != NULL;
}
