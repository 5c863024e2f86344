/* safetensors files beyond checkpoints: headers with many entries and metadata keys cost
 * O(n log n) name comparisons (a hostile header must not stall a load). Damaged files and
 * checkpoint round trips are in test_checkpoint.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "tapegrad.h"
#include "nn/internal.h"
#include "tests/check.h"

static const char *path_of(const char *name)
{
    static char buf[4][160];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", check_tmpdir, name);
    return buf[k];
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
    const char *p = path_of("many.safetensors");

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
    const char *p = path_of("meta.safetensors");
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
    assert_int_equal(tg_safetensors_save(path_of("dup.safetensors"), &l, 0, NULL, NULL),
                     TG_ERR_VALUE);
    assert_non_null(strstr(tg_status_message(), "'layer.3.weight' appears twice"));
    free_tensors(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_entries_cost_n_log_n),
        cmocka_unit_test(test_many_metadata_keys_cost_n_log_n),
        cmocka_unit_test(test_distant_duplicate_is_refused),
    };
    return cmocka_run_group_tests(tests, check_tmpdir_setup, check_tmpdir_teardown);
}
