/* The report of a sweep: report.md (a table per question, the best configuration) and the
 * combined charts that put a question's curves side by side. */
#include "question2.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

/* Configurations per combined chart: one colour each (the palette has 16), their training and
 * validation losses a pair of series. A grid with more gets several charts. */
enum { PER_CHART = 16 };

/* One chart comparing some rows (indices, at most PER_CHART), validation accuracy or
 * training/validation loss; the legend goes beside the plot when no corner is free. */
static tg_status combined_chart(const sweep *s, const int *idx, const char *const *labels, int n,
                                bool loss, bool log_loss, const char *title, const char *dir,
                                const char *file, char *written, size_t wlen)
{
    tg_chart ch = {.title = title, .xlabel = "epoch", .log_y = loss && log_loss,
                   .ylabel = loss ? "validation loss (solid), training loss (dashed)"
                                  : "validation accuracy"};
    char names[PER_CHART][sizeof s->rows[0].cfg.varied];
    for (int i = 0; i < n && i < PER_CHART; i++) {
        const sweep_row *row = &s->rows[idx[i]];
        if (!row->ok) continue;
        int k = ch.n_series;
        snprintf(names[i], sizeof names[0], "%s", labels ? labels[i] : row->cfg.varied);
        uint32_t col = tg_chart_palette(i);
        const q2_result *r = &row->r;
        bool mk = r->epochs <= 30;
        ch.series[k] = (tg_series){.name = names[i], .y = loss ? r->valid_loss : r->valid_acc,
                                   .n = r->epochs, .color = col, .markers = mk};
        ch.n_series++;
        if (loss) {
            ch.series[k + 1] = (tg_series){.name = NULL, .y = r->train_loss, .n = r->epochs,
                                           .color = col, .dashed = true};
            ch.n_series++;
        }
    }
    if (ch.n_series == 0) return TG_OK;
    char path[PATH_MAX + 64];
    q2_join(path, sizeof path, dir, file);
    tg_status st = tg_chart_write_png(&ch, path, 800, 500);
    if (st == TG_OK) {
        size_t u = strlen(written);
        snprintf(written + u, wlen - u, "%s%s", u ? " " : "", file);
    }
    return st;
}

static int find_row(const sweep *s, const char *id)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->rows[i].cfg.id, id)) return i;
    return -1;
}

typedef enum { BY_LR, BY_HIDDEN, BY_DROPOUT, BY_ACTIVATION, BY_LAYERS } chart_setting;

/* A curve's legend: the value the row actually ran with (the base flags may have changed the
 * defaults), and "(2.2 default)" on the row every 2.2 setting is compared against. */
static void curve_label(char *buf, size_t len, const sweep_row *row, chart_setting by)
{
    const q2_config *c = &row->cfg;
    int k = 0;
    switch (by) {
    case BY_LR: k = snprintf(buf, len, "lr %g", c->lr); break;
    case BY_HIDDEN: k = snprintf(buf, len, "hidden %lld", (long long)c->hidden_size); break;
    case BY_DROPOUT: k = snprintf(buf, len, "dropout %g", c->dropout); break;
    case BY_ACTIVATION: k = snprintf(buf, len, "%s", c->activation); break;
    case BY_LAYERS:
        k = snprintf(buf, len, "%d layer%s", c->layers, c->layers > 1 ? "s" : "");
        break;
    }
    if (k > 0 && (size_t)k < len && !strcmp(c->id, "2.2-default"))
        snprintf(buf + k, len - (size_t)k, " (2.2 default)");
}

/* Charts for one question: a chart per varied setting (with the defaults row as reference). */
static void question_charts(const sweep *s, const char *q, const char *dir, FILE *md,
                            bool base_log_loss)
{
    typedef struct { const char *file, *title; chart_setting by; const char *ids[4]; } group;
    static const group groups[] = {
        {"2.1_lr", "2.1 logistic regression: learning rate", BY_LR,
         {"2.1-lr0.001", "2.1-lr0.01", "2.1-lr0.1"}},
        {"2.2_lr", "2.2 mlp: learning rate", BY_LR, {"2.2-lr0.001", "2.2-default", "2.2-lr0.1"}},
        {"2.2_hidden", "2.2 mlp: hidden size", BY_HIDDEN, {"2.2-default", "2.2-hidden200"}},
        {"2.2_dropout", "2.2 mlp: dropout", BY_DROPOUT, {"2.2-default", "2.2-dropout0.5"}},
        {"2.2_activation", "2.2 mlp: activation", BY_ACTIVATION, {"2.2-default", "2.2-tanh"}},
        {"2.3_layers", "2.3 mlp: hidden layers", BY_LAYERS,
         {"2.2-default", "2.3-layers2", "2.3-layers3"}},
    };
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        if (strncmp(groups[g].file, q, strlen(q)) != 0) continue;
        int idx[4], n = 0, own = 0;
        char label_text[4][48];
        const char *labels[4];
        for (int i = 0; i < 4 && groups[g].ids[i]; i++) {
            int k = find_row(s, groups[g].ids[i]);
            if (k < 0 || !s->rows[k].ok) continue;
            curve_label(label_text[n], sizeof label_text[n], &s->rows[k], groups[g].by);
            labels[n] = label_text[n], idx[n++] = k;
            own += !strncmp(groups[g].ids[i], q, strlen(q));
        }
        /* 2.3 compares with 2.2's defaults: without a 2.3 row of its own there is nothing to
         * show. */
        if (own == 0) continue;
        char written[256] = "", file[64], title[128];
        for (int loss = 0; loss < 2; loss++) {
            snprintf(file, sizeof file, "%s_%s.png", groups[g].file, loss ? "loss" : "valid_acc");
            snprintf(title, sizeof title, "%s (%s)", groups[g].title,
                     loss ? "loss" : "validation accuracy");
            if (combined_chart(s, idx, labels, n, loss, base_log_loss, title, dir, file, written,
                               sizeof written) != TG_OK)
                fprintf(stderr, PROG ": %s\n", tg_status_message());
        }
        if (!md) continue;
        fprintf(md, "\n**%s**\n\n", groups[g].title);
        char *save = NULL;
        for (char *t = strtok_r(written, " ", &save); t; t = strtok_r(NULL, " ", &save))
            fprintf(md, "![%s](%s) ", t, t);
        fprintf(md, "\n");
    }
}

/* Every configuration of a grid, PER_CHART a chart: grid_valid_acc.png, grid_valid_acc_2.png... */
static void grid_charts(const sweep *s, const char *dir, FILE *md, bool log_loss)
{
    int idx[MAX_CONFIGS], n = 0;
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->rows[i].cfg.question, "grid") && s->rows[i].ok) idx[n++] = i;
    static char written[4096];
    written[0] = '\0';
    int pages = (n + PER_CHART - 1) / PER_CHART;
    for (int pg = 0; pg < pages; pg++) {
        int m = n - pg * PER_CHART < PER_CHART ? n - pg * PER_CHART : PER_CHART;
        char suffix[16] = "", t1[96], t2[96], f1[64], f2[64];
        if (pages > 1) snprintf(suffix, sizeof suffix, "_%d", pg + 1);
        snprintf(f1, sizeof f1, "grid_valid_acc%s.png", suffix);
        snprintf(f2, sizeof f2, "grid_loss%s.png", suffix);
        snprintf(t1, sizeof t1, "Grid: validation accuracy (configurations %d-%d of %d)",
                 pg * PER_CHART + 1, pg * PER_CHART + m, n);
        snprintf(t2, sizeof t2, "Grid: loss (configurations %d-%d of %d)", pg * PER_CHART + 1,
                 pg * PER_CHART + m, n);
        if (combined_chart(s, idx + pg * PER_CHART, NULL, m, false, false, t1, dir, f1, written,
                           sizeof written) != TG_OK ||
            combined_chart(s, idx + pg * PER_CHART, NULL, m, true, log_loss, t2, dir, f2,
                           written, sizeof written) != TG_OK)
            fprintf(stderr, PROG ": %s\n", tg_status_message());
    }
    if (!md) return;
    fprintf(md, "\n");
    char *save = NULL;
    for (char *w = strtok_r(written, " ", &save); w; w = strtok_r(NULL, " ", &save))
        fprintf(md, "![%s](%s) ", w, w);
    fprintf(md, "\n");
}

/* The combined charts of question q ("2.1", ..., "grid"), linked from md unless it is NULL. */
static void charts_of(const sweep *s, const char *q, const char *dir, FILE *md, bool log_loss)
{
    if (strcmp(q, "grid")) question_charts(s, q, dir, md, log_loss);
    else grid_charts(s, dir, md, log_loss);
}

void q2_sweep_charts(const sweep *s, const char *dir, bool log_loss)
{
    static const char *const questions[] = {"2.1", "2.2", "2.3", "grid"};
    for (int q = 0; q < 4; q++) charts_of(s, questions[q], dir, NULL, log_loss);
}

void q2_row_failure(const sweep_row *row, char *buf, size_t len)
{
    if (row->status == Q2_NOT_RUN) snprintf(buf, len, "not run (interrupted)");
    else if (row->status == EXIT_INTERRUPTED)
        snprintf(buf, len, "interrupted before its first epoch");
    else snprintf(buf, len, "failed (exit %d)", row->status);
}

static void fmt_cell(char *buf, size_t len, bool show, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fmt_cell(char *buf, size_t len, bool show, const char *fmt, ...)
{
    if (!show) { snprintf(buf, len, "–"); return; }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

tg_status q2_write_report(const sweep *s, const char *which, const q2_config *base,
                              const q2_data *d, double wall, const char *dir)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, dir, "report.md");
    FILE *md = fopen(path, "w");
    if (!md) return tg_status_set(TG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    time_t t = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", localtime(&t));
    fprintf(md, "# Question 2 sweep: %s%s\n\n", which, q2_stop ? " (interrupted)" : "");
    if (q2_stop)
        fprintf(md, "**Interrupted** (SIGINT/SIGTERM): the runs that were going stopped after their "
                    "current step (marked interrupted), those not started are marked not run; the "
                    "charts show what finished.\n\n");
    fprintf(md, "Written by `apps/question2/` on %s. Data: `%s`", date, base->data);
    int64_t n_train = d->x[0]->shape[0], n_full = d->m.train.x->shape[0];
    fprintf(md, " (train %lld%s, validation %lld%s, test %lld%s examples)", (long long)n_train,
            n_train < n_full ? " — a subset (-limit)" : "", (long long)d->x[1]->shape[0],
            d->x[1]->shape[0] < d->m.val.x->shape[0] ? " (-eval_limit)" : "",
            (long long)d->x[2]->shape[0],
            d->x[2]->shape[0] < d->m.test.x->shape[0] ? " (-eval_limit)" : "");
    fprintf(md, ".\n%s; %d configuration(s) at a time, %.0f s of wall time in all. Seed %llu.\n",
            tg_blas_info(), base->jobs, wall, (unsigned long long)base->seed);
    fprintf(md, "\nAccuracies are final-epoch figures; *best valid* is the highest validation "
                "accuracy of any epoch. s/epoch is training time only (evaluation excluded)%s.\n",
            base->jobs > 1 ? "; configurations ran in parallel and shared the CPU, so their "
                             "times are not speed benchmarks" : "");

    const char *questions[] = {"2.1", "2.2", "2.3", "grid"};
    for (int qi = 0; qi < 4; qi++) {
        const char *q = questions[qi];
        int best = -1, count = 0;
        for (int i = 0; i < s->n; i++) {
            const sweep_row *row = &s->rows[i];
            if (strcmp(row->cfg.question, q)) continue;
            count++;
            if (row->ok && row->r.status == RUN_COMPLETED &&
                (best < 0 || row->r.valid_acc[row->r.epochs - 1] >
                                            s->rows[best].r.valid_acc[s->rows[best].r.epochs - 1]))
                best = i;
        }
        if (!count) continue;
        fprintf(md, "\n## %s%s\n\n", !strcmp(q, "grid") ? "Grid" : "Question ",
                !strcmp(q, "grid") ? "" : q);
        fprintf(md,
                "| configuration | model | epochs | batch | lr | l2 | optimizer | hidden | layers "
                "| dropout | activation | valid acc | best valid (epoch) | test acc | s/epoch "
                "| total s |\n");
        fprintf(md,
                "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < s->n; i++) {
            const sweep_row *row = &s->rows[i];
            const q2_config *c = &row->cfg;
            if (strcmp(c->question, q)) continue;
            bool mlp = c->model == Q2_MLP;
            char h[24], l[24], dr[24], act[24];
            fmt_cell(h, sizeof h, mlp, "%lld", (long long)c->hidden_size);
            fmt_cell(l, sizeof l, mlp, "%d", c->layers);
            fmt_cell(dr, sizeof dr, mlp, "%g", c->dropout);
            fmt_cell(act, sizeof act, mlp, "%s", c->activation);
            fprintf(md, "| %s%s%s | %s | %d | %lld | %g | %g | %s | %s | %s | %s | %s | ",
                    i == best ? "**" : "", c->varied, i == best ? "**" : "",
                    c->model == Q2_LOGISTIC ? "logistic" : q2_model_names[c->model], c->epochs, (long long)c->batch_size, c->lr, c->l2,
                    c->optimizer, h, l, dr, act);
            if (row->ok) {
                char flag[96] = "";
                if (row->r.status == RUN_DIVERGED)
                    snprintf(flag, sizeof flag, " **diverged** (NaN/Inf loss, epoch %d step %lld)",
                             row->r.nonfinite_epoch, (long long)row->r.nonfinite_step);
                else if (row->r.status == RUN_INTERRUPTED)
                    snprintf(flag, sizeof flag, " **interrupted**");
                if (row->r.at_chance)
                    snprintf(flag + strlen(flag), sizeof flag - strlen(flag), " **at chance**");
                fprintf(md, "%.4f%s | %.4f (%d) | %.4f | %.2f | %.0f |\n",
                        row->r.valid_acc[row->r.epochs - 1], flag, row->best_valid_acc,
                        row->best_epoch, row->r.test_acc, row->r.sec_per_epoch, row->r.total_sec);
            }
            else {
                char why[48];
                q2_row_failure(row, why, sizeof why);
                fprintf(md, "%s | | | | |\n", why);
            }
        }
        if (best >= 0)
            fprintf(md,
                    "\nBest by final validation accuracy: **%s** (`%s/`) — validation %.4f, "
                    "test %.4f.\n",
                    s->rows[best].cfg.varied, s->rows[best].cfg.id,
                    s->rows[best].r.valid_acc[s->rows[best].r.epochs - 1],
                    s->rows[best].r.test_acc);
        charts_of(s, q, dir, md, base->log_loss);
    }
    fprintf(md, "\nEach configuration's folder holds metrics.csv, metrics.jsonl, summary.json, "
                "loss.png and accuracy.png.\n");
    int err = ferror(md) ? (errno ? errno : EIO) : 0;
    if (fclose(md) != 0 && !err) err = errno ? errno : EIO;
    if (err) return tg_status_set(TG_ERR_IO, "%s: write failed: %s", path, strerror(err));
    return TG_OK;
}
