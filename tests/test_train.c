/* train/: the per-epoch metrics log (written, read back, every error naming its path) and the
 * progress bar (its line, its redraw rate, its silence off a terminal, and a real pseudo-terminal).
 * The bar's clock is replaced by a fake one, so no test depends on how fast the machine is. */
#define _XOPEN_SOURCE 700   /* posix_openpt, grantpt, ptsname */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tapegrad.h"
#include "tests/check.h"


static const char *tmp_path(const char *name)
{
    static char p[4][256];
    static int k;
    char *s = p[k++ % 4];
    snprintf(s, sizeof p[0], "%s/%s", check_tmpdir, name);
    return s;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The whole content of a file (or of a FILE* written so far), in a static buffer. */
static const char *slurp(FILE *f)
{
    static char buf[16384];
    fflush(f);
    rewind(f);
    buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
    return buf;
}

static const char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    const char *s = slurp(f);
    fclose(f);
    return s;
}

static void assert_message_has(const char *needle)
{
    if (!strstr(tg_status_message(), needle))
        fail_msg("message \"%s\" does not mention \"%s\"", tg_status_message(), needle);
}

/* ---- metrics log ----------------------------------------------------------------------------- */

static void test_metrics_log_written_and_read_back(void **state)
{
    (void)state;
    const char *csv = tmp_path("m.csv"), *jsonl = tmp_path("m.jsonl");
    static const char *const cols[] = {"epoch", "train_loss", "valid_loss", "valid_acc", "lr"};
    tg_metrics_log *log;
    assert_int_equal(tg_metrics_log_open(&log, csv, jsonl, 5, cols), TG_OK);
    for (int e = 1; e <= 3; e++) {
        double row[5] = {e, 1.0 / e, e == 2 ? NAN : 0.5 + e, 0.7 + 0.01 * e, 0.1 / e};
        assert_int_equal(tg_metrics_log_write(log, row), TG_OK);
        /* Each line is on disk as soon as it is written, before the log is closed. */
        assert_int_equal(tg_metrics_log_rows(log), e);
    }
    assert_non_null(strstr(read_text(csv), "\n3,"));
    /* ...and in memory, as columns */
    const double *acc = tg_metrics_log_column(log, "valid_acc");
    assert_non_null(acc);
    assert_near(acc[2], 0.73, 1e-15);
    assert_true(isnan(tg_metrics_log_column(log, "valid_loss")[1]));
    assert_null(tg_metrics_log_column(log, "seconds"));
    assert_int_equal(tg_metrics_log_close(log), TG_OK);

    assert_string_equal(read_text(csv),
                        "epoch,train_loss,valid_loss,valid_acc,lr\n"
                        "1,1,1.5,0.71,0.1\n"
                        "2,0.5,nan,0.72,0.05\n"
                        "3,0.33333333,3.5,0.73,0.033333333\n");
    const char *j = read_text(jsonl);
    assert_non_null(strstr(j, "{\"epoch\": 1, \"train_loss\": 1, \"valid_loss\": 1.5, "
                              "\"valid_acc\": 0.71, \"lr\": 0.1}\n"));
    assert_non_null(strstr(j, "\"valid_loss\": null,"));   /* NaN is not JSON */

    tg_metrics_table t;
    assert_int_equal(tg_metrics_read_csv(csv, &t), TG_OK);
    assert_int_equal(t.n_rows, 3);
    assert_int_equal(t.n_cols, 5);
    assert_string_equal(t.names[0], "epoch");
    assert_string_equal(t.names[4], "lr");
    const double *ep = tg_metrics_column(&t, "epoch"), *vl = tg_metrics_column(&t, "valid_loss");
    const double *tl = tg_metrics_column(&t, "train_loss"), *lr = tg_metrics_column(&t, "lr");
    assert_non_null(ep), assert_non_null(vl), assert_non_null(tl), assert_non_null(lr);
    for (int r = 0; r < 3; r++) assert_near(ep[r], r + 1, 0);
    assert_near(vl[0], 1.5, 0);
    assert_true(isnan(vl[1]));
    assert_near(tl[2], 1.0 / 3, 1e-8);
    assert_near(lr[2], 0.1 / 3, 1e-9);
    tg_metrics_table_free(&t);
    assert_null(t.data);
    assert_int_equal(t.n_cols, 0);
}

/* Any columns (a step counter, an infinite loss), one file only, or memory only. */
static void test_metrics_log_one_file_and_memory_only(void **state)
{
    (void)state;
    const char *jsonl = tmp_path("only.jsonl");
    tg_metrics_log *log;
    assert_int_equal(tg_metrics_log_open(&log, NULL, jsonl, 2, (const char *[]){"step", "loss"}),
                     TG_OK);
    assert_int_equal(tg_metrics_log_write(log, (double[]){1000000, INFINITY}), TG_OK);
    assert_int_equal(tg_metrics_log_close(log), TG_OK);
    assert_string_equal(read_text(jsonl), "{\"step\": 1000000, \"loss\": null}\n");
    assert_int_equal(tg_metrics_log_close(NULL), TG_OK);

    /* In memory: 1000 rows grow the columns a few times, never per row once grown. */
    assert_int_equal(tg_metrics_log_open(&log, NULL, NULL, 1, (const char *[]){"x"}), TG_OK);
    assert_non_null(tg_metrics_log_column(log, "x"));   /* present, still empty */
    uint64_t a0 = tg_alloc_count();
    for (int i = 0; i < 1000; i++) assert_int_equal(tg_metrics_log_write(log, (double[]){i}), TG_OK);
    assert_true(tg_alloc_count() - a0 <= 5);
    const double *x = tg_metrics_log_column(log, "x");
    for (int i = 0; i < 1000; i++) assert_near(x[i], i, 0);
    assert_int_equal(tg_metrics_log_rows(log), 1000);
    assert_int_equal(tg_metrics_log_close(log), TG_OK);
}

/* A chart straight from the log's columns, against its first column. */
static void test_metrics_log_plot(void **state)
{
    (void)state;
    tg_metrics_log *log;
    assert_int_equal(tg_metrics_log_open(&log, NULL, NULL, 3,
                                         (const char *[]){"epoch", "train", "valid"}), TG_OK);
    for (int e = 1; e <= 5; e++)
        assert_int_equal(tg_metrics_log_write(log, (double[]){e, 1.0 / e, 1.5 / e}), TG_OK);
    const char *png = tmp_path("log.png");
    assert_int_equal(tg_metrics_log_plot(log, png, "loss", "cross-entropy", true, 2,
                                         (const char *[]){"train", "valid"}, NULL), TG_OK);
    FILE *f = fopen(png, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    assert_true(ftell(f) > 1000);
    fclose(f);
    assert_int_equal(tg_metrics_log_plot(log, png, "x", "y", false, 1, (const char *[]){"test"},
                                         NULL), TG_ERR_VALUE);
    assert_message_has("the log has no column 'test'");
    assert_int_equal(tg_metrics_log_close(log), TG_OK);
}

static void test_metrics_log_errors_name_the_path(void **state)
{
    (void)state;
    tg_metrics_log *log = (tg_metrics_log *)1;
    const char *const one[] = {"epoch"};
    const char *bad = tmp_path("no-such-dir/metrics.csv");
    assert_int_equal(tg_metrics_log_open(&log, bad, NULL, 1, one), TG_ERR_IO);
    assert_null(log);
    assert_message_has(bad);
    /* The CSV opened, the JSON lines file did not: nothing is left open, the message names it. */
    const char *bad2 = tmp_path("no-such-dir/metrics.jsonl");
    assert_int_equal(tg_metrics_log_open(&log, tmp_path("fine.csv"), bad2, 1, one), TG_ERR_IO);
    assert_null(log);
    assert_message_has(bad2);

    static const char *const names[] = {"ok", "has space"};
    assert_int_equal(tg_metrics_log_open(&log, tmp_path("x.csv"), NULL, 2, names), TG_ERR_VALUE);
    assert_message_has("has space");
    assert_int_equal(tg_metrics_log_open(&log, tmp_path("x.csv"), NULL, 2,
                                         (const char *[]){"a", "a"}), TG_ERR_VALUE);
    assert_message_has("'a' is named twice");
    assert_int_equal(tg_metrics_log_open(&log, tmp_path("x.csv"), NULL, 0, names), TG_ERR_VALUE);
    assert_int_equal(tg_metrics_log_open(&log, tmp_path("x.csv"), NULL,
                                         TG_METRICS_MAX_COLUMNS + 1, names), TG_ERR_VALUE);
    assert_message_has("65 columns");

    /* A full disk: the error comes at the first line that does not fit, with the path. */
    if (access("/dev/full", W_OK) != 0) {
        printf("skipped the full-disk case: no /dev/full\n");
        return;
    }
    tg_status st = tg_metrics_log_open(&log, "/dev/full", NULL, 1, one);
    if (st == TG_OK) {
        st = tg_metrics_log_write(log, (double[]){1});
        tg_metrics_log_close(log);
    }
    assert_int_equal(st, TG_ERR_IO);
    assert_message_has("/dev/full");
}

static void test_metrics_read_errors(void **state)
{
    (void)state;
    tg_metrics_table t;
    assert_int_equal(tg_metrics_read_csv(tmp_path("missing.csv"), &t), TG_ERR_IO);
    assert_message_has("missing.csv");

    const char *p = tmp_path("bad.csv");
    write_text(p, "epoch,train_loss\n1,0.5\n2,abc\n");
    assert_int_equal(tg_metrics_read_csv(p, &t), TG_ERR_FORMAT);
    assert_message_has("bad.csv: line 3, column 2 (train_loss): cannot read 'abc'");
    assert_null(t.data);

    write_text(p, "epoch,train_loss\n1,0.5,7\n");
    assert_int_equal(tg_metrics_read_csv(p, &t), TG_ERR_FORMAT);
    assert_message_has("line 2 has 3 cells, the header 2");

    write_text(p, "\n\n");
    assert_int_equal(tg_metrics_read_csv(p, &t), TG_ERR_FORMAT);
    assert_message_has("empty file");

    /* Blank lines, spaces, an empty cell (NaN), no final newline, a header without rows. */
    write_text(p, "a, b\n\n 1 , \n2,3");
    assert_int_equal(tg_metrics_read_csv(p, &t), TG_OK);
    assert_int_equal(t.n_rows, 2);
    assert_string_equal(t.names[1], "b"); /* names are trimmed like cells */
    assert_true(isnan(t.data[2]));
    assert_near(t.data[3], 3, 0);
    tg_metrics_table_free(&t);
    write_text(p, "a,b\n");
    assert_int_equal(tg_metrics_read_csv(p, &t), TG_OK);
    assert_int_equal(t.n_rows, 0);
    assert_int_equal(t.n_cols, 2);
    assert_non_null(tg_metrics_column(&t, "b")); /* present, of length 0 (NULL means absent) */
    assert_null(tg_metrics_column(&t, "c"));
    tg_metrics_table_free(&t);
}

/* ---- evaluation ------------------------------------------------------------------------------ */

/* 10 examples of 3 features, 4 classes, and a linear model with fixed weights. */
static void small_problem(tg_tensor **x, tg_tensor **y, tg_module **model)
{
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    *x = tg_rand_normal(TG_F64, TG_SHAPE(10, 3), 0, 1, &rng);
    *y = tg_zeros(TG_I32, TG_SHAPE(10));
    for (int i = 0; i < 10; i++) tg_set_flat(*y, i, (i * 7) % 4);
    *model = tg_linear_new(3, 4, true, tg_init_f64(tg_init_pytorch()), &rng);
}

/* The same figures the slow way: one forward over every row, in a plain expression. */
static void direct(tg_module *model, tg_tensor *x, tg_tensor *y, double *loss, double *acc)
{
    bool grad = tg_set_grad_enabled(false);
    tg_tensor *out = tg_module_forward(model, x);
    *loss = tg_item(tg_cross_entropy(out, y, TG_REDUCE_MEAN));
    tg_tensor *pred = tg_argmax(out, 1);
    int hits = 0;
    for (int i = 0; i < 10; i++) hits += tg_get_flat(pred, i) == tg_get_flat(y, i);
    *acc = hits / 10.0;
    tg_tape_reset();
    tg_set_grad_enabled(grad);
}

/* Rows whose argmax is the label, ties to the first index as tg_argmax; shape errors named. */
static void test_count_correct(void **state)
{
    (void)state;
    tg_tensor *s = tg_from_data(TG_F32, TG_SHAPE(4, 3),
                                (float[]){0, 2, 1, 5, 5, 0, -1, -2, -3, 0, 0, 9});
    tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(4), (int32_t[]){1, 0, 1, 2});
    assert_int_equal(tg_count_correct(s, y), 3);
    tg_tensor *y3 = tg_from_data(TG_I32, TG_SHAPE(3), (int32_t[]){1, 0, 1});
    EXPECT_ERROR("tg_count_correct: scores [4, 3] f32 and labels [3] i32", tg_count_correct(s, y3));
    tg_tape_reset();
    tg_free(s), tg_free(y), tg_free(y3);
}

static void test_evaluate_classifier(void **state)
{
    (void)state;
    tg_tensor *x, *y;
    tg_module *model;
    small_problem(&x, &y, &model);
    double loss, acc;
    direct(model, x, y, &loss, &acc);
    assert_true(acc > 0 && acc < 1);   /* a case where hits and misses both count */
    int64_t batches[] = {1, 3, 10, 64, 0};
    for (int b = 0; b < 5; b++) {
        tg_eval e = tg_evaluate_classifier(model, x, y, batches[b]);
        assert_int_equal(e.n, 10);
        assert_near(e.loss, loss, 1e-12);
        assert_near(e.accuracy, acc, 0);
    }
    /* The sums behind the figures: a set evaluated in parts, one part per batch, gives the
     * whole set's loss_sum to the bit when the parts' sums are added in order. */
    tg_eval whole = tg_evaluate_classifier(model, x, y, 4);
    assert_near(whole.loss_sum, loss * 10, 1e-12);
    assert_int_equal(whole.correct, (int64_t)(acc * 10 + 0.5));
    double parts = 0;
    int64_t part_hits = 0;
    for (int64_t lo = 0; lo < 10; lo += 4) {
        int64_t k = lo + 4 < 10 ? 4 : 10 - lo;
        tg_tensor *xs = tg_wrap(x->dtype, TG_SHAPE(k, x->shape[1]),
                                (double *)x->data + lo * x->shape[1]);
        tg_tensor *ys = tg_wrap(TG_I32, TG_SHAPE(k), (int32_t *)y->data + lo);
        tg_eval e = tg_evaluate_classifier(model, xs, ys, 4);
        parts = lo == 0 ? e.loss_sum : parts + e.loss_sum;
        part_hits += e.correct;
        tg_free(xs), tg_free(ys);
    }
    assert_memory_equal(&parts, &whole.loss_sum, sizeof parts);
    assert_int_equal(part_hits, whole.correct);
    /* The modes come back as they were: grad on/off, the model in train or eval mode. */
    for (int k = 0; k < 4; k++) {
        bool grad = k & 1, training = k & 2;
        tg_set_grad_enabled(grad);
        tg_module_train(model, training);
        tg_evaluate_classifier(model, x, y, 4);
        assert_int_equal(tg_grad_enabled(), grad);
        assert_int_equal(model->training, training);
    }
    tg_set_grad_enabled(true);
    /* Nothing recorded, no gradient made, nothing left on the tape, no allocation once warm. */
    uint64_t a0 = tg_alloc_count();
    tg_evaluate_classifier(model, x, y, 3);
    assert_int_equal(tg_alloc_count(), a0);
    assert_int_equal(tg_tape_length(), 0);
    assert_null(tg_linear_weight(model)->grad);

    /* An empty set: no examples, NaN figures (not 0, which reads as a result). */
    int64_t none = 0;
    tg_tensor *x0 = tg_zeros(TG_F64, TG_SHAPE(none, 3)), *y0 = tg_zeros(TG_I32, TG_SHAPE(none));
    tg_eval e = tg_evaluate_classifier(model, x0, y0, 0);
    assert_int_equal(e.n, 0);
    assert_true(isnan(e.loss) && isnan(e.accuracy));

    tg_tensor *y9 = tg_zeros(TG_I32, TG_SHAPE(9));
    EXPECT_ERROR("tg_evaluate_classifier: x has 10 rows but y has 9",
                 tg_evaluate_classifier(model, x, y9, 0));
    tg_tensor *yf = tg_zeros(TG_F64, TG_SHAPE(10));
    EXPECT_ERROR("labels must be an int32 vector", tg_evaluate_classifier(model, x, yf, 0));
    tg_free(y9), tg_free(yf), tg_free(x0), tg_free(y0);
    tg_module_free(model), tg_free(x), tg_free(y);
}

static void test_evaluate_regressor(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 4);
    tg_tensor *x = tg_rand_normal(TG_F64, TG_SHAPE(7, 2), 0, 1, &rng);
    tg_tensor *y = tg_rand_normal(TG_F64, TG_SHAPE(7, 1), 0, 1, &rng);
    tg_module *model = tg_linear_new(2, 1, true, tg_init_f64(tg_init_pytorch()), &rng);
    bool grad = tg_set_grad_enabled(false);
    tg_tensor *out = tg_module_forward(model, x);
    double want = 0;
    for (int i = 0; i < 7; i++) want += pow(tg_get_flat(out, i) - tg_get_flat(y, i), 2) / 7;
    tg_tape_reset();
    tg_set_grad_enabled(grad);
    tg_eval e = tg_evaluate_regressor(model, x, y, 2);
    assert_int_equal(e.n, 7);
    assert_near(e.loss, want, 1e-12);
    assert_true(isnan(e.accuracy));
    assert_near(e.loss_sum, want * 7, 1e-12);   /* the squared errors' sum, not their mean */
    assert_int_equal(e.correct, 0);
    tg_module_free(model), tg_free(x), tg_free(y);
}

/* ---- one training epoch ---------------------------------------------------------------------- */

typedef struct {
    tg_tensor *x, *y;
    tg_module *model;
    tg_param_list params;
    tg_optimizer *opt;
    tg_loader *loader;
} setup;

static setup make_setup(uint64_t seed)
{
    setup s = {0};
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    small_problem(&s.x, &s.y, &s.model);
    tg_module_parameters(s.model, &s.params);
    s.opt = tg_sgd_new(&s.params, (tg_sgd_opts){.lr = 0.5});
    s.loader = tg_loader_new(s.x, s.y, 3, true, false, &rng);
    return s;
}

static void free_setup(setup *s)
{
    tg_loader_free(s->loader), tg_optimizer_free(s->opt), tg_param_list_free(&s->params);
    tg_module_free(s->model), tg_free(s->x), tg_free(s->y);
}

static void test_train_epoch_is_the_plain_loop(void **state)
{
    (void)state;
    setup a = make_setup(8), b = make_setup(8);
    tg_train_opts o = {.accuracy = true, .progress = TG_PROGRESS_OFF};
    for (int epoch = 0; epoch < 2; epoch++) {
        tg_epoch_stats st = tg_train_epoch(a.model, a.opt, a.loader, &o);
        /* the same epoch written out by hand */
        double sum = 0, weighted = 0;
        int64_t steps = 0, hits = 0;
        tg_tensor *xb, *yb;
        while (tg_loader_next(b.loader, &xb, &yb)) {
            tg_optimizer_zero_grad(b.opt);
            tg_tensor *out = tg_module_forward(b.model, xb);
            tg_tensor *loss = tg_cross_entropy(out, yb, TG_REDUCE_MEAN);
            tg_tensor *pred = tg_argmax(out, 1);
            for (int64_t i = 0; i < yb->numel; i++)
                hits += tg_get_flat(pred, i) == tg_get_flat(yb, i);
            tg_backward(loss);
            tg_optimizer_step(b.opt);
            sum += tg_item(loss), weighted += tg_item(loss) * (double)yb->numel, steps++;
            tg_tape_reset();
        }
        assert_int_equal(st.steps, 4);
        assert_int_equal(st.steps, steps);
        assert_int_equal(st.examples, 10);
        assert_near(st.loss, sum / steps, 1e-12);
        assert_near(st.loss_per_example, weighted / 10, 1e-12);
        assert_near(st.accuracy, hits / 10.0, 0);
        assert_int_equal(st.nonfinite_step, 0);
        assert_false(st.stopped);
        for (int k = 0; k < a.params.n; k++)
            assert_memory_equal(a.params.tensors[k]->data, b.params.tensors[k]->data,
                                (size_t)a.params.tensors[k]->numel * sizeof(double));
    }
    free_setup(&a), free_setup(&b);
}

static void test_train_epoch_stops(void **state)
{
    (void)state;
    setup a = make_setup(9);
    volatile sig_atomic_t stop = 1;
    tg_train_opts o = {.stop = &stop, .progress = TG_PROGRESS_OFF};
    tg_epoch_stats st = tg_train_epoch(a.model, a.opt, a.loader, &o);
    assert_int_equal(st.steps, 0);
    assert_true(st.stopped);
    assert_true(isnan(st.loss));
    stop = 0;
    st = tg_train_epoch(a.model, a.opt, a.loader, &o);
    assert_int_equal(st.steps, 4);
    assert_false(st.stopped);

    /* A NaN in the first batch of five: the epoch ends at that step and names it;
     * keep_nonfinite goes on. */
    tg_set_flat(a.x, 0, NAN);
    tg_loader_free(a.loader);
    a.loader = tg_loader_new(a.x, a.y, 2, false, false, NULL);
    st = tg_train_epoch(a.model, a.opt, a.loader, &(tg_train_opts){.progress = TG_PROGRESS_OFF});
    assert_int_equal(st.nonfinite_step, 1);
    assert_int_equal(st.steps, 1);
    assert_true(isnan(st.loss));
    tg_loader_reset(a.loader);
    st = tg_train_epoch(a.model, a.opt, a.loader,
                        &(tg_train_opts){.keep_nonfinite = true, .progress = TG_PROGRESS_OFF});
    assert_int_equal(st.steps, 5);
    assert_int_equal(st.nonfinite_step, 1);
    free_setup(&a);
}

/* A step of one's own: the figures of a script, one per call. */
typedef struct {
    int calls, n;
    const tg_step_figures *figures;
} scripted;

static bool scripted_step(void *data, tg_module *model, tg_optimizer *opt, bool accuracy,
                          tg_step_figures *out)
{
    scripted *s = data;
    if (s->calls == s->n) return false;
    *out = s->figures[s->calls++];
    return true;
}

/* Two steps: the first sets every figure, the second its loss only. */
static bool loss_only_after_first(void *data, tg_module *model, tg_optimizer *opt, bool accuracy,
                                  tg_step_figures *out)
{
    int *calls = data;
    if (*calls == 0) *out = (tg_step_figures){.loss = 1, .examples = 2, .correct = 2};
    else if (*calls == 1) out->loss = 1;
    else return false;
    ++*calls;
    return true;
}

static void test_train_epoch_with_a_step_of_ones_own(void **state)
{
    (void)state;
    setup a = make_setup(10);
    const tg_step_figures f[4] = {{.loss = 2, .examples = 4, .correct = 1},
                                  {.loss = 1, .examples = 4, .correct = 3},
                                  {.loss = 0.5, .examples = 2, .correct = 2},
                                  {.loss = NAN, .examples = 1}};
    scripted sc = {.n = 3, .figures = f};
    tg_train_opts o = {.accuracy = true, .progress = TG_PROGRESS_OFF, .step = scripted_step,
                       .step_data = &sc, .steps = 3};
    tg_epoch_stats st = tg_train_epoch(a.model, a.opt, NULL, &o);
    assert_int_equal(sc.calls, 3);
    assert_int_equal(st.steps, 3);
    assert_int_equal(st.examples, 10);
    assert_near(st.loss, 3.5 / 3, 1e-15);
    assert_near(st.loss_per_example, (8 + 4 + 1) / 10.0, 1e-15);
    assert_near(st.accuracy, 0.6, 1e-15);
    assert_false(st.stopped);
    /* The step's stop ends the epoch after that step; a NaN loss ends it as usual. */
    tg_step_figures stop[2] = {{.loss = 1, .examples = 1, .stop = true}, {.loss = 1}};
    sc = (scripted){.n = 2, .figures = stop};
    st = tg_train_epoch(a.model, a.opt, NULL, &o);
    assert_int_equal(st.steps, 1);
    assert_true(st.stopped);
    tg_step_figures nan_first[3] = {{.loss = NAN, .examples = 1}, {.loss = 1, .examples = 1},
                                    {.loss = 1, .examples = 1}};
    sc = (scripted){.n = 3, .figures = nan_first};
    st = tg_train_epoch(a.model, a.opt, NULL, &o);
    assert_int_equal(st.steps, 1);
    assert_int_equal(st.nonfinite_step, 1);
    /* A step that sets only its loss: the other figures read 0, not the last step's. */
    int calls = 0;
    o.step = loss_only_after_first, o.step_data = &calls;
    st = tg_train_epoch(a.model, a.opt, NULL, &o);
    assert_int_equal(st.steps, 2);
    assert_int_equal(st.examples, 2);
    assert_near(st.accuracy, 1.0, 1e-15);
    o.step = scripted_step, o.step_data = &sc;
    EXPECT_ERROR("either loader or opts->step", tg_train_epoch(a.model, a.opt, a.loader, &o));
    EXPECT_ERROR("either loader or opts->step", tg_train_epoch(a.model, a.opt, NULL, NULL));
    free_setup(&a);
}

/* ---- progress bar ---------------------------------------------------------------------------- */

static double fake_now;
static long clock_reads;
static double fake_clock(void)
{
    clock_reads++;
    return fake_now;
}

static void begin_fake(tg_progress *p, FILE *out, tg_progress_mode mode, int64_t total)
{
    fake_now = 1000;
    clock_reads = 0;
    tg_progress_begin(p, out, mode, "epoch", 3, 20, total);
    p->clock = fake_clock;
    p->t_start = p->t_drawn = fake_now;
}

static void test_progress_line(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    tg_progress p;
    begin_fake(&p, f, TG_PROGRESS_ON, 100);
    assert_true(p.active);
    for (int i = 0; i < 50; i++) tg_progress_step(&p, 16, i % 2 ? 0.25 : 0.75);
    assert_int_equal(p.drawn, 0);          /* no time has passed: nothing drawn yet */
    assert_string_equal(slurp(f), "");
    fake_now += 2;                         /* 50 batches of 16 in 2 s */
    tg_progress_draw(&p);
    const char *s = slurp(f);
    assert_string_equal(s, "\repoch 3/20 [##########..........] 50/100 loss 0.5000 400 ex/s "
                           "0:02 left\033[K");
    tg_progress_end(&p);
    assert_non_null(strstr(slurp(f), "0:02 left\033[K\r\033[K"));   /* erased */
    assert_false(p.active);
    tg_progress_step(&p, 1, 1);            /* after end: nothing */
    assert_int_equal(p.done, 50);
    fclose(f);
}

/* A line never reaches the last column of the terminal (it would wrap and break "\r"): the bar
 * narrows first, then the line is cut. */
static void test_progress_fits_the_width(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    tg_progress p;
    begin_fake(&p, f, TG_PROGRESS_ON, 100);
    p.columns = 60;
    for (int i = 0; i < 50; i++) tg_progress_step(&p, 8, 0.5);
    fake_now += 1;
    tg_progress_draw(&p);
    assert_string_equal(slurp(f), "\repoch 3/20 [####....] 50/100 loss 0.5000 400 ex/s 0:01 left"
                                  "\033[K");   /* 59 characters */
    fclose(f);

    f = tmpfile();
    begin_fake(&p, f, TG_PROGRESS_ON, 1000000);
    p.columns = 40;
    tg_progress_step(&p, 1, 1e6);
    fake_now += 3600 * 5;
    tg_progress_draw(&p);
    const char *s = slurp(f);
    assert_int_equal(strlen(s), 1 + 39 + 3);   /* "\r", 39 characters, erase to end of line */
    assert_non_null(strstr(s, "[.....] 1/1000000"));
    fclose(f);
}

/* With a batch every millisecond for 10 s: ~10 redraws per second, and the clock is read ~50
 * times per second, not 1000. */
static void test_progress_redraw_rate(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    tg_progress p;
    begin_fake(&p, f, TG_PROGRESS_ON, 10000);
    for (int i = 0; i < 10000; i++) {
        fake_now += 0.001;
        tg_progress_step(&p, 1, 0.5);
    }
    printf("10 s of batches: %d redraws, %ld clock reads for 10000 batches\n", p.drawn,
           clock_reads);
    assert_in_range(p.drawn, 70, 100);
    assert_in_range(clock_reads, 300, 1000);
    tg_progress_end(&p);
    fclose(f);

    /* 100000 batches of 1 us, then 50 of 1 s: the bar keeps redrawing through the slowdown. */
    f = tmpfile();
    begin_fake(&p, f, TG_PROGRESS_ON, 100050);
    for (int i = 0; i < 100000; i++) {
        fake_now += 1e-6;
        tg_progress_step(&p, 1, 0.5);
    }
    int before = p.drawn;
    for (int i = 0; i < 50; i++) {
        fake_now += 1;
        tg_progress_step(&p, 1, 0.5);
    }
    assert_in_range(p.drawn - before, 3, 50);
    tg_progress_end(&p);
    fclose(f);
}

/* Not a terminal and not forced: nothing at all is written. */
static void test_progress_silent_off_a_terminal(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    tg_progress p;
    begin_fake(&p, f, TG_PROGRESS_AUTO, 10);
    assert_false(p.active);
    for (int i = 0; i < 10; i++) {
        fake_now += 1;
        tg_progress_step(&p, 1, 0.5);
    }
    tg_progress_draw(&p);
    tg_progress_end(&p);
    assert_int_equal(p.drawn, 0);
    assert_int_equal(clock_reads, 0);
    assert_string_equal(slurp(f), "");
    fclose(f);
}

/* A real pseudo-terminal: the bar turns itself on, and what it draws arrives at the other end. */
static void test_progress_on_a_pseudo_terminal(void **state)
{
    (void)state;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        printf("skipped: no pseudo-terminals here\n");
        if (master >= 0) close(master);
        skip();
    }
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    assert_true(slave >= 0);
    FILE *out = fdopen(slave, "w");
    assert_non_null(out);
    const char *term = getenv("TERM");
    char saved[64] = "";
    if (term) snprintf(saved, sizeof saved, "%s", term);
    setenv("TERM", "xterm", 1);

    tg_progress p;
    begin_fake(&p, out, TG_PROGRESS_AUTO, 4);
    assert_true(p.active);
    assert_true(p.columns >= 20);
    tg_progress_step(&p, 8, 0.5);
    fake_now += 1;
    tg_progress_draw(&p);
    tg_progress_end(&p);

    char buf[512];
    size_t n = 0;
    struct pollfd pf = {.fd = master, .events = POLLIN};
    while (n < sizeof buf - 1 && poll(&pf, 1, 200) > 0) {
        ssize_t k = read(master, buf + n, sizeof buf - 1 - n);
        if (k <= 0) break;
        n += (size_t)k;
        if (memchr(buf, 'K', n) && strstr(buf, "\r\033[K")) break;
    }
    buf[n] = '\0';
    if (!strstr(buf, "epoch 3/20 [#####...............] 1/4 loss 0.5000 8 ex/s 0:03 left"))
        fail_msg("the terminal received \"%s\"", buf);

    /* Asked for no bar (a -quiet flag): none, terminal or not. */
    tg_progress_begin(&p, out, TG_PROGRESS_OFF, NULL, 0, 0, 4);
    assert_false(p.active);
    /* TERM=dumb: a terminal that cannot erase a line gets no bar. */
    setenv("TERM", "dumb", 1);
    tg_progress_begin(&p, out, TG_PROGRESS_AUTO, NULL, 0, 0, 4);
    assert_false(p.active);
    if (term) setenv("TERM", saved, 1);
    else unsetenv("TERM");
    fclose(out);
    close(master);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_log_written_and_read_back),
        cmocka_unit_test(test_metrics_log_one_file_and_memory_only),
        cmocka_unit_test(test_metrics_log_plot),
        cmocka_unit_test(test_metrics_log_errors_name_the_path),
        cmocka_unit_test(test_metrics_read_errors),
        cmocka_unit_test(test_count_correct),
        cmocka_unit_test(test_evaluate_classifier),
        cmocka_unit_test(test_evaluate_regressor),
        cmocka_unit_test(test_train_epoch_is_the_plain_loop),
        cmocka_unit_test(test_train_epoch_stops),
        cmocka_unit_test(test_train_epoch_with_a_step_of_ones_own),
        cmocka_unit_test(test_progress_line),
        cmocka_unit_test(test_progress_fits_the_width),
        cmocka_unit_test(test_progress_redraw_rate),
        cmocka_unit_test(test_progress_silent_off_a_terminal),
        cmocka_unit_test(test_progress_on_a_pseudo_terminal),
    };
    return cmocka_run_group_tests(tests, check_tmpdir_setup, check_tmpdir_teardown);
}
