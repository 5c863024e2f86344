/* A run's output files: its folder, summary.json (settings and final figures, which a sweep reads
 * back) and its two charts. The per-epoch metrics are logged by run.c as the run goes. */
#include "question2.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

tg_status q2_make_dirs(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return tg_status_set(TG_ERR_IO, "%s: cannot create folder: %s", buf,
                                     strerror(errno));
            *p = saved;
            if (!saved) break;
        }
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tg_status_set(TG_ERR_IO, "%s: not a folder", path);
    return TG_OK;
}

void q2_join(char *out, size_t len, const char *dir, const char *file)
{
    snprintf(out, len, "%s/%s", dir, file);
}

void q2_json_number(FILE *f, double v)
{
    if (isfinite(v)) fprintf(f, "%.8g", v);
    else fputs("null", f);
}

/* The files a run or a sweep writes: any of them in a folder means a previous run is there. */
static const char *const run_files[] = {"summary.json", "metrics.csv", "metrics.jsonl",
                                        "report.md", "sweep.txt"};

bool q2_read_summary(const char *dir, char *text, size_t len)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, dir, "summary.json");
    FILE *f = fopen(path, "r");
    text[0] = '\0';
    if (!f) return false;
    text[fread(text, 1, len - 1, f)] = '\0';
    fclose(f);
    return true;
}

bool q2_summary_string(const char *text, const char *key, char *out, size_t len)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": \"", key);
    const char *p = strstr(text, k);
    if (!p) return false;
    p += strlen(k);
    const char *end = strchr(p, '"');
    if (!end) return false;
    snprintf(out, len, "%.*s", (int)(end - p), p);
    return true;
}

bool q2_summary_number(const char *text, const char *key, double *v)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(text, k);
    return p && sscanf(p + strlen(k), "%lf", v) == 1;
}

tg_status q2_write_sweep_note(const char *dir, const char *kind, const char *name)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, dir, "sweep.txt");
    FILE *f = fopen(path, "w");
    if (!f) return tg_status_set(TG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "%s %s\n", kind, name);
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (err) return tg_status_set(TG_ERR_IO, "%s: write failed: %s", path, strerror(err));
    return TG_OK;
}

tg_status q2_check_out(const char *dir, bool overwrite)
{
    if (overwrite) return TG_OK;
    for (size_t i = 0; i < sizeof run_files / sizeof run_files[0]; i++) {
        char path[PATH_MAX + 32];
        q2_join(path, sizeof path, dir, run_files[i]);
        if (access(path, F_OK) == 0)
            return tg_status_set(TG_ERR_VALUE, "%s holds a previous run (%s): give -overwrite to "
                                 "replace it, or another -out", dir, run_files[i]);
    }
    return TG_OK;
}

static void json_key_number(FILE *f, const char *key, double v, bool last)
{
    fprintf(f, "  \"%s\": ", key);
    q2_json_number(f, v);
    fputs(last ? "\n" : ",\n", f);
}

/* The optimizer's own settings under torch.optim's names (those its rule reads). */
static void write_optimizer_settings(FILE *f, const q2_config *c)
{
    const char *o = c->optimizer;
    if (!strcmp(o, "sgd")) fprintf(f, "  \"dampening\": %.8g,\n", c->dampening);
    if (!strncmp(o, "adam", 4))
        fprintf(f, "  \"betas\": [%.8g, %.8g],\n", c->beta1, c->beta2);
    if (!strcmp(o, "rmsprop"))
        fprintf(f, "  \"alpha\": %.8g,\n  \"centered\": %s,\n", c->alpha,
                c->centered ? "true" : "false");
    if (!strcmp(o, "adagrad"))
        fprintf(f, "  \"lr_decay\": %.8g,\n  \"initial_accumulator_value\": %.8g,\n", c->lr_decay,
                c->initial_accumulator_value);
    if (strcmp(o, "sgd")) fprintf(f, "  \"eps\": %.8g,\n", c->eps);
}

/* One key per line: the sweep's parent process and replot read these back. Numbers that are not
 * finite are null; the final figures are the last row of metrics.csv, to the same digits. */
static tg_status write_summary(const q2_config *c, const q2_result *r, const char *dir,
                               const char *title)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, dir, "summary.json");
    FILE *f = fopen(path, "w");
    if (!f) return tg_status_set(TG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "{\n  \"status\": \"%s\",\n  \"title\": \"%s\",\n", q2_status_names[r->status],
            title);
    if (c->id[0])   /* a sweep's run: what replot needs to draw the sweep's charts again */
        fprintf(f, "  \"sweep_id\": \"%s\",\n  \"question\": \"%s\",\n  \"varied\": \"%s\",\n",
                c->id, c->question, c->varied);
    fprintf(f, "  \"model\": \"%s\",\n  \"epochs\": %d,\n  \"epochs_run\": %d,\n"
               "  \"batch_size\": %lld,\n  \"learning_rate\": %.8g,\n  \"l2_decay\": %.8g,\n"
               "  \"optimizer\": \"%s\",\n  \"momentum\": %.8g,\n  \"nesterov\": %s,\n",
            q2_model_names[c->model], c->epochs, r->epochs,
            (long long)c->batch_size, c->lr, c->l2, c->optimizer, c->momentum,
            c->nesterov ? "true" : "false");
    fprintf(f, "  \"update_in_backward\": %s,\n", r->in_backward ? "true" : "false");
    if (c->model == Q2_MLP)
        fprintf(f, "  \"hidden_size\": %lld,\n  \"layers\": %d,\n",
                (long long)c->hidden_size, c->layers);
    if (c->model == Q2_ALEXNET)
        fprintf(f, "  \"hidden_size\": %lld,\n  \"width\": %g,\n  \"batch_norm\": %s,\n",
                (long long)c->hidden_size, c->width, c->batch_norm ? "true" : "false");
    if (c->model != Q2_LOGISTIC)
        fprintf(f, "  \"dropout\": %g,\n  \"activation\": \"%s\",\n", c->dropout, c->activation);
    write_optimizer_settings(f, c);
    fprintf(f, "  \"seed\": %llu,\n  \"threads\": %d,\n  \"n_train\": %lld,\n  \"n_valid\": %lld,\n"
               "  \"n_test\": %lld,\n  \"blas\": \"%s\",\n",
            (unsigned long long)c->seed, c->threads, (long long)r->n_train,
            (long long)r->n_valid, (long long)r->n_test, tg_blas_info());
    if (r->nonfinite_epoch)
        fprintf(f, "  \"nonfinite_loss\": {\"epoch\": %d, \"step\": %lld},\n", r->nonfinite_epoch,
                (long long)r->nonfinite_step);
    else
        fprintf(f, "  \"nonfinite_loss\": null,\n");
    json_key_number(f, "chance_accuracy", r->chance, false);
    fprintf(f, "  \"at_chance\": %s,\n", r->at_chance ? "true" : "false");
    int e = r->epochs - 1;
    json_key_number(f, "final_train_loss", e >= 0 ? r->train_loss[e] : NAN, false);
    json_key_number(f, "final_valid_acc", e >= 0 ? r->valid_acc[e] : NAN, false);
    json_key_number(f, "final_valid_loss", e >= 0 ? r->valid_loss[e] : NAN, false);
    json_key_number(f, "test_acc", r->test_acc, false);
    json_key_number(f, "test_loss", r->test_loss, false);
    json_key_number(f, "sec_per_epoch", r->sec_per_epoch, false);
    json_key_number(f, "total_sec", r->total_sec, false);
    fprintf(f, "  \"steady_state_steps\": %lld,\n  \"steady_state_allocs\": %llu\n}\n",
            (long long)r->steps_measured, (unsigned long long)r->allocs_measured);
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (err) return tg_status_set(TG_ERR_IO, "%s: write failed: %s", path, strerror(err));
    return TG_OK;
}

/* A run's charts from its curves (run.c's, or a metrics.csv read back by replot): loss.png
 * (training dashed, validation solid, test dotted-style markers) and accuracy.png. */
tg_status q2_draw_run_charts(const char *title, const q2_curves *k, const char *dir, bool log_loss)
{
    char path[PATH_MAX + 32], t[256];
    bool mk = k->n <= 30;
    tg_chart loss = {.xlabel = "epoch", .ylabel = "cross-entropy loss", .log_y = log_loss};
    snprintf(t, sizeof t, "%s: loss", title);
    loss.title = t;
    loss.series[loss.n_series++] = (tg_series){.name = "training", .y = k->train_loss, .n = k->n,
                                               .dashed = true, .markers = mk};
    loss.series[loss.n_series++] = (tg_series){.name = "validation", .y = k->valid_loss,
                                               .n = k->n, .markers = mk};
    if (k->test_loss)
        loss.series[loss.n_series++] = (tg_series){.name = "test", .y = k->test_loss, .n = k->n,
                                                   .markers = mk};
    q2_join(path, sizeof path, dir, "loss.png");
    tg_status st = tg_chart_write_png(&loss, path, 800, 500);
    if (st != TG_OK) return st;

    char t2[256];
    snprintf(t2, sizeof t2, "%s: accuracy%s", title, k->at_chance ? " (at chance)" : "");
    tg_chart acc = {.title = t2, .xlabel = "epoch", .ylabel = "accuracy"};
    acc.series[acc.n_series++] = (tg_series){.name = "validation", .y = k->valid_acc, .n = k->n,
                                             .markers = mk};
    if (k->train_acc)
        acc.series[acc.n_series++] = (tg_series){.name = "training", .y = k->train_acc,
                                                 .n = k->n, .dashed = true, .markers = mk};
    if (k->test_acc)
        acc.series[acc.n_series++] = (tg_series){.name = "test", .y = k->test_acc, .n = k->n,
                                                 .markers = mk};
    acc.no_legend = acc.n_series == 1;
    /* A run at chance on an automatic axis would zoom into its noise and look like learning. */
    if (k->at_chance) acc.y_min = 0, acc.y_max = 1;
    q2_join(path, sizeof path, dir, "accuracy.png");
    return tg_chart_write_png(&acc, path, 800, 500);
}

tg_status q2_write_run_files(const q2_config *c, const q2_result *r, const char *title)
{
    tg_status st = write_summary(c, r, c->out, title);
    q2_curves k = {.n = r->epochs, .train_loss = r->train_loss, .valid_loss = r->valid_loss,
                   .valid_acc = r->valid_acc, .train_acc = c->train_acc ? r->train_acc : NULL,
                   .test_loss = c->test_curve ? r->test_loss_curve : NULL,
                   .test_acc = c->test_curve ? r->test_acc_curve : NULL,
                   .at_chance = r->at_chance};
    return st != TG_OK ? st : q2_draw_run_charts(title, &k, c->out, c->log_loss);
}
