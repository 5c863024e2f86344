/* A run's output files: its folder, summary.json (settings and final figures, which a sweep reads
 * back) and its two charts. The per-epoch metrics are logged by run.c as the run goes. */
#include "question2.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

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

/* One key per line: the sweep's parent process reads these back. */
static tg_status write_summary(const q2_config *c, const q2_result *r, const char *dir)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, dir, "summary.json");
    FILE *f = fopen(path, "w");
    if (!f) return tg_status_set(TG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "{\n  \"model\": \"%s\",\n  \"epochs\": %d,\n  \"batch_size\": %lld,\n"
               "  \"learning_rate\": %g,\n  \"l2_decay\": %g,\n  \"optimizer\": \"%s\",\n",
            c->logistic ? "logistic_regression" : "mlp", c->epochs, (long long)c->batch_size,
            c->lr, c->l2, c->optimizer);
    if (!c->logistic)
        fprintf(f, "  \"hidden_size\": %lld,\n  \"layers\": %d,\n  \"dropout\": %g,\n"
                   "  \"activation\": \"%s\",\n",
                (long long)c->hidden_size, c->layers, c->dropout, c->activation);
    fprintf(f, "  \"seed\": %llu,\n  \"threads\": %d,\n  \"n_train\": %lld,\n  \"n_valid\": %lld,\n"
               "  \"n_test\": %lld,\n  \"blas\": \"%s\",\n",
            (unsigned long long)c->seed, c->threads, (long long)r->n_train,
            (long long)r->n_valid, (long long)r->n_test, tg_blas_info());
    fprintf(f, "  \"final_valid_acc\": %.6f,\n  \"final_valid_loss\": %.6f,\n"
               "  \"test_acc\": %.6f,\n  \"test_loss\": %.6f,\n  \"sec_per_epoch\": %.4f,\n"
               "  \"total_sec\": %.3f,\n  \"steady_state_steps\": %lld,\n"
               "  \"steady_state_allocs\": %llu\n}\n",
            r->epochs ? r->valid_acc[r->epochs - 1] : NAN,
            r->epochs ? r->valid_loss[r->epochs - 1] : NAN, r->test_acc, r->test_loss,
            r->sec_per_epoch, r->total_sec, (long long)r->steps_measured,
            (unsigned long long)r->allocs_measured);
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (err) return tg_status_set(TG_ERR_IO, "%s: write failed: %s", path, strerror(err));
    return TG_OK;
}

static tg_status write_run_plots(const char *title, const q2_result *r, const char *dir)
{
    char path[PATH_MAX + 32], t[160];
    tg_chart loss = {.xlabel = "epoch", .ylabel = "cross-entropy loss", .n_series = 2};
    snprintf(t, sizeof t, "%s: loss", title);
    loss.title = t;
    loss.series[0] = (tg_series){.name = "training", .y = r->train_loss, .n = r->epochs,
                                 .dashed = true, .markers = r->epochs <= 30};
    loss.series[1] = (tg_series){.name = "validation", .y = r->valid_loss, .n = r->epochs,
                                 .markers = r->epochs <= 30};
    q2_join(path, sizeof path, dir, "loss.png");
    tg_status st = tg_chart_write_png(&loss, path, 800, 500);
    if (st != TG_OK) return st;

    char t2[160];
    snprintf(t2, sizeof t2, "%s: validation accuracy", title);
    tg_chart acc = {.title = t2, .xlabel = "epoch", .ylabel = "accuracy", .n_series = 1,
                    .no_legend = true};
    acc.series[0] = (tg_series){.name = "validation", .y = r->valid_acc, .n = r->epochs,
                                .markers = r->epochs <= 30};
    q2_join(path, sizeof path, dir, "accuracy.png");
    return tg_chart_write_png(&acc, path, 800, 500);
}

tg_status q2_write_run_files(const q2_config *c, const q2_result *r, const char *title)
{
    tg_status st = write_summary(c, r, c->out);
    return st != TG_OK ? st : write_run_plots(title, r, c->out);
}
