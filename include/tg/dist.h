/* tapegrad dist: data-parallel training over MPI (like PyTorch's DistributedDataParallel).
 *
 * Optional: include/tapegrad.h does not include this header, and its code lives in a separate
 * library, libtapegrad_dist.a, built only where MPI is installed; installed, a program links it
 * with `pkg-config --cflags --libs tapegrad-dist` (docs/install.md). The header needs no <mpi.h>.
 *
 * Every process holds the whole model and trains on its slice of each global batch; gradients
 * are averaged across processes before the optimizer step, so every process applies the same
 * update. One step:
 *
 *     tg_dist_init(&argc, &argv);
 *     tg_dist_broadcast_module(model);           // rank 0's initial weights and buffers
 *     tg_param_list buffers;
 *     tg_module_buffers(model, &buffers);        // batch norm's running statistics, if any
 *     tg_ddp *ddp = tg_ddp_new(&params, NULL);
 *     tg_shard_loader *L = tg_shard_loader_new(x, y, 256, true, false, &rng);  // 256 global
 *     while (tg_shard_loader_next(L, &xb, &yb)) {
 *         tg_dist_broadcast_buffers(&buffers);   // rank 0's running statistics (batch norm)
 *         tg_optimizer_zero_grad(opt);
 *         tg_tensor *loss = tg_cross_entropy(tg_module_forward(model, xb), yb, TG_REDUCE_MEAN);
 *         tg_ddp_backward(ddp, loss, tg_shard_loader_weight(L));  // backward + averaging
 *         tg_optimizer_step(opt);
 *         tg_tape_reset();
 *     }
 *
 * Failures: a programming error on one rank aborts that process, and mpirun then ends the
 * others. An input error that only some ranks see goes through tg_dist_check (MPI_Abort of the
 * whole job, with the message of the rank that saw it). Every wait of this module has a deadline
 * (tg_dist_set_timeout, TG_DIST_TIMEOUT seconds in the environment, default 300): a peer that
 * stops answering ends the job with a message instead of hanging it. */
#ifndef TG_DIST_H
#define TG_DIST_H

#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the process group (MPI_COMM_WORLD) ---------------------------------------------------- */
/* MPI_Init (argc/argv may be NULL); idempotent. TG_ERR_VALUE when TG_DIST_TIMEOUT is malformed. */
tg_status tg_dist_init(int *argc, char ***argv);
void tg_dist_finalize(void);
int tg_dist_rank(void);
int tg_dist_world_size(void);
bool tg_dist_is_main(void);          /* rank 0: the one that logs, plots and saves */
/* Seconds any wait may last before the job is ended as hung; <= 0 means wait forever. */
void tg_dist_set_timeout(double seconds);
double tg_dist_timeout(void);
/* An input error seen by this rank: prints "rank R: what: <tg_status_message()>" and ends the
 * whole job with MPI_Abort (exit code 2). Does nothing when status is TG_OK. */
void tg_dist_check(tg_status status, const char *what);
void tg_dist_barrier(void);          /* with the deadline */

/* ---- collectives ------------------------------------------------------------------------ */
/* Copies root's values of the tensors into every rank's (same shapes and dtypes everywhere). */
void tg_dist_broadcast(tg_tensor *const *tensors, int n, int root);
/* The module's whole state from rank 0: its parameters and its buffers (batch norm's running
 * statistics, num_batches_tracked), in tg_module_state order, shapes and dtypes checked. */
void tg_dist_broadcast_module(tg_module *m);
/* Rank 0's values of buffers (a tg_module_buffers list, kept from one step to the next) to
 * every rank, data only: PyTorch DDP's broadcast_buffers. Every rank's forward updates its own
 * running statistics from its own slice; calling this before each training forward and before
 * evaluating makes every rank use rank 0's, the ones rank 0's checkpoint saves. Nothing to do
 * (an empty list) for a model without buffers. */
void tg_dist_broadcast_buffers(const tg_param_list *buffers);
/* values[i] = the sum over ranks of values[i], added in rank order (the same bits on every rank
 * and in every run): loss sums, correct counts, example counts. */
void tg_dist_sum(double *values, int n);

/* ---- gradient averaging ----------------------------------------------------------------- */
typedef struct {
    size_t bucket_bytes;   /* gradients are reduced in buckets of about this size; 0: 1 MiB */
    bool deterministic;    /* reduce in rank order (gather to rank 0, add, broadcast), see below */
    bool no_overlap;       /* reduce only after backward (for measuring what overlap buys) */
} tg_ddp_opts;

/* Gradient averaging for the parameters of params (borrowed; every rank passes the same list).
 * Parameters are put in buckets in reverse order (the last layer's gradients are complete first).
 * From the second step on, a bucket's reduction starts during tg_backward as soon as the sweep
 * has passed the last use of each of its parameters (the first step learns how many records use
 * each parameter; a later step with a different graph fails naming the parameter).
 *
 * The average is weighted: each rank passes weight = its examples / the global batch's examples
 * (tg_shard_loader_weight), so an uneven last batch gives the global mean gradient. Reduction
 * order: by default MPI_Iallreduce (Open MPI picks the algorithm; results may differ in the last
 * bits between world sizes). With deterministic, the weighted gradients are added in rank order
 * r0 + r1 + ... on rank 0 and broadcast, so N processes give bit for bit what one process gives
 * when it accumulates the same N shards' backward (of weight · loss) in order. */
typedef struct tg_ddp tg_ddp;
tg_ddp *tg_ddp_new(const tg_param_list *params, const tg_ddp_opts *opts /* NULL: defaults */);
/* Before tg_backward: arms the backward hook; weight is this rank's share of the global batch. */
void tg_ddp_begin(tg_ddp *d, double weight);
/* After tg_backward: waits for every bucket; each gradient is then the weighted sum over ranks. */
void tg_ddp_finish(tg_ddp *d);
/* begin + tg_backward(loss) + finish. loss may be NULL: this rank has no examples in this batch
 * (weight 0), and it still takes part in the reduction. */
void tg_ddp_backward(tg_ddp *d, tg_tensor *loss, double weight);
/* Gradient accumulation (micro-batches; PyTorch's no_sync): after a plain tg_backward whose
 * gradients this rank adds up before reducing, adds weight × each gradient to the pending sum,
 * without communicating (zero the gradients before the next backward). The next tg_ddp_finish
 * reduces pending sum + its own weighted gradients. So one process with M micro-batches of the
 * global batch gives bit for bit what M processes with one slice each give in the deterministic
 * order (the same products, added in the same order). */
void tg_ddp_accumulate(tg_ddp *d, double weight);
int tg_ddp_num_buckets(const tg_ddp *d);
/* Buckets whose reduction started inside the last backward (before tg_ddp_finish). */
int tg_ddp_overlapped_buckets(const tg_ddp *d);
/* Seconds the last tg_ddp_finish took: the communication the backward did not hide (and the
 * wait for slower ranks), with the packing of late buckets and the unpacking. */
double tg_ddp_wait_seconds(const tg_ddp *d);
void tg_ddp_free(tg_ddp *d);                   /* NULL is fine */

/* ---- sharded loader --------------------------------------------------------------------- */
/* Every rank draws the same seeded global order (the same rng seed on every rank) and the same
 * global batches of global_batch rows; rank r of N takes rows [r·b/N, (r+1)·b/N) of each global
 * batch of b rows, so the slices differ by at most one row, also in the short last batch. A
 * rank whose slice is empty (b < N) gets true with *xb = *yb = NULL and weight 0. Tensors are
 * owned by the loader, valid until the next call. */
typedef struct tg_shard_loader tg_shard_loader;
tg_shard_loader *tg_shard_loader_new(const tg_tensor *x, const tg_tensor *y, int64_t global_batch,
                                     bool shuffle, bool drop_last, tg_rng *rng);
void tg_shard_loader_reset(tg_shard_loader *L);            /* next epoch */
bool tg_shard_loader_next(tg_shard_loader *L, tg_tensor **xb, tg_tensor **yb);
int64_t tg_shard_loader_num_batches(const tg_shard_loader *L);  /* global batches per epoch */
int64_t tg_shard_loader_global_rows(const tg_shard_loader *L);  /* in the batch last returned */
int64_t tg_shard_loader_local_rows(const tg_shard_loader *L);
double tg_shard_loader_weight(const tg_shard_loader *L);   /* local rows / global rows */
/* Positions the loader as if `step` global batches had been drawn since creation (epochs
 * included): resuming from a checkpoint (step = tg_optimizer_steps) with any number of ranks. */
void tg_shard_loader_seek(tg_shard_loader *L, int64_t step);
void tg_shard_loader_free(tg_shard_loader *L);             /* NULL is fine */

#ifdef __cplusplus
}
#endif
#endif
