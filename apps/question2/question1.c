/* Question 1 of IST 2022-23 homework 1, by hand: the multi-class perceptron, multinomial logistic
 * regression and a one-hidden-layer MLP, each trained one example at a time. No tg_backward: each
 * model's gradient is the one derived on paper, written out in tensor ops into its parameters'
 * grad buffers, and tg_sgd takes the step p −= η·grad. For x a row [1, D], scores
 * s = x·Wᵀ + b [1, C], e_y the one-hot row of the label:
 *
 *   perceptron   ŷ = argmax s; on a mistake grad W = (e_ŷ − e_y)ᵀ·x, grad b = e_ŷ − e_y, η = 1:
 *                W += (e_y − e_ŷ)ᵀ·x (else no step)
 *   logistic     p = softmax(s), loss −log p_y; g = p − e_y: grad W = gᵀ·x, grad b = g
 *   mlp          z = x·W1ᵀ + b1 [1, 200], h = relu(z), s = h·W2ᵀ + b2, p = softmax(s);
 *                g2 = p − e_y: grad W2 = g2ᵀ·h, grad b2 = g2;
 *                g1 = (g2·W2) ⊙ [z > 0]: grad W1 = g1ᵀ·x, grad b1 = g1  (W2 before the step)
 *
 * η = 0.001 for the last two. The homework appends a constant feature 1 to x for the two linear
 * models (W is [C, D + 1]) and gives the MLP biases of its own. Here every model keeps b apart
 * from W: b is that last column, updated by the same rule with x_{D+1} = 1, so the numbers are
 * the homework's. Initial values: zeros for the linear models; the MLP's weights N(0.1, 0.1²),
 * its biases 0. */
#include "question2.h"

#include <errno.h>
#include <math.h>
#include <string.h>

const char *const q1_model_names[Q1_N_MODELS] = {"perceptron", "logistic_regression", "mlp"};

typedef struct {
    q1_model kind;
    tg_module *net;              /* what tg_evaluate_classifier scores */
    tg_tensor *w1, *b1, *w2, *b2; /* the net's parameters (w2, b2: the mlp's output layer) */
    tg_tensor *onehot;           /* [1, C]: e_y, or e_y − e_ŷ */
    tg_tensor *relu_grad;        /* [1, H]: [z > 0] */
    tg_param_list params;
    tg_optimizer *sgd;           /* p −= η·grad, over the hand-written grads */
} hand_model;

static void hand_model_init(hand_model *m, q1_model kind, int64_t d, int64_t c,
                            const q1_config *cfg, tg_rng *rng)
{
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->onehot = tg_zeros(TG_F32, TG_SHAPE(1, c));
    if (kind != Q1_MLP) {
        m->net = tg_linear_new(d, c, true, tg_init_zeros(), rng);
        m->w1 = tg_linear_weight(m->net), m->b1 = tg_linear_bias(m->net);
    } else {
        /* One statement per layer: the weights are drawn in this order on every compiler. */
        tg_module *fc1 = tg_linear_new(d, cfg->hidden_size, true, tg_init_normal(0.1, 0.1), rng);
        tg_module *fc2 = tg_linear_new(cfg->hidden_size, c, true, tg_init_normal(0.1, 0.1), rng);
        m->w1 = tg_linear_weight(fc1), m->b1 = tg_linear_bias(fc1);
        m->w2 = tg_linear_weight(fc2), m->b2 = tg_linear_bias(fc2);
        m->net = tg_sequential_new(3, fc1, tg_relu_new(), fc2);
        m->relu_grad = tg_zeros(TG_F32, TG_SHAPE(1, cfg->hidden_size));
    }
    tg_module_parameters(m->net, &m->params);
    /* The grad buffers the steps write into (a parameter owns its grad, so they go with the
     * net); the optimizer reads them as they are. */
    for (int i = 0; i < m->params.n; i++) {
        tg_tensor *p = m->params.tensors[i];
        p->grad = tg_zeros(p->dtype, p->ndim, p->shape);
    }
    double lr = kind == Q1_PERCEPTRON ? 1 : cfg->learning_rate;
    m->sgd = tg_sgd_new(&m->params, (tg_sgd_opts){.lr = lr});
}

static void hand_model_free(hand_model *m)
{
    tg_optimizer_free(m->sgd);
    tg_param_list_free(&m->params);
    tg_module_free(m->net);
    tg_free(m->onehot), tg_free(m->relu_grad);
}

/* A linear layer's gradient for one example, from g = ∂loss/∂(its output) [1, out] and its input
 * x [1, in]: grad W = gᵀ·x (an outer product), grad b = g. */
static void set_linear_grad(tg_tensor *w, tg_tensor *b, tg_tensor *g, tg_tensor *x)
{
    tg_copy_(w->grad, tg_matmul_t(g, true, x, false));
    tg_copy_(b->grad, tg_reshape(g, TG_SHAPE(b->numel)));
}

static void set_onehot(tg_tensor *e, int y)
{
    tg_fill_(e, 0);
    tg_set_flat(e, y, 1);
}

/* One example through the model, and its update. Returns the example's loss (−log p_y; for the
 * perceptron its criterion max_j s_j − s_y, zero when it is right); *right: ŷ == y before the
 * update. */
static double perceptron_step(hand_model *m, tg_tensor *x, int y, bool *right)
{
    tg_tensor *s = tg_linear(x, m->w1, m->b1);
    int yhat = (int)tg_get_flat(tg_argmax(s, 1), 0);
    *right = yhat == y;
    if (*right) return 0;
    double criterion = tg_get_flat(s, yhat) - tg_get_flat(s, y);
    tg_fill_(m->onehot, 0);   /* e_ŷ − e_y */
    tg_set_flat(m->onehot, yhat, 1);
    tg_set_flat(m->onehot, y, -1);
    set_linear_grad(m->w1, m->b1, m->onehot, x);
    tg_optimizer_step(m->sgd);
    return criterion;
}

static double logistic_step(hand_model *m, tg_tensor *x, int y, bool *right)
{
    tg_tensor *s = tg_linear(x, m->w1, m->b1);
    tg_tensor *log_p = tg_log_softmax(s, 1);   /* −log p_y without overflow in exp */
    *right = (int)tg_get_flat(tg_argmax(s, 1), 0) == y;
    set_onehot(m->onehot, y);
    set_linear_grad(m->w1, m->b1, tg_sub(tg_exp(log_p), m->onehot), x);
    tg_optimizer_step(m->sgd);
    return -tg_get_flat(log_p, y);
}

static double mlp_step(hand_model *m, tg_tensor *x, int y, bool *right)
{
    tg_tensor *z = tg_linear(x, m->w1, m->b1);
    tg_tensor *h = tg_relu(z);
    tg_tensor *s = tg_linear(h, m->w2, m->b2);
    tg_tensor *log_p = tg_log_softmax(s, 1);
    *right = (int)tg_get_flat(tg_argmax(s, 1), 0) == y;
    set_onehot(m->onehot, y);
    tg_tensor *g2 = tg_sub(tg_exp(log_p), m->onehot);
    /* relu'(z), 0 at z = 0 as PyTorch takes it */
    for (int64_t i = 0; i < z->numel; i++)
        tg_set_flat(m->relu_grad, i, tg_get_flat(z, i) > 0);
    tg_tensor *g1 = tg_mul(tg_matmul(g2, m->w2), m->relu_grad);
    set_linear_grad(m->w2, m->b2, g2, h);
    set_linear_grad(m->w1, m->b1, g1, x);
    tg_optimizer_step(m->sgd);
    return -tg_get_flat(log_p, y);
}

typedef struct {
    double loss;            /* mean of the examples' losses, before each one's update */
    int64_t mistakes, steps;
    int64_t nonfinite_step; /* 1-based; 0: none */
    double seconds;
} hand_epoch_stats;

/* One epoch, an example at a time, in the loader's fresh order. tg_train_epoch does not fit
 * here: it takes the gradient from tg_backward, and Question 1 asks for the updates derived by
 * hand (the perceptron's is not even a gradient step on the examples it gets right). The loop is
 * the toolkit's otherwise: the loader's shuffle, the progress bar, the stop flag, the tape reset
 * after each step. Nothing is recorded (no-grad): the tape only holds the step's intermediates. */
static hand_epoch_stats hand_epoch(hand_model *m, tg_loader *loader, int epoch, int epochs,
                                   bool quiet)
{
    double (*step)(hand_model *, tg_tensor *, int, bool *) =
        m->kind == Q1_PERCEPTRON ? perceptron_step
                                 : m->kind == Q1_LOGISTIC ? logistic_step : mlp_step;
    hand_epoch_stats st = {0};
    double t0 = q2_now(), sum = 0;
    bool grad_was = tg_set_grad_enabled(false);
    tg_progress bar;
    tg_progress_begin(&bar, stderr, quiet ? TG_PROGRESS_OFF : TG_PROGRESS_AUTO,
                      q1_model_names[m->kind], epoch, epochs, tg_loader_num_batches(loader));
    tg_tensor *x, *y;
    while (!q2_stop && tg_loader_next(loader, &x, &y)) {
        bool right;
        double loss = step(m, x, (int)tg_get_flat(y, 0), &right);
        tg_tape_reset();
        st.steps++;
        st.mistakes += !right;
        sum += loss;
        tg_progress_step(&bar, 1, loss);
        if (!isfinite(loss)) {
            st.nonfinite_step = st.steps;
            break;
        }
    }
    tg_progress_end(&bar);
    tg_set_grad_enabled(grad_was);
    st.loss = st.steps ? sum / (double)st.steps : NAN;
    st.seconds = q2_now() - t0;
    return st;
}

static tg_status open_log(const char *dir, tg_metrics_log **log)
{
    char csv[PATH_MAX + 32], jsonl[PATH_MAX + 32];
    q2_join(csv, sizeof csv, dir, "metrics.csv");
    q2_join(jsonl, sizeof jsonl, dir, "metrics.jsonl");
    static const char *const columns[] = {"epoch", "train_loss", "valid_loss", "valid_acc",
                                          "train_acc", "mistakes", "sec_train", "sec_eval"};
    return tg_metrics_log_open(log, csv, jsonl, 8, columns);
}

tg_status q1_run(q1_model kind, const q1_config *c, const q2_data *d, const char *dir,
                 q1_result *r)
{
    memset(r, 0, sizeof *r);
    r->train_acc = r->valid_acc = r->test_acc = NAN;
    tg_metrics_log *log;
    tg_status st = q2_make_dirs(dir);
    if (st == TG_OK) st = open_log(dir, &log);
    if (st != TG_OK) return st;
    tg_rng rng;
    tg_rng_seed(&rng, c->seed);
    hand_model m;
    hand_model_init(&m, kind, d->x[0]->shape[1], d->m.train.n_classes, c, &rng);
    tg_loader *loader = tg_loader_new(d->x[0], d->y[0], 1, true, false, &rng);
    double t_run = q2_now(), train_sec = 0;
    const char *name = q1_model_names[kind];
    for (int e = 1; e <= c->epochs && !q2_stop; e++) {
        /* A stop in the middle of an epoch logs it (partial) and ends the run there. */
        hand_epoch_stats s = hand_epoch(&m, loader, e, c->epochs, c->quiet);
        double t0 = q2_now();
        tg_eval train = tg_evaluate_classifier(m.net, d->x[0], d->y[0], EVAL_BATCH);
        tg_eval valid = tg_evaluate_classifier(m.net, d->x[1], d->y[1], EVAL_BATCH);
        /* The perceptron's scores are not log-probabilities: no validation loss. */
        double valid_loss = kind == Q1_PERCEPTRON ? NAN : valid.loss;
        double row[8] = {e, s.loss, valid_loss, valid.accuracy, train.accuracy,
                         (double)s.mistakes, s.seconds, q2_now() - t0};
        if (st == TG_OK) st = tg_metrics_log_write(log, row);
        r->epochs = e, r->train_acc = train.accuracy, r->valid_acc = valid.accuracy;
        train_sec += s.seconds;
        if (!c->quiet)
            printf("[%s] epoch %2d  train loss %.4f  train acc %.4f  valid acc %.4f  "
                   "mistakes %lld  (%.1f s)\n", name, e, s.loss, train.accuracy, valid.accuracy,
                   (long long)s.mistakes, s.seconds);
        if (s.nonfinite_step) {
            r->status = RUN_DIVERGED, r->nonfinite_epoch = e, r->nonfinite_step = s.nonfinite_step;
            char v[24];
            fprintf(stderr, PROG ": %s: the training loss became %s at epoch %d, step %lld: "
                    "stopped\n", name, q2_fmt(v, s.loss), e, (long long)s.nonfinite_step);
            break;
        }
        if (q2_stop) r->status = RUN_INTERRUPTED;
    }
    r->test_acc = tg_evaluate_classifier(m.net, d->x[2], d->y[2], EVAL_BATCH).accuracy;
    r->sec_per_epoch = r->epochs ? train_sec / r->epochs : NAN;
    r->total_sec = q2_now() - t_run;
    printf("[%s] %s: train %.4f, valid %.4f, test %.4f, %.2f s/epoch\n", name,
           q2_status_names[r->status], r->train_acc, r->valid_acc, r->test_acc, r->sec_per_epoch);
    tg_status closed = tg_metrics_log_close(log);
    tg_loader_free(loader);
    hand_model_free(&m);
    return st != TG_OK ? st : closed;
}
