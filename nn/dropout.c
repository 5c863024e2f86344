/* Dropout module: tg_dropout with the module's training flag. */
#include <math.h>
#include <stdio.h>
#include "autograd/internal.h"
#include "nn/internal.h"

typedef struct {
    tg_module base;
    double p;
    tg_rng *rng;    /* NULL: the global generator */
} dropout_module;

static tg_tensor *dropout_forward(tg_module *self, tg_tensor *x)
{
    dropout_module *d = (dropout_module *)self;
    return tg_dropout(x, d->p, self->training, d->rng);
}

static void dropout_describe(const tg_module *self, char *buf, size_t len)
{
    snprintf(buf, len, "p=%g", ((const dropout_module *)self)->p);
}

tg_module *tg_dropout_new_rng(double p, tg_rng *rng)
{
    if (!(p >= 0.0 && p < 1.0))
        tg_fail("tg_dropout_new: p must be in [0, 1) (got %g)", p);
    dropout_module *d = tg_module_new(sizeof *d, "Dropout", dropout_forward);
    d->base.describe = dropout_describe;
    d->p = p;
    d->rng = rng;
    return &d->base;
}

bool tg__dropout_module_params(const tg_module *m, double *p, tg_rng **rng)
{
    if (!m || m->forward != dropout_forward) return false;
    const dropout_module *d = (const dropout_module *)m;
    *p = d->p;
    *rng = d->rng;
    return true;
}

tg_module *tg_dropout_new(double p) { return tg_dropout_new_rng(p, NULL); }
