/* Recipes: a homework's experiments as one command. A recipe is a base configuration (flags), the
 * runs that change it, and the charts the homework asks for (a column of metrics.csv over several
 * runs, or several columns of one run); `question2 recipe NAME` runs them as a sweep does (data
 * loaded once, -jobs processes) and writes report.md with a results table and the charts.
 * -fast runs the same recipe on a subset for a couple of epochs (what `make test` runs).
 *
 * Flags are applied in this order, each over the last: the recipe's base, its fast flags (with
 * -fast), the command line's, the run's own. */
#include "question2.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *id, *varied, *flags;   /* flags: "-learning_rate 0.001" (space-separated) */
} recipe_run;

/* Series: every run whose id is in runs (comma-separated) x every column in columns; training
 * columns dashed, the others solid, one colour per (run, quantity). */
typedef struct {
    const char *file, *title, *ylabel, *runs, *columns;
    bool log_y;
} recipe_chart;

enum { MAX_RUNS = 12, MAX_CHARTS = 8 };

typedef struct {
    const char *name, *title, *source, *base, *fast;
    recipe_run runs[MAX_RUNS];
    recipe_chart charts[MAX_CHARTS];
    const char *notes;   /* Markdown after the table: the protocol's choices, published figures */
} recipe;

static const recipe recipes[] = {
    {"hw4-backprop", "HW4 back-propagation: network [784, 40, 10]",
     "the HW4 back-propagation exercise",
     "mlp -hidden_size 40 -layers 1 -activation sigmoid -dropout 0 -batch_size 10 "
     "-learning_rate 0.1 -epochs 30 -train_subset 10000 -test_subset 5000 -train_acc -test_curve",
     "-epochs 2 -train_subset 500 -test_subset 300 -limit 1000 -eval_limit 300",
     {{"lr0.001", "lr 0.001", "-learning_rate 0.001"},
      {"lr0.01", "lr 0.01", "-learning_rate 0.01"},
      {"lr0.1", "lr 0.1 (the exercise)", ""},
      {"lr1", "lr 1", "-learning_rate 1"},
      {"lr10", "lr 10", "-learning_rate 10"},
      {"lr100", "lr 100", "-learning_rate 100"},
      {"full", "lr 0.1, the full training set", "-train_subset 0"}},
     {{"hw4_lr0.1.png", "[784, 40, 10], batch 10, lr 0.1: accuracy", "accuracy", "lr0.1",
       "train_acc,test_acc", false},
      {"hw4_lr_train_acc.png", "learning rate: training accuracy", "training accuracy",
       "lr0.001,lr0.01,lr0.1,lr1,lr10,lr100", "train_acc", false},
      {"hw4_lr_train_loss.png", "learning rate: training loss", "training cross-entropy",
       "lr0.001,lr0.01,lr0.1,lr1,lr10,lr100", "train_loss", true},
      {"hw4_lr_test_acc.png", "learning rate: test accuracy", "test accuracy",
       "lr0.001,lr0.01,lr0.1,lr1,lr10,lr100", "test_acc", false},
      {"hw4_full.png", "full training set, lr 0.1: accuracy", "accuracy", "full",
       "train_acc,test_acc", false}},
     "The exercise's network: 784 inputs, 40 sigmoid units, 10 outputs, minibatch SGD of 10, "
     "30 epochs, on 10,000 training and 5,000 test images drawn at random (seeded by -seed) "
     "from the training and test files. Loss: softmax cross-entropy (the runner's; a quadratic "
     "cost is not offered). Training loss and accuracy are the means over each epoch's batches, "
     "in train mode, before each step. Then the learning rates 0.001 to 100 with three charts "
     "(training accuracy, training loss, test accuracy), then lr 0.1 on the whole training set "
     "(50,000 images; the runner keeps the last 10,000 for validation)."},
    {"cmu-10417-hw1", "CMU 10-417 HW1: one and two hidden layers",
     "CMU 10-417 homework 1",
     "mlp -hidden_size 150 -layers 1 -activation sigmoid -dropout 0 -learning_rate 0.001 "
     "-batch_size 16 -epochs 200 -train_acc -test_curve",
     "-epochs 2 -limit 1000 -eval_limit 300",
     {{"1x150", "1 layer of 150", ""},
      {"1x60", "1 layer of 60", "-hidden_size 60"},
      {"2x150", "2 layers of 150", "-layers 2"},
      {"2x60", "2 layers of 60", "-layers 2 -hidden_size 60"},
      {"1x150-m0.4", "momentum 0.4", "-momentum 0.4"},
      {"1x150-d0.2", "dropout 0.2", "-dropout 0.2"},
      {"1x150-lr0.01", "lr 0.01", "-learning_rate 0.01"},
      {"1x150-lr0.0001", "lr 0.0001", "-learning_rate 0.0001"}},
     {{"cmu_width.png", "width 60 vs 150: loss and accuracy", "loss / accuracy", "1x60,1x150",
       "train_loss,test_loss,train_acc,test_acc", false},
      {"cmu_depth.png", "1 vs 2 hidden layers: loss and accuracy", "loss / accuracy",
       "1x150,2x150", "train_loss,test_loss,train_acc,test_acc", false},
      {"cmu_momentum.png", "momentum 0 vs 0.4: loss and accuracy", "loss / accuracy",
       "1x150,1x150-m0.4", "train_loss,test_loss,train_acc,test_acc", false},
      {"cmu_dropout.png", "dropout 0 vs 0.2: loss and accuracy", "loss / accuracy",
       "1x150,1x150-d0.2", "train_loss,test_loss,train_acc,test_acc", false},
      {"cmu_lr_loss.png", "learning rate: loss", "cross-entropy",
       "1x150-lr0.01,1x150,1x150-lr0.0001", "train_loss,test_loss", false},
      {"cmu_lr_acc.png", "learning rate: accuracy", "accuracy",
       "1x150-lr0.01,1x150,1x150-lr0.0001", "train_acc,test_acc", false}},
     "One and two hidden layers of sigmoid units, widths 60 and 150, momentum 0 and 0.4, dropout "
     "0 and 0.2, lr 0.001, minibatch SGD (16, shuffled every epoch), 200 epochs; train and test "
     "curves of loss and of accuracy on one chart per comparison, then lr {0.01, 0.001, 0.0001}. "
     "Each comparison changes one setting of `1x150`."},
    {"medical-studies", "The medical-image report's studies: batch, learning rate, L2 vs dropout",
     "the medical-image report (on any data set in the IDX layout: -data DIR)",
     "mlp -hidden_size 200 -layers 1 -dropout 0 -learning_rate 0.01 -batch_size 16 -epochs 20 "
     "-train_acc",
     "-epochs 2 -limit 1000 -eval_limit 300",
     {{"base", "base: batch 16, lr 0.01, no regularisation", ""},
      {"b1024", "batch 1024", "-batch_size 1024"},
      {"lr0.001", "lr 0.001", "-learning_rate 0.001"},
      {"lr0.1", "lr 0.1", "-learning_rate 0.1"},
      {"lr1", "lr 1", "-learning_rate 1"},
      {"l2", "L2 decay 0.001", "-l2_decay 0.001"},
      {"dropout", "dropout 0.3", "-dropout 0.3"}},
     {{"med_batch_acc.png", "batch 16 vs 1024: accuracy", "accuracy", "base,b1024",
       "train_acc,valid_acc", false},
      {"med_batch_loss.png", "batch 16 vs 1024: loss", "cross-entropy", "base,b1024",
       "train_loss,valid_loss", false},
      {"med_lr_acc.png", "learning rate: validation accuracy", "validation accuracy",
       "lr0.001,base,lr0.1,lr1", "valid_acc", false},
      {"med_lr_loss.png", "learning rate: training loss", "training cross-entropy",
       "lr0.001,base,lr0.1,lr1", "train_loss", true},
      {"med_regularisation.png", "none vs L2 decay vs dropout: accuracy", "accuracy",
       "base,l2,dropout", "train_acc,valid_acc", false}},
     "The report's three studies, each changing one setting of `base` (one hidden layer of 200 "
     "ReLU units, SGD lr 0.01, batch 16, 20 epochs): batch 16 against 1024 (same lr and epochs, "
     "so 64 times fewer steps), the learning rates 0.001 to 1, and L2 weight decay against "
     "dropout (training against validation accuracy: the gap is the overfitting each removes)."},
};
enum { N_RECIPES = sizeof recipes / sizeof recipes[0] };

/* Tokens of a recipe's flag string, kept for the whole program (raw_flags points into them). */
static tg_status parse_flag_string(const char *text, raw_flags *raw, const char **model)
{
    static char store[16][512];
    static int used;
    if (used == 16 || strlen(text) >= sizeof store[0])
        return q2_bad("recipe: flag string too long: %s", text);
    char *buf = store[used++];
    snprintf(buf, sizeof store[0], "%s", text);
    char *argv[64];
    int argc = 0;
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && argc < 64;
         t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    const char *pos[1];
    int n_pos = 0;
    bool help = false;
    raw_flags got = {0};
    tg_status st = q2_parse_flags(argc, argv, 0, &got, pos, 1, &n_pos, &help);
    if (st != TG_OK) return st;
    if (n_pos && model) *model = pos[0];
    for (int f = 0; f < N_FLAGS; f++)
        if (got.v[f]) raw->v[f] = got.v[f];
    return TG_OK;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROG " recipe NAME [-fast] [flags]   a homework's experiments, "
               "report.md and charts\n\nNAME:\n");
    fprintf(f, "  %-16s %s\n", "ist-hw1 [q1|q2]",
            "IST 2022-23 HW1: Q1 by hand (perceptron, logistic regression, MLP),");
    fprintf(f, "  %-16s %s\n", "", "then Q2.1-2.3 (= '" PROG " sweep all'); q1 or q2: one alone");
    for (int i = 0; i < N_RECIPES; i++)
        fprintf(f, "  %-16s %s\n", recipes[i].name, recipes[i].title);
    fprintf(f, "\nflags: as for a run (-data, -jobs, -threads, -seed, -out, ...), over the "
               "recipe's own;\n-fast: a subset for 2 epochs (what make test runs).\n");
}

static bool in_list(const char *list, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = list; (p = strstr(p, id)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

static const char *column_label(const char *col)
{
    static const char *const names[][2] = {
        {"train_loss", "training loss"}, {"test_loss", "test loss"},
        {"valid_loss", "validation loss"}, {"train_acc", "training accuracy"},
        {"test_acc", "test accuracy"}, {"valid_acc", "validation accuracy"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(names[i][0], col)) return names[i][1];
    return col;
}

/* The quantity of a column: "loss" of train_loss / test_loss. */
static const char *quantity(const char *col)
{
    const char *u = strchr(col, '_');
    return u ? u + 1 : col;
}

/* The position in columns of the first column measuring col's quantity. */
static int quantity_index(const char *columns, const char *col)
{
    char list[256];
    snprintf(list, sizeof list, "%s", columns);
    int k = 0;
    for (char *save = NULL, *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save), k++)
        if (!strcmp(quantity(c), quantity(col))) return k;
    return 0;
}

/* One chart of a recipe, from the runs' metrics.csv. */
static tg_status recipe_chart_write(const recipe_chart *ch, const sweep *s, const char *dir,
                                    const char *prefix)
{
    tg_chart c = {.xlabel = "epoch", .ylabel = ch->ylabel, .log_y = ch->log_y};
    char title[256];
    snprintf(title, sizeof title, "%s%s", prefix, ch->title);
    c.title = title;
    static tg_metrics_table tables[MAX_RUNS];
    static char names[TG_CHART_MAX_SERIES][128];
    int n_tables = 0, n_runs = 0;
    char cols[256];
    snprintf(cols, sizeof cols, "%s", ch->columns);
    int n_cols = 1;
    for (const char *p = cols; *p; p++) n_cols += *p == ',';
    for (int i = 0; i < s->n; i++) n_runs += in_list(ch->runs, s->rows[i].cfg.id) && s->rows[i].ok;
    for (int i = 0; i < s->n && c.n_series < TG_CHART_MAX_SERIES; i++) {
        const sweep_row *row = &s->rows[i];
        if (!in_list(ch->runs, row->cfg.id) || !row->ok) continue;
        char path[PATH_MAX + 32];
        q2_join(path, sizeof path, row->cfg.out, "metrics.csv");
        tg_metrics_table *t = &tables[n_tables];
        if (tg_metrics_read_csv(path, t) != TG_OK) continue;
        n_tables++;
        char list[256];
        snprintf(list, sizeof list, "%s", ch->columns);
        int k = 0;
        for (char *save = NULL, *col = strtok_r(list, ",", &save);
             col && c.n_series < TG_CHART_MAX_SERIES; col = strtok_r(NULL, ",", &save), k++) {
            const double *y = tg_metrics_column(t, col);
            if (!y) continue;
            int si = c.n_series;
            const char *run_name = row->cfg.varied;
            if (n_runs > 1 && n_cols > 1)
                snprintf(names[si], sizeof names[si], "%s: %s", run_name, column_label(col));
            else if (n_runs > 1)
                snprintf(names[si], sizeof names[si], "%s", run_name);
            else
                snprintf(names[si], sizeof names[si], "%s", column_label(col));
            /* A run's training and test curves of one quantity share a colour. */
            bool train = !strncmp(col, "train_", 6);
            int colour = (n_tables - 1) * n_cols + quantity_index(ch->columns, col);
            c.series[si] = (tg_series){.name = names[si], .y = y, .n = t->n_rows,
                                       .color = tg_chart_palette(colour), .dashed = train,
                                       .markers = t->n_rows <= 30};
            c.n_series++;
        }
    }
    char path[PATH_MAX + 64];
    q2_join(path, sizeof path, dir, ch->file);
    tg_status st = c.n_series ? tg_chart_write_png(&c, path, 800, 500) : TG_OK;
    for (int i = 0; i < n_tables; i++) tg_metrics_table_free(&tables[i]);
    return st;
}

static void cell(FILE *md, double v)
{
    if (isfinite(v)) fprintf(md, " %.4f |", v);
    else fprintf(md, " – |");
}

/* A run's last value of a column, read back from its metrics.csv (NaN if absent). */
static double last_value(const sweep_row *row, const char *col)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, row->cfg.out, "metrics.csv");
    tg_metrics_table t;
    if (tg_metrics_read_csv(path, &t) != TG_OK) return NAN;
    const double *y = tg_metrics_column(&t, col);
    double v = y && t.n_rows ? y[t.n_rows - 1] : NAN;
    tg_metrics_table_free(&t);
    return v;
}

static tg_status recipe_report(const recipe *rc, const sweep *s, const q2_config *base,
                               const q2_data *d, bool fast, double wall, const char *cmdline)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, base->out, "report.md");
    FILE *md = fopen(path, "w");
    if (!md) return tg_status_set(TG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", localtime(&now));
    fprintf(md, "# %s%s%s\n\n", rc->title, fast ? " (fast mode)" : "",
            q2_stop ? " (interrupted)" : "");
    fprintf(md, "The experiments of %s, from one command:\n\n    %s\n\n", rc->source, cmdline);
    fprintf(md, "Written by `apps/question2/` on %s. Data: `%s` (train %lld, validation %lld, "
                "test %lld examples). %s; %d run(s) at a time, %.0f s of wall time. Seed %llu.\n",
            date, base->data, (long long)d->x[0]->shape[0], (long long)d->x[1]->shape[0],
            (long long)d->x[2]->shape[0], tg_blas_info(), base->jobs, wall,
            (unsigned long long)base->seed);
    if (q2_stop)
        fprintf(md, "\n**Interrupted** (SIGINT/SIGTERM): the runs that were going stopped after "
                    "their current step (marked interrupted), those not started are marked not "
                    "run; the charts show what finished.\n");
    if (fast)
        fprintf(md, "\n**Fast mode**: a subset for a few epochs, to check the recipe runs; the "
                    "figures are not the homework's.\n");
    fprintf(md, "\n| run | settings | epochs | final train loss | final train acc | final valid "
                "acc | final test acc | s/epoch | note |\n|---|---|---:|---:|---:|---:|---:|---:"
                "|---|\n");
    for (int i = 0; i < s->n; i++) {
        const sweep_row *row = &s->rows[i];
        char desc[256];
        q2_describe(&row->cfg, desc, sizeof desc);
        fprintf(md, "| `%s` | %s |", row->cfg.id, desc);
        if (!row->ok) {
            char why[48];
            q2_row_failure(row, why, sizeof why);
            fprintf(md, " %s | | | | | | |\n", why);
            continue;
        }
        fprintf(md, " %d |", row->r.epochs);
        cell(md, last_value(row, "train_loss"));
        cell(md, last_value(row, "train_acc"));
        cell(md, last_value(row, "valid_acc"));
        cell(md, row->r.test_acc);
        cell(md, row->r.sec_per_epoch);
        if (row->r.status == RUN_DIVERGED)
            fprintf(md, " **diverged** (NaN/Inf loss at epoch %d, step %lld)",
                    row->r.nonfinite_epoch, (long long)row->r.nonfinite_step);
        if (row->r.status == RUN_INTERRUPTED)
            fprintf(md, " **interrupted** (%d of %d epochs)", row->r.epochs, row->cfg.epochs);
        if (row->r.at_chance) fprintf(md, " **at chance** (%.4f)", row->r.chance);
        fprintf(md, " |\n");
    }
    fprintf(md, "\n%s\n\n", rc->notes);
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%s: ", rc->name);
    for (int k = 0; k < MAX_CHARTS && rc->charts[k].file; k++) {
        if (recipe_chart_write(&rc->charts[k], s, base->out, prefix) != TG_OK) {
            fprintf(stderr, PROG ": %s\n", tg_status_message());
            continue;
        }
        fprintf(md, "**%s**\n\n![%s](%s)\n\n", rc->charts[k].title, rc->charts[k].file,
                rc->charts[k].file);
    }
    fprintf(md, "Each run's folder holds metrics.csv, metrics.jsonl, summary.json, loss.png and "
                "accuracy.png; `" PROG " replot DIR` redraws a run's charts.\n");
    int err = ferror(md) ? (errno ? errno : EIO) : 0;
    if (fclose(md) != 0 && !err) err = errno ? errno : EIO;
    if (err) return tg_status_set(TG_ERR_IO, "%s: write failed: %s", path, strerror(err));
    return TG_OK;
}

/* "question2 recipe NAME ...": the command as the report quotes it. */
static void command_line(int argc, char **argv, char *buf, size_t len)
{
    size_t u = (size_t)snprintf(buf, len, PROG);
    for (int i = 1; i < argc && u < len; i++)
        u += (size_t)snprintf(buf + u, len - u, " %s", argv[i]);
}

static int run_recipe(const recipe *rc, int argc, char **argv)
{
    raw_flags raw = {0}, user = {0};
    const char *model = "mlp", *pos[1];
    int n_pos;
    bool help = false;
    if (q2_parse_flags(argc, argv, 3, &user, pos, 0, &n_pos, &help) != TG_OK)
        return q2_usage_error();
    if (help) { usage(stdout); return 0; }
    bool fast = user.v[F_FAST] != NULL;
    user.v[F_FAST] = NULL;   /* the recipe's own fast flags, not -fast's */
    if (parse_flag_string(rc->base, &raw, &model) != TG_OK ||
        (fast && parse_flag_string(rc->fast, &raw, NULL) != TG_OK))
        return q2_usage_error();
    for (int f = 0; f < N_FLAGS; f++)
        if (user.v[f]) raw.v[f] = user.v[f];
    q2_model kind;
    q2_config base;
    if (q2_parse_model(model, &kind) != TG_OK || q2_make_config(&raw, kind, &base) != TG_OK)
        return q2_usage_error();
    if (raw.v[F_RESUME]) {
        q2_bad("-resume continues one run, not a recipe");
        return q2_usage_error();
    }
    if (!base.out_given)
        snprintf(base.out, sizeof base.out, "out/recipe-%s%s", rc->name, fast ? "-fast" : "");
    if (q2_check_out(base.out, base.overwrite) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        return 1;
    }
    static sweep s;
    for (int i = 0; i < MAX_RUNS && rc->runs[i].id; i++) {
        raw_flags r = raw;
        /* "-train_subset 0" in a run: the whole set (0 is not a valid flag value). */
        bool whole = strstr(rc->runs[i].flags, "-train_subset 0") != NULL;
        if (!whole && parse_flag_string(rc->runs[i].flags, &r, NULL) != TG_OK)
            return q2_usage_error();
        if (q2_sweep_add(&s, &r, kind, "recipe", rc->runs[i].id, rc->runs[i].varied, -1,
                         NULL) != TG_OK)
            return q2_usage_error();
        q2_config *c = &s.rows[s.n - 1].cfg;
        if (whole) c->train_subset = 0;
        char id[sizeof c->id];
        memcpy(id, c->id, sizeof id);
        snprintf(c->out, sizeof c->out, "%.*s/%s", PATH_MAX - 256, base.out, id);
        c->jobs = base.jobs;
    }
    /* The data set once, with the base's subsets; a run of the whole set loads its own. */
    double t0 = q2_now();
    q2_data d, whole_d;
    if (q2_load_base(&base, &d)) return 1;
    bool any_whole = false;
    for (int i = 0; i < s.n; i++) any_whole |= s.rows[i].cfg.train_subset != base.train_subset;
    if (q2_make_dirs(base.out) != TG_OK ||
        q2_write_sweep_note(base.out, "recipe", rc->name) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        q2_free_data(&d);
        return 1;
    }
    printf("recipe %s: %d run(s), %d at a time, output in %s/\n", rc->name, s.n, base.jobs,
           base.out);
    /* Runs on the base's data first, then those on the whole training set. */
    static sweep part[2];
    for (int i = 0; i < s.n; i++) {
        int k = s.rows[i].cfg.train_subset != base.train_subset;
        part[k].rows[part[k].n++] = s.rows[i];
    }
    q2_sweep_execute(&part[0], &d, base.jobs);
    if (q2_stop)   /* interrupted during the first part: the second never starts */
        for (int i = 0; i < part[1].n; i++) part[1].rows[i].status = Q2_NOT_RUN;
    else if (any_whole) {
        q2_config wc = part[1].rows[0].cfg;
        if (q2_load_data(&wc, &whole_d) != TG_OK) {
            fprintf(stderr, PROG ": -data %s: %s\n", base.data, tg_status_message());
            for (int i = 0; i < part[1].n; i++) part[1].rows[i].status = 1;
        } else {
            q2_sweep_execute(&part[1], &whole_d, base.jobs);
            q2_free_data(&whole_d);
        }
    }
    s.n = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < part[k].n; i++) s.rows[s.n++] = part[k].rows[i];
    double wall = q2_now() - t0;
    char cmdline[1024];
    command_line(argc, argv, cmdline, sizeof cmdline);
    int failed = 0;
    for (int i = 0; i < s.n; i++) failed += !s.rows[i].ok;
    if (recipe_report(rc, &s, &base, &d, fast, wall, cmdline) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        failed++;
    }
    printf("\n%-16s %-34s %9s %9s  %s\n", "run", "settings", "valid", "test", "note");
    for (int i = 0; i < s.n; i++) {
        const sweep_row *row = &s.rows[i];
        if (!row->ok) {
            char why[48];
            q2_row_failure(row, why, sizeof why);
            printf("%-16s %-34s   %s\n", row->cfg.id, row->cfg.varied, why);
            continue;
        }
        printf("%-16s %-34s %9.4f %9.4f  %s%s\n", row->cfg.id, row->cfg.varied,
               row->r.valid_acc[row->r.epochs - 1], row->r.test_acc,
               row->r.status == RUN_COMPLETED ? "" : row->r.status == RUN_DIVERGED
                                               ? "diverged " : "interrupted ",
               row->r.at_chance ? "at chance" : "");
        q2_result_free(&s.rows[i].r);
    }
    printf("wrote %s/report.md (%.0f s)%s\n", base.out, wall, q2_stop ? ", interrupted" : "");
    q2_free_data(&d);
    return q2_stop ? EXIT_INTERRUPTED : failed ? 1 : 0;
}

/* ---- IST 2022-23 HW1: Question 1 by hand (question1.c), then Question 2 as `sweep all` ------
 * One process runs Question 1's three models one after the other (a few minutes on the whole
 * set); the sweep then runs Question 2's grid with -jobs processes and writes its report.md, into
 * which Question 1's section is put first. Question 1 takes -epochs, -seed, -data, -limit,
 * -eval_limit, -quiet and -threads from the command line; its learning rate (0.001), width (200)
 * and initial values are the homework's, whatever the flags that Question 2's base takes. */

static const char ist_fast[] = "-epochs 2 -limit 1000 -eval_limit 300";

typedef struct {
    const char *id, *question, *varied;
    q1_model kind;
} ist_q1_run;

static const ist_q1_run ist_q1[Q1_N_MODELS] = {
    {"1.1a-perceptron", "1.1(a)", "perceptron, mistake-driven, zeros", Q1_PERCEPTRON},
    {"1.1b-logistic_regression", "1.1(b)", "logistic regression, SGD lr 0.001, zeros",
     Q1_LOGISTIC},
    {"1.2b-mlp", "1.2(b)", "MLP 200 ReLU, SGD lr 0.001, N(0.1, 0.1²)", Q1_MLP},
};

static const recipe_chart ist_q1_charts[] = {
    {"q1.1a_perceptron_acc.png", "Q1.1(a) perceptron: accuracy", "accuracy", "1.1a-perceptron",
     "train_acc,valid_acc", false},
    {"q1.1b_logistic_acc.png", "Q1.1(b) logistic regression: accuracy", "accuracy",
     "1.1b-logistic_regression", "train_acc,valid_acc", false},
    {"q1.2b_mlp_loss.png", "Q1.2(b) MLP: training loss", "training cross-entropy", "1.2b-mlp",
     "train_loss", true},
    {"q1.2b_mlp_acc.png", "Q1.2(b) MLP: accuracy", "accuracy", "1.2b-mlp", "train_acc,valid_acc",
     false},
};
enum { N_IST_CHARTS = sizeof ist_q1_charts / sizeof ist_q1_charts[0] };

static const char ist_q1_notes[] =
    "Each model sees the training set one example at a time in a fresh order every epoch. Its "
    "gradient is the one derived by hand, written out in tensor ops without tg_backward "
    "(`apps/question2/question1.c`), and plain SGD (tg_sgd) takes the step: the perceptron "
    "adds (e_y − e_ŷ)ᵀ·x to W on a mistake and nothing otherwise (learning rate 1); logistic "
    "regression steps by −0.001 · (softmax(s) − e_y)ᵀ·x; the MLP back-propagates the same error "
    "through its output layer and the ReLU's derivative. Biases: the homework appends a "
    "constant feature 1 to x for the two linear models; here b is that column kept apart and "
    "updated by the same rule (the same numbers). Initial values: zeros for the linear models, "
    "N(0.1, 0.1²) weights and zero biases for the MLP. Training accuracy is measured on the "
    "whole training set after each epoch, as the homework's `evaluate` does; the MLP's training "
    "loss (log axis: the first epoch's is ~10, from the large initial weights) is the mean of "
    "the examples' losses during the epoch, each before its update. Final test accuracy: after "
    "the last epoch. No reference accuracies are published for this homework (none in this "
    "repository's documents).";

/* The Question 1 rows as recipe_chart_write reads them: id, legend and folder. */
static void ist_q1_rows(sweep *s, const char *dir, const bool *ok)
{
    s->n = 0;
    for (int k = 0; k < Q1_N_MODELS; k++) {
        sweep_row *row = &s->rows[s->n++];
        memset(row, 0, sizeof *row);
        snprintf(row->cfg.id, sizeof row->cfg.id, "%s", ist_q1[k].id);
        snprintf(row->cfg.varied, sizeof row->cfg.varied, "%s", ist_q1[k].varied);
        snprintf(row->cfg.out, sizeof row->cfg.out, "%.*s/%s", PATH_MAX - 256, dir, ist_q1[k].id);
        row->ok = ok[k];
    }
}

static tg_status ist_q1_charts_write(const char *dir, const bool *ok, FILE *md)
{
    static sweep s;
    ist_q1_rows(&s, dir, ok);
    tg_status st = TG_OK;
    for (int k = 0; k < N_IST_CHARTS; k++) {
        tg_status one = recipe_chart_write(&ist_q1_charts[k], &s, dir, "ist-hw1: ");
        if (one != TG_OK) {
            fprintf(stderr, PROG ": %s\n", tg_status_message());
            st = one;
            continue;
        }
        if (md)
            fprintf(md, "**%s**\n\n![%s](%s)\n\n", ist_q1_charts[k].title, ist_q1_charts[k].file,
                    ist_q1_charts[k].file);
    }
    return st;
}

static void ist_q1_section(FILE *md, const char *dir, const q1_result *r, const int *status)
{
    fprintf(md, "\n## Question 1: the perceptron, logistic regression and an MLP, by hand\n\n"
                "| question | run | settings | epochs | final train acc | final valid acc | "
                "final test acc | s/epoch | note |\n|---|---|---|---:|---:|---:|---:|---:|---|\n");
    bool ok[Q1_N_MODELS];
    for (int k = 0; k < Q1_N_MODELS; k++) {
        ok[k] = status[k] == 0;
        fprintf(md, "| %s | `%s` | %s |", ist_q1[k].question, ist_q1[k].id, ist_q1[k].varied);
        if (!ok[k]) {
            fprintf(md, " %s | | | | | | |\n", status[k] == Q2_NOT_RUN ? "not run (interrupted)"
                                                                       : "failed");
            continue;
        }
        fprintf(md, " %d |", r[k].epochs);
        cell(md, r[k].train_acc);
        cell(md, r[k].valid_acc);
        cell(md, r[k].test_acc);
        cell(md, r[k].sec_per_epoch);
        if (r[k].status == RUN_DIVERGED)
            fprintf(md, " **diverged** (NaN/Inf loss at epoch %d, step %lld)", r[k].nonfinite_epoch,
                    (long long)r[k].nonfinite_step);
        if (r[k].status == RUN_INTERRUPTED) fprintf(md, " **interrupted**");
        fprintf(md, " |\n");
    }
    fprintf(md, "\n%s\n\n", ist_q1_notes);
    ist_q1_charts_write(dir, ok, md);
}

/* The sweep's report.md under Question 1's section: its title becomes a "## Question 2" heading
 * and its sections go one level down. */
static void ist_append_sweep_report(FILE *md, const char *text)
{
    fprintf(md, "\n");
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        int k = n > 2 ? (int)strcspn(p + 2, "(\n") : 0;   /* "(interrupted)" stays */
        if (!strncmp(p, "# ", 2))
            fprintf(md, "## Question 2 (`" PROG " sweep all`)%s%.*s\n", k < n - 2 ? " " : "",
                    n - 2 - k, p + 2 + k);
        else fprintf(md, "%s%.*s\n", !strncmp(p, "## ", 3) ? "#" : "", n, p);
        p += n + (nl != NULL);
    }
}

/* A small file into the caller's buffer (cut at len - 1 bytes); false when it cannot be read. */
static bool read_text(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) return false;
    buf[fread(buf, 1, len - 1, f)] = '\0';
    fclose(f);
    return true;
}

typedef struct {
    const char *cmdline, *data;
    int64_t n[3];
    bool fast, q2, sweep_ran;
    int sweep_status;           /* q2_sweep_main's exit status */
    double q1_wall;
    uint64_t seed;
} ist_run_info;

static tg_status ist_report(const char *dir, const ist_run_info *info, const q1_result *r,
                            const int *status)
{
    static char sweep_md[1 << 17];
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, dir, "report.md");
    bool have_sweep = info->q2 && read_text(path, sweep_md, sizeof sweep_md);
    FILE *md = fopen(path, "w");
    if (!md) return tg_status_set(TG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", localtime(&now));
    fprintf(md, "# IST 2022-23 HW1: Question 1%s%s%s\n\n", info->q2 ? " and Question 2" : "",
            info->fast ? " (fast mode)" : "", q2_stop ? " (interrupted)" : "");
    fprintf(md, "The experiments of IST 2022-23 homework 1, from one command:\n\n    %s\n\n",
            info->cmdline);
    fprintf(md, "Written by `apps/question2/` on %s. Data: `%s` (train %lld, validation %lld, "
                "test %lld examples). %s. Question 1: %.0f s of wall time in one process. Seed "
                "%llu.\n", date, info->data, (long long)info->n[0], (long long)info->n[1],
            (long long)info->n[2], tg_blas_info(), info->q1_wall,
            (unsigned long long)info->seed);
    if (q2_stop)
        fprintf(md, "\n**Interrupted** (SIGINT/SIGTERM): the run that was going stopped after its "
                    "current step (marked interrupted); those not started are marked not run.\n");
    if (info->fast)
        fprintf(md, "\n**Fast mode**: a subset for a few epochs, to check the recipe runs; the "
                    "figures are not the homework's.\n");
    ist_q1_section(md, dir, r, status);
    if (have_sweep) ist_append_sweep_report(md, sweep_md);
    else if (info->q2 && !info->sweep_ran)
        fprintf(md, "\n## Question 2 (`" PROG " sweep all`)\n\nNot run: interrupted during "
                    "Question 1.\n");
    else if (info->q2)
        fprintf(md, "\n## Question 2 (`" PROG " sweep all`)\n\nThe sweep wrote no report (exit "
                    "%d): see its messages.\n", info->sweep_status);
    else
        fprintf(md, "\n## Question 2\n\nNot run here: `" PROG " recipe ist-hw1` runs both "
                    "questions, `" PROG " recipe ist-hw1 q2` (= `" PROG " sweep all`) Question 2 "
                    "alone.\n");
    int err = ferror(md) ? (errno ? errno : EIO) : 0;
    if (fclose(md) != 0 && !err) err = errno ? errno : EIO;
    if (err) return tg_status_set(TG_ERR_IO, "%s: write failed: %s", path, strerror(err));
    return TG_OK;
}

/* Question 2: `sweep all` with the recipe's flags (the fast ones under the user's) into dir. */
static int ist_sweep(const raw_flags *raw, const char *dir)
{
    static char names[N_FLAGS][40];
    char *args[2 * N_FLAGS + 8] = {PROG, "sweep", "all"};
    int n = 3;
    for (int f = 0; f < N_FLAGS; f++) {
        if (!raw->v[f] || f == F_OUT) continue;
        snprintf(names[f], sizeof names[f], "-%s", q2_flags[f].name);
        args[n++] = names[f];
        if (!q2_flags[f].boolean) args[n++] = (char *)raw->v[f];
    }
    args[n++] = "-out";
    args[n++] = (char *)dir;
    return q2_sweep_main(n, args);
}

/* The first SIGINT/SIGTERM during Question 1 stops it after the current step; a second one
 * kills. */
static void ist_stop(int sig)
{
    q2_stop = 1;
    signal(sig, SIG_DFL);
}

/* Question 1's three runs, one after the other; status[k]: 0, 1 (failed) or Q2_NOT_RUN. */
static void ist_question1(const q2_config *base, const q2_data *d, q1_result *r, int *status)
{
    q1_config c = {.epochs = base->epochs, .seed = base->seed, .learning_rate = 0.001,
                   .hidden_size = 200, .quiet = base->quiet};
    signal(SIGINT, ist_stop);
    signal(SIGTERM, ist_stop);
    for (int k = 0; k < Q1_N_MODELS; k++) {
        status[k] = Q2_NOT_RUN;
        if (q2_stop) continue;
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%.*s/%s", PATH_MAX - 256, base->out, ist_q1[k].id);
        status[k] = q1_run(ist_q1[k].kind, &c, d, dir, &r[k]) == TG_OK ? 0 : 1;
        if (status[k]) fprintf(stderr, PROG ": %s\n", tg_status_message());
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

static int run_ist_hw1(int argc, char **argv)
{
    raw_flags raw = {0}, user = {0};
    const char *pos[1];
    int n_pos;
    bool help = false;
    if (q2_parse_flags(argc, argv, 3, &user, pos, 1, &n_pos, &help) != TG_OK)
        return q2_usage_error();
    if (help) { usage(stdout); return 0; }
    bool q1 = !n_pos || !strcmp(pos[0], "q1"), q2 = !n_pos || !strcmp(pos[0], "q2");
    if (!q1 && !q2) {
        q2_bad("recipe ist-hw1: unknown part '%s': give q1 (Question 1 alone), q2 (Question 2 "
               "alone) or neither (both)", pos[0]);
        return q2_usage_error();
    }
    bool fast = user.v[F_FAST] != NULL;
    user.v[F_FAST] = NULL;   /* the recipe's own fast flags, not -fast's */
    if (fast && parse_flag_string(ist_fast, &raw, NULL) != TG_OK) return q2_usage_error();
    for (int f = 0; f < N_FLAGS; f++)
        if (user.v[f]) raw.v[f] = user.v[f];
    if (raw.v[F_RESUME]) {
        q2_bad("-resume continues one run, not a recipe");
        return q2_usage_error();
    }
    q2_config base;
    if (q2_make_config(&raw, Q2_MLP, &base) != TG_OK) return q2_usage_error();
    if (!base.out_given)
        snprintf(base.out, sizeof base.out, "out/recipe-ist-hw1%s", fast ? "-fast" : "");
    if (!q1) return ist_sweep(&raw, base.out);
    if (q2_check_out(base.out, base.overwrite) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        return 1;
    }
    double t0 = q2_now();
    q2_data d;
    /* The kernels chosen once for both questions: Question 2's products are as small as
     * Question 1's (batch x width <= 4096). */
    if (q2_load_base(&base, &d)) return 1;
    char cmdline[1024];
    command_line(argc, argv, cmdline, sizeof cmdline);
    ist_run_info info = {.cmdline = cmdline, .data = base.data, .fast = fast, .q2 = q2,
                         .seed = base.seed};
    for (int i = 0; i < 3; i++) info.n[i] = d.x[i]->shape[0];
    printf("recipe ist-hw1: Question 1 (3 runs, one at a time)%s, output in %s/\n",
           q2 ? ", then Question 2 (sweep all)" : "", base.out);
    static q1_result r[Q1_N_MODELS];
    int status[Q1_N_MODELS];
    ist_question1(&base, &d, r, status);
    q2_free_data(&d);   /* the sweep loads its own */
    info.q1_wall = q2_now() - t0;
    info.sweep_ran = q2 && !q2_stop;
    char old_report[PATH_MAX + 32];   /* a previous run's (-overwrite) is not the sweep's */
    q2_join(old_report, sizeof old_report, base.out, "report.md");
    if (info.sweep_ran && (remove(old_report) == 0 || errno == ENOENT))
        info.sweep_status = ist_sweep(&raw, base.out);
    else if (info.sweep_ran) {
        fprintf(stderr, PROG ": %s: cannot remove: %s\n", old_report, strerror(errno));
        info.sweep_status = 1;
    }
    tg_status st = ist_report(base.out, &info, r, status);
    if (st == TG_OK) st = q2_write_sweep_note(base.out, "recipe", "ist-hw1");
    if (st != TG_OK) fprintf(stderr, PROG ": %s\n", tg_status_message());
    int failed = st != TG_OK;
    printf("\n%-26s %9s %9s %9s\n", "Question 1", "train", "valid", "test");
    for (int k = 0; k < Q1_N_MODELS; k++) {
        failed += status[k] == 1;
        if (status[k]) printf("%-26s   %s\n", ist_q1[k].id, status[k] == 1 ? "failed" : "not run");
        else printf("%-26s %9.4f %9.4f %9.4f%s\n", ist_q1[k].id, r[k].train_acc, r[k].valid_acc,
                    r[k].test_acc, r[k].status == RUN_COMPLETED ? ""
                                   : r[k].status == RUN_DIVERGED ? "  diverged" : "  interrupted");
    }
    printf("wrote %s/report.md (Question 1: %.0f s)%s\n", base.out, info.q1_wall,
           q2_stop ? ", interrupted" : "");
    if (q2_stop) return EXIT_INTERRUPTED;
    if (info.sweep_status) return info.sweep_status;
    return failed ? 1 : 0;
}

/* replot of an ist-hw1 folder: Question 1's charts, then Question 2's (when its runs are there). */
static int ist_replot(const char *dir, bool log_loss)
{
    bool ok[Q1_N_MODELS];
    int found = 0;
    for (int k = 0; k < Q1_N_MODELS; k++) {
        char csv[PATH_MAX + 64];
        snprintf(csv, sizeof csv, "%.*s/%s/metrics.csv", PATH_MAX - 256, dir, ist_q1[k].id);
        found += ok[k] = access(csv, R_OK) == 0;
    }
    int rc = found && ist_q1_charts_write(dir, ok, NULL) != TG_OK;
    if (found) printf("redrew the Question 1 charts of %s (%d of 3 runs)\n", dir, found);
    char csv[PATH_MAX + 64];
    bool q2 = false;
    static const char *const probes[] = {"2.1-lr0.001", "2.1-lr0.01", "2.1-lr0.1", "2.2-default"};
    for (int i = 0; i < 4 && !q2; i++) {
        snprintf(csv, sizeof csv, "%.*s/%s/metrics.csv", PATH_MAX - 256, dir, probes[i]);
        q2 = access(csv, R_OK) == 0;
    }
    if (q2) rc |= q2_sweep_replot("all", dir, log_loss);
    if (!found && !q2) {
        fprintf(stderr, PROG " replot: %s: no run of recipe ist-hw1 with a metrics.csv\n", dir);
        return 1;
    }
    return rc;
}

int q2_recipe_replot(const char *name, const char *dir, bool log_loss)
{
    if (!strcmp(name, "ist-hw1")) return ist_replot(dir, log_loss);
    const recipe *rc = NULL;
    for (int i = 0; i < N_RECIPES; i++)
        if (!strcmp(recipes[i].name, name)) rc = &recipes[i];
    if (!rc) {
        fprintf(stderr, PROG " replot: %s: unknown recipe '%s'\n", dir, name);
        return 1;
    }
    /* The charts read each run's metrics.csv: a row needs its id, legend and folder. */
    static sweep s;
    s.n = 0;
    int found = 0;
    for (int i = 0; i < MAX_RUNS && rc->runs[i].id; i++) {
        sweep_row *row = &s.rows[s.n++];
        memset(row, 0, sizeof *row);
        snprintf(row->cfg.id, sizeof row->cfg.id, "%s", rc->runs[i].id);
        snprintf(row->cfg.varied, sizeof row->cfg.varied, "%s", rc->runs[i].varied);
        snprintf(row->cfg.out, sizeof row->cfg.out, "%.*s/%s", PATH_MAX - 256, dir,
                 rc->runs[i].id);
        char csv[PATH_MAX + 32];
        q2_join(csv, sizeof csv, row->cfg.out, "metrics.csv");
        found += row->ok = access(csv, R_OK) == 0;
    }
    if (!found) {
        fprintf(stderr, PROG " replot: %s: no run of recipe %s with a metrics.csv\n", dir, name);
        return 1;
    }
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%s: ", rc->name);
    int rc_status = 0;
    for (int k = 0; k < MAX_CHARTS && rc->charts[k].file; k++)
        if (recipe_chart_write(&rc->charts[k], &s, dir, prefix) != TG_OK) {
            fprintf(stderr, PROG " replot: %s\n", tg_status_message());
            rc_status = 1;
        }
    printf("redrew the charts of %s (recipe %s, %d of %d runs)\n", dir, name, found, s.n);
    return rc_status;
}

const char *q2_recipe_guess(const char *const *names, int n)
{
    const char *best = NULL;
    int best_hits = 0;
    for (int r = 0; r < N_RECIPES; r++) {
        int hits = 0;
        for (int i = 0; i < n; i++) {
            bool known = false;
            for (int k = 0; k < MAX_RUNS && recipes[r].runs[k].id; k++)
                known |= !strcmp(recipes[r].runs[k].id, names[i]);
            if (!known) { hits = -1; break; }
            hits++;
        }
        if (hits > best_hits) best = recipes[r].name, best_hits = hits;
    }
    return best;
}

int q2_recipe_main(int argc, char **argv)
{
    if (argc < 3 || !strcmp(argv[2], "-h") || !strcmp(argv[2], "--help")) {
        usage(argc < 3 ? stderr : stdout);
        return argc < 3 ? EXIT_USAGE : 0;
    }
    if (!strcmp(argv[2], "ist-hw1")) return run_ist_hw1(argc, argv);
    for (int i = 0; i < N_RECIPES; i++)
        if (!strcmp(argv[2], recipes[i].name)) return run_recipe(&recipes[i], argc, argv);
    q2_bad("recipe: unknown recipe '%s' (" PROG " recipe -h lists them)", argv[2]);
    return q2_usage_error();
}
