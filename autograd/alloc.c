/* The one heap allocator of the library. Every allocation tapegrad makes goes through these
 * functions, so tg_alloc_count() sees all of them (tensors, gradients, arena chunks, the tape's
 * record array, module and optimizer bookkeeping, data sets, charts). Everything they return is
 * released with tg__free. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/blas.h"
#include "autograd/internal.h"

/* Counted from every thread that allocates (relaxed: a tally, not a synchronisation). */
static _Atomic uint64_t alloc_count;

uint64_t tg_alloc_count(void) { return atomic_load_explicit(&alloc_count, memory_order_relaxed); }

static void count(void) { atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed); }

/* 64-byte alignment suits AVX-512 loads and BLIS packing alike. NULL when memory is short (or
 * the size overflows), so data loaders can name the file they were reading; tg__malloc fails
 * instead. */
void *tg__aligned_bytes(size_t n)
{
    size_t rounded = (n + TG__BLAS_TAIL_BYTES + 63) & ~(size_t)63; /* a margin for BLIS */
    if (rounded < n) return NULL;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p) count();
    return p;
}

void *tg__malloc(size_t bytes)
{
    void *p = tg__aligned_bytes(bytes);
    if (!p) tg_fail("out of memory allocating %zu bytes", bytes);
    return p;
}

void *tg__calloc(size_t bytes)
{
    void *p = tg__malloc(bytes);
    memset(p, 0, bytes);
    return p;
}

/* Growth of bookkeeping arrays (records, names, lists); the result is not 64-byte aligned. */
void *tg__xrealloc(void *p, size_t bytes)
{
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) tg_fail("out of memory allocating %zu bytes", bytes);
    count();
    return q;
}

char *tg__xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = tg__malloc(n);
    memcpy(d, s, n);
    return d;
}

void tg__free(void *p) { free(p); }
