/* IDX through gzip: the first byte chooses whether the rest is gzip-compressed here (so the
 * fuzzer explores IDX contents behind a valid gzip stream) or written as it is (a damaged or
 * truncated .gz file). */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    static uint8_t packed[1 << 21];
    const uint8_t *bytes = data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        if (n > (1 << 20)) return 0;
        n = fuzz_gzip(data + 1, n, packed, sizeof packed);
        bytes = packed;
    }
    const char *path = fuzz_file(bytes, n, ".idx.gz");
    tg_tensor *t = NULL;
    if (tg_idx_load_images(path, &t, NULL, NULL) == TG_OK) tg_free(t);
    t = NULL;
    if (tg_idx_load_labels(path, &t) == TG_OK) tg_free(t);
    return 0;
}
