/* NumPy .npy arrays, alone or as members of an .npz (zip) archive.
 * .npy layout: "\x93NUMPY", major, minor, header length (uint16 LE for version 1, uint32 LE for
 * 2 and 3), then a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 784), }
 * padded with spaces and a newline, then the raw array data. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>
#include "autograd/internal.h"
#include "data/internal.h"

#define NPY_MAX_HEADER (1 << 20)

typedef enum { NPY_F4, NPY_F8, NPY_I4, NPY_I8, NPY_U1 } npy_type;

typedef struct {
    npy_type type;
    size_t itemsize;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
} npy_header;

/* ---- the header dict ------------------------------------------------------------------------ */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && isspace((unsigned char)*c->p)) c->p++;
}

static bool eat(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes; copied (truncated) into out. */
static bool parse_str(cursor *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
    char q = *c->p++;
    const char *s = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\') return false;
        c->p++;
    }
    if (c->p >= c->end) return false;
    size_t n = (size_t)(c->p - s);
    if (n >= cap) n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
    c->p++;
    return true;
}

static bool parse_word(cursor *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return true;
    }
    return false;
}

static tg_status bad_header(const char *name, const char *what)
{
    return tg_status_set(TG_ERR_FORMAT, "%s: malformed npy header: %s", name, what);
}

static tg_status parse_dict(const char *name, const char *text, size_t len, npy_header *h)
{
    cursor c = {text, text + len};
    char descr[64] = "";
    bool have_descr = false, have_order = false, have_shape = false, fortran = false;
    if (!eat(&c, '{')) return bad_header(name, "expected '{'");
    for (;;) {
        if (eat(&c, '}')) break;
        char key[32];
        if (!parse_str(&c, key, sizeof key)) return bad_header(name, "expected a quoted key");
        if (!eat(&c, ':')) return bad_header(name, "expected ':' after a key");
        if (strcmp(key, "descr") == 0) {
            skip_ws(&c);
            if (c.p < c.end && *c.p == '[')
                return tg_status_set(TG_ERR_FORMAT, "%s: unsupported dtype: structured arrays "
                                     "are not supported", name);
            if (!parse_str(&c, descr, sizeof descr))
                return bad_header(name, "'descr' is not a string");
            have_descr = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (parse_word(&c, "True")) fortran = true;
            else if (parse_word(&c, "False")) fortran = false;
            else return bad_header(name, "'fortran_order' is not True or False");
            have_order = true;
        } else if (strcmp(key, "shape") == 0) {
            if (!eat(&c, '(')) return bad_header(name, "'shape' is not a tuple");
            h->ndim = 0;
            while (!eat(&c, ')')) {
                skip_ws(&c);
                if (c.p >= c.end || !isdigit((unsigned char)*c.p))
                    return bad_header(name, "'shape' holds something other than sizes");
                int64_t v = 0;
                while (c.p < c.end && isdigit((unsigned char)*c.p)) {
                    if (v > (INT64_MAX - 9) / 10) return bad_header(name, "a size overflows");
                    v = v * 10 + (*c.p++ - '0');
                }
                if (c.p < c.end && *c.p == 'L') c.p++;   /* Python 2 long */
                if (h->ndim == TG_MAX_DIMS)
                    return tg_status_set(TG_ERR_FORMAT, "%s: arrays of rank above %d are not "
                                         "supported", name, TG_MAX_DIMS);
                h->shape[h->ndim++] = v;
                if (!eat(&c, ',')) {
                    if (!eat(&c, ')')) return bad_header(name, "expected ',' or ')' in 'shape'");
                    break;
                }
            }
            have_shape = true;
        } else {
            return tg_status_set(TG_ERR_FORMAT, "%s: malformed npy header: unknown key '%s'",
                                 name, key);
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}')) return bad_header(name, "expected ',' or '}'");
            break;
        }
    }
    if (!have_descr || !have_order || !have_shape)
        return bad_header(name, "'descr', 'fortran_order' and 'shape' are all required");
    if (fortran && h->ndim > 1)
        return tg_status_set(TG_ERR_FORMAT, "%s: Fortran-order arrays are not supported "
                             "(save with np.ascontiguousarray)", name);

    static const struct { const char *descr; npy_type type; size_t size; } known[] = {
        {"<f4", NPY_F4, 4}, {"<f8", NPY_F8, 8}, {"<i4", NPY_I4, 4}, {"<i8", NPY_I8, 8},
        {"|u1", NPY_U1, 1}, {"<u1", NPY_U1, 1}, {"=u1", NPY_U1, 1},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(descr, known[i].descr) == 0) {
            h->type = known[i].type;
            h->itemsize = known[i].size;
            return TG_OK;
        }
    }
    return tg_status_set(TG_ERR_FORMAT, "%s: unsupported dtype '%s' (supported: <f4 <f8 <i4 <i8 "
                         "|u1, little-endian)", name, descr);
}

/* ---- the array ------------------------------------------------------------------------------ */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tapegrad's npy reader assumes a little-endian host"
#endif

static void shape_str(const npy_header *h, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < h->ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)h->shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, h->ndim == 1 ? ",)" : ")");
}

static tg_status npy_read(tg__reader *r, tg_tensor **out)
{
    const char *name = r->name;
    *out = NULL;
    unsigned char pre[12];
    int64_t k = tg__read_full(r, pre, 10);
    if (k < 0) return r->err;
    if (k < 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return tg_status_set(TG_ERR_FORMAT, "%s: not an npy file (bad magic)", name);
    int major = pre[6];
    size_t hlen;
    if (major == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (major == 2 || major == 3) {
        if (tg__read_full(r, pre + 10, 2) != 2)
            return tg_status_set(TG_ERR_FORMAT, "%s: truncated npy header", name);
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 |
               (size_t)pre[11] << 24;
    } else {
        return tg_status_set(TG_ERR_FORMAT, "%s: unsupported npy format version %d.%d", name,
                             major, pre[7]);
    }
    if (hlen == 0 || hlen > NPY_MAX_HEADER)
        return bad_header(name, "impossible header length");
    char *text = tg__aligned_bytes(hlen);
    if (!text) return tg_status_set(TG_ERR_NOMEM, "%s: out of memory", name);
    k = tg__read_full(r, text, hlen);
    if (k < 0 || (size_t)k < hlen) {
        tg__free(text);
        return k < 0 ? r->err : tg_status_set(TG_ERR_FORMAT, "%s: truncated npy header", name);
    }
    npy_header h = {0};
    tg_status st = parse_dict(name, text, hlen, &h);
    tg__free(text);
    if (st != TG_OK) return st;

    size_t numel = 1;
    for (int i = 0; i < h.ndim; i++) {
        if (h.shape[i] != 0 && numel > (SIZE_MAX / 16) / (size_t)h.shape[i])
            return tg_status_set(TG_ERR_FORMAT, "%s: shape too large", name);
        numel *= (size_t)h.shape[i];
    }
    size_t want = numel * h.itemsize, got;
    void *buf;
    st = tg__read_alloc(r, want, &buf, &got);
    if (st != TG_OK) return st;
    char shp[160];
    if (got < want) {
        tg__free(buf);
        shape_str(&h, shp, sizeof shp);
        return tg_status_set(TG_ERR_FORMAT, "%s: truncated: shape %s needs %zu bytes of data, "
                             "file holds %zu", name, shp, want, got);
    }
    uint64_t extra;
    st = tg__read_rest(r, &extra);
    if (st == TG_OK && extra)
        st = tg_status_set(TG_ERR_FORMAT, "%s: %llu bytes of trailing data after the array", name,
                           (unsigned long long)extra);
    if (st != TG_OK) {
        tg__free(buf);
        return st;
    }

    switch (h.type) {
    case NPY_F4: *out = tg__tensor_adopt(TG_F32, h.ndim, h.shape, buf); return TG_OK;
    case NPY_F8: *out = tg__tensor_adopt(TG_F64, h.ndim, h.shape, buf); return TG_OK;
    case NPY_I4: *out = tg__tensor_adopt(TG_I32, h.ndim, h.shape, buf); return TG_OK;
    case NPY_I8: {
        const int64_t *src = buf;
        for (size_t i = 0; i < numel; i++) {
            if (src[i] < INT32_MIN || src[i] > INT32_MAX) {
                st = tg_status_set(TG_ERR_VALUE, "%s: value %lld at flat index %zu does not fit "
                                   "int32", name, (long long)src[i], i);
                tg__free(buf);
                return st;
            }
        }
        tg_tensor *t = tg_zeros(TG_I32, h.ndim, h.shape);
        int32_t *dst = t->data;
        for (size_t i = 0; i < numel; i++) dst[i] = (int32_t)src[i];
        tg__free(buf);
        *out = t;
        return TG_OK;
    }
    case NPY_U1: {
        const unsigned char *src = buf;
        tg_tensor *t = tg_zeros(TG_I32, h.ndim, h.shape);
        int32_t *dst = t->data;
        for (size_t i = 0; i < numel; i++) dst[i] = src[i];
        tg__free(buf);
        *out = t;
        return TG_OK;
    }
    }
    tg__free(buf);
    return tg_status_set(TG_ERR_FORMAT, "%s: unsupported dtype", name);
}

tg_status tg_npy_load(const char *path, tg_tensor **out)
{
    *out = NULL;
    tg__reader r;
    tg_status st = tg__reader_open_file(&r, path);
    if (st != TG_OK) return st;
    st = npy_read(&r, out);
    tg__reader_close(&r);
    return st;
}

/* ---- .npz: a zip archive of .npy members ----------------------------------------------------- */

static int64_t zip_member_read(tg__reader *r, void *buf, size_t n)
{
    zip_int64_t k = zip_fread(r->handle, buf, n);
    if (k >= 0) return k;
    zip_error_t *e = zip_file_get_error(r->handle);
    int ze = zip_error_code_zip(e);
    tg_status code = ze == ZIP_ER_READ ? TG_ERR_IO : ze == ZIP_ER_MEMORY ? TG_ERR_NOMEM
                                                                        : TG_ERR_FORMAT;
    r->err = tg_status_set(code, "%s: %s", r->name, zip_error_strerror(e));
    return -1;
}

static void zip_member_close(tg__reader *r)
{
    if (r->handle) zip_fclose(r->handle);
    r->handle = NULL;
}

tg_status tg_npz_load(const char *path, const char *member, tg_tensor **out)
{
    *out = NULL;
    int zerr = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY, &zerr);
    if (!za) {
        zip_error_t e;
        zip_error_init_with_code(&e, zerr);
        tg_status code = (zerr == ZIP_ER_NOENT || zerr == ZIP_ER_OPEN || zerr == ZIP_ER_READ)
                             ? TG_ERR_IO
                         : zerr == ZIP_ER_MEMORY ? TG_ERR_NOMEM : TG_ERR_FORMAT;
        tg_status st = tg_status_set(code, "%s: cannot open as an npz (zip) archive: %s", path,
                                     zip_error_strerror(&e));
        zip_error_fini(&e);
        return st;
    }
    /* "x_train" finds "x_train.npy" too, as in numpy's NpzFile */
    char name[512];
    zip_int64_t idx = zip_name_locate(za, member, 0);
    if (idx < 0 && snprintf(name, sizeof name, "%s.npy", member) < (int)sizeof name)
        idx = zip_name_locate(za, name, 0);
    if (idx < 0) {
        char list[256] = "";
        zip_int64_t n = zip_get_num_entries(za, 0);
        size_t used = 0;
        for (zip_int64_t i = 0; i < n && used < sizeof list; i++) {
            const char *nm = zip_get_name(za, (zip_uint64_t)i, 0);
            if (nm) used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                             i ? ", " : "", nm);
        }
        zip_discard(za);
        return tg_status_set(TG_ERR_VALUE, "%s: no member '%s' (members: %s)", path, member,
                             n ? list : "none");
    }
    snprintf(name, sizeof name, "%s:%s", path, zip_get_name(za, (zip_uint64_t)idx, 0));
    zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
    if (!zf) {
        tg_status st = tg_status_set(TG_ERR_FORMAT, "%s: cannot read member: %s", name,
                                     zip_strerror(za));
        zip_discard(za);
        return st;
    }
    tg__reader r = {.read = zip_member_read, .close = zip_member_close, .handle = zf,
                    .name = name, .max_size = UINT64_MAX};
    tg_status st = npy_read(&r, out);
    tg__reader_close(&r);
    zip_discard(za);
    return st;
}
