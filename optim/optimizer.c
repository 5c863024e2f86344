/* The optimizer core: parameter groups, per-parameter step counts and state, the loop over
 * parameters that calls a kind's update, and the step-decay schedule. Nothing here knows any
 * particular optimizer. */
#include <math.h>
#include <string.h>
#include "autograd/blas.h"
#include "autograd/internal.h"
#include "optim/internal.h"

static void check(const tg_optimizer *opt, const char *fn)
{
    if (!opt || !opt->kind) tg_fail("%s: got a NULL or freed optimizer", fn);
}

static void check_group(const tg_optimizer *opt, int group, const char *fn)
{
    check(opt, fn);
    if (group < 0 || group >= opt->n_groups)
        tg_fail("%s: group %d does not exist (the optimizer has %d)", fn, group, opt->n_groups);
}

static void check_rate(const char *fn, const char *kind, const char *what, double v)
{
    if (!(v >= 0) || !isfinite(v))
        tg_fail("%s (%s): %s must be finite and >= 0 (got %g)", fn, kind, what, v);
}

static double read_double(const void *settings, size_t offset)
{
    double v;
    memcpy(&v, (const char *)settings + offset, sizeof v);
    return v;
}

/* Every check before the first allocation: a failed check leaks nothing. opt is NULL while the
 * optimizer is being created. */
static void check_new_params(const char *kind, const tg_optimizer *opt,
                             const tg_param_list *params, const char *fn)
{
    if (!params) tg_fail("%s (%s): NULL parameter list", fn, kind);
    for (int i = 0; i < params->n; i++) {
        tg_check_float(params->tensors[i], fn);
        for (int j = 0; j < i; j++)
            if (params->tensors[j] == params->tensors[i])
                tg_fail("%s (%s): parameter '%s' is listed twice (as '%s'); it would be "
                         "updated twice per step", fn, kind, params->names[i], params->names[j]);
        for (int j = 0; opt && j < opt->n; j++)
            if (opt->params[j] == params->tensors[i])
                tg_fail("%s (%s): parameter '%s' is already in group %d (as '%s'); a parameter "
                         "belongs to one group", fn, kind, params->names[i],
                         opt->group_of[j], opt->names[j]);
    }
}

static void check_not_in_backward(const tg_tensor *p, const char *name, const char *fn)
{
    if (p->in_backward)
        tg_fail("%s: parameter '%s' is already updated in backward by another optimizer "
                "(tg_optimizer_set_in_backward); a parameter has one", fn, name);
}

void tg__optimizer_init_state(tg_optimizer *opt, int i)
{
    for (int k = 0; k < opt->n_state; k++) {
        double v = opt->kind->state_init ? opt->kind->state_init(opt->settings, k) : 0.0;
        tg_fill_(opt->state[i * opt->n_state + k], v);
    }
}

/* (Re)allocates the per-parameter bookkeeping of updates in backward for parameters from
 * `first` on and points every parameter at its entry (a realloc may have moved the earlier).
 * Records already on the tape were not counted and may read these parameters: they count as
 * read twice until tg_tape_reset, so this tape's backward takes the usual path. */
static void point_at_in_backward(tg_optimizer *opt, int first)
{
    opt->in_backward = tg__xrealloc(opt->in_backward, (size_t)opt->n * sizeof *opt->in_backward);
    uint32_t uses = tg_tape_length() ? 2 : 0;
    for (int i = first; i < opt->n; i++)
        opt->in_backward[i] = (struct tg_in_backward){
            .opt = opt, .param = opt->params[i], .index = i,
            .generation = tg__tape_generation(), .uses = uses};
    for (int i = 0; i < opt->n; i++)
        if (opt->in_backward[i].param) opt->in_backward[i].param->in_backward = &opt->in_backward[i];
}

static void release_in_backward(tg_optimizer *opt)
{
    for (int i = 0; opt->in_backward && i < opt->n; i++)
        if (opt->in_backward[i].param) opt->in_backward[i].param->in_backward = NULL;
    tg__free(opt->in_backward);
    opt->in_backward = NULL;
}

static int append_group(tg_optimizer *opt, const tg_param_list *params, double lr, double wd)
{
    int g = opt->n_groups++, n0 = opt->n, n = opt->n + params->n;
    opt->groups = tg__xrealloc(opt->groups, (size_t)opt->n_groups * sizeof *opt->groups);
    opt->groups[g] = (tg__optim_group){.lr = lr, .initial_lr = lr, .weight_decay = wd};
    opt->params = tg__xrealloc(opt->params, (size_t)n * sizeof *opt->params);
    opt->names = tg__xrealloc(opt->names, (size_t)n * sizeof *opt->names);
    opt->group_of = tg__xrealloc(opt->group_of, (size_t)n * sizeof *opt->group_of);
    opt->param_steps = tg__xrealloc(opt->param_steps, (size_t)n * sizeof *opt->param_steps);
    opt->state = tg__xrealloc(opt->state, (size_t)(n * opt->n_state) * sizeof *opt->state);
    for (int j = 0; j < params->n; j++) {
        int i = n0 + j;
        tg_tensor *p = params->tensors[j];
        opt->params[i] = p;
        opt->names[i] = tg__xstrdup(params->names[j]);
        opt->group_of[i] = g;
        opt->param_steps[i] = 0;
        for (int k = 0; k < opt->n_state; k++)
            opt->state[i * opt->n_state + k] = tg_zeros(p->dtype, p->ndim, p->shape);
        tg__optimizer_init_state(opt, i);
    }
    opt->n = n;
    if (opt->in_backward) point_at_in_backward(opt, n0);
    return g;
}

tg_optimizer *tg_optimizer_new(const tg_optimizer_kind *kind, const tg_param_list *params,
                               const void *settings)
{
    const char *fn = "tg_optimizer_new";
    if (!kind || !kind->name || !kind->update || !kind->state_names)
        tg_fail("%s: the optimizer kind needs at least a name, state_names and update", fn);
    if (!settings) tg_fail("%s (%s): NULL settings", fn, kind->name);
    if (kind->lr_offset + sizeof(double) > kind->settings_size ||
        kind->weight_decay_offset + sizeof(double) > kind->settings_size)
        tg_fail("%s (%s): lr_offset / weight_decay_offset lie outside the %zu-byte settings",
                 fn, kind->name, kind->settings_size);
    char why[256] = "";
    if (kind->validate && !kind->validate(settings, why, sizeof why))
        tg_fail("%s (%s): %s", fn, kind->name, why);

    double lr = read_double(settings, kind->lr_offset);
    double wd = read_double(settings, kind->weight_decay_offset);
    check_rate(fn, kind->name, "the learning rate", lr);
    check_rate(fn, kind->name, "weight_decay", wd);
    const char *names[TG_OPTIM_MAX_STATE] = {0};
    int n_state = kind->state_names(settings, names);
    if (n_state < 0 || n_state > TG_OPTIM_MAX_STATE)
        tg_fail("%s (%s): state_names returned %d; 0 to %d state tensors are possible", fn,
                 kind->name, n_state, TG_OPTIM_MAX_STATE);
    check_new_params(kind->name, NULL, params, fn);

    tg_optimizer *o = tg__calloc(sizeof *o);
    o->kind = kind;
    o->settings = tg__malloc(kind->settings_size ? kind->settings_size : 1);
    memcpy(o->settings, settings, kind->settings_size);
    o->n_state = n_state;
    for (int k = 0; k < n_state; k++) o->state_names[k] = names[k];
    append_group(o, params, lr, wd);
    return o;
}

int tg_optimizer_add_group(tg_optimizer *opt, const tg_param_list *params, double lr,
                           double weight_decay)
{
    const char *fn = "tg_optimizer_add_group";
    check(opt, fn);
    check_rate(fn, opt->kind->name, "the learning rate", lr);
    check_rate(fn, opt->kind->name, "weight_decay", weight_decay);
    check_new_params(opt->kind->name, opt, params, fn);
    for (int i = 0; opt->in_backward && i < params->n; i++)
        check_not_in_backward(params->tensors[i], params->names[i], fn);
    return append_group(opt, params, lr, weight_decay);
}

/* Parameters from this many elements are updated in slices on the product threads (an
 * elementwise kind only): the update is a memory-bound pass, and from this size it takes long
 * enough to cover handing slices to the pool's workers. The figures: docs/speed.md, Optimizer
 * updates on the product threads. */
#ifndef TG_OPTIM_SPLIT_MIN
#define TG_OPTIM_SPLIT_MIN (1 << 18)
#endif

/* Elements [lo, hi) of t as a one-axis tensor over its data (a header on the stack). */
static tg_tensor slice_of(const tg_tensor *t, int64_t lo, int64_t hi)
{
    tg_tensor v = *t;
    v.ndim = 1;
    for (int i = 0; i < TG_MAX_DIMS; i++) v.shape[i] = 0;
    v.shape[0] = v.numel = hi - lo;
    v.data = (char *)t->data + (size_t)lo * tg_dtype_size(t->dtype);
    v.grad = NULL;
    v.node = NULL;
    v.owns_data = false;
    v.in_backward = NULL;
    return v;
}

typedef struct {
    const tg_optimizer_kind *kind;
    const tg_optim_update *whole;
    int n_state;
} sliced_update;

static void update_slice(void *ctx, int64_t lo, int64_t hi)
{
    const sliced_update *s = ctx;
    const tg_optim_update *w = s->whole;
    tg_tensor param = slice_of(w->param, lo, hi), grad = slice_of(w->grad, lo, hi);
    tg_tensor state[TG_OPTIM_MAX_STATE], *states[TG_OPTIM_MAX_STATE];
    for (int k = 0; k < s->n_state; k++) {
        state[k] = slice_of(w->state[k], lo, hi);
        states[k] = &state[k];
    }
    tg_optim_update u = *w;
    u.param = &param;
    u.grad = &grad;
    u.state = states;
    s->kind->update(&u);
}

static void run_update(const tg_optimizer *opt, const tg_optim_update *u)
{
    if (!opt->kind->elementwise || u->param->numel < TG_OPTIM_SPLIT_MIN) {
        opt->kind->update(u);
        return;
    }
    sliced_update s = {opt->kind, u, opt->n_state};
    tg__parallel_ranges(u->param->numel, TG_OPTIM_SPLIT_MIN, update_slice, &s);
}

bool tg__in_backward_rule(const struct tg_in_backward *ib, double *alpha, double *beta)
{
    const tg_optimizer *opt = ib->opt;
    const tg__optim_group *g = &opt->groups[opt->group_of[ib->index]];
    return opt->kind->in_backward_rule(opt->settings, g->lr, g->weight_decay, alpha, beta);
}

const char *tg__in_backward_name(const struct tg_in_backward *ib)
{
    return ib->opt->names[ib->index];
}

bool tg_optimizer_set_in_backward(tg_optimizer *opt, bool on)
{
    const char *fn = "tg_optimizer_set_in_backward";
    check(opt, fn);
    if (!on) {
        /* step() would forget the update and apply the rule to the zero gradient again */
        for (int i = 0; opt->in_backward && i < opt->n; i++)
            if (opt->in_backward[i].updated)
                tg_fail("%s: parameter '%s' was updated by the last tg_backward and step() has "
                        "not counted it yet; call tg_optimizer_step first", fn, opt->names[i]);
        release_in_backward(opt);
        return true;
    }
    double alpha, beta;
    const tg__optim_group *g0 = &opt->groups[0];
    if (!opt->kind->in_backward_rule ||
        !opt->kind->in_backward_rule(opt->settings, g0->lr, g0->weight_decay, &alpha, &beta))
        return false;
    if (opt->in_backward) return true;
    for (int i = 0; i < opt->n; i++) check_not_in_backward(opt->params[i], opt->names[i], fn);
    point_at_in_backward(opt, 0);
    return true;
}

bool tg_optimizer_in_backward(const tg_optimizer *opt)
{
    check(opt, "tg_optimizer_in_backward");
    return opt->in_backward != NULL;
}

/* The gradient a backward accumulated, or NULL when it holds none (never reached, or zero_grad
 * left it pending). */
static const tg_tensor *accumulated_grad(const tg_tensor *p)
{
    return p->grad && !p->grad->zero_pending ? p->grad : NULL;
}

void tg_optimizer_step(tg_optimizer *opt)
{
    check(opt, "tg_optimizer_step");
    for (int i = 0; i < opt->n; i++) {
        tg_tensor *p = opt->params[i];
        bool updated = opt->in_backward && opt->in_backward[i].updated;
        if (updated) opt->in_backward[i].updated = false;
        /* zeros written where zero_grad left them pending, so that no kind reads stale values;
         * a parameter updated in backward takes only a gradient written since (by hand: the
         * tape refuses another backward that reads it before this step) */
        const tg_tensor *grad = updated ? accumulated_grad(p) : tg_get_grad(p);
        if (!grad && updated) opt->param_steps[i]++;
        if (!grad) continue; /* never reached by a backward: no update, no state */
        const tg__optim_group *g = &opt->groups[opt->group_of[i]];
        tg_optim_update u = {
            .param = p,
            .grad = grad,
            .state = opt->state + (size_t)i * (size_t)opt->n_state,
            .step = ++opt->param_steps[i],
            .lr = g->lr,
            .weight_decay = g->weight_decay,
            .settings = opt->settings,
        };
        run_update(opt, &u);
    }
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
    check_rate("tg_optimizer_set_lr", opt->kind->name, "the learning rate", lr);
    for (int g = 0; g < opt->n_groups; g++) opt->groups[g].lr = lr;
}

double tg_optimizer_lr(const tg_optimizer *opt)
{
    check(opt, "tg_optimizer_lr");
    return opt->groups[0].lr;
}

int tg_optimizer_num_groups(const tg_optimizer *opt)
{
    check(opt, "tg_optimizer_num_groups");
    return opt->n_groups;
}

double tg_optimizer_group_lr(const tg_optimizer *opt, int group)
{
    check_group(opt, group, "tg_optimizer_group_lr");
    return opt->groups[group].lr;
}

void tg_optimizer_set_group_lr(tg_optimizer *opt, int group, double lr)
{
    check_group(opt, group, "tg_optimizer_set_group_lr");
    check_rate("tg_optimizer_set_group_lr", opt->kind->name, "the learning rate", lr);
    opt->groups[group].lr = lr;
}

double tg_optimizer_group_weight_decay(const tg_optimizer *opt, int group)
{
    check_group(opt, group, "tg_optimizer_group_weight_decay");
    return opt->groups[group].weight_decay;
}

int64_t tg_optimizer_steps(const tg_optimizer *opt)
{
    check(opt, "tg_optimizer_steps");
    return opt->steps;
}

const char *tg_optimizer_name(const tg_optimizer *opt)
{
    check(opt, "tg_optimizer_name");
    return opt->kind->name;
}

void tg_optimizer_free(tg_optimizer *opt)
{
    if (!opt) return;
    release_in_backward(opt);
    for (int i = 0; i < opt->n_state * opt->n; i++) tg_free(opt->state[i]);
    for (int i = 0; i < opt->n; i++) tg__free(opt->names[i]);
    tg__free(opt->state);
    tg__free(opt->names);
    tg__free(opt->params);
    tg__free(opt->group_of);
    tg__free(opt->param_steps);
    tg__free(opt->groups);
    tg__free(opt->settings);
    opt->kind = NULL;
    tg__free(opt);
}

double tg_lr_step_decay(double base_lr, int64_t epoch, int64_t step_size, double gamma)
{
    if (step_size <= 0 || epoch < 0)
        tg_fail("tg_lr_step_decay: need step_size > 0 and epoch >= 0 (got %lld, %lld)",
                 (long long)step_size, (long long)epoch);
    return base_lr * pow(gamma, (double)(epoch / step_size));
}

double tg_optimizer_step_lr(tg_optimizer *opt, int64_t epoch, int64_t step_size, double gamma)
{
    check(opt, "tg_optimizer_step_lr");
    for (int g = 0; g < opt->n_groups; g++)
        tg_optimizer_set_group_lr(
            opt, g, tg_lr_step_decay(opt->groups[g].initial_lr, epoch, step_size, gamma));
    return opt->groups[0].lr;
}

double tg_optimizer_step_decay(tg_optimizer *opt, double base_lr, int64_t epoch,
                               int64_t step_size, double gamma)
{
    double lr = tg_lr_step_decay(base_lr, epoch, step_size, gamma);
    tg_optimizer_set_lr(opt, lr);
    return lr;
}
