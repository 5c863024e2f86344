/* safetensors files: an atomic writer and a validating reader with a small JSON parser for
 * exactly the header's subset (one object of tensor entries and an optional "__metadata__"
 * object of strings). Nothing is trusted: every length and offset is checked against the file
 * size before use. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "autograd/internal.h"
#include "nn/internal.h"

/* The reference implementation's limit; a larger "header" means a corrupt length field. */
#define MAX_HEADER_BYTES 100000000u

/* Every comparison of two tensor or metadata names, counted so a test can check that loading
 * and saving stay O(n log n) in the number of entries (relaxed: a tally, not a synchronisation). */
static _Atomic uint64_t name_compares;

uint64_t tg__st_name_compares(void)
{
    return atomic_load_explicit(&name_compares, memory_order_relaxed);
}

static int name_cmp(const char *a, const char *b)
{
    atomic_fetch_add_explicit(&name_compares, 1, memory_order_relaxed);
    return strcmp(a, b);
}

/* ---- names sorted for lookup ------------------------------------------------------------------
 * Duplicate checks and lookups go through a sorted copy of the names: O(n log n) comparisons in
 * the worst case whatever the header holds (glibc's qsort is a merge sort), where a scan per name
 * costs n²/2 and a fixed hash can be flooded by crafted names. */
static int by_name(const void *a, const void *b)
{
    return name_cmp(((const tg__st_named *)a)->name, ((const tg__st_named *)b)->name);
}

/* Sorts v by name; returns a name that appears twice, or NULL. */
static const char *sort_names(tg__st_named *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_name);
    for (int i = 1; i < n; i++)
        if (name_cmp(v[i - 1].name, v[i].name) == 0) return v[i].name;
    return NULL;
}

/* The index stored with name in v (sorted), or -1. */
static int find_name(const tg__st_named *v, int n, const char *name)
{
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, c = name_cmp(v[mid].name, name);
        if (c == 0) return v[mid].index;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

static tg__st_named *names_of(const char *const *names, int n)
{
    tg__st_named *v = tg__xrealloc(NULL, (size_t)(n ? n : 1) * sizeof *v);
    for (int i = 0; i < n; i++) v[i] = (tg__st_named){names[i], i};
    return v;
}

/* Room for one more element of an array of n: the size doubles at powers of two, so n appends
 * copy O(n) bytes in all. */
static void *grow(void *p, int n, size_t size)
{
    if (n & (n - 1)) return p;
    return tg__xrealloc(p, (size_t)(n ? 2 * n : 1) * size);
}

static bool host_little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static const char *file_dtype_name(tg_dtype d)
{
    switch (d) {
    case TG_F32: return "F32";
    case TG_F64: return "F64";
    case TG_I32: return "I32";
    case TG_I64: return "I64";
    }
    return "?";
}

/* The file dtypes that load, the dtype of the tensor each loads into, and their size in the
 * file. F16 and BF16 widen to F32 exactly: every half and bfloat16 value is a float32 value. */
static const struct {
    const char *name;
    tg_dtype dtype;
    size_t size;
} file_dtypes[] = {
    {"F32", TG_F32, 4}, {"F64", TG_F64, 8}, {"I32", TG_I32, 4}, {"I64", TG_I64, 8},
    {"F16", TG_F32, 2}, {"BF16", TG_F32, 2},
};

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, bits;
    if (exp == 0) { /* zero and subnormals: mant · 2^-24, exact in float */
        float mag = (float)mant * 0x1p-24f;
        return sign ? -mag : mag;
    }
    if (exp == 31) bits = sign | 0x7f800000u | mant << 13; /* inf, NaN */
    else bits = sign | (exp + 127 - 15) << 23 | mant << 13;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float bfloat16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Copies n elements of size esize, reversing bytes on a big-endian host (files are LE). */
static void copy_le(void *dst, const void *src, size_t n, size_t esize)
{
    if (host_little_endian()) {
        if (n) memcpy(dst, src, n * esize);
        return;
    }
    const unsigned char *s = src;
    unsigned char *d = dst;
    for (size_t i = 0; i < n; i++)
        for (size_t b = 0; b < esize; b++) d[i * esize + b] = s[i * esize + esize - 1 - b];
}

/* ---- writer --------------------------------------------------------------------------------- */
typedef struct {
    char *s;
    size_t len, cap;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = 2 * (b->len + n + 1) + 256;
        b->s = tg__xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_fmt(strbuf *b, const char *fmt, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string literal; bytes >= 0x80 pass through (UTF-8 names stay UTF-8). */
static void sb_json_string(strbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)&c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static tg_status write_all(FILE *fp, const void *p, size_t n, const char *tmp)
{
    if (n && fwrite(p, 1, n, fp) != n)
        return tg_status_set(TG_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    return TG_OK;
}

/* The data of one tensor in little-endian order, in chunks so big-endian hosts need no copy of
 * the whole tensor. */
static tg_status write_tensor(FILE *fp, const tg_tensor *t, const char *tmp)
{
    size_t es = tg_dtype_size(t->dtype), n = (size_t)t->numel;
    if (host_little_endian()) return write_all(fp, t->data, n * es, tmp);
    unsigned char chunk[4096];
    size_t per = sizeof chunk / es;
    for (size_t i = 0; i < n; i += per) {
        size_t k = n - i < per ? n - i : per;
        copy_le(chunk, (const unsigned char *)t->data + i * es, k, es);
        tg_status st = write_all(fp, chunk, k * es, tmp);
        if (st != TG_OK) return st;
    }
    return TG_OK;
}

/* fsync of the folder makes the rename itself durable; failure there is not fatal (some
 * filesystems refuse fsync on directories). */
static void sync_parent_dir(const char *path)
{
    char *copy = tg__xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    tg__free(copy);
}

tg_status tg__st_write(const char *path, int n, const char *const *names,
                       const tg_tensor *const *tensors, int n_meta,
                       const char *const *meta_keys, const char *const *meta_values)
{
    if (!path || !*path) return tg_status_set(TG_ERR_VALUE, "safetensors: empty file name");
    for (int i = 0; i < n; i++) {
        if (!names[i] || !*names[i] || strcmp(names[i], "__metadata__") == 0)
            return tg_status_set(TG_ERR_VALUE, "%s: tensor %d has an empty or reserved name",
                                 path, i);
        tg_check_live(tensors[i], "tg_safetensors_save");
    }
    for (int i = 0; i < n_meta; i++)
        if (!meta_keys[i] || !meta_values[i])
            return tg_status_set(TG_ERR_VALUE, "%s: metadata entry %d is NULL", path, i);
    tg__st_named *sorted = names_of(names, n);
    const char *twice = sort_names(sorted, n);
    tg__free(sorted);
    if (twice) return tg_status_set(TG_ERR_VALUE, "%s: tensor name '%s' appears twice", path, twice);
    sorted = names_of(meta_keys, n_meta);
    twice = sort_names(sorted, n_meta);
    tg__free(sorted);
    if (twice)
        return tg_status_set(TG_ERR_VALUE, "%s: metadata key '%s' appears twice", path, twice);

    /* Data order: 8-byte dtypes first, then 4-byte ones, so every tensor is aligned to its
     * element size when the header is padded to a multiple of 8 (what the reference writer
     * does too). */
    int *order = tg__xrealloc(NULL, (size_t)(n ? n : 1) * sizeof *order), k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            if ((tg_dtype_size(tensors[i]->dtype) == 8) == (pass == 0)) order[k++] = i;

    strbuf h = {0};
    sb_str(&h, "{");
    bool comma = false;
    if (n_meta > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_string(&h, meta_keys[i]);
            sb_str(&h, ":");
            sb_json_string(&h, meta_values[i]);
        }
        sb_str(&h, "}");
        comma = true;
    }
    uint64_t offset = 0;
    for (int j = 0; j < n; j++) {
        const tg_tensor *t = tensors[order[j]];
        if (comma) sb_str(&h, ",");
        comma = true;
        sb_json_string(&h, names[order[j]]);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, file_dtype_name(t->dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) sb_fmt(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        uint64_t bytes = (uint64_t)t->numel * tg_dtype_size(t->dtype);
        sb_fmt(&h, "],\"data_offsets\":[%lld", (long long)offset);
        sb_fmt(&h, ",%lld]}", (long long)(offset + bytes));
        offset += bytes;
    }
    sb_str(&h, "}");
    while (h.len % 8) sb_str(&h, " ");

    size_t tlen = strlen(path) + 5;
    char *tmp = tg__xrealloc(NULL, tlen);
    snprintf(tmp, tlen, "%s.tmp", path);
    tg_status st = TG_OK;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        st = tg_status_set(TG_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp,
                           strerror(errno));
        goto done;
    }
    unsigned char len_le[8];
    for (int b = 0; b < 8; b++) len_le[b] = (unsigned char)((uint64_t)h.len >> (8 * b));
    st = write_all(fp, len_le, 8, tmp);
    if (st == TG_OK) st = write_all(fp, h.s, h.len, tmp);
    for (int j = 0; j < n && st == TG_OK; j++) st = write_tensor(fp, tensors[order[j]], tmp);
    if (st == TG_OK && (fflush(fp) != 0 || fsync(fileno(fp)) != 0))
        st = tg_status_set(TG_ERR_IO, "%s: flush failed: %s", tmp, strerror(errno));
    if (fclose(fp) != 0 && st == TG_OK)
        st = tg_status_set(TG_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (st == TG_OK && rename(tmp, path) != 0)
        st = tg_status_set(TG_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp,
                           strerror(errno));
    if (st != TG_OK) remove(tmp);
    else sync_parent_dir(path);
done:
    tg__free(tmp);
    tg__free(h.s);
    tg__free(order);
    return st;
}

/* ---- JSON subset parser ---------------------------------------------------------------------- */
typedef struct {
    const char *s;        /* header text (not NUL-terminated) */
    size_t len, pos;
    const char *path;
    bool failed;
} parser;

static bool perr(parser *p, const char *what)
{
    if (!p->failed)
        tg_status_set(TG_ERR_FORMAT, "%s: malformed safetensors header at byte %zu of the "
                      "header: %s", p->path, p->pos, what);
    p->failed = true;
    return false;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static bool expect(parser *p, char c)
{
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != c) {
        char what[32];
        snprintf(what, sizeof what, "expected '%c'", c);
        return perr(p, what);
    }
    p->pos++;
    return true;
}

/* Consumes c (after whitespace) if it is next. */
static bool accept(parser *p, char c)
{
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == c) {
        p->pos++;
        return true;
    }
    return false;
}

static int hex4(parser *p)
{
    if (p->len - p->pos < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p->s[p->pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    return v;
}

static void put_utf8(strbuf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (char)cp; n = 1; }
    else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3f)); n = 2;
    }
    else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)); n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); u[3] = (char)(0x80 | (cp & 0x3f)); n = 4;
    }
    sb_put(b, u, n);
}

/* A string literal -> UTF-8 from tg__xrealloc (NULL on error). NUL characters are refused: names are
 * C strings. */
static char *parse_string(parser *p)
{
    if (!expect(p, '"')) return NULL;
    strbuf b = {0};
    sb_put(&b, "", 0);
    for (;;) {
        if (p->pos >= p->len) { perr(p, "unterminated string"); break; }
        unsigned char c = (unsigned char)p->s[p->pos++];
        if (c == '"') return b.s;
        if (c < 0x20) { p->pos--; perr(p, "control character in string"); break; }
        if (c != '\\') { sb_put(&b, (const char *)&c, 1); continue; }
        if (p->pos >= p->len) { perr(p, "unterminated escape"); break; }
        char e = p->s[p->pos++];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char out[] = "\"\\/\b\f\n\r\t";
            sb_put(&b, &out[simple - "\"\\/bfnrt"], 1);
            continue;
        }
        if (e != 'u') { perr(p, "invalid escape in string"); break; }
        int hi = hex4(p);
        if (hi < 0) { perr(p, "invalid \\u escape"); break; }
        uint32_t cp = (uint32_t)hi;
        if (hi >= 0xd800 && hi <= 0xdbff) {
            int lo = -1;
            if (p->len - p->pos >= 6 && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
                p->pos += 2;
                lo = hex4(p);
            }
            if (lo < 0xdc00 || lo > 0xdfff) { perr(p, "unpaired surrogate in \\u escape"); break; }
            cp = 0x10000 + (((uint32_t)hi - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
        } else if (hi >= 0xdc00 && hi <= 0xdfff) {
            perr(p, "unpaired surrogate in \\u escape");
            break;
        }
        if (cp == 0) { perr(p, "NUL character in string"); break; }
        put_utf8(&b, cp);
    }
    tg__free(b.s);
    return NULL;
}

/* A non-negative integer without sign, fraction or exponent, at most 2^53 (exact in a double,
 * the reference parsers' range). */
static bool parse_uint(parser *p, uint64_t *out)
{
    skip_ws(p);
    size_t start = p->pos;
    uint64_t v = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        v = v * 10 + (uint64_t)(p->s[p->pos++] - '0');
        if (v > (1ull << 53)) return perr(p, "integer too large");
    }
    if (p->pos == start) return perr(p, "expected a non-negative integer");
    if (p->pos - start > 1 && p->s[start] == '0') return perr(p, "integer with a leading zero");
    if (p->pos < p->len && strchr(".eE-+", p->s[p->pos]))
        return perr(p, "expected an integer (no sign, fraction or exponent)");
    *out = v;
    return true;
}

/* [u, u, ...] with at most max entries; *n receives the count. */
static bool parse_uint_array(parser *p, uint64_t *vals, int max, int *n, const char *what)
{
    *n = 0;
    if (!expect(p, '[')) return false;
    if (accept(p, ']')) return true;
    do {
        if (*n == max) {
            char msg[96];
            snprintf(msg, sizeof msg, "%s has more than %d entries", what, max);
            return perr(p, msg);
        }
        if (!parse_uint(p, &vals[(*n)++])) return false;
    } while (accept(p, ','));
    return expect(p, ']');
}

static void free_file(tg__st_file *f)
{
    for (int i = 0; i < f->n; i++) tg__free(f->entries[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        tg__free(f->meta_keys[i]);
        tg__free(f->meta_values[i]);
    }
    tg__free(f->entries);
    tg__free(f->meta_keys);
    tg__free(f->meta_values);
    tg__free(f->by_name);
    tg__free(f->meta_by_key);
    tg__free(f->bytes);
    memset(f, 0, sizeof *f);
}

void tg__st_close(tg__st_file *f)
{
    if (f) free_file(f);
}

static bool parse_metadata(parser *p, tg__st_file *f)
{
    if (!expect(p, '{')) return false;
    if (accept(p, '}')) return true;
    do {
        char *k = parse_string(p);
        if (!k) return false;
        if (!expect(p, ':')) {
            tg__free(k);
            return false;
        }
        skip_ws(p);
        if (p->pos >= p->len || p->s[p->pos] != '"') {
            tg__free(k);
            return perr(p, "__metadata__ values must be strings");
        }
        char *v = parse_string(p);
        if (!v) {
            tg__free(k);
            return false;
        }
        f->meta_keys = grow(f->meta_keys, f->n_meta, sizeof(char *));
        f->meta_values = grow(f->meta_values, f->n_meta, sizeof(char *));
        f->meta_keys[f->n_meta] = k;
        f->meta_values[f->n_meta] = v;
        f->n_meta++;
    } while (accept(p, ','));
    if (!expect(p, '}')) return false;
    f->meta_by_key = names_of((const char *const *)f->meta_keys, f->n_meta);
    const char *twice = sort_names(f->meta_by_key, f->n_meta);
    if (!twice) return true;
    char msg[96];
    snprintf(msg, sizeof msg, "duplicate key \"%.40s\" in __metadata__", twice);
    return perr(p, msg);
}

static bool tensor_error(parser *p, const char *name, const char *what)
{
    if (!p->failed)
        tg_status_set(TG_ERR_FORMAT, "%s: tensor '%s': %s", p->path, name, what);
    p->failed = true;
    return false;
}

static bool parse_entry(parser *p, tg__st_entry *e)
{
    bool have_dtype = false, have_shape = false, have_offsets = false;
    if (!expect(p, '{')) return false;
    if (accept(p, '}')) return tensor_error(p, e->name, "empty entry (needs dtype, shape, "
                                                        "data_offsets)");
    do {
        char *key = parse_string(p);
        if (!key) return false;
        bool ok = expect(p, ':');
        if (ok && strcmp(key, "dtype") == 0 && !have_dtype) {
            char *d = parse_string(p);
            ok = d != NULL;
            if (ok) {
                for (size_t k = 0; k < sizeof file_dtypes / sizeof file_dtypes[0]; k++)
                    if (strcmp(d, file_dtypes[k].name) == 0) {
                        e->dtype = file_dtypes[k].dtype;
                        e->file_dtype = file_dtypes[k].name;
                        e->file_size = file_dtypes[k].size;
                    }
                if (!e->file_dtype) {
                    char msg[112];
                    snprintf(msg, sizeof msg, "unsupported dtype \"%.40s\" (F32, F64, I32, I64, "
                             "F16, BF16 are)", d);
                    ok = tensor_error(p, e->name, msg);
                }
                tg__free(d);
            }
            have_dtype = true;
        } else if (ok && strcmp(key, "shape") == 0 && !have_shape) {
            uint64_t dims[TG_MAX_DIMS];
            ok = parse_uint_array(p, dims, TG_MAX_DIMS, &e->ndim, "shape");
            for (int d = 0; ok && d < e->ndim; d++) e->shape[d] = (int64_t)dims[d];
            have_shape = true;
        } else if (ok && strcmp(key, "data_offsets") == 0 && !have_offsets) {
            uint64_t off[2];
            int n;
            ok = parse_uint_array(p, off, 2, &n, "data_offsets");
            if (ok && n != 2) ok = tensor_error(p, e->name, "data_offsets needs [begin, end]");
            if (ok) {
                e->begin = off[0];
                e->end = off[1];
            }
            have_offsets = true;
        } else if (ok) {
            char msg[128];
            snprintf(msg, sizeof msg, "%s key \"%.40s\"",
                     strcmp(key, "dtype") == 0 || strcmp(key, "shape") == 0 ||
                             strcmp(key, "data_offsets") == 0 ? "duplicate" : "unknown", key);
            ok = tensor_error(p, e->name, msg);
        }
        tg__free(key);
        if (!ok) return false;
    } while (accept(p, ','));
    if (!expect(p, '}')) return false;
    if (!have_dtype || !have_shape || !have_offsets)
        return tensor_error(p, e->name, !have_dtype ? "no dtype" : !have_shape ? "no shape"
                                                                               : "no data_offsets");
    return true;
}

static bool parse_header(parser *p, tg__st_file *f)
{
    bool have_meta = false;
    if (!expect(p, '{')) return false;
    if (accept(p, '}')) goto end;
    do {
        char *name = parse_string(p);
        if (!name) return false;
        if (!expect(p, ':')) {
            tg__free(name);
            return false;
        }
        if (strcmp(name, "__metadata__") == 0) {
            tg__free(name);
            if (have_meta) return perr(p, "two __metadata__ objects");
            have_meta = true;
            if (!parse_metadata(p, f)) return false;
            continue;
        }
        f->entries = grow(f->entries, f->n, sizeof *f->entries);
        tg__st_entry *e = &f->entries[f->n++];
        memset(e, 0, sizeof *e);
        e->name = name;
        if (!parse_entry(p, e)) return false;
    } while (accept(p, ','));
    if (!expect(p, '}')) return false;
end:
    skip_ws(p);
    if (p->pos != p->len) return perr(p, "unexpected text after the header object");
    f->by_name = tg__xrealloc(NULL, (size_t)(f->n ? f->n : 1) * sizeof *f->by_name);
    for (int i = 0; i < f->n; i++) f->by_name[i] = (tg__st_named){f->entries[i].name, i};
    const char *twice = sort_names(f->by_name, f->n);
    return twice ? tensor_error(p, twice, "appears twice in the header") : true;
}

/* Entries sorted by begin offset must tile [0, data_size) exactly. */
static int by_begin(const void *a, const void *b)
{
    const tg__st_entry *x = *(const tg__st_entry *const *)a, *y = *(const tg__st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

static tg_status check_layout(tg__st_file *f)
{
    for (int i = 0; i < f->n; i++) {
        tg__st_entry *e = &f->entries[i];
        uint64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] && numel > (UINT64_MAX >> 4) / (uint64_t)e->shape[d])
                return tg_status_set(TG_ERR_FORMAT, "%s: tensor '%s': shape too large", f->path,
                                     e->name);
            numel *= (uint64_t)e->shape[d];
        }
        uint64_t bytes = numel * e->file_size;
        if (e->end < e->begin)
            return tg_status_set(TG_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64
                                 ", %" PRIu64 "] end before they begin", f->path, e->name,
                                 e->begin, e->end);
        if (e->end > f->data_size)
            return tg_status_set(TG_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64
                                 ", %" PRIu64 "] out of range: the data section has %zu bytes "
                                 "(truncated file?)", f->path, e->name, e->begin, e->end,
                                 f->data_size);
        if (e->end - e->begin != bytes)
            return tg_status_set(TG_ERR_FORMAT, "%s: tensor '%s': data_offsets [%" PRIu64
                                 ", %" PRIu64 "] span %" PRIu64 " bytes but %s shape needs %"
                                 PRIu64, f->path, e->name, e->begin, e->end, e->end - e->begin,
                                 e->file_dtype, bytes);
    }
    const tg__st_entry **idx = tg__xrealloc(NULL, (size_t)(f->n ? f->n : 1) * sizeof *idx);
    for (int i = 0; i < f->n; i++) idx[i] = &f->entries[i];
    qsort(idx, (size_t)f->n, sizeof *idx, by_begin);
    uint64_t at = 0;
    tg_status st = TG_OK;
    for (int k = 0; k < f->n && st == TG_OK; k++) {
        const tg__st_entry *e = idx[k];
        if (e->begin != at)
            st = tg_status_set(TG_ERR_FORMAT, "%s: tensor '%s': data_offsets begin at %" PRIu64
                               " but the previous tensor ends at %" PRIu64 " (%s)", f->path,
                               e->name, e->begin, at, e->begin < at ? "overlap" : "gap");
        at = e->end;
    }
    if (st == TG_OK && at != f->data_size)
        st = tg_status_set(TG_ERR_FORMAT, "%s: the data section has %zu bytes but the tensors "
                           "cover %" PRIu64, f->path, f->data_size, at);
    tg__free(idx);
    return st;
}

tg_status tg__st_open(const char *path, tg__st_file *f)
{
    memset(f, 0, sizeof *f);
    if (!path) return tg_status_set(TG_ERR_VALUE, "safetensors: NULL file name");
    f->path = path;
    FILE *fp = fopen(path, "rb");
    if (!fp) return tg_status_set(TG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return tg_status_set(TG_ERR_IO, "%s: not a regular file", path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size < 8) {
        fclose(fp);
        return tg_status_set(TG_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors file "
                             "(truncated?)", path, f->size);
    }
    f->bytes = tg__aligned_bytes(f->size);
    if (!f->bytes) {
        fclose(fp);
        return tg_status_set(TG_ERR_NOMEM, "%s: cannot allocate %zu bytes to read it", path,
                             f->size);
    }
    size_t got = fread(f->bytes, 1, f->size, fp);
    fclose(fp);
    if (got != f->size) {
        free_file(f);
        return tg_status_set(TG_ERR_IO, "%s: read %zu of %zu bytes", path, got, (size_t)sb.st_size);
    }
    f->path = path;
    uint64_t hlen = 0;
    for (int b = 7; b >= 0; b--) hlen = hlen << 8 | f->bytes[b];
    if (hlen > f->size - 8 || hlen > MAX_HEADER_BYTES) {
        size_t size = f->size;
        free_file(f);
        return tg_status_set(TG_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the %zu "
                             "bytes after the length field (truncated or not safetensors)", path,
                             hlen, size - 8);
    }
    if (hlen < 2 || f->bytes[8] != '{') {
        free_file(f);
        return tg_status_set(TG_ERR_FORMAT, "%s: the header does not start with '{' (not a "
                             "safetensors file?)", path);
    }
    f->data = f->bytes + 8 + hlen;
    f->data_size = f->size - 8 - (size_t)hlen;
    parser p = {.s = (const char *)f->bytes + 8, .len = (size_t)hlen, .path = path};
    if (!parse_header(&p, f)) {
        free_file(f);
        return TG_ERR_FORMAT;
    }
    f->path = path;
    tg_status st = check_layout(f);
    if (st != TG_OK) free_file(f);
    return st;
}

tg__st_entry *tg__st_find(const tg__st_file *f, const char *name)
{
    int i = find_name(f->by_name, f->n, name);
    return i < 0 ? NULL : &f->entries[i];
}

const char *tg__st_meta(const tg__st_file *f, const char *key)
{
    int i = find_name(f->meta_by_key, f->n_meta, key);
    return i < 0 ? NULL : f->meta_values[i];
}

static void shape_text(char *buf, size_t len, const char *dtype, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, len, "%s [", dtype);
    for (int d = 0; d < ndim && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, d ? ", %lld" : "%lld",
                                 (long long)shape[d]);
    if (used < len) snprintf(buf + used, len - used, "]");
}

tg_status tg__st_check(const tg__st_file *f, const tg__st_entry *e, const tg_tensor *dst)
{
    bool same = e->dtype == dst->dtype && e->ndim == dst->ndim;
    for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == dst->shape[d];
    if (same) return TG_OK;
    char a[160], b[160];
    shape_text(a, sizeof a, e->file_dtype, e->ndim, e->shape);
    shape_text(b, sizeof b, file_dtype_name(dst->dtype), dst->ndim, dst->shape);
    return tg_status_set(TG_ERR_FORMAT, "%s: tensor '%s' is %s in the file but %s in the model",
                         f->path, e->name, a, b);
}

void tg__st_copy(const tg__st_file *f, const tg__st_entry *e, tg_tensor *dst)
{
    const unsigned char *src = f->data + e->begin;
    bool half = strcmp(e->file_dtype, "F16") == 0, bf16 = strcmp(e->file_dtype, "BF16") == 0;
    if (!half && !bf16) {
        copy_le(dst->data, src, (size_t)dst->numel, tg_dtype_size(dst->dtype));
        return;
    }
    float *out = dst->data;
    for (int64_t i = 0; i < dst->numel; i++) {
        uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        out[i] = half ? half_to_float(h) : bfloat16_to_float(h);
    }
}

/* ---- public: named tensor lists ------------------------------------------------------------ */
tg_status tg_safetensors_save(const char *path, const tg_param_list *tensors, int n_meta,
                              const char *const *meta_keys, const char *const *meta_values)
{
    if (!tensors) return tg_status_set(TG_ERR_VALUE, "%s: NULL tensor list", path ? path : "?");
    return tg__st_write(path, tensors->n, (const char *const *)tensors->names,
                        (const tg_tensor *const *)tensors->tensors, n_meta, meta_keys,
                        meta_values);
}

static void report_add(char ***names, int *n, const char *name)
{
    *names = grow(*names, *n, sizeof **names);
    (*names)[(*n)++] = tg__xstrdup(name);
}

/* Strict: a missing or unexpected name is an error. Otherwise they go to report (if any). */
static tg_status load_list(const char *path, const tg_param_list *tensors, bool strict,
                           tg_load_report *report)
{
    if (!tensors) return tg_status_set(TG_ERR_VALUE, "%s: NULL tensor list", path ? path : "?");
    tg__st_file f;
    tg_status st = tg__st_open(path, &f);
    if (st != TG_OK) return st;
    size_t n_found = (size_t)(tensors->n ? tensors->n : 1);
    tg__st_entry **found = tg__xrealloc(NULL, n_found * sizeof *found);
    tg_load_report r = {0};
    for (int i = 0; i < tensors->n && st == TG_OK; i++) {
        found[i] = tg__st_find(&f, tensors->names[i]);
        if (!found[i] && strict)
            st = tg_status_set(TG_ERR_FORMAT, "%s: missing tensor '%s'", path, tensors->names[i]);
        else if (!found[i])
            report_add(&r.missing, &r.n_missing, tensors->names[i]);
        else if ((st = tg__st_check(&f, found[i], tensors->tensors[i])) == TG_OK)
            found[i]->used = true;
    }
    for (int i = 0; i < f.n && st == TG_OK; i++) {
        if (f.entries[i].used) continue;
        if (strict)
            st = tg_status_set(TG_ERR_FORMAT, "%s: unexpected tensor '%s' (not in the list "
                               "being loaded)", path, f.entries[i].name);
        else
            report_add(&r.unexpected, &r.n_unexpected, f.entries[i].name);
    }
    if (st == TG_OK)
        for (int i = 0; i < tensors->n; i++)
            if (found[i]) tg__st_copy(&f, found[i], tensors->tensors[i]);
    if (st == TG_OK && report) *report = r;
    else tg_load_report_free(&r);
    tg__free(found);
    tg__st_close(&f);
    return st;
}

tg_status tg_safetensors_load(const char *path, const tg_param_list *tensors)
{
    return load_list(path, tensors, true, NULL);
}

tg_status tg_safetensors_load_nonstrict(const char *path, const tg_param_list *tensors,
                                        tg_load_report *report)
{
    if (report) *report = (tg_load_report){0};
    return load_list(path, tensors, false, report);
}

void tg_load_report_free(tg_load_report *report)
{
    if (!report) return;
    for (int i = 0; i < report->n_missing; i++) tg__free(report->missing[i]);
    for (int i = 0; i < report->n_unexpected; i++) tg__free(report->unexpected[i]);
    tg__free(report->missing);
    tg__free(report->unexpected);
    *report = (tg_load_report){0};
}
