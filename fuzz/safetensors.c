/* A safetensors file, loaded strictly into two tensors (the seeds hold them: "w" F32 [2, 3] and
 * "b" F64 [3]). */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static tg_param_list l;
    if (!l.n) {
        tg_param_list_add(&l, "w", tg_zeros(TG_F32, TG_SHAPE(2, 3)));
        tg_param_list_add(&l, "b", tg_zeros(TG_F64, TG_SHAPE(3)));
    }
    (void)tg_safetensors_load(fuzz_file(data, size, ".safetensors"), &l);
    return 0;
}
