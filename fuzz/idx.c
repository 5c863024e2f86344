/* IDX images and labels, plain: the bytes as an IDX file, loaded both ways. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, ".idx");
    tg_tensor *t = NULL;
    int rows, cols;
    if (tg_idx_load_images(path, &t, &rows, &cols) == TG_OK) tg_free(t);
    t = NULL;
    if (tg_idx_load_labels(path, &t) == TG_OK) tg_free(t);
    return 0;
}
