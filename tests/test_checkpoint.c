/* Checkpoints in safetensors format: round trips, every kind of damaged file (each fails with a
 * message naming the file and the tensor, and leaves the model untouched), atomic saves, and
 * bit-identical resumption of training (N steps + save/load + M steps == N + M steps). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tapegrad.h"
#include "tests/check.h"


/* A snapshot of every parameter's bytes, to prove a failed load changed nothing. */
typedef struct {
    int n;
    void *bytes[16];
    size_t size[16];
} snapshot;

static snapshot take(tg_module *m)
{
    snapshot s = {0};
    tg_param_list ps = {0};
    tg_module_parameters(m, &ps);
    assert_true(ps.n <= 16);
    s.n = ps.n;
    for (int i = 0; i < ps.n; i++) {
        s.size[i] = (size_t)ps.tensors[i]->numel * tg_dtype_size(ps.tensors[i]->dtype);
        s.bytes[i] = malloc(s.size[i] ? s.size[i] : 1);
        memcpy(s.bytes[i], ps.tensors[i]->data, s.size[i]);
    }
    tg_param_list_free(&ps);
    return s;
}

static bool same(tg_module *m, const snapshot *s)
{
    tg_param_list ps = {0};
    tg_module_parameters(m, &ps);
    bool eq = ps.n == s->n;
    for (int i = 0; eq && i < ps.n; i++) eq = memcmp(ps.tensors[i]->data, s->bytes[i], s->size[i]) == 0;
    tg_param_list_free(&ps);
    return eq;
}

static void release(snapshot *s)
{
    for (int i = 0; i < s->n; i++) free(s->bytes[i]);
}

static void write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* A file from a header text and data bytes, with the 8-byte little-endian length in front. */
static void write_raw(const char *path, const char *header, size_t data_len)
{
    size_t h = strlen(header);
    unsigned char *b = calloc(1, 8 + h + data_len);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data_len; i++) b[8 + h + i] = (unsigned char)(i * 7 + 1);
    write_file(path, b, 8 + h + data_len);
    free(b);
}

static tg_module *small_model(uint64_t seed)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    return tg_linear_new(2, 3, true, tg_init_pytorch(), &rng); /* weight [3,2], bias [3] F32 */
}

/* ---- round trip -------------------------------------------------------------------------------- */
static void test_round_trip(void **state)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_module *a = tg_feedforward_new(5, 3, 7, 2, "tanh", 0.1, tg_init_pytorch(), &rng);
    tg_module *b = tg_feedforward_new(5, 3, 7, 2, "tanh", 0.1, tg_init_normal(0, 1), &rng);
    const char *p = check_path("ff.safetensors");
    assert_int_equal(tg_checkpoint_save(p, a, NULL, NULL), TG_OK);
    assert_int_equal(access(check_path("ff.safetensors.tmp"), F_OK), -1); /* no temporary left */
    snapshot sa = take(a);
    assert_false(same(b, &sa));
    assert_int_equal(tg_checkpoint_load(p, b, NULL, NULL), TG_OK);
    assert_true(same(b, &sa));

    /* The layout on disk: LE header length, a JSON object padded to 8 bytes, then the data. */
    size_t n;
    unsigned char *bytes = read_file(p, &n);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = h << 8 | bytes[i];
    assert_true(h % 8 == 0 && 8 + h < n);
    assert_int_equal(bytes[8], '{');
    char *header = strndup((char *)bytes + 8, (size_t)h);
    assert_non_null(strstr(header, "\"layers.0.weight\":{\"dtype\":\"F32\",\"shape\":[7,5],"
                                   "\"data_offsets\":[0,140]}"));
    assert_non_null(strstr(header, "\"layers.6.bias\""));
    int64_t total = tg_module_num_parameters(a);
    assert_int_equal(n - 8 - h, (size_t)total * 4);
    free(header);
    free(bytes);
    release(&sa);
    tg_module_free(a);
    tg_module_free(b);
}

/* Named tensor lists: every dtype, a scalar, an empty tensor, metadata. */
static void test_tensor_list_round_trip(void **state)
{
    tg_tensor *f64 = tg_from_data(TG_F64, TG_SHAPE(2, 2), (double[]){1.5, -2, 1e-300, 3});
    tg_tensor *i32 = tg_from_data(TG_I32, TG_SHAPE(3), (int32_t[]){-7, 0, 2147483647});
    tg_tensor *scalar = tg_full(TG_F32, 0, NULL, 0.25);
    tg_tensor *empty = tg_zeros(TG_F32, TG_SHAPE(0, 4));
    tg_param_list l = {0};
    tg_param_list_add(&l, "a \"quoted\" name\\", f64);
    tg_param_list_add(&l, "labels", i32);
    tg_param_list_add(&l, "scalar", scalar);
    tg_param_list_add(&l, "empty", empty);
    const char *keys[] = {"note"}, *vals[] = {"line\nbreak \"q\""};
    const char *p = check_path("list.safetensors");
    assert_int_equal(tg_safetensors_save(p, &l, 1, keys, vals), TG_OK);
    tg_tensor *f64b = tg_zeros(TG_F64, TG_SHAPE(2, 2)), *i32b = tg_zeros(TG_I32, TG_SHAPE(3));
    tg_tensor *scalarb = tg_zeros(TG_F32, 0, NULL), *emptyb = tg_zeros(TG_F32, TG_SHAPE(0, 4));
    tg_param_list m = {0};
    tg_param_list_add(&m, "scalar", scalarb);
    tg_param_list_add(&m, "a \"quoted\" name\\", f64b);
    tg_param_list_add(&m, "empty", emptyb);
    tg_param_list_add(&m, "labels", i32b);
    assert_int_equal(tg_safetensors_load(p, &m), TG_OK);
    assert_memory_equal(f64b->data, f64->data, 4 * sizeof(double));
    assert_memory_equal(i32b->data, i32->data, 3 * sizeof(int32_t));
    assert_true(tg_item(scalarb) == 0.25);
    tg_param_list_free(&l);
    tg_param_list_free(&m);
    tg_tensor *all[] = {f64, i32, scalar, empty, f64b, i32b, scalarb, emptyb};
    for (int i = 0; i < 8; i++) tg_free(all[i]);
}

/* ---- damaged files -------------------------------------------------------------------------------- */
#define W_OK_ENTRY "\"weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}"
#define B_OK_ENTRY "\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]}"

typedef struct {
    const char *what;
    const char *header;   /* NULL: use raw bytes below */
    size_t data_len;
    const char *needles[3];
} bad_case;

static void expect_rejected(const char *path, const char *what, tg_status want,
                            const char *const *needles)
{
    tg_module *m = small_model(3);
    snapshot s = take(m);
    tg_status st = tg_checkpoint_load(path, m, NULL, NULL);
    if (st == TG_OK) fail_msg("%s: loaded without error", what);
    if (want != TG_OK && st != want)
        fail_msg("%s: status %d, expected %d (%s)", what, (int)st, (int)want, tg_status_message());
    const char *msg = tg_status_message();
    printf("  %-28s -> %s\n", what, msg);
    if (!strstr(msg, path)) fail_msg("%s: message \"%s\" does not name the file", what, msg);
    for (int k = 0; k < 3 && needles[k]; k++)
        if (!strstr(msg, needles[k]))
            fail_msg("%s: message \"%s\" does not mention \"%s\"", what, msg, needles[k]);
    if (!same(m, &s)) fail_msg("%s: the model was modified by a failed load", what);
    release(&s);
    tg_module_free(m);
}

static void test_hand_written_file_loads(void **state)
{
    /* Another writer's style: whitespace, other key order, bias data first, no metadata. */
    const char *p = check_path("hand.safetensors");
    write_raw(p, "{ \"bias\" : {\"data_offsets\": [0, 12], \"shape\": [3], \"dtype\": \"F32\"},\n"
                 "  \"weight\": {\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[12,36]} }   ",
              36);
    tg_module *m = small_model(3);
    assert_int_equal(tg_checkpoint_load(p, m, NULL, NULL), TG_OK);
    size_t n;
    unsigned char *bytes = read_file(p, &n);
    assert_memory_equal(tg_linear_bias(m)->data, bytes + n - 36, 12);
    assert_memory_equal(tg_linear_weight(m)->data, bytes + n - 24, 24);
    free(bytes);
    tg_module_free(m);
}

static void test_damaged_headers(void **state)
{
    const bad_case cases[] = {
        {"offsets out of range", "{" W_OK_ENTRY ",\"bias\":{\"dtype\":\"F32\",\"shape\":[3],"
         "\"data_offsets\":[24,40]}}", 36, {"'bias'", "out of range"}},
        {"wrong shape", "{\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
         B_OK_ENTRY "}", 36, {"'weight'", "[2, 3]", "[3, 2]"}},
        {"wrong dtype", "{\"weight\":{\"dtype\":\"F64\",\"shape\":[3,2],\"data_offsets\":[0,48]},"
         "\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}}", 60,
         {"'weight'", "F64"}},
        {"missing tensor", "{" W_OK_ENTRY "}", 24, {"missing tensor 'bias'"}},
        {"unexpected tensor", "{" W_OK_ENTRY "," B_OK_ENTRY ",\"extra\":{\"dtype\":\"F32\","
         "\"shape\":[1],\"data_offsets\":[36,40]}}", 40, {"unexpected tensor 'extra'"}},
        {"overlapping offsets", "{" W_OK_ENTRY ",\"bias\":{\"dtype\":\"F32\",\"shape\":[3],"
         "\"data_offsets\":[20,32]}}", 32, {"'bias'", "overlap"}},
        {"gap between tensors", "{" W_OK_ENTRY ",\"bias\":{\"dtype\":\"F32\",\"shape\":[3],"
         "\"data_offsets\":[28,40]}}", 40, {"'bias'", "gap"}},
        {"span does not match shape", "{" W_OK_ENTRY ",\"bias\":{\"dtype\":\"F32\",\"shape\":[3],"
         "\"data_offsets\":[24,32]}}", 32, {"'bias'", "12"}},
        {"extra data at the end", "{" W_OK_ENTRY "," B_OK_ENTRY "}", 40, {"cover 36"}},
        {"unsupported dtype", "{" W_OK_ENTRY ",\"bias\":{\"dtype\":\"F8_E5M2\",\"shape\":[3],"
         "\"data_offsets\":[24,27]}}", 27, {"'bias'", "F8_E5M2"}},
        {"unknown key", "{" W_OK_ENTRY ",\"bias\":{\"dtype\":\"F32\",\"shap\":[3],"
         "\"data_offsets\":[24,36]}}", 36, {"'bias'", "shap"}},
        {"duplicate tensor", "{" W_OK_ENTRY "," W_OK_ENTRY "}", 24, {"'weight'", "twice"}},
        {"missing colon", "{\"weight\" {\"dtype\":\"F32\"}}", 0, {"malformed", "':'"}},
        {"unterminated string", "{\"weight", 0, {"malformed", "unterminated"}},
        {"negative size", "{\"weight\":{\"dtype\":\"F32\",\"shape\":[-3,2],\"data_offsets\":[0,24]}}",
         24, {"malformed"}},
        {"float offset", "{" W_OK_ENTRY ",\"bias\":{\"dtype\":\"F32\",\"shape\":[3],"
         "\"data_offsets\":[24,36.0]}}", 36, {"malformed"}},
        {"text after the object", "{" W_OK_ENTRY "," B_OK_ENTRY "}x", 36, {"after the header"}},
        {"not an object", "[1, 2]", 0, {"'{'"}},
        {"metadata not strings", "{\"__metadata__\":{\"steps\":3}," W_OK_ENTRY "," B_OK_ENTRY "}",
         36, {"__metadata__"}},
        {"too many dimensions", "{\"weight\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],"
         "\"data_offsets\":[0,4]}}", 4, {"shape"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = check_path("bad.safetensors");
        write_raw(p, cases[i].header, cases[i].data_len);
        expect_rejected(p, cases[i].what, TG_ERR_FORMAT, cases[i].needles);
    }
}

static void test_truncated_and_corrupted_files(void **state)
{
    tg_module *m = small_model(5);
    const char *good = check_path("good.safetensors");
    assert_int_equal(tg_checkpoint_save(good, m, NULL, NULL), TG_OK);
    size_t n;
    unsigned char *bytes = read_file(good, &n);
    const char *p = check_path("damaged.safetensors");

    /* Data cut short: the last tensor's offsets run past the end. */
    write_file(p, bytes, n - 4);
    expect_rejected(p, "truncated data", TG_ERR_FORMAT, (const char *[]){"out of range", NULL});
    /* Cut inside the header: the length field promises more than the file holds. */
    write_file(p, bytes, 30);
    expect_rejected(p, "truncated header", TG_ERR_FORMAT, (const char *[]){"header length", NULL});
    /* Shorter than the length field itself; empty. */
    write_file(p, bytes, 5);
    expect_rejected(p, "5-byte file", TG_ERR_FORMAT, (const char *[]){"too short", NULL});
    write_file(p, bytes, 0);
    expect_rejected(p, "empty file", TG_ERR_FORMAT, (const char *[]){"too short", NULL});
    /* A huge length field (e.g. a different file format). */
    unsigned char *copy = malloc(n);
    memcpy(copy, bytes, n);
    copy[7] = 0x40;
    write_file(p, copy, n);
    expect_rejected(p, "huge header length", TG_ERR_FORMAT, (const char *[]){"header length", NULL});
    /* A corrupted byte in the header's JSON. */
    memcpy(copy, bytes, n);
    char *colon = memchr(copy + 8, ':', n - 8);
    *colon = ';';
    write_file(p, copy, n);
    expect_rejected(p, "corrupted header byte", TG_ERR_FORMAT, (const char *[]){"malformed", NULL});
    /* A NUL in the header. */
    memcpy(copy, bytes, n);
    copy[12] = 0;
    write_file(p, copy, n);
    expect_rejected(p, "NUL in the header", TG_ERR_FORMAT, (const char *[]){"malformed", NULL});
    /* No such file. */
    expect_rejected(check_path("nonexistent.safetensors"), "missing file", TG_ERR_IO,
                    (const char *[]){"cannot open", NULL});
    free(copy);
    free(bytes);
    tg_module_free(m);
}

/* ---- atomic saves ------------------------------------------------------------------------------ */
static void test_failed_save_keeps_old_file(void **state)
{
    tg_module *old = small_model(10), *other = small_model(11);
    const char *p = check_path("atomic.safetensors");
    assert_int_equal(tg_checkpoint_save(p, old, NULL, NULL), TG_OK);
    snapshot s = take(old);

    /* The temporary cannot be created (a directory is in the way; works even as root, where
     * permission bits would not stop the write). */
    assert_int_equal(mkdir(check_path("atomic.safetensors.tmp"), 0700), 0);
    tg_status st = tg_checkpoint_save(p, other, NULL, NULL);
    assert_int_equal(st, TG_ERR_IO);
    assert_non_null(strstr(tg_status_message(), p));
    rmdir(check_path("atomic.safetensors.tmp"));
    /* The old file is intact. */
    tg_module *check = small_model(12);
    assert_int_equal(tg_checkpoint_load(p, check, NULL, NULL), TG_OK);
    assert_true(same(check, &s));

    /* An unwritable or missing directory: an I/O error naming the path, nothing else touched. */
    const char *nowhere = check_path("no/such/dir/x.safetensors");
    assert_int_equal(tg_checkpoint_save(nowhere, other, NULL, NULL), TG_ERR_IO);
    assert_non_null(strstr(tg_status_message(), "no/such/dir"));
    if (geteuid() != 0) {
        assert_int_equal(chmod(check_tmpdir, 0500), 0);
        assert_int_equal(tg_checkpoint_save(p, other, NULL, NULL), TG_ERR_IO);
        assert_int_equal(chmod(check_tmpdir, 0700), 0);
        assert_int_equal(tg_checkpoint_load(p, check, NULL, NULL), TG_OK);
        assert_true(same(check, &s));
    }
    /* A successful save replaces it. */
    assert_int_equal(tg_checkpoint_save(p, other, NULL, NULL), TG_OK);
    assert_int_equal(tg_checkpoint_load(p, check, NULL, NULL), TG_OK);
    assert_false(same(check, &s));
    release(&s);
    tg_module_free(old);
    tg_module_free(other);
    tg_module_free(check);
}

/* ---- an optimizer kind the library does not know --------------------------------------------- */
/* Signed momentum with a decaying step: b = β·b + g, p -= lr/sqrt(t)·sign(b) - lr·wd·p. Two state
 * tensors (one starting at `start`, not 0) and a saved step count: everything a checkpoint must
 * carry through the kind's description alone. */
typedef struct {
    double lr, beta, weight_decay, start;
} signum_opts;

static int signum_state_names(const void *settings, const char **names)
{
    names[0] = "momentum_buffer";
    names[1] = "sign_count";
    return 2;
}

static double signum_state_init(const void *settings, int k)
{
    return k == 0 ? ((const signum_opts *)settings)->start : 0.0;
}

static bool signum_validate(const void *settings, char *why, size_t len)
{
    const signum_opts *o = settings;
    if (o->beta >= 0 && o->beta < 1) return true;
    snprintf(why, len, "beta must be in [0, 1) (got %g)", o->beta);
    return false;
}

static void signum_describe(const void *settings, char *buf, size_t len)
{
    const signum_opts *o = settings;
    snprintf(buf, len, "beta=%.17g start=%.17g", o->beta, o->start);
}

static void signum_update(const tg_optim_update *u)
{
    const signum_opts *o = u->settings;
    double step = u->lr / sqrt((double)u->step);
    for (int64_t i = 0; i < u->param->numel; i++) {
        double b = o->beta * tg_get_flat(u->state[0], i) + tg_get_flat(u->grad, i);
        double p = tg_get_flat(u->param, i);
        tg_set_flat(u->state[0], i, b);
        tg_set_flat(u->state[1], i, tg_get_flat(u->state[1], i) + (b > 0));
        tg_set_flat(u->param, i, p - step * ((b > 0) - (b < 0)) - u->lr * u->weight_decay * p);
    }
}

static const tg_optimizer_kind signum_kind = {
    .name = "signum",
    .settings_size = sizeof(signum_opts),
    .lr_offset = offsetof(signum_opts, lr),
    .weight_decay_offset = offsetof(signum_opts, weight_decay),
    .state_names = signum_state_names,
    .state_init = signum_state_init,
    .saves_step = true,
    .validate = signum_validate,
    .describe = signum_describe,
    .update = signum_update,
};

enum { ADAM, SGD, RMSPROP, ADAGRAD, SIGNUM, N_KINDS };
static const char *const kind_names[N_KINDS] = {"adam", "sgd", "rmsprop", "adagrad", "signum"};

static tg_optimizer *make_optimizer(int kind, const tg_param_list *ps)
{
    switch (kind) {
    case ADAM:
        return tg_adam_new(ps, (tg_adam_opts){.lr = 0.01, .beta1 = 0.9, .beta2 = 0.999,
                                              .eps = 1e-8, .weight_decay = 1e-3});
    case SGD:
        return tg_sgd_new(ps, (tg_sgd_opts){.lr = 0.05, .momentum = 0.9, .nesterov = true,
                                            .weight_decay = 1e-3});
    case RMSPROP:
        return tg_rmsprop_new(ps, (tg_rmsprop_opts){.lr = 0.01, .alpha = 0.9, .eps = 1e-8,
                                                    .momentum = 0.5, .centered = true});
    case ADAGRAD:
        return tg_adagrad_new(ps, (tg_adagrad_opts){.lr = 0.05, .lr_decay = 0.01,
                                                    .initial_accumulator_value = 0.1,
                                                    .eps = 1e-10});
    default:
        return tg_optimizer_new(&signum_kind, ps, &(signum_opts){.lr = 0.01, .beta = 0.9,
                                                                 .weight_decay = 1e-3,
                                                                 .start = 0.25});
    }
}

/* ---- resumption ---------------------------------------------------------------------------------- */
typedef struct {
    tg_rng rng;            /* init and dropout masks */
    tg_module *net;
    tg_param_list ps;
    tg_optimizer *opt;
} trainer;

static void trainer_init(trainer *t, uint64_t seed, int kind)
{
    tg_rng_seed(&t->rng, seed);
    t->net = tg_feedforward_new(2, 3, 16, 2, "relu", 0.2, tg_init_pytorch(), &t->rng);
    memset(&t->ps, 0, sizeof t->ps);
    tg_module_parameters(t->net, &t->ps);
    t->opt = make_optimizer(kind, &t->ps);
}

static void trainer_free(trainer *t)
{
    tg_optimizer_free(t->opt);
    tg_param_list_free(&t->ps);
    tg_module_free(t->net);
}

static void train_steps(trainer *t, int from, int to, tg_tensor *x, tg_tensor *y)
{
    for (int s = from; s < to; s++) {
        tg_optimizer_step_decay(t->opt, 0.01, s, 4, 0.5);
        tg_optimizer_zero_grad(t->opt);
        tg_tensor *loss = tg_cross_entropy(tg_module_forward(t->net, x), y, TG_REDUCE_MEAN);
        tg_backward(loss);
        tg_optimizer_step(t->opt);
        tg_tape_reset();
    }
}

static void test_resume_bit_identical(void **state)
{
    enum { N_STEPS = 6, M_STEPS = 5, BATCH = 32 };
    tg_rng data_rng;
    tg_rng_seed(&data_rng, 99);
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(BATCH, 2), 0, 1, &data_rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(BATCH));
    for (int i = 0; i < BATCH; i++) tg_set_flat(y, i, (double)tg_rng_below(&data_rng, 3));

    for (int kind = 0; kind < N_KINDS; kind++) {
        trainer full, first, second;
        trainer_init(&full, 7, kind);
        train_steps(&full, 0, N_STEPS + M_STEPS, x, y);

        trainer_init(&first, 7, kind);
        train_steps(&first, 0, N_STEPS, x, y);
        const char *p = check_path("resume.safetensors");
        assert_int_equal(tg_checkpoint_save(p, first.net, first.opt, &first.rng), TG_OK);
        trainer_free(&first);

        /* Fresh objects with another seed: everything that matters comes from the file. */
        trainer_init(&second, 12345, kind);
        if (tg_checkpoint_load(p, second.net, second.opt, &second.rng) != TG_OK)
            fail_msg("%s", tg_status_message());
        assert_int_equal(tg_optimizer_steps(second.opt), N_STEPS);
        train_steps(&second, N_STEPS, N_STEPS + M_STEPS, x, y);

        snapshot s = take(full.net);
        if (!same(second.net, &s))
            fail_msg("%s: resumed training differs from uninterrupted training",
                     kind_names[kind]);
        /* The optimizer state came back bit for bit too. */
        const char *pa = check_path("resume_a.safetensors"), *pb = check_path("resume_b.safetensors");
        assert_int_equal(tg_checkpoint_save(pa, full.net, full.opt, NULL), TG_OK);
        assert_int_equal(tg_checkpoint_save(pb, second.net, second.opt, NULL), TG_OK);
        size_t na, nb;
        unsigned char *ba = read_file(pa, &na), *bb = read_file(pb, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(ba, bb, na);
        free(ba);
        free(bb);
        /* And the run was not trivially identical: the parameters moved. */
        trainer fresh;
        trainer_init(&fresh, 7, kind);
        assert_false(same(fresh.net, &s));
        trainer_free(&fresh);
        release(&s);
        trainer_free(&full);
        trainer_free(&second);
    }
    tg_free(x);
    tg_free(y);
}

/* Optimizer-state mismatches fail before anything is modified. */
static void test_optimizer_state_errors(void **state)
{
    trainer t;
    trainer_init(&t, 1, 0);
    const char *model_only = check_path("model_only.safetensors");
    const char *with_adam = check_path("with_adam.safetensors");
    assert_int_equal(tg_checkpoint_save(model_only, t.net, NULL, NULL), TG_OK);
    tg_rng_seed(&t.rng, 5);
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(4, 2), 0, 1, &t.rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(4));
    train_steps(&t, 0, 2, x, y);
    assert_int_equal(tg_checkpoint_save(with_adam, t.net, t.opt, NULL), TG_OK);

    trainer u;
    trainer_init(&u, 2, 1); /* SGD */
    snapshot s = take(u.net);
    assert_int_equal(tg_checkpoint_load(model_only, u.net, u.opt, NULL), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "no optimizer state"));
    assert_int_equal(tg_checkpoint_load(with_adam, u.net, u.opt, NULL), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "'adam'"));
    assert_int_equal(tg_checkpoint_load(with_adam, u.net, NULL, &u.rng), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "rng.state"));
    assert_true(same(u.net, &s));
    assert_int_equal(tg_optimizer_steps(u.opt), 0);
    /* Without an optimizer the model part of a full checkpoint loads. */
    assert_int_equal(tg_checkpoint_load(with_adam, u.net, NULL, NULL), TG_OK);
    release(&s);
    s = take(t.net);
    assert_true(same(u.net, &s));
    release(&s);
    tg_free(x);
    tg_free(y);
    trainer_free(&t);
    trainer_free(&u);
}

/* Replaces the first occurrence of `from` in the file with `to` (same length, so the header stays
 * well-formed): a checkpoint whose metadata another program has edited. */
static void patch_file(const char *path, const char *from, const char *to)
{
    assert_int_equal(strlen(from), strlen(to));
    size_t n, k = strlen(from), at = 0;
    unsigned char *buf = read_file(path, &n);
    while (at + k <= n && memcmp(buf + at, from, k) != 0) at++;
    assert_true(at + k <= n);
    memcpy(buf + at, to, k);
    write_file(path, buf, n);
    free(buf);
}

/* Metadata that would make resumption wrong: an infinite learning rate, a step count with a sign,
 * or other optimizer settings than the loading optimizer's. */
static void test_optimizer_metadata_errors(void **state)
{
    trainer t;
    trainer_init(&t, 1, 1); /* SGD, momentum 0.9, Nesterov */
    tg_optimizer_set_lr(t.opt, 0.5);
    const char *p = check_path("meta.safetensors");
    snapshot s = take(t.net);

    assert_int_equal(tg_checkpoint_save(p, t.net, t.opt, NULL), TG_OK);
    patch_file(p, "\"optim.lr\":\"0.5\"", "\"optim.lr\":\"inf\"");
    assert_int_equal(tg_checkpoint_load(p, t.net, t.opt, NULL), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "optim.lr"));
    assert_near(tg_optimizer_lr(t.opt), 0.5, 0);

    assert_int_equal(tg_checkpoint_save(p, t.net, t.opt, NULL), TG_OK);
    patch_file(p, "\"optim.steps\":\"0\"", "\"optim.steps\":\"+\"");
    assert_int_equal(tg_checkpoint_load(p, t.net, t.opt, NULL), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "optim.steps"));

    assert_int_equal(tg_checkpoint_save(p, t.net, t.opt, NULL), TG_OK);
    tg_optimizer *other = tg_sgd_new(&t.ps, (tg_sgd_opts){.lr = 0.05, .momentum = 0.5});
    assert_int_equal(tg_checkpoint_load(p, t.net, other, NULL), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "other settings (momentum=0.9"));
    assert_near(tg_optimizer_lr(other), 0.05, 0);
    /* The same settings load, and the learning rate comes from the file. */
    assert_int_equal(tg_checkpoint_load(p, t.net, t.opt, NULL), TG_OK);
    assert_near(tg_optimizer_lr(t.opt), 0.5, 0);
    assert_true(same(t.net, &s));

    tg_optimizer_free(other);
    release(&s);
    trainer_free(&t);
}


/* A kind's checkpoint is refused by another kind, and by the same kind with other settings. */
static void test_other_kind_or_settings_refused(void **state)
{
    trainer t;
    trainer_init(&t, 1, SIGNUM);
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(4, 2), 0, 1, &t.rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(4));
    train_steps(&t, 0, 2, x, y);
    const char *p = check_path("signum.safetensors");
    assert_int_equal(tg_checkpoint_save(p, t.net, t.opt, NULL), TG_OK);
    snapshot s = take(t.net);
    for (int kind = 0; kind < SIGNUM; kind++) {
        tg_optimizer *o = make_optimizer(kind, &t.ps);
        assert_int_equal(tg_checkpoint_load(p, t.net, o, NULL), TG_ERR_FORMAT);
        assert_non_null(strstr(tg_status_message(), "is for 'signum', not"));
        tg_optimizer_free(o);
    }
    tg_optimizer *other = tg_optimizer_new(&signum_kind, &t.ps, &(signum_opts){.lr = 0.01,
                                           .beta = 0.8, .weight_decay = 1e-3, .start = 0.25});
    assert_int_equal(tg_checkpoint_load(p, t.net, other, NULL), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "other settings (beta=0.90000000000000002"));
    assert_int_equal(tg_optimizer_steps(other), 0);
    tg_optimizer_free(other);
    /* Adam's state into AdamW, RMSprop's with momentum into one without. */
    tg_adam_opts adam = tg_adam_defaults();
    tg_optimizer *a = tg_adam_new(&t.ps, adam);
    assert_int_equal(tg_checkpoint_save(p, t.net, a, NULL), TG_OK);
    adam.decoupled = true;
    tg_optimizer *aw = tg_adam_new(&t.ps, adam);
    assert_int_equal(tg_checkpoint_load(p, t.net, aw, NULL), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "decoupled=0"));
    tg_rmsprop_opts rms = tg_rmsprop_defaults();
    rms.momentum = 0.9;
    tg_optimizer *r1 = tg_rmsprop_new(&t.ps, rms);
    train_steps(&(trainer){.net = t.net, .ps = t.ps, .opt = r1}, 0, 1, x, y);
    assert_int_equal(tg_checkpoint_save(p, t.net, r1, NULL), TG_OK);
    rms.momentum = 0;
    tg_optimizer *r0 = tg_rmsprop_new(&t.ps, rms);
    assert_int_equal(tg_checkpoint_load(p, t.net, r0, NULL), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "momentum=0.9"));
    tg_optimizer *all[] = {a, aw, r1, r0};
    for (int i = 0; i < 4; i++) tg_optimizer_free(all[i]);
    release(&s);
    tg_free(x);
    tg_free(y);
    trainer_free(&t);
}

static void set_all_grads(const tg_param_list *ps)
{
    for (int i = 0; i < ps->n; i++) {
        tg_tensor *t = ps->tensors[i];
        tg_tensor *g = tg_get_grad(t); /* a pending zero_grad would undo the fill */
        if (!g) g = t->grad = tg_zeros(t->dtype, t->ndim, t->shape);
        tg_fill_(g, 0.5);
    }
}

static bool header_has(const char *path, const char *needle)
{
    size_t n;
    unsigned char *b = read_file(path, &n);
    char *text = strndup((char *)b + 8, n - 8); /* the header: JSON up to the data */
    bool found = strstr(text, needle) != NULL;
    free(text);
    free(b);
    return found;
}

/* State tensors under PyTorch's names, as many as the settings need. */
static void test_state_names_on_disk(void **state)
{
    const struct { int kind; const char *names[5]; } cases[] = {
        {SIGNUM, {"momentum_buffer", "sign_count", "step"}},
        {ADAM, {"exp_avg", "exp_avg_sq", "step"}},
        {RMSPROP, {"square_avg", "momentum_buffer", "grad_avg", "step"}}, /* momentum, centered */
        {ADAGRAD, {"sum", "step"}},
        {SGD, {"momentum_buffer"}},
    };
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(4, 2), 0, 1, &rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(4));
    const char *p = check_path("names.safetensors");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        trainer t;
        trainer_init(&t, 1, cases[c].kind);
        train_steps(&t, 0, 1, x, y);
        assert_int_equal(tg_checkpoint_save(p, t.net, t.opt, NULL), TG_OK);
        int n = 0;
        for (int k = 0; k < 5 && cases[c].names[k]; k++, n++) {
            char needle[96];
            snprintf(needle, sizeof needle, "\"optim.state.layers.0.weight.%s\"",
                     cases[c].names[k]);
            if (!header_has(p, needle)) fail_msg("%s: no %s", kind_names[cases[c].kind], needle);
        }
        /* and nothing else: n state entries per parameter that has state */
        size_t size;
        unsigned char *bytes = read_file(p, &size);
        char *text = strndup((char *)bytes + 8, size - 8);
        int count = 0;
        for (char *at = text; (at = strstr(at, "\"optim.state.layers.0.weight.")); at++) count++;
        assert_int_equal(count, n);
        free(text);
        free(bytes);
        trainer_free(&t);
    }
    /* Plain SGD keeps no state at all. */
    tg_module *m = small_model(1);
    tg_param_list ps = {0};
    tg_module_parameters(m, &ps);
    tg_optimizer *o = tg_sgd_new(&ps, (tg_sgd_opts){.lr = 0.1});
    set_all_grads(&ps);
    tg_optimizer_step(o);
    assert_int_equal(tg_checkpoint_save(p, m, o, NULL), TG_OK);
    assert_false(header_has(p, "optim.state."));
    assert_true(header_has(p, "\"optim.kind\":\"sgd\""));
    tg_optimizer_free(o);
    tg_param_list_free(&ps);
    tg_module_free(m);
    tg_free(x);
    tg_free(y);
}

/* Each group's lr is restored; another grouping is refused. */
static void test_groups_round_trip(void **state)
{
    tg_module *m = small_model(3);
    tg_param_list w = {0}, b = {0}, both = {0};
    tg_param_list_add(&w, "weight", tg_linear_weight(m));
    tg_param_list_add(&b, "bias", tg_linear_bias(m));
    tg_module_parameters(m, &both);
    tg_optimizer *o = tg_sgd_new(&w, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9,
                                                   .weight_decay = 1e-2});
    tg_optimizer_add_group(o, &b, 0.3, 0.0);
    tg_optimizer_set_group_lr(o, 0, 0.05);
    tg_optimizer_set_group_lr(o, 1, 0.15);
    const char *p = check_path("groups.safetensors");
    assert_int_equal(tg_checkpoint_save(p, m, o, NULL), TG_OK);

    tg_optimizer *same_groups = tg_sgd_new(&w, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9,
                                                             .weight_decay = 1e-2});
    tg_optimizer_add_group(same_groups, &b, 0.3, 0.0);
    assert_int_equal(tg_checkpoint_load(p, m, same_groups, NULL), TG_OK);
    assert_true(tg_optimizer_group_lr(same_groups, 0) == 0.05);
    assert_true(tg_optimizer_group_lr(same_groups, 1) == 0.15);
    /* StepLR after a resume still starts from the groups' initial lrs. */
    assert_true(tg_optimizer_step_lr(same_groups, 0, 1, 0.5) == 0.1);
    assert_true(tg_optimizer_group_lr(same_groups, 1) == 0.3);

    tg_optimizer *one = tg_sgd_new(&both, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9,
                                                        .weight_decay = 1e-2});
    assert_int_equal(tg_checkpoint_load(p, m, one, NULL), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "2 parameter group(s), this optimizer 1"));
    tg_optimizer *decayed = tg_sgd_new(&w, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9,
                                                         .weight_decay = 1e-2});
    tg_optimizer_add_group(decayed, &b, 0.3, 1e-2);
    assert_int_equal(tg_checkpoint_load(p, m, decayed, NULL), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "parameter group 1 was saved as (initial_lr=0.29999999999999999 "
                                                 "weight_decay=0 params=bias)"));
    assert_true(tg_optimizer_group_lr(decayed, 1) == 0.3);
    tg_optimizer *all[] = {o, same_groups, one, decayed};
    for (int i = 0; i < 4; i++) tg_optimizer_free(all[i]);
    tg_param_list_free(&w);
    tg_param_list_free(&b);
    tg_param_list_free(&both);
    tg_module_free(m);
}

/* ---- the loader's position ------------------------------------------------------------------- */
typedef struct {
    trainer t;
    tg_loader *loader;
} loader_run;

static void loader_run_init(loader_run *r, uint64_t seed, tg_tensor *x, tg_tensor *y)
{
    trainer_init(&r->t, seed, ADAM);
    r->loader = tg_loader_new(x, y, 8, true, false, &r->t.rng);
}

static void loader_run_free(loader_run *r)
{
    tg_loader_free(r->loader);
    trainer_free(&r->t);
}

/* steps batches, starting the next epoch (tg_loader_reset) whenever one ends. */
static void loader_steps(loader_run *r, int steps)
{
    for (int s = 0; s < steps; s++) {
        tg_tensor *xb, *yb;
        if (!tg_loader_next(r->loader, &xb, &yb)) {
            tg_loader_reset(r->loader);
            assert_true(tg_loader_next(r->loader, &xb, &yb));
        }
        tg_optimizer_zero_grad(r->t.opt);
        tg_backward(tg_cross_entropy(tg_module_forward(r->t.net, xb), yb, TG_REDUCE_MEAN));
        tg_optimizer_step(r->t.opt);
        tg_tape_reset();
    }
}

/* Train k steps, checkpoint in the middle of an epoch, continue; against new objects (another
 * seed, as a new process would make) that load the checkpoint and continue: the same bits. */
static void test_resume_with_loader(void **state)
{
    enum { ROWS = 36, K = 7, M = 9 }; /* epochs of 5 batches (the last of 4 rows) */
    tg_rng data_rng;
    tg_rng_seed(&data_rng, 3);
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(ROWS, 2), 0, 1, &data_rng);
    tg_tensor *y = tg_zeros(TG_I32, TG_SHAPE(ROWS));
    for (int i = 0; i < ROWS; i++) tg_set_flat(y, i, (double)tg_rng_below(&data_rng, 3));

    loader_run full, first, second, blind;
    loader_run_init(&full, 7, x, y);
    loader_steps(&full, K + M);

    loader_run_init(&first, 7, x, y);
    loader_steps(&first, K);
    const char *p = check_path("loader.safetensors");
    tg_checkpoint_parts parts = {first.t.net, first.t.opt, &first.t.rng, first.loader};
    assert_int_equal(tg_checkpoint_save_parts(p, &parts), TG_OK);
    loader_run_free(&first);

    loader_run_init(&second, 12345, x, y);
    parts = (tg_checkpoint_parts){second.t.net, second.t.opt, &second.t.rng, second.loader};
    if (tg_checkpoint_load_parts(p, &parts) != TG_OK) fail_msg("%s", tg_status_message());
    loader_steps(&second, M);
    snapshot s = take(full.t.net);
    if (!same(second.t.net, &s)) fail_msg("resumed training with a loader differs");

    /* Without the loader's part the batches differ: the position is what made it identical. */
    loader_run_init(&blind, 12345, x, y);
    assert_int_equal(tg_checkpoint_load(p, blind.t.net, blind.t.opt, &blind.t.rng), TG_OK);
    loader_steps(&blind, M);
    assert_false(same(blind.t.net, &s));
    release(&s);

    /* A position past the end of the epoch is refused (the file holds K = 7 steps: epoch 2,
     * 16 rows in). */
    patch_file(p, "\"loader.pos\":\"16\"", "\"loader.pos\":\"99\"");
    assert_int_equal(tg_checkpoint_load_parts(p, &parts), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "loader.pos"));
    /* A loader of another shape is refused before anything changes. */
    tg_loader *other = tg_loader_new(x, y, 6, true, false, NULL);
    tg_loader_state before = tg_loader_get_state(other);
    parts.loader = other;
    assert_int_equal(tg_checkpoint_load_parts(p, &parts), TG_ERR_FORMAT);
    assert_non_null(strstr(tg_status_message(), "another loader (rows=36 batch_size=8"));
    tg_loader_state after = tg_loader_get_state(other);
    assert_int_equal(before.started, after.started);
    assert_memory_equal(&before.rng, &after.rng, sizeof before.rng);
    tg_loader_free(other);
    loader_run_free(&full);
    loader_run_free(&second);
    loader_run_free(&blind);
    tg_free(x);
    tg_free(y);
}

/* get_state / set_state alone: the rest of an epoch, and the epochs after it, come out the same. */
static void test_loader_state(void **state)
{
    tg_tensor *x = tg_zeros(TG_F32, TG_SHAPE(10, 1));
    for (int i = 0; i < 10; i++) tg_set_flat(x, i, i);
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    tg_loader *a = tg_loader_new(x, NULL, 3, true, false, &rng);
    tg_loader *b = tg_loader_new(x, NULL, 3, true, false, &rng);
    tg_tensor *xb;
    for (int s = 0; s < 6; s++) /* into the second epoch */
        if (!tg_loader_next(a, &xb, NULL)) tg_loader_reset(a);
    tg_loader_state st = tg_loader_get_state(a);
    assert_true(st.started);
    tg_loader_set_state(b, &st);
    for (int s = 0; s < 12; s++) {
        bool ka = tg_loader_next(a, &xb, NULL);
        int64_t na, nb;
        const int64_t *ia = tg_loader_batch_indices(a, &na);
        bool kb = tg_loader_next(b, &xb, NULL);
        const int64_t *ib = tg_loader_batch_indices(b, &nb);
        assert_int_equal(ka, kb);
        assert_int_equal(na, nb);
        assert_memory_equal(ia, ib, (size_t)na * sizeof *ia);
        if (!ka) {
            tg_loader_reset(a);
            tg_loader_reset(b);
        }
    }
    tg_loader *c = tg_loader_new(x, NULL, 4, true, false, &rng);
    EXPECT_ERROR("batches of 3", tg_loader_set_state(c, &st));
    st.pos = 11;
    EXPECT_ERROR("position 11", tg_loader_set_state(b, &st));
    tg_loader_free(a);
    tg_loader_free(b);
    tg_loader_free(c);
    tg_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_tensor_list_round_trip),
        cmocka_unit_test(test_hand_written_file_loads),
        cmocka_unit_test(test_damaged_headers),
        cmocka_unit_test(test_truncated_and_corrupted_files),
        cmocka_unit_test(test_failed_save_keeps_old_file),
        cmocka_unit_test(test_resume_bit_identical),
        cmocka_unit_test(test_optimizer_state_errors),
        cmocka_unit_test(test_optimizer_metadata_errors),
        cmocka_unit_test(test_other_kind_or_settings_refused),
        cmocka_unit_test(test_state_names_on_disk),
        cmocka_unit_test(test_groups_round_trip),
        cmocka_unit_test(test_resume_with_loader),
        cmocka_unit_test(test_loader_state),
    };
    return cmocka_run_group_tests(tests, check_tmpdir_setup, check_tmpdir_teardown);
}
