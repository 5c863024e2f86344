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
    static const char *const extra[] = {"sec_eval", "lr"};
    tg_metrics_log *log;
    assert_int_equal(tg_metrics_log_open(&log, csv, jsonl, &(tg_metrics_opts){
                         .seconds_name = "sec_train", .n_extra = 2, .extra_names = extra}),
                     TG_OK);
    for (int e = 1; e <= 3; e++) {
        double x[2] = {0.25 * e, 0.1 / e};
        tg_epoch_metrics m = {e, 1.0 / e, e == 2 ? NAN : 0.5 + e, 0.7 + 0.01 * e, 2.5 * e, x};
        assert_int_equal(tg_metrics_log_write(log, &m), TG_OK);
    }
    /* Each line is on disk as soon as it is written, before the log is closed. */
    assert_non_null(strstr(read_text(csv), "\n3,"));
    assert_int_equal(tg_metrics_log_close(log), TG_OK);

    assert_string_equal(read_text(csv),
                        "epoch,train_loss,valid_loss,valid_acc,sec_train,sec_eval,lr\n"
                        "1,1,1.5,0.710000,2.5000,0.25,0.1\n"
                        "2,0.5,nan,0.720000,5.0000,0.5,0.05\n"
                        "3,0.33333333,3.5,0.730000,7.5000,0.75,0.0333333\n");
    const char *j = read_text(jsonl);
    assert_non_null(strstr(j, "{\"epoch\": 1, \"train_loss\": 1, \"valid_loss\": 1.5, "
                              "\"valid_acc\": 0.710000, \"sec_train\": 2.5000, \"sec_eval\": 0.25, "
                              "\"lr\": 0.1}\n"));
    assert_non_null(strstr(j, "\"valid_loss\": null,"));   /* NaN is not JSON */

    tg_metrics_table t;
    assert_int_equal(tg_metrics_read_csv(csv, &t), TG_OK);
    assert_int_equal(t.n_rows, 3);
    assert_int_equal(t.n_cols, 7);
    assert_string_equal(t.names[0], "epoch");
    assert_string_equal(t.names[6], "lr");
    const double *ep = tg_metrics_column(&t, "epoch"), *vl = tg_metrics_column(&t, "valid_loss");
    const double *tl = tg_metrics_column(&t, "train_loss"), *lr = tg_metrics_column(&t, "lr");
    assert_non_null(ep), assert_non_null(vl), assert_non_null(tl), assert_non_null(lr);
    assert_null(tg_metrics_column(&t, "seconds"));
    for (int r = 0; r < 3; r++) assert_near(ep[r], r + 1, 0);
    assert_near(vl[0], 1.5, 0);
    assert_true(isnan(vl[1]));
    assert_near(tl[2], 1.0 / 3, 1e-6);
    assert_near(lr[2], 0.1 / 3, 1e-7);
    tg_metrics_table_free(&t);
    assert_null(t.data);
    assert_int_equal(t.n_cols, 0);
}

/* Only one of the two files, the default column names, no extra columns. */
static void test_metrics_log_one_file_defaults(void **state)
{
    (void)state;
    const char *jsonl = tmp_path("only.jsonl");
    tg_metrics_log *log;
    assert_int_equal(tg_metrics_log_open(&log, NULL, jsonl, NULL), TG_OK);
    tg_epoch_metrics m = {1, 0.5, NAN, NAN, 1, NULL};
    assert_int_equal(tg_metrics_log_write(log, &m), TG_OK);
    assert_int_equal(tg_metrics_log_close(log), TG_OK);
    assert_string_equal(read_text(jsonl), "{\"epoch\": 1, \"train_loss\": 0.5, "
                                          "\"valid_loss\": null, \"valid_acc\": null, "
                                          "\"seconds\": 1.0000}\n");
    assert_int_equal(tg_metrics_log_close(NULL), TG_OK);
}

static void test_metrics_log_errors_name_the_path(void **state)
{
    (void)state;
    tg_metrics_log *log = (tg_metrics_log *)1;
    const char *bad = tmp_path("no-such-dir/metrics.csv");
    assert_int_equal(tg_metrics_log_open(&log, bad, NULL, NULL), TG_ERR_IO);
    assert_null(log);
    assert_message_has(bad);
    /* The CSV opened, the JSON lines file did not: nothing is left open, the message names it. */
    const char *bad2 = tmp_path("no-such-dir/metrics.jsonl");
    assert_int_equal(tg_metrics_log_open(&log, tmp_path("fine.csv"), bad2, NULL), TG_ERR_IO);
    assert_null(log);
    assert_message_has(bad2);

    assert_int_equal(tg_metrics_log_open(&log, NULL, NULL, NULL), TG_ERR_VALUE);
    static const char *const names[] = {"ok", "has space"};
    assert_int_equal(tg_metrics_log_open(&log, tmp_path("x.csv"), NULL,
                                         &(tg_metrics_opts){.n_extra = 2, .extra_names = names}),
                     TG_ERR_VALUE);
    assert_message_has("has space");
    assert_int_equal(tg_metrics_log_open(&log, tmp_path("x.csv"), NULL,
                                         &(tg_metrics_opts){.n_extra = TG_METRICS_MAX_EXTRA + 1,
                                                            .extra_names = names}),
                     TG_ERR_VALUE);

    /* A full disk: the error comes at the first line that does not fit, with the path. */
    if (access("/dev/full", W_OK) != 0) {
        printf("skipped the full-disk case: no /dev/full\n");
        return;
    }
    tg_status st = tg_metrics_log_open(&log, "/dev/full", NULL, NULL);
    if (st == TG_OK) {
        st = tg_metrics_log_write(log, &(tg_epoch_metrics){1, 0.5, 0.5, 0.5, 1, NULL});
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
        cmocka_unit_test(test_metrics_log_one_file_defaults),
        cmocka_unit_test(test_metrics_log_errors_name_the_path),
        cmocka_unit_test(test_metrics_read_errors),
        cmocka_unit_test(test_progress_line),
        cmocka_unit_test(test_progress_fits_the_width),
        cmocka_unit_test(test_progress_redraw_rate),
        cmocka_unit_test(test_progress_silent_off_a_terminal),
        cmocka_unit_test(test_progress_on_a_pseudo_terminal),
    };
    return cmocka_run_group_tests(tests, check_tmpdir_setup, check_tmpdir_teardown);
}
