/* Gradient checking against central finite differences, in float64.
 *
 * Element mode perturbs every input element: 2 evaluations each. Projection mode (for large
 * inputs) compares directional derivatives instead: for a random direction u the tape gives
 * <grad f, u> and the differences give (f(x+eps·u) - f(x-eps·u)) / 2eps — one pair of
 * evaluations per projection, whatever the input size. */
#include <math.h>
#include <string.h>
#include "autograd/internal.h"

tg_gradcheck_opts tg_gradcheck_defaults(void)
{
    return (tg_gradcheck_opts){.eps = 1e-6, .atol = 1e-5, .rtol = 1e-3, .projections = 0,
                               .seed = 1234, .quiet = false};
}

static void check_inputs(tg_tensor **inputs, int n)
{
    for (int k = 0; k < n; k++) {
        tg_check_live(inputs[k], "tg_gradcheck");
        if (inputs[k]->dtype != TG_F64 || !inputs[k]->persistent || !inputs[k]->requires_grad)
            tg_fail("tg_gradcheck: input %d must be a persistent float64 tensor with "
                     "requires_grad (finite differences in float32 are too coarse)", k);
    }
}

/* f evaluated without recording; the tape is left as it was found (empty). */
static double evaluate(tg_scalar_fn f, tg_tensor **inputs, int n, void *ctx)
{
    bool previous = tg_set_grad_enabled(false);
    tg_tensor *y = f(inputs, n, ctx);
    tg_check_live(y, "tg_gradcheck");
    if (y->numel != 1)
        tg_fail("tg_gradcheck: the function must return one element, got %lld",
                 (long long)y->numel);
    double v = tg_get_flat(y, 0);
    tg_set_grad_enabled(previous);
    tg_tape_reset();
    return v;
}

/* Analytic gradients into persistent copies, one per input. */
static void analytic_gradients(tg_scalar_fn f, tg_tensor **inputs, int n, void *ctx,
                               tg_tensor **grads)
{
    for (int k = 0; k < n; k++) tg_zero_grad(inputs[k]);
    tg_tensor *y = f(inputs, n, ctx);
    tg_backward(y);
    for (int k = 0; k < n; k++) {
        tg_tensor *g = tg_get_grad(inputs[k]); /* zeros where the backward did not reach it */
        grads[k] = g ? tg_clone(g) : tg_zeros(TG_F64, inputs[k]->ndim, inputs[k]->shape);
    }
    tg_tape_reset();
}

static double excess(double analytic, double numeric, const tg_gradcheck_opts *o)
{
    return fabs(analytic - numeric) - (o->atol + o->rtol * fabs(numeric));
}

static void consider(tg_gradcheck_result *r, int input, int64_t index, double analytic,
                     double numeric, const tg_gradcheck_opts *o)
{
    double e = excess(analytic, numeric, o);
    if (!isfinite(analytic) || !isfinite(numeric)) e = INFINITY; /* never hidden by a NaN compare */
    r->checked++;
    if (r->checked == 1 || e > r->error) {
        r->error = e;
        r->worst_input = input;
        r->worst_index = index;
        r->analytic = analytic;
        r->numeric = numeric;
    }
}

static void check_elements(tg_scalar_fn f, tg_tensor **inputs, int n, void *ctx,
                           tg_tensor **grads, const tg_gradcheck_opts *o, tg_gradcheck_result *r)
{
    for (int k = 0; k < n; k++) {
        double *x = inputs[k]->data;
        for (int64_t i = 0; i < inputs[k]->numel; i++) {
            double saved = x[i];
            x[i] = saved + o->eps;
            double plus = evaluate(f, inputs, n, ctx);
            x[i] = saved - o->eps;
            double minus = evaluate(f, inputs, n, ctx);
            x[i] = saved;
            consider(r, k, i, ((double *)grads[k]->data)[i], (plus - minus) / (2 * o->eps), o);
        }
    }
}

static void shift_all(tg_tensor **inputs, tg_tensor **dirs, int n, double scale)
{
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < inputs[k]->numel; i++)
            ((double *)inputs[k]->data)[i] += scale * ((double *)dirs[k]->data)[i];
}

static void check_projections(tg_scalar_fn f, tg_tensor **inputs, int n, void *ctx,
                              tg_tensor **grads, const tg_gradcheck_opts *o,
                              tg_gradcheck_result *r)
{
    tg_rng rng;
    tg_rng_seed(&rng, o->seed);
    tg_tensor **dirs = tg__malloc((size_t)(n > 0 ? n : 1) * sizeof *dirs);
    for (int p = 0; p < o->projections; p++) {
        double analytic = 0;
        for (int k = 0; k < n; k++) {
            dirs[k] = tg_rand_normal(TG_F64, inputs[k]->ndim, inputs[k]->shape, 0, 1, &rng);
            for (int64_t i = 0; i < inputs[k]->numel; i++)
                analytic += ((double *)grads[k]->data)[i] * ((double *)dirs[k]->data)[i];
        }
        shift_all(inputs, dirs, n, o->eps);
        double plus = evaluate(f, inputs, n, ctx);
        shift_all(inputs, dirs, n, -2 * o->eps);
        double minus = evaluate(f, inputs, n, ctx);
        shift_all(inputs, dirs, n, o->eps);
        consider(r, -1, p, analytic, (plus - minus) / (2 * o->eps), o);
        for (int k = 0; k < n; k++) tg_free(dirs[k]);
    }
    tg__free(dirs);
}

tg_gradcheck_result tg_gradcheck(tg_scalar_fn f, tg_tensor **inputs, int n, void *ctx,
                                 const tg_gradcheck_opts *opts)
{
    tg_gradcheck_opts o = opts ? *opts : tg_gradcheck_defaults();
    tg_gradcheck_result r = {.ok = true, .worst_input = -1};
    check_inputs(inputs, n);
    tg_tensor **grads = tg__malloc((size_t)(n > 0 ? n : 1) * sizeof *grads);
    analytic_gradients(f, inputs, n, ctx, grads);
    if (o.projections > 0) check_projections(f, inputs, n, ctx, grads, &o, &r);
    else check_elements(f, inputs, n, ctx, grads, &o, &r);
    for (int k = 0; k < n; k++) {
        tg_free(grads[k]);
        tg_zero_grad(inputs[k]);
    }
    tg__free(grads);
    r.ok = r.error <= 0 && isfinite(r.analytic) && isfinite(r.numeric);
    if (r.checked == 0) r.ok = true;
    if (!r.ok && !o.quiet)
        fprintf(stderr, "gradcheck failed: %s %d, index %lld: analytic %.10g, numeric %.10g "
                        "(tolerance exceeded by %.3g)\n",
                r.worst_input < 0 ? "projection" : "input",
                r.worst_input < 0 ? (int)r.worst_index : r.worst_input,
                (long long)r.worst_index, r.analytic, r.numeric, r.error);
    return r;
}

/* Row i of the Jacobian is the gradient of output i: one backward per output, seeded with e_i. */
tg_tensor *tg_jacobian(tg_vector_fn f, tg_tensor *input, void *ctx)
{
    tg_check_float(input, "tg_jacobian");
    tg_tensor *y = f(input, ctx);
    int64_t m = y->numel, n = input->numel;
    tg_tensor *seed = tg_zeros(y->dtype, y->ndim, y->shape); /* e_i, shaped like the output */
    tg_tape_reset();
    tg_tensor *jac = tg_zeros(TG_F64, TG_SHAPE(m, n));
    for (int64_t i = 0; i < m; i++) {
        tg_zero_grad(input);
        tg_set_flat(seed, i, 1.0);
        tg_backward_with(f(input, ctx), seed);
        tg_set_flat(seed, i, 0.0);
        tg_tensor *g = tg_get_grad(input);
        for (int64_t j = 0; g && j < n; j++) tg_set_flat(jac, i * n + j, tg_get_flat(g, j));
        tg_tape_reset();
    }
    tg_zero_grad(input);
    tg_free(seed);
    return jac;
}

tg_tensor *tg_jacobian_numeric(tg_vector_fn f, tg_tensor *input, void *ctx, double eps)
{
    tg_check_float(input, "tg_jacobian_numeric");
    bool previous = tg_set_grad_enabled(false);
    int64_t m = f(input, ctx)->numel, n = input->numel;
    tg_tape_reset();
    tg_tensor *jac = tg_zeros(TG_F64, TG_SHAPE(m, n));
    for (int64_t j = 0; j < n; j++) {
        double saved = tg_get_flat(input, j);
        tg_set_flat(input, j, saved + eps);
        tg_tensor *plus = tg_clone(f(input, ctx));
        tg_tape_reset();
        tg_set_flat(input, j, saved - eps);
        tg_tensor *minus = f(input, ctx);
        for (int64_t i = 0; i < m; i++)
            tg_set_flat(jac, i * n + j,
                        (tg_get_flat(plus, i) - tg_get_flat(minus, i)) / (2 * eps));
        tg_tape_reset();
        tg_free(plus);
        tg_set_flat(input, j, saved);
    }
    tg_set_grad_enabled(previous);
    return jac;
}

/* ---- second order ---------------------------------------------------------------------------
 * With fixed random weights w_k, h(x) = Σ_k <∂f/∂x_k, w_k> is a scalar built from the first
 * derivative. Its gradient through the differentiable backward (create_graph, then a second
 * backward) is compared with central differences of h, whose values come from the fast
 * first-order backward; so a differentiable backward that disagrees with its op's fast kernel
 * fails too. Before that, the gradients of both backwards are compared directly. */

typedef struct {
    tg_scalar_fn f;
    tg_tensor **inputs;
    int n;
    void *ctx;
    tg_tensor **w;
} second_order;

static double weighted_gradient(const second_order *s)
{
    tg_tensor *grads[TG_MAX_INPUTS * 4];
    tg_grad(s->f(s->inputs, s->n, s->ctx), NULL, s->n, s->inputs, grads, false);
    double h = 0;
    for (int k = 0; k < s->n; k++)
        for (int64_t i = 0; i < grads[k]->numel; i++)
            h += tg_get_flat(grads[k], i) * tg_get_flat(s->w[k], i);
    tg_tape_reset();
    return h;
}

/* dh/dx_k through create_graph, into persistent copies; also checks that the first derivatives
 * of the two backwards agree (r gets the comparison). */
static void second_derivatives(const second_order *s, tg_tensor **out, const tg_gradcheck_opts *o,
                               tg_gradcheck_result *first)
{
    tg_tensor *fast[TG_MAX_INPUTS * 4], *graph[TG_MAX_INPUTS * 4], *dh[TG_MAX_INPUTS * 4];
    /* Two analytic results: they must agree to rounding, not to finite-difference tolerances. */
    tg_gradcheck_opts tight = *o;
    tight.atol = 1e-12;
    tight.rtol = 1e-9;
    tg_tensor *y = s->f(s->inputs, s->n, s->ctx);
    tg_grad(y, NULL, s->n, s->inputs, fast, false);
    tg_grad(y, NULL, s->n, s->inputs, graph, true);
    tg_tensor *h = NULL;
    for (int k = 0; k < s->n; k++) {
        for (int64_t i = 0; i < fast[k]->numel; i++)
            consider(first, k, i, tg_get_flat(graph[k], i), tg_get_flat(fast[k], i), &tight);
        tg_tensor *term = tg_sum(tg_mul(graph[k], s->w[k]));
        h = h ? tg_add(h, term) : term;
    }
    if (h && h->requires_grad) tg_grad(h, NULL, s->n, s->inputs, dh, false);
    for (int k = 0; k < s->n; k++)
        out[k] = h && h->requires_grad ? tg_to_dtype(dh[k], TG_F64)
                                       : tg_zeros(TG_F64, s->inputs[k]->ndim, s->inputs[k]->shape);
    tg_tape_reset();
}

tg_gradcheck_result tg_gradgradcheck(tg_scalar_fn f, tg_tensor **inputs, int n, void *ctx,
                                     const tg_gradcheck_opts *opts)
{
    tg_gradcheck_opts o = opts ? *opts : tg_gradcheck_defaults();
    tg_gradcheck_result r = {.ok = true, .worst_input = -1};
    tg_gradcheck_result first = {.ok = true, .worst_input = -1};
    if (n > TG_MAX_INPUTS * 4)
        tg_fail("tg_gradgradcheck: at most %d inputs (got %d)", TG_MAX_INPUTS * 4, n);
    check_inputs(inputs, n);
    tg_rng rng;
    tg_rng_seed(&rng, o.seed);
    tg_tensor *w[TG_MAX_INPUTS * 4], *second[TG_MAX_INPUTS * 4];
    for (int k = 0; k < n; k++)
        w[k] = tg_rand_normal(TG_F64, inputs[k]->ndim, inputs[k]->shape, 0, 1, &rng);
    second_order s = {f, inputs, n, ctx, w};
    second_derivatives(&s, second, &o, &first);
    for (int k = 0; k < n; k++) {
        double *x = inputs[k]->data;
        for (int64_t i = 0; i < inputs[k]->numel; i++) {
            double saved = x[i];
            x[i] = saved + o.eps;
            double plus = weighted_gradient(&s);
            x[i] = saved - o.eps;
            double minus = weighted_gradient(&s);
            x[i] = saved;
            consider(&r, k, i, ((double *)second[k]->data)[i], (plus - minus) / (2 * o.eps), &o);
        }
    }
    for (int k = 0; k < n; k++) tg_free(w[k]), tg_free(second[k]);
    bool first_ok = first.checked == 0 || first.error <= 0;
    r.ok = (r.checked == 0 || (r.error <= 0 && isfinite(r.analytic) && isfinite(r.numeric))) &&
           first_ok;
    if (!first_ok && !o.quiet)
        fprintf(stderr, "gradgradcheck failed: the differentiable backward's gradient of input "
                        "%d, index %lld, is %.10g but the fast backward's is %.10g\n",
                first.worst_input, (long long)first.worst_index, first.analytic, first.numeric);
    else if (!r.ok && !o.quiet)
        fprintf(stderr, "gradgradcheck failed: input %d, index %lld: second derivative %.10g, "
                        "numeric %.10g (tolerance exceeded by %.3g)\n", r.worst_input,
                (long long)r.worst_index, r.analytic, r.numeric, r.error);
    if (!first_ok) r = first, r.ok = false;
    return r;
}
