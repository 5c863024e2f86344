/* A numeric CSV; the first byte picks the options (delimiter, target column, dtypes), the rest is
 * the file. */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t o = data[0];
    static const char delims[] = {',', ';', '\t', ' '};
    tg_csv_opts opts = {.delimiter = delims[o & 3], .target_index = (o >> 2 & 3) - 2,
                        .x_dtype = o & 16 ? TG_F64 : TG_F32,
                        .y_dtype = o & 32 ? TG_I32 : o & 64 ? TG_F64 : TG_F32,
                        .target = o & 128 ? "y" : NULL};
    tg_tensor *x = NULL, *y = NULL;
    const char *path = fuzz_file(data + 1, size - 1, ".csv");
    if (tg_csv_load(path, &opts, &x, &y) == TG_OK) tg_free(x), tg_free(y);
    x = NULL;
    if (tg_csv_load(path, &opts, &x, NULL) == TG_OK) tg_free(x);
    return 0;
}
