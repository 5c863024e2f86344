/* A NumPy .npy file. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tg_tensor *t = NULL;
    if (tg_npy_load(fuzz_file(data, size, ".npy"), &t) == TG_OK) tg_free(t);
    return 0;
}
