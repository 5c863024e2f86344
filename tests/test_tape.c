/* The tape: recording, backward, accumulation, fan-out, no-grad, reset, errors, debugging aids. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tapegrad.h"
#include "tests/check.h"

static int teardown(void **state) { (void)state; tg_tape_reset(); return 0; }

static void test_chain_rule_scalar(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(1), 2.0), true);
    /* y = exp(x)·x² ; dy/dx = exp(x)(x² + 2x) */
    tg_tensor *y = tg_mul(tg_exp(x), tg_square(x));
    tg_backward(y);
    assert_near(tg_item(y), exp(2.0) * 4, 1e-12);
    assert_near(tg_item(x->grad), exp(2.0) * 8, 1e-12);
    tg_free(x);
}

static void test_fan_out_accumulates(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_full(TG_F32, TG_SHAPE(3), 3.0), true);
    /* y = sum(x·x + x) -> dy/dx = 2x + 1 = 7 */
    tg_tensor *y = tg_sum(tg_add(tg_mul(x, x), x));
    tg_backward(y);
    for (int i = 0; i < 3; i++) assert_near(tg_get_flat(x->grad, i), 7.0, 1e-6);
    tg_free(x);
}

static void test_leaf_gradients_accumulate_until_zeroed(void **state)
{
    (void)state;
    tg_tensor *w = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(2), 1.5), true);
    for (int step = 0; step < 3; step++) {
        tg_backward(tg_sum(tg_mul_scalar(w, 2.0)));
        tg_tape_reset();
    }
    assert_near(tg_get_flat(w->grad, 0), 6.0, 0);
    tg_zero_grad(w);
    tg_backward(tg_sum(w));
    assert_near(tg_get_flat(w->grad, 1), 1.0, 0);
    tg_free(w);
}

static void test_backward_twice_on_same_tape(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(1), 3.0), true);
    tg_tensor *y = tg_square(tg_mul_scalar(x, 2.0)); /* 4x², dy/dx = 8x = 24 */
    tg_backward(y);
    tg_backward(y); /* intermediate grads restart at zero; the leaf accumulates */
    assert_near(tg_item(x->grad), 48.0, 1e-12);
    tg_free(x);
}

static void test_long_chain(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(1), 1.0), true);
    tg_tensor *h = x;
    for (int i = 0; i < 10000; i++) h = tg_mul_scalar(h, 1.0001);
    tg_backward(h);
    assert_near(tg_item(x->grad), pow(1.0001, 10000), 1e-9);
    assert_int_equal(tg_tape_length(), 10000);
    tg_free(x);
}

static void test_backward_with_output_gradient(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_from_data(TG_F64, TG_SHAPE(3), (double[]){1, 2, 3}), true);
    tg_tensor *g = tg_from_data(TG_F64, TG_SHAPE(3), (double[]){1, 10, 100});
    tg_backward_with(tg_square(x), g); /* grad = 2x·g */
    assert_near(tg_get_flat(x->grad, 0), 2, 0);
    assert_near(tg_get_flat(x->grad, 1), 40, 0);
    assert_near(tg_get_flat(x->grad, 2), 600, 0);
    tg_free(x);
    tg_free(g);
}

static void test_no_grad_records_nothing(void **state)
{
    (void)state;
    tg_tensor *w = tg_set_requires_grad(tg_ones(TG_F32, TG_SHAPE(4)), true);
    bool previous = tg_set_grad_enabled(false);
    tg_tensor *y = tg_relu(tg_mul(w, w));
    tg_set_grad_enabled(previous);
    assert_int_equal(tg_tape_length(), 0);
    assert_false(y->requires_grad);
    assert_null(w->grad);
    EXPECT_ERROR("does not require grad", tg_backward(tg_sum(y)));
    tg_free(w);
}

static void test_only_inputs_needing_grad_get_one(void **state)
{
    (void)state;
    tg_tensor *a = tg_set_requires_grad(tg_ones(TG_F64, TG_SHAPE(2)), true);
    tg_tensor *c = tg_ones(TG_F64, TG_SHAPE(2));
    tg_backward(tg_sum(tg_mul(a, c)));
    assert_non_null(a->grad);
    assert_null(c->grad);
    tg_free(a);
    tg_free(c);
}

static void test_non_scalar_backward_is_an_error(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_ones(TG_F32, TG_SHAPE(2, 2)), true);
    EXPECT_ERROR("not a scalar", tg_backward(tg_relu(x)));
    tg_free(x);
}

static void test_use_after_reset_is_detected(void **state)
{
    (void)state;
    tg_set_debug_checks(true);
    tg_tensor *x = tg_set_requires_grad(tg_ones(TG_F32, TG_SHAPE(2)), true);
    tg_tensor *h = tg_relu(x);
    tg_tape_reset();
    EXPECT_ERROR("used after release", tg_relu(h));
    /* A step that outgrew the first chunk: its chunks are merged at the reset, and the check must
     * still read poisoned memory, not freed memory (ASan would report the latter). */
    tg_tensor *big = tg_ones(TG_F32, TG_SHAPE(1000, 1000));
    for (volatile int step = 0; step < 3; step++) { /* volatile: EXPECT_ERROR longjmps */
        h = tg_relu(big);
        tg_tape_reset();
        EXPECT_ERROR("used after release", tg_relu(h));
    }
    tg_free(big);
    tg_free(x);
}


/* Without debug checks (the release build's default) a kept intermediate is still refused, by
 * its generation: by ops and by element access, one step later and after a merge of chunks. */
static void test_use_after_reset_detected_in_release(void **state)
{
    (void)state;
    tg_set_debug_checks(false);
    tg_tensor *x = tg_set_requires_grad(tg_ones(TG_F32, TG_SHAPE(2)), true);
    tg_tensor *h = tg_relu(x);
    tg_tape_reset();
    EXPECT_ERROR("used after release", tg_relu(h));
    h = tg_relu(x);
    tg_tape_reset();
    tg_relu(x); /* the next step records the same op: h's memory is not reused by it */
    EXPECT_ERROR("used after release", tg_item(tg_sum(h)));
    EXPECT_ERROR("used after release", tg_get_flat(h, 0));
    tg_tensor *big = tg_ones(TG_F32, TG_SHAPE(1000, 1000));
    for (volatile int step = 0; step < 3; step++) {
        h = tg_relu(big);
        tg_tape_reset();
        EXPECT_ERROR("used after release", tg_relu(h));
    }
    tg_free(big), tg_free(x);
#ifndef NDEBUG
    tg_set_debug_checks(true);
#endif
}

/* The tape's record array is allocated through the counted allocator too. */
static void test_record_array_is_counted(void **state)
{
    (void)state;
    tg_tape_free();
    tg_tensor *x = tg_set_requires_grad(tg_ones(TG_F32, TG_SHAPE(4)), true);
    tg_tensor *big = tg_set_requires_grad(tg_ones(TG_F32, TG_SHAPE(1 << 20)), true);
    tg_relu(big); /* a first step whose arena chunk is big enough for the next */
    tg_tape_reset();
    tg_relu(big);
    tg_tape_reset();
    uint64_t before = tg_alloc_count();
    for (int i = 0; i < 600; i++) tg_relu(x); /* record capacity 256 -> 512 -> 1024 */
    assert_int_equal(tg_tape_length(), 600);
    assert_int_equal(tg_alloc_count() - before, 2);
    tg_tape_reset();
    tg_free(x), tg_free(big);
}

/* Each thread has its own tape; one that ran ops returns its arena with tg_tape_free() (the
 * sanitizer suite's leak checker fails this test if anything is left). */
static void *thread_step(void *arg)
{
    tg_tensor *x = arg;
    tg_backward(tg_sum(tg_square(x)));
    tg_tape_reset();
    bool used = tg_tape_arena_bytes() > 0;
    tg_tape_free();
    return (void *)(intptr_t)(used && tg_tape_arena_bytes() == 0 && tg_tape_length() == 0);
}

static void test_tape_per_thread_and_freed(void **state)
{
    (void)state;
    tg_tensor *x[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        x[i] = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(4), i + 1), true);
        assert_int_equal(pthread_create(&t[i], NULL, thread_step, x[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        void *ok;
        assert_int_equal(pthread_join(t[i], &ok), 0);
        assert_true(ok);
        assert_near(tg_get_flat(x[i]->grad, 3), 2.0 * (i + 1), 0); /* d/dx Σx² = 2x */
        tg_free(x[i]);
    }
}

static void test_freeing_an_intermediate_is_an_error(void **state)
{
    (void)state;
    tg_tensor *x = tg_ones(TG_F32, TG_SHAPE(2));
    tg_tensor *h = tg_relu(x);
    EXPECT_ERROR("owned by the tape", tg_free(h));
    tg_free(x);
}

static void test_dtype_mismatch_is_an_error(void **state)
{
    (void)state;
    tg_tensor *a = tg_ones(TG_F32, TG_SHAPE(2)), *b = tg_ones(TG_F64, TG_SHAPE(2));
    tg_tensor *labels = tg_zeros(TG_I32, TG_SHAPE(2));
    EXPECT_ERROR("tg_add: dtypes differ", tg_add(a, b));
    EXPECT_ERROR("tg_exp: expected a float32 or float64", tg_exp(labels));
    tg_free(a), tg_free(b), tg_free(labels);
}

static void test_anomaly_mode_names_the_op(void **state)
{
    (void)state;
    tg_tensor *x = tg_from_data(TG_F64, TG_SHAPE(2), (double[]){1, -1});
    tg_set_anomaly_mode(true);
    EXPECT_ERROR("tg_log produced", tg_log(tg_mul_scalar(x, 2)));
    /* backward: sqrt is finite at 0, its derivative 1/(2·sqrt(x)) is not */
    tg_tensor *z = tg_set_requires_grad(tg_zeros(TG_F64, TG_SHAPE(2)), true);
    EXPECT_ERROR("anomaly: backward of tg_sqrt produced inf at element 0",
                 tg_backward(tg_sum(tg_sqrt(z))));
    tg_free(z);
    tg_set_anomaly_mode(false);
    tg_tensor *y = tg_log(x); /* off: NaN passes silently, like PyTorch */
    assert_true(isnan(tg_get_flat(y, 1)));
    tg_free(x);
}

static void test_arena_stops_growing(void **state)
{
    (void)state;
    tg_tensor *w = tg_set_requires_grad(tg_rand_normal(TG_F32, TG_SHAPE(64, 64), 0, 1, NULL), true);
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(8, 64), 0, 1, NULL);
    uint64_t after_warmup = 0;
    for (int step = 0; step < 20; step++) {
        if (step == 3) after_warmup = tg_alloc_count();
        tg_tensor *h = x;
        for (int l = 0; l < 50; l++) h = tg_tanh(tg_matmul(h, w)); /* > 1 MiB: several chunks */
        tg_backward(tg_sum(h));
        tg_tape_reset();
    }
    assert_int_equal(tg_alloc_count(), after_warmup);
    tg_free(w), tg_free(x);
}

static void test_tape_print_and_dot(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_name(tg_set_requires_grad(tg_ones(TG_F32, TG_SHAPE(2, 3)), true), "x");
    tg_tensor *other = tg_exp(x); /* recorded before loss, but loss does not depend on it */
    tg_tensor *loss = tg_sum(tg_relu(x));
    char path[] = "/tmp/tg_tape_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    uint64_t allocs = tg_alloc_count();
    assert_int_equal(tg_tape_write_dot(path, loss), 0);
    assert_true(tg_alloc_count() > allocs); /* its record marks come from the counted allocator */
    FILE *f = fopen(path, "r");
    char text[4096] = {0};
    assert_true(fread(text, 1, sizeof text - 1, f) > 0);
    fclose(f);
    unlink(path);
    assert_non_null(strstr(text, "digraph"));
    assert_non_null(strstr(text, "tg_relu"));
    assert_non_null(strstr(text, "tg_sum"));
    assert_null(strstr(text, "tg_exp"));
    (void)other;
    FILE *mem = tmpfile();
    tg_tape_print(mem);
    rewind(mem);
    memset(text, 0, sizeof text);
    assert_true(fread(text, 1, sizeof text - 1, mem) > 0);
    fclose(mem);
    assert_non_null(strstr(text, "3 records")); /* the text lists the whole tape */
    tg_free(x);
}

static void test_creation_and_access(void **state)
{
    (void)state;
    tg_tensor *a = tg_arange(TG_I32, 0, 6, 1);
    assert_int_equal(a->numel, 6);
    assert_int_equal((int)tg_get_flat(a, 5), 5);
    tg_tensor *m = tg_full(TG_F64, TG_SHAPE(2, 3), 0.5);
    tg_set(m, (int64_t[]){1, 2}, 7);
    assert_near(tg_get(m, (int64_t[]){1, 2}), 7, 0);
    assert_near(tg_get_flat(m, 5), 7, 0);
    EXPECT_ERROR("out of range", tg_get(m, (int64_t[]){2, 0}));
    tg_tensor *f = tg_to_dtype(m, TG_F32);
    assert_int_equal(f->dtype, TG_F32);
    assert_near(tg_get_flat(f, 0), 0.5, 0);
    char s[64];
    assert_string_equal(tg_shape_str(m, s, sizeof s), "[2, 3] f64");
    FILE *mem = tmpfile();
    tg_print(m, mem);
    rewind(mem);
    char text[256] = {0};
    assert_true(fread(text, 1, sizeof text - 1, mem) > 0);
    fclose(mem);
    assert_non_null(strstr(text, "[[0.5, 0.5, 0.5],"));
    /* Flat access is checked too, and int32 tensors refuse what an int32 cannot hold. */
    EXPECT_ERROR("tg_get_flat: index 6 out of range for 6 elements", tg_get_flat(m, 6));
    EXPECT_ERROR("tg_set_flat: index -1 out of range", tg_set_flat(m, -1, 0));
    EXPECT_ERROR("does not fit in an int32", tg_set_flat(a, 0, NAN));
    EXPECT_ERROR("does not fit in an int32", tg_set_flat(a, 0, 3e9));
    tg_set_flat(a, 0, -2.7);
    assert_near(tg_get_flat(a, 0), -2, 0);
    EXPECT_ERROR("too many elements", tg_zeros(TG_F32, TG_SHAPE(1 << 20, 1 << 20, 1 << 20)));
    tg_free(a), tg_free(m), tg_free(f);
}

/* Before the first chunk the arena's free range is empty ({NULL, NULL}): a request of 0 bytes
 * must still get memory (from a new chunk), never the range's NULL start. */
static void test_zero_byte_scratch_before_first_chunk(void **state)
{
    (void)state;
    tg_tape_free();
    assert_non_null(tg_op_scratch(0));
    tg_tensor *e = tg_op_output(TG_F32, TG_SHAPE(0));
    assert_non_null(e->data);
    assert_int_equal(e->numel, 0);
    tg_tape_reset();
}

/* Header checks of intermediates name the op and what is wrong, like those of tg_zeros. */
static void test_op_output_checks_its_shape(void **state)
{
    (void)state;
    EXPECT_ERROR("tg_op_output: negative size -2 in axis 1", tg_op_output(TG_F32, TG_SHAPE(3, -2)));
    EXPECT_ERROR("tg_op_output: a tensor with axis 2 of size 1048576 has too many elements",
                 tg_op_output(TG_F32, TG_SHAPE(1 << 20, 1 << 20, 1 << 20)));
    EXPECT_ERROR("tg_op_output: rank 7 not supported",
                 tg_op_output(TG_F32, TG_SHAPE(1, 1, 1, 1, 1, 1, 1)));
    EXPECT_ERROR("unknown dtype 9", tg_op_output((tg_dtype)9, TG_SHAPE(2)));
    tg_tensor *z = tg_op_output(TG_F64, TG_SHAPE(0, 1 << 30, 1 << 30));
    assert_int_equal(z->numel, 0);
    tg_tape_reset();
}

static void test_rng_is_deterministic(void **state)
{
    (void)state;
    tg_rng a, b;
    tg_rng_seed(&a, 42);
    tg_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_true(tg_rng_next(&a) == tg_rng_next(&b));
    double sum = 0, sq = 0;
    for (int i = 0; i < 100000; i++) {
        double z = tg_rng_normal(&a);
        sum += z, sq += z * z;
    }
    assert_near(sum / 1e5, 0, 0.02);
    assert_near(sq / 1e5, 1, 0.02);
    for (int i = 0; i < 1000; i++) assert_true(tg_rng_below(&a, 7) < 7);
}

/* ---- lazy zero_grad ---- */

/* tg_zero_grad only marks a gradient pending; tg_get_grad writes the zeros and clears the mark; a
 * tensor without a gradient keeps none. */
static void test_zero_grad_is_lazy(void **state)
{
    (void)state;
    tg_tensor *p = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(3), 2.0), true);
    tg_zero_grad(p);
    assert_null(p->grad);
    assert_null(tg_get_grad(p));
    tg_backward(tg_sum(tg_mul(p, p)));
    tg_tape_reset();
    tg_zero_grad(p);
    tg_zero_grad(p);
    assert_true(p->grad->zero_pending);
    assert_near(((const double *)p->grad->data)[0], 4.0, 0); /* not cleared yet */
    assert_near(tg_get_flat(p->grad, 0), 0.0, 0);             /* but reads as zero */
    tg_tensor *g = tg_get_grad(p);
    assert_ptr_equal(g, p->grad);
    assert_false(p->grad->zero_pending);
    expect_values(g, (double[]){0, 0, 0}, 3, 0);
    tg_free(p);
}

/* An op whose backward gives only its first input a gradient (the second, though it requires
 * grad, is treated as a constant). */
static void first_only_backward(const tg_node *node)
{
    double *gx = tg_op_grad(node->in[0]);
    const double *g = tg_op_grad_out(node);
    for (int64_t i = 0; i < node->out->numel; i++) gx[i] += g[i];
}
static const tg_op first_only_op = {"first_only", first_only_backward, NULL};

static tg_tensor *first_only(tg_tensor *x, tg_tensor *c)
{
    tg_tensor *y = tg_op_output(x->dtype, x->ndim, x->shape);
    memcpy(y->data, x->data, tg_nbytes(x));
    tg_op_record(&first_only_op, y, 2, (tg_tensor *[]){x, c}, 0);
    return y;
}

/* Anomaly mode reads the inputs' gradients after each backward: a gradient the backward left
 * pending (NaN in its stale buffer) reads as zero, not as the op's anomaly. */
static void test_anomaly_mode_skips_pending_gradients(void **state)
{
    (void)state;
    tg_tensor *x = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(2), 1.0), true);
    tg_tensor *c = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(2), 1.0), true);
    tg_backward(tg_sum(tg_mul(x, c)));
    tg_tape_reset();
    tg_fill_(c->grad, NAN);
    tg_zero_grad(c);
    tg_set_anomaly_mode(true);
    tg_backward(tg_sum(first_only(x, c)));
    tg_set_anomaly_mode(false);
    expect_values(tg_get_grad(c), (double[]){0, 0}, 2, 0);
    tg_free(x), tg_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_chain_rule_scalar, teardown),
        cmocka_unit_test_teardown(test_fan_out_accumulates, teardown),
        cmocka_unit_test_teardown(test_leaf_gradients_accumulate_until_zeroed, teardown),
        cmocka_unit_test_teardown(test_backward_twice_on_same_tape, teardown),
        cmocka_unit_test_teardown(test_long_chain, teardown),
        cmocka_unit_test_teardown(test_backward_with_output_gradient, teardown),
        cmocka_unit_test_teardown(test_no_grad_records_nothing, teardown),
        cmocka_unit_test_teardown(test_only_inputs_needing_grad_get_one, teardown),
        cmocka_unit_test_teardown(test_non_scalar_backward_is_an_error, teardown),
        cmocka_unit_test_teardown(test_use_after_reset_is_detected, teardown),
        cmocka_unit_test_teardown(test_use_after_reset_detected_in_release, teardown),
        cmocka_unit_test_teardown(test_record_array_is_counted, teardown),
        cmocka_unit_test_teardown(test_tape_per_thread_and_freed, teardown),
        cmocka_unit_test_teardown(test_freeing_an_intermediate_is_an_error, teardown),
        cmocka_unit_test_teardown(test_dtype_mismatch_is_an_error, teardown),
        cmocka_unit_test_teardown(test_anomaly_mode_names_the_op, teardown),
        cmocka_unit_test_teardown(test_arena_stops_growing, teardown),
        cmocka_unit_test_teardown(test_tape_print_and_dot, teardown),
        cmocka_unit_test_teardown(test_creation_and_access, teardown),
        cmocka_unit_test_teardown(test_rng_is_deterministic, teardown),
        cmocka_unit_test_teardown(test_zero_byte_scratch_before_first_chunk, teardown),
        cmocka_unit_test_teardown(test_op_output_checks_its_shape, teardown),
        cmocka_unit_test_teardown(test_zero_grad_is_lazy, teardown),
        cmocka_unit_test_teardown(test_anomaly_mode_skips_pending_gradients, teardown),
    };
    return cmocka_run_group_tests_name("tape", tests, NULL, NULL);
}
