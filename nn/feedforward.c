/* The homework's FeedforwardNetwork: [Linear, activation, Dropout] × layers, then a Linear to the
 * classes, held in a Sequential child "layers" so parameter names read "layers.0.weight". */
#include <stdio.h>
#include "autograd/internal.h"
#include "nn/internal.h"

static tg_tensor *feedforward_forward(tg_module *self, tg_tensor *x)
{
    return tg_module_forward(self->children[0], x);
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
