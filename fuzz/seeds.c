/* Writes the seed corpora fuzz/corpus/<target>/ (`make fuzz-seeds`): small valid files of every
 * format, made with tapegrad's own writers where it has one, so the fuzzers start from inputs
 * that get past the first checks. Run from the repository root. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>
#include <zlib.h>

#include "tapegrad.h"

static const char *seed_path(const char *target, const char *name) {
    static char p[256];
    snprintf(p, sizeof p, "fuzz/corpus/%s", target);
    mkdir("fuzz/corpus", 0777), mkdir(p, 0777);
    snprintf(p, sizeof p, "fuzz/corpus/%s/%s", target, name);
    return p;
}

static void put(const char *target, const char *name, const void *data, size_t n) {
    FILE *f = fopen(seed_path(target, name), "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) perror(name), exit(1);
}

static void be32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* IDX: 2 images of 3x4, and 3 labels. */
static size_t idx_images(uint8_t *b) {
    be32(b, 0x803), be32(b + 4, 2), be32(b + 8, 3), be32(b + 12, 4);
    for (int i = 0; i < 24; i++) b[16 + i] = (uint8_t)(i * 11);
    return 40;
}
static size_t idx_labels(uint8_t *b) {
    be32(b, 0x801), be32(b + 4, 3);
    b[8] = 0, b[9] = 1, b[10] = 9;
    return 11;
}

static void idx_seeds(void) {
    uint8_t b[64], g[256];
    put("idx", "images", b, idx_images(b));
    put("idx", "labels", b, idx_labels(b));
    g[0] = 1; /* the harness compresses the rest */
    size_t n = idx_images(b);
    memcpy(g + 1, b, n);
    put("idx_gz", "images_to_compress", g, n + 1);
    n = idx_labels(b);
    uLongf len = sizeof g - 1;
    g[0] = 0; /* the rest is a .gz file as it is */
    z_stream z = {0};
    deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = b, z.avail_in = (uInt)n, z.next_out = g + 1, z.avail_out = (uInt)len;
    deflate(&z, Z_FINISH);
    put("idx_gz", "labels.gz", g, z.total_out + 1);
    deflateEnd(&z);
}

/* .npy version 1.0: magic, header length, the dict padded to 64 bytes, then the data. */
static size_t npy(uint8_t *b, const char *descr, const char *shape, const void *data, size_t n) {
    char dict[128];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                       descr, shape);
    int hlen = (10 + len + 1 + 63) / 64 * 64 - 10;
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (uint8_t)hlen, b[9] = (uint8_t)(hlen >> 8);
    memset(b + 10, ' ', (size_t)hlen);
    memcpy(b + 10, dict, (size_t)len);
    b[10 + hlen - 1] = '\n';
    memcpy(b + 10 + hlen, data, n);
    return 10 + (size_t)hlen + n;
}

static void npy_seeds(void) {
    uint8_t b[512];
    float f[6] = {0, 1, 2, 3, 4.5f, -6};
    int64_t i8[3] = {1, -2, 3};
    uint8_t u1[4] = {0, 127, 128, 255};
    double d[2] = {0.25, -1e300};
    put("npy", "f4_2x3", b, npy(b, "<f4", "(2, 3)", f, sizeof f));
    put("npy", "i8_3", b, npy(b, "<i8", "(3,)", i8, sizeof i8));
    put("npy", "u1_2x2", b, npy(b, "|u1", "(2, 2)", u1, sizeof u1));
    put("npy", "f8_scalar", b, npy(b, "<f8", "()", d, sizeof d[0]));

    for (int deflated = 0; deflated <= 1; deflated++) {
        const char *path = seed_path("npz", deflated ? "deflated.npz" : "stored.npz");
        int err;
        zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
        size_t n = npy(b, "<f8", "(2,)", d, sizeof d);
        zip_source_t *s = zip_source_buffer(z, b, n, 0);
        zip_int64_t k = zip_file_add(z, "x.npy", s, ZIP_FL_OVERWRITE);
        zip_set_file_compression(z, (zip_uint64_t)k, deflated ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
        if (zip_close(z) != 0) fprintf(stderr, "%s: %s\n", path, zip_strerror(z)), exit(1);
    }
}

/* CIFAR-10: records of a label byte and 3072 pixel bytes, after the harness's mode byte. */
enum { CIFAR_RECORD = 3073 };
static size_t cifar_records(uint8_t *b, int n) {
    for (int r = 0; r < n; r++) {
        b[r * CIFAR_RECORD] = (uint8_t)(3 + 6 * r); /* labels 3, 9 */
        for (int k = 1; k < CIFAR_RECORD; k++) b[r * CIFAR_RECORD + k] = (uint8_t)(k * 7 + r);
    }
    return (size_t)n * CIFAR_RECORD;
}

static void cifar10_seeds(void) {
    static uint8_t b[1 + 2 * CIFAR_RECORD], g[1 + 2 * CIFAR_RECORD + 256];
    b[0] = 0; /* one file, as it is */
    put("cifar10", "one_record", b, 1 + cifar_records(b + 1, 1));
    b[0] = 1; /* the harness compresses the rest */
    put("cifar10", "two_records_to_compress", b, 1 + cifar_records(b + 1, 2));
    b[0] = 2; /* a folder of six batches, each this file */
    put("cifar10", "folder", b, 1 + cifar_records(b + 1, 1));
    size_t n = cifar_records(b + 1, 2);
    g[0] = 0; /* a .gz file as it is */
    z_stream z = {0};
    deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    z.next_in = b + 1, z.avail_in = (uInt)n, z.next_out = g + 1, z.avail_out = sizeof g - 1;
    deflate(&z, Z_FINISH);
    put("cifar10", "two_records.gz", g, z.total_out + 1);
    deflateEnd(&z);
}

static void csv_seeds(void) {
    /* first byte: the harness's options (delimiter, target, dtypes) */
    static const char a[] = "\x00y,a,b\n1,2,3\n0,4.5,-6e2\n\n";
    static const char b[] = "\x21\"y\";\"a\"\n 1 ; 2.5\n2;3\n";
    static const char c[] = "\xb0x,y\n0.5,1\n1.5,0\n";
    put("csv", "comma", a, sizeof a - 1);
    put("csv", "semicolon_int", b, sizeof b - 1);
    put("csv", "named_target", c, sizeof c - 1);
    static const char m[] = "epoch,train_loss,valid_loss,valid_acc,seconds\n1,0.5,,nan,1.25\n";
    put("metrics_csv", "gaps", m, sizeof m - 1);
}

static void tapegrad_writer_seeds(void) {
    tg_param_list l = {0};
    tg_tensor *w = tg_full(TG_F32, TG_SHAPE(2, 3), 0.5), *bias = tg_full(TG_F64, TG_SHAPE(3), -1);
    tg_param_list_add(&l, "w", w), tg_param_list_add(&l, "b", bias);
    const char *keys[] = {"note"}, *values[] = {"seed \"quoted\" \\u00e9"};
    tg_status st = tg_safetensors_save(seed_path("safetensors", "w_b"), &l, 0, NULL, NULL);
    if (st == TG_OK)
        st = tg_safetensors_save(seed_path("safetensors", "w_b_meta"), &l, 1, keys, values);

    tg_module *model = tg_linear_new(3, 2, true, (tg_init){0}, NULL);
    tg_param_list ps = {0};
    tg_module_parameters(model, &ps);
    tg_optimizer *opt = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9});
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(4, 3));
    tg_backward(tg_sum(tg_module_forward(model, x))); /* one step: momentum buffers exist */
    tg_optimizer_step(opt);
    tg_tape_reset();
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    if (st == TG_OK) st = tg_checkpoint_save(seed_path("checkpoint", "sgd_rng"), model, opt, &rng);
    if (st == TG_OK)
        st = tg_checkpoint_save(seed_path("checkpoint", "model_only"), model, NULL, NULL);
    /* the harness's loader (10 rows, batches of 4, shuffled), one batch into its epoch */
    tg_tensor *lx = tg_zeros(TG_F32, TG_SHAPE(10, 3)), *ly = tg_zeros(TG_I32, TG_SHAPE(10));
    tg_loader *loader = tg_loader_new(lx, ly, 4, true, false, &rng);
    tg_tensor *xb, *yb;
    tg_loader_next(loader, &xb, &yb);
    tg_checkpoint_parts parts = {.model = model, .optimizer = opt, .rng = &rng, .loader = loader};
    if (st == TG_OK)
        st = tg_checkpoint_save_parts(seed_path("checkpoint", "sgd_rng_loader"), &parts);
    tg_loader_free(loader), tg_free(lx), tg_free(ly);

    static const char *const columns[] = {"epoch", "train_loss", "valid_loss", "valid_acc"};
    tg_metrics_log *log = NULL;
    if (st == TG_OK)
        st = tg_metrics_log_open(&log, seed_path("metrics_csv", "written"), NULL, 4, columns);
    for (int e = 1; e <= 3 && st == TG_OK; e++)
        st = tg_metrics_log_write(log, (double[]){e, 1.0 / e, 1.5 / e, e < 3 ? 0.3 * e : NAN});
    if (st == TG_OK) st = tg_metrics_log_close(log);
    if (st != TG_OK) fprintf(stderr, "seeds: %s\n", tg_status_message()), exit(1);
    tg_free(x), tg_free(w), tg_free(bias);
    tg_param_list_free(&l), tg_param_list_free(&ps);
    tg_optimizer_free(opt), tg_module_free(model);
}

int main(void) {
    idx_seeds();
    npy_seeds();
    csv_seeds();
    cifar10_seeds();
    tapegrad_writer_seeds();
    return 0;
}
