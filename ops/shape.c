/* Shape ops: reshape, transpose, concat, narrow, gather_rows and scatter_rows. Each materialises
 * its output (contiguous data is the invariant every kernel relies on), so a forward is a copy
 * and a backward an add of the gradient through the same index map. The differentiable backwards
 * pair them up: reshape and transpose are their own adjoints, concat's is narrow (and narrow's a
 * concat with zeros), gather_rows' is scatter_rows and the other way round. */
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
TG_STAMP(ADD_BLOCK)

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
        tg_fail("tg_reshape: cannot reshape %s into [%s] (rank 0..%d, sizes >= 0 with at most "
                 "one -1, same element count)", tg_shape_str(a, s1, sizeof s1),
                 ndim >= 0 && ndim <= TG_MAX_DIMS && shape ? dims_str(ndim, shape, s2, sizeof s2)
                                                           : "?",
                 TG_MAX_DIMS);
}

/* same elements, same order: gx += g */
static void reshape_backward(const tg_node *node)
{
    TG_KERNEL_FOR(add_block, node->out)(1, node->out->numel, tg_op_grad_out(node), 0,
                                        tg_op_grad(node->in[0]), 0);
}

static void reshape_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    grad_in[0] = tg_reshape(g, node->in[0]->ndim, node->in[0]->shape);
}

static const tg_op reshape_op = {"tg_reshape", reshape_backward, reshape_backward_ops};

tg_tensor *tg_reshape(tg_tensor *a, int ndim, const int64_t *shape)
{
    tg_check_float(a, "tg_reshape");
    int64_t resolved[TG_MAX_DIMS];
    resolve_shape(a, ndim, shape, resolved);
    tg_tensor *out = tg_op_output(a->dtype, ndim, resolved);
    if (a->numel) memcpy(out->data, a->data, tg_nbytes(a));
    tg_op_record(&reshape_op, out, 1, &a, 0);
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
TG_STAMP(SWAP_AXES)

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

typedef struct {
    int lo, hi;     /* the swapped axes, lo <= hi */
} transpose_saved;

/* a transpose is its own inverse: gx += transpose(g) */
static void transpose_backward(const tg_node *node)
{
    const transpose_saved *s = node->saved;
    swap_view v = swap_view_of(node->out, s->lo, s->hi);
    TG_KERNEL_FOR(swap_axes, node->out)(v, tg_op_grad_out(node), tg_op_grad(node->in[0]), true);
}

static void transpose_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const transpose_saved *s = node->saved;
    grad_in[0] = tg_transpose(g, s->lo, s->hi);
}

static const tg_op transpose_op = {"tg_transpose", transpose_backward, transpose_backward_ops};

tg_tensor *tg_transpose(tg_tensor *a, int axis0, int axis1)
{
    tg_check_float(a, "tg_transpose");
    int d0 = tg_normalize_axis(axis0, a->ndim, "tg_transpose");
    int d1 = tg_normalize_axis(axis1, a->ndim, "tg_transpose");
    int lo = d0 < d1 ? d0 : d1, hi = d0 < d1 ? d1 : d0;
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[lo] = a->shape[hi];
    shape[hi] = a->shape[lo];
    tg_tensor *out = tg_op_output(a->dtype, a->ndim, shape);
    TG_KERNEL_FOR(swap_axes, a)(swap_view_of(a, lo, hi), a->data, out->data, false);
    tg_node *node = tg_op_record(&transpose_op, out, 1, &a, sizeof(transpose_saved));
    if (node) *(transpose_saved *)node->saved = (transpose_saved){lo, hi};
    return out;
}

/* ---- concat ---- */

/* Checks the parts agree except along the axis; returns the normalised axis. */
static int check_concat(tg_tensor **parts, int n, int axis)
{
    if (!parts || n < 1) tg_fail("tg_concat: need at least one part (got n = %d)", n);
    for (int k = 0; k < n; k++) tg_check_float(parts[k], "tg_concat");
    if (parts[0]->ndim == 0) tg_fail("tg_concat: cannot concatenate 0-d tensors; reshape first");
    int ax = tg_normalize_axis(axis, parts[0]->ndim, "tg_concat");
    for (int k = 1; k < n; k++) {
        bool ok = parts[k]->dtype == parts[0]->dtype && parts[k]->ndim == parts[0]->ndim;
        for (int d = 0; ok && d < parts[0]->ndim; d++)
            ok = d == ax || parts[k]->shape[d] == parts[0]->shape[d];
        if (!ok) {
            char s0[128], sk[128];
            tg_fail("tg_concat: part %d is %s but part 0 is %s; parts must have one dtype and "
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
static void concat_backward(const tg_node *node)
{
    const tg_tensor *out = node->out;
    const int *axis = node->saved;
    int64_t rows = rows_before(out, *axis), width = rows ? out->numel / rows : 0;
    int64_t offset = 0;
    for (int k = 0; k < node->n_in; k++) {
        int64_t len = rows ? node->in[k]->numel / rows : 0;
        void *gk = tg_op_grad(node->in[k]);
        if (gk)
            TG_KERNEL_FOR(add_block, out)(rows, len, (const char *)tg_op_grad_out(node) +
                                          offset * (int64_t)tg_dtype_size(out->dtype), width, gk,
                                          len);
        offset += len;
    }
}

/* gpart_k = the slice of g that part k filled */
static void concat_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const int *axis = node->saved;
    int64_t offset = 0;
    for (int k = 0; k < node->n_in; k++) {
        int64_t len = node->in[k]->shape[*axis];
        if (node->in[k]->requires_grad) grad_in[k] = tg_narrow(g, *axis, offset, len);
        offset += len;
    }
}

static const tg_op concat_op = {"tg_concat", concat_backward, concat_backward_ops};

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
    tg_tensor *out = tg_op_output(parts[0]->dtype, parts[0]->ndim, shape);
    size_t es = tg_dtype_size(out->dtype);
    int64_t rows = rows_before(out, ax), width = rows ? out->numel / rows : 0, offset = 0;
    for (int k = 0; k < n; k++) {
        int64_t len = rows ? parts[k]->numel / rows : 0;
        for (int64_t o = 0; o < rows && len; o++)
            memcpy((char *)out->data + (size_t)(o * width + offset) * es,
                   (char *)parts[k]->data + (size_t)(o * len) * es, (size_t)len * es);
        offset += len;
    }
    tg_node *node = tg_op_record(&concat_op, out, n, parts, sizeof(int));
    if (node) *(int *)node->saved = ax;
    return out;
}

/* ---- narrow ---- */

typedef struct {
    int axis;
    int64_t start;
} narrow_saved;

/* out(o, t) = a(o, start + t): ga(o, start + t) += g(o, t) */
static void narrow_backward(const tg_node *node)
{
    const narrow_saved *s = node->saved;
    const tg_tensor *a = node->in[0], *out = node->out;
    int64_t rows = rows_before(a, s->axis), width = rows ? a->numel / rows : 0;
    int64_t len = rows ? out->numel / rows : 0;
    int64_t inner = a->shape[s->axis] ? width / a->shape[s->axis] : 0;
    char *ga = tg_op_grad(node->in[0]);
    if (ga)
        TG_KERNEL_FOR(add_block, out)(rows, len, tg_op_grad_out(node), len,
                                      ga + s->start * inner * (int64_t)tg_dtype_size(a->dtype),
                                      width);
}

static tg_tensor *zeros(tg_dtype dtype, int ndim, const int64_t *shape)
{
    tg_tensor *z = tg_op_output(dtype, ndim, shape);
    memset(z->data, 0, tg_nbytes(z));
    return z;
}

/* ga = g with zeros before and after it along the axis */
static void narrow_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const narrow_saved *s = node->saved;
    const tg_tensor *a = node->in[0];
    int64_t after = a->shape[s->axis] - s->start - g->shape[s->axis];
    tg_tensor *parts[3];
    int n = 0;
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    if (s->start > 0) {
        shape[s->axis] = s->start;
        parts[n++] = zeros(a->dtype, a->ndim, shape);
    }
    parts[n++] = g;
    if (after > 0) {
        shape[s->axis] = after;
        parts[n++] = zeros(a->dtype, a->ndim, shape);
    }
    grad_in[0] = n == 1 ? g : tg_concat(parts, n, s->axis);
}

static const tg_op narrow_op = {"tg_narrow", narrow_backward, narrow_backward_ops};

tg_tensor *tg_narrow(tg_tensor *a, int axis, int64_t start, int64_t length)
{
    tg_check_float(a, "tg_narrow");
    if (a->ndim == 0) tg_fail("tg_narrow: cannot narrow a 0-d tensor");
    int ax = tg_normalize_axis(axis, a->ndim, "tg_narrow");
    if (start < 0 || length < 0 || start > a->shape[ax] - length) {
        char s1[128];
        tg_fail("tg_narrow: [%lld, %lld + %lld) is outside axis %d of %s", (long long)start,
                (long long)start, (long long)length, axis, tg_shape_str(a, s1, sizeof s1));
    }
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[ax] = length;
    tg_tensor *out = tg_op_output(a->dtype, a->ndim, shape);
    size_t es = tg_dtype_size(a->dtype);
    int64_t rows = rows_before(a, ax), width = rows ? a->numel / rows : 0;
    int64_t inner = a->shape[ax] ? width / a->shape[ax] : 0, len = length * inner;
    for (int64_t o = 0; o < rows && len; o++)
        memcpy((char *)out->data + (size_t)(o * len) * es,
               (const char *)a->data + (size_t)(o * width + start * inner) * es, (size_t)len * es);
    tg_node *node = tg_op_record(&narrow_op, out, 1, &a, sizeof(narrow_saved));
    if (node) *(narrow_saved *)node->saved = (narrow_saved){ax, start};
    return out;
}

/* ---- gather_rows ---- */

/* Indices are validated before any copy, so a bad one fails before anything is written. */
static void check_index(const tg_tensor *a, const tg_tensor *index)
{
    char s1[128], s2[128];
    tg_check_float(a, "tg_gather_rows");
    tg_check_live(index, "tg_gather_rows");
    if (a->ndim < 1 || index->dtype != TG_I32 || index->ndim != 1)
        tg_fail("tg_gather_rows: need a tensor of rank >= 1 and an int32 index [K], got %s and "
                 "%s", tg_shape_str(a, s1, sizeof s1), tg_shape_str(index, s2, sizeof s2));
    const int32_t *idx = index->data;
    for (int64_t k = 0; k < index->numel; k++)
        if (idx[k] < 0 || idx[k] >= a->shape[0])
            tg_fail("tg_gather_rows: index[%lld] = %d is out of range for the %lld rows of %s",
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
TG_STAMP(SCATTER_ADD)

typedef struct {
    tg_tensor *index;   /* a copy: the caller may refill its index buffer before backward */
} rows_saved;

/* An int32 index of the step with the data of index. */
static tg_tensor *copy_index(const tg_tensor *index)
{
    tg_tensor *c = tg_op_output(TG_I32, index->ndim, index->shape);
    if (index->numel) memcpy(c->data, index->data, tg_nbytes(index));
    return c;
}

/* out[k] = a[idx[k]]: ga[idx[k]] += g[k] (repeated indices accumulate) */
static void gather_backward(const tg_node *node)
{
    const rows_saved *s = node->saved;
    const tg_tensor *out = node->out;
    int64_t len = out->shape[0] ? out->numel / out->shape[0] : 0;
    TG_KERNEL_FOR(scatter_add, out)(out->shape[0], len, s->index->data, tg_op_grad_out(node),
                                    tg_op_grad(node->in[0]));
}

static void gather_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const rows_saved *s = node->saved;
    grad_in[0] = tg_scatter_rows(g, s->index, node->in[0]->shape[0]);
}

static const tg_op gather_op = {"tg_gather_rows", gather_backward, gather_backward_ops};

tg_tensor *tg_gather_rows(tg_tensor *a, const tg_tensor *index)
{
    check_index(a, index);
    int64_t shape[TG_MAX_DIMS], len = 1;
    memcpy(shape, a->shape, sizeof shape);
    shape[0] = index->numel;
    for (int d = 1; d < a->ndim; d++) len *= a->shape[d];
    tg_tensor *out = tg_op_output(a->dtype, a->ndim, shape);
    size_t row = (size_t)len * tg_dtype_size(a->dtype);
    const int32_t *idx = index->data;
    for (int64_t k = 0; k < index->numel && row; k++)
        memcpy((char *)out->data + (size_t)k * row, (char *)a->data + (size_t)idx[k] * row, row);
    tg_node *node = tg_op_record(&gather_op, out, 1, &a, sizeof(rows_saved));
    if (node) ((rows_saved *)node->saved)->index = copy_index(index);
    return out;
}

/* ---- scatter_rows ---- */

/* out = zeros [n_rows, ...]; out[idx[k]] += a[k]: ga[k] += g[idx[k]], a gather */
static void scatter_backward(const tg_node *node)
{
    const rows_saved *s = node->saved;
    const tg_tensor *a = node->in[0];
    char *ga = tg_op_grad(node->in[0]);
    if (!ga) return;
    int64_t len = a->shape[0] ? a->numel / a->shape[0] : 0;
    const int32_t *idx = s->index->data;
    const char *g = tg_op_grad_out(node);
    size_t row = (size_t)len * tg_dtype_size(a->dtype);
    for (int64_t k = 0; k < a->shape[0]; k++)
        TG_KERNEL_FOR(add_block, a)(1, len, g + (size_t)idx[k] * row, 0, ga + (size_t)k * row, 0);
}

static void scatter_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const rows_saved *s = node->saved;
    grad_in[0] = tg_gather_rows(g, s->index);
}

static const tg_op scatter_op = {"tg_scatter_rows", scatter_backward, scatter_backward_ops};

tg_tensor *tg_scatter_rows(tg_tensor *a, const tg_tensor *index, int64_t n_rows)
{
    char s1[128], s2[128];
    tg_check_float(a, "tg_scatter_rows");
    tg_check_live(index, "tg_scatter_rows");
    if (a->ndim < 1 || index->dtype != TG_I32 || index->ndim != 1 ||
        index->shape[0] != a->shape[0] || n_rows < 0)
        tg_fail("tg_scatter_rows: need a tensor [K, ...], an int32 index [K] and n_rows >= 0, got "
                "%s, %s and %lld", tg_shape_str(a, s1, sizeof s1),
                tg_shape_str(index, s2, sizeof s2), (long long)n_rows);
    const int32_t *idx = index->data;
    for (int64_t k = 0; k < index->numel; k++)
        if (idx[k] < 0 || idx[k] >= n_rows)
            tg_fail("tg_scatter_rows: index[%lld] = %d is out of range for %lld rows",
                    (long long)k, (int)idx[k], (long long)n_rows);
    int64_t shape[TG_MAX_DIMS], len = a->shape[0] ? a->numel / a->shape[0] : 0;
    memcpy(shape, a->shape, sizeof shape);
    shape[0] = n_rows;
    tg_tensor *out = tg_op_output(a->dtype, a->ndim, shape);
    memset(out->data, 0, tg_nbytes(out));
    TG_KERNEL_FOR(scatter_add, a)(a->shape[0], len, idx, a->data, out->data);
    tg_node *node = tg_op_record(&scatter_op, out, 1, &a, sizeof(rows_saved));
    if (node) ((rows_saved *)node->saved)->index = copy_index(index);
    return out;
}
