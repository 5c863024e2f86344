/* tapegrad core: tensors, the define-by-run tape, ops, gradient checking.
 *
 * Ownership in one paragraph: tensors made by the creation functions below (tg_zeros, tg_from_data,
 * ...) are *persistent*: parameters, data, constants; the caller frees them with tg_free. Every
 * tensor an op returns is an *intermediate*: it lives in the tape's arena and is released, with
 * every other intermediate and the tape itself, by one call to tg_tape_reset(). Never free an
 * intermediate by hand. Gradients of persistent tensors are owned by the tensor (allocated on the
 * first backward, kept across steps); gradients of intermediates live in the arena. */
#ifndef TG_CORE_H
#define TG_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TG_MAX_DIMS 6

/* TG_I64 holds data (safetensors int64, e.g. batch norm's num_batches_tracked): element access,
 * conversion, printing and files; ops take float tensors (and I32 labels or indices) only. */
typedef enum { TG_F32 = 0, TG_F64 = 1, TG_I32 = 2, TG_I64 = 3 } tg_dtype;

typedef struct tg_tensor tg_tensor;
typedef struct tg_node tg_node;

struct tg_tensor {
    uint32_t magic;          /* TG_MAGIC_LIVE while usable; ops refuse anything else */
    uint32_t generation;     /* intermediates: the step that made it (a later step refuses it) */
    tg_dtype dtype;
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    int64_t numel;
    void *data;              /* contiguous, row-major */
    tg_tensor *grad;         /* same dtype and shape; NULL until a backward reaches it */
    bool requires_grad;
    bool persistent;         /* true: owned by the caller (tg_free); false: owned by the tape */
    bool owns_data;          /* false for tg_wrap'ed buffers */
    /* Set on a gradient by tg_zero_grad: this tensor reads as zero but its data was not cleared.
     * The next backward's write overwrites it; tg_get_grad, the element accessors, tg_fill_ and
     * tg_copy_ honour it. A tensor assigned to ->grad by hand starts without it. */
    bool zero_pending;
    tg_node *node;           /* the tape record that produced it, or NULL */
    const char *name;        /* optional, for printing, DOT output and error messages */
    /* Set on a parameter by tg_optimizer_set_in_backward (include/tg/optim.h): its optimizer's
     * bookkeeping for updates made during tg_backward. NULL otherwise; never set it by hand. */
    struct tg_in_backward *in_backward;
};

#define TG_MAGIC_LIVE 0x7467746eu /* "tgtn" */

/* Shape literal: tg_zeros(TG_F32, TG_SHAPE(3, 4)) passes ndim = 2 and shape = {3, 4}. */
#define TG_SHAPE(...) \
    (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

/* ---- errors -------------------------------------------------------------------------------
 * Programming errors (shape/dtype mismatch, backward of a non-scalar without an output gradient,
 * use of a released intermediate) call the error handler with a message naming the op and the
 * shapes. The default handler prints to stderr and aborts. A replacement must not return (it may
 * longjmp or exit); if it does return, tapegrad aborts. */
typedef void (*tg_error_handler)(const char *message, void *user_data);
tg_error_handler tg_set_error_handler(tg_error_handler handler, void *user_data);
void *tg_error_handler_data(void);  /* the user_data of the installed handler */
const char *tg_last_error(void); /* the last programming-error message (for tests) */

/* Input errors (files, labels, command-line values) are returned as a status instead; the
 * message, naming the file or flag, is read with tg_status_message(). */
typedef enum { TG_OK = 0, TG_ERR_IO, TG_ERR_FORMAT, TG_ERR_VALUE, TG_ERR_NOMEM } tg_status;
const char *tg_status_message(void);
tg_status tg_status_set(tg_status code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- randomness ---------------------------------------------------------------------------
 * xoshiro256** seeded through splitmix64. One generator behind every random choice; the same
 * seed gives bit-identical runs. NULL wherever a tg_rng* is taken means the global generator. */
typedef struct { uint64_t s[4]; } tg_rng;
void tg_rng_seed(tg_rng *rng, uint64_t seed);
uint64_t tg_rng_next(tg_rng *rng);
double tg_rng_uniform(tg_rng *rng);                /* [0, 1) */
double tg_rng_normal(tg_rng *rng);                 /* N(0, 1) */
uint64_t tg_rng_below(tg_rng *rng, uint64_t n);    /* uniform in [0, n) without modulo bias */
void tg_rng_shuffle(tg_rng *rng, int64_t *items, int64_t n);
tg_rng *tg_global_rng(void);
void tg_manual_seed(uint64_t seed);                /* seeds the global generator */

/* ---- library information and threads ------------------------------------------------------ */
/* Semantic versioning: the major number is the shared library's soname (libtapegrad.so.0).
 * tg_version() is the library a program runs with, TG_VERSION_STRING the header it compiled
 * against. */
#define TG_VERSION_MAJOR 0
#define TG_VERSION_MINOR 2
#define TG_VERSION_PATCH 0
#define TG_VERSION_STRING "0.2.0"
const char *tg_version(void);
/* e.g. "BLIS 0.9.0 (serial), kernels skx [auto: avx512f], 1 thread" */
const char *tg_blas_info(void);
/* Which BLIS kernel set to pick when the user has not set BLIS_ARCH_TYPE. BLIS uses one set per
 * process, fixed when it initialises (first product or tg_blas_info call; tg_set_num_threads does
 * not initialise it). TG_BLAS_AUTO (the default) and TG_BLAS_LARGE_PRODUCTS: skx on AVX-512 CPUs
 * (faster on large products), haswell on AVX2 ones. TG_BLAS_SMALL_PRODUCTS: haswell wherever
 * AVX2+FMA exist (faster on small products such as a batch-16 MLP's, slower on large ones; a
 * program picks it when its products are small, e.g. batch × layer width <= 4096). Returns
 * false and changes nothing once BLIS is initialised, or when BLIS_ARCH_TYPE is set (the
 * user's choice wins). The measurements behind these choices: docs/blas.md. */
typedef enum { TG_BLAS_AUTO = 0, TG_BLAS_SMALL_PRODUCTS, TG_BLAS_LARGE_PRODUCTS } tg_blas_workload;
bool tg_blas_prefer(tg_blas_workload workload);
void tg_set_num_threads(int n);    /* threads for large matrix products (default 1) */
int tg_get_num_threads(void);

/* ---- persistent tensors (caller frees with tg_free) ---------------------------------------- */
size_t tg_dtype_size(tg_dtype dtype);
const char *tg_dtype_name(tg_dtype dtype);
tg_tensor *tg_zeros(tg_dtype dtype, int ndim, const int64_t *shape);
tg_tensor *tg_ones(tg_dtype dtype, int ndim, const int64_t *shape);
tg_tensor *tg_full(tg_dtype dtype, int ndim, const int64_t *shape, double value);
tg_tensor *tg_from_data(tg_dtype dtype, int ndim, const int64_t *shape, const void *data);
tg_tensor *tg_wrap(tg_dtype dtype, int ndim, const int64_t *shape, void *data); /* borrows */
tg_tensor *tg_arange(tg_dtype dtype, double start, double stop, double step);
tg_tensor *tg_rand_uniform(tg_dtype dtype, int ndim, const int64_t *shape, double lo, double hi,
                           tg_rng *rng);
tg_tensor *tg_rand_normal(tg_dtype dtype, int ndim, const int64_t *shape, double mean,
                          double std, tg_rng *rng);
tg_tensor *tg_clone(const tg_tensor *t);             /* persistent deep copy of data */
tg_tensor *tg_to_dtype(const tg_tensor *t, tg_dtype dtype); /* persistent converted copy */
void tg_free(tg_tensor *t);                          /* persistent tensors only; NULL is fine */

tg_tensor *tg_set_requires_grad(tg_tensor *t, bool requires_grad); /* returns t */
tg_tensor *tg_set_name(tg_tensor *t, const char *name);            /* returns t; name not copied */
/* Gradients are zeroed lazily: the gradient reads as zero (PyTorch's set_to_none=False: the
 * buffer stays), but tg_zero_grad only marks t->grad (zero_pending), and the first backward
 * that reaches t writes its gradient over the buffer instead of adding to zeros, saving a pass
 * over the memory. Until that write (for a tensor the backward does not reach: until a reader
 * settles it), t->grad->data holds stale values: read or write a gradient through tg_get_grad,
 * or the element accessors and tg_fill_/tg_copy_, which honour the mark. The library's own
 * readers (optimizers, gradient checking, data-parallel reduction) do; after a backward reached
 * t, t->grad->data is the gradient itself. A tensor assigned to t->grad by hand is used as it is. */
void tg_zero_grad(tg_tensor *t);             /* t->grad, if present, reads as zero from now */
/* t's gradient, with the zeros tg_zero_grad left pending written into its buffer (so it writes
 * memory: not for a tensor another thread is using); NULL when no backward has reached t. */
tg_tensor *tg_get_grad(tg_tensor *t);
void tg_copy_(tg_tensor *dst, const tg_tensor *src); /* same shape; converts dtype */
void tg_fill_(tg_tensor *t, double value);

/* Element access (any dtype, read and written as double). */
double tg_item(const tg_tensor *t);                        /* one-element tensors */
double tg_get(const tg_tensor *t, const int64_t *index);   /* index has t->ndim entries */
void tg_set(tg_tensor *t, const int64_t *index, double value);
double tg_get_flat(const tg_tensor *t, int64_t i);
void tg_set_flat(tg_tensor *t, int64_t i, double value);
bool tg_same_shape(const tg_tensor *a, const tg_tensor *b);
size_t tg_nbytes(const tg_tensor *t);                      /* numel · element size */
/* "[2, 3] f32" style shape string in a caller buffer; returns buf. */
char *tg_shape_str(const tg_tensor *t, char *buf, size_t len);
void tg_print(const tg_tensor *t, FILE *out);   /* readable, summarised for large tensors */

/* ---- the tape ------------------------------------------------------------------------------ */
void tg_backward(tg_tensor *loss);                                 /* loss has one element */
void tg_backward_with(tg_tensor *output, const tg_tensor *grad_output);
/* The functional gradient (torch.autograd.grad): grads[i] = d output / d inputs[i], returned as
 * intermediates of the step; no tensor's ->grad is touched. grad_output (NULL for a scalar
 * output) weights the output's elements (a vector-Jacobian product). With create_graph the
 * gradient computation is itself recorded, so grads can be differentiated again (any order; an
 * op without a differentiable backward then fails naming itself). An input the output does not
 * depend on gets zeros. */
void tg_grad(tg_tensor *output, tg_tensor *grad_output, int n, tg_tensor *const *inputs,
             tg_tensor **grads, bool create_graph);
void tg_tape_reset(void);         /* releases every intermediate and record of the step */
/* The tape and its arena are per thread and kept for the next step; a thread that ran ops calls
 * tg_tape_free() before it exits to return that memory (the main thread need not). It implies
 * tg_tape_reset(); the thread may record again afterwards. */
void tg_tape_free(void);
/* Called by tg_backward (not tg_grad) after each record's backward, on its thread: data-parallel
 * training (include/tg/dist.h) starts reducing a parameter's gradient once the sweep has passed
 * the parameter's last use. NULL removes it. */
typedef void (*tg_backward_hook)(const tg_node *node, void *user_data);
void tg_set_backward_hook(tg_backward_hook hook, void *user_data);
bool tg_grad_enabled(void);
bool tg_set_grad_enabled(bool enabled);  /* returns the previous setting (no-grad scopes) */
void tg_set_anomaly_mode(bool on);       /* stop at the first op that produces NaN/Inf */
/* Use of an intermediate released by the last tg_tape_reset() is detected in every build; with
 * debug checks on (default without NDEBUG) the released memory is also poisoned. An intermediate
 * from two or more resets back may go unnoticed (its memory may hold a live tensor again). */
void tg_set_debug_checks(bool on);
size_t tg_tape_length(void);             /* records on the tape */
size_t tg_tape_arena_bytes(void);        /* bytes the arena has reserved (grows, never shrinks) */
void tg_tape_print(FILE *out);
int tg_tape_write_dot(const char *path, const tg_tensor *root); /* 0 on success */

/* Counts heap allocations made by tapegrad itself (arena chunks, tensors, grads), for the
 * benchmark's "allocations per step in steady state". */
uint64_t tg_alloc_count(void);

/* ---- ops (float32 and float64; every result is an intermediate, except that an op which is
 * the identity, such as dropout in evaluation, returns its input itself) --------------------------
 * Elementwise binary ops broadcast like NumPy. Axis arguments accept negative values. */
tg_tensor *tg_add(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_maximum(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_minimum(tg_tensor *a, tg_tensor *b);
/* a repeated along size-1 (or missing leading) axes to shape, and its adjoint: the sum of a over
 * the axes that shape has as 1 (or lacks), as NumPy/PyTorch broadcasting defines them. */
tg_tensor *tg_broadcast_to(tg_tensor *a, int ndim, const int64_t *shape);
tg_tensor *tg_sum_to(tg_tensor *a, int ndim, const int64_t *shape);
tg_tensor *tg_add_scalar(tg_tensor *a, double s);
tg_tensor *tg_mul_scalar(tg_tensor *a, double s);
tg_tensor *tg_neg(tg_tensor *a);
tg_tensor *tg_exp(tg_tensor *a);
tg_tensor *tg_log(tg_tensor *a);
tg_tensor *tg_sqrt(tg_tensor *a);
tg_tensor *tg_pow_scalar(tg_tensor *a, double p);
tg_tensor *tg_square(tg_tensor *a);
tg_tensor *tg_abs(tg_tensor *a);
tg_tensor *tg_relu(tg_tensor *a);
tg_tensor *tg_tanh(tg_tensor *a);
tg_tensor *tg_sigmoid(tg_tensor *a);
tg_tensor *tg_sin(tg_tensor *a);
tg_tensor *tg_cos(tg_tensor *a);

tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b);                  /* [M,K]·[K,N] */
/* op(a)·op(b) with transposes read through strides, never copied. */
tg_tensor *tg_matmul_t(tg_tensor *a, bool trans_a, tg_tensor *b, bool trans_b);
/* x·Wᵀ + b with W [out,in] and b [out] (b may be NULL): nn.Linear's op, one GEMM. */
tg_tensor *tg_linear(tg_tensor *x, tg_tensor *w, tg_tensor *b);

tg_tensor *tg_sum(tg_tensor *a);                                   /* all elements -> [] */
tg_tensor *tg_mean(tg_tensor *a);
tg_tensor *tg_sum_axis(tg_tensor *a, int axis, bool keepdim);
tg_tensor *tg_mean_axis(tg_tensor *a, int axis, bool keepdim);
tg_tensor *tg_max_axis(tg_tensor *a, int axis, bool keepdim);
tg_tensor *tg_argmax(tg_tensor *a, int axis);                      /* int32, not differentiable */

tg_tensor *tg_reshape(tg_tensor *a, int ndim, const int64_t *shape); /* one entry may be -1 */
tg_tensor *tg_transpose(tg_tensor *a, int axis0, int axis1);
tg_tensor *tg_concat(tg_tensor **parts, int n, int axis);
tg_tensor *tg_narrow(tg_tensor *a, int axis, int64_t start, int64_t length); /* a slice */
tg_tensor *tg_gather_rows(tg_tensor *a, const tg_tensor *index);    /* a[index[i], ...] */
/* zeros [n_rows, ...] with out[index[k]] += a[k]: gather_rows' adjoint (index_add in PyTorch) */
tg_tensor *tg_scatter_rows(tg_tensor *a, const tg_tensor *index, int64_t n_rows);

tg_tensor *tg_softmax(tg_tensor *a, int axis);
tg_tensor *tg_log_softmax(tg_tensor *a, int axis);

typedef enum { TG_REDUCE_MEAN = 0, TG_REDUCE_SUM = 1 } tg_reduction;
/* logits [N,C], labels int32 [N] in [0, C). */
tg_tensor *tg_cross_entropy(tg_tensor *logits, const tg_tensor *labels, tg_reduction r);
tg_tensor *tg_mse_loss(tg_tensor *pred, tg_tensor *target, tg_reduction r);
/* max_j (s_j - s_y + margin·[j≠y]); margin 0 is the perceptron's loss. */
tg_tensor *tg_multiclass_hinge(tg_tensor *scores, const tg_tensor *labels, double margin,
                               tg_reduction r);
/* log(1 + exp(-y·z)) for y in {-1,+1} (int32 or float), from logits z; targets have the logits'
 * shape up to size-1 axes ([N] targets for [N, 1] logits). */
tg_tensor *tg_logistic_loss(tg_tensor *logits, const tg_tensor *targets, tg_reduction r);
/* Inverted dropout: zeroes with probability p, scales survivors by 1/(1-p); identity when
 * training is false or p == 0. The mask takes 16 random bits per element (four elements per
 * 64-bit draw of rng, or of the global generator when rng is NULL): the keep probability is
 * 1 - round(p·2^16)/2^16. */
tg_tensor *tg_dropout(tg_tensor *a, double p, bool training, tg_rng *rng);
/* tg_dropout(tg_relu(a), p, training, rng) in one op, with the same values and the same draws
 * from rng (the feedforward network's hidden layers use it); tg_relu(a) when training is false or
 * p == 0. */
tg_tensor *tg_relu_dropout(tg_tensor *a, double p, bool training, tg_rng *rng);

/* ---- gradient checking ---------------------------------------------------------------------
 * f builds a one-element tensor from the inputs with tapegrad ops. The inputs must be float64
 * persistent tensors with requires_grad set. Central differences: (f(x+eps) - f(x-eps)) / 2eps.
 * The checkers run f many times and reset the tape between runs: call them between training
 * steps, not in the middle of one (the step's intermediates would be released). The inputs'
 * gradients are left zeroed. */
typedef tg_tensor *(*tg_scalar_fn)(tg_tensor **inputs, int n_inputs, void *ctx);
typedef tg_tensor *(*tg_vector_fn)(tg_tensor *input, void *ctx);

typedef struct {
    double eps, atol, rtol;   /* defaults 1e-6, 1e-5, 1e-3 (PyTorch's) */
    int projections;          /* 0: every element; k > 0: k random projections vᵀJu (fast mode) */
    uint64_t seed;            /* for the projections */
    bool quiet;               /* do not print the worst element on failure */
} tg_gradcheck_opts;

typedef struct {
    bool ok;
    int checked;               /* elements (or projections) compared */
    int worst_input;           /* -1 for a projection */
    int64_t worst_index;
    double analytic, numeric;  /* at the worst element */
    double error;              /* |analytic - numeric| - (atol + rtol·|numeric|) at the worst */
} tg_gradcheck_result;

tg_gradcheck_opts tg_gradcheck_defaults(void);
tg_gradcheck_result tg_gradcheck(tg_scalar_fn f, tg_tensor **inputs, int n_inputs, void *ctx,
                                 const tg_gradcheck_opts *opts /* NULL: defaults */);
/* Full Jacobian [numel(f(x)), numel(x)] by one backward per output (small problems only);
 * returns a persistent float64 tensor. */
tg_tensor *tg_jacobian(tg_vector_fn f, tg_tensor *input, void *ctx);
tg_tensor *tg_jacobian_numeric(tg_vector_fn f, tg_tensor *input, void *ctx, double eps);

/* ---- second order (through differentiable backwards; see tg_grad) --------------------------
 * Second derivatives against finite differences of the first: with fixed random weights w,
 * h(x) = Σ_k <∂f/∂x_k, w_k>; the gradient of h through create_graph is compared, element by
 * element, with central differences of h. It also fails when an op's differentiable backward
 * and its fast backward give different first derivatives. Same inputs and options as
 * tg_gradcheck (at most 16 inputs; projections are not used). */
tg_gradcheck_result tg_gradgradcheck(tg_scalar_fn f, tg_tensor **inputs, int n_inputs, void *ctx,
                                     const tg_gradcheck_opts *opts /* NULL: defaults */);
/* For f returning one element, at input (persistent, requires_grad): the Hessian-vector product
 * H v (input's shape), the full Hessian [numel, numel] (small inputs: one backward per row), and
 * for any f the Jacobian-vector product J u (output's shape, by the double-vjp trick). Each
 * returns a persistent tensor of the input's dtype and resets the tape. */
tg_tensor *tg_hvp(tg_vector_fn f, tg_tensor *input, const tg_tensor *v, void *ctx);
tg_tensor *tg_hessian(tg_vector_fn f, tg_tensor *input, void *ctx);
tg_tensor *tg_jvp(tg_vector_fn f, tg_tensor *input, const tg_tensor *u, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
