/* One training epoch, the plain loop (include/tg/train.h). */
#include <math.h>
#include <time.h>
#include "autograd/internal.h"
#include "tg/nn.h"
#include "tg/optim.h"
#include "tg/train.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static tg_tensor *batch_loss(tg_loss_kind kind, tg_tensor *out, tg_tensor *y)
{
    if (kind == TG_LOSS_MSE) return tg_mse_loss(out, y, TG_REDUCE_MEAN);
    return tg_cross_entropy(out, y, TG_REDUCE_MEAN);
}

/* The plain step over the loader. */
static bool plain_step(tg_module *model, tg_optimizer *opt, tg_loader *loader, tg_loss_kind kind,
                       bool accuracy, tg_step_figures *f)
{
    tg_tensor *x, *y;
    if (!tg_loader_next(loader, &x, &y)) return false;
    tg_optimizer_zero_grad(opt);
    tg_tensor *out = tg_module_forward(model, x);
    tg_tensor *loss = batch_loss(kind, out, y);
    f->correct = accuracy ? tg_count_correct(out, y) : 0;
    tg_backward(loss);
    tg_optimizer_step(opt);
    f->loss = tg_item(loss);
    f->examples = y->shape[0];
    f->stop = false;
    tg_tape_reset();
    return true;
}

tg_epoch_stats tg_train_epoch(tg_module *model, tg_optimizer *opt, tg_loader *loader,
                              const tg_train_opts *opts)
{
    tg_train_opts o = opts ? *opts : (tg_train_opts){0};
    if (!model || !opt || !loader == !o.step)
        tg_fail("tg_train_epoch: model, opt and either loader or opts->step must be given "
                "(loader %s, step %s)", loader ? "given" : "NULL", o.step ? "given" : "NULL");
    if (o.accuracy && o.loss != TG_LOSS_CROSS_ENTROPY)
        tg_fail("tg_train_epoch: accuracy is for classifiers (TG_LOSS_CROSS_ENTROPY)");
    tg_epoch_stats s = {.loss = NAN, .loss_per_example = NAN, .accuracy = NAN};
    double t0 = now(), sum = 0, weighted = 0;
    int64_t hits = 0;
    tg_progress bar;   /* on a terminal only: batches, running loss, speed, time left */
    tg_progress_begin(&bar, o.progress_out, o.progress, o.label, o.epoch, o.epochs,
                      loader ? tg_loader_num_batches(loader) : o.steps);
    tg_step_figures f;
    /* The hot loop: everything per step lives in the tape's arena or the loader's buffers. */
    while (!(o.stop && *o.stop)) {
        f = (tg_step_figures){0};
        if (!(o.step ? o.step(o.step_data, model, opt, o.accuracy, &f)
                     : plain_step(model, opt, loader, o.loss, o.accuracy, &f)))
            break;
        s.steps++;
        s.examples += f.examples;
        sum += f.loss;
        weighted += f.loss * (double)f.examples;
        hits += f.correct;
        tg_progress_step(&bar, f.examples, f.loss);
        if (!isfinite(f.loss) && !s.nonfinite_step) {
            s.nonfinite_step = s.steps;
            if (!o.keep_nonfinite) break;
        }
        if (f.stop) {
            s.stopped = true;
            break;
        }
    }
    tg_progress_end(&bar);
    s.stopped = s.stopped || (o.stop && *o.stop);
    if (s.steps) {
        s.loss = sum / (double)s.steps;
        s.loss_per_example = weighted / (double)s.examples;
    }
    if (o.accuracy && s.examples) s.accuracy = (double)hits / (double)s.examples;
    s.seconds = now() - t0;
    return s;
}
