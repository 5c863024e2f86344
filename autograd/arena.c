/* The tape's arena: intermediates, their gradients and tape records live here for one step.
 *
 * It grows by chunks, so nobody sizes it up front. On reset, if the step needed more than one
 * chunk, the chunks are replaced by a single one of the total size: from the second step on a
 * training loop runs inside one chunk and makes no heap allocation at all.
 *
 * Two arenas alternate, step by step, in every build. So the memory of the step just released is
 * not reused by the next step: an intermediate kept past tg_tape_reset() still has its header,
 * whose generation (tape.c) no longer matches: any op or accessor that receives it fails with a
 * clear message instead of reading reused memory. Chunks replaced by a merge stay allocated until
 * that arena's next release, so such a check never reads freed memory. With debug checks on, the
 * released arena is also poisoned, so data read through a stale pointer is garbage, never
 * plausible old values. The limit: an intermediate from two or more steps back may sit where a live intermediate
 * of this step now is, and then passes the check. */
#include <string.h>
#include "autograd/internal.h"

typedef struct chunk {
    struct chunk *next;
    size_t size, used;  /* used: of the current chunk, tg__arena_free_range says it instead */
    unsigned char *base;
} chunk;

typedef struct {
    chunk *head;        /* current chunk (newest first) */
    size_t total;       /* bytes of all chunks */
    chunk *retired;     /* debug checks: chunks replaced by the last merge, still poisoned */
    size_t retired_total;
} arena;

enum { MIN_CHUNK = 1 << 20, POISON = 0xDB };

static _Thread_local arena arenas[2];
static _Thread_local int current;
_Thread_local tg__arena_range tg__arena_free_range;

static chunk *chunk_new(size_t size, chunk *next)
{
    chunk *c = tg__malloc(sizeof *c);
    c->base = tg__malloc(size);
    c->size = size;
    c->used = 0;
    c->next = next;
    return c;
}

/* The free range of the current arena's newest chunk becomes the inline allocator's. */
static void take_range(const arena *a)
{
    chunk *c = a->head;
    tg__arena_free_range = c ? (tg__arena_range){c->base + c->used, c->base + c->size}
                             : (tg__arena_range){NULL, NULL};
}

/* The inline allocator's position back into its chunk, before the chunks are walked. */
static void give_back_range(arena *a)
{
    if (a->head) a->head->used = (size_t)(tg__arena_free_range.next - a->head->base);
}

void *tg__arena_grow(size_t need)
{
    arena *a = &arenas[current];
    give_back_range(a);
    if (!a->head || a->head->used + need > a->head->size) {
        size_t size = a->head ? 2 * a->head->size : MIN_CHUNK;
        while (size < need) size *= 2;
        a->head = chunk_new(size, a->head);
        a->total += size;
    }
    void *p = a->head->base + a->head->used;
    a->head->used += need;
    take_range(a);
    return p;
}

static void free_chunks(chunk *c)
{
    while (c) {
        chunk *next = c->next;
        tg__free(c->base);
        tg__free(c);
        c = next;
    }
}

static void release(arena *a, bool poison)
{
    free_chunks(a->retired); /* a full step of the other arena has passed since they retired */
    a->retired = NULL;
    a->retired_total = 0;
    if (!a->head) return;
    if (poison)
        for (chunk *c = a->head; c; c = c->next) memset(c->base, POISON, c->used);
    if (a->head->next) { /* several chunks: merge into one of the total size */
        a->retired = a->head;
        a->retired_total = a->total;
        a->head = chunk_new(a->total, NULL);
        if (poison) memset(a->head->base, POISON, a->total);
    }
    a->head->used = 0;
}

/* Releases the arena of the step that ends (its memory is reused only the step after next) and
 * switches to the other one. */
void tg__arena_reset(void)
{
    give_back_range(&arenas[current]);
    release(&arenas[current], tg__debug_checks_on());
    current ^= 1;
    take_range(&arenas[current]);
}

void tg__arena_free(void)
{
    for (int k = 0; k < 2; k++) {
        free_chunks(arenas[k].head);
        free_chunks(arenas[k].retired);
        arenas[k] = (arena){0};
    }
    current = 0;
    take_range(&arenas[current]);
}

size_t tg__arena_reserved(void)
{
    return arenas[0].total + arenas[1].total + arenas[0].retired_total + arenas[1].retired_total;
}
