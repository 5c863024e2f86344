/* One training run of question2: the model and optimizer a configuration names, and the epochs,
 * each one tg_train_epoch and tg_evaluate_classifier (include/tg/train.h), printed as a line and
 * logged. */
#include "question2.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const q2_status_names[3] = {"completed", "diverged", "interrupted"};
volatile sig_atomic_t q2_stop;
const q2_dist_hooks *q2_dist;

bool q2_is_main(void) { return !q2_dist || q2_dist->is_main(); }

static tg_eval evaluate(tg_module *model, const tg_tensor *x, const tg_tensor *y)
{
    if (q2_dist) return q2_dist->evaluate(model, x, y);
    return tg_evaluate_classifier(model, x, y, EVAL_BATCH);
}

enum { N_CURVES = 8 };

/* The per-epoch arrays of r, to allocate and free them together. */
static void curves(q2_result *r, double **out[N_CURVES])
{
    double **a[N_CURVES] = {&r->train_loss, &r->valid_loss, &r->valid_acc, &r->sec_train,
                            &r->sec_eval, &r->train_acc, &r->test_loss_curve, &r->test_acc_curve};
    memcpy(out, a, sizeof a);
}

void q2_result_alloc(q2_result *r, int epochs)
{
    memset(r, 0, sizeof *r);
    double **arrays[N_CURVES];
    curves(r, arrays);
    for (int i = 0; i < N_CURVES; i++) {
        *arrays[i] = calloc((size_t)epochs, sizeof(double));
        if (!*arrays[i]) { fprintf(stderr, PROG ": out of memory\n"); exit(1); }
        for (int e = 0; e < epochs; e++) (*arrays[i])[e] = NAN;
    }
}

void q2_result_free(q2_result *r)
{
    double **arrays[N_CURVES];
    curves(r, arrays);
    for (int i = 0; i < N_CURVES; i++) free(*arrays[i]);
    memset(r, 0, sizeof *r);
}

int q2_exit_status(const q2_result *r)
{
    return r->status == RUN_INTERRUPTED ? EXIT_INTERRUPTED
           : r->status == RUN_DIVERGED  ? EXIT_DIVERGED
                                        : 0;
}

/* The accuracy of always answering the commonest class of labels y (int32 [N]). */
static double chance_accuracy(const tg_tensor *y, int n_classes)
{
    int64_t n = y->shape[0], best = 0;
    int64_t *count = calloc((size_t)n_classes, sizeof *count);
    if (!count) return 1.0 / n_classes;
    const int32_t *lab = y->data;
    for (int64_t i = 0; i < n; i++)
        if (lab[i] >= 0 && lab[i] < n_classes) count[lab[i]]++;
    for (int k = 0; k < n_classes; k++) best = count[k] > best ? count[k] : best;
    free(count);
    return n ? (double)best / (double)n : NAN;
}

/* x: the training inputs, [N, features] or, for the conv models, [N, C, H, W]. */
static tg_module *build_model(const q2_config *c, const tg_tensor *x, int n_classes, tg_rng *rng)
{
    switch (c->model) {
    case Q2_LOGISTIC: return tg_linear_new(x->shape[1], n_classes, true, tg_init_pytorch(), rng);
    case Q2_LENET: return q2_lenet_new(c, x->shape[1], x->shape[2], x->shape[3], n_classes, rng);
    case Q2_ALEXNET: return q2_alexnet_new(c, x->shape[1], x->shape[2], n_classes, rng);
    default:
        return tg_feedforward_new(x->shape[1], n_classes, c->hidden_size, c->layers,
                                  c->activation, c->dropout, tg_init_pytorch(), rng);
    }
}

static tg_optimizer *build_optimizer(const q2_config *c, tg_module *model)
{
    tg_param_list ps = {0};
    tg_module_parameters(model, &ps);
    tg_optimizer *opt;
    if (!strncmp(c->optimizer, "adam", 4)) {
        opt = tg_adam_new(&ps, (tg_adam_opts){.lr = c->lr, .beta1 = c->beta1, .beta2 = c->beta2,
                                              .eps = c->eps, .weight_decay = c->l2,
                                              .decoupled = !strcmp(c->optimizer, "adamw")});
    } else if (!strcmp(c->optimizer, "rmsprop")) {
        opt = tg_rmsprop_new(&ps, (tg_rmsprop_opts){.lr = c->lr, .alpha = c->alpha, .eps = c->eps,
                                                    .weight_decay = c->l2,
                                                    .momentum = c->momentum,
                                                    .centered = c->centered});
    } else if (!strcmp(c->optimizer, "adagrad")) {
        opt = tg_adagrad_new(&ps, (tg_adagrad_opts){.lr = c->lr, .lr_decay = c->lr_decay,
                                                    .weight_decay = c->l2,
                                                    .initial_accumulator_value =
                                                        c->initial_accumulator_value,
                                                    .eps = c->eps});
    } else {
        opt = tg_sgd_new(&ps, (tg_sgd_opts){.lr = c->lr, .weight_decay = c->l2,
                                            .momentum = c->momentum, .dampening = c->dampening,
                                            .nesterov = c->nesterov});
        /* refused (false) with momentum; the training loop reads no gradient itself. Not in
         * question2-mpi: its micro-batches accumulate gradients over several backwards (refused
         * with updates in backward), and tg_ddp's hook keeps the usual path anyway. */
        if (!c->no_in_backward && !q2_dist) tg_optimizer_set_in_backward(opt, true);
    }
    tg_param_list_free(&ps);
    return opt;
}

/* BLIS picks one kernel set per process when it initialises: small products run faster on
 * haswell's kernels (they have BLIS's small-matrix path), large ones on skx's where AVX-512 exists
 * (include/tg/core.h, docs/blas.md). Measured end to end (10k examples, alternating runs):
 * batch 16 x 100 units haswell 1.3-1.5x faster; batch 64 x 100 a tie; batch 128-256 x 100 and
 * every batch with 1024 units skx faster (1.2-1.6x). SMALL_PRODUCTS is batch x layer width. */
#define SMALL_PRODUCTS 4096

void q2_blas_setup(const q2_config *c)
{
    int64_t width = c->model == Q2_LOGISTIC ? 784 : c->hidden_size;
    /* A convolution's product has a row per output pixel of the batch: always a large one. */
    bool small = !q2_is_conv(c->model) && c->batch_size * width <= SMALL_PRODUCTS;
    tg_blas_prefer(small ? TG_BLAS_SMALL_PRODUCTS : TG_BLAS_LARGE_PRODUCTS);
    tg_set_num_threads(c->threads);
}

/* metrics.csv and metrics.jsonl in c->out: one line per epoch, written as the epoch ends; the
 * training accuracy and test columns only when asked for. */
static tg_status open_log(const q2_config *c, tg_metrics_log **log)
{
    char csv[PATH_MAX + 32], jsonl[PATH_MAX + 32];
    q2_join(csv, sizeof csv, c->out, "metrics.csv");
    q2_join(jsonl, sizeof jsonl, c->out, "metrics.jsonl");
    const char *columns[9] = {"epoch", "train_loss", "valid_loss", "valid_acc", "sec_train",
                              "sec_eval"};
    int n = 6;
    if (c->train_acc) columns[n++] = "train_acc";
    if (c->test_curve) columns[n++] = "test_loss", columns[n++] = "test_acc";
    if (!q2_is_main()) return tg_metrics_log_open(log, NULL, NULL, n, columns);   /* in memory */
    return tg_metrics_log_open(log, csv, jsonl, n, columns);
}

static tg_status log_epoch(tg_metrics_log *log, const q2_config *c, const q2_result *r, int e)
{
    double row[9] = {e + 1, r->train_loss[e], r->valid_loss[e], r->valid_acc[e],
                     r->sec_train[e], r->sec_eval[e]};
    int n = 6;
    if (c->train_acc) row[n++] = r->train_acc[e];
    if (c->test_curve) row[n++] = r->test_loss_curve[e], row[n++] = r->test_acc_curve[e];
    return tg_metrics_log_write(log, row);
}

/* checkpoint.safetensors (model, optimizer, generator and the training loader's place) and
 * checkpoint.txt: the epoch it ends, the configuration (-epochs aside) and the parts the
 * checkpoint holds, so that one written without the loader is refused by name rather than
 * resumed on other batches. */
static const char CHECKPOINT_PARTS[] = "model,optimizer,rng,loader";

static void config_key(const q2_config *c, char *buf, size_t len)
{
    q2_config k = *c;
    k.epochs = 0;
    q2_config_name(&k, buf, len);
}

static tg_status save_checkpoint(const q2_config *c, const tg_checkpoint_parts *parts, int epoch)
{
    char path[PATH_MAX + 32], key[256];
    q2_join(path, sizeof path, c->out, "checkpoint.safetensors");
    tg_status st = tg_checkpoint_save_parts(path, parts);
    if (st != TG_OK) return st;
    q2_join(path, sizeof path, c->out, "checkpoint.txt");
    FILE *f = fopen(path, "w");
    if (!f) return tg_status_set(TG_ERR_IO, "%s: cannot write", path);
    config_key(c, key, sizeof key);
    fprintf(f, "epoch %d\nconfig %s\nholds %s\n", epoch, key, CHECKPOINT_PARTS);
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (err) return tg_status_set(TG_ERR_IO, "%s: write failed: %s", path, strerror(err));
    return TG_OK;
}

/* The epoch c->out's checkpoint ended, after checking it was written by this configuration,
 * with every part a resumed run restores. */
static tg_status checkpoint_epoch(const q2_config *c, int *epoch)
{
    char path[PATH_MAX + 32], key[256], saved[256] = "", parts[64] = "";
    q2_join(path, sizeof path, c->out, "checkpoint.txt");
    FILE *f = fopen(path, "r");
    if (!f) return tg_status_set(TG_ERR_IO, "-resume: %s: no checkpoint (was the run given "
                                 "-checkpoint_every?)", path);
    int ok = fscanf(f, "epoch %d config %255s holds %63s", epoch, saved, parts);
    fclose(f);
    if (ok < 2) return tg_status_set(TG_ERR_FORMAT, "-resume: %s: not a checkpoint note", path);
    config_key(c, key, sizeof key);
    if (strcmp(key, saved))
        return tg_status_set(TG_ERR_VALUE, "-resume %s: the checkpoint is of %s, these flags say "
                             "%s (give the run's own flags)", c->out, saved, key);
    if (!*parts)
        return tg_status_set(TG_ERR_FORMAT, "-resume %s: the checkpoint has no state of the "
                             "training loader (an earlier question2 wrote it): a resumed run would "
                             "not see the batches of one never stopped; run it again from the "
                             "start", c->out);
    if (strcmp(parts, CHECKPOINT_PARTS))
        return tg_status_set(TG_ERR_FORMAT, "-resume: %s says the checkpoint holds %s; question2 "
                             "resumes one that holds %s", path, parts, CHECKPOINT_PARTS);
    if (*epoch >= c->epochs)
        return tg_status_set(TG_ERR_VALUE, "-resume %s: the checkpoint ends epoch %d already; "
                             "give -epochs above it", c->out, *epoch);
    return TG_OK;
}

/* question2-mpi trains from its shard loader, which draws the orders this process's loader would
 * (distributed.c). That loader, idle there, still draws each epoch's order (without gathering a
 * row), so that the checkpoint holds the state question2's would and either program resumes it. */
static void skip_epoch(tg_loader *L)
{
    tg_loader_reset(L);
    tg_loader_state s = tg_loader_get_state(L);
    s.started = false;
    s.pos = 0;
    tg_loader_set_state(L, &s);
}

/* The checkpoint of a resumed run into its parts. The runner writes checkpoints between epochs
 * only, so a loader state inside an epoch is a file that was not the runner's own. */
static tg_status load_checkpoint(const q2_config *c, const tg_checkpoint_parts *parts, int first,
                                 tg_rng *rng)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, c->out, "checkpoint.safetensors");
    tg_status st = tg_checkpoint_load_parts(path, parts);
    if (st != TG_OK) return st;
    if (tg_loader_get_state(parts->loader).started)
        return tg_status_set(TG_ERR_FORMAT, "-resume: %s: the training loader's state is inside "
                             "an epoch; question2 checkpoints between epochs only", path);
    if (q2_dist) q2_dist->seek(first, rng);
    return TG_OK;
}

/* A resumed run's first epochs, read back from its metrics.csv (before the log reopens it). */
static tg_status read_first_epochs(const q2_config *c, q2_result *r, int epochs)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, c->out, "metrics.csv");
    tg_metrics_table t;
    tg_status st = tg_metrics_read_csv(path, &t);
    if (st != TG_OK) return st;
    static const char *const names[8] = {"train_loss", "valid_loss", "valid_acc", "sec_train",
                                          "sec_eval", "train_acc", "test_loss", "test_acc"};
    double *dst[8] = {r->train_loss, r->valid_loss, r->valid_acc, r->sec_train, r->sec_eval,
                      r->train_acc, r->test_loss_curve, r->test_acc_curve};
    if (t.n_rows < epochs) {
        tg_metrics_table_free(&t);
        return tg_status_set(TG_ERR_FORMAT, "-resume: %s has %d epochs, the checkpoint %d",
                             path, t.n_rows, epochs);
    }
    for (int k = 0; k < 8; k++) {
        const double *col = tg_metrics_column(&t, names[k]);
        if (col) memcpy(dst[k], col, (size_t)epochs * sizeof *col);
    }
    tg_metrics_table_free(&t);
    return TG_OK;
}

tg_status q2_run(const q2_config *c, const q2_data *d, const char *prefix, q2_result *r)
{
    double t_start = q2_now();
    memset(r, 0, sizeof *r);
    q2_result_alloc(r, c->epochs);
    int first = 0;   /* epochs already done (a resumed run's) */
    tg_status st = TG_OK;
    if (c->resume && ((st = checkpoint_epoch(c, &first)) != TG_OK ||
                      (q2_is_main() && (st = read_first_epochs(c, r, first)) != TG_OK)))
        return st;
    /* The arena's use-after-reset poisoning (on by default without NDEBUG) memsets every
     * intermediate at each tape_reset: ~4% of a 1024-wide step. This loop is known not to keep
     * intermediates across steps, so it runs without, unless asked. */
    tg_set_debug_checks(c->debug_checks);
    tg_set_num_threads(c->threads);
    tg_manual_seed(c->seed);
    tg_rng rng;
    tg_rng_seed(&rng, c->seed);
    int n_classes = d->m.train.n_classes > 0 ? d->m.train.n_classes : 10;

    r->n_train = d->x[0]->shape[0];
    r->n_valid = d->x[1]->shape[0];
    r->n_test = d->x[2]->shape[0];
    /* As PyTorch's DataLoader, such an epoch is one batch of the whole set; said, since the
     * configuration (folder name, summary, titles) carries the batch size asked for. */
    if (c->batch_size > r->n_train && !c->quiet)
        fprintf(stderr, "%s" PROG ": warning: -batch_size %lld is larger than the training set "
                        "(%lld examples): every epoch is one batch of %lld\n",
                prefix, (long long)c->batch_size, (long long)r->n_train, (long long)r->n_train);

    tg_module *model = build_model(c, d->x[0], n_classes, &rng);
    tg_optimizer *opt = build_optimizer(c, model);
    r->in_backward = tg_optimizer_in_backward(opt);
    if (q2_dist) q2_dist->start(c, d, model, &rng);
    tg_loader *train = tg_loader_new(d->x[0], d->y[0], c->batch_size, true, false, &rng);
    /* Two draws where the seeded stream has always had them (dropout masks come after): without
     * them every seeded figure in results/question2 would change. */
    tg_rng_next(&rng);
    tg_rng_next(&rng);
    tg_checkpoint_parts parts = {.model = model, .optimizer = opt, .rng = &rng, .loader = train};
    if (first) st = load_checkpoint(c, &parts, first, &rng);
    /* The log is reopened (its file rewritten) only once the checkpoint has loaded: a resume
     * that fails leaves the run's metrics as they were, so it can be resumed again. */
    tg_metrics_log *log = NULL;
    if (st == TG_OK) st = open_log(c, &log);
    for (int e = 0; e < first && st == TG_OK; e++) {
        r->epochs = e + 1;
        st = log_epoch(log, c, r, e);
    }
    if (st != TG_OK) {
        if (q2_dist) q2_dist->finish();
        tg_loader_free(train);
        tg_optimizer_free(opt);
        tg_module_free(model);
        tg_metrics_log_close(log);
        return st;
    }
    if (first && !c->quiet) printf("%sresumed %s at epoch %d\n", prefix, c->out, first + 1);

    if (!c->quiet) {
        char desc[256];
        q2_describe(c, desc, sizeof desc);
        printf("%s%s; seed %llu\n", prefix, desc, (unsigned long long)c->seed);
        printf("%strain %lld, valid %lld, test %lld examples; %lld parameters\n", prefix,
               (long long)r->n_train, (long long)r->n_valid, (long long)r->n_test,
               (long long)tg_module_num_parameters(model));
        printf("%sepoch  train_loss  valid_loss  valid_acc  sec_train  sec_eval\n", prefix);
    }
    /* A bar on a terminal, unless parallel sweep runs would draw over each other's. */
    tg_progress_mode bar = !c->quiet && c->jobs <= 1 ? TG_PROGRESS_AUTO : TG_PROGRESS_OFF;
    char label[64];
    snprintf(label, sizeof label, "%sepoch", prefix);

    r->chance = chance_accuracy(d->y[1], n_classes);
    tg_train_opts topts = {.keep_nonfinite = c->keep_going, .accuracy = c->train_acc,
                           .stop = &q2_stop, .progress = bar, .label = label,
                           .epochs = c->epochs};
    /* The running mean over every step so far (-train_loss running); a resumed run starts from
     * the logged one (every epoch has the same number of steps). */
    int64_t cum_steps = (int64_t)first * tg_loader_num_batches(train);
    double cum_loss = first ? r->train_loss[first - 1] * (double)cum_steps : 0;
    for (int e = first; e < c->epochs; e++) {
        /* A signal during the last evaluation: no epoch of zero steps. Not across processes
         * (MPI): there the ranks agree on stopping inside the epoch, at the same step. */
        if (q2_stop && !q2_dist) {
            r->status = RUN_INTERRUPTED;
            fprintf(stderr, "%s" PROG ": interrupted after epoch %d: writing the charts and the "
                            "summary\n", prefix, e);
            break;
        }
        uint64_t allocs0 = tg_alloc_count();
        topts.epoch = e + 1;
        tg_epoch_stats ts = q2_dist ? q2_dist->train_epoch(model, opt, &topts)
                                    : tg_train_epoch(model, opt, train, &topts);
        if (q2_dist) skip_epoch(train);
        if (e > first) {
            r->allocs_measured += tg_alloc_count() - allocs0;
            r->steps_measured += ts.steps;
        }
        double t1 = q2_now();
        tg_eval v = evaluate(model, d->x[1], d->y[1]);
        r->valid_loss[e] = v.loss;
        r->valid_acc[e] = v.accuracy;
        cum_loss += ts.loss * (double)ts.steps;
        cum_steps += ts.steps;
        r->train_loss[e] = c->running_loss ? cum_loss / (double)cum_steps : ts.loss;
        r->train_acc[e] = ts.accuracy;
        if (c->test_curve) {
            tg_eval te = evaluate(model, d->x[2], d->y[2]);
            r->test_loss_curve[e] = te.loss;
            r->test_acc_curve[e] = te.accuracy;
        }
        r->sec_train[e] = ts.seconds;
        r->sec_eval[e] = q2_now() - t1;
        r->epochs = e + 1;
        if (st == TG_OK)   /* a failed write is reported at the end; the run goes on */
            st = log_epoch(log, c, r, e);
        if (!c->quiet) {
            char a[24], b[24], v3[24];
            printf("%s%5d  %10s  %10s  %9s  %9.3f  %8.3f", prefix, e + 1,
                   q2_fmt(a, r->train_loss[e]), q2_fmt(b, r->valid_loss[e]),
                   q2_fmt(v3, r->valid_acc[e]), r->sec_train[e], r->sec_eval[e]);
            if (c->train_acc) printf("  train_acc %.4f", r->train_acc[e]);
            if (c->test_curve) printf("  test_acc %.4f", r->test_acc_curve[e]);
            printf("\n");
            fflush(stdout);
        }
        if (ts.nonfinite_step && !r->nonfinite_epoch) {
            r->nonfinite_epoch = e + 1;
            r->nonfinite_step = ts.nonfinite_step;
            fprintf(stderr, "%s" PROG ": the training loss is NaN or Inf at epoch %d, step %lld "
                            "(of %lld per epoch): the run diverged%s\n",
                    prefix, e + 1, (long long)ts.nonfinite_step,
                    (long long)tg_loader_num_batches(train),
                    c->keep_going ? "; -keep_going: training on"
                                  : "; stopped (try a smaller -learning_rate; -keep_going trains "
                                    "on)");
        }
        if (ts.nonfinite_step && !c->keep_going) {
            r->status = RUN_DIVERGED;
            break;
        }
        if (c->checkpoint_every && (e + 1) % c->checkpoint_every == 0 && !ts.stopped && st == TG_OK &&
            q2_is_main())
            st = save_checkpoint(c, &parts, e + 1);
        if (ts.stopped) {
            r->status = RUN_INTERRUPTED;
            fprintf(stderr, "%s" PROG ": interrupted at epoch %d after step %lld: writing the "
                            "charts and the summary\n", prefix, e + 1, (long long)ts.steps);
            break;
        }
    }
    if (r->status == RUN_COMPLETED && r->nonfinite_epoch) r->status = RUN_DIVERGED;
    tg_eval t = evaluate(model, d->x[2], d->y[2]);
    r->test_loss = t.loss;
    r->test_acc = t.accuracy;
    double last = r->epochs ? r->valid_acc[r->epochs - 1] : NAN;
    r->at_chance = !(last > r->chance + 0.02);   /* NaN too */
    if (r->at_chance && !c->quiet)
        fprintf(stderr, "%s" PROG ": warning: final validation accuracy %.4f is at chance (%.4f, "
                        "the commonest class's share): the model did not learn\n",
                prefix, last, r->chance);
    double s = 0;
    for (int e = 0; e < r->epochs; e++) s += r->sec_train[e];
    r->sec_per_epoch = r->epochs ? s / r->epochs : NAN;
    r->total_sec = q2_now() - t_start;

    if (q2_dist) q2_dist->finish();
    tg_loader_free(train);
    tg_optimizer_free(opt);
    tg_module_free(model);
    tg_status closed = tg_metrics_log_close(log);
    return st != TG_OK ? st : closed;
}
