/* Labelled data sets: loading IDX pairs, label checks, splits, and MNIST-style directories. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "autograd/internal.h"
#include "data/internal.h"

void tg_dataset_free(tg_dataset *d)
{
    if (!d) return;
    tg_free(d->x);
    tg_free(d->y);
    memset(d, 0, sizeof *d);
}

int64_t tg_dataset_size(const tg_dataset *d)
{
    return d && d->x ? d->x->shape[0] : 0;
}

void tg_dataset_class_counts(const tg_dataset *d, int64_t *counts)
{
    for (int c = 0; c < d->n_classes; c++) counts[c] = 0;
    if (!d->y) return;
    const int32_t *y = d->y->data;
    for (int64_t i = 0; i < d->y->numel; i++)
        if (y[i] >= 0 && y[i] < d->n_classes) counts[y[i]]++;
}

tg_status tg_check_labels(const tg_tensor *y, int n_classes, const char *what)
{
    if (!y || y->dtype != TG_I32 || y->ndim != 1)
        return tg_status_set(TG_ERR_VALUE, "%s: labels must be an int32 vector", what);
    const int32_t *v = y->data;
    for (int64_t i = 0; i < y->numel; i++)
        if (v[i] < 0 || v[i] >= n_classes)
            return tg_status_set(TG_ERR_VALUE, "%s: label %d at index %lld is outside [0, %d)",
                                 what, v[i], (long long)i, n_classes);
    return TG_OK;
}

/* tg_dataset_load_idx, also telling the image size (rows x cols). */
static tg_status load_idx_pair(const char *images_path, const char *labels_path, int n_classes,
                               tg_dataset *out, int *rows, int *cols)
{
    memset(out, 0, sizeof *out);
    tg_tensor *x = NULL, *y = NULL;
    tg_status st = tg_idx_load_images(images_path, &x, rows, cols);
    if (st != TG_OK) return st;
    st = tg_idx_load_labels(labels_path, &y);
    if (st != TG_OK) {
        tg_free(x);
        return st;
    }
    if (x->shape[0] != y->shape[0]) {
        st = tg_status_set(TG_ERR_VALUE, "%s holds %lld images but %s holds %lld labels",
                           images_path, (long long)x->shape[0], labels_path,
                           (long long)y->shape[0]);
    } else {
        if (n_classes <= 0) {   /* infer: largest label + 1 (labels are bytes, so <= 256) */
            const int32_t *v = y->data;
            n_classes = 1;
            for (int64_t i = 0; i < y->numel; i++)
                if (v[i] + 1 > n_classes) n_classes = v[i] + 1;
        }
        st = tg_check_labels(y, n_classes, labels_path);
    }
    if (st != TG_OK) {
        tg_free(x);
        tg_free(y);
        return st;
    }
    *out = (tg_dataset){.x = x, .y = y, .n_classes = n_classes};
    return TG_OK;
}

tg_status tg_dataset_load_idx(const char *images_path, const char *labels_path, int n_classes,
                              tg_dataset *out)
{
    int rows, cols;
    return load_idx_pair(images_path, labels_path, n_classes, out, &rows, &cols);
}

/* ---- splits ---------------------------------------------------------------------------------- */

static int64_t row_bytes(const tg_tensor *t)
{
    return t->shape[0] ? (int64_t)tg_nbytes(t) / t->shape[0] : 0;
}

/* A persistent tensor with the rows idx[0..n) of src (idx NULL: rows first..first+n). */
static tg_tensor *take_rows(const tg_tensor *src, const int64_t *idx, int64_t first, int64_t n)
{
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, src->shape, sizeof shape);
    shape[0] = n;
    tg_tensor *t = tg__tensor_uninit(src->dtype, src->ndim, shape);   /* every row is copied */
    int64_t rb = row_bytes(src);
    if (!idx) {
        if (n) memcpy(t->data, (const char *)src->data + first * rb, (size_t)(n * rb));
    } else {
        for (int64_t i = 0; i < n; i++)
            memcpy((char *)t->data + i * rb, (const char *)src->data + idx[i] * rb, (size_t)rb);
    }
    return t;
}

/* Clears both outputs (so a failed split leaves nothing to free), then checks the source and
 * the size of the second part. A malformed source is a programming error (the handler); a size
 * out of range is bad input (a status). */
static tg_status check_split(const tg_dataset *src, int64_t n_second, const char *op,
                             tg_dataset *first, tg_dataset *second)
{
    memset(first, 0, sizeof *first);
    memset(second, 0, sizeof *second);
    if (!src || !src->x || !src->y)
        tg_fail("%s: the source data set is empty (load it first)", op);
    if (src->x->ndim < 1 || src->y->shape[0] != src->x->shape[0])
        tg_fail("%s: x has %lld rows, y has %lld", op, (long long)src->x->shape[0],
                 (long long)src->y->shape[0]);
    int64_t n = src->x->shape[0];
    if (n_second < 0 || n_second > n)
        return tg_status_set(TG_ERR_VALUE, "%s: cannot split %lld rows off a data set of %lld",
                             op, (long long)n_second, (long long)n);
    return TG_OK;
}

tg_status tg_dataset_split(const tg_dataset *src, int64_t n_second, tg_dataset *first,
                           tg_dataset *second)
{
    tg_status st = check_split(src, n_second, "tg_dataset_split", first, second);
    if (st != TG_OK) return st;
    int64_t n = src->x->shape[0];
    int64_t n_first = n - n_second;
    *first = (tg_dataset){take_rows(src->x, NULL, 0, n_first), take_rows(src->y, NULL, 0, n_first),
                          src->n_classes};
    *second = (tg_dataset){take_rows(src->x, NULL, n_first, n_second),
                           take_rows(src->y, NULL, n_first, n_second), src->n_classes};
    return TG_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

tg_status tg_dataset_random_split(const tg_dataset *src, int64_t n_second, tg_rng *rng,
                                  tg_dataset *first, tg_dataset *second)
{
    tg_status st = check_split(src, n_second, "tg_dataset_random_split", first, second);
    if (st != TG_OK) return st;
    int64_t n = src->x->shape[0];
    if (!rng) rng = tg_global_rng();
    int64_t *perm = tg__aligned_bytes((size_t)(n ? n : 1) * sizeof *perm);
    if (!perm) return tg_status_set(TG_ERR_NOMEM, "random split: out of memory");
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    tg_rng_shuffle(rng, perm, n);
    int64_t n_first = n - n_second;
    /* sorted parts keep the original order (and read the source sequentially) */
    qsort(perm, (size_t)n_first, sizeof *perm, cmp_i64);
    qsort(perm + n_first, (size_t)n_second, sizeof *perm, cmp_i64);
    *first = (tg_dataset){take_rows(src->x, perm, 0, n_first), take_rows(src->y, perm, 0, n_first),
                          src->n_classes};
    *second = (tg_dataset){take_rows(src->x, perm + n_first, 0, n_second),
                           take_rows(src->y, perm + n_first, 0, n_second), src->n_classes};
    tg__free(perm);
    return TG_OK;
}

/* ---- subsets --------------------------------------------------------------------------------- */

/* Clears the output, checks the source like a split does, and the count against its size. */
static tg_status check_subset(const tg_dataset *src, int64_t n, const char *op, tg_dataset *out)
{
    tg_dataset unused;
    tg_status st = check_split(src, 0, op, out, &unused);
    if (st != TG_OK) return st;
    int64_t size = src->x->shape[0];
    if (n < 0 || n > size)
        return tg_status_set(TG_ERR_VALUE, "%s: asked for %lld rows of a data set of %lld; give "
                             "a count in [0, %lld]", op, (long long)n, (long long)size,
                             (long long)size);
    return TG_OK;
}

tg_status tg_dataset_head(const tg_dataset *src, int64_t n, tg_dataset *out)
{
    tg_status st = check_subset(src, n, "tg_dataset_head", out);
    if (st != TG_OK) return st;
    *out = (tg_dataset){take_rows(src->x, NULL, 0, n), take_rows(src->y, NULL, 0, n),
                        src->n_classes};
    return TG_OK;
}

tg_status tg_dataset_subset(const tg_dataset *src, const int64_t *idx, int64_t n, tg_dataset *out)
{
    tg_status st = check_subset(src, n < 0 ? n : 0, "tg_dataset_subset", out);
    if (st != TG_OK) return st;
    if (n > 0 && !idx) tg_fail("tg_dataset_subset: idx is NULL for %lld rows", (long long)n);
    int64_t size = src->x->shape[0];
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= size)
            return tg_status_set(TG_ERR_VALUE, "tg_dataset_subset: index %lld (position %lld of "
                                 "the list) is outside the data set's rows [0, %lld)",
                                 (long long)idx[i], (long long)i, (long long)size);
    *out = (tg_dataset){take_rows(src->x, idx, 0, n), take_rows(src->y, idx, 0, n),
                        src->n_classes};
    return TG_OK;
}

tg_status tg_dataset_random_subset(const tg_dataset *src, int64_t n, tg_rng *rng, tg_dataset *out)
{
    tg_status st = check_subset(src, n, "tg_dataset_random_subset", out);
    if (st != TG_OK) return st;
    int64_t size = src->x->shape[0];
    int64_t *perm = tg__aligned_bytes((size_t)(size ? size : 1) * sizeof *perm);
    if (!perm) return tg_status_set(TG_ERR_NOMEM, "tg_dataset_random_subset: out of memory");
    for (int64_t i = 0; i < size; i++) perm[i] = i;
    tg_rng_shuffle(rng ? rng : tg_global_rng(), perm, size);
    qsort(perm, (size_t)n, sizeof *perm, cmp_i64);   /* the original order, read sequentially */
    *out = (tg_dataset){take_rows(src->x, perm, 0, n), take_rows(src->y, perm, 0, n),
                        src->n_classes};
    tg__free(perm);
    return TG_OK;
}

/* ---- MNIST-style directories ----------------------------------------------------------------- */

void tg_mnist_free(tg_mnist *m)
{
    if (!m) return;
    tg_dataset_free(&m->train);
    tg_dataset_free(&m->val);
    tg_dataset_free(&m->test);
}

/* <dir>/<base>.gz, or <dir>/<base> when only the uncompressed file exists. */
static void data_file(char *buf, size_t cap, const char *dir, const char *base)
{
    struct stat sb;
    snprintf(buf, cap, "%s/%s.gz", dir, base);
    if (stat(buf, &sb) == 0) return;
    snprintf(buf, cap, "%s/%s", dir, base);
    if (stat(buf, &sb) == 0) return;
    snprintf(buf, cap, "%s/%s.gz", dir, base);   /* neither: name the standard file */
}

/* Keeps the first n rows of a persistent tensor in place: the buffer keeps its size (the tail
 * is simply unused until tg_free), which saves copying the training rows. */
static void keep_first_rows(tg_tensor *t, int64_t n)
{
    t->numel = t->shape[0] ? t->numel / t->shape[0] * n : 0;
    t->shape[0] = n;
}

tg_status tg_mnist_load(const tg_mnist_opts *opts, tg_mnist *out)
{
    memset(out, 0, sizeof *out);
    tg_mnist_opts o = opts ? *opts : (tg_mnist_opts){0};
    const char *dir = o.dir ? o.dir : getenv("TG_DATA_DIR");
    if (!dir || !*dir) dir = TG_FASHION_MNIST_DIR;
    int n_classes = o.n_classes > 0 ? o.n_classes : 10;
    int64_t n_val = o.n_val == 0 ? 10000 : o.n_val == TG_MNIST_NO_VAL ? 0 : o.n_val;
    if (n_val < 0)
        return tg_status_set(TG_ERR_VALUE, "validation size %lld is negative", (long long)n_val);

    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tg_status_set(TG_ERR_IO, "%s: no such data directory", dir);

    char img[4096], lab[4096], train_img[4096];
    tg_dataset all;
    int rows, cols;
    data_file(img, sizeof img, dir, "train-images-idx3-ubyte");
    data_file(lab, sizeof lab, dir, "train-labels-idx1-ubyte");
    tg_status st = load_idx_pair(img, lab, n_classes, &all, &rows, &cols);
    if (st != TG_OK) return st;
    int64_t n = tg_dataset_size(&all);
    if (n_val > n) {
        tg_dataset_free(&all);
        return tg_status_set(TG_ERR_VALUE, "%s: asked for %lld validation images, the training "
                             "file holds %lld", img, (long long)n_val, (long long)n);
    }
    if (n == n_val) {   /* a model trained on nothing would report chance as a result */
        tg_dataset_free(&all);
        return tg_status_set(TG_ERR_VALUE, "%s: no training images (the file holds %lld, %lld of "
                             "them for validation)", img, (long long)n, (long long)n_val);
    }
    snprintf(train_img, sizeof train_img, "%s", img);
    if (o.random_val) {
        tg_rng rng;
        tg_rng_seed(&rng, o.seed);
        st = tg_dataset_random_split(&all, n_val, &rng, &out->train, &out->val);
        tg_dataset_free(&all);
        if (st != TG_OK) return st;
    } else {
        /* the last n_val rows are copied out; the training rows stay where they are */
        out->val = (tg_dataset){take_rows(all.x, NULL, n - n_val, n_val),
                                take_rows(all.y, NULL, n - n_val, n_val), n_classes};
        keep_first_rows(all.x, n - n_val);
        keep_first_rows(all.y, n - n_val);
        out->train = all;
    }

    data_file(img, sizeof img, dir, "t10k-images-idx3-ubyte");
    data_file(lab, sizeof lab, dir, "t10k-labels-idx1-ubyte");
    int test_rows, test_cols;
    st = load_idx_pair(img, lab, n_classes, &out->test, &test_rows, &test_cols);
    if (st == TG_OK && tg_dataset_size(&out->test) == 0)
        st = tg_status_set(TG_ERR_VALUE, "%s: no test images", img);
    /* Checked here, not at the first product after training: a model of 28x28 inputs cannot
     * score 32x32 test images. */
    if (st == TG_OK && (test_rows != rows || test_cols != cols))
        st = tg_status_set(TG_ERR_VALUE, "%s holds %dx%d images but the training images (%s) are "
                           "%dx%d; both sets need one image size", img, test_rows, test_cols,
                           train_img, rows, cols);
    if (st != TG_OK) {
        tg_mnist_free(out);
        return st;
    }
    return TG_OK;
}
