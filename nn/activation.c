/* Activation modules: parameter-free wrappers around the elementwise ops. */
#include <string.h>
#include "autograd/internal.h"
#include "nn/internal.h"

static tg_tensor *identity(tg_tensor *x) { return x; }

static tg_tensor *relu_forward(tg_module *self, tg_tensor *x) { return tg_relu(x); }
static tg_tensor *tanh_forward(tg_module *self, tg_tensor *x) { return tg_tanh(x); }
static tg_tensor *sigmoid_forward(tg_module *self, tg_tensor *x) { return tg_sigmoid(x); }
static tg_tensor *square_forward(tg_module *self, tg_tensor *x) { return tg_square(x); }
static tg_tensor *identity_forward(tg_module *self, tg_tensor *x) { return x; }

static const struct {
    const char *name, *kind;
    tg_forward_fn forward;
    tg_activation_fn fn;
} table[] = {
    {"relu", "ReLU", relu_forward, tg_relu},
    {"tanh", "Tanh", tanh_forward, tg_tanh},
    {"sigmoid", "Sigmoid", sigmoid_forward, tg_sigmoid},
    {"square", "Square", square_forward, tg_square},
    {"identity", "Identity", identity_forward, identity},
};
enum { N_ACT = sizeof table / sizeof table[0] };

static tg_module *make(int k)
{
    return tg_module_new(sizeof(tg_module), table[k].kind, table[k].forward);
}

tg_module *tg_relu_new(void) { return make(0); }
tg_module *tg_tanh_new(void) { return make(1); }
tg_module *tg_sigmoid_new(void) { return make(2); }
tg_module *tg_square_new(void) { return make(3); }
tg_module *tg_identity_new(void) { return make(4); }

static int lookup(const char *name)
{
    for (int k = 0; name && k < N_ACT; k++)
        if (strcmp(table[k].name, name) == 0) return k;
    tg_status_set(TG_ERR_VALUE, "unknown activation '%s' (expected relu, tanh, sigmoid, square or "
                  "identity)", name ? name : "(null)");
    return -1;
}

tg_module *tg_activation_new(const char *name)
{
    int k = lookup(name);
    return k < 0 ? NULL : make(k);
}

tg_activation_fn tg_activation_fn_by_name(const char *name)
{
    int k = lookup(name);
    return k < 0 ? NULL : table[k].fn;
}
