/* question2 replot DIR: a finished (or stopped) run's charts drawn again from its metrics.csv,
 * with the title and the at-chance flag its summary.json recorded; for a sweep's or a recipe's
 * folder, every run folder's, then the combined charts of the sweep (report.c, recipe.c) from the
 * runs' metrics.csv. Nothing is trained or loaded but the files of DIR. */
#include "question2.h"

#include <dirent.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

static void read_summary(const char *dir, char *title, size_t len, bool *at_chance)
{
    char text[8192];
    snprintf(title, len, "%s", dir);
    *at_chance = false;
    if (!q2_read_summary(dir, text, sizeof text)) return;
    q2_summary_string(text, "title", title, len);
    *at_chance = strstr(text, "\"at_chance\": true") != NULL;
}

/* One run folder: 0, or 1 with a message. */
static int replot_run(const char *dir, bool log_loss)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, dir, "metrics.csv");
    tg_metrics_table t;
    if (tg_metrics_read_csv(path, &t) != TG_OK) {
        fprintf(stderr, PROG " replot: %s\n", tg_status_message());
        return 1;
    }
    char title[256];
    q2_curves k = {.n = t.n_rows,
                   .train_loss = tg_metrics_column(&t, "train_loss"),
                   .valid_loss = tg_metrics_column(&t, "valid_loss"),
                   .valid_acc = tg_metrics_column(&t, "valid_acc"),
                   .train_acc = tg_metrics_column(&t, "train_acc"),
                   .test_loss = tg_metrics_column(&t, "test_loss"),
                   .test_acc = tg_metrics_column(&t, "test_acc")};
    read_summary(dir, title, sizeof title, &k.at_chance);
    int rc = 0;
    if (!k.train_loss || !k.valid_loss || !k.valid_acc) {
        fprintf(stderr, PROG " replot: %s has no train_loss, valid_loss or valid_acc column\n",
                path);
        rc = 1;
    } else if (q2_draw_run_charts(title, &k, dir, log_loss) != TG_OK) {
        fprintf(stderr, PROG " replot: %s\n", tg_status_message());
        rc = 1;
    } else {
        printf("redrew %s/{loss.png, accuracy.png} from %d epochs\n", dir, t.n_rows);
    }
    tg_metrics_table_free(&t);
    return rc;
}

/* Which sweep made dir: its sweep.txt ("sweep 2.2", "recipe hw4-backprop"), else guessed from the
 * run folders' names (a folder from before sweep.txt): "2.x-..." the questions, "grid-NNN" a
 * grid, else the recipe whose runs they are. False when none fits. */
static bool sweep_kind(const char *dir, const char *const *runs, int n, char *kind, size_t klen,
                       char *name, size_t nlen)
{
    char path[PATH_MAX + 32], k[16] = "", v[64] = "";
    q2_join(path, sizeof path, dir, "sweep.txt");
    FILE *f = fopen(path, "r");
    if (f) {
        int got = fscanf(f, "%15s %63s", k, v);
        fclose(f);
        if (got == 2) {
            snprintf(kind, klen, "%s", k);
            snprintf(name, nlen, "%s", v);
            return true;
        }
    }
    bool q[3] = {false, false, false}, grid = false;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 3; j++) {
            char prefix[16];
            snprintf(prefix, sizeof prefix, "2.%d-", j + 1);
            q[j] |= !strncmp(runs[i], prefix, 4);
        }
        grid |= !strncmp(runs[i], "grid-", 5);
    }
    int questions = q[0] + q[1] + q[2];
    const char *recipe = q2_recipe_guess(runs, n);
    snprintf(kind, klen, "%s", questions || grid ? "sweep" : "recipe");
    if (grid) snprintf(name, nlen, "grid");
    else if (questions == 1) snprintf(name, nlen, "2.%d", q[0] ? 1 : q[1] ? 2 : 3);
    else snprintf(name, nlen, "%s", questions ? "all" : recipe ? recipe : "");
    return questions || grid || recipe;
}

/* A sweep's or recipe's folder: each run folder's charts (a subfolder holding a metrics.csv),
 * then the combined charts of the sweep. */
static int replot_sweep(const char *dir, bool log_loss)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, PROG " replot: %s: no metrics.csv and not a readable folder\n", dir);
        return 1;
    }
    static char names[MAX_CONFIGS][256];
    const char *runs[MAX_CONFIGS];
    int rc = 0, n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < MAX_CONFIGS;) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof names[0]) continue;
        char sub[PATH_MAX], csv[PATH_MAX + 32];
        snprintf(sub, sizeof sub, "%.*s/%s", PATH_MAX - 300, dir, e->d_name);
        q2_join(csv, sizeof csv, sub, "metrics.csv");
        struct stat sb;
        if (stat(csv, &sb) != 0) continue;
        rc |= replot_run(sub, log_loss);
        snprintf(names[n], sizeof names[n], "%s", e->d_name);
        runs[n] = names[n];
        n++;
    }
    closedir(d);
    if (!n) {
        fprintf(stderr, PROG " replot: %s holds no metrics.csv, nor any folder with one\n", dir);
        return 1;
    }
    char kind[16], name[64];
    if (!sweep_kind(dir, runs, n, kind, sizeof kind, name, sizeof name)) {
        printf("%s: not a sweep's or recipe's folder (no sweep.txt, run names of none): only its "
               "runs' charts redrawn\n", dir);
        return rc;
    }
    rc |= !strcmp(kind, "recipe") ? q2_recipe_replot(name, dir, log_loss)
                                  : q2_sweep_replot(name, dir, log_loss);
    return rc;
}

int q2_replot_main(int argc, char **argv)
{
    const char *dir = NULL;
    bool log_loss = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: " PROG " replot DIR [-log_loss]   redraw loss.png and accuracy.png of "
                   "DIR\n(a run's folder), or of each run of a sweep's or recipe's folder and "
                   "the\nsweep's combined charts, from the runs' metrics.csv\n");
            return 0;
        }
        if (!strcmp(a, "-log_loss") || !strcmp(a, "--log_loss")) log_loss = true;
        else if (a[0] == '-' || dir) {
            q2_bad("replot: unexpected argument '%s' (give DIR and, if wanted, -log_loss)", a);
            return q2_usage_error();
        } else dir = a;
    }
    if (!dir) {
        q2_bad("replot: give the folder of a run (or of a sweep)");
        return q2_usage_error();
    }
    char csv[PATH_MAX + 32];
    q2_join(csv, sizeof csv, dir, "metrics.csv");
    struct stat sb;
    return stat(csv, &sb) == 0 ? replot_run(dir, log_loss) : replot_sweep(dir, log_loss);
}
