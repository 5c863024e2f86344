/* What every harness shares: the fuzzer's bytes as a file, since tapegrad's loaders take a path
 * exactly as a user calls them. One file per process (libFuzzer runs inputs one after another). */
#ifndef TG_FUZZ_H
#define TG_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

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

/* in[0..n) as a gzip stream into out (cap bytes); its length. For the harnesses of loaders that
 * read .gz files too: the fuzzer then explores the contents behind a valid stream. */
static inline size_t fuzz_gzip(const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    z.next_in = (Bytef *)in, z.avail_in = (uInt)n;
    z.next_out = out, z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    size_t len = z.total_out;
    deflateEnd(&z);
    return len;
}

/* The bytes after the input's first byte, gzip-compressed here when its lowest bit is set (the
 * contents behind a valid stream) or as they are (a damaged or truncated .gz file); NULL for an
 * input too short or too long to compress. */
static inline const uint8_t *fuzz_maybe_gzip(const uint8_t *data, size_t size, size_t *n) {
    static uint8_t packed[1 << 21];
    if (size == 0) return NULL;
    *n = size - 1;
    if (!(data[0] & 1)) return data + 1;
    if (*n > (1 << 20)) return NULL;
    *n = fuzz_gzip(data + 1, *n, packed, sizeof packed);
    return packed;
}

#endif
