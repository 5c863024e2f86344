/* Evaluation over a data set in batches (include/tg/train.h): no-grad, eval mode, each batch a
 * view of the rows in place. */
#include <math.h>
#include <string.h>
#include "autograd/internal.h"
#include "tg/nn.h"
#include "tg/train.h"

/* Rows [first, first + n) of t as a header on the caller's stack that borrows t's data: ops read
 * it like any persistent tensor, and no allocation is made for it. t is persistent and stays
 * alive for the whole evaluation, so the copied header stays valid. */
static tg_tensor row_view(const tg_tensor *t, int64_t first, int64_t n)
{
    tg_tensor v = *t;
    int64_t per_row = t->shape[0] ? t->numel / t->shape[0] : 0;
    v.shape[0] = n;
    v.numel = per_row * n;
    v.data = (char *)t->data + (size_t)(first * per_row) * tg_dtype_size(t->dtype);
    v.grad = NULL;
    v.requires_grad = false;
    v.owns_data = false;
    v.node = NULL;
    v.in_backward = NULL;
    return v;
}

static void check_args(const char *op, tg_module *model, const tg_tensor *x, const tg_tensor *y)
{
    if (!model || !x || !y) tg_fail("%s: model, x and y must not be NULL", op);
    tg_check_live(x, op);
    tg_check_live(y, op);
    if (!x->persistent || !y->persistent)
        tg_fail("%s: x and y must be persistent tensors (data sets), not intermediates of a step",
                 op);
    if (x->ndim < 1 || y->ndim < 1 || x->shape[0] != y->shape[0])
        tg_fail("%s: x has %lld rows but y has %lld; pass one example per row in both", op,
                 (long long)(x->ndim ? x->shape[0] : 0), (long long)(y->ndim ? y->shape[0] : 0));
}

int64_t tg_count_correct(tg_tensor *scores, const tg_tensor *labels)
{
    const char *op = "tg_count_correct";
    tg_check_live(scores, op);
    tg_check_live(labels, op);
    if (scores->ndim != 2 || labels->dtype != TG_I32 || labels->ndim != 1 ||
        labels->shape[0] != scores->shape[0]) {
        char a[64], b[64];
        tg_fail("%s: scores %s and labels %s: want scores [N, C] and int32 labels [N]", op,
                tg_shape_str(scores, a, sizeof a), tg_shape_str(labels, b, sizeof b));
    }
    bool grad = tg_set_grad_enabled(false);
    const int32_t *p = tg_argmax(scores, 1)->data, *l = labels->data;
    tg_set_grad_enabled(grad);
    int64_t hits = 0;
    for (int64_t i = 0; i < labels->numel; i++) hits += p[i] == l[i];
    return hits;
}

static tg_eval evaluate(const char *op, tg_module *model, const tg_tensor *x, const tg_tensor *y,
                        int64_t batch_size, bool classifier)
{
    check_args(op, model, x, y);
    if (batch_size < 0) tg_fail("%s: batch_size %lld is negative", op, (long long)batch_size);
    if (batch_size == 0) batch_size = TG_EVAL_BATCH;
    if (classifier && (y->dtype != TG_I32 || y->ndim != 1))
        tg_fail("%s: labels must be an int32 vector [N]; for float targets use "
                 "tg_evaluate_regressor", op);
    bool grad = tg_set_grad_enabled(false);
    bool training = model->training;
    tg_module_eval(model);
    double sum = 0;
    int64_t hits = 0, n = x->shape[0];
    for (int64_t first = 0; first < n; first += batch_size) {
        int64_t k = n - first < batch_size ? n - first : batch_size;
        tg_tensor xb = row_view(x, first, k), yb = row_view(y, first, k);
        tg_tensor *out = tg_module_forward(model, &xb);
        if (classifier) {
            sum += tg_item(tg_cross_entropy(out, &yb, TG_REDUCE_SUM));
            hits += tg_count_correct(out, &yb);
        } else {
            sum += tg_item(tg_mse_loss(out, &yb, TG_REDUCE_SUM));
        }
        tg_tape_reset();
    }
    tg_module_train(model, training);
    tg_set_grad_enabled(grad);
    tg_eval e = {.loss = NAN, .accuracy = NAN, .n = n, .loss_sum = sum, .correct = hits};
    if (n == 0) return e;
    e.loss = sum / (double)(classifier ? n : y->numel);
    if (classifier) e.accuracy = (double)hits / (double)n;
    return e;
}

tg_eval tg_evaluate_classifier(tg_module *model, const tg_tensor *x, const tg_tensor *y,
                               int64_t batch_size)
{
    return evaluate("tg_evaluate_classifier", model, x, y, batch_size, true);
}

tg_eval tg_evaluate_regressor(tg_module *model, const tg_tensor *x, const tg_tensor *y,
                              int64_t batch_size)
{
    return evaluate("tg_evaluate_regressor", model, x, y, batch_size, false);
}
