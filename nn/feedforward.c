/* The homework's FeedforwardNetwork: [Linear, activation, Dropout] × layers, then a Linear to the
 * classes, held in a Sequential child "layers" so parameter names read "layers.0.weight". */
#include <stdio.h>
#include <string.h>
#include "autograd/internal.h"
#include "nn/internal.h"

/* The layers in order, except that a ReLU followed by a Dropout runs as one tg_relu_dropout (one
 * op, one pass each way, the same values and draws as the two modules). */
static tg_tensor *feedforward_forward(tg_module *self, tg_tensor *x)
{
    tg_module *seq = self->children[0];
    for (int i = 0; i < seq->n_children; i++) {
        tg_module *c = seq->children[i];
        tg_module *next = i + 1 < seq->n_children ? seq->children[i + 1] : NULL;
        double p;
        tg_rng *rng;
        if (next && strcmp(c->kind, "ReLU") == 0 && tg__dropout_module_params(next, &p, &rng)) {
            x = tg_relu_dropout(x, p, next->training, rng);
            i++;
        } else {
            x = tg_module_forward(c, x);
        }
    }
    return x;
}

tg_module *tg_feedforward_new(int64_t n_features, int64_t n_classes, int64_t hidden_size,
                              int layers, const char *activation, double dropout, tg_init init,
                              tg_rng *rng)
{
    if (layers < 0 || n_features <= 0 || n_classes <= 0 || (layers > 0 && hidden_size <= 0))
        tg_fail("tg_feedforward_new: need n_features, n_classes > 0, layers >= 0 and "
                 "hidden_size > 0 (got %lld, %lld, %d, %lld)", (long long)n_features,
                 (long long)n_classes, layers, (long long)hidden_size);
    if (!(dropout >= 0.0 && dropout < 1.0))
        tg_fail("tg_feedforward_new: dropout must be in [0, 1) (got %g)", dropout);
    /* Validate the name before building anything, so an input error leaks nothing. */
    if (!tg_activation_fn_by_name(activation)) return NULL;

    tg_module *net = tg_module_new(sizeof(tg_module), "FeedforwardNetwork", feedforward_forward);
    tg_module *seq = tg_module_add_child(net, "layers", tg_sequential_new(0));
    int64_t in = n_features;
    for (int i = 0; i < layers; i++) {
        tg_sequential_append(seq, tg_linear_new(in, hidden_size, true, init, rng));
        tg_sequential_append(seq, tg_activation_new(activation));
        tg_sequential_append(seq, tg_dropout_new_rng(dropout, rng));
        in = hidden_size;
    }
    tg_sequential_append(seq, tg_linear_new(in, n_classes, true, init, rng));
    return net;
}
