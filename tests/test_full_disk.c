/* A full disk: every file writer's message keeps its cause (errno's text) and names the file.
 *
 * The disk fills through RLIMIT_FSIZE, set in a child process: a write that would take a file past
 * the limit fails with EFBIG ("File too large") at the same point a full disk fails with ENOSPC
 * (the first write or flush past the space left), and it needs no privileges, no mount and no
 * special file. SIGXFSZ is ignored, so the write returns the error instead of killing the child.
 * Writers: safetensors and checkpoint saves (nn/safetensors.c), the metrics log (train/), charts
 * (plot/) and the Question 2 runner's files (apps/question2; skipped without the data set). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tapegrad.h"
#include "tests/check.h"

static char message[8192]; /* what the child reported */

static const char *tmp_path(const char *name) {
    static char p[4][256];
    static int k;
    char *s = p[k++ % 4];
    snprintf(s, sizeof p[0], "%s/%s", check_tmpdir, name);
    return s;
}

/* Runs write(ctx) in a child whose files may not grow past limit bytes; the child's status message
 * (or, for a program, its stderr) lands in `message`. Returns the child's exit status. */
static int with_disk_full_at(long limit, tg_status (*write)(void *ctx), void *ctx) {
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {(rlim_t)limit, (rlim_t)limit};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(3);
        dup2(fd[1], STDERR_FILENO);
        tg_status st = write(ctx);
        if (st != TG_OK) fprintf(stderr, "%s\n", tg_status_message());
        _exit(st == TG_OK ? 0 : 1);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t got;
    while ((got = read(fd[0], message + n, sizeof message - 1 - n)) > 0) n += (size_t)got;
    message[n] = '\0';
    close(fd[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void expect_cause(int status, const char *file) {
    const char *cause = strerror(EFBIG);
    if (status != 1)
        fail_msg("writing %s on a full disk exited with %d: %s", file, status, message);
    if (!strstr(message, file) || !strstr(message, cause))
        fail_msg("full disk while writing %s: the message lacks the file or \"%s\": %s", file,
                 cause, message);
}

static tg_status save_safetensors(void *ctx) {
    tg_param_list l = {0};
    tg_tensor *t = tg_zeros(TG_F32, TG_SHAPE(64, 64));
    tg_param_list_add(&l, "w", t);
    tg_status st = tg_safetensors_save(ctx, &l, 0, NULL, NULL);
    tg_param_list_free(&l);
    tg_free(t);
    return st;
}

static void test_safetensors_save(void **state) {
    (void)state;
    const char *path = tmp_path("full.safetensors");
    expect_cause(with_disk_full_at(4096, save_safetensors, (void *)path), "full.safetensors");
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0); /* nothing half-written under the real name */
}

static tg_status save_checkpoint(void *ctx) {
    tg_module *m = tg_linear_new(100, 50, true, (tg_init){0}, NULL);
    tg_status st = tg_checkpoint_save(ctx, m, NULL, NULL);
    tg_module_free(m);
    return st;
}

static void test_checkpoint_save(void **state) {
    (void)state;
    expect_cause(with_disk_full_at(8192, save_checkpoint, (void *)tmp_path("full.ckpt")),
                 "full.ckpt");
}

/* A training loop logs every epoch and carries on past a failed line (as the Question 2 runner
 * does); the close, whose message is the one the program prints last, must still say why. */
static tg_status log_epochs(void *ctx) {
    const char **paths = ctx;
    static const char *const columns[] = {"epoch", "train_loss", "valid_acc"};
    tg_metrics_log *log;
    tg_status st = tg_metrics_log_open(&log, paths[0], paths[1], 3, columns);
    if (st != TG_OK) return st;
    for (int e = 1; e <= 50; e++) (void)tg_metrics_log_write(log, (double[]){e, 0.5, 0.75});
    return tg_metrics_log_close(log);
}

static void test_metrics_log(void **state) {
    (void)state;
    const char *csv[] = {tmp_path("full.csv"), NULL}, *jsonl[] = {NULL, tmp_path("full.jsonl")};
    expect_cause(with_disk_full_at(300, log_epochs, csv), "full.csv");
    expect_cause(with_disk_full_at(300, log_epochs, jsonl), "full.jsonl");
}

static tg_status write_chart(void *ctx) {
    double y[] = {3, 1, 2, 0.5};
    tg_chart c = {.title = "full", .xlabel = "epoch", .ylabel = "loss", .n_series = 1};
    c.series[0] = (tg_series){.name = "loss", .y = y, .n = 4};
    return tg_chart_write_png(&c, ctx, 800, 500);
}

static void test_chart(void **state) {
    (void)state;
    expect_cause(with_disk_full_at(2000, write_chart, (void *)tmp_path("full.png")), "full.png");
}

/* The runner as a program: a short run whose files stop at `limit` bytes each. */
static char runner[1024];
static const char *runner_out;

static tg_status run_question2(void *ctx) {
    int fd = dup(STDERR_FILENO);
    dup2(fd, STDOUT_FILENO); /* per-epoch lines and errors together, like a terminal */
    execl(runner, "question2", "mlp", "-fast", "-epochs", "1", "-limit", "500", "-eval_limit",
          "200", "-quiet", "-data", TG_FASHION_MNIST_DIR, "-out", runner_out, (char *)NULL);
    fprintf(stderr, "cannot run %s: %s\n", runner, strerror(errno));
    _exit(4);
}

static void test_question2_outputs(void **state) {
    (void)state;
    const char *build = getenv("TG_BUILD");
    snprintf(runner, sizeof runner, "%s/apps/question2", build && *build ? build : "build");
    struct stat sb;
    if (stat(TG_FASHION_MNIST_DIR, &sb) != 0 || access(runner, X_OK) != 0) {
        print_message("skipped: needs %s and %s\n", TG_FASHION_MNIST_DIR, runner);
        skip();
    }
    /* 100 bytes: the first epoch line of metrics.csv (~105 bytes with its header) fails; the run
     * goes on and the log's close reports it. 200: the logs fit, summary.json (~600) does not. */
    runner_out = tmp_path("q2_log");
    expect_cause(with_disk_full_at(100, run_question2, NULL), "metrics.csv");
    runner_out = tmp_path("q2_summary");
    expect_cause(with_disk_full_at(200, run_question2, NULL), "summary.json");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_save), cmocka_unit_test(test_checkpoint_save),
        cmocka_unit_test(test_metrics_log),      cmocka_unit_test(test_chart),
        cmocka_unit_test(test_question2_outputs),
    };
    return cmocka_run_group_tests(tests, check_tmpdir_setup, check_tmpdir_teardown);
}
