/* One run: a fresh network from the run's seed, its optimizer, epochs of augmented batches, the
 * validation accuracy after each epoch and the test accuracy at the end. The loop is written out:
 * zero_grad, forward, cross-entropy, backward, step, release the step's intermediates. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "alexnet.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double ax_accuracy(tg_module *model, const tg_dataset *d)
{
    bool grad = tg_set_grad_enabled(false);
    tg_module_eval(model);
    int64_t n = tg_dataset_size(d), hits = 0;
    const int32_t *labels = d->y->data;
    for (int64_t at = 0; at < n; at += 500) {
        int64_t len = n - at < 500 ? n - at : 500;
        tg_tensor *pred = tg_argmax(tg_module_forward(model, tg_narrow(d->x, 0, at, len)), 1);
        const int32_t *p = pred->data;
        for (int64_t i = 0; i < len; i++) hits += p[i] == labels[at + i];
        tg_tape_reset();
    }
    tg_module_train(model, true);
    tg_set_grad_enabled(grad);
    return n ? (double)hits / (double)n : 0;
}

static tg_optimizer *make_optimizer(const ax_flags *f, const ax_config *c, tg_param_list *ps)
{
    if (!strcmp(c->optimizer, "sgd"))
        return tg_sgd_new(ps, (tg_sgd_opts){.lr = c->lr, .momentum = f->momentum});
    tg_adam_opts o = tg_adam_defaults();
    o.lr = c->lr;
    return tg_adam_new(ps, o);
}

void ax_train(const ax_flags *f, const ax_data *d, const ax_config *c, ax_result *r)
{
    memset(r, 0, sizeof *r);
    tg_rng rng;
    tg_rng_seed(&rng, f->seed);   /* the same initial weights for every configuration */
    tg_module *model = ax_alexnet(d->channels, d->train.n_classes, f->width, f->hidden,
                                  c->bn_dropout, f->dropout, &rng);
    tg_param_list ps = {0};
    tg_module_parameters(model, &ps);
    r->parameters = tg_module_num_parameters(model);
    tg_optimizer *opt = make_optimizer(f, c, &ps);
    tg_loader *loader = tg_loader_new(d->train.x, d->train.y, f->batch, true, false, &rng);
    double t0 = now();
    for (int e = 0; e < f->epochs; e++) {
        double total = 0;
        int64_t batches = 0;
        tg_tensor *x, *y;
        tg_loader_reset(loader);
        while (tg_loader_next(loader, &x, &y)) {
            if (f->augment) tg_random_crop_flip_(x, 4, true, &rng);
            tg_optimizer_zero_grad(opt);
            tg_tensor *loss = tg_cross_entropy(tg_module_forward(model, x), y, TG_REDUCE_MEAN);
            total += tg_item(loss);
            batches++;
            tg_backward(loss);
            tg_optimizer_step(opt);
            tg_tape_reset();
        }
        r->train_loss[e] = total / (double)batches;
        r->val_acc[e] = ax_accuracy(model, &d->val);
        r->epochs = e + 1;
        printf("  %-28s epoch %2d  train loss %8.4f  val accuracy %.4f  (%.0f s)\n", c->label,
               e + 1, r->train_loss[e], r->val_acc[e], now() - t0);
        fflush(stdout);
    }
    r->test_acc = ax_accuracy(model, &d->test);
    r->seconds = now() - t0;
    tg_loader_free(loader);
    tg_optimizer_free(opt);
    tg_param_list_free(&ps);
    tg_module_free(model);
}
