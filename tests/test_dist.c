/* Data-parallel training (include/tg/dist.h): the tape's backward hook it is built on, then the
 * MPI programs of dist/tests/ run with `mpirun -np 2` (and 1 and 3) on this machine: loss curves
 * against one process, checkpoints resumed with another world size, and the three ways a rank
 * can fail. The MPI parts skip, saying so, when Open MPI is not installed (mk/dist.mk builds
 * them only then; scripts/setup.sh installs it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>
#include "tapegrad.h"
#include "check.h"

/* ---- the backward hook ---------------------------------------------------------------------- */

typedef struct {
    size_t order[16];
    int calls;
} hook_log;

static void log_record(const tg_node *node, void *user_data)
{
    hook_log *log = user_data;
    if (log->calls < 16) log->order[log->calls] = node->index;
    log->calls++;
}

static void test_backward_hook_sees_every_record_in_reverse(void **state)
{
    (void)state;
    tg_tensor *w = tg_set_requires_grad(tg_full(TG_F64, TG_SHAPE(3), 2.0), true);
    tg_tensor *loss = tg_sum(tg_mul(tg_exp(w), w));   /* exp, mul, sum: records 0, 1, 2 */
    hook_log log = {0};
    tg_set_backward_hook(log_record, &log);
    tg_backward(loss);
    tg_set_backward_hook(NULL, NULL);
    assert_int_equal(log.calls, 3);
    assert_int_equal(log.order[0], 2);
    assert_int_equal(log.order[1], 1);
    assert_int_equal(log.order[2], 0);
    /* The hook runs after the record's backward: by the last call w's gradient is complete. */
    assert_near(tg_get_flat(w->grad, 0), exp(2.0) * 3.0, 1e-12);
    tg_tape_reset();

    tg_tensor *g;
    loss = tg_sum(tg_exp(w));
    tg_set_backward_hook(log_record, &log);
    log.calls = 0;
    tg_grad(loss, NULL, 1, &w, &g, false);    /* the functional pass touches no ->grad: no hook */
    tg_set_backward_hook(NULL, NULL);
    assert_int_equal(log.calls, 0);
    tg_tape_reset();

    loss = tg_sum(tg_exp(w));
    log.calls = 0;
    tg_backward(loss);                        /* removed: not called */
    assert_int_equal(log.calls, 0);
    tg_tape_reset();
    tg_free(w);
}

/* ---- the MPI programs ---------------------------------------------------------------------- */

static char check_bin[512], q2_bin[512], q2_mpi_bin[520];
static bool have_mpi;

#define MPIRUN "timeout 120 mpirun --allow-run-as-root --oversubscribe -x ASAN_OPTIONS " \
               "-x UBSAN_OPTIONS -x TG_DIST_TIMEOUT"

/* Runs cmd in the test's folder; returns its exit status (124: timed out) and its output (stdout
 * and stderr) in out, and the seconds it took in *secs. */
static int run_cmd(const char *cmd_line, char *out, size_t len, double *secs)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd %s && %s 2>&1", check_tmpdir, cmd_line);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, len - 1, p);
    out[n] = 0;
    int status = pclose(p);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (secs) *secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* `mpirun -np N ddp_check ARGS` with a deadline (env: variables set for it). */
static int run_mpi(int np, const char *env, const char *args, char *out, size_t len, double *secs)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s " MPIRUN " -np %d %s %s", env ? env : "", np, check_bin, args);
    return run_cmd(cmd, out, len, secs);
}

static void expect_ok(int np, const char *args, const char *needle)
{
    static char out[1 << 16];
    int rc = run_mpi(np, NULL, args, out, sizeof out, NULL);
    printf("%s", out);
    if (rc != 0 || !strstr(out, needle))
        fail_msg("mpirun -np %d ddp_check %s: exit %d, output above", np, args, rc);
}

static void require_mpi(void)
{
    if (!have_mpi) {
        printf("test_dist: skipped: Open MPI is not installed, so mk/dist.mk built no %s "
               "(scripts/setup.sh installs libopenmpi-dev and openmpi-bin)\n", check_bin);
        skip();
    }
}

static void test_two_processes_match_one(void **state)
{
    (void)state;
    require_mpi();
    /* 2 ranks: bit-identical to the same shards in one process, close to the unsharded batch;
     * 1 and 3 ranks (3 splits every global batch of 27 unevenly) the same. */
    expect_ok(2, "curve 12 curve2.txt 9 ck2.safetensors", "ok: 2 ranks");
    expect_ok(1, "curve 12 curve1.txt", "ok: 1 ranks");
    expect_ok(3, "curve 12 curve3.txt", "ok: 3 ranks");
}

/* Batch norm's running statistics: every rank holds rank 0's after the start-up broadcast and
 * after each step's, and training matches one process running the same shards. */
static void test_batch_norm_buffers_are_rank_0s(void **state)
{
    (void)state;
    require_mpi();
    expect_ok(2, "batchnorm 12", "ok: batch norm, 2 ranks");
    expect_ok(3, "batchnorm 12", "ok: batch norm, 3 ranks");
}

/* Lazy zero_grad: a parameter the backward does not reach is reduced as zeros, not as what its
 * pending buffer holds. */
static void test_unreached_parameter_reduced_as_zeros(void **state)
{
    (void)state;
    require_mpi();
    expect_ok(2, "unreached", "ok: unreached parameter reduced as zeros, 2 ranks");
}

static void test_checkpoint_of_two_ranks_resumes_on_one_and_three(void **state)
{
    (void)state;
    require_mpi();
    expect_ok(2, "curve 12 curve2.txt 9 ck2.safetensors", "ok: 2 ranks");
    expect_ok(1, "resume 12 ck2.safetensors curve2.txt", "ok: resumed at step 9 with 1 ranks");
    expect_ok(3, "resume 12 ck2.safetensors curve2.txt", "ok: resumed at step 9 with 3 ranks");
}

static void expect_job_fails(const char *env, const char *kind, const char *needle)
{
    static char out[1 << 16];
    double secs;
    int rc = run_mpi(2, env, kind, out, sizeof out, &secs);
    printf("ddp_check %s: exit %d after %.1f s\n", kind, rc, secs);
    if (rc == 0 || rc == 124 || !strstr(out, needle))
        fail_msg("ddp_check %s: exit %d after %.1f s (want non-zero, before the 120 s deadline, "
                 "with \"%s\"):\n%s", kind, rc, secs, needle, out);
}

static void test_a_failing_rank_ends_the_job(void **state)
{
    (void)state;
    require_mpi();
    expect_job_fails(NULL, "fault-input",
                     "rank 1 of 2: loading my shard: /nonexistent/shard-1.npy");
    expect_job_fails(NULL, "fault-die", "exited on signal 9");
    /* Rank 1 sleeps 60 s inside a step: rank 0's deadline of 2 s ends the job. */
    expect_job_fails("TG_DIST_TIMEOUT=2", "fault-hang", "no answer from the other ranks for 2 s");
    /* Rank 1 sleeps past the barrier, so rank 0 waits in a blocking reduction: the watchdog. */
    expect_job_fails("TG_DIST_TIMEOUT=2", "fault-hang-late",
                     "blocking gradient reduction): no answer from the other ranks for 2 s");
}

/* ---- the Question 2 runner, data-parallel (apps/question2/distributed.c) --------------------- */

/* A small run: 2000 training rows in global batches of 30 (the last one 20), no dropout (its
 * masks are drawn per rank), a checkpoint at the end (the weights and the optimizer's state, to
 * compare bit for bit). */
#define Q2_RUN "mlp -fast -limit 2000 -eval_limit 1000 -batch_size 30 -dropout 0 -momentum 0.9 " \
               "-checkpoint_every 2 -test_curve -train_acc"

/* A small alexnet with batch norm: 20 steps an epoch, 1100 validation and test rows, which
 * evaluation splits into a batch of 1000 for rank 0 and one of 100 for rank 1. */
#define Q2_BN_RUN "alexnet -batch_norm -width 0.125 -hidden_size 32 -fast -limit 600 " \
                  "-eval_limit 1100 -batch_size 30 -dropout 0 -momentum 0.9 -checkpoint_every 2 " \
                  "-test_curve -train_acc"

/* Runs `launch bin base flags`, which must succeed with rank 0 alone printing; returns its
 * output. */
static const char *run_q2_cmd(const char *launch, const char *bin, const char *base,
                              const char *flags)
{
    static char out[1 << 16];
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s %s %s", launch, bin, base, flags);
    int rc = run_cmd(cmd, out, sizeof out, NULL);
    if (rc != 0) fail_msg("%s: exit %d:\n%s", cmd, rc, out);
    /* Rank 0 alone prints: one result line, one line saying what was written. */
    const char *first = strstr(out, "RESULT "), *wrote = strstr(out, "wrote ");
    if (!first || strstr(first + 1, "RESULT ") || !wrote || strstr(wrote + 1, "wrote "))
        fail_msg("%s: want one RESULT line and one 'wrote' line:\n%s", cmd, out);
    return out;
}

static void run_q2_base(const char *launch, const char *bin, const char *base, const char *flags,
                        const char *out_dir)
{
    char more[1024];
    snprintf(more, sizeof more, "%s -out %s", flags, out_dir);
    const char *out = run_q2_cmd(launch, bin, base, more);
    /* The second epoch's steps allocate nothing, its first (short) batch included. */
    if (!strstr(out, "steady-state training steps (epochs 2..2): 0\n"))
        fail_msg("%s %s: want no heap allocation in epoch 2's steps:\n%s", bin, more, out);
}

static void run_q2(const char *launch, const char *bin, const char *flags, const char *out_dir)
{
    run_q2_base(launch, bin, Q2_RUN, flags, out_dir);
}

static tg_metrics_table read_metrics(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/metrics.csv", check_tmpdir, dir);
    tg_metrics_table t;
    assert_int_equal(tg_metrics_read_csv(path, &t), TG_OK);
    return t;
}

/* Every column but the seconds: equal to the last digit, or within rel (losses) and 2 examples
 * in 1000 (accuracies: a near-tie can flip). */
static void expect_same_metrics(const char *a_dir, const char *b_dir, double rel)
{
    tg_metrics_table a = read_metrics(a_dir), b = read_metrics(b_dir);
    assert_int_equal(a.n_rows, 2);
    assert_int_equal(a.n_rows, b.n_rows);
    assert_int_equal(a.n_cols, b.n_cols);
    for (int c = 0; c < a.n_cols; c++) {
        if (!strncmp(a.names[c], "sec_", 4)) continue;
        const double *x = tg_metrics_column(&a, a.names[c]), *y = tg_metrics_column(&b, a.names[c]);
        assert_non_null(y);
        bool acc = strstr(a.names[c], "acc") != NULL;
        for (int r = 0; r < a.n_rows; r++) {
            double tol = rel == 0 ? 0 : acc ? 0.002 : rel * fabs(x[r]);
            if (!(fabs(x[r] - y[r]) <= tol))
                fail_msg("%s vs %s: %s at epoch %d: %.9g vs %.9g (tolerance %g)", a_dir, b_dir,
                         a.names[c], r + 1, x[r], y[r], tol);
        }
    }
    tg_metrics_table_free(&a);
    tg_metrics_table_free(&b);
}

static void expect_same_checkpoint(const char *a_dir, const char *b_dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && cmp %s/checkpoint.safetensors %s/checkpoint.safetensors",
             check_tmpdir, a_dir, b_dir);
    if (system(cmd) != 0)
        fail_msg("%s and %s: the checkpoints (weights, optimizer state) differ", a_dir, b_dir);
}

static void require_runner(void)
{
    require_mpi();
    if (access(q2_mpi_bin, X_OK) != 0) fail_msg("%s was not built (mk/dist.mk)", q2_mpi_bin);
}

static void test_runner_two_processes_match_one(void **state)
{
    (void)state;
    require_runner();
    run_q2("", q2_bin, "", "one");
    run_q2(MPIRUN " -np 1", q2_mpi_bin, "", "mpi1");
    run_q2(MPIRUN " -np 2", q2_mpi_bin, "-deterministic", "mpi2");
    run_q2(MPIRUN " -np 2", q2_mpi_bin, "", "mpi2_allreduce");
    run_q2(MPIRUN " -np 1", q2_mpi_bin, "-deterministic -micro_batches 2", "micro2");
    /* One process of question2-mpi is question2, to the bit. */
    expect_same_metrics("one", "mpi1", 0);
    expect_same_checkpoint("one", "mpi1");
    /* Two processes: the same steps as one process running the two slices of each batch one
     * after the other (-micro_batches 2), to the bit, in rank order and with MPI_Iallreduce
     * (for 2 ranks a + b is one sum). */
    expect_same_metrics("micro2", "mpi2", 0);
    expect_same_checkpoint("micro2", "mpi2");
    expect_same_checkpoint("mpi2", "mpi2_allreduce");
    /* The same with plain SGD, which question2 updates in backward by default: micro-batches
     * accumulate over two backwards, which needs the usual path */
    run_q2(MPIRUN " -np 1", q2_mpi_bin, "-deterministic -micro_batches 2 -momentum 0", "micro2_sgd");
    run_q2(MPIRUN " -np 2", q2_mpi_bin, "-deterministic -momentum 0", "mpi2_sgd");
    expect_same_checkpoint("micro2_sgd", "mpi2_sgd");
    /* Against the unsharded batch: a product over 30 rows added as 15 + 15 rounds differently
     * in the last bits (docs/distributed.md). */
    expect_same_metrics("one", "mpi2", 1e-5);
}

/* `mpirun -np NP question2-mpi` (np 0: plain question2) resuming a copy of the folder from (to
 * two epochs). */
static void resume_q2(int np, const char *from, const char *dir)
{
    char launch[512], flags[256];
    int n = snprintf(launch, sizeof launch, "rm -rf %s && cp -r %s %s &&", dir, from, dir);
    if (np) snprintf(launch + n, sizeof launch - (size_t)n, " " MPIRUN " -np %d", np);
    snprintf(flags, sizeof flags, "-checkpoint_every 1 -epochs 2 -resume %s", dir);
    run_q2_cmd(launch, np ? q2_mpi_bin : q2_bin, Q2_RUN, flags);
}

/* A checkpoint written by 2 processes after epoch 1, resumed with 2, 1, 3 and by question2: the
 * second epoch is the straight 2-process run's, to the bit with 2 (metrics and checkpoint),
 * within the tolerance of another split of each batch otherwise (docs/distributed.md). */
static void test_runner_resumes_with_another_number_of_processes(void **state)
{
    (void)state;
    require_runner();
    run_q2(MPIRUN " -np 2", q2_mpi_bin, "-checkpoint_every 1", "straight2");
    run_q2_cmd(MPIRUN " -np 2", q2_mpi_bin, Q2_RUN, "-checkpoint_every 1 -epochs 1 -out half2");
    resume_q2(2, "half2", "resumed2");
    resume_q2(1, "half2", "resumed1");
    resume_q2(3, "half2", "resumed3");
    resume_q2(0, "half2", "resumed_plain");
    expect_same_metrics("straight2", "resumed2", 0);
    expect_same_checkpoint("straight2", "resumed2");
    expect_same_metrics("straight2", "resumed1", 1e-5);
    expect_same_metrics("straight2", "resumed3", 1e-5);
    /* Plain question2 resumes it too: question2-mpi's checkpoint holds the training loader's
     * state question2's own loader would have (run.c's skip_epoch). */
    expect_same_metrics("straight2", "resumed_plain", 1e-5);
}

/* Batch norm: every rank's forward moves its own running statistics; the evaluation, split
 * across the ranks, must use rank 0's (those its checkpoint saves). One process with two
 * micro-batches keeps those of the first, so it gives the 2-process run's figures and
 * checkpoint bit for bit. */
static void test_runner_batch_norm_evaluates_rank_0s_statistics(void **state)
{
    (void)state;
    require_runner();
    run_q2_base(MPIRUN " -np 2", q2_mpi_bin, Q2_BN_RUN, "-deterministic", "bn2");
    run_q2_base(MPIRUN " -np 1", q2_mpi_bin, Q2_BN_RUN, "-deterministic -micro_batches 2", "bn1");
    expect_same_metrics("bn1", "bn2", 0);
    expect_same_checkpoint("bn1", "bn2");
}

static void expect_runner_fails(const char *cmd, int want_rc, const char *needle, bool once)
{
    static char out[1 << 16];
    double secs;
    int rc = run_cmd(cmd, out, sizeof out, &secs);
    printf("%s: exit %d after %.1f s\n", cmd, rc, secs);
    const char *at = strstr(out, needle);
    if (rc == 0 || rc == 124 || (want_rc && rc != want_rc) || !at || (once && strstr(at + 1, needle)))
        fail_msg("%s: exit %d after %.1f s (want %s%d, before the 120 s deadline, with \"%s\"%s):"
                 "\n%s", cmd, rc, secs, want_rc ? "" : "non-zero, not ", want_rc, needle,
                 once ? " once" : "", out);
}

static void test_runner_input_errors_end_every_rank(void **state)
{
    (void)state;
    require_runner();
    char cmd[2048];
    /* Only rank 1 cannot read its data (another machine's folder): the job ends, every rank. */
    snprintf(cmd, sizeof cmd, MPIRUN " -np 1 %s " Q2_RUN " -out bad1 : -np 1 %s " Q2_RUN
             " -out bad1 -data /nonexistent", q2_mpi_bin, q2_mpi_bin);
    expect_runner_fails(cmd, 0, "rank 1 of 2: -data /nonexistent", true);
    /* Only rank 0 checks -out: a previous run there ends the job before any training. */
    snprintf(cmd, sizeof cmd, "mkdir -p prev && touch prev/summary.json && " MPIRUN
             " -np 2 %s " Q2_RUN " -out prev", q2_mpi_bin);
    expect_runner_fails(cmd, 0, "prev holds a previous run", true);
    /* A bad command line: exit 2, said once (by rank 0). */
    snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s mlp -epochs 0", q2_mpi_bin);
    expect_runner_fails(cmd, 2, "-epochs: 0 is out of range", true);
    snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s mlp -per_process_batch_size 8 -batch_size 16",
             q2_mpi_bin);
    expect_runner_fails(cmd, 2, "give one", true);
    /* The one-process runner under mpirun says which program trains data-parallel. */
    snprintf(cmd, sizeof cmd, MPIRUN " -np 2 %s mlp -fast", q2_bin);
    expect_runner_fails(cmd, 2, "use question2-mpi", false);
}

static int group_setup(void **state)
{
    const char *build = getenv("TG_BUILD");
    char here[256];
    if (!getcwd(here, sizeof here)) return -1;
    if (build && build[0] == '/')
        snprintf(check_bin, sizeof check_bin, "%s/dist/tests/ddp_check", build);
    else
        snprintf(check_bin, sizeof check_bin, "%s/%s/dist/tests/ddp_check", here,
                 build && *build ? build : "build");
    snprintf(q2_bin, sizeof q2_bin, "%.*s/apps/question2", (int)(strstr(check_bin, "/dist/tests")
             - check_bin), check_bin);
    snprintf(q2_mpi_bin, sizeof q2_mpi_bin, "%s-mpi", q2_bin);
    have_mpi = access(check_bin, X_OK) == 0 && system("command -v mpirun >/dev/null") == 0;
    /* Open MPI keeps allocations until exit by design: leak reports would be about it. */
    setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
    setenv("UBSAN_OPTIONS", "print_stacktrace=1", 0);  /* mpirun -x wants them all set */
    setenv("TG_DIST_TIMEOUT", "300", 0);
    return check_tmpdir_setup(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backward_hook_sees_every_record_in_reverse),
        cmocka_unit_test(test_two_processes_match_one),
        cmocka_unit_test(test_batch_norm_buffers_are_rank_0s),
        cmocka_unit_test(test_unreached_parameter_reduced_as_zeros),
        cmocka_unit_test(test_checkpoint_of_two_ranks_resumes_on_one_and_three),
        cmocka_unit_test(test_a_failing_rank_ends_the_job),
        cmocka_unit_test(test_runner_two_processes_match_one),
        cmocka_unit_test(test_runner_resumes_with_another_number_of_processes),
        cmocka_unit_test(test_runner_batch_norm_evaluates_rank_0s_statistics),
        cmocka_unit_test(test_runner_input_errors_end_every_rank),
    };
    return cmocka_run_group_tests(tests, group_setup, check_tmpdir_teardown);
}
