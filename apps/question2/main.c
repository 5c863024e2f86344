/* question2: the two modes (one model, or a sweep) and the single run. See question2.h for the
 * command line and the protocol, and for what each file of this program holds. */
#include "question2.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* The number of processes mpirun (Open MPI or MPICH) started this one among; 0 outside it. */
static int started_by_mpirun(void)
{
    const char *n = getenv("OMPI_COMM_WORLD_SIZE");
    if (!n) n = getenv("PMI_SIZE");
    return n ? atoi(n) : 0;
}

/* The first SIGINT/SIGTERM asks the run to stop after its current step; a second one kills. */
static void request_stop(int sig)
{
    q2_stop = 1;
    signal(sig, SIG_DFL);
}

/* A run that cannot go on (the message is tg_status_message()'s). In question2-mpi every rank
 * ends, since the others would wait for this one. */
static int run_failed(const char *what)
{
    if (q2_dist) q2_dist->fail(what);
    fprintf(stderr, PROG ": %s%s%s\n", what, *what ? ": " : "", tg_status_message());
    return 1;
}

/* One model: load, train (run.c), print the results, write the files (rank 0's, in
 * question2-mpi). */
static int single_run(const q2_config *c)
{
    if (q2_is_main() && q2_check_out(c->out, c->overwrite || c->resume) != TG_OK)
        return run_failed("");   /* before any loading */
    q2_blas_setup(c);
    printf("%s\n", tg_blas_info());
    q2_data d;
    double t0 = q2_now();
    if (q2_load_data(c, &d) != TG_OK) {
        char what[PATH_MAX + 8];
        snprintf(what, sizeof what, "-data %s", c->data);
        return run_failed(what);
    }
    printf("loaded %s in %.2f s\n", c->data, q2_now() - t0);
    /* The output folder only once the data is there: a failed run leaves no empty folder. */
    if (q2_is_main() && q2_make_dirs(c->out) != TG_OK) {
        q2_free_data(&d);
        return run_failed("");
    }

    q2_result r;
    signal(SIGINT, request_stop);
    signal(SIGTERM, request_stop);
    tg_status run_st = q2_run(c, &d, "", &r);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (run_st != TG_OK) {
        q2_result_free(&r);
        q2_free_data(&d);
        return run_failed("");
    }
    int64_t n_full = d.m.train.x->shape[0];
    char ta[24], tl[24], va[24];
    double last_valid = r.epochs ? r.valid_acc[r.epochs - 1] : NAN;
    printf("final test accuracy %s (test loss %s), valid accuracy %s\n", q2_fmt(ta, r.test_acc),
           q2_fmt(tl, r.test_loss), q2_fmt(va, last_valid));
    double full = r.sec_per_epoch * (double)n_full / (double)r.n_train;
    printf("seconds per epoch (training only): %.3f on %lld examples", r.sec_per_epoch,
           (long long)r.n_train);
    if (r.n_train != n_full) printf(" = %.3f extrapolated to %lld", full, (long long)n_full);
    printf("\n");
    if (r.steps_measured)
        printf("tapegrad heap allocations in %lld steady-state training steps (epochs 2..%d): "
               "%llu\n", (long long)r.steps_measured, r.epochs,
               (unsigned long long)r.allocs_measured);
    if (r.status != RUN_COMPLETED)
        printf("run %s at epoch %d of %d\n", q2_status_names[r.status], r.epochs, c->epochs);
    int rc = q2_exit_status(&r);
    char title[200];
    q2_config_title(c, title, sizeof title);
    if (q2_is_main() && q2_write_run_files(c, &r, title) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        rc = 1;
    } else {
        printf("wrote %s/{metrics.csv, metrics.jsonl, summary.json, loss.png, accuracy.png}\n",
               c->out);
    }
    /* One machine-readable line, the same as bench/q2_torch.py's (bench/compare_q2.sh reads it). */
    printf("RESULT valid_acc=%.4f test_acc=%.4f sec_per_epoch=%.4f sec_per_full_epoch=%.4f "
           "train_examples=%lld status=%s at_chance=%d\n",
           last_valid, r.test_acc, r.sec_per_epoch, full, (long long)r.n_train,
           q2_status_names[r.status], r.at_chance);
    q2_result_free(&r);
    q2_free_data(&d);
    return rc;
}

int q2_main(int argc, char **argv)
{
    if (!q2_dist && (started_by_mpirun() > 1)) {
        fprintf(stderr, PROG ": started by mpirun as one of %d processes, but this build trains "
                        "in one process: use " PROG "-mpi (tapegrad-" PROG "-mpi) to train "
                        "data-parallel\n", started_by_mpirun());
        return EXIT_USAGE;
    }
    if (argc >= 2 && !strcmp(argv[1], "sweep")) return q2_sweep_main(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "replot")) return q2_replot_main(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "recipe")) return q2_recipe_main(argc, argv);

    raw_flags raw = {0};
    const char *pos[1];
    int n_pos;
    bool help = false;
    q2_config c;
    if (q2_parse_flags(argc, argv, 1, &raw, pos, 1, &n_pos, &help) != TG_OK)
        return q2_usage_error();
    if (help) { q2_usage(stdout); return 0; }
    if (n_pos == 0) {
        q2_bad("give a model: logistic_regression, mlp, lenet or alexnet (or 'sweep WHICH')");
        return q2_usage_error();
    }
    q2_model model;
    if (q2_parse_model(pos[0], &model) != TG_OK || q2_make_config(&raw, model, &c) != TG_OK)
        return q2_usage_error();
    if (raw.v[F_JOBS]) {
        q2_bad("-jobs is for sweeps ('" PROG " sweep ...')");
        return q2_usage_error();
    }
    return single_run(&c);
}

#ifndef Q2_DISTRIBUTED   /* question2-mpi's main is distributed.c's */
int main(int argc, char **argv) { return q2_main(argc, argv); }
#endif
