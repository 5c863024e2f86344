/* The README's first example: build f(a, b) = sum(tanh(a·b) + a²), backprop, gradient-check. */
#include <stdio.h>
#include "tapegrad.h"

static tg_tensor *f(tg_tensor **in, int n, void *ctx)
{
    (void)n, (void)ctx;
    return tg_sum(tg_add(tg_tanh(tg_matmul(in[0], in[1])), tg_square(in[0])));
}

int main(void)
{
    tg_manual_seed(42);
    tg_tensor *a = tg_set_requires_grad(tg_rand_normal(TG_F64, TG_SHAPE(2, 3), 0, 1, NULL), true);
    tg_tensor *b = tg_set_requires_grad(tg_rand_normal(TG_F64, TG_SHAPE(3, 3), 0, 1, NULL), true);
    tg_tensor *in[] = {a, b};

    tg_tensor *y = f(in, 2, NULL);      /* forward: every op is recorded on the tape */
    tg_backward(y);                     /* reverse sweep: a->grad and b->grad filled */
    printf("f = %.6f\n", tg_item(y));
    tg_print(a->grad, stdout);
    tg_tape_reset();                    /* releases every intermediate in one call */

    tg_gradcheck_result r = tg_gradcheck(f, in, 2, NULL, NULL);
    printf("gradcheck: %s (%d elements)\n", r.ok ? "ok" : "FAILED", r.checked);
    tg_free(a), tg_free(b);
    return r.ok ? 0 : 1;
}
