/* question2-mpi: the Question 2 runner trained data-parallel over MPI (include/tg/dist.h,
 * docs/distributed.md). Built only where Open MPI is installed (mk/dist.mk), from the runner's
 * files plus this one, which holds its main and the hooks run.c and main.c call (question2.h):
 *
 *     mpirun -np 2 question2-mpi mlp -batch_size 256 -hidden_size 1024 -layers 2
 *
 * -batch_size is the global batch: every step takes the same rows as one process would, split
 * across the processes (rank r of N the rows [r·b/N, (r+1)·b/N)), and the gradients are
 * averaged with weights (rows of the slice / rows of the batch) while the backward runs. Rank 0
 * alone writes -out (metrics, charts, summary, checkpoints) and prints; training metrics are
 * summed over the ranks every step (that sum also makes every rank stop at the same step on a
 * NaN loss or an interrupt), and evaluation splits the validation and test sets by batches of
 * EVAL_BATCH rows, whose sums are added in batch order: the figures one process would compute.
 * Buffers (batch norm's running statistics) are rank 0's on every rank before each step and
 * each evaluation, as in PyTorch DDP.
 * An input error on any rank ends every rank (MPI_Abort) with that rank's message. */
#include "question2.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <tg/dist.h>

static struct {
    tg_ddp_opts opts;
    int micro;                      /* micro-batches per step on every rank (-micro_batches) */
    tg_shard_loader *loader;
    tg_ddp *ddp;
    tg_param_list params, buffers;
    tg_param_list kept;             /* the buffers' values over micro-batches 2..M (batch norm) */
    uint64_t seed;
    int64_t batch;                  /* the global batch */
    /* Headers over the loader's rows of each micro-batch, of full and of short last batches. */
    tg_tensor *micro_x[2][64], *micro_y[2][64];
} S;

/* ---- the hooks (question2.h) ------------------------------------------------------------------ */

static bool is_main(void) { return tg_dist_is_main(); }

static void fail(const char *what)
{
    tg_dist_check(TG_ERR_VALUE, what);
}

/* Dropout masks: rank 0 draws from the run's own stream (so one process is question2 itself),
 * every other rank from a stream of its own, as DDP processes seeded by rank would. */
static void own_dropout_stream(tg_rng *rng, int64_t epoch)
{
    if (tg_dist_rank() > 0)
        tg_rng_seed(rng, S.seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)tg_dist_rank()) ^
                             ((uint64_t)epoch << 32));
}

static void start(const q2_config *c, const q2_data *d, tg_module *model, tg_rng *rng)
{
    tg_dist_broadcast_module(model);
    tg_module_parameters(model, &S.params);
    tg_module_buffers(model, &S.buffers);
    for (int i = 0; i < S.buffers.n; i++) {
        const tg_tensor *b = S.buffers.tensors[i];
        tg_param_list_add(&S.kept, S.buffers.names[i], tg_zeros(b->dtype, b->ndim, b->shape));
    }
    S.ddp = tg_ddp_new(&S.params, &S.opts);
    /* A copy of the generator as run.c's own loader will see it: the same global shuffles. */
    tg_rng copy = *rng;
    S.loader = tg_shard_loader_new(d->x[0], d->y[0], c->batch_size, true, false, &copy);
    S.seed = c->seed;
    S.batch = c->batch_size;
    own_dropout_stream(rng, 0);
}

static void seek(int epochs_done, tg_rng *rng)
{
    tg_shard_loader_seek(S.loader, epochs_done * tg_shard_loader_num_batches(S.loader));
    own_dropout_stream(rng, epochs_done);
}

static void finish(void)
{
    tg_shard_loader_free(S.loader);
    tg_ddp_free(S.ddp);
    tg_param_list_free(&S.params);
    for (int i = 0; i < S.kept.n; i++) tg_free(S.kept.tensors[i]);
    tg_param_list_free(&S.kept);
    tg_param_list_free(&S.buffers);
    for (int t = 0; t < 2; t++)
        for (int m = 0; m < S.micro; m++) {
            tg_free(S.micro_x[t][m]), tg_free(S.micro_y[t][m]);
            S.micro_x[t][m] = S.micro_y[t][m] = NULL;
        }
    S.loader = NULL;
    S.ddp = NULL;
}

/* Rows [lo, hi) of the loader's batch t, as a header kept from one step to the next. */
static tg_tensor *rows_of(tg_tensor **cache, const tg_tensor *t, int64_t lo, int64_t hi)
{
    int64_t per_row = t->numel / t->shape[0];
    void *at = (char *)t->data + (size_t)(lo * per_row) * tg_dtype_size(t->dtype);
    if (*cache && (*cache)->data == at && (*cache)->shape[0] == hi - lo) return *cache;
    tg_free(*cache);
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[0] = hi - lo;
    *cache = tg_wrap(t->dtype, t->ndim, shape, at);
    return *cache;
}

/* Saves the buffers' values (restore false) or puts the saved ones back. */
static void keep_buffers(bool restore)
{
    for (int i = 0; i < S.buffers.n; i++) {
        tg_tensor *b = S.buffers.tensors[i];
        void *saved = S.kept.tensors[i]->data;
        memcpy(restore ? b->data : saved, restore ? saved : b->data, tg_nbytes(b));
    }
}

/* The forward of micro-batch k. The running statistics (batch norm) are rank 0's (broadcast
 * before each step and each evaluation, as DDP does) and move with the first micro-batch only:
 * an M-process run keeps the statistics of rank 0's slice, so one process with M micro-batches
 * keeps those of the first, and the two give the same checkpoint and evaluations. */
static tg_tensor *micro_forward(tg_module *model, tg_tensor *x, int k)
{
    if (k == 0) return tg_module_forward(model, x);
    keep_buffers(false);
    tg_tensor *out = tg_module_forward(model, x);
    keep_buffers(true);
    return out;
}

/* One step on this rank's slice, in micro-batches: the weighted gradients of all but the last
 * are accumulated locally, the last one's backward reduces them all. Adds Σ weight·loss and the
 * rows scored right to m[0], m[1]. */
static void step(tg_module *model, tg_optimizer *opt, tg_tensor *xb, tg_tensor *yb, bool accuracy,
                 double m[2])
{
    int64_t rows = xb ? xb->shape[0] : 0, global = tg_shard_loader_global_rows(S.loader);
    int t = global != S.batch;   /* the short last batch has headers of its own */
    tg_dist_broadcast_buffers(&S.buffers);
    for (int k = 0; k < S.micro; k++) {
        int64_t lo = k * rows / S.micro, hi = (k + 1) * rows / S.micro;
        double w = (double)(hi - lo) / (double)global;
        bool last = k == S.micro - 1;
        tg_optimizer_zero_grad(opt);
        tg_tensor *loss = NULL;
        if (hi > lo) {
            tg_tensor *y = rows_of(&S.micro_y[t][k], yb, lo, hi);
            tg_tensor *out = micro_forward(model, rows_of(&S.micro_x[t][k], xb, lo, hi), k);
            loss = tg_cross_entropy(out, y, TG_REDUCE_MEAN);
            if (accuracy) m[1] += (double)tg_count_correct(out, y);
            m[0] += w * tg_item(loss);
        }
        if (last) {
            tg_ddp_backward(S.ddp, loss, w);
        } else {
            if (loss) tg_backward(loss);
            tg_ddp_accumulate(S.ddp, w);
        }
        if (!last) tg_tape_reset();
    }
    tg_optimizer_step(opt);
}

/* tg_train_epoch's step over the global batches: this rank's slice, then the global batch's
 * figures, summed over the ranks. data: the run's stop request, read here because every rank
 * must stop at the same step (any rank asked to stop: all stop). */
static bool ddp_step(void *data, tg_module *model, tg_optimizer *opt, bool accuracy,
                     tg_step_figures *f)
{
    const volatile sig_atomic_t *stop = data;
    tg_tensor *xb, *yb;
    if (!tg_shard_loader_next(S.loader, &xb, &yb)) return false;
    double m[3] = {0, 0, stop && *stop};
    step(model, opt, xb, yb, accuracy, m);
    tg_tape_reset();
    tg_dist_sum(m, 3);
    *f = (tg_step_figures){.loss = m[0], .examples = tg_shard_loader_global_rows(S.loader),
                           .correct = (int64_t)m[1], .stop = m[2] > 0};
    return true;
}

static tg_epoch_stats train_epoch(tg_module *model, tg_optimizer *opt, const tg_train_opts *o)
{
    tg_train_opts ddp = *o;
    ddp.stop = NULL;   /* read in ddp_step, where the ranks agree on it */
    ddp.step = ddp_step;
    ddp.step_data = (void *)o->stop;
    ddp.steps = tg_shard_loader_num_batches(S.loader);
    if (!tg_dist_is_main()) ddp.progress = TG_PROGRESS_OFF;
    return tg_train_epoch(model, opt, NULL, &ddp);
}

/* tg_evaluate_classifier's figures for rank 0's model (its running statistics on every rank):
 * batch i of EVAL_BATCH rows evaluated on rank i mod N; each batch's loss sum and hits are
 * summed over ranks (one rank's value plus zeros: exact) and then added in batch order, as one
 * process adds them. */
static tg_eval evaluate(tg_module *model, const tg_tensor *x, const tg_tensor *y)
{
    int64_t n = x->shape[0], batches = (n + EVAL_BATCH - 1) / EVAL_BATCH;
    int world = tg_dist_world_size(), rank = tg_dist_rank();
    tg_dist_broadcast_buffers(&S.buffers);
    tg_tensor *sums = tg_zeros(TG_F64, TG_SHAPE(2 * (batches ? batches : 1)));
    double *v = sums->data;
    for (int64_t i = rank; i < batches; i += world) {
        int64_t lo = i * EVAL_BATCH, hi = lo + EVAL_BATCH < n ? lo + EVAL_BATCH : n;
        tg_tensor *xs = NULL, *ys = NULL;
        tg_eval e = tg_evaluate_classifier(model, rows_of(&xs, x, lo, hi), rows_of(&ys, y, lo, hi),
                                           EVAL_BATCH);
        v[2 * i] = e.loss_sum;
        v[2 * i + 1] = (double)e.correct;
        tg_free(xs);
        tg_free(ys);
    }
    tg_dist_sum(v, (int)(2 * batches));
    double sum = 0, hits = 0;
    for (int64_t i = 0; i < batches; i++) sum += v[2 * i], hits += v[2 * i + 1];
    tg_free(sums);
    tg_eval e = {.loss = NAN, .accuracy = NAN, .n = n, .loss_sum = sum, .correct = (int64_t)hits};
    if (n) e.loss = sum / (double)n, e.accuracy = hits / (double)n;
    return e;
}

static const q2_dist_hooks hooks = {
    .is_main = is_main, .fail = fail, .start = start, .seek = seek, .train_epoch = train_epoch,
    .evaluate = evaluate, .finish = finish, .barrier = tg_dist_barrier,
};

/* ---- the command line ------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    q2_usage(f);
    fprintf(f,
            "\nquestion2-mpi: the same runner trained data-parallel, one process per rank:\n"
            "    mpirun -np N question2-mpi MODEL [flags]\n"
            "-batch_size is the GLOBAL batch, split across the N processes (each takes about\n"
            "batch_size/N rows of every batch): the same steps as one process, so the curves match\n"
            "question2's. Rank 0 alone prints and writes -out. Flags of this mode:\n"
            "  -per_process_batch_size N  N rows per process: the global batch is N x processes\n"
            "                             (instead of -batch_size)\n"
            "  -deterministic             add the gradients in rank order: the same bits in\n"
            "                             every run, and those of one process with\n"
            "                             -micro_batches N (default: MPI_Iallreduce's order)\n"
            "  -micro_batches M           each process runs its slice as M micro-batches,\n"
            "                             gradients accumulated (1..64; default 1): one process\n"
            "                             with -micro_batches M gives the bits of M processes\n"
            "  -bucket_kb K               gradients reduced in buckets of about K KiB (1024)\n"
            "  -no_overlap                reduce after the backward instead of during it\n"
            "Sweeps, replot and recipes run in one process: use question2 for them.\n"
            "TG_DIST_TIMEOUT (seconds, default 300): a rank that waits longer for the others ends\n"
            "the job. An input error on any rank ends every rank (exit status non-zero).\n");
}

static tg_status count_arg(const char *flag, const char *s, long long lo, long long hi,
                           long long *out)
{
    char *end;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || end == s || *end)
        return q2_bad("%s needs an integer, got '%s'", flag, s ? s : "nothing");
    if (v < lo || v > hi) return q2_bad("%s: %lld is out of range [%lld, %lld]", flag, v, lo, hi);
    *out = v;
    return TG_OK;
}

/* "-name", "--name", "-name=v", "--name=v": the name's length (and *value after '='). */
static size_t flag_name(const char *a, const char **name, const char **value)
{
    *name = a + (a[1] == '-' ? 2 : 1);
    const char *eq = strchr(*name, '=');
    *value = eq ? eq + 1 : NULL;
    return eq ? (size_t)(eq - *name) : strlen(*name);
}

static bool is_flag(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && !strncmp(name, want, len);
}

/* Takes this mode's flags out of argv (into S and *per_process); the rest is question2's. */
static tg_status take_flags(int *argc, char **argv, long long *per_process, bool *help)
{
    static const char *const counts[3] = {"per_process_batch_size", "micro_batches", "bucket_kb"};
    int kept = 1;
    S.micro = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i], *name, *value;
        *help |= !strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "-help");
        if (a[0] != '-' || a[1] == '\0') {
            argv[kept++] = argv[i];
            continue;
        }
        size_t len = flag_name(a, &name, &value);
        int k = 0;
        while (k < 3 && !is_flag(name, len, counts[k])) k++;
        if (is_flag(name, len, "deterministic")) {
            S.opts.deterministic = true;
        } else if (is_flag(name, len, "no_overlap")) {
            S.opts.no_overlap = true;
        } else if (k < 3) {
            bool inline_value = value != NULL;
            if (!inline_value) value = i + 1 < *argc ? argv[++i] : NULL;
            char flag[32];
            snprintf(flag, sizeof flag, "-%s", counts[k]);
            long long n = 0;
            tg_status st = count_arg(flag, value, 1, k == 1 ? 64 : 1 << 24, &n);
            if (st != TG_OK) return st;
            if (k == 0) *per_process = n;
            else if (k == 1) S.micro = (int)n;
            else S.opts.bucket_bytes = (size_t)n << 10;
        } else {
            argv[kept++] = argv[i];
        }
    }
    *argc = kept;
    argv[kept] = NULL;
    return TG_OK;
}

/* question2's own checks of the command line, so that a mistake is said once (by rank 0) and
 * not by every rank; *batch_given: -batch_size is on it. */
static tg_status check_command_line(int argc, char **argv, bool *batch_given)
{
    raw_flags raw = {0};
    const char *pos[1];
    int n_pos;
    bool help = false;
    q2_model model;
    q2_config c;
    tg_status st = q2_parse_flags(argc, argv, 1, &raw, pos, 1, &n_pos, &help);
    if (st != TG_OK || help) return st;
    if (n_pos == 0) return q2_bad("give a model: logistic_regression, mlp, lenet or alexnet");
    if ((st = q2_parse_model(pos[0], &model)) != TG_OK ||
        (st = q2_make_config(&raw, model, &c)) != TG_OK)
        return st;
    if (raw.v[F_JOBS]) return q2_bad("-jobs is for sweeps, which run in one process");
    *batch_given = raw.v[F_BATCH] != NULL;
    return TG_OK;
}

/* A mistake on the command line: said by rank 0, exit status 2 everywhere. The barrier keeps
 * the others from exiting first: mpirun would end the job before rank 0 has said why. */
static int usage_error(void)
{
    int rc = tg_dist_is_main() ? q2_usage_error() : EXIT_USAGE;
    fflush(stderr);
    tg_dist_barrier();
    return rc;
}

/* The run itself, argv holding room for two more flags. */
static int train(int argc, char **argv, long long per_process)
{
    char batch_flag[64];
    if (per_process) {
        snprintf(batch_flag, sizeof batch_flag, "-batch_size=%lld",
                 per_process * tg_dist_world_size());
        argv[argc++] = batch_flag;
    }
    /* Ranks other than 0 print nothing: their stdout goes nowhere, and -quiet keeps the
     * warnings every rank would repeat off stderr (which stays, for their own errors). */
    if (!tg_dist_is_main()) {
        argv[argc++] = "-quiet";
        if (!freopen("/dev/null", "w", stdout)) tg_dist_check(TG_ERR_IO, "/dev/null");
    }
    argv[argc] = NULL;
    q2_dist = &hooks;
    return q2_main(argc, argv);
}

static bool one_process_mode(const char *word)
{
    return !strcmp(word, "sweep") || !strcmp(word, "replot") || !strcmp(word, "recipe");
}

int main(int argc, char **argv)
{
    tg_dist_check(tg_dist_init(&argc, &argv), "tg_dist_init");
    long long per_process = 0;
    bool help = false, batch_given = false;
    /* Room for the flags train adds: -batch_size=N and -quiet. */
    char **args = calloc((size_t)argc + 3, sizeof *args);
    if (!args) tg_dist_check(TG_ERR_VALUE, "out of memory");
    memcpy(args, argv, sizeof *args * (size_t)argc);
    int n = argc, rc;
    tg_status st = take_flags(&n, args, &per_process, &help);
    if (help) {
        if (tg_dist_is_main()) usage(stdout);
        rc = 0;
    } else if (st != TG_OK) {
        rc = usage_error();
    } else if (n >= 2 && one_process_mode(args[1])) {
        q2_bad("'%s' runs in one process: use " PROG " %s", args[1], args[1]);
        rc = usage_error();
    } else if (check_command_line(n, args, &batch_given) != TG_OK) {
        rc = usage_error();
    } else if (per_process && batch_given) {
        q2_bad("-per_process_batch_size and -batch_size: give one (-batch_size is the global "
               "batch)");
        rc = usage_error();
    } else {
        rc = train(n, args, per_process);
    }
    free(args);
    tg_dist_finalize();
    return rc;
}
