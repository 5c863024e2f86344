/* Losses: cross-entropy, mean squared error, multiclass hinge, binary logistic. Each is one fused
 * op returning a 0-d tensor (mean or sum over samples), computed in double whatever the dtype,
 * and stable for any finite input: cross-entropy through log-sum-exp, the logistic loss through
 * softplus(u) = max(u, 0) + log1p(exp(-|u|)), whose exp never overflows.
 * Labels are copied into the arena for backward, so the caller may refill its label buffer. */
#include <string.h>
#include <tgmath.h>
#include "ops/kernel.h"

/* The factor that turns the per-sample sum into the result (the mean of nothing is NaN). */
static double reduction_scale(tg_reduction r, int64_t n, const char *op)
{
    if (r != TG_REDUCE_MEAN && r != TG_REDUCE_SUM)
        tg__fail("%s: unknown reduction %d; use TG_REDUCE_MEAN or TG_REDUCE_SUM", op, (int)r);
    return r == TG_REDUCE_SUM ? 1.0 : n ? 1.0 / (double)n : NAN;
}

static tg_tensor *scalar_out(tg_dtype dtype, double value)
{
    tg_tensor *out = tg__new_intermediate(dtype, 0, NULL);
    tg_set_flat(out, 0, value);
    return out;
}

/* d(loss)/d(per-sample sum): the output's gradient times the reduction's factor. */
static double grad_scale(const tg_node *node)
{
    return tg_get_flat(node->out->grad, 0) * node->f[0];
}

static void *arena_copy(const void *src, size_t bytes)
{
    void *p = tg__arena_alloc(bytes);
    if (bytes) memcpy(p, src, bytes);
    return p;
}

/* scores [N, C] float, labels int32 [N], every label in [0, C). */
static void check_classes(const tg_tensor *x, const tg_tensor *labels, const char *op)
{
    char s1[128], s2[128];
    tg__check_float(x, op);
    tg__check_live(labels, op);
    if (x->ndim != 2 || labels->dtype != TG_I32 || labels->ndim != 1 ||
        labels->shape[0] != x->shape[0])
        tg__fail("%s: need scores [N, C] and int32 labels [N], got %s and %s", op,
                 tg_shape_str(x, s1, sizeof s1), tg_shape_str(labels, s2, sizeof s2));
    const int32_t *y = labels->data;
    for (int64_t i = 0; i < labels->numel; i++)
        if (y[i] < 0 || y[i] >= x->shape[1])
            tg__fail("%s: label %d in row %lld is outside [0, %lld) (scores %s)", op, (int)y[i],
                     (long long)i, (long long)x->shape[1], tg_shape_str(x, s1, sizeof s1));
}

/* ---- cross-entropy: loss_i = lse_i - x_iy with lse_i = log Σ_j exp(x_ij) ---- */

#define CE_KERNELS(T, S)                                                                       \
    static double ce_fwd_##S(int64_t n, int64_t c, const void *px, const int32_t *y,           \
                             double *lse)                                                      \
    {                                                                                          \
        double total = 0;                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                     \
            const T *x = (const T *)px + i * c;                                                \
            double m = -INFINITY, s = 0;                                                       \
            for (int64_t j = 0; j < c; j++) m = x[j] > m ? x[j] : m;                           \
            for (int64_t j = 0; j < c; j++) s += exp(x[j] - m);                                \
            lse[i] = m + log(s);                                                               \
            total += lse[i] - x[y[i]];                                                         \
        }                                                                                      \
        return total;                                                                          \
    }                                                                                          \
    static void ce_bwd_##S(int64_t n, int64_t c, const int32_t *y, const double *lse,          \
                           double gs, const void *px, void *pgx)                               \
    {                                                                                          \
        const T *x = px;                                                                       \
        T *gx = pgx;                                                                           \
        for (int64_t i = 0; i < n; i++)                                                       \
            for (int64_t j = 0; j < c; j++)                                                   \
                gx[i * c + j] += (T)(gs * (exp(x[i * c + j] - lse[i]) - (j == y[i])));         \
    }
STAMP(CE_KERNELS)

typedef struct {
    int32_t *y;
    void *row; /* per-row data: lse (double) for cross-entropy, the argmax (int32) for hinge */
} class_saved;

static void save_classes(tg_node *node, const tg_tensor *labels, void *row, double scale)
{
    class_saved *s = tg__arena_alloc(sizeof *s);
    *s = (class_saved){arena_copy(labels->data, tg__bytes(labels)), row};
    node->aux = labels;
    node->saved = s;
    node->f[0] = scale;
}

/* d loss_i / d x_ij = softmax(x_i)_j - [j = y_i] = exp(x_ij - lse_i) - [j = y_i] */
static void ce_backward(tg_node *node)
{
    const class_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    KERNEL_FOR(ce_bwd, x)(x->shape[0], x->shape[1], s->y, s->row, grad_scale(node), x->data,
                          tg__grad(x));
}

tg_tensor *tg_cross_entropy(tg_tensor *logits, const tg_tensor *labels, tg_reduction r)
{
    const char *op = "tg_cross_entropy";
    check_classes(logits, labels, op);
    double scale = reduction_scale(r, logits->shape[0], op);
    double *lse = tg__arena_alloc((size_t)logits->shape[0] * sizeof *lse);
    double total = KERNEL_FOR(ce_fwd, logits)(logits->shape[0], logits->shape[1], logits->data,
                                              labels->data, lse);
    tg_tensor *out = scalar_out(logits->dtype, total * scale);
    tg_node *node = tg__record(op, ce_backward, out, 1, &logits);
    if (node) save_classes(node, labels, lse, scale);
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
                if (t > top) top = t, best[i] = (int32_t)j;                                    \
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
STAMP(HINGE_KERNELS)

/* subgradient at the argmax j*: +1 on x_ij*, -1 on x_iy; nothing when j* = y_i */
static void hinge_backward(tg_node *node)
{
    const class_saved *s = node->saved;
    tg_tensor *x = node->in[0];
    KERNEL_FOR(hinge_bwd, x)(x->shape[0], x->shape[1], s->y, s->row, grad_scale(node),
                             tg__grad(x));
}

tg_tensor *tg_multiclass_hinge(tg_tensor *scores, const tg_tensor *labels, double margin,
                               tg_reduction r)
{
    const char *op = "tg_multiclass_hinge";
    check_classes(scores, labels, op);
    double scale = reduction_scale(r, scores->shape[0], op);
    int32_t *best = tg__arena_alloc((size_t)scores->shape[0] * sizeof *best);
    double total = KERNEL_FOR(hinge_fwd, scores)(scores->shape[0], scores->shape[1], scores->data,
                                                 labels->data, margin, best);
    tg_tensor *out = scalar_out(scores->dtype, total * scale);
    tg_node *node = tg__record(op, hinge_backward, out, 1, &scores);
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
STAMP(MSE_KERNELS)

/* dp_i += 2·(p_i - t_i)·g·scale, dt_i -= the same */
static void mse_backward(tg_node *node)
{
    tg_tensor *p = node->in[0], *t = node->in[1];
    KERNEL_FOR(mse_bwd, p)(p->numel, p->data, t->data, grad_scale(node), tg__grad(p),
                           tg__grad(t));
}

tg_tensor *tg_mse_loss(tg_tensor *pred, tg_tensor *target, tg_reduction r)
{
    const char *op = "tg_mse_loss";
    tg__check_float(pred, op);
    tg__check_float(target, op);
    if (!tg_same_shape(pred, target) || pred->dtype != target->dtype) {
        char s1[128], s2[128];
        tg__fail("%s: pred %s and target %s must have the same shape and dtype (no "
                 "broadcasting)", op, tg_shape_str(pred, s1, sizeof s1),
                 tg_shape_str(target, s2, sizeof s2));
    }
    double scale = reduction_scale(r, pred->numel, op);
    double total = KERNEL_FOR(mse_fwd, pred)(pred->numel, pred->data, target->data);
    tg_tensor *out = scalar_out(pred->dtype, total * scale);
    tg_node *node = tg__record(op, mse_backward, out, 2, (tg_tensor *[]){pred, target});
    if (node) node->f[0] = scale;
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
STAMP(LOGISTIC_KERNELS)

/* Targets as signs in the arena; anything but exactly -1 or +1 is a programming error. */
static int8_t *target_signs(const tg_tensor *z, const tg_tensor *t, const char *op)
{
    char s1[128], s2[128];
    tg__check_live(t, op);
    if (!tg__same_squeezed_shape(t, z))
        tg__fail("%s: targets %s and logits %s must have the same shape (up to size-1 axes)", op,
                 tg_shape_str(t, s1, sizeof s1), tg_shape_str(z, s2, sizeof s2));
    int8_t *y = tg__arena_alloc((size_t)t->numel);
    for (int64_t i = 0; i < t->numel; i++) {
        double v = tg_get_flat(t, i);
        if (v != 1 && v != -1)
            tg__fail("%s: target %lld is %g; targets must be -1 or +1 (map 0/1 labels with "
                     "2y - 1)", op, (long long)i, v);
        y[i] = v > 0 ? 1 : -1;
    }
    return y;
}

/* d/dz softplus(-y·z) = -y·σ(-y·z) */
static void logistic_backward(tg_node *node)
{
    tg_tensor *z = node->in[0];
    KERNEL_FOR(logistic_bwd, z)(z->numel, z->data, node->saved, grad_scale(node), tg__grad(z));
}

tg_tensor *tg_logistic_loss(tg_tensor *logits, const tg_tensor *targets, tg_reduction r)
{
    const char *op = "tg_logistic_loss";
    tg__check_float(logits, op);
    int8_t *y = target_signs(logits, targets, op);
    double scale = reduction_scale(r, logits->numel, op);
    double total = KERNEL_FOR(logistic_fwd, logits)(logits->numel, logits->data, y);
    tg_tensor *out = scalar_out(logits->dtype, total * scale);
    tg_node *node = tg__record(op, logistic_backward, out, 1, &logits);
    if (node) {
        node->aux = targets;
        node->saved = y;
        node->f[0] = scale;
    }
    return out;
}
