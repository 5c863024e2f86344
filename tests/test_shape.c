/* Shape ops: reshape, transpose, concat, narrow, gather_rows, scatter_rows, broadcast_to and
 * sum_to. Values by hand (every element of a rank-3
 * transpose against its index formula), gradients checked in float64 (size-1 and size-0 axes,
 * negative axes, more parts than a tape record holds, repeated gather indices), float32
 * forward, and errors that name the op and the shapes or the bad index. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tapegrad.h"
#include "check.h"

/* ---- reshape ---- */

static void test_reshape_values(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        tg_tensor *x = tg_arange(k ? TG_F32 : TG_F64, 0, 6, 1);
        tg_tensor *r = tg_reshape(x, TG_SHAPE(3, -1));
        assert_int_equal(r->ndim, 2);
        assert_int_equal(r->shape[0], 3);
        assert_int_equal(r->shape[1], 2);
        assert_int_equal(r->dtype, x->dtype);
        assert_false(r->persistent);
        expect_values(r, (double[]){0, 1, 2, 3, 4, 5}, 6, 0);
        tg_tensor *r3 = tg_reshape(r, TG_SHAPE(-1, 1, 2));
        assert_int_equal(r3->shape[0], 3);
        tg_tape_reset();
        tg_free(x);
    }
    tg_tensor *one = tg_full(TG_F64, TG_SHAPE(1, 1), 7);
    tg_tensor *scalar = tg_reshape(one, 0, NULL);
    assert_int_equal(scalar->ndim, 0);
    assert_true(tg_item(scalar) == 7);
    tg_tensor *empty = tg_zeros(TG_F64, TG_SHAPE(0, 4));
    tg_tensor *re = tg_reshape(empty, TG_SHAPE(4, 0, 2));
    assert_int_equal(re->numel, 0);
    tg_tape_reset();
    tg_free(one);
    tg_free(empty);
}

typedef struct {
    int ndim;
    int64_t shape[TG_MAX_DIMS];
} shape_arg;

static tg_tensor *apply_reshape(tg_tensor *x, void *ctx)
{
    shape_arg *s = ctx;
    return tg_reshape(x, s->ndim, s->shape);
}

static void test_reshape_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *x = param_f64(&rng, TG_SHAPE(2, 3, 2));
    shape_arg targets[] = {{2, {3, 4}}, {1, {-1}}, {4, {2, 1, -1, 3}}, {3, {12, 1, 1}}};
    for (size_t t = 0; t < sizeof targets / sizeof *targets; t++)
        expect_gradcheck_op(apply_reshape, &targets[t], x, "tg_reshape to rank %d",
                            targets[t].ndim);
    tg_free(x);
}

/* ---- transpose ---- */

static void test_transpose_values(void **state)
{
    (void)state;
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    tg_tensor *t = tg_transpose(x, 0, -1);
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->shape[1], 2);
    expect_values(t, (double[]){1, 4, 2, 5, 3, 6}, 6, 0);
    expect_values(tg_transpose(x, 1, 1), (double[]){1, 2, 3, 4, 5, 6}, 6, 0);
    tg_tape_reset();
    tg_free(x);
}

/* Every element of a rank-4 transpose against out[.., j, .., i, ..] = x[.., i, .., j, ..]. */
static void test_transpose_rank4(void **state)
{
    (void)state;
    tg_tensor *flat = tg_arange(TG_F32, 0, 2 * 3 * 4 * 5, 1);
    tg_tensor *x = tg_reshape(flat, TG_SHAPE(2, 3, 4, 5));
    int pairs[][2] = {{0, 3}, {1, 2}, {-1, 1}, {0, 1}, {2, 3}};
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
        tg_tensor *t = tg_transpose(x, pairs[p][0], pairs[p][1]);
        int a = (pairs[p][0] + 4) % 4, b = (pairs[p][1] + 4) % 4;
        assert_int_equal(t->shape[a], x->shape[b]);
        int64_t idx[4], src[4];
        for (idx[0] = 0; idx[0] < t->shape[0]; idx[0]++)
            for (idx[1] = 0; idx[1] < t->shape[1]; idx[1]++)
                for (idx[2] = 0; idx[2] < t->shape[2]; idx[2]++)
                    for (idx[3] = 0; idx[3] < t->shape[3]; idx[3]++) {
                        memcpy(src, idx, sizeof src);
                        src[a] = idx[b];
                        src[b] = idx[a];
                        assert_true(tg_get(t, idx) == tg_get(x, src));
                    }
    }
    tg_tape_reset();
    tg_free(flat);
}

typedef struct {
    int a, b;
} axes_arg;

static tg_tensor *apply_transpose(tg_tensor *x, void *ctx)
{
    axes_arg *s = ctx;
    return tg_transpose(x, s->a, s->b);
}

static void test_transpose_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 2);
    tg_tensor *xs[] = {param_f64(&rng, TG_SHAPE(3, 4)), param_f64(&rng, TG_SHAPE(2, 3, 4)),
                       param_f64(&rng, TG_SHAPE(2, 1, 3, 2)), param_f64(&rng, TG_SHAPE(1, 5))};
    for (size_t k = 0; k < sizeof xs / sizeof *xs; k++) {
        int nd = xs[k]->ndim;
        for (int a = -nd; a < nd; a++)
            for (int b = a + 1; b < nd; b++) {
                axes_arg s = {a, b};
                expect_gradcheck_op(apply_transpose, &s, xs[k], "tg_transpose %d,%d", a, b);
            }
        tg_free(xs[k]);
    }
    tg_tensor *e = param_f64(&rng, TG_SHAPE(0, 3));
    axes_arg s = {0, 1};
    expect_gradcheck_op(apply_transpose, &s, e, "tg_transpose 0,1");
    tg_free(e);
}

/* ---- concat ---- */

static void test_concat_values(void **state)
{
    (void)state;
    tg_tensor *a = tg_from_data(TG_F64, TG_SHAPE(1, 2), (double[]){1, 2});
    tg_tensor *b = tg_from_data(TG_F64, TG_SHAPE(2, 2), (double[]){3, 4, 5, 6});
    tg_tensor *c0 = tg_concat((tg_tensor *[]){a, b}, 2, 0);
    assert_int_equal(c0->shape[0], 3);
    expect_values(c0, (double[]){1, 2, 3, 4, 5, 6}, 6, 0);
    tg_tensor *at = tg_transpose(a, 0, 1); /* [2, 1] */
    tg_tensor *c1 = tg_concat((tg_tensor *[]){at, b, at}, 3, -1);
    assert_int_equal(c1->shape[0], 2);
    assert_int_equal(c1->shape[1], 4);
    expect_values(c1, (double[]){1, 3, 4, 1, 2, 5, 6, 2}, 8, 0);
    tg_tensor *empty = tg_zeros(TG_F64, TG_SHAPE(0, 2));
    expect_values(tg_concat((tg_tensor *[]){empty, a, empty}, 3, 0), (double[]){1, 2}, 2, 0);
    tg_tape_reset();
    tg_free(a);
    tg_free(b);
    tg_free(empty);
}

/* Nine parts: more than a record's TG_MAX_INPUTS, so the op concatenates in groups. */
static void test_concat_many_parts(void **state)
{
    (void)state;
    tg_tensor *parts[9];
    for (int k = 0; k < 9; k++)
        parts[k] = tg_set_requires_grad(tg_full(TG_F32, TG_SHAPE(2, 1), k), true);
    tg_tensor *c = tg_concat(parts, 9, 1);
    assert_int_equal(c->shape[1], 9);
    for (int k = 0; k < 9; k++) {
        assert_true(tg_get(c, (int64_t[]){0, k}) == k);
        assert_true(tg_get(c, (int64_t[]){1, k}) == k);
    }
    tg_tensor *w = tg_arange(TG_F32, 0, 9, 1); /* d/dpart_k Σ c·w = w_k */
    tg_backward(tg_sum(tg_mul(c, w)));
    for (int k = 0; k < 9; k++) {
        expect_values(parts[k]->grad, (double[]){k, k}, 2, 0);
        tg_free(parts[k]);
    }
    tg_tape_reset();
    tg_free(w);
}

typedef struct {
    int n, axis;
    tg_tensor *w;
} concat_arg;

static tg_tensor *concat_fn(tg_tensor **in, int n, void *ctx)
{
    concat_arg *c = ctx;
    return tg_sum(tg_mul(tg_concat(in, n, c->axis), c->w));
}

static void check_concat(tg_rng *rng, int n, int axis, int ndim, const int64_t *shape,
                         const int64_t *sizes)
{
    tg_tensor *in[8];
    int64_t s[TG_MAX_DIMS], total = 0;
    memcpy(s, shape, (size_t)ndim * sizeof *s);
    int ax = (axis + ndim) % ndim;
    for (int k = 0; k < n; k++) {
        s[ax] = sizes[k];
        total += sizes[k];
        in[k] = param_f64(rng, ndim, s);
    }
    s[ax] = total;
    concat_arg c = {n, axis, tg_rand_normal(TG_F64, ndim, s, 0, 1, rng)};
    char str[96];
    expect_gradcheck(concat_fn, in, n, &c, "tg_concat n=%d axis=%d -> %s", n, axis,
                     tg_shape_str(c.w, str, sizeof str));
    for (int k = 0; k < n; k++) tg_free(in[k]);
    tg_free(c.w);
}

static void test_concat_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    check_concat(&rng, 2, 0, 2, (int64_t[]){0, 3}, (int64_t[]){2, 1});
    check_concat(&rng, 3, 1, 2, (int64_t[]){2, 0}, (int64_t[]){1, 3, 2});
    check_concat(&rng, 3, -1, 3, (int64_t[]){2, 2, 0}, (int64_t[]){1, 0, 2});
    check_concat(&rng, 2, -2, 3, (int64_t[]){1, 0, 3}, (int64_t[]){2, 1});
    check_concat(&rng, 1, 0, 1, (int64_t[]){0}, (int64_t[]){4});
    check_concat(&rng, 6, 1, 2, (int64_t[]){2, 0}, (int64_t[]){1, 2, 1, 1, 3, 1});
}

/* ---- gather_rows ---- */

static void test_gather_values(void **state)
{
    (void)state;
    tg_tensor *a = tg_set_requires_grad(
        tg_from_data(TG_F64, TG_SHAPE(3, 2), (double[]){1, 2, 3, 4, 5, 6}), true);
    tg_tensor *idx = tg_from_data(TG_I32, TG_SHAPE(4), (int32_t[]){2, 0, 2, 1});
    tg_tensor *g = tg_gather_rows(a, idx);
    assert_int_equal(g->shape[0], 4);
    assert_int_equal(g->shape[1], 2);
    expect_values(g, (double[]){5, 6, 1, 2, 5, 6, 3, 4}, 8, 0);
    tg_fill_(idx, 0); /* the op keeps its own copy of the indices for backward */
    tg_backward(tg_sum(g));
    expect_values(a->grad, (double[]){1, 1, 1, 1, 2, 2}, 6, 0); /* row 2 twice: scatter-add */
    tg_tape_reset();
    tg_tensor *none = tg_zeros(TG_I32, TG_SHAPE(0));
    tg_tensor *e = tg_gather_rows(a, none);
    assert_int_equal(e->shape[0], 0);
    assert_int_equal(e->shape[1], 2);
    tg_tape_reset();
    tg_free(a);
    tg_free(idx);
    tg_free(none);
}

static tg_tensor *apply_gather(tg_tensor *x, void *ctx) { return tg_gather_rows(x, ctx); }

typedef struct { tg_tensor *index, *weights; } gather_ctx;

/* Σ gather_rows(x, index)·R: an embedding lookup, whose backward scatter-adds into x's gradient */
static tg_tensor *f_gather(tg_tensor **in, int n, void *p)
{
    (void)n;
    gather_ctx *c = p;
    tg_tensor *y = tg_gather_rows(in[0], c->index);
    if (!c->weights) c->weights = tg_rand_normal(y->dtype, y->ndim, y->shape, 0, 1, NULL);
    return tg_sum(tg_mul(y, c->weights));
}

static void test_gather_gradcheck(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    tg_tensor *idx = tg_from_data(TG_I32, TG_SHAPE(5), (int32_t[]){3, 0, 3, 3, 1});
    tg_tensor *xs[] = {param_f64(&rng, TG_SHAPE(4)), param_f64(&rng, TG_SHAPE(4, 3)),
                       param_f64(&rng, TG_SHAPE(4, 1, 2)), param_f64(&rng, TG_SHAPE(4, 0))};
    for (size_t k = 0; k < sizeof xs / sizeof *xs; k++) {
        expect_gradcheck_op(apply_gather, idx, xs[k], "tg_gather_rows K=5");
        gather_ctx c = {idx, NULL};
        if (xs[k]->numel > 0) expect_lazy_grads(f_gather, &xs[k], 1, &c, "tg_gather_rows");
        tg_free(c.weights);
        tg_free(xs[k]);
    }
    tg_free(idx);
}


/* ---- narrow, scatter_rows, broadcast_to, sum_to ---- */

typedef struct {
    int axis;
    int64_t start, length;
} narrow_args;

static tg_tensor *apply_narrow(tg_tensor *x, void *ctx)
{
    narrow_args *a = ctx;
    return tg_narrow(x, a->axis, a->start, a->length);
}

static void test_narrow(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    tg_tensor *x = tg_arange(TG_F64, 0, 24, 1), *x3 = tg_reshape(x, TG_SHAPE(2, 3, 4));
    tg_tensor *y = tg_narrow(x3, 1, 1, 2); /* x3[:, 1:3, :] */
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[1], 2);
    expect_values(y, (double[]){4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23}, 16, 0);
    expect_values(tg_narrow(x3, -1, 3, 1), (double[]){3, 7, 11, 15, 19, 23}, 6, 0);
    tg_tape_reset();
    narrow_args cases[] = {{1, 1, 2}, {0, 1, 1}, {2, 0, 4}, {-1, 2, 0}, {2, 3, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        tg_tensor *p = param_f64(&rng, TG_SHAPE(2, 3, 4));
        expect_gradcheck_op(apply_narrow, &cases[k], p, "tg_narrow axis=%d start=%lld len=%lld",
                            cases[k].axis, (long long)cases[k].start, (long long)cases[k].length);
        tg_free(p);
    }
    x3 = tg_reshape(x, TG_SHAPE(2, 3, 4)); /* the checks above reset the tape */
    EXPECT_ERROR("tg_narrow: [2, 2 + 2) is outside axis 1", tg_narrow(x3, 1, 2, 2));
    EXPECT_ERROR("tg_narrow: axis 3 out of range", tg_narrow(x, 3, 0, 1));
    tg_free(x);
}

static tg_tensor *apply_scatter(tg_tensor *x, void *ctx) { return tg_scatter_rows(x, ctx, 4); }

static void test_scatter_rows(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 12);
    tg_tensor *idx = tg_from_data(TG_I32, TG_SHAPE(3), (int32_t[]){2, 0, 2});
    tg_tensor *a = tg_from_data(TG_F64, TG_SHAPE(3, 2), (double[]){1, 2, 3, 4, 5, 6});
    expect_values(tg_scatter_rows(a, idx, 4), (double[]){3, 4, 0, 0, 6, 8, 0, 0}, 8, 0);
    tg_tape_reset();
    tg_tensor *p = param_f64(&rng, TG_SHAPE(3, 2));
    expect_gradcheck_op(apply_scatter, idx, p, "tg_scatter_rows n_rows=4");
    EXPECT_ERROR("tg_scatter_rows: index[0] = 2 is out of range for 2 rows",
                 tg_scatter_rows(a, idx, 2));
    tg_free(p), tg_free(a), tg_free(idx);
}

typedef struct {
    int ndim;
    int64_t shape[4];
} bcast_shape;

static tg_tensor *apply_broadcast(tg_tensor *x, void *ctx)
{
    bcast_shape *a = ctx;
    return tg_broadcast_to(x, a->ndim, a->shape);
}

static tg_tensor *apply_sum_to(tg_tensor *x, void *ctx)
{
    bcast_shape *a = ctx;
    return tg_sum_to(x, a->ndim, a->shape);
}

static void test_broadcast_to_and_sum_to(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 13);
    tg_tensor *col = tg_from_data(TG_F64, TG_SHAPE(2, 1), (double[]){1, 2});
    tg_tensor *b = tg_broadcast_to(col, TG_SHAPE(3, 2, 3));
    assert_int_equal(b->numel, 18);
    expect_values(tg_narrow(b, 0, 2, 1), (double[]){1, 1, 1, 2, 2, 2}, 6, 0);
    expect_values(tg_sum_to(b, TG_SHAPE(2, 1)), (double[]){9, 18}, 2, 0);
    expect_values(tg_sum_to(b, 0, NULL), (double[]){27}, 1, 0);
    tg_tape_reset();
    bcast_shape big = {3, {3, 2, 3}}, small = {2, {2, 1}}, row = {2, {1, 3}}, scalar = {0, {0}};
    tg_tensor *p = param_f64(&rng, TG_SHAPE(2, 1)), *q = param_f64(&rng, TG_SHAPE(3, 2, 3));
    expect_gradcheck_op(apply_broadcast, &big, p, "tg_broadcast_to [3, 2, 3]");
    expect_gradcheck_op(apply_sum_to, &small, q, "tg_sum_to [2, 1]");
    expect_gradcheck_op(apply_sum_to, &row, q, "tg_sum_to [1, 3]");
    expect_gradcheck_op(apply_sum_to, &scalar, q, "tg_sum_to []");
    EXPECT_ERROR("tg_broadcast_to: [2, 1] f64 does not broadcast", tg_broadcast_to(col, TG_SHAPE(3, 3)));
    EXPECT_ERROR("tg_sum_to: [4] f64 does not broadcast", tg_sum_to(col, TG_SHAPE(4)));
    tg_free(p), tg_free(q), tg_free(col);
}

/* float32 forward of all four ops against float64. */
static void test_float32_forward(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 9);
    tg_tensor *x = tg_rand_normal(TG_F64, TG_SHAPE(4, 3, 5), 0, 1, &rng);
    tg_tensor *x32 = tg_to_dtype(x, TG_F32);
    tg_tensor *idx = tg_from_data(TG_I32, TG_SHAPE(3), (int32_t[]){1, 3, 1});
    tg_tensor *pairs[][2] = {
        {tg_reshape(x, TG_SHAPE(-1, 5)), tg_reshape(x32, TG_SHAPE(-1, 5))},
        {tg_transpose(x, 0, 2), tg_transpose(x32, 0, 2)},
        {tg_concat((tg_tensor *[]){x, x}, 2, 1), tg_concat((tg_tensor *[]){x32, x32}, 2, 1)},
        {tg_gather_rows(x, idx), tg_gather_rows(x32, idx)},
    };
    for (int p = 0; p < 4; p++) {
        assert_int_equal(pairs[p][1]->dtype, TG_F32);
        assert_true(tg_same_shape(pairs[p][0], pairs[p][1]));
        for (int64_t i = 0; i < pairs[p][0]->numel; i++)
            assert_true(fabs(tg_get_flat(pairs[p][0], i) - tg_get_flat(pairs[p][1], i)) < 1e-6);
    }
    tg_tape_reset();
    tg_free(x);
    tg_free(x32);
    tg_free(idx);
}

static void test_errors(void **state)
{
    (void)state;
    tg_tensor *x = tg_zeros(TG_F64, TG_SHAPE(2, 3));
    tg_tensor *y = tg_zeros(TG_F64, TG_SHAPE(3, 3));
    tg_tensor *y32 = tg_zeros(TG_F32, TG_SHAPE(2, 3));
    tg_tensor *idx = tg_from_data(TG_I32, TG_SHAPE(3), (int32_t[]){0, 1, 2});
    tg_tensor *neg = tg_from_data(TG_I32, TG_SHAPE(1), (int32_t[]){-1});
    EXPECT_ERROR("tg_reshape", tg_reshape(x, TG_SHAPE(4, 2)));
    EXPECT_ERROR("[2, 3] f64 into [4, 2]", tg_reshape(x, TG_SHAPE(4, 2)));
    EXPECT_ERROR("tg_reshape", tg_reshape(x, TG_SHAPE(-1, -1)));
    EXPECT_ERROR("tg_reshape", tg_reshape(x, TG_SHAPE(4, -1)));
    EXPECT_ERROR("tg_reshape", tg_reshape(x, TG_SHAPE(0, -1)));
    EXPECT_ERROR("tg_reshape", tg_reshape(x, TG_SHAPE(-2, -3)));
    EXPECT_ERROR("tg_transpose", tg_transpose(x, 0, 2));
    EXPECT_ERROR("tg_concat", tg_concat((tg_tensor *[]){x, y}, 2, 1));
    EXPECT_ERROR("part 1 is [3, 3] f64", tg_concat((tg_tensor *[]){x, y}, 2, 1));
    EXPECT_ERROR("tg_concat", tg_concat((tg_tensor *[]){x, y32}, 2, 0));
    EXPECT_ERROR("tg_concat", tg_concat(NULL, 0, 0));
    EXPECT_ERROR("tg_concat", tg_concat((tg_tensor *[]){x}, 1, 2));
    EXPECT_ERROR("tg_gather_rows", tg_gather_rows(x, idx));
    EXPECT_ERROR("index[2] = 2", tg_gather_rows(x, idx));
    EXPECT_ERROR("index[0] = -1", tg_gather_rows(x, neg));
    EXPECT_ERROR("tg_gather_rows", tg_gather_rows(x, x));
    tg_free(x);
    tg_free(y);
    tg_free(y32);
    tg_free(idx);
    tg_free(neg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reshape_values),    cmocka_unit_test(test_reshape_gradcheck),
        cmocka_unit_test(test_transpose_values),  cmocka_unit_test(test_transpose_rank4),
        cmocka_unit_test(test_transpose_gradcheck), cmocka_unit_test(test_concat_values),
        cmocka_unit_test(test_concat_many_parts), cmocka_unit_test(test_concat_gradcheck),
        cmocka_unit_test(test_gather_values),     cmocka_unit_test(test_gather_gradcheck),
        cmocka_unit_test(test_float32_forward),   cmocka_unit_test(test_errors),
        cmocka_unit_test(test_narrow),            cmocka_unit_test(test_scatter_rows),
        cmocka_unit_test(test_broadcast_to_and_sum_to),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    check_summary();
    return failed;
}
