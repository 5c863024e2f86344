/* tapegrad-ls: lists the tensors of safetensors, .npy/.npz and IDX files (name, dtype, shape),
 * as the file stores them: nothing is converted, data is not read beyond the headers (IDX and
 * safetensors headers are validated as a load would validate them).
 *   tapegrad-ls FILE...     exit 0; 1 if a file cannot be read; 2 on a usage error */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <zip.h>
#include <zlib.h>
#include "tapegrad.h"
#include "nn/internal.h"

static void print_row(const char *name, const char *dtype, int ndim, const int64_t *shape)
{
    printf("  %-40s %-6s [", name, dtype);
    for (int d = 0; d < ndim; d++) printf(d ? ", %lld" : "%lld", (long long)shape[d]);
    printf("]\n");
}

static int list_safetensors(const char *path)
{
    tg__st_file f;
    if (tg__st_open(path, &f) != TG_OK) {
        fprintf(stderr, "tapegrad-ls: %s\n", tg_status_message());
        return 1;
    }
    printf("%s: safetensors, %d tensor%s, %d metadata key%s\n", path, f.n, f.n == 1 ? "" : "s",
           f.n_meta, f.n_meta == 1 ? "" : "s");
    for (int i = 0; i < f.n; i++)
        print_row(f.entries[i].name, f.entries[i].file_dtype, f.entries[i].ndim,
                  f.entries[i].shape);
    for (int i = 0; i < f.n_meta; i++) printf("  __metadata__ %s = %s\n", f.meta_keys[i],
                                              f.meta_values[i]);
    tg__st_close(&f);
    return 0;
}

/* ---- .npy headers: "\x93NUMPY", version, header length, a Python dict literal ------------- */
typedef struct {
    char descr[16];
    int ndim;
    int64_t shape[16];
} npy_info;

/* The text after 'key': (quoted string or parenthesised tuple), or NULL. */
static const char *dict_value(const char *dict, const char *key)
{
    const char *k = strstr(dict, key);
    if (!k) return NULL;
    k = strchr(k + strlen(key), ':');
    if (!k) return NULL;
    k++;
    while (*k == ' ') k++;
    return k;
}

static bool parse_npy_dict(const char *dict, npy_info *info)
{
    const char *d = dict_value(dict, "'descr'"), *s = dict_value(dict, "'shape'");
    if (!d || !s || (*d != '\'' && *d != '"') || *s != '(') return false;
    size_t n = strcspn(d + 1, "'\"");
    if (n >= sizeof info->descr) return false;
    memcpy(info->descr, d + 1, n);
    info->descr[n] = 0;
    info->ndim = 0;
    for (s++; *s && *s != ')';) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s) {
            s++;
            continue;
        }
        if (info->ndim == 16 || v < 0) return false;
        info->shape[info->ndim++] = v;
        s = end;
    }
    return *s == ')';
}

/* Reads an .npy header through read(ctx, buf, n) (bytes read, < n at the end). */
static bool read_npy_header(int64_t (*rd)(void *, void *, size_t), void *ctx, npy_info *info)
{
    unsigned char pre[12];
    if (rd(ctx, pre, 10) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) return false;
    size_t len = pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) {
        if (rd(ctx, pre + 10, 2) != 2) return false;
        len |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    static char dict[65536]; /* numpy writes a few hundred bytes; more is not an .npy header */
    if (len >= sizeof dict || rd(ctx, dict, len) != (int64_t)len) return false;
    dict[len] = 0;
    return parse_npy_dict(dict, info);
}

static int64_t gz_read(void *ctx, void *buf, size_t n) { return gzread(ctx, buf, (unsigned)n); }
static int64_t zip_read(void *ctx, void *buf, size_t n) { return zip_fread(ctx, buf, n); }

static int list_npy(const char *path, gzFile gz)
{
    npy_info info;
    if (!read_npy_header(gz_read, gz, &info)) {
        fprintf(stderr, "tapegrad-ls: %s: not a valid .npy header\n", path);
        return 1;
    }
    printf("%s: npy\n", path);
    print_row("(array)", info.descr, info.ndim, info.shape);
    return 0;
}

static int list_npz(const char *path)
{
    int err = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY, &err);
    if (!z) {
        fprintf(stderr, "tapegrad-ls: %s: cannot open as a zip archive (error %d)\n", path, err);
        return 1;
    }
    zip_int64_t n = zip_get_num_entries(z, 0);
    printf("%s: npz, %lld member%s\n", path, (long long)n, n == 1 ? "" : "s");
    int rc = 0;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(z, (zip_uint64_t)i, 0);
        zip_file_t *zf = zip_fopen_index(z, (zip_uint64_t)i, 0);
        npy_info info;
        if (!name || !zf || !read_npy_header(zip_read, zf, &info)) {
            fprintf(stderr, "tapegrad-ls: %s: member %s is not a valid .npy file\n", path,
                    name ? name : "?");
            rc = 1;
        } else {
            char shown[256];
            snprintf(shown, sizeof shown, "%s", name);
            size_t len = strlen(shown);
            if (len > 4 && strcmp(shown + len - 4, ".npy") == 0) shown[len - 4] = 0;
            print_row(shown, info.descr, info.ndim, info.shape);
        }
        if (zf) zip_fclose(zf);
    }
    zip_close(z);
    return rc;
}

/* ---- IDX: 0x00 0x00, a type code, the number of dimensions, then big-endian u32 sizes ------ */
static const char *idx_type(int code)
{
    switch (code) {
    case 0x08: return "u8";
    case 0x09: return "i8";
    case 0x0b: return "i16";
    case 0x0c: return "i32";
    case 0x0d: return "f32";
    case 0x0e: return "f64";
    }
    return NULL;
}

static int list_idx(const char *path, gzFile gz, const unsigned char *magic)
{
    const char *type = idx_type(magic[2]);
    int ndim = magic[3];
    int64_t shape[256];
    for (int d = 0; d < ndim; d++) {
        unsigned char b[4];
        if (gzread(gz, b, 4) != 4) {
            fprintf(stderr, "tapegrad-ls: %s: truncated IDX header\n", path);
            return 1;
        }
        shape[d] = (int64_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3];
    }
    printf("%s: IDX\n", path);
    print_row("(array)", type, ndim, shape);
    return 0;
}

static int list_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    unsigned char head[16] = {0};
    size_t got = fp ? fread(head, 1, sizeof head, fp) : 0;
    if (!fp) {
        fprintf(stderr, "tapegrad-ls: %s: cannot open\n", path);
        return 1;
    }
    fclose(fp);
    if (got >= 9 && head[8] == '{') return list_safetensors(path);
    if (got >= 4 && memcmp(head, "PK\x03\x04", 4) == 0) return list_npz(path);
    gzFile gz = gzopen(path, "rb"); /* plain or gzip-compressed */
    unsigned char magic[6];
    int rc = 1;
    int n = gz ? gzread(gz, magic, 6) : -1;
    if (n >= 4 && magic[0] == 0 && magic[1] == 0 && idx_type(magic[2])) {
        gzrewind(gz);
        gzread(gz, magic, 4);
        rc = list_idx(path, gz, magic);
    } else if (n == 6 && memcmp(magic, "\x93NUMPY", 6) == 0) {
        gzrewind(gz);
        rc = list_npy(path, gz);
    } else {
        fprintf(stderr, "tapegrad-ls: %s: not a safetensors, npy, npz or IDX file\n", path);
    }
    if (gz) gzclose(gz);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: tapegrad-ls FILE...\n"
                "Lists the tensors of safetensors, .npy, .npz and IDX (.gz) files: name, dtype "
                "and shape as stored.\n");
        return argc < 2 ? 2 : 0;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) rc |= list_file(argv[i]);
    return rc;
}
