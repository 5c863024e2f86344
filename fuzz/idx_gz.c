/* IDX through gzip: the first byte chooses whether the rest is gzip-compressed here (so the
 * fuzzer explores IDX contents behind a valid gzip stream) or written as it is (a damaged or
 * truncated .gz file). */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t n;
    const uint8_t *bytes = fuzz_maybe_gzip(data, size, &n);
    if (!bytes) return 0;
    const char *path = fuzz_file(bytes, n, ".idx.gz");
    tg_tensor *t = NULL;
    if (tg_idx_load_images(path, &t, NULL, NULL) == TG_OK) tg_free(t);
    t = NULL;
    if (tg_idx_load_labels(path, &t) == TG_OK) tg_free(t);
    return 0;
}
