/* Load time of safetensors files with many entries or metadata keys (issue 17: 80,000 entries
 * took 30 s when every name was compared with every other). Prints ms per load. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "tapegrad.h"
#include "bench/bench_util.h"

int main(void)
{
    const int n = 80000;
    const char *path = "/tmp/tg_bench_many.safetensors";
    tg_param_list l = {0};
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer.%d.weight", i);
        tg_param_list_add(&l, name, tg_full(TG_F32, TG_SHAPE(1), i));
    }
    double t0 = bench_wall();
    if (tg_safetensors_save(path, &l, 0, NULL, NULL) != TG_OK) return 1;
    double t1 = bench_wall();
    if (tg_safetensors_load(path, &l) != TG_OK) return 1;
    double t2 = bench_wall();
    printf("%d entries: save %.1f ms, load %.1f ms\n", n, 1e3 * (t1 - t0), 1e3 * (t2 - t1));

    char **keys = malloc(n * sizeof *keys), **vals = malloc(n * sizeof *vals);
    for (int i = 0; i < n; i++) {
        keys[i] = malloc(24), vals[i] = malloc(24);
        snprintf(keys[i], 24, "key.%d", i);
        snprintf(vals[i], 24, "%d", i);
    }
    tg_param_list none = {0};
    t0 = bench_wall();
    if (tg_safetensors_save(path, &none, n, (const char *const *)keys,
                            (const char *const *)vals) != TG_OK)
        return 1;
    t1 = bench_wall();
    if (tg_safetensors_load(path, &none) != TG_OK) return 1;
    t2 = bench_wall();
    printf("%d metadata keys: save %.1f ms, load %.1f ms\n", n, 1e3 * (t1 - t0), 1e3 * (t2 - t1));
    for (int i = 0; i < n; i++) free(keys[i]), free(vals[i]), tg_free(l.tensors[i]);
    free(keys), free(vals);
    tg_param_list_free(&l);
    remove(path);
    return 0;
}
