/* Internal interface of the library's layers. Not installed. Ops use only the public op API
 * (include/tg/op.h); this header adds what the tape, tensors and the other layers share. */
#ifndef TG_INTERNAL_H
#define TG_INTERNAL_H

#include "tg/core.h"
#include "tg/op.h"

/* Arena memory of the current step, 64-byte aligned, released by tg_tape_reset(). The common
 * case (room left in the current chunk) is a bump of tg__arena_free_range, inline, since every op
 * allocates its output and record here; tg__arena_grow (autograd/arena.c) adds a chunk. */
typedef struct {
    unsigned char *next, *end;
} tg__arena_range;
extern __attribute__((visibility("hidden"))) _Thread_local tg__arena_range tg__arena_free_range;
void *tg__arena_grow(size_t need);
enum { TG__ARENA_ALIGN = 64 };

/* The common case alone: NULL when the current chunk has no room. A caller that tail-calls its
 * own slow path on NULL keeps its fast path free of calls (and of register saves). The test is
 * strict so that NULL never means success: before the first chunk the range is {NULL, NULL}. */
static inline void *tg__arena_try_alloc(size_t bytes)
{
    size_t need = (bytes + TG__ARENA_ALIGN - 1) & ~(size_t)(TG__ARENA_ALIGN - 1);
    tg__arena_range *r = &tg__arena_free_range;
    if (need >= (size_t)(r->end - r->next)) return NULL;
    void *p = r->next;
    r->next += need;
    return p;
}

static inline void *tg__arena_alloc(size_t bytes)
{
    void *p = tg__arena_try_alloc(bytes);
    return p ? p : tg__arena_grow((bytes + TG__ARENA_ALIGN - 1) & ~(size_t)(TG__ARENA_ALIGN - 1));
}
/* Fills a tensor header (magic, dtype, shape, numel); data and flags are the caller's. */
void tg__init_header(tg_tensor *t, tg_dtype dtype, int ndim, const int64_t *shape,
                     const char *op);
/* Fails naming op and what is wrong with (dtype, ndim, shape) (autograd/tensor.c). */
void tg__fail_bad_header(tg_dtype dtype, int ndim, const int64_t *shape, const char *op)
    __attribute__((noreturn, cold));

/* The element count of a valid tensor header, or a failure naming op: a rank outside 0..6, an
 * unknown dtype, a negative size, or more elements than an int64 can count in bytes (8 per
 * element at most). One pass without divisions, since every op output is checked here. */
static inline int64_t tg__header_numel(tg_dtype dtype, int ndim, const int64_t *shape,
                                       const char *op)
{
    bool bad = (unsigned)ndim > TG_MAX_DIMS || (unsigned)dtype > TG_I64;
    int64_t numel = 1;
    for (int i = 0; i < ndim && !bad; i++)
        bad = shape[i] < 0 || __builtin_mul_overflow(numel, shape[i], &numel) ||
              numel > INT64_MAX / 8;
    if (bad) tg__fail_bad_header(dtype, ndim, shape, op);
    return numel;
}

/* Every field of a header, flags cleared, data NULL, sizes beyond ndim 0: stored field by field,
 * because a zeroing struct assignment of the 112 bytes compiles to a slow `rep stos`. */
static inline void tg__fill_header(tg_tensor *t, tg_dtype dtype, int ndim, const int64_t *shape,
                                   int64_t numel, uint32_t generation)
{
    t->magic = TG_MAGIC_LIVE;
    t->generation = generation;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < TG_MAX_DIMS; i++) t->shape[i] = i < ndim ? shape[i] : 0;
    t->numel = numel;
    t->data = NULL;
    t->grad = NULL;
    t->requires_grad = t->persistent = t->owns_data = t->zero_pending = false;
    t->node = NULL;
    t->name = NULL;
    t->in_backward = NULL;
}

/* A parameter whose optimizer may update it during tg_backward (tg_optimizer_set_in_backward):
 * owned by the optimizer, pointed at by the parameter's in_backward. The tape counts the records
 * that read the parameter, since an update written by one op's backward is safe only when no
 * other record reads the parameter's value. */
struct tg_in_backward {
    struct tg_optimizer *opt;
    tg_tensor *param;         /* NULL once tg_free released it */
    int index;                /* the parameter's index in opt */
    uint32_t generation;      /* the tape generation that `uses` counts */
    uint32_t uses;            /* records of that generation with the parameter as an input
                                 (2 when turned on mid-tape: the earlier records are unknown) */
    bool updated;             /* written by a backward since the last step(), which skips it */
};

/* The optimizer's rule for ib's parameter, p = beta·p + alpha·g, with its group's current
 * learning rate and weight decay; false when the kind has none for its settings
 * (optim/optimizer.c). */
bool tg__in_backward_rule(const struct tg_in_backward *ib, double *alpha, double *beta);
/* The current tape's generation (autograd/tape.c), which struct tg_in_backward's counts follow. */
uint32_t tg__tape_generation(void);
/* The name ib's parameter has in its optimizer, for messages. */
const char *tg__in_backward_name(const struct tg_in_backward *ib);

/* Bytes per element of a dtype tg__header_numel accepted. */
static inline size_t tg__elem_size(tg_dtype dtype)
{
    return dtype == TG_F32 || dtype == TG_I32 ? 4 : 8;
}

/* The counted heap allocator (autograd/alloc.c): every allocation of the library goes through
 * these, and everything they return is released with tg__free. tg__malloc, tg__calloc and
 * tg__xrealloc fail (tg_fail) when memory is short; tg__aligned_bytes returns NULL instead, so a
 * loader can name the file it was reading. tg__malloc and tg__aligned_bytes are 64-byte aligned. */
void *tg__malloc(size_t bytes);
void *tg__calloc(size_t bytes);
void *tg__xrealloc(void *p, size_t bytes);
char *tg__xstrdup(const char *s);
void *tg__aligned_bytes(size_t n);
void tg__free(void *p);

/* Prefaults [p, p+n) for writing in one call (see tensor.c for why). Only for sizes backed by
 * real data, never for sizes read from a header. */
void tg__prefault(void *p, size_t n);
/* A persistent tensor with uninitialised (prefaulted) data, for buffers about to be overwritten
 * entirely; tg_zeros would fault every page twice as slowly and zero it for nothing. */
tg_tensor *tg__tensor_uninit(tg_dtype dtype, int ndim, const int64_t *shape);
/* A persistent tensor that takes ownership of buf (from tg__read_alloc). */
tg_tensor *tg__tensor_adopt(tg_dtype dtype, int ndim, const int64_t *shape, void *buf);

/* Arena: chunked bump allocator owned by the tape (autograd/arena.c). */
void tg__arena_reset(void);
void tg__arena_free(void);   /* every chunk of this thread's arenas (tg_tape_free) */
size_t tg__arena_reserved(void);

/* Anomaly mode (autograd/anomaly.c): fails naming the op when out holds a NaN or Inf. In
 * backward, grad_slot gives where an input's gradient is (NULL: in t->grad). */
void tg__anomaly_check_forward(const tg_node *node_or_null, const char *op, const tg_tensor *out,
                               int n_in, tg_tensor *const *in);
void tg__anomaly_check_backward(const tg_node *node, tg_tensor **(*grad_slot)(tg_tensor *t));
/* Read by every op and every backward step: an inline read of the flag, no call. */
extern __attribute__((visibility("hidden"))) _Thread_local bool tg__anomaly;
static inline bool tg__anomaly_on(void) { return tg__anomaly; }
bool tg__debug_checks_on(void);
/* An on/off switch from the environment: 0/off/false/no (any case) turn it off; 1/on/true/yes,
 * unset or empty leave it on, as any other value does after a warning on stderr (at each
 * call: callers read their switch once). autograd/env.c. */
bool tg__env_switch_on(const char *name);

/* The records currently on the tape, in execution order. */
tg_node *const *tg__tape_records(size_t *count);

/* One xoshiro256** step on a state s[4]: tg_rng_next's body, inline for per-element loops
 * (dropout masks) that keep the state in registers; the stream is the same as tg_rng_next's. */
static inline uint64_t tg__xoshiro_next(uint64_t *s)
{
    uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Shared small helpers. */

#endif
