/* The one heap allocator of the library. Every allocation tapegrad makes goes through these
 * functions, so tg_alloc_count() sees all of them (tensors, gradients, arena chunks, the tape's
 * record array, module and optimizer bookkeeping, data sets, charts). Everything they return is
 * released with tg__free. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "autograd/blas.h"
#include "autograd/internal.h"

/* Counted from every thread that allocates (relaxed: a tally, not a synchronisation). */
static _Atomic uint64_t alloc_count;

uint64_t tg_alloc_count(void) { return atomic_load_explicit(&alloc_count, memory_order_relaxed); }

static void count(void) { atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed); }

/* From this size, allocations start on a 2 MB boundary and ask the kernel for transparent huge
 * pages (PyTorch's THP_MEM_ALLOC_ENABLE does the same): a data set's shuffled rows, each on its
 * own 4 KB pages, cost a page walk per row, which slows the batch-16 loader's gather
 * (docs/speed.md, Lever 4b, has the figures). Only the whole 2 MB pages inside the request are advised, so the
 * rounding up of the size (aligned_alloc wants a multiple of the alignment) stays virtual: the
 * tail is never touched. TG_HUGEPAGES=0 turns it off. */
enum { HUGE_FROM = 1 << 22, HUGE_PAGE = 1 << 21 };

static bool huge_pages_on(void)
{
    static atomic_int on = -1; /* -1: TG_HUGEPAGES not read yet */
    int v = atomic_load_explicit(&on, memory_order_relaxed);
    if (v < 0) {
        v = tg__env_switch_on("TG_HUGEPAGES");
        atomic_store(&on, v);
    }
    return v;
}

static void *huge_alloc(size_t bytes)
{
    void *p = aligned_alloc(HUGE_PAGE, (bytes + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1));
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, bytes & ~(size_t)(HUGE_PAGE - 1), MADV_HUGEPAGE); /* advice only */
#endif
    return p;
}

/* 64-byte alignment suits AVX-512 loads and BLIS packing alike. NULL when memory is short (or
 * the size overflows), so data loaders can name the file they were reading; tg__malloc fails
 * instead. */
void *tg__aligned_bytes(size_t n)
{
    size_t rounded = (n + TG__BLAS_TAIL_BYTES + 63) & ~(size_t)63; /* a margin for BLIS */
    if (rounded < n || rounded > SIZE_MAX - HUGE_PAGE) return NULL;
    void *p = rounded >= HUGE_FROM && huge_pages_on() ? huge_alloc(rounded)
                                                      : aligned_alloc(64, rounded ? rounded : 64);
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
