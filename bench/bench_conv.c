/* GFLOP/s of tg_conv2d forward and backward (input and weight gradients, bias) in float32, one
 * thread, on LeNet-5's and AlexNet's convolution layers (a first layer computes no input
 * gradient, as in training), next to the machine's peak measured by an FMA loop in the same
 * process. bench/conv_torch.py times the same layers in PyTorch. A figure is the median of REPS
 * samples after a warm-up, in thread CPU time; the machine is shared, so compare the medians of
 * one run. Also prints heap allocations per step in steady state (expected 0).
 * Layers go to oneDNN where tg_conv2d sends them (ops/conv_dnnl.c; TG_CONV_DNNL=0: never);
 * -compare times each layer's forward, input gradient and weight + bias gradient on im2col and
 * on oneDNN, the two alternating sample by sample.
 *     build/bench/bench_conv [-quick] [-compare] [NETWORK]
 *         -quick: 3 samples, for a smoke test; NETWORK: only its layers, e.g. LeNet-5 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tapegrad.h"
#include "bench/bench_util.h"
#include "ops/conv_dnnl.h"

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

/* ---- -compare: im2col against oneDNN, per direction ---- */

typedef struct {
    double fwd, dx, dw; /* median seconds; dx = 0 for a first layer */
} parts;

/* One sample of each part: the forward, then a backward with only x (dx) or only w and b (dw)
 * requiring grad. */
static void sample_parts(const layer *L, tg_tensor *x, tg_tensor *w, tg_tensor *b, tg_tensor *g,
                         double *fwd, double *dx, double *dw)
{
    tg_conv2d_opts opts = {.stride = {L->stride, L->stride}, .padding = {L->pad, L->pad}};
    for (int part = 0; part < 2; part++) { /* 0: weight + bias gradient, 1: input's */
        if (part == 1 && L->first) break;
        tg_set_requires_grad(x, part == 1);
        tg_set_requires_grad(w, part == 0);
        tg_set_requires_grad(b, part == 0);
        double t0 = bench_cpu();
        tg_tensor *y = tg_conv2d(x, w, b, &opts);
        double t1 = bench_cpu();
        tg_tensor *loss = seeded_loss(y, g);
        double t2 = bench_cpu();
        tg_backward(loss);
        double t3 = bench_cpu();
        tg_tape_reset();
        if (part == 0) *fwd = t1 - t0, *dw = t3 - t2;
        else *dx = t3 - t2;
    }
}

static void compare_layer(const layer *L, int reps, parts *im2col, parts *dnnl)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(L->n, L->c, L->h, L->w), 0, 1, &rng);
    tg_tensor *w = tg_rand_normal(TG_F32, TG_SHAPE(L->o, L->c, L->k, L->k), 0, 0.1, &rng);
    tg_tensor *b = tg_zeros(TG_F32, TG_SHAPE(L->o));
    int64_t oh = (L->h + 2 * L->pad - L->k) / L->stride + 1;
    int64_t ow = (L->w + 2 * L->pad - L->k) / L->stride + 1;
    tg_tensor *g = tg_rand_normal(TG_F32, TG_SHAPE(L->n, L->o, oh, ow), 0, 1, &rng);
    double t[2][3][REPS + 1] = {{{0}}};
    for (int r = 0; r <= reps; r++) /* sample 0 is the warm-up */
        for (int m = 0; m < 2; m++) {
            tg__conv_dnnl_set_mode(m ? TG_DNNL_ALL : TG_DNNL_OFF);
            sample_parts(L, x, w, b, g, &t[m][0][r], &t[m][1][r], &t[m][2][r]);
        }
    tg__conv_dnnl_set_mode(TG_DNNL_AUTO);
    parts *out[2] = {im2col, dnnl};
    for (int m = 0; m < 2; m++)
        *out[m] = (parts){bench_median(t[m][0] + 1, reps), bench_median(t[m][1] + 1, reps),
                          bench_median(t[m][2] + 1, reps)};
    tg_free(x), tg_free(w), tg_free(b), tg_free(g);
}

static int compare(const char *only, int reps)
{
    if (!tg__conv_dnnl_threads()) {
        fprintf(stderr, "bench_conv: -compare needs tapegrad built with oneDNN (make DNNL=1)\n");
        return 2;
    }
    printf("ms, median of %d, im2col and oneDNN alternating; dx: input gradient (none for a "
           "first layer), dw: weight + bias gradient; oneDNN on %d thread(s)\n\n", reps,
           tg__conv_dnnl_threads());
    printf("%-14s %-30s %26s %26s %17s\n", "network", "layer (batch)", "im2col fwd / dx / dw",
           "oneDNN fwd / dx / dw", "im2col/oneDNN");
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
        const layer *L = &layers[i];
        if (only && strcmp(only, L->net)) continue;
        parts a, d;
        compare_layer(L, reps, &a, &d);
        char label[64];
        snprintf(label, sizeof label, "%s (%lld)", L->label, (long long)L->n);
        printf("%-14s %-30s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %5.2f %5.2f %5.2f\n", L->net,
               label, a.fwd * 1e3, a.dx * 1e3, a.dw * 1e3, d.fwd * 1e3, d.dx * 1e3, d.dw * 1e3,
               a.fwd / d.fwd, L->first ? 0 : a.dx / d.dx, a.dw / d.dw);
        fflush(stdout);
    }
    return 0;
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
    bool both = false;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "-quick")) reps = 3;
        else if (!strcmp(argv[a], "-compare")) both = true;
        else only = argv[a];
    }
    tg_set_num_threads(1);
    printf("%s\n", tg_blas_info());
    if (both) return compare(only, reps);
    if (tg__conv_dnnl_mode() != TG_DNNL_OFF && tg__conv_dnnl_threads())
        printf("conv: oneDNN for the large float32 layers (%d thread(s))\n",
               tg__conv_dnnl_threads());
    else
        printf("conv: im2col + GEMM for every layer\n");
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
