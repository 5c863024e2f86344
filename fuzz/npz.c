/* A NumPy .npz archive (zip, stored or deflated members), asked for the member the seeds hold. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file(data, size, ".npz");
    tg_tensor *t = NULL;
    if (tg_npz_load(path, "x", &t) == TG_OK) tg_free(t);
    return 0;
}
