/* What every harness shares: the fuzzer's bytes as a file, since tapegrad's loaders take a path
 * exactly as a user calls them. One file per process (libFuzzer runs inputs one after another). */
#ifndef TG_FUZZ_H
#define TG_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tapegrad.h"

static char fuzz_path[128];
static void fuzz_remove_file(void) { remove(fuzz_path); }

/* Writes data to /tmp/tg_fuzz_<pid><suffix> and returns that path (removed at exit). */
static inline const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix) {
    char *path = fuzz_path;
    if (!path[0]) atexit(fuzz_remove_file);
    snprintf(path, sizeof fuzz_path, "/tmp/tg_fuzz_%ld%s", (long)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

#endif
