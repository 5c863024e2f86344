/* Data-parallel MLP on Fashion-MNIST over MPI (include/tg/dist.h, docs/distributed.md):
 *
 *     mpirun -np 2 build/examples/ddp_mlp --model gemm --epochs 1
 *
 * Two models: "gemm", the GEMM-bound 784-1024-1024-10 ReLU MLP at a global batch of 256, and
 * "small", the Question 2 MLP (784-100-10, ReLU, dropout 0.3) at a global batch of 16. Every
 * process trains on its slice of each global batch; gradients are averaged in buckets while the
 * backward runs. --batch_size is the GLOBAL batch (split across the processes, like one process
 * training on it); --per_process_batch B sets the global batch to B × processes instead. Only
 * rank 0 prints and writes the checkpoint. --steps N stops after N steps and prints the median
 * step time (what bench/bench_dist.sh reads). */
#include <tapegrad.h>
#include <tg/dist.h>
#include "common.h"

static const char usage[] =
    "[--model gemm] [--epochs 1] [--batch_size 256] [--per_process_batch 128] [--lr 0.05] "
    "[--steps 0] [--seed 42] [--deterministic] [--no_overlap] [--bucket_kb 1024] "
    "[--checkpoint ck.safetensors] [--resume ck.safetensors] [--data dir] [--fast]\n"
    "  --model gemm|small: 784-1024-1024-10 (batch 256) or 784-100-10 with dropout (batch 16)\n"
    "  --batch_size: the global batch, split across processes; --per_process_batch: per process";

typedef struct {
    double ms[4096];
    int n;
} step_times;     /* milliseconds of the timed steps */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(step_times *t)
{
    if (!t->n) return 0;
    qsort(t->ms, (size_t)t->n, sizeof(double), cmp_double);
    return t->ms[t->n / 2];
}

/* Accuracy over d, every rank counting its slice of the rows: the counts are summed. */
static double dist_accuracy(tg_module *model, const tg_dataset *d)
{
    int64_t n = tg_dataset_size(d), world = tg_dist_world_size(), r = tg_dist_rank();
    int64_t lo = r * n / world, hi = (r + 1) * n / world;
    double counts[2] = {0, (double)(hi - lo)};
    bool was = tg_set_grad_enabled(false);
    tg_module_eval(model);
    for (int64_t at = lo; at < hi; at += 1000) {
        int64_t k = hi - at < 1000 ? hi - at : 1000;
        tg_tensor *x = tg_wrap(TG_F32, TG_SHAPE(k, d->x->shape[1]),
                               (float *)d->x->data + at * d->x->shape[1]);
        tg_tensor *pred = tg_argmax(tg_module_forward(model, x), 1);
        const int32_t *p = pred->data, *y = (const int32_t *)d->y->data + at;
        for (int64_t i = 0; i < k; i++) counts[0] += p[i] == y[i];
        tg_tape_reset();
        tg_free(x);
    }
    tg_module_train(model, true);
    tg_set_grad_enabled(was);
    tg_dist_sum(counts, 2);
    return counts[1] ? counts[0] / counts[1] : 0;
}

int main(int argc, char **argv)
{
    tg_dist_check(tg_dist_init(&argc, &argv), "tg_dist_init");
    ex_check_args(argc, argv, usage);
    const char *kind = ex_str(argc, argv, "--model", "gemm");
    bool gemm = !strcmp(kind, "gemm");
    if (!gemm && strcmp(kind, "small")) {
        if (tg_dist_is_main()) fprintf(stderr, "ddp_mlp: --model must be gemm or small\n");
        tg_dist_finalize();
        return 2;
    }
    int world = tg_dist_world_size();
    int batch = ex_count(argc, argv, "--batch_size", gemm ? 256 : 16);
    if (ex_flag(argc, argv, "--per_process_batch"))
        batch = ex_count(argc, argv, "--per_process_batch", 1) * world;
    int epochs = ex_count(argc, argv, "--epochs", 1);
    int max_steps = (int)ex_num(argc, argv, "--steps", 0);
    double lr = ex_positive(argc, argv, "--lr", gemm ? 0.05 : 0.01);
    uint64_t seed = ex_seed(argc, argv, "--seed");
    tg_blas_prefer(gemm ? TG_BLAS_LARGE_PRODUCTS : TG_BLAS_SMALL_PRODUCTS);

    bool fast = ex_flag(argc, argv, "--fast");
    tg_mnist m = ex_load_mnist(argc, argv, fast, 6000, 2000);
    /* Same weights everywhere (rank 0's, broadcast); dropout masks differ by rank, as in DDP
     * (the generator that initialises also draws the masks). */
    tg_rng drop_rng, data_rng;
    tg_rng_seed(&drop_rng, seed * 7919 + (uint64_t)tg_dist_rank());
    tg_rng_seed(&data_rng, seed + 1);
    tg_module *model = gemm ? tg_feedforward_new(784, 10, 1024, 2, "relu", 0, tg_init_pytorch(),
                                                 &drop_rng)
                            : tg_feedforward_new(784, 10, 100, 1, "relu", 0.3, tg_init_pytorch(),
                                                 &drop_rng);
    tg_dist_broadcast_module(model);
    tg_param_list ps = {0};
    tg_module_parameters(model, &ps);
    tg_optimizer *opt = tg_sgd_new(&ps, (tg_sgd_opts){.lr = lr, .momentum = 0.9});
    tg_ddp_opts dopts = {.deterministic = ex_flag(argc, argv, "--deterministic"),
                         .no_overlap = ex_flag(argc, argv, "--no_overlap"),
                         .bucket_bytes = (size_t)ex_count(argc, argv, "--bucket_kb", 1024) << 10};
    tg_ddp *ddp = tg_ddp_new(&ps, &dopts);
    tg_shard_loader *L = tg_shard_loader_new(m.train.x, m.train.y, batch, true, false, &data_rng);

    const char *resume = ex_str(argc, argv, "--resume", NULL);
    if (resume) {
        tg_dist_check(tg_checkpoint_load(resume, model, opt, NULL), resume);
        tg_shard_loader_seek(L, tg_optimizer_steps(opt));
    }
    int64_t per_epoch = tg_shard_loader_num_batches(L);
    int first_epoch = (int)(tg_optimizer_steps(opt) / per_epoch);
    if (tg_dist_is_main())
        printf("ddp_mlp %s: %d processes, global batch %d (%d per process), %lld steps per epoch, "
               "%d buckets%s%s\n", kind, world, batch, batch / world, (long long)per_epoch,
               tg_ddp_num_buckets(ddp), dopts.deterministic ? ", deterministic" : "",
               dopts.no_overlap ? ", no overlap" : "");

    static step_times times, waits;
    int steps = 0, overlapped = 0;   /* steps whose reduction started inside the backward */
    for (int epoch = first_epoch; epoch < epochs; epoch++) {
        tg_shard_loader_reset(L);
        double sums[2] = {0, 0};  /* Σ weight·loss over the epoch's steps, steps */
        tg_tensor *xb, *yb;
        while (tg_shard_loader_next(L, &xb, &yb)) {
            double t0 = ex_seconds(), w = tg_shard_loader_weight(L);
            tg_optimizer_zero_grad(opt);
            tg_tensor *loss = xb ? tg_cross_entropy(tg_module_forward(model, xb), yb,
                                                    TG_REDUCE_MEAN) : NULL;
            sums[0] += loss ? w * tg_item(loss) : 0;
            sums[1] += 1;
            tg_ddp_backward(ddp, loss, w);
            tg_optimizer_step(opt);
            tg_tape_reset();
            if (++steps > 3 && times.n < 4096) {
                times.ms[times.n++] = 1e3 * (ex_seconds() - t0);
                waits.ms[waits.n++] = 1e3 * tg_ddp_wait_seconds(ddp);
                overlapped += tg_ddp_overlapped_buckets(ddp) > 0;
            }
            if (max_steps && steps >= max_steps) break;
        }
        tg_dist_sum(sums, 1);
        double acc = dist_accuracy(model, &m.val);
        if (tg_dist_is_main())
            printf("epoch %d: train loss %.4f, validation accuracy %.4f\n", epoch + 1,
                   sums[0] / sums[1], acc);
        if (max_steps && steps >= max_steps) break;
    }
    /* The ranks' medians are close: every step ends in the same reduction. */
    double med[2] = {median(&times), median(&waits)};
    tg_dist_sum(med, 2);
    if (tg_dist_is_main())
        printf("median step %.3f ms, of which %.3f ms waiting for gradients after the backward "
               "(means of the ranks' medians, %d steps timed per rank, %d with buckets reduced "
               "during the backward)\n", med[0] / world, med[1] / world, times.n, overlapped);
    double final_acc = dist_accuracy(model, &m.val);
    const char *ckpt = ex_str(argc, argv, "--checkpoint", NULL);
    if (ckpt && tg_dist_is_main()) tg_dist_check(tg_checkpoint_save(ckpt, model, opt, NULL), ckpt);
    tg_dist_barrier();

    tg_shard_loader_free(L);
    tg_ddp_free(ddp);
    tg_optimizer_free(opt);
    tg_param_list_free(&ps);
    tg_module_free(model);
    tg_mnist_free(&m);
    tg_dist_finalize();
    /* Fast mode's verdict: a model that learned (chance is 0.10); a timing run (--steps) stops
     * before it has. */
    if (fast && !max_steps && tg_dist_is_main()) return ex_verdict(final_acc > 0.6, "validation accuracy %.3f", final_acc);
    return 0;
}
