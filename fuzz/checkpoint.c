/* A checkpoint (safetensors with optimizer state, generator and loader metadata) loaded as a
 * resuming program would: into a 3-2 linear model with SGD momentum, a generator and a loader
 * of 10 rows in batches of 4, whose restored epoch is then drawn to its end; then into the
 * model, optimizer and generator (the loader entries ignored); then into the model alone (the
 * optimizer entries ignored too). */
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static tg_module *model;
    static tg_optimizer *opt;
    static tg_rng rng;
    static tg_loader *loader;
    if (!model) {
        model = tg_linear_new(3, 2, true, (tg_init){0}, NULL);
        tg_param_list ps = {0};
        tg_module_parameters(model, &ps);
        opt = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9});
        tg_param_list_free(&ps);
        loader = tg_loader_new(tg_zeros(TG_F32, TG_SHAPE(10, 3)), tg_zeros(TG_I32, TG_SHAPE(10)),
                               4, true, false, &rng);
    }
    const char *path = fuzz_file(data, size, ".ckpt");
    tg_checkpoint_parts all = {.model = model, .optimizer = opt, .rng = &rng, .loader = loader};
    if (tg_checkpoint_load_parts(path, &all) == TG_OK) {
        tg_tensor *xb, *yb;
        while (tg_loader_next(loader, &xb, &yb)) {}
    }
    (void)tg_checkpoint_load(path, model, opt, &rng);
    (void)tg_checkpoint_load(path, model, NULL, NULL);
    return 0;
}
