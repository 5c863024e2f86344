/* The define-by-run tape: ops append records as they run; backward replays them in reverse.
 *
 * Invariant: records are appended in execution order, so the tape is already topologically
 * sorted, and one reverse sweep visits each op after every op that consumed its output.
 *
 * Two backward passes share the sweep:
 *   - tg_backward: gradients accumulate into t->grad (leaves keep them across steps);
 *   - tg_grad (functional, like torch.autograd.grad): gradients go to per-call slots and are
 *     returned; with create_graph each op's backward_ops builds them with recorded ops, so they
 *     can be differentiated again. */
#include <stddef.h>
#include <string.h>
#include "autograd/internal.h"

static _Thread_local tg_node **records;   /* capacity kept across resets */
static _Thread_local size_t n_records, cap_records;
static _Thread_local bool grad_disabled;
static _Thread_local tg_backward_hook backward_hook;
static _Thread_local void *backward_hook_data;
/* The step an intermediate belongs to; a tensor of an earlier step is released. */
static _Thread_local uint32_t generation = 1;
/* A backward of this tape updated parameters in place (tg_op_update_in_backward): a second
 * backward would read the updated values, so it is refused until tg_tape_reset. */
static _Thread_local bool updated_in_backward;
#ifdef NDEBUG
static _Thread_local bool debug_checks = false;
#else
static _Thread_local bool debug_checks = true;
#endif

/* The functional backward in progress on this thread, or NULL. */
typedef struct {
    tg_tensor **node_grads;       /* by record index: the gradient of that record's output */
    size_t n_nodes;               /* records below this index take part */
    int n_inputs;
    tg_tensor *const *inputs;
    tg_tensor **input_grads;      /* gradients of the inputs that no record produced (leaves) */
    bool create_graph;
    bool grad_was_enabled;        /* restored at the end (or by tg_tape_reset after an error) */
} grad_pass;
static _Thread_local grad_pass *active_pass;

void tg_set_backward_hook(tg_backward_hook hook, void *user_data)
{
    backward_hook = hook;
    backward_hook_data = user_data;
}

bool tg_grad_enabled(void) { return !grad_disabled; }

bool tg_set_grad_enabled(bool enabled)
{
    bool previous = !grad_disabled;
    grad_disabled = !enabled;
    return previous;
}

void tg_set_debug_checks(bool on) { debug_checks = on; }
bool tg__debug_checks_on(void) { return debug_checks; }
size_t tg_tape_length(void) { return n_records; }
uint32_t tg__tape_generation(void) { return generation; }
size_t tg_tape_arena_bytes(void) { return tg__arena_reserved(); }

/* ---- checks every op makes ---------------------------------------------------------------- */

static bool is_live(const tg_tensor *t)
{
    return t && t->magic == TG_MAGIC_LIVE && (t->persistent || t->generation == generation);
}

void tg_check_live(const tg_tensor *t, const char *op)
{
    if (is_live(t)) return;
    if (!t)
        tg_fail("%s: got a NULL tensor", op);
    tg_fail("%s: tensor used after release (an intermediate of a step that "
            "tg_tape_reset() has released, or a freed tensor); keep a tg_clone() of "
            "anything needed across steps", op);
}

void tg_check_float(const tg_tensor *t, const char *op)
{
    if (is_live(t) && (t->dtype == TG_F32 || t->dtype == TG_F64)) return;
    tg_check_live(t, op);
    char s[128];
    tg_fail("%s: expected a float32 or float64 tensor, got %s", op, tg_shape_str(t, s, sizeof s));
}

void tg_check_same_dtype(const tg_tensor *a, const tg_tensor *b, const char *op)
{
    if (a->dtype != b->dtype)
        tg_fail("%s: dtypes differ (%s and %s); convert one with tg_to_dtype", op,
                tg_dtype_name(a->dtype), tg_dtype_name(b->dtype));
}

/* ---- outputs and records ------------------------------------------------------------------- */

void *tg_op_scratch(size_t bytes) { return tg__arena_alloc(bytes); }

/* Header and data in one arena block: the data starts at the next 64-byte boundary. */
enum { HEADER_BYTES = (sizeof(tg_tensor) + TG__ARENA_ALIGN - 1) & ~(TG__ARENA_ALIGN - 1) };

static tg_tensor *output_in(unsigned char *block, tg_dtype dtype, int ndim, const int64_t *shape,
                            int64_t numel)
{
    tg_tensor *t = (tg_tensor *)block;
    tg__fill_header(t, dtype, ndim, shape, numel, generation);
    t->data = block + HEADER_BYTES;
    return t;
}

static tg_tensor *output_in_new_chunk(tg_dtype dtype, int ndim, const int64_t *shape,
                                      int64_t numel)
{
    return output_in(tg__arena_alloc(HEADER_BYTES + (size_t)numel * tg__elem_size(dtype)), dtype,
                     ndim, shape, numel);
}

tg_tensor *tg_op_output(tg_dtype dtype, int ndim, const int64_t *shape)
{
    int64_t numel = tg__header_numel(dtype, ndim, shape, "tg_op_output");
    unsigned char *block = tg__arena_try_alloc(HEADER_BYTES + (size_t)numel * tg__elem_size(dtype));
    if (!block) return output_in_new_chunk(dtype, ndim, shape, numel);
    return output_in(block, dtype, ndim, shape, numel);
}

/* Where the saved state starts after a record: aligned for any field an op saves. */
enum { SAVED_ALIGN = _Alignof(max_align_t) };
enum { SAVED_OFFSET = (sizeof(tg_node) + SAVED_ALIGN - 1) & ~(SAVED_ALIGN - 1) };

/* A parameter a backward updated stays unread until step(): a record reading it now (a second
 * forward to accumulate gradients, or one after a skipped step) would see the new values where
 * the usual path reads the old ones, and its backward would update the parameter again. */
static void count_use(struct tg_in_backward *ib, const char *op)
{
    if (ib->updated)
        tg_fail("%s: parameter '%s' was updated in place by a tg_backward "
                "(tg_optimizer_set_in_backward) and tg_optimizer_step has not run since, so this "
                "op would read its new values; call tg_optimizer_step after each backward, or turn "
                "updates in backward off to accumulate gradients over several backwards", op,
                tg__in_backward_name(ib));
    if (ib->generation != generation) {
        ib->generation = generation;
        ib->uses = 0;
    }
    ib->uses++;
}

/* Out of line, so that the common record (no input with that bookkeeping) stays short. */
static __attribute__((noinline)) void count_uses(tg_tensor *const *in, int n_in, const char *op)
{
    for (int i = 0; i < n_in; i++)
        if (in[i]->in_backward) count_use(in[i]->in_backward, op);
}

/* The saved state sits right after the record: one allocation, one cache line or two. The
 * caller made room on the tape for one more record. */
static tg_node *record_in(tg_node *node, const tg_op *op, tg_tensor *out, int n_in,
                          tg_tensor *const *in, size_t saved_bytes, bool counted)
{
    node->op = op;
    node->out = out;
    node->n_in = n_in;
    for (int i = 0; i < TG_MAX_INPUTS; i++) node->in[i] = i < n_in ? in[i] : NULL;
    if (counted) count_uses(in, n_in, op->name);
    node->saved = saved_bytes ? (char *)node + SAVED_OFFSET : NULL;
    node->index = n_records;
    records[n_records++] = node;
    out->node = node;
    out->requires_grad = true;
    return node;
}

/* What tg_op_record does out of its common case: the anomaly check, a new arena chunk, a longer
 * record array. */
static tg_node *record_slow(const tg_op *op, tg_tensor *out, int n_in, tg_tensor *const *in,
                            size_t saved_bytes, bool needed, bool counted)
{
    if (tg__anomaly_on())
        tg__anomaly_check_forward(NULL, op->name, out, n_in, in);
    if (!needed) return NULL;
    if (n_records == cap_records) {
        size_t cap = cap_records ? 2 * cap_records : 256;
        records = tg__xrealloc(records, cap * sizeof *records);
        cap_records = cap;
    }
    return record_in(tg__arena_alloc(SAVED_OFFSET + saved_bytes), op, out, n_in, in, saved_bytes,
                     counted);
}

tg_node *tg_op_record(const tg_op *op, tg_tensor *out, int n_in, tg_tensor *const *in,
                      size_t saved_bytes)
{
    if (!op || !op->backward)
        tg_fail("tg_op_record: %s has no backward function", op ? op->name : "a NULL op");
    if (n_in > TG_MAX_INPUTS)
        tg_fail("%s: an op records at most %d inputs, got %d (combine inputs in groups, as "
                "tg_concat does)", op->name, TG_MAX_INPUTS, n_in);
    if (!out || out->persistent || out->node)
        tg_fail("%s: the output to record must be a fresh tg_op_output() tensor", op->name);
    bool needed = false, counted = false; /* counted: an input has updates in backward */
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) tg_fail("%s: input %d is NULL", op->name, i);
        needed |= in[i]->requires_grad;
        counted |= in[i]->in_backward != NULL;
    }
    needed &= !grad_disabled;
    if (tg__anomaly_on()) return record_slow(op, out, n_in, in, saved_bytes, needed, counted);
    if (!needed) return NULL;
    tg_node *node = n_records < cap_records ? tg__arena_try_alloc(SAVED_OFFSET + saved_bytes)
                                            : NULL;
    if (!node) return record_slow(op, out, n_in, in, saved_bytes, needed, counted);
    return record_in(node, op, out, n_in, in, saved_bytes, counted);
}

/* ---- gradient slots ------------------------------------------------------------------------ */

/* Where the gradient of t lives in the current backward: t->grad, or a slot of the functional
 * pass (NULL when that pass does not need t's gradient). */
static tg_tensor **grad_slot(tg_tensor *t)
{
    grad_pass *p = active_pass;
    if (!p) return &t->grad;
    if (t->node && t->node->index < p->n_nodes && records[t->node->index] == t->node)
        return &p->node_grads[t->node->index];
    for (int i = 0; i < p->n_inputs; i++)
        if (p->inputs[i] == t) return &p->input_grads[i];
    return NULL;
}

/* An intermediate of t's shape and dtype, data uninitialised. t's header is already valid, so it
 * is copied rather than checked again: this runs once per gradient of every backward. */
static inline tg_tensor *intermediate_like(const tg_tensor *t)
{
    size_t bytes = (size_t)t->numel * tg__elem_size(t->dtype);
    unsigned char *block = tg__arena_alloc(HEADER_BYTES + bytes);
    tg_tensor *g = (tg_tensor *)block;
    *g = *t;
    g->generation = generation;
    g->data = block + HEADER_BYTES;
    g->grad = NULL;
    g->requires_grad = g->persistent = g->owns_data = g->zero_pending = false;
    g->node = NULL;
    g->name = NULL;
    g->in_backward = NULL;
    return g;
}

static tg_tensor *zeros_like_intermediate(const tg_tensor *t)
{
    tg_tensor *g = intermediate_like(t);
    size_t bytes = (size_t)t->numel * tg__elem_size(t->dtype);
    /* The block is rounded up to 64 bytes, so a small gradient is zeroed by a fixed-size store
     * the compiler writes inline, without a call. */
    if (bytes > 0 && bytes <= TG__ARENA_ALIGN) memset(g->data, 0, TG__ARENA_ALIGN);
    else memset(g->data, 0, bytes);
    return g;
}

void *tg_op_grad(tg_tensor *t)
{
    if (!t->requires_grad) return NULL;
    if (!active_pass) { /* tg_backward: the gradient lives in t->grad */
        if (!t->grad) {
            t->grad = t->persistent ? tg_zeros(t->dtype, t->ndim, t->shape)
                                    : zeros_like_intermediate(t);
        } else if (t->grad->zero_pending) { /* tg_zero_grad left it to the first writer */
            memset(t->grad->data, 0, tg_nbytes(t->grad));
            t->grad->zero_pending = false;
        }
        return t->grad->data;
    }
    tg_tensor **slot = grad_slot(t);
    if (!slot) /* a tensor tg_grad was not asked about: a buffer that is thrown away */
        return zeros_like_intermediate(t)->data;
    if (!*slot) *slot = zeros_like_intermediate(t);
    return (*slot)->data;
}

/* The same buffers as tg_op_grad, without zeroing the ones that hold no gradient yet: the caller
 * writes every element of them (beta 0). */
void *tg_op_grad_beta(tg_tensor *t, double *beta)
{
    *beta = 1;
    if (!t->requires_grad) return NULL;
    if (!active_pass) {
        if (!t->grad) {
            t->grad = t->persistent ? tg__tensor_uninit(t->dtype, t->ndim, t->shape)
                                    : intermediate_like(t);
            *beta = 0;
        } else if (t->grad->zero_pending) {
            *beta = 0;
        }
        t->grad->zero_pending = false;
        return t->grad->data;
    }
    tg_tensor **slot = grad_slot(t);
    if (!slot) {
        *beta = 0;
        return intermediate_like(t)->data;
    }
    if (!*slot) {
        *slot = intermediate_like(t);
        *beta = 0;
    }
    return (*slot)->data;
}

/* Only in tg_backward (not tg_grad, whose gradients are returned, not applied), without a hook
 * or anomaly mode (both read the gradients), for a parameter this tape reads exactly once and
 * whose gradient holds nothing yet (so the update loses nothing accumulated before). */
bool tg_op_update_in_backward(tg_tensor *t, double *alpha, double *beta)
{
    struct tg_in_backward *ib = t->in_backward;
    if (!ib || active_pass || backward_hook || tg__anomaly_on() || !t->requires_grad) return false;
    if (ib->generation != generation || ib->uses != 1) return false;
    if (t->grad && !t->grad->zero_pending) return false;
    if (!tg__in_backward_rule(ib, alpha, beta)) return false;
    ib->updated = true;
    updated_in_backward = true;
    return true;
}

const void *tg_op_grad_out(const tg_node *node)
{
    return active_pass ? active_pass->node_grads[node->index]->data : node->out->grad->data;
}

/* ---- tg_backward ----------------------------------------------------------------------------- */

/* A second pass over a tape whose backward updated parameters would read the new values. */
static void refuse_after_update_in_backward(const char *fn)
{
    if (updated_in_backward)
        tg_fail("%s: a backward of this tape already updated parameters in place "
                "(tg_optimizer_set_in_backward), so its records would read the new values; "
                "call tg_optimizer_step and tg_tape_reset, then run the forward again", fn);
}

static void check_backward_root(const tg_tensor *out, const tg_tensor *grad_output,
                                const char *op)
{
    char s1[128], s2[128];
    tg_check_float(out, op);
    if (!out->requires_grad)
        tg_fail("%s: the output %s does not require grad: no input of the ops that built it has "
                "requires_grad set (or it was built in a no-grad scope)", op,
                tg_shape_str(out, s1, sizeof s1));
    if (!grad_output && out->numel != 1)
        tg_fail("%s: the output %s is not a scalar; pass its gradient (grad_output) or reduce "
                "it first (tg_sum, tg_mean)", op, tg_shape_str(out, s1, sizeof s1));
    if (grad_output) {
        tg_check_live(grad_output, op);
        if (!tg_same_shape(grad_output, out) || grad_output->dtype != out->dtype)
            tg_fail("%s: grad_output %s does not match output %s (same shape and dtype; convert "
                    "with tg_to_dtype)", op, tg_shape_str(grad_output, s2, sizeof s2),
                    tg_shape_str(out, s1, sizeof s1));
    }
}

/* g += grad_output (of out's dtype, checked), or += 1 without one. */
static void seed_gradient(tg_tensor *out, const tg_tensor *grad_output)
{
    void *g = tg_op_grad(out);
    const void *s = grad_output ? grad_output->data : NULL;
    if (out->dtype == TG_F32)
        for (int64_t i = 0; i < out->numel; i++) ((float *)g)[i] += s ? ((const float *)s)[i] : 1;
    else
        for (int64_t i = 0; i < out->numel; i++) ((double *)g)[i] += s ? ((const double *)s)[i] : 1;
}

void tg_backward_with(tg_tensor *out, const tg_tensor *grad_output)
{
    check_backward_root(out, grad_output, "tg_backward");
    if (active_pass) tg_fail("tg_backward: called from inside a backward");
    refuse_after_update_in_backward("tg_backward");
    /* Intermediate gradients start from zero on every backward; leaves keep accumulating. */
    for (size_t k = 0; k < n_records; k++)
        records[k]->out->grad = NULL;
    seed_gradient(out, grad_output);
    if (!out->node) return; /* a leaf: its gradient is the seed */
    for (size_t k = out->node->index + 1; k-- > 0;) {
        tg_node *node = records[k];
        if (!node->out->grad) continue; /* does not reach the output */
        node->op->backward(node);
        if (tg__anomaly_on()) tg__anomaly_check_backward(node, NULL);
        if (backward_hook) backward_hook(node, backward_hook_data);
    }
}

void tg_backward(tg_tensor *loss) { tg_backward_with(loss, NULL); }

/* ---- tg_grad: the functional backward -------------------------------------------------------- */

/* Adds g into *slot with a recorded op (create_graph), so the sum is differentiable too. */
static void accumulate(tg_tensor **slot, tg_tensor *g)
{
    if (!slot) return;
    *slot = *slot ? tg_add(*slot, g) : g;
}

static void backward_graph_node(tg_node *node, grad_pass *p)
{
    if (!node->op->backward_ops)
        tg_fail("tg_grad: %s has no differentiable backward, so create_graph cannot go through "
                "it (docs/higher_order.md lists the ops that have one)", node->op->name);
    tg_tensor *grad_in[TG_MAX_INPUTS] = {0};
    node->op->backward_ops(node, p->node_grads[node->index], grad_in);
    for (int i = 0; i < node->n_in; i++) {
        if (!grad_in[i] || !node->in[i]->requires_grad) continue;
        if (!tg_same_shape(grad_in[i], node->in[i]) || grad_in[i]->dtype != node->in[i]->dtype) {
            char s1[128], s2[128];
            tg_fail("tg_grad: backward_ops of %s gave input %d a gradient %s for an input %s "
                    "(it must have the input's shape and dtype)", node->op->name, i,
                    tg_shape_str(grad_in[i], s1, sizeof s1),
                    tg_shape_str(node->in[i], s2, sizeof s2));
        }
        accumulate(grad_slot(node->in[i]), grad_in[i]);
    }
}

static tg_tensor *seed_tensor(tg_tensor *out, tg_tensor *grad_output, bool create_graph)
{
    if (grad_output && create_graph)
        return grad_output; /* kept as is: the result may be differentiated through it */
    tg_tensor *g = zeros_like_intermediate(out);
    tg_fill_(g, 1.0);
    if (grad_output) tg_copy_(g, grad_output);
    return g;
}

void tg_grad(tg_tensor *output, tg_tensor *grad_output, int n, tg_tensor *const *inputs,
             tg_tensor **grads, bool create_graph)
{
    check_backward_root(output, grad_output, "tg_grad");
    if (active_pass) tg_fail("tg_grad: called from inside a backward");
    refuse_after_update_in_backward("tg_grad");
    if (n < 0 || (n > 0 && (!inputs || !grads)))
        tg_fail("tg_grad: need n >= 0 inputs and room for n gradients (got n = %d)", n);
    for (int i = 0; i < n; i++) {
        tg_check_float(inputs[i], "tg_grad");
        if (!inputs[i]->requires_grad)
            tg_fail("tg_grad: input %d does not require grad; set tg_set_requires_grad before "
                    "building the output, or leave it out of the inputs", i);
    }
    size_t end = output->node ? output->node->index + 1 : 0;
    grad_pass p = {.node_grads = tg__arena_alloc((end ? end : 1) * sizeof(tg_tensor *)),
                   .n_nodes = end,
                   .n_inputs = n, .inputs = inputs,
                   .input_grads = tg__arena_alloc((size_t)(n ? n : 1) * sizeof(tg_tensor *)),
                   .create_graph = create_graph};
    memset(p.node_grads, 0, (end ? end : 1) * sizeof(tg_tensor *));
    memset(p.input_grads, 0, (size_t)(n ? n : 1) * sizeof(tg_tensor *));
    p.grad_was_enabled = tg_set_grad_enabled(create_graph);
    active_pass = &p;
    tg_tensor **root = grad_slot(output);
    if (root) *root = seed_tensor(output, grad_output, create_graph);
    for (size_t k = end; k-- > 0;) {
        tg_node *node = records[k];
        if (!p.node_grads[k]) continue;
        if (create_graph) backward_graph_node(node, &p);
        else node->op->backward(node);
        if (tg__anomaly_on()) tg__anomaly_check_backward(node, grad_slot);
    }
    for (int i = 0; i < n; i++) {
        tg_tensor **slot = grad_slot(inputs[i]);
        grads[i] = *slot ? *slot : zeros_like_intermediate(inputs[i]);
    }
    active_pass = NULL;
    tg_set_grad_enabled(p.grad_was_enabled);
}

/* ---- the step's end ---------------------------------------------------------------------- */

void tg_tape_reset(void)
{
    if (active_pass) { /* an error handler left a tg_grad by longjmp: end that pass */
        tg_set_grad_enabled(active_pass->grad_was_enabled);
        active_pass = NULL;
    }
    n_records = 0;
    generation++;
    updated_in_backward = false;
    tg__arena_reset();
}

void tg_tape_free(void)
{
    tg_tape_reset();
    tg__free(records);
    records = NULL;
    n_records = cap_records = 0;
    tg__arena_free();
}

/* The tape's records in order, for printing (autograd/tape_print.c). */
tg_node *const *tg__tape_records(size_t *count)
{
    *count = n_records;
    return records;
}
