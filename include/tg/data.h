/* tapegrad data: IDX (MNIST-style), .npy/.npz and CSV readers, labelled data sets, and a batch
 * loader.
 *
 * Every reader returns a tg_status; on failure the message (tg_status_message()) names the file
 * and the problem, e.g. "train-labels-idx1-ubyte.gz: truncated: header says 60000 labels, file
 * holds 59990", and nothing is left allocated (the out-parameters are set to NULL).
 *   TG_ERR_IO     the file is missing or cannot be read
 *   TG_ERR_FORMAT wrong magic, truncated or trailing data, malformed header, CSV cell or archive
 *   TG_ERR_VALUE  a value the caller's request rules out: label out of range, image/label count
 *                 mismatch, unknown CSV column, an int64 that does not fit int32
 *   TG_ERR_NOMEM  the data is real but does not fit in memory
 * Trailing data means data beyond what the header announces; bytes after the end of a .gz
 * file's compressed stream are ignored (zlib's behaviour, and gzip -d's, which only warns).
 * Sizes written in a file header are never trusted for memory: buffers grow with the bytes
 * actually read (or are reserved only up to what the file's size can hold and touched as data
 * arrives), so a lying header yields TG_ERR_FORMAT, not a huge allocation.
 *
 * Tensors returned here are persistent (free them with tg_free, or tg_dataset_free). */
#ifndef TG_DATA_H
#define TG_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- IDX files (MNIST / Fashion-MNIST) -----------------------------------------------------
 * Read through zlib, so gzip-compressed (.gz) and plain files are both accepted.
 * Images (magic 0x00000803, unsigned bytes [N, rows, cols]) -> F32 [N, rows*cols] in [0, 1];
 * rows/cols may be NULL. Labels (magic 0x00000801, unsigned bytes [N]) -> I32 [N]. */
tg_status tg_idx_load_images(const char *path, tg_tensor **images, int *rows, int *cols);
tg_status tg_idx_load_labels(const char *path, tg_tensor **labels);

/* ---- NumPy .npy / .npz ---------------------------------------------------------------------
 * Little-endian, C-order arrays of rank <= TG_MAX_DIMS. dtype mapping: <f4 -> F32, <f8 -> F64,
 * <i4 -> I32, <i8 -> I32 (TG_ERR_VALUE if a value does not fit), |u1 -> I32 (exact; convert with
 * tg_to_dtype and scale yourself for images). .npy files may also be gzip-compressed.
 * tg_npz_load reads one member of an .npz archive (np.savez or np.savez_compressed); member is
 * "x_train.npy" or just "x_train". */
tg_status tg_npy_load(const char *path, tg_tensor **out);
tg_status tg_npz_load(const char *path, const char *member, tg_tensor **out);

/* ---- CSV -------------------------------------------------------------------------------------
 * A numeric CSV whose first non-empty line is a header of column names. Every other non-empty
 * line must have as many cells as the header, each a finite number (surrounding spaces and
 * double quotes are ignored). The target column becomes y [N]; the other columns, in file order,
 * become x [N, columns-1]. Zero-initialised options mean: ',' separated, target = first column,
 * x F32, y F32. Plain or gzip-compressed files.
 * A malformed cell -> TG_ERR_FORMAT "data.csv: line 7, column 3 (petal_width): cannot read
 * 'abc' as a number". Unknown target column -> TG_ERR_VALUE. */
typedef struct {
    char delimiter;          /* 0 means ',' */
    const char *target;      /* target column by name; NULL: use target_index */
    int target_index;        /* 0-based; negative counts from the end (-1: last column) */
    tg_dtype x_dtype;        /* TG_F32 or TG_F64 */
    tg_dtype y_dtype;        /* TG_F32, TG_F64, or TG_I32 (class labels: cells must be integers) */
} tg_csv_opts;

/* opts may be NULL (defaults). y may be NULL: then every column is a feature. */
tg_status tg_csv_load(const char *path, const tg_csv_opts *opts, tg_tensor **x, tg_tensor **y);

/* ---- labelled data sets ----------------------------------------------------------------------
 * x holds one example per row (shape[0] = N), y is I32 [N] with labels in [0, n_classes).
 * The data set owns both tensors. */
typedef struct {
    tg_tensor *x;
    tg_tensor *y;
    int n_classes;
} tg_dataset;

/* Loads an IDX image file and its label file; checks that the counts agree and that every label
 * is in [0, n_classes) (n_classes <= 0: inferred as the largest label + 1). */
tg_status tg_dataset_load_idx(const char *images_path, const char *labels_path, int n_classes,
                              tg_dataset *out);
void tg_dataset_free(tg_dataset *d);     /* frees x and y and zeroes *d; NULL is fine */
int64_t tg_dataset_size(const tg_dataset *d);
/* counts[c] = number of examples with label c, for c in [0, n_classes). */
void tg_dataset_class_counts(const tg_dataset *d, int64_t *counts);
/* TG_ERR_VALUE naming `what` and the first offending index unless y is I32 [n] with every label in
 * [0, n_classes). */
tg_status tg_check_labels(const tg_tensor *y, int n_classes, const char *what);

/* Splits src (left untouched) into copies: the first N - n_second rows, and the last n_second. */
tg_status tg_dataset_split(const tg_dataset *src, int64_t n_second, tg_dataset *first,
                           tg_dataset *second);
/* Like tg_dataset_split, but second gets n_second rows chosen uniformly at random (rng: NULL
 * means the global generator). Both parts keep the original relative order of their rows. */
tg_status tg_dataset_random_split(const tg_dataset *src, int64_t n_second, tg_rng *rng,
                                  tg_dataset *first, tg_dataset *second);

/* Subsets: new data sets holding copies of chosen rows of src (left untouched), to free with
 * tg_dataset_free. A count outside [0, size] or an index outside [0, size) is TG_ERR_VALUE naming
 * the function, the count or the index and its position, and the data set's size.
 *   tg_dataset_head           the first n rows
 *   tg_dataset_subset         rows idx[0..n), in that order (repeats allowed)
 *   tg_dataset_random_subset  n distinct rows drawn uniformly at random (rng: NULL means the global
 *                             generator; the same seed, the same rows), in their original order */
tg_status tg_dataset_head(const tg_dataset *src, int64_t n, tg_dataset *out);
tg_status tg_dataset_subset(const tg_dataset *src, const int64_t *idx, int64_t n, tg_dataset *out);
tg_status tg_dataset_random_subset(const tg_dataset *src, int64_t n, tg_rng *rng, tg_dataset *out);

/* ---- MNIST-style directories -----------------------------------------------------------------
 * Loads <dir>/train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz
 * and t10k-labels-idx1-ubyte.gz (the names without .gz are tried when the .gz file is missing).
 * dir: opts->dir, else the environment variable TG_DATA_DIR, else TG_FASHION_MNIST_DIR.
 * Validation = the LAST n_val training images (default 10,000), or n_val random ones when
 * random_val is set (seeded by seed); train = the rest; test = the t10k files.
 * TG_ERR_VALUE, before any training can start, when no training or no test image is left or when
 * the test images differ in size (rows x cols) from the training images. */
#define TG_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
#define TG_MNIST_NO_VAL (-1)

typedef struct {
    const char *dir;     /* NULL: see above */
    int64_t n_val;       /* 0: 10,000; TG_MNIST_NO_VAL: no validation split (val stays empty) */
    bool random_val;     /* random instead of last n_val images */
    uint64_t seed;       /* for random_val */
    int n_classes;       /* 0: 10 */
} tg_mnist_opts;

typedef struct {
    tg_dataset train, val, test;
} tg_mnist;

tg_status tg_mnist_load(const tg_mnist_opts *opts /* NULL: defaults */, tg_mnist *out);
void tg_mnist_free(tg_mnist *m);

/* ---- batch loader ----------------------------------------------------------------------------
 * Yields mini-batches of rows of x (and y) in a fresh random order each epoch (or in order when
 * shuffle is false). Rows are copied into batch tensors allocated once by tg_loader_new: no heap
 * allocation per batch and no copy of the data set per epoch. The returned tensors are owned by
 * the loader and valid until the next tg_loader_next / tg_loader_free; the last batch of an epoch
 * has shape[0] = the number of rows left (or is skipped when drop_last is set). When shuffle is
 * false the batches are not copied: their data point into x and y, so treat them as read-only
 * (copy one before changing it in place, e.g. with tg_random_crop_flip_). Shuffled batches are
 * always copies.
 * The loader forks its own generator from rng at creation (one draw; NULL: the global generator),
 * so the order depends on the seed only, not on what else draws random numbers during training.
 *
 *     tg_loader *L = tg_loader_new(train.x, train.y, 64, true, false, &rng);
 *     for (int epoch = 0; epoch < 10; epoch++) {
 *         tg_tensor *xb, *yb;
 *         while (tg_loader_next(L, &xb, &yb)) { ... }   // false once at the end of the epoch
 *     }
 *     tg_loader_free(L);
 *
 * Misuse (x and y row counts differ, batch_size < 1) is a programming error (tg_fail). y may be
 * NULL (then *yb is set to NULL). x and y must stay alive and unchanged in shape while the loader
 * is used. */
typedef struct tg_loader tg_loader;

tg_loader *tg_loader_new(const tg_tensor *x, const tg_tensor *y, int64_t batch_size, bool shuffle,
                         bool drop_last, tg_rng *rng);
/* Starts an epoch (reshuffles when shuffle is set), abandoning the rest of the current one.
 * tg_loader_next calls it by itself: after the last batch of an epoch it returns false once (and
 * sets *xb, *yb to NULL), and the following call starts the next epoch in a new order. Calling
 * it at the top of every epoch as well changes nothing (the same orders either way). */
void tg_loader_reset(tg_loader *L);
bool tg_loader_next(tg_loader *L, tg_tensor **xb, tg_tensor **yb);
int64_t tg_loader_num_batches(const tg_loader *L);   /* per epoch */
/* Row indices (into x) of the batch last returned, and their count. */
const int64_t *tg_loader_batch_indices(const tg_loader *L, int64_t *n);
void tg_loader_free(tg_loader *L);                   /* NULL is fine */
/* Where a loader is, to resume bit-identically (checkpoints save it, optim.h): each epoch's
 * order is drawn from the generator state alone, so that state and the position in the epoch
 * are all there is. set_state requires a loader of the same rows, batch size, shuffle and
 * drop_last (a programming error otherwise); tg_loader_batch_indices is then empty until the
 * next batch. */
typedef struct {
    int64_t rows, batch_size;
    bool shuffle, drop_last;
    bool started;              /* an epoch is under way */
    int64_t pos;               /* rows of it already returned */
    tg_rng rng;                /* the generator the next epoch's order is drawn from */
    tg_rng order_rng;          /* the state the current order was drawn from (rng if none) */
} tg_loader_state;
tg_loader_state tg_loader_get_state(const tg_loader *L);
void tg_loader_set_state(tg_loader *L, const tg_loader_state *state);

/* ---- images: CIFAR-10, NCHW layout, normalisation, augmentation -----------------------------
 * CIFAR-10's binary version (https://www.cs.toronto.edu/~kriz/cifar.html): files of 3073-byte
 * records, one label byte (0-9) then 3072 pixel bytes (the 32x32 red, green and blue planes).
 * x becomes F32 [N, 3, 32, 32] in [0, 1] (pixel / 255), y I32 [N], n_classes 10. Plain or
 * gzip-compressed files. Errors name the file: missing (TG_ERR_IO), empty or a size that is not
 * a whole number of records, i.e. a truncated record (TG_ERR_FORMAT), a label above 9
 * (TG_ERR_VALUE, with the record's index). */
tg_status tg_cifar10_load_files(int n_files, const char *const *paths, tg_dataset *out);
/* <dir>/data_batch_1.bin ... data_batch_5.bin as train, <dir>/test_batch.bin as test. */
tg_status tg_cifar10_load(const char *dir, tg_dataset *train, tg_dataset *test);
bool tg_cifar10_present(const char *dir);   /* whether <dir>/data_batch_1.bin can be opened */

/* Views the rows of d->x (e.g. IDX images [N, 784]) as images [N, channels, height, width], in
 * place (no copy; the sizes must multiply to the row length). */
void tg_dataset_as_images(tg_dataset *d, int64_t channels, int64_t height, int64_t width);

/* Per-channel mean and (population) standard deviation of images [N, C, H, W], into arrays of
 * C doubles: compute them on the training set, then normalise every set with the same numbers
 * (x - mean[c]) / std[c], in place (torchvision's Normalize). */
void tg_channel_stats(const tg_tensor *x, double *mean, double *std);
void tg_normalize_channels_(tg_tensor *x, const double *mean, const double *std);

/* Augments a batch [N, C, H, W] in place for training: per image a random crop of the image
 * zero-padded by pad on each side, back to H x W (a shift by dy, dx in [-pad, pad]), then a
 * horizontal flip with probability 1/2 when flip is set (torchvision's RandomCrop(H, padding=pad)
 * and RandomHorizontalFlip). Three draws from rng per image (dy, dx, flip; NULL: the global
 * generator), whatever the options, so the same seed gives the same batches. No allocation. Run
 * it on a shuffling loader's batch (a copy, rewritten from the data set at every tg_loader_next);
 * an unshuffled loader's batch points into the data set itself (tg_loader_new). */
void tg_random_crop_flip_(tg_tensor *x, int pad, bool flip, tg_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
