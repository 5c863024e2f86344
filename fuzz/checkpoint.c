/* A checkpoint (safetensors with optimizer state and generator metadata) loaded into a 3-2 linear
 * model with SGD momentum and a generator, as a resuming program would; then once more into the
 * model alone (the optimizer entries ignored). */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static tg_module *model;
    static tg_optimizer *opt;
    static tg_rng rng;
    if (!model) {
        model = tg_linear_new(3, 2, true, (tg_init){0}, NULL);
        tg_param_list ps = {0};
        tg_module_parameters(model, &ps);
        opt = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9});
        tg_param_list_free(&ps);
    }
    const char *path = fuzz_file(data, size, ".ckpt");
    (void)tg_checkpoint_load(path, model, opt, &rng);
    (void)tg_checkpoint_load(path, model, NULL, NULL);
    return 0;
}
