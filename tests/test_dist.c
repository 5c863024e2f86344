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

static char check_bin[512];
static bool have_mpi;

/* Runs `mpirun -np N ddp_check ARGS` with a deadline; returns its exit status (124: timed out)
 * and its output (stdout and stderr) in out, and the seconds it took in *secs. */
static int run_mpi(int np, const char *env, const char *args, char *out, size_t len, double *secs)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && %s timeout 120 mpirun --allow-run-as-root --oversubscribe -np %d "
             "-x ASAN_OPTIONS -x UBSAN_OPTIONS -x TG_DIST_TIMEOUT %s %s 2>&1", check_tmpdir,
             env ? env : "", np, check_bin, args);
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
        cmocka_unit_test(test_checkpoint_of_two_ranks_resumes_on_one_and_three),
        cmocka_unit_test(test_a_failing_rank_ends_the_job),
    };
    return cmocka_run_group_tests(tests, group_setup, check_tmpdir_teardown);
}
