/* Internal interface between the tape (autograd/) and the ops (ops/). Not installed.
 *
 * How an op is written (see ops/unary.c for the smallest complete example):
 *   1. validate inputs (tg__check_float / shape checks; failures call tg__fail),
 *   2. out = tg__new_intermediate(...) and compute the forward into out->data,
 *   3. node = tg__record("name", backward_fn, out, n, inputs); if node is not NULL, stash what the
 *      backward needs in node->saved / node->f / node->i / node->aux,
 *   4. backward_fn(node) reads node->out->grad->data and accumulates (+=) into tg__grad(input)
 *      for each input with requires_grad. It must never overwrite an input's gradient. */
#ifndef TG_INTERNAL_H
#define TG_INTERNAL_H

#include <stdnoreturn.h>
#include "tg/core.h"

#define TG_MAX_INPUTS 4

typedef void (*tg_backward_fn)(tg_node *node);

struct tg_node {
    const char *op;
    tg_backward_fn backward;
    tg_tensor *out;
    int n_in;
    tg_tensor *in[TG_MAX_INPUTS];
    const tg_tensor *aux;   /* a non-differentiable input (labels, indices), if any */
    void *saved;            /* op-specific data in the arena (mask, softmax, argmax...) */
    double f[2];            /* scalar arguments (exponent, margin, ...) */
    int64_t i[2];           /* integer arguments (axis, ...) */
    size_t index;           /* position on the tape */
};

/* Programming error: formats the message, calls the user's handler, aborts if it returns. */
noreturn void tg__fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Every op calls these on each input: live (not released), and a float dtype. */
void tg__check_live(const tg_tensor *t, const char *op);
void tg__check_float(const tg_tensor *t, const char *op);
void tg__check_same_dtype(const tg_tensor *a, const tg_tensor *b, const char *op);

/* Arena memory of the current step, 64-byte aligned, released by tg_tape_reset(). */
void *tg__arena_alloc(size_t bytes);
void *tg__arena_calloc(size_t bytes);
/* Fills a tensor header (magic, dtype, shape, numel); data and flags are the caller's. */
void tg__init_header(tg_tensor *t, tg_dtype dtype, int ndim, const int64_t *shape,
                     const char *op);
/* An intermediate with uninitialised data. */
tg_tensor *tg__new_intermediate(tg_dtype dtype, int ndim, const int64_t *shape);

/* Records the op when grad mode is on and some input requires grad (then out->requires_grad
 * becomes true), and runs the anomaly check when that mode is on. Returns NULL when nothing
 * was recorded: the op then saves nothing for backward. */
tg_node *tg__record(const char *op, tg_backward_fn backward, tg_tensor *out, int n_in,
                    tg_tensor *const *in);

/* The gradient buffer of t, allocated and zeroed on first use (arena for intermediates,
 * heap for persistent tensors). Returns NULL when t does not require grad, so a backward writes
 *     float *ga = tg__grad(a); if (ga) ...  */
void *tg__grad(tg_tensor *t);

/* The counted heap allocator (autograd/alloc.c): every allocation of the library goes through
 * these, and everything they return is released with tg__free. tg__malloc, tg__calloc and
 * tg__xrealloc fail (tg__fail) when memory is short; tg__aligned_bytes returns NULL instead, so a
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

/* Anomaly mode (autograd/anomaly.c): fails naming the op when out holds a NaN or Inf. */
void tg__anomaly_check_forward(const tg_node *node_or_null, const char *op, const tg_tensor *out,
                               int n_in, tg_tensor *const *in);
void tg__anomaly_check_backward(const tg_node *node);
bool tg__anomaly_on(void);
bool tg__debug_checks_on(void);

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
int tg__normalize_axis(int axis, int ndim, const char *op);
/* The same shape once size-1 axes are dropped ([N, 1] and [N] agree; [4, 2] and [2, 4] not). */
bool tg__same_squeezed_shape(const tg_tensor *a, const tg_tensor *b);
size_t tg__bytes(const tg_tensor *t);

#endif
