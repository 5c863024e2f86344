/* NumPy broadcasting for elementwise binary ops (internal to ops/). */
#ifndef TG_OPS_BROADCAST_H
#define TG_OPS_BROADCAST_H
#include "ops/kernel.h"

/* Where output element i reads its operands: a[ia[i]], b[ib[i]]. A NULL index array means the
 * identity (operand has the output's shape), the fast path of same-shape ops. The arrays live in
 * the arena, and a backward reuses them to scatter-add gradients, which sums over broadcast axes
 * without a separate reduction. */
typedef struct {
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t numel;
    const int64_t *ia, *ib;
} tg_bcast;

tg_bcast tg__broadcast(const tg_tensor *a, const tg_tensor *b, const char *op);

static inline int64_t tg__at(const int64_t *index, int64_t i) { return index ? index[i] : i; }

#endif
