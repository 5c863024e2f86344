/* tapegrad nn: modules, initialisation, parameter lists, safetensors files (optimizers and
 * checkpoints: optim.h).
 *
 * A module is a plain C struct that starts with a tg_module. The library's modules (Linear,
 * activations, Dropout, Sequential, FeedforwardNetwork) are built the same way a user's own
 * module is:
 *
 *     typedef struct { tg_module base; tg_module *fc1, *fc2; tg_tensor *scale; } my_net;
 *
 *     static tg_tensor *my_forward(tg_module *self, tg_tensor *x)
 *     {
 *         my_net *n = (my_net *)self;
 *         x = tg_relu(tg_module_forward(n->fc1, x));
 *         return tg_mul(tg_module_forward(n->fc2, x), n->scale);
 *     }
 *
 *     tg_init init = tg_init_pytorch();
 *     my_net *n = tg_module_new(sizeof *n, "MyNet", my_forward);
 *     n->fc1 = tg_module_add_child(&n->base, "fc1", tg_linear_new(4, 8, true, init, rng));
 *     n->fc2 = tg_module_add_child(&n->base, "fc2", tg_linear_new(8, 2, true, init, rng));
 *     n->scale = tg_module_add_param(&n->base, "scale", tg_ones(TG_F32, TG_SHAPE(1)));
 *     ...
 *     tg_module_free(&n->base);   // frees fc1, fc2, every parameter and n itself
 *
 * Ownership: a module owns its parameters (persistent tensors) and its children; tg_module_free
 * releases the whole tree once, even when a parameter or child is registered in two places
 * (weight tying). Module structs are heap blocks (tg_module_new, or calloc + tg_module_init) and
 * are released with free(). Names are copied.
 *
 * Programming errors (a NULL module, a duplicate or dotted name, a shape mismatch) go to the
 * error handler of core.h; file and value errors (checkpoints, an unknown activation name) return
 * a tg_status whose message names the file and the tensor. */
#ifndef TG_NN_H
#define TG_NN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "conv.h"
#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- modules ------------------------------------------------------------------------------ */
typedef struct tg_module tg_module;
typedef tg_tensor *(*tg_forward_fn)(tg_module *self, tg_tensor *x);

struct tg_module {
    const char *kind;            /* "Linear", "ReLU", "MyNet"...; not copied (use a literal) */
    tg_forward_fn forward;
    /* Optional: releases what the module allocated beyond its parameters and children (called
     * before those are freed, so they are still readable). NULL when there is nothing extra. */
    void (*destroy)(tg_module *self);
    /* Optional: the text inside the parentheses of tg_module_print, e.g. "in=4, out=8". */
    void (*describe)(const tg_module *self, char *buf, size_t len);

    /* Registered with tg_module_add_param / tg_module_add_child; read freely, do not edit. */
    int n_params;
    tg_tensor **params;
    char **param_names;
    int n_children;
    tg_module **children;
    char **child_names;

    bool training;               /* true after init (PyTorch's default); see tg_module_train */
    int cap_params, cap_children;

    /* Registered with tg_module_add_buffer (state that is saved but not trained). */
    int n_buffers;
    tg_tensor **buffers;
    char **buffer_names;
    int cap_buffers;
};

/* Initialises a module header in caller-allocated memory (zeroed fields, training = true). */
void tg_module_init(tg_module *m, const char *kind, tg_forward_fn forward);
/* calloc(size) + tg_module_init: size is that of the struct embedding tg_module (its first
 * member). Returns the block, to be cast to the embedding struct. */
void *tg_module_new(size_t size, const char *kind, tg_forward_fn forward);
/* Registers a persistent float tensor as a parameter: the module takes ownership, sets
 * requires_grad and names the tensor (t->name points to the module's copy of name). Names
 * contain no '.', are unique among a module's parameters and children. Returns t. */
tg_tensor *tg_module_add_param(tg_module *m, const char *name, tg_tensor *t);
/* Registers a child module (ownership passes to m). Returns child. */
tg_module *tg_module_add_child(tg_module *m, const char *name, tg_module *child);
/* Registers a persistent tensor of any dtype as a buffer (register_buffer): state the module
 * keeps and checkpoints save, but that is not trained: requires_grad stays false and
 * tg_module_parameters does not list it, so optimizers never see it (batch norm's running
 * statistics). Ownership and names as for parameters; names are unique among a module's
 * parameters, buffers and children. Returns t. */
tg_tensor *tg_module_add_buffer(tg_module *m, const char *name, tg_tensor *t);

tg_tensor *tg_module_forward(tg_module *m, tg_tensor *x);
void tg_module_train(tg_module *m, bool training);   /* recursive, like model.train(mode) */
void tg_module_eval(tg_module *m);                   /* tg_module_train(m, false) */
void tg_module_free(tg_module *m);                   /* recursive; NULL is fine */
void tg_module_zero_grad(tg_module *m);              /* tg_zero_grad on every parameter */
int64_t tg_module_num_parameters(tg_module *m);      /* elements, each shared tensor once */
/* Parameter, buffer and child by dotted path ("layers.0.weight", "bn.running_mean",
 * "layers.3"); NULL if absent. */
tg_tensor *tg_module_param(tg_module *m, const char *path);
tg_tensor *tg_module_buffer(tg_module *m, const char *path);
tg_module *tg_module_child(tg_module *m, const char *path);
/* PyTorch-style tree: "FeedforwardNetwork(\n  (layers): Sequential(\n    (0): Linear(...". */
void tg_module_print(const tg_module *m, FILE *out);

/* ---- parameter lists ----------------------------------------------------------------------
 * Named tensors, borrowed (the list never frees a tensor). Zero-initialise before first use:
 *     tg_param_list ps = {0}; tg_module_parameters(model, &ps); ... tg_param_list_free(&ps); */
typedef struct {
    int n;
    tg_tensor **tensors;
    char **names;            /* dotted: "layers.0.weight" (owned by the list) */
    int cap;
} tg_param_list;

/* Replaces the list's contents with m's parameters in registration order, depth first (a
 * module's own parameters, then each child's), each tensor once, like named_parameters(). */
void tg_module_parameters(tg_module *m, tg_param_list *out);
/* The same for buffers ("bn.running_mean", ...), like named_buffers(). */
void tg_module_buffers(tg_module *m, tg_param_list *out);
/* Everything a checkpoint holds, in state_dict() order: per module its parameters, then its
 * buffers, then each child's state ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
 * "bn.running_var", "bn.num_batches_tracked", ...), each tensor once. */
void tg_module_state(tg_module *m, tg_param_list *out);
void tg_param_list_add(tg_param_list *l, const char *name, tg_tensor *t); /* name copied */
tg_tensor *tg_param_list_find(const tg_param_list *l, const char *name);  /* NULL if absent */
void tg_param_list_clear(tg_param_list *l);                               /* keeps capacity */
void tg_param_list_free(tg_param_list *l);                                /* back to {0} */

/* ---- initialisation ------------------------------------------------------------------------ */
typedef enum {
    TG_INIT_PYTORCH = 0,     /* weight and bias U(-1/sqrt(in), 1/sqrt(in)) (nn.Linear default) */
    TG_INIT_NORMAL,          /* weight N(mean, std^2), bias 0 */
    TG_INIT_XAVIER_UNIFORM,  /* weight U(±gain·sqrt(6/(in+out))), gain 1 unless set; bias 0 */
    TG_INIT_KAIMING_NORMAL,  /* weight N(0, gain^2/in), gain sqrt(2) (ReLU) unless set; bias 0 */
    TG_INIT_ZEROS,           /* weight 0, bias 0 */
    TG_INIT_VALUES,          /* weight and bias copied from the caller's arrays */
} tg_init_kind;

typedef struct {
    tg_init_kind kind;
    tg_dtype dtype;          /* TG_F32 (0, the default) or TG_F64 */
    double mean, std;        /* TG_INIT_NORMAL */
    double gain;             /* Xavier / Kaiming; 0 means the default above */
    const double *weight;    /* TG_INIT_VALUES: [out*in] row-major ([out, in]) */
    const double *bias;      /* TG_INIT_VALUES: [out], or NULL for zeros */
} tg_init;

static inline tg_init tg_init_pytorch(void) { return (tg_init){.kind = TG_INIT_PYTORCH}; }
static inline tg_init tg_init_normal(double mean, double std)
{
    return (tg_init){.kind = TG_INIT_NORMAL, .mean = mean, .std = std};
}
static inline tg_init tg_init_xavier_uniform(void)
{
    return (tg_init){.kind = TG_INIT_XAVIER_UNIFORM};
}
static inline tg_init tg_init_kaiming_normal(void)
{
    return (tg_init){.kind = TG_INIT_KAIMING_NORMAL};
}
static inline tg_init tg_init_zeros(void) { return (tg_init){.kind = TG_INIT_ZEROS}; }
static inline tg_init tg_init_values(const double *weight, const double *bias)
{
    return (tg_init){.kind = TG_INIT_VALUES, .weight = weight, .bias = bias};
}
/* Same initialiser in float64: tg_init_f64(tg_init_normal(0, 1)). */
static inline tg_init tg_init_f64(tg_init init) { init.dtype = TG_F64; return init; }

/* Fills an existing [out, in] weight (and [out] bias, may be NULL) in place; rng NULL = global.
 * Draws the weight first, then the bias, element by element in row-major order. */
void tg_init_linear_(tg_tensor *weight, tg_tensor *bias, tg_init init, tg_rng *rng);

/* ---- library modules ----------------------------------------------------------------------- */
/* y = x·Wᵀ + b, W [out, in] ("weight"), b [out] ("bias", only when bias is true). */
tg_module *tg_linear_new(int64_t in_features, int64_t out_features, bool bias, tg_init init,
                         tg_rng *rng);
tg_tensor *tg_linear_weight(tg_module *linear);
tg_tensor *tg_linear_bias(tg_module *linear);          /* NULL without bias */
/* Sets the weights by hand (row-major [out, in] and [out]; bias may be NULL to leave it). */
void tg_linear_set(tg_module *linear, const double *weight, const double *bias);

tg_module *tg_relu_new(void);
tg_module *tg_tanh_new(void);
tg_module *tg_sigmoid_new(void);
tg_module *tg_square_new(void);                 /* g(z) = z² */
tg_module *tg_identity_new(void);
/* By name: "relu", "tanh", "sigmoid", "square", "identity". Unknown names return NULL with
 * TG_ERR_VALUE in tg_status_message(). The _fn variant returns the op itself (tg_relu, ...). */
tg_module *tg_activation_new(const char *name);
typedef tg_tensor *(*tg_activation_fn)(tg_tensor *x);
tg_activation_fn tg_activation_fn_by_name(const char *name);

/* Inverted dropout with probability p in [0, 1), active only while the module is training.
 * Masks come from rng (NULL: the global generator, read at every forward). The module keeps the
 * pointer: rng must outlive it (not a local of the function that builds the model). */
tg_module *tg_dropout_new(double p);
tg_module *tg_dropout_new_rng(double p, tg_rng *rng);

/* Children "0", "1", ...; forward applies them in order. */
tg_module *tg_sequential_new(int n, ...);                       /* n tg_module* arguments */
tg_module *tg_sequential_from(int n, tg_module *const *modules);
tg_module *tg_sequential_append(tg_module *seq, tg_module *m);  /* returns m */

/* A feed-forward classifier (an MLP with dropout): child "layers" = Sequential of
 * [Linear(in, hidden), act, Dropout(p)] × layers, then Linear(hidden, n_classes); with layers
 * == 0 just Linear(n_features, n_classes). Parameters: layers.0.weight, layers.0.bias, layers.3...
 * activation is "relu" or "tanh" (any name of tg_activation_new); an unknown name returns NULL
 * with TG_ERR_VALUE. Dropout masks use rng too, so rng must outlive the module. */
tg_module *tg_feedforward_new(int64_t n_features, int64_t n_classes, int64_t hidden_size,
                              int layers, const char *activation, double dropout, tg_init init,
                              tg_rng *rng);

/* ---- safetensors files ------------------------------------------------------------------------
 * File format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length
 * N, N bytes of JSON {name: {"dtype": "F32"|"F64"|"I32", "shape": [...], "data_offsets": [b, e]},
 * "__metadata__": {string: string}} padded with spaces to a multiple of 8, then the raw
 * little-endian data; offsets are relative to the data section, contiguous and cover it exactly.
 *
 * Writes are atomic: the file is written to "<path>.tmp", flushed, fsync'ed and renamed over
 * path, so a failed save leaves an existing file intact. Loads validate the whole file (header
 * size, JSON, dtypes, shapes, offsets, missing or unexpected tensors) before copying anything:
 * on any error the destination tensors are untouched and the message names the file and the
 * tensor. Checkpoints (optim.h) are such files. */

/* Named tensors + optional metadata (n_meta key/value strings). */
tg_status tg_safetensors_save(const char *path, const tg_param_list *tensors, int n_meta,
                              const char *const *meta_keys, const char *const *meta_values);
/* Strict load into existing tensors: every listed name must be present with the same dtype and
 * shape, and the file must hold nothing else. File dtypes F32, F64, I32 and I64 load into tensors
 * of that dtype; F16 and BF16 into F32 tensors, widened exactly. */
tg_status tg_safetensors_load(const char *path, const tg_param_list *tensors);

/* What a non-strict load could not match, as PyTorch's load_state_dict(strict=False) reports. */
typedef struct {
    int n_missing, n_unexpected;
    char **missing;      /* listed but not in the file: left as they were */
    char **unexpected;   /* in the file but not listed: ignored */
} tg_load_report;
/* Non-strict load: every listed tensor the file holds is loaded; the others are named in
 * report (may be NULL; free it with tg_load_report_free). A tensor present in both with another
 * dtype or shape is still an error, and then nothing is loaded. */
tg_status tg_safetensors_load_nonstrict(const char *path, const tg_param_list *tensors,
                                        tg_load_report *report);
void tg_load_report_free(tg_load_report *report);   /* back to {0} */

/* ---- image modules (the ops are in conv.h) ---------------------------------------------------
 * NCHW inputs, PyTorch's layers and default initialisation:
 *
 *     tg_module *net = tg_sequential_new(4,
 *         tg_conv2d_new(1, 6, 5, &(tg_conv2d_opts){.padding = {2, 2}}, true, tg_init_pytorch(),
 *                       &rng),
 *         tg_batch_norm2d_new(6, NULL), tg_relu_new(),
 *         tg_max_pool2d_new(&(tg_pool2d_opts){.kernel = {2, 2}}));
 */

/* Conv2d(in, out, kernel x kernel) with opts' stride, padding, dilation, groups (NULL: defaults);
 * weight [out, in/groups, k, k], bias [out] when bias is set. tg_init_pytorch() is nn.Conv2d's
 * default: kaiming_uniform(a=√5) weights and U(±1/√fan_in) bias, fan_in = in/groups·k². The
 * other initialisers of tg_init use PyTorch's conv fans (fan_out = out·k² for Xavier);
 * TG_INIT_VALUES reads the weight in [out, in/groups, k, k] order. */
tg_module *tg_conv2d_new(int64_t in_channels, int64_t out_channels, int kernel,
                         const tg_conv2d_opts *opts, bool bias, tg_init init, tg_rng *rng);

/* MaxPool2d / AvgPool2d with opts (kernel required; stride 0 = the kernel), and
 * AdaptiveAvgPool2d((out_h, out_w)); no parameters. */
tg_module *tg_max_pool2d_new(const tg_pool2d_opts *opts);
tg_module *tg_avg_pool2d_new(const tg_pool2d_opts *opts);
tg_module *tg_adaptive_avg_pool2d_new(int64_t out_h, int64_t out_w);
/* Flatten(start_dim, end_dim): nn.Flatten() is tg_flatten_new(1, -1). */
tg_module *tg_flatten_new(int start_axis, int end_axis);

/* Batch normalisation over axis 1: BatchNorm1d takes [N, C] or [N, C, L], BatchNorm2d
 * [N, C, H, W]. Parameters weight (ones) and bias (zeros) unless no_affine; buffers running_mean
 * (zeros), running_var (ones) and num_batches_tracked (I64 scalar, 0) unless no_running_stats.
 * While training (tg_module_train): batch statistics, running statistics updated with momentum
 * (unbiased variance), num_batches_tracked += 1 per forward; in eval mode: the running
 * statistics. Zero fields are PyTorch's defaults (eps 1e-5, momentum 0.1, float32);
 * cumulative is PyTorch's momentum=None: the running statistics are the plain average over every
 * training batch so far (momentum 1/num_batches_tracked). */
typedef struct {
    double eps;              /* 0: 1e-5 */
    double momentum;         /* 0: 0.1; in (0, 1] */
    bool no_affine;          /* affine=False */
    bool no_running_stats;   /* track_running_stats=False: batch statistics in eval mode too */
    bool cumulative;         /* momentum=None; momentum is then ignored */
    tg_dtype dtype;          /* TG_F32 (default) or TG_F64 */
} tg_batch_norm_opts;

tg_module *tg_batch_norm1d_new(int64_t num_features, const tg_batch_norm_opts *opts);
tg_module *tg_batch_norm2d_new(int64_t num_features, const tg_batch_norm_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
