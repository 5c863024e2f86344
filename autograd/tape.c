/* The define-by-run tape: ops append records as they run; backward replays them in reverse.
 *
 * Invariant: records are appended in execution order, so the tape is already topologically
 * sorted, and one reverse sweep visits each op after every op that consumed its output. */
#include <stdlib.h>
#include <string.h>
#include "autograd/internal.h"

static _Thread_local tg_node **records;   /* heap array, capacity kept across resets */
static _Thread_local size_t n_records, cap_records;
static _Thread_local bool grad_disabled;
#ifdef NDEBUG
static _Thread_local bool debug_checks = false;
#else
static _Thread_local bool debug_checks = true;
#endif

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
size_t tg_tape_arena_bytes(void) { return tg__arena_reserved(); }

void tg__check_live(const tg_tensor *t, const char *op)
{
    if (!t)
        tg__fail("%s: got a NULL tensor", op);
    if (t->magic != TG_MAGIC_LIVE)
        tg__fail("%s: tensor used after release (an intermediate of a step that "
                 "tg_tape_reset() has released, or a freed tensor); keep a tg_clone() of "
                 "anything needed across steps", op);
}

void tg__check_float(const tg_tensor *t, const char *op)
{
    tg__check_live(t, op);
    if (t->dtype != TG_F32 && t->dtype != TG_F64) {
        char s[128];
        tg__fail("%s: expected a float32 or float64 tensor, got %s", op,
                 tg_shape_str(t, s, sizeof s));
    }
}

void tg__check_same_dtype(const tg_tensor *a, const tg_tensor *b, const char *op)
{
    if (a->dtype != b->dtype)
        tg__fail("%s: dtypes differ (%s and %s); convert one with tg_to_dtype", op,
                 tg_dtype_name(a->dtype), tg_dtype_name(b->dtype));
}

tg_tensor *tg__new_intermediate(tg_dtype dtype, int ndim, const int64_t *shape)
{
    tg_tensor *t = tg__arena_alloc(sizeof *t);
    tg__init_header(t, dtype, ndim, shape, "intermediate");
    t->data = tg__arena_alloc(tg__bytes(t));
    return t;
}

static void append(tg_node *node)
{
    if (n_records == cap_records) {
        size_t cap = cap_records ? 2 * cap_records : 256;
        records = tg__xrealloc(records, cap * sizeof *records);
        cap_records = cap;
    }
    node->index = n_records;
    records[n_records++] = node;
}

tg_node *tg__record(const char *op, tg_backward_fn backward, tg_tensor *out, int n_in,
                    tg_tensor *const *in)
{
    if (n_in > TG_MAX_INPUTS)
        tg__fail("%s: an op records at most %d inputs, got %d", op, TG_MAX_INPUTS, n_in);
    bool needed = false;
    for (int i = 0; i < n_in && !grad_disabled; i++)
        needed |= in[i]->requires_grad;
    if (tg__anomaly_on())
        tg__anomaly_check_forward(NULL, op, out, n_in, in);
    if (!needed) return NULL;

    tg_node *node = tg__arena_calloc(sizeof *node);
    node->op = op;
    node->backward = backward;
    node->out = out;
    node->n_in = n_in;
    for (int i = 0; i < n_in; i++) node->in[i] = in[i];
    out->node = node;
    out->requires_grad = true;
    append(node);
    return node;
}

void *tg__grad(tg_tensor *t)
{
    if (!t->requires_grad) return NULL;
    if (!t->grad) {
        if (t->persistent) {
            t->grad = tg_zeros(t->dtype, t->ndim, t->shape);
        } else {
            t->grad = tg__new_intermediate(t->dtype, t->ndim, t->shape);
            memset(t->grad->data, 0, tg__bytes(t->grad));
        }
    }
    return t->grad->data;
}

static void seed_gradient(tg_tensor *out, const tg_tensor *grad_output)
{
    void *g = tg__grad(out);
    for (int64_t i = 0; i < out->numel; i++) {
        double v = grad_output ? tg_get_flat(grad_output, i) : 1.0;
        if (out->dtype == TG_F32) ((float *)g)[i] += (float)v;
        else ((double *)g)[i] += v;
    }
}

void tg_backward_with(tg_tensor *out, const tg_tensor *grad_output)
{
    char s1[128], s2[128];
    tg__check_float(out, "tg_backward");
    if (!out->requires_grad)
        tg__fail("tg_backward: the output %s does not require grad: no input of the ops that "
                 "built it has requires_grad set (or it was built in a no-grad scope)",
                 tg_shape_str(out, s1, sizeof s1));
    if (!grad_output && out->numel != 1)
        tg__fail("tg_backward: the output %s is not a scalar; pass its gradient with "
                 "tg_backward_with(output, grad_output) or reduce it first (tg_sum, tg_mean)",
                 tg_shape_str(out, s1, sizeof s1));
    if (grad_output) {
        tg__check_live(grad_output, "tg_backward_with");
        if (!tg_same_shape(grad_output, out))
            tg__fail("tg_backward_with: grad_output %s does not match output %s",
                     tg_shape_str(grad_output, s2, sizeof s2), tg_shape_str(out, s1, sizeof s1));
    }
    /* Intermediate gradients start from zero on every backward; leaves keep accumulating. */
    for (size_t k = 0; k < n_records; k++)
        records[k]->out->grad = NULL;
    seed_gradient(out, grad_output);
    if (!out->node) return; /* a leaf: its gradient is the seed */
    for (size_t k = out->node->index + 1; k-- > 0;) {
        tg_node *node = records[k];
        if (!node->out->grad) continue; /* does not reach the output */
        node->backward(node);
        if (tg__anomaly_on()) tg__anomaly_check_backward(node);
    }
}

void tg_backward(tg_tensor *loss) { tg_backward_with(loss, NULL); }

void tg_tape_reset(void)
{
    n_records = 0;
    tg__arena_reset();
}

void tg_tape_free(void)
{
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
