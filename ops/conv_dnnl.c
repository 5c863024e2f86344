/* float32 convolutions through oneDNN's primitives (Debian's libdnnl-dev), for the layers large
 * enough that its JIT kernels beat im2col + BLIS (docs/conv.md, "oneDNN").
 *
 * - A primitive is made once per geometry, direction and thread count (making one takes
 *   milliseconds and allocates) and kept in a fixed table; when it is full, the least recently
 *   used entry that no call is using is destroyed for the new one. A geometry oneDNN refuses
 *   runs im2col (its entry remembers the refusal).
 * - The primitive picks its own (blocked) layouts, tapegrad's tensors are plain NCHW: the inputs
 *   are reordered into, and the result out of, buffers of the step's arena. The result is added
 *   into tapegrad's buffer (a reorder with a sum post-op), as im2col's kernels accumulate.
 * - Scratchpads are user-managed, from the arena too: in steady state a step allocates nothing
 *   through tapegrad. oneDNN works on its memory objects, whose sizes are the exact plain sizes of
 *   tapegrad's buffers, and on the arena buffers sized by its own descriptors.
 * - oneDNN runs on OpenMP (Debian builds it so). libgomp's idle workers spin for milliseconds
 *   after each parallel region unless OMP_WAIT_POLICY=passive, which libgomp reads when the
 *   program starts: on a shared machine that takes cores from other processes. So oneDNN gets
 *   tapegrad's thread count only under that policy, else one thread, which runs inline (no
 *   OpenMP thread at all). The count is set on the calling thread around each call and restored.
 * - An entry runs one call at a time: its memory objects hold the call's pointers. */
#include "ops/conv_dnnl.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autograd/internal.h"
#include "tg/core.h"
#include "tg/op.h"

static atomic_int mode = -1; /* -1: not read from TG_CONV_DNNL yet */
static atomic_llong calls;

void tg__conv_dnnl_set_mode(tg__dnnl_mode m) { atomic_store(&mode, (int)m); }

tg__dnnl_mode tg__conv_dnnl_mode(void)
{
    int m = atomic_load_explicit(&mode, memory_order_relaxed);
    if (m < 0) {
        m = tg__env_switch_on("TG_CONV_DNNL") ? TG_DNNL_AUTO : TG_DNNL_OFF;
        atomic_store(&mode, m);
    }
    return (tg__dnnl_mode)m;
}

int64_t tg__conv_dnnl_calls(void) { return atomic_load(&calls); }

#ifdef TG_HAVE_DNNL
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>

#define MAX_ENTRIES 128

typedef enum { FWD, FWD_BIAS, BWD_DATA, BWD_WEIGHTS } direction;
static const char *const direction_name[] = {"forward", "forward", "input gradient",
                                             "weight gradient"};

/* Where oneDNN measured faster than im2col + BLIS on the layers of bench_conv (the table and
 * the figures: docs/conv.md, "oneDNN, measured"): layers of at least MIN_MACS multiply-adds
 * (N·O·OH·OW·C/groups·kh·kw: LeNet-5's gained nothing, the AlexNet-sized ones did); of those,
 * every input gradient, every forward but a strided one on few input channels (AlexNet's first
 * layer), and the weight gradient only on large output images (on small ones the chunked im2col
 * GEMM of ops/conv.c is faster). */
#define MIN_MACS (1LL << 26)
#define FEW_CHANNELS 8
#define MIN_DW_PIXELS 512

static bool pays(const conv_geom *g, direction dir)
{
    if (tg__conv_dnnl_mode() == TG_DNNL_ALL) return true;
    int64_t Cg = g->C / g->groups;
    if (g->N * g->O * conv_out_pixels(g) * conv_group_rows(g) < MIN_MACS) return false;
    switch (dir) {
    case FWD:
    case FWD_BIAS: return Cg >= FEW_CHANNELS || (g->sh == 1 && g->sw == 1);
    case BWD_DATA: return true;
    case BWD_WEIGHTS: return conv_out_pixels(g) >= MIN_DW_PIXELS;
    }
    return false;
}

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static bool omp_sleeps; /* OpenMP's idle threads sleep at once */

static void read_wait_policy(void)
{
    const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    omp_sleeps = (policy && strcasecmp(policy, "passive") == 0) || (spin && strcmp(spin, "0") == 0);
}

int tg__conv_dnnl_threads(void)
{
    pthread_once(&threads_once, read_wait_policy);
    return omp_sleeps ? tg_get_num_threads() : 1;
}

/* tapegrad's buffers of one call by their role in the forward convolution: SRC is x (or dx),
 * WEIGHTS w (or dw), DST y (or gy). */
typedef enum { SRC, WEIGHTS, BIAS, DST, N_TENSORS } tensor;

/* One argument of a primitive: tapegrad's plain buffer and the primitive's layout. */
typedef struct {
    int kind;   /* DNNL_ARG_SRC, ... */
    tensor t;   /* which of the call's buffers */
    bool out;
    bool same;  /* the primitive takes the plain layout as it is */
    size_t bytes; /* in the primitive's layout */
    dnnl_memory_t user, prim;
    dnnl_primitive_t to_prim, to_user, add_to_user; /* reorders (NULL when not needed) */
} conv_arg;

typedef struct {
    conv_geom g;
    direction dir;
    int threads;
    bool ok; /* false: oneDNN refused the geometry; im2col runs it */
    dnnl_primitive_t prim;
    dnnl_stream_t stream;
    int n_args;
    conv_arg a[4];
    size_t scratch_bytes;
    dnnl_memory_t scratch;
    pthread_mutex_t mu;
    int users;         /* calls between entry_for and release: an entry in use is not evicted */
    uint64_t last_use; /* the table's clock at its last lookup, for evicting the oldest */
} entry;

static entry table[MAX_ENTRIES];
static int n_entries;
static uint64_t table_clock;
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static dnnl_engine_t engine;

/* The plain layouts of tapegrad's tensors (any = false) or oneDNN's choice (any = true). */
static dnnl_status_t src_md(const conv_geom *g, bool any, dnnl_memory_desc_t *md)
{
    dnnl_dims_t d = {g->N, g->C, g->H, g->W};
    return dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, any ? dnnl_format_tag_any : dnnl_nchw);
}

static dnnl_status_t dst_md(const conv_geom *g, bool any, dnnl_memory_desc_t *md)
{
    dnnl_dims_t d = {g->N, g->O, g->OH, g->OW};
    return dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, any ? dnnl_format_tag_any : dnnl_nchw);
}

/* [O, C/groups, kh, kw] is goihw [groups, O/groups, C/groups, kh, kw] with the same bytes */
static dnnl_status_t weights_md(const conv_geom *g, bool any, dnnl_memory_desc_t *md)
{
    int64_t G = g->groups;
    if (G == 1) {
        dnnl_dims_t d = {g->O, g->C, g->kh, g->kw};
        return dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32,
                                            any ? dnnl_format_tag_any : dnnl_oihw);
    }
    dnnl_dims_t d = {G, g->O / G, g->C / G, g->kh, g->kw};
    return dnnl_memory_desc_init_by_tag(md, 5, d, dnnl_f32, any ? dnnl_format_tag_any : dnnl_goihw);
}

static dnnl_status_t bias_md(const conv_geom *g, dnnl_memory_desc_t *md)
{
    dnnl_dims_t d = {g->O};
    return dnnl_memory_desc_init_by_tag(md, 1, d, dnnl_f32, dnnl_x);
}

#define TRY(call)                                                                              \
    do {                                                                                       \
        dnnl_status_t st_ = (call);                                                            \
        if (st_ != dnnl_success) return st_;                                                   \
    } while (0)

/* A primitive attribute with a user-managed scratchpad, adding into the destination if add. */
static dnnl_status_t post_ops_of(bool add, dnnl_primitive_attr_t attr)
{
    TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (!add) return dnnl_success;
    dnnl_post_ops_t po;
    TRY(dnnl_post_ops_create(&po));
    dnnl_status_t st = dnnl_post_ops_append_sum(po, 1.0f);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    return st;
}

static dnnl_status_t attr_of(bool add, dnnl_primitive_attr_t *attr)
{
    TRY(dnnl_primitive_attr_create(attr));
    dnnl_status_t st = post_ops_of(add, *attr);
    if (st != dnnl_success) dnnl_primitive_attr_destroy(*attr);
    return st;
}

static size_t scratchpad_bytes(const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

/* A primitive from its descriptor; *scratch grows to its scratchpad's size. */
static dnnl_status_t primitive_of(dnnl_primitive_desc_t pd, size_t *scratch,
                                  dnnl_primitive_t *p)
{
    size_t s = scratchpad_bytes(pd);
    if (s > *scratch) *scratch = s;
    dnnl_status_t st = dnnl_primitive_create(p, pd);
    dnnl_primitive_desc_destroy(pd);
    return st;
}

static dnnl_status_t reorder_of(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                bool add, size_t *scratch, dnnl_primitive_t *p)
{
    dnnl_primitive_attr_t attr;
    TRY(attr_of(add, &attr));
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, attr);
    dnnl_primitive_attr_destroy(attr);
    TRY(st);
    return primitive_of(pd, scratch, p);
}

/* Argument kind of the primitive pd, on the call's buffer t in its plain layout md[t]. */
static dnnl_status_t arg_of(entry *e, const_dnnl_primitive_desc_t pd, int kind, tensor t,
                            bool out, const dnnl_memory_desc_t *md)
{
    const dnnl_memory_desc_t *user = &md[t];
    conv_arg *a = &e->a[e->n_args++];
    a->t = t;
    const dnnl_memory_desc_t *prim = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md,
                                                                  kind);
    if (!prim) return dnnl_invalid_arguments;
    a->kind = kind;
    a->out = out;
    a->same = dnnl_memory_desc_equal(user, prim);
    a->bytes = dnnl_memory_desc_get_size(prim);
    TRY(dnnl_memory_create(&a->user, user, engine, DNNL_MEMORY_NONE));
    TRY(dnnl_memory_create(&a->prim, prim, engine, DNNL_MEMORY_NONE));
    if (!out && !a->same) TRY(reorder_of(user, prim, false, &e->scratch_bytes, &a->to_prim));
    if (out && !a->same) TRY(reorder_of(prim, user, false, &e->scratch_bytes, &a->to_user));
    if (out) TRY(reorder_of(prim, user, true, &e->scratch_bytes, &a->add_to_user));
    return dnnl_success;
}

/* The convolution's descriptor in the direction asked, on oneDNN's choice of layouts. PyTorch's
 * padding is symmetric with the output size rounded down, which oneDNN's consistency rule
 * (OH = (H + pl + pr - kernel extent) / sh + 1, rounded down) accepts as it is. oneDNN's
 * dilation counts the gaps (0: none). */
static dnnl_status_t conv_pd(const conv_geom *g, direction dir, const_dnnl_primitive_attr_t attr,
                             dnnl_primitive_desc_t *pd)
{
    dnnl_memory_desc_t s, w, b, d;
    TRY(src_md(g, true, &s));
    TRY(weights_md(g, true, &w));
    TRY(dst_md(g, true, &d));
    TRY(bias_md(g, &b));
    dnnl_dims_t stride = {g->sh, g->sw}, dil = {g->dh - 1, g->dw - 1}, pad = {g->ph, g->pw};
    dnnl_convolution_desc_t fd, bd;
    TRY(dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training,
                                                   dnnl_convolution_direct, &s, &w,
                                                   dir == FWD_BIAS ? &b : NULL, &d, stride, dil,
                                                   pad, pad));
    if (dir == FWD || dir == FWD_BIAS)
        return dnnl_primitive_desc_create(pd, &fd, attr, engine, NULL);
    /* the backward primitives take the forward's as a hint of the layouts */
    dnnl_primitive_desc_t hint;
    TRY(dnnl_primitive_desc_create(&hint, &fd, NULL, engine, NULL));
    dnnl_status_t st;
    if (dir == BWD_DATA)
        st = dnnl_dilated_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &s, &w,
                                                              &d, stride, dil, pad, pad);
    else
        st = dnnl_dilated_convolution_backward_weights_desc_init(&bd, dnnl_convolution_direct, &s,
                                                                 &w, NULL, &d, stride, dil, pad,
                                                                 pad);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(pd, &bd, attr, engine, hint);
    dnnl_primitive_desc_destroy(hint);
    return st;
}

static void destroy_primitive(dnnl_primitive_t *p)
{
    if (*p) dnnl_primitive_destroy(*p);
    *p = NULL;
}

static void destroy_memory(dnnl_memory_t *m)
{
    if (*m) dnnl_memory_destroy(*m);
    *m = NULL;
}

/* Destroys what e holds of oneDNN's objects, whether made fully or in part (a geometry refused
 * half-way), and keeps its key and lock. */
static void clear_entry(entry *e)
{
    for (int i = 0; i < (int)(sizeof e->a / sizeof *e->a); i++) {
        conv_arg *a = &e->a[i];
        destroy_memory(&a->user), destroy_memory(&a->prim);
        destroy_primitive(&a->to_prim), destroy_primitive(&a->to_user);
        destroy_primitive(&a->add_to_user);
        *a = (conv_arg){0};
    }
    destroy_primitive(&e->prim);
    if (e->stream) dnnl_stream_destroy(e->stream);
    e->stream = NULL;
    destroy_memory(&e->scratch);
    e->n_args = 0;
    e->scratch_bytes = 0;
    e->ok = false;
}

/* The primitive of e, its arguments (inputs first, the output last) and their reorders. */
static dnnl_status_t make_entry(entry *e)
{
    const conv_geom *g = &e->g;
    dnnl_memory_desc_t md[N_TENSORS];
    TRY(src_md(g, false, &md[SRC]));
    TRY(weights_md(g, false, &md[WEIGHTS]));
    TRY(dst_md(g, false, &md[DST]));
    TRY(bias_md(g, &md[BIAS]));
    dnnl_primitive_attr_t attr;
    TRY(attr_of(false, &attr));
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = conv_pd(g, e->dir, attr, &pd);
    dnnl_primitive_attr_destroy(attr);
    TRY(st);
    switch (e->dir) {
    case FWD:
    case FWD_BIAS:
        st = arg_of(e, pd, DNNL_ARG_SRC, SRC, false, md);
        if (!st) st = arg_of(e, pd, DNNL_ARG_WEIGHTS, WEIGHTS, false, md);
        if (!st && e->dir == FWD_BIAS) st = arg_of(e, pd, DNNL_ARG_BIAS, BIAS, false, md);
        if (!st) st = arg_of(e, pd, DNNL_ARG_DST, DST, true, md);
        break;
    case BWD_DATA:
        st = arg_of(e, pd, DNNL_ARG_WEIGHTS, WEIGHTS, false, md);
        if (!st) st = arg_of(e, pd, DNNL_ARG_DIFF_DST, DST, false, md);
        if (!st) st = arg_of(e, pd, DNNL_ARG_DIFF_SRC, SRC, true, md);
        break;
    case BWD_WEIGHTS:
        st = arg_of(e, pd, DNNL_ARG_SRC, SRC, false, md);
        if (!st) st = arg_of(e, pd, DNNL_ARG_DIFF_DST, DST, false, md);
        if (!st) st = arg_of(e, pd, DNNL_ARG_DIFF_WEIGHTS, WEIGHTS, true, md);
        break;
    }
    if (st) {
        dnnl_primitive_desc_destroy(pd);
        return st;
    }
    TRY(primitive_of(pd, &e->scratch_bytes, &e->prim));
    TRY(dnnl_stream_create(&e->stream, engine, dnnl_stream_default_flags));
    dnnl_dims_t bytes = {(int64_t)e->scratch_bytes};
    dnnl_memory_desc_t scratch;
    TRY(dnnl_memory_desc_init_by_tag(&scratch, 1, bytes, dnnl_u8, dnnl_x));
    return dnnl_memory_create(&e->scratch, &scratch, engine, DNNL_MEMORY_NONE);
}

static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static dnnl_status_t engine_status;
static void make_engine(void) { engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0); }

/* OpenMP's thread count on this thread set to n for one call, then restored. */
static int threads_begin(int n)
{
    int before = omp_get_max_threads();
    omp_set_num_threads(n);
    return before;
}

static void threads_end(int before) { omp_set_num_threads(before); }

static entry *lookup(const conv_geom *g, direction dir, int threads)
{
    for (int i = 0; i < n_entries; i++)
        if (table[i].dir == dir && table[i].threads == threads &&
            memcmp(&table[i].g, g, sizeof *g) == 0)
            return &table[i];
    return NULL;
}

/* A slot for a new entry: an unused one, else the least recently used entry that no call is
 * using, its primitives destroyed; NULL when every entry is in use. */
static entry *free_slot(void)
{
    if (n_entries < MAX_ENTRIES) {
        entry *e = &table[n_entries++];
        pthread_mutex_init(&e->mu, NULL);
        return e;
    }
    entry *oldest = NULL;
    for (int i = 0; i < n_entries; i++)
        if (!table[i].users && (!oldest || table[i].last_use < oldest->last_use))
            oldest = &table[i];
    if (oldest) clear_entry(oldest);
    return oldest;
}

/* The entry for (g, dir) at the current thread count, made on first use and held for the call
 * until release(); NULL when oneDNN does not take it (or every entry is in use). */
static entry *entry_for(const conv_geom *g, direction dir)
{
    int threads = tg__conv_dnnl_threads();
    pthread_mutex_lock(&table_mu);
    entry *e = lookup(g, dir, threads);
    if (!e && (e = free_slot())) {
        pthread_once(&engine_once, make_engine);
        e->g = *g, e->dir = dir, e->threads = threads;
        int before = threads_begin(threads);
        e->ok = engine_status == dnnl_success && make_entry(e) == dnnl_success;
        if (!e->ok) clear_entry(e);
        threads_end(before);
    }
    if (e) e->last_use = ++table_clock;
    if (e && e->ok) e->users++;
    pthread_mutex_unlock(&table_mu);
    return e && e->ok ? e : NULL;
}

static void release(entry *e)
{
    pthread_mutex_lock(&table_mu);
    e->users--;
    pthread_mutex_unlock(&table_mu);
}

static atomic_bool fail_next;

void tg__conv_dnnl_fail_next_call(void) { atomic_store(&fail_next, true); }

static dnnl_status_t execute(const entry *e, dnnl_primitive_t p, int n, const dnnl_exec_arg_t *args)
{
    TRY(dnnl_primitive_execute(p, e->stream, n, args));
    return dnnl_stream_wait(e->stream);
}

static dnnl_status_t reorder(const entry *e, dnnl_primitive_t r, dnnl_memory_t from,
                             dnnl_memory_t to)
{
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to},
                               {DNNL_ARG_SCRATCHPAD, e->scratch}};
    return execute(e, r, e->scratch_bytes ? 3 : 2, args);
}

/* The arena buffers of one call, taken before the entry is locked: tg_op_scratch fails (a
 * longjmp when the error handler does one) when memory is short, and the lock must not be held
 * then. (The entry then stays marked in use, so it is never evicted: a slot lost, not a hang.) */
typedef struct {
    void *scratch;
    void *prim[4]; /* the argument's buffer in the primitive's layout (NULL: tapegrad's own) */
} call_buffers;

static call_buffers buffers_for(const entry *e, bool fresh)
{
    call_buffers b = {.scratch = e->scratch_bytes ? tg_op_scratch(e->scratch_bytes) : NULL};
    for (int i = 0; i < e->n_args; i++) {
        const conv_arg *a = &e->a[i];
        bool direct = a->same && (!a->out || fresh);
        if (!direct) b.prim[i] = tg_op_scratch(a->bytes);
    }
    return b;
}

/* One call on tapegrad's buffers ptr[SRC], ... (by role); the output is written (fresh) or
 * added to. */
static dnnl_status_t run(entry *e, const void *const *ptr, const call_buffers *b, bool fresh)
{
    if (e->scratch_bytes) TRY(dnnl_memory_set_data_handle(e->scratch, b->scratch));
    dnnl_exec_arg_t args[5];
    for (int i = 0; i < e->n_args; i++) {
        conv_arg *a = &e->a[i];
        void *p = (void *)ptr[a->t];
        TRY(dnnl_memory_set_data_handle(a->user, p));
        TRY(dnnl_memory_set_data_handle(a->prim, b->prim[i] ? b->prim[i] : p));
        if (a->to_prim) TRY(reorder(e, a->to_prim, a->user, a->prim));
        args[i] = (dnnl_exec_arg_t){a->kind, a->prim};
    }
    int n = e->n_args;
    if (e->scratch_bytes) args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->scratch};
    if (atomic_exchange(&fail_next, false)) return dnnl_runtime_error;
    TRY(execute(e, e->prim, n, args));
    conv_arg *out = &e->a[e->n_args - 1];
    if (!fresh) return reorder(e, out->add_to_user, out->prim, out->user);
    if (!out->same) return reorder(e, out->to_user, out->prim, out->user);
    return dnnl_success;
}

static bool call(const conv_geom *g, direction dir, const void *const *ptr, bool fresh)
{
    if (tg__conv_dnnl_mode() == TG_DNNL_OFF || !g->N || !pays(g, dir)) return false;
    entry *e = entry_for(g, dir);
    if (!e) return false;
    call_buffers b = buffers_for(e, fresh);
    pthread_mutex_lock(&e->mu);
    int before = threads_begin(e->threads);
    dnnl_status_t st = run(e, ptr, &b, fresh);
    threads_end(before);
    pthread_mutex_unlock(&e->mu);
    release(e);
    if (st != dnnl_success)
        tg_fail("tg_conv2d: oneDNN's %s failed (%s) on input [%lld, %lld, %lld, %lld], weight "
                "[%lld, %lld, %lld, %lld]; TG_CONV_DNNL=0 runs im2col instead",
                direction_name[dir], dnnl_status2str(st), (long long)g->N, (long long)g->C,
                (long long)g->H, (long long)g->W, (long long)g->O, (long long)(g->C / g->groups),
                (long long)g->kh, (long long)g->kw);
    atomic_fetch_add(&calls, 1);
    return true;
}

bool tg__conv_dnnl_fwd(const conv_geom *g, const float *x, const float *w, const float *b,
                       bool fresh, float *y)
{
    if (b && !fresh) return false;
    return call(g, b ? FWD_BIAS : FWD,
                (const void *[N_TENSORS]){[SRC] = x, [WEIGHTS] = w, [BIAS] = b, [DST] = y}, fresh);
}

bool tg__conv_dnnl_dx(const conv_geom *g, const float *w, const float *gy, float *dx)
{
    return call(g, BWD_DATA, (const void *[N_TENSORS]){[SRC] = dx, [WEIGHTS] = w, [DST] = gy},
                false);
}

bool tg__conv_dnnl_dw(const conv_geom *g, const float *x, const float *gy, float *dw)
{
    return call(g, BWD_WEIGHTS, (const void *[N_TENSORS]){[SRC] = x, [WEIGHTS] = dw, [DST] = gy},
                false);
}

#else

int tg__conv_dnnl_threads(void) { return 0; }
void tg__conv_dnnl_fail_next_call(void) {}
bool tg__conv_dnnl_fwd(const conv_geom *g, const float *x, const float *w, const float *b,
                       bool fresh, float *y)
{
    return false;
}
bool tg__conv_dnnl_dx(const conv_geom *g, const float *w, const float *gy, float *dx)
{
    return false;
}
bool tg__conv_dnnl_dw(const conv_geom *g, const float *x, const float *gy, float *dw)
{
    return false;
}

#endif
