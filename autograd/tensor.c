/* Persistent tensors: creation, element access, conversion, printing. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "autograd/internal.h"

size_t tg_dtype_size(tg_dtype dtype)
{
    switch (dtype) {
    case TG_F32: return sizeof(float);
    case TG_F64: return sizeof(double);
    case TG_I32: return sizeof(int32_t);
    case TG_I64: return sizeof(int64_t);
    }
    tg_fail("unknown dtype %d", (int)dtype);
}

const char *tg_dtype_name(tg_dtype dtype)
{
    switch (dtype) {
    case TG_F32: return "f32";
    case TG_F64: return "f64";
    case TG_I32: return "i32";
    case TG_I64: return "i64";
    }
    return "?";
}

size_t tg_nbytes(const tg_tensor *t) { return (size_t)t->numel * tg__elem_size(t->dtype); }

int tg_normalize_axis(int axis, int ndim, const char *op)
{
    int a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim)
        tg_fail("%s: axis %d out of range for a tensor of rank %d", op, axis, ndim);
    return a;
}

void tg__fail_bad_header(tg_dtype dtype, int ndim, const int64_t *shape, const char *op)
{
    if (ndim < 0 || ndim > TG_MAX_DIMS)
        tg_fail("%s: rank %d not supported (0..%d)", op, ndim, TG_MAX_DIMS);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) tg_fail("%s: negative size %lld in axis %d", op, (long long)shape[i], i);
        if (shape[i] > 0 && numel > INT64_MAX / 8 / shape[i])
            tg_fail("%s: a tensor with axis %d of size %lld has too many elements", op, i,
                     (long long)shape[i]);
        numel *= shape[i];
    }
    tg_dtype_size(dtype); /* fails naming the dtype */
    tg_fail("%s: invalid tensor header", op);
}

/* Fills the header fields shared by persistent tensors and intermediates. */
void tg__init_header(tg_tensor *t, tg_dtype dtype, int ndim, const int64_t *shape,
                     const char *op)
{
    tg__fill_header(t, dtype, ndim, shape, tg__header_numel(dtype, ndim, shape, op), 0);
}

/* The header is checked before anything is allocated, so a bad shape leaks nothing. */
static tg_tensor *new_header(tg_dtype dtype, int ndim, const int64_t *shape, const char *op)
{
    tg_tensor h;
    tg__init_header(&h, dtype, ndim, shape, op);
    tg_tensor *t = tg__malloc(sizeof *t);
    *t = h;
    return t;
}

static tg_tensor *new_persistent(tg_dtype dtype, int ndim, const int64_t *shape, const char *op)
{
    tg_tensor *t = new_header(dtype, ndim, shape, op);
    t->persistent = true;
    t->owns_data = true;
    t->data = tg__calloc(tg_nbytes(t));
    return t;
}

/* On some virtual machines the first touch of fresh memory faults page by page at a high cost;
 * prefaulting the whole range with one madvise call is several times cheaper (figures in
 * docs/data_loading.md). Elsewhere it is a small win or a no-op (errors are ignored: old kernels
 * without MADV_POPULATE_WRITE just fault as usual). */
void tg__prefault(void *p, size_t n)
{
#ifdef MADV_POPULATE_WRITE
    static size_t page;
    if (!page) page = (size_t)sysconf(_SC_PAGESIZE);
    if (n < 16 * page) return;
    uintptr_t a = ((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)(page - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
#else
    (void)p, (void)n;
#endif
}

tg_tensor *tg__tensor_uninit(tg_dtype dtype, int ndim, const int64_t *shape)
{
    tg_tensor *t = tg_wrap(dtype, ndim, shape, NULL);
    size_t bytes = tg_nbytes(t);
    t->data = tg__aligned_bytes(bytes);
    if (!t->data) tg_fail("out of memory allocating %zu bytes", bytes);
    t->owns_data = true;
    tg__prefault(t->data, bytes);
    return t;
}

tg_tensor *tg__tensor_adopt(tg_dtype dtype, int ndim, const int64_t *shape, void *buf)
{
    tg_tensor *t = tg_wrap(dtype, ndim, shape, buf);
    t->owns_data = true;   /* tg_free releases buf with free(), like tensors' own buffers */
    return t;
}

tg_tensor *tg_zeros(tg_dtype dtype, int ndim, const int64_t *shape)
{
    return new_persistent(dtype, ndim, shape, "tg_zeros");
}

tg_tensor *tg_full(tg_dtype dtype, int ndim, const int64_t *shape, double value)
{
    tg_tensor *t = new_persistent(dtype, ndim, shape, "tg_full");
    tg_fill_(t, value);
    return t;
}

tg_tensor *tg_ones(tg_dtype dtype, int ndim, const int64_t *shape)
{
    return tg_full(dtype, ndim, shape, 1.0);
}

tg_tensor *tg_from_data(tg_dtype dtype, int ndim, const int64_t *shape, const void *data)
{
    tg_tensor *t = new_persistent(dtype, ndim, shape, "tg_from_data");
    if (t->numel) memcpy(t->data, data, tg_nbytes(t));
    return t;
}

tg_tensor *tg_wrap(tg_dtype dtype, int ndim, const int64_t *shape, void *data)
{
    tg_tensor *t = new_header(dtype, ndim, shape, "tg_wrap");
    t->persistent = true;
    t->data = data;
    return t;
}

tg_tensor *tg_arange(tg_dtype dtype, double start, double stop, double step)
{
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step))
        tg_fail("tg_arange: need finite start/stop and a non-zero step (got %g, %g, %g)",
                 start, stop, step);
    int64_t n = (int64_t)ceil((stop - start) / step);
    if (n < 0) n = 0;
    tg_tensor *t = new_persistent(dtype, TG_SHAPE(n), "tg_arange");
    for (int64_t i = 0; i < n; i++)
        tg_set_flat(t, i, start + (double)i * step);
    return t;
}

tg_tensor *tg_rand_uniform(tg_dtype dtype, int ndim, const int64_t *shape, double lo, double hi,
                           tg_rng *rng)
{
    tg_tensor *t = new_persistent(dtype, ndim, shape, "tg_rand_uniform");
    for (int64_t i = 0; i < t->numel; i++)
        tg_set_flat(t, i, lo + (hi - lo) * tg_rng_uniform(rng));
    return t;
}

tg_tensor *tg_rand_normal(tg_dtype dtype, int ndim, const int64_t *shape, double mean,
                          double std, tg_rng *rng)
{
    tg_tensor *t = new_persistent(dtype, ndim, shape, "tg_rand_normal");
    for (int64_t i = 0; i < t->numel; i++)
        tg_set_flat(t, i, mean + std * tg_rng_normal(rng));
    return t;
}

tg_tensor *tg_clone(const tg_tensor *src)
{
    tg_check_live(src, "tg_clone");
    return tg_from_data(src->dtype, src->ndim, src->shape, src->data);
}

tg_tensor *tg_to_dtype(const tg_tensor *src, tg_dtype dtype)
{
    tg_check_live(src, "tg_to_dtype");
    tg_tensor *t = new_persistent(dtype, src->ndim, src->shape, "tg_to_dtype");
    tg_copy_(t, src);
    return t;
}

void tg_free(tg_tensor *t)
{
    if (!t) return;
    tg_check_live(t, "tg_free");
    if (!t->persistent)
        tg_fail("tg_free: '%s' is an intermediate owned by the tape; tg_tape_reset() releases it",
                 t->name ? t->name : "tensor");
    if (t->grad) tg_free(t->grad);
    if (t->in_backward) t->in_backward->param = NULL; /* its optimizer must not reach it */
    if (t->owns_data) tg__free(t->data);
    t->magic = 0;
    tg__free(t);
}

tg_tensor *tg_set_requires_grad(tg_tensor *t, bool requires_grad)
{
    tg_check_live(t, "tg_set_requires_grad");
    if (requires_grad && (t->dtype == TG_I32 || t->dtype == TG_I64))
        tg_fail("tg_set_requires_grad: %s tensors cannot require grad", tg_dtype_name(t->dtype));
    t->requires_grad = requires_grad;
    return t;
}

tg_tensor *tg_set_name(tg_tensor *t, const char *name)
{
    tg_check_live(t, "tg_set_name");
    t->name = name;
    return t;
}

void tg_zero_grad(tg_tensor *t)
{
    tg_check_live(t, "tg_zero_grad");
    if (t->grad) t->grad->zero_pending = true;
}

/* Writes the zeros tg_zero_grad left pending. */
static void settle_zero(tg_tensor *t)
{
    if (!t->zero_pending) return;
    memset(t->data, 0, tg_nbytes(t));
    t->zero_pending = false;
}

tg_tensor *tg_get_grad(tg_tensor *t)
{
    tg_check_live(t, "tg_get_grad");
    if (t->grad) settle_zero(t->grad);
    return t->grad;
}

/* Element i in [0, numel): the public element accessors check it (a wrong index is the commonest
 * bug of hand-written loops); the ops' kernels index data directly. */
static void check_index(const tg_tensor *t, int64_t i, const char *op)
{
    tg_check_live(t, op);
    if ((uint64_t)i >= (uint64_t)t->numel)
        tg_fail("%s: index %lld out of range for %lld elements", op, (long long)i,
                 (long long)t->numel);
}

double tg_get_flat(const tg_tensor *t, int64_t i)
{
    check_index(t, i, "tg_get_flat");
    if (t->zero_pending) return 0;
    switch (t->dtype) {
    case TG_F32: return ((const float *)t->data)[i];
    case TG_F64: return ((const double *)t->data)[i];
    case TG_I32: return ((const int32_t *)t->data)[i];
    case TG_I64: return (double)((const int64_t *)t->data)[i];
    }
    return NAN;
}

void tg_set_flat(tg_tensor *t, int64_t i, double v)
{
    check_index(t, i, "tg_set_flat");
    settle_zero(t);
    switch (t->dtype) {
    case TG_F32: ((float *)t->data)[i] = (float)v; break;
    case TG_F64: ((double *)t->data)[i] = v; break;
    case TG_I32:
        if (!(v > INT32_MIN - 1.0 && v < INT32_MAX + 1.0)) /* NaN too: the cast would be UB */
            tg_fail("tg_set_flat: %g does not fit in an int32 tensor", v);
        ((int32_t *)t->data)[i] = (int32_t)v; /* truncates toward zero, like PyTorch */
        break;
    case TG_I64:
        if (!(v >= -0x1p63 && v < 0x1p63))
            tg_fail("tg_set_flat: %g does not fit in an int64 tensor", v);
        ((int64_t *)t->data)[i] = (int64_t)v;
        break;
    }
}

void tg_fill_(tg_tensor *t, double value)
{
    tg_check_live(t, "tg_fill_");
    t->zero_pending = false;
    for (int64_t i = 0; i < t->numel; i++)
        tg_set_flat(t, i, value);
}

void tg_copy_(tg_tensor *dst, const tg_tensor *src)
{
    tg_check_live(dst, "tg_copy_");
    tg_check_live(src, "tg_copy_");
    if (!tg_same_shape(dst, src)) {
        char s1[128], s2[128];
        tg_fail("tg_copy_: source %s into destination %s (shapes must match; tg_reshape "
                 "first)", tg_shape_str(src, s1, sizeof s1), tg_shape_str(dst, s2, sizeof s2));
    }
    if (src->zero_pending) {
        dst->zero_pending = true;
        settle_zero(dst);
        return;
    }
    dst->zero_pending = false;
    if (dst->dtype == src->dtype) {
        if (dst->numel) memmove(dst->data, src->data, tg_nbytes(src));
        return;
    }
    for (int64_t i = 0; i < src->numel; i++)
        tg_set_flat(dst, i, tg_get_flat(src, i));
}

static int64_t flat_index(const tg_tensor *t, const int64_t *index, const char *op)
{
    int64_t flat = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (index[d] < 0 || index[d] >= t->shape[d])
            tg_fail("%s: index %lld out of range for axis %d of size %lld", op,
                     (long long)index[d], d, (long long)t->shape[d]);
        flat = flat * t->shape[d] + index[d];
    }
    return flat;
}

double tg_get(const tg_tensor *t, const int64_t *index)
{
    tg_check_live(t, "tg_get");
    return tg_get_flat(t, flat_index(t, index, "tg_get"));
}

void tg_set(tg_tensor *t, const int64_t *index, double value)
{
    tg_check_live(t, "tg_set");
    tg_set_flat(t, flat_index(t, index, "tg_set"), value);
}

double tg_item(const tg_tensor *t)
{
    tg_check_live(t, "tg_item");
    if (t->numel != 1)
        tg_fail("tg_item: tensor has %lld elements, expected 1", (long long)t->numel);
    return tg_get_flat(t, 0);
}

bool tg_same_shape(const tg_tensor *a, const tg_tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

char *tg_shape_str(const tg_tensor *t, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < t->ndim && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, d ? ", %lld" : "%lld",
                                 (long long)t->shape[d]);
    if (used < len) snprintf(buf + used, len - used, "] %s", tg_dtype_name(t->dtype));
    return buf;
}

/* Prints nested brackets like NumPy; axes longer than 6 show their first and last 3 entries. */
static void print_axis(const tg_tensor *t, FILE *out, int axis, int64_t offset, int indent)
{
    const int64_t edge = 3;
    int64_t n = t->shape[axis], stride = 1;
    for (int d = axis + 1; d < t->ndim; d++) stride *= t->shape[d];
    fputc('[', out);
    for (int64_t i = 0; i < n; i++) {
        if (n > 2 * edge && i == edge) {
            fprintf(out, axis == t->ndim - 1 ? "..., " : "...,\n%*s", indent + 1, "");
            i = n - edge;
        }
        if (axis == t->ndim - 1) {
            if (t->dtype == TG_I32) fprintf(out, "%d", (int)tg_get_flat(t, offset + i));
            else if (t->dtype == TG_I64)
                fprintf(out, "%lld", (long long)((const int64_t *)t->data)[offset + i]);
            else fprintf(out, "%.6g", tg_get_flat(t, offset + i));
        } else {
            print_axis(t, out, axis + 1, offset + i * stride, indent + 1);
        }
        if (i + 1 < n) fprintf(out, axis == t->ndim - 1 ? ", " : ",\n%*s", indent + 1, "");
    }
    fputc(']', out);
}

void tg_print(const tg_tensor *t, FILE *out)
{
    char shape[128];
    tg_check_live(t, "tg_print");
    if (t->name) fprintf(out, "%s = ", t->name);
    fprintf(out, "tensor(");
    if (t->ndim == 0) fprintf(out, "%.6g", tg_get_flat(t, 0));
    else if (t->numel == 0) fprintf(out, "[]");
    else print_axis(t, out, 0, 0, 7 + (t->name ? (int)strlen(t->name) + 3 : 0));
    fprintf(out, ", shape %s%s)\n", tg_shape_str(t, shape, sizeof shape),
            t->requires_grad ? ", requires_grad" : "");
}
