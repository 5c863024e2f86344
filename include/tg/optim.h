/* tapegrad optim: optimizers (one interface, any number of kinds), parameter groups,
 * learning-rate schedules, checkpoints.
 *
 * An optimizer keeps its own copy of the parameter list (tensors borrowed, names copied) and
 * allocates all its state when created (or when a group is added): step() makes no heap
 * allocation. A parameter whose grad is NULL (never reached by a backward) is skipped: no update,
 * no state. Gradients are not released by zero_grad: they read as zero (PyTorch's
 * set_to_none=False), so a parameter reached once keeps being updated with its (zero) gradient
 * plus momentum / weight decay. The zeroing itself is lazy (core.h, tg_zero_grad): the next
 * backward overwrites the buffer instead of adding to zeros, and step() writes the zeros of a
 * parameter that backward did not reach before its update, so an update (a kind's `update`
 * included) always sees the gradient. A gradient reads as zero from zero_grad until a backward
 * writes it (a parameter that backward does not reach keeps reading zero), but its buffer is
 * cleared only then: read p->grad through tg_get_grad (or the element accessors), not
 * p->grad->data, unless a backward has just reached p. Float32 parameters are updated in float32, float64 ones in
 * float64.
 *
 *     tg_optimizer *opt = tg_adam_new(&params, tg_adam_defaults());
 *     for (...) { tg_optimizer_zero_grad(opt); ...; tg_backward(loss); tg_optimizer_step(opt); }
 *     tg_optimizer_free(opt);
 *
 * Writing an optimizer: fill a tg_optimizer_kind (below) and call tg_optimizer_new with it; the
 * library's own (optim/sgd.c, optim/adam.c, ...) are written exactly so, with this header (and
 * the library's run-time instruction-set clones on hot loops), and examples/custom_optimizer.c is
 * one written outside the library. Checkpoints save, compare and
 * restore any kind's state through the same description. */
#ifndef TG_OPTIM_H
#define TG_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_optimizer tg_optimizer;
typedef struct tg_loader tg_loader; /* include/tg/data.h */

/* ---- writing an optimizer ------------------------------------------------------------------ */
#define TG_OPTIM_MAX_STATE 4 /* state tensors per parameter */

/* What one update of one parameter sees. state[k] is the kind's k-th state tensor of this
 * parameter (named by state_names), shaped like param, in param's dtype, filled with state_init
 * before the first update; the update changes param and state in place. */
typedef struct {
    tg_tensor *param;
    const tg_tensor *grad;     /* same dtype and shape as param */
    tg_tensor *const *state;
    int64_t step;              /* this parameter's updates including this one: 1 on its first */
    double lr, weight_decay;   /* its group's */
    const void *settings;      /* the optimizer's copy of the kind's settings struct */
} tg_optim_update;

typedef struct tg_optimizer_kind {
    const char *name;          /* "sgd", "adam", ...; also the checkpoint's optim.kind */
    size_t settings_size;      /* sizeof the settings struct */
    /* Where the settings struct keeps its learning rate and weight decay (doubles, offsetof):
     * they become group 0's; other groups bring their own (tg_optimizer_add_group). */
    size_t lr_offset, weight_decay_offset;
    /* Writes the names of the per-parameter state tensors (PyTorch's: "momentum_buffer",
     * "exp_avg", ...) and returns how many (0 to TG_OPTIM_MAX_STATE; may depend on settings). */
    int (*state_names)(const void *settings, const char **names);
    double (*state_init)(const void *settings, int k); /* initial value of state k; NULL: 0 */
    /* true: checkpoints keep each parameter's step count ("<param>.step", as PyTorch's Adam).
     * false: a restored parameter with state resumes at step 2 (only "first or not" survives),
     * so an update that reads step beyond that needs true. */
    bool saves_step;
    /* false when the settings are unusable, with the reason (naming the value) in why. */
    bool (*validate)(const void *settings, char *why, size_t len);
    /* The settings as text (not the lr, which is saved and restored on its own): checkpoints
     * keep it and refuse to load into an optimizer whose text differs. */
    void (*describe)(const void *settings, char *buf, size_t len);
    void (*update)(const tg_optim_update *u);
    /* true: update computes element i of param and state from element i of param, grad and
     * state alone (SGD, Adam, RMSprop, Adagrad). step() may then update a large parameter in
     * slices on the product threads (tg_set_num_threads), each slice a tensor of one axis over
     * part of the data, several slices at once on different threads: update must then touch
     * only its slice, record no op and not fail (no tg_fail, no error handler). false: every
     * update sees whole tensors, on the caller's thread. */
    bool elementwise;
    /* Optional, for tg_optimizer_set_in_backward: true when, for these settings and a group's
     * lr and weight_decay, the update is p = beta·p + alpha·g with no state and no step count
     * (plain SGD: alpha = -lr, beta = 1 - lr·weight_decay), with alpha and beta set. Asked in
     * every backward for each parameter's group (false: that parameter takes the usual path)
     * and by tg_optimizer_set_in_backward for group 0. NULL: never. */
    bool (*in_backward_rule)(const void *settings, double lr, double weight_decay, double *alpha,
                             double *beta);
} tg_optimizer_kind;

/* An optimizer of this kind over params (group 0), with settings (a struct of settings_size
 * bytes, copied). Programming errors (tg_set_error_handler): invalid settings, a learning rate
 * or weight decay that is negative or not finite, a non-float parameter, a parameter listed
 * twice. */
tg_optimizer *tg_optimizer_new(const tg_optimizer_kind *kind, const tg_param_list *params,
                               const void *settings);

/* ---- the library's optimizers ----------------------------------------------------------------
 * PyTorch's update rules (torch.optim.*, version 1.13), weight decay as L2 added to the
 * gradient (g += wd·p) unless said otherwise. */
typedef struct {
    double lr;
    double momentum;       /* 0: plain SGD */
    double dampening;      /* buf = momentum·buf + (1 - dampening)·grad; first step buf = grad */
    double weight_decay;
    bool nesterov;         /* update with grad + momentum·buf (needs momentum > 0, dampening 0) */
} tg_sgd_opts;
tg_optimizer *tg_sgd_new(const tg_param_list *params, tg_sgd_opts opts);

typedef struct {
    double lr;             /* 1e-3 */
    double beta1, beta2;   /* 0.9, 0.999 */
    double eps;            /* 1e-8 */
    double weight_decay;   /* 0 */
    bool decoupled;        /* true: param *= 1 - lr·weight_decay instead of L2 (AdamW) */
} tg_adam_opts;
tg_adam_opts tg_adam_defaults(void);
tg_optimizer *tg_adam_new(const tg_param_list *params, tg_adam_opts opts);

/* RMSprop: v = α·v + (1-α)·g², p -= lr·g/(sqrt(v) + eps); centered: v - ḡ² (ḡ the average g);
 * momentum μ: b = μ·b + g/(...), p -= lr·b. Defaults lr 0.01, alpha 0.99, eps 1e-8. */
typedef struct { double lr, alpha, eps, weight_decay, momentum; bool centered; } tg_rmsprop_opts;
tg_rmsprop_opts tg_rmsprop_defaults(void);
tg_optimizer *tg_rmsprop_new(const tg_param_list *params, tg_rmsprop_opts opts);

/* Adagrad: s += g² (s starts at initial_accumulator_value), p -= lr_t·g/(sqrt(s) + eps) with
 * lr_t = lr/(1 + (t-1)·lr_decay) at the parameter's t-th update. Defaults lr 0.01, eps 1e-10. */
typedef struct { double lr, lr_decay, weight_decay, initial_accumulator_value, eps; }
    tg_adagrad_opts;
tg_adagrad_opts tg_adagrad_defaults(void);
tg_optimizer *tg_adagrad_new(const tg_param_list *params, tg_adagrad_opts opts);

/* ---- using an optimizer ------------------------------------------------------------------- */
void tg_optimizer_step(tg_optimizer *opt);
void tg_optimizer_zero_grad(tg_optimizer *opt);
void tg_optimizer_set_lr(tg_optimizer *opt, double lr);  /* every group */
double tg_optimizer_lr(const tg_optimizer *opt);         /* group 0's */
int64_t tg_optimizer_steps(const tg_optimizer *opt);     /* step() calls so far */
/* Plain SGD's update written during tg_backward, which saves step()'s pass over the weights
 * (PyTorch's optimizer step in backward). With it on, tg_linear's backward writes the update
 * W = (1 - lr·weight_decay)·W - lr·Gᵀ·X straight into its weight instead of dW = Gᵀ·X into W's
 * gradient, when all of these hold: the pass is tg_backward (tg_grad never updates), with no
 * backward hook (so not under tg_ddp) and anomaly mode off; W requires grad and is read by
 * exactly one op recorded on this tape (a weight shared by two layers takes the usual path);
 * and W's gradient holds nothing (zero_grad since the last step, or never written). Every other
 * parameter takes the usual path, gradient then step(); step() skips the weights already
 * updated and counts their step. The result equals the usual loop up to rounding. What changes:
 * - from the end of tg_backward an updated weight holds its new value and its gradient reads
 *   zero, so nothing between backward and step() may use either (gradient clipping or norms, a
 *   no-grad evaluation, logging);
 * - one backward per step: a second backward of the same tape, recording an op that reads an
 *   updated weight before step() (accumulating gradients over micro-batches, or skipping a
 *   step), and turning this off before step() are refused;
 * - the learning rate and weight decay are read at backward time: set them before tg_backward;
 * - the tape does not see a weight read through another tensor sharing its data (tg_wrap of
 *   W->data): such a read after the update gets the new values. Do not combine the two.
 * Returns false and changes nothing when the kind has no in_backward_rule for group 0's
 * settings (of the library's optimizers only SGD without momentum has one); true otherwise. */
bool tg_optimizer_set_in_backward(tg_optimizer *opt, bool on);
bool tg_optimizer_in_backward(const tg_optimizer *opt);  /* set_in_backward is on */
const char *tg_optimizer_name(const tg_optimizer *opt);  /* its kind's name: "sgd", "adam"... */
void tg_optimizer_free(tg_optimizer *opt);               /* NULL is fine */

/* Parameter groups (PyTorch's param_groups): group 0 is made by the constructor from its list
 * and the settings' lr and weight decay; each added group has its own, e.g. no decay on biases:
 *     tg_optimizer *opt = tg_sgd_new(&weights, (tg_sgd_opts){.lr = 0.1, .weight_decay = 5e-4});
 *     tg_optimizer_add_group(opt, &biases, 0.1, 0.0);
 * A parameter may belong to one group only. add_group returns the new group's index. */
int tg_optimizer_add_group(tg_optimizer *opt, const tg_param_list *params, double lr,
                           double weight_decay);
int tg_optimizer_num_groups(const tg_optimizer *opt);
double tg_optimizer_group_lr(const tg_optimizer *opt, int group);
void tg_optimizer_set_group_lr(tg_optimizer *opt, int group, double lr);
double tg_optimizer_group_weight_decay(const tg_optimizer *opt, int group);

/* ---- learning-rate schedules ------------------------------------------------------------------
 * Step decay (torch.optim.lr_scheduler.StepLR): base_lr · gamma^floor(epoch / step_size). */
double tg_lr_step_decay(double base_lr, int64_t epoch, int64_t step_size, double gamma);
/* StepLR over every group: each group's lr becomes tg_lr_step_decay(its initial lr, ...), the
 * initial lr being the one it was created with. Returns group 0's. */
double tg_optimizer_step_lr(tg_optimizer *opt, int64_t epoch, int64_t step_size, double gamma);
/* One base lr for every group: tg_optimizer_set_lr(opt, tg_lr_step_decay(base_lr, ...)). */
double tg_optimizer_step_decay(tg_optimizer *opt, double base_lr, int64_t epoch,
                               int64_t step_size, double gamma);

/* ---- checkpoints (safetensors) --------------------------------------------------------------
 * A checkpoint is a safetensors file (format, atomic writes: nn.h). Loading validates the whole
 * file (tensors and metadata) before copying anything: on any error nothing is modified and the
 * message names the file and the entry.
 *
 * What a checkpoint holds, each part optional but the model:
 *   model      its parameters and buffers under their dotted names (tg_module_state);
 *   optimizer  per parameter with state, "optim.state.<param>.<state name>" (and ".step" when
 *              the kind saves it); in __metadata__ its kind, step count, settings text and, per
 *              group, its lr, initial lr, weight decay and parameters;
 *   rng        the generator state (dropout masks, anything drawn during training);
 *   loader     the loader's position in its epoch and its generator (data.h, tg_loader_state),
 *              so that a resumed run sees the same batches without replaying earlier epochs.
 * Loading requires every part given to be in the file and to match (same optimizer kind,
 * settings, groups and parameters; same loader rows, batch size, shuffle and drop_last); the
 * learning rates are restored from the file. Optimizer and loader entries of the file are
 * ignored when that part is not given. */
typedef struct {
    tg_module *model;
    tg_optimizer *optimizer;
    tg_rng *rng;
    tg_loader *loader;
} tg_checkpoint_parts;

tg_status tg_checkpoint_save_parts(const char *path, const tg_checkpoint_parts *parts);
tg_status tg_checkpoint_load_parts(const char *path, const tg_checkpoint_parts *parts);
/* The same for model, optimizer and rng (opt and rng may be NULL). */
tg_status tg_checkpoint_save(const char *path, tg_module *model, const tg_optimizer *opt,
                             const tg_rng *rng);
tg_status tg_checkpoint_load(const char *path, tg_module *model, tg_optimizer *opt, tg_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
