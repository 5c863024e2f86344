/* Gradient averaging in buckets, started from the tape's backward hook (overlap, like DDP).
 *
 * A bucket is a run of parameters of one dtype, packed into one contiguous buffer (scaled by the
 * rank's weight while packing), reduced with one collective and unpacked into the gradients.
 * Buckets are launched strictly in bucket order on every rank: MPI requires collectives on a
 * communicator in the same order everywhere, and every rank sweeps the same graph.
 *
 * Deterministic order: the buckets are gathered to rank 0 (one communicator), added there in rank
 * order, then broadcast (a second communicator, so gathers and broadcasts of different buckets
 * can be in flight at once without their order depending on timing). */
#include <string.h>
#include <unistd.h>
#include "dist/internal.h"

enum { PENDING, REDUCING, BROADCASTING, DONE };

typedef struct {
    int first, count;            /* parameters [first, first + count) of the bucket order */
    tg_dtype dtype;
    int64_t elems;
    size_t offset;               /* bytes into d->buf (and into each rank's slot of d->gathered) */
    unsigned char *data;         /* where it is reduced: its one gradient, or d->buf + offset */
    int ready, state;
    MPI_Request req;
} bucket;

struct tg_ddp {
    int n;
    tg_tensor **params;          /* in bucket order: the registration order reversed */
    const char **names;
    int *bucket_of, *uses, *seen;
    bool learned, deterministic, no_overlap, armed;
    bool pending;                /* buf holds accumulated micro-batch gradients (tg_ddp_accumulate) */
    bucket *buckets;
    int n_buckets, next_launch, overlapped;
    double wait_seconds;         /* inside the last tg_ddp_finish */
    double weight;
    unsigned char *buf, *gathered;
    size_t buf_bytes;
    MPI_Comm reduce_comm, bcast_comm, late_comm;
};

static void make_buckets(tg_ddp *d, size_t cap)
{
    d->buckets = tg__calloc(sizeof(bucket) * (size_t)(d->n ? d->n : 1));
    size_t offset = 0, bytes = 0;
    for (int i = 0; i < d->n; i++) {
        tg_tensor *p = d->params[i];
        bucket *b = d->n_buckets ? &d->buckets[d->n_buckets - 1] : NULL;
        bool opens = !b || b->dtype != p->dtype || (bytes > 0 && bytes + tg_nbytes(p) > cap);
        if (opens) {
            b = &d->buckets[d->n_buckets++];
            *b = (bucket){.first = i, .dtype = p->dtype, .offset = offset,
                          .req = MPI_REQUEST_NULL};
            bytes = 0;
        }
        b->count++;
        b->elems += p->numel;
        bytes += tg_nbytes(p);
        offset += tg_nbytes(p);
        d->bucket_of[i] = d->n_buckets - 1;
    }
    d->buf_bytes = offset;
}

tg_ddp *tg_ddp_new(const tg_param_list *params, const tg_ddp_opts *opts)
{
    tg__dist_require_init("tg_ddp_new");
    tg_ddp_opts o = opts ? *opts : (tg_ddp_opts){0};
    tg_ddp *d = tg__calloc(sizeof *d);
    d->n = params->n;
    d->deterministic = o.deterministic;
    d->no_overlap = o.no_overlap;
    size_t n = (size_t)(d->n ? d->n : 1);
    d->params = tg__malloc(n * sizeof *d->params);
    d->names = tg__malloc(n * sizeof *d->names);
    d->bucket_of = tg__calloc(n * sizeof(int));
    d->uses = tg__calloc(n * sizeof(int));
    d->seen = tg__calloc(n * sizeof(int));
    for (int i = 0; i < d->n; i++) {
        tg_tensor *p = params->tensors[d->n - 1 - i];
        tg_check_float(p, "tg_ddp_new");
        d->params[i] = p;
        d->names[i] = params->names ? params->names[d->n - 1 - i] : "?";
    }
    make_buckets(d, o.bucket_bytes ? o.bucket_bytes : (size_t)1 << 20);
    d->buf = tg__malloc(d->buf_bytes ? d->buf_bytes : 1);
    if (d->deterministic && tg_dist_is_main())
        d->gathered = tg__malloc((d->buf_bytes ? d->buf_bytes : 1) * (size_t)tg_dist_world_size());
    MPI_Comm_dup(MPI_COMM_WORLD, &d->reduce_comm);
    MPI_Comm_dup(MPI_COMM_WORLD, &d->bcast_comm);
    MPI_Comm_dup(MPI_COMM_WORLD, &d->late_comm);
    return d;
}

int tg_ddp_num_buckets(const tg_ddp *d) { return d->n_buckets; }
int tg_ddp_overlapped_buckets(const tg_ddp *d) { return d->overlapped; }
double tg_ddp_wait_seconds(const tg_ddp *d) { return d->wait_seconds; }

static int find_param(const tg_ddp *d, const tg_tensor *t)
{
    if (!t->persistent) return -1;
    for (int i = 0; i < d->n; i++)
        if (d->params[i] == t) return i;
    return -1;
}

/* dst = weight · grad, or acc + weight · grad on top of accumulated micro-batches (acc): the
 * same products and the same order of additions as one process adding the shards' weighted
 * gradients one after the other. dst may be acc (d->buf) or grad (reduced in place). */
#define PACK_KERNEL(T, S)                                                                   \
    static void pack_##S(T *dst, const T *acc, const T *grad, int64_t n, double weight)     \
    {                                                                                       \
        if (!grad) {                                                                        \
            if (!acc) memset(dst, 0, sizeof(T) * (size_t)n);                                \
            else if (acc != dst) memcpy(dst, acc, sizeof(T) * (size_t)n);                   \
            return;                                                                         \
        }                                                                                   \
        T w = (T)weight;                                                                    \
        if (acc) for (int64_t i = 0; i < n; i++) dst[i] = acc[i] + grad[i] * w;             \
        else for (int64_t i = 0; i < n; i++) dst[i] = grad[i] * w;                          \
    }
TG_STAMP(PACK_KERNEL)

#define ADD_KERNEL(T, S)                                                                    \
    static void add_##S(T *acc, const T *x, int64_t n)                                     \
    {                                                                                       \
        for (int64_t i = 0; i < n; i++) acc[i] += x[i];                                     \
    }
TG_STAMP(ADD_KERNEL)

/* Packs parameters [first, first + count) into dst (contiguous), on top of what d->buf holds
 * from tg_ddp_accumulate when d->pending. */
static void pack_params(tg_ddp *d, int first, int count, unsigned char *dst, size_t offset,
                        double weight)
{
    for (int i = first; i < first + count; i++) {
        tg_tensor *p = d->params[i];
        tg_tensor *grad = tg_get_grad(p); /* zeros where the backward did not reach p */
        const void *g = grad ? grad->data : NULL;
        const void *acc = d->pending ? d->buf + offset : NULL;
        if (p->dtype == TG_F64) pack_f64((double *)dst, acc, g, p->numel, weight);
        else pack_f32((float *)dst, acc, g, p->numel, weight);
        dst += tg_nbytes(p);
        offset += tg_nbytes(p);
    }
}

/* A bucket of one parameter that has a gradient is scaled and reduced in that gradient: no copy
 * out and back (for the GEMM MLP, 7 of its 7.45 MB). */
static void pack_bucket(tg_ddp *d, bucket *b)
{
    tg_tensor *p = d->params[b->first];
    tg_tensor *grad = tg_get_grad(p);
    b->data = b->count == 1 && grad ? (unsigned char *)grad->data : d->buf + b->offset;
    pack_params(d, b->first, b->count, b->data, b->offset, d->weight);
}

static void launch(tg_ddp *d, bucket *b)
{
    pack_bucket(d, b);
    MPI_Datatype type = tg__dist_mpi_type(b->dtype);
    if (d->deterministic) {
        void *slots = d->gathered ? d->gathered + b->offset * (size_t)tg_dist_world_size() : NULL;
        MPI_Igather(b->data, (int)b->elems, type, slots, (int)b->elems, type, 0,
                    d->reduce_comm, &b->req);
    } else {
        MPI_Iallreduce(MPI_IN_PLACE, b->data, (int)b->elems, type, MPI_SUM, d->reduce_comm,
                       &b->req);
    }
    b->state = REDUCING;
}

/* Rank 0's sum of the gathered copies of bucket b, in rank order, into b->data. */
static void add_in_rank_order(tg_ddp *d, bucket *b)
{
    size_t bytes = (size_t)b->elems * tg_dtype_size(b->dtype);
    unsigned char *slots = d->gathered + b->offset * (size_t)tg_dist_world_size();
    unsigned char *out = b->data;
    memcpy(out, slots, bytes);
    for (int r = 1; r < tg_dist_world_size(); r++) {
        if (b->dtype == TG_F64) add_f64((double *)out, (const double *)(slots + r * bytes), b->elems);
        else add_f32((float *)out, (const float *)(slots + r * bytes), b->elems);
    }
}

/* The buckets the backward did not launch, reduced now with blocking collectives: nothing is
 * left to overlap them with, and Open MPI's blocking collectives (coll/tuned) are about twice as
 * fast as its non-blocking ones (coll/libnbc; docs/distributed.md). They run on a communicator
 * of their own, so they do not wait behind the non-blocking ones still in flight. A barrier with
 * the deadline comes first: past it every rank is here, so the blocking calls cannot hang on a
 * rank that stopped answering. */
static double late_stall_seconds;
void tg__dist_set_late_stall(double seconds) { late_stall_seconds = seconds; }

static void reduce_late(tg_ddp *d)
{
    if (d->next_launch == d->n_buckets) return;
    MPI_Request r;
    MPI_Ibarrier(d->late_comm, &r);
    tg__dist_wait(&r, 1, "tg_ddp_finish (ranks reaching the gradient reduction)");
    if (late_stall_seconds > 0) sleep((unsigned)late_stall_seconds);
    tg__dist_blocking_begin("tg_ddp_finish (blocking gradient reduction)");
    for (; d->next_launch < d->n_buckets; d->next_launch++) {
        bucket *b = &d->buckets[d->next_launch];
        pack_bucket(d, b);
        MPI_Datatype type = tg__dist_mpi_type(b->dtype);
        if (d->deterministic) {
            void *slots = d->gathered ? d->gathered + b->offset * (size_t)tg_dist_world_size()
                                      : NULL;
            MPI_Gather(b->data, (int)b->elems, type, slots, (int)b->elems, type, 0, d->late_comm);
            if (d->gathered) add_in_rank_order(d, b);
            MPI_Bcast(b->data, (int)b->elems, type, 0, d->late_comm);
        } else {
            MPI_Allreduce(MPI_IN_PLACE, b->data, (int)b->elems, type, MPI_SUM, d->late_comm);
        }
        b->state = DONE;
    }
    tg__dist_blocking_end();
}

/* Rank 0 adds the gathered copies in rank order into the bucket, then every rank broadcasts. */
static void start_broadcast(tg_ddp *d, bucket *b)
{
    if (d->gathered) add_in_rank_order(d, b);
    MPI_Ibcast(b->data, (int)b->elems, tg__dist_mpi_type(b->dtype), 0, d->bcast_comm, &b->req);
    b->state = BROADCASTING;
}

/* Lets MPI move data (Open MPI progresses non-blocking collectives only inside MPI calls) and
 * starts the broadcasts, in bucket order, of the buckets whose gather has finished. */
static void progress(tg_ddp *d)
{
    bool in_order = true;
    for (int k = 0; k < d->next_launch; k++) {
        bucket *b = &d->buckets[k];
        if (b->state == DONE) continue;
        int flag = 0;
        MPI_Test(&b->req, &flag, MPI_STATUS_IGNORE);
        if (!flag) {
            if (b->state == REDUCING) in_order = false;
            continue;
        }
        if (b->state == REDUCING && d->deterministic) {
            if (in_order) start_broadcast(d, b); /* else it waits for an earlier bucket */
        } else {
            b->state = DONE;
        }
    }
}

static void launch_ready(tg_ddp *d)
{
    while (d->next_launch < d->n_buckets &&
           d->buckets[d->next_launch].ready == d->buckets[d->next_launch].count) {
        launch(d, &d->buckets[d->next_launch++]);
    }
}

static void on_record(const tg_node *node, void *user_data)
{
    tg_ddp *d = user_data;
    bool overlap = d->learned && !d->no_overlap;
    for (int i = 0; i < node->n_in; i++) {
        int k = find_param(d, node->in[i]);
        if (k < 0) continue;
        d->seen[k]++;
        if (!overlap) continue;
        if (d->seen[k] > d->uses[k])
            tg_fail("tg_ddp: parameter %s is used by more records in this step than in the "
                     "first (%d > %d), so its gradient was reduced before it was complete; a "
                     "graph that changes between steps needs tg_ddp_opts.no_overlap",
                     d->names[k], d->seen[k], d->uses[k]);
        if (d->seen[k] == d->uses[k]) d->buckets[d->bucket_of[k]].ready++;
    }
    /* After the sweep's last record no backward is left to hide a reduction behind: its buckets
     * go to reduce_late. */
    if (!overlap || node->index == 0) return;
    launch_ready(d);
    progress(d);
}

void tg_ddp_begin(tg_ddp *d, double weight)
{
    if (d->armed) tg_fail("tg_ddp_begin: called twice without tg_ddp_finish");
    if (!(weight >= 0 && weight <= 1))
        tg_fail("tg_ddp_begin: weight %g is not in [0, 1] (this rank's examples / the global "
                 "batch's)", weight);
    d->weight = weight;
    d->next_launch = 0;
    d->overlapped = 0;
    memset(d->seen, 0, sizeof(int) * (size_t)d->n);
    for (int k = 0; k < d->n_buckets; k++) {
        d->buckets[k].ready = 0;
        d->buckets[k].state = PENDING;
        /* A parameter no record uses is ready from the start. */
        for (int i = d->buckets[k].first; i < d->buckets[k].first + d->buckets[k].count; i++)
            if (d->learned && d->uses[i] == 0) d->buckets[k].ready++;
    }
    d->armed = true;
    tg_set_backward_hook(on_record, d);
}

/* The buckets reduced in d->buf back into the gradients (the others were reduced in place). */
static void unpack(tg_ddp *d)
{
    for (int k = 0; k < d->n_buckets; k++) {
        bucket *b = &d->buckets[k];
        if (b->data != d->buf + b->offset) continue;
        const unsigned char *at = b->data;
        for (int i = b->first; i < b->first + b->count; i++) {
            tg_tensor *p = d->params[i];
            if (!tg_get_grad(p)) p->grad = tg_zeros(p->dtype, p->ndim, p->shape);
            memcpy(p->grad->data, at, tg_nbytes(p));
            at += tg_nbytes(p);
        }
    }
}

void tg_ddp_finish(tg_ddp *d)
{
    if (!d->armed) tg_fail("tg_ddp_finish: call tg_ddp_begin before the backward");
    double t0 = MPI_Wtime();
    tg_set_backward_hook(NULL, NULL);
    d->armed = false;
    int during_backward = d->next_launch;
    reduce_late(d);
    for (int k = 0; k < d->n_buckets; k++) {
        bucket *b = &d->buckets[k];
        if (b->state == REDUCING) {
            tg__dist_wait(&b->req, 1, "tg_ddp_finish (gradient reduction)");
            if (d->deterministic) start_broadcast(d, b);
            else b->state = DONE;
        }
    }
    for (int k = 0; k < d->n_buckets; k++) {
        bucket *b = &d->buckets[k];
        if (b->state == BROADCASTING) tg__dist_wait(&b->req, 1, "tg_ddp_finish (broadcast)");
        b->state = DONE;
    }
    d->overlapped = during_backward;
    d->pending = false;
    unpack(d);
    d->wait_seconds = MPI_Wtime() - t0;
    if (!d->learned) {
        memcpy(d->uses, d->seen, sizeof(int) * (size_t)d->n);
        d->learned = true;
    }
}

void tg_ddp_accumulate(tg_ddp *d, double weight)
{
    if (d->armed) tg_fail("tg_ddp_accumulate: called between tg_ddp_begin and tg_ddp_finish");
    if (!(weight >= 0 && weight <= 1))
        tg_fail("tg_ddp_accumulate: weight %g is not in [0, 1] (this micro-batch's examples / "
                 "the global batch's)", weight);
    pack_params(d, 0, d->n, d->buf, 0, weight);
    d->pending = true;
}

void tg_ddp_backward(tg_ddp *d, tg_tensor *loss, double weight)
{
    tg_ddp_begin(d, weight);
    if (loss) tg_backward(loss);
    tg_ddp_finish(d);
}

void tg_ddp_free(tg_ddp *d)
{
    if (!d) return;
    if (d->armed) tg_set_backward_hook(NULL, NULL);
    MPI_Comm_free(&d->reduce_comm);
    MPI_Comm_free(&d->bcast_comm);
    MPI_Comm_free(&d->late_comm);
    tg__free(d->params);
    tg__free(d->names);
    tg__free(d->bucket_of);
    tg__free(d->uses);
    tg__free(d->seen);
    tg__free(d->buckets);
    tg__free(d->buf);
    tg__free(d->gathered);
    tg__free(d);
}
