/* Per-kernel times (us, thread CPU time, best of 7) of the loops a build's instruction set can
 * change: elementwise ops on a 784x100 float tensor, a softmax, a forward+backward, one Adam
 * and one SGD (momentum, weight decay) step on a 784x100 parameter. Built against each of the
 * libraries bench/portability/run.sh compares. */
#include <stdio.h>
#include <time.h>
#include "tapegrad.h"
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
typedef tg_tensor *(*un)(tg_tensor *);
static tg_tensor *A, *B, *W;
static tg_optimizer *adam, *sgd;
static tg_tensor *f_add(tg_tensor *x)
{
    return tg_add(x, B);
}
static tg_tensor *f_mul(tg_tensor *x)
{
    return tg_mul(x, B);
}
static tg_tensor *f_sm(tg_tensor *x)
{
    return tg_softmax(x, 1);
}
static tg_tensor *f_addbwd(tg_tensor *x)
{
    tg_tensor *y = tg_sum(tg_mul(tg_relu(x), B));
    tg_backward(y);
    return y;
}
static tg_tensor *f_adam(tg_tensor *x)
{
    tg_optimizer_step(adam);
    return x;
}
static tg_tensor *f_sgd(tg_tensor *x)
{
    tg_optimizer_step(sgd);
    return x;
}
static double best(un f, tg_tensor *x, int it)
{
    double b = 1e9;
    for (int r = 0; r < 7; r++) {
        double t0 = now();
        for (int i = 0; i < it; i++) {
            f(x);
            tg_tape_reset();
        }
        double t = (now() - t0) / it * 1e6;
        if (t < b) b = t;
    }
    return b;
}
int main(void)
{
    tg_manual_seed(1);
    A = tg_set_requires_grad(tg_rand_normal(TG_F32, TG_SHAPE(784, 100), 0, 1, NULL), true);
    B = tg_rand_normal(TG_F32, TG_SHAPE(784, 100), 0, 1, NULL);
    W = tg_set_requires_grad(tg_rand_normal(TG_F32, TG_SHAPE(784, 100), 0, 1, NULL), true);
    tg_sum(tg_mul(W, W));
    tg_backward(tg_sum(tg_mul(W, W)));
    tg_param_list pl = {0};
    tg_param_list_add(&pl, "w", W);
    adam = tg_adam_new(&pl, tg_adam_defaults());
    sgd = tg_sgd_new(&pl, (tg_sgd_opts){.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4});
    tg_tape_reset();
    printf("add %.1f mul %.1f relu %.1f tanh %.1f exp %.1f sum %.1f softmax %.1f fwdbwd %.1f adam "
           "%.1f sgd %.1f\n",
           best(f_add, A, 300), best(f_mul, A, 300), best(tg_relu, A, 300), best(tg_tanh, A, 100),
           best(tg_exp, A, 100), best(tg_sum, A, 300), best(f_sm, A, 100), best(f_addbwd, A, 100),
           best(f_adam, A, 200), best(f_sgd, A, 300));
}
