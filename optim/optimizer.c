/* The common optimizer interface and the step-decay learning-rate schedule. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/internal.h"
#include "nn/internal.h"
#include "optim/internal.h"

tg_optimizer *tg__optimizer_new(const char *kind, const tg_param_list *params, double lr,
                                int n_state, const char *const *state_names)
{
    if (!params) tg__fail("tg_%s_new: NULL parameter list", kind);
    if (!(lr >= 0) || !isfinite(lr))
        tg__fail("tg_%s_new: learning rate must be finite and >= 0 (got %g)", kind, lr);
    /* Every check before the first allocation: a failed check leaks nothing. */
    for (int i = 0; i < params->n; i++) {
        tg__check_float(params->tensors[i], kind);
        for (int j = 0; j < i; j++)
            if (params->tensors[j] == params->tensors[i])
                tg__fail("tg_%s_new: parameter '%s' is listed twice (as '%s'); it would be "
                         "updated twice per step", kind, params->names[i], params->names[j]);
    }
    tg_optimizer *o = calloc(1, sizeof *o);
    if (!o) tg__fail("tg_%s_new: out of memory", kind);
    o->kind = kind;
    o->lr = lr;
    o->n = params->n;
    o->n_state = n_state;
    for (int k = 0; k < n_state; k++) o->state_names[k] = state_names[k];
    o->params = tg__xrealloc(NULL, (size_t)o->n * sizeof *o->params);
    o->names = tg__xrealloc(NULL, (size_t)o->n * sizeof *o->names);
    o->param_steps = tg__xrealloc(NULL, (size_t)o->n * sizeof *o->param_steps);
    o->state = tg__xrealloc(NULL, (size_t)(n_state * o->n) * sizeof *o->state);
    for (int i = 0; i < o->n; i++) {
        tg_tensor *p = params->tensors[i];
        o->params[i] = p;
        o->names[i] = tg__xstrdup(params->names[i]);
        o->param_steps[i] = 0;
        for (int k = 0; k < n_state; k++)
            o->state[k * o->n + i] = tg_zeros(p->dtype, p->ndim, p->shape);
    }
    return o;
}

tg_tensor *tg__optimizer_state(const tg_optimizer *opt, int k, int i)
{
    return opt->state[k * opt->n + i];
}

static void check(const tg_optimizer *opt, const char *op)
{
    if (!opt || !opt->step) tg__fail("%s: got a NULL or freed optimizer", op);
}

void tg_optimizer_step(tg_optimizer *opt)
{
    check(opt, "tg_optimizer_step");
    opt->step(opt);
    opt->steps++;
}

void tg_optimizer_zero_grad(tg_optimizer *opt)
{
    check(opt, "tg_optimizer_zero_grad");
    for (int i = 0; i < opt->n; i++) tg_zero_grad(opt->params[i]);
}

void tg_optimizer_set_lr(tg_optimizer *opt, double lr)
{
    check(opt, "tg_optimizer_set_lr");
    if (!(lr >= 0) || !isfinite(lr))
        tg__fail("tg_optimizer_set_lr: learning rate must be finite and >= 0 (got %g)", lr);
    opt->lr = lr;
}

double tg_optimizer_lr(const tg_optimizer *opt)
{
    check(opt, "tg_optimizer_lr");
    return opt->lr;
}

int64_t tg_optimizer_steps(const tg_optimizer *opt)
{
    check(opt, "tg_optimizer_steps");
    return opt->steps;
}

const char *tg_optimizer_kind(const tg_optimizer *opt)
{
    check(opt, "tg_optimizer_kind");
    return opt->kind;
}

void tg_optimizer_free(tg_optimizer *opt)
{
    if (!opt) return;
    for (int i = 0; i < opt->n_state * opt->n; i++) tg_free(opt->state[i]);
    for (int i = 0; i < opt->n; i++) free(opt->names[i]);
    free(opt->state);
    free(opt->names);
    free(opt->params);
    free(opt->param_steps);
    opt->step = NULL;
    free(opt);
}

double tg_lr_step_decay(double base_lr, int64_t epoch, int64_t step_size, double gamma)
{
    if (step_size <= 0 || epoch < 0)
        tg__fail("tg_lr_step_decay: need step_size > 0 and epoch >= 0 (got %lld, %lld)",
                 (long long)step_size, (long long)epoch);
    return base_lr * pow(gamma, (double)(epoch / step_size));
}

double tg_optimizer_step_decay(tg_optimizer *opt, double base_lr, int64_t epoch,
                               int64_t step_size, double gamma)
{
    double lr = tg_lr_step_decay(base_lr, epoch, step_size, gamma);
    tg_optimizer_set_lr(opt, lr);
    return lr;
}
