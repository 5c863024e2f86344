/* safetensors files beyond checkpoints: headers with many entries and metadata keys cost
 * O(n log n) name comparisons (a hostile header must not stall a load); PyTorch's dtypes (I64
 * saved and loaded, F16 and BF16 widened to F32); non-strict loads; files written and read by
 * torch through tools/safetensors_torch.py when python3-torch is installed. Damaged files and
 * checkpoint round trips are in test_checkpoint.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "tapegrad.h"
#include "nn/internal.h"
#include "tests/check.h"

/* A file of header text (padded to 8 bytes) followed by data. */
static void write_raw(const char *p, const char *header, const void *data, size_t data_len)
{
    size_t h = strlen(header), padded = (h + 7) / 8 * 8;
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    unsigned char len[8];
    for (int b = 0; b < 8; b++) len[b] = (unsigned char)((uint64_t)padded >> (8 * b));
    fwrite(len, 1, 8, fp);
    fwrite(header, 1, h, fp);
    for (size_t i = h; i < padded; i++) fputc(' ', fp);
    fwrite(data, 1, data_len, fp);
    fclose(fp);
}

static double log2_of(int n) { return log((double)n) / log(2.0); }

/* n one-element tensors named t<i>, each holding i. */
static void many_tensors(tg_param_list *l, int n)
{
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "layer.%d.weight", i);
        tg_param_list_add(l, name, tg_full(TG_F32, TG_SHAPE(1), i));
    }
}

static void free_tensors(tg_param_list *l)
{
    for (int i = 0; i < l->n; i++) tg_free(l->tensors[i]);
    tg_param_list_free(l);
}

/* Comparisons per entry must grow like log n: a linear scan per name (n²/2 in all) exceeds the
 * bound by a factor of ~100 at this size. */
static void expect_n_log_n(uint64_t compares, int n, double per_log, const char *what)
{
    double bound = per_log * n * log2_of(n);
    if ((double)compares > bound)
        fail_msg("%s of %d entries made %llu name comparisons, more than %.0f (%.1f n log2 n)",
                 what, n, (unsigned long long)compares, bound, per_log);
}

static void test_many_entries_cost_n_log_n(void **state)
{
    const int n = 4096;
    tg_param_list saved = {0}, loaded = {0};
    many_tensors(&saved, n);
    many_tensors(&loaded, n);
    for (int i = 0; i < n; i++) tg_fill_(loaded.tensors[i], -1);
    const char *p = check_path("many.safetensors");

    uint64_t c0 = tg__st_name_compares();
    assert_int_equal(tg_safetensors_save(p, &saved, 0, NULL, NULL), TG_OK);
    uint64_t c1 = tg__st_name_compares();
    assert_int_equal(tg_safetensors_load(p, &loaded), TG_OK);
    uint64_t c2 = tg__st_name_compares();
    expect_n_log_n(c1 - c0, n, 2, "saving");
    expect_n_log_n(c2 - c1, n, 3, "loading");
    for (int i = 0; i < n; i++) assert_near(tg_item(loaded.tensors[i]), i, 0);
    free_tensors(&saved);
    free_tensors(&loaded);
}

static void test_many_metadata_keys_cost_n_log_n(void **state)
{
    const int n = 4096;
    char **keys = malloc(n * sizeof *keys), **vals = malloc(n * sizeof *vals);
    for (int i = 0; i < n; i++) {
        keys[i] = malloc(24), vals[i] = malloc(24);
        snprintf(keys[i], 24, "key.%d", i);
        snprintf(vals[i], 24, "%d", 7 * i);
    }
    tg_param_list none = {0};
    const char *p = check_path("meta.safetensors");
    uint64_t c0 = tg__st_name_compares();
    assert_int_equal(tg_safetensors_save(p, &none, n, (const char *const *)keys,
                                         (const char *const *)vals), TG_OK);
    tg__st_file f;
    assert_int_equal(tg__st_open(p, &f), TG_OK);
    assert_int_equal(f.n_meta, n);
    for (int i = 0; i < n; i += 97) assert_string_equal(tg__st_meta(&f, keys[i]), vals[i]);
    assert_null(tg__st_meta(&f, "key.-1"));
    tg__st_close(&f);
    expect_n_log_n(tg__st_name_compares() - c0, n, 3, "metadata save and open");
    for (int i = 0; i < n; i++) free(keys[i]), free(vals[i]);
    free(keys), free(vals);
}

/* Duplicates are still found when they are far apart in the header. */
static void test_distant_duplicate_is_refused(void **state)
{
    const int n = 1000;
    tg_param_list l = {0};
    many_tensors(&l, n);
    tg_param_list_add(&l, "layer.3.weight", tg_full(TG_F32, TG_SHAPE(1), 0));
    assert_int_equal(tg_safetensors_save(check_path("dup.safetensors"), &l, 0, NULL, NULL),
                     TG_ERR_VALUE);
    assert_non_null(strstr(tg_status_message(), "'layer.3.weight' appears twice"));
    free_tensors(&l);
}

/* Batch norm's num_batches_tracked is an int64 scalar in PyTorch's files; values beyond 2^53
 * (which a double cannot hold) survive the round trip. */
static void test_int64_round_trip(void **state)
{
    const int64_t big = ((int64_t)1 << 62) + 1, counts[3] = {-5, 3000000000LL, big};
    tg_tensor *tracked = tg_zeros(TG_I64, 0, NULL), *v = tg_from_data(TG_I64, TG_SHAPE(3), counts);
    ((int64_t *)tracked->data)[0] = big;
    tg_param_list l = {0};
    tg_param_list_add(&l, "bn.num_batches_tracked", tracked);
    tg_param_list_add(&l, "counts", v);
    const char *p = check_path("i64.safetensors");
    assert_int_equal(tg_safetensors_save(p, &l, 0, NULL, NULL), TG_OK);
    tg__st_file f;
    assert_int_equal(tg__st_open(p, &f), TG_OK);
    assert_string_equal(tg__st_find(&f, "bn.num_batches_tracked")->file_dtype, "I64");
    assert_int_equal(tg__st_find(&f, "bn.num_batches_tracked")->ndim, 0);
    tg__st_close(&f);

    tg_fill_(tracked, 0), tg_fill_(v, 0);
    assert_int_equal(tg_safetensors_load(p, &l), TG_OK);
    assert_true(((int64_t *)tracked->data)[0] == big);
    assert_memory_equal(v->data, counts, sizeof counts);
    tg_tensor *as_f64 = tg_to_dtype(v, TG_F64);
    assert_near(tg_get_flat(as_f64, 1), 3e9, 0);
    tg_free(as_f64);
    EXPECT_ERROR("float", tg_exp(v));
    EXPECT_ERROR("int64", tg_set_flat(v, 0, 1e19));
    EXPECT_ERROR("require grad", tg_set_requires_grad(v, true));
    tg_free(tracked), tg_free(v);
    tg_param_list_free(&l);
}

static float from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Every half and bfloat16 value is a float32 value: zero, subnormals, the largest finite,
 * infinities and NaN convert exactly. */
static void test_half_and_bfloat16_widen_to_f32(void **state)
{
    const uint16_t half[7] = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0xfc00, 0x7e00};
    const double half_want[6] = {1, -2, ldexp(1, -24), ldexp(1023, -24), 65504, -INFINITY};
    const uint16_t bf[4] = {0x3f80, 0xc049, 0x0001, 0x7f80};
    const float bf_want[4] = {1, from_bits(0xc0490000u), from_bits(0x00010000u), INFINITY};
    unsigned char data[22];
    for (int i = 0; i < 7; i++) data[2 * i] = half[i] & 0xff, data[2 * i + 1] = half[i] >> 8;
    for (int i = 0; i < 4; i++) data[14 + 2 * i] = bf[i] & 0xff, data[15 + 2 * i] = bf[i] >> 8;
    const char *p = check_path("half.safetensors");
    write_raw(p, "{\"h\":{\"dtype\":\"F16\",\"shape\":[7],\"data_offsets\":[0,14]},"
                 "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[14,22]}}",
              data, sizeof data);
    tg_tensor *h = tg_zeros(TG_F32, TG_SHAPE(7)), *b = tg_zeros(TG_F32, TG_SHAPE(2, 2));
    tg_param_list l = {0};
    tg_param_list_add(&l, "h", h);
    tg_param_list_add(&l, "b", b);
    assert_int_equal(tg_safetensors_load(p, &l), TG_OK);
    for (int i = 0; i < 6; i++) assert_true(((float *)h->data)[i] == (float)half_want[i]);
    assert_true(isnan(((float *)h->data)[6]));
    assert_memory_equal(b->data, bf_want, sizeof bf_want);

    tg_free(l.tensors[0]);
    l.tensors[0] = h = tg_zeros(TG_F64, TG_SHAPE(7));
    assert_int_equal(tg_safetensors_load(p, &l), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "'h' is F16 [7] in the file but F64 [7]"));
    tg_free(h), tg_free(b);
    tg_param_list_free(&l);
}

static void test_nonstrict_load_reports_names(void **state)
{
    tg_param_list file = {0}, model = {0};
    tg_param_list_add(&file, "a", tg_full(TG_F32, TG_SHAPE(2), 1));
    tg_param_list_add(&file, "b", tg_full(TG_F32, TG_SHAPE(2), 2));
    const char *p = check_path("partial.safetensors");
    assert_int_equal(tg_safetensors_save(p, &file, 0, NULL, NULL), TG_OK);
    tg_param_list_add(&model, "b", tg_zeros(TG_F32, TG_SHAPE(2)));
    tg_param_list_add(&model, "c", tg_full(TG_F32, TG_SHAPE(3), 7));

    assert_int_equal(tg_safetensors_load(p, &model), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "missing tensor 'c'"));
    tg_load_report r;
    assert_int_equal(tg_safetensors_load_nonstrict(p, &model, &r), TG_OK);
    assert_int_equal(r.n_missing, 1);
    assert_string_equal(r.missing[0], "c");
    assert_int_equal(r.n_unexpected, 1);
    assert_string_equal(r.unexpected[0], "a");
    assert_near(tg_get_flat(model.tensors[0], 1), 2, 0);
    assert_near(tg_get_flat(model.tensors[1], 2), 7, 0);
    tg_load_report_free(&r);
    assert_int_equal(r.n_missing, 0);
    assert_int_equal(tg_safetensors_load_nonstrict(p, &model, NULL), TG_OK);

    /* A shape mismatch is not a missing name: an error, and nothing is loaded. */
    tg_param_list_add(&model, "a", tg_zeros(TG_F32, TG_SHAPE(3)));
    tg_fill_(model.tensors[0], 0);
    assert_int_equal(tg_safetensors_load_nonstrict(p, &model, &r), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "'a' is F32 [2] in the file but F32 [3]"));
    assert_int_equal(r.n_missing + r.n_unexpected, 0);
    assert_near(tg_get_flat(model.tensors[0], 0), 0, 0);
    free_tensors(&file);
    free_tensors(&model);
}

/* ---- PyTorch's side: tools/safetensors_torch.py with Debian's python3-torch --------------- */
/* tapegrad writes a file, torch reads and writes it again and writes its own file of every dtype
 * tapegrad reads; one Python process for both (importing torch takes seconds). */
static void test_torch_interop(void **state)
{
    const int64_t steps = ((int64_t)1 << 53) + 3;
    tg_param_list l = {0}, back = {0};
    tg_param_list_add(&l, "w", tg_rand_normal(TG_F32, TG_SHAPE(3, 5), 0, 1, NULL));
    tg_param_list_add(&l, "b", tg_rand_normal(TG_F64, TG_SHAPE(5), 0, 1, NULL));
    tg_param_list_add(&l, "bn.num_batches_tracked", tg_from_data(TG_I64, 0, NULL, &steps));
    tg_param_list_add(&l, "labels", tg_full(TG_I32, TG_SHAPE(4), -3));
    const char *ours = check_path("ours.safetensors"), *theirs = check_path("theirs.safetensors");
    const char *demo = check_path("demo.safetensors");
    const char *keys[] = {"epoch"}, *vals[] = {"3"};
    assert_int_equal(tg_safetensors_save(ours, &l, 1, keys, vals), TG_OK);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -c 'import sys; sys.path.insert(0, \"tools\"); "
             "import safetensors_torch as s; s.main([\"\", \"copy\", \"%s\", \"%s\"]); "
             "s.main([\"\", \"demo\", \"%s\"])'", ours, theirs, demo);
    int rc = system(cmd);
    if (WIFEXITED(rc) && WEXITSTATUS(rc) == 77) {
        printf("skipped: /usr/bin/python3 cannot import torch (scripts/setup.sh torch)\n");
        free_tensors(&l);
        skip();
    }
    if (rc != 0) fail_msg("failed (status %d): %s", rc, cmd);

    for (int i = 0; i < l.n; i++) tg_param_list_add(&back, l.names[i], tg_clone(l.tensors[i]));
    for (int i = 0; i < l.n; i++) tg_fill_(back.tensors[i], 0);
    assert_int_equal(tg_safetensors_load(theirs, &back), TG_OK);
    for (int i = 0; i < l.n; i++)
        assert_memory_equal(back.tensors[i]->data, l.tensors[i]->data,
                            (size_t)l.tensors[i]->numel * tg_dtype_size(l.tensors[i]->dtype));
    tg__st_file f;
    assert_int_equal(tg__st_open(theirs, &f), TG_OK);
    assert_string_equal(tg__st_meta(&f, "epoch"), "3");
    tg__st_close(&f);
    free_tensors(&l);
    free_tensors(&back);

    /* Values as the helper's demo_tensors() documents them. */
    tg_param_list_add(&l, "f32", tg_zeros(TG_F32, TG_SHAPE(2, 3)));
    tg_param_list_add(&l, "f64", tg_zeros(TG_F64, TG_SHAPE(3)));
    tg_param_list_add(&l, "f16", tg_zeros(TG_F32, TG_SHAPE(4)));
    tg_param_list_add(&l, "bf16", tg_zeros(TG_F32, TG_SHAPE(2, 2)));
    tg_param_list_add(&l, "i64", tg_zeros(TG_I64, TG_SHAPE(3)));
    tg_param_list_add(&l, "i32", tg_zeros(TG_I32, TG_SHAPE(2)));
    tg_param_list_add(&l, "bn.num_batches_tracked", tg_zeros(TG_I64, 0, NULL));
    assert_int_equal(tg_safetensors_load(demo, &l), TG_OK);
    for (int i = 0; i < 6; i++) assert_true(((float *)l.tensors[0]->data)[i] == (float)(i / 4.0));
    for (int i = 0; i < 3; i++) assert_true(((double *)l.tensors[1]->data)[i] == i / 10.0);
    for (int i = 0; i < 4; i++) {
        assert_true(((float *)l.tensors[2]->data)[i] == (float)(i / 8.0 - 0.25));
        assert_true(((float *)l.tensors[3]->data)[i] == (float)(i / 8.0 - 0.25));
    }
    const int64_t *i64 = l.tensors[4]->data;
    assert_true(i64[0] == -1 && i64[1] == (int64_t)1 << 40 && i64[2] == ((int64_t)1 << 62) + 1);
    assert_near(tg_get_flat(l.tensors[5], 1), -8, 0);
    assert_true(*(int64_t *)l.tensors[6]->data == 123456789012LL);
    free_tensors(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_entries_cost_n_log_n),
        cmocka_unit_test(test_many_metadata_keys_cost_n_log_n),
        cmocka_unit_test(test_distant_duplicate_is_refused),
        cmocka_unit_test(test_int64_round_trip),
        cmocka_unit_test(test_half_and_bfloat16_widen_to_f32),
        cmocka_unit_test(test_nonstrict_load_reports_names),
        cmocka_unit_test(test_torch_interop),
    };
    return cmocka_run_group_tests(tests, check_tmpdir_setup, check_tmpdir_teardown);
}
