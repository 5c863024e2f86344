/* Sequential container: children "0", "1", ... applied in order. */
#include <stdarg.h>
#include <stdio.h>
#include "autograd/internal.h"
#include "nn/internal.h"

static tg_tensor *sequential_forward(tg_module *self, tg_tensor *x)
{
    for (int i = 0; i < self->n_children; i++)
        x = tg_module_forward(self->children[i], x);
    return x;
}

tg_module *tg_sequential_append(tg_module *seq, tg_module *m)
{
    if (!seq || seq->forward != sequential_forward)
        tg_fail("tg_sequential_append: expected a module made by tg_sequential_new, got %s",
                 seq && seq->kind ? seq->kind : "NULL");
    char name[16];
    snprintf(name, sizeof name, "%d", seq->n_children);
    return tg_module_add_child(seq, name, m);
}

tg_module *tg_sequential_from(int n, tg_module *const *modules)
{
    if (n < 0) tg_fail("tg_sequential_new: negative module count %d", n);
    tg_module *seq = tg_module_new(sizeof(tg_module), "Sequential", sequential_forward);
    for (int i = 0; i < n; i++) {
        if (!modules[i]) tg_fail("tg_sequential_new: module %d is NULL", i);
        tg_sequential_append(seq, modules[i]);
    }
    return seq;
}

tg_module *tg_sequential_new(int n, ...)
{
    if (n < 0) tg_fail("tg_sequential_new: negative module count %d", n);
    tg_module *seq = tg_module_new(sizeof(tg_module), "Sequential", sequential_forward);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        tg_module *m = va_arg(ap, tg_module *);
        if (!m) tg_fail("tg_sequential_new: module %d is NULL", i);
        tg_sequential_append(seq, m);
    }
    va_end(ap);
    return seq;
}
