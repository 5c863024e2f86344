/* Launched by tests/test_dist.c with mpirun; exits non-zero (and says why) when a check fails.
 *
 *   ddp_check curve  STEPS OUT [SAVE_AT CKPT]  trains a small MLP data-parallel and checks it
 *       against one process: bit for bit against the same shards reduced in rank order, within
 *       a tolerance against the unsharded global batch; writes "step loss batch_checksum" lines;
 *       rank 0 saves a checkpoint after SAVE_AT steps
 *   ddp_check resume STEPS CKPT CURVE          resumes CKPT with this run's world size and
 *       compares every later step with the curve of the uninterrupted run
 *   ddp_check batchnorm STEPS                  a model with batch norm: every rank's buffers are
 *       rank 0's after the broadcasts, and rank 0's are those of one process with the same shards
 *   ddp_check unreached                        a parameter whose gradient buffer tg_zero_grad left
 *       pending (over NaN) and that the backward does not reach is reduced as zeros
 *   ddp_check fault-input | fault-hang | fault-hang-late | fault-die   rank 1 fails in one of four
 *                                   ways (hang-late: asleep after the barrier of the blocking reductions) */
#include <math.h>
#include <stdarg.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tapegrad.h"
#include "tg/dist.h"

/* dist/internal.h's fault injection (this program links the static dist library) */
void tg__dist_set_late_stall(double seconds);

enum { N_ROWS = 200, N_IN = 20, N_HIDDEN = 32, N_OUT = 10, BATCH = 27 };

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ddp_check: rank %d: ", tg_dist_rank());
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

static tg_dataset make_data(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_dataset d = {.x = tg_rand_normal(TG_F32, TG_SHAPE(N_ROWS, N_IN), 0, 1, &rng),
                    .y = tg_zeros(TG_I32, TG_SHAPE(N_ROWS)), .n_classes = N_OUT};
    const float *x = d.x->data;
    int32_t *y = d.y->data;
    for (int i = 0; i < N_ROWS; i++) {
        int best = 0;
        for (int j = 1; j < N_OUT; j++)
            if (x[i * N_IN + j] > x[i * N_IN + best]) best = j;
        y[i] = best;
    }
    return d;
}

/* 20-32-10 with ReLU; batch_norm: a BatchNorm1d before the ReLU (buffers to keep in step). */
static tg_module *make_model(uint64_t seed, bool batch_norm)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    tg_module *m = tg_sequential_new(1, tg_linear_new(N_IN, N_HIDDEN, true, tg_init_pytorch(),
                                                      &rng));
    if (batch_norm) tg_sequential_append(m, tg_batch_norm1d_new(N_HIDDEN, NULL));
    tg_sequential_append(m, tg_relu_new());
    tg_sequential_append(m, tg_linear_new(N_HIDDEN, N_OUT, true, tg_init_pytorch(), &rng));
    return m;
}

typedef struct {
    tg_module *model;
    tg_param_list ps, buffers;
    tg_tensor *kept[8];      /* the buffers' values, saved over a shard that must not move them */
    tg_optimizer *opt;
} net;

static net make_net(uint64_t seed, bool batch_norm)
{
    net n = {.model = make_model(seed, batch_norm)};
    tg_module_parameters(n.model, &n.ps);
    tg_module_buffers(n.model, &n.buffers);
    for (int i = 0; i < n.buffers.n; i++) {
        const tg_tensor *b = n.buffers.tensors[i];
        n.kept[i] = tg_zeros(b->dtype, b->ndim, b->shape);
    }
    n.opt = tg_sgd_new(&n.ps, (tg_sgd_opts){.lr = 0.1, .momentum = 0.9});
    return n;
}

static void free_net(net *n)
{
    tg_optimizer_free(n->opt);
    for (int i = 0; i < n->buffers.n; i++) tg_free(n->kept[i]);
    tg_param_list_free(&n->buffers);
    tg_param_list_free(&n->ps);
    tg_module_free(n->model);
}

/* An integer per row (the low bits of its first value) added exactly: the same for the global
 * batch however it is split across ranks. */
static double checksum(const tg_tensor *x)
{
    double s = 0;
    for (int64_t i = 0; x && i < x->shape[0]; i++) {
        uint32_t bits;
        memcpy(&bits, (const float *)x->data + i * N_IN, sizeof bits);
        s += (double)(bits & 0xfffff);
    }
    return s;
}

/* One data-parallel step; returns the global mean loss, and the checksum of the global batch. */
static double ddp_step(net *n, tg_ddp *ddp, tg_shard_loader *L, double *batch_sum)
{
    tg_tensor *xb, *yb;
    if (!tg_shard_loader_next(L, &xb, &yb)) {
        tg_shard_loader_reset(L);
        tg_shard_loader_next(L, &xb, &yb);
    }
    double w = tg_shard_loader_weight(L);
    tg_dist_broadcast_buffers(&n->buffers);
    tg_optimizer_zero_grad(n->opt);
    tg_tensor *loss = xb ? tg_cross_entropy(tg_module_forward(n->model, xb), yb, TG_REDUCE_MEAN)
                         : NULL;
    double m[2] = {loss ? w * tg_item(loss) : 0, checksum(xb)};
    tg_ddp_backward(ddp, loss, w);
    tg_optimizer_step(n->opt);
    tg_tape_reset();
    tg_dist_sum(m, 2);
    *batch_sum = m[1];
    return m[0];
}

static void keep_buffers(net *n, bool restore)
{
    for (int i = 0; i < n->buffers.n; i++) {
        tg_tensor *b = n->buffers.tensors[i];
        memcpy(restore ? b->data : n->kept[i]->data, restore ? n->kept[i]->data : b->data,
               tg_nbytes(b));
    }
}

/* Bit for bit. */
static bool same_buffers(const net *a, const net *b)
{
    for (int i = 0; i < a->buffers.n; i++)
        if (memcmp(a->buffers.tensors[i]->data, b->buffers.tensors[i]->data,
                   tg_nbytes(a->buffers.tensors[i])))
            return false;
    return true;
}

/* The same step in one process: shards of the global batch in rank order, each gradient scaled
 * by its weight, added in rank order (what the deterministic reduction promises to match). The
 * running statistics are rank 0's: those of shard 0, the other shards' forwards undone. */
static double sharded_step(net *n, tg_tensor *xb, tg_tensor *yb, int world, float **acc)
{
    int64_t b = xb->shape[0];
    double loss_sum = 0;
    for (int r = 0; r < world; r++) {
        int64_t lo = r * b / world, hi = (r + 1) * b / world;
        float w = (float)((double)(hi - lo) / (double)b);
        tg_optimizer_zero_grad(n->opt);
        tg_tensor *xs = tg_from_data(TG_F32, TG_SHAPE(hi - lo, N_IN), (float *)xb->data + lo * N_IN);
        tg_tensor *ys = tg_from_data(TG_I32, TG_SHAPE(hi - lo), (int32_t *)yb->data + lo);
        if (r > 0) keep_buffers(n, false);
        tg_tensor *loss = tg_cross_entropy(tg_module_forward(n->model, xs), ys, TG_REDUCE_MEAN);
        if (r > 0) keep_buffers(n, true);
        double lw = ((double)(hi - lo) / (double)b) * tg_item(loss);
        loss_sum = r == 0 ? lw : loss_sum + lw;
        tg_backward(loss);
        for (int i = 0; i < n->ps.n; i++) {
            tg_tensor *p = n->ps.tensors[i];
            const float *g = tg_get_grad(p)->data;
            for (int64_t k = 0; k < p->numel; k++)
                acc[i][k] = r == 0 ? g[k] * w : acc[i][k] + g[k] * w;
        }
        tg_tape_reset();
        tg_free(xs);
        tg_free(ys);
    }
    for (int i = 0; i < n->ps.n; i++)
        memcpy(tg_get_grad(n->ps.tensors[i])->data, acc[i], tg_nbytes(n->ps.tensors[i]));
    tg_optimizer_step(n->opt);
    return loss_sum;
}

static double full_step(net *n, tg_tensor *xb, tg_tensor *yb)
{
    tg_optimizer_zero_grad(n->opt);
    tg_tensor *loss = tg_cross_entropy(tg_module_forward(n->model, xb), yb, TG_REDUCE_MEAN);
    double v = tg_item(loss);
    tg_backward(loss);
    tg_optimizer_step(n->opt);
    tg_tape_reset();
    return v;
}

static bool same_params(const net *a, const net *b)
{
    for (int i = 0; i < a->ps.n; i++)
        if (memcmp(a->ps.tensors[i]->data, b->ps.tensors[i]->data, tg_nbytes(a->ps.tensors[i])))
            return false;
    return true;
}

/* One zeroed accumulator per parameter of n, and its data as floats. */
static void make_accumulators(const net *n, tg_tensor **acc_t, float **acc)
{
    for (int i = 0; i < n->ps.n; i++) {
        tg_tensor *p = n->ps.tensors[i];
        acc_t[i] = tg_zeros(p->dtype, p->ndim, p->shape);
        acc[i] = acc_t[i]->data;
    }
}

static int curve(int steps, const char *out, int save_at, const char *ckpt)
{
    tg_dataset d = make_data();
    int world = tg_dist_world_size();
    /* Different initial weights on every rank: the broadcast must make them rank 0's. */
    net n = make_net(7 + (uint64_t)tg_dist_rank(), false);
    tg_dist_broadcast_module(n.model);
    tg_ddp *ddp = tg_ddp_new(&n.ps, &(tg_ddp_opts){.deterministic = true, .bucket_bytes = 1024});
    tg_ddp *plain = tg_ddp_new(&n.ps, &(tg_ddp_opts){.bucket_bytes = 1024});
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_shard_loader *L = tg_shard_loader_new(d.x, d.y, BATCH, true, false, &rng);

    net ref = make_net(7, false), full = make_net(7, false);
    tg_rng_seed(&rng, 3);
    tg_loader *ref_loader = tg_loader_new(d.x, d.y, BATCH, true, false, &rng);
    tg_tensor *acc_t[8];
    float *acc[8];
    make_accumulators(&ref, acc_t, acc);

    FILE *f = tg_dist_is_main() ? fopen(out, "w") : NULL;
    int bad = 0, overlapped_steps = 0;
    double worst_rel = 0;
    for (int s = 0; s < steps && !bad; s++) {
        double batch_sum;
        /* Half the steps reduce with MPI_Iallreduce: for 2 ranks a + b is the same sum. */
        double loss = ddp_step(&n, s % 2 ? plain : ddp, L, &batch_sum);
        overlapped_steps += tg_ddp_overlapped_buckets(s % 2 ? plain : ddp) > 0;
        tg_tensor *xb, *yb;
        if (!tg_loader_next(ref_loader, &xb, &yb)) {
            tg_loader_reset(ref_loader);
            tg_loader_next(ref_loader, &xb, &yb);
        }
        double ref_loss = sharded_step(&ref, xb, yb, world, acc);
        double full_loss = full_step(&full, xb, yb);
        if (f) fprintf(f, "%d %.17g %.17g\n", s + 1, loss, batch_sum);
        if (loss != ref_loss || !same_params(&n, &ref))
            bad = fail("step %d: loss %.17g, one process with the same shards %.17g (the loss and "
                       "every parameter must be identical)", s + 1, loss, ref_loss);
        double rel = fabs(loss - full_loss) / fabs(full_loss);
        if (rel > worst_rel) worst_rel = rel;
        if (rel > 1e-5)
            bad = fail("step %d: loss %.17g, unsharded one-process loss %.17g (tolerance 1e-5)",
                       s + 1, loss, full_loss);
        if (ckpt && s + 1 == save_at && tg_dist_is_main())
            tg_dist_check(tg_checkpoint_save(ckpt, n.model, n.opt, NULL), ckpt);
    }
    if (f) fclose(f);
    if (!bad && steps > 2 && overlapped_steps < steps - 2)
        bad = fail("overlap: a bucket's reduction started during backward in only %d of %d steps",
                   overlapped_steps, steps);
    if (!bad && tg_dist_is_main())
        printf("ok: %d ranks, %d steps, %d buckets: bit-identical to one process with the same "
               "shards; largest relative loss difference to the unsharded batch %.3g; reduction "
               "overlapped backward in %d steps\n", world, steps, tg_ddp_num_buckets(ddp),
               worst_rel, overlapped_steps);
    for (int i = 0; i < ref.ps.n; i++) tg_free(acc_t[i]);
    tg_loader_free(ref_loader);
    free_net(&ref);
    free_net(&full);
    tg_shard_loader_free(L);
    tg_ddp_free(ddp);
    tg_ddp_free(plain);
    free_net(&n);
    tg_dataset_free(&d);
    return bad;
}

/* Batch norm: the ranks start from different weights and running statistics, which the start-up
 * broadcast must make rank 0's; each step's forward updates every rank's statistics from its own
 * slice, and the broadcast before the next forward makes them rank 0's again. Against one
 * process running the same shards with shard 0's statistics: loss and parameters bit for bit,
 * rank 0's buffers bit for bit after its own update, every rank's after the broadcast. */
static int batchnorm(int steps)
{
    tg_dataset d = make_data();
    int world = tg_dist_world_size(), rank = tg_dist_rank();
    net n = make_net(7 + (uint64_t)rank, true), ref = make_net(7, true);
    for (int i = 0; i < n.buffers.n && rank > 0; i++) {
        tg_tensor *b = n.buffers.tensors[i];
        tg_fill_(b, b->dtype == TG_I64 ? 5.0 * rank : 0.25 * rank);
    }
    tg_dist_broadcast_module(n.model);
    tg_ddp *ddp = tg_ddp_new(&n.ps, &(tg_ddp_opts){.deterministic = true, .bucket_bytes = 1024});
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_shard_loader *L = tg_shard_loader_new(d.x, d.y, BATCH, true, false, &rng);
    tg_rng_seed(&rng, 3);
    tg_loader *ref_loader = tg_loader_new(d.x, d.y, BATCH, true, false, &rng);
    tg_tensor *acc_t[8];
    float *acc[8];
    make_accumulators(&ref, acc_t, acc);
    int bad = same_buffers(&n, &ref) ? 0 : fail("the start-up broadcast left this rank's buffers");
    int own_statistics = 0;
    for (int s = 0; s < steps && !bad; s++) {
        double batch_sum;
        double loss = ddp_step(&n, ddp, L, &batch_sum);
        tg_tensor *xb, *yb;
        if (!tg_loader_next(ref_loader, &xb, &yb)) {
            tg_loader_reset(ref_loader);
            tg_loader_next(ref_loader, &xb, &yb);
        }
        double ref_loss = sharded_step(&ref, xb, yb, world, acc);
        tg_tape_reset();
        if (loss != ref_loss || !same_params(&n, &ref))
            bad = fail("step %d: loss %.17g, one process with the same shards %.17g (the loss and "
                       "every parameter must be identical)", s + 1, loss, ref_loss);
        bool same = same_buffers(&n, &ref);
        own_statistics += !same;
        if (rank == 0 && !same)
            bad = fail("step %d: rank 0's running statistics differ from those of shard 0", s + 1);
        tg_dist_broadcast_buffers(&n.buffers);
        if (!same_buffers(&n, &ref))
            bad = fail("step %d: after tg_dist_broadcast_buffers this rank's buffers are not rank "
                       "0's", s + 1);
    }
    int64_t tracked = *(const int64_t *)tg_module_buffer(n.model, "1.num_batches_tracked")->data;
    if (!bad && tracked != steps)
        bad = fail("num_batches_tracked is %lld after %d steps", (long long)tracked, steps);
    /* Rank 1's own forwards moved its statistics away from rank 0's: the check above saw it. */
    if (!bad && rank > 0 && own_statistics != steps)
        bad = fail("rank %d's own statistics equalled rank 0's in %d of %d steps: this test "
                   "shows nothing", rank, steps - own_statistics, steps);
    if (!bad && tg_dist_is_main())
        printf("ok: batch norm, %d ranks, %d steps: parameters and rank 0's running statistics "
               "bit-identical to one process with the same shards, every rank's buffers rank 0's "
               "after the broadcast\n", world, steps);
    for (int i = 0; i < ref.ps.n; i++) tg_free(acc_t[i]);
    tg_loader_free(ref_loader);
    tg_shard_loader_free(L);
    tg_ddp_free(ddp);
    free_net(&ref);
    free_net(&n);
    tg_dataset_free(&d);
    return bad;
}

static int resume(int steps, const char *ckpt, const char *curve_path)
{
    tg_dataset d = make_data();
    net n = make_net(99, false);
    tg_dist_check(tg_checkpoint_load(ckpt, n.model, n.opt, NULL), ckpt);
    tg_dist_broadcast_module(n.model);
    tg_ddp *ddp = tg_ddp_new(&n.ps, &(tg_ddp_opts){.deterministic = true});
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_shard_loader *L = tg_shard_loader_new(d.x, d.y, BATCH, true, false, &rng);
    int64_t start = tg_optimizer_steps(n.opt);
    tg_shard_loader_seek(L, start);
    FILE *f = fopen(curve_path, "r");
    if (!f) return fail("%s: cannot read it", curve_path);
    int bad = 0, compared = 0;
    double worst = 0;
    for (int64_t s = start; s < steps && !bad; s++) {
        double batch_sum, want_loss = 0, want_sum = 0;
        int k = 0;
        double loss = ddp_step(&n, ddp, L, &batch_sum);
        while (k != s + 1 && fscanf(f, "%d %lf %lf", &k, &want_loss, &want_sum) == 3) {}
        if (k != s + 1) {
            bad = fail("%s: no step %lld in the curve", curve_path, (long long)s + 1);
            break;
        }
        if (batch_sum != want_sum)
            bad = fail("step %lld: the resumed run drew another global batch (checksum %.17g, "
                       "want %.17g)", (long long)s + 1, batch_sum, want_sum);
        double rel = fabs(loss - want_loss) / fabs(want_loss);
        if (rel > worst) worst = rel;
        if (rel > 1e-5)
            bad = fail("step %lld: loss %.17g, uninterrupted run %.17g (tolerance 1e-5)",
                       (long long)s + 1, loss, want_loss);
        compared++;
    }
    fclose(f);
    if (!bad && compared == 0) bad = fail("%s: no step left to compare", ckpt);
    if (!bad && tg_dist_is_main())
        printf("ok: resumed at step %lld with %d ranks: %d steps on the same global batches, "
               "largest relative loss difference %.3g\n", (long long)start,
               tg_dist_world_size(), compared, worst);
    tg_shard_loader_free(L);
    tg_ddp_free(ddp);
    free_net(&n);
    tg_dataset_free(&d);
    return bad;
}

static int fault(const char *kind)
{
    tg_dataset d = make_data();
    net n = make_net(7, false);
    tg_dist_broadcast_module(n.model);
    tg_ddp *ddp = tg_ddp_new(&n.ps, NULL);
    tg_shard_loader *L = tg_shard_loader_new(d.x, d.y, BATCH, true, false, NULL);
    for (int s = 0; s < 1000; s++) {
        if (s == 3 && tg_dist_rank() == 1) {
            if (!strcmp(kind, "fault-input")) {
                tg_tensor *x;
                tg_dist_check(tg_npy_load("/nonexistent/shard-1.npy", &x), "loading my shard");
            } else if (!strcmp(kind, "fault-hang")) {
                sleep(60);
            } else if (!strcmp(kind, "fault-hang-late")) {
                tg__dist_set_late_stall(60);
            } else {
                raise(SIGKILL);
            }
        }
        double batch_sum;
        ddp_step(&n, ddp, L, &batch_sum);
    }
    fprintf(stderr, "ddp_check: %s: training went on after rank 1 failed\n", kind);
    return 1;
}

/* Lazy zero_grad: u has a gradient buffer (NaN-filled) left pending by tg_zero_grad, and no
 * record uses it; its reduced gradient must be zeros, in a bucket of its own (reduced in place,
 * bucket_bytes 1) and packed with the model's parameters (the default bucket size). */
static int unreached(void)
{
    tg_dataset d = make_data();
    net n = make_net(7, false);
    tg_tensor *u = tg_set_requires_grad(tg_zeros(TG_F32, TG_SHAPE(5)), true);
    tg_backward(tg_sum(u)); /* gives u its buffer */
    tg_tape_reset();
    tg_param_list ps = {0};
    for (int i = 0; i < n.ps.n; i++) tg_param_list_add(&ps, n.ps.names[i], n.ps.tensors[i]);
    tg_param_list_add(&ps, "unused", u);
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_shard_loader *L = tg_shard_loader_new(d.x, d.y, BATCH, true, false, &rng);
    int bad = 0;
    for (int k = 0; k < 2 && !bad; k++) {
        tg_ddp *ddp = tg_ddp_new(&ps, &(tg_ddp_opts){.bucket_bytes = k == 0 ? 1 : 0});
        for (int s = 0; s < 3 && !bad; s++) {
            tg_fill_(tg_get_grad(u), NAN);
            tg_zero_grad(u);
            double batch_sum;
            ddp_step(&n, ddp, L, &batch_sum);
            const float *g = tg_get_grad(u)->data;
            for (int64_t i = 0; i < u->numel && !bad; i++)
                if (g[i] != 0)
                    bad = fail("unreached: bucket_bytes %d, step %d: the unused parameter's "
                               "gradient[%lld] is %g, not 0", k == 0 ? 1 : 0, s, (long long)i,
                               (double)g[i]);
        }
        tg_ddp_free(ddp);
    }
    if (!bad && tg_dist_is_main())
        printf("ok: unreached parameter reduced as zeros, %d ranks\n", tg_dist_world_size());
    tg_shard_loader_free(L);
    tg_param_list_free(&ps);
    tg_free(u);
    free_net(&n);
    tg_dataset_free(&d);
    return bad;
}

int main(int argc, char **argv)
{
    tg_dist_check(tg_dist_init(&argc, &argv), "tg_dist_init");
    int rc = 2;
    if (argc >= 4 && !strcmp(argv[1], "curve"))
        rc = curve(atoi(argv[2]), argv[3], argc >= 6 ? atoi(argv[4]) : 0, argc >= 6 ? argv[5] : NULL);
    else if (argc == 5 && !strcmp(argv[1], "resume"))
        rc = resume(atoi(argv[2]), argv[3], argv[4]);
    else if (argc == 3 && !strcmp(argv[1], "batchnorm"))
        rc = batchnorm(atoi(argv[2]));
    else if (argc == 2 && !strcmp(argv[1], "unreached"))
        rc = unreached();
    else if (argc == 2 && !strncmp(argv[1], "fault-", 6))
        rc = fault(argv[1]);
    else
        fprintf(stderr, "usage: see the comment at the top of dist/tests/ddp_check.c\n");
    tg_dist_finalize();
    return rc;
}
