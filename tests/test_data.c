/* Data readers and the batch loader. Every test writes its own small files into a temp dir. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

#include "tapegrad.h"
#include "tests/check.h"


/* ---- helpers --------------------------------------------------------------------------------- */

static const char *tpath(const char *name)
{
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", check_tmpdir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    if (n) assert_int_equal(gzwrite(g, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

static size_t put_be32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24, p[1] = v >> 16, p[2] = v >> 8, p[3] = v;
    return 4;
}

/* An IDX image file of n images rows x cols whose pixel j of image i is (i * 7 + j) % 256;
 * `bytes` of the payload are written (SIZE_MAX: all). Returns the byte count written. */
static size_t make_images(unsigned char *buf, uint32_t magic, uint32_t n, uint32_t rows,
                          uint32_t cols, size_t bytes)
{
    size_t k = put_be32(buf, magic);
    k += put_be32(buf + k, n);
    k += put_be32(buf + k, rows);
    k += put_be32(buf + k, cols);
    size_t total = (size_t)n * rows * cols;
    if (bytes < total) total = bytes;
    for (size_t j = 0; j < total; j++)
        buf[k + j] = (unsigned char)(((j / (rows * cols)) * 7 + j % (rows * cols)) % 256);
    return k + total;
}

static size_t make_labels(unsigned char *buf, uint32_t n, const unsigned char *labels, size_t count)
{
    size_t k = put_be32(buf, 0x801);
    k += put_be32(buf + k, n);
    memcpy(buf + k, labels, count);
    return k + count;
}

#define assert_status(expr, code, fragment)                                                    \
    do {                                                                                       \
        tg_status st_ = (expr);                                                                \
        if (st_ != (code) || !strstr(tg_status_message(), (fragment)))                         \
            fail_msg("status %d (want %d), message '%s' (want it to contain '%s')", (int)st_, \
                     (int)(code), tg_status_message(), (fragment));                            \
    } while (0)

/* ---- IDX ------------------------------------------------------------------------------------- */

static void check_images(tg_tensor *x, int n, int d)
{
    assert_int_equal(x->dtype, TG_F32);
    assert_int_equal(x->ndim, 2);
    assert_int_equal(x->shape[0], n);
    assert_int_equal(x->shape[1], d);
    const float *v = x->data;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            assert_true(v[i * d + j] == (float)((i * 7 + j) % 256) / 255.0f);
}

static void test_idx_raw_and_gz(void **state)
{
    unsigned char buf[1024];
    size_t n = make_images(buf, 0x803, 5, 3, 4, SIZE_MAX);
    write_bytes(tpath("img.idx"), buf, n);
    write_gz(tpath("img.idx.gz"), buf, n);
    const unsigned char labels[5] = {0, 1, 2, 9, 3};
    size_t m = make_labels(buf, 5, labels, 5);
    write_bytes(tpath("lab.idx"), buf, m);
    write_gz(tpath("lab.idx.gz"), buf, m);

    const char *names[2][2] = {{"img.idx", "lab.idx"}, {"img.idx.gz", "lab.idx.gz"}};
    for (int k = 0; k < 2; k++) {
        tg_tensor *x, *y;
        int rows = 0, cols = 0;
        assert_int_equal(tg_idx_load_images(tpath(names[k][0]), &x, &rows, &cols), TG_OK);
        assert_int_equal(rows, 3);
        assert_int_equal(cols, 4);
        check_images(x, 5, 12);
        assert_int_equal(tg_idx_load_labels(tpath(names[k][1]), &y), TG_OK);
        assert_int_equal(y->dtype, TG_I32);
        assert_int_equal(y->shape[0], 5);
        for (int i = 0; i < 5; i++) assert_int_equal(((int32_t *)y->data)[i], labels[i]);
        tg_free(x);
        tg_free(y);

        tg_dataset d;
        assert_int_equal(tg_dataset_load_idx(tpath(names[k][0]), tpath(names[k][1]), 10, &d),
                         TG_OK);
        assert_int_equal(tg_dataset_size(&d), 5);
        assert_int_equal(d.n_classes, 10);
        int64_t counts[10];
        tg_dataset_class_counts(&d, counts);
        assert_int_equal(counts[0] + counts[1] + counts[2] + counts[3] + counts[9], 5);
        assert_int_equal(counts[9], 1);
        assert_int_equal(counts[5], 0);
        tg_dataset_free(&d);
        assert_null(d.x);
        /* n_classes <= 0: inferred from the largest label */
        assert_int_equal(tg_dataset_load_idx(tpath(names[k][0]), tpath(names[k][1]), 0, &d),
                         TG_OK);
        assert_int_equal(d.n_classes, 10);
        tg_dataset_free(&d);
    }
}

static void test_idx_wrong_magic(void **state)
{
    unsigned char buf[256];
    const unsigned char labels[3] = {1, 2, 3};
    size_t m = make_labels(buf, 3, labels, 3);
    write_bytes(tpath("labels_as_images"), buf, m);
    tg_tensor *x = (tg_tensor *)1;
    assert_status(tg_idx_load_images(tpath("labels_as_images"), &x, NULL, NULL), TG_ERR_FORMAT,
                  "labels_as_images: not an IDX image file: magic 0x00000801");
    assert_null(x);
    assert_non_null(strstr(tg_status_message(), "label file"));

    size_t n = make_images(buf, 0x00000804, 2, 2, 2, SIZE_MAX);   /* 3 dims announced as 4 */
    write_bytes(tpath("magic804"), buf, n);
    assert_status(tg_idx_load_images(tpath("magic804"), &x, NULL, NULL), TG_ERR_FORMAT,
                  "magic 0x00000804, expected 0x00000803");
    assert_status(tg_idx_load_labels(tpath("magic804"), &x), TG_ERR_FORMAT,
                  "not an IDX label file");

    write_bytes(tpath("empty"), "", 0);
    assert_status(tg_idx_load_labels(tpath("empty"), &x), TG_ERR_FORMAT, "only 0 bytes");
    write_bytes(tpath("short_header"), "\0\0\x08\x03\0\0\0\x02\0\0", 10);
    assert_status(tg_idx_load_images(tpath("short_header"), &x, NULL, NULL), TG_ERR_FORMAT,
                  "truncated header");
    n = make_images(buf, 0x803, 2, 0, 5, SIZE_MAX);
    write_bytes(tpath("zero_rows"), buf, n);
    assert_status(tg_idx_load_images(tpath("zero_rows"), &x, NULL, NULL), TG_ERR_FORMAT,
                  "images of size 0x5");
}

static void test_idx_truncated_images(void **state)
{
    unsigned char buf[1024];
    /* header says 5 images of 3x4, payload holds 3 and a half */
    size_t n = make_images(buf, 0x803, 5, 3, 4, 3 * 12 + 6);
    write_bytes(tpath("trunc-images"), buf, n);
    write_gz(tpath("trunc-images.gz"), buf, n);
    tg_tensor *x;
    assert_status(tg_idx_load_images(tpath("trunc-images"), &x, NULL, NULL), TG_ERR_FORMAT,
                  "trunc-images: truncated: header says 5 images, file holds 3 and part");
    assert_null(x);
    assert_status(tg_idx_load_images(tpath("trunc-images.gz"), &x, NULL, NULL), TG_ERR_FORMAT,
                  "trunc-images.gz: truncated: header says 5 images, file holds 3");

    /* a header announcing 2^31-1 images must fail as truncated, not allocate 2^31 * 784 bytes */
    n = make_images(buf, 0x803, 0x7fffffff, 28, 28, 100);
    write_bytes(tpath("huge-header"), buf, n);
    assert_status(tg_idx_load_images(tpath("huge-header"), &x, NULL, NULL), TG_ERR_FORMAT,
                  "header says 2147483647 images, file holds 0");
    n = make_images(buf, 0x803, 0xffffffff, 28, 28, 0);
    write_bytes(tpath("neg-header"), buf, n);
    assert_status(tg_idx_load_images(tpath("neg-header"), &x, NULL, NULL), TG_ERR_FORMAT,
                  "impossible size");

    /* trailing bytes after the announced images */
    n = make_images(buf, 0x803, 2, 3, 4, SIZE_MAX);
    memset(buf + n, 0, 5);
    write_bytes(tpath("trailing"), buf, n + 5);
    assert_status(tg_idx_load_images(tpath("trailing"), &x, NULL, NULL), TG_ERR_FORMAT,
                  "5 bytes of trailing data");
}

static void test_idx_truncated_labels(void **state)
{
    unsigned char buf[256], lab[64] = {0};
    size_t m = make_labels(buf, 60, lab, 54);
    write_gz(tpath("train-labels-idx1-ubyte.gz"), buf, m);
    tg_tensor *y;
    assert_status(tg_idx_load_labels(tpath("train-labels-idx1-ubyte.gz"), &y), TG_ERR_FORMAT,
                  "train-labels-idx1-ubyte.gz: truncated: header says 60 labels, file holds 54");
    assert_null(y);
}

static void test_idx_corrupt_gzip(void **state)
{
    unsigned char buf[4096];
    size_t n = make_images(buf, 0x803, 20, 10, 10, SIZE_MAX);
    write_gz(tpath("full.gz"), buf, n);
    FILE *f = fopen(tpath("full.gz"), "rb");
    unsigned char gz[8192];
    size_t len = fread(gz, 1, sizeof gz, f);
    fclose(f);
    /* a gzip stream cut in the middle */
    write_bytes(tpath("cut.gz"), gz, len / 2);
    tg_tensor *x;
    tg_status st = tg_idx_load_images(tpath("cut.gz"), &x, NULL, NULL);
    assert_int_equal(st, TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "cut.gz"));
    assert_null(x);
    /* flipped bytes inside the deflate data */
    for (size_t i = 20; i < 30 && i < len; i++) gz[i] ^= 0x5a;
    write_bytes(tpath("flipped.gz"), gz, len);
    st = tg_idx_load_images(tpath("flipped.gz"), &x, NULL, NULL);
    assert_int_not_equal(st, TG_OK);
    assert_non_null(strstr(tg_status_message(), "flipped.gz"));
}

static void test_dataset_count_mismatch(void **state)
{
    unsigned char buf[1024], lab[8] = {1, 2, 3, 4};
    size_t n = make_images(buf, 0x803, 5, 2, 2, SIZE_MAX);
    write_bytes(tpath("mm-images"), buf, n);
    size_t m = make_labels(buf, 4, lab, 4);
    write_bytes(tpath("mm-labels"), buf, m);
    tg_dataset d;
    assert_status(tg_dataset_load_idx(tpath("mm-images"), tpath("mm-labels"), 10, &d),
                  TG_ERR_VALUE, "mm-images holds 5 images but");
    assert_non_null(strstr(tg_status_message(), "mm-labels holds 4 labels"));
    assert_null(d.x);
    assert_null(d.y);
}

static void test_dataset_label_out_of_range(void **state)
{
    unsigned char buf[1024], lab[4] = {1, 2, 12, 4};
    size_t n = make_images(buf, 0x803, 4, 2, 2, SIZE_MAX);
    write_bytes(tpath("lr-images"), buf, n);
    size_t m = make_labels(buf, 4, lab, 4);
    write_bytes(tpath("lr-labels"), buf, m);
    tg_dataset d;
    assert_status(tg_dataset_load_idx(tpath("lr-images"), tpath("lr-labels"), 10, &d),
                  TG_ERR_VALUE, "lr-labels: label 12 at index 2 is outside [0, 10)");
    assert_null(d.x);
    assert_int_equal(tg_dataset_load_idx(tpath("lr-images"), tpath("lr-labels"), 13, &d), TG_OK);
    tg_dataset_free(&d);
}

static void test_missing_files(void **state)
{
    tg_tensor *t, *u;
    tg_dataset d;
    const char *p = tpath("does-not-exist.gz");
    assert_status(tg_idx_load_images(p, &t, NULL, NULL), TG_ERR_IO,
                  "does-not-exist.gz: cannot open");
    assert_status(tg_idx_load_labels(p, &t), TG_ERR_IO, "does-not-exist.gz");
    assert_status(tg_dataset_load_idx(p, p, 10, &d), TG_ERR_IO, "does-not-exist.gz");
    assert_status(tg_npy_load(p, &t), TG_ERR_IO, "does-not-exist.gz");
    assert_status(tg_npz_load(p, "x", &t), TG_ERR_IO, "does-not-exist.gz");
    assert_status(tg_csv_load(p, NULL, &t, &u), TG_ERR_IO, "does-not-exist.gz");
    /* a directory is not a data file */
    assert_int_not_equal(tg_idx_load_labels(check_tmpdir, &t), TG_OK);
    assert_null(t);
    tg_mnist m;
    assert_status(tg_mnist_load(&(tg_mnist_opts){.dir = tpath("no-such-dir")}, &m), TG_ERR_IO,
                  "no-such-dir");
}

/* ---- .npy / .npz ----------------------------------------------------------------------------- */

/* A version-1 .npy image in buf with the given dict and payload; returns its size. */
static size_t make_npy(unsigned char *buf, const char *dict, const void *data, size_t bytes)
{
    size_t dl = strlen(dict);
    size_t hlen = ((10 + dl + 1 + 63) / 64) * 64 - 10;   /* header padded to 64 bytes */
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = hlen & 0xff;
    buf[9] = hlen >> 8;
    memcpy(buf + 10, dict, dl);
    memset(buf + 10 + dl, ' ', hlen - dl - 1);
    buf[10 + hlen - 1] = '\n';
    if (bytes) memcpy(buf + 10 + hlen, data, bytes);
    return 10 + hlen + bytes;
}

static void test_npy_valid(void **state)
{
    unsigned char buf[4096];
    float f4[6] = {1.5f, -2, 3, 4, 5, 6.25f};
    double f8[3] = {1e-300, -2.5, 3};
    int32_t i4[4] = {-7, 0, 7, INT32_MAX};
    int64_t i8[4] = {-3, 0, 123456789, INT32_MIN};
    uint8_t u1[5] = {0, 1, 128, 255, 9};
    tg_tensor *t;

    size_t n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f4,
                        sizeof f4);
    write_bytes(tpath("f4.npy"), buf, n);
    write_gz(tpath("f4.npy.gz"), buf, n);
    const char *f4files[2] = {"f4.npy", "f4.npy.gz"};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(tg_npy_load(tpath(f4files[k]), &t), TG_OK);
        assert_int_equal(t->dtype, TG_F32);
        assert_int_equal(t->ndim, 2);
        assert_int_equal(t->shape[0], 2);
        assert_int_equal(t->shape[1], 3);
        assert_memory_equal(t->data, f4, sizeof f4);
        tg_free(t);
    }

    n = make_npy(buf, "{\"descr\":\"<f8\",\"fortran_order\":False,\"shape\":(3,)}", f8, sizeof f8);
    write_bytes(tpath("f8.npy"), buf, n);
    assert_int_equal(tg_npy_load(tpath("f8.npy"), &t), TG_OK);
    assert_int_equal(t->dtype, TG_F64);
    assert_int_equal(t->ndim, 1);
    assert_memory_equal(t->data, f8, sizeof f8);
    tg_free(t);

    n = make_npy(buf, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 1, 2), }", i4,
                 sizeof i4);
    write_bytes(tpath("i4.npy"), buf, n);
    assert_int_equal(tg_npy_load(tpath("i4.npy"), &t), TG_OK);
    assert_int_equal(t->dtype, TG_I32);
    assert_int_equal(t->ndim, 3);
    assert_memory_equal(t->data, i4, sizeof i4);
    tg_free(t);

    n = make_npy(buf, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", i8, sizeof i8);
    write_bytes(tpath("i8.npy"), buf, n);
    assert_int_equal(tg_npy_load(tpath("i8.npy"), &t), TG_OK);
    assert_int_equal(t->dtype, TG_I32);
    for (int i = 0; i < 4; i++) assert_int_equal(((int32_t *)t->data)[i], i8[i]);
    tg_free(t);

    n = make_npy(buf, "{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }", u1, sizeof u1);
    write_bytes(tpath("u1.npy"), buf, n);
    assert_int_equal(tg_npy_load(tpath("u1.npy"), &t), TG_OK);
    assert_int_equal(t->dtype, TG_I32);
    for (int i = 0; i < 5; i++) assert_int_equal(((int32_t *)t->data)[i], u1[i]);
    tg_free(t);

    /* a scalar, an empty array, and a version-2 header */
    n = make_npy(buf, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", f8, 8);
    write_bytes(tpath("scalar.npy"), buf, n);
    assert_int_equal(tg_npy_load(tpath("scalar.npy"), &t), TG_OK);
    assert_int_equal(t->ndim, 0);
    assert_true(tg_item(t) == 1e-300);
    tg_free(t);
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", NULL, 0);
    write_bytes(tpath("empty.npy"), buf, n);
    assert_int_equal(tg_npy_load(tpath("empty.npy"), &t), TG_OK);
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->shape[1], 5);
    tg_free(t);
    unsigned char v2[256];
    const char *dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }          \n";
    size_t dl = strlen(dict);   /* 12 + 68 = 80: aligned to 16 */
    memcpy(v2, "\x93NUMPY\x02\x00", 8);
    v2[8] = (unsigned char)dl, v2[9] = v2[10] = v2[11] = 0;
    memcpy(v2 + 12, dict, dl);
    memcpy(v2 + 12 + dl, i4, sizeof i4);
    write_bytes(tpath("v2.npy"), v2, 12 + dl + sizeof i4);
    assert_int_equal(tg_npy_load(tpath("v2.npy"), &t), TG_OK);
    assert_memory_equal(t->data, i4, sizeof i4);
    tg_free(t);
}

static void add_member(zip_t *za, const char *name, const void *data, size_t n, bool store)
{
    void *copy = malloc(n);
    memcpy(copy, data, n);
    zip_source_t *src = zip_source_buffer(za, copy, n, 1);
    assert_non_null(src);
    zip_int64_t idx = zip_file_add(za, name, src, ZIP_FL_OVERWRITE);
    assert_true(idx >= 0);
    assert_int_equal(zip_set_file_compression(za, (zip_uint64_t)idx,
                                              store ? ZIP_CM_STORE : ZIP_CM_DEFLATE, 0), 0);
}

static void test_npz_valid(void **state)
{
    unsigned char buf[4096];
    float x[8];
    for (int i = 0; i < 8; i++) x[i] = (float)i / 3;
    int64_t y[4] = {3, 1, 4, 1};
    int err = 0;
    zip_t *za = zip_open(tpath("data.npz"), ZIP_CREATE | ZIP_TRUNCATE, &err);
    assert_non_null(za);
    size_t n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", x,
                        sizeof x);
    add_member(za, "x_train.npy", buf, n, false);
    n = make_npy(buf, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }", y, sizeof y);
    add_member(za, "y_train.npy", buf, n, true);
    n = make_npy(buf, "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", x, 8);
    add_member(za, "complex.npy", buf, n, false);
    assert_int_equal(zip_close(za), 0);

    tg_tensor *t;
    assert_int_equal(tg_npz_load(tpath("data.npz"), "x_train.npy", &t), TG_OK);
    assert_int_equal(t->dtype, TG_F32);
    assert_int_equal(t->shape[0], 4);
    assert_int_equal(t->shape[1], 2);
    assert_memory_equal(t->data, x, sizeof x);
    tg_free(t);
    assert_int_equal(tg_npz_load(tpath("data.npz"), "y_train", &t), TG_OK);
    for (int i = 0; i < 4; i++) assert_int_equal(((int32_t *)t->data)[i], y[i]);
    tg_free(t);

    assert_status(tg_npz_load(tpath("data.npz"), "x_test", &t), TG_ERR_VALUE,
                  "no member 'x_test' (members: x_train.npy, y_train.npy");
    assert_status(tg_npz_load(tpath("data.npz"), "complex", &t), TG_ERR_FORMAT,
                  "data.npz:complex.npy: unsupported dtype '<c8'");
    assert_null(t);
    /* not a zip archive */
    write_bytes(tpath("notzip.npz"), buf, 100);
    assert_status(tg_npz_load(tpath("notzip.npz"), "x", &t), TG_ERR_FORMAT,
                  "cannot open as an npz (zip) archive");
}

static void test_npy_malformed_header(void **state)
{
    unsigned char buf[4096];
    float d[4] = {0};
    const char *bad[] = {
        "{'descr': '<f4', 'fortran_order': False}",                  /* no shape */
        "{'descr': '<f4', 'shape': (4,)}",                           /* no fortran_order */
        "['descr', '<f4']",                                           /* not a dict */
        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (4,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (a,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': 4}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'extra': 1}",
        "{'descr: '<f4', 'fortran_order': False, 'shape': (4,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)",
        "",
    };
    tg_tensor *t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = make_npy(buf, bad[i], d, sizeof d);
        write_bytes(tpath("bad.npy"), buf, n);
        tg_status st = tg_npy_load(tpath("bad.npy"), &t);
        if (st != TG_ERR_FORMAT || !strstr(tg_status_message(), "bad.npy"))
            fail_msg("header %zu (%s): status %d, '%s'", i, bad[i], (int)st, tg_status_message());
        assert_null(t);
    }
    size_t n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", d,
                        sizeof d);
    buf[0] = 'X';
    write_bytes(tpath("bad.npy"), buf, n);
    assert_status(tg_npy_load(tpath("bad.npy"), &t), TG_ERR_FORMAT, "not an npy file");
    buf[0] = 0x93;
    buf[6] = 7;   /* version 7 */
    write_bytes(tpath("bad.npy"), buf, n);
    assert_status(tg_npy_load(tpath("bad.npy"), &t), TG_ERR_FORMAT, "version 7.0");
    buf[6] = 1;
    buf[8] = 0xff, buf[9] = 0xff;   /* header length beyond the file */
    write_bytes(tpath("bad.npy"), buf, n);
    assert_status(tg_npy_load(tpath("bad.npy"), &t), TG_ERR_FORMAT, "truncated npy header");
    /* data shorter than the shape says, and longer */
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", d, sizeof d);
    write_bytes(tpath("short.npy"), buf, n);
    assert_status(tg_npy_load(tpath("short.npy"), &t), TG_ERR_FORMAT,
                  "short.npy: truncated: shape (4, 2) needs 32 bytes of data, file holds 16");
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", d, sizeof d);
    write_bytes(tpath("long.npy"), buf, n);
    assert_status(tg_npy_load(tpath("long.npy"), &t), TG_ERR_FORMAT, "4 bytes of trailing data");
    n = make_npy(buf, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", d, sizeof d);
    write_bytes(tpath("fortran.npy"), buf, n);
    assert_status(tg_npy_load(tpath("fortran.npy"), &t), TG_ERR_FORMAT, "Fortran-order");
    int64_t big[2] = {1, (int64_t)1 << 40};
    n = make_npy(buf, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", big,
                 sizeof big);
    write_bytes(tpath("big.npy"), buf, n);
    assert_status(tg_npy_load(tpath("big.npy"), &t), TG_ERR_VALUE,
                  "value 1099511627776 at flat index 1 does not fit int32");
    assert_null(t);
}

static void test_npy_unsupported_dtype(void **state)
{
    unsigned char buf[4096];
    float d[4] = {0};
    const char *descr[] = {">f4", "<f2", "<i2", "<u4", "|b1", "<c8", "<U3", "|O"};
    tg_tensor *t;
    for (size_t i = 0; i < sizeof descr / sizeof descr[0]; i++) {
        char dict[128];
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (1,), }",
                 descr[i]);
        size_t n = make_npy(buf, dict, d, sizeof d);
        write_bytes(tpath("dtype.npy"), buf, n);
        char want[64];
        snprintf(want, sizeof want, "unsupported dtype '%s'", descr[i]);
        assert_status(tg_npy_load(tpath("dtype.npy"), &t), TG_ERR_FORMAT, want);
        assert_null(t);
    }
    size_t n = make_npy(buf, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                        d, 4);
    write_bytes(tpath("dtype.npy"), buf, n);
    assert_status(tg_npy_load(tpath("dtype.npy"), &t), TG_ERR_FORMAT, "structured");
}

/* Every prefix and many single-byte corruptions of valid files: a status, never a crash or leak
 * (the ASan run checks the latter). */
static void test_corrupted_inputs_never_crash(void **state)
{
    unsigned char good[3][2048], buf[2048];
    float f[12];
    for (int i = 0; i < 12; i++) f[i] = (float)i;
    size_t len[3];
    len[0] = make_npy(good[0], "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", f,
                      sizeof f);
    len[1] = make_images(good[1], 0x803, 4, 3, 3, SIZE_MAX);
    const char *csv = "a,b,label\n1,2,0\n3.5,-4,1\n5,6e-3,2\n";
    len[2] = strlen(csv);
    memcpy(good[2], csv, len[2]);
    tg_rng rng;
    tg_rng_seed(&rng, 42);
    const char *p = tpath("fuzz");
    for (int kind = 0; kind < 3; kind++) {
        for (size_t cut = 0; cut <= len[kind] + 300; cut++) {
            size_t n = cut <= len[kind] ? cut : len[kind];
            memcpy(buf, good[kind], n);
            if (cut > len[kind]) {   /* random single-byte corruptions of the whole file */
                n = len[kind];
                memcpy(buf, good[kind], n);
                size_t at = (size_t)tg_rng_below(&rng, kind == 2 ? n : 128);
                buf[at] = (unsigned char)tg_rng_next(&rng);
            }
            write_bytes(p, buf, n);
            tg_tensor *t = NULL, *u = NULL;
            tg_status st = kind == 0 ? tg_npy_load(p, &t)
                           : kind == 1 ? tg_idx_load_images(p, &t, NULL, NULL)
                                       : tg_csv_load(p, NULL, &t, &u);
            if (st == TG_OK) {
                assert_non_null(t);
            } else {
                assert_null(t);
                assert_null(u);
                assert_non_null(strstr(tg_status_message(), "fuzz"));
            }
            tg_free(t);
            tg_free(u);
        }
    }
}

/* ---- CSV ------------------------------------------------------------------------------------- */

static void test_csv_valid(void **state)
{
    const char *text = "sepal, \"petal\" ,species\r\n"
                       "5.1,1.4,0\r\n"
                       "\r\n"
                       "4.9 , 1.5e0, 2\r\n"
                       "-1,\"3\",1\n";
    write_bytes(tpath("iris.csv"), text, strlen(text));
    write_gz(tpath("iris.csv.gz"), text, strlen(text));
    tg_tensor *x, *y;
    tg_csv_opts o = {.target = "species", .y_dtype = TG_I32};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(tg_csv_load(tpath(k ? "iris.csv.gz" : "iris.csv"), &o, &x, &y), TG_OK);
        assert_int_equal(x->dtype, TG_F32);
        assert_int_equal(x->shape[0], 3);
        assert_int_equal(x->shape[1], 2);
        const float want[6] = {5.1f, 1.4f, 4.9f, 1.5f, -1, 3};
        assert_memory_equal(x->data, want, sizeof want);
        assert_int_equal(y->dtype, TG_I32);
        const int32_t wy[3] = {0, 2, 1};
        assert_memory_equal(y->data, wy, sizeof wy);
        tg_free(x);
        tg_free(y);
    }
    /* by index (-1: last), float64 features, float target; the quoted name matches too */
    o = (tg_csv_opts){.target_index = 1, .x_dtype = TG_F64, .y_dtype = TG_F64};
    assert_int_equal(tg_csv_load(tpath("iris.csv"), &o, &x, &y), TG_OK);
    assert_int_equal(x->dtype, TG_F64);
    assert_true(((double *)x->data)[1] == 0 && ((double *)x->data)[0] == 5.1);
    assert_true(((double *)y->data)[1] == 1.5);
    tg_free(x);
    tg_free(y);
    o = (tg_csv_opts){.target = "petal"};
    assert_int_equal(tg_csv_load(tpath("iris.csv"), &o, &x, &y), TG_OK);
    assert_true(((float *)y->data)[2] == 3.0f);
    tg_free(x);
    tg_free(y);
    /* no target: every column is a feature; semicolons */
    write_bytes(tpath("semi.csv"), "a;b\n1;2\n3;4", 11);
    assert_int_equal(tg_csv_load(tpath("semi.csv"), &(tg_csv_opts){.delimiter = ';'}, &x, NULL),
                     TG_OK);
    assert_int_equal(x->shape[1], 2);
    assert_true(((float *)x->data)[3] == 4.0f);
    tg_free(x);
}

static void test_csv_bad_cell(void **state)
{
    const char *text = "a,b,c\n1,2,3\n4,abc,6\n";
    write_bytes(tpath("bad.csv"), text, strlen(text));
    tg_tensor *x, *y;
    assert_status(tg_csv_load(tpath("bad.csv"), &(tg_csv_opts){.target = "c"}, &x, &y),
                  TG_ERR_FORMAT, "bad.csv: line 3, column 2 (b): cannot read 'abc' as a number");
    assert_null(x);
    assert_null(y);
    const struct { const char *text, *want; tg_status code; } cases[] = {
        {"a,b\n1,\n", "line 2, column 2 (b): empty cell", TG_ERR_FORMAT},
        {"a,b\n1,2\n3,4,5\n", "line 3 has 3 columns, the header has 2", TG_ERR_FORMAT},
        {"a,b\n1,2\n3\n", "line 3 has 1 columns", TG_ERR_FORMAT},
        {"a,b\n1,nan\n", "'nan' is not a finite number", TG_ERR_FORMAT},
        {"a,b\n1,1e999\n", "not a finite number", TG_ERR_FORMAT},
        {"a,b\n1,1e300\n", "'1e300' does not fit in float32", TG_ERR_FORMAT},
        {"a,b\n1,2x\n", "cannot read '2x'", TG_ERR_FORMAT},
        {"a,b\n", "no data rows", TG_ERR_FORMAT},
        {"\n\n", "empty file", TG_ERR_FORMAT},
        {"a,b\n1.5,2\n", "'1.5' is not an integer class label", TG_ERR_VALUE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_bytes(tpath("bad.csv"), cases[i].text, strlen(cases[i].text));
        tg_csv_opts o = {.target_index = 0, .y_dtype = TG_I32};
        assert_status(tg_csv_load(tpath("bad.csv"), &o, &x, &y), cases[i].code, cases[i].want);
    }
}

/* A byte order mark (spreadsheets write one) is not part of the first column's name. */
static void test_csv_byte_order_mark(void **state)
{
    const char *text = "\xEF\xBB\xBF" "a,b\n1,2\n3,4\n";
    write_bytes(tpath("bom.csv"), text, strlen(text));
    tg_tensor *x, *y;
    assert_int_equal(tg_csv_load(tpath("bom.csv"), &(tg_csv_opts){.target = "a"}, &x, &y), TG_OK);
    assert_near(tg_get_flat(y, 1), 3, 0);
    assert_near(tg_get_flat(x, 1), 4, 0);
    tg_free(x);
    tg_free(y);
}

static void test_csv_missing_target(void **state)
{
    write_bytes(tpath("t.csv"), "x1,x2,y\n1,2,3\n", 14);
    tg_tensor *x, *y;
    assert_status(tg_csv_load(tpath("t.csv"), &(tg_csv_opts){.target = "label"}, &x, &y),
                  TG_ERR_VALUE, "t.csv: no column named 'label' in the header (line 1: x1,x2,y)");
    assert_null(x);
    assert_status(tg_csv_load(tpath("t.csv"), &(tg_csv_opts){.target_index = 3}, &x, &y),
                  TG_ERR_VALUE, "target column index 3 out of range");
    assert_status(tg_csv_load(tpath("t.csv"), &(tg_csv_opts){.target_index = -4}, &x, &y),
                  TG_ERR_VALUE, "index -4 out of range");
}

/* ---- splits ---------------------------------------------------------------------------------- */

static tg_dataset tagged_dataset(int64_t n, int n_classes)
{
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(n, 3));
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(n));
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < 3; j++) ((float *)x->data)[i * 3 + j] = (float)(i * 3 + j);
        ((int32_t *)y->data)[i] = (int32_t)(i % n_classes);
    }
    return (tg_dataset){x, y, n_classes};
}

static void test_splits(void **state)
{
    tg_dataset all = tagged_dataset(100, 7), a, b;
    assert_int_equal(tg_dataset_split(&all, 30, &a, &b), TG_OK);
    assert_int_equal(tg_dataset_size(&a), 70);
    assert_int_equal(tg_dataset_size(&b), 30);
    assert_true(((float *)b.x->data)[0] == 210.0f);   /* row 70 */
    assert_int_equal(((int32_t *)b.y->data)[0], 70 % 7);
    tg_dataset_free(&a);
    tg_dataset_free(&b);
    assert_status(tg_dataset_split(&all, 101, &a, &b), TG_ERR_VALUE, "cannot split 101 rows");

    tg_rng r1, r2;
    tg_rng_seed(&r1, 5);
    tg_rng_seed(&r2, 5);
    tg_dataset a2, b2;
    assert_int_equal(tg_dataset_random_split(&all, 25, &r1, &a, &b), TG_OK);
    assert_int_equal(tg_dataset_random_split(&all, 25, &r2, &a2, &b2), TG_OK);
    assert_int_equal(tg_dataset_size(&a), 75);
    assert_int_equal(tg_dataset_size(&b), 25);
    assert_memory_equal(b.x->data, b2.x->data, 25 * 3 * sizeof(float));
    /* the parts are disjoint, cover every row, keep rows intact and in original order */
    int seen[100] = {0};
    int64_t counts_a[7], counts_b[7];
    tg_dataset_class_counts(&a, counts_a);
    tg_dataset_class_counts(&b, counts_b);
    const tg_dataset *parts[2] = {&a, &b};
    for (int p = 0; p < 2; p++) {
        const float *x = parts[p]->x->data;
        const int32_t *y = parts[p]->y->data;
        int64_t prev = -1;
        for (int64_t i = 0; i < tg_dataset_size(parts[p]); i++) {
            int64_t row = (int64_t)x[i * 3] / 3;
            assert_true(x[i * 3 + 2] == (float)(row * 3 + 2));
            assert_int_equal(y[i], row % 7);
            assert_true(row > prev);
            prev = row;
            seen[row]++;
        }
    }
    for (int i = 0; i < 100; i++) assert_int_equal(seen[i], 1);
    for (int c = 0; c < 7; c++) assert_int_equal(counts_a[c] + counts_b[c], c < 2 ? 15 : 14);
    tg_dataset_free(&a);
    tg_dataset_free(&b);
    tg_dataset_free(&a2);
    tg_dataset_free(&b2);
    tg_dataset_free(&all);
}

static void test_subsets(void **state)
{
    tg_dataset all = tagged_dataset(50, 5), h, s, r, r2;
    assert_int_equal(tg_dataset_head(&all, 7, &h), TG_OK);
    assert_int_equal(tg_dataset_size(&h), 7);
    assert_int_equal(h.n_classes, 5);
    assert_memory_equal(h.x->data, all.x->data, 7 * 3 * sizeof(float));
    assert_memory_equal(h.y->data, all.y->data, 7 * sizeof(int32_t));
    tg_dataset_free(&h);
    assert_int_equal(tg_dataset_head(&all, 0, &h), TG_OK);
    assert_int_equal(tg_dataset_size(&h), 0);
    tg_dataset_free(&h);
    assert_status(tg_dataset_head(&all, 51, &h), TG_ERR_VALUE,
                  "tg_dataset_head: asked for 51 rows of a data set of 50");
    assert_null(h.x);
    assert_status(tg_dataset_head(&all, -1, &h), TG_ERR_VALUE, "asked for -1 rows");

    const int64_t idx[4] = {49, 0, 7, 7};
    assert_int_equal(tg_dataset_subset(&all, idx, 4, &s), TG_OK);
    assert_int_equal(tg_dataset_size(&s), 4);
    for (int i = 0; i < 4; i++) {
        assert_true(((float *)s.x->data)[3 * i + 1] == (float)(idx[i] * 3 + 1));
        assert_int_equal(((int32_t *)s.y->data)[i], idx[i] % 5);
    }
    tg_dataset_free(&s);
    const int64_t bad[3] = {1, 50, 2};
    assert_status(tg_dataset_subset(&all, bad, 3, &s), TG_ERR_VALUE,
                  "index 50 (position 1 of the list) is outside the data set's rows [0, 50)");
    assert_null(s.x);
    const int64_t neg[1] = {-3};
    assert_status(tg_dataset_subset(&all, neg, 1, &s), TG_ERR_VALUE, "index -3");

    tg_rng a, b;
    tg_rng_seed(&a, 11);
    tg_rng_seed(&b, 11);
    assert_int_equal(tg_dataset_random_subset(&all, 20, &a, &r), TG_OK);
    assert_int_equal(tg_dataset_random_subset(&all, 20, &b, &r2), TG_OK);
    assert_memory_equal(r.x->data, r2.x->data, 20 * 3 * sizeof(float));   /* the seed decides */
    int64_t prev = -1;
    for (int i = 0; i < 20; i++) {   /* distinct rows, intact, in their original order */
        int64_t row = (int64_t)((float *)r.x->data)[3 * i] / 3;
        assert_true(row > prev);
        assert_int_equal(((int32_t *)r.y->data)[i], row % 5);
        prev = row;
    }
    assert_memory_not_equal(r.x->data, all.x->data, 20 * 3 * sizeof(float));   /* not the head */
    tg_dataset_free(&r);
    tg_dataset_free(&r2);
    assert_status(tg_dataset_random_subset(&all, 60, &a, &r), TG_ERR_VALUE,
                  "tg_dataset_random_subset: asked for 60 rows of a data set of 50");
    tg_dataset_free(&all);
}

/* Writes an MNIST-style directory: n_train train images of size tr x tr, n_test of te x te. */
static const char *mnist_dir(const char *name, uint32_t n_train, uint32_t tr, uint32_t n_test,
                             uint32_t te)
{
    const char *dir = tpath(name);
    mkdir(dir, 0700);
    static unsigned char buf[16384];
    unsigned char lab[64];
    char p[512];
    for (int i = 0; i < 64; i++) lab[i] = (unsigned char)(i % 10);
    size_t n = make_images(buf, 0x803, n_train, tr, tr, SIZE_MAX);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte", dir);
    write_bytes(p, buf, n);
    n = make_labels(buf, n_train, lab, n_train);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    write_bytes(p, buf, n);
    n = make_images(buf, 0x803, n_test, te, te, SIZE_MAX);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
    write_bytes(p, buf, n);
    n = make_labels(buf, n_test, lab, n_test);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    write_bytes(p, buf, n);
    return dir;
}

/* Issue 17, defects 1 and 4: caught at loading, not after training. */
static void test_mnist_refuses_what_cannot_train(void **state)
{
    tg_mnist m;
    const char *dir = mnist_dir("mnist_sizes", 30, 4, 10, 5);
    assert_status(tg_mnist_load(&(tg_mnist_opts){.dir = dir, .n_val = 5}, &m), TG_ERR_VALUE,
                  "t10k-images-idx3-ubyte holds 5x5 images but the training images");
    assert_non_null(strstr(tg_status_message(), "train-images-idx3-ubyte) are 4x4"));
    assert_null(m.train.x);
    assert_null(m.test.x);

    dir = mnist_dir("mnist_no_test", 30, 4, 0, 4);
    assert_status(tg_mnist_load(&(tg_mnist_opts){.dir = dir, .n_val = 5}, &m), TG_ERR_VALUE,
                  "t10k-images-idx3-ubyte: no test images");
    assert_null(m.train.x);

    dir = mnist_dir("mnist_no_train", 10, 4, 10, 4);
    assert_status(tg_mnist_load(&(tg_mnist_opts){.dir = dir, .n_val = 10}, &m), TG_ERR_VALUE,
                  "no training images (the file holds 10, 10 of them for validation)");
    dir = mnist_dir("mnist_empty", 0, 4, 10, 4);
    assert_status(tg_mnist_load(&(tg_mnist_opts){.dir = dir, .n_val = TG_MNIST_NO_VAL}, &m),
                  TG_ERR_VALUE, "no training images");
    /* same sizes, both non-empty: fine */
    dir = mnist_dir("mnist_fine", 12, 4, 3, 4);
    assert_int_equal(tg_mnist_load(&(tg_mnist_opts){.dir = dir, .n_val = TG_MNIST_NO_VAL}, &m),
                     TG_OK);
    assert_int_equal(tg_dataset_size(&m.test), 3);
    tg_mnist_free(&m);
}

/* An MNIST-style directory of small synthetic files (names without .gz for the test set). */
static void test_mnist_dir(void **state)
{
    const char *dir = tpath("mnist");
    mkdir(dir, 0700);
    unsigned char buf[8192], lab[64];
    char p[512];
    for (int i = 0; i < 64; i++) lab[i] = (unsigned char)(i % 10);
    size_t n = make_images(buf, 0x803, 50, 4, 4, SIZE_MAX);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    write_gz(p, buf, n);
    n = make_labels(buf, 50, lab, 50);
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte.gz", dir);
    write_gz(p, buf, n);
    n = make_images(buf, 0x803, 20, 4, 4, SIZE_MAX);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
    write_bytes(p, buf, n);
    n = make_labels(buf, 20, lab, 20);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    write_bytes(p, buf, n);

    tg_mnist m;
    assert_int_equal(tg_mnist_load(&(tg_mnist_opts){.dir = dir, .n_val = 12}, &m), TG_OK);
    assert_int_equal(tg_dataset_size(&m.train), 38);
    assert_int_equal(tg_dataset_size(&m.val), 12);
    assert_int_equal(tg_dataset_size(&m.test), 20);
    assert_int_equal(m.train.x->numel, 38 * 16);
    /* validation = the last 12 training images */
    assert_true(((float *)m.val.x->data)[0] == (float)((38 * 7) % 256) / 255.0f);
    assert_int_equal(((int32_t *)m.val.y->data)[0], 38 % 10);
    assert_int_equal(((int32_t *)m.train.y->data)[37], 37 % 10);
    tg_mnist_free(&m);

    assert_int_equal(tg_mnist_load(&(tg_mnist_opts){.dir = dir, .n_val = 12, .random_val = true,
                                                    .seed = 3}, &m), TG_OK);
    assert_int_equal(tg_dataset_size(&m.train), 38);
    assert_int_equal(tg_dataset_size(&m.val), 12);
    tg_mnist_free(&m);
    assert_int_equal(tg_mnist_load(&(tg_mnist_opts){.dir = dir, .n_val = TG_MNIST_NO_VAL}, &m),
                     TG_OK);
    assert_int_equal(tg_dataset_size(&m.train), 50);
    assert_int_equal(tg_dataset_size(&m.val), 0);
    tg_mnist_free(&m);
    assert_status(tg_mnist_load(&(tg_mnist_opts){.dir = dir, .n_val = 51}, &m), TG_ERR_VALUE,
                  "asked for 51 validation images");
    /* a bad test file: the message names it, nothing leaks */
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", dir);
    n = make_labels(buf, 21, lab, 20);
    write_bytes(p, buf, n);
    assert_status(tg_mnist_load(&(tg_mnist_opts){.dir = dir, .n_val = 10}, &m), TG_ERR_FORMAT,
                  "t10k-labels-idx1-ubyte: truncated: header says 21 labels, file holds 20");
    assert_null(m.train.x);
}

static void test_fashion_mnist(void **state)
{
    struct stat sb;
    if (stat(TG_FASHION_MNIST_DIR, &sb) != 0) {
        skip();
    }
    tg_mnist m;
    tg_status st = tg_mnist_load(&(tg_mnist_opts){.dir = TG_FASHION_MNIST_DIR}, &m);
    if (st != TG_OK) fail_msg("%s", tg_status_message());
    assert_int_equal(tg_dataset_size(&m.train), 50000);
    assert_int_equal(tg_dataset_size(&m.val), 10000);
    assert_int_equal(tg_dataset_size(&m.test), 10000);
    assert_int_equal(m.train.x->shape[1], 784);
    assert_int_equal(m.test.n_classes, 10);
    int64_t tr[10], va[10], te[10];
    tg_dataset_class_counts(&m.train, tr);
    tg_dataset_class_counts(&m.val, va);
    tg_dataset_class_counts(&m.test, te);
    for (int c = 0; c < 10; c++) {
        assert_int_equal(tr[c] + va[c], 6000);   /* Fashion-MNIST is balanced */
        assert_int_equal(te[c], 1000);
        assert_true(va[c] > 0);
    }
    const float *x = m.val.x->data;
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < m.val.x->numel; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    assert_true(lo == 0.0f && hi == 1.0f);
    tg_mnist_free(&m);
}

/* ---- loader ---------------------------------------------------------------------------------- */

/* x row i = (i, i + 0.5), y[i] = 1000 + i */
static void tagged(int64_t n, tg_tensor **x, tg_tensor **y)
{
    *x = tg_zeros(TG_F32, TG_SHAPE(n, 2));
    *y = tg_zeros(TG_I32, TG_SHAPE(n));
    for (int64_t i = 0; i < n; i++) {
        ((float *)(*x)->data)[2 * i] = (float)i;
        ((float *)(*x)->data)[2 * i + 1] = (float)i + 0.5f;
        ((int32_t *)(*y)->data)[i] = (int32_t)(1000 + i);
    }
}

/* One epoch: checks rows against labels, records the order; returns the number of batches. */
static int64_t run_epoch(tg_loader *L, int64_t *order, int64_t *sizes)
{
    tg_tensor *xb, *yb;
    int64_t k = 0, nb = 0;
    tg_loader_reset(L);
    while (tg_loader_next(L, &xb, &yb)) {
        assert_int_equal(xb->shape[0], yb->shape[0]);
        assert_int_equal(xb->shape[1], 2);
        int64_t ni;
        const int64_t *idx = tg_loader_batch_indices(L, &ni);
        assert_int_equal(ni, xb->shape[0]);
        for (int64_t i = 0; i < xb->shape[0]; i++) {
            float v = ((float *)xb->data)[2 * i];
            assert_true(((float *)xb->data)[2 * i + 1] == v + 0.5f);
            assert_int_equal(((int32_t *)yb->data)[i], 1000 + (int64_t)v);
            assert_int_equal(idx[i], (int64_t)v);
            order[k++] = (int64_t)v;
        }
        sizes[nb++] = xb->shape[0];
    }
    return nb;
}

static void test_loader_every_index_once(void **state)
{
    tg_tensor *x, *y;
    tagged(103, &x, &y);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_loader *L = tg_loader_new(x, y, 10, true, false, &rng);
    assert_int_equal(tg_loader_num_batches(L), 11);
    int64_t order[103], sizes[16];
    for (int epoch = 0; epoch < 3; epoch++) {
        uint64_t allocs = tg_alloc_count();
        assert_int_equal(run_epoch(L, order, sizes), 11);
        assert_int_equal(tg_alloc_count(), allocs);   /* no allocation per batch */
        for (int b = 0; b < 10; b++) assert_int_equal(sizes[b], 10);
        assert_int_equal(sizes[10], 3);
        int seen[103] = {0};
        for (int i = 0; i < 103; i++) seen[order[i]]++;
        for (int i = 0; i < 103; i++) assert_int_equal(seen[i], 1);
    }
    tg_loader_free(L);

    /* no shuffle: in order; y may be NULL; next() starts the first epoch by itself */
    L = tg_loader_new(x, NULL, 50, false, false, NULL);
    tg_tensor *xb, *yb = (tg_tensor *)1;
    int64_t expect = 0;
    while (tg_loader_next(L, &xb, &yb)) {
        assert_null(yb);
        for (int64_t i = 0; i < xb->shape[0]; i++)
            assert_true(((float *)xb->data)[2 * i] == (float)expect++);
    }
    assert_int_equal(expect, 103);
    tg_loader_free(L);
    /* batch larger than the data set */
    L = tg_loader_new(x, y, 500, true, false, NULL);
    assert_int_equal(tg_loader_num_batches(L), 1);
    assert_int_equal(run_epoch(L, order, sizes), 1);
    assert_int_equal(sizes[0], 103);
    tg_loader_free(L);
    tg_free(x);
    tg_free(y);
}

/* Consecutive rows (no shuffle) are handed out in place, shuffled ones are gathered: both give
 * exactly the rows the batch indices name, and a gathered batch never points into x. */
static void test_loader_contiguous_batches_in_place(void **state)
{
    (void)state;
    tg_tensor *x, *y;
    tagged(103, &x, &y);
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        tg_rng rng;
        tg_rng_seed(&rng, 3);
        tg_loader *L = tg_loader_new(x, y, 10, shuffle, false, &rng);
        tg_tensor *xb, *yb;
        int64_t batches = 0;
        while (tg_loader_next(L, &xb, &yb)) {
            int64_t n;
            const int64_t *idx = tg_loader_batch_indices(L, &n);
            for (int64_t i = 0; i < n; i++) {
                assert_memory_equal((float *)xb->data + 2 * i, (float *)x->data + 2 * idx[i],
                                    2 * sizeof(float));
                assert_int_equal(((int32_t *)yb->data)[i], ((int32_t *)y->data)[idx[i]]);
            }
            bool inside = (char *)xb->data >= (char *)x->data &&
                          (char *)xb->data < (char *)x->data + tg_nbytes(x);
            if (!shuffle) {
                assert_ptr_equal(xb->data, (float *)x->data + 2 * idx[0]);
                assert_ptr_equal(yb->data, (int32_t *)y->data + idx[0]);
            } else {
                assert_false(inside);
            }
            batches++;
        }
        assert_int_equal(batches, 11);
        tg_loader_free(L);
    }
    tg_free(x);
    tg_free(y);
}

static void test_loader_drop_last(void **state)
{
    tg_tensor *x, *y;
    tagged(103, &x, &y);
    tg_loader *L = tg_loader_new(x, y, 10, true, true, NULL);
    assert_int_equal(tg_loader_num_batches(L), 10);
    int64_t order[103], sizes[16];
    assert_int_equal(run_epoch(L, order, sizes), 10);
    for (int b = 0; b < 10; b++) assert_int_equal(sizes[b], 10);
    int seen[103] = {0};
    for (int i = 0; i < 100; i++) assert_int_equal(seen[order[i]]++, 0);
    tg_loader_free(L);
    L = tg_loader_new(x, y, 200, true, true, NULL);
    assert_int_equal(tg_loader_num_batches(L), 0);
    assert_int_equal(run_epoch(L, order, sizes), 0);
    tg_loader_free(L);
    /* exact multiple: no short batch either way */
    L = tg_loader_new(x, y, 103, true, false, NULL);
    assert_int_equal(run_epoch(L, order, sizes), 1);
    tg_loader_free(L);
    tg_free(x);
    tg_free(y);
}

/* A loop that never calls tg_loader_reset: next says "end of epoch" once (false, NULL batches),
 * then starts the next epoch by itself, in a new order, with every row once. */
static void test_loader_starts_next_epoch_by_itself(void **state)
{
    tg_tensor *x, *y, *xb, *yb;
    tagged(23, &x, &y);
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    tg_loader *L = tg_loader_new(x, y, 5, true, false, &rng);
    int64_t order[3][23];
    for (int e = 0; e < 3; e++) {
        int64_t k = 0, batches = 0;
        while (tg_loader_next(L, &xb, &yb)) {
            for (int64_t i = 0; i < xb->shape[0]; i++)
                order[e][k++] = (int64_t)tg_get_flat(xb, 2 * i);
            batches++;
        }
        assert_null(xb);
        assert_null(yb);
        assert_int_equal(batches, 5);
        assert_int_equal(k, 23);
        int seen[23] = {0};
        for (int i = 0; i < 23; i++) seen[order[e][i]]++;
        for (int i = 0; i < 23; i++) assert_int_equal(seen[i], 1);
    }
    assert_memory_not_equal(order[0], order[1], sizeof order[0]);
    assert_memory_not_equal(order[1], order[2], sizeof order[0]);

    /* Calling tg_loader_reset at the top of each epoch gives the same orders as not calling it. */
    tg_rng_seed(&rng, 9);
    tg_loader *R = tg_loader_new(x, y, 5, true, false, &rng);
    for (int e = 0; e < 3; e++) {
        int64_t k = 0;
        tg_loader_reset(R);
        while (tg_loader_next(R, &xb, &yb))
            for (int64_t i = 0; i < xb->shape[0]; i++)
                assert_int_equal((int64_t)tg_get_flat(xb, 2 * i), order[e][k++]);
        assert_int_equal(k, 23);
    }
    /* A reset in the middle of an epoch starts a fresh one: every row again. */
    assert_true(tg_loader_next(R, &xb, &yb));
    tg_loader_reset(R);
    int64_t rows = 0;
    while (tg_loader_next(R, &xb, &yb)) rows += xb->shape[0];
    assert_int_equal(rows, 23);
    tg_loader_free(R);
    tg_loader_free(L);
    tg_free(x);
    tg_free(y);
}

static void test_loader_seeded_order(void **state)
{
    tg_tensor *x, *y;
    tagged(64, &x, &y);
    tg_rng r1, r2, r3;
    tg_rng_seed(&r1, 77);
    tg_rng_seed(&r2, 77);
    tg_rng_seed(&r3, 78);
    tg_loader *a = tg_loader_new(x, y, 8, true, false, &r1);
    tg_loader *b = tg_loader_new(x, y, 8, true, false, &r2);
    tg_loader *c = tg_loader_new(x, y, 8, true, false, &r3);
    int64_t oa[2][64], ob[2][64], oc[64], sizes[16];
    for (int e = 0; e < 2; e++) {
        run_epoch(a, oa[e], sizes);
        /* random draws between batches elsewhere do not change the loader's order */
        tg_rng_next(&r2);
        run_epoch(b, ob[e], sizes);
        assert_memory_equal(oa[e], ob[e], sizeof oa[e]);
    }
    assert_memory_not_equal(oa[0], oa[1], sizeof oa[0]);   /* a new order each epoch */
    run_epoch(c, oc, sizes);
    assert_memory_not_equal(oa[0], oc, sizeof oc);          /* another seed, another order */
    tg_loader_free(a);
    tg_loader_free(b);
    tg_loader_free(c);
    tg_free(x);
    tg_free(y);
}

static jmp_buf on_error;
static void jump_handler(const char *msg, void *ud) { longjmp(on_error, 1); }

static void test_loader_misuse(void **state)
{
    tg_tensor *x, *y, *x9, *y9;
    tagged(10, &x, &y);
    tagged(9, &x9, &y9);
    tg_error_handler prev = tg_set_error_handler(jump_handler, NULL);
    if (setjmp(on_error) == 0) {
        tg_loader_new(x, y, 0, true, false, NULL);
        fail_msg("batch_size 0 accepted");
    }
    assert_non_null(strstr(tg_last_error(), "batch_size must be at least 1"));
    if (setjmp(on_error) == 0) {
        tg_loader_new(x, y9, 4, true, false, NULL);
        fail_msg("row mismatch accepted");
    }
    assert_non_null(strstr(tg_last_error(), "x has 10 rows but y has 9"));
    tg_set_error_handler(prev, NULL);
    tg_free(x);
    tg_free(y);
    tg_free(x9);
    tg_free(y9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_raw_and_gz),
        cmocka_unit_test(test_idx_wrong_magic),
        cmocka_unit_test(test_idx_truncated_images),
        cmocka_unit_test(test_idx_truncated_labels),
        cmocka_unit_test(test_idx_corrupt_gzip),
        cmocka_unit_test(test_dataset_count_mismatch),
        cmocka_unit_test(test_dataset_label_out_of_range),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_npy_valid),
        cmocka_unit_test(test_npz_valid),
        cmocka_unit_test(test_npy_malformed_header),
        cmocka_unit_test(test_npy_unsupported_dtype),
        cmocka_unit_test(test_corrupted_inputs_never_crash),
        cmocka_unit_test(test_csv_valid),
        cmocka_unit_test(test_csv_bad_cell),
        cmocka_unit_test(test_csv_byte_order_mark),
        cmocka_unit_test(test_csv_missing_target),
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_subsets),
        cmocka_unit_test(test_mnist_dir),
        cmocka_unit_test(test_mnist_refuses_what_cannot_train),
        cmocka_unit_test(test_fashion_mnist),
        cmocka_unit_test(test_loader_every_index_once),
        cmocka_unit_test(test_loader_contiguous_batches_in_place),
        cmocka_unit_test(test_loader_drop_last),
        cmocka_unit_test(test_loader_starts_next_epoch_by_itself),
        cmocka_unit_test(test_loader_seeded_order),
        cmocka_unit_test(test_loader_misuse),
    };
    return cmocka_run_group_tests(tests, check_tmpdir_setup, check_tmpdir_teardown);
}
