/* bench_step's small-op, logistic-regression and MLP step figures, timed in thread CPU time
 * (the machines are shared: wall time measures the neighbours too). */
#include <time.h>
#define clock_gettime(c, t) clock_gettime(CLOCK_THREAD_CPUTIME_ID, t)
#define main bench_step_main
#include "bench/bench_step.c"
#undef main
int main(void)
{
    tg_blas_info();
    double allocs;
    printf("small %.1f logreg %.3f mlp %.2f\n", small_op_ns(), logreg_step_us(&allocs), mlp_step_us());
    return 0;
}
