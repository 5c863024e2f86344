/* CIFAR-10's binary batches. The first byte picks the way in: bit 0, the rest is gzip-compressed
 * here (records behind a valid stream; else the file as it is, plain or a damaged .gz); bit 1,
 * tg_cifar10_load on a folder whose six batches are all this file (five read as one training
 * set, one as the test set; else tg_cifar10_load_files on the file alone). */
#include <sys/stat.h>
#include "fuzz/fuzz.h"

static char batch_dir[160];
static const char *const batch_names[6] = {"data_batch_1.bin", "data_batch_2.bin",
                                           "data_batch_3.bin", "data_batch_4.bin",
                                           "data_batch_5.bin", "test_batch.bin"};

static void remove_batch_dir(void) {
    char link[256];
    for (int i = 0; i < 6; i++) {
        snprintf(link, sizeof link, "%s/%s", batch_dir, batch_names[i]);
        remove(link);
    }
    rmdir(batch_dir);
}

/* /tmp/tg_fuzz_<pid>.cifar10/ with the six batch names linked to path (made once). */
static const char *batch_dir_of(const char *path) {
    if (batch_dir[0]) return batch_dir;
    snprintf(batch_dir, sizeof batch_dir, "/tmp/tg_fuzz_%ld.cifar10", (long)getpid());
    atexit(remove_batch_dir);
    char link[256];
    if (mkdir(batch_dir, 0700) != 0) perror(batch_dir), abort();
    for (int i = 0; i < 6; i++) {
        snprintf(link, sizeof link, "%s/%s", batch_dir, batch_names[i]);
        if (symlink(path, link) != 0) perror(link), abort();
    }
    return batch_dir;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n;
    const uint8_t *bytes = fuzz_maybe_gzip(data, size, &n);
    if (!bytes) return 0;
    const char *path = fuzz_file(bytes, n, ".bin");
    tg_dataset train, test;
    if (data[0] & 2) {
        if (tg_cifar10_load(batch_dir_of(path), &train, &test) == TG_OK)
            tg_dataset_free(&train), tg_dataset_free(&test);
    } else if (tg_cifar10_load_files(1, &path, &train) == TG_OK) {
        tg_dataset_free(&train);
    }
    return 0;
}
