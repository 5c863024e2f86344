/* Losses: cross-entropy, mean squared error, multiclass hinge, binary logistic. Each is one fused
 * op returning a 0-d tensor (mean or sum over samples), computed in double whatever the dtype,
 * and stable for any finite input: cross-entropy through log-sum-exp, the logistic loss through
 * softplus(u) = max(u, 0) + log1p(exp(-|u|)), whose exp never overflows. A NaN in the input gives
 * a NaN loss, as in PyTorch, so that a diverged run shows.
 * Labels are copied into the arena for backward, so the caller may refill its label buffer. */
#include <string.h>
#include <tgmath.h>
#include "ops/kernel.h"

/* The factor that turns the per-sample sum into the result (the mean of nothing is NaN). */
static double reduction_scale(tg_reduction r, int64_t n, const char *op)
{
    if (r != TG_REDUCE_MEAN && r != TG_REDUCE_SUM)
        tg_fail("%s: unknown reduction %d; use TG_REDUCE_MEAN or TG_REDUCE_SUM", op, (int)r);
    return r == TG_REDUCE_SUM ? 1.0 : n ? 1.0 / (double)n : NAN;
}

static tg_tensor *scalar_out(tg_dtype dtype, double value)
{
    tg_tensor *out = tg_op_output(dtype, 0, NULL);
    if (dtype == TG_F64) *(double *)out->data = value;
    else *(float *)out->data = (float)value;
    return out;
}

/* d(loss)/d(per-sample sum): the output's gradient times the reduction's factor. */
static double grad_scale(const tg_node *node, double scale)
{
    const void *g = tg_op_grad_out(node);
    return (node->out->dtype == TG_F64 ? *(const double *)g : *(const float *)g) * scale;
}

/* One-hot rows [N, C] of the step, no gradient through them: +1 at plus[i], -1 at minus[i]
 * (either may be NULL). */
static tg_tensor *one_hot(const tg_tensor *x, const int32_t *plus, const int32_t *minus)
{
    tg_tensor *h = tg__constant_like(x, 0);
    int64_t c = x->shape[1];
    for (int64_t i = 0; i < x->shape[0]; i++) {
        if (plus) tg_set_flat(h, i * c + plus[i], tg_get_flat(h, i * c + plus[i]) + 1);
        if (minus) tg_set_flat(h, i * c + minus[i], tg_get_flat(h, i * c + minus[i]) - 1);
    }
    return h;
}

static void *arena_copy(const void *src, size_t bytes)
{
    void *p = tg_op_scratch(bytes);
    if (bytes) memcpy(p, src, bytes);
    return p;
}

/* scores [N, C] float, labels int32 [N], every label in [0, C). */
static void check_classes(const tg_tensor *x, const tg_tensor *labels, const char *op)
{
    char s1[128], s2[128];
    tg_check_float(x, op);
    tg_check_live(labels, op);
    if (x->ndim != 2 || labels->dtype != TG_I32 || labels->ndim != 1 ||
        labels->shape[0] != x->shape[0])
        tg_fail("%s: need scores [N, C] and int32 labels [N], got %s and %s", op,
                 tg_shape_str(x, s1, sizeof s1), tg_shape_str(labels, s2, sizeof s2));
    const int32_t *y = labels->data;
    for (int64_t i = 0; i < labels->numel; i++)
        if (y[i] < 0 || y[i] >= x->shape[1])
            tg_fail("%s: label %d in row %lld is outside [0, %lld) (scores %s)", op, (int)y[i],
                     (long long)i, (long long)x->shape[1], tg_shape_str(x, s1, sizeof s1));
}

/* ---- cross-entropy: loss_i = lse_i - x_iy with lse_i = log Σ_j exp(x_ij) ---- */

/* With m the row's first maximum, e_ij = exp(x_ij - m) (1 at that maximum, NaN for m = +inf, so
 * that a diverged row's gradient is NaN as in PyTorch) and
 * r = Σ_{j ≠ that one} e_ij:
 *   loss_i = (m - x_iy) + log1p(r),
 * exact in its first term and accurate to the last digit for a confident row (r tiny), where
 * lse_i - x_iy would lose everything below lse_i's last digit. The row's exponentials are kept
 * for the backward, softmax_ij = e_ij / (1 + r), so that it computes none (they were most of
 * a small classifier's loss): sm, of n rows of c + 1 doubles, holds 1 / (1 + r) and then
 * e_i0 .. e_i(c-1). */
#define CE_KERNELS(T, S)                                                                       \
    static double ce_fwd_##S(int64_t n, int64_t c, const void *px, const int32_t *y,           \
                             double *sm)                                                       \
    {                                                                                          \
        double total = 0;                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                     \
            const T *x = (const T *)px + i * c;                                                \
            double *e = sm + i * (c + 1) + 1;                                                  \
            double m = -INFINITY, r = 0;                                                       \
            int64_t top = 0;                                                                   \
            for (int64_t j = 0; j < c; j++)                                                   \
                if (x[j] > m) m = x[j], top = j; /* a NaN reaches r below */                  \
            for (int64_t j = 0; j < c; j++) {                                                 \
                e[j] = exp((double)x[j] - m); /* 1 at top, NaN there for m = +inf */         \
                if (j != top) r += e[j];                                                       \
            }                                                                                  \
            e[-1] = 1 / (1 + r);                                                               \
            total += (m - (double)x[y[i]]) + log1p(r);                                         \
        }                                                                                      \
        return total;                                                                          \
    }                                                                                          \
    static void ce_bwd_##S(int64_t n, int64_t c, const int32_t *y, const double *sm,           \
                           double gs, void *pgx)                                               \
    {                                                                                          \
        T *gx = pgx;                                                                           \
        for (int64_t i = 0; i < n; i++) {                                                     \
            const double *e = sm + i * (c + 1) + 1, inv = e[-1];                               \
            for (int64_t j = 0; j < c; j++)                                                   \
                gx[i * c + j] += (T)(gs * (e[j] * inv - (j == y[i])));                         \
        }                                                                                      \
    }
TG_STAMP(CE_KERNELS)

typedef struct {
    int32_t *y;
    void *row;    /* per row: 1 / (1 + r) and the exponentials (double) for cross-entropy, the
                     argmax (int32) for hinge */
    double scale; /* the reduction's factor */
} class_saved;

static void save_classes(tg_node *node, const tg_tensor *labels, void *row, double scale)
{
    *(class_saved *)node->saved =
        (class_saved){arena_copy(labels->data, tg_nbytes(labels)), row, scale};
}

/* d loss_i / d x_ij = softmax(x_i)_j - [j = y_i] */
static void ce_backward(const tg_node *node)
{
    const class_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    TG_KERNEL_FOR(ce_bwd, x)(x->shape[0], x->shape[1], s->y, s->row, grad_scale(node, s->scale),
                             tg_op_grad(x));
}

static void ce_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const class_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    tg_tensor *d = tg_sub(tg_softmax(x, 1), one_hot(x, s->y, NULL));
    grad_in[0] = tg_mul(g, tg_mul_scalar(d, s->scale));
}

static const tg_op ce_op = {"tg_cross_entropy", ce_backward, ce_backward_ops};

tg_tensor *tg_cross_entropy(tg_tensor *logits, const tg_tensor *labels, tg_reduction r)
{
    const char *op = "tg_cross_entropy";
    check_classes(logits, labels, op);
    double scale = reduction_scale(r, logits->shape[0], op);
    size_t rows = (size_t)logits->shape[0], per_row = (size_t)logits->shape[1] + 1;
    double *sm = tg_op_scratch(rows * per_row * sizeof *sm);
    double total = TG_KERNEL_FOR(ce_fwd, logits)(logits->shape[0], logits->shape[1], logits->data,
                                                 labels->data, sm);
    tg_tensor *out = scalar_out(logits->dtype, total * scale);
    tg_node *node = tg_op_record(&ce_op, out, 1, &logits, sizeof(class_saved));
    if (node) save_classes(node, labels, sm, scale);
    return out;
}

/* ---- multiclass hinge: loss_i = max_j (x_ij + margin·[j ≠ y_i]) - x_iy ---- */

/* best[i] = the first j reaching the maximum (the j = y_i term is x_iy itself). */
#define HINGE_KERNELS(T, S)                                                                    \
    static double hinge_fwd_##S(int64_t n, int64_t c, const void *px, const int32_t *y,        \
                                double margin, int32_t *best)                                  \
    {                                                                                          \
        double total = 0;                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                     \
            const T *x = (const T *)px + i * c;                                                \
            double top = -INFINITY;                                                            \
            best[i] = 0;                                                                       \
            for (int64_t j = 0; j < c; j++) {                                                 \
                double t = (double)x[j] + (j != y[i] ? margin : 0);                            \
                if (t > top || isnan(t)) top = t, best[i] = (int32_t)j;                        \
                if (isnan(t)) break;                                                           \
            }                                                                                  \
            total += top - x[y[i]];                                                            \
        }                                                                                      \
        return total;                                                                          \
    }                                                                                          \
    static void hinge_bwd_##S(int64_t n, int64_t c, const int32_t *y, const int32_t *best,     \
                              double gs, void *pgx)                                            \
    {                                                                                          \
        T *gx = pgx;                                                                           \
        for (int64_t i = 0; i < n; i++)                                                       \
            if (best[i] != y[i]) {                                                             \
                gx[i * c + best[i]] += (T)gs;                                                  \
                gx[i * c + y[i]] -= (T)gs;                                                     \
            }                                                                                  \
    }
TG_STAMP(HINGE_KERNELS)

/* subgradient at the argmax j*: +1 on x_ij*, -1 on x_iy; nothing when j* = y_i */
static void hinge_backward(const tg_node *node)
{
    const class_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    TG_KERNEL_FOR(hinge_bwd, x)(x->shape[0], x->shape[1], s->y, s->row,
                                grad_scale(node, s->scale), tg_op_grad(x));
}

/* piecewise linear: the same subgradient as a constant, so every higher derivative is 0 */
static void hinge_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const class_saved *s = node->saved;
    tg_tensor *d = one_hot(node->in[0], s->row, s->y);
    grad_in[0] = tg_mul(g, tg_mul_scalar(d, s->scale));
}

static const tg_op hinge_op = {"tg_multiclass_hinge", hinge_backward, hinge_backward_ops};

tg_tensor *tg_multiclass_hinge(tg_tensor *scores, const tg_tensor *labels, double margin,
                               tg_reduction r)
{
    const char *op = "tg_multiclass_hinge";
    check_classes(scores, labels, op);
    double scale = reduction_scale(r, scores->shape[0], op);
    int32_t *best = tg_op_scratch((size_t)scores->shape[0] * sizeof *best);
    double total = TG_KERNEL_FOR(hinge_fwd, scores)(scores->shape[0], scores->shape[1],
                                                    scores->data,
                                                 labels->data, margin, best);
    tg_tensor *out = scalar_out(scores->dtype, total * scale);
    tg_node *node = tg_op_record(&hinge_op, out, 1, &scores, sizeof(class_saved));
    if (node) save_classes(node, labels, best, scale);
    return out;
}

/* ---- mean squared error: Σ_i (p_i - t_i)² ---- */

#define MSE_KERNELS(T, S)                                                                      \
    static double mse_fwd_##S(int64_t n, const void *pp, const void *pt)                       \
    {                                                                                          \
        const T *p = pp, *t = pt;                                                              \
        double total = 0;                                                                      \
        for (int64_t i = 0; i < n; i++) total += ((double)p[i] - t[i]) * ((double)p[i] - t[i]); \
        return total;                                                                          \
    }                                                                                          \
    static void mse_bwd_##S(int64_t n, const void *pp, const void *pt, double gs, void *pgp,   \
                            void *pgt)                                                         \
    {                                                                                          \
        const T *p = pp, *t = pt;                                                              \
        T *gp = pgp, *gt = pgt;                                                                \
        for (int64_t i = 0; i < n; i++) {                                                     \
            T d = (T)(2 * gs * ((double)p[i] - t[i]));                                         \
            if (gp) gp[i] += d;                                                                \
            if (gt) gt[i] -= d;                                                                \
        }                                                                                      \
    }
TG_STAMP(MSE_KERNELS)

/* dp_i += 2·(p_i - t_i)·g·scale, dt_i -= the same */
static void mse_backward(const tg_node *node)
{
    const double *scale = node->saved;
    tg_tensor *p = node->in[0], *t = node->in[1];
    TG_KERNEL_FOR(mse_bwd, p)(p->numel, p->data, t->data, grad_scale(node, *scale),
                              tg_op_grad(p), tg_op_grad(t));
}

static void mse_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const double *scale = node->saved;
    tg_tensor *p = node->in[0], *t = node->in[1];
    tg_tensor *d = tg_mul(g, tg_mul_scalar(tg_sub(p, t), 2 * *scale));
    if (p->requires_grad) grad_in[0] = d;
    if (t->requires_grad) grad_in[1] = tg_neg(d);
}

static const tg_op mse_op = {"tg_mse_loss", mse_backward, mse_backward_ops};

tg_tensor *tg_mse_loss(tg_tensor *pred, tg_tensor *target, tg_reduction r)
{
    const char *op = "tg_mse_loss";
    tg_check_float(pred, op);
    tg_check_float(target, op);
    if (!tg_same_shape(pred, target) || pred->dtype != target->dtype) {
        char s1[128], s2[128];
        tg_fail("%s: pred %s and target %s must have the same shape and dtype (no "
                 "broadcasting)", op, tg_shape_str(pred, s1, sizeof s1),
                 tg_shape_str(target, s2, sizeof s2));
    }
    double scale = reduction_scale(r, pred->numel, op);
    double total = TG_KERNEL_FOR(mse_fwd, pred)(pred->numel, pred->data, target->data);
    tg_tensor *out = scalar_out(pred->dtype, total * scale);
    tg_node *node = tg_op_record(&mse_op, out, 2, (tg_tensor *[]){pred, target}, sizeof scale);
    if (node) *(double *)node->saved = scale;
    return out;
}

/* ---- binary logistic: loss_i = log(1 + exp(-y_i·z_i)) = softplus(-y_i·z_i) ---- */

/* σ(u) with exp's argument kept non-positive. */
static double sigmoid(double u) { return u >= 0 ? 1 / (1 + exp(-u)) : exp(u) / (1 + exp(u)); }

#define LOGISTIC_KERNELS(T, S)                                                                 \
    static double logistic_fwd_##S(int64_t n, const void *pz, const int8_t *y)                 \
    {                                                                                          \
        const T *z = pz;                                                                       \
        double total = 0;                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                     \
            double u = -y[i] * (double)z[i];                                                   \
            total += fmax(u, 0.0) + log1p(exp(-fabs(u)));                                      \
        }                                                                                      \
        return total;                                                                          \
    }                                                                                          \
    static void logistic_bwd_##S(int64_t n, const void *pz, const int8_t *y, double gs,        \
                                 void *pgz)                                                    \
    {                                                                                          \
        const T *z = pz;                                                                       \
        T *gz = pgz;                                                                           \
        for (int64_t i = 0; i < n; i++) gz[i] -= (T)(gs * y[i] * sigmoid(-y[i] * (double)z[i])); \
    }
TG_STAMP(LOGISTIC_KERNELS)

/* The same shape once size-1 axes are dropped ([N, 1] and [N] agree; [4, 2] and [2, 4] not). */
static bool same_squeezed_shape(const tg_tensor *a, const tg_tensor *b)
{
    int i = 0, j = 0;
    for (;;) {
        while (i < a->ndim && a->shape[i] == 1) i++;
        while (j < b->ndim && b->shape[j] == 1) j++;
        if (i == a->ndim || j == b->ndim) return i == a->ndim && j == b->ndim;
        if (a->shape[i++] != b->shape[j++]) return false;
    }
}

/* Targets as signs in the arena; anything but exactly -1 or +1 is a programming error. */
static int8_t *target_signs(const tg_tensor *z, const tg_tensor *t, const char *op)
{
    char s1[128], s2[128];
    tg_check_live(t, op);
    if (!same_squeezed_shape(t, z))
        tg_fail("%s: targets %s and logits %s must have the same shape (up to size-1 axes)", op,
                 tg_shape_str(t, s1, sizeof s1), tg_shape_str(z, s2, sizeof s2));
    int8_t *y = tg_op_scratch((size_t)t->numel);
    for (int64_t i = 0; i < t->numel; i++) {
        double v = tg_get_flat(t, i);
        if (v != 1 && v != -1)
            tg_fail("%s: target %lld is %g; targets must be -1 or +1 (map 0/1 labels with "
                     "2y - 1)", op, (long long)i, v);
        y[i] = v > 0 ? 1 : -1;
    }
    return y;
}

typedef struct {
    const int8_t *y;
    double scale;
} logistic_saved;

/* d/dz softplus(-y·z) = -y·σ(-y·z) */
static void logistic_backward(const tg_node *node)
{
    const logistic_saved *s = node->saved;
    tg_tensor *z = node->in[0];
    TG_KERNEL_FOR(logistic_bwd, z)(z->numel, z->data, s->y, grad_scale(node, s->scale),
                                   tg_op_grad(z));
}

static void logistic_backward_ops(const tg_node *node, tg_tensor *g, tg_tensor **grad_in)
{
    const logistic_saved *s = node->saved;
    tg_tensor *z = node->in[0], *minus_y = tg_op_output(z->dtype, z->ndim, z->shape);
    for (int64_t i = 0; i < z->numel; i++) tg_set_flat(minus_y, i, -s->y[i]);
    tg_tensor *d = tg_mul(minus_y, tg_sigmoid(tg_mul(minus_y, z)));
    grad_in[0] = tg_mul(g, tg_mul_scalar(d, s->scale));
}

static const tg_op logistic_op = {"tg_logistic_loss", logistic_backward, logistic_backward_ops};

tg_tensor *tg_logistic_loss(tg_tensor *logits, const tg_tensor *targets, tg_reduction r)
{
    const char *op = "tg_logistic_loss";
    tg_check_float(logits, op);
    int8_t *y = target_signs(logits, targets, op);
    double scale = reduction_scale(r, logits->numel, op);
    double total = TG_KERNEL_FOR(logistic_fwd, logits)(logits->numel, logits->data, y);
    tg_tensor *out = scalar_out(logits->dtype, total * scale);
    tg_node *node = tg_op_record(&logistic_op, out, 1, &logits, sizeof(logistic_saved));
    if (node) *(logistic_saved *)node->saved = (logistic_saved){y, scale};
    return out;
}
