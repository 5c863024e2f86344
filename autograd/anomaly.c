/* Anomaly mode: stop at the first op whose output (or, in backward, an input's gradient) holds a
 * NaN or Inf, and say which op, with which shapes and input ranges. Costs one pass over every
 * output, so it is off by default. */
#include <math.h>
#include "autograd/internal.h"

_Thread_local bool tg__anomaly;

void tg_set_anomaly_mode(bool on) { tg__anomaly = on; }

static int64_t first_non_finite(const tg_tensor *t)
{
    if (t->dtype == TG_I32 || t->dtype == TG_I64) return -1;
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(tg_get_flat(t, i))) return i;
    return -1;
}

static void describe_inputs(char *buf, size_t len, int n_in, tg_tensor *const *in)
{
    size_t used = 0;
    buf[0] = 0;
    for (int k = 0; k < n_in && used < len; k++) {
        char shape[96];
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < in[k]->numel; i++) {
            double v = tg_get_flat(in[k], i);
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
        used += (size_t)snprintf(buf + used, len - used, "\n  input %d%s%s: %s, range [%g, %g]",
                                 k, in[k]->name ? " " : "", in[k]->name ? in[k]->name : "",
                                 tg_shape_str(in[k], shape, sizeof shape), lo, hi);
    }
}

void tg__anomaly_check_forward(const tg_node *node, const char *op, const tg_tensor *out,
                               int n_in, tg_tensor *const *in)
{
    (void)node;
    int64_t bad = first_non_finite(out);
    if (bad < 0) return;
    char shape[96], inputs[1024];
    describe_inputs(inputs, sizeof inputs, n_in, in);
    tg_fail("anomaly: %s produced %g at element %lld of its output %s%s", op,
             tg_get_flat(out, bad), (long long)bad, tg_shape_str(out, shape, sizeof shape),
             inputs);
}

void tg__anomaly_check_backward(const tg_node *node, tg_tensor **(*grad_slot)(tg_tensor *t))
{
    for (int k = 0; k < node->n_in; k++) {
        tg_tensor **slot = grad_slot ? grad_slot(node->in[k]) : &node->in[k]->grad;
        const tg_tensor *g = slot ? *slot : NULL;
        if (!grad_slot && g && g->zero_pending) continue; /* not written: reads zero */
        int64_t bad = g ? first_non_finite(g) : -1;
        if (bad < 0) continue;
        char shape[96], inputs[1024];
        describe_inputs(inputs, sizeof inputs, node->n_in, node->in);
        tg_fail("anomaly: backward of %s produced %g at element %lld of the gradient of "
                 "input %d %s%s", node->op->name, tg_get_flat(g, bad), (long long)bad, k,
                 tg_shape_str(g, shape, sizeof shape), inputs);
    }
}
