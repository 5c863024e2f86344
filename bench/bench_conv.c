/* GFLOP/s of tg_conv2d forward and backward (input and weight gradients, bias) in float32, one
 * thread, on LeNet-5's and AlexNet's convolution layers (a first layer computes no input
 * gradient, as in training), next to the machine's peak measured by an FMA loop in the same
 * process. bench/conv_torch.py times the same layers in PyTorch. A figure is the median of REPS
 * samples after a warm-up, in thread CPU time; the machine is shared, so compare the medians of
 * one run. Also prints heap allocations per step in steady state (expected 0).
 *     build/bench/bench_conv [-quick] [NETWORK]   (-quick: 3 samples, for a smoke test;
 *                                                  NETWORK: only its layers, e.g. LeNet-5) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tapegrad.h"
#include "bench/bench_util.h"

#define REPS 7

#include "bench/conv_layers.h"

/* ---- one layer ---- */

/* loss = <y, G> for a fixed G, as an op whose backward only adds G into y's gradient: the conv's
 * backward is then timed alone (tg_backward_with seeds element by element, and an elementwise
 * tg_mul would add its own cost). Its forward value is not needed and not computed. */
static void seed_backward(const tg_node *node)
{
    const tg_tensor *G = *(tg_tensor *const *)node->saved;
    float *gy = tg_op_grad(node->in[0]);
    const float *g = G->data, s = *(const float *)tg_op_grad_out(node);
    for (int64_t i = 0; i < G->numel; i++) gy[i] += s * g[i];
}
static const tg_op seed_op = {"bench seed", seed_backward, NULL};

static tg_tensor *seeded_loss(tg_tensor *y, tg_tensor *G)
{
    tg_tensor *loss = tg_op_output(TG_F32, 0, NULL);
    *(float *)loss->data = 0;
    tg_node *node = tg_op_record(&seed_op, loss, 1, &y, sizeof G);
    if (node) *(tg_tensor **)node->saved = G;
    return loss;
}

typedef struct {
    double fwd, bwd;      /* median seconds */
    uint64_t allocs;      /* heap allocations of the last (steady-state) sample */
} timing;

static timing time_layer(const layer *L, int reps)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *x = tg_set_requires_grad(
        tg_rand_normal(TG_F32, TG_SHAPE(L->n, L->c, L->h, L->w), 0, 1, &rng), !L->first);
    tg_tensor *w = tg_set_requires_grad(
        tg_rand_normal(TG_F32, TG_SHAPE(L->o, L->c, L->k, L->k), 0, 0.1, &rng), true);
    tg_tensor *b = tg_set_requires_grad(tg_zeros(TG_F32, TG_SHAPE(L->o)), true);
    tg_conv2d_opts opts = {.stride = {L->stride, L->stride}, .padding = {L->pad, L->pad}};
    tg_tensor *y = tg_conv2d(x, w, b, &opts);
    tg_tensor *g = tg_rand_normal(TG_F32, y->ndim, y->shape, 0, 1, &rng);
    tg_tape_reset();
    double tf[REPS + 1], tb[REPS + 1];
    timing t = {0};
    for (int r = 0; r <= reps; r++) { /* sample 0 is the warm-up */
        uint64_t a0 = tg_alloc_count();
        double t0 = bench_cpu();
        y = tg_conv2d(x, w, b, &opts);
        double t1 = bench_cpu();
        tg_tensor *loss = seeded_loss(y, g);
        double t1b = bench_cpu();
        tg_backward(loss);
        double t2 = bench_cpu();
        tg_tape_reset();
        tf[r] = t1 - t0, tb[r] = t2 - t1b;
        t.allocs = tg_alloc_count() - a0;
    }
    t.fwd = bench_median(tf + 1, reps);
    t.bwd = bench_median(tb + 1, reps);
    tg_free(x), tg_free(w), tg_free(b), tg_free(g);
    return t;
}

static double layer_flop(const layer *L)
{
    int64_t oh = (L->h + 2 * L->pad - L->k) / L->stride + 1;
    int64_t ow = (L->w + 2 * L->pad - L->k) / L->stride + 1;
    return 2.0 * (double)(L->n * L->o * oh * ow * L->c * L->k * L->k);
}

static void print_total(const char *net, const double *seconds, const double *flop, double peak)
{
    double gf = flop[0] / seconds[0] * 1e-9, gb = flop[1] / seconds[1] * 1e-9;
    printf("%-14s %-30s %9.2f %9.1f %5.1f%% %9.2f %9.1f %5.1f%%\n", net, "all layers",
           seconds[0] * 1e3, gf, 100 * gf / peak, seconds[1] * 1e3, gb, 100 * gb / peak);
}

int main(int argc, char **argv)
{
    int reps = REPS;
    const char *only = NULL;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "-quick")) reps = 3;
        else only = argv[a];
    }
    tg_set_num_threads(1);
    printf("%s\n", tg_blas_info());
    double peak = bench_peak_gflops(1, reps < REPS ? 2000000L : 20000000L);
    printf("peak fp32 (FMA loop, %d-bit vectors): %.1f GFLOP/s on 1 core\n\n", BENCH_LANES * 32,
           peak);
    printf("%-14s %-30s %9s %9s %6s %9s %9s %6s %7s\n", "network", "layer (batch)", "fwd ms",
           "GFLOP/s", "%peak", "bwd ms", "GFLOP/s", "%peak", "allocs");
    double total[2] = {0}, flops[2] = {0};
    const char *net = NULL;
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
        const layer *L = &layers[i];
        if (only && strcmp(only, L->net)) continue;
        if (net && strcmp(net, L->net)) {
            print_total(net, total, flops, peak);
            total[0] = total[1] = flops[0] = flops[1] = 0;
        }
        net = L->net;
        timing t = time_layer(L, reps);
        double f = layer_flop(L), fb = L->first ? f : 2 * f;
        double gf = f / t.fwd * 1e-9, gb = fb / t.bwd * 1e-9;
        char label[64];
        snprintf(label, sizeof label, "%s (%lld)", L->label, (long long)L->n);
        printf("%-14s %-30s %9.2f %9.1f %5.1f%% %9.2f %9.1f %5.1f%% %7llu\n", L->net, label,
               t.fwd * 1e3, gf, 100 * gf / peak, t.bwd * 1e3, gb, 100 * gb / peak,
               (unsigned long long)t.allocs);
        total[0] += t.fwd, total[1] += t.bwd, flops[0] += f, flops[1] += fb;
    }
    if (!net) {
        fprintf(stderr, "bench_conv: no network named '%s' (LeNet-5, AlexNet, CIFAR AlexNet)\n",
                only);
        return 2;
    }
    print_total(net, total, flops, peak);
    printf("\n(backward = input + weight + bias gradients, 2x the forward's FLOPs; weight + bias "
           "only for conv1, whose input is data; medians of %d samples)\n", reps);
    return 0;
}
