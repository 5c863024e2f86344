/* oneDNN's convolutions (Debian's libdnnl-dev) next to tg_conv2d on the layers of bench_conv.c,
 * in one process, float32, one thread: forward, input gradient, weight + bias gradient, each in
 * ms of thread CPU time (median of REPS after a warm-up). oneDNN is timed twice: its primitives
 * alone on the blocked layouts it picks (what a network kept in oneDNN's layouts would pay), and
 * with the reorders from and to NCHW around them (what tapegrad's NCHW tensors would pay, as
 * PyTorch's own conv2d does with plain tensors). tg_conv2d itself runs the large layers through
 * oneDNN when built with it (ops/conv_dnnl.c); TG_CONV_DNNL=0 below times its im2col path, which
 * is what this comparison is about (bench_conv -compare times both through tg_conv2d). Not part
 * of `make`; build and run it by hand:
 *     make && cc -O2 -Iinclude -I. -o build/bench/bench_dnnl bench/dnnl/bench_dnnl.c \
 *         build/libtapegrad.a -ldnnl -lgomp -lxsmm -ldl -lrt \
 *         -L/usr/lib/x86_64-linux-gnu/blis-serial -lblis -lzip -lz -lstb -lpthread -lm
 *     TG_CONV_DNNL=0 OMP_NUM_THREADS=1 build/bench/bench_dnnl [LeNet-5|AlexNet|CIFAR AlexNet] */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tapegrad.h"
#include "bench/bench_util.h"

#define REPS 7
#define CHECK(call)                                                                            \
    do {                                                                                       \
        dnnl_status_t st_ = (call);                                                            \
        if (st_ != dnnl_success) {                                                             \
            fprintf(stderr, "bench_dnnl: %s failed (status %d)\n", #call, (int)st_);          \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

#include "bench/conv_layers.h"

static dnnl_engine_t eng;
static dnnl_stream_t strm;

/* One tensor as the user holds it (plain NCHW / OIHW / x) and as the primitive wants it. */
typedef struct {
    dnnl_memory_t user, prim;
    dnnl_primitive_t to_prim, to_user;   /* NULL when the layouts agree */
} arg;

static dnnl_memory_t memory_of(const dnnl_memory_desc_t *md)
{
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
    return m;
}

static dnnl_primitive_t reorder(dnnl_memory_t from, dnnl_memory_t to)
{
    const dnnl_memory_desc_t *a, *b;
    CHECK(dnnl_memory_get_memory_desc(from, &a));
    CHECK(dnnl_memory_get_memory_desc(to, &b));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, a, eng, b, eng, NULL));
    dnnl_primitive_t p;
    CHECK(dnnl_primitive_create(&p, pd));
    dnnl_primitive_desc_destroy(pd);
    return p;
}

static arg arg_of(const_dnnl_primitive_desc_t pd, dnnl_query_t what, int index, int ndims,
                  const dnnl_dims_t dims, dnnl_format_tag_t plain)
{
    arg a = {0};
    dnnl_memory_desc_t user_md;
    CHECK(dnnl_memory_desc_init_by_tag(&user_md, ndims, dims, dnnl_f32, plain));
    const dnnl_memory_desc_t *prim_md = dnnl_primitive_desc_query_md(pd, what, index);
    a.user = memory_of(&user_md);
    float *p;
    CHECK(dnnl_memory_get_data_handle(a.user, (void **)&p));
    size_t n = dnnl_memory_desc_get_size(&user_md) / sizeof *p;
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    if (dnnl_memory_desc_equal(&user_md, prim_md)) {
        a.prim = a.user;
    } else {
        a.prim = memory_of(prim_md);
        a.to_prim = reorder(a.user, a.prim);
        a.to_user = reorder(a.prim, a.user);
    }
    return a;
}

static void run_reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to)
{
    if (!r) return;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    CHECK(dnnl_primitive_execute(r, strm, 2, args));
}

/* One primitive with up to 4 arguments; inputs reordered in before, outputs out after. */
typedef struct {
    dnnl_primitive_t prim;
    int n;
    int kind[4];
    arg a[4];
    bool is_out[4];
} step;

static void run_step(const step *s, bool with_reorders)
{
    dnnl_exec_arg_t args[4];
    for (int i = 0; i < s->n; i++) {
        if (with_reorders && !s->is_out[i]) run_reorder(s->a[i].to_prim, s->a[i].user, s->a[i].prim);
        args[i] = (dnnl_exec_arg_t){s->kind[i], s->a[i].prim};
    }
    CHECK(dnnl_primitive_execute(s->prim, strm, s->n, args));
    for (int i = 0; i < s->n; i++)
        if (with_reorders && s->is_out[i]) run_reorder(s->a[i].to_user, s->a[i].prim, s->a[i].user);
    CHECK(dnnl_stream_wait(strm));
}

static double time_step(const step *s, bool with_reorders)
{
    double t[REPS];
    run_step(s, with_reorders);
    for (int r = 0; r < REPS; r++) {
        double t0 = bench_cpu();
        run_step(s, with_reorders);
        t[r] = bench_cpu() - t0;
    }
    return bench_median(t, REPS);
}

typedef struct {
    double fwd, dx, dw;   /* seconds; dx = 0 for a first layer */
} times;

static void dnnl_layer(const layer *L, times *bare, times *nchw)
{
    int64_t oh = (L->h + 2 * L->pad - L->k) / L->stride + 1;
    int64_t ow = (L->w + 2 * L->pad - L->k) / L->stride + 1;
    dnnl_dims_t src = {L->n, L->c, L->h, L->w}, wei = {L->o, L->c, L->k, L->k}, bia = {L->o},
                dst = {L->n, L->o, oh, ow}, strides = {L->stride, L->stride},
                pad = {L->pad, L->pad};
    dnnl_memory_desc_t src_md, wei_md, bia_md, dst_md;
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 4, src, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&wei_md, 4, wei, dnnl_f32, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&bia_md, 1, bia, dnnl_f32, dnnl_x));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 4, dst, dnnl_f32, dnnl_format_tag_any));

    dnnl_convolution_desc_t fd, bd, wd;
    CHECK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct,
                                             &src_md, &wei_md, &bia_md, &dst_md, strides, pad,
                                             pad));
    dnnl_primitive_desc_t fpd, bpd, wpd;
    CHECK(dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL));
    CHECK(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &src_md,
                                                   &wei_md, &dst_md, strides, pad, pad));
    CHECK(dnnl_primitive_desc_create(&bpd, &bd, NULL, eng, fpd));
    CHECK(dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &src_md,
                                                      &wei_md, &bia_md, &dst_md, strides, pad,
                                                      pad));
    CHECK(dnnl_primitive_desc_create(&wpd, &wd, NULL, eng, fpd));

    step f = {.n = 4, .kind = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST},
              .is_out = {false, false, false, true}};
    f.a[0] = arg_of(fpd, dnnl_query_src_md, 0, 4, src, dnnl_nchw);
    f.a[1] = arg_of(fpd, dnnl_query_weights_md, 0, 4, wei, dnnl_oihw);
    f.a[2] = arg_of(fpd, dnnl_query_weights_md, 1, 1, bia, dnnl_x);
    f.a[3] = arg_of(fpd, dnnl_query_dst_md, 0, 4, dst, dnnl_nchw);
    CHECK(dnnl_primitive_create(&f.prim, fpd));

    step b = {.n = 3, .kind = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC},
              .is_out = {false, false, true}};
    b.a[0] = arg_of(bpd, dnnl_query_diff_dst_md, 0, 4, dst, dnnl_nchw);
    b.a[1] = arg_of(bpd, dnnl_query_weights_md, 0, 4, wei, dnnl_oihw);
    b.a[2] = arg_of(bpd, dnnl_query_diff_src_md, 0, 4, src, dnnl_nchw);
    CHECK(dnnl_primitive_create(&b.prim, bpd));

    step w = {.n = 4,
              .kind = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_BIAS},
              .is_out = {false, false, true, true}};
    w.a[0] = arg_of(wpd, dnnl_query_src_md, 0, 4, src, dnnl_nchw);
    w.a[1] = arg_of(wpd, dnnl_query_diff_dst_md, 0, 4, dst, dnnl_nchw);
    w.a[2] = arg_of(wpd, dnnl_query_diff_weights_md, 0, 4, wei, dnnl_oihw);
    w.a[3] = arg_of(wpd, dnnl_query_diff_weights_md, 1, 1, bia, dnnl_x);
    CHECK(dnnl_primitive_create(&w.prim, wpd));

    bare->fwd = time_step(&f, false), nchw->fwd = time_step(&f, true);
    bare->dx = nchw->dx = 0;
    if (!L->first) bare->dx = time_step(&b, false), nchw->dx = time_step(&b, true);
    bare->dw = time_step(&w, false), nchw->dw = time_step(&w, true);
}

/* tg_conv2d's forward, and its backward split into the input and weight gradients by which
 * inputs require grad. */
static void tapegrad_layer(const layer *L, times *t)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(L->n, L->c, L->h, L->w), 0, 1, &rng);
    tg_tensor *w = tg_rand_normal(TG_F32, TG_SHAPE(L->o, L->c, L->k, L->k), 0, 0.1, &rng);
    tg_tensor *b = tg_zeros(TG_F32, TG_SHAPE(L->o));
    tg_conv2d_opts opts = {.stride = {L->stride, L->stride}, .padding = {L->pad, L->pad}};
    double tf[REPS + 1], tx[REPS + 1], tw[REPS + 1];
    for (int r = 0; r <= REPS; r++) {
        for (int part = 0; part < 2; part++) {   /* 0: weight + bias gradient, 1: input's */
            tg_set_requires_grad(x, part == 1);
            tg_set_requires_grad(w, part == 0);
            tg_set_requires_grad(b, part == 0);
            double t0 = bench_cpu();
            tg_tensor *y = tg_conv2d(x, w, b, &opts);
            double t1 = bench_cpu();
            tg_tensor *loss = tg_sum(y);
            double t2 = bench_cpu();
            tg_backward(loss);   /* the sum's own backward (a fill) is included: small */
            double t3 = bench_cpu();
            tg_tape_reset();
            if (part == 0) tf[r] = t1 - t0, tw[r] = t3 - t2;
            else tx[r] = t3 - t2;
        }
    }
    t->fwd = bench_median(tf + 1, REPS), t->dw = bench_median(tw + 1, REPS);
    t->dx = L->first ? 0 : bench_median(tx + 1, REPS);
    tg_free(x), tg_free(w), tg_free(b);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    tg_set_num_threads(1);
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&strm, eng, dnnl_stream_default_flags));
    printf("oneDNN %d.%d.%d; %s\n", dnnl_version()->major, dnnl_version()->minor,
           dnnl_version()->patch, tg_blas_info());
    printf("ms, median of %d; dx: input gradient (none for a first layer), dw: weight + bias\n\n",
           REPS);
    printf("%-14s %-30s %24s %24s %24s\n", "network", "layer", "tapegrad fwd/dx/dw",
           "oneDNN bare fwd/dx/dw", "oneDNN+NCHW fwd/dx/dw");
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
        const layer *L = &layers[i];
        if (only && strcmp(only, L->net)) continue;
        times tg, bare, nchw;
        tapegrad_layer(L, &tg);
        dnnl_layer(L, &bare, &nchw);
        printf("%-14s %-30s %7.2f %7.2f %8.2f %7.2f %7.2f %8.2f %7.2f %7.2f %8.2f\n", L->net,
               L->label, tg.fwd * 1e3, tg.dx * 1e3, tg.dw * 1e3, bare.fwd * 1e3, bare.dx * 1e3,
               bare.dw * 1e3, nchw.fwd * 1e3, nchw.dx * 1e3, nchw.dw * 1e3);
        fflush(stdout);
    }
    return 0;
}
