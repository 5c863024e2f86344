/* tools/: tapegrad-ls lists the tensors of safetensors, npz and IDX (.gz) files as stored,
 * and refuses what it cannot read with a message naming the file. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <zip.h>
#include <zlib.h>

#include "tapegrad.h"
#include "tests/check.h"

static char binary[256];

/* Runs tapegrad-ls on path; returns its exit status, its output (stdout and stderr) in out. */
static int run_ls(const char *path, char *out, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s '%s' 2>&1", binary, path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void expect_line(const char *out, const char *name, const char *dtype, const char *shape)
{
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        char n[64], d[16], rest[64];
        if (sscanf(l, " %63s %15s %63[^\n]", n, d, rest) == 3 && strcmp(n, name) == 0 &&
            strcmp(d, dtype) == 0 && strcmp(rest, shape) == 0)
            return;
    }
    fail_msg("no line '%s %s %s' in:\n%s", name, dtype, shape, out);
}

static void test_lists_safetensors(void **state)
{
    tg_param_list l = {0};
    tg_param_list_add(&l, "fc.weight", tg_zeros(TG_F32, TG_SHAPE(10, 784)));
    tg_param_list_add(&l, "bn.num_batches_tracked", tg_zeros(TG_I64, 0, NULL));
    const char *keys[] = {"epoch"}, *vals[] = {"4"};
    assert_int_equal(tg_safetensors_save(check_path("m.safetensors"), &l, 1, keys, vals), TG_OK);
    char out[4096];
    assert_int_equal(run_ls(check_path("m.safetensors"), out, sizeof out), 0);
    expect_line(out, "fc.weight", "F32", "[10, 784]");
    expect_line(out, "bn.num_batches_tracked", "I64", "[]");
    assert_non_null(strstr(out, "__metadata__ epoch = 4"));
    for (int i = 0; i < l.n; i++) tg_free(l.tensors[i]);
    tg_param_list_free(&l);
}

static void test_lists_idx_plain_and_gz(void **state)
{
    const unsigned char header[] = {0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 27};
    unsigned char pixels[2 * 28 * 27] = {0};
    FILE *fp = fopen(check_path("images-idx3-ubyte"), "wb");
    fwrite(header, 1, sizeof header, fp), fwrite(pixels, 1, sizeof pixels, fp);
    fclose(fp);
    gzFile gz = gzopen(check_path("images-idx3-ubyte.gz"), "wb");
    gzwrite(gz, header, sizeof header), gzwrite(gz, pixels, sizeof pixels);
    gzclose(gz);
    char out[4096];
    assert_int_equal(run_ls(check_path("images-idx3-ubyte"), out, sizeof out), 0);
    expect_line(out, "(array)", "u8", "[2, 28, 27]");
    assert_int_equal(run_ls(check_path("images-idx3-ubyte.gz"), out, sizeof out), 0);
    expect_line(out, "(array)", "u8", "[2, 28, 27]");
}

static void add_npy(zip_t *za, const char *name, const char *dict, size_t data_bytes)
{
    size_t len = 10 + strlen(dict), pad = (64 - (len + 1) % 64) % 64;
    size_t hlen = strlen(dict) + pad + 1, n = 10 + hlen + data_bytes;
    unsigned char *buf = calloc(1, n);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff), buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, strlen(dict));
    memset(buf + 10 + strlen(dict), ' ', pad);
    buf[10 + hlen - 1] = '\n';
    zip_source_t *src = zip_source_buffer(za, buf, n, 1);
    assert_true(zip_file_add(za, name, src, ZIP_FL_OVERWRITE) >= 0);
}

static void test_lists_npz(void **state)
{
    int err;
    zip_t *za = zip_open(check_path("d.npz"), ZIP_CREATE | ZIP_TRUNCATE, &err);
    assert_non_null(za);
    add_npy(za, "x_train.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 48);
    add_npy(za, "y_train.npy", "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", 24);
    add_npy(za, "scalar.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 8);
    assert_int_equal(zip_close(za), 0);
    char out[4096];
    assert_int_equal(run_ls(check_path("d.npz"), out, sizeof out), 0);
    expect_line(out, "x_train", "<f4", "[3, 4]");
    expect_line(out, "y_train", "<i8", "[3]");
    expect_line(out, "scalar", "<f8", "[]");
}

static void test_refuses_other_files(void **state)
{
    FILE *fp = fopen(check_path("notes.txt"), "w");
    fputs("not a tensor file\n", fp);
    fclose(fp);
    char out[4096];
    assert_int_equal(run_ls(check_path("notes.txt"), out, sizeof out), 1);
    assert_non_null(strstr(out, "notes.txt: not a safetensors, npy, npz or IDX file"));
    assert_int_equal(run_ls(check_path("missing.safetensors"), out, sizeof out), 1);
    assert_non_null(strstr(out, "missing.safetensors: cannot open"));
    /* A damaged safetensors header: the library's validation message. */
    fp = fopen(check_path("bad.safetensors"), "wb");
    fwrite("\x10\0\0\0\0\0\0\0{\"a\":{\"dtype\":1}", 1, 24, fp);
    fclose(fp);
    assert_int_equal(run_ls(check_path("bad.safetensors"), out, sizeof out), 1);
    assert_non_null(strstr(out, "bad.safetensors"));
}

static int group_setup(void **state)
{
    const char *build = getenv("TG_BUILD");
    snprintf(binary, sizeof binary, "%s/tools/tapegrad-ls", build && *build ? build : "build");
    if (access(binary, X_OK) != 0) {
        fprintf(stderr, "test_tools: %s is not built (make builds it; TG_BUILD names the build "
                        "folder)\n", binary);
        return -1;
    }
    return check_tmpdir_setup(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists_safetensors),
        cmocka_unit_test(test_lists_idx_plain_and_gz),
        cmocka_unit_test(test_lists_npz),
        cmocka_unit_test(test_refuses_other_files),
    };
    return cmocka_run_group_tests(tests, group_setup, check_tmpdir_teardown);
}
