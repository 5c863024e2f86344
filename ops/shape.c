/* Shape ops: reshape, transpose, concat, gather_rows. Each materialises its output (contiguous
 * data is the invariant every kernel relies on), so a forward is a copy and a backward an add
 * of the gradient through the same index map. Kernels are stamped for float and double. */
#include <string.h>
#include "ops/kernel.h"

/* dst[o·dst_stride + t] += src[o·src_stride + t] for o < rows, t < len: a strided block add. */
#define ADD_BLOCK(T, S)                                                                        \
    static void add_block_##S(int64_t rows, int64_t len, const void *psrc, int64_t src_stride, \
                              void *pdst, int64_t dst_stride)                                  \
    {                                                                                          \
        const T *src = psrc;                                                                   \
        T *dst = pdst;                                                                         \
        for (int64_t o = 0; o < rows; o++)                                                    \
            for (int64_t t = 0; t < len; t++) dst[o * dst_stride + t] += src[o * src_stride + t]; \
    }
STAMP(ADD_BLOCK)

/* "2, -1, 3": a requested shape for error messages (it may hold -1, so not a tensor). */
static char *dims_str(int ndim, const int64_t *shape, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = 0;
    for (int d = 0; d < ndim && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, d ? ", %lld" : "%lld",
                                 (long long)shape[d]);
    return buf;
}

/* ---- reshape ---- */

static void resolve_shape(const tg_tensor *a, int ndim, const int64_t *shape, int64_t *out)
{
    char s1[128], s2[128];
    int64_t known = 1;
    int free_axis = -1;
    bool ok = ndim >= 0 && ndim <= TG_MAX_DIMS && (ndim == 0 || shape);
    for (int d = 0; ok && d < ndim; d++) {
        out[d] = shape[d];
        if (shape[d] == -1 && free_axis < 0) free_axis = d;
        else if (shape[d] < 0) ok = false;
        else known *= shape[d];
    }
    if (ok && free_axis >= 0) { /* -1 is what makes the element count match */
        ok = known > 0 && a->numel % known == 0;
        if (ok) out[free_axis] = a->numel / known;
    } else if (ok) {
        ok = known == a->numel;
    }
    if (!ok)
        tg__fail("tg_reshape: cannot reshape %s into [%s] (rank 0..%d, sizes >= 0 with at most "
                 "one -1, same element count)", tg_shape_str(a, s1, sizeof s1),
                 ndim >= 0 && ndim <= TG_MAX_DIMS && shape ? dims_str(ndim, shape, s2, sizeof s2)
                                                           : "?",
                 TG_MAX_DIMS);
}

/* same elements, same order: gx += g */
static void reshape_backward(tg_node *node)
{
    KERNEL_FOR(add_block, node->out)(1, node->out->numel, node->out->grad->data, 0,
                                     tg__grad(node->in[0]), 0);
}

tg_tensor *tg_reshape(tg_tensor *a, int ndim, const int64_t *shape)
{
    tg__check_float(a, "tg_reshape");
    int64_t resolved[TG_MAX_DIMS];
    resolve_shape(a, ndim, shape, resolved);
    tg_tensor *out = tg__new_intermediate(a->dtype, ndim, resolved);
    if (a->numel) memcpy(out->data, a->data, tg__bytes(a));
    tg__record("tg_reshape", reshape_backward, out, 1, &a);
    return out;
}

/* ---- transpose ---- */

/* The input as [A, n0, B, n1, C] with n0, n1 the swapped axes; the output is [A, n1, B, n0, C]. */
typedef struct {
    int64_t a, n0, b, n1, c;
} swap_view;

/* dst(a, q, b, p, c) (+)= src(a, p, b, q, c). Swapping n0 and n1 in the view gives the inverse. */
#define SWAP_AXES(T, S)                                                                        \
    static void swap_axes_##S(swap_view v, const void *psrc, void *pdst, bool add)             \
    {                                                                                          \
        const T *src = psrc;                                                                   \
        for (int64_t a = 0; a < v.a; a++)                                                     \
            for (int64_t p = 0; p < v.n0; p++)                                                \
                for (int64_t b = 0; b < v.b; b++)                                             \
                    for (int64_t q = 0; q < v.n1; q++, src += v.c) {                          \
                        T *dst = (T *)pdst + (((a * v.n1 + q) * v.b + b) * v.n0 + p) * v.c;    \
                        for (int64_t c = 0; c < v.c; c++) dst[c] = add ? dst[c] + src[c] : src[c]; \
                    }                                                                          \
    }
STAMP(SWAP_AXES)

/* lo == hi (a transpose of an axis with itself) is a copy: n1 = 1 keeps the count right. */
static swap_view swap_view_of(const tg_tensor *t, int lo, int hi)
{
    swap_view v = {1, t->shape[lo], 1, lo == hi ? 1 : t->shape[hi], 1};
    for (int d = 0; d < t->ndim; d++) {
        if (d < lo) v.a *= t->shape[d];
        else if (d > lo && d < hi) v.b *= t->shape[d];
        else if (d > hi) v.c *= t->shape[d];
    }
    return v;
}

/* a transpose is its own inverse: gx += transpose(g) */
static void transpose_backward(tg_node *node)
{
    swap_view v = swap_view_of(node->out, (int)node->i[0], (int)node->i[1]);
    KERNEL_FOR(swap_axes, node->out)(v, node->out->grad->data, tg__grad(node->in[0]), true);
}

tg_tensor *tg_transpose(tg_tensor *a, int axis0, int axis1)
{
    tg__check_float(a, "tg_transpose");
    int d0 = tg__normalize_axis(axis0, a->ndim, "tg_transpose");
    int d1 = tg__normalize_axis(axis1, a->ndim, "tg_transpose");
    int lo = d0 < d1 ? d0 : d1, hi = d0 < d1 ? d1 : d0;
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[lo] = a->shape[hi];
    shape[hi] = a->shape[lo];
    tg_tensor *out = tg__new_intermediate(a->dtype, a->ndim, shape);
    KERNEL_FOR(swap_axes, a)(swap_view_of(a, lo, hi), a->data, out->data, false);
    tg_node *node = tg__record("tg_transpose", transpose_backward, out, 1, &a);
    if (node) {
        node->i[0] = lo;
        node->i[1] = hi;
    }
    return out;
}

/* ---- concat ---- */

/* Checks the parts agree except along the axis; returns the normalised axis. */
static int check_concat(tg_tensor **parts, int n, int axis)
{
    if (!parts || n < 1) tg__fail("tg_concat: need at least one part (got n = %d)", n);
    for (int k = 0; k < n; k++) tg__check_float(parts[k], "tg_concat");
    if (parts[0]->ndim == 0) tg__fail("tg_concat: cannot concatenate 0-d tensors; reshape first");
    int ax = tg__normalize_axis(axis, parts[0]->ndim, "tg_concat");
    for (int k = 1; k < n; k++) {
        bool ok = parts[k]->dtype == parts[0]->dtype && parts[k]->ndim == parts[0]->ndim;
        for (int d = 0; ok && d < parts[0]->ndim; d++)
            ok = d == ax || parts[k]->shape[d] == parts[0]->shape[d];
        if (!ok) {
            char s0[128], sk[128];
            tg__fail("tg_concat: part %d is %s but part 0 is %s; parts must have one dtype and "
                     "the same sizes except along axis %d", k,
                     tg_shape_str(parts[k], sk, sizeof sk), tg_shape_str(parts[0], s0, sizeof s0),
                     axis);
        }
    }
    return ax;
}

static int64_t rows_before(const tg_tensor *t, int axis)
{
    int64_t rows = 1;
    for (int d = 0; d < axis; d++) rows *= t->shape[d];
    return rows;
}

/* out(o, offset_k + t) = part_k(o, t) with o over the axes before `axis`:
 * gpart_k(o, t) += g(o, offset_k + t) */
static void concat_backward(tg_node *node)
{
    const tg_tensor *out = node->out;
    int64_t rows = rows_before(out, (int)node->i[0]), width = rows ? out->numel / rows : 0;
    int64_t offset = 0;
    for (int k = 0; k < node->n_in; k++) {
        int64_t len = rows ? node->in[k]->numel / rows : 0;
        void *gk = tg__grad(node->in[k]);
        if (gk)
            KERNEL_FOR(add_block, out)(rows, len, (char *)out->grad->data +
                                       offset * (int64_t)tg_dtype_size(out->dtype), width, gk, len);
        offset += len;
    }
}

/* A record holds at most TG_MAX_INPUTS inputs: more parts are concatenated in groups first. */
static tg_tensor *concat_groups(tg_tensor **parts, int n, int axis)
{
    tg_tensor *groups[TG_MAX_INPUTS];
    int per = (n + TG_MAX_INPUTS - 1) / TG_MAX_INPUTS, g = 0;
    for (int s = 0; s < n; s += per)
        groups[g++] = tg_concat(parts + s, n - s < per ? n - s : per, axis);
    return tg_concat(groups, g, axis);
}

tg_tensor *tg_concat(tg_tensor **parts, int n, int axis)
{
    int ax = check_concat(parts, n, axis);
    if (n > TG_MAX_INPUTS) return concat_groups(parts, n, ax);
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, parts[0]->shape, sizeof shape);
    shape[ax] = 0;
    for (int k = 0; k < n; k++) shape[ax] += parts[k]->shape[ax];
    tg_tensor *out = tg__new_intermediate(parts[0]->dtype, parts[0]->ndim, shape);
    size_t es = tg_dtype_size(out->dtype);
    int64_t rows = rows_before(out, ax), width = rows ? out->numel / rows : 0, offset = 0;
    for (int k = 0; k < n; k++) {
        int64_t len = rows ? parts[k]->numel / rows : 0;
        for (int64_t o = 0; o < rows && len; o++)
            memcpy((char *)out->data + (size_t)(o * width + offset) * es,
                   (char *)parts[k]->data + (size_t)(o * len) * es, (size_t)len * es);
        offset += len;
    }
    tg_node *node = tg__record("tg_concat", concat_backward, out, n, parts);
    if (node) node->i[0] = ax;
    return out;
}

/* ---- gather_rows ---- */

/* Indices are validated before any copy, so a bad one fails before anything is written. */
static void check_index(const tg_tensor *a, const tg_tensor *index)
{
    char s1[128], s2[128];
    tg__check_float(a, "tg_gather_rows");
    tg__check_live(index, "tg_gather_rows");
    if (a->ndim < 1 || index->dtype != TG_I32 || index->ndim != 1)
        tg__fail("tg_gather_rows: need a tensor of rank >= 1 and an int32 index [K], got %s and "
                 "%s", tg_shape_str(a, s1, sizeof s1), tg_shape_str(index, s2, sizeof s2));
    const int32_t *idx = index->data;
    for (int64_t k = 0; k < index->numel; k++)
        if (idx[k] < 0 || idx[k] >= a->shape[0])
            tg__fail("tg_gather_rows: index[%lld] = %d is out of range for the %lld rows of %s",
                     (long long)k, (int)idx[k], (long long)a->shape[0],
                     tg_shape_str(a, s1, sizeof s1));
}

/* dst row idx[k] += src row k (rows of `len` elements): the scatter-add of gather's backward. */
#define SCATTER_ADD(T, S)                                                                      \
    static void scatter_add_##S(int64_t k_rows, int64_t len, const int32_t *idx,               \
                                const void *psrc, void *pdst)                                  \
    {                                                                                          \
        const T *src = psrc;                                                                   \
        T *dst = pdst;                                                                         \
        for (int64_t k = 0; k < k_rows; k++)                                                  \
            for (int64_t t = 0; t < len; t++) dst[idx[k] * len + t] += src[k * len + t];       \
    }
STAMP(SCATTER_ADD)

/* out[k] = a[idx[k]]: ga[idx[k]] += g[k] (repeated indices accumulate) */
static void gather_backward(tg_node *node)
{
    const tg_tensor *out = node->out;
    int64_t len = out->shape[0] ? out->numel / out->shape[0] : 0;
    KERNEL_FOR(scatter_add, out)(out->shape[0], len, node->saved, out->grad->data,
                                 tg__grad(node->in[0]));
}

tg_tensor *tg_gather_rows(tg_tensor *a, const tg_tensor *index)
{
    check_index(a, index);
    int64_t shape[TG_MAX_DIMS], len = 1;
    memcpy(shape, a->shape, sizeof shape);
    shape[0] = index->numel;
    for (int d = 1; d < a->ndim; d++) len *= a->shape[d];
    tg_tensor *out = tg__new_intermediate(a->dtype, a->ndim, shape);
    size_t row = (size_t)len * tg_dtype_size(a->dtype);
    const int32_t *idx = index->data;
    for (int64_t k = 0; k < index->numel && row; k++)
        memcpy((char *)out->data + (size_t)k * row, (char *)a->data + (size_t)idx[k] * row, row);
    tg_node *node = tg__record("tg_gather_rows", gather_backward, out, 1, &a);
    if (node) { /* a copy: the caller may refill its index buffer before backward */
        node->aux = index;
        node->saved = tg__arena_alloc(tg__bytes(index));
        if (index->numel) memcpy(node->saved, index->data, tg__bytes(index));
    }
    return out;
}
